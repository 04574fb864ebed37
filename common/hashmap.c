/*
 * common/hashmap.c — see hashmap.h. Load factor at most 3/4.
 */
#include "common/hashmap.h"

#include <stdlib.h>
#include <string.h>

#define XXH_INLINE_ALL
#include <xxhash.h>

#include "common/error.h"

static inline size_t slot_of(const struct hmap *m, uint64_t key)
{
	return (size_t)XXH3_64bits(&key, sizeof key) & (m->cap - 1);
}

void hmap_init(struct hmap *m)
{
	m->slots = NULL;
	m->cap = 0;
	m->count = 0;
}

void hmap_free(struct hmap *m)
{
	free(m->slots);
	hmap_init(m);
}

static int rehash(struct hmap *m, size_t newcap)
{
	struct hmap_slot *old = m->slots;
	size_t oldcap = m->cap;
	struct hmap_slot *s = malloc(newcap * sizeof *s);
	if (!s)
		return err_set(MCRDT_ENOMEM, "out of memory growing a hash table to %zu slots", newcap);
	memset(s, 0xff, newcap * sizeof *s);
	m->slots = s;
	m->cap = newcap;
	for (size_t i = 0; i < oldcap; i++) {
		if (old[i].key == HMAP_EMPTY)
			continue;
		size_t j = slot_of(m, old[i].key);
		while (s[j].key != HMAP_EMPTY)
			j = (j + 1) & (newcap - 1);
		s[j] = old[i];
	}
	free(old);
	return 0;
}

int hmap_reserve(struct hmap *m, size_t n)
{
	size_t cap = m->cap ? m->cap : 16;
	while (n + 1 > cap / 4 * 3)
		cap *= 2;
	return cap == m->cap ? 0 : rehash(m, cap);
}

static int put(struct hmap *m, uint64_t key, uint64_t val, int replace)
{
	if (key == HMAP_EMPTY)
		return err_set(MCRDT_EINVAL, "reserved hash key");
	if (m->cap == 0 || m->count + 1 > m->cap / 4 * 3) {
		int rc = hmap_reserve(m, m->count + 1);
		if (rc)
			return rc;
	}
	size_t i = slot_of(m, key);
	while (m->slots[i].key != HMAP_EMPTY) {
		if (m->slots[i].key == key) {
			if (!replace)
				return MCRDT_EEXISTS;
			m->slots[i].val = val;
			return 0;
		}
		i = (i + 1) & (m->cap - 1);
	}
	m->slots[i].key = key;
	m->slots[i].val = val;
	m->count++;
	return 0;
}

int hmap_put(struct hmap *m, uint64_t key, uint64_t val)
{
	return put(m, key, val, 1);
}

int hmap_put_new(struct hmap *m, uint64_t key, uint64_t val)
{
	return put(m, key, val, 0);
}

void hmap_prefetch(const struct hmap *m, uint64_t key)
{
	if (m->cap)
		__builtin_prefetch(&m->slots[slot_of(m, key)], 1);
}

uint64_t *hmap_get(const struct hmap *m, uint64_t key)
{
	if (m->cap == 0)
		return NULL;
	size_t i = slot_of(m, key);
	while (m->slots[i].key != HMAP_EMPTY) {
		if (m->slots[i].key == key)
			return &m->slots[i].val;
		i = (i + 1) & (m->cap - 1);
	}
	return NULL;
}

int hmap_del(struct hmap *m, uint64_t key)
{
	if (m->cap == 0)
		return 0;
	size_t mask = m->cap - 1;
	size_t i = slot_of(m, key);
	while (m->slots[i].key != key) {
		if (m->slots[i].key == HMAP_EMPTY)
			return 0;
		i = (i + 1) & mask;
	}
	/* Backward-shift: pull later members of the probe run into the hole. */
	size_t hole = i;
	for (size_t j = (i + 1) & mask; m->slots[j].key != HMAP_EMPTY; j = (j + 1) & mask) {
		size_t home = slot_of(m, m->slots[j].key);
		/* j may move to hole iff home is not cyclically within (hole, j]. */
		if (((j - home) & mask) >= ((j - hole) & mask)) {
			m->slots[hole] = m->slots[j];
			hole = j;
		}
	}
	m->slots[hole].key = HMAP_EMPTY;
	m->count--;
	/* Give memory back once the table is mostly empty (hysteresis: the
	 * shrunk table is still at most half full). */
	if (m->cap > 64 && m->count < m->cap / 8)
		rehash(m, m->cap / 4); /* on ENOMEM the table just stays large */
	return 1;
}

size_t hmap_bytes(const struct hmap *m)
{
	return m->cap * sizeof(struct hmap_slot);
}

int hmap_next(const struct hmap *m, size_t *iter, const struct hmap_slot **out)
{
	for (size_t i = *iter; i < m->cap; i++) {
		if (m->slots[i].key != HMAP_EMPTY) {
			*out = &m->slots[i];
			*iter = i + 1;
			return 1;
		}
	}
	*iter = m->cap;
	return 0;
}

uint64_t hmap_key_names(const char *space, const char *name, uint64_t salt)
{
	uint64_t k = XXH3_64bits_withSeed(name, strlen(name), XXH3_64bits(space, strlen(space)) ^ salt);
	return k == HMAP_EMPTY ? k - 1 : k;
}
