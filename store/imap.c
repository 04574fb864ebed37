/*
 * store/imap.c — IMAP sequence sets and flags (see store/imap.h).
 *
 * Sets are sorted arrays of ranges rather than bitmaps or trees: the
 * store's sets come from IMAP text a client wrote (a handful of ranges)
 * or from UIDs listed in ascending order (one growing last range), and
 * both cases stay small and cheap to search.
 */
#include "store/imap.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/error.h"
#include "common/grow.h"
#include "crdt/op.h"

_Static_assert(IMAP_FLAGS_MAX == CRDT_FLAGS_MAX, "a parsed flag list must fit one op");

/* ---- quoting ---- */

static bool printable(unsigned char c)
{
	return c >= 0x20 && c <= 0x7e;
}

const char *store_quote(char buf[STORE_QUOTE_SIZE], const void *s, size_t len)
{
	static const char hex[] = "0123456789abcdef";
	const unsigned char *p = s;
	/* Leave room for the closing quote, "..." and the NUL. */
	const size_t limit = STORE_QUOTE_SIZE - 5;
	size_t o = 0, i;

	buf[o++] = '"';
	for (i = 0; i < len; i++) {
		unsigned char c = p[i];
		size_t w = printable(c) ? 1 : 4;
		if (o + w > limit)
			break;
		if (w == 1) {
			buf[o++] = (char)c;
		} else {
			buf[o++] = '\\';
			buf[o++] = 'x';
			buf[o++] = hex[c >> 4];
			buf[o++] = hex[c & 15];
		}
	}
	buf[o++] = '"';
	if (i < len) {
		memcpy(buf + o, "...", 3);
		o += 3;
	}
	buf[o] = '\0';
	return buf;
}

/* One byte for a message: 'x', or "byte 0x01" when it would not print. */
static const char *byte_name(char buf[16], unsigned char c)
{
	if (printable(c))
		snprintf(buf, 16, "'%c'", c);
	else
		snprintf(buf, 16, "byte 0x%02x", c);
	return buf;
}

/* ---- sequence sets ---- */

bool imap_set_has(const struct imap_set *s, uint32_t v)
{
	/* The last range starting at or below v is the only candidate. */
	size_t lo = 0, hi = s->n;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (s->r[mid].lo <= v)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo > 0 && v <= s->r[lo - 1].hi;
}

/* Adds lo..hi (lo <= hi) at the tail: extends the last range when lo..hi
 * starts inside it or right after it, else appends a range, without
 * looking further back. This keeps a set built in ascending order O(1)
 * per number; imap_set_parse appends every element this way and sorts
 * once at the end (normalise). */
static int tail_add(struct imap_set *s, uint32_t lo, uint32_t hi)
{
	if (s->n && lo >= s->r[s->n - 1].lo && (uint64_t)lo <= (uint64_t)s->r[s->n - 1].hi + 1) {
		if (hi > s->r[s->n - 1].hi)
			s->r[s->n - 1].hi = hi;
		return 0;
	}
	int rc = GROW(s->r, s->cap, s->n + 1);
	if (rc == 0)
		s->r[s->n++] = (struct imap_range){ lo, hi };
	return rc;
}

int imap_set_add(struct imap_set *s, uint32_t lo, uint32_t hi)
{
	int rc;
	if (lo > hi) {
		uint32_t t = lo;
		lo = hi;
		hi = t;
	}
	if (s->n == 0 || lo >= s->r[s->n - 1].lo)
		return tail_add(s, lo, hi);

	/* Ranges [i, j) overlap or touch lo..hi: i is the first whose hi
	 * reaches lo - 1, j the first starting after hi + 1. Both searches
	 * work because disjoint sorted ranges are sorted by hi too. */
	size_t a = 0, b = s->n;
	while (a < b) {
		size_t mid = a + (b - a) / 2;
		if ((uint64_t)s->r[mid].hi + 1 < lo)
			a = mid + 1;
		else
			b = mid;
	}
	size_t i = a;
	b = s->n;
	while (a < b) {
		size_t mid = a + (b - a) / 2;
		if ((uint64_t)s->r[mid].lo <= (uint64_t)hi + 1)
			a = mid + 1;
		else
			b = mid;
	}
	size_t j = a;

	if (i == j) {
		if ((rc = GROW(s->r, s->cap, s->n + 1)))
			return rc;
		memmove(s->r + i + 1, s->r + i, (s->n - i) * sizeof *s->r);
		s->r[i] = (struct imap_range){ lo, hi };
		s->n++;
		return 0;
	}
	if (s->r[i].lo < lo)
		lo = s->r[i].lo;
	if (s->r[j - 1].hi > hi)
		hi = s->r[j - 1].hi;
	s->r[i] = (struct imap_range){ lo, hi };
	memmove(s->r + i + 1, s->r + j, (s->n - j) * sizeof *s->r);
	s->n -= j - i - 1;
	return 0;
}

void imap_set_free(struct imap_set *s)
{
	free(s->r);
	s->r = NULL;
	s->n = s->cap = 0;
}

__attribute__((format(printf, 3, 4)))
static int set_fail(const char *text, size_t len, const char *fmt, ...)
{
	char what[160], q[STORE_QUOTE_SIZE];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(what, sizeof what, fmt, ap);
	va_end(ap);
	return err_set(MCRDT_EINVAL, "invalid sequence set %s: %s", store_quote(q, text, len), what);
}

/*
 * Reads a seq-number at text[*at]: "*" (*is_star set) or an nz-number
 * into *v. 1 when no number starts there (the caller knows what was
 * expected), 0 when one was read (*at moves past it), or MCRDT_EINVAL.
 */
static int seq_number(const char *text, size_t len, size_t *at, uint32_t *v, bool *is_star)
{
	size_t i = *at;
	*is_star = false;
	*v = 0;
	if (text[i] == '*') {
		*is_star = true;
		*at = i + 1;
		return 0;
	}
	if (text[i] == '$')
		return set_fail(text, len, "\"$\" at offset %zu, the saved search result of RFC 5182, "
				"is not supported", i);
	if (text[i] < '0' || text[i] > '9')
		return 1;
	if (text[i] == '0') {
		if (text[i + 1] >= '0' && text[i + 1] <= '9')
			return set_fail(text, len, "number with a leading zero at offset %zu", i);
		return set_fail(text, len, "0 at offset %zu; numbers start at 1", i);
	}
	uint64_t n = 0;
	size_t start = i;
	for (; text[i] >= '0' && text[i] <= '9'; i++) {
		n = n * 10 + (uint64_t)(text[i] - '0');
		if (n > UINT32_MAX)
			return set_fail(text, len, "number at offset %zu is over 4294967295", start);
	}
	*v = (uint32_t)n;
	*at = i;
	return 0;
}

static int range_cmp(const void *a, const void *b)
{
	const struct imap_range *x = a, *y = b;
	return x->lo < y->lo ? -1 : x->lo > y->lo;
}

/* Sorts and merges ranges appended by tail_add, in O(n log n): adding
 * a client's numbers one by one with imap_set_add would move the tail of
 * the array for each, which a long descending list turns into O(n^2). */
static void normalise(struct imap_set *s)
{
	bool sorted = true;
	for (size_t i = 1; i < s->n && sorted; i++)
		sorted = s->r[i - 1].lo <= s->r[i].lo;
	if (!sorted)
		qsort(s->r, s->n, sizeof *s->r, range_cmp);
	size_t o = 0;
	for (size_t i = 0; i < s->n; i++) {
		if (o && (uint64_t)s->r[i].lo <= (uint64_t)s->r[o - 1].hi + 1) {
			if (s->r[i].hi > s->r[o - 1].hi)
				s->r[o - 1].hi = s->r[i].hi;
		} else {
			s->r[o++] = s->r[i];
		}
	}
	s->n = o;
}

int imap_set_parse(const char *text, uint32_t star, struct imap_set *out)
{
	char b[16];
	int rc;
	out->n = 0;
	if (!text)
		return err_set(MCRDT_EINVAL, "no sequence set given");
	size_t len = strlen(text);
	if (len == 0)
		return err_set(MCRDT_EINVAL, "invalid sequence set \"\": empty");

	size_t i = 0;
	for (;;) {
		uint32_t a, z;
		bool a_star, z_star;
		size_t el = i;
		if ((rc = seq_number(text, len, &i, &a, &a_star)) > 0) {
			if (text[i] == ',' || text[i] == '\0')
				rc = set_fail(text, len, "empty element at offset %zu", i);
			else if (text[i] == ':')
				rc = set_fail(text, len, "range without a first number at offset %zu", i);
			else
				rc = set_fail(text, len, "unexpected %s at offset %zu",
					      byte_name(b, (unsigned char)text[i]), i);
		}
		if (rc)
			goto fail;
		z = a;
		z_star = a_star;
		if (text[i] == ':') {
			i++;
			if ((rc = seq_number(text, len, &i, &z, &z_star)) > 0) {
				if (text[i] == ',' || text[i] == '\0')
					rc = set_fail(text, len, "range at offset %zu without a second number",
						      el);
				else
					rc = set_fail(text, len, "unexpected %s at offset %zu",
						      byte_name(b, (unsigned char)text[i]), i);
			}
			if (rc)
				goto fail;
		}
		if (text[i] != ',' && text[i] != '\0') {
			rc = set_fail(text, len, "unexpected %s at offset %zu",
				      byte_name(b, (unsigned char)text[i]), i);
			goto fail;
		}
		/* An empty mailbox has no last message for "*" to name. */
		if (!((a_star || z_star) && star == 0)) {
			uint32_t x = a_star ? star : a, y = z_star ? star : z;
			if ((rc = tail_add(out, x < y ? x : y, x < y ? y : x)))
				goto fail;
		}
		if (text[i] == '\0') {
			normalise(out);
			return 0;
		}
		i++;
	}
fail:
	out->n = 0;
	return rc;
}

/* ---- flags ---- */

static const struct sysflag {
	unsigned bit;
	char letter;
	const char *name;
} sysflags[] = {
	{ IMAP_SEEN, 'S', "\\Seen" },
	{ IMAP_ANSWERED, 'R', "\\Answered" },
	{ IMAP_FLAGGED, 'F', "\\Flagged" },
	{ IMAP_DELETED, 'T', "\\Deleted" },
	{ IMAP_DRAFT, 'D', "\\Draft" },
};
#define NSYSFLAGS (sizeof sysflags / sizeof sysflags[0])

/* ASCII only, whatever the locale: flags are ASCII by the time we compare. */
static int ascii_casecmp(const char *a, const char *b)
{
	for (;; a++, b++) {
		unsigned char x = (unsigned char)*a, y = (unsigned char)*b;
		if (x >= 'A' && x <= 'Z')
			x = (unsigned char)(x - 'A' + 'a');
		if (y >= 'A' && y <= 'Z')
			y = (unsigned char)(y - 'A' + 'a');
		if (x != y || !x)
			return x - y;
	}
}

static const struct sysflag *sysflag_by_name(const char *flag)
{
	for (size_t i = 0; i < NSYSFLAGS; i++)
		if (ascii_casecmp(flag, sysflags[i].name) == 0)
			return &sysflags[i];
	return NULL;
}

static const struct sysflag *sysflag_by_bit(unsigned bit)
{
	for (size_t i = 0; i < NSYSFLAGS; i++)
		if (sysflags[i].bit == bit)
			return &sysflags[i];
	return NULL;
}

int imap_flag_check(const char *flag, const char **canon, unsigned *sys)
{
	char q[STORE_QUOTE_SIZE], b[16];
	if (!flag)
		return err_set(MCRDT_EINVAL, "no flag given");
	size_t len = strlen(flag);
	if (len == 0)
		return err_set(MCRDT_EINVAL, "invalid flag \"\": empty");
	if (flag[0] == '\\') {
		const struct sysflag *f = sysflag_by_name(flag);
		if (f) {
			if (canon)
				*canon = f->name;
			if (sys)
				*sys = f->bit;
			return 0;
		}
		if (ascii_casecmp(flag, "\\Recent") == 0)
			return err_set(MCRDT_EINVAL, "invalid flag %s: only the server sets \\Recent; "
				       "it cannot be stored", store_quote(q, flag, len));
		return err_set(MCRDT_EINVAL, "invalid flag %s: not a system flag (\\Seen \\Answered "
			       "\\Flagged \\Deleted \\Draft), and a keyword cannot start with '\\'",
			       store_quote(q, flag, len));
	}
	if (len > CRDT_FLAG_MAX)
		return err_set(MCRDT_EINVAL, "invalid flag %s: %zu bytes; a keyword has at most %d",
			       store_quote(q, flag, len), len, CRDT_FLAG_MAX);
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)flag[i];
		if (c < 0x21 || c > 0x7e)
			return err_set(MCRDT_EINVAL, "invalid flag %s: %s at offset %zu; a keyword is "
				       "printable ASCII without spaces", store_quote(q, flag, len),
				       byte_name(b, c), i);
		if (strchr("(){%*\"\\]", c))
			return err_set(MCRDT_EINVAL, "invalid flag %s: '%c' at offset %zu is an IMAP "
				       "special character, not allowed in a keyword",
				       store_quote(q, flag, len), c, i);
	}
	if (canon)
		*canon = flag;
	if (sys)
		*sys = 0;
	return 0;
}

char imap_sysflag_letter(unsigned bit)
{
	const struct sysflag *f = sysflag_by_bit(bit);
	return f ? f->letter : '\0';
}

unsigned imap_letter_sysflag(char letter)
{
	for (size_t i = 0; i < NSYSFLAGS; i++)
		if (letter && sysflags[i].letter == letter)
			return sysflags[i].bit;
	return 0;
}

const char *imap_sysflag_name(unsigned bit)
{
	const struct sysflag *f = sysflag_by_bit(bit);
	return f ? f->name : NULL;
}
