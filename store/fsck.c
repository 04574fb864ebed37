/*
 * store/fsck.c — checking a store, and repairing it: every log record is
 * read and checked, the state is rebuilt from the snapshot and the log,
 * and every message's file is looked for. A repair cuts a damaged log at
 * the damage (setting the rest aside, never deleting it) and then scans,
 * so every message file on disk is adopted again.
 */
#define _GNU_SOURCE
#include "store/store_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h> /* LOCK_EX */
#include <sys/stat.h>
#include <unistd.h>

#include "common/error.h"
#include "sync/snapshot.h"

/* Counts messages without a file and files without a message. */
static int check_files(mcrdt_store *s, struct mcrdt_fsck_report *rep)
{
	struct crdt_mailbox_info *v = NULL;
	size_t nv = 0;
	int rc = crdt_model_mailboxes(s->m, &v, &nv);
	for (size_t i = 0; rc == 0 && i < nv; i++) {
		struct st_msg *msgs = NULL;
		size_t n = 0, known = 0;
		struct md_listing l = { 0 };
		if ((rc = st_collect(s, v[i].guid, NULL, &msgs, &n)))
			break;
		rc = md_list(s->md, v[i].name, &l);
		if (rc == MCRDT_ENOTFOUND) {
			rc = 0; /* no folder: every message is missing */
		}
		for (size_t k = 0; rc == 0 && k < n; k++) {
			bool found = md_listing_find(&l, msgs[k].base, strlen(msgs[k].base)) != NULL;
			known += found;
			rep->missing_files += !found;
		}
		size_t usable = 0;
		for (size_t j = 0; j < l.n; j++)
			usable += l.e[j].problem == NULL;
		rep->untracked_files += usable > known ? usable - known : 0;
		md_listing_free(&l);
		st_msgs_free(msgs, n);
	}
	crdt_mailboxes_free(v, nv);
	return rc;
}

int mcrdt_fsck(const char *dir, bool repair, struct mcrdt_fsck_report *out)
{
	struct mcrdt_fsck_report rep;
	memset(&rep, 0, sizeof rep);
	char metadir[4096], logdir[4200], probe[4200];
	snprintf(metadir, sizeof metadir, "%s/" MD_META_DIR, dir);
	snprintf(logdir, sizeof logdir, "%s/log", metadir);
	snprintf(probe, sizeof probe, "%s/replica", metadir);
	struct stat st;
	if (stat(probe, &st) != 0)
		return err_set(MCRDT_ENOTFOUND, "%s is not an mcrdt store (no %s)", dir, probe);
	/* A check waits for no writer; a repair needs the store to itself. */
	int lockfd = -1, rc = repair ? st_lock_file(metadir, "open", LOCK_EX, 0, "close it everywhere before a repair", &lockfd)
				     : st_lock_file(metadir, "lock", LOCK_EX, 30000, NULL, &lockfd);
	if (rc)
		return rc;
	struct sync_log_opts lo = SYNC_LOG_OPTS_INIT;
	struct sync_log_report lrep = { 0 };
	sync_log *log = NULL;
	bool damaged = false;
	rc = sync_log_open(&log, logdir, &lo, &lrep); /* verify_from 0: every record */
	if (rc == MCRDT_ECORRUPT || rc == MCRDT_EVERSION) {
		damaged = true;
		snprintf(rep.damage, sizeof rep.damage, "%s", mcrdt_error_last());
	}
	sync_log_close(log);
	rep.records = lrep.records;
	rep.torn_bytes = lrep.torn_bytes;
	if (damaged && repair && rc == MCRDT_ECORRUPT) {
		struct sync_log_report r2 = { 0 };
		rc = sync_log_repair(logdir, &r2);
		st_scans_drop_saved(metadir); /* they vouch for ops that may be gone */
		rep.records = r2.records;
		rep.torn_bytes = r2.torn_bytes;
		rep.set_aside = r2.set_aside + (r2.torn_bytes ? 1 : 0);
		/* A snapshot past the repaired end counts on records that are now
		 * set aside: set it aside too; the scan below adopts the files. */
		crdt_model *m = NULL;
		uint64_t upto = 0;
		if (rc == 0 && sync_snapshot_read(metadir, &m, &upto) == 0 && upto > r2.records) {
			char from[4200], to[4300];
			snprintf(from, sizeof from, "%s/snapshot", metadir);
			snprintf(to, sizeof to, "%s/snapshot.damaged", metadir);
			if (rename(from, to) != 0)
				rc = err_sys(MCRDT_EIO, "cannot set %s aside", from);
			rep.set_aside++;
		}
		crdt_model_free(m);
	} else if (damaged) {
		close(lockfd);
		if (out)
			*out = rep;
		return err_set(MCRDT_ECORRUPT, "%s", rep.damage);
	} else {
		rc = 0;
	}
	close(lockfd);
	mcrdt_store *s = NULL;
	if (rc == 0)
		rc = mcrdt_store_open(&s, dir, NULL);
	if (rc == 0 && repair)
		rc = mcrdt_store_scan(s, NULL);
	if (rc == 0 && (rc = st_begin(s)) == 0)
		rc = st_end(s, check_files(s, &rep));
	mcrdt_store_close(s);
	if (out)
		*out = rep;
	if (rc)
		return rc;
	if (rep.missing_files)
		return err_set(MCRDT_ECORRUPT, "%llu message(s) have no file in the Maildir (mcrdt fsck --repair "
			       "expunges them)", (unsigned long long)rep.missing_files);
	return 0;
}
