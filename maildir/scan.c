/*
 * maildir/scan.c — reading what is in a folder, and what changed since the
 * last look, while other programs deliver, rename and delete under us.
 *
 * A listing is taken between two looks at the directories' mtimes; if
 * either moved, or a file vanished between readdir and stat, the listing
 * is taken again. A base name seen in both new/ and cur/ is a message that
 * moved during the listing: it counts once, in cur/. So a rename never
 * shows up as a delete plus an add, and never as a delete alone.
 */
#define _GNU_SOURCE
#include "maildir/md_int.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "common/dir.h"
#include "common/error.h"
#include "common/grow.h"

#define LIST_TRIES 8

void md_listing_free(struct md_listing *l)
{
	for (size_t i = 0; i < l->n; i++)
		free(l->e[i].file);
	free(l->e);
	memset(l, 0, sizeof *l);
}

void md_changes_free(struct md_changes *c)
{
	for (size_t i = 0; i < c->n; i++)
		free(c->c[i].entry.file);
	free(c->c);
	memset(c, 0, sizeof *c);
}

void md_scan_state_free(struct md_scan_state *st)
{
	md_listing_free(&st->last);
	memset(st, 0, sizeof *st);
}

static int64_t mtime_ns(const struct stat *st)
{
	return (int64_t)st->st_mtim.tv_sec * 1000000000 + st->st_mtim.tv_nsec;
}

static int dir_mtime(int fd, const char *mailbox, int64_t *out)
{
	struct stat st;
	if (fstat(fd, &st) != 0)
		return err_sys(MCRDT_EIO, "cannot stat a directory of %s", mailbox);
	*out = mtime_ns(&st);
	return 0;
}

static int push(struct md_listing *l, struct md_entry *e)
{
	int rc = GROW(l->e, l->cap, l->n + 1);
	if (rc)
		return rc;
	l->e[l->n++] = *e;
	return 0;
}

/*
 * Reads one of new/ and cur/ into l. Returns 1 when a file vanished
 * between readdir and stat: it was renamed or removed under us, so the
 * pass is not to be trusted alone.
 */
static int read_dir(int dirfd, bool in_new, unsigned pass, const char *mailbox, struct md_listing *l)
{
	DIR *d = dir_stream(dirfd, mailbox);
	if (!d)
		return MCRDT_EIO;
	int rc = 0, moved = 0;
	struct dirent *de;
	while (rc == 0 && (de = readdir(d))) {
		if (de->d_name[0] == '.')
			continue;
		struct stat st;
		if (fstatat(dirfd, de->d_name, &st, AT_SYMLINK_NOFOLLOW) != 0) {
			if (errno == ENOENT)
				moved = 1;
			else
				rc = err_sys(MCRDT_EIO, "cannot stat %s in %s", de->d_name, mailbox);
			continue;
		}
		struct md_info info;
		md_info_parse(de->d_name, &info);
		struct md_entry e = { 0 };
		e.base_len = info.base_len;
		e.in_new = in_new;
		e.pass = pass;
		memcpy(e.flags, info.flags, sizeof e.flags);
		e.problem = info.problem;
		if (!S_ISREG(st.st_mode))
			e.problem = S_ISLNK(st.st_mode) ? "a symbolic link" : "not a regular file";
		else if (st.st_size == 0)
			e.problem = "an empty file";
		e.size = md_name_size(de->d_name);
		if (e.size < 0)
			e.size = st.st_size;
		e.mtime = st.st_mtim.tv_sec;
		if (!(e.file = strdup(de->d_name)))
			rc = err_set(MCRDT_ENOMEM, "out of memory listing a folder");
		else if ((rc = push(l, &e)))
			free(e.file);
	}
	closedir(d);
	return rc ? rc : moved;
}

static int cmp_base(const struct md_entry *a, const struct md_entry *b)
{
	size_t n = a->base_len < b->base_len ? a->base_len : b->base_len;
	int c = memcmp(a->file, b->file, n);
	if (c)
		return c;
	return a->base_len < b->base_len ? -1 : a->base_len > b->base_len;
}

static int cmp_entry(const void *a, const void *b)
{
	const struct md_entry *x = a, *y = b;
	int c = cmp_base(x, y);
	if (c)
		return c;
	/* The latest pass first, and in it cur/ before new/: the dedup below
	 * keeps the newest sighting of a message that moved while we looked. */
	if (x->pass != y->pass)
		return x->pass > y->pass ? -1 : 1;
	return (int)x->in_new - (int)y->in_new;
}

int md_list(md *m, const char *mailbox, struct md_listing *out)
{
	struct md_folder *f;
	int rc = md_folder_open(m, mailbox, &f);
	if (rc)
		return rc;
	/*
	 * Passes go on until one sees both directories unchanged throughout.
	 * If none does, the union of all passes is kept: a message that moved
	 * is then seen at least once, so it is never reported as deleted; a
	 * real deletion shows at the next scan instead.
	 */
	struct md_listing l = { 0 };
	for (unsigned pass = 0; pass < LIST_TRIES; pass++) {
		int64_t n0 = 0, c0 = 0, n1 = 0, c1 = 0;
		size_t before = l.n;
		if ((rc = dir_mtime(f->new, mailbox, &n0)) || (rc = dir_mtime(f->cur, mailbox, &c0)))
			break;
		int moved = read_dir(f->new, true, pass, mailbox, &l);
		if (moved >= 0) {
			int moved2 = read_dir(f->cur, false, pass, mailbox, &l);
			moved = moved2 < 0 ? moved2 : moved | moved2;
		}
		if ((rc = moved < 0 ? moved : 0))
			break;
		if ((rc = dir_mtime(f->new, mailbox, &n1)) || (rc = dir_mtime(f->cur, mailbox, &c1)))
			break;
		if (!moved && n0 == n1 && c0 == c1) {
			/* A clean pass stands alone. */
			for (size_t i = 0; i < before; i++)
				free(l.e[i].file);
			if (l.n > before)
				memmove(l.e, l.e + before, (l.n - before) * sizeof *l.e);
			l.n -= before;
			break;
		}
	}
	if (rc < 0) {
		md_listing_free(&l);
		return rc;
	}
	if (l.n)
		qsort(l.e, l.n, sizeof *l.e, cmp_entry);
	size_t k = 0;
	for (size_t i = 0; i < l.n; i++) {
		if (k && cmp_base(&l.e[k - 1], &l.e[i]) == 0) {
			free(l.e[i].file); /* the same message seen again */
			continue;
		}
		l.e[k++] = l.e[i];
	}
	l.n = k;
	*out = l;
	return 0;
}

static int change(struct md_changes *out, enum md_change_kind kind, const struct md_entry *e)
{
	int rc = GROW(out->c, out->cap, out->n + 1);
	if (rc)
		return rc;
	struct md_change *c = &out->c[out->n];
	c->kind = kind;
	c->entry = *e;
	if (!(c->entry.file = strdup(e->file)))
		return err_set(MCRDT_ENOMEM, "out of memory");
	out->n++;
	return 0;
}

int md_scan(md *m, const char *mailbox, struct md_scan_state *st, struct md_changes *out)
{
	struct md_folder *f;
	int64_t nm = 0, cm = 0;
	int rc = md_folder_open(m, mailbox, &f);
	if (rc || (rc = dir_mtime(f->new, mailbox, &nm)) || (rc = dir_mtime(f->cur, mailbox, &cm)))
		return rc;
	int64_t newest = (nm > cm ? nm : cm) / 1000000000;
	/* Unchanged, and the last scan began after the second of the last change
	 * (a change later in that same second might not have moved the mtime). */
	if (st->valid && nm == st->new_mtime_ns && cm == st->cur_mtime_ns && newest < st->scanned_at)
		return 0;
	int64_t started = (int64_t)time(NULL);
	struct md_listing now;
	if ((rc = md_list(m, mailbox, &now)))
		return rc;
	const struct md_listing *was = &st->last;
	size_t i = 0, j = 0;
	while (rc == 0 && (i < now.n || j < was->n)) {
		int c = i == now.n ? 1 : j == was->n ? -1 : cmp_base(&now.e[i], &was->e[j]);
		if (c < 0) {
			rc = change(out, MD_ADDED, &now.e[i++]);
		} else if (c > 0) {
			rc = change(out, MD_VANISHED, &was->e[j++]);
		} else {
			if (now.e[i].in_new != was->e[j].in_new || strcmp(now.e[i].file, was->e[j].file) != 0)
				rc = change(out, MD_FLAGS_CHANGED, &now.e[i]);
			i++, j++;
		}
	}
	if (rc) {
		md_listing_free(&now);
		return rc;
	}
	md_listing_free(&st->last);
	st->last = now;
	st->new_mtime_ns = nm;
	st->cur_mtime_ns = cm;
	st->scanned_at = started;
	st->valid = true;
	st->rescans++;
	return 0;
}

int md_tmp_clean(md *m, const char *mailbox, int64_t now, size_t *removed_out)
{
	struct md_folder *f;
	int rc = md_folder_open(m, mailbox, &f);
	if (rc)
		return rc;
	DIR *d = dir_stream(f->tmp, "a tmp/ directory");
	if (!d)
		return MCRDT_EIO;
	size_t removed = 0;
	struct dirent *de;
	while ((de = readdir(d))) {
		struct stat st;
		if (de->d_name[0] == '.' || fstatat(f->tmp, de->d_name, &st, AT_SYMLINK_NOFOLLOW) != 0)
			continue;
		/* Both times old: a delivery sets a message's mtime to its internal
		 * date while it is still in tmp/, but nobody can set the ctime back. */
		if (!S_ISDIR(st.st_mode) && st.st_mtime < now - MD_TMP_MAX_AGE &&
		    st.st_ctime < now - MD_TMP_MAX_AGE && unlinkat(f->tmp, de->d_name, 0) == 0)
			removed++;
	}
	closedir(d);
	if (removed_out)
		*removed_out = removed;
	return 0;
}
