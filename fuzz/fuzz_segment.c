/*
 * fuzz/fuzz_segment.c — libFuzzer target for the op log (sync/log.h): the
 * input becomes log segment files in a temporary directory, which is then
 * opened, replayed, appended to and reopened through the log API.
 *
 * Input: one mode byte, then
 *   bit 0 clear: the rest is the segment file "0000000000000000.log" as is;
 *   bit 0 set:   the rest is records, behind a valid header for record 0;
 *   bit 1 (with bit 0): two little-endian bytes give a split point: the
 *         records after it go to a second segment, whose first index is
 *         the number of whole records before the split (bit 3: shifted by
 *         the signed value of the mode's top 3 bits, a gap or an overlap);
 *   bit 2: open with verify_from at the second segment (headers only for
 *          the segments before it);
 *   bit 4: the smallest segment size, so the append starts a new segment.
 *
 * What must hold, whatever the bytes:
 *  - open succeeds, or fails with MCRDT_ECORRUPT / MCRDT_EVERSION leaving
 *    every file as it was;
 *  - after a successful open, a replay gives consecutive indices of valid
 *    ops and ends cleanly or with MCRDT_ECORRUPT / MCRDT_EVERSION; an
 *    append lands at the next index; a reopen finds it with nothing torn;
 *  - after an MCRDT_ECORRUPT open, sync_log_repair succeeds and the log
 *    then opens with the records repair kept.
 * Anything else, or a crash or leak, aborts the run.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "crdt/op.h"
#include "fuzz/fuzz_util.h"
#include "mcrdt/errors.h"
#include "sync/codec.h"
#include "sync/log.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define HEADER_SIZE FUZZ_HEADER_SIZE

static char base_dir[4096];
static char log_dir[4200];

/* ---- files ---- */

static void path_in(char *out, size_t size, const char *dir, const char *name)
{
	snprintf(out, size, "%s/%s", dir, name);
}

static void clear_dir(const char *dir)
{
	DIR *d = opendir(dir);
	if (!d)
		return;
	struct dirent *e;
	char path[4400];
	while ((e = readdir(d))) {
		if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
			continue;
		path_in(path, sizeof path, dir, e->d_name);
		unlink(path);
	}
	closedir(d);
}

static void remove_all(void)
{
	clear_dir(log_dir);
	rmdir(log_dir);
	char init[4200];
	path_in(init, sizeof init, base_dir, "init");
	clear_dir(init);
	rmdir(init);
	rmdir(base_dir);
}

static void write_file(const char *dir, const char *name, const uint8_t *a, size_t alen, const uint8_t *b,
		       size_t blen)
{
	char path[4400];
	path_in(path, sizeof path, dir, name);
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0)
		FUZZ_FAIL("cannot create %s: %s", path, strerror(errno));
	if ((alen && write(fd, a, alen) != (ssize_t)alen) || (blen && write(fd, b, blen) != (ssize_t)blen))
		FUZZ_FAIL("cannot write %s", path);
	close(fd);
}

/* The directory's files and their bytes, sorted by name. */
struct file {
	char name[256];
	uint8_t *data;
	size_t len;
};
struct listing {
	struct file *f;
	size_t n;
};

static int cmp_file(const void *a, const void *b)
{
	return strcmp(((const struct file *)a)->name, ((const struct file *)b)->name);
}

static void list_dir(const char *dir, struct listing *out)
{
	memset(out, 0, sizeof *out);
	DIR *d = opendir(dir);
	if (!d)
		FUZZ_FAIL("cannot list %s", dir);
	struct dirent *e;
	size_t cap = 0;
	while ((e = readdir(d))) {
		if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
			continue;
		if (out->n == cap) {
			cap = cap ? 2 * cap : 8;
			out->f = realloc(out->f, cap * sizeof *out->f);
			if (!out->f)
				FUZZ_FAIL("out of memory");
		}
		struct file *f = &out->f[out->n++];
		memset(f, 0, sizeof *f);
		snprintf(f->name, sizeof f->name, "%s", e->d_name);
		char path[4400];
		path_in(path, sizeof path, dir, e->d_name);
		struct stat st;
		int fd = open(path, O_RDONLY | O_CLOEXEC);
		if (fd < 0 || fstat(fd, &st) != 0)
			FUZZ_FAIL("cannot read %s", path);
		f->len = (size_t)st.st_size;
		f->data = malloc(f->len ? f->len : 1);
		if (!f->data || (f->len && read(fd, f->data, f->len) != (ssize_t)f->len))
			FUZZ_FAIL("cannot read %s", path);
		close(fd);
	}
	closedir(d);
	if (out->n)
		qsort(out->f, out->n, sizeof *out->f, cmp_file);
}

static bool listing_eq(const struct listing *a, const struct listing *b)
{
	if (a->n != b->n)
		return false;
	for (size_t i = 0; i < a->n; i++)
		if (strcmp(a->f[i].name, b->f[i].name) != 0 ||
		    !fuzz_bytes_eq(a->f[i].data, a->f[i].len, b->f[i].data, b->f[i].len))
			return false;
	return true;
}

static void listing_free(struct listing *l)
{
	for (size_t i = 0; i < l->n; i++)
		free(l->f[i].data);
	free(l->f);
	memset(l, 0, sizeof *l);
}

/* ---- segments ---- */

static void seg_name(char *out, size_t size, uint64_t first)
{
	snprintf(out, size, "%016" PRIx64 ".log", first);
}

static void write_segment(uint64_t first, const uint8_t *records, size_t len)
{
	uint8_t h[HEADER_SIZE];
	char name[32];
	fuzz_segment_header(h, first);
	seg_name(name, sizeof name, first);
	write_file(log_dir, name, h, sizeof h, records, len);
}

/* Whole records at the start of p[0, len). */
static uint64_t count_records(const uint8_t *p, size_t len)
{
	uint64_t n = 0;
	size_t at = 0, used;
	while (at < len && sync_check_record(p + at, len - at, &used) == 0) {
		at += used;
		n++;
	}
	return n;
}

/* ---- replay ---- */

struct replay_ctx {
	uint64_t next, count;
	const crdt_op *want; /* when set, the one op expected */
};

static int on_op(void *vctx, const crdt_op *op, uint64_t index)
{
	struct replay_ctx *c = vctx;
	if (index != c->next)
		FUZZ_FAIL("replay gave index %" PRIu64 ", expected %" PRIu64, index, c->next);
	if (crdt_op_validate(op) != 0)
		FUZZ_FAIL("replay gave an invalid op at %" PRIu64 ": %s", index, mcrdt_error_last());
	if (c->want) {
		const char *d = fuzz_op_diff(op, c->want);
		if (d)
			FUZZ_FAIL("the appended op comes back different in %s", d);
	}
	c->next++;
	c->count++;
	return 0;
}

static bool open_refusal_ok(int rc)
{
	return rc == MCRDT_ECORRUPT || rc == MCRDT_EVERSION;
}

/* Open succeeded: replay, append, reopen, find the append. */
static void exercise(sync_log *log, const struct sync_log_report *rep, const struct sync_log_opts *opts)
{
	uint64_t records = rep->records;
	if (sync_log_next(log) != records)
		FUZZ_FAIL("next %" PRIu64 " but the report says %" PRIu64 " records", sync_log_next(log), records);
	struct replay_ctx c = { 0, 0, NULL };
	int rc = sync_log_replay(log, 0, on_op, &c);
	if (rc != 0 && !open_refusal_ok(rc))
		FUZZ_FAIL("replay returned %d (%s)", rc, mcrdt_error_last());
	if (rc == 0 && c.count != records)
		FUZZ_FAIL("replay gave %" PRIu64 " ops of %" PRIu64 " records", c.count, records);

	crdt_op op;
	if (fuzz_sample_op(&op, CRDT_OP_APPEND, 9, 2) != 0)
		FUZZ_FAIL("sample op: %s", mcrdt_error_last());
	uint64_t index = UINT64_MAX;
	rc = sync_log_append(log, &op, &index);
	if (rc != 0)
		FUZZ_FAIL("append after a clean open failed: %d (%s)", rc, mcrdt_error_last());
	if (index != records)
		FUZZ_FAIL("append got index %" PRIu64 ", expected %" PRIu64, index, records);
	sync_log_close(log);

	struct sync_log_report rep2;
	sync_log *again = NULL;
	rc = sync_log_open(&again, log_dir, opts, &rep2);
	if (rc != 0)
		FUZZ_FAIL("reopen after an append failed: %d (%s)", rc, mcrdt_error_last());
	if (rep2.records != records + 1 || rep2.torn_bytes != 0)
		FUZZ_FAIL("reopen found %" PRIu64 " records (%" PRIu64 " torn bytes), expected %" PRIu64,
			  rep2.records, rep2.torn_bytes, records + 1);
	struct replay_ctx c2 = { records, 0, &op };
	rc = sync_log_replay(again, records, on_op, &c2);
	if (rc != 0 || c2.count != 1)
		FUZZ_FAIL("replay of the appended op: %d, %" PRIu64 " ops (%s)", rc, c2.count, mcrdt_error_last());
	sync_log_close(again);
	crdt_op_free(&op);
}

/* Open refused as corrupt: repair, then the log must open. */
static void repair_then_open(const struct sync_log_opts *opts)
{
	struct sync_log_report rep;
	int rc = sync_log_repair(log_dir, &rep);
	if (rc == MCRDT_EVERSION)
		return;
	if (rc != 0)
		FUZZ_FAIL("repair of a corrupt log failed: %d (%s)", rc, mcrdt_error_last());
	struct sync_log_report rep2;
	sync_log *log = NULL;
	rc = sync_log_open(&log, log_dir, opts, &rep2);
	if (rc != 0)
		FUZZ_FAIL("open after repair failed: %d (%s)", rc, mcrdt_error_last());
	if (rep2.records != rep.records)
		FUZZ_FAIL("repair kept %" PRIu64 " records, open finds %" PRIu64, rep.records, rep2.records);
	sync_log_close(log);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	const char *tmp = getenv("TMPDIR");
	snprintf(base_dir, sizeof base_dir, "%s/mcrdt-fuzz-segment.XXXXXX", tmp && *tmp ? tmp : "/tmp");
	if (!mkdtemp(base_dir))
		FUZZ_FAIL("mkdtemp %s: %s", base_dir, strerror(errno));
	path_in(log_dir, sizeof log_dir, base_dir, "log");
	atexit(remove_all);

	/* The headers built here must have the layout of the log's own: magic,
	 * version, first index and checksum where the log puts them (the log
	 * may put a salt in the high half of the version field; ours is 0). */
	char init[4200];
	path_in(init, sizeof init, base_dir, "init");
	struct sync_log_opts opts = SYNC_LOG_OPTS_INIT;
	opts.no_fsync = true;
	sync_log *log = NULL;
	if (sync_log_open(&log, init, &opts, NULL) != 0)
		FUZZ_FAIL("cannot create a log: %s", mcrdt_error_last());
	sync_log_close(log);
	struct listing l;
	list_dir(init, &l);
	uint8_t h[HEADER_SIZE];
	fuzz_segment_header(h, 0);
	const uint8_t *real = l.n == 1 ? l.f[0].data : NULL;
	if (!real || l.f[0].len != HEADER_SIZE || memcmp(real, h, 12) != 0 || memcmp(real + 16, h + 16, 8) != 0 ||
	    fuzz_get64(real + 24) != XXH3_64bits(real, 24))
		FUZZ_FAIL("the harness's segment header differs from the log's: update fuzz_segment_header");
	listing_free(&l);
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size == 0)
		return 0;
	clear_dir(log_dir);
	if (mkdir(log_dir, 0700) != 0 && errno != EEXIST)
		FUZZ_FAIL("mkdir %s: %s", log_dir, strerror(errno));
	uint8_t mode = data[0];
	const uint8_t *body = data + 1;
	size_t len = size - 1;
	struct sync_log_opts opts = SYNC_LOG_OPTS_INIT;
	opts.no_fsync = true;
	if (mode & 0x10)
		opts.segment_bytes = 4096;

	if (!(mode & 1)) {
		char name[32];
		seg_name(name, sizeof name, 0);
		write_file(log_dir, name, body, len, NULL, 0);
	} else if ((mode & 2) && len >= 2) {
		size_t split = (size_t)(body[0] | body[1] << 8);
		body += 2;
		len -= 2;
		split = len ? split % (len + 1) : 0;
		uint64_t first2 = count_records(body, split);
		if (mode & 8) {
			int shift = (int)(mode >> 5) - 4; /* -4 .. 3 */
			first2 = (uint64_t)((int64_t)first2 + (shift >= 0 ? shift + 1 : shift));
		}
		if (first2 == 0 || first2 > UINT64_MAX / 2) {
			write_segment(0, body, len); /* no room for a second segment */
		} else {
			write_segment(0, body, split);
			write_segment(first2, body + split, len - split);
			if (mode & 4)
				opts.verify_from = first2;
		}
	} else {
		write_segment(0, body, len);
	}

	struct listing before;
	list_dir(log_dir, &before);
	struct sync_log_report rep;
	memset(&rep, 0xa5, sizeof rep);
	sync_log *log = NULL;
	int rc = sync_log_open(&log, log_dir, &opts, &rep);
	if (rc == 0) {
		exercise(log, &rep, &opts);
	} else {
		if (!open_refusal_ok(rc))
			FUZZ_FAIL("open returned %d (%s)", rc, mcrdt_error_last());
		struct listing after;
		list_dir(log_dir, &after);
		if (!listing_eq(&before, &after))
			FUZZ_FAIL("a refused open changed the log's files (%d: %s)", rc, mcrdt_error_last());
		listing_free(&after);
		if (rc == MCRDT_ECORRUPT)
			repair_then_open(&opts);
	}
	listing_free(&before);
	return 0;
}
