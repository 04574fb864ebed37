/*
 * mcrdt/store.h — the engine: one user's mail as a Maildir, every change an
 * op in a durable log, ready to replicate.
 *
 * A store is a Maildir++ directory (INBOX at the root, ".A.B" folders) with
 * the engine's own files in "mcrdt/" under it: the replica id, the op log
 * and snapshots. Other Maildir tools (Dovecot, mutt, mblaze, notmuch) keep
 * working on the same directory; their changes become ops at the next
 * mcrdt_store_scan.
 *
 * Names: mailbox names are UTF-8 with '/' as the hierarchy separator;
 * "INBOX" (any case) always exists. Flags are IMAP flags: the system flags
 * \Seen \Answered \Flagged \Deleted \Draft (any case on input, canonical on
 * output) and keywords (IMAP atoms such as $Junk). Sets of messages are
 * IMAP sequence sets ("1:5,7,9:*") of UIDs or of sequence numbers.
 *
 * Errors: every function returning int returns 0 or a negative MCRDT_E...
 * code, and mcrdt_error_last() gives the calling thread's one-line message.
 * A failed call changes nothing, unless its comment says otherwise.
 *
 * Durability: a call that changes the store returns after its message file
 * and its ops are on disk (fsync), unless the store was opened with
 * no_fsync or the call is inside a batch (then at mcrdt_store_batch_commit).
 *
 * Processes: several processes may open one store at once (an IMAP server,
 * a delivery agent, the mcrdt command). Changes are serialised by a lock
 * file in mcrdt/; each call first takes in what the others wrote, so every
 * handle sees every committed change. A call waits for the lock up to
 * lock_timeout_ms, then fails with MCRDT_ELOCKED.
 *
 * Threads: one mcrdt_store handle may be used from several threads; calls
 * on it are serialised by a mutex inside. An mcrdt_mailbox handle belongs
 * to one thread at a time (like an IMAP session). Callbacks run on the
 * thread of the call that triggered them, with the store's mutex held:
 * they must not call back into the store.
 */
#ifndef MCRDT_STORE_H
#define MCRDT_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "mcrdt/common.h"

MCRDT_BEGIN_DECL

typedef struct mcrdt_store mcrdt_store;
/* A selected mailbox: its sequence numbers, as an IMAP session sees them. */
typedef struct mcrdt_mailbox mcrdt_mailbox;

/* ---- opening ---- */

enum mcrdt_open_flag {
	/* Create the store if dir holds none: the Maildir (cur/ new/ tmp/) is
	 * made if missing, and an existing Maildir is adopted, every message
	 * and folder imported once. */
	MCRDT_OPEN_CREATE = 1 << 0,
};

struct mcrdt_open_opts {
	unsigned version;          /* MCRDT_OPEN_OPTS_VERSION */
	unsigned flags;            /* enum mcrdt_open_flag bits */
	const char *name;          /* at creation: the replica's readable name (default: host name) */
	uint64_t append_limit;     /* largest message accepted in bytes (IMAP APPENDLIMIT); 0: none */
	unsigned lock_timeout_ms;  /* how long a call waits for another process; 0: fail at once */
	bool no_fsync;             /* explicit: changes are not made durable (tests, bulk loads) */
};
#define MCRDT_OPEN_OPTS_VERSION 1
#define MCRDT_OPEN_OPTS_INIT { MCRDT_OPEN_OPTS_VERSION, 0, NULL, 0, 30000, false }

/*
 * Opens the store in dir. opts may be NULL (defaults, no creation).
 * *out is the caller's; close it with mcrdt_store_close.
 * MCRDT_ENOTFOUND when dir holds no store (and MCRDT_OPEN_CREATE is not
 * set); MCRDT_ECORRUPT (naming the file and offset) or MCRDT_EVERSION for a
 * damaged or newer log or snapshot, with nothing touched (see mcrdt_fsck);
 * MCRDT_ELOCKED when another process holds the lock past the timeout or
 * is repairing the store; MCRDT_EIO; MCRDT_EINVAL for a bad option.
 * A sync cut short (a crash, a full disk) is finished here. One that
 * cannot be finished yet does not fail the open: reads work, and every
 * change tries it again first and fails with its cause until it can.
 */
MCRDT_EXTERN(int) mcrdt_store_open(mcrdt_store **out, const char *dir, const struct mcrdt_open_opts *opts);

/* Closes the store (NULL is fine), writing a snapshot first when the log
 * has grown enough since the last one, so the next open is quick. Any open
 * batch is committed; mailbox handles must be closed before. */
MCRDT_EXTERN(void) mcrdt_store_close(mcrdt_store *s);

struct mcrdt_store_info {
	uint64_t replica;          /* this replica's id */
	char name[64];             /* its readable name */
	uint64_t highestmodseq;    /* of the whole store */
	uint64_t messages;         /* live messages in all mailboxes */
	uint64_t log_records;      /* records in the op log */
	uint64_t pending;          /* peers' ops waiting for their dependencies */
	uint64_t append_limit;     /* as opened; 0: none */
	uint64_t memory;           /* bytes of metadata held in memory */
};
/* Fills *out. Thread-safe. */
MCRDT_EXTERN(int) mcrdt_store_info(mcrdt_store *s, struct mcrdt_store_info *out);

/*
 * Batches: between begin and commit, appends and other changes take the
 * store's lock once and share one log fsync and one Maildir sync; their
 * effects are durable when mcrdt_store_batch_commit returns. A message
 * appended in a batch can be flagged, copied and expunged before the
 * commit like any other (its file waits in tmp/ and gets its final name,
 * or goes, at the commit). Mailbox create, delete and rename and MOVE are
 * refused (MCRDT_EINVAL) inside a batch. Other processes wait for the
 * lock until the commit. Batches do not nest.
 */
MCRDT_EXTERN(int) mcrdt_store_batch_begin(mcrdt_store *s);
MCRDT_EXTERN(int) mcrdt_store_batch_commit(mcrdt_store *s);

/* ---- outside changes and notifications ---- */

struct mcrdt_scan_report {
	uint64_t added;            /* files found that no op knew: imported */
	uint64_t flags_changed;    /* flag renames by other tools */
	uint64_t vanished;         /* files removed by other tools: expunged */
	uint64_t folders_added;    /* folders made by other tools */
	uint64_t folders_removed;  /* folders removed by other tools */
	uint64_t skipped;          /* files that are not usable messages (left alone) */
};
/*
 * Imports changes other tools made to the Maildir since the last scan: new
 * files and folders become appends and creates, flag renames become flag
 * changes, removed files and folders become expunges and deletes. out may be NULL.
 * A folder is read again only when another program changed it: from its
 * second scan on, a handle watches it with inotify (one instance per
 * handle, taken at the first such scan; before that, without one, or on
 * NFS, SMB, FUSE and other file systems other machines change, whose
 * changes inotify does not report, a changed new/ or cur/ mtime counts as
 * a change, and only the one of the two whose mtime moved is read, when
 * no file left it). Files the store wrote itself are not looked at again,
 * and a handle starts from the listing the last handle kept (mcrdt/scan-*,
 * rewritten at close only when it changed), so the cost follows the
 * changes, not the folder's size, beyond one read per changed directory.
 */
MCRDT_EXTERN(int) mcrdt_store_scan(mcrdt_store *s, struct mcrdt_scan_report *out);

/*
 * A descriptor that becomes readable when the store may have changed: an
 * op from another process or replica reached the log, or a file or folder
 * changed in the Maildir. poll() it, then call mcrdt_store_refresh. The
 * store owns it; it stays valid until mcrdt_store_close.
 */
MCRDT_EXTERN(int) mcrdt_store_notify_fd(mcrdt_store *s, int *fd_out);

enum mcrdt_refresh_flag {
	MCRDT_REFRESH_SCAN = 1 << 0, /* also import outside Maildir changes */
};
/* Drains the notify descriptor and takes in what other processes
 * committed (and, with MCRDT_REFRESH_SCAN, outside changes). */
MCRDT_EXTERN(int) mcrdt_store_refresh(mcrdt_store *s, unsigned flags);

/*
 * Called with a mailbox's name and new HIGHESTMODSEQ whenever a change to
 * it becomes durable or is taken in: from this handle, another process, a
 * peer or a scan. An IMAP server wakes its IDLE sessions from here and then
 * calls mcrdt_mailbox_sync. fn NULL turns it off. Runs with the store's
 * mutex held: it must not call into the store.
 */
typedef void (*mcrdt_notify_fn)(void *ctx, const char *mailbox, uint64_t highestmodseq);
MCRDT_EXTERN(int) mcrdt_store_set_notify(mcrdt_store *s, mcrdt_notify_fn fn, void *ctx);

/* ---- mailboxes ---- */

enum mcrdt_mailbox_attr {
	MCRDT_MBOX_SUBSCRIBED = 1 << 0,
	MCRDT_MBOX_HASCHILDREN = 1 << 1,
	MCRDT_MBOX_HASNOCHILDREN = 1 << 2,
	/* Listed only because it is subscribed or has children (\NonExistent). */
	MCRDT_MBOX_NONEXISTENT = 1 << 3,
	/* Special use (RFC 6154), from the top-level name: Sent, Sent Messages,
	 * Sent Items; Drafts; Trash, Deleted Messages, Deleted Items; Junk,
	 * Spam; Archive (any case). */
	MCRDT_MBOX_SENT = 1 << 4,
	MCRDT_MBOX_DRAFTS = 1 << 5,
	MCRDT_MBOX_TRASH = 1 << 6,
	MCRDT_MBOX_JUNK = 1 << 7,
	MCRDT_MBOX_ARCHIVE = 1 << 8,
};

struct mcrdt_mailbox_info {
	char *name;
	char guid[33];             /* hex, the same on every replica; "" when nonexistent */
	uint32_t uidvalidity;      /* 0 when nonexistent */
	unsigned attrs;            /* enum mcrdt_mailbox_attr bits */
};
/* Every mailbox, subscribed name and implied parent, sorted by name, INBOX
 * first. Free with mcrdt_mailbox_list_free. */
MCRDT_EXTERN(int) mcrdt_mailbox_list(mcrdt_store *s, struct mcrdt_mailbox_info **out, size_t *n);
MCRDT_EXTERN(void) mcrdt_mailbox_list_free(struct mcrdt_mailbox_info *v, size_t n);

/*
 * Creates a mailbox (a trailing '/' is dropped). MCRDT_EEXISTS if it
 * exists (INBOX always does); MCRDT_EINVAL for a name that is empty, has an
 * empty component, '.', "..", a control character or invalid UTF-8, or is
 * longer than 1024 bytes.
 */
MCRDT_EXTERN(int) mcrdt_mailbox_create(mcrdt_store *s, const char *name);
/* Deletes a mailbox and expunges its messages; its children stay.
 * MCRDT_ENOTFOUND; MCRDT_EINVAL for INBOX. */
MCRDT_EXTERN(int) mcrdt_mailbox_delete(mcrdt_store *s, const char *name);
/*
 * Renames a mailbox and its children ("A" to "B" takes "A/x" to "B/x").
 * MCRDT_EEXISTS if a target name exists; MCRDT_EINVAL to move a mailbox
 * under itself. Renaming INBOX moves its messages into a new mailbox and
 * leaves INBOX empty, as IMAP says.
 */
MCRDT_EXTERN(int) mcrdt_mailbox_rename(mcrdt_store *s, const char *from, const char *to);
/* Adds or removes a name in the subscriptions; the mailbox need not exist. */
MCRDT_EXTERN(int) mcrdt_mailbox_subscribe(mcrdt_store *s, const char *name, bool on);

struct mcrdt_status {
	uint32_t messages;
	uint32_t uidnext;
	uint32_t uidvalidity;
	uint32_t unseen;           /* messages without \Seen */
	uint32_t deleted;          /* messages with \Deleted */
	uint64_t size;             /* bytes of all messages */
	uint64_t highestmodseq;
};
/* STATUS of a mailbox. MCRDT_ENOTFOUND. */
MCRDT_EXTERN(int) mcrdt_mailbox_status(mcrdt_store *s, const char *name, struct mcrdt_status *out);

/* ---- messages ---- */

enum mcrdt_sysflag {
	MCRDT_FLAG_SEEN = 1 << 0,
	MCRDT_FLAG_ANSWERED = 1 << 1,
	MCRDT_FLAG_FLAGGED = 1 << 2,
	MCRDT_FLAG_DELETED = 1 << 3,
	MCRDT_FLAG_DRAFT = 1 << 4,
};

struct mcrdt_append_opts {
	unsigned version;          /* MCRDT_APPEND_OPTS_VERSION */
	const char *const *flags;  /* IMAP flags and keywords */
	size_t nflags;
	int64_t internaldate;      /* seconds since the epoch; -1: now */
};
#define MCRDT_APPEND_OPTS_VERSION 1
#define MCRDT_APPEND_OPTS_INIT { MCRDT_APPEND_OPTS_VERSION, NULL, 0, -1 }

/*
 * Appends a message (len bytes at data) to mailbox: delivered durably into
 * the Maildir and logged. *uidvalidity_out and *uid_out (either may be
 * NULL) get its UID (APPENDUID). opts may be NULL. MCRDT_ENOTFOUND for a
 * missing mailbox (IMAP TRYCREATE); MCRDT_ETOOBIG over the append limit;
 * MCRDT_EINVAL for an invalid flag; MCRDT_ENOSPC when the disk is full.
 */
MCRDT_EXTERN(int) mcrdt_append(mcrdt_store *s, const char *mailbox, const void *data, size_t len,
			      const struct mcrdt_append_opts *opts, uint32_t *uidvalidity_out,
			      uint32_t *uid_out);

/*
 * Selects a mailbox: *out holds its messages' sequence numbers as of now,
 * and keeps them until mcrdt_mailbox_sync, as an IMAP session does.
 * MCRDT_ENOTFOUND. Close with mcrdt_mailbox_close.
 */
MCRDT_EXTERN(int) mcrdt_mailbox_select(mcrdt_store *s, const char *name, mcrdt_mailbox **out);
MCRDT_EXTERN(void) mcrdt_mailbox_close(mcrdt_mailbox *mb);

struct mcrdt_select_info {
	uint32_t exists;           /* messages in the handle's view */
	uint32_t uidvalidity;
	uint32_t uidnext;
	uint64_t highestmodseq;
};
MCRDT_EXTERN(int) mcrdt_mailbox_info(mcrdt_mailbox *mb, struct mcrdt_select_info *out);

/* What changed since the handle's view was last synced. */
struct mcrdt_sync {
	uint32_t *expunged;        /* sequence numbers, highest first: send as EXPUNGE in this order */
	size_t nexpunged;
	uint32_t *changed;         /* UIDs whose flags changed (still in the view) */
	size_t nchanged;
	uint32_t exists;           /* messages now (EXISTS) */
	uint32_t uidnext;
	uint64_t highestmodseq;
	bool uidvalidity_changed;  /* the mailbox was replaced: the session must end */
};
/*
 * Brings the handle's view up to date (new messages, expunges, flag
 * changes from any source) and reports the difference; sequence numbers
 * shift only here. Free *out with mcrdt_sync_free. MCRDT_ENOTFOUND when
 * the mailbox was deleted.
 */
MCRDT_EXTERN(int) mcrdt_mailbox_sync(mcrdt_mailbox *mb, struct mcrdt_sync *out);
MCRDT_EXTERN(void) mcrdt_sync_free(struct mcrdt_sync *r);

/* How a set argument is read. Either way a set names only messages of the
 * handle's view (as of its select or last mcrdt_mailbox_sync), as an IMAP
 * session may only name messages it was told about: sync first to reach
 * messages that arrived since. */
enum mcrdt_set_kind {
	MCRDT_SEQ = 0,             /* sequence numbers of the handle's view */
	MCRDT_UID = 1,             /* UIDs */
};

struct mcrdt_message {
	uint32_t seq, uid;
	char guid[33];             /* hex, the same on every replica */
	unsigned sysflags;         /* enum mcrdt_sysflag bits */
	char **flags;              /* every flag, system flags first ("\\Seen"), then keywords */
	size_t nflags;
	uint64_t size;
	int64_t internaldate;      /* seconds since the epoch */
	uint64_t modseq;
};
/*
 * The messages of set (invalid: MCRDT_EINVAL), in sequence order; numbers
 * that name no message are skipped. Free with mcrdt_messages_free.
 */
MCRDT_EXTERN(int) mcrdt_fetch(mcrdt_mailbox *mb, const char *set, enum mcrdt_set_kind kind,
			     struct mcrdt_message **out, size_t *n);
MCRDT_EXTERN(void) mcrdt_messages_free(struct mcrdt_message *v, size_t n);

/* The body of message uid, open for reading; the caller closes *fd_out.
 * The descriptor keeps working when the file is renamed or expunged. */
MCRDT_EXTERN(int) mcrdt_message_open(mcrdt_mailbox *mb, uint32_t uid, int *fd_out);
/* The file's path now (caller frees); valid until a flag change renames it. */
MCRDT_EXTERN(int) mcrdt_message_path(mcrdt_mailbox *mb, uint32_t uid, char **path_out);

enum mcrdt_flags_mode {
	MCRDT_FLAGS_ADD = 1,       /* +FLAGS */
	MCRDT_FLAGS_REMOVE,        /* -FLAGS */
	MCRDT_FLAGS_SET,           /* FLAGS */
};
/*
 * STORE: changes the flags of the messages of set. With unchangedsince > 0
 * (CONDSTORE), a message whose MODSEQ is above it is left alone and its
 * UID listed in *modified (may be NULL; caller frees), the others change.
 * MCRDT_EINVAL for an invalid set or flag.
 */
MCRDT_EXTERN(int) mcrdt_store_flags(mcrdt_mailbox *mb, const char *set, enum mcrdt_set_kind kind,
				   enum mcrdt_flags_mode mode, const char *const *flags, size_t nflags,
				   uint64_t unchangedsince, uint32_t **modified, size_t *nmodified);

/* COPYUID: source UIDs and the UIDs their copies got, pairwise. */
struct mcrdt_copyuid {
	uint32_t uidvalidity;      /* of the destination */
	uint32_t *src, *dst;
	size_t n;
};
/*
 * COPY (move false) or MOVE of the messages of set into mailbox dest, with
 * their flags. out may be NULL; free it with mcrdt_copyuid_free.
 * MCRDT_ENOTFOUND when dest does not exist.
 */
MCRDT_EXTERN(int) mcrdt_copy(mcrdt_mailbox *mb, const char *set, enum mcrdt_set_kind kind,
			    const char *dest, bool move, struct mcrdt_copyuid *out);
MCRDT_EXTERN(void) mcrdt_copyuid_free(struct mcrdt_copyuid *c);

enum mcrdt_expunge_flag {
	MCRDT_EXPUNGE_ANY = 1 << 0, /* expunge the set whether or not \Deleted is set */
};
/*
 * EXPUNGE (uidset NULL: every message with \Deleted) or UID EXPUNGE
 * (the messages of uidset that have \Deleted). *uids (may be NULL; caller
 * frees) gets the expunged UIDs. The handle's sequence numbers shift at
 * the next mcrdt_mailbox_sync.
 */
MCRDT_EXTERN(int) mcrdt_expunge(mcrdt_mailbox *mb, const char *uidset, unsigned flags, uint32_t **uids,
			       size_t *n);

/* SEARCH criteria, all of which must hold. */
struct mcrdt_search {
	unsigned version;          /* MCRDT_SEARCH_VERSION */
	const char *uidset;        /* NULL: any */
	const char *seqset;        /* NULL: any */
	unsigned sys_set;          /* system flags that must be set */
	unsigned sys_unset;        /* system flags that must not be set */
	const char *const *keywords;   /* must all be set */
	size_t nkeywords;
	const char *const *unkeywords; /* must all be unset */
	size_t nunkeywords;
	int64_t since;             /* internal date >= since */
	int64_t before;            /* internal date < before */
	uint64_t larger;           /* size > larger */
	uint64_t smaller;          /* size < smaller; 0: no limit */
	uint64_t modseq;           /* MODSEQ >= modseq (0: any) */
};
#define MCRDT_SEARCH_VERSION 1
#define MCRDT_SEARCH_INIT { MCRDT_SEARCH_VERSION, NULL, NULL, 0, 0, NULL, 0, NULL, 0, INT64_MIN, INT64_MAX, 0, 0, 0 }
/* The UIDs of the messages that match, ascending; caller frees *uids. */
MCRDT_EXTERN(int) mcrdt_search(mcrdt_mailbox *mb, const struct mcrdt_search *q, uint32_t **uids, size_t *n);

/*
 * QRESYNC: the UIDs expunged from the mailbox (or moved to another UID)
 * after modseq, ascending; caller frees *uids. Messages changed after a
 * modseq are found with mcrdt_search (modseq + 1).
 */
MCRDT_EXTERN(int) mcrdt_vanished(mcrdt_mailbox *mb, uint64_t modseq, uint32_t **uids, size_t *n);

/* ---- the log and its health ---- */

struct mcrdt_log_entry {
	uint64_t index;            /* record number in the log */
	uint64_t replica;          /* the op's issuer */
	uint64_t counter;          /* its counter at the issuer */
	const char *type;          /* "append", "flags-add", ... */
	const char *text;          /* the whole op on one line */
};
/* Calls fn for every log record from index from on; a non-zero return
 * stops and is returned. Pointers are valid during the call only. */
typedef int (*mcrdt_log_fn)(void *ctx, const struct mcrdt_log_entry *e);
MCRDT_EXTERN(int) mcrdt_log_each(mcrdt_store *s, uint64_t from, mcrdt_log_fn fn, void *ctx);

struct mcrdt_fsck_report {
	uint64_t records;          /* good log records */
	uint64_t torn_bytes;       /* bytes cut (or to cut) off the end */
	uint64_t missing_files;    /* messages whose file is gone */
	uint64_t untracked_files;  /* message files no op knows (a scan adopts them) */
	unsigned set_aside;        /* files a repair renamed to *.damaged */
	char damage[256];          /* what is wrong with the log, or "" */
};
/*
 * Checks the store in dir: every log record and the snapshot, then every
 * message file against the state. Returns 0 when healthy, MCRDT_ECORRUPT
 * when damaged (report says where). With repair, the damaged log is cut at
 * the damage (what follows is set aside as *.damaged, never deleted), and
 * the store is reopened and scanned so every message file is adopted again;
 * this needs the store to be closed everywhere, else MCRDT_ELOCKED.
 */
MCRDT_EXTERN(int) mcrdt_fsck(const char *dir, bool repair, struct mcrdt_fsck_report *out);

/* ---- replication ---- */

/*
 * Replicas exchange ops through git (DESIGN.md "Replication"). Each store
 * keeps a bare repository in mcrdt/git: its own ops (and the bodies of the
 * messages they created) as commits on refs/mcrdt/<replica id>, and copies
 * of every other replica's ref it has heard of.
 */

/* What a sync or merge did, summed over both sides for a two-way one. */
struct mcrdt_sync_stats {
	uint64_t ops_sent;          /* this replica's ops published */
	uint64_t messages_sent;     /* message bodies published */
	uint64_t bytes_sent;        /* bytes of those bodies */
	uint64_t ops_received;      /* peers' ops applied */
	uint64_t messages_received; /* message files written from peers' bodies */
	uint64_t bytes_received;    /* bytes of those files */
	uint64_t bytes_fetched;     /* bytes the git transfers brought */
	uint64_t uid_moves;         /* fresh UID claims (a visible move when the UID was shown) */
	uint64_t duplicates;        /* two imports of one message merged into one */
	unsigned rounds;            /* exchanges: a two-way sync repeats until no new claims */
	struct mcrdt_scan_report scan; /* outside changes imported before the exchange */
};

/* Called now and then during a long sync with what is done so far; phase
 * is "scan", "publish", "fetch", "apply", "push" or "maintain" (small
 * packs merged once they pile up). A non-zero return cancels the sync
 * (MCRDT_EIO "cancelled"); what was applied stays. */
typedef int (*mcrdt_progress_fn)(void *ctx, const char *phase, const struct mcrdt_sync_stats *st);

struct mcrdt_sync_opts {
	unsigned version;          /* MCRDT_SYNC_OPTS_VERSION */
	mcrdt_progress_fn progress;/* may be NULL */
	void *progress_ctx;
	unsigned max_rounds;       /* two-way exchanges at most; 0: 16 */
};
#define MCRDT_SYNC_OPTS_VERSION 1
#define MCRDT_SYNC_OPTS_INIT { MCRDT_SYNC_OPTS_VERSION, NULL, NULL, 0 }

/*
 * Syncs store s with remote: outside changes are scanned first, this
 * replica's new ops are published, every replica's ref is fetched from
 * remote, what is new is applied (bodies written into the Maildir under
 * their original base names), and the refs remote lacks are pushed.
 *
 * remote is another store's directory, a git repository path (a hub, see
 * mcrdt_hub_init), or a file://, ssh:// or https:// URL (credentials: the
 * ssh agent, $MCRDT_SSH_KEY or ~/.ssh/id_ed25519 / id_rsa; for https
 * $MCRDT_GIT_USERNAME and $MCRDT_GIT_PASSWORD, or git's credential
 * helpers). With another store's directory the sync is two-way: both
 * stores are changed, and the exchange repeats until neither issues a new
 * UID claim, so that when it returns (with nothing else running) both list
 * the same mailboxes, UIDs, flags and messages.
 *
 * Peer input is untrusted: a damaged repository, a ref that is not a
 * commit, an op out of range, a mailbox name that would escape the
 * Maildir, a body whose size disagrees with its op, each fails the sync
 * with MCRDT_ECORRUPT naming it, and this store keeps what it had; a later
 * sync resumes once the cause is gone. When its repository holds more than
 * 16 packs, or it pushed to a hub directory that does, the smaller packs
 * are merged (safe while other replicas sync through the same hub). A sync cut short (a crash, a kill)
 * is finished by the next open, scan or sync: nothing is lost or doubled.
 *
 * opts and out may be NULL. Holds the store's lock while it applies;
 * other processes wait (up to their lock_timeout_ms). Thread-safe as any
 * store call. While it writes many bodies it runs two helper threads that
 * read them ahead, joined before it returns. The first sync or merge in a
 * process starts libgit2 (git_libgit2_init), which stays up until exit.
 * Errors: MCRDT_ECORRUPT, MCRDT_EIO (unreachable remote,
 * authentication, a push the remote refused), MCRDT_EINVAL (a batch is
 * open; remote is neither a store nor a repository), MCRDT_ELOCKED.
 */
MCRDT_EXTERN(int) mcrdt_sync(mcrdt_store *s, const char *remote, const struct mcrdt_sync_opts *opts,
			     struct mcrdt_sync_stats *out);

/*
 * Merges two stores offline so that they end identical: a two-way
 * mcrdt_sync of the stores in dirs a and b. A directory that holds a
 * Maildir but no store is adopted first (as MCRDT_OPEN_CREATE does), so
 * two plain Maildirs copied from one source merge: a message with the
 * same base name and the same content on both sides is one message (its
 * flags merged per flag), never doubled, never lost. opts and out may be
 * NULL.
 */
MCRDT_EXTERN(int) mcrdt_merge(const char *a, const char *b, const struct mcrdt_sync_opts *opts,
			      struct mcrdt_sync_stats *out);

/* Creates an empty bare git repository at path for replicas to sync
 * through. MCRDT_EEXISTS when path exists and is not an empty directory. */
MCRDT_EXTERN(int) mcrdt_hub_init(const char *path);

MCRDT_END_DECL

#endif
