/*
 * bench/bench.h — what every benchmark shares: a monotonic clock.
 */
#ifndef MCRDT_BENCH_H
#define MCRDT_BENCH_H

#include <time.h>

/* Seconds on the monotonic clock. */
static inline double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

#endif
