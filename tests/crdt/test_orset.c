/*
 * tests/crdt/test_orset.c — the add-wins observed-remove set (crdt/orset.h),
 * as a user of a replicated set sees it.
 */
#include "tests/check_run.h"
#include <check.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "crdt/orset.h"
#include "mcrdt/errors.h"

/* Elements, including the empty string and strings holding NUL bytes. */
static const struct {
	const char *b;
	size_t len;
} EL[] = { { "", 0 }, { "a", 1 }, { "a\0", 2 }, { "a\0b", 3 }, { "\0", 1 }, { "b", 1 } };
enum { NEL = sizeof EL / sizeof *EL, MAXOPS = 800, NREP = 3 };

enum kind { ADD, REM };
struct op {
	enum kind kind;
	size_t el;
	crdt_dot dot;
	crdt_vv deps; /* the issuer's context when it made the op */
};
static struct op ops[MAXOPS];
static size_t nops;

struct replica {
	crdt_orset s;
	uint64_t id, next;
};

static int apply(crdt_orset *s, const struct op *o)
{
	if (o->kind == ADD)
		return crdt_orset_add(s, EL[o->el].b, EL[o->el].len, o->dot, &o->deps);
	return crdt_orset_remove(s, EL[o->el].b, EL[o->el].len, o->dot, &o->deps);
}

/* Replica r issues an op: deps = its own context, dot = (id, next counter);
 * it applies it locally and the op is logged. Returns the op's index. */
static size_t issue(struct replica *r, enum kind k, size_t el)
{
	ck_assert_uint_lt(nops, MAXOPS);
	struct op *o = &ops[nops];
	o->kind = k;
	o->el = el;
	o->dot = (crdt_dot){ r->id, ++r->next };
	crdt_vv_init(&o->deps);
	ck_assert_int_eq(crdt_vv_copy(&o->deps, &r->s.cc), 0);
	ck_assert_int_eq(apply(&r->s, o), 0);
	return nops++;
}

/* dst (initialized) becomes a fresh set replaying, in issue (= causal) order,
 * the logged ops whose dot is in filter (all ops when filter is NULL). */
static void replay(crdt_orset *dst, const crdt_vv *filter)
{
	crdt_orset_free(dst);
	for (size_t i = 0; i < nops; i++) {
		if (filter && !crdt_vv_contains(filter, ops[i].dot))
			continue;
		ck_assert(crdt_orset_ready(dst, ops[i].dot, &ops[i].deps));
		ck_assert_int_eq(apply(dst, &ops[i]), 0);
	}
}

static void set_copy(crdt_orset *dst, const crdt_orset *src)
{
	crdt_orset_free(dst);
	ck_assert_int_eq(crdt_orset_join(dst, src), 0);
}

static int has(const crdt_orset *s, size_t el)
{
	return crdt_orset_contains(s, EL[el].b, EL[el].len);
}

/* Naive add-wins model over the ops in s's context: el is present iff some
 * add of el is observed (in deps) by no op on el; checks contains and dots. */
static void check_model(const crdt_orset *s)
{
	for (size_t el = 0; el < NEL; el++) {
		size_t live = 0;
		for (size_t i = 0; i < nops; i++) {
			if (ops[i].el != el || ops[i].kind != ADD || !crdt_vv_contains(&s->cc, ops[i].dot))
				continue;
			bool seen = false;
			for (size_t j = 0; j < nops && !seen; j++)
				seen = ops[j].el == el && crdt_vv_contains(&s->cc, ops[j].dot) &&
				       crdt_vv_contains(&ops[j].deps, ops[i].dot);
			live += !seen;
		}
		ck_assert_int_eq(has(s, el), live > 0);
		for (size_t k = 0; k < s->n; k++)
			if (s->e[k].len == EL[el].len && !memcmp(s->e[k].bytes, EL[el].b, EL[el].len))
				ck_assert_uint_eq(s->e[k].ndots, live);
	}
}

static void rep_init(struct replica *r, size_t n)
{
	for (size_t i = 0; i < n; i++)
		r[i] = (struct replica){ { NULL, 0, 0, CRDT_VV_INIT }, i + 1, 0 };
}

static void rep_free(struct replica *r, size_t n)
{
	for (size_t i = 0; i < n; i++)
		crdt_orset_free(&r[i].s);
	for (size_t i = 0; i < nops; i++)
		crdt_vv_free(&ops[i].deps);
	nops = 0;
}

/* An added element is contained; other elements are not; empty/NUL strings are distinct. */
START_TEST(add_then_contains)
{
	struct replica r[1];
	rep_init(r, 1);
	ck_assert(!has(&r[0].s, 0));
	issue(&r[0], ADD, 1); /* "a" */
	ck_assert(has(&r[0].s, 1));
	for (size_t el = 0; el < NEL; el++)
		ck_assert_int_eq(has(&r[0].s, el), el == 1);
	issue(&r[0], ADD, 0); /* "" */
	issue(&r[0], ADD, 3); /* "a\0b" */
	ck_assert(has(&r[0].s, 0) && has(&r[0].s, 3));
	ck_assert(!has(&r[0].s, 2) && !has(&r[0].s, 4));
	ck_assert(crdt_orset_contains(&r[0].s, NULL, 0));
	ck_assert_uint_eq(r[0].s.n, 3);
	check_model(&r[0].s);
	rep_free(r, 1);
}
END_TEST

/* Removing an observed add removes it (only it); re-adding works; no tombstones. */
START_TEST(remove_observed)
{
	struct replica r[1];
	rep_init(r, 1);
	for (size_t el = 0; el < NEL; el++)
		issue(&r[0], ADD, el);
	issue(&r[0], REM, 1); /* "a" goes, "a\0" and "a\0b" stay */
	ck_assert(!has(&r[0].s, 1));
	ck_assert(has(&r[0].s, 2) && has(&r[0].s, 3));
	issue(&r[0], REM, 0);
	ck_assert(!has(&r[0].s, 0));
	ck_assert_uint_eq(r[0].s.n, NEL - 2);
	issue(&r[0], REM, 1); /* removing an absent element changes nothing visible */
	ck_assert_uint_eq(r[0].s.n, NEL - 2);
	issue(&r[0], ADD, 1);
	ck_assert(has(&r[0].s, 1));
	check_model(&r[0].s);
	for (size_t el = 0; el < NEL; el++) /* no tombstones: removing all leaves n == 0 */
		issue(&r[0], REM, el);
	ck_assert_uint_eq(r[0].s.n, 0);
	for (int i = 0; i < 5; i++) /* re-adding replaces observed dots: one live dot */
		issue(&r[0], ADD, 2);
	ck_assert_uint_eq(r[0].s.n, 1);
	ck_assert_uint_eq(r[0].s.e[0].ndots, 1);
	issue(&r[0], REM, 2);
	ck_assert_uint_eq(r[0].s.n, 0);
	rep_free(r, 1);
}
END_TEST

/* Add wins: an add concurrent with a remove survives either delivery order. */
START_TEST(concurrent_add_remove)
{
	struct replica r[2];
	rep_init(r, 2);
	size_t a1 = issue(&r[0], ADD, 3);
	ck_assert_int_eq(apply(&r[1].s, &ops[a1]), 0);
	size_t rm = issue(&r[0], REM, 3);  /* observed a1 */
	size_t a2 = issue(&r[1], ADD, 3);  /* concurrent with rm */
	ck_assert(!has(&r[0].s, 3));
	ck_assert_int_eq(apply(&r[0].s, &ops[a2]), 0);
	ck_assert_int_eq(apply(&r[1].s, &ops[rm]), 0);
	ck_assert(has(&r[0].s, 3) && has(&r[1].s, 3));
	ck_assert(crdt_orset_equal(&r[0].s, &r[1].s));
	ck_assert_uint_eq(r[0].s.e[0].ndots, 1);
	ck_assert(crdt_dot_eq(r[0].s.e[0].dots[0], ops[a2].dot));

	/* A remove that observed nothing does not remove a later-delivered add. */
	crdt_orset x = { NULL, 0, 0, CRDT_VV_INIT }, y = x;
	struct op ra = { REM, 5, { 9, 1 }, CRDT_VV_INIT }, rb = { ADD, 5, { 8, 1 }, CRDT_VV_INIT };
	ck_assert_int_eq(apply(&x, &ra), 0);
	ck_assert_int_eq(apply(&x, &rb), 0);
	ck_assert_int_eq(apply(&y, &rb), 0);
	ck_assert_int_eq(apply(&y, &ra), 0);
	ck_assert(has(&x, 5) && has(&y, 5));
	ck_assert(crdt_orset_equal(&x, &y));
	crdt_orset_free(&x);
	crdt_orset_free(&y);
	rep_free(r, 2);
}
END_TEST

/* Re-applying any op returns EDUPLICATE and leaves the state unchanged. */
START_TEST(reapply_is_idempotent)
{
	struct replica r[1];
	rep_init(r, 1);
	issue(&r[0], ADD, 1);
	issue(&r[0], ADD, 4);
	issue(&r[0], REM, 1);
	issue(&r[0], REM, 2);
	issue(&r[0], ADD, 1);
	crdt_orset snap = { NULL, 0, 0, CRDT_VV_INIT };
	set_copy(&snap, &r[0].s);
	ck_assert(crdt_orset_equal(&snap, &r[0].s));
	for (int pass = 0; pass < 2; pass++)
		for (size_t i = 0; i < nops; i++) {
			ck_assert_int_eq(apply(&r[0].s, &ops[i]), MCRDT_EDUPLICATE);
			ck_assert(crdt_orset_equal(&snap, &r[0].s));
		}
	ck_assert(has(&r[0].s, 1) && has(&r[0].s, 4));
	crdt_orset_free(&snap);
	rep_free(r, 1);
}
END_TEST

/* An op with the invalid counter 0 is rejected (EINVAL) and leaves the set unchanged. */
START_TEST(add_with_counter_zero_changes_nothing)
{
	crdt_orset s = { NULL, 0, 0, CRDT_VV_INIT };
	crdt_vv deps = CRDT_VV_INIT;
	int add_rc = crdt_orset_add(&s, "x", 1, (crdt_dot){ 1, 0 }, &deps);
	int rm_rc = crdt_orset_remove(&s, "y", 1, (crdt_dot){ 1, 0 }, &deps);
	int x_in = crdt_orset_contains(&s, "x", 1);
	size_t n = s.n;
	crdt_orset_free(&s); /* before asserting, so a failure does not also leak */
	ck_assert_int_eq(add_rc, MCRDT_EINVAL);
	ck_assert_int_eq(rm_rc, MCRDT_EINVAL);
	ck_assert_int_eq(x_in, 0);
	ck_assert_uint_eq(n, 0);
}
END_TEST

/* Joining two diverged replicas equals replaying all ops, in either interleaving. */
START_TEST(join_equals_replay)
{
	struct replica r[2];
	rep_init(r, 2);
	issue(&r[0], ADD, 1);
	issue(&r[0], ADD, 2);
	issue(&r[0], ADD, 3);
	ck_assert_int_eq(crdt_orset_join(&r[1].s, &r[0].s), 0);
	size_t common = nops;
	issue(&r[0], REM, 1);
	issue(&r[0], ADD, 0);
	issue(&r[0], REM, 3);
	size_t mid = nops;
	issue(&r[1], ADD, 1); /* concurrent with r0's remove: "a" stays */
	issue(&r[1], REM, 2);
	issue(&r[1], ADD, 4);
	issue(&r[1], REM, 0); /* r1 never saw r0's "" add: "" stays */
	crdt_orset t[4]; /* r0+r1, r1+r0, replay r0-first, replay r1-first */
	for (int k = 0; k < 4; k++)
		crdt_orset_init(&t[k]);
	set_copy(&t[0], &r[0].s);
	ck_assert_int_eq(crdt_orset_join(&t[0], &r[1].s), 0);
	set_copy(&t[1], &r[1].s);
	ck_assert_int_eq(crdt_orset_join(&t[1], &r[0].s), 0);
	replay(&t[2], NULL);
	ck_assert(!crdt_orset_ready(&t[3], ops[mid].dot, &ops[mid].deps)); /* deps unmet */
	size_t order[] = { 0, common, mid, nops, common, mid };
	for (int part = 0; part < 3; part++)
		for (size_t i = order[2 * part]; i < order[2 * part + 1]; i++)
			ck_assert_int_eq(apply(&t[3], &ops[i]), 0);
	for (int k = 1; k < 4; k++)
		ck_assert(crdt_orset_equal(&t[0], &t[k]));
	ck_assert(has(&t[0], 0) && has(&t[0], 1) && !has(&t[0], 2) && !has(&t[0], 3) && has(&t[0], 4));
	check_model(&t[0]);
	for (int k = 0; k < 4; k++)
		crdt_orset_free(&t[k]);
	rep_free(r, 2);
}
END_TEST

/* Each replica drops the other's add it saw: a join must not keep an empty element. */
START_TEST(join_of_mutual_removes)
{
	struct replica r[3];
	rep_init(r, 3);
	issue(&r[0], ADD, 1);                                   /* d1 at A */
	issue(&r[1], ADD, 1);                                   /* d2 at B */
	ck_assert_int_eq(crdt_orset_join(&r[2].s, &r[1].s), 0); /* C sees d2 */
	issue(&r[2], REM, 1);                                   /* C drops d2 only */
	ck_assert_int_eq(crdt_orset_join(&r[2].s, &r[0].s), 0); /* C: holds d1 */
	issue(&r[0], REM, 1);                                   /* A drops d1 only */
	ck_assert_int_eq(crdt_orset_join(&r[1].s, &r[0].s), 0); /* B: holds d2 */
	ck_assert(has(&r[1].s, 1) && has(&r[2].s, 1));
	crdt_orset t[2] = { { NULL, 0, 0, CRDT_VV_INIT }, { NULL, 0, 0, CRDT_VV_INIT } };
	set_copy(&t[0], &r[1].s);
	ck_assert_int_eq(crdt_orset_join(&t[0], &r[2].s), 0);
	set_copy(&t[1], &r[2].s);
	ck_assert_int_eq(crdt_orset_join(&t[1], &r[1].s), 0);
	for (int k = 0; k < 2; k++) {
		ck_assert(!has(&t[k], 1));
		ck_assert_uint_eq(t[k].n, 0);
		check_model(&t[k]);
	}
	ck_assert(crdt_orset_equal(&t[0], &t[1]));
	crdt_orset_free(&t[0]);
	crdt_orset_free(&t[1]);
	rep_free(r, 3);
}
END_TEST

static uint64_t rng_state;
static uint64_t rnd(void) /* xorshift64*, fixed seed per test */
{
	rng_state ^= rng_state >> 12;
	rng_state ^= rng_state << 25;
	rng_state ^= rng_state >> 27;
	return rng_state * 2685821657736338717ULL;
}

/* Join laws on copies of three states, and the join matches a replay. */
static void check_join_laws(const crdt_orset *a, const crdt_orset *b, const crdt_orset *c)
{
	crdt_orset t[5];
	for (int i = 0; i < 5; i++)
		crdt_orset_init(&t[i]);
	set_copy(&t[0], a); /* a+b vs b+a */
	ck_assert_int_eq(crdt_orset_join(&t[0], b), 0);
	set_copy(&t[1], b);
	ck_assert_int_eq(crdt_orset_join(&t[1], a), 0);
	ck_assert(crdt_orset_equal(&t[0], &t[1]));
	ck_assert_int_eq(crdt_orset_join(&t[1], &t[1]), 0); /* idempotent */
	ck_assert_int_eq(crdt_orset_join(&t[1], a), 0);
	ck_assert(crdt_orset_equal(&t[0], &t[1]));
	replay(&t[4], &t[0].cc);
	ck_assert(crdt_orset_equal(&t[0], &t[4]));
	ck_assert_int_eq(crdt_orset_join(&t[0], c), 0); /* (a+b)+c vs a+(b+c) */
	set_copy(&t[2], b);
	ck_assert_int_eq(crdt_orset_join(&t[2], c), 0);
	set_copy(&t[3], a);
	ck_assert_int_eq(crdt_orset_join(&t[3], &t[2]), 0);
	ck_assert(crdt_orset_equal(&t[0], &t[3]));
	check_model(&t[3]);
	for (int i = 0; i < 5; i++)
		crdt_orset_free(&t[i]);
}

/* 3 replicas issue random ops and join at random (8 seeds); all converge to the replay. */
START_TEST(randomized_convergence)
{
	struct replica r[NREP];
	rep_init(r, NREP);
	rng_state = 0xD1B54A32D192ED03ULL + 0x9E3779B97F4A7C15ULL * (uint64_t)_i;
	crdt_orset ref = { NULL, 0, 0, CRDT_VV_INIT };
	for (int step = 0; step < 400; step++) {
		size_t i = rnd() % NREP, j = rnd() % NREP;
		unsigned what = rnd() % 10;
		if (what < 6 && nops < MAXOPS - NEL * NREP) {
			issue(&r[i], what < 3 ? ADD : REM, rnd() % NEL);
		} else if (what < 9) {
			ck_assert_int_eq(crdt_orset_join(&r[i].s, &r[j].s), 0);
			replay(&ref, &r[i].s.cc);
			ck_assert(crdt_orset_equal(&r[i].s, &ref));
		} else {
			check_join_laws(&r[0].s, &r[1].s, &r[2].s);
		}
		check_model(&r[i].s);
	}
	for (size_t i = 1; i < NREP; i++) /* exchange everything */
		ck_assert_int_eq(crdt_orset_join(&r[0].s, &r[i].s), 0);
	for (size_t i = 1; i < NREP; i++)
		ck_assert_int_eq(crdt_orset_join(&r[i].s, &r[0].s), 0);
	replay(&ref, NULL);
	for (size_t i = 0; i < NREP; i++)
		ck_assert(crdt_orset_equal(&r[i].s, &ref));
	check_model(&ref);

	/* No tombstones: remove everything r0 sees, everywhere n drops to 0. */
	for (size_t el = 0; el < NEL; el++)
		if (has(&r[0].s, el))
			issue(&r[0], REM, el);
	ck_assert_uint_eq(r[0].s.n, 0);
	for (size_t i = 1; i < NREP; i++) {
		ck_assert_int_eq(crdt_orset_join(&r[i].s, &r[0].s), 0);
		ck_assert_uint_eq(r[i].s.n, 0);
		ck_assert(crdt_orset_equal(&r[i].s, &r[0].s));
	}
	crdt_orset_free(&ref);
	rep_free(r, NREP);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("orset");
	TCase *tc = tcase_create("core");
	const TTest *tests[] = { add_then_contains, remove_observed,
				 concurrent_add_remove, reapply_is_idempotent,
				 add_with_counter_zero_changes_nothing, join_equals_replay,
				 join_of_mutual_removes };
	for (size_t i = 0; i < sizeof tests / sizeof *tests; i++)
		tcase_add_test(tc, tests[i]);
	tcase_add_loop_test(tc, randomized_convergence, 0, 8);
	tcase_set_timeout(tc, 120);
	suite_add_tcase(s, tc);
	return run_suite(s, CK_FORK_GETENV);
}
