/*
 * store/files.c — the Maildir side of messages: messages copied out of the
 * model, keyword letters, finding a message's file and reading it, the
 * directory syncs a call shares, and COPY/MOVE of files.
 */
#define _GNU_SOURCE
#include "store/store_int.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/error.h"
#include "common/grow.h"
#include "common/varint.h"
#include "store/imap.h"
#include "store/meta.h"
#include "sync/io.h"

/* ---- messages copied out of the model ---- */

void st_msg_clear(struct st_msg *x)
{
	free(x->mem);
	memset(x, 0, sizeof *x);
	x->base = "";
}

void st_msgs_free(struct st_msg *v, size_t n)
{
	for (size_t i = 0; v && i < n; i++)
		free(v[i].mem);
	free(v);
}

/* The system flag bit of a flag as the model holds it, 0 for a keyword. */
static unsigned sys_of(const char *flag)
{
	unsigned bit = 0;
	if (flag[0] == '\\' && imap_flag_check(flag, NULL, &bit) != 0)
		bit = 0;
	return bit;
}

struct collect_ctx {
	struct st_msg *v;
	size_t n, cap;
};

int st_msg_set(struct st_msg *x, const char *base, size_t base_len, const char *const *names, size_t n)
{
	size_t bytes = base_len + 1;
	for (size_t i = 0; i < n; i++)
		bytes += strlen(names[i]) + 1;
	/* One block: the keyword pointers, the base name, the keywords. */
	char **kw = malloc(n * sizeof *kw + bytes);
	if (!kw)
		return err_set(MCRDT_ENOMEM, "out of memory");
	char *p = (char *)(kw + n);
	memcpy(p, base, base_len);
	p[base_len] = '\0';
	const char *b = p;
	p += base_len + 1;
	for (size_t i = 0; i < n; i++) {
		size_t len = strlen(names[i]) + 1;
		memcpy(p, names[i], len);
		kw[i] = p;
		p += len;
	}
	free(x->mem);
	x->mem = kw;
	x->base = b;
	x->kw = n ? kw : NULL;
	x->nkw = n;
	return 0;
}

void st_msg_move(struct st_msg *dst, struct st_msg *src)
{
	*dst = *src;
	src->mem = NULL;
	src->base = "";
	src->kw = NULL;
	src->nkw = 0;
}

int st_msg_fill(struct st_msg *x, const struct crdt_msgview *mv)
{
	memset(x, 0, sizeof *x);
	x->base = "";
	x->uid = mv->uid;
	x->guid = mv->guid;
	x->modseq = mv->modseq;
	const char *kw[CRDT_FLAGS_MAX];
	size_t nkw = 0;
	for (size_t i = 0; i < mv->nflags; i++) {
		unsigned bit = sys_of(mv->flags[i]);
		x->sys |= bit;
		if (!bit && nkw < CRDT_FLAGS_MAX)
			kw[nkw++] = mv->flags[i];
	}
	struct store_meta meta; /* (zeroed when it does not decode) */
	if (store_meta_decode(mv->meta, mv->meta_len, &meta) == 0) {
		x->size = meta.size;
		x->date = meta.internaldate;
	}
	return st_msg_set(x, meta.base ? meta.base : "", meta.base_len, kw, nkw);
}

int st_msg_get(mcrdt_store *s, crdt_dot guid, struct st_msg *x, char **mailbox)
{
	struct crdt_msginfo info;
	int rc = crdt_model_message(s->m, guid, &info);
	if (rc)
		return rc;
	struct crdt_msgview mv = { info.uid, guid, 0, info.flags, info.nflags, info.meta, info.meta_len };
	if ((rc = st_msg_fill(x, &mv)) == 0 && !(*mailbox = strdup(info.mailbox))) {
		st_msg_clear(x);
		rc = err_set(MCRDT_ENOMEM, "out of memory");
	}
	crdt_msginfo_free(&info);
	return rc;
}

static int collect_one(void *ctx, const struct crdt_msgview *mv)
{
	struct collect_ctx *c = ctx;
	int rc = GROW(c->v, c->cap, c->n + 1);
	if (rc || (rc = st_msg_fill(&c->v[c->n], mv)))
		return rc;
	c->n++;
	return 0;
}

int st_collect(mcrdt_store *s, crdt_dot mbox, const void *vset, struct st_msg **out, size_t *n)
{
	const struct imap_set *set = vset;
	struct collect_ctx c = { NULL, 0, 0 };
	int rc = 0;
	if (!set)
		rc = crdt_model_each(s->m, mbox, 1, UINT32_MAX, collect_one, &c);
	for (size_t i = 0; set && rc == 0 && i < set->n; i++)
		rc = crdt_model_each(s->m, mbox, set->r[i].lo, set->r[i].hi, collect_one, &c);
	if (rc) {
		st_msgs_free(c.v, c.n);
		return rc;
	}
	*out = c.v;
	*n = c.n;
	return 0;
}

bool st_has_kw(const struct st_msg *x, const char *kw)
{
	for (size_t i = 0; i < x->nkw; i++)
		if (strcasecmp(x->kw[i], kw) == 0)
			return true;
	return false;
}

/* ---- keyword letters ---- */

char st_kw_letter(const struct md_keywords *kw, const char *name)
{
	for (int i = 0; i < 26; i++)
		if (kw->names[i] && strcmp(kw->names[i], name) == 0)
			return (char)('a' + i);
	return 0;
}

int st_kw_assign(mcrdt_store *s, const char *mailbox, struct md_keywords *kw, char *const *names, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		char letter;
		if (st_kw_letter(kw, names[i]))
			continue;
		int rc = md_keyword_letter(s->md, mailbox, names[i], &letter);
		if (rc == MCRDT_ETOOBIG)
			continue; /* Maildir holds 26 keywords; the op still carries it */
		if (rc)
			return rc;
		free(kw->names[letter - 'a']);
		if (!(kw->names[letter - 'a'] = strdup(names[i])))
			return err_set(MCRDT_ENOMEM, "out of memory");
	}
	return 0;
}

int st_letters(const struct md_keywords *kw, unsigned sys, char *const *names, size_t n,
	       char out[MD_FLAGS_MAX + 1])
{
	char raw[MD_FLAGS_MAX + 1];
	size_t k = 0;
	for (unsigned bit = 1; bit <= IMAP_DRAFT; bit <<= 1)
		if (sys & bit)
			raw[k++] = imap_sysflag_letter(bit);
	for (size_t i = 0; i < n && k < MD_FLAGS_MAX; i++) {
		char letter = st_kw_letter(kw, names[i]);
		if (letter)
			raw[k++] = letter;
	}
	raw[k] = '\0';
	return md_flags_normalize(raw, out);
}

/* ---- finding and reading files ---- */

/* What locate does with each name it tries: opens it (keeping the fd in
 * *fd when fd is not NULL), or with act, calls act on it and keeps its
 * result in rc. */
struct probe {
	int *fd;
	st_file_fn act;
	void *ctx;
	int rc;
	bool raced; /* the folder's listing had the file, gone when tried */
};

/* Whether name (ours now, NULL allowed) is x's file: it opens, or act did
 * not find it gone. Then *file and *in_new; otherwise name is freed. */
static bool try_file(mcrdt_store *s, const char *mailbox, char *name, bool is_new, char **file, bool *in_new,
		     struct probe *pr)
{
	int f = -1;
	if (name && pr->act)
		pr->rc = pr->act(s, mailbox, name, is_new, pr->ctx);
	if (!name || (pr->act ? pr->rc == MCRDT_ENOTFOUND : md_open_message(s->md, mailbox, name, is_new, &f, NULL) != 0)) {
		free(name);
		return false;
	}
	if (pr->fd)
		*pr->fd = f;
	else if (f >= 0)
		close(f);
	*file = name;
	*in_new = is_new;
	return true;
}

/* Finds x's file as st_locate says, probing each name with pr. */
static int locate(mcrdt_store *s, const char *mailbox, const struct md_keywords *kw, const struct st_msg *x,
		  char **file, bool *in_new, struct probe *pr)
{
	char letters[MD_FLAGS_MAX + 1], *name = NULL;
	bool is_new;
	int rc = st_letters(kw, x->sys, x->kw, x->nkw, letters);
	if (rc)
		return rc;
	if (asprintf(&name, "%s:2,%s", x->base, letters) < 0)
		name = NULL;
	if (try_file(s, mailbox, name, false, file, in_new, pr) ||
	    try_file(s, mailbox, strdup(x->base), true, file, in_new, pr))
		return 0;
	/* The scan's name, unless it is one just tried. */
	if (st_scan_guess(s, mailbox, x->base, &name, &is_new) == 0) {
		size_t bl = strlen(x->base);
		bool tried = strncmp(name, x->base, bl) == 0 &&
			     (is_new ? name[bl] == '\0'
				     : strncmp(name + bl, ":2,", 3) == 0 && strcmp(name + bl + 3, letters) == 0);
		if (tried)
			free(name);
		else if (try_file(s, mailbox, name, is_new, file, in_new, pr))
			return 0;
	}
	/* Renamed by another program since the last scan: list the folder. */
	struct md_listing l = { 0 };
	if ((rc = md_list(s->md, mailbox, &l)))
		return rc;
	struct md_entry *e = md_listing_find(&l, x->base, strlen(x->base));
	if (e) {
		name = e->file; /* try_file's now */
		e->file = NULL;
	}
	pr->raced = e != NULL;
	if (!e || !try_file(s, mailbox, name, e->in_new, file, in_new, pr))
		rc = err_set(MCRDT_ENOTFOUND, "the file of message %s is gone from %s (run mcrdt scan)", x->base,
			     mailbox);
	md_listing_free(&l);
	return rc;
}

int st_locate(mcrdt_store *s, const char *mailbox, const struct md_keywords *kw, const struct st_msg *x,
	      char **file, bool *in_new)
{
	struct probe pr = { NULL, NULL, NULL, 0, false };
	return locate(s, mailbox, kw, x, file, in_new, &pr);
}

int st_with_file(mcrdt_store *s, const char *mailbox, const struct md_keywords *kw, const struct st_msg *x,
		 st_file_fn act, void *ctx)
{
	/* act goes straight at each name locate would open. Only when the
	 * folder's listing had the file and act found it gone (renamed again
	 * meanwhile) does the whole look start over. */
	enum { TRIES = 4 };
	int rc = MCRDT_ENOTFOUND;
	bool raced = true;
	for (int t = 0; t < TRIES && rc == MCRDT_ENOTFOUND && raced; t++) {
		char *file;
		bool in_new;
		struct probe pr = { NULL, act, ctx, 0, false };
		if ((rc = locate(s, mailbox, kw, x, &file, &in_new, &pr)) == 0) {
			rc = pr.rc;
			free(file);
		}
		raced = pr.raced;
	}
	return rc;
}

static int remove_act(mcrdt_store *s, const char *mailbox, const char *file, bool in_new, void *ctx)
{
	(void)ctx;
	return md_remove(s->md, mailbox, file, in_new);
}

int st_remove_file(mcrdt_store *s, const char *mailbox, const struct md_keywords *kw, const struct st_msg *x)
{
	int rc = st_with_file(s, mailbox, kw, x, remove_act, NULL);
	return rc == MCRDT_ENOTFOUND ? 0 : rc;
}

struct refile {
	const char *to, *letters;
};

static int refile_act(mcrdt_store *s, const char *mailbox, const char *file, bool in_new, void *ctx)
{
	const struct refile *r = ctx;
	struct md_info info;
	md_info_parse(file, &info);
	char all[2 * MD_FLAGS_MAX + 2], letters[MD_FLAGS_MAX + 1];
	size_t k = strlen(r->letters);
	memcpy(all, r->letters, k);
	for (const char *p = info.flags; *p && k < MD_FLAGS_MAX; p++)
		if (*p >= 'A' && *p <= 'Z' && !imap_letter_sysflag(*p))
			all[k++] = *p;
	all[k] = '\0';
	int rc = md_flags_normalize(all, letters);
	if (rc == 0 && r->to && strcmp(r->to, mailbox) != 0)
		return md_move(s->md, mailbox, file, in_new, r->to, letters, NULL);
	return rc ? rc : md_set_flags(s->md, mailbox, file, in_new, letters, NULL);
}

int st_refile(mcrdt_store *s, const char *mailbox, const struct md_keywords *kw, const struct st_msg *x,
	      const char *to, const char *letters)
{
	struct refile r = { to, letters };
	return st_with_file(s, mailbox, kw, x, refile_act, &r);
}

int st_open_body(mcrdt_store *s, const char *mailbox, const struct md_keywords *kw, const struct st_msg *x,
		 int *fd, char **file, bool *in_new)
{
	char *name = NULL;
	bool is_new = false;
	struct probe pr = { fd, NULL, NULL, 0, false };
	int rc = locate(s, mailbox, kw, x, &name, &is_new, &pr);
	if (rc == 0 && file) {
		*file = name;
		*in_new = is_new;
		return 0;
	}
	free(name);
	return rc;
}

int st_read_body(mcrdt_store *s, const char *mailbox, const struct md_keywords *kw, const struct st_msg *x,
		 uint8_t **data, size_t *len, char **file, bool *in_new)
{
	int fd, rc = st_open_body(s, mailbox, kw, x, &fd, file, in_new);
	if (rc)
		return rc;
	struct stat st;
	uint8_t *p = NULL;
	if (fstat(fd, &st) != 0)
		rc = err_sys(MCRDT_EIO, "cannot stat message %s", x->base);
	else if (!(p = malloc((size_t)st.st_size + 1)))
		rc = err_set(MCRDT_ENOMEM, "out of memory reading message %s", x->base);
	else if (read_all(fd, p, (size_t)st.st_size) != 0)
		rc = err_sys(MCRDT_EIO, "cannot read message %s", x->base);
	close(fd);
	if (rc) {
		free(p);
		if (file)
			free(*file);
		return rc;
	}
	*data = p;
	*len = (size_t)st.st_size;
	return 0;
}

/* ---- keyword letters of the folders one call touches ---- */

struct md_keywords *st_kwcache_get(mcrdt_store *s, struct st_kwcache *c, const char *folder)
{
	for (size_t i = 0; i < ST_KWCACHE; i++)
		if (c->folder[i] && strcmp(c->folder[i], folder) == 0)
			return &c->kw[i];
	unsigned i = c->next++ % ST_KWCACHE;
	free(c->folder[i]);
	md_keywords_free(&c->kw[i]);
	c->folder[i] = NULL;
	if (md_keywords_load(s->md, folder, &c->kw[i]) != 0)
		return NULL;
	if (!(c->folder[i] = strdup(folder))) {
		err_set(MCRDT_ENOMEM, "out of memory");
		return NULL;
	}
	return &c->kw[i];
}

void st_kwcache_free(struct st_kwcache *c)
{
	for (size_t i = 0; i < ST_KWCACHE; i++) {
		free(c->folder[i]);
		md_keywords_free(&c->kw[i]);
	}
	memset(c, 0, sizeof *c);
}

int st_make_meta(const char *file, uint64_t size, int64_t date, struct vbuf *out)
{
	const char *colon = strchr(file, ':');
	struct store_meta meta = { file, colon ? (size_t)(colon - file) : strlen(file), size, date };
	return store_meta_encode(&meta, out);
}

/* ---- the directory syncs of a call ---- */

int st_files_begin(mcrdt_store *s)
{
	return s->in_batch ? 0 : md_batch_begin(s->md);
}

int st_files_end(mcrdt_store *s, int rc)
{
	if (s->in_batch)
		return rc; /* the caller's batch syncs at its commit */
	if (rc) {
		md_batch_abort(s->md);
		return rc;
	}
	return md_batch_commit(s->md);
}

/* ---- COPY and MOVE ---- */

int st_transfer(mcrdt_store *s, const char *srcname, const struct st_msg *msgs, size_t n, crdt_dot dst,
		const char *dstname, bool move, uint32_t *dst_uids)
{
	char **copies = calloc(n ? n : 1, sizeof *copies), **sources = calloc(n ? n : 1, sizeof *sources);
	bool *src_new = calloc(n ? n : 1, sizeof *src_new);
	struct md_keywords skw = { { 0 } }, dkw = { { 0 } };
	int rc = copies && sources && src_new ? 0 : err_set(MCRDT_ENOMEM, "out of memory");
	if (rc == 0 && (rc = md_keywords_load(s->md, srcname, &skw)) == 0)
		rc = md_keywords_load(s->md, dstname, &dkw);
	/* The copies, delivered together: one data sync, one sync per directory. */
	if (rc == 0 && (rc = st_files_begin(s)) == 0) {
		for (size_t i = 0; rc == 0 && i < n; i++) {
			uint8_t *data;
			size_t len;
			char letters[MD_FLAGS_MAX + 1];
			if ((rc = st_read_body(s, srcname, &skw, &msgs[i], &data, &len, &sources[i], &src_new[i])))
				break;
			if ((rc = st_kw_assign(s, dstname, &dkw, msgs[i].kw, msgs[i].nkw)) == 0)
				rc = st_letters(&dkw, msgs[i].sys, msgs[i].kw, msgs[i].nkw, letters);
			struct md_deliver_opts o = MD_DELIVER_OPTS_INIT;
			o.flags = msgs[i].sys || msgs[i].nkw ? letters : NULL;
			o.mtime = msgs[i].date;
			if (rc == 0)
				rc = md_deliver(s->md, dstname, data, len, &o, &copies[i]);
			free(data);
		}
		rc = st_files_end(s, rc);
	}
	crdt_oplist ops = CRDT_OPLIST_INIT;
	struct vbuf meta = { 0 };
	for (size_t i = 0; rc == 0 && i < n; i++) {
		meta.len = 0;
		uint32_t uid;
		rc = st_make_meta(copies[i], msgs[i].size, msgs[i].date, &meta);
		if (rc == 0)
			rc = crdt_model_copy(s->m, &ops, msgs[i].guid, dst, move, meta.p, meta.len, NULL, &uid);
		if (rc == 0 && dst_uids)
			dst_uids[i] = uid;
	}
	free(meta.p);
	/* A move's sources go once the copies are durable (found again if
	 * another program renamed one since it was read). */
	if (rc == 0 && move && (rc = st_files_begin(s)) == 0) {
		for (size_t i = 0; i < n && rc == 0; i++)
			if ((rc = md_remove(s->md, srcname, sources[i], src_new[i])) == MCRDT_ENOTFOUND)
				rc = st_remove_file(s, srcname, &skw, &msgs[i]);
		rc = st_files_end(s, rc);
	}
	rc = st_commit(s, &ops, rc);
	for (size_t i = 0; i < n; i++) {
		free(copies ? copies[i] : NULL);
		free(sources ? sources[i] : NULL);
	}
	free(copies);
	free(sources);
	free(src_new);
	md_keywords_free(&skw);
	md_keywords_free(&dkw);
	return rc;
}
