/*
 * tests/store/test_sync.c — replication end to end: mcrdt_sync (two-way
 * between store directories, and one-way through a hub made by
 * mcrdt_hub_init), mcrdt_merge of plain Maildirs, untrusted peer input and
 * a sync killed at random moments.
 *
 * Every check compares whole replicas: for every mailbox (names,
 * GUIDs, UIDVALIDITY, attributes, subscriptions) the rows (UID, GUID,
 * flags, size, internal date, and the body read through
 * mcrdt_message_open) — never the MODSEQ, which is per replica — and that
 * the Maildir holds exactly the view's files (each message file exists,
 * one file per message in its folder).
 *
 * Stores live in directories under one mkdtemp() directory in /tmp,
 * opened with no_fsync, removed at the end. The randomized test uses a
 * fixed seed (MCRDT_TEST_SEED overrides it), printed with every failure.
 *
 * The "crash_and_join" case: a sync killed at random points (and while it
 * writes peers' files) loses nothing and leaves nothing that blocks the
 * next one; a replica joining later leaves INBOX (its UIDVALIDITY and UIDs)
 * as the replicas in use had it. MCRDT_TEST_KEEP=1 keeps the stores for a
 * look afterwards.
 */
#define _GNU_SOURCE
#include "tests/check_run.h"
#include "tests/tmpdir.h"
#include <check.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <inttypes.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <mcrdt/mcrdt.h>

#include "crdt/op.h"
#include "maildir/maildir.h"
#include "sync/codec.h"

#ifndef MCRDT_BIN
#error "MCRDT_BIN (the mcrdt command) must be defined by the build"
#endif

/* ---- helpers ---- */

/* What the failure messages add (the random test's seed). */
static char note[128] = "";
#define TEST_NOTE note
#include "tests/store/store_util.h"

static mcrdt_store *open_named(const char *dir, const char *name)
{
	struct mcrdt_open_opts o = MCRDT_OPEN_OPTS_INIT;
	o.flags = MCRDT_OPEN_CREATE;
	o.name = name;
	o.no_fsync = true;
	mcrdt_store *s = NULL;
	mcrdt_error_clear();
	int rc = mcrdt_store_open(&s, dir, &o);
	ck_assert_msg(rc == 0, "open %s: %d (%s)", dir, rc, mcrdt_error_last());
	return s;
}

/* (one internal date on every replica: their views compare equal) */
#define DATE 1700000000

static uint32_t add_plain(mcrdt_store *s, const char *mbox, const char *body)
{
	return add_msg(s, mbox, body, NULL, 0, DATE);
}

/* A growing string. */
struct sb {
	char *p;
	size_t n, cap;
};

static void sb_printf(struct sb *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void sb_printf(struct sb *b, const char *fmt, ...)
{
	for (;;) {
		va_list ap;
		va_start(ap, fmt);
		int k = vsnprintf(b->p ? b->p + b->n : NULL, b->p ? b->cap - b->n : 0, fmt, ap);
		va_end(ap);
		ck_assert_int_ge(k, 0);
		if (b->p && b->n + (size_t)k < b->cap) {
			b->n += (size_t)k;
			return;
		}
		size_t nc = b->cap ? b->cap : 1024;
		while (nc <= b->n + (size_t)k + 1)
			nc *= 2;
		b->p = realloc(b->p, nc);
		ck_assert_ptr_nonnull(b->p);
		b->cap = nc;
		b->p[b->n] = '\0';
	}
}

/* The Maildir++ folder of an ASCII mailbox name ("" for INBOX), or NULL
 * for a name this helper does not map (then the folder is not checked). */
static char *folder_of(const char *name)
{
	if (strcasecmp(name, "INBOX") == 0)
		return strdup("");
	for (const char *p = name; *p; p++)
		if (!((*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') ||
		      *p == '/' || *p == '-' || *p == '_'))
			return NULL;
	char *f = malloc(strlen(name) + 2);
	f[0] = '.';
	strcpy(f + 1, name);
	for (char *p = f; *p; p++)
		if (*p == '/')
			*p = '.';
	return f;
}

/* The base name of a Maildir file name (what precedes ":2,"). */
static void base_name(const char *file, char *out, size_t size)
{
	const char *slash = strrchr(file, '/');
	if (slash)
		file = slash + 1;
	size_t n = strcspn(file, ":");
	if (n >= size)
		n = size - 1;
	memcpy(out, file, n);
	out[n] = '\0';
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The base names of the message files in folder's cur/ and new/ (sorted). */
static char **folder_files(const char *root, const char *folder, size_t *n)
{
	char **v = NULL;
	size_t cap = 0;
	*n = 0;
	static const char *const subs[] = { "cur", "new" };
	for (int i = 0; i < 2; i++) {
		char p[4096];
		snprintf(p, sizeof p, "%s/%s%s%s", root, folder, *folder ? "/" : "", subs[i]);
		DIR *d = opendir(p);
		ck_assert_msg(d != NULL, "opendir %s: %s%s", p, strerror(errno), note);
		struct dirent *e;
		while ((e = readdir(d)) != NULL) {
			if (e->d_name[0] == '.')
				continue;
			if (*n == cap) {
				cap = cap ? 2 * cap : 64;
				v = realloc(v, cap * sizeof *v);
			}
			char b[512];
			base_name(e->d_name, b, sizeof b);
			v[(*n)++] = strdup(b);
		}
		closedir(d);
	}
	if (*n)
		qsort(v, *n, sizeof *v, cmp_str);
	return v;
}

static void free_strs(char **v, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(v[i]);
	free(v);
}

static void escape_into(struct sb *b, const char *s, size_t len)
{
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c == '\\')
			sb_printf(b, "\\\\");
		else if (c < 0x20 || c >= 0x7f)
			sb_printf(b, "\\x%02x", c);
		else
			sb_printf(b, "%c", c);
	}
}

/*
 * The replica as text: every listed mailbox (name, GUID, UIDVALIDITY,
 * attributes) and, in each existing one, every message (UID, GUID, flags,
 * size, date, body). Checks on the way that the view and the Maildir
 * agree. The caller frees the result.
 */
static char *render(mcrdt_store *s, const char *root)
{
	struct sb b = { NULL, 0, 0 };
	sb_printf(&b, "%s", "");
	struct mcrdt_mailbox_info *v = NULL;
	size_t nv = 0;
	OK(mcrdt_mailbox_list(s, &v, &nv));
	for (size_t i = 0; i < nv; i++) {
		sb_printf(&b, "mailbox \"%s\" guid=%s uidvalidity=%" PRIu32 " attrs=%#x\n", v[i].name, v[i].guid,
			  v[i].uidvalidity, v[i].attrs);
		if (v[i].attrs & MCRDT_MBOX_NONEXISTENT)
			continue;
		mcrdt_mailbox *mb = sel(s, v[i].name);
		size_t n;
		struct mcrdt_message *m = fetch(mb, "1:*", MCRDT_SEQ, &n);
		char **bases = calloc(n + 1, sizeof *bases);
		char *folder = folder_of(v[i].name);
		for (size_t k = 0; k < n; k++) {
			sb_printf(&b, "  uid=%" PRIu32 " guid=%s flags=", m[k].uid, m[k].guid);
			for (size_t f = 0; f < m[k].nflags; f++)
				sb_printf(&b, "%s%s", f ? "," : "", m[k].flags[f]);
			sb_printf(&b, " size=%" PRIu64 " date=%" PRId64 " body=", m[k].size, m[k].internaldate);
			size_t len;
			char *body = body_of(mb, m[k].uid, &len);
			ck_assert_msg(len == m[k].size, "%s: %s UID %u: body of %zu bytes, size %" PRIu64 "%s", root,
				      v[i].name, m[k].uid, len, m[k].size, note);
			escape_into(&b, body, len);
			sb_printf(&b, "\n");
			free(body);
			/* its file exists, in the mailbox's folder */
			char *path = NULL;
			OK(mcrdt_message_path(mb, m[k].uid, &path));
			struct stat st;
			ck_assert_msg(stat(path, &st) == 0 && S_ISREG(st.st_mode), "%s: %s UID %u: file %s: %s%s",
				      root, v[i].name, m[k].uid, path, strerror(errno), note);
			ck_assert_msg((uint64_t)st.st_size == m[k].size, "%s: file %s is %jd bytes, view says %" PRIu64,
				      root, path, (intmax_t)st.st_size, m[k].size);
			if (folder) {
				char want[4200];
				snprintf(want, sizeof want, "%s/%s%s", root, folder, *folder ? "/" : "");
				ck_assert_msg(strncmp(path, want, strlen(want)) == 0 &&
						      (strncmp(path + strlen(want), "cur/", 4) == 0 ||
						       strncmp(path + strlen(want), "new/", 4) == 0),
					      "%s: message file %s is not in %s's folder %s%s", root, path, v[i].name, want,
					      note);
			}
			char bn[512];
			base_name(path, bn, sizeof bn);
			bases[k] = strdup(bn);
			free(path);
		}
		/* the folder holds exactly these files, each once */
		if (folder) {
			size_t nf;
			char **files = folder_files(root, folder, &nf);
			qsort(bases, n, sizeof *bases, cmp_str);
			for (size_t k = 1; k < nf; k++)
				ck_assert_msg(strcmp(files[k - 1], files[k]) != 0, "%s: %s: base name %s twice in the folder%s",
					      root, v[i].name, files[k], note);
			ck_assert_msg(nf == n, "%s: mailbox %s: %zu messages in the view, %zu files in its folder%s", root,
				      v[i].name, n, nf, note);
			for (size_t k = 0; k < n; k++)
				ck_assert_msg(strcmp(files[k], bases[k]) == 0, "%s: %s: view file %s, folder file %s%s",
					      root, v[i].name, bases[k], files[k], note);
			free_strs(files, nf);
		}
		free_strs(bases, n);
		free(folder);
		mcrdt_messages_free(m, n);
		mcrdt_mailbox_close(mb);
	}
	mcrdt_mailbox_list_free(v, nv);
	return b.p;
}

/* Fails, showing the first line that differs, unless x and y are equal. */
static void assert_same_text(const char *what, const char *x, const char *y)
{
	if (strcmp(x, y) == 0)
		return;
	const char *px = x, *py = y;
	int line = 1;
	for (;;) {
		const char *ex = strchr(px, '\n'), *ey = strchr(py, '\n');
		size_t lx = ex ? (size_t)(ex - px) : strlen(px), ly = ey ? (size_t)(ey - py) : strlen(py);
		if (lx != ly || memcmp(px, py, lx) != 0 || !ex || !ey) {
			ck_abort_msg("%s: replicas differ at line %d:\n  first:  %.*s\n  second: %.*s%s", what, line,
				     (int)(lx > 300 ? 300 : lx), px, (int)(ly > 300 ? 300 : ly), py, note);
		}
		px = ex + 1;
		py = ey + 1;
		line++;
	}
}

static bool same(mcrdt_store *a, const char *adir, mcrdt_store *b, const char *bdir)
{
	char *x = render(a, adir), *y = render(b, bdir);
	bool eq = strcmp(x, y) == 0;
	free(x);
	free(y);
	return eq;
}

static void assert_same(const char *what, mcrdt_store *a, const char *adir, mcrdt_store *b, const char *bdir)
{
	char *x = render(a, adir), *y = render(b, bdir);
	assert_same_text(what, x, y);
	free(x);
	free(y);
}

/* A two-way sync of a with the store in bdir (b an open handle on it),
 * which must leave them identical with no further sync; the exchanges it
 * took (each way once per round). */
static unsigned sync_direct(mcrdt_store *a, const char *adir, mcrdt_store *b, const char *bdir)
{
	struct mcrdt_sync_stats st;
	OK(mcrdt_sync(a, bdir, NULL, &st));
	assert_same("right after a two-way sync", a, adir, b, bdir);
	return st.rounds;
}

/* One-way syncs of every replica with the hub, pass after pass, until all
 * are identical; fails after max passes. Returns the passes needed. */
static int sync_hub_all(mcrdt_store **s, char **dirs, size_t n, const char *hub, int max)
{
	for (int pass = 1; pass <= max; pass++) {
		for (size_t i = 0; i < n; i++)
			OK(mcrdt_sync(s[i], hub, NULL, NULL));
		bool eq = true;
		for (size_t i = 1; i < n && eq; i++)
			eq = same(s[0], dirs[0], s[i], dirs[i]);
		if (eq)
			return pass;
	}
	for (size_t i = 1; i < n; i++)
		assert_same("after syncing through the hub", s[0], dirs[0], s[i], dirs[i]);
	ck_abort_msg("not converged in %d passes", max);
	return -1;
}

/* --- what a replica shows --- */

struct row {
	uint32_t uid;
	char guid[33];
	char *flags; /* comma-separated */
	char *body;
};

static void rows_free(struct row *r, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		free(r[i].flags);
		free(r[i].body);
	}
	free(r);
}

static struct row *rows_of(mcrdt_store *s, const char *mbox, size_t *n)
{
	mcrdt_mailbox *mb = sel(s, mbox);
	struct mcrdt_message *m = fetch(mb, "1:*", MCRDT_SEQ, n);
	struct row *r = calloc(*n + 1, sizeof *r);
	for (size_t i = 0; i < *n; i++) {
		r[i].uid = m[i].uid;
		memcpy(r[i].guid, m[i].guid, sizeof r[i].guid);
		struct sb f = { NULL, 0, 0 };
		sb_printf(&f, "%s", "");
		for (size_t k = 0; k < m[i].nflags; k++)
			sb_printf(&f, "%s%s", k ? "," : "", m[i].flags[k]);
		r[i].flags = f.p;
		size_t len;
		r[i].body = body_of(mb, m[i].uid, &len);
	}
	mcrdt_messages_free(m, *n);
	mcrdt_mailbox_close(mb);
	return r;
}

/* How many messages of all existing mailboxes have exactly this body. */
static size_t count_body(mcrdt_store *s, const char *body)
{
	struct mcrdt_mailbox_info *v = NULL;
	size_t nv = 0, c = 0;
	OK(mcrdt_mailbox_list(s, &v, &nv));
	for (size_t i = 0; i < nv; i++) {
		if (v[i].attrs & MCRDT_MBOX_NONEXISTENT)
			continue;
		size_t n;
		struct row *r = rows_of(s, v[i].name, &n);
		for (size_t k = 0; k < n; k++)
			if (strcmp(r[k].body, body) == 0)
				c++;
		rows_free(r, n);
	}
	mcrdt_mailbox_list_free(v, nv);
	return c;
}

/* Whether mbox has a message with this body; its row into *out (may be NULL). */
static bool find_body(mcrdt_store *s, const char *mbox, const char *body, struct row *out)
{
	size_t n;
	struct row *r = rows_of(s, mbox, &n);
	bool found = false;
	for (size_t k = 0; k < n; k++)
		if (strcmp(r[k].body, body) == 0) {
			if (out) {
				*out = r[k];
				r[k].flags = r[k].body = NULL;
			}
			found = true;
			break;
		}
	rows_free(r, n);
	return found;
}

static bool has_flag_str(const char *flags, const char *f)
{
	size_t fl = strlen(f);
	for (const char *p = flags; *p;) {
		size_t n = strcspn(p, ",");
		if (n == fl && strncasecmp(p, f, n) == 0)
			return true;
		p += n;
		if (*p == ',')
			p++;
	}
	return false;
}

static void set_flags(mcrdt_store *s, const char *mbox, uint32_t uid, enum mcrdt_flags_mode mode, const char *flag)
{
	mcrdt_mailbox *mb = sel(s, mbox);
	char set[16];
	snprintf(set, sizeof set, "%u", uid);
	const char *fl[1] = { flag };
	OK(mcrdt_store_flags(mb, set, MCRDT_UID, mode, fl, 1, 0, NULL, NULL));
	mcrdt_mailbox_close(mb);
}

static void expunge_uid(mcrdt_store *s, const char *mbox, uint32_t uid)
{
	mcrdt_mailbox *mb = sel(s, mbox);
	char set[16];
	snprintf(set, sizeof set, "%u", uid);
	uint32_t *u = NULL;
	size_t n = 0;
	OK(mcrdt_expunge(mb, set, MCRDT_EXPUNGE_ANY, &u, &n));
	ck_assert_uint_eq(n, 1);
	free(u);
	mcrdt_mailbox_close(mb);
}

/* The UID of the message with this body in mbox (fails when none). */
static uint32_t uid_of(mcrdt_store *s, const char *mbox, const char *body)
{
	struct row r;
	ck_assert_msg(find_body(s, mbox, body, &r), "no message \"%s\" in %s", body, mbox);
	uint32_t uid = r.uid;
	free(r.flags);
	free(r.body);
	return uid;
}

/* A fixture: n replicas (named r0, r1, ...) and a hub, all empty. */
struct fx {
	char *top;
	char *dirs[3];
	mcrdt_store *s[3];
	char *hub;
	size_t n;
};

static void fx_open(struct fx *f, size_t n)
{
	memset(f, 0, sizeof *f);
	f->top = tmp_dir();
	f->n = n;
	for (size_t i = 0; i < n; i++) {
		char name[32];
		snprintf(name, sizeof name, "r%zu", i);
		f->dirs[i] = tmp_path(f->top, name);
		f->s[i] = open_named(f->dirs[i], name);
	}
	f->hub = tmp_path(f->top, "hub.git");
	OK(mcrdt_hub_init(f->hub));
}

static void fx_close(struct fx *f)
{
	for (size_t i = 0; i < f->n; i++) {
		mcrdt_store_close(f->s[i]);
		free(f->dirs[i]);
	}
	free(f->hub);
	rm_tree(f->top);
}

/* ---- 1. the convergence contract, case by case ---- */

/* 1. Concurrent APPEND to one mailbox: every message present everywhere, once. */
START_TEST(case01_concurrent_append)
{
	struct fx f;
	fx_open(&f, 2);
	mcrdt_store *a = f.s[0], *b = f.s[1];
	sync_direct(a, f.dirs[0], b, f.dirs[1]);
	/* Changes on one side only: one exchange each way, no round that
	 * brings nothing. */
	add_plain(a, "INBOX", "Subject: first\r\n\r\nonly on a\r\n");
	ck_assert_uint_eq(sync_direct(a, f.dirs[0], b, f.dirs[1]), 1);
	char body[64];
	for (int i = 0; i < 4; i++) {
		snprintf(body, sizeof body, "Subject: a%d\r\n\r\nfrom a %d\r\n", i, i);
		add_plain(a, "INBOX", body);
		snprintf(body, sizeof body, "Subject: b%d\r\n\r\nfrom b %d\r\n", i, i);
		add_plain(b, "INBOX", body);
	}
	sync_direct(a, f.dirs[0], b, f.dirs[1]);
	size_t n;
	struct row *r = rows_of(a, "INBOX", &n);
	ck_assert_uint_eq(n, 9);
	rows_free(r, n);
	for (int i = 0; i < 4; i++) {
		snprintf(body, sizeof body, "Subject: a%d\r\n\r\nfrom a %d\r\n", i, i);
		ck_assert_uint_eq(count_body(a, body), 1);
		ck_assert_uint_eq(count_body(b, body), 1);
		snprintf(body, sizeof body, "Subject: b%d\r\n\r\nfrom b %d\r\n", i, i);
		ck_assert_uint_eq(count_body(a, body), 1);
		ck_assert_uint_eq(count_body(b, body), 1);
	}
	/* and the same through a hub, three replicas */
	mcrdt_store_close(b);
	f.s[1] = NULL;
	fx_close(&f);
	fx_open(&f, 3);
	for (size_t i = 0; i < 3; i++)
		for (int k = 0; k < 3; k++) {
			snprintf(body, sizeof body, "Subject: r%zu-%d\r\n\r\nx\r\n", i, k);
			add_plain(f.s[i], "INBOX", body);
		}
	sync_hub_all(f.s, f.dirs, 3, f.hub, 6);
	for (size_t i = 0; i < 3; i++)
		for (int k = 0; k < 3; k++) {
			snprintf(body, sizeof body, "Subject: r%zu-%d\r\n\r\nx\r\n", i, k);
			for (size_t j = 0; j < 3; j++)
				ck_assert_msg(count_body(f.s[j], body) == 1, "r%zu: message r%zu-%d present %zu times", j, i,
					      k, count_body(f.s[j], body));
		}
	fx_close(&f);
}
END_TEST

/* 2. Concurrent flag changes: per flag, add wins over a concurrent remove;
 * unrelated flags both apply. */
START_TEST(case02_concurrent_flags)
{
	struct fx f;
	fx_open(&f, 2);
	mcrdt_store *a = f.s[0], *b = f.s[1];
	const char *fl[] = { "\\Seen", "$Work", "\\Draft" };
	const char *m1 = "Subject: flags\r\n\r\nflags\r\n";
	uint32_t uid = add_msg(a, "INBOX", m1, fl, 3, DATE);
	sync_direct(a, f.dirs[0], b, f.dirs[1]);
	ck_assert_uint_eq(uid_of(b, "INBOX", m1), uid);
	/* a removes \Seen and $Work; b removes then adds them again (adds
	 * concurrent with a's removes); a adds \Flagged, b adds \Answered;
	 * a removes \Draft, which b leaves alone */
	set_flags(a, "INBOX", uid, MCRDT_FLAGS_REMOVE, "\\Seen");
	set_flags(a, "INBOX", uid, MCRDT_FLAGS_REMOVE, "$Work");
	set_flags(a, "INBOX", uid, MCRDT_FLAGS_ADD, "\\Flagged");
	set_flags(a, "INBOX", uid, MCRDT_FLAGS_REMOVE, "\\Draft");
	set_flags(b, "INBOX", uid, MCRDT_FLAGS_REMOVE, "\\Seen");
	set_flags(b, "INBOX", uid, MCRDT_FLAGS_ADD, "\\Seen");
	set_flags(b, "INBOX", uid, MCRDT_FLAGS_REMOVE, "$Work");
	set_flags(b, "INBOX", uid, MCRDT_FLAGS_ADD, "$Work");
	set_flags(b, "INBOX", uid, MCRDT_FLAGS_ADD, "\\Answered");
	/* through the hub */
	sync_hub_all(f.s, f.dirs, 2, f.hub, 6);
	for (int i = 0; i < 2; i++) {
		struct row r;
		ck_assert(find_body(f.s[i], "INBOX", m1, &r));
		ck_assert_msg(has_flag_str(r.flags, "\\Seen"), "r%d: \\Seen lost to a concurrent remove: %s", i,
			      r.flags);
		ck_assert_msg(has_flag_str(r.flags, "$Work"), "r%d: $Work lost to a concurrent remove: %s", i, r.flags);
		ck_assert_msg(has_flag_str(r.flags, "\\Flagged"), "r%d: %s", i, r.flags);
		ck_assert_msg(has_flag_str(r.flags, "\\Answered"), "r%d: %s", i, r.flags);
		ck_assert_msg(!has_flag_str(r.flags, "\\Draft"), "r%d: \\Draft came back: %s", i, r.flags);
		free(r.flags);
		free(r.body);
	}
	fx_close(&f);
}
END_TEST

/* 3. EXPUNGE vs a concurrent flag change: the message stays expunged. */
START_TEST(case03_expunge_vs_flags)
{
	struct fx f;
	fx_open(&f, 2);
	mcrdt_store *a = f.s[0], *b = f.s[1];
	const char *m1 = "Subject: doomed\r\n\r\ndoomed\r\n", *m2 = "Subject: kept\r\n\r\nkept\r\n";
	uint32_t u1 = add_plain(a, "INBOX", m1);
	add_plain(a, "INBOX", m2);
	sync_direct(a, f.dirs[0], b, f.dirs[1]);
	expunge_uid(a, "INBOX", u1);
	set_flags(b, "INBOX", u1, MCRDT_FLAGS_ADD, "\\Flagged");
	set_flags(b, "INBOX", u1, MCRDT_FLAGS_ADD, "$Later");
	set_flags(b, "INBOX", u1, MCRDT_FLAGS_SET, "\\Seen");
	sync_direct(b, f.dirs[1], a, f.dirs[0]);
	ck_assert_uint_eq(count_body(a, m1), 0);
	ck_assert_uint_eq(count_body(b, m1), 0);
	ck_assert_uint_eq(count_body(a, m2), 1);
	/* and once more the other way round, through the hub */
	uint32_t u2 = uid_of(a, "INBOX", m2);
	set_flags(a, "INBOX", u2, MCRDT_FLAGS_ADD, "\\Seen");
	expunge_uid(b, "INBOX", u2);
	sync_hub_all(f.s, f.dirs, 2, f.hub, 6);
	ck_assert_uint_eq(count_body(a, m2), 0);
	ck_assert_uint_eq(count_body(b, m2), 0);
	fx_close(&f);
}
END_TEST

/* 4. DELETE vs a concurrent APPEND into the mailbox: the message survives,
 * the mailbox exists holding what was added concurrently. */
START_TEST(case04_delete_vs_append)
{
	struct fx f;
	fx_open(&f, 2);
	mcrdt_store *a = f.s[0], *b = f.s[1];
	OK(mcrdt_mailbox_create(a, "Work"));
	const char *old = "Subject: old\r\n\r\nseen by the delete\r\n";
	const char *fresh = "Subject: new\r\n\r\nappended concurrently\r\n";
	add_plain(a, "Work", old);
	sync_direct(a, f.dirs[0], b, f.dirs[1]);
	OK(mcrdt_mailbox_delete(a, "Work"));
	ck_assert(!exists(a, "Work"));
	add_plain(b, "Work", fresh);
	sync_direct(a, f.dirs[0], b, f.dirs[1]);
	for (int i = 0; i < 2; i++) {
		ck_assert_msg(exists(f.s[i], "Work"), "r%d: Work is gone with a message appended to it", i);
		ck_assert_msg(find_body(f.s[i], "Work", fresh, NULL), "r%d: the concurrent append was lost", i);
		ck_assert_msg(count_body(f.s[i], fresh) == 1, "r%d", i);
		ck_assert_msg(count_body(f.s[i], old) == 0, "r%d: the message the delete saw came back", i);
	}
	fx_close(&f);
}
END_TEST

/* 5. RENAME vs a concurrent APPEND: the message ends up in the renamed mailbox. */
START_TEST(case05_rename_vs_append)
{
	struct fx f;
	fx_open(&f, 2);
	mcrdt_store *a = f.s[0], *b = f.s[1];
	OK(mcrdt_mailbox_create(a, "Old"));
	OK(mcrdt_mailbox_create(a, "Old/Child"));
	const char *m0 = "Subject: before\r\n\r\nbefore\r\n", *m1 = "Subject: during\r\n\r\nduring\r\n";
	const char *m2 = "Subject: child\r\n\r\nchild\r\n";
	add_plain(a, "Old", m0);
	sync_hub_all(f.s, f.dirs, 2, f.hub, 6);
	OK(mcrdt_mailbox_rename(a, "Old", "New"));
	add_plain(b, "Old", m1);
	add_plain(b, "Old/Child", m2);
	sync_hub_all(f.s, f.dirs, 2, f.hub, 6);
	for (int i = 0; i < 2; i++) {
		ck_assert_msg(!exists(f.s[i], "Old"), "r%d: Old still exists", i);
		ck_assert(exists(f.s[i], "New"));
		ck_assert_msg(find_body(f.s[i], "New", m1, NULL), "r%d: the concurrent append is not in New", i);
		ck_assert(find_body(f.s[i], "New", m0, NULL));
		ck_assert_msg(find_body(f.s[i], "New/Child", m2, NULL), "r%d: not in New/Child", i);
		ck_assert_uint_eq(count_body(f.s[i], m1), 1);
	}
	fx_close(&f);
}
END_TEST

/* 6. Concurrent RENAME of one mailbox to two names: one name wins,
 * the same on every replica. */
START_TEST(case06_rename_rename)
{
	struct fx f;
	fx_open(&f, 3);
	OK(mcrdt_mailbox_create(f.s[0], "X"));
	const char *m0 = "Subject: in x\r\n\r\nin x\r\n";
	add_plain(f.s[0], "X", m0);
	sync_hub_all(f.s, f.dirs, 3, f.hub, 6);
	OK(mcrdt_mailbox_rename(f.s[0], "X", "Y"));
	OK(mcrdt_mailbox_rename(f.s[1], "X", "Z"));
	/* r2 only appends into X */
	const char *m1 = "Subject: late\r\n\r\nlate\r\n";
	add_plain(f.s[2], "X", m1);
	sync_hub_all(f.s, f.dirs, 3, f.hub, 6);
	bool y = exists(f.s[0], "Y"), z = exists(f.s[0], "Z");
	ck_assert_msg(y != z, "Y exists: %d, Z exists: %d: one name must win", y, z);
	const char *win = y ? "Y" : "Z";
	for (int i = 0; i < 3; i++) {
		ck_assert(!exists(f.s[i], "X"));
		ck_assert_msg(exists(f.s[i], win), "r%d lacks %s", i, win);
		ck_assert(find_body(f.s[i], win, m0, NULL));
		ck_assert(find_body(f.s[i], win, m1, NULL));
		ck_assert_uint_eq(count_body(f.s[i], m0), 1);
	}
	/* and directly, two-way */
	OK(mcrdt_mailbox_rename(f.s[0], win, "P"));
	OK(mcrdt_mailbox_rename(f.s[1], win, "Q"));
	sync_direct(f.s[1], f.dirs[1], f.s[0], f.dirs[0]);
	bool p = exists(f.s[0], "P"), q = exists(f.s[0], "Q");
	ck_assert_msg(p != q, "P exists: %d, Q exists: %d", p, q);
	ck_assert(find_body(f.s[0], p ? "P" : "Q", m1, NULL));
	fx_close(&f);
}
END_TEST

/* 7. Concurrent CREATE of the same name: one mailbox, both sides' messages. */
START_TEST(case07_create_create)
{
	struct fx f;
	fx_open(&f, 2);
	mcrdt_store *a = f.s[0], *b = f.s[1];
	sync_direct(a, f.dirs[0], b, f.dirs[1]);
	OK(mcrdt_mailbox_create(a, "Proj"));
	OK(mcrdt_mailbox_create(b, "Proj"));
	const char *ma = "Subject: pa\r\n\r\nfrom a\r\n", *mb = "Subject: pb\r\n\r\nfrom b\r\n";
	add_plain(a, "Proj", ma);
	add_plain(b, "Proj", mb);
	sync_direct(a, f.dirs[0], b, f.dirs[1]);
	for (int i = 0; i < 2; i++) {
		struct mcrdt_mailbox_info *v = NULL;
		size_t n = 0, k = 0;
		OK(mcrdt_mailbox_list(f.s[i], &v, &n));
		for (size_t j = 0; j < n; j++)
			if (strcasecmp(v[j].name, "Proj") == 0)
				k++;
		mcrdt_mailbox_list_free(v, n);
		ck_assert_uint_eq(k, 1);
		size_t nr;
		struct row *r = rows_of(f.s[i], "Proj", &nr);
		ck_assert_uint_eq(nr, 2);
		rows_free(r, nr);
		ck_assert(find_body(f.s[i], "Proj", ma, NULL));
		ck_assert(find_body(f.s[i], "Proj", mb, NULL));
	}
	fx_close(&f);
}
END_TEST

/* 8. RENAME onto a name that was concurrently created: deterministic, no
 * message lost. */
START_TEST(case08_rename_onto_created)
{
	struct fx f;
	fx_open(&f, 2);
	mcrdt_store *a = f.s[0], *b = f.s[1];
	OK(mcrdt_mailbox_create(a, "S"));
	const char *ms = "Subject: s\r\n\r\nin s\r\n", *mt = "Subject: t\r\n\r\nin t\r\n";
	add_plain(a, "S", ms);
	sync_direct(a, f.dirs[0], b, f.dirs[1]);
	OK(mcrdt_mailbox_rename(a, "S", "T"));
	OK(mcrdt_mailbox_create(b, "T"));
	add_plain(b, "T", mt);
	sync_hub_all(f.s, f.dirs, 2, f.hub, 6);
	for (int i = 0; i < 2; i++) {
		ck_assert_msg(count_body(f.s[i], ms) == 1, "r%d: the renamed mailbox's message: %zu copies", i,
			      count_body(f.s[i], ms));
		ck_assert_msg(count_body(f.s[i], mt) == 1, "r%d: the created mailbox's message: %zu copies", i,
			      count_body(f.s[i], mt));
	}
	fx_close(&f);
}
END_TEST

/* 9. SUBSCRIBE/UNSUBSCRIBE: add-wins set of names. */
START_TEST(case09_subscriptions)
{
	struct fx f;
	fx_open(&f, 2);
	mcrdt_store *a = f.s[0], *b = f.s[1];
	OK(mcrdt_mailbox_subscribe(a, "Lists", true));
	OK(mcrdt_mailbox_subscribe(a, "Bar", true));
	sync_direct(a, f.dirs[0], b, f.dirs[1]);
	ck_assert(subscribed(b, "Lists"));
	/* Lists: a drops it, b drops and takes it again: the add wins.
	 * Bar: a drops it, b does nothing: dropped.
	 * Foo: a adds it, b drops it without having seen it: the add wins. */
	OK(mcrdt_mailbox_subscribe(a, "Lists", false));
	OK(mcrdt_mailbox_subscribe(b, "Lists", false));
	OK(mcrdt_mailbox_subscribe(b, "Lists", true));
	OK(mcrdt_mailbox_subscribe(a, "Bar", false));
	OK(mcrdt_mailbox_subscribe(a, "Foo", true));
	OK(mcrdt_mailbox_subscribe(b, "Foo", false));
	sync_direct(a, f.dirs[0], b, f.dirs[1]);
	for (int i = 0; i < 2; i++) {
		ck_assert_msg(subscribed(f.s[i], "Lists"), "r%d: Lists", i);
		ck_assert_msg(!subscribed(f.s[i], "Bar"), "r%d: Bar", i);
		ck_assert_msg(subscribed(f.s[i], "Foo"), "r%d: Foo", i);
	}
	fx_close(&f);
}
END_TEST

/* 10. COPY/MOVE vs a concurrent EXPUNGE of the source: the copy survives. */
START_TEST(case10_copy_vs_expunge)
{
	struct fx f;
	fx_open(&f, 2);
	mcrdt_store *a = f.s[0], *b = f.s[1];
	OK(mcrdt_mailbox_create(a, "Arch"));
	const char *mc = "Subject: copied\r\n\r\ncopied body\r\n", *mm = "Subject: moved\r\n\r\nmoved body\r\n";
	uint32_t uc = add_plain(a, "INBOX", mc), um = add_plain(a, "INBOX", mm);
	sync_direct(a, f.dirs[0], b, f.dirs[1]);
	mcrdt_mailbox *mb = sel(a, "INBOX");
	char set[16];
	snprintf(set, sizeof set, "%u", uc);
	OK(mcrdt_copy(mb, set, MCRDT_UID, "Arch", false, NULL));
	snprintf(set, sizeof set, "%u", um);
	OK(mcrdt_copy(mb, set, MCRDT_UID, "Arch", true, NULL));
	mcrdt_mailbox_close(mb);
	expunge_uid(b, "INBOX", uc);
	expunge_uid(b, "INBOX", um);
	sync_direct(b, f.dirs[1], a, f.dirs[0]);
	for (int i = 0; i < 2; i++) {
		ck_assert_msg(find_body(f.s[i], "Arch", mc, NULL), "r%d: the copy did not survive", i);
		ck_assert_msg(find_body(f.s[i], "Arch", mm, NULL), "r%d: the moved message did not survive", i);
		ck_assert_msg(!find_body(f.s[i], "INBOX", mc, NULL), "r%d: the expunged source came back", i);
		/* Each once in the whole store: the copy, and the moved message. */
		ck_assert_uint_eq(count_body(f.s[i], mc), 1);
		ck_assert_uint_eq(count_body(f.s[i], mm), 1);
	}
	fx_close(&f);
}
END_TEST

struct quiet {
	uint64_t modseq, records, messages;
};

static struct quiet quiet_of(mcrdt_store *s)
{
	struct mcrdt_store_info in;
	OK(mcrdt_store_info(s, &in));
	return (struct quiet){ in.highestmodseq, in.log_records, in.messages };
}

/* 11. Redelivery, any number of times, in any order: no effect beyond the first. */
START_TEST(case11_redelivery)
{
	struct fx f;
	fx_open(&f, 3);
	OK(mcrdt_mailbox_create(f.s[0], "A"));
	for (int i = 0; i < 5; i++) {
		char body[64];
		snprintf(body, sizeof body, "Subject: m%d\r\n\r\nm%d\r\n", i, i);
		add_plain(f.s[i % 2], "INBOX", body);
	}
	set_flags(f.s[0], "INBOX", 1, MCRDT_FLAGS_ADD, "\\Seen");
	/* r0 and r1 directly, r1 through the hub, r2 gets r0's ops both from
	 * the hub and again directly from r0 */
	sync_direct(f.s[0], f.dirs[0], f.s[1], f.dirs[1]);
	OK(mcrdt_sync(f.s[1], f.hub, NULL, NULL));
	OK(mcrdt_sync(f.s[2], f.hub, NULL, NULL));
	sync_direct(f.s[2], f.dirs[2], f.s[0], f.dirs[0]);
	sync_hub_all(f.s, f.dirs, 3, f.hub, 6);
	char *ref = render(f.s[0], f.dirs[0]);
	struct quiet q[3];
	for (int i = 0; i < 3; i++)
		q[i] = quiet_of(f.s[i]);
	for (int round = 0; round < 3; round++) {
		struct mcrdt_sync_stats st;
		for (int i = 0; i < 3; i++) {
			OK(mcrdt_sync(f.s[i], f.hub, NULL, &st));
			ck_assert_msg(st.ops_received == 0 && st.messages_received == 0 && st.uid_moves == 0,
				      "r%d, round %d, hub: %" PRIu64 " ops, %" PRIu64 " messages, %" PRIu64
				      " UID moves received again",
				      i, round, st.ops_received, st.messages_received, st.uid_moves);
			int j = (i + 1 + round) % 3;
			if (j == i)
				j = (j + 1) % 3;
			OK(mcrdt_sync(f.s[i], f.dirs[j], NULL, &st));
			ck_assert_msg(st.ops_received == 0 && st.messages_received == 0 && st.uid_moves == 0,
				      "r%d<->r%d, round %d: %" PRIu64 " ops, %" PRIu64 " messages received again", i, j,
				      round, st.ops_received, st.messages_received);
		}
		for (int i = 0; i < 3; i++) {
			char *x = render(f.s[i], f.dirs[i]);
			assert_same_text("a repeated sync changed a replica", ref, x);
			free(x);
			struct quiet now = quiet_of(f.s[i]);
			ck_assert_msg(now.modseq == q[i].modseq, "r%d: HIGHESTMODSEQ %" PRIu64 " -> %" PRIu64, i,
				      q[i].modseq, now.modseq);
			ck_assert_msg(now.records == q[i].records, "r%d: log records %" PRIu64 " -> %" PRIu64, i,
				      q[i].records, now.records);
			ck_assert_uint_eq(now.messages, q[i].messages);
		}
	}
	/* a merge of two converged replicas changes nothing either */
	mcrdt_store_close(f.s[1]);
	f.s[1] = NULL;
	OK(mcrdt_merge(f.dirs[1], f.dirs[2], NULL, NULL));
	f.s[1] = open_named(f.dirs[1], "r1");
	char *x = render(f.s[1], f.dirs[1]);
	assert_same_text("merge of converged replicas", ref, x);
	free(x);
	free(ref);
	fx_close(&f);
}
END_TEST

/* 12. A replica offline for a long time converges too: r1 is away while
 * r0 makes 2000 changes in many syncs with the hub. */
START_TEST(case12_long_offline)
{
	struct fx f;
	fx_open(&f, 2);
	mcrdt_store *a = f.s[0], *b = f.s[1];
	add_plain(b, "INBOX", "Subject: before\r\n\r\nbefore\r\n");
	sync_hub_all(f.s, f.dirs, 2, f.hub, 6);
	/* b changes a little while away, too */
	add_plain(b, "INBOX", "Subject: b away\r\n\r\nwritten offline\r\n");
	struct mcrdt_store_info i0;
	OK(mcrdt_store_info(a, &i0));
	uint64_t records0 = i0.log_records;
	unsigned seed = 4242;
	int changes = 0, mboxes = 0, syncs = 0, last_sync = 0;
	char body[128];
	while (changes < 2000) {
		int r = (int)(rand_r(&seed) % 100);
		if (r < 50 || changes < 20) {
			const char *mbox = "INBOX";
			char name[32];
			if (mboxes && rand_r(&seed) % 2) {
				snprintf(name, sizeof name, "F%d", (int)(rand_r(&seed) % (unsigned)mboxes));
				mbox = name;
			}
			snprintf(body, sizeof body, "Subject: c%d\r\n\r\nchange %d %u\r\n", changes, changes,
				 rand_r(&seed));
			add_plain(a, mbox, body);
		} else if (r < 96) {
			mcrdt_mailbox *mb = sel(a, "INBOX");
			size_t n;
			struct mcrdt_message *m = fetch(mb, "1:*", MCRDT_SEQ, &n);
			if (n) {
				size_t k = rand_r(&seed) % n;
				char set[16];
				snprintf(set, sizeof set, "%u", m[k].uid);
				if (r < 80) {
					static const char *const fl[] = { "\\Seen", "\\Flagged", "$Todo", "\\Answered" };
					const char *one[1] = { fl[rand_r(&seed) % 4] };
					OK(mcrdt_store_flags(mb, set, MCRDT_UID,
							     rand_r(&seed) % 3 ? MCRDT_FLAGS_ADD : MCRDT_FLAGS_REMOVE, one, 1,
							     0, NULL, NULL));
				} else {
					OK(mcrdt_expunge(mb, set, MCRDT_EXPUNGE_ANY, NULL, NULL));
				}
			}
			mcrdt_messages_free(m, n);
			mcrdt_mailbox_close(mb);
		} else if (r < 98) {
			char name[32];
			snprintf(name, sizeof name, "F%d", mboxes++);
			OK(mcrdt_mailbox_create(a, name));
		} else if (mboxes) {
			/* rename a folder there and back */
			char from[32], to[48];
			snprintf(from, sizeof from, "F%d", (int)(rand_r(&seed) % (unsigned)mboxes));
			snprintf(to, sizeof to, "%s-tmp", from);
			OK(mcrdt_mailbox_rename(a, from, to));
			OK(mcrdt_mailbox_rename(a, to, from));
			changes++;
		}
		changes++;
		if (changes / 100 != last_sync) {
			last_sync = changes / 100;
			OK(mcrdt_sync(a, f.hub, NULL, NULL));
			syncs++;
		}
	}
	ck_assert_int_ge(syncs, 20);
	struct mcrdt_store_info ia;
	OK(mcrdt_store_info(a, &ia));
	uint64_t made = ia.log_records - records0;
	ck_assert_uint_ge(made, 1500);
	struct mcrdt_sync_stats st;
	OK(mcrdt_sync(b, f.hub, NULL, &st));
	ck_assert_msg(st.ops_received >= made, "b received %" PRIu64 " ops, a made %" PRIu64, st.ops_received, made);
	sync_hub_all(f.s, f.dirs, 2, f.hub, 6);
	ck_assert_uint_eq(count_body(a, "Subject: b away\r\n\r\nwritten offline\r\n"), 1);
	fx_close(&f);
}
END_TEST

/* ---- 2. three replicas, random concurrent changes ---- */

struct shown {
	char mbox[33];
	uint32_t uidvalidity, uid;
	char guid[33];
};

struct seen_box {
	char mbox[33];
	uint32_t uidvalidity, maxuid, uidnext;
};

struct watch {
	struct shown *v;
	size_t n, cap;
	struct seen_box *b;
	size_t nb, capb;
};

static struct seen_box *seen_box_of(struct watch *w, const char *guid, uint32_t uidvalidity)
{
	for (size_t i = 0; i < w->nb; i++)
		if (w->b[i].uidvalidity == uidvalidity && strcmp(w->b[i].mbox, guid) == 0)
			return &w->b[i];
	if (w->nb == w->capb) {
		w->capb = w->capb ? 2 * w->capb : 16;
		w->b = realloc(w->b, w->capb * sizeof *w->b);
	}
	struct seen_box *b = &w->b[w->nb++];
	memset(b, 0, sizeof *b);
	snprintf(b->mbox, sizeof b->mbox, "%s", guid);
	b->uidvalidity = uidvalidity;
	return b;
}

/* The IMAP invariants on what replica i shows now, against what it
 * showed before: a UID never names another message; a UID newly shown is
 * above every UID shown before in that mailbox; UIDNEXT never decreases. */
static void check_imap(struct watch *w, mcrdt_store *s, int who, const char *when)
{
	struct mcrdt_mailbox_info *v = NULL;
	size_t nv = 0;
	OK(mcrdt_mailbox_list(s, &v, &nv));
	for (size_t i = 0; i < nv; i++) {
		if (v[i].attrs & MCRDT_MBOX_NONEXISTENT)
			continue;
		mcrdt_mailbox *mb = sel(s, v[i].name);
		struct mcrdt_select_info si;
		OK(mcrdt_mailbox_info(mb, &si));
		ck_assert_uint_eq(si.uidvalidity, v[i].uidvalidity);
		struct seen_box *sb = seen_box_of(w, v[i].guid, si.uidvalidity);
		ck_assert_msg(si.uidnext >= sb->uidnext, "r%d %s: %s UIDNEXT went from %u down to %u%s", who, when,
			      v[i].name, sb->uidnext, si.uidnext, note);
		size_t n;
		struct mcrdt_message *m = fetch(mb, "1:*", MCRDT_SEQ, &n);
		uint32_t maxbefore = sb->maxuid, prev = 0;
		for (size_t k = 0; k < n; k++) {
			ck_assert_msg(m[k].uid > prev, "r%d %s: %s: UIDs not ascending%s", who, when, v[i].name, note);
			prev = m[k].uid;
			ck_assert_msg(m[k].uid < si.uidnext, "r%d %s: %s: UID %u not below UIDNEXT %u%s", who, when,
				      v[i].name, m[k].uid, si.uidnext, note);
			struct shown *found = NULL;
			for (size_t j = 0; j < w->n && !found; j++)
				if (w->v[j].uid == m[k].uid && w->v[j].uidvalidity == si.uidvalidity &&
				    strcmp(w->v[j].mbox, v[i].guid) == 0)
					found = &w->v[j];
			if (found) {
				ck_assert_msg(strcmp(found->guid, m[k].guid) == 0,
					      "r%d %s: %s UID %u named message %s, now names %s%s", who, when, v[i].name,
					      m[k].uid, found->guid, m[k].guid, note);
				continue;
			}
			ck_assert_msg(m[k].uid > maxbefore,
				      "r%d %s: %s: UID %u (message %s) newly shown below UID %u shown before%s", who, when,
				      v[i].name, m[k].uid, m[k].guid, maxbefore, note);
			if (w->n == w->cap) {
				w->cap = w->cap ? 2 * w->cap : 64;
				w->v = realloc(w->v, w->cap * sizeof *w->v);
			}
			struct shown *x = &w->v[w->n++];
			snprintf(x->mbox, sizeof x->mbox, "%s", v[i].guid);
			x->uidvalidity = si.uidvalidity;
			x->uid = m[k].uid;
			snprintf(x->guid, sizeof x->guid, "%s", m[k].guid);
			if (m[k].uid > sb->maxuid)
				sb->maxuid = m[k].uid;
		}
		sb->uidnext = si.uidnext;
		mcrdt_messages_free(m, n);
		mcrdt_mailbox_close(mb);
	}
	mcrdt_mailbox_list_free(v, nv);
}

/* Names of the existing mailboxes. */
static char **existing(mcrdt_store *s, size_t *n)
{
	struct mcrdt_mailbox_info *v = NULL;
	size_t nv = 0;
	OK(mcrdt_mailbox_list(s, &v, &nv));
	char **r = calloc(nv + 1, sizeof *r);
	*n = 0;
	for (size_t i = 0; i < nv; i++)
		if (!(v[i].attrs & MCRDT_MBOX_NONEXISTENT))
			r[(*n)++] = strdup(v[i].name);
	mcrdt_mailbox_list_free(v, nv);
	return r;
}

static void random_change(mcrdt_store *s, int who, unsigned *seed, int *serial)
{
	size_t nb;
	char **boxes = existing(s, &nb);
	const char *box = boxes[rand_r(seed) % nb];
	unsigned r = rand_r(seed) % 100;
	(*serial)++;
	if (r < 35) {
		char body[200];
		int len = snprintf(body, sizeof body, "Subject: r%d-%d\r\n\r\n", who, *serial);
		int extra = (int)(rand_r(seed) % 60);
		for (int i = 0; i < extra; i++)
			body[len++] = (char)('a' + rand_r(seed) % 26);
		body[len++] = '\r';
		body[len++] = '\n';
		body[len] = '\0';
		static const char *const fl[] = { "\\Seen", "$Work" };
		add_msg(s, box, body, fl, rand_r(seed) % 3, DATE);
	} else if (r < 85) {
		mcrdt_mailbox *mb = sel(s, box);
		size_t n;
		struct mcrdt_message *m = fetch(mb, "1:*", MCRDT_SEQ, &n);
		if (n) {
			char set[16];
			snprintf(set, sizeof set, "%u", m[rand_r(seed) % n].uid);
			if (r < 65) {
				static const char *const fl[] = { "\\Seen", "\\Flagged", "$Work", "\\Deleted" };
				const char *one[1] = { fl[rand_r(seed) % 4] };
				OK(mcrdt_store_flags(mb, set, MCRDT_UID,
						     rand_r(seed) % 2 ? MCRDT_FLAGS_ADD : MCRDT_FLAGS_REMOVE, one, 1, 0,
						     NULL, NULL));
			} else if (r < 75) {
				OK(mcrdt_expunge(mb, set, MCRDT_EXPUNGE_ANY, NULL, NULL));
			} else {
				const char *dest = boxes[rand_r(seed) % nb];
				if (strcmp(dest, box) != 0)
					OK(mcrdt_copy(mb, set, MCRDT_UID, dest, rand_r(seed) % 3 == 0, NULL));
			}
		}
		mcrdt_messages_free(m, n);
		mcrdt_mailbox_close(mb);
	} else if (r < 93) {
		char name[32];
		if (rand_r(seed) % 4 == 0 && strcmp(box, "INBOX") != 0 && strlen(box) < 16)
			snprintf(name, sizeof name, "%s/C%d", box, (int)(rand_r(seed) % 4));
		else
			snprintf(name, sizeof name, "B%d", (int)(rand_r(seed) % 12));
		int rc = mcrdt_mailbox_create(s, name);
		ck_assert_msg(rc == 0 || rc == MCRDT_EEXISTS, "create %s: %d (%s)%s", name, rc, mcrdt_error_last(),
			      note);
	} else if (strcmp(box, "INBOX") != 0) {
		char name[32];
		snprintf(name, sizeof name, "B%d", (int)(rand_r(seed) % 12));
		int rc = mcrdt_mailbox_rename(s, box, name);
		ck_assert_msg(rc == 0 || rc == MCRDT_EEXISTS || rc == MCRDT_EINVAL, "rename %s %s: %d (%s)%s", box,
			      name, rc, mcrdt_error_last(), note);
	}
	free_strs(boxes, nb);
}

/* Runs cmd through the shell; *out (may be NULL) gets its output (stdout
 * and stderr). Returns its exit status, or -1. */
static int run_sh(char **out, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int run_sh(char **out, const char *fmt, ...)
{
	char *cmd = NULL;
	va_list ap;
	va_start(ap, fmt);
	ck_assert_int_ge(vasprintf(&cmd, fmt, ap), 0);
	va_end(ap);
	char *full = NULL;
	ck_assert_int_ge(asprintf(&full, "(%s) 2>&1", cmd), 0);
	FILE *p = popen(full, "r");
	ck_assert_msg(p != NULL, "popen %s", cmd);
	size_t len;
	char *o = read_fd_all(fileno(p), &len);
	int st = pclose(p);
	free(cmd);
	free(full);
	if (out)
		*out = o;
	else
		free(o);
	return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static void assert_fsck(const char *gitdir)
{
	char *o = NULL;
	int st = run_sh(&o, "git --git-dir='%s' fsck --strict", gitdir);
	ck_assert_msg(st == 0, "git fsck --strict %s: status %d:\n%s%s", gitdir, st, o, note);
	ck_assert_msg(!strstr(o, "error") && !strstr(o, "missing"), "git fsck --strict %s:\n%s%s", gitdir, o, note);
	free(o);
}

/* Every file under dir: its path, size, inode, mtime and checksum. */
static char *tree_state(const char *dir)
{
	char *o = NULL;
	ck_assert_int_eq(run_sh(&o, "cd '%s' && find . -printf '%%p %%s %%i %%T@\\n' | sort && "
				 "find . -type f -print0 | sort -z | xargs -0 cksum",
				 dir),
			 0);
	return o;
}

/* Once the replicas agree, a sync with nothing to do writes nothing: not
 * a file of either Maildir, of either store's metadata or repository, nor
 * of the hub, whether the remote is the other replica or the hub. */
START_TEST(a_sync_with_nothing_to_do_writes_nothing)
{
	struct fx f;
	fx_open(&f, 2);
	OK(mcrdt_mailbox_create(f.s[0], "Work"));
	add_plain(f.s[0], "INBOX", "Subject: a\r\n\r\nfrom a\r\n");
	add_plain(f.s[0], "Work", "Subject: w\r\n\r\nwork\r\n");
	add_plain(f.s[1], "INBOX", "Subject: b\r\n\r\nfrom b\r\n");
	sync_direct(f.s[0], f.dirs[0], f.s[1], f.dirs[1]);
	OK(mcrdt_sync(f.s[0], f.hub, NULL, NULL));
	OK(mcrdt_sync(f.s[1], f.hub, NULL, NULL));
	sync_direct(f.s[0], f.dirs[0], f.s[1], f.dirs[1]);
	/* A folder listed in the second of its last change is listed again
	 * (and its kept listing rewritten) by the next scan: a second later,
	 * one more sync settles that. */
	sleep(1);
	const char *where[3] = { f.dirs[0], f.dirs[1], f.hub };
	for (int round = 0; round < 2; round++) {
		/* a with b's directory, then b with the hub: once to settle,
		 * then once looked at */
		mcrdt_store *s = f.s[round];
		const char *remote = round ? f.hub : f.dirs[1];
		struct mcrdt_sync_stats st;
		OK(mcrdt_sync(s, remote, NULL, &st));
		char *before[3];
		for (int k = 0; k < 3; k++)
			before[k] = tree_state(where[k]);
		usleep(20000); /* (past the file system's clock tick: a write would move an mtime) */
		OK(mcrdt_sync(s, remote, NULL, &st));
		ck_assert_uint_eq(st.ops_received, 0);
		ck_assert_uint_eq(st.ops_sent, 0);
		for (int k = 0; k < 3; k++) {
			char *after = tree_state(where[k]);
			size_t at = 0; /* (the first line that differs, for the message) */
			for (size_t i = 0; before[k][i] && before[k][i] == after[i]; i++)
				if (after[i] == '\n')
					at = i + 1;
			ck_assert_msg(strcmp(before[k], after) == 0, "round %d: %s changed: \"%.200s\" became \"%.200s\"",
				      round, where[k], before[k] + at, after + at);
			free(after);
			free(before[k]);
		}
	}
	fx_close(&f);
}
END_TEST

START_TEST(random_three_replicas)
{
	unsigned seed = 20240601;
	const char *e = getenv("MCRDT_TEST_SEED");
	if (e && *e)
		seed = (unsigned)strtoul(e, NULL, 10);
	snprintf(note, sizeof note, " [seed %u: MCRDT_TEST_SEED=%u reproduces]", seed, seed);
	fprintf(stderr, "random_three_replicas: seed %u\n", seed);
	struct fx f;
	fx_open(&f, 3);
	struct watch w[3];
	memset(w, 0, sizeof w);
	int serial = 0;
	sync_hub_all(f.s, f.dirs, 3, f.hub, 6);
	for (int round = 0; round < 20; round++) {
		char when[64];
		for (int i = 0; i < 3; i++) {
			int k = (int)(rand_r(&seed) % 5);
			for (int j = 0; j < k; j++)
				random_change(f.s[i], i, &seed, &serial);
			snprintf(when, sizeof when, "round %d, after its changes", round);
			check_imap(&w[i], f.s[i], i, when);
		}
		int who = (int)(rand_r(&seed) % 3);
		OK(mcrdt_sync(f.s[who], f.hub, NULL, NULL));
		/* now and then two replicas sync directly */
		if (rand_r(&seed) % 4 == 0) {
			int other = (who + 1 + (int)(rand_r(&seed) % 2)) % 3;
			sync_direct(f.s[who], f.dirs[who], f.s[other], f.dirs[other]);
		}
		snprintf(when, sizeof when, "round %d, after r%d synced", round, who);
		for (int i = 0; i < 3; i++)
			check_imap(&w[i], f.s[i], i, when);
	}
	bool conv = false;
	for (int pass = 0; pass < 6 && !conv; pass++) {
		for (int i = 0; i < 3; i++) {
			OK(mcrdt_sync(f.s[i], f.hub, NULL, NULL));
			char when[64];
			snprintf(when, sizeof when, "final pass %d", pass);
			for (int j = 0; j < 3; j++)
				check_imap(&w[j], f.s[j], j, when);
		}
		conv = same(f.s[0], f.dirs[0], f.s[1], f.dirs[1]) && same(f.s[0], f.dirs[0], f.s[2], f.dirs[2]);
	}
	if (!conv) {
		assert_same("r0/r1 after 6 passes", f.s[0], f.dirs[0], f.s[1], f.dirs[1]);
		assert_same("r0/r2 after 6 passes", f.s[0], f.dirs[0], f.s[2], f.dirs[2]);
	}
	ck_assert_msg(conv, "no convergence in 6 passes%s", note);
	assert_fsck(f.hub);
	for (int i = 0; i < 3; i++) {
		char *g = tmp_path(f.dirs[i], "mcrdt/git");
		assert_fsck(g);
		free(g);
		free(w[i].v);
		free(w[i].b);
	}
	note[0] = '\0';
	fx_close(&f);
}
END_TEST

/* ---- 3. offline merge of two plain Maildirs ---- */

static void write_file(const char *dir, const char *name, const char *data)
{
	char *p = tmp_path(dir, name);
	FILE *fp = fopen(p, "w");
	ck_assert_msg(fp != NULL, "%s: %s", p, strerror(errno));
	ck_assert_int_eq(fputs(data, fp) >= 0, 1);
	ck_assert_int_eq(fclose(fp), 0);
	free(p);
}

static void make_dirs(const char *root, const char *folder)
{
	static const char *const subs[] = { "", "/cur", "/new", "/tmp" };
	for (int i = 0; i < 4; i++) {
		char p[4096];
		snprintf(p, sizeof p, "%s%s%s%s", root, *folder ? "/" : "", folder, subs[i]);
		ck_assert_msg(mkdir(p, 0700) == 0 || errno == EEXIST, "mkdir %s: %s", p, strerror(errno));
	}
}

static void rename_in(const char *root, const char *from, const char *to)
{
	char *a = tmp_path(root, from), *b = tmp_path(root, to);
	ck_assert_msg(rename(a, b) == 0, "rename %s %s: %s", a, b, strerror(errno));
	free(a);
	free(b);
}

/* The file of the message with base name base in root/folder's cur or
 * new (its name after the base, e.g. ":2,FS"), counting how many. */
static size_t find_base(const char *root, const char *folder, const char *base, char *suffix, size_t size)
{
	size_t c = 0;
	static const char *const subs[] = { "cur", "new" };
	for (int i = 0; i < 2; i++) {
		char p[4096];
		snprintf(p, sizeof p, "%s%s%s/%s", root, *folder ? "/" : "", folder, subs[i]);
		DIR *d = opendir(p);
		ck_assert_ptr_nonnull(d);
		struct dirent *e;
		while ((e = readdir(d)) != NULL) {
			char b[512];
			base_name(e->d_name, b, sizeof b);
			if (strcmp(b, base) == 0) {
				c++;
				snprintf(suffix, size, "%s", e->d_name + strlen(b));
			}
		}
		closedir(d);
	}
	return c;
}

/* A plain Maildir: four messages in INBOX (one in new/), one in Sub. */
static void plain_maildir(const char *root)
{
	make_dirs(root, "");
	make_dirs(root, ".Sub");
	write_file(root, "cur/1700000001.M1P10.host:2,S", "Subject: one\r\n\r\none\r\n");
	write_file(root, "cur/1700000002.M2P10.host:2,S", "Subject: two\r\n\r\ntwo\r\n");
	write_file(root, "cur/1700000003.M3P10.host:2,", "Subject: three\r\n\r\nthree\r\n");
	write_file(root, "new/1700000004.M4P10.host", "Subject: four\r\n\r\nfour\r\n");
	write_file(root, ".Sub/cur/1700000005.M5P10.host:2,F", "Subject: five\r\n\r\nfive\r\n");
	write_file(root, ".Sub/maildirfolder", "");
}

/* root's INBOX and Sub hold inbox and sub files. */
static void assert_file_counts(const char *root, size_t inbox, size_t sub)
{
	size_t n;
	char **files = folder_files(root, "", &n);
	ck_assert_msg(n == inbox, "%s: %zu files in INBOX, expected %zu", root, n, inbox);
	free_strs(files, n);
	files = folder_files(root, ".Sub", &n);
	ck_assert_msg(n == sub, "%s: %zu files in Sub, expected %zu", root, n, sub);
	free_strs(files, n);
}

START_TEST(merge_plain_maildirs)
{
	char *top = tmp_dir();
	char *a = tmp_path(top, "a"), *b = tmp_path(top, "b");
	plain_maildir(a);
	ck_assert_int_eq(run_sh(NULL, "cp -a '%s' '%s'", a, b), 0);
	/* one: a adds \Flagged, b adds \Answered */
	rename_in(a, "cur/1700000001.M1P10.host:2,S", "cur/1700000001.M1P10.host:2,FS");
	rename_in(b, "cur/1700000001.M1P10.host:2,S", "cur/1700000001.M1P10.host:2,RS");
	/* two: a removes \Seen, b adds \Deleted */
	rename_in(a, "cur/1700000002.M2P10.host:2,S", "cur/1700000002.M2P10.host:2,");
	rename_in(b, "cur/1700000002.M2P10.host:2,S", "cur/1700000002.M2P10.host:2,ST");
	/* a new file on each side */
	write_file(a, "cur/1700000006.M6P10.host:2,S", "Subject: six\r\n\r\nsix, only in a\r\n");
	write_file(b, "new/1700000007.M7P11.host", "Subject: seven\r\n\r\nseven, only in b\r\n");
	write_file(b, ".Sub/new/1700000008.M8P11.host", "Subject: eight\r\n\r\neight, only in b\r\n");
	/* three: deleted in b (before either side became a store: nothing
	 * tells a deletion from a message b never had) */
	char *three = tmp_path(b, "cur/1700000003.M3P10.host:2,");
	ck_assert_int_eq(unlink(three), 0);
	free(three);

	struct mcrdt_sync_stats st;
	OK(mcrdt_merge(a, b, NULL, &st));

	/* both end identical, every message once, flags merged per flag */
	mcrdt_store *sa = open_named(a, "a"), *sbs = open_named(b, "b");
	assert_same("merged Maildirs", sa, a, sbs, b);
	static const struct {
		const char *folder, *base, *flags;
	} want[] = {
		{ "", "1700000001.M1P10.host", ":2,FRS" },
		{ "", "1700000002.M2P10.host", ":2,ST" },
		{ "", "1700000003.M3P10.host", NULL },
		{ "", "1700000004.M4P10.host", NULL },
		{ "", "1700000006.M6P10.host", ":2,S" },
		{ "", "1700000007.M7P11.host", NULL },
		{ ".Sub", "1700000005.M5P10.host", ":2,F" },
		{ ".Sub", "1700000008.M8P11.host", NULL },
	};
	const char *roots[2] = { a, b };
	for (int r = 0; r < 2; r++) {
		assert_file_counts(roots[r], 6, 2);
		for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
			char suffix[64] = "";
			size_t c = find_base(roots[r], want[i].folder, want[i].base, suffix, sizeof suffix);
			ck_assert_msg(c == 1, "%s: %s/%s found %zu times", roots[r], want[i].folder, want[i].base, c);
			if (want[i].flags)
				ck_assert_msg(strcmp(suffix, want[i].flags) == 0, "%s: %s has flags \"%s\", expected \"%s\"",
					      roots[r], want[i].base, suffix, want[i].flags);
		}
	}
	struct row row;
	ck_assert(find_body(sa, "INBOX", "Subject: one\r\n\r\none\r\n", &row));
	ck_assert_str_eq(row.flags, "\\Seen,\\Answered,\\Flagged");
	free(row.flags);
	free(row.body);
	ck_assert(find_body(sbs, "Sub", "Subject: eight\r\n\r\neight, only in b\r\n", NULL));
	ck_assert_uint_eq(count_body(sbs, "Subject: three\r\n\r\nthree\r\n"), 1);
	mcrdt_store_close(sa);
	mcrdt_store_close(sbs);
	/* merging again changes nothing */
	OK(mcrdt_merge(b, a, NULL, &st));
	ck_assert_uint_eq(st.ops_received, 0);
	free(a);
	free(b);
	rm_tree(top);
}
END_TEST

/* Two stores that imported copies of one Maildir whose directories had
 * not changed for an hour, and closed: the next handles trust the kept
 * listings of the quiet folders without reading them in, and the sync
 * must still find every file name already there (no message doubled, no
 * name taken twice). */
START_TEST(imported_copies_of_a_quiet_maildir)
{
	char *top = tmp_dir();
	char *a = tmp_path(top, "a"), *b = tmp_path(top, "b");
	plain_maildir(a);
	ck_assert_int_eq(run_sh(NULL, "cp -a '%s' '%s' && touch -d '1 hour ago' '%s'/cur '%s'/new '%s'/.Sub/cur '%s'/.Sub/new "
				 "'%s'/cur '%s'/new '%s'/.Sub/cur '%s'/.Sub/new",
				 a, b, a, a, a, a, b, b, b, b),
			 0);
	mcrdt_store_close(open_named(a, "a"));
	mcrdt_store_close(open_named(b, "b"));
	mcrdt_store *sa = open_named(a, "a");
	struct mcrdt_sync_stats st;
	OK(mcrdt_sync(sa, b, NULL, &st));
	ck_assert_uint_eq(st.duplicates, 5);
	mcrdt_store *sbs = open_named(b, "b");
	assert_same("imported copies after a sync", sa, a, sbs, b);
	const char *roots[2] = { a, b };
	for (int r = 0; r < 2; r++)
		assert_file_counts(roots[r], 4, 1);
	ck_assert_uint_eq(count_body(sa, "Subject: four\r\n\r\nfour\r\n"), 1);
	ck_assert_uint_eq(count_body(sbs, "Subject: five\r\n\r\nfive\r\n"), 1);
	mcrdt_store_close(sa);
	mcrdt_store_close(sbs);
	free(a);
	free(b);
	rm_tree(top);
}
END_TEST

static uint64_t replica_of(mcrdt_store *s)
{
	struct mcrdt_store_info in;
	OK(mcrdt_store_info(s, &in));
	return in.replica;
}

/* Three replicas that each imported a copy of one Maildir (a restored
 * backup, an rsync copy) meet. Each message stays once and keeps the UID
 * it was imported under on every replica: the copies kept are those of the
 * replica whose mailboxes lead the merged views (here the one imported
 * last, with the highest UIDVALIDITY), so its clients see nothing change
 * at all, and the others see only a new UIDVALIDITY (their mailboxes were
 * created apart), never a UID move. */
START_TEST(imported_copies_keep_their_uids)
{
	char *top = tmp_dir();
	char *src = tmp_path(top, "src");
	plain_maildir(src);
	write_file(src, ".Sub/cur/1700000006.M6P10.host:2,S", "Subject: six\r\n\r\nsix\r\n");
	static const char *const names[3] = { "a", "b", "c" };
	char *dirs[3], *before[3];
	mcrdt_store *s[3];
	for (int i = 0; i < 3; i++) {
		/* Imported at different times, as in life: UIDVALIDITY is the
		 * clock's second, one more for each further mailbox of an import,
		 * and every known UID space keeps a value of its own (a view that
		 * changes spaces shows a higher one). Two seconds apart, no
		 * replica's values overlap another's. */
		if (i)
			sleep(2);
		dirs[i] = tmp_path(top, names[i]);
		for (;;) {
			ck_assert_int_eq(run_sh(NULL, "cp -a '%s' '%s'", src, dirs[i]), 0);
			s[i] = open_named(dirs[i], names[i]);
			/* c's replica id (the first half of its GUIDs) is not the
			 * smallest: a rule that kept the copy with the smaller
			 * GUID would drop c's (and move UIDs) every time. */
			if (i < 2 || replica_of(s[2]) > replica_of(s[0]) || replica_of(s[2]) > replica_of(s[1]))
				break;
			mcrdt_store_close(s[i]);
			rm_tree(strdup(dirs[i])); /* (frees its argument) */
		}
		before[i] = render(s[i], dirs[i]);
	}
	static const char *const boxes[2] = { "INBOX", "Sub" };
	for (int k = 0; k < 2; k++) {
		struct mcrdt_status st[3];
		for (int i = 0; i < 3; i++)
			OK(mcrdt_mailbox_status(s[i], boxes[k], &st[i]));
		ck_assert_msg(st[0].uidvalidity < st[1].uidvalidity && st[1].uidvalidity < st[2].uidvalidity,
			      "%s: UIDVALIDITY %u, %u, %u: not imported in order", boxes[k], st[0].uidvalidity,
			      st[1].uidvalidity, st[2].uidvalidity);
		ck_assert_uint_eq(st[0].messages, k ? 2 : 4);
	}
	/* a with b, then c with b (b brings a's copies to c), then a with c */
	static const int pairs[3][2] = { { 0, 1 }, { 2, 1 }, { 0, 2 } };
	uint64_t dups = 0;
	for (int p = 0; p < 3; p++) {
		int x = pairs[p][0], y = pairs[p][1];
		struct mcrdt_sync_stats st;
		OK(mcrdt_sync(s[x], dirs[y], NULL, &st));
		ck_assert_msg(st.uid_moves == 0, "sync of %s with %s moved %" PRIu64 " UIDs", names[x], names[y],
			      st.uid_moves);
		dups += st.duplicates;
		assert_same("right after a two-way sync", s[x], dirs[x], s[y], dirs[y]);
	}
	ck_assert_msg(dups > 0, "no copies merged");
	/* every replica now shows exactly what c showed after its import:
	 * the same messages, once each, under the same UIDs and UIDVALIDITY */
	for (int i = 0; i < 3; i++) {
		char *now = render(s[i], dirs[i]);
		assert_same_text(names[i], before[2], now);
		free(now);
	}
	for (int i = 0; i < 3; i++) {
		mcrdt_store_close(s[i]);
		free(before[i]);
		free(dirs[i]);
	}
	free(src);
	rm_tree(top);
}
END_TEST

/* ---- 4. untrusted peer input ---- */

static char *hex_of(mcrdt_store *s)
{
	char *h = NULL;
	ck_assert_int_ge(asprintf(&h, "%016" PRIx64, replica_of(s)), 0);
	return h;
}

/* The message of the last sync_refused. */
static char g_refused[1024];

/* The sync of s with hub fails with want (0: any error) and s is as before. */
static void sync_refused(mcrdt_store *s, const char *dir, const char *hub, int want, const char *what)
{
	char *before = render(s, dir);
	struct mcrdt_store_info i0, i1;
	OK(mcrdt_store_info(s, &i0));
	mcrdt_error_clear();
	int rc = mcrdt_sync(s, hub, NULL, NULL);
	const char *msg = mcrdt_error_last();
	if (want)
		ck_assert_msg(rc == want, "%s: sync gave %d (%s), expected %d", what, rc, msg ? msg : "", want);
	else
		ck_assert_msg(rc < 0, "%s: sync gave %d (%s), expected an error", what, rc, msg ? msg : "");
	ck_assert_msg(msg && *msg, "%s: no error message", what);
	fprintf(stderr, "%s: refused as expected: %d %s\n", what, rc, msg);
	snprintf(g_refused, sizeof g_refused, "%s", msg);
	char *after = render(s, dir);
	assert_same_text(what, before, after);
	OK(mcrdt_store_info(s, &i1));
	ck_assert_uint_eq(i1.messages, i0.messages);
	ck_assert_uint_eq(i1.pending, i0.pending);
	free(before);
	free(after);
}

/* The .pack files of repository git, one per line. */
static char *packs_of(const char *gitdir)
{
	char *o = NULL;
	ck_assert_int_eq(run_sh(&o, "ls '%s'/objects/pack/*.pack 2>/dev/null | sort", gitdir), 0);
	return o;
}

START_TEST(untrusted_blob_ref)
{
	struct fx f;
	fx_open(&f, 2);
	add_plain(f.s[1], "INBOX", "Subject: b\r\n\r\nb\r\n");
	sync_hub_all(f.s, f.dirs, 2, f.hub, 6);
	add_plain(f.s[0], "INBOX", "Subject: local\r\n\r\nnot yet published\r\n");
	ck_assert_int_eq(run_sh(NULL,
				"b=$(echo 'not a commit' | git --git-dir='%s' hash-object -w --stdin) && "
				"git --git-dir='%s' update-ref refs/mcrdt/0123456789abcdef $b",
				f.hub, f.hub),
			 0);
	sync_refused(f.s[0], f.dirs[0], f.hub, MCRDT_ECORRUPT, "a ref naming a blob");
	ck_assert_int_eq(run_sh(NULL, "git --git-dir='%s' update-ref -d refs/mcrdt/0123456789abcdef", f.hub), 0);
	OK(mcrdt_sync(f.s[0], f.hub, NULL, NULL));
	sync_hub_all(f.s, f.dirs, 2, f.hub, 6);
	ck_assert_uint_eq(count_body(f.s[1], "Subject: local\r\n\r\nnot yet published\r\n"), 1);
	fx_close(&f);
}
END_TEST

START_TEST(untrusted_corrupt_pack)
{
	struct fx f;
	fx_open(&f, 2);
	sync_hub_all(f.s, f.dirs, 2, f.hub, 6);
	char *p0 = packs_of(f.hub);
	/* b publishes a new message: a new pack on the hub */
	char big[8192];
	snprintf(big, sizeof big, "Subject: big\r\n\r\n");
	for (size_t i = strlen(big); i < sizeof big - 3; i++)
		big[i] = (char)('a' + (i * 7) % 26);
	big[sizeof big - 3] = '\r';
	big[sizeof big - 2] = '\n';
	big[sizeof big - 1] = '\0';
	add_plain(f.s[1], "INBOX", big);
	OK(mcrdt_sync(f.s[1], f.hub, NULL, NULL));
	char *p1 = packs_of(f.hub);
	/* the packs that are new */
	char *target = NULL;
	for (char *line = strtok(p1, "\n"); line; line = strtok(NULL, "\n"))
		if (!strstr(p0, line))
			target = line;
	ck_assert_msg(target != NULL, "no new pack on the hub:\n%s", p1);
	char *saved = NULL;
	ck_assert_int_ge(asprintf(&saved, "%s.saved", target), 0);
	ck_assert_int_eq(run_sh(NULL, "cp -p '%s' '%s' && chmod u+w '%s'", target, saved, target), 0);
	int fd = open(target, O_RDWR);
	ck_assert_int_ge(fd, 0);
	struct stat sb;
	ck_assert_int_eq(fstat(fd, &sb), 0);
	for (off_t off = 12; off < sb.st_size - 20; off += sb.st_size / 7) {
		unsigned char c;
		ck_assert_int_eq(pread(fd, &c, 1, off), 1);
		c ^= 0xa5;
		ck_assert_int_eq(pwrite(fd, &c, 1, off), 1);
	}
	close(fd);
	sync_refused(f.s[0], f.dirs[0], f.hub, 0, "a damaged pack on the hub");
	ck_assert_int_eq(count_body(f.s[0], big), 0);
	/* the pack repaired, the sync goes through */
	ck_assert_int_eq(rename(saved, target), 0);
	OK(mcrdt_sync(f.s[0], f.hub, NULL, NULL));
	ck_assert_int_eq(count_body(f.s[0], big), 1);
	sync_hub_all(f.s, f.dirs, 2, f.hub, 6);
	free(saved);
	free(p0);
	free(p1);
	fx_close(&f);
}
END_TEST

START_TEST(untrusted_body_size)
{
	struct fx f;
	fx_open(&f, 2);
	sync_hub_all(f.s, f.dirs, 2, f.hub, 6);
	const char *m = "Subject: genuine\r\n\r\nthe genuine body\r\n";
	add_plain(f.s[1], "INBOX", m);
	OK(mcrdt_sync(f.s[1], f.hub, NULL, NULL));
	char *bh = hex_of(f.s[1]);
	char *orig = NULL;
	ck_assert_int_eq(run_sh(&orig, "git --git-dir='%s' rev-parse refs/mcrdt/%s", f.hub, bh), 0);
	orig[strcspn(orig, "\n")] = '\0';
	/* the same commit, its bodies/<C> blobs replaced by longer bytes */
	char *o = NULL;
	int st = run_sh(&o,
			"set -e; G='git --git-dir=%s'; c=%s; "
			"t=$($G rev-parse $c^{tree}); "
			"bt=$($G ls-tree $t | awk '$4==\"bodies\" {print $3}'); test -n \"$bt\"; "
			"x=$(printf 'Subject: forged\\r\\n\\r\\na forged body of another size\\r\\n' | $G hash-object -w --stdin); "
			"nbt=$($G ls-tree $bt | awk -v x=$x '{printf \"%%s %%s %%s\\t%%s\\n\", $1, $2, x, $4}' | $G mktree); "
			"nt=$($G ls-tree $t | awk -v n=$nbt '{ if ($4==\"bodies\") $3=n; printf \"%%s %%s %%s\\t%%s\\n\", $1, $2, $3, $4}' | $G mktree); "
			"p=$($G log -n1 --format=%%P $c); "
			"$G cat-file commit $c | sed '1,/^$/d' > '%s/msg'; "
			"nc=$($G commit-tree $nt ${p:+-p $p} < '%s/msg'); "
			"$G update-ref refs/mcrdt/%s $nc; echo $nc",
			f.hub, orig, f.top, f.top, bh);
	ck_assert_msg(st == 0, "forging a commit: %s", o);
	free(o);
	sync_refused(f.s[0], f.dirs[0], f.hub, MCRDT_ECORRUPT, "a body whose size disagrees with its op");
	ck_assert_int_eq(count_body(f.s[0], m), 0);
	/* the genuine commit back: the sync resumes */
	ck_assert_int_eq(run_sh(NULL, "git --git-dir='%s' update-ref refs/mcrdt/%s %s", f.hub, bh, orig), 0);
	OK(mcrdt_sync(f.s[0], f.hub, NULL, NULL));
	ck_assert_int_eq(count_body(f.s[0], m), 1);
	sync_hub_all(f.s, f.dirs, 2, f.hub, 6);
	free(orig);
	free(bh);
	fx_close(&f);
}
END_TEST

/* The names in dir, one string. */
static char *listing(const char *dir)
{
	char *o = NULL;
	ck_assert_int_eq(run_sh(&o, "ls -A '%s' | sort", dir), 0);
	return o;
}

START_TEST(untrusted_mailbox_name)
{
	struct fx f;
	fx_open(&f, 1);
	OK(mcrdt_sync(f.s[0], f.hub, NULL, NULL));
	char *opsfile = tmp_path(f.top, "ops.bin");
	write_file(f.top, "ops.bin", "");
	char *top_before = listing(f.top);
	char *parent_before = NULL;
	char *parent = strdup(f.top);
	*strrchr(parent, '/') = '\0';
	parent_before = listing(parent);
	static const char *const names[] = { "../x", "a/../../b", "../../../tmp/mcrdt-escape", "..", "x/..", "/abs" };
	for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
		uint64_t rid = UINT64_C(0x5eed000000000100) + i;
		crdt_op op;
		crdt_op_init(&op, CRDT_OP_MBOX_CREATE);
		op.id.replica = rid;
		op.id.counter = 1;
		op.uidvalidity = 777;
		OK(crdt_op_set_name(&op, names[i], strlen(names[i])));
		struct sync_buf buf = { NULL, 0, 0, 0 };
		int rc = sync_encode_record(&buf, &op);
		crdt_op_free(&op);
		ck_assert_msg(rc == 0, "encoding a create of %s: %d", names[i], rc);
		FILE *fp = fopen(opsfile, "wb");
		ck_assert_ptr_nonnull(fp);
		ck_assert_uint_eq(fwrite(buf.p, 1, buf.len, fp), buf.len);
		ck_assert_int_eq(fclose(fp), 0);
		sync_buf_free(&buf);
		char *o = NULL;
		int st = run_sh(&o,
				"set -e; G='git --git-dir=%s'; b=$($G hash-object -w '%s'); "
				"t=$(printf '100644 blob %%s\\tops\\n' $b | $G mktree); "
				"c=$(printf 'mcrdt %016" PRIx64 " 1 1\\nlog 0\\n' | $G commit-tree $t); "
				"$G update-ref refs/mcrdt/%016" PRIx64 " $c",
				f.hub, opsfile, rid, rid);
		ck_assert_msg(st == 0, "crafting the commit: %s", o);
		free(o);
		char what[96];
		snprintf(what, sizeof what, "a peer's mailbox named \"%s\"", names[i]);
		sync_refused(f.s[0], f.dirs[0], f.hub, MCRDT_ECORRUPT, what);
		char *tb = listing(f.top), *pb = listing(parent);
		assert_same_text("the test's directory", top_before, tb);
		assert_same_text("the directory above", parent_before, pb);
		free(tb);
		free(pb);
		ck_assert_msg(access("/tmp/mcrdt-escape", F_OK) != 0, "/tmp/mcrdt-escape was created");
		ck_assert_int_eq(run_sh(NULL, "git --git-dir='%s' update-ref -d refs/mcrdt/%016" PRIx64, f.hub, rid), 0);
	}
	/* with the bad refs gone the hub is usable again */
	OK(mcrdt_sync(f.s[0], f.hub, NULL, NULL));
	free(opsfile);
	free(top_before);
	free(parent_before);
	free(parent);
	fx_close(&f);
}
END_TEST

/* A file (or a link) holds the name of the folder a peer's new mailbox
 * needs: the sync is refused with a message naming it, and the replica
 * goes on as before (no mailbox half made, no journal left to block every
 * call, no scan that takes the missing folder for a deletion and sends
 * that to every replica). A local CREATE there is refused too. Once the
 * file is moved (an empty directory left in its place), the sync goes
 * through and the peer keeps its mailbox. */
START_TEST(a_file_where_a_peer_folder_goes)
{
	struct fx f;
	fx_open(&f, 2);
	OK(mcrdt_mailbox_create(f.s[0], "Foo"));
	add_plain(f.s[0], "Foo", "Subject: foo\r\n\r\nin Foo\r\n");
	OK(mcrdt_sync(f.s[0], f.hub, NULL, NULL));
	static const char *const kinds[] = { "file", "symbolic link" };
	char *in_way = tmp_path(f.dirs[1], ".Foo");
	for (int k = 0; k < 2; k++) {
		if (k == 0)
			write_file(f.dirs[1], ".Foo", "not a folder\n");
		else
			ck_assert_int_eq(symlink("cur", in_way), 0);
		sync_refused(f.s[1], f.dirs[1], f.hub, MCRDT_EIO, kinds[k]);
		ck_assert_msg(strstr(g_refused, "/r1/.Foo,") && strstr(g_refused, kinds[k]),
			      "the message names neither the path nor what is there: %s", g_refused);
		/* Usable as before, and still without Foo. */
		add_plain(f.s[1], "INBOX", k ? "Subject: b1\r\n\r\nsecond\r\n" : "Subject: b0\r\n\r\nfirst\r\n");
		ck_assert_int_eq(mcrdt_mailbox_create(f.s[1], "Foo"), MCRDT_EIO);
		struct mcrdt_scan_report rep;
		OK(mcrdt_store_scan(f.s[1], &rep));
		ck_assert_uint_eq(rep.folders_removed, 0);
		ck_assert(!exists(f.s[1], "Foo"));
		ck_assert_int_eq(unlink(in_way), 0);
	}
	/* An empty directory there (another tool's, or a crash inside a
	 * create) is made a whole folder. */
	ck_assert_int_eq(mkdir(in_way, 0700), 0);
	OK(mcrdt_sync(f.s[1], f.hub, NULL, NULL));
	ck_assert(find_body(f.s[1], "Foo", "Subject: foo\r\n\r\nin Foo\r\n", NULL));
	struct mcrdt_scan_report rep;
	OK(mcrdt_store_scan(f.s[1], &rep));
	ck_assert_uint_eq(rep.folders_removed, 0);
	ck_assert_int_le(sync_hub_all(f.s, f.dirs, 2, f.hub, 4), 4);
	ck_assert(find_body(f.s[0], "Foo", "Subject: foo\r\n\r\nin Foo\r\n", NULL));
	ck_assert(find_body(f.s[0], "INBOX", "Subject: b1\r\n\r\nsecond\r\n", NULL));
	free(in_way);
	fx_close(&f);
}
END_TEST

/* The body of message i from replica who. */
static void kbody(char *out, size_t size, char who, int i)
{
	snprintf(out, size, "Subject: %c%d\r\n\r\nfrom %c, number %d, %0*d\r\n", who, i, who, i, 1 + i % 100, 0);
}

/* Entries in dir (not . and ..), -1 when it cannot be read. */
static int entries(const char *dir)
{
	DIR *d = opendir(dir);
	if (!d)
		return -1;
	int n = 0;
	struct dirent *e;
	while ((e = readdir(d)) != NULL)
		if (strcmp(e->d_name, ".") && strcmp(e->d_name, ".."))
			n++;
	closedir(d);
	return n;
}

/* Bytes in replica dir's log. */
static long long log_bytes(const char *dir)
{
	char *logdir = tmp_path(dir, "mcrdt/log"), p[4600];
	DIR *d = opendir(logdir);
	long long n = 0;
	struct dirent *e;
	struct stat st;
	while (d && (e = readdir(d)) != NULL) {
		snprintf(p, sizeof p, "%s/%s", logdir, e->d_name);
		if (e->d_name[0] != '.' && stat(p, &st) == 0)
			n += st.st_size;
	}
	if (d)
		closedir(d);
	free(logdir);
	return n;
}

/* Whether a sync into replica dir (whose log held log0 bytes) is putting
 * peers' message files in place: its journal is there and its ops are
 * logged, or a file it writes shows up in tmp/ (files a fetch unpacked
 * are moved in at the commit, not through tmp/). */
static bool delivering(const char *dir, const char *tmpdir, const char *journal, long long log0)
{
	return entries(tmpdir) > 0 || (access(journal, F_OK) == 0 && log_bytes(dir) > log0);
}

/*
 * The deterministic form of killed_sync: `mcrdt sync` is killed the moment
 * it has begun putting peers' message files in place, i.e. after the ops
 * are logged and before the files are all there. The next open must finish
 * the delivery; no message may be lost, on either replica.
 */
START_TEST(killed_during_delivery)
{
	struct fx f;
	fx_open(&f, 2);
	sync_hub_all(f.s, f.dirs, 2, f.hub, 6);
	char body[256];
	int nb = 0;
	bool caught = false;
	char *tmpdir = tmp_path(f.dirs[0], "tmp"), *journal = tmp_path(f.dirs[0], "mcrdt/journal");
	mcrdt_store_close(f.s[0]);
	f.s[0] = NULL;
	for (int attempt = 0; attempt < 4 && !caught; attempt++) {
		for (int i = 0; i < 200; i++, nb++) {
			kbody(body, sizeof body, 'b', nb);
			add_plain(f.s[1], "INBOX", body);
		}
		OK(mcrdt_sync(f.s[1], f.hub, NULL, NULL));
		long long log0 = log_bytes(f.dirs[0]);
		pid_t pid = fork();
		ck_assert_int_ge(pid, 0);
		if (pid == 0) {
			int out = open("/dev/null", O_WRONLY);
			if (out >= 0) {
				dup2(out, 1);
				dup2(out, 2);
			}
			execl(MCRDT_BIN, "mcrdt", "sync", f.dirs[0], f.hub, "--quiet", (char *)NULL);
			_exit(127);
		}
		int st = 0;
		for (;;) {
			if (delivering(f.dirs[0], tmpdir, journal, log0)) {
				kill(pid, SIGKILL);
				break;
			}
			if (waitpid(pid, &st, WNOHANG) == pid)
				break;
		}
		/* (already reaped when it finished before a file showed up) */
		if (waitpid(pid, &st, 0) == pid)
			caught = WIFSIGNALED(st);
		ck_assert_msg(WIFSIGNALED(st) || (WIFEXITED(st) && WEXITSTATUS(st) == 0),
			      "the sync to be killed failed on its own (status %d)", st);
	}
	fprintf(stderr, "killed_during_delivery: %s, %d files left in tmp/\n",
		caught ? "killed while delivering" : "never caught delivering", entries(tmpdir));
	ck_assert_msg(caught, "no sync was killed while delivering (four tries): nothing was tested");
	f.s[0] = open_named(f.dirs[0], "r0");
	OK(mcrdt_sync(f.s[0], f.hub, NULL, NULL));
	sync_hub_all(f.s, f.dirs, 2, f.hub, 6);
	for (int r = 0; r < 2; r++) {
		size_t n;
		struct row *rows = rows_of(f.s[r], "INBOX", &n);
		ck_assert_msg(n == (size_t)nb, "r%d: %zu messages, %d delivered to r1 (a sync killed while writing files "
					      "lost mail)",
			      r, n, nb);
		rows_free(rows, n);
	}
	free(tmpdir);
	free(journal);
	fx_close(&f);
}
END_TEST

/* fdatasync fails while armed (the log's; linked with --wrap=fdatasync). */
static volatile int fail_datasync;
int __real_fdatasync(int fd);
int __wrap_fdatasync(int fd);

/* -1 with errno EIO while *armed is 1, else 0 (then the wrapper calls the
 * real function); an *armed of n > 1 lets n - 1 calls through first. */
static int fails(volatile int *armed)
{
	if (!*armed)
		return 0;
	if (*armed > 1) {
		(*armed)--;
		return 0;
	}
	errno = EIO;
	return -1;
}

int __wrap_fdatasync(int fd)
{
	return fails(&fail_datasync) ? -1 : __real_fdatasync(fd);
}

/* r1 delivers m and syncs to the hub; r0, reopened durable (its log and
 * Maildir sync), syncs with *armed set, which must fail the sync. *armed
 * stays set. */
static void apply_fails(struct fx *f, const char *m, volatile int *armed)
{
	sync_hub_all(f->s, f->dirs, 2, f->hub, 6);
	add_plain(f->s[1], "INBOX", m);
	OK(mcrdt_sync(f->s[1], f->hub, NULL, NULL));
	mcrdt_store_close(f->s[0]);
	struct mcrdt_open_opts o = MCRDT_OPEN_OPTS_INIT;
	OK(mcrdt_store_open(&f->s[0], f->dirs[0], &o));
	*armed = 1;
	int rc = mcrdt_sync(f->s[0], f->hub, NULL, NULL);
	ck_assert_msg(rc != 0, "the sync went through a failing call: nothing was tested");
}

/* Reopens r0 (what it left unfinished runs at the open), syncs every
 * replica and checks that each holds want copies of m (what: else). */
static void reopen_converged(struct fx *f, const char *m, size_t want, const char *what)
{
	mcrdt_store_close(f->s[0]);
	f->s[0] = open_named(f->dirs[0], "r0");
	sync_hub_all(f->s, f->dirs, 2, f->hub, 6);
	for (int r = 0; r < 2; r++)
		ck_assert_msg(count_body(f->s[r], m) == want, "r%d %s", r, what);
}

/*
 * The log takes a peer's ops but its fdatasync fails: the ops are in the
 * log file all the same, and read back at the next open. Their files must
 * be put in place then; otherwise the next scan takes the missing files
 * for deletions and the sync sends them to every replica.
 */
START_TEST(log_sync_fails_during_apply)
{
	struct fx f;
	fx_open(&f, 2);
	const char *m = "Subject: kept\r\n\r\nmust not be lost\r\n";
	apply_fails(&f, m, &fail_datasync);
	fail_datasync = 0;
	mcrdt_store_close(f.s[0]);
	f.s[0] = open_named(f.dirs[0], "r0");
	ck_assert_uint_eq(count_body(f.s[0], m), 1);
	sync_hub_all(f.s, f.dirs, 2, f.hub, 6);
	for (int r = 0; r < 2; r++)
		ck_assert_msg(count_body(f.s[r], m) == 1, "r%d lost the message", r);
	fx_close(&f);
}
END_TEST

/* syncfs fails while armed (a Maildir batch's one data sync; linked with
 * --wrap=syncfs). */
static volatile int fail_syncfs;
int __real_syncfs(int fd);
int __wrap_syncfs(int fd);
int __wrap_syncfs(int fd)
{
	return fails(&fail_syncfs) ? -1 : __real_syncfs(fd);
}

/*
 * A sync's apply fails after its ops were logged (the Maildir's data sync
 * fails), and the same handle then expunges the message that apply was
 * to deliver. The journal must be carried out before the expunge, not at
 * the next open after it: otherwise its file arrives after the expunge,
 * and the next scan imports it as a new message on every replica. Until
 * it can be, every handle, one opened since included, reads and refuses
 * changes.
 */
START_TEST(failed_apply_finishes_before_the_next_change)
{
	struct fx f;
	fx_open(&f, 2);
	const char *m = "Subject: expunged\r\n\r\nmust stay expunged\r\n";
	apply_fails(&f, m, &fail_syncfs);
	uint32_t uid = uid_of(f.s[1], "INBOX", m);
	/* While the journal cannot be carried out, reads go on, changes wait. */
	struct mcrdt_status st;
	OK(mcrdt_mailbox_status(f.s[0], "INBOX", &st));
	ck_assert_uint_eq(st.messages, 1);
	mcrdt_mailbox *mb = sel(f.s[0], "INBOX");
	char set[16];
	snprintf(set, sizeof set, "%u", uid);
	ck_assert_int_ne(mcrdt_expunge(mb, set, MCRDT_EXPUNGE_ANY, NULL, NULL), 0);
	mcrdt_mailbox_close(mb);
	/* So on a handle opened meanwhile (a server restarted): it opens. */
	mcrdt_store *later = NULL;
	OK(mcrdt_store_open(&later, f.dirs[0], NULL));
	OK(mcrdt_mailbox_status(later, "INBOX", &st));
	ck_assert_uint_eq(st.messages, 1);
	mb = sel(later, "INBOX");
	ck_assert_int_ne(mcrdt_expunge(mb, set, MCRDT_EXPUNGE_ANY, NULL, NULL), 0);
	mcrdt_mailbox_close(mb);
	mcrdt_store_close(later);
	fail_syncfs = 0;
	expunge_uid(f.s[0], "INBOX", uid);
	reopen_converged(&f, m, 0, "has the expunged message back");
	fx_close(&f);
}
END_TEST

/*
 * An apply whose deliveries span two batches of files fails at the nth
 * data sync (n = 1, 2, 3: at the first batch, at the second after the
 * first is in place, or not at all). The next open finishes it: every
 * delivery left gets its own body, though the ones in place before it
 * are skipped; one with a long base name and a keyword gets its name and
 * flags back from the journal.
 */
START_TEST(recovery_delivers_the_right_bodies)
{
	bool failed = false;
	for (int n = 1; n <= 3; n++) {
		struct fx f;
		fx_open(&f, 2);
		sync_hub_all(f.s, f.dirs, 2, f.hub, 6);
		char body[64], name[16];
		for (int k = 0; k < MD_BATCH_FOLDERS; k++) { /* one folder more than a batch takes */
			snprintf(name, sizeof name, "F%d", k);
			OK(mcrdt_mailbox_create(f.s[1], name));
			for (int i = 0; i < 3; i++) {
				snprintf(body, sizeof body, "Subject: %s m%d\r\n\r\n%d\r\n", name, i, i);
				add_plain(f.s[1], name, body);
			}
		}
		char longbase[233], file[300], suffix[64];
		memset(longbase, 'L', sizeof longbase - 1);
		longbase[sizeof longbase - 1] = '\0';
		snprintf(file, sizeof file, ".F0/cur/%s:2,S", longbase);
		const char *lm = "Subject: long\r\n\r\nlong\r\n";
		write_file(f.dirs[1], file, lm);
		struct mcrdt_scan_report rep;
		OK(mcrdt_store_scan(f.s[1], &rep));
		set_flags(f.s[1], "F0", uid_of(f.s[1], "F0", lm), MCRDT_FLAGS_ADD, "$Label1");
		OK(mcrdt_sync(f.s[1], f.hub, NULL, NULL));
		mcrdt_store_close(f.s[0]);
		struct mcrdt_open_opts o = MCRDT_OPEN_OPTS_INIT; /* durable: the Maildir is synced */
		OK(mcrdt_store_open(&f.s[0], f.dirs[0], &o));
		fail_syncfs = n;
		failed |= mcrdt_sync(f.s[0], f.hub, NULL, NULL) != 0;
		fail_syncfs = 0;
		mcrdt_store_close(f.s[0]);
		f.s[0] = open_named(f.dirs[0], "r0");
		for (int k = 0; k < MD_BATCH_FOLDERS; k++)
			for (int i = 0; i < 3; i++) {
				snprintf(body, sizeof body, "Subject: F%d m%d\r\n\r\n%d\r\n", k, i, i);
				ck_assert_msg(count_body(f.s[0], body) == 1, "sync %d failed: F%d m%d is there %zu times",
					      n, k, i, count_body(f.s[0], body));
			}
		ck_assert_uint_eq(count_body(f.s[0], lm), 1);
		ck_assert_uint_eq(find_base(f.dirs[0], ".F0", longbase, suffix, sizeof suffix), 1);
		ck_assert_msg(strcmp(suffix, ":2,Sa") == 0, "sync %d failed: the long name has %s", n, suffix);
		assert_same("after the recovery", f.s[0], f.dirs[0], f.s[1], f.dirs[1]);
		fx_close(&f);
	}
	ck_assert_msg(failed, "no sync failed: nothing was tested");
}
END_TEST

/* Notes each phase reported (once per change of phase) in a string;
 * cancels at the phase named in stop. */
struct phase_log {
	char seen[512];
	const char *stop;
};

static int log_phase(void *ctx, const char *phase, const struct mcrdt_sync_stats *st)
{
	(void)st;
	struct phase_log *l = ctx;
	size_t n = strlen(l->seen), pl = strlen(phase);
	bool same = n > pl && l->seen[n - pl - 1] == ' ' && strcmp(l->seen + n - pl, phase) == 0;
	if (!same && n + pl + 2 < sizeof l->seen)
		snprintf(l->seen + n, sizeof l->seen - n, " %s", phase);
	return l->stop && strcmp(phase, l->stop) == 0;
}

/* A sync through a hub reports its phases in order, maintenance (the
 * packs merged) last; cancelled there, what it applied stays. */
START_TEST(progress_names_each_phase)
{
	struct fx f;
	fx_open(&f, 2);
	add_plain(f.s[0], "INBOX", "Subject: p\r\n\r\nphases\r\n");
	OK(mcrdt_sync(f.s[0], f.hub, NULL, NULL));
	struct phase_log l = { "", NULL };
	struct mcrdt_sync_opts so = MCRDT_SYNC_OPTS_INIT;
	so.progress = log_phase;
	so.progress_ctx = &l;
	l.stop = "maintain";
	ck_assert_int_eq(mcrdt_sync(f.s[1], f.hub, &so, NULL), MCRDT_EIO);
	ck_assert_msg(strstr(mcrdt_error_last(), "cancelled"), "%s", mcrdt_error_last());
	ck_assert_str_eq(l.seen, " scan publish fetch apply push maintain");
	ck_assert_uint_eq(count_body(f.s[1], "Subject: p\r\n\r\nphases\r\n"), 1);
	add_plain(f.s[1], "INBOX", "Subject: q\r\n\r\nmore\r\n");
	l = (struct phase_log){ "", NULL };
	OK(mcrdt_sync(f.s[1], f.hub, &so, NULL));
	ck_assert_str_eq(l.seen, " scan publish fetch apply push maintain");
	fx_close(&f);
}
END_TEST

/* Deletes every message file of INBOX in the replica dir ctx (a mail
 * reader's expunge) when the sync starts to fetch: after its scan. */
static int delete_inbox(void *ctx, const char *phase, const struct mcrdt_sync_stats *st)
{
	(void)st;
	const char **dir = ctx;
	if (*dir && strcmp(phase, "fetch") == 0) {
		ck_assert_int_eq(run_sh(NULL, "rm -f '%s'/cur/* '%s'/new/*", *dir, *dir), 0);
		*dir = NULL;
	}
	return 0;
}

/*
 * A peer flags a message that another program deletes here while the sync
 * fetches: the flag change finds no file. The sync must not leave a step
 * that blocks every later open; the deletion replicates.
 */
START_TEST(file_gone_before_apply)
{
	struct fx f;
	fx_open(&f, 2);
	const char *m = "Subject: doomed\r\n\r\nflagged there, deleted here\r\n";
	add_plain(f.s[0], "INBOX", m);
	sync_hub_all(f.s, f.dirs, 2, f.hub, 6);
	set_flags(f.s[1], "INBOX", uid_of(f.s[1], "INBOX", m), MCRDT_FLAGS_ADD, "\\Flagged");
	OK(mcrdt_sync(f.s[1], f.hub, NULL, NULL));
	const char *dir = f.dirs[0];
	struct mcrdt_sync_opts so = MCRDT_SYNC_OPTS_INIT;
	so.progress = delete_inbox;
	so.progress_ctx = &dir;
	OK(mcrdt_sync(f.s[0], f.hub, &so, NULL));
	ck_assert_msg(dir == NULL, "the sync reported no progress: nothing was deleted");
	reopen_converged(&f, m, 0, "still has the message deleted on r0");
	fx_close(&f);
}
END_TEST

/* ---- a replica joining later ---- */

/* The files in the unpacked directory when the apply starts: their inodes
 * noted, every other one removed (so that its body is read ahead). */
struct unpacked_seen {
	const char *dir;
	ino_t ino[128];
	size_t n, removed;
};

static int note_unpacked(void *ctx, const char *phase, const struct mcrdt_sync_stats *st)
{
	(void)st;
	struct unpacked_seen *u = ctx;
	if (strcmp(phase, "apply") != 0 || u->n || u->removed)
		return 0;
	DIR *d = opendir(u->dir);
	ck_assert_ptr_nonnull(d);
	for (struct dirent *e; (e = readdir(d));) {
		char path[PATH_MAX];
		struct stat sb;
		snprintf(path, sizeof path, "%s/%s", u->dir, e->d_name);
		if (e->d_name[0] == '.' || stat(path, &sb) != 0)
			continue;
		if ((u->n + u->removed) % 2 && unlink(path) == 0)
			u->removed++;
		else if (u->n < sizeof u->ino / sizeof u->ino[0])
			u->ino[u->n++] = sb.st_ino;
	}
	closedir(d);
	return 0;
}

/* How many message files in folder dir (cur/ and new/) are one of u's. */
static size_t moved_from(const struct unpacked_seen *u, const char *dir)
{
	size_t c = 0;
	for (int k = 0; k < 2; k++) {
		char sub[PATH_MAX];
		snprintf(sub, sizeof sub, "%s/%s", dir, k ? "new" : "cur");
		DIR *d = opendir(sub);
		ck_assert_ptr_nonnull(d);
		for (struct dirent *e; (e = readdir(d));)
			for (size_t i = 0; i < u->n && e->d_name[0] != '.'; i++)
				c += e->d_ino == u->ino[i];
		closedir(d);
	}
	return c;
}

/*
 * A fetch from a hub on this machine leaves the bodies it checked as files
 * that the apply moves into the Maildir instead of inflating them again;
 * those that are not there are read ahead as before (here every other one
 * is removed before the apply). A file a killed sync left there is never
 * taken for a body (here: a body's id and size, other bytes), a body two
 * messages share reaches both, and nothing stays behind.
 */
START_TEST(bodies_the_fetch_unpacked)
{
	struct fx f;
	fx_open(&f, 2);
	sync_hub_all(f.s, f.dirs, 2, f.hub, 6);
	const char *shared = "Subject: shared\r\n\r\nthe same bytes twice\r\n";
	OK(mcrdt_mailbox_create(f.s[1], "Archive"));
	add_plain(f.s[1], "INBOX", shared);
	add_plain(f.s[1], "Archive", shared);
	char body[64];
	enum { N = 60 }; /* half of them, more than the least worth reading ahead */
	for (int i = 0; i < N; i++) {
		kbody(body, sizeof body, 'b', i);
		add_plain(f.s[1], "INBOX", body);
	}
	OK(mcrdt_sync(f.s[1], f.hub, NULL, NULL));
	char *forged = strdup(shared), *dir = NULL, *hex = NULL, *archive = NULL;
	forged[10] = 'X';
	ck_assert_int_ge(asprintf(&dir, "%s/mcrdt/git/unpacked", f.dirs[0]), 0);
	ck_assert_int_eq(run_sh(&hex, "printf '%%s' '%s' | git hash-object --stdin | tr -d '\\n'", shared), 0);
	ck_assert_int_eq(run_sh(NULL, "mkdir -p '%s' && printf '%%s' '%s' > '%s/%s'", dir, forged, dir, hex), 0);
	struct unpacked_seen u = { dir, { 0 }, 0, 0 };
	struct mcrdt_sync_opts so = MCRDT_SYNC_OPTS_INIT;
	so.progress = note_unpacked;
	so.progress_ctx = &u;
	OK(mcrdt_sync(f.s[0], f.hub, &so, NULL));
	ck_assert_uint_ge(u.removed, N / 2 - 1);
	ck_assert_int_ge(asprintf(&archive, "%s/.Archive", f.dirs[0]), 0);
	size_t moved = moved_from(&u, f.dirs[0]) + moved_from(&u, archive);
	ck_assert_msg(moved >= N / 2 - 2, "%zu message files were moved in", moved);
	ck_assert_uint_eq(count_body(f.s[0], shared), 2);
	ck_assert_uint_eq(count_body(f.s[0], forged), 0);
	for (int i = 0; i < N; i++) {
		kbody(body, sizeof body, 'b', i);
		ck_assert_uint_eq(count_body(f.s[0], body), 1);
	}
	ck_assert_int_eq(entries(dir), 0);
	sync_hub_all(f.s, f.dirs, 2, f.hub, 6);
	assert_same("after the sync", f.s[0], f.dirs[0], f.s[1], f.dirs[1]);
	free(forged);
	free(dir);
	free(hex);
	free(archive);
	fx_close(&f);
}
END_TEST

/*
 * Adding a replica (a new store, synced with the hub) must not change
 * INBOX for the replicas already in use: UIDVALIDITY is "stable for the
 * mailbox's life" (DESIGN.md, IMAP view), and IMAP clients must see no
 * UIDVALIDITY churn and no UID naming another message.
 */
START_TEST(join_keeps_uidvalidity)
{
	struct fx f;
	fx_open(&f, 1);
	const char *bodies[] = { "Subject: 1\r\n\r\none\r\n", "Subject: 2\r\n\r\ntwo\r\n", "Subject: 3\r\n\r\nthree\r\n" };
	for (int i = 0; i < 3; i++)
		add_plain(f.s[0], "INBOX", bodies[i]);
	OK(mcrdt_sync(f.s[0], f.hub, NULL, NULL));
	mcrdt_mailbox *mb = sel(f.s[0], "INBOX");
	struct mcrdt_select_info si0;
	OK(mcrdt_mailbox_info(mb, &si0));
	size_t n0;
	struct row *r0 = rows_of(f.s[0], "INBOX", &n0);
	ck_assert_uint_eq(n0, 3);
	sleep(1); /* the new replica is set up a little later, as in real life */
	char *jdir = tmp_path(f.top, "joiner");
	mcrdt_store *j = open_named(jdir, "joiner");
	OK(mcrdt_sync(j, f.hub, NULL, NULL));
	OK(mcrdt_sync(f.s[0], f.hub, NULL, NULL));
	struct mcrdt_sync sy;
	memset(&sy, 0, sizeof sy);
	mcrdt_error_clear();
	int rc = mcrdt_mailbox_sync(mb, &sy);
	ck_assert_msg(rc == 0, "the selected INBOX after a replica joined: %d (%s)", rc, mcrdt_error_last());
	ck_assert_msg(!sy.uidvalidity_changed, "INBOX was replaced when a new replica joined (UIDVALIDITY %u)",
		      si0.uidvalidity);
	mcrdt_sync_free(&sy);
	mcrdt_mailbox_close(mb);
	struct mcrdt_status st;
	OK(mcrdt_mailbox_status(f.s[0], "INBOX", &st));
	ck_assert_msg(st.uidvalidity == si0.uidvalidity, "INBOX UIDVALIDITY %u became %u when a new replica joined",
		      si0.uidvalidity, st.uidvalidity);
	size_t n1;
	struct row *r1 = rows_of(f.s[0], "INBOX", &n1);
	ck_assert_uint_eq(n1, n0);
	for (size_t i = 0; i < n0; i++)
		ck_assert_msg(r1[i].uid == r0[i].uid && strcmp(r1[i].guid, r0[i].guid) == 0,
			      "UID %u was message %s, now UID %u is %s", r0[i].uid, r0[i].guid, r1[i].uid, r1[i].guid);
	rows_free(r0, n0);
	rows_free(r1, n1);
	mcrdt_store_close(j);
	free(jdir);
	fx_close(&f);
}
END_TEST

/* ---- 5. a sync killed at random moments ---- */

/* A sync killed while it moved a ref in a local hub leaves that ref's
 * lock file there, and a push removes one only once it is a minute old
 * (until then it may be another writer's): the test ages them instead of
 * waiting. */
static void age_hub_locks(const char *hub)
{
	ck_assert_int_eq(run_sh(NULL, "find '%s/refs' -name '*.lock' -exec touch -d '-2 minutes' {} +", hub), 0);
}

START_TEST(killed_sync)
{
	struct fx f;
	fx_open(&f, 2);
	sync_hub_all(f.s, f.dirs, 2, f.hub, 6);
	enum { NA = 150, NB0 = 150, TRIES = 8, PER_TRY = 25 };
	char body[256];
	int nb = 0;
	for (int i = 0; i < NA; i++) {
		kbody(body, sizeof body, 'a', i);
		add_plain(f.s[0], "INBOX", body);
	}
	for (; nb < NB0; nb++) {
		kbody(body, sizeof body, 'b', nb);
		add_plain(f.s[1], "INBOX", body);
	}
	OK(mcrdt_sync(f.s[1], f.hub, NULL, NULL));
	/* a is closed: only the command works on it */
	mcrdt_store_close(f.s[0]);
	f.s[0] = NULL;
	unsigned seed = 777;
	int killed = 0;
	char *errfile = tmp_path(f.top, "sync.out");
	/* Delays are drawn below the quickest whole sync seen so far, and the
	 * tries go on (up to 4 * TRIES) until one sync was killed: a fast
	 * machine that finishes every sync first still gets one cut short. */
	useconds_t below = 200000;
	int k;
	for (k = 0; k < TRIES || (killed == 0 && k < 4 * TRIES); k++) {
		if (k) {
			/* more for a to receive, so that every try has work */
			for (int i = 0; i < PER_TRY; i++, nb++) {
				kbody(body, sizeof body, 'b', nb);
				add_plain(f.s[1], "INBOX", body);
			}
			OK(mcrdt_sync(f.s[1], f.hub, NULL, NULL));
		}
		pid_t pid = fork();
		ck_assert_int_ge(pid, 0);
		if (pid == 0) {
			int out = open(errfile, O_WRONLY | O_CREAT | O_TRUNC, 0600);
			if (out >= 0) {
				dup2(out, 1);
				dup2(out, 2);
			}
			execl(MCRDT_BIN, "mcrdt", "sync", f.dirs[0], f.hub, "--quiet", (char *)NULL);
			_exit(127);
		}
		useconds_t delay = (useconds_t)rand_r(&seed) % below;
		struct timespec t0, t1;
		clock_gettime(CLOCK_MONOTONIC, &t0);
		usleep(delay);
		kill(pid, SIGKILL);
		int st = 0;
		ck_assert_int_eq(waitpid(pid, &st, 0), pid);
		clock_gettime(CLOCK_MONOTONIC, &t1);
		if (WIFSIGNALED(st)) {
			killed++;
			age_hub_locks(f.hub);
		} else if (WIFEXITED(st) && WEXITSTATUS(st) == 0) {
			/* it finished before the kill: no later than t1 */
			int64_t took = (t1.tv_sec - t0.tv_sec) * 1000000 + (t1.tv_nsec - t0.tv_nsec) / 1000;
			if (took > 0 && took < (int64_t)below)
				below = (useconds_t)took;
		} else {
			char *o = NULL;
			run_sh(&o, "cat '%s'", errfile);
			ck_abort_msg("mcrdt sync %s %s (try %d, after a sync killed before; this one given %u ms) exited "
				     "with status %d: %s",
				     f.dirs[0], f.hub, k, (unsigned)(delay / 1000), WIFEXITED(st) ? WEXITSTATUS(st) : -1, o);
		}
	}
	fprintf(stderr, "killed_sync: %d of %d syncs killed\n", killed, k);
	ck_assert_msg(killed > 0, "no sync was killed (all finished first): nothing was tested");
	free(errfile);
	/* the next open finishes what was cut short; a sync completes */
	f.s[0] = open_named(f.dirs[0], "r0");
	OK(mcrdt_sync(f.s[0], f.hub, NULL, NULL));
	sync_hub_all(f.s, f.dirs, 2, f.hub, 6);
	for (int r = 0; r < 2; r++) {
		size_t n;
		struct row *rows = rows_of(f.s[r], "INBOX", &n);
		int na = 0, nbs = 0;
		for (size_t j = 0; j < n; j++)
			rows[j].body[9] == 'a' ? na++ : nbs++;
		ck_assert_msg(n == (size_t)(NA + nb), "r%d: %zu messages (%d from a, %d from b), expected %d and %d", r, n,
			      na, nbs, NA, nb);
		for (int who = 0; who < 2; who++)
			for (int i = 0; i < (who ? nb : NA); i++) {
				char want[256];
				int c = 0;
				kbody(want, sizeof want, who ? 'b' : 'a', i);
				for (size_t j = 0; j < n; j++)
					c += strcmp(rows[j].body, want) == 0;
				ck_assert_msg(c == 1, "r%d: %c%d present %d times", r, who ? 'b' : 'a', i, c);
			}
		rows_free(rows, n);
		size_t nf;
		char **files = folder_files(f.dirs[r], "", &nf);
		ck_assert_uint_eq(nf, (size_t)(NA + nb));
		free_strs(files, nf);
		char *g = tmp_path(f.dirs[r], "mcrdt/git");
		assert_fsck(g);
		free(g);
	}
	assert_fsck(f.hub);
	fx_close(&f);
}
END_TEST

int main(void)
{
	if (tmp_base_make("sync") != 0)
		return 1;
	Suite *s = suite_create("store_sync");
	TCase *tc = tcase_create("convergence");
	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, case01_concurrent_append);
	tcase_add_test(tc, a_sync_with_nothing_to_do_writes_nothing);
	tcase_add_test(tc, progress_names_each_phase);
	tcase_add_test(tc, case02_concurrent_flags);
	tcase_add_test(tc, case03_expunge_vs_flags);
	tcase_add_test(tc, case04_delete_vs_append);
	tcase_add_test(tc, case05_rename_vs_append);
	tcase_add_test(tc, case06_rename_rename);
	tcase_add_test(tc, case07_create_create);
	tcase_add_test(tc, case08_rename_onto_created);
	tcase_add_test(tc, case09_subscriptions);
	tcase_add_test(tc, case10_copy_vs_expunge);
	tcase_add_test(tc, case11_redelivery);
	tcase_add_test(tc, case12_long_offline);
	suite_add_tcase(s, tc);

	TCase *tr = tcase_create("random");
	tcase_set_timeout(tr, 120);
	tcase_add_test(tr, random_three_replicas);
	suite_add_tcase(s, tr);

	TCase *tm = tcase_create("merge");
	tcase_set_timeout(tm, 60);
	tcase_add_test(tm, merge_plain_maildirs);
	tcase_add_test(tm, imported_copies_keep_their_uids);
	tcase_add_test(tm, imported_copies_of_a_quiet_maildir);
	suite_add_tcase(s, tm);

	TCase *tu = tcase_create("untrusted");
	tcase_set_timeout(tu, 60);
	tcase_add_test(tu, untrusted_blob_ref);
	tcase_add_test(tu, untrusted_corrupt_pack);
	tcase_add_test(tu, untrusted_body_size);
	tcase_add_test(tu, untrusted_mailbox_name);
	tcase_add_test(tu, a_file_where_a_peer_folder_goes);
	suite_add_tcase(s, tu);

	TCase *tb = tcase_create("crash_and_join");
	tcase_set_timeout(tb, 120);
	tcase_add_test(tb, killed_sync);
	tcase_add_test(tb, join_keeps_uidvalidity);
	tcase_add_test(tb, killed_during_delivery);
	tcase_add_test(tb, log_sync_fails_during_apply);
	tcase_add_test(tb, failed_apply_finishes_before_the_next_change);
	tcase_add_test(tb, file_gone_before_apply);
	tcase_add_test(tb, bodies_the_fetch_unpacked);
	tcase_add_test(tb, recovery_delivers_the_right_bodies);
	suite_add_tcase(s, tb);

	int rc = run_suite(s, CK_FORK_GETENV);
	tmp_base_remove();
	return rc;
}
