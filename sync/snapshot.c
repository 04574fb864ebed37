/*
 * sync/snapshot.c — the snapshot file and opening a replica from it plus
 * the log's tail. See snapshot.h.
 */
#define _GNU_SOURCE
#include "sync/snapshot.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define XXH_INLINE_ALL
#include <xxhash.h>

#include "common/error.h"
#include "sync/codec.h"
#include "sync/io.h"

#define SNAP_MAGIC "MCRDTSNP"
#define SNAP_FILE "snapshot"
#define SNAP_HEADER 40
#define SNAP_MAX ((uint64_t)1 << 36) /* 64 GiB: beyond any real replica */

int sync_snapshot_write(const char *dir, const crdt_model *m, uint64_t upto)
{
	uint8_t *state;
	size_t slen;
	int rc = crdt_model_save(m, &state, &slen);
	if (rc)
		return rc;
	struct vbuf b = { 0 };
	if (vbuf_reserve(&b, SNAP_HEADER + 10 + slen) == 0) {
		b.len = SNAP_HEADER;
		vput_bytes(&b, state, slen);
		vput(&b, crdt_model_pending(m));
	}
	free(state);
	for (size_t i = 0; !b.err && rc == 0 && i < crdt_model_pending(m); i++)
		rc = sync_encode_record(&b, crdt_model_pending_op(m, i));
	if (b.err || rc) {
		int err = b.err ? b.err : rc;
		vbuf_free(&b);
		return err;
	}
	memcpy(b.p, SNAP_MAGIC, 8);
	put64(b.p + 8, SYNC_FORMAT_VERSION);
	put64(b.p + 16, upto);
	put64(b.p + 24, b.len - SNAP_HEADER);
	put64(b.p + 32, XXH3_64bits(b.p, 32) ^ XXH3_64bits(b.p + SNAP_HEADER, b.len - SNAP_HEADER));
	rc = replace_file(dir, SNAP_FILE, b.p, b.len, true);
	vbuf_free(&b);
	return rc;
}

int sync_snapshot_read(const char *dir, crdt_model **m_out, uint64_t *upto_out)
{
	char path[PATH_MAX];
	snprintf(path, sizeof path, "%s/" SNAP_FILE, dir);
	int fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return errno == ENOENT ? MCRDT_ENOTFOUND : err_sys(MCRDT_EIO, "cannot open %s", path);
	struct stat st;
	uint8_t *buf = NULL;
	int rc = 0;
	if (fstat(fd, &st) != 0)
		rc = err_sys(MCRDT_EIO, "cannot stat %s", path);
	else if ((uint64_t)st.st_size < SNAP_HEADER || (uint64_t)st.st_size > SNAP_MAX)
		rc = err_set(MCRDT_ECORRUPT, "%s: %lld bytes is no snapshot", path, (long long)st.st_size);
	else if (!(buf = malloc((size_t)st.st_size)))
		rc = err_set(MCRDT_ENOMEM, "out of memory reading %s", path);
	size_t len = rc ? 0 : (size_t)st.st_size;
	if (rc == 0 && pread_all(fd, buf, len, 0) != 0)
		rc = err_sys(MCRDT_EIO, "cannot read %s", path);
	close(fd);
	if (rc == 0 && memcmp(buf, SNAP_MAGIC, 8) != 0)
		rc = err_set(MCRDT_ECORRUPT, "%s offset 0: not a snapshot (bad magic)", path);
	if (rc == 0 && get64(buf + 8) != SYNC_FORMAT_VERSION)
		rc = err_set(MCRDT_EVERSION, "%s has format version %" PRIu64 "; this mcrdt reads %d", path,
			     get64(buf + 8), SYNC_FORMAT_VERSION);
	if (rc == 0 && (get64(buf + 24) != len - SNAP_HEADER ||
			get64(buf + 32) != (XXH3_64bits(buf, 32) ^ XXH3_64bits(buf + SNAP_HEADER, len - SNAP_HEADER))))
		rc = err_set(MCRDT_ECORRUPT, "%s: checksum mismatch (length %zu)", path, len);
	crdt_model *m = NULL;
	if (rc == 0) {
		struct vreader r = { buf + SNAP_HEADER, buf + len, 0 };
		uint64_t slen = vread(&r);
		const uint8_t *state = vread_bytes(&r, slen, "snapshot state");
		uint64_t npend = vread(&r);
		rc = r.err ? r.err : crdt_model_load(&m, state, (size_t)slen);
		for (uint64_t i = 0; rc == 0 && i < npend; i++) {
			crdt_op op;
			size_t used;
			rc = sync_decode_record(r.p, (size_t)(r.end - r.p), &op, &used);
			if (rc == 0) {
				int rrc = crdt_model_receive(m, &op);
				crdt_op_free(&op);
				r.p += used;
				if (rrc != MCRDT_EPENDING && rrc != MCRDT_EDUPLICATE && rrc != 0)
					rc = rrc;
			}
		}
		if (rc == 0 && r.p != r.end)
			rc = err_set(MCRDT_ECORRUPT, "%s: stray bytes after the buffered ops", path);
		if (rc && m) {
			crdt_model_free(m);
			m = NULL;
		}
	}
	if (rc == 0) {
		*m_out = m;
		*upto_out = get64(buf + 16);
	}
	free(buf);
	return rc;
}

struct replay_ctx {
	crdt_model *m;
};

static int replay_one(void *ctx, const crdt_op *op, uint64_t index)
{
	struct replay_ctx *c = ctx;
	int rc = crdt_model_receive(c->m, op);
	if (rc == 0 || rc == MCRDT_EDUPLICATE || rc == MCRDT_EPENDING)
		return 0;
	return err_set(rc, "log record %" PRIu64 " refused by the model: %s", index, mcrdt_error_last());
}

int sync_replica_open(const char *dir, uint64_t replica, const struct sync_log_opts *log_opts,
		      crdt_model **m_out, sync_log **log_out, uint64_t *snap_out,
		      struct sync_log_report *report)
{
	char logdir[PATH_MAX];
	if (mkdir(dir, 0700) != 0 && errno != EEXIST)
		return err_sys(MCRDT_EIO, "cannot create %s", dir);
	snprintf(logdir, sizeof logdir, "%s/log", dir);
	crdt_model *m = NULL;
	uint64_t from = 0;
	int rc = sync_snapshot_read(dir, &m, &from);
	if (rc == MCRDT_ENOTFOUND)
		rc = crdt_model_new(&m, replica);
	else if (rc == 0 && crdt_model_replica(m) != replica)
		rc = err_set(MCRDT_EINVAL, "%s holds replica %" PRIx64 ", not %" PRIx64, dir,
			     crdt_model_replica(m), replica);
	sync_log *log = NULL;
	struct sync_log_opts opts = SYNC_LOG_OPTS_INIT;
	if (log_opts)
		opts = *log_opts;
	opts.verify_from = from; /* what the snapshot covers is not read again */
	if (rc == 0)
		rc = sync_log_open(&log, logdir, &opts, report);
	/* A log that ends before what the snapshot covers lost records the
	 * snapshot counts on: appending there would number new records below
	 * the snapshot, where no replay looks. */
	if (rc == 0 && sync_log_next(log) < from)
		rc = err_set(MCRDT_ECORRUPT, "the log ends at record %" PRIu64 " but the snapshot covers %" PRIu64,
			     sync_log_next(log), from);
	struct replay_ctx ctx = { m };
	if (rc == 0)
		rc = sync_log_replay(log, from, replay_one, &ctx);
	crdt_oplist claims = CRDT_OPLIST_INIT;
	if (rc == 0)
		rc = crdt_model_settle(m, &claims);
	if (rc == 0 && claims.n)
		rc = sync_log_append_batch(log, claims.ops, claims.n, NULL);
	crdt_oplist_free(&claims);
	if (rc) {
		sync_log_close(log);
		crdt_model_free(m);
		return rc;
	}
	*m_out = m;
	*log_out = log;
	if (snap_out)
		*snap_out = from;
	return 0;
}
