/*
 * maildir/keywords.c — IMAP keywords as Maildir flag letters, through the
 * dovecot-keywords file of each folder ("N name" per line: keyword N is
 * the letter 'a' + N), so Dovecot and we read the same keywords.
 */
#define _GNU_SOURCE
#include "maildir/md_int.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "common/error.h"

#define KEYWORDS_FILE "dovecot-keywords"
#define KEYWORDS_MAX_BYTES (64 * 1024)

void md_keywords_free(struct md_keywords *kw)
{
	for (size_t i = 0; i < 26; i++) {
		free(kw->names[i]);
		kw->names[i] = NULL;
	}
}

static int parse(const char *buf, size_t len, struct md_keywords *kw)
{
	const char *p = buf, *end = buf + len;
	while (p < end) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		size_t ll = nl ? (size_t)(nl - p) : (size_t)(end - p);
		char line[512];
		if (ll > 0 && ll < sizeof line) {
			memcpy(line, p, ll);
			line[ll] = '\0';
			char *sp = strchr(line, ' ');
			char *num_end;
			long idx = strtol(line, &num_end, 10);
			/* A line we cannot read is skipped, as Dovecot does. */
			if (sp && num_end == sp && idx >= 0 && idx < 26 && sp[1] && !kw->names[idx]) {
				if (!(kw->names[idx] = strdup(sp + 1)))
					return err_set(MCRDT_ENOMEM, "out of memory");
			}
		}
		p += ll + 1;
	}
	return 0;
}

int md_keywords_load(md *m, const char *mailbox, struct md_keywords *kw)
{
	struct md_folder *f;
	memset(kw, 0, sizeof *kw);
	int rc = md_folder_open(m, mailbox, &f);
	if (rc)
		return rc;
	int fd = openat(f->dir, KEYWORDS_FILE, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return errno == ENOENT ? 0 : err_sys(MCRDT_EIO, "cannot open %s of %s", KEYWORDS_FILE, mailbox);
	char *buf = malloc(KEYWORDS_MAX_BYTES);
	size_t len = 0;
	ssize_t n = 0;
	if (!buf)
		rc = err_set(MCRDT_ENOMEM, "out of memory");
	while (rc == 0 && len < KEYWORDS_MAX_BYTES &&
	       (n = read(fd, buf + len, KEYWORDS_MAX_BYTES - len)) != 0) {
		if (n < 0 && errno != EINTR)
			rc = err_sys(MCRDT_EIO, "cannot read %s of %s", KEYWORDS_FILE, mailbox);
		else if (n > 0)
			len += (size_t)n;
	}
	close(fd);
	if (rc == 0)
		rc = parse(buf, len, kw);
	free(buf);
	if (rc)
		md_keywords_free(kw);
	return rc;
}

/*
 * Dovecot guards dovecot-keywords with the folder's dovecot-uidlist.lock
 * (a dotlock holding "pid:host"); we take the same lock so neither side
 * loses the other's keyword assignments. A lock untouched for two minutes
 * belongs to a writer that died and is broken, as Dovecot does.
 */
#define UIDLIST_LOCK "dovecot-uidlist.lock"
#define LOCK_STALE_SECS 120
#define LOCK_WAIT_MS 10000

static int lock_folder(struct md_folder *f)
{
	char host[256] = "localhost", text[300];
	gethostname(host, sizeof host - 1);
	int len = snprintf(text, sizeof text, "%ld:%s", (long)getpid(), host);
	for (int waited = 0;; waited += 10) {
		int fd = openat(f->dir, UIDLIST_LOCK, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
		if (fd >= 0) {
			ssize_t n = write(fd, text, (size_t)len);
			close(fd);
			if (n == len)
				return 0;
			unlinkat(f->dir, UIDLIST_LOCK, 0);
			return err_sys(MCRDT_EIO, "cannot write %s of %s", UIDLIST_LOCK, f->mailbox);
		}
		if (errno != EEXIST)
			return err_sys(MCRDT_EIO, "cannot create %s of %s", UIDLIST_LOCK, f->mailbox);
		struct stat st;
		if (fstatat(f->dir, UIDLIST_LOCK, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
		    st.st_mtime < time(NULL) - LOCK_STALE_SECS)
			unlinkat(f->dir, UIDLIST_LOCK, 0);
		if (waited >= LOCK_WAIT_MS)
			return err_set(MCRDT_ELOCKED, "%s of %s is held by another process", UIDLIST_LOCK,
				       f->mailbox);
		struct timespec ts = { 0, 10 * 1000 * 1000 };
		nanosleep(&ts, NULL);
	}
}

static void unlock_folder(struct md_folder *f)
{
	unlinkat(f->dir, UIDLIST_LOCK, 0);
}

/*
 * Replaces the file atomically: a temp file, fsync, rename, fsync. Dovecot
 * re-reads the file only when its mtime (in seconds) moves, so the new
 * file's mtime is made later than the old one's, as Dovecot's own writes do.
 */
static int store(struct md_folder *f, const struct md_keywords *kw)
{
	char tmpname[64];
	size_t cap = 1, len = 0;
	for (int i = 0; i < 26; i++)
		if (kw->names[i])
			cap += strlen(kw->names[i]) + 5; /* "NN " and "\n" */
	char *text = malloc(cap);
	if (!text)
		return err_set(MCRDT_ENOMEM, "out of memory");
	for (int i = 0; i < 26; i++)
		if (kw->names[i])
			len += (size_t)snprintf(text + len, cap - len, "%d %s\n", i, kw->names[i]);
	snprintf(tmpname, sizeof tmpname, KEYWORDS_FILE ".%ld.tmp", (long)getpid());
	int fd = openat(f->dir, tmpname, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (fd < 0) {
		free(text);
		return err_sys(MCRDT_EIO, "cannot write %s of %s", KEYWORDS_FILE, f->mailbox);
	}
	int rc = 0;
	ssize_t n = md_write_hook(fd, text, len);
	free(text);
	if (n != (ssize_t)len)
		rc = err_sys(errno == ENOSPC ? MCRDT_ENOSPC : MCRDT_EIO, "cannot write %s of %s",
			     KEYWORDS_FILE, f->mailbox);
	struct stat old, cur;
	if (rc == 0 && fstatat(f->dir, KEYWORDS_FILE, &old, AT_SYMLINK_NOFOLLOW) == 0 &&
	    fstat(fd, &cur) == 0 && cur.st_mtime <= old.st_mtime) {
		struct timespec ts[2] = { { old.st_mtime + 1, 0 }, { old.st_mtime + 1, 0 } };
		if (futimens(fd, ts) != 0)
			rc = err_sys(MCRDT_EIO, "cannot date %s of %s", KEYWORDS_FILE, f->mailbox);
	}
	if (rc == 0)
		rc = md_fsync(fd, KEYWORDS_FILE);
	close(fd);
	if (rc == 0 && renameat(f->dir, tmpname, f->dir, KEYWORDS_FILE) != 0)
		rc = err_sys(MCRDT_EIO, "cannot replace %s of %s", KEYWORDS_FILE, f->mailbox);
	if (rc)
		unlinkat(f->dir, tmpname, 0);
	return rc ? rc : md_fsync(f->dir, f->mailbox);
}

int md_keyword_letter(md *m, const char *mailbox, const char *keyword, char *letter_out)
{
	size_t klen = strlen(keyword);
	if (klen == 0 || klen > 255)
		return err_set(MCRDT_EINVAL, "keyword must be 1 to 255 bytes");
	for (const char *p = keyword; *p; p++)
		if ((unsigned char)*p <= 0x20 || *p == 0x7f)
			return err_set(MCRDT_EINVAL, "keyword with a space or control character");
	struct md_keywords kw;
	struct md_folder *f;
	int rc = md_folder_open(m, mailbox, &f);
	if (rc || (rc = lock_folder(f)))
		return rc;
	/* Read under the lock: what Dovecot assigned a moment ago counts. */
	if ((rc = md_keywords_load(m, mailbox, &kw))) {
		unlock_folder(f);
		return rc;
	}
	int free_slot = -1;
	for (int i = 0; i < 26; i++) {
		if (kw.names[i] && strcmp(kw.names[i], keyword) == 0) {
			*letter_out = (char)('a' + i);
			md_keywords_free(&kw);
			unlock_folder(f);
			return 0;
		}
		if (!kw.names[i] && free_slot < 0)
			free_slot = i;
	}
	if (free_slot < 0)
		rc = err_set(MCRDT_ETOOBIG, "mailbox '%s' has 26 keywords, the most Maildir can hold",
			     mailbox);
	else if (!(kw.names[free_slot] = strdup(keyword)))
		rc = err_set(MCRDT_ENOMEM, "out of memory");
	else if ((rc = store(f, &kw)) == 0)
		*letter_out = (char)('a' + free_slot);
	md_keywords_free(&kw);
	unlock_folder(f);
	return rc;
}
