/*
 * fuzz/make_corpus.c — writes the seed corpus of the fuzz targets:
 *
 *   DIR/record/NN-TYPE.rec      one valid record of each op type
 *   DIR/record/stream.rec       all of them back to back
 *   DIR/record/NN-TYPE.payload  the bare payloads (for the framed-payload
 *                               half of fuzz_record)
 *   DIR/segment/NAME.seg        inputs for fuzz_segment: a whole segment
 *                               file (mode byte 0), the same cut short,
 *                               and records behind headers the target
 *                               synthesizes, in one or two segments
 *
 * Deterministic: the same bytes on every run. Usage: make_corpus DIR
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "crdt/op.h"
#include "fuzz/fuzz_util.h"
#include "mcrdt/errors.h"
#include "sync/codec.h"

static void die(const char *what)
{
	fprintf(stderr, "make_corpus: %s: %s\n", what, mcrdt_error_last()[0] ? mcrdt_error_last() : strerror(errno));
	exit(1);
}

static void put(const char *dir, const char *sub, const char *name, const uint8_t *head, size_t hlen,
		const uint8_t *p, size_t len)
{
	char path[4096];
	snprintf(path, sizeof path, "%s/%s", dir, sub);
	if (mkdir(path, 0755) != 0 && errno != EEXIST)
		die(path);
	snprintf(path, sizeof path, "%s/%s/%s", dir, sub, name);
	FILE *f = fopen(path, "wb");
	if (!f || (hlen && fwrite(head, 1, hlen, f) != hlen) || (len && fwrite(p, 1, len, f) != len) || fclose(f) != 0)
		die(path);
}

int main(int argc, char **argv)
{
	if (argc != 2) {
		fprintf(stderr, "usage: make_corpus DIR\n");
		return 2;
	}
	const char *dir = argv[1];
	if (mkdir(dir, 0755) != 0 && errno != EEXIST)
		die(dir);

	enum { N = CRDT_OP_TYPE_MAX };
	crdt_op ops[N];
	struct sync_buf all = { 0 };
	size_t split = 0;
	for (int t = 1; t <= N; t++) {
		crdt_op *op = &ops[t - 1];
		if (fuzz_sample_op(op, (enum crdt_op_type)t, 0x77, (uint64_t)t + 1) != 0)
			die("sample op");
		struct sync_buf b = { 0 };
		if (sync_encode_record(&b, op) != 0 || sync_encode_record(&all, op) != 0)
			die("encode");
		if (t == 3)
			split = all.len;
		char name[64];
		snprintf(name, sizeof name, "%02d-%s.rec", t, crdt_op_type_name((enum crdt_op_type)t));
		put(dir, "record", name, NULL, 0, b.p, b.len);
		/* The payload: after the length varint, before the checksum. */
		size_t k = 0;
		while (b.p[k] & 0x80)
			k++;
		k++;
		snprintf(name + strlen(name) - 4, 9, ".payload");
		put(dir, "record", name, NULL, 0, b.p + k, b.len - k - 8);
		sync_buf_free(&b);
	}
	put(dir, "record", "stream.rec", NULL, 0, all.p, all.len);

	/* A whole segment file (after the mode byte): header, then the first
	 * five records; and the same cut short. */
	uint8_t head[1 + FUZZ_HEADER_SIZE] = { 0x00 };
	fuzz_segment_header(head + 1, 0);
	struct sync_buf five = { 0 };
	for (int i = 0; i < 5; i++)
		if (sync_encode_record(&five, &ops[i]) != 0)
			die("encode");
	put(dir, "segment", "raw-valid.seg", head, sizeof head, five.p, five.len);
	put(dir, "segment", "raw-torn.seg", head, sizeof head, five.p, five.len - 5);
	sync_buf_free(&five);
	const uint8_t synth = 0x01, small = 0x11;
	put(dir, "segment", "synth-header.seg", &synth, 1, all.p, all.len);
	put(dir, "segment", "small-segments.seg", &small, 1, all.p, all.len);
	/* Two segments split after the third record, with and without verify_from. */
	uint8_t two[3] = { 0x03, (uint8_t)(split & 0xff), (uint8_t)(split >> 8) };
	put(dir, "segment", "split.seg", two, 3, all.p, all.len);
	two[0] = 0x07;
	put(dir, "segment", "split-verify-from.seg", two, 3, all.p, all.len);
	two[0] = 0x0b | (5 << 5); /* second segment one index too far: a gap */
	put(dir, "segment", "split-gap.seg", two, 3, all.p, all.len);

	sync_buf_free(&all);
	for (int i = 0; i < N; i++)
		crdt_op_free(&ops[i]);
	return 0;
}
