/*
 * store/scan.c — outside changes to the Maildir become ops.
 *
 * Folders: one on disk that no mailbox names becomes a CREATE; a mailbox
 * whose folder is gone becomes a DELETE. Files, per folder (maildir's
 * md_scan says what changed since the last scan; the first scan of a
 * folder in a handle's life compares everything): a file whose base name
 * no message has becomes an APPEND (internal date from its mtime), a file
 * whose letters differ from its message's flags a FLAGS_SET, and a message
 * whose file is gone an EXPUNGE.
 *
 * Each difference is checked against the model, not taken from the scan's
 * report alone, so the handle's own renames and removals (and another
 * process's) are no news: a scan is idempotent.
 */
#define _GNU_SOURCE
#include "store/store_int.h"

#include <dirent.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define XXH_INLINE_ALL
#include <xxhash.h>

#include "common/error.h"
#include "common/grow.h"
#include "common/varint.h"
#include "store/imap.h"
#include "store/meta.h"
#include "sync/io.h"

void st_scans_free(mcrdt_store *s)
{
	for (size_t i = 0; i < s->nscans; i++) {
		free(s->scans[i].mailbox);
		md_scan_state_free(&s->scans[i].st);
	}
	free(s->scans);
	s->scans = NULL;
	s->nscans = s->capscans = 0;
}

static struct st_scan *scan_entry(const mcrdt_store *s, const char *mailbox)
{
	for (size_t i = 0; i < s->nscans; i++)
		if (strcmp(s->scans[i].mailbox, mailbox) == 0)
			return &s->scans[i];
	return NULL;
}

const struct md_scan_state *st_scan_state(mcrdt_store *s, const char *mailbox)
{
	struct st_scan *e = scan_entry(s, mailbox);
	return e && e->scanned && md_scan_state_ready(&e->st) == 0 ? &e->st : NULL;
}

/* ---- listings kept across handles ---- */

/*
 * At close, each folder's last listing that the handle read in, with its
 * own changes folded in, goes to mcrdt/scan-<hash of the mailbox name>; the next
 * handle's first scan of the folder starts from it instead of comparing
 * every file with the model. So a file unchanged since is not looked at
 * again, and a folder whose directories have not changed is not even read.
 * It is a cache: written in place without fsync (a file torn by a crash
 * fails its checksum; readers and writers hold the store's lock), and
 * ignored (everything is compared, as with no file) when damaged, when
 * written for another replica or mailbox, or when the model lacks an op it
 * had then (its log is shorter, or its op context does not include the
 * one saved: repaired or restored since; a repair also removes the files).
 * A listing older than the Maildir or the model is fine: what changed
 * since shows in the comparison, and each change is checked against the
 * model anyway. What the listing vouches for is only that the files in it
 * are known to a model that still holds every op it held.
 */
#define SCAN_MAGIC "mcrdt-scan 3\n" /* 3: when the listing began, in nanoseconds */
#define SCAN_FILE_MAX (UINT64_C(1) << 30)

static void scan_file(const char *mailbox, char out[32])
{
	snprintf(out, 32, "scan-%016" PRIx64, (uint64_t)XXH3_64bits(mailbox, strlen(mailbox)));
}

static void scan_save(mcrdt_store *s, const char *mailbox, const struct md_scan_state *st)
{
	if (st->packed)
		return; /* never read in: the file holds it as it is */
	struct vbuf b = { 0 };
	vput_bytes(&b, SCAN_MAGIC, sizeof SCAN_MAGIC - 1);
	vput(&b, s->replica);
	/* The model it is true of: its log's length and its ops' context. */
	crdt_vv vv = CRDT_VV_INIT;
	if (crdt_model_context(s->m, &vv) != 0) {
		vbuf_free(&b);
		return;
	}
	vput(&b, sync_log_next(s->log));
	vput(&b, vv.n);
	for (size_t i = 0; i < vv.n; i++) { /* (a model's context has no gaps) */
		vput(&b, vv.e[i].replica);
		vput(&b, vv.e[i].base);
	}
	crdt_vv_free(&vv);
	vput(&b, (uint64_t)st->new_mtime_ns);
	vput(&b, (uint64_t)st->cur_mtime_ns);
	vput(&b, (uint64_t)st->scanned_at_ns);
	vput_bytes(&b, mailbox, strlen(mailbox));
	md_listing_pack(&st->last, &b);
	char name[32];
	scan_file(mailbox, name);
	rewrite_file_summed(s->metadir, name, &b); /* a cache: a failure costs a full scan */
	vbuf_free(&b);
}

/* st from mailbox's saved listing, when there is a usable one. */
static void scan_load(mcrdt_store *s, const char *mailbox, struct md_scan_state *st)
{
	char name[32];
	uint8_t *d;
	size_t len;
	scan_file(mailbox, name);
	if (read_file_summed(s->metadir, name, SCAN_FILE_MAX, &d, &len) != 0)
		return;
	struct vreader r = { d, d + len, 0 };
	uint64_t magic_len = vread(&r);
	const uint8_t *magic = vread_bytes(&r, magic_len, "scan magic");
	uint64_t replica = vread(&r), pos = vread(&r), nvv = vread_max(&r, len, "scan context");
	crdt_vv saved = CRDT_VV_INIT, now = CRDT_VV_INIT;
	bool same_model = replica == s->replica && pos <= sync_log_next(s->log);
	for (uint64_t i = 0; i < nvv && !r.err; i++) {
		uint64_t rep = vread(&r), base = vread(&r);
		same_model &= rep != 0 && crdt_vv_set_base(&saved, rep, base) == 0;
	}
	same_model &= !r.err && crdt_model_context(s->m, &now) == 0 && crdt_vv_includes(&now, &saved);
	crdt_vv_free(&saved);
	crdt_vv_free(&now);
	int64_t nm = (int64_t)vread(&r), cm = (int64_t)vread(&r), at = (int64_t)vread(&r);
	uint64_t nl = vread(&r);
	const uint8_t *mb = vread_bytes(&r, nl, "scan mailbox");
	bool ok = !r.err && magic_len == sizeof SCAN_MAGIC - 1 && memcmp(magic, SCAN_MAGIC, magic_len) == 0 &&
		  same_model && nl == strlen(mailbox) && memcmp(mb, mailbox, nl) == 0;
	if (!ok) {
		free(d);
		return;
	}
	/* The entries stay as they are until a scan needs them: a quiet
	 * folder's never are. (d is st's now, or freed.) */
	if (!md_scan_state_adopt(st, d, (size_t)(r.p - d), len))
		return;
	st->new_mtime_ns = nm;
	st->cur_mtime_ns = cm;
	st->scanned_at_ns = at;
	st->valid = true;
}

void st_scans_drop_saved(const char *metadir)
{
	DIR *d = opendir(metadir);
	struct dirent *e;
	while (d && (e = readdir(d))) {
		if (strncmp(e->d_name, "scan-", 5) == 0)
			unlinkat(dirfd(d), e->d_name, 0);
	}
	if (d)
		closedir(d);
}

void st_scans_save(mcrdt_store *s)
{
	/* A listing this handle never read in (a folder it wrote to without
	 * scanning it: a delivery agent's, an IMAP session that only appends
	 * and flags) stays as kept. Folding the handle's few changes in would
	 * parse, pack and rewrite all of it (a tenth of a delivery's time at
	 * 100,000 messages); the next scan finds those files instead, one stat
	 * each, and checks them against the model, where they are no news. */
	for (size_t i = 0; i < s->nscans; i++) {
		struct st_scan *e = &s->scans[i];
		if (e->st.valid && !e->st.packed && md_scan_fold(s->md, e->mailbox, &e->st) == 0 && e->st.valid &&
		    e->st.version != e->saved)
			scan_save(s, e->mailbox, &e->st);
	}
}

/* mailbox's entry, made (from the listing kept, when usable) if need be. */
static struct st_scan *scan_state(mcrdt_store *s, const char *mailbox)
{
	struct st_scan *e = scan_entry(s, mailbox);
	if (e)
		return e;
	if (GROW(s->scans, s->capscans, s->nscans + 1))
		return NULL;
	e = &s->scans[s->nscans];
	memset(e, 0, sizeof *e);
	if (!(e->mailbox = strdup(mailbox)))
		return NULL;
	s->nscans++;
	scan_load(s, mailbox, &e->st);
	e->saved = e->st.version; /* what the file holds (if it was loaded) */
	return e;
}

/* Drops mailbox's state: its next scan starts from the listing kept, and
 * reads the folder even if its watch saw nothing new (what it saw before
 * is in the state dropped, not in the listing kept). */
static void scan_forget(mcrdt_store *s, const char *mailbox)
{
	md_scan_forget(s->md, mailbox);
	for (size_t i = 0; i < s->nscans; i++) {
		if (strcmp(s->scans[i].mailbox, mailbox) != 0)
			continue;
		free(s->scans[i].mailbox);
		md_scan_state_free(&s->scans[i].st);
		s->scans[i] = s->scans[--s->nscans];
		return;
	}
}

int st_scan_guess(mcrdt_store *s, const char *mailbox, const char *base, char **file, bool *in_new)
{
	/* (with no usable listing kept, the entry stays invalid: not loaded
	 * again at the next guess, and a scan compares in full) */
	struct st_scan *x = scan_state(s, mailbox);
	struct md_scan_state *st = x ? &x->st : NULL;
	if (!st || !st->valid || md_scan_fold(s->md, mailbox, st) != 0 || !st->valid || md_scan_state_ready(st) != 0)
		return MCRDT_ENOTFOUND;
	const struct md_entry *e = md_listing_find(&st->last, base, strlen(base));
	if (!e)
		return MCRDT_ENOTFOUND;
	*in_new = e->in_new;
	return (*file = strdup(e->file)) ? 0 : err_set(MCRDT_ENOMEM, "out of memory");
}


/* ---- one folder ---- */

struct folder {
	mcrdt_store *s;
	const char *name;
	crdt_dot guid;
	struct st_msg *msgs;       /* sorted by base name */
	size_t n;
	bool *on_disk;             /* per msgs[i], for a full comparison */
	struct md_keywords kw;
	crdt_oplist ops;
	struct mcrdt_scan_report *rep;
};

static int cmp_base(const void *a, const void *b)
{
	return strcmp(((const struct st_msg *)a)->base, ((const struct st_msg *)b)->base);
}

/* A message's base name against the first base_len bytes of file. */
static int base_cmp(const char *base, const char *file, size_t base_len)
{
	int c = strncmp(base, file, base_len);
	return c ? c : base[base_len] != '\0';
}

static struct st_msg *by_base(struct folder *f, const char *file, size_t base_len)
{
	size_t lo = 0, hi = f->n;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (base_cmp(f->msgs[mid].base, file, base_len) < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo < f->n && base_cmp(f->msgs[lo].base, file, base_len) == 0 ? &f->msgs[lo] : NULL;
}

/* The flags a file's letters stand for: system flags and, through
 * dovecot-keywords, keywords. */
static size_t disk_flags(struct folder *f, const char *letters, const char **out, unsigned *sys)
{
	size_t n = 0;
	*sys = 0;
	for (const char *p = letters; *p; p++) {
		unsigned bit = imap_letter_sysflag(*p);
		if (bit) {
			*sys |= bit;
			out[n++] = imap_sysflag_name(bit);
		} else if (*p >= 'a' && *p <= 'z' && f->kw.names[*p - 'a']) {
			out[n++] = f->kw.names[*p - 'a'];
		}
	}
	return n;
}

/* A file as the scan sees it now, x its message (NULL: none yet): import
 * it, or bring its flags over. Skipped: 1 when it may become a message
 * without its directory entry changing (an empty file, or one gone since
 * the listing), so the next scan must look at it again; 2 when only a new
 * entry can make it one (its name or type), so it stays in the listing
 * and is not reported again. */
static int reconcile(struct folder *f, const struct md_entry *e, struct st_msg *x)
{
	mcrdt_store *s = f->s;
	if (e->problem || !store_base_ok(e->file, e->base_len)) {
		f->rep->skipped++;
		return e->problem == md_problem_empty ? 1 : 2;
	}
	const char *flags[MD_FLAGS_MAX + IMAP_FLAGS_MAX];
	unsigned sys;
	size_t nf = disk_flags(f, e->flags, flags, &sys);
	if (!x) {
		/* The size peers check the body against: the file's, not what
		 * its ",S=" says (another tool may have written it wrong). */
		int fd;
		struct stat st;
		if (md_open_message(s->md, f->name, e->file, e->in_new, &fd, &st) != 0) {
			f->rep->skipped++; /* gone since the listing: the next scan sees */
			return 1;
		}
		close(fd);
		if (st.st_size == 0) {
			f->rep->skipped++; /* an empty file is no message (yet) */
			return 1;
		}
		/* (a file dated before 1970 or past 9999 is a message all the
		 * same: its date is the nearest one the meta can hold) */
		int64_t date = st.st_mtim.tv_sec < 0 ? 0 : st.st_mtim.tv_sec;
		struct store_meta meta = { e->file, e->base_len, (uint64_t)st.st_size,
					   date > STORE_META_DATE_MAX ? STORE_META_DATE_MAX : date };
		struct vbuf b = { 0 };
		int rc = store_meta_encode(&meta, &b);
		if (rc == 0)
			rc = crdt_model_append(s->m, &f->ops, f->guid, flags, nf, b.p, b.len, NULL, NULL);
		free(b.p);
		if (rc == 0)
			f->rep->added++;
		return rc;
	}
	f->on_disk[x - f->msgs] = true;
	/* Keywords the folder has no letter for cannot show on disk: kept. */
	bool same = sys == x->sys;
	size_t nletter = 0;
	for (size_t i = 0; i < x->nkw; i++) {
		if (!st_kw_letter(&f->kw, x->kw[i])) {
			if (nf < MD_FLAGS_MAX + IMAP_FLAGS_MAX)
				flags[nf++] = x->kw[i];
			continue;
		}
		nletter++;
		bool found = false;
		for (size_t k = 0; k < nf && !found; k++)
			found = strcmp(flags[k], x->kw[i]) == 0;
		same &= found;
	}
	size_t ndisk_kw = 0;
	for (const char *p = e->flags; *p; p++)
		ndisk_kw += *p >= 'a' && *p <= 'z' && f->kw.names[*p - 'a'];
	same &= ndisk_kw == nletter;
	if (same)
		return 0;
	f->rep->flags_changed++;
	return crdt_model_flags(s->m, &f->ops, x->guid, CRDT_OP_FLAGS_SET, flags, nf);
}

static int scan_folder(mcrdt_store *s, const char *name, struct mcrdt_scan_report *rep)
{
	struct st_scan *entry = scan_state(s, name);
	if (!entry)
		return err_set(MCRDT_ENOMEM, "out of memory");
	struct md_scan_state *st = &entry->st;
	bool full = !st->valid;
	struct md_changes ch = { 0 };
	int rc = md_scan(s->md, name, st, full ? NULL : &ch);
	entry->scanned = rc == 0;
	if (rc || (!full && ch.n == 0)) {
		md_changes_free(&ch);
		return rc;
	}
	struct folder f = { s, name, { 0, 0 }, NULL, 0, NULL, { { 0 } }, CRDT_OPLIST_INIT, rep };
	if ((rc = st_find(s, name, &f.guid)) == 0)
		rc = st_collect(s, f.guid, NULL, &f.msgs, &f.n);
	if (rc == 0 && f.n)
		qsort(f.msgs, f.n, sizeof *f.msgs, cmp_base);
	if (rc == 0 && !(f.on_disk = calloc(f.n ? f.n : 1, sizeof *f.on_disk)))
		rc = err_set(MCRDT_ENOMEM, "out of memory");
	if (rc == 0)
		rc = md_keywords_load(s->md, name, &f.kw);
	/* Files skipped leave the listing, so that the next scan reports them
	 * again (an empty file being written under its final name gets its
	 * content without a rename). */
	bool *again = rc == 0 ? calloc(st->last.n ? st->last.n : 1, sizeof *again) : NULL;
	if (rc == 0 && !again)
		rc = err_set(MCRDT_ENOMEM, "out of memory");
	if (full) {
		/* Both sorted by base name: one pass over the two. */
		size_t j = 0;
		for (size_t i = 0; rc == 0 && i < st->last.n; i++) {
			const struct md_entry *e = &st->last.e[i];
			int c = -1;
			while (j < f.n && (c = base_cmp(f.msgs[j].base, e->file, e->base_len)) < 0)
				j++;
			if ((rc = reconcile(&f, e, c == 0 ? &f.msgs[j] : NULL)) > 0) {
				again[i] = rc == 1;
				rc = 0;
			}
		}
		for (size_t i = 0; rc == 0 && i < f.n; i++) {
			if (f.on_disk[i])
				continue;
			if ((rc = crdt_model_expunge(s->m, &f.ops, f.msgs[i].guid)) == 0)
				rep->vanished++;
		}
	}
	for (size_t i = 0; rc == 0 && !full && i < ch.n; i++) {
		const struct md_entry *e = &ch.c[i].entry;
		struct st_msg *x = by_base(&f, e->file, e->base_len);
		const struct md_entry *now = md_listing_find(&st->last, e->file, e->base_len);
		if (ch.c[i].kind != MD_VANISHED) {
			if ((rc = reconcile(&f, e, x)) == 1 && now)
				again[now - st->last.e] = true;
			rc = rc > 0 ? 0 : rc;
			continue;
		}
		/* The same base may have reappeared under new letters. */
		bool back = now != NULL;
		if (x && !back && (rc = crdt_model_expunge(s->m, &f.ops, x->guid)) == 0)
			rep->vanished++;
	}
	if ((rc = st_commit(s, &f.ops, rc))) {
		scan_forget(s, name); /* look at everything again next time */
	} else {
		md_scan_unsee(st, again);
	}
	free(again);
	md_keywords_free(&f.kw);
	free(f.on_disk);
	st_msgs_free(f.msgs, f.n);
	md_changes_free(&ch);
	return rc;
}

/* ---- the whole tree ---- */

int st_scan(mcrdt_store *s, struct mcrdt_scan_report *out)
{
	struct mcrdt_scan_report rep = { 0 };
	char **disk = NULL;
	size_t ndisk = 0;
	struct crdt_mailbox_info *v = NULL;
	size_t nv = 0;
	crdt_oplist ops = CRDT_OPLIST_INIT;
	/* (A sync cut short finished first, in st_begin or at open: its files
	 * are not outside changes.) */
	int rc = md_folder_list(s->md, &disk, &ndisk);
	if (rc == 0)
		rc = crdt_model_mailboxes(s->m, &v, &nv);
	/* Folders made by other tools. */
	for (size_t i = 0; rc == 0 && i < ndisk; i++) {
		crdt_dot g;
		char *checked;
		if (crdt_model_find(s->m, disk[i], &g) == 0)
			continue;
		if (st_mailbox_name(disk[i], &checked) != 0) {
			rep.skipped++;
			continue;
		}
		free(checked);
		if ((rc = crdt_model_create(s->m, &ops, disk[i], (uint32_t)time(NULL), NULL)) == 0)
			rep.folders_added++;
	}
	/* Folders removed by other tools. */
	for (size_t i = 0; rc == 0 && i < nv; i++) {
		bool there = strcmp(v[i].name, "INBOX") == 0;
		for (size_t k = 0; k < ndisk && !there; k++)
			there = strcmp(disk[k], v[i].name) == 0;
		if (there)
			continue;
		if ((rc = crdt_model_delete(s->m, &ops, v[i].guid)) == 0)
			rep.folders_removed++;
		scan_forget(s, v[i].name);
	}
	rc = st_commit(s, &ops, rc);
	for (size_t i = 0; rc == 0 && i < ndisk; i++) {
		crdt_dot g;
		if (crdt_model_find(s->m, disk[i], &g) == 0)
			rc = scan_folder(s, disk[i], &rep);
	}
	crdt_mailboxes_free(v, nv);
	md_strv_free(disk, ndisk);
	if (out)
		*out = rep;
	return rc;
}
