/*
 * fuzz/fuzz_util.h — shared by the fuzz targets and the corpus generator:
 * comparing two ops field by field, and a valid sample op of each type.
 */
#ifndef MCRDT_FUZZ_UTIL_H
#define MCRDT_FUZZ_UTIL_H

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <stdint.h>

#define XXH_INLINE_ALL
#include <xxhash.h>

#include "crdt/op.h"
#include "crdt/vv.h"
#include "mcrdt/errors.h"
#include "sync/codec.h"

/* Stops the run with a message: libFuzzer saves the input as a crash. */
#define FUZZ_FAIL(...)                                \
	do {                                          \
		fprintf(stderr, "fuzz check failed: "); \
		fprintf(stderr, __VA_ARGS__);         \
		fprintf(stderr, "\n");                \
		abort();                              \
	} while (0)

static inline bool fuzz_bytes_eq(const void *a, size_t alen, const void *b, size_t blen)
{
	return alen == blen && (alen == 0 || memcmp(a, b, alen) == 0);
}

/* The first field in which a and b differ, or NULL (crdt/op.h). */
static inline const char *fuzz_op_diff(const crdt_op *a, const crdt_op *b)
{
	return crdt_op_diff(a, b);
}

/*
 * A valid op of type t issued by replica `issuer` as its op number
 * `counter` (> 1): every field the type has is set, referring to dots of
 * replica 5 that its deps cover. 0, or a library error code.
 */
static inline int fuzz_sample_op(crdt_op *op, enum crdt_op_type t, uint64_t issuer, uint64_t counter)
{
	crdt_op_init(op, t);
	op->id = (crdt_dot){ issuer, counter };
	int rc = crdt_vv_set_base(&op->deps, issuer, counter - 1);
	if (!rc)
		rc = crdt_vv_set_base(&op->deps, 5, 40);
	if (!rc)
		rc = crdt_vv_set_base(&op->deps, 0x1234567, 2);
	bool name = false, mbox = false, msg = false, uid = false, flags = false, meta = false;
	switch (t) {
	case CRDT_OP_MBOX_CREATE: name = true; op->uidvalidity = 1700000000; break;
	case CRDT_OP_MBOX_RENAME: name = mbox = true; break;
	case CRDT_OP_MBOX_DELETE: mbox = true; break;
	case CRDT_OP_SUBSCRIBE:
	case CRDT_OP_UNSUBSCRIBE: name = true; break;
	case CRDT_OP_APPEND: mbox = uid = flags = meta = true; break;
	case CRDT_OP_COPY:
	case CRDT_OP_MOVE: mbox = msg = uid = flags = meta = true; break;
	case CRDT_OP_EXPUNGE: msg = true; break;
	case CRDT_OP_FLAGS_ADD:
	case CRDT_OP_FLAGS_REMOVE:
	case CRDT_OP_FLAGS_SET: msg = flags = true; break;
	case CRDT_OP_CLAIM: msg = uid = true; break;
	}
	if (mbox)
		op->mbox = (crdt_dot){ 5, 1 };
	if (msg)
		op->msg = (crdt_dot){ 5, 33 };
	if (uid) {
		op->space = (crdt_dot){ 5, 1 };
		op->uid = 4242;
	}
	if (!rc && name)
		rc = crdt_op_set_name(op, "INBOX/Archive 2024", 18);
	if (!rc && flags)
		rc = crdt_op_add_flag(op, "\\Seen", 5);
	if (!rc && flags)
		rc = crdt_op_add_flag(op, "$Label1", 7);
	if (!rc && meta)
		rc = crdt_op_set_meta(op, "size=1234;guid=abc", 18);
	if (!rc)
		rc = crdt_op_validate(op);
	if (rc)
		crdt_op_free(op);
	return rc;
}

/*
 * A log segment header (sync/log.h): "MCRDTLOG", the format version (low
 * 32 bits; the high 32 bits 0: records not salted), the first record's
 * index, XXH3-64 of those 24 bytes; every number little-endian.
 * fuzz_segment checks this layout against a header the log writes.
 */
#define FUZZ_HEADER_SIZE 32

static inline void fuzz_put64(uint8_t *p, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static inline uint64_t fuzz_get64(const uint8_t *p)
{
	uint64_t v = 0;
	for (int i = 0; i < 8; i++)
		v |= (uint64_t)p[i] << (8 * i);
	return v;
}

static inline void fuzz_segment_header(uint8_t h[FUZZ_HEADER_SIZE], uint64_t first)
{
	memcpy(h, "MCRDTLOG", 8);
	fuzz_put64(h + 8, SYNC_FORMAT_VERSION);
	fuzz_put64(h + 16, first);
	fuzz_put64(h + 24, XXH3_64bits(h, 24));
}

#endif
