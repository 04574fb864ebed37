/*
 * crdt/dotlist.c — see dotlist.h.
 */
#include "crdt/dotlist.h"

#include <stdlib.h>

#include "common/error.h"

size_t dots_drop_covered(crdt_dot *d, size_t n, const crdt_vv *deps)
{
	size_t k = 0;
	for (size_t i = 0; i < n; i++)
		if (!crdt_vv_contains(deps, d[i]))
			d[k++] = d[i];
	return k;
}

int dots_push(crdt_dot **d, size_t *n, size_t *cap, crdt_dot dot)
{
	if (*n == *cap) {
		size_t ncap = *cap ? *cap * 2 : 2;
		crdt_dot *nd = realloc(*d, ncap * sizeof *nd);
		if (!nd)
			return err_set(MCRDT_ENOMEM, "out of memory growing a dot list");
		*d = nd;
		*cap = ncap;
	}
	(*d)[(*n)++] = dot;
	return 0;
}
