/*
 * tests/test_errors.c — the error model and version API (DESIGN.md "Public
 * API shape").
 */
#include "tests/check_run.h"
#include <check.h>
#include <pthread.h>
#include <string.h>

#include "common/error.h"
#include "mcrdt/mcrdt.h"

START_TEST(codes_have_distinct_descriptions)
{
	const int codes[] = { MCRDT_ERROR, MCRDT_ENOMEM, MCRDT_EINVAL, MCRDT_ENOTFOUND,
			      MCRDT_EEXISTS, MCRDT_ECORRUPT, MCRDT_EVERSION, MCRDT_EIO,
			      MCRDT_ELOCKED, MCRDT_ETOOBIG, MCRDT_EPENDING, MCRDT_EDUPLICATE,
			      MCRDT_ENOSPC, MCRDT_ERANGE };
	size_t n = sizeof codes / sizeof *codes;
	for (size_t i = 0; i < n; i++) {
		ck_assert_int_lt(codes[i], 0);
		ck_assert_str_ne(mcrdt_strerror(codes[i]), "unknown error");
		for (size_t k = 0; k < i; k++)
			ck_assert_str_ne(mcrdt_strerror(codes[i]), mcrdt_strerror(codes[k]));
	}
	ck_assert_str_eq(mcrdt_strerror(12345), "unknown error");
	ck_assert_str_eq(mcrdt_strerror(MCRDT_OK), "success");
}
END_TEST

START_TEST(last_error_is_one_line_and_clearable)
{
	mcrdt_error_clear();
	ck_assert_str_eq(mcrdt_error_last(), "");
	int rc = err_set(MCRDT_EINVAL, "bad name '%s'\nsecond line", "x");
	ck_assert_int_eq(rc, MCRDT_EINVAL);
	ck_assert_str_eq(mcrdt_error_last(), "bad name 'x' second line");
	mcrdt_error_clear();
	ck_assert_str_eq(mcrdt_error_last(), "");
}
END_TEST

static void *other_thread(void *arg)
{
	(void)arg;
	err_set(MCRDT_EIO, "from another thread");
	return NULL;
}

START_TEST(last_error_is_per_thread)
{
	err_set(MCRDT_EINVAL, "mine");
	pthread_t t;
	ck_assert_int_eq(pthread_create(&t, NULL, other_thread, NULL), 0);
	pthread_join(t, NULL);
	ck_assert_str_eq(mcrdt_error_last(), "mine");
}
END_TEST

START_TEST(version_matches_headers)
{
	int ma, mi, pa;
	const char *v = mcrdt_version(&ma, &mi, &pa);
	ck_assert_str_eq(v, MCRDT_VERSION);
	ck_assert_int_eq(ma, MCRDT_VERSION_MAJOR);
	ck_assert_int_eq(mi, MCRDT_VERSION_MINOR);
	ck_assert_int_eq(pa, MCRDT_VERSION_PATCH);
	ck_assert_int_eq(MCRDT_VERSION_NUMBER, ma * 10000 + mi * 100 + pa);
	ck_assert_ptr_nonnull(mcrdt_version(NULL, NULL, NULL));
}
END_TEST

int main(void)
{
	Suite *s = suite_create("errors");
	TCase *tc = tcase_create("core");
	tcase_add_test(tc, codes_have_distinct_descriptions);
	tcase_add_test(tc, last_error_is_one_line_and_clearable);
	tcase_add_test(tc, last_error_is_per_thread);
	tcase_add_test(tc, version_matches_headers);
	suite_add_tcase(s, tc);
	return run_suite(s, CK_FORK_GETENV);
}
