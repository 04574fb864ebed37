/*
 * mcrdt/errors.h — error codes and the per-thread error message.
 *
 * Every public function that can fail returns 0 on success or one of the
 * negative codes below. When it fails it also records a one-line message
 * for the calling thread, read with mcrdt_error_last().
 */
#ifndef MCRDT_ERRORS_H
#define MCRDT_ERRORS_H

#include "mcrdt/common.h"

MCRDT_BEGIN_DECL

/** Error codes. Values are stable across releases; new codes are appended. */
typedef enum {
	MCRDT_OK = 0,
	MCRDT_ERROR = -1,      /**< Generic error; the message says more. */
	MCRDT_ENOMEM = -2,     /**< Out of memory. */
	MCRDT_EINVAL = -3,     /**< Invalid argument from the caller. */
	MCRDT_ENOTFOUND = -4,  /**< A mailbox, message or file does not exist. */
	MCRDT_EEXISTS = -5,    /**< The object already exists. */
	MCRDT_ECORRUPT = -6,   /**< Stored or received data failed validation. */
	MCRDT_EVERSION = -7,   /**< Data written by a newer, unknown format version. */
	MCRDT_EIO = -8,        /**< An operating-system call failed (errno in message). */
	MCRDT_ELOCKED = -9,    /**< The store is locked by another process. */
	MCRDT_ETOOBIG = -10,   /**< A size limit was exceeded. */
	MCRDT_EPENDING = -11,  /**< An op waits for causal dependencies (buffered). */
	MCRDT_EDUPLICATE = -12,/**< An op was already applied; nothing changed. */
	MCRDT_ENOSPC = -13,    /**< The file system is full. */
	MCRDT_ERANGE = -14,    /**< A number is out of its allowed range. */
} mcrdt_error_code;

/**
 * The last error message recorded by a failing mcrdt call on this thread.
 *
 * Never NULL: returns "" when no error has been recorded. The string is
 * owned by the library and stays valid until the next failing call on the
 * same thread. Thread-safe (the message is thread-local).
 */
MCRDT_EXTERN(const char *) mcrdt_error_last(void);

/**
 * Clears this thread's last error message. Thread-safe.
 */
MCRDT_EXTERN(void) mcrdt_error_clear(void);

/**
 * A static description of an error code, e.g. "out of memory".
 *
 * Never NULL; an unknown code gives "unknown error". The string is static.
 * Thread-safe.
 */
MCRDT_EXTERN(const char *) mcrdt_strerror(int code);

MCRDT_END_DECL

#endif
