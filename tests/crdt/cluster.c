/*
 * tests/crdt/cluster.c — see cluster.h.
 */
#include "tests/crdt/cluster.h"

#include <stdlib.h>
#include <string.h>

#include "common/error.h"
#include "common/grow.h"

int crdt_cluster_init(crdt_cluster *c, size_t n, uint64_t first_id)
{
	memset(c, 0, sizeof *c);
	c->r = calloc(n, sizeof *c->r);
	if (!c->r)
		return err_set(MCRDT_ENOMEM, "out of memory creating replicas");
	c->n = n;
	for (size_t i = 0; i < n; i++) {
		int rc = crdt_model_new(&c->r[i], first_id + i);
		if (rc) {
			crdt_cluster_free(c);
			return rc;
		}
	}
	return 0;
}

void crdt_cluster_free(crdt_cluster *c)
{
	for (size_t i = 0; c->r && i < c->n; i++)
		crdt_model_free(c->r[i]);
	free(c->r);
	free(c->origin);
	crdt_oplist_free(&c->log);
	memset(c, 0, sizeof *c);
}

int crdt_cluster_publish(crdt_cluster *c, size_t i, crdt_oplist *ops)
{
	for (size_t k = 0; k < ops->n; k++) {
		int rc = GROW(c->origin, c->caporigin, c->log.n + 1);
		if (rc)
			return rc;
		c->origin[c->log.n] = i;
		rc = crdt_oplist_push(&c->log, &ops->ops[k]);
		if (rc)
			return rc;
	}
	crdt_oplist_free(ops);
	return 0;
}

int crdt_cluster_deliver(crdt_cluster *c, size_t i, size_t k)
{
	return crdt_model_receive(c->r[i], &c->log.ops[k]);
}

int crdt_cluster_settle(crdt_cluster *c, size_t i)
{
	crdt_oplist out = CRDT_OPLIST_INIT;
	int rc = crdt_model_settle(c->r[i], &out);
	if (!rc)
		rc = crdt_cluster_publish(c, i, &out);
	crdt_oplist_free(&out);
	return rc;
}

int crdt_cluster_sync_all(crdt_cluster *c, size_t max_rounds, size_t *rounds)
{
	for (size_t round = 1; round <= max_rounds; round++) {
		size_t before = c->log.n;
		for (size_t i = 0; i < c->n; i++) {
			for (size_t k = 0; k < c->log.n; k++) {
				int rc = crdt_cluster_deliver(c, i, k);
				if (rc && rc != MCRDT_EDUPLICATE && rc != MCRDT_EPENDING)
					return rc;
			}
			int rc = crdt_cluster_settle(c, i);
			if (rc)
				return rc;
		}
		if (c->log.n == before) {
			if (rounds)
				*rounds = round;
			return 0;
		}
	}
	return err_set(MCRDT_ERROR, "replicas still issuing claims after %zu rounds", max_rounds);
}

int crdt_cluster_converged(const crdt_cluster *c)
{
	char *first = NULL;
	int same = 1;
	for (size_t i = 0; i < c->n && same; i++) {
		char *d;
		int rc = crdt_model_describe(c->r[i], &d);
		if (rc) {
			free(first);
			return rc;
		}
		if (!first)
			first = d;
		else {
			same = strcmp(first, d) == 0;
			free(d);
		}
	}
	free(first);
	return same;
}
