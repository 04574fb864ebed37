/*
 * cli/cli.h — the subcommands of the mcrdt command and what they share:
 * the option parser, error lines, opening a store, sets of UIDs as text.
 *
 * Each subcommand takes its own argv (argv[0] is the subcommand's name)
 * and returns the exit status: 0 on success, CLI_FAILED when the library
 * reported an error, CLI_USAGE for bad usage. A failure prints exactly one
 * line on stderr, "mcrdt: <what failed>: <why>".
 *
 * Every subcommand, the demo included, uses only the public API
 * (the headers in include/mcrdt/).
 */
#ifndef MCRDT_CLI_H
#define MCRDT_CLI_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "mcrdt/mcrdt.h"
#include "mcrdt/store.h"

enum { CLI_FAILED = 1, CLI_USAGE = 2 };

int cli_demo(int argc, char **argv);
int cli_init(int argc, char **argv);
int cli_deliver(int argc, char **argv);
int cli_mailbox(int argc, char **argv);
int cli_list(int argc, char **argv);
int cli_status(int argc, char **argv);
int cli_flag(int argc, char **argv);
int cli_copy(int argc, char **argv);
int cli_move(int argc, char **argv);
int cli_expunge(int argc, char **argv);
int cli_cat(int argc, char **argv);
int cli_scan(int argc, char **argv);
int cli_log(int argc, char **argv);
int cli_fsck(int argc, char **argv);
int cli_sync(int argc, char **argv);
int cli_merge(int argc, char **argv);
int cli_hub(int argc, char **argv);

/* ---- arguments ---- */

/* One option of a subcommand: "--name", "--name=VALUE", "--name VALUE",
 * and when shortname is set "-c", "-cVALUE", "-c VALUE". */
struct cli_opt {
	const char *name;       /* long name without "--"; NULL ends a table */
	char shortname;         /* 0: none */
	const char **value;     /* takes a value, stored here; NULL: a switch */
	bool *set;              /* a switch: set to true when given */
};
#define CLI_OPT_MAILBOX(p) { "mailbox", 'm', (p), NULL }
#define CLI_OPT_JSON(p) { "json", 0, NULL, (p) }

/* What a subcommand says about itself for --help and usage errors. */
struct cli_help {
	const char *usage;      /* "mcrdt list DIR [-m MAILBOX] [--json]" */
	const char *text;       /* what it does and prints, newline-terminated */
	bool dash_operands;     /* an unknown "-x" word is an operand (flag's "-\Seen") */
	const char *operands;   /* the operands it needs, by name: "DIR UIDSET DEST" */
	int optional;           /* how many more it takes (-1: any number) */
};

/*
 * Parses argv[1..argc) against opts (a table ended by a NULL name).
 * Options may come before, between or after the operands; "--" ends them.
 * The operands are moved, in order, to argv[1..*nargs]; fewer than
 * help->operands names ("missing UIDSET") or more than it takes are a
 * usage error. "-h" and "--help" print the help on stdout.
 *
 * Returns -1 to go on; otherwise the command's exit status: 0 after the
 * help, CLI_USAGE after a usage error line on stderr.
 */
int cli_parse(int argc, char **argv, const struct cli_help *help, const struct cli_opt *opts,
	      int *nargs);

/* Prints "mcrdt: <cmd>: <printf message> (usage: ...)" and returns CLI_USAGE. */
int cli_usage_error(const struct cli_help *help, const char *cmd, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* Prints "mcrdt: <printf message>: <mcrdt_error_last()>" (or the code's
 * description when there is no message) and returns CLI_FAILED. Bytes
 * that would break the line are escaped. */
int cli_fail(int rc, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Prints "mcrdt: <printf message>" for a failure the command itself found
 * and returns CLI_FAILED. */
int cli_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Reads a decimal number without sign, spaces or junk, at most max. */
bool cli_parse_u64(const char *s, uint64_t max, uint64_t *out);

/*
 * Splits flag words ("\Seen", "\Seen,\Flagged", "\Seen $Junk") at commas
 * and white space into *out (one malloc'd array of pointers into a copy;
 * free both with cli_flags_free). The flags themselves are checked by the
 * library. Returns 0, or CLI_FAILED when out of memory.
 */
struct cli_flags {
	const char **v;
	size_t n;
	char *buf;
};
int cli_flags_split(struct cli_flags *out, const char *const *words, size_t nwords);
void cli_flags_free(struct cli_flags *f);

/* ---- the store ---- */

/*
 * Opens the store in dir with opts (NULL: defaults). On failure prints the
 * error line, *out is NULL and the result is CLI_FAILED; 0 on success.
 */
int cli_open(mcrdt_store **out, const char *dir, const struct mcrdt_open_opts *opts);

/* Opens the store and selects mailbox; on failure prints the error line,
 * closes what it opened and returns CLI_FAILED. */
int cli_select(mcrdt_store **s, mcrdt_mailbox **mb, const char *dir, const char *mailbox);

/* Closes both (either may be NULL). */
void cli_close(mcrdt_store *s, mcrdt_mailbox *mb);

/* ---- output ---- */

struct json;
/* A report: "key value" lines, or with as_json one JSON object written
 * through *jw (the result then points to it; NULL for lines). */
struct json *cli_report_begin(struct json *jw, bool as_json);
void cli_report_end(struct json *j);
/* One "key value" line, or one key of the JSON object. */
void cli_report_u64(struct json *j, const char *key, uint64_t v);
void cli_report_str(struct json *j, const char *key, const char *v);

/* Writes v[0..n) to stdout as an IMAP set in that order, consecutive
 * ascending numbers as ranges ("1:3,7,5"). */
void cli_print_set(const uint32_t *v, size_t n);

/* Writes s to stdout with control bytes (below 0x20, 0x7f) as "\xNN", so
 * one value stays on one line of a listing. */
void cli_print_text(const char *s);

#endif
