/*
 * crdt/orset.c — the add-wins observed-remove set. See orset.h.
 */
#include "crdt/orset.h"

#include <stdlib.h>
#include <string.h>

#include "common/error.h"
#include "common/grow.h"
#include "crdt/dotlist.h"

void crdt_orset_init(crdt_orset *s)
{
	s->e = NULL;
	s->n = s->cap = 0;
	crdt_vv_init(&s->cc);
}

static void elem_free(struct crdt_orset_elem *x)
{
	free(x->bytes);
	free(x->dots);
}

void crdt_orset_free(crdt_orset *s)
{
	for (size_t i = 0; i < s->n; i++)
		elem_free(&s->e[i]);
	free(s->e);
	crdt_vv_free(&s->cc);
	crdt_orset_init(s);
}

static int bytes_cmp(const void *a, size_t alen, const void *b, size_t blen)
{
	size_t n = alen < blen ? alen : blen;
	int c = n ? memcmp(a, b, n) : 0;
	if (c)
		return c;
	return alen < blen ? -1 : alen > blen;
}

/* Index of elem, or of where it would be inserted; *found says which. */
static size_t locate(const crdt_orset *s, const void *elem, size_t len, int *found)
{
	size_t lo = 0, hi = s->n;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		int c = bytes_cmp(s->e[mid].bytes, s->e[mid].len, elem, len);
		if (c < 0)
			lo = mid + 1;
		else if (c > 0)
			hi = mid;
		else {
			*found = 1;
			return mid;
		}
	}
	*found = 0;
	return lo;
}

static int insert_elem(crdt_orset *s, size_t at, const void *elem, size_t len)
{
	int rc = GROW(s->e, s->cap, s->n + 1);
	if (rc)
		return rc;
	uint8_t *copy = malloc(len ? len : 1);
	if (!copy)
		return err_set(MCRDT_ENOMEM, "out of memory copying a set element");
	if (len)
		memcpy(copy, elem, len);
	memmove(&s->e[at + 1], &s->e[at], (s->n - at) * sizeof *s->e);
	s->n++;
	memset(&s->e[at], 0, sizeof s->e[at]);
	s->e[at].bytes = copy;
	s->e[at].len = len;
	return 0;
}

static void remove_elem(crdt_orset *s, size_t at)
{
	elem_free(&s->e[at]);
	memmove(&s->e[at], &s->e[at + 1], (s->n - at - 1) * sizeof *s->e);
	s->n--;
}

int crdt_orset_ready(const crdt_orset *s, crdt_dot dot, const crdt_vv *deps)
{
	(void)dot;
	return crdt_vv_includes(&s->cc, deps);
}

static int check_apply(const crdt_orset *s, crdt_dot dot)
{
	if (dot.counter == 0)
		return err_set(MCRDT_EINVAL, "dot counter 0 is invalid");
	return crdt_vv_contains(&s->cc, dot) ? MCRDT_EDUPLICATE : 0;
}

/* Drops the element's dots that deps covers; removes an element left empty. */
static void drop_covered(crdt_orset *s, size_t at, const crdt_vv *deps)
{
	struct crdt_orset_elem *x = &s->e[at];
	x->ndots = dots_drop_covered(x->dots, x->ndots, deps);
	if (x->ndots == 0)
		remove_elem(s, at);
}

int crdt_orset_add(crdt_orset *s, const void *elem, size_t len, crdt_dot dot, const crdt_vv *deps)
{
	int rc = check_apply(s, dot);
	if (rc)
		return rc;
	int found;
	size_t at = locate(s, elem, len, &found);
	if (!found && (rc = insert_elem(s, at, elem, len)))
		return rc;
	struct crdt_orset_elem *x = &s->e[at];
	if ((rc = dots_push(&x->dots, &x->ndots, &x->capdots, dot)) == 0 &&
	    (rc = crdt_vv_add(&s->cc, dot)) != 0)
		x->ndots--; /* take the pushed dot back */
	if (rc) {
		if (x->ndots == 0)
			remove_elem(s, at);
		return rc;
	}
	/* Only now that nothing can fail: the observed dots give way. */
	size_t n = x->ndots - 1;
	n = dots_drop_covered(x->dots, n, deps);
	x->dots[n++] = dot;
	x->ndots = n;
	return 0;
}

int crdt_orset_remove(crdt_orset *s, const void *elem, size_t len, crdt_dot dot, const crdt_vv *deps)
{
	int rc = check_apply(s, dot);
	if (rc)
		return rc;
	if ((rc = crdt_vv_add(&s->cc, dot)))
		return rc;
	int found;
	size_t at = locate(s, elem, len, &found);
	if (found)
		drop_covered(s, at, deps);
	return 0;
}

int crdt_orset_contains(const crdt_orset *s, const void *elem, size_t len)
{
	int found;
	locate(s, elem, len, &found);
	return found;
}

/* Keeps the dots of a that are in b, or that b's context has not seen. */
static size_t keep_joined(crdt_dot *a, size_t na, const crdt_dot *b, size_t nb, const crdt_vv *bcc)
{
	size_t k = 0;
	for (size_t i = 0; i < na; i++) {
		int in_b = 0;
		for (size_t j = 0; j < nb && !in_b; j++)
			in_b = crdt_dot_eq(a[i], b[j]);
		if (in_b || !crdt_vv_contains(bcc, a[i]))
			a[k++] = a[i];
	}
	return k;
}

int crdt_orset_join(crdt_orset *dst, const crdt_orset *src)
{
	int rc = 0;
	/* Pass 1: dst's elements, filtered against src. */
	for (size_t i = 0; i < dst->n;) {
		struct crdt_orset_elem *x = &dst->e[i];
		int found;
		size_t j = locate(src, x->bytes, x->len, &found);
		const struct crdt_orset_elem *y = found ? &src->e[j] : NULL;
		x->ndots = keep_joined(x->dots, x->ndots, y ? y->dots : NULL, y ? y->ndots : 0, &src->cc);
		if (x->ndots == 0 && !y) {
			remove_elem(dst, i);
			continue;
		}
		i++;
	}
	/* Pass 2: src's dots that dst has not seen. */
	for (size_t j = 0; j < src->n; j++) {
		const struct crdt_orset_elem *y = &src->e[j];
		int found;
		size_t at = locate(dst, y->bytes, y->len, &found);
		for (size_t k = 0; k < y->ndots; k++) {
			if (crdt_vv_contains(&dst->cc, y->dots[k]))
				continue; /* dst saw it: it holds it (pass 1 kept it) or removed it */
			if (!found) {
				if ((rc = insert_elem(dst, at, y->bytes, y->len)))
					return rc;
				found = 1;
			}
			struct crdt_orset_elem *x = &dst->e[at];
			if ((rc = dots_push(&x->dots, &x->ndots, &x->capdots, y->dots[k])))
				return rc;
		}
		if (found && dst->e[at].ndots == 0)
			remove_elem(dst, at);
	}
	return crdt_vv_merge(&dst->cc, &src->cc);
}

size_t crdt_orset_bytes(const crdt_orset *s)
{
	size_t n = s->cap * sizeof *s->e + s->cc.cap * sizeof *s->cc.e;
	for (size_t i = 0; i < s->n; i++)
		n += s->e[i].len + s->e[i].capdots * sizeof *s->e[i].dots;
	for (size_t i = 0; i < s->cc.n; i++)
		n += s->cc.e[i].capextra * sizeof *s->cc.e[i].extra;
	return n;
}

int crdt_orset_equal(const crdt_orset *a, const crdt_orset *b)
{
	if (a->n != b->n || crdt_vv_compare(&a->cc, &b->cc) != CRDT_VV_EQUAL)
		return 0;
	for (size_t i = 0; i < a->n; i++) {
		const struct crdt_orset_elem *x = &a->e[i], *y = &b->e[i];
		if (bytes_cmp(x->bytes, x->len, y->bytes, y->len) || x->ndots != y->ndots)
			return 0;
		for (size_t k = 0; k < x->ndots; k++) {
			size_t j = 0;
			while (j < y->ndots && !crdt_dot_eq(x->dots[k], y->dots[j]))
				j++;
			if (j == y->ndots)
				return 0;
		}
	}
	return 1;
}
