/*
 * sync/pack.c — git packs written, checked and merged without libgit2's
 * indexer (see sync/pack.h).
 *
 * Writing: every object of a publish (or of a merge) goes, zlib-deflated
 * at Z_BEST_SPEED and without deltas, into one .pack (an object deflate
 * does not shrink by a third goes in stored blocks, as it is), and the
 * .idx is written alongside. libgit2's indexer (git_odb_write_pack) would
 * inflate and hash every object again, which for a publish of message
 * bodies took as long as writing them; the ids, offsets and CRCs are
 * known here.
 *
 * Consolidating: the packs chosen are merged without unpacking them. Each
 * entry is copied as it is stored, read through a buffer as large as the
 * largest entry (a mapping of a hub's pack would fault if another process
 * cut it short), and the source pack's checksum, summed over the bytes
 * read, must hold before the merged pack is kept; the index (its own
 * checksum checked) gives the offsets and the CRCs, so a merge costs a
 * read and a write of the bytes merged, never an inflate.
 * (Deltas, which only packs fetched through libgit2's transports hold,
 * are read whole through the odb and stored whole; libgit2 maps the pack
 * to read them.) Which packs: sorted by
 * size, the smallest ones up to the last one that is less than twice the
 * sum of all smaller ones (git's "geometric" repack, factor 2). What stays
 * is a sequence in which each pack is at least twice all the smaller ones
 * together, so a byte is rewritten O(log n) times over its life and the
 * big pack a full sync brought in is rarely touched.
 *
 * Only the packs merged are removed, each .idx before its .pack, and only
 * after the merged pack is in place: another process adding packs to the
 * same repository (pushers to a hub) loses nothing, and one reading it
 * that finds a pack gone lists the packs again (sync/git.c's copy). Two
 * processes merging at once may leave duplicates, which the next merge
 * drops. Objects no ref reaches are kept: there is no reachability walk.
 *
 * Bringing in a peer's pack (a local fetch or push copies packs as
 * files): the copy is checked whole before it is renamed into place, the
 * pack's checksum, the index's offsets and CRC-32s, and every object
 * inflated and hashed against the id the index gives it. Checking is what
 * git's index-pack does; without it a forged object whose pack and index
 * checksums hold would hide the real one from every later fetch. It costs
 * an inflate of the pack, on two threads; the blobs the repository lacked
 * are written out as they inflate, so that the bodies among them need no
 * second inflate to reach the Maildir.
 */
#define _GNU_SOURCE
#include "sync/pack.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/error.h"
#include "common/grow.h"
#include "sync/io.h"
#include "sync/sha1.h"

/* ---- helpers ---- */

static const char *git_msg(void)
{
	const git_error *e = git_error_last();
	return e && e->message ? e->message : "unknown libgit2 error";
}

int sg_fail(int code, const char *fmt, ...)
{
	char buf[768];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(buf, sizeof buf, fmt, ap);
	va_end(ap);
	return err_set(code, "%s: %s", buf, git_msg());
}

void sg_path(char *buf, size_t size, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(buf, size, fmt, ap);
	va_end(ap);
}

/* Starts the SHA-1 of an object's id with its "TYPE LEN\0" header. */
static void object_id_start(struct sha1_ctx *sha, git_object_t type, uint64_t len)
{
	char hdr[40];
	int hl = snprintf(hdr, sizeof hdr, "%s %" PRIu64, git_object_type2string(type), len);
	sha1_init(sha);
	sha1_update(sha, hdr, (size_t)hl + 1);
}

void sg_object_id(git_object_t type, const void *data, size_t len, uint8_t out[20])
{
	struct sha1_ctx sha;
	object_id_start(&sha, type, len);
	sha1_update(&sha, data, len);
	sha1_final(&sha, out);
}

/* Whether the last 20 bytes of d (len bytes, 20 or more) are the SHA-1 of
 * the rest: a pack's or an index's trailer. */
static bool sum_ok(const uint8_t *d, size_t len)
{
	uint8_t sum[20];
	struct sha1_ctx sha;
	sha1_init(&sha);
	sha1_update(&sha, d, len - 20);
	sha1_final(&sha, sum);
	return memcmp(sum, d + len - 20, 20) == 0;
}

/* Makes the temporary file fd (named tmp) read-only and durable. */
static int sg_seal(int fd, const char *tmp)
{
	return fchmod(fd, 0444) != 0 || fsync(fd) != 0 ? err_sys(MCRDT_EIO, "syncing %s", tmp) : 0;
}

int sg_read_fd(int fd, uint8_t **buf, size_t *cap, size_t *len)
{
	struct stat sb;
	size_t want = fstat(fd, &sb) == 0 && sb.st_size > 0 ? (size_t)sb.st_size + 1 : 65536;
	*len = 0;
	for (;;) {
		if (*len + 1 > *cap || want > *cap) {
			size_t nc = *cap ? *cap : 65536;
			while (nc < want || nc < *len + 65536)
				nc *= 2;
			uint8_t *np = realloc(*buf, nc);
			if (!np)
				return err_set(MCRDT_ENOMEM, "out of memory reading a body (%zu bytes)", nc);
			*buf = np;
			*cap = nc;
		}
		ssize_t r = read(fd, *buf + *len, *cap - *len);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			return -1;
		if (r == 0)
			return 0;
		*len += (size_t)r;
		want = *len + 1;
	}
}

int sg_open_file(const char *path, struct stat *st)
{
	/* (O_NONBLOCK: opening a FIFO must not wait for a writer) */
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
	if (fd < 0) {
		int e = errno;
		err_sys(MCRDT_EIO, "opening %s", path);
		errno = e;
	} else if (fstat(fd, st) != 0 || !S_ISREG(st->st_mode)) {
		err_set(MCRDT_EIO, "%s is not a regular file", path);
		close(fd);
		fd = -1;
		errno = EINVAL;
	}
	return fd;
}

/* A whole file, of max bytes at most (else MCRDT_ETOOBIG, unread), into
 * a malloc'd *out. */
static int sg_slurp(const char *path, size_t max, uint8_t **out, size_t *len)
{
	struct stat sb;
	int fd = sg_open_file(path, &sb);
	if (fd < 0)
		return MCRDT_EIO;
	if ((uint64_t)sb.st_size > max) {
		close(fd);
		return err_set(MCRDT_ETOOBIG, "%s (%lld bytes) is larger than %zu bytes", path, (long long)sb.st_size,
			       max);
	}
	size_t cap = 0;
	*out = NULL;
	int r = sg_read_fd(fd, out, &cap, len);
	close(fd);
	if (r == -1) {
		free(*out);
		*out = NULL;
		return err_sys(MCRDT_EIO, "reading %s", path);
	}
	return r;
}

/* ---- deflating ---- */

/* An object bigger than this is stored as it is when its first this many
 * bytes do not deflate well (see deflater_run). */
#define DEFLATE_TRIAL (64u << 10)

/* Bytes of a zlib stream of stored blocks holding len bytes. */
static size_t stored_size(size_t len)
{
	return 2 + 5 * (len ? (len + 65534) / 65535 : 1) + len + 4;
}

/* Writes data (len bytes) to out (stored_size(len) bytes) as a zlib stream
 * of stored blocks: copied as it is, for any inflater to read back. */
static void stored_write(uint8_t *out, const uint8_t *data, size_t len)
{
	*out++ = 0x78; /* deflate, 32 KiB window; 0x7801 is a multiple of 31 */
	*out++ = 0x01;
	size_t left = len;
	do {
		size_t n = left < 65535 ? left : 65535;
		left -= n;
		*out++ = left ? 0 : 1; /* BFINAL on the last; BTYPE 00: stored */
		out[0] = (uint8_t)n;
		out[1] = (uint8_t)(n >> 8);
		out[2] = (uint8_t)~n;
		out[3] = (uint8_t)(~n >> 8);
		memcpy(out + 4, data, n);
		out += 4 + n;
		data += n;
	} while (left);
	uint32_t a = (uint32_t)adler32_z(1, data - len, len);
	out[0] = (uint8_t)(a >> 24);
	out[1] = (uint8_t)(a >> 16);
	out[2] = (uint8_t)(a >> 8);
	out[3] = (uint8_t)a;
}

/* Whether at least seven eighths of len bytes of data are lines of base64
 * (at least 60 of A-Z a-z 0-9 + / =, then LF or CRLF): a MIME attachment's
 * encoding. Base64 of anything already compressed (images, PDF, zip-based
 * documents) deflates to three quarters, so such data deflates to over
 * two thirds unless its other eighth deflates to under a tenth. */
static bool mostly_base64(const uint8_t *data, size_t len)
{
	size_t other = 0, allowed = len / 8;
	const uint8_t *p = data, *end = data + len;
	while (p < end && other <= allowed) {
		const uint8_t *nl = memchr(p, '\n', (size_t)(end - p));
		const uint8_t *stop = nl ? nl : end, *q = p;
		size_t line = (size_t)(stop - p) + (nl != NULL);
		if (stop > p && stop[-1] == '\r')
			stop--;
		for (; q < stop; q++) {
			uint8_t c = *q | 0x20; /* A-Z onto a-z; nothing else lands there */
			if (!((c >= 'a' && c <= 'z') || (*q >= '0' && *q <= '9') || *q == '+' || *q == '/' || *q == '='))
				break;
		}
		if (q < stop || stop - p < 60 || !nl)
			other += line;
		p += line;
	}
	return other <= allowed;
}

/* One deflate of len bytes of data into d->buf, from a reset stream:
 * the bytes it made. */
static int deflate_into(struct deflater *d, const void *data, size_t len, size_t *out)
{
	if (deflateReset(&d->z) != Z_OK)
		return err_set(MCRDT_EIO, "zlib: deflateReset failed");
	d->z.next_in = (Bytef *)(uintptr_t)data;
	d->z.avail_in = (uInt)len;
	d->z.next_out = d->buf;
	d->z.avail_out = (uInt)d->cap;
	if (deflate(&d->z, Z_FINISH) != Z_STREAM_END)
		return err_set(MCRDT_EIO, "zlib: deflating an object of %zu bytes failed", len);
	*out = d->z.total_out;
	return 0;
}

int deflater_run(struct deflater *d, const void *data, size_t len)
{
	if (!d->init) {
		memset(&d->z, 0, sizeof d->z);
		if (deflateInit(&d->z, Z_BEST_SPEED) != Z_OK)
			return err_set(MCRDT_ENOMEM, "zlib: cannot start a deflate stream");
		d->init = true;
	}
	if (len > UINT32_MAX / 2)
		return err_set(MCRDT_ETOOBIG, "an object of %zu bytes is too big for the pack writer", len);
	size_t bound = deflateBound(&d->z, (uLong)len);
	if (bound < stored_size(len))
		bound = stored_size(len);
	if (bound > d->cap) {
		uint8_t *nb = realloc(d->buf, bound);
		if (!nb)
			return err_set(MCRDT_ENOMEM, "out of memory deflating an object of %zu bytes", len);
		d->buf = nb;
		d->cap = bound;
	}
	/* Every replica that takes the object inflates all of it; what
	 * deflate shrinks by less than a third (a base64 attachment: to
	 * three quarters) is not worth that, and goes as it is. The first
	 * DEFLATE_TRIAL bytes decide for a bigger object: one that starts
	 * with an attachment is not deflated whole to find out; and when
	 * they are nearly all base64 lines, they are not deflated either
	 * (level 1 runs at 46 MB/s on base64, a tenth of the speed it
	 * has on text, so a trial that fails cost most of a publish). */
	size_t trial = len < DEFLATE_TRIAL ? len : DEFLATE_TRIAL, out = 0;
	bool store = mostly_base64(data, trial);
	int rc = 0;
	if (!store && (rc = deflate_into(d, data, trial, &out)) == 0 && (uint64_t)out * 3 <= (uint64_t)trial * 2 &&
	    trial < len) {
		rc = deflate_into(d, data, len, &out);
		trial = len;
	}
	if (rc)
		return rc;
	if (store || (uint64_t)out * 3 > (uint64_t)trial * 2) {
		stored_write(d->buf, data, len);
		out = stored_size(len);
	}
	d->out = out;
	return 0;
}

void deflater_free(struct deflater *d)
{
	if (d->init)
		deflateEnd(&d->z);
	free(d->buf);
	memset(d, 0, sizeof *d);
}

/* ---- writing a pack ---- */

#define PACK_WBUF (1u << 20)

int sg_write(int fd, const void *data, size_t len, const char *path)
{
	return write_all(fd, data, len) ? err_sys(errno == ENOSPC ? MCRDT_ENOSPC : MCRDT_EIO, "writing %s", path) : 0;
}

bool sg_gone(const char *path)
{
	return access(path, F_OK) != 0 && errno == ENOENT;
}

/* The temporary names made here: a file staged or copied beside its
 * final name gets TMP_SUFFIX and mkstemp's six characters; a pack being
 * written, TMP_PACK and those six. */
#define TMP_SUFFIX ".tmp_"
#define TMP_PACK "tmp_mcrdt_pack_"

bool sg_lock_name(const char *name)
{
	size_t len = strlen(name);
	return len > 5 && strcmp(name + len - 5, ".lock") == 0;
}

bool sg_temp_name(const char *name)
{
	const char *t = strstr(name, TMP_SUFFIX);
	return strncmp(name, TMP_PACK, strlen(TMP_PACK)) == 0 || strncmp(name, "pack_git2_", 10) == 0 ||
	       (t && strlen(t) == strlen(TMP_SUFFIX) + 6) || sg_lock_name(name);
}

int sg_stage(const char *path, const void *data, size_t len, char tmp[PATH_MAX])
{
	sg_path(tmp, PATH_MAX, "%s" TMP_SUFFIX "XXXXXX", path);
	int fd = mkstemp(tmp);
	if (fd < 0)
		return err_sys(MCRDT_EIO, "creating %s", tmp);
	int rc = sg_write(fd, data, len, tmp);
	if (!rc)
		rc = sg_seal(fd, tmp);
	if (close(fd) != 0 && !rc)
		rc = err_sys(MCRDT_EIO, "writing %s", tmp);
	if (rc)
		unlink(tmp);
	return rc;
}

static int pack_flush(struct pack *p)
{
	int rc = sg_write(p->fd, p->wbuf, p->wlen, p->tmp);
	p->wlen = 0;
	return rc;
}

static int pack_emit(struct pack *p, const void *data, size_t len)
{
	int rc;
	if (p->wlen + len > PACK_WBUF && (rc = pack_flush(p)))
		return rc;
	if (len > PACK_WBUF) {
		if ((rc = sg_write(p->fd, data, len, p->tmp)))
			return rc;
	} else {
		memcpy(p->wbuf + p->wlen, data, len);
		p->wlen += len;
	}
	p->off += len;
	return 0;
}

int pack_open(struct pack *p, const char *objdir, git_odb *odb, bool skip_existing)
{
	memset(p, 0, sizeof *p);
	p->odb = odb;
	p->skip_existing = skip_existing;
	hmap_init(&p->seen);
	sg_path(p->dir, sizeof p->dir, "%s/pack", objdir);
	sg_path(p->tmp, sizeof p->tmp, "%s/" TMP_PACK "XXXXXX", p->dir);
	p->fd = mkstemp(p->tmp);
	if (p->fd < 0) {
		int rc = err_sys(MCRDT_EIO, "creating a pack %s", p->tmp);
		p->tmp[0] = 0;
		return rc;
	}
	if (!(p->wbuf = malloc(PACK_WBUF)))
		return err_set(MCRDT_ENOMEM, "out of memory writing a pack");
	static const uint8_t hdr[12] = { 'P', 'A', 'C', 'K', 0, 0, 0, 2 }; /* the count comes last */
	return pack_emit(p, hdr, sizeof hdr);
}

void pack_free(struct pack *p)
{
	if (p->fd >= 0) {
		close(p->fd);
		if (p->tmp[0])
			unlink(p->tmp);
	}
	deflater_free(&p->d);
	free(p->wbuf);
	free(p->e);
	free(p->clash);
	hmap_free(&p->seen);
	memset(p, 0, sizeof *p);
	p->fd = -1;
}

/* An id's bytes [at, at + 8) as a number. */
static uint64_t id_word(const git_oid *id, size_t at)
{
	uint64_t w;
	memcpy(&w, id->id + at, sizeof w);
	return w;
}

/* p->seen maps an id's first 8 bytes to its next 8 (sixteen bytes of
 * SHA-1 agree only where SHA-1 itself is broken). A peer can make two ids
 * share the first 8 (2^32 work a pair): an id whose key another holds is
 * kept whole in p->clash, which only such ids reach. */
bool pack_has(const struct pack *p, const git_oid *id)
{
	uint64_t key = id_word(id, 0);
	const uint64_t *v = hmap_get(&p->seen, key == HMAP_EMPTY ? key - 1 : key);
	if (!v)
		return false;
	if (*v == id_word(id, 8))
		return true;
	for (size_t i = 0; i < p->nclash; i++)
		if (git_oid_equal(&p->clash[i], id))
			return true;
	return false;
}

int pack_seen(struct pack *p, const git_oid *id)
{
	/* A new id costs one probe; one whose key is held, a look at whom. */
	uint64_t key = id_word(id, 0);
	int rc = hmap_put_new(&p->seen, key == HMAP_EMPTY ? key - 1 : key, id_word(id, 8));
	if (rc == MCRDT_EEXISTS) {
		if (pack_has(p, id))
			return 1;
		if (!(rc = GROW(p->clash, p->capclash, p->nclash + 1)))
			p->clash[p->nclash++] = *id;
	}
	if (rc)
		return rc;
	/* (Not refreshed on a miss, which nearly every new body is: libgit2
	 * would list the pack directory again for each. The odb is refreshed
	 * after every import; a pack another process added meanwhile costs a
	 * duplicate, which consolidation drops.) */
	return p->skip_existing && git_odb_exists_ext(p->odb, id, GIT_ODB_LOOKUP_NO_REFRESH);
}

/* Appends one entry: raw (its header and data as stored), crc its CRC-32. */
static int pack_put_raw(struct pack *p, const git_oid *id, const uint8_t *hdr, size_t nh, const uint8_t *z,
			size_t zlen, uint32_t crc)
{
	if (p->count == UINT32_MAX)
		return err_set(MCRDT_ETOOBIG, "a pack holds at most %" PRIu32 " objects", UINT32_MAX);
	int rc = GROW(p->e, p->cap, p->count + 1);
	if (rc)
		return rc;
	struct pack_entry *e = &p->e[p->count];
	e->id = *id;
	e->off = p->off;
	e->crc = crc;
	if ((nh && (rc = pack_emit(p, hdr, nh))) || (rc = pack_emit(p, z, zlen)))
		return rc;
	p->count++;
	return 0;
}

int pack_put(struct pack *p, const git_oid *id, git_object_t type, size_t len, const uint8_t *z, size_t zlen)
{
	uint8_t hdr[16];
	size_t nh = 0;
	size_t sz = len;
	uint8_t c = (uint8_t)((unsigned)type << 4 | (sz & 15));
	sz >>= 4;
	while (sz) {
		hdr[nh++] = c | 0x80;
		c = sz & 0x7f;
		sz >>= 7;
	}
	hdr[nh++] = c;
	uint32_t crc = (uint32_t)crc32(crc32(crc32(0L, Z_NULL, 0), hdr, (uInt)nh), z, (uInt)zlen);
	return pack_put_raw(p, id, hdr, nh, z, zlen, crc);
}

int pack_add(struct pack *p, git_object_t type, const void *data, size_t len, git_oid *id_out)
{
	git_oid id;
	sg_object_id(type, data, len, id.id);
	if (id_out)
		git_oid_cpy(id_out, &id);
	int rc = pack_seen(p, &id);
	if (rc)
		return rc < 0 ? rc : 0;
	if ((rc = deflater_run(&p->d, data, len)))
		return rc;
	return pack_put(p, &id, type, len, p->d.buf, p->d.out);
}

static void put32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 24);
	p[1] = (uint8_t)(v >> 16);
	p[2] = (uint8_t)(v >> 8);
	p[3] = (uint8_t)v;
}

static int cmp_entry(const void *a, const void *b)
{
	return git_oid_cmp(&((const struct pack_entry *)a)->id, &((const struct pack_entry *)b)->id);
}

/* The pack's index (version 2) into a malloc'd buffer. */
static uint8_t *pack_index(struct pack *p, const uint8_t packsum[20], size_t *len)
{
	size_t n = p->count, nlarge = 0;
	for (size_t i = 0; i < n; i++)
		nlarge += p->e[i].off >= UINT32_C(0x80000000);
	*len = 8 + 1024 + n * (20 + 4 + 4) + nlarge * 8 + 40;
	uint8_t *b = malloc(*len), *q = b;
	if (!b)
		return NULL;
	memcpy(q, "\377tOc\0\0\0\2", 8);
	q += 8;
	size_t k = 0;
	for (unsigned f = 0; f < 256; f++) {
		while (k < n && p->e[k].id.id[0] <= f)
			k++;
		put32(q + 4 * f, (uint32_t)k);
	}
	q += 1024;
	for (size_t i = 0; i < n; i++, q += 20)
		memcpy(q, p->e[i].id.id, 20);
	for (size_t i = 0; i < n; i++, q += 4)
		put32(q, p->e[i].crc);
	uint8_t *large = q + 4 * n;
	size_t li = 0;
	for (size_t i = 0; i < n; i++, q += 4) {
		uint64_t off = p->e[i].off;
		if (off < UINT32_C(0x80000000)) {
			put32(q, (uint32_t)off);
		} else {
			put32(q, UINT32_C(0x80000000) | (uint32_t)li);
			put32(large + 8 * li, (uint32_t)(off >> 32));
			put32(large + 8 * li + 4, (uint32_t)off);
			li++;
		}
	}
	q = large + 8 * nlarge;
	memcpy(q, packsum, 20);
	struct sha1_ctx sha;
	sha1_init(&sha);
	sha1_update(&sha, b, (size_t)(q + 20 - b));
	sha1_final(&sha, q + 20);
	return b;
}

/* Puts a pack written to pack_tmp and its index (ilen bytes) in place as
 * dir/base.pack and dir/base.idx: the index staged first, then the pack
 * renamed, then the index (libgit2 and git find a pack by its .idx). On
 * failure the index's temporary file goes; pack_tmp is the caller's. */
static int pack_install(const char *dir, const char *base, const char *pack_tmp, const uint8_t *idx, size_t ilen)
{
	char path[PATH_MAX], itmp[PATH_MAX];
	sg_path(path, sizeof path, "%s/%s.idx", dir, base);
	int rc = sg_stage(path, idx, ilen, itmp);
	if (rc)
		return rc;
	sg_path(path, sizeof path, "%s/%s.pack", dir, base);
	if (rename(pack_tmp, path) != 0) {
		rc = err_sys(MCRDT_EIO, "renaming %s to %s", pack_tmp, path);
	} else {
		sg_path(path, sizeof path, "%s/%s.idx", dir, base);
		if (rename(itmp, path) != 0)
			rc = err_sys(MCRDT_EIO, "renaming %s to %s", itmp, path);
	}
	if (rc)
		unlink(itmp);
	return rc;
}

int pack_finish(struct pack *p)
{
	int rc;
	if (p->count == 0)
		return 0;
	if ((rc = pack_flush(p)))
		return rc;
	uint8_t cnt[4];
	put32(cnt, (uint32_t)p->count);
	if (pwrite(p->fd, cnt, 4, 8) != 4)
		return err_sys(MCRDT_EIO, "writing %s", p->tmp);
	/* The trailer: SHA-1 of everything, read back (from the page cache). */
	struct sha1_ctx sha;
	sha1_init(&sha);
	for (uint64_t at = 0; at < p->off;) {
		size_t want = p->off - at < PACK_WBUF ? (size_t)(p->off - at) : PACK_WBUF;
		if (pread_all(p->fd, p->wbuf, want, at) != 0)
			return errno == ENODATA ? err_set(MCRDT_EIO, "%s shrank while being written", p->tmp)
						: err_sys(MCRDT_EIO, "reading back %s", p->tmp);
		sha1_update(&sha, p->wbuf, want);
		at += want;
	}
	uint8_t sum[20];
	sha1_final(&sha, sum);
	if ((rc = sg_write(p->fd, sum, 20, p->tmp)) || (rc = sg_seal(p->fd, p->tmp)))
		return rc;

	qsort(p->e, p->count, sizeof *p->e, cmp_entry);
	size_t ilen;
	uint8_t *idx = pack_index(p, sum, &ilen);
	if (!idx)
		return err_set(MCRDT_ENOMEM, "out of memory writing a pack index");
	for (int i = 0; i < 20; i++)
		snprintf(p->name + 2 * i, 3, "%02x", sum[i]);
	char base[GIT_OID_HEXSZ + 8];
	sg_path(base, sizeof base, "pack-%s", p->name);
	rc = pack_install(p->dir, base, p->tmp, idx, ilen);
	free(idx);
	if (rc)
		return rc;
	p->tmp[0] = 0;
	return sync_dir(p->dir);
}

/* ---- reading an index ---- */

int idx_load(const char *who, const char *path, size_t max, struct pack_idx *ix)
{
	uint8_t *d;
	size_t len;
	int rc = sg_slurp(path, max, &d, &len);
	if (rc)
		return rc;
	if (len < 8 + 1024 + 40 || memcmp(d, "\377tOc\0\0\0\2", 8) != 0) {
		free(d);
		return 1;
	}
	uint32_t n = be32(d + 8 + 255 * 4);
	size_t tables = 8 + 1024 + (size_t)n * 28;
	const char *bad = NULL;
	if (!sum_ok(d, len) || tables + 40 > len || (len - 40 - tables) % 8 != 0)
		bad = "is corrupt";
	/* The ids sorted, and the fanout (where a reader looks an id up)
	 * counting them: a lying fanout hides objects from libgit2. */
	const uint8_t *ids = d + 8 + 1024;
	for (uint32_t i = 1; !bad && i < n; i++)
		if (memcmp(ids + (size_t)(i - 1) * 20, ids + (size_t)i * 20, 20) >= 0)
			bad = "has its ids out of order";
	for (uint32_t b = 0, i = 0; !bad && b < 256; b++) {
		while (i < n && ids[(size_t)i * 20] == b)
			i++;
		if (be32(d + 8 + 4 * b) != i)
			bad = "has a fanout that does not count its ids";
	}
	if (bad) {
		free(d);
		return err_set(MCRDT_ECORRUPT, "%s: pack index %s %s", who, path, bad);
	}
	ix->data = d;
	ix->len = len;
	ix->n = n;
	ix->ids = d + 8 + 1024;
	ix->crcs = ix->ids + (size_t)n * 20;
	ix->offs = ix->crcs + (size_t)n * 4;
	ix->large = ix->offs + (size_t)n * 4;
	ix->nlarge = (len - 40 - tables) / 8;
	ix->packsum = d + len - 40;
	return 0;
}

/* Entry i's offset in the pack; UINT64_MAX when the index is damaged. */
static uint64_t idx_offset(const struct pack_idx *ix, uint32_t i)
{
	uint32_t v = be32(ix->offs + (size_t)i * 4);
	if (!(v & UINT32_C(0x80000000)))
		return v;
	size_t k = v & UINT32_C(0x7fffffff);
	if (k >= ix->nlarge)
		return UINT64_MAX;
	return (uint64_t)be32(ix->large + 8 * k) << 32 | be32(ix->large + 8 * k + 4);
}

void idx_free(struct pack_idx *ix)
{
	free(ix->data);
	memset(ix, 0, sizeof *ix);
}

/* ---- consolidating ---- */


static int cmp_size(const void *a, const void *b)
{
	uint64_t x = ((const struct srcpack *)a)->size, y = ((const struct srcpack *)b)->size;
	return x < y ? -1 : x > y;
}

int list_packs(const char *dir, bool kept, struct srcpack **out, size_t *n)
{
	*out = NULL;
	*n = 0;
	DIR *d = opendir(dir);
	if (!d)
		return errno == ENOENT ? 0 : err_sys(MCRDT_EIO, "listing %s", dir);
	size_t cap = 0;
	int rc = 0;
	struct dirent *e;
	while (!rc && (e = readdir(d))) {
		size_t l = strlen(e->d_name);
		if (l < 5 + 4 || l - 4 >= sizeof((struct srcpack *)0)->base || strncmp(e->d_name, "pack-", 5) != 0 ||
		    strcmp(e->d_name + l - 4, ".idx") != 0)
			continue;
		struct srcpack sp;
		char nm[sizeof sp.base + 8];
		struct stat sb;
		snprintf(sp.base, sizeof sp.base, "%.*s", (int)(l - 4), e->d_name);
		snprintf(nm, sizeof nm, "%s.keep", sp.base);
		if (!kept && faccessat(dirfd(d), nm, F_OK, 0) == 0)
			continue;
		snprintf(nm, sizeof nm, "%s.pack", sp.base);
		if (fstatat(dirfd(d), nm, &sb, 0) != 0)
			continue; /* going, or not there yet */
		sp.size = (uint64_t)sb.st_size;
		if ((rc = GROW(*out, cap, *n + 1)))
			break;
		(*out)[(*n)++] = sp;
	}
	closedir(d);
	if (rc) {
		free(*out);
		*out = NULL;
		*n = 0;
		return rc;
	}
	if (*n)
		qsort(*out, *n, sizeof **out, cmp_size);
	return 0;
}

/* How many of the n packs (smallest first) to merge: those up to the last
 * one smaller than twice the sum of the ones before it, at least two,
 * and enough to leave no more than max_packs. */
static size_t merge_count(const struct srcpack *s, size_t n, unsigned max_packs)
{
	size_t k = 0;
	uint64_t below = 0;
	for (size_t j = 0; j < n; j++) {
		if (below > s[j].size / 2)
			k = j + 1;
		below += s[j].size;
	}
	if (k < 2)
		k = 2;
	while (k < n && n - k + 1 > max_packs)
		k++;
	return k > n ? n : k;
}

struct ent {
	uint64_t off;
	uint32_t i;
};

static int cmp_off(const void *a, const void *b)
{
	uint64_t x = ((const struct ent *)a)->off, y = ((const struct ent *)b)->off;
	return x < y ? -1 : x > y;
}

/* The entries of index ix in offset order (*out, the caller frees),
 * checked to tile a pack of size bytes from its 12-byte header to its
 * trailer. who, path: for errors. */
static int pack_entries(const char *who, const char *path, const struct pack_idx *ix, size_t size, struct ent **out)
{
	uint32_t n = ix->n;
	if (n == 0 && size != 32)
		return err_set(MCRDT_ECORRUPT, "%s: %s holds bytes its index does not name", who, path);
	struct ent *v = malloc((n ? n : 1) * sizeof *v);
	if (!v)
		return err_set(MCRDT_ENOMEM, "out of memory reading %s", path);
	for (uint32_t i = 0; i < n; i++)
		v[i] = (struct ent){ idx_offset(ix, i), i };
	qsort(v, n, sizeof *v, cmp_off);
	for (uint32_t k = 0; k < n; k++) {
		uint64_t end = k + 1 < n ? v[k + 1].off : size - 20;
		if ((k == 0 && v[k].off != 12) || v[k].off >= end || end > size - 20) {
			free(v);
			return err_set(MCRDT_ECORRUPT, "%s: the index of %s gives a bad offset", who, path);
		}
	}
	*out = v;
	return 0;
}

/* Whether the pack at map (size bytes, 32 or more) has the header and
 * trailer index ix names: its object count and checksum. */
static bool pack_hdr_ok(const uint8_t *map, size_t size, const struct pack_idx *ix)
{
	uint32_t ver = be32(map + 4);
	return memcmp(map, "PACK", 4) == 0 && (ver == 2 || ver == 3) && be32(map + 8) == ix->n &&
	       memcmp(map + size - 20, ix->packsum, 20) == 0;
}

/* A pack entry's header at b (len bytes left): its length, 0 when it is
 * cut short or its size overflows; *type and *size. */
static size_t entry_hdr(const uint8_t *b, size_t len, unsigned *type, uint64_t *size)
{
	if (len == 0)
		return 0;
	size_t h = 0;
	uint8_t c = b[h++];
	unsigned shift = 4;
	*type = (c >> 4) & 7;
	*size = c & 15;
	while (c & 0x80) {
		if (h == len || shift > 56)
			return 0;
		c = b[h++];
		*size |= (uint64_t)(c & 0x7f) << shift;
		shift += 7;
	}
	return h;
}

/* One entry of a source pack: whole objects are copied as stored, deltas
 * read whole through the odb (which holds the source) and stored whole. */
static int merge_entry(struct pack *p, git_odb *odb, const char *who, const char *path, const struct pack_idx *ix,
		       uint32_t i, const uint8_t *b, size_t len)
{
	git_oid id;
	char hx[GIT_OID_HEXSZ + 1];
	memcpy(id.id, ix->ids + (size_t)i * 20, 20);
	unsigned type;
	uint64_t size;
	size_t h = entry_hdr(b, len, &type, &size);
	if (h == 0 || h >= len)
		return err_set(MCRDT_ECORRUPT, "%s: %s: entry %s is corrupt", who, path,
			       git_oid_tostr(hx, sizeof hx, &id));
	if (type >= GIT_OBJECT_COMMIT && type <= GIT_OBJECT_TAG) {
		int seen = pack_seen(p, &id);
		if (seen)
			return seen < 0 ? seen : 0;
		return pack_put_raw(p, &id, NULL, 0, b, len, be32(ix->crcs + (size_t)i * 4));
	}
	if (type != GIT_OBJECT_OFS_DELTA && type != GIT_OBJECT_REF_DELTA)
		return err_set(MCRDT_ECORRUPT, "%s: %s: entry %s has type %u", who, path,
			       git_oid_tostr(hx, sizeof hx, &id), type);
	git_odb_object *o;
	git_oid got;
	if (git_odb_read(&o, odb, &id) < 0)
		return sg_fail(MCRDT_ECORRUPT, "%s: %s: reading %s", who, path, git_oid_tostr(hx, sizeof hx, &id));
	int rc = pack_add(p, git_odb_object_type(o), git_odb_object_data(o), git_odb_object_size(o), &got);
	git_odb_object_free(o);
	if (!rc && !git_oid_equal(&got, &id))
		rc = err_set(MCRDT_ECORRUPT, "%s: %s: object %s hashes to another id", who, path,
			     git_oid_tostr(hx, sizeof hx, &id));
	return rc;
}

/* Maps the pack at path (of index ix) for the reader, when its header,
 * object count and trailer are what ix names (else false: the reader
 * leaves that pack to libgit2, which names what is wrong). */
static bool pack_map(const char *path, const struct pack_idx *ix, uint8_t **map, size_t *size)
{
	struct stat sb;
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
	*map = MAP_FAILED;
	if (fd < 0)
		return false;
	*size = fstat(fd, &sb) == 0 && S_ISREG(sb.st_mode) ? (size_t)sb.st_size : 0;
	if (*size >= 32)
		*map = mmap(NULL, *size, PROT_READ, MAP_PRIVATE, fd, 0);
	close(fd);
	if (*map == MAP_FAILED)
		return false;
	madvise(*map, *size, MADV_SEQUENTIAL);
	if (!pack_hdr_ok(*map, *size, ix)) {
		munmap(*map, *size);
		*map = MAP_FAILED;
		return false;
	}
	return true;
}

/* len bytes at off of fd (path, for errors) into buf: a file that shrank
 * since it was measured is an error, where a mapping of it would fault. */
static int pread_exact(int fd, const char *who, const char *path, uint64_t off, uint8_t *buf, size_t len)
{
	if (pread_all(fd, buf, len, off) == 0)
		return 0;
	return errno == ENODATA ? err_set(MCRDT_ECORRUPT, "%s: %s shrank while it was read", who, path)
				: err_sys(MCRDT_EIO, "%s: reading %s", who, path);
}

/* Above the largest entry entry_check accepts: a header (at most 10
 * bytes for any size it takes) and at most 4 GiB of zlib stream. */
#define ENTRY_MAX (UINT64_C(0xffffffff) + 16)

/* A source pack (another process's file, read through a buffer, never
 * mapped) open for copying entries out of it. */
struct srcfile {
	int fd;
	size_t size;
	struct ent *v;    /* its entries in offset order, tiling it */
	uint8_t ends[32]; /* header and trailer side by side: what pack_hdr_ok reads */
};

static size_t src_len(const struct srcfile *f, uint32_t n, uint32_t k)
{
	return (size_t)((k + 1 < n ? f->v[k + 1].off : f->size - 20) - f->v[k].off);
}

static void src_close(struct srcfile *f)
{
	if (f->fd >= 0)
		close(f->fd);
	free(f->v);
	f->fd = -1;
	f->v = NULL;
}

/* Opens the pack at path as f: it must be the pack ix (loaded by
 * idx_load) names, its header and trailer and its size, which the
 * entries tile. 1 when it is gone; an error naming who. */
static int src_open(const char *who, const char *path, const struct pack_idx *ix, struct srcfile *f)
{
	struct stat sb;
	f->v = NULL;
	if ((f->fd = sg_open_file(path, &sb)) < 0)
		return errno == ENOENT ? 1 : err_set(MCRDT_EIO, "%s: %s", who, mcrdt_error_last());
	f->size = (size_t)sb.st_size;
	int rc = f->size < 32 ? err_set(MCRDT_ECORRUPT, "%s: %s is too short to be a pack", who, path) : 0;
	if (!rc && !(rc = pread_exact(f->fd, who, path, 0, f->ends, 12)) &&
	    !(rc = pread_exact(f->fd, who, path, f->size - 20, f->ends + 12, 20)) && !pack_hdr_ok(f->ends, 32, ix))
		rc = err_set(MCRDT_ECORRUPT, "%s: %s is corrupt or does not match its index", who, path);
	if (!rc)
		rc = pack_entries(who, path, ix, f->size, &f->v);
	if (rc)
		src_close(f);
	return rc;
}

/* Checks each entry copy_entries takes from a peer (see entry_check). */
struct taker {
	const uint8_t *want; /* per index entry: take it */
	int unpack;          /* where blobs go as they are checked, or -1 */
	z_stream z;
	uint8_t *buf; /* CHECK_BUF bytes */
	uint64_t objects, bytes;
};

static const char *entry_check(z_stream *z, uint8_t *buf, const uint8_t *b, size_t len, const uint8_t id[20],
			       uint32_t crc, int unpack);

/* Appends entries of the open pack f at path (index ix) to p, each read
 * through a buffer. t NULL: every entry, whose bytes must then sum to the
 * trailer (a merge; deltas are read whole through odb). Else those
 * t->want marks, each checked as pack_check checks one; 1 when one is a
 * delta (what went before it is appended, and checked). */
static int copy_entries(struct pack *p, git_odb *odb, const char *who, const char *path, struct srcfile *f,
			const struct pack_idx *ix, struct taker *t)
{
	uint8_t *buf = NULL;
	size_t cap = 0;
	int rc = 0;
	/* The entries tile the pack: hashed in order after the header, they
	 * are every byte the trailer sums (a merge reads them all). */
	struct sha1_ctx sha;
	sha1_init(&sha);
	sha1_update(&sha, f->ends, 12);
	for (uint32_t k = 0; k < ix->n && !rc; k++) {
		uint32_t i = f->v[k].i;
		if (t && !t->want[i])
			continue;
		size_t len = src_len(f, ix->n, k);
		if (t && (uint64_t)len > ENTRY_MAX) { /* read whole below: a peer's file may claim anything */
			char hx[GIT_OID_HEXSZ + 1];
			git_oid oid;
			memcpy(oid.id, ix->ids + (size_t)i * 20, 20);
			rc = err_set(MCRDT_ECORRUPT, "%s: %s: object %s is not a whole object (%zu bytes packed)", who,
				     path, git_oid_tostr(hx, sizeof hx, &oid), len);
			break;
		}
		if ((rc = GROW(buf, cap, len)) || (rc = pread_exact(f->fd, who, path, f->v[k].off, buf, len)))
			break;
		if (!t) {
			sha1_update(&sha, buf, len);
		} else {
			unsigned type = (buf[0] >> 4) & 7;
			if (type == GIT_OBJECT_OFS_DELTA || type == GIT_OBJECT_REF_DELTA) {
				rc = 1;
				break;
			}
			const uint8_t *id = ix->ids + (size_t)i * 20;
			const char *why =
				entry_check(&t->z, t->buf, buf, len, id, be32(ix->crcs + (size_t)i * 4), t->unpack);
			if (why) {
				char hx[GIT_OID_HEXSZ + 1];
				git_oid oid;
				memcpy(oid.id, id, 20);
				rc = err_set(MCRDT_ECORRUPT, "%s: %s: object %s %s", who, path,
					     git_oid_tostr(hx, sizeof hx, &oid), why);
				break;
			}
			t->objects++;
			t->bytes += len;
		}
		rc = merge_entry(p, odb, who, path, ix, i, buf, len);
	}
	uint8_t sum[20];
	sha1_final(&sha, sum);
	if (!rc && !t && memcmp(sum, f->ends + 12, 20) != 0)
		rc = err_set(MCRDT_ECORRUPT, "%s: %s is corrupt or does not match its index", who, path);
	free(buf);
	return rc;
}

/* Appends to p every object of the pack dir/base, read through a buffer
 * (a hub's pack is another process's file). It must be the pack its index
 * names, and its checksum, over every byte read, must hold: otherwise
 * MCRDT_ECORRUPT, and the caller drops p with what was appended. 1 when
 * the pack is gone (another process merged it). */
static int merge_pack(struct pack *p, git_odb *odb, const char *dir, const char *base)
{
	char path[PATH_MAX];
	struct pack_idx ix = { 0 };
	struct srcfile f = { .fd = -1 };
	int rc;
	sg_path(path, sizeof path, "%s/%s.idx", dir, base);
	if (sg_gone(path))
		return 1;
	if ((rc = idx_load("maintain", path, SIZE_MAX, &ix))) {
		if (rc < 0 && sg_gone(path))
			return 1;
		return rc == 1 ? err_set(MCRDT_ECORRUPT, "maintain: %s is not a version 2 pack index", path) : rc;
	}
	sg_path(path, sizeof path, "%s/%s.pack", dir, base);
	if (!(rc = src_open("maintain", path, &ix, &f)))
		rc = copy_entries(p, odb, "maintain", path, &f, &ix, NULL);
	src_close(&f);
	idx_free(&ix);
	return rc;
}

int loose_each(const char *objdir, int (*fn)(void *ctx, const git_oid *id, const char *hex), void *ctx)
{
	/* Which of the 256 fan-out directories there are, from one listing
	 * of objdir: a repository we wrote has none, and trying each would
	 * cost 256 failed opens per fetch and push. */
	bool there[256] = { false };
	DIR *top = opendir(objdir);
	struct dirent *e;
	while (top && (e = readdir(top))) {
		int hi = sg_hex_digit(e->d_name[0]), lo = hi < 0 ? -1 : sg_hex_digit(e->d_name[1]);
		if (lo >= 0 && !e->d_name[2])
			there[hi << 4 | lo] = true;
	}
	if (top)
		closedir(top);
	int rc = 0;
	for (unsigned k = 0; k < 256 && !rc; k++) {
		if (!there[k])
			continue;
		char dir[PATH_MAX];
		sg_path(dir, sizeof dir, "%s/%02x", objdir, k);
		DIR *d = opendir(dir);
		if (!d)
			continue;
		while (!rc && (e = readdir(d))) {
			char hx[GIT_OID_HEXSZ + 1];
			git_oid id;
			if (strlen(e->d_name) != GIT_OID_HEXSZ - 2)
				continue;
			snprintf(hx, sizeof hx, "%02x%.38s", k, e->d_name);
			if (git_oid_fromstr(&id, hx) == 0)
				rc = fn(ctx, &id, hx);
		}
		closedir(d);
	}
	return rc;
}

struct merge_loose_ctx {
	struct pack *p;
	git_odb *odb;
	git_oid *ids;
	size_t n, cap;
};

static int merge_one_loose(void *vc, const git_oid *id, const char *hex)
{
	(void)hex;
	struct merge_loose_ctx *c = vc;
	git_odb_object *o;
	git_oid got;
	if (git_odb_read(&o, c->odb, id) < 0)
		return 0;
	int rc = pack_add(c->p, git_odb_object_type(o), git_odb_object_data(o), git_odb_object_size(o), &got);
	git_odb_object_free(o);
	if (rc || !git_oid_equal(&got, id))
		return rc;
	if ((rc = GROW(c->ids, c->cap, c->n + 1)))
		return rc;
	c->ids[c->n++] = *id;
	return 0;
}

/* Appends the loose objects of objdir to p; *ids (*n) those taken, to be
 * removed. An unreadable one is left where it is (fsck names it). */
static int merge_loose(struct pack *p, git_odb *odb, const char *objdir, git_oid **ids, size_t *n)
{
	struct merge_loose_ctx c = { p, odb, NULL, 0, 0 };
	int rc = loose_each(objdir, merge_one_loose, &c);
	*ids = c.ids;
	*n = c.n;
	return rc;
}

/* A merged pack goes: its index first, so no reader finds a pack without
 * its data; then the data and what git may have added beside it. */
static int remove_pack(const char *dir, const char *base)
{
	static const char *const ext[] = { "idx", "pack", "rev", "bitmap" };
	int rc = 0;
	for (size_t i = 0; i < sizeof ext / sizeof *ext; i++) {
		char path[PATH_MAX];
		sg_path(path, sizeof path, "%s/%s.%s", dir, base, ext[i]);
		if (unlink(path) != 0 && errno != ENOENT && !rc)
			rc = err_sys(MCRDT_EIO, "maintain: removing %s", path);
	}
	return rc;
}

int pack_consolidate(const char *objdir, git_odb *odb, unsigned max_packs, unsigned *packs_out, bool *merged)
{
	char dir[PATH_MAX];
	sg_path(dir, sizeof dir, "%s/pack", objdir);
	if (merged)
		*merged = false;
	struct srcpack *s;
	size_t n;
	int rc = list_packs(dir, false, &s, &n);
	if (rc)
		return rc;
	size_t k = n > max_packs && n >= 2 ? merge_count(s, n, max_packs) : 0, nloose = 0;
	git_oid *loose = NULL;
	struct pack p;
	memset(&p, 0, sizeof p);
	p.fd = -1;
	if (k == 0)
		goto out;
	if ((rc = pack_open(&p, objdir, odb, false)))
		goto out;
	for (size_t i = 0; i < k && !rc; i++)
		rc = merge_pack(&p, odb, dir, s[i].base);
	if (!rc)
		rc = merge_loose(&p, odb, objdir, &loose, &nloose);
	if (!rc)
		rc = pack_finish(&p);
	if (rc) {
		rc = rc == 1 ? 0 : rc; /* a pack went: another process is merging */
		k = 0;
		goto out;
	}
	/* The merged pack is in place (and synced): what it holds goes. */
	char mine[sizeof s->base];
	snprintf(mine, sizeof mine, "pack-%s", p.name);
	for (size_t i = 0; i < k; i++) {
		int r = strcmp(s[i].base, mine) == 0 ? 0 : remove_pack(dir, s[i].base);
		rc = rc ? rc : r;
	}
	for (size_t i = 0; i < nloose; i++) {
		char hx[GIT_OID_HEXSZ + 1], path[PATH_MAX];
		git_oid_tostr(hx, sizeof hx, &loose[i]);
		sg_path(path, sizeof path, "%s/%.2s/%s", objdir, hx, hx + 2);
		if (unlink(path) != 0 && errno != ENOENT && !rc)
			rc = err_sys(MCRDT_EIO, "maintain: removing %s", path);
		sg_path(path, sizeof path, "%s/%.2s", objdir, hx);
		rmdir(path); /* when empty */
	}
	if (merged)
		*merged = true;
out:
	if (!rc && packs_out)
		*packs_out = (unsigned)(n - k + (k && p.count ? 1 : 0));
	pack_free(&p);
	free(s);
	free(loose);
	return rc;
}

/* ---- bringing in a peer's pack ---- */

/* Chunks of about this many pack bytes are what the checking threads
 * take turns on. */
#define CHECK_CHUNK (1u << 20)
#define CHECK_THREADS 2
#define CHECK_BUF (64u << 10)

struct check {
	const uint8_t *map;
	size_t size;
	const struct pack_idx *ix;
	const struct ent *v; /* the entries in offset order */
	uint32_t *chunk;     /* chunk k: entries [chunk[k], chunk[k + 1]) */
	uint32_t nchunks;
	int unpack;          /* a directory for the blobs checked, or -1 */
	const uint8_t *want; /* per index entry: unpack it (NULL: every blob) */
	pthread_mutex_t mu;
	uint32_t next; /* the next task: 0 the trailer, k + 1 chunk k */
	int rc;        /* the first failure (MCRDT_ECORRUPT), with why */
	char why[320];
};

static void check_fail(struct check *c, int rc, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void check_fail(struct check *c, int rc, const char *fmt, ...)
{
	pthread_mutex_lock(&c->mu);
	if (!c->rc) {
		c->rc = rc;
		va_list ap;
		va_start(ap, fmt);
		vsnprintf(c->why, sizeof c->why, fmt, ap);
		va_end(ap);
	}
	pthread_mutex_unlock(&c->mu);
}

/* Fails c for the object of entry k: what is wrong with it. */
static int check_bad(struct check *c, uint32_t k, const char *what)
{
	char hx[GIT_OID_HEXSZ + 1];
	git_oid oid;
	memcpy(oid.id, c->ix->ids + (size_t)c->v[k].i * 20, 20);
	check_fail(c, MCRDT_ECORRUPT, "object %s %s", git_oid_tostr(hx, sizeof hx, &oid), what);
	return MCRDT_ECORRUPT;
}

/* A blob being checked, written out as it inflates to the unpack
 * directory under its id in hex, and removed unless it proves to be its
 * id. (A failed check fails the fetch, and the directory is the fetch's
 * own until it returns.) Writing is a bonus: a failure drops the file,
 * never the check. */
struct unpacked {
	int dir, fd;
	char name[GIT_OID_HEXSZ + 1];
};

static void unpacked_start(struct unpacked *u, int dir, const uint8_t id[20])
{
	git_oid oid;
	memcpy(oid.id, id, 20);
	u->fd = -1;
	u->dir = dir;
	git_oid_tostr(u->name, sizeof u->name, &oid);
	if (dir >= 0) /* (EEXIST: written from another pack of this fetch) */
		u->fd = openat(dir, u->name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
}

static void unpacked_end(struct unpacked *u, bool good)
{
	if (u->fd < 0)
		return;
	if (good) /* to the disk while the rest is checked: whoever keeps it syncs it */
		(void)sync_file_range(u->fd, 0, 0, SYNC_FILE_RANGE_WRITE);
	if (close(u->fd) != 0 || !good)
		unlinkat(u->dir, u->name, 0);
	u->fd = -1;
}

static void unpacked_write(struct unpacked *u, const void *data, size_t len)
{
	if (u->fd >= 0 && write_all(u->fd, data, len) != 0)
		unpacked_end(u, false);
}

/* The entry of len bytes at b that an index names object id with CRC-32
 * crc: NULL when its CRC-32 is crc and it is a whole object that inflates
 * to exactly its size (its Adler-32 checked) and hashes to id; else what
 * is wrong with it. A blob is also written to the directory unpack (when
 * not -1) as it inflates. z: an inflate stream; buf: CHECK_BUF bytes. */
static const char *entry_check(z_stream *z, uint8_t *buf, const uint8_t *b, size_t len, const uint8_t id[20],
			       uint32_t crc, int unpack)
{
	if ((uint32_t)crc32_z(0, b, len) != crc)
		return "does not match its index (CRC-32)";
	unsigned type;
	uint64_t size;
	size_t h = entry_hdr(b, len, &type, &size);
	if (h == 0 || h >= len || len - h > UINT32_MAX || type < GIT_OBJECT_COMMIT || type > GIT_OBJECT_TAG)
		return "is not a whole object";
	struct sha1_ctx sha;
	object_id_start(&sha, (git_object_t)type, size);
	struct unpacked u;
	unpacked_start(&u, type == GIT_OBJECT_BLOB ? unpack : -1, id);
	int zr = inflateReset(z);
	z->next_in = (Bytef *)(uintptr_t)(b + h);
	z->avail_in = (uInt)(len - h);
	uint64_t got = 0;
	while (zr == Z_OK && got <= size) {
		z->next_out = buf;
		z->avail_out = CHECK_BUF;
		zr = inflate(z, Z_NO_FLUSH);
		size_t out = CHECK_BUF - z->avail_out;
		got += out;
		if (got <= size) {
			sha1_update(&sha, buf, out);
			unpacked_write(&u, buf, out);
		}
	}
	uint8_t sum[20];
	sha1_final(&sha, sum);
	bool good = zr == Z_STREAM_END && got == size && z->avail_in == 0 && memcmp(sum, id, 20) == 0;
	unpacked_end(&u, good);
	return good ? NULL : "does not match its id";
}

/* Entry k (in offset order), as entry_check says; a blob c->want names
 * is also written to c->unpack. (pack_check sent deltas elsewhere.) */
static int check_entry(struct check *c, z_stream *z, uint8_t *buf, uint32_t k)
{
	uint32_t i = c->v[k].i;
	size_t len = (size_t)((k + 1 < c->ix->n ? c->v[k + 1].off : c->size - 20) - c->v[k].off);
	const char *why = entry_check(z, buf, c->map + c->v[k].off, len, c->ix->ids + (size_t)i * 20,
				      be32(c->ix->crcs + (size_t)i * 4), !c->want || c->want[i] ? c->unpack : -1);
	return why ? check_bad(c, k, why) : 0;
}

static void *check_run(void *arg)
{
	struct check *c = arg;
	z_stream z;
	memset(&z, 0, sizeof z);
	uint8_t *buf = malloc(CHECK_BUF);
	if (!buf || inflateInit(&z) != Z_OK) {
		free(buf);
		return NULL; /* the other thread does the work */
	}
	for (;;) {
		pthread_mutex_lock(&c->mu);
		uint32_t t = c->rc ? UINT32_MAX : c->next++;
		pthread_mutex_unlock(&c->mu);
		if (t > c->nchunks)
			break;
		if (t == 0) {
			if (!sum_ok(c->map, c->size))
				check_fail(c, MCRDT_ECORRUPT, "its checksum does not match its bytes");
			continue;
		}
		for (uint32_t k = c->chunk[t - 1]; k < c->chunk[t]; k++)
			if (check_entry(c, &z, buf, k))
				break;
	}
	inflateEnd(&z);
	free(buf);
	return (void *)c; /* worked */
}

/*
 * Checks the pack at map (size bytes; path, for errors) against its index
 * ix (whose ids and fanout idx_load checked), all of it, as git's
 * index-pack would: the header and trailer name ix's count and checksum,
 * the SHA-1 of the bytes is the trailer, and every entry (v: in offset
 * order, checked by pack_entries to tile a pack of size bytes) is as
 * check_entry says. Two threads take turns on the work. Each blob proved is left in
 * the directory unpack (when not -1) as a file named by its id in hex,
 * when want (indexed like ix; NULL: all) says so.
 * 0; 1 when the pack holds a delta (found before any is inflated);
 * MCRDT_ECORRUPT naming it.
 */
static int pack_check(const char *who, const char *path, const uint8_t *map, size_t size, const struct pack_idx *ix,
		      const struct ent *v, int unpack, const uint8_t *want)
{
	if (!pack_hdr_ok(map, size, ix))
		return err_set(MCRDT_ECORRUPT, "%s: %s is corrupt or does not match its index", who, path);
	int rc;
	uint32_t n = ix->n;
	struct check c = { .map = map, .size = size, .ix = ix, .v = v, .unpack = unpack, .want = want };
	uint32_t *chunk = malloc(((size_t)n + 2) * sizeof *chunk);
	rc = chunk ? 0 : err_set(MCRDT_ENOMEM, "out of memory checking %s", path);
	/* Cut into chunks; an entry's type is in its first byte. */
	uint64_t from = 12;
	for (uint32_t k = 0; !rc && k < n; k++) {
		unsigned type = (map[v[k].off] >> 4) & 7;
		if (type == GIT_OBJECT_OFS_DELTA || type == GIT_OBJECT_REF_DELTA)
			rc = 1;
		if (k == 0 || v[k].off - from >= CHECK_CHUNK) {
			chunk[c.nchunks++] = k;
			from = v[k].off;
		}
	}
	if (!rc && n)
		chunk[c.nchunks] = n;
	if (!rc) {
		c.chunk = chunk;
		pthread_mutex_init(&c.mu, NULL);
		pthread_t th[CHECK_THREADS - 1];
		bool started[CHECK_THREADS - 1];
		for (size_t t = 0; t + 1 < CHECK_THREADS; t++)
			started[t] = pthread_create(&th[t], NULL, check_run, &c) == 0;
		void *worked = check_run(&c);
		for (size_t t = 0; t + 1 < CHECK_THREADS; t++) {
			void *r = NULL;
			if (started[t] && pthread_join(th[t], &r) == 0 && r)
				worked = r;
		}
		pthread_mutex_destroy(&c.mu);
		if (!worked)
			rc = err_set(MCRDT_ENOMEM, "out of memory checking %s", path);
		else if (c.rc)
			rc = err_set(c.rc, "%s: %s: %s", who, path, c.why);
	}
	free(chunk);
	return rc;
}

/* The pack at map through libgit2's indexer into odb's pack directory:
 * it resolves deltas and names every object by its own hash. */
static int index_through_libgit2(const char *who, const char *path, const uint8_t *map, size_t size, git_odb *odb)
{
	git_odb_writepack *wp;
	git_indexer_progress st;
	memset(&st, 0, sizeof st);
	if (git_odb_write_pack(&wp, odb, NULL, NULL) < 0)
		return sg_fail(MCRDT_EIO, "%s: indexing %s", who, path);
	int rc = 0;
	for (size_t off = 0; off < size && !rc; off += CHECK_CHUNK)
		if (wp->append(wp, map + off, size - off < CHECK_CHUNK ? size - off : CHECK_CHUNK, &st) < 0)
			rc = sg_fail(MCRDT_ECORRUPT, "%s: %s is corrupt", who, path);
	if (!rc && wp->commit(wp, &st) < 0)
		rc = sg_fail(MCRDT_ECORRUPT, "%s: %s is corrupt", who, path);
	wp->free(wp);
	return rc;
}

/* Copies size bytes of in (src) to out (tmp) through a buffer: a source
 * that shrinks meanwhile is an error, where a mapping of it would fault.
 * (Not copy_file_range: on a file system with reflinks it shares the
 * blocks, and a replica is a second copy of the mail.) */
static int copy_bytes(const char *who, const char *src, int in, uint64_t size, int out, const char *tmp)
{
	size_t bs = 1 << 20;
	uint8_t *buf = malloc(bs);
	int rc = buf ? 0 : err_set(MCRDT_ENOMEM, "out of memory copying %s", src);
	for (uint64_t left = size; !rc && left;) {
		ssize_t r = read(in, buf, left < bs ? (size_t)left : bs);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0) {
			rc = r < 0 ? err_sys(MCRDT_EIO, "%s: reading %s", who, src)
				   : err_set(MCRDT_EIO, "%s: %s shrank while being copied", who, src);
		} else {
			rc = sg_write(out, buf, (size_t)r, tmp);
			left -= (uint64_t)r;
		}
	}
	free(buf);
	return rc;
}

/* Brings the source pack f (at src) into dstdir whole, as base.pack and
 * base.idx: copied to a temporary file there, the copy checked whole
 * (pack_check), synced and renamed, the index after it; a pack with
 * deltas goes through libgit2's indexer into odb instead. *bytes grows
 * by what was written. */
static int import_whole(const char *who, const char *src, struct srcfile *f, const struct pack_idx *ix,
			const char *dstdir, const char *base, git_odb *odb, int unpack, const uint8_t *want,
			uint64_t *bytes)
{
	size_t size = f->size;
	char dst[PATH_MAX], tmp[PATH_MAX];
	sg_path(dst, sizeof dst, "%s/%s.pack", dstdir, base);
	sg_path(tmp, sizeof tmp, "%s" TMP_SUFFIX "XXXXXX", dst);
	int fd = mkstemp(tmp);
	if (fd < 0)
		return err_sys(MCRDT_EIO, "creating %s", tmp);
	/* The copy is what is checked: a writer that still changes src
	 * cannot slip in bytes that were not. (src_open read with pread:
	 * the descriptor is at its start.) */
	int rc = copy_bytes(who, src, f->fd, size, fd, tmp);
	uint8_t *copy = MAP_FAILED;
	if (!rc) {
		(void)sync_file_range(fd, 0, 0, SYNC_FILE_RANGE_WRITE); /* to the disk while it is checked */
		if ((copy = mmap(NULL, size, PROT_READ, MAP_SHARED, fd, 0)) == MAP_FAILED)
			rc = err_sys(MCRDT_EIO, "mapping %s", tmp);
	}
	bool whole = true;
	if (!rc && (rc = pack_check(who, src, copy, size, ix, f->v, unpack, want)) == 1) {
		whole = false; /* libgit2 writes the pack and its index */
		rc = index_through_libgit2(who, src, copy, size, odb);
	} else if (!rc) {
		rc = sg_seal(fd, tmp);
	}
	if (copy != MAP_FAILED)
		munmap(copy, size);
	if (close(fd) != 0 && !rc && whole)
		rc = err_sys(MCRDT_EIO, "writing %s", tmp);
	/* The index as loaded and checked goes with it. */
	if (!rc && whole)
		rc = pack_install(dstdir, base, tmp, ix->data, ix->len);
	if (rc || !whole)
		unlink(tmp);
	/* The next pack's check sees these objects held. */
	if (!rc && git_odb_refresh(odb) < 0)
		rc = sg_fail(MCRDT_EIO, "%s: re-reading the packs", who);
	if (!rc)
		*bytes += size + (whole ? ix->len : 0);
	return rc;
}

int pack_take(const char *who, const char *src, const struct pack_idx *ix, const uint8_t *want, const char *objdir,
	      const char *base, git_odb *odb, struct pack *out, int unpack, uint64_t *objects, uint64_t *bytes)
{
	struct srcfile f;
	int rc = src_open(who, src, ix, &f);
	if (rc)
		return rc;
	uint64_t wanted = 0, nwanted = 0;
	for (uint32_t k = 0; k < ix->n; k++) {
		wanted += want[f.v[k].i] ? src_len(&f, ix->n, k) : 0;
		nwanted += want[f.v[k].i];
	}
	/* Most of it wanted: a copy and two threads check it faster. A delta
	 * goes whole through libgit2's indexer, which resolves it: found
	 * before anything is taken (an entry's type is its first byte). */
	bool whole = wanted >= f.size / 2;
	for (uint32_t k = 0; !whole && !rc && k < ix->n; k++) {
		uint8_t b0;
		if (want[f.v[k].i] && !(rc = pread_exact(f.fd, who, src, f.v[k].off, &b0, 1)))
			whole = ((b0 >> 4) & 7) == GIT_OBJECT_OFS_DELTA || ((b0 >> 4) & 7) == GIT_OBJECT_REF_DELTA;
	}
	struct taker t = { .want = want, .unpack = unpack };
	char dir[PATH_MAX];
	sg_path(dir, sizeof dir, "%s/pack", objdir);
	if (rc)
		;
	else if (whole) {
		if ((rc = import_whole(who, src, &f, ix, dir, base, odb, unpack, want, bytes)) == 0)
			*objects += nwanted; /* (what was lacked: the rest is held twice now) */
	} else if (out->fd < 0 && (rc = pack_open(out, objdir, odb, false)))
		;
	else if (!(t.buf = malloc(CHECK_BUF)) || inflateInit(&t.z) != Z_OK)
		rc = err_set(MCRDT_ENOMEM, "out of memory reading %s", src);
	else if ((rc = copy_entries(out, odb, who, src, &f, ix, &t)) == 1)
		rc = err_set(MCRDT_ECORRUPT, "%s: %s changed while it was read", who, src); /* (a delta now) */
	if (t.buf) {
		inflateEnd(&t.z);
		free(t.buf);
	}
	src_close(&f);
	*objects += t.objects;
	*bytes += t.bytes;
	return rc;
}

/* ---- reading whole blobs ---- */

struct rpack {
	struct pack_idx ix;
	uint8_t *map;
	size_t size;
};

struct pack_reader {
	struct rpack *p; /* largest first: where most objects are */
	size_t n;
};

void preader_z_end(struct preader_z *z)
{
	if (z->init)
		inflateEnd(&z->z);
	z->init = false;
}

void preader_close(struct pack_reader *r)
{
	if (!r)
		return;
	for (size_t i = 0; i < r->n; i++) {
		munmap(r->p[i].map, r->p[i].size);
		idx_free(&r->p[i].ix);
	}
	free(r->p);
	free(r);
}

int preader_open(const char *objdir, struct pack_reader **out)
{
	char dir[PATH_MAX], path[PATH_MAX];
	sg_path(dir, sizeof dir, "%s/pack", objdir);
	struct srcpack *s;
	size_t n;
	*out = NULL;
	int rc = list_packs(dir, true, &s, &n);
	if (rc)
		return rc;
	struct pack_reader *r = calloc(1, sizeof *r);
	if (!r || !(r->p = calloc(n ? n : 1, sizeof *r->p))) {
		free(r);
		free(s);
		return err_set(MCRDT_ENOMEM, "out of memory opening packs");
	}
	/* A pack this cannot read is left to libgit2, which names what is wrong. */
	for (size_t i = n; i-- > 0;) {
		struct rpack *rp = &r->p[r->n];
		sg_path(path, sizeof path, "%s/%s.idx", dir, s[i].base);
		if (idx_load("reading", path, SIZE_MAX, &rp->ix) != 0)
			continue;
		sg_path(path, sizeof path, "%s/%s.pack", dir, s[i].base);
		if (!pack_map(path, &rp->ix, &rp->map, &rp->size)) {
			idx_free(&rp->ix);
			continue;
		}
		r->n++;
	}
	free(s);
	*out = r;
	return 0;
}

/* Where id is in rp: its offset, or UINT64_MAX. */
static uint64_t rpack_find(const struct rpack *rp, const uint8_t id[20])
{
	const uint8_t *fan = rp->ix.data + 8;
	uint32_t lo = id[0] ? be32(fan + 4 * (id[0] - 1)) : 0, hi = be32(fan + 4 * id[0]);
	if (hi > rp->ix.n)
		return UINT64_MAX;
	while (lo < hi) {
		uint32_t mid = lo + (hi - lo) / 2;
		int c = memcmp(rp->ix.ids + (size_t)mid * 20, id, 20);
		if (c == 0)
			return idx_offset(&rp->ix, mid);
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return UINT64_MAX;
}

/* Inflates the whole blob at off of rp into a malloc'd *data and checks it
 * against id: 0, or 1 when anything is off (libgit2 then reads it). */
static int rpack_blob(struct preader_z *z, const struct rpack *rp, uint64_t off, const uint8_t id[20],
		      uint8_t **data, size_t *len)
{
	if (off < 12 || off >= rp->size - 20)
		return 1;
	const uint8_t *b = rp->map + off, *end = rp->map + rp->size - 20;
	unsigned type;
	uint64_t size;
	size_t h = entry_hdr(b, (size_t)(end - b), &type, &size);
	if (h == 0 || type != GIT_OBJECT_BLOB)
		return 1;
	b += h;
	if (size > SIZE_MAX / 2 || size > UINT32_MAX)
		return 1;
	/* The zlib header by hand, then raw deflate: its Adler-32 is not
	 * computed (6% of the time), the SHA-1 below checks every byte. */
	if (end - b < 2 || (b[0] & 0x0f) != Z_DEFLATED || (b[0] >> 4) > 7 || (b[1] & 0x20) ||
	    ((unsigned)b[0] << 8 | b[1]) % 31 != 0)
		return 1;
	b += 2;
	uint8_t *out = malloc(size ? (size_t)size : 1);
	if (!out)
		return err_set(MCRDT_ENOMEM, "out of memory reading a body of %" PRIu64 " bytes", size);
	if (!z->init) {
		memset(&z->z, 0, sizeof z->z);
		if (inflateInit2(&z->z, -MAX_WBITS) != Z_OK) {
			free(out);
			return 1;
		}
		z->init = true;
	} else if (inflateReset(&z->z) != Z_OK) {
		free(out);
		return 1;
	}
	size_t avail = (size_t)(end - b);
	z->z.next_in = (Bytef *)(uintptr_t)b;
	z->z.avail_in = avail > UINT32_MAX ? UINT32_MAX : (uInt)avail;
	z->z.next_out = out;
	z->z.avail_out = (uInt)size;
	int zr = inflate(&z->z, Z_FINISH);
	uint8_t sum[20];
	sg_object_id(GIT_OBJECT_BLOB, out, (size_t)size, sum);
	if (zr != Z_STREAM_END || z->z.total_out != size || memcmp(sum, id, 20) != 0) {
		free(out);
		return 1;
	}
	*data = out;
	*len = (size_t)size;
	return 0;
}

int preader_blob(const struct pack_reader *r, struct preader_z *z, const uint8_t id[20], uint8_t **data,
		 size_t *len)
{
	for (size_t i = 0; i < r->n; i++) {
		uint64_t off = rpack_find(&r->p[i], id);
		if (off != UINT64_MAX)
			return rpack_blob(z, &r->p[i], off, id, data, len);
	}
	return 1;
}
