/*
 * sync/log.c — segment files, durable appends with group commit, replay,
 * torn-tail recovery and repair. See log.h.
 */
#define _GNU_SOURCE
#include "sync/log.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#define XXH_INLINE_ALL
#include <xxhash.h>

#include "common/dir.h"
#include "common/error.h"
#include "common/grow.h"
#include "sync/codec.h"
#include "sync/io.h"

#define MAGIC "MCRDTLOG"
#define HEADER_SIZE 32

struct segment {
	uint64_t first;   /* index of its first record */
	uint64_t count;   /* records in it */
	uint64_t salt;    /* its records' checksums are XORed with this */
	char name[32];
};

struct sync_log {
	char *dir;
	int dirfd;
	struct sync_log_opts opts;
	pthread_mutex_t lock;
	pthread_cond_t synced_cond;
	struct segment *segs;
	size_t nsegs, capsegs;
	int fd;              /* the last segment, open for appending */
	uint64_t size;       /* its size */
	uint64_t next;       /* next record index */
	uint64_t synced;     /* records [0, synced) are durable */
	bool syncing;        /* a leader is in fdatasync */
	int broken;          /* sticky error after a failed write or sync */
};

/* ---- headers and names ---- */

/* The header's 32 random bits, widened into the salt of the segment's
 * records. 0 stays 0 (no salt). */
static uint64_t salt_of(uint32_t r)
{
	return r ? XXH3_64bits(&r, sizeof r) : 0;
}

static void make_header(uint8_t h[HEADER_SIZE], uint64_t first, uint32_t salt)
{
	memcpy(h, MAGIC, 8);
	put64(h + 8, SYNC_FORMAT_VERSION | (uint64_t)salt << 32); /* version, salt */
	put64(h + 16, first);
	put64(h + 24, XXH3_64bits(h, 24));
}

static int check_header(const uint8_t *h, size_t len, const char *name, uint64_t *first,
			uint64_t *salt)
{
	if (len < HEADER_SIZE)
		return err_set(MCRDT_ECORRUPT, "log segment %s: header cut short (%zu bytes)", name, len);
	if (memcmp(h, MAGIC, 8) != 0)
		return err_set(MCRDT_ECORRUPT, "log segment %s offset 0: not a log segment (bad magic)", name);
	if (get64(h + 24) != XXH3_64bits(h, 24))
		return err_set(MCRDT_ECORRUPT, "log segment %s offset 0: header checksum mismatch", name);
	uint32_t version = (uint32_t)get64(h + 8);
	if (version != SYNC_FORMAT_VERSION)
		return err_set(MCRDT_EVERSION, "log segment %s has format version %u; this mcrdt reads %d",
			       name, version, SYNC_FORMAT_VERSION);
	*first = get64(h + 16);
	*salt = salt_of((uint32_t)(get64(h + 8) >> 32));
	return 0;
}

static void seg_name(char *out, size_t size, uint64_t first)
{
	snprintf(out, size, "%016" PRIx64 ".log", first);
}

/* ---- reading whole segments ---- */

/* Reads [from, to) of a segment into *buf (malloc'd); to UINT64_MAX: to
 * its end, with *len_out (may be NULL) the bytes read. */
static int read_range(int dirfd, const char *name, uint64_t from, uint64_t to, uint8_t **buf, size_t *len_out)
{
	int fd = openat(dirfd, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return err_sys(MCRDT_EIO, "cannot open log segment %s", name);
	struct stat st;
	if (to == UINT64_MAX) {
		if (fstat(fd, &st) != 0) {
			close(fd);
			return err_sys(MCRDT_EIO, "cannot stat log segment %s", name);
		}
		to = (uint64_t)st.st_size;
	}
	size_t n = (size_t)(to - from);
	uint8_t *p = malloc(n ? n : 1);
	int bad = p ? pread_all(fd, p, n, from) : 0;
	close(fd);
	if (!p)
		return err_set(MCRDT_ENOMEM, "out of memory reading log segment %s", name);
	if (bad) {
		free(p);
		return err_sys(MCRDT_EIO, "cannot read log segment %s", name);
	}
	*buf = p;
	if (len_out)
		*len_out = n;
	return 0;
}

static int read_header(int dirfd, const char *name, uint64_t *first, uint64_t *salt)
{
	uint8_t h[HEADER_SIZE];
	int fd = openat(dirfd, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return err_sys(MCRDT_EIO, "cannot open log segment %s", name);
	ssize_t n = pread(fd, h, sizeof h, 0);
	close(fd);
	return check_header(h, n < 0 ? 0 : (size_t)n, name, first, salt);
}

/* Whether a valid record starts anywhere in p[from, len): if one does, the
 * bad bytes before it are damage, not a torn tail. */
static bool valid_record_after(const uint8_t *p, size_t len, size_t from, uint64_t salt)
{
	for (size_t at = from; at < len; at++) {
		size_t used;
		if (sync_check_record_salted(p + at, len - at, salt, &used) == 0)
			return true;
	}
	return false;
}

/*
 * The bytes at p + at (in a segment at offset off) are no record: rc is
 * what checking them said. 1 when they are a torn tail (no valid record
 * after them), else MCRDT_ECORRUPT naming segment and offset.
 */
static int torn_or_damaged(const uint8_t *p, size_t len, size_t at, uint64_t salt, const char *name, uint64_t off,
			   int rc)
{
	char why[256];
	snprintf(why, sizeof why, "%s", rc == MCRDT_EPENDING ? "record cut short" : mcrdt_error_last());
	if (valid_record_after(p, len, at + 1, salt))
		return err_set(MCRDT_ECORRUPT, "log segment %s offset %" PRIu64 ": %s, with valid records after it",
			       name, off, why);
	return 1;
}

/*
 * Walks a segment's records. *good gets the offset after the last good
 * record and *count their number. Returns 0 when the segment ends cleanly,
 * 1 when it ends in a torn tail (bad or cut bytes with no valid record
 * after them), or MCRDT_ECORRUPT naming segment and offset.
 */
static int walk(const uint8_t *p, size_t len, const char *name, uint64_t salt, size_t *good,
		uint64_t *count)
{
	size_t at = HEADER_SIZE;
	uint64_t n = 0;
	int rc = 0;
	while (at < len) {
		size_t used;
		rc = sync_check_record_salted(p + at, len - at, salt, &used);
		if (rc)
			break;
		at += used;
		n++;
	}
	*good = at;
	*count = n;
	return at == len ? 0 : torn_or_damaged(p, len, at, salt, name, at, rc);
}

/* ---- opening ---- */

static int cmp_seg(const void *a, const void *b)
{
	uint64_t x = ((const struct segment *)a)->first, y = ((const struct segment *)b)->first;
	return x < y ? -1 : x > y;
}

/* The segments of dir, sorted; names that are not ours are ignored. */
static int list_segments(int dirfd, struct segment **out, size_t *n_out)
{
	DIR *d = dir_stream(dirfd, "the log directory");
	if (!d)
		return MCRDT_EIO;
	struct segment *v = NULL;
	size_t n = 0, cap = 0;
	int rc = 0;
	struct dirent *e;
	while ((e = readdir(d))) {
		uint64_t first;
		char tail[8];
		if (strlen(e->d_name) != 20 || sscanf(e->d_name, "%16" SCNx64 "%7s", &first, tail) != 2 ||
		    strcmp(tail, ".log") != 0)
			continue;
		if ((rc = GROW(v, cap, n + 1)))
			break;
		memset(&v[n], 0, sizeof v[n]);
		v[n].first = first;
		seg_name(v[n].name, sizeof v[n].name, first);
		if (strcmp(v[n].name, e->d_name) == 0) /* only the exact spelling we write */
			n++;
	}
	closedir(d);
	if (rc) {
		free(v);
		return rc;
	}
	if (n)
		qsort(v, n, sizeof *v, cmp_seg);
	*out = v;
	*n_out = n;
	return 0;
}

/* Creates a segment atomically: header in a temp file, fsync, rename. */
static int create_segment(sync_log *log, uint64_t first)
{
	char name[32], tmp[48];
	uint8_t h[HEADER_SIZE];
	uint32_t salt = 0;
	seg_name(name, sizeof name, first);
	snprintf(tmp, sizeof tmp, "%s.tmp", name);
	while (salt == 0)
		if (getrandom(&salt, sizeof salt, 0) != (ssize_t)sizeof salt)
			return err_sys(MCRDT_EIO, "cannot draw a random salt for %s", name);
	make_header(h, first, salt);
	int fd = openat(log->dirfd, tmp, O_RDWR | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (fd < 0)
		return err_sys(MCRDT_EIO, "cannot create log segment %s", name);
	if (write(fd, h, HEADER_SIZE) != HEADER_SIZE || fsync(fd) != 0) {
		int rc = err_sys(errno == ENOSPC ? MCRDT_ENOSPC : MCRDT_EIO, "cannot write log segment %s", name);
		close(fd);
		unlinkat(log->dirfd, tmp, 0);
		return rc;
	}
	if (renameat(log->dirfd, tmp, log->dirfd, name) != 0 || fsync(log->dirfd) != 0) {
		int rc = err_sys(MCRDT_EIO, "cannot put log segment %s in place", name);
		close(fd);
		return rc;
	}
	int grc = GROW(log->segs, log->capsegs, log->nsegs + 1);
	if (grc) {
		close(fd);
		return grc;
	}
	struct segment *s = &log->segs[log->nsegs++];
	memset(s, 0, sizeof *s);
	s->first = first;
	s->salt = salt_of(salt);
	snprintf(s->name, sizeof s->name, "%s", name);
	if (log->fd >= 0)
		close(log->fd);
	log->fd = fd;
	log->size = HEADER_SIZE;
	return 0;
}

/* Makes a directory's entry in its parent durable. */
static int sync_parent(const char *dir)
{
	char parent[4096];
	snprintf(parent, sizeof parent, "%s", dir);
	char *slash = strrchr(parent, '/');
	if (!slash)
		snprintf(parent, sizeof parent, ".");
	else if (slash == parent)
		parent[1] = '\0';
	else
		*slash = '\0';
	return sync_dir(parent);
}

static int open_dir(const char *dir, int *fd_out)
{
	*fd_out = -1;
	if (mkdir(dir, 0700) == 0) {
		int rc = sync_parent(dir); /* or a power cut could lose the new log whole */
		if (rc)
			return rc;
	} else if (errno != EEXIST) {
		return err_sys(MCRDT_EIO, "cannot create log directory %s", dir);
	}
	int fd = open(dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return err_sys(MCRDT_EIO, "cannot open log directory %s", dir);
	*fd_out = fd;
	return 0;
}

void sync_log_close(sync_log *log)
{
	if (!log)
		return;
	if (log->fd >= 0)
		close(log->fd);
	if (log->dirfd >= 0)
		close(log->dirfd);
	pthread_mutex_destroy(&log->lock);
	pthread_cond_destroy(&log->synced_cond);
	free(log->segs);
	free(log->dir);
	free(log);
}

int sync_log_open(sync_log **out, const char *dir, const struct sync_log_opts *opts,
		  struct sync_log_report *report)
{
	static const struct sync_log_opts defaults = SYNC_LOG_OPTS_INIT;
	struct sync_log_report rep = { 0 };
	if (!opts)
		opts = &defaults;
	if (opts->version != SYNC_LOG_OPTS_VERSION)
		return err_set(MCRDT_EVERSION, "sync_log_opts version %u not supported", opts->version);
	sync_log *log = calloc(1, sizeof *log);
	if (!log || !(log->dir = strdup(dir))) {
		free(log);
		return err_set(MCRDT_ENOMEM, "out of memory opening the log");
	}
	log->fd = log->dirfd = -1;
	log->opts = *opts;
	if (log->opts.segment_bytes < 4096)
		log->opts.segment_bytes = 4096;
	pthread_mutex_init(&log->lock, NULL);
	pthread_cond_init(&log->synced_cond, NULL);
	int rc = open_dir(dir, &log->dirfd);
	if (!rc)
		rc = list_segments(log->dirfd, &log->segs, &log->nsegs);
	log->capsegs = log->nsegs;
	/* Check everything before changing anything. */
	size_t cut_at = 0;
	bool torn = false;
	for (size_t i = 0; rc == 0 && i < log->nsegs; i++) {
		struct segment *s = &log->segs[i];
		uint8_t *buf;
		size_t len, good;
		uint64_t first;
		if (i + 1 < log->nsegs && log->segs[i + 1].first <= log->opts.verify_from) {
			/* Covered by a snapshot: the header only. */
			if ((rc = read_header(log->dirfd, s->name, &first, &s->salt)))
				break;
			if (i == 0)
				log->next = first;
			if (first != log->next || first != s->first || log->segs[i + 1].first < first)
				rc = err_set(MCRDT_ECORRUPT, "log segment %s starts at record %" PRIu64
					     ", expected %" PRIu64, s->name, first, log->next);
			s->count = log->segs[i + 1].first - first;
			log->next += s->count;
			continue;
		}
		if ((rc = read_range(log->dirfd, s->name, 0, UINT64_MAX, &buf, &len)))
			break;
		rc = check_header(buf, len, s->name, &first, &s->salt);
		if (rc == 0 && first != s->first)
			rc = err_set(MCRDT_ECORRUPT, "log segment %s offset 0: header names record %" PRIu64
				     ", its file name another", s->name, first);
		if (rc == 0 && i == 0)
			log->next = first; /* segments before it were compacted away */
		if (rc == 0 && first != log->next)
			rc = err_set(MCRDT_ECORRUPT, "log segment %s starts at record %" PRIu64 ", expected %" PRIu64
				     " (a segment is missing)", s->name, first, log->next);
		if (rc == 0) {
			rc = walk(buf, len, s->name, s->salt, &good, &s->count);
			if (rc == 1) {
				if (i + 1 < log->nsegs)
					rc = err_set(MCRDT_ECORRUPT, "log segment %s offset %zu: damaged record "
						     "before later segments", s->name, good);
				else {
					torn = true;
					cut_at = good;
					rep.torn_bytes = len - good;
					snprintf(rep.segment, sizeof rep.segment, "%s", s->name);
					rc = 0;
				}
			}
			log->next += s->count;
			if (i + 1 == log->nsegs)
				log->size = torn ? cut_at : len;
		}
		free(buf);
	}
	if (rc == 0 && log->nsegs) {
		struct segment *last = &log->segs[log->nsegs - 1];
		log->fd = openat(log->dirfd, last->name, O_WRONLY | O_NOFOLLOW | O_CLOEXEC);
		if (log->fd < 0)
			rc = err_sys(MCRDT_EIO, "cannot open log segment %s for writing", last->name);
		else if (torn && (ftruncate(log->fd, (off_t)cut_at) != 0 || fsync(log->fd) != 0))
			rc = err_sys(MCRDT_EIO, "cannot cut the torn tail of %s", last->name);
		else if (lseek(log->fd, (off_t)log->size, SEEK_SET) < 0)
			rc = err_sys(MCRDT_EIO, "cannot seek in %s", last->name);
	} else if (rc == 0) {
		rc = create_segment(log, 0);
	}
	rep.records = log->next; /* on damage: the good records before it */
	if (report)
		*report = rep;
	if (rc) {
		sync_log_close(log);
		return rc;
	}
	log->synced = log->next;
	*out = log;
	return 0;
}

/* ---- appending ---- */

/* A batch is encoded and written in pieces of about this many bytes: the
 * first sync of a big store does not hold its records encoded whole. */
#define WRITE_PIECE (1u << 20)

/*
 * Encodes and writes ops[0..count) at the end of the log, in pieces, all
 * or none of them; waits until they are durable. Group commit: the first
 * waiter syncs for everyone written so far; the others sleep until the
 * durable mark passes their records.
 */
static int commit(sync_log *log, const crdt_op *ops, uint64_t count, uint64_t *first_out)
{
	pthread_mutex_lock(&log->lock);
	int rc = log->broken;
	if (rc) {
		pthread_mutex_unlock(&log->lock);
		return err_set(rc, "the log stopped accepting appends after an earlier I/O error");
	}
	if (log->size >= log->opts.segment_bytes) {
		/* A leader may be syncing the old segment's fd: let it finish. */
		while (log->syncing)
			pthread_cond_wait(&log->synced_cond, &log->lock);
	}
	if (log->size >= log->opts.segment_bytes) {
		/* Seal the full segment durably before starting the next. */
		if (!log->opts.no_fsync && fdatasync(log->fd) != 0) {
			/* As in the leader's path: fsync errors do not heal. */
			log->broken = errno == ENOSPC ? MCRDT_ENOSPC : MCRDT_EIO;
			rc = err_sys(log->broken, "cannot sync the log");
			pthread_cond_broadcast(&log->synced_cond);
		} else {
			log->synced = log->next;
		}
		if (!rc)
			rc = create_segment(log, log->next);
		if (rc) {
			pthread_mutex_unlock(&log->lock);
			return rc;
		}
	}
	/* Salt the records for the segment they land in. */
	uint64_t salt = log->segs[log->nsegs - 1].salt;
	struct sync_buf b = { 0 };
	uint64_t wrote = 0;
	int werr = 0;
	for (uint64_t i = 0; i < count && !rc;) {
		b.len = 0;
		for (; i < count && b.len < WRITE_PIECE && !rc; i++)
			if (!(rc = sync_encode_record(&b, &ops[i])))
				sync_salt_record(b.p + b.len, salt);
		if (!rc && write_all(log->fd, b.p, b.len) != 0) {
			werr = errno;
			rc = err_sys(werr == ENOSPC ? MCRDT_ENOSPC : MCRDT_EIO, "cannot append to the log");
		}
		wrote += rc ? 0 : b.len;
	}
	sync_buf_free(&b);
	if (rc) {
		/* Never leave part of a batch (or half a record) for later
		 * records to follow. */
		if ((wrote || werr) &&
		    (ftruncate(log->fd, (off_t)log->size) != 0 || lseek(log->fd, (off_t)log->size, SEEK_SET) < 0))
			log->broken = MCRDT_EIO;
		pthread_mutex_unlock(&log->lock);
		return rc;
	}
	log->size += wrote;
	uint64_t first = log->next;
	log->next += count;
	log->segs[log->nsegs - 1].count += count;
	uint64_t mine = log->next;
	if (log->opts.no_fsync) {
		log->synced = log->next;
		pthread_mutex_unlock(&log->lock);
		if (first_out)
			*first_out = first;
		return 0;
	}
	while (log->synced < mine && !log->broken) {
		if (log->syncing) {
			pthread_cond_wait(&log->synced_cond, &log->lock);
			continue;
		}
		log->syncing = true;
		uint64_t target = log->next;
		int fd = log->fd;
		pthread_mutex_unlock(&log->lock);
		int ok = fdatasync(fd) == 0;
		int err = errno;
		pthread_mutex_lock(&log->lock);
		log->syncing = false;
		if (ok && target > log->synced)
			log->synced = target;
		if (!ok)
			log->broken = err == ENOSPC ? MCRDT_ENOSPC : MCRDT_EIO; /* fsync errors do not heal */
		pthread_cond_broadcast(&log->synced_cond);
	}
	rc = log->synced >= mine ? 0 : log->broken;
	pthread_mutex_unlock(&log->lock);
	if (rc)
		return err_set(rc, "cannot make the log durable (fdatasync failed)");
	if (first_out)
		*first_out = first;
	return 0;
}

int sync_log_append(sync_log *log, const crdt_op *op, uint64_t *index_out)
{
	return sync_log_append_batch(log, op, 1, index_out);
}

int sync_log_append_batch(sync_log *log, const crdt_op *ops, size_t n, uint64_t *first_out)
{
	return n ? commit(log, ops, n, first_out) : 0;
}

uint64_t sync_log_next(sync_log *log)
{
	pthread_mutex_lock(&log->lock);
	uint64_t n = log->next;
	pthread_mutex_unlock(&log->lock);
	return n;
}

/* ---- replay ---- */

int sync_log_replay(sync_log *log, uint64_t from, sync_replay_fn fn, void *ctx)
{
	pthread_mutex_lock(&log->lock);
	size_t nsegs = log->nsegs;
	struct segment *segs = malloc((nsegs ? nsegs : 1) * sizeof *segs);
	if (segs)
		memcpy(segs, log->segs, nsegs * sizeof *segs);
	pthread_mutex_unlock(&log->lock);
	if (!segs)
		return err_set(MCRDT_ENOMEM, "out of memory");
	int rc = 0;
	if (nsegs && from < segs[0].first)
		rc = err_set(MCRDT_ENOTFOUND, "log records before %" PRIu64 " were compacted away", segs[0].first);
	for (size_t i = 0; rc == 0 && i < nsegs; i++) {
		struct segment *s = &segs[i];
		if (s->first + s->count <= from)
			continue;
		uint8_t *buf;
		size_t len;
		if ((rc = read_range(log->dirfd, s->name, 0, UINT64_MAX, &buf, &len)))
			break;
		size_t at = HEADER_SIZE;
		uint64_t hfirst, salt = 0;
		if ((rc = check_header(buf, len, s->name, &hfirst, &salt)) == 0 && hfirst != s->first)
			rc = err_set(MCRDT_ECORRUPT, "log segment %s: header names record %" PRIu64, s->name, hfirst);
		crdt_op op; /* one op, reset per record: no allocation per record */
		crdt_op_init(&op, 0);
		for (uint64_t k = 0; rc == 0 && k < s->count; k++) {
			size_t used;
			if (s->first + k < from) {
				rc = sync_check_record_salted(buf + at, len - at, salt, &used);
			} else {
				crdt_op_reset(&op);
				rc = sync_decode_record_into(buf + at, len - at, salt, &op, &used);
				if (rc == 0) {
					rc = fn(ctx, &op, s->first + k);
				} else if (rc != MCRDT_EVERSION) {
					rc = err_set(MCRDT_ECORRUPT, "log segment %s offset %zu: %s", s->name, at,
						     mcrdt_error_last());
				}
			}
			if (rc == MCRDT_EPENDING)
				rc = err_set(MCRDT_ECORRUPT, "log segment %s offset %zu: record cut short (a "
					     "segment that was not checked at open)", s->name, at);
			at += used;
		}
		crdt_op_free(&op);
		if (rc == 0 && i + 1 < nsegs && at != len)
			rc = err_set(MCRDT_ECORRUPT, "log segment %s offset %zu: more records than its "
				     "successor's index allows", s->name, at);
		free(buf);
	}
	free(segs);
	return rc;
}

/* ---- records other processes appended ---- */

/* Takes in the segment that starts at log->next, if another process
 * created it: returns 1 when it did, 0 when there is none. */
static int take_next_segment(sync_log *log)
{
	char name[32];
	struct stat st;
	if (log->segs[log->nsegs - 1].first == log->next)
		return 0; /* the last segment is still empty: nothing can follow it */
	seg_name(name, sizeof name, log->next);
	if (fstatat(log->dirfd, name, &st, AT_SYMLINK_NOFOLLOW) != 0)
		return errno == ENOENT ? 0 : err_sys(MCRDT_EIO, "cannot stat log segment %s", name);
	uint64_t first, salt;
	int rc = read_header(log->dirfd, name, &first, &salt);
	if (rc)
		return rc;
	if (first != log->next)
		return err_set(MCRDT_ECORRUPT, "log segment %s offset 0: header names record %" PRIu64, name, first);
	int fd = openat(log->dirfd, name, O_WRONLY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return err_sys(MCRDT_EIO, "cannot open log segment %s for writing", name);
	if ((rc = GROW(log->segs, log->capsegs, log->nsegs + 1))) {
		close(fd);
		return rc;
	}
	struct segment *s = &log->segs[log->nsegs++];
	memset(s, 0, sizeof *s);
	s->first = first;
	s->salt = salt;
	snprintf(s->name, sizeof s->name, "%s", name);
	close(log->fd);
	log->fd = fd;
	log->size = HEADER_SIZE;
	return 1;
}

int sync_log_refresh(sync_log *log, bool cut, sync_replay_fn fn, void *ctx, uint64_t *new_out)
{
	uint64_t before;
	int rc = 0;
	pthread_mutex_lock(&log->lock);
	before = log->next;
	crdt_op op;
	crdt_op_init(&op, 0);
	while (rc == 0) {
		struct segment *s = &log->segs[log->nsegs - 1];
		struct stat st;
		if (fstat(log->fd, &st) != 0) {
			rc = err_sys(MCRDT_EIO, "cannot stat log segment %s", s->name);
			break;
		}
		uint64_t end = (uint64_t)st.st_size;
		if (end < log->size) {
			rc = err_set(MCRDT_ECORRUPT, "log segment %s shrank from %" PRIu64 " to %" PRIu64
				     " bytes under this process (repaired or replaced by another)",
				     s->name, log->size, end);
			break;
		}
		if (end > log->size) {
			uint8_t *buf = NULL;
			if ((rc = read_range(log->dirfd, s->name, log->size, end, &buf, NULL)))
				break;
			size_t len = (size_t)(end - log->size), at = 0;
			while (rc == 0 && at < len) {
				size_t used;
				crdt_op_reset(&op);
				int drc = sync_decode_record_into(buf + at, len - at, s->salt, &op, &used);
				if (drc == 0) {
					if (fn)
						rc = fn(ctx, &op, log->next);
					at += used;
					log->size += used;
					log->next++;
					s->count++;
					continue;
				}
				/* Torn or damaged as open judges it (by its framing): a whole
				 * record that does not decode (a newer format, no memory) is
				 * an error, never a tail to cut. */
				char why[256];
				snprintf(why, sizeof why, "%s", mcrdt_error_last());
				int frc = sync_check_record_salted(buf + at, len - at, s->salt, &used);
				if (frc == 0)
					rc = err_set(drc, "log segment %s offset %" PRIu64 ": %s", s->name, log->size, why);
				else if ((rc = torn_or_damaged(buf, len, at, s->salt, s->name, log->size, frc)) == 1)
					rc = 0;
				break;
			}
			free(buf);
			if (rc == 0 && at < len && cut) {
				/* The caller holds the store lock: no writer is mid-append,
				 * so these bytes are a crashed writer's torn tail. */
				if (ftruncate(log->fd, (off_t)log->size) != 0 || fsync(log->fd) != 0)
					rc = err_sys(MCRDT_EIO, "cannot cut the torn tail of %s", s->name);
			}
			if (rc || at < len)
				break;
		}
		int t = take_next_segment(log);
		if (t <= 0) {
			rc = t;
			break;
		}
	}
	crdt_op_free(&op);
	if (lseek(log->fd, (off_t)log->size, SEEK_SET) < 0 && rc == 0)
		rc = err_sys(MCRDT_EIO, "cannot seek in the log");
	log->synced = log->next;
	if (new_out)
		*new_out = log->next - before;
	pthread_mutex_unlock(&log->lock);
	return rc;
}

/* ---- compaction ---- */

int sync_log_compact(sync_log *log, uint64_t upto, unsigned *removed_out)
{
	unsigned removed = 0;
	int rc = 0;
	pthread_mutex_lock(&log->lock);
	while (log->nsegs > 1 && log->segs[0].first + log->segs[0].count <= upto) {
		if (unlinkat(log->dirfd, log->segs[0].name, 0) != 0) {
			rc = err_sys(MCRDT_EIO, "cannot remove log segment %s", log->segs[0].name);
			break;
		}
		memmove(log->segs, log->segs + 1, (log->nsegs - 1) * sizeof *log->segs);
		log->nsegs--;
		removed++;
	}
	if (removed && rc == 0 && fsync(log->dirfd) != 0)
		rc = err_sys(MCRDT_EIO, "cannot sync the log directory");
	pthread_mutex_unlock(&log->lock);
	if (removed_out)
		*removed_out = removed;
	return rc;
}

struct stable_ctx {
	const crdt_vv *const *peers;
	size_t npeers;
	uint64_t upto;
};

static int stable_one(void *vctx, const crdt_op *op, uint64_t index)
{
	struct stable_ctx *c = vctx;
	for (size_t i = 0; i < c->npeers; i++)
		if (!crdt_vv_contains(c->peers[i], op->id))
			return 1; /* stop: this one is not everywhere yet */
	c->upto = index + 1;
	return 0;
}

int sync_log_stable_prefix(sync_log *log, const crdt_vv *const *peers, size_t npeers,
			   uint64_t *upto_out)
{
	pthread_mutex_lock(&log->lock);
	uint64_t first = log->nsegs ? log->segs[0].first : 0;
	pthread_mutex_unlock(&log->lock);
	struct stable_ctx c = { peers, npeers, first };
	int rc = sync_log_replay(log, first, stable_one, &c);
	if (rc < 0)
		return rc;
	*upto_out = c.upto;
	return 0;
}

/* ---- repair ---- */

/* A name for a set-aside file that replaces nothing: NAME.SUFFIX, then
 * NAME.SUFFIX.1, .2, ... */
static void aside_name(int dirfd, const char *name, const char *suffix, char *out, size_t size)
{
	struct stat st;
	snprintf(out, size, "%s.%s", name, suffix);
	for (unsigned k = 1; fstatat(dirfd, out, &st, AT_SYMLINK_NOFOLLOW) == 0; k++)
		snprintf(out, size, "%s.%s.%u", name, suffix, k);
}

int sync_log_repair(const char *dir, struct sync_log_report *report)
{
	struct sync_log_report rep = { 0 };
	int dirfd, rc = open_dir(dir, &dirfd);
	if (rc)
		return rc;
	struct segment *segs = NULL;
	size_t nsegs = 0;
	if ((rc = list_segments(dirfd, &segs, &nsegs))) {
		close(dirfd);
		return rc;
	}
	uint64_t next = 0;
	bool damaged = false;
	for (size_t i = 0; rc == 0 && i < nsegs; i++) {
		struct segment *s = &segs[i];
		if (damaged) {
			char aside[64];
			aside_name(dirfd, s->name, "damaged", aside, sizeof aside);
			if (renameat(dirfd, s->name, dirfd, aside) != 0)
				rc = err_sys(MCRDT_EIO, "cannot set %s aside", s->name);
			rep.set_aside++;
			continue;
		}
		uint8_t *buf;
		size_t len, good = HEADER_SIZE;
		uint64_t first, count = 0, salt = 0;
		if ((rc = read_range(dirfd, s->name, 0, UINT64_MAX, &buf, &len)))
			break;
		int hrc = check_header(buf, len, s->name, &first, &salt);
		if (hrc == 0 && i == 0 && first == s->first)
			next = first;
		if (hrc == MCRDT_EVERSION) {
			rc = hrc; /* a newer mcrdt's log is not ours to cut */
		} else if (hrc || first != next || first != s->first) {
			damaged = true;
			good = 0;
		} else {
			int w = walk(buf, len, s->name, salt, &good, &count);
			damaged = w != 0;
			next += count;
		}
		rep.records = next;
		if (rc == 0 && damaged) {
			snprintf(rep.segment, sizeof rep.segment, "%s", s->name);
			rep.damaged_at = good;
			rep.torn_bytes = len - good;
			if (good == 0) {
				char aside[64];
				aside_name(dirfd, s->name, "damaged", aside, sizeof aside);
				if (renameat(dirfd, s->name, dirfd, aside) != 0)
					rc = err_sys(MCRDT_EIO, "cannot set %s aside", s->name);
				rep.set_aside++;
			} else {
				/* The bytes cut off are kept beside it: nothing is thrown away. */
				char aside[64];
				aside_name(dirfd, s->name, "tail.damaged", aside, sizeof aside);
				int tfd = openat(dirfd, aside, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
				if (tfd < 0 || write_all(tfd, buf + good, len - good) != 0 || fsync(tfd) != 0)
					rc = err_sys(MCRDT_EIO, "cannot save the damaged tail of %s", s->name);
				if (tfd >= 0)
					close(tfd);
				int fd = rc ? -1 : openat(dirfd, s->name, O_WRONLY | O_NOFOLLOW | O_CLOEXEC);
				if (rc == 0 && (fd < 0 || ftruncate(fd, (off_t)good) != 0 || fsync(fd) != 0))
					rc = err_sys(MCRDT_EIO, "cannot cut %s at offset %zu", s->name, good);
				if (fd >= 0)
					close(fd);
			}
		}
		free(buf);
	}
	if (rc == 0 && fsync(dirfd) != 0)
		rc = err_sys(MCRDT_EIO, "cannot sync the log directory");
	free(segs);
	close(dirfd);
	if (report)
		*report = rep;
	return rc;
}
