/*
 * maildir/mutf7.h — the modified UTF-7 of IMAP mailbox names (RFC 3501
 * section 5.1.3), to and from UTF-8.
 *
 * Dovecot stores Maildir++ folder names on disk in this encoding, so these
 * two functions sit between the names users see (UTF-8) and the directory
 * names we read and write. Printable US-ASCII other than '&' stands for
 * itself, '&' is "&-", and every run of other characters is '&', the
 * modified BASE64 of its UTF-16BE form, and '-'.
 *
 * Both directions are strict: the decoder accepts exactly the strings the
 * encoder produces, so a name has one spelling on disk and two directory
 * names never decode to the same mailbox. U+0000 is refused both ways: the
 * decoded name is a C string and could not carry it.
 *
 * Internal: never installed. Pure, no global state, thread-safe.
 */
#ifndef MCRDT_MAILDIR_MUTF7_H
#define MCRDT_MAILDIR_MUTF7_H

#include <stddef.h>

/* The longest input either function accepts, in bytes. */
#define MUTF7_MAX_INPUT ((size_t)64 * 1024)

/*
 * Encodes len bytes of UTF-8 at utf8 (NUL bytes are not terminators) into
 * modified UTF-7. On success *out is a malloc'd NUL-terminated string the
 * caller frees, and 0 is returned. On failure *out is untouched and the
 * result is MCRDT_EINVAL (invalid or too long UTF-8, U+0000) or
 * MCRDT_ENOMEM. utf8 may be NULL when len is 0.
 */
int mutf7_encode(const char *utf8, size_t len, char **out);

/*
 * Decodes len bytes of modified UTF-7 at mutf7 into UTF-8. On success *out
 * is a malloc'd NUL-terminated string the caller frees, and 0 is returned.
 * On failure *out is untouched and the result is MCRDT_EINVAL (anything the
 * encoder would not have produced, or input over MUTF7_MAX_INPUT) or
 * MCRDT_ENOMEM. mutf7 may be NULL when len is 0.
 */
int mutf7_decode(const char *mutf7, size_t len, char **out);

#endif
