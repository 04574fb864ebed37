/*
 * tests/crdt/cluster.h — replicas of the mail model exchanging ops in memory.
 *
 * The network of the property and convergence tests: every op
 * any replica issues goes into one shared log; delivery hands a log entry
 * to a replica in any order the caller likes. No I/O: the real transport
 * (sync/) moves the same ops between processes.
 */
#ifndef MCRDT_TESTS_CRDT_CLUSTER_H
#define MCRDT_TESTS_CRDT_CLUSTER_H

#include "crdt/model.h"

typedef struct {
	crdt_model **r;
	size_t n;
	crdt_oplist log;     /* every op issued, in issue order */
	size_t *origin;      /* replica that issued log entry k */
	size_t caporigin;
} crdt_cluster;

/* n replicas with ids first_id, first_id + 1, ... */
int crdt_cluster_init(crdt_cluster *c, size_t n, uint64_t first_id);
void crdt_cluster_free(crdt_cluster *c);
/* Moves the ops replica i issued into the shared log (ops is emptied). */
int crdt_cluster_publish(crdt_cluster *c, size_t i, crdt_oplist *ops);
/* Delivers log entry k to replica i; returns crdt_model_receive's code. */
int crdt_cluster_deliver(crdt_cluster *c, size_t i, size_t k);
/* Settles replica i and publishes the claims it issued. */
int crdt_cluster_settle(crdt_cluster *c, size_t i);
/*
 * Delivers the whole log to every replica and settles, round after round,
 * until a round issues no new op. Fails with MCRDT_ERROR after max_rounds.
 * *rounds (may be NULL) gets the number of rounds taken.
 */
int crdt_cluster_sync_all(crdt_cluster *c, size_t max_rounds, size_t *rounds);
/* 1 when every replica describes the same state, 0 if not, < 0 on error. */
int crdt_cluster_converged(const crdt_cluster *c);

#endif
