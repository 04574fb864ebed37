/*
 * cli/demo.c — `mcrdt demo [DIR]`: three replicas of one user's mail,
 * real Maildirs on local directories, diverge while cut off from each
 * other, then sync through a hub (a bare git repository) and converge.
 * Each replica's view is printed side by side before and after.
 *
 * Uses the public API only, like every other subcommand.
 */
#define _GNU_SOURCE /* open_memstream, mkdtemp */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli/cli.h"

#define NREP 3
#define COL 34

static const char *names[NREP] = { "laptop", "phone", "server" };

struct demo {
	char root[4096];
	char dir[NREP][4200];
	char hub[4200];
	mcrdt_store *s[NREP];
};

static int fail(const char *what, int rc)
{
	return cli_fail(rc, "demo: %s", what);
}

static int deliver(mcrdt_store *s, const char *mailbox, const char *subject)
{
	char msg[512];
	int len = snprintf(msg, sizeof msg,
			   "From: someone@example.org\r\nTo: me@example.org\r\nSubject: %s\r\n\r\n%s\r\n", subject,
			   subject);
	return mcrdt_append(s, mailbox, msg, (size_t)len, NULL, NULL, NULL);
}

static int flag(mcrdt_store *s, const char *mailbox, const char *uids, enum mcrdt_flags_mode mode, const char *f)
{
	mcrdt_mailbox *mb;
	int rc = mcrdt_mailbox_select(s, mailbox, &mb);
	if (rc == 0) {
		rc = mcrdt_store_flags(mb, uids, MCRDT_UID, mode, &f, 1, 0, NULL, NULL);
		mcrdt_mailbox_close(mb);
	}
	return rc;
}

static int expunge(mcrdt_store *s, const char *mailbox, const char *uids)
{
	mcrdt_mailbox *mb;
	int rc = mcrdt_mailbox_select(s, mailbox, &mb);
	if (rc == 0) {
		rc = mcrdt_expunge(mb, uids, MCRDT_EXPUNGE_ANY, NULL, NULL);
		mcrdt_mailbox_close(mb);
	}
	return rc;
}

/* The Subject of message uid, read from its file. */
static void subject_of(mcrdt_mailbox *mb, uint32_t uid, char *out, size_t size)
{
	snprintf(out, size, "?");
	int fd;
	if (mcrdt_message_open(mb, uid, &fd) != 0)
		return;
	char buf[1024];
	ssize_t n = read(fd, buf, sizeof buf - 1);
	close(fd);
	if (n <= 0)
		return;
	buf[n] = '\0';
	char *p = strstr(buf, "Subject: ");
	if (p) {
		p += 9;
		snprintf(out, size, "%.*s", (int)strcspn(p, "\r\n"), p);
	}
}

/* A replica's view as lines of text: each mailbox, then "UID flags subject". */
static char *render(mcrdt_store *s)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);
	if (!f)
		return NULL;
	struct mcrdt_mailbox_info *mbs;
	size_t nmb;
	if (mcrdt_mailbox_list(s, &mbs, &nmb) == 0) {
		for (size_t i = 0; i < nmb; i++) {
			if (mbs[i].attrs & MCRDT_MBOX_NONEXISTENT)
				continue;
			fprintf(f, "%s  (uidvalidity %u)\n", mbs[i].name, mbs[i].uidvalidity);
			mcrdt_mailbox *mb;
			struct mcrdt_message *v;
			size_t n;
			if (mcrdt_mailbox_select(s, mbs[i].name, &mb) != 0)
				continue;
			if (mcrdt_fetch(mb, "1:*", MCRDT_UID, &v, &n) == 0) {
				for (size_t k = 0; k < n; k++) {
					char subj[64], fl[64] = "";
					subject_of(mb, v[k].uid, subj, sizeof subj);
					for (size_t j = 0; j < v[k].nflags; j++)
						snprintf(fl + strlen(fl), sizeof fl - strlen(fl), "%s%s", j ? "," : "",
							 v[k].flags[j]);
					fprintf(f, "  %3" PRIu32 " %-9s %s\n", v[k].uid, *fl ? fl : "-", subj);
				}
				mcrdt_messages_free(v, n);
			}
			mcrdt_mailbox_close(mb);
		}
		mcrdt_mailbox_list_free(mbs, nmb);
	}
	fclose(f);
	return buf;
}

/* Prints the replicas' views in columns; returns whether all are equal. */
static bool side_by_side(struct demo *d, const char *title)
{
	char *text[NREP];
	const char *line[NREP];
	for (int r = 0; r < NREP; r++)
		line[r] = text[r] = render(d->s[r]);
	bool same = true;
	for (int r = 1; r < NREP; r++)
		same &= text[r] && text[0] && strcmp(text[r], text[0]) == 0;
	printf("\n== %s\n", title);
	for (int r = 0; r < NREP; r++)
		printf("%-*s", COL, names[r]);
	printf("\n");
	for (int r = 0; r < NREP; r++)
		printf("%-*s", COL, "--------------------------------");
	printf("\n");
	for (bool more = true; more;) {
		more = false;
		for (int r = 0; r < NREP; r++)
			more |= line[r] && *line[r];
		if (!more)
			break;
		for (int r = 0; r < NREP; r++) {
			size_t n = line[r] ? strcspn(line[r], "\n") : 0;
			printf("%-*.*s", COL, (int)(n < COL - 1 ? n : COL - 1), line[r] ? line[r] : "");
			if (line[r] && *line[r])
				line[r] += n + (line[r][n] == '\n');
		}
		printf("\n");
	}
	for (int r = 0; r < NREP; r++)
		free(text[r]);
	return same;
}

static int sync_one(struct demo *d, int r)
{
	struct mcrdt_sync_stats st;
	int rc = mcrdt_sync(d->s[r], d->hub, NULL, &st);
	if (rc)
		return fail("sync", rc);
	printf("%-7s sync: sent %" PRIu64 " ops (%" PRIu64 " messages), received %" PRIu64 " ops (%" PRIu64
	       " messages), %" PRIu64 " UID moves\n",
	       names[r], st.ops_sent, st.messages_sent, st.ops_received, st.messages_received, st.uid_moves);
	return 0;
}

static int setup(struct demo *d, const char *where)
{
	if (where) {
		snprintf(d->root, sizeof d->root, "%s", where);
		if (mkdir(d->root, 0700) != 0) {
			return cli_error("demo: cannot create %s (it must not exist yet)", d->root);
		}
	} else {
		const char *tmp = getenv("TMPDIR");
		snprintf(d->root, sizeof d->root, "%s/mcrdt-demo.XXXXXX", tmp && *tmp ? tmp : "/tmp");
		if (!mkdtemp(d->root)) {
			return cli_error("demo: cannot create a directory under %s", tmp && *tmp ? tmp : "/tmp");
		}
	}
	snprintf(d->hub, sizeof d->hub, "%s/hub.git", d->root);
	int rc = mcrdt_hub_init(d->hub);
	if (rc)
		return fail("hub init", rc);
	for (int r = 0; r < NREP; r++) {
		snprintf(d->dir[r], sizeof d->dir[r], "%s/%s", d->root, names[r]);
		struct mcrdt_open_opts o = MCRDT_OPEN_OPTS_INIT;
		o.flags = MCRDT_OPEN_CREATE;
		o.name = names[r];
		if ((rc = mcrdt_store_open(&d->s[r], d->dir[r], &o)))
			return fail("init", rc);
	}
	return 0;
}

int cli_demo(int argc, char **argv)
{
	static const struct cli_help help = {
		"mcrdt demo [DIR]",
		"Three replicas (laptop, phone, server) of one user's mail, each a real\n"
		"Maildir under DIR (default: a new directory in $TMPDIR or /tmp), start\n"
		"from the same mail, change it while cut off from each other (deliveries,\n"
		"flag changes, a rename, an expunge), then sync through a hub (a bare git\n"
		"repository, DIR/hub.git) and converge. Prints each replica's view side by\n"
		"side before and after, and leaves DIR for a look (mutt -f DIR/laptop).\n",
		false,
		"", 1,
	};
	int nargs;
	int rc = cli_parse(argc, argv, &help, (const struct cli_opt[]){ { NULL, 0, NULL, NULL } }, &nargs);
	if (rc >= 0)
		return rc;
	struct demo d;
	memset(&d, 0, sizeof d);
	if ((rc = setup(&d, nargs >= 1 ? argv[1] : NULL)))
		goto out;
	printf("Three replicas in %s: %s, %s, %s; hub %s\n", d.root, names[0], names[1], names[2], d.hub);

	/* The server has the mail; everybody syncs once. */
	mcrdt_store *srv = d.s[2], *lap = d.s[0], *ph = d.s[1];
	const char *start[] = { "Welcome", "Lunch on Friday?", "Quarterly report", "Invoice 1142" };
	for (size_t i = 0; rc == 0 && i < 4; i++)
		rc = deliver(srv, "INBOX", start[i]);
	if (rc == 0 && (rc = mcrdt_mailbox_create(srv, "Projects")) == 0)
		rc = deliver(srv, "Projects", "Project plan");
	if (rc) {
		rc = fail("deliver", rc);
		goto out;
	}
	printf("\n-- everybody syncs: server, phone, laptop, then server and phone again\n");
	const int first[] = { 2, 1, 0, 2, 1 };
	for (size_t i = 0; rc == 0 && i < sizeof first / sizeof *first; i++)
		rc = sync_one(&d, first[i]);
	if (rc)
		goto out;
	side_by_side(&d, "in step");

	/* Cut off from each other, each one changes the mail. */
	if ((rc = deliver(lap, "INBOX", "Draft from the train")) == 0 &&
	    (rc = flag(lap, "INBOX", "1:2", MCRDT_FLAGS_ADD, "\\Seen")) == 0 &&
	    (rc = mcrdt_mailbox_rename(lap, "Projects", "Work")) == 0 &&
	    (rc = flag(ph, "INBOX", "3", MCRDT_FLAGS_ADD, "\\Flagged")) == 0 &&
	    (rc = flag(ph, "INBOX", "1", MCRDT_FLAGS_ADD, "$Important")) == 0 &&
	    (rc = expunge(ph, "INBOX", "4")) == 0 && (rc = deliver(ph, "INBOX", "Photo from the phone")) == 0 &&
	    (rc = deliver(srv, "INBOX", "New order 7781")) == 0 && (rc = deliver(srv, "Projects", "Budget")) == 0 &&
	    (rc = flag(srv, "INBOX", "1", MCRDT_FLAGS_REMOVE, "\\Seen")) == 0)
		rc = mcrdt_mailbox_create(srv, "Archive");
	if (rc) {
		rc = fail("change", rc);
		goto out;
	}
	printf("\n-- offline: laptop delivers, reads 1:2 and renames Projects to Work;\n"
	       "   phone flags, expunges 4 and delivers; server delivers into INBOX and\n"
	       "   Projects and creates Archive\n");
	side_by_side(&d, "diverged");

	printf("\n-- sync through the hub: laptop, phone, server, then laptop and phone again\n");
	int order[] = { 0, 1, 2, 0, 1 };
	for (size_t i = 0; rc == 0 && i < sizeof order / sizeof *order; i++)
		rc = sync_one(&d, order[i]);
	if (rc)
		goto out;
	bool same = side_by_side(&d, "converged");
	printf("\n%s\n", same ? "All three replicas agree: same mailboxes, UIDs, flags and messages."
			      : "The replicas differ!");
	printf("Each is a Maildir: try  ls %s/.Work/cur  or  mutt -f %s\n", d.dir[0], d.dir[0]);
	rc = same ? 0 : CLI_FAILED;
out:
	for (int r = 0; r < NREP; r++)
		mcrdt_store_close(d.s[r]);
	return rc;
}
