/*
 * fuzz/fuzz_record.c — libFuzzer target for the op record codec
 * (sync/codec.h).
 *
 * Each input is used twice:
 *  (a) as a stream of records: decoded one after another from the start
 *      until the first refusal, as a log replay would;
 *  (b) as one payload: framed with a correct length and XXH3 checksum so
 *      that it gets past the framing to the payload decoder.
 * Every op that decodes must re-encode, decode back equal field by field,
 * and re-encode to the same bytes; every refusal must be one of the
 * documented codes, and the framing check must agree with the decoder.
 * Any other outcome aborts (libFuzzer keeps the input as a crash).

 */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define XXH_INLINE_ALL
#include <xxhash.h>

#include "crdt/op.h"
#include "fuzz/fuzz_util.h"
#include "mcrdt/errors.h"
#include "sync/codec.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int refusal_ok(int rc)
{
	return rc == MCRDT_ECORRUPT || rc == MCRDT_EPENDING || rc == MCRDT_EVERSION || rc == MCRDT_ERANGE ||
	       rc == MCRDT_ENOMEM;
}

/* A decoded op: encode, decode back, compare, encode again, compare bytes. */
static void check_round_trip(crdt_op *op)
{
	if (crdt_op_validate(op) != 0)
		FUZZ_FAIL("the decoder returned an op that fails validation: %s", mcrdt_error_last());
	struct sync_buf b = { 0 };
	int rc = sync_encode_record(&b, op);
	if (rc != 0)
		FUZZ_FAIL("a decoded op does not encode: %d (%s)", rc, mcrdt_error_last());
	crdt_op again;
	size_t used = 0;
	rc = sync_decode_record(b.p, b.len, &again, &used);
	if (rc != 0)
		FUZZ_FAIL("decode(encode(op)) refused: %d (%s)", rc, mcrdt_error_last());
	if (used != b.len)
		FUZZ_FAIL("decode(encode(op)) used %zu of %zu bytes", used, b.len);
	const char *d = fuzz_op_diff(op, &again);
	if (d)
		FUZZ_FAIL("decode(encode(op)) differs from op in %s", d);
	struct sync_buf b2 = { 0 };
	if (sync_encode_record(&b2, &again) != 0 || b2.len != b.len || memcmp(b2.p, b.p, b.len) != 0)
		FUZZ_FAIL("encoding is not stable across a round trip");
	sync_buf_free(&b2);
	crdt_op_free(&again);
	sync_buf_free(&b);
}

/* (a) The bytes as records back to back. */
static void decode_stream(const uint8_t *data, size_t size)
{
	size_t pos = 0;
	while (pos < size) {
		crdt_op op;
		size_t used = 0, cused = 0;
		int rc = sync_decode_record(data + pos, size - pos, &op, &used);
		int crc = sync_check_record(data + pos, size - pos, &cused);
		if (rc != 0) {
			if (!refusal_ok(rc))
				FUZZ_FAIL("decoder returned %d", rc);
			/* A framing refusal is the framing check's verdict too. */
			if (crc != 0 && crc != rc)
				FUZZ_FAIL("framing check says %d, decoder %d", crc, rc);
			if ((rc == MCRDT_EPENDING) != (crc == MCRDT_EPENDING))
				FUZZ_FAIL("pending disagrees: check %d, decode %d", crc, rc);
			return;
		}
		if (crc != 0 || cused != used)
			FUZZ_FAIL("decoded an op whose framing check says %d (%zu vs %zu bytes)", crc, cused, used);
		if (used == 0 || used > size - pos)
			FUZZ_FAIL("decoder used %zu of %zu bytes", used, size - pos);
		check_round_trip(&op);
		crdt_op_free(&op);
		pos += used;
	}
}

/* (b) The bytes as a payload, framed correctly. */
static void decode_payload(const uint8_t *data, size_t size)
{
	if (size > SYNC_RECORD_MAX)
		return;
	uint8_t *rec = malloc(size + SYNC_RECORD_OVERHEAD + 1);
	if (!rec)
		return;
	size_t k = 0;
	uint64_t n = size;
	do {
		uint8_t c = (uint8_t)(n & 0x7f);
		n >>= 7;
		rec[k++] = (uint8_t)(c | (n ? 0x80 : 0));
	} while (n);
	if (size)
		memcpy(rec + k, data, size);
	uint64_t sum = XXH3_64bits(rec, k + size);
	for (int i = 0; i < 8; i++)
		rec[k + size + (size_t)i] = (uint8_t)(sum >> (8 * i));
	size_t len = k + size + 8, used = 0;
	if (sync_check_record(rec, len, &used) != 0 || used != len)
		FUZZ_FAIL("a correctly framed payload fails the framing check");
	crdt_op op;
	int rc = sync_decode_record(rec, len, &op, &used);
	if (rc == 0) {
		if (used != len)
			FUZZ_FAIL("decoder used %zu of %zu bytes", used, len);
		check_round_trip(&op);
		crdt_op_free(&op);
	} else if (!refusal_ok(rc) || rc == MCRDT_EPENDING) {
		FUZZ_FAIL("a whole record gave %d", rc);
	}
	free(rec);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	decode_stream(data, size);
	decode_payload(data, size);
	return 0;
}
