/*
 * bench/bench_crdt.c — the crdt/ layer on a 100,000-message mailbox.
 *
 * Figures: ops applied per second (appends, flag changes, expunges) as a
 * replica receives another's ops; the same ops issued locally; merge time
 * of two replicas that each appended 100,000 messages concurrently (every
 * UID clashes, so it includes settling them); CRDT metadata bytes per
 * message, each message carrying a realistic 56-byte meta (a Maildir base
 * name and 8 bytes, what the store keeps); rows per second walked by
 * crdt_model_each over the whole view (UID order as appended, and after the
 * merge's re-claims) and single-UID lookups, against crdt_model_rows.
 * Baseline, same run: inserting the same number of keys into the engine's
 * hash table, the floor under any index update.
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

/* Message i's meta: a Maildir base name in 48 bytes, then 8 bytes (the
 * store's size and flags word, say). 56 bytes. */
#define META_LEN 56
static void meta_of(uint8_t *meta, size_t i)
{
	char name[64]; /* 48 characters for i below 8e9 */
	snprintf(name, sizeof name, "%010zu.M%06zuP12345Q1.mx.example.org,S=4096",
		 (size_t)1763791234 + i % 1000000000, i % 1000000);
	memcpy(meta, name, 48);
	uint64_t w = 4096 + i;
	memcpy(meta + 48, &w, 8);
}

static int count_row(void *ctx, const struct crdt_msgview *v)
{
	size_t *n = ctx;
	*n += v->nflags + (v->meta_len == META_LEN);
	return 0;
}

/* crdt_model_each against crdt_model_rows on the view of mbox (n rows). */
static void walk_rows(const crdt_model *m, crdt_dot mbox, size_t n, const char *label, double base)
{
	size_t seen = 0, nrows;
	struct crdt_row *rows;
	double t0 = now();
	int rc = crdt_model_each(m, mbox, 1, UINT32_MAX, count_row, &seen);
	double each = (double)n / (now() - t0);
	if (rc)
		die("each", rc);
	t0 = now();
	if ((rc = crdt_model_rows(m, mbox, &rows, &nrows)))
		die("rows", rc);
	double all = (double)n / (now() - t0);
	uint32_t top = nrows ? rows[nrows - 1].uid : 0;
	crdt_rows_free(rows, nrows);
	char what[64];
	snprintf(what, sizeof what, "each 1:* rows (%s)", label);
	row(what, each, base);
	printf("  %-34s %12.0f rows/s   each is %.1fx faster\n", "  crdt_model_rows, same view", all,
	       each / all);
	/* Single UIDs spread over the view, as a client's FETCH of one message. */
	size_t probes = n < 100000 ? n : 100000;
	t0 = now();
	for (size_t k = 0; k < probes; k++) {
		uint32_t uid = (uint32_t)(1 + (k * 2654435761u) % (top ? top : 1));
		if ((rc = crdt_model_each(m, mbox, uid, uid, count_row, &seen)))
			die("each", rc);
	}
	snprintf(what, sizeof what, "each single UID (%s)", label);
	row(what, (double)probes / (now() - t0), base);
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
	uint8_t meta[META_LEN];
	t0 = now();
	for (size_t i = 0; i < n; i++) {
		meta_of(meta, i);
		if ((rc = crdt_model_append(a, &ops, inbox, NULL, 0, meta, sizeof meta, &guids[i], NULL)))
			die("append", rc);
	}
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
	walk_rows(a, inbox, n, "appended order", base);
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
	printf("  metadata: %zu bytes for %zu messages with one flag and %d bytes of meta = %.1f "
	       "bytes/message (target: under 200)\n",
	       bytes, n, META_LEN, (double)bytes / (double)n);
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
		meta_of(meta, i);
		if ((rc = crdt_model_append(a, &oa, inbox, seen, 1, meta, sizeof meta, NULL, NULL)) ||
		    (rc = crdt_model_append(b, &ob, inbox, NULL, 0, meta, sizeof meta, NULL, NULL)))
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
	walk_rows(a, inbox, crdt_model_messages(a), "after the merge", base);
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
