/*
 * sync/git.h — the replication transport: ops and message bodies as git
 * objects (libgit2), exchanged with any git remote.
 *
 * Every replica keeps a bare repository (the store puts it at
 * ROOT/mcrdt/git). Replica R's ops live on the ref
 *     refs/mcrdt/<R as 16 lowercase hex digits>
 * as a chain of commits, one per publish, each holding R's ops with
 * counters [from, to], contiguous along the chain (the first commit
 * starts at 1). A commit's tree:
 *     ops          a blob: the ops as sync/codec.h records (unsalted), in
 *                  counter order
 *     bodies/<C>   a blob per message the op with counter C (APPEND, COPY
 *                  or MOVE, C as 16 lowercase hex digits) created: the
 *                  message file's bytes, when the message still existed at
 *                  publish time
 * and its message's first line is "mcrdt <R hex> <from> <to>" (decimal).
 * Only R writes R's chain; every other repository holds a copy of some
 * prefix of it, so a replica's chain can be fetched from anyone who has
 * it, and a fetch that does not extend the chain held here is refused.
 *
 * A sync: fetch (every refs/mcrdt/<R> of the remote into a staging
 * namespace, refs/mcrdt-fetch/<R>), read what is new (sync_git_read_new),
 * apply it (the caller), adopt the staged refs, publish, push. Objects a
 * publish writes go into one pack per publish, never loose; packs are
 * consolidated when they pile up (sync_git_maintain).
 *
 * Peer input is untrusted: a staged ref with a bad name, a ref that names
 * something other than a commit, a commit or tree not laid out as above,
 * ops that do not belong to the ref's replica or do not follow the chain's
 * counters, records that fail to decode: each is MCRDT_ECORRUPT naming the
 * replica and the commit, reported before the caller has applied
 * anything from that replica.
 *
 * Not thread-safe: one sync_git per thread; the caller serialises syncs of
 * one repository across processes (the store's lock).
 */
#ifndef MCRDT_SYNC_GIT_H
#define MCRDT_SYNC_GIT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "crdt/op.h"
#include "crdt/vv.h"

typedef struct sync_git sync_git;

/* A git object id (SHA-1). */
typedef struct {
	uint8_t id[20];
} sync_oid;

/* Counters for progress and reports; every function that moves data adds
 * to the ones it concerns. */
struct sync_git_stats {
	uint64_t ops_published, bodies_published, body_bytes_published;
	uint64_t objects_fetched, bytes_fetched;  /* from the transfer */
	uint64_t ops_read, bodies_read;           /* new ops sync_git_read_new gave */
	uint64_t refs_pushed, bytes_pushed;
};

/* Progress during a transfer: called now and then; a non-zero return
 * cancels (the call then fails with MCRDT_EIO "cancelled"). */
typedef int (*sync_git_progress_fn)(void *ctx, const struct sync_git_stats *st);

/*
 * Opens the bare repository at dir (creating it when create and it does
 * not exist) for replica self. MCRDT_ENOTFOUND when it does not exist and
 * !create; MCRDT_EIO with libgit2's message otherwise.
 */
int sync_git_open(sync_git **out, const char *dir, uint64_t self, bool create);
void sync_git_close(sync_git *g);

/* Creates an empty bare repository at path for many replicas to sync
 * through (`mcrdt hub init`). MCRDT_EEXISTS when path exists and is not
 * an empty directory. */
int sync_git_hub_init(const char *path);

/* ---- publishing this replica's ops ---- */

/*
 * What the head of this replica's ref covers: *counter the last counter
 * published (0: none yet) and *log_next the local log index the publish
 * had read up to (0 when none; a hint for the next publish, stored in the
 * commit message's second line "log <N>").
 */
int sync_git_published(sync_git *g, uint64_t *counter, uint64_t *log_next);

/*
 * Gives the body of the message op (an APPEND, COPY or MOVE) created:
 * *fd_out an open descriptor the git layer reads to its end and closes, or
 * -1 when there is none (the message is gone). A non-zero return stops the
 * publish and is returned.
 */
typedef int (*sync_git_body_fn)(void *ctx, const crdt_op *op, int *fd_out);

/*
 * Publishes ops (this replica's, counters contiguous from published + 1)
 * as one commit on this replica's ref, with the bodies body() gives, all
 * in one new pack. log_next is recorded for sync_git_published. n == 0
 * does nothing. MCRDT_EINVAL for ops that are not this replica's or not
 * contiguous; MCRDT_EIO for git errors. The ref moves only after every
 * object is written.
 */
int sync_git_publish(sync_git *g, const crdt_op *ops, size_t n, uint64_t log_next,
		     sync_git_body_fn body, void *ctx, struct sync_git_stats *st);

/* ---- exchanging ---- */

/*
 * How to reach a remote: url is a path to a repository (bare or not), a
 * file://, ssh:// or https:// URL, or scp-like user@host:path.
 * Credentials go through libgit2's callbacks: for ssh the agent (when
 * $SSH_AUTH_SOCK names one), then the key file $MCRDT_SSH_KEY (or
 * ~/.ssh/id_ed25519, ~/.ssh/id_rsa), the host key checked by libgit2
 * against ~/.ssh/known_hosts; for https $MCRDT_GIT_USERNAME /
 * $MCRDT_GIT_PASSWORD, then `git credential fill` when git is installed,
 * the server's certificate checked against the system's CAs or those in
 * $SSL_CERT_FILE / $SSL_CERT_DIR (read at the process's first http or
 * https remote). Each is tried once.
 */
struct sync_git_remote {
	const char *url;
	sync_git_progress_fn progress; /* may be NULL */
	void *progress_ctx;
};

/*
 * Fetches every refs/mcrdt/<hex> of the remote into refs/mcrdt-fetch/<hex>
 * (replacing what an earlier fetch staged: refs the remote no longer has
 * are dropped). Objects arrive as packs. From a repository on this
 * machine the packs are copied as files and every object in them is
 * inflated and checked against its id before the copy joins the
 * repository; the blobs this repository lacked are left unpacked (see
 * sync_git_unpacked), except from a pack with deltas, which libgit2's
 * indexer checks instead. MCRDT_EIO with the transport's message
 * (unreachable, authentication, not a repository), MCRDT_ECORRUPT for an
 * object that fails its check.
 */
int sync_git_fetch(sync_git *g, const struct sync_git_remote *r, struct sync_git_stats *st);

/*
 * Calls fn for every op of another replica that the staged and local refs
 * hold beyond known (the caller's contiguous context: crdt_vv_base per
 * replica; ops above it may come again and are the caller's to skip), each
 * replica's chain oldest first; body is the op's body blob (NULL when it
 * has none). Before any call for replica R, R's new commits are all read
 * and checked (see the header comment), so a bad chain is refused before
 * the caller applies any of its ops. Also MCRDT_ECORRUPT when the staged
 * ref of this replica itself is not an ancestor of (or equal to) the local
 * one: the remote holds ops of ours we lost (a replica restored from an
 * old backup must be re-created with a new id), and when a staged ref does
 * not extend the local ref of its replica (the two have diverged: neither
 * contains the other; a staged ref behind the local one is no error, the
 * local one is read). A record of a newer format is MCRDT_EVERSION (naming
 * replica and commit) rather than MCRDT_ECORRUPT. A non-zero return from
 * fn stops the walk and is returned.
 */
typedef int (*sync_git_op_fn)(void *ctx, const crdt_op *op, const sync_oid *body);
int sync_git_read_new(sync_git *g, const crdt_vv *known, sync_git_op_fn fn, void *ctx,
		      struct sync_git_stats *st);

/* Moves each local refs/mcrdt/<R> (R not self) to its staged value when
 * that extends it; called once the ops read are applied and durable. */
int sync_git_adopt(sync_git *g);

/*
 * Pushes every local refs/mcrdt/<R> the remote (as last fetched) lacks or
 * holds an older commit of. Never forced: MCRDT_EIO naming the ref when
 * the remote refuses an update (another replica pushed first: sync again).
 * A push to a repository on this machine (a hub directory) also keeps the
 * remote's pack count down, as sync_git_maintain does.
 */
int sync_git_push(sync_git *g, const struct sync_git_remote *r, struct sync_git_stats *st);

/* ---- bodies ---- */

/* A body blob's bytes: data valid until sync_git_blob_free. */
struct sync_git_blob {
	const uint8_t *data;
	size_t len;
	void *handle; /* internal: libgit2's object, or NULL: data is malloc'd */
};
/* MCRDT_ENOTFOUND when the object is missing; MCRDT_ECORRUPT when it is
 * not a blob or fails its hash. */
int sync_git_blob_read(sync_git *g, const sync_oid *id, struct sync_git_blob *out);
void sync_git_blob_free(struct sync_git_blob *b);
/*
 * Reading ahead: a thread with its own handle on g's objects reads
 * ids[0..n) in order while the caller writes, holding at most max_bytes
 * of blobs not yet taken (at least one). ids must outlive the prefetch.
 * take gives blob i (its bytes are the caller's until sync_git_blob_free,
 * which may run after stop); indexes only go up, and the blobs skipped are
 * freed. take's errors are sync_git_blob_read's for that blob, and
 * MCRDT_EINVAL for an index already passed. stop ends the thread and frees
 * what was not taken. One caller thread per prefetch; g is not used by it
 * and stays free for the caller.
 */
typedef struct sync_git_prefetch sync_git_prefetch;
int sync_git_prefetch_start(sync_git *g, const sync_oid *ids, size_t n, size_t max_bytes,
			    sync_git_prefetch **out);
int sync_git_prefetch_take(sync_git_prefetch *p, size_t i, struct sync_git_blob *out);
void sync_git_prefetch_stop(sync_git_prefetch *p);
/*
 * Blobs a fetch unpacked: a fetch from a repository on this machine
 * inflates and hashes every object it copies (see sync_git_fetch), and
 * leaves each blob so proved that g lacked in a directory of g as a file
 * named by its id in 40 lowercase hex digits, holding exactly the blob's
 * bytes. The
 * caller may take such a file away (rename it: it is on the file system
 * of the repository) rather than inflate the blob again. The files are
 * not synced: the caller syncs what it keeps. They are g's until
 * sync_git_unpacked_clear, sync_git_close or the next fetch, each of which
 * empties the directory, so a file left by a process that died is never
 * offered. sync_git_unpacked: false when the last fetch kept nothing;
 * else true with *dir (g's fd: do not close it) and name (in *dir) where
 * blob id is when that fetch unpacked it (the caller looks). Neither is
 * thread-safe.
 */
bool sync_git_unpacked(sync_git *g, const sync_oid *id, int *dir, char name[41]);
void sync_git_unpacked_clear(sync_git *g);
/* A blob's size from its header, without inflating it (the same errors;
 * the bytes are checked against the id when sync_git_blob_read reads them). */
int sync_git_blob_size(sync_git *g, const sync_oid *id, uint64_t *size);
/* The blob id bytes would have (content identity across replicas). */
int sync_git_hash(const void *data, size_t len, sync_oid *out);

/* ---- upkeep ---- */

/* The packs a repository may hold before sync_git_maintain, or a push to
 * a hub on this machine, merges some. */
#define SYNC_GIT_MAX_PACKS 16

/*
 * Keeps the pack count down: when the repository holds more than
 * max_packs packs, merges the smaller ones (and any loose objects) into
 * one without unpacking them, so that each pack left is at least twice
 * the size of all smaller ones together; the big pack of a full sync is
 * left alone until the rest outgrows half of it. Removes only what was
 * merged, after the merged pack is in place: safe while other processes
 * add packs or read. Unreachable objects are kept. *packs_out (may be
 * NULL) gets the count after. Errors: MCRDT_ECORRUPT for a pack or index
 * whose checksum fails (nothing is removed then), MCRDT_EIO, MCRDT_ENOMEM.
 */
int sync_git_maintain(sync_git *g, unsigned max_packs, unsigned *packs_out);

/*
 * Removes what a process killed while it wrote the repository left: the
 * lock files (NAME.lock) at the top and under refs/ (libgit2 refuses to
 * touch a ref whose lock file exists), and the temporary files of packs
 * and indexes being written, copied or indexed in objects/pack (a copy of
 * a peer's pack can be as large as the mail) and at the top. Only for a
 * caller that knows no other process is using the repository (the
 * store's sync lock). *removed (may be NULL) gets how many went.
 */
int sync_git_clear_locks(sync_git *g, unsigned *removed_out);

#endif
