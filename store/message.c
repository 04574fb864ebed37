/*
 * store/message.c — messages: APPEND, SELECT and its view's sync, FETCH,
 * STORE, COPY/MOVE, EXPUNGE, SEARCH and VANISHED.
 */
#define _GNU_SOURCE
#include "store/store_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "common/error.h"
#include "common/grow.h"
#include "common/varint.h"
#include "store/imap.h"
#include "store/meta.h"

/* ---- flags given by the caller ---- */

struct flagset {
	const char *v[IMAP_FLAGS_MAX]; /* canonical spellings */
	size_t n;
	unsigned sys;
	char *kw[IMAP_FLAGS_MAX];
	size_t nkw;
};

static int flagset_make(const char *const *flags, size_t n, struct flagset *out)
{
	memset(out, 0, sizeof *out);
	if (n > IMAP_FLAGS_MAX)
		return err_set(MCRDT_ETOOBIG, "%zu flags in one call, at most %d", n, IMAP_FLAGS_MAX);
	for (size_t i = 0; i < n; i++) {
		const char *canon;
		unsigned sys;
		int rc = imap_flag_check(flags[i], &canon, &sys);
		if (rc)
			return rc;
		bool dup = false;
		for (size_t k = 0; k < out->n && !dup; k++)
			dup = strcasecmp(out->v[k], canon) == 0;
		if (dup)
			continue;
		out->v[out->n++] = canon;
		out->sys |= sys;
		if (!sys)
			out->kw[out->nkw++] = (char *)canon;
	}
	return 0;
}

/* ---- APPEND ---- */

int mcrdt_append(mcrdt_store *s, const char *mailbox, const void *data, size_t len,
		 const struct mcrdt_append_opts *opts, uint32_t *uidvalidity_out, uint32_t *uid_out)
{
	static const struct mcrdt_append_opts defaults = MCRDT_APPEND_OPTS_INIT;
	if (!opts)
		opts = &defaults;
	if (opts->version != MCRDT_APPEND_OPTS_VERSION)
		return err_set(MCRDT_EVERSION, "mcrdt_append_opts version %u not supported", opts->version);
	if (!data && len)
		return err_set(MCRDT_EINVAL, "mcrdt_append: no data");
	if (s->opts.append_limit && len > s->opts.append_limit)
		return err_set(MCRDT_ETOOBIG, "message of %zu bytes is over the store's limit of %llu bytes", len,
			       (unsigned long long)s->opts.append_limit);
	int64_t date = opts->internaldate < 0 ? (int64_t)time(NULL) : opts->internaldate;
	if (date > STORE_META_DATE_MAX)
		return err_set(MCRDT_EINVAL, "internal date %lld is past the year 9999", (long long)date);
	struct flagset fs;
	char *name;
	int rc = flagset_make(opts->flags, opts->nflags, &fs);
	if (rc)
		return rc;
	if ((rc = st_mailbox_name(mailbox, &name)))
		return rc;
	if ((rc = st_begin(s))) {
		free(name);
		return rc;
	}
	crdt_dot g, guid;
	char letters[MD_FLAGS_MAX + 1], *file = NULL;
	uint32_t uid = 0;
	struct vbuf meta = { 0 };
	struct md_keywords kw = { { 0 } };
	crdt_oplist ops = CRDT_OPLIST_INIT;
	if ((rc = st_find(s, name, &g)) == 0 && (rc = md_keywords_load(s->md, name, &kw)) == 0 &&
	    (rc = st_kw_assign(s, name, &kw, fs.kw, fs.nkw)) == 0)
		rc = st_letters(&kw, fs.sys, fs.kw, fs.nkw, letters);
	md_keywords_free(&kw);
	if (rc == 0) {
		struct md_deliver_opts o = MD_DELIVER_OPTS_INIT;
		o.flags = fs.n ? letters : NULL;
		o.mtime = date;
		rc = md_deliver(s->md, name, data, len, &o, &file);
	}
	if (rc == 0)
		rc = st_make_meta(file, len, date, &meta);
	if (rc == 0)
		rc = crdt_model_append(s->m, &ops, g, fs.v, fs.n, meta.p, meta.len, &guid, &uid);
	if (rc && file)
		md_remove(s->md, name, file, !fs.n); /* refused: take the file back (in a batch, from tmp/) */
	rc = st_commit(s, &ops, rc);
	struct crdt_mailbox_info info;
	if (rc == 0 && uidvalidity_out && (rc = st_view(s, g, &info, NULL)) == 0)
		*uidvalidity_out = info.uidvalidity;
	if (rc == 0 && uid_out)
		*uid_out = uid;
	free(meta.p);
	free(file);
	free(name);
	return st_end(s, rc);
}

/* ---- SELECT and the session's view ---- */

struct uids_ctx {
	uint32_t *v;
	size_t n, cap;
};

static int uid_one(void *ctx, const struct crdt_msgview *mv)
{
	struct uids_ctx *c = ctx;
	int rc = GROW(c->v, c->cap, c->n + 1);
	if (rc == 0)
		c->v[c->n++] = mv->uid;
	return rc;
}

static int view_uids(mcrdt_store *s, crdt_dot guid, struct uids_ctx *out)
{
	out->n = 0;
	return crdt_model_each(s->m, guid, 1, UINT32_MAX, uid_one, out);
}

int mcrdt_mailbox_select(mcrdt_store *s, const char *name, mcrdt_mailbox **out)
{
	char *n;
	int rc = st_mailbox_name(name, &n);
	if (rc)
		return rc;
	mcrdt_mailbox *mb = calloc(1, sizeof *mb);
	if (!mb) {
		free(n);
		return err_set(MCRDT_ENOMEM, "out of memory");
	}
	if ((rc = st_begin_read(s))) {
		free(n);
		free(mb);
		return rc;
	}
	mb->s = s;
	struct crdt_mailbox_info info;
	struct uids_ctx u = { NULL, 0, 0 };
	if ((rc = st_find(s, n, &mb->guid)) == 0 && (rc = st_view(s, mb->guid, &info, NULL)) == 0 &&
	    (rc = view_uids(s, mb->guid, &u)) == 0) {
		mb->uidvalidity = info.uidvalidity;
		mb->modseq = info.highestmodseq;
		mb->uids = u.v;
		mb->n = u.n;
		mb->cap = u.cap;
		*out = mb;
	} else {
		free(u.v);
		free(mb);
	}
	free(n);
	return st_end(s, rc);
}

void mcrdt_mailbox_close(mcrdt_mailbox *mb)
{
	if (mb) {
		free(mb->uids);
		free(mb);
	}
}

int mcrdt_mailbox_info(mcrdt_mailbox *mb, struct mcrdt_select_info *out)
{
	mcrdt_store *s = mb->s;
	int rc = st_begin_read(s);
	if (rc)
		return rc;
	struct crdt_mailbox_info info;
	if ((rc = st_view(s, mb->guid, &info, NULL)) == 0) {
		out->exists = (uint32_t)mb->n;
		out->uidvalidity = mb->uidvalidity;
		out->uidnext = info.uidnext;
		out->highestmodseq = info.highestmodseq;
	}
	return st_end(s, rc);
}

/* One walk for mcrdt_mailbox_sync: every UID of the view now, and those
 * of the session's view changed since its MODSEQ. */
struct sync_walk {
	const mcrdt_mailbox *mb;
	struct uids_ctx now, changed;
};

/* The index of the first UID of the session's view >= uid. */
static size_t lower_bound(const mcrdt_mailbox *mb, uint32_t uid)
{
	size_t lo = 0, hi = mb->n;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (mb->uids[mid] < uid)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

static bool in_view(const mcrdt_mailbox *mb, uint32_t uid, size_t *seq)
{
	size_t k = lower_bound(mb, uid);
	if (k < mb->n && mb->uids[k] == uid) {
		if (seq)
			*seq = k + 1;
		return true;
	}
	return false;
}

static int sync_one(void *ctx, const struct crdt_msgview *mv)
{
	struct sync_walk *c = ctx;
	int rc = uid_one(&c->now, mv);
	if (rc || mv->modseq <= c->mb->modseq || !in_view(c->mb, mv->uid, NULL))
		return rc;
	return uid_one(&c->changed, mv);
}

int mcrdt_mailbox_sync(mcrdt_mailbox *mb, struct mcrdt_sync *out)
{
	mcrdt_store *s = mb->s;
	memset(out, 0, sizeof *out);
	int rc = st_begin_read(s);
	if (rc)
		return rc;
	struct crdt_mailbox_info info;
	struct sync_walk w = { mb, { NULL, 0, 0 }, { NULL, 0, 0 } };
	rc = st_view(s, mb->guid, &info, NULL);
	if (rc == MCRDT_ENOTFOUND && crdt_model_each(s->m, mb->guid, 1, 0, uid_one, &w.now) == 0) {
		/* Still there, but another mailbox now leads its view. */
		out->uidvalidity_changed = true;
		rc = 0;
		goto done;
	}
	if (rc)
		goto done;
	if (info.uidvalidity != mb->uidvalidity) {
		out->uidvalidity_changed = true;
		goto done;
	}
	if ((rc = crdt_model_each(s->m, mb->guid, 1, UINT32_MAX, sync_one, &w)))
		goto done;
	/* Sequence numbers of vanished UIDs, highest first. */
	uint32_t *gone = malloc((mb->n ? mb->n : 1) * sizeof *gone);
	if (!gone) {
		rc = err_set(MCRDT_ENOMEM, "out of memory");
		goto done;
	}
	size_t ngone = 0, k = 0;
	for (size_t i = 0; i < mb->n; i++) {
		while (k < w.now.n && w.now.v[k] < mb->uids[i])
			k++;
		if (k == w.now.n || w.now.v[k] != mb->uids[i])
			gone[ngone++] = (uint32_t)(i + 1);
	}
	for (size_t i = 0; i < ngone / 2; i++) {
		uint32_t t = gone[i];
		gone[i] = gone[ngone - 1 - i];
		gone[ngone - 1 - i] = t;
	}
	out->expunged = gone;
	out->nexpunged = ngone;
	out->changed = w.changed.v;
	out->nchanged = w.changed.n;
	w.changed.v = NULL;
	out->exists = (uint32_t)w.now.n;
	out->uidnext = info.uidnext;
	out->highestmodseq = info.highestmodseq;
	free(mb->uids);
	mb->uids = w.now.v;
	mb->n = w.now.n;
	mb->cap = w.now.cap;
	w.now.v = NULL;
	mb->modseq = info.highestmodseq;
done:
	free(w.now.v);
	free(w.changed.v);
	return st_end(s, rc);
}

void mcrdt_sync_free(struct mcrdt_sync *r)
{
	if (r) {
		free(r->expunged);
		free(r->changed);
		memset(r, 0, sizeof *r);
	}
}

/* ---- sets of the session's messages ---- */

/* The UIDs of the session's view that set names. */
static int resolve(const mcrdt_mailbox *mb, const char *text, enum mcrdt_set_kind kind, struct imap_set *out)
{
	if (kind != MCRDT_SEQ && kind != MCRDT_UID)
		return err_set(MCRDT_EINVAL, "set kind %d is neither MCRDT_SEQ nor MCRDT_UID", (int)kind);
	struct imap_set raw = IMAP_SET_INIT;
	uint32_t star = kind == MCRDT_UID ? (mb->n ? mb->uids[mb->n - 1] : 0) : (uint32_t)mb->n;
	int rc = imap_set_parse(text, star, &raw);
	imap_set_free(out);
	for (size_t i = 0; rc == 0 && i < raw.n; i++) {
		if (kind == MCRDT_SEQ) {
			for (uint64_t q = raw.r[i].lo; rc == 0 && q <= raw.r[i].hi && q <= mb->n; q++)
				rc = imap_set_add(out, mb->uids[q - 1], mb->uids[q - 1]);
		} else {
			for (size_t k = lower_bound(mb, raw.r[i].lo); rc == 0 && k < mb->n && mb->uids[k] <= raw.r[i].hi; k++)
				rc = imap_set_add(out, mb->uids[k], mb->uids[k]);
		}
	}
	imap_set_free(&raw);
	return rc;
}

/* The session's messages in set, as they are now (expunged ones left out). */
static int session_msgs(mcrdt_mailbox *mb, const char *text, enum mcrdt_set_kind kind, struct st_msg **v,
			size_t *n)
{
	struct imap_set set = IMAP_SET_INIT;
	int rc = text ? resolve(mb, text, kind, &set) : 0;
	if (rc == 0 && !text && mb->n)
		for (size_t k = 0; rc == 0 && k < mb->n; k++)
			rc = imap_set_add(&set, mb->uids[k], mb->uids[k]);
	*v = NULL;
	*n = 0;
	if (rc == 0 && set.n)
		rc = st_collect(mb->s, mb->guid, &set, v, n);
	imap_set_free(&set);
	return rc;
}

/* ---- FETCH ---- */

int mcrdt_fetch(mcrdt_mailbox *mb, const char *set, enum mcrdt_set_kind kind, struct mcrdt_message **out,
		size_t *nout)
{
	mcrdt_store *s = mb->s;
	if (!set)
		return err_set(MCRDT_EINVAL, "mcrdt_fetch: no set");
	int rc = st_begin_read(s);
	if (rc)
		return rc;
	struct st_msg *v;
	size_t n;
	if ((rc = session_msgs(mb, set, kind, &v, &n)))
		return st_end(s, rc);
	struct mcrdt_message *r = calloc(n ? n : 1, sizeof *r);
	if (!r)
		rc = err_set(MCRDT_ENOMEM, "out of memory");
	for (size_t i = 0; rc == 0 && i < n; i++) {
		const struct st_msg *x = &v[i];
		size_t seq = 0;
		in_view(mb, x->uid, &seq);
		r[i].seq = (uint32_t)seq;
		r[i].uid = x->uid;
		st_guid_hex(x->guid, r[i].guid);
		r[i].sysflags = x->sys; /* the IMAP_* bits are the MCRDT_FLAG_* bits */
		r[i].size = x->size;
		r[i].internaldate = x->date;
		r[i].modseq = x->modseq;
		size_t nf = x->nkw, bytes = 0;
		for (unsigned bit = 1; bit <= IMAP_DRAFT; bit <<= 1)
			nf += !!(x->sys & bit);
		for (size_t k = 0; k < x->nkw; k++)
			bytes += strlen(x->kw[k]) + 1;
		/* One block: the pointers, then the keyword strings. */
		if (!(r[i].flags = malloc((nf ? nf : 1) * sizeof(char *) + bytes))) {
			rc = err_set(MCRDT_ENOMEM, "out of memory");
			break;
		}
		char *p = (char *)(r[i].flags + nf);
		for (unsigned bit = 1; bit <= IMAP_DRAFT; bit <<= 1)
			if (x->sys & bit)
				r[i].flags[r[i].nflags++] = (char *)imap_sysflag_name(bit);
		for (size_t k = 0; k < x->nkw; k++) {
			size_t len = strlen(x->kw[k]) + 1;
			memcpy(p, x->kw[k], len);
			r[i].flags[r[i].nflags++] = p;
			p += len;
		}
	}
	st_msgs_free(v, n);
	if (rc) {
		mcrdt_messages_free(r, n);
	} else {
		*out = r;
		*nout = n;
	}
	return st_end(s, rc);
}

void mcrdt_messages_free(struct mcrdt_message *v, size_t n)
{
	for (size_t i = 0; v && i < n; i++)
		free(v[i].flags);
	free(v);
}

/* The message uid of mb's session, as it is now: its folder (*folder,
 * malloc'd), its record (*v, one; st_msgs_free) and the folder's keywords
 * (*kw, md_keywords_free). */
static int one_msg(mcrdt_mailbox *mb, uint32_t uid, char **folder, struct st_msg **v, struct md_keywords *kw)
{
	mcrdt_store *s = mb->s;
	struct imap_set set = IMAP_SET_INIT;
	size_t n = 0;
	*v = NULL;
	int rc = in_view(mb, uid, NULL) ? imap_set_add(&set, uid, uid)
					 : err_set(MCRDT_ENOTFOUND, "no message with UID %u in this session", uid);
	if (rc == 0)
		rc = st_collect(s, mb->guid, &set, v, &n);
	if (rc == 0 && n == 0)
		rc = err_set(MCRDT_ENOTFOUND, "message UID %u was expunged", uid);
	if (rc == 0 && (rc = st_view(s, mb->guid, NULL, folder)) == 0 && (rc = md_keywords_load(s->md, *folder, kw)))
		free(*folder);
	if (rc) {
		st_msgs_free(*v, n);
		*v = NULL;
	}
	imap_set_free(&set);
	return rc;
}

int mcrdt_message_open(mcrdt_mailbox *mb, uint32_t uid, int *fd_out)
{
	mcrdt_store *s = mb->s;
	int rc = st_begin_read(s);
	if (rc)
		return rc;
	char *folder;
	struct st_msg *v;
	struct md_keywords kw = { { 0 } };
	if ((rc = one_msg(mb, uid, &folder, &v, &kw)) == 0) {
		rc = st_open_body(s, folder, &kw, &v[0], fd_out, NULL, NULL); /* found by opening it */
		st_msgs_free(v, 1);
		free(folder);
	}
	md_keywords_free(&kw);
	return st_end(s, rc);
}

int mcrdt_message_path(mcrdt_mailbox *mb, uint32_t uid, char **path_out)
{
	mcrdt_store *s = mb->s;
	int rc = st_begin_read(s);
	if (rc)
		return rc;
	char *folder, *file = NULL, *dir = NULL;
	struct st_msg *v;
	struct md_keywords kw = { { 0 } };
	bool in_new;
	if ((rc = one_msg(mb, uid, &folder, &v, &kw)) == 0) {
		if ((rc = st_locate(s, folder, &kw, &v[0], &file, &in_new)) == 0 &&
		    (rc = md_folder_dir(folder, &dir)) == 0 &&
		    asprintf(path_out, "%s/%s%s%s/%s", s->root, dir, *dir ? "/" : "", in_new ? "new" : "cur", file) < 0)
			rc = err_set(MCRDT_ENOMEM, "out of memory");
		st_msgs_free(v, 1);
		free(dir);
		free(folder);
		free(file);
	}
	md_keywords_free(&kw);
	return st_end(s, rc);
}

/* ---- STORE ---- */

/* Whether the STORE would change x's flags. */
static bool would_change(const struct st_msg *x, enum mcrdt_flags_mode mode, const struct flagset *fs)
{
	switch (mode) {
	case MCRDT_FLAGS_ADD:
		if ((x->sys | fs->sys) != x->sys)
			return true;
		for (size_t i = 0; i < fs->nkw; i++)
			if (!st_has_kw(x, fs->kw[i]))
				return true;
		return false;
	case MCRDT_FLAGS_REMOVE:
		if (x->sys & fs->sys)
			return true;
		for (size_t i = 0; i < fs->nkw; i++)
			if (st_has_kw(x, fs->kw[i]))
				return true;
		return false;
	default:
		if (x->sys != fs->sys || x->nkw != fs->nkw)
			return true;
		for (size_t i = 0; i < fs->nkw; i++)
			if (!st_has_kw(x, fs->kw[i]))
				return true;
		return false;
	}
}

/* The flags x has after the STORE: into sys and kw (pointers into x and fs). */
static size_t after_store(const struct st_msg *x, enum mcrdt_flags_mode mode, const struct flagset *fs,
			  unsigned *sys, char **kw)
{
	size_t n = 0;
	if (mode == MCRDT_FLAGS_SET) {
		*sys = fs->sys;
		for (size_t i = 0; i < fs->nkw; i++)
			kw[n++] = fs->kw[i];
		return n;
	}
	*sys = mode == MCRDT_FLAGS_ADD ? x->sys | fs->sys : x->sys & ~fs->sys;
	for (size_t i = 0; i < x->nkw; i++) {
		bool listed = false;
		for (size_t k = 0; k < fs->nkw && !listed; k++)
			listed = strcasecmp(fs->kw[k], x->kw[i]) == 0;
		if (mode == MCRDT_FLAGS_ADD || !listed)
			kw[n++] = x->kw[i];
	}
	for (size_t k = 0; mode == MCRDT_FLAGS_ADD && k < fs->nkw && n < IMAP_FLAGS_MAX * 2; k++)
		if (!st_has_kw(x, fs->kw[k]))
			kw[n++] = fs->kw[k];
	return n;
}

/* Renames x's file to carry its new flags: found again if another program
 * renamed it meanwhile (the later rename wins); a file gone is left to
 * the next scan. */
static int rename_flags(mcrdt_store *s, const char *folder, const struct md_keywords *kw, const struct st_msg *x,
			unsigned sys, char **names, size_t n)
{
	char letters[MD_FLAGS_MAX + 1];
	int rc = st_letters(kw, sys, names, n, letters);
	if (rc == 0)
		rc = st_refile(s, folder, kw, x, NULL, letters);
	return rc == MCRDT_ENOTFOUND ? 0 : rc;
}

int mcrdt_store_flags(mcrdt_mailbox *mb, const char *set, enum mcrdt_set_kind kind, enum mcrdt_flags_mode mode,
		      const char *const *flags, size_t nflags, uint64_t unchangedsince, uint32_t **modified,
		      size_t *nmodified)
{
	mcrdt_store *s = mb->s;
	struct flagset fs;
	static const enum crdt_op_type types[] = { 0, CRDT_OP_FLAGS_ADD, CRDT_OP_FLAGS_REMOVE, CRDT_OP_FLAGS_SET };
	if (mode < MCRDT_FLAGS_ADD || mode > MCRDT_FLAGS_SET)
		return err_set(MCRDT_EINVAL, "flags mode %d is not add, remove or set", (int)mode);
	if (!set)
		return err_set(MCRDT_EINVAL, "mcrdt_store_flags: no set");
	int rc = flagset_make(flags, nflags, &fs);
	if (rc || (rc = st_begin(s)))
		return rc;
	struct st_msg *v = NULL;
	size_t n = 0;
	char *folder = NULL;
	struct uids_ctx mod = { NULL, 0, 0 };
	crdt_oplist ops = CRDT_OPLIST_INIT;
	struct md_keywords kw = { { 0 } };
	if ((rc = session_msgs(mb, set, kind, &v, &n)) == 0 && (rc = st_view(s, mb->guid, NULL, &folder)) == 0 &&
	    (rc = md_keywords_load(s->md, folder, &kw)) == 0 && (rc = st_kw_assign(s, folder, &kw, fs.kw, fs.nkw)) == 0)
		rc = st_files_begin(s);
	bool files = rc == 0;
	for (size_t i = 0; rc == 0 && i < n; i++) {
		const struct st_msg *x = &v[i];
		if (unchangedsince && x->modseq > unchangedsince) {
			if ((rc = GROW(mod.v, mod.cap, mod.n + 1)) == 0)
				mod.v[mod.n++] = x->uid;
			continue;
		}
		if (!would_change(x, mode, &fs))
			continue;
		unsigned sys;
		char *names[IMAP_FLAGS_MAX * 2];
		size_t nnames = after_store(x, mode, &fs, &sys, names);
		if ((rc = rename_flags(s, folder, &kw, x, sys, names, nnames)) == 0)
			rc = crdt_model_flags(s->m, &ops, x->guid, types[mode], fs.v, fs.n);
	}
	if (files)
		rc = st_files_end(s, rc); /* the renames durable, then the ops */
	md_keywords_free(&kw);
	rc = st_commit(s, &ops, rc);
	if (rc == 0 && modified) {
		*modified = mod.v;
		*nmodified = mod.n;
		mod.v = NULL;
	} else if (rc == 0 && nmodified) {
		*nmodified = mod.n;
	}
	free(mod.v);
	free(folder);
	st_msgs_free(v, n);
	return st_end(s, rc);
}

/* ---- COPY, MOVE ---- */

int mcrdt_copy(mcrdt_mailbox *mb, const char *set, enum mcrdt_set_kind kind, const char *dest, bool move,
	       struct mcrdt_copyuid *out)
{
	mcrdt_store *s = mb->s;
	char *dname;
	if (!set)
		return err_set(MCRDT_EINVAL, "mcrdt_copy: no set");
	int rc = st_mailbox_name(dest, &dname);
	if (rc)
		return rc;
	if ((rc = st_begin(s))) {
		free(dname);
		return rc;
	}
	crdt_dot dst;
	struct st_msg *v = NULL;
	size_t n = 0;
	char *folder = NULL;
	uint32_t *src = NULL, *dsts = NULL;
	if (move && s->in_batch)
		rc = err_set(MCRDT_EINVAL, "MOVE is not available inside a batch (its sources go before the "
			     "batch's copies are durable)");
	if (rc == 0 && (rc = st_find(s, dname, &dst)) == 0 && (rc = session_msgs(mb, set, kind, &v, &n)) == 0)
		rc = st_view(s, mb->guid, NULL, &folder);
	if (rc == 0 && (!(src = malloc((n ? n : 1) * sizeof *src)) || !(dsts = malloc((n ? n : 1) * sizeof *dsts))))
		rc = err_set(MCRDT_ENOMEM, "out of memory");
	for (size_t i = 0; rc == 0 && i < n; i++)
		src[i] = v[i].uid;
	if (rc == 0 && n)
		rc = st_transfer(s, folder, v, n, dst, dname, move, dsts);
	if (rc == 0 && out) {
		struct crdt_mailbox_info info;
		memset(out, 0, sizeof *out);
		if (st_view(s, dst, &info, NULL) == 0)
			out->uidvalidity = info.uidvalidity;
		out->src = src;
		out->dst = dsts;
		out->n = n;
		src = dsts = NULL;
	}
	free(src);
	free(dsts);
	free(folder);
	free(dname);
	st_msgs_free(v, n);
	return st_end(s, rc);
}

void mcrdt_copyuid_free(struct mcrdt_copyuid *c)
{
	if (c) {
		free(c->src);
		free(c->dst);
		memset(c, 0, sizeof *c);
	}
}

/* ---- EXPUNGE ---- */

int mcrdt_expunge(mcrdt_mailbox *mb, const char *uidset, unsigned flags, uint32_t **uids, size_t *nout)
{
	mcrdt_store *s = mb->s;
	int rc = st_begin(s);
	if (rc)
		return rc;
	struct st_msg *v = NULL;
	size_t n = 0;
	char *folder = NULL;
	struct uids_ctx gone = { NULL, 0, 0 };
	crdt_oplist ops = CRDT_OPLIST_INIT;
	struct md_keywords kw = { { 0 } };
	if ((rc = session_msgs(mb, uidset, MCRDT_UID, &v, &n)) == 0 && (rc = st_view(s, mb->guid, NULL, &folder)) == 0 &&
	    (rc = md_keywords_load(s->md, folder, &kw)) == 0)
		rc = st_files_begin(s);
	bool files = rc == 0;
	for (size_t i = 0; rc == 0 && i < n; i++) {
		if (!(flags & MCRDT_EXPUNGE_ANY) && !(v[i].sys & IMAP_DELETED))
			continue;
		if ((rc = st_remove_file(s, folder, &kw, &v[i])))
			break;
		if ((rc = crdt_model_expunge(s->m, &ops, v[i].guid)) == 0 && (rc = GROW(gone.v, gone.cap, gone.n + 1)) == 0)
			gone.v[gone.n++] = v[i].uid;
	}
	if (files)
		rc = st_files_end(s, rc); /* the removals durable, then the ops */
	md_keywords_free(&kw);
	rc = st_commit(s, &ops, rc);
	if (rc == 0 && uids) {
		*uids = gone.v;
		gone.v = NULL;
	}
	if (rc == 0 && nout)
		*nout = gone.n;
	free(gone.v);
	free(folder);
	st_msgs_free(v, n);
	return st_end(s, rc);
}

/* ---- SEARCH, VANISHED ---- */

static bool matches(const mcrdt_mailbox *mb, const struct st_msg *x, const struct mcrdt_search *q,
		    const struct imap_set *uids, const struct imap_set *seqs)
{
	size_t seq = 0;
	in_view(mb, x->uid, &seq);
	if ((q->uidset && !imap_set_has(uids, x->uid)) || (q->seqset && !imap_set_has(seqs, (uint32_t)seq)))
		return false;
	if ((x->sys & q->sys_set) != q->sys_set || (x->sys & q->sys_unset))
		return false;
	for (size_t i = 0; i < q->nkeywords; i++)
		if (!st_has_kw(x, q->keywords[i]))
			return false;
	for (size_t i = 0; i < q->nunkeywords; i++)
		if (st_has_kw(x, q->unkeywords[i]))
			return false;
	if (x->date < q->since || x->date >= q->before)
		return false;
	if (q->larger && x->size <= q->larger)
		return false;
	if (q->smaller && x->size >= q->smaller)
		return false;
	return x->modseq >= q->modseq;
}

int mcrdt_search(mcrdt_mailbox *mb, const struct mcrdt_search *q, uint32_t **uids, size_t *nout)
{
	mcrdt_store *s = mb->s;
	if (!q || q->version != MCRDT_SEARCH_VERSION)
		return err_set(MCRDT_EVERSION, "mcrdt_search criteria of an unknown version");
	int rc = st_begin_read(s);
	if (rc)
		return rc;
	struct imap_set us = IMAP_SET_INIT, qs = IMAP_SET_INIT;
	if (q->uidset)
		rc = imap_set_parse(q->uidset, mb->n ? mb->uids[mb->n - 1] : 0, &us);
	if (rc == 0 && q->seqset)
		rc = imap_set_parse(q->seqset, (uint32_t)mb->n, &qs);
	struct st_msg *v = NULL;
	size_t n = 0;
	struct uids_ctx hits = { NULL, 0, 0 };
	if (rc == 0)
		rc = session_msgs(mb, NULL, MCRDT_UID, &v, &n);
	for (size_t i = 0; rc == 0 && i < n; i++)
		if (matches(mb, &v[i], q, &us, &qs) && (rc = GROW(hits.v, hits.cap, hits.n + 1)) == 0)
			hits.v[hits.n++] = v[i].uid;
	if (rc == 0) {
		*uids = hits.v;
		*nout = hits.n;
		hits.v = NULL;
	}
	free(hits.v);
	st_msgs_free(v, n);
	imap_set_free(&us);
	imap_set_free(&qs);
	return st_end(s, rc);
}

int mcrdt_vanished(mcrdt_mailbox *mb, uint64_t modseq, uint32_t **uids, size_t *n)
{
	mcrdt_store *s = mb->s;
	int rc = st_begin_read(s);
	if (rc)
		return rc;
	rc = crdt_model_vanished(s->m, mb->guid, modseq, uids, n);
	return st_end(s, rc);
}
