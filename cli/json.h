/*
 * cli/json.h — a small JSON writer for the command's --json output.
 *
 * Strings are written as valid JSON whatever the bytes: quotes,
 * backslashes and control characters are escaped, and bytes that are not
 * well-formed UTF-8 (stray continuation bytes, overlong forms, surrogates,
 * code points above U+10FFFF, truncated sequences) become U+FFFD.
 *
 * The writer keeps track of commas: call json_key before each value of an
 * object. Elements of the outermost container go on lines of their own,
 * so a listing reads one object per line. Not thread-safe; one writer per
 * stream.
 */
#ifndef MCRDT_CLI_JSON_H
#define MCRDT_CLI_JSON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/* Containers nest at most this deep. */
#define JSON_DEPTH_MAX 16

struct json {
	FILE *f;
	unsigned depth;
	bool want_comma[JSON_DEPTH_MAX]; /* per open container: a value was written */
	bool after_key;                  /* the next value follows a key */
};

void json_init(struct json *j, FILE *f);
void json_object_begin(struct json *j);
void json_object_end(struct json *j);
void json_array_begin(struct json *j);
void json_array_end(struct json *j);
void json_key(struct json *j, const char *key);
void json_string(struct json *j, const char *s);
void json_string_n(struct json *j, const char *s, size_t len);
void json_uint(struct json *j, uint64_t v);
void json_int(struct json *j, int64_t v);
void json_bool(struct json *j, bool v);
void json_null(struct json *j);
/* Ends the document with a newline (after the outermost container). */
void json_end(struct json *j);

/* Writes s (len bytes) as one JSON string literal, quotes included. */
void json_write_string(FILE *f, const char *s, size_t len);

#endif
