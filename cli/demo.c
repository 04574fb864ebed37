/*
 * cli/demo.c — `mcrdt demo`: three replicas of one mailbox tree diverge
 * while cut off from each other, then exchange their ops and converge.
 *
 * For now the replicas live in memory and drive the crdt/ layer directly;
 * the demo grows into real Maildir replicas synced through git.
 */
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

/* Prints the replicas' states in columns. */
static int print_side_by_side(const crdt_cluster *c)
{
	enum { W = 40 };
	char *text[3];
	for (size_t i = 0; i < 3; i++) {
		int rc = crdt_model_describe(c->r[i], &text[i]);
		if (rc) {
			for (size_t k = 0; k < i; k++)
				free(text[k]);
			return rc;
		}
	}
	for (size_t i = 0; i < 3; i++)
		printf("%-*s", W, names[i]);
	printf("\n");
	char *pos[3] = { text[0], text[1], text[2] };
	for (;;) {
		int any = 0;
		for (size_t i = 0; i < 3; i++) {
			char *p = pos[i];
			size_t len = 0;
			if (*p) {
				any = 1;
				len = strcspn(p, "\n");
				pos[i] = p + len + (p[len] == '\n');
			}
			/* Drop the GUIDs' replica part to fit a column. */
			printf("%-*.*s", W, (int)(len < W - 1 ? len : W - 1), p);
		}
		printf("\n");
		if (!any)
			break;
	}
	for (size_t i = 0; i < 3; i++)
		free(text[i]);
	return 0;
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
	printf("== 1. all three replicas in sync ==\n");
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
	printf("== 2. offline: laptop appends and flags, phone appends (same UID!) and\n"
	       "      renames Work to Projects, server moves a message and renames Work to Archive ==\n");
	print_side_by_side(&c);

	size_t rounds;
	if ((rc = crdt_cluster_sync_all(&c, 16, &rounds)))
		return fail(rc);
	printf("== 3. after exchanging ops (%zu rounds): the UID clash is settled, one rename "
	       "wins ==\n", rounds);
	print_side_by_side(&c);
	int same = crdt_cluster_converged(&c);
	printf("converged: %s\n", same == 1 ? "yes" : "NO");
	crdt_cluster_free(&c);
	return same == 1 ? 0 : 1;
}
