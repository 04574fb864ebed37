/*
 * maildir/md_int.h — the md handle and helpers shared inside maildir/.
 */
#ifndef MCRDT_MAILDIR_INT_H
#define MCRDT_MAILDIR_INT_H

#include "common/hashmap.h"
#include "maildir/maildir.h"

#include <sys/types.h>

/* Open directories of one folder, reached from the root without links. */
struct md_folder {
	char *mailbox;  /* as the caller named it */
	int dir, tmp, new, cur;
	bool unsynced_new, unsynced_cur; /* changed in a batch, synced at its end */
	bool checked;   /* against its path since the batch began (md_folder_open) */
};

#define MD_FOLDER_CACHE MD_BATCH_FOLDERS

struct md_pending {     /* a batch delivery waiting for its commit */
	struct md_folder *f;/* cache slot; pinned while a batch runs */
	int src;            /* where tmpname is: -1 for f->tmp, else (a file moved in)
			     * the caller's directory, until the commit's rename */
	char *tmpname;
	char *final;
	bool to_cur;
};

/* A file this handle put in place, renamed or removed (see md_own_settle). */
struct md_own {
	char *file;     /* its name now, or (removed) the name it had */
	size_t base_len;
	bool in_new, removed;
	bool seen; /* its one event came (see maildir/watch.c) */
};

/* One mailbox's notes, in the order made: v[0, settled) settled, the rest
 * pending (md_own_settle settles or drops all of them at once). byname
 * (when byname_ok) holds the indexes of v sorted by file name, for the
 * watch to look events up. */
struct md_own_box {
	char *mailbox;
	struct md_own *v;
	size_t n, cap, settled;
	size_t *byname;
	bool byname_ok;
};

/* Past this many records, further own changes are not recorded: the scans
 * then report them, which is only more work. */
#define MD_OWN_MAX 65536

/* A folder's new/ and cur/ under inotify (see maildir/watch.c). */
struct md_watch {
	char *mailbox;
	int wd_new, wd_cur; /* watch descriptors, or one of: */
#define MD_WD_PENDING (-1)  /* scanned once: armed at the next scan */
#define MD_WD_NONE (-2)     /* could not be armed: the mtimes decide */
	bool dirty;     /* something not ours happened since its last listing */
	dev_t dev;      /* new/'s and cur/'s, as armed: a folder replaced while */
	ino_t ino_new, ino_cur; /* out of the folder cache is another one */
};
static inline bool md_watch_armed(const struct md_watch *w)
{
	return w && w->wd_new >= 0;
}

struct md {
	char *root;
	int rootfd;
	int metafd;
	struct md_folder cache[MD_FOLDER_CACHE];
	unsigned next_evict;
	bool batch;
	struct md_pending *pend;
	size_t npend, cappend;
	struct hmap pendix; /* pend_key of a pending delivery, and src_key of one moved
			     * in, -> its index in pend */
	struct md_own_box *box;
	size_t nbox, capbox;
	size_t nown;    /* notes in all boxes (MD_OWN_MAX at most) */
	int ino;        /* inotify: -1 not yet, -2 not available */
	struct md_watch *w;
	size_t nw, capw;
};

/* The cached fds of mailbox's folder, opened on first use (in a batch,
 * checked against its path at its first use in the batch). */
int md_folder_open(md *md, const char *mailbox, struct md_folder **out);
/* The same, but a cached folder is first checked against its path (a few
 * stats): one another program removed or renamed and made again is opened
 * anew, and its watch forgotten. For scans and single deliveries, which
 * must reach the live folder; in a batch md_folder_open does this once per
 * folder, at its first use. */
int md_folder_open_live(md *md, const char *mailbox, struct md_folder **out);
/* Forgets every cached folder (after a rename or delete on disk). */
void md_folder_cache_clear(md *md);
/* openat a directory under dirfd without following links; errors name path. */
int md_open_dir(int dirfd, const char *name, const char *path_for_errors, int *fd_out);
/* fsync with a clear error. */
int md_fsync(int fd, const char *what);
/* A folder's three directories, in the order folders are made in. */
extern const char *const md_subs[3];
/* Makes a change to f's new/ (cur false) or cur/ directory durable: now,
 * or in a batch once at its end (md_folder_flush), however many files
 * the batch changed there. */
int md_dir_changed(md *md, struct md_folder *f, bool cur);
/* Syncs what md_dir_changed left for later in f. */
int md_folder_flush(struct md_folder *f);
/* The notes of mailbox; NULL when it has none. */
struct md_own_box *md_own_box(md *md, const char *mailbox);
/* Records an own change (see md_own_settle); dropped silently past
 * MD_OWN_MAX or when out of memory. */
void md_own_note(md *md, const char *mailbox, const char *file, bool in_new, bool removed);
/* Forgets every record (folders renamed or deleted). */
void md_own_clear(md *md);

/* Whether the file system of fd may be changed by other machines (a
 * network or cluster file system, or FUSE, which sshfs is): their changes
 * raise no inotify event, so a watch there would vouch for what it cannot
 * see, and their mtimes come from another clock. True when it cannot
 * tell. */
bool md_shared_fs(int fd);
/* Tests: every folder counts as on such a file system. */
extern bool md_test_shared_fs;

/* md_name_size of a file whose base name (see md_info_parse) is its first
 * base_len bytes. */
int64_t md_base_size(const char *file, size_t base_len);

/* maildir/watch.c. The watch of mailbox, or NULL. */
struct md_watch *md_watch_find(md *md, const char *mailbox);
/* Called before each scan reads f's (mailbox's) mtimes: the first time it
 * only notes the folder, the second it arms the watch (MD_WD_NONE when
 * inotify is not to be had: the mtimes decide then). NULL when out of
 * memory. */
struct md_watch *md_watch_add(md *md, struct md_folder *f, const char *mailbox);
/* Whether the file system of fd stamps mtimes to the nanosecond from the
 * local clock (ext4, XFS, Btrfs, tmpfs, F2FS): a change after that clock
 * moved past a directory's mtime cannot leave the mtime as it was. */
bool md_fine_mtimes(int fd);
/* Reads the events queued: each one that no own change explains marks
 * its folder dirty (all of them when the queue overflowed). */
void md_watch_drain(md *md);
/* Marks mailbox's folder dirty (own changes forgotten). */
void md_watch_dirty(md *md, const char *mailbox);
/* Forgets mailbox's watch (its directories were replaced): its next scans
 * note and arm it again. */
void md_watch_forget(md *md, const char *mailbox);
/* Stops every watch (folders renamed or deleted; the handle closing). */
void md_watch_clear(md *md);

/* Test hook: the write(2) delivery uses; tests swap it to inject ENOSPC. */
extern ssize_t (*md_write_hook)(int fd, const void *buf, size_t len);

#endif
