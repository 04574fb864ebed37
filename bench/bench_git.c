/*
 * bench/bench_git.c — the git transport on a big publish: N message bodies
 * (text-like, 2..64 KiB, read from files as the store does) in one
 * publish; then a fetch of it all into an empty repository from a local
 * path (the pack-copying fast path) and through libgit2's transport,
 * against `cp -r` of the objects directory as the floor; then a repack.
 *
 * Usage: bench_git [N] [MAXKIB]   (default 10000 bodies, up to 64 KiB)
 */
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "bench/bench.h"
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
	char path[512];
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

static void die(const char *what)
{
	fprintf(stderr, "bench_git: %s: %s\n", what, mcrdt_error_last());
	exit(1);
}

static void sh(const char *fmt, const char *a, const char *b)
{
	char cmd[2048];
	snprintf(cmd, sizeof cmd, fmt, a, b);
	if (system(cmd) != 0) {
		fprintf(stderr, "bench_git: %s failed\n", cmd);
		exit(1);
	}
}

int main(int argc, char **argv)
{
	size_t n = argc > 1 ? strtoul(argv[1], NULL, 10) : 10000;
	size_t maxk = argc > 2 ? strtoul(argv[2], NULL, 10) : 64;
	char root[] = "/tmp/bench-git-XXXXXX";
	if (!mkdtemp(root))
		return 1;
	char bd[600], ra[600], rb[600], rc[600], cp[600];
	snprintf(bd, sizeof bd, "%s/bodies", root);
	snprintf(ra, sizeof ra, "%s/a", root);
	snprintf(rb, sizeof rb, "%s/b", root);
	snprintf(rc, sizeof rc, "%s/c", root);
	snprintf(cp, sizeof cp, "%s/cp", root);
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
			char path[700];
			snprintf(path, sizeof path, "%s/%" PRIu64, bd, c);
			int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
			if (fd < 0 || write(fd, buf, len) != (ssize_t)len)
				return 1;
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
		die("open");
	struct sync_git_stats st = { 0 };
	sh("sync; cat %s/* %s >/dev/null", bd, "");
	double t0 = now();
	if (sync_git_publish(a, ops, n + 1, n + 1, body_fn, NULL, &st))
		die("publish");
	double t1 = now();
	printf("publish: %.2f s, %.0f MB/s of bodies (%" PRIu64 " bodies)\n", t1 - t0,
	       (double)st.body_bytes_published / 1e6 / (t1 - t0), st.bodies_published);
	sh("du -sh %s/objects/pack %s", ra, "");

	sh("sync %s%s", "", "");
	t0 = now();
	sh("cp -r %s/objects %s", ra, cp);
	t1 = now();
	double floor = t1 - t0;
	printf("cp -r objects (floor): %.2f s\n", floor);

	struct sync_git_remote rem = { ra, NULL, NULL };
	memset(&st, 0, sizeof st);
	t0 = now();
	if (sync_git_fetch(b, &rem, &st))
		die("fetch (fast path)");
	t1 = now();
	printf("fetch, local path (pack copy): %.2f s (%.1fx cp), %" PRIu64 " objects, %.1f MB\n", t1 - t0,
	       (t1 - t0) / floor, st.objects_fetched, (double)st.bytes_fetched / 1e6);

	crdt_vv known = CRDT_VV_INIT;
	size_t nread = 0;
	t0 = now();
	if (sync_git_read_new(b, &known, count_fn, &nread, NULL))
		die("read_new");
	t1 = now();
	printf("read_new: %zu ops checked and read in %.2f s\n", nread, t1 - t0);

	if (!getenv("BENCH_GIT_NO_TRANSPORT")) {
		sync_git_test_transport_only(c, true);
		memset(&st, 0, sizeof st);
		t0 = now();
		if (sync_git_fetch(c, &rem, &st))
			die("fetch (transport)");
		t1 = now();
		printf("fetch, libgit2 local transport: %.2f s (%.1fx cp), %" PRIu64 " objects, %.1f MB\n", t1 - t0,
		       (t1 - t0) / floor, st.objects_fetched, (double)st.bytes_fetched / 1e6);
	}

	/* Pushes of it all to an empty hub: copying packs, and libgit2's transport. */
	for (int way = 0; way < 2; way++) {
		if (way == 1 && getenv("BENCH_GIT_NO_TRANSPORT"))
			break;
		char hub[700];
		snprintf(hub, sizeof hub, "%s/hub%d", root, way);
		if (sync_git_hub_init(hub))
			die("hub init");
		sync_git_test_transport_only(a, way == 1);
		struct sync_git_remote hr = { hub, NULL, NULL };
		memset(&st, 0, sizeof st);
		t0 = now();
		if (sync_git_push(a, &hr, &st))
			die("push");
		t1 = now();
		printf("push to an empty local hub, %s: %.2f s (%.1fx cp), %.1f MB\n",
		       way ? "libgit2 local transport" : "pack copy", t1 - t0, (t1 - t0) / floor,
		       (double)st.bytes_pushed / 1e6);
	}

	/* Repack everything B holds into one new pack. */
	t0 = now();
	unsigned np;
	if (sync_git_maintain(b, 0, &np))
		die("maintain");
	t1 = now();
	printf("maintain (repack all into one): %.2f s, %u pack(s) after\n", t1 - t0, np);

	for (size_t i = 0; i <= n; i++)
		crdt_op_free(&ops[i]);
	free(ops);
	crdt_vv_free(&known);
	sync_git_close(a);
	sync_git_close(b);
	sync_git_close(c);
	sh("rm -rf %s %s", root, "");
	return 0;
}
