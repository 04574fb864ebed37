/*
 * tests/sync/test_git.c — the git transport (sync/git.h): what one replica
 * publishes another reads back, op for op and byte for byte, through a
 * local path, a file:// url, libgit2's transport and a hub; peers' bad
 * refs, commits, trees and records are refused naming what is wrong
 * before any op of that replica is handed over; packs stay one per
 * publish and are consolidated; `git fsck --strict` finds nothing to say
 * about the repositories written.
 *
 * Evil peers are built with libgit2 directly (loose objects, hand-made
 * trees and commits).
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <git2.h>

#include "common/varint.h"
#include "sync/codec.h"
#include "sync/git.h"
#include "sync/git_test.h"
#include "sync/pack.h"
#include "sync/sha1.h"
#include "tests/check_run.h"
#include "tests/tmpdir.h"

#define RA UINT64_C(0xa1a1a1a1a1a1a1a1)
#define RB UINT64_C(0x00000000000000b2)
#define RC UINT64_C(0x0c0c0c0c0c0c0c0c)
#define RE UINT64_C(0x00000000eeeeeeee)

/* ---- helpers ---- */

static void assert_msg_has(const char *what)
{
	const char *msg = mcrdt_error_last();
	ck_assert_msg(strstr(msg, what) != NULL, "error message \"%s\" does not mention \"%s\"", msg, what);
}

static bool have_git(void)
{
	static int have = -1;
	if (have < 0)
		have = system("git --version >/dev/null 2>&1") == 0;
	return have;
}

/* `git fsck --strict` on dir says nothing and succeeds (when git exists). */
static void assert_fsck_clean(const char *dir)
{
	if (!have_git())
		return;
	char cmd[600], out[4096] = "";
	snprintf(cmd, sizeof cmd, "git -C '%s' fsck --strict 2>&1", dir);
	FILE *f = popen(cmd, "r");
	ck_assert_ptr_nonnull(f);
	size_t n = fread(out, 1, sizeof out - 1, f);
	out[n] = 0;
	int st = pclose(f);
	/* The one thing fsck may say: a bare repository's HEAD names a branch
	 * that does not exist (as after `git init --bare`); mcrdt has no branches. */
	static const char *const fine[] = { "notice: HEAD points to an unborn branch (master)\n",
					    "notice: No default references\n" };
	for (size_t i = 0; i < 2; i++) {
		char *at = strstr(out, fine[i]);
		if (at)
			memmove(at, at + strlen(fine[i]), strlen(at + strlen(fine[i])) + 1);
	}
	n = strlen(out);
	ck_assert_msg(st == 0 && n == 0, "git fsck --strict %s: status %d: %s", dir, st, out);
}

static unsigned count_files(const char *dir, const char *suffix)
{
	DIR *d = opendir(dir);
	if (!d)
		return 0;
	unsigned n = 0;
	struct dirent *e;
	size_t sl = strlen(suffix);
	while ((e = readdir(d))) {
		size_t l = strlen(e->d_name);
		if (l > sl && strcmp(e->d_name + l - sl, suffix) == 0)
			n++;
	}
	closedir(d);
	return n;
}

static unsigned count_packs(const char *repo)
{
	char *p = tmp_path(repo, "objects/pack");
	unsigned n = count_files(p, ".pack");
	free(p);
	return n;
}

static unsigned count_loose(const char *repo)
{
	unsigned n = 0;
	for (unsigned k = 0; k < 256; k++) {
		char p[600];
		snprintf(p, sizeof p, "%s/objects/%02x", repo, k);
		DIR *d = opendir(p);
		if (!d)
			continue;
		struct dirent *e;
		while ((e = readdir(d)))
			n += strlen(e->d_name) == 38;
		closedir(d);
	}
	return n;
}

/* ---- ops and bodies ---- */

/* Replica r's op c: 1 creates INBOX; every 5th subscribes; the rest
 * append a message to INBOX. */
static void make_op(crdt_op *op, uint64_t r, uint64_t c)
{
	if (c == 1) {
		crdt_op_init(op, CRDT_OP_MBOX_CREATE);
		ck_assert_int_eq(crdt_op_set_name(op, "INBOX", 5), 0);
		op->uidvalidity = 1;
	} else if (c % 5 == 0) {
		crdt_op_init(op, CRDT_OP_SUBSCRIBE);
		ck_assert_int_eq(crdt_op_set_name(op, "Sent", 4), 0);
	} else {
		crdt_op_init(op, CRDT_OP_APPEND);
		op->mbox = (crdt_dot){ r, 1 };
		op->space = (crdt_dot){ r, 1 };
		op->uid = (uint32_t)c;
		ck_assert_int_eq(crdt_op_add_flag(op, "\\Seen", 5), 0);
	}
	op->id = (crdt_dot){ r, c };
	if (c > 1)
		ck_assert_int_eq(crdt_vv_set_base(&op->deps, r, c - 1), 0);
	ck_assert_msg(crdt_op_validate(op) == 0, "fixture op %" PRIu64 ": %s", c, mcrdt_error_last());
}

static crdt_op *make_ops(uint64_t r, uint64_t from, size_t n)
{
	crdt_op *ops = calloc(n, sizeof *ops);
	for (size_t i = 0; i < n; i++)
		make_op(&ops[i], r, from + i);
	return ops;
}

static void free_ops(crdt_op *ops, size_t n)
{
	for (size_t i = 0; i < n; i++)
		crdt_op_free(&ops[i]);
	free(ops);
}

static uint64_t mix(uint64_t x)
{
	x ^= x >> 33;
	x *= UINT64_C(0xff51afd7ed558ccd);
	x ^= x >> 33;
	x *= UINT64_C(0xc4ceb9fe1a85ec53);
	return x ^ (x >> 33);
}

/* Every 7th message is gone by publish time (no body). */
static bool has_body(uint64_t c)
{
	return c % 7 != 0;
}

struct bodies {
	size_t min, max; /* sizes */
	unsigned calls;
	bool b64; /* base64 lines of random bytes (an attachment), not text */
};

/* Text-like bytes of replica r's message c (a mail, more or less). */
static size_t body_of(const struct bodies *bs, uint64_t r, uint64_t c, char **out)
{
	static const char *const words[] = { "the",  "mail", "of",   "Subject:", "replica", "sync", "and",
					     "to",   "From:", "hello", "meeting", "tomorrow", "at",  "ten\r\n" };
	static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
	uint64_t s = mix(r * 1000003 + c);
	size_t len = bs->min + (size_t)(s % (bs->max - bs->min + 1));
	char *b = malloc(len + 1);
	size_t i = 0;
	while (bs->b64 && i < len) {
		s = mix(s + 1);
		b[i] = i % 78 == 76 ? '\r' : i % 78 == 77 ? '\n' : b64[s % 64];
		i++;
	}
	while (i < len) {
		s = mix(s + 1);
		const char *w = words[s % 14];
		size_t wl = strlen(w);
		for (size_t k = 0; k < wl && i < len; k++)
			b[i++] = w[k];
		if (i < len)
			b[i++] = ' ';
	}
	*out = b;
	return len;
}

static int body_fn(void *ctx, const crdt_op *op, int *fd_out)
{
	struct bodies *bs = ctx;
	bs->calls++;
	*fd_out = -1;
	if (!has_body(op->id.counter))
		return 0;
	char *b;
	size_t len = body_of(bs, op->id.replica, op->id.counter, &b);
	char tmp[] = "/tmp/mcrdt-body-XXXXXX";
	int fd = mkstemp(tmp);
	ck_assert_int_ge(fd, 0);
	unlink(tmp);
	ck_assert_int_eq(write(fd, b, len), (ssize_t)len);
	ck_assert_int_eq(lseek(fd, 0, SEEK_SET), 0);
	free(b);
	*fd_out = fd;
	return 0;
}

static const struct bodies SMALL = { 10, 3000, 0, false };

/* Whether op c of make_op carries a body when published: an append whose
 * message is not gone. */
static bool op_has_body(uint64_t c)
{
	return c != 1 && c % 5 != 0 && has_body(c);
}

/* blob holds exactly the len bytes of want; freed. */
static void blob_is(struct sync_git_blob *blob, const void *want, size_t len)
{
	ck_assert_uint_eq(blob->len, len);
	ck_assert_mem_eq(blob->data, want, len);
	sync_git_blob_free(blob);
}

/* Replica r's body c (SMALL) in *want (caller frees), its id in *id. */
static size_t op_body(uint64_t r, uint64_t c, char **want, sync_oid *id)
{
	size_t len = body_of(&SMALL, r, c, want);
	ck_assert_int_eq(sync_git_hash(*want, len, id), 0);
	return len;
}

/* g holds every body of r's ops 1..last, byte for byte. */
static void assert_bodies(sync_git *g, uint64_t r, uint64_t last)
{
	for (uint64_t c = 1; c <= last; c++) {
		if (!op_has_body(c))
			continue;
		char *want;
		sync_oid id;
		struct sync_git_blob blob;
		size_t len = op_body(r, c, &want, &id);
		ck_assert_msg(sync_git_blob_read(g, &id, &blob) == 0, "body %" PRIu64 ": %s", c, mcrdt_error_last());
		blob_is(&blob, want, len);
		free(want);
	}
}

static sync_git *open_repo(const char *dir, uint64_t self)
{
	sync_git *g;
	int rc = sync_git_open(&g, dir, self, true);
	ck_assert_msg(rc == 0, "open %s: %s", dir, mcrdt_error_last());
	return g;
}

/* Publishes r's ops [from, from + n) with SMALL bodies. */
static void publish(sync_git *g, uint64_t r, uint64_t from, size_t n)
{
	crdt_op *ops = make_ops(r, from, n);
	struct bodies bs = SMALL;
	int rc = sync_git_publish(g, ops, n, from + n - 1, body_fn, &bs, NULL);
	ck_assert_msg(rc == 0, "publish: %s", mcrdt_error_last());
	free_ops(ops, n);
}

static void fetch(sync_git *g, const char *url)
{
	struct sync_git_remote r = { url, NULL, NULL };
	int rc = sync_git_fetch(g, &r, NULL);
	ck_assert_msg(rc == 0, "fetch %s: %s", url, mcrdt_error_last());
}

static void push(sync_git *g, const char *url)
{
	struct sync_git_remote r = { url, NULL, NULL };
	int rc = sync_git_push(g, &r, NULL);
	ck_assert_msg(rc == 0, "push %s: %s", url, mcrdt_error_last());
}

/* What read_new handed over. */
struct seen {
	sync_git *g;
	size_t n;
	struct {
		uint64_t r, c;
		int type;
		bool body;
	} v[4096];
	unsigned fail_after; /* 0: never */
	bool no_bodies;      /* the peer published none (hand-made commits) */
};

static int seen_fn(void *ctx, const crdt_op *op, const sync_oid *body)
{
	struct seen *s = ctx;
	ck_assert_uint_lt(s->n, 4096);
	s->v[s->n].r = op->id.replica;
	s->v[s->n].c = op->id.counter;
	s->v[s->n].type = op->type;
	s->v[s->n].body = body != NULL;
	s->n++;
	/* The op is the one published; its body is the bytes given. */
	crdt_op want;
	make_op(&want, op->id.replica, op->id.counter);
	const char *diff = crdt_op_diff(&want, op);
	ck_assert_msg(diff == NULL, "op %" PRIx64 ":%" PRIu64 " differs in %s", op->id.replica, op->id.counter, diff);
	crdt_op_free(&want);
	bool want_body = !s->no_bodies && op->type == CRDT_OP_APPEND && has_body(op->id.counter);
	ck_assert_int_eq(body != NULL, want_body);
	if (body) {
		char *b;
		sync_oid h;
		size_t len = op_body(op->id.replica, op->id.counter, &b, &h);
		ck_assert_mem_eq(h.id, body->id, 20);
		struct sync_git_blob blob;
		int rc = sync_git_blob_read(s->g, body, &blob);
		ck_assert_msg(rc == 0, "blob: %s", mcrdt_error_last());
		blob_is(&blob, b, len);
		free(b);
	}
	if (s->fail_after && s->n == s->fail_after)
		return 42;
	return 0;
}

/* Reads what is new beyond known; returns read_new's result. */
static int read_new(sync_git *g, const crdt_vv *known, struct seen *s)
{
	s->g = g;
	s->n = 0;
	return sync_git_read_new(g, known, seen_fn, s, NULL);
}

/* s holds exactly r's ops (from, to], oldest first, at offset at. */
static void assert_seen(const struct seen *s, size_t at, uint64_t r, uint64_t from, uint64_t to)
{
	ck_assert_uint_ge(s->n, at + (to - from));
	for (uint64_t c = from + 1; c <= to; c++) {
		ck_assert_uint_eq(s->v[at + c - from - 1].r, r);
		ck_assert_uint_eq(s->v[at + c - from - 1].c, c);
	}
}

static size_t count_seen(const struct seen *s, uint64_t r)
{
	size_t n = 0;
	for (size_t i = 0; i < s->n; i++)
		n += s->v[i].r == r;
	return n;
}

/* ---- building evil peers with libgit2 ---- */

static git_repository *git_open(const char *dir)
{
	git_repository *repo;
	ck_assert_int_eq(git_repository_open_bare(&repo, dir), 0);
	return repo;
}

static void encode_ops(struct vbuf *b, const crdt_op *ops, size_t n)
{
	for (size_t i = 0; i < n; i++)
		ck_assert_int_eq(sync_encode_record(b, &ops[i]), 0);
}

/* A commit of replica r on parent (NULL: first) with message "mcrdt r from to"
 * (or msg), an ops blob of the bytes given and no bodies. */
static git_oid evil_commit(git_repository *repo, uint64_t r, const git_oid *parent, uint64_t from, uint64_t to,
			   const void *ops, size_t len, const char *msg)
{
	git_odb *odb;
	ck_assert_int_eq(git_repository_odb(&odb, repo), 0);
	git_oid blob, tree, commit;
	ck_assert_int_eq(git_odb_write(&blob, odb, ops, len, GIT_OBJECT_BLOB), 0);
	git_treebuilder *tb;
	ck_assert_int_eq(git_treebuilder_new(&tb, repo, NULL), 0);
	ck_assert_int_eq(git_treebuilder_insert(NULL, tb, "ops", &blob, GIT_FILEMODE_BLOB), 0);
	ck_assert_int_eq(git_treebuilder_write(&tree, tb), 0);
	git_treebuilder_free(tb);
	char buf[256];
	if (!msg) {
		snprintf(buf, sizeof buf, "mcrdt %016" PRIx64 " %" PRIu64 " %" PRIu64 "\nlog 0\n", r, from, to);
		msg = buf;
	}
	git_signature *sig;
	ck_assert_int_eq(git_signature_new(&sig, "evil", "evil@example.org", 1700000000, 0), 0);
	git_tree *t;
	ck_assert_int_eq(git_tree_lookup(&t, repo, &tree), 0);
	git_commit *p = NULL;
	if (parent)
		ck_assert_int_eq(git_commit_lookup(&p, repo, parent), 0);
	const git_commit *parents[1] = { p };
	ck_assert_int_eq(git_commit_create(&commit, repo, NULL, sig, sig, NULL, msg, t, p ? 1 : 0, parents), 0);
	git_commit_free(p);
	git_tree_free(t);
	git_signature_free(sig);
	git_odb_free(odb);
	return commit;
}

static void set_ref(git_repository *repo, const char *ns, uint64_t r, const git_oid *id)
{
	char name[128];
	snprintf(name, sizeof name, "%s%016" PRIx64, ns, r);
	git_reference *ref;
	ck_assert_int_eq(git_reference_create(&ref, repo, name, id, 1, NULL), 0);
	git_reference_free(ref);
}

/* Replica r's good ops [from, to] as one evil-made commit. */
static git_oid good_commit(git_repository *repo, uint64_t r, const git_oid *parent, uint64_t from, uint64_t to)
{
	crdt_op *ops = make_ops(r, from, (size_t)(to - from + 1));
	struct vbuf b = { 0 };
	encode_ops(&b, ops, (size_t)(to - from + 1));
	git_oid id = evil_commit(repo, r, parent, from, to, b.p, b.len, NULL);
	vbuf_free(&b);
	free_ops(ops, (size_t)(to - from + 1));
	return id;
}

/* ---- tests ---- */

START_TEST(open_and_publish_nothing)
{
	char *d = tmp_dir();
	char *repo = tmp_path(d, "r");
	sync_git *g;
	ck_assert_int_eq(sync_git_open(&g, repo, RA, false), MCRDT_ENOTFOUND);
	g = open_repo(repo, RA);
	struct stat sb;
	ck_assert_int_eq(stat(repo, &sb), 0);
	ck_assert_int_eq(sb.st_mode & 0777, 0700);
	uint64_t c = 9, l = 9;
	ck_assert_int_eq(sync_git_published(g, &c, &l), 0);
	ck_assert_uint_eq(c, 0);
	ck_assert_uint_eq(l, 0);
	/* n == 0: nothing at all. */
	struct bodies bs = SMALL;
	ck_assert_int_eq(sync_git_publish(g, NULL, 0, 5, body_fn, &bs, NULL), 0);
	ck_assert_int_eq(sync_git_published(g, &c, &l), 0);
	ck_assert_uint_eq(c, 0);
	ck_assert_uint_eq(count_packs(repo), 0);
	ck_assert_uint_eq(count_loose(repo), 0);
	ck_assert_uint_eq(bs.calls, 0);

	/* Not contiguous from published + 1, or not ours: EINVAL, nothing written. */
	crdt_op *ops = make_ops(RA, 2, 3);
	ck_assert_int_eq(sync_git_publish(g, ops, 3, 0, body_fn, &bs, NULL), MCRDT_EINVAL);
	assert_msg_has("counter 2, expected 1");
	free_ops(ops, 3);
	ops = make_ops(RB, 1, 3);
	ck_assert_int_eq(sync_git_publish(g, ops, 3, 0, body_fn, &bs, NULL), MCRDT_EINVAL);
	assert_msg_has("00000000000000b2");
	free_ops(ops, 3);
	publish(g, RA, 1, 4);
	ops = make_ops(RA, 5, 3);
	crdt_op_free(&ops[1]);
	make_op(&ops[1], RA, 7); /* a gap: 5, 7, 7 */
	ck_assert_int_eq(sync_git_publish(g, ops, 3, 0, body_fn, &bs, NULL), MCRDT_EINVAL);
	free_ops(ops, 3);
	ck_assert_int_eq(sync_git_published(g, &c, &l), 0);
	ck_assert_uint_eq(c, 4);
	ck_assert_uint_eq(l, 4);
	ck_assert_uint_eq(count_packs(repo), 1);

	sync_git_close(g);
	assert_fsck_clean(repo);
	/* The hub: created empty; refused over a non-empty directory. */
	char *hub = tmp_path(d, "hub");
	ck_assert_int_eq(sync_git_hub_init(hub), 0);
	ck_assert_int_eq(sync_git_hub_init(hub), MCRDT_EEXISTS);
	ck_assert_int_eq(sync_git_hub_init(repo), MCRDT_EEXISTS);
	assert_fsck_clean(hub);
	free(hub);
	free(repo);
	rm_tree(d);
}
END_TEST

static int failing_body(void *ctx, const crdt_op *op, int *fd)
{
	(void)ctx;
	(void)op;
	*fd = -1;
	return MCRDT_ENOSPC;
}

START_TEST(body_error_stops_publish)
{
	char *d = tmp_dir();
	sync_git *g = open_repo(d, RA);
	crdt_op *ops = make_ops(RA, 1, 5);
	ck_assert_int_eq(sync_git_publish(g, ops, 5, 5, failing_body, NULL, NULL), MCRDT_ENOSPC);
	uint64_t c;
	ck_assert_int_eq(sync_git_published(g, &c, NULL), 0);
	ck_assert_uint_eq(c, 0);
	ck_assert_uint_eq(count_packs(d), 0);
	free_ops(ops, 5);
	sync_git_close(g);
	rm_tree(d);
}
END_TEST

/* Two batches from A, read by B through each kind of url. */
START_TEST(publish_fetch_read)
{
	static const char *const kinds[] = { "path", "file", "transport" };
	char *d = tmp_dir();
	char *ra = tmp_path(d, "a");
	sync_git *a = open_repo(ra, RA);
	struct bodies bs = SMALL;
	struct sync_git_stats st = { 0 };
	crdt_op *ops = make_ops(RA, 1, 20);
	ck_assert_int_eq(sync_git_publish(a, ops, 20, 33, body_fn, &bs, &st), 0);
	free_ops(ops, 20);
	ck_assert_uint_eq(st.ops_published, 20);
	ck_assert_uint_eq(st.bodies_published, 13); /* APPENDs: 2..20 but 5, 10, 15, 20; bodies: not 7, 14 */
	publish(a, RA, 21, 15);
	uint64_t c, l;
	ck_assert_int_eq(sync_git_published(a, &c, &l), 0);
	ck_assert_uint_eq(c, 35);
	ck_assert_uint_eq(l, 35);
	ck_assert_uint_eq(count_packs(ra), 2);
	ck_assert_uint_eq(count_loose(ra), 0);
	assert_fsck_clean(ra);

	for (size_t k = 0; k < 3; k++) {
		char name[16], url[600];
		snprintf(name, sizeof name, "b%zu", k);
		char *rb = tmp_path(d, name);
		sync_git *b = open_repo(rb, RB);
		if (k == 2)
			sync_git_test_transport_only(b, true);
		snprintf(url, sizeof url, "%s%s", k == 1 ? "file://" : "", ra);
		struct sync_git_stats fs = { 0 };
		struct sync_git_remote rem = { url, NULL, NULL };
		ck_assert_msg(sync_git_fetch(b, &rem, &fs) == 0, "%s: %s", kinds[k], mcrdt_error_last());
		ck_assert_uint_gt(fs.objects_fetched, 0);
		ck_assert_uint_gt(fs.bytes_fetched, 0);

		struct seen *s = calloc(1, sizeof *s);
		crdt_vv known = CRDT_VV_INIT;
		ck_assert_msg(read_new(b, &known, s) == 0, "%s: %s", kinds[k], mcrdt_error_last());
		ck_assert_uint_eq(s->n, 35);
		assert_seen(s, 0, RA, 0, 35);
		/* What known covers is skipped (a commit that straddles it too). */
		ck_assert_int_eq(crdt_vv_set_base(&known, RA, 20), 0);
		ck_assert_int_eq(read_new(b, &known, s), 0);
		ck_assert_uint_eq(s->n, 15);
		assert_seen(s, 0, RA, 20, 35);
		ck_assert_int_eq(crdt_vv_set_base(&known, RA, 27), 0);
		struct sync_git_stats rs = { 0 };
		s->n = 0;
		ck_assert_int_eq(sync_git_read_new(b, &known, seen_fn, s, &rs), 0);
		ck_assert_uint_eq(s->n, 8);
		ck_assert_uint_eq(rs.ops_read, 8);
		assert_seen(s, 0, RA, 27, 35);
		ck_assert_int_eq(crdt_vv_set_base(&known, RA, 35), 0);
		ck_assert_int_eq(read_new(b, &known, s), 0);
		ck_assert_uint_eq(s->n, 0);
		/* fn's error stops the walk and is returned. */
		crdt_vv_clear(&known);
		s->fail_after = 3;
		ck_assert_int_eq(read_new(b, &known, s), 42);
		ck_assert_uint_eq(s->n, 3);
		s->fail_after = 0;

		/* Adopted, the local ref holds it; a second fetch stages it again. */
		ck_assert_int_eq(sync_git_adopt(b), 0);
		fetch(b, url);
		ck_assert_int_eq(read_new(b, &known, s), 0);
		ck_assert_uint_eq(s->n, 35);
		assert_fsck_clean(rb);
		crdt_vv_free(&known);
		free(s);
		sync_git_close(b);
		free(rb);
	}
	sync_git_close(a);
	free(ra);
	rm_tree(d);
}
END_TEST

/* A and B sync through a hub; C sees both chains from the hub alone. */
START_TEST(hub_roundtrip)
{
	char *d = tmp_dir();
	char *hub = tmp_path(d, "hub"), *ra = tmp_path(d, "a"), *rb = tmp_path(d, "b"), *rc = tmp_path(d, "c");
	ck_assert_int_eq(sync_git_hub_init(hub), 0);
	sync_git *a = open_repo(ra, RA), *b = open_repo(rb, RB), *c = open_repo(rc, RC);
	publish(a, RA, 1, 12);
	publish(b, RB, 1, 9);
	struct sync_git_stats st = { 0 };
	struct sync_git_remote rem = { hub, NULL, NULL };
	fetch(a, hub); /* an empty hub: nothing staged */
	ck_assert_int_eq(sync_git_push(a, &rem, &st), 0);
	ck_assert_uint_eq(st.refs_pushed, 1);
	/* B: fetch the hub, read A, adopt, publish more, push both. */
	fetch(b, hub);
	struct seen *s = calloc(1, sizeof *s);
	crdt_vv known = CRDT_VV_INIT;
	ck_assert_int_eq(read_new(b, &known, s), 0);
	assert_seen(s, 0, RA, 0, 12);
	ck_assert_uint_eq(s->n, 12);
	ck_assert_int_eq(sync_git_adopt(b), 0);
	publish(b, RB, 10, 6);
	sync_git_test_transport_only(b, true); /* B pushes through libgit2's transport, A copies packs */
	memset(&st, 0, sizeof st);
	ck_assert_int_eq(sync_git_push(b, &rem, &st), 0);
	ck_assert_uint_eq(st.refs_pushed, 1); /* A's ref is the hub's already */
	assert_fsck_clean(hub);

	sync_git_test_transport_only(c, true);
	fetch(c, hub);
	ck_assert_int_eq(read_new(c, &known, s), 0);
	ck_assert_uint_eq(s->n, 12 + 15);
	ck_assert_uint_eq(count_seen(s, RA), 12);
	ck_assert_uint_eq(count_seen(s, RB), 15);
	size_t at = s->v[0].r == RA ? 0 : 15;
	assert_seen(s, at, RA, 0, 12);
	assert_seen(s, at ? 0 : 12, RB, 0, 15);
	ck_assert_int_eq(sync_git_adopt(c), 0);
	/* C pushes nothing: the hub holds all it has. */
	memset(&st, 0, sizeof st);
	ck_assert_int_eq(sync_git_push(c, &rem, &st), 0);
	ck_assert_uint_eq(st.refs_pushed, 0);
	/* Own ref untouched by adopt: C has none. */
	uint64_t cnt;
	ck_assert_int_eq(sync_git_published(c, &cnt, NULL), 0);
	ck_assert_uint_eq(cnt, 0);

	/* A stale push is refused naming the ref: C holds A:1..12 locally,
	 * the hub moves on to A:1..20, C's view of the hub is older still. */
	publish(a, RA, 13, 8);
	char *rd = tmp_path(d, "d");
	sync_git *dd = open_repo(rd, RE);
	publish(a, RA, 21, 2);   /* A now at 22, the hub at 12 */
	fetch(dd, ra);           /* D: A at 22 */
	ck_assert_int_eq(read_new(dd, &known, s), 0);
	ck_assert_int_eq(sync_git_adopt(dd), 0);
	fetch(dd, hub);          /* D's view of the hub: A at 12 */
	publish(a, RA, 23, 3);
	push(a, hub);            /* the hub: A at 25 */
	for (int way = 0; way < 2; way++) {
		sync_git_test_transport_only(dd, way == 1);
		ck_assert_int_eq(sync_git_push(dd, &rem, NULL), MCRDT_EIO);
		assert_msg_has("refs/mcrdt/a1a1a1a1a1a1a1a1");
		assert_msg_has(hub);
	}
	sync_git_test_transport_only(dd, false);
	/* Synced again, D sees A's newer ops and pushes nothing stale. */
	fetch(dd, hub);
	ck_assert_int_eq(read_new(dd, &known, s), 0);
	ck_assert_uint_eq(count_seen(s, RA), 25);
	ck_assert_int_eq(sync_git_adopt(dd), 0);
	push(dd, hub);
	assert_fsck_clean(hub);
	assert_fsck_clean(rd);

	sync_git_close(dd);
	free(rd);
	crdt_vv_free(&known);
	free(s);
	sync_git_close(a);
	sync_git_close(b);
	sync_git_close(c);
	free(hub);
	free(ra);
	free(rb);
	free(rc);
	rm_tree(d);
}
END_TEST

/* B fetches evil E (which built its refs by hand) and reads: the result of
 * read_new, with fn's calls in s. */
struct evil {
	char *d, *re, *rb;
	git_repository *e;
	sync_git *b;
	struct seen *s;
	crdt_vv known;
};

static void evil_open(struct evil *ev)
{
	ev->d = tmp_dir();
	ev->re = tmp_path(ev->d, "e");
	ev->rb = tmp_path(ev->d, "b");
	sync_git *tmp = open_repo(ev->re, RE);
	sync_git_close(tmp);
	ev->e = git_open(ev->re);
	ev->b = open_repo(ev->rb, RB);
	ev->s = calloc(1, sizeof *ev->s);
	ev->s->no_bodies = true;
	crdt_vv_init(&ev->known);
}

static int evil_read(struct evil *ev)
{
	fetch(ev->b, ev->re);
	return read_new(ev->b, &ev->known, ev->s);
}

static void evil_close(struct evil *ev)
{
	git_repository_free(ev->e);
	sync_git_close(ev->b);
	crdt_vv_free(&ev->known);
	free(ev->s);
	free(ev->re);
	free(ev->rb);
	rm_tree(ev->d);
}

START_TEST(ref_to_a_blob)
{
	struct evil ev;
	evil_open(&ev);
	git_oid blob;
	ck_assert_int_eq(git_blob_create_from_buffer(&blob, ev.e, "x", 1), 0);
	set_ref(ev.e, "refs/mcrdt/", RA, &blob);
	ck_assert_int_eq(evil_read(&ev), MCRDT_ECORRUPT);
	assert_msg_has("refs/mcrdt-fetch/a1a1a1a1a1a1a1a1 points at a blob, not a commit");
	ck_assert_uint_eq(ev.s->n, 0);
	evil_close(&ev);
}
END_TEST

START_TEST(bad_ref_name)
{
	struct evil ev;
	evil_open(&ev);
	git_oid c1 = good_commit(ev.e, RA, NULL, 1, 3);
	git_reference *ref;
	ck_assert_int_eq(git_reference_create(&ref, ev.e, "refs/mcrdt/A1A1A1A1A1A1A1A1", &c1, 1, NULL), 0);
	git_reference_free(ref);
	ck_assert_int_eq(evil_read(&ev), MCRDT_ECORRUPT);
	assert_msg_has("refs/mcrdt-fetch/A1A1A1A1A1A1A1A1");
	ck_assert_uint_eq(ev.s->n, 0);
	evil_close(&ev);
}
END_TEST

/* A good commit, then one whose ops blob is garbage: fn never sees A. */
START_TEST(garbage_ops)
{
	struct evil ev;
	evil_open(&ev);
	git_oid c1 = good_commit(ev.e, RA, NULL, 1, 3);
	static const uint8_t junk[] = "this is not a record at all, not even close";
	git_oid c2 = evil_commit(ev.e, RA, &c1, 4, 6, junk, sizeof junk, NULL);
	set_ref(ev.e, "refs/mcrdt/", RA, &c2);
	ck_assert_int_eq(evil_read(&ev), MCRDT_ECORRUPT);
	assert_msg_has("replica a1a1a1a1a1a1a1a1");
	assert_msg_has(git_oid_tostr_s(&c2));
	ck_assert_uint_eq(ev.s->n, 0);

	/* A record cut short inside the blob is corrupt too (not pending). */
	crdt_op *ops = make_ops(RA, 4, 3);
	struct vbuf b = { 0 };
	encode_ops(&b, ops, 3);
	git_oid c3 = evil_commit(ev.e, RA, &c1, 4, 6, b.p, b.len - 3, NULL);
	set_ref(ev.e, "refs/mcrdt/", RA, &c3);
	ck_assert_int_eq(evil_read(&ev), MCRDT_ECORRUPT);
	assert_msg_has(git_oid_tostr_s(&c3));
	ck_assert_uint_eq(ev.s->n, 0);
	/* Counters that skip one along the chain. */
	git_oid c4 = evil_commit(ev.e, RA, &c1, 5, 7, b.p, b.len, NULL);
	set_ref(ev.e, "refs/mcrdt/", RA, &c4);
	ck_assert_int_eq(evil_read(&ev), MCRDT_ECORRUPT);
	ck_assert_uint_eq(ev.s->n, 0);
	/* A first commit that does not start at 1. */
	git_oid c5 = evil_commit(ev.e, RA, NULL, 4, 6, b.p, b.len, NULL);
	set_ref(ev.e, "refs/mcrdt/", RA, &c5);
	ck_assert_int_eq(evil_read(&ev), MCRDT_ECORRUPT);
	assert_msg_has("first of the chain");
	ck_assert_uint_eq(ev.s->n, 0);
	/* A message that is not ours. */
	git_oid c6 = evil_commit(ev.e, RA, &c1, 4, 6, b.p, b.len, "hello\n");
	set_ref(ev.e, "refs/mcrdt/", RA, &c6);
	ck_assert_int_eq(evil_read(&ev), MCRDT_ECORRUPT);
	ck_assert_uint_eq(ev.s->n, 0);
	/* Messages cut short after "mcrdt " (read past their end, once). */
	static const char *const cut[] = { "mcrdt ", "mcrdt a1a1", "mcrdt a1a1a1a1a1a1a1a1", "mcrdt a1a1a1a1a1a1a1a1 " };
	for (size_t i = 0; i < sizeof cut / sizeof cut[0]; i++) {
		git_oid c = evil_commit(ev.e, RA, &c1, 4, 6, b.p, b.len, cut[i]);
		set_ref(ev.e, "refs/mcrdt/", RA, &c);
		ck_assert_msg(evil_read(&ev) == MCRDT_ECORRUPT, "message \"%s\" went through", cut[i]);
		assert_msg_has("does not start");
		ck_assert_uint_eq(ev.s->n, 0);
	}
	/* The good chain goes through. */
	git_oid c7 = evil_commit(ev.e, RA, &c1, 4, 6, b.p, b.len, NULL);
	set_ref(ev.e, "refs/mcrdt/", RA, &c7);
	ck_assert_msg(evil_read(&ev) == 0, "%s", mcrdt_error_last());
	ck_assert_uint_eq(ev.s->n, 6);
	assert_seen(ev.s, 0, RA, 0, 6);
	vbuf_free(&b);
	free_ops(ops, 3);
	evil_close(&ev);
}
END_TEST

/* Ops under A's name that are B's (or C's). */
START_TEST(ops_of_another_replica)
{
	struct evil ev;
	evil_open(&ev);
	git_oid ca = good_commit(ev.e, RA, NULL, 1, 4);
	set_ref(ev.e, "refs/mcrdt/", RA, &ca); /* a good chain beside */
	crdt_op *ops = make_ops(RC, 1, 4);
	struct vbuf b = { 0 };
	encode_ops(&b, ops, 4);
	git_oid c1 = evil_commit(ev.e, RC + 1, NULL, 1, 4, b.p, b.len, NULL);
	set_ref(ev.e, "refs/mcrdt/", RC + 1, &c1);
	ck_assert_int_eq(evil_read(&ev), MCRDT_ECORRUPT);
	assert_msg_has("replica 0c0c0c0c0c0c0c0d");
	assert_msg_has("0c0c0c0c0c0c0c0c:1");
	ck_assert_uint_eq(count_seen(ev.s, RC), 0);
	ck_assert_uint_eq(count_seen(ev.s, RC + 1), 0);
	vbuf_free(&b);
	free_ops(ops, 4);
	evil_close(&ev);
}
END_TEST

/* A staged ref that does not extend the local ref of its replica. */
START_TEST(diverged_chain)
{
	struct evil ev;
	evil_open(&ev);
	ev.s->no_bodies = false; /* A's chain is real; E's never gets through */
	/* B holds A's real chain 1..3, 4..6. */
	char *ra = tmp_path(ev.d, "a");
	sync_git *a = open_repo(ra, RA);
	publish(a, RA, 1, 3);
	publish(a, RA, 4, 3);
	fetch(ev.b, ra);
	ck_assert_int_eq(read_new(ev.b, &ev.known, ev.s), 0);
	ck_assert_int_eq(sync_git_adopt(ev.b), 0);
	ck_assert_int_eq(crdt_vv_set_base(&ev.known, RA, 6), 0);
	/* E offers another 1..7 for A. */
	git_oid c1 = good_commit(ev.e, RA, NULL, 1, 7);
	set_ref(ev.e, "refs/mcrdt/", RA, &c1);
	ck_assert_int_eq(evil_read(&ev), MCRDT_ECORRUPT);
	assert_msg_has("does not extend ours");
	ck_assert_uint_eq(ev.s->n, 0);
	/* Adopt leaves the local ref alone. */
	ck_assert_int_eq(sync_git_adopt(ev.b), 0);
	/* And a remote that is behind is no error: nothing new. */
	sync_git *e2;
	char *r2 = tmp_path(ev.d, "a2");
	publish(a, RA, 7, 2);
	e2 = open_repo(r2, RC);
	fetch(e2, ra);
	ck_assert_int_eq(sync_git_adopt(e2), 0);
	fetch(ev.b, r2); /* E2 has A at 8; B at 6: extends */
	ck_assert_int_eq(read_new(ev.b, &ev.known, ev.s), 0);
	ck_assert_uint_eq(ev.s->n, 2);
	ck_assert_int_eq(sync_git_adopt(ev.b), 0);
	fetch(ev.b, ra);
	sync_git_close(e2);
	free(r2);
	sync_git_close(a);
	free(ra);
	evil_close(&ev);
}
END_TEST

/* A replica restored from an old backup meets the remote holding more of
 * its own chain than it has. */
START_TEST(remote_has_newer_own_ref)
{
	char *d = tmp_dir();
	char *ra = tmp_path(d, "a"), *old = tmp_path(d, "old"), *hub = tmp_path(d, "hub");
	ck_assert_int_eq(sync_git_hub_init(hub), 0);
	sync_git *a = open_repo(ra, RA);
	publish(a, RA, 1, 5);
	char cmd[1200];
	snprintf(cmd, sizeof cmd, "cp -a '%s' '%s'", ra, old);
	ck_assert_int_eq(system(cmd), 0);
	publish(a, RA, 6, 5);
	push(a, hub);
	sync_git *o = open_repo(old, RA);
	fetch(o, hub);
	struct seen *s = calloc(1, sizeof *s);
	crdt_vv known = CRDT_VV_INIT;
	ck_assert_int_eq(read_new(o, &known, s), MCRDT_ECORRUPT);
	assert_msg_has("a1a1a1a1a1a1a1a1 (this one)");
	/* The up-to-date replica itself is fine with the hub. */
	fetch(a, hub);
	ck_assert_int_eq(read_new(a, &known, s), 0);
	ck_assert_uint_eq(s->n, 0);
	free(s);
	crdt_vv_free(&known);
	sync_git_close(o);
	sync_git_close(a);
	free(ra);
	free(old);
	free(hub);
	rm_tree(d);
}
END_TEST

/* Flips bytes in the middle of a file (made writable first). */
static void damage(const char *path, off_t at)
{
	ck_assert_int_eq(chmod(path, 0644), 0);
	int fd = open(path, O_RDWR);
	ck_assert_int_ge(fd, 0);
	uint8_t b[16];
	ck_assert_int_eq(pread(fd, b, sizeof b, at), (ssize_t)sizeof b);
	for (size_t i = 0; i < sizeof b; i++)
		b[i] ^= 0x5a;
	ck_assert_int_eq(pwrite(fd, b, sizeof b, at), (ssize_t)sizeof b);
	close(fd);
}

static char *first_file(const char *dir, const char *suffix)
{
	DIR *d = opendir(dir);
	ck_assert_ptr_nonnull(d);
	struct dirent *e;
	char *found = NULL;
	size_t sl = strlen(suffix);
	while ((e = readdir(d)) && !found) {
		size_t l = strlen(e->d_name);
		if (l > sl && strcmp(e->d_name + l - sl, suffix) == 0)
			found = tmp_path(dir, e->d_name);
	}
	closedir(d);
	ck_assert_ptr_nonnull(found);
	return found;
}

/* Replica RB's repository in d/<prefix><way> (*path, malloc'd), fetching
 * and pushing as way says: 0 the local way, 1 through libgit2's transport. */
static sync_git *open_way(const char *d, const char *prefix, int way, char **path)
{
	char name[16];
	snprintf(name, sizeof name, "%s%d", prefix, way);
	*path = tmp_path(d, name);
	sync_git *g = open_repo(*path, RB);
	sync_git_test_transport_only(g, way == 1);
	return g;
}

/* A hub in d with A's ops 1..n pushed to it (one pack); the caller frees
 * the path. */
static char *hub_of_a(const char *d, uint64_t n)
{
	char *ra = tmp_path(d, "a"), *hub = tmp_path(d, "hub");
	ck_assert_int_eq(sync_git_hub_init(hub), 0);
	sync_git *a = open_repo(ra, RA);
	publish(a, RA, 1, n);
	push(a, hub);
	sync_git_close(a);
	free(ra);
	return hub;
}

/* A ref's lock file left in a hub by a sync killed while it pushed: an
 * old one is taken for what it is and removed; a fresh one may be another
 * writer's, and the push says so and leaves it. A temporary pack file
 * such a push left goes once it is a day old. */
START_TEST(push_clears_a_stale_lock_in_a_hub)
{
	char *d = tmp_dir();
	char *hub = hub_of_a(d, 4);
	char *ra = tmp_path(d, "a"), *rb = tmp_path(d, "b");
	sync_git *a = open_repo(ra, RA);
	publish(a, RA, 5, 3);
	char *tmp_old = tmp_path(hub, "objects/pack/tmp_mcrdt_pack_Old123");
	char *tmp_new = tmp_path(hub, "objects/pack/tmp_mcrdt_pack_New456");
	for (int k = 0; k < 2; k++) {
		FILE *t = fopen(k ? tmp_new : tmp_old, "w");
		ck_assert_ptr_nonnull(t);
		fclose(t);
	}
	struct timespec days[2] = { { time(NULL) - 2 * 86400, 0 }, { time(NULL) - 2 * 86400, 0 } };
	ck_assert_int_eq(utimensat(AT_FDCWD, tmp_old, days, 0), 0);
	char lock[700];
	snprintf(lock, sizeof lock, "%s/refs/mcrdt/%016" PRIx64 ".lock", hub, RA);
	FILE *f = fopen(lock, "w");
	ck_assert_ptr_nonnull(f);
	fclose(f);
	struct sync_git_remote rem = { hub, NULL, NULL };
	ck_assert_int_eq(sync_git_push(a, &rem, NULL), MCRDT_EIO);
	assert_msg_has("locked by another writer");
	ck_assert_int_eq(access(lock, F_OK), 0);
	struct timespec old[2] = { { time(NULL) - 120, 0 }, { time(NULL) - 120, 0 } };
	ck_assert_int_eq(utimensat(AT_FDCWD, lock, old, 0), 0);
	push(a, hub);
	ck_assert_int_ne(access(lock, F_OK), 0);
	ck_assert_int_ne(access(tmp_old, F_OK), 0);
	ck_assert_int_eq(access(tmp_new, F_OK), 0);
	sync_git *b = open_repo(rb, RB);
	fetch(b, hub);
	struct seen *s = calloc(1, sizeof *s);
	crdt_vv known = CRDT_VV_INIT;
	ck_assert_int_eq(read_new(b, &known, s), 0);
	ck_assert_uint_eq(s->n, 7);
	free(s);
	crdt_vv_free(&known);
	sync_git_close(b);
	sync_git_close(a);
	free(tmp_old);
	free(tmp_new);
	free(ra);
	free(rb);
	free(hub);
	rm_tree(d);
}
END_TEST

/* What a sync killed while it wrote the repository leaves (lock files,
 * a pack half copied or half written, a staged index, another file
 * staged beside its name) goes when the next one clears it; the packs and
 * what they hold stay. */
START_TEST(clear_locks_removes_what_a_killed_sync_left)
{
	char *d = tmp_dir();
	char *ra = tmp_path(d, "a");
	sync_git *a = open_repo(ra, RA);
	publish(a, RA, 1, 6);
	static const char *const left[] = { "objects/pack/tmp_mcrdt_pack_Ab12Cd",
					     "objects/pack/pack-0123456789abcdef0123456789abcdef01234567.pack.tmp_Xy34Zw",
					     "objects/pack/pack_git2_Qr56St", "objects/pack/pack-0123.idx.lock",
					     "held-packs.tmp_Uv78Wx", "refs/mcrdt/0000000000000042.lock" };
	size_t nleft = sizeof left / sizeof left[0];
	char *pd = tmp_path(ra, "objects/pack");
	unsigned before = count_files(pd, "");
	for (size_t i = 0; i < nleft; i++) {
		char *p = tmp_path(ra, left[i]);
		FILE *f = fopen(p, "w");
		ck_assert_msg(f != NULL, "%s", p);
		fputs("left by a killed sync\n", f);
		fclose(f);
		free(p);
	}
	unsigned n = 0;
	ck_assert_int_eq(sync_git_clear_locks(a, &n), 0);
	ck_assert_uint_eq(n, nleft);
	for (size_t i = 0; i < nleft; i++) {
		char *p = tmp_path(ra, left[i]);
		ck_assert_msg(access(p, F_OK) != 0, "%s is still there", left[i]);
		free(p);
	}
	ck_assert_uint_eq(count_files(pd, ""), before);
	assert_bodies(a, RA, 6);
	sync_git_close(a);
	assert_fsck_clean(ra);
	free(pd);
	free(ra);
	rm_tree(d);
}
END_TEST

/* Staged refs another remote left: one for a replica this remote lacks
 * goes, and one under a name this remote's ref needs as a file (refs
 * below it) does not stop the fetch, over either way of fetching; a
 * staged ref the fetch leaves as it was is not written again. */
START_TEST(stale_staged_refs_go)
{
	char *d = tmp_dir();
	char *hub = hub_of_a(d, 4);
	for (int way = 0; way < 2; way++) {
		char *rb;
		sync_git *b = open_way(d, "b", way, &rb);
		fetch(b, hub);
		git_repository *gr = git_open(rb);
		git_oid c;
		ck_assert_int_eq(git_reference_name_to_id(&c, gr, "refs/mcrdt-fetch/a1a1a1a1a1a1a1a1"), 0);
		/* unchanged: the same file afterwards */
		char *staged = tmp_path(rb, "refs/mcrdt-fetch/a1a1a1a1a1a1a1a1");
		struct stat before, after;
		ck_assert_int_eq(stat(staged, &before), 0);
		fetch(b, hub);
		ck_assert_int_eq(stat(staged, &after), 0);
		ck_assert_uint_eq(after.st_ino, before.st_ino);
		ck_assert_int_eq(after.st_mtim.tv_nsec, before.st_mtim.tv_nsec);
		/* left by fetches from elsewhere */
		git_reference *ref;
		ck_assert_int_eq(git_reference_remove(gr, "refs/mcrdt-fetch/a1a1a1a1a1a1a1a1"), 0);
		ck_assert_int_eq(git_reference_create(&ref, gr, "refs/mcrdt-fetch/a1a1a1a1a1a1a1a1/x", &c, 1, NULL), 0);
		git_reference_free(ref);
		set_ref(gr, "refs/mcrdt-fetch/", RC, &c);
		fetch(b, hub);
		git_oid got;
		ck_assert_int_eq(git_reference_name_to_id(&got, gr, "refs/mcrdt-fetch/a1a1a1a1a1a1a1a1"), 0);
		ck_assert(git_oid_equal(&got, &c));
		ck_assert_int_eq(git_reference_name_to_id(&got, gr, "refs/mcrdt-fetch/a1a1a1a1a1a1a1a1/x"), GIT_ENOTFOUND);
		ck_assert_int_eq(git_reference_name_to_id(&got, gr, "refs/mcrdt-fetch/0c0c0c0c0c0c0c0c"), GIT_ENOTFOUND);
		git_repository_free(gr);
		sync_git_close(b);
		free(staged);
		free(rb);
	}
	free(hub);
	rm_tree(d);
}
END_TEST

START_TEST(corrupt_hub)
{
	char *d = tmp_dir();
	char *hub = hub_of_a(d, 30);
	char *pd = tmp_path(hub, "objects/pack");
	char *pack = first_file(pd, ".pack");
	struct stat sb;
	ck_assert_int_eq(stat(pack, &sb), 0);
	damage(pack, sb.st_size / 2);
	for (int k = 0; k < 2; k++) {
		char *rb;
		sync_git *b = open_way(d, "b", k, &rb);
		struct sync_git_remote rem = { hub, NULL, NULL };
		int rc = sync_git_fetch(b, &rem, NULL);
		if (rc == 0) {
			struct seen *s = calloc(1, sizeof *s);
			crdt_vv known = CRDT_VV_INIT;
			rc = read_new(b, &known, s);
			free(s);
			crdt_vv_free(&known);
		}
		ck_assert_msg(rc < 0, "way %d: a damaged pack went through", k);
		ck_assert_str_ne(mcrdt_error_last(), "");
		sync_git_close(b);
		free(rb);
	}
	free(pack);
	free(pd);

	/* A loose object damaged on a peer. */
	char *re = tmp_path(d, "e");
	sync_git *tmp = open_repo(re, RE);
	sync_git_close(tmp);
	git_repository *e = git_open(re);
	git_oid c1 = good_commit(e, RA, NULL, 1, 4);
	set_ref(e, "refs/mcrdt/", RA, &c1);
	git_commit *cm;
	ck_assert_int_eq(git_commit_lookup(&cm, e, &c1), 0);
	git_tree *t;
	ck_assert_int_eq(git_commit_tree(&t, cm), 0);
	const git_oid *ops_id = git_tree_entry_id(git_tree_entry_byname(t, "ops"));
	char loose[700], hx[41];
	git_oid_tostr(hx, sizeof hx, ops_id);
	snprintf(loose, sizeof loose, "%s/objects/%.2s/%s", re, hx, hx + 2);
	git_tree_free(t);
	git_commit_free(cm);
	git_repository_free(e);
	ck_assert_int_eq(stat(loose, &sb), 0);
	damage(loose, sb.st_size / 2);
	for (int k = 0; k < 2; k++) {
		char *rb;
		sync_git *b = open_way(d, "c", k, &rb);
		struct sync_git_remote rem = { re, NULL, NULL };
		int rc = sync_git_fetch(b, &rem, NULL);
		struct seen *s = calloc(1, sizeof *s);
		if (rc == 0) {
			crdt_vv known = CRDT_VV_INIT;
			rc = read_new(b, &known, s);
			crdt_vv_free(&known);
		}
		ck_assert_msg(rc < 0, "way %d: a damaged loose object went through", k);
		ck_assert_uint_eq(s->n, 0);
		free(s);
		sync_git_close(b);
		free(rb);
	}
	free(re);
	free(hub);
	rm_tree(d);
}
END_TEST

/* A hub whose index is a link to /dev/zero, or a FIFO, or whose pack is a
 * FIFO: a clear error, not a fetch that fills memory or waits forever. */
START_TEST(hub_files_not_regular)
{
	char *d = tmp_dir();
	char *hub = hub_of_a(d, 3);
	char *pd = tmp_path(hub, "objects/pack");
	char *idx = first_file(pd, ".idx"), *pack = first_file(pd, ".pack");
	for (int k = 0; k < 3; k++) {
		char *f = k == 2 ? pack : idx, saved[700];
		snprintf(saved, sizeof saved, "%s.saved", f);
		ck_assert_int_eq(rename(f, saved), 0);
		if (k == 0)
			ck_assert_int_eq(symlink("/dev/zero", f), 0);
		else
			ck_assert_int_eq(mkfifo(f, 0600), 0);
		char name[8];
		snprintf(name, sizeof name, "b%d", k);
		char *rb = tmp_path(d, name);
		sync_git *b = open_repo(rb, RB);
		struct sync_git_remote rem = { hub, NULL, NULL };
		ck_assert_int_eq(sync_git_fetch(b, &rem, NULL), MCRDT_EIO);
		assert_msg_has("is not a regular file");
		/* Put back: the same replica fetches. */
		ck_assert_int_eq(rename(saved, f), 0);
		ck_assert_msg(sync_git_fetch(b, &rem, NULL) == 0, "%s", mcrdt_error_last());
		sync_git_close(b);
		free(rb);
	}
	free(idx);
	free(pack);
	free(pd);
	free(hub);
	rm_tree(d);
}
END_TEST

struct forge {
	struct pack p;
	git_odb *odb;
	const git_oid *victim; /* written with other bytes under its id */
};

static int forge_one(const git_oid *id, void *arg)
{
	struct forge *f = arg;
	git_odb_object *o;
	ck_assert_int_eq(git_odb_read(&o, f->odb, id), 0);
	if (git_oid_equal(id, f->victim)) {
		static const char lie[] = "Subject: not what was sent\r\n\r\nforged\r\n";
		uint8_t z[256];
		uLongf zl = sizeof z;
		ck_assert_int_eq(compress2(z, &zl, (const Bytef *)lie, sizeof lie - 1, 1), Z_OK);
		ck_assert_int_eq(pack_put(&f->p, id, GIT_OBJECT_BLOB, sizeof lie - 1, z, zl), 0);
	} else {
		git_oid got;
		ck_assert_int_eq(pack_add(&f->p, git_odb_object_type(o), git_odb_object_data(o), git_odb_object_size(o), &got), 0);
		ck_assert(git_oid_equal(&got, id));
	}
	git_odb_object_free(o);
	return 0;
}

/* Rewrites the pack index at path with a fanout (where readers look an id
 * up) that does not count its ids, its checksum made to hold. */
static void forge_fanout(const char *path)
{
	FILE *f = fopen(path, "rb");
	ck_assert_ptr_nonnull(f);
	uint8_t d[1 << 16];
	size_t len = fread(d, 1, sizeof d, f);
	fclose(f);
	ck_assert_uint_gt(len, 8 + 1024 + 20 + 40);
	uint8_t b0 = d[8 + 1024]; /* the first id's first byte */
	for (unsigned k = 0; k < (b0 ? b0 : 1u); k++) {
		uint32_t v = b0 ? 1 : 0;
		uint8_t *q = d + 8 + 4 * k;
		q[0] = (uint8_t)(v >> 24), q[1] = (uint8_t)(v >> 16), q[2] = (uint8_t)(v >> 8), q[3] = (uint8_t)v;
	}
	struct sha1_ctx sha;
	sha1_init(&sha);
	sha1_update(&sha, d, len - 20);
	sha1_final(&sha, d + len - 20);
	char tmp[700];
	snprintf(tmp, sizeof tmp, "%s.forged", path);
	f = fopen(tmp, "wb");
	ck_assert_uint_eq(fwrite(d, 1, len, f), len);
	fclose(f);
	ck_assert_int_eq(rename(tmp, path), 0);
}

/* A fresh repository name (replica id) in d fetches from hub (A's 8 ops):
 * refused with MCRDT_ECORRUPT naming what, nothing taken in; once saved is
 * renamed back to path, the same repository fetches every body. */
static void refused_until_restored(const char *d, const char *name, uint64_t id, const char *hub, const char *what,
				   const char *saved, const char *path)
{
	char *r = tmp_path(d, name);
	sync_git *g = open_repo(r, id);
	struct sync_git_remote rem = { hub, NULL, NULL };
	ck_assert_int_eq(sync_git_fetch(g, &rem, NULL), MCRDT_ECORRUPT);
	assert_msg_has(what);
	ck_assert_uint_eq(count_packs(r), 0);
	ck_assert_int_eq(rename(saved, path), 0);
	fetch(g, hub);
	assert_bodies(g, RA, 8);
	sync_git_close(g);
	free(r);
}

/* A hub whose pack and index agree with their checksums, but one body in
 * it is not the bytes its id names (someone who can write to the hub made
 * it): a local fetch refuses it and takes nothing in, and once the hub
 * holds the real pack again the same replica fetches every body. */
START_TEST(forged_pack_on_a_hub)
{
	char *d = tmp_dir();
	char *hub = hub_of_a(d, 8);
	char *pd = tmp_path(hub, "objects/pack");
	char *idx = first_file(pd, ".idx"), *pack = first_file(pd, ".pack");
	char *sidx = tmp_path(d, "real.idx"), *spack = tmp_path(d, "real.pack");
	ck_assert_int_eq(rename(idx, sidx), 0);
	ck_assert_int_eq(rename(pack, spack), 0);

	char *want;
	sync_oid body;
	size_t len = op_body(RA, 2, &want, &body);
	ck_assert(op_has_body(2));
	git_oid victim;
	memcpy(victim.id, body.id, 20);
	char *objects = tmp_path(d, "a/objects"), *hubobjects = tmp_path(hub, "objects");
	struct forge f = { .victim = &victim };
	ck_assert_int_eq(git_odb_open(&f.odb, objects), 0);
	ck_assert_int_eq(pack_open(&f.p, hubobjects, NULL, false), 0);
	ck_assert_int_eq(git_odb_foreach(f.odb, forge_one, &f), 0);
	ck_assert_int_eq(pack_finish(&f.p), 0);
	pack_free(&f.p);
	git_odb_free(f.odb);

	char *rb = tmp_path(d, "b");
	sync_git *b = open_repo(rb, RB);
	struct sync_git_remote rem = { hub, NULL, NULL };
	ck_assert_int_eq(sync_git_fetch(b, &rem, NULL), MCRDT_ECORRUPT);
	assert_msg_has("does not match its id");
	ck_assert_uint_eq(count_packs(rb), 0);

	/* The real pack back, the forged one gone. */
	char *forged = first_file(pd, ".idx"), forged_pack[700];
	snprintf(forged_pack, sizeof forged_pack, "%.*s.pack", (int)strlen(forged) - 4, forged);
	ck_assert_int_eq(unlink(forged), 0);
	ck_assert_int_eq(unlink(forged_pack), 0);
	ck_assert_int_eq(rename(spack, pack), 0);
	ck_assert_int_eq(rename(sidx, idx), 0);
	fetch(b, hub);
	assert_bodies(b, RA, 8);
	struct sync_git_blob blob;
	ck_assert_int_eq(sync_git_blob_read(b, &body, &blob), 0);
	blob_is(&blob, want, len);
	sync_git_close(b);
	assert_fsck_clean(rb);

	/* An index whose fanout lies: libgit2 would not find the objects. */
	char saved[700];
	snprintf(saved, sizeof saved, "%s.real", idx);
	ck_assert_int_eq(link(idx, saved), 0);
	forge_fanout(idx);
	refused_until_restored(d, "c", RC, hub, "fanout", saved, idx);

	free(want);
	free(forged);
	free(objects);
	free(hubobjects);
	free(rb);
	free(idx);
	free(pack);
	free(sidx);
	free(spack);
	free(pd);
	free(hub);
	rm_tree(d);
}
END_TEST

START_TEST(maintain_consolidates)
{
	char *d = tmp_dir();
	char *ra = tmp_path(d, "a"), *rb = tmp_path(d, "b");
	sync_git *a = open_repo(ra, RA);
	for (int i = 0; i < 20; i++)
		publish(a, RA, (uint64_t)i * 6 + 1, 6);
	ck_assert_uint_eq(count_packs(ra), 20);
	unsigned np = 0;
	ck_assert_int_eq(sync_git_maintain(a, 20, &np), 0);
	ck_assert_uint_eq(np, 20);
	ck_assert_int_eq(sync_git_maintain(a, 4, &np), 0);
	ck_assert_uint_eq(np, 1);
	ck_assert_uint_eq(count_packs(ra), 1);
	ck_assert_uint_eq(count_loose(ra), 0);
	assert_fsck_clean(ra);
	/* Everything still there: the handle reads bodies and publishes on. */
	assert_bodies(a, RA, 120);
	publish(a, RA, 121, 3);
	ck_assert_uint_eq(count_packs(ra), 2);
	sync_git *b = open_repo(rb, RB);
	fetch(b, ra);
	struct seen *s = calloc(1, sizeof *s);
	crdt_vv known = CRDT_VV_INIT;
	ck_assert_int_eq(read_new(b, &known, s), 0);
	ck_assert_uint_eq(s->n, 123);
	assert_seen(s, 0, RA, 0, 123);
	/* B consolidates what it fetched (staged, not adopted yet) too. */
	ck_assert_int_eq(sync_git_maintain(b, 1, &np), 0);
	ck_assert_uint_eq(np, 1);
	ck_assert_int_eq(read_new(b, &known, s), 0);
	ck_assert_uint_eq(s->n, 123);
	assert_fsck_clean(rb);
	/* Missing and non-blob objects. */
	sync_oid none = { { 1, 2, 3 } };
	struct sync_git_blob blob;
	ck_assert_int_eq(sync_git_blob_read(b, &none, &blob), MCRDT_ENOTFOUND);
	git_repository *gr = git_open(rb);
	git_oid head;
	ck_assert_int_eq(git_reference_name_to_id(&head, gr, "refs/mcrdt-fetch/a1a1a1a1a1a1a1a1"), 0);
	git_repository_free(gr);
	memcpy(none.id, head.id, 20);
	ck_assert_int_eq(sync_git_blob_read(b, &none, &blob), MCRDT_ECORRUPT);
	assert_msg_has("commit, not a blob");
	free(s);
	crdt_vv_free(&known);
	sync_git_close(b);
	sync_git_close(a);
	free(ra);
	free(rb);
	rm_tree(d);
}
END_TEST

/* A .pack of repo (a path to free): the only one, or any of equals. */
static char *pack_of(const char *repo)
{
	char *dir = tmp_path(repo, "objects/pack"), *p = first_file(dir, ".pack");
	free(dir);
	return p;
}

/* Every op of r in [1, n] and every body, read back from repo through a
 * fresh replica that fetches it. */
static void assert_all_there(const char *repo, const char *scratch, uint64_t r, uint64_t n)
{
	sync_git *b = open_repo(scratch, RB);
	fetch(b, repo);
	struct seen *s = calloc(1, sizeof *s);
	crdt_vv known = CRDT_VV_INIT;
	ck_assert_msg(read_new(b, &known, s) == 0, "%s", mcrdt_error_last());
	ck_assert_uint_eq(s->n, n);
	assert_seen(s, 0, r, 0, n);
	assert_bodies(b, r, n);
	free(s);
	crdt_vv_free(&known);
	sync_git_close(b);
	assert_fsck_clean(scratch);
}

/* Ids that share their first 8 bytes (a peer can make such a pair) are
 * told apart, and one asked about twice before it is written (two publish
 * workers deflating it at once) goes in once. */
START_TEST(pack_seen_tells_clashing_ids_apart)
{
	char *d = tmp_dir(), *objs = tmp_path(d, "objects"), *pd = tmp_path(d, "objects/pack");
	ck_assert(mkdir(objs, 0700) == 0 && mkdir(pd, 0700) == 0);
	struct pack p;
	ck_assert_int_eq(pack_open(&p, objs, NULL, false), 0);
	git_oid x, y, z;
	memset(x.id, 0xab, sizeof x.id);
	y = x;
	y.id[9] ^= 1; /* x's first 8 bytes, then another id */
	z = x;
	z.id[14] ^= 4;
	ck_assert_int_eq(pack_seen(&p, &x), 0);
	ck_assert(pack_has(&p, &x) && !pack_has(&p, &y));
	ck_assert_int_eq(pack_seen(&p, &y), 0);
	ck_assert_int_eq(pack_seen(&p, &y), 1);
	ck_assert(pack_has(&p, &y) && !pack_has(&p, &z));
	ck_assert_int_eq(pack_seen(&p, &z), 0);
	ck_assert_int_eq(pack_seen(&p, &z), 1);
	ck_assert_int_eq(pack_seen(&p, &x), 1);
	pack_free(&p);
	ck_assert_uint_eq(count_files(pd, ""), 2); /* (. and ..: nothing left) */
	free(objs);
	free(pd);
	rm_tree(d);
}
END_TEST

/* The objects the packs of repo hold, duplicates counted. */
static uint32_t pack_objects(const char *repo)
{
	char *dir = tmp_path(repo, "objects/pack");
	DIR *dp = opendir(dir);
	ck_assert_ptr_nonnull(dp);
	uint32_t n = 0;
	struct dirent *e;
	while ((e = readdir(dp))) {
		size_t l = strlen(e->d_name);
		if (l < 5 || strcmp(e->d_name + l - 4, ".idx") != 0)
			continue;
		char *p = tmp_path(dir, e->d_name);
		struct pack_idx ix;
		ck_assert_int_eq(idx_load("test", p, SIZE_MAX, &ix), 0);
		n += ix.n;
		idx_free(&ix);
		free(p);
	}
	closedir(dp);
	free(dir);
	return n;
}

/* Links the one pack of repo a that repo b does not have by name (.pack
 * and .idx) into dir; its file name (.pack) into name. */
static void link_pack_b_lacks(const char *a, const char *b, const char *dir, char *name, size_t size)
{
	char *ad = tmp_path(a, "objects/pack"), *bd = tmp_path(b, "objects/pack");
	DIR *dp = opendir(ad);
	ck_assert_ptr_nonnull(dp);
	struct dirent *e;
	name[0] = 0;
	while ((e = readdir(dp))) {
		size_t l = strlen(e->d_name);
		char *inb = tmp_path(bd, e->d_name);
		bool new_to_b = l > 5 && strcmp(e->d_name + l - 5, ".pack") == 0 && access(inb, F_OK) != 0;
		free(inb);
		if (!new_to_b)
			continue;
		ck_assert_msg(!name[0], "two packs new to b");
		snprintf(name, size, "%s", e->d_name);
		for (int k = 0; k < 2; k++) {
			char from[700], to[700];
			snprintf(from, sizeof from, "%s/%.*s.%s", ad, (int)l - 5, e->d_name, k ? "idx" : "pack");
			snprintf(to, sizeof to, "%s/%.*s.%s", dir, (int)l - 5, e->d_name, k ? "idx" : "pack");
			ck_assert_int_eq(link(from, to), 0);
		}
	}
	closedir(dp);
	ck_assert_msg(name[0], "no pack new to b");
	free(ad);
	free(bd);
}

/* The offset in the pack of the entry of id, from the index at path. */
static uint64_t entry_offset(const char *path, const sync_oid *id)
{
	struct pack_idx ix;
	ck_assert_int_eq(idx_load("test", path, SIZE_MAX, &ix), 0);
	uint64_t off = 0;
	for (uint32_t i = 0; i < ix.n && !off; i++)
		if (memcmp(ix.ids + (size_t)i * 20, id->id, 20) == 0)
			off = (uint64_t)ix.offs[4 * i] << 24 | (uint64_t)ix.offs[4 * i + 1] << 16 |
			      (uint64_t)ix.offs[4 * i + 2] << 8 | ix.offs[4 * i + 3];
	idx_free(&ix);
	ck_assert_uint_gt(off, 0);
	return off;
}

/* A replica that holds most of a peer's pack, which the peer then merged
 * with its new ops, fetches what it lacks, not the merged pack: a pack of
 * its own, the bytes fetched a fraction of the peer's pack. A forged body
 * among them (its CRC-32 made to hold), then a damaged one, is refused
 * with nothing taken in, until the peer's pack is whole again. */
START_TEST(fetch_takes_only_what_it_lacks)
{
	char *d = tmp_dir();
	char *ra = tmp_path(d, "a"), *rb = tmp_path(d, "b");
	sync_git *a = open_repo(ra, RA);
	publish(a, RA, 1, 60);
	sync_git *b = open_repo(rb, RB);
	fetch(b, ra);
	ck_assert_uint_eq(count_packs(rb), 1);
	uint32_t nb = pack_objects(rb);
	char *rcd = tmp_path(d, "c");
	sync_git *c = open_repo(rcd, RC); /* the same as B, for the end */
	fetch(c, ra);
	publish(a, RA, 61, 4);
	/* A's pack of the new ops (the one B lacks), kept aside for the end. */
	char *p2 = tmp_path(d, "p2"), p2name[300];
	ck_assert_int_eq(mkdir(p2, 0700), 0);
	link_pack_b_lacks(ra, rb, p2, p2name, sizeof p2name);
	unsigned np = 0;
	ck_assert_int_eq(sync_git_maintain(a, 1, &np), 0);
	ck_assert_uint_eq(np, 1);
	sync_git_close(a);
	char *apack = pack_of(ra), aidx[700], *base = strrchr(apack, '/') + 1;
	snprintf(aidx, sizeof aidx, "%.*s.idx", (int)strlen(apack) - 5, apack);
	struct stat sb;
	ck_assert_int_eq(stat(apack, &sb), 0);
	uint32_t lacked = pack_objects(ra) - nb;
	char *pdb = NULL;

	/* The merged pack with body 61 forged, in its place. */
	char *want;
	sync_oid body;
	ck_assert(op_has_body(61) && op_has_body(62));
	op_body(RA, 61, &want, &body);
	free(want);
	git_oid victim;
	memcpy(victim.id, body.id, 20);
	char *ff = tmp_path(d, "f"), *fo = tmp_path(d, "f/objects"), *fp = tmp_path(d, "f/objects/pack");
	char *objects = tmp_path(ra, "objects");
	ck_assert(mkdir(ff, 0700) == 0 && mkdir(fo, 0700) == 0 && mkdir(fp, 0700) == 0);
	struct forge f = { .victim = &victim };
	ck_assert_int_eq(git_odb_open(&f.odb, objects), 0);
	ck_assert_int_eq(pack_open(&f.p, fo, NULL, false), 0);
	ck_assert_int_eq(git_odb_foreach(f.odb, forge_one, &f), 0);
	ck_assert_int_eq(pack_finish(&f.p), 0);
	pack_free(&f.p);
	git_odb_free(f.odb);
	char *sidx = tmp_path(d, "real.idx"), *spack = tmp_path(d, "real.pack");
	char *fidx = first_file(fp, ".idx"), *fpack = first_file(fp, ".pack"), *pd = tmp_path(ra, "objects/pack");
	char *aside[2] = { tmp_path(pd, strrchr(fidx, '/') + 1), tmp_path(pd, strrchr(fpack, '/') + 1) };
	ck_assert_int_eq(rename(aidx, sidx), 0);
	ck_assert_int_eq(rename(apack, spack), 0);
	ck_assert_int_eq(rename(fpack, aside[1]), 0);
	ck_assert_int_eq(rename(fidx, aside[0]), 0);
	struct sync_git_remote rem = { ra, NULL, NULL };
	ck_assert_int_eq(sync_git_fetch(b, &rem, NULL), MCRDT_ECORRUPT);
	assert_msg_has("does not match its id");
	ck_assert_uint_eq(count_packs(rb), 1);
	struct sync_git_blob blob;
	ck_assert_int_eq(sync_git_blob_read(b, &body, &blob), MCRDT_ENOTFOUND);

	/* The real pack back, one entry B lacks damaged. */
	for (int i = 0; i < 2; i++)
		ck_assert_int_eq(unlink(aside[i]), 0);
	ck_assert_int_eq(rename(spack, apack), 0);
	ck_assert_int_eq(rename(sidx, aidx), 0);
	sync_oid body62;
	op_body(RA, 62, &want, &body62);
	free(want);
	uint64_t at = entry_offset(aidx, &body62) + 4;
	damage(apack, (off_t)at);
	ck_assert_int_eq(sync_git_fetch(b, &rem, NULL), MCRDT_ECORRUPT);
	assert_msg_has("CRC-32");
	ck_assert_uint_eq(count_packs(rb), 1);

	/* Whole again, and A's pack from before the merge back beside it (the
	 * objects B lacks, in two packs): they come once, into a pack of B's
	 * own, and nothing else is left in B's pack directory. */
	damage(apack, (off_t)at);
	for (int k = 0; k < 2; k++) {
		char from[700], to[700], *dot = strrchr(p2name, '.');
		snprintf(from, sizeof from, "%s/%.*s.%s", p2, (int)(dot - p2name), p2name, k ? "idx" : "pack");
		snprintf(to, sizeof to, "%s/%.*s.%s", pd, (int)(dot - p2name), p2name, k ? "idx" : "pack");
		ck_assert_int_eq(rename(from, to), 0);
	}
	struct sync_git_stats st = { 0 };
	ck_assert_msg(sync_git_fetch(b, &rem, &st) == 0, "fetch: %s", mcrdt_error_last());
	ck_assert_uint_eq(st.objects_fetched, lacked);
	ck_assert_uint_lt(st.bytes_fetched * 4, (uint64_t)sb.st_size);
	ck_assert_uint_eq(count_packs(rb), 2);
	ck_assert_uint_eq(count_files(pdb = tmp_path(rb, "objects/pack"), ""), 2 + 4); /* (. and ..) */
	char *merged = tmp_path(rb, "objects/pack");
	char *theirs = tmp_path(merged, base);
	ck_assert_int_ne(access(theirs, F_OK), 0);
	/* Known held now: later fetches skip A's merged pack without reading
	 * its index (here damaged, and unnoticed, as for a pack held by name). */
	char *hp = tmp_path(rb, "held-packs"), held[4096] = "";
	FILE *hf = fopen(hp, "r");
	ck_assert_ptr_nonnull(hf);
	held[fread(held, 1, sizeof held - 1, hf)] = 0;
	fclose(hf);
	ck_assert_msg(strstr(held, "pack-") && memmem(held, strlen(held), base, 45), "held-packs: %s", held);
	damage(aidx, 8 + 1024 + 20);
	fetch(b, ra);
	damage(aidx, 8 + 1024 + 20);
	assert_bodies(b, RA, 64);
	sync_git_close(b);
	assert_fsck_clean(rb);

	/* Two packs that both hold what C lacks among much it holds (A's own
	 * merge, and git's copy of all of A): taken out of one, not again. */
	if (have_git()) {
		for (int k = 0; k < 2; k++) {
			char to[700], *dot = strrchr(p2name, '.');
			snprintf(to, sizeof to, "%s/%.*s.%s", pd, (int)(dot - p2name), p2name, k ? "idx" : "pack");
			ck_assert_int_eq(unlink(to), 0);
		}
		char cmd[1400];
		snprintf(cmd, sizeof cmd,
			 "cd '%s' && git cat-file --batch-all-objects --batch-check='%%(objectname)' | "
			 "git pack-objects -q --window=0 --no-reuse-object objects/pack/pack >/dev/null",
			 ra);
		ck_assert_msg(system(cmd) == 0, "%s", cmd);
		ck_assert_uint_eq(count_packs(ra), 2);
		memset(&st, 0, sizeof st);
		ck_assert_msg(sync_git_fetch(c, &rem, &st) == 0, "fetch: %s", mcrdt_error_last());
		ck_assert_uint_eq(st.objects_fetched, lacked);
		ck_assert_uint_eq(count_packs(rcd), 2);
		assert_bodies(c, RA, 64);
	}
	sync_git_close(c);
	assert_fsck_clean(rcd);

	for (int i = 0; i < 2; i++)
		free(aside[i]);
	free(pdb);
	free(p2);
	free(rcd);
	free(hp);
	free(theirs);
	free(merged);
	free(pd);
	free(fidx);
	free(fpack);
	free(sidx);
	free(spack);
	free(objects);
	free(ff);
	free(fo);
	free(fp);
	free(apack);
	free(ra);
	free(rb);
	rm_tree(d);
}
END_TEST

/* Past the limit only the small packs merge: the big one (a full sync's)
 * stays as it is, and what is left is geometric. */
START_TEST(maintain_merges_the_small_packs)
{
	char *d = tmp_dir();
	char *ra = tmp_path(d, "a"), *rb = tmp_path(d, "b");
	sync_git *a = open_repo(ra, RA);
	publish(a, RA, 1, 400);
	char *big = pack_of(ra);
	struct stat before, after;
	ck_assert_int_eq(stat(big, &before), 0);
	for (uint64_t i = 0; i < SYNC_GIT_MAX_PACKS - 1; i++)
		publish(a, RA, 401 + 2 * i, 2);
	unsigned np = 0;
	ck_assert_int_eq(sync_git_maintain(a, SYNC_GIT_MAX_PACKS, &np), 0);
	ck_assert_uint_eq(np, SYNC_GIT_MAX_PACKS); /* not past the limit yet */
	publish(a, RA, 399 + 2 * SYNC_GIT_MAX_PACKS, 2);
	ck_assert_int_eq(sync_git_maintain(a, SYNC_GIT_MAX_PACKS, &np), 0);
	ck_assert_uint_eq(np, 2);
	ck_assert_uint_eq(count_packs(ra), 2);
	ck_assert_int_eq(stat(big, &after), 0);
	ck_assert_int_eq(before.st_ino, after.st_ino);
	ck_assert_int_eq(before.st_size, after.st_size);
	assert_fsck_clean(ra);
	/* The handle goes on: it reads and publishes after the merge. */
	publish(a, RA, 401 + 2 * SYNC_GIT_MAX_PACKS, 3);
	assert_all_there(ra, rb, RA, 403 + 2 * SYNC_GIT_MAX_PACKS);
	sync_git_close(a);
	free(big);
	free(ra);
	free(rb);
	rm_tree(d);
}
END_TEST

/* Pushes to a hub on this machine keep its pack count down, and what the
 * hub holds stays whole. */
START_TEST(push_consolidates_the_hub)
{
	char *d = tmp_dir();
	char *ra = tmp_path(d, "a"), *rb = tmp_path(d, "b"), *hub = tmp_path(d, "hub");
	ck_assert_int_eq(sync_git_hub_init(hub), 0);
	sync_git *a = open_repo(ra, RA);
	unsigned most = 0;
	for (uint64_t i = 0; i < 3 * SYNC_GIT_MAX_PACKS; i++) {
		publish(a, RA, 1 + 3 * i, 3);
		fetch(a, hub);
		push(a, hub);
		unsigned n = count_packs(hub);
		most = n > most ? n : most;
	}
	ck_assert_uint_le(most, SYNC_GIT_MAX_PACKS);
	assert_fsck_clean(hub);
	assert_all_there(hub, rb, RA, 9 * SYNC_GIT_MAX_PACKS);
	sync_git_close(a);
	free(ra);
	free(rb);
	free(hub);
	rm_tree(d);
}
END_TEST

struct merger {
	sync_git *g;
	unsigned calls;
};

static void merge_source(void *arg)
{
	struct merger *m = arg;
	if (m->calls++ == 0)
		ck_assert_msg(sync_git_maintain(m->g, 1, NULL) == 0, "%s", mcrdt_error_last());
}

/* The source merges its packs while a fetch copies them: the packs that
 * went are found again in the pack they went into. */
START_TEST(fetch_while_the_source_merges)
{
	char *d = tmp_dir();
	char *ra = tmp_path(d, "a"), *rb = tmp_path(d, "b");
	sync_git *a = open_repo(ra, RA);
	for (uint64_t i = 0; i < 6; i++)
		publish(a, RA, 1 + 10 * i, 10);
	sync_git *other = open_repo(ra, RA); /* another process's handle */
	struct merger m = { other, 0 };
	sync_git_test_after_pack(merge_source, &m);
	assert_all_there(ra, rb, RA, 60);
	sync_git_test_after_pack(NULL, NULL);
	ck_assert_uint_gt(m.calls, 1);
	ck_assert_uint_eq(count_packs(ra), 1);
	ck_assert_uint_eq(count_packs(rb), 2); /* the first pack copied, then the merged one */
	sync_git_close(other);
	sync_git_close(a);
	free(ra);
	free(rb);
	rm_tree(d);
}
END_TEST

/* A repository at ra holding A's ops 1..60 in three packs. */
static sync_git *three_packs(const char *ra)
{
	sync_git *a = open_repo(ra, RA);
	for (uint64_t i = 0; i < 3; i++)
		publish(a, RA, 1 + 20 * i, 20);
	return a;
}

/* A pack whose bytes do not match its checksum stops a merge before
 * anything is removed. */
START_TEST(maintain_refuses_a_damaged_pack)
{
	char *d = tmp_dir();
	char *ra = tmp_path(d, "a");
	sync_git *a = three_packs(ra);
	char *big = pack_of(ra);
	damage(big, 200);
	ck_assert_int_eq(sync_git_maintain(a, 1, NULL), MCRDT_ECORRUPT);
	assert_msg_has("corrupt");
	ck_assert_uint_eq(count_packs(ra), 3);
	char *pd = tmp_path(ra, "objects/pack");
	ck_assert_uint_eq(count_files(pd, ".idx"), 3);
	DIR *dp = opendir(pd);
	ck_assert_ptr_nonnull(dp);
	for (struct dirent *e; (e = readdir(dp));)
		ck_assert_msg(strncmp(e->d_name, "tmp_", 4) != 0 && !strstr(e->d_name, ".tmp_"), "%s was left",
			      e->d_name);
	closedir(dp);
	free(pd);
	sync_git_close(a);
	free(big);
	free(ra);
	rm_tree(d);
}
END_TEST

/* An index on the hub far larger than its pack could need (a sparse file
 * of 64 GiB) is refused before it is read, and the fetch goes through once
 * the real one is back. */
START_TEST(huge_index_on_a_hub)
{
	char *d = tmp_dir();
	char *hub = hub_of_a(d, 8);
	char *pd = tmp_path(hub, "objects/pack");
	char *idx = first_file(pd, ".idx"), *saved = tmp_path(d, "real.idx");
	char cmd[2048];
	snprintf(cmd, sizeof cmd, "cp -p '%s' '%s' && chmod u+w '%s' && truncate -s 64G '%s'", idx, saved, idx, idx);
	ck_assert_int_eq(system(cmd), 0);
	refused_until_restored(d, "b", RB, hub, "larger than its pack", saved, idx);
	free(saved);
	free(idx);
	free(pd);
	free(hub);
	rm_tree(d);
}
END_TEST

/* pread is wrapped (CMakeLists.txt): armed with n, the nth call from
 * then on first cuts the file it reads short at the offset it reads, as
 * another process truncating a hub's pack under a merge would. */
ssize_t __real_pread(int fd, void *buf, size_t n, off_t off);
ssize_t __wrap_pread(int fd, void *buf, size_t n, off_t off);
static int g_cut_at_read;
ssize_t __wrap_pread(int fd, void *buf, size_t n, off_t off)
{
	if (g_cut_at_read && --g_cut_at_read == 0) {
		char link[64], path[PATH_MAX];
		snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
		ssize_t l = readlink(link, path, sizeof path - 1);
		ck_assert_int_gt(l, 0);
		path[l] = '\0';
		ck_assert_int_eq(chmod(path, 0644), 0);
		ck_assert_int_eq(truncate(path, off), 0);
	}
	return __real_pread(fd, buf, n, off);
}

/* A pack that shrinks while a merge reads it is an error naming it (a
 * mapping of it would have faulted and killed the process), and nothing
 * is removed. */
START_TEST(maintain_refuses_a_pack_cut_short)
{
	char *d = tmp_dir();
	char *ra = tmp_path(d, "a");
	sync_git *a = three_packs(ra);
	g_cut_at_read = 3; /* a pack's header, its trailer, then its first entry */
	ck_assert_int_eq(sync_git_maintain(a, 1, NULL), MCRDT_ECORRUPT);
	ck_assert_int_eq(g_cut_at_read, 0);
	assert_msg_has("shrank");
	ck_assert_uint_eq(count_packs(ra), 3);
	sync_git_close(a);
	free(ra);
	rm_tree(d);
}
END_TEST

/* Two long texts a line apart (a delta would store the second), in text
 * (caller frees) and in the files d/t0 and d/t1; their ids in id. */
static void two_texts(const char *d, char *text[2], size_t len[2], sync_oid id[2])
{
	for (int k = 0; k < 2; k++) {
		text[k] = malloc(40000);
		len[k] = 0;
		for (int line = 0; line < 800; line++)
			len[k] += (size_t)snprintf(text[k] + len[k], 40000 - len[k], "line %d of a long mail%s\n", line,
						    k == 1 && line == 400 ? " (edited)" : "");
		ck_assert_int_eq(sync_git_hash(text[k], len[k], &id[k]), 0);
		char *f = tmp_path(d, k ? "t1" : "t0");
		FILE *fp = fopen(f, "w");
		ck_assert_uint_eq(fwrite(text[k], 1, len[k], fp), len[k]);
		fclose(fp);
		free(f);
	}
}

/* A's repository ra in d: ops 1..5 in one pack, and a pack git wrote
 * with the two texts of two_texts, the second as a delta. */
static sync_git *delta_repo(const char *d, const char *ra, char *text[2], size_t len[2], sync_oid id[2])
{
	sync_git *a = open_repo(ra, RA);
	publish(a, RA, 1, 5);
	two_texts(d, text, len, id);
	char cmd[2048];
	snprintf(cmd, sizeof cmd,
		 "cd '%s' && git hash-object -w ../t0 ../t1 | git pack-objects -q objects/pack/pack >/dev/null && "
		 "git prune-packed && git verify-pack -v objects/pack/*.idx | grep -q 'chain length = 1'",
		 ra);
	ck_assert_msg(system(cmd) == 0, "git did not write a pack with a delta: %s", cmd);
	return a;
}

/* g reads back delta_pack's two texts byte for byte; frees them. */
static void assert_texts(sync_git *g, char *text[2], const size_t len[2], const sync_oid id[2])
{
	for (int k = 0; k < 2; k++) {
		struct sync_git_blob blob;
		ck_assert_msg(sync_git_blob_read(g, &id[k], &blob) == 0, "%s", mcrdt_error_last());
		blob_is(&blob, text[k], len[k]);
		free(text[k]);
	}
}

/* Packs git wrote with deltas (as a fetch through libgit2 from a git
 * server brings) merge too: the deltas come out as whole objects. */
START_TEST(maintain_stores_deltas_whole)
{
	if (!have_git()) {
		fprintf(stderr, "maintain_stores_deltas_whole: skipped (no git to write deltas)\n");
		return;
	}
	char *d = tmp_dir();
	char *ra = tmp_path(d, "a");
	char *text[2];
	size_t len[2];
	sync_oid id[2];
	sync_git *a = delta_repo(d, ra, text, len, id);
	char cmd[2048];
	ck_assert_uint_eq(count_packs(ra), 2);
	/* Read ahead, the delta comes through libgit2. */
	sync_git_prefetch *pf;
	ck_assert_int_eq(sync_git_prefetch_start(a, id, 2, 1, &pf), 0);
	for (size_t k = 0; k < 2; k++) {
		struct sync_git_blob blob;
		ck_assert_msg(sync_git_prefetch_take(pf, k, &blob) == 0, "%s", mcrdt_error_last());
		blob_is(&blob, text[k], len[k]);
	}
	sync_git_prefetch_stop(pf);
	ck_assert_int_eq(sync_git_maintain(a, 1, NULL), 0);
	ck_assert_uint_eq(count_packs(ra), 1);
	snprintf(cmd, sizeof cmd, "cd '%s' && git verify-pack -v objects/pack/*.idx >'%s/vp'", ra, d);
	ck_assert_msg(system(cmd) == 0, "%s", cmd);
	snprintf(cmd, sizeof cmd, "grep -q 'chain length' '%s/vp'", d);
	ck_assert_msg(system(cmd) != 0, "a delta is left in the merged pack");
	snprintf(cmd, sizeof cmd, "git -C '%s' fsck --strict --no-dangling", ra);
	ck_assert_msg(system(cmd) == 0, "%s", cmd); /* (the two blobs no ref reaches are kept) */
	assert_texts(a, text, len, id);
	sync_git_close(a);
	free(ra);
	rm_tree(d);
}
END_TEST

/* A local fetch of a pack that holds a delta (git wrote it, on a hub or a
 * peer): libgit2's indexer takes it in, and every body reads back. */
START_TEST(fetch_takes_a_delta_pack)
{
	if (!have_git()) {
		fprintf(stderr, "fetch_takes_a_delta_pack: skipped (no git to write deltas)\n");
		return;
	}
	char *d = tmp_dir();
	char *ra = tmp_path(d, "a"), *rb = tmp_path(d, "b");
	char *text[2];
	size_t len[2];
	sync_oid id[2];
	sync_git *a = delta_repo(d, ra, text, len, id);
	sync_git_close(a);
	sync_git *b = open_repo(rb, RB);
	fetch(b, ra);
	assert_bodies(b, RA, 5);
	assert_texts(b, text, len, id);
	sync_git_close(b);
	char cmd[2048];
	snprintf(cmd, sizeof cmd,
		 "cd '%s' && git verify-pack -v objects/pack/*.idx | grep -q 'chain length = 1' && "
		 "git fsck --strict --no-dangling",
		 rb);
	ck_assert_msg(system(cmd) == 0, "the delta did not come as it was, or fsck: %s", cmd);
	free(ra);
	free(rb);
	rm_tree(d);
}
END_TEST

/* A peer's pack in which we lack only the two texts, git having repacked
 * the peer with the second as a delta: the delta sends the pack whole
 * through libgit2's indexer instead, and everything reads back. */
START_TEST(fetch_of_a_few_objects_meets_a_delta)
{
	if (!have_git()) {
		fprintf(stderr, "fetch_of_a_few_objects_meets_a_delta: skipped (no git to write deltas)\n");
		return;
	}
	char *d = tmp_dir();
	char *ra = tmp_path(d, "a"), *rb = tmp_path(d, "b");
	sync_git *a = open_repo(ra, RA);
	publish(a, RA, 1, 60);
	sync_git_close(a);
	sync_git *b = open_repo(rb, RB);
	fetch(b, ra);
	char *text[2];
	size_t len[2];
	sync_oid id[2];
	two_texts(d, text, len, id);
	char cmd[2048];
	snprintf(cmd, sizeof cmd,
		 "cd '%s' && git hash-object -w ../t0 ../t1 >/dev/null && "
		 "git cat-file --batch-all-objects --batch-check='%%(objectname)' | "
		 "git pack-objects -q objects/pack/pack >/dev/null && git prune-packed && "
		 "git verify-pack -v objects/pack/*.idx | grep -q 'chain length = 1'",
		 ra);
	ck_assert_msg(system(cmd) == 0, "git did not write a pack with a delta: %s", cmd);
	ck_assert_uint_eq(count_packs(ra), 2);
	fetch(b, ra);
	ck_assert_uint_eq(count_packs(rb), 2); /* its own, and the indexer's: nothing taken out before */
	assert_bodies(b, RA, 60);
	assert_texts(b, text, len, id);
	sync_git_close(b);
	snprintf(cmd, sizeof cmd, "git -C '%s' fsck --strict --no-dangling", rb);
	ck_assert_msg(system(cmd) == 0, "%s", cmd);
	free(ra);
	free(rb);
	rm_tree(d);
}
END_TEST

/* The pack reader gives id's object as want (len bytes). */
static void preader_is(struct pack_reader *r, struct preader_z *z, const sync_oid *id, const char *want, size_t len)
{
	uint8_t *got;
	size_t got_len;
	ck_assert_int_eq(preader_blob(r, z, id->id, &got, &got_len), 0);
	ck_assert_uint_eq(got_len, len);
	ck_assert_mem_eq(got, want, len);
	free(got);
}

/* Our own pack reader gives the blobs we wrote, byte for byte, and leaves
 * to libgit2 (1) what it does not hold or cannot check. */
START_TEST(pack_reader_reads_whole_blobs)
{
	char *d = tmp_dir();
	char *ra = tmp_path(d, "a"), *objs = tmp_path(ra, "objects");
	sync_git *a = open_repo(ra, RA);
	publish(a, RA, 1, 30);
	publish(a, RA, 31, 30);
	struct pack_reader *r;
	struct preader_z z = { 0 };
	ck_assert_int_eq(preader_open(objs, &r), 0);
	sync_oid id;
	size_t read = 0;
	for (uint64_t c = 1; c <= 60; c++) {
		if (!op_has_body(c))
			continue;
		char *want;
		size_t len = op_body(RA, c, &want, &id);
		preader_is(r, &z, &id, want, len);
		free(want);
		read++;
	}
	ck_assert_uint_gt(read, 20);
	uint8_t *got;
	size_t got_len;
	sync_oid none = { { 7, 7, 7 } };
	ck_assert_int_eq(preader_blob(r, &z, none.id, &got, &got_len), 1);
	preader_close(r);
	/* A damaged body: not ours to judge, and libgit2 refuses it. */
	char *want;
	char *big = pack_of(ra);
	struct stat sb;
	ck_assert_int_eq(stat(big, &sb), 0);
	damage(big, sb.st_size / 2);
	ck_assert_int_eq(preader_open(objs, &r), 0);
	size_t refused = 0;
	for (uint64_t c = 1; c <= 60; c++) {
		if (!op_has_body(c))
			continue;
		op_body(RA, c, &want, &id);
		free(want);
		int rc = preader_blob(r, &z, id.id, &got, &got_len);
		ck_assert_int_ge(rc, 0);
		if (rc == 0) {
			free(got);
			continue;
		}
		refused++;
		struct sync_git_blob blob;
		ck_assert_int_lt(sync_git_blob_read(a, &id, &blob), 0);
	}
	ck_assert_uint_gt(refused, 0);
	preader_close(r);
	preader_z_end(&z);
	sync_git_close(a);
	free(big);
	free(objs);
	free(ra);
	rm_tree(d);
}
END_TEST

/* Reading ahead gives each body in order, under a byte cap smaller than
 * one body; a missing or non-blob object fails only its own take; skipped
 * bodies and those never taken are freed (ASan would see them leak). */
START_TEST(prefetch_reads_ahead)
{
	char *d = tmp_dir();
	char *ra = tmp_path(d, "a");
	sync_git *a = open_repo(ra, RA);
	publish(a, RA, 1, 60);
	sync_oid ids[64];
	char *want[64] = { 0 };
	size_t len[64] = { 0 }, n = 0;
	for (uint64_t c = 1; c <= 60; c++) {
		if (!op_has_body(c))
			continue;
		len[n] = op_body(RA, c, &want[n], &ids[n]);
		n++;
	}
	ck_assert_uint_ge(n, 20);
	size_t missing = 3, commit = 7;
	memset(&ids[missing], 0x5a, sizeof ids[missing]);
	git_repository *gr = git_open(ra);
	git_oid head;
	ck_assert_int_eq(git_reference_name_to_id(&head, gr, "refs/mcrdt/a1a1a1a1a1a1a1a1"), 0);
	git_repository_free(gr);
	memcpy(ids[commit].id, head.id, 20);
	for (int cap = 0; cap < 2; cap++) {
		sync_git_prefetch *p;
		ck_assert_int_eq(sync_git_prefetch_start(a, ids, n, cap ? 64 << 20 : 1, &p), 0);
		for (size_t i = 0; i < n - 4; i++) {
			if (i == 10)
				i = 12; /* 10 and 11 skipped */
			struct sync_git_blob b;
			int rc = sync_git_prefetch_take(p, i, &b);
			if (i == missing) {
				ck_assert_int_eq(rc, MCRDT_ENOTFOUND);
				continue;
			}
			if (i == commit) {
				ck_assert_int_eq(rc, MCRDT_ECORRUPT);
				assert_msg_has("not a blob");
				continue;
			}
			ck_assert_msg(rc == 0, "body %zu: %s", i, mcrdt_error_last());
			blob_is(&b, want[i], len[i]);
		}
		struct sync_git_blob b;
		ck_assert_int_eq(sync_git_prefetch_take(p, 5, &b), MCRDT_EINVAL);
		sync_git_prefetch_stop(p); /* the last 4 never taken */
	}
	for (size_t i = 0; i < n; i++)
		free(want[i]);
	sync_git_close(a);
	free(ra);
	rm_tree(d);
}
END_TEST

/* The first deflate block of zlib stream z: 0 stored, 1 fixed, 2 dynamic. */
static unsigned first_block_type(const uint8_t *z)
{
	return (z[2] >> 1) & 3;
}

/* deflater_run on data: stored as it is (blocks of at most 65,535 bytes)
 * or deflated to under below bytes; inflated, it gives data back. */
static void deflated_as(struct deflater *df, const char *data, size_t len, bool stored, size_t below)
{
	ck_assert_int_eq(deflater_run(df, data, len), 0);
	if (stored) {
		ck_assert_uint_eq(first_block_type(df->buf), 0);
		ck_assert_uint_eq(df->out, 2 + 5 * (len ? (len + 65534) / 65535 : 1) + len + 4);
	} else {
		ck_assert_uint_ne(first_block_type(df->buf), 0);
		ck_assert_uint_lt(df->out, below);
	}
	uLongf back_len = len + 1;
	Bytef *back = malloc(back_len);
	ck_assert_int_eq(uncompress(back, &back_len, df->buf, (uLong)df->out), Z_OK);
	ck_assert_uint_eq(back_len, len);
	ck_assert_mem_eq(back, data, len);
	free(back);
}

/* An object deflate shrinks by less than a third (a base64 attachment) is
 * stored as it is, in blocks of at most 65,535 bytes, and text is still
 * deflated (past 64 KiB, as the first 64 KiB go); either way libgit2, the pack reader, a fetch's check and git
 * fsck read every byte back. */
START_TEST(barely_compressible_bodies_are_stored)
{
	static const size_t sizes[] = { 0, 1, 77, 65535, 65536, 3 * 65535 + 7 };
	struct bodies b64 = { 0, 0, 0, true };
	struct deflater df = { 0 };
	for (size_t k = 0; k < sizeof sizes / sizeof *sizes; k++) {
		b64.min = b64.max = sizes[k];
		char *data;
		size_t len = body_of(&b64, RA, k, &data);
		deflated_as(&df, data, len, true, 0);
		free(data);
	}
	struct bodies text = { 100000, 100000, 0, false };
	char *data;
	size_t len = body_of(&text, RA, 1, &data);
	deflated_as(&df, data, len, false, len / 3);
	/* Past 64 KiB, the first 64 KiB decide: text then an attachment is
	 * deflated whole; an attachment then text is stored whole. */
	char *att;
	b64.min = b64.max = 70000;
	size_t att_len = body_of(&b64, RA, 9, &att);
	char *mixed = malloc(len + att_len);
	for (int order = 0; order < 2; order++) {
		memcpy(mixed, order ? att : data, order ? att_len : len);
		memcpy(mixed + (order ? att_len : len), order ? data : att, order ? len : att_len);
		deflated_as(&df, mixed, len + att_len, order != 0, (len + att_len) * 2 / 3);
	}
	free(mixed);
	free(att);
	free(data);
	deflater_free(&df);

	char *d = tmp_dir();
	char *ra = tmp_path(d, "a"), *rb = tmp_path(d, "b"), *objs = tmp_path(rb, "objects");
	sync_git *a = open_repo(ra, RA), *b = open_repo(rb, RB);
	crdt_op *ops = make_ops(RA, 1, 30);
	struct bodies bs = { 10, 200000, 0, true };
	ck_assert_msg(sync_git_publish(a, ops, 30, 30, body_fn, &bs, NULL) == 0, "%s", mcrdt_error_last());
	free_ops(ops, 30);
	fetch(b, ra);
	struct pack_reader *r;
	struct preader_z z = { 0 };
	ck_assert_int_eq(preader_open(objs, &r), 0);
	size_t read = 0;
	for (uint64_t c = 1; c <= 30; c++) {
		if (!op_has_body(c))
			continue;
		char *want;
		size_t want_len = body_of(&bs, RA, c, &want);
		sync_oid id;
		ck_assert_int_eq(sync_git_hash(want, want_len, &id), 0);
		struct sync_git_blob blob;
		ck_assert_msg(sync_git_blob_read(b, &id, &blob) == 0, "body %" PRIu64 ": %s", c, mcrdt_error_last());
		blob_is(&blob, want, want_len);
		preader_is(r, &z, &id, want, want_len);
		free(want);
		read++;
	}
	ck_assert_uint_gt(read, 15);
	preader_close(r);
	preader_z_end(&z);
	assert_fsck_clean(ra);
	assert_fsck_clean(rb);
	sync_git_close(a);
	sync_git_close(b);
	free(objs);
	free(rb);
	free(ra);
	rm_tree(d);
}
END_TEST

/* text_len bytes of text, then lines of line_len base64 characters (and
 * CRLF) up to len bytes: the same line again and again, which deflate
 * shrinks to almost nothing. */
static char *repetitive_b64(size_t len, size_t text_len, size_t line_len)
{
	char *b = malloc(len);
	for (size_t i = 0; i < len; i++) {
		size_t k = i < text_len ? i : (i - text_len) % (line_len + 2);
		b[i] = i < text_len ? "Subject: hello\r\n"[k % 16] : k < line_len ? "QUFB"[k % 4] : k == line_len ? '\r' : '\n';
	}
	return b;
}

/* An object whose judged part is seven eighths base64 lines is stored
 * without a deflate to find out (here, deflate would have shrunk it to a
 * few percent: the price of the rule); more text, or lines too short for
 * MIME's base64, and deflate decides. */
START_TEST(base64_lines_are_stored_untried)
{
	struct deflater df = { 0 };
	static const struct {
		size_t len, text, line;
		bool stored;
	} cases[] = {
		{ 16000, 1600, 76, true },  /* 90% base64 lines */
		{ 16000, 2400, 76, false }, /* 85% */
		{ 16000, 0, 60, true },     /* the shortest line that counts */
		{ 16000, 0, 59, false },    /* one shorter */
		{ 200000, 8000, 76, true }, /* past 64 KiB, the first 64 KiB decide: 88% */
		{ 200000, 9000, 76, false }, /* 86% */
	};
	for (size_t k = 0; k < sizeof cases / sizeof *cases; k++) {
		char *b = repetitive_b64(cases[k].len, cases[k].text, cases[k].line);
		deflated_as(&df, b, cases[k].len, cases[k].stored, cases[k].len / 10);
		free(b);
	}
	deflater_free(&df);
}
END_TEST

/* 10,000 bodies in one publish: one pack, no loose object. */
START_TEST(big_publish_is_one_pack)
{
	char *d = tmp_dir();
	sync_git *a = open_repo(d, RA);
	size_t n = 14700;
	crdt_op *ops = make_ops(RA, 1, n);
	struct bodies bs = { 200, 4000, 0, false };
	struct sync_git_stats st = { 0 };
	struct timespec t0, t1;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	ck_assert_msg(sync_git_publish(a, ops, n, n, body_fn, &bs, &st) == 0, "%s", mcrdt_error_last());
	clock_gettime(CLOCK_MONOTONIC, &t1);
	ck_assert_uint_ge(st.bodies_published, 10000);
	ck_assert_uint_eq(count_packs(d), 1);
	ck_assert_uint_eq(count_loose(d), 0);
	printf("big_publish_is_one_pack: %" PRIu64 " bodies, %.1f MB in %.2f s\n", st.bodies_published,
	       (double)st.body_bytes_published / 1e6,
	       (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9);
	assert_fsck_clean(d);
	free_ops(ops, n);
	sync_git_close(a);
	rm_tree(d);
}
END_TEST

/* The pack trailer's SHA-1: FIPS 180 vectors, whole and in odd pieces. */
START_TEST(sha1_vectors)
{
	static const struct {
		const char *in;
		size_t reps;
		const char *hex;
	} v[] = {
		{ "", 1, "da39a3ee5e6b4b0d3255bfef95601890afd80709" },
		{ "abc", 1, "a9993e364706816aba3e25717850c26c9cd0d89d" },
		{ "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq", 1,
		  "84983e441c3bd26ebaae4aa1f95129e5e54670f1" },
		{ "a", 1000000, "34aa973cd4c4daa4f61eeb2bdbad27316534016f" },
		{ "0123456701234567012345670123456701234567012345670123456701234567", 10,
		  "dea356a2cddd90c7a7ecedc5ebb563934f460452" },
	};
	/* Each vector with the CPU's SHA extensions (when it has them) and without. */
	for (size_t j = 0; j < 2 * sizeof v / sizeof v[0]; j++) {
		size_t i = j / 2;
		bool plain = j % 2;
		sha1_accelerate(!plain);
		size_t l = strlen(v[i].in), total = l * v[i].reps;
		char *all = malloc(total + 1);
		for (size_t r = 0; r < v[i].reps; r++)
			memcpy(all + r * l, v[i].in, l);
		for (size_t piece = 1; piece <= 131; piece += 65) {
			struct sha1_ctx c;
			uint8_t out[20];
			char hex[41];
			sha1_init(&c);
			for (size_t at = 0; at < total; at += piece)
				sha1_update(&c, all + at, total - at < piece ? total - at : piece);
			sha1_final(&c, out);
			for (int k = 0; k < 20; k++)
				snprintf(hex + 2 * k, 3, "%02x", out[k]);
			ck_assert_msg(strcmp(hex, v[i].hex) == 0, "vector %zu%s: %s, not %s", i, plain ? " (plain)" : "", hex,
				      v[i].hex);
		}
		free(all);
	}
	sha1_accelerate(true);
}
END_TEST

static int cancel_progress(void *ctx, const struct sync_git_stats *st)
{
	unsigned *calls = ctx;
	(*calls)++;
	ck_assert_ptr_nonnull(st);
	return 1;
}

/* A progress callback's non-zero return cancels; bad remotes are EIO. */
START_TEST(cancel_and_bad_remotes)
{
	char *d = tmp_dir();
	char *ra = tmp_path(d, "a"), *rb = tmp_path(d, "b"), *junk = tmp_path(d, "junk");
	sync_git *a = open_repo(ra, RA), *b = open_repo(rb, RB);
	publish(a, RA, 1, 10);
	for (int way = 0; way < 2; way++) {
		sync_git_test_transport_only(b, way == 1);
		unsigned calls = 0;
		struct sync_git_remote rem = { ra, cancel_progress, &calls };
		int rc = sync_git_fetch(b, &rem, NULL);
		if (way == 1 && rc == 0) {
			/* libgit2 reports at most every half second: a fetch this
			 * small may end before any report. */
			ck_assert_uint_eq(calls, 0);
		} else {
			ck_assert_msg(rc == MCRDT_EIO, "way %d: not cancelled (%u calls)", way, calls);
			assert_msg_has("cancelled");
			ck_assert_uint_gt(calls, 0);
		}
		/* Not a repository; not there at all. */
		ck_assert_int_eq(mkdir(junk, 0700) == 0 || errno == EEXIST, 1);
		rem = (struct sync_git_remote){ junk, NULL, NULL };
		ck_assert_int_eq(sync_git_fetch(b, &rem, NULL), MCRDT_EIO);
		assert_msg_has(junk);
		char gone[700];
		snprintf(gone, sizeof gone, "%s/nowhere", d);
		rem = (struct sync_git_remote){ gone, NULL, NULL };
		ck_assert_int_eq(sync_git_fetch(b, &rem, NULL), MCRDT_EIO);
		assert_msg_has(gone);
		ck_assert_int_eq(sync_git_push(a, &rem, NULL), MCRDT_EIO);
		assert_msg_has(gone);
	}
	sync_git_close(a);
	sync_git_close(b);
	free(ra);
	free(rb);
	free(junk);
	rm_tree(d);
}
END_TEST

int main(void)
{
	git_libgit2_init(); /* the tests build evil peers with libgit2 */
	Suite *s = suite_create("git");
	TCase *tc = tcase_create("git");
	tcase_set_timeout(tc, 300);
	tcase_add_test(tc, sha1_vectors);
	tcase_add_test(tc, open_and_publish_nothing);
	tcase_add_test(tc, cancel_and_bad_remotes);
	tcase_add_test(tc, body_error_stops_publish);
	tcase_add_test(tc, publish_fetch_read);
	tcase_add_test(tc, hub_roundtrip);
	tcase_add_test(tc, ref_to_a_blob);
	tcase_add_test(tc, bad_ref_name);
	tcase_add_test(tc, garbage_ops);
	tcase_add_test(tc, ops_of_another_replica);
	tcase_add_test(tc, diverged_chain);
	tcase_add_test(tc, remote_has_newer_own_ref);
	tcase_add_test(tc, push_clears_a_stale_lock_in_a_hub);
	tcase_add_test(tc, clear_locks_removes_what_a_killed_sync_left);
	tcase_add_test(tc, corrupt_hub);
	tcase_add_test(tc, stale_staged_refs_go);
	tcase_add_test(tc, hub_files_not_regular);
	tcase_add_test(tc, forged_pack_on_a_hub);
	tcase_add_test(tc, fetch_takes_only_what_it_lacks);
	tcase_add_test(tc, pack_seen_tells_clashing_ids_apart);
	tcase_add_test(tc, maintain_consolidates);
	tcase_add_test(tc, maintain_merges_the_small_packs);
	tcase_add_test(tc, push_consolidates_the_hub);
	tcase_add_test(tc, fetch_while_the_source_merges);
	tcase_add_test(tc, maintain_refuses_a_damaged_pack);
	tcase_add_test(tc, maintain_refuses_a_pack_cut_short);
	tcase_add_test(tc, huge_index_on_a_hub);
	tcase_add_test(tc, maintain_stores_deltas_whole);
	tcase_add_test(tc, fetch_takes_a_delta_pack);
	tcase_add_test(tc, fetch_of_a_few_objects_meets_a_delta);
	tcase_add_test(tc, pack_reader_reads_whole_blobs);
	tcase_add_test(tc, prefetch_reads_ahead);
	tcase_add_test(tc, barely_compressible_bodies_are_stored);
	tcase_add_test(tc, base64_lines_are_stored_untried);
	tcase_add_test(tc, big_publish_is_one_pack);
	suite_add_tcase(s, tc);
	if (tmp_base_make("git"))
		return 1;
	int rc = run_suite(s, CK_FORK_GETENV);
	tmp_base_remove();
	return rc;
}
