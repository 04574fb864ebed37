/*
 * tests/maildir/mdtool.c — a command over maildir/ for the interop tests,
 * so shell scripts can drive our Maildir layer next to Dovecot and mblaze.
 *
 *   mdtool init DIR
 *   mdtool deliver DIR MAILBOX [FLAGS] < message     prints the file name
 *   mdtool flags DIR MAILBOX FILE FLAGS              prints the new name
 *   mdtool keyword DIR MAILBOX KEYWORD               prints the letter
 *   mdtool create|delete DIR MAILBOX
 *   mdtool rename DIR FROM TO
 *   mdtool folders DIR                               one mailbox per line
 *   mdtool list DIR MAILBOX                          "file<TAB>flags<TAB>size[<TAB>problem]"
 *   mdtool scan DIR MAILBOX SNAPSHOT                 changes since the snapshot file
 *                                                    ("added|flags|vanished<TAB>file"),
 *                                                    which it then rewrites
 * FILE is a name in new/ or cur/ (looked up in both). Exit 0 or 1.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "maildir/maildir.h"
#include "mcrdt/errors.h"

static int fail(const char *what)
{
	fprintf(stderr, "mdtool: %s: %s\n", what, mcrdt_error_last());
	return 1;
}

/* Finds FILE (a full name or a base name) in the folder's listing. */
static int find(md *m, const char *mailbox, const char *file, struct md_entry *out, struct md_listing *l)
{
	if (md_list(m, mailbox, l))
		return -1;
	size_t flen = strlen(file);
	for (size_t i = 0; i < l->n; i++) {
		const struct md_entry *e = &l->e[i];
		if (strcmp(e->file, file) == 0 || (e->base_len == flen && strncmp(e->file, file, flen) == 0)) {
			*out = *e;
			return 0;
		}
	}
	fprintf(stderr, "mdtool: no message %s in %s\n", file, mailbox);
	return -1;
}

static int read_stdin(char **buf, size_t *len)
{
	size_t cap = 65536;
	*len = 0;
	*buf = malloc(cap);
	for (;;) {
		if (!*buf)
			return -1;
		size_t n = fread(*buf + *len, 1, cap - *len, stdin);
		*len += n;
		if (n == 0)
			return ferror(stdin) ? -1 : 0;
		if (*len == cap)
			*buf = realloc(*buf, cap *= 2);
	}
}

static int scan(md *m, const char *mailbox, const char *snap)
{
	struct md_scan_state st = { 0 };
	FILE *f = fopen(snap, "r");
	char line[4096];
	while (f && fgets(line, sizeof line, f)) {
		line[strcspn(line, "\n")] = '\0';
		struct md_entry e = { 0 };
		struct md_info info;
		e.in_new = line[0] == 'n';
		e.file = strdup(line + 2);
		md_info_parse(e.file, &info);
		e.base_len = info.base_len;
		if (st.last.n == st.last.cap) {
			st.last.cap = st.last.cap ? st.last.cap * 2 : 64;
			st.last.e = realloc(st.last.e, st.last.cap * sizeof *st.last.e);
		}
		st.last.e[st.last.n++] = e;
	}
	if (f)
		fclose(f);
	struct md_changes ch = { 0 };
	if (md_scan(m, mailbox, &st, &ch))
		return fail("scan");
	static const char *const kinds[] = { "added", "flags", "vanished" };
	for (size_t i = 0; i < ch.n; i++)
		printf("%s\t%s\n", kinds[ch.c[i].kind], ch.c[i].entry.file);
	if (!(f = fopen(snap, "w")))
		return 1;
	for (size_t i = 0; i < st.last.n; i++)
		fprintf(f, "%c %s\n", st.last.e[i].in_new ? 'n' : 'c', st.last.e[i].file);
	fclose(f);
	md_changes_free(&ch);
	md_scan_state_free(&st);
	return 0;
}

int main(int argc, char **argv)
{
	if (argc < 3) {
		fprintf(stderr, "usage: mdtool COMMAND DIR ... (see the source)\n");
		return 2;
	}
	const char *cmd = argv[1];
	md *m;
	if (md_open(&m, argv[2], strcmp(cmd, "init") == 0 ? MD_CREATE : 0))
		return fail(argv[2]);
	int rc = 0;
	struct md_listing l = { 0 };
	struct md_entry e;
	char *name = NULL;
	if (strcmp(cmd, "init") == 0) {
	} else if (strcmp(cmd, "deliver") == 0 && argc >= 4) {
		struct md_deliver_opts o = MD_DELIVER_OPTS_INIT;
		char *buf;
		size_t len;
		o.flags = argc > 4 ? argv[4] : NULL;
		if (read_stdin(&buf, &len) || md_deliver(m, argv[3], buf, len, &o, &name))
			rc = fail("deliver");
		else
			printf("%s\n", name);
		free(buf);
	} else if (strcmp(cmd, "flags") == 0 && argc == 6) {
		if (find(m, argv[3], argv[4], &e, &l) ||
		    md_set_flags(m, argv[3], e.file, e.in_new, argv[5], &name))
			rc = fail("flags");
		else
			printf("%s\n", name);
	} else if (strcmp(cmd, "keyword") == 0 && argc == 5) {
		char letter;
		if (md_keyword_letter(m, argv[3], argv[4], &letter))
			rc = fail("keyword");
		else
			printf("%c\n", letter);
	} else if (strcmp(cmd, "create") == 0 && argc == 4) {
		rc = md_folder_create(m, argv[3]) ? fail("create") : 0;
	} else if (strcmp(cmd, "delete") == 0 && argc == 4) {
		rc = md_folder_delete(m, argv[3]) ? fail("delete") : 0;
	} else if (strcmp(cmd, "rename") == 0 && argc == 5) {
		rc = md_folder_rename(m, argv[3], argv[4]) ? fail("rename") : 0;
	} else if (strcmp(cmd, "folders") == 0) {
		char **v;
		size_t n;
		if (md_folder_list(m, &v, &n))
			rc = fail("folders");
		else {
			for (size_t i = 0; i < n; i++)
				printf("%s\n", v[i]);
			md_strv_free(v, n);
		}
	} else if (strcmp(cmd, "list") == 0 && argc == 4) {
		if (md_list(m, argv[3], &l))
			rc = fail("list");
		for (size_t i = 0; rc == 0 && i < l.n; i++)
			printf("%s\t%s\t%lld%s%s\n", l.e[i].file, l.e[i].flags, (long long)l.e[i].size,
			       l.e[i].problem ? "\t" : "", l.e[i].problem ? l.e[i].problem : "");
	} else if (strcmp(cmd, "scan") == 0 && argc == 5) {
		rc = scan(m, argv[3], argv[4]);
	} else {
		fprintf(stderr, "mdtool: bad command or arguments\n");
		rc = 2;
	}
	free(name);
	md_listing_free(&l);
	md_close(m);
	return rc;
}
