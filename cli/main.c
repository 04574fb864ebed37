/*
 * cli/main.c — the mcrdt command: dispatch to subcommands and the overall
 * usage. Exit status: 0 on success, 1 when the library reported an error,
 * 2 for bad usage; a failure prints one line on stderr.
 */
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"
#include "mcrdt/mcrdt.h"

static const struct {
	const char *name;
	int (*run)(int argc, char **argv);
	const char *summary;
} commands[] = {
	{ "init", cli_init, "make DIR a store, adopting an existing Maildir" },
	{ "deliver", cli_deliver, "append a message read from stdin; prints its UID" },
	{ "mailbox", cli_mailbox, "list, create, delete, rename, (un)subscribe mailboxes" },
	{ "list", cli_list, "a mailbox's messages: UID, flags, size, date, MODSEQ" },
	{ "status", cli_status, "a mailbox's counts, UIDNEXT, UIDVALIDITY, HIGHESTMODSEQ" },
	{ "flag", cli_flag, "add, remove or set flags on a UID set" },
	{ "copy", cli_copy, "copy a UID set to another mailbox; prints COPYUID" },
	{ "move", cli_move, "move a UID set to another mailbox; prints COPYUID" },
	{ "expunge", cli_expunge, "remove \\Deleted messages, or a UID set" },
	{ "cat", cli_cat, "write one message to stdout" },
	{ "scan", cli_scan, "import changes other Maildir tools made" },
	{ "log", cli_log, "print the op log" },
	{ "fsck", cli_fsck, "check the log and the Maildir; --repair fixes them" },
	{ "sync", cli_sync, "exchange ops with another replica or a git remote" },
	{ "merge", cli_merge, "make two replicas (or plain Maildirs) identical, offline" },
	{ "hub", cli_hub, "hub init PATH: a bare git repository to sync through" },
	{ "demo", cli_demo, "three replicas diverge, sync through a hub and converge" },
};

static void usage(FILE *f)
{
	fprintf(f, "usage: mcrdt [--version] [--help] COMMAND [ARGS]\n\ncommands:\n");
	for (size_t i = 0; i < sizeof commands / sizeof *commands; i++)
		fprintf(f, "  %-8s %s\n", commands[i].name, commands[i].summary);
	fprintf(f, "\nMost commands take the store's directory DIR first; MAILBOX defaults to\n"
		   "INBOX; UIDSET is an IMAP set of UIDs (\"1:5,7,9:*\"). Options may come\n"
		   "before or after DIR. Exit status: 0 success, 1 failure, 2 bad usage.\n"
		   "'mcrdt COMMAND --help' describes a command.\n");
}

int main(int argc, char **argv)
{
	if (argc < 2) {
		fprintf(stderr, "mcrdt: missing COMMAND (see 'mcrdt --help')\n");
		return CLI_USAGE;
	}
	if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
		usage(stdout);
		return 0;
	}
	if (strcmp(argv[1], "--version") == 0) {
		printf("mcrdt %s\n", mcrdt_version(NULL, NULL, NULL));
		return 0;
	}
	for (size_t i = 0; i < sizeof commands / sizeof *commands; i++)
		if (strcmp(argv[1], commands[i].name) == 0)
			return commands[i].run(argc - 1, argv + 1);
	return cli_usage_error(NULL, argv[1], "unknown command (see 'mcrdt --help')");
}
