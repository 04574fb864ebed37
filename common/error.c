/*
 * common/error.c — the per-thread last-error message and the code table.
 */
#include "common/error.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#define ERRBUF_SIZE 1024

static _Thread_local char errbuf[ERRBUF_SIZE];

static void vset(const char *fmt, va_list ap, int sys_errno)
{
	/* Formatted aside first: an argument may be the last message itself
	 * (err_set(rc, "...: %s", mcrdt_error_last())). */
	char buf[ERRBUF_SIZE];
	int n = vsnprintf(buf, sizeof buf, fmt, ap);
	if (n < 0)
		buf[0] = '\0';
	if (sys_errno && n >= 0 && (size_t)n < sizeof buf) {
		snprintf(buf + n, sizeof buf - (size_t)n, ": %s", strerror(sys_errno));
	}
	memcpy(errbuf, buf, sizeof errbuf);
	/* The message is one line whatever the caller formatted into it. */
	for (char *p = errbuf; *p; p++)
		if (*p == '\n' || *p == '\r')
			*p = ' ';
}

int err_set(int code, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vset(fmt, ap, 0);
	va_end(ap);
	return code;
}

int err_sys(int code, const char *fmt, ...)
{
	int saved = errno;
	va_list ap;
	va_start(ap, fmt);
	vset(fmt, ap, saved);
	va_end(ap);
	errno = saved;
	return code;
}

const char *mcrdt_error_last(void)
{
	return errbuf;
}

void mcrdt_error_clear(void)
{
	errbuf[0] = '\0';
}

const char *mcrdt_strerror(int code)
{
	switch (code) {
	case MCRDT_OK: return "success";
	case MCRDT_ERROR: return "error";
	case MCRDT_ENOMEM: return "out of memory";
	case MCRDT_EINVAL: return "invalid argument";
	case MCRDT_ENOTFOUND: return "not found";
	case MCRDT_EEXISTS: return "already exists";
	case MCRDT_ECORRUPT: return "corrupt data";
	case MCRDT_EVERSION: return "unsupported format version";
	case MCRDT_EIO: return "input/output error";
	case MCRDT_ELOCKED: return "locked by another process";
	case MCRDT_ETOOBIG: return "size limit exceeded";
	case MCRDT_EPENDING: return "waiting for causal dependencies";
	case MCRDT_EDUPLICATE: return "already applied";
	case MCRDT_ENOSPC: return "no space left on device";
	case MCRDT_ERANGE: return "value out of range";
	}
	return "unknown error";
}
