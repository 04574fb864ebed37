/*
 * common/error.h — how library code records an error for mcrdt_error_last().
 *
 * Internal: never installed. Every module may include it; it includes
 * nothing of ours but the public errors.h.
 */
#ifndef MCRDT_COMMON_ERROR_H
#define MCRDT_COMMON_ERROR_H

#include "mcrdt/errors.h"

/* Records a formatted message for this thread and returns code, so that a
 * failing path reads: return err_set(MCRDT_EINVAL, "bad name '%s'", n); */
int err_set(int code, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Like err_set, with ": strerror(errno)" appended (errno read on entry). */
int err_sys(int code, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#endif
