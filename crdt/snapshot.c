/*
 * crdt/snapshot.c — the model's whole state as bytes and back, so that a
 * replica opens from a snapshot plus the log's tail instead of replaying
 * its whole history.
 *
 * Everything is a varint (common/varint.h). Local indexes (replicas,
 * flags, mailboxes) are saved in their order and restored to the same
 * numbers, so packed dots and claim slots are written as they are. The
 * loader checks every count against what is left and every index against
 * what exists: a damaged snapshot is refused, never half-loaded.
 *
 * Version 2 adds what is this replica's own rather than converging state:
 * the MODSEQ counter, each UID space's HIGHESTMODSEQ, each message's MODSEQ
 * and meta bytes, and the vanished UIDs, so that a loaded replica goes on
 * counting exactly as the saved one would have.
 */
#include "crdt/model_int.h"

#include <stdlib.h>
#include <string.h>

#include "common/error.h"
#include "common/grow.h"
#include "common/varint.h"
#include "crdt/dotlist.h"

#define SNAP_VERSION 2

static void put_dot(struct vbuf *b, crdt_dot d)
{
	vput(b, d.replica);
	vput(b, d.counter);
}

static size_t xclaims_of(const crdt_model *m, uint32_t i, struct vbuf *b)
{
	size_t n = 0;
	for (uint32_t s = 0; s < m->nmboxes; s++) {
		const uint64_t *v = hmap_get(&m->xclaims, (uint64_t)s << 32 | i);
		if (v && b) {
			vput(b, s);
			vput(b, *v);
		}
		n += v != NULL;
	}
	return n;
}

int crdt_model_save(const crdt_model *m, uint8_t **out, size_t *len)
{
	if (m->ndirty || m->names_dirty)
		return err_set(MCRDT_EINVAL, "settle the model before saving it");
	struct vbuf b = { 0 };
	vput(&b, SNAP_VERSION);
	vput(&b, m->self);
	vput(&b, m->nrep);
	for (size_t r = 0; r < m->nrep; r++) {
		vput(&b, m->rep[r]);
		vput(&b, m->cc[r]);
	}
	vput(&b, m->modseq);
	vput(&b, m->nflagnames);
	for (size_t f = 0; f < m->nflagnames; f++)
		vput_bytes(&b, m->flagnames[f], strlen(m->flagnames[f]));
	vput(&b, m->nmboxes);
	for (uint32_t i = 0; i < m->nmboxes; i++) {
		const struct mbox *x = &m->mboxes[i];
		put_dot(&b, x->guid);
		vput(&b, x->uidvalidity);
		vput(&b, x->uv_eff);
		vput(&b, x->live);
		vput(&b, x->canon);
		vput(&b, x->hi);
		vput(&b, x->shown_max);
		vput(&b, x->hms);
		vput(&b, x->nexists);
		for (size_t k = 0; k < x->nexists; k++)
			put_dot(&b, x->exists[k]);
		vput(&b, x->nnames);
		for (size_t k = 0; k < x->nnames; k++) {
			put_dot(&b, x->names[k].dot);
			vput_bytes(&b, x->names[k].name, x->names[k].len);
		}
		/* Claims in this space: the dense vector, then the table. */
		size_t n = 0;
		for (size_t u = 0; u < x->capuids; u++)
			n += x->uids[u] != 0;
		const struct hmap_slot *sl;
		for (size_t it = 0; hmap_next(&m->claims, &it, &sl);)
			n += (uint32_t)(sl->key >> 32) == i;
		vput(&b, n);
		for (size_t u = 0; u < x->capuids; u++)
			if (x->uids[u]) {
				vput(&b, u);
				vput(&b, x->uids[u]);
			}
		for (size_t it = 0; hmap_next(&m->claims, &it, &sl);)
			if ((uint32_t)(sl->key >> 32) == i) {
				vput(&b, (uint32_t)sl->key);
				vput(&b, sl->val);
			}
	}
	vput(&b, m->live);
	for (uint32_t i = 0; i < m->nmsgs; i++) {
		const struct msg *x = &m->msgs[i];
		if (!(x->state & MSG_LIVE))
			continue;
		vput(&b, x->guid);
		vput(&b, x->mbox);
		vput(&b, x->claim);
		vput(&b, x->shown);
		vput(&b, x->shown_space);
		vput(&b, msg_modseq(x));
		const uint8_t *meta;
		size_t meta_len;
		msg_meta(m, x, &meta, &meta_len);
		vput_bytes(&b, meta, meta_len);
		size_t nf = 0;
		for (uint32_t f = x->flags; f != NONE; f = m->fpool[f].next)
			nf++;
		vput(&b, nf);
		for (uint32_t f = x->flags; f != NONE; f = m->fpool[f].next) {
			vput(&b, m->fpool[f].flag);
			vput(&b, m->fpool[f].dot);
		}
		vput(&b, x->state & MSG_XCLAIMS ? xclaims_of(m, i, NULL) : 0);
		if (x->state & MSG_XCLAIMS)
			xclaims_of(m, i, &b);
	}
	const crdt_orset *subs = &m->subs;
	vput(&b, subs->n);
	for (size_t i = 0; i < subs->n; i++) {
		vput_bytes(&b, subs->e[i].bytes, subs->e[i].len);
		vput(&b, subs->e[i].ndots);
		for (size_t k = 0; k < subs->e[i].ndots; k++)
			put_dot(&b, subs->e[i].dots[k]);
	}
	vput(&b, subs->cc.n);
	for (size_t i = 0; i < subs->cc.n; i++) {
		const struct crdt_vv_entry *e = &subs->cc.e[i];
		vput(&b, e->replica);
		vput(&b, e->base);
		vput(&b, e->nextra);
		for (size_t k = 0; k < e->nextra; k++)
			vput(&b, e->extra[k]);
	}
	vput(&b, m->nvan);
	for (size_t i = 0; i < m->nvan; i++) {
		vput(&b, m->van[i].space);
		vput(&b, m->van[i].uid);
		vput(&b, m->van[i].modseq);
	}
	if (b.err) {
		vbuf_free(&b);
		return MCRDT_ENOMEM;
	}
	*out = b.p;
	*len = b.len;
	return 0;
}

/* ---- loading ---- */

struct loader {
	struct vreader r;
	crdt_model *m;
};

static int fail(struct loader *l, const char *what)
{
	if (!l->r.err)
		l->r.err = err_set(MCRDT_ECORRUPT, "snapshot: %s", what);
	return l->r.err;
}

/* A count of items that each take at least one byte: bounded by what is left. */
static uint64_t count(struct loader *l, const char *what)
{
	return vread_max(&l->r, (uint64_t)(l->r.end - l->r.p), what);
}

static crdt_dot get_dot(struct loader *l)
{
	crdt_dot d;
	d.replica = vread(&l->r);
	d.counter = vread(&l->r);
	if (!l->r.err && (d.replica == 0 || d.counter == 0))
		fail(l, "zero dot");
	return d;
}

/* A packed dot naming a known replica and a counter it has reached. */
static pdot get_pdot(struct loader *l)
{
	pdot d = vread(&l->r);
	if (!l->r.err && (pdot_rix(d) >= l->m->nrep || pdot_ctr(d) == 0 ||
			  pdot_ctr(d) > l->m->cc[pdot_rix(d)]))
		fail(l, "dot outside the replica's context");
	return l->r.err ? 0 : d;
}

static char *get_str(struct loader *l, size_t max, size_t *len, const char *what)
{
	uint64_t n = vread_max(&l->r, max, what);
	const uint8_t *s = vread_bytes(&l->r, n, what);
	char *c = s ? malloc(n + 1) : NULL;
	if (s && !c)
		l->r.err = err_set(MCRDT_ENOMEM, "out of memory loading a snapshot");
	if (!c)
		return NULL;
	memcpy(c, s, n);
	c[n] = '\0';
	*len = n;
	return c;
}

static void load_mailboxes(struct loader *l)
{
	crdt_model *m = l->m;
	uint64_t n = count(l, "mailbox count");
	if (!l->r.err && n > MBOXES_MAX)
		fail(l, "more mailboxes than a replica can hold");
	if (!l->r.err && n && !(m->mboxes = calloc(n, sizeof *m->mboxes)))
		l->r.err = err_set(MCRDT_ENOMEM, "out of memory loading a snapshot");
	m->capmboxes = l->r.err ? 0 : n;
	for (uint64_t i = 0; !l->r.err && i < n; i++) {
		struct mbox *x = &m->mboxes[i];
		m->nmboxes++;
		x->guid = get_dot(l);
		x->uidvalidity = (uint32_t)vread_max(&l->r, UINT32_MAX, "UIDVALIDITY");
		x->uv_eff = (uint32_t)vread_max(&l->r, UINT32_MAX, "UIDVALIDITY");
		x->live = vread_max(&l->r, 1, "liveness") != 0;
		x->canon = (uint32_t)vread_max(&l->r, n - 1, "mailbox index");
		x->hi = (uint32_t)vread_max(&l->r, UINT32_MAX, "UID");
		x->shown_max = (uint32_t)vread_max(&l->r, x->hi, "UID");
		x->hms = vread_max(&l->r, m->modseq, "HIGHESTMODSEQ");
		uint64_t ne = count(l, "add dot count");
		for (uint64_t k = 0; !l->r.err && k < ne; k++) {
			crdt_dot d = get_dot(l);
			if (!l->r.err && dots_push(&x->exists, &x->nexists, &x->capexists, d))
				l->r.err = MCRDT_ENOMEM;
		}
		uint64_t nn = count(l, "name count");
		if (!l->r.err && (nn == 0 || !(x->names = calloc(nn, sizeof *x->names))))
			fail(l, "a mailbox without a name");
		for (uint64_t k = 0; !l->r.err && k < nn; k++) {
			x->names[k].dot = get_dot(l);
			x->names[k].name = get_str(l, CRDT_NAME_MAX, &x->names[k].len, "name");
			x->nnames += x->names[k].name != NULL;
		}
		const uint64_t *rix = l->r.err ? NULL : hmap_get(&m->rixmap, x->guid.replica);
		pdot g = rix && x->guid.counter <= PDOT_CTR_MAX ? pdot_make((uint32_t)*rix, x->guid.counter) : 0;
		if (!l->r.err && (!g || hmap_get(&m->mboxids, g)))
			fail(l, "mailbox GUID unknown or repeated");
		if (!l->r.err && hmap_put(&m->mboxids, g, i))
			l->r.err = MCRDT_ENOMEM;
		uint64_t nc = count(l, "claim count");
		for (uint64_t k = 0; !l->r.err && k < nc; k++) {
			uint32_t uid = (uint32_t)vread_max(&l->r, UINT32_MAX, "UID");
			uint64_t v = vread(&l->r);
			uint64_t *slot = l->r.err ? NULL : claim_slot(m, (uint32_t)i, uid, true);
			if (!l->r.err && (!slot || *slot || uid == 0 || v == 0))
				fail(l, "claim repeated, zero, or unplaceable");
			if (!l->r.err) {
				*slot = v;
				if (uid < m->mboxes[i].capuids)
					m->mboxes[i].nuids++;
			}
		}
	}
}

static void load_messages(struct loader *l)
{
	crdt_model *m = l->m;
	uint64_t n = count(l, "message count");
	if (!l->r.err && n && !(m->msgs = calloc(n, sizeof *m->msgs)))
		l->r.err = err_set(MCRDT_ENOMEM, "out of memory loading a snapshot");
	m->capmsgs = l->r.err ? 0 : n;
	if (!l->r.err && n && hmap_reserve(&m->guids, n))
		l->r.err = MCRDT_ENOMEM; /* one sizing instead of a rehash per doubling */
	for (uint64_t i = 0; !l->r.err && i < n; i++) {
		struct msg *x = &m->msgs[i];
		x->flags = NONE;
		x->meta = NONE;
		x->state = MSG_LIVE;
		x->guid = get_pdot(l);
		x->mbox = (uint32_t)vread_max(&l->r, m->nmboxes ? m->nmboxes - 1 : 0, "mailbox index") & MBOXES_MAX;
		x->claim = (uint32_t)vread_max(&l->r, UINT32_MAX, "UID");
		x->shown = (uint32_t)vread_max(&l->r, UINT32_MAX, "UID");
		x->shown_space = (uint32_t)vread_max(&l->r, m->nmboxes ? m->nmboxes - 1 : 0, "mailbox index") & MBOXES_MAX;
		msg_set_modseq(x, vread_max(&l->r, m->modseq, "MODSEQ"));
		uint64_t meta_len = vread_max(&l->r, CRDT_META_MAX, "meta length");
		const uint8_t *meta = vread_bytes(&l->r, meta_len, "meta");
		if (l->r.err || !m->nmboxes) {
			fail(l, "message without a mailbox");
			break;
		}
		if (meta_put(m, meta, meta_len, &x->meta)) {
			l->r.err = MCRDT_ENOMEM;
			break;
		}
		m->nmsgs++;
		m->live++;
		struct mbox *b = &m->mboxes[x->mbox];
		if (GROW(b->members, b->capmembers, b->nmembers + 1)) {
			l->r.err = MCRDT_ENOMEM;
			break;
		}
		x->pos = (uint32_t)b->nmembers & MEMBERS_MAX;
		b->members[b->nmembers++] = (uint32_t)i;
		uint64_t nf = count(l, "flag count");
		struct fdot few[16];
		struct fdot *fl = nf <= 16 ? few : calloc(nf, sizeof *fl);
		if (!fl)
			l->r.err = err_set(MCRDT_ENOMEM, "out of memory loading a snapshot");
		for (uint64_t k = 0; !l->r.err && k < nf; k++) {
			fl[k].flag = (uint32_t)vread_max(&l->r, m->nflagnames ? m->nflagnames - 1 : 0, "flag index");
			fl[k].dot = get_pdot(l);
			if (!l->r.err && !m->nflagnames)
				fail(l, "flag without a name");
		}
		/* fdot_new puts each in front: last first keeps the saved order. */
		for (uint64_t k = nf; !l->r.err && k > 0; k--)
			if (fdot_new(m, x, fl[k - 1].dot, fl[k - 1].flag))
				l->r.err = MCRDT_ENOMEM;
		if (fl != few)
			free(fl);
		uint64_t nx = count(l, "claim count");
		for (uint64_t k = 0; !l->r.err && k < nx; k++) {
			uint32_t s = (uint32_t)vread_max(&l->r, m->nmboxes - 1, "mailbox index");
			uint32_t uid = (uint32_t)vread_max(&l->r, UINT32_MAX, "UID");
			if (!l->r.err && hmap_put(&m->xclaims, (uint64_t)s << 32 | i, uid))
				l->r.err = MCRDT_ENOMEM;
			x->state |= MSG_XCLAIMS;
		}
	}
	m->freemsg = NONE;
	/* The GUID index in a second pass, each slot fetched a few keys ahead:
	 * the inserts are cache misses, and this overlaps them. */
	for (size_t i = 0; !l->r.err && i < m->nmsgs; i++) {
		if (i + 8 < m->nmsgs)
			hmap_prefetch(&m->guids, m->msgs[i + 8].guid);
		int prc = hmap_put_new(&m->guids, m->msgs[i].guid, i);
		if (prc)
			l->r.err = prc == MCRDT_ENOMEM ? prc : err_set(MCRDT_ECORRUPT, "snapshot: message repeated");
	}
}

/* The set keeps elements sorted by bytes, then length (crdt/orset.c). */
static bool elem_before(const struct crdt_orset_elem *a, const struct crdt_orset_elem *b)
{
	size_t n = a->len < b->len ? a->len : b->len;
	int c = n ? memcmp(a->bytes, b->bytes, n) : 0;
	return c < 0 || (c == 0 && a->len < b->len);
}

/* Vanished UIDs: in known spaces, in the order of their values. */
static void load_vanished(struct loader *l)
{
	crdt_model *m = l->m;
	uint64_t n = count(l, "vanished count");
	if (!l->r.err && n && !(m->van = malloc(n * sizeof *m->van)))
		l->r.err = err_set(MCRDT_ENOMEM, "out of memory loading a snapshot");
	m->capvan = l->r.err ? 0 : n;
	for (uint64_t i = 0; !l->r.err && i < n; i++) {
		struct vanished *v = &m->van[i];
		v->space = (uint32_t)vread_max(&l->r, m->nmboxes ? m->nmboxes - 1 : 0, "mailbox index");
		v->uid = (uint32_t)vread_max(&l->r, UINT32_MAX, "UID");
		v->modseq = vread_max(&l->r, m->modseq, "MODSEQ");
		if (!l->r.err && (!m->nmboxes || v->uid == 0 || (i && v->modseq < v[-1].modseq)))
			fail(l, "vanished UIDs out of order or in no mailbox");
		m->nvan += !l->r.err;
	}
}

static void load_subscriptions(struct loader *l)
{
	crdt_orset *s = &l->m->subs;
	uint64_t n = count(l, "subscription count");
	if (!l->r.err && n && !(s->e = calloc(n, sizeof *s->e)))
		l->r.err = err_set(MCRDT_ENOMEM, "out of memory loading a snapshot");
	s->cap = l->r.err ? 0 : n;
	for (uint64_t i = 0; !l->r.err && i < n; i++) {
		struct crdt_orset_elem *e = &s->e[i];
		size_t len;
		e->bytes = (uint8_t *)get_str(l, CRDT_NAME_MAX, &len, "subscription");
		e->len = len;
		if (e->bytes)
			s->n++;
		uint64_t nd = count(l, "dot count");
		for (uint64_t k = 0; !l->r.err && k < nd; k++) {
			crdt_dot d = get_dot(l);
			if (!l->r.err && dots_push(&e->dots, &e->ndots, &e->capdots, d))
				l->r.err = MCRDT_ENOMEM;
		}
		if (!l->r.err && (e->ndots == 0 || (i && !elem_before(&s->e[i - 1], e))))
			fail(l, "subscriptions out of order or without dots");
	}
	uint64_t ncc = count(l, "context size");
	for (uint64_t i = 0; !l->r.err && i < ncc; i++) {
		uint64_t replica = vread(&l->r), base = vread(&l->r);
		if (!l->r.err && (replica == 0 || crdt_vv_set_base(&s->cc, replica, base)))
			fail(l, "bad subscription context");
		uint64_t nx = count(l, "exception count");
		for (uint64_t k = 0; !l->r.err && k < nx; k++) {
			uint64_t c = vread(&l->r);
			if (!l->r.err && (c == 0 || crdt_vv_add(&s->cc, (crdt_dot){ replica, c })))
				fail(l, "bad subscription context");
		}
	}
}

int crdt_model_load(crdt_model **out, const uint8_t *p, size_t len)
{
	struct loader l = { { p, p + len, 0 }, NULL };
	if (vread(&l.r) != SNAP_VERSION || l.r.err)
		return err_set(l.r.err == MCRDT_ECORRUPT || l.r.err == 0 ? MCRDT_EVERSION : l.r.err,
			       "snapshot of an unknown format version");
	uint64_t self = vread(&l.r);
	uint64_t nrep = vread_max(&l.r, RIX_MAX + 1, "replica count");
	if (l.r.err)
		return l.r.err;
	int rc = crdt_model_new(&l.m, self);
	if (rc)
		return rc == MCRDT_EINVAL ? err_set(MCRDT_ECORRUPT, "snapshot: bad replica id") : rc;
	for (uint64_t r = 0; !l.r.err && r < nrep; r++) {
		uint64_t id = vread(&l.r), cc = vread_max(&l.r, PDOT_CTR_MAX, "counter");
		uint32_t rix = 0;
		if (!l.r.err && (r == 0 ? id != self : (hmap_get(&l.m->rixmap, id) != NULL ||
							 rix_intern(l.m, id, &rix) != 0 || rix != r)))
			fail(&l, "replica table out of order or repeated");
		if (!l.r.err)
			l.m->cc[r] = cc;
	}
	l.m->modseq = vread_max(&l.r, MODSEQ_MAX, "MODSEQ");
	uint64_t nflags = count(&l, "flag name count");
	for (uint64_t f = 0; !l.r.err && f < nflags; f++) {
		size_t flen;
		uint32_t id;
		char *name = get_str(&l, CRDT_FLAG_MAX, &flen, "flag name");
		if (name && (flag_intern(l.m, name, flen, &id) != 0 || id != f))
			fail(&l, "flag names repeated");
		free(name);
	}
	load_mailboxes(&l);
	load_messages(&l);
	load_subscriptions(&l);
	load_vanished(&l);
	if (!l.r.err && l.r.p != l.r.end)
		fail(&l, "stray bytes at the end");
	if (l.r.err) {
		crdt_model_free(l.m);
		return l.r.err == MCRDT_ENOMEM ? err_set(MCRDT_ENOMEM, "out of memory loading a snapshot")
					       : l.r.err;
	}
	l.m->names_dirty = false;
	*out = l.m;
	return 0;
}
