/*
 * store/apply.c — peers' ops reach the model, the log and the Maildir.
 *
 * A sync hands st_apply the ops it read from peers, with the body blob of
 * each message an op created. st_apply:
 *   1. checks what the model does not: mailbox names that could not be
 *      safe folders, meta that does not decode;
 *   2. notes where every message the ops touch is on disk now (before);
 *   3. receives the ops, merges two copies of one message (the same base
 *      name and content in one mailbox: two imports of one Maildir), and
 *      settles UIDs;
 *   4. notes where those messages belong now (after) and turns the
 *      difference into a plan: folders to make, files to deliver from
 *      their blobs (their sizes checked against their ops), to move, to
 *      rename for flags, to remove, folders to remove;
 *   5. writes the plan as a journal, logs the ops, carries the plan out
 *      and removes the journal.
 * Until the log write nothing on disk has changed: an error leaves the
 * replica as it was (the model is reloaded). A crash after it leaves the
 * journal, which the next open or change carries out (every step can be
 * repeated) before anything else changes the store or scans the Maildir
 * (reads go on meanwhile); a journal whose ops never reached the log is
 * dropped.
 */
#define _GNU_SOURCE
#include "store/store_int.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/error.h"
#include "common/grow.h"
#include "common/hashmap.h"
#include "common/varint.h"
#include "store/imap.h"
#include "store/meta.h"
#include "sync/io.h"

#define XXH_INLINE_ALL
#include <xxhash.h>

#define JOURNAL "journal"
#define JOURNAL_MAGIC "MCRDTJNL"
#define JOURNAL_VERSION 1

void st_incoming_free(struct st_incoming *in)
{
	crdt_oplist_free(&in->ops);
	free(in->bodies);
	memset(in, 0, sizeof *in);
}

static int cmp_body(const void *a, const void *b)
{
	return crdt_dot_cmp(((const struct st_body *)a)->guid, ((const struct st_body *)b)->guid);
}

static const sync_oid *body_of(const struct st_incoming *in, crdt_dot guid)
{
	struct st_body key = { guid, { { 0 } } };
	if (!in || !in->nbodies)
		return NULL;
	const struct st_body *b = bsearch(&key, in->bodies, in->nbodies, sizeof key, cmp_body);
	return b ? &b->oid : NULL;
}

/* ---- where messages are ---- */

struct place {
	char *folder;       /* NULL when the message is not live */
	struct st_msg m;
};

struct tracked {
	crdt_dot guid;
	struct place before, after;
};

struct apply {
	mcrdt_store *s;
	sync_git *g;
	struct st_incoming *in;
	struct st_apply_stats *st;
	struct tracked *t;
	size_t nt, capt;
	struct hmap index;          /* hash of guid (probed) -> index in t */
	struct hmap bases;          /* hash of (folder, base) of a new message -> index in named */
	crdt_dot *named;            /* the message that holds that name so far in this batch */
	size_t nnamed, capnamed;
	struct hmap shown;          /* hash of (folder, base) of a shown message -> index in vshown */
	crdt_dot *vshown;           /* (the first shown with that key, in UID order) */
	size_t nshown, capshown;
	char **indexed;             /* the folders shown holds */
	size_t nindexed, capindexed;
	char **names_before;        /* visible mailboxes before */
	size_t nbefore;
	crdt_oplist local;          /* this replica's ops: merged copies */
	struct st_kwcache kwc;
	sync_git_prefetch *pf;      /* bodies read ahead while files are written */
	bool *unpacked;             /* per delivery: its body is a file the fetch left */
	size_t ndelivery;           /* the plan's deliveries reached so far */
	size_t nread;               /* of which not unpacked: read ahead */
};

static void place_free(struct place *p)
{
	free(p->folder);
	st_msg_clear(&p->m);
	p->folder = NULL;
}

/* Where live message guid is now (folder NULL when it is not live). */
static int capture(mcrdt_store *s, crdt_dot guid, struct place *p)
{
	place_free(p);
	int rc = st_msg_get(s, guid, &p->m, &p->folder);
	return rc == MCRDT_ENOTFOUND ? 0 : rc;
}

/* Starts following guid, noting where it is now. */
static int track(struct apply *a, crdt_dot guid)
{
	uint64_t key = XXH3_64bits(&guid, sizeof guid);
	for (;; key = key + 1 == HMAP_EMPTY ? 0 : key + 1) {
		uint64_t *v = hmap_get(&a->index, key);
		if (!v)
			break;
		if (crdt_dot_eq(a->t[*v].guid, guid))
			return 0;
	}
	int rc = GROW(a->t, a->capt, a->nt + 1);
	if (rc || (rc = hmap_put(&a->index, key, a->nt)))
		return rc;
	struct tracked *t = &a->t[a->nt++];
	memset(t, 0, sizeof *t);
	t->guid = guid;
	return capture(a->s, guid, &t->before);
}

struct guid_list {
	crdt_dot *v;
	size_t n, cap;
};

static int track_view(void *ctx, const struct crdt_msgview *v)
{
	struct guid_list *list = ctx;
	int rc = GROW(list->v, list->cap, list->n + 1);
	if (rc == 0)
		list->v[list->n++] = v->guid;
	return rc;
}

/* The messages an op may put somewhere else on disk. */
static int track_op(struct apply *a, const crdt_op *op)
{
	switch (op->type) {
	case CRDT_OP_APPEND:
	case CRDT_OP_COPY:
		return track(a, op->id);
	case CRDT_OP_MOVE: {
		int rc = track(a, op->id);
		return rc ? rc : track(a, op->msg);
	}
	case CRDT_OP_EXPUNGE:
	case CRDT_OP_FLAGS_ADD:
	case CRDT_OP_FLAGS_REMOVE:
	case CRDT_OP_FLAGS_SET:
		return track(a, op->msg);
	case CRDT_OP_MBOX_RENAME:
	case CRDT_OP_MBOX_DELETE: {
		struct guid_list list = { NULL, 0, 0 };
		int rc = crdt_model_each(a->s->m, op->mbox, 1, UINT32_MAX, track_view, &list);
		if (rc == MCRDT_ENOTFOUND)
			rc = 0; /* a mailbox this replica has not seen yet */
		for (size_t i = 0; rc == 0 && i < list.n; i++)
			rc = track(a, list.v[i]);
		free(list.v);
		return rc;
	}
	default:
		return 0;
	}
}

/* ---- checks the model does not make ---- */

static int check_op(const crdt_op *op)
{
	char where[96];
	snprintf(where, sizeof where, "op %016" PRIx64 ".%" PRIu64 " (%s) from a peer", op->id.replica,
		 op->id.counter, crdt_op_type_name(op->type));
	if (op->type == CRDT_OP_MBOX_CREATE || op->type == CRDT_OP_MBOX_RENAME) {
		char *norm = NULL, *dir = NULL;
		int rc = st_mailbox_name(op->name.s, &norm);
		bool same = rc == 0 && strcmp(norm, op->name.s) == 0;
		if (rc == 0 && same)
			rc = md_folder_dir(op->name.s, &dir);
		free(norm);
		free(dir);
		if (rc || !same) {
			char q[STORE_QUOTE_SIZE], why[256];
			snprintf(why, sizeof why, "%s", rc ? mcrdt_error_last() : "not in its canonical form");
			return err_set(MCRDT_ECORRUPT, "%s: mailbox name %s refused: %s", where,
				       store_quote(q, op->name.s, op->name.len), why);
		}
	}
	if (op->type == CRDT_OP_APPEND || op->type == CRDT_OP_COPY || op->type == CRDT_OP_MOVE) {
		struct store_meta meta;
		if (store_meta_decode(op->meta, op->meta_len, &meta) != 0) {
			char why[256];
			snprintf(why, sizeof why, "%s", mcrdt_error_last());
			return err_set(MCRDT_ECORRUPT, "%s: message metadata refused: %s", where, why);
		}
	}
	return 0;
}

/* ---- merging two copies of one message ---- */

/* The content id of a local message's file. */
static int local_oid(struct apply *a, const char *folder, const struct st_msg *x, sync_oid *out)
{
	struct md_keywords *kw = st_kwcache_get(a->s, &a->kwc, folder);
	uint8_t *data;
	size_t len;
	int rc = kw ? st_read_body(a->s, folder, kw, x, &data, &len, NULL, NULL) : MCRDT_EIO;
	if (rc == 0) {
		rc = sync_git_hash(data, len, out);
		free(data);
	}
	return rc;
}

struct owner_ctx {
	const char *base;
	crdt_dot not;
	struct st_msg found;
	bool hit;
};

static int find_base(void *ctx, const struct crdt_msgview *v)
{
	struct owner_ctx *o = ctx;
	struct store_meta meta;
	if (crdt_dot_eq(v->guid, o->not) || store_meta_decode(v->meta, v->meta_len, &meta) != 0 ||
	    meta.base_len != strlen(o->base) || memcmp(meta.base, o->base, meta.base_len) != 0)
		return 0;
	o->hit = true;
	int rc = st_msg_fill(&o->found, v);
	return rc ? rc : 1;
}

/* Indexes the messages folder (view) shows by base name, once per apply. */
struct index_ctx {
	struct apply *a;
	const char *folder;
};

static int index_one(void *ctx, const struct crdt_msgview *v)
{
	struct index_ctx *c = ctx;
	struct apply *a = c->a;
	struct store_meta meta;
	char base[STORE_META_BASE_MAX + 1];
	if (store_meta_decode(v->meta, v->meta_len, &meta) != 0 || meta.base_len >= sizeof base)
		return 0;
	memcpy(base, meta.base, meta.base_len);
	base[meta.base_len] = '\0';
	int rc = GROW(a->vshown, a->capshown, a->nshown + 1);
	if (rc == 0 && (rc = hmap_put_new(&a->shown, hmap_key_names(c->folder, base, 0), a->nshown)) == 0)
		a->vshown[a->nshown++] = v->guid;
	return rc == MCRDT_EEXISTS ? 0 : rc;
}

/*
 * Into o: the first message in UID order that folder's view shows under
 * the base name o->base, other than o->not (what a walk of the view finds).
 * The view is walked once per apply and indexed by name: two imported
 * copies of a mailbox, merged name by name, walked it once per message
 * (40,000 messages: 26 s). The batch's changes before a lookup only drop
 * or flag messages whose names were looked up already, so the first
 * shown with a name stays the first; a hit is checked (a key two names
 * share, a message gone since) and anything unsure walks the view.
 */
static int shown_with_base(struct apply *a, crdt_dot view, const char *folder, struct owner_ctx *o)
{
	mcrdt_store *s = a->s;
	bool done = false;
	for (size_t i = 0; i < a->nindexed && !done; i++)
		done = strcmp(a->indexed[i], folder) == 0;
	int rc = 0;
	if (!done) {
		struct index_ctx c = { a, folder };
		if ((rc = GROW(a->indexed, a->capindexed, a->nindexed + 1)))
			return rc;
		if (!(a->indexed[a->nindexed] = strdup(folder)))
			return err_set(MCRDT_ENOMEM, "out of memory");
		a->nindexed++;
		if ((rc = crdt_model_each(s->m, view, 1, UINT32_MAX, index_one, &c)))
			return rc;
	}
	uint64_t *at = hmap_get(&a->shown, hmap_key_names(folder, o->base, 0));
	if (!at)
		return 0;
	crdt_dot cand = a->vshown[*at];
	struct place p = { 0 };
	if (!crdt_dot_eq(cand, o->not) && (rc = capture(s, cand, &p)) == 0 && p.folder && p.m.uid &&
	    strcmp(p.folder, folder) == 0 && strcmp(p.m.base, o->base) == 0) {
		st_msg_move(&o->found, &p.m);
		o->hit = true;
	}
	place_free(&p);
	if (rc == 0 && !o->hit && (rc = crdt_model_each(s->m, view, 1, UINT32_MAX, find_base, o)) > 0)
		rc = 0;
	return rc;
}

/*
 * A peer's new message x in folder: when another live message there has
 * its base name, the two are one message imported twice (same content)
 * or a clash (refused). The copy crdt_model_keeper names stays (every
 * replica picks the same one) and takes on the other's flags.
 */
static int merge_copies(struct apply *a, crdt_dot guid, const struct place *x)
{
	mcrdt_store *s = a->s;
	crdt_dot view;
	if (crdt_model_find(s->m, x->folder, &view) != 0)
		return 0;
	/* The common case costs a lookup, not a walk of the mailbox: no file
	 * of that name at the last scan, and no other new message of this
	 * batch with it. */
	uint64_t key = hmap_key_names(x->folder, x->m.base, 0);
	uint64_t *slot = hmap_get(&a->bases, key);
	size_t at = slot ? (size_t)*slot : a->nnamed;
	int rc = 0;
	if (!slot && ((rc = GROW(a->named, a->capnamed, a->nnamed + 1)) || (rc = hmap_put(&a->bases, key, at))))
		return rc;
	if (!slot)
		a->named[a->nnamed++] = guid;
	struct owner_ctx o = { x->m.base, guid, { 0 }, false };
	if (slot && !crdt_dot_eq(a->named[at], guid)) {
		/* An earlier new message of this batch holds the name: the walk
		 * below would not see it (it shows only after the settle). */
		struct place other = { 0 };
		if ((rc = capture(s, a->named[at], &other)) == 0 && other.folder && strcmp(other.folder, x->folder) == 0 &&
		    strcmp(other.m.base, x->m.base) == 0) {
			st_msg_move(&o.found, &other.m);
			o.hit = true;
		}
		place_free(&other);
	}
	const struct md_scan_state *scanned = st_scan_state(s, x->folder);
	if (rc == 0 && !o.hit && !slot && scanned && scanned->valid && !md_listing_find(&scanned->last, x->m.base, strlen(x->m.base)))
		return 0;
	if (rc == 0 && !o.hit)
		rc = shown_with_base(a, view, x->folder, &o);
	if (rc)
		return rc;
	if (!o.hit) {
		a->named[at] = guid;
		return 0;
	}
	const sync_oid *mine = body_of(a->in, guid), *theirs = body_of(a->in, o.found.guid);
	sync_oid local;
	bool same = false;
	if (mine && !theirs && (rc = local_oid(a, x->folder, &o.found, &local)) == 0)
		theirs = &local;
	if (rc == 0 && mine && theirs)
		same = memcmp(mine->id, theirs->id, sizeof mine->id) == 0;
	if (rc == 0 && !same)
		rc = err_set(MCRDT_ECORRUPT,
			     "mailbox '%s': a peer's message %016" PRIx64 ".%" PRIu64
			     " has the file name %s of a different message here",
			     x->folder, guid.replica, guid.counter, x->m.base);
	crdt_dot keep = guid, drop = o.found.guid;
	if (rc == 0 && (rc = crdt_model_keeper(s->m, guid, o.found.guid, &keep)) == 0) {
		drop = crdt_dot_eq(keep, guid) ? o.found.guid : guid;
		if ((rc = track(a, keep)) == 0)
			rc = track(a, drop);
	}
	struct crdt_msginfo k, d;
	if (rc == 0 && (rc = crdt_model_message(s->m, keep, &k)) == 0) {
		if ((rc = crdt_model_message(s->m, drop, &d)) == 0) {
			const char *add[CRDT_FLAGS_MAX];
			size_t n = 0;
			for (size_t i = 0; i < d.nflags && n < CRDT_FLAGS_MAX; i++) {
				bool has = false;
				for (size_t j = 0; j < k.nflags && !has; j++)
					has = strcmp(k.flags[j], d.flags[i]) == 0;
				if (!has)
					add[n++] = d.flags[i];
			}
			if (n)
				rc = crdt_model_flags(s->m, &a->local, keep, CRDT_OP_FLAGS_ADD, add, n);
			crdt_msginfo_free(&d);
		}
		crdt_msginfo_free(&k);
	}
	if (rc == 0 && (rc = crdt_model_expunge(s->m, &a->local, drop)) == 0)
		a->st->duplicates++;
	a->named[at] = keep;
	free(o.found.mem);
	return rc;
}

/* ---- the plan ---- */

enum pl_kind { PL_MKDIR = 1, PL_DELIVER, PL_MOVE, PL_FLAGS, PL_REMOVE, PL_RMDIR };

struct pl {
	uint8_t kind;
	char *from, *to;        /* folders: from for MOVE/FLAGS/REMOVE/RMDIR, to for MKDIR/DELIVER/MOVE */
	struct st_msg was, now; /* flags before (to find the file) and after */
	sync_oid oid;           /* DELIVER: the body */
};

struct plan {
	struct pl *v;
	size_t n, cap;
	uint64_t log_from, log_count;
};

static void plan_free(struct plan *p)
{
	for (size_t i = 0; i < p->n; i++) {
		free(p->v[i].from);
		free(p->v[i].to);
		free(p->v[i].was.mem);
		free(p->v[i].now.mem);
	}
	free(p->v);
	memset(p, 0, sizeof *p);
}

/* Adds a step. was and now (the tracked places' records) are moved into
 * it, not copied: each is planned once, and a copy doubled the names and
 * keywords of every message a first sync delivers. */
static int plan_add(struct plan *p, enum pl_kind kind, const char *from, const char *to, struct st_msg *was,
		    struct st_msg *now, const sync_oid *oid)
{
	int rc = GROW(p->v, p->cap, p->n + 1);
	if (rc)
		return rc;
	struct pl *e = &p->v[p->n];
	memset(e, 0, sizeof *e);
	e->kind = (uint8_t)kind;
	e->was.base = e->now.base = "";
	if ((from && !(e->from = strdup(from))) || (to && !(e->to = strdup(to)))) {
		free(e->from);
		free(e->to);
		return err_set(MCRDT_ENOMEM, "out of memory");
	}
	if (was)
		st_msg_move(&e->was, was);
	if (now)
		st_msg_move(&e->now, now);
	if (oid)
		e->oid = *oid;
	p->n++;
	return 0;
}

static bool same_flags(const struct st_msg *a, const struct st_msg *b)
{
	if (a->sys != b->sys || a->nkw != b->nkw)
		return false;
	for (size_t i = 0; i < a->nkw; i++)
		if (strcmp(a->kw[i], b->kw[i]) != 0)
			return false;
	return true;
}

struct side {
	const char *folder;
	struct st_msg *m;
	crdt_dot guid;
};

static int cmp_side_key(const void *x, const void *y)
{
	const struct side *a = x, *b = y;
	int c = strcmp(a->folder, b->folder);
	return c ? c : strcmp(a->m->base, b->m->base);
}

static int cmp_side_base(const void *x, const void *y)
{
	const struct side *a = x, *b = y;
	int c = strcmp(a->m->base, b->m->base);
	return c ? c : strcmp(a->folder, b->folder);
}

static bool has_name(char **v, size_t n, const char *name)
{
	for (size_t i = 0; i < n; i++)
		if (strcmp(v[i], name) == 0)
			return true;
	return false;
}

static int plan_deliver(struct apply *a, struct plan *p, const struct side *x)
{
	const sync_oid *oid = body_of(a->in, x->guid);
	if (!oid)
		return err_set(MCRDT_ECORRUPT, "message %016" PRIx64 ".%" PRIu64 " (%s in '%s') came without its body",
			       x->guid.replica, x->guid.counter, x->m->base, x->folder);
	uint64_t size;
	int rc = sync_git_blob_size(a->g, oid, &size);
	if (rc == 0 && size != x->m->size)
		rc = err_set(MCRDT_ECORRUPT,
			     "message %016" PRIx64 ".%" PRIu64 " (%s): its body has %" PRIu64 " bytes, its op says %" PRIu64,
			     x->guid.replica, x->guid.counter, x->m->base, size, x->m->size);
	return rc ? rc : plan_add(p, PL_DELIVER, NULL, x->folder, NULL, x->m, oid);
}

/* The difference between before and after, file by file. */
static int make_plan(struct apply *a, struct plan *p, char **after, size_t nafter)
{
	int rc = 0;
	/* A file in a new folder's place would fail the journaled plan at
	 * every retry: the sync is refused before anything is written, and
	 * goes through once the file is moved. */
	for (size_t i = 0; rc == 0 && i < nafter; i++)
		if (!has_name(a->names_before, a->nbefore, after[i]) && (rc = md_folder_check(a->s->md, after[i])) == 0)
			rc = plan_add(p, PL_MKDIR, NULL, after[i], NULL, NULL, NULL);
	struct side *b = calloc(a->nt + 1, sizeof *b), *f = calloc(a->nt + 1, sizeof *f);
	size_t nb = 0, nf = 0;
	if (!b || !f)
		rc = err_set(MCRDT_ENOMEM, "out of memory");
	for (size_t i = 0; rc == 0 && i < a->nt; i++) {
		struct tracked *t = &a->t[i];
		if (t->before.folder && t->before.m.base[0])
			b[nb++] = (struct side){ t->before.folder, &t->before.m, t->guid };
		if (t->after.folder && t->after.m.base[0])
			f[nf++] = (struct side){ t->after.folder, &t->after.m, t->guid };
	}
	if (rc == 0) {
		qsort(b, nb, sizeof *b, cmp_side_key);
		qsort(f, nf, sizeof *f, cmp_side_key);
	}
	/* Files that stay where they are; the rest left in gone / come. */
	struct side *gone = calloc(nb + 1, sizeof *gone), *come = calloc(nf + 1, sizeof *come);
	size_t ng = 0, nc = 0, i = 0, k = 0;
	if (rc == 0 && (!gone || !come))
		rc = err_set(MCRDT_ENOMEM, "out of memory");
	while (rc == 0 && (i < nb || k < nf)) {
		int c = i == nb ? 1 : k == nf ? -1 : cmp_side_key(&b[i], &f[k]);
		if (c < 0) {
			gone[ng++] = b[i++];
		} else if (c > 0) {
			come[nc++] = f[k++];
		} else {
			if (!same_flags(b[i].m, f[k].m))
				rc = plan_add(p, PL_FLAGS, b[i].folder, b[i].folder, b[i].m, f[k].m, NULL);
			i++, k++;
		}
	}
	/* A base name that left one folder and arrived in another moved: a
	 * step for each of gone and come at most, room made for them at once
	 * (a first sync's plan is its size in messages: no doubling's spare). */
	free(b);
	free(f);
	b = f = NULL;
	if (rc == 0) {
		qsort(gone, ng, sizeof *gone, cmp_side_base);
		qsort(come, nc, sizeof *come, cmp_side_base);
		rc = RESERVE(p->v, p->cap, p->n + ng + nc + a->nbefore);
	}
	i = k = 0;
	while (rc == 0 && (i < ng || k < nc)) {
		int c = i == ng ? 1 : k == nc ? -1 : strcmp(gone[i].m->base, come[k].m->base);
		if (c < 0) {
			rc = plan_add(p, PL_REMOVE, gone[i].folder, NULL, gone[i].m, NULL, NULL);
			i++;
		} else if (c > 0) {
			rc = plan_deliver(a, p, &come[k]);
			k++;
		} else {
			rc = plan_add(p, PL_MOVE, gone[i].folder, come[k].folder, gone[i].m, come[k].m, NULL);
			i++, k++;
		}
	}
	for (size_t j = 0; rc == 0 && j < a->nbefore; j++)
		if (!has_name(after, nafter, a->names_before[j]))
			rc = plan_add(p, PL_RMDIR, a->names_before[j], NULL, NULL, NULL, NULL);
	free(b);
	free(f);
	free(gone);
	free(come);
	return rc;
}

/* ---- the journal ---- */

static void put_msg(struct vbuf *b, const struct st_msg *x)
{
	vput_bytes(b, x->base, strlen(x->base));
	vput(b, x->sys);
	vput(b, x->nkw);
	for (size_t i = 0; i < x->nkw; i++)
		vput_bytes(b, x->kw[i], strlen(x->kw[i]));
	vput(b, x->size);
	vput(b, (uint64_t)x->date);
}

static void put_str(struct vbuf *b, const char *s)
{
	vput(b, s ? 1 : 0);
	if (s)
		vput_bytes(b, s, strlen(s));
}

static char *get_str(struct vreader *r, size_t max)
{
	if (!vread_max(r, 1, "journal string flag"))
		return NULL;
	uint64_t n = vread_max(r, max, "journal string");
	const uint8_t *p = vread_bytes(r, n, "journal string");
	char *s = p ? strndup((const char *)p, n) : NULL;
	if (p && !s)
		r->err = err_set(MCRDT_ENOMEM, "out of memory");
	return s;
}

static void get_msg(struct vreader *r, struct st_msg *x)
{
	uint64_t n = vread_max(r, STORE_META_BASE_MAX, "journal base name");
	const uint8_t *base = vread_bytes(r, n, "journal base name");
	x->sys = (unsigned)vread_max(r, 0xff, "journal flags");
	size_t nkw = (size_t)vread_max(r, CRDT_FLAGS_MAX, "journal keywords");
	char *names[CRDT_FLAGS_MAX];
	size_t got = 0;
	for (size_t i = 0; i < nkw && !r->err; i++) {
		uint64_t len = vread_max(r, CRDT_FLAG_MAX, "journal keyword");
		const uint8_t *q = vread_bytes(r, len, "journal keyword");
		if (q && !(names[got++] = strndup((const char *)q, len)))
			r->err = err_set(MCRDT_ENOMEM, "out of memory");
	}
	if (!r->err && st_msg_set(x, (const char *)base, (size_t)n, (const char *const *)names, got) != 0)
		r->err = MCRDT_ENOMEM;
	for (size_t i = 0; i < got; i++)
		free(names[i]);
	x->size = vread(r);
	x->date = (int64_t)vread(r);
}

static int journal_write(mcrdt_store *s, const struct plan *p)
{
	struct vbuf b = { 0 };
	if (vbuf_reserve(&b, 8) == 0) {
		memcpy(b.p, JOURNAL_MAGIC, 8);
		b.len = 8;
	}
	vput(&b, JOURNAL_VERSION);
	vput(&b, p->log_from);
	vput(&b, p->log_count);
	vput(&b, p->n);
	for (size_t i = 0; i < p->n; i++) {
		const struct pl *e = &p->v[i];
		vput(&b, e->kind);
		put_str(&b, e->from);
		put_str(&b, e->to);
		put_msg(&b, &e->was);
		put_msg(&b, &e->now);
		vput_bytes(&b, e->oid.id, sizeof e->oid.id);
	}
	int rc = replace_file_summed(s->metadir, JOURNAL, &b, !s->opts.no_fsync);
	vbuf_free(&b);
	return rc;
}

static int journal_read(mcrdt_store *s, struct plan *p, bool *found)
{
	char path[4200];
	snprintf(path, sizeof path, "%s/" JOURNAL, s->metadir);
	*found = false;
	uint8_t *buf = NULL;
	size_t len = 0;
	int rc = read_file_summed(s->metadir, JOURNAL, SIZE_MAX, &buf, &len);
	if (rc == MCRDT_ENOTFOUND)
		return 0;
	struct vreader r = { buf, buf + len, 0 };
	if (rc == 0) {
		const uint8_t *magic = vread_bytes(&r, 8, "journal magic");
		if (!magic || memcmp(magic, JOURNAL_MAGIC, 8) != 0 || vread(&r) != JOURNAL_VERSION)
			rc = err_set(MCRDT_ECORRUPT, "%s is not a journal of this version", path);
	}
	if (rc == 0) {
		p->log_from = vread(&r);
		p->log_count = vread(&r);
		uint64_t n = vread_max(&r, (uint64_t)(len / 4), "journal entries");
		for (uint64_t i = 0; !r.err && i < n; i++) {
			if ((rc = GROW(p->v, p->cap, p->n + 1)))
				break;
			struct pl *e = &p->v[p->n++];
			memset(e, 0, sizeof *e);
			e->kind = (uint8_t)vread_max(&r, PL_RMDIR, "journal step");
			e->from = get_str(&r, CRDT_NAME_MAX);
			e->to = get_str(&r, CRDT_NAME_MAX);
			get_msg(&r, &e->was);
			get_msg(&r, &e->now);
			const uint8_t *oid = vread_bytes(&r, vread_max(&r, 20, "journal blob id"), "journal blob id");
			if (oid)
				memcpy(e->oid.id, oid, sizeof e->oid.id);
		}
		/* (out of memory is not damage: the journal stays, for a retry) */
		if (rc == 0 && r.err == MCRDT_ENOMEM)
			rc = r.err;
		else if (rc == 0 && r.err)
			rc = err_set(MCRDT_ECORRUPT, "%s is damaged: %s", path, mcrdt_error_last());
	}
	free(buf);
	*found = rc == 0;
	return rc;
}

/* Removes the journal, durably: a journal that came back after a crash
 * (a file system that does not keep metadata changes in order: ext4
 * without its journal, ext2) would be carried out again over the changes
 * logged since, delivering again a message expunged meanwhile, or, if its
 * ops never reached the log, for the ops logged in their place. A failure
 * leaves that risk, nothing worse: it is not reported. */
static void journal_remove(mcrdt_store *s)
{
	char path[4200];
	snprintf(path, sizeof path, "%s/" JOURNAL, s->metadir);
	if (unlink(path) == 0 && !s->opts.no_fsync)
		(void)sync_dir(s->metadir);
}

/* ---- carrying the plan out ---- */

static int letters_in(mcrdt_store *s, const char *folder, struct md_keywords *kw, const struct st_msg *x,
		      char out[MD_FLAGS_MAX + 1])
{
	int rc = st_kw_assign(s, folder, kw, x->kw, x->nkw);
	return rc ? rc : st_letters(kw, x->sys, x->kw, x->nkw, out);
}

/* Delivers e's body: the file the fetch left when there is one (no
 * inflate), else the blob, read ahead or now. */
static int deliver(struct apply *a, const struct pl *e, struct md_keywords *kw)
{
	mcrdt_store *s = a->s;
	char letters[MD_FLAGS_MAX + 1];
	int rc = letters_in(s, e->to, kw, &e->now, letters);
	if (rc)
		return rc;
	struct md_deliver_opts o = MD_DELIVER_OPTS_INIT;
	o.base = e->now.base;
	o.flags = letters;
	o.mtime = e->now.date;
	struct sync_git_blob blob = { 0 };
	char name[41];
	bool unpacked = a->unpacked && a->unpacked[a->ndelivery - 1];
	rc = MCRDT_ENOTFOUND; /* also md_deliver's when a second message with that body comes: the first took it */
	if (unpacked && sync_git_unpacked(a->g, &e->oid, &o.src_dir, name)) {
		o.src_name = name;
		blob.len = (size_t)e->now.size;
		rc = md_deliver(s->md, e->to, NULL, blob.len, &o, NULL);
		o.src_name = NULL;
	}
	if (rc != 0 && rc != MCRDT_EEXISTS) {
		rc = a->pf && !unpacked ? sync_git_prefetch_take(a->pf, a->nread - 1, &blob)
					: sync_git_blob_read(a->g, &e->oid, &blob);
		if (rc == 0)
			rc = md_deliver(s->md, e->to, blob.data, blob.len, &o, NULL);
	}
	if (rc == 0 && a->st) {
		a->st->messages_received++;
		a->st->bytes_received += blob.len;
	}
	if (rc == MCRDT_EEXISTS)
		rc = 0; /* delivered before a crash */
	sync_git_blob_free(&blob);
	return rc;
}

static int step(struct apply *a, const struct pl *e, bool recovering)
{
	mcrdt_store *s = a->s;
	if (e->kind == PL_MKDIR) {
		int rc = md_folder_create(s->md, e->to);
		return rc == MCRDT_EEXISTS ? 0 : rc;
	}
	struct md_keywords *from = e->from ? st_kwcache_get(s, &a->kwc, e->from) : NULL;
	struct md_keywords *to = e->to ? st_kwcache_get(s, &a->kwc, e->to) : NULL;
	if ((e->from && !from) || (e->to && !to))
		return err_set(MCRDT_EIO, "cannot read the keywords of '%s': %s", e->from ? e->from : e->to,
			       mcrdt_error_last());
	char letters[MD_FLAGS_MAX + 1];
	int rc;
	switch (e->kind) {
	case PL_DELIVER:
		/* After a crash the file may be there already, under any flags. */
		if (recovering && ((rc = letters_in(s, e->to, to, &e->now, letters)) ||
				   (rc = st_refile(s, e->to, to, &e->now, NULL, letters)) != MCRDT_ENOTFOUND))
			return rc;
		return deliver(a, e, to);
	case PL_MOVE:
	case PL_FLAGS:
		if ((rc = letters_in(s, e->to, to, &e->now, letters)))
			return rc;
		rc = st_refile(s, e->from, from, &e->was, e->to, letters);
		/* Moved or renamed already (a crash), or gone: look where it goes. */
		if (rc == MCRDT_ENOTFOUND)
			rc = st_refile(s, e->to, to, &e->now, NULL, letters);
		/* (removed by another program meanwhile: the next scan of
		 * e->from reports it) */
		return rc == MCRDT_ENOTFOUND ? 0 : rc;
	case PL_REMOVE:
		return st_remove_file(s, e->from, from, &e->was);
	default:
		return 0;
	}
}

static int rmdir_step(mcrdt_store *s, const char *folder)
{
	struct md_listing l = { 0 };
	int rc = md_list(s->md, folder, &l);
	if (rc == MCRDT_ENOTFOUND)
		return 0;
	/* Files nobody knows (a delivery since the scan) keep the folder:
	 * the next scan adopts them, and no mail is lost. */
	if (rc == 0 && l.n == 0)
		rc = md_folder_delete(s->md, folder);
	md_listing_free(&l);
	return rc == MCRDT_ENOTFOUND ? 0 : rc;
}

/* Reading bodies (inflate, hash check) takes as long as writing them: a
 * thread reads ahead when there are enough to pay for it. Bodies the
 * fetch left as files (checked as it brought them) are moved in instead. */
enum { PREFETCH_MIN = 16, PREFETCH_BYTES = 64 << 20 };

static int prefetch_start(struct apply *a, const struct plan *p, sync_oid **ids)
{
	size_t n = 0, k = 0, nread = 0;
	for (size_t i = 0; i < p->n; i++)
		n += p->v[i].kind == PL_DELIVER;
	if (!n)
		return 0;
	if (!(*ids = malloc(n * sizeof **ids)) || !(a->unpacked = calloc(n, sizeof *a->unpacked)))
		return err_set(MCRDT_ENOMEM, "out of memory");
	/* A file moves only within its file system: on another one than the
	 * Maildir's, every move would fail before the body is read. */
	struct stat root;
	bool move = stat(a->s->root, &root) == 0;
	for (size_t i = 0; i < p->n; i++) {
		const struct pl *e = &p->v[i];
		int dir;
		char name[41];
		struct stat st;
		if (e->kind != PL_DELIVER)
			continue;
		if (move && sync_git_unpacked(a->g, &e->oid, &dir, name) &&
		    fstatat(dir, name, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISREG(st.st_mode) &&
		    (uint64_t)st.st_size == e->now.size)
			move = a->unpacked[k] = st.st_dev == root.st_dev;
		if (!a->unpacked[k++])
			(*ids)[nread++] = e->oid;
	}
	return nread < PREFETCH_MIN ? 0 : sync_git_prefetch_start(a->g, *ids, nread, PREFETCH_BYTES, &a->pf);
}

static int execute(struct apply *a, const struct plan *p, bool recovering)
{
	mcrdt_store *s = a->s;
	sync_oid *ids = NULL;
	a->ndelivery = a->nread = 0;
	int rc = prefetch_start(a, p, &ids);
	for (size_t i = 0; rc == 0 && i < p->n; i++)
		if (p->v[i].kind == PL_MKDIR)
			rc = step(a, &p->v[i], recovering);
	/* Files in batches: one data sync per batch, one sync per directory.
	 * A batch's deliveries may reach MD_BATCH_FOLDERS folders; one slot
	 * stays for the folders moves and removals read from. */
	enum { BATCH_TO = MD_BATCH_FOLDERS - 1 };
	const char *open_folders[BATCH_TO];
	size_t nopen = 0;
	bool in = false;
	for (size_t i = 0; rc == 0 && i < p->n; i++) {
		const struct pl *e = &p->v[i];
		if (e->kind == PL_MKDIR || e->kind == PL_RMDIR)
			continue;
		bool known = false;
		for (size_t k = 0; k < nopen && !known; k++)
			known = e->to && strcmp(open_folders[k], e->to) == 0;
		if (in && e->to && !known && nopen == BATCH_TO) {
			rc = st_files_end(s, 0);
			in = false;
		}
		if (rc == 0 && !in) {
			rc = st_files_begin(s);
			in = rc == 0;
			nopen = 0;
		}
		if (rc == 0 && e->to && !known && nopen < BATCH_TO)
			open_folders[nopen++] = e->to;
		/* (counted here: a recovery's step may skip a delivery) */
		a->ndelivery += e->kind == PL_DELIVER;
		a->nread += e->kind == PL_DELIVER && !(a->unpacked && a->unpacked[a->ndelivery - 1]);
		if (rc == 0)
			rc = step(a, e, recovering);
	}
	if (in)
		rc = st_files_end(s, rc);
	sync_git_prefetch_stop(a->pf);
	a->pf = NULL;
	free(ids);
	free(a->unpacked);
	a->unpacked = NULL;
	for (size_t i = 0; rc == 0 && i < p->n; i++)
		if (p->v[i].kind == PL_RMDIR)
			rc = rmdir_step(s, p->v[i].from);
	return rc;
}

/* ---- the whole ---- */

/* What a plan is made from (what the ops touch, where it was and is,
 * the indexes): not needed to carry it out. Frees it; again is a no-op. */
static void tracking_free(struct apply *a)
{
	for (size_t i = 0; i < a->nt; i++) {
		place_free(&a->t[i].before);
		place_free(&a->t[i].after);
	}
	free(a->t);
	a->t = NULL;
	a->nt = a->capt = 0;
	hmap_free(&a->index);
	hmap_free(&a->bases);
	free(a->named);
	a->named = NULL;
	a->nnamed = a->capnamed = 0;
	hmap_free(&a->shown);
	free(a->vshown);
	a->vshown = NULL;
	a->nshown = a->capshown = 0;
	crdt_strv_free(a->indexed, a->nindexed);
	a->indexed = NULL;
	a->nindexed = a->capindexed = 0;
	crdt_strv_free(a->names_before, a->nbefore);
	a->names_before = NULL;
	a->nbefore = 0;
	crdt_oplist_free(&a->local);
}

static void apply_free(struct apply *a)
{
	tracking_free(a);
	st_kwcache_free(&a->kwc);
}

static int visible_names(mcrdt_store *s, char ***out, size_t *n)
{
	struct crdt_mailbox_info *v;
	int rc = crdt_model_mailboxes(s->m, &v, n);
	if (rc)
		return rc;
	if (!(*out = calloc(*n + 1, sizeof **out)))
		rc = err_set(MCRDT_ENOMEM, "out of memory");
	for (size_t i = 0; rc == 0 && i < *n; i++) {
		(*out)[i] = v[i].name;
		v[i].name = NULL;
	}
	crdt_mailboxes_free(v, *n);
	return rc;
}

int st_apply(mcrdt_store *s, sync_git *g, struct st_incoming *in, struct st_apply_stats *st)
{
	if (s->in_batch)
		return err_set(MCRDT_EINVAL, "cannot sync while a batch is open on this store handle");
	struct apply a;
	memset(&a, 0, sizeof a);
	a.s = s, a.g = g, a.in = in, a.st = st;
	hmap_init(&a.index);
	hmap_init(&a.bases);
	hmap_init(&a.shown);
	if (in->nbodies)
		qsort(in->bodies, in->nbodies, sizeof *in->bodies, cmp_body);
	int rc = 0;
	for (size_t i = 0; rc == 0 && i < in->ops.n; i++)
		rc = check_op(&in->ops.ops[i]);
	/* Before: every message the ops (and the ops they may release) touch. */
	for (size_t i = 0; rc == 0 && i < in->ops.n; i++)
		rc = track_op(&a, &in->ops.ops[i]);
	for (size_t i = 0; rc == 0 && i < crdt_model_pending(s->m); i++)
		rc = track_op(&a, crdt_model_pending_op(s->m, i));
	if (rc == 0)
		rc = visible_names(s, &a.names_before, &a.nbefore);
	if (rc) {
		apply_free(&a);
		return rc;
	}
	/* Receive: from here on the model is ahead of the log until it is
	 * written; on an error it is reloaded. The ops to log take the place
	 * of the ops read, less the duplicates, where a second array held
	 * them (15 MB at 100,000 ops); this replica's own follow them. */
	crdt_oplist *logged = &in->ops;
	size_t kept = 0;
	for (size_t i = 0; rc == 0 && i < in->ops.n; i++) {
		crdt_op *op = &in->ops.ops[i];
		int r = crdt_model_receive(s->m, op);
		if (r == MCRDT_EDUPLICATE) {
			crdt_op_free(op);
			continue;
		}
		if (r != 0 && r != MCRDT_EPENDING) {
			rc = err_set(r, "op %016" PRIx64 ".%" PRIu64 " from a peer refused: %s", op->id.replica,
				     op->id.counter, mcrdt_error_last());
			break;
		}
		if (st && r == 0)
			st->ops_received++;
		if (kept != i) {
			in->ops.ops[kept] = *op;
			crdt_op_init(op, op->type);
		}
		kept++;
	}
	if (rc == 0)
		in->ops.n = kept; /* (on an error every entry is an op or empty: all are freed) */
	/* Copies of one message imported on two replicas become one. */
	size_t ntracked = a.nt;
	for (size_t i = 0; rc == 0 && i < ntracked; i++) {
		struct place now = { 0 };
		const crdt_dot guid = a.t[i].guid;
		if (a.t[i].before.folder || !body_of(in, guid))
			continue;
		if ((rc = capture(s, guid, &now)) == 0 && now.folder && now.m.base[0])
			rc = merge_copies(&a, guid, &now);
		place_free(&now);
	}
	/* A fresh replica's unused mailboxes give way to its peers' used ones
	 * (its INBOX above all), before the settle decides the views. */
	if (rc == 0)
		rc = crdt_model_give_way(s->m, &a.local, NULL);
	for (size_t i = 0; rc == 0 && i < a.local.n; i++)
		rc = crdt_oplist_push(logged, &a.local.ops[i]);
	crdt_oplist claims = CRDT_OPLIST_INIT;
	if (rc == 0)
		rc = crdt_model_settle(s->m, &claims);
	if (rc == 0 && st)
		st->claims += claims.n;
	for (size_t i = 0; rc == 0 && i < claims.n; i++)
		rc = crdt_oplist_push(logged, &claims.ops[i]);
	crdt_oplist_free(&claims);
	/* After, and the plan that takes the Maildir there. */
	for (size_t i = 0; rc == 0 && i < a.nt; i++)
		rc = capture(s, a.t[i].guid, &a.t[i].after);
	char **after = NULL;
	size_t nafter = 0;
	struct plan p = { NULL, 0, 0, sync_log_next(s->log), logged->n };
	if (rc == 0)
		rc = visible_names(s, &after, &nafter);
	if (rc == 0)
		rc = make_plan(&a, &p, after, nafter);
	crdt_strv_free(after, nafter);
	tracking_free(&a); /* the plan holds what it needs of it */
	bool journal = rc == 0 && p.n > 0;
	if (journal)
		rc = journal_write(s, &p);
	if (rc == 0 && logged->n)
		rc = sync_log_append_batch(s->log, logged->ops, logged->n, NULL);
	if (rc) {
		/* Ops that reached the log, even with a failed fdatasync, are
		 * read back at the next load: their journal stays, to put their
		 * files in place (open and every call's st_begin run it). */
		if (journal && sync_log_next(s->log) == p.log_from)
			journal_remove(s);
		s->stale = true; /* the model holds ops the log does not: reload */
	} else if (p.n) {
		/* Logged: from here a failure leaves the journal to finish. The
		 * ops go first: the bodies read ahead take their place. */
		crdt_oplist_free(logged);
		if ((rc = execute(&a, &p, false)) == 0)
			journal_remove(s);
	}
	plan_free(&p);
	apply_free(&a);
	return rc;
}

int st_journal_recover(mcrdt_store *s)
{
	struct plan p = { 0 };
	bool found;
	int rc = journal_read(s, &p, &found);
	if (rc || !found)
		plan_free(&p);
	if (rc == MCRDT_ECORRUPT) {
		/* A journal is written whole before its ops are logged: a
		 * damaged one never had its ops logged. */
		journal_remove(s);
		return 0;
	}
	if (rc || !found)
		return rc;
	if (sync_log_next(s->log) <= p.log_from) {
		/* Its ops never reached the log: nothing was done. (Some of
		 * them may have, after a torn write: they are in the model,
		 * so their files are put in place.) */
		journal_remove(s);
		plan_free(&p);
		return 0;
	}
	sync_git *g = NULL;
	char dir[4200];
	snprintf(dir, sizeof dir, "%s/git", s->metadir);
	if ((rc = sync_git_open(&g, dir, s->replica, false)) == 0) {
		struct apply a;
		memset(&a, 0, sizeof a);
		a.s = s, a.g = g;
		if ((rc = execute(&a, &p, true)) == 0)
			journal_remove(s);
		st_kwcache_free(&a.kwc);
		sync_git_close(g);
	}
	plan_free(&p);
	return rc;
}
