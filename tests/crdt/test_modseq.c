/*
 * tests/crdt/test_modseq.c — what the store's IMAP server reads from the
 * model: each message's meta kept verbatim, MODSEQ and HIGHESTMODSEQ
 * (CONDSTORE), the UIDs a view stopped showing (QRESYNC "expunged since"),
 * the walk over a view's rows (FETCH by UID set) and the subscription list
 * (LSUB).
 */
#include "tests/check_run.h"
#include "tests/crdt/util.h"

#include <inttypes.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

static const char *SEEN[] = { "\\Seen" };
static const char *FLAGGED[] = { "\\Flagged" };
static const char *SEEN_DRAFT[] = { "\\Seen", "\\Draft" };
static const char *DRAFT[] = { "\\Draft" };

/* ------------------------------------------------------------------ */
/* helpers                                                             */

static void settle(crdt_model *m)
{
	crdt_oplist out = CRDT_OPLIST_INIT;
	ck_assert_msg(crdt_model_settle(m, &out) == 0, "settle: %s", mcrdt_error_last());
	crdt_oplist_free(&out);
}

/* A local change on a lone model, then settle; fails the test on error. */
#define DO(m, call)                                                          \
	do {                                                                 \
		crdt_oplist ops_ = CRDT_OPLIST_INIT;                         \
		crdt_model *m_ = (m);                                        \
		int rc_ = (call);                                            \
		ck_assert_msg(rc_ == 0, "%s: %s", #call, mcrdt_error_last()); \
		crdt_oplist_free(&ops_);                                     \
		settle(m_);                                                  \
	} while (0)

static void assert_meta(const crdt_model *m, crdt_dot g, const void *want, size_t len)
{
	const uint8_t *p = NULL;
	size_t n = 12345;
	ck_assert_msg(crdt_model_meta(m, g, &p, &n) == 0, "meta: %s", mcrdt_error_last());
	ck_assert_ptr_nonnull(p);
	ck_assert_uint_eq(n, len);
	ck_assert(len == 0 || memcmp(p, want, len) == 0);
}

static void assert_no_meta(const crdt_model *m, crdt_dot g)
{
	const uint8_t *p;
	size_t n;
	mcrdt_error_clear();
	ck_assert_int_eq(crdt_model_meta(m, g, &p, &n), MCRDT_ENOTFOUND);
	ck_assert_str_ne(mcrdt_error_last(), "");
}

static struct crdt_mailbox_info info_of(const crdt_model *m, const char *name)
{
	struct crdt_mailbox_info *mb, out;
	size_t n;
	bool found = false;
	memset(&out, 0, sizeof out);
	ck_assert_int_eq(crdt_model_mailboxes(m, &mb, &n), 0);
	for (size_t k = 0; k < n; k++)
		if (strcmp(mb[k].name, name) == 0) {
			out = mb[k];
			out.name = NULL;
			found = true;
		}
	crdt_mailboxes_free(mb, n);
	ck_assert_msg(found, "no mailbox %s", name);
	return out;
}

static uint64_t hms_of(const crdt_model *m, const char *name)
{
	return info_of(m, name).highestmodseq;
}

/* The MODSEQ of message g's row in mailbox name (0 when not shown). */
static uint64_t modseq_of(const crdt_model *m, const char *name, crdt_dot g)
{
	size_t n;
	uint64_t v = 0;
	struct crdt_row *rows = rows_of(m, name, &n);
	for (size_t k = 0; k < n; k++)
		if (crdt_dot_eq(rows[k].guid, g))
			v = rows[k].modseq;
	crdt_rows_free(rows, n);
	return v;
}

static uint32_t uid_of(const crdt_model *m, const char *name, crdt_dot g)
{
	uint32_t uid = 0;
	ck_assert(find_row(m, name, g, &uid, NULL));
	return uid;
}

/* crdt_model_vanished of mailbox name as text: "2 5 7". */
static char *vanished(const crdt_model *m, const char *name, uint64_t since)
{
	uint32_t *v;
	size_t n;
	ck_assert_int_eq(crdt_model_vanished(m, mbox_named(m, name), since, &v, &n), 0);
	ck_assert(n == 0 || v);
	static char buf[4096];
	size_t at = 0;
	buf[0] = '\0';
	for (size_t k = 0; k < n; k++) {
		if (k)
			ck_assert_uint_lt(v[k - 1], v[k]); /* ascending, each once */
		at += (size_t)snprintf(buf + at, sizeof buf - at, "%s%" PRIu32, k ? " " : "", v[k]);
	}
	free(v);
	return buf;
}

/* ------------------------------------------------------------------ */
/* meta                                                                */

START_TEST(meta_kept_verbatim)
{
	crdt_model *m;
	ck_assert_int_eq(crdt_model_new(&m, 0x700), 0);
	crdt_dot inbox, work, a, b, c, d, big;
	DO(m, crdt_model_create(m_, &ops_, "INBOX", 1, &inbox));
	DO(m, crdt_model_create(m_, &ops_, "Work", 2, &work));
	uint8_t bin[300];
	for (size_t k = 0; k < sizeof bin; k++)
		bin[k] = (uint8_t)(k * 7); /* NULs and high bytes too */
	DO(m, crdt_model_append(m_, &ops_, inbox, SEEN, 1, bin, sizeof bin, &a, NULL));
	DO(m, crdt_model_append(m_, &ops_, inbox, NULL, 0, NULL, 0, &b, NULL));
	/* A copy carries the meta its op was given, not its source's. */
	DO(m, crdt_model_copy(m_, &ops_, a, work, false, "copy-meta", 9, &c, NULL));
	DO(m, crdt_model_copy(m_, &ops_, b, work, true, "moved", 5, &d, NULL));
	assert_meta(m, a, bin, sizeof bin);
	assert_meta(m, c, "copy-meta", 9);
	assert_meta(m, d, "moved", 5);
	assert_no_meta(m, b); /* moved away */
	/* Flag changes leave it be. */
	DO(m, crdt_model_flags(m_, &ops_, a, CRDT_OP_FLAGS_SET, FLAGGED, 1));
	assert_meta(m, a, bin, sizeof bin);
	/* The largest meta an op may carry. */
	uint8_t *huge = malloc(CRDT_META_MAX);
	ck_assert_ptr_nonnull(huge);
	for (size_t k = 0; k < CRDT_META_MAX; k++)
		huge[k] = (uint8_t)(k ^ (k >> 8));
	DO(m, crdt_model_append(m_, &ops_, inbox, NULL, 0, huge, CRDT_META_MAX, &big, NULL));
	assert_meta(m, big, huge, CRDT_META_MAX);
	assert_meta(m, a, bin, sizeof bin);
	DO(m, crdt_model_expunge(m_, &ops_, a));
	assert_no_meta(m, a);
	assert_meta(m, big, huge, CRDT_META_MAX);
	assert_meta(m, c, "copy-meta", 9);
	/* A message without meta has an empty one. */
	crdt_dot e;
	DO(m, crdt_model_append(m_, &ops_, inbox, NULL, 0, NULL, 0, &e, NULL));
	assert_meta(m, e, NULL, 0);
	assert_no_meta(m, (crdt_dot){ 0x700, 999 });
	free(huge);
	crdt_model_free(m);
}
END_TEST

/* Concurrent appends claim the same UID; the re-claims that follow move
 * UIDs, not meta, and a snapshot keeps it. */
START_TEST(meta_survives_claims_and_snapshots)
{
	crdt_cluster c;
	ck_assert_int_eq(crdt_cluster_init(&c, 2, 0x710), 0);
	crdt_dot inbox, l, r;
	uint32_t ul, ur;
	LOCAL(&c, 0, crdt_model_create(m_, &ops_, "INBOX", 1, &inbox));
	sync_all(&c);
	LOCAL(&c, 0, crdt_model_append(m_, &ops_, inbox, NULL, 0, "left", 4, &l, &ul));
	LOCAL(&c, 1, crdt_model_append(m_, &ops_, inbox, NULL, 0, "right!", 6, &r, &ur));
	ck_assert_uint_eq(ul, ur);
	sync_all(&c);
	for (size_t i = 0; i < 2; i++) {
		ck_assert_uint_ne(uid_of(c.r[i], "INBOX", l), ul); /* re-claimed */
		assert_meta(c.r[i], l, "left", 4);
		assert_meta(c.r[i], r, "right!", 6);
	}
	uint8_t *buf;
	size_t len;
	crdt_model *copy;
	ck_assert_int_eq(crdt_model_save(c.r[1], &buf, &len), 0);
	ck_assert_int_eq(crdt_model_load(&copy, buf, len), 0);
	assert_meta(copy, l, "left", 4);
	assert_meta(copy, r, "right!", 6);
	free(buf);
	crdt_model_free(copy);
	crdt_cluster_free(&c);
}
END_TEST

static size_t meta_gen(size_t i, uint8_t *out)
{
	size_t len = 1 + i * 37 % 600;
	for (size_t k = 0; k < len; k++)
		out[k] = (uint8_t)(i * 13 + k);
	return len;
}

static void check_all_meta(const crdt_model *m, const crdt_dot *g, const bool *live, size_t n)
{
	uint8_t want[600];
	for (size_t i = 0; i < n; i++) {
		if (!live[i]) {
			assert_no_meta(m, g[i]);
			continue;
		}
		size_t len = meta_gen(i, want);
		assert_meta(m, g[i], want, len);
	}
}

/* Expunging most of many messages with meta compacts the pool (memory
 * comes back) and every survivor keeps its bytes; new ones fit after. */
START_TEST(meta_pool_compacts)
{
	enum { N = 4000, MORE = 1000 };
	crdt_model *m;
	ck_assert_int_eq(crdt_model_new(&m, 0x720), 0);
	crdt_oplist ops = CRDT_OPLIST_INIT;
	crdt_dot inbox;
	ck_assert_int_eq(crdt_model_create(m, &ops, "INBOX", 1, &inbox), 0);
	crdt_dot *g = malloc((N + MORE) * sizeof *g);
	bool *live = calloc(N + MORE, sizeof *live);
	uint8_t meta[600];
	ck_assert(g && live);
	size_t total = 0;
	for (size_t i = 0; i < N; i++) {
		size_t len = meta_gen(i, meta);
		total += len;
		ck_assert_int_eq(crdt_model_append(m, &ops, inbox, NULL, 0, meta, len, &g[i], NULL), 0);
		live[i] = true;
	}
	settle(m);
	size_t peak = crdt_model_memory(m);
	/* Expunge all but every 40th, in a scattered order. */
	size_t gone = 0, freed = 0;
	for (size_t k = 0; k < N; k++) {
		size_t i = k * 1777 % N; /* 1777 is prime to N: a permutation */
		if (i % 40 == 0)
			continue;
		ck_assert_int_eq(crdt_model_expunge(m, &ops, g[i]), 0);
		live[i] = false;
		freed += meta_gen(i, meta);
		if (++gone % 400 == 0) {
			settle(m);
			check_all_meta(m, g, live, N);
		}
	}
	settle(m);
	check_all_meta(m, g, live, N);
	size_t after = crdt_model_memory(m);
	ck_assert_msg(after + freed / 2 < peak, "memory %zu at the peak, %zu after expunging %zu of %zu "
		      "meta bytes", peak, after, freed, total);
	for (size_t i = N; i < N + MORE; i++) {
		size_t len = meta_gen(i, meta);
		ck_assert_int_eq(crdt_model_append(m, &ops, inbox, NULL, 0, meta, len, &g[i], NULL), 0);
		live[i] = true;
	}
	settle(m);
	check_all_meta(m, g, live, N + MORE);
	/* And the same after a snapshot. */
	uint8_t *buf;
	size_t len;
	crdt_model *copy;
	ck_assert_int_eq(crdt_model_save(m, &buf, &len), 0);
	ck_assert_int_eq(crdt_model_load(&copy, buf, len), 0);
	check_all_meta(copy, g, live, N + MORE);
	free(buf);
	crdt_model_free(copy);
	crdt_oplist_free(&ops);
	free(g);
	free(live);
	crdt_model_free(m);
}
END_TEST

/* ------------------------------------------------------------------ */
/* MODSEQ                                                              */

/* The counter moves by one per op applied: local, received, released
 * from the buffer; not for duplicates, buffered or refused ops. */
START_TEST(modseq_counts_applied_ops)
{
	crdt_model *a, *b;
	ck_assert_int_eq(crdt_model_new(&a, 0x730), 0);
	ck_assert_int_eq(crdt_model_new(&b, 0x731), 0);
	ck_assert_uint_eq(crdt_model_modseq(b), 0);
	crdt_oplist log = CRDT_OPLIST_INIT;
	crdt_dot inbox, x;
	ck_assert_int_eq(crdt_model_create(a, &log, "INBOX", 1, &inbox), 0);
	ck_assert_uint_eq(crdt_model_modseq(a), 1);
	ck_assert_int_eq(crdt_model_append(a, &log, inbox, NULL, 0, NULL, 0, &x, NULL), 0);
	ck_assert_int_eq(crdt_model_flags(a, &log, x, CRDT_OP_FLAGS_ADD, SEEN, 1), 0);
	ck_assert_uint_eq(crdt_model_modseq(a), 3);
	settle(a);
	ck_assert_uint_eq(crdt_model_modseq(a), 3); /* nothing to claim */

	ck_assert_int_eq(crdt_model_receive(b, &log.ops[2]), MCRDT_EPENDING);
	ck_assert_int_eq(crdt_model_receive(b, &log.ops[2]), MCRDT_EDUPLICATE);
	ck_assert_uint_eq(crdt_model_modseq(b), 0);
	ck_assert_int_eq(crdt_model_receive(b, &log.ops[0]), 0);
	ck_assert_uint_eq(crdt_model_modseq(b), 1);
	ck_assert_int_eq(crdt_model_receive(b, &log.ops[1]), 0); /* releases ops[2] */
	ck_assert_uint_eq(crdt_model_modseq(b), 3);
	for (size_t k = 0; k < log.n; k++)
		ck_assert_int_eq(crdt_model_receive(b, &log.ops[k]), MCRDT_EDUPLICATE);
	ck_assert_uint_eq(crdt_model_modseq(b), 3);

	/* Refused: a rename naming a message as its mailbox. */
	crdt_op bad;
	crdt_op_init(&bad, CRDT_OP_MBOX_RENAME);
	bad.id = (crdt_dot){ 0xbad, 1 };
	ck_assert_int_eq(crdt_model_context(b, &bad.deps), 0);
	bad.mbox = x;
	ck_assert_int_eq(crdt_op_set_name(&bad, "Elsewhere", 9), 0);
	ck_assert_int_eq(crdt_model_receive(b, &bad), MCRDT_ECORRUPT);
	ck_assert_uint_eq(crdt_model_modseq(b), 3);
	crdt_op_free(&bad);

	/* A local op on b counts too, and settle's claims do. */
	crdt_dot y;
	ck_assert_int_eq(crdt_model_append(b, &log, inbox, NULL, 0, NULL, 0, &y, NULL), 0);
	ck_assert_uint_eq(crdt_model_modseq(b), 4);
	crdt_dot z;
	ck_assert_int_eq(crdt_model_append(a, &log, inbox, NULL, 0, NULL, 0, &z, NULL), 0);
	settle(a);
	settle(b);
	ck_assert_int_eq(crdt_model_receive(b, &log.ops[log.n - 1]), 0); /* z: same UID as y */
	crdt_oplist claims = CRDT_OPLIST_INIT;
	uint64_t before = crdt_model_modseq(b);
	ck_assert_int_eq(crdt_model_settle(b, &claims), 0);
	ck_assert_uint_gt(claims.n, 0);
	ck_assert_uint_eq(crdt_model_modseq(b), before + claims.n);
	crdt_oplist_free(&claims);
	crdt_oplist_free(&log);
	crdt_model_free(a);
	crdt_model_free(b);
}
END_TEST

/* A flag op moves the MODSEQ of its message only, and only when the set of
 * flags the message shows changes; the view's HIGHESTMODSEQ follows. */
START_TEST(modseq_follows_visible_flag_changes)
{
	crdt_model *m;
	ck_assert_int_eq(crdt_model_new(&m, 0x740), 0);
	crdt_dot inbox, a, b, c;
	DO(m, crdt_model_create(m_, &ops_, "INBOX", 1, &inbox));
	ck_assert_uint_eq(hms_of(m, "INBOX"), 1); /* its creation */
	DO(m, crdt_model_append(m_, &ops_, inbox, NULL, 0, NULL, 0, &a, NULL));
	DO(m, crdt_model_append(m_, &ops_, inbox, SEEN, 1, NULL, 0, &b, NULL));
	DO(m, crdt_model_append(m_, &ops_, inbox, NULL, 0, NULL, 0, &c, NULL));
	ck_assert_uint_eq(modseq_of(m, "INBOX", a), 2);
	ck_assert_uint_eq(modseq_of(m, "INBOX", b), 3);
	ck_assert_uint_eq(modseq_of(m, "INBOX", c), 4);
	ck_assert_uint_eq(hms_of(m, "INBOX"), 4);

	DO(m, crdt_model_flags(m_, &ops_, a, CRDT_OP_FLAGS_ADD, FLAGGED, 1));
	ck_assert_uint_eq(crdt_model_modseq(m), 5);
	ck_assert_uint_eq(modseq_of(m, "INBOX", a), 5);
	ck_assert_uint_eq(modseq_of(m, "INBOX", b), 3);
	ck_assert_uint_eq(modseq_of(m, "INBOX", c), 4);
	ck_assert_uint_eq(hms_of(m, "INBOX"), 5);

	/* Ops that leave b's set as it is: counted, but b keeps its value. */
	DO(m, crdt_model_flags(m_, &ops_, b, CRDT_OP_FLAGS_ADD, SEEN, 1));
	DO(m, crdt_model_flags(m_, &ops_, b, CRDT_OP_FLAGS_REMOVE, FLAGGED, 1));
	DO(m, crdt_model_flags(m_, &ops_, b, CRDT_OP_FLAGS_SET, SEEN, 1));
	ck_assert_uint_eq(crdt_model_modseq(m), 8);
	ck_assert_uint_eq(modseq_of(m, "INBOX", b), 3);
	ck_assert_uint_eq(hms_of(m, "INBOX"), 5);

	DO(m, crdt_model_flags(m_, &ops_, b, CRDT_OP_FLAGS_SET, SEEN_DRAFT, 2));
	ck_assert_uint_eq(modseq_of(m, "INBOX", b), 9);
	DO(m, crdt_model_flags(m_, &ops_, b, CRDT_OP_FLAGS_REMOVE, DRAFT, 1));
	ck_assert_uint_eq(modseq_of(m, "INBOX", b), 10);
	DO(m, crdt_model_flags(m_, &ops_, b, CRDT_OP_FLAGS_SET, NULL, 0));
	ck_assert_uint_eq(modseq_of(m, "INBOX", b), 11);
	ck_assert_uint_eq(modseq_of(m, "INBOX", a), 5);
	ck_assert_uint_eq(modseq_of(m, "INBOX", c), 4);
	ck_assert_uint_eq(hms_of(m, "INBOX"), 11);

	/* A change elsewhere leaves this view's HIGHESTMODSEQ alone. */
	crdt_dot work, w;
	DO(m, crdt_model_create(m_, &ops_, "Work", 2, &work));
	DO(m, crdt_model_append(m_, &ops_, work, NULL, 0, NULL, 0, &w, NULL));
	ck_assert_uint_eq(hms_of(m, "INBOX"), 11);
	ck_assert_uint_eq(hms_of(m, "Work"), 13);
	crdt_model_free(m);
}
END_TEST

static void random_local(crdt_cluster *c, size_t i, unsigned *seed)
{
	crdt_model *m = c->r[i];
	crdt_oplist ops = CRDT_OPLIST_INIT;
	static const char *names[] = { "INBOX", "Work", "Lists" };
	const char *f = rand_r(seed) % 2 ? "\\Seen" : "$Junk";
	struct crdt_mailbox_info *mb;
	size_t nmb;
	ck_assert_int_eq(crdt_model_mailboxes(m, &mb, &nmb), 0);
	struct crdt_row *rows = NULL;
	size_t nrows = 0;
	crdt_dot box = nmb ? mb[(size_t)rand_r(seed) % nmb].guid : (crdt_dot){ 0, 0 };
	if (nmb)
		ck_assert_int_eq(crdt_model_rows(m, box, &rows, &nrows), 0);
	crdt_dot msg = nrows ? rows[(size_t)rand_r(seed) % nrows].guid : (crdt_dot){ 0, 0 };
	switch (rand_r(seed) % 8) {
	case 0:
		crdt_model_create(m, &ops, names[rand_r(seed) % 3], (uint32_t)(1 + rand_r(seed) % 100), NULL);
		break;
	case 1:
		if (nmb && rand_r(seed) % 4 == 0)
			crdt_model_delete(m, &ops, box);
		break;
	case 2:
	case 3:
		if (nmb)
			crdt_model_append(m, &ops, box, &f, 1, "m", 1, NULL, NULL);
		break;
	case 4:
		if (nrows)
			crdt_model_flags(m, &ops, msg, rand_r(seed) % 2 ? CRDT_OP_FLAGS_ADD : CRDT_OP_FLAGS_REMOVE, &f, 1);
		break;
	case 5:
		if (nrows)
			crdt_model_expunge(m, &ops, msg);
		break;
	case 6:
		if (nrows)
			crdt_model_copy(m, &ops, msg, mb[(size_t)rand_r(seed) % nmb].guid, rand_r(seed) % 2, NULL, 0, NULL, NULL);
		break;
	case 7:
		if (nmb)
			crdt_model_rename(m, &ops, box, names[rand_r(seed) % 3]);
		break;
	}
	crdt_rows_free(rows, nrows);
	crdt_mailboxes_free(mb, nmb);
	ck_assert_int_eq(crdt_cluster_publish(c, i, &ops), 0);
	crdt_oplist_free(&ops);
	ck_assert_int_eq(crdt_cluster_settle(c, i), 0);
}

/* Two replicas that receive the same ops in the same order and settle at
 * the same points count the same values everywhere, vanished UIDs too. */
START_TEST(same_ops_same_modseqs)
{
	unsigned seed = 11 + (unsigned)_i;
	crdt_cluster c;
	ck_assert_int_eq(crdt_cluster_init(&c, 3, 0x750), 0);
	LOCAL(&c, 0, crdt_model_create(m_, &ops_, "INBOX", 1, NULL));
	crdt_model *p, *q;
	ck_assert_int_eq(crdt_model_new(&p, 0x760), 0);
	ck_assert_int_eq(crdt_model_new(&q, 0x761), 0);
	size_t fed = 0;
	for (int step = 0; step < 200; step++) {
		size_t i = (size_t)rand_r(&seed) % 3;
		if (rand_r(&seed) % 3) {
			random_local(&c, i, &seed);
		} else {
			for (int k = 0; k < 5; k++)
				crdt_cluster_deliver(&c, i, (size_t)rand_r(&seed) % c.log.n);
			ck_assert_int_eq(crdt_cluster_settle(&c, i), 0);
		}
		if (rand_r(&seed) % 4 == 0) {
			/* p and q take the log so far, newest first (buffering). */
			for (size_t k = c.log.n; k > fed; k--) {
				int rp = crdt_model_receive(p, &c.log.ops[k - 1]);
				ck_assert_int_eq(crdt_model_receive(q, &c.log.ops[k - 1]), rp);
			}
			fed = c.log.n;
			settle(p);
			settle(q);
			ck_assert_uint_eq(crdt_model_modseq(p), crdt_model_modseq(q));
			char *dp, *dq;
			ck_assert_int_eq(crdt_model_describe_local(p, &dp), 0);
			ck_assert_int_eq(crdt_model_describe_local(q, &dq), 0);
			ck_assert_str_eq(dp, dq);
			free(dp);
			free(dq);
		}
	}
	crdt_model_free(p);
	crdt_model_free(q);
	crdt_cluster_free(&c);
}
END_TEST

/* ------------------------------------------------------------------ */
/* vanished UIDs                                                       */

START_TEST(vanished_after_expunge_and_move)
{
	crdt_model *m;
	ck_assert_int_eq(crdt_model_new(&m, 0x770), 0);
	crdt_dot inbox, work, g[4];
	DO(m, crdt_model_create(m_, &ops_, "INBOX", 1, &inbox));
	DO(m, crdt_model_create(m_, &ops_, "Work", 2, &work));
	for (int k = 0; k < 4; k++)
		DO(m, crdt_model_append(m_, &ops_, inbox, NULL, 0, NULL, 0, &g[k], NULL));
	uint64_t h0 = hms_of(m, "INBOX");
	ck_assert_str_eq(vanished(m, "INBOX", 0), "");
	DO(m, crdt_model_expunge(m_, &ops_, g[1]));
	uint64_t h1 = hms_of(m, "INBOX");
	ck_assert_uint_gt(h1, h0);
	ck_assert_str_eq(vanished(m, "INBOX", h0), "2");
	ck_assert_str_eq(vanished(m, "INBOX", h1), "");
	ck_assert_uint_eq(count_rows(m, "INBOX"), 3);
	/* A move takes the UID out of the source's view only. */
	uint64_t w0 = hms_of(m, "Work");
	DO(m, crdt_model_copy(m_, &ops_, g[2], work, true, NULL, 0, NULL, NULL));
	uint64_t h2 = hms_of(m, "INBOX");
	ck_assert_uint_gt(h2, h1);
	ck_assert_str_eq(vanished(m, "INBOX", h0), "2 3");
	ck_assert_str_eq(vanished(m, "INBOX", h1), "3");
	ck_assert_str_eq(vanished(m, "INBOX", h2), "");
	ck_assert_str_eq(vanished(m, "Work", 0), "");
	ck_assert_uint_gt(hms_of(m, "Work"), w0);
	/* UID EXPUNGE of the rest. */
	DO(m, crdt_model_expunge(m_, &ops_, g[0]));
	DO(m, crdt_model_expunge(m_, &ops_, g[3]));
	ck_assert_str_eq(vanished(m, "INBOX", h2), "1 4");
	ck_assert_str_eq(vanished(m, "INBOX", 0), "1 2 3 4");
	ck_assert_uint_eq(count_rows(m, "INBOX"), 0);
	/* Unknown and deleted mailboxes. */
	uint32_t *v = (uint32_t *)&v;
	size_t n = 99;
	ck_assert_int_eq(crdt_model_vanished(m, (crdt_dot){ 0x770, 999 }, 0, &v, &n), MCRDT_ENOTFOUND);
	DO(m, crdt_model_delete(m_, &ops_, work));
	ck_assert_int_eq(crdt_model_vanished(m, work, 0, &v, &n), MCRDT_ENOTFOUND);
	crdt_model_free(m);
}
END_TEST

/* DELETE vs a concurrent APPEND: the mailbox lives on with the new message,
 * and the messages the delete observed are vanished on both replicas. */
START_TEST(vanished_after_mailbox_delete)
{
	crdt_cluster c;
	ck_assert_int_eq(crdt_cluster_init(&c, 2, 0x780), 0);
	crdt_dot inbox, a, b, n;
	LOCAL(&c, 0, crdt_model_create(m_, &ops_, "INBOX", 5, &inbox));
	LOCAL(&c, 0, crdt_model_append(m_, &ops_, inbox, NULL, 0, NULL, 0, &a, NULL));
	LOCAL(&c, 0, crdt_model_append(m_, &ops_, inbox, NULL, 0, NULL, 0, &b, NULL));
	sync_all(&c);
	uint64_t h[2];
	uint32_t uv = info_of(c.r[0], "INBOX").uidvalidity;
	for (size_t i = 0; i < 2; i++)
		h[i] = hms_of(c.r[i], "INBOX");
	LOCAL(&c, 0, crdt_model_delete(m_, &ops_, inbox));
	ck_assert(!has_mailbox(c.r[0], "INBOX"));
	LOCAL(&c, 1, crdt_model_append(m_, &ops_, inbox, NULL, 0, NULL, 0, &n, NULL));
	sync_all(&c);
	for (size_t i = 0; i < 2; i++) {
		ck_assert_uint_eq(info_of(c.r[i], "INBOX").uidvalidity, uv);
		ck_assert_uint_eq(count_rows(c.r[i], "INBOX"), 1);
		ck_assert_str_eq(vanished(c.r[i], "INBOX", h[i]), "1 2");
		ck_assert_str_eq(vanished(c.r[i], "INBOX", hms_of(c.r[i], "INBOX")), "");
		ck_assert_uint_gt(modseq_of(c.r[i], "INBOX", n), h[i]);
		ck_assert_uint_ge(hms_of(c.r[i], "INBOX"), h[i]);
	}
	crdt_cluster_free(&c);
}
END_TEST

/* Concurrent appends claim one UID, which is burned: each replica showed
 * its own message there, and its move to a fresh UID reports the old one. */
START_TEST(vanished_after_burned_claim)
{
	crdt_cluster c;
	ck_assert_int_eq(crdt_cluster_init(&c, 2, 0x790), 0);
	crdt_dot inbox, first, l, r;
	uint32_t ul, ur;
	LOCAL(&c, 0, crdt_model_create(m_, &ops_, "INBOX", 5, &inbox));
	LOCAL(&c, 0, crdt_model_append(m_, &ops_, inbox, NULL, 0, NULL, 0, &first, NULL));
	sync_all(&c);
	LOCAL(&c, 0, crdt_model_append(m_, &ops_, inbox, NULL, 0, NULL, 0, &l, &ul));
	LOCAL(&c, 1, crdt_model_append(m_, &ops_, inbox, NULL, 0, NULL, 0, &r, &ur));
	ck_assert_uint_eq(ul, 2);
	ck_assert_uint_eq(ur, 2);
	uint64_t h[2];
	for (size_t i = 0; i < 2; i++)
		h[i] = hms_of(c.r[i], "INBOX");
	sync_all(&c);
	for (size_t i = 0; i < 2; i++) {
		const crdt_model *m = c.r[i];
		ck_assert_str_eq(vanished(m, "INBOX", h[i]), "2");
		ck_assert_str_eq(vanished(m, "INBOX", hms_of(m, "INBOX")), "");
		ck_assert_uint_gt(uid_of(m, "INBOX", l), 2);
		ck_assert_uint_gt(uid_of(m, "INBOX", r), 2);
		ck_assert_uint_eq(uid_of(m, "INBOX", first), 1);
		/* The moved rows are news to a client that read h. */
		ck_assert_uint_gt(modseq_of(m, "INBOX", l), h[i]);
		ck_assert_uint_gt(modseq_of(m, "INBOX", r), h[i]);
		ck_assert_uint_le(modseq_of(m, "INBOX", first), h[i]);
	}
	crdt_cluster_free(&c);
}
END_TEST

/* ------------------------------------------------------------------ */
/* the walk over a view                                                */

struct collected {
	struct crdt_msgview *v;
	char **flags;
	uint8_t **meta;
	size_t n, cap;
	size_t stop_at; /* return 7 from this call (1-based), 0 never */
};

static int collect(void *ctx, const struct crdt_msgview *v)
{
	struct collected *c = ctx;
	if (c->n == c->cap) {
		c->cap = c->cap ? 2 * c->cap : 64;
		c->v = realloc(c->v, c->cap * sizeof *c->v);
		c->flags = realloc(c->flags, c->cap * sizeof *c->flags);
		c->meta = realloc(c->meta, c->cap * sizeof *c->meta);
		ck_assert(c->v && c->flags && c->meta);
	}
	/* The flags, as crdt_model_rows writes them. */
	size_t len = 1;
	for (size_t k = 0; k < v->nflags; k++) {
		if (k)
			ck_assert_int_lt(strcmp(v->flags[k - 1], v->flags[k]), 0); /* sorted, distinct */
		len += strlen(v->flags[k]) + 1;
	}
	char *s = malloc(len), *p = s;
	ck_assert_ptr_nonnull(s);
	for (size_t k = 0; k < v->nflags; k++)
		p += sprintf(p, "%s%s", k ? " " : "", v->flags[k]);
	*p = '\0';
	ck_assert_ptr_nonnull(v->meta);
	uint8_t *meta = malloc(v->meta_len + 1);
	ck_assert_ptr_nonnull(meta);
	memcpy(meta, v->meta, v->meta_len);
	c->v[c->n] = *v;
	c->flags[c->n] = s;
	c->meta[c->n] = meta;
	c->n++;
	return c->n == c->stop_at ? 7 : 0;
}

static void collected_free(struct collected *c)
{
	for (size_t k = 0; k < c->n; k++) {
		free(c->flags[k]);
		free(c->meta[k]);
	}
	free(c->v);
	free(c->flags);
	free(c->meta);
	memset(c, 0, sizeof *c);
}

/* crdt_model_each(lo, hi) on the view of mbox gives exactly the rows of
 * crdt_model_rows in that range, in order, with their meta. */
static void each_matches_rows(const crdt_model *m, crdt_dot mbox, uint32_t lo, uint32_t hi)
{
	struct crdt_row *rows;
	size_t n;
	ck_assert_int_eq(crdt_model_rows(m, mbox, &rows, &n), 0);
	struct collected c;
	memset(&c, 0, sizeof c);
	ck_assert_int_eq(crdt_model_each(m, mbox, lo, hi, collect, &c), 0);
	size_t at = 0;
	for (size_t k = 0; k < n; k++) {
		if (rows[k].uid < lo || rows[k].uid > hi)
			continue;
		ck_assert_msg(at < c.n, "range %u:%u: row UID %u missing", lo, hi, rows[k].uid);
		ck_assert_uint_eq(c.v[at].uid, rows[k].uid);
		ck_assert(crdt_dot_eq(c.v[at].guid, rows[k].guid));
		ck_assert_uint_eq(c.v[at].modseq, rows[k].modseq);
		ck_assert_str_eq(c.flags[at], rows[k].flags);
		const uint8_t *meta;
		size_t len;
		ck_assert_int_eq(crdt_model_meta(m, rows[k].guid, &meta, &len), 0);
		ck_assert_uint_eq(c.v[at].meta_len, len);
		ck_assert(len == 0 || memcmp(c.meta[at], meta, len) == 0);
		at++;
	}
	ck_assert_msg(at == c.n, "range %u:%u: %zu rows, each gave %zu", lo, hi, at, c.n);
	collected_free(&c);
	crdt_rows_free(rows, n);
}

/* Every UID alone, ranges small and large, 1:*, through a view whose
 * member order no longer follows UIDs (expunges swap members, copies add
 * high UIDs, flags of all kinds). */
START_TEST(each_matches_rows_for_any_range)
{
	crdt_model *m;
	ck_assert_int_eq(crdt_model_new(&m, 0x7a0), 0);
	crdt_oplist ops = CRDT_OPLIST_INIT;
	crdt_dot inbox, g[600];
	ck_assert_int_eq(crdt_model_create(m, &ops, "INBOX", 1, &inbox), 0);
	static const char *kw[] = { "\\Seen", "$Junk", "\\Flagged", "todo", "\\Answered", "zzz", "$Label1",
				    "\\Draft", "a", "b", "c", "d", "e", "f", "g", "h", "i", "j", "k", "l" };
	unsigned seed = 3;
	for (size_t k = 0; k < 600; k++) {
		char meta[16];
		int len = snprintf(meta, sizeof meta, "m%zu", k);
		size_t nf = k % 7 == 0 ? 20 : (size_t)rand_r(&seed) % 4;
		ck_assert_int_eq(crdt_model_append(m, &ops, inbox, kw + (k % 3), nf > 17 ? 17 : nf, meta,
						   k % 5 ? (size_t)len : 0, &g[k], NULL), 0);
	}
	for (size_t k = 0; k < 600; k += 3)
		ck_assert_int_eq(crdt_model_expunge(m, &ops, g[(k * 7) % 600]), 0);
	for (size_t k = 1; k < 600; k += 50)
		if (crdt_model_has_message(m, g[k]))
			ck_assert_int_eq(crdt_model_copy(m, &ops, g[k], inbox, false, "c", 1, NULL, NULL), 0);
	ck_assert_int_eq(crdt_model_flags(m, &ops, g[1], CRDT_OP_FLAGS_ADD, kw, 20), 0);
	crdt_oplist_free(&ops);
	settle(m);
	uint32_t top = info_of(m, "INBOX").uidnext;
	each_matches_rows(m, inbox, 1, UINT32_MAX);
	each_matches_rows(m, inbox, 0, UINT32_MAX);
	each_matches_rows(m, inbox, 0, 0);
	for (uint32_t u = 0; u <= top + 2; u++)
		each_matches_rows(m, inbox, u, u);
	for (int k = 0; k < 300; k++) {
		uint32_t lo = (uint32_t)rand_r(&seed) % (top + 5), span = (uint32_t)rand_r(&seed) % (k % 2 ? 20 : 700);
		each_matches_rows(m, inbox, lo, lo + span);
		each_matches_rows(m, inbox, lo + span, lo); /* empty */
	}
	/* A non-zero return stops the walk and comes back. */
	struct collected c;
	memset(&c, 0, sizeof c);
	c.stop_at = 3;
	ck_assert_int_eq(crdt_model_each(m, inbox, 1, UINT32_MAX, collect, &c), 7);
	ck_assert_uint_eq(c.n, 3);
	collected_free(&c);
	c.stop_at = 1;
	uint32_t some = top / 2;
	while (!crdt_model_each(m, inbox, some, some, collect, &c) && c.n == 0)
		some++;
	ck_assert_uint_eq(c.n, 1);
	collected_free(&c);
	crdt_model_free(m);
}
END_TEST

/* A view of two same-name mailboxes (concurrent creates) walks both. */
START_TEST(each_walks_a_group_view)
{
	crdt_cluster c;
	ck_assert_int_eq(crdt_cluster_init(&c, 2, 0x7b0), 0);
	crdt_dot w0, w1;
	LOCAL(&c, 0, crdt_model_create(m_, &ops_, "Work", 3, &w0));
	LOCAL(&c, 1, crdt_model_create(m_, &ops_, "Work", 4, &w1));
	for (int k = 0; k < 40; k++) {
		LOCAL(&c, 0, crdt_model_append(m_, &ops_, w0, SEEN, (size_t)(k % 2), "x", 1, NULL, NULL));
		LOCAL(&c, 1, crdt_model_append(m_, &ops_, w1, FLAGGED, (size_t)(k % 3 == 0), NULL, 0, NULL, NULL));
	}
	sync_all(&c);
	for (size_t i = 0; i < 2; i++) {
		ck_assert_uint_eq(count_rows(c.r[i], "Work"), 80);
		ck_assert_uint_eq(info_of(c.r[i], "Work").messages, 80);
		uint32_t top = info_of(c.r[i], "Work").uidnext;
		each_matches_rows(c.r[i], w0, 1, UINT32_MAX);
		each_matches_rows(c.r[i], w1, 1, UINT32_MAX);
		for (uint32_t u = 1; u < top; u++)
			each_matches_rows(c.r[i], w0, u, u);
	}
	crdt_cluster_free(&c);
}
END_TEST

START_TEST(each_empty_and_unknown)
{
	crdt_model *m;
	ck_assert_int_eq(crdt_model_new(&m, 0x7c0), 0);
	crdt_dot inbox, gone, x;
	DO(m, crdt_model_create(m_, &ops_, "INBOX", 1, &inbox));
	DO(m, crdt_model_create(m_, &ops_, "Gone", 2, &gone));
	struct collected c;
	memset(&c, 0, sizeof c);
	ck_assert_int_eq(crdt_model_each(m, inbox, 1, UINT32_MAX, collect, &c), 0);
	ck_assert_int_eq(crdt_model_each(m, inbox, 1, 1, collect, &c), 0);
	ck_assert_uint_eq(c.n, 0);
	DO(m, crdt_model_append(m_, &ops_, inbox, NULL, 0, NULL, 0, &x, NULL));
	DO(m, crdt_model_expunge(m_, &ops_, x));
	ck_assert_int_eq(crdt_model_each(m, inbox, 1, UINT32_MAX, collect, &c), 0);
	ck_assert_int_eq(crdt_model_each(m, inbox, 1, 1, collect, &c), 0);
	ck_assert_uint_eq(c.n, 0);
	DO(m, crdt_model_delete(m_, &ops_, gone));
	mcrdt_error_clear();
	ck_assert_int_eq(crdt_model_each(m, gone, 1, UINT32_MAX, collect, &c), MCRDT_ENOTFOUND);
	ck_assert_str_ne(mcrdt_error_last(), "");
	ck_assert_int_eq(crdt_model_each(m, (crdt_dot){ 0x7c0, 77 }, 1, 1, collect, &c), MCRDT_ENOTFOUND);
	ck_assert_int_eq(crdt_model_each(m, (crdt_dot){ 0xdead, 1 }, 1, 1, collect, &c), MCRDT_ENOTFOUND);
	ck_assert_uint_eq(c.n, 0);
	crdt_model_free(m);
}
END_TEST

/* ------------------------------------------------------------------ */
/* subscriptions                                                       */

START_TEST(subscriptions_listed_sorted)
{
	crdt_model *m;
	ck_assert_int_eq(crdt_model_new(&m, 0x7d0), 0);
	char **v;
	size_t n;
	ck_assert_int_eq(crdt_model_subscriptions(m, &v, &n), 0);
	ck_assert_uint_eq(n, 0);
	crdt_strv_free(v, n);
	crdt_strv_free(NULL, 0);
	DO(m, crdt_model_create(m_, &ops_, "INBOX", 1, NULL));
	DO(m, crdt_model_subscribe(m_, &ops_, "b", true));
	DO(m, crdt_model_subscribe(m_, &ops_, "Zed/\xc3\x84", true));
	DO(m, crdt_model_subscribe(m_, &ops_, "a", true));
	DO(m, crdt_model_subscribe(m_, &ops_, "INBOX", true));
	DO(m, crdt_model_subscribe(m_, &ops_, "ab", true));
	DO(m, crdt_model_subscribe(m_, &ops_, "b", false));
	DO(m, crdt_model_subscribe(m_, &ops_, "never", false));
	ck_assert_int_eq(crdt_model_subscriptions(m, &v, &n), 0);
	ck_assert_uint_eq(n, 4);
	ck_assert_str_eq(v[0], "INBOX");
	ck_assert_str_eq(v[1], "Zed/\xc3\x84");
	ck_assert_str_eq(v[2], "a");
	ck_assert_str_eq(v[3], "ab");
	crdt_strv_free(v, n);
	crdt_model_free(m);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("imap");
	TCase *tc = tcase_create("core");
	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, meta_kept_verbatim);
	tcase_add_test(tc, meta_survives_claims_and_snapshots);
	tcase_add_test(tc, meta_pool_compacts);
	tcase_add_test(tc, modseq_counts_applied_ops);
	tcase_add_test(tc, modseq_follows_visible_flag_changes);
	tcase_add_loop_test(tc, same_ops_same_modseqs, 0, 10);
	tcase_add_test(tc, vanished_after_expunge_and_move);
	tcase_add_test(tc, vanished_after_mailbox_delete);
	tcase_add_test(tc, vanished_after_burned_claim);
	tcase_add_test(tc, each_matches_rows_for_any_range);
	tcase_add_test(tc, each_walks_a_group_view);
	tcase_add_test(tc, each_empty_and_unknown);
	tcase_add_test(tc, subscriptions_listed_sorted);
	suite_add_tcase(s, tc);
	return run_suite(s, CK_FORK_GETENV);
}
