/*
 * tests/check_run.h — runs a Check suite and turns its result into an exit
 * status for ctest.
 */
#ifndef MCRDT_TESTS_CHECK_RUN_H
#define MCRDT_TESTS_CHECK_RUN_H

#include <check.h>

/* fork: CK_FORK_GETENV (a child per test unless CK_FORK=no) or CK_NOFORK. */
static inline int run_suite(Suite *s, enum fork_status fork)
{
	SRunner *sr = srunner_create(s);
	srunner_set_fork_status(sr, fork);
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? 1 : 0;
}

#endif
