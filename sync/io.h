/*
 * sync/io.h — the little-endian fields and whole writes that the log,
 * snapshot and the store's metadata files share.
 */
#ifndef MCRDT_SYNC_IO_H
#define MCRDT_SYNC_IO_H

#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <unistd.h>

static inline void put64(uint8_t *p, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static inline uint64_t get64(const uint8_t *p)
{
	uint64_t v = 0;
	for (int i = 0; i < 8; i++)
		v |= (uint64_t)p[i] << (8 * i);
	return v;
}

/* Writes all of p, retrying short writes and EINTR; -1 with errno set. */
static inline int write_all(int fd, const uint8_t *p, size_t len)
{
	while (len) {
		ssize_t n = write(fd, p, len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			if (n == 0)
				errno = ENOSPC;
			return -1;
		}
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

/* Reads exactly len bytes at offset off, retrying short reads and EINTR;
 * -1 with errno set (ENODATA for a file that ends early). */
static inline int pread_all(int fd, uint8_t *p, size_t len, uint64_t off)
{
	while (len) {
		ssize_t n = pread(fd, p, len, (off_t)off);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			if (n == 0)
				errno = ENODATA;
			return -1;
		}
		p += n;
		off += (uint64_t)n;
		len -= (size_t)n;
	}
	return 0;
}

/* Reads exactly len bytes, retrying short reads and EINTR; -1 with errno
 * set (EIO for a file that ends early). */
static inline int read_all(int fd, uint8_t *p, size_t len)
{
	while (len) {
		ssize_t n = read(fd, p, len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			if (n == 0)
				errno = EIO;
			return -1;
		}
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

/* fsyncs directory dir, so the names made or removed in it are durable.
 * MCRDT_EIO naming it. */
int sync_dir(const char *dir);

/*
 * Replaces DIR/NAME with data: written to NAME.tmp, renamed over, so a
 * reader sees the old file or the new one whole. durable: the data and
 * the rename are synced before it returns. MCRDT_EIO or MCRDT_ENOSPC (the
 * message names the file); the old file stays on error.
 */
int replace_file(const char *dir, const char *name, const void *data, size_t len, bool durable);

/* replace_file of the bytes in b followed by their XXH3-64 (8 bytes, little
 * endian), appended to b; b->err (a failed growth) is returned as is. */
struct vbuf;
int replace_file_summed(const char *dir, const char *name, struct vbuf *b, bool durable);
/*
 * Writes b and its checksum over DIR/NAME in place (made if missing), not
 * durably: for a cache, whose reader takes a torn file (a crash, or a
 * read while it is written) for a damaged one. No rename: on a file
 * system mounted with discard, replacing a file whose blocks reached the
 * disk costs a millisecond or more for the old blocks. Errors as
 * replace_file.
 */
int rewrite_file_summed(const char *dir, const char *name, struct vbuf *b);
/*
 * Reads DIR/NAME as replace_file_summed wrote it: 0 with *data (malloc'd,
 * caller frees) and *len, the trailer left out. MCRDT_ENOTFOUND when there
 * is no such file; MCRDT_ECORRUPT naming the file when it is shorter than
 * its trailer, longer than max bytes or fails its checksum; MCRDT_EIO,
 * MCRDT_ENOMEM.
 */
int read_file_summed(const char *dir, const char *name, size_t max, uint8_t **data, size_t *len);

#endif
