/*
 * crdt/vv.c — version vectors with exceptions. See vv.h.
 */
#include "crdt/vv.h"

#include <stdlib.h>
#include <string.h>

#include "common/error.h"
#include "common/grow.h"

int crdt_dot_cmp(crdt_dot a, crdt_dot b)
{
	if (a.replica != b.replica)
		return a.replica < b.replica ? -1 : 1;
	if (a.counter != b.counter)
		return a.counter < b.counter ? -1 : 1;
	return 0;
}

void crdt_vv_init(crdt_vv *vv)
{
	vv->e = NULL;
	vv->n = vv->cap = 0;
}

void crdt_vv_clear(crdt_vv *vv)
{
	for (size_t i = 0; i < vv->n; i++)
		free(vv->e[i].extra);
	vv->n = 0;
}

void crdt_vv_free(crdt_vv *vv)
{
	crdt_vv_clear(vv);
	free(vv->e);
	crdt_vv_init(vv);
}

/* Binary search: the index of replica's entry, or where it would go. */
static size_t search(const crdt_vv *vv, uint64_t replica, bool *found)
{
	size_t lo = 0, hi = vv->n;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (vv->e[mid].replica < replica)
			lo = mid + 1;
		else if (vv->e[mid].replica > replica)
			hi = mid;
		else {
			*found = true;
			return mid;
		}
	}
	*found = false;
	return lo;
}

static const struct crdt_vv_entry *find_const(const crdt_vv *vv, uint64_t replica)
{
	bool found;
	size_t at = search(vv, replica, &found);
	return found ? &vv->e[at] : NULL;
}

/* The entry for replica, inserted (empty) if missing. NULL on ENOMEM. */
static struct crdt_vv_entry *entry(crdt_vv *vv, uint64_t replica)
{
	bool found;
	size_t lo = search(vv, replica, &found);
	if (found)
		return &vv->e[lo];
	if (GROW(vv->e, vv->cap, vv->n + 1))
		return NULL;
	memmove(&vv->e[lo + 1], &vv->e[lo], (vv->n - lo) * sizeof *vv->e);
	vv->n++;
	struct crdt_vv_entry *x = &vv->e[lo];
	memset(x, 0, sizeof *x);
	x->replica = replica;
	return x;
}

/* Folds exceptions that became contiguous into the base. */
static void compact(struct crdt_vv_entry *x)
{
	size_t k = 0;
	while (k < x->nextra && x->extra[k] <= x->base + 1) {
		if (x->extra[k] == x->base + 1)
			x->base++;
		k++;
	}
	if (k) {
		memmove(x->extra, x->extra + k, (x->nextra - k) * sizeof *x->extra);
		x->nextra -= k;
	}
}

static bool entry_has(const struct crdt_vv_entry *x, uint64_t c)
{
	if (c <= x->base)
		return true;
	size_t lo = 0, hi = x->nextra;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (x->extra[mid] < c)
			lo = mid + 1;
		else if (x->extra[mid] > c)
			hi = mid;
		else
			return true;
	}
	return false;
}

int crdt_vv_add(crdt_vv *vv, crdt_dot d)
{
	if (d.counter == 0)
		return err_set(MCRDT_EINVAL, "dot counter 0 is invalid");
	struct crdt_vv_entry *x = entry(vv, d.replica);
	if (!x)
		return MCRDT_ENOMEM;
	if (entry_has(x, d.counter))
		return 0;
	if (d.counter == x->base + 1) {
		x->base++;
		compact(x);
		return 0;
	}
	int rc = GROW(x->extra, x->capextra, x->nextra + 1);
	if (rc)
		return rc;
	size_t i = x->nextra;
	while (i > 0 && x->extra[i - 1] > d.counter) {
		x->extra[i] = x->extra[i - 1];
		i--;
	}
	x->extra[i] = d.counter;
	x->nextra++;
	return 0;
}

int crdt_vv_set_base(crdt_vv *vv, uint64_t replica, uint64_t base)
{
	struct crdt_vv_entry *x = entry(vv, replica);
	if (!x)
		return MCRDT_ENOMEM;
	if (base > x->base) {
		x->base = base;
		compact(x);
	}
	return 0;
}

bool crdt_vv_contains(const crdt_vv *vv, crdt_dot d)
{
	const struct crdt_vv_entry *x = find_const(vv, d.replica);
	return x && d.counter > 0 && entry_has(x, d.counter);
}

uint64_t crdt_vv_base(const crdt_vv *vv, uint64_t replica)
{
	const struct crdt_vv_entry *x = find_const(vv, replica);
	return x ? x->base : 0;
}

int crdt_vv_copy(crdt_vv *dst, const crdt_vv *src)
{
	if (dst == src)
		return 0;
	crdt_vv_clear(dst);
	/* Room for src's entries exactly: every op carries a copy, mostly of
	 * one or two entries, where growing would make room for eight. */
	int rc = RESERVE(dst->e, dst->cap, src->n);
	return rc ? rc : crdt_vv_merge(dst, src);
}

int crdt_vv_merge(crdt_vv *dst, const crdt_vv *src)
{
	for (size_t i = 0; i < src->n; i++) {
		const struct crdt_vv_entry *s = &src->e[i];
		int rc = crdt_vv_set_base(dst, s->replica, s->base);
		for (size_t k = 0; rc == 0 && k < s->nextra; k++)
			rc = crdt_vv_add(dst, (crdt_dot){ s->replica, s->extra[k] });
		if (rc)
			return rc;
	}
	return 0;
}

static bool entry_includes(const struct crdt_vv_entry *a, const struct crdt_vv_entry *b)
{
	/* Every dot of b must be in a. */
	if (b->base > a->base) {
		/* a must hold (a->base, b->base] as exceptions: only possible if
		 * they are all listed, which compaction rules out for base+1. */
		return false;
	}
	for (size_t k = 0; k < b->nextra; k++)
		if (!entry_has(a, b->extra[k]))
			return false;
	return true;
}

bool crdt_vv_includes(const crdt_vv *a, const crdt_vv *b)
{
	static const struct crdt_vv_entry empty = { 0, 0, NULL, 0, 0 };
	for (size_t i = 0; i < b->n; i++) {
		const struct crdt_vv_entry *x = find_const(a, b->e[i].replica);
		if (!entry_includes(x ? x : &empty, &b->e[i]))
			return false;
	}
	return true;
}

size_t crdt_vv_exceptions(const crdt_vv *vv)
{
	size_t n = 0;
	for (size_t i = 0; i < vv->n; i++)
		n += vv->e[i].nextra;
	return n;
}

enum crdt_vv_order crdt_vv_compare(const crdt_vv *a, const crdt_vv *b)
{
	bool ab = crdt_vv_includes(a, b), ba = crdt_vv_includes(b, a);
	if (ab && ba)
		return CRDT_VV_EQUAL;
	if (ba)
		return CRDT_VV_BEFORE;
	if (ab)
		return CRDT_VV_AFTER;
	return CRDT_VV_CONCURRENT;
}
