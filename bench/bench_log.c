/*
 * bench/bench_log.c — the durable op log (sync/log.h).
 *
 * Figures:
 *  - appends per second with one fdatasync per op (sync_log_append), with
 *    group commit of 64 and of 1024 ops (sync_log_append_batch), from 8
 *    threads appending one op each (shared fdatasyncs), and with no_fsync;
 *  - replay: a cold open plus a full replay of an N-op log (page cache
 *    dropped first with posix_fadvise), in ops/s, then the same with every
 *    op fed into crdt_model_receive (ops/s including apply);
 *  - log bytes per op.
 * Baselines in the same run: write()+fdatasync() of the very same record
 * bytes per record, per 64 and per 1024 records, and write() alone, into
 * one plain file; for replay, read() of the same segment files, cold.
 *
 * The ops are realistic: three replicas that hear each other at once, so
 * every op carries three deps entries (two of them encoded); two thirds
 * are appends with flags and a Maildir-like name as metadata, the rest
 * flag changes and a few expunges. Every op is valid: the apply pass
 * fails loudly on one the model refuses.
 *
 * Usage: bench_log [N]   (replay log of N ops: default 1000000, at most
 * 10000000). The log goes to a fresh directory in $TMPDIR or /tmp, which
 * decides what an fdatasync costs.
 */
#include <dirent.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "bench/bench.h"
#include "crdt/model.h"
#include "mcrdt/errors.h"
#include "sync/codec.h"
#include "sync/log.h"

/* Each append figure runs this long, and its baseline as long. */
#define FSYNC_SECONDS 1.5

static void die(const char *what, int rc)
{
	fprintf(stderr, "bench_log: %s: %s (%s)\n", what, mcrdt_error_last(), mcrdt_strerror(rc));
	exit(1);
}

static void die_sys(const char *what)
{
	perror(what);
	exit(1);
}

/* ---- realistic ops ---- */

#define REPLICAS 3
#define RING 4096

struct gen {
	uint64_t counter[REPLICAS];
	uint64_t k;            /* ops made */
	uint32_t next_uid;
	crdt_dot inbox;
	crdt_dot live[RING];   /* recent live messages */
	size_t nlive, oldest;
	unsigned seed;
};

static uint64_t replica_id(size_t r)
{
	return 0xa + r;
}

/* The next op of the history into *op (initialised here). */
static void gen_next(struct gen *g, crdt_op *op)
{
	static const char *flags[] = { "\\Seen", "\\Flagged", "$Label1" };
	size_t r = g->k % REPLICAS;
	unsigned x = (unsigned)rand_r(&g->seed);
	int rc = 0;
	if (g->k == 0) {
		crdt_op_init(op, CRDT_OP_MBOX_CREATE);
		rc = crdt_op_set_name(op, "INBOX", 5);
		op->uidvalidity = 1;
	} else if (g->nlive == 0 || x % 3 != 0) {
		crdt_op_init(op, CRDT_OP_APPEND);
		op->mbox = op->space = g->inbox;
		op->uid = g->next_uid++;
		for (unsigned f = 0; rc == 0 && f < x / 3 % 3; f++)
			rc = crdt_op_add_flag(op, flags[f], strlen(flags[f]));
		char meta[64];
		int len = snprintf(meta, sizeof meta, "%u.M%uP%u.bench,S=%u", 1700000000u + (unsigned)(g->k / 16),
				   x % 1000000, 4000u + (unsigned)r, 2000 + x / 7 % 100000);
		if (rc == 0)
			rc = crdt_op_set_meta(op, meta, (size_t)len);
	} else {
		size_t pick = (g->oldest + (size_t)(x / 3) % g->nlive) % RING;
		if (x % 30 == 3) {
			/* Expunge the oldest live message. */
			crdt_op_init(op, CRDT_OP_EXPUNGE);
			op->msg = g->live[g->oldest];
			g->oldest = (g->oldest + 1) % RING;
			g->nlive--;
		} else {
			crdt_op_init(op, x % 4 == 0 ? CRDT_OP_FLAGS_REMOVE : CRDT_OP_FLAGS_ADD);
			op->msg = g->live[pick];
			rc = crdt_op_add_flag(op, flags[x / 5 % 3], strlen(flags[x / 5 % 3]));
		}
	}
	if (rc)
		die("making an op", rc);
	/* Its issuer has heard every op before it. */
	op->id = (crdt_dot){ replica_id(r), g->counter[r] + 1 };
	for (size_t i = 0; i < REPLICAS; i++)
		if (g->counter[i] && (rc = crdt_vv_set_base(&op->deps, replica_id(i), g->counter[i])))
			die("deps", rc);
	g->counter[r]++;
	g->k++;
	if (op->type == CRDT_OP_MBOX_CREATE)
		g->inbox = op->id;
	if (op->type == CRDT_OP_APPEND) {
		if (g->nlive == RING) { /* forget the oldest: it just stops getting flag changes */
			g->oldest = (g->oldest + 1) % RING;
			g->nlive--;
		}
		g->live[(g->oldest + g->nlive) % RING] = op->id;
		g->nlive++;
	}
}

static crdt_op *gen_many(struct gen *g, size_t n)
{
	crdt_op *v = malloc(n * sizeof *v);
	if (!v)
		die("malloc", MCRDT_ENOMEM);
	for (size_t k = 0; k < n; k++)
		gen_next(g, &v[k]);
	return v;
}

static void free_ops(crdt_op *v, size_t n)
{
	for (size_t k = 0; k < n; k++)
		crdt_op_free(&v[k]);
	free(v);
}

/* ---- files ---- */

static char base_dir[256];

static void make_dir(char *out, size_t size, const char *what)
{
	snprintf(out, size, "%s/%s", base_dir, what);
	if (mkdir(out, 0700) != 0)
		die_sys(out);
}

/* Removes a flat directory. */
static void remove_dir(const char *dir)
{
	DIR *d = opendir(dir);
	if (!d)
		return;
	struct dirent *e;
	while ((e = readdir(d))) {
		if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
			continue;
		char p[512];
		snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
		unlink(p);
	}
	closedir(d);
	rmdir(dir);
}

static void write_all(int fd, const uint8_t *p, size_t n)
{
	while (n) {
		ssize_t w = write(fd, p, n);
		if (w <= 0)
			die_sys("write");
		p += w;
		n -= (size_t)w;
	}
}

/* Syncs and drops from the page cache every file of dir; returns their
 * total size. With evict false, only sums. */
static uint64_t dir_bytes(const char *dir, bool evict)
{
	DIR *d = opendir(dir);
	if (!d)
		die_sys(dir);
	uint64_t total = 0;
	struct dirent *e;
	while ((e = readdir(d))) {
		if (e->d_name[0] == '.')
			continue;
		char p[512];
		snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
		int fd = open(p, O_RDONLY);
		struct stat st;
		if (fd < 0 || fstat(fd, &st) != 0)
			die_sys(p);
		total += (uint64_t)st.st_size;
		if (evict) {
			fdatasync(fd);
			posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
		}
		close(fd);
	}
	closedir(d);
	return total;
}

/* read() of every file of dir in 1 MiB chunks; returns the seconds taken. */
static double raw_read(const char *dir)
{
	static uint8_t buf[1 << 20];
	double t0 = now();
	DIR *d = opendir(dir);
	if (!d)
		die_sys(dir);
	struct dirent *e;
	uint64_t sum = 0;
	while ((e = readdir(d))) {
		if (e->d_name[0] == '.')
			continue;
		char p[512];
		snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
		int fd = open(p, O_RDONLY);
		if (fd < 0)
			die_sys(p);
		ssize_t r;
		while ((r = read(fd, buf, sizeof buf)) > 0)
			sum += buf[r - 1];
		close(fd);
	}
	closedir(d);
	double dt = now() - t0;
	if (sum == 1) /* keep the reads */
		printf(" ");
	return dt;
}

/* ---- appends ---- */

static void row(const char *what, double ops, double base)
{
	printf("  %-46s %11.0f ops/s   baseline %11.0f ops/s   %5.2fx\n", what, ops, base, ops / base);
}

/* The encoded records of ops[0, n), back to back; rec[k] is where record k
 * starts (rec[n] the end). */
static struct sync_buf encode_all(const crdt_op *ops, size_t n, size_t **rec_out)
{
	struct sync_buf b = { 0 };
	size_t *rec = malloc((n + 1) * sizeof *rec);
	if (!rec)
		die("malloc", MCRDT_ENOMEM);
	for (size_t k = 0; k < n; k++) {
		rec[k] = b.len;
		int rc = sync_encode_record(&b, &ops[k]);
		if (rc)
			die("encode", rc);
	}
	rec[n] = b.len;
	*rec_out = rec;
	return b;
}

/* What one figure appends: ops cyclically, batch at a time. */
struct source {
	const crdt_op *ops;
	size_t nops;
	const struct sync_buf *enc;
	const size_t *rec;
	size_t batch;
	bool no_fsync;
	size_t at_log, at_raw; /* next op of each side */
};

static size_t next_at(const struct source *s, size_t *at)
{
	if (*at + s->batch > s->nops)
		*at = 0;
	size_t k = *at;
	*at += s->batch;
	return k;
}

/* Appends to log for seconds; returns the ops appended. */
static size_t log_slice(sync_log *log, struct source *s, double seconds)
{
	size_t done = 0;
	double t0 = now();
	do {
		for (int rep = 0; rep < 16; rep++) {
			size_t k = next_at(s, &s->at_log);
			int rc = s->batch == 1 ? sync_log_append(log, &s->ops[k], NULL)
					       : sync_log_append_batch(log, &s->ops[k], s->batch, NULL);
			if (rc)
				die("append", rc);
			done += s->batch;
		}
	} while (now() - t0 < seconds);
	return done;
}

/* The baseline: the same record bytes, batch records per write(), each
 * followed by fdatasync() unless no_fsync, for seconds. */
static size_t raw_slice(int fd, struct source *s, double seconds)
{
	size_t done = 0;
	double t0 = now();
	do {
		for (int rep = 0; rep < 16; rep++) {
			size_t k = next_at(s, &s->at_raw);
			write_all(fd, s->enc->p + s->rec[k], s->rec[k + s->batch] - s->rec[k]);
			if (!s->no_fsync && fdatasync(fd) != 0)
				die_sys("fdatasync");
			done += s->batch;
		}
	} while (now() - t0 < seconds);
	return done;
}

static int raw_file(char *dir, size_t size)
{
	make_dir(dir, size, "raw");
	char path[320];
	snprintf(path, sizeof path, "%s/raw", dir);
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	if (fd < 0)
		die_sys(path);
	return fd;
}

/* Log and baseline take turns, ROUNDS slices each, so that a disk whose
 * speed drifts (other load, cache flushes) treats both alike. */
#define ROUNDS 4

static void append_figure(const char *what, struct source *s)
{
	char dir[300], rawdir[300];
	make_dir(dir, sizeof dir, "append");
	int fd = raw_file(rawdir, sizeof rawdir);
	struct sync_log_opts o = SYNC_LOG_OPTS_INIT;
	o.no_fsync = s->no_fsync;
	sync_log *log;
	int rc = sync_log_open(&log, dir, &o, NULL);
	if (rc)
		die("open", rc);
	double log_t = 0, raw_t = 0;
	size_t log_n = 0, raw_n = 0;
	for (int r = 0; r < ROUNDS; r++) {
		double t0 = now();
		log_n += log_slice(log, s, FSYNC_SECONDS / ROUNDS);
		log_t += now() - t0;
		t0 = now();
		raw_n += raw_slice(fd, s, FSYNC_SECONDS / ROUNDS);
		raw_t += now() - t0;
	}
	sync_log_close(log);
	close(fd);
	remove_dir(dir);
	remove_dir(rawdir);
	row(what, (double)log_n / log_t, (double)raw_n / raw_t);
}

struct thread_arg {
	sync_log *log;
	const crdt_op *ops;
	size_t nops, from;
	int *stop;
	size_t done;
};

static void *appender(void *p)
{
	struct thread_arg *a = p;
	while (!__atomic_load_n(a->stop, __ATOMIC_SEQ_CST)) {
		int rc = sync_log_append(a->log, &a->ops[(a->from + a->done) % a->nops], NULL);
		if (rc)
			die("append", rc);
		a->done++;
	}
	return NULL;
}

/* THREADS threads each appending one op at a time (fsync on), in turns
 * with the one-write+fdatasync-per-record baseline. */
#define THREADS 8
static void threads_figure(struct source *s)
{
	char dir[300], rawdir[300];
	make_dir(dir, sizeof dir, "threads");
	int fd = raw_file(rawdir, sizeof rawdir);
	sync_log *log;
	int rc = sync_log_open(&log, dir, NULL, NULL);
	if (rc)
		die("open", rc);
	double log_t = 0, raw_t = 0;
	size_t log_n = 0, raw_n = 0;
	struct timespec tick = { 0, 5000000 };
	for (int r = 0; r < ROUNDS; r++) {
		int stop = 0;
		struct thread_arg a[THREADS];
		pthread_t t[THREADS];
		double t0 = now();
		for (size_t i = 0; i < THREADS; i++) {
			a[i] = (struct thread_arg){ log, s->ops, s->nops, i * 1000 + (size_t)r * 8000, &stop, 0 };
			if (pthread_create(&t[i], NULL, appender, &a[i]) != 0)
				die_sys("pthread_create");
		}
		while (now() - t0 < FSYNC_SECONDS / ROUNDS)
			nanosleep(&tick, NULL);
		__atomic_store_n(&stop, 1, __ATOMIC_SEQ_CST);
		for (size_t i = 0; i < THREADS; i++) {
			pthread_join(t[i], NULL);
			log_n += a[i].done;
		}
		log_t += now() - t0;
		t0 = now();
		raw_n += raw_slice(fd, s, FSYNC_SECONDS / ROUNDS);
		raw_t += now() - t0;
	}
	sync_log_close(log);
	close(fd);
	remove_dir(dir);
	remove_dir(rawdir);
	row("8 threads, one op per append (shared fsyncs)", (double)log_n / log_t, (double)raw_n / raw_t);
}

/* ---- replay ---- */

struct apply_ctx {
	crdt_model *m;
	uint64_t n;
};

static int count_op(void *ctx, const crdt_op *op, uint64_t index)
{
	(void)op;
	(void)index;
	((struct apply_ctx *)ctx)->n++;
	return 0;
}

static int apply_op(void *ctx, const crdt_op *op, uint64_t index)
{
	struct apply_ctx *a = ctx;
	int rc = crdt_model_receive(a->m, op);
	if (rc) {
		fprintf(stderr, "bench_log: record %" PRIu64 ": ", index);
		die("receive", rc);
	}
	a->n++;
	return 0;
}

/* Open + replay (fn); returns seconds; *open_s gets the open's share. */
static double open_replay(const char *dir, sync_replay_fn fn, struct apply_ctx *ctx, uint64_t n, double *open_s)
{
	double t0 = now();
	sync_log *log;
	int rc = sync_log_open(&log, dir, NULL, NULL);
	if (rc)
		die("open", rc);
	*open_s = now() - t0;
	if (sync_log_next(log) != n)
		die("the log lost records", MCRDT_ERROR);
	ctx->n = 0;
	if ((rc = sync_log_replay(log, 0, fn, ctx)))
		die("replay", rc);
	if (ctx->m) {
		crdt_oplist claims = CRDT_OPLIST_INIT;
		if ((rc = crdt_model_settle(ctx->m, &claims)))
			die("settle", rc);
		crdt_oplist_free(&claims);
	}
	double dt = now() - t0;
	sync_log_close(log);
	if (ctx->n != n)
		die("replay handed over too few ops", MCRDT_ERROR);
	return dt;
}

int main(int argc, char **argv)
{
	size_t n = argc > 1 ? strtoul(argv[1], NULL, 10) : 1000000;
	if (n < 1000 || n > 10000000) {
		fprintf(stderr, "usage: bench_log [N]   (1000 <= N <= 10000000 ops to replay)\n");
		return 2;
	}
	const char *tmp = getenv("TMPDIR");
	snprintf(base_dir, sizeof base_dir, "%s/bench_log.XXXXXX", tmp && *tmp ? tmp : "/tmp");
	if (!mkdtemp(base_dir))
		die_sys("mkdtemp");

	/* ---- appends ---- */
	struct gen g = { .next_uid = 1, .seed = 7 };
	const size_t nops = 65536;
	crdt_op *ops = gen_many(&g, nops);
	size_t *rec;
	struct sync_buf enc = encode_all(ops, nops, &rec);
	printf("sync/log in %s: appends of realistic ops (%.1f bytes per record; baseline: write() of the same "
	       "bytes to a plain file, taking turns with the log)\n",
	       base_dir, (double)enc.len / (double)nops);
	struct source src = { ops, nops, &enc, rec, 1, false, 0, 0 };
	append_figure("one fdatasync per op (sync_log_append)", &src);
	threads_figure(&src);
	src.batch = 64;
	append_figure("group commit of 64 (sync_log_append_batch)", &src);
	src.batch = 1024;
	append_figure("group commit of 1024 (sync_log_append_batch)", &src);
	src.batch = 1;
	src.no_fsync = true;
	append_figure("no_fsync, one op per append", &src);
	free(rec);
	sync_buf_free(&enc);
	free_ops(ops, nops);

	/* ---- replay ---- */
	char dir[300];
	make_dir(dir, sizeof dir, "replay");
	g = (struct gen){ .next_uid = 1, .seed = 11 };
	{
		struct sync_log_opts o = SYNC_LOG_OPTS_INIT;
		o.no_fsync = true; /* a bulk load */
		sync_log *log;
		int rc = sync_log_open(&log, dir, &o, NULL);
		if (rc)
			die("open", rc);
		double t0 = now();
		crdt_op *v = malloc(1024 * sizeof *v);
		for (size_t done = 0; done < n;) {
			size_t b = n - done < 1024 ? n - done : 1024;
			for (size_t k = 0; k < b; k++)
				gen_next(&g, &v[k]);
			if ((rc = sync_log_append_batch(log, v, b, NULL)))
				die("append", rc);
			for (size_t k = 0; k < b; k++)
				crdt_op_free(&v[k]);
			done += b;
		}
		free(v);
		sync_log_close(log);
		printf("replay of a %zu-op log (made in %.2f s, bulk, no_fsync)\n", n, now() - t0);
	}
	uint64_t bytes = dir_bytes(dir, true);
	size_t appends = g.next_uid - 1;
	printf("  log size: %" PRIu64 " bytes = %.1f bytes per op (1 create, %zu appends, %zu flag changes and "
	       "expunges)\n",
	       bytes, (double)bytes / (double)n, appends, n - 1 - appends);

	double raw_cold = raw_read(dir);
	double raw_warm = raw_read(dir);
	struct apply_ctx ctx = { NULL, 0 };
	double open_s;
	dir_bytes(dir, true);
	double cold = open_replay(dir, count_op, &ctx, n, &open_s);
	double cold_open = open_s;
	double warm = open_replay(dir, count_op, &ctx, n, &open_s);
	double warm_open = open_s;
	printf("  read() of the files: cold %.3f s (%.0f MB/s), warm %.3f s (%.0f MB/s)\n", raw_cold,
	       (double)bytes / raw_cold / 1e6, raw_warm, (double)bytes / raw_warm / 1e6);
	row("cold open + replay (decode only)", (double)n / cold, (double)n / raw_cold);
	printf("    of which open (reads and checks every record): %.3f s, replay %.3f s\n", cold_open, cold - cold_open);
	row("warm open + replay (decode only)", (double)n / warm, (double)n / raw_warm);
	printf("    of which open: %.3f s, replay %.3f s\n", warm_open, warm - warm_open);

	dir_bytes(dir, true);
	if (crdt_model_new(&ctx.m, 0x99) != 0)
		die("model", MCRDT_ENOMEM);
	double applied = open_replay(dir, apply_op, &ctx, n, &open_s);
	printf("  cold open + replay into crdt_model_receive + settle: %.3f s, %zu messages live after\n", applied,
	       crdt_model_messages(ctx.m));
	row("cold open + replay + apply", (double)n / applied, (double)n / raw_cold);
	crdt_model_free(ctx.m);
	remove_dir(dir);
	rmdir(base_dir);
	return 0;
}
