/*
 * store/store.c — opening and closing a store, the lock and the
 * transaction every call runs in, catching up with other processes,
 * batches, snapshots, notifications and the log listing.
 */
#define _GNU_SOURCE
#include "store/store_int.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/inotify.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "common/error.h"
#include "common/grow.h"
#include "sync/io.h"
#include "sync/snapshot.h"

/* ---- the lock ---- */

static int lock_wait(int fd, int op, unsigned timeout_ms, const char *hint)
{
	unsigned waited = 0;
	for (;;) {
		if (flock(fd, op | LOCK_NB) == 0)
			return 0;
		if (errno == EINTR)
			continue;
		if (errno != EWOULDBLOCK)
			return err_sys(MCRDT_EIO, "cannot lock the store");
		if (waited >= timeout_ms)
			return err_set(MCRDT_ELOCKED, "the store is locked by another process (waited %u ms)%s%s",
				       timeout_ms, hint ? "; " : "", hint ? hint : "");
		unsigned step = timeout_ms - waited < 5 ? timeout_ms - waited : 5;
		struct timespec ts = { 0, (long)step * 1000000L };
		nanosleep(&ts, NULL);
		waited += step;
	}
}

int st_lock_file(const char *metadir, const char *name, int op, unsigned timeout_ms, const char *hint,
		 int *fd_out)
{
	char path[4200];
	snprintf(path, sizeof path, "%s/%s", metadir, name);
	int fd = open(path, O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (fd < 0)
		return err_sys(MCRDT_EIO, "cannot open %s", path);
	int rc = lock_wait(fd, op, timeout_ms, hint);
	if (rc) {
		close(fd);
		return rc;
	}
	*fd_out = fd;
	return 0;
}

static void unlock(mcrdt_store *s)
{
	if (s->locked) {
		flock(s->lockfd, LOCK_UN);
		s->locked = false;
	}
}

/* ---- the replica file ---- */

static int read_replica(mcrdt_store *s, int metafd, bool *found)
{
	*found = false;
	int fd = openat(metafd, "replica", O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return errno == ENOENT ? 0 : err_sys(MCRDT_EIO, "cannot open %s/replica", s->metadir);
	char buf[256];
	ssize_t n = read(fd, buf, sizeof buf - 1);
	close(fd);
	if (n < 0)
		return err_sys(MCRDT_EIO, "cannot read %s/replica", s->metadir);
	buf[n] = '\0';
	uint64_t id = 0;
	char name[64] = "";
	if (sscanf(buf, "id %" SCNx64 "\nname %63[^\n]", &id, name) < 1 || id == 0)
		return err_set(MCRDT_ECORRUPT, "%s/replica is damaged (expected \"id HEX\")", s->metadir);
	s->replica = id;
	snprintf(s->name, sizeof s->name, "%s", name);
	*found = true;
	return 0;
}

/* Writes the replica file once, atomically and durably. */
static int write_replica(mcrdt_store *s, int metafd, const char *name)
{
	uint64_t id = 0;
	while (id == 0)
		if (getrandom(&id, sizeof id, 0) != (ssize_t)sizeof id)
			return err_sys(MCRDT_EIO, "cannot draw a random replica id");
	char host[64] = "replica";
	if (!name) {
		gethostname(host, sizeof host);
		host[sizeof host - 1] = '\0';
		name = host;
	}
	for (const char *p = name; *p; p++)
		if ((unsigned char)*p < 0x20 || *p == 0x7f)
			return err_set(MCRDT_EINVAL, "replica name has a control character");
	char buf[256];
	int len = snprintf(buf, sizeof buf, "id %016" PRIx64 "\nname %.63s\n", id, name);
	int rc = replace_file(s->metadir, "replica", buf, (size_t)len, true);
	if (rc == 0)
		rc = read_replica(s, metafd, &(bool){ false });
	return rc;
}

/* ---- the model and the log ---- */

static int open_replica(mcrdt_store *s)
{
	struct sync_log_opts lo = SYNC_LOG_OPTS_INIT;
	lo.no_fsync = s->opts.no_fsync;
	int rc = sync_replica_open(s->metadir, s->replica, &lo, &s->m, &s->log, &s->snap_at, NULL);
	if (rc == 0)
		crdt_model_assume_shown(s->m);
	return rc;
}

/* Drops the model and reads it again from the snapshot and the log. */
static int reload(mcrdt_store *s)
{
	sync_log_close(s->log);
	crdt_model_free(s->m);
	s->log = NULL;
	s->m = NULL;
	st_scans_free(s); /* scanned file changes may have had no op: look again */
	int rc = open_replica(s);
	s->stale = rc != 0;
	return rc;
}

static int receive_one(void *ctx, const crdt_op *op, uint64_t index)
{
	mcrdt_store *s = ctx;
	int rc = crdt_model_receive(s->m, op);
	if (rc == 0 || rc == MCRDT_EDUPLICATE || rc == MCRDT_EPENDING)
		return 0;
	return err_set(rc, "log record %" PRIu64 " refused by the model: %s", index, mcrdt_error_last());
}

/* Takes in what other processes logged since this handle last looked. */
static int catch_up(mcrdt_store *s)
{
	uint64_t fresh = 0;
	int rc = sync_log_refresh(s->log, true, receive_one, s, &fresh);
	if (rc == MCRDT_ECORRUPT)
		return reload(s); /* repaired or replaced underneath: start over */
	if (rc) {
		s->stale = true;
		return rc;
	}
	if (fresh) {
		crdt_oplist none = CRDT_OPLIST_INIT;
		rc = st_commit(s, &none, 0);
	}
	return rc;
}

/* st_begin and st_begin_read; strict: a journal that cannot be carried out
 * fails the call. */
static int begin(mcrdt_store *s, bool strict)
{
	pthread_mutex_lock(&s->mu);
	int rc = 0;
	if (!s->locked && (rc = lock_wait(s->lockfd, LOCK_EX, s->opts.lock_timeout_ms, NULL)) == 0)
		s->locked = true;
	if (rc == 0 && s->stale)
		rc = reload(s);
	if (rc == 0)
		rc = catch_up(s);
	/* A journal left by a crash, or by this handle's apply that failed
	 * after its ops were logged, is carried out before anything else:
	 * a change made first could contradict its plan (a message expunged
	 * here whose file the plan then delivers comes back at the next
	 * scan). Until it can be, changes fail with its error; reads go on
	 * (a message whose file it was to write is not there yet). */
	if (rc == 0 && !s->in_batch) {
		int jrc = st_journal_recover(s);
		if (strict)
			rc = jrc;
	}
	if (rc) {
		if (!s->in_batch)
			unlock(s);
		pthread_mutex_unlock(&s->mu);
	}
	return rc;
}

int st_begin(mcrdt_store *s)
{
	return begin(s, true);
}

int st_begin_read(mcrdt_store *s)
{
	return begin(s, false);
}

int st_commit(mcrdt_store *s, crdt_oplist *ops, int rc)
{
	if (rc) {
		if (ops->n)
			s->stale = true; /* applied, and now never logged: reload */
		crdt_oplist_free(ops);
		return rc;
	}
	crdt_oplist claims = CRDT_OPLIST_INIT;
	rc = crdt_model_settle(s->m, &claims);
	for (size_t i = 0; rc == 0 && i < claims.n; i++)
		rc = crdt_oplist_push(ops, &claims.ops[i]);
	crdt_oplist_free(&claims);
	if (rc == 0 && ops->n) {
		if (s->in_batch) {
			for (size_t i = 0; rc == 0 && i < ops->n; i++)
				rc = crdt_oplist_push(&s->batch, &ops->ops[i]);
		} else {
			rc = sync_log_append_batch(s->log, ops->ops, ops->n, NULL);
		}
	}
	if (rc)
		s->stale = true; /* the model holds ops the log does not */
	crdt_oplist_free(ops);
	return rc;
}

static void maybe_snapshot(mcrdt_store *s, uint64_t every)
{
	if (s->in_batch || s->stale || !s->locked)
		return;
	uint64_t next = sync_log_next(s->log);
	if (next - s->snap_at < every || crdt_model_pending(s->m))
		return;
	/* An optimisation: a failure leaves the older snapshot, and the call
	 * (which succeeded) is not failed for it. */
	if (sync_snapshot_write(s->metadir, s->m, next) == 0)
		s->snap_at = next;
}

static void notify_changes(mcrdt_store *s)
{
	if (!s->notify || s->stale)
		return;
	struct crdt_mailbox_info *v;
	size_t n;
	if (crdt_model_mailboxes(s->m, &v, &n))
		return;
	for (size_t i = 0; i < n; i++) {
		size_t k = 0;
		while (k < s->nseen && strcmp(s->seen[k].name, v[i].name) != 0)
			k++;
		if (k < s->nseen && s->seen[k].modseq == v[i].highestmodseq)
			continue;
		if (k == s->nseen) {
			if (GROW(s->seen, s->capseen, s->nseen + 1))
				break;
			s->seen[k].name = v[i].name;
			v[i].name = NULL;
			s->nseen++;
		}
		s->seen[k].modseq = v[i].highestmodseq;
		s->notify(s->notify_ctx, s->seen[k].name, s->seen[k].modseq);
	}
	crdt_mailboxes_free(v, n);
}

int st_end(mcrdt_store *s, int rc)
{
	char saved[512];
	snprintf(saved, sizeof saved, "%s", mcrdt_error_last());
	notify_changes(s);
	/* The files this call wrote are known to the model once its ops are
	 * logged; a failed call's are left for the next scan to find. */
	if (rc || !s->in_batch)
		md_own_settle(s->md, rc == 0);
	if (rc == 0)
		maybe_snapshot(s, ST_SNAPSHOT_EVERY);
	if (!s->in_batch)
		unlock(s);
	pthread_mutex_unlock(&s->mu);
	if (rc)
		err_set(rc, "%s", saved);
	return rc;
}

/* ---- opening and closing ---- */

/* Makes sure INBOX exists: a new store, or one whose creation was cut short. */
static int ensure_inbox(mcrdt_store *s)
{
	crdt_dot g;
	if (crdt_model_find(s->m, "INBOX", &g) == 0)
		return 0;
	crdt_oplist ops = CRDT_OPLIST_INIT;
	return st_commit(s, &ops, crdt_model_create(s->m, &ops, "INBOX", (uint32_t)time(NULL), NULL));
}

int mcrdt_store_open(mcrdt_store **out, const char *dir, const struct mcrdt_open_opts *opts)
{
	static const struct mcrdt_open_opts defaults = MCRDT_OPEN_OPTS_INIT;
	if (!opts)
		opts = &defaults;
	if (!out || !dir || !*dir)
		return err_set(MCRDT_EINVAL, "mcrdt_store_open: no directory given");
	if (opts->version != MCRDT_OPEN_OPTS_VERSION)
		return err_set(MCRDT_EVERSION, "mcrdt_open_opts version %u not supported (expected %u)",
			       opts->version, MCRDT_OPEN_OPTS_VERSION);
	mcrdt_store *s = calloc(1, sizeof *s);
	if (!s)
		return err_set(MCRDT_ENOMEM, "out of memory");
	pthread_mutex_init(&s->mu, NULL);
	s->lockfd = s->openfd = s->inotify = -1;
	s->opts = *opts;
	s->opts.name = NULL;
	bool create = opts->flags & MCRDT_OPEN_CREATE, found = false;
	int rc = 0, metafd = -1;
	if (!(s->root = strdup(dir)) || asprintf(&s->metadir, "%s/" MD_META_DIR, dir) < 0) {
		s->metadir = NULL;
		rc = err_set(MCRDT_ENOMEM, "out of memory");
	}
	struct stat st;
	char probe[4096];
	snprintf(probe, sizeof probe, "%s/" MD_META_DIR "/replica", dir);
	if (rc == 0 && !create && stat(probe, &st) != 0)
		rc = errno == ENOENT ? err_set(MCRDT_ENOTFOUND, "%s is not an mcrdt store (no %s; run mcrdt init)", dir, probe)
				     : err_sys(MCRDT_EIO, "cannot reach %s", probe);
	if (rc == 0)
		rc = md_open(&s->md, dir, create ? MD_CREATE : 0);
	if (rc == 0)
		rc = md_meta_dir(s->md, &metafd);
	if (rc == 0)
		rc = st_lock_file(s->metadir, "open", LOCK_SH, 0, "it is being repaired", &s->openfd);
	if (rc == 0 && (rc = st_lock_file(s->metadir, "lock", LOCK_EX, s->opts.lock_timeout_ms, NULL, &s->lockfd)) == 0)
		s->locked = true;
	if (rc == 0)
		rc = read_replica(s, metafd, &found);
	bool fresh = false;
	if (rc == 0 && !found) {
		if (!create)
			rc = err_set(MCRDT_ENOTFOUND, "%s is not an mcrdt store (run mcrdt init)", dir);
		else
			fresh = (rc = write_replica(s, metafd, opts->name)) == 0;
	}
	if (rc == 0)
		rc = open_replica(s);
	/* A sync cut short is finished here; one that cannot be yet (a full
	 * disk) leaves the store open for reads, as on a handle open before:
	 * each change tries it again first, and fails with its cause. */
	bool finished = rc == 0 && st_journal_recover(s) == 0;
	if (rc == 0 && finished)
		rc = ensure_inbox(s);
	if (rc == 0 && fresh && finished)
		rc = st_scan(s, NULL); /* adopt what the Maildir already holds */
	if (s->md)
		md_own_settle(s->md, rc == 0);
	unlock(s);
	if (rc) {
		if (rc == MCRDT_ECORRUPT || rc == MCRDT_EVERSION) {
			char msg[512];
			snprintf(msg, sizeof msg, "%s", mcrdt_error_last());
			err_set(rc, "%s (run mcrdt fsck)", msg);
		}
		s->in_batch = false;
		mcrdt_store_close(s);
		return rc;
	}
	*out = s;
	return 0;
}

void mcrdt_store_close(mcrdt_store *s)
{
	if (!s)
		return;
	if (s->in_batch && s->log)
		mcrdt_store_batch_commit(s);
	if (s->log && !s->stale && lock_wait(s->lockfd, LOCK_EX, s->opts.lock_timeout_ms, NULL) == 0) {
		s->locked = true;
		if (catch_up(s) == 0) {
			maybe_snapshot(s, ST_SNAPSHOT_AT_CLOSE);
			st_scans_save(s);
		}
		unlock(s);
	}
	sync_log_close(s->log);
	crdt_model_free(s->m);
	crdt_oplist_free(&s->batch);
	st_scans_free(s);
	for (size_t i = 0; i < s->nseen; i++)
		free(s->seen[i].name);
	free(s->seen);
	if (s->inotify >= 0)
		close(s->inotify);
	if (s->lockfd >= 0)
		close(s->lockfd);
	if (s->openfd >= 0)
		close(s->openfd);
	md_close(s->md);
	pthread_mutex_destroy(&s->mu);
	free(s->root);
	free(s->metadir);
	free(s);
}

int mcrdt_store_info(mcrdt_store *s, struct mcrdt_store_info *out)
{
	int rc = st_begin_read(s);
	if (rc)
		return rc;
	memset(out, 0, sizeof *out);
	out->replica = s->replica;
	snprintf(out->name, sizeof out->name, "%s", s->name);
	out->highestmodseq = crdt_model_modseq(s->m);
	out->messages = crdt_model_messages(s->m);
	out->log_records = sync_log_next(s->log);
	out->pending = crdt_model_pending(s->m);
	out->append_limit = s->opts.append_limit;
	out->memory = crdt_model_memory(s->m);
	return st_end(s, 0);
}

/* ---- batches ---- */

int mcrdt_store_batch_begin(mcrdt_store *s)
{
	int rc = st_begin(s);
	if (rc)
		return rc;
	if (s->in_batch)
		rc = err_set(MCRDT_EINVAL, "a batch is already open on this store handle");
	else if ((rc = md_batch_begin(s->md)) == 0)
		s->in_batch = true;
	return st_end(s, rc);
}

int mcrdt_store_batch_commit(mcrdt_store *s)
{
	pthread_mutex_lock(&s->mu);
	if (!s->in_batch) {
		pthread_mutex_unlock(&s->mu);
		return err_set(MCRDT_EINVAL, "no batch is open on this store handle");
	}
	/* Files first: a file without its op is adopted by a scan; an op
	 * without its file would be a message that cannot be read. */
	int rc = md_batch_commit(s->md);
	s->in_batch = false;
	if (rc == 0 && s->batch.n)
		rc = sync_log_append_batch(s->log, s->batch.ops, s->batch.n, NULL);
	if (rc)
		s->stale = true; /* the model holds the batch's ops: reload */
	crdt_oplist_free(&s->batch);
	return st_end(s, rc);
}

/* ---- notifications ---- */

static void watch_dirs(mcrdt_store *s)
{
	const uint32_t files = IN_CREATE | IN_DELETE | IN_MOVED_FROM | IN_MOVED_TO | IN_ONLYDIR;
	char path[4096];
	snprintf(path, sizeof path, "%s/log", s->metadir);
	inotify_add_watch(s->inotify, path, IN_MODIFY | IN_CREATE | IN_MOVED_TO | IN_ONLYDIR);
	s->root_wd = inotify_add_watch(s->inotify, s->root, files);
	char **names;
	size_t n;
	if (md_folder_list(s->md, &names, &n))
		return;
	for (size_t i = 0; i < n; i++) {
		char *d;
		if (md_folder_dir(names[i], &d))
			continue;
		static const char *const subs[] = { "new", "cur" };
		for (size_t k = 0; k < 2; k++) {
			snprintf(path, sizeof path, "%s/%s%s%s", s->root, d, *d ? "/" : "", subs[k]);
			inotify_add_watch(s->inotify, path, files);
		}
		free(d);
	}
	md_strv_free(names, n);
}

int mcrdt_store_notify_fd(mcrdt_store *s, int *fd_out)
{
	pthread_mutex_lock(&s->mu);
	int rc = 0;
	if (s->inotify < 0) {
		s->inotify = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
		if (s->inotify < 0)
			rc = err_sys(MCRDT_EIO, "cannot set up change notification (inotify)");
		else
			watch_dirs(s);
	}
	if (rc == 0)
		*fd_out = s->inotify;
	pthread_mutex_unlock(&s->mu);
	return rc;
}

int mcrdt_store_refresh(mcrdt_store *s, unsigned flags)
{
	int rc = st_begin(s);
	if (rc)
		return rc;
	if (s->inotify >= 0) {
		/* Folders made or renamed since (an event on the root, or lost
		 * events) need watches of their own. */
		bool folders = false;
		char buf[4096] __attribute__((aligned(__alignof__(struct inotify_event))));
		ssize_t len;
		while ((len = read(s->inotify, buf, sizeof buf)) > 0) {
			for (char *p = buf; p < buf + len;) {
				const struct inotify_event *ev = (const struct inotify_event *)p;
				folders |= ev->wd == s->root_wd || (ev->mask & IN_Q_OVERFLOW);
				p += sizeof *ev + ev->len;
			}
		}
		if (folders)
			watch_dirs(s);
	}
	if (flags & MCRDT_REFRESH_SCAN)
		rc = st_scan(s, NULL);
	return st_end(s, rc);
}

int mcrdt_store_scan(mcrdt_store *s, struct mcrdt_scan_report *out)
{
	int rc = st_begin(s);
	if (rc)
		return rc;
	struct mcrdt_scan_report rep = { 0 };
	rc = st_scan(s, &rep);
	if (out)
		*out = rep;
	return st_end(s, rc);
}

int mcrdt_store_set_notify(mcrdt_store *s, mcrdt_notify_fn fn, void *ctx)
{
	int rc = st_begin_read(s);
	if (rc)
		return rc;
	s->notify = NULL; /* what is there now is not news */
	for (size_t i = 0; i < s->nseen; i++)
		free(s->seen[i].name);
	s->nseen = 0;
	struct crdt_mailbox_info *v;
	size_t n;
	if ((rc = crdt_model_mailboxes(s->m, &v, &n)) == 0) {
		for (size_t i = 0; rc == 0 && i < n; i++) {
			if ((rc = GROW(s->seen, s->capseen, s->nseen + 1)))
				break;
			s->seen[s->nseen].name = v[i].name;
			s->seen[s->nseen++].modseq = v[i].highestmodseq;
			v[i].name = NULL;
		}
		crdt_mailboxes_free(v, n);
	}
	if (rc == 0) {
		s->notify = fn;
		s->notify_ctx = ctx;
	}
	return st_end(s, rc);
}

/* ---- the log ---- */

struct log_ctx {
	mcrdt_log_fn fn;
	void *ctx;
};

static int log_one(void *vctx, const crdt_op *op, uint64_t index)
{
	struct log_ctx *c = vctx;
	char text[2048];
	crdt_op_format(op, text, sizeof text);
	struct mcrdt_log_entry e = { index, op->id.replica, op->id.counter, crdt_op_type_name(op->type), text };
	return c->fn(c->ctx, &e);
}

int mcrdt_log_each(mcrdt_store *s, uint64_t from, mcrdt_log_fn fn, void *ctx)
{
	if (!fn)
		return err_set(MCRDT_EINVAL, "mcrdt_log_each: no callback");
	int rc = st_begin_read(s);
	if (rc)
		return rc;
	struct log_ctx c = { fn, ctx };
	rc = sync_log_replay(s->log, from, log_one, &c);
	return st_end(s, rc);
}
