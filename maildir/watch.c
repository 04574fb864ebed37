/*
 * maildir/watch.c — inotify on the folders a handle has listed, so that a
 * scan of a folder in which nothing happened but the handle's own settled
 * changes reads nothing at all.
 *
 * A watch is armed at the second scan of a folder in the handle's life,
 * before that scan reads the directories' mtimes: a handle that scans a
 * folder once (a command) never pays for it, and adding a watch costs the
 * kernel a pass over every cached entry of the directory (a fifth of a
 * no-op sync of 100,000 messages). A watch that cannot be armed is not
 * tried again, nor one on a file system other machines change (NFS, SMB,
 * FUSE, ...: inotify reports only this kernel's changes); the mtimes
 * decide for that folder.
 *
 * Each event is matched by name and direction (a name that came or went)
 * against the handle's own change notes (see md_own_settle): a delivery's
 * rename into new/ or cur/, a flag rename's move out of one name and into
 * another, a removal; each note explains one event. An event no note
 * explains (another program's delivery, rename, removal, or a file
 * written in place) marks the folder dirty, and its next scan lists it;
 * so does a queue overflow, a folder that went, and own changes that were
 * forgotten because their call failed. An event still in flight when a
 * scan drains the queue is read at the next one. Without inotify (no
 * instance left for the user, say) the directories' mtimes decide, as
 * before.
 */
#define _GNU_SOURCE
#include "maildir/md_int.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <unistd.h>

#include "common/grow.h"

#define WATCH_EVENTS                                                                                        \
	(IN_CREATE | IN_DELETE | IN_MOVED_FROM | IN_MOVED_TO | IN_CLOSE_WRITE | IN_DELETE_SELF | IN_MOVE_SELF | \
	 IN_ONLYDIR)

struct md_watch *md_watch_find(md *m, const char *mailbox)
{
	for (size_t i = 0; i < m->nw; i++)
		if (strcmp(m->w[i].mailbox, mailbox) == 0)
			return &m->w[i];
	return NULL;
}

void md_watch_dirty(md *m, const char *mailbox)
{
	struct md_watch *w = md_watch_find(m, mailbox);
	if (w)
		w->dirty = true;
}

void md_watch_clear(md *m)
{
	for (size_t i = 0; i < m->nw; i++)
		free(m->w[i].mailbox);
	free(m->w);
	m->w = NULL;
	m->nw = m->capw = 0;
	if (m->ino >= 0)
		close(m->ino);
	m->ino = -1;
}

static int add_one(md *m, int dirfd)
{
	char path[64];
	snprintf(path, sizeof path, "/proc/self/fd/%d", dirfd);
	return inotify_add_watch(m->ino, path, WATCH_EVENTS);
}

bool md_test_shared_fs;

bool md_shared_fs(int fd)
{
	static const uint32_t types[] = {
		0x6969,     /* NFS */
		0x517b,     /* SMB */
		0xff534d42, /* CIFS */
		0xfe534d42, /* SMB2 */
		0x65735546, /* FUSE */
		0x00c36400, /* Ceph */
		0x5346414f, /* AFS */
		0x6b414653, /* kAFS */
		0x01021997, /* 9P */
		0x73757245, /* Coda */
		0x01161970, /* GFS2 */
		0x7461636f, /* OCFS2 */
		0x0bd00bd0, /* Lustre */
		0x47504653, /* GPFS */
		0x19830326, /* BeeGFS */
		0x20030528, /* OrangeFS */
	};
	struct statfs sf;
	if (md_test_shared_fs || fstatfs(fd, &sf) != 0)
		return true; /* (cannot tell: the mtimes decide) */
	for (size_t i = 0; i < sizeof types / sizeof *types; i++)
		if ((uint32_t)sf.f_type == types[i])
			return true;
	return false;
}

bool md_fine_mtimes(int fd)
{
	static const uint32_t types[] = {
		0xef53,     /* ext2/3/4 (seconds only with small inodes: see stands() in scan.c) */
		0x58465342, /* XFS */
		0x9123683e, /* Btrfs */
		0x01021994, /* tmpfs */
		0xf2f52010, /* F2FS */
	};
	struct statfs sf;
	if (md_test_shared_fs || fstatfs(fd, &sf) != 0)
		return false;
	for (size_t i = 0; i < sizeof types / sizeof *types; i++)
		if ((uint32_t)sf.f_type == types[i])
			return true;
	return false;
}

struct md_watch *md_watch_add(md *m, struct md_folder *f, const char *mailbox)
{
	struct md_watch *w = md_watch_find(m, mailbox);
	if (!w) { /* the first scan: noted, armed at the next one */
		if (GROW(m->w, m->capw, m->nw + 1))
			return NULL;
		w = &m->w[m->nw];
		if (!(w->mailbox = strdup(mailbox)))
			return NULL;
		w->wd_new = w->wd_cur = MD_WD_PENDING;
		w->dirty = false; /* (not read before it is armed) */
		m->nw++;
		return w;
	}
	if (w->wd_new != MD_WD_PENDING)
		return w;
	bool shared = md_shared_fs(f->cur);
	if (!shared && m->ino == -1 && (m->ino = inotify_init1(IN_NONBLOCK | IN_CLOEXEC)) < 0)
		m->ino = -2;
	struct stat sn, sc;
	if (!shared && m->ino >= 0 && fstat(f->new, &sn) == 0 && fstat(f->cur, &sc) == 0) {
		w->wd_new = add_one(m, f->new);
		w->wd_cur = add_one(m, f->cur);
		w->dev = sc.st_dev;
		w->ino_new = sn.st_ino;
		w->ino_cur = sc.st_ino;
	}
	if (shared || m->ino < 0 || w->wd_new < 0 || w->wd_cur < 0) {
		/* Shared, no instance or out of watches: this folder goes by
		 * its mtimes. */
		if (w->wd_new >= 0)
			inotify_rm_watch(m->ino, w->wd_new);
		if (w->wd_cur >= 0)
			inotify_rm_watch(m->ino, w->wd_cur);
		w->wd_new = w->wd_cur = MD_WD_NONE;
	}
	w->dirty = true;
	return w;
}

static int cmp_byname(const void *a, const void *b, void *arg)
{
	const struct md_own *v = arg;
	return strcmp(v[*(const size_t *)a].file, v[*(const size_t *)b].file);
}

/* Whether one of the handle's own notes explains name appearing in
 * (!removed) or leaving (removed) new/ (in_new) or cur/ of mailbox: a
 * binary search in the notes sorted by name, sorted again only after they
 * changed. Each note explains one event, the one its change made: so a
 * delivery does not explain another program removing the file, nor our
 * flag rename its undoing, nor a removal the file coming back. */
static bool own_name(md *m, const char *mailbox, const char *name, bool in_new, bool removed)
{
	struct md_own_box *b = md_own_box(m, mailbox);
	if (!b || !b->n)
		return false;
	if (!b->byname_ok) {
		size_t *ix = realloc(b->byname, b->n * sizeof *ix);
		if (!ix)
			return false; /* (an event unexplained: the folder is read) */
		for (size_t i = 0; i < b->n; i++)
			ix[i] = i;
		qsort_r(ix, b->n, sizeof *ix, cmp_byname, b->v);
		b->byname = ix;
		b->byname_ok = true;
	}
	size_t lo = 0, hi = b->n;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (strcmp(b->v[b->byname[mid]].file, name) < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	for (; lo < b->n && strcmp(b->v[b->byname[lo]].file, name) == 0; lo++) {
		struct md_own *o = &b->v[b->byname[lo]];
		if (o->in_new == in_new && o->removed == removed && !o->seen)
			return o->seen = true;
	}
	return false;
}

/* Drops watch w (its folder went): the next scan lists and watches again. */
static void drop(md *m, struct md_watch *w)
{
	if (w->wd_new >= 0)
		inotify_rm_watch(m->ino, w->wd_new);
	if (w->wd_cur >= 0)
		inotify_rm_watch(m->ino, w->wd_cur);
	free(w->mailbox);
	*w = m->w[--m->nw];
}

void md_watch_forget(md *m, const char *mailbox)
{
	struct md_watch *w = md_watch_find(m, mailbox);
	if (w)
		drop(m, w);
}

void md_watch_drain(md *m)
{
	if (m->ino < 0)
		return;
	char buf[64 * 1024] __attribute__((aligned(__alignof__(struct inotify_event))));
	for (;;) {
		ssize_t n = read(m->ino, buf, sizeof buf);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			if (n < 0 && errno != EAGAIN) /* cannot tell what happened: */
				for (size_t i = 0; i < m->nw; i++)
					m->w[i].dirty = true;
			return;
		}
		for (char *p = buf; p < buf + n;) {
			const struct inotify_event *e = (const struct inotify_event *)p;
			p += sizeof *e + e->len;
			if (e->mask & IN_Q_OVERFLOW) {
				for (size_t i = 0; i < m->nw; i++)
					m->w[i].dirty = true;
				continue;
			}
			struct md_watch *w = NULL;
			for (size_t i = 0; i < m->nw && !w; i++)
				if (m->w[i].wd_new == e->wd || m->w[i].wd_cur == e->wd)
					w = &m->w[i];
			if (!w || (e->mask & IN_IGNORED))
				continue;
			if (e->mask & (IN_DELETE_SELF | IN_MOVE_SELF)) {
				drop(m, w);
				continue;
			}
			/* (a file written in place, IN_CLOSE_WRITE, is never ours:
			 * we write in tmp/) */
			bool gone = e->mask & (IN_MOVED_FROM | IN_DELETE), came = e->mask & (IN_MOVED_TO | IN_CREATE);
			if (!e->len || !(gone || came) || !own_name(m, w->mailbox, e->name, e->wd == w->wd_new, gone))
				w->dirty = true;
		}
	}
}
