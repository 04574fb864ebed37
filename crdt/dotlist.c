/*
 * crdt/dotlist.c — see dotlist.h.
 */
#include "crdt/dotlist.h"

#include <stdlib.h>

#include "common/error.h"
#include "common/grow.h"

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
	int rc = GROW(*d, *cap, *n + 1);
	if (rc)
		return rc;
	(*d)[(*n)++] = dot;
	return 0;
}
