/*
 * store/store_int.h — the engine's insides, shared by the store/ files.
 *
 * One mcrdt_store is one process's handle on a store directory:
 *   ROOT/                 the Maildir++ tree (maildir/)
 *   ROOT/mcrdt/replica    "id HEX\nname NAME\n", written once at creation
 *   ROOT/mcrdt/lock       flock'd exclusively around every call
 *   ROOT/mcrdt/open       flock'd shared while open; fsck --repair takes it
 *                         exclusively, so it never repairs under a user
 *   ROOT/mcrdt/log/       the op log (sync/log.h)
 *   ROOT/mcrdt/snapshot   the model at some log index (sync/snapshot.h)
 *
 * Every call runs as a transaction (st_begin .. st_end): the handle's
 * mutex, the lock file, then the records other processes appended since
 * this handle last looked are received into the model. A change is made
 * file first, op second: the Maildir file is delivered, renamed or removed,
 * then the model makes the op, settles, and the ops reach the log
 * (st_commit). A crash between the two leaves a file change without its op,
 * which a scan turns into the op. The model is changed before its ops are
 * logged; if logging fails the handle is marked stale and reloads from disk
 * at its next call, so memory never runs ahead of the log.
 */
#ifndef MCRDT_STORE_INT_H
#define MCRDT_STORE_INT_H

#include <pthread.h>

#include "crdt/model.h"
#include "maildir/maildir.h"
#include "mcrdt/errors.h"
#include "mcrdt/store.h"
#include "sync/git.h"
#include "sync/log.h"

/* Log records after which a snapshot is written at the end of a call, and
 * at close. */
#define ST_SNAPSHOT_EVERY 65536
#define ST_SNAPSHOT_AT_CLOSE 1024

struct st_scan {
	char *mailbox;            /* as on disk (md_folder_list) */
	struct md_scan_state st;
	bool scanned;             /* by this handle; else only loaded (a guess) */
	unsigned saved;           /* st.version as in mcrdt/scan-* (when valid) */
};

struct st_seen {                  /* what notifications last reported */
	char *name;
	uint64_t modseq;
};

struct mcrdt_store {
	pthread_mutex_t mu;
	char *root;
	char *metadir;            /* ROOT/mcrdt */
	md *md;
	crdt_model *m;
	sync_log *log;
	uint64_t replica;
	char name[64];
	struct mcrdt_open_opts opts;
	int lockfd, openfd;
	bool locked;              /* holds lockfd */
	bool in_batch;
	crdt_oplist batch;        /* a batch's ops, logged at commit */
	bool stale;               /* the model may differ from the log: reload */
	uint64_t snap_at;         /* log index the newest snapshot covers */

	struct st_scan *scans;
	size_t nscans, capscans;

	int inotify;              /* -1 until mcrdt_store_notify_fd */
	int root_wd;              /* its watch of the root, where folders appear */
	mcrdt_notify_fn notify;
	void *notify_ctx;
	struct st_seen *seen;
	size_t nseen, capseen;
};

struct mcrdt_mailbox {
	mcrdt_store *s;
	crdt_dot guid;            /* a member of the view (its canonical one at select) */
	uint32_t uidvalidity;
	uint32_t *uids;           /* the session's view: seq n is uids[n - 1] */
	size_t n, cap;
	uint64_t modseq;          /* HIGHESTMODSEQ at the last sync */
};

/* ---- store.c ---- */

/* Opens (creating) METADIR/name and flocks it (op: LOCK_SH or LOCK_EX),
 * waiting up to timeout_ms; MCRDT_ELOCKED then, its message ending with
 * hint (may be NULL). */
int st_lock_file(const char *metadir, const char *name, int op, unsigned timeout_ms, const char *hint,
		 int *fd_out);

/* Begins a call that may change the store: mutex, lock (unless a batch
 * holds it), catch-up, and a journal left behind carried out
 * (st_journal_recover). On failure everything is released again. */
int st_begin(mcrdt_store *s);
/* Begins a call that only reads: as st_begin, but a journal that cannot
 * be carried out yet does not fail it. */
int st_begin_read(mcrdt_store *s);
/* Ends a change. With rc 0: settles, and logs ops (and the settle's
 * claims) durably, or queues them in the batch. With an error: drops ops,
 * marking the handle stale when some were applied to the model. ops is
 * emptied; returns rc, or the error of settling or logging (the handle is
 * then stale too). */
int st_commit(mcrdt_store *s, crdt_oplist *ops, int rc);
/* Ends a call: notifications, snapshot when due, unlock, mutex. Returns rc. */
int st_end(mcrdt_store *s, int rc);

/* ---- names and flags (mailbox.c) ---- */

/* Checks and normalises an API mailbox name ("inbox" -> "INBOX", a
 * trailing '/' dropped) into a malloc'd copy. MCRDT_EINVAL. */
int st_mailbox_name(const char *name, char **out);
/* The visible mailbox called name: MCRDT_ENOTFOUND naming it. */
int st_find(mcrdt_store *s, const char *name, crdt_dot *guid);
/* The visible mailbox whose canonical member is guid: its info (name not
 * filled) and its name (caller frees); either may be NULL. MCRDT_ENOTFOUND
 * when guid is no longer the canonical member of a visible mailbox. */
int st_view(mcrdt_store *s, crdt_dot guid, struct crdt_mailbox_info *info, char **name);
void st_guid_hex(crdt_dot d, char out[33]);

/* Creates mailbox name (checked) on disk and in the model. MCRDT_EEXISTS. */
int st_create(mcrdt_store *s, const char *name, crdt_dot *guid);

/* ---- message files (files.c) ---- */

/* A shown message, copied out of the model (crdt_msgview pointers die at
 * the next change). Its base name and keywords live in one malloc'd block,
 * mem, that the record owns (st_msg_clear frees it): a record is 80 bytes
 * (x86-64), whatever the length of its name. A zeroed record has base NULL
 * and nothing to free; a cleared or filled one has base "" at least. */
struct st_msg {
	uint32_t uid;
	unsigned sys;             /* IMAP_* system flag bits */
	crdt_dot guid;
	uint64_t modseq;
	uint64_t size;
	int64_t date;
	const char *base;         /* "" when the meta does not decode */
	char **kw;                /* keywords */
	size_t nkw;
	void *mem;                /* holds base, kw and its strings */
};
void st_msg_clear(struct st_msg *x);
void st_msgs_free(struct st_msg *v, size_t n);
/* Copies a message out of the model into *x (whose old contents are not
 * freed). A meta that does not decode leaves base "". */
int st_msg_fill(struct st_msg *x, const struct crdt_msgview *mv);
/* Live message guid copied out (*mailbox, its view's name, malloc'd):
 * MCRDT_ENOTFOUND when it is not live. */
int st_msg_get(mcrdt_store *s, crdt_dot guid, struct st_msg *x, char **mailbox);
/* Gives x the base name base (base_len bytes) and keywords names, copied
 * into a new block; its old block goes (either may point into it). Out of
 * memory leaves x as it was. */
int st_msg_set(struct st_msg *x, const char *base, size_t base_len, const char *const *names, size_t n);
/* Moves src into *dst (whose old contents are not freed): dst takes its
 * block, and src is left a record without a name (base ""). */
void st_msg_move(struct st_msg *dst, struct st_msg *src);
/* The shown messages of view mbox with UIDs in set (NULL: all), ascending. */
int st_collect(mcrdt_store *s, crdt_dot mbox, const void *set, struct st_msg **out, size_t *n);
/* Whether x has keyword kw (IMAP keywords are case-insensitive). */
bool st_has_kw(const struct st_msg *x, const char *kw);

/* A folder's keyword letters are read once per call (md_keywords_load)
 * and looked up here; st_kw_assign gives the keywords that have none a
 * letter in dovecot-keywords (past 26, none: the op still carries them). */
char st_kw_letter(const struct md_keywords *kw, const char *name);
int st_kw_assign(mcrdt_store *s, const char *mailbox, struct md_keywords *kw, char *const *names, size_t n);
/* The Maildir info letters of system flags sys and keywords names. */
int st_letters(const struct md_keywords *kw, unsigned sys, char *const *names, size_t n,
	       char out[MD_FLAGS_MAX + 1]);
/* Finds a message's file in its folder: *file (caller frees), *in_new.
 * Tried in turn: the name our own renames give it, new/ under its base
 * name, the name the folder's scan listing holds (another program renamed
 * it, with letters we do not model), and only then a listing of the folder. */
int st_locate(mcrdt_store *s, const char *mailbox, const struct md_keywords *kw, const struct st_msg *x,
	      char **file, bool *in_new);
/* Calls act(s, mailbox, file, in_new, ctx) on x's file, located as
 * st_locate does, and again when act finds it gone (MCRDT_ENOTFOUND:
 * another program renamed it in between, as a mail reader setting a flag
 * does), a few times. act's result, or MCRDT_ENOTFOUND when there is no
 * file of x to be found. */
typedef int (*st_file_fn)(mcrdt_store *s, const char *mailbox, const char *file, bool in_new, void *ctx);
int st_with_file(mcrdt_store *s, const char *mailbox, const struct md_keywords *kw, const struct st_msg *x,
		 st_file_fn act, void *ctx);
/* Removes x's file (st_with_file); 0 when it is gone already. */
int st_remove_file(mcrdt_store *s, const char *mailbox, const struct md_keywords *kw, const struct st_msg *x);
/* Gives x's file the info letters (st_with_file), keeping the letters
 * other programs set that we do not model (mutt's P), and moves it to
 * folder to when that is not mailbox (to may be NULL). MCRDT_ENOTFOUND
 * when there is no file of x in mailbox. */
int st_refile(mcrdt_store *s, const char *mailbox, const struct md_keywords *kw, const struct st_msg *x,
	      const char *to, const char *letters);
/* Opens x's file for reading: *fd; *file (caller frees) and *in_new say
 * where it was, when file is not NULL. */
int st_open_body(mcrdt_store *s, const char *mailbox, const struct md_keywords *kw, const struct st_msg *x,
		 int *fd, char **file, bool *in_new);
/* Reads x's file whole into *data (malloc'd), as st_open_body. */
int st_read_body(mcrdt_store *s, const char *mailbox, const struct md_keywords *kw, const struct st_msg *x,
		 uint8_t **data, size_t *len, char **file, bool *in_new);
/* The keyword letters of the folders one call touches, each read once
 * (a few at a time). Zero-initialise; st_kwcache_get gives NULL with the
 * error set when the folder's cannot be read. */
#define ST_KWCACHE 8
struct st_kwcache {
	char *folder[ST_KWCACHE];
	struct md_keywords kw[ST_KWCACHE];
	unsigned next;
};
struct md_keywords *st_kwcache_get(mcrdt_store *s, struct st_kwcache *c, const char *folder);
void st_kwcache_free(struct st_kwcache *c);
/* The meta bytes of a message whose file is called file. */
struct vbuf;
int st_make_meta(const char *file, uint64_t size, int64_t date, struct vbuf *out);
/* The file changes of one call share their directory syncs: a Maildir
 * batch, unless the caller's own batch is open (it syncs at its commit).
 * st_files_end makes them durable (or, with rc, syncs and returns rc). */
int st_files_begin(mcrdt_store *s);
int st_files_end(mcrdt_store *s, int rc);
/* COPY (move false) or MOVE of msgs from folder srcname to the view dst:
 * files first, then ops; dst_uids (may be NULL) gets the new UIDs. */
int st_transfer(mcrdt_store *s, const char *srcname, const struct st_msg *msgs, size_t n, crdt_dot dst,
		const char *dstname, bool move, uint32_t *dst_uids);

/* ---- scan.c ---- */

/* Imports outside changes (the caller is inside st_begin). */
int st_scan(mcrdt_store *s, struct mcrdt_scan_report *rep);
void st_scans_free(mcrdt_store *s);
/* Keeps each folder's listing for the next handle (at close; see scan.c). */
void st_scans_save(mcrdt_store *s);
/* Removes the listings kept in metadir (after a log repair). */
void st_scans_drop_saved(const char *metadir);
/* What the last scan of mailbox saw (its listing sorted by base, read in
 * if it was not yet), or NULL when this handle has not scanned it or the
 * listing cannot be read in. Valid until the next scan or st_locate
 * (which may load another folder's listing). */
const struct md_scan_state *st_scan_state(mcrdt_store *s, const char *mailbox);
/* The file name mailbox's scan listing (this handle's, or the one kept for
 * the next handle) last saw for base, own changes folded in: a copy in
 * *file and *in_new, or MCRDT_ENOTFOUND. Only a guess: the caller opens it. */
int st_scan_guess(mcrdt_store *s, const char *mailbox, const char *base, char **file, bool *in_new);

/* ---- replication (apply.c, replicate.c) ---- */

/* Peers' ops a sync read, and the body blob of each message one created. */
struct st_body {
	crdt_dot guid;
	sync_oid oid;
};
struct st_incoming {
	crdt_oplist ops;
	struct st_body *bodies;
	size_t nbodies, capbodies;
};
void st_incoming_free(struct st_incoming *in);

struct st_apply_stats {
	uint64_t ops_received;      /* applied (not duplicates, not buffered) */
	uint64_t messages_received; /* files delivered from bodies */
	uint64_t bytes_received;
	uint64_t claims;            /* fresh UID claims the settle issued */
	uint64_t duplicates;        /* copies of one message merged */
};
/* Applies peers' ops (inside st_begin): model, log, then the Maildir,
 * through a journal (see apply.c). On an error before the log write the
 * replica is unchanged (the handle reloads). g gives the bodies. in->ops
 * is used up (it ends holding what was logged): only freeing is left. */
int st_apply(mcrdt_store *s, sync_git *g, struct st_incoming *in, struct st_apply_stats *st);
/* Finishes (or drops) the journal a crashed or failed apply left; 0 when
 * there is none. */
int st_journal_recover(mcrdt_store *s);

#endif
