/*
 * tests/tmpdir.h — the work directories of a suite that builds stores on
 * disk: one directory per run under /tmp (tmp_base_make), a fresh one per
 * test inside it (tmp_dir), each removed with rm_tree, and the whole run
 * at the end (tmp_base_remove), so a test that fails halfway leaves
 * nothing behind. MCRDT_TEST_KEEP=1 keeps them for a look.
 *
 * Include after check.h and _GNU_SOURCE (nftw, mkdtemp).
 */
#ifndef MCRDT_TESTS_TMPDIR_H
#define MCRDT_TESTS_TMPDIR_H

#include <errno.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static char base_dir[96];

/* Makes /tmp/mcrdt-NAME-XXXXXX; 0, or -1 with a message on stderr. */
static inline int tmp_base_make(const char *name)
{
	snprintf(base_dir, sizeof base_dir, "/tmp/mcrdt-%s-XXXXXX", name);
	if (mkdtemp(base_dir))
		return 0;
	perror("mkdtemp");
	return -1;
}

/* A new directory under the run's (caller frees the string). */
static inline char *tmp_dir(void)
{
	char tmpl[sizeof base_dir + 16];
	snprintf(tmpl, sizeof tmpl, "%s/t-XXXXXX", base_dir);
	char *d = mkdtemp(tmpl);
	ck_assert_msg(d != NULL, "mkdtemp %s: %s", tmpl, strerror(errno));
	return strdup(d);
}

/* dir/sub as a new string (caller frees). */
static inline char *tmp_path(const char *dir, const char *sub)
{
	size_t n = strlen(dir) + strlen(sub) + 2;
	char *p = malloc(n);
	ck_assert_ptr_nonnull(p);
	snprintf(p, n, "%s/%s", dir, sub);
	return p;
}

static inline int tmp_rm_one(const char *path, const struct stat *sb, int type, struct FTW *ftw)
{
	(void)sb;
	(void)type;
	(void)ftw;
	remove(path);
	return 0;
}

/* Removes dir (unless MCRDT_TEST_KEEP is set) and frees the string. */
static inline void rm_tree(char *dir)
{
	if (dir && !getenv("MCRDT_TEST_KEEP"))
		nftw(dir, tmp_rm_one, 16, FTW_DEPTH | FTW_PHYS);
	free(dir);
}

static inline void tmp_base_remove(void)
{
	if (getenv("MCRDT_TEST_KEEP"))
		fprintf(stderr, "kept %s\n", base_dir);
	rm_tree(strdup(base_dir));
}

#endif
