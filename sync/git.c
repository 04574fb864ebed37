/*
 * sync/git.c — the replication transport over libgit2 (see sync/git.h).
 *
 * Objects are written by our own pack writer (sync/pack.c): every object
 * of a publish goes into one .pack with its .idx, and packs are merged
 * there when they pile up. A publish hashes and deflates its bodies on
 * worker threads. libgit2's packbuilder would search for deltas (costly
 * for thousands of message bodies), and its treebuilder and odb writes
 * make loose objects, so trees and commits are formatted here as well;
 * `git fsck --strict` checks the result in the tests.
 *
 * A fetch from, or a push to, a repository on this machine copies packs
 * instead of going through libgit2's local transport, which rebuilds a
 * pack with delta search. Each copy is checked whole before it joins the
 * repository, every object against its id (pack_take), as libgit2's
 * indexer checks what its transports bring; every other url goes through
 * those transports.
 */
#include "sync/git.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <git2.h>

#include "common/error.h"
#include "common/grow.h"
#include "common/varint.h"
#include "sync/codec.h"
#include "sync/git_test.h"
#include "sync/io.h"
#include "sync/pack.h"
#include "sync/sha1.h"

extern char **environ;

#define NS_LOCAL "refs/mcrdt/"
#define NS_STAGED "refs/mcrdt-fetch/"

struct sync_git {
	git_repository *repo;
	git_odb *odb;
	uint64_t self;
	bool transport_only; /* tests: no local fast path */
	char *gitdir; /* the repository's directory, with a trailing '/' */
	int unpacked; /* <gitdir>unpacked/ while it holds a fetch's blobs, else -1 */
};

/* ---- small helpers ---- */

static void hex16(char out[17], uint64_t v)
{
	snprintf(out, 17, "%016" PRIx64, v);
}

/* 16 lowercase hex digits, exactly. */
static bool parse_hex16(const char *s, uint64_t *out)
{
	uint64_t v = 0;
	size_t i;
	for (i = 0; s[i]; i++) {
		int d = sg_hex_digit(s[i]);
		if (i >= 16 || d < 0)
			return false;
		v = v << 4 | (uint64_t)d;
	}
	if (i != 16)
		return false;
	*out = v;
	return true;
}

/* A decimal without sign or leading zeros, ending at a char in stop. */
static const char *parse_dec(const char *s, const char *stop, uint64_t *out)
{
	uint64_t v = 0;
	const char *p = s;
	if (*p < '0' || *p > '9' || (*p == '0' && p[1] >= '0' && p[1] <= '9'))
		return NULL;
	for (; *p >= '0' && *p <= '9'; p++) {
		if (v > (UINT64_MAX - 9) / 10)
			return NULL;
		v = v * 10 + (uint64_t)(*p - '0');
	}
	if (!strchr(stop, *p))
		return NULL;
	*out = v;
	return p;
}

static const char *oid_str(const git_oid *id, char buf[GIT_OID_HEXSZ + 1])
{
	return git_oid_tostr(buf, GIT_OID_HEXSZ + 1, id);
}

static void refname(char *out, size_t size, const char *ns, uint64_t r)
{
	char h[17];
	hex16(h, r);
	snprintf(out, size, "%s%s", ns, h);
}

/* The commit message's lines: "mcrdt <R> <from> <to>" then "log <N>". */
struct chain_msg {
	uint64_t r, from, to, log_next;
};

static bool parse_message(const char *msg, struct chain_msg *m)
{
	if (strncmp(msg, "mcrdt ", 6) != 0 || strnlen(msg, 23) < 23)
		return false;
	char h[17];
	memcpy(h, msg + 6, 16);
	h[16] = 0;
	if (!parse_hex16(h, &m->r) || msg[22] != ' ')
		return false;
	const char *p = parse_dec(msg + 23, " ", &m->from);
	if (!p || !(p = parse_dec(p + 1, "\n", &m->to)))
		return false;
	if (m->from < 1 || m->to < m->from || m->to > CRDT_COUNTER_MAX)
		return false;
	m->log_next = 0;
	if (*p == '\n' && strncmp(p + 1, "log ", 4) == 0 && !parse_dec(p + 5, "\n", &m->log_next))
		return false;
	return true;
}

static bool is_body_op(enum crdt_op_type t)
{
	return t == CRDT_OP_APPEND || t == CRDT_OP_COPY || t == CRDT_OP_MOVE;
}

/* The oid of ref name (0), or 1 when there is no such ref. */
static int ref_oid(sync_git *g, const char *name, git_oid *out)
{
	git_reference *ref = NULL, *res = NULL;
	int rc = git_reference_lookup(&ref, g->repo, name);
	if (rc == GIT_ENOTFOUND)
		return 1;
	if (rc < 0)
		return sg_fail(MCRDT_EIO, "reading ref %s", name);
	rc = git_reference_resolve(&res, ref);
	git_reference_free(ref);
	if (rc < 0)
		return sg_fail(MCRDT_ECORRUPT, "resolving ref %s", name);
	git_oid_cpy(out, git_reference_target(res));
	git_reference_free(res);
	return 0;
}

/* Names of the refs matching glob; *out a malloc'd array of strdup'd names. */
static int list_refs(sync_git *g, const char *glob, char ***out, size_t *n)
{
	git_reference_iterator *it;
	*out = NULL;
	*n = 0;
	if (git_reference_iterator_glob_new(&it, g->repo, glob) < 0)
		return sg_fail(MCRDT_EIO, "listing refs %s", glob);
	const char *name;
	int rc, ret = 0;
	size_t cap = 0;
	while ((rc = git_reference_next_name(&name, it)) == 0) {
		if ((ret = GROW(*out, cap, *n + 1)))
			break;
		if (!((*out)[*n] = strdup(name))) {
			ret = err_set(MCRDT_ENOMEM, "out of memory listing refs");
			break;
		}
		(*n)++;
	}
	if (!ret && rc != GIT_ITEROVER)
		ret = sg_fail(MCRDT_EIO, "listing refs %s", glob);
	git_reference_iterator_free(it);
	if (ret) {
		for (size_t i = 0; i < *n; i++)
			free((*out)[i]);
		free(*out);
		*out = NULL;
		*n = 0;
	}
	return ret;
}

static void free_names(char **names, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(names[i]);
	free(names);
}

/* ---- opening ---- */

static int repo_open(sync_git *g, const char *dir)
{
	if (git_repository_open_bare(&g->repo, dir) < 0)
		return sg_fail(MCRDT_EIO, "opening the repository %s", dir);
	if (git_repository_odb(&g->odb, g->repo) < 0)
		return sg_fail(MCRDT_EIO, "opening the objects of %s", dir);
	return 0;
}

static void repo_close(sync_git *g)
{
	git_odb_free(g->odb);
	git_repository_free(g->repo);
	g->odb = NULL;
	g->repo = NULL;
}

static int init_bare(const char *dir, uint32_t mode)
{
	git_repository *repo;
	git_repository_init_options o;
	git_repository_init_options_init(&o, GIT_REPOSITORY_INIT_OPTIONS_VERSION);
	o.flags = GIT_REPOSITORY_INIT_BARE | GIT_REPOSITORY_INIT_MKPATH;
	o.mode = mode;
	if (git_repository_init_ext(&repo, dir, &o) < 0)
		return sg_fail(MCRDT_EIO, "creating the repository %s", dir);
	git_repository_free(repo);
	return 0;
}

static bool dir_empty(const char *path)
{
	DIR *d = opendir(path);
	if (!d)
		return false;
	struct dirent *e;
	bool empty = true;
	while (empty && (e = readdir(d)))
		if (strcmp(e->d_name, ".") && strcmp(e->d_name, ".."))
			empty = false;
	closedir(d);
	return empty;
}

/*
 * libgit2 starts once per process and stays up: starting it parses the
 * system's CA certificates (milliseconds), and a sync opens two
 * repositories. Its global state is freed at exit by nobody, which is
 * what a process-wide library costs anyway.
 */
static int g_started; /* 1 up, -1 failed */
static void start_once(void)
{
	g_started = git_libgit2_init() < 0 ? -1 : 1;
	/* Packs, indexes and refs reach the disk before a ref names them: a
	 * crash must not leave a ref to a pack that is not there. (A process-
	 * wide libgit2 setting: other users in the process get it too.) */
	if (g_started > 0)
		git_libgit2_opts(GIT_OPT_ENABLE_FSYNC_GITDIR, 1);
}

static int git_start(void)
{
	static pthread_once_t once = PTHREAD_ONCE_INIT;
	pthread_once(&once, start_once);
	return g_started > 0 ? 0 : sg_fail(MCRDT_EIO, "starting libgit2");
}

int sync_git_open(sync_git **out, const char *dir, uint64_t self, bool create)
{
	*out = NULL;
	if (self == 0)
		return err_set(MCRDT_EINVAL, "sync_git_open %s: replica id 0", dir);
	int rc = git_start();
	if (rc)
		return rc;
	sync_git *g = calloc(1, sizeof *g);
	struct stat sb;
	if (!g) {
		rc = err_set(MCRDT_ENOMEM, "out of memory opening %s", dir);
		goto fail;
	}
	g->self = self;
	g->unpacked = -1;
	bool exists = stat(dir, &sb) == 0;
	if (!exists && errno != ENOENT) {
		rc = err_sys(MCRDT_EIO, "repository %s", dir);
		goto fail;
	}
	if (!exists && !create) {
		rc = err_set(MCRDT_ENOTFOUND, "no repository at %s", dir);
		goto fail;
	}
	/* A directory made empty for it (mkdtemp) is as good as none. */
	if (create && (!exists || (S_ISDIR(sb.st_mode) && dir_empty(dir))) && (rc = init_bare(dir, 0700)))
		goto fail;
	if ((rc = repo_open(g, dir)))
		goto fail;
	if (!(g->gitdir = strdup(git_repository_path(g->repo)))) {
		rc = err_set(MCRDT_ENOMEM, "out of memory opening %s", dir);
		goto fail;
	}
	*out = g;
	return 0;
fail:
	if (g) {
		repo_close(g);
		free(g);
	}
	return rc;
}

void sync_git_close(sync_git *g)
{
	if (!g)
		return;
	sync_git_unpacked_clear(g);
	repo_close(g);
	free(g->gitdir);
	free(g);
}

int sync_git_hub_init(const char *path)
{
	DIR *d = opendir(path);
	if (d) {
		closedir(d);
		if (!dir_empty(path))
			return err_set(MCRDT_EEXISTS, "hub %s: the directory is not empty", path);
	} else if (errno != ENOENT) {
		return errno == ENOTDIR ? err_set(MCRDT_EEXISTS, "hub %s: exists and is not a directory", path)
					: err_sys(MCRDT_EIO, "hub %s", path);
	}
	int rc = git_start();
	return rc ? rc : init_bare(path, GIT_REPOSITORY_INIT_SHARED_UMASK);
}

/* ---- publishing ---- */

int sync_git_published(sync_git *g, uint64_t *counter, uint64_t *log_next)
{
	char name[64];
	git_oid head;
	*counter = 0;
	if (log_next)
		*log_next = 0;
	refname(name, sizeof name, NS_LOCAL, g->self);
	int rc = ref_oid(g, name, &head);
	if (rc == 1)
		return 0;
	if (rc)
		return rc;
	git_commit *c;
	char hx[GIT_OID_HEXSZ + 1];
	if (git_commit_lookup(&c, g->repo, &head) < 0)
		return sg_fail(MCRDT_ECORRUPT, "%s: reading commit %s", name, oid_str(&head, hx));
	struct chain_msg m;
	bool ok = parse_message(git_commit_message(c), &m) && m.r == g->self;
	git_commit_free(c);
	if (!ok)
		return err_set(MCRDT_ECORRUPT, "%s: commit %s has no \"mcrdt %016" PRIx64 " FROM TO\" line", name,
			       oid_str(&head, hx), g->self);
	*counter = m.to;
	if (log_next)
		*log_next = m.log_next;
	return 0;
}

struct body_entry {
	uint64_t counter;
	git_oid id;
};

/*
 * The bodies of a publish, hashed and deflated by worker threads while
 * this thread asks body() for them and reads them (body() is the
 * caller's: it runs on the calling thread only). A job is one body; the
 * pack (its spool, dedup set and the odb) is touched under mu only.
 */
#define BODY_WORKERS_MAX 4
#define BODY_QUEUE 8

struct body_job {
	uint8_t *buf;
	size_t len, cap;
	size_t k; /* its entry in be */
};

struct body_pool {
	pthread_mutex_t mu;
	pthread_cond_t cv;     /* a job queued, a job freed, or closing */
	struct body_job jobs[BODY_QUEUE];
	struct body_job *todo[BODY_QUEUE], *idle[BODY_QUEUE];
	size_t ntodo, nidle;
	bool closing;
	int err;               /* the first failure, its message in msg */
	char msg[512];
	struct pack *p;
	struct body_entry *be;
};

static void pool_fail(struct body_pool *bp, int rc)
{
	if (!bp->err) {
		bp->err = rc;
		snprintf(bp->msg, sizeof bp->msg, "%s", mcrdt_error_last());
	}
}

static void *body_worker(void *arg)
{
	struct body_pool *bp = arg;
	struct deflater d = { 0 };
	pthread_mutex_lock(&bp->mu);
	for (;;) {
		while (!bp->ntodo && !bp->closing)
			pthread_cond_wait(&bp->cv, &bp->mu);
		if (!bp->ntodo)
			break;
		struct body_job *j = bp->todo[--bp->ntodo];
		int err = bp->err;
		pthread_mutex_unlock(&bp->mu);
		git_oid id;
		int rc = 0, seen = 0;
		if (!err) {
			sg_object_id(GIT_OBJECT_BLOB, j->buf, j->len, id.id);
			pthread_mutex_lock(&bp->mu);
			git_oid_cpy(&bp->be[j->k].id, &id);
			seen = pack_seen(bp->p, &id);
			pthread_mutex_unlock(&bp->mu);
			rc = seen < 0 ? seen : 0;
		}
		if (!err && !rc && !seen)
			rc = deflater_run(&d, j->buf, j->len);
		pthread_mutex_lock(&bp->mu);
		if (!err && !rc && !seen)
			rc = pack_put(bp->p, &id, GIT_OBJECT_BLOB, j->len, d.buf, d.out);
		if (rc)
			pool_fail(bp, rc);
		bp->idle[bp->nidle++] = j;
		pthread_cond_broadcast(&bp->cv);
	}
	pthread_mutex_unlock(&bp->mu);
	deflater_free(&d);
	return NULL;
}

static int publish_bodies(sync_git *g, struct pack *p, const crdt_op *ops, size_t n, sync_git_body_fn body,
			  void *ctx, struct body_entry *be, size_t *nbe, uint64_t *bytes)
{
	char rh[17];
	hex16(rh, g->self);
	struct body_pool bp;
	memset(&bp, 0, sizeof bp);
	bp.p = p;
	bp.be = be;
	for (size_t i = 0; i < BODY_QUEUE; i++)
		bp.idle[bp.nidle++] = &bp.jobs[i];
	pthread_mutex_init(&bp.mu, NULL);
	pthread_cond_init(&bp.cv, NULL);
	long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
	size_t nw = ncpu < 1 ? 1 : ncpu > BODY_WORKERS_MAX ? BODY_WORKERS_MAX : (size_t)ncpu, started = 0;
	pthread_t th[BODY_WORKERS_MAX];
	while (started < nw && pthread_create(&th[started], NULL, body_worker, &bp) == 0)
		started++;
	int rc = started ? 0 : err_set(MCRDT_EIO, "publish: cannot start a thread");

	for (size_t i = 0; i < n && !rc; i++) {
		if (!is_body_op(ops[i].type))
			continue;
		int fd = -1;
		if ((rc = body(ctx, &ops[i], &fd))) {
			if (fd >= 0)
				close(fd);
			break;
		}
		if (fd < 0)
			continue;
		pthread_mutex_lock(&bp.mu);
		while (!bp.nidle && !bp.err)
			pthread_cond_wait(&bp.cv, &bp.mu);
		struct body_job *j = bp.err ? NULL : bp.idle[--bp.nidle];
		pthread_mutex_unlock(&bp.mu);
		if (!j) {
			close(fd);
			break;
		}
		int r = sg_read_fd(fd, &j->buf, &j->cap, &j->len);
		if (r == -1)
			rc = err_sys(MCRDT_EIO, "publish: reading the body of op %s:%" PRIu64, rh, ops[i].id.counter);
		else
			rc = r;
		close(fd);
		pthread_mutex_lock(&bp.mu);
		if (rc) {
			bp.idle[bp.nidle++] = j;
		} else {
			j->k = *nbe;
			be[*nbe].counter = ops[i].id.counter;
			(*nbe)++;
			*bytes += j->len;
			bp.todo[bp.ntodo++] = j;
			pthread_cond_broadcast(&bp.cv);
		}
		pthread_mutex_unlock(&bp.mu);
	}
	pthread_mutex_lock(&bp.mu);
	bp.closing = true;
	pthread_cond_broadcast(&bp.cv);
	pthread_mutex_unlock(&bp.mu);
	for (size_t i = 0; i < started; i++)
		pthread_join(th[i], NULL);
	if (!rc && bp.err)
		rc = err_set(bp.err, "%s", bp.msg);
	for (size_t i = 0; i < BODY_QUEUE; i++)
		free(bp.jobs[i].buf);
	pthread_cond_destroy(&bp.cv);
	pthread_mutex_destroy(&bp.mu);
	return rc;
}

int sync_git_publish(sync_git *g, const crdt_op *ops, size_t n, uint64_t log_next, sync_git_body_fn body, void *ctx,
		     struct sync_git_stats *st)
{
	if (n == 0)
		return 0;
	char name[64], rh[17];
	refname(name, sizeof name, NS_LOCAL, g->self);
	hex16(rh, g->self);
	uint64_t published;
	int rc = sync_git_published(g, &published, NULL);
	if (rc)
		return rc;
	git_oid head;
	bool has_head = published > 0;
	if (has_head && (rc = ref_oid(g, name, &head)) != 0)
		return rc == 1 ? err_set(MCRDT_EIO, "%s vanished during a publish", name) : rc;
	for (size_t i = 0; i < n; i++) {
		if (ops[i].id.replica != g->self)
			return err_set(MCRDT_EINVAL, "publish on %s: op %zu is replica %016" PRIx64 "'s, not this one's",
				       name, i, ops[i].id.replica);
		if (ops[i].id.counter != published + 1 + i)
			return err_set(MCRDT_EINVAL,
				       "publish on %s: op %zu has counter %" PRIu64 ", expected %" PRIu64
				       " (contiguous after %" PRIu64 ")",
				       name, i, ops[i].id.counter, published + 1 + i, published);
	}
	uint64_t from = published + 1, to = published + n;

	struct vbuf ob = { 0 }, tb = { 0 };
	struct pack p;
	struct body_entry *be = NULL;
	size_t nbe = 0;
	uint64_t body_bytes = 0;
	git_oid ops_id, bodies_id, root_id, commit_id;
	char objdir[PATH_MAX];
	sg_path(objdir, sizeof objdir, "%sobjects", g->gitdir);
	if ((rc = pack_open(&p, objdir, g->odb, true)))
		goto out;
	for (size_t i = 0; i < n; i++)
		if ((rc = sync_encode_record(&ob, &ops[i])))
			goto out;
	if ((rc = pack_add(&p, GIT_OBJECT_BLOB, ob.p, ob.len, &ops_id)))
		goto out;

	if (!(be = malloc(n * sizeof *be))) {
		rc = err_set(MCRDT_ENOMEM, "out of memory publishing %zu ops", n);
		goto out;
	}
	if ((rc = publish_bodies(g, &p, ops, n, body, ctx, be, &nbe, &body_bytes)))
		goto out;

	/* bodies/: names of one width in counter order, so already sorted. */
	if (nbe) {
		for (size_t i = 0; i < nbe; i++) {
			char ent[32];
			char h[17];
			hex16(h, be[i].counter);
			int k = snprintf(ent, sizeof ent, "100644 %s", h);
			vbuf_reserve(&tb, (size_t)k + 1 + 20);
			if (tb.err)
				break;
			memcpy(tb.p + tb.len, ent, (size_t)k + 1);
			memcpy(tb.p + tb.len + k + 1, be[i].id.id, 20);
			tb.len += (size_t)k + 1 + 20;
		}
		if ((rc = tb.err) || (rc = pack_add(&p, GIT_OBJECT_TREE, tb.p, tb.len, &bodies_id)))
			goto out;
	}
	/* The root: "bodies/" sorts before "ops". */
	tb.len = 0;
	vbuf_reserve(&tb, 2 * 32 + 40);
	if ((rc = tb.err))
		goto out;
	if (nbe) {
		memcpy(tb.p + tb.len, "40000 bodies", 13);
		memcpy(tb.p + tb.len + 13, bodies_id.id, 20);
		tb.len += 33;
	}
	memcpy(tb.p + tb.len, "100644 ops", 11);
	memcpy(tb.p + tb.len + 11, ops_id.id, 20);
	tb.len += 31;
	if ((rc = pack_add(&p, GIT_OBJECT_TREE, tb.p, tb.len, &root_id)))
		goto out;

	char cbuf[512], th[GIT_OID_HEXSZ + 1], ph[GIT_OID_HEXSZ + 1];
	long long now = (long long)time(NULL);
	int cl = snprintf(cbuf, sizeof cbuf,
			  "tree %s\n%s%s%s"
			  "author mcrdt <%s@mcrdt> %lld +0000\n"
			  "committer mcrdt <%s@mcrdt> %lld +0000\n\n"
			  "mcrdt %s %" PRIu64 " %" PRIu64 "\nlog %" PRIu64 "\n",
			  oid_str(&root_id, th), has_head ? "parent " : "", has_head ? oid_str(&head, ph) : "",
			  has_head ? "\n" : "", rh, now, rh, now, rh, from, to, log_next);
	if ((rc = pack_add(&p, GIT_OBJECT_COMMIT, cbuf, (size_t)cl, &commit_id)))
		goto out;
	if ((rc = pack_finish(&p)))
		goto out;
	if (git_odb_refresh(g->odb) < 0) {
		rc = sg_fail(MCRDT_EIO, "re-reading the packs of %s", g->gitdir);
		goto out;
	}

	git_reference *ref;
	if (git_reference_create_matching(&ref, g->repo, name, &commit_id, has_head, has_head ? &head : NULL,
					  "mcrdt publish") < 0) {
		rc = sg_fail(MCRDT_EIO, "publish: moving %s to %s", name, oid_str(&commit_id, th));
		goto out;
	}
	git_reference_free(ref);
	if (st) {
		st->ops_published += n;
		st->bodies_published += nbe;
		st->body_bytes_published += body_bytes;
	}
out:
	pack_free(&p);
	vbuf_free(&ob);
	vbuf_free(&tb);
	free(be);
	return rc;
}

/* ---- talking to remotes ---- */

enum { T_AGENT = 1, T_KEY = 2, T_ENV = 4, T_HELPER = 8, T_USER = 16 };

struct xfer {
	const struct sync_git_remote *r;
	struct sync_git_stats *st, run; /* run: st plus this transfer so far */
	bool cancelled;
	unsigned tried;
	char *rejected; /* "refname: status" of the first refused update */
	int unpack;     /* a fetch's directory for the blobs it checks, or -1 */
};

static int report(struct xfer *x)
{
	if (x->r->progress && x->r->progress(x->r->progress_ctx, &x->run)) {
		x->cancelled = true;
		git_error_set_str(GIT_ERROR_CALLBACK, "cancelled");
		return -1;
	}
	return 0;
}

static int xfer_fail(struct xfer *x, const char *what)
{
	if (x->cancelled)
		return err_set(MCRDT_EIO, "%s %s: cancelled", what, x->r->url);
	return sg_fail(MCRDT_EIO, "%s %s", what, x->r->url);
}

static void wipe(char *s, size_t n)
{
	volatile char *v = s;
	while (n--)
		*v++ = 0;
}

/* `git credential fill` for url: 0 with user and pass filled, or -1. */
static int credential_fill(const char *url, char *user, size_t ulen, char *pass, size_t plen)
{
	if (strlen(url) > 4096 || strpbrk(url, "\r\n"))
		return -1;
	int in[2], out[2];
	if (pipe(in) != 0)
		return -1;
	if (pipe(out) != 0) {
		close(in[0]);
		close(in[1]);
		return -1;
	}
	/* The request fits the pipe: written before the helper starts, so a
	 * helper that exits early cannot raise SIGPIPE here. */
	char req[4200];
	int rl = snprintf(req, sizeof req, "url=%s\n\n", url);
	bool ok = write(in[1], req, (size_t)rl) == rl;
	close(in[1]);
	size_t ne = 0;
	while (environ[ne])
		ne++;
	char **env = malloc((ne + 2) * sizeof *env);
	pid_t pid = -1;
	if (ok && env) {
		size_t k = 0;
		for (size_t i = 0; i < ne; i++)
			if (strncmp(environ[i], "GIT_TERMINAL_PROMPT=", 20) != 0)
				env[k++] = environ[i];
		env[k++] = "GIT_TERMINAL_PROMPT=0";
		env[k] = NULL;
		posix_spawn_file_actions_t fa;
		posix_spawn_file_actions_init(&fa);
		posix_spawn_file_actions_adddup2(&fa, in[0], 0);
		posix_spawn_file_actions_adddup2(&fa, out[1], 1);
		/* Its complaints ("terminal prompts disabled") are not ours to print:
		 * the sync's own error says what failed. */
		posix_spawn_file_actions_addopen(&fa, 2, "/dev/null", O_WRONLY, 0);
		posix_spawn_file_actions_addclose(&fa, in[0]);
		posix_spawn_file_actions_addclose(&fa, out[0]);
		posix_spawn_file_actions_addclose(&fa, out[1]);
		char *argv[] = { "git", "credential", "fill", NULL };
		if (posix_spawnp(&pid, "git", &fa, NULL, argv, env) != 0)
			pid = -1;
		posix_spawn_file_actions_destroy(&fa);
	}
	free(env);
	close(in[0]);
	close(out[1]);
	char resp[8192];
	size_t got = 0;
	if (pid > 0) {
		for (;;) {
			ssize_t r = read(out[0], resp + got, sizeof resp - 1 - got);
			if (r < 0 && errno == EINTR)
				continue;
			if (r <= 0)
				break;
			got += (size_t)r;
			if (got == sizeof resp - 1)
				break;
		}
	}
	close(out[0]);
	int status = 1;
	if (pid > 0)
		while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
			;
	resp[got] = 0;
	int ret = -1;
	if (pid > 0 && WIFEXITED(status) && WEXITSTATUS(status) == 0) {
		user[0] = pass[0] = 0;
		for (char *line = resp, *nl; *line; line = nl + 1) {
			nl = strchr(line, '\n');
			if (!nl)
				break;
			*nl = 0;
			if (strncmp(line, "username=", 9) == 0)
				snprintf(user, ulen, "%s", line + 9);
			else if (strncmp(line, "password=", 9) == 0)
				snprintf(pass, plen, "%s", line + 9);
		}
		if (user[0] && pass[0])
			ret = 0;
	}
	wipe(resp, sizeof resp);
	return ret;
}

static int cb_credentials(git_credential **out, const char *url, const char *user_from_url, unsigned int allowed,
			  void *payload)
{
	struct xfer *x = payload;
	const char *user = user_from_url && *user_from_url ? user_from_url : "git";
	if (allowed & GIT_CREDENTIAL_SSH_KEY) {
		/* No agent to ask: libgit2 would fail the connection, not try on. */
		const char *sock = getenv("SSH_AUTH_SOCK");
		if (!(x->tried & T_AGENT) && sock && *sock) {
			x->tried |= T_AGENT;
			return git_credential_ssh_key_from_agent(out, user);
		}
		if (!(x->tried & T_KEY)) {
			x->tried |= T_KEY;
			char path[PATH_MAX];
			const char *env = getenv("MCRDT_SSH_KEY"), *home = getenv("HOME");
			if (env && *env)
				return git_credential_ssh_key_new(out, user, NULL, env, NULL);
			static const char *const names[] = { ".ssh/id_ed25519", ".ssh/id_rsa" };
			for (size_t i = 0; home && i < 2; i++) {
				sg_path(path, sizeof path, "%s/%s", home, names[i]);
				if (access(path, R_OK) == 0)
					return git_credential_ssh_key_new(out, user, NULL, path, NULL);
			}
		}
	}
	if (allowed & GIT_CREDENTIAL_USERPASS_PLAINTEXT) {
		const char *u = getenv("MCRDT_GIT_USERNAME"), *pw = getenv("MCRDT_GIT_PASSWORD");
		if (!(x->tried & T_ENV) && u && pw) {
			x->tried |= T_ENV;
			return git_credential_userpass_plaintext_new(out, u, pw);
		}
		if (!(x->tried & T_HELPER)) {
			x->tried |= T_HELPER;
			char cu[512], cp[512];
			if (credential_fill(url, cu, sizeof cu, cp, sizeof cp) == 0) {
				int rc = git_credential_userpass_plaintext_new(out, cu, cp);
				wipe(cp, sizeof cp);
				return rc;
			}
		}
	}
	if ((allowed & GIT_CREDENTIAL_USERNAME) && !(x->tried & T_USER)) {
		x->tried |= T_USER;
		return git_credential_username_new(out, user);
	}
	git_error_set_str(GIT_ERROR_NET, "authentication failed: no more credentials to try");
	return GIT_EAUTH;
}

static int cb_fetch_progress(const git_indexer_progress *s, void *payload)
{
	struct xfer *x = payload;
	if (x->st)
		x->run = *x->st;
	x->run.objects_fetched += s->received_objects;
	x->run.bytes_fetched += s->received_bytes;
	return report(x);
}

static int cb_push_progress(unsigned current, unsigned total, size_t bytes, void *payload)
{
	(void)current;
	(void)total;
	struct xfer *x = payload;
	if (x->st)
		x->run = *x->st;
	x->run.bytes_pushed += bytes;
	return report(x);
}

static int cb_push_update(const char *ref, const char *status, void *payload)
{
	struct xfer *x = payload;
	if (status && !x->rejected) {
		size_t n = strlen(ref) + strlen(status) + 3;
		if ((x->rejected = malloc(n)))
			snprintf(x->rejected, n, "%s: %s", ref, status);
	}
	return 0;
}

static void xfer_init(struct xfer *x, const struct sync_git_remote *r, struct sync_git_stats *st)
{
	memset(x, 0, sizeof *x);
	x->r = r;
	x->st = st;
	x->unpack = -1;
	if (st)
		x->run = *st;
}

/* ---- fetching ---- */

/*
 * The certificate authorities https remotes are checked against, when
 * given the way OpenSSL and curl take them (a hub with a private CA):
 * read at the first http(s) remote of the process, not when libgit2 starts.
 * Parsing them costs milliseconds, three times over when the environment
 * names the system's own file and directory (libgit2 has read its default
 * already), and a sync through a directory or ssh never needs them.
 * Tried again after a failure, whose libgit2 error the caller reports.
 */
static int certs_load(void)
{
	static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
	static bool loaded;
	pthread_mutex_lock(&mu);
	int rc = 0;
	if (!loaded) {
		const char *file = getenv("SSL_CERT_FILE"), *dir = getenv("SSL_CERT_DIR");
		if ((file && *file) || (dir && *dir))
			rc = git_libgit2_opts(GIT_OPT_SET_SSL_CERT_LOCATIONS, file && *file ? file : NULL,
					      dir && *dir ? dir : NULL);
		loaded = rc >= 0;
	}
	pthread_mutex_unlock(&mu);
	return rc;
}

/*
 * An anonymous remote for url. url.<base>.insteadOf rewriting is skipped:
 * libgit2 1.5 matches config names against it with a regex and leaks a
 * PCRE2 match block (~20 KiB) per config entry that does not match
 * (libgit2 PR #6382, fixed in 1.6), which a long-running syncer would
 * pile up.
 */
static int remote_new(git_remote **out, sync_git *g, const char *url)
{
	/* (http too: an http:// hub may redirect to https://) */
	if ((strncasecmp(url, "https://", 8) == 0 || strncasecmp(url, "http://", 7) == 0) && certs_load() < 0)
		return -1;
	git_remote_create_options o;
	git_remote_create_options_init(&o, GIT_REMOTE_CREATE_OPTIONS_VERSION);
	o.repository = g->repo;
	o.flags = GIT_REMOTE_CREATE_SKIP_INSTEADOF | GIT_REMOTE_CREATE_SKIP_DEFAULT_FETCHSPEC;
	return git_remote_create_with_opts(out, url, &o);
}

/*
 * 1, out its directory, for a url that names a repository on this machine
 * (a path, or file://); 0 for one libgit2's transports take (scp-like
 * "host:path" is a colon before any slash, as git reads it); an error for
 * a path that names no directory.
 */
static int local_dir(const char *url, char *out, size_t size)
{
	const char *path = url;
	if (strncmp(url, "file://", 7) == 0)
		path = url + 7;
	else if (strstr(url, "://"))
		return 0;
	else {
		const char *colon = strchr(url, ':'), *slash = strchr(url, '/');
		if (colon && (!slash || colon < slash))
			return 0;
	}
	/* A path: a directory, or an error that says what it is (libgit2
	 * would call it an unsupported URL protocol). */
	struct stat sb;
	if (!*path)
		return err_set(MCRDT_EINVAL, "remote %s: an empty path", url);
	if (stat(path, &sb) != 0)
		return err_sys(MCRDT_EIO, "remote %s", url);
	if (!S_ISDIR(sb.st_mode))
		return err_set(MCRDT_EINVAL, "remote %s is not a directory (a store, a git repository) nor a URL", url);
	snprintf(out, size, "%s", path);
	return 1;
}

struct staged_ref {
	char *name; /* under NS_STAGED */
	git_oid id;
};

/* e: the staged ref for local_name (a name under NS_LOCAL) at id. */
static int staged_set(struct staged_ref *e, const char *local_name, const git_oid *id)
{
	const char *rest = local_name + strlen(NS_LOCAL);
	size_t nl = strlen(NS_STAGED) + strlen(rest) + 1;
	if (!(e->name = malloc(nl)))
		return err_set(MCRDT_ENOMEM, "out of memory fetching");
	snprintf(e->name, nl, "%s%s", NS_STAGED, rest);
	git_oid_cpy(&e->id, id);
	return 0;
}

static void staged_free(struct staged_ref *v, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(v[i].name);
	free(v);
}

/* Removes the staged refs not in want[0..n) (the remote's refs, as they
 * are now): a sync would read another remote's as this one's, and one
 * left under a name that is now a directory of refs (or the reverse)
 * would fail every later fetch. */
static int unstage_others(sync_git *g, const struct staged_ref *want, size_t n)
{
	char **names;
	size_t have;
	int rc = list_refs(g, NS_STAGED "*", &names, &have);
	for (size_t i = 0; i < have && !rc; i++) {
		bool wanted = false;
		for (size_t k = 0; k < n && !wanted; k++)
			wanted = strcmp(names[i], want[k].name) == 0;
		if (!wanted && git_reference_remove(g->repo, names[i]) < 0)
			rc = sg_fail(MCRDT_EIO, "dropping the staged ref %s", names[i]);
	}
	free_names(names, have);
	return rc;
}

/* Makes the staged refs exactly want[0..n): one already staged with its id
 * is left as it is, so a fetch that brings nothing writes nothing. */
static int stage_exactly(sync_git *g, const struct staged_ref *want, size_t n, const char *url)
{
	int rc = unstage_others(g, want, n);
	for (size_t k = 0; k < n && !rc; k++) {
		git_oid cur;
		git_reference *ref;
		if ((rc = ref_oid(g, want[k].name, &cur)) < 0)
			break;
		if (rc == 0 && git_oid_equal(&cur, &want[k].id))
			continue;
		rc = 0;
		if (git_reference_create(&ref, g->repo, want[k].name, &want[k].id, 1, "mcrdt fetch") < 0)
			rc = sg_fail(MCRDT_EIO, "fetch from %s: setting %s", url, want[k].name);
		else
			git_reference_free(ref);
	}
	return rc;
}

/* The staged refs a connected remote's refs/mcrdt/ refs make: *want
 * malloc'd, *n of them (names git takes as refs only, as libgit2's own
 * update does). */
static int remote_wants(git_remote *rem, const char *url, struct staged_ref **want, size_t *n)
{
	const git_remote_head **heads;
	size_t nheads = 0;
	*n = 0;
	*want = NULL;
	if (git_remote_ls(&heads, &nheads, rem) < 0)
		return sg_fail(MCRDT_EIO, "fetch from %s: listing its refs", url);
	if (!(*want = calloc(nheads ? nheads : 1, sizeof **want)))
		return err_set(MCRDT_ENOMEM, "out of memory fetching");
	for (size_t i = 0; i < nheads; i++) {
		const char *nm = heads[i]->name;
		int valid = 0;
		if (strncmp(nm, NS_LOCAL, strlen(NS_LOCAL)) != 0 || git_reference_name_is_valid(&valid, nm) < 0 ||
		    !valid)
			continue;
		int rc = staged_set(&(*want)[*n], nm, &heads[i]->oid);
		if (rc)
			return rc;
		(*n)++;
	}
	return 0;
}

static int fetch_slow(sync_git *g, struct xfer *x)
{
	git_remote *rem;
	if (remote_new(&rem, g, x->r->url) < 0)
		return sg_fail(MCRDT_EIO, "remote %s", x->r->url);
	git_fetch_options fo;
	git_fetch_options_init(&fo, GIT_FETCH_OPTIONS_VERSION);
	fo.callbacks.credentials = cb_credentials;
	fo.callbacks.transfer_progress = cb_fetch_progress;
	fo.callbacks.payload = x;
	fo.download_tags = GIT_REMOTE_DOWNLOAD_TAGS_NONE;
	fo.prune = GIT_FETCH_NO_PRUNE;
	fo.update_fetchhead = 0;
	char *spec = "+refs/mcrdt/*:refs/mcrdt-fetch/*";
	git_strarray specs = { &spec, 1 };
	/* The remote's refs first, and the staged refs it lacks removed
	 * before libgit2 writes its own (only those whose id changed). */
	struct staged_ref *want = NULL;
	size_t n = 0;
	int rc = git_remote_connect(rem, GIT_DIRECTION_FETCH, &fo.callbacks, &fo.proxy_opts, &fo.custom_headers) < 0
			 ? xfer_fail(x, "fetch from")
			 : remote_wants(rem, x->r->url, &want, &n);
	if (!rc)
		rc = unstage_others(g, want, n);
	/* (on the connection made above) */
	if (!rc && git_remote_fetch(rem, &specs, &fo, "mcrdt fetch") < 0)
		rc = xfer_fail(x, "fetch from");
	if (!rc && x->st) {
		const git_indexer_progress *s = git_remote_stats(rem);
		x->st->objects_fetched += s->received_objects;
		x->st->bytes_fetched += s->received_bytes;
	}
	staged_free(want, n);
	git_remote_free(rem);
	return rc;
}

/*
 * Loads a remote pack index (version 2) into *ix (checked against its
 * checksum; the caller frees it) and marks in *missing (NULL: none) the
 * objects that neither odb nor out (this transfer's pack) holds.
 */
static int idx_check(git_odb *odb, const struct pack *out, const char *url, const char *path, uint64_t pack_size,
		     struct pack_idx *ix, uint8_t **missing)
{
	char who[PATH_MAX];
	sg_path(who, sizeof who, "remote %s", url);
	/* An index takes at most 36 bytes an object, and an object at least
	 * 9 bytes of its pack: a larger one is not read (a file on a hub may
	 * be of any size). A "pack" too short to be one (or not a file, whose
	 * reading names it) leaves room for a small index. */
	uint64_t max = 8 + 1024 + 40 + 4 * (pack_size < 32 ? 1u << 18 : pack_size);
	int rc = idx_load(who, path, max > SIZE_MAX ? SIZE_MAX : (size_t)max, ix);
	if (rc == MCRDT_ETOOBIG)
		return err_set(MCRDT_ECORRUPT, "%s: pack index %s is larger than its pack could need", who, path);
	if (rc)
		return rc;
	*missing = NULL;
	for (uint32_t i = 0; i < ix->n; i++) {
		git_oid id;
		memcpy(id.id, ix->ids + (size_t)i * 20, 20);
		if (git_odb_exists_ext(odb, &id, GIT_ODB_LOOKUP_NO_REFRESH) || pack_has(out, &id))
			continue;
		if (!*missing && !(*missing = calloc(ix->n, 1))) {
			idx_free(ix);
			return err_set(MCRDT_ENOMEM, "out of memory reading %s", path);
		}
		(*missing)[i] = 1;
	}
	return 0;
}

static void count_moved(struct xfer *x, bool fetch, uint64_t objects, uint64_t bytes)
{
	if (fetch) {
		x->run.objects_fetched += objects;
		x->run.bytes_fetched += bytes;
	} else {
		x->run.bytes_pushed += bytes;
	}
	if (x->st && fetch) {
		x->st->objects_fetched += objects;
		x->st->bytes_fetched += bytes;
	} else if (x->st) {
		x->st->bytes_pushed += bytes;
	}
}

/* ---- peer packs known to be held ---- */

/*
 * The peer packs every object of which this repository holds, by name
 * ("pack-" and 40 hex digits: a pack is named by its content), newest
 * first, at most HELD_MAX: a local fetch skips them as it skips a pack it
 * holds under the same name, without reading their index again. (That
 * read and a lookup per object cost about 10 ms per 100,000 objects at
 * every sync, for each pack the fetch took only some objects of, or whose
 * name went in a merge here.) True for good: a repository never drops an
 * object. Kept in <gitdir>held-packs, only for fetches: a push's target
 * may be made again empty under the same name.
 */
#define HELD_MAX 1024
#define HELD_LEN 45 /* "pack-" + 40 hex */
#define HELD_REC (HELD_LEN + 1) /* a name and its newline */

struct held {
	struct vbuf b; /* HELD_REC-byte records, newest first */
	bool changed;
	const char *gitdir;
};

static bool held_name_ok(const char *s, size_t len)
{
	if (len != HELD_LEN || memcmp(s, "pack-", 5) != 0)
		return false;
	for (size_t i = 5; i < len; i++)
		if (sg_hex_digit(s[i]) < 0)
			return false;
	return true;
}

/* The list of the repository at gitdir, or none when it is missing or
 * damaged (a cache: the indexes are read again). */
static void held_load(struct held *h, const char *gitdir)
{
	memset(h, 0, sizeof *h);
	h->gitdir = gitdir;
	uint8_t *data;
	size_t len;
	if (read_file_summed(gitdir, "held-packs", HELD_MAX * HELD_REC + 8, &data, &len) != 0)
		return;
	if (len % HELD_REC == 0) {
		h->b.p = data;
		h->b.len = h->b.cap = len;
	} else {
		free(data);
	}
}

static bool held_has(const struct held *h, const char *base)
{
	if (!h || strlen(base) != HELD_LEN)
		return false;
	for (size_t at = 0; at < h->b.len; at += HELD_REC)
		if (memcmp(h->b.p + at, base, HELD_LEN) == 0)
			return true;
	return false;
}

/* base in front (the oldest goes past HELD_MAX). Out of memory leaves
 * the list as it was. */
static void held_add(struct held *h, const char *base)
{
	if (!h || held_has(h, base) || !held_name_ok(base, strlen(base)) || vbuf_reserve(&h->b, HELD_REC))
		return;
	size_t keep = h->b.len < (HELD_MAX - 1) * HELD_REC ? h->b.len : (HELD_MAX - 1) * HELD_REC;
	memmove(h->b.p + HELD_REC, h->b.p, keep);
	memcpy(h->b.p, base, HELD_LEN);
	h->b.p[HELD_LEN] = '\n';
	h->b.len = keep + HELD_REC;
	h->changed = true;
}

/* Writes the list when it changed, in place and not synced, as any cache
 * (rewrite_file_summed; the sync lock keeps fetches apart): it names only
 * packs in place and synced, and a list lost or torn is only read again.
 * A failure is not the fetch's, nor is its message. */
static void held_save(struct held *h)
{
	if (!h->changed)
		return;
	char saved[1024];
	snprintf(saved, sizeof saved, "%s", mcrdt_error_last());
	if (rewrite_file_summed(h->gitdir, "held-packs", &h->b) != 0)
		err_set(0, "%s", saved);
}

static void (*g_after_pack)(void *); /* sync_git_test_after_pack */
static void *g_after_pack_arg;

/*
 * Brings into dstdir (whose odb is dst) the objects of the pack base of
 * the pack directory srcdir that dst lacks, every one checked: into out
 * when they are few, else the pack whole (pack_take).
 * held (NULL for a push): packs known held, skipped, and this one added.
 * 2 when it took any, 0 when it had no need, 1 when the pack went while
 * we looked (merged by another process: list again).
 */
static int copy_pack(struct xfer *x, bool fetch, const char *srcdir, const struct srcpack *sp, const char *dstdir,
		     git_odb *dst, struct pack *out, struct held *held)
{
	const char *base = sp->base;
	const char *url = x->r->url;
	char sidx[PATH_MAX], spack[PATH_MAX], dir[PATH_MAX];
	sg_path(dir, sizeof dir, "%s/pack/%s.idx", dstdir, base);
	if (held_has(held, base) || access(dir, F_OK) == 0)
		return 0; /* packs are named by their content */
	sg_path(sidx, sizeof sidx, "%s/%s.idx", srcdir, base);
	sg_path(spack, sizeof spack, "%s/%s.pack", srcdir, base);
	struct pack_idx ix;
	uint8_t *missing = NULL;
	int rc = idx_check(dst, out, url, sidx, sp->size, &ix, &missing);
	if (rc)
		return sg_gone(sidx) ? 1 : rc;
	if (!missing) {
		held_add(held, base); /* (kept only when the transfer succeeds) */
		idx_free(&ix);
		return 0;
	}
	char who[PATH_MAX];
	sg_path(who, sizeof who, "%s %s", fetch ? "fetch from" : "push to", url);
	uint64_t nobj = 0, bytes = 0;
	rc = pack_take(who, spack, &ix, missing, dstdir, base, dst, out, x->unpack, &nobj, &bytes);
	idx_free(&ix);
	free(missing);
	if (rc)
		return rc == 1 || sg_gone(spack) ? 1 : rc;
	held_add(held, base);
	count_moved(x, fetch, nobj, bytes);
	return report(x) != 0 ? err_set(MCRDT_EIO, "%s %s: cancelled", fetch ? "fetch from" : "push to", url) : 2;
}

struct copy_loose {
	struct xfer *x;
	bool fetch;
	git_odb *src, *dst;
};

static int copy_one_loose(void *vc, const git_oid *id, const char *hex)
{
	struct copy_loose *c = vc;
	const char *url = c->x->r->url, *what = c->fetch ? "fetch from" : "push to";
	if (git_odb_exists(c->dst, id))
		return 0;
	git_odb_object *o;
	git_oid got;
	if (git_odb_read(&o, c->src, id) < 0)
		return sg_fail(MCRDT_EIO, "%s %s: reading object %s", what, url, hex);
	int rc = 0;
	if (git_odb_write(&got, c->dst, git_odb_object_data(o), git_odb_object_size(o), git_odb_object_type(o)) < 0)
		rc = sg_fail(MCRDT_EIO, "%s %s: storing object %s", what, url, hex);
	else if (!git_oid_equal(&got, id))
		rc = err_set(MCRDT_EIO, "%s %s: object %s is corrupt", what, url, hex);
	else
		count_moved(c->x, c->fetch, 1, git_odb_object_size(o));
	git_odb_object_free(o);
	return rc;
}

/*
 * Copies into the objects directory dstdir (whose odb is dst) what srcdir
 * (odb src) holds and dst lacks, every object checked: out of each pack
 * with an object dst lacks (copy_pack; what is taken out of packs goes
 * into one new pack), and loose objects through the odbs. fetch: counts
 * as fetched, else as pushed. A pack that goes while we copy (another
 * process consolidating srcdir) sends us back to list the packs again:
 * the pack it went into was in place before it went.
 */
static int copy_objects(struct xfer *x, bool fetch, const char *srcdir, git_odb *sodb, const char *dstdir,
			git_odb *dst, const char *gitdir)
{
	const char *url = x->r->url, *what = fetch ? "fetch from" : "push to";
	char dir[PATH_MAX];
	sg_path(dir, sizeof dir, "%s/pack", srcdir);
	struct pack out = { .fd = -1 }; /* the objects taken out of packs */
	struct held held;
	bool copied = false;
	int rc = 0;
	if (gitdir)
		held_load(&held, gitdir);
	for (unsigned pass = 0; !rc; pass++) {
		struct srcpack *s;
		size_t n;
		bool vanished = false;
		rc = list_packs(dir, true, &s, &n);
		for (size_t i = 0; i < n && !rc; i++) {
			if ((rc = copy_pack(x, fetch, dir, &s[i], dstdir, dst, &out, gitdir ? &held : NULL)) < 0)
				break;
			vanished |= rc == 1;
			copied |= rc == 2;
			rc = 0;
			if (g_after_pack)
				g_after_pack(g_after_pack_arg);
		}
		free(s);
		if (!vanished)
			break;
		if (!rc && pass == 8)
			rc = err_set(MCRDT_EIO, "%s %s: its packs keep changing under us (sync again)", what, url);
	}
	/* The packs' names reach the disk before a ref can name their
	 * objects: pack_finish syncs the directory. */
	sg_path(dir, sizeof dir, "%s/pack", dstdir);
	bool took = out.count != 0;
	if (!rc && took)
		rc = pack_finish(&out);
	else if (!rc && copied)
		rc = sync_dir(dir);
	pack_free(&out);
	/* (a whole import refreshed the odb already) */
	if (!rc && took && git_odb_refresh(dst) < 0)
		rc = sg_fail(MCRDT_EIO, "%s %s: re-reading the packs", what, url);
	if (!rc && gitdir)
		held_save(&held); /* what it names is in place and synced */
	if (gitdir)
		vbuf_free(&held.b);
	if (rc)
		return rc;
	/* Loose objects (a repository we wrote has none), through the odbs. */
	struct copy_loose c = { x, fetch, sodb, dst };
	return loose_each(srcdir, copy_one_loose, &c);
}

/*
 * Opens the repository at path for a local fetch or push (what: "fetch
 * from" or "push to", for errors): *rr, its odb *rodb, its objects
 * directory objdir. 1 when the fast path does not apply (it borrows
 * objects through alternates, or it is our own): nothing is left open.
 */
static int local_open(sync_git *g, const char *path, const char *what, const char *url, git_repository **rr,
		      git_odb **rodb, char objdir[PATH_MAX])
{
	*rodb = NULL;
	if (git_repository_open_ext(rr, path, GIT_REPOSITORY_OPEN_NO_SEARCH, NULL) < 0)
		return sg_fail(MCRDT_EIO, "%s %s: not a git repository", what, url);
	char alt[PATH_MAX];
	sg_path(objdir, PATH_MAX, "%sobjects", git_repository_commondir(*rr));
	sg_path(alt, sizeof alt, "%s/info/alternates", objdir);
	int rc = 0;
	if (access(alt, F_OK) == 0 || strcmp(git_repository_commondir(*rr), g->gitdir) == 0)
		rc = 1;
	else if (git_repository_odb(rodb, *rr) < 0)
		rc = sg_fail(MCRDT_EIO, "%s %s: opening its objects", what, url);
	if (rc) {
		git_repository_free(*rr);
		*rr = NULL;
	}
	return rc;
}

static int fetch_local(sync_git *g, struct xfer *x, const char *path)
{
	const char *url = x->r->url;
	git_repository *rr;
	git_odb *rodb;
	char objdir[PATH_MAX];
	int rc = local_open(g, path, "fetch from", url, &rr, &rodb, objdir);
	if (rc)
		return rc;
	struct staged_ref *refs = NULL;
	size_t nrefs = 0;

	/* The refs first: objects a concurrent writer adds after this are
	 * harmless; a ref read after its objects were copied could name
	 * objects we do not have. */
	git_reference_iterator *it;
	if (git_reference_iterator_glob_new(&it, rr, NS_LOCAL "*") < 0) {
		rc = sg_fail(MCRDT_EIO, "fetch from %s: listing refs", url);
		goto out;
	}
	git_reference *ref;
	int r;
	size_t cap = 0;
	while ((r = git_reference_next(&ref, it)) == 0) {
		git_reference *res = NULL;
		if (git_reference_resolve(&res, ref) < 0) {
			git_reference_free(ref);
			continue; /* a dangling symbolic ref: nothing to fetch */
		}
		if ((rc = GROW(refs, cap, nrefs + 1))) {
			git_reference_free(res);
			git_reference_free(ref);
			break;
		}
		if ((rc = staged_set(&refs[nrefs], git_reference_name(ref), git_reference_target(res))) == 0)
			nrefs++;
		git_reference_free(res);
		git_reference_free(ref);
		if (rc)
			break;
	}
	if (!rc && r != GIT_ITEROVER)
		rc = sg_fail(MCRDT_EIO, "fetch from %s: listing refs", url);
	git_reference_iterator_free(it);
	if (rc)
		goto out;

	char mine[PATH_MAX];
	sg_path(mine, sizeof mine, "%sobjects", g->gitdir);
	if ((rc = copy_objects(x, true, objdir, rodb, mine, g->odb, g->gitdir)))
		goto out;

	for (size_t i = 0; i < nrefs; i++) {
		char hx[GIT_OID_HEXSZ + 1];
		if (!git_odb_exists(g->odb, &refs[i].id)) {
			rc = err_set(MCRDT_EIO, "fetch from %s: ref refs/mcrdt/%s names %s, which it does not hold", url,
				     refs[i].name + strlen(NS_STAGED), oid_str(&refs[i].id, hx));
			goto out;
		}
	}
	rc = stage_exactly(g, refs, nrefs, url);
out:
	staged_free(refs, nrefs);
	git_odb_free(rodb);
	git_repository_free(rr);
	return rc;
}

/* ---- blobs a local fetch unpacked ---- */

#define UNPACKED "unpacked"

/* Empties the directory fd dir (files only: nothing else is made there);
 * whether it is empty then. */
static bool empty_dir(int dir)
{
	int fd = openat(dir, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC); /* (a dup would share the position) */
	DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
	if (!d) {
		if (fd >= 0)
			close(fd);
		return false;
	}
	bool empty = true;
	for (int pass = 0; pass < 2; pass++) { /* the second only looks: readdir may skip what goes under it */
		struct dirent *e;
		rewinddir(d);
		errno = 0;
		while ((e = readdir(d)))
			if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0 &&
			    (pass || unlinkat(dir, e->d_name, 0) != 0))
				empty = false;
		empty = empty && errno == 0;
	}
	closedir(d);
	return empty;
}

/* g's unpacked directory, made and emptied (what a killed sync left goes);
 * -1 when it cannot be had empty: the fetch then keeps nothing, and no
 * file it did not prove is ever offered. */
static int unpacked_open(sync_git *g)
{
	if (g->unpacked < 0) {
		char path[PATH_MAX];
		sg_path(path, sizeof path, "%s" UNPACKED, g->gitdir);
		if (mkdir(path, 0700) != 0 && errno != EEXIST)
			return -1;
		g->unpacked = open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	}
	if (g->unpacked >= 0 && !empty_dir(g->unpacked)) {
		close(g->unpacked);
		g->unpacked = -1;
	}
	return g->unpacked;
}

bool sync_git_unpacked(sync_git *g, const sync_oid *id, int *dir, char name[41])
{
	git_oid oid;
	if (g->unpacked < 0)
		return false;
	memcpy(oid.id, id->id, 20);
	git_oid_tostr(name, GIT_OID_HEXSZ + 1, &oid);
	*dir = g->unpacked;
	return true;
}

void sync_git_unpacked_clear(sync_git *g)
{
	if (g->unpacked < 0)
		return;
	empty_dir(g->unpacked);
	close(g->unpacked);
	g->unpacked = -1;
}

int sync_git_fetch(sync_git *g, const struct sync_git_remote *r, struct sync_git_stats *st)
{
	if (!r || !r->url || !*r->url)
		return err_set(MCRDT_EINVAL, "fetch: no remote url");
	struct xfer x;
	xfer_init(&x, r, st);
	int rc;
	char path[PATH_MAX];
	int local = local_dir(r->url, path, sizeof path);
	if (local < 0)
		return local;
	int unpack = unpacked_open(g); /* whatever the transport: a killed sync's files go */
	if (!g->transport_only && local) {
		x.unpack = unpack;
		if ((rc = fetch_local(g, &x, path)) != 1)
			return rc;
	}
	sync_git_unpacked_clear(g);
	return fetch_slow(g, &x);
}

void sync_git_test_after_pack(void (*fn)(void *), void *arg)
{
	g_after_pack = fn;
	g_after_pack_arg = arg;
}

void sync_git_test_transport_only(sync_git *g, bool on)
{
	g->transport_only = on;
}

/* ---- reading what is new ---- */

struct replica_refs {
	uint64_t r;
	bool has_local, has_staged;
	git_oid local, staged;
};

/* Checks that ref name's target is a commit. */
static int check_commit_ref(sync_git *g, const char *name, const git_oid *id)
{
	git_object *o;
	char hx[GIT_OID_HEXSZ + 1];
	int rc = git_object_lookup(&o, g->repo, id, GIT_OBJECT_ANY);
	if (rc == GIT_ENOTFOUND)
		return err_set(MCRDT_ECORRUPT, "ref %s names object %s, which is missing", name, oid_str(id, hx));
	if (rc < 0)
		return sg_fail(MCRDT_ECORRUPT, "ref %s: reading object %s", name, oid_str(id, hx));
	git_object_t t = git_object_type(o);
	git_object_free(o);
	if (t != GIT_OBJECT_COMMIT)
		return err_set(MCRDT_ECORRUPT, "ref %s points at a %s, not a commit", name, git_object_type2string(t));
	return 0;
}

static int collect_refs(sync_git *g, const char *ns, bool staged, struct replica_refs **arr, size_t *n,
			size_t *cap)
{
	char glob[64], **names;
	size_t nn;
	snprintf(glob, sizeof glob, "%s*", ns);
	int rc = list_refs(g, glob, &names, &nn);
	if (rc)
		return rc;
	for (size_t i = 0; i < nn && !rc; i++) {
		uint64_t r;
		git_oid id;
		if (!parse_hex16(names[i] + strlen(ns), &r) || r == 0) {
			rc = err_set(MCRDT_ECORRUPT, "ref %s: the name is not a replica id (16 lowercase hex digits)",
				     names[i]);
			break;
		}
		if ((rc = ref_oid(g, names[i], &id)) != 0) {
			if (rc == 1)
				rc = 0; /* gone meanwhile */
			continue;
		}
		if ((rc = check_commit_ref(g, names[i], &id)))
			break;
		size_t k;
		for (k = 0; k < *n && (*arr)[k].r != r; k++)
			;
		if (k == *n) {
			if ((rc = GROW(*arr, *cap, *n + 1)))
				break;
			memset(&(*arr)[k], 0, sizeof (*arr)[k]);
			(*arr)[k].r = r;
			(*n)++;
		}
		if (staged) {
			(*arr)[k].has_staged = true;
			(*arr)[k].staged = id;
		} else {
			(*arr)[k].has_local = true;
			(*arr)[k].local = id;
		}
	}
	free_names(names, nn);
	return rc;
}

/*
 * Reads commit c of replica r's chain and checks it (message, tree, ops,
 * bodies). With fn, calls fn for each op above base instead of checking
 * the bodies' layout again.
 */
static int chain_commit(sync_git *g, uint64_t r, const git_oid *cid, const struct chain_msg *m, uint64_t base,
			sync_git_op_fn fn, void *ctx, struct sync_git_stats *st)
{
	char rh[17], ch[GIT_OID_HEXSZ + 1];
	hex16(rh, r);
	oid_str(cid, ch);
	git_commit *c = NULL;
	git_tree *tree = NULL, *bodies = NULL;
	git_blob *ops = NULL;
	uint8_t *types = NULL;
	crdt_op op;
	crdt_op_init(&op, CRDT_OP_APPEND);
	int rc = 0;
	if (git_commit_lookup(&c, g->repo, cid) < 0 || git_commit_tree(&tree, c) < 0) {
		rc = sg_fail(MCRDT_ECORRUPT, "replica %s: commit %s: cannot read it or its tree", rh, ch);
		goto out;
	}
	size_t ne = git_tree_entrycount(tree);
	const git_tree_entry *eo = git_tree_entry_byname(tree, "ops"), *eb = git_tree_entry_byname(tree, "bodies");
	if (!eo || git_tree_entry_type(eo) != GIT_OBJECT_BLOB || git_tree_entry_filemode(eo) != GIT_FILEMODE_BLOB ||
	    (eb && git_tree_entry_type(eb) != GIT_OBJECT_TREE) || ne != 1u + (eb != NULL)) {
		rc = err_set(MCRDT_ECORRUPT,
			     "replica %s: commit %s: the tree is not an 'ops' blob and an optional 'bodies' tree", rh,
			     ch);
		goto out;
	}
	if (git_blob_lookup(&ops, g->repo, git_tree_entry_id(eo)) < 0 ||
	    (eb && git_tree_lookup(&bodies, g->repo, git_tree_entry_id(eb)) < 0)) {
		rc = sg_fail(MCRDT_ECORRUPT, "replica %s: commit %s: cannot read its ops or bodies", rh, ch);
		goto out;
	}
	const uint8_t *p = git_blob_rawcontent(ops);
	size_t len = (size_t)git_blob_rawsize(ops);
	uint64_t count = m->to - m->from + 1;
	if (count > len / 8 + 1) {
		rc = err_set(MCRDT_ECORRUPT, "replica %s: commit %s claims %" PRIu64 " ops in %zu bytes", rh, ch,
			     count, len);
		goto out;
	}
	if (!fn && !(types = calloc((size_t)count, 1))) {
		rc = err_set(MCRDT_ENOMEM, "out of memory reading commit %s", ch);
		goto out;
	}
	size_t off = 0;
	for (uint64_t k = 0; k < count; k++) {
		size_t used;
		crdt_op_reset(&op);
		int d = sync_decode_record_into(p + off, len - off, 0, &op, &used);
		if (d) {
			rc = err_set(d == MCRDT_EVERSION ? MCRDT_EVERSION : MCRDT_ECORRUPT,
				     "replica %s: commit %s: op %" PRIu64 " (byte %zu of its ops) %s: %s", rh, ch,
				     m->from + k, off, d == MCRDT_EPENDING ? "is cut short" : "does not decode",
				     mcrdt_error_last());
			goto out;
		}
		off += used;
		if (op.id.replica != r || op.id.counter != m->from + k) {
			rc = err_set(MCRDT_ECORRUPT,
				     "replica %s: commit %s: op %" PRIu64 " of the chain is named %016" PRIx64 ":%" PRIu64,
				     rh, ch, m->from + k, op.id.replica, op.id.counter);
			goto out;
		}
		if (!fn) {
			types[k] = (uint8_t)op.type;
			continue;
		}
		if (op.id.counter <= base)
			continue;
		const git_tree_entry *be = NULL;
		if (bodies && is_body_op(op.type)) {
			char h[17];
			hex16(h, op.id.counter);
			be = git_tree_entry_byname(bodies, h);
		}
		sync_oid bid;
		if (be)
			memcpy(bid.id, git_tree_entry_id(be)->id, 20);
		if ((rc = fn(ctx, &op, be ? &bid : NULL)))
			goto out;
		if (st) {
			st->ops_read++;
			st->bodies_read += be != NULL;
		}
	}
	if (off != len) {
		rc = err_set(MCRDT_ECORRUPT, "replica %s: commit %s: %zu bytes after op %" PRIu64 " in its ops", rh, ch,
			     len - off, m->to);
		goto out;
	}
	if (fn || !bodies)
		goto out;
	size_t nb = git_tree_entrycount(bodies);
	for (size_t i = 0; i < nb; i++) {
		const git_tree_entry *e = git_tree_entry_byindex(bodies, i);
		uint64_t cnt;
		const char *nm = git_tree_entry_name(e);
		if (!parse_hex16(nm, &cnt) || cnt < m->from || cnt > m->to || !is_body_op(types[cnt - m->from]) ||
		    git_tree_entry_type(e) != GIT_OBJECT_BLOB || git_tree_entry_filemode(e) != GIT_FILEMODE_BLOB) {
			rc = err_set(MCRDT_ECORRUPT,
				     "replica %s: commit %s: bodies/%s is not the body blob of a message op of the commit",
				     rh, ch, nm);
			goto out;
		}
		if (!git_odb_exists(g->odb, git_tree_entry_id(e))) {
			char bh[GIT_OID_HEXSZ + 1];
			rc = err_set(MCRDT_ECORRUPT, "replica %s: commit %s: body blob %s (bodies/%s) is missing", rh, ch,
				     oid_str(git_tree_entry_id(e), bh), nm);
			goto out;
		}
	}
out:
	crdt_op_free(&op);
	free(types);
	git_blob_free(ops);
	git_tree_free(bodies);
	git_tree_free(tree);
	git_commit_free(c);
	return rc;
}

struct chain_link {
	git_oid id;
	struct chain_msg m;
};

/* Replica r's commits from head back to the first that base covers, all
 * checked; *out newest first. */
static int chain_walk(sync_git *g, uint64_t r, const git_oid *head, uint64_t base, struct chain_link **out,
		      size_t *n)
{
	char rh[17], ch[GIT_OID_HEXSZ + 1];
	hex16(rh, r);
	git_oid cur = *head;
	size_t cap = 0;
	uint64_t next_from = 0; /* from of the commit after cur (0: cur is the head) */
	*out = NULL;
	*n = 0;
	for (;;) {
		git_commit *c;
		oid_str(&cur, ch);
		if (git_commit_lookup(&c, g->repo, &cur) < 0)
			return sg_fail(MCRDT_ECORRUPT, "replica %s: commit %s", rh, ch);
		struct chain_msg m;
		bool ok = parse_message(git_commit_message(c), &m);
		unsigned np = git_commit_parentcount(c);
		git_oid parent;
		if (np == 1)
			git_oid_cpy(&parent, git_commit_parent_id(c, 0));
		git_commit_free(c);
		if (!ok || m.r != r)
			return err_set(MCRDT_ECORRUPT,
				       "replica %s: commit %s: the message does not start \"mcrdt %s FROM TO\"", rh, ch, rh);
		if (next_from && m.to + 1 != next_from)
			return err_set(MCRDT_ECORRUPT,
				       "replica %s: commit %s holds ops %" PRIu64 "..%" PRIu64
				       ", the next commit starts at %" PRIu64 " (not contiguous)",
				       rh, ch, m.from, m.to, next_from);
		if (m.to <= base)
			return 0;
		if (np > 1)
			return err_set(MCRDT_ECORRUPT, "replica %s: commit %s has %u parents (a chain has one)", rh, ch,
				       np);
		if (np == 0 && m.from != 1)
			return err_set(MCRDT_ECORRUPT,
				       "replica %s: commit %s is the first of the chain but starts at op %" PRIu64, rh, ch,
				       m.from);
		int rc = chain_commit(g, r, &cur, &m, base, NULL, NULL, NULL);
		if (rc)
			return rc;
		if ((rc = GROW(*out, cap, *n + 1)))
			return rc;
		(*out)[*n].id = cur;
		(*out)[*n].m = m;
		(*n)++;
		if (np == 0)
			return 0;
		next_from = m.from;
		cur = parent;
	}
}

int sync_git_read_new(sync_git *g, const crdt_vv *known, sync_git_op_fn fn, void *ctx, struct sync_git_stats *st)
{
	struct replica_refs *rr = NULL;
	size_t n = 0, cap = 0;
	int rc = collect_refs(g, NS_LOCAL, false, &rr, &n, &cap);
	if (!rc)
		rc = collect_refs(g, NS_STAGED, true, &rr, &n, &cap);
	for (size_t i = 0; i < n && !rc; i++) {
		struct replica_refs *e = &rr[i];
		char rh[17], sh[GIT_OID_HEXSZ + 1], lh[GIT_OID_HEXSZ + 1];
		hex16(rh, e->r);
		if (e->r == g->self) {
			if (!e->has_staged || (e->has_local && git_oid_equal(&e->staged, &e->local)))
				continue;
			int d = e->has_local ? git_graph_descendant_of(g->repo, &e->local, &e->staged) : 0;
			if (d < 0)
				rc = sg_fail(MCRDT_EIO, "replica %s (this one): comparing commits", rh);
			else if (d == 0)
				rc = err_set(MCRDT_ECORRUPT,
					     "replica %s (this one): the remote holds commit %s of our chain, which is not "
					     "in ours (%s): this replica lost ops it published; re-create it with a new id",
					     rh, oid_str(&e->staged, sh), e->has_local ? oid_str(&e->local, lh) : "empty");
			continue;
		}
		const git_oid *head = e->has_staged ? &e->staged : &e->local;
		if (e->has_staged && e->has_local && !git_oid_equal(&e->staged, &e->local)) {
			int ahead = git_graph_descendant_of(g->repo, &e->staged, &e->local);
			int behind = ahead == 0 ? git_graph_descendant_of(g->repo, &e->local, &e->staged) : 0;
			if (ahead < 0 || behind < 0) {
				rc = sg_fail(MCRDT_EIO, "replica %s: comparing commits", rh);
				break;
			}
			if (!ahead && !behind) {
				rc = err_set(MCRDT_ECORRUPT,
					     "replica %s: the remote's history (commit %s) does not extend ours (commit %s)",
					     rh, oid_str(&e->staged, sh), oid_str(&e->local, lh));
				break;
			}
			if (behind)
				head = &e->local;
		}
		uint64_t base = crdt_vv_base(known, e->r);
		struct chain_link *links;
		size_t nl;
		rc = chain_walk(g, e->r, head, base, &links, &nl);
		for (size_t k = nl; k-- > 0 && !rc;)
			rc = chain_commit(g, e->r, &links[k].id, &links[k].m, base, fn, ctx, st);
		free(links);
	}
	free(rr);
	return rc;
}

/*
 * Whether commit newer strictly extends ref name (1; also when there is no
 * such ref), or not (0: level, behind or apart); <0 an error. *old gets the
 * ref's value and *has whether it exists.
 */
static int extends(sync_git *g, const git_oid *newer, const char *name, git_oid *old, bool *has)
{
	int r = ref_oid(g, name, old);
	*has = r == 0;
	if (r != 0)
		return r < 0 ? r : 1;
	if (git_oid_equal(newer, old))
		return 0;
	int d = git_graph_descendant_of(g->repo, newer, old);
	return d < 0 ? sg_fail(MCRDT_EIO, "comparing a commit with %s", name) : d;
}

int sync_git_adopt(sync_git *g)
{
	char **names;
	size_t n;
	int rc = list_refs(g, NS_STAGED "*", &names, &n);
	if (rc)
		return rc;
	for (size_t i = 0; i < n && !rc; i++) {
		uint64_t r;
		git_oid staged, local;
		if (!parse_hex16(names[i] + strlen(NS_STAGED), &r) || r == 0 || r == g->self)
			continue;
		if ((rc = ref_oid(g, names[i], &staged)) == 1) {
			rc = 0;
			continue;
		}
		if (rc)
			break;
		char lname[64], hx[GIT_OID_HEXSZ + 1];
		refname(lname, sizeof lname, NS_LOCAL, r);
		bool has;
		int ahead = extends(g, &staged, lname, &local, &has);
		if (ahead <= 0) {
			rc = ahead;
			continue;
		}
		git_reference *ref;
		if (git_reference_create_matching(&ref, g->repo, lname, &staged, has, has ? &local : NULL,
						  "mcrdt adopt") < 0) {
			rc = sg_fail(MCRDT_EIO, "adopt: moving %s to %s", lname, oid_str(&staged, hx));
			break;
		}
		git_reference_free(ref);
	}
	free_names(names, n);
	return rc;
}

/* A ref's lock file in the repository rr that no writer holds: one
 * writes a ref in well under a second, so a lock this old was left by a
 * process killed while it wrote (a sync killed mid-push, of any replica).
 * Removes it and says so. A writer that held it after all only fails its
 * rename and tries again; a lock under a minute old stays. */
#define STALE_LOCK_SECS 60
#define STALE_TEMP_SECS (24 * 3600)

static bool stale_lock_gone(git_repository *rr, const char *name)
{
	char lock[PATH_MAX];
	struct stat st;
	sg_path(lock, sizeof lock, "%s%s.lock", git_repository_commondir(rr), name);
	return lstat(lock, &st) == 0 && S_ISREG(st.st_mode) && st.st_mtime < time(NULL) - STALE_LOCK_SECS &&
	       unlink(lock) == 0;
}

/* Removes the files directly in the directory path that match names,
 * and with depth > 0 those in its subdirectories that deep: all of them
 * (min_age 0: our own repository, where a failure is an error), or as a
 * sweep that never fails, those older than min_age seconds (a hub's,
 * which may hold other users' files). *n (n may be NULL) counts them. */
static int clear_in(const char *path, unsigned depth, time_t min_age, bool (*match)(const char *), unsigned *n)
{
	DIR *d = opendir(path);
	if (!d)
		return errno == ENOENT || min_age ? 0 : err_sys(MCRDT_EIO, "cannot read %s", path);
	int rc = 0;
	struct dirent *e;
	time_t now = time(NULL);
	while (rc == 0 && (e = readdir(d)) != NULL) {
		struct stat st;
		if (e->d_name[0] == '.')
			continue;
		if (!match(e->d_name)) {
			if (depth == 0 || fstatat(dirfd(d), e->d_name, &st, AT_SYMLINK_NOFOLLOW) != 0 ||
			    !S_ISDIR(st.st_mode))
				continue;
			char next[PATH_MAX];
			if ((size_t)snprintf(next, sizeof next, "%s/%s", path, e->d_name) < sizeof next)
				rc = clear_in(next, depth - 1, min_age, match, n);
			else if (!min_age)
				rc = err_set(MCRDT_EIO, "a path under %s is too long", path);
			continue;
		}
		if (min_age &&
		    (fstatat(dirfd(d), e->d_name, &st, AT_SYMLINK_NOFOLLOW) != 0 || st.st_mtime > now - min_age))
			continue; /* young: perhaps a live writer's */
		if (unlinkat(dirfd(d), e->d_name, 0) == 0) {
			if (n)
				(*n)++;
		} else if (errno != ENOENT && !min_age) {
			rc = err_sys(MCRDT_EIO, "cannot remove %s/%s", path, e->d_name);
		}
	}
	closedir(d);
	return rc;
}

/*
 * The local fast path of a push: our packs (and loose objects) that the
 * remote lacks are copied into it, then each ref moves by compare and
 * swap from the value read here, never backwards or sideways. 1 when it
 * does not apply (the caller goes the slow way).
 */
static int push_local(sync_git *g, struct xfer *x, const char *path, char **specs, size_t ns)
{
	const char *url = x->r->url;
	git_repository *rr;
	git_odb *rodb;
	char objdir[PATH_MAX], mine[PATH_MAX];
	int rc = local_open(g, path, "push to", url, &rr, &rodb, objdir);
	if (rc)
		return rc;
	/* A hub has no lock its writers share: a temporary file of a push
	 * killed there goes once it is a day old, which no live writer's is. */
	char hubpack[PATH_MAX];
	sg_path(hubpack, sizeof hubpack, "%s/pack", objdir);
	clear_in(hubpack, 0, STALE_TEMP_SECS, sg_temp_name, NULL);
	sg_path(mine, sizeof mine, "%sobjects", g->gitdir);
	if ((rc = copy_objects(x, false, mine, g->odb, objdir, rodb, NULL)))
		goto out;
	for (size_t i = 0; i < ns && !rc; i++) {
		char name[128], hx[GIT_OID_HEXSZ + 1];
		snprintf(name, sizeof name, "%.*s", (int)(strchr(specs[i], ':') - specs[i]), specs[i]);
		git_oid local, cur;
		if ((rc = ref_oid(g, name, &local)) != 0) {
			rc = rc == 1 ? 0 : rc;
			continue;
		}
		int has = git_reference_name_to_id(&cur, rr, name);
		if (has < 0 && has != GIT_ENOTFOUND) {
			rc = sg_fail(MCRDT_EIO, "push to %s: reading its %s", url, name);
			break;
		}
		if (has == 0 && git_oid_equal(&cur, &local))
			continue;
		if (has == 0 && (!git_odb_exists(g->odb, &cur) || git_graph_descendant_of(g->repo, &local, &cur) != 1)) {
			rc = err_set(MCRDT_EIO,
				     "push to %s: the remote refused %s: it holds %s, which %s does not extend "
				     "(another replica pushed first: sync again)",
				     url, name, oid_str(&cur, hx), name);
			break;
		}
		git_reference *ref;
		int r = git_reference_create_matching(&ref, rr, name, &local, has == 0, has == 0 ? &cur : NULL,
						      "mcrdt push");
		if (r == GIT_ELOCKED && stale_lock_gone(rr, name))
			r = git_reference_create_matching(&ref, rr, name, &local, has == 0, has == 0 ? &cur : NULL,
							  "mcrdt push");
		if (r == GIT_ELOCKED) {
			rc = sg_fail(MCRDT_EIO, "push to %s: its %s is locked by another writer (sync again)", url,
				     name);
			break;
		}
		if (r == GIT_EMODIFIED || r == GIT_EEXISTS) {
			rc = err_set(MCRDT_EIO, "push to %s: the remote refused %s: it moved meanwhile (sync again)", url,
				     name);
			break;
		}
		if (r < 0) {
			rc = sg_fail(MCRDT_EIO, "push to %s: moving its %s", url, name);
			break;
		}
		git_reference_free(ref);
		if (x->st)
			x->st->refs_pushed++;
	}
	/* The hub's packs pile up with every push: the pusher keeps them down
	 * (safe with other pushers and readers at work, see sync/pack.c). */
	if (!rc)
		rc = pack_consolidate(objdir, rodb, SYNC_GIT_MAX_PACKS, NULL, NULL);
out:
	git_odb_free(rodb);
	git_repository_free(rr);
	return rc;
}

int sync_git_push(sync_git *g, const struct sync_git_remote *r, struct sync_git_stats *st)
{
	if (!r || !r->url || !*r->url)
		return err_set(MCRDT_EINVAL, "push: no remote url");
	char **names;
	size_t n;
	int rc = list_refs(g, NS_LOCAL "*", &names, &n);
	if (rc)
		return rc;
	char **specs = calloc(n ? n : 1, sizeof *specs);
	size_t ns = 0;
	if (!specs)
		rc = err_set(MCRDT_ENOMEM, "out of memory pushing");
	for (size_t i = 0; i < n && !rc; i++) {
		uint64_t rid;
		git_oid local, staged;
		if (!parse_hex16(names[i] + strlen(NS_LOCAL), &rid))
			continue;
		if ((rc = ref_oid(g, names[i], &local)) != 0) {
			rc = rc == 1 ? 0 : rc;
			continue;
		}
		char sname[64];
		refname(sname, sizeof sname, NS_STAGED, rid);
		bool has;
		int ahead = extends(g, &local, sname, &staged, &has);
		if (ahead <= 0) { /* the remote is level, ahead or apart: not ours to push */
			rc = ahead;
			continue;
		}
		size_t l = 2 * strlen(names[i]) + 2;
		if (!(specs[ns] = malloc(l))) {
			rc = err_set(MCRDT_ENOMEM, "out of memory pushing");
			break;
		}
		snprintf(specs[ns++], l, "%s:%s", names[i], names[i]);
	}
	if (rc || ns == 0)
		goto out;

	struct xfer x;
	xfer_init(&x, r, st);
	char path[PATH_MAX];
	int local = local_dir(r->url, path, sizeof path);
	if (local < 0) {
		rc = local;
		goto out;
	}
	if (!g->transport_only && local && (rc = push_local(g, &x, path, specs, ns)) != 1)
		goto out;
	rc = 0;
	git_remote *rem;
	if (remote_new(&rem, g, r->url) < 0) {
		rc = sg_fail(MCRDT_EIO, "remote %s", r->url);
		goto out;
	}
	git_push_options po;
	git_push_options_init(&po, GIT_PUSH_OPTIONS_VERSION);
	po.pb_parallelism = 0; /* the packbuilder's delta search on every core (libgit2's default: one) */
	po.callbacks.credentials = cb_credentials;
	po.callbacks.push_transfer_progress = cb_push_progress;
	po.callbacks.push_update_reference = cb_push_update;
	po.callbacks.payload = &x;
	git_strarray sa = { specs, ns };
	if (git_remote_push(rem, &sa, &po) < 0) {
		char what[160];
		snprintf(what, sizeof what, "push of %.*s%s to", (int)(strchr(specs[0], ':') - specs[0]), specs[0],
			 ns > 1 ? " (and others)" : "");
		rc = xfer_fail(&x, what);
	}
	else if (x.rejected)
		rc = err_set(MCRDT_EIO, "push to %s: the remote refused %s (another replica pushed first: sync again)",
			     r->url, x.rejected);
	else if (st) {
		st->refs_pushed += ns;
		st->bytes_pushed = x.run.bytes_pushed;
	}
	free(x.rejected);
	git_remote_free(rem);
out:
	for (size_t i = 0; i < ns; i++)
		free(specs[i]);
	free(specs);
	free_names(names, n);
	return rc;
}

/* ---- bodies ---- */

/* One body blob from odb: the object's own bytes, checked against id by
 * libgit2 (strict hash verification is its default). */
static int blob_read(git_odb *odb, const char *gitdir, const sync_oid *id, struct sync_git_blob *out)
{
	git_oid oid;
	git_odb_object *o;
	char hx[GIT_OID_HEXSZ + 1];
	memset(out, 0, sizeof *out);
	memcpy(oid.id, id->id, 20);
	int rc = git_odb_read(&o, odb, &oid);
	if (rc == GIT_ENOTFOUND)
		return err_set(MCRDT_ENOTFOUND, "blob %s is not in %s", oid_str(&oid, hx), gitdir);
	if (rc < 0)
		return sg_fail(MCRDT_ECORRUPT, "reading blob %s in %s", oid_str(&oid, hx), gitdir);
	if (git_odb_object_type(o) != GIT_OBJECT_BLOB) {
		git_object_t t = git_odb_object_type(o);
		git_odb_object_free(o);
		return err_set(MCRDT_ECORRUPT, "object %s is a %s, not a blob", oid_str(&oid, hx),
			       git_object_type2string(t));
	}
	out->data = git_odb_object_data(o);
	out->len = git_odb_object_size(o);
	out->handle = o;
	return 0;
}

int sync_git_blob_read(sync_git *g, const sync_oid *id, struct sync_git_blob *out)
{
	return blob_read(g->odb, g->gitdir, id, out);
}

/* ---- reading ahead ---- */

/* Two readers: inflating and hashing a body costs about as much as
 * writing its file, and the machine this is measured on has two cores. */
#define PF_WORKERS 2

struct pf_slot {
	struct sync_git_blob b;
	int rc;
	char *err;      /* the reader's message when rc */
	bool done;      /* read (b, rc, err set) */
	bool abandoned; /* passed over by take before it was read: freed when it is */
};

struct pf_worker {
	struct sync_git_prefetch *p;
	git_odb *odb;              /* its own: libgit2 handles are per thread */
	struct preader_z z;        /* its inflater for the shared pack reader */
	pthread_t th;
	bool started;
};

struct sync_git_prefetch {
	char *gitdir;
	const sync_oid *ids;
	size_t n, max_bytes;
	struct pf_slot *slot;
	struct pack_reader *reader; /* shared by the workers (each .idx loaded once) */
	struct pf_worker w[PF_WORKERS];
	pthread_mutex_t mu;
	pthread_cond_t cv;   /* a blob read, a blob taken, or stopping */
	size_t next;         /* the next slot a reader takes on */
	size_t taken;        /* slots [0, taken) are the caller's or freed */
	size_t want;         /* the slot the caller waits for: read whatever the cap */
	size_t held;         /* bytes in read slots not taken */
	bool stop;
};

/* A blob through our own pack reader, else libgit2. */
static int pf_read(struct pf_worker *w, const sync_oid *id, struct sync_git_blob *out)
{
	uint8_t *data;
	size_t len;
	int rc = w->p->reader ? preader_blob(w->p->reader, &w->z, id->id, &data, &len) : 1;
	if (rc == 0) {
		memset(out, 0, sizeof *out);
		out->data = data;
		out->len = len;
		return 0;
	}
	return rc < 0 ? rc : blob_read(w->odb, w->p->gitdir, id, out);
}

static void *pf_run(void *arg)
{
	struct pf_worker *w = arg;
	struct sync_git_prefetch *p = w->p;
	pthread_mutex_lock(&p->mu);
	for (;;) {
		while (!p->stop && p->next < p->n && p->next > p->taken && p->next > p->want &&
		       p->held >= p->max_bytes)
			pthread_cond_wait(&p->cv, &p->mu);
		if (p->stop || p->next >= p->n)
			break;
		size_t i = p->next++;
		pthread_mutex_unlock(&p->mu);
		struct pf_slot x = { { 0 }, 0, NULL, true, false };
		if ((x.rc = pf_read(w, &p->ids[i], &x.b)))
			x.err = strdup(mcrdt_error_last());
		pthread_mutex_lock(&p->mu);
		if (p->slot[i].abandoned) {
			sync_git_blob_free(&x.b);
			free(x.err);
			p->slot[i].done = true;
		} else {
			p->slot[i] = x;
			p->held += x.b.len;
		}
		pthread_cond_broadcast(&p->cv);
	}
	pthread_mutex_unlock(&p->mu);
	return NULL;
}

static void pf_free(struct sync_git_prefetch *p)
{
	for (size_t k = 0; k < PF_WORKERS; k++) {
		if (p->w[k].odb)
			git_odb_free(p->w[k].odb);
		preader_z_end(&p->w[k].z);
	}
	preader_close(p->reader);
	free(p->gitdir);
	free(p->slot);
	free(p);
}

int sync_git_prefetch_start(sync_git *g, const sync_oid *ids, size_t n, size_t max_bytes,
			    sync_git_prefetch **out)
{
	*out = NULL;
	struct sync_git_prefetch *p = calloc(1, sizeof *p);
	if (!p || !(p->slot = calloc(n ? n : 1, sizeof *p->slot)) || !(p->gitdir = strdup(g->gitdir))) {
		if (p)
			pf_free(p);
		return err_set(MCRDT_ENOMEM, "out of memory reading ahead");
	}
	char objects[PATH_MAX];
	sg_path(objects, sizeof objects, "%sobjects", g->gitdir);
	int rc = preader_open(objects, &p->reader);
	for (size_t k = 0; k < PF_WORKERS && !rc; k++) {
		p->w[k].p = p;
		if (git_odb_open(&p->w[k].odb, objects) < 0)
			rc = sg_fail(MCRDT_EIO, "opening the objects of %s", g->gitdir);
	}
	if (rc) {
		pf_free(p);
		return rc;
	}
	p->ids = ids, p->n = n, p->max_bytes = max_bytes ? max_bytes : 1;
	pthread_mutex_init(&p->mu, NULL);
	pthread_cond_init(&p->cv, NULL);
	for (size_t k = 0; k < PF_WORKERS; k++)
		p->w[k].started = pthread_create(&p->w[k].th, NULL, pf_run, &p->w[k]) == 0;
	if (!p->w[0].started) {
		sync_git_prefetch_stop(p);
		return err_set(MCRDT_EIO, "cannot start a thread to read ahead");
	}
	*out = p;
	return 0;
}

int sync_git_prefetch_take(sync_git_prefetch *p, size_t i, struct sync_git_blob *out)
{
	memset(out, 0, sizeof *out);
	if (i >= p->n || i < p->taken)
		return err_set(MCRDT_EINVAL, "blob %zu of %zu read ahead was taken already or is out of range", i, p->n);
	pthread_mutex_lock(&p->mu);
	p->want = i;
	pthread_cond_broadcast(&p->cv);
	for (; p->taken < i; p->taken++) { /* skipped: freed now, or by its reader */
		struct pf_slot *x = &p->slot[p->taken];
		if (!x->done) {
			x->abandoned = true;
			continue;
		}
		p->held -= x->b.len;
		sync_git_blob_free(&x->b);
		free(x->err);
		x->err = NULL;
	}
	while (!p->slot[i].done)
		pthread_cond_wait(&p->cv, &p->mu);
	struct pf_slot x = p->slot[i];
	memset(&p->slot[i].b, 0, sizeof p->slot[i].b);
	p->slot[i].err = NULL;
	p->held -= x.b.len;
	p->taken = i + 1;
	pthread_cond_broadcast(&p->cv);
	pthread_mutex_unlock(&p->mu);
	if (x.rc) {
		int rc = err_set(x.rc, "%s", x.err ? x.err : "reading ahead failed");
		free(x.err);
		return rc;
	}
	*out = x.b;
	return 0;
}

void sync_git_prefetch_stop(sync_git_prefetch *p)
{
	if (!p)
		return;
	pthread_mutex_lock(&p->mu);
	p->stop = true;
	pthread_cond_broadcast(&p->cv);
	pthread_mutex_unlock(&p->mu);
	for (size_t k = 0; k < PF_WORKERS; k++)
		if (p->w[k].started)
			pthread_join(p->w[k].th, NULL);
	for (size_t i = p->taken; i < p->n; i++) {
		sync_git_blob_free(&p->slot[i].b);
		free(p->slot[i].err);
	}
	pthread_cond_destroy(&p->cv);
	pthread_mutex_destroy(&p->mu);
	pf_free(p);
}

int sync_git_blob_size(sync_git *g, const sync_oid *id, uint64_t *size)
{
	git_oid oid;
	git_object_t type;
	size_t len;
	char hx[GIT_OID_HEXSZ + 1];
	memcpy(oid.id, id->id, 20);
	int rc = git_odb_read_header(&len, &type, g->odb, &oid);
	if (rc == GIT_ENOTFOUND)
		return err_set(MCRDT_ENOTFOUND, "blob %s is not in %s", oid_str(&oid, hx), g->gitdir);
	if (rc < 0)
		return sg_fail(MCRDT_ECORRUPT, "reading blob %s in %s", oid_str(&oid, hx), g->gitdir);
	if (type != GIT_OBJECT_BLOB)
		return err_set(MCRDT_ECORRUPT, "object %s is a %s, not a blob", oid_str(&oid, hx),
			       git_object_type2string(type));
	*size = len;
	return 0;
}

void sync_git_blob_free(struct sync_git_blob *b)
{
	if (b && b->handle)
		git_odb_object_free(b->handle);
	else if (b)
		free((void *)(uintptr_t)b->data);
	if (b)
		memset(b, 0, sizeof *b);
}

int sync_git_hash(const void *data, size_t len, sync_oid *out)
{
	sg_object_id(GIT_OBJECT_BLOB, data, len, out->id);
	return 0;
}

/* ---- upkeep ---- */

int sync_git_maintain(sync_git *g, unsigned max_packs, unsigned *packs_out)
{
	char objdir[PATH_MAX];
	sg_path(objdir, sizeof objdir, "%sobjects", g->gitdir);
	bool merged;
	int rc = pack_consolidate(objdir, g->odb, max_packs, packs_out, &merged);
	if (rc || !merged)
		return rc;
	/* libgit2 still maps the packs removed: reopen, so their space goes. */
	char *dir = strdup(g->gitdir);
	if (!dir)
		return err_set(MCRDT_ENOMEM, "out of memory");
	repo_close(g);
	rc = repo_open(g, dir);
	free(dir);
	return rc;
}

/* ---- locks a killed sync left ---- */

int sync_git_clear_locks(sync_git *g, unsigned *removed_out)
{
	unsigned n = 0;
	/* The top level: its locks (packed-refs.lock, HEAD.lock, config.lock)
	 * and temporary files; then refs/ and objects/pack (a pack a killed
	 * fetch was copying can be as large as the mail, and nothing else
	 * would ever remove it). */
	int rc = clear_in(g->gitdir, 0, 0, sg_temp_name, &n);
	char path[PATH_MAX];
	snprintf(path, sizeof path, "%srefs", g->gitdir);
	if (rc == 0)
		rc = clear_in(path, 8, 0, sg_lock_name, &n);
	snprintf(path, sizeof path, "%sobjects/pack", g->gitdir);
	if (rc == 0)
		rc = clear_in(path, 0, 0, sg_temp_name, &n);
	if (removed_out)
		*removed_out = n;
	return rc;
}
