/*
 * store/replicate.c — mcrdt_sync, mcrdt_merge and mcrdt_hub_init: the
 * exchange around st_apply.
 *
 * One side of an exchange: scan and publish under the store's lock; fetch
 * without it (the network may be slow); then, under the lock again, read
 * what is new, apply it, publish the claims that settled it; adopt the
 * fetched refs and push. A sync lock (mcrdt/sync) keeps two syncs of one
 * store apart. With another store's directory as the remote both sides run
 * in this process, each fetching from the other's repository, round after
 * round until a round brings neither side anything new.
 */
#define _GNU_SOURCE
#include "store/store_int.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/error.h"
#include "common/grow.h"

struct side {
	mcrdt_store *s;
	sync_git *g;
	int lockfd;
	struct sync_git_stats gst;
};

struct run {
	const struct mcrdt_sync_opts *o;
	struct mcrdt_sync_stats *st;
	const char *phase;
};

static int progress(struct run *r, const char *phase)
{
	r->phase = phase;
	if (r->o->progress && r->o->progress(r->o->progress_ctx, phase, r->st) != 0)
		return err_set(MCRDT_EIO, "cancelled");
	return 0;
}

/* The git layer's running counters, folded into the report. */
static void fold(struct run *r, struct side *x, const struct sync_git_stats *before)
{
	r->st->ops_sent += x->gst.ops_published - before->ops_published;
	r->st->messages_sent += x->gst.bodies_published - before->bodies_published;
	r->st->bytes_sent += x->gst.body_bytes_published - before->body_bytes_published;
	r->st->bytes_fetched += x->gst.bytes_fetched - before->bytes_fetched;
}

static int git_progress(void *ctx, const struct sync_git_stats *gst)
{
	struct run *r = ctx;
	struct mcrdt_sync_stats now = *r->st;
	now.bytes_fetched += gst->bytes_fetched;
	if (r->o->progress && r->o->progress(r->o->progress_ctx, r->phase, &now) != 0)
		return 1;
	return 0;
}

static int side_open(struct side *x, mcrdt_store *s)
{
	memset(x, 0, sizeof *x);
	x->s = s;
	x->lockfd = -1;
	char dir[4200];
	snprintf(dir, sizeof dir, "%s/git", s->metadir);
	int rc = st_lock_file(s->metadir, "sync", LOCK_EX, s->opts.lock_timeout_ms, "another sync of this store is running",
			      &x->lockfd);
	if (rc == 0)
		rc = sync_git_open(&x->g, dir, s->replica, true);
	/* Holding the sync lock, any ref lock file is a killed sync's. */
	if (rc == 0)
		rc = sync_git_clear_locks(x->g, NULL);
	return rc;
}

static void side_close(struct side *x)
{
	sync_git_close(x->g);
	if (x->lockfd >= 0)
		close(x->lockfd);
	x->g = NULL;
	x->lockfd = -1;
}

/* ---- publishing ---- */

struct own_ctx {
	uint64_t self, after;
	crdt_oplist ops;
};

static int collect_own(void *ctx, const crdt_op *op, uint64_t index)
{
	(void)index;
	struct own_ctx *c = ctx;
	if (op->id.replica != c->self || op->id.counter <= c->after)
		return 0;
	if (op->id.counter != c->after + c->ops.n + 1)
		return err_set(MCRDT_ECORRUPT, "the log lacks this replica's op %" PRIu64 " (found %" PRIu64 " next)",
			       c->after + c->ops.n + 1, op->id.counter);
	crdt_op copy;
	int rc = crdt_op_copy(&copy, op);
	if (rc == 0 && (rc = crdt_oplist_push(&c->ops, &copy)) != 0)
		crdt_op_free(&copy);
	return rc;
}

struct body_ctx {
	mcrdt_store *s;
	struct st_kwcache kwc;
};

/* The file of the message op created, for its body (-1: gone). */
static int body_fd(void *ctx, const crdt_op *op, int *fd_out)
{
	struct body_ctx *c = ctx;
	struct st_msg x;
	char *mailbox;
	*fd_out = -1;
	int rc = st_msg_get(c->s, op->id, &x, &mailbox);
	if (rc)
		return rc == MCRDT_ENOTFOUND ? 0 : rc; /* expunged since: no body to give */
	struct md_keywords *kw = st_kwcache_get(c->s, &c->kwc, mailbox);
	if (!kw)
		rc = MCRDT_EIO;
	if (kw && st_open_body(c->s, mailbox, kw, &x, fd_out, NULL, NULL) != 0)
		*fd_out = -1; /* the file is gone: the next scan makes that an expunge */
	st_msg_clear(&x);
	free(mailbox);
	return rc;
}

/* Publishes this replica's ops the ref lacks (inside st_begin). */
static int publish(struct side *x)
{
	mcrdt_store *s = x->s;
	uint64_t counter, from;
	int rc = sync_git_published(x->g, &counter, &from);
	if (rc)
		return rc;
	if (from > sync_log_next(s->log))
		from = 0; /* a hint from another log: read it all */
	struct own_ctx c = { s->replica, counter, CRDT_OPLIST_INIT };
	rc = sync_log_replay(s->log, from, collect_own, &c);
	struct body_ctx bc = { s, { { NULL }, { { { NULL } } }, 0 } };
	if (rc == 0 && c.ops.n)
		rc = sync_git_publish(x->g, c.ops.ops, c.ops.n, sync_log_next(s->log), body_fd, &bc, &x->gst);
	st_kwcache_free(&bc.kwc);
	crdt_oplist_free(&c.ops);
	return rc;
}

/* ---- one side's exchange ---- */

static int prepare(struct run *r, struct side *x)
{
	int rc = st_begin(x->s);
	if (rc)
		return rc;
	struct sync_git_stats before = x->gst;
	struct mcrdt_scan_report rep = { 0 };
	if ((rc = progress(r, "scan")) == 0 && (rc = st_scan(x->s, &rep)) == 0) {
		r->st->scan.added += rep.added;
		r->st->scan.flags_changed += rep.flags_changed;
		r->st->scan.vanished += rep.vanished;
		r->st->scan.folders_added += rep.folders_added;
		r->st->scan.folders_removed += rep.folders_removed;
		r->st->scan.skipped += rep.skipped;
	}
	if (rc == 0 && (rc = progress(r, "publish")) == 0)
		rc = publish(x);
	fold(r, x, &before);
	return st_end(x->s, rc);
}

static int take_op(void *ctx, const crdt_op *op, const sync_oid *body)
{
	struct st_incoming *in = ctx;
	crdt_op copy;
	int rc = crdt_op_copy(&copy, op);
	if (rc)
		return rc;
	if ((rc = crdt_oplist_push(&in->ops, &copy))) {
		crdt_op_free(&copy);
		return rc;
	}
	if (body) {
		if ((rc = GROW(in->bodies, in->capbodies, in->nbodies + 1)))
			return rc;
		in->bodies[in->nbodies++] = (struct st_body){ op->id, *body };
	}
	return 0;
}

/* Fetches url into x, applies what is new, publishes the claims. */
static int exchange(struct run *r, struct side *x, const char *url, bool push)
{
	struct sync_git_stats before = x->gst;
	struct sync_git_remote rem = { url, git_progress, r };
	int rc = progress(r, "fetch");
	if (rc == 0)
		rc = sync_git_fetch(x->g, &rem, &x->gst);
	fold(r, x, &before);
	before = x->gst;
	if (rc || (rc = st_begin(x->s)))
		return rc;
	struct st_incoming in = { CRDT_OPLIST_INIT, NULL, 0, 0 };
	struct st_apply_stats ast = { 0 };
	crdt_vv known;
	crdt_vv_init(&known);
	if ((rc = progress(r, "apply")) == 0 && (rc = crdt_model_context(x->s->m, &known)) == 0)
		rc = sync_git_read_new(x->g, &known, take_op, &in, &x->gst);
	if (rc == 0 && in.ops.n)
		rc = st_apply(x->s, x->g, &in, &ast);
	sync_git_unpacked_clear(x->g); /* what the apply did not take */
	if (rc == 0)
		rc = publish(x);
	crdt_vv_free(&known);
	st_incoming_free(&in);
	r->st->ops_received += ast.ops_received;
	r->st->messages_received += ast.messages_received;
	r->st->bytes_received += ast.bytes_received;
	r->st->uid_moves += ast.claims;
	r->st->duplicates += ast.duplicates;
	rc = st_end(x->s, rc);
	if (rc == 0)
		rc = sync_git_adopt(x->g);
	if (rc == 0 && push && (rc = progress(r, "push")) == 0)
		rc = sync_git_push(x->g, &rem, &x->gst);
	if (rc == 0 && (rc = progress(r, "maintain")) == 0)
		rc = sync_git_maintain(x->g, SYNC_GIT_MAX_PACKS, NULL);
	fold(r, x, &before);
	return rc;
}

/* ---- the entry points ---- */

static bool is_store(const char *dir)
{
	char path[4200];
	struct stat st;
	snprintf(path, sizeof path, "%s/" MD_META_DIR "/replica", dir);
	return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

static int two_way(struct run *r, mcrdt_store *a, const char *bdir, bool create)
{
	struct mcrdt_open_opts oo = MCRDT_OPEN_OPTS_INIT;
	oo.flags = create ? MCRDT_OPEN_CREATE : 0;
	oo.lock_timeout_ms = a->opts.lock_timeout_ms;
	oo.no_fsync = a->opts.no_fsync;
	mcrdt_store *b = NULL;
	struct side x, y;
	memset(&x, 0, sizeof x);
	memset(&y, 0, sizeof y);
	x.lockfd = y.lockfd = -1;
	int rc = mcrdt_store_open(&b, bdir, &oo);
	if (rc == 0 && b->replica == a->replica)
		rc = err_set(MCRDT_EINVAL, "%s and %s are the same replica", a->root, bdir);
	if (rc == 0 && (rc = side_open(&x, a)) == 0)
		rc = side_open(&y, b);
	char xgit[4200], ygit[4200];
	snprintf(xgit, sizeof xgit, "%s/git", a->metadir);
	snprintf(ygit, sizeof ygit, "%s/git", b ? b->metadir : "");
	unsigned max = r->o->max_rounds ? r->o->max_rounds : 16;
	/* The side with less history takes in the other's first: a replica
	 * that joins gives way (crdt_model_give_way) before the other sees
	 * its fresh mailboxes, so the used ones keep their UIDVALIDITY. */
	struct side *first = &x, *second = &y;
	const char *first_from = ygit, *second_from = xgit;
	if (rc == 0 && sync_log_next(b->log) < sync_log_next(a->log)) {
		first = &y, second = &x;
		first_from = xgit, second_from = ygit;
	}
	for (unsigned round = 0; rc == 0; round++) {
		if (round == max) {
			rc = err_set(MCRDT_EIO, "the replicas did not settle in %u rounds", max);
			break;
		}
		/* Scan and publish once: each exchange publishes what it made. */
		if (round == 0 && (rc = prepare(r, &x)) == 0)
			rc = prepare(r, &y);
		uint64_t sent = second->gst.ops_published;
		if (rc == 0 && (rc = exchange(r, first, first_from, false)) == 0)
			rc = exchange(r, second, second_from, false);
		r->st->rounds++;
		/* The first side took all the second had published, and the
		 * second all the first had, its claims included: only what the
		 * second's exchange published (claims that settled what it took)
		 * can be new to anyone. */
		if (rc == 0 && second->gst.ops_published == sent)
			break;
	}
	side_close(&x);
	side_close(&y);
	mcrdt_store_close(b);
	return rc;
}

static int run_init(struct run *r, const struct mcrdt_sync_opts *opts, struct mcrdt_sync_stats *out,
		    struct mcrdt_sync_stats *local)
{
	static const struct mcrdt_sync_opts defaults = MCRDT_SYNC_OPTS_INIT;
	if (!opts)
		opts = &defaults;
	if (opts->version != MCRDT_SYNC_OPTS_VERSION)
		return err_set(MCRDT_EVERSION, "mcrdt_sync_opts version %u not supported (expected %u)", opts->version,
			       MCRDT_SYNC_OPTS_VERSION);
	memset(local, 0, sizeof *local);
	r->o = opts;
	r->st = out ? out : local;
	memset(r->st, 0, sizeof *r->st);
	r->phase = "scan";
	return 0;
}

int mcrdt_sync(mcrdt_store *s, const char *remote, const struct mcrdt_sync_opts *opts, struct mcrdt_sync_stats *out)
{
	struct run r;
	struct mcrdt_sync_stats local;
	if (!s || !remote || !*remote)
		return err_set(MCRDT_EINVAL, "mcrdt_sync: no store or no remote given");
	int rc = run_init(&r, opts, out, &local);
	if (rc)
		return rc;
	if (is_store(remote))
		return two_way(&r, s, remote, false);
	struct side x;
	if ((rc = side_open(&x, s)) == 0 && (rc = prepare(&r, &x)) == 0) {
		rc = exchange(&r, &x, remote, true);
		r.st->rounds++;
	}
	side_close(&x);
	return rc;
}

int mcrdt_merge(const char *a, const char *b, const struct mcrdt_sync_opts *opts, struct mcrdt_sync_stats *out)
{
	struct run r;
	struct mcrdt_sync_stats local;
	if (!a || !b || !*a || !*b)
		return err_set(MCRDT_EINVAL, "mcrdt_merge: two directories are needed");
	int rc = run_init(&r, opts, out, &local);
	if (rc)
		return rc;
	struct mcrdt_open_opts oo = MCRDT_OPEN_OPTS_INIT;
	oo.flags = MCRDT_OPEN_CREATE;
	mcrdt_store *s;
	if ((rc = mcrdt_store_open(&s, a, &oo)))
		return rc;
	rc = two_way(&r, s, b, true);
	mcrdt_store_close(s);
	return rc;
}

int mcrdt_hub_init(const char *path)
{
	if (!path || !*path)
		return err_set(MCRDT_EINVAL, "mcrdt_hub_init: no path given");
	return sync_git_hub_init(path);
}
