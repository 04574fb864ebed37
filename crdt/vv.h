/*
 * crdt/vv.h — dots and version vectors.
 *
 * A dot (replica, counter) names one op. A version vector records a set of
 * dots: per replica a contiguous range 1..base plus the counters above it
 * that were seen out of order (exceptions). Ops that arrive in causal order
 * keep every range contiguous; state merges of partial histories (the
 * generic OR-set's join) need the exceptions.
 *
 * Pure and deterministic. Not thread-safe: one owner per vector.
 */
#ifndef MCRDT_CRDT_VV_H
#define MCRDT_CRDT_VV_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct {
	uint64_t replica; /* never 0 */
	uint64_t counter; /* from 1, dense per replica */
} crdt_dot;

/* Total order on dots: by replica id, then counter. */
int crdt_dot_cmp(crdt_dot a, crdt_dot b);
static inline bool crdt_dot_eq(crdt_dot a, crdt_dot b)
{
	return a.replica == b.replica && a.counter == b.counter;
}

struct crdt_vv_entry {
	uint64_t replica;
	uint64_t base;     /* counters 1..base are all present */
	uint64_t *extra;   /* sorted counters > base + 1 that are present */
	size_t nextra, capextra;
};

typedef struct {
	struct crdt_vv_entry *e; /* sorted by replica */
	size_t n, cap;
} crdt_vv;

#define CRDT_VV_INIT { NULL, 0, 0 }

void crdt_vv_init(crdt_vv *vv);
void crdt_vv_free(crdt_vv *vv);
void crdt_vv_clear(crdt_vv *vv);
/* 0 or MCRDT_ENOMEM; dst is replaced by a deep copy of src. */
int crdt_vv_copy(crdt_vv *dst, const crdt_vv *src);

/* Adds one dot (a no-op if present). 0 or MCRDT_ENOMEM. */
int crdt_vv_add(crdt_vv *vv, crdt_dot d);
/* Raises the contiguous base of a replica to at least base. */
int crdt_vv_set_base(crdt_vv *vv, uint64_t replica, uint64_t base);
bool crdt_vv_contains(const crdt_vv *vv, crdt_dot d);
/* The contiguous base for replica (0 when unknown). */
uint64_t crdt_vv_base(const crdt_vv *vv, uint64_t replica);
/* Union: dst gets every dot of src. 0 or MCRDT_ENOMEM. */
int crdt_vv_merge(crdt_vv *dst, const crdt_vv *src);
/* True if every dot of b is in a. */
bool crdt_vv_includes(const crdt_vv *a, const crdt_vv *b);
/* Number of exception counters held (a measure of disorder). */
size_t crdt_vv_exceptions(const crdt_vv *vv);

enum crdt_vv_order {
	CRDT_VV_EQUAL,
	CRDT_VV_BEFORE,     /* a < b: b has seen everything a has, and more */
	CRDT_VV_AFTER,      /* a > b */
	CRDT_VV_CONCURRENT,
};
enum crdt_vv_order crdt_vv_compare(const crdt_vv *a, const crdt_vv *b);

#endif
