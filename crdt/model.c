/*
 * crdt/model.c — applying ops to the mail model and settling UIDs.
 * The rules are in model.h; the records in model_int.h.
 */
#include "crdt/model_int.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#define XXH_INLINE_ALL
#include <xxhash.h>

#include "common/error.h"
#include "common/grow.h"
#include "common/varint.h"
#include "crdt/dotlist.h"

/* ------------------------------------------------------------------ */
/* small helpers                                                       */

void crdt_oplist_free(crdt_oplist *l)
{
	for (size_t i = 0; i < l->n; i++)
		crdt_op_free(&l->ops[i]);
	free(l->ops);
	l->ops = NULL;
	l->n = l->cap = 0;
}

int crdt_oplist_push(crdt_oplist *l, crdt_op *op)
{
	int rc = GROW(l->ops, l->cap, l->n + 1);
	if (rc)
		return rc;
	l->ops[l->n++] = *op;
	crdt_op_init(op, op->type);
	return 0;
}

static int rix_find(const crdt_model *m, uint64_t replica, uint32_t *out)
{
	const uint64_t *v = hmap_get(&m->rixmap, replica);
	if (!v)
		return MCRDT_ENOTFOUND;
	*out = (uint32_t)*v;
	return 0;
}

int rix_intern(crdt_model *m, uint64_t replica, uint32_t *out)
{
	if (rix_find(m, replica, out) == 0)
		return 0;
	if (replica == 0 || replica == HMAP_EMPTY)
		return err_set(MCRDT_ECORRUPT, "invalid replica id %" PRIx64, replica);
	if (m->nrep > RIX_MAX)
		return err_set(MCRDT_ERANGE, "more than %u replicas", RIX_MAX + 1);
	int rc;
	if ((rc = GROW(m->rep, m->caprep, m->nrep + 1)))
		return rc;
	size_t cap = m->caprep;
	uint64_t *ncc = realloc(m->cc, cap * sizeof *ncc);
	if (!ncc)
		return err_set(MCRDT_ENOMEM, "out of memory adding a replica");
	m->cc = ncc;
	if ((rc = hmap_put(&m->rixmap, replica, m->nrep)))
		return rc;
	m->rep[m->nrep] = replica;
	m->cc[m->nrep] = 0;
	*out = (uint32_t)m->nrep++;
	return 0;
}

crdt_dot dot_of(const crdt_model *m, pdot d)
{
	return (crdt_dot){ m->rep[pdot_rix(d)], pdot_ctr(d) };
}

/* The packed form of a dot whose replica is known, else HMAP_EMPTY. */
static pdot pdot_of(const crdt_model *m, crdt_dot d)
{
	uint32_t rix;
	if (d.counter == 0 || d.counter > PDOT_CTR_MAX || rix_find(m, d.replica, &rix))
		return HMAP_EMPTY;
	return pdot_make(rix, d.counter);
}

/* Whether the model has applied the op named by d. */
static bool seen(const crdt_model *m, crdt_dot d)
{
	uint32_t rix;
	return d.counter && rix_find(m, d.replica, &rix) == 0 && d.counter <= m->cc[rix];
}

static bool covered(const crdt_model *m, const crdt_vv *deps, pdot d)
{
	return pdot_ctr(d) <= crdt_vv_base(deps, m->rep[pdot_rix(d)]);
}

/* The index a GUID maps to in map (mailboxes or messages). */
static int index_of(const crdt_model *m, const struct hmap *map, crdt_dot guid, uint32_t *out)
{
	pdot p = pdot_of(m, guid);
	const uint64_t *v = p == HMAP_EMPTY ? NULL : hmap_get(map, p);
	if (!v)
		return MCRDT_ENOTFOUND;
	*out = (uint32_t)*v;
	return 0;
}

int mbox_index(const crdt_model *m, crdt_dot guid, uint32_t *out)
{
	return index_of(m, &m->mboxids, guid, out);
}

int msg_index(const crdt_model *m, crdt_dot guid, uint32_t *out)
{
	return index_of(m, &m->guids, guid, out);
}

const struct nameval *mbox_name(const struct mbox *b)
{
	const struct nameval *w = NULL;
	for (size_t i = 0; i < b->nnames; i++) {
		const struct nameval *v = &b->names[i];
		if (!w || v->dot.counter > w->dot.counter ||
		    (v->dot.counter == w->dot.counter && v->dot.replica > w->dot.replica))
			w = v;
	}
	return w;
}

int flag_intern(crdt_model *m, const char *name, size_t len, uint32_t *out)
{
	uint64_t h = XXH3_64bits(name, len);
	for (;; h++) {
		if (h == HMAP_EMPTY)
			continue;
		const uint64_t *v = hmap_get(&m->flagids, h);
		if (!v)
			break;
		const char *s = m->flagnames[*v];
		if (strlen(s) == len && memcmp(s, name, len) == 0) {
			*out = (uint32_t)*v;
			return 0;
		}
	}
	int rc = GROW(m->flagnames, m->capflagnames, m->nflagnames + 1);
	if (rc)
		return rc;
	char *c = malloc(len + 1);
	if (!c)
		return err_set(MCRDT_ENOMEM, "out of memory interning a flag");
	memcpy(c, name, len);
	c[len] = '\0';
	if ((rc = hmap_put(&m->flagids, h, m->nflagnames))) {
		free(c);
		return rc;
	}
	m->flagnames[m->nflagnames] = c;
	*out = (uint32_t)m->nflagnames++;
	return 0;
}

static void mark_dirty(crdt_model *m, uint32_t i)
{
	struct msg *x = &m->msgs[i];
	if (x->state & MSG_DIRTY)
		return;
	if (GROW(m->dirty, m->capdirty, m->ndirty + 1))
		return; /* out of memory: this message waits for its next change */
	x->state |= MSG_DIRTY;
	m->dirty[m->ndirty++] = i;
}

/* ------------------------------------------------------------------ */
/* MODSEQ and vanished UIDs                                            */

/* The value a change made now carries: the op being applied, or between
 * ops (settle) the counter as it stands. */
static uint64_t seq_now(const crdt_model *m)
{
	return m->opseq ? m->opseq : m->modseq;
}

static void hms_raise(crdt_model *m, uint32_t space, uint64_t v)
{
	if (v > m->mboxes[space].hms)
		m->mboxes[space].hms = v;
}

/* A visible change to message x: it takes the current value, and so does
 * the HIGHESTMODSEQ of the view showing it. */
static void msg_touch(crdt_model *m, struct msg *x)
{
	uint64_t v = seq_now(m);
	msg_set_modseq(x, v);
	if (x->shown)
		hms_raise(m, x->shown_space, v);
}

/* Room for n more vanished records, made before a change that may need
 * them, so that recording one never fails half-way through it. */
static int van_reserve(crdt_model *m, size_t n)
{
	return GROW(m->van, m->capvan, m->nvan + n);
}

/* x stops being shown: its view records the UID as vanished. */
static void unshow(crdt_model *m, struct msg *x)
{
	if (!x->shown)
		return;
	uint64_t v = seq_now(m);
	/* Room was reserved; should that ever be missed, only the record is lost. */
	if (van_reserve(m, 1) == 0)
		m->van[m->nvan++] = (struct vanished){ x->shown_space, x->shown, v };
	hms_raise(m, x->shown_space, v);
	x->shown = 0;
}

/* ------------------------------------------------------------------ */
/* the meta pool                                                       */

/* Bytes of the pool entry at off (its length prefix included). */
static size_t meta_entry_size(const crdt_model *m, uint32_t off)
{
	const uint8_t *q = m->meta + off;
	size_t n = 0, k = 0;
	for (int shift = 0;; shift += 7) {
		uint8_t c = q[k++];
		n |= (size_t)(c & 0x7f) << shift;
		if (!(c & 0x80))
			return k + n;
	}
}

void msg_meta(const crdt_model *m, const struct msg *x, const uint8_t **p, size_t *len)
{
	static const uint8_t none[1];
	if (x->meta == NONE) {
		*p = none;
		*len = 0;
		return;
	}
	size_t size = meta_entry_size(m, x->meta), pre = 1;
	while (m->meta[x->meta + pre - 1] & 0x80)
		pre++;
	*p = m->meta + x->meta + pre;
	*len = size - pre;
}

/*
 * Copies the live entries into a pool of their size, in message order.
 * A failed allocation leaves the garbage where it is: it costs memory,
 * never correctness.
 */
static void meta_compact(crdt_model *m)
{
	size_t live = m->nmeta - m->metagarbage, at = 0;
	uint8_t *np = live ? malloc(live) : NULL;
	if (live && !np)
		return;
	for (size_t i = 0; i < m->nmsgs; i++) {
		struct msg *x = &m->msgs[i];
		if (!(x->state & MSG_LIVE) || x->meta == NONE)
			continue;
		size_t size = meta_entry_size(m, x->meta);
		memcpy(np + at, m->meta + x->meta, size);
		x->meta = (uint32_t)at;
		at += size;
	}
	free(m->meta);
	m->meta = np;
	m->nmeta = m->capmeta = at;
	m->metagarbage = 0;
}

/* The entry at off is no longer referenced. Compaction waits until
 * garbage is over half the pool and at least one byte per message slot,
 * so that its O(slots) walk is paid for by the bytes it gives back. */
static void meta_drop(crdt_model *m, uint32_t off)
{
	if (off == NONE)
		return;
	m->metagarbage += meta_entry_size(m, off);
	if (m->metagarbage > m->nmeta / 2 && m->metagarbage >= 4096 + m->nmsgs)
		meta_compact(m);
}

int meta_put(crdt_model *m, const uint8_t *p, size_t len, uint32_t *off)
{
	if (len == 0) {
		*off = NONE;
		return 0;
	}
	uint8_t pre[VARINT_MAX];
	size_t npre = varint_put(pre, len), need = m->nmeta + npre + len;
	if (need >= NONE && m->metagarbage) {
		meta_compact(m);
		need = m->nmeta + npre + len;
	}
	if (need >= NONE)
		return err_set(MCRDT_ERANGE, "message metadata fills its 4 GiB pool");
	if (need > m->capmeta) {
		/* Growth by an eighth: the pool is per-message memory, and a
		 * large realloc moves pages rather than bytes. */
		size_t cap = m->capmeta + m->capmeta / 8 + 4096;
		if (cap < need)
			cap = need;
		if (cap > NONE)
			cap = NONE;
		uint8_t *np = realloc(m->meta, cap);
		if (!np)
			return err_set(MCRDT_ENOMEM, "out of memory growing the message metadata pool");
		m->meta = np;
		m->capmeta = cap;
	}
	*off = (uint32_t)m->nmeta;
	memcpy(m->meta + m->nmeta, pre, npre);
	memcpy(m->meta + m->nmeta + npre, p, len);
	m->nmeta = need;
	return 0;
}

/* ------------------------------------------------------------------ */
/* lifecycle                                                           */

int crdt_model_new(crdt_model **out, uint64_t replica)
{
	if (replica == 0 || replica == HMAP_EMPTY)
		return err_set(MCRDT_EINVAL, "replica id must not be 0");
	crdt_model *m = calloc(1, sizeof *m);
	if (!m)
		return err_set(MCRDT_ENOMEM, "out of memory creating a model");
	hmap_init(&m->rixmap);
	hmap_init(&m->guids);
	hmap_init(&m->flagids);
	hmap_init(&m->mboxids);
	hmap_init(&m->claims);
	hmap_init(&m->xclaims);
	hmap_init(&m->pendids);
	crdt_orset_init(&m->subs);
	m->self = replica;
	m->freemsg = NONE;
	m->freef = NONE;
	uint32_t rix;
	int rc = rix_intern(m, replica, &rix);
	if (rc) {
		crdt_model_free(m);
		return rc;
	}
	*out = m;
	return 0;
}

void crdt_model_free(crdt_model *m)
{
	if (!m)
		return;
	free(m->rep);
	free(m->cc);
	hmap_free(&m->rixmap);
	free(m->msgs);
	hmap_free(&m->guids);
	free(m->meta);
	free(m->van);
	free(m->fpool);
	for (size_t i = 0; i < m->nflagnames; i++)
		free(m->flagnames[i]);
	free(m->flagnames);
	hmap_free(&m->flagids);
	for (size_t i = 0; i < m->nmboxes; i++) {
		struct mbox *b = &m->mboxes[i];
		free(b->exists);
		for (size_t k = 0; k < b->nnames; k++)
			free(b->names[k].name);
		free(b->names);
		free(b->members);
		free(b->uids);
	}
	free(m->mboxes);
	hmap_free(&m->mboxids);
	hmap_free(&m->claims);
	hmap_free(&m->xclaims);
	crdt_orset_free(&m->subs);
	free(m->dirty);
	for (size_t i = 0; i < m->npending; i++)
		crdt_op_free(&m->pending[i]);
	free(m->pending);
	hmap_free(&m->pendids);
	free(m);
}

uint64_t crdt_model_replica(const crdt_model *m)
{
	return m->self;
}

uint64_t crdt_model_modseq(const crdt_model *m)
{
	return m->modseq;
}

/* ------------------------------------------------------------------ */
/* messages and flags                                                  */

static void flags_clear(crdt_model *m, struct msg *x)
{
	uint32_t f = x->flags;
	while (f != NONE) {
		uint32_t next = m->fpool[f].next;
		m->fpool[f].next = m->freef;
		m->freef = f;
		m->nf--;
		f = next;
	}
	x->flags = NONE;
}

int fdot_new(crdt_model *m, struct msg *x, pdot dot, uint32_t flag)
{
	uint32_t f = m->freef;
	if (f != NONE) {
		m->freef = m->fpool[f].next;
	} else {
		/* No free slot: every slot below nf is in use. */
		int rc = GROW(m->fpool, m->capf, m->nf + 1);
		if (rc)
			return rc;
		f = (uint32_t)m->nf;
	}
	m->fpool[f] = (struct fdot){ dot, flag, x->flags };
	x->flags = f;
	m->nf++;
	return 0;
}

/* Drops the message's dots for flag (or for every flag when flag is NONE)
 * that deps covers. */
static void flags_drop_covered(crdt_model *m, struct msg *x, uint32_t flag, const crdt_vv *deps)
{
	uint32_t *link = &x->flags;
	while (*link != NONE) {
		struct fdot *d = &m->fpool[*link];
		if ((flag == NONE || d->flag == flag) && covered(m, deps, d->dot)) {
			uint32_t f = *link;
			*link = d->next;
			d->next = m->freef;
			m->freef = f;
			m->nf--;
		} else {
			link = &d->next;
		}
	}
}

static void mbox_check_dead(crdt_model *m, uint32_t bi);

static void msg_remove(crdt_model *m, uint32_t i)
{
	struct msg *x = &m->msgs[i];
	struct mbox *b = &m->mboxes[x->mbox];
	uint32_t last = b->members[--b->nmembers];
	b->members[x->pos] = last;
	m->msgs[last].pos = x->pos & MEMBERS_MAX;
	flags_clear(m, x);
	hmap_del(&m->guids, x->guid);
	if (x->state & MSG_XCLAIMS)
		for (size_t s = 0; s < m->nmboxes; s++)
			hmap_del(&m->xclaims, (uint64_t)s << 32 | i);
	unshow(m, x);
	x->state = 0; /* a dirty-queue entry for it is skipped by settle */
	uint32_t off = x->meta;
	x->meta = NONE; /* out of the compaction's sight before it can run */
	x->claim = m->freemsg;
	m->freemsg = i;
	m->live--;
	meta_drop(m, off);
	mbox_check_dead(m, (uint32_t)x->mbox);
}

static uint32_t newest_claim(const crdt_model *m, uint32_t i, uint32_t space)
{
	const struct msg *x = &m->msgs[i];
	if (space == x->mbox)
		return x->claim;
	if (!(x->state & MSG_XCLAIMS))
		return 0;
	const uint64_t *v = hmap_get(&m->xclaims, (uint64_t)space << 32 | i);
	return v ? (uint32_t)*v : 0;
}

/*
 * The claim slot of uid in space: the message that claimed it, CLAIM_BURNED,
 * or 0. UIDs are claimed at the top of a space, so a dense vector holds
 * them at 8 bytes each. The vector grows only while it stays within four
 * times the claims it holds: a peer's claims far above the rest cost a
 * table slot each, never a vector sized by the UID they name.
 */
static int grow_uids(crdt_model *m, struct mbox *b, uint32_t space, uint32_t uid)
{
	size_t cap = b->capuids ? b->capuids : 1024;
	while (cap <= uid)
		cap *= 2;
	if (cap > 4 * (b->nuids + 1024))
		return 0; /* too sparse: the caller uses the table */
	pdot *nu = realloc(b->uids, cap * sizeof *nu);
	if (!nu)
		return err_set(MCRDT_ENOMEM, "out of memory growing a UID table");
	memset(nu + b->capuids, 0, (cap - b->capuids) * sizeof *nu);
	size_t old = b->capuids;
	b->uids = nu;
	b->capuids = cap;
	/* Claims the table held in the range the vector now covers move in. */
	uint64_t moved[64];
	size_t n;
	do {
		n = 0;
		const struct hmap_slot *sl;
		for (size_t it = 0; n < 64 && hmap_next(&m->claims, &it, &sl);) {
			uint32_t s = (uint32_t)(sl->key >> 32), u = (uint32_t)sl->key;
			if (s == space && u >= old && u < cap)
				moved[n++] = sl->key;
		}
		for (size_t k = 0; k < n; k++) {
			b->uids[(uint32_t)moved[k]] = *hmap_get(&m->claims, moved[k]);
			b->nuids++;
			hmap_del(&m->claims, moved[k]);
		}
	} while (n == 64);
	return 1;
}

const uint64_t *claim_get(const crdt_model *m, uint32_t space, uint32_t uid)
{
	const struct mbox *b = &m->mboxes[space];
	if (uid < b->capuids)
		return &b->uids[uid];
	return hmap_get(&m->claims, (uint64_t)space << 32 | uid);
}

uint64_t *claim_slot(crdt_model *m, uint32_t space, uint32_t uid, bool create)
{
	struct mbox *b = &m->mboxes[space];
	if (uid < b->capuids)
		return &b->uids[uid];
	uint64_t key = (uint64_t)space << 32 | uid;
	uint64_t *v = hmap_get(&m->claims, key);
	if (v || !create)
		return v;
	int grown = grow_uids(m, b, space, uid);
	if (grown < 0)
		return NULL;
	if (grown)
		return &b->uids[uid];
	if (hmap_put(&m->claims, key, 0))
		return NULL;
	return hmap_get(&m->claims, key);
}

static bool burned(const crdt_model *m, uint32_t space, uint32_t uid)
{
	const uint64_t *v = claim_get(m, space, uid);
	return v && *v == CLAIM_BURNED;
}

/*
 * Records a claim of uid in space for the message mguid (live or not). A
 * message whose newest claim changes, or whose claim is burned, is
 * touched (MODSEQ): its UID is about to change.
 */
static int claim_record(crdt_model *m, uint32_t space, pdot mguid, uint32_t uid)
{
	uint64_t *v = claim_slot(m, space, uid, true);
	bool burn = false;
	int rc;
	if (!v)
		return MCRDT_ENOMEM;
	if (*v == 0) {
		*v = mguid;
		if (uid < m->mboxes[space].capuids)
			m->mboxes[space].nuids++;
	} else if (*v != mguid && *v != CLAIM_BURNED) {
		const uint64_t *other = hmap_get(&m->guids, *v);
		*v = CLAIM_BURNED;
		burn = true;
		if (other) {
			mark_dirty(m, (uint32_t)*other);
			msg_touch(m, &m->msgs[*other]);
		}
	}
	struct mbox *b = &m->mboxes[space];
	if (uid > b->hi)
		b->hi = uid;
	const uint64_t *mi = hmap_get(&m->guids, mguid);
	if (!mi)
		return 0;
	uint32_t i = (uint32_t)*mi;
	struct msg *x = &m->msgs[i];
	bool newer = uid > newest_claim(m, i, space);
	if (newer && space == x->mbox) {
		x->claim = uid;
	} else if (newer) {
		if ((rc = hmap_put(&m->xclaims, (uint64_t)space << 32 | i, uid)))
			return rc;
		x->state |= MSG_XCLAIMS;
	}
	if (newer || burn)
		msg_touch(m, x);
	mark_dirty(m, i);
	return 0;
}

/* ------------------------------------------------------------------ */
/* applying ops                                                        */

static int bad_ref(const crdt_op *op, const char *what)
{
	return err_set(MCRDT_ECORRUPT, "%s op %" PRIx64 ".%" PRIu64 " names %s outside its causal past",
		       crdt_op_type_name(op->type), op->id.replica, op->id.counter, what);
}

/* Adds dot to the mailbox's existence set, replacing covered dots. */
static int mbox_assert(crdt_model *m, uint32_t bi, crdt_dot dot, const crdt_vv *deps)
{
	struct mbox *b = &m->mboxes[bi];
	b->nexists = dots_drop_covered(b->exists, b->nexists, deps);
	int rc = dots_push(&b->exists, &b->nexists, &b->capexists, dot);
	if (rc)
		return rc;
	if (!b->live) {
		b->live = true;
		m->names_dirty = true;
	}
	return 0;
}

static int apply_create(crdt_model *m, const crdt_op *op)
{
	int rc;
	if (m->nmboxes >= MBOXES_MAX)
		return err_set(MCRDT_ERANGE, "%zu mailboxes known, the most a replica can", m->nmboxes);
	if ((rc = GROW(m->mboxes, m->capmboxes, m->nmboxes + 1)))
		return rc;
	struct mbox *b = &m->mboxes[m->nmboxes];
	memset(b, 0, sizeof *b);
	b->guid = op->id;
	b->uidvalidity = op->uidvalidity;
	b->canon = (uint32_t)m->nmboxes;
	b->names = malloc(sizeof *b->names);
	char *name = malloc(op->name.len + 1);
	if (!b->names || !name ||
	    (rc = dots_push(&b->exists, &b->nexists, &b->capexists, op->id)) ||
	    (rc = hmap_put(&m->mboxids, pdot_of(m, op->id), m->nmboxes))) {
		free(b->names);
		free(name);
		free(b->exists);
		return rc ? rc : err_set(MCRDT_ENOMEM, "out of memory creating a mailbox");
	}
	memcpy(name, op->name.s, op->name.len + 1);
	b->names[0] = (struct nameval){ op->id, name, op->name.len };
	b->nnames = 1;
	b->live = true;
	b->hms = seq_now(m);
	m->nmboxes++;
	m->names_dirty = true;
	return 0;
}

static int apply_rename(crdt_model *m, const crdt_op *op, uint32_t bi)
{
	struct mbox *b = &m->mboxes[bi];
	char *name = malloc(op->name.len + 1);
	struct nameval *nv = realloc(b->names, (b->nnames + 1) * sizeof *nv);
	if (!name || !nv) {
		free(name);
		if (nv)
			b->names = nv;
		return err_set(MCRDT_ENOMEM, "out of memory renaming a mailbox");
	}
	b->names = nv;
	memcpy(name, op->name.s, op->name.len + 1);
	size_t k = 0;
	for (size_t i = 0; i < b->nnames; i++) {
		if (crdt_vv_contains(&op->deps, nv[i].dot))
			free(nv[i].name);
		else
			nv[k++] = nv[i];
	}
	nv[k++] = (struct nameval){ op->id, name, op->name.len };
	b->nnames = k;
	m->names_dirty = true;
	return 0;
}

/*
 * A mailbox dies when it holds neither an add dot nor a message. With
 * honest ops the first implies the second; a peer's deps that are not
 * causally closed could otherwise strand a live message out of sight.
 */
static void mbox_check_dead(crdt_model *m, uint32_t bi)
{
	struct mbox *b = &m->mboxes[bi];
	if (b->live && b->nexists == 0 && b->nmembers == 0) {
		b->live = false;
		m->names_dirty = true;
	}
}

static void apply_delete(crdt_model *m, const crdt_op *op, uint32_t bi)
{
	struct mbox *b = &m->mboxes[bi];
	b->nexists = dots_drop_covered(b->exists, b->nexists, &op->deps);
	for (size_t k = 0; k < b->nmembers;) {
		uint32_t i = b->members[k];
		if (covered(m, &op->deps, m->msgs[i].guid))
			msg_remove(m, i); /* swaps another member into slot k */
		else
			k++;
	}
	mbox_check_dead(m, bi);
}

static int apply_add_msg(crdt_model *m, const crdt_op *op, uint32_t bi, uint32_t space)
{
	int rc;
	uint32_t flagids[CRDT_FLAGS_MAX];
	for (size_t k = 0; k < op->nflags; k++)
		if ((rc = flag_intern(m, op->flags[k].s, op->flags[k].len, &flagids[k])))
			return rc;
	if (m->freemsg == NONE && (rc = GROW(m->msgs, m->capmsgs, m->nmsgs + 1)))
		return rc;
	struct mbox *b = &m->mboxes[bi];
	if (b->nmembers >= MEMBERS_MAX)
		return err_set(MCRDT_ERANGE, "mailbox holds %zu messages, the most it can", b->nmembers);
	if ((rc = GROW(b->members, b->capmembers, b->nmembers + 1)))
		return rc;
	pdot g = pdot_of(m, op->id);
	uint32_t i = m->freemsg != NONE ? m->freemsg : (uint32_t)m->nmsgs;
	uint32_t meta;
	if ((rc = meta_put(m, op->meta, op->meta_len, &meta)))
		return rc;
	if ((rc = hmap_put(&m->guids, g, i)) || (rc = mbox_assert(m, bi, op->id, &op->deps))) {
		hmap_del(&m->guids, g);
		if (meta != NONE)
			m->metagarbage += meta_entry_size(m, meta);
		return rc;
	}
	if (i == m->freemsg)
		m->freemsg = m->msgs[i].claim;
	else
		m->nmsgs++;
	struct msg *x = &m->msgs[i];
	*x = (struct msg){ .guid = g, .mbox = bi & MBOXES_MAX, .pos = (uint32_t)b->nmembers & MEMBERS_MAX,
			   .state = MSG_LIVE, .flags = NONE, .meta = meta };
	msg_touch(m, x);
	b->members[b->nmembers++] = i;
	m->live++;
	for (size_t k = 0; k < op->nflags; k++)
		if ((rc = fdot_new(m, x, g, flagids[k])))
			return rc;
	mark_dirty(m, i);
	return claim_record(m, space, g, op->uid);
}

static bool flag_present(const crdt_model *m, const struct msg *x, uint32_t flag)
{
	for (uint32_t f = x->flags; f != NONE; f = m->fpool[f].next)
		if (m->fpool[f].flag == flag)
			return true;
	return false;
}

/* Whether flag keeps a dot that deps does not cover. */
static bool flag_survives(const crdt_model *m, const struct msg *x, uint32_t flag,
			  const crdt_vv *deps)
{
	for (uint32_t f = x->flags; f != NONE; f = m->fpool[f].next)
		if (m->fpool[f].flag == flag && !covered(m, deps, m->fpool[f].dot))
			return true;
	return false;
}

/* Whether the flag op will change the set of flags message x shows
 * (judged before it is applied; ids are the op's interned flags). */
static bool flags_change(const crdt_model *m, const struct msg *x, const crdt_op *op,
			 const uint32_t *ids)
{
	bool adds = op->type != CRDT_OP_FLAGS_REMOVE;
	for (size_t k = 0; k < op->nflags; k++) {
		bool had = flag_present(m, x, ids[k]);
		if (adds ? !had : had && !flag_survives(m, x, ids[k], &op->deps))
			return true;
	}
	if (op->type != CRDT_OP_FLAGS_SET)
		return false;
	/* SET also drops the flags it does not name. */
	for (uint32_t f = x->flags; f != NONE; f = m->fpool[f].next) {
		uint32_t flag = m->fpool[f].flag;
		bool named = false;
		for (size_t k = 0; k < op->nflags && !named; k++)
			named = ids[k] == flag;
		if (!named && !flag_survives(m, x, flag, &op->deps))
			return true;
	}
	return false;
}

static int apply_flags(crdt_model *m, const crdt_op *op, uint32_t i)
{
	struct msg *x = &m->msgs[i];
	uint32_t flagids[CRDT_FLAGS_MAX];
	int rc;
	for (size_t k = 0; k < op->nflags; k++)
		if ((rc = flag_intern(m, op->flags[k].s, op->flags[k].len, &flagids[k])))
			return rc;
	if (flags_change(m, x, op, flagids))
		msg_touch(m, x);
	if (op->type == CRDT_OP_FLAGS_SET)
		flags_drop_covered(m, x, NONE, &op->deps);
	else
		for (size_t k = 0; k < op->nflags; k++)
			flags_drop_covered(m, x, flagids[k], &op->deps);
	if (op->type == CRDT_OP_FLAGS_REMOVE)
		return 0;
	pdot d = pdot_of(m, op->id);
	for (size_t k = 0; k < op->nflags; k++)
		if ((rc = fdot_new(m, x, d, flagids[k])))
			return rc;
	return 0;
}

/*
 * Applies an op whose dependencies are all present. Every reference is
 * checked before anything changes, so an invalid op leaves no trace.
 */
static int apply(crdt_model *m, const crdt_op *op)
{
	uint32_t rix, bi = NONE, si = NONE, mi = NONE;
	int rc;
	if ((rc = rix_intern(m, op->id.replica, &rix)))
		return rc;
	/* A peer may only name what its op had observed. */
	if (op->mbox.replica && (!crdt_vv_contains(&op->deps, op->mbox) || mbox_index(m, op->mbox, &bi)))
		return bad_ref(op, "a mailbox");
	if (op->space.replica &&
	    (!crdt_vv_contains(&op->deps, op->space) || mbox_index(m, op->space, &si)))
		return bad_ref(op, "a UID space");
	if (op->msg.replica) {
		if (!seen(m, op->msg) || !crdt_vv_contains(&op->deps, op->msg))
			return bad_ref(op, "a message");
		if (msg_index(m, op->msg, &mi))
			mi = NONE; /* expunged already */
	}
	if (m->modseq >= MODSEQ_MAX)
		return err_set(MCRDT_ERANGE, "MODSEQ has reached its limit");
	/* Room for the UIDs the op may take out of sight. */
	size_t gone = 0;
	if (op->type == CRDT_OP_MBOX_DELETE)
		for (size_t k = 0; k < m->mboxes[bi].nmembers; k++)
			gone += m->msgs[m->mboxes[bi].members[k]].shown != 0;
	else if ((op->type == CRDT_OP_EXPUNGE || op->type == CRDT_OP_MOVE) && mi != NONE)
		gone = m->msgs[mi].shown != 0;
	if (gone && (rc = van_reserve(m, gone)))
		return rc;
	m->opseq = m->modseq + 1;
	switch (op->type) {
	case CRDT_OP_MBOX_CREATE: rc = apply_create(m, op); break;
	case CRDT_OP_MBOX_RENAME: rc = apply_rename(m, op, bi); break;
	case CRDT_OP_MBOX_DELETE: apply_delete(m, op, bi); break;
	case CRDT_OP_SUBSCRIBE:
	case CRDT_OP_UNSUBSCRIBE:
		rc = (op->type == CRDT_OP_SUBSCRIBE ? crdt_orset_add : crdt_orset_remove)(
			&m->subs, op->name.s, op->name.len, op->id, &op->deps);
		break;
	case CRDT_OP_APPEND:
	case CRDT_OP_COPY:
	case CRDT_OP_MOVE:
		rc = apply_add_msg(m, op, bi, si);
		if (!rc && op->type == CRDT_OP_MOVE && mi != NONE)
			msg_remove(m, mi); /* after the add: a failed add removes nothing */
		break;
	case CRDT_OP_EXPUNGE:
		if (mi != NONE)
			msg_remove(m, mi);
		break;
	case CRDT_OP_FLAGS_ADD:
	case CRDT_OP_FLAGS_REMOVE:
	case CRDT_OP_FLAGS_SET:
		if (mi != NONE)
			rc = apply_flags(m, op, mi);
		break;
	case CRDT_OP_CLAIM: rc = claim_record(m, si, pdot_of(m, op->msg), op->uid); break;
	}
	m->opseq = 0;
	if (rc)
		return rc;
	m->modseq++;
	m->cc[rix] = op->id.counter;
	return 0;
}

static bool ready(const crdt_model *m, const crdt_op *op, uint32_t rix)
{
	if (m->cc[rix] + 1 != op->id.counter)
		return false;
	for (size_t k = 0; k < op->deps.n; k++) {
		const struct crdt_vv_entry *e = &op->deps.e[k];
		uint32_t r;
		uint64_t have = rix_find(m, e->replica, &r) == 0 ? m->cc[r] : 0;
		if (have < e->base)
			return false;
	}
	return true;
}

static void pending_drop(crdt_model *m, size_t k)
{
	hmap_del(&m->pendids, pdot_of(m, m->pending[k].id));
	crdt_op_free(&m->pending[k]);
	if (k != --m->npending) {
		m->pending[k] = m->pending[m->npending];
		hmap_put(&m->pendids, pdot_of(m, m->pending[k].id), k); /* overwrite: no growth */
	}
}

/* Applies buffered ops that have become ready, until none is. */
static void drain(crdt_model *m)
{
	bool progress = true;
	while (progress && m->npending) {
		progress = false;
		for (uint32_t r = 0; r < m->nrep && m->npending; r++) {
			if (m->cc[r] >= PDOT_CTR_MAX)
				continue;
			const uint64_t *k = hmap_get(&m->pendids, pdot_make(r, m->cc[r] + 1));
			if (!k || !ready(m, &m->pending[*k], r))
				continue;
			size_t at = (size_t)*k;
			if (apply(m, &m->pending[at]))
				m->rejected++; /* invalid once its past arrived: dropped */
			pending_drop(m, at);
			progress = true;
		}
	}
}

/* Forgets the replica interned last, when an op from a replica never seen
 * before is refused: a refused op leaves no trace. */
static void rix_forget_last(crdt_model *m)
{
	hmap_del(&m->rixmap, m->rep[--m->nrep]);
}

int crdt_model_receive(crdt_model *m, const crdt_op *op)
{
	int rc = crdt_op_validate(op);
	if (rc)
		return rc;
	uint32_t rix;
	bool fresh = rix_find(m, op->id.replica, &rix) != 0;
	if (fresh && (rc = rix_intern(m, op->id.replica, &rix)))
		return rc;
	if (op->id.counter <= m->cc[rix] || hmap_get(&m->pendids, pdot_make(rix, op->id.counter)))
		return MCRDT_EDUPLICATE;
	if (ready(m, op, rix)) {
		if ((rc = apply(m, op))) {
			if (fresh)
				rix_forget_last(m);
			return rc;
		}
		drain(m);
		return 0;
	}
	if (m->npending >= CRDT_PENDING_MAX)
		rc = err_set(MCRDT_ETOOBIG, "%zu ops already wait for their dependencies", m->npending);
	else if (!(rc = GROW(m->pending, m->cappending, m->npending + 1)) &&
		 !(rc = crdt_op_copy(&m->pending[m->npending], op)) &&
		 (rc = hmap_put(&m->pendids, pdot_make(rix, op->id.counter), m->npending)))
		crdt_op_free(&m->pending[m->npending]);
	if (rc) {
		if (fresh)
			rix_forget_last(m);
		return rc;
	}
	m->npending++;
	return MCRDT_EPENDING;
}

size_t crdt_model_pending(const crdt_model *m)
{
	return m->npending;
}

size_t crdt_model_rejected(const crdt_model *m)
{
	return m->rejected;
}

void crdt_model_assume_shown(crdt_model *m)
{
	for (size_t i = 0; i < m->nmboxes; i++) {
		struct mbox *b = &m->mboxes[i];
		if (b->hi > b->shown_max)
			b->shown_max = b->hi;
		/* What clients saw before may have been higher: never go back. */
		if (m->modseq > b->hms)
			b->hms = m->modseq;
	}
	m->van_floor = m->modseq;
}

const crdt_op *crdt_model_pending_op(const crdt_model *m, size_t i)
{
	return i < m->npending ? &m->pending[i] : NULL;
}

/* ------------------------------------------------------------------ */
/* local ops                                                           */

static void drain(crdt_model *m);

/* Names op as this replica's next and gives it the context as deps. */
static int stamp(crdt_model *m, crdt_op *op)
{
	op->id = (crdt_dot){ m->self, m->cc[0] + 1 };
	crdt_vv_clear(&op->deps);
	for (size_t r = 0; r < m->nrep; r++) {
		if (m->cc[r]) {
			int rc = crdt_vv_set_base(&op->deps, m->rep[r], m->cc[r]);
			if (rc)
				return rc;
		}
	}
	return 0;
}

/* Stamps, applies and hands over a local op; op is consumed either way. */
static int issue(crdt_model *m, crdt_oplist *out, crdt_op *op)
{
	int rc = stamp(m, op);
	if (!rc)
		rc = crdt_op_validate(op);
	if (!rc)
		rc = apply(m, op);
	if (!rc) {
		rc = crdt_oplist_push(out, op);
		drain(m); /* a peer's op may have waited for this one */
	}
	crdt_op_free(op);
	return rc;
}

static int recompute_groups(crdt_model *m);
static int cmp_name(const struct nameval *nx, const struct nameval *ny);

/* The canonical index of the visible mailbox a GUID belongs to. */
static int visible_mbox(crdt_model *m, crdt_dot guid, uint32_t *out)
{
	uint32_t bi;
	int rc;
	*out = NONE; /* (set on every path: gcc -O3 cannot tell err_set is never 0) */
	if (mbox_index(m, guid, &bi) || !m->mboxes[bi].live)
		return err_set(MCRDT_ENOTFOUND, "no mailbox %" PRIx64 ".%" PRIu64, guid.replica,
			       guid.counter);
	if ((rc = recompute_groups(m)))
		return rc;
	*out = m->mboxes[bi].canon;
	return 0;
}

static int check_name(const char *name, size_t *len)
{
	*len = name ? strlen(name) : 0;
	if (*len == 0 || *len > CRDT_NAME_MAX)
		return err_set(MCRDT_EINVAL, "mailbox name must be 1 to %d bytes", CRDT_NAME_MAX);
	for (size_t i = 0; i < *len; i++)
		if ((unsigned char)name[i] < 0x20 || name[i] == 0x7f)
			return err_set(MCRDT_EINVAL, "mailbox name has a control character");
	return 0;
}

int crdt_model_find(const crdt_model *m, const char *name, crdt_dot *guid_out)
{
	struct nameval want = { { 0, 0 }, (char *)name, strlen(name) };
	for (size_t i = 0; i < m->nmboxes; i++) {
		const struct mbox *b = &m->mboxes[i];
		if (b->live && cmp_name(mbox_name(b), &want) == 0) {
			/* The view's GUID is its leader's (current after settle). */
			const struct mbox *lead = &m->mboxes[b->canon];
			*guid_out = lead->live ? lead->guid : b->guid;
			return 0;
		}
	}
	return err_set(MCRDT_ENOTFOUND, "no mailbox named '%s'", name);
}

int crdt_model_create(crdt_model *m, crdt_oplist *out, const char *name, uint32_t uidvalidity,
		      crdt_dot *guid_out)
{
	size_t len;
	crdt_dot g;
	int rc = check_name(name, &len);
	if (rc)
		return rc;
	if (uidvalidity == 0)
		return err_set(MCRDT_EINVAL, "UIDVALIDITY must not be 0");
	if (crdt_model_find(m, name, &g) == 0)
		return err_set(MCRDT_EEXISTS, "mailbox '%s' exists", name);
	/* Above every UIDVALIDITY known (mailboxes made in the same second,
	 * or with a peer's clock ahead): a known mailbox is never the one
	 * that has to give way, so its UIDVALIDITY stays as clients saw it. */
	for (size_t i = 0; i < m->nmboxes; i++)
		if (m->mboxes[i].uv_eff >= uidvalidity && m->mboxes[i].uv_eff < UINT32_MAX)
			uidvalidity = m->mboxes[i].uv_eff + 1;
	crdt_op op;
	crdt_op_init(&op, CRDT_OP_MBOX_CREATE);
	op.uidvalidity = uidvalidity;
	if ((rc = crdt_op_set_name(&op, name, len))) {
		crdt_op_free(&op);
		return rc;
	}
	crdt_dot id = { m->self, m->cc[0] + 1 };
	if ((rc = issue(m, out, &op)))
		return rc;
	if (guid_out)
		*guid_out = id;
	return 0;
}

/* Issues one op of type for every live member of the visible mailbox. */
static int for_group(crdt_model *m, crdt_oplist *out, uint32_t canon, enum crdt_op_type type,
		     const char *name, size_t len)
{
	/* Collect first: applying a delete changes liveness under us. */
	crdt_dot *members = malloc((m->nmboxes ? m->nmboxes : 1) * sizeof *members);
	if (!members)
		return err_set(MCRDT_ENOMEM, "out of memory");
	size_t n = 0;
	for (size_t i = 0; i < m->nmboxes; i++)
		if (m->mboxes[i].live && m->mboxes[i].canon == canon)
			members[n++] = m->mboxes[i].guid;
	int rc = 0;
	for (size_t k = 0; rc == 0 && k < n; k++) {
		crdt_op op;
		crdt_op_init(&op, type);
		op.mbox = members[k];
		if (name && (rc = crdt_op_set_name(&op, name, len)))
			crdt_op_free(&op);
		else
			rc = issue(m, out, &op);
	}
	free(members);
	return rc;
}

int crdt_model_rename(crdt_model *m, crdt_oplist *out, crdt_dot mbox, const char *name)
{
	size_t len;
	uint32_t canon;
	crdt_dot g;
	int rc = check_name(name, &len);
	if (rc || (rc = visible_mbox(m, mbox, &canon)))
		return rc;
	if (crdt_model_find(m, name, &g) == 0)
		return err_set(MCRDT_EEXISTS, "mailbox '%s' exists", name);
	return for_group(m, out, canon, CRDT_OP_MBOX_RENAME, name, len);
}

int crdt_model_delete(crdt_model *m, crdt_oplist *out, crdt_dot mbox)
{
	uint32_t canon;
	int rc = visible_mbox(m, mbox, &canon);
	return rc ? rc : for_group(m, out, canon, CRDT_OP_MBOX_DELETE, NULL, 0);
}

/* Whether mailbox b ever held a message or a UID claim. */
static bool mbox_used(const struct mbox *b)
{
	return b->nmembers > 0 || b->hi > 0;
}

int crdt_model_give_way(crdt_model *m, crdt_oplist *out, size_t *n_out)
{
	size_t n = 0;
	int rc = 0;
	for (size_t i = 0; rc == 0 && i < m->nmboxes; i++) {
		const struct mbox *b = &m->mboxes[i];
		const struct nameval *bn = mbox_name(b);
		if (!b->live || b->guid.replica != m->self || mbox_used(b) || !bn)
			continue;
		bool other = false;
		for (size_t k = 0; k < m->nmboxes && !other; k++) {
			const struct mbox *c = &m->mboxes[k];
			const struct nameval *cn = mbox_name(c);
			other = k != i && c->live && c->guid.replica != m->self && mbox_used(c) && cn &&
				cn->len == bn->len && memcmp(cn->name, bn->name, bn->len) == 0;
		}
		if (!other)
			continue;
		crdt_op op;
		crdt_op_init(&op, CRDT_OP_MBOX_DELETE);
		op.mbox = b->guid;
		if ((rc = issue(m, out, &op)) == 0)
			n++;
	}
	if (n_out)
		*n_out = n;
	return rc;
}

int crdt_model_subscribe(crdt_model *m, crdt_oplist *out, const char *name, bool on)
{
	size_t len;
	int rc = check_name(name, &len);
	if (rc)
		return rc;
	crdt_op op;
	crdt_op_init(&op, on ? CRDT_OP_SUBSCRIBE : CRDT_OP_UNSUBSCRIBE);
	if ((rc = crdt_op_set_name(&op, name, len))) {
		crdt_op_free(&op);
		return rc;
	}
	return issue(m, out, &op);
}

static int set_flags(crdt_op *op, const char *const *flags, size_t nflags)
{
	for (size_t k = 0; k < nflags; k++) {
		size_t len = strlen(flags[k]);
		if (len == 0 || len > CRDT_FLAG_MAX)
			return err_set(MCRDT_EINVAL, "a flag must be 1 to %d bytes", CRDT_FLAG_MAX);
		for (size_t i = 0; i < len; i++)
			if ((unsigned char)flags[k][i] <= 0x20 || flags[k][i] == 0x7f)
				return err_set(MCRDT_EINVAL, "flag '%s' has a space or control character",
					       flags[k]);
		int rc = crdt_op_add_flag(op, flags[k], len);
		if (rc)
			return rc;
	}
	return 0;
}

/* Fills the claim of a message-adding op for the visible mailbox canon. */
static void claim_next(crdt_model *m, crdt_op *op, uint32_t canon)
{
	op->mbox = m->mboxes[canon].guid;
	op->space = m->mboxes[canon].guid;
	op->uid = m->mboxes[canon].hi + 1;
}

static int add_msg(crdt_model *m, crdt_oplist *out, crdt_op *op, uint32_t canon,
		   const void *meta, size_t meta_len, crdt_dot *guid_out, uint32_t *uid_out)
{
	int rc = 0;
	if (m->mboxes[canon].hi >= CRDT_UID_MAX)
		rc = err_set(MCRDT_ERANGE, "mailbox has used every UID");
	if (!rc && meta)
		rc = crdt_op_set_meta(op, meta, meta_len);
	if (rc) {
		crdt_op_free(op);
		return rc;
	}
	claim_next(m, op, canon);
	crdt_dot id = { m->self, m->cc[0] + 1 };
	uint32_t uid = op->uid;
	if ((rc = issue(m, out, op)))
		return rc;
	if (guid_out)
		*guid_out = id;
	if (uid_out)
		*uid_out = uid;
	return 0;
}

int crdt_model_append(crdt_model *m, crdt_oplist *out, crdt_dot mbox, const char *const *flags,
		      size_t nflags, const void *meta, size_t meta_len, crdt_dot *guid_out,
		      uint32_t *uid_out)
{
	uint32_t canon;
	int rc = visible_mbox(m, mbox, &canon);
	if (rc)
		return rc;
	crdt_op op;
	crdt_op_init(&op, CRDT_OP_APPEND);
	if ((rc = set_flags(&op, flags, nflags))) {
		crdt_op_free(&op);
		return rc;
	}
	return add_msg(m, out, &op, canon, meta, meta_len, guid_out, uid_out);
}

static int live_msg(const crdt_model *m, crdt_dot msg, uint32_t *out)
{
	if (msg_index(m, msg, out))
		return err_set(MCRDT_ENOTFOUND, "no message %" PRIx64 ".%" PRIu64, msg.replica,
			       msg.counter);
	return 0;
}

static int cmp_cstr(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

int msg_flag_names_into(const crdt_model *m, uint32_t i, const char ***buf, size_t *cap,
			size_t *n_out)
{
	size_t n = 0;
	for (uint32_t f = m->msgs[i].flags; f != NONE; f = m->fpool[f].next)
		n++;
	if (n > *cap) {
		size_t want = n > 8 ? n : 8;
		const char **v = realloc(*buf, want * sizeof *v);
		if (!v)
			return err_set(MCRDT_ENOMEM, "out of memory listing flags");
		*buf = v;
		*cap = want;
	}
	const char **v = *buf;
	n = 0;
	for (uint32_t f = m->msgs[i].flags; f != NONE; f = m->fpool[f].next)
		v[n++] = m->flagnames[m->fpool[f].flag];
	if (n > 16) {
		qsort(v, n, sizeof *v, cmp_cstr);
	} else {
		/* A message has a handful of flags: insertion sort, no calls. */
		for (size_t j = 1; j < n; j++) {
			const char *s = v[j];
			size_t at = j;
			for (; at > 0 && strcmp(v[at - 1], s) > 0; at--)
				v[at] = v[at - 1];
			v[at] = s;
		}
	}
	size_t k = 0;
	for (size_t j = 0; j < n; j++)
		if (k == 0 || v[k - 1] != v[j]) /* concurrent adds: one flag, two dots */
			v[k++] = v[j];
	*n_out = k;
	return 0;
}

int msg_flag_names(const crdt_model *m, uint32_t i, const char ***out, size_t *n_out)
{
	size_t cap = 0;
	*out = NULL;
	return msg_flag_names_into(m, i, out, &cap, n_out);
}

int crdt_model_copy(crdt_model *m, crdt_oplist *out, crdt_dot msg, crdt_dot mbox, bool move,
		    const void *meta, size_t meta_len, crdt_dot *guid_out, uint32_t *uid_out)
{
	uint32_t canon = 0, i = 0;
	const char **names;
	size_t n;
	int rc;
	if ((rc = live_msg(m, msg, &i)) || (rc = visible_mbox(m, mbox, &canon)) ||
	    (rc = msg_flag_names(m, i, &names, &n)))
		return rc;
	/* The copy carries up to an op's worth of flags; FLAGS_ADD ops on the
	 * new message carry the rest. */
	crdt_op op;
	crdt_op_init(&op, move ? CRDT_OP_MOVE : CRDT_OP_COPY);
	op.msg = msg;
	size_t first = n < CRDT_FLAGS_MAX ? n : CRDT_FLAGS_MAX;
	rc = set_flags(&op, names, first);
	crdt_dot g;
	if (rc)
		crdt_op_free(&op);
	else
		rc = add_msg(m, out, &op, canon, meta, meta_len, &g, uid_out);
	for (size_t at = first; rc == 0 && at < n; at += CRDT_FLAGS_MAX)
		rc = crdt_model_flags(m, out, g, CRDT_OP_FLAGS_ADD, names + at,
				      n - at < CRDT_FLAGS_MAX ? n - at : CRDT_FLAGS_MAX);
	free(names);
	if (rc == 0 && guid_out)
		*guid_out = g;
	return rc;
}

int crdt_model_expunge(crdt_model *m, crdt_oplist *out, crdt_dot msg)
{
	uint32_t i;
	int rc = live_msg(m, msg, &i);
	if (rc)
		return rc;
	crdt_op op;
	crdt_op_init(&op, CRDT_OP_EXPUNGE);
	op.msg = msg;
	return issue(m, out, &op);
}

int crdt_model_flags(crdt_model *m, crdt_oplist *out, crdt_dot msg, enum crdt_op_type type,
		     const char *const *flags, size_t nflags)
{
	uint32_t i;
	int rc;
	if (type != CRDT_OP_FLAGS_ADD && type != CRDT_OP_FLAGS_REMOVE && type != CRDT_OP_FLAGS_SET)
		return err_set(MCRDT_EINVAL, "not a flag change");
	if ((rc = live_msg(m, msg, &i)))
		return rc;
	crdt_op op;
	crdt_op_init(&op, type);
	op.msg = msg;
	if ((rc = set_flags(&op, flags, nflags))) {
		crdt_op_free(&op);
		return rc;
	}
	return issue(m, out, &op);
}

/* ------------------------------------------------------------------ */
/* settling UIDs                                                       */

static _Thread_local const crdt_model *sort_model; /* qsort has no context argument */

static int cmp_name(const struct nameval *nx, const struct nameval *ny)
{
	size_t n = nx->len < ny->len ? nx->len : ny->len;
	int c = memcmp(nx->name, ny->name, n);
	if (c)
		return c;
	return nx->len < ny->len ? -1 : nx->len > ny->len;
}

/* By name, then the highest effective UIDVALIDITY first. */
static int cmp_by_name(const void *a, const void *b)
{
	const struct mbox *x = &sort_model->mboxes[*(const uint32_t *)a];
	const struct mbox *y = &sort_model->mboxes[*(const uint32_t *)b];
	int c = cmp_name(mbox_name(x), mbox_name(y));
	if (c)
		return c;
	return x->uv_eff > y->uv_eff ? -1 : x->uv_eff < y->uv_eff;
}

static int cmp_by_uidvalidity(const void *a, const void *b)
{
	const struct mbox *x = &sort_model->mboxes[*(const uint32_t *)a];
	const struct mbox *y = &sort_model->mboxes[*(const uint32_t *)b];
	return mbox_rank_cmp(x, y);
}

static void mark_members_dirty(crdt_model *m, uint32_t bi)
{
	for (size_t k = 0; k < m->mboxes[bi].nmembers; k++)
		mark_dirty(m, m->mboxes[bi].members[k]);
}

/*
 * Effective UIDVALIDITY, then groups.
 *
 * Every UID space needs a UIDVALIDITY of its own, or a client could see a
 * UID name another message under an unchanged UIDVALIDITY (two replicas
 * creating one name in the same second, or a name deleted and created
 * again with the value it had). So, over every mailbox ever known in
 * (UIDVALIDITY, GUID) order, each takes the larger of its own value and
 * one more than the one before. Knowing more mailboxes can only raise a
 * value, never lower it.
 *
 * Live mailboxes with the same effective name form one visible mailbox,
 * led by the member with the highest effective UIDVALIDITY: when a
 * concurrent create makes the view change spaces, its UIDVALIDITY rises.
 */
static int recompute_groups(crdt_model *m)
{
	if (!m->names_dirty)
		return 0;
	uint32_t *idx = malloc((m->nmboxes ? m->nmboxes : 1) * sizeof *idx);
	if (!idx)
		return err_set(MCRDT_ENOMEM, "out of memory grouping mailboxes");
	sort_model = m;
	for (uint32_t i = 0; i < m->nmboxes; i++)
		idx[i] = i;
	if (m->nmboxes)
		qsort(idx, m->nmboxes, sizeof *idx, cmp_by_uidvalidity);
	uint32_t prev = 0;
	for (size_t k = 0; k < m->nmboxes; k++) {
		struct mbox *b = &m->mboxes[idx[k]];
		uint32_t uv = b->uidvalidity > prev || prev == UINT32_MAX ? b->uidvalidity : prev + 1;
		if (uv != b->uv_eff) {
			b->uv_eff = uv;
			mark_members_dirty(m, idx[k]);
		}
		prev = uv;
	}
	size_t n = 0;
	for (uint32_t i = 0; i < m->nmboxes; i++) {
		if (m->mboxes[i].live)
			idx[n++] = i;
		else
			m->mboxes[i].canon = i;
	}
	if (n)
		qsort(idx, n, sizeof *idx, cmp_by_name);
	uint32_t lead = NONE;
	for (size_t k = 0; k < n; k++) {
		if (k == 0 || cmp_name(mbox_name(&m->mboxes[idx[k - 1]]), mbox_name(&m->mboxes[idx[k]])))
			lead = idx[k]; /* first of its name: highest UIDVALIDITY */
		struct mbox *b = &m->mboxes[idx[k]];
		if (b->canon != lead) {
			b->canon = lead;
			mark_members_dirty(m, idx[k]);
		}
	}
	free(idx);
	m->names_dirty = false;
	return 0;
}

/* Shows x at uid in space. It keeps the MODSEQ of the last op that changed
 * it (its append, a flag change, the claim that moved it): every message a
 * settle shows was changed by an op of the batch it settles, so that value
 * is above anything a client saw before, and a log replayed in one batch
 * gives each message the value it had when the ops came one by one. */
static void show(crdt_model *m, struct msg *x, uint32_t space, uint32_t uid)
{
	x->shown = uid;
	x->shown_space = space & MBOXES_MAX;
	struct mbox *b = &m->mboxes[space];
	if (uid > b->hi)
		b->hi = uid;
	hms_raise(m, space, msg_modseq(x));
}

struct reclaim {
	uint32_t space;
	uint32_t msg;
	crdt_dot guid;
};

static int cmp_reclaim(const void *a, const void *b)
{
	const struct reclaim *x = a, *y = b;
	if (x->space != y->space)
		return x->space < y->space ? -1 : 1;
	return crdt_dot_cmp(x->guid, y->guid);
}

int crdt_model_settle(crdt_model *m, crdt_oplist *out)
{
	int rc = recompute_groups(m);
	if (rc)
		return rc;
	struct reclaim *re = NULL;
	size_t nre = 0, capre = 0;
	/* Decide against what was shown before this batch: shown_max moves only
	 * after every decision is made (see DESIGN.md "IMAP view" (b)). */
	uint32_t *newmax = calloc(m->nmboxes ? m->nmboxes : 1, sizeof *newmax);
	if (!newmax)
		return err_set(MCRDT_ENOMEM, "out of memory settling UIDs");
	/* Each queued message that is shown stops being shown at most once. */
	size_t shown = 0;
	for (size_t k = 0; k < m->ndirty; k++)
		shown += m->msgs[m->dirty[k]].shown != 0;
	if ((rc = van_reserve(m, shown))) {
		free(newmax);
		return rc;
	}
	for (size_t k = 0; k < m->ndirty; k++) {
		uint32_t i = m->dirty[k];
		struct msg *x = &m->msgs[i];
		if (!(x->state & MSG_DIRTY))
			continue; /* freed, or queued twice through slot reuse */
		x->state &= ~MSG_DIRTY & 7;
		uint32_t c = m->mboxes[x->mbox].canon;
		uint32_t u = newest_claim(m, i, c);
		bool same = x->shown == u && x->shown_space == c;
		if (u && !burned(m, c, u) && (same || u > m->mboxes[c].shown_max)) {
			if (!same) {
				unshow(m, x);
				show(m, x, c, u);
			}
			if (u > newmax[c])
				newmax[c] = u;
			continue;
		}
		if (x->shown)
			unshow(m, x);
		if ((rc = GROW(re, capre, nre + 1))) {
			x->state |= MSG_DIRTY; /* still queued: the next settle retries */
			goto out;
		}
		re[nre++] = (struct reclaim){ c, i, dot_of(m, x->guid) };
	}
	m->ndirty = 0;
	for (size_t b = 0; b < m->nmboxes; b++)
		if (newmax[b] > m->mboxes[b].shown_max)
			m->mboxes[b].shown_max = newmax[b];
	if (nre)
		qsort(re, nre, sizeof *re, cmp_reclaim);
	size_t k;
	for (k = 0; k < nre; k++) {
		struct mbox *b = &m->mboxes[re[k].space];
		if (b->hi >= CRDT_UID_MAX) {
			rc = err_set(MCRDT_ERANGE, "mailbox has used every UID");
			break;
		}
		crdt_op op;
		crdt_op_init(&op, CRDT_OP_CLAIM);
		op.msg = re[k].guid;
		op.space = b->guid;
		op.uid = b->hi + 1;
		if ((rc = issue(m, out, &op)))
			break;
		struct msg *x = &m->msgs[re[k].msg];
		show(m, x, re[k].space, b->hi);
		b->shown_max = b->hi;
	}
	/* Messages left without a UID by a failure are settled next time. */
	for (; k < nre; k++)
		mark_dirty(m, re[k].msg);
	if (rc)
		goto out;
	/* The claims just issued queued their messages again; they are settled.
	 * Anything else queued meanwhile waits for the next settle. */
	for (k = 0; k < nre; k++)
		m->msgs[re[k].msg].state &= ~MSG_DIRTY & 7;
	size_t keep = 0;
	for (size_t d = 0; d < m->ndirty; d++)
		if (m->msgs[m->dirty[d]].state & MSG_DIRTY)
			m->dirty[keep++] = m->dirty[d];
	m->ndirty = keep;
	if (keep == 0 && m->capdirty > 4096) {
		/* A big batch is over: give its queue back. */
		free(m->dirty);
		m->dirty = NULL;
		m->capdirty = 0;
	}
out:
	free(newmax);
	free(re);
	return rc;
}
