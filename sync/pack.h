/*
 * sync/pack.h — git packs written, checked and merged without libgit2's
 * indexer; internal to sync/ (sync/git.c is the only user).
 *
 * None of this is thread-safe on one struct pack unless the caller says
 * so: publish's body workers call pack_seen and pack_put under its mutex.
 */
#ifndef MCRDT_SYNC_PACK_H
#define MCRDT_SYNC_PACK_H

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/stat.h>

#include <git2.h>
#include <zlib.h>

#include "common/hashmap.h"

/* ---- helpers sync/git.c shares ---- */

/* err_set with ": <libgit2's last message>" appended. */
int sg_fail(int code, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* snprintf for paths (one too long comes out cut, and then fails to open). */
void sg_path(char *buf, size_t size, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* A git object's id: the SHA-1 of "TYPE LEN\0" and its bytes, by
 * sync/sha1.c (the CPU's SHA instructions; libgit2's git_odb_hash runs
 * its collision-detecting SHA-1, three times slower; see preader). */
void sg_object_id(git_object_t type, const void *data, size_t len, uint8_t out[20]);
/* Reads fd to its end into *buf (grown as needed, *cap its size); *len
 * the bytes read. 0, -1 with errno set on a read error, or an error code
 * (set) when out of memory. */
int sg_read_fd(int fd, uint8_t **buf, size_t *cap, size_t *len);
/* Opens path for reading, a regular file only (a peer's pack or index
 * made a FIFO or a link to /dev/zero must not hang or fill memory): the
 * descriptor and *st, or -1 with the error set (errno ENOENT when path
 * does not exist). */
int sg_open_file(const char *path, struct stat *st);
/* Writes all of data to fd; MCRDT_ENOSPC or MCRDT_EIO naming path. */
int sg_write(int fd, const void *data, size_t len, const char *path);
/* Whether path is gone (ENOENT), as opposed to there or unreadable. */
bool sg_gone(const char *path);
/* Writes data to a new read-only temporary file next to path and syncs
 * it; its name in tmp, for the caller to rename over path (and remove on
 * failure). MCRDT_EIO or MCRDT_ENOSPC, nothing left behind. */
int sg_stage(const char *path, const void *data, size_t len, char tmp[PATH_MAX]);
/* Whether name is a temporary file that a writer here (sg_stage, a pack
 * being written or copied) or libgit2's indexer (pack_git2_*, *.lock)
 * makes beside the final names: what a killed writer leaves behind. */
bool sg_temp_name(const char *name);
/* Whether name is a lock file (NAME.lock), as git and libgit2 make them. */
bool sg_lock_name(const char *name);

/* The value of the lowercase hex digit c (as git writes ids), or -1. */
static inline int sg_hex_digit(char c)
{
	return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

static inline uint32_t be32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* ---- deflating ---- */

/* One zlib stream and its output buffer: the pack's own, or a worker's. */
struct deflater {
	z_stream z;
	bool init;
	uint8_t *buf;
	size_t cap, out;
};

/* Deflates data (Z_BEST_SPEED) into d->buf, d->out bytes: a zlib stream.
 * When that does not save a third of len, the stream holds data in
 * stored blocks instead: an inflate of them is a copy, and every replica
 * that takes the object pays the inflate (a base64 attachment deflates
 * to three quarters of its size, text to a third). An object over 64 KiB
 * whose first 64 KiB do not save a third is stored without deflating the
 * rest; one whose judged part is at least seven eighths base64 lines is
 * stored without a deflate at all. */
int deflater_run(struct deflater *d, const void *data, size_t len);
void deflater_free(struct deflater *d);

/* ---- writing a pack ---- */

struct pack_entry {
	git_oid id;
	uint64_t off;
	uint32_t crc;
};

/*
 * A pack being written into objdir/pack: objects go, deflated, into a
 * temporary file as they come (the count in the header is filled in at
 * the end), each with its id, offset and CRC-32 noted for the index;
 * pack_finish adds the SHA-1 trailer, writes the index (version 2), syncs
 * both and renames them into place, .pack first (libgit2 and git find a
 * pack by its .idx).
 */
struct pack {
	git_odb *odb;       /* the repository's: its caller refreshes it to read the pack */
	int fd;             /* the temporary pack, or -1 */
	char dir[PATH_MAX]; /* objdir/pack */
	char tmp[PATH_MAX];
	uint64_t off;       /* bytes so far, buffered ones included */
	uint8_t *wbuf;      /* write buffer */
	size_t wlen;
	struct pack_entry *e;
	size_t count, cap;
	bool skip_existing; /* leave out objects the repository holds */
	struct hmap seen;   /* the oids written (or held): first 8 bytes -> next 8 */
	git_oid *clash;     /* oids whose first 8 bytes another in seen has */
	size_t nclash, capclash;
	struct deflater d;
	char name[GIT_OID_HEXSZ + 1]; /* set by pack_finish */
};

/* objdir is a repository's objects directory; odb its object database.
 * skip_existing: objects odb holds are left out. */
int pack_open(struct pack *p, const char *objdir, git_odb *odb, bool skip_existing);
/* 1 when id is written already (or, skip_existing, held): leave it out;
 * else 0, and the caller writes it. */
int pack_seen(struct pack *p, const git_oid *id);
/* Whether pack_seen was asked about id (it is in p, going in, or held).
 * Ids are told apart by their first 16 bytes, and whole where two share
 * the first 8 (a peer can make that happen). */
bool pack_has(const struct pack *p, const git_oid *id);
/* Appends object id of len bytes, already deflated into z. */
int pack_put(struct pack *p, const git_oid *id, git_object_t type, size_t len, const uint8_t *z, size_t zlen);
/* Hashes, deduplicates, deflates and appends an object; *id_out its id. */
int pack_add(struct pack *p, git_object_t type, const void *data, size_t len, git_oid *id_out);
/* The trailer and the index, both synced and renamed into place (p->name
 * their hex checksum). Nothing is written for a pack of no object. */
int pack_finish(struct pack *p);
/* Frees p, removing its temporary file when it was not finished. */
void pack_free(struct pack *p);

/* ---- reading an index ---- */

/* A pack index (version 2) read whole, its trailer checked. */
struct pack_idx {
	uint8_t *data;
	size_t len;
	uint32_t n;                    /* objects */
	const uint8_t *ids;            /* n ids of 20 bytes, sorted */
	const uint8_t *crcs;           /* n CRC-32s of the packed entries */
	const uint8_t *offs;           /* n 31-bit offsets or large-table indexes */
	const uint8_t *large;          /* nlarge 64-bit offsets */
	size_t nlarge;
	const uint8_t *packsum;        /* the checksum of the pack it indexes */
};

/* 0; 1 for a file that is not a version-2 index (ix untouched); an error
 * (MCRDT_ECORRUPT, its message starting with who) for a damaged one or a
 * failed read; MCRDT_ETOOBIG, unread, for one larger than max bytes. */
int idx_load(const char *who, const char *path, size_t max, struct pack_idx *ix);
void idx_free(struct pack_idx *ix);

/* ---- listing ---- */

struct srcpack {
	char base[208]; /* "pack-<hex>" */
	uint64_t size;  /* of the .pack */
};
/* The packs of pack directory dir (an .idx with its .pack; kept: those
 * with a .keep too), smallest first, in *out (caller frees). None when
 * dir does not exist. */
int list_packs(const char *dir, bool kept, struct srcpack **out, size_t *n);
/* Calls fn for each loose object of objects directory objdir (hex: its
 * id in hex) until fn returns non-zero, which it returns. */
int loose_each(const char *objdir, int (*fn)(void *ctx, const git_oid *id, const char *hex), void *ctx);

/* ---- bringing in a peer's pack ---- */

/*
 * Takes into the repository objdir (whose object database is odb) the
 * objects of the peer pack at src that want marks (in the order of ix,
 * which idx_load loaded), every one checked as git's index-pack would: it
 * must inflate and hash to the id ix gives it, its CRC-32 must be the
 * index's. (A forged object taken in unchecked would hide the real one
 * from every later fetch.) src is read through a buffer, never mapped.
 * - When they are less than half of the pack (one its owner merged, a
 *   copy of the same mail), only they are read, each checked, into out: a
 *   pack being written into objdir, opened here with pack_open(out,
 *   objdir, odb, false) when its fd is -1 (out->seen keeps an object from
 *   going in twice); the caller finishes or frees it.
 * - Else, or when one of them is a delta, the pack comes whole as
 *   objdir/pack/base.pack and base.idx: copied to a temporary file there,
 *   the copy checked whole before it is synced and renamed, the index
 *   after it; a pack with deltas goes through libgit2's indexer into odb
 *   instead, which resolves them. odb is refreshed.
 * unpack, when not -1, is a directory where each blob of want proved is
 * left as a file named by its id in hex (40 digits), its content exactly
 * (not synced; a blob already there is not written again, and a write
 * that fails only leaves that blob out).
 * 0, with *objects increased by the objects taken and *bytes by the bytes
 * read or written; 1 when src is gone (its owner merged it: list again);
 * else an error naming who, nothing left behind in objdir but what out
 * holds (each object in it checked). Not thread-safe; a whole pack is
 * checked on two threads of its own.
 */
int pack_take(const char *who, const char *src, const struct pack_idx *ix, const uint8_t *want, const char *objdir,
	      const char *base, git_odb *odb, struct pack *out, int unpack, uint64_t *objects, uint64_t *bytes);

/* ---- consolidating ---- */

/*
 * When objdir/pack holds more than max_packs packs, merges the smaller
 * ones into one (see sync/pack.c for which) and removes those merged and
 * any loose objects merged with them. Safe while other processes add
 * packs to the same repository or read it: only what was merged goes,
 * after the merged pack is in place. *packs_out (may be NULL) gets the
 * count after; *merged (may be NULL) whether packs were removed (the
 * caller's odb still maps them).
 */
int pack_consolidate(const char *objdir, git_odb *odb, unsigned max_packs, unsigned *packs_out, bool *merged);

/* ---- reading whole blobs ---- */

/*
 * The packs of objdir as they are now, mapped, to read whole blobs from
 * without libgit2: inflated here and checked against their id with
 * sync/sha1.c (which uses the CPU's SHA instructions; libgit2's
 * collision-detecting SHA-1 is three times slower, and what it guards
 * against, two objects of one id made on purpose, needs the peer that
 * made them: one who can publish any body it likes anyway). Anything else (a
 * delta, a loose object, a pack added since, a damaged entry) is left to
 * libgit2, which also gives the errors. Once open, a reader is read-only:
 * any number of threads read from it, each with its own inflater.
 */
struct pack_reader;
int preader_open(const char *objdir, struct pack_reader **out);
/* A thread's inflater: zero-initialise, preader_z_end when done. */
struct preader_z {
	z_stream z;
	bool init;
};
void preader_z_end(struct preader_z *z);
/* 0: *data (malloc'd, *len bytes) is blob id, checked; 1: not read here
 * (ask libgit2); MCRDT_ENOMEM. */
int preader_blob(const struct pack_reader *r, struct preader_z *z, const uint8_t id[20], uint8_t **data,
		 size_t *len);
void preader_close(struct pack_reader *r);

#endif
