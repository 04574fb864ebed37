/*
 * cli/cmd_admin.c — the store as a whole: `mcrdt init`, `scan`, `log` and
 * `fsck`.
 */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"
#include "cli/json.h"

int cli_init(int argc, char **argv)
{
	static const struct cli_help help = {
		"mcrdt init DIR [--name NAME]",
		"Makes DIR a store. The Maildir (cur/ new/ tmp/) is made if missing; an\n"
		"existing Maildir is adopted: every message and folder is imported once,\n"
		"with the flags of its file name. NAME is the replica's readable name\n"
		"(default: the host name). Prints the new replica's id and name and how\n"
		"many messages were adopted. Fails when DIR already holds a store.\n",
		false,
		"DIR", 0,
	};
	const char *name = NULL;
	const struct cli_opt opts[] = { { "name", 0, &name, NULL }, { NULL, 0, NULL, NULL } };
	int nargs;
	int rc = cli_parse(argc, argv, &help, opts, &nargs);
	if (rc >= 0)
		return rc;
	const char *dir = argv[1];

	mcrdt_store *s = NULL;
	rc = mcrdt_store_open(&s, dir, NULL);
	if (rc == 0) {
		mcrdt_store_close(s);
		return cli_error("init %s: the directory already holds a store", dir);
	}
	if (rc != MCRDT_ENOTFOUND)
		return cli_fail(rc, "open %s", dir);

	struct mcrdt_open_opts o = MCRDT_OPEN_OPTS_INIT;
	o.flags = MCRDT_OPEN_CREATE;
	o.name = name;
	if (cli_open(&s, dir, &o))
		return CLI_FAILED;
	struct mcrdt_store_info info;
	rc = mcrdt_store_info(s, &info);
	if (rc) {
		mcrdt_store_close(s);
		return cli_fail(rc, "info %s", dir);
	}
	struct mcrdt_mailbox_info *mbs = NULL;
	size_t nmb = 0, nexist = 0;
	rc = mcrdt_mailbox_list(s, &mbs, &nmb);
	if (rc) {
		mcrdt_store_close(s);
		return cli_fail(rc, "list mailboxes in %s", dir);
	}
	for (size_t i = 0; i < nmb; i++)
		nexist += !(mbs[i].attrs & MCRDT_MBOX_NONEXISTENT);
	mcrdt_mailbox_list_free(mbs, nmb);
	mcrdt_store_close(s);

	printf("replica %016" PRIx64 " (", info.replica);
	cli_print_text(info.name);
	printf(")\nadopted %" PRIu64 " message%s in %zu mailbox%s\n", info.messages,
	       info.messages == 1 ? "" : "s", nexist, nexist == 1 ? "" : "es");
	return 0;
}

int cli_scan(int argc, char **argv)
{
	static const struct cli_help help = {
		"mcrdt scan DIR [--json]",
		"Imports the changes other tools made to the Maildir since the last scan:\n"
		"new files and folders become appends and creates, flag renames become\n"
		"flag changes, removed files and folders become expunges and deletes.\n"
		"Prints how many of each it found.\n",
		false,
		"DIR", 0,
	};
	bool as_json = false;
	const struct cli_opt opts[] = { CLI_OPT_JSON(&as_json), { NULL, 0, NULL, NULL } };
	int nargs;
	int rc = cli_parse(argc, argv, &help, opts, &nargs);
	if (rc >= 0)
		return rc;
	mcrdt_store *s;
	if (cli_open(&s, argv[1], NULL))
		return CLI_FAILED;
	struct mcrdt_scan_report r;
	memset(&r, 0, sizeof r);
	rc = mcrdt_store_scan(s, &r);
	if (rc) {
		cli_fail(rc, "scan %s", argv[1]);
		mcrdt_store_close(s);
		return CLI_FAILED;
	}
	mcrdt_store_close(s);

	struct json jw, *j = cli_report_begin(&jw, as_json);
	cli_report_u64(j, "added", r.added);
	cli_report_u64(j, "flags_changed", r.flags_changed);
	cli_report_u64(j, "vanished", r.vanished);
	cli_report_u64(j, "folders_added", r.folders_added);
	cli_report_u64(j, "folders_removed", r.folders_removed);
	cli_report_u64(j, "skipped", r.skipped);
	cli_report_end(j);
	return 0;
}

struct log_ctx {
	struct json *j;
};

static int print_entry(void *ctx, const struct mcrdt_log_entry *e)
{
	struct log_ctx *c = ctx;
	if (c->j) {
		char replica[17];
		snprintf(replica, sizeof replica, "%016" PRIx64, e->replica);
		json_object_begin(c->j);
		json_key(c->j, "index");
		json_uint(c->j, e->index);
		json_key(c->j, "replica");
		json_string(c->j, replica);
		json_key(c->j, "counter");
		json_uint(c->j, e->counter);
		json_key(c->j, "type");
		json_string(c->j, e->type ? e->type : "");
		json_key(c->j, "text");
		json_string(c->j, e->text ? e->text : "");
		json_object_end(c->j);
	} else {
		/* The op's text starts with its dot (replica.counter). */
		printf("%6" PRIu64 "  ", e->index);
		cli_print_text(e->text ? e->text : "");
		printf("\n");
	}
	return 0;
}

int cli_log(int argc, char **argv)
{
	static const struct cli_help help = {
		"mcrdt log DIR [--json] [--from N]",
		"Prints the op log from record N on (default 0), one record per line: its\n"
		"index and the op (issuing replica.counter, type, fields). With --json, an\n"
		"array of objects with the keys index, replica (16 hex digits), counter,\n"
		"type and text.\n",
		false,
		"DIR", 0,
	};
	bool as_json = false;
	const char *from_text = NULL;
	const struct cli_opt opts[] = { CLI_OPT_JSON(&as_json), { "from", 0, &from_text, NULL },
					{ NULL, 0, NULL, NULL } };
	int nargs;
	int rc = cli_parse(argc, argv, &help, opts, &nargs);
	if (rc >= 0)
		return rc;
	uint64_t from = 0;
	if (from_text && !cli_parse_u64(from_text, UINT64_MAX, &from))
		return cli_usage_error(&help, argv[0], "--from wants a record number, not '%s'", from_text);
	mcrdt_store *s;
	if (cli_open(&s, argv[1], NULL))
		return CLI_FAILED;
	struct json jw;
	struct log_ctx c = { NULL };
	if (as_json) {
		c.j = &jw;
		json_init(c.j, stdout);
		json_array_begin(c.j);
	}
	rc = mcrdt_log_each(s, from, print_entry, &c);
	if (c.j) {
		json_array_end(c.j);
		json_end(c.j);
	}
	fflush(stdout);
	if (rc) {
		cli_fail(rc, "read the log of %s", argv[1]);
		mcrdt_store_close(s);
		return CLI_FAILED;
	}
	mcrdt_store_close(s);
	return 0;
}

int cli_fsck(int argc, char **argv)
{
	static const struct cli_help help = {
		"mcrdt fsck DIR [--repair] [--json]",
		"Checks the store in DIR: every log record and the snapshot, then every\n"
		"message file against the state. Prints a report (records, torn_bytes,\n"
		"missing_files, untracked_files, set_aside, damage, status). Exits 0 when\n"
		"the store is healthy, 1 when it is damaged or the check failed.\n"
		"\n"
		"With --repair, a damaged log is cut at the damage (what follows is set\n"
		"aside as *.damaged, never deleted) and every message file is adopted\n"
		"again. The store must not be open anywhere else.\n",
		false,
		"DIR", 0,
	};
	bool as_json = false, repair = false;
	const struct cli_opt opts[] = { CLI_OPT_JSON(&as_json), { "repair", 0, NULL, &repair },
					{ NULL, 0, NULL, NULL } };
	int nargs;
	int rc = cli_parse(argc, argv, &help, opts, &nargs);
	if (rc >= 0)
		return rc;
	struct mcrdt_fsck_report r;
	memset(&r, 0, sizeof r);
	rc = mcrdt_fsck(argv[1], repair, &r);
	if (rc && rc != MCRDT_ECORRUPT)
		return cli_fail(rc, "fsck %s", argv[1]);

	const char *status = rc ? "damaged"
			   : repair && (r.damage[0] || r.torn_bytes || r.set_aside) ? "repaired"
										      : "healthy";
	r.damage[sizeof r.damage - 1] = '\0';
	struct json jw, *j = cli_report_begin(&jw, as_json);
	cli_report_u64(j, "records", r.records);
	cli_report_u64(j, "torn_bytes", r.torn_bytes);
	cli_report_u64(j, "missing_files", r.missing_files);
	cli_report_u64(j, "untracked_files", r.untracked_files);
	cli_report_u64(j, "set_aside", r.set_aside);
	cli_report_str(j, "damage", r.damage);
	cli_report_str(j, "status", status);
	cli_report_end(j);
	if (rc)
		return cli_fail(rc, "fsck %s", argv[1]);
	return 0;
}
