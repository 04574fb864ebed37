/*
 * tests/sync/test_log.c — the durable op log (sync/log.h) as its user sees
 * it: what goes in comes out, in order, after a reopen; segments roll;
 * every cut and every flipped bit of a segment is either cut off as a torn
 * tail or refused naming segment and offset, never replayed as a different
 * op; refused logs are left byte for byte as they were; repair keeps what
 * is before the damage and sets the rest aside; group commit and batches
 * lose nothing; a writer killed at random loses no acknowledged record.
 *
 * fdatasync, fsync and write are wrapped at link time (-Wl,--wrap=...) so
 * that the tests can count commits, see what is synced and inject the
 * failures of a full disk or a failing device.
 *
 * The "regressions" case reproduces defects found in review, now fixed.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define XXH_INLINE_ALL
#include <xxhash.h>

#include "common/varint.h"
#include "sync/codec.h"
#include "sync/log.h"
#include "tests/check_run.h"
#include "tests/crdt/util.h"

#ifndef CRASHWRITER
#error "CRASHWRITER must name the crashwriter program"
#endif

#define HEADER 32

/* ---- link-time wrappers: counting commits, injecting failures ---- */

int __real_fdatasync(int fd);
int __wrap_fdatasync(int fd);
ssize_t __real_write(int fd, const void *p, size_t n);
ssize_t __wrap_write(int fd, const void *p, size_t n);
int __real_fsync(int fd);
int __wrap_fsync(int fd);

static atomic_long n_fdatasync;        /* calls so far */
static atomic_int fail_fdatasync;      /* the next call fails with EIO */
static atomic_int delay_fdatasync_ms;  /* the next call first sleeps this long */
static atomic_int short_write = -1;    /* the next write writes this many bytes, */
static atomic_int fail_write;          /* ... and the one after fails with ENOSPC */
/* The inodes fsync()ed while recording (one thread only). */
static bool fsync_recording;
static ino_t fsynced[64];
static size_t nfsynced;

static void sleep_ms(long ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };
	while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
		;
}

int __wrap_fdatasync(int fd)
{
	atomic_fetch_add(&n_fdatasync, 1);
	int delay = atomic_exchange(&delay_fdatasync_ms, 0);
	if (delay)
		sleep_ms(delay);
	if (atomic_exchange(&fail_fdatasync, 0)) {
		errno = EIO;
		return -1;
	}
	return __real_fdatasync(fd);
}

ssize_t __wrap_write(int fd, const void *p, size_t n)
{
	int k = atomic_exchange(&short_write, -1);
	if (k >= 0) {
		atomic_store(&fail_write, 1);
		return k == 0 ? (errno = ENOSPC, -1) : __real_write(fd, p, (size_t)k < n ? (size_t)k : n);
	}
	if (atomic_exchange(&fail_write, 0)) {
		errno = ENOSPC;
		return -1;
	}
	return __real_write(fd, p, n);
}

int __wrap_fsync(int fd)
{
	struct stat st;
	if (fsync_recording && nfsynced < 64 && fstat(fd, &st) == 0)
		fsynced[nfsynced++] = st.st_ino;
	return __real_fsync(fd);
}

/* ---- files and directories ---- */

struct blob {
	uint8_t *p;
	size_t n;
};

static void blob_free(struct blob *b)
{
	free(b->p);
	b->p = NULL;
	b->n = 0;
}

static void path_in(char *out, size_t size, const char *dir, const char *name)
{
	int n = snprintf(out, size, "%s/%s", dir, name);
	ck_assert(n > 0 && (size_t)n < size);
}

static struct blob slurp(const char *dir, const char *name)
{
	char path[512];
	path_in(path, sizeof path, dir, name);
	int fd = open(path, O_RDONLY);
	ck_assert_msg(fd >= 0, "open %s: %s", path, strerror(errno));
	struct stat st;
	ck_assert_int_eq(fstat(fd, &st), 0);
	struct blob b = { malloc((size_t)st.st_size + 1), (size_t)st.st_size };
	ck_assert_ptr_nonnull(b.p);
	size_t got = 0;
	while (got < b.n) {
		ssize_t r = read(fd, b.p + got, b.n - got);
		ck_assert_msg(r > 0, "read %s", path);
		got += (size_t)r;
	}
	close(fd);
	return b;
}

static void spit(const char *dir, const char *name, const void *p, size_t n)
{
	char path[512];
	path_in(path, sizeof path, dir, name);
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	ck_assert_msg(fd >= 0, "create %s: %s", path, strerror(errno));
	const uint8_t *q = p;
	while (n) {
		ssize_t w = write(fd, q, n);
		ck_assert_msg(w > 0, "write %s", path);
		q += w;
		n -= (size_t)w;
	}
	close(fd);
}

static bool exists(const char *dir, const char *name)
{
	char path[512];
	struct stat st;
	path_in(path, sizeof path, dir, name);
	return stat(path, &st) == 0;
}

static void make_dir(char *out, size_t size)
{
	const char *tmp = getenv("TMPDIR");
	int n = snprintf(out, size, "%s/test_log.XXXXXX", tmp && *tmp ? tmp : "/tmp");
	ck_assert(n > 0 && (size_t)n < size);
	ck_assert_msg(mkdtemp(out) != NULL, "mkdtemp: %s", strerror(errno));
}

static void remove_dir(const char *dir)
{
	DIR *d = opendir(dir);
	ck_assert_ptr_nonnull(d);
	struct dirent *e;
	while ((e = readdir(d))) {
		if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
			continue;
		char path[512];
		path_in(path, sizeof path, dir, e->d_name);
		ck_assert_msg(unlink(path) == 0, "unlink %s: %s", path, strerror(errno));
	}
	closedir(d);
	ck_assert_int_eq(rmdir(dir), 0);
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Names in dir ending in suffix (every name for ""), sorted; NULL-terminated. */
static char **names_in(const char *dir, const char *suffix, size_t *n_out)
{
	DIR *d = opendir(dir);
	ck_assert_ptr_nonnull(d);
	char **v = NULL;
	size_t n = 0, cap = 0, sl = strlen(suffix);
	struct dirent *e;
	while ((e = readdir(d))) {
		size_t l = strlen(e->d_name);
		if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0 || l < sl ||
		    strcmp(e->d_name + l - sl, suffix) != 0)
			continue;
		if (n + 1 >= cap) {
			cap = cap ? cap * 2 : 16;
			v = realloc(v, cap * sizeof *v);
			ck_assert_ptr_nonnull(v);
		}
		v[n++] = strdup(e->d_name);
	}
	closedir(d);
	if (n)
		qsort(v, n, sizeof *v, cmp_str);
	else
		v = calloc(1, sizeof *v);
	v[n] = NULL;
	if (n_out)
		*n_out = n;
	return v;
}

static void names_free(char **v)
{
	for (size_t i = 0; v[i]; i++)
		free(v[i]);
	free(v);
}

/* Every file of a directory with its bytes: "nothing was touched". */
struct snap {
	char **names;
	size_t n;
	struct blob *data;
};

static struct snap snap_take(const char *dir)
{
	struct snap s;
	s.names = names_in(dir, "", &s.n);
	s.data = calloc(s.n + 1, sizeof *s.data);
	for (size_t i = 0; i < s.n; i++)
		s.data[i] = slurp(dir, s.names[i]);
	return s;
}

static void snap_free(struct snap *s)
{
	for (size_t i = 0; i < s->n; i++)
		blob_free(&s->data[i]);
	free(s->data);
	names_free(s->names);
}

static void assert_untouched(const struct snap *before, const char *dir)
{
	struct snap now = snap_take(dir);
	ck_assert_msg(now.n == before->n, "files in the log directory: %zu, before %zu", now.n, before->n);
	for (size_t i = 0; i < now.n; i++) {
		ck_assert_str_eq(now.names[i], before->names[i]);
		ck_assert_msg(now.data[i].n == before->data[i].n &&
				      memcmp(now.data[i].p, before->data[i].p, now.data[i].n) == 0,
			      "%s changed", now.names[i]);
	}
	snap_free(&now);
}

/* ---- segment headers ---- */

static uint64_t get64(const uint8_t *p)
{
	uint64_t v = 0;
	for (int i = 0; i < 8; i++)
		v |= (uint64_t)p[i] << (8 * i);
	return v;
}

static void put64(uint8_t *p, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

/* Checks a segment's header and that its name is its first index. */
static uint64_t header_first(const struct blob *b, const char *name)
{
	ck_assert_uint_ge(b->n, HEADER);
	ck_assert(memcmp(b->p, "MCRDTLOG", 8) == 0);
	ck_assert_uint_eq(b->p[8] | b->p[9] << 8 | b->p[10] << 16 | (uint32_t)b->p[11] << 24, SYNC_FORMAT_VERSION);
	ck_assert_uint_eq(get64(b->p + 24), XXH3_64bits(b->p, 24));
	uint64_t first = get64(b->p + 16);
	char want[32];
	snprintf(want, sizeof want, "%016" PRIx64 ".log", first);
	ck_assert_str_eq(name, want);
	return first;
}

/* ---- ops ---- */

static const char *SEEN[] = { "\\Seen" };
static const char *FLAGGED[] = { "\\Flagged" };
static const char *TWO[] = { "$Label1", "\\Answered" };

/*
 * A history of two replicas that uses every op type: each works on its own
 * and they sync every round, so ops carry real deps, and their concurrent
 * appends to INBOX make CLAIMs. c->log holds every op in issue order.
 */
static void make_history(crdt_cluster *c, unsigned rounds)
{
	ck_assert_int_eq(crdt_cluster_init(c, 2, 0x51), 0);
	crdt_dot inbox, work;
	LOCAL(c, 0, crdt_model_create(m_, &ops_, "INBOX", 7, &inbox));
	LOCAL(c, 0, crdt_model_create(m_, &ops_, "Work", 8, &work));
	LOCAL(c, 1, crdt_model_subscribe(m_, &ops_, "INBOX", true));
	sync_all(c);
	for (unsigned r = 0; r < rounds; r++) {
		char meta[64], name[32], renamed[32];
		snprintf(meta, sizeof meta, "message %u of replica 0", r);
		crdt_dot a0, a1, cp, mv, tmp;
		LOCAL(c, 0, crdt_model_append(m_, &ops_, inbox, SEEN, 1, meta, strlen(meta), &a0, NULL));
		LOCAL(c, 1, crdt_model_append(m_, &ops_, inbox, NULL, 0, NULL, 0, &a1, NULL));
		LOCAL(c, 0, crdt_model_flags(m_, &ops_, a0, CRDT_OP_FLAGS_ADD, FLAGGED, 1));
		LOCAL(c, 0, crdt_model_flags(m_, &ops_, a0, CRDT_OP_FLAGS_REMOVE, SEEN, 1));
		sync_all(c);
		LOCAL(c, 1, crdt_model_flags(m_, &ops_, a0, CRDT_OP_FLAGS_SET, TWO, 2));
		LOCAL(c, 1, crdt_model_copy(m_, &ops_, a1, work, false, "copy", 4, &cp, NULL));
		LOCAL(c, 0, crdt_model_expunge(m_, &ops_, a0));
		LOCAL(c, 1, crdt_model_copy(m_, &ops_, cp, inbox, true, NULL, 0, &mv, NULL));
		snprintf(name, sizeof name, "Tmp%u", r);
		snprintf(renamed, sizeof renamed, "Old/Tmp%u", r);
		LOCAL(c, 0, crdt_model_create(m_, &ops_, name, 100 + r, &tmp));
		LOCAL(c, 0, crdt_model_subscribe(m_, &ops_, name, true));
		LOCAL(c, 0, crdt_model_rename(m_, &ops_, tmp, renamed));
		LOCAL(c, 0, crdt_model_subscribe(m_, &ops_, name, false));
		if (r % 2)
			LOCAL(c, 0, crdt_model_delete(m_, &ops_, tmp));
		sync_all(c);
	}
}

static struct blob encode(const crdt_op *op)
{
	struct sync_buf b = { 0 };
	ck_assert_msg(sync_encode_record(&b, op) == 0, "encode: %s", mcrdt_error_last());
	return (struct blob){ b.p, b.len };
}

static void assert_same_op(const crdt_op *got, const crdt_op *want, uint64_t index)
{
	ck_assert_msg(got->type == want->type && crdt_dot_eq(got->id, want->id),
		      "record %" PRIu64 ": op %" PRIx64 ".%" PRIu64 " (%s), logged %" PRIx64 ".%" PRIu64 " (%s)",
		      index, got->id.replica, got->id.counter, crdt_op_type_name(got->type), want->id.replica,
		      want->id.counter, crdt_op_type_name(want->type));
	struct blob a = encode(got), b = encode(want);
	ck_assert_msg(a.n == b.n && memcmp(a.p, b.p, a.n) == 0, "record %" PRIu64 " differs from the op logged",
		      index);
	blob_free(&a);
	blob_free(&b);
}

/* What a replay handed over: copies of the ops and their indexes. */
struct got {
	crdt_oplist ops;
	uint64_t *index;
	size_t cap;
	int stop_at; /* the callback returns 42 at this many ops (-1: never) */
};

static int collect(void *ctx, const crdt_op *op, uint64_t index)
{
	struct got *g = ctx;
	if (g->stop_at >= 0 && g->ops.n == (size_t)g->stop_at)
		return 42;
	if (g->ops.n == g->cap) {
		g->cap = g->cap ? g->cap * 2 : 64;
		g->index = realloc(g->index, g->cap * sizeof *g->index);
		ck_assert_ptr_nonnull(g->index);
	}
	crdt_op copy;
	ck_assert_int_eq(crdt_op_copy(&copy, op), 0);
	g->index[g->ops.n] = index;
	ck_assert_int_eq(crdt_oplist_push(&g->ops, &copy), 0);
	return 0;
}

static void got_free(struct got *g)
{
	crdt_oplist_free(&g->ops);
	free(g->index);
	memset(g, 0, sizeof *g);
}

/* Replays from from on and checks it hands over exactly ops[from, n). */
static void assert_replay(sync_log *log, uint64_t from, const crdt_op *ops, uint64_t n)
{
	struct got g = { CRDT_OPLIST_INIT, NULL, 0, -1 };
	int rc = sync_log_replay(log, from, collect, &g);
	ck_assert_msg(rc == 0, "replay from %" PRIu64 ": %s", from, mcrdt_error_last());
	ck_assert_uint_eq(g.ops.n, from < n ? n - from : 0);
	for (size_t k = 0; k < g.ops.n; k++) {
		ck_assert_uint_eq(g.index[k], from + k);
		assert_same_op(&g.ops.ops[k], &ops[from + k], from + k);
	}
	got_free(&g);
}

static sync_log *open_ok(const char *dir, uint64_t segment_bytes, bool no_fsync, struct sync_log_report *rep)
{
	struct sync_log_opts o = SYNC_LOG_OPTS_INIT;
	if (segment_bytes)
		o.segment_bytes = segment_bytes;
	o.no_fsync = no_fsync;
	sync_log *log;
	int rc = sync_log_open(&log, dir, &o, rep);
	ck_assert_msg(rc == 0, "open %s: %s", dir, mcrdt_error_last());
	return log;
}

/* Appends ops[from, to): one by one (batch 0 or 1) or in batches. */
static void append_ops(sync_log *log, const crdt_op *ops, size_t from, size_t to, size_t batch)
{
	uint64_t base = sync_log_next(log);
	for (size_t k = from; k < to;) {
		size_t n = batch > 1 ? (to - k < batch ? to - k : batch) : 1;
		uint64_t first = UINT64_MAX;
		int rc = n == 1 ? sync_log_append(log, &ops[k], &first) : sync_log_append_batch(log, &ops[k], n, &first);
		ck_assert_msg(rc == 0, "append: %s", mcrdt_error_last());
		ck_assert_uint_eq(first, base + (k - from));
		k += n;
	}
	ck_assert_uint_eq(sync_log_next(log), base + (to - from));
}

static void assert_msg_has(const char *what)
{
	const char *msg = mcrdt_error_last();
	ck_assert_msg(strstr(msg, what) != NULL, "error message \"%s\" does not mention \"%s\"", msg, what);
}

/* ---- round trip ---- */

/* Every op type goes in and comes back in order after a reopen, and the
 * replayed history rebuilds the very state of the replica that made it. */
START_TEST(roundtrip_every_type)
{
	char dir[256];
	make_dir(dir, sizeof dir);
	crdt_cluster c;
	make_history(&c, 6);
	const crdt_op *ops = c.log.ops;
	size_t n = c.log.n;
	bool seen[CRDT_OP_TYPE_MAX + 1] = { 0 };
	for (size_t k = 0; k < n; k++)
		seen[ops[k].type] = true;
	for (int t = CRDT_OP_MBOX_CREATE; t <= CRDT_OP_TYPE_MAX; t++)
		ck_assert_msg(seen[t], "the history has no %s op", crdt_op_type_name((enum crdt_op_type)t));

	struct sync_log_report rep;
	sync_log *log = open_ok(dir, 0, false, &rep);
	ck_assert_uint_eq(rep.records, 0);
	ck_assert_uint_eq(sync_log_next(log), 0);
	append_ops(log, ops, 0, n / 2, 1);
	append_ops(log, ops, n / 2, n, 7);
	assert_replay(log, 0, ops, n); /* before closing, too */
	sync_log_close(log);

	memset(&rep, 0xff, sizeof rep);
	log = open_ok(dir, 0, false, &rep);
	ck_assert_uint_eq(rep.records, n);
	ck_assert_uint_eq(rep.torn_bytes, 0);
	ck_assert_str_eq(rep.segment, "");
	ck_assert_uint_eq(sync_log_next(log), n);
	assert_replay(log, 0, ops, n);
	assert_replay(log, n / 3, ops, n);
	assert_replay(log, n - 1, ops, n);
	assert_replay(log, n, ops, n);
	assert_replay(log, n + 10, ops, n);

	/* A callback's non-zero return stops the replay and is returned. */
	struct got g = { CRDT_OPLIST_INIT, NULL, 0, 5 };
	ck_assert_int_eq(sync_log_replay(log, 2, collect, &g), 42);
	ck_assert_uint_eq(g.ops.n, 5);
	ck_assert_uint_eq(g.index[4], 6);
	got_free(&g);

	/* Replayed into a fresh replica, the log gives the same state. */
	g = (struct got){ CRDT_OPLIST_INIT, NULL, 0, -1 };
	ck_assert_int_eq(sync_log_replay(log, 0, collect, &g), 0);
	crdt_model *m;
	ck_assert_int_eq(crdt_model_new(&m, 0x999), 0);
	for (size_t k = 0; k < g.ops.n; k++) {
		int rc = crdt_model_receive(m, &g.ops.ops[k]);
		ck_assert_msg(rc == 0, "receive record %zu: %s", k, mcrdt_error_last());
	}
	crdt_oplist claims = CRDT_OPLIST_INIT;
	ck_assert_int_eq(crdt_model_settle(m, &claims), 0);
	ck_assert_uint_eq(claims.n, 0);
	char *want, *have;
	ck_assert_int_eq(crdt_model_describe(c.r[0], &want), 0);
	ck_assert_int_eq(crdt_model_describe(m, &have), 0);
	ck_assert_str_eq(have, want);
	free(want);
	free(have);
	crdt_oplist_free(&claims);
	crdt_model_free(m);
	got_free(&g);

	/* Appends go on after a reopen. */
	append_ops(log, ops, 0, 3, 1);
	ck_assert_uint_eq(sync_log_next(log), n + 3);
	sync_log_close(log);
	log = open_ok(dir, 0, true, &rep);
	ck_assert_uint_eq(rep.records, n + 3);
	struct got tail = { CRDT_OPLIST_INIT, NULL, 0, -1 };
	ck_assert_int_eq(sync_log_replay(log, n, collect, &tail), 0);
	ck_assert_uint_eq(tail.ops.n, 3);
	for (size_t k = 0; k < 3; k++)
		assert_same_op(&tail.ops.ops[k], &ops[k], n + k);
	got_free(&tail);
	sync_log_close(log);

	/* A fresh directory is made, with mode 0700; bad opts are refused. */
	struct stat st;
	ck_assert_int_eq(stat(dir, &st), 0);
	char sub[300];
	snprintf(sub, sizeof sub, "%s/sub", dir);
	log = open_ok(sub, 0, true, NULL);
	sync_log_close(log);
	ck_assert_int_eq(stat(sub, &st), 0);
	ck_assert_uint_eq(st.st_mode & 0777, 0700);
	struct sync_log_opts bad = SYNC_LOG_OPTS_INIT;
	bad.version = 99;
	ck_assert_int_eq(sync_log_open(&log, sub, &bad, NULL), MCRDT_EVERSION);
	remove_dir(sub);

	crdt_cluster_free(&c);
	remove_dir(dir);
}
END_TEST

/* ---- segments ---- */

/* The salt a segment's header gives its records' checksums: 32 random
 * bits at offset 12, widened with XXH3 (0 stays 0). */
static uint64_t seg_salt(const struct blob *b)
{
	uint32_t r = (uint32_t)b->p[12] | (uint32_t)b->p[13] << 8 | (uint32_t)b->p[14] << 16 |
		     (uint32_t)b->p[15] << 24;
	return r ? XXH3_64bits(&r, sizeof r) : 0;
}

/* Records of ops[first...] that a segment holds, each checked byte for
 * byte against its encoding (the header, then exactly the records). */
static size_t count_records(const struct blob *b, const char *name, const crdt_op *ops, size_t first, size_t n)
{
	size_t at = HEADER, k = 0;
	uint64_t salt = seg_salt(b);
	while (at < b->n) {
		ck_assert_msg(first + k < n, "%s holds more records than were appended", name);
		struct blob r = encode(&ops[first + k]);
		sync_salt_record(r.p + r.n, salt);
		ck_assert_msg(at + r.n <= b->n && memcmp(b->p + at, r.p, r.n) == 0, "%s offset %zu is not record %zu",
			      name, at, first + k);
		at += r.n;
		k++;
		blob_free(&r);
	}
	return k;
}

/* Copies of ops[k % n] for k < total: more valid ops than a history has. */
static crdt_op *cycle_ops(const crdt_op *ops, size_t n, size_t total)
{
	crdt_op *v = calloc(total, sizeof *v);
	ck_assert_ptr_nonnull(v);
	for (size_t k = 0; k < total; k++)
		ck_assert_int_eq(crdt_op_copy(&v[k], &ops[k % n]), 0);
	return v;
}

static void free_ops(crdt_op *v, size_t n)
{
	for (size_t k = 0; k < n; k++)
		crdt_op_free(&v[k]);
	free(v);
}

START_TEST(segments_roll)
{
	char dir[256];
	make_dir(dir, sizeof dir);
	crdt_cluster c;
	make_history(&c, 100);
	const crdt_op *ops = c.log.ops;
	size_t n = c.log.n;
	sync_log *log = open_ok(dir, 4096, false, NULL);
	append_ops(log, ops, 0, n / 2, 1);
	append_ops(log, ops, n / 2, n, 5);
	assert_replay(log, 0, ops, n);
	sync_log_close(log);

	/* Many segments, each named by its first index and starting where the
	 * one before ended; only a full one (>= 4096 bytes) has a successor. */
	size_t nseg;
	char **segs = names_in(dir, ".log", &nseg);
	ck_assert_uint_ge(nseg, 8);
	uint64_t next = 0;
	for (size_t i = 0; i < nseg; i++) {
		struct blob b = slurp(dir, segs[i]);
		ck_assert_uint_eq(header_first(&b, segs[i]), next);
		size_t k = count_records(&b, segs[i], ops, next, n);
		ck_assert_uint_gt(k, 0);
		if (i + 1 < nseg)
			ck_assert_uint_ge(b.n, 4096);
		next += k;
		blob_free(&b);
	}
	ck_assert_uint_eq(next, n);

	struct sync_log_report rep;
	log = open_ok(dir, 4096, false, &rep);
	ck_assert_uint_eq(rep.records, n);
	ck_assert_uint_eq(rep.torn_bytes, 0);
	assert_replay(log, 0, ops, n);
	for (uint64_t from = 1; from < n; from += 97)
		assert_replay(log, from, ops, n);
	/* Appends after the reopen go on rolling; indexes stay continuous. */
	crdt_op *twice = cycle_ops(ops, n, 2 * n);
	append_ops(log, twice, n, 2 * n, 3);
	sync_log_close(log);
	log = open_ok(dir, 8192, false, &rep); /* another size changes nothing written */
	ck_assert_uint_eq(rep.records, 2 * n);
	assert_replay(log, 0, twice, 2 * n);
	sync_log_close(log);
	size_t nseg2;
	char **segs2 = names_in(dir, ".log", &nseg2);
	ck_assert_uint_gt(nseg2, nseg);
	names_free(segs2);

	free_ops(twice, 2 * n);
	names_free(segs);
	crdt_cluster_free(&c);
	remove_dir(dir);
}
END_TEST

/* ---- torn tails: every cut of the last segment ---- */

/* A log of two segments: a full one, then 10 records in the last. */
struct cutlog {
	crdt_cluster c;
	size_t n;          /* records in all */
	uint64_t first;    /* first record of the last segment */
	size_t nlast;      /* records in the last segment */
	char names[2][32]; /* the segments */
	struct blob seg0, last;
	size_t *off;       /* record offsets in the last segment; off[nlast] = its size */
};

static size_t segments_in(const char *dir)
{
	size_t n;
	names_free(names_in(dir, ".log", &n));
	return n;
}

static void cutlog_make(struct cutlog *L, const char *dir)
{
	memset(L, 0, sizeof *L);
	make_history(&L->c, 20);
	const crdt_op *ops = L->c.log.ops;
	sync_log *log = open_ok(dir, 4096, true, NULL);
	size_t k = 0;
	while (segments_in(dir) < 2) {
		ck_assert_uint_lt(k, L->c.log.n);
		append_ops(log, ops, k, k + 1, 1);
		k++;
	}
	L->first = k - 1;
	L->n = L->first + 10;
	ck_assert_uint_le(L->n + 2, L->c.log.n); /* room for two more appends */
	append_ops(log, ops, k, L->n, 1);
	L->nlast = L->n - L->first;
	sync_log_close(log);
	size_t nseg;
	char **segs = names_in(dir, ".log", &nseg);
	ck_assert_uint_eq(nseg, 2);
	snprintf(L->names[0], sizeof L->names[0], "%s", segs[0]);
	snprintf(L->names[1], sizeof L->names[1], "%s", segs[1]);
	names_free(segs);
	L->seg0 = slurp(dir, L->names[0]);
	L->last = slurp(dir, L->names[1]);
	ck_assert_uint_eq(header_first(&L->last, L->names[1]), L->first);
	L->off = malloc((L->nlast + 1) * sizeof *L->off);
	L->off[0] = HEADER;
	for (size_t i = 0; i < L->nlast; i++) {
		struct blob r = encode(&ops[L->first + i]);
		L->off[i + 1] = L->off[i] + r.n;
		blob_free(&r);
	}
	ck_assert_uint_eq(count_records(&L->last, L->names[1], ops, L->first, L->n), L->nlast);
	ck_assert_uint_eq(L->off[L->nlast], L->last.n);
}

static void cutlog_free(struct cutlog *L)
{
	blob_free(&L->seg0);
	blob_free(&L->last);
	free(L->off);
	crdt_cluster_free(&L->c);
}

static off_t file_size(const char *dir, const char *name)
{
	char path[512];
	struct stat st;
	path_in(path, sizeof path, dir, name);
	ck_assert_int_eq(stat(path, &st), 0);
	return st.st_size;
}

/*
 * The last segment cut at every length. From the end of the header on,
 * exactly the records wholly before the cut stay, the rest is reported
 * (torn_bytes, segment) and cut off for good, and appends go on from
 * there and survive another reopen. Inside the 32-byte header nothing is
 * guessed: a segment is only ever put in place whole (written, synced,
 * renamed), so a short header is damage, not a crash mid-append. Open
 * refuses with MCRDT_ECORRUPT naming the segment and its header, touching
 * nothing (so the full segment before it is not lost), and repair then
 * keeps every record of that earlier segment and sets the stub aside.
 */
START_TEST(every_cut_of_the_last_segment)
{
	char dir[256];
	make_dir(dir, sizeof dir);
	struct cutlog L;
	cutlog_make(&L, dir);
	const crdt_op *ops = L.c.log.ops;
	for (size_t len = 0; len <= L.last.n; len++) {
		spit(dir, L.names[0], L.seg0.p, L.seg0.n);
		spit(dir, L.names[1], L.last.p, len);
		struct sync_log_report rep;
		memset(&rep, 0xff, sizeof rep);
		sync_log *log = NULL;
		if (len < HEADER) {
			struct snap before = snap_take(dir);
			ck_assert_int_eq(sync_log_open(&log, dir, NULL, &rep), MCRDT_ECORRUPT);
			ck_assert_ptr_null(log);
			assert_msg_has(L.names[1]);
			assert_msg_has("header");
			assert_untouched(&before, dir);
			snap_free(&before);

			ck_assert_int_eq(sync_log_repair(dir, &rep), 0);
			ck_assert_uint_eq(rep.records, L.first);
			ck_assert_str_eq(rep.segment, L.names[1]);
			ck_assert_uint_eq(rep.damaged_at, 0);
			ck_assert_uint_eq(rep.set_aside, 1);
			char aside[64];
			snprintf(aside, sizeof aside, "%s.damaged", L.names[1]);
			ck_assert(!exists(dir, L.names[1]));
			struct blob b = slurp(dir, aside);
			ck_assert(b.n == len && memcmp(b.p, L.last.p, len) == 0);
			blob_free(&b);
			char path[512];
			path_in(path, sizeof path, dir, aside);
			ck_assert_int_eq(unlink(path), 0);
			log = open_ok(dir, 4096, true, &rep);
			ck_assert_uint_eq(rep.records, L.first);
			assert_replay(log, 0, ops, L.first);
			sync_log_close(log);
			continue;
		}
		size_t whole = 0;
		while (whole < L.nlast && L.off[whole + 1] <= len)
			whole++;
		size_t torn = len - L.off[whole];
		log = open_ok(dir, 4096, true, &rep);
		ck_assert_uint_eq(rep.records, L.first + whole);
		ck_assert_uint_eq(sync_log_next(log), L.first + whole);
		ck_assert_uint_eq(rep.torn_bytes, torn);
		ck_assert_str_eq(rep.segment, torn ? L.names[1] : "");
		ck_assert_uint_eq(file_size(dir, L.names[1]), L.off[whole]);
		assert_replay(log, 0, ops, L.first + whole);
		/* Appends go on right after the last whole record. */
		append_ops(log, ops, L.first + whole, L.first + whole + 2, 1);
		sync_log_close(log);
		log = open_ok(dir, 4096, true, &rep);
		ck_assert_uint_eq(rep.records, L.first + whole + 2);
		ck_assert_uint_eq(rep.torn_bytes, 0);
		assert_replay(log, L.first, ops, L.first + whole + 2);
		sync_log_close(log);
	}
	cutlog_free(&L);
	remove_dir(dir);
}
END_TEST

/* ---- single-bit flips ---- */

/*
 * Every single-bit flip of a one-segment log of five records. A flip in
 * the header or in any record but the last is refused with MCRDT_ECORRUPT
 * naming the segment and the offset of the header (0) or of the damaged
 * record, and no file changes; a flip in the last record looks exactly
 * like a torn tail and is cut as one (the four records before it stay).
 * Never does a replay hand over an op that differs from the one appended.
 */
START_TEST(every_bit_flip)
{
	char dir[256];
	make_dir(dir, sizeof dir);
	crdt_cluster c;
	make_history(&c, 1);
	const crdt_op *ops = c.log.ops;
	const size_t N = 5;
	sync_log *log = open_ok(dir, 0, true, NULL);
	append_ops(log, ops, 0, N, 1);
	sync_log_close(log);
	const char *name = "0000000000000000.log";
	struct blob orig = slurp(dir, name);
	size_t off[6] = { HEADER };
	for (size_t k = 0; k < N; k++) {
		struct blob r = encode(&ops[k]);
		off[k + 1] = off[k] + r.n;
		blob_free(&r);
	}
	ck_assert_uint_eq(off[N], orig.n);
	uint8_t *p = malloc(orig.n);
	unsigned refused = 0, cut = 0;
	for (size_t pos = 0; pos < orig.n; pos++) {
		size_t rec = 0; /* the record the byte is in (N: the header) */
		if (pos < HEADER)
			rec = N;
		else
			while (off[rec + 1] <= pos)
				rec++;
		for (int bit = 0; bit < 8; bit++) {
			memcpy(p, orig.p, orig.n);
			p[pos] ^= (uint8_t)(1u << bit);
			spit(dir, name, p, orig.n);
			struct snap before = snap_take(dir);
			struct sync_log_report rep;
			log = NULL;
			int rc = sync_log_open(&log, dir, NULL, &rep);
			if (rec == N - 1) {
				ck_assert_msg(rc == 0, "flip of bit %d at %zu (last record): %s", bit, pos,
					      mcrdt_error_last());
				ck_assert_uint_eq(rep.records, N - 1);
				ck_assert_uint_eq(rep.torn_bytes, orig.n - off[N - 1]);
				ck_assert_str_eq(rep.segment, name);
				assert_replay(log, 0, ops, N - 1);
				sync_log_close(log);
				cut++;
			} else {
				ck_assert_msg(rc == MCRDT_ECORRUPT, "flip of bit %d at %zu: open returned %d (%s)", bit,
					      pos, rc, mcrdt_error_last());
				ck_assert_ptr_null(log);
				char where[64];
				snprintf(where, sizeof where, "offset %zu", rec == N ? (size_t)0 : off[rec]);
				assert_msg_has(name);
				assert_msg_has(where);
				assert_untouched(&before, dir);
				refused++;
			}
			snap_free(&before);
		}
	}
	ck_assert_uint_eq(refused + cut, 8 * orig.n);
	free(p);
	blob_free(&orig);
	crdt_cluster_free(&c);
	remove_dir(dir);
}
END_TEST

/* ---- damage in the middle, repair ---- */

/* A log in 4096-byte segments: its segment names, sizes and first indexes. */
struct seglog {
	crdt_cluster c;
	size_t n, nseg;
	char **names;
	uint64_t *first;
	struct blob *data;
};

static void seglog_make(struct seglog *S, const char *dir, unsigned rounds)
{
	memset(S, 0, sizeof *S);
	make_history(&S->c, rounds);
	S->n = S->c.log.n;
	sync_log *log = open_ok(dir, 4096, true, NULL);
	append_ops(log, S->c.log.ops, 0, S->n, 4);
	sync_log_close(log);
	S->names = names_in(dir, ".log", &S->nseg);
	ck_assert_uint_ge(S->nseg, 4);
	S->first = calloc(S->nseg + 1, sizeof *S->first);
	S->data = calloc(S->nseg, sizeof *S->data);
	for (size_t i = 0; i < S->nseg; i++) {
		S->data[i] = slurp(dir, S->names[i]);
		S->first[i] = header_first(&S->data[i], S->names[i]);
	}
	S->first[S->nseg] = S->n;
}

static void seglog_free(struct seglog *S)
{
	for (size_t i = 0; i < S->nseg; i++)
		blob_free(&S->data[i]);
	free(S->data);
	free(S->first);
	names_free(S->names);
	crdt_cluster_free(&S->c);
}

/* The offset of record index in segment i. */
static size_t record_offset(const struct seglog *S, size_t i, uint64_t index)
{
	size_t at = HEADER;
	for (uint64_t k = S->first[i]; k < index; k++) {
		struct blob r = encode(&S->c.log.ops[k]);
		at += r.n;
		blob_free(&r);
	}
	return at;
}

/*
 * A bad checksum in the middle of the second segment, with valid records
 * after it in that segment and in later ones: open refuses with
 * MCRDT_ECORRUPT naming segment and offset, touching nothing. Repair keeps
 * every record before the damage, saves the cut bytes beside the segment
 * and renames every later segment to *.damaged, and says so; the repaired
 * log opens with exactly the records before the damage and takes appends.
 */
START_TEST(bad_checksum_in_the_middle)
{
	char dir[256];
	make_dir(dir, sizeof dir);
	struct seglog S;
	seglog_make(&S, dir, 50);
	uint64_t bad = S.first[1] + 2;
	ck_assert_uint_lt(bad + 1, S.first[2]);
	size_t at = record_offset(&S, 1, bad), end = record_offset(&S, 1, bad + 1);
	struct blob seg = slurp(dir, S.names[1]);
	seg.p[end - 1] ^= 0x10; /* the checksum's last byte */
	spit(dir, S.names[1], seg.p, seg.n);

	struct snap before = snap_take(dir);
	sync_log *log = NULL;
	struct sync_log_report rep;
	memset(&rep, 0xff, sizeof rep);
	ck_assert_int_eq(sync_log_open(&log, dir, NULL, &rep), MCRDT_ECORRUPT);
	char where[64];
	snprintf(where, sizeof where, "offset %zu", at);
	assert_msg_has(S.names[1]);
	assert_msg_has(where);
	ck_assert_uint_eq(rep.records, bad); /* the good records before the damage */
	assert_untouched(&before, dir);
	snap_free(&before);

	memset(&rep, 0xff, sizeof rep);
	ck_assert_msg(sync_log_repair(dir, &rep) == 0, "repair: %s", mcrdt_error_last());
	ck_assert_uint_eq(rep.records, bad);
	ck_assert_str_eq(rep.segment, S.names[1]);
	ck_assert_uint_eq(rep.damaged_at, at);
	ck_assert_uint_eq(rep.torn_bytes, seg.n - at);
	ck_assert_uint_eq(rep.set_aside, S.nseg - 2);
	/* Kept: the first segment whole, the second up to the damage. */
	struct blob b = slurp(dir, S.names[0]);
	ck_assert(b.n == S.data[0].n && memcmp(b.p, S.data[0].p, b.n) == 0);
	blob_free(&b);
	b = slurp(dir, S.names[1]);
	ck_assert(b.n == at && memcmp(b.p, seg.p, at) == 0);
	blob_free(&b);
	/* Set aside, byte for byte: the cut bytes and every later segment. */
	char aside[64];
	snprintf(aside, sizeof aside, "%s.tail.damaged", S.names[1]);
	b = slurp(dir, aside);
	ck_assert(b.n == seg.n - at && memcmp(b.p, seg.p + at, b.n) == 0);
	blob_free(&b);
	for (size_t i = 2; i < S.nseg; i++) {
		ck_assert(!exists(dir, S.names[i]));
		snprintf(aside, sizeof aside, "%s.damaged", S.names[i]);
		b = slurp(dir, aside);
		ck_assert(b.n == S.data[i].n && memcmp(b.p, S.data[i].p, b.n) == 0);
		blob_free(&b);
	}

	log = open_ok(dir, 4096, false, &rep);
	ck_assert_uint_eq(rep.records, bad);
	ck_assert_uint_eq(rep.torn_bytes, 0);
	assert_replay(log, 0, S.c.log.ops, bad);
	append_ops(log, S.c.log.ops, bad, S.n, 1); /* e.g. peers send the rest again */
	sync_log_close(log);
	log = open_ok(dir, 4096, false, &rep);
	ck_assert_uint_eq(rep.records, S.n);
	assert_replay(log, 0, S.c.log.ops, S.n);
	sync_log_close(log);

	blob_free(&seg);
	seglog_free(&S);
	remove_dir(dir);
}
END_TEST

/* A middle segment deleted: refused as a missing segment, nothing touched;
 * repair keeps the segments before the gap. */
START_TEST(missing_segment)
{
	char dir[256];
	make_dir(dir, sizeof dir);
	struct seglog S;
	seglog_make(&S, dir, 50);
	char path[512];
	path_in(path, sizeof path, dir, S.names[2]);
	ck_assert_int_eq(unlink(path), 0);
	struct snap before = snap_take(dir);
	sync_log *log = NULL;
	ck_assert_int_eq(sync_log_open(&log, dir, NULL, NULL), MCRDT_ECORRUPT);
	assert_msg_has("missing");
	assert_msg_has(S.names[3]);
	assert_untouched(&before, dir);
	snap_free(&before);

	struct sync_log_report rep;
	ck_assert_int_eq(sync_log_repair(dir, &rep), 0);
	ck_assert_uint_eq(rep.records, S.first[2]);
	ck_assert_uint_eq(rep.set_aside, S.nseg - 3);
	for (size_t i = 3; i < S.nseg; i++) {
		char aside[64];
		snprintf(aside, sizeof aside, "%s.damaged", S.names[i]);
		ck_assert(exists(dir, aside));
	}
	log = open_ok(dir, 4096, true, &rep);
	ck_assert_uint_eq(rep.records, S.first[2]);
	assert_replay(log, 0, S.c.log.ops, S.first[2]);
	sync_log_close(log);
	seglog_free(&S);
	remove_dir(dir);
}
END_TEST

static void set_version(const char *dir, const char *name, uint32_t version)
{
	struct blob b = slurp(dir, name);
	b.p[8] = (uint8_t)version;
	b.p[9] = (uint8_t)(version >> 8);
	b.p[10] = (uint8_t)(version >> 16);
	b.p[11] = (uint8_t)(version >> 24);
	put64(b.p + 24, XXH3_64bits(b.p, 24));
	spit(dir, name, b.p, b.n);
	blob_free(&b);
}

/* A segment from a newer format version (header checksum right): open and
 * repair both refuse with MCRDT_EVERSION naming segment and version, and
 * leave every file as it was. */
START_TEST(newer_segment_version)
{
	char dir[256];
	make_dir(dir, sizeof dir);
	struct seglog S;
	seglog_make(&S, dir, 50);
	size_t which[] = { S.nseg - 1, 0, 1 };
	for (size_t w = 0; w < 3; w++) {
		const char *name = S.names[which[w]];
		set_version(dir, name, SYNC_FORMAT_VERSION + 1);
		struct snap before = snap_take(dir);
		sync_log *log = NULL;
		ck_assert_int_eq(sync_log_open(&log, dir, NULL, NULL), MCRDT_EVERSION);
		ck_assert_ptr_null(log);
		char v[32];
		snprintf(v, sizeof v, "version %d", SYNC_FORMAT_VERSION + 1);
		assert_msg_has(v);
		assert_msg_has(name);
		assert_untouched(&before, dir);
		struct sync_log_report rep;
		ck_assert_int_eq(sync_log_repair(dir, &rep), MCRDT_EVERSION);
		assert_msg_has(name);
		assert_untouched(&before, dir);
		snap_free(&before);
		spit(dir, name, S.data[which[w]].p, S.data[which[w]].n);
	}
	sync_log *log = open_ok(dir, 4096, true, NULL);
	assert_replay(log, 0, S.c.log.ops, S.n);
	sync_log_close(log);
	seglog_free(&S);
	remove_dir(dir);
}
END_TEST

/* Appends to segment name of dir a whole record (right checksum, salted
 * like its neighbours) whose payload has op type `type` and nothing else
 * of note; returns the segment's bytes after. */
static struct blob append_odd_record(const char *dir, const char *name, uint64_t type)
{
	uint8_t payload[32], rec[64];
	size_t pl = 0;
	pl += varint_put(payload + pl, type);
	pl += varint_put(payload + pl, 0);    /* field mask */
	pl += varint_put(payload + pl, 0x51); /* id */
	pl += varint_put(payload + pl, 100);
	pl += varint_put(payload + pl, 0); /* deps */
	size_t rl = varint_put(rec, pl);
	memcpy(rec + rl, payload, pl);
	rl += pl;
	struct blob b = slurp(dir, name);
	put64(rec + rl, XXH3_64bits(rec, rl) ^ seg_salt(&b));
	rl += 8;
	b.p = realloc(b.p, b.n + rl);
	memcpy(b.p + b.n, rec, rl);
	b.n += rl;
	spit(dir, name, b.p, b.n);
	return b;
}

/* A record (right checksum) holding an op type from a newer format: the
 * log opens (its framing is fine) but replay stops there with
 * MCRDT_EVERSION naming the type, after handing over every op before it. */
START_TEST(newer_op_type_in_a_record)
{
	char dir[256];
	make_dir(dir, sizeof dir);
	crdt_cluster c;
	make_history(&c, 1);
	sync_log *log = open_ok(dir, 0, true, NULL);
	append_ops(log, c.log.ops, 0, 4, 1);
	sync_log_close(log);
	const char *name = "0000000000000000.log";
	struct blob b = append_odd_record(dir, name, CRDT_OP_TYPE_MAX + 1);
	struct sync_log_report rep;
	log = open_ok(dir, 0, true, &rep);
	ck_assert_uint_eq(rep.records, 5);
	struct got g = { CRDT_OPLIST_INIT, NULL, 0, -1 };
	ck_assert_int_eq(sync_log_replay(log, 0, collect, &g), MCRDT_EVERSION);
	char t[32];
	snprintf(t, sizeof t, "type %d", CRDT_OP_TYPE_MAX + 1);
	assert_msg_has(t);
	ck_assert_uint_eq(g.ops.n, 4);
	for (size_t k = 0; k < 4; k++)
		assert_same_op(&g.ops.ops[k], &c.log.ops[k], k);
	got_free(&g);
	sync_log_close(log);
	struct blob after = slurp(dir, name);
	ck_assert(after.n == b.n && memcmp(after.p, b.p, b.n) == 0);
	blob_free(&after);
	blob_free(&b);
	crdt_cluster_free(&c);
	remove_dir(dir);
}
END_TEST

/* A whole record another process appended that does not decode (op type
 * 0): a refresh holding the lock reports it and cuts nothing; only bytes
 * that are no record are a torn tail. */
START_TEST(refresh_never_cuts_a_whole_record)
{
	char dir[256];
	make_dir(dir, sizeof dir);
	crdt_cluster c;
	make_history(&c, 1);
	sync_log *log = open_ok(dir, 0, true, NULL);
	append_ops(log, c.log.ops, 0, 4, 1);
	const char *name = "0000000000000000.log";
	struct blob b = append_odd_record(dir, name, 0);
	ck_assert_int_eq(sync_log_refresh(log, true, NULL, NULL, NULL), MCRDT_ECORRUPT);
	assert_msg_has("op type 0");
	struct blob after = slurp(dir, name);
	ck_assert(after.n == b.n && memcmp(after.p, b.p, b.n) == 0);
	blob_free(&after);
	blob_free(&b);
	sync_log_close(log);
	crdt_cluster_free(&c);
	remove_dir(dir);
}
END_TEST

/* ---- group commit and batches ---- */

struct appender {
	sync_log *log;
	const crdt_op *ops;
	size_t nops, base, count, batch;
	uint64_t *index; /* index of each of its appends */
	int rc;
	char err[256];
};

static void *appender_main(void *arg)
{
	struct appender *a = arg;
	for (size_t k = 0; k < a->count && a->rc == 0;) {
		size_t n = a->batch > 1 && k % 7 == 3 ? (a->count - k < a->batch ? a->count - k : a->batch) : 1;
		uint64_t first;
		if (n == 1)
			a->rc = sync_log_append(a->log, &a->ops[(a->base + k) % a->nops], &first);
		else {
			/* A batch of consecutive ops from this thread's share. */
			crdt_op *v = calloc(n, sizeof *v);
			for (size_t i = 0; i < n; i++)
				crdt_op_copy(&v[i], &a->ops[(a->base + k + i) % a->nops]);
			a->rc = sync_log_append_batch(a->log, v, n, &first);
			free_ops(v, n);
		}
		if (a->rc) {
			snprintf(a->err, sizeof a->err, "%s", mcrdt_error_last());
			break;
		}
		for (size_t i = 0; i < n; i++)
			a->index[k + i] = first + i;
		k += n;
	}
	return NULL;
}

/* Appends from several threads (batch > 1: some in batches); checks that
 * every append got its own index, dense from start, that the log holds
 * each op at the index its append was told, and returns the fdatasync
 * calls made. */
static long concurrent_appends(const char *dir, uint64_t segment_bytes, size_t threads, size_t each, size_t batch)
{
	crdt_cluster c;
	make_history(&c, 10);
	sync_log *log = open_ok(dir, segment_bytes, false, NULL);
	uint64_t start = sync_log_next(log);
	struct appender *a = calloc(threads, sizeof *a);
	pthread_t *t = calloc(threads, sizeof *t);
	long syncs = atomic_load(&n_fdatasync);
	for (size_t i = 0; i < threads; i++) {
		a[i] = (struct appender){ log, c.log.ops, c.log.n, i * 37, each, batch, calloc(each, sizeof(uint64_t)), 0, "" };
		ck_assert_int_eq(pthread_create(&t[i], NULL, appender_main, &a[i]), 0);
	}
	for (size_t i = 0; i < threads; i++)
		ck_assert_int_eq(pthread_join(t[i], NULL), 0);
	syncs = atomic_load(&n_fdatasync) - syncs;
	size_t total = threads * each;
	ck_assert_uint_eq(sync_log_next(log), start + total);
	sync_log_close(log);
	uint8_t *taken = calloc(total, 1);
	const crdt_op **at = calloc(total, sizeof *at);
	for (size_t i = 0; i < threads; i++) {
		ck_assert_msg(a[i].rc == 0, "thread %zu: %s", i, a[i].err);
		for (size_t k = 0; k < each; k++) {
			uint64_t x = a[i].index[k];
			ck_assert_uint_ge(x, start);
			ck_assert_uint_lt(x, start + total);
			ck_assert_msg(!taken[x - start], "index %" PRIu64 " given twice", x);
			taken[x - start] = 1;
			at[x - start] = &c.log.ops[(a[i].base + k) % c.log.n];
			if (k)
				ck_assert_uint_gt(x, a[i].index[k - 1]);
		}
		free(a[i].index);
	}
	struct sync_log_report rep;
	log = open_ok(dir, segment_bytes, false, &rep);
	ck_assert_uint_eq(rep.records, start + total);
	ck_assert_uint_eq(rep.torn_bytes, 0);
	struct got g = { CRDT_OPLIST_INIT, NULL, 0, -1 };
	ck_assert_int_eq(sync_log_replay(log, start, collect, &g), 0);
	ck_assert_uint_eq(g.ops.n, total);
	for (size_t k = 0; k < total; k++) {
		ck_assert_uint_eq(g.index[k], start + k);
		assert_same_op(&g.ops.ops[k], at[k], start + k);
	}
	got_free(&g);
	sync_log_close(log);
	free(taken);
	free(at);
	free(a);
	free(t);
	crdt_cluster_free(&c);
	return syncs;
}

/* 4 threads x 500 durable appends: all 2000 there after a reopen, each
 * at the index its append returned, and commits were shared. */
START_TEST(group_commit)
{
	char dir[256];
	make_dir(dir, sizeof dir);
	long syncs = concurrent_appends(dir, 0, 4, 500, 1);
	ck_assert_int_ge(syncs, 1);
	ck_assert_int_lt(syncs, 2000); /* some appends shared an fdatasync */
	/* Mixed with batches, on an existing log. */
	concurrent_appends(dir, 0, 3, 300, 16);
	remove_dir(dir);
}
END_TEST

/* One batch of 1000 ops: one fdatasync, consecutive indexes, all there.
 * A batch holding an invalid op writes nothing at all. */
START_TEST(batch_is_one_commit)
{
	char dir[256];
	make_dir(dir, sizeof dir);
	crdt_cluster c;
	make_history(&c, 10);
	crdt_op *v = cycle_ops(c.log.ops, c.log.n, 1000);
	sync_log *log = open_ok(dir, 0, false, NULL);
	append_ops(log, v, 0, 5, 1);
	long before = atomic_load(&n_fdatasync);
	uint64_t first = 0;
	ck_assert_int_eq(sync_log_append_batch(log, v + 5, 995, &first), 0);
	ck_assert_int_eq(atomic_load(&n_fdatasync) - before, 1);
	ck_assert_uint_eq(first, 5);
	ck_assert_uint_eq(sync_log_next(log), 1000);
	off_t size = file_size(dir, "0000000000000000.log");
	ck_assert_int_eq(sync_log_append_batch(log, v, 0, NULL), 0);
	crdt_op bad;
	ck_assert_int_eq(crdt_op_copy(&bad, &v[7]), 0);
	bad.id.counter = 0;
	crdt_op mixed[3];
	ck_assert_int_eq(crdt_op_copy(&mixed[0], &v[1]), 0);
	mixed[1] = bad;
	ck_assert_int_eq(crdt_op_copy(&mixed[2], &v[2]), 0);
	ck_assert_int_eq(sync_log_append_batch(log, mixed, 3, NULL), MCRDT_EINVAL);
	ck_assert_uint_eq(sync_log_next(log), 1000);
	ck_assert_int_eq(file_size(dir, "0000000000000000.log"), size);
	for (size_t k = 0; k < 3; k++)
		crdt_op_free(&mixed[k]);
	sync_log_close(log);
	log = open_ok(dir, 0, false, NULL);
	assert_replay(log, 0, v, 1000);
	sync_log_close(log);
	free_ops(v, 1000);
	crdt_cluster_free(&c);
	remove_dir(dir);
}
END_TEST

/* A batch longer than a piece of writing (1 MiB) is written whole or not
 * at all: an invalid op at its end leaves the log as it was, and without
 * it every op reads back, in one commit. */
START_TEST(a_batch_in_pieces_is_all_or_nothing)
{
	char dir[256];
	make_dir(dir, sizeof dir);
	crdt_cluster c;
	make_history(&c, 10);
	enum { N = 1000 };
	crdt_op *v = cycle_ops(c.log.ops, c.log.n, N);
	static char meta[32768];
	memset(meta, 'm', sizeof meta);
	size_t with_meta = 0;
	for (size_t k = 0; k < N; k++)
		if (v[k].meta) {
			ck_assert_int_eq(crdt_op_set_meta(&v[k], meta, sizeof meta), 0);
			with_meta++;
		}
	ck_assert_uint_gt(with_meta * sizeof meta, 3u << 20); /* three pieces at least */
	sync_log *log = open_ok(dir, 0, false, NULL);
	append_ops(log, v, 0, 5, 1);
	off_t size = file_size(dir, "0000000000000000.log");
	crdt_op keep = v[N - 1];
	crdt_op bad;
	ck_assert_int_eq(crdt_op_copy(&bad, &keep), 0);
	bad.id.counter = 0;
	v[N - 1] = bad;
	ck_assert_int_eq(sync_log_append_batch(log, v + 5, N - 5, NULL), MCRDT_EINVAL);
	ck_assert_uint_eq(sync_log_next(log), 5);
	ck_assert_int_eq(file_size(dir, "0000000000000000.log"), size);
	crdt_op_free(&bad);
	v[N - 1] = keep;
	long before = atomic_load(&n_fdatasync);
	uint64_t first = 0;
	ck_assert_int_eq(sync_log_append_batch(log, v + 5, N - 5, &first), 0);
	ck_assert_int_eq(atomic_load(&n_fdatasync) - before, 1);
	ck_assert_uint_eq(first, 5);
	sync_log_close(log);
	log = open_ok(dir, 0, false, NULL);
	assert_replay(log, 0, v, N);
	sync_log_close(log);
	free_ops(v, N);
	crdt_cluster_free(&c);
	remove_dir(dir);
}
END_TEST

/* ---- failing disks ---- */

/* The disk fills up in the middle of a record: the append fails with
 * MCRDT_ENOSPC, leaves no half record behind, and the next append (once
 * there is room) goes right where the failed one would have. */
START_TEST(disk_full_mid_record)
{
	char dir[256];
	make_dir(dir, sizeof dir);
	crdt_cluster c;
	make_history(&c, 1);
	const crdt_op *ops = c.log.ops;
	sync_log *log = open_ok(dir, 0, false, NULL);
	append_ops(log, ops, 0, 3, 1);
	off_t size = file_size(dir, "0000000000000000.log");
	for (int k = 0; k < 3; k++) {
		atomic_store(&short_write, k == 0 ? 0 : 5 * k);
		int rc = sync_log_append(log, &ops[3], NULL);
		atomic_store(&short_write, -1);
		atomic_store(&fail_write, 0);
		ck_assert_int_eq(rc, MCRDT_ENOSPC);
		ck_assert_uint_eq(sync_log_next(log), 3);
		ck_assert_int_eq(file_size(dir, "0000000000000000.log"), size);
	}
	append_ops(log, ops, 3, 5, 1);
	sync_log_close(log);
	struct sync_log_report rep;
	log = open_ok(dir, 0, false, &rep);
	ck_assert_uint_eq(rep.records, 5);
	ck_assert_uint_eq(rep.torn_bytes, 0);
	assert_replay(log, 0, ops, 5);
	sync_log_close(log);
	crdt_cluster_free(&c);
	remove_dir(dir);
}
END_TEST

/* fdatasync fails: the append reports MCRDT_EIO and the handle refuses
 * every later append (a failed fsync may have dropped data: it does not
 * heal). A reopen starts afresh; the failed record may or may not be
 * there, like any unacknowledged write, and nothing before it is lost. */
START_TEST(fsync_failure_is_sticky)
{
	char dir[256];
	make_dir(dir, sizeof dir);
	crdt_cluster c;
	make_history(&c, 1);
	const crdt_op *ops = c.log.ops;
	sync_log *log = open_ok(dir, 0, false, NULL);
	append_ops(log, ops, 0, 3, 1);
	atomic_store(&fail_fdatasync, 1);
	ck_assert_int_eq(sync_log_append(log, &ops[3], NULL), MCRDT_EIO);
	atomic_store(&fail_fdatasync, 0);
	ck_assert_int_ne(sync_log_append(log, &ops[3], NULL), 0);
	ck_assert_int_ne(sync_log_append_batch(log, ops + 3, 2, NULL), 0);
	sync_log_close(log);
	struct sync_log_report rep;
	log = open_ok(dir, 0, false, &rep);
	ck_assert_uint_ge(rep.records, 3);
	ck_assert_uint_le(rep.records, 4);
	uint64_t have = rep.records;
	assert_replay(log, 0, ops, have);
	append_ops(log, ops, have, have + 2, 1);
	sync_log_close(log);
	crdt_cluster_free(&c);
	remove_dir(dir);
}
END_TEST

/* ---- replay while appending ---- */

struct replayer {
	sync_log *log;
	const crdt_op *ops;
	atomic_int *stop;
	atomic_uint rounds;
	atomic_int bad;
	char err[256];
};

struct check_ctx {
	const crdt_op *ops;
	uint64_t next;
	int bad;
};

static int check_prefix(void *ctx, const crdt_op *op, uint64_t index)
{
	struct check_ctx *x = ctx;
	if (index != x->next || !crdt_dot_eq(op->id, x->ops[index].id) || op->type != x->ops[index].type)
		x->bad = 1;
	x->next++;
	return x->bad;
}

static void *replayer_main(void *arg)
{
	struct replayer *r = arg;
	while (!atomic_load(r->stop)) {
		struct check_ctx x = { r->ops, 0, 0 };
		int rc = sync_log_replay(r->log, 0, check_prefix, &x);
		if (rc || x.bad) {
			snprintf(r->err, sizeof r->err, "replay %u: rc %d at %" PRIu64 ": %s", atomic_load(&r->rounds),
				 rc, x.next, mcrdt_error_last());
			atomic_store(&r->bad, 1);
			break;
		}
		atomic_fetch_add(&r->rounds, 1);
	}
	return NULL;
}

/* A replay running while another thread appends (and segments roll) sees
 * a consistent prefix of the log every time. The appends go on until the
 * replays have run a few times over a growing log. */
START_TEST(replay_while_appending)
{
	char dir[256];
	make_dir(dir, sizeof dir);
	crdt_cluster c;
	make_history(&c, 30);
	const size_t total = 40000;
	crdt_op *ops = cycle_ops(c.log.ops, c.log.n, total);
	sync_log *log = open_ok(dir, 4096, true, NULL);
	atomic_int stop = 0;
	struct replayer r = { log, ops, &stop, 0, 0, "" };
	pthread_t t;
	ck_assert_int_eq(pthread_create(&t, NULL, replayer_main, &r), 0);
	size_t k = 0;
	for (; k < total && (k < c.log.n || atomic_load(&r.rounds) < 10) && !atomic_load(&r.bad); k++)
		ck_assert_int_eq(sync_log_append(log, &ops[k], NULL), 0);
	atomic_store(&stop, 1);
	ck_assert_int_eq(pthread_join(t, NULL), 0);
	ck_assert_msg(!atomic_load(&r.bad), "%s", r.err);
	ck_assert_uint_gt(atomic_load(&r.rounds), 0);
	sync_log_close(log);
	free_ops(ops, total);
	crdt_cluster_free(&c);
	remove_dir(dir);
}
END_TEST

/* ---- crash: a writer killed at random ---- */

struct text {
	char *p;
	size_t n, cap;
};

/* Reads what is there (waiting up to timeout_ms); false at end of file. */
static bool read_some(int fd, struct text *t, int timeout_ms)
{
	struct pollfd p = { fd, POLLIN, 0 };
	int r = poll(&p, 1, timeout_ms);
	ck_assert_int_ge(r, 0);
	if (r == 0)
		return true;
	if (t->n + 4096 + 1 > t->cap) {
		t->cap = t->cap ? t->cap * 2 : 65536;
		t->p = realloc(t->p, t->cap);
		ck_assert_ptr_nonnull(t->p);
	}
	ssize_t got = read(fd, t->p + t->n, 4096);
	if (got < 0 && errno == EINTR)
		return true;
	ck_assert_int_ge(got, 0);
	t->n += (size_t)got;
	t->p[t->n] = '\0';
	return got > 0;
}

struct ack {
	uint64_t index, counter;
};

static int ids_of(void *ctx, const crdt_op *op, uint64_t index)
{
	void **v = ctx;
	crdt_model *m = v[0];
	uint64_t *counters = v[1];
	int rc = crdt_model_receive(m, op);
	ck_assert_msg(rc == 0, "record %" PRIu64 " does not apply: %s", index, mcrdt_error_last());
	ck_assert_uint_eq(op->id.replica, 7);
	counters[index] = op->id.counter;
	return 0;
}

/*
 * crashwriter (tests/sync/crashwriter.c) appends durable ops to a log with
 * 4096-byte segments and prints every acknowledged index; it is killed
 * with SIGKILL after a random short time, 30 times on the same log (so
 * recovery follows recovery, and kills land in appends, batches, segment
 * rolls and its startup replay). A kill leaves the page cache whole, so
 * torn tails are rare here: every_cut_of_the_last_segment covers them.
 * After each kill: the log
 * opens, every acknowledged record is there with the op it was told, no
 * index was ever acknowledged twice, and the whole log replays into a
 * fresh replica as one causally complete history.
 */
START_TEST(crash_loses_no_acknowledged_record)
{
	char dir[256];
	make_dir(dir, sizeof dir);
	unsigned seed = 20240611;
	struct ack *acks = NULL;
	size_t nacks = 0, capacks = 0, torn = 0;
	uint64_t records = 0;
	const int runs = 30;
	for (int run = 0; run < runs; run++) {
		int p[2];
		ck_assert_int_eq(pipe(p), 0);
		pid_t pid = fork();
		ck_assert_int_ge(pid, 0);
		if (pid == 0) {
			dup2(p[1], 1);
			close(p[0]);
			close(p[1]);
			execl(CRASHWRITER, "crashwriter", dir, "100000000", "4096", (char *)NULL);
			_exit(127);
		}
		close(p[1]);
		struct text out = { 0 };
		bool open_end = true;
		if (run % 5 == 0) {
			sleep_ms(rand_r(&seed) % 8); /* early: in its open, cut or replay */
		} else {
			/* Once it acknowledges appends, give it 5 to 50 ms more. */
			for (int waited = 0; open_end && (!out.p || !strchr(out.p, '\n')); waited++) {
				ck_assert_msg(waited < 30000, "crashwriter acknowledged nothing in 30 s");
				open_end = read_some(p[0], &out, 1);
			}
			sleep_ms(5 + rand_r(&seed) % 46);
		}
		kill(pid, SIGKILL);
		while (open_end)
			open_end = read_some(p[0], &out, 1000);
		close(p[0]);
		int status;
		ck_assert_int_eq(waitpid(pid, &status, 0), pid);
		ck_assert_msg((WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL) ||
				      (WIFEXITED(status) && WEXITSTATUS(status) == 0),
			      "crashwriter run %d failed (status 0x%x); see its stderr", run, status);
		/* Parse the complete lines: "index counter". */
		for (char *line = out.p; line && *line;) {
			char *nl = strchr(line, '\n');
			if (!nl)
				break;
			struct ack a;
			ck_assert_int_eq(sscanf(line, "%" SCNu64 " %" SCNu64, &a.index, &a.counter), 2);
			if (nacks)
				ck_assert_msg(a.index > acks[nacks - 1].index,
					      "index %" PRIu64 " acknowledged again (after %" PRIu64 ")", a.index,
					      acks[nacks - 1].index);
			if (nacks == capacks) {
				capacks = capacks ? capacks * 2 : 1024;
				acks = realloc(acks, capacks * sizeof *acks);
			}
			acks[nacks++] = a;
			line = nl + 1;
		}
		free(out.p);

		struct sync_log_report rep;
		sync_log *log = open_ok(dir, 4096, false, &rep);
		torn += rep.torn_bytes > 0;
		uint64_t next = sync_log_next(log);
		ck_assert_uint_ge(next, records);
		if (nacks)
			ck_assert_msg(next > acks[nacks - 1].index,
				      "acknowledged record %" PRIu64 " missing: the log has %" PRIu64, acks[nacks - 1].index,
				      next);
		records = next;
		crdt_model *m;
		ck_assert_int_eq(crdt_model_new(&m, 0x999), 0);
		uint64_t *counters = calloc(next + 1, sizeof *counters);
		void *ctx[2] = { m, counters };
		int rc = sync_log_replay(log, 0, ids_of, ctx);
		ck_assert_msg(rc == 0, "replay after run %d: %s", run, mcrdt_error_last());
		ck_assert_uint_eq(crdt_model_pending(m), 0);
		for (size_t k = 0; k < nacks; k++)
			ck_assert_msg(counters[acks[k].index] == acks[k].counter,
				      "record %" PRIu64 " is op 7.%" PRIu64 ", acknowledged as 7.%" PRIu64, acks[k].index,
				      counters[acks[k].index], acks[k].counter);
		free(counters);
		crdt_model_free(m);
		sync_log_close(log);
	}
	ck_assert_uint_ge(nacks, (size_t)(runs - runs / 5)); /* at least the first of each late kill */
	fprintf(stderr, "crash test: %d kills, %zu acknowledged appends, %" PRIu64 " records, %zu torn tails cut\n",
		runs, nacks, records, torn);
	free(acks);
	remove_dir(dir);
}
END_TEST

/* ---- reproductions of bugs in sync/log.c: not in the suite ---- */

struct one_append {
	sync_log *log;
	const crdt_op *op;
	int rc;
	char err[256];
};

static void *one_append_main(void *arg)
{
	struct one_append *a = arg;
	a->rc = sync_log_append(a->log, a->op, NULL);
	if (a->rc)
		snprintf(a->err, sizeof a->err, "%s", mcrdt_error_last());
	return NULL;
}

/*
 * Regression (fixed; sync/log.c commit()): a segment roll closes the segment's fd while
 * a group-commit leader, outside the lock, is about to fdatasync it.
 * Thread A's append fills segment 0 and A, as leader, takes fd = log->fd,
 * drops the lock and calls fdatasync(fd). Before that call runs, thread
 * B's append finds the segment full, syncs it, creates the next segment
 * and closes the old fd. A's fdatasync then fails with EBADF (or, had the
 * number been reused, syncs some other file), and A marks the log broken
 * for good: B's append returns MCRDT_EIO "cannot make the log durable
 * (fdatasync failed)" although nothing failed, and every later append on
 * the handle fails too. (A itself returns 0: the roller's sync covered
 * its record.) The delay injected into A's fdatasync only widens a window
 * that real threads hit when A is preempted there. Expected: every append
 * succeeds. Fix: never close a segment's fd while a sync of it is in
 * flight — the roller waits while log->syncing, or the leader syncs a
 * dup() of the fd taken under the lock (or the old fd is closed by the
 * last user).
 */
START_TEST(roll_waits_for_an_inflight_group_sync)
{
	char dir[256];
	make_dir(dir, sizeof dir);
	crdt_cluster c;
	make_history(&c, 20);
	const crdt_op *ops = c.log.ops;
	sync_log *log = open_ok(dir, 4096, false, NULL);
	size_t k = 0;
	for (;; k++) {
		struct blob r = encode(&ops[k]);
		off_t size = file_size(dir, "0000000000000000.log") + (off_t)r.n;
		blob_free(&r);
		if (size >= 4096)
			break;
		append_ops(log, ops, k, k + 1, 1);
	}
	struct one_append a = { log, &ops[k], 0, "" };
	atomic_store(&delay_fdatasync_ms, 300);
	pthread_t t;
	ck_assert_int_eq(pthread_create(&t, NULL, one_append_main, &a), 0);
	sleep_ms(100); /* A has written its record and sleeps in its fdatasync */
	int rc = sync_log_append(log, &ops[k + 1], NULL);
	char err[256];
	snprintf(err, sizeof err, "%s", mcrdt_error_last());
	ck_assert_int_eq(pthread_join(t, NULL), 0);
	ck_assert_msg(a.rc == 0, "append filling the segment: %s", a.err);
	ck_assert_msg(rc == 0, "append rolling the segment: %s", err);
	ck_assert_msg(sync_log_append(log, &ops[k + 2], NULL) == 0, "the append after: %s", mcrdt_error_last());
	sync_log_close(log);
	crdt_cluster_free(&c);
	remove_dir(dir);
}
END_TEST

/*
 * Regression (fixed; sync/log.c sync_log_repair): a second repair overwrites what the
 * first one set aside. Repair saves the cut bytes to NAME.tail.damaged
 * (O_TRUNC) and renames later segments to NAME.damaged (renameat replaces
 * an existing file). After a repair the log is refilled (peers send the
 * lost ops again), so the same segment gets damaged tail again and the
 * later segments come back under the same names; the next repair then
 * silently destroys the bytes the first one promised to keep ("nothing is
 * thrown away"). Expected: after both repairs, the first repair's set-aside
 * bytes are still in the directory. Fix: never replace a set-aside file —
 * pick a fresh name (NAME.damaged.1, .2, ... with O_EXCL, or
 * renameat2(RENAME_NOREPLACE) with a counter).
 */
START_TEST(second_repair_keeps_set_aside_bytes)
{
	char dir[256];
	make_dir(dir, sizeof dir);
	struct seglog S;
	seglog_make(&S, dir, 50);
	const crdt_op *ops = S.c.log.ops;
	struct snap first_aside[2];
	for (int round = 0; round < 2; round++) {
		uint64_t bad = S.first[1] + 2 + (uint64_t)round;
		size_t end = record_offset(&S, 1, bad + 1);
		struct blob seg = slurp(dir, S.names[1]);
		seg.p[end - 1] ^= 0x10;
		spit(dir, S.names[1], seg.p, seg.n);
		blob_free(&seg);
		struct sync_log_report rep;
		ck_assert_int_eq(sync_log_repair(dir, &rep), 0);
		ck_assert_uint_eq(rep.records, bad);
		if (round == 0)
			first_aside[0] = snap_take(dir);
		/* Peers send the lost ops again: the log grows back the same. */
		sync_log *log = open_ok(dir, 4096, true, NULL);
		append_ops(log, ops, bad, S.n, 4);
		sync_log_close(log);
	}
	/* Every .damaged file of the first repair is still there, unchanged. */
	first_aside[1] = snap_take(dir);
	struct snap *a = &first_aside[0], *b = &first_aside[1];
	for (size_t i = 0; i < a->n; i++) {
		if (!strstr(a->names[i], ".damaged"))
			continue;
		bool kept = false;
		for (size_t j = 0; j < b->n && !kept; j++)
			kept = b->data[j].n == a->data[i].n && memcmp(b->data[j].p, a->data[i].p, a->data[i].n) == 0;
		ck_assert_msg(kept, "the bytes the first repair set aside in %s are gone", a->names[i]);
	}
	snap_free(a);
	snap_free(b);
	seglog_free(&S);
	remove_dir(dir);
}
END_TEST

/*
 * Regression (fixed; sync/log.c walk/valid_record_after): whether bad bytes at the end of
 * the last segment are a torn tail or damage is decided by looking for a
 * valid record at every byte offset after them, so the bytes of the record
 * being written when the crash came can themselves pass for "valid records
 * after it". An APPEND's metadata is opaque (and may hold bytes a user or
 * a remote sender chose: a saved op, a header, an attachment's name), so a
 * crash in the middle of writing such an op — here the cut falls right
 * after a whole encoded record inside its metadata — makes open refuse the
 * log with MCRDT_ECORRUPT ("record cut short, with valid records after
 * it") instead of cutting the torn tail, and the store does not start
 * until someone runs repair. The same bytes cut a few bytes earlier are
 * recovered as a torn tail. Expected: open succeeds with the 3 records
 * before, torn_bytes = the cut-off part. Fix: make a record's checksum
 * depend on where it is, so bytes inside a record cannot validate as a
 * record — e.g. seed XXH3 with the record index or a per-segment random
 * salt from the header — or only call it damage when the valid records
 * found chain to the end of the file from a record boundary the writer
 * could have produced.
 */
START_TEST(torn_record_holding_record_bytes_is_cut)
{
	char dir[256];
	make_dir(dir, sizeof dir);
	crdt_cluster c;
	make_history(&c, 1);
	const crdt_op *ops = c.log.ops;
	size_t app = 0;
	while (ops[app].type != CRDT_OP_APPEND)
		app++;
	crdt_op x;
	ck_assert_int_eq(crdt_op_copy(&x, &ops[app]), 0);
	struct blob inner = encode(&ops[0]);
	uint8_t meta[256];
	memset(meta, 'a', sizeof meta);
	memcpy(meta + 16, inner.p, inner.n);
	ck_assert_int_eq(crdt_op_set_meta(&x, meta, 16 + inner.n + 16), 0);
	sync_log *log = open_ok(dir, 0, true, NULL);
	append_ops(log, ops, 0, 3, 1);
	const char *name = "0000000000000000.log";
	size_t at = (size_t)file_size(dir, name);
	ck_assert_int_eq(sync_log_append(log, &x, NULL), 0);
	sync_log_close(log);
	struct blob full = slurp(dir, name);
	size_t pos = at;
	while (pos + inner.n <= full.n && memcmp(full.p + pos, inner.p, inner.n) != 0)
		pos++;
	ck_assert_uint_le(pos + inner.n, full.n);
	/* A few bytes earlier the cut is recovered as a torn tail... */
	spit(dir, name, full.p, pos + inner.n - 3);
	struct sync_log_report rep;
	log = open_ok(dir, 0, true, &rep);
	ck_assert_uint_eq(rep.records, 3);
	sync_log_close(log);
	/* ... but not right after the record-shaped bytes. */
	spit(dir, name, full.p, pos + inner.n);
	int rc = sync_log_open(&log, dir, NULL, &rep);
	ck_assert_msg(rc == 0, "crash while appending an op whose metadata holds a record: %s", mcrdt_error_last());
	ck_assert_uint_eq(rep.records, 3);
	ck_assert_uint_eq(rep.torn_bytes, pos + inner.n - at);
	sync_log_close(log);
	blob_free(&full);
	blob_free(&inner);
	crdt_op_free(&x);
	crdt_cluster_free(&c);
	remove_dir(dir);
}
END_TEST

/*
 * Regression (fixed; sync/log.c open_dir): sync_log_open creates the log directory
 * ("creating if missing") with mkdir() but never fsyncs its parent, so on a
 * power cut the new directory entry — and with it every record appended
 * "durably" to the new log — may be gone (POSIX gives no promise; ext4's
 * journal usually hides it, other file systems do not). create_segment
 * does sync the log directory after its rename, which makes the segment's
 * name durable inside a directory whose own name is not. Expected: after
 * creating the directory, open fsyncs the parent directory. Fix: in
 * open_dir, when mkdir succeeded, open the parent (dirname) O_DIRECTORY
 * and fsync it.
 */
START_TEST(new_log_directory_is_made_durable)
{
	char dir[256], sub[300];
	make_dir(dir, sizeof dir);
	snprintf(sub, sizeof sub, "%s/log", dir);
	struct stat parent;
	ck_assert_int_eq(stat(dir, &parent), 0);
	nfsynced = 0;
	fsync_recording = true;
	sync_log *log = open_ok(sub, 0, false, NULL);
	fsync_recording = false;
	crdt_cluster c;
	make_history(&c, 1);
	append_ops(log, c.log.ops, 0, 1, 1);
	sync_log_close(log);
	crdt_cluster_free(&c);
	bool synced = false;
	for (size_t i = 0; i < nfsynced; i++)
		synced |= fsynced[i] == parent.st_ino;
	ck_assert_msg(synced, "open created %s but never fsynced %s", sub, dir);
	remove_dir(sub);
	remove_dir(dir);
}
END_TEST

/*
 * Two handles on one directory stand for two processes sharing a store:
 * each picks up the other's records with sync_log_refresh, across segment
 * rolls, and appends after them; a half-written record is left alone
 * without the lock and cut with it.
 */
START_TEST(refresh_takes_in_another_writers_records)
{
	char dir[256];
	make_dir(dir, sizeof dir);
	crdt_cluster c;
	make_history(&c, 40);
	const crdt_op *ops = c.log.ops;
	size_t n = c.log.n;
	ck_assert_uint_gt(n, 200);
	sync_log *a = open_ok(dir, 4096, true, NULL), *b = open_ok(dir, 4096, true, NULL);
	size_t at = 0;
	for (unsigned turn = 0; at < n; turn++) {
		sync_log *writer = turn % 2 ? b : a, *reader = turn % 2 ? a : b;
		size_t upto = at + 1 + turn % 37 < n ? at + 1 + turn % 37 : n;
		uint64_t fresh = 99;
		ck_assert_msg(sync_log_refresh(writer, true, NULL, NULL, &fresh) == 0, "%s", mcrdt_error_last());
		ck_assert_uint_eq(sync_log_next(writer), at);
		append_ops(writer, ops, at, upto, turn % 3 + 1);
		struct got g = { CRDT_OPLIST_INIT, NULL, 0, -1 };
		ck_assert_msg(sync_log_refresh(reader, true, collect, &g, &fresh) == 0, "%s", mcrdt_error_last());
		ck_assert_uint_eq(fresh, upto - at);
		ck_assert_uint_eq(g.ops.n, upto - at);
		for (size_t k = 0; k < g.ops.n; k++) {
			ck_assert_uint_eq(g.index[k], at + k);
			assert_same_op(&g.ops.ops[k], &ops[at + k], at + k);
		}
		got_free(&g);
		ck_assert_uint_eq(sync_log_next(reader), upto);
		at = upto;
	}
	ck_assert_uint_ge(segments_in(dir), 4); /* the rolls were followed */
	assert_replay(a, 0, ops, n);
	assert_replay(b, 0, ops, n);

	/* A record half written by a writer that is still going (no lock):
	 * left alone; once the lock is held (cut), it is a torn tail. */
	struct blob rec = encode(&ops[0]);
	size_t nseg;
	char **segs = names_in(dir, ".log", &nseg);
	char path[512];
	path_in(path, sizeof path, dir, segs[nseg - 1]);
	off_t size = file_size(dir, segs[nseg - 1]);
	int fd = open(path, O_WRONLY | O_APPEND);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(write(fd, rec.p, rec.n / 2), (ssize_t)(rec.n / 2));
	close(fd);
	uint64_t fresh = 99;
	ck_assert_int_eq(sync_log_refresh(a, false, NULL, NULL, &fresh), 0);
	ck_assert_uint_eq(fresh, 0);
	ck_assert_int_eq(file_size(dir, segs[nseg - 1]), size + (off_t)(rec.n / 2));
	ck_assert_int_eq(sync_log_refresh(a, true, NULL, NULL, &fresh), 0);
	ck_assert_int_eq(file_size(dir, segs[nseg - 1]), size);
	/* The other handle's next append lands after the last whole record. */
	ck_assert_int_eq(sync_log_refresh(b, true, NULL, NULL, NULL), 0);
	append_ops(b, ops, 0, 1, 1);
	ck_assert_int_eq(sync_log_refresh(a, true, NULL, NULL, &fresh), 0);
	ck_assert_uint_eq(fresh, 1);
	ck_assert_uint_eq(sync_log_next(a), n + 1);

	/* A log that shrank under a handle is an error, not a silent rewind. */
	fd = open(path, O_WRONLY);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(ftruncate(fd, size - 1), 0);
	close(fd);
	ck_assert_int_eq(sync_log_refresh(a, true, NULL, NULL, NULL), MCRDT_ECORRUPT);
	assert_msg_has("shrank");
	names_free(segs);
	blob_free(&rec);
	sync_log_close(a);
	sync_log_close(b);
	crdt_cluster_free(&c);
	remove_dir(dir);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("log");
	TCase *tc = tcase_create("log");
	tcase_set_timeout(tc, 600);
	tcase_add_test(tc, roundtrip_every_type);
	tcase_add_test(tc, segments_roll);
	tcase_add_test(tc, every_cut_of_the_last_segment);
	tcase_add_test(tc, every_bit_flip);
	tcase_add_test(tc, bad_checksum_in_the_middle);
	tcase_add_test(tc, missing_segment);
	tcase_add_test(tc, newer_segment_version);
	tcase_add_test(tc, newer_op_type_in_a_record);
	tcase_add_test(tc, refresh_never_cuts_a_whole_record);
	tcase_add_test(tc, batch_is_one_commit);
	tcase_add_test(tc, a_batch_in_pieces_is_all_or_nothing);
	tcase_add_test(tc, disk_full_mid_record);
	tcase_add_test(tc, fsync_failure_is_sticky);
	tcase_add_test(tc, crash_loses_no_acknowledged_record);
	tcase_add_test(tc, refresh_takes_in_another_writers_records);
	suite_add_tcase(s, tc);
	/* Their own case, to run alone under helgrind:
	 * CK_FORK=no CK_RUN_CASE=threads valgrind --tool=helgrind test_log */
	TCase *threads = tcase_create("threads");
	tcase_set_timeout(threads, 600);
	tcase_add_test(threads, group_commit);
	tcase_add_test(threads, replay_while_appending);
	suite_add_tcase(s, threads);
	/* Regressions: defects found in review, fixed (see each test's comment). */
	TCase *reg = tcase_create("regressions");
	tcase_set_timeout(reg, 120);
	tcase_add_test(reg, roll_waits_for_an_inflight_group_sync);
	tcase_add_test(reg, second_repair_keeps_set_aside_bytes);
	tcase_add_test(reg, torn_record_holding_record_bytes_is_cut);
	tcase_add_test(reg, new_log_directory_is_made_durable);
	suite_add_tcase(s, reg);
	return run_suite(s, CK_FORK_GETENV);
}
