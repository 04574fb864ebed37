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

/* fn(arg) runs after each pack a copy between repositories on this
 * machine looked at (tests: another process consolidating the source
 * meanwhile). Process-wide; NULL for none. */
void sync_git_test_after_pack(void (*fn)(void *), void *arg);

#endif
