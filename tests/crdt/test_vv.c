/*
 * tests/crdt/test_vv.c — dots and version vectors with exceptions (crdt/vv.h).
 */
#include "tests/check_run.h"
#include <check.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "crdt/vv.h"
#include "mcrdt/errors.h"

static crdt_dot dot(uint64_t r, uint64_t c)
{
	return (crdt_dot){ r, c };
}

/* Adds each counter of cs (n of them) for replica r, asserting success. */
static void add_all(crdt_vv *vv, uint64_t r, const uint64_t *cs, size_t n)
{
	for (size_t i = 0; i < n; i++)
		ck_assert_int_eq(crdt_vv_add(vv, dot(r, cs[i])), 0);
}

/* Dot order is by replica, then counter; eq matches cmp == 0. */
START_TEST(dot_order)
{
	ck_assert_int_lt(crdt_dot_cmp(dot(1, 9), dot(2, 1)), 0);
	ck_assert_int_gt(crdt_dot_cmp(dot(2, 1), dot(1, 9)), 0);
	ck_assert_int_lt(crdt_dot_cmp(dot(3, 4), dot(3, 5)), 0);
	ck_assert_int_eq(crdt_dot_cmp(dot(3, 5), dot(3, 5)), 0);
	ck_assert(crdt_dot_eq(dot(3, 5), dot(3, 5)));
	ck_assert(!crdt_dot_eq(dot(3, 5), dot(5, 3)));
}
END_TEST

/* In-order adds keep a contiguous base with no exceptions; re-adding is a no-op. */
START_TEST(in_order_is_contiguous)
{
	crdt_vv vv = CRDT_VV_INIT;
	for (uint64_t c = 1; c <= 100; c++) {
		ck_assert_int_eq(crdt_vv_add(&vv, dot(7, c)), 0);
		ck_assert_uint_eq(crdt_vv_base(&vv, 7), c);
		ck_assert_uint_eq(crdt_vv_exceptions(&vv), 0);
	}
	ck_assert_int_eq(crdt_vv_add(&vv, dot(7, 50)), 0);
	ck_assert_uint_eq(crdt_vv_base(&vv, 7), 100);
	ck_assert(crdt_vv_contains(&vv, dot(7, 1)));
	ck_assert(crdt_vv_contains(&vv, dot(7, 100)));
	ck_assert(!crdt_vv_contains(&vv, dot(7, 101)));
	crdt_vv_free(&vv);
}
END_TEST

/* Out-of-order adds become exceptions and fold into the base when gaps fill. */
START_TEST(out_of_order_compacts)
{
	crdt_vv vv = CRDT_VV_INIT;
	add_all(&vv, 1, (const uint64_t[]){ 1, 3, 5 }, 3);
	ck_assert_uint_eq(crdt_vv_base(&vv, 1), 1);
	ck_assert_uint_eq(crdt_vv_exceptions(&vv), 2);
	ck_assert(crdt_vv_contains(&vv, dot(1, 3)));
	ck_assert(!crdt_vv_contains(&vv, dot(1, 2)));
	ck_assert(!crdt_vv_contains(&vv, dot(1, 4)));
	add_all(&vv, 1, (const uint64_t[]){ 2 }, 1);
	ck_assert_uint_eq(crdt_vv_base(&vv, 1), 3);
	ck_assert_uint_eq(crdt_vv_exceptions(&vv), 1);
	add_all(&vv, 1, (const uint64_t[]){ 4 }, 1);
	ck_assert_uint_eq(crdt_vv_base(&vv, 1), 5);
	ck_assert_uint_eq(crdt_vv_exceptions(&vv), 0);

	/* Descending order: everything is an exception until 1 arrives. */
	crdt_vv d = CRDT_VV_INIT;
	add_all(&d, 2, (const uint64_t[]){ 6, 5, 4, 3, 2 }, 5);
	ck_assert_uint_eq(crdt_vv_base(&d, 2), 0);
	ck_assert_uint_eq(crdt_vv_exceptions(&d), 5);
	add_all(&d, 2, (const uint64_t[]){ 1 }, 1);
	ck_assert_uint_eq(crdt_vv_base(&d, 2), 6);
	ck_assert_uint_eq(crdt_vv_exceptions(&d), 0);
	crdt_vv_free(&vv);
	crdt_vv_free(&d);
}
END_TEST

/* Unknown replicas have base 0 and contain nothing; counter 0 is rejected. */
START_TEST(unknown_replica_and_counter_zero)
{
	crdt_vv vv = CRDT_VV_INIT;
	ck_assert_uint_eq(crdt_vv_base(&vv, 42), 0);
	ck_assert(!crdt_vv_contains(&vv, dot(42, 1)));
	add_all(&vv, 3, (const uint64_t[]){ 1, 2 }, 2);
	ck_assert_uint_eq(crdt_vv_base(&vv, 42), 0);
	ck_assert(!crdt_vv_contains(&vv, dot(42, 1)));
	ck_assert(!crdt_vv_contains(&vv, dot(3, 0)));
	ck_assert_int_eq(crdt_vv_add(&vv, dot(3, 0)), MCRDT_EINVAL);
	ck_assert_int_eq(crdt_vv_add(&vv, dot(9, 0)), MCRDT_EINVAL);
	ck_assert_uint_eq(crdt_vv_base(&vv, 3), 2);
	ck_assert_uint_eq(crdt_vv_exceptions(&vv), 0);
	ck_assert(!crdt_vv_contains(&vv, dot(9, 0)));
	crdt_vv_free(&vv);
}
END_TEST

/* Raising the base swallows exceptions below it and folds the next ones in. */
START_TEST(set_base_swallows_exceptions)
{
	crdt_vv vv = CRDT_VV_INIT;
	add_all(&vv, 1, (const uint64_t[]){ 3, 5, 8, 10 }, 4);
	ck_assert_int_eq(crdt_vv_set_base(&vv, 1, 7), 0);
	ck_assert_uint_eq(crdt_vv_base(&vv, 1), 8); /* 8 was next */
	ck_assert_uint_eq(crdt_vv_exceptions(&vv), 1);
	ck_assert(crdt_vv_contains(&vv, dot(1, 6)));
	ck_assert(crdt_vv_contains(&vv, dot(1, 10)));
	ck_assert(!crdt_vv_contains(&vv, dot(1, 9)));
	/* Lowering is a no-op. */
	ck_assert_int_eq(crdt_vv_set_base(&vv, 1, 2), 0);
	ck_assert_uint_eq(crdt_vv_base(&vv, 1), 8);
	ck_assert_int_eq(crdt_vv_set_base(&vv, 1, 20), 0);
	ck_assert_uint_eq(crdt_vv_base(&vv, 1), 20);
	ck_assert_uint_eq(crdt_vv_exceptions(&vv), 0);
	/* On a fresh replica. */
	ck_assert_int_eq(crdt_vv_set_base(&vv, 4, 3), 0);
	ck_assert_uint_eq(crdt_vv_base(&vv, 4), 3);
	crdt_vv_free(&vv);
}
END_TEST

/* Merge is a union on hand vectors: commutative, idempotent, associative. */
START_TEST(merge_by_hand)
{
	crdt_vv a = CRDT_VV_INIT, b = CRDT_VV_INIT, c = CRDT_VV_INIT;
	add_all(&a, 1, (const uint64_t[]){ 1, 2, 4 }, 3);
	add_all(&a, 2, (const uint64_t[]){ 1 }, 1);
	add_all(&b, 1, (const uint64_t[]){ 1, 3, 6 }, 3);
	add_all(&b, 3, (const uint64_t[]){ 2 }, 1);
	add_all(&c, 2, (const uint64_t[]){ 1, 2, 3 }, 3);
	add_all(&c, 1, (const uint64_t[]){ 5 }, 1);

	crdt_vv ab = CRDT_VV_INIT, ba = CRDT_VV_INIT;
	ck_assert_int_eq(crdt_vv_copy(&ab, &a), 0);
	ck_assert_int_eq(crdt_vv_merge(&ab, &b), 0);
	ck_assert_int_eq(crdt_vv_copy(&ba, &b), 0);
	ck_assert_int_eq(crdt_vv_merge(&ba, &a), 0);
	ck_assert_int_eq(crdt_vv_compare(&ab, &ba), CRDT_VV_EQUAL);
	ck_assert_uint_eq(crdt_vv_base(&ab, 1), 4);
	ck_assert(crdt_vv_contains(&ab, dot(1, 6)));
	ck_assert(!crdt_vv_contains(&ab, dot(1, 5)));
	ck_assert(crdt_vv_contains(&ab, dot(3, 2)));
	ck_assert(!crdt_vv_contains(&ab, dot(3, 1)));
	ck_assert_uint_eq(crdt_vv_base(&ab, 2), 1);

	ck_assert_int_eq(crdt_vv_merge(&ab, &ab), 0); /* self-merge */
	ck_assert_int_eq(crdt_vv_merge(&ab, &b), 0);  /* idempotent */
	ck_assert_int_eq(crdt_vv_compare(&ab, &ba), CRDT_VV_EQUAL);

	crdt_vv l = CRDT_VV_INIT, r = CRDT_VV_INIT; /* (a+b)+c vs a+(b+c) */
	ck_assert_int_eq(crdt_vv_copy(&l, &ab), 0);
	ck_assert_int_eq(crdt_vv_merge(&l, &c), 0);
	ck_assert_int_eq(crdt_vv_copy(&r, &b), 0);
	ck_assert_int_eq(crdt_vv_merge(&r, &c), 0);
	ck_assert_int_eq(crdt_vv_merge(&r, &a), 0);
	ck_assert_int_eq(crdt_vv_compare(&l, &r), CRDT_VV_EQUAL);
	ck_assert_uint_eq(crdt_vv_base(&l, 1), 6);
	ck_assert_uint_eq(crdt_vv_base(&l, 2), 3);
	ck_assert_uint_eq(crdt_vv_exceptions(&l), 1); /* only (3,2) */

	crdt_vv *all[] = { &a, &b, &c, &ab, &ba, &l, &r };
	for (size_t i = 0; i < sizeof all / sizeof *all; i++)
		crdt_vv_free(all[i]);
}
END_TEST

/* includes/compare give EQUAL, BEFORE, AFTER and CONCURRENT as expected. */
START_TEST(compare_orders)
{
	crdt_vv e = CRDT_VV_INIT, a = CRDT_VV_INIT, b = CRDT_VV_INIT, c = CRDT_VV_INIT;
	ck_assert_int_eq(crdt_vv_compare(&e, &e), CRDT_VV_EQUAL);
	add_all(&a, 1, (const uint64_t[]){ 1, 2 }, 2);
	add_all(&b, 1, (const uint64_t[]){ 1, 2, 4 }, 3);
	add_all(&c, 1, (const uint64_t[]){ 1, 2 }, 2);
	add_all(&c, 2, (const uint64_t[]){ 1 }, 1);
	ck_assert(crdt_vv_includes(&a, &e));
	ck_assert(!crdt_vv_includes(&e, &a));
	ck_assert_int_eq(crdt_vv_compare(&e, &a), CRDT_VV_BEFORE);
	ck_assert_int_eq(crdt_vv_compare(&a, &b), CRDT_VV_BEFORE);
	ck_assert_int_eq(crdt_vv_compare(&b, &a), CRDT_VV_AFTER);
	ck_assert_int_eq(crdt_vv_compare(&b, &c), CRDT_VV_CONCURRENT);
	ck_assert_int_eq(crdt_vv_compare(&c, &b), CRDT_VV_CONCURRENT);
	/* An exception-only difference: {1,2,4} vs {1,2,3}. */
	crdt_vv d = CRDT_VV_INIT;
	add_all(&d, 1, (const uint64_t[]){ 3, 2, 1 }, 3);
	ck_assert_int_eq(crdt_vv_compare(&b, &d), CRDT_VV_CONCURRENT);
	/* Same dots built in different orders (and an empty entry via set_base). */
	crdt_vv x = CRDT_VV_INIT, y = CRDT_VV_INIT;
	add_all(&x, 1, (const uint64_t[]){ 4, 2, 1 }, 3);
	ck_assert_int_eq(crdt_vv_set_base(&x, 9, 0), 0);
	ck_assert_int_eq(crdt_vv_set_base(&y, 1, 2), 0);
	add_all(&y, 1, (const uint64_t[]){ 4 }, 1);
	ck_assert_int_eq(crdt_vv_compare(&x, &y), CRDT_VV_EQUAL);
	ck_assert_int_eq(crdt_vv_compare(&y, &x), CRDT_VV_EQUAL);
	crdt_vv *all[] = { &e, &a, &b, &c, &d, &x, &y };
	for (size_t i = 0; i < sizeof all / sizeof *all; i++)
		crdt_vv_free(all[i]);
}
END_TEST

/* Copy is deep: mutating the copy leaves the original alone; self-copy is safe. */
START_TEST(copy_is_deep)
{
	crdt_vv a = CRDT_VV_INIT, b = CRDT_VV_INIT;
	add_all(&a, 1, (const uint64_t[]){ 1, 3, 5 }, 3);
	add_all(&a, 2, (const uint64_t[]){ 2 }, 1);
	add_all(&b, 8, (const uint64_t[]){ 1, 7 }, 2); /* old content is replaced */
	ck_assert_int_eq(crdt_vv_copy(&b, &a), 0);
	ck_assert_int_eq(crdt_vv_compare(&a, &b), CRDT_VV_EQUAL);
	ck_assert(!crdt_vv_contains(&b, dot(8, 1)));
	add_all(&b, 1, (const uint64_t[]){ 2, 4, 9 }, 3);
	add_all(&b, 2, (const uint64_t[]){ 1 }, 1);
	add_all(&b, 3, (const uint64_t[]){ 1 }, 1);
	ck_assert_uint_eq(crdt_vv_base(&a, 1), 1);
	ck_assert_uint_eq(crdt_vv_exceptions(&a), 3);
	ck_assert(!crdt_vv_contains(&a, dot(1, 9)));
	ck_assert(!crdt_vv_contains(&a, dot(2, 1)));
	ck_assert_uint_eq(crdt_vv_base(&a, 3), 0);
	ck_assert_int_eq(crdt_vv_compare(&a, &b), CRDT_VV_BEFORE);
	ck_assert_int_eq(crdt_vv_copy(&a, &a), 0);
	ck_assert_uint_eq(crdt_vv_exceptions(&a), 3);
	crdt_vv_clear(&a);
	ck_assert_uint_eq(crdt_vv_base(&a, 1), 0);
	ck_assert_uint_eq(crdt_vv_base(&b, 1), 5);
	crdt_vv_free(&a);
	crdt_vv_free(&b);
}
END_TEST

/* --- randomized check against a naive reference (a bit per dot) --- */

enum { NR = 4, NC = 24, NV = 200 };
typedef struct {
	bool has[NR + 1][NC + 1]; /* has[replica][counter], replicas 1..NR */
} ref_set;

static uint64_t rng_state;
static uint64_t rnd(void) /* xorshift64*, fixed seed per test */
{
	rng_state ^= rng_state >> 12;
	rng_state ^= rng_state << 25;
	rng_state ^= rng_state >> 27;
	return rng_state * 2685821657736338717ULL;
}
static uint64_t rnd_below(uint64_t n)
{
	return rnd() % n;
}

/* A random vector and its reference: random dots in random order, some set_base. */
static void random_vv(crdt_vv *vv, ref_set *ref)
{
	memset(ref, 0, sizeof *ref);
	size_t nops = (size_t)rnd_below(30);
	for (size_t i = 0; i < nops; i++) {
		uint64_t r = 1 + rnd_below(NR);
		if (rnd_below(10) == 0) {
			uint64_t b = rnd_below(NC / 2);
			ck_assert_int_eq(crdt_vv_set_base(vv, r, b), 0);
			for (uint64_t c = 1; c <= b; c++)
				ref->has[r][c] = true;
		} else {
			uint64_t c = 1 + rnd_below(NC);
			ck_assert_int_eq(crdt_vv_add(vv, dot(r, c)), 0);
			ref->has[r][c] = true;
		}
	}
}

/* Every query on vv agrees with the reference. */
static void check_matches(const crdt_vv *vv, const ref_set *ref)
{
	size_t exc = 0;
	for (uint64_t r = 1; r <= NR; r++) {
		uint64_t base = 0;
		while (base < NC && ref->has[r][base + 1])
			base++;
		ck_assert_uint_eq(crdt_vv_base(vv, r), base);
		for (uint64_t c = 1; c <= NC; c++) {
			ck_assert(crdt_vv_contains(vv, dot(r, c)) == ref->has[r][c]);
			exc += c > base + 1 && ref->has[r][c];
		}
		ck_assert(!crdt_vv_contains(vv, dot(r, NC + 1)));
	}
	ck_assert_uint_eq(crdt_vv_exceptions(vv), exc);
}

static bool ref_subset(const ref_set *a, const ref_set *b) /* a within b */
{
	for (int r = 1; r <= NR; r++)
		for (int c = 1; c <= NC; c++)
			if (a->has[r][c] && !b->has[r][c])
				return false;
	return true;
}

static void ref_union(ref_set *dst, const ref_set *src)
{
	for (int r = 1; r <= NR; r++)
		for (int c = 1; c <= NC; c++)
			dst->has[r][c] = dst->has[r][c] || src->has[r][c];
}

/* Merge, includes and compare agree with set union/subset on ~200 random vectors. */
START_TEST(merge_randomized)
{
	static crdt_vv v[NV];
	static ref_set ref[NV];
	rng_state = 0x9E3779B97F4A7C15ULL;
	for (int i = 0; i < NV; i++) {
		crdt_vv_init(&v[i]);
		random_vv(&v[i], &ref[i]);
		check_matches(&v[i], &ref[i]);
	}
	crdt_vv ab = CRDT_VV_INIT, ba = CRDT_VV_INIT, l = CRDT_VV_INIT, r = CRDT_VV_INIT;
	for (int t = 0; t < 2000; t++) {
		size_t i = rnd_below(NV), j = rnd_below(NV), k = rnd_below(NV);
		ref_set u = ref[i];
		ref_union(&u, &ref[j]);

		ck_assert_int_eq(crdt_vv_copy(&ab, &v[i]), 0);
		ck_assert_int_eq(crdt_vv_merge(&ab, &v[j]), 0);
		check_matches(&ab, &u);
		ck_assert_int_eq(crdt_vv_copy(&ba, &v[j]), 0);
		ck_assert_int_eq(crdt_vv_merge(&ba, &v[i]), 0);
		ck_assert_int_eq(crdt_vv_compare(&ab, &ba), CRDT_VV_EQUAL);
		ck_assert_int_eq(crdt_vv_merge(&ab, &v[j]), 0);
		ck_assert_int_eq(crdt_vv_merge(&ab, &ab), 0);
		check_matches(&ab, &u);

		/* Associativity: (i+j)+k == i+(j+k). */
		ck_assert_int_eq(crdt_vv_copy(&l, &ab), 0);
		ck_assert_int_eq(crdt_vv_merge(&l, &v[k]), 0);
		ck_assert_int_eq(crdt_vv_copy(&r, &v[j]), 0);
		ck_assert_int_eq(crdt_vv_merge(&r, &v[k]), 0);
		ck_assert_int_eq(crdt_vv_merge(&r, &v[i]), 0);
		ck_assert_int_eq(crdt_vv_compare(&l, &r), CRDT_VV_EQUAL);
		ref_union(&u, &ref[k]);
		check_matches(&r, &u);

		/* includes/compare follow the subset relation. */
		bool ij = ref_subset(&ref[j], &ref[i]), ji = ref_subset(&ref[i], &ref[j]);
		ck_assert(crdt_vv_includes(&v[i], &v[j]) == ij);
		ck_assert(crdt_vv_includes(&v[j], &v[i]) == ji);
		enum crdt_vv_order want = ij && ji ? CRDT_VV_EQUAL
					: ji	 ? CRDT_VV_BEFORE
					: ij	 ? CRDT_VV_AFTER
						 : CRDT_VV_CONCURRENT;
		ck_assert_int_eq(crdt_vv_compare(&v[i], &v[j]), want);
		ck_assert(crdt_vv_includes(&ab, &v[i]) && crdt_vv_includes(&ab, &v[j]));
	}
	crdt_vv_free(&ab);
	crdt_vv_free(&ba);
	crdt_vv_free(&l);
	crdt_vv_free(&r);
	for (int i = 0; i < NV; i++)
		crdt_vv_free(&v[i]);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("vv");
	TCase *tc = tcase_create("core");
	tcase_add_test(tc, dot_order);
	tcase_add_test(tc, in_order_is_contiguous);
	tcase_add_test(tc, out_of_order_compacts);
	tcase_add_test(tc, unknown_replica_and_counter_zero);
	tcase_add_test(tc, set_base_swallows_exceptions);
	tcase_add_test(tc, merge_by_hand);
	tcase_add_test(tc, compare_orders);
	tcase_add_test(tc, copy_is_deep);
	tcase_add_test(tc, merge_randomized);
	tcase_set_timeout(tc, 60);
	suite_add_tcase(s, tc);
	return run_suite(s, CK_FORK_GETENV);
}
