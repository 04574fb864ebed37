/*
 * sync/sha1.h — SHA-1 (FIPS 180-4), for the git transport: the ids of the
 * objects it writes and reads (sg_object_id in sync/pack.c) and the
 * trailers of its packs and indexes. libgit2 exports no general-purpose
 * SHA-1, and its git_odb_hash is three times slower.
 *
 * Not for anything that needs collision resistance. Pure; thread-safe.
 */
#ifndef MCRDT_SYNC_SHA1_H
#define MCRDT_SYNC_SHA1_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct sha1_ctx {
	uint32_t h[5];
	uint64_t len;       /* bytes so far */
	uint8_t buf[64];
	size_t nbuf;
};

void sha1_init(struct sha1_ctx *c);
void sha1_update(struct sha1_ctx *c, const void *data, size_t len);
void sha1_final(struct sha1_ctx *c, uint8_t out[20]);
/* The x86 SHA extensions are used when the CPU has them. Tests turn them
 * off (false) and back on (true, which returns whether the CPU has them);
 * not for use while other threads hash. */
bool sha1_accelerate(bool on);

#endif
