/*
 * bench/harness.h — what the benchmarks share: failing with one line, API
 * calls that must succeed, the run's work directory and paths in it,
 * removing a work tree, a xorshift generator, medians.
 *
 * Include after defining BENCH_NAME (the program's name for messages) and
 * _GNU_SOURCE (nftw).
 */
#ifndef MCRDT_BENCH_HARNESS_H
#define MCRDT_BENCH_HARNESS_H

#include <errno.h>
#include <ftw.h>
#include <limits.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "mcrdt/mcrdt.h"

/* Prints "BENCH_NAME: <message>" and exits 1. */
__attribute__((format(printf, 1, 2), noreturn)) static inline void fail(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	fputs(BENCH_NAME ": ", stderr);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	va_end(ap);
	exit(1);
}

/* An API call that must succeed. */
#define CK(call)                                                                                 \
	do {                                                                                     \
		int ck_rc_ = (call);                                                             \
		if (ck_rc_ != 0)                                                                 \
			fail("%s:%d: %s returned %d (%s): %s", __FILE__, __LINE__, #call, ck_rc_, \
			     mcrdt_strerror(ck_rc_), mcrdt_error_last());                        \
	} while (0)

static inline int bench_rm_one(const char *path, const struct stat *st, int type, struct FTW *ftw)
{
	(void)st;
	(void)ftw;
	if ((type == FTW_DP ? rmdir(path) : unlink(path)) != 0)
		fprintf(stderr, BENCH_NAME ": cannot remove %s: %s\n", path, strerror(errno));
	return 0;
}

/* Runs a shell command made of fmt...; fails unless it exits 0. */
__attribute__((format(printf, 1, 2))) static inline void run(const char *fmt, ...)
{
	char cmd[16384];
	va_list ap;
	va_start(ap, fmt);
	if ((size_t)vsnprintf(cmd, sizeof cmd, fmt, ap) >= sizeof cmd)
		fail("command too long");
	va_end(ap);
	int rc = system(cmd);
	if (rc != 0)
		fail("command failed (%d): %s", rc, cmd);
}

/* Removes dir and everything under it (links are not followed). */
static inline void rm_tree(const char *dir)
{
	nftw(dir, bench_rm_one, 64, FTW_DEPTH | FTW_PHYS);
}

/*
 * The run's work directory, made by bench_root_make under the DIR given
 * (a mkdtemp named PREFIX-XXXXXX) and removed at exit: kept instead, for
 * a look afterwards, when $MCRDT_BENCH_KEEP is set and the run failed
 * (bench_ok not set), or always when it is "always".
 */
static char bench_root[PATH_MAX];
static bool bench_ok; /* set by the program once every result was checked */

static inline void bench_cleanup(void)
{
	if (!bench_root[0])
		return;
	const char *keep = getenv("MCRDT_BENCH_KEEP");
	if (keep && (!bench_ok || strcmp(keep, "always") == 0)) {
		fprintf(stderr, BENCH_NAME ": kept %s\n", bench_root);
		return;
	}
	rm_tree(bench_root);
}

static inline void bench_root_make(const char *base, const char *prefix)
{
	char root[PATH_MAX];
	if ((size_t)snprintf(root, sizeof root, "%s/%s-XXXXXX", base, prefix) >= sizeof root - 64)
		fail("DIR too long");
	if (!mkdtemp(root))
		fail("mkdtemp %s: %s", root, strerror(errno));
	if (!realpath(root, bench_root))
		fail("realpath %s: %s", root, strerror(errno));
	atexit(bench_cleanup);
}

/* out = bench_root/<fmt...>. */
__attribute__((format(printf, 3, 4))) static inline void path_in(char *out, size_t cap, const char *fmt, ...)
{
	char name[1024];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(name, sizeof name, fmt, ap);
	va_end(ap);
	if ((size_t)snprintf(out, cap, "%s/%s", bench_root, name) >= cap)
		fail("path too long");
}

/* Removes a section's directory at its end, unless everything is kept. */
static inline void scrap(const char *dir)
{
	const char *keep = getenv("MCRDT_BENCH_KEEP");
	if (!keep || strcmp(keep, "always") != 0)
		rm_tree(dir);
}

/* xorshift64 on *state (never 0): each program keeps its own seed, so that
 * its figures are run over the same data every time. */
static inline uint32_t bench_rnd(uint64_t *state)
{
	*state ^= *state << 13;
	*state ^= *state >> 7;
	*state ^= *state << 17;
	return (uint32_t)(*state >> 16);
}

/* A store named "bench"; created when asked, fsyncs off when asked. */
static inline mcrdt_store *open_store(const char *dir, bool create, bool no_fsync)
{
	struct mcrdt_open_opts o = MCRDT_OPEN_OPTS_INIT;
	o.flags = create ? MCRDT_OPEN_CREATE : 0;
	o.no_fsync = no_fsync;
	o.name = "bench";
	mcrdt_store *s = NULL;
	CK(mcrdt_store_open(&s, dir, &o));
	return s;
}

static inline int bench_cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

/* The median of v[0..n), which is left as it was. */
static inline double median(const double *v, size_t n)
{
	double *c = malloc(n * sizeof *c), m;
	if (!c)
		fail("out of memory");
	memcpy(c, v, n * sizeof *c);
	qsort(c, n, sizeof *c, bench_cmp_double);
	m = n % 2 ? c[n / 2] : (c[n / 2 - 1] + c[n / 2]) / 2;
	free(c);
	return m;
}

#endif
