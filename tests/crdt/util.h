/*
 * tests/crdt/util.h — small helpers the crdt test suites share.
 */
#ifndef MCRDT_TESTS_CRDT_UTIL_H
#define MCRDT_TESTS_CRDT_UTIL_H

#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "tests/crdt/cluster.h"
#include "mcrdt/errors.h"

/* Runs a local change on replica i of cluster c (the model is m_, the op
 * list ops_), publishes its ops and settles; fails the test on error. */
#define LOCAL(c, i, call)                                                    \
	do {                                                                 \
		crdt_oplist ops_ = CRDT_OPLIST_INIT;                         \
		crdt_model *m_ = (c)->r[i];                                  \
		int rc_ = (call);                                            \
		ck_assert_msg(rc_ == 0, "%s: %s", #call, mcrdt_error_last()); \
		ck_assert_int_eq(crdt_cluster_publish((c), (i), &ops_), 0);  \
		ck_assert_int_eq(crdt_cluster_settle((c), (i)), 0);          \
		crdt_oplist_free(&ops_);                                     \
	} while (0)

static inline void sync_all(crdt_cluster *c)
{
	int rc = crdt_cluster_sync_all(c, 32, NULL);
	ck_assert_msg(rc == 0, "sync: %s", mcrdt_error_last());
	ck_assert_int_eq(crdt_cluster_converged(c), 1);
}

/* The GUID of the visible mailbox name on replica m; fails if absent. */
static inline crdt_dot mbox_named(const crdt_model *m, const char *name)
{
	crdt_dot g;
	ck_assert_msg(crdt_model_find(m, name, &g) == 0, "no mailbox %s", name);
	return g;
}

static inline int has_mailbox(const crdt_model *m, const char *name)
{
	crdt_dot g;
	return crdt_model_find(m, name, &g) == 0;
}

/* Rows of mailbox name on replica m; caller frees with crdt_rows_free. */
static inline struct crdt_row *rows_of(const crdt_model *m, const char *name, size_t *n)
{
	struct crdt_row *rows;
	ck_assert_int_eq(crdt_model_rows(m, mbox_named(m, name), &rows, n), 0);
	return rows;
}

/* The row of message g in mailbox name, or NULL; *flags_out gets a copy. */
static inline int find_row(const crdt_model *m, const char *name, crdt_dot g, uint32_t *uid,
			   char **flags_out)
{
	size_t n;
	struct crdt_row *rows = rows_of(m, name, &n);
	int found = 0;
	for (size_t k = 0; k < n; k++) {
		if (crdt_dot_eq(rows[k].guid, g)) {
			found = 1;
			if (uid)
				*uid = rows[k].uid;
			if (flags_out)
				*flags_out = strdup(rows[k].flags);
		}
	}
	crdt_rows_free(rows, n);
	return found;
}

static inline size_t count_rows(const crdt_model *m, const char *name)
{
	size_t n;
	struct crdt_row *rows = rows_of(m, name, &n);
	for (size_t k = 1; k < n; k++)
		ck_assert_uint_lt(rows[k - 1].uid, rows[k].uid); /* UIDs distinct, ascending */
	crdt_rows_free(rows, n);
	return n;
}

#endif
