/*
 * sync/sha1.c — SHA-1, straight from FIPS 180-4 section 6.1.
 */
#include "sync/sha1.h"

#include <stdatomic.h>
#include <string.h>
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>
#define HAVE_SHA_NI 1
#endif

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

#ifdef HAVE_SHA_NI
/*
 * The same compression with the x86 SHA extensions, several times faster.
 * State lanes hold A..D high to low; each group of four rounds takes its
 * four schedule words from the rolling m[], which sha1msg1/sha1msg2 extend
 * as W[t] = rol1(W[t-3] ^ W[t-8] ^ W[t-14] ^ W[t-16]).
 */
#define NI_GROUP(g)                                                                                            \
	do {                                                                                                   \
		if ((g) >= 4)                                                                                  \
			m[(g) % 4] = _mm_sha1msg2_epu32(                                                       \
				_mm_xor_si128(_mm_sha1msg1_epu32(m[(g) % 4], m[((g) + 1) % 4]), m[((g) + 2) % 4]), \
				m[((g) + 3) % 4]);                                                             \
		e = (g) == 0 ? _mm_add_epi32(e0, m[0]) : _mm_sha1nexte_epu32(prev, m[(g) % 4]);             \
		prev = abcd;                                                                                   \
		abcd = _mm_sha1rnds4_epu32(abcd, e, (g) / 5);                                                  \
	} while (0)

__attribute__((target("sha,sse4.1"))) static void blocks_ni(uint32_t h[5], const uint8_t *p, size_t n)
{
	const __m128i rev = _mm_set_epi64x(0x0001020304050607LL, 0x08090a0b0c0d0e0fLL);
	__m128i abcd = _mm_shuffle_epi32(_mm_loadu_si128((const __m128i *)h), 0x1b);
	__m128i e0 = _mm_set_epi32((int)h[4], 0, 0, 0);
	for (; n; n--, p += 64) {
		__m128i m[4], e, prev = abcd, abcd0 = abcd;
		for (int i = 0; i < 4; i++)
			m[i] = _mm_shuffle_epi8(_mm_loadu_si128((const __m128i *)(p + 16 * i)), rev);
		NI_GROUP(0); NI_GROUP(1); NI_GROUP(2); NI_GROUP(3); NI_GROUP(4);
		NI_GROUP(5); NI_GROUP(6); NI_GROUP(7); NI_GROUP(8); NI_GROUP(9);
		NI_GROUP(10); NI_GROUP(11); NI_GROUP(12); NI_GROUP(13); NI_GROUP(14);
		NI_GROUP(15); NI_GROUP(16); NI_GROUP(17); NI_GROUP(18); NI_GROUP(19);
		e0 = _mm_sha1nexte_epu32(prev, e0);
		abcd = _mm_add_epi32(abcd, abcd0);
	}
	_mm_storeu_si128((__m128i *)h, _mm_shuffle_epi32(abcd, 0x1b));
	h[4] = (uint32_t)_mm_extract_epi32(e0, 3);
}
#undef NI_GROUP

#endif

/* -1: not known yet (threads that race to find out all find the same) */
static _Atomic int g_ni = -1;

static bool ni_ok(void)
{
#ifdef HAVE_SHA_NI
	return __builtin_cpu_supports("sha") && __builtin_cpu_supports("sse4.1");
#else
	return false;
#endif
}

bool sha1_accelerate(bool on)
{
	bool ni = on && ni_ok();
	atomic_store_explicit(&g_ni, ni, memory_order_relaxed);
	return ni;
}

static void blocks(uint32_t h[5], const uint8_t *p, size_t n)
{
#ifdef HAVE_SHA_NI
	int ni = atomic_load_explicit(&g_ni, memory_order_relaxed);
	if (ni < 0)
		atomic_store_explicit(&g_ni, ni = ni_ok(), memory_order_relaxed);
	if (ni) {
		blocks_ni(h, p, n);
		return;
	}
#endif
	for (; n; n--, p += 64)
		block(h, p);
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
		blocks(c->h, c->buf, 1);
		c->nbuf = 0;
	}
	blocks(c->h, p, len / 64);
	p += len / 64 * 64;
	len %= 64;
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
