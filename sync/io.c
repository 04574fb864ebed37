/*
 * sync/io.c — replacing a small metadata file whole.
 */
#define _GNU_SOURCE
#include "sync/io.h"

#include <fcntl.h>
#include <limits.h>
#include <stdio.h>

#include "common/error.h"

int replace_file(const char *dir, const char *name, const void *data, size_t len, bool durable)
{
	char tmp[PATH_MAX], final[PATH_MAX];
	if ((size_t)snprintf(final, sizeof final, "%s/%s", dir, name) >= sizeof final ||
	    (size_t)snprintf(tmp, sizeof tmp, "%s.tmp", final) >= sizeof tmp)
		return err_set(MCRDT_EINVAL, "path too long: %s/%s", dir, name);
	int rc = 0, fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (fd < 0)
		rc = err_sys(MCRDT_EIO, "cannot create %s", tmp);
	else if (write_all(fd, data, len) != 0 || (durable && fsync(fd) != 0))
		rc = err_sys(errno == ENOSPC ? MCRDT_ENOSPC : MCRDT_EIO, "cannot write %s", tmp);
	if (fd >= 0)
		close(fd);
	if (rc == 0 && rename(tmp, final) != 0)
		rc = err_sys(MCRDT_EIO, "cannot put %s in place", final);
	if (rc) {
		unlink(tmp);
		return rc;
	}
	return durable ? sync_dir(dir) : 0;
}

int sync_dir(const char *dir)
{
	int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	int rc = fd < 0 || fsync(fd) != 0 ? err_sys(MCRDT_EIO, "cannot sync %s", dir) : 0;
	if (fd >= 0)
		close(fd);
	return rc;
}
