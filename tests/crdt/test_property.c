/*
 * tests/crdt/test_property.c — runs many random schedules through the
 * simulator (sim.h). A failing schedule is shrunk, and its seed, trace and
 * the broken invariant are printed so that
 *     test_property --seed SEED --schedules 1
 * reproduces it.
 *
 * Options (or environment): --seed N (MCRDT_SIM_SEED, default 1),
 * --schedules N (MCRDT_SIM_SCHEDULES, default 2000).
 */
#include "tests/check_run.h"
#include <check.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tests/crdt/sim.h"

static uint64_t base_seed = 1;
static unsigned long schedules = 2000;

START_TEST(random_schedules_converge)
{
	size_t msgs = 0, moves = 0, worst_rounds = 0;
	for (unsigned long i = 0; i < schedules; i++) {
		struct sim_schedule s;
		ck_assert_int_eq(sim_generate(&s, base_seed + i), 0);
		struct sim_stats st;
		char *fail = sim_run(&s, NULL, &st);
		if (fail) {
			size_t before = s.nsteps;
			sim_minimize(&s);
			char *again = sim_run(&s, NULL, NULL);
			fprintf(stderr,
				"\nschedule with seed %" PRIu64 " failed (%u replicas; shrunk from %zu to %zu steps):\n"
				"  %s\nreproduce: test_property --seed %" PRIu64 " --schedules 1\nminimal trace:\n",
				s.seed, s.nreplicas, before, s.nsteps, again ? again : fail, s.seed);
			free(sim_run(&s, stderr, NULL));
			free(again);
			sim_schedule_free(&s);
			ck_abort_msg("seed %" PRIu64 ": %s", base_seed + i, fail);
		}
		msgs += st.delivered_msgs;
		moves += st.uid_moves;
		if (st.final_rounds > worst_rounds)
			worst_rounds = st.final_rounds;
		sim_schedule_free(&s);
	}
	printf("%lu schedules from seed %" PRIu64 ": %zu messages added, %.1f UID moves per 1,000, "
	       "agreement within %zu rounds\n",
	       schedules, base_seed, msgs, msgs ? 1000.0 * (double)moves / (double)msgs : 0.0, worst_rounds);
}
END_TEST

static void parse(int argc, char **argv)
{
	const char *e;
	if ((e = getenv("MCRDT_SIM_SEED")))
		base_seed = strtoull(e, NULL, 0);
	if ((e = getenv("MCRDT_SIM_SCHEDULES")))
		schedules = strtoul(e, NULL, 0);
	for (int i = 1; i + 1 < argc; i += 2) {
		if (strcmp(argv[i], "--seed") == 0)
			base_seed = strtoull(argv[i + 1], NULL, 0);
		else if (strcmp(argv[i], "--schedules") == 0)
			schedules = strtoul(argv[i + 1], NULL, 0);
		else {
			fprintf(stderr, "usage: test_property [--seed N] [--schedules N]\n");
			exit(2);
		}
	}
}

int main(int argc, char **argv)
{
	parse(argc, argv);
	Suite *s = suite_create("property");
	TCase *tc = tcase_create("simulator");
	tcase_set_timeout(tc, 0);
	tcase_add_test(tc, random_schedules_converge);
	suite_add_tcase(s, tc);
	return run_suite(s, CK_NOFORK);
}
