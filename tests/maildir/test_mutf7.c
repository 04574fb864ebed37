/*
 * tests/maildir/test_mutf7.c — the modified UTF-7 codec of IMAP mailbox
 * names (maildir/mutf7.h): known spellings both ways, every input either
 * direction must refuse, and randomized round trips.
 */
#include "tests/check_run.h"
#include <check.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "maildir/mutf7.h"
#include "mcrdt/errors.h"

/* String literals may hold NULs, so their length comes from sizeof. */
#define LIT(s) (s), (sizeof(s) - 1)

/* utf8 encodes to want, and want decodes back to utf8. */
#define BOTH_WAYS(utf8, want)                                                  \
	do {                                                                   \
		char *e_ = NULL, *d_ = NULL;                                   \
		ck_assert_msg(mutf7_encode(LIT(utf8), &e_) == 0, "encode: %s",  \
			      mcrdt_error_last());                             \
		ck_assert_str_eq(e_, want);                                    \
		ck_assert_msg(mutf7_decode(LIT(want), &d_) == 0, "decode: %s",  \
			      mcrdt_error_last());                             \
		ck_assert_str_eq(d_, utf8);                                    \
		free(e_);                                                      \
		free(d_);                                                      \
	} while (0)

/* fn refuses the literal in with MCRDT_EINVAL, a message, and *out as it was. */
#define REJECTS(fn, in)                                                        \
	do {                                                                   \
		char mark_, *out_ = &mark_;                                    \
		mcrdt_error_clear();                                           \
		ck_assert_int_eq(fn(LIT(in), &out_), MCRDT_EINVAL);            \
		ck_assert_ptr_eq(out_, &mark_);                                \
		ck_assert_str_ne(mcrdt_error_last(), "");                      \
	} while (0)

#define REJECTS_ENC(in) REJECTS(mutf7_encode, in)
#define REJECTS_DEC(in) REJECTS(mutf7_decode, in)

/* The example of RFC 3501 section 5.1.3. */
START_TEST(rfc3501_example)
{
	BOTH_WAYS("~peter/mail/台北/日本語", "~peter/mail/&U,BTFw-/&ZeVnLIqe-");
}
END_TEST

/* Folder names as Dovecot writes them. */
START_TEST(dovecot_names)
{
	BOTH_WAYS("Ärger", "&AMQ-rger");
	BOTH_WAYS("Entwürfe", "Entw&APw-rfe");
	BOTH_WAYS("Gelöschte Elemente", "Gel&APY-schte Elemente");
	BOTH_WAYS("INBOX", "INBOX");
	BOTH_WAYS("\xc2\xa0", "&AKA-");          /* U+00A0 is not ASCII */
	BOTH_WAYS("\xef\xbf\xbd", "&,,0-");      /* U+FFFD, all-ones bits */
}
END_TEST

/* '&' is "&-" wherever it stands, also right after a shift sequence. */
START_TEST(ampersand)
{
	BOTH_WAYS("&", "&-");
	BOTH_WAYS("&&", "&-&-");
	BOTH_WAYS("Sent & Drafts", "Sent &- Drafts");
	BOTH_WAYS("Ä&", "&AMQ-&-");
	BOTH_WAYS("&Ä", "&-&AMQ-");
}
END_TEST

/* Characters above U+FFFF are UTF-16 surrogate pairs inside the run. */
START_TEST(beyond_bmp)
{
	BOTH_WAYS("😀", "&2D3eAA-");
	BOTH_WAYS("a😀b", "a&2D3eAA-b");
	BOTH_WAYS("📧 Mail", "&2D3c5w- Mail");
	BOTH_WAYS("\xf4\x8f\xbf\xbf", "&2,,f,w-"); /* U+10FFFF */
	/* One run mixing 2-, 1-, 4- and 2-byte UTF-8 and a control character. */
	BOTH_WAYS("Ä\x01😀é", "&AMQAAdg93gAA6Q-");
}
END_TEST

/* Controls are encoded, not refused: name policy lives elsewhere. */
START_TEST(control_characters)
{
	BOTH_WAYS("\x01", "&AAE-");
	BOTH_WAYS("\t", "&AAk-");
	BOTH_WAYS("\x7f", "&AH8-");
	BOTH_WAYS("a\nb", "a&AAo-b");
}
END_TEST

START_TEST(empty)
{
	char *out = NULL;
	BOTH_WAYS("", "");
	ck_assert_int_eq(mutf7_encode(NULL, 0, &out), 0);
	ck_assert_str_eq(out, "");
	free(out);
	out = NULL;
	ck_assert_int_eq(mutf7_decode(NULL, 0, &out), 0);
	ck_assert_str_eq(out, "");
	free(out);
}
END_TEST

START_TEST(bad_arguments)
{
	char *out = NULL;
	ck_assert_int_eq(mutf7_encode(NULL, 1, &out), MCRDT_EINVAL);
	ck_assert_int_eq(mutf7_decode(NULL, 1, &out), MCRDT_EINVAL);
	ck_assert_int_eq(mutf7_encode("a", 1, NULL), MCRDT_EINVAL);
	ck_assert_int_eq(mutf7_decode("a", 1, NULL), MCRDT_EINVAL);
	ck_assert_ptr_null(out);
}
END_TEST

/* Every kind of invalid UTF-8. */
START_TEST(encode_rejects_bad_utf8)
{
	/* overlong forms */
	REJECTS_ENC("\xc0\x80");
	REJECTS_ENC("\xc1\xbf");
	REJECTS_ENC("\xe0\x80\x80");
	REJECTS_ENC("\xe0\x9f\xbf");
	REJECTS_ENC("\xf0\x80\x80\x80");
	REJECTS_ENC("\xf0\x8f\xbf\xbf");
	/* surrogates written as UTF-8 */
	REJECTS_ENC("\xed\xa0\x80");
	REJECTS_ENC("\xed\xbf\xbf");
	REJECTS_ENC("\xed\xa0\xbd\xed\xb8\x80"); /* CESU-8 of U+1F600 */
	/* beyond U+10FFFF */
	REJECTS_ENC("\xf4\x90\x80\x80");
	REJECTS_ENC("\xf7\xbf\xbf\xbf");
	REJECTS_ENC("\xf8\x88\x80\x80\x80");
	REJECTS_ENC("\xff");
	/* truncated or broken sequences */
	REJECTS_ENC("\xc3");
	REJECTS_ENC("abc\xe6\x97");
	REJECTS_ENC("\xf0\x9f\x98");
	REJECTS_ENC("\xc3\x41");
	REJECTS_ENC("\xe6\x97\xa5\x80");
	REJECTS_ENC("\x80");
	/* a valid prefix does not save a bad tail */
	REJECTS_ENC("Entw\xc3\xbcrfe\xc0\xaf");
	/* U+0000: the decoded name could not carry it as a C string */
	REJECTS_ENC("a\0b");
	ck_assert_ptr_nonnull(strstr(mcrdt_error_last(), "U+0000"));
}
END_TEST

START_TEST(decode_rejects)
{
	/* unterminated shift sequences */
	REJECTS_DEC("&");
	REJECTS_DEC("abc&");
	REJECTS_DEC("&AMQ");
	REJECTS_DEC("&AMQ-&");
	/* not modified BASE64 */
	REJECTS_DEC("&AM/-");
	REJECTS_DEC("&AMQ=-");
	REJECTS_DEC("&AM Q-");
	REJECTS_DEC("&AM&-");
	/* non-zero leftover bits, a spare character, no character at all */
	REJECTS_DEC("&AMR-");
	REJECTS_DEC("&AMT-");
	REJECTS_DEC("&AMQA-");
	REJECTS_DEC("&A-");
	REJECTS_DEC("&AA-");
	ck_assert_ptr_nonnull(strstr(mcrdt_error_last(), "no character"));
	/* printable ASCII that must have been literal, '&' included */
	REJECTS_DEC("&AGE-");
	REJECTS_DEC("&ACY-");
	REJECTS_DEC("&ACA-");
	REJECTS_DEC("&AH4-");
	REJECTS_DEC("&AMQAYQ-");
	/* two runs that the encoder would have written as one */
	REJECTS_DEC("&AMQ-&AMQ-");
	REJECTS_DEC("x&AMQ-&APw-y");
	/* unpaired surrogates */
	REJECTS_DEC("&2D0-");
	REJECTS_DEC("&3gA-");
	REJECTS_DEC("&2D0A5A-");
	REJECTS_DEC("&3gDYPQ-");
	REJECTS_DEC("&2D0-&3gA-");
	/* U+0000 */
	REJECTS_DEC("&AAA-");
	/* raw 8-bit bytes */
	REJECTS_DEC("&AMQ\x80-");
	REJECTS_DEC("\xc3\x84rger");
	ck_assert_ptr_nonnull(strstr(mcrdt_error_last(), "7-bit"));
	/* literal characters outside 0x20-0x7e */
	REJECTS_DEC("a\tb");
	REJECTS_DEC("\x7f");
	REJECTS_DEC("a\0b");
	REJECTS_DEC("\n");
}
END_TEST

/* 64 KiB is accepted, one byte more is not, both ways. */
START_TEST(size_limit)
{
	char *big = malloc(MUTF7_MAX_INPUT + 1), *out = NULL;
	ck_assert_ptr_nonnull(big);
	memset(big, 'a', MUTF7_MAX_INPUT + 1);
	ck_assert_int_eq(mutf7_encode(big, MUTF7_MAX_INPUT, &out), 0);
	ck_assert_uint_eq(strlen(out), MUTF7_MAX_INPUT);
	free(out);
	ck_assert_int_eq(mutf7_decode(big, MUTF7_MAX_INPUT, &out), 0);
	ck_assert_uint_eq(strlen(out), MUTF7_MAX_INPUT);
	free(out);
	out = NULL;
	ck_assert_int_eq(mutf7_encode(big, MUTF7_MAX_INPUT + 1, &out), MCRDT_EINVAL);
	ck_assert_int_eq(mutf7_decode(big, MUTF7_MAX_INPUT + 1, &out), MCRDT_EINVAL);
	ck_assert_ptr_null(out);
	free(big);
}
END_TEST

/* ---- randomized ---- */

/* splitmix64: the same sequence on every libc. */
static uint64_t rnd_state;

static uint64_t rnd(void)
{
	uint64_t z = (rnd_state += 0x9e3779b97f4a7c15u);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9u;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebu;
	return z ^ (z >> 31);
}

static uint32_t rnd_below(uint32_t n)
{
	return (uint32_t)(rnd() % n);
}

/* A code point from U+0001..U+10FFFF less the surrogates, weighted toward
 * what makes runs start and stop: ASCII, '&', controls, each UTF-8 length. */
static uint32_t rnd_codepoint(void)
{
	switch (rnd_below(8)) {
	case 0:
	case 1:
		return 0x20 + rnd_below(0x5f);
	case 2:
		return rnd_below(4) ? 0x20 + rnd_below(0x5f) : '&';
	case 3:
		return rnd_below(2) ? 1 + rnd_below(0x1f) : 0x7f;
	case 4:
		return 0x80 + rnd_below(0x800 - 0x80);
	case 5: {
		uint32_t c = 0x800 + rnd_below(0x10000 - 0x800 - 0x800);
		return c >= 0xd800 ? c + 0x800 : c;
	}
	default:
		return 0x10000 + rnd_below(0x110000 - 0x10000);
	}
}

static size_t put_utf8(char *p, uint32_t c)
{
	if (c < 0x80) {
		p[0] = (char)c;
		return 1;
	}
	if (c < 0x800) {
		p[0] = (char)(0xc0 | c >> 6);
		p[1] = (char)(0x80 | (c & 0x3f));
		return 2;
	}
	if (c < 0x10000) {
		p[0] = (char)(0xe0 | c >> 12);
		p[1] = (char)(0x80 | (c >> 6 & 0x3f));
		p[2] = (char)(0x80 | (c & 0x3f));
		return 3;
	}
	p[0] = (char)(0xf0 | c >> 18);
	p[1] = (char)(0x80 | (c >> 12 & 0x3f));
	p[2] = (char)(0x80 | (c >> 6 & 0x3f));
	p[3] = (char)(0x80 | (c & 0x3f));
	return 4;
}

/* Random valid UTF-8 of up to 40 code points into buf (>= 161 bytes). */
static size_t rnd_utf8(char *buf)
{
	size_t n = 0, k = rnd_below(41);
	for (size_t i = 0; i < k; i++)
		n += put_utf8(buf + n, rnd_codepoint());
	buf[n] = '\0';
	return n;
}

/* decode(encode(x)) == x, and the encoding is printable ASCII. */
START_TEST(random_round_trip)
{
	char in[200];
	rnd_state = 20240601;
	for (int iter = 0; iter < 5000; iter++) {
		size_t n = rnd_utf8(in);
		char *e = NULL, *d = NULL;
		ck_assert_msg(mutf7_encode(in, n, &e) == 0, "encode: %s", mcrdt_error_last());
		for (const char *p = e; *p; p++)
			ck_assert_msg(*p >= 0x20 && *p <= 0x7e, "byte 0x%02x in \"%s\"",
				      (unsigned char)*p, e);
		ck_assert_msg(mutf7_decode(e, strlen(e), &d) == 0, "decode \"%s\": %s", e,
			      mcrdt_error_last());
		ck_assert_uint_eq(strlen(d), n);
		ck_assert_msg(memcmp(d, in, n) == 0, "round trip changed \"%s\"", e);
		free(e);
		free(d);
	}
}
END_TEST

/*
 * The decoder takes exactly the encoder's output: whatever one-character
 * edit of a valid encoding it still accepts, encoding the result gives the
 * edited string back; whatever it refuses leaves *out alone.
 */
START_TEST(random_edits_are_canonical_or_refused)
{
	static const char alphabet[] = "&-AQgw,+02aZz ~\t\x80";
	char in[200], y[300];
	int accepted = 0;
	rnd_state = 77;
	for (int iter = 0; iter < 20000; iter++) {
		size_t n = rnd_utf8(in);
		char *e = NULL;
		ck_assert_int_eq(mutf7_encode(in, n, &e), 0);
		size_t m = strlen(e), at = m ? rnd_below((uint32_t)m + 1) : 0;
		char c = alphabet[rnd_below(sizeof(alphabet) - 1)];
		ck_assert_uint_lt(m + 1, sizeof(y));
		memcpy(y, e, m);
		switch (rnd_below(3)) {
		case 0: /* insert c */
			memmove(y + at + 1, y + at, m - at);
			y[at] = c;
			m++;
			break;
		case 1: /* delete */
			if (at < m) {
				memmove(y + at, y + at + 1, m - at - 1);
				m--;
			}
			break;
		default: /* replace */
			if (at < m)
				y[at] = c;
			break;
		}
		y[m] = '\0';
		free(e);

		char mark, *d = &mark;
		int rc = mutf7_decode(y, m, &d);
		if (rc) {
			ck_assert_int_eq(rc, MCRDT_EINVAL);
			ck_assert_ptr_eq(d, &mark);
			continue;
		}
		accepted++;
		char *again = NULL;
		ck_assert_msg(mutf7_encode(d, strlen(d), &again) == 0, "re-encode: %s",
			      mcrdt_error_last());
		ck_assert_msg(strcmp(again, y) == 0, "\"%s\" decodes but encodes back as \"%s\"",
			      y, again);
		free(again);
		free(d);
	}
	/* Enough edits survive for the property to mean something. */
	ck_assert_int_gt(accepted, 1000);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("mutf7");
	TCase *tc = tcase_create("core");
	tcase_add_test(tc, rfc3501_example);
	tcase_add_test(tc, dovecot_names);
	tcase_add_test(tc, ampersand);
	tcase_add_test(tc, beyond_bmp);
	tcase_add_test(tc, control_characters);
	tcase_add_test(tc, empty);
	tcase_add_test(tc, bad_arguments);
	tcase_add_test(tc, encode_rejects_bad_utf8);
	tcase_add_test(tc, decode_rejects);
	tcase_add_test(tc, size_limit);
	tcase_add_test(tc, random_round_trip);
	tcase_add_test(tc, random_edits_are_canonical_or_refused);
	tcase_set_timeout(tc, 60);
	suite_add_tcase(s, tc);
	return run_suite(s, CK_FORK_GETENV);
}
