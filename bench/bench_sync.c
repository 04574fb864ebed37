/*
 * bench/bench_sync.c — replication (mcrdt_sync through git) against copying
 * the Maildir and against Dovecot's dsync, through the public API only.
 *
 * 1. Full sync of N_FULL messages (log-uniform 2-64 KiB, text with headers,
 *    larger ones with a base64 attachment; INBOX, Archive, Sent) from the
 *    replica that holds them into an empty replica: two-way with the
 *    source's directory, and through a hub the source pushed to first.
 *    Baselines: cp -a of the Maildir folders + sync(1) (the floor) and,
 *    when doveadm is installed, doveadm backup of the same Maildir.
 *    Then two replicas that each imported a copy of the source's Maildir
 *    sync for the first time (what they fetch and store).
 * 2. Incremental two-way sync after 100 changes per side (50 appends + 50
 *    flag changes) on two synced replicas of 1,000, 20,000 and N_BIG
 *    messages; and doveadm sync of two Maildirs of 20,000 and of N_BIG
 *    messages after 100 outside flag renames. The peak memory of the
 *    command's first sync of the N_BIG replica into an empty one, against
 *    opening it ('mcrdt status'), each a process of its own.
 * 3. UID moves per 1,000 delivered messages: three replicas deliver
 *    concurrently and sync through a hub, then all sync until converged.
 *
 * Usage: bench_sync DIR [N_FULL [N_BIG]]   (defaults 10000, 100000)
 * $MCRDT_BENCH_ONLY=full|incremental|moves runs one section (for profiling).
 * Everything happens in a fresh mkdtemp directory under DIR, removed at the
 * end (kept after a failure when $MCRDT_BENCH_KEEP is set, always when it is
 * "always", for profiling a replica pair afterwards). Figures, not
 * asserts: the exit status is non-zero only when a call fails or two
 * replicas differ after a sync. Timed rounds are interleaved and medians
 * compared; the machine is assumed noisy.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bench/bench.h"
#define BENCH_NAME "bench_sync"
#include "bench/harness.h"
#include "mcrdt/mcrdt.h"

#define ROUNDS 5 /* the floor alone varies 3x between rounds here */
#define SMALL_N 1000
#define MID_N 20000 /* the size the target against doveadm sync names */
#define CHANGES 50 /* appends and flag changes, each, per side */
#define DV_UID 65534 /* doveadm runs as this user when we are root (Dovecot refuses root) */

static uint64_t rng = 0x2545f4914f6cdd1du;
static uint32_t rnd(void)
{
	return bench_rnd(&rng);
}
/* Uniform in [0, 1). */
static double rnd01(void)
{
	return (rnd() & 0xffffff) / 16777216.0;
}

/* ---- messages ---- */

static const char *const words[] = {
	"the",     "of",      "and",    "to",       "in",      "is",        "that",    "for",
	"meeting", "project", "report", "attached", "please",  "review",    "thanks",  "regards",
	"budget",  "quarter", "team",   "schedule", "update",  "deadline",  "client",  "server",
	"release", "issue",   "fixed",  "branch",   "merge",   "tomorrow",  "morning", "office",
	"invoice", "payment", "order",  "shipping", "account", "password",  "support", "ticket",
	"we",      "will",    "can",    "should",   "would",   "could",     "not",     "have",
	"this",    "with",    "from",   "about",    "your",    "our",       "their",   "which",
	"draft",   "final",   "notes",  "agenda",   "minutes", "follow-up", "weekly",  "status",
};
#define NWORDS (sizeof words / sizeof *words)

struct buf {
	char *p;
	size_t n, cap;
};

static void bput(struct buf *b, const char *fmt, ...)
{
	for (;;) {
		va_list ap;
		va_start(ap, fmt);
		int k = vsnprintf(b->p + b->n, b->cap - b->n, fmt, ap);
		va_end(ap);
		if (k < 0)
			fail("vsnprintf");
		if (b->n + (size_t)k < b->cap) {
			b->n += (size_t)k;
			return;
		}
		b->cap = (b->n + (size_t)k + 1) * 2;
		if (!(b->p = realloc(b->p, b->cap)))
			fail("out of memory");
	}
}

/* Text lines of words up to about n more bytes. */
static void text(struct buf *b, size_t upto)
{
	size_t col = 0;
	while (b->n < upto) {
		const char *w = words[rnd() % NWORDS];
		size_t l = strlen(w);
		if (col + l + 1 > 72) {
			bput(b, rnd() % 6 == 0 ? ".\n\n" : "\n");
			col = 0;
		}
		bput(b, "%s%s", col ? " " : "", w);
		col += l + 1;
	}
	bput(b, "\n");
}

/* A log-uniform size in [lo, hi) (powers of two apart by at most 2^5). */
static size_t size_between(size_t lo, size_t hi)
{
	double e = 0, span = 0;
	for (size_t x = lo; x < hi; x *= 2)
		span += 1;
	e = rnd01() * span;
	int k = (int)e;
	double f = e - k;
	/* 2^f on [0,1), within 0.3% */
	double p = 1 + f * (0.6565 + 0.3435 * f);
	return (size_t)((double)(lo << k) * p);
}

static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/* A mail of about len bytes, unique by n: headers, a text part, and
 * above 8 KiB a base64 attachment of random bytes (mail that large is
 * mostly attachments). */
static void make_msg(struct buf *b, size_t len, unsigned long n)
{
	b->n = 0;
	unsigned h = rnd();
	bput(b,
	     "Return-Path: <sender%u@example.net>\nDelivered-To: user@example.org\n"
	     "Received: from mx%u.example.net (mx%u.example.net [192.0.2.%u])\n\tby mail.example.org "
	     "(Postfix) with ESMTPS id %08X\n\tfor <user@example.org>; Tue, 14 Nov 2023 %02u:%02u:%02u +0000\n"
	     "From: Sender %u <sender%u@example.net>\nTo: User <user@example.org>\n"
	     "Subject: %s %s %s (%lu)\nDate: Tue, 14 Nov 2023 %02u:%02u:%02u +0000\n"
	     "Message-ID: <%lu.%08X@example.net>\nMIME-Version: 1.0\n",
	     h % 500, h % 7, h % 7, h % 250, h, h % 24, h % 60, (h >> 8) % 60, h % 500, h % 500,
	     words[rnd() % NWORDS], words[rnd() % NWORDS], words[rnd() % NWORDS], n, h % 24, h % 60,
	     (h >> 8) % 60, n, h);
	if (len <= 8192) {
		bput(b, "Content-Type: text/plain; charset=utf-8\n\n");
		text(b, len);
		return;
	}
	bput(b, "Content-Type: multipart/mixed; boundary=\"=_b%lu\"\n\n--=_b%lu\n"
		"Content-Type: text/plain; charset=utf-8\n\n", n, n);
	text(b, b->n + 1500 + rnd() % 3000);
	bput(b, "\n--=_b%lu\nContent-Type: application/pdf; name=\"doc%lu.pdf\"\n"
		"Content-Transfer-Encoding: base64\nContent-Disposition: attachment\n\n", n, n);
	while (b->n + 80 < len) {
		char line[80];
		for (int i = 0; i < 76; i++)
			line[i] = b64[rnd() & 63];
		line[76] = '\n';
		line[77] = 0;
		bput(b, "%s", line);
	}
	bput(b, "\n--=_b%lu--\n", n);
}

static unsigned long g_msgno;

struct fill {
	size_t lo, hi;             /* size range */
	bool folders;              /* 70% INBOX, 20% Archive, 10% Sent; else all INBOX */
	uint32_t batch;            /* appends per batch; 0: one durable call each */
};

/* n appends; returns their bytes. */
static uint64_t fill(mcrdt_store *s, uint32_t n, const struct fill *f)
{
	struct buf b = { NULL, 0, 0 };
	uint64_t bytes = 0;
	const char *fl[4];
	struct mcrdt_append_opts ao = MCRDT_APPEND_OPTS_INIT;
	for (uint32_t done = 0; done < n;) {
		if (f->batch)
			CK(mcrdt_store_batch_begin(s));
		for (uint32_t k = 0; k < (f->batch ? f->batch : 1) && done < n; k++, done++) {
			make_msg(&b, size_between(f->lo, f->hi), g_msgno++);
			unsigned r = rnd() % 100, where = rnd() % 100;
			size_t nf = 0;
			if (r < 70)
				fl[nf++] = "\\Seen";
			if (r % 20 == 0)
				fl[nf++] = "\\Flagged";
			if (r % 33 == 1)
				fl[nf++] = "\\Answered";
			if (r % 50 == 2)
				fl[nf++] = "$Junk";
			ao.flags = fl;
			ao.nflags = nf;
			ao.internaldate = 1600000000 + (int64_t)(rnd() % 100000000);
			const char *mbox = !f->folders || where < 70 ? "INBOX" : where < 90 ? "Archive" : "Sent";
			CK(mcrdt_append(s, mbox, b.p, b.n, &ao, NULL, NULL));
			bytes += b.n;
		}
		if (f->batch)
			CK(mcrdt_store_batch_commit(s));
	}
	free(b.p);
	return bytes;
}

/* ---- timing syncs ---- */

/* Time spent per sync phase, from the progress callback. */
enum { PH_SCAN, PH_PUBLISH, PH_FETCH, PH_APPLY, PH_PUSH, PH_MAINTAIN, PH_N };
static const char *const ph_names[PH_N] = { "scan", "publish", "fetch", "apply", "push", "maintain" };
struct phases {
	double secs[PH_N];
	int cur;
	double t;
};

static int on_progress(void *ctx, const char *phase, const struct mcrdt_sync_stats *st)
{
	(void)st;
	struct phases *p = ctx;
	double t = now();
	if (p->cur >= 0)
		p->secs[p->cur] += t - p->t;
	p->t = t;
	p->cur = -1;
	for (int i = 0; i < PH_N; i++)
		if (strcmp(phase, ph_names[i]) == 0)
			p->cur = i;
	return 0;
}

/* One sync, checked; seconds. */
static double timed_sync(mcrdt_store *s, const char *remote, struct mcrdt_sync_stats *st, struct phases *ph)
{
	struct mcrdt_sync_opts o = MCRDT_SYNC_OPTS_INIT;
	struct phases local;
	if (!ph)
		ph = &local;
	memset(ph, 0, sizeof *ph);
	ph->cur = -1;
	o.progress = on_progress;
	o.progress_ctx = ph;
	double t0 = now();
	ph->t = t0;
	int rc = mcrdt_sync(s, remote, &o, st);
	double t1 = now();
	if (ph->cur >= 0)
		ph->secs[ph->cur] += t1 - ph->t;
	if (rc != 0)
		fail("mcrdt_sync with %s returned %d (%s): %s", remote, rc, mcrdt_strerror(rc), mcrdt_error_last());
	return t1 - t0;
}

static void print_phases(const char *indent, const struct phases *p, double total)
{
	printf("%sphases:", indent);
	for (int i = 0; i < PH_N; i++)
		if (p->secs[i] > 0.0005)
			printf(" %s %.2f s (%.0f%%)", ph_names[i], p->secs[i], 100 * p->secs[i] / total);
	printf("\n");
}

static void print_stats(const char *indent, const struct mcrdt_sync_stats *st)
{
	printf("%sstats: rounds %u, ops sent %" PRIu64 " / received %" PRIu64 ", bodies sent %" PRIu64
	       " (%.1f MB) / written %" PRIu64 " (%.1f MB), fetched %.1f MB, uid moves %" PRIu64
	       ", duplicates %" PRIu64 "\n",
	       indent, st->rounds, st->ops_sent, st->ops_received, st->messages_sent, st->bytes_sent / 1e6,
	       st->messages_received, st->bytes_received / 1e6, st->bytes_fetched / 1e6, st->uid_moves,
	       st->duplicates);
}

/* ---- comparing replicas ---- */

static void fetch_all(mcrdt_store *s, const char *name, struct mcrdt_message **v, size_t *n)
{
	mcrdt_mailbox *mb;
	CK(mcrdt_mailbox_select(s, name, &mb));
	struct mcrdt_select_info si;
	CK(mcrdt_mailbox_info(mb, &si));
	if (si.exists) {
		CK(mcrdt_fetch(mb, "1:*", MCRDT_SEQ, v, n));
	} else {
		*v = NULL;
		*n = 0;
	}
	mcrdt_mailbox_close(mb);
}

/* Fails unless a and b list the same mailboxes and messages (UID, GUID,
 * flags, size, internal date). Returns the number of messages. */
static uint64_t compare(mcrdt_store *a, mcrdt_store *b, const char *what)
{
	struct mcrdt_mailbox_info *la, *lb;
	size_t na, nb;
	uint64_t total = 0;
	CK(mcrdt_mailbox_list(a, &la, &na));
	CK(mcrdt_mailbox_list(b, &lb, &nb));
	if (na != nb)
		fail("%s: the replicas list %zu and %zu mailboxes", what, na, nb);
	for (size_t i = 0; i < na; i++) {
		if (strcmp(la[i].name, lb[i].name) != 0 || strcmp(la[i].guid, lb[i].guid) != 0 ||
		    la[i].uidvalidity != lb[i].uidvalidity ||
		    (la[i].attrs & MCRDT_MBOX_NONEXISTENT) != (lb[i].attrs & MCRDT_MBOX_NONEXISTENT))
			fail("%s: mailbox %zu differs: %s %s %u vs %s %s %u", what, i, la[i].name, la[i].guid,
			     la[i].uidvalidity, lb[i].name, lb[i].guid, lb[i].uidvalidity);
		if (la[i].attrs & MCRDT_MBOX_NONEXISTENT)
			continue;
		struct mcrdt_message *va, *vb;
		size_t ma, mb;
		fetch_all(a, la[i].name, &va, &ma);
		fetch_all(b, lb[i].name, &vb, &mb);
		if (ma != mb)
			fail("%s: %s holds %zu and %zu messages", what, la[i].name, ma, mb);
		for (size_t k = 0; k < ma; k++) {
			const struct mcrdt_message *x = &va[k], *y = &vb[k];
			bool same = x->uid == y->uid && strcmp(x->guid, y->guid) == 0 && x->sysflags == y->sysflags &&
				    x->nflags == y->nflags && x->size == y->size && x->internaldate == y->internaldate;
			for (size_t f = 0; same && f < x->nflags; f++)
				same = strcmp(x->flags[f], y->flags[f]) == 0;
			if (!same)
				fail("%s: %s message %zu differs: uid %u guid %s flags %#x size %" PRIu64
				     " vs uid %u guid %s flags %#x size %" PRIu64,
				     what, la[i].name, k + 1, x->uid, x->guid, x->sysflags, x->size, y->uid, y->guid,
				     y->sysflags, y->size);
		}
		total += ma;
		mcrdt_messages_free(va, ma);
		mcrdt_messages_free(vb, mb);
	}
	mcrdt_mailbox_list_free(la, na);
	mcrdt_mailbox_list_free(lb, nb);
	return total;
}

static int cmp_msg_guid(const void *a, const void *b)
{
	return strcmp(((const struct mcrdt_message *)a)->guid, ((const struct mcrdt_message *)b)->guid);
}

/* After a one-way sync: b holds every mailbox and message of a (same names,
 * GUIDs, flags, sizes, dates), UIDs and UIDVALIDITY aside (they settle when
 * a syncs in turn). Returns the number of messages. */
static uint64_t compare_content(mcrdt_store *a, mcrdt_store *b, const char *what)
{
	struct mcrdt_mailbox_info *la, *lb;
	size_t na, nb;
	uint64_t total = 0;
	CK(mcrdt_mailbox_list(a, &la, &na));
	CK(mcrdt_mailbox_list(b, &lb, &nb));
	if (na != nb)
		fail("%s: the replicas list %zu and %zu mailboxes", what, na, nb);
	for (size_t i = 0; i < na; i++) {
		if (strcmp(la[i].name, lb[i].name) != 0)
			fail("%s: mailbox %zu is %s and %s", what, i, la[i].name, lb[i].name);
		if (la[i].attrs & MCRDT_MBOX_NONEXISTENT)
			continue;
		struct mcrdt_message *va, *vb;
		size_t ma, mb;
		fetch_all(a, la[i].name, &va, &ma);
		fetch_all(b, lb[i].name, &vb, &mb);
		if (ma != mb)
			fail("%s: %s holds %zu and %zu messages", what, la[i].name, ma, mb);
		if (ma) {
			qsort(va, ma, sizeof *va, cmp_msg_guid);
			qsort(vb, mb, sizeof *vb, cmp_msg_guid);
		}
		for (size_t k = 0; k < ma; k++) {
			const struct mcrdt_message *x = &va[k], *y = &vb[k];
			bool same = strcmp(x->guid, y->guid) == 0 && x->sysflags == y->sysflags &&
				    x->nflags == y->nflags && x->size == y->size && x->internaldate == y->internaldate;
			for (size_t f = 0; same && f < x->nflags; f++)
				same = strcmp(x->flags[f], y->flags[f]) == 0;
			if (!same)
				fail("%s: %s: message %s (flags %#x size %" PRIu64 ") vs %s (flags %#x size %" PRIu64 ")",
				     what, la[i].name, x->guid, x->sysflags, x->size, y->guid, y->sysflags, y->size);
		}
		total += ma;
		mcrdt_messages_free(va, ma);
		mcrdt_messages_free(vb, mb);
	}
	mcrdt_mailbox_list_free(la, na);
	mcrdt_mailbox_list_free(lb, nb);
	return total;
}

static uint32_t inbox_uidvalidity(mcrdt_store *s)
{
	struct mcrdt_status st;
	CK(mcrdt_mailbox_status(s, "INBOX", &st));
	return st.uidvalidity;
}

static uint64_t compare_dirs(mcrdt_store *a, const char *bdir, const char *what)
{
	mcrdt_store *b = open_store(bdir, false, true);
	uint64_t n = compare(a, b, what);
	mcrdt_store_close(b);
	return n;
}

static uint64_t messages_of(mcrdt_store *s)
{
	struct mcrdt_store_info i;
	CK(mcrdt_store_info(s, &i));
	return i.messages;
}

/* ---- file system helpers ---- */

static uint64_t du_blocks, du_bytes;
static int du_one(const char *path, const struct stat *st, int type, struct FTW *ftw)
{
	(void)path;
	(void)type;
	(void)ftw;
	du_blocks += (uint64_t)st->st_blocks * 512;
	du_bytes += (uint64_t)st->st_size;
	return 0;
}

/* Disk use of a tree in bytes (du), apparent size in *bytes. */
static uint64_t du(const char *dir, uint64_t *bytes)
{
	du_blocks = du_bytes = 0;
	nftw(dir, du_one, 64, FTW_PHYS);
	if (bytes)
		*bytes = du_bytes;
	return du_blocks;
}

static unsigned count_packs(const char *packdir)
{
	DIR *d = opendir(packdir);
	unsigned n = 0;
	struct dirent *e;
	if (!d)
		return 0;
	while ((e = readdir(d))) {
		size_t l = strlen(e->d_name);
		n += l > 5 && strcmp(e->d_name + l - 5, ".pack") == 0;
	}
	closedir(d);
	return n;
}

/* "Maildir X MB, repository (mcrdt/git) Y MB, log+snapshot Z MB, N packs". */
static void print_store_size(const char *label, const char *dir)
{
	char meta[4200], git[4300], pack[4400];
	snprintf(meta, sizeof meta, "%s/mcrdt", dir);
	snprintf(git, sizeof git, "%s/git", meta);
	snprintf(pack, sizeof pack, "%s/objects/pack", git);
	uint64_t all_b, meta_b, git_b;
	uint64_t all = du(dir, &all_b), m = du(meta, &meta_b), g = du(git, &git_b);
	printf("   %-26s Maildir %8.1f MB (%8.1f MB apparent)   repository mcrdt/git %8.1f MB   rest of mcrdt/ "
	       "%6.1f MB (log, snapshot, listings)   %u pack files\n",
	       label, (all - m) / 1e6, (all_b - meta_b) / 1e6, g / 1e6, (m - g) / 1e6, count_packs(pack));
}

static void print_hub_size(const char *label, const char *hub)
{
	char pack[4300];
	snprintf(pack, sizeof pack, "%s/objects/pack", hub);
	printf("   %-26s repository %8.1f MB   %u pack files\n", label, du(hub, NULL) / 1e6, count_packs(pack));
}

/* The Maildir entries of a store's root (everything but mcrdt/), quoted,
 * as arguments for cp. */
static void maildir_args(const char *dir, char *out, size_t cap)
{
	DIR *d = opendir(dir);
	if (!d)
		fail("opendir %s: %s", dir, strerror(errno));
	size_t n = 0;
	out[0] = 0;
	struct dirent *e;
	while ((e = readdir(d))) {
		if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..") || !strcmp(e->d_name, "mcrdt"))
			continue;
		if (strchr(e->d_name, '\''))
			fail("unexpected name %s", e->d_name);
		int k = snprintf(out + n, cap - n, " '%s/%s'", dir, e->d_name);
		if (k < 0 || (size_t)k >= cap - n)
			fail("too many Maildir folders");
		n += (size_t)k;
	}
	closedir(d);
}

/* CPU seconds, user and system: of this process, every thread
 * (RUSAGE_SELF), or of the children it waited for (RUSAGE_CHILDREN). */
static double cpu_s(int who)
{
	struct rusage ru;
	if (getrusage(who, &ru) != 0)
		fail("getrusage: %s", strerror(errno));
	return (double)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) + (ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}

#ifndef MCRDT_CLI_PATH
#define MCRDT_CLI_PATH "mcrdt"
#endif

/* A process's memory at its peak, KiB: all it had resident (wait4's
 * ru_maxrss: mapped files count, the packs a sync reads among them) and
 * its anonymous memory (heap; /proc's RssAnon, sampled every 5 ms). */
struct peak {
	long rss, anon;
};

static long rss_anon_kb(pid_t pid)
{
	char path[64], line[256];
	snprintf(path, sizeof path, "/proc/%d/status", (int)pid);
	FILE *f = fopen(path, "r");
	long kb = 0;
	while (f && fgets(line, sizeof line, f))
		if (strncmp(line, "RssAnon:", 8) == 0)
			kb = atol(line + 8);
	if (f)
		fclose(f);
	return kb;
}

/* The peak of the command line tool this bench was built with, run on
 * argv (argv[0] its name) with its output dropped; rss -1 when it fails.
 * A forked child's ru_maxrss counts the memory of the process it was
 * forked from, even across exec: this runs in a fresh process of its own
 * ('bench_sync --peak-rss ARGS', see main). */
static struct peak peak_here(char **argv)
{
	struct peak pk = { -1, 0 };
	pid_t pid = fork();
	if (pid < 0)
		return pk;
	if (pid == 0) {
		int fd = open("/dev/null", O_WRONLY | O_CLOEXEC);
		if (fd < 0 || dup2(fd, 1) < 0)
			_exit(126);
		execv(MCRDT_CLI_PATH, argv);
		_exit(127);
	}
	int status;
	struct rusage ru;
	pid_t w;
	while ((w = wait4(pid, &status, WNOHANG, &ru)) == 0) {
		long a = rss_anon_kb(pid);
		pk.anon = a > pk.anon ? a : pk.anon;
		usleep(5000);
	}
	if (w == pid && WIFEXITED(status) && WEXITSTATUS(status) == 0)
		pk.rss = ru.ru_maxrss;
	return pk;
}

/* peak_here in a fresh process (this program again); the arguments after
 * arg0 up to a NULL. */
static struct peak cli_peak(const char *arg0, ...)
{
	char *argv[8] = { "bench_sync", "--peak-rss", "mcrdt" };
	size_t n = 3;
	va_list ap;
	va_start(ap, arg0);
	for (const char *a = arg0; a && n + 1 < sizeof argv / sizeof *argv; a = va_arg(ap, const char *))
		argv[n++] = (char *)a;
	va_end(ap);
	int fds[2];
	if (pipe2(fds, O_CLOEXEC) != 0)
		fail("pipe: %s", strerror(errno));
	fflush(NULL);
	pid_t pid = fork();
	if (pid < 0)
		fail("fork: %s", strerror(errno));
	if (pid == 0) {
		if (dup2(fds[1], 1) < 0)
			_exit(126);
		execv("/proc/self/exe", argv);
		_exit(127);
	}
	close(fds[1]);
	char out[64] = "";
	ssize_t got;
	while ((got = read(fds[0], out, sizeof out - 1)) < 0 && errno == EINTR)
		;
	close(fds[0]);
	int status;
	struct peak pk = { -1, 0 };
	if (got > 0 && sscanf(out, "%ld %ld", &pk.rss, &pk.anon) != 2)
		pk.rss = -1;
	if (waitpid(pid, &status, 0) != pid || !WIFEXITED(status) || WEXITSTATUS(status) != 0 || pk.rss <= 0)
		fail("mcrdt %s %s failed", argv[3], argv[4]);
	return pk;
}

/* cp -a of the Maildir folders of src into a new directory dst. */
static void copy_maildir(const char *src, const char *dst)
{
	char args[8192];
	maildir_args(src, args, sizeof args);
	if (mkdir(dst, 0700) != 0)
		fail("mkdir %s: %s", dst, strerror(errno));
	run("cp -a%s '%s/'", args, dst);
}

/* ---- doveadm ---- */

static bool g_have_doveadm;
static unsigned g_dv_uid, g_dv_gid;
static const char *g_dv_user;

static void doveadm_init(void)
{
	g_have_doveadm = system("command -v doveadm >/dev/null 2>&1") == 0;
	if (!g_have_doveadm)
		return;
	if (geteuid() == 0) {
		/* Dovecot will not touch mail as root: its Maildirs belong to nobody. */
		g_dv_uid = g_dv_gid = DV_UID;
		g_dv_user = "nobody";
		if (chmod(bench_root, 0755) != 0)
			fail("chmod %s: %s", bench_root, strerror(errno));
	} else {
		g_dv_uid = (unsigned)getuid();
		g_dv_gid = (unsigned)getgid();
		g_dv_user = getenv("USER") ? getenv("USER") : "bench";
	}
}

/* Hands a tree to the doveadm user. */
static void dv_own(const char *dir)
{
	if (geteuid() == 0)
		run("chown -R %u:%u '%s'", g_dv_uid, g_dv_gid, dir);
}

/* doveadm without a running Dovecot: an empty config, the Maildir given as
 * mail_location, the user from $USER. Returns seconds, or -1 on failure
 * (its stderr printed). state_out (may be NULL) gets its stdout. */
static double doveadm(const char *mail, const char *args, char *state_out, size_t cap)
{
	char errf[4200], outf[4200], cmd[16384];
	path_in(errf, sizeof errf, "doveadm.err");
	path_in(outf, sizeof outf, "doveadm.out");
	snprintf(cmd, sizeof cmd,
		 "env USER=%s HOME='%s' doveadm -c /dev/null -o 'mail_location=maildir:%s' -o mail_uid=%u "
		 "-o mail_gid=%u -o first_valid_uid=1 -o first_valid_gid=1 %s >'%s' 2>'%s'",
		 g_dv_user, bench_root, mail, g_dv_uid, g_dv_gid, args, outf, errf);
	double t0 = now();
	int rc = system(cmd);
	double dt = now() - t0;
	struct stat st;
	if (rc != 0 || (stat(errf, &st) == 0 && st.st_size > 0)) {
		fprintf(stderr, "bench_sync: doveadm %s (exit %d) said:\n", args, rc);
		run("head -n 20 '%s' >&2", errf);
		if (rc != 0)
			return -1;
	}
	if (state_out) {
		FILE *f = fopen(outf, "r");
		state_out[0] = 0;
		if (!f || !fgets(state_out, (int)cap, f))
			state_out[0] = 0;
		if (f)
			fclose(f);
		state_out[strcspn(state_out, "\n")] = 0;
	}
	return dt;
}

/* Message files under a Maildir (cur/ and new/ of every folder). */
static uint64_t g_nfiles;
static int count_one(const char *path, const struct stat *st, int type, struct FTW *ftw)
{
	(void)st;
	(void)ftw;
	if (type == FTW_F) {
		const char *slash = strrchr(path, '/');
		size_t l = (size_t)(slash - path);
		if (l >= 4 && (strncmp(slash - 4, "/cur", 4) == 0 || strncmp(slash - 4, "/new", 4) == 0))
			g_nfiles++;
	}
	return 0;
}

static uint64_t count_messages(const char *dir)
{
	g_nfiles = 0;
	nftw(dir, count_one, 64, FTW_PHYS);
	return g_nfiles;
}

/* ---- 1. full sync ---- */

/* A full-sync round's directories: full-<arm><round>. */
static const char *const FULL_ARM[] = { "floor", "direct", "viahub" };

/*
 * Two replicas that each imported a copy of src's Maildir (cp -a: a
 * restored backup used on both sides), then their first two-way sync:
 * same base name and same content is the same message, so what must move
 * is the ops and what each repository lacks, not the bodies. One run; its
 * figures that matter are bytes (fetched, stored), not seconds.
 */
static void copies_first_sync(const char *src, uint32_t n, double floor)
{
	char a[4200], b[4200];
	path_in(a, sizeof a, "copies-a");
	path_in(b, sizeof b, "copies-b");
	copy_maildir(src, a);
	copy_maildir(src, b);
	run("sync");
	double t0 = now();
	mcrdt_store *sa = open_store(a, true, false), *sb = open_store(b, true, false);
	struct mcrdt_scan_report rep;
	CK(mcrdt_store_scan(sa, &rep));
	CK(mcrdt_store_scan(sb, &rep));
	mcrdt_store_close(sb);
	double imp = now() - t0;
	run("sync");
	struct mcrdt_sync_stats st;
	struct phases ph;
	double t = timed_sync(sa, b, &st, &ph);
	if (compare_dirs(sa, b, "first sync of two imported copies") != n)
		fail("two imported copies: %" PRIu64 " messages after their first sync, expected %u", messages_of(sa),
		     n);
	printf("\n   Two replicas that each imported a copy of the source's Maildir (cp -a), one run: importing both\n"
	       "   %.2f s, then their first two-way sync %.2f s (%.2fx the floor; it publishes both sides' bodies)\n",
	       imp, t, t / floor);
	print_phases("     ", &ph, t);
	print_stats("     ", &st);
	print_store_size("replica a after:", a);
	print_store_size("replica b after:", b);
	mcrdt_store_close(sa);
	scrap(a);
	scrap(b);
}

static void section_full(uint32_t n)
{
	char src[4200], hub[4200];
	path_in(src, sizeof src, "full-src");
	path_in(hub, sizeof hub, "full-hub");
	printf("\n1. Full sync of %u messages (log-uniform 2-64 KiB, text with headers, base64 attachments above\n"
	       "   8 KiB; 70%% INBOX, 20%% Archive, 10%% Sent) into an empty replica. Durable (default options).\n", n);
	mcrdt_store *s = open_store(src, true, false);
	CK(mcrdt_mailbox_create(s, "Archive"));
	CK(mcrdt_mailbox_create(s, "Sent"));
	struct fill f = { 2048, 65536, true, n };
	double t0 = now();
	uint64_t bytes = fill(s, n, &f);
	printf("   source built in %.1f s (one batch of mcrdt_append): %.1f MB of messages, mean %.1f KiB\n",
	       now() - t0, bytes / 1e6, bytes / 1024.0 / n);

	CK(mcrdt_hub_init(hub));
	struct mcrdt_sync_stats st;
	struct phases ph;
	double pub = timed_sync(s, hub, &st, &ph);
	printf("   setup, not in the ratios: the source's first sync with an empty hub (publishes %u ops and\n"
	       "   bodies into its repository, pushes them) %.2f s\n", (unsigned)st.ops_sent, pub);
	print_phases("     ", &ph, pub);
	print_stats("     ", &st);

	char dvsrc[4200], dvdir[4200];
	bool dv = g_have_doveadm;
	if (dv) {
		/* doveadm gets its own copy (it writes its index files into the source),
		 * indexed once beforehand, as a running Dovecot's Maildir would be. */
		path_in(dvdir, sizeof dvdir, "dv");
		path_in(dvsrc, sizeof dvsrc, "dv/src");
		if (mkdir(dvdir, 0755) != 0)
			fail("mkdir %s: %s", dvdir, strerror(errno));
		copy_maildir(src, dvsrc);
		dv_own(dvdir);
		char warm[4300];
		snprintf(warm, sizeof warm, "backup maildir:%s/warm", dvdir);
		if (doveadm(dvsrc, warm, NULL, 0) < 0) {
			printf("   doveadm backup does not work here: its baseline is skipped\n");
			dv = false;
		}
	}

	/* Creating many files right after removing many is slow on ext4 without
	 * a journal (recently_deleted skips the freed inodes for a minute or
	 * more), and whichever arm followed a removal paid for it: the floor
	 * swung 5x. So no round follows a removal when the disk has room for
	 * every round's copies (about 4 per arm: Maildir, pack, doveadm's index). */
	struct statvfs vfs;
	bool keep_rounds = statvfs(src, &vfs) == 0 &&
			   (double)vfs.f_bavail * vfs.f_frsize > 8.0 * ROUNDS * (double)bytes + 1e9;
	printf("   %d interleaved rounds (floor, direct, hub%s), each into fresh directories, %s; medians:\n", ROUNDS,
	       dv ? ", doveadm" : "",
	       keep_rounds ? "removed only after the last round"
			   : "removed after each round (the disk is short: rounds after a removal are slower)");
	double tf[ROUNDS], td[ROUNDS], th[ROUNDS], tv[ROUNDS];
	double cf[ROUNDS], cd[ROUNDS], ch[ROUNDS], cv[ROUNDS]; /* CPU seconds */
	uint64_t hub_moves[ROUNDS];
	uint32_t uv0 = inbox_uidvalidity(s);
	struct phases phd, phh;
	struct mcrdt_sync_stats std, sth;
	for (int r = 0; r < ROUNDS; r++) {
		char floor[4200], e1[4200], e2[4200], dst[4300];
		path_in(floor, sizeof floor, "full-%s%d", FULL_ARM[0], r);
		path_in(e1, sizeof e1, "full-%s%d", FULL_ARM[1], r);
		path_in(e2, sizeof e2, "full-%s%d", FULL_ARM[2], r);

		run("sync");
		double c0 = cpu_s(RUSAGE_CHILDREN);
		t0 = now();
		copy_maildir(src, floor);
		run("sync");
		tf[r] = now() - t0;
		cf[r] = cpu_s(RUSAGE_CHILDREN) - c0;
		if (count_messages(floor) != n)
			fail("the floor copy holds %" PRIu64 " messages, expected %u", count_messages(floor), n);

		run("sync");
		mcrdt_store *e = open_store(e1, true, false);
		c0 = cpu_s(RUSAGE_SELF);
		td[r] = timed_sync(e, src, &std, &phd);
		cd[r] = cpu_s(RUSAGE_SELF) - c0;
		if (compare(e, s, "direct full sync") != n)
			fail("direct full sync: %" PRIu64 " messages, expected %u", messages_of(e), n);
		mcrdt_store_close(e);

		run("sync");
		e = open_store(e2, true, false);
		c0 = cpu_s(RUSAGE_SELF);
		th[r] = timed_sync(e, hub, &sth, &phh);
		ch[r] = cpu_s(RUSAGE_SELF) - c0;
		if (compare_content(s, e, "full sync through the hub") != n)
			fail("full sync through the hub: %" PRIu64 " messages, expected %u", messages_of(e), n);
		/* Untimed: the source and the new replica sync with the hub again;
		 * then they must agree on UIDs too. */
		struct mcrdt_sync_stats st2;
		timed_sync(s, hub, &st2, NULL);
		hub_moves[r] = st2.uid_moves;
		timed_sync(e, hub, &st2, NULL);
		hub_moves[r] += st2.uid_moves;
		compare(e, s, "full sync through the hub, after both synced again");
		mcrdt_store_close(e);

		tv[r] = cv[r] = 0;
		if (dv) {
			snprintf(dst, sizeof dst, "%s/dst%d", dvdir, r);
			char args[4400];
			snprintf(args, sizeof args, "backup maildir:%s", dst);
			run("sync");
			c0 = cpu_s(RUSAGE_CHILDREN);
			t0 = now();
			double t = doveadm(dvsrc, args, NULL, 0);
			run("sync");
			tv[r] = now() - t0;
			cv[r] = cpu_s(RUSAGE_CHILDREN) - c0;
			if (t < 0)
				fail("doveadm backup failed in round %d", r + 1);
			if (count_messages(dst) != n)
				fail("doveadm backup: %" PRIu64 " messages, expected %u", count_messages(dst), n);
		}
		printf("   round %d: floor %.2f s   direct %.2f s (uid moves %" PRIu64 ")   via hub %.2f s (uid moves %"
		       PRIu64 ", then %" PRIu64 " more when both synced again)",
		       r + 1, tf[r], td[r], std.uid_moves, th[r], sth.uid_moves, hub_moves[r]);
		if (dv)
			printf("   doveadm backup %.2f s", tv[r]);
		printf("\n");
		if (r == ROUNDS - 1) {
			print_store_size("a replica after the sync:", e2);
		}
		if (!keep_rounds && r < ROUNDS - 1) {
			rm_tree(floor);
			rm_tree(e1);
			rm_tree(e2);
			if (dv)
				rm_tree(dst);
		}
	}
	double mf = median(tf, ROUNDS), md = median(td, ROUNDS), mh = median(th, ROUNDS);
	double mb = bytes / 1e6, rd[ROUNDS], rh[ROUNDS];
	for (int r = 0; r < ROUNDS; r++)
		rd[r] = td[r] / tf[r], rh[r] = th[r] / tf[r];
	printf("   floor (cp -a of the Maildir + sync):  %7.2f s  %7.1f MB/s\n", mf, mb / mf);
	printf("   mcrdt_sync(empty, source dir):        %7.2f s  %7.1f MB/s  %5.2fx floor (target <= 1.5x);\n"
	       "                                         median of the rounds' own ratios %.2fx\n",
	       md, mb / md, md / mf, median(rd, ROUNDS));
	print_phases("     last round ", &phd, td[ROUNDS - 1]);
	print_stats("     last round ", &std);
	printf("   mcrdt_sync(empty, hub):               %7.2f s  %7.1f MB/s  %5.2fx floor (target <= 1.5x);\n"
	       "                                         median of the rounds' own ratios %.2fx\n",
	       mh, mb / mh, mh / mf, median(rh, ROUNDS));
	print_phases("     last round ", &phh, th[ROUNDS - 1]);
	print_stats("     last round ", &sth);
	if (dv) {
		double mv = median(tv, ROUNDS);
		printf("   doveadm backup (source indexed):      %7.2f s  %7.1f MB/s  %5.2fx floor; doveadm/sync: %.2fx "
		       "direct, %.2fx via hub\n",
		       mv, mb / mv, mv / mf, mv / md, mv / mh);
	} else {
		printf("   doveadm backup: skipped (%s)\n", g_have_doveadm ? "doveadm failed" : "doveadm not installed");
	}
	/* The disk's pace hides in the wall times above; CPU time does not.
	 * (Writeback the kernel's flusher threads do counts for nobody.) */
	double mcf = median(cf, ROUNDS), mcd = median(cd, ROUNDS), mch = median(ch, ROUNDS);
	printf("   CPU seconds (user+sys, medians): floor %.2f s   direct %.2f s (%.1fx)   via hub %.2f s (%.1fx)", mcf,
	       mcd, mcd / mcf, mch, mch / mcf);
	if (dv)
		printf("   doveadm backup %.2f s", median(cv, ROUNDS));
	printf("\n");
	uint32_t uv1 = inbox_uidvalidity(s);
	if (uv1 != uv0)
		printf("   NOTE: the source's INBOX UIDVALIDITY changed from %u to %u during these syncs: every empty\n"
		       "   replica made its own INBOX at creation, and a newer INBOX takes the name over (see the\n"
		       "   uid moves above)\n", uv0, uv1);
	print_store_size("the source replica:", src);
	print_hub_size("the hub:", hub);
	copies_first_sync(src, n, mf);
	mcrdt_store_close(s);
	for (int r = keep_rounds ? 0 : ROUNDS - 1; r < ROUNDS; r++) {
		char dir[4200];
		for (size_t i = 0; i < sizeof FULL_ARM / sizeof FULL_ARM[0]; i++) {
			path_in(dir, sizeof dir, "full-%s%d", FULL_ARM[i], r);
			scrap(dir);
		}
	}
	if (dv)
		rm_tree(dvdir);
}

/* ---- 2. incremental sync ---- */

struct pair {
	uint32_t n;
	char a[4200], b[4200];
	mcrdt_store *sa;           /* open, durable */
	double t[ROUNDS], noop[ROUNDS], open_b;
	struct mcrdt_sync_stats st[ROUNDS];
	struct phases ph[ROUNDS];
};

static const struct fill inc_fill = { 2048, 8192, false, 10000 };

static void pair_build(struct pair *p, uint32_t n)
{
	p->n = n;
	path_in(p->a, sizeof p->a, "inc%u-a", n);
	path_in(p->b, sizeof p->b, "inc%u-b", n);
	double t0 = now();
	mcrdt_store *a = open_store(p->a, true, true);
	fill(a, n, &inc_fill);
	double tb = now() - t0;
	mcrdt_store *b = open_store(p->b, true, true);
	mcrdt_store_close(b);
	struct mcrdt_sync_stats st;
	double ts = timed_sync(a, p->b, &st, NULL); /* a's no_fsync carries over to b */
	if (compare_dirs(a, p->b, "initial sync") != n)
		fail("initial sync of %u: wrong count", n);
	mcrdt_store_close(a);
	printf("   %u messages: built in %.1f s, first sync (into an empty replica, no_fsync) %.1f s\n", n, tb, ts);
	p->sa = open_store(p->a, false, false);
	t0 = now();
	b = open_store(p->b, false, false);
	p->open_b = now() - t0;
	mcrdt_store_close(b);
}

/* Memory of a first sync of p's replica a into an empty replica by the
 * command line tool, against opening a alone ('mcrdt status'); each a
 * process of its own, durable. */
static void first_sync_memory(const struct pair *p)
{
	char fresh[4200];
	path_in(fresh, sizeof fresh, "inc%u-fresh", p->n);
	struct peak open = cli_peak("status", p->a, NULL);
	mcrdt_store_close(open_store(fresh, true, false));
	double t0 = now();
	struct peak sync = cli_peak("sync", fresh, p->a, "--quiet", NULL);
	double ts = now() - t0;
	uint64_t n = messages_of(p->sa);
	if (compare_dirs(p->sa, fresh, "first sync by the command") != n)
		fail("first sync of %" PRIu64 " by the command: wrong count", n);
	printf("   memory, the command's first sync of the big replica (%" PRIu64 " messages) into an empty one\n"
	       "   (durable, %.1f s), against opening the replica alone (mcrdt status):\n"
	       "     heap (anonymous memory, sampled every 5 ms) %6.1f MB against %5.1f MB: %.0f bytes a message more\n"
	       "     RSS (the pages of mapped packs included)    %6.1f MB against %5.1f MB\n",
	       n, ts, sync.anon / 1024.0, open.anon / 1024.0, (sync.anon - open.anon) * 1024.0 / (double)n,
	       sync.rss / 1024.0, open.rss / 1024.0);
	scrap(fresh);
}

/* CHANGES appends and CHANGES flag changes on s. */
static void changes(mcrdt_store *s)
{
	struct fill f = inc_fill;
	f.batch = 0;
	fill(s, CHANGES, &f);
	mcrdt_mailbox *mb;
	CK(mcrdt_mailbox_select(s, "INBOX", &mb));
	struct mcrdt_select_info si;
	CK(mcrdt_mailbox_info(mb, &si));
	const char *const fl[] = { "\\Flagged", "\\Seen", "$Later" };
	for (int i = 0; i < CHANGES; i++) {
		char set[16];
		snprintf(set, sizeof set, "%u", 1 + rnd() % si.exists);
		const char *one = fl[rnd() % 3];
		CK(mcrdt_store_flags(mb, set, MCRDT_SEQ, rnd() % 2 ? MCRDT_FLAGS_ADD : MCRDT_FLAGS_REMOVE, &one, 1, 0,
				     NULL, NULL));
	}
	mcrdt_mailbox_close(mb);
}

static void pair_round(struct pair *p, int r)
{
	changes(p->sa);
	mcrdt_store *b = open_store(p->b, false, false);
	changes(b);
	mcrdt_store_close(b);
	run("sync");
	p->t[r] = timed_sync(p->sa, p->b, &p->st[r], &p->ph[r]);
	uint64_t want = p->n + (uint64_t)(r + 1) * 2 * CHANGES;
	if (compare_dirs(p->sa, p->b, "incremental sync") != want)
		fail("incremental sync of %u: %" PRIu64 " messages, expected %" PRIu64, p->n, messages_of(p->sa), want);
	struct mcrdt_sync_stats st;
	p->noop[r] = timed_sync(p->sa, p->b, &st, NULL);
	if (st.ops_received || st.uid_moves)
		fail("a sync right after a sync received %" PRIu64 " ops", st.ops_received);
}

static int cmp_char(const void *a, const void *b)
{
	return *(const unsigned char *)a - *(const unsigned char *)b;
}

/* count flag renames in a Maildir's cur/ (toggling F), by hand. */
static void dv_renames(const char *maildir, int count)
{
	char cur[4300];
	snprintf(cur, sizeof cur, "%s/cur", maildir);
	DIR *d = opendir(cur);
	if (!d)
		fail("opendir %s: %s", cur, strerror(errno));
	size_t n = 0, cap = 0;
	char **names = NULL;
	struct dirent *e;
	while ((e = readdir(d))) {
		if (e->d_name[0] == '.')
			continue;
		if (n == cap && !(names = realloc(names, (cap = cap ? cap * 2 : 1024) * sizeof *names)))
			fail("out of memory");
		if (!(names[n++] = strdup(e->d_name)))
			fail("out of memory");
	}
	closedir(d);
	if (n == 0)
		fail("%s is empty", cur);
	int dfd = open(cur, O_RDONLY | O_DIRECTORY);
	for (int i = 0; i < count; i++) {
		char *old = names[rnd() % n], neu[512];
		char *info = strstr(old, ":2,");
		if (!info)
			continue;
		/* toggle F, keeping the info letters in ASCII order */
		char letters[64];
		size_t nl = 0;
		bool had = false;
		for (const char *q = info + 3; *q && nl < sizeof letters - 2; q++) {
			if (*q == 'F')
				had = true;
			else
				letters[nl++] = *q;
		}
		if (!had)
			letters[nl++] = 'F';
		letters[nl] = 0;
		qsort(letters, nl, 1, cmp_char);
		snprintf(neu, sizeof neu, "%.*s:2,%s", (int)(info - old), old, letters);
		if (renameat(dfd, old, dfd, neu) != 0)
			fail("rename %s/%s: %s", cur, old, strerror(errno));
		for (size_t k = 0; k < n; k++)
			if (names[k] == old) {
				free(old);
				if (!(names[k] = strdup(neu)))
					fail("out of memory");
				break;
			}
	}
	close(dfd);
	for (size_t k = 0; k < n; k++)
		free(names[k]);
	free(names);
}

/* doveadm sync of two Maildirs of p's size after CHANGES flag renames by
 * hand on each side, against p's median (ours: 2 * CHANGES changes on each
 * side). */
static void dv_incremental(const struct pair *p)
{
	double ours = median(p->t, ROUNDS);
	/* Two Maildirs of p's size: a copy of a's, opened once by doveadm
	 * (index, uidlist, mailbox GUIDs), and a cp -a of that. */
	char dvdir[4200], x[4300], y[4300], args[9000], state[4096];
	path_in(dvdir, sizeof dvdir, "dvinc");
	snprintf(x, sizeof x, "%s/x", dvdir);
	snprintf(y, sizeof y, "%s/y", dvdir);
	if (mkdir(dvdir, 0755) != 0)
		fail("mkdir %s: %s", dvdir, strerror(errno));
	copy_maildir(p->a, x);
	dv_own(dvdir);
	double tb = doveadm(x, "mailbox status messages '*'", NULL, 0);
	if (tb >= 0)
		run("cp -a '%s' '%s'", x, y);
	snprintf(args, sizeof args, "sync -s '' maildir:%s", y);
	double ti = tb < 0 ? -1 : doveadm(x, args, state, sizeof state);
	if (ti < 0) {
		printf("   doveadm sync, %u messages: skipped (doveadm failed)\n", p->n);
		rm_tree(dvdir);
		return;
	}
	printf("   doveadm: two Maildirs of %u messages (indexing one %.1f s, then cp -a; first sync %.1f s);\n"
	       "   %d flag renames by hand (%d in each), then doveadm sync; %d rounds, alternating a\n"
	       "   stateless sync (compares everything) and an incremental one (-s STATE of the sync before):\n",
	       p->n, tb, ti, 2 * CHANGES, CHANGES, ROUNDS);
	double tfull[ROUNDS], tstate[ROUNDS];
	for (int r = 0; r < ROUNDS; r++) {
		dv_renames(x, CHANGES);
		dv_renames(y, CHANGES);
		run("sync");
		snprintf(args, sizeof args, "sync -s '' maildir:%s", y);
		if ((tfull[r] = doveadm(x, args, state, sizeof state)) < 0)
			fail("doveadm sync failed");
		dv_renames(x, CHANGES);
		dv_renames(y, CHANGES);
		run("sync");
		snprintf(args, sizeof args, "sync -s '%s' maildir:%s", state, y);
		if ((tstate[r] = doveadm(x, args, state, sizeof state)) < 0)
			fail("doveadm sync -s failed");
		char l1[4400], l2[4400];
		path_in(l1, sizeof l1, "dvinc.x");
		path_in(l2, sizeof l2, "dvinc.y");
		run("ls '%s/cur' | sort >'%s'; ls '%s/cur' | sort >'%s'", x, l1, y, l2);
		snprintf(args, sizeof args, "cmp -s '%s' '%s'", l1, l2);
		bool same = system(args) == 0;
		printf("   round %d: stateless %.3f s   with state %.3f s   (cur/ of both: %s)\n", r + 1, tfull[r],
		       tstate[r], same ? "the same file names" : "DIFFERENT file names");
	}
	double mfull = median(tfull, ROUNDS), mstate = median(tstate, ROUNDS);
	printf("   doveadm sync, %u messages: stateless %.3f s = %.1fx ours; with state %.3f s = %.1fx ours\n"
	       "   (target >= 30x; ours: %.3f s for %d changes on each side, theirs: %d renames each side)\n",
	       p->n, mfull, mfull / ours, mstate, mstate / ours, ours, 2 * CHANGES, CHANGES);
	rm_tree(dvdir);
}

/* The round whose time is the median (ROUNDS is odd), and the slowest. */
static int round_at(const double *t, bool slowest)
{
	double m = median(t, ROUNDS);
	int at = 0;
	for (int r = 0; r < ROUNDS; r++)
		if (slowest ? t[r] > t[at] : t[r] == m)
			at = r;
	return at;
}

static void print_pair(const struct pair *p)
{
	printf("   %7u messages: %.3f s (no-op sync %.3f s; opening the other replica alone %.3f s)\n", p->n,
	       median(p->t, ROUNDS), median(p->noop, ROUNDS), p->open_b);
	/* The slowest is usually the round whose maintenance merged the small
	 * packs (every few syncs): its phases apart from the median round's. */
	for (int k = 0; k < 2; k++) {
		int r = round_at(p->t, k == 1);
		char label[64];
		snprintf(label, sizeof label, "     %s round (%d) ", k ? "slowest" : "median", r + 1);
		print_phases(label, &p->ph[r], p->t[r]);
		if (k == 0)
			print_stats(label, &p->st[r]);
	}
}

static void section_incremental(uint32_t big)
{
	printf("\n2. Incremental two-way sync, %d appends + %d flag changes on each side of two synced replicas\n"
	       "   (INBOX, log-uniform 2-8 KiB). The big pairs are built with no_fsync; the timed handles are\n"
	       "   durable. mcrdt_sync(a, b_dir) opens b itself (that open is in the time). %d interleaved\n"
	       "   rounds (small, mid, big); each is checked (same mailboxes, UIDs, flags on both) and followed\n"
	       "   by a second sync with nothing to do.\n",
	       CHANGES, CHANGES, ROUNDS);
	static struct pair pairs[3];
	const uint32_t sizes[3] = { SMALL_N, MID_N, big };
	for (int k = 0; k < 3; k++)
		pair_build(&pairs[k], sizes[k]);
	for (int r = 0; r < ROUNDS; r++) {
		printf("   round %d:", r + 1);
		for (int k = 0; k < 3; k++) {
			pair_round(&pairs[k], r);
			printf("   %u: %.3f s (then no-op %.3f s)", pairs[k].n, pairs[k].t[r], pairs[k].noop[r]);
		}
		printf("\n");
	}
	for (int k = 0; k < 3; k++)
		print_pair(&pairs[k]);
	printf("   big/small: %.2fx (target <= 5x)\n", median(pairs[2].t, ROUNDS) / median(pairs[0].t, ROUNDS));
	print_store_size("big replica a:", pairs[2].a);
	print_store_size("big replica b:", pairs[2].b);
	first_sync_memory(&pairs[2]);
	/* The target's own size (20,000), and the big pair's. */
	if (!g_have_doveadm)
		printf("   doveadm sync: skipped (doveadm not installed)\n");
	for (int k = 1; k < 3 && g_have_doveadm; k++)
		dv_incremental(&pairs[k]);
	for (int k = 0; k < 3; k++) {
		mcrdt_store_close(pairs[k].sa);
		scrap(pairs[k].a);
		scrap(pairs[k].b);
	}
}

/* ---- 3. UID moves ---- */

struct moves {
	uint64_t delivered, moves_setup, moves_during, moves_after, syncs, visible;
	unsigned passes;
};

/* What a client of one replica has been shown: GUID -> UID in INBOX. */
struct shown {
	struct mcrdt_message *v;   /* sorted by GUID */
	size_t n;
};

/* Refreshes what replica s shows; counts the messages whose UID changed. */
static uint64_t observe(mcrdt_store *s, struct shown *sh)
{
	struct mcrdt_message *v;
	size_t n;
	uint64_t moved = 0;
	fetch_all(s, "INBOX", &v, &n);
	if (n)
		qsort(v, n, sizeof *v, cmp_msg_guid);
	for (size_t i = 0; i < n; i++) {
		struct mcrdt_message *old =
			sh->n ? bsearch(&v[i], sh->v, sh->n, sizeof *sh->v, cmp_msg_guid) : NULL;
		moved += old && old->uid != v[i].uid;
	}
	mcrdt_messages_free(sh->v, sh->n);
	sh->v = v;
	sh->n = n;
	return moved;
}

/* Syncs replica i with the hub until nothing moves; returns uid_moves. */
static uint64_t hub_sync(mcrdt_store *s, const char *hub, struct shown *sh, struct moves *m, uint64_t *activity)
{
	struct mcrdt_sync_stats st;
	timed_sync(s, hub, &st, NULL);
	m->syncs++;
	m->visible += observe(s, sh);
	if (activity)
		*activity += st.ops_received + st.uid_moves + st.ops_sent;
	return st.uid_moves;
}

/* Every replica syncs with the hub, pass after pass, until a pass brings
 * nothing new; returns the uid_moves. */
static uint64_t converge(mcrdt_store **r, const char *hub, struct shown *sh, struct moves *m, const char *tag)
{
	uint64_t moves = 0;
	for (unsigned pass = 1;; pass++) {
		if (pass > 10)
			fail("moves (%s): the replicas did not converge in 10 passes", tag);
		uint64_t act = 0;
		for (int i = 0; i < 3; i++)
			moves += hub_sync(r[i], hub, &sh[i], m, &act);
		m->passes = pass;
		if (act == 0)
			break;
	}
	return moves;
}

/* Three replicas made empty and synced until they agree (their INBOXes
 * settled), then rounds of deliveries: each round every replica delivers
 * 1-5 messages (all: one, with probability 1/10), then one random replica
 * (all: every replica, in random order) syncs with the hub. Then everyone
 * syncs until a pass brings nothing new. */
static void moves_run(const char *tag, int rounds, bool all, struct moves *m, bool sizes)
{
	char hub[4200], dir[3][4200];
	mcrdt_store *r[3];
	struct shown sh[3];
	memset(sh, 0, sizeof sh);
	path_in(hub, sizeof hub, "moves-%s-hub", tag);
	CK(mcrdt_hub_init(hub));
	struct fill f = inc_fill;
	f.batch = 0;
	memset(m, 0, sizeof *m);
	for (int i = 0; i < 3; i++) {
		path_in(dir[i], sizeof dir[i], "moves-%s-%d", tag, i);
		r[i] = open_store(dir[i], true, false);
	}
	m->moves_setup = converge(r, hub, sh, m, tag);
	m->visible = 0;
	for (int k = 0; k < rounds; k++) {
		for (int i = 0; i < 3; i++) {
			uint32_t c = all ? (rnd() % 10 == 0) : 1 + rnd() % 5;
			fill(r[i], c, &f);
			m->delivered += c;
			m->visible += observe(r[i], &sh[i]);
		}
		int order[3] = { 0, 1, 2 };
		for (int i = 2; i > 0; i--) {
			int j = (int)(rnd() % (unsigned)(i + 1)), t = order[i];
			order[i] = order[j];
			order[j] = t;
		}
		for (int i = 0; i < (all ? 3 : 1); i++)
			m->moves_during += hub_sync(r[order[i]], hub, &sh[order[i]], m, NULL);
	}
	m->moves_after = converge(r, hub, sh, m, tag);
	for (int i = 1; i < 3; i++)
		if (compare(r[0], r[i], "three replicas after convergence") != m->delivered)
			fail("moves (%s): %" PRIu64 " messages, %" PRIu64 " delivered", tag, messages_of(r[0]),
			     m->delivered);
	if (sizes) {
		print_store_size("a replica:", dir[0]);
		print_hub_size("the hub:", hub);
	}
	for (int i = 0; i < 3; i++) {
		mcrdt_store_close(r[i]);
		mcrdt_messages_free(sh[i].v, sh[i].n);
	}
}

static void print_moves(const struct moves *m)
{
	printf("      %" PRIu64 " delivered; uid_moves: %" PRIu64 " during + %" PRIu64 " converging (%u passes; %" PRIu64
	       " syncs in all)\n"
	       "      = %.0f per 1,000 delivered (claims issued; a colliding UID is burned for both messages);\n"
	       "      seen by clients (a GUID shown under one UID, later under another, on one replica, checked\n"
	       "      after every append and sync): %" PRIu64 " = %.0f per 1,000 delivered\n",
	       m->delivered, m->moves_during, m->moves_after, m->passes, m->syncs,
	       1000.0 * (double)(m->moves_during + m->moves_after) / (double)m->delivered, m->visible,
	       1000.0 * (double)m->visible / (double)m->delivered);
}

static void section_moves(void)
{
	printf("\n3. UID moves (mcrdt_sync_stats.uid_moves, summed over every sync) per 1,000 delivered messages:\n"
	       "   three empty replicas sync with a hub until they agree, then deliver to INBOX and sync through\n"
	       "   the hub, then all sync until a pass brings nothing new; the replicas are then checked equal.\n");
	struct moves a, b;
	moves_run("burst", 30, false, &a, true);
	printf("   a) 30 rounds: each replica appends 1-5, then one random replica syncs (setup: %" PRIu64
	       " uid moves):\n", a.moves_setup);
	print_moves(&a);
	moves_run("rare", 150, true, &b, false);
	printf("   b) 150 rounds: each replica appends one with probability 1/10, then all three sync in random\n"
	       "      order (setup: %" PRIu64 " uid moves):\n", b.moves_setup);
	print_moves(&b);
	printf("   (DESIGN.md's simulation: 26 (2 replicas) to 152 (5 replicas) when deliveries are rare next to syncs)\n");
}

int main(int argc, char **argv)
{
	if (argc > 2 && strcmp(argv[1], "--peak-rss") == 0) {
		struct peak pk = peak_here(argv + 2);
		printf("%ld %ld\n", pk.rss, pk.anon);
		return pk.rss > 0 ? 0 : 1;
	}
	if (argc < 2 || argc > 4)
		fail("usage: bench_sync DIR [N_FULL [N_BIG]]");
	long nfull = argc > 2 ? atol(argv[2]) : 10000, nbig = argc > 3 ? atol(argv[3]) : 100000;
	if (nfull <= 0 || nbig <= 0 || nfull > 10000000 || nbig > 10000000)
		fail("usage: bench_sync DIR [N_FULL [N_BIG]]");
	bench_root_make(argv[1], "bench-sync");
	setvbuf(stdout, NULL, _IOLBF, 0);
	doveadm_init();
	printf("bench_sync in %s (mcrdt %s), N_FULL %ld, N_BIG %ld; doveadm: %s\n", bench_root, MCRDT_VERSION, nfull,
	       nbig, g_have_doveadm ? (geteuid() == 0 ? "yes (run as nobody)" : "yes") : "not installed");
	double t0 = now();
	const char *only = getenv("MCRDT_BENCH_ONLY");
	if (!only || strcmp(only, "full") == 0)
		section_full((uint32_t)nfull);
	if (!only || strcmp(only, "incremental") == 0)
		section_incremental((uint32_t)nbig);
	if (!only || strcmp(only, "moves") == 0)
		section_moves();
	printf("\nall results checked in %.0f s; removing %s\n", now() - t0, bench_root);
	bench_ok = true;
	return 0;
}
