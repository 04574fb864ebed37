/*
 * sync/sha1.c — SHA-1, straight from FIPS 180-4 section 6.1.
 */
#include "sync/sha1.h"

#include <string.h>

static inline uint32_t rol(uint32_t x, unsigned n)
{
	return (x << n) | (x >> (32 - n));
}

/* The 80 rounds unrolled over a rolling 16-word schedule. */
#define W(t) (w[(t) & 15])
#define NEXT(t) (W(t) = rol(W((t) + 13) ^ W((t) + 8) ^ W((t) + 2) ^ W(t), 1))
#define R0(a, b, c, d, e, t) (e += rol(a, 5) + (d ^ (b & (c ^ d))) + 0x5a827999 + W(t), b = rol(b, 30))
#define R1(a, b, c, d, e, t) (e += rol(a, 5) + (d ^ (b & (c ^ d))) + 0x5a827999 + NEXT(t), b = rol(b, 30))
#define R2(a, b, c, d, e, t) (e += rol(a, 5) + (b ^ c ^ d) + 0x6ed9eba1 + NEXT(t), b = rol(b, 30))
#define R3(a, b, c, d, e, t) (e += rol(a, 5) + (((b | c) & d) | (b & c)) + 0x8f1bbcdc + NEXT(t), b = rol(b, 30))
#define R4(a, b, c, d, e, t) (e += rol(a, 5) + (b ^ c ^ d) + 0xca62c1d6 + NEXT(t), b = rol(b, 30))
#define FIVE(R, t)                      \
	do {                            \
		R(a, b, c, d, e, (t));     \
		R(e, a, b, c, d, (t) + 1); \
		R(d, e, a, b, c, (t) + 2); \
		R(c, d, e, a, b, (t) + 3); \
		R(b, c, d, e, a, (t) + 4); \
	} while (0)

static void block(uint32_t h[5], const uint8_t *p)
{
	uint32_t w[16];
	for (int t = 0; t < 16; t++)
		w[t] = (uint32_t)p[4 * t] << 24 | (uint32_t)p[4 * t + 1] << 16 | (uint32_t)p[4 * t + 2] << 8 |
		       (uint32_t)p[4 * t + 3];
	uint32_t a = h[0], b = h[1], c = h[2], d = h[3], e = h[4];
	FIVE(R0, 0);
	FIVE(R0, 5);
	FIVE(R0, 10);
	R0(a, b, c, d, e, 15);
	R1(e, a, b, c, d, 16);
	R1(d, e, a, b, c, 17);
	R1(c, d, e, a, b, 18);
	R1(b, c, d, e, a, 19);
	FIVE(R2, 20);
	FIVE(R2, 25);
	FIVE(R2, 30);
	FIVE(R2, 35);
	FIVE(R3, 40);
	FIVE(R3, 45);
	FIVE(R3, 50);
	FIVE(R3, 55);
	FIVE(R4, 60);
	FIVE(R4, 65);
	FIVE(R4, 70);
	FIVE(R4, 75);
	h[0] += a;
	h[1] += b;
	h[2] += c;
	h[3] += d;
	h[4] += e;
}

void sha1_init(struct sha1_ctx *c)
{
	static const uint32_t iv[5] = { 0x67452301, 0xefcdab89, 0x98badcfe, 0x10325476, 0xc3d2e1f0 };
	memcpy(c->h, iv, sizeof iv);
	c->len = 0;
	c->nbuf = 0;
}

void sha1_update(struct sha1_ctx *c, const void *data, size_t len)
{
	const uint8_t *p = data;
	c->len += len;
	if (c->nbuf) {
		size_t take = 64 - c->nbuf < len ? 64 - c->nbuf : len;
		memcpy(c->buf + c->nbuf, p, take);
		c->nbuf += take;
		p += take;
		len -= take;
		if (c->nbuf < 64)
			return;
		block(c->h, c->buf);
		c->nbuf = 0;
	}
	for (; len >= 64; p += 64, len -= 64)
		block(c->h, p);
	memcpy(c->buf, p, len);
	c->nbuf = len;
}

void sha1_final(struct sha1_ctx *c, uint8_t out[20])
{
	uint64_t bits = c->len * 8;
	uint8_t pad[72] = { 0x80 };
	size_t npad = (c->nbuf < 56 ? 56 : 120) - c->nbuf;
	for (int i = 0; i < 8; i++)
		pad[npad + (size_t)i] = (uint8_t)(bits >> (56 - 8 * i));
	sha1_update(c, pad, npad + 8);
	for (int i = 0; i < 5; i++) {
		out[4 * i] = (uint8_t)(c->h[i] >> 24);
		out[4 * i + 1] = (uint8_t)(c->h[i] >> 16);
		out[4 * i + 2] = (uint8_t)(c->h[i] >> 8);
		out[4 * i + 3] = (uint8_t)c->h[i];
	}
}
