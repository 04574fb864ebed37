/*
 * tests/crdt/sim.c — the randomized convergence simulator. See sim.h.
 */
#include "tests/crdt/sim.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "tests/crdt/cluster.h"
#include "mcrdt/errors.h"

static const char *const NAMES[] = { "INBOX", "Work", "Lists", "Work/2026", "\xc3\x84rger", "Trash" };
static const char *const FLAGS[] = { "\\Seen", "\\Flagged", "\\Answered", "\\Deleted", "\\Draft" };
static const char *const KEYWORDS[] = { "$Junk", "$Label1", "todo" };
#define NNAMES (sizeof NAMES / sizeof *NAMES)
#define MAX_ROUNDS 64

static const char *const KIND_NAMES[SIM_KINDS] = {
	"append", "flag+", "flag-", "flag=", "keyword+", "keyword-", "expunge", "copy", "move",
	"create", "delete", "rename", "subscribe", "unsubscribe", "deliver", "partition",
};

static uint64_t rng_next(uint64_t *s)
{
	/* splitmix64: small, fast, good enough to drive schedules */
	uint64_t z = (*s += UINT64_C(0x9e3779b97f4a7c15));
	z = (z ^ (z >> 30)) * UINT64_C(0xbf58476d1ce4e5b9);
	z = (z ^ (z >> 27)) * UINT64_C(0x94d049bb133111eb);
	return z ^ (z >> 31);
}

int sim_generate(struct sim_schedule *s, uint64_t seed)
{
	uint64_t r = seed;
	s->seed = seed;
	s->nreplicas = 2 + (unsigned)(rng_next(&r) % 4);
	s->nsteps = 20 + (size_t)(rng_next(&r) % 140);
	s->steps = calloc(s->nsteps, sizeof *s->steps);
	if (!s->steps)
		return -1;
	/* Sometimes one replica stays away for most of the schedule. */
	size_t away_from = SIZE_MAX, away_to = 0;
	unsigned away = 0;
	if (rng_next(&r) % 3 == 0) {
		away = (unsigned)(rng_next(&r) % s->nreplicas);
		away_from = (size_t)(rng_next(&r) % (s->nsteps / 3 + 1));
		away_to = away_from + s->nsteps / 2;
	}
	for (size_t i = 0; i < s->nsteps; i++) {
		struct sim_step *st = &s->steps[i];
		uint64_t roll = rng_next(&r) % 100;
		st->replica = (uint8_t)(rng_next(&r) % s->nreplicas);
		st->a = (uint32_t)rng_next(&r);
		st->b = (uint32_t)rng_next(&r);
		st->c = (uint32_t)rng_next(&r);
		if (i == away_from || i == away_to) {
			st->kind = SIM_PARTITION;
			st->replica = (uint8_t)away;
		} else if (roll < 38) {
			st->kind = SIM_DELIVER;
		} else if (roll < 41) {
			st->kind = SIM_PARTITION;
		} else if (roll < 58) {
			st->kind = SIM_APPEND;
		} else {
			static const uint8_t other[] = { SIM_FLAG_ADD, SIM_FLAG_REMOVE, SIM_FLAG_SET,
							 SIM_KW_ADD, SIM_KW_REMOVE, SIM_EXPUNGE,
							 SIM_COPY, SIM_MOVE, SIM_CREATE, SIM_DELETE,
							 SIM_RENAME, SIM_SUBSCRIBE, SIM_UNSUBSCRIBE,
							 SIM_FLAG_ADD, SIM_EXPUNGE, SIM_MOVE };
			st->kind = other[rng_next(&r) % sizeof other];
		}
	}
	return 0;
}

void sim_schedule_free(struct sim_schedule *s)
{
	free(s->steps);
	s->steps = NULL;
	s->nsteps = 0;
}

/* ------------------------------------------------------------------ */
/* what each replica has shown: the invariants' memory                 */

struct shown {
	uint32_t uid;
	crdt_dot guid;
	uint64_t flags; /* hash of the flags text (prev only) */
};

struct space_hist {
	crdt_dot space;
	struct shown *ever, *prev;
	size_t never, capever, nprev;
	uint32_t max;
	uint32_t uidvalidity; /* when hms was read */
	uint64_t hms;         /* HIGHESTMODSEQ at the last check */
};

struct sim {
	const struct sim_schedule *s;
	crdt_cluster c;
	bool offline[8];
	struct space_hist *hist[8];
	size_t nhist[8];
	crdt_dot *created;     /* every message a local op added */
	bool *removed;         /* ... and whether an op that observed it removed it */
	uint32_t *meta;        /* ... and the seed of the meta it was given */
	size_t ncreated, capcreated;
	uint64_t modseq[8];    /* each replica's MODSEQ counter at the last check */
	FILE *trace;
	char *fail;
	struct sim_stats stats;
};

static void failf(struct sim *x, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void failf(struct sim *x, const char *fmt, ...)
{
	if (x->fail)
		return;
	va_list ap;
	va_start(ap, fmt);
	char buf[1024];
	vsnprintf(buf, sizeof buf, fmt, ap);
	va_end(ap);
	x->fail = strdup(buf);
}

static void say(struct sim *x, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void say(struct sim *x, const char *fmt, ...)
{
	if (!x->trace)
		return;
	va_list ap;
	va_start(ap, fmt);
	vfprintf(x->trace, fmt, ap);
	va_end(ap);
}

static struct space_hist *hist_for(struct sim *x, size_t r, crdt_dot space)
{
	for (size_t k = 0; k < x->nhist[r]; k++)
		if (crdt_dot_eq(x->hist[r][k].space, space))
			return &x->hist[r][k];
	struct space_hist *h = realloc(x->hist[r], (x->nhist[r] + 1) * sizeof *h);
	if (!h)
		abort();
	x->hist[r] = h;
	h = &h[x->nhist[r]++];
	memset(h, 0, sizeof *h);
	h->space = space;
	return h;
}

static uint64_t text_hash(const char *s)
{
	uint64_t h = UINT64_C(1469598103934665603);
	for (; *s; s++)
		h = (h ^ (unsigned char)*s) * UINT64_C(1099511628211);
	return h;
}

static bool vanished_has(const uint32_t *v, size_t n, uint32_t uid)
{
	for (size_t k = 0; k < n; k++)
		if (v[k] == uid)
			return true;
	return false;
}

/*
 * What a CONDSTORE/QRESYNC client of view mb, which last read it at h,
 * relies on: HIGHESTMODSEQ never goes down under one UIDVALIDITY; a row
 * that is new or whose flags changed has a MODSEQ above the one it read;
 * every UID it saw that is gone is in "vanished since" that value, and
 * nothing shown is.
 */
static void check_modseq(struct sim *x, size_t r, const struct crdt_mailbox_info *mb,
			 const struct space_hist *h, const struct crdt_row *rows, size_t n)
{
	const crdt_model *m = x->c.r[r];
	if (mb->highestmodseq > crdt_model_modseq(m))
		failf(x, "replica %zu mailbox \"%s\": HIGHESTMODSEQ %" PRIu64 " above the counter %" PRIu64,
		      r, mb->name, mb->highestmodseq, crdt_model_modseq(m));
	for (size_t k = 0; k < n; k++)
		if (rows[k].modseq > mb->highestmodseq)
			failf(x, "replica %zu mailbox \"%s\" UID %" PRIu32 ": MODSEQ %" PRIu64
			      " above HIGHESTMODSEQ %" PRIu64, r, mb->name, rows[k].uid, rows[k].modseq,
			      mb->highestmodseq);
	if (h->uidvalidity != mb->uidvalidity || x->fail)
		return;
	if (mb->highestmodseq < h->hms)
		failf(x, "replica %zu mailbox \"%s\": HIGHESTMODSEQ went down from %" PRIu64 " to %" PRIu64,
		      r, mb->name, h->hms, mb->highestmodseq);
	uint32_t *gone;
	size_t ngone;
	if (crdt_model_vanished(m, mb->guid, h->hms, &gone, &ngone))
		abort();
	for (size_t k = 0; k < n && !x->fail; k++) {
		const struct shown *was = NULL;
		for (size_t j = 0; j < h->nprev && !was; j++)
			if (h->prev[j].uid == rows[k].uid)
				was = &h->prev[j];
		if ((!was || was->flags != text_hash(rows[k].flags)) && rows[k].modseq <= h->hms)
			failf(x, "replica %zu mailbox \"%s\" UID %" PRIu32 " is %s but its MODSEQ %" PRIu64
			      " is not above %" PRIu64, r, mb->name, rows[k].uid, was ? "changed" : "new",
			      rows[k].modseq, h->hms);
		if (vanished_has(gone, ngone, rows[k].uid))
			failf(x, "replica %zu mailbox \"%s\" UID %" PRIu32 " shown and vanished", r,
			      mb->name, rows[k].uid);
	}
	for (size_t j = 0; j < h->nprev && !x->fail; j++) {
		bool now = false;
		for (size_t k = 0; k < n && !now; k++)
			now = rows[k].uid == h->prev[j].uid;
		if (!now && !vanished_has(gone, ngone, h->prev[j].uid))
			failf(x, "replica %zu mailbox \"%s\" UID %" PRIu32 " went away but is not vanished "
			      "since %" PRIu64, r, mb->name, h->prev[j].uid, h->hms);
	}
	free(gone);
}

/* Invariants (a) and (b) on replica r, against everything it showed before;
 * MODSEQ never going down, and what check_modseq checks. */
static void check_uids(struct sim *x, size_t r)
{
	struct crdt_mailbox_info *mb;
	size_t nmb;
	uint64_t counter = crdt_model_modseq(x->c.r[r]);
	if (counter < x->modseq[r])
		failf(x, "replica %zu: MODSEQ went down from %" PRIu64 " to %" PRIu64, r, x->modseq[r],
		      counter);
	x->modseq[r] = counter;
	if (crdt_model_mailboxes(x->c.r[r], &mb, &nmb))
		abort();
	for (size_t i = 0; i < nmb && !x->fail; i++) {
		struct space_hist *h = hist_for(x, r, mb[i].guid);
		struct crdt_row *rows;
		size_t n;
		if (crdt_model_rows(x->c.r[r], mb[i].guid, &rows, &n))
			abort();
		check_modseq(x, r, &mb[i], h, rows, n);
		h->uidvalidity = mb[i].uidvalidity;
		h->hms = mb[i].highestmodseq;
		uint32_t max = h->max;
		for (size_t k = 0; k < n && !x->fail; k++) {
			bool before = false, known = false;
			for (size_t j = 0; j < h->nprev; j++)
				before |= h->prev[j].uid == rows[k].uid && crdt_dot_eq(h->prev[j].guid, rows[k].guid);
			for (size_t j = 0; j < h->never; j++) {
				if (h->ever[j].uid != rows[k].uid)
					continue;
				known = true;
				if (!crdt_dot_eq(h->ever[j].guid, rows[k].guid))
					failf(x, "invariant (a): replica %zu mailbox \"%s\" UID %" PRIu32
					      " named message %" PRIx64 ".%" PRIu64 " and now %" PRIx64 ".%" PRIu64,
					      r, mb[i].name, rows[k].uid, h->ever[j].guid.replica,
					      h->ever[j].guid.counter, rows[k].guid.replica, rows[k].guid.counter);
			}
			if (!before && rows[k].uid <= h->max)
				failf(x, "invariant (b): replica %zu mailbox \"%s\" newly shows UID %" PRIu32
				      " (message %" PRIx64 ".%" PRIu64 ") after showing UID %" PRIu32,
				      r, mb[i].name, rows[k].uid, rows[k].guid.replica, rows[k].guid.counter, h->max);
			if (!known) {
				struct shown *e = realloc(h->ever, (h->never + 1) * sizeof *e);
				if (!e)
					abort();
				h->ever = e;
				e[h->never++] = (struct shown){ rows[k].uid, rows[k].guid, 0 };
			}
			if (rows[k].uid > max)
				max = rows[k].uid;
		}
		h->max = max;
		free(h->prev);
		h->prev = malloc((n ? n : 1) * sizeof *h->prev);
		if (!h->prev)
			abort();
		for (size_t k = 0; k < n; k++)
			h->prev[k] = (struct shown){ rows[k].uid, rows[k].guid, text_hash(rows[k].flags) };
		h->nprev = n;
		crdt_rows_free(rows, n);
	}
	/* A mailbox no longer visible shows nothing now. */
	for (size_t k = 0; k < x->nhist[r]; k++) {
		bool visible = false;
		for (size_t i = 0; i < nmb; i++)
			visible |= crdt_dot_eq(mb[i].guid, x->hist[r][k].space);
		if (!visible)
			x->hist[r][k].nprev = 0;
	}
	crdt_mailboxes_free(mb, nmb);
}

static void settle(struct sim *x, size_t r)
{
	size_t before = x->c.log.n;
	if (crdt_cluster_settle(&x->c, r))
		failf(x, "settle on replica %zu: %s", r, mcrdt_error_last());
	x->stats.uid_moves += x->c.log.n - before;
	check_uids(x, r);
}

/* ------------------------------------------------------------------ */
/* local changes                                                       */

static bool pick_mailbox(struct sim *x, size_t r, uint32_t a, crdt_dot *g, char *name, size_t size)
{
	struct crdt_mailbox_info *mb;
	size_t n;
	if (crdt_model_mailboxes(x->c.r[r], &mb, &n))
		abort();
	bool ok = n > 0;
	if (ok) {
		*g = mb[a % n].guid;
		snprintf(name, size, "%s", mb[a % n].name);
	}
	crdt_mailboxes_free(mb, n);
	return ok;
}

static bool pick_message(struct sim *x, size_t r, uint32_t a, uint32_t b, crdt_dot *g,
			 char *where, size_t size)
{
	crdt_dot mbox;
	char name[64];
	if (!pick_mailbox(x, r, a, &mbox, name, sizeof name))
		return false;
	struct crdt_row *rows;
	size_t n;
	if (crdt_model_rows(x->c.r[r], mbox, &rows, &n))
		abort();
	bool ok = n > 0;
	if (ok) {
		*g = rows[b % n].guid;
		snprintf(where, size, "%s uid %" PRIu32, name, rows[b % n].uid);
	}
	crdt_rows_free(rows, n);
	return ok;
}

/* The meta a message made at step seed carries: 0 to 69 bytes, NULs too. */
static size_t meta_for(uint32_t seed, uint8_t *out)
{
	size_t len = seed * 7 % 70;
	for (size_t k = 0; k < len; k++)
		out[k] = (uint8_t)(seed * 31 + k * 5);
	return len;
}

static void note_created(struct sim *x, crdt_dot g, uint32_t meta)
{
	if (x->ncreated == x->capcreated) {
		x->capcreated = x->capcreated ? x->capcreated * 2 : 64;
		x->created = realloc(x->created, x->capcreated * sizeof *x->created);
		x->removed = realloc(x->removed, x->capcreated * sizeof *x->removed);
		x->meta = realloc(x->meta, x->capcreated * sizeof *x->meta);
		if (!x->created || !x->removed || !x->meta)
			abort();
	}
	x->removed[x->ncreated] = false;
	x->meta[x->ncreated] = meta;
	x->created[x->ncreated++] = g;
	x->stats.delivered_msgs++;
}

static size_t subset(uint32_t bits, const char **out)
{
	size_t n = 0;
	for (size_t k = 0; k < 5; k++)
		if (bits >> k & 1)
			out[n++] = FLAGS[k];
	return n;
}

static void local_step(struct sim *x, size_t idx, const struct sim_step *st)
{
	size_t r = st->replica % x->s->nreplicas;
	crdt_model *m = x->c.r[r];
	crdt_oplist ops = CRDT_OPLIST_INIT;
	crdt_dot mbox, msg, g = { 0, 0 };
	char where[96], name[64];
	const char *fl[5];
	const char *one;
	uint32_t uid = 0;
	int rc = 1; /* 1: nothing to act on */
	bool *had = NULL;
	size_t nhad = x->ncreated; /* a MOVE adds one more while it runs */
	uint8_t meta[70];
	size_t meta_len = meta_for((uint32_t)idx, meta);

	if (st->kind == SIM_EXPUNGE || st->kind == SIM_MOVE || st->kind == SIM_DELETE) {
		had = malloc((x->ncreated ? x->ncreated : 1) * sizeof *had);
		if (!had)
			abort();
		for (size_t k = 0; k < x->ncreated; k++)
			had[k] = crdt_model_has_message(m, x->created[k]);
	}
	say(x, "step %zu: replica %zu %s", idx, r, KIND_NAMES[st->kind]);
	switch (st->kind) {
	case SIM_APPEND:
		if (pick_mailbox(x, r, st->a, &mbox, name, sizeof name)) {
			size_t n = subset(st->c & 0x13, fl);
			rc = crdt_model_append(m, &ops, mbox, fl, n, meta, meta_len, &g, &uid);
			say(x, " into \"%s\"", name);
		}
		break;
	case SIM_FLAG_ADD:
	case SIM_FLAG_REMOVE:
	case SIM_KW_ADD:
	case SIM_KW_REMOVE:
		if (pick_message(x, r, st->a, st->b, &msg, where, sizeof where)) {
			bool kw = st->kind == SIM_KW_ADD || st->kind == SIM_KW_REMOVE;
			bool add = st->kind == SIM_FLAG_ADD || st->kind == SIM_KW_ADD;
			one = kw ? KEYWORDS[st->c % 3] : FLAGS[st->c % 5];
			rc = crdt_model_flags(m, &ops, msg, add ? CRDT_OP_FLAGS_ADD : CRDT_OP_FLAGS_REMOVE, &one, 1);
			say(x, " %s on %s", one, where);
		}
		break;
	case SIM_FLAG_SET:
		if (pick_message(x, r, st->a, st->b, &msg, where, sizeof where)) {
			size_t n = subset(st->c, fl);
			rc = crdt_model_flags(m, &ops, msg, CRDT_OP_FLAGS_SET, fl, n);
			say(x, " %zu flags on %s", n, where);
		}
		break;
	case SIM_EXPUNGE:
		if (pick_message(x, r, st->a, st->b, &msg, where, sizeof where)) {
			rc = crdt_model_expunge(m, &ops, msg);
			say(x, " %s", where);
		}
		break;
	case SIM_COPY:
	case SIM_MOVE:
		if (pick_message(x, r, st->a, st->b, &msg, where, sizeof where) &&
		    pick_mailbox(x, r, st->c, &mbox, name, sizeof name)) {
			rc = crdt_model_copy(m, &ops, msg, mbox, st->kind == SIM_MOVE, meta, meta_len, &g, &uid);
			say(x, " %s to \"%s\"", where, name);
		}
		break;
	case SIM_CREATE:
		rc = crdt_model_create(m, &ops, NAMES[st->a % NNAMES], (uint32_t)(1000 + idx * 8 + r), &g);
		say(x, " \"%s\"", NAMES[st->a % NNAMES]);
		g = (crdt_dot){ 0, 0 };
		break;
	case SIM_DELETE:
		if (pick_mailbox(x, r, st->a, &mbox, name, sizeof name)) {
			rc = crdt_model_delete(m, &ops, mbox);
			say(x, " \"%s\"", name);
		}
		break;
	case SIM_RENAME:
		if (pick_mailbox(x, r, st->a, &mbox, name, sizeof name)) {
			rc = crdt_model_rename(m, &ops, mbox, NAMES[st->b % NNAMES]);
			say(x, " \"%s\" to \"%s\"", name, NAMES[st->b % NNAMES]);
		}
		break;
	case SIM_SUBSCRIBE:
	case SIM_UNSUBSCRIBE:
		rc = crdt_model_subscribe(m, &ops, NAMES[st->a % NNAMES], st->kind == SIM_SUBSCRIBE);
		say(x, " \"%s\"", NAMES[st->a % NNAMES]);
		break;
	}
	if (rc == 1 || rc == MCRDT_EEXISTS) {
		say(x, " (skipped)\n");
	} else if (rc) {
		failf(x, "step %zu: %s on replica %zu failed: %s", idx, KIND_NAMES[st->kind], r,
		      mcrdt_error_last());
	} else {
		if (uid)
			say(x, " -> uid %" PRIu32, uid);
		say(x, " (%zu ops)\n", ops.n);
		if (g.replica)
			note_created(x, g, (uint32_t)idx);
		if (crdt_cluster_publish(&x->c, r, &ops))
			abort();
		for (size_t k = 0; had && k < nhad; k++)
			if (had[k] && !crdt_model_has_message(m, x->created[k]))
				x->removed[k] = true;
		settle(x, r);
	}
	free(had);
	crdt_oplist_free(&ops);
}

/* ------------------------------------------------------------------ */
/* delivery                                                            */

static void deliver_one(struct sim *x, size_t r, size_t k)
{
	int rc = crdt_cluster_deliver(&x->c, r, k);
	if (rc && rc != MCRDT_EDUPLICATE && rc != MCRDT_EPENDING)
		failf(x, "replica %zu refused log entry %zu: %s", r, k, mcrdt_error_last());
}

static void deliver_step(struct sim *x, size_t idx, const struct sim_step *st)
{
	size_t r = st->replica % x->s->nreplicas;
	size_t n = x->c.log.n;
	if (x->offline[r] || n == 0) {
		say(x, "step %zu: deliver to replica %zu (skipped)\n", idx, r);
		return;
	}
	uint64_t rng = ((uint64_t)st->b << 32) | st->c;
	size_t count = 0;
	if (st->a % 4 == 0) {
		/* Everything one peer issued, in its order. */
		size_t from = (size_t)(rng_next(&rng) % x->s->nreplicas);
		for (size_t k = 0; k < n && !x->offline[from]; k++)
			if (x->c.origin[k] == from) {
				deliver_one(x, r, k);
				count++;
			}
	} else {
		/* A few entries in any order, duplicates welcome. */
		for (size_t i = 0; i < 1 + st->a % 6; i++) {
			size_t k = (size_t)(rng_next(&rng) % n);
			if (!x->offline[x->c.origin[k]]) {
				deliver_one(x, r, k);
				count++;
			}
		}
	}
	say(x, "step %zu: deliver %zu ops to replica %zu (%zu buffered)\n", idx, count, r,
	    crdt_model_pending(x->c.r[r]));
	settle(x, r);
}

/* ------------------------------------------------------------------ */
/* the end: everything everywhere                                      */

static void final_exchange(struct sim *x)
{
	uint64_t rng = x->s->seed ^ UINT64_C(0x5eed);
	size_t round;
	for (round = 1; round <= MAX_ROUNDS && !x->fail; round++) {
		size_t before = x->c.log.n;
		for (size_t r = 0; r < x->s->nreplicas && !x->fail; r++) {
			/* The whole log in a shuffled order: causal gaps get buffered. */
			size_t n = x->c.log.n;
			size_t *order = malloc((n ? n : 1) * sizeof *order);
			if (!order)
				abort();
			for (size_t k = 0; k < n; k++)
				order[k] = k;
			for (size_t k = n; k > 1; k--) {
				size_t j = (size_t)(rng_next(&rng) % k), t = order[k - 1];
				order[k - 1] = order[j];
				order[j] = t;
			}
			for (size_t k = 0; k < n; k++)
				deliver_one(x, r, order[k]);
			free(order);
			settle(x, r);
		}
		if (x->c.log.n == before)
			break;
	}
	x->stats.final_rounds = round;
	if (round > MAX_ROUNDS)
		failf(x, "invariant (c): replicas still issuing UID claims after %d rounds", MAX_ROUNDS);
}

static void check_final(struct sim *x)
{
	for (size_t r = 0; r < x->s->nreplicas && !x->fail; r++)
		if (crdt_model_pending(x->c.r[r]))
			failf(x, "replica %zu still buffers %zu ops after full delivery", r,
			      crdt_model_pending(x->c.r[r]));
	if (x->fail)
		return;
	int same = crdt_cluster_converged(&x->c);
	if (same != 1) {
		char *a, *b;
		crdt_model_describe(x->c.r[0], &a);
		for (size_t r = 1; r < x->s->nreplicas; r++) {
			crdt_model_describe(x->c.r[r], &b);
			if (strcmp(a, b) != 0) {
				failf(x, "invariant (c): replicas 0 and %zu differ:\n--- 0\n%s--- %zu\n%s", r, a, r, b);
				free(b);
				break;
			}
			free(b);
		}
		free(a);
		return;
	}
	crdt_model *m = x->c.r[0];
	for (size_t k = 0; k < x->ncreated && !x->fail; k++)
		if (!crdt_model_has_message(m, x->created[k]) && !x->removed[k])
			failf(x, "message %" PRIx64 ".%" PRIu64 " lost: no expunge, move or delete observed it",
			      x->created[k].replica, x->created[k].counter);
	/* Every live message, on every replica, has the meta it was made with. */
	for (size_t r = 0; r < x->s->nreplicas && !x->fail; r++) {
		for (size_t k = 0; k < x->ncreated && !x->fail; k++) {
			const uint8_t *have;
			size_t len;
			uint8_t want[70];
			size_t wlen = meta_for(x->meta[k], want);
			if (crdt_model_meta(x->c.r[r], x->created[k], &have, &len))
				continue;
			if (len != wlen || memcmp(have, want, len) != 0)
				failf(x, "replica %zu message %" PRIx64 ".%" PRIu64 ": meta of %zu bytes, not the "
				      "%zu it was made with", r, x->created[k].replica, x->created[k].counter,
				      len, wlen);
		}
	}
	/* Every live message is shown, once. */
	struct crdt_mailbox_info *mb;
	size_t nmb, shown = 0;
	if (crdt_model_mailboxes(m, &mb, &nmb))
		abort();
	for (size_t i = 0; i < nmb; i++)
		shown += mb[i].messages;
	crdt_mailboxes_free(mb, nmb);
	if (!x->fail && shown != crdt_model_messages(m))
		failf(x, "%zu live messages but %zu shown", crdt_model_messages(m), shown);
}

char *sim_run(const struct sim_schedule *s, FILE *trace, struct sim_stats *stats)
{
	struct sim x;
	memset(&x, 0, sizeof x);
	x.s = s;
	x.trace = trace;
	if (crdt_cluster_init(&x.c, s->nreplicas, 0x5100 + (s->seed % 7) * 0x10))
		abort();
	/* Common start: replica 0 makes INBOX and everyone has it. */
	crdt_oplist ops = CRDT_OPLIST_INIT;
	if (crdt_model_create(x.c.r[0], &ops, "INBOX", 1, NULL) || crdt_cluster_publish(&x.c, 0, &ops))
		abort();
	for (size_t r = 1; r < s->nreplicas; r++)
		deliver_one(&x, r, 0);
	for (size_t i = 0; i < s->nsteps && !x.fail; i++) {
		const struct sim_step *st = &s->steps[i];
		if (st->kind == SIM_DELIVER) {
			deliver_step(&x, i, st);
		} else if (st->kind == SIM_PARTITION) {
			size_t r = st->replica % s->nreplicas;
			x.offline[r] = !x.offline[r];
			say(&x, "step %zu: replica %zu goes %s\n", i, r, x.offline[r] ? "offline" : "online");
		} else {
			local_step(&x, i, st);
		}
	}
	if (!x.fail) {
		memset(x.offline, 0, sizeof x.offline);
		say(&x, "final: deliver everything everywhere\n");
		final_exchange(&x);
		check_final(&x);
	}
	if (stats)
		*stats = x.stats;
	for (size_t r = 0; r < s->nreplicas; r++) {
		for (size_t k = 0; k < x.nhist[r]; k++) {
			free(x.hist[r][k].ever);
			free(x.hist[r][k].prev);
		}
		free(x.hist[r]);
	}
	free(x.created);
	free(x.removed);
	free(x.meta);
	crdt_cluster_free(&x.c);
	return x.fail;
}

void sim_minimize(struct sim_schedule *s)
{
	size_t chunk = s->nsteps / 2 ? s->nsteps / 2 : 1;
	struct sim_step *trial = malloc((s->nsteps ? s->nsteps : 1) * sizeof *trial);
	if (!trial)
		return;
	for (;;) {
		bool shrunk = false;
		for (size_t start = 0; start < s->nsteps;) {
			size_t len = start + chunk > s->nsteps ? s->nsteps - start : chunk;
			struct sim_schedule t = *s;
			memcpy(trial, s->steps, start * sizeof *trial);
			memcpy(trial + start, s->steps + start + len, (s->nsteps - start - len) * sizeof *trial);
			t.steps = trial;
			t.nsteps = s->nsteps - len;
			char *f = sim_run(&t, NULL, NULL);
			if (f) {
				free(f);
				memcpy(s->steps, trial, t.nsteps * sizeof *trial);
				s->nsteps = t.nsteps;
				shrunk = true;
			} else {
				start += len;
			}
		}
		if (!shrunk) {
			if (chunk == 1)
				break;
			chunk /= 2;
		}
	}
	free(trial);
}
