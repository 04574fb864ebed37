/*
 * cli/cmd_message.c — messages: `mcrdt deliver`, `list`, `flag`, `copy`,
 * `move`, `expunge` and `cat`. Sets of messages are IMAP UID sets
 * ("1:5,7,9:*"), checked by the library.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli/cli.h"
#include "cli/json.h"

/* Reads all of fd into *data (malloc'd, caller frees). 0, or -errno. */
static int read_all(int fd, char **data, size_t *len)
{
	size_t cap = 65536, n = 0;
	char *buf = malloc(cap);
	if (!buf)
		return -ENOMEM;
	for (;;) {
		if (n == cap) {
			char *p = cap > SIZE_MAX / 2 ? NULL : realloc(buf, cap * 2);
			if (!p) {
				free(buf);
				return -ENOMEM;
			}
			buf = p;
			cap *= 2;
		}
		ssize_t r = read(fd, buf + n, cap - n);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			int e = errno;
			free(buf);
			return -e;
		}
		if (r == 0)
			break;
		n += (size_t)r;
	}
	*data = buf;
	*len = n;
	return 0;
}

/* Writes all of buf to fd. 0, or -errno. */
static int write_all(int fd, const char *buf, size_t len)
{
	while (len) {
		ssize_t w = write(fd, buf, len);
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0)
			return -errno;
		buf += w;
		len -= (size_t)w;
	}
	return 0;
}

int cli_deliver(int argc, char **argv)
{
	static const struct cli_help help = {
		"mcrdt deliver DIR [-m MAILBOX] [--flags FLAGS] [--date UNIXTIME]\n"
		"                    [--append-limit BYTES] < message",
		"Reads one message from standard input and appends it to MAILBOX (default\n"
		"INBOX), durably. FLAGS are IMAP flags and keywords separated by commas or\n"
		"spaces (\"\\Seen,$Junk\"); UNIXTIME is the internal date in seconds since the\n"
		"epoch (default: now). With --append-limit, a message larger than BYTES is\n"
		"refused. Prints the new message's UID.\n",
		false,
		"DIR", 0,
	};
	const char *mailbox = "INBOX", *flags_text = NULL, *date_text = NULL, *limit_text = NULL;
	const struct cli_opt opts[] = {
		CLI_OPT_MAILBOX(&mailbox),
		{ "flags", 0, &flags_text, NULL },
		{ "date", 0, &date_text, NULL },
		{ "append-limit", 0, &limit_text, NULL },
		{ NULL, 0, NULL, NULL },
	};
	int nargs;
	int rc = cli_parse(argc, argv, &help, opts, &nargs);
	if (rc >= 0)
		return rc;
	struct mcrdt_open_opts oo = MCRDT_OPEN_OPTS_INIT;
	struct mcrdt_append_opts ao = MCRDT_APPEND_OPTS_INIT;
	uint64_t v;
	if (date_text) {
		if (!cli_parse_u64(date_text, INT64_MAX, &v))
			return cli_usage_error(&help, argv[0], "--date wants seconds since the epoch, not '%s'",
					       date_text);
		ao.internaldate = (int64_t)v;
	}
	if (limit_text) {
		if (!cli_parse_u64(limit_text, UINT64_MAX, &v) || v == 0)
			return cli_usage_error(&help, argv[0], "--append-limit wants a size in bytes, not '%s'",
					       limit_text);
		oo.append_limit = v;
	}
	struct cli_flags flags = { NULL, 0, NULL };
	if (flags_text && cli_flags_split(&flags, &flags_text, 1))
		return CLI_FAILED;
	ao.flags = flags.v;
	ao.nflags = flags.n;

	char *data = NULL;
	size_t len = 0;
	rc = read_all(0, &data, &len);
	if (rc) {
		cli_flags_free(&flags);
		return cli_error("deliver: read standard input: %s", strerror(-rc));
	}
	mcrdt_store *s;
	if (cli_open(&s, argv[1], &oo)) {
		free(data);
		cli_flags_free(&flags);
		return CLI_FAILED;
	}
	uint32_t uid = 0;
	rc = mcrdt_append(s, mailbox, data, len, &ao, NULL, &uid);
	if (rc)
		rc = cli_fail(rc, "deliver to %s", mailbox);
	else
		printf("%" PRIu32 "\n", uid);
	mcrdt_store_close(s);
	free(data);
	cli_flags_free(&flags);
	return rc;
}

/* "\Seen $Junk" for a listing; the caller frees. */
static char *join_flags(const struct mcrdt_message *m)
{
	size_t len = 1;
	for (size_t i = 0; i < m->nflags; i++)
		len += strlen(m->flags[i]) + 1;
	char *s = malloc(len), *p = s;
	if (!s)
		return NULL;
	*p = '\0';
	for (size_t i = 0; i < m->nflags; i++)
		p += sprintf(p, "%s%s", i ? " " : "", m->flags[i]);
	return s;
}

static void format_date(char buf[32], int64_t t)
{
	time_t tt = (time_t)t;
	struct tm tm;
	if (!gmtime_r(&tt, &tm) || !strftime(buf, 32, "%Y-%m-%dT%H:%M:%SZ", &tm))
		snprintf(buf, 32, "%" PRId64, t);
}

static void list_json(const struct mcrdt_message *v, size_t n, bool modseq)
{
	struct json j;
	json_init(&j, stdout);
	json_array_begin(&j);
	for (size_t i = 0; i < n; i++) {
		const struct mcrdt_message *m = &v[i];
		json_object_begin(&j);
		json_key(&j, "uid");
		json_uint(&j, m->uid);
		json_key(&j, "guid");
		json_string(&j, m->guid);
		json_key(&j, "flags");
		json_array_begin(&j);
		for (size_t k = 0; k < m->nflags; k++)
			if (m->flags[k][0] == '\\')
				json_string(&j, m->flags[k]);
		json_array_end(&j);
		json_key(&j, "keywords");
		json_array_begin(&j);
		for (size_t k = 0; k < m->nflags; k++)
			if (m->flags[k][0] != '\\')
				json_string(&j, m->flags[k]);
		json_array_end(&j);
		json_key(&j, "size");
		json_uint(&j, m->size);
		json_key(&j, "internaldate");
		json_int(&j, m->internaldate);
		if (modseq) {
			json_key(&j, "modseq");
			json_uint(&j, m->modseq);
		}
		json_object_end(&j);
	}
	json_array_end(&j);
	json_end(&j);
}

static int list_text(const struct mcrdt_message *v, size_t n)
{
	char **flags = calloc(n ? n : 1, sizeof *flags);
	if (!flags)
		return cli_error("list: out of memory");
	int wf = 5;
	for (size_t i = 0; i < n; i++) {
		if (!(flags[i] = join_flags(&v[i]))) {
			for (size_t k = 0; k < i; k++)
				free(flags[k]);
			free(flags);
			return cli_error("list: out of memory");
		}
		if (strlen(flags[i]) > (size_t)wf)
			wf = (int)strlen(flags[i]);
	}
	printf("%10s  %-*s  %10s  %-20s  %8s  %s\n", "UID", wf, "FLAGS", "SIZE", "DATE", "MODSEQ", "GUID");
	for (size_t i = 0; i < n; i++) {
		char date[32];
		format_date(date, v[i].internaldate);
		printf("%10" PRIu32 "  %-*s  %10" PRIu64 "  %-20s  %8" PRIu64 "  %s\n", v[i].uid, wf,
		       flags[i][0] ? flags[i] : "-", v[i].size, date, v[i].modseq, v[i].guid);
		free(flags[i]);
	}
	free(flags);
	return 0;
}

int cli_list(int argc, char **argv)
{
	static const struct cli_help help = {
		"mcrdt list DIR [-m MAILBOX] [--json [--modseq]]",
		"Lists the messages of MAILBOX (default INBOX) in UID order, one per line:\n"
		"UID, flags, size in bytes, internal date (UTC), MODSEQ and GUID. --json:\n"
		"an array of objects with the keys uid, guid, flags (system flags),\n"
		"keywords, size and internaldate (seconds since the epoch): what every\n"
		"replica agrees on once synced. --modseq adds modseq, which is this\n"
		"replica's own (IMAP CONDSTORE) and differs between replicas.\n",
		false,
		"DIR", 0,
	};
	const char *mailbox = "INBOX";
	bool as_json = false, modseq = false;
	const struct cli_opt opts[] = { CLI_OPT_MAILBOX(&mailbox), CLI_OPT_JSON(&as_json),
					{ "modseq", 0, NULL, &modseq }, { NULL, 0, NULL, NULL } };
	int nargs;
	int rc = cli_parse(argc, argv, &help, opts, &nargs);
	if (rc >= 0)
		return rc;
	mcrdt_store *s;
	mcrdt_mailbox *mb;
	if (cli_select(&s, &mb, argv[1], mailbox))
		return CLI_FAILED;
	struct mcrdt_message *v = NULL;
	size_t n = 0;
	rc = mcrdt_fetch(mb, "1:*", MCRDT_UID, &v, &n);
	if (rc) {
		rc = cli_fail(rc, "fetch the messages of %s", mailbox);
	} else {
		if (as_json)
			list_json(v, n, modseq);
		else
			rc = list_text(v, n);
		mcrdt_messages_free(v, n);
	}
	cli_close(s, mb);
	return rc;
}

int cli_flag(int argc, char **argv)
{
	static const struct cli_help help = {
		"mcrdt flag DIR [-m MAILBOX] UIDSET +FLAGS|-FLAGS|=FLAGS [FLAGS...]",
		"Adds (+), removes (-) or sets (=) flags on the messages of UIDSET in\n"
		"MAILBOX (default INBOX). FLAGS are IMAP flags and keywords separated by\n"
		"commas or spaces, in one or several arguments:\n"
		"\n"
		"  mcrdt flag DIR 1:3 +\\\\Seen $Junk\n"
		"  mcrdt flag DIR 4,7:* -\\\\Seen,\\\\Flagged\n"
		"  mcrdt flag DIR 5 =          (clears every flag)\n"
		"\n"
		"Every word after '--' is an operand: put '--' before the flags when one\n"
		"could read as an option (\"-mail\" is -m ail).\n",
		true,
		"DIR UIDSET +FLAGS|-FLAGS|=FLAGS", -1,
	};
	const char *mailbox = "INBOX";
	const struct cli_opt opts[] = { CLI_OPT_MAILBOX(&mailbox), { NULL, 0, NULL, NULL } };
	int nargs;
	int rc = cli_parse(argc, argv, &help, opts, &nargs);
	if (rc >= 0)
		return rc;
	const char *set = argv[2];
	enum mcrdt_flags_mode mode;
	switch (argv[3][0]) {
	case '+': mode = MCRDT_FLAGS_ADD; break;
	case '-': mode = MCRDT_FLAGS_REMOVE; break;
	case '=': mode = MCRDT_FLAGS_SET; break;
	default:
		return cli_usage_error(&help, argv[0], "'%s' starts with none of +, - and =", argv[3]);
	}
	argv[3]++;
	struct cli_flags flags;
	if (cli_flags_split(&flags, (const char *const *)(argv + 3), (size_t)nargs - 2))
		return CLI_FAILED;
	if (flags.n == 0 && mode != MCRDT_FLAGS_SET) {
		cli_flags_free(&flags);
		return cli_usage_error(&help, argv[0], "no flags to %s", mode == MCRDT_FLAGS_ADD ? "add" : "remove");
	}
	mcrdt_store *s;
	mcrdt_mailbox *mb;
	if (cli_select(&s, &mb, argv[1], mailbox)) {
		cli_flags_free(&flags);
		return CLI_FAILED;
	}
	rc = mcrdt_store_flags(mb, set, MCRDT_UID, mode, flags.v, flags.n, 0, NULL, NULL);
	if (rc)
		rc = cli_fail(rc, "change flags of %s in %s", set, mailbox);
	cli_close(s, mb);
	cli_flags_free(&flags);
	return rc;
}

static int copy_or_move(int argc, char **argv, bool move)
{
	static const struct cli_help copy_help = {
		"mcrdt copy DIR [-m MAILBOX] UIDSET DEST",
		"Copies the messages of UIDSET in MAILBOX (default INBOX) into the mailbox\n"
		"DEST, with their flags. Prints \"COPYUID <uidvalidity of DEST> <source UIDs>\n"
		"<new UIDs>\", the two sets in corresponding order; nothing when UIDSET\n"
		"names no message.\n",
		false,
		"DIR UIDSET DEST", 0,
	};
	static const struct cli_help move_help = {
		"mcrdt move DIR [-m MAILBOX] UIDSET DEST",
		"Moves the messages of UIDSET in MAILBOX (default INBOX) into the mailbox\n"
		"DEST, with their flags. Prints \"COPYUID <uidvalidity of DEST> <source UIDs>\n"
		"<new UIDs>\", the two sets in corresponding order; nothing when UIDSET\n"
		"names no message.\n",
		false,
		"DIR UIDSET DEST", 0,
	};
	const struct cli_help *help = move ? &move_help : &copy_help;
	const char *mailbox = "INBOX";
	const struct cli_opt opts[] = { CLI_OPT_MAILBOX(&mailbox), { NULL, 0, NULL, NULL } };
	int nargs;
	int rc = cli_parse(argc, argv, help, opts, &nargs);
	if (rc >= 0)
		return rc;
	const char *set = argv[2], *dest = argv[3];
	mcrdt_store *s;
	mcrdt_mailbox *mb;
	if (cli_select(&s, &mb, argv[1], mailbox))
		return CLI_FAILED;
	struct mcrdt_copyuid cu;
	memset(&cu, 0, sizeof cu);
	rc = mcrdt_copy(mb, set, MCRDT_UID, dest, move, &cu);
	if (rc) {
		rc = cli_fail(rc, "%s %s from %s to %s", move ? "move" : "copy", set, mailbox, dest);
	} else {
		if (cu.n) {
			printf("COPYUID %" PRIu32 " ", cu.uidvalidity);
			cli_print_set(cu.src, cu.n);
			printf(" ");
			cli_print_set(cu.dst, cu.n);
			printf("\n");
		}
		mcrdt_copyuid_free(&cu);
	}
	cli_close(s, mb);
	return rc;
}

int cli_copy(int argc, char **argv)
{
	return copy_or_move(argc, argv, false);
}

int cli_move(int argc, char **argv)
{
	return copy_or_move(argc, argv, true);
}

static int cmp_u32(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
	return x < y ? -1 : x > y;
}

int cli_expunge(int argc, char **argv)
{
	static const struct cli_help help = {
		"mcrdt expunge DIR [-m MAILBOX] [UIDSET]",
		"Removes messages from MAILBOX (default INBOX): without UIDSET every\n"
		"message with \\Deleted; with UIDSET exactly the messages of the set,\n"
		"whatever their flags. Prints the expunged UIDs as a set (\"1:3,7\"), or\n"
		"nothing when none was.\n",
		false,
		"DIR", 1,
	};
	const char *mailbox = "INBOX";
	const struct cli_opt opts[] = { CLI_OPT_MAILBOX(&mailbox), { NULL, 0, NULL, NULL } };
	int nargs;
	int rc = cli_parse(argc, argv, &help, opts, &nargs);
	if (rc >= 0)
		return rc;
	const char *set = nargs == 2 ? argv[2] : NULL;
	mcrdt_store *s;
	mcrdt_mailbox *mb;
	if (cli_select(&s, &mb, argv[1], mailbox))
		return CLI_FAILED;
	uint32_t *uids = NULL;
	size_t n = 0;
	rc = mcrdt_expunge(mb, set, set ? MCRDT_EXPUNGE_ANY : 0, &uids, &n);
	if (rc) {
		rc = cli_fail(rc, "expunge %s in %s", set ? set : "\\Deleted messages", mailbox);
	} else if (n) {
		qsort(uids, n, sizeof *uids, cmp_u32);
		cli_print_set(uids, n);
		printf("\n");
	}
	free(uids);
	cli_close(s, mb);
	return rc;
}

int cli_cat(int argc, char **argv)
{
	static const struct cli_help help = {
		"mcrdt cat DIR [-m MAILBOX] UID",
		"Writes the message UID of MAILBOX (default INBOX) to standard output,\n"
		"byte for byte.\n",
		false,
		"DIR UID", 0,
	};
	const char *mailbox = "INBOX";
	const struct cli_opt opts[] = { CLI_OPT_MAILBOX(&mailbox), { NULL, 0, NULL, NULL } };
	int nargs;
	int rc = cli_parse(argc, argv, &help, opts, &nargs);
	if (rc >= 0)
		return rc;
	uint64_t uid;
	if (!cli_parse_u64(argv[2], UINT32_MAX, &uid) || uid == 0)
		return cli_usage_error(&help, argv[0], "'%s' is no UID (1 to 4294967295)", argv[2]);
	mcrdt_store *s;
	mcrdt_mailbox *mb;
	if (cli_select(&s, &mb, argv[1], mailbox))
		return CLI_FAILED;
	int fd;
	rc = mcrdt_message_open(mb, (uint32_t)uid, &fd);
	cli_close(s, mb);
	if (rc)
		return cli_fail(rc, "open message %" PRIu64 " in %s", uid, mailbox);
	char buf[65536];
	for (;;) {
		ssize_t r = read(fd, buf, sizeof buf);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			rc = cli_error("cat: read message %" PRIu64 ": %s", uid, strerror(errno));
			break;
		}
		if (r == 0)
			break;
		int e = write_all(1, buf, (size_t)r);
		if (e) {
			rc = cli_error("cat: write to standard output: %s", strerror(-e));
			break;
		}
	}
	close(fd);
	return rc;
}
