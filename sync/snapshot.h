/*
 * sync/snapshot.h — a replica's state on disk: a snapshot file plus the
 * log records after it.
 *
 * The snapshot file ("snapshot" in the replica's directory) is a 40-byte
 * header (magic "MCRDTSNP", format version, the log index it covers up to,
 * body length, XXH3-64 of the body) and a body: the model's
 * crdt_model_save bytes, then its ops waiting for dependencies as log
 * records. It is replaced atomically (temp file, fsync, rename, fsync of
 * the directory), so a crash leaves the old snapshot or the new one.
 *
 * Opening a replica loads the snapshot and replays only the log records
 * after it, so open time follows the size of the state, not the length of
 * the history. Once a snapshot covers them, whole log segments can go
 * (sync_log_compact), when the caller knows every peer has their ops.
 *
 * Not thread-safe; one process per directory (the store's lock).
 */
#ifndef MCRDT_SYNC_SNAPSHOT_H
#define MCRDT_SYNC_SNAPSHOT_H

#include "crdt/model.h"
#include "sync/log.h"

/* Writes a snapshot of the settled model m covering log records [0, upto). */
int sync_snapshot_write(const char *dir, const crdt_model *m, uint64_t upto);
/* Reads the snapshot: the model (ops waiting for dependencies buffered
 * again) and the log index it covers up to. MCRDT_ENOTFOUND when there is
 * none; MCRDT_ECORRUPT / MCRDT_EVERSION for a damaged or newer one. */
int sync_snapshot_read(const char *dir, crdt_model **m_out, uint64_t *upto_out);

/*
 * Opens the replica in dir (creating it for replica id when empty): the
 * snapshot if there is one, then the log from where it ends, every record
 * received as a peer's op would be (duplicates skipped, early ops
 * buffered), then a settle whose claims are appended to the log.
 * log_opts (may be NULL: defaults) are the log's, except verify_from,
 * which is where the snapshot ends; *snap_out (may be NULL) gets that
 * index. report (may be NULL) is the log's (sync_log_open).
 */
int sync_replica_open(const char *dir, uint64_t replica, const struct sync_log_opts *log_opts,
		      crdt_model **m_out, sync_log **log_out, uint64_t *snap_out,
		      struct sync_log_report *report);

#endif
