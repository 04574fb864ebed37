/*
 * tests/cli/test_json.c — the command's JSON writer (cli/json.c): any
 * bytes come out as a valid JSON string (quotes, backslashes and control
 * characters escaped, bytes that are not well-formed UTF-8 as U+FFFD,
 * well-formed UTF-8 kept), and commas and nesting come out right.
 */
#include "tests/check_run.h"
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/json.h"

/* What json_write_string makes of len bytes at s. */
static char *escape(const char *s, size_t len)
{
	char *buf = NULL;
	size_t n = 0;
	FILE *f = open_memstream(&buf, &n);
	ck_assert_ptr_nonnull(f);
	json_write_string(f, s, len);
	fclose(f);
	return buf;
}

/* A string literal and its length, NULs inside included. */
#define S(lit) lit, sizeof(lit) - 1

static const struct {
	const char *in;
	size_t len;
	const char *out;
} strings[] = {
	{ S(""), "\"\"" },
	{ S("INBOX"), "\"INBOX\"" },
	{ S("a\"b\\c/d"), "\"a\\\"b\\\\c/d\"" },
	{ S("\\Seen"), "\"\\\\Seen\"" },
	{ S("\n\t\r\b\f"), "\"\\n\\t\\r\\b\\f\"" },
	{ S("\x01\x1f\x7f"), "\"\\u0001\\u001f\\u007f\"" },
	{ S("a\0b"), "\"a\\u0000b\"" },
	/* well-formed UTF-8 is kept: 2, 3 and 4 bytes, the largest code point */
	{ S("Entw\xc3\xbcrfe \xe2\x82\xac \xf0\x9f\x98\x80 \xf4\x8f\xbf\xbf"),
	  "\"Entw\xc3\xbcrfe \xe2\x82\xac \xf0\x9f\x98\x80 \xf4\x8f\xbf\xbf\"" },
	/* U+2028 and U+2029 end lines in JavaScript */
	{ S("\xe2\x80\xa8\xe2\x80\xa9"), "\"\\u2028\\u2029\"" },
	/* not UTF-8: a stray byte, continuation bytes, overlong forms,
	 * surrogates, above U+10FFFF, cut sequences */
	{ S("\xff"), "\"\\ufffd\"" },
	{ S("a\x80z"), "\"a\\ufffdz\"" },
	{ S("\xc0\xaf"), "\"\\ufffd\\ufffd\"" },
	{ S("\xe0\x80\xaf"), "\"\\ufffd\\ufffd\\ufffd\"" },
	{ S("\xed\xa0\x80"), "\"\\ufffd\\ufffd\\ufffd\"" },
	{ S("\xf4\x90\x80\x80"), "\"\\ufffd\\ufffd\\ufffd\\ufffd\"" },
	{ S("\xf8\x88\x80\x80\x80"), "\"\\ufffd\\ufffd\\ufffd\\ufffd\\ufffd\"" },
	{ S("x\xe2\x82"), "\"x\\ufffd\\ufffd\"" },
	{ S("\xc3"), "\"\\ufffd\"" },
	{ S("\xc3("), "\"\\ufffd(\"" },
};

START_TEST(string_escapes)
{
	char *got = escape(strings[_i].in, strings[_i].len);
	ck_assert_msg(strcmp(got, strings[_i].out) == 0, "case %d: got %s, expected %s", _i, got,
		      strings[_i].out);
	free(got);
}
END_TEST

/* Every single byte value, alone and between ASCII letters, gives a string
 * of printable ASCII or well-formed UTF-8 that starts and ends with a quote
 * and holds no raw control character. */
START_TEST(every_byte_is_valid_json)
{
	for (int b = 0; b < 256; b++) {
		char in[3] = { 'a', (char)b, 'z' };
		char *got = escape(in, 3);
		size_t n = strlen(got);
		ck_assert_uint_ge(n, 5);
		ck_assert_int_eq(got[0], '"');
		ck_assert_int_eq(got[n - 1], '"');
		for (size_t i = 0; i < n; i++)
			ck_assert_msg((unsigned char)got[i] >= 0x20 && (unsigned char)got[i] != 0x7f,
				      "byte %d: raw control byte in %s", b, got);
		if (b >= 0x80)
			ck_assert_msg(strcmp(got, "\"a\\ufffdz\"") == 0, "byte %d: %s", b, got);
		free(got);
	}
}
END_TEST

START_TEST(writer_commas_and_nesting)
{
	char *buf = NULL;
	size_t n = 0;
	FILE *f = open_memstream(&buf, &n);
	struct json j;
	json_init(&j, f);
	json_array_begin(&j);
	for (int i = 1; i <= 2; i++) {
		json_object_begin(&j);
		json_key(&j, "uid");
		json_uint(&j, (uint64_t)i);
		json_key(&j, "flags");
		json_array_begin(&j);
		if (i == 2) {
			json_string(&j, "\\Seen");
			json_string(&j, "\\Flagged");
		}
		json_array_end(&j);
		json_key(&j, "date");
		json_int(&j, -i);
		json_key(&j, "ok");
		json_bool(&j, i == 1);
		json_key(&j, "none");
		json_null(&j);
		json_object_end(&j);
	}
	json_array_end(&j);
	json_end(&j);
	fclose(f);
	ck_assert_str_eq(buf, "[\n"
			      "  {\"uid\": 1, \"flags\": [], \"date\": -1, \"ok\": true, \"none\": null},\n"
			      "  {\"uid\": 2, \"flags\": [\"\\\\Seen\", \"\\\\Flagged\"], \"date\": -2, "
			      "\"ok\": false, \"none\": null}\n"
			      "]\n");
	free(buf);
}
END_TEST

START_TEST(writer_empty_containers)
{
	char *buf = NULL;
	size_t n = 0;
	FILE *f = open_memstream(&buf, &n);
	struct json j;
	json_init(&j, f);
	json_array_begin(&j);
	json_array_end(&j);
	json_end(&j);
	json_init(&j, f);
	json_object_begin(&j);
	json_key(&j, "a");
	json_uint(&j, 18446744073709551615u);
	json_key(&j, "b");
	json_object_begin(&j);
	json_object_end(&j);
	json_object_end(&j);
	json_end(&j);
	fclose(f);
	ck_assert_str_eq(buf, "[]\n{\n  \"a\": 18446744073709551615,\n  \"b\": {}\n}\n");
	free(buf);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("json");
	TCase *tc = tcase_create("json");
	tcase_add_loop_test(tc, string_escapes, 0, (int)(sizeof strings / sizeof strings[0]));
	tcase_add_test(tc, every_byte_is_valid_json);
	tcase_add_test(tc, writer_commas_and_nesting);
	tcase_add_test(tc, writer_empty_containers);
	suite_add_tcase(s, tc);
	return run_suite(s, CK_FORK_GETENV);
}
