/*
 * crdt/view.c — reading the mail model: visible mailboxes, their rows and
 * the walk over them, vanished UIDs, meta, subscriptions, a canonical text
 * form of the whole state, memory accounting.
 */
#include "crdt/model_int.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define XXH_INLINE_ALL
#include <xxhash.h>

#include "common/error.h"
#include "common/varint.h"

/* The message's flags, sorted and space-separated; caller frees.
 * *names_buf (capacity *cap) is scratch kept across calls; the caller
 * frees it too. */
static char *flags_text(const crdt_model *m, uint32_t i, const char ***names_buf, size_t *cap)
{
	size_t n, len = 1;
	if (msg_flag_names_into(m, i, names_buf, cap, &n))
		return NULL;
	const char **names = *names_buf;
	for (size_t k = 0; k < n; k++)
		len += strlen(names[k]) + 1;
	char *s = malloc(len), *p = s;
	for (size_t k = 0; s && k < n; k++)
		p += sprintf(p, "%s%s", k ? " " : "", names[k]);
	if (s)
		*p = '\0';
	return s;
}

void crdt_mailboxes_free(struct crdt_mailbox_info *v, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(v[i].name);
	free(v);
}

void crdt_rows_free(struct crdt_row *v, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(v[i].flags);
	free(v);
}

static int cmp_mailbox(const void *a, const void *b)
{
	return strcmp(((const struct crdt_mailbox_info *)a)->name,
		      ((const struct crdt_mailbox_info *)b)->name);
}

static uint32_t shown_count(const crdt_model *m, uint32_t canon)
{
	uint32_t n = 0;
	for (size_t i = 0; i < m->nmboxes; i++) {
		const struct mbox *b = &m->mboxes[i];
		if (!b->live || b->canon != canon)
			continue;
		for (size_t k = 0; k < b->nmembers; k++) {
			const struct msg *x = &m->msgs[b->members[k]];
			n += x->shown && x->shown_space == canon;
		}
	}
	return n;
}

/* Mailbox i's info (i live and canonical), its messages counted when
 * count (a walk of its members): 0 or MCRDT_ENOMEM. */
static int mailbox_info(const crdt_model *m, uint32_t i, bool count, struct crdt_mailbox_info *info)
{
	const struct mbox *b = &m->mboxes[i];
	const struct nameval *nv = mbox_name(b);
	if (!(info->name = malloc(nv->len + 1)))
		return err_set(MCRDT_ENOMEM, "out of memory listing mailboxes");
	memcpy(info->name, nv->name, nv->len + 1);
	info->guid = b->guid;
	info->uidvalidity = b->uv_eff;
	info->uidnext = b->hi == UINT32_MAX ? UINT32_MAX : b->hi + 1;
	info->messages = count ? shown_count(m, i) : 0;
	info->subscribed = crdt_orset_contains(&m->subs, nv->name, nv->len);
	info->highestmodseq = b->hms;
	return 0;
}

int crdt_model_mailboxes(const crdt_model *m, struct crdt_mailbox_info **out, size_t *n)
{
	struct crdt_mailbox_info *v = calloc(m->nmboxes ? m->nmboxes : 1, sizeof *v);
	if (!v)
		return err_set(MCRDT_ENOMEM, "out of memory listing mailboxes");
	size_t k = 0;
	for (uint32_t i = 0; i < m->nmboxes; i++) {
		const struct mbox *b = &m->mboxes[i];
		if (!b->live || b->canon != i)
			continue;
		int rc = mailbox_info(m, i, true, &v[k]);
		if (rc) {
			crdt_mailboxes_free(v, k);
			return rc;
		}
		k++;
	}
	qsort(v, k, sizeof *v, cmp_mailbox);
	*out = v;
	*n = k;
	return 0;
}

int crdt_model_mailbox(const crdt_model *m, crdt_dot guid, struct crdt_mailbox_info *out)
{
	uint32_t i;
	if (mbox_index(m, guid, &i) || !m->mboxes[i].live || m->mboxes[i].canon != i)
		return MCRDT_ENOTFOUND;
	memset(out, 0, sizeof *out);
	return mailbox_info(m, i, false, out);
}

static int cmp_row(const void *a, const void *b)
{
	uint32_t x = ((const struct crdt_row *)a)->uid, y = ((const struct crdt_row *)b)->uid;
	return x < y ? -1 : x > y;
}

/* The canonical mailbox of the view mbox belongs to. */
static int view_of(const crdt_model *m, crdt_dot mbox, uint32_t *canon)
{
	uint32_t bi;
	*canon = NONE; /* (set on every path: gcc -O3 cannot tell err_set is never 0) */
	if (mbox_index(m, mbox, &bi) || !m->mboxes[bi].live)
		return err_set(MCRDT_ENOTFOUND, "no mailbox %" PRIx64 ".%" PRIu64, mbox.replica,
			       mbox.counter);
	*canon = m->mboxes[bi].canon;
	return 0;
}

int crdt_model_rows(const crdt_model *m, crdt_dot mbox, struct crdt_row **out, size_t *n)
{
	uint32_t canon;
	int rc = view_of(m, mbox, &canon);
	if (rc)
		return rc;
	size_t cap = shown_count(m, canon);
	struct crdt_row *v = calloc(cap ? cap : 1, sizeof *v);
	if (!v)
		return err_set(MCRDT_ENOMEM, "out of memory listing messages");
	size_t k = 0, capnames = 0;
	const char **names = NULL;
	for (size_t i = 0; i < m->nmboxes; i++) {
		const struct mbox *b = &m->mboxes[i];
		if (!b->live || b->canon != canon)
			continue;
		for (size_t j = 0; j < b->nmembers; j++) {
			const struct msg *x = &m->msgs[b->members[j]];
			if (!x->shown || x->shown_space != canon)
				continue;
			v[k].uid = x->shown;
			v[k].guid = dot_of(m, x->guid);
			v[k].modseq = msg_modseq(x);
			if (!(v[k].flags = flags_text(m, b->members[j], &names, &capnames))) {
				free(names);
				crdt_rows_free(v, k);
				return err_set(MCRDT_ENOMEM, "out of memory listing messages");
			}
			k++;
		}
	}
	free(names);
	qsort(v, k, sizeof *v, cmp_row);
	*out = v;
	*n = k;
	return 0;
}

/* ---- the walk over a view ---- */

struct walk {
	const crdt_model *m;
	crdt_each_fn fn;
	void *ctx;
	const char **flags; /* one buffer for every message's flags */
	size_t capflags;
};

static int walk_emit(struct walk *w, uint32_t i)
{
	const struct msg *x = &w->m->msgs[i];
	struct crdt_msgview v;
	int rc = msg_flag_names_into(w->m, i, &w->flags, &w->capflags, &v.nflags);
	if (rc)
		return rc;
	v.uid = x->shown;
	v.guid = dot_of(w->m, x->guid);
	v.modseq = msg_modseq(x);
	v.flags = w->flags;
	msg_meta(w->m, x, &v.meta, &v.meta_len);
	return w->fn(w->ctx, &v);
}

/* The message shown at uid in space canon, or NONE. */
static uint32_t shown_at(const crdt_model *m, uint32_t canon, uint32_t uid)
{
	const uint64_t *slot = claim_get(m, canon, uid);
	if (!slot || *slot == 0 || *slot == CLAIM_BURNED)
		return NONE;
	const uint64_t *mi = hmap_get(&m->guids, *slot);
	if (!mi)
		return NONE; /* expunged */
	const struct msg *x = &m->msgs[*mi];
	return x->shown == uid && x->shown_space == canon ? (uint32_t)*mi : NONE;
}

/* Sorts keys (UID in the high half) by UID: LSD radix over the UID's
 * bytes, skipping a byte all keys share (the high ones, mostly). */
static void sort_by_uid(uint64_t *keys, uint64_t *tmp, size_t n)
{
	for (int shift = 32; shift < 64; shift += 8) {
		size_t count[256] = { 0 };
		for (size_t k = 0; k < n; k++)
			count[keys[k] >> shift & 0xff]++;
		if (count[keys[0] >> shift & 0xff] == n)
			continue;
		size_t at = 0;
		for (int d = 0; d < 256; d++) {
			size_t c = count[d];
			count[d] = at;
			at += c;
		}
		for (size_t k = 0; k < n; k++)
			tmp[count[keys[k] >> shift & 0xff]++] = keys[k];
		memcpy(keys, tmp, n * sizeof *keys);
	}
}

/* Collects the view's messages in [lo, hi], sorts them once, emits them. */
static int walk_all(struct walk *w, uint32_t canon, uint32_t lo, uint32_t hi)
{
	const crdt_model *m = w->m;
	size_t cap = 0, n = 0;
	for (size_t b = 0; b < m->nmboxes; b++)
		if (m->mboxes[b].live && m->mboxes[b].canon == canon)
			cap += m->mboxes[b].nmembers;
	if (cap == 0)
		return 0;
	uint64_t *keys = malloc(2 * cap * sizeof *keys);
	if (!keys)
		return err_set(MCRDT_ENOMEM, "out of memory listing %zu messages", cap);
	bool sorted = true;
	for (size_t b = 0; b < m->nmboxes; b++) {
		const struct mbox *bx = &m->mboxes[b];
		if (!bx->live || bx->canon != canon)
			continue;
		for (size_t j = 0; j < bx->nmembers; j++) {
			const struct msg *x = &m->msgs[bx->members[j]];
			if (!x->shown || x->shown_space != canon || x->shown < lo || x->shown > hi)
				continue;
			keys[n] = (uint64_t)x->shown << 32 | bx->members[j];
			sorted &= n == 0 || keys[n - 1] < keys[n];
			n++;
		}
	}
	if (!sorted)
		sort_by_uid(keys, keys + cap, n);
	int rc = 0;
	for (size_t k = 0; k < n && rc == 0; k++)
		rc = walk_emit(w, (uint32_t)keys[k]);
	free(keys);
	return rc;
}

int crdt_model_each(const crdt_model *m, crdt_dot mbox, uint32_t lo, uint32_t hi, crdt_each_fn fn,
		    void *ctx)
{
	uint32_t canon;
	int rc = view_of(m, mbox, &canon);
	if (rc)
		return rc;
	const struct mbox *b = &m->mboxes[canon];
	if (hi > b->hi)
		hi = b->hi; /* no UID above the space's highest claim is shown */
	if (lo == 0)
		lo = 1;
	if (lo > hi)
		return 0;
	struct walk w = { m, fn, ctx, NULL, 0 };
	/* A few UIDs: one claim lookup each. Many: one pass and a sort. The
	 * canonical mailbox's size stands for the view's. */
	if ((uint64_t)hi - lo < b->nmembers / 4 + 16) {
		for (uint64_t u = lo; u <= hi && rc == 0; u++) {
			uint32_t i = shown_at(m, canon, (uint32_t)u);
			if (i != NONE)
				rc = walk_emit(&w, i);
		}
	} else {
		rc = walk_all(&w, canon, lo, hi);
	}
	free(w.flags);
	return rc;
}

/* ---- vanished UIDs, meta, subscriptions ---- */

static int cmp_u32(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
	return x < y ? -1 : x > y;
}

int crdt_model_vanished(const crdt_model *m, crdt_dot mbox, uint64_t since, uint32_t **uids,
			size_t *n)
{
	uint32_t canon;
	int rc = view_of(m, mbox, &canon);
	if (rc)
		return rc;
	/* Records are in the order of their values: skip to the first above since. */
	size_t lo = 0, hi = m->nvan;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (m->van[mid].modseq <= since)
			lo = mid + 1;
		else
			hi = mid;
	}
	size_t count = 0;
	/* Below the floor the records are incomplete: every UID claimed and
	 * not shown counts. */
	uint32_t every = since < m->van_floor ? m->mboxes[canon].hi : 0;
	for (size_t k = lo; k < m->nvan; k++)
		count += m->van[k].space == canon;
	count += every;
	*uids = NULL;
	*n = 0;
	if (count == 0)
		return 0;
	uint32_t *v = malloc(count * sizeof *v);
	if (!v)
		return err_set(MCRDT_ENOMEM, "out of memory listing vanished UIDs");
	count = 0;
	for (size_t k = lo; k < m->nvan; k++)
		if (m->van[k].space == canon)
			v[count++] = m->van[k].uid;
	for (uint32_t u = 1; u <= every; u++)
		v[count++] = u;
	qsort(v, count, sizeof *v, cmp_u32);
	size_t keep = 0;
	for (size_t k = 0; k < count; k++)
		if ((keep == 0 || v[keep - 1] != v[k]) && shown_at(m, canon, v[k]) == NONE)
			v[keep++] = v[k];
	if (keep == 0) {
		free(v);
		return 0;
	}
	*uids = v;
	*n = keep;
	return 0;
}

int crdt_model_meta(const crdt_model *m, crdt_dot msg, const uint8_t **meta, size_t *len)
{
	uint32_t i;
	if (msg_index(m, msg, &i))
		return err_set(MCRDT_ENOTFOUND, "no message %" PRIx64 ".%" PRIu64, msg.replica,
			       msg.counter);
	msg_meta(m, &m->msgs[i], meta, len);
	return 0;
}

int crdt_model_message(const crdt_model *m, crdt_dot msg, struct crdt_msginfo *out)
{
	uint32_t i;
	memset(out, 0, sizeof *out);
	if (msg_index(m, msg, &i))
		return err_set(MCRDT_ENOTFOUND, "no message %" PRIx64 ".%" PRIu64, msg.replica,
			       msg.counter);
	const struct msg *x = &m->msgs[i];
	const struct mbox *b = &m->mboxes[x->mbox];
	const struct nameval *nv = mbox_name(b);
	out->mbox = m->mboxes[b->canon].guid;
	out->mailbox = nv ? nv->name : "";
	out->uid = x->shown;
	msg_meta(m, x, &out->meta, &out->meta_len);
	const char **names;
	int rc = msg_flag_names(m, i, &names, &out->nflags);
	if (rc == 0)
		out->flags = names;
	return rc;
}

void crdt_msginfo_free(struct crdt_msginfo *x)
{
	free((void *)x->flags);
	x->flags = NULL;
	x->nflags = 0;
}

void crdt_strv_free(char **v, size_t n)
{
	for (size_t i = 0; v && i < n; i++)
		free(v[i]);
	free(v);
}

int crdt_model_subscriptions(const crdt_model *m, char ***names, size_t *n)
{
	/* The set keeps its names sorted by bytes (crdt/orset.c). */
	size_t count = m->subs.n;
	char **v = calloc(count ? count : 1, sizeof *v);
	if (!v)
		return err_set(MCRDT_ENOMEM, "out of memory listing subscriptions");
	for (size_t i = 0; i < count; i++) {
		const struct crdt_orset_elem *e = &m->subs.e[i];
		if (!(v[i] = malloc(e->len + 1))) {
			crdt_strv_free(v, i);
			return err_set(MCRDT_ENOMEM, "out of memory listing subscriptions");
		}
		memcpy(v[i], e->bytes, e->len);
		v[i][e->len] = '\0';
	}
	*names = v;
	*n = count;
	return 0;
}

int crdt_model_keeper(const crdt_model *m, crdt_dot a, crdt_dot b, crdt_dot *keep)
{
	uint32_t i, j;
	bool has_a = msg_index(m, a, &i) == 0, has_b = msg_index(m, b, &j) == 0;
	if (!has_a || !has_b) {
		crdt_dot d = has_a ? b : a;
		return err_set(MCRDT_ENOTFOUND, "no message %" PRIx64 ".%" PRIu64, d.replica, d.counter);
	}
	int c = mbox_rank_cmp(&m->mboxes[m->msgs[i].mbox], &m->mboxes[m->msgs[j].mbox]);
	*keep = c > 0 || (c == 0 && crdt_dot_cmp(a, b) < 0) ? a : b;
	return 0;
}

bool crdt_model_has_message(const crdt_model *m, crdt_dot msg)
{
	uint32_t i;
	return msg_index(m, msg, &i) == 0;
}

size_t crdt_model_messages(const crdt_model *m)
{
	return m->live;
}

int crdt_model_context(const crdt_model *m, crdt_vv *out)
{
	crdt_vv_clear(out);
	for (size_t r = 0; r < m->nrep; r++) {
		if (m->cc[r]) {
			int rc = crdt_vv_set_base(out, m->rep[r], m->cc[r]);
			if (rc)
				return rc;
		}
	}
	return 0;
}

/* printf into a growing buffer (common/varint.h's vbuf), NUL-terminated. */
static void sb_printf(struct vbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void sb_printf(struct vbuf *b, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	if (n < 0 && !b->err)
		b->err = MCRDT_ERROR;
	if (n < 0 || vbuf_reserve(b, (size_t)n + 1))
		return;
	va_start(ap, fmt);
	vsnprintf((char *)b->p + b->len, (size_t)n + 1, fmt, ap);
	va_end(ap);
	b->len += (size_t)n;
}

int crdt_model_describe(const crdt_model *m, char **out)
{
	struct vbuf b = { NULL, 0, 0, 0 };
	struct crdt_mailbox_info *mb;
	size_t nmb;
	int rc = crdt_model_mailboxes(m, &mb, &nmb);
	if (rc)
		return rc;
	for (size_t i = 0; i < nmb && !b.err; i++) {
		sb_printf(&b, "mailbox \"%s\" guid=%016" PRIx64 ".%" PRIu64 " uidvalidity=%" PRIu32
			  " uidnext=%" PRIu32 "%s\n",
			  mb[i].name, mb[i].guid.replica, mb[i].guid.counter, mb[i].uidvalidity,
			  mb[i].uidnext, mb[i].subscribed ? " subscribed" : "");
		struct crdt_row *rows;
		size_t nrows;
		if ((rc = crdt_model_rows(m, mb[i].guid, &rows, &nrows))) {
			b.err = rc;
			break;
		}
		for (size_t k = 0; k < nrows; k++)
			sb_printf(&b, "  %" PRIu32 " %016" PRIx64 ".%" PRIu64 " (%s)\n", rows[k].uid,
				  rows[k].guid.replica, rows[k].guid.counter, rows[k].flags);
		crdt_rows_free(rows, nrows);
	}
	for (size_t i = 0; i < m->subs.n && !b.err; i++)
		sb_printf(&b, "subscribed \"%.*s\"\n", (int)m->subs.e[i].len,
			  (const char *)m->subs.e[i].bytes);
	crdt_mailboxes_free(mb, nmb);
	if (!b.err && !b.p && vbuf_reserve(&b, 1) == 0)
		b.p[0] = '\0'; /* an empty state is an empty string */
	if (b.err) {
		vbuf_free(&b);
		return err_set(b.err, "out of memory describing a model");
	}
	*out = (char *)b.p;
	return 0;
}

static _Thread_local const crdt_model *sort_model; /* qsort has no context argument */

static int cmp_vanished(const void *a, const void *b)
{
	const struct vanished *x = a, *y = b;
	if (x->modseq != y->modseq)
		return x->modseq < y->modseq ? -1 : 1;
	int c = crdt_dot_cmp(sort_model->mboxes[x->space].guid, sort_model->mboxes[y->space].guid);
	if (c)
		return c;
	return x->uid < y->uid ? -1 : x->uid > y->uid;
}

static int describe_row(void *ctx, const struct crdt_msgview *v)
{
	sb_printf(ctx, "  %" PRIu32 " %016" PRIx64 ".%" PRIu64 " modseq=%" PRIu64 " meta=%zu:%016" PRIx64 "\n",
		  v->uid, v->guid.replica, v->guid.counter, v->modseq, v->meta_len,
		  (uint64_t)XXH3_64bits(v->meta, v->meta_len));
	return ((struct vbuf *)ctx)->err;
}

int crdt_model_describe_local(const crdt_model *m, char **out)
{
	char *shared;
	int rc = crdt_model_describe(m, &shared);
	if (rc)
		return rc;
	struct vbuf b = { NULL, 0, 0, 0 };
	sb_printf(&b, "%smodseq %" PRIu64 "\n", shared, m->modseq);
	free(shared);
	struct crdt_mailbox_info *mb = NULL;
	size_t nmb = 0;
	if ((rc = crdt_model_mailboxes(m, &mb, &nmb)))
		b.err = rc;
	for (size_t i = 0; !rc && i < nmb && !b.err; i++) {
		sb_printf(&b, "view \"%s\" highestmodseq=%" PRIu64 "\n", mb[i].name, mb[i].highestmodseq);
		if ((rc = crdt_model_each(m, mb[i].guid, 1, UINT32_MAX, describe_row, &b)) && !b.err)
			b.err = rc;
	}
	if (mb)
		crdt_mailboxes_free(mb, nmb);
	for (size_t i = 0; i < m->nmboxes && !b.err; i++)
		sb_printf(&b, "space %016" PRIx64 ".%" PRIu64 " highestmodseq=%" PRIu64 "\n",
			  m->mboxes[i].guid.replica, m->mboxes[i].guid.counter, m->mboxes[i].hms);
	/* Records of one value are in the order the model met the messages,
	 * which a reload may change: print them sorted. */
	struct vanished *van = malloc((m->nvan ? m->nvan : 1) * sizeof *van);
	if (!van && !b.err)
		b.err = MCRDT_ENOMEM;
	if (van && m->nvan) {
		memcpy(van, m->van, m->nvan * sizeof *van);
		sort_model = m;
		qsort(van, m->nvan, sizeof *van, cmp_vanished);
	}
	for (size_t i = 0; i < m->nvan && !b.err; i++) {
		const crdt_dot g = m->mboxes[van[i].space].guid;
		sb_printf(&b, "vanished %016" PRIx64 ".%" PRIu64 " %" PRIu32 " modseq=%" PRIu64 "\n",
			  g.replica, g.counter, van[i].uid, van[i].modseq);
	}
	free(van);
	if (b.err) {
		vbuf_free(&b);
		return err_set(b.err, "out of memory describing a model");
	}
	*out = (char *)b.p;
	return 0;
}

size_t crdt_model_memory(const crdt_model *m)
{
	size_t n = sizeof *m;
	n += m->caprep * 2 * sizeof(uint64_t) + hmap_bytes(&m->rixmap);
	n += m->capmsgs * sizeof *m->msgs + hmap_bytes(&m->guids);
	n += m->capmeta + m->capvan * sizeof *m->van;
	n += m->capf * sizeof *m->fpool;
	n += m->capflagnames * sizeof *m->flagnames + hmap_bytes(&m->flagids);
	for (size_t i = 0; i < m->nflagnames; i++)
		n += strlen(m->flagnames[i]) + 1;
	n += m->capmboxes * sizeof *m->mboxes + hmap_bytes(&m->mboxids);
	for (size_t i = 0; i < m->nmboxes; i++) {
		const struct mbox *b = &m->mboxes[i];
		n += b->capexists * sizeof *b->exists + b->capmembers * sizeof *b->members;
		n += b->nnames * sizeof *b->names + b->capuids * sizeof *b->uids;
		for (size_t k = 0; k < b->nnames; k++)
			n += b->names[k].len + 1;
	}
	n += hmap_bytes(&m->claims) + hmap_bytes(&m->xclaims);
	n += m->capdirty * sizeof *m->dirty;
	n += m->cappending * sizeof *m->pending + hmap_bytes(&m->pendids);
	for (size_t i = 0; i < m->npending; i++)
		n += crdt_op_bytes(&m->pending[i]);
	return n + crdt_orset_bytes(&m->subs);
}
