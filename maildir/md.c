/*
 * maildir/md.c — opening a Maildir root, and the folder directory cache
 * every other file of maildir/ goes through.
 */
#define _GNU_SOURCE
#include "maildir/md_int.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/error.h"
#include "common/grow.h"

ssize_t (*md_write_hook)(int fd, const void *buf, size_t len) = write;

int md_open_dir(int dirfd, const char *name, const char *path, int *fd_out)
{
	int fd = openat(dirfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd >= 0) {
		*fd_out = fd;
		return 0;
	}
	struct stat st;
	switch (errno) {
	case ENOENT: return err_set(MCRDT_ENOTFOUND, "%s does not exist", path);
	case ELOOP:
	case ENOTDIR:
		/* O_DIRECTORY may answer ENOTDIR for a link: say which it is. */
		if (fstatat(dirfd, name, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISLNK(st.st_mode))
			return err_set(MCRDT_ECORRUPT, "%s is a symbolic link; refusing to follow it", path);
		return err_set(MCRDT_ECORRUPT, "%s is not a directory", path);
	default: return err_sys(MCRDT_EIO, "cannot open %s", path);
	}
}

int md_fsync(int fd, const char *what)
{
	if (fsync(fd) == 0)
		return 0;
	return err_sys(errno == ENOSPC ? MCRDT_ENOSPC : MCRDT_EIO, "fsync of %s failed", what);
}

const char *const md_subs[3] = { "tmp", "new", "cur" };

/* mkdir that accepts an existing directory (but not a file or a link). */
static int ensure_dir(int dirfd, const char *name, const char *path)
{
	if (mkdirat(dirfd, name, 0700) != 0 && errno != EEXIST)
		return err_sys(MCRDT_EIO, "cannot create %s", path);
	int fd = -1, rc = md_open_dir(dirfd, name, path, &fd);
	if (rc == 0)
		close(fd);
	return rc;
}

static int make_maildir(int dirfd, const char *path)
{
	for (size_t i = 0; i < 3; i++) {
		char p[4096];
		snprintf(p, sizeof p, "%s/%s", path, md_subs[i]);
		int rc = ensure_dir(dirfd, md_subs[i], p);
		if (rc)
			return rc;
	}
	return md_fsync(dirfd, path);
}

int md_open(md **out, const char *root, unsigned flags)
{
	if (!root || !*root)
		return err_set(MCRDT_EINVAL, "no Maildir path given");
	md *m = calloc(1, sizeof *m);
	if (!m || !(m->root = strdup(root))) {
		free(m);
		return err_set(MCRDT_ENOMEM, "out of memory opening %s", root);
	}
	m->metafd = -1;
	m->ino = -1;
	for (size_t i = 0; i < MD_FOLDER_CACHE; i++)
		m->cache[i].dir = -1;
	int rc;
	if ((flags & MD_CREATE) && mkdir(root, 0700) != 0 && errno != EEXIST)
		rc = err_sys(MCRDT_EIO, "cannot create %s", root);
	else
		rc = md_open_dir(AT_FDCWD, root, root, &m->rootfd);
	if (rc) {
		free(m->root);
		free(m);
		return rc;
	}
	if (flags & MD_CREATE)
		rc = make_maildir(m->rootfd, root);
	if (rc) {
		md_close(m);
		return rc;
	}
	*out = m;
	return 0;
}

int md_dir_changed(md *m, struct md_folder *f, bool cur)
{
	if (!m->batch)
		return md_fsync(cur ? f->cur : f->new, f->mailbox);
	if (cur)
		f->unsynced_cur = true;
	else
		f->unsynced_new = true;
	return 0;
}

int md_folder_flush(struct md_folder *f)
{
	int rc = 0;
	if (f->unsynced_new)
		rc = md_fsync(f->new, f->mailbox);
	if (f->unsynced_cur) {
		int rc2 = md_fsync(f->cur, f->mailbox);
		rc = rc ? rc : rc2;
	}
	f->unsynced_new = f->unsynced_cur = false;
	return rc;
}

static void folder_close(struct md_folder *f)
{
	if (f->dir < 0)
		return;
	md_folder_flush(f); /* a batch's changes there stay durable */
	close(f->dir);
	close(f->tmp);
	close(f->new);
	close(f->cur);
	free(f->mailbox);
	f->mailbox = NULL;
	f->dir = f->tmp = f->new = f->cur = -1;
}

void md_folder_cache_clear(md *m)
{
	for (size_t i = 0; i < MD_FOLDER_CACHE; i++)
		folder_close(&m->cache[i]);
}

struct md_own_box *md_own_box(md *m, const char *mailbox)
{
	for (size_t i = 0; i < m->nbox; i++)
		if (strcmp(m->box[i].mailbox, mailbox) == 0)
			return &m->box[i];
	return NULL;
}

void md_own_note(md *m, const char *mailbox, const char *file, bool in_new, bool removed)
{
	struct md_own_box *b = md_own_box(m, mailbox);
	if (m->nown == MD_OWN_MAX)
		return;
	if (!b) {
		if (GROW(m->box, m->capbox, m->nbox + 1))
			return;
		b = &m->box[m->nbox];
		memset(b, 0, sizeof *b);
		if (!(b->mailbox = strdup(mailbox)))
			return;
		m->nbox++;
	}
	if (GROW(b->v, b->cap, b->n + 1))
		return;
	struct md_info info;
	md_info_parse(file, &info);
	struct md_own *o = &b->v[b->n];
	if (!(o->file = strdup(file)))
		return;
	o->base_len = info.base_len;
	o->in_new = in_new;
	o->removed = removed;
	o->seen = false;
	b->n++; /* pending */
	b->byname_ok = false;
	m->nown++;
}

void md_own_settle(md *m, bool keep)
{
	for (size_t k = 0; k < m->nbox; k++) {
		struct md_own_box *b = &m->box[k];
		if (b->settled == b->n)
			continue; /* nothing pending */
		if (!keep) {
			for (size_t i = b->settled; i < b->n; i++)
				free(b->v[i].file);
			md_watch_dirty(m, b->mailbox); /* its files are news again */
			m->nown -= b->n - b->settled;
			b->n = b->settled;
			b->byname_ok = false;
		}
		b->settled = b->n;
	}
}

size_t md_own_mailboxes(md *m, const char **out, size_t max)
{
	size_t n = 0;
	for (size_t k = 0; k < m->nbox && n < max; k++)
		if (m->box[k].settled)
			out[n++] = m->box[k].mailbox;
	return n;
}

void md_own_clear(md *m)
{
	for (size_t k = 0; k < m->nbox; k++) {
		struct md_own_box *b = &m->box[k];
		for (size_t i = 0; i < b->n; i++)
			free(b->v[i].file);
		free(b->v);
		free(b->byname);
		free(b->mailbox);
	}
	m->nbox = 0;
	m->nown = 0;
}

void md_close(md *m)
{
	if (!m)
		return;
	md_batch_abort(m);
	md_folder_cache_clear(m);
	md_own_clear(m);
	free(m->box);
	md_watch_clear(m);
	if (m->metafd >= 0)
		close(m->metafd);
	close(m->rootfd);
	free(m->pend);
	hmap_free(&m->pendix);
	free(m->root);
	free(m);
}

const char *md_root(const md *m)
{
	return m->root;
}

int md_meta_dir(md *m, int *fd_out)
{
	if (m->metafd < 0) {
		char path[4096];
		snprintf(path, sizeof path, "%s/%s", m->root, MD_META_DIR);
		int rc = ensure_dir(m->rootfd, MD_META_DIR, path);
		if (rc || (rc = md_open_dir(m->rootfd, MD_META_DIR, path, &m->metafd)))
			return rc;
	}
	*fd_out = m->metafd;
	return 0;
}

/* Whether f's descriptors are still the directories its mailbox's path
 * names: another program may have removed or renamed the folder, or one
 * of its subdirectories, and made a new one. */
static bool folder_live(md *m, const struct md_folder *f)
{
	char *dir;
	if (md_folder_dir(f->mailbox, &dir) != 0)
		return false;
	struct stat a, b;
	bool live = fstat(f->dir, &a) == 0 && fstatat(m->rootfd, *dir ? dir : ".", &b, AT_SYMLINK_NOFOLLOW) == 0 &&
		    a.st_ino == b.st_ino && a.st_dev == b.st_dev;
	free(dir);
	const int fds[] = { f->tmp, f->new, f->cur };
	for (size_t i = 0; live && i < 3; i++)
		live = fstat(fds[i], &a) == 0 && fstatat(f->dir, md_subs[i], &b, AT_SYMLINK_NOFOLLOW) == 0 &&
		       a.st_ino == b.st_ino && a.st_dev == b.st_dev;
	return live;
}

static bool pinned(const md *m, const struct md_folder *f)
{
	for (size_t k = 0; k < m->npend; k++)
		if (m->pend[k].f == f)
			return true;
	return false;
}

/* Closes cached folder c if it is no longer the live one (and forgets its
 * watch, which may be on the old directories): whether it did. */
static bool drop_if_replaced(md *m, struct md_folder *c)
{
	if (c->dir < 0 || pinned(m, c) || folder_live(m, c))
		return false;
	md_watch_forget(m, c->mailbox);
	folder_close(c);
	return true;
}

int md_folder_open_live(md *m, const char *mailbox, struct md_folder **out)
{
	for (size_t i = 0; i < MD_FOLDER_CACHE; i++)
		if (m->cache[i].dir >= 0 && strcmp(m->cache[i].mailbox, mailbox) == 0)
			drop_if_replaced(m, &m->cache[i]);
	return md_folder_open(m, mailbox, out);
}


int md_folder_open(md *m, const char *mailbox, struct md_folder **out)
{
	for (size_t i = 0; i < MD_FOLDER_CACHE; i++) {
		struct md_folder *c = &m->cache[i];
		if (c->dir < 0 || strcmp(c->mailbox, mailbox) != 0)
			continue;
		/* A batch checks each folder against its path once, at first use. */
		if (m->batch && !c->checked) {
			c->checked = true;
			if (drop_if_replaced(m, c))
				break; /* opened anew below */
		}
		*out = c;
		return 0;
	}
	char *dir;
	int rc = md_folder_dir(mailbox, &dir);
	if (rc)
		return rc;
	struct md_folder f = { NULL, -1, -1, -1, -1, false, false, true };
	char path[4096];
	snprintf(path, sizeof path, "%s/%s", m->root, dir);
	if (*dir)
		rc = md_open_dir(m->rootfd, dir, path, &f.dir);
	else if ((f.dir = fcntl(m->rootfd, F_DUPFD_CLOEXEC, 0)) < 0)
		rc = err_sys(MCRDT_EIO, "cannot duplicate a descriptor");
	if (rc == MCRDT_ENOTFOUND)
		rc = err_set(MCRDT_ENOTFOUND, "no folder for mailbox '%s' (%s)", mailbox, path);
	int *fds[] = { &f.tmp, &f.new, &f.cur };
	for (size_t i = 0; rc == 0 && i < 3; i++) {
		char sub[4200];
		snprintf(sub, sizeof sub, "%s/%s", path, md_subs[i]);
		rc = md_open_dir(f.dir, md_subs[i], sub, fds[i]);
		/* cur/ makes a folder; a tmp/ or new/ another program left out
		 * is made, as Dovecot does. */
		if (rc == MCRDT_ENOTFOUND && i < 2 && (mkdirat(f.dir, md_subs[i], 0700) == 0 || errno == EEXIST))
			rc = md_open_dir(f.dir, md_subs[i], sub, fds[i]);
	}
	free(dir);
	if (rc == 0 && !(f.mailbox = strdup(mailbox)))
		rc = err_set(MCRDT_ENOMEM, "out of memory");
	if (rc) {
		for (size_t i = 0; i < 3; i++)
			if (*fds[i] >= 0)
				close(*fds[i]);
		if (f.dir >= 0)
			close(f.dir);
		return rc;
	}
	/* A slot pinned by a pending batch delivery is never evicted. */
	struct md_folder *slot = NULL;
	for (size_t tries = 0; tries < MD_FOLDER_CACHE && !slot; tries++) {
		struct md_folder *c = &m->cache[m->next_evict++ % MD_FOLDER_CACHE];
		if (!pinned(m, c))
			slot = c;
	}
	if (!slot) {
		close(f.dir), close(f.tmp), close(f.new), close(f.cur);
		free(f.mailbox);
		return err_set(MCRDT_ERANGE, "a batch may touch at most %d folders", MD_FOLDER_CACHE);
	}
	folder_close(slot);
	*slot = f;
	*out = slot;
	return 0;
}

void md_strv_free(char **v, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(v[i]);
	free(v);
}
