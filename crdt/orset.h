/*
 * crdt/orset.h — an add-wins observed-remove set of byte strings.
 *
 * No tombstones: each element keeps the dots of the adds that are still
 * live, and the set keeps a causal context (the dots of every op it has
 * applied). A remove drops the dots its op had observed, so an add that was
 * concurrent with the remove survives. A join keeps a dot that is in both
 * states, or in one state and outside the other's context: whatever the
 * other side has seen and no longer holds was removed there.
 *
 * Ops carry their causal dependencies (the issuer's context when it made
 * the op); "observed" means "covered by the deps". Applying an op is
 * idempotent: an op whose dot is already in the context changes nothing.
 * The caller delivers ops in causal order: a set used alone asks
 * crdt_orset_ready first; the mail model checks its own, wider context and
 * buffers the ops that arrive early.
 *
 * Elements are sorted byte strings, so iteration order is deterministic.
 * Not thread-safe: one owner per set.
 */
#ifndef MCRDT_CRDT_ORSET_H
#define MCRDT_CRDT_ORSET_H

#include "crdt/vv.h"

struct crdt_orset_elem {
	uint8_t *bytes;
	size_t len;
	crdt_dot *dots;
	size_t ndots, capdots;
};

typedef struct {
	struct crdt_orset_elem *e; /* sorted by bytes (memcmp, then length) */
	size_t n, cap;
	crdt_vv cc;                /* dots of every op applied */
} crdt_orset;

void crdt_orset_init(crdt_orset *s);
void crdt_orset_free(crdt_orset *s);

/* 1 when every dep is in the context (the op may be applied), else 0. */
int crdt_orset_ready(const crdt_orset *s, crdt_dot dot, const crdt_vv *deps);

/*
 * Add elem with the new dot dot; the element's dots covered by deps are
 * replaced. Returns 0, MCRDT_EDUPLICATE if dot was already applied (nothing
 * changes), or MCRDT_ENOMEM.
 */
int crdt_orset_add(crdt_orset *s, const void *elem, size_t len, crdt_dot dot, const crdt_vv *deps);
/* Remove elem: drops its dots covered by deps. Same returns as add. */
int crdt_orset_remove(crdt_orset *s, const void *elem, size_t len, crdt_dot dot, const crdt_vv *deps);
/* Whether elem is in the set. */
int crdt_orset_contains(const crdt_orset *s, const void *elem, size_t len);
/* State join: dst becomes the least upper bound of dst and src. */
int crdt_orset_join(crdt_orset *dst, const crdt_orset *src);
/* Heap bytes the set holds. */
size_t crdt_orset_bytes(const crdt_orset *s);
/* 1 if both sets hold the same elements with the same dots and contexts. */
int crdt_orset_equal(const crdt_orset *a, const crdt_orset *b);

#endif
