/*
 * cli/cmd_mailbox.c — mailboxes: `mcrdt mailbox` (list, create, delete,
 * rename, subscribe, unsubscribe) and `mcrdt status`.
 */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"
#include "cli/json.h"

static const struct {
	unsigned bit;
	const char *name;
} mailbox_attrs[] = {
	{ MCRDT_MBOX_SUBSCRIBED, "\\Subscribed" },
	{ MCRDT_MBOX_NONEXISTENT, "\\NonExistent" },
	{ MCRDT_MBOX_HASCHILDREN, "\\HasChildren" },
	{ MCRDT_MBOX_HASNOCHILDREN, "\\HasNoChildren" },
	{ MCRDT_MBOX_SENT, "\\Sent" },
	{ MCRDT_MBOX_DRAFTS, "\\Drafts" },
	{ MCRDT_MBOX_TRASH, "\\Trash" },
	{ MCRDT_MBOX_JUNK, "\\Junk" },
	{ MCRDT_MBOX_ARCHIVE, "\\Archive" },
};
#define NATTRS (sizeof mailbox_attrs / sizeof *mailbox_attrs)

static int list_mailboxes(mcrdt_store *s, const char *dir, bool as_json)
{
	struct mcrdt_mailbox_info *v;
	size_t n;
	int rc = mcrdt_mailbox_list(s, &v, &n);
	if (rc)
		return cli_fail(rc, "list mailboxes in %s", dir);
	if (as_json) {
		struct json j;
		json_init(&j, stdout);
		json_array_begin(&j);
		for (size_t i = 0; i < n; i++) {
			json_object_begin(&j);
			json_key(&j, "name");
			json_string(&j, v[i].name);
			json_key(&j, "guid");
			json_string(&j, v[i].guid);
			json_key(&j, "uidvalidity");
			json_uint(&j, v[i].uidvalidity);
			json_key(&j, "attributes");
			json_array_begin(&j);
			for (size_t k = 0; k < NATTRS; k++)
				if (v[i].attrs & mailbox_attrs[k].bit)
					json_string(&j, mailbox_attrs[k].name);
			json_array_end(&j);
			json_object_end(&j);
		}
		json_array_end(&j);
		json_end(&j);
	} else {
		int w = 4;
		for (size_t i = 0; i < n; i++)
			if (strlen(v[i].name) > (size_t)w)
				w = (int)strlen(v[i].name);
		printf("%-*s  %-11s  %s\n", w, "NAME", "UIDVALIDITY", "ATTRIBUTES");
		for (size_t i = 0; i < n; i++) {
			cli_print_text(v[i].name);
			printf("%*s  %11" PRIu32 " ", w - (int)strlen(v[i].name), "", v[i].uidvalidity);
			for (size_t k = 0; k < NATTRS; k++)
				if (v[i].attrs & mailbox_attrs[k].bit)
					printf(" %s", mailbox_attrs[k].name);
			printf("\n");
		}
	}
	mcrdt_mailbox_list_free(v, n);
	return 0;
}

int cli_mailbox(int argc, char **argv)
{
	static const struct cli_help help = {
		"mcrdt mailbox DIR [list [--json] | create NAME | delete NAME |\n"
		"                   rename FROM TO | subscribe NAME | unsubscribe NAME]",
		"Lists or changes the mailboxes of the store in DIR. Names are UTF-8 with\n"
		"'/' between levels (\"Work/2026\"); INBOX always exists.\n"
		"\n"
		"  list          every mailbox, subscribed name and implied parent: name,\n"
		"                UIDVALIDITY and attributes (the default); --json: an array\n"
		"                of objects with name, guid, uidvalidity and attributes\n"
		"  create NAME   makes a mailbox\n"
		"  delete NAME   removes a mailbox and its messages; its children stay\n"
		"  rename FROM TO  renames a mailbox and its children\n"
		"  subscribe NAME, unsubscribe NAME  change the subscriptions\n",
		false,
		"DIR", -1,
	};
	bool as_json = false;
	const struct cli_opt opts[] = { CLI_OPT_JSON(&as_json), { NULL, 0, NULL, NULL } };
	int nargs;
	int rc = cli_parse(argc, argv, &help, opts, &nargs);
	if (rc >= 0)
		return rc;
	const char *dir = argv[1];
	const char *verb = nargs >= 2 ? argv[2] : "list";
	int want;
	if (strcmp(verb, "list") == 0)
		want = 0;
	else if (strcmp(verb, "rename") == 0)
		want = 2;
	else if (strcmp(verb, "create") == 0 || strcmp(verb, "delete") == 0 ||
		 strcmp(verb, "subscribe") == 0 || strcmp(verb, "unsubscribe") == 0)
		want = 1;
	else
		return cli_usage_error(&help, argv[0], "unknown action '%s'", verb);
	int have = nargs >= 2 ? nargs - 2 : 0;
	if (have != want)
		return cli_usage_error(&help, argv[0], "%s wants %d name%s, not %d", verb, want,
				       want == 1 ? "" : "s", have);
	if (as_json && want)
		return cli_usage_error(&help, argv[0], "--json goes with list only");

	mcrdt_store *s;
	if (cli_open(&s, dir, NULL))
		return CLI_FAILED;
	const char *a = want >= 1 ? argv[3] : NULL, *b = want == 2 ? argv[4] : NULL;
	if (want == 0) {
		rc = list_mailboxes(s, dir, as_json);
	} else if (strcmp(verb, "create") == 0) {
		if ((rc = mcrdt_mailbox_create(s, a)))
			rc = cli_fail(rc, "create mailbox %s", a);
	} else if (strcmp(verb, "delete") == 0) {
		if ((rc = mcrdt_mailbox_delete(s, a)))
			rc = cli_fail(rc, "delete mailbox %s", a);
	} else if (strcmp(verb, "rename") == 0) {
		if ((rc = mcrdt_mailbox_rename(s, a, b)))
			rc = cli_fail(rc, "rename mailbox %s to %s", a, b);
	} else {
		bool on = strcmp(verb, "subscribe") == 0;
		if ((rc = mcrdt_mailbox_subscribe(s, a, on)))
			rc = cli_fail(rc, "%s %s", verb, a);
	}
	mcrdt_store_close(s);
	return rc;
}

int cli_status(int argc, char **argv)
{
	static const struct cli_help help = {
		"mcrdt status DIR [-m MAILBOX] [--json]",
		"Prints the IMAP STATUS of a mailbox (default INBOX), one item per line:\n"
		"MESSAGES, UIDNEXT, UIDVALIDITY, UNSEEN, DELETED (messages with \\Deleted),\n"
		"SIZE (bytes) and HIGHESTMODSEQ. --json: one object with the same items\n"
		"as lowercase keys, and the mailbox's name.\n",
		false,
		"DIR", 0,
	};
	const char *mailbox = "INBOX";
	bool as_json = false;
	const struct cli_opt opts[] = { CLI_OPT_MAILBOX(&mailbox), CLI_OPT_JSON(&as_json),
					{ NULL, 0, NULL, NULL } };
	int nargs;
	int rc = cli_parse(argc, argv, &help, opts, &nargs);
	if (rc >= 0)
		return rc;
	mcrdt_store *s;
	if (cli_open(&s, argv[1], NULL))
		return CLI_FAILED;
	struct mcrdt_status st;
	rc = mcrdt_mailbox_status(s, mailbox, &st);
	mcrdt_store_close(s);
	if (rc)
		return cli_fail(rc, "status of %s", mailbox);

	const struct {
		const char *name, *key;
		uint64_t v;
	} items[] = {
		{ "MESSAGES", "messages", st.messages },
		{ "UIDNEXT", "uidnext", st.uidnext },
		{ "UIDVALIDITY", "uidvalidity", st.uidvalidity },
		{ "UNSEEN", "unseen", st.unseen },
		{ "DELETED", "deleted", st.deleted },
		{ "SIZE", "size", st.size },
		{ "HIGHESTMODSEQ", "highestmodseq", st.highestmodseq },
	};
	if (as_json) {
		struct json j;
		json_init(&j, stdout);
		json_object_begin(&j);
		json_key(&j, "mailbox");
		json_string(&j, mailbox);
		for (size_t i = 0; i < sizeof items / sizeof *items; i++) {
			json_key(&j, items[i].key);
			json_uint(&j, items[i].v);
		}
		json_object_end(&j);
		json_end(&j);
	} else {
		for (size_t i = 0; i < sizeof items / sizeof *items; i++)
			printf("%-14s %" PRIu64 "\n", items[i].name, items[i].v);
	}
	return 0;
}
