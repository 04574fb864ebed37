/*
 * bench/bench_git.c — the git transport on a big publish: N message bodies
 * (text-like, 2..64 KiB, read from files as the store does) in one
 * publish; then a fetch of it all into an empty repository from a local
 * path (the pack-copying fast path) and through libgit2's transport,
 * against `cp -r` of the objects directory as the floor; then a repack.
 *
 * Usage: bench_git [N] [MAXKIB]   (default 10000 bodies, up to 64 KiB)
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "bench/bench.h"
#define BENCH_NAME "bench_git"
#include "bench/harness.h"
#include "crdt/op.h"
#include "mcrdt/errors.h"
#include "sync/git.h"
#include "sync/git_test.h"

#define R UINT64_C(0x1234567890abcdef)

static const char *bodydir;

static uint64_t mix(uint64_t x)
{
	x ^= x >> 33;
	x *= UINT64_C(0xff51afd7ed558ccd);
	x ^= x >> 33;
	x *= UINT64_C(0xc4ceb9fe1a85ec53);
	return x ^ (x >> 33);
}

static int body_fn(void *ctx, const crdt_op *op, int *fd)
{
	(void)ctx;
	char path[PATH_MAX + 32];
	snprintf(path, sizeof path, "%s/%" PRIu64, bodydir, op->id.counter);
	*fd = open(path, O_RDONLY);
	return 0;
}

static int count_fn(void *ctx, const crdt_op *op, const sync_oid *body)
{
	(void)op;
	(void)body;
	(*(size_t *)ctx)++;
	return 0;
}

/* A fetch into g from rem, timed and printed against the floor. */
static void timed_fetch(sync_git *g, const struct sync_git_remote *rem, const char *how, double floor)
{
	struct sync_git_stats st = { 0 };
	double t0 = now();
	if (sync_git_fetch(g, rem, &st))
		fail("fetch (%s): %s", how, mcrdt_error_last());
	double t = now() - t0;
	printf("fetch, %s: %.2f s (%.1fx cp), %" PRIu64 " objects, %.1f MB\n", how, t, t / floor, st.objects_fetched,
	       (double)st.bytes_fetched / 1e6);
}

int main(int argc, char **argv)
{
	size_t n = argc > 1 ? strtoul(argv[1], NULL, 10) : 10000;
	size_t maxk = argc > 2 ? strtoul(argv[2], NULL, 10) : 64;
	bench_root_make("/tmp", "bench-git");
	char bd[PATH_MAX], ra[PATH_MAX], rb[PATH_MAX], rc[PATH_MAX], cp[PATH_MAX];
	path_in(bd, sizeof bd, "bodies");
	path_in(ra, sizeof ra, "a");
	path_in(rb, sizeof rb, "b");
	path_in(rc, sizeof rc, "c");
	path_in(cp, sizeof cp, "cp");
	mkdir(bd, 0700);
	bodydir = bd;

	/* Ops: a mailbox, then n appends, each with a body file. */
	crdt_op *ops = calloc(n + 1, sizeof *ops);
	static const char *const words[] = { "the", "mail", "of", "Subject:", "replica", "sync", "and", "to",
					     "From:", "hello", "meeting", "tomorrow", "at", "ten\r\n", "Received:",
					     "by", "with", "ESMTPS", "id", "for" };
	size_t total = 0;
	char *buf = malloc(maxk * 1024);
	for (size_t i = 0; i <= n; i++) {
		uint64_t c = i + 1;
		crdt_op *op = &ops[i];
		if (i == 0) {
			crdt_op_init(op, CRDT_OP_MBOX_CREATE);
			crdt_op_set_name(op, "INBOX", 5);
			op->uidvalidity = 1;
		} else {
			crdt_op_init(op, CRDT_OP_APPEND);
			op->mbox = op->space = (crdt_dot){ R, 1 };
			op->uid = (uint32_t)c;
			uint64_t s = mix(c);
			size_t len = 2048 + (size_t)(s % (maxk * 1024 - 2048 + 1));
			size_t k = 0;
			while (k < len) {
				s = mix(s + 1);
				const char *w = words[s % 20];
				for (size_t j = 0; w[j] && k < len; j++)
					buf[k++] = w[j];
				if (k < len)
					buf[k++] = (s >> 20) % 9 ? ' ' : '\n';
			}
			char path[PATH_MAX + 32];
			snprintf(path, sizeof path, "%s/%" PRIu64, bd, c);
			int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
			if (fd < 0 || write(fd, buf, len) != (ssize_t)len)
				fail("writing %s: %s", path, strerror(errno));
			close(fd);
			total += len;
		}
		op->id = (crdt_dot){ R, c };
		if (c > 1)
			crdt_vv_set_base(&op->deps, R, c - 1);
	}
	free(buf);
	printf("bodies: %zu, %.1f MB (%zu..%zu KiB, text-like)\n", n, (double)total / 1e6, (size_t)2, maxk);

	sync_git *a, *b, *c;
	if (sync_git_open(&a, ra, R, true) || sync_git_open(&b, rb, 2, true) || sync_git_open(&c, rc, 3, true))
		fail("open: %s", mcrdt_error_last());
	struct sync_git_stats st = { 0 };
	run("sync; cat %s/* >/dev/null", bd);
	double t0 = now();
	if (sync_git_publish(a, ops, n + 1, n + 1, body_fn, NULL, &st))
		fail("publish: %s", mcrdt_error_last());
	double t1 = now();
	printf("publish: %.2f s, %.0f MB/s of bodies (%" PRIu64 " bodies)\n", t1 - t0,
	       (double)st.body_bytes_published / 1e6 / (t1 - t0), st.bodies_published);
	run("du -sh %s/objects/pack", ra);

	run("sync");
	t0 = now();
	run("cp -r %s/objects %s", ra, cp);
	t1 = now();
	double floor = t1 - t0;
	printf("cp -r objects (floor): %.2f s\n", floor);

	struct sync_git_remote rem = { ra, NULL, NULL };
	timed_fetch(b, &rem, "local path (pack copy)", floor);

	crdt_vv known = CRDT_VV_INIT;
	size_t nread = 0;
	t0 = now();
	if (sync_git_read_new(b, &known, count_fn, &nread, NULL))
		fail("read_new: %s", mcrdt_error_last());
	t1 = now();
	printf("read_new: %zu ops checked and read in %.2f s\n", nread, t1 - t0);

	if (!getenv("BENCH_GIT_NO_TRANSPORT")) {
		sync_git_test_transport_only(c, true);
		timed_fetch(c, &rem, "libgit2 local transport", floor);
	}

	/* Pushes of it all to an empty hub: copying packs, and libgit2's transport. */
	for (int way = 0; way < 2; way++) {
		if (way == 1 && getenv("BENCH_GIT_NO_TRANSPORT"))
			break;
		char hub[PATH_MAX];
		path_in(hub, sizeof hub, "hub%d", way);
		if (sync_git_hub_init(hub))
			fail("hub init: %s", mcrdt_error_last());
		sync_git_test_transport_only(a, way == 1);
		struct sync_git_remote hr = { hub, NULL, NULL };
		memset(&st, 0, sizeof st);
		t0 = now();
		if (sync_git_push(a, &hr, &st))
			fail("push: %s", mcrdt_error_last());
		t1 = now();
		printf("push to an empty local hub, %s: %.2f s (%.1fx cp), %.1f MB\n",
		       way ? "libgit2 local transport" : "pack copy", t1 - t0, (t1 - t0) / floor,
		       (double)st.bytes_pushed / 1e6);
	}

	/* Repack everything B holds into one new pack. */
	t0 = now();
	unsigned np;
	if (sync_git_maintain(b, 0, &np))
		fail("maintain: %s", mcrdt_error_last());
	t1 = now();
	printf("maintain (repack all into one): %.2f s, %u pack(s) after\n", t1 - t0, np);

	for (size_t i = 0; i <= n; i++)
		crdt_op_free(&ops[i]);
	free(ops);
	crdt_vv_free(&known);
	sync_git_close(a);
	sync_git_close(b);
	sync_git_close(c);
	bench_ok = true;
	return 0;
}
