/*
 * tests/sync/test_codec.c — the op record codec (sync/codec.h), from the
 * side of a user of the log: what goes in comes out, field by field; a
 * cut-off tail is "pending", never a wrong op; any damage is noticed; a
 * record from a newer format is refused by name; hostile records with
 * valid checksums are refused without a crash or a leak.
 *
 * Hand-built records follow the format of sync/codec.h (version 1): the
 * test hand_built_matches_encoder pins the builder to the encoder's bytes,
 * so the hostile cases reach the decoder paths they mean to.
 *
 * The regressions case reproduces codec defects found in review, now fixed.
 */
#include "tests/check_run.h"
#include <check.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <xxhash.h>

#include "crdt/op.h"
#include "crdt/vv.h"
#include "mcrdt/errors.h"
#include "sync/codec.h"

/* The decoder's bound on the dependency count (sync/codec.c). */
#define DEPS_LIMIT CRDT_DEPS_MAX

/* ---- comparing ops ---- */


#define ck_assert_op_eq(a, b)                                           \
	do {                                                            \
		const char *d_ = crdt_op_diff(a, b);                         \
		ck_assert_msg(!d_, "ops differ in %s", d_ ? d_ : ""); \
	} while (0)

/* ---- building ops ---- */

enum { HAS_NAME = 1, HAS_MBOX = 2, HAS_MSG = 4, HAS_UID = 8, HAS_FLAGS = 16, HAS_META = 32, HAS_UIDV = 64 };

static unsigned fields_of(enum crdt_op_type t)
{
	switch (t) {
	case CRDT_OP_MBOX_CREATE: return HAS_NAME | HAS_UIDV;
	case CRDT_OP_MBOX_RENAME: return HAS_MBOX | HAS_NAME;
	case CRDT_OP_MBOX_DELETE: return HAS_MBOX;
	case CRDT_OP_SUBSCRIBE:
	case CRDT_OP_UNSUBSCRIBE: return HAS_NAME;
	case CRDT_OP_APPEND: return HAS_MBOX | HAS_UID | HAS_FLAGS | HAS_META;
	case CRDT_OP_COPY:
	case CRDT_OP_MOVE: return HAS_MBOX | HAS_MSG | HAS_UID | HAS_FLAGS | HAS_META;
	case CRDT_OP_EXPUNGE: return HAS_MSG;
	case CRDT_OP_FLAGS_ADD:
	case CRDT_OP_FLAGS_REMOVE:
	case CRDT_OP_FLAGS_SET: return HAS_MSG | HAS_FLAGS;
	case CRDT_OP_CLAIM: return HAS_MSG | HAS_UID;
	}
	return 0;
}

/*
 * MINIMAL: the smallest values every field allows (counter 1, one-byte
 * name, UID 1, no flags, no metadata). MID: ordinary values, metadata
 * present but empty. FULL: every field at its bound.
 */
enum shape { MINIMAL, MID, FULL };
#define FULL_DEPS 2000

static void set_base(crdt_op *op, uint64_t replica, uint64_t base)
{
	ck_assert_int_eq(crdt_vv_set_base(&op->deps, replica, base), 0);
}

/* Full-size strings: every byte a mailbox name (or a flag) may hold. */
static void full_name(char *s, size_t len)
{
	for (size_t i = 0; i < len; i++) {
		unsigned c = 0x20 + (unsigned)(i % 0xe0);
		s[i] = (char)(c == 0x7f ? 'x' : c);
	}
}

static void full_flag(char *s, size_t len, size_t which)
{
	for (size_t i = 0; i < len; i++) {
		unsigned c = 0x21 + (unsigned)((i * 31 + which) % 0xdf);
		s[i] = (char)(c == 0x7f ? 'y' : c);
	}
}

static void make_op(crdt_op *op, enum crdt_op_type t, enum shape sh)
{
	crdt_op_init(op, t);
	unsigned f = fields_of(t);
	crdt_dot mbox, msg, space;
	uint32_t uid, uidv;
	switch (sh) {
	case MINIMAL:
		op->id = (crdt_dot){ 3, 1 };
		mbox = (crdt_dot){ 1, 1 };
		msg = (crdt_dot){ 2, 1 };
		space = (crdt_dot){ 1, 1 };
		uid = uidv = 1;
		break;
	case MID:
		op->id = (crdt_dot){ 0x1234, 300 };
		set_base(op, 0x99, 1);
		set_base(op, 3, 17);
		mbox = (crdt_dot){ 3, 5 };
		msg = (crdt_dot){ 0x99, 1 };
		space = (crdt_dot){ 3, 17 };
		uid = 4242;
		uidv = 1700000000;
		break;
	case FULL:
	default:
		op->id = (crdt_dot){ UINT64_MAX - 1, CRDT_COUNTER_MAX };
		for (uint64_t k = 0; k < FULL_DEPS; k++) {
			/* Replicas of every varint length; bases from 0 to the maximum. */
			uint64_t r = k < 1000 ? 10 + k * k : 1 + k * (UINT64_MAX / FULL_DEPS);
			uint64_t base = k % 4 == 0 ? CRDT_COUNTER_MAX : k % 4 == 1 ? k / 4 : k % 4 == 2 ? UINT64_C(1) << (k % 48) : 0;
			set_base(op, r, base);
		}
		mbox = (crdt_dot){ 2, CRDT_COUNTER_MAX };
		msg = (crdt_dot){ UINT64_MAX - 2, CRDT_COUNTER_MAX };
		space = (crdt_dot){ (UINT64_C(1) << 63) + 5, CRDT_COUNTER_MAX };
		uid = CRDT_UID_MAX;
		uidv = UINT32_MAX;
		break;
	}
	if (op->id.counter > 1)
		set_base(op, op->id.replica, op->id.counter - 1);
	if (f & HAS_MBOX) {
		op->mbox = mbox;
		set_base(op, mbox.replica, mbox.counter);
	}
	if (f & HAS_MSG) {
		op->msg = msg;
		set_base(op, msg.replica, msg.counter);
	}
	if (f & HAS_UID) {
		op->space = space;
		op->uid = uid;
		set_base(op, space.replica, space.counter);
	}
	if (f & HAS_UIDV)
		op->uidvalidity = uidv;
	if (f & HAS_NAME) {
		if (sh == FULL) {
			char name[CRDT_NAME_MAX];
			full_name(name, sizeof name);
			ck_assert_int_eq(crdt_op_set_name(op, name, sizeof name), 0);
		} else if (sh == MID) {
			ck_assert_int_eq(crdt_op_set_name(op, "INBOX/Archiv 2024 \xc3\xa9t\xc3\xa9", 23), 0);
		} else {
			ck_assert_int_eq(crdt_op_set_name(op, "a", 1), 0);
		}
	}
	if ((f & HAS_FLAGS) && sh == MID) {
		ck_assert_int_eq(crdt_op_add_flag(op, "\\Seen", 5), 0);
		ck_assert_int_eq(crdt_op_add_flag(op, "$Label1", 7), 0);
	}
	if ((f & HAS_FLAGS) && sh == FULL) {
		for (size_t i = 0; i < CRDT_FLAGS_MAX; i++) {
			char flag[CRDT_FLAG_MAX];
			full_flag(flag, sizeof flag, i);
			ck_assert_int_eq(crdt_op_add_flag(op, flag, sizeof flag), 0);
		}
	}
	if ((f & HAS_META) && sh == MID)
		ck_assert_int_eq(crdt_op_set_meta(op, "", 0), 0);
	if ((f & HAS_META) && sh == FULL) {
		uint8_t *meta = malloc(CRDT_META_MAX);
		ck_assert_ptr_nonnull(meta);
		for (size_t i = 0; i < CRDT_META_MAX; i++)
			meta[i] = (uint8_t)(i * 131 + 7); /* every byte value, NUL included */
		ck_assert_int_eq(crdt_op_set_meta(op, meta, CRDT_META_MAX), 0);
		free(meta);
	}
	ck_assert_msg(crdt_op_validate(op) == 0, "fixture %s/%d invalid: %s", crdt_op_type_name(t), (int)sh,
		      mcrdt_error_last());
}

#define NTYPES ((size_t)CRDT_OP_TYPE_MAX)

/* ---- hand-built bytes ---- */

struct bytes {
	uint8_t *p;
	size_t n, cap;
};

static void b_raw(struct bytes *b, const void *s, size_t n)
{
	if (b->n + n > b->cap) {
		size_t cap = b->cap ? b->cap : 64;
		while (cap < b->n + n)
			cap *= 2;
		uint8_t *np = realloc(b->p, cap);
		ck_assert_ptr_nonnull(np);
		b->p = np;
		b->cap = cap;
	}
	if (n)
		memcpy(b->p + b->n, s, n);
	b->n += n;
}

static void b_byte(struct bytes *b, uint8_t c)
{
	b_raw(b, &c, 1);
}

static void b_fill(struct bytes *b, uint8_t c, size_t n)
{
	for (size_t i = 0; i < n; i++)
		b_byte(b, c);
}

static void b_var(struct bytes *b, uint64_t v)
{
	do {
		uint8_t c = (uint8_t)(v & 0x7f);
		v >>= 7;
		b_byte(b, (uint8_t)(c | (v ? 0x80 : 0)));
	} while (v);
}

static void b_str(struct bytes *b, const void *s, size_t n)
{
	b_var(b, n);
	b_raw(b, s, n);
}

static void b_free(struct bytes *b)
{
	free(b->p);
	memset(b, 0, sizeof *b);
}

/* Appends a record around payload, framed with the given length field: the
 * checksum is XXH3-64 of length field and payload, little-endian. */
static void b_frame_len(struct bytes *rec, const uint8_t *lenfield, size_t lenlen, const void *payload, size_t n)
{
	size_t start = rec->n;
	b_raw(rec, lenfield, lenlen);
	b_raw(rec, payload, n);
	uint64_t sum = XXH3_64bits(rec->p + start, rec->n - start);
	for (int i = 0; i < 8; i++)
		b_byte(rec, (uint8_t)(sum >> (8 * i)));
}

/* Appends a record around payload with a correct length and checksum. */
static void b_frame(struct bytes *rec, const void *payload, size_t n)
{
	struct bytes len = { 0 };
	b_var(&len, n);
	b_frame_len(rec, len.p, len.n, payload, n);
	b_free(&len);
}

/*
 * An op as it travels, field by field. A string field is written only
 * when its pointer is set, so a test can leave the last field off and
 * append a hostile one of its own.
 */
struct wire {
	uint64_t type, mask;
	crdt_dot id;
	size_t ndeps;
	const uint64_t (*deps)[2];
	crdt_dot mbox, msg, space;
	uint64_t uid, uidvalidity;
	const char *name;
	size_t nflags;
	const char *const *flags;
	const char *meta;
	size_t meta_len;
};

static void b_dot(struct bytes *b, crdt_dot d)
{
	b_var(b, d.replica);
	b_var(b, d.counter);
}

static void b_wire(struct bytes *b, const struct wire *w)
{
	b_var(b, w->type);
	b_var(b, w->mask);
	b_dot(b, w->id);
	b_var(b, w->ndeps);
	for (size_t i = 0; i < w->ndeps; i++) {
		b_var(b, w->deps[i][0]);
		b_var(b, w->deps[i][1]);
	}
	if (w->mask & SYNC_F_MBOX)
		b_dot(b, w->mbox);
	if (w->mask & SYNC_F_MSG)
		b_dot(b, w->msg);
	if (w->mask & SYNC_F_SPACE)
		b_dot(b, w->space);
	if (w->mask & SYNC_F_UID)
		b_var(b, w->uid);
	if (w->mask & SYNC_F_UIDVALIDITY)
		b_var(b, w->uidvalidity);
	if ((w->mask & SYNC_F_NAME) && w->name)
		b_str(b, w->name, strlen(w->name));
	if ((w->mask & SYNC_F_FLAGS) && w->flags) {
		b_var(b, w->nflags);
		for (size_t i = 0; i < w->nflags; i++)
			b_str(b, w->flags[i], strlen(w->flags[i]));
	}
	if ((w->mask & SYNC_F_META) && w->meta)
		b_str(b, w->meta, w->meta_len);
}

static const uint64_t one_dep[][2] = { { 5, 3 } };
static const char *const seen[] = { "\\Seen" };

/* Valid templates: issuer 7, one dependency (5, 3) where a reference needs it. */
static struct wire w_subscribe(void)
{
	return (struct wire){ .type = CRDT_OP_SUBSCRIBE, .mask = SYNC_F_NAME, .id = { 7, 1 }, .name = "INBOX" };
}

static struct wire w_rename(void)
{
	return (struct wire){ .type = CRDT_OP_MBOX_RENAME, .mask = SYNC_F_MBOX | SYNC_F_NAME, .id = { 7, 2 },
			      .ndeps = 1, .deps = one_dep, .mbox = { 5, 3 }, .name = "Sent" };
}

static struct wire w_flags_add(void)
{
	return (struct wire){ .type = CRDT_OP_FLAGS_ADD, .mask = SYNC_F_MSG | SYNC_F_FLAGS, .id = { 7, 2 },
			      .ndeps = 1, .deps = one_dep, .msg = { 5, 3 }, .nflags = 1, .flags = seen };
}

static struct wire w_append(void)
{
	return (struct wire){ .type = CRDT_OP_APPEND, .mask = SYNC_F_MBOX | SYNC_F_SPACE | SYNC_F_UID | SYNC_F_FLAGS | SYNC_F_META,
			      .id = { 7, 2 }, .ndeps = 1, .deps = one_dep, .mbox = { 5, 3 }, .space = { 5, 3 },
			      .uid = 9, .nflags = 1, .flags = seen, .meta = "abc", .meta_len = 3 };
}

static struct wire w_create(void)
{
	return (struct wire){ .type = CRDT_OP_MBOX_CREATE, .mask = SYNC_F_UIDVALIDITY | SYNC_F_NAME, .id = { 7, 1 },
			      .uidvalidity = 77, .name = "Drafts" };
}

/* The payload of the record at rec (its length varint skipped). */
static void payload_of(const uint8_t *rec, size_t n, const uint8_t **pl, size_t *plen)
{
	uint64_t len = 0;
	size_t k = 0;
	for (int shift = 0;; shift += 7) {
		ck_assert_uint_lt(k, n);
		len |= (uint64_t)(rec[k] & 0x7f) << shift;
		if (!(rec[k++] & 0x80))
			break;
	}
	ck_assert_uint_le(k + len + 8, n);
	*pl = rec + k;
	*plen = len;
}

/*
 * Frames payload with a correct length and checksum, checks that the
 * framing passes (so the payload decoder is what judges it), decodes it
 * and returns the decoder's code. A decoded op is compared with want_op
 * when given, then freed.
 */
static int decode_payload(const void *payload, size_t n, const crdt_op *want_op)
{
	struct bytes rec = { 0 };
	b_frame(&rec, payload, n);
	size_t used = 0;
	ck_assert_int_eq(sync_check_record(rec.p, rec.n, &used), 0);
	ck_assert_uint_eq(used, rec.n);
	crdt_op op;
	used = 0;
	int rc = sync_decode_record(rec.p, rec.n, &op, &used);
	if (rc == 0) {
		ck_assert_uint_eq(used, rec.n);
		if (want_op)
			ck_assert_op_eq(&op, want_op);
		crdt_op_free(&op);
	}
	b_free(&rec);
	return rc;
}

static void expect_payload(const struct bytes *payload, int want, const char *what)
{
	int rc = decode_payload(payload->p, payload->n, NULL);
	ck_assert_msg(rc == want, "%s: got %d (%s), want %d", what, rc, rc ? mcrdt_error_last() : "an op", want);
}

static void expect_wire(const struct wire *w, int want, const char *what)
{
	struct bytes p = { 0 };
	b_wire(&p, w);
	expect_payload(&p, want, what);
	b_free(&p);
}

/* ---- round trips ---- */

/* Encodes op, checks framing and decoding give the op back with the right
 * size, and that the decoded op encodes to the very same bytes. */
static void check_round_trip(const crdt_op *op)
{
	struct sync_buf b = { 0 };
	ck_assert_int_eq(sync_encode_record(&b, op), 0);
	ck_assert_uint_gt(b.len, 8);
	ck_assert_uint_le(b.len, SYNC_RECORD_MAX + SYNC_RECORD_OVERHEAD);
	size_t used = 0;
	ck_assert_int_eq(sync_check_record(b.p, b.len, &used), 0);
	ck_assert_uint_eq(used, b.len);
	crdt_op got;
	used = 0;
	int rc = sync_decode_record(b.p, b.len, &got, &used);
	ck_assert_msg(rc == 0, "%s op does not decode: %d %s", crdt_op_type_name(op->type), rc, mcrdt_error_last());
	ck_assert_uint_eq(used, b.len);
	ck_assert_op_eq(&got, op);
	struct sync_buf again = { 0 };
	ck_assert_int_eq(sync_encode_record(&again, &got), 0);
	ck_assert_uint_eq(again.len, b.len);
	ck_assert_mem_eq(again.p, b.p, b.len);
	sync_buf_free(&again);
	crdt_op_free(&got);
	sync_buf_free(&b);
}

/* Every op type with every field at its bound comes back field by field. */
START_TEST(round_trip_at_bounds)
{
	for (size_t t = 1; t <= NTYPES; t++) {
		crdt_op op;
		make_op(&op, (enum crdt_op_type)t, FULL);
		ck_assert_uint_ge(op.deps.n, FULL_DEPS);
		check_round_trip(&op);
		crdt_op_free(&op);
	}
}
END_TEST

/* The smallest ops, and ordinary ones (metadata present but empty). */
START_TEST(round_trip_minimal_and_ordinary)
{
	for (size_t t = 1; t <= NTYPES; t++) {
		for (enum shape sh = MINIMAL; sh <= MID; sh++) {
			crdt_op op;
			make_op(&op, (enum crdt_op_type)t, sh);
			check_round_trip(&op);
			crdt_op_free(&op);
		}
	}
	/* Empty metadata stays present-but-empty, absent stays absent. */
	crdt_op op;
	make_op(&op, CRDT_OP_APPEND, MID);
	ck_assert_ptr_nonnull(op.meta);
	ck_assert_uint_eq(op.meta_len, 0);
	crdt_op_free(&op);
}
END_TEST

/* The largest dependency list a record may carry: 65536 other replicas. */
START_TEST(round_trip_deps_at_limit)
{
	crdt_op op;
	make_op(&op, CRDT_OP_SUBSCRIBE, MINIMAL);
	op.id = (crdt_dot){ UINT64_MAX - 1, 2 };
	set_base(&op, op.id.replica, 1);
	/* Ascending replicas spread over the whole range (built in order: an
	 * insertion into a version vector moves every entry after it). */
	for (uint64_t r = 1; r <= DEPS_LIMIT; r++)
		set_base(&op, r * (UINT64_MAX / (DEPS_LIMIT + 2)), r);
	ck_assert_uint_eq(op.deps.n, DEPS_LIMIT + 1);
	ck_assert_int_eq(crdt_op_validate(&op), 0);
	check_round_trip(&op);
	crdt_op_free(&op);
}
END_TEST

/* Encodes every op of ops into one buffer; off gets each record's start
 * (n + 1 entries, the last the total). */
static void encode_all(struct sync_buf *b, const crdt_op *ops, size_t n, size_t *off)
{
	for (size_t i = 0; i < n; i++) {
		off[i] = b->len;
		ck_assert_int_eq(sync_encode_record(b, &ops[i]), 0);
	}
	off[n] = b->len;
}

/* Records written back to back read back in order with their own sizes. */
START_TEST(records_back_to_back)
{
	enum { N = 3 * NTYPES };
	crdt_op ops[N];
	size_t off[N + 1];
	for (size_t i = 0; i < N; i++)
		make_op(&ops[i], (enum crdt_op_type)(i % NTYPES + 1), (enum shape)(i / NTYPES));
	struct sync_buf b = { 0 };
	encode_all(&b, ops, N, off);
	size_t pos = 0;
	for (size_t i = 0; i < N; i++) {
		crdt_op got;
		size_t used = 0, cused = 0;
		ck_assert_uint_eq(pos, off[i]);
		ck_assert_int_eq(sync_check_record(b.p + pos, b.len - pos, &cused), 0);
		ck_assert_int_eq(sync_decode_record(b.p + pos, b.len - pos, &got, &used), 0);
		ck_assert_uint_eq(used, off[i + 1] - off[i]);
		ck_assert_uint_eq(cused, used);
		ck_assert_op_eq(&got, &ops[i]);
		crdt_op_free(&got);
		pos += used;
	}
	ck_assert_uint_eq(pos, b.len);
	/* Nothing left: that is "more may come", not an error or an op. */
	crdt_op got;
	size_t used = 0;
	ck_assert_int_eq(sync_decode_record(b.p + pos, 0, &got, &used), MCRDT_EPENDING);
	sync_buf_free(&b);
	for (size_t i = 0; i < N; i++)
		crdt_op_free(&ops[i]);
}
END_TEST

/* ---- truncation ---- */

/*
 * Every prefix of a buffer of minimal and ordinary records of every type:
 * decoding it from the start gives exactly the records that end before the
 * cut, each equal to its original, then MCRDT_EPENDING at the cut one.
 */
START_TEST(truncated_at_every_byte)
{
	enum { N = 2 * NTYPES };
	crdt_op ops[N];
	size_t off[N + 1];
	for (size_t i = 0; i < N; i++)
		make_op(&ops[i], (enum crdt_op_type)(i % NTYPES + 1), i < NTYPES ? MINIMAL : MID);
	struct sync_buf b = { 0 };
	encode_all(&b, ops, N, off);
	for (size_t cut = 0; cut <= b.len; cut++) {
		uint8_t *p = malloc(cut ? cut : 1); /* exactly cut bytes: ASan sees any over-read */
		ck_assert_ptr_nonnull(p);
		memcpy(p, b.p, cut);
		size_t pos = 0, i = 0;
		for (;;) {
			crdt_op got;
			size_t used = 0, cused = 0;
			int rc = sync_decode_record(p + pos, cut - pos, &got, &used);
			int crc = sync_check_record(p + pos, cut - pos, &cused);
			if (rc != 0) {
				ck_assert_msg(rc == MCRDT_EPENDING, "cut %zu: record %zu gives %d (%s)", cut, i, rc,
					      mcrdt_error_last());
				ck_assert_int_eq(crc, MCRDT_EPENDING);
				break;
			}
			ck_assert_int_eq(crc, 0);
			ck_assert_uint_lt(i, N);
			ck_assert_msg(off[i + 1] <= cut, "cut %zu: record %zu decoded without its end", cut, i);
			ck_assert_uint_eq(used, off[i + 1] - off[i]);
			ck_assert_uint_eq(cused, used);
			ck_assert_op_eq(&got, &ops[i]);
			crdt_op_free(&got);
			pos += used;
			i++;
		}
		/* Stopped at the first record not wholly inside the prefix. */
		ck_assert_uint_eq(pos, off[i]);
		ck_assert(i == N || off[i + 1] > cut);
		free(p);
	}
	sync_buf_free(&b);
	for (size_t i = 0; i < N; i++)
		crdt_op_free(&ops[i]);
}
END_TEST

/* The same for records at their bounds (one each of every type): every cut
 * inside a large record is pending, however much of it is there. */
START_TEST(truncated_large_records)
{
	crdt_op ops[NTYPES];
	size_t off[NTYPES + 1];
	for (size_t i = 0; i < NTYPES; i++)
		make_op(&ops[i], (enum crdt_op_type)(i + 1), FULL);
	struct sync_buf b = { 0 };
	encode_all(&b, ops, NTYPES, off);
	for (size_t i = 0; i < NTYPES; i++) {
		const uint8_t *rec = b.p + off[i];
		size_t size = off[i + 1] - off[i];
		for (size_t cut = 0; cut < size; cut++) {
			crdt_op got;
			size_t used = 0;
			int rc = sync_decode_record(rec, cut, &got, &used);
			ck_assert_msg(rc == MCRDT_EPENDING, "%s record cut at %zu of %zu: %d", crdt_op_type_name(ops[i].type),
				      cut, size, rc);
			ck_assert_int_eq(sync_check_record(rec, cut, &used), MCRDT_EPENDING);
		}
		crdt_op got;
		size_t used = 0;
		ck_assert_int_eq(sync_decode_record(rec, size, &got, &used), 0);
		ck_assert_uint_eq(used, size);
		ck_assert_op_eq(&got, &ops[i]);
		crdt_op_free(&got);
	}
	sync_buf_free(&b);
	for (size_t i = 0; i < NTYPES; i++)
		crdt_op_free(&ops[i]);
}
END_TEST

/* ---- damage ---- */

/*
 * Flips every bit of a buffer of n records, one at a time, and decodes the
 * buffer from the start. The records before the flipped one still come
 * back equal to their originals; the flipped one is refused
 * (ECORRUPT, EPENDING or EVERSION) and never read as an op. Returns how
 * many flips were detected: all of them.
 */
static size_t flip_every_bit(const crdt_op *ops, size_t n)
{
	size_t *off = calloc(n + 1, sizeof *off);
	ck_assert_ptr_nonnull(off);
	struct sync_buf b = { 0 };
	encode_all(&b, ops, n, off);
	uint8_t *p = malloc(b.len);
	ck_assert_ptr_nonnull(p);
	size_t detected = 0;
	for (size_t bit = 0; bit < 8 * b.len; bit++) {
		size_t byte = bit / 8;
		memcpy(p, b.p, b.len);
		p[byte] ^= (uint8_t)(1u << (bit % 8));
		size_t pos = 0;
		for (size_t i = 0; i < n; i++) {
			bool inside = byte >= off[i] && byte < off[i + 1];
			crdt_op got;
			size_t used = 0;
			int rc = sync_decode_record(p + pos, b.len - pos, &got, &used);
			if (rc == 0) {
				ck_assert_msg(!inside, "flip of bit %zu (byte %zu of record %zu) went unnoticed", bit,
					      byte - off[i], i);
				ck_assert_uint_eq(used, off[i + 1] - off[i]);
				ck_assert_op_eq(&got, &ops[i]);
				crdt_op_free(&got);
				pos += used;
				continue;
			}
			ck_assert_msg(rc == MCRDT_ECORRUPT || rc == MCRDT_EPENDING || rc == MCRDT_EVERSION,
				      "flip of bit %zu: code %d", bit, rc);
			ck_assert_msg(inside, "flip of bit %zu (record at %zu) refused record %zu", bit, byte, i);
			/* The framing check alone sees it too. */
			size_t cused;
			ck_assert_int_eq(sync_check_record(p + pos, b.len - pos, &cused), rc);
			detected++;
			break;
		}
	}
	free(p);
	sync_buf_free(&b);
	free(off);
	return detected;
}

/* Three records: every single-bit flip is noticed in the record it hits. */
START_TEST(bit_flips_detected)
{
	crdt_op ops[3];
	make_op(&ops[0], CRDT_OP_MBOX_CREATE, MID);
	make_op(&ops[1], CRDT_OP_APPEND, MID);
	make_op(&ops[2], CRDT_OP_FLAGS_SET, MID);
	struct sync_buf b = { 0 };
	size_t off[4];
	encode_all(&b, ops, 3, off);
	size_t bits = 8 * b.len;
	sync_buf_free(&b);
	ck_assert_uint_eq(flip_every_bit(ops, 3), bits);
	for (size_t i = 0; i < 3; i++)
		crdt_op_free(&ops[i]);

	/* And a minimal record of every type, where every byte matters. */
	crdt_op all[NTYPES];
	size_t aoff[NTYPES + 1];
	for (size_t i = 0; i < NTYPES; i++)
		make_op(&all[i], (enum crdt_op_type)(i + 1), MINIMAL);
	encode_all(&b, all, NTYPES, aoff);
	bits = 8 * b.len;
	sync_buf_free(&b);
	ck_assert_uint_eq(flip_every_bit(all, NTYPES), bits);
	for (size_t i = 0; i < NTYPES; i++)
		crdt_op_free(&all[i]);
}
END_TEST

/* ---- hand-built records ---- */

/* The hand builder writes exactly what the encoder writes. */
START_TEST(hand_built_matches_encoder)
{
	crdt_op op;
	crdt_op_init(&op, CRDT_OP_APPEND);
	op.id = (crdt_dot){ 7, 2 };
	set_base(&op, 7, 1);
	set_base(&op, 5, 3);
	op.mbox = op.space = (crdt_dot){ 5, 3 };
	op.uid = 9;
	ck_assert_int_eq(crdt_op_add_flag(&op, "\\Seen", 5), 0);
	ck_assert_int_eq(crdt_op_set_meta(&op, "abc", 3), 0);
	struct sync_buf enc = { 0 };
	ck_assert_int_eq(sync_encode_record(&enc, &op), 0);

	struct bytes p = { 0 }, rec = { 0 };
	struct wire w = w_append();
	b_wire(&p, &w);
	b_frame(&rec, p.p, p.n);
	ck_assert_uint_eq(rec.n, enc.len);
	ck_assert_mem_eq(rec.p, enc.p, enc.len);
	ck_assert_int_eq(decode_payload(p.p, p.n, &op), 0);
	b_free(&p);
	b_free(&rec);
	sync_buf_free(&enc);
	crdt_op_free(&op);

	/* The other templates are valid ops too. */
	struct wire ok[] = { w_subscribe(), w_rename(), w_flags_add(), w_create() };
	for (size_t i = 0; i < sizeof ok / sizeof *ok; i++)
		expect_wire(&ok[i], 0, "template");
}
END_TEST

static void expect_version_error(const struct bytes *payload, const char *what)
{
	expect_payload(payload, MCRDT_EVERSION, what);
	char want[64];
	snprintf(want, sizeof want, "format version %d", SYNC_FORMAT_VERSION);
	ck_assert_msg(strstr(mcrdt_error_last(), want), "%s: message \"%s\" does not name the format version", what,
		      mcrdt_error_last());
}

/* A type from a newer format, with a valid checksum: refused by version. */
START_TEST(unknown_type_is_version_error)
{
	const uint64_t types[] = { CRDT_OP_TYPE_MAX + 1, 200, UINT64_C(1) << 32, UINT64_MAX };
	for (size_t i = 0; i < sizeof types / sizeof *types; i++) {
		struct wire w = w_subscribe();
		w.type = types[i];
		struct bytes p = { 0 };
		b_wire(&p, &w);
		expect_version_error(&p, "unknown type, valid body");
		b_free(&p);
		/* Whatever follows the type and mask is not looked at. */
		b_var(&p, types[i]);
		b_var(&p, SYNC_F_NAME);
		b_fill(&p, 0xff, 40);
		expect_version_error(&p, "unknown type, garbage body");
		b_free(&p);
	}
	/* Type 0 was never valid: refused too (as a version error today). */
	struct wire w = w_subscribe();
	w.type = 0;
	struct bytes p = { 0 };
	b_wire(&p, &w);
	int rc = decode_payload(p.p, p.n, NULL);
	ck_assert(rc == MCRDT_EVERSION || rc == MCRDT_ECORRUPT);
	b_free(&p);
}
END_TEST

/* A field bit from a newer format, with a valid checksum: refused by version. */
START_TEST(unknown_field_is_version_error)
{
	const uint64_t bits[] = { 1u << 8, 1u << 9, UINT64_C(1) << 31, UINT64_C(1) << 63, ~UINT64_C(0xff) };
	for (size_t i = 0; i < sizeof bits / sizeof *bits; i++) {
		struct wire w = w_rename();
		w.mask |= bits[i];
		struct bytes p = { 0 };
		b_wire(&p, &w);
		expect_version_error(&p, "unknown field bit");
		b_free(&p);
	}
}
END_TEST

/* ---- hostile payloads with valid checksums ---- */

static char *filled(size_t n, char c)
{
	char *s = malloc(n + 1);
	ck_assert_ptr_nonnull(s);
	memset(s, c, n);
	s[n] = '\0';
	return s;
}

/* Lengths and counts over their bounds, the bytes present or not. */
START_TEST(hostile_lengths_over_bounds)
{
	struct bytes p = { 0 };
	struct wire w;

	/* Name: at the bound accepted, one over refused. */
	char *name = filled(CRDT_NAME_MAX + 1, 'n');
	w = w_subscribe();
	w.name = name + 1;
	expect_wire(&w, 0, "name at its bound");
	w.name = name;
	expect_wire(&w, MCRDT_ECORRUPT, "name over its bound");
	w.name = NULL; /* a huge length with nothing behind it */
	b_wire(&p, &w);
	b_var(&p, UINT64_C(1) << 62);
	expect_payload(&p, MCRDT_ECORRUPT, "name of 2^62 bytes");
	b_free(&p);
	free(name);

	/* Flag count and flag length. */
	const char *many[CRDT_FLAGS_MAX + 1];
	for (size_t i = 0; i <= CRDT_FLAGS_MAX; i++)
		many[i] = "$f";
	w = w_flags_add();
	w.flags = many;
	w.nflags = CRDT_FLAGS_MAX;
	expect_wire(&w, 0, "flags at their bound");
	w.nflags = CRDT_FLAGS_MAX + 1;
	expect_wire(&w, MCRDT_ECORRUPT, "flag count over its bound");
	w.flags = NULL;
	b_wire(&p, &w);
	b_var(&p, UINT64_MAX);
	expect_payload(&p, MCRDT_ECORRUPT, "flag count 2^64-1");
	b_free(&p);
	char *flag = filled(CRDT_FLAG_MAX + 1, 'k');
	const char *one[1] = { flag + 1 };
	w = w_flags_add();
	w.flags = one;
	expect_wire(&w, 0, "flag at its bound");
	one[0] = flag;
	expect_wire(&w, MCRDT_ECORRUPT, "flag over its bound");
	free(flag);

	/* Metadata. */
	char *meta = filled(CRDT_META_MAX + 1, 'm');
	w = w_append();
	w.meta = meta;
	w.meta_len = CRDT_META_MAX;
	expect_wire(&w, 0, "metadata at its bound");
	w.meta_len = CRDT_META_MAX + 1;
	expect_wire(&w, MCRDT_ECORRUPT, "metadata over its bound");
	w.meta = NULL;
	b_wire(&p, &w);
	b_var(&p, UINT64_C(1) << 40);
	expect_payload(&p, MCRDT_ECORRUPT, "metadata of 2^40 bytes");
	b_free(&p);
	free(meta);

	/* Dependency count: the entries present, or only the count. */
	uint64_t (*deps)[2] = calloc(DEPS_LIMIT + 1, sizeof *deps);
	ck_assert_ptr_nonnull(deps);
	for (size_t i = 0; i <= DEPS_LIMIT; i++) {
		deps[i][0] = 100 + i;
		deps[i][1] = 1;
	}
	w = w_subscribe();
	w.deps = (const uint64_t(*)[2])deps;
	w.ndeps = DEPS_LIMIT;
	expect_wire(&w, 0, "dependencies at their bound");
	w.ndeps = DEPS_LIMIT + 1;
	expect_wire(&w, MCRDT_ECORRUPT, "dependency count over its bound");
	free(deps);
	const uint64_t counts[] = { DEPS_LIMIT + 1, UINT64_C(1) << 62, UINT64_MAX };
	for (size_t i = 0; i < sizeof counts / sizeof *counts; i++) {
		b_var(&p, CRDT_OP_SUBSCRIBE);
		b_var(&p, SYNC_F_NAME);
		b_dot(&p, (crdt_dot){ 7, 1 });
		b_var(&p, counts[i]);
		b_fill(&p, 1, 64);
		expect_payload(&p, MCRDT_ECORRUPT, "huge dependency count, few entries");
		b_free(&p);
	}
}
END_TEST

/* The record's own length field: over the limit, or longer than 5 bytes. */
START_TEST(hostile_record_length)
{
	const uint8_t payload[] = { 1, 2, 3 };
	struct bytes rec = { 0 };
	crdt_op op;
	size_t used;

	/* SYNC_RECORD_MAX + 1 with every byte present: refused, not pending. */
	struct bytes len = { 0 };
	b_var(&len, SYNC_RECORD_MAX + 1);
	uint8_t *big = calloc(SYNC_RECORD_MAX + 1, 1);
	ck_assert_ptr_nonnull(big);
	b_frame_len(&rec, len.p, len.n, big, SYNC_RECORD_MAX + 1);
	ck_assert_int_eq(sync_decode_record(rec.p, rec.n, &op, &used), MCRDT_ECORRUPT);
	ck_assert_int_eq(sync_check_record(rec.p, rec.n, &used), MCRDT_ECORRUPT);
	/* ... and with only its first bytes: waiting for 4 MiB more would
	 * let a damaged length swallow the rest of a log. */
	ck_assert_int_eq(sync_decode_record(rec.p, len.n + 16, &op, &used), MCRDT_ECORRUPT);
	b_free(&rec);
	b_free(&len);

	/* Exactly SYNC_RECORD_MAX passes the framing; its payload is judged. */
	b_var(&len, SYNC_RECORD_MAX);
	struct bytes p = { 0 };
	struct wire w = w_subscribe();
	b_wire(&p, &w);
	memcpy(big, p.p, p.n); /* a valid op followed by stray zeros */
	b_frame_len(&rec, len.p, len.n, big, SYNC_RECORD_MAX);
	ck_assert_int_eq(sync_check_record(rec.p, rec.n, &used), 0);
	ck_assert_uint_eq(used, rec.n);
	ck_assert_int_eq(sync_decode_record(rec.p, rec.n, &op, &used), MCRDT_ECORRUPT);
	b_free(&rec);
	b_free(&len);
	b_free(&p);
	free(big);

	/* Lengths of 2^35-1 and 2^64-1 in 5 or 10 bytes. */
	const uint8_t l5[] = { 0xff, 0xff, 0xff, 0xff, 0x7f };
	b_frame_len(&rec, l5, sizeof l5, payload, sizeof payload);
	ck_assert_int_eq(sync_decode_record(rec.p, rec.n, &op, &used), MCRDT_ECORRUPT);
	b_free(&rec);
	const uint8_t l10[] = { 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01 };
	b_frame_len(&rec, l10, sizeof l10, payload, sizeof payload);
	ck_assert_int_eq(sync_decode_record(rec.p, rec.n, &op, &used), MCRDT_ECORRUPT);
	b_free(&rec);
	/* A small length padded to 6 bytes. */
	const uint8_t l6[] = { 0x83, 0x80, 0x80, 0x80, 0x80, 0x00 };
	b_frame_len(&rec, l6, sizeof l6, payload, sizeof payload);
	ck_assert_int_eq(sync_decode_record(rec.p, rec.n, &op, &used), MCRDT_ECORRUPT);
	ck_assert_int_eq(sync_check_record(rec.p, rec.n, &used), MCRDT_ECORRUPT);
	b_free(&rec);
	/* A checksum that does not match a right length: corrupt. */
	b_frame(&rec, payload, sizeof payload);
	rec.p[rec.n - 1] ^= 0x40;
	ck_assert_int_eq(sync_decode_record(rec.p, rec.n, &op, &used), MCRDT_ECORRUPT);
	b_free(&rec);
}
END_TEST

/* Numbers longer than 10 bytes or over 64 bits, anywhere in the payload. */
START_TEST(hostile_varints)
{
	static const uint8_t eleven[] = { 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x00 };
	static const uint8_t overflow[] = { 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02 };
	static const uint8_t cont[] = { 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x81, 0x00 };
	static const uint8_t ends[] = { 0xff, 0xff, 0xff };
	static const struct {
		const uint8_t *b;
		size_t n;
	} bad[] = { { eleven, sizeof eleven }, { overflow, sizeof overflow }, { cont, sizeof cont }, { ends, sizeof ends } };
	for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
		/* As the type, the mask, the issuer, the counter, a dependency, a mailbox. */
		for (int where = 0; where < 6; where++) {
			struct bytes p = { 0 };
			if (where == 0)
				b_raw(&p, bad[i].b, bad[i].n);
			else
				b_var(&p, CRDT_OP_MBOX_RENAME);
			if (where == 1)
				b_raw(&p, bad[i].b, bad[i].n);
			else if (where > 1)
				b_var(&p, SYNC_F_MBOX | SYNC_F_NAME);
			if (where == 2)
				b_raw(&p, bad[i].b, bad[i].n);
			else if (where > 2)
				b_var(&p, 7);
			if (where == 3)
				b_raw(&p, bad[i].b, bad[i].n);
			else if (where > 3)
				b_var(&p, 2);
			if (where == 4) {
				b_var(&p, 1);
				b_raw(&p, bad[i].b, bad[i].n);
			} else if (where > 4) {
				b_var(&p, 1);
				b_dot(&p, (crdt_dot){ 5, 3 });
			}
			if (where == 5)
				b_raw(&p, bad[i].b, bad[i].n);
			if (bad[i].b != ends && where >= 2)
				b_str(&p, "Sent", 4); /* whatever the rest, the number is refused */
			int rc = decode_payload(p.p, p.n, NULL);
			ck_assert_msg(rc == MCRDT_ECORRUPT, "bad number %zu at %d: %d", i, where, rc);
			b_free(&p);
		}
	}
	/* The largest number, 10 bytes, is read (and then judged by its bound). */
	struct wire w = w_append();
	w.uid = UINT64_MAX;
	expect_wire(&w, MCRDT_ECORRUPT, "UID 2^64-1");
	w.uid = UINT64_C(1) << 32;
	expect_wire(&w, MCRDT_ECORRUPT, "UID 2^32");
	w.uid = CRDT_UID_MAX + UINT64_C(1);
	expect_wire(&w, MCRDT_ECORRUPT, "UID over CRDT_UID_MAX");
	w = w_create();
	w.uidvalidity = UINT64_C(1) << 32;
	expect_wire(&w, MCRDT_ECORRUPT, "UIDVALIDITY 2^32");
}
END_TEST

/* Strings that run past the record, and payloads cut anywhere (re-framed
 * with valid checksums): refused, never read past the end. */
START_TEST(hostile_short_payloads)
{
	struct bytes p = { 0 };
	struct wire w = w_subscribe();
	w.name = NULL;
	b_wire(&p, &w);
	b_var(&p, 10);
	b_raw(&p, "abc", 3);
	expect_payload(&p, MCRDT_ECORRUPT, "name past the record");
	b_free(&p);

	w = w_flags_add();
	w.flags = NULL;
	b_wire(&p, &w);
	b_var(&p, 2);
	b_str(&p, "\\Seen", 5);
	b_var(&p, 200);
	b_raw(&p, "$x", 2);
	expect_payload(&p, MCRDT_ECORRUPT, "second flag past the record");
	b_free(&p);

	w = w_append();
	w.meta = NULL;
	b_wire(&p, &w);
	b_var(&p, 4);
	b_raw(&p, "abc", 3);
	expect_payload(&p, MCRDT_ECORRUPT, "metadata one byte past the record");
	b_free(&p);

	/* Every proper prefix of every template and of ordinary encoded ops. */
	struct wire ws[] = { w_subscribe(), w_rename(), w_flags_add(), w_append(), w_create() };
	for (size_t i = 0; i < sizeof ws / sizeof *ws; i++) {
		b_wire(&p, &ws[i]);
		for (size_t n = 0; n < p.n; n++) {
			int rc = decode_payload(p.p, n, NULL);
			ck_assert_msg(rc == MCRDT_ECORRUPT, "template %zu cut to %zu of %zu: %d", i, n, p.n, rc);
		}
		b_free(&p);
	}
	for (size_t t = 1; t <= NTYPES; t++) {
		crdt_op op;
		make_op(&op, (enum crdt_op_type)t, MID);
		struct sync_buf b = { 0 };
		ck_assert_int_eq(sync_encode_record(&b, &op), 0);
		const uint8_t *pl;
		size_t plen;
		payload_of(b.p, b.len, &pl, &plen);
		ck_assert_int_eq(decode_payload(pl, plen, &op), 0);
		for (size_t n = 0; n < plen; n++) {
			int rc = decode_payload(pl, n, NULL);
			ck_assert_msg(rc == MCRDT_ECORRUPT, "%s cut to %zu of %zu: %d", crdt_op_type_name(op.type), n,
				      plen, rc);
		}
		sync_buf_free(&b);
		crdt_op_free(&op);
	}
}
END_TEST

/* Bytes after a complete op inside the record. */
START_TEST(hostile_trailing_bytes)
{
	struct wire ws[] = { w_subscribe(), w_rename(), w_flags_add(), w_append(), w_create() };
	const uint8_t tails[][3] = { { 0 }, { 0x80 }, { 0xff, 0x01 }, { 'x', 'y', 'z' } };
	const size_t tail_len[] = { 1, 1, 2, 3 };
	for (size_t i = 0; i < sizeof ws / sizeof *ws; i++) {
		for (size_t k = 0; k < sizeof tail_len / sizeof *tail_len; k++) {
			struct bytes p = { 0 };
			b_wire(&p, &ws[i]);
			b_raw(&p, tails[k], tail_len[k]);
			expect_payload(&p, MCRDT_ECORRUPT, "stray bytes after the op");
			b_free(&p);
		}
	}
}
END_TEST

/* Well-formed payloads whose op fails crdt_op_validate. */
START_TEST(hostile_invalid_fields)
{
	struct wire w;
	static const uint64_t dep_too_high[][2] = { { 5, 3 }, { 7, 5 } };
	static const uint64_t dep_zero[][2] = { { 5, 3 }, { 0, 3 } };
	static const uint64_t dep_max[][2] = { { 5, 3 }, { UINT64_MAX, 3 } };
	static const uint64_t dep_base_over[][2] = { { 5, CRDT_COUNTER_MAX + 1 } };

	w = w_rename();
	w.mbox = (crdt_dot){ 5, 4 };
	expect_wire(&w, MCRDT_ECORRUPT, "mailbox outside the deps");
	w.mbox = (crdt_dot){ 6, 1 };
	expect_wire(&w, MCRDT_ECORRUPT, "mailbox of an unknown replica");
	w = w_flags_add();
	w.msg = (crdt_dot){ 5, 9 };
	expect_wire(&w, MCRDT_ECORRUPT, "message outside the deps");
	w = w_append();
	w.space = (crdt_dot){ 8, 1 };
	expect_wire(&w, MCRDT_ECORRUPT, "UID space outside the deps");
	w = w_rename();
	w.mask &= ~(uint64_t)SYNC_F_MBOX;
	expect_wire(&w, MCRDT_ECORRUPT, "rename without its mailbox");
	w = w_append();
	w.uid = 0;
	expect_wire(&w, MCRDT_ECORRUPT, "append with UID 0");
	w = w_create();
	w.uidvalidity = 0;
	expect_wire(&w, MCRDT_ECORRUPT, "create with UIDVALIDITY 0");
	w = w_create();
	w.mask &= ~(uint64_t)SYNC_F_NAME;
	expect_wire(&w, MCRDT_ECORRUPT, "create without a name");

	/* Fields the type does not have. */
	w = w_subscribe();
	w.mask |= SYNC_F_UIDVALIDITY;
	w.uidvalidity = 3;
	expect_wire(&w, MCRDT_ECORRUPT, "subscribe with a UIDVALIDITY");
	w = w_rename();
	w.mask |= SYNC_F_META;
	w.meta = "x";
	w.meta_len = 1;
	expect_wire(&w, MCRDT_ECORRUPT, "rename with metadata");
	w = w_flags_add();
	w.mask |= SYNC_F_UID | SYNC_F_SPACE;
	w.uid = 4;
	w.space = (crdt_dot){ 5, 3 };
	expect_wire(&w, MCRDT_ECORRUPT, "flags with a UID");
	w = w_append();
	w.mask |= SYNC_F_NAME;
	w.name = "x";
	expect_wire(&w, MCRDT_ECORRUPT, "append with a name");

	/* Strings with forbidden bytes. */
	w = w_subscribe();
	w.name = "IN\x01" "BOX";
	expect_wire(&w, MCRDT_ECORRUPT, "name with a control character");
	w.name = "";
	expect_wire(&w, MCRDT_ECORRUPT, "empty name");
	struct bytes p = { 0 };
	w.name = NULL;
	b_wire(&p, &w);
	b_str(&p, "IN\0BOX", 6);
	expect_payload(&p, MCRDT_ECORRUPT, "name with a NUL");
	b_free(&p);
	static const char *const spaced[] = { "\\Seen", "two words" };
	static const char *const empty[] = { "" };
	w = w_flags_add();
	w.flags = spaced;
	w.nflags = 2;
	expect_wire(&w, MCRDT_ECORRUPT, "flag with a space");
	w.flags = empty;
	w.nflags = 1;
	expect_wire(&w, MCRDT_ECORRUPT, "empty flag");

	/* Dots and dependencies that cannot be. */
	w = w_subscribe();
	w.id = (crdt_dot){ 0, 1 };
	expect_wire(&w, MCRDT_ECORRUPT, "issuer 0");
	w.id = (crdt_dot){ 7, 0 };
	expect_wire(&w, MCRDT_ECORRUPT, "counter 0");
	w = w_rename();
	w.deps = dep_too_high;
	w.ndeps = 2;
	expect_wire(&w, MCRDT_ECORRUPT, "deps naming the op itself");
	w.deps = dep_zero;
	expect_wire(&w, MCRDT_ECORRUPT, "dependency on replica 0");
	w.deps = dep_max;
	expect_wire(&w, MCRDT_ECORRUPT, "dependency on replica 2^64-1");
	w.deps = dep_base_over;
	w.ndeps = 1;
	b_wire(&p, &w);
	int rc = decode_payload(p.p, p.n, NULL);
	ck_assert_msg(rc == MCRDT_ECORRUPT || rc == MCRDT_ERANGE, "dependency over CRDT_COUNTER_MAX: %d", rc);
	b_free(&p);

	/* An empty payload. */
	ck_assert_int_eq(decode_payload("", 0, NULL), MCRDT_ECORRUPT);

	/* Counters over CRDT_COUNTER_MAX: a range error. */
	w = w_subscribe();
	w.id = (crdt_dot){ 7, CRDT_COUNTER_MAX + 1 };
	expect_wire(&w, MCRDT_ERANGE, "counter over CRDT_COUNTER_MAX");
	w.id = (crdt_dot){ 7, UINT64_MAX };
	expect_wire(&w, MCRDT_ERANGE, "counter 2^64-1");
	w.id = (crdt_dot){ 7, CRDT_COUNTER_MAX };
	expect_wire(&w, 0, "counter at CRDT_COUNTER_MAX");
}
END_TEST

/* ---- encoding refusals ---- */

/* An invalid op is refused with MCRDT_EINVAL and the buffer is untouched. */
START_TEST(encode_invalid_refused)
{
	crdt_op valid;
	make_op(&valid, CRDT_OP_APPEND, MID);
	struct sync_buf b = { 0 };
	ck_assert_int_eq(sync_encode_record(&b, &valid), 0);
	size_t len = b.len, cap = b.cap;
	uint8_t *copy = malloc(len);
	ck_assert_ptr_nonnull(copy);
	memcpy(copy, b.p, len);

	for (int which = 0; which < 14; which++) {
		crdt_op op;
		make_op(&op, which < 7 ? CRDT_OP_MBOX_RENAME : CRDT_OP_APPEND, MID);
		const char *what = "?";
		switch (which) {
		case 0: what = "counter 0"; op.id.counter = 0; break;
		case 1:
			what = "counter over CRDT_COUNTER_MAX";
			op.id.counter = CRDT_COUNTER_MAX + 1;
			set_base(&op, op.id.replica, CRDT_COUNTER_MAX);
			break;
		case 2: what = "type 0"; op.type = (enum crdt_op_type)0; break;
		case 3: what = "type over the maximum"; op.type = (enum crdt_op_type)(CRDT_OP_TYPE_MAX + 1); break;
		case 4: what = "mailbox outside the deps"; op.mbox = (crdt_dot){ 3, 18 }; break;
		case 5:
			what = "name over CRDT_NAME_MAX";
			free(op.name.s);
			op.name.s = filled(CRDT_NAME_MAX + 1, 'n');
			op.name.len = CRDT_NAME_MAX + 1;
			break;
		case 6: what = "empty name"; op.name.len = 0; op.name.s[0] = '\0'; break;
		case 7: what = "flag with a space"; ck_assert_int_eq(crdt_op_add_flag(&op, "a b", 3), 0); break;
		case 8:
			what = "too many flags";
			while (op.nflags < CRDT_FLAGS_MAX)
				ck_assert_int_eq(crdt_op_add_flag(&op, "$k", 2), 0);
			op.flags = realloc(op.flags, (op.nflags + 1) * sizeof *op.flags);
			ck_assert_ptr_nonnull(op.flags);
			op.flags[op.nflags].s = filled(2, 'z');
			op.flags[op.nflags++].len = 2;
			break;
		case 9: what = "UID over CRDT_UID_MAX"; op.uid = CRDT_UID_MAX + 1u; break;
		case 10: what = "UID 0"; op.uid = 0; break;
		case 11: what = "metadata over CRDT_META_MAX"; op.meta_len = CRDT_META_MAX + 1; break;
		case 12: what = "a dependency on replica 2^64-1"; set_base(&op, UINT64_MAX, 1); break;
		case 13: what = "a UIDVALIDITY on an append"; op.uidvalidity = 5; break;
		}
		if (which == 11) { /* a real buffer behind the length */
			free(op.meta);
			op.meta = malloc(CRDT_META_MAX + 1);
			ck_assert_ptr_nonnull(op.meta);
			memset(op.meta, 'm', CRDT_META_MAX + 1);
		}
		int rc = sync_encode_record(&b, &op);
		ck_assert_msg(rc == MCRDT_EINVAL, "%s: got %d", what, rc);
		ck_assert_msg(b.len == len && b.cap == cap && memcmp(b.p, copy, len) == 0, "%s: buffer changed", what);
		crdt_op_free(&op);
	}

	/* Dependencies on more replicas than a record may carry: refused the
	 * same way (validation bounds them, so no op outgrows a record). */
	crdt_op big;
	make_op(&big, CRDT_OP_SUBSCRIBE, MID);
	for (uint64_t r = 1; r <= SYNC_RECORD_MAX / 20 + 10; r++)
		set_base(&big, (UINT64_C(1) << 62) + r, UINT64_C(1) << 40);
	ck_assert_int_ne(crdt_op_validate(&big), 0);
	ck_assert_int_eq(sync_encode_record(&b, &big), MCRDT_EINVAL);
	ck_assert(b.len == len && b.cap == cap && memcmp(b.p, copy, len) == 0);
	crdt_op_free(&big);

	/* The buffer still reads back as the one record it held. */
	crdt_op got;
	size_t used = 0;
	ck_assert_int_eq(sync_decode_record(b.p, b.len, &got, &used), 0);
	ck_assert_uint_eq(used, len);
	ck_assert_op_eq(&got, &valid);
	crdt_op_free(&got);
	free(copy);
	sync_buf_free(&b);
	crdt_op_free(&valid);
}
END_TEST

/* ---- regressions: defects found in review, fixed ---- */

/*
 * Regression (fixed): the encoder accepts an op with more than 65536 dependencies on other
 * replicas (crdt_op_validate does not bound them and the size check allows
 * ~200000), but the decoder refuses such a record as corrupt: the log
 * would hold a record that can never be read back. An encoder must refuse
 * what its decoder refuses.
 */
START_TEST(encoder_refuses_undecodable_deps)
{
	crdt_op op;
	make_op(&op, CRDT_OP_SUBSCRIBE, MINIMAL);
	for (uint64_t r = 1; r <= DEPS_LIMIT + 1; r++)
		set_base(&op, 1000 + r, 1);
	struct sync_buf b = { 0 };
	int rc = sync_encode_record(&b, &op);
	if (rc == 0) {
		crdt_op got;
		size_t used = 0;
		rc = sync_decode_record(b.p, b.len, &got, &used);
		ck_assert_msg(rc == 0, "encoded a record the decoder refuses: %d (%s)", rc, mcrdt_error_last());
		ck_assert_op_eq(&got, &op);
		crdt_op_free(&got);
	} else {
		ck_assert_int_eq(rc, MCRDT_EINVAL);
		ck_assert_uint_eq(b.len, 0);
	}
	sync_buf_free(&b);
	crdt_op_free(&op);
}
END_TEST

/*
 * Regression (fixed): a field bit whose dot has replica 0 but a non-zero counter is
 * decoded into the op when the type does not use the field (validate only
 * looks at the replica there). The op that comes out differs from the one
 * it encodes to: decode(encode(decode(x))) != decode(x), and the stray
 * counter rides along into the model. The encoder never writes such a
 * dot; the decoder should refuse it (ECORRUPT).
 */
START_TEST(decoder_refuses_half_zero_dots)
{
	for (int which = 0; which < 3; which++) {
		struct wire w = w_subscribe();
		const char *what = "?";
		switch (which) {
		case 0: what = "mailbox (0, 5) on a subscribe"; w.mask |= SYNC_F_MBOX; w.mbox = (crdt_dot){ 0, 5 }; break;
		case 1: what = "message (0, 5) on a subscribe"; w.mask |= SYNC_F_MSG; w.msg = (crdt_dot){ 0, 5 }; break;
		case 2: what = "UID space (0, 5) on a subscribe"; w.mask |= SYNC_F_SPACE; w.space = (crdt_dot){ 0, 5 }; break;
		}
		struct bytes p = { 0 }, rec = { 0 };
		b_wire(&p, &w);
		b_frame(&rec, p.p, p.n);
		crdt_op got;
		size_t used = 0;
		int rc = sync_decode_record(rec.p, rec.n, &got, &used);
		if (rc == 0) {
			struct sync_buf b = { 0 };
			ck_assert_int_eq(sync_encode_record(&b, &got), 0);
			crdt_op again;
			ck_assert_int_eq(sync_decode_record(b.p, b.len, &again, &used), 0);
			const char *d = crdt_op_diff(&again, &got);
			ck_assert_msg(!d, "%s: decoded, and its re-encoding differs in %s", what, d ? d : "");
			crdt_op_free(&again);
			sync_buf_free(&b);
			crdt_op_free(&got);
		} else {
			ck_assert_int_eq(rc, MCRDT_ECORRUPT);
		}
		b_free(&p);
		b_free(&rec);
	}
}
END_TEST

/*
 * Regression (fixed; cost): a record of 65536 dependencies in descending replica order
 * (~600 KB) makes the decoder insert each at the front of the sorted
 * vector: quadratic memmove, seconds of CPU per record for a peer's
 * single message. The decoder should insert in O(log n) amortized (or
 * refuse unsorted or duplicate replicas: the encoder writes them sorted).
 */
START_TEST(descending_deps_refused)
{
	uint64_t (*deps)[2] = calloc(DEPS_LIMIT, sizeof *deps);
	ck_assert_ptr_nonnull(deps);
	for (size_t i = 0; i < DEPS_LIMIT; i++) {
		deps[i][0] = 100 + DEPS_LIMIT - i;
		deps[i][1] = 1;
	}
	struct wire w = w_subscribe();
	w.deps = (const uint64_t(*)[2])deps;
	w.ndeps = DEPS_LIMIT;
	struct bytes p = { 0 };
	b_wire(&p, &w);
	/* Refused outright: the encoder writes them ascending, so anything
	 * else is not ours, and no peer makes a decoder shift a vector per entry. */
	int rc = decode_payload(p.p, p.n, NULL);
	ck_assert_int_eq(rc, MCRDT_ECORRUPT);
	b_free(&p);
	free(deps);
}
END_TEST

/*
 * Regression (fixed): an unknown type is judged only after the field mask has been read,
 * and only if that read succeeded: a record of a newer format whose type
 * is new and whose next bytes are not a version-1 mask (or are absent) is
 * MCRDT_ECORRUPT, "damage", instead of MCRDT_EVERSION naming the format.
 * sync_log_replay then reports a corrupt segment for a newer mcrdt's log.
 * The type should be checked as soon as it is read.
 */
START_TEST(unknown_type_judged_first)
{
	const uint64_t type = CRDT_OP_TYPE_MAX + 1;
	struct bytes p = { 0 };
	b_var(&p, type); /* the type alone */
	expect_version_error(&p, "unknown type, nothing after it");
	b_free(&p);
	b_var(&p, type); /* a newer body that is not a version-1 mask */
	b_fill(&p, 0xff, 12);
	expect_version_error(&p, "unknown type, unreadable mask");
	b_free(&p);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("codec");
	TCase *tc = tcase_create("codec");
	tcase_set_timeout(tc, 300);
	tcase_add_test(tc, round_trip_at_bounds);
	tcase_add_test(tc, round_trip_minimal_and_ordinary);
	tcase_add_test(tc, round_trip_deps_at_limit);
	tcase_add_test(tc, records_back_to_back);
	tcase_add_test(tc, truncated_at_every_byte);
	tcase_add_test(tc, truncated_large_records);
	tcase_add_test(tc, bit_flips_detected);
	tcase_add_test(tc, hand_built_matches_encoder);
	tcase_add_test(tc, unknown_type_is_version_error);
	tcase_add_test(tc, unknown_field_is_version_error);
	tcase_add_test(tc, hostile_lengths_over_bounds);
	tcase_add_test(tc, hostile_record_length);
	tcase_add_test(tc, hostile_varints);
	tcase_add_test(tc, hostile_short_payloads);
	tcase_add_test(tc, hostile_trailing_bytes);
	tcase_add_test(tc, hostile_invalid_fields);
	tcase_add_test(tc, encode_invalid_refused);
	suite_add_tcase(s, tc);
	TCase *tr = tcase_create("regressions");
	tcase_set_timeout(tr, 300);
	tcase_add_test(tr, encoder_refuses_undecodable_deps);
	tcase_add_test(tr, decoder_refuses_half_zero_dots);
	tcase_add_test(tr, descending_deps_refused);
	tcase_add_test(tr, unknown_type_judged_first);
	suite_add_tcase(s, tr);
	return run_suite(s, CK_FORK_GETENV);
}
