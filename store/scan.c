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

#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "common/error.h"
#include "common/grow.h"
#include "common/varint.h"
#include "store/imap.h"
#include "store/meta.h"

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

const struct md_scan_state *st_scan_state(const mcrdt_store *s, const char *mailbox)
{
	for (size_t i = 0; i < s->nscans; i++)
		if (strcmp(s->scans[i].mailbox, mailbox) == 0)
			return &s->scans[i].st;
	return NULL;
}

static struct md_scan_state *scan_state(mcrdt_store *s, const char *mailbox)
{
	const struct md_scan_state *known = st_scan_state(s, mailbox);
	if (known)
		return (struct md_scan_state *)known;
	if (GROW(s->scans, s->capscans, s->nscans + 1))
		return NULL;
	struct st_scan *e = &s->scans[s->nscans];
	memset(e, 0, sizeof *e);
	if (!(e->mailbox = strdup(mailbox)))
		return NULL;
	s->nscans++;
	return &e->st;
}

static void scan_forget(mcrdt_store *s, const char *mailbox)
{
	for (size_t i = 0; i < s->nscans; i++) {
		if (strcmp(s->scans[i].mailbox, mailbox) != 0)
			continue;
		free(s->scans[i].mailbox);
		md_scan_state_free(&s->scans[i].st);
		s->scans[i] = s->scans[--s->nscans];
		return;
	}
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
 * it, or bring its flags over. */
static int reconcile(struct folder *f, const struct md_entry *e, struct st_msg *x)
{
	mcrdt_store *s = f->s;
	if (e->problem || !store_base_ok(e->file, e->base_len)) {
		f->rep->skipped++;
		return 0;
	}
	const char *flags[MD_FLAGS_MAX + IMAP_FLAGS_MAX];
	unsigned sys;
	size_t nf = disk_flags(f, e->flags, flags, &sys);
	if (!x) {
		/* The size peers check the body against: the file's, not what
		 * its ",S=" says (another tool may have written it wrong). */
		int fd;
		struct stat st;
		if (md_open_message(s->md, f->name, e->file, e->in_new, &fd) != 0) {
			f->rep->skipped++; /* gone since the listing: the next scan sees */
			return 0;
		}
		int sr = fstat(fd, &st);
		close(fd);
		if (sr != 0 || st.st_size == 0) {
			f->rep->skipped++; /* an empty file is no message (yet) */
			return 0;
		}
		struct store_meta meta = { e->file, e->base_len, (uint64_t)st.st_size, st.st_mtim.tv_sec };
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
	struct md_scan_state *st = scan_state(s, name);
	if (!st)
		return err_set(MCRDT_ENOMEM, "out of memory");
	bool full = !st->valid;
	struct md_changes ch = { 0 };
	int rc = md_scan(s->md, name, st, full ? NULL : &ch);
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
	if (full) {
		/* Both sorted by base name: one pass over the two. */
		size_t j = 0;
		for (size_t i = 0; rc == 0 && i < st->last.n; i++) {
			const struct md_entry *e = &st->last.e[i];
			int c = -1;
			while (j < f.n && (c = base_cmp(f.msgs[j].base, e->file, e->base_len)) < 0)
				j++;
			rc = reconcile(&f, e, c == 0 ? &f.msgs[j] : NULL);
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
		if (ch.c[i].kind != MD_VANISHED) {
			rc = reconcile(&f, e, x);
			continue;
		}
		/* The same base may have reappeared under new letters. */
		char *base = strndup(e->file, e->base_len);
		if (!base) {
			rc = err_set(MCRDT_ENOMEM, "out of memory");
			break;
		}
		bool back = st_listing_find(&st->last, base) != NULL;
		free(base);
		if (x && !back && (rc = crdt_model_expunge(s->m, &f.ops, x->guid)) == 0)
			rep->vanished++;
	}
	if ((rc = st_commit(s, &f.ops, rc)))
		scan_forget(s, name); /* look at everything again next time */
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
	/* A sync cut short finishes first: its files are not outside changes. */
	int rc = st_journal_recover(s);
	if (rc == 0)
		rc = md_folder_list(s->md, &disk, &ndisk);
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
