/*
 * sync/codec.h — ops as bytes: the record format of the log and of the
 * replication exchange.
 *
 * A record is
 *     varint length | payload (length bytes) | XXH3-64 of (length, payload), 8 bytes LE
 * and a payload is
 *     varint type | varint field mask | id | deps | the fields the mask names
 * with every integer a LEB128 varint and every string length-prefixed.
 * The issuer's own entry of the deps is implied (counter - 1), so an op
 * costs a few bytes per other replica it has heard from.
 *
 * Decoding trusts nothing: every length is bounded before anything is
 * allocated, every field is checked by crdt_op_validate, and a type or
 * field bit this format version does not know is refused with
 * MCRDT_EVERSION naming the version, never guessed at.
 *
 * Pure: no I/O. Thread-safe (no shared state).
 */
#ifndef MCRDT_SYNC_CODEC_H
#define MCRDT_SYNC_CODEC_H

#include <stddef.h>
#include <stdint.h>

#include "crdt/op.h"

#define SYNC_FORMAT_VERSION 1

/* The field mask of format version 1: which optional fields follow, in
 * this order. A bit outside SYNC_F_KNOWN comes from a newer format. */
enum {
	SYNC_F_MBOX = 1 << 0,
	SYNC_F_MSG = 1 << 1,
	SYNC_F_SPACE = 1 << 2,
	SYNC_F_UID = 1 << 3,
	SYNC_F_UIDVALIDITY = 1 << 4,
	SYNC_F_NAME = 1 << 5,
	SYNC_F_FLAGS = 1 << 6,
	SYNC_F_META = 1 << 7,
	SYNC_F_KNOWN = (1 << 8) - 1,
};
/* The largest payload a record may carry. */
#define SYNC_RECORD_MAX (4u << 20)
/* Bytes of framing around a payload, at most (length varint + checksum). */
#define SYNC_RECORD_OVERHEAD (5 + 8)

#include "common/varint.h"

/* The growable byte buffer the encoder appends to (common/varint.h). */
#define sync_buf vbuf
static inline void sync_buf_free(struct vbuf *b)
{
	vbuf_free(b);
}

/* Appends op as one framed record. 0, MCRDT_ENOMEM, or MCRDT_EINVAL for
 * an op that fails crdt_op_validate or would exceed SYNC_RECORD_MAX. */
int sync_encode_record(struct sync_buf *b, const crdt_op *op);

/*
 * Reads one record from p[0, len).
 * Returns 0 with *op filled (the caller frees it with crdt_op_free) and
 * *used set to the record's size; MCRDT_EPENDING when the bytes end inside
 * the record (more may come: a torn tail, or a short read); MCRDT_ECORRUPT
 * for a bad checksum, a length over the limit or a malformed payload;
 * MCRDT_EVERSION for a type or field from a newer format; MCRDT_ERANGE for
 * a counter beyond CRDT_COUNTER_MAX.
 */
int sync_decode_record(const uint8_t *p, size_t len, crdt_op *op, size_t *used);

/* Checks framing and checksum only (no payload decoding): the same codes. */
int sync_check_record(const uint8_t *p, size_t len, size_t *used);

/*
 * Salted records: the stored checksum is XORed with salt. A log segment
 * salts its records with a random value from its header, so bytes that
 * merely look like a record (inside an op's metadata, say) never pass for
 * one of its own. The unsalted functions above use salt 0.
 */
int sync_check_record_salted(const uint8_t *p, size_t len, uint64_t salt, size_t *used);
int sync_decode_record_salted(const uint8_t *p, size_t len, uint64_t salt, crdt_op *op, size_t *used);
/* As sync_decode_record_salted, into an op that is empty (crdt_op_init or
 * crdt_op_reset): a loop that resets one op saves an allocation per record. */
int sync_decode_record_into(const uint8_t *p, size_t len, uint64_t salt, crdt_op *op, size_t *used);
/* Salts the record that ends at end (its last 8 bytes are the checksum). */
void sync_salt_record(uint8_t *end, uint64_t salt);

#endif
