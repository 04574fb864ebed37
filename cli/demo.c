/*
 * cli/demo.c — `mcrdt demo`: three replicas of one mailbox tree diverge
 * while cut off from each other, then exchange their ops and converge.
 *
 * For now the replicas live in memory and drive the crdt/ layer directly;
 * the demo grows into real Maildir replicas synced through git.
 */
#define _GNU_SOURCE /* open_memstream */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "crdt/cluster.h"
#include "mcrdt/mcrdt.h"

static const char *names[] = { "laptop", "phone", "server" };

static int fail(int rc)
{
	fprintf(stderr, "mcrdt demo: %s (%s)\n", mcrdt_error_last(), mcrdt_strerror(rc));
	return 1;
}

/* A replica's view as text: mailboxes, then "UID flags [origin#n]" rows. */
static char *render(const crdt_model *m)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);
	struct crdt_mailbox_info *mb;
	size_t nmb;
	if (!f)
		return NULL;
	if (crdt_model_mailboxes(m, &mb, &nmb) == 0) {
		for (size_t i = 0; i < nmb; i++) {
			fprintf(f, "%s%s  uv=%u next=%u\n", mb[i].name,
				mb[i].subscribed ? "*" : "", mb[i].uidvalidity, mb[i].uidnext);
			struct crdt_row *rows;
			size_t n;
			if (crdt_model_rows(m, mb[i].guid, &rows, &n))
				continue;
			for (size_t k = 0; k < n; k++)
				fprintf(f, "  %2u %-16s %s#%llu\n", rows[k].uid,
					rows[k].flags[0] ? rows[k].flags : "-",
					names[(rows[k].guid.replica - 0xa1) % 3],
					(unsigned long long)rows[k].guid.counter);
			crdt_rows_free(rows, n);
		}
		crdt_mailboxes_free(mb, nmb);
	}
	fclose(f);
	return buf;
}

/* Prints the replicas' views in columns. */
static void print_side_by_side(const crdt_cluster *c)
{
	enum { W = 38 };
	char *text[3], *pos[3];
	for (size_t i = 0; i < 3; i++)
		pos[i] = text[i] = render(c->r[i]);
	for (size_t i = 0; i < 3; i++)
		printf("%-*s", W, names[i]);
	printf("\n");
	for (int any = 1; any;) {
		any = 0;
		for (size_t i = 0; i < 3; i++) {
			char *p = pos[i] ? pos[i] : "";
			size_t len = strcspn(p, "\n");
			if (*p) {
				any = 1;
				pos[i] = p + len + (p[len] == '\n');
			}
			printf("%-*.*s", W, (int)(len < W - 1 ? len : W - 1), p);
		}
		printf("\n");
	}
	for (size_t i = 0; i < 3; i++)
		free(text[i]);
}

/* Runs one local change and publishes its ops. */
#define LOCAL(c, i, call)                                            \
	do {                                                         \
		crdt_oplist ops_ = CRDT_OPLIST_INIT;                 \
		crdt_model *m_ = (c)->r[i];                          \
		int rc_ = (call);                                    \
		if (!rc_)                                            \
			rc_ = crdt_cluster_publish((c), (i), &ops_); \
		if (!rc_)                                            \
			rc_ = crdt_cluster_settle((c), (i));         \
		crdt_oplist_free(&ops_);                             \
		if (rc_)                                             \
			return fail(rc_);                            \
	} while (0)

int cli_demo(int argc, char **argv)
{
	if (argc > 1 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0)) {
		printf("usage: mcrdt demo\n\nThree replicas (laptop, phone, server) share a mailbox "
		       "tree, diverge while\noffline, then exchange their ops and converge. Prints "
		       "each replica's view\nbefore and after.\n");
		return 0;
	}
	crdt_cluster c;
	int rc = crdt_cluster_init(&c, 3, 0xa1);
	if (rc)
		return fail(rc);
	crdt_dot inbox, work, msg[4];
	const char *seen[] = { "\\Seen" }, *flagged[] = { "\\Flagged" }, *junk[] = { "$Junk" };

	/* Common start: the laptop creates the tree and receives two messages. */
	LOCAL(&c, 0, crdt_model_create(m_, &ops_, "INBOX", 1700000001, &inbox));
	LOCAL(&c, 0, crdt_model_create(m_, &ops_, "Work", 1700000002, &work));
	LOCAL(&c, 0, crdt_model_subscribe(m_, &ops_, "Work", true));
	LOCAL(&c, 0, crdt_model_append(m_, &ops_, inbox, NULL, 0, NULL, 0, &msg[0], NULL));
	LOCAL(&c, 0, crdt_model_append(m_, &ops_, inbox, NULL, 0, NULL, 0, &msg[1], NULL));
	if ((rc = crdt_cluster_sync_all(&c, 16, NULL)))
		return fail(rc);
	printf("Three replicas of one mailbox tree. Rows: UID, flags, message origin.\n"
	       "A * marks a subscribed mailbox; uv is its UIDVALIDITY, next its UIDNEXT.\n\n");
	printf("== 1. in sync ==\n");
	print_side_by_side(&c);

	/* Offline: each replica changes the same mailboxes concurrently. */
	LOCAL(&c, 0, crdt_model_append(m_, &ops_, inbox, seen, 1, NULL, 0, &msg[2], NULL));
	LOCAL(&c, 0, crdt_model_flags(m_, &ops_, msg[0], CRDT_OP_FLAGS_ADD, flagged, 1));
	LOCAL(&c, 1, crdt_model_append(m_, &ops_, inbox, NULL, 0, NULL, 0, &msg[3], NULL));
	LOCAL(&c, 1, crdt_model_flags(m_, &ops_, msg[0], CRDT_OP_FLAGS_ADD, seen, 1));
	LOCAL(&c, 1, crdt_model_rename(m_, &ops_, work, "Projects"));
	LOCAL(&c, 2, crdt_model_flags(m_, &ops_, msg[1], CRDT_OP_FLAGS_ADD, junk, 1));
	LOCAL(&c, 2, crdt_model_copy(m_, &ops_, msg[1], work, true, NULL, 0, NULL, NULL));
	LOCAL(&c, 2, crdt_model_rename(m_, &ops_, work, "Archive"));
	printf("== 2. offline, each on its own: the laptop and the phone both deliver a message\n"
	       "   (both take UID 3) and flag the first one; the phone renames Work to Projects,\n"
	       "   the server moves a message to Work and renames it Archive ==\n");
	print_side_by_side(&c);

	size_t rounds;
	if ((rc = crdt_cluster_sync_all(&c, 16, &rounds)))
		return fail(rc);
	printf("== 3. after exchanging ops (%zu rounds): flags merged, UID 3 burned and both\n"
	       "   messages shown above it, one rename won everywhere ==\n", rounds);
	print_side_by_side(&c);
	int same = crdt_cluster_converged(&c);
	printf("converged: %s\n", same == 1 ? "yes" : "NO");
	crdt_cluster_free(&c);
	return same == 1 ? 0 : 1;
}
