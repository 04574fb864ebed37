/*
 * crdt/dotlist.h — the small dot arrays that OR-set elements carry.
 *
 * One place for the two moves every add-wins structure makes: drop the dots
 * an op observed (covered by its deps), and push the op's own dot.
 */
#ifndef MCRDT_CRDT_DOTLIST_H
#define MCRDT_CRDT_DOTLIST_H

#include "crdt/vv.h"

/* Compacts d[0..n) to the dots deps does not cover; returns the new count. */
size_t dots_drop_covered(crdt_dot *d, size_t n, const crdt_vv *deps);
/* Appends dot, growing the array. 0 or MCRDT_ENOMEM. */
int dots_push(crdt_dot **d, size_t *n, size_t *cap, crdt_dot dot);

#endif
