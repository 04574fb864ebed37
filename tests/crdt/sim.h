/*
 * tests/crdt/sim.h — the randomized convergence simulator.
 *
 * A schedule is a list of steps generated from a seed: local changes on
 * 2–5 replicas (append, flags, keywords, expunge, copy, move, create,
 * delete, rename, subscribe, unsubscribe), deliveries of random log entries
 * (any order, duplicates), and partitions that cut a replica off for a
 * while. Steps name their targets by number, taken modulo what exists when
 * the step runs, so any sub-list of a schedule is a schedule too: that is
 * what lets a failure shrink to a minimal trace.
 *
 * After every step the simulator checks the UID invariants (a) and (b) of
 * DESIGN.md on every replica, and what a CONDSTORE/QRESYNC client relies
 * on: the MODSEQ counter never goes down, nor a view's HIGHESTMODSEQ while
 * its UIDVALIDITY stays, a new or re-flagged row has a MODSEQ above the
 * HIGHESTMODSEQ of the last check, and every UID gone since then is in
 * crdt_model_vanished. At the end it delivers everything, settles until
 * no replica issues a claim, and checks (c), identical states, that no
 * message vanished except through an expunge, move or delete that had
 * observed it, and that every live message kept the meta it was made with.
 */
#ifndef MCRDT_TESTS_SIM_H
#define MCRDT_TESTS_SIM_H

#include <stdint.h>
#include <stdio.h>

enum sim_kind {
	SIM_APPEND, SIM_FLAG_ADD, SIM_FLAG_REMOVE, SIM_FLAG_SET, SIM_KW_ADD, SIM_KW_REMOVE,
	SIM_EXPUNGE, SIM_COPY, SIM_MOVE, SIM_CREATE, SIM_DELETE, SIM_RENAME, SIM_SUBSCRIBE,
	SIM_UNSUBSCRIBE, SIM_DELIVER, SIM_PARTITION, SIM_KINDS
};

struct sim_step {
	uint8_t kind;
	uint8_t replica;
	uint32_t a, b, c;
};

struct sim_schedule {
	uint64_t seed;
	unsigned nreplicas;
	struct sim_step *steps;
	size_t nsteps;
};

struct sim_stats {
	size_t delivered_msgs;  /* messages added by local ops */
	size_t uid_moves;       /* re-claims: a message shown again under a new UID */
	size_t final_rounds;    /* exchange rounds to agreement after the last step */
};

/* A schedule of 2–5 replicas and some dozens of steps from seed. */
int sim_generate(struct sim_schedule *s, uint64_t seed);
void sim_schedule_free(struct sim_schedule *s);
/*
 * Runs s. Returns NULL when every check held, else a malloc'd message
 * saying which. trace, when not NULL, gets one line per step. stats may be
 * NULL.
 */
char *sim_run(const struct sim_schedule *s, FILE *trace, struct sim_stats *stats);
/* Shrinks a failing schedule to a smaller one that still fails. */
void sim_minimize(struct sim_schedule *s);

#endif
