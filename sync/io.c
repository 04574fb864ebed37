/*
 * sync/io.c — replacing (or, for a cache, rewriting in place) a small metadata file whole.
 */
#define _GNU_SOURCE
#include "sync/io.h"

#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>

#define XXH_INLINE_ALL
#include <xxhash.h>

#include "common/error.h"
#include "common/varint.h"

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

/* Appends the XXH3-64 of b's bytes; b->err on a failed growth. */
static int sum_append(struct vbuf *b)
{
	if (vbuf_reserve(b, 8) == 0) {
		put64(b->p + b->len, XXH3_64bits(b->p, b->len));
		b->len += 8;
	}
	return b->err;
}

int replace_file_summed(const char *dir, const char *name, struct vbuf *b, bool durable)
{
	int rc = sum_append(b);
	return rc ? rc : replace_file(dir, name, b->p, b->len, durable);
}

int rewrite_file_summed(const char *dir, const char *name, struct vbuf *b)
{
	char path[PATH_MAX];
	int rc = sum_append(b);
	if (rc)
		return rc;
	if ((size_t)snprintf(path, sizeof path, "%s/%s", dir, name) >= sizeof path)
		return err_set(MCRDT_EINVAL, "path too long: %s/%s", dir, name);
	int fd = open(path, O_WRONLY | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (fd < 0)
		return err_sys(MCRDT_EIO, "cannot open %s", path);
	if (write_all(fd, b->p, b->len) != 0 || ftruncate(fd, (off_t)b->len) != 0)
		rc = err_sys(errno == ENOSPC ? MCRDT_ENOSPC : MCRDT_EIO, "cannot write %s", path);
	close(fd);
	return rc;
}

int read_file_summed(const char *dir, const char *name, size_t max, uint8_t **data, size_t *len)
{
	char path[PATH_MAX];
	if ((size_t)snprintf(path, sizeof path, "%s/%s", dir, name) >= sizeof path)
		return err_set(MCRDT_EINVAL, "path too long: %s/%s", dir, name);
	int fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return errno == ENOENT ? MCRDT_ENOTFOUND : err_sys(MCRDT_EIO, "cannot open %s", path);
	struct stat st;
	uint8_t *buf = NULL;
	int rc = fstat(fd, &st) != 0 ? err_sys(MCRDT_EIO, "cannot stat %s", path) : 0;
	if (rc == 0 && (st.st_size < 8 || (uint64_t)st.st_size > max))
		rc = err_set(MCRDT_ECORRUPT, "%s: %lld bytes is not a file of this kind", path, (long long)st.st_size);
	if (rc == 0 && !(buf = malloc((size_t)st.st_size)))
		rc = err_set(MCRDT_ENOMEM, "out of memory reading %s", path);
	if (rc == 0 && read_all(fd, buf, (size_t)st.st_size) != 0)
		rc = err_sys(MCRDT_EIO, "cannot read %s", path);
	close(fd);
	size_t n = rc ? 0 : (size_t)st.st_size - 8;
	if (rc == 0 && get64(buf + n) != XXH3_64bits(buf, n))
		rc = err_set(MCRDT_ECORRUPT, "%s fails its checksum", path);
	if (rc) {
		free(buf);
		return rc;
	}
	*data = buf;
	*len = n;
	return 0;
}
