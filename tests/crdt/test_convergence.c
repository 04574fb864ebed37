/*
 * tests/crdt/test_convergence.c — the twelve convergence cases of
 * DESIGN.md, each with concurrent ops on two or more replicas. Every case
 * ends with all replicas describing the same state (sync_all checks it).
 */
#include "tests/check_run.h"
#include "tests/crdt/util.h"

static const char *SEEN[] = { "\\Seen" };
static const char *FLAGGED[] = { "\\Flagged" };
static const char *LABEL[] = { "$Label1" };

/* Two (or three) replicas sharing INBOX and Work, each with one message. */
struct fixture {
	crdt_cluster c;
	crdt_dot inbox, work, m_inbox, m_work;
};

static void setup(struct fixture *f, size_t n)
{
	ck_assert_int_eq(crdt_cluster_init(&f->c, n, 0x100), 0);
	LOCAL(&f->c, 0, crdt_model_create(m_, &ops_, "INBOX", 11, &f->inbox));
	LOCAL(&f->c, 0, crdt_model_create(m_, &ops_, "Work", 12, &f->work));
	LOCAL(&f->c, 0, crdt_model_append(m_, &ops_, f->inbox, SEEN, 1, NULL, 0, &f->m_inbox, NULL));
	LOCAL(&f->c, 0, crdt_model_append(m_, &ops_, f->work, NULL, 0, NULL, 0, &f->m_work, NULL));
	sync_all(&f->c);
}

/* Case 1: concurrent APPEND to one mailbox: each message once, everywhere. */
START_TEST(case01_concurrent_append)
{
	struct fixture f;
	setup(&f, 3);
	crdt_dot a, b, c;
	uint32_t ua, ub;
	LOCAL(&f.c, 0, crdt_model_append(m_, &ops_, f.inbox, NULL, 0, NULL, 0, &a, &ua));
	LOCAL(&f.c, 1, crdt_model_append(m_, &ops_, f.inbox, NULL, 0, NULL, 0, &b, &ub));
	LOCAL(&f.c, 2, crdt_model_append(m_, &ops_, f.inbox, NULL, 0, NULL, 0, &c, NULL));
	ck_assert_uint_eq(ua, ub); /* both claimed the same UID while apart */
	sync_all(&f.c);
	for (size_t i = 0; i < 3; i++) {
		ck_assert_uint_eq(count_rows(f.c.r[i], "INBOX"), 4);
		ck_assert(find_row(f.c.r[i], "INBOX", a, NULL, NULL));
		ck_assert(find_row(f.c.r[i], "INBOX", b, NULL, NULL));
		ck_assert(find_row(f.c.r[i], "INBOX", c, NULL, NULL));
	}
	crdt_cluster_free(&f.c);
}
END_TEST

/* Case 2: per flag, add wins over a concurrent remove; unrelated flags both apply. */
START_TEST(case02_concurrent_flags)
{
	struct fixture f;
	setup(&f, 2);
	LOCAL(&f.c, 0, crdt_model_flags(m_, &ops_, f.m_inbox, CRDT_OP_FLAGS_ADD, SEEN, 1));
	LOCAL(&f.c, 0, crdt_model_flags(m_, &ops_, f.m_inbox, CRDT_OP_FLAGS_ADD, FLAGGED, 1));
	LOCAL(&f.c, 1, crdt_model_flags(m_, &ops_, f.m_inbox, CRDT_OP_FLAGS_REMOVE, SEEN, 1));
	LOCAL(&f.c, 1, crdt_model_flags(m_, &ops_, f.m_inbox, CRDT_OP_FLAGS_ADD, LABEL, 1));
	sync_all(&f.c);
	char *flags;
	ck_assert(find_row(f.c.r[1], "INBOX", f.m_inbox, NULL, &flags));
	ck_assert_str_eq(flags, "$Label1 \\Flagged \\Seen");
	free(flags);
	/* A remove that observed the add does remove it. */
	LOCAL(&f.c, 1, crdt_model_flags(m_, &ops_, f.m_inbox, CRDT_OP_FLAGS_REMOVE, SEEN, 1));
	sync_all(&f.c);
	ck_assert(find_row(f.c.r[0], "INBOX", f.m_inbox, NULL, &flags));
	ck_assert_str_eq(flags, "$Label1 \\Flagged");
	free(flags);
	crdt_cluster_free(&f.c);
}
END_TEST

/* Case 3: EXPUNGE vs a concurrent flag change: the message stays expunged. */
START_TEST(case03_expunge_vs_flag)
{
	struct fixture f;
	setup(&f, 2);
	LOCAL(&f.c, 0, crdt_model_expunge(m_, &ops_, f.m_inbox));
	LOCAL(&f.c, 1, crdt_model_flags(m_, &ops_, f.m_inbox, CRDT_OP_FLAGS_ADD, FLAGGED, 1));
	LOCAL(&f.c, 1, crdt_model_flags(m_, &ops_, f.m_inbox, CRDT_OP_FLAGS_SET, LABEL, 1));
	sync_all(&f.c);
	for (size_t i = 0; i < 2; i++) {
		ck_assert(!crdt_model_has_message(f.c.r[i], f.m_inbox));
		ck_assert_uint_eq(count_rows(f.c.r[i], "INBOX"), 0);
	}
	crdt_cluster_free(&f.c);
}
END_TEST

/* Case 4: DELETE vs a concurrent APPEND into the mailbox: the new message
 * survives in the mailbox; what the delete saw is gone. */
START_TEST(case04_delete_vs_append)
{
	struct fixture f;
	setup(&f, 2);
	crdt_dot fresh;
	LOCAL(&f.c, 0, crdt_model_delete(m_, &ops_, f.work));
	ck_assert(!has_mailbox(f.c.r[0], "Work"));
	LOCAL(&f.c, 1, crdt_model_append(m_, &ops_, f.work, NULL, 0, NULL, 0, &fresh, NULL));
	sync_all(&f.c);
	for (size_t i = 0; i < 2; i++) {
		ck_assert(has_mailbox(f.c.r[i], "Work"));
		ck_assert_uint_eq(count_rows(f.c.r[i], "Work"), 1);
		ck_assert(find_row(f.c.r[i], "Work", fresh, NULL, NULL));
		ck_assert(!crdt_model_has_message(f.c.r[i], f.m_work));
	}
	/* A delete that saw everything removes the mailbox for good. */
	LOCAL(&f.c, 1, crdt_model_delete(m_, &ops_, f.work));
	sync_all(&f.c);
	ck_assert(!has_mailbox(f.c.r[0], "Work"));
	crdt_cluster_free(&f.c);
}
END_TEST

/* Case 5: RENAME vs a concurrent APPEND: the message is in the renamed mailbox. */
START_TEST(case05_rename_vs_append)
{
	struct fixture f;
	setup(&f, 2);
	crdt_dot fresh;
	LOCAL(&f.c, 0, crdt_model_rename(m_, &ops_, f.work, "Projects"));
	LOCAL(&f.c, 1, crdt_model_append(m_, &ops_, f.work, NULL, 0, NULL, 0, &fresh, NULL));
	sync_all(&f.c);
	for (size_t i = 0; i < 2; i++) {
		ck_assert(!has_mailbox(f.c.r[i], "Work"));
		ck_assert_uint_eq(count_rows(f.c.r[i], "Projects"), 2);
		ck_assert(find_row(f.c.r[i], "Projects", fresh, NULL, NULL));
	}
	crdt_cluster_free(&f.c);
}
END_TEST

/* Case 6: concurrent RENAME of one mailbox to two names: one name wins. */
START_TEST(case06_concurrent_rename)
{
	struct fixture f;
	setup(&f, 3);
	LOCAL(&f.c, 0, crdt_model_rename(m_, &ops_, f.work, "Alpha"));
	LOCAL(&f.c, 1, crdt_model_rename(m_, &ops_, f.work, "Beta"));
	sync_all(&f.c);
	int alpha = has_mailbox(f.c.r[2], "Alpha"), beta = has_mailbox(f.c.r[2], "Beta");
	ck_assert_int_eq(alpha + beta, 1);
	ck_assert(!has_mailbox(f.c.r[2], "Work"));
	ck_assert_uint_eq(count_rows(f.c.r[2], alpha ? "Alpha" : "Beta"), 1);
	/* The same GUID keeps its UIDVALIDITY whatever its name. */
	crdt_dot g = mbox_named(f.c.r[0], alpha ? "Alpha" : "Beta");
	ck_assert(crdt_dot_eq(g, f.work));
	crdt_cluster_free(&f.c);
}
END_TEST

/* Case 7: concurrent CREATE of one name: one mailbox holding both sides' messages. */
START_TEST(case07_concurrent_create)
{
	struct fixture f;
	setup(&f, 2);
	crdt_dot l0, l1, a, b;
	LOCAL(&f.c, 0, crdt_model_create(m_, &ops_, "Lists", 21, &l0));
	LOCAL(&f.c, 0, crdt_model_append(m_, &ops_, l0, NULL, 0, NULL, 0, &a, NULL));
	LOCAL(&f.c, 1, crdt_model_create(m_, &ops_, "Lists", 22, &l1));
	LOCAL(&f.c, 1, crdt_model_append(m_, &ops_, l1, NULL, 0, NULL, 0, &b, NULL));
	sync_all(&f.c);
	struct crdt_mailbox_info *mb;
	size_t n, lists = 0;
	ck_assert_int_eq(crdt_model_mailboxes(f.c.r[1], &mb, &n), 0);
	for (size_t k = 0; k < n; k++)
		lists += strcmp(mb[k].name, "Lists") == 0;
	crdt_mailboxes_free(mb, n);
	ck_assert_uint_eq(lists, 1);
	for (size_t i = 0; i < 2; i++) {
		ck_assert_uint_eq(count_rows(f.c.r[i], "Lists"), 2);
		ck_assert(find_row(f.c.r[i], "Lists", a, NULL, NULL));
		ck_assert(find_row(f.c.r[i], "Lists", b, NULL, NULL));
	}
	crdt_cluster_free(&f.c);
}
END_TEST

/* Case 8: RENAME onto a name concurrently created: one mailbox, nothing lost. */
START_TEST(case08_rename_onto_created)
{
	struct fixture f;
	setup(&f, 2);
	crdt_dot x, a;
	LOCAL(&f.c, 0, crdt_model_create(m_, &ops_, "X", 31, &x));
	LOCAL(&f.c, 0, crdt_model_append(m_, &ops_, x, FLAGGED, 1, NULL, 0, &a, NULL));
	LOCAL(&f.c, 1, crdt_model_rename(m_, &ops_, f.work, "X"));
	sync_all(&f.c);
	for (size_t i = 0; i < 2; i++) {
		ck_assert(!has_mailbox(f.c.r[i], "Work"));
		ck_assert_uint_eq(count_rows(f.c.r[i], "X"), 2);
		ck_assert(find_row(f.c.r[i], "X", a, NULL, NULL));
		ck_assert(find_row(f.c.r[i], "X", f.m_work, NULL, NULL));
	}
	crdt_cluster_free(&f.c);
}
END_TEST

static int subscribed(const crdt_model *m, const char *name)
{
	struct crdt_mailbox_info *mb;
	size_t n;
	int s = -1;
	ck_assert_int_eq(crdt_model_mailboxes(m, &mb, &n), 0);
	for (size_t k = 0; k < n; k++)
		if (strcmp(mb[k].name, name) == 0)
			s = mb[k].subscribed;
	crdt_mailboxes_free(mb, n);
	return s;
}

/* Case 9: SUBSCRIBE/UNSUBSCRIBE is an add-wins set of names. */
START_TEST(case09_subscriptions)
{
	struct fixture f;
	setup(&f, 2);
	LOCAL(&f.c, 0, crdt_model_subscribe(m_, &ops_, "Work", true));
	sync_all(&f.c);
	ck_assert_int_eq(subscribed(f.c.r[1], "Work"), 1);
	/* Concurrent re-subscribe and unsubscribe: subscribed. */
	LOCAL(&f.c, 0, crdt_model_subscribe(m_, &ops_, "Work", true));
	LOCAL(&f.c, 1, crdt_model_subscribe(m_, &ops_, "Work", false));
	sync_all(&f.c);
	ck_assert_int_eq(subscribed(f.c.r[1], "Work"), 1);
	/* An unsubscribe that saw every subscribe wins. */
	LOCAL(&f.c, 1, crdt_model_subscribe(m_, &ops_, "Work", false));
	sync_all(&f.c);
	ck_assert_int_eq(subscribed(f.c.r[0], "Work"), 0);
	crdt_cluster_free(&f.c);
}
END_TEST

/* Case 10: COPY/MOVE vs a concurrent EXPUNGE of the source: the copy survives. */
START_TEST(case10_copy_move_vs_expunge)
{
	struct fixture f;
	setup(&f, 2);
	crdt_dot extra, copied, moved;
	LOCAL(&f.c, 0, crdt_model_append(m_, &ops_, f.inbox, FLAGGED, 1, NULL, 0, &extra, NULL));
	sync_all(&f.c);
	LOCAL(&f.c, 0, crdt_model_copy(m_, &ops_, f.m_inbox, f.work, false, NULL, 0, &copied, NULL));
	LOCAL(&f.c, 0, crdt_model_copy(m_, &ops_, extra, f.work, true, NULL, 0, &moved, NULL));
	LOCAL(&f.c, 1, crdt_model_expunge(m_, &ops_, f.m_inbox));
	LOCAL(&f.c, 1, crdt_model_expunge(m_, &ops_, extra));
	sync_all(&f.c);
	for (size_t i = 0; i < 2; i++) {
		char *flags;
		ck_assert_uint_eq(count_rows(f.c.r[i], "INBOX"), 0);
		ck_assert_uint_eq(count_rows(f.c.r[i], "Work"), 3);
		ck_assert(find_row(f.c.r[i], "Work", copied, NULL, &flags));
		ck_assert_str_eq(flags, "\\Seen"); /* the copy kept the source's flags */
		free(flags);
		ck_assert(find_row(f.c.r[i], "Work", moved, NULL, &flags));
		ck_assert_str_eq(flags, "\\Flagged");
		free(flags);
	}
	crdt_cluster_free(&f.c);
}
END_TEST

/* Case 11: every op delivered many times in any order: no effect beyond the first. */
START_TEST(case11_redelivery)
{
	struct fixture f;
	setup(&f, 3);
	crdt_dot a;
	LOCAL(&f.c, 0, crdt_model_append(m_, &ops_, f.inbox, NULL, 0, NULL, 0, &a, NULL));
	LOCAL(&f.c, 1, crdt_model_flags(m_, &ops_, f.m_inbox, CRDT_OP_FLAGS_ADD, FLAGGED, 1));
	LOCAL(&f.c, 1, crdt_model_rename(m_, &ops_, f.work, "Done"));
	LOCAL(&f.c, 0, crdt_model_expunge(m_, &ops_, f.m_work));
	sync_all(&f.c);
	char *want;
	ck_assert_int_eq(crdt_model_describe(f.c.r[0], &want), 0);
	/* A fresh replica gets the whole log three times, newest first, then shuffled. */
	crdt_model *late;
	ck_assert_int_eq(crdt_model_new(&late, 0x999), 0);
	size_t n = f.c.log.n, applied = 0;
	unsigned seed = 7;
	for (int pass = 0; pass < 3; pass++) {
		for (size_t k = 0; k < n; k++) {
			size_t at = pass == 0 ? n - 1 - k : (size_t)(rand_r(&seed) % n);
			int rc = crdt_model_receive(late, &f.c.log.ops[at]);
			ck_assert(rc == 0 || rc == MCRDT_EPENDING || rc == MCRDT_EDUPLICATE);
			applied += rc == 0;
		}
	}
	for (size_t k = 0; k < n; k++)
		ck_assert_int_eq(crdt_model_receive(late, &f.c.log.ops[k]), MCRDT_EDUPLICATE);
	ck_assert_uint_eq(crdt_model_pending(late), 0);
	crdt_oplist claims = CRDT_OPLIST_INIT;
	ck_assert_int_eq(crdt_model_settle(late, &claims), 0);
	ck_assert_uint_eq(claims.n, 0); /* it never showed anything: no UID moves */
	char *got;
	ck_assert_int_eq(crdt_model_describe(late, &got), 0);
	ck_assert_str_eq(got, want);
	free(got);
	free(want);
	crdt_oplist_free(&claims);
	crdt_model_free(late);
	crdt_cluster_free(&f.c);
}
END_TEST

/* Case 12: a replica offline for months of ops replays them and converges. */
START_TEST(case12_long_offline)
{
	struct fixture f;
	setup(&f, 3);
	crdt_dot recent[64];
	size_t nrecent = 0;
	unsigned seed = 12;
	/* Replicas 0 and 1 keep working and syncing with each other; 2 is away. */
	for (int day = 0; day < 300; day++) {
		for (size_t i = 0; i < 2; i++) {
			crdt_dot g;
			LOCAL(&f.c, i, crdt_model_append(m_, &ops_, f.inbox, NULL, 0, NULL, 0, &g, NULL));
			recent[nrecent++ % 64] = g;
			crdt_dot pick = recent[(size_t)rand_r(&seed) % (nrecent < 64 ? nrecent : 64)];
			if (crdt_model_has_message(f.c.r[i], pick)) {
				if (rand_r(&seed) % 3 == 0)
					LOCAL(&f.c, i, crdt_model_expunge(m_, &ops_, pick));
				else
					LOCAL(&f.c, i, crdt_model_flags(m_, &ops_, pick, CRDT_OP_FLAGS_ADD, SEEN, 1));
			}
		}
		for (size_t k = 0; k < f.c.log.n; k++) {
			crdt_cluster_deliver(&f.c, 0, k);
			crdt_cluster_deliver(&f.c, 1, k);
		}
		ck_assert_int_eq(crdt_cluster_settle(&f.c, 0), 0);
		ck_assert_int_eq(crdt_cluster_settle(&f.c, 1), 0);
	}
	LOCAL(&f.c, 2, crdt_model_append(m_, &ops_, f.inbox, NULL, 0, NULL, 0, NULL, NULL));
	ck_assert_uint_gt(f.c.log.n, 1000);
	sync_all(&f.c);
	ck_assert_uint_gt(count_rows(f.c.r[2], "INBOX"), 100);
	crdt_cluster_free(&f.c);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("convergence");
	TCase *tc = tcase_create("cases");
	tcase_set_timeout(tc, 0);
	tcase_add_test(tc, case01_concurrent_append);
	tcase_add_test(tc, case02_concurrent_flags);
	tcase_add_test(tc, case03_expunge_vs_flag);
	tcase_add_test(tc, case04_delete_vs_append);
	tcase_add_test(tc, case05_rename_vs_append);
	tcase_add_test(tc, case06_concurrent_rename);
	tcase_add_test(tc, case07_concurrent_create);
	tcase_add_test(tc, case08_rename_onto_created);
	tcase_add_test(tc, case09_subscriptions);
	tcase_add_test(tc, case10_copy_move_vs_expunge);
	tcase_add_test(tc, case11_redelivery);
	tcase_add_test(tc, case12_long_offline);
	suite_add_tcase(s, tc);
	return run_suite(s, CK_FORK_GETENV);
}
