/*
 * common/varint.h — LEB128 varints and a bounds-checked reader, shared by
 * the op codec (sync/) and the model snapshot (crdt/).
 *
 * The reader never reads past its end: a failure sets err (the first one
 * wins, with its message recorded) and later reads return zeros, so a
 * decoder checks once at the end instead of after every field.
 */
#ifndef MCRDT_COMMON_VARINT_H
#define MCRDT_COMMON_VARINT_H

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/error.h"

#define VARINT_MAX 10

/* Writes v at p (room for VARINT_MAX bytes); returns the bytes used. */
static inline size_t varint_put(uint8_t *p, uint64_t v)
{
	size_t n = 0;
	while (v >= 0x80) {
		p[n++] = (uint8_t)(v | 0x80);
		v >>= 7;
	}
	p[n++] = (uint8_t)v;
	return n;
}

/* A growable byte buffer; a failed growth sets err and later puts do nothing. */
struct vbuf {
	uint8_t *p;
	size_t len, cap;
	int err;
};

static inline int vbuf_reserve(struct vbuf *b, size_t more)
{
	if (b->err)
		return b->err;
	if (b->len + more <= b->cap)
		return 0;
	size_t cap = b->cap ? b->cap : 256;
	while (cap < b->len + more)
		cap *= 2;
	uint8_t *np = realloc(b->p, cap);
	if (!np)
		return b->err = err_set(MCRDT_ENOMEM, "out of memory growing a buffer to %zu bytes", cap);
	b->p = np;
	b->cap = cap;
	return 0;
}

static inline void vbuf_free(struct vbuf *b)
{
	free(b->p);
	memset(b, 0, sizeof *b);
}

static inline void vput(struct vbuf *b, uint64_t v)
{
	if (vbuf_reserve(b, VARINT_MAX) == 0)
		b->len += varint_put(b->p + b->len, v);
}

/* Length-prefixed bytes. */
static inline void vput_bytes(struct vbuf *b, const void *s, size_t n)
{
	vput(b, n);
	if (vbuf_reserve(b, n) == 0 && n) {
		memcpy(b->p + b->len, s, n);
		b->len += n;
	}
}

struct vreader {
	const uint8_t *p, *end;
	int err;
};

static inline void vreader_fail(struct vreader *r, const char *what)
{
	if (!r->err)
		r->err = err_set(MCRDT_ECORRUPT, "%s", what);
}

static inline uint64_t vread(struct vreader *r)
{
	uint64_t v = 0;
	for (int shift = 0; shift < 64; shift += 7) {
		if (r->p >= r->end) {
			vreader_fail(r, "data ends inside a number");
			return 0;
		}
		uint8_t c = *r->p++;
		if (shift == 63 && c > 1) {
			vreader_fail(r, "number does not fit 64 bits");
			return 0;
		}
		v |= (uint64_t)(c & 0x7f) << shift;
		if (!(c & 0x80))
			return v;
	}
	vreader_fail(r, "number longer than 10 bytes");
	return 0;
}

/* A number that must not exceed max; what names it in the error. */
static inline uint64_t vread_max(struct vreader *r, uint64_t max, const char *what)
{
	uint64_t v = vread(r);
	if (!r->err && v > max) {
		r->err = err_set(MCRDT_ECORRUPT, "%s %llu over its limit %llu", what,
				 (unsigned long long)v, (unsigned long long)max);
	}
	return r->err ? 0 : v;
}

/* n raw bytes in place (NULL after a failure). */
static inline const uint8_t *vread_bytes(struct vreader *r, uint64_t n, const char *what)
{
	if (r->err)
		return NULL;
	if ((uint64_t)(r->end - r->p) < n) {
		r->err = err_set(MCRDT_ECORRUPT, "%s runs past the end of the data", what);
		return NULL;
	}
	const uint8_t *s = r->p;
	r->p += n;
	return s;
}

#endif
