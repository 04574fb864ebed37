/*
 * cli/cmd_sync.c — replication: `mcrdt sync`, `mcrdt merge` and
 * `mcrdt hub init`.
 *
 * Progress (messages and bytes so far) goes to stderr on one rewritten
 * line when stderr is a terminal, never with --quiet or --json; --json
 * prints the summary as one object.
 */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "cli/cli.h"
#include "cli/json.h"

static int show_progress(void *ctx, const char *phase, const struct mcrdt_sync_stats *st)
{
	(void)ctx;
	fprintf(stderr, "\r%-8s sent %" PRIu64 " messages (%.1f MB), received %" PRIu64 " messages (%.1f MB), fetched %.1f MB   ",
		phase, st->messages_sent, st->bytes_sent / 1e6, st->messages_received, st->bytes_received / 1e6,
		st->bytes_fetched / 1e6);
	return 0;
}

static void summary(const struct mcrdt_sync_stats *st, bool as_json)
{
	struct json jw, *j = cli_report_begin(&jw, as_json);
	cli_report_u64(j, "ops_sent", st->ops_sent);
	cli_report_u64(j, "messages_sent", st->messages_sent);
	cli_report_u64(j, "bytes_sent", st->bytes_sent);
	cli_report_u64(j, "ops_received", st->ops_received);
	cli_report_u64(j, "messages_received", st->messages_received);
	cli_report_u64(j, "bytes_received", st->bytes_received);
	cli_report_u64(j, "bytes_fetched", st->bytes_fetched);
	cli_report_u64(j, "uid_moves", st->uid_moves);
	cli_report_u64(j, "duplicates", st->duplicates);
	cli_report_u64(j, "rounds", st->rounds);
	cli_report_u64(j, "scan_added", st->scan.added);
	cli_report_u64(j, "scan_flags_changed", st->scan.flags_changed);
	cli_report_u64(j, "scan_vanished", st->scan.vanished);
	cli_report_end(j);
}

static void progress_opts(struct mcrdt_sync_opts *o, bool quiet, bool as_json)
{
	if (!quiet && !as_json && isatty(2))
		o->progress = show_progress;
}

/* Ends the progress line, then reports the error ("VERB A JOIN B") or
 * the summary. */
static int finish(int rc, const struct mcrdt_sync_opts *o, const struct mcrdt_sync_stats *st, bool quiet,
		  bool as_json, const char *verb, const char *a, const char *join, const char *b)
{
	if (o->progress)
		fprintf(stderr, "\n");
	if (rc)
		return cli_fail(rc, "%s %s %s %s", verb, a, join, b);
	if (!quiet || as_json)
		summary(st, as_json);
	return 0;
}

int cli_sync(int argc, char **argv)
{
	static const struct cli_help help = {
		"mcrdt sync DIR REMOTE [--quiet] [--json]",
		"Scans DIR for outside changes, publishes its new ops, fetches every\n"
		"replica's ops from REMOTE, applies what is new (message files are written\n"
		"under their original names) and pushes what REMOTE lacks.\n"
		"REMOTE is another store's directory (then both are changed, and they list\n"
		"the same mailboxes and messages when the sync returns), a git repository\n"
		"path (see 'mcrdt hub init'), or a file://, ssh:// or https:// URL.\n"
		"Credentials: the ssh agent, $MCRDT_SSH_KEY or ~/.ssh/id_ed25519 / id_rsa\n"
		"(host keys from ~/.ssh/known_hosts); for https $MCRDT_GIT_USERNAME and\n"
		"$MCRDT_GIT_PASSWORD or git's credential helper, and $SSL_CERT_FILE for a\n"
		"hub whose certificate a private CA signed. Prints what was sent and received.\n",
		false,
		"DIR REMOTE", 0,
	};
	bool quiet = false, as_json = false;
	const struct cli_opt opts[] = { { "quiet", 'q', NULL, &quiet }, CLI_OPT_JSON(&as_json), { NULL, 0, NULL, NULL } };
	int nargs;
	int rc = cli_parse(argc, argv, &help, opts, &nargs);
	if (rc >= 0)
		return rc;
	mcrdt_store *s;
	if (cli_open(&s, argv[1], NULL))
		return CLI_FAILED;
	struct mcrdt_sync_opts o = MCRDT_SYNC_OPTS_INIT;
	progress_opts(&o, quiet, as_json);
	struct mcrdt_sync_stats st;
	rc = mcrdt_sync(s, argv[2], &o, &st);
	mcrdt_store_close(s);
	return finish(rc, &o, &st, quiet, as_json, "sync", argv[1], "with", argv[2]);
}

int cli_merge(int argc, char **argv)
{
	static const struct cli_help help = {
		"mcrdt merge DIR1 DIR2 [--quiet] [--json]",
		"Makes two replicas identical, offline (a two-way sync). A directory that\n"
		"holds a Maildir but no store is adopted first, so two plain Maildirs that\n"
		"descend from one copy merge: a message with the same base name and content\n"
		"on both sides is one message, its flags merged; none is doubled or lost.\n",
		false,
		"DIR1 DIR2", 0,
	};
	bool quiet = false, as_json = false;
	const struct cli_opt opts[] = { { "quiet", 'q', NULL, &quiet }, CLI_OPT_JSON(&as_json), { NULL, 0, NULL, NULL } };
	int nargs;
	int rc = cli_parse(argc, argv, &help, opts, &nargs);
	if (rc >= 0)
		return rc;
	struct mcrdt_sync_opts o = MCRDT_SYNC_OPTS_INIT;
	progress_opts(&o, quiet, as_json);
	struct mcrdt_sync_stats st;
	rc = mcrdt_merge(argv[1], argv[2], &o, &st);
	return finish(rc, &o, &st, quiet, as_json, "merge", argv[1], "and", argv[2]);
}

int cli_hub(int argc, char **argv)
{
	static const struct cli_help help = {
		"mcrdt hub init PATH",
		"Creates an empty bare git repository at PATH that many replicas sync\n"
		"through ('mcrdt sync DIR PATH'); it may live on any host git reaches.\n",
		false,
		"init PATH", 0,
	};
	int nargs;
	int rc = cli_parse(argc, argv, &help, (const struct cli_opt[]){ { NULL, 0, NULL, NULL } }, &nargs);
	if (rc >= 0)
		return rc;
	if (strcmp(argv[1], "init") != 0)
		return cli_usage_error(&help, "hub", "unknown action '%s' (only init)", argv[1]);
	if ((rc = mcrdt_hub_init(argv[2])))
		return cli_fail(rc, "hub init %s", argv[2]);
	printf("hub %s ready\n", argv[2]);
	return 0;
}
