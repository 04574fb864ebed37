/*
 * bench/bench_crdt.c — the crdt/ layer on a 100,000-message mailbox.
 *
 * Figures: ops applied per second (appends, flag changes, expunges) as a
 * replica receives another's ops; the same ops issued locally; merge time
 * of two replicas that each appended 100,000 messages concurrently (every
 * UID clashes, so it includes settling them); CRDT metadata bytes per
 * message. Baseline, same run: inserting the same number of keys into the
 * engine's hash table, the floor under any index update.
 *
 * Usage: bench_crdt [N]   (N messages, default 100000)
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bench/bench.h"
#include "common/hashmap.h"
#include "crdt/model.h"
#include "mcrdt/errors.h"

static void die(const char *what, int rc)
{
	fprintf(stderr, "bench_crdt: %s: %s (%s)\n", what, mcrdt_error_last(), mcrdt_strerror(rc));
	exit(1);
}

/* Applies ops[from, to) to m; returns ops per second. */
static double apply_all(crdt_model *m, const crdt_oplist *ops, size_t from, size_t to)
{
	double t0 = now();
	for (size_t k = from; k < to; k++) {
		int rc = crdt_model_receive(m, &ops->ops[k]);
		if (rc)
			die("receive", rc);
	}
	crdt_oplist claims = CRDT_OPLIST_INIT;
	int rc = crdt_model_settle(m, &claims);
	if (rc)
		die("settle", rc);
	double dt = now() - t0;
	crdt_oplist_free(&claims);
	return (double)(to - from) / dt;
}

static void row(const char *what, double ops_per_s, double baseline)
{
	printf("  %-34s %12.0f ops/s   %5.2fx of baseline\n", what, ops_per_s, ops_per_s / baseline);
}

int main(int argc, char **argv)
{
	size_t n = argc > 1 ? strtoul(argv[1], NULL, 10) : 100000;
	int rc;

	/* Baseline: n inserts into the hash table the model uses. */
	struct hmap h;
	hmap_init(&h);
	double t0 = now();
	for (uint64_t k = 1; k <= n; k++)
		if (hmap_put(&h, k * 0x9e3779b97f4a7c15u >> 1, k))
			die("hmap", MCRDT_ENOMEM);
	double base = (double)n / (now() - t0);
	hmap_free(&h);

	crdt_model *a, *b;
	if ((rc = crdt_model_new(&a, 0xa)) || (rc = crdt_model_new(&b, 0xb)))
		die("new", rc);
	crdt_oplist ops = CRDT_OPLIST_INIT;
	crdt_dot inbox;
	if ((rc = crdt_model_create(a, &ops, "INBOX", 1, &inbox)))
		die("create", rc);

	/* Local issue path: append, flag, then (later) expunge on replica a. */
	crdt_dot *guids = malloc(n * sizeof *guids);
	if (!guids)
		die("malloc", MCRDT_ENOMEM);
	t0 = now();
	for (size_t i = 0; i < n; i++)
		if ((rc = crdt_model_append(a, &ops, inbox, NULL, 0, NULL, 0, &guids[i], NULL)))
			die("append", rc);
	double local_append = (double)n / (now() - t0);
	const char *seen[] = { "\\Seen" };
	size_t flags_from = ops.n;
	t0 = now();
	for (size_t i = 0; i < n; i++)
		if ((rc = crdt_model_flags(a, &ops, guids[i], CRDT_OP_FLAGS_ADD, seen, 1)))
			die("flags", rc);
	double local_flags = (double)n / (now() - t0);
	crdt_oplist none = CRDT_OPLIST_INIT;
	if ((rc = crdt_model_settle(a, &none)))
		die("settle", rc);
	size_t bytes = crdt_model_memory(a);

	/* Remote apply path: replica b receives a's ops. */
	printf("crdt/ on a %zu-message mailbox (baseline: %zu hash-table inserts, %.0f/s)\n", n, n, base);
	row("apply appends (remote)", apply_all(b, &ops, 0, flags_from), base);
	row("apply flag changes (remote)", apply_all(b, &ops, flags_from, ops.n), base);
	size_t expunge_from = ops.n;
	t0 = now();
	for (size_t i = 0; i < n; i++)
		if ((rc = crdt_model_expunge(a, &ops, guids[i])))
			die("expunge", rc);
	double local_expunge = (double)n / (now() - t0);
	row("apply expunges (remote)", apply_all(b, &ops, expunge_from, ops.n), base);
	row("issue appends (local)", local_append, base);
	row("issue flag changes (local)", local_flags, base);
	row("issue expunges (local)", local_expunge, base);
	printf("  metadata: %zu bytes for %zu messages with one flag = %.1f bytes/message\n", bytes, n,
	       (double)bytes / (double)n);
	crdt_model_free(a);
	crdt_model_free(b);
	crdt_oplist_free(&ops);

	/* Merge: two replicas that each appended n messages while apart. */
	crdt_oplist oa = CRDT_OPLIST_INIT, ob = CRDT_OPLIST_INIT;
	if ((rc = crdt_model_new(&a, 0xa)) || (rc = crdt_model_new(&b, 0xb)))
		die("new", rc);
	if ((rc = crdt_model_create(a, &oa, "INBOX", 1, &inbox)) || (rc = crdt_model_receive(b, &oa.ops[0])))
		die("create", rc);
	for (size_t i = 0; i < n; i++) {
		if ((rc = crdt_model_append(a, &oa, inbox, seen, 1, NULL, 0, NULL, NULL)) ||
		    (rc = crdt_model_append(b, &ob, inbox, NULL, 0, NULL, 0, NULL, NULL)))
			die("append", rc);
	}
	if ((rc = crdt_model_settle(a, &none)) || (rc = crdt_model_settle(b, &none)))
		die("settle", rc);
	crdt_oplist ca = CRDT_OPLIST_INIT, cb = CRDT_OPLIST_INIT;
	t0 = now();
	for (size_t k = 1; k < oa.n; k++)
		if ((rc = crdt_model_receive(b, &oa.ops[k])))
			die("receive", rc);
	for (size_t k = 0; k < ob.n; k++)
		if ((rc = crdt_model_receive(a, &ob.ops[k])))
			die("receive", rc);
	if ((rc = crdt_model_settle(a, &ca)) || (rc = crdt_model_settle(b, &cb)))
		die("settle", rc);
	/* The re-claims travel too; then both sides agree. */
	for (size_t k = 0; k < ca.n; k++)
		if ((rc = crdt_model_receive(b, &ca.ops[k])))
			die("receive", rc);
	for (size_t k = 0; k < cb.n; k++)
		if ((rc = crdt_model_receive(a, &cb.ops[k])))
			die("receive", rc);
	crdt_oplist fa = CRDT_OPLIST_INIT, fb = CRDT_OPLIST_INIT;
	if ((rc = crdt_model_settle(a, &fa)) || (rc = crdt_model_settle(b, &fb)))
		die("settle", rc);
	double merge = now() - t0;
	char *da, *db;
	if ((rc = crdt_model_describe(a, &da)) || (rc = crdt_model_describe(b, &db)))
		die("describe", rc);
	int same = strcmp(da, db) == 0;
	printf("  merge of two %zu-message replicas: %.3f s (%zu ops each way, %zu UID re-claims, "
	       "%zu messages after, %s; baseline for %zu inserts: %.3f s)\n",
	       n, merge, n, ca.n + cb.n + fa.n + fb.n, crdt_model_messages(a),
	       same ? "identical" : "DIFFERENT", 2 * n, 2.0 * (double)n / base);
	free(da);
	free(db);
	crdt_oplist_free(&oa);
	crdt_oplist_free(&ob);
	crdt_oplist_free(&ca);
	crdt_oplist_free(&cb);
	crdt_oplist_free(&fa);
	crdt_oplist_free(&fb);
	crdt_model_free(a);
	crdt_model_free(b);
	free(guids);
	return same ? 0 : 1;
}
