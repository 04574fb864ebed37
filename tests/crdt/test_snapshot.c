/*
 * tests/crdt/test_snapshot.c — a replica rebuilt from a snapshot is the
 * same replica: same visible state, same UIDs shown, same MODSEQ values,
 * meta and vanished UIDs (crdt_model_describe_local), and it goes on to
 * make the same decisions (claims and MODSEQ included) as the one that
 * never stopped.
 */
#include "tests/check_run.h"
#include "tests/crdt/util.h"

#include <stdio.h>

static const char *FL[] = { "\\Seen", "\\Flagged", "$Junk", "work" };
static const char *NAMES[] = { "INBOX", "Work", "Lists", "Trash" };

static uint64_t rnd(uint64_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 7;
	*s ^= *s << 17;
	return *s;
}

/* One random local change on replica i (skipped when it does not apply). */
static void random_change(crdt_cluster *c, size_t i, uint64_t *seed)
{
	crdt_model *m = c->r[i];
	crdt_oplist ops = CRDT_OPLIST_INIT;
	struct crdt_mailbox_info *mb;
	size_t nmb;
	ck_assert_int_eq(crdt_model_mailboxes(m, &mb, &nmb), 0);
	struct crdt_row *rows = NULL;
	size_t nrows = 0;
	crdt_dot box = { 0, 0 };
	if (nmb) {
		box = mb[rnd(seed) % nmb].guid;
		ck_assert_int_eq(crdt_model_rows(m, box, &rows, &nrows), 0);
	}
	crdt_dot msg = nrows ? rows[rnd(seed) % nrows].guid : (crdt_dot){ 0, 0 };
	const char *f = FL[rnd(seed) % 4];
	switch (rnd(seed) % 9) {
	case 0:
		crdt_model_create(m, &ops, NAMES[rnd(seed) % 4], (uint32_t)(1 + rnd(seed) % 1000), NULL);
		break;
	case 1:
		if (nmb)
			crdt_model_rename(m, &ops, box, NAMES[rnd(seed) % 4]);
		break;
	case 2:
		if (nmb && rnd(seed) % 4 == 0)
			crdt_model_delete(m, &ops, box);
		break;
	case 3:
		crdt_model_subscribe(m, &ops, NAMES[rnd(seed) % 4], rnd(seed) % 2);
		break;
	case 4:
	case 5:
		if (nmb)
			crdt_model_append(m, &ops, box, &f, 1, f, strlen(f) * (rnd(seed) % 3) / 2, NULL, NULL);
		break;
	case 6:
		if (nrows)
			crdt_model_flags(m, &ops, msg, rnd(seed) % 2 ? CRDT_OP_FLAGS_ADD : CRDT_OP_FLAGS_REMOVE, &f, 1);
		break;
	case 7:
		if (nrows)
			crdt_model_expunge(m, &ops, msg);
		break;
	case 8:
		if (nrows)
			crdt_model_copy(m, &ops, msg, mb[rnd(seed) % nmb].guid, rnd(seed) % 2, "copied", 6, NULL, NULL);
		break;
	}
	crdt_rows_free(rows, nrows);
	crdt_mailboxes_free(mb, nmb);
	ck_assert_int_eq(crdt_cluster_publish(c, i, &ops), 0);
	crdt_oplist_free(&ops);
	ck_assert_int_eq(crdt_cluster_settle(c, i), 0);
}

/* The converging state and this replica's own counting. */
static char *describe(const crdt_model *m)
{
	char *d;
	ck_assert_int_eq(crdt_model_describe_local(m, &d), 0);
	return d;
}

static crdt_model *reload(const crdt_model *m)
{
	uint8_t *buf;
	size_t len;
	ck_assert_msg(crdt_model_save(m, &buf, &len) == 0, "save: %s", mcrdt_error_last());
	crdt_model *copy;
	ck_assert_msg(crdt_model_load(&copy, buf, len) == 0, "load: %s", mcrdt_error_last());
	uint8_t *again;
	size_t len2;
	ck_assert_int_eq(crdt_model_save(copy, &again, &len2), 0);
	ck_assert_uint_eq(len, len2);
	ck_assert_int_eq(memcmp(buf, again, len), 0); /* save(load(x)) == x */
	free(buf);
	free(again);
	return copy;
}

/* Random histories on three replicas; at many points replica 0 is saved,
 * loaded, and the copy then follows the same ops: they never differ. */
START_TEST(a_loaded_replica_behaves_like_the_original)
{
	uint64_t seed = 0x5eed + (uint64_t)_i * 7919;
	crdt_cluster c;
	ck_assert_int_eq(crdt_cluster_init(&c, 3, 0x400), 0);
	crdt_oplist ops = CRDT_OPLIST_INIT;
	ck_assert_int_eq(crdt_model_create(c.r[0], &ops, "INBOX", 7, NULL), 0);
	ck_assert_int_eq(crdt_cluster_publish(&c, 0, &ops), 0);
	for (int step = 0; step < 150; step++) {
		size_t i = rnd(&seed) % 3;
		if (rnd(&seed) % 3) {
			random_change(&c, i, &seed);
		} else {
			for (int k = 0; k < 4 && c.log.n; k++)
				crdt_cluster_deliver(&c, i, rnd(&seed) % c.log.n);
			ck_assert_int_eq(crdt_cluster_settle(&c, i), 0);
		}
		if (step % 10 == 9) {
			/* Swap replica 0 for its reloaded copy; the run goes on with it. */
			char *before = describe(c.r[0]);
			crdt_model *copy = reload(c.r[0]);
			char *after = describe(copy);
			ck_assert_str_eq(before, after);
			ck_assert_uint_eq(crdt_model_messages(copy), crdt_model_messages(c.r[0]));
			free(before);
			free(after);
			/* Buffered ops are the caller's to keep: hand them over. */
			for (size_t k = 0; k < crdt_model_pending(c.r[0]); k++)
				crdt_model_receive(copy, crdt_model_pending_op(c.r[0], k));
			crdt_model_free(c.r[0]);
			c.r[0] = copy;
		}
	}
	sync_all(&c);
	crdt_cluster_free(&c);
}
END_TEST

/* A replica and its reloaded copy receive the same ops in the same order
 * and settle at the same points: they issue the same claims and count the
 * same MODSEQ values, vanished UIDs included, at every step. */
START_TEST(a_reloaded_replica_counts_on_identically)
{
	uint64_t seed = 0xc0de + (uint64_t)_i * 104729;
	crdt_cluster c;
	ck_assert_int_eq(crdt_cluster_init(&c, 3, 0x430), 0);
	crdt_oplist ops = CRDT_OPLIST_INIT;
	ck_assert_int_eq(crdt_model_create(c.r[0], &ops, "INBOX", 7, NULL), 0);
	ck_assert_int_eq(crdt_cluster_publish(&c, 0, &ops), 0);
	for (int step = 0; step < 60; step++) {
		size_t i = rnd(&seed) % 3;
		if (rnd(&seed) % 3) {
			random_change(&c, i, &seed);
		} else {
			for (int k = 0; k < 4 && c.log.n; k++)
				crdt_cluster_deliver(&c, i, rnd(&seed) % c.log.n);
			ck_assert_int_eq(crdt_cluster_settle(&c, i), 0);
		}
	}
	crdt_model *copy = reload(c.r[0]);
	for (size_t k = 0; k < crdt_model_pending(c.r[0]); k++)
		ck_assert_int_eq(crdt_model_receive(copy, crdt_model_pending_op(c.r[0], k)), MCRDT_EPENDING);
	for (int step = 0; step < 120; step++) {
		if (rnd(&seed) % 2) {
			random_change(&c, 1 + rnd(&seed) % 2, &seed);
			continue;
		}
		for (int k = 0; k < 6 && c.log.n; k++) {
			size_t at = rnd(&seed) % c.log.n;
			int a = crdt_cluster_deliver(&c, 0, at);
			ck_assert_int_eq(crdt_model_receive(copy, &c.log.ops[at]), a);
		}
		size_t from = c.log.n;
		ck_assert_int_eq(crdt_cluster_settle(&c, 0), 0);
		crdt_oplist claims = CRDT_OPLIST_INIT;
		ck_assert_int_eq(crdt_model_settle(copy, &claims), 0);
		ck_assert_uint_eq(claims.n, c.log.n - from);
		for (size_t k = 0; k < claims.n; k++)
			ck_assert_ptr_null(crdt_op_diff(&claims.ops[k], &c.log.ops[from + k]));
		crdt_oplist_free(&claims);
		ck_assert_uint_eq(crdt_model_modseq(copy), crdt_model_modseq(c.r[0]));
		char *want = describe(c.r[0]), *got = describe(copy);
		ck_assert_str_eq(got, want);
		free(want);
		free(got);
	}
	crdt_model_free(copy);
	sync_all(&c);
	crdt_cluster_free(&c);
}
END_TEST

START_TEST(saving_needs_a_settled_model)
{
	crdt_cluster c;
	ck_assert_int_eq(crdt_cluster_init(&c, 2, 0x410), 0);
	crdt_dot inbox;
	LOCAL(&c, 0, crdt_model_create(m_, &ops_, "INBOX", 1, &inbox));
	LOCAL(&c, 0, crdt_model_append(m_, &ops_, inbox, NULL, 0, NULL, 0, NULL, NULL));
	for (size_t k = 0; k < c.log.n; k++)
		ck_assert_int_eq(crdt_cluster_deliver(&c, 1, k), 0);
	uint8_t *buf;
	size_t len;
	ck_assert_int_eq(crdt_model_save(c.r[1], &buf, &len), MCRDT_EINVAL);
	ck_assert_int_eq(crdt_cluster_settle(&c, 1), 0);
	ck_assert_int_eq(crdt_model_save(c.r[1], &buf, &len), 0);
	free(buf);
	crdt_cluster_free(&c);
}
END_TEST

/* Every prefix of a snapshot and every flipped byte: refused or loaded,
 * never a crash or a leak (the sanitizer build watches). */
START_TEST(damaged_snapshots_are_refused)
{
	crdt_cluster c;
	uint64_t seed = 99;
	ck_assert_int_eq(crdt_cluster_init(&c, 2, 0x420), 0);
	crdt_oplist ops = CRDT_OPLIST_INIT;
	ck_assert_int_eq(crdt_model_create(c.r[0], &ops, "INBOX", 1, NULL), 0);
	ck_assert_int_eq(crdt_cluster_publish(&c, 0, &ops), 0);
	for (int k = 0; k < 40; k++)
		random_change(&c, 0, &seed);
	uint8_t *buf;
	size_t len;
	ck_assert_int_eq(crdt_model_save(c.r[0], &buf, &len), 0);
	for (size_t cut = 0; cut < len; cut++) {
		crdt_model *m;
		int rc = crdt_model_load(&m, buf, cut);
		ck_assert_msg(rc == MCRDT_ECORRUPT || rc == MCRDT_EVERSION, "prefix %zu of %zu: %d", cut, len, rc);
	}
	for (size_t at = 0; at < len; at++) {
		for (int bit = 0; bit < 8; bit += 3) {
			buf[at] ^= (uint8_t)(1 << bit);
			crdt_model *m;
			if (crdt_model_load(&m, buf, len) == 0) {
				char *d = describe(m); /* whatever loaded must be usable */
				free(d);
				crdt_model_free(m);
			}
			buf[at] ^= (uint8_t)(1 << bit);
		}
	}
	free(buf);
	crdt_cluster_free(&c);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("snapshot");
	TCase *tc = tcase_create("core");
	tcase_set_timeout(tc, 120);
	tcase_add_loop_test(tc, a_loaded_replica_behaves_like_the_original, 0, 20);
	tcase_add_loop_test(tc, a_reloaded_replica_counts_on_identically, 0, 10);
	tcase_add_test(tc, saving_needs_a_settled_model);
	tcase_add_test(tc, damaged_snapshots_are_refused);
	suite_add_tcase(s, tc);
	return run_suite(s, CK_FORK_GETENV);
}
