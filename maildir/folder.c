/*
 * maildir/folder.c — Maildir++ folders: mailbox names to directory names
 * and back (".A.B" with modified UTF-7, INBOX at the root), and creating,
 * listing, deleting and renaming folder directories.
 */
#define _GNU_SOURCE
#include "maildir/md_int.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/dir.h"
#include "common/error.h"
#include "common/grow.h"
#include "maildir/mutf7.h"

/* A folder being deleted is first moved into the metadata directory under
 * this prefix: no Maildir++ reader looks there (Dovecot would list a
 * "..name" at the root as a mailbox). */
#define TRASH_PREFIX "trash."

static bool is_inbox(const char *name)
{
	return strcasecmp(name, "INBOX") == 0;
}

int md_folder_dir(const char *mailbox, char **dir_out)
{
	if (!mailbox || !*mailbox)
		return err_set(MCRDT_EINVAL, "empty mailbox name");
	if (is_inbox(mailbox)) {
		if (!(*dir_out = strdup("")))
			return err_set(MCRDT_ENOMEM, "out of memory");
		return 0;
	}
	size_t cap = NAME_MAX + 1, len = 0;
	char *dir = malloc(cap);
	if (!dir)
		return err_set(MCRDT_ENOMEM, "out of memory");
	int rc = 0;
	const char *p = mailbox;
	while (rc == 0) {
		const char *slash = strchr(p, '/');
		size_t clen = slash ? (size_t)(slash - p) : strlen(p);
		if (clen == 0)
			rc = err_set(MCRDT_EINVAL, "mailbox name '%s' has an empty level", mailbox);
		for (size_t i = 0; rc == 0 && i < clen; i++) {
			unsigned char c = (unsigned char)p[i];
			if (c < 0x20 || c == 0x7f)
				rc = err_set(MCRDT_EINVAL, "mailbox name has a control character");
			else if (c == '.')
				rc = err_set(MCRDT_EINVAL, "mailbox name '%s' contains '.', the Maildir++ "
						 "separator", mailbox);
		}
		char *enc = NULL;
		if (rc == 0 && (rc = mutf7_encode(p, clen, &enc)) == 0) {
			size_t elen = strlen(enc);
			if (len + 1 + elen + 1 > cap)
				rc = err_set(MCRDT_EINVAL, "mailbox name '%s' is too long for a folder "
						 "(%d bytes at most on disk)", mailbox, NAME_MAX);
			else {
				dir[len++] = '.';
				memcpy(dir + len, enc, elen);
				len += elen;
			}
		}
		free(enc);
		if (!slash)
			break;
		p = slash + 1;
	}
	if (rc) {
		free(dir);
		return rc;
	}
	dir[len] = '\0';
	*dir_out = dir;
	return 0;
}

int md_folder_name(const char *dir, char **mailbox_out)
{
	if (!*dir) {
		if (!(*mailbox_out = strdup("INBOX")))
			return err_set(MCRDT_ENOMEM, "out of memory");
		return 0;
	}
	if (dir[0] != '.' || dir[1] == '.' || dir[1] == '\0')
		return err_set(MCRDT_EINVAL, "'%s' is not a Maildir++ folder name", dir);
	size_t cap = strlen(dir) * 4 + 1, len = 0;
	char *name = malloc(cap);
	if (!name)
		return err_set(MCRDT_ENOMEM, "out of memory");
	const char *p = dir + 1;
	int rc = 0;
	for (;;) {
		const char *dot = strchr(p, '.');
		size_t clen = dot ? (size_t)(dot - p) : strlen(p);
		char *dec = NULL;
		if (clen == 0)
			rc = err_set(MCRDT_EINVAL, "folder '%s' has an empty level", dir);
		else
			rc = mutf7_decode(p, clen, &dec);
		if (rc == 0) {
			size_t dlen = strlen(dec);
			if (strchr(dec, '/') || len + dlen + 2 > cap)
				rc = err_set(MCRDT_EINVAL, "folder '%s' decodes to an unusable name", dir);
			else {
				if (len)
					name[len++] = '/';
				memcpy(name + len, dec, dlen);
				len += dlen;
			}
		}
		free(dec);
		if (rc || !dot)
			break;
		p = dot + 1;
	}
	if (rc) {
		free(name);
		return rc;
	}
	name[len] = '\0';
	*mailbox_out = name;
	return 0;
}

static int cmp_name(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Whether root/name is a real directory (not a link) holding cur/. */
static bool is_folder(int rootfd, const char *name)
{
	struct stat st;
	char cur[NAME_MAX + 8];
	snprintf(cur, sizeof cur, "%s/cur", name);
	return fstatat(rootfd, name, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISDIR(st.st_mode) &&
	       fstatat(rootfd, cur, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISDIR(st.st_mode);
}

/* The root's entries, each a malloc'd name; the caller frees. */
static int read_root(md *m, char ***out, size_t *n_out)
{
	DIR *d = dir_stream(m->rootfd, m->root);
	if (!d)
		return MCRDT_EIO;
	char **v = NULL;
	size_t n = 0, cap = 0;
	int rc = 0;
	struct dirent *e;
	while (rc == 0 && (e = readdir(d))) {
		if (e->d_name[0] != '.' || strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
			continue;
		if ((rc = GROW(v, cap, n + 1)))
			break;
		if (!(v[n] = strdup(e->d_name)))
			rc = err_set(MCRDT_ENOMEM, "out of memory");
		else
			n++;
	}
	closedir(d);
	if (rc) {
		md_strv_free(v, n);
		return rc;
	}
	*out = v;
	*n_out = n;
	return 0;
}

int md_folder_list(md *m, char ***names_out, size_t *n_out)
{
	char **ents;
	size_t nents;
	int rc = read_root(m, &ents, &nents);
	if (rc)
		return rc;
	char **v = calloc(nents + 1, sizeof *v);
	size_t n = 0;
	if (!v || !(v[n++] = strdup("INBOX"))) {
		md_strv_free(ents, nents);
		free(v);
		return err_set(MCRDT_ENOMEM, "out of memory");
	}
	for (size_t i = 0; i < nents; i++) {
		char *name;
		/* Names we cannot decode are someone else's; leave them be. */
		if (is_folder(m->rootfd, ents[i]) && md_folder_name(ents[i], &name) == 0)
			v[n++] = name;
	}
	md_strv_free(ents, nents);
	qsort(v + 1, n - 1, sizeof *v, cmp_name);
	*names_out = v;
	*n_out = n;
	return 0;
}

/* Whether something that is not a directory holds dirfd/name (shown as
 * path), which a folder of mailbox needs: MCRDT_EIO naming it, else 0. */
static int in_way(int dirfd, const char *name, const char *path, const char *mailbox)
{
	struct stat st;
	if (fstatat(dirfd, name, &st, AT_SYMLINK_NOFOLLOW) != 0 || S_ISDIR(st.st_mode))
		return 0;
	return err_set(MCRDT_EIO, "mailbox '%s' needs the directory %s, and a %s is in its place: move it away", mailbox,
		       path, S_ISLNK(st.st_mode) ? "symbolic link" : "file");
}

int md_folder_check(md *m, const char *mailbox)
{
	char *dir;
	int rc = md_folder_dir(mailbox, &dir);
	if (rc)
		return rc;
	char path[PATH_MAX];
	snprintf(path, sizeof path, "%s/%s", m->root, dir);
	int fd = -1;
	if (*dir && (rc = in_way(m->rootfd, dir, path, mailbox)) == 0 &&
	    (fd = openat(m->rootfd, dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)) >= 0) {
		for (size_t i = 0; rc == 0 && i < 3; i++) {
			char sub[PATH_MAX + 8];
			snprintf(sub, sizeof sub, "%s/%s", path, md_subs[i]);
			rc = in_way(fd, md_subs[i], sub, mailbox);
		}
		close(fd);
	}
	free(dir);
	return rc;
}

int md_folder_create(md *m, const char *mailbox)
{
	char *dir;
	int rc = md_folder_dir(mailbox, &dir);
	if (rc)
		return rc;
	if (!*dir) {
		free(dir);
		return err_set(MCRDT_EEXISTS, "INBOX always exists");
	}
	char path[PATH_MAX];
	snprintf(path, sizeof path, "%s/%s", m->root, dir);
	int fd = -1;
	/* A directory there (a crash inside this call, another tool's empty
	 * folder) is completed: the scan counts only folders with cur/. */
	bool made = mkdirat(m->rootfd, dir, 0700) == 0, added = made;
	if (!made && errno != EEXIST)
		rc = err_sys(errno == ENOSPC ? MCRDT_ENOSPC : MCRDT_EIO, "cannot create %s", path);
	else if ((made || (rc = md_folder_check(m, mailbox)) == 0) &&
		 (rc = md_open_dir(m->rootfd, dir, path, &fd)) == 0) {
		for (size_t i = 0; rc == 0 && i < 3; i++) {
			if (mkdirat(fd, md_subs[i], 0700) == 0)
				added = true;
			else if (errno != EEXIST)
				rc = err_sys(MCRDT_EIO, "cannot create %s/%s", path, md_subs[i]);
		}
		/* Maildir++ marks a subfolder with an empty "maildirfolder" file
		 * (whatever holds that name in a folder already there stays). */
		int mf = rc ? -1
			    : openat(fd, "maildirfolder", O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
		if (mf >= 0)
			added = true;
		else if (rc == 0 && errno != EEXIST)
			rc = err_sys(MCRDT_EIO, "cannot create %s/maildirfolder", path);
		if (mf >= 0)
			close(mf);
		/* Synced even when nothing was added here: another process may
		 * have made the folder and not synced it yet. */
		if (rc == 0)
			rc = md_fsync(fd, path);
		if (rc == 0)
			rc = md_fsync(m->rootfd, m->root);
		if (rc == 0 && !added)
			rc = err_set(MCRDT_EEXISTS, "mailbox '%s' exists (%s)", mailbox, path);
	}
	if (fd >= 0)
		close(fd);
	free(dir);
	return rc;
}

/* Removes dirfd/name and everything below it, never following links. */
static int rm_tree(int dirfd, const char *name)
{
	int fd = openat(dirfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return unlinkat(dirfd, name, 0) == 0 || errno == ENOENT ? 0
			: err_sys(MCRDT_EIO, "cannot remove %s", name);
	DIR *d = fdopendir(fd);
	if (!d) {
		close(fd);
		return err_sys(MCRDT_EIO, "cannot read %s", name);
	}
	int rc = 0;
	struct dirent *e;
	while (rc == 0 && (e = readdir(d))) {
		if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
			continue;
		if (e->d_type == DT_DIR)
			rc = rm_tree(fd, e->d_name);
		else if (unlinkat(fd, e->d_name, 0) != 0 && errno != ENOENT)
			rc = errno == EISDIR ? rm_tree(fd, e->d_name)
					     : err_sys(MCRDT_EIO, "cannot remove %s/%s", name, e->d_name);
	}
	closedir(d);
	if (rc == 0 && unlinkat(dirfd, name, AT_REMOVEDIR) != 0 && errno != ENOENT)
		rc = err_sys(MCRDT_EIO, "cannot remove directory %s", name);
	return rc;
}

/* Removes every trash directory left in the metadata directory. */
static int sweep_trash(int metafd)
{
	DIR *d = dir_stream(metafd, "the metadata directory");
	if (!d)
		return MCRDT_EIO;
	int rc = 0;
	struct dirent *e;
	while ((e = readdir(d)))
		if (strncmp(e->d_name, TRASH_PREFIX, strlen(TRASH_PREFIX)) == 0 && rc == 0)
			rc = rm_tree(metafd, e->d_name);
	closedir(d);
	return rc;
}

int md_folder_delete(md *m, const char *mailbox)
{
	if (m->batch)
		return err_set(MCRDT_EINVAL, "commit or abort the delivery batch before deleting a folder");
	char *dir;
	int rc = md_folder_dir(mailbox, &dir);
	if (rc)
		return rc;
	if (!*dir) {
		free(dir);
		return err_set(MCRDT_EINVAL, "INBOX cannot be deleted");
	}
	if (!is_folder(m->rootfd, dir)) {
		free(dir);
		return err_set(MCRDT_ENOTFOUND, "no folder for mailbox '%s'", mailbox);
	}
	/* Out of sight first (one atomic rename), then removed: what a crash
	 * or a failed removal leaves behind sits in the metadata directory,
	 * listed by nobody, and goes with the next delete. */
	char trash[NAME_MAX + 1];
	char base[128];
	int metafd;
	md_unique_name(base, sizeof base, 0);
	snprintf(trash, sizeof trash, TRASH_PREFIX "%.200s", base);
	md_folder_cache_clear(m);
	md_own_clear(m);
	md_watch_clear(m);
	if ((rc = md_meta_dir(m, &metafd)) == 0) {
		if (renameat(m->rootfd, dir, metafd, trash) != 0)
			rc = err_sys(MCRDT_EIO, "cannot move %s/%s aside", m->root, dir);
		else if ((rc = md_fsync(m->rootfd, m->root)) == 0)
			rc = sweep_trash(metafd);
	}
	free(dir);
	return rc;
}

int md_folder_rename(md *m, const char *from, const char *to)
{
	if (m->batch)
		return err_set(MCRDT_EINVAL, "commit or abort the delivery batch before renaming a folder");
	char *fdir = NULL, *tdir = NULL, **ents = NULL;
	size_t nents = 0, flen, tlen;
	int rc = md_folder_dir(from, &fdir);
	if (rc || (rc = md_folder_dir(to, &tdir)))
		goto out;
	flen = strlen(fdir);
	tlen = strlen(tdir);
	if (!*fdir || !*tdir) {
		rc = err_set(MCRDT_EINVAL, "renaming to or from INBOX is not supported");
		goto out;
	}
	if (strncmp(tdir, fdir, flen) == 0 && (tdir[flen] == '.' || tdir[flen] == '\0')) {
		rc = err_set(MCRDT_EINVAL, "cannot rename '%s' into itself", from);
		goto out;
	}
	if (!is_folder(m->rootfd, fdir)) {
		rc = err_set(MCRDT_ENOTFOUND, "no folder for mailbox '%s'", from);
		goto out;
	}
	if ((rc = read_root(m, &ents, &nents)))
		goto out;
	/* The folder and its children, each with its target; check all first. */
	char (*pairs)[2][NAME_MAX + 1] = calloc(nents, sizeof *pairs);
	size_t np = 0;
	if (!pairs) {
		rc = err_set(MCRDT_ENOMEM, "out of memory");
		goto out;
	}
	for (size_t i = 0; rc == 0 && i < nents; i++) {
		const char *e = ents[i];
		if (strncmp(e, fdir, flen) != 0 || (e[flen] != '\0' && e[flen] != '.'))
			continue;
		if (tlen + strlen(e + flen) > NAME_MAX) {
			rc = err_set(MCRDT_EINVAL, "renamed folder name would be too long");
			break;
		}
		snprintf(pairs[np][0], NAME_MAX + 1, "%s", e);
		snprintf(pairs[np][1], NAME_MAX + 1, "%s%s", tdir, e + flen);
		struct stat st;
		if (fstatat(m->rootfd, pairs[np][1], &st, AT_SYMLINK_NOFOLLOW) == 0)
			rc = err_set(MCRDT_EEXISTS, "cannot rename '%s' to '%s': %s exists", from, to,
				     pairs[np][1]);
		np++;
	}
	md_folder_cache_clear(m);
	md_own_clear(m);
	md_watch_clear(m);
	size_t done = 0;
	for (; rc == 0 && done < np; done++)
		if (renameat2(m->rootfd, pairs[done][0], m->rootfd, pairs[done][1], RENAME_NOREPLACE) != 0) {
			rc = errno == EEXIST ? err_set(MCRDT_EEXISTS, "%s appeared while renaming", pairs[done][1])
					     : err_sys(MCRDT_EIO, "cannot rename %s to %s", pairs[done][0], pairs[done][1]);
			break;
		}
	/* A rename cut short puts back the folders it had moved. */
	for (size_t i = done; rc && i > 0; i--)
		renameat2(m->rootfd, pairs[i - 1][1], m->rootfd, pairs[i - 1][0], RENAME_NOREPLACE);
	if (rc == 0)
		rc = md_fsync(m->rootfd, m->root);
	free(pairs);
out:
	md_strv_free(ents, nents);
	free(fdir);
	free(tdir);
	return rc;
}
