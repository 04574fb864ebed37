/*
 * tests/maildir/test_maildir.c — the Maildir layer as other mail tools see
 * its files: names, durable delivery, flags, keywords, folders, scanning
 * while others change the tree, tmp/ cleanup, and bad input.
 */
#include "tests/check_run.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "common/varint.h"
#include "maildir/md_int.h"
#include "mcrdt/errors.h"

static char root[256];
static md *m;

/* fsync is wrapped (CMakeLists.txt) so tests can count directory syncs. */
int __real_fsync(int fd);
int __wrap_fsync(int fd);
static long n_fsync;
int __wrap_fsync(int fd)
{
	n_fsync++;
	return __real_fsync(fd);
}

static void setup(void)
{
	snprintf(root, sizeof root, "/tmp/mcrdt-md-XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(root));
	strcat(root, "/Maildir");
	ck_assert_int_eq(md_open(&m, root, MD_CREATE), 0);
}

static void teardown(void)
{
	md_close(m);
	char cmd[600];
	snprintf(cmd, sizeof cmd, "rm -rf '%.*s'", (int)(strlen(root) - 8), root);
	ck_assert_int_eq(system(cmd), 0);
}

static int count_dir(const char *sub)
{
	char p[512];
	snprintf(p, sizeof p, "%s/%s", root, sub);
	DIR *d = opendir(p);
	ck_assert_ptr_nonnull(d);
	int n = 0;
	struct dirent *e;
	while ((e = readdir(d)))
		n += e->d_name[0] != '.';
	closedir(d);
	return n;
}

/* Writes text to path, replacing it: another program's file. */
static void put_file(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");
	ck_assert_msg(f != NULL, "%s: %s", path, strerror(errno));
	fputs(text, f);
	ck_assert_int_eq(fclose(f), 0);
}

/* Another program (an MTA) drops file name into INBOX's new/. */
static void mta_drop(const char *name, const char *text)
{
	char p[512];
	snprintf(p, sizeof p, "%s/new/%s", root, name);
	put_file(p, text);
}

static char *deliver(const char *mailbox, const char *text, const char *flags)
{
	struct md_deliver_opts o = MD_DELIVER_OPTS_INIT;
	o.flags = flags;
	char *name = NULL;
	int rc = md_deliver(m, mailbox, text, strlen(text), &o, &name);
	ck_assert_msg(rc == 0, "deliver: %s", mcrdt_error_last());
	return name;
}

static void path_of(char *out, size_t size, const char *sub, const char *file)
{
	snprintf(out, size, "%s/%s/%s", root, sub, file);
}

START_TEST(unique_names_never_collide)
{
	char seen[2000][128];
	for (int i = 0; i < 2000; i++) {
		ck_assert_int_eq(md_unique_name(seen[i], sizeof seen[i], 42), 0);
		ck_assert_ptr_null(strchr(seen[i], '/'));
		ck_assert_ptr_null(strchr(seen[i], ':'));
		ck_assert_int_eq(md_name_size(seen[i]), 42);
		for (int k = 0; k < i; k++)
			ck_assert_str_ne(seen[i], seen[k]);
	}
}
END_TEST

START_TEST(delivery_is_a_plain_file_in_new)
{
	char *name = deliver("INBOX", "Subject: a\n\nbody\n", NULL);
	char p[512];
	path_of(p, sizeof p, "new", name);
	struct stat st;
	ck_assert_int_eq(stat(p, &st), 0);
	ck_assert_int_eq(st.st_mode & 0777, 0600);
	ck_assert_int_eq(st.st_size, 17);
	ck_assert_int_eq(count_dir("tmp"), 0);
	/* With flags it goes to cur/, letters in ASCII order. */
	char *flagged = deliver("INBOX", "x", "SFa");
	ck_assert_ptr_nonnull(strstr(flagged, ":2,FSa"));
	ck_assert_int_eq(count_dir("cur"), 1);
	/* The internal date is the mtime. */
	struct md_deliver_opts o = MD_DELIVER_OPTS_INIT;
	o.mtime = 1000000000;
	char *dated;
	ck_assert_int_eq(md_deliver(m, "INBOX", "y", 1, &o, &dated), 0);
	path_of(p, sizeof p, "new", dated);
	ck_assert_int_eq(stat(p, &st), 0);
	ck_assert_int_eq(st.st_mtime, 1000000000);
	free(name);
	free(flagged);
	free(dated);
}
END_TEST

START_TEST(a_copied_base_name_is_kept_and_never_overwrites)
{
	struct md_deliver_opts o = MD_DELIVER_OPTS_INIT;
	o.base = "1700000000.M1P2Q3.peer,S=5";
	char *name;
	ck_assert_int_eq(md_deliver(m, "INBOX", "first", 5, &o, &name), 0);
	ck_assert_str_eq(name, o.base);
	ck_assert_int_eq(md_deliver(m, "INBOX", "other", 5, &o, NULL), MCRDT_EEXISTS);
	char p[512], buf[16] = { 0 };
	path_of(p, sizeof p, "new", name);
	FILE *f = fopen(p, "r");
	ck_assert_ptr_nonnull(f);
	ck_assert_uint_eq(fread(buf, 1, sizeof buf, f), 5);
	fclose(f);
	ck_assert_str_eq(buf, "first");
	ck_assert_int_eq(count_dir("tmp"), 0);
	o.base = "../escape";
	ck_assert_int_eq(md_deliver(m, "INBOX", "x", 1, &o, NULL), MCRDT_EINVAL);
	o.base = "a:2,S";
	ck_assert_int_eq(md_deliver(m, "INBOX", "x", 1, &o, NULL), MCRDT_EINVAL);
	ck_assert_int_eq(md_deliver(m, "INBOX", "", 0, NULL, NULL), MCRDT_EINVAL);
	free(name);
}
END_TEST

/* A folder's name (or its cur/'s) held by a file or a link: creating it
 * fails with a message naming the path (it is not taken for a folder that
 * exists), and md_folder_check says so before anyone tries. A directory
 * there is completed: tmp/, new/, cur/, the marker. */
START_TEST(a_file_in_a_folders_place)
{
	char p[512];
	snprintf(p, sizeof p, "%s/.Held", root);
	FILE *f = fopen(p, "w");
	ck_assert_ptr_nonnull(f);
	fclose(f);
	ck_assert_int_eq(md_folder_check(m, "Held"), MCRDT_EIO);
	ck_assert_int_eq(md_folder_create(m, "Held"), MCRDT_EIO);
	ck_assert_ptr_nonnull(strstr(mcrdt_error_last(), "/.Held, and a file is in its place"));
	ck_assert_int_eq(unlink(p), 0);
	ck_assert_int_eq(symlink("cur", p), 0);
	ck_assert_int_eq(md_folder_create(m, "Held"), MCRDT_EIO);
	ck_assert_ptr_nonnull(strstr(mcrdt_error_last(), "a symbolic link is in its place"));
	ck_assert_int_eq(unlink(p), 0);
	ck_assert_int_eq(md_folder_check(m, "Held"), 0);
	ck_assert_int_eq(md_folder_create(m, "Held"), 0);
	ck_assert_int_eq(md_folder_check(m, "Held"), 0);
	ck_assert_int_eq(md_folder_create(m, "Held"), MCRDT_EEXISTS);
	ck_assert_int_eq(md_folder_check(m, "INBOX"), 0);
	/* An empty directory is completed; one whose cur/ is a file is not. */
	snprintf(p, sizeof p, "%s/.Part", root);
	ck_assert_int_eq(mkdir(p, 0700), 0);
	ck_assert_int_eq(md_folder_check(m, "Part"), 0);
	ck_assert_int_eq(md_folder_create(m, "Part"), 0);
	ck_assert_int_eq(count_dir(".Part/cur") + count_dir(".Part/new") + count_dir(".Part/tmp"), 0);
	ck_assert_int_eq(md_folder_create(m, "Part"), MCRDT_EEXISTS);
	/* A folder another tool made without the marker gets one; whatever
	 * holds the marker's name in a whole folder is left as it is. */
	snprintf(p, sizeof p, "%s/.Part/maildirfolder", root);
	ck_assert_int_eq(unlink(p), 0);
	ck_assert_int_eq(md_folder_create(m, "Part"), 0);
	ck_assert_int_eq(access(p, F_OK), 0);
	ck_assert_int_eq(unlink(p), 0);
	ck_assert_int_eq(mkdir(p, 0700), 0);
	ck_assert_int_eq(md_folder_create(m, "Part"), MCRDT_EEXISTS);
	snprintf(p, sizeof p, "%s/.Bad", root);
	ck_assert_int_eq(mkdir(p, 0700), 0);
	snprintf(p, sizeof p, "%s/.Bad/cur", root);
	f = fopen(p, "w");
	ck_assert_ptr_nonnull(f);
	fclose(f);
	ck_assert_int_eq(md_folder_check(m, "Bad"), MCRDT_EIO);
	ck_assert_int_eq(md_folder_create(m, "Bad"), MCRDT_EIO);
	ck_assert_ptr_nonnull(strstr(mcrdt_error_last(), "/.Bad/cur, and a file is in its place"));
}
END_TEST

START_TEST(a_batch_appears_at_commit)
{
	ck_assert_int_eq(md_folder_create(m, "Lists"), 0);
	ck_assert_int_eq(md_batch_begin(m), 0);
	for (int i = 0; i < 20; i++)
		free(deliver(i % 2 ? "INBOX" : "Lists", "batched", i % 3 ? NULL : "S"));
	ck_assert_int_eq(count_dir("new") + count_dir("cur"), 0);
	ck_assert_int_eq(md_batch_commit(m), 0);
	ck_assert_int_eq(count_dir("new") + count_dir("cur"), 10);
	ck_assert_int_eq(count_dir(".Lists/new") + count_dir(".Lists/cur"), 10);
	ck_assert_int_eq(count_dir("tmp") + count_dir(".Lists/tmp"), 0);
	ck_assert_int_eq(md_batch_begin(m), 0);
	free(deliver("INBOX", "dropped", NULL));
	md_batch_abort(m);
	ck_assert_int_eq(count_dir("tmp"), 0);
	ck_assert_int_eq(count_dir("new") + count_dir("cur"), 10);
}
END_TEST

START_TEST(info_parsing_reports_rather_than_mangles)
{
	struct md_info i;
	md_info_parse("123.M1P2.host,S=10:2,SFP", &i);
	ck_assert_str_eq(i.flags, "FPS");
	ck_assert_uint_eq(i.base_len, 18);
	ck_assert_ptr_null(i.problem);
	md_info_parse("123.M1P2.host", &i);
	ck_assert(!i.has_info);
	ck_assert_uint_eq(i.base_len, 13);
	md_info_parse("123.host:1,S", &i);
	ck_assert_ptr_nonnull(i.problem);
	md_info_parse("123:host:2,S", &i);
	ck_assert_ptr_nonnull(i.problem);
	md_info_parse("123.host:2,S1", &i);
	ck_assert_ptr_nonnull(i.problem);
	ck_assert_int_eq(md_name_size("1.host,S=77,W=80:2,S"), 77);
	ck_assert_int_eq(md_name_size("1.host:2,S=5"), -1); /* in the info, not the base */
	ck_assert_int_eq(md_name_size("1.host,S="), -1);
}
END_TEST

START_TEST(flag_renames_move_new_to_cur)
{
	char *name = deliver("INBOX", "m", NULL), *renamed, *again;
	ck_assert_int_eq(md_set_flags(m, "INBOX", name, true, "RS", &renamed), 0);
	ck_assert_ptr_nonnull(strstr(renamed, ":2,RS"));
	ck_assert_int_eq(count_dir("new"), 0);
	ck_assert_int_eq(count_dir("cur"), 1);
	ck_assert_int_eq(md_set_flags(m, "INBOX", renamed, false, "", &again), 0);
	ck_assert_ptr_nonnull(strstr(again, ":2,"));
	/* Someone else got there first: the caller is told to rescan. */
	ck_assert_int_eq(md_set_flags(m, "INBOX", renamed, false, "S", NULL), MCRDT_ENOTFOUND);
	ck_assert_int_eq(md_set_flags(m, "INBOX", again, false, "S1", NULL), MCRDT_EINVAL);
	ck_assert_int_eq(md_remove(m, "INBOX", again, false), 0);
	ck_assert_int_eq(md_remove(m, "INBOX", again, false), MCRDT_ENOTFOUND);
	free(name);
	free(renamed);
	free(again);
}
END_TEST

START_TEST(keywords_share_dovecot_letters)
{
	char a, b, again;
	ck_assert_int_eq(md_keyword_letter(m, "INBOX", "$Junk", &a), 0);
	ck_assert_int_eq(md_keyword_letter(m, "INBOX", "work", &b), 0);
	ck_assert_int_eq(md_keyword_letter(m, "INBOX", "$Junk", &again), 0);
	ck_assert_int_eq(a, 'a');
	ck_assert_int_eq(b, 'b');
	ck_assert_int_eq(again, 'a');
	char p[512], text[128] = { 0 };
	snprintf(p, sizeof p, "%s/dovecot-keywords", root);
	FILE *f = fopen(p, "r");
	ck_assert_ptr_nonnull(f);
	ck_assert_uint_gt(fread(text, 1, sizeof text - 1, f), 0);
	fclose(f);
	ck_assert_str_eq(text, "0 $Junk\n1 work\n");
	/* A file Dovecot wrote with a gap is read as it is. */
	put_file(p, "3 later\n0 $Junk\ngarbage line\n");
	ck_assert_int_eq(md_keyword_letter(m, "INBOX", "later", &a), 0);
	ck_assert_int_eq(a, 'd');
	ck_assert_int_eq(md_keyword_letter(m, "INBOX", "fresh", &a), 0);
	ck_assert_int_eq(a, 'b');
	/* Three letters are taken, 23 are free: the 24th new keyword has none. */
	for (int i = 0; i < 24; i++) {
		char kw[16];
		snprintf(kw, sizeof kw, "k%d", i);
		ck_assert_int_eq(md_keyword_letter(m, "INBOX", kw, &a), i < 23 ? 0 : MCRDT_ETOOBIG);
	}
	ck_assert_int_eq(md_keyword_letter(m, "INBOX", "two words", &a), MCRDT_EINVAL);
	ck_assert_int_eq(count_dir(""), 4); /* cur new tmp dovecot-keywords: no temp file left */
}
END_TEST

START_TEST(folders_are_maildirplusplus)
{
	ck_assert_int_eq(md_folder_create(m, "Work"), 0);
	ck_assert_int_eq(md_folder_create(m, "Work/2026"), 0);
	ck_assert_int_eq(md_folder_create(m, "Entw\xc3\xbcrfe"), 0);
	ck_assert_int_eq(md_folder_create(m, "Work"), MCRDT_EEXISTS);
	ck_assert_int_eq(md_folder_create(m, "inbox"), MCRDT_EEXISTS);
	struct stat st;
	char p[512];
	snprintf(p, sizeof p, "%s/.Entw&APw-rfe/cur", root);
	ck_assert_int_eq(stat(p, &st), 0);
	snprintf(p, sizeof p, "%s/.Work.2026/maildirfolder", root);
	ck_assert_int_eq(stat(p, &st), 0);
	int metafd;
	ck_assert_int_eq(md_meta_dir(m, &metafd), 0);
	char **v;
	size_t n;
	ck_assert_int_eq(md_folder_list(m, &v, &n), 0);
	ck_assert_uint_eq(n, 4); /* the metadata directory is not a folder */
	ck_assert_str_eq(v[0], "INBOX");
	ck_assert_str_eq(v[1], "Entw\xc3\xbcrfe");
	ck_assert_str_eq(v[2], "Work");
	ck_assert_str_eq(v[3], "Work/2026");
	md_strv_free(v, n);
	free(deliver("Work/2026", "kept across the rename", NULL));
	ck_assert_int_eq(md_folder_rename(m, "Work", "Jobs"), 0);
	ck_assert_int_eq(count_dir(".Jobs.2026/new"), 1);
	ck_assert_int_eq(md_folder_rename(m, "Jobs", "Entw\xc3\xbcrfe"), MCRDT_EEXISTS);
	ck_assert_int_eq(md_folder_rename(m, "Jobs", "Jobs/inner"), MCRDT_EINVAL);
	ck_assert_int_eq(md_folder_rename(m, "Nope", "Other"), MCRDT_ENOTFOUND);
	/* DELETE removes the folder, not its children (IMAP semantics). */
	ck_assert_int_eq(md_folder_delete(m, "Jobs"), 0);
	ck_assert_int_eq(md_folder_list(m, &v, &n), 0);
	ck_assert_uint_eq(n, 3);
	ck_assert_str_eq(v[2], "Jobs/2026");
	md_strv_free(v, n);
	ck_assert_int_eq(md_folder_delete(m, "INBOX"), MCRDT_EINVAL);
	ck_assert_int_eq(md_folder_delete(m, "Jobs"), MCRDT_ENOTFOUND);
}
END_TEST

START_TEST(folder_names_cannot_escape)
{
	const char *bad[] = { "", "..", "../x", "a/../b", "a//b", "/abs", "a/", "x.y", ".hidden",
			      "tab\there", "nl\nx", "bad\xff" };
	for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
		char *dir;
		ck_assert_msg(md_folder_dir(bad[i], &dir) == MCRDT_EINVAL, "accepted '%s'", bad[i]);
		ck_assert_int_eq(md_folder_create(m, bad[i]), MCRDT_EINVAL);
	}
	char longname[400];
	memset(longname, 'a', sizeof longname - 1);
	longname[sizeof longname - 1] = '\0';
	ck_assert_int_eq(md_folder_create(m, longname), MCRDT_EINVAL);
	char *dir, *back;
	ck_assert_int_eq(md_folder_dir("A&B/\xe5\x8f\xb0\xe5\x8c\x97", &dir), 0);
	ck_assert_str_eq(dir, ".A&-B.&U,BTFw-");
	ck_assert_int_eq(md_folder_name(dir, &back), 0);
	ck_assert_str_eq(back, "A&B/\xe5\x8f\xb0\xe5\x8c\x97");
	free(dir);
	free(back);
	ck_assert_int_eq(md_folder_name("..x", &back), MCRDT_EINVAL);
	ck_assert_int_eq(md_folder_name(".a..b", &back), MCRDT_EINVAL);
}
END_TEST

/* Puts a directory's mtime in the past so a scan later in time trusts it. */
static void age_dir(const char *sub, time_t t)
{
	char p[512];
	snprintf(p, sizeof p, "%s/%s", root, sub);
	struct timespec ts[2] = { { t, 0 }, { t, 0 } };
	ck_assert_int_eq(utimensat(AT_FDCWD, p, ts, 0), 0);
}

static size_t count_kind(const struct md_changes *c, enum md_change_kind k)
{
	size_t n = 0;
	for (size_t i = 0; i < c->n; i++)
		n += c->c[i].kind == k;
	return n;
}

/* An MTA drops file name into new/: the next scan (into st) reports it,
 * added. */
static void dropped_file_is_found(struct md_scan_state *st, const char *name)
{
	struct md_changes ch = { 0 };
	mta_drop(name, "Subject: d\n");
	ck_assert_int_eq(md_scan(m, "INBOX", st, &ch), 0);
	ck_assert_uint_eq(count_kind(&ch, MD_ADDED), 1);
	md_changes_free(&ch);
}

/* Other programs' changes: a (in new/) marked with flags, b (in cur/)
 * deleted, a new file dropped into new/ (11 bytes). */
static void outside_changes(const char *a, const char *b, const char *flags)
{
	char from[512], to[512];
	path_of(from, sizeof from, "new", a);
	snprintf(to, sizeof to, "%s/cur/%s:2,%s", root, a, flags);
	ck_assert_int_eq(rename(from, to), 0);
	path_of(from, sizeof from, "cur", b);
	ck_assert_int_eq(unlink(from), 0);
	snprintf(to, sizeof to, "%s/new/1.M1P1.mta", root);
	put_file(to, "Subject: d\n");
}

START_TEST(scan_reports_outside_changes_once)
{
	char *a = deliver("INBOX", "a", NULL), *b = deliver("INBOX", "b", "S");
	free(deliver("INBOX", "c", NULL));
	struct md_scan_state st = { 0 };
	struct md_changes ch = { 0 };
	ck_assert_int_eq(md_scan(m, "INBOX", &st, &ch), 0);
	ck_assert_uint_eq(count_kind(&ch, MD_ADDED), 3);
	md_changes_free(&ch);
	/* Nothing changed since a scan that ran after the last change: no re-read. */
	age_dir("new", time(NULL) - 10);
	age_dir("cur", time(NULL) - 10);
	ck_assert_int_eq(md_scan(m, "INBOX", &st, &ch), 0);
	unsigned rescans = st.rescans;
	ck_assert_int_eq(md_scan(m, "INBOX", &st, &ch), 0);
	ck_assert_uint_eq(ch.n, 0);
	ck_assert_uint_eq(st.rescans, rescans);
	/* A mail reader marks a seen, another program deletes b, an MTA drops d. */
	outside_changes(a, b, "S");
	ck_assert_int_eq(md_scan(m, "INBOX", &st, &ch), 0);
	ck_assert_uint_eq(ch.n, 3);
	ck_assert_uint_eq(count_kind(&ch, MD_ADDED), 1);
	ck_assert_uint_eq(count_kind(&ch, MD_FLAGS_CHANGED), 1);
	ck_assert_uint_eq(count_kind(&ch, MD_VANISHED), 1);
	for (size_t i = 0; i < ch.n; i++) {
		if (ch.c[i].kind == MD_FLAGS_CHANGED)
			ck_assert_str_eq(ch.c[i].entry.flags, "S");
		if (ch.c[i].kind == MD_ADDED)
			ck_assert_int_eq(ch.c[i].entry.size, 11);
	}
	md_changes_free(&ch);
	ck_assert_int_eq(md_scan(m, "INBOX", &st, &ch), 0);
	ck_assert_uint_eq(ch.n, 0);
	md_scan_state_free(&st);
	free(a);
	free(b);
}
END_TEST

/* st2, a fresh state with st's times, adopting a copy of st's listing as
 * md_listing_pack writes it (as a store keeps it for the next handle). */
static bool adopt_copy(const struct md_scan_state *st, struct md_scan_state *st2, const uint8_t *bytes,
		       size_t len)
{
	memset(st2, 0, sizeof *st2);
	st2->new_mtime_ns = st->new_mtime_ns;
	st2->cur_mtime_ns = st->cur_mtime_ns;
	st2->scanned_at_ns = st->scanned_at_ns;
	uint8_t *buf = malloc(len + 3);
	memcpy(buf, "hdr", 3); /* (the caller's own header before it) */
	memcpy(buf + 3, bytes, len);
	st2->valid = md_scan_state_adopt(st2, buf, 3, len + 3);
	return st2->valid;
}

/* A listing kept as bytes is read in only when a scan has to compare: a
 * quiet folder's never is; a changed one's is, and the changes come out
 * exactly as they would from the listing it was made of. A listing that
 * is not in order, names a base twice, or holds a name no directory
 * entry can have is refused. */
START_TEST(a_kept_listing_is_read_in_only_when_needed)
{
	char *a = deliver("INBOX", "a", NULL), *b = deliver("INBOX", "b", "S");
	free(deliver("INBOX", "c", NULL));
	md_own_settle(m, true);
	age_dir("new", time(NULL) - 10);
	age_dir("cur", time(NULL) - 10);
	struct md_scan_state st = { 0 }, st2;
	struct md_changes ch = { 0 };
	ck_assert_int_eq(md_scan(m, "INBOX", &st, NULL), 0);
	ck_assert_uint_eq(st.last.n, 3);
	struct vbuf bytes = { 0 };
	md_listing_pack(&st.last, &bytes);
	ck_assert_int_eq(bytes.err, 0);
	/* Quiet (the mtimes, or the watch the first scan armed, say so): never read in. */
	ck_assert(adopt_copy(&st, &st2, bytes.p, bytes.len));
	ck_assert_uint_eq(st2.last.n, 0);
	ck_assert_int_eq(md_scan(m, "INBOX", &st2, &ch), 0);
	ck_assert_uint_eq(ch.n, 0);
	ck_assert_uint_eq(st2.rescans, 0);
	ck_assert_ptr_nonnull(st2.packed);
	/* Read in on demand, entry for entry what was packed. */
	ck_assert_int_eq(md_scan_state_ready(&st2), 0);
	ck_assert_ptr_null(st2.packed);
	ck_assert_uint_eq(st2.last.n, 3);
	for (size_t i = 0; i < 3; i++) {
		ck_assert_str_eq(st2.last.e[i].file, st.last.e[i].file);
		ck_assert_uint_eq(st2.last.e[i].base_len, st.last.e[i].base_len);
		ck_assert_int_eq(st2.last.e[i].in_new, st.last.e[i].in_new);
		ck_assert_str_eq(st2.last.e[i].flags, st.last.e[i].flags);
	}
	md_scan_state_free(&st2);
	/* Changed by another program: read in, and the changes are exact. */
	ck_assert(adopt_copy(&st, &st2, bytes.p, bytes.len));
	outside_changes(a, b, "F");
	ck_assert_int_eq(md_scan(m, "INBOX", &st2, &ch), 0);
	ck_assert_ptr_null(st2.packed);
	ck_assert_uint_eq(ch.n, 3);
	ck_assert_uint_eq(count_kind(&ch, MD_ADDED), 1);
	ck_assert_uint_eq(count_kind(&ch, MD_FLAGS_CHANGED), 1);
	ck_assert_uint_eq(count_kind(&ch, MD_VANISHED), 1);
	md_changes_free(&ch);
	md_scan_state_free(&st2);
	/* Refused: each a listing in the same form, made wrong. */
	struct md_listing l = { 0 };
	l.e = calloc(2, sizeof *l.e);
	l.n = l.cap = 2;
	static const char *const bad[][2] = {
		{ "2.M2P2.h:2,S", "1.M1P1.h" },   /* out of order */
		{ "1.M1P1.h", "1.M1P1.h:2,S" },   /* one base twice */
		{ "1.M1P1.h", "2.M2P2.h/x" },     /* a name with a slash */
		{ "1.M1P1.h", "" },               /* an empty name */
	};
	for (size_t k = 0; k < sizeof bad / sizeof *bad; k++) {
		struct vbuf v = { 0 };
		l.e[0].file = (char *)bad[k][0];
		l.e[1].file = (char *)bad[k][1];
		md_listing_pack(&l, &v);
		ck_assert_msg(!adopt_copy(&st, &st2, v.p, v.len), "bad listing %zu adopted", k);
		md_scan_state_free(&st2);
		vbuf_free(&v);
	}
	free(l.e);
	/* Cut short, or with bytes after it. */
	ck_assert(!adopt_copy(&st, &st2, bytes.p, bytes.len - 1));
	md_scan_state_free(&st2);
	vput(&bytes, 0);
	ck_assert(!adopt_copy(&st, &st2, bytes.p, bytes.len));
	md_scan_state_free(&st2);
	vbuf_free(&bytes);
	md_scan_state_free(&st);
	free(a);
	free(b);
}
END_TEST

/* What the handle itself wrote, once settled, is not news to its next
 * scan; what it wrote in a call that failed (settled with false) is, and
 * so is another program's change to a file the handle had written. */
START_TEST(scan_leaves_out_settled_own_changes)
{
	char *a = deliver("INBOX", "a", NULL), *b = deliver("INBOX", "b", NULL);
	char *c = deliver("INBOX", "c", NULL);
	md_own_settle(m, true);
	struct md_scan_state st = { 0 };
	struct md_changes ch = { 0 };
	ck_assert_int_eq(md_scan(m, "INBOX", &st, NULL), 0); /* the first look */
	/* Our own: a new message, a flag change, a removal. */
	char *d = deliver("INBOX", "d", NULL);
	ck_assert_int_eq(md_set_flags(m, "INBOX", a, true, "S", NULL), 0);
	ck_assert_int_eq(md_remove(m, "INBOX", b, true), 0);
	md_own_settle(m, true);
	/* Another program's: c marked flagged. */
	char from[512], to[512];
	path_of(from, sizeof from, "new", c);
	snprintf(to, sizeof to, "%s/cur/%s:2,F", root, c);
	ck_assert_int_eq(rename(from, to), 0);
	ck_assert_int_eq(md_scan(m, "INBOX", &st, &ch), 0);
	ck_assert_uint_eq(ch.n, 1);
	ck_assert_int_eq(ch.c[0].kind, MD_FLAGS_CHANGED);
	ck_assert_str_eq(ch.c[0].entry.flags, "F");
	md_changes_free(&ch);
	/* The listing holds what is on disk: a:2,S, c:2,F, d; b is gone. */
	ck_assert_uint_eq(st.last.n, 3);
	/* A call that failed: its file is news. */
	char *e = deliver("INBOX", "e", NULL);
	md_own_settle(m, false);
	/* Ours, then changed by another program before the scan. */
	char *dn = NULL;
	ck_assert_int_eq(md_set_flags(m, "INBOX", d, true, "R", &dn), 0);
	md_own_settle(m, true);
	path_of(from, sizeof from, "cur", dn);
	snprintf(to, sizeof to, "%s/cur/%s:2,RS", root, d);
	ck_assert_int_eq(rename(from, to), 0);
	ck_assert_int_eq(md_scan(m, "INBOX", &st, &ch), 0);
	ck_assert_uint_eq(ch.n, 2);
	ck_assert_uint_eq(count_kind(&ch, MD_ADDED), 1);
	ck_assert_uint_eq(count_kind(&ch, MD_FLAGS_CHANGED), 1);
	for (size_t i = 0; i < ch.n; i++)
		if (ch.c[i].kind == MD_FLAGS_CHANGED)
			ck_assert_str_eq(ch.c[i].entry.flags, "RS");
	md_changes_free(&ch);
	md_scan_state_free(&st);
	free(a), free(b), free(c), free(d), free(e), free(dn);
}
END_TEST

/* Under inotify, a folder in which only the handle's own settled changes
 * happened is not read again; another program's change, even a file
 * written in place (no mtime moves), makes the next scan read it. */
START_TEST(a_watched_folder_is_read_only_after_news)
{
	struct md_scan_state st = { 0 };
	struct md_changes ch = { 0 };
	/* One scan takes no inotify instance (a command scans once); the
	 * second arms the folder's watch. */
	ck_assert_int_eq(md_scan(m, "INBOX", &st, NULL), 0);
	ck_assert_int_eq(m->ino, -1);
	ck_assert(!md_watch_armed(md_watch_find(m, "INBOX")));
	ck_assert_int_eq(md_scan(m, "INBOX", &st, NULL), 0);
	unsigned reads = st.rescans;
	if (m->ino == -2) {
		fprintf(stderr, "a_watched_folder_is_read_only_after_news: skipped (no inotify instance)\n");
		md_scan_state_free(&st);
		return; /* the mtimes decide (tested above) */
	}
	ck_assert(md_watch_armed(md_watch_find(m, "INBOX")));
	char *a = deliver("INBOX", "a", NULL);
	ck_assert_int_eq(md_set_flags(m, "INBOX", a, true, "S", NULL), 0);
	md_own_settle(m, true);
	ck_assert_int_eq(md_scan(m, "INBOX", &st, &ch), 0);
	ck_assert_uint_eq(ch.n, 0);
	ck_assert_uint_eq(st.rescans, reads);
	ck_assert_uint_eq(st.last.n, 1); /* yet the listing has it */
	/* Folded between scans (the store looking a file up): the events of
	 * the changes folded are still explained. */
	char *a2 = NULL;
	ck_assert_int_eq(md_set_flags(m, "INBOX", st.last.e[0].file, false, "FS", &a2), 0);
	md_own_settle(m, true);
	ck_assert_int_eq(md_scan_fold(m, "INBOX", &st), 0);
	ck_assert_int_eq(md_scan(m, "INBOX", &st, &ch), 0);
	ck_assert_uint_eq(ch.n, 0);
	ck_assert_uint_eq(st.rescans, reads);
	free(a2);
	/* An empty file, then its content written in place. */
	char path[600];
	snprintf(path, sizeof path, "%s/new/1700000200.M1P1.mta", root);
	put_file(path, "");
	ck_assert_int_eq(md_scan(m, "INBOX", &st, &ch), 0);
	ck_assert_uint_eq(st.rescans, reads + 1);
	md_changes_free(&ch);
	ck_assert_int_eq(md_scan(m, "INBOX", &st, &ch), 0);
	ck_assert_uint_eq(st.rescans, reads + 1); /* nothing since */
	put_file(path, "Subject: x\n");
	ck_assert_int_eq(md_scan(m, "INBOX", &st, &ch), 0);
	ck_assert_uint_eq(st.rescans, reads + 2);
	md_changes_free(&ch);
	/* Own changes forgotten (a failed call): read again. */
	free(deliver("INBOX", "b", NULL));
	md_own_settle(m, false);
	ck_assert_int_eq(md_scan(m, "INBOX", &st, &ch), 0);
	ck_assert_uint_eq(st.rescans, reads + 3);
	ck_assert_uint_eq(count_kind(&ch, MD_ADDED), 1);
	md_changes_free(&ch);
	md_scan_state_free(&st);
	free(a);
}
END_TEST

/* Scans mailbox twice into st, which arms its watch: false (st freed,
 * the test named skipped) where inotify is not to be had. */
static bool scanned_under_watch(const char *mailbox, struct md_scan_state *st, const char *test)
{
	ck_assert_int_eq(md_scan(m, mailbox, st, NULL), 0);
	ck_assert_int_eq(md_scan(m, mailbox, st, NULL), 0);
	if (md_watch_armed(md_watch_find(m, mailbox)))
		return true;
	fprintf(stderr, "%s: skipped (no inotify)\n", test);
	md_scan_state_free(st);
	return false;
}

/* A caller that drops the state a watched scan filled in and goes on from
 * an older one (its commit failed) gets the changes again after
 * md_scan_forget: the watch saw them, the older listing does not have them. */
START_TEST(a_dropped_state_is_read_again_under_a_watch)
{
	free(deliver("INBOX", "a", "S"));
	struct md_scan_state st = { 0 }, old;
	struct md_changes ch = { 0 };
	if (!scanned_under_watch("INBOX", &st, "a_dropped_state_is_read_again_under_a_watch"))
		return;
	struct vbuf bytes = { 0 };
	md_listing_pack(&st.last, &bytes);
	ck_assert(adopt_copy(&st, &old, bytes.p, bytes.len));
	vbuf_free(&bytes);
	dropped_file_is_found(&st, "1.M1P1.mta");
	md_scan_state_free(&st);
	md_scan_forget(m, "INBOX");
	ck_assert_int_eq(md_scan(m, "INBOX", &old, &ch), 0);
	ck_assert_uint_eq(count_kind(&ch, MD_ADDED), 1);
	md_changes_free(&ch);
	md_scan_state_free(&old);
}
END_TEST

/* A watched folder that another program replaced while the handle had
 * closed its directories (more folders used since than it keeps open) is
 * read, not taken as the one watched. */
START_TEST(a_watched_folder_replaced_out_of_the_cache_is_read)
{
	ck_assert_int_eq(md_folder_create(m, "Work"), 0);
	free(deliver("Work", "a", "S"));
	struct md_scan_state st = { 0 };
	struct md_changes ch = { 0 };
	if (!scanned_under_watch("Work", &st, "a_watched_folder_replaced_out_of_the_cache_is_read"))
		return;
	for (int i = 0; i < MD_FOLDER_CACHE; i++) {
		char name[16];
		struct md_folder *f;
		snprintf(name, sizeof name, "F%d", i);
		ck_assert_int_eq(md_folder_create(m, name), 0);
		ck_assert_int_eq(md_folder_open(m, name, &f), 0);
	}
	char cmd[2000];
	snprintf(cmd, sizeof cmd, "mv %s/.Work %s/.Gone && mkdir -p %s/.Work/cur %s/.Work/new %s/.Work/tmp", root, root,
		 root, root, root);
	ck_assert_int_eq(system(cmd), 0);
	snprintf(cmd, sizeof cmd, "%s/.Work/new/1.M1P1.mta", root);
	put_file(cmd, "Subject: d\n");
	ck_assert_int_eq(md_scan(m, "Work", &st, &ch), 0);
	ck_assert_uint_eq(count_kind(&ch, MD_ADDED), 1);
	ck_assert_uint_eq(count_kind(&ch, MD_VANISHED), 1);
	md_changes_free(&ch);
	md_scan_state_free(&st);
}
END_TEST

/* Under inotify, another program's change to a file of ours is news even
 * though its name is one our own notes name: removing a file we delivered,
 * undoing our flag rename, a file coming back under a name we removed. */
START_TEST(a_watch_tells_ours_from_a_change_to_it)
{
	struct md_scan_state st = { 0 };
	struct md_changes ch = { 0 };
	for (int i = 0; i < 2; i++) /* (the second scan arms the watch) */
		ck_assert_int_eq(md_scan(m, "INBOX", &st, NULL), 0);
	if (m->ino == -2) {
		fprintf(stderr, "a_watch_tells_ours_from_a_change_to_it: skipped (no inotify instance)\n");
		md_scan_state_free(&st);
		return; /* the mtimes decide */
	}
	ck_assert(md_watch_armed(md_watch_find(m, "INBOX")));
	char from[600], to[600];
	/* Delivered by us, removed by another program before our next scan. */
	char *a = deliver("INBOX", "a", NULL);
	md_own_settle(m, true);
	path_of(from, sizeof from, "new", a);
	ck_assert_int_eq(unlink(from), 0);
	ck_assert_int_eq(md_scan(m, "INBOX", &st, &ch), 0);
	ck_assert_uint_eq(st.last.n, 0);
	md_changes_free(&ch);
	/* Our flag rename, undone by another program. */
	char *b = deliver("INBOX", "b", "R"), *b2 = NULL;
	md_own_settle(m, true);
	ck_assert_int_eq(md_scan(m, "INBOX", &st, &ch), 0);
	md_changes_free(&ch);
	ck_assert_int_eq(md_set_flags(m, "INBOX", b, false, "RS", &b2), 0);
	md_own_settle(m, true);
	snprintf(from, sizeof from, "%s/cur/%s", root, b2);
	snprintf(to, sizeof to, "%s/cur/%s", root, b);
	ck_assert_int_eq(rename(from, to), 0);
	ck_assert_int_eq(md_scan(m, "INBOX", &st, &ch), 0);
	ck_assert_uint_eq(count_kind(&ch, MD_FLAGS_CHANGED), 1);
	ck_assert_str_eq(ch.c[0].entry.flags, "R");
	md_changes_free(&ch);
	/* Delivered and removed by us, then back from another program. */
	char *c = deliver("INBOX", "c", NULL);
	ck_assert_int_eq(md_remove(m, "INBOX", c, true), 0);
	md_own_settle(m, true);
	snprintf(to, sizeof to, "%s/new/%s", root, c);
	put_file(to, "Subject: back\n\nx\n");
	ck_assert_int_eq(md_scan(m, "INBOX", &st, &ch), 0);
	ck_assert_uint_eq(count_kind(&ch, MD_ADDED), 1);
	ck_assert_uint_eq(st.last.n, 2);
	md_changes_free(&ch);
	md_scan_state_free(&st);
	free(a), free(b), free(b2), free(c);
}
END_TEST

/* On a file system other machines change (NFS, SMB, FUSE), inotify would
 * not report their deliveries: a long-lived handle does not watch there,
 * and another program's change is read because the mtimes moved, which
 * are compared with the server's clock. */
START_TEST(no_watch_on_a_shared_file_system)
{
	md_test_shared_fs = true;
	struct md_scan_state st = { 0 };
	struct md_changes ch = { 0 };
	for (int i = 0; i < 3; i++)
		ck_assert_int_eq(md_scan(m, "INBOX", &st, NULL), 0);
	ck_assert(!md_watch_armed(md_watch_find(m, "INBOX")));
	ck_assert_int_eq(m->ino, -1); /* not even an instance */
	unsigned reads = st.rescans;
	char path[600];
	snprintf(path, sizeof path, "%s/new/1700000600.M1P1.elsewhere", root);
	put_file(path, "Subject: from another machine\n\nx\n");
	ck_assert_int_eq(md_scan(m, "INBOX", &st, &ch), 0);
	ck_assert_uint_eq(st.rescans, reads + 1);
	ck_assert_uint_eq(count_kind(&ch, MD_ADDED), 1);
	md_changes_free(&ch);
	/* The second a listing begins is read off the server's clock (a file
	 * made in tmp/ and removed): a listing begun a second after the last
	 * change is trusted, as on a local file system. */
	time_t t = time(NULL);
	while (time(NULL) == t) {
		struct timespec nap = { 0, 10000000 };
		nanosleep(&nap, NULL);
	}
	ck_assert_int_eq(md_scan(m, "INBOX", &st, NULL), 0); /* (reads if the file came in its listing's second) */
	reads = st.rescans;
	ck_assert_int_eq(md_scan(m, "INBOX", &st, NULL), 0);
	ck_assert_uint_eq(st.rescans, reads);
	ck_assert_int_eq(count_dir("tmp"), 0);
	md_scan_state_free(&st);
	md_test_shared_fs = false;
}
END_TEST

/* Another program removes a folder and makes it again (or renames it
 * away and makes a new one): a long-lived handle's next scans see the new
 * folder's files, not the old directories it still has open. */
START_TEST(a_folder_made_again_is_read_again)
{
	ck_assert_int_eq(md_folder_create(m, "Work"), 0);
	free(deliver("Work", "old", NULL));
	struct md_scan_state st = { 0 };
	struct md_changes ch = { 0 };
	for (int i = 0; i < 2; i++) /* (the second scan arms the watch) */
		ck_assert_int_eq(md_scan(m, "Work", &st, NULL), 0);
	ck_assert_uint_eq(st.last.n, 1);
	char cmd[1400], path[700];
	for (int round = 0; round < 2; round++) {
		if (round == 0)
			snprintf(cmd, sizeof cmd, "rm -r '%s/.Work'", root);
		else
			snprintf(cmd, sizeof cmd, "mv '%s/.Work' '%s/.Gone%d'", root, root, round);
		ck_assert_int_eq(system(cmd), 0);
		snprintf(cmd, sizeof cmd, "mkdir -p '%s/.Work/cur' '%s/.Work/new' '%s/.Work/tmp'", root, root, root);
		ck_assert_int_eq(system(cmd), 0);
		snprintf(path, sizeof path, "%s/.Work/new/170000030%d.M1P1.elsewhere", root, round);
		put_file(path, "Subject: made again\n\nx\n");
		ck_assert_int_eq(md_scan(m, "Work", &st, &ch), 0);
		ck_assert_uint_eq(count_kind(&ch, MD_ADDED), 1);
		ck_assert_uint_eq(st.last.n, 1);
		ck_assert_str_eq(st.last.e[0].file, strrchr(path, '/') + 1);
		md_changes_free(&ch);
		/* And a delivery goes into the new folder. */
		char *d = deliver("Work", "new", NULL);
		snprintf(path, sizeof path, "%s/.Work/new/%s", root, d);
		ck_assert_int_eq(access(path, F_OK), 0);
		free(d);
		md_own_settle(m, true);
		ck_assert_int_eq(md_scan(m, "Work", &st, &ch), 0);
		md_changes_free(&ch);
	}
	/* Deliveries with no scan since the folder was made again: a single
	 * one, then one in a batch, land in the live folder. */
	for (int round = 2; round < 4; round++) {
		snprintf(cmd, sizeof cmd, "mv '%s/.Work' '%s/.Gone%d' && mkdir -p '%s/.Work/cur' '%s/.Work/new' '%s/.Work/tmp'",
			 root, root, round, root, root, root);
		ck_assert_int_eq(system(cmd), 0);
		if (round == 3)
			ck_assert_int_eq(md_batch_begin(m), 0);
		char *d = deliver("Work", "again", NULL);
		if (round == 3)
			ck_assert_int_eq(md_batch_commit(m), 0);
		snprintf(path, sizeof path, "%s/.Work/new/%s", root, d);
		ck_assert_msg(access(path, F_OK) == 0, "round %d: %s is not in the live folder", round, d);
		free(d);
	}
	md_own_settle(m, true);
	md_scan_state_free(&st);
}
END_TEST

/* Names alike in their first 16 bytes, and names that are prefixes of
 * others, come out of a listing sorted by base name, each once. */
START_TEST(listing_sorts_names_alike)
{
	char path[600];
	for (int i = 0; i < 300; i++) {
		/* Same 16-byte start; the rest in an order unlike the names'. */
		snprintf(path, sizeof path, "%s/cur/1700000000.M1P1Q%d.host:2,S", root, (i * 37) % 300);
		put_file(path, "x");
	}
	static const char *const more[] = { "a", "ab", "abc", "abd", "b", "1700000000.M1P1Q" };
	for (size_t i = 0; i < sizeof more / sizeof *more; i++) {
		snprintf(path, sizeof path, "%s/new/%s", root, more[i]);
		put_file(path, "x");
	}
	struct md_listing l = { 0 };
	ck_assert_int_eq(md_list(m, "INBOX", &l), 0);
	ck_assert_uint_eq(l.n, 306);
	for (size_t i = 1; i < l.n; i++) {
		const struct md_entry *x = &l.e[i - 1], *y = &l.e[i];
		size_t n = x->base_len < y->base_len ? x->base_len : y->base_len;
		int c = memcmp(x->file, y->file, n);
		ck_assert_msg(c < 0 || (c == 0 && x->base_len < y->base_len), "%s before %s", x->file, y->file);
	}
	md_listing_free(&l);
}
END_TEST

START_TEST(scan_trusts_no_mtime_from_its_own_second)
{
	char *a = deliver("INBOX", "a", NULL);
	struct md_scan_state st = { 0 };
	struct md_changes ch = { 0 };
	/* The directories changed in the second the scan runs in... */
	time_t now = time(NULL);
	age_dir("new", now);
	age_dir("cur", now);
	ck_assert_int_eq(md_scan(m, "INBOX", &st, &ch), 0);
	md_changes_free(&ch);
	/* ...and change again within it, on a file system too coarse to show it. */
	char from[512], to[512];
	path_of(from, sizeof from, "new", a);
	snprintf(to, sizeof to, "%s/cur/%s:2,F", root, a);
	ck_assert_int_eq(rename(from, to), 0);
	age_dir("new", now);
	age_dir("cur", now);
	if (time(NULL) == now || st.scanned_at_ns / 1000000000 <= now) {
		ck_assert_int_eq(md_scan(m, "INBOX", &st, &ch), 0);
		ck_assert_uint_eq(count_kind(&ch, MD_FLAGS_CHANGED), 1);
	}
	md_changes_free(&ch);
	md_scan_state_free(&st);
	free(a);
}
END_TEST

/* Where mtimes are the local clock's nanoseconds, a listing begun once the
 * clock moved past them stands at the next scan, even within their second;
 * the next change moves them. */
START_TEST(a_listing_stands_once_the_clock_passed_its_mtimes)
{
	m->ino = -2; /* no watch: the mtimes decide */
	free(deliver("INBOX", "a", "S"));
	struct md_scan_state st = { 0 };
	struct md_changes ch = { 0 };
	nanosleep(&(struct timespec){ 0, 20000000 }, NULL); /* (past the stamp's tick) */
	ck_assert_int_eq(md_scan(m, "INBOX", &st, &ch), 0);
	md_changes_free(&ch);
	struct md_folder *f;
	ck_assert_int_eq(md_folder_open(m, "INBOX", &f), 0);
	unsigned reads = st.dirs_read;
	ck_assert_int_eq(md_scan(m, "INBOX", &st, &ch), 0);
	ck_assert_uint_eq(ch.n, 0);
	if (md_fine_mtimes(f->cur) && st.cur_mtime_ns % 1000000000 && st.new_mtime_ns % 1000000000)
		ck_assert_uint_eq(st.dirs_read, reads);
	else
		fprintf(stderr, "a_listing_stands_once_the_clock_passed_its_mtimes: whole-second mtimes here\n");
	dropped_file_is_found(&st, "1.M1P1.mta");
	md_scan_state_free(&st);
}
END_TEST

/* While a child keeps renaming files between new/ and cur/ and among
 * flags, every listing holds each message exactly once. */
START_TEST(scan_survives_renames_under_it)
{
	enum { N = 40 };
	for (int i = 0; i < N; i++)
		free(deliver("INBOX", "racing", NULL));
	pid_t pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		md *c;
		if (md_open(&c, root, 0))
			_exit(1);
		for (int round = 0;; round++) {
			struct md_listing l;
			if (md_list(c, "INBOX", &l))
				_exit(1);
			for (size_t i = 0; i < l.n; i++)
				md_set_flags(c, "INBOX", l.e[i].file, l.e[i].in_new, round % 2 ? "S" : "FS", NULL);
			md_listing_free(&l);
		}
	}
	struct md_scan_state st = { 0 };
	for (int i = 0; i < 300; i++) {
		struct md_changes ch = { 0 };
		st.valid = false; /* always re-read */
		ck_assert_int_eq(md_scan(m, "INBOX", &st, &ch), 0);
		ck_assert_uint_eq(st.last.n, N);
		ck_assert_uint_eq(count_kind(&ch, MD_VANISHED), 0);
		ck_assert_uint_eq(count_kind(&ch, MD_ADDED), i == 0 ? N : 0);
		md_changes_free(&ch);
	}
	kill(pid, SIGKILL);
	waitpid(pid, NULL, 0);
	md_scan_state_free(&st);
}
END_TEST

START_TEST(tmp_leftovers_older_than_36_hours_go)
{
	char p[512];
	time_t now = time(NULL);
	/* Two leftovers dated 37 hours back, one file dated 10 hours ahead. */
	for (int i = 0; i < 3; i++) {
		snprintf(p, sizeof p, "%s/tmp/left%d", root, i);
		put_file(p, "partial");
		time_t t = i ? now - 37 * 3600 : now + 10 * 3600;
		struct timespec ts[2] = { { t, 0 }, { t, 0 } };
		ck_assert_int_eq(utimensat(AT_FDCWD, p, ts, 0), 0);
	}
	size_t removed;
	/* Today the old mtimes alone do not count: their ctime is fresh, as for
	 * a delivery that gave its file an old internal date while in tmp/. */
	ck_assert_int_eq(md_tmp_clean(m, "INBOX", now, &removed), 0);
	ck_assert_uint_eq(removed, 0);
	/* 37 hours on, both times of the leftovers are old; the other is not. */
	ck_assert_int_eq(md_tmp_clean(m, "INBOX", now + 37 * 3600, &removed), 0);
	ck_assert_uint_eq(removed, 2);
	ck_assert_int_eq(count_dir("tmp"), 1);
}
END_TEST

static int fail_after;
static ssize_t failing_write(int fd, const void *buf, size_t len)
{
	if (fail_after <= 0) {
		errno = ENOSPC;
		return -1;
	}
	size_t n = len < (size_t)fail_after ? len : (size_t)fail_after;
	fail_after -= (int)n;
	return write(fd, buf, n);
}

START_TEST(a_full_disk_loses_nothing)
{
	char *kept = deliver("INBOX", "already stored", NULL);
	fail_after = 3;
	md_write_hook = failing_write;
	int rc = md_deliver(m, "INBOX", "a longer message", 16, NULL, NULL);
	md_write_hook = write;
	ck_assert_int_eq(rc, MCRDT_ENOSPC);
	ck_assert_ptr_nonnull(strstr(mcrdt_error_last(), "No space"));
	ck_assert_int_eq(count_dir("tmp"), 0);
	ck_assert_int_eq(count_dir("new"), 1);
	struct md_listing l;
	ck_assert_int_eq(md_list(m, "INBOX", &l), 0);
	ck_assert_uint_eq(l.n, 1);
	ck_assert_str_eq(l.e[0].file, kept);
	md_listing_free(&l);
	free(kept);
}
END_TEST

START_TEST(bad_files_are_named_not_trusted)
{
	char p[512], q[512];
	/* A symlink posing as a message, an empty file, a bad info. */
	snprintf(p, sizeof p, "%s/cur/1.link:2,S", root);
	ck_assert_int_eq(symlink("/etc/passwd", p), 0);
	snprintf(p, sizeof p, "%s/new/2.empty", root);
	put_file(p, "");
	snprintf(p, sizeof p, "%s/cur/3.odd:2,S:extra", root);
	put_file(p, "x");
	struct md_listing l;
	ck_assert_int_eq(md_list(m, "INBOX", &l), 0);
	ck_assert_uint_eq(l.n, 3);
	ck_assert_str_eq(l.e[0].problem, "a symbolic link");
	ck_assert_str_eq(l.e[1].problem, "an empty file");
	ck_assert_ptr_nonnull(l.e[2].problem);
	md_listing_free(&l);
	int fd;
	ck_assert_int_eq(md_open_message(m, "INBOX", "1.link:2,S", false, &fd, NULL), MCRDT_ECORRUPT);
	ck_assert_int_eq(md_set_flags(m, "INBOX", "3.odd:2,S:extra", false, "F", NULL), MCRDT_ECORRUPT);
	ck_assert_int_eq(access(p, F_OK), 0); /* left as it was */
	/* A symlinked tmp/ is refused, not followed. */
	md_close(m);
	snprintf(p, sizeof p, "%s/tmp", root);
	snprintf(q, sizeof q, "%s/cur", root);
	ck_assert_int_eq(rmdir(p), 0);
	ck_assert_int_eq(symlink("/tmp", p), 0);
	ck_assert_int_eq(md_open(&m, root, 0), 0);
	ck_assert_int_eq(md_deliver(m, "INBOX", "x", 1, NULL, NULL), MCRDT_ECORRUPT);
	ck_assert_ptr_nonnull(strstr(mcrdt_error_last(), "symbolic link"));
	/* A file where a directory belongs. */
	ck_assert_int_eq(md_folder_create(m, "Box"), 0);
	snprintf(p, sizeof p, "%s/.Box/new", root);
	ck_assert_int_eq(rmdir(p), 0);
	put_file(p, "");
	ck_assert_int_eq(md_deliver(m, "Box", "x", 1, NULL, NULL), MCRDT_ECORRUPT);
	ck_assert_ptr_nonnull(strstr(mcrdt_error_last(), "not a directory"));
	ck_assert_int_eq(md_deliver(m, "Missing", "x", 1, NULL, NULL), MCRDT_ENOTFOUND);
}
END_TEST

/* A message the engine's user may not read gives a clear error. Root
 * reads everything, so the check runs in a child that drops to nobody. */
START_TEST(an_unreadable_message_is_a_clear_error)
{
	char *name = deliver("INBOX", "secret", NULL);
	char p[512];
	path_of(p, sizeof p, "new", name);
	ck_assert_int_eq(chmod(p, 0), 0);
	pid_t pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		if (getuid() == 0) {
			char dir[512];
			snprintf(dir, sizeof dir, "%.*s", (int)(strlen(root) - 8), root);
			const char *open_up[] = { dir, root, "new", "cur", "tmp" };
			for (size_t i = 0; i < 5; i++) {
				char q[600];
				snprintf(q, sizeof q, "%s/%s", root, open_up[i]);
				if (chmod(i < 2 ? open_up[i] : q, 0755) != 0)
					_exit(10);
			}
			if (setgid(65534) != 0 || setuid(65534) != 0)
				_exit(11);
		}
		md *c;
		int fd;
		if (md_open(&c, root, 0))
			_exit(12);
		int rc = md_open_message(c, "INBOX", name, true, &fd, NULL);
		_exit(rc == MCRDT_EIO && strstr(mcrdt_error_last(), "unreadable") ? 0 : 13);
	}
	int status;
	ck_assert_int_eq(waitpid(pid, &status, 0), pid);
	ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0, "child said %d", WEXITSTATUS(status));
	free(name);
}
END_TEST

/* Regression: long keywords another tool wrote overflowed a fixed buffer
 * when the file was rewritten; now every one of them is kept as it was. */
START_TEST(long_keywords_from_another_tool_are_kept)
{
	char p[512];
	snprintf(p, sizeof p, "%s/dovecot-keywords", root);
	FILE *f = fopen(p, "w");
	char kw[501];
	memset(kw, 'k', 500);
	kw[500] = '\0';
	for (int i = 0; i < 20; i++) {
		kw[0] = (char)('a' + i);
		fprintf(f, "%d %s\n", i, kw);
	}
	fclose(f);
	char letter;
	ck_assert_int_eq(md_keyword_letter(m, "INBOX", "new", &letter), 0);
	ck_assert_int_eq(letter, 'a' + 20);
	struct md_keywords k;
	ck_assert_int_eq(md_keywords_load(m, "INBOX", &k), 0);
	for (int i = 0; i < 20; i++)
		ck_assert_uint_eq(strlen(k.names[i]), 500);
	ck_assert_str_eq(k.names[20], "new");
	md_keywords_free(&k);
}
END_TEST

/* A batch whose commit fails part way delivers nothing: a retry doubles nothing. */
START_TEST(a_failed_batch_takes_back_what_it_placed)
{
	ck_assert_int_eq(md_batch_begin(m), 0);
	free(deliver("INBOX", "one", NULL));
	free(deliver("INBOX", "two", NULL));
	struct md_deliver_opts o = MD_DELIVER_OPTS_INIT;
	o.base = "1700000000.M9P9Q9.clash";
	ck_assert_int_eq(md_deliver(m, "INBOX", "three", 5, &o, NULL), 0);
	free(deliver("INBOX", "four", NULL));
	/* Someone else takes the third name before the commit. */
	char p[512];
	snprintf(p, sizeof p, "%s/new/%s", root, o.base);
	put_file(p, "theirs");
	ck_assert_int_eq(md_batch_commit(m), MCRDT_EEXISTS);
	ck_assert_int_eq(count_dir("new"), 1); /* only theirs */
	ck_assert_int_eq(count_dir("tmp"), 0);
	ck_assert_int_eq(md_folder_create(m, "Box"), 0);
	ck_assert_int_eq(md_batch_begin(m), 0);
	ck_assert_int_eq(md_folder_delete(m, "Box"), MCRDT_EINVAL);
	md_batch_abort(m);
}
END_TEST

/*
 * Flag renames and removals in a batch act at once, but each directory is
 * synced once when the batch ends, not once per file, also across more
 * folders than the handle keeps open.
 */
START_TEST(a_batch_syncs_each_directory_once)
{
	enum { FOLDERS = MD_FOLDER_CACHE + 4, EACH = 6 };
	char *files[FOLDERS][EACH], name[32];
	for (int f = 0; f < FOLDERS; f++) {
		snprintf(name, sizeof name, "F%d", f);
		ck_assert_int_eq(md_folder_create(m, name), 0);
		for (int i = 0; i < EACH; i++)
			files[f][i] = deliver(name, "message", NULL);
	}
	long before = n_fsync;
	ck_assert_int_eq(md_batch_begin(m), 0);
	for (int f = 0; f < FOLDERS; f++) {
		snprintf(name, sizeof name, "F%d", f);
		for (int i = 0; i + 1 < EACH; i++)
			ck_assert_int_eq(md_set_flags(m, name, files[f][i], true, "S", NULL), 0);
		ck_assert_int_eq(md_remove(m, name, files[f][EACH - 1], true), 0);
		char sub[64];
		snprintf(sub, sizeof sub, ".F%d/cur", f);
		ck_assert_int_eq(count_dir(sub), EACH - 1); /* renamed at once */
	}
	ck_assert_int_eq(md_batch_commit(m), 0);
	/* new/ and cur/ of each folder, once: not one per file. */
	ck_assert_int_le(n_fsync - before, 2 * FOLDERS);
	for (int f = 0; f < FOLDERS; f++) {
		char sub[64];
		snprintf(sub, sizeof sub, ".F%d/new", f);
		ck_assert_int_eq(count_dir(sub), 0);
		for (int i = 0; i < EACH; i++)
			free(files[f][i]);
	}
	/* Outside a batch each change is synced on its own. */
	char *one = deliver("INBOX", "one", NULL);
	before = n_fsync;
	ck_assert_int_eq(md_set_flags(m, "INBOX", one, true, "F", NULL), 0);
	ck_assert_int_eq(n_fsync - before, 2);
	free(one);
}
END_TEST

/* Only new/ moved since the last scan (an MTA's delivery): new/ is read,
 * and cur/'s entries come from the listing; only cur/ moved (a reader's
 * flags): cur/ alone. Both are read when both moved, when a file left the
 * directory read (a copy in the other may stand for it), or when the
 * other's mtime could hide a change (see stands() in maildir/scan.c). */
START_TEST(a_scan_reads_only_the_directory_that_moved)
{
	m->ino = -2; /* no watch: the mtimes decide, every time */
	char *a = deliver("INBOX", "a", "S"), *b = deliver("INBOX", "b", "S");
	struct md_scan_state st = { 0 };
	struct md_changes ch = { 0 };
	age_dir("new", time(NULL) - 10);
	age_dir("cur", time(NULL) - 10);
	ck_assert_int_eq(md_scan(m, "INBOX", &st, &ch), 0);
	ck_assert_uint_eq(count_kind(&ch, MD_ADDED), 2);
	md_changes_free(&ch);
	unsigned reads = st.dirs_read;
	char p[512], q[512];
	mta_drop("1.M1P1.mta", "Subject: d\n");
	age_dir("new", time(NULL) - 5);
	ck_assert_int_eq(md_scan(m, "INBOX", &st, &ch), 0);
	ck_assert_uint_eq(st.dirs_read, reads + 1);
	ck_assert_uint_eq(ch.n, 1);
	ck_assert_uint_eq(count_kind(&ch, MD_ADDED), 1);
	ck_assert_uint_eq(st.last.n, 3);
	md_changes_free(&ch);
	path_of(p, sizeof p, "cur", b);
	snprintf(q, sizeof q, "%s/cur/%.*s:2,FS", root, (int)strcspn(b, ":"), b);
	ck_assert_int_eq(rename(p, q), 0);
	age_dir("cur", time(NULL) - 3);
	ck_assert_int_eq(md_scan(m, "INBOX", &st, &ch), 0);
	ck_assert_uint_eq(st.dirs_read, reads + 2);
	ck_assert_uint_eq(ch.n, 1);
	ck_assert_uint_eq(count_kind(&ch, MD_FLAGS_CHANGED), 1);
	ck_assert_uint_eq(st.last.n, 3);
	md_changes_free(&ch);
	/* Both moved: both read. */
	mta_drop("2.M1P1.mta", "Subject: e\n");
	path_of(p, sizeof p, "cur", a);
	ck_assert_int_eq(unlink(p), 0);
	ck_assert_int_eq(md_scan(m, "INBOX", &st, &ch), 0);
	ck_assert_uint_eq(st.dirs_read, reads + 4);
	ck_assert_uint_eq(count_kind(&ch, MD_ADDED), 1);
	ck_assert_uint_eq(count_kind(&ch, MD_VANISHED), 1);
	md_changes_free(&ch);
	/* A message in both: its cur/ file goes, its new/ one stays. */
	snprintf(p, sizeof p, "%s/new/%.*s", root, (int)strcspn(b, ":"), b);
	put_file(p, "Subject: b\n");
	age_dir("new", time(NULL) - 8);
	age_dir("cur", time(NULL) - 8);
	ck_assert_int_eq(md_scan(m, "INBOX", &st, &ch), 0);
	md_changes_free(&ch);
	reads = st.dirs_read;
	ck_assert_int_eq(unlink(q), 0);
	age_dir("cur", time(NULL) - 2);
	ck_assert_int_eq(md_scan(m, "INBOX", &st, &ch), 0);
	ck_assert_uint_eq(st.dirs_read, reads + 3); /* cur/, then both */
	ck_assert_uint_eq(count_kind(&ch, MD_VANISHED), 0);
	ck_assert_uint_eq(count_kind(&ch, MD_FLAGS_CHANGED), 1);
	md_changes_free(&ch);
	/* cur/'s mtime in a second not before the listing's: not trusted. */
	time_t later = time(NULL) + 100;
	age_dir("new", time(NULL) - 20);
	age_dir("cur", later);
	ck_assert_int_eq(md_scan(m, "INBOX", &st, &ch), 0);
	ck_assert_int_eq(st.cur_mtime_ns, (int64_t)later * 1000000000); /* (recorded) */
	md_changes_free(&ch);
	mta_drop("3.M1P1.mta", "Subject: f\n");
	reads = st.dirs_read;
	ck_assert_int_eq(md_scan(m, "INBOX", &st, &ch), 0);
	ck_assert_uint_eq(st.dirs_read, reads + 2);
	ck_assert_uint_eq(count_kind(&ch, MD_ADDED), 1);
	md_changes_free(&ch);
	md_scan_state_free(&st);
	free(a);
	free(b);
}
END_TEST

/* A message of 21 bytes, complete, as the file blob (path into p) of a
 * directory beside the Maildir, and *o to move it in as a peer's message
 * with \Seen and a date. Returns the directory's fd. */
static int blob_elsewhere(char *p, size_t size, struct md_deliver_opts *o)
{
	char src[400];
	snprintf(src, sizeof src, "%.*s/elsewhere", (int)(strlen(root) - 8), root);
	ck_assert_int_eq(mkdir(src, 0700), 0);
	int dir = open(src, O_RDONLY | O_DIRECTORY);
	ck_assert_int_ge(dir, 0);
	snprintf(p, size, "%s/blob", src);
	put_file(p, "Subject: moved\n\nbody\n");
	*o = (struct md_deliver_opts)MD_DELIVER_OPTS_INIT;
	o->base = "1700000000.M1P2Q3.peer,S=21";
	o->flags = "S";
	o->mtime = 1000000000;
	o->src_dir = dir;
	o->src_name = "blob";
	return dir;
}

/* A complete file moved in is delivered as if written: its base name, its
 * flags, its date; one that is not the size given is refused and removed. */
START_TEST(a_file_moved_in_is_delivered)
{
	char blob[512], p[512];
	struct md_deliver_opts o;
	int dir = blob_elsewhere(blob, sizeof blob, &o);
	snprintf(p, sizeof p, "%s", blob);
	ck_assert_int_eq(md_batch_begin(m), 0);
	char *name = NULL;
	ck_assert_int_eq(md_deliver(m, "INBOX", NULL, 21, &o, &name), 0);
	ck_assert_int_eq(count_dir("cur"), 0); /* at the commit, like a written one */
	ck_assert_int_eq(md_batch_commit(m), 0);
	ck_assert_str_eq(name, "1700000000.M1P2Q3.peer,S=21:2,S");
	ck_assert_int_ne(access(p, F_OK), 0);
	path_of(p, sizeof p, "cur", name);
	struct stat st;
	ck_assert_int_eq(stat(p, &st), 0);
	ck_assert_int_eq(st.st_mtime, 1000000000);
	char buf[64] = { 0 };
	FILE *f = fopen(p, "r");
	ck_assert_ptr_nonnull(f);
	ck_assert_uint_eq(fread(buf, 1, sizeof buf, f), 21);
	fclose(f);
	ck_assert_str_eq(buf, "Subject: moved\n\nbody\n");
	/* Not the size its message has: refused, nothing left anywhere. */
	snprintf(p, sizeof p, "%s", blob);
	put_file(p, "short");
	o.base = "1700000001.M1P2Q3.peer,S=21";
	ck_assert_int_eq(md_deliver(m, "INBOX", NULL, 21, &o, NULL), MCRDT_ECORRUPT);
	ck_assert_int_ne(access(p, F_OK), 0);
	ck_assert_int_eq(count_dir("tmp"), 0);
	ck_assert_int_eq(count_dir("cur"), 1);
	ck_assert_int_eq(count_dir("new"), 0);
	/* The same inside a batch (checked by name there, no descriptor). */
	put_file(p, "short");
	ck_assert_int_eq(md_batch_begin(m), 0);
	ck_assert_int_eq(md_deliver(m, "INBOX", NULL, 21, &o, NULL), MCRDT_ECORRUPT);
	ck_assert_int_eq(md_batch_commit(m), 0);
	ck_assert_int_ne(access(p, F_OK), 0);
	ck_assert_int_eq(count_dir("tmp") + count_dir("new"), 0);
	ck_assert_int_eq(count_dir("cur"), 1);
	/* Gone: an error, and nothing delivered. */
	ck_assert_int_eq(md_deliver(m, "INBOX", NULL, 21, &o, NULL), MCRDT_ENOTFOUND);
	ck_assert_int_eq(count_dir("cur"), 1);
	/* Outside a batch: in place at once, synced on its own. */
	put_file(p, "Subject: moved\n\nbody\n");
	o.flags = NULL;
	long before = n_fsync;
	ck_assert_int_eq(md_deliver(m, "INBOX", NULL, 21, &o, NULL), 0);
	ck_assert_int_ge(n_fsync - before, 2); /* the file, then new/ */
	ck_assert_int_eq(count_dir("new"), 1);
	ck_assert_int_eq(count_dir("tmp"), 0);
	ck_assert_int_ne(access(p, F_OK), 0);
	close(dir);
	free(name);
}
END_TEST

/* In a batch a file moved in stays where it is until the commit, which
 * renames it into place: nothing in tmp/ before, readable, refiled and
 * taken once; an abort leaves nothing in the Maildir. */
START_TEST(a_batch_moves_a_file_in_at_its_commit)
{
	char p[512];
	struct md_deliver_opts o;
	int dir = blob_elsewhere(p, sizeof p, &o);
	ck_assert_int_eq(md_folder_create(m, "Other"), 0);
	ck_assert_int_eq(md_batch_begin(m), 0);
	char *name = NULL;
	ck_assert_int_eq(md_deliver(m, "INBOX", NULL, 21, &o, &name), 0);
	ck_assert_int_eq(access(p, F_OK), 0);
	ck_assert_int_eq(count_dir("tmp") + count_dir("cur"), 0);
	int fd = -1;
	ck_assert_int_eq(md_open_message(m, "INBOX", name, false, &fd, NULL), 0);
	char buf[64] = { 0 };
	ck_assert_int_eq(read(fd, buf, sizeof buf), 21);
	close(fd);
	ck_assert_str_eq(buf, "Subject: moved\n\nbody\n");
	/* The same file again (a second message with that body): taken. */
	o.base = "1700000001.M1P2Q3.peer,S=21";
	ck_assert_int_eq(md_deliver(m, "INBOX", NULL, 21, &o, NULL), MCRDT_ENOTFOUND);
	ck_assert_int_eq(access(p, F_OK), 0);
	/* Moved to another folder before the commit: it goes there. */
	char *moved = NULL;
	ck_assert_int_eq(md_move(m, "INBOX", name, false, "Other", "FS", &moved), 0);
	ck_assert_str_eq(moved, "1700000000.M1P2Q3.peer,S=21:2,FS");
	ck_assert_int_eq(count_dir(".Other/tmp"), 0);
	ck_assert_int_eq(md_batch_commit(m), 0);
	ck_assert_int_ne(access(p, F_OK), 0);
	ck_assert_int_eq(count_dir(".Other/cur"), 1);
	ck_assert_int_eq(count_dir("cur") + count_dir("tmp") + count_dir(".Other/tmp"), 0);
	char q[512];
	snprintf(q, sizeof q, "%s/.Other/cur/%s", root, moved);
	struct stat st;
	ck_assert_int_eq(stat(q, &st), 0);
	ck_assert_int_eq(st.st_mtime, 1000000000);
	ck_assert_int_eq(st.st_size, 21);
	/* Aborted: nothing shows. */
	put_file(p, "Subject: moved\n\nbody\n");
	ck_assert_int_eq(md_batch_begin(m), 0);
	ck_assert_int_eq(md_deliver(m, "INBOX", NULL, 21, &o, NULL), 0);
	md_batch_abort(m);
	ck_assert_int_eq(count_dir("cur") + count_dir("new") + count_dir("tmp"), 0);
	close(dir);
	free(name);
	free(moved);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("maildir");
	TCase *tc = tcase_create("core");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, unique_names_never_collide);
	tcase_add_test(tc, delivery_is_a_plain_file_in_new);
	tcase_add_test(tc, a_copied_base_name_is_kept_and_never_overwrites);
	tcase_add_test(tc, a_batch_appears_at_commit);
	tcase_add_test(tc, a_file_in_a_folders_place);
	tcase_add_test(tc, info_parsing_reports_rather_than_mangles);
	tcase_add_test(tc, flag_renames_move_new_to_cur);
	tcase_add_test(tc, keywords_share_dovecot_letters);
	tcase_add_test(tc, folders_are_maildirplusplus);
	tcase_add_test(tc, folder_names_cannot_escape);
	tcase_add_test(tc, scan_reports_outside_changes_once);
	tcase_add_test(tc, a_kept_listing_is_read_in_only_when_needed);
	tcase_add_test(tc, scan_leaves_out_settled_own_changes);
	tcase_add_test(tc, listing_sorts_names_alike);
	tcase_add_test(tc, a_watched_folder_is_read_only_after_news);
	tcase_add_test(tc, a_dropped_state_is_read_again_under_a_watch);
	tcase_add_test(tc, a_watched_folder_replaced_out_of_the_cache_is_read);
	tcase_add_test(tc, a_watch_tells_ours_from_a_change_to_it);
	tcase_add_test(tc, no_watch_on_a_shared_file_system);
	tcase_add_test(tc, a_folder_made_again_is_read_again);
	tcase_add_test(tc, scan_trusts_no_mtime_from_its_own_second);
	tcase_add_test(tc, a_listing_stands_once_the_clock_passed_its_mtimes);
	tcase_add_test(tc, scan_survives_renames_under_it);
	tcase_add_test(tc, tmp_leftovers_older_than_36_hours_go);
	tcase_add_test(tc, a_full_disk_loses_nothing);
	tcase_add_test(tc, bad_files_are_named_not_trusted);
	tcase_add_test(tc, an_unreadable_message_is_a_clear_error);
	tcase_add_test(tc, long_keywords_from_another_tool_are_kept);
	tcase_add_test(tc, a_failed_batch_takes_back_what_it_placed);
	tcase_add_test(tc, a_batch_syncs_each_directory_once);
	tcase_add_test(tc, a_file_moved_in_is_delivered);
	tcase_add_test(tc, a_scan_reads_only_the_directory_that_moved);
	tcase_add_test(tc, a_batch_moves_a_file_in_at_its_commit);
	suite_add_tcase(s, tc);
	return run_suite(s, CK_FORK_GETENV);
}
