/*
 * bench/bench_store.c — the whole engine (include/mcrdt/store.h) against
 * plain system calls, through the public API only.
 *
 * 1. Durable append of 4 KiB messages vs a raw durable delivery loop written
 *    out here: open(O_EXCL) in tmp/, write, fsync, close, rename into new/,
 *    fsync new/. Interleaved rounds, median of each side.
 * 2. Batched append (batch_begin, 1000 appends, commit) vs the same raw loop
 *    without the per-message fsync (one syncfs at the end); and, when strace
 *    is installed, the fsync/fdatasync/syncfs calls a message costs.
 * 3. FETCH 1:* of a 100,000-message INBOX (flags of all) vs a raw readdir of
 *    cur/ and new/ (flags from file names), 1,000 single-UID fetches, and a
 *    fetch of 5,000 scattered messages by UID and by sequence number.
 * 4. STATUS of a store of BIG_N messages, its build time and memory, and
 *    closing and reopening it (from the snapshot written at close).
 * 5. STORE +\Flagged on 10,000 messages in one call, and 1,000 single-message
 *    STOREs, all durable, vs raw renames of the files plus a directory fsync.
 *
 * Usage: bench_store [DIR [DURABLE_N [BIG_N]]]   (defaults: ., 300, 1000000)
 * Everything happens in a fresh mkdtemp directory under DIR, removed at the
 * end. Figures, not asserts: the exit status is non-zero only when an API
 * call fails or a result is wrong.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bench/bench.h"
#define BENCH_NAME "bench_store"
#include "bench/harness.h"
#include "mcrdt/mcrdt.h"

#define ROUNDS 3
#define BATCH_N 1000
#define FETCH_N 100000
#define FLAGS_N 10000
#define SINGLE_N 1000

static uint64_t rng = 0x9e3779b97f4a7c15u;
static uint32_t rnd(void)
{
	return bench_rnd(&rng);
}

/* A message of exactly len bytes (len >= 160), unique by n. */
static size_t make_msg(char *buf, size_t len, unsigned long n)
{
	int h = snprintf(buf, len,
			 "From: bench@example.org\r\nTo: user@example.org\r\nSubject: bench %lu\r\n"
			 "Message-ID: <%lu.bench@example.org>\r\n\r\n",
			 n, n);
	if (h < 0 || (size_t)h + 2 > len)
		fail("message too small");
	for (size_t i = (size_t)h; i < len; i++)
		buf[i] = (i % 72 == 71) ? '\n' : 'a' + (char)(i % 26);
	buf[len - 1] = '\n';
	return len;
}

static long rss_kib(const char *field)
{
	FILE *f = fopen("/proc/self/status", "r");
	char line[256];
	long v = -1;
	size_t fl = strlen(field);
	while (f && fgets(line, sizeof line, f))
		if (strncmp(line, field, fl) == 0 && line[fl] == ':')
			v = atol(line + fl + 1);
	if (f)
		fclose(f);
	return v;
}

static uint32_t inbox_messages(mcrdt_store *s)
{
	struct mcrdt_status st;
	CK(mcrdt_mailbox_status(s, "INBOX", &st));
	return st.messages;
}

/* ---- the raw loop (as in bench_maildir) ---- */

static unsigned long raw_seq;

static void raw_maildir(const char *root)
{
	char p[4200];
	if (mkdir(root, 0700) != 0)
		fail("mkdir %s: %s", root, strerror(errno));
	const char *sub[] = { "tmp", "new", "cur" };
	for (int i = 0; i < 3; i++) {
		snprintf(p, sizeof p, "%s/%s", root, sub[i]);
		if (mkdir(p, 0700) != 0)
			fail("mkdir %s: %s", p, strerror(errno));
	}
}

/* What a careful hand-written deliverer does, nothing more. msg/s. */
static double raw_loop(const char *root, int n, char *msg, size_t len, bool durable)
{
	char tmpd[4200], newd[4200];
	if ((size_t)snprintf(tmpd, sizeof tmpd, "%s/tmp", root) >= sizeof tmpd ||
	    (size_t)snprintf(newd, sizeof newd, "%s/new", root) >= sizeof newd)
		fail("%s: path too long", root);
	int tfd = open(tmpd, O_RDONLY | O_DIRECTORY), nfd = open(newd, O_RDONLY | O_DIRECTORY);
	if (tfd < 0 || nfd < 0)
		fail("raw open: %s", strerror(errno));
	double t0 = now();
	for (int i = 0; i < n; i++) {
		char name[64];
		unsigned long k = raw_seq++;
		snprintf(name, sizeof name, "raw.%lu", k);
		make_msg(msg, len, k);
		int fd = openat(tfd, name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW, 0600);
		if (fd < 0 || write(fd, msg, len) != (ssize_t)len || (durable && fsync(fd)) || close(fd))
			fail("raw write: %s", strerror(errno));
		if (renameat(tfd, name, nfd, name) || (durable && fsync(nfd)))
			fail("raw rename: %s", strerror(errno));
	}
	if (!durable && (syncfs(nfd) || fsync(nfd)))
		fail("raw sync: %s", strerror(errno));
	double dt = now() - t0;
	close(tfd);
	close(nfd);
	return n / dt;
}

static unsigned long msg_seq;

/* n appends to INBOX, in one batch if batch. msg/s. */
static double store_loop(mcrdt_store *s, int n, char *msg, size_t len, bool batch)
{
	double t0 = now();
	if (batch)
		CK(mcrdt_store_batch_begin(s));
	for (int i = 0; i < n; i++) {
		make_msg(msg, len, 1000000000ul + msg_seq++);
		uint32_t uid = 0;
		CK(mcrdt_append(s, "INBOX", msg, len, NULL, NULL, &uid));
		if (uid == 0)
			fail("mcrdt_append gave UID 0");
	}
	if (batch)
		CK(mcrdt_store_batch_commit(s));
	return n / (now() - t0);
}

static size_t count_dir(const char *dir)
{
	DIR *d = opendir(dir);
	if (!d)
		fail("opendir %s: %s", dir, strerror(errno));
	size_t n = 0;
	struct dirent *e;
	while ((e = readdir(d)))
		n += e->d_name[0] != '.';
	closedir(d);
	return n;
}

/* ---- counting syncs with strace ---- */

/* Markers the parent finds in the strace output: fsync on a bad fd. */
#define MARK_BATCH_BEGIN (-2)
#define MARK_BATCH_END (-3)
#define MARK_DURABLE_BEGIN (-4)
#define MARK_DURABLE_END (-5)
#define MARK_STORE_BEGIN (-6)
#define MARK_STORE_END (-7)
#define SYNC_DURABLE_N 100

/* Runs under strace: one batch of n appends, then SYNC_DURABLE_N durable
 * ones, then one STORE +\Flagged on all of them. */
static int sync_child(const char *dir, int n)
{
	mcrdt_store *s = open_store(dir, true, false);
	char msg[4096];
	store_loop(s, 1, msg, sizeof msg, false); /* one-time costs before the markers */
	(void)fsync(MARK_BATCH_BEGIN);
	store_loop(s, n, msg, sizeof msg, true);
	(void)fsync(MARK_BATCH_END);
	(void)fsync(MARK_DURABLE_BEGIN);
	store_loop(s, SYNC_DURABLE_N, msg, sizeof msg, false);
	(void)fsync(MARK_DURABLE_END);
	mcrdt_mailbox *mb;
	const char *flagged[] = { "\\Flagged" };
	CK(mcrdt_mailbox_select(s, "INBOX", &mb));
	(void)fsync(MARK_STORE_BEGIN);
	CK(mcrdt_store_flags(mb, "1:*", MCRDT_SEQ, MCRDT_FLAGS_ADD, flagged, 1, 0, NULL, NULL));
	(void)fsync(MARK_STORE_END);
	mcrdt_mailbox_close(mb);
	uint32_t got = inbox_messages(s);
	mcrdt_store_close(s);
	if (got != (uint32_t)(n + 1 + SYNC_DURABLE_N))
		fail("sync child: %u messages, expected %d", got, n + 1 + SYNC_DURABLE_N);
	return 0;
}

struct sync_counts {
	long fsync, fdatasync, syncfs;
};

/* The STORE part of the strace run, printed in section 5. */
static struct sync_counts g_store_syncs;
static bool g_have_store_syncs;

/* Counts syncs between the markers begin and end in an strace -f log. */
static bool parse_strace(const char *file, int begin, int end, struct sync_counts *c)
{
	FILE *f = fopen(file, "r");
	if (!f)
		return false;
	char line[1024];
	int in = 0, seen_end = 0;
	memset(c, 0, sizeof *c);
	while (fgets(line, sizeof line, f)) {
		char *p = line;
		while (*p >= '0' && *p <= '9')
			p++;
		while (*p == ' ')
			p++;
		const char *names[] = { "fsync(", "fdatasync(", "syncfs(" };
		for (int k = 0; k < 3; k++) {
			size_t l = strlen(names[k]);
			if (strncmp(p, names[k], l) != 0)
				continue;
			int fd = atoi(p + l);
			if (k == 0 && fd == begin)
				in = 1;
			else if (k == 0 && fd == end)
				in = 0, seen_end = 1;
			else if (in && fd >= 0)
				*(k == 0 ? &c->fsync : k == 1 ? &c->fdatasync : &c->syncfs) += 1;
		}
	}
	fclose(f);
	return seen_end;
}

static void count_syncs(const char *self, int n)
{
	if (system("command -v strace >/dev/null 2>&1") != 0) {
		printf("  fsyncs per message: skipped (strace not installed)\n");
		return;
	}
	char dir[4200], out[4200], nbuf[32];
	path_in(dir, sizeof dir, "strace-store");
	path_in(out, sizeof out, "strace.out");
	snprintf(nbuf, sizeof nbuf, "%d", n);
	pid_t pid = fork();
	if (pid < 0)
		fail("fork: %s", strerror(errno));
	if (pid == 0) {
		int nul = open("/dev/null", O_WRONLY);
		if (nul >= 0)
			dup2(nul, 2);
		execlp("strace", "strace", "-f", "-qq", "-o", out, "-e", "trace=fsync,fdatasync,syncfs", self,
		       "--sync-child", dir, nbuf, (char *)NULL);
		_exit(127);
	}
	int status;
	if (waitpid(pid, &status, 0) < 0 || !WIFEXITED(status) || WEXITSTATUS(status) != 0) {
		/* If strace ran but the child under it failed, that is an API failure. */
		struct sync_counts c;
		if (parse_strace(out, MARK_BATCH_BEGIN, MARK_BATCH_END, &c))
			fail("the child under strace failed (exit %d)", WEXITSTATUS(status));
		printf("  fsyncs per message: skipped (strace could not run, exit %d)\n", WEXITSTATUS(status));
		return;
	}
	struct sync_counts b, d;
	if (!parse_strace(out, MARK_BATCH_BEGIN, MARK_BATCH_END, &b) ||
	    !parse_strace(out, MARK_DURABLE_BEGIN, MARK_DURABLE_END, &d) ||
	    !parse_strace(out, MARK_STORE_BEGIN, MARK_STORE_END, &g_store_syncs))
		fail("markers missing from the strace output %s", out);
	g_have_store_syncs = true;
	long bt = b.fsync + b.fdatasync + b.syncfs, dt = d.fsync + d.fdatasync + d.syncfs;
	printf("  fsyncs per message (strace -f, between markers in a child process):\n");
	printf("    batch of %d:     %.3f  (%ld fsync + %ld fdatasync + %ld syncfs in all; raw loop: "
	       "1 syncfs + 1 fsync per batch)\n",
	       n, (double)bt / n, b.fsync, b.fdatasync, b.syncfs);
	printf("    durable append:    %.2f  (%ld fsync + %ld fdatasync + %ld syncfs for %d appends; "
	       "raw loop: 2 fsyncs per message)\n",
	       (double)dt / SYNC_DURABLE_N, d.fsync, d.fdatasync, d.syncfs, SYNC_DURABLE_N);
}

/* ---- sections ---- */

static void section_append(const char *self, int durable_n)
{
	char sdir[4200], rdir[4200];
	path_in(sdir, sizeof sdir, "append");
	path_in(rdir, sizeof rdir, "raw");
	raw_maildir(rdir);
	mcrdt_store *s = open_store(sdir, true, false);
	char msg[4096];

	printf("\n1. Durable append, 4 KiB messages, default options (fsync on), %d per round\n", durable_n);
	printf("   baseline: raw loop on the same file system: open O_EXCL in tmp/, write, fsync, close,\n"
	       "   rename into new/, fsync new/. %d interleaved rounds (raw, store, raw, store, ...);\n"
	       "   the median of each side is compared.\n", ROUNDS);
	double raw[ROUNDS], lib[ROUNDS];
	for (int r = 0; r < ROUNDS; r++) {
		raw[r] = raw_loop(rdir, durable_n, msg, sizeof msg, true);
		lib[r] = store_loop(s, durable_n, msg, sizeof msg, false);
		printf("   round %d: store %8.0f msg/s   raw %8.0f msg/s\n", r + 1, lib[r], raw[r]);
	}
	double lm = median(lib, ROUNDS), rm = median(raw, ROUNDS);
	printf("   durable append:  %8.0f msg/s   raw loop %8.0f msg/s   %5.1f%% of raw (medians; target >= 75%%)\n",
	       lm, rm, 100 * lm / rm);

	printf("\n2. Batched append: batch_begin, %d appends, commit (4 KiB messages)\n", BATCH_N);
	printf("   baseline: the raw loop without the per-message fsyncs, one syncfs + fsync new/ at the\n"
	       "   end. %d interleaved rounds, medians compared.\n", ROUNDS);
	for (int r = 0; r < ROUNDS; r++) {
		raw[r] = raw_loop(rdir, BATCH_N, msg, sizeof msg, false);
		lib[r] = store_loop(s, BATCH_N, msg, sizeof msg, true);
		printf("   round %d: store %8.0f msg/s   raw %8.0f msg/s\n", r + 1, lib[r], raw[r]);
	}
	lm = median(lib, ROUNDS);
	rm = median(raw, ROUNDS);
	printf("   batched append:  %8.0f msg/s   raw loop without fsync %8.0f msg/s   %5.1f%% of raw (medians)\n",
	       lm, rm, 100 * lm / rm);

	uint32_t want = (uint32_t)(ROUNDS * (durable_n + BATCH_N)), got = inbox_messages(s);
	if (got != want)
		fail("section 1-2: INBOX holds %u messages, expected %u", got, want);
	char newd[4300];
	snprintf(newd, sizeof newd, "%s/new", rdir);
	if (count_dir(newd) != (size_t)want)
		fail("raw new/ holds %zu files, expected %u", count_dir(newd), want);
	mcrdt_store_close(s);
	count_syncs(self, BATCH_N);
}

static void build_store(mcrdt_store *s, const char *mailbox, uint32_t n, uint32_t batch, size_t len,
			bool half_seen)
{
	char msg[4096];
	const char *seen[] = { "\\Seen" };
	struct mcrdt_append_opts ao = MCRDT_APPEND_OPTS_INIT;
	ao.internaldate = 1700000000;
	for (uint32_t done = 0; done < n;) {
		CK(mcrdt_store_batch_begin(s));
		for (uint32_t k = 0; k < batch && done < n; k++, done++) {
			make_msg(msg, len, 2000000000ul + msg_seq++);
			bool flag = half_seen && done % 2 == 0;
			ao.flags = flag ? seen : NULL;
			ao.nflags = flag ? 1 : 0;
			CK(mcrdt_append(s, mailbox, msg, len, &ao, NULL, NULL));
		}
		CK(mcrdt_store_batch_commit(s));
	}
}

/* Raw: readdir cur/ and new/ and read the flags from the names. */
static double raw_flags(const char *root, size_t *n_out, size_t *seen_out)
{
	double t0 = now();
	size_t n = 0, seen = 0;
	const char *sub[] = { "cur", "new" };
	for (int i = 0; i < 2; i++) {
		char p[4300];
		snprintf(p, sizeof p, "%s/%s", root, sub[i]);
		DIR *d = opendir(p);
		if (!d)
			fail("opendir %s: %s", p, strerror(errno));
		struct dirent *e;
		while ((e = readdir(d))) {
			if (e->d_name[0] == '.')
				continue;
			n++;
			const char *info = strstr(e->d_name, ":2,");
			seen += info && strchr(info + 3, 'S');
		}
		closedir(d);
	}
	*n_out = n;
	*seen_out = seen;
	return now() - t0;
}

static void section_fetch(void)
{
	char dir[4200];
	path_in(dir, sizeof dir, "fetch");
	printf("\n3. FETCH FLAGS of a %d-message INBOX (200-byte messages, half \\Seen)\n", FETCH_N);
	printf("   baseline: readdir of cur/ and new/, flags read from the file names (what an\n"
	       "   index-less Maildir reader does).\n");
	mcrdt_store *s = open_store(dir, true, true);
	double t0 = now();
	build_store(s, "INBOX", FETCH_N, 10000, 200, true);
	printf("   built in %.2f s (no_fsync, batches of 10000)\n", now() - t0);

	size_t rn, rseen;
	double rawt = raw_flags(dir, &rn, &rseen);
	double rawt2 = raw_flags(dir, &rn, &rseen);
	rawt = rawt < rawt2 ? rawt : rawt2;
	if (rn != FETCH_N || rseen != FETCH_N / 2)
		fail("raw readdir: %zu files, %zu \\Seen; expected %d, %d", rn, rseen, FETCH_N, FETCH_N / 2);

	mcrdt_mailbox *mb;
	t0 = now();
	CK(mcrdt_mailbox_select(s, "INBOX", &mb));
	double selt = now() - t0;
	struct mcrdt_select_info si;
	CK(mcrdt_mailbox_info(mb, &si));
	if (si.exists != FETCH_N)
		fail("select INBOX: exists %u, expected %d", si.exists, FETCH_N);
	struct mcrdt_message *v;
	size_t n;
	t0 = now();
	CK(mcrdt_fetch(mb, "1:*", MCRDT_SEQ, &v, &n));
	double ft = now() - t0;
	size_t seen = 0;
	for (size_t i = 0; i < n; i++) {
		seen += (v[i].sysflags & MCRDT_FLAG_SEEN) != 0;
		if (v[i].seq != i + 1)
			fail("fetch 1:*: message %zu has seq %u", i, v[i].seq);
	}
	if (n != FETCH_N || seen != FETCH_N / 2)
		fail("fetch 1:*: %zu messages, %zu \\Seen; expected %d, %d", n, seen, FETCH_N, FETCH_N / 2);
	/* A second time, warm. */
	struct mcrdt_message *v2;
	size_t n2;
	t0 = now();
	CK(mcrdt_fetch(mb, "1:*", MCRDT_SEQ, &v2, &n2));
	double ft2 = now() - t0;
	mcrdt_messages_free(v2, n2);
	printf("   select:         %8.3f s\n", selt);
	printf("   fetch 1:*:      %8.3f s  %10.0f msg/s  (again: %.3f s)   raw readdir %.3f s (best of 2), %.2fx raw\n",
	       ft, n / ft, ft2, rawt, ft / rawt);

	double lat[SINGLE_N];
	for (int i = 0; i < SINGLE_N; i++) {
		uint32_t uid = v[rnd() % n].uid;
		char set[16];
		snprintf(set, sizeof set, "%u", uid);
		struct mcrdt_message *one;
		size_t k;
		double t1 = now();
		CK(mcrdt_fetch(mb, set, MCRDT_UID, &one, &k));
		lat[i] = now() - t1;
		if (k != 1 || one[0].uid != uid)
			fail("UID fetch %u: %zu messages (first UID %u)", uid, k, k ? one[0].uid : 0);
		mcrdt_messages_free(one, k);
	}
	double sum = 0;
	for (int i = 0; i < SINGLE_N; i++)
		sum += lat[i];
	double med = median(lat, SINGLE_N);
	printf("   %d single-UID fetches (random UIDs): %.1f us per fetch mean, %.1f us median, %.1f us max\n",
	       SINGLE_N, sum / SINGLE_N * 1e6, med * 1e6, lat[SINGLE_N - 1] * 1e6);

	/* A set of many ranges: every other message, by UID and by sequence number. */
	enum { SCATTER = 5000 };
	char *uset = malloc(SCATTER * 12), *sset = malloc(SCATTER * 12);
	if (!uset || !sset)
		fail("out of memory");
	size_t up = 0, sp = 0;
	for (int i = 0; i < SCATTER; i++) {
		size_t k = (size_t)i * 2 * (n / (2 * SCATTER));
		up += (size_t)sprintf(uset + up, "%s%u", i ? "," : "", v[k].uid);
		sp += (size_t)sprintf(sset + sp, "%s%u", i ? "," : "", v[k].seq);
	}
	double ts[2];
	for (int kind = 0; kind < 2; kind++) {
		struct mcrdt_message *m;
		size_t k;
		double t1 = now();
		CK(mcrdt_fetch(mb, kind ? uset : sset, kind ? MCRDT_UID : MCRDT_SEQ, &m, &k));
		ts[kind] = now() - t1;
		if (k != SCATTER)
			fail("fetch of %d scattered %s: %zu messages", SCATTER, kind ? "UIDs" : "seqs", k);
		mcrdt_messages_free(m, k);
	}
	free(uset);
	free(sset);
	printf("   fetch of %d scattered messages (%d ranges): by UID %.3f s, by sequence number %.3f s\n",
	       SCATTER, SCATTER, ts[1], ts[0]);
	mcrdt_messages_free(v, n);
	mcrdt_mailbox_close(mb);
	mcrdt_store_close(s);
}

/* The snapshot file's change time and size (0 when absent): the layout
 * store.h names, "mcrdt/" under the store; only to say whether close wrote one. */
static double snapshot_stat(const char *dir, double *mib)
{
	char p[4300];
	struct stat st;
	snprintf(p, sizeof p, "%s/mcrdt/snapshot", dir);
	if (stat(p, &st) != 0) {
		*mib = 0;
		return 0;
	}
	*mib = st.st_size / 1048576.0;
	return (double)st.st_ctim.tv_sec + st.st_ctim.tv_nsec / 1e9;
}

static void section_status(uint32_t big_n)
{
	char dir[4200];
	path_in(dir, sizeof dir, "big");
	printf("\n4. STATUS of a store of %u messages (200 bytes each, half \\Seen)\n", big_n);
	printf("   baseline: readdir of cur/ and new/ (what STATUS costs without an index).\n");
	mcrdt_store *s = open_store(dir, true, true);
	long rss0 = rss_kib("VmRSS");
	double t0 = now();
	build_store(s, "INBOX", big_n, 10000, 200, true);
	double bt = now() - t0;
	printf("   built in %.1f s, %.0f msg/s (no_fsync, batches of 10000)\n", bt, big_n / bt);
	struct mcrdt_store_info info;
	CK(mcrdt_store_info(s, &info));
	if (info.messages != big_n)
		fail("store_info: %llu messages, expected %u", (unsigned long long)info.messages, big_n);
	printf("   mcrdt_store_info: memory %.1f MiB, %.1f bytes per message (DESIGN: < 200); %llu log records\n",
	       info.memory / 1048576.0, (double)info.memory / big_n, (unsigned long long)info.log_records);
	long rss1 = rss_kib("VmRSS");
	printf("   process RSS %.1f MiB (+%.1f MiB for the build, %.1f bytes per message), peak %.1f MiB\n",
	       rss1 / 1024.0, (rss1 - rss0) / 1024.0, (rss1 - rss0) * 1024.0 / big_n, rss_kib("VmHWM") / 1024.0);

	struct mcrdt_status st;
	t0 = now();
	CK(mcrdt_mailbox_status(s, "INBOX", &st));
	double first = now() - t0;
	if (st.messages != big_n || st.unseen != big_n / 2 || st.size != (uint64_t)big_n * 200)
		fail("status INBOX: messages %u unseen %u size %llu; expected %u, %u, %llu", st.messages,
		     st.unseen, (unsigned long long)st.size, big_n, big_n / 2, (unsigned long long)big_n * 200);
	int reps = 100;
	t0 = now();
	for (int i = 0; i < reps; i++)
		CK(mcrdt_mailbox_status(s, "INBOX", &st));
	double rep = (now() - t0) / reps;
	size_t rn, rseen;
	double rawt = raw_flags(dir, &rn, &rseen);
	if (rn != big_n)
		fail("raw readdir: %zu files, expected %u", rn, big_n);
	printf("   status: first call %.3f ms, repeated %.3f ms (mean of %d)   raw readdir %.3f s\n",
	       first * 1e3, rep * 1e3, reps, rawt);

	for (int cycle = 1; cycle <= 2; cycle++) {
		double mib, before = snapshot_stat(dir, &mib);
		t0 = now();
		mcrdt_store_close(s);
		double ct = now() - t0;
		double after = snapshot_stat(dir, &mib);
		t0 = now();
		s = open_store(dir, false, false);
		double ot = now() - t0;
		t0 = now();
		CK(mcrdt_mailbox_status(s, "INBOX", &st));
		double st1 = now() - t0;
		if (st.messages != big_n)
			fail("status after reopen: %u messages, expected %u", st.messages, big_n);
		char what[96];
		if (after == 0)
			snprintf(what, sizeof what, "no snapshot file");
		else
			snprintf(what, sizeof what, "%s snapshot, %.1f MiB", after != before ? "wrote a" : "kept the", mib);
		printf("   close %.3f s (%s), reopen %.3f s, first status after it %.3f ms\n", ct, what, ot,
		       st1 * 1e3);
	}
	CK(mcrdt_store_info(s, &info));
	printf("   after reopen: memory %.1f bytes per message; process peak RSS %.1f MiB\n",
	       (double)info.memory / big_n, rss_kib("VmHWM") / 1024.0);
	mcrdt_store_close(s);
}

static void section_flags(void)
{
	char dir[4200], rdir[4200];
	path_in(dir, sizeof dir, "flags");
	path_in(rdir, sizeof rdir, "rawflags");
	printf("\n5. STORE flags, durable store (default options: fsync on), %d messages\n", FLAGS_N);
	printf("   baseline: raw rename of each file in cur/ to add F to its name, then one fsync of\n"
	       "   cur/ (one call) or an fsync of cur/ per rename (single calls).\n");
	mcrdt_store *s = open_store(dir, true, false);
	build_store(s, "INBOX", FLAGS_N, FLAGS_N, 200, false);

	/* The raw Maildir: FLAGS_N files in cur/ with ":2," names. */
	raw_maildir(rdir);
	char cur[4300], msg[256];
	snprintf(cur, sizeof cur, "%s/cur", rdir);
	int cfd = open(cur, O_RDONLY | O_DIRECTORY);
	if (cfd < 0)
		fail("open %s: %s", cur, strerror(errno));
	for (int i = 0; i < FLAGS_N; i++) {
		char name[64];
		snprintf(name, sizeof name, "raw.%d:2,", i);
		make_msg(msg, 200, (unsigned long)i);
		int fd = openat(cfd, name, O_WRONLY | O_CREAT | O_EXCL, 0600);
		if (fd < 0 || write(fd, msg, 200) != 200 || close(fd))
			fail("raw write: %s", strerror(errno));
	}
	if (syncfs(cfd))
		fail("syncfs: %s", strerror(errno));
	double t0 = now();
	for (int i = 0; i < FLAGS_N; i++) {
		char a[64], b[64];
		snprintf(a, sizeof a, "raw.%d:2,", i);
		snprintf(b, sizeof b, "raw.%d:2,F", i);
		if (renameat(cfd, a, cfd, b))
			fail("rename: %s", strerror(errno));
	}
	if (fsync(cfd))
		fail("fsync: %s", strerror(errno));
	double rawall = now() - t0;

	mcrdt_mailbox *mb;
	CK(mcrdt_mailbox_select(s, "INBOX", &mb));
	const char *flagged[] = { "\\Flagged" }, *seen[] = { "\\Seen" };
	char set[32];
	snprintf(set, sizeof set, "1:%d", FLAGS_N);
	t0 = now();
	CK(mcrdt_store_flags(mb, set, MCRDT_SEQ, MCRDT_FLAGS_ADD, flagged, 1, 0, NULL, NULL));
	double all = now() - t0;
	struct mcrdt_search q = MCRDT_SEARCH_INIT;
	q.sys_set = MCRDT_FLAG_FLAGGED;
	uint32_t *uids;
	size_t nu;
	CK(mcrdt_search(mb, &q, &uids, &nu));
	free(uids);
	if (nu != FLAGS_N)
		fail("after STORE %s +\\Flagged: %zu messages flagged, expected %d", set, nu, FLAGS_N);
	printf("   one STORE %s +FLAGS (\\Flagged): %.3f s, %.0f msg/s   raw %.3f s, %.0f msg/s   %.1f%% of raw\n",
	       set, all, FLAGS_N / all, rawall, FLAGS_N / rawall, 100 * rawall / all);

	double lat[SINGLE_N], rlat[SINGLE_N];
	for (int i = 0; i < SINGLE_N; i++) {
		char a[64], b[64];
		snprintf(a, sizeof a, "raw.%d:2,F", i);
		snprintf(b, sizeof b, "raw.%d:2,FS", i);
		double t1 = now();
		if (renameat(cfd, a, cfd, b) || fsync(cfd))
			fail("raw rename: %s", strerror(errno));
		rlat[i] = now() - t1;
		snprintf(set, sizeof set, "%d", i * (FLAGS_N / SINGLE_N) + 1);
		t1 = now();
		CK(mcrdt_store_flags(mb, set, MCRDT_SEQ, MCRDT_FLAGS_ADD, seen, 1, 0, NULL, NULL));
		lat[i] = now() - t1;
	}
	close(cfd);
	q.sys_set = MCRDT_FLAG_SEEN | MCRDT_FLAG_FLAGGED;
	CK(mcrdt_search(mb, &q, &uids, &nu));
	free(uids);
	if (nu != SINGLE_N)
		fail("after %d single STOREs +\\Seen: %zu messages \\Seen, expected %d", SINGLE_N, nu, SINGLE_N);
	double sum = 0, rsum = 0;
	for (int i = 0; i < SINGLE_N; i++)
		sum += lat[i], rsum += rlat[i];
	double med = median(lat, SINGLE_N), rmed = median(rlat, SINGLE_N);
	printf("   %d single STOREs (+\\Seen on one message each, interleaved with the raw ones):\n"
	       "     store %.2f ms mean, %.2f ms median, %.2f ms max   raw rename+fsync %.2f ms mean, %.2f ms "
	       "median   %.1f%% of raw (means)\n",
	       SINGLE_N, sum / SINGLE_N * 1e3, med * 1e3, lat[SINGLE_N - 1] * 1e3, rsum / SINGLE_N * 1e3,
	       rmed * 1e3, 100 * rsum / sum);
	if (g_have_store_syncs) {
		const struct sync_counts *c = &g_store_syncs;
		long t = c->fsync + c->fdatasync + c->syncfs, m = BATCH_N + 1 + SYNC_DURABLE_N;
		printf("   syncs of one STORE 1:* +FLAGS (\\Flagged) on %ld messages (strace run of section 2):\n"
		       "     %.2f per message (%ld fsync + %ld fdatasync + %ld syncfs; raw: 1 fsync per call)\n",
		       m, (double)t / m, c->fsync, c->fdatasync, c->syncfs);
	}
	mcrdt_mailbox_close(mb);
	if (inbox_messages(s) != FLAGS_N)
		fail("section 5: INBOX holds %u messages, expected %d", inbox_messages(s), FLAGS_N);
	mcrdt_store_close(s);
}

int main(int argc, char **argv)
{
	if (argc == 4 && strcmp(argv[1], "--sync-child") == 0)
		return sync_child(argv[2], atoi(argv[3]));
	const char *base = argc > 1 ? argv[1] : ".";
	int durable_n = argc > 2 ? atoi(argv[2]) : 300;
	long big = argc > 3 ? atol(argv[3]) : 1000000;
	if (durable_n <= 0 || big <= 0 || big > 100000000)
		fail("usage: bench_store [DIR [DURABLE_N [BIG_N]]]");
	char self[4096];
	ssize_t sl = readlink("/proc/self/exe", self, sizeof self - 1);
	if (sl <= 0)
		fail("readlink /proc/self/exe: %s", strerror(errno));
	self[sl] = 0;

	bench_root_make(base, "bench-store");
	printf("bench_store in %s (mcrdt %s)\n", bench_root, MCRDT_VERSION);

	section_append(self, durable_n);
	section_fetch();
	section_status((uint32_t)big);
	section_flags();
	printf("\nall results checked; removing %s\n", bench_root);
	bench_ok = true;
	return 0;
}
