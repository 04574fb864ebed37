/*
 * tests/sync/crashwriter.c — the victim of test_log's crash test.
 *
 *     crashwriter DIR N [SEGMENT_BYTES]
 *
 * Opens the log in DIR (durable appends), rebuilds replica 7 of the mail
 * model from it, then makes up to N local changes (appends with metadata,
 * flag changes, expunges), logging their ops alternately one append per op
 * and as one batch of several changes (a few, now and then dozens). After every append that returned it
 * prints "INDEX COUNTER" (the last record's index and op counter) and
 * flushes stdout, so that every line the test reads names an acknowledged
 * record. Errors go to stderr with a non-zero exit. The test kills it.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "crdt/model.h"
#include "mcrdt/errors.h"
#include "sync/log.h"

#define REPLICA 7
#define RING 256

static void die(const char *what, int rc)
{
	fprintf(stderr, "crashwriter: %s: %s (%s)\n", what, mcrdt_error_last(), mcrdt_strerror(rc));
	exit(1);
}

static int rebuild(void *ctx, const crdt_op *op, uint64_t index)
{
	int rc = crdt_model_receive(ctx, op);
	if (rc) {
		fprintf(stderr, "crashwriter: record %" PRIu64 " does not apply: %s\n", index, mcrdt_error_last());
		exit(3);
	}
	return 0;
}

static void ack(uint64_t index, const crdt_op *op)
{
	printf("%" PRIu64 " %" PRIu64 "\n", index, op->id.counter);
	fflush(stdout);
}

/* Logs ops one append each. */
static void log_singly(sync_log *log, crdt_oplist *ops)
{
	for (size_t k = 0; k < ops->n; k++) {
		uint64_t index;
		int rc = sync_log_append(log, &ops->ops[k], &index);
		if (rc)
			die("append", rc);
		ack(index, &ops->ops[k]);
	}
	crdt_oplist_free(ops);
}

static void log_batch(sync_log *log, crdt_oplist *ops)
{
	if (ops->n == 0)
		return;
	uint64_t first;
	int rc = sync_log_append_batch(log, ops->ops, ops->n, &first);
	if (rc)
		die("append batch", rc);
	ack(first + ops->n - 1, &ops->ops[ops->n - 1]);
	crdt_oplist_free(ops);
}

struct state {
	crdt_model *m;
	crdt_dot inbox;
	crdt_dot ring[RING]; /* recent messages */
	size_t nring, total;
	unsigned seed;
};

/* One local change; its ops (and any claims settling makes) go to out. */
static void change(struct state *s, crdt_oplist *out)
{
	static const char *flags[] = { "\\Seen", "\\Flagged", "\\Answered", "$Label1", "$Junk" };
	unsigned r = (unsigned)rand_r(&s->seed);
	crdt_dot msg = s->ring[r / 7 % (s->nring ? s->nring : 1)];
	bool live = s->nring && crdt_model_has_message(s->m, msg);
	int rc;
	if (!live || r % 10 < 5) {
		char meta[200];
		size_t len = r / 11 % sizeof meta;
		memset(meta, 'a' + (int)(r % 26), len);
		crdt_dot g;
		rc = crdt_model_append(s->m, out, s->inbox, flags + r % 3, r % 3, len ? meta : NULL, len, &g, NULL);
		s->ring[s->total++ % RING] = g;
		s->nring = s->total < RING ? s->total : RING;
	} else if (r % 10 < 9) {
		enum crdt_op_type t = r % 10 == 5 ? CRDT_OP_FLAGS_REMOVE : r % 10 == 6 ? CRDT_OP_FLAGS_SET : CRDT_OP_FLAGS_ADD;
		rc = crdt_model_flags(s->m, out, msg, t, flags + r / 3 % 4, 1 + r % 2);
	} else {
		rc = crdt_model_expunge(s->m, out, msg);
	}
	if (rc)
		die("local change", rc);
	if ((rc = crdt_model_settle(s->m, out)))
		die("settle", rc);
}

int main(int argc, char **argv)
{
	if (argc < 3) {
		fprintf(stderr, "usage: crashwriter DIR N [SEGMENT_BYTES]\n");
		return 2;
	}
	unsigned long long n = strtoull(argv[2], NULL, 10);
	struct sync_log_opts opts = SYNC_LOG_OPTS_INIT;
	if (argc > 3)
		opts.segment_bytes = strtoull(argv[3], NULL, 10);
	sync_log *log;
	int rc = sync_log_open(&log, argv[1], &opts, NULL);
	if (rc)
		die("open", rc);
	struct state s = { 0 };
	if ((rc = crdt_model_new(&s.m, REPLICA)))
		die("model", rc);
	if ((rc = sync_log_replay(log, 0, rebuild, s.m)))
		die("replay", rc);
	s.seed = (unsigned)sync_log_next(log) * 2654435761u;
	crdt_oplist ops = CRDT_OPLIST_INIT;
	if ((rc = crdt_model_settle(s.m, &ops)))
		die("settle", rc);
	if (crdt_model_find(s.m, "INBOX", &s.inbox) != 0 &&
	    (rc = crdt_model_create(s.m, &ops, "INBOX", 1, &s.inbox)))
		die("create", rc);
	log_singly(log, &ops);
	/* Recent messages: the live ones the log left. */
	struct crdt_row *rows;
	size_t nrows;
	if ((rc = crdt_model_rows(s.m, s.inbox, &rows, &nrows)))
		die("rows", rc);
	for (size_t k = nrows > RING ? nrows - RING : 0; k < nrows; k++)
		s.ring[s.total++ % RING] = rows[k].guid;
	s.nring = s.total < RING ? s.total : RING;
	crdt_rows_free(rows, nrows);

	for (unsigned long long i = 0; i < n; i++) {
		if (i % 2 == 0) {
			change(&s, &ops);
			log_singly(log, &ops);
		} else {
			/* Mostly a few changes; now and then a few dozen (a
			 * write of some pages, often past a segment's end). */
			unsigned r = (unsigned)rand_r(&s.seed);
			unsigned changes = r % 8 == 0 ? 20 + r / 8 % 60 : 2 + r / 8 % 5;
			for (unsigned k = 0; k < changes; k++)
				change(&s, &ops);
			log_batch(log, &ops);
		}
	}
	sync_log_close(log);
	crdt_model_free(s.m);
	return 0;
}
