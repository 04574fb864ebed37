/*
 * tests/sync/test_replica.c — a replica on disk: reopened from its log, from
 * a snapshot plus the log's tail, with ops that wait for dependencies
 * across a restart, after compaction, and with a damaged snapshot.
 */
#include "tests/check_run.h"
#include "tests/crdt/util.h"

#include <stdio.h>
#include <sys/stat.h>
#include <unistd.h>

#include "sync/snapshot.h"

#define XXH_INLINE_ALL
#include <xxhash.h>

static char dir[64];

static void setup(void)
{
	snprintf(dir, sizeof dir, "/tmp/mcrdt-replica-XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(dir));
}

static void teardown(void)
{
	char cmd[128];
	snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
	ck_assert_int_eq(system(cmd), 0);
}

static char *describe(const crdt_model *m)
{
	char *d;
	ck_assert_int_eq(crdt_model_describe(m, &d), 0);
	return d;
}

/* Logs what a local call issued, then settles and logs the claims. */
static void commit(crdt_model *m, sync_log *log, crdt_oplist *ops)
{
	crdt_oplist claims = CRDT_OPLIST_INIT;
	ck_assert_int_eq(crdt_model_settle(m, &claims), 0);
	ck_assert_int_eq(sync_log_append_batch(log, ops->ops, ops->n, NULL), 0);
	ck_assert_int_eq(sync_log_append_batch(log, claims.ops, claims.n, NULL), 0);
	crdt_oplist_free(ops);
	crdt_oplist_free(&claims);
}

static void reopen(crdt_model **m, sync_log **log)
{
	crdt_model_free(*m);
	sync_log_close(*log);
	ck_assert_msg(sync_replica_open(dir, 0x77, NULL, m, log, NULL, NULL) == 0, "open: %s", mcrdt_error_last());
}

START_TEST(reopen_gives_the_same_replica)
{
	crdt_model *m;
	sync_log *log;
	ck_assert_int_eq(sync_replica_open(dir, 0x77, NULL, &m, &log, NULL, NULL), 0);
	crdt_oplist ops = CRDT_OPLIST_INIT;
	crdt_dot inbox, g[50];
	const char *seen[] = { "\\Seen" };
	ck_assert_int_eq(crdt_model_create(m, &ops, "INBOX", 3, &inbox), 0);
	for (int i = 0; i < 50; i++)
		ck_assert_int_eq(crdt_model_append(m, &ops, inbox, i % 2 ? seen : NULL, i % 2, NULL, 0, &g[i], NULL), 0);
	for (int i = 0; i < 50; i += 3)
		ck_assert_int_eq(crdt_model_expunge(m, &ops, g[i]), 0);
	commit(m, log, &ops);
	char *before = describe(m);
	reopen(&m, &log);
	char *after = describe(m);
	ck_assert_str_eq(before, after);
	free(after);
	/* A snapshot, more changes, and the reopened replica matches again. */
	ck_assert_int_eq(sync_snapshot_write(dir, m, sync_log_next(log)), 0);
	ck_assert_int_eq(crdt_model_subscribe(m, &ops, "INBOX", true), 0);
	ck_assert_int_eq(crdt_model_flags(m, &ops, g[1], CRDT_OP_FLAGS_REMOVE, seen, 1), 0);
	commit(m, log, &ops);
	free(before);
	before = describe(m);
	reopen(&m, &log);
	after = describe(m);
	ck_assert_str_eq(before, after);
	free(before);
	free(after);
	crdt_model_free(m);
	sync_log_close(log);
}
END_TEST

/* A peer's op that arrives before its dependencies is logged, survives a
 * restart, and applies once the dependency arrives. */
START_TEST(waiting_ops_survive_a_restart)
{
	crdt_cluster peer;
	ck_assert_int_eq(crdt_cluster_init(&peer, 1, 0x88), 0);
	crdt_dot inbox;
	LOCAL(&peer, 0, crdt_model_create(m_, &ops_, "INBOX", 5, &inbox));
	LOCAL(&peer, 0, crdt_model_append(m_, &ops_, inbox, NULL, 0, NULL, 0, NULL, NULL));
	crdt_model *m;
	sync_log *log;
	ck_assert_int_eq(sync_replica_open(dir, 0x77, NULL, &m, &log, NULL, NULL), 0);
	/* The append arrives first: it waits, and the log keeps it. */
	ck_assert_int_eq(crdt_model_receive(m, &peer.log.ops[1]), MCRDT_EPENDING);
	ck_assert_int_eq(sync_log_append(log, &peer.log.ops[1], NULL), 0);
	reopen(&m, &log);
	ck_assert_uint_eq(crdt_model_pending(m), 1);
	/* A snapshot carries it too. */
	ck_assert_int_eq(sync_snapshot_write(dir, m, sync_log_next(log)), 0);
	reopen(&m, &log);
	ck_assert_uint_eq(crdt_model_pending(m), 1);
	ck_assert_int_eq(crdt_model_receive(m, &peer.log.ops[0]), 0);
	ck_assert_int_eq(sync_log_append(log, &peer.log.ops[0], NULL), 0);
	ck_assert_uint_eq(crdt_model_pending(m), 0);
	crdt_oplist none = CRDT_OPLIST_INIT;
	ck_assert_int_eq(crdt_model_settle(m, &none), 0);
	crdt_oplist_free(&none);
	ck_assert_uint_eq(count_rows(m, "INBOX"), 1);
	crdt_model_free(m);
	sync_log_close(log);
	crdt_cluster_free(&peer);
}
END_TEST

START_TEST(compaction_drops_only_covered_segments)
{
	char logdir[128];
	snprintf(logdir, sizeof logdir, "%s/log", dir);
	struct sync_log_opts o = SYNC_LOG_OPTS_INIT;
	o.segment_bytes = 4096;
	o.no_fsync = true;
	sync_log *log;
	ck_assert_int_eq(sync_log_open(&log, logdir, &o, NULL), 0);
	crdt_model *m;
	ck_assert_int_eq(crdt_model_new(&m, 0x77), 0);
	crdt_oplist ops = CRDT_OPLIST_INIT;
	crdt_dot inbox;
	ck_assert_int_eq(crdt_model_create(m, &ops, "INBOX", 3, &inbox), 0);
	for (int i = 0; i < 2000; i++)
		ck_assert_int_eq(crdt_model_append(m, &ops, inbox, NULL, 0, NULL, 0, NULL, NULL), 0);
	for (size_t i = 0; i < ops.n; i++)
		ck_assert_int_eq(sync_log_append(log, &ops.ops[i], NULL), 0);
	uint64_t next = sync_log_next(log);
	unsigned removed;
	ck_assert_int_eq(sync_log_compact(log, 1000, &removed), 0);
	ck_assert_uint_gt(removed, 0);
	sync_log_close(log);
	ck_assert_int_eq(sync_log_open(&log, logdir, &o, NULL), 0);
	ck_assert_uint_eq(sync_log_next(log), next);
	ck_assert_int_eq(sync_log_replay(log, 0, NULL, NULL), MCRDT_ENOTFOUND);
	crdt_oplist_free(&ops);
	crdt_model_free(m);
	sync_log_close(log);
}
END_TEST

START_TEST(a_damaged_snapshot_is_refused_untouched)
{
	crdt_model *m;
	sync_log *log;
	ck_assert_int_eq(sync_replica_open(dir, 0x77, NULL, &m, &log, NULL, NULL), 0);
	crdt_oplist ops = CRDT_OPLIST_INIT;
	ck_assert_int_eq(crdt_model_create(m, &ops, "INBOX", 3, NULL), 0);
	commit(m, log, &ops);
	ck_assert_int_eq(sync_snapshot_write(dir, m, sync_log_next(log)), 0);
	crdt_model_free(m);
	sync_log_close(log);
	char path[128];
	snprintf(path, sizeof path, "%s/snapshot", dir);
	FILE *f = fopen(path, "r+");
	ck_assert_ptr_nonnull(f);
	fseek(f, 45, SEEK_SET);
	int c = fgetc(f);
	fseek(f, 45, SEEK_SET);
	fputc(c ^ 0x10, f);
	fclose(f);
	struct stat before, after;
	ck_assert_int_eq(stat(path, &before), 0);
	ck_assert_int_eq(sync_replica_open(dir, 0x77, NULL, &m, &log, NULL, NULL), MCRDT_ECORRUPT);
	ck_assert_ptr_nonnull(strstr(mcrdt_error_last(), "checksum"));
	ck_assert_int_eq(stat(path, &after), 0);
	ck_assert_int_eq(before.st_size, after.st_size);
	ck_assert_int_eq(sync_replica_open(dir, 0x78, NULL, &m, &log, NULL, NULL), MCRDT_ECORRUPT);
}
END_TEST

/* Regression: a log cut below the snapshot (repair, a lost segment) must
 * not take appends numbered where no replay looks. */
START_TEST(a_log_shorter_than_its_snapshot_is_refused)
{
	crdt_model *m;
	sync_log *log;
	ck_assert_int_eq(sync_replica_open(dir, 0x77, NULL, &m, &log, NULL, NULL), 0);
	crdt_oplist ops = CRDT_OPLIST_INIT;
	crdt_dot inbox;
	ck_assert_int_eq(crdt_model_create(m, &ops, "INBOX", 3, &inbox), 0);
	for (int i = 0; i < 10; i++)
		ck_assert_int_eq(crdt_model_append(m, &ops, inbox, NULL, 0, NULL, 0, NULL, NULL), 0);
	commit(m, log, &ops);
	ck_assert_int_eq(sync_snapshot_write(dir, m, sync_log_next(log)), 0);
	crdt_model_free(m);
	sync_log_close(log);
	char seg[128];
	snprintf(seg, sizeof seg, "%s/log/0000000000000000.log", dir);
	ck_assert_int_eq(truncate(seg, 32), 0);
	ck_assert_int_eq(sync_replica_open(dir, 0x77, NULL, &m, &log, NULL, NULL), MCRDT_ECORRUPT);
	ck_assert_ptr_nonnull(strstr(mcrdt_error_last(), "snapshot covers"));
}
END_TEST

/* Regression (found by fuzz_segment): a header whose first index disagrees
 * with its file name is damage, refused at open and cut by repair. */
START_TEST(a_header_that_disagrees_with_its_name_is_refused)
{
	char logdir[128], seg[160];
	snprintf(logdir, sizeof logdir, "%s/log", dir);
	snprintf(seg, sizeof seg, "%s/0000000000000000.log", logdir);
	sync_log *log;
	ck_assert_int_eq(sync_log_open(&log, logdir, NULL, NULL), 0);
	sync_log_close(log);
	FILE *f = fopen(seg, "r+");
	ck_assert_ptr_nonnull(f);
	uint8_t h[32];
	ck_assert_uint_eq(fread(h, 1, 32, f), 32);
	h[23] = 0x64; /* first index 0x64 << 56 */
	uint64_t sum = XXH3_64bits(h, 24);
	for (int i = 0; i < 8; i++)
		h[24 + i] = (uint8_t)(sum >> (8 * i));
	fseek(f, 0, SEEK_SET);
	ck_assert_uint_eq(fwrite(h, 1, 32, f), 32);
	fclose(f);
	ck_assert_int_eq(sync_log_open(&log, logdir, NULL, NULL), MCRDT_ECORRUPT);
	ck_assert_ptr_nonnull(strstr(mcrdt_error_last(), "file name"));
	struct sync_log_report rep;
	ck_assert_int_eq(sync_log_repair(logdir, &rep), 0);
	ck_assert_uint_eq(rep.records, 0);
	ck_assert_int_eq(sync_log_open(&log, logdir, NULL, NULL), 0);
	ck_assert_uint_eq(sync_log_next(log), 0);
	sync_log_close(log);
}
END_TEST

static int count_op(void *ctx, const crdt_op *op, uint64_t index)
{
	(void)op;
	(void)index;
	(*(size_t *)ctx)++;
	return 0;
}

/* Compaction drops only history every peer holds: the stable prefix ends
 * at the first op some peer lacks. */
START_TEST(compaction_keeps_what_a_peer_lacks)
{
	char logdir[128];
	snprintf(logdir, sizeof logdir, "%s/log", dir);
	struct sync_log_opts o = SYNC_LOG_OPTS_INIT;
	o.segment_bytes = 4096;
	o.no_fsync = true;
	crdt_cluster c;
	ck_assert_int_eq(crdt_cluster_init(&c, 3, 0x90), 0);
	crdt_dot inbox;
	LOCAL(&c, 0, crdt_model_create(m_, &ops_, "INBOX", 1, &inbox));
	for (int i = 0; i < 600; i++)
		LOCAL(&c, 0, crdt_model_append(m_, &ops_, inbox, NULL, 0, NULL, 0, NULL, NULL));
	sync_log *log;
	ck_assert_int_eq(sync_log_open(&log, logdir, &o, NULL), 0);
	for (size_t k = 0; k < c.log.n; k++) /* one by one: segments roll between appends */
		ck_assert_int_eq(sync_log_append(log, &c.log.ops[k], NULL), 0);
	/* Peer 1 has everything; peer 2 has seen the first 400 ops. */
	for (size_t k = 0; k < c.log.n; k++)
		crdt_cluster_deliver(&c, 1, k);
	for (size_t k = 0; k < 400; k++)
		crdt_cluster_deliver(&c, 2, k);
	crdt_vv v1 = CRDT_VV_INIT, v2 = CRDT_VV_INIT;
	ck_assert_int_eq(crdt_model_context(c.r[1], &v1), 0);
	ck_assert_int_eq(crdt_model_context(c.r[2], &v2), 0);
	const crdt_vv *peers[] = { &v1, &v2 };
	uint64_t upto;
	ck_assert_int_eq(sync_log_stable_prefix(log, peers, 2, &upto), 0);
	ck_assert_uint_eq(upto, 400);
	unsigned removed;
	ck_assert_int_eq(sync_log_compact(log, upto, &removed), 0);
	ck_assert_uint_gt(removed, 0);
	/* What peer 2 still needs is all there. */
	size_t n = 0;
	ck_assert_int_eq(sync_log_replay(log, 400, count_op, &n), 0);
	ck_assert_uint_eq(n, c.log.n - 400);
	crdt_vv_free(&v1);
	crdt_vv_free(&v2);
	sync_log_close(log);
	crdt_cluster_free(&c);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("replica");
	TCase *tc = tcase_create("core");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, reopen_gives_the_same_replica);
	tcase_add_test(tc, waiting_ops_survive_a_restart);
	tcase_add_test(tc, compaction_drops_only_covered_segments);
	tcase_add_test(tc, a_damaged_snapshot_is_refused_untouched);
	tcase_add_test(tc, a_log_shorter_than_its_snapshot_is_refused);
	tcase_add_test(tc, a_header_that_disagrees_with_its_name_is_refused);
	tcase_add_test(tc, compaction_keeps_what_a_peer_lacks);
	suite_add_tcase(s, tc);
	return run_suite(s, CK_FORK_GETENV);
}
