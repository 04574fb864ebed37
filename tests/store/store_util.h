/*
 * tests/store/store_util.h — the store helpers test_backend and test_sync
 * share, through the public API only. Each failure stops the test with the
 * call, its code and mcrdt_error_last(), followed by TEST_NOTE (a string
 * the includer may define first, such as a random test's seed).
 */
#ifndef MCRDT_TESTS_STORE_UTIL_H
#define MCRDT_TESTS_STORE_UTIL_H

#include <check.h>
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <mcrdt/mcrdt.h>

#ifndef TEST_NOTE
#define TEST_NOTE ""
#endif

#define OK(call)                                                                                   \
	do {                                                                                       \
		mcrdt_error_clear();                                                               \
		int rc_ = (call);                                                                  \
		ck_assert_msg(rc_ == 0, "%s: %d (%s)%s", #call, rc_, mcrdt_error_last(), TEST_NOTE); \
	} while (0)

/* Appends body with the given flags and internal date; returns its UID. */
static inline uint32_t add_msg(mcrdt_store *s, const char *mbox, const char *body, const char *const *flags,
			       size_t nflags, int64_t date)
{
	struct mcrdt_append_opts o = MCRDT_APPEND_OPTS_INIT;
	o.flags = flags;
	o.nflags = nflags;
	o.internaldate = date;
	uint32_t uv = 0, uid = 0;
	OK(mcrdt_append(s, mbox, body, strlen(body), &o, &uv, &uid));
	ck_assert_uint_gt(uv, 0);
	ck_assert_uint_gt(uid, 0);
	return uid;
}

static inline mcrdt_mailbox *sel(mcrdt_store *s, const char *name)
{
	mcrdt_mailbox *mb = NULL;
	mcrdt_error_clear();
	int rc = mcrdt_mailbox_select(s, name, &mb);
	ck_assert_msg(rc == 0, "select %s: %d (%s)%s", name, rc, mcrdt_error_last(), TEST_NOTE);
	return mb;
}

static inline struct mcrdt_message *fetch(mcrdt_mailbox *mb, const char *set, enum mcrdt_set_kind kind,
					  size_t *n)
{
	struct mcrdt_message *m = NULL;
	*n = 0;
	mcrdt_error_clear();
	int rc = mcrdt_fetch(mb, set, kind, &m, n);
	ck_assert_msg(rc == 0, "fetch %s: %d (%s)%s", set, rc, mcrdt_error_last(), TEST_NOTE);
	return m;
}

/* All of fd, NUL-terminated; *len its length. */
static inline char *read_fd_all(int fd, size_t *len)
{
	size_t cap = 256, n = 0;
	char *b = malloc(cap);
	for (;;) {
		if (n + 1 >= cap)
			b = realloc(b, cap *= 2);
		ck_assert_ptr_nonnull(b);
		ssize_t r = read(fd, b + n, cap - n - 1);
		ck_assert_msg(r >= 0, "read: %s", strerror(errno));
		if (r == 0)
			break;
		n += (size_t)r;
	}
	b[n] = '\0';
	*len = n;
	return b;
}

/* The body of uid, NUL-terminated; *len its length. */
static inline char *body_of(mcrdt_mailbox *mb, uint32_t uid, size_t *len)
{
	int fd = -1;
	OK(mcrdt_message_open(mb, uid, &fd));
	ck_assert_int_ge(fd, 0);
	char *b = read_fd_all(fd, len);
	close(fd);
	return b;
}

/* The attributes of name in the list, or -1 when it is not listed. */
static inline long attrs_of(mcrdt_store *s, const char *name)
{
	struct mcrdt_mailbox_info *v = NULL;
	size_t n = 0;
	OK(mcrdt_mailbox_list(s, &v, &n));
	long r = -1;
	for (size_t i = 0; i < n; i++)
		if (strcmp(v[i].name, name) == 0)
			r = (long)v[i].attrs;
	mcrdt_mailbox_list_free(v, n);
	return r;
}

/* Whether listed mailbox name has attribute bit (it must be listed: -1
 * would have every bit). */
static inline bool has_attr(mcrdt_store *s, const char *name, long bit)
{
	long a = attrs_of(s, name);
	ck_assert_msg(a >= 0, "%s is not listed%s", name, TEST_NOTE);
	return (a & bit) != 0;
}

/* A mailbox that exists (listed without \NonExistent). */
static inline bool exists(mcrdt_store *s, const char *name)
{
	long a = attrs_of(s, name);
	return a >= 0 && !(a & MCRDT_MBOX_NONEXISTENT);
}

/* A mailbox listed as subscribed (existing or not). */
static inline bool subscribed(mcrdt_store *s, const char *name)
{
	long a = attrs_of(s, name);
	return a >= 0 && (a & MCRDT_MBOX_SUBSCRIBED);
}

#endif
