/*
 * store/meta.h — what a replica records about a message's file in the
 * opaque meta bytes of an APPEND, COPY or MOVE op: the Maildir base name,
 * the size and the IMAP INTERNALDATE.
 *
 * The bytes travel to every peer, so decoding treats them as untrusted:
 * every field is bounded and the base name is checked to be one file name
 * inside a Maildir folder, never a path.
 *
 * Format 1: a format byte (1), then fields, each a tag varint, a length
 * varint and that many bytes. Tags: 1 base name (the bytes), 2 size (a
 * varint), 3 internal date (a varint). Unknown tags are skipped, so a
 * later version can add a field (a git blob id, say) that older replicas
 * pass over; a new format byte is for changes older replicas must not
 * misread.
 *
 * Thread-safety: pure functions with no shared state.
 * Errors: 0 or a negative MCRDT_E... code with mcrdt_error_last() set.
 */
#ifndef MCRDT_STORE_META_H
#define MCRDT_STORE_META_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct vbuf;

struct store_meta {
	const char *base;   /* Maildir base name (the file name before ":2,"), the same on every replica */
	size_t base_len;
	uint64_t size;      /* bytes of the message, at most STORE_META_SIZE_MAX */
	int64_t internaldate; /* seconds since the epoch, 0..STORE_META_DATE_MAX */
};

#define STORE_META_FORMAT 1
/* The most bytes an encoding may take; decoding refuses longer input. */
#define STORE_META_MAX 1024
/* The largest message size: 1 TiB. */
#define STORE_META_SIZE_MAX (UINT64_C(1) << 40)
/* The latest internal date: 9999-12-31 23:59:59 UTC, as IMAP's date-time
 * has four digits for the year. */
#define STORE_META_DATE_MAX INT64_C(253402300799)
/* The longest base name: a file name on common file systems. */
#define STORE_META_BASE_MAX 255

/*
 * Appends the format-1 encoding of m to out (a common/varint.h buffer,
 * owned by the caller; m is only read).
 *
 * MCRDT_EINVAL when m would not decode on a peer: a base name that fails
 * store_base_ok, a size over STORE_META_SIZE_MAX, a date outside
 * 0..STORE_META_DATE_MAX. MCRDT_ENOMEM (or out's earlier error). On
 * failure out->len is what it was (out->err is set when memory ran out).
 */
int store_meta_encode(const struct store_meta *m, struct vbuf *out);

/*
 * Decodes len bytes at p into *out. out->base points into p (it is NOT
 * NUL-terminated; use base_len), so p must outlive the use of out.
 *
 * MCRDT_EVERSION for a format byte other than 1. MCRDT_ECORRUPT, with a
 * message naming the field, for: empty or over STORE_META_MAX bytes,
 * data ending inside a field, a length past the end, a known field given
 * twice, a missing base name, size or date, a size or date field with
 * bytes after its number, a size over STORE_META_SIZE_MAX, a date over
 * STORE_META_DATE_MAX, and a base name that fails store_base_ok. On
 * failure *out is zeroed.
 */
int store_meta_decode(const uint8_t *p, size_t len, struct store_meta *out);

/*
 * Whether base (len bytes, NUL not needed) is a safe Maildir base name:
 * 1..STORE_META_BASE_MAX bytes of printable ASCII 0x21..0x7e, without '/'
 * or ':', not starting with '.' (so neither "." nor ".." nor a hidden
 * file). The store applies the same rule to names found on disk.
 */
bool store_base_ok(const char *base, size_t len);

#endif
