/*
 * common/grow.h — growing an array by doubling: the one way every module
 * makes room for one more element.
 *
 *     if ((rc = GROW(v, cap, n + 1)))
 *             return rc;
 *
 * GROW(arr, cap, need) makes arr (a T *) hold at least need elements; cap
 * (a size_t) is its capacity. 0, or MCRDT_ENOMEM with arr unchanged.
 */
#ifndef MCRDT_COMMON_GROW_H
#define MCRDT_COMMON_GROW_H

#include <stddef.h>
#include <stdlib.h>

#include "common/error.h"

/* RESERVE(arr, cap, need): room for need elements exactly, for a count
 * known in advance (no doubling's spare); 0 or MCRDT_ENOMEM. */
static inline int reserve_array(void **p, size_t *cap, size_t need, size_t size)
{
	if (need <= *cap)
		return 0;
	void *np = realloc(*p, need * size);
	if (!np)
		return err_set(MCRDT_ENOMEM, "out of memory (%zu records of %zu bytes)", need, size);
	*p = np;
	*cap = need;
	return 0;
}

static inline int grow_array(void **p, size_t *cap, size_t need, size_t size)
{
	if (need <= *cap)
		return 0;
	size_t ncap = *cap ? *cap : 8;
	while (ncap < need)
		ncap *= 2;
	return reserve_array(p, cap, ncap, size);
}

#define GROW(arr, cap, need) grow_array((void **)&(arr), &(cap), (need), sizeof *(arr))

#define RESERVE(arr, cap, need) reserve_array((void **)&(arr), &(cap), (need), sizeof *(arr))

#endif
