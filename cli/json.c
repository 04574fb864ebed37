/*
 * cli/json.c — the JSON writer behind --json: string escaping that turns
 * any bytes into valid JSON, and comma and line bookkeeping.
 */
#include "cli/json.h"

#include <assert.h>
#include <inttypes.h>
#include <string.h>

void json_init(struct json *j, FILE *f)
{
	j->f = f;
	j->depth = 0;
	j->after_key = false;
	for (size_t i = 0; i < JSON_DEPTH_MAX; i++)
		j->want_comma[i] = false;
}

/* The length of the well-formed UTF-8 sequence at s (at most len bytes),
 * or 0 when the bytes there are not one. */
static size_t utf8_len(const unsigned char *s, size_t len)
{
	unsigned char b = s[0];
	size_t need;
	unsigned char lo = 0x80, hi = 0xbf; /* allowed range of the second byte */
	if (b < 0x80)
		return 1;
	if (b >= 0xc2 && b <= 0xdf) {
		need = 2;
	} else if (b >= 0xe0 && b <= 0xef) {
		need = 3;
		if (b == 0xe0)
			lo = 0xa0; /* overlong */
		else if (b == 0xed)
			hi = 0x9f; /* surrogates */
	} else if (b >= 0xf0 && b <= 0xf4) {
		need = 4;
		if (b == 0xf0)
			lo = 0x90; /* overlong */
		else if (b == 0xf4)
			hi = 0x8f; /* above U+10FFFF */
	} else {
		return 0;
	}
	if (len < need || s[1] < lo || s[1] > hi)
		return 0;
	for (size_t k = 2; k < need; k++)
		if (s[k] < 0x80 || s[k] > 0xbf)
			return 0;
	return need;
}

void json_write_string(FILE *f, const char *s, size_t len)
{
	const unsigned char *p = (const unsigned char *)s;
	putc('"', f);
	for (size_t i = 0; i < len;) {
		unsigned char c = p[i];
		size_t n = utf8_len(p + i, len - i);
		if (n == 0) {
			fputs("\\ufffd", f);
			i++;
			continue;
		}
		if (n > 1) {
			/* U+2028 and U+2029 are valid JSON but end lines in JavaScript. */
			if (n == 3 && c == 0xe2 && p[i + 1] == 0x80 && (p[i + 2] == 0xa8 || p[i + 2] == 0xa9))
				fprintf(f, "\\u%04x", p[i + 2] == 0xa8 ? 0x2028u : 0x2029u);
			else
				fwrite(p + i, 1, n, f);
			i += n;
			continue;
		}
		switch (c) {
		case '"': fputs("\\\"", f); break;
		case '\\': fputs("\\\\", f); break;
		case '\b': fputs("\\b", f); break;
		case '\f': fputs("\\f", f); break;
		case '\n': fputs("\\n", f); break;
		case '\r': fputs("\\r", f); break;
		case '\t': fputs("\\t", f); break;
		default:
			if (c < 0x20 || c == 0x7f)
				fprintf(f, "\\u%04x", (unsigned)c);
			else
				putc(c, f);
		}
		i++;
	}
	putc('"', f);
}

/* Writes the separator due before a value (or a key) at the current depth. */
static void before_value(struct json *j)
{
	if (j->after_key) {
		j->after_key = false;
		return;
	}
	if (j->depth == 0)
		return;
	bool *comma = &j->want_comma[j->depth - 1];
	if (*comma)
		fputs(j->depth == 1 ? "," : ", ", j->f);
	if (j->depth == 1)
		fputs("\n  ", j->f);
	*comma = true;
}

static void open_container(struct json *j, char c)
{
	assert(j->depth < JSON_DEPTH_MAX);
	before_value(j);
	putc(c, j->f);
	j->want_comma[j->depth] = false;
	j->depth++;
}

static void close_container(struct json *j, char c)
{
	if (j->depth == 0)
		return;
	j->depth--;
	if (j->depth == 0 && j->want_comma[0])
		putc('\n', j->f);
	putc(c, j->f);
}

void json_object_begin(struct json *j)
{
	open_container(j, '{');
}

void json_object_end(struct json *j)
{
	close_container(j, '}');
}

void json_array_begin(struct json *j)
{
	open_container(j, '[');
}

void json_array_end(struct json *j)
{
	close_container(j, ']');
}

void json_key(struct json *j, const char *key)
{
	before_value(j);
	json_write_string(j->f, key, strlen(key));
	fputs(": ", j->f);
	j->after_key = true;
}

void json_string_n(struct json *j, const char *s, size_t len)
{
	before_value(j);
	json_write_string(j->f, s, len);
}

void json_string(struct json *j, const char *s)
{
	json_string_n(j, s, strlen(s));
}

void json_uint(struct json *j, uint64_t v)
{
	before_value(j);
	fprintf(j->f, "%" PRIu64, v);
}

void json_int(struct json *j, int64_t v)
{
	before_value(j);
	fprintf(j->f, "%" PRId64, v);
}

void json_bool(struct json *j, bool v)
{
	before_value(j);
	fputs(v ? "true" : "false", j->f);
}

void json_null(struct json *j)
{
	before_value(j);
	fputs("null", j->f);
}

void json_end(struct json *j)
{
	putc('\n', j->f);
}
