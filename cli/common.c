/*
 * cli/common.c — what the subcommands share: the option parser, the one
 * error line a failure prints, opening a store and selecting a mailbox,
 * flag words, and sets of UIDs as text.
 */
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "cli/json.h"

/* Writes s to f with control bytes as \xNN: an error or a listing field
 * holds user input (mailbox names, file names) and must stay one line. */
static void put_line_safe(FILE *f, const char *s)
{
	for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
		if (*p < 0x20 || *p == 0x7f)
			fprintf(f, "\\x%02x", *p);
		else
			putc(*p, f);
	}
}

void cli_print_text(const char *s)
{
	put_line_safe(stdout, s);
}

/* "mcrdt: A" or "mcrdt: A: B" on stderr, each part on one line; the caller ends it. */
static void err_start(const char *a, const char *b)
{
	fputs("mcrdt: ", stderr);
	put_line_safe(stderr, a);
	if (b) {
		fputs(": ", stderr);
		put_line_safe(stderr, b);
	}
}

int cli_usage_error(const struct cli_help *help, const char *cmd, const char *fmt, ...)
{
	char msg[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	err_start(cmd, msg);
	if (help) {
		/* A usage wrapped over lines for --help goes on this one line. */
		fputs(" (usage: ", stderr);
		for (const char *p = help->usage; *p; p++) {
			if (*p != '\n') {
				putc(*p, stderr);
				continue;
			}
			while (p[1] == ' ')
				p++;
			putc(' ', stderr);
		}
		fputs(")", stderr);
	}
	fputs("\n", stderr);
	return CLI_USAGE;
}

int cli_fail(int rc, const char *fmt, ...)
{
	char what[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(what, sizeof what, fmt, ap);
	va_end(ap);
	const char *why = mcrdt_error_last();
	if (!why || !*why)
		why = mcrdt_strerror(rc);
	err_start(what, why);
	fputs("\n", stderr);
	return CLI_FAILED;
}

int cli_error(const char *fmt, ...)
{
	char msg[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	err_start(msg, NULL);
	fputs("\n", stderr);
	return CLI_FAILED;
}

static const struct cli_opt *find_long(const struct cli_opt *opts, const char *name, size_t len)
{
	for (const struct cli_opt *o = opts; o && o->name; o++)
		if (strlen(o->name) == len && strncmp(o->name, name, len) == 0)
			return o;
	return NULL;
}

static const struct cli_opt *find_short(const struct cli_opt *opts, char c)
{
	for (const struct cli_opt *o = opts; o && o->name; o++)
		if (o->shortname && o->shortname == c)
			return o;
	return NULL;
}

int cli_parse(int argc, char **argv, const struct cli_help *help, const struct cli_opt *opts,
	      int *nargs)
{
	const char *cmd = argv[0];
	int out = 1;
	bool options = true;
	for (int i = 1; i < argc; i++) {
		char *a = argv[i];
		if (!options || a[0] != '-' || a[1] == '\0') {
			argv[out++] = a;
			continue;
		}
		if (strcmp(a, "--") == 0) {
			options = false;
			continue;
		}
		if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
			printf("usage: %s\n\n%s", help->usage, help->text);
			return 0;
		}
		const struct cli_opt *o;
		const char *val = NULL;
		if (a[1] == '-') {
			size_t len = strcspn(a + 2, "=");
			o = find_long(opts, a + 2, len);
			if (a[2 + len] == '=')
				val = a + 3 + len;
		} else {
			o = find_short(opts, a[1]);
			if (o && a[2])
				val = a + 2;
		}
		if (!o) {
			if (help->dash_operands && a[1] != '-') {
				argv[out++] = a;
				continue;
			}
			return cli_usage_error(help, cmd, "unknown option '%s'", a);
		}
		if (!o->value) {
			if (val)
				return cli_usage_error(help, cmd, "option '%s' takes no value", a);
			*o->set = true;
			continue;
		}
		if (!val) {
			if (i + 1 >= argc)
				return cli_usage_error(help, cmd, "option '%s' needs a value", a);
			val = argv[++i];
		}
		*o->value = val;
	}
	*nargs = out - 1;
	/* The operands every subcommand needs, then how many more it takes. */
	int need = 0;
	for (const char *p = help->operands; *p; need++) {
		size_t len = strcspn(p, " ");
		if (*nargs == need)
			return cli_usage_error(help, cmd, "missing %.*s", (int)len, p);
		p += len + (p[len] == ' ');
	}
	if (help->optional >= 0 && *nargs > need + help->optional)
		return cli_usage_error(help, cmd, "too many arguments");
	return -1;
}

bool cli_parse_u64(const char *s, uint64_t max, uint64_t *out)
{
	uint64_t v = 0;
	if (!s || !*s)
		return false;
	for (; *s; s++) {
		if (*s < '0' || *s > '9')
			return false;
		unsigned d = (unsigned)(*s - '0');
		if (v > (max - d) / 10)
			return false;
		v = v * 10 + d;
	}
	*out = v;
	return true;
}

static bool is_flag_sep(char c)
{
	return c == ',' || c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

int cli_flags_split(struct cli_flags *out, const char *const *words, size_t nwords)
{
	size_t total = 1;
	out->v = NULL;
	out->n = 0;
	for (size_t i = 0; i < nwords; i++)
		total += strlen(words[i]) + 1;
	out->buf = malloc(total);
	/* Each flag takes at least one byte and its separator. */
	out->v = malloc(sizeof *out->v * total);
	if (!out->buf || !out->v) {
		cli_flags_free(out);
		return cli_error("flags: out of memory");
	}
	char *p = out->buf;
	for (size_t i = 0; i < nwords; i++) {
		size_t len = strlen(words[i]);
		memcpy(p, words[i], len + 1);
		for (char *q = p; *q;) {
			while (*q && is_flag_sep(*q))
				*q++ = '\0';
			if (!*q)
				break;
			out->v[out->n++] = q;
			while (*q && !is_flag_sep(*q))
				q++;
		}
		p += len + 1;
	}
	return 0;
}

void cli_flags_free(struct cli_flags *f)
{
	free(f->v);
	free(f->buf);
	f->v = NULL;
	f->buf = NULL;
	f->n = 0;
}

int cli_open(mcrdt_store **out, const char *dir, const struct mcrdt_open_opts *opts)
{
	int rc = mcrdt_store_open(out, dir, opts);
	if (rc) {
		*out = NULL;
		return cli_fail(rc, "open %s", dir);
	}
	return 0;
}

int cli_select(mcrdt_store **s, mcrdt_mailbox **mb, const char *dir, const char *mailbox)
{
	*mb = NULL;
	if (cli_open(s, dir, NULL))
		return CLI_FAILED;
	int rc = mcrdt_mailbox_select(*s, mailbox, mb);
	if (rc) {
		*mb = NULL;
		cli_fail(rc, "select %s", mailbox);
		mcrdt_store_close(*s);
		*s = NULL;
		return CLI_FAILED;
	}
	return 0;
}

void cli_close(mcrdt_store *s, mcrdt_mailbox *mb)
{
	mcrdt_mailbox_close(mb);
	mcrdt_store_close(s);
}

void cli_print_set(const uint32_t *v, size_t n)
{
	for (size_t i = 0; i < n;) {
		size_t j = i;
		while (j + 1 < n && v[j] != UINT32_MAX && v[j + 1] == v[j] + 1)
			j++;
		printf("%s%u", i ? "," : "", (unsigned)v[i]);
		if (j > i)
			printf(":%u", (unsigned)v[j]);
		i = j + 1;
	}
}

/* ---- reports ---- */

/* A report: "key value" lines, or with as_json one JSON object (written
 * through *jw, which the result then points to). */
struct json *cli_report_begin(struct json *jw, bool as_json)
{
	if (!as_json)
		return NULL;
	json_init(jw, stdout);
	json_object_begin(jw);
	return jw;
}

void cli_report_end(struct json *j)
{
	if (j) {
		json_object_end(j);
		json_end(j);
	}
	fflush(stdout);
}

/* One "key value" line, or one key of a JSON object. */
void cli_report_u64(struct json *j, const char *key, uint64_t v)
{
	if (j) {
		json_key(j, key);
		json_uint(j, v);
	} else {
		printf("%-16s %" PRIu64 "\n", key, v);
	}
}

void cli_report_str(struct json *j, const char *key, const char *v)
{
	if (j) {
		json_key(j, key);
		json_string(j, v);
	} else {
		printf("%-16s ", key);
		cli_print_text(*v ? v : "-");
		printf("\n");
	}
}
