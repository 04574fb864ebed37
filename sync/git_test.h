/*
 * sync/git_test.h — knobs for tests of sync/git.c only.
 */
#ifndef MCRDT_SYNC_GIT_TEST_H
#define MCRDT_SYNC_GIT_TEST_H

#include <stdbool.h>

#include "sync/git.h"

/* With on, a fetch from a repository on this machine goes through
 * libgit2's transport like any other url instead of copying packs. */
void sync_git_test_transport_only(sync_git *g, bool on);

#endif
