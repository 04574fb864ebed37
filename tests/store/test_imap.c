/*
 * tests/store/test_imap.c — the store's IMAP vocabulary (store/imap.h) and
 * its per-message meta bytes (store/meta.h).
 *
 * Sets: what a client's sequence set selects, "*" on full and empty
 * mailboxes, merging, the bounds of the number range, every malformed
 * input refused with a message that quotes it, and sets built one number
 * at a time. Flags: canonical spelling, what a keyword may hold, flag
 * lists as users type them, and the Maildir info letters. Meta: what is
 * encoded comes back; bytes from a peer that are cut, flipped, newer or
 * hostile are refused without a crash, and never yield an unsafe name.
 */
#include "tests/check_run.h"
#include <check.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/varint.h"
#include "mcrdt/errors.h"
#include "store/imap.h"
#include "store/meta.h"

/* ---- helpers ---- */

/* The set is sorted, disjoint and merged (no two ranges touch). Checked
 * in plain C first: a Check assertion per range costs a write to the
 * runner's pipe, too slow for sets of 500,000 ranges. */
static void ck_normalised(const struct imap_set *s)
{
	size_t bad = SIZE_MAX;
	for (size_t i = 0; i < s->n && bad == SIZE_MAX; i++)
		if (s->r[i].lo > s->r[i].hi || (i && (uint64_t)s->r[i - 1].hi + 1 >= s->r[i].lo))
			bad = i;
	if (bad == SIZE_MAX)
		return;
	ck_assert_msg(s->r[bad].lo <= s->r[bad].hi, "range %zu is %u:%u", bad, s->r[bad].lo, s->r[bad].hi);
	ck_abort_msg("ranges %zu (%u:%u) and %zu (%u:%u) overlap or touch", bad - 1, s->r[bad - 1].lo,
		     s->r[bad - 1].hi, bad, s->r[bad].lo, s->r[bad].hi);
}

/* s holds exactly the n ranges lohi[0]:lohi[1], lohi[2]:lohi[3], ... */
static void ck_ranges(const struct imap_set *s, size_t n, const uint32_t *lohi, const char *what)
{
	ck_assert_msg(s->n == n, "%s: %zu ranges, expected %zu", what, s->n, n);
	for (size_t i = 0; i < n; i++)
		ck_assert_msg(s->r[i].lo == lohi[2 * i] && s->r[i].hi == lohi[2 * i + 1],
			      "%s: range %zu is %u:%u, expected %u:%u", what, i, s->r[i].lo, s->r[i].hi,
			      lohi[2 * i], lohi[2 * i + 1]);
	ck_normalised(s);
}

#define RANGES(...) (sizeof((uint32_t[]){ __VA_ARGS__ }) / sizeof(uint32_t) / 2), (uint32_t[]){ __VA_ARGS__ }

static void ck_parse(const char *text, uint32_t star, size_t n, const uint32_t *lohi)
{
	struct imap_set s = IMAP_SET_INIT;
	char what[128];
	snprintf(what, sizeof what, "\"%s\" with * = %u", text, star);
	int rc = imap_set_parse(text, star, &s);
	ck_assert_msg(rc == 0, "%s: rc %d (%s)", what, rc, mcrdt_error_last());
	ck_ranges(&s, n, lohi, what);
	imap_set_free(&s);
}

/* How many numbers s holds (up to 2^32, hence 64 bits). */
static uint64_t set_count(const struct imap_set *s)
{
	uint64_t c = 0;
	for (size_t i = 0; i < s->n; i++)
		c += (uint64_t)s->r[i].hi - s->r[i].lo + 1;
	return c;
}

/* s as IMAP text ("1:3,5"), for the caller to free. */
static char *set_text(const struct imap_set *s)
{
	size_t size = s->n * 22 + 1, o = 0; /* "4294967295:4294967295," */
	char *t = malloc(size);
	ck_assert_ptr_nonnull(t);
	t[0] = '\0';
	for (size_t i = 0; i < s->n; i++) {
		const struct imap_range *r = &s->r[i];
		o += (size_t)(r->lo == r->hi ? snprintf(t + o, size - o, "%s%u", i ? "," : "", r->lo)
					     : snprintf(t + o, size - o, "%s%u:%u", i ? "," : "", r->lo, r->hi));
	}
	return t;
}

/* ---- sequence sets: what parses ---- */

START_TEST(set_parse_examples)
{
	ck_parse("1:5,7,9:*", 20, RANGES(1, 5, 7, 7, 9, 20));
	/* 9:* with * = 8 is 8:9, which joins 7. */
	ck_parse("1:5,7,9:*", 8, RANGES(1, 5, 7, 9));
	ck_parse("1", 0, RANGES(1, 1));
	ck_parse("42", 10, RANGES(42, 42));
	ck_parse("2,4,6", 10, RANGES(2, 2, 4, 4, 6, 6));
	ck_parse("1:1", 10, RANGES(1, 1));
}
END_TEST

START_TEST(set_parse_star)
{
	ck_parse("*", 10, RANGES(10, 10));
	ck_parse("1:*", 10, RANGES(1, 10));
	ck_parse("*:3", 10, RANGES(3, 10));
	ck_parse("*:*", 7, RANGES(7, 7));
	/* "n:*" with n past the last message still holds the last one (RFC 9051 6.4.8). */
	ck_parse("559:*", 100, RANGES(100, 559));
	ck_parse("*:559", 100, RANGES(100, 559));
	ck_parse("4294967295:*", 1, RANGES(1, 4294967295u));
	ck_parse("*", 4294967295u, RANGES(4294967295u, 4294967295u));
}
END_TEST

/* An empty mailbox (star 0) has no last message: "*" selects nothing,
 * so "1:*" never selects UID 1; numbers without "*" are still kept. */
START_TEST(set_parse_star_empty_mailbox)
{
	struct imap_set s = IMAP_SET_INIT;
	const char *none[] = { "*", "1:*", "*:1", "*:*", "4294967295:*", "1:*,*" };
	for (size_t i = 0; i < sizeof none / sizeof none[0]; i++) {
		ck_assert_msg(imap_set_parse(none[i], 0, &s) == 0, "\"%s\": %s", none[i], mcrdt_error_last());
		ck_assert_msg(s.n == 0, "\"%s\" with * = 0 selects %zu ranges", none[i], s.n);
		ck_assert(!imap_set_has(&s, 0));
		ck_assert(!imap_set_has(&s, 1));
		ck_assert(!imap_set_has(&s, 4294967295u));
		ck_assert_uint_eq(set_count(&s), 0);
	}
	imap_set_free(&s);
	ck_parse("1:3,*", 0, RANGES(1, 3));
	ck_parse("5,1:*,7", 0, RANGES(5, 5, 7, 7));
}
END_TEST

START_TEST(set_parse_reversed_and_merged)
{
	ck_parse("5:2", 10, RANGES(2, 5));
	ck_parse("4294967295:1", 10, RANGES(1, 4294967295u));
	ck_parse("1:3,2:5,7,6", 10, RANGES(1, 7));
	ck_parse("7,6,5,4,3,2,1", 10, RANGES(1, 7));
	ck_parse("10:20,1:5,6:9", 30, RANGES(1, 20));
	ck_parse("10:20,1:5,30", 30, RANGES(1, 5, 10, 20, 30, 30));
	ck_parse("1:100,50:60,3", 100, RANGES(1, 100));
	ck_parse("3,3,3", 10, RANGES(3, 3));
	ck_parse("1,3,5,2,4", 10, RANGES(1, 5));
}
END_TEST

START_TEST(set_parse_huge_numbers)
{
	ck_parse("4294967295", 1, RANGES(4294967295u, 4294967295u));
	ck_parse("4294967294,4294967295", 1, RANGES(4294967294u, 4294967295u));
	ck_parse("1:4294967295", 1, RANGES(1, 4294967295u));
	ck_parse("2147483648:4294967295,1", 1, RANGES(1, 1, 2147483648u, 4294967295u));

	struct imap_set s = IMAP_SET_INIT;
	ck_assert_int_eq(imap_set_parse("1:4294967295", 5, &s), 0);
	ck_assert_uint_eq(set_count(&s), UINT64_C(4294967295));
	ck_assert(imap_set_has(&s, 4294967295u));
	ck_assert(imap_set_has(&s, 1));
	ck_assert(!imap_set_has(&s, 0));
	imap_set_free(&s);
}
END_TEST

/* The set is emptied before parsing, and after a failure. */
START_TEST(set_parse_clears_out)
{
	struct imap_set s = IMAP_SET_INIT;
	ck_assert_int_eq(imap_set_parse("1:10,20:30", 50, &s), 0);
	ck_assert_uint_eq(set_count(&s), 21);
	ck_assert_int_eq(imap_set_parse("5", 50, &s), 0);
	ck_ranges(&s, RANGES(5, 5), "reparsed");
	ck_assert_int_eq(imap_set_parse("1:3,x", 50, &s), MCRDT_EINVAL);
	ck_assert_uint_eq(s.n, 0);
	ck_assert(!imap_set_has(&s, 1));
	imap_set_free(&s);
	ck_assert_ptr_null(s.r);
	ck_assert_uint_eq(s.n, 0);
	ck_assert_uint_eq(s.cap, 0);
}
END_TEST

/* A long list in any order parses in O(n log n): a client's 500,000
 * numbers in descending order, each inserted at the front of an array,
 * take over ten seconds (the "scale" case's timeout is 4; slow runs such
 * as valgrind scale it with CK_TIMEOUT_MULTIPLIER). */
START_TEST(set_parse_long_descending_list)
{
	enum { N = 500000 };
	size_t cap = (size_t)N * 16 + 1, o = 0;
	char *t = malloc(cap);
	ck_assert_ptr_nonnull(t);
	for (uint32_t k = N; k >= 1; k--)
		o += (size_t)snprintf(t + o, cap - o, "%s%u", k == N ? "" : ",", 2 * k);
	struct imap_set s = IMAP_SET_INIT;
	ck_assert_int_eq(imap_set_parse(t, 1, &s), 0);
	ck_assert_uint_eq(s.n, N);
	ck_normalised(&s);
	ck_assert_uint_eq(s.r[0].lo, 2);
	ck_assert_uint_eq(s.r[N - 1].hi, 2 * N);
	ck_assert(imap_set_has(&s, 2 * N - 2));
	ck_assert(!imap_set_has(&s, 2 * N - 1));
	/* The odd numbers between, also descending, join everything. */
	o = 0;
	for (uint32_t k = N; k >= 1; k--)
		o += (size_t)snprintf(t + o, cap - o, "%u:%u,", 2 * k + 1, 2 * k - 1);
	t[o - 1] = '\0';
	ck_assert_int_eq(imap_set_parse(t, 1, &s), 0);
	ck_ranges(&s, RANGES(1, 2 * N + 1), "odd ranges, descending");
	free(t);
	imap_set_free(&s);
}
END_TEST

/* ---- sequence sets: what is refused, and what the message says ---- */

static const struct bad_set {
	const char *text;
	const char *says; /* a part of the message after the quoted text */
} bad_sets[] = {
	{ "", "empty" },
	{ ",", "empty element at offset 0" },
	{ "1,,2", "empty element at offset 2" },
	{ "1,", "empty element at offset 2" },
	{ ",1", "empty element at offset 0" },
	{ "1:", "without a second number" },
	{ "1:,2", "without a second number" },
	{ ":3", "range without a first number at offset 0" },
	{ "2,:3", "range without a first number at offset 2" },
	{ "0", "0 at offset 0" },
	{ "0:5", "0 at offset 0" },
	{ "5:0", "0 at offset 2" },
	{ "01", "leading zero at offset 0" },
	{ "1:007", "leading zero at offset 2" },
	{ "4294967296", "over 4294967295" },
	{ "1:4294967296", "over 4294967295" },
	{ "99999999999999999999999", "over 4294967295" },
	{ "1x", "unexpected 'x' at offset 1" },
	{ "1:5x", "unexpected 'x' at offset 3" },
	{ "*x", "unexpected 'x' at offset 1" },
	{ "**", "unexpected '*' at offset 1" },
	{ "1:2:3", "unexpected ':' at offset 3" },
	{ "1::2", "unexpected ':' at offset 2" },
	{ "-1", "unexpected '-' at offset 0" },
	{ "+1", "unexpected '+' at offset 0" },
	{ " 1", "unexpected ' ' at offset 0" },
	{ "1 ", "unexpected ' ' at offset 1" },
	{ "1, 2", "unexpected ' ' at offset 2" },
	{ "1;2", "unexpected ';' at offset 1" },
	{ "a", "unexpected 'a' at offset 0" },
	{ "1\t", "unexpected byte 0x09 at offset 1" },
	{ "\x01", "unexpected byte 0x01 at offset 0" },
	{ "1\xff", "unexpected byte 0xff at offset 1" },
	{ "$", "not supported" },
	{ "1,$", "not supported" },
	{ "1:$", "not supported" },
};

START_TEST(set_parse_invalid)
{
	const struct bad_set *b = &bad_sets[_i];
	struct imap_set s = IMAP_SET_INIT;
	char quoted[STORE_QUOTE_SIZE];
	ck_assert_int_eq(imap_set_add(&s, 1, 3), 0);
	mcrdt_error_clear();
	int rc = imap_set_parse(b->text, 100, &s);
	const char *msg = mcrdt_error_last();
	ck_assert_msg(rc == MCRDT_EINVAL, "\"%s\": rc %d, expected MCRDT_EINVAL", b->text, rc);
	ck_assert_msg(s.n == 0, "\"%s\": set not emptied after a failure", b->text);
	ck_assert_msg(strstr(msg, "invalid sequence set") && strstr(msg, b->says),
		      "\"%s\": message \"%s\" lacks \"%s\"", b->text, msg, b->says);
	store_quote(quoted, b->text, strlen(b->text));
	ck_assert_msg(strstr(msg, quoted), "\"%s\": message \"%s\" does not quote the input %s", b->text,
		      msg, quoted);
	imap_set_free(&s);
}
END_TEST

START_TEST(set_parse_invalid_example_message)
{
	struct imap_set s = IMAP_SET_INIT;
	ck_assert_int_eq(imap_set_parse("1,,2", 9, &s), MCRDT_EINVAL);
	ck_assert_str_eq(mcrdt_error_last(), "invalid sequence set \"1,,2\": empty element at offset 2");
	ck_assert_int_eq(imap_set_parse(NULL, 9, &s), MCRDT_EINVAL);
	imap_set_free(&s);
}
END_TEST

/* A long input is quoted cut short, and the message still places the fault. */
START_TEST(set_parse_long_input_message)
{
	struct imap_set s = IMAP_SET_INIT;
	size_t n = 5000;
	char *t = malloc(n + 2);
	ck_assert_ptr_nonnull(t);
	for (size_t i = 0; i < n; i += 2) {
		t[i] = '7';
		t[i + 1] = ',';
	}
	t[n] = 'x';
	t[n + 1] = '\0';
	ck_assert_int_eq(imap_set_parse(t, 9, &s), MCRDT_EINVAL);
	const char *msg = mcrdt_error_last();
	ck_assert_msg(strlen(msg) < 200, "message of %zu bytes: %s", strlen(msg), msg);
	ck_assert_msg(strstr(msg, "\"7,7,7,") && strstr(msg, "...") && strstr(msg, "'x' at offset 5000"),
		      "message: %s", msg);
	/* The same text without the junk is one number. */
	t[n - 1] = '\0';
	ck_assert_int_eq(imap_set_parse(t, 9, &s), 0);
	ck_ranges(&s, RANGES(7, 7), "7 repeated");
	free(t);
	imap_set_free(&s);
}
END_TEST

/* ---- sequence sets: has, add, count, format ---- */

START_TEST(set_has_boundaries)
{
	struct imap_set s = IMAP_SET_INIT;
	ck_assert(!imap_set_has(&s, 0));
	ck_assert(!imap_set_has(&s, 1));
	ck_assert_int_eq(imap_set_parse("5:10,20,4294967295", 1, &s), 0);
	static const struct {
		uint32_t v;
		bool in;
	} cases[] = {
		{ 0, false }, { 1, false }, { 4, false }, { 5, true }, { 7, true }, { 10, true },
		{ 11, false }, { 19, false }, { 20, true }, { 21, false }, { 4294967294u, false },
		{ 4294967295u, true },
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
		ck_assert_msg(imap_set_has(&s, cases[i].v) == cases[i].in, "has(%u) should be %d", cases[i].v,
			      cases[i].in);
	ck_assert_uint_eq(set_count(&s), 8);
	imap_set_free(&s);
}
END_TEST

START_TEST(set_add_consecutive_is_one_range)
{
	struct imap_set s = IMAP_SET_INIT;
	int rc = 0;
	for (uint32_t v = 1; v <= 100000 && rc == 0; v++)
		rc = imap_set_add(&s, v, v);
	ck_assert_int_eq(rc, 0);
	ck_ranges(&s, RANGES(1, 100000), "1..100000 one by one");
	ck_assert_uint_eq(set_count(&s), 100000);
	/* One range never needed more than the first allocation. */
	ck_assert_uint_le(s.cap, 8);
	char *t = set_text(&s);
	ck_assert_str_eq(t, "1:100000");
	free(t);

	/* Every other number: 50,000 ranges, still in order. */
	imap_set_free(&s);
	for (uint32_t v = 1; v <= 100000 && rc == 0; v += 2)
		rc = imap_set_add(&s, v, v);
	ck_assert_int_eq(rc, 0);
	ck_assert_uint_eq(s.n, 50000);
	ck_assert_uint_eq(set_count(&s), 50000);
	/* Filling the gaps from the top down joins them all. */
	for (uint32_t v = 99998; v >= 2 && rc == 0; v -= 2)
		rc = imap_set_add(&s, v, v);
	ck_assert_int_eq(rc, 0);
	ck_ranges(&s, RANGES(1, 99999), "gaps filled");
	imap_set_free(&s);
}
END_TEST

START_TEST(set_add_merges)
{
	struct imap_set s = IMAP_SET_INIT;
	ck_assert_int_eq(imap_set_add(&s, 10, 11), 0);
	ck_assert_int_eq(imap_set_add(&s, 1, 2), 0);
	ck_assert_int_eq(imap_set_add(&s, 7, 8), 0);
	ck_assert_int_eq(imap_set_add(&s, 4, 5), 0);
	ck_ranges(&s, RANGES(1, 2, 4, 5, 7, 8, 10, 11), "four apart");
	/* Touching both neighbours joins three ranges. */
	ck_assert_int_eq(imap_set_add(&s, 6, 6), 0);
	ck_ranges(&s, RANGES(1, 2, 4, 8, 10, 11), "6 joins 4:5 and 7:8");
	/* Spanning all of them, given the wrong way round. */
	ck_assert_int_eq(imap_set_add(&s, 9, 3), 0);
	ck_ranges(&s, RANGES(1, 11), "3:9 joins all");
	/* At the top of the number range. */
	ck_assert_int_eq(imap_set_add(&s, 4294967295u, 4294967295u), 0);
	ck_assert_int_eq(imap_set_add(&s, 4294967294u, 4294967294u), 0);
	ck_ranges(&s, RANGES(1, 11, 4294967294u, 4294967295u), "top");
	ck_assert_int_eq(imap_set_add(&s, 4294967290u, 4294967295u), 0);
	ck_ranges(&s, RANGES(1, 11, 4294967290u, 4294967295u), "top widened");
	/* 0 is a number like any other to add (a parse never yields it). */
	ck_assert_int_eq(imap_set_add(&s, 0, 0), 0);
	ck_ranges(&s, RANGES(0, 11, 4294967290u, 4294967295u), "0");
	ck_assert_int_eq(imap_set_add(&s, 0, 4294967295u), 0);
	ck_ranges(&s, RANGES(0, 4294967295u), "everything");
	ck_assert_uint_eq(set_count(&s), UINT64_C(4294967296));
	imap_set_free(&s);
}
END_TEST

/* Random adds against a plain bitmap: same membership, always normalised. */
START_TEST(set_add_random_against_bitmap)
{
	enum { SPAN = 300 };
	uint32_t seed = 12345;
	for (int round = 0; round < 200; round++) {
		struct imap_set s = IMAP_SET_INIT;
		bool in[SPAN] = { false };
		int adds = 1 + round % 40;
		for (int k = 0; k < adds; k++) {
			seed = seed * 1103515245u + 12345u;
			uint32_t a = (seed >> 8) % SPAN;
			seed = seed * 1103515245u + 12345u;
			uint32_t w = (seed >> 8) % 12;
			uint32_t b = a + w < SPAN ? a + w : SPAN - 1;
			if (k % 3 == 0) {
				uint32_t t = a;
				a = b;
				b = t;
			}
			ck_assert_int_eq(imap_set_add(&s, a, b), 0);
			for (uint32_t v = a < b ? a : b; v <= (a < b ? b : a); v++)
				in[v] = true;
			ck_normalised(&s);
		}
		uint64_t count = 0;
		for (uint32_t v = 0; v < SPAN; v++) {
			ck_assert_msg(imap_set_has(&s, v) == in[v], "round %d: has(%u) is %d", round, v, !in[v]);
			count += in[v];
		}
		ck_assert_uint_eq(set_count(&s), count);

		/* What format writes, parse reads back the same. */
		char *t = set_text(&s);
		struct imap_set back = IMAP_SET_INIT;
		if (s.n && s.r[0].lo == 0) {
			ck_assert_int_eq(imap_set_parse(t, 5, &back), MCRDT_EINVAL);
		} else if (s.n) {
			ck_assert_msg(imap_set_parse(t, 5, &back) == 0, "\"%s\": %s", t, mcrdt_error_last());
			ck_assert_uint_eq(back.n, s.n);
			ck_assert(memcmp(back.r, s.r, s.n * sizeof *s.r) == 0);
		}
		free(t);
		imap_set_free(&back);
		imap_set_free(&s);
	}
}
END_TEST

START_TEST(set_format_round_trip)
{
	static const struct {
		const char *in, *out;
	} cases[] = {
		{ "1:3,5", "1:3,5" },
		{ "5,3,2,1", "1:3,5" },
		{ "7", "7" },
		{ "9:7,1", "1,7:9" },
		{ "1:5,7,9:*", "1:5,7,9:20" },
		{ "4294967295,1:4294967294", "1:4294967295" },
		{ "2147483648,4294967295", "2147483648,4294967295" },
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		struct imap_set s = IMAP_SET_INIT, again = IMAP_SET_INIT;
		ck_assert_int_eq(imap_set_parse(cases[i].in, 20, &s), 0);
		char *t = set_text(&s);
		ck_assert_msg(strcmp(t, cases[i].out) == 0, "\"%s\" formats as \"%s\", expected \"%s\"",
			      cases[i].in, t, cases[i].out);
		ck_assert_int_eq(imap_set_parse(t, 20, &again), 0);
		ck_assert_uint_eq(again.n, s.n);
		ck_assert(memcmp(again.r, s.r, s.n * sizeof *s.r) == 0);
		free(t);
		imap_set_free(&s);
		imap_set_free(&again);
	}
	struct imap_set empty = IMAP_SET_INIT;
	char *t = set_text(&empty);
	ck_assert_str_eq(t, "");
	free(t);
}
END_TEST

/* ---- flags ---- */

START_TEST(flag_canonical_spelling)
{
	static const struct {
		const char *in, *canon;
		unsigned bit;
	} sys[] = {
		{ "\\Seen", "\\Seen", IMAP_SEEN },         { "\\seen", "\\Seen", IMAP_SEEN },
		{ "\\SEEN", "\\Seen", IMAP_SEEN },         { "\\answered", "\\Answered", IMAP_ANSWERED },
		{ "\\fLaGgEd", "\\Flagged", IMAP_FLAGGED }, { "\\DELETED", "\\Deleted", IMAP_DELETED },
		{ "\\dRaFt", "\\Draft", IMAP_DRAFT },
	};
	for (size_t i = 0; i < sizeof sys / sizeof sys[0]; i++) {
		const char *canon = NULL;
		unsigned bit = 99;
		ck_assert_msg(imap_flag_check(sys[i].in, &canon, &bit) == 0, "%s: %s", sys[i].in,
			      mcrdt_error_last());
		ck_assert_str_eq(canon, sys[i].canon);
		ck_assert_uint_eq(bit, sys[i].bit);
		/* The canonical spelling is the static name, not a copy. */
		ck_assert_ptr_eq(canon, imap_sysflag_name(bit));
		ck_assert_int_eq(imap_flag_check(sys[i].in, NULL, NULL), 0);
	}
	static const char *const keywords[] = { "$Junk", "$NotJunk", "NonJunk", "a", "Work-2024",
						"$Label1", "x.y+z=w!#&'-/;<>?@[^_`|~" };
	for (size_t i = 0; i < sizeof keywords / sizeof keywords[0]; i++) {
		const char *canon = NULL;
		unsigned bit = 99;
		ck_assert_msg(imap_flag_check(keywords[i], &canon, &bit) == 0, "%s: %s", keywords[i],
			      mcrdt_error_last());
		ck_assert_ptr_eq(canon, keywords[i]);
		ck_assert_uint_eq(bit, 0);
	}
	char longest[256];
	memset(longest, 'k', 255);
	longest[255] = '\0';
	ck_assert_int_eq(imap_flag_check(longest, NULL, NULL), 0);
}
END_TEST

static const struct bad_flag {
	const char *flag;
	const char *says;
} bad_flags[] = {
	{ "", "empty" },
	{ "\\Recent", "\\Recent" },
	{ "\\recent", "cannot be stored" },
	{ "\\Foo", "not a system flag" },
	{ "\\", "not a system flag" },
	{ "\\Seen ", "not a system flag" },
	{ "\\*", "not a system flag" },
	{ "\\Seenx", "not a system flag" },
	{ "a b", "' ' at offset 1" },
	{ " a", "' ' at offset 0" },
	{ "a\tb", "byte 0x09 at offset 1" },
	{ "a\x01", "byte 0x01 at offset 1" },
	{ "\x7f", "byte 0x7f at offset 0" },
	{ "caf\xc3\xa9", "byte 0xc3 at offset 3" },
	{ "(a", "'(' at offset 0" },
	{ "a)", "')' at offset 1" },
	{ "a{3}", "'{' at offset 1" },
	{ "a%", "'%' at offset 1" },
	{ "a*", "'*' at offset 1" },
	{ "a\"b", "'\"' at offset 1" },
	{ "a\\b", "'\\' at offset 1" },
	{ "a]", "']' at offset 1" },
};

START_TEST(flag_invalid)
{
	const struct bad_flag *b = &bad_flags[_i];
	const char *canon = "untouched";
	unsigned bit = 99;
	char q[STORE_QUOTE_SIZE];
	mcrdt_error_clear();
	int rc = imap_flag_check(b->flag, &canon, &bit);
	const char *msg = mcrdt_error_last();
	ck_assert_msg(rc == MCRDT_EINVAL, "\"%s\": rc %d", b->flag, rc);
	ck_assert_msg(strstr(msg, b->says), "\"%s\": message \"%s\" lacks \"%s\"", b->flag, msg, b->says);
	store_quote(q, b->flag, strlen(b->flag));
	ck_assert_msg(strstr(msg, "invalid flag") && strstr(msg, q), "\"%s\": message \"%s\" does not name it",
		      b->flag, msg);
	ck_assert_str_eq(canon, "untouched");
	ck_assert_uint_eq(bit, 99);
}
END_TEST

START_TEST(flag_too_long_and_null)
{
	char big[257];
	memset(big, 'k', 256);
	big[256] = '\0';
	ck_assert_int_eq(imap_flag_check(big, NULL, NULL), MCRDT_EINVAL);
	ck_assert_msg(strstr(mcrdt_error_last(), "256 bytes") && strstr(mcrdt_error_last(), "\"kkkk"),
		      "message: %s", mcrdt_error_last());
	ck_assert_int_eq(imap_flag_check(NULL, NULL, NULL), MCRDT_EINVAL);
}
END_TEST

START_TEST(flag_letters_both_ways)
{
	static const struct {
		unsigned bit;
		char letter;
		const char *name;
	} map[] = {
		{ IMAP_SEEN, 'S', "\\Seen" },       { IMAP_ANSWERED, 'R', "\\Answered" },
		{ IMAP_FLAGGED, 'F', "\\Flagged" }, { IMAP_DELETED, 'T', "\\Deleted" },
		{ IMAP_DRAFT, 'D', "\\Draft" },
	};
	unsigned all = 0;
	for (size_t i = 0; i < sizeof map / sizeof map[0]; i++) {
		ck_assert_int_eq(imap_sysflag_letter(map[i].bit), map[i].letter);
		ck_assert_uint_eq(imap_letter_sysflag(map[i].letter), map[i].bit);
		ck_assert_str_eq(imap_sysflag_name(map[i].bit), map[i].name);
		all |= map[i].bit;
	}
	ck_assert_uint_eq(all, IMAP_SYSFLAGS_ALL);
	/* No other letter is a system flag: 'P' (passed) has no IMAP flag,
	 * lowercase letters are dovecot keywords. */
	for (int c = 0; c < 256; c++) {
		bool sys = c == 'S' || c == 'R' || c == 'F' || c == 'T' || c == 'D';
		ck_assert_msg((imap_letter_sysflag((char)c) != 0) == sys, "letter 0x%02x", c);
	}
	/* Not exactly one known bit: no letter, no name. */
	static const unsigned odd[] = { 0, IMAP_SEEN | IMAP_DRAFT, 32, 64, IMAP_SYSFLAGS_ALL, 0x80000000u };
	for (size_t i = 0; i < sizeof odd / sizeof odd[0]; i++) {
		ck_assert_int_eq(imap_sysflag_letter(odd[i]), '\0');
		ck_assert_ptr_null(imap_sysflag_name(odd[i]));
	}
}
END_TEST

/* ---- message meta ---- */

static const char BASE[] = "1700000000.M123P456Q7.host,S=1234";

static struct vbuf encoded(const char *base, uint64_t size, int64_t date)
{
	struct vbuf b = { 0 };
	struct store_meta m = { base, strlen(base), size, date };
	int rc = store_meta_encode(&m, &b);
	ck_assert_msg(rc == 0, "encode: %s", mcrdt_error_last());
	return b;
}

static void ck_meta(const struct store_meta *m, const char *base, uint64_t size, int64_t date)
{
	ck_assert_uint_eq(m->base_len, strlen(base));
	ck_assert(memcmp(m->base, base, m->base_len) == 0);
	ck_assert_uint_eq(m->size, size);
	ck_assert_int_eq(m->internaldate, date);
}

START_TEST(meta_round_trip)
{
	static const struct {
		const char *base;
		uint64_t size;
		int64_t date;
	} cases[] = {
		{ BASE, 1234, 1700000000 },
		{ "x", 0, 0 },
		{ "big", UINT64_C(1) << 40, STORE_META_DATE_MAX },
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		struct vbuf b = encoded(cases[i].base, cases[i].size, cases[i].date);
		struct store_meta m;
		ck_assert_uint_le(b.len, STORE_META_MAX);
		ck_assert_uint_eq(b.p[0], 1);
		ck_assert_msg(store_meta_decode(b.p, b.len, &m) == 0, "%s", mcrdt_error_last());
		ck_meta(&m, cases[i].base, cases[i].size, cases[i].date);
		/* The base name points into the input, not into a copy. */
		ck_assert(m.base > (const char *)b.p && m.base < (const char *)b.p + b.len);
		vbuf_free(&b);
	}

	/* The format is pinned: a peer of this version writes these bytes. */
	struct vbuf b = encoded("ab", 300, 5);
	static const uint8_t want[] = { 1, 1, 2, 'a', 'b', 2, 2, 0xac, 0x02, 3, 1, 5 };
	ck_assert_uint_eq(b.len, sizeof want);
	ck_assert(memcmp(b.p, want, sizeof want) == 0);
	vbuf_free(&b);

	/* The longest base name fits well within STORE_META_MAX. */
	char longest[256];
	memset(longest, 'n', 255);
	longest[255] = '\0';
	b = encoded(longest, STORE_META_SIZE_MAX, STORE_META_DATE_MAX);
	ck_assert_uint_le(b.len, STORE_META_MAX);
	struct store_meta m;
	ck_assert_int_eq(store_meta_decode(b.p, b.len, &m), 0);
	ck_meta(&m, longest, STORE_META_SIZE_MAX, STORE_META_DATE_MAX);
	vbuf_free(&b);
}
END_TEST

/* Encoding appends to what the buffer holds, and leaves it alone on failure. */
START_TEST(meta_encode_appends_and_refuses)
{
	struct vbuf b = { 0 };
	vput(&b, 7);
	vput(&b, 8);
	struct store_meta m = { BASE, strlen(BASE), 99, 1 };
	ck_assert_int_eq(store_meta_encode(&m, &b), 0);
	ck_assert_uint_eq(b.p[0], 7);
	ck_assert_uint_eq(b.p[1], 8);
	struct store_meta back;
	ck_assert_int_eq(store_meta_decode(b.p + 2, b.len - 2, &back), 0);
	ck_meta(&back, BASE, 99, 1);

	size_t before = b.len;
	static const struct {
		struct store_meta m;
		const char *says;
	} bad[] = {
		{ { "..", 2, 1, 1 }, "starts with '.'" },
		{ { "a/b", 3, 1, 1 }, "'/' at offset 1" },
		{ { "", 0, 1, 1 }, "empty" },
		{ { NULL, 0, 1, 1 }, "empty" },
		{ { "ok", 2, (UINT64_C(1) << 40) + 1, 1 }, "size 1099511627777" },
		{ { "ok", 2, 1, -1 }, "internal date -1" },
		{ { "ok", 2, 1, STORE_META_DATE_MAX + 1 }, "internal date 253402300800" },
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		ck_assert_int_eq(store_meta_encode(&bad[i].m, &b), MCRDT_EINVAL);
		ck_assert_msg(strstr(mcrdt_error_last(), bad[i].says), "case %zu: \"%s\" lacks \"%s\"", i,
			      mcrdt_error_last(), bad[i].says);
		ck_assert_uint_eq(b.len, before);
		ck_assert_int_eq(b.err, 0);
	}
	vbuf_free(&b);
}
END_TEST

/* A hand-built encoding; fields as tag, length, bytes. */
static void put_field(struct vbuf *b, uint64_t tag, const void *p, size_t n)
{
	vput(b, tag);
	vput_bytes(b, p, n);
}

static void put_num_field(struct vbuf *b, uint64_t tag, uint64_t v)
{
	uint8_t num[VARINT_MAX];
	put_field(b, tag, num, varint_put(num, v));
}

static struct vbuf hand_built(uint8_t format)
{
	struct vbuf b = { 0 };
	vbuf_reserve(&b, 1);
	b.p[b.len++] = format;
	return b;
}

START_TEST(meta_unknown_fields_skipped)
{
	struct vbuf b = hand_built(1);
	put_field(&b, 9, "blob id", 7);
	put_num_field(&b, 3, 42);
	put_field(&b, 0, "", 0);
	put_field(&b, 4, "x", 1);
	put_field(&b, 4, "again: unknown fields may repeat", 32);
	put_field(&b, 1, "m1", 2);
	put_field(&b, UINT64_MAX, "far future", 10);
	put_num_field(&b, 2, 77);
	put_field(&b, 1000, "", 0);
	struct store_meta m;
	ck_assert_msg(store_meta_decode(b.p, b.len, &m) == 0, "%s", mcrdt_error_last());
	ck_meta(&m, "m1", 77, 42);
	vbuf_free(&b);
}
END_TEST

START_TEST(meta_newer_format_refused)
{
	for (unsigned fmt = 0; fmt < 256; fmt++) {
		if (fmt == 1)
			continue;
		struct vbuf b = encoded(BASE, 1, 1);
		b.p[0] = (uint8_t)fmt;
		struct store_meta m;
		ck_assert_int_eq(store_meta_decode(b.p, b.len, &m), MCRDT_EVERSION);
		char want[32];
		snprintf(want, sizeof want, "format %u", fmt);
		ck_assert_msg(strstr(mcrdt_error_last(), want), "message: %s", mcrdt_error_last());
		ck_assert_ptr_null(m.base);
		vbuf_free(&b);
	}
}
END_TEST

START_TEST(meta_every_truncation_refused)
{
	struct vbuf b = encoded(BASE, 123456789, 1700000000);
	for (size_t len = 0; len < b.len; len++) {
		/* A copy of exactly len bytes, so ASan sees any read past it. */
		uint8_t *cut = malloc(len ? len : 1);
		ck_assert_ptr_nonnull(cut);
		memcpy(cut, b.p, len);
		struct store_meta m;
		mcrdt_error_clear();
		int rc = store_meta_decode(cut, len, &m);
		ck_assert_msg(rc == MCRDT_ECORRUPT, "cut to %zu of %zu bytes: rc %d", len, b.len, rc);
		ck_assert_msg(strstr(mcrdt_error_last(), "invalid message meta"), "cut to %zu: \"%s\"", len,
			      mcrdt_error_last());
		ck_assert_ptr_null(m.base);
		ck_assert_uint_eq(m.size, 0);
		free(cut);
	}
	vbuf_free(&b);
}
END_TEST

START_TEST(meta_bit_flips_safe)
{
	struct vbuf b = encoded(BASE, 123456789, 1700000000);
	uint8_t *copy = malloc(b.len);
	ck_assert_ptr_nonnull(copy);
	unsigned refused = 0, decoded = 0;
	for (size_t i = 0; i < b.len; i++) {
		for (int bit = 0; bit < 8; bit++) {
			memcpy(copy, b.p, b.len);
			copy[i] ^= (uint8_t)(1u << bit);
			struct store_meta m;
			int rc = store_meta_decode(copy, b.len, &m);
			if (rc) {
				ck_assert_msg(rc == MCRDT_ECORRUPT || rc == MCRDT_EVERSION,
					      "byte %zu bit %d: rc %d", i, bit, rc);
				ck_assert_ptr_null(m.base);
				refused++;
				continue;
			}
			decoded++;
			ck_assert_msg(store_base_ok(m.base, m.base_len), "byte %zu bit %d: unsafe base name", i,
				      bit);
			ck_assert(m.base >= (const char *)copy && m.base + m.base_len <= (const char *)copy + b.len);
			ck_assert_uint_le(m.size, STORE_META_SIZE_MAX);
			ck_assert(m.internaldate >= 0 && m.internaldate <= STORE_META_DATE_MAX);
		}
	}
	/* Both outcomes occur: a flipped letter in the name decodes, a flipped
	 * length does not. */
	ck_assert_uint_gt(refused, 0);
	ck_assert_uint_gt(decoded, 0);
	free(copy);
	vbuf_free(&b);
}
END_TEST

START_TEST(meta_hostile_base_names)
{
	char long_name[257];
	memset(long_name, 'a', 256);
	long_name[256] = '\0';
	static const struct {
		const char *base;
		size_t len;
		const char *says;
	} bad[] = {
		{ "..", 2, "starts with '.'" },
		{ ".", 1, "starts with '.'" },
		{ ".hidden", 7, "starts with '.'" },
		{ "a/b", 3, "'/' at offset 1" },
		{ "/etc/passwd", 11, "'/' at offset 0" },
		{ "../../x", 7, "starts with '.'" },
		{ "a:2,S", 5, "':' at offset 1" },
		{ "\x01", 1, "byte 0x01 at offset 0" },
		{ "a b", 3, "byte 0x20 at offset 1" },
		{ "a\nb", 3, "byte 0x0a at offset 1" },
		{ "ab\0c", 4, "byte 0x00 at offset 2" },
		{ "caf\xc3\xa9", 5, "byte 0xc3 at offset 3" },
		{ "x\x7f", 2, "byte 0x7f at offset 1" },
		{ "", 0, "empty" },
		{ NULL, 256, "256 bytes long" },
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		const char *base = bad[i].base ? bad[i].base : long_name;
		ck_assert_msg(!store_base_ok(base, bad[i].len), "case %zu accepted", i);

		struct vbuf b = hand_built(1);
		put_field(&b, 1, base, bad[i].len);
		put_num_field(&b, 2, 10);
		put_num_field(&b, 3, 10);
		struct store_meta m;
		ck_assert_int_eq(store_meta_decode(b.p, b.len, &m), MCRDT_ECORRUPT);
		const char *msg = mcrdt_error_last();
		ck_assert_msg(strstr(msg, "base name") && strstr(msg, bad[i].says),
			      "case %zu: message \"%s\" lacks \"%s\"", i, msg, bad[i].says);
		ck_assert_msg(strchr(msg, '\n') == NULL && strchr(msg, '\x01') == NULL, "case %zu: raw bytes in "
			      "the message", i);
		ck_assert_ptr_null(m.base);
		vbuf_free(&b);
	}
	/* The 256-byte name is quoted cut short. */
	ck_assert_int_eq(store_base_ok(long_name, 255), true);
	ck_assert(store_base_ok("a", 1));
	ck_assert(store_base_ok("a.", 2));
	ck_assert(store_base_ok("1700000000.M1P2Q3.host,S=12,W=14", 32));
	ck_assert(store_base_ok("!~", 2));
	ck_assert(!store_base_ok(NULL, 0));
	ck_assert(!store_base_ok(NULL, 3));
}
END_TEST

START_TEST(meta_hostile_fields)
{
	static const char *const field_names[] = { "base name", "size", "internal date" };
	struct store_meta m;

	/* A missing field, each in turn. */
	for (int miss = 1; miss <= 3; miss++) {
		struct vbuf b = hand_built(1);
		if (miss != 1)
			put_field(&b, 1, "m", 1);
		if (miss != 2)
			put_num_field(&b, 2, 5);
		if (miss != 3)
			put_num_field(&b, 3, 5);
		ck_assert_int_eq(store_meta_decode(b.p, b.len, &m), MCRDT_ECORRUPT);
		char want[32];
		snprintf(want, sizeof want, "no %s field", field_names[miss - 1]);
		ck_assert_msg(strstr(mcrdt_error_last(), want), "message: %s", mcrdt_error_last());
		vbuf_free(&b);
	}
	/* A field given twice, each in turn (even with the same value). */
	for (int twice = 1; twice <= 3; twice++) {
		struct vbuf b = hand_built(1);
		put_field(&b, 1, "m", 1);
		put_num_field(&b, 2, 5);
		put_num_field(&b, 3, 5);
		if (twice == 1)
			put_field(&b, 1, "m", 1);
		else
			put_num_field(&b, (uint64_t)twice, 5);
		ck_assert_int_eq(store_meta_decode(b.p, b.len, &m), MCRDT_ECORRUPT);
		char want[48];
		snprintf(want, sizeof want, "%s given twice", field_names[twice - 1]);
		ck_assert_msg(strstr(mcrdt_error_last(), want), "message: %s", mcrdt_error_last());
		vbuf_free(&b);
	}

	static const struct {
		uint64_t size, date;
		int rc;
		const char *says;
	} nums[] = {
		{ UINT64_C(1) << 40, 0, 0, NULL },
		{ (UINT64_C(1) << 40) + 1, 0, MCRDT_ECORRUPT, "size 1099511627777 is over" },
		{ UINT64_MAX, 0, MCRDT_ECORRUPT, "size 18446744073709551615" },
		{ 0, 253402300799u, 0, NULL },
		{ 0, 253402300800u, MCRDT_ECORRUPT, "internal date 253402300800" },
		{ 0, UINT64_C(1) << 63, MCRDT_ECORRUPT, "internal date 9223372036854775808" },
		{ 0, UINT64_MAX, MCRDT_ECORRUPT, "internal date 18446744073709551615" },
	};
	for (size_t i = 0; i < sizeof nums / sizeof nums[0]; i++) {
		struct vbuf b = hand_built(1);
		put_field(&b, 1, "m", 1);
		put_num_field(&b, 2, nums[i].size);
		put_num_field(&b, 3, nums[i].date);
		int rc = store_meta_decode(b.p, b.len, &m);
		ck_assert_msg(rc == nums[i].rc, "case %zu: rc %d (%s)", i, rc, mcrdt_error_last());
		if (rc)
			ck_assert_msg(strstr(mcrdt_error_last(), nums[i].says), "case %zu: %s", i,
				      mcrdt_error_last());
		else
			ck_meta(&m, "m", nums[i].size, (int64_t)nums[i].date);
		vbuf_free(&b);
	}

	/* Raw damage: each case a whole input. */
	static const struct {
		uint8_t bytes[24];
		size_t len;
		const char *says;
	} raw[] = {
		/* base claims 100 bytes */
		{ { 1, 1, 100, 'm', 2, 1, 5, 3, 1, 5 }, 10, "field 1 is 100 bytes long but only 7 follow" },
		/* a length that does not fit 64 bits */
		{ { 1, 9, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f }, 12, "64 bits" },
		/* a tag that never ends */
		{ { 1, 0x80, 0x80, 0x80 }, 4, "field header" },
		/* size field with a byte after its number */
		{ { 1, 1, 1, 'm', 2, 2, 5, 0, 3, 1, 5 }, 11, "size field has 1 extra byte(s) after" },
		/* empty size field */
		{ { 1, 1, 1, 'm', 2, 0, 3, 1, 5 }, 9, "size field" },
		/* date number cut inside its field */
		{ { 1, 1, 1, 'm', 2, 1, 5, 3, 1, 0x85 }, 10, "internal date field" },
		/* only the format byte */
		{ { 1 }, 1, "no base name field" },
	};
	for (size_t i = 0; i < sizeof raw / sizeof raw[0]; i++) {
		uint8_t *p = malloc(raw[i].len);
		memcpy(p, raw[i].bytes, raw[i].len);
		ck_assert_int_eq(store_meta_decode(p, raw[i].len, &m), MCRDT_ECORRUPT);
		ck_assert_msg(strstr(mcrdt_error_last(), raw[i].says), "raw %zu: message \"%s\" lacks \"%s\"", i,
			      mcrdt_error_last(), raw[i].says);
		free(p);
	}

	/* Empty and oversized input. */
	ck_assert_int_eq(store_meta_decode((const uint8_t *)"", 0, &m), MCRDT_ECORRUPT);
	ck_assert_msg(strstr(mcrdt_error_last(), "empty"), "%s", mcrdt_error_last());
	struct vbuf b = encoded(BASE, 1, 1);
	put_field(&b, 9, NULL, 0);
	while (b.len <= STORE_META_MAX)
		put_field(&b, 9, "padding", 7);
	ck_assert_int_eq(store_meta_decode(b.p, b.len, &m), MCRDT_ECORRUPT);
	ck_assert_msg(strstr(mcrdt_error_last(), "over the limit of 1024"), "%s", mcrdt_error_last());
	vbuf_free(&b);
}
END_TEST

/* ---- quoting ---- */

START_TEST(quote_escapes_and_cuts)
{
	char q[STORE_QUOTE_SIZE];
	ck_assert_str_eq(store_quote(q, "abc", 3), "\"abc\"");
	ck_assert_str_eq(store_quote(q, "", 0), "\"\"");
	ck_assert_str_eq(store_quote(q, "a\x01\n\xff", 4), "\"a\\x01\\x0a\\xff\"");
	ck_assert_str_eq(store_quote(q, "a\0b", 3), "\"a\\x00b\"");
	char big[500];
	memset(big, 'z', sizeof big);
	store_quote(q, big, sizeof big);
	ck_assert_uint_lt(strlen(q), STORE_QUOTE_SIZE);
	ck_assert_msg(q[0] == '"' && strcmp(q + strlen(q) - 4, "\"...") == 0, "%s", q);
	memset(big, 0x01, sizeof big);
	store_quote(q, big, sizeof big);
	ck_assert_uint_lt(strlen(q), STORE_QUOTE_SIZE);
	ck_assert_msg(strcmp(q + strlen(q) - 8, "\\x01\"...") == 0, "%s", q);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("imap");

	TCase *sets = tcase_create("sets");
	tcase_add_test(sets, set_parse_examples);
	tcase_add_test(sets, set_parse_star);
	tcase_add_test(sets, set_parse_star_empty_mailbox);
	tcase_add_test(sets, set_parse_reversed_and_merged);
	tcase_add_test(sets, set_parse_huge_numbers);
	tcase_add_test(sets, set_parse_clears_out);
	tcase_add_loop_test(sets, set_parse_invalid, 0, (int)(sizeof bad_sets / sizeof bad_sets[0]));
	tcase_add_test(sets, set_parse_invalid_example_message);
	tcase_add_test(sets, set_parse_long_input_message);
	tcase_add_test(sets, set_has_boundaries);
	tcase_add_test(sets, set_add_consecutive_is_one_range);
	tcase_add_test(sets, set_add_merges);
	tcase_add_test(sets, set_add_random_against_bitmap);
	tcase_add_test(sets, set_format_round_trip);
	suite_add_tcase(s, sets);

	TCase *scale = tcase_create("scale");
	tcase_set_timeout(scale, 4);
	tcase_add_test(scale, set_parse_long_descending_list);
	suite_add_tcase(s, scale);

	TCase *flags = tcase_create("flags");
	tcase_add_test(flags, flag_canonical_spelling);
	tcase_add_loop_test(flags, flag_invalid, 0, (int)(sizeof bad_flags / sizeof bad_flags[0]));
	tcase_add_test(flags, flag_too_long_and_null);
	tcase_add_test(flags, flag_letters_both_ways);
	suite_add_tcase(s, flags);

	TCase *meta = tcase_create("meta");
	tcase_add_test(meta, meta_round_trip);
	tcase_add_test(meta, meta_encode_appends_and_refuses);
	tcase_add_test(meta, meta_unknown_fields_skipped);
	tcase_add_test(meta, meta_newer_format_refused);
	tcase_add_test(meta, meta_every_truncation_refused);
	tcase_add_test(meta, meta_bit_flips_safe);
	tcase_add_test(meta, meta_hostile_base_names);
	tcase_add_test(meta, meta_hostile_fields);
	tcase_add_test(meta, quote_escapes_and_cuts);
	suite_add_tcase(s, meta);

	return run_suite(s, CK_FORK_GETENV);
}
