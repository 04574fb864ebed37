/*
 * maildir/maildir.h — the file layer: a Maildir++ tree that Dovecot,
 * mblaze, mutt and notmuch can share with us.
 *
 * It knows nothing of ops or CRDTs. It owns: unique file names, durable
 * delivery (tmp/ with O_EXCL, fsync, rename, fsync of the directory),
 * flags in the ":2," info and keywords through dovecot-keywords, folder
 * directories (".Name.Sub", modified UTF-7), scanning for outside changes,
 * tmp/ cleanup, and safe paths: every file is reached through openat()
 * from the root with O_NOFOLLOW, never through a symlink.
 *
 * Mailbox names use '/' as the hierarchy separator and UTF-8; "INBOX"
 * (any case) is the root. A name component may not contain '.', the
 * Maildir++ separator.
 *
 * Errors: 0 or a negative MCRDT_E... code with mcrdt_error_last() set.
 * Not thread-safe: one md handle per thread. Several processes may use one
 * tree: delivery and flag renames are atomic renames.
 */
#ifndef MCRDT_MAILDIR_H
#define MCRDT_MAILDIR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <sys/stat.h>

typedef struct md md;

/* The engine's own directory under the root: Maildir++ readers list only
 * entries that start with '.', so this is never taken for a folder. */
#define MD_META_DIR "mcrdt"
/* Files in tmp/ older than this are leftovers of a crashed delivery. */
#define MD_TMP_MAX_AGE (36 * 3600)
#define MD_FLAGS_MAX 64    /* letters in one info */

enum {
	MD_CREATE = 1,     /* md_open: make root, cur/, new/, tmp/ if missing */
};

int md_open(md **out, const char *root, unsigned flags);
void md_close(md *md);
const char *md_root(const md *md);
/* An fd of the metadata directory (created 0700 if missing); md owns it. */
int md_meta_dir(md *md, int *fd_out);

/* ---- names ---- */

/* A new unique base name "sec.MusecPpidQn.host,S=size" into buf. */
int md_unique_name(char *buf, size_t size, size_t msg_size);

struct md_info {
	size_t base_len;    /* bytes of the base name (before ':') */
	char flags[MD_FLAGS_MAX + 1]; /* info letters, ASCII order, no duplicates */
	bool has_info;      /* ":2," present */
	const char *problem;/* NULL, or why the name is malformed (left alone) */
};
/* Splits a file name into base and flags. Never fails: a malformed info is
 * reported in problem. */
void md_info_parse(const char *file, struct md_info *out);
/* Sorts and de-duplicates letters into out (size MD_FLAGS_MAX + 1).
 * MCRDT_EINVAL for anything but ASCII letters. */
int md_flags_normalize(const char *letters, char *out);
/* The size a base name records in ",S=", or -1. */
int64_t md_name_size(const char *file);

/* ---- folders ---- */

/* The directory name of a mailbox ("" for INBOX, ".A.B" for "A/B"); the
 * caller frees it. MCRDT_EINVAL for a name that cannot be a folder. */
int md_folder_dir(const char *mailbox, char **dir_out);
/* The mailbox name of a folder directory (the inverse); caller frees. */
int md_folder_name(const char *dir, char **mailbox_out);
/* Mailboxes present on disk, INBOX first, the rest sorted; free with
 * md_strv_free. */
int md_folder_list(md *md, char ***names_out, size_t *n_out);
void md_strv_free(char **v, size_t n);
/* Creates mailbox's folder (tmp/, new/, cur/ and the Maildir++ marker),
 * synced; a directory already there gets what it lacks. MCRDT_EEXISTS
 * when it lacked nothing; MCRDT_EIO when something that is not a
 * directory holds a name it needs (md_folder_check). */
int md_folder_create(md *md, const char *mailbox);
/* 0 when mailbox's folder exists or can be made (a directory there is
 * completed); else MCRDT_EIO naming the file or link that holds its name
 * or the name of its tmp/, new/ or cur/, or md_folder_dir's error for a
 * bad name. */
int md_folder_check(md *md, const char *mailbox);
/* Removes one folder and its messages; its children stay. */
int md_folder_delete(md *md, const char *mailbox);
/* Renames a folder and all its children. MCRDT_EEXISTS if a target exists. */
int md_folder_rename(md *md, const char *from, const char *to);

/* ---- delivery and flags ---- */

struct md_deliver_opts {
	unsigned version;
	const char *base;   /* keep this base name (a copy from a peer), or NULL; a
			     * file of that name left in tmp/ is an earlier attempt
			     * at this delivery that died, and is replaced */
	const char *flags;  /* info letters; non-NULL delivers to cur/ */
	int64_t mtime;      /* internal date (seconds), or -1 for now */
	int src_dir;        /* with src_name: the message is that file, */
	const char *src_name; /* complete, moved in (data unused, len its size) */
};
#define MD_DELIVER_OPTS_VERSION 1
#define MD_DELIVER_OPTS_INIT { MD_DELIVER_OPTS_VERSION, NULL, NULL, -1, -1, NULL }

/*
 * Delivers one message durably: written to tmp/ (O_EXCL, 0600; or moved
 * there, see below), fsynced,
 * renamed into new/ (or cur/ with flags) without replacing anything, and
 * the directory fsynced. *file_out (may be NULL) gets the final file name.
 * In a batch the message becomes visible at md_batch_commit.
 * MCRDT_EEXISTS if the name is taken; MCRDT_ENOSPC when the disk is full.
 * With opts->src_name the message is not written but moved: the file
 * src_name of directory src_dir (which must be on the Maildir's mount:
 * MCRDT_EIO with EXDEV otherwise) is checked, dated, made durable and
 * renamed into place from where it is, without passing through tmp/. In a
 * batch it stays in src_dir until the commit renames it: the caller keeps
 * src_dir open and leaves the file alone until the batch ends, and a
 * second delivery of that file in the batch gets MCRDT_ENOTFOUND, as if
 * the first had taken it. MCRDT_EINVAL
 * without opts->base, MCRDT_ENOTFOUND when it is not there, MCRDT_ECORRUPT
 * (and the file removed) when it is not a regular file of len bytes. On
 * an error the file may be gone: the caller keeps the message's bytes
 * elsewhere to try again.
 */
int md_deliver(md *md, const char *mailbox, const void *data, size_t len,
	       const struct md_deliver_opts *opts, char **file_out);
/* Batch mode: deliveries share one data sync and one fsync per directory.
 * A commit is all or nothing: if one file cannot be put in place, those
 * already placed are taken back and the error returned. md_set_flags and
 * md_remove act at once in a batch, but the directories they changed are
 * synced once at its end (commit or abort), not once per file. A file
 * delivered in the batch is found under the name it will have:
 * md_open_message reads it, md_set_flags and md_move change the name it
 * gets at the commit, md_remove drops it. Folder renames and deletes are
 * refused while a batch is open. */
int md_batch_begin(md *md);
/* Folders one batch's deliveries may go to (MCRDT_ERANGE past it). */
#define MD_BATCH_FOLDERS 8
int md_batch_commit(md *md);
/* Drops the batch's undelivered files from tmp/ and syncs the directories
 * its flag renames and removals changed. */
void md_batch_abort(md *md);

/*
 * Gives a message new flags by renaming it into cur/ as base:2,flags.
 * file is its current name (in new/ when in_new). MCRDT_ENOTFOUND when
 * it is gone (someone else renamed or removed it: rescan).
 */
int md_set_flags(md *md, const char *mailbox, const char *file, bool in_new,
		 const char *flags, char **file_out);
/*
 * Moves a message file from folder from to folder to's cur/ as
 * base:2,flags, without replacing anything (both directories synced, or
 * at the batch's end). MCRDT_ENOTFOUND when it is gone, MCRDT_EEXISTS
 * when the target name is taken.
 */
int md_move(md *md, const char *from, const char *file, bool in_new, const char *to, const char *flags,
	    char **file_out);
/* Removes a message file (MCRDT_ENOTFOUND if already gone). */
int md_remove(md *md, const char *mailbox, const char *file, bool in_new);
/* Opens a message for reading (O_NOFOLLOW, a regular file only): *fd_out,
 * and its fstat in *st_out when st_out is not NULL. */
int md_open_message(md *md, const char *mailbox, const char *file, bool in_new, int *fd_out, struct stat *st_out);

/* ---- keywords (dovecot-keywords: letter 'a' + n names keyword n) ---- */

struct md_keywords {
	char *names[26];
};
int md_keywords_load(md *md, const char *mailbox, struct md_keywords *out);
void md_keywords_free(struct md_keywords *kw);
/* The letter of keyword, assigning a free one (file replaced atomically)
 * if it has none. MCRDT_ETOOBIG when all 26 are taken. */
int md_keyword_letter(md *md, const char *mailbox, const char *keyword, char *letter_out);

/* ---- scanning ---- */

struct md_entry {
	char *file;          /* name in new/ or cur/ */
	size_t base_len;
	bool in_new;
	char flags[MD_FLAGS_MAX + 1];
	/* md_list stats every file. md_scan's listing (md_scan_state.last) does
	 * not: there size is ",S=" or -1, mtime -1, and an empty file has no
	 * problem yet; the entries of its changes are stat'ed. */
	int64_t size;        /* from ",S=" when present, else stat */
	int64_t mtime;       /* seconds: the internal date */
	const char *problem; /* NULL, or why this file is not a usable message:
			      * md_problem_empty, or one its name or type gives */
	unsigned pass;       /* internal: the listing pass that saw it */
};

/* The problem of an empty file: the only one a file can lose without its
 * directory entry changing (its content written in place). */
extern const char md_problem_empty[];

struct md_listing {
	struct md_entry *e;  /* sorted by base name */
	size_t n, cap;
};
void md_listing_free(struct md_listing *l);

/* Every message file of a folder, consistent even while others rename. */
int md_list(md *md, const char *mailbox, struct md_listing *out);

enum md_change_kind { MD_ADDED, MD_FLAGS_CHANGED, MD_VANISHED };
struct md_change {
	enum md_change_kind kind;
	struct md_entry entry; /* the file now (for VANISHED: as last seen) */
};
struct md_changes {
	struct md_change *c;
	size_t n, cap;
};
void md_changes_free(struct md_changes *c);

/* What a folder looked like at the last scan. Zero-initialise it. */
struct md_scan_state {
	struct md_listing last;
	int64_t new_mtime_ns, cur_mtime_ns;
	int64_t scanned_at_ns; /* when the listing began (on the mtimes' clock), or 0 */
	bool valid;
	unsigned rescans;    /* folders actually re-read (for tests, benches) */
	unsigned dirs_read;  /* of their new/ and cur/, those read (the same) */
	unsigned version;    /* moves whenever last changes (a re-read, a fold) */
	uint8_t *packed;     /* last, not read in yet (md_scan_state_adopt) */
	size_t packed_at, packed_end;
};
void md_scan_state_free(struct md_scan_state *st);

/* l's entries as bytes, appended to out: their count, then each one's
 * in_new and file name (varints and bytes, common/varint.h). */
struct vbuf;
void md_listing_pack(const struct md_listing *l, struct vbuf *out);
/*
 * Makes the listing md_listing_pack wrote into bytes [at, end) of buf st's
 * last, taking buf (malloc'd; st frees it, whatever the outcome). Only the
 * form is checked now (sorted by base name, each base once, names a
 * directory can hold); the names are parsed when a scan has to compare, a
 * fold has changes to take in, or md_scan_state_ready asks, so a scan that
 * finds the folder quiet costs nothing per file. false: not that form, st
 * unchanged.
 */
bool md_scan_state_adopt(struct md_scan_state *st, uint8_t *buf, size_t at, size_t end);
/* Reads an adopted listing in, when not done yet: 0, or MCRDT_ENOMEM (st
 * as it was). Before a caller looks at st->last itself. */
int md_scan_state_ready(struct md_scan_state *st);
/*
 * Changes since st was last filled: new files, flag renames (new/ to cur/
 * included), vanished files. A folder is not re-read when nothing but the
 * handle's own settled changes happened in it since: from a folder's
 * second scan on, the handle watches it with inotify (one instance per
 * handle; not on NFS, SMB, FUSE and other file systems other machines
 * change, which inotify does not report), and before that or without
 * inotify a folder whose directories are unchanged since a scan that ran
 * in a later second counts as quiet. So a scan with no news costs O(1)
 * per folder, not O(messages); a re-read costs a readdir and a stat per
 * change, not per file. out may be NULL: st is refreshed and nothing
 * is reported (a first look, compared by the caller).
 */
int md_scan(md *md, const char *mailbox, struct md_scan_state *st, struct md_changes *out);

/*
 * The handle's own changes. md_deliver (and a batch's commit), md_set_flags,
 * md_move and md_remove note each file they put in place, rename or
 * remove. md_own_settle(md, true) says the caller has recorded them
 * durably (its ops are logged): from then on md_scan folds them into the
 * folder's last listing before it compares, so a scan reports only what
 * other programs did, and the caller need not look at its own files again.
 * md_own_settle(md, false) forgets the unsettled ones (a call that failed
 * after writing files): the next scan reports those files as changes, as
 * if another program had made them. The folder is still listed whenever its
 * directories' mtimes moved, so a change by another program is never
 * missed, whatever happens to the same file. Not thread-safe (the handle's).
 */
void md_own_settle(md *md, bool keep);
/* Up to max names of the mailboxes that have settled own changes not yet
 * folded into a scan state; the names are md's, valid until its next call. */
size_t md_own_mailboxes(md *md, const char **out, size_t max);
/* Folds the settled own changes to mailbox into st now (md_scan does it
 * first thing), after reading the queued watch events they explain: for a
 * caller about to keep st for a later handle, or to look a file up in it
 * (after md_scan_state_ready). */
int md_scan_fold(md *md, const char *mailbox, struct md_scan_state *st);
/* The next scan of mailbox reads its folder, whatever its watch saw: for
 * a caller that drops the state it scanned into and goes on from an older
 * one (whose listing lacks what the watch has been vouching for since). */
void md_scan_forget(md *md, const char *mailbox);
/* Takes the entries of st->last marked in drop (one flag per entry) out
 * of the listing: the next scan reads the folder and reports those files
 * again (a file skipped as not yet a message may get its content without
 * a rename). */
void md_scan_unsee(struct md_scan_state *st, const bool *drop);
/* e as md_scan's listing describes file (in new/ or cur/): flags and base
 * from its name, size from ",S=" or -1, mtime -1. e->file is file itself,
 * not a copy. */
void md_entry_describe(struct md_entry *e, const char *file, bool in_new);
/* The order of md_listing: by base name. */
int md_entry_cmp(const struct md_entry *a, const struct md_entry *b);
/* The entry of base name base (len bytes) in the sorted l, or NULL. */
struct md_entry *md_listing_find(const struct md_listing *l, const char *base, size_t len);

/* Removes files in tmp/ whose mtime and ctime are both older than
 * MD_TMP_MAX_AGE at time now (a delivery in progress may have set its
 * file's mtime to an old internal date, never its ctime). */
int md_tmp_clean(md *md, const char *mailbox, int64_t now, size_t *removed_out);

#endif
