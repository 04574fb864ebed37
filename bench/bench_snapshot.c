/*
 * bench/bench_snapshot.c — opening a replica from its snapshot against
 * replaying its whole log.
 *
 * A store of N messages whose history holds K ops per message (the append
 * and K - 1 flag changes, as months of reading and filing make) is opened
 * twice: from the log alone (replaying everything), then from a snapshot
 * taken at the end (replaying nothing). The ratio is the figure.
 *
 * Usage: bench_snapshot [N [K [DIR]]]   (defaults 1000000, 10, .)
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "bench/bench.h"
#include "mcrdt/errors.h"
#include "sync/snapshot.h"

static void die(const char *what)
{
	fprintf(stderr, "bench_snapshot: %s: %s\n", what, mcrdt_error_last());
	exit(1);
}

static long long file_size(const char *path)
{
	struct stat st;
	return stat(path, &st) == 0 ? (long long)st.st_size : -1;
}

int main(int argc, char **argv)
{
	size_t n = argc > 1 ? strtoul(argv[1], NULL, 10) : 1000000;
	size_t k = argc > 2 ? strtoul(argv[2], NULL, 10) : 10;
	const char *base = argc > 3 ? argv[3] : ".";
	char dir[4096], logdir[4200];
	snprintf(dir, sizeof dir, "%s/bench-snapshot-XXXXXX", base);
	if (!mkdtemp(dir))
		die("mkdtemp");
	snprintf(logdir, sizeof logdir, "%s/log", dir);

	/* Build the history straight into the log (no fsync: this is setup). */
	struct sync_log_opts o = SYNC_LOG_OPTS_INIT;
	o.no_fsync = true;
	sync_log *log;
	crdt_model *m;
	if (sync_log_open(&log, logdir, &o, NULL) || crdt_model_new(&m, 0x42))
		die("open");
	crdt_oplist ops = CRDT_OPLIST_INIT;
	crdt_dot inbox;
	if (crdt_model_create(m, &ops, "INBOX", 1, &inbox))
		die("create");
	crdt_dot *g = malloc(n * sizeof *g);
	const char *flags[] = { "\\Seen", "\\Flagged", "$Label1" };
	double t0 = now();
	for (size_t i = 0; i < n; i++) {
		if (crdt_model_append(m, &ops, inbox, NULL, 0, NULL, 0, &g[i], NULL))
			die("append");
		if (ops.n >= 4096) {
			if (sync_log_append_batch(log, ops.ops, ops.n, NULL))
				die("log");
			crdt_oplist_free(&ops);
		}
	}
	for (size_t round = 1; round < k; round++) {
		for (size_t i = 0; i < n; i++) {
			const char *f = flags[(i + round) % 3];
			if (crdt_model_flags(m, &ops, g[i], round % 2 ? CRDT_OP_FLAGS_ADD : CRDT_OP_FLAGS_REMOVE, &f, 1))
				die("flags");
			if (ops.n >= 4096) {
				if (sync_log_append_batch(log, ops.ops, ops.n, NULL))
					die("log");
				crdt_oplist_free(&ops);
			}
		}
	}
	crdt_oplist claims = CRDT_OPLIST_INIT;
	if (crdt_model_settle(m, &claims) || sync_log_append_batch(log, ops.ops, ops.n, NULL) ||
	    sync_log_append_batch(log, claims.ops, claims.n, NULL))
		die("log");
	crdt_oplist_free(&ops);
	crdt_oplist_free(&claims);
	uint64_t records = sync_log_next(log);
	printf("store: %zu messages, %" PRIu64 " log records (%zu ops per message), built in %.1f s\n", n,
	       records, k, now() - t0);
	sync_log_close(log);
	char *want;
	if (crdt_model_describe(m, &want))
		die("describe");
	crdt_model_free(m);

	t0 = now();
	if (sync_replica_open(dir, 0x42, NULL, &m, &log, NULL, NULL))
		die("open from log");
	double full = now() - t0;
	char *got;
	if (crdt_model_describe(m, &got) || strcmp(got, want) != 0)
		die("replayed state differs");
	free(got);
	t0 = now();
	if (sync_snapshot_write(dir, m, sync_log_next(log)))
		die("snapshot");
	double write = now() - t0;
	crdt_model_free(m);
	sync_log_close(log);

	t0 = now();
	if (sync_replica_open(dir, 0x42, NULL, &m, &log, NULL, NULL))
		die("open from snapshot");
	double snap = now() - t0;
	if (crdt_model_describe(m, &got) || strcmp(got, want) != 0)
		die("snapshot state differs");
	crdt_model *only;
	uint64_t upto;
	double t1 = now();
	if (sync_snapshot_read(dir, &only, &upto))
		die("snapshot read");
	double readload = now() - t1;
	crdt_model_free(only);
	char snapfile[4200];
	snprintf(snapfile, sizeof snapfile, "%s/snapshot", dir);
	printf("  open by replaying the log: %.2f s (%.0f records/s)\n", full, (double)records / full);
	printf("  open from the snapshot:    %.2f s (snapshot %lld bytes, %.1f bytes/message, written in %.2f s)\n",
	       snap, file_size(snapfile), (double)file_size(snapfile) / (double)n, write);
	printf("  snapshot open is %.1fx faster than replay (reading and loading the snapshot alone: %.2f s)\n",
	       full / snap, readload);
	printf("  (opening from the snapshot reads only the headers of the segments it covers and\n"
	       "   checks the last segment whole, for a torn tail)\n");
	free(got);
	free(want);
	free(g);
	crdt_model_free(m);
	sync_log_close(log);
	char cmd[4200];
	snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
	return system(cmd) == 0 ? 0 : 1;
}
