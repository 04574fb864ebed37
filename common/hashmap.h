/*
 * common/hashmap.h — an open-addressing map from 64-bit keys to 64-bit values.
 *
 * The one hash table of the engine: dots, (space, uid) pairs and interned
 * indexes all pack into 64 bits, so one compact table (16 bytes a slot, no
 * allocation per entry) serves them all. Linear probing with backward-shift
 * deletion: no tombstones, lookups stay short after many removals.
 *
 * HMAP_EMPTY (all ones) is reserved and cannot be stored as a key.
 * Not thread-safe: the owner serialises access.
 */
#ifndef MCRDT_COMMON_HASHMAP_H
#define MCRDT_COMMON_HASHMAP_H

#include <stddef.h>
#include <stdint.h>

#define HMAP_EMPTY UINT64_MAX

struct hmap_slot {
	uint64_t key;
	uint64_t val;
};

struct hmap {
	struct hmap_slot *slots;
	size_t cap;   /* power of two, or 0 before the first insert */
	size_t count;
};

void hmap_init(struct hmap *m);
void hmap_free(struct hmap *m);
/* Grows so that n entries fit without a rehash. 0 or MCRDT_ENOMEM. */
int hmap_reserve(struct hmap *m, size_t n);
/* Inserts or overwrites. 0, MCRDT_ENOMEM, or MCRDT_EINVAL for HMAP_EMPTY. */
int hmap_put(struct hmap *m, uint64_t key, uint64_t val);
/* Inserts key only if absent (one probe): 0, MCRDT_EEXISTS (nothing
 * changed), MCRDT_ENOMEM or MCRDT_EINVAL. */
int hmap_put_new(struct hmap *m, uint64_t key, uint64_t val);
/* Hints that key's slot will be touched soon (bulk inserts hide the cache
 * miss of one key behind the work on earlier ones). */
void hmap_prefetch(const struct hmap *m, uint64_t key);
/* Returns a pointer to the value, or NULL. Valid until the next put/del. */
uint64_t *hmap_get(const struct hmap *m, uint64_t key);
/* Removes key; returns 1 if it was there, else 0. */
int hmap_del(struct hmap *m, uint64_t key);
/* A key for the pair of strings (space, name), salt mixed in: XXH3, never
 * HMAP_EMPTY. (Two pairs may share a key: compare the strings on a hit.) */
uint64_t hmap_key_names(const char *space, const char *name, uint64_t salt);
/* Bytes the table holds in memory. */
size_t hmap_bytes(const struct hmap *m);

/* Iteration: for (size_t i = 0; hmap_next(m, &i, &slot); ) ... ; do not
 * modify the map while iterating. */
int hmap_next(const struct hmap *m, size_t *iter, const struct hmap_slot **out);

#endif
