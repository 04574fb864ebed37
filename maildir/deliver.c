/*
 * maildir/deliver.c — putting message files in place and changing them:
 * durable delivery (single or batched), flag renames, removal.
 *
 * The order is the one every careful Maildir writer keeps: create in tmp/
 * with O_EXCL, check every write, make the data durable, rename into new/
 * or cur/ without replacing anything, then make the rename durable by
 * syncing the directory. (A complete file moved in skips tmp/: it is made
 * durable and renamed into place from where it is.)
 */
#define _GNU_SOURCE
#include "maildir/md_int.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/error.h"
#include "common/grow.h"


static int io_error(int err, const char *what, const char *name)
{
	errno = err;
	return err_sys(err == ENOSPC || err == EDQUOT ? MCRDT_ENOSPC : MCRDT_EIO, "%s %s", what, name);
}

/* Writes all of data, retrying short writes and EINTR. */
static int write_all(int fd, const void *data, size_t len, const char *name)
{
	const char *p = data;
	while (len) {
		ssize_t n = md_write_hook(fd, p, len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return io_error(n < 0 ? errno : ENOSPC, "cannot write", name);
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

/* Renames without replacing; falls back to link+unlink where the file
 * system has no RENAME_NOREPLACE. */
static int rename_noreplace(int fromfd, const char *from, int tofd, const char *to)
{
	if (renameat2(fromfd, from, tofd, to, RENAME_NOREPLACE) == 0)
		return 0;
	if (errno != EINVAL && errno != ENOSYS)
		return -1;
	if (linkat(fromfd, from, tofd, to, 0) != 0)
		return -1;
	unlinkat(fromfd, from, 0);
	return 0;
}

static int valid_file_name(const char *name)
{
	if (!*name || name[0] == '.' || strlen(name) > NAME_MAX)
		return err_set(MCRDT_EINVAL, "'%s' cannot be a message file name", name);
	for (const char *p = name; *p; p++)
		if (*p == '/' || (unsigned char)*p < 0x20 || *p == 0x7f)
			return err_set(MCRDT_EINVAL, "message file name with '/' or a control character");
	return 0;
}

static int final_name(char *out, size_t size, const char *base, const char *flags)
{
	char norm[MD_FLAGS_MAX + 1];
	int rc = flags ? md_flags_normalize(flags, norm) : 0;
	if (rc)
		return rc;
	int n = flags ? snprintf(out, size, "%s:2,%s", base, norm) : snprintf(out, size, "%s", base);
	if (n < 0 || (size_t)n >= size || (size_t)n > NAME_MAX)
		return err_set(MCRDT_EINVAL, "message file name too long");
	return 0;
}

/* Moves file name of directory dir (f's tmp/, or a file moved in) into
 * place and, outside a batch, syncs the directory. */
static int publish(md *m, struct md_folder *f, int dir, const char *name, const char *final, bool to_cur)
{
	int dst = to_cur ? f->cur : f->new;
	if (rename_noreplace(dir, name, dst, final) != 0) {
		int err = errno;
		unlinkat(dir, name, 0);
		if (err == EEXIST)
			return err_set(MCRDT_EEXISTS, "message %s exists in %s", final, f->mailbox);
		return io_error(err, "cannot move into place:", final);
	}
	md_own_note(m, f->mailbox, final, !to_cur, false);
	return md_dir_changed(m, f, to_cur);
}

/* ---- a batch's deliveries before its commit ---- */

/* The key of the delivery that becomes file in mailbox's cur/ (to_cur) or
 * new/. */
static uint64_t pend_key(const char *mailbox, const char *file, bool to_cur)
{
	return hmap_key_names(mailbox, file, to_cur);
}

/* The key of the delivery that moves file name of directory dir in. */
static uint64_t src_key(int dir, const char *name)
{
	return hmap_key_names("", name, 2 + (uint64_t)dir);
}

/* The directory that holds p's file until the commit. */
static int pend_dir(const struct md_pending *p)
{
	return p->src >= 0 ? p->src : p->f->tmp;
}

/* Puts m->pend[i]'s keys in the index (over keys there: no allocation). */
static int pend_index(md *m, size_t i)
{
	const struct md_pending *p = &m->pend[i];
	int rc = hmap_put(&m->pendix, pend_key(p->f->mailbox, p->final, p->to_cur), i);
	return rc == 0 && p->src >= 0 ? hmap_put(&m->pendix, src_key(p->src, p->tmpname), i) : rc;
}

static void pend_unindex(md *m, const struct md_pending *p)
{
	hmap_del(&m->pendix, pend_key(p->f->mailbox, p->final, p->to_cur));
	if (p->src >= 0)
		hmap_del(&m->pendix, src_key(p->src, p->tmpname));
}

/* The pending delivery that moves file name of directory dir in, or NULL. */
static struct md_pending *pend_find_src(md *m, int dir, const char *name)
{
	const uint64_t *i = hmap_get(&m->pendix, src_key(dir, name));
	struct md_pending *p = i && *i < m->npend ? &m->pend[*i] : NULL;
	return p && p->src == dir && strcmp(p->tmpname, name) == 0 ? p : NULL;
}

/* The pending delivery that becomes file (in new/ when in_new) of
 * mailbox at the commit, or NULL. */
static struct md_pending *pend_find(md *m, const char *mailbox, const char *file, bool in_new)
{
	const uint64_t *i = m->batch ? hmap_get(&m->pendix, pend_key(mailbox, file, !in_new)) : NULL;
	struct md_pending *p = i && *i < m->npend ? &m->pend[*i] : NULL;
	return p && p->to_cur == !in_new && strcmp(p->final, file) == 0 && strcmp(p->f->mailbox, mailbox) == 0 ? p
														     : NULL;
}

/* Drops p from the batch (the last one takes its place); its file stays
 * for the caller. */
static void pend_drop(md *m, struct md_pending *p)
{
	size_t i = (size_t)(p - m->pend), last = m->npend - 1;
	pend_unindex(m, p);
	free(p->tmpname);
	free(p->final);
	if (i != last) {
		*p = m->pend[last];
		pend_index(m, i); /* (its keys are in the table) */
	}
	m->npend--;
}

/* Adds a delivery of file name (of directory src, or of f's tmp/ when src
 * is -1) that becomes final at the commit. On an error the file goes. */
static int pend_add(md *m, struct md_folder *f, int src, const char *name, const char *final, bool to_cur,
		    char **file_out)
{
	int rc = GROW(m->pend, m->cappend, m->npend + 1);
	if (rc) {
		unlinkat(src >= 0 ? src : f->tmp, name, 0);
		return rc;
	}
	struct md_pending *p = &m->pend[m->npend];
	*p = (struct md_pending){ f, src, strdup(name), strdup(final), to_cur };
	char *out = NULL;
	if (!p->tmpname || !p->final || (file_out && !(out = strdup(final))))
		rc = err_set(MCRDT_ENOMEM, "out of memory");
	else if ((rc = pend_index(m, m->npend)) != 0)
		pend_unindex(m, p); /* (a key it put before running out) */
	if (rc) {
		unlinkat(src >= 0 ? src : f->tmp, name, 0);
		free(p->tmpname);
		free(p->final);
		free(out);
		return rc;
	}
	m->npend++;
	if (file_out)
		*file_out = out;
	return 0;
}

/* Gives pending delivery p the name final in folder t's cur/ at the
 * commit (its tmp/ file moves along to t's tmp/; a file moved in stays
 * where it is). */
static int pend_refile(md *m, struct md_pending *p, struct md_folder *t, const char *final, char **file_out)
{
	char *name = strdup(final), *out = file_out ? strdup(final) : NULL;
	if (!name || (file_out && !out)) {
		free(name);
		free(out);
		return err_set(MCRDT_ENOMEM, "out of memory");
	}
	if (t != p->f && p->src < 0 && rename_noreplace(p->f->tmp, p->tmpname, t->tmp, p->tmpname) != 0) {
		free(name);
		free(out);
		return io_error(errno, "cannot move", p->tmpname);
	}
	hmap_del(&m->pendix, pend_key(p->f->mailbox, p->final, p->to_cur));
	free(p->final);
	p->final = name;
	p->f = t;
	p->to_cur = true;
	if (hmap_put(&m->pendix, pend_key(t->mailbox, name, true), (uint64_t)(p - m->pend)) != 0)
		return err_set(MCRDT_ENOMEM, "out of memory"); /* (a slot was freed above) */
	if (file_out)
		*file_out = out;
	return 0;
}

/* Whether a rename from directory a to directory b can work: one mount
 * (one file system seen through two bind mounts is not). */
static bool same_mount(int a, int b)
{
	struct statx x, y;
	if (statx(a, "", AT_EMPTY_PATH, STATX_MNT_ID, &x) == 0 && statx(b, "", AT_EMPTY_PATH, STATX_MNT_ID, &y) == 0 &&
	    (x.stx_mask & y.stx_mask & STATX_MNT_ID))
		return x.stx_mnt_id == y.stx_mnt_id;
	struct stat s, t; /* (a kernel before 5.8) */
	return fstat(a, &s) == 0 && fstat(b, &t) == 0 && s.st_dev == t.st_dev;
}

/* Checks the file a delivery moves in (opts->src_name of opts->src_dir)
 * where it is: not already taken by this batch, there, on the Maildir's
 * mount (refused now, not at a commit: the caller can write it instead),
 * a regular file of len bytes (else removed). */
static int check_move_in(md *m, struct md_folder *f, const char *mailbox, size_t len,
			 const struct md_deliver_opts *opts)
{
	const char *name = opts->src_name;
	if (m->batch && pend_find_src(m, opts->src_dir, name))
		return err_set(MCRDT_ENOTFOUND, "cannot move %s into %s: this batch moves it in already", name, mailbox);
	struct stat st;
	if (fstatat(opts->src_dir, name, &st, AT_SYMLINK_NOFOLLOW) != 0)
		return errno == ENOENT ? err_set(MCRDT_ENOTFOUND, "cannot move %s into %s: gone", name, mailbox)
				       : io_error(errno, "cannot stat", name);
	if (!same_mount(opts->src_dir, opts->flags ? f->cur : f->new))
		return io_error(EXDEV, "cannot move in", name);
	if (!S_ISREG(st.st_mode) || (uint64_t)st.st_size != len) {
		unlinkat(opts->src_dir, name, 0);
		return err_set(MCRDT_ECORRUPT, "%s is not a file of %zu bytes", name, len);
	}
	return 0;
}

int md_deliver(md *m, const char *mailbox, const void *data, size_t len,
	       const struct md_deliver_opts *opts, char **file_out)
{
	static const struct md_deliver_opts defaults = MD_DELIVER_OPTS_INIT;
	if (!opts)
		opts = &defaults;
	if (opts->version != MD_DELIVER_OPTS_VERSION)
		return err_set(MCRDT_EVERSION, "md_deliver_opts version %u not supported", opts->version);
	if (len == 0)
		return err_set(MCRDT_EINVAL, "refusing to deliver an empty message");
	struct md_folder *f;
	int rc = m->batch ? md_folder_open(m, mailbox, &f) : md_folder_open_live(m, mailbox, &f);
	if (rc)
		return rc;
	char base[NAME_MAX + 1], final[NAME_MAX + 1];
	if (opts->base) {
		if ((rc = valid_file_name(opts->base)))
			return rc;
		if (strchr(opts->base, ':'))
			return err_set(MCRDT_EINVAL, "a base name has no ':'");
		snprintf(base, sizeof base, "%s", opts->base);
	} else if ((rc = md_unique_name(base, sizeof base, len))) {
		return rc;
	}
	if ((rc = final_name(final, sizeof final, base, opts->flags)))
		return rc;
	if (opts->src_name && !opts->base)
		return err_set(MCRDT_EINVAL, "a message moved in keeps its base name");
	/* The file, complete before it is put in place: one written in tmp/,
	 * or one moved in, which is renamed into place from where it is. */
	int dir = f->tmp, fd = -1; /* fd: for its fsync, outside a batch */
	const char *file = base;
	if (opts->src_name) {
		dir = opts->src_dir;
		file = opts->src_name;
		if ((rc = check_move_in(m, f, mailbox, len, opts)))
			return rc;
		if (!m->batch && (fd = openat(dir, file, O_RDONLY | O_NOFOLLOW | O_CLOEXEC)) < 0)
			rc = io_error(errno, "cannot open", file);
	} else {
		fd = openat(f->tmp, base, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
		if (fd < 0 && errno == EEXIST && opts->base && unlinkat(f->tmp, base, 0) == 0)
			fd = openat(f->tmp, base, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
		if (fd < 0) {
			if (errno == EEXIST)
				return err_set(MCRDT_EEXISTS, "%s is already in %s/tmp", base, mailbox);
			return io_error(errno, "cannot create in tmp/:", base);
		}
		rc = write_all(fd, data, len, base);
	}
	if (rc == 0 && opts->mtime >= 0) {
		struct timespec ts[2] = { { opts->mtime, 0 }, { opts->mtime, 0 } };
		if (utimensat(dir, file, ts, AT_SYMLINK_NOFOLLOW) != 0)
			rc = io_error(errno, "cannot set the date of", file);
	}
	/* (in a batch, its syncfs makes the data durable) */
	if (rc == 0 && !m->batch && fsync(fd) != 0)
		rc = io_error(errno, "cannot fsync", file);
	if (fd >= 0 && close(fd) != 0 && rc == 0)
		rc = io_error(errno, "cannot close", file);
	if (rc) {
		unlinkat(dir, file, 0);
		return rc;
	}
	if (m->batch)
		return pend_add(m, f, opts->src_name ? dir : -1, file, final, opts->flags != NULL, file_out);
	/* The name is copied before the message becomes visible: a failure
	 * after that point would report a delivered message as not delivered. */
	char *name = file_out ? strdup(final) : NULL;
	if (file_out && !name) {
		unlinkat(dir, file, 0);
		return err_set(MCRDT_ENOMEM, "out of memory");
	}
	if ((rc = publish(m, f, dir, file, final, opts->flags != NULL))) {
		free(name);
		return rc;
	}
	if (file_out)
		*file_out = name;
	return 0;
}

int md_batch_begin(md *m)
{
	if (m->batch)
		return err_set(MCRDT_EINVAL, "a batch is already open");
	for (size_t i = 0; i < MD_FOLDER_CACHE; i++)
		m->cache[i].checked = false; /* (another program may have made one again) */
	m->batch = true;
	return 0;
}

static void pending_free(md *m)
{
	for (size_t i = 0; i < m->npend; i++) {
		free(m->pend[i].tmpname);
		free(m->pend[i].final);
	}
	m->npend = 0;
	hmap_free(&m->pendix);
	m->batch = false;
}

/* Syncs every directory the batch changed, once, and ends the batch. */
static int batch_end(md *m)
{
	int rc = 0;
	for (size_t i = 0; i < MD_FOLDER_CACHE; i++) {
		int frc = m->cache[i].dir >= 0 ? md_folder_flush(&m->cache[i]) : 0;
		rc = rc ? rc : frc;
	}
	pending_free(m);
	return rc;
}

int md_batch_commit(md *m)
{
	if (!m->batch)
		return err_set(MCRDT_EINVAL, "no batch is open");
	int rc = 0;
	size_t done = 0;
	/* One sync makes every file's data durable before any becomes visible. */
	if (m->npend && syncfs(m->rootfd) != 0)
		rc = io_error(errno, "cannot sync the file system of", m->root);
	for (; rc == 0 && done < m->npend; done++) {
		struct md_pending *p = &m->pend[done];
		rc = publish(m, p->f, pend_dir(p), p->tmpname, p->final, p->to_cur);
	}
	if (rc) {
		/* All or nothing: take back what was already put in place, so a
		 * caller that retries the batch doubles nothing. */
		for (size_t i = 0; i < m->npend; i++) {
			struct md_pending *p = &m->pend[i];
			if (i + 1 < done) {
				if (unlinkat(p->to_cur ? p->f->cur : p->f->new, p->final, 0) == 0)
					md_own_note(m, p->f->mailbox, p->final, !p->to_cur, true);
				md_dir_changed(m, p->f, p->to_cur);
			} else {
				unlinkat(pend_dir(p), p->tmpname, 0);
			}
		}
	}
	int frc = batch_end(m);
	return rc ? rc : frc;
}

void md_batch_abort(md *m)
{
	for (size_t i = 0; i < m->npend; i++)
		unlinkat(pend_dir(&m->pend[i]), m->pend[i].tmpname, 0);
	batch_end(m); /* flag renames and removals already made stay durable */
}

/* Renames file (in new/ when in_new) of folder from into to's cur/ under
 * flags: a flag change (from == to) or a move between folders. */
static int relocate(md *m, const char *from, const char *file, bool in_new, const char *to, const char *flags,
		    char **file_out)
{
	struct md_folder *f, *t;
	struct md_info info;
	char base[NAME_MAX + 1], final[NAME_MAX + 1];
	int rc = valid_file_name(file);
	if (rc || (rc = md_folder_open(m, from, &f)))
		return rc;
	md_info_parse(file, &info);
	if (info.problem)
		return err_set(MCRDT_ECORRUPT, "%s: %s; left as it is", file, info.problem);
	snprintf(base, sizeof base, "%.*s", (int)info.base_len, file);
	if ((rc = final_name(final, sizeof final, base, flags ? flags : "")))
		return rc;
	bool same = strcmp(from, to) == 0;
	if (same && !in_new && strcmp(file, final) == 0) { /* nothing to rename: there? */
		struct stat st;
		if (fstatat(f->cur, file, &st, AT_SYMLINK_NOFOLLOW) != 0 &&
		    (errno != ENOENT || !pend_find(m, from, file, false))) /* (a pending delivery is there) */
			return errno == ENOENT ? err_set(MCRDT_ENOTFOUND, "%s vanished from %s", file, from)
					       : io_error(errno, "cannot stat", file);
		return file_out && !(*file_out = strdup(final)) ? err_set(MCRDT_ENOMEM, "out of memory") : 0;
	}
	/* The source folder's slot may be evicted by opening the target. */
	int dup = same ? -1 : fcntl(in_new ? f->new : f->cur, F_DUPFD_CLOEXEC, 0);
	if (!same && dup < 0)
		return err_sys(MCRDT_EIO, "cannot duplicate a descriptor");
	int src = same ? (in_new ? f->new : f->cur) : dup;
	if ((rc = md_folder_open(m, to, &t)) == 0 && rename_noreplace(src, file, t->cur, final) != 0) {
		struct md_pending *p = errno == ENOENT ? pend_find(m, from, file, in_new) : NULL;
		if (p) {
			if (dup >= 0)
				close(dup);
			return pend_refile(m, p, t, final, file_out);
		}
		if (errno == ENOENT)
			rc = err_set(MCRDT_ENOTFOUND, "%s vanished from %s", file, from);
		else if (errno == EEXIST)
			rc = err_set(MCRDT_EEXISTS, "%s already exists in %s", final, to);
		else
			rc = io_error(errno, same ? "cannot rename" : "cannot move", file);
	}
	if (dup >= 0)
		close(dup);
	if (rc)
		return rc;
	md_own_note(m, from, file, in_new, true);
	md_own_note(m, to, final, false, false);
	if ((rc = md_dir_changed(m, t, true)))
		return rc;
	if ((!same || in_new) && ((rc = md_folder_open(m, from, &f)) || (rc = md_dir_changed(m, f, !in_new))))
		return rc;
	return file_out && !(*file_out = strdup(final)) ? err_set(MCRDT_ENOMEM, "out of memory") : 0;
}

int md_set_flags(md *m, const char *mailbox, const char *file, bool in_new, const char *flags,
		 char **file_out)
{
	return relocate(m, mailbox, file, in_new, mailbox, flags, file_out);
}

int md_move(md *m, const char *from, const char *file, bool in_new, const char *to, const char *flags,
	    char **file_out)
{
	return relocate(m, from, file, in_new, to, flags, file_out);
}

int md_remove(md *m, const char *mailbox, const char *file, bool in_new)
{
	struct md_folder *f;
	int rc = valid_file_name(file);
	if (rc || (rc = md_folder_open(m, mailbox, &f)))
		return rc;
	if (unlinkat(in_new ? f->new : f->cur, file, 0) != 0) {
		struct md_pending *p = errno == ENOENT ? pend_find(m, mailbox, file, in_new) : NULL;
		if (p) { /* delivered earlier in this batch: it never shows */
			if (unlinkat(pend_dir(p), p->tmpname, 0) != 0 && errno != ENOENT)
				return io_error(errno, "cannot remove", p->tmpname);
			pend_drop(m, p);
			return 0;
		}
		if (errno == ENOENT)
			return err_set(MCRDT_ENOTFOUND, "%s is already gone from %s", file, mailbox);
		return io_error(errno, "cannot remove", file);
	}
	md_own_note(m, mailbox, file, in_new, true);
	return md_dir_changed(m, f, !in_new);
}

int md_open_message(md *m, const char *mailbox, const char *file, bool in_new, int *fd_out, struct stat *st_out)
{
	struct md_folder *f;
	int rc = valid_file_name(file);
	if (rc || (rc = md_folder_open(m, mailbox, &f)))
		return rc;
	int fd = openat(in_new ? f->new : f->cur, file, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	struct md_pending *p = fd < 0 && errno == ENOENT ? pend_find(m, mailbox, file, in_new) : NULL;
	if (p) /* delivered earlier in this batch: still in tmp/ (or where it was moved in from) */
		fd = openat(pend_dir(p), p->tmpname, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0) {
		switch (errno) {
		case ENOENT: return err_set(MCRDT_ENOTFOUND, "%s vanished from %s", file, mailbox);
		case ELOOP: return err_set(MCRDT_ECORRUPT, "%s in %s is a symbolic link", file, mailbox);
		case EACCES: return err_sys(MCRDT_EIO, "%s in %s is unreadable", file, mailbox);
		default: return io_error(errno, "cannot open", file);
		}
	}
	struct stat st;
	if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
		close(fd);
		return err_set(MCRDT_ECORRUPT, "%s in %s is not a regular file", file, mailbox);
	}
	if (st_out)
		*st_out = st;
	*fd_out = fd;
	return 0;
}
