/*
 * store/imap.h — the small IMAP vocabulary the store speaks: sequence sets
 * (RFC 3501 / RFC 9051 "sequence-set") and flags with their Maildir info
 * letters (\Seen \Answered \Flagged \Deleted \Draft <-> S R F T D).
 *
 * Internal to store/: never installed. Nothing here does I/O or keeps
 * state between calls. Thread-safety: pure functions with no shared state;
 * calls on different objects may run in parallel, one imap_set written by
 * one thread must not be read or written by another at the same time.
 *
 * Errors: 0 or a negative MCRDT_E... code with mcrdt_error_last() set to a
 * one-line message that quotes the offending input.
 */
#ifndef MCRDT_STORE_IMAP_H
#define MCRDT_STORE_IMAP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* ---- quoting input in error messages ---- */

/* Room for store_quote's output. */
#define STORE_QUOTE_SIZE 72

/*
 * Writes s (len bytes, NUL not needed) into buf as "text" for an error
 * message: bytes outside 0x20..0x7e become \xNN, and input longer than
 * fits is cut and followed by "...". Returns buf. Never fails.
 * (Shared by store/imap.c and store/meta.c; a candidate for common/.)
 */
const char *store_quote(char buf[STORE_QUOTE_SIZE], const void *s, size_t len);

/* ---- sequence sets ---- */

struct imap_range {
	uint32_t lo, hi; /* inclusive, lo <= hi */
};

/* Sorted by lo, disjoint and merged: no two ranges overlap or touch
 * (hi + 1 < next lo). The set owns r. */
struct imap_set {
	struct imap_range *r;
	size_t n, cap;
};
#define IMAP_SET_INIT { NULL, 0, 0 }

/*
 * Parses an IMAP sequence set such as "1:5,7,9:*" into out, which is
 * emptied first (its memory is reused) and stays owned by the caller.
 *
 * Numbers are nz-numbers: 1..4294967295 in decimal, no leading zero, no
 * sign, no spaces. "*" stands for star: the largest UID, or the message
 * count for sequence numbers. A range may be written either way round
 * ("5:2" is 2:5), so "n:*" with n > star is star:n, which always holds the
 * last message as the RFC requires. Ranges are merged.
 *
 * An empty mailbox has no last message: with star == 0 an element that
 * names "*" ("*", "1:*", "*:5") selects nothing, so "1:*" is the empty set
 * and never UID 1. Elements without "*" are kept: selecting a UID that
 * does not exist is not an error in IMAP. A parsed set never holds 0.
 *
 * MCRDT_EINVAL for NULL or empty text, an empty element (",", "1,,2",
 * "1,"), a missing side of a range ("1:", ":3"), 0, a leading zero, a
 * number above 4294967295, any other character, and "$" (the saved search
 * of RFC 5182, not supported); the message quotes the text and gives the
 * byte offset. MCRDT_ENOMEM. On failure out is empty.
 */
int imap_set_parse(const char *text, uint32_t star, struct imap_set *out);

/* Whether v is in s (binary search, O(log n)). */
bool imap_set_has(const struct imap_set *s, uint32_t v);

/*
 * Adds lo..hi (inclusive; given the wrong way round, the two are swapped)
 * keeping s sorted and merged. Adding at or next to the end of the set is
 * O(1) (amortised), so a set built from ascending numbers costs O(count);
 * adding elsewhere moves the ranges after it. 0 or MCRDT_ENOMEM (s is then
 * unchanged).
 */
int imap_set_add(struct imap_set *s, uint32_t lo, uint32_t hi);

/* Frees the ranges and leaves s empty and reusable (as IMAP_SET_INIT). */
void imap_set_free(struct imap_set *s);

/* ---- flags ---- */

enum imap_sysflag {
	IMAP_SEEN = 1,
	IMAP_ANSWERED = 2,
	IMAP_FLAGGED = 4,
	IMAP_DELETED = 8,
	IMAP_DRAFT = 16
};
#define IMAP_SYSFLAGS_ALL 31u

/*
 * Checks one flag as an IMAP client writes it.
 *
 * A system flag in any case ("\\seen") gets its canonical spelling in
 * *canon ("\\Seen", a static string) and its bit in *sys. A keyword (an
 * IMAP atom: 1..CRDT_FLAG_MAX bytes of printable ASCII 0x21..0x7e except
 * ( ) { % * " \ ]) gets *canon = flag and *sys = 0. canon and sys may be
 * NULL.
 *
 * MCRDT_EINVAL, with a message that quotes the flag and says what is
 * wrong, for NULL, an empty flag, \Recent (only the server sets it), any
 * other word starting with a backslash, a keyword that is too long or
 * holds a space, a control character, an 8-bit byte or an atom-special.
 */
int imap_flag_check(const char *flag, const char **canon, unsigned *sys);

/* The Maildir info letter of one system flag bit ('S' for IMAP_SEEN, 'R',
 * 'F', 'T', 'D'); '\0' for 0, an unknown bit or several bits. */
char imap_sysflag_letter(unsigned bit);

/* The system flag bit of a Maildir info letter ('S' gives IMAP_SEEN); 0
 * for any other letter (lowercase letters are keywords, 'P' is "passed",
 * which IMAP has no flag for). */
unsigned imap_letter_sysflag(char letter);

/* The canonical name of one system flag bit ("\\Seen", static); NULL for
 * 0, an unknown bit or several bits. */
const char *imap_sysflag_name(unsigned bit);

/* At most this many distinct flags in one list: the most one op carries. */
#define IMAP_FLAGS_MAX 128

#endif
