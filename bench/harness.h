/*
 * bench/harness.h — what the store-level benchmarks share: failing with
 * one line, API calls that must succeed, removing a work tree, medians.
 *
 * Include after defining BENCH_NAME (the program's name for messages) and
 * _GNU_SOURCE (nftw).
 */
#ifndef MCRDT_BENCH_HARNESS_H
#define MCRDT_BENCH_HARNESS_H

#include <errno.h>
#include <ftw.h>
#include <stdarg.h>
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

/* Removes dir and everything under it (links are not followed). */
static inline void rm_tree(const char *dir)
{
	nftw(dir, bench_rm_one, 64, FTW_DEPTH | FTW_PHYS);
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
