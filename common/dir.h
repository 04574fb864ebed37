/*
 * common/dir.h — reading a directory we hold open, without giving up our
 * descriptor: fdopendir takes ownership of its fd, so it gets a duplicate.
 */
#ifndef MCRDT_COMMON_DIR_H
#define MCRDT_COMMON_DIR_H

#include <dirent.h>
#include <fcntl.h>
#include <unistd.h>

#include "common/error.h"

/* A stream over dirfd from its start; NULL with MCRDT_EIO recorded, the
 * message naming what (e.g. "the log directory"). Close with closedir. */
static inline DIR *dir_stream(int dirfd, const char *what)
{
	int fd = fcntl(dirfd, F_DUPFD_CLOEXEC, 0);
	DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
	if (!d) {
		err_sys(MCRDT_EIO, "cannot read %s", what);
		if (fd >= 0)
			close(fd);
		return NULL;
	}
	rewinddir(d);
	return d;
}

#endif
