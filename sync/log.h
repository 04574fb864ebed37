/*
 * sync/log.h — the local append-only op log.
 *
 * A directory of segment files "<first index, 16 hex digits>.log", each a
 * 32-byte header (magic "MCRDTLOG", format version, first record index,
 * header checksum) followed by records in the sync/codec.h format. Records
 * are numbered from 0 across segments.
 *
 * Durability: an append returns after its record is on disk (fdatasync).
 * Appends from several threads share one fdatasync (group commit), and
 * sync_log_append_batch writes many records with one. With no_fsync the
 * caller trades durability for speed, explicitly.
 *
 * Recovery on open: a record cut short at the end of the last segment (a
 * crash mid-append) is cut off and reported; damage anywhere else (a bad
 * checksum with valid records after it, a bad header, a gap between
 * segments) is MCRDT_ECORRUPT naming the segment and offset, and no file
 * is touched. sync_log_repair keeps every record before the damage and sets
 * the rest aside.
 *
 * Thread-safety: appends and replays may run from several threads on one
 * handle. Several processes may share a log directory when they serialise
 * opens and appends with a lock of their own (the store's) and call
 * sync_log_refresh under it before appending: opening cuts a torn tail,
 * which must not be another process's append in flight.
 */
#ifndef MCRDT_SYNC_LOG_H
#define MCRDT_SYNC_LOG_H

#include <stdbool.h>
#include <stdint.h>

#include "crdt/op.h"

typedef struct sync_log sync_log;

struct sync_log_opts {
	unsigned version;
	uint64_t segment_bytes; /* a new segment starts once one is this big */
	bool no_fsync;          /* appends are not made durable: tests, bulk loads */
	/* Segments whose records all lie below this index are not read at
	 * open (a snapshot covers them): only their headers are checked, and
	 * a replay or repair still checks every record it reads. 0: read all. */
	uint64_t verify_from;
};
#define SYNC_LOG_OPTS_VERSION 1
/* 1 MiB segments: an open reads (and checks) the segments a snapshot
 * does not cover, and a replay from a record reads its whole segment, so
 * the segment size, not the history, bounds what both read (a 100,000-
 * message store's 11 MB log was read whole by each). */
#define SYNC_LOG_OPTS_INIT { SYNC_LOG_OPTS_VERSION, UINT64_C(1) << 20, false, 0 }

/* What opening (or repairing) found. */
struct sync_log_report {
	uint64_t records;        /* records in the log */
	uint64_t torn_bytes;     /* bytes cut off the end of the last segment */
	uint64_t damaged_at;     /* repair: offset of the damage in its segment */
	unsigned set_aside;      /* repair: later segments renamed to *.damaged */
	char segment[64];        /* the segment that was cut or damaged, or "" */
};

/*
 * Opens (creating if missing, mode 0700) the log in dir. opts and report
 * may be NULL. MCRDT_ECORRUPT or MCRDT_EVERSION leave every file as it was;
 * report->records then counts the good records before the damage.
 */
int sync_log_open(sync_log **out, const char *dir, const struct sync_log_opts *opts,
		  struct sync_log_report *report);
void sync_log_close(sync_log *log);

/* Appends one op durably; *index_out (may be NULL) gets its record index. */
int sync_log_append(sync_log *log, const crdt_op *op, uint64_t *index_out);
/* Appends n ops with one write and one fdatasync. */
int sync_log_append_batch(sync_log *log, const crdt_op *ops, size_t n, uint64_t *first_out);
/* The index the next record will get (= records in the log). */
uint64_t sync_log_next(sync_log *log);

/*
 * Calls fn for every record from index from on, in order, with a decoded
 * op that is valid only during the call. A non-zero return from fn stops
 * the replay and is returned.
 */
typedef int (*sync_replay_fn)(void *ctx, const crdt_op *op, uint64_t index);
int sync_log_replay(sync_log *log, uint64_t from, sync_replay_fn fn, void *ctx);

/*
 * Takes in the records other processes appended to this log since this
 * handle last looked (or wrote), calling fn (may be NULL) for each, in
 * order, with the log's internal lock held: fn must not call back into the
 * log. A new segment another process started is followed.
 *
 * cut: the caller holds the store's lock, so no writer is mid-append and
 * incomplete bytes at the end are a crashed writer's torn tail: they are
 * cut off. Without it they are left for their writer to finish. Either
 * way the handle's next append lands after the last complete record.
 * *new_out (may be NULL) gets the number of new records. MCRDT_ECORRUPT
 * when the log shrank or is damaged before its end (reopen or repair).
 */
int sync_log_refresh(sync_log *log, bool cut, sync_replay_fn fn, void *ctx, uint64_t *new_out);

/*
 * Removes whole segments whose records are all below upto (never the last
 * one): for history a snapshot covers and every peer has. A replay from an
 * index that was removed is MCRDT_ENOTFOUND. *removed_out may be NULL.
 */
int sync_log_compact(sync_log *log, uint64_t upto, unsigned *removed_out);

/*
 * The causally stable prefix: *upto_out gets the index of the first record
 * whose op some peer has not seen (every context in peers lacks none of
 * the ops before it). Those records are history every replica holds, and
 * what a snapshot covering them lets sync_log_compact drop.
 */
int sync_log_stable_prefix(sync_log *log, const crdt_vv *const *peers, size_t npeers,
			   uint64_t *upto_out);

/*
 * For `mcrdt fsck --repair`: truncates the first damaged segment at the
 * damage, renames every later segment to NAME.damaged, and reports what it
 * did. Every record before the damage is kept. The log must not be open.
 */
int sync_log_repair(const char *dir, struct sync_log_report *report);

#endif
