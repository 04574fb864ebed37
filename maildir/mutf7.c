/*
 * maildir/mutf7.c — modified UTF-7 (RFC 3501 section 5.1.3). See mutf7.h.
 *
 * Each direction is one pass over the input, run twice: first with no
 * output buffer, to validate and to count the bytes the result needs, then
 * into a buffer of exactly that size. So the only allocation is the result,
 * and a rejected input allocates nothing.
 *
 * The decoder refuses every spelling the encoder would not produce
 * (printable ASCII inside a shift sequence, two shift sequences back to
 * back, spare BASE64 characters, non-zero padding bits). Maildir folder
 * names are directory names: if two spellings decoded to one name, two
 * directories could claim the same mailbox.
 */
#include "maildir/mutf7.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>

#include "common/error.h"

/* Where a pass writes: nowhere while measuring (buf NULL), always counting. */
struct sink {
	char *buf;
	size_t n;
};

static void put(struct sink *o, char c)
{
	if (o->buf)
		o->buf[o->n] = c;
	o->n++;
}

/* Characters that stand for themselves; '&' also does, but as "&-". */
static bool is_literal(uint32_t c)
{
	return c >= 0x20 && c <= 0x7e;
}

/* ---- encoding ---- */

static const char b64_alphabet[] =
	"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+,";

/* Bits of a shift sequence not yet written as a BASE64 character. */
struct bits {
	uint32_t v;     /* only the low n bits are meaningful */
	unsigned n;     /* < 6 between calls */
};

static void push_unit(struct sink *o, struct bits *b, uint32_t unit)
{
	b->v = b->v << 16 | unit;
	b->n += 16;
	while (b->n >= 6) {
		b->n -= 6;
		put(o, b64_alphabet[(b->v >> b->n) & 0x3f]);
	}
	b->v &= (1u << b->n) - 1;
}

/* Ends a shift sequence: the last bits, zero-padded to a character, and '-'. */
static void close_run(struct sink *o, struct bits *b)
{
	if (b->n)
		put(o, b64_alphabet[(b->v << (6 - b->n)) & 0x3f]);
	put(o, '-');
	b->v = 0;
	b->n = 0;
}

/* Reads the code point starting at s[*i] and moves *i past it. Accepts
 * exactly the shortest forms of U+0000..U+10FFFF less the surrogates. */
static int utf8_next(const unsigned char *s, size_t len, size_t *i, uint32_t *cp)
{
	size_t at = *i, n;
	unsigned char c = s[at];
	uint32_t v, min;

	if (c < 0x80) {
		*cp = c;
		*i = at + 1;
		return 0;
	}
	if ((c & 0xe0) == 0xc0) {
		n = 2, v = c & 0x1f, min = 0x80;
	} else if ((c & 0xf0) == 0xe0) {
		n = 3, v = c & 0x0f, min = 0x800;
	} else if ((c & 0xf8) == 0xf0) {
		n = 4, v = c & 0x07, min = 0x10000;
	} else {
		return err_set(MCRDT_EINVAL,
			       "invalid UTF-8 at byte %zu: 0x%02x cannot start a character",
			       at, c);
	}
	for (size_t k = 1; k < n; k++) {
		if (at + k >= len || (s[at + k] & 0xc0) != 0x80)
			return err_set(MCRDT_EINVAL,
				       "invalid UTF-8 at byte %zu: truncated %zu-byte sequence",
				       at, n);
		v = v << 6 | (s[at + k] & 0x3f);
	}
	if (v < min)
		return err_set(MCRDT_EINVAL,
			       "invalid UTF-8 at byte %zu: overlong %zu-byte form of U+%04X",
			       at, n, (unsigned)v);
	if (v >= 0xd800 && v <= 0xdfff)
		return err_set(MCRDT_EINVAL,
			       "invalid UTF-8 at byte %zu: surrogate U+%04X is not a character",
			       at, (unsigned)v);
	if (v > 0x10ffff)
		return err_set(MCRDT_EINVAL,
			       "invalid UTF-8 at byte %zu: U+%X is beyond U+10FFFF",
			       at, (unsigned)v);
	*cp = v;
	*i = at + n;
	return 0;
}

static int encode_pass(const unsigned char *s, size_t len, struct sink *o)
{
	struct bits b = { 0, 0 };
	bool in_run = false;
	size_t i = 0;

	while (i < len) {
		size_t at = i;
		uint32_t cp = 0; /* utf8_next sets it whenever rc is 0 */
		int rc = utf8_next(s, len, &i, &cp);
		if (rc)
			return rc;
		if (cp == 0)
			return err_set(MCRDT_EINVAL,
				       "NUL at byte %zu: a mailbox name cannot contain U+0000",
				       at);
		if (is_literal(cp)) {
			if (in_run) {
				close_run(o, &b);
				in_run = false;
			}
			put(o, (char)cp);
			if (cp == '&')
				put(o, '-');
			continue;
		}
		if (!in_run) {
			put(o, '&');
			in_run = true;
		}
		if (cp >= 0x10000) {
			cp -= 0x10000;
			push_unit(o, &b, 0xd800 | cp >> 10);
			push_unit(o, &b, 0xdc00 | (cp & 0x3ff));
		} else {
			push_unit(o, &b, cp);
		}
	}
	if (in_run)
		close_run(o, &b);
	return 0;
}

/* ---- decoding ---- */

static int b64_value(unsigned char c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	if (c == '+')
		return 62;
	if (c == ',')
		return 63;
	return -1;
}

static void put_utf8(struct sink *o, uint32_t cp)
{
	if (cp < 0x80) {
		put(o, (char)cp);
	} else if (cp < 0x800) {
		put(o, (char)(0xc0 | cp >> 6));
		put(o, (char)(0x80 | (cp & 0x3f)));
	} else if (cp < 0x10000) {
		put(o, (char)(0xe0 | cp >> 12));
		put(o, (char)(0x80 | (cp >> 6 & 0x3f)));
		put(o, (char)(0x80 | (cp & 0x3f)));
	} else {
		put(o, (char)(0xf0 | cp >> 18));
		put(o, (char)(0x80 | (cp >> 12 & 0x3f)));
		put(o, (char)(0x80 | (cp >> 6 & 0x3f)));
		put(o, (char)(0x80 | (cp & 0x3f)));
	}
}

/* Decodes the shift sequence whose '&' is at s[*i] (and is not "&-"), and
 * moves *i past its '-'. */
static int decode_run(const unsigned char *s, size_t len, size_t *i, struct sink *o)
{
	size_t start = *i, at = start + 1, units = 0;
	uint32_t bits = 0, high = 0; /* high: a high surrogate awaiting its pair */
	unsigned nbits = 0;

	for (;; at++) {
		if (at == len)
			return err_set(MCRDT_EINVAL,
				       "modified UTF-7: '&' at byte %zu is never closed by '-'",
				       start);
		if (s[at] == '-')
			break;
		int v = b64_value(s[at]);
		if (v < 0)
			return err_set(MCRDT_EINVAL,
				       "modified UTF-7: byte %zu (0x%02x) is not modified BASE64",
				       at, s[at]);
		bits = bits << 6 | (uint32_t)v;
		nbits += 6;
		if (nbits < 16)
			continue;
		nbits -= 16;
		uint32_t u = bits >> nbits & 0xffff, cp;
		bits &= (1u << nbits) - 1;
		units++;
		if (high) {
			if (u < 0xdc00 || u > 0xdfff)
				return err_set(MCRDT_EINVAL,
					       "modified UTF-7: high surrogate U+%04X before byte %zu is not followed by a low one",
					       (unsigned)high, at);
			cp = 0x10000 + ((high - 0xd800) << 10) + (u - 0xdc00);
			high = 0;
		} else if (u >= 0xd800 && u <= 0xdbff) {
			high = u;
			continue;
		} else if (u >= 0xdc00 && u <= 0xdfff) {
			return err_set(MCRDT_EINVAL,
				       "modified UTF-7: low surrogate U+%04X before byte %zu has no high one",
				       (unsigned)u, at);
		} else {
			cp = u;
		}
		if (cp == 0)
			return err_set(MCRDT_EINVAL,
				       "modified UTF-7: the run at byte %zu encodes U+0000",
				       start);
		if (is_literal(cp))
			return err_set(MCRDT_EINVAL,
				       "modified UTF-7: the run at byte %zu encodes '%c', which must be literal",
				       start, (char)cp);
		put_utf8(o, cp);
	}
	if (units == 0)
		return err_set(MCRDT_EINVAL,
			       "modified UTF-7: the run at byte %zu encodes no character",
			       start);
	if (high)
		return err_set(MCRDT_EINVAL,
			       "modified UTF-7: the run at byte %zu ends in an unpaired high surrogate",
			       start);
	if (nbits >= 6)
		return err_set(MCRDT_EINVAL,
			       "modified UTF-7: the run at byte %zu has a superfluous BASE64 character",
			       start);
	if (bits)
		return err_set(MCRDT_EINVAL,
			       "modified UTF-7: the run at byte %zu ends in non-zero padding bits",
			       start);
	*i = at + 1;
	return 0;
}

static int decode_pass(const unsigned char *s, size_t len, struct sink *o)
{
	size_t i = 0;

	while (i < len) {
		unsigned char c = s[i];
		if (c >= 0x80)
			return err_set(MCRDT_EINVAL,
				       "modified UTF-7: byte %zu is 0x%02x; the encoding is 7-bit",
				       i, c);
		if (!is_literal(c))
			return err_set(MCRDT_EINVAL,
				       "modified UTF-7: control character 0x%02x at byte %zu must be BASE64-encoded",
				       c, i);
		if (c != '&') {
			put(o, (char)c);
			i++;
			continue;
		}
		if (i + 1 < len && s[i + 1] == '-') {
			put(o, '&');
			i += 2;
			continue;
		}
		int rc = decode_run(s, len, &i, o);
		if (rc)
			return rc;
		/* The encoder makes one run of each stretch of non-literals. */
		if (i + 1 < len && s[i] == '&' && s[i + 1] != '-')
			return err_set(MCRDT_EINVAL,
				       "modified UTF-7: the runs ending and starting at byte %zu must be one",
				       i);
	}
	return 0;
}

/* ---- the API ---- */

/* Validates and measures with pass, then runs it again into the result. */
static int run(int (*pass)(const unsigned char *, size_t, struct sink *),
	       const char *what, const char *in, size_t len, char **out)
{
	if (!out || (!in && len))
		return err_set(MCRDT_EINVAL, "%s: NULL argument", what);
	if (len > MUTF7_MAX_INPUT)
		return err_set(MCRDT_EINVAL, "%s: input of %zu bytes is over the %zu-byte limit",
			       what, len, MUTF7_MAX_INPUT);

	const unsigned char *s = (const unsigned char *)in;
	struct sink o = { NULL, 0 };
	int rc = pass(s, len, &o);
	if (rc)
		return rc;
	char *buf = malloc(o.n + 1);
	if (!buf)
		return err_set(MCRDT_ENOMEM, "%s: out of memory for %zu bytes", what, o.n + 1);
	o.buf = buf;
	o.n = 0;
	/* Cannot fail: the same input passed the same checks just above. */
	pass(s, len, &o);
	buf[o.n] = '\0';
	*out = buf;
	return 0;
}

int mutf7_encode(const char *utf8, size_t len, char **out)
{
	return run(encode_pass, "mutf7_encode", utf8, len, out);
}

int mutf7_decode(const char *mutf7, size_t len, char **out)
{
	return run(decode_pass, "mutf7_decode", mutf7, len, out);
}
