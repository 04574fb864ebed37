/*
 * store/meta.c — the per-message meta bytes of an op (see store/meta.h).
 *
 * The decoder reads bytes a peer wrote: it checks every length against
 * what is left before using it, refuses anything it cannot vouch for, and
 * only then fills in the caller's struct.
 */
#include "store/meta.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "common/error.h"
#include "common/varint.h"
#include "store/imap.h"

enum { TAG_BASE = 1, TAG_SIZE = 2, TAG_DATE = 3 };

/* Why base is not a safe base name, written into why; true when it is. */
static bool base_check(const char *base, size_t len, char why[64])
{
	if (!base || len == 0) {
		snprintf(why, 64, "is empty");
		return false;
	}
	if (len > STORE_META_BASE_MAX) {
		snprintf(why, 64, "is %zu bytes long, over %d", len, STORE_META_BASE_MAX);
		return false;
	}
	if (base[0] == '.') {
		snprintf(why, 64, "starts with '.'");
		return false;
	}
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)base[i];
		if (c < 0x21 || c > 0x7e) {
			snprintf(why, 64, "has byte 0x%02x at offset %zu, not printable ASCII", c, i);
			return false;
		}
		if (c == '/' || c == ':') {
			snprintf(why, 64, "has '%c' at offset %zu", c, i);
			return false;
		}
	}
	return true;
}

bool store_base_ok(const char *base, size_t len)
{
	char why[64];
	return base_check(base, len, why);
}

int store_meta_encode(const struct store_meta *m, struct vbuf *out)
{
	char why[64], q[STORE_QUOTE_SIZE];
	uint8_t num[VARINT_MAX];

	if (out->err)
		return out->err;
	if (!base_check(m->base, m->base_len, why))
		return err_set(MCRDT_EINVAL, "cannot encode message meta: base name %s %s",
			       store_quote(q, m->base, m->base ? m->base_len : 0), why);
	if (m->size > STORE_META_SIZE_MAX)
		return err_set(MCRDT_EINVAL, "cannot encode message meta: size %llu is over %llu",
			       (unsigned long long)m->size, (unsigned long long)STORE_META_SIZE_MAX);
	if (m->internaldate < 0 || m->internaldate > STORE_META_DATE_MAX)
		return err_set(MCRDT_EINVAL, "cannot encode message meta: internal date %lld is "
			       "outside 0..%lld", (long long)m->internaldate,
			       (long long)STORE_META_DATE_MAX);

	size_t start = out->len;
	if (vbuf_reserve(out, 1) == 0)
		out->p[out->len++] = STORE_META_FORMAT;
	vput(out, TAG_BASE);
	vput_bytes(out, m->base, m->base_len);
	vput(out, TAG_SIZE);
	vput_bytes(out, num, varint_put(num, m->size));
	vput(out, TAG_DATE);
	vput_bytes(out, num, varint_put(num, (uint64_t)m->internaldate));
	if (out->err) {
		out->len = start;
		return out->err;
	}
	return 0;
}

__attribute__((format(printf, 2, 3)))
static int meta_fail(size_t at, const char *fmt, ...)
{
	char what[192];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(what, sizeof what, fmt, ap);
	va_end(ap);
	return err_set(MCRDT_ECORRUPT, "invalid message meta at offset %zu: %s", at, what);
}

/* The varint that must fill a size or date field exactly. */
static int field_number(const uint8_t *f, size_t flen, size_t at, const char *name, uint64_t *v)
{
	struct vreader r = { f, f + flen, 0 };
	*v = vread(&r);
	if (r.err) {
		char why[128];
		snprintf(why, sizeof why, "%s", mcrdt_error_last());
		return meta_fail(at, "%s field: %s", name, why);
	}
	if (r.p != r.end)
		return meta_fail(at, "%s field has %zu extra byte(s) after its number", name, (size_t)(r.end - r.p));
	return 0;
}

int store_meta_decode(const uint8_t *p, size_t len, struct store_meta *out)
{
	static const char *const names[] = { NULL, "base name", "size", "internal date" };
	struct store_meta m = { NULL, 0, 0, 0 };
	unsigned seen = 0;
	uint64_t v;
	int rc;

	memset(out, 0, sizeof *out);
	if (len == 0)
		return err_set(MCRDT_ECORRUPT, "invalid message meta: empty");
	if (len > STORE_META_MAX)
		return err_set(MCRDT_ECORRUPT, "invalid message meta: %zu bytes, over the limit of %d",
			       len, STORE_META_MAX);
	if (p[0] != STORE_META_FORMAT)
		return err_set(MCRDT_EVERSION, "message meta has format %u; this version reads "
			       "format %d only", p[0], STORE_META_FORMAT);

	struct vreader r = { p + 1, p + len, 0 };
	while (r.p < r.end) {
		size_t at = (size_t)(r.p - p);
		uint64_t tag = vread(&r);
		uint64_t flen = vread(&r);
		if (r.err) {
			char why[128];
			snprintf(why, sizeof why, "%s", mcrdt_error_last());
			return meta_fail(at, "field header: %s", why);
		}
		size_t left = (size_t)(r.end - r.p);
		if (flen > left)
			return meta_fail(at, "field %llu is %llu bytes long but only %zu follow",
					 (unsigned long long)tag, (unsigned long long)flen, left);
		const uint8_t *f = vread_bytes(&r, flen, "field");
		if (tag < TAG_BASE || tag > TAG_DATE)
			continue; /* a later version's field */
		if (seen & (1u << tag))
			return meta_fail(at, "%s given twice", names[tag]);
		seen |= 1u << tag;
		switch (tag) {
		case TAG_BASE: {
			char why[64], q[STORE_QUOTE_SIZE];
			if (!base_check((const char *)f, (size_t)flen, why))
				return meta_fail(at, "base name %s %s", store_quote(q, f, (size_t)flen), why);
			m.base = (const char *)f;
			m.base_len = (size_t)flen;
			break;
		}
		case TAG_SIZE:
			if ((rc = field_number(f, (size_t)flen, at, "size", &v)))
				return rc;
			if (v > STORE_META_SIZE_MAX)
				return meta_fail(at, "size %llu is over %llu", (unsigned long long)v,
						 (unsigned long long)STORE_META_SIZE_MAX);
			m.size = v;
			break;
		case TAG_DATE:
			if ((rc = field_number(f, (size_t)flen, at, "internal date", &v)))
				return rc;
			if (v > (uint64_t)STORE_META_DATE_MAX)
				return meta_fail(at, "internal date %llu is over %lld", (unsigned long long)v,
						 (long long)STORE_META_DATE_MAX);
			m.internaldate = (int64_t)v;
			break;
		}
	}
	for (unsigned tag = TAG_BASE; tag <= TAG_DATE; tag++)
		if (!(seen & (1u << tag)))
			return err_set(MCRDT_ECORRUPT, "invalid message meta (%zu bytes): no %s field", len,
				       names[tag]);
	*out = m;
	return 0;
}
