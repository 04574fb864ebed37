/*
 * sync/codec.c — the record format. See codec.h.
 */
#include "sync/codec.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#define XXH_INLINE_ALL
#include <xxhash.h>

#include "common/error.h"
#include "common/varint.h"



/* The encoder writes into a buffer reserved to the op's worst case. */
struct out {
	uint8_t *p;
	size_t n;
};

static void w_var(struct out *o, uint64_t v)
{
	o->n += varint_put(o->p + o->n, v);
}

static void w_bytes(struct out *o, const void *s, size_t len)
{
	w_var(o, len);
	memcpy(o->p + o->n, s, len);
	o->n += len;
}

static void w_dot(struct out *o, crdt_dot d)
{
	w_var(o, d.replica);
	w_var(o, d.counter);
}

static size_t worst_case(const crdt_op *op)
{
	size_t n = 16 * 10 + op->deps.n * 20 + op->name.len + 10 + op->meta_len + 10;
	for (size_t i = 0; i < op->nflags; i++)
		n += op->flags[i].len + 10;
	return n;
}

static uint64_t checksum(const uint8_t *p, size_t len)
{
	return XXH3_64bits(p, len);
}

int sync_encode_record(struct sync_buf *b, const crdt_op *op)
{
	int rc = crdt_op_validate(op);
	if (rc)
		return err_set(MCRDT_EINVAL, "refusing to encode an invalid op: %s", mcrdt_error_last());
	size_t worst = worst_case(op);
	if (worst > SYNC_RECORD_MAX)
		return err_set(MCRDT_EINVAL, "op too large for a record (%zu bytes)", worst);
	if ((rc = vbuf_reserve(b, worst + SYNC_RECORD_OVERHEAD)))
		return rc;
	/* Payload first, 5 bytes in: the length prefix is written in front after. */
	struct out o = { b->p + b->len + 5, 0 };
	unsigned mask = (op->mbox.replica ? SYNC_F_MBOX : 0) | (op->msg.replica ? SYNC_F_MSG : 0) |
			(op->space.replica ? SYNC_F_SPACE : 0) | (op->uid ? SYNC_F_UID : 0) |
			(op->uidvalidity ? SYNC_F_UIDVALIDITY : 0) | (op->name.s ? SYNC_F_NAME : 0) |
			(op->nflags ? SYNC_F_FLAGS : 0) | (op->meta ? SYNC_F_META : 0);
	w_var(&o, (uint64_t)op->type);
	w_var(&o, mask);
	w_dot(&o, op->id);
	size_t ndeps = 0;
	for (size_t i = 0; i < op->deps.n; i++)
		ndeps += op->deps.e[i].replica != op->id.replica;
	w_var(&o, ndeps);
	for (size_t i = 0; i < op->deps.n; i++)
		if (op->deps.e[i].replica != op->id.replica) {
			w_var(&o, op->deps.e[i].replica);
			w_var(&o, op->deps.e[i].base);
		}
	if (mask & SYNC_F_MBOX)
		w_dot(&o, op->mbox);
	if (mask & SYNC_F_MSG)
		w_dot(&o, op->msg);
	if (mask & SYNC_F_SPACE)
		w_dot(&o, op->space);
	if (mask & SYNC_F_UID)
		w_var(&o, op->uid);
	if (mask & SYNC_F_UIDVALIDITY)
		w_var(&o, op->uidvalidity);
	if (mask & SYNC_F_NAME)
		w_bytes(&o, op->name.s, op->name.len);
	if (mask & SYNC_F_FLAGS) {
		w_var(&o, op->nflags);
		for (size_t i = 0; i < op->nflags; i++)
			w_bytes(&o, op->flags[i].s, op->flags[i].len);
	}
	if (mask & SYNC_F_META)
		w_bytes(&o, op->meta, op->meta_len);
	uint8_t lenbuf[10];
	size_t lenlen = varint_put(lenbuf, o.n);
	uint8_t *rec = b->p + b->len;
	memmove(rec + lenlen, rec + 5, o.n);
	memcpy(rec, lenbuf, lenlen);
	uint64_t sum = checksum(rec, lenlen + o.n);
	for (int i = 0; i < 8; i++)
		rec[lenlen + o.n + (size_t)i] = (uint8_t)(sum >> (8 * i));
	b->len += lenlen + o.n + 8;
	return 0;
}

/* ---- decoding ---- */

#define r_var(in) vread(in)
#define r_bounded(in, max, what) vread_max(in, max, what)

static crdt_dot r_dot(struct vreader *in)
{
	crdt_dot d;
	d.replica = r_var(in);
	d.counter = r_var(in);
	return d;
}

/* A length-prefixed string, copied (NUL-terminated) after its bound is checked. */
static char *r_str(struct vreader *in, size_t max, size_t *len, const char *what)
{
	uint64_t n = r_bounded(in, max, what);
	const uint8_t *src = vread_bytes(in, n, what);
	if (!src)
		return NULL;
	char *s = malloc(n + 1);
	if (!s) {
		in->err = err_set(MCRDT_ENOMEM, "out of memory decoding an op");
		return NULL;
	}
	memcpy(s, src, n);
	s[n] = '\0';
	*len = n;
	return s;
}

static int frame(const uint8_t *p, size_t len, uint64_t salt, const uint8_t **payload, size_t *plen,
		 size_t *used)
{
	uint64_t n = 0;
	size_t k = 0;
	for (int shift = 0;; shift += 7) {
		if (k >= len)
			return MCRDT_EPENDING; /* the length itself is cut off */
		if (k >= 5)
			return err_set(MCRDT_ECORRUPT, "record length field longer than 5 bytes");
		uint8_t c = p[k++];
		n |= (uint64_t)(c & 0x7f) << shift;
		if (!(c & 0x80))
			break;
	}
	if (n > SYNC_RECORD_MAX)
		return err_set(MCRDT_ECORRUPT, "record length %" PRIu64 " over the limit", n);
	if (len - k < n + 8)
		return MCRDT_EPENDING;
	uint64_t want = 0;
	for (int i = 0; i < 8; i++)
		want |= (uint64_t)p[k + n + (size_t)i] << (8 * i);
	if ((checksum(p, k + n) ^ salt) != want)
		return err_set(MCRDT_ECORRUPT, "record checksum mismatch");
	*payload = p + k;
	*plen = n;
	*used = k + n + 8;
	return 0;
}

int sync_check_record_salted(const uint8_t *p, size_t len, uint64_t salt, size_t *used)
{
	const uint8_t *payload;
	size_t plen;
	return frame(p, len, salt, &payload, &plen, used);
}

int sync_check_record(const uint8_t *p, size_t len, size_t *used)
{
	return sync_check_record_salted(p, len, 0, used);
}

void sync_salt_record(uint8_t *end, uint64_t salt)
{
	for (int i = 0; i < 8; i++)
		end[i - 8] ^= (uint8_t)(salt >> (8 * i));
}

int sync_decode_record(const uint8_t *p, size_t len, crdt_op *op, size_t *used)
{
	return sync_decode_record_salted(p, len, 0, op, used);
}

int sync_decode_record_salted(const uint8_t *p, size_t len, uint64_t salt, crdt_op *op, size_t *used)
{
	crdt_op_init(op, 0);
	int rc = sync_decode_record_into(p, len, salt, op, used);
	if (rc)
		crdt_op_free(op);
	return rc;
}

int sync_decode_record_into(const uint8_t *p, size_t len, uint64_t salt, crdt_op *op, size_t *used)
{
	const uint8_t *payload = NULL;
	size_t plen = 0, u = 0;
	int rc = frame(p, len, salt, &payload, &plen, &u);
	if (rc)
		return rc;
	struct vreader in = { payload, payload + plen, 0 };
	/* The type first: a newer mcrdt's op is refused as such, whatever follows. */
	uint64_t type = r_var(&in);
	if (!in.err && type > CRDT_OP_TYPE_MAX)
		return err_set(MCRDT_EVERSION, "op type %" PRIu64 " is unknown to format version %d "
			       "(written by a newer mcrdt?)", type, SYNC_FORMAT_VERSION);
	if (!in.err && type == 0)
		return err_set(MCRDT_ECORRUPT, "op type 0");
	uint64_t mask = r_var(&in);
	if (!in.err && (mask & ~(uint64_t)SYNC_F_KNOWN))
		return err_set(MCRDT_EVERSION, "op fields 0x%" PRIx64 " are unknown to format version %d "
			       "(written by a newer mcrdt?)", mask & ~(uint64_t)SYNC_F_KNOWN, SYNC_FORMAT_VERSION);
	op->type = (enum crdt_op_type)type;
	op->id = r_dot(&in);
	uint64_t ndeps = r_bounded(&in, CRDT_DEPS_MAX, "dependency count");
	uint64_t prev = 0;
	for (uint64_t i = 0; !in.err && i < ndeps; i++) {
		uint64_t replica = r_var(&in), base = r_var(&in);
		/* Strictly ascending, as written: each entry goes at the end (no
		 * quadratic shifting), and repeats or the issuer's own are refused. */
		if (!in.err && (replica <= prev || replica == op->id.replica))
			in.err = err_set(MCRDT_ECORRUPT, "dependencies out of order or repeated");
		else if (!in.err && (rc = crdt_vv_set_base(&op->deps, replica, base)))
			in.err = rc;
		prev = replica;
	}
	if (!in.err && op->id.counter > 1 &&
	    (rc = crdt_vv_set_base(&op->deps, op->id.replica, op->id.counter - 1)))
		in.err = rc;
	if (mask & SYNC_F_MBOX)
		op->mbox = r_dot(&in);
	if (mask & SYNC_F_MSG)
		op->msg = r_dot(&in);
	if (mask & SYNC_F_SPACE)
		op->space = r_dot(&in);
	if (mask & SYNC_F_UID)
		op->uid = (uint32_t)r_bounded(&in, UINT32_MAX, "UID");
	if (mask & SYNC_F_UIDVALIDITY)
		op->uidvalidity = (uint32_t)r_bounded(&in, UINT32_MAX, "UIDVALIDITY");
	if (mask & SYNC_F_NAME)
		op->name.s = r_str(&in, CRDT_NAME_MAX, &op->name.len, "name");
	if ((mask & SYNC_F_FLAGS) && !in.err) {
		uint64_t nf = r_bounded(&in, CRDT_FLAGS_MAX, "flag count");
		if (!in.err && !(op->flags = calloc(nf ? nf : 1, sizeof *op->flags)))
			in.err = err_set(MCRDT_ENOMEM, "out of memory decoding an op");
		for (uint64_t i = 0; !in.err && i < nf; i++) {
			op->flags[i].s = r_str(&in, CRDT_FLAG_MAX, &op->flags[i].len, "flag");
			if (!in.err)
				op->nflags++;
		}
	}
	if ((mask & SYNC_F_META) && !in.err) {
		size_t mlen = 0;
		op->meta = (uint8_t *)r_str(&in, CRDT_META_MAX, &mlen, "metadata");
		op->meta_len = mlen;
	}
	if (!in.err && in.p != in.end)
		in.err = err_set(MCRDT_ECORRUPT, "%zu stray bytes after the op", (size_t)(in.end - in.p));
	if (!in.err && (rc = crdt_op_validate(op)))
		in.err = rc == MCRDT_ERANGE ? rc : MCRDT_ECORRUPT;
	if (in.err) {
		crdt_op_free(op);
		return in.err;
	}
	*used = u;
	return 0;
}
