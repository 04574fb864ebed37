/*
 * crdt/view.c — reading the mail model: visible mailboxes, their rows, a
 * canonical text form of the whole state, memory accounting.
 */
#include "crdt/model_int.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/error.h"
#include "common/varint.h"

/* The message's flags, sorted and space-separated; caller frees. */
static char *flags_text(const crdt_model *m, uint32_t i)
{
	const char **names;
	size_t n, len = 1;
	if (msg_flag_names(m, i, &names, &n))
		return NULL;
	for (size_t k = 0; k < n; k++)
		len += strlen(names[k]) + 1;
	char *s = malloc(len), *p = s;
	for (size_t k = 0; s && k < n; k++)
		p += sprintf(p, "%s%s", k ? " " : "", names[k]);
	if (s)
		*p = '\0';
	free(names);
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
		const struct nameval *nv = mbox_name(b);
		v[k].name = malloc(nv->len + 1);
		if (!v[k].name) {
			crdt_mailboxes_free(v, k);
			return err_set(MCRDT_ENOMEM, "out of memory listing mailboxes");
		}
		memcpy(v[k].name, nv->name, nv->len + 1);
		v[k].guid = b->guid;
		v[k].uidvalidity = b->uv_eff;
		v[k].uidnext = b->hi == UINT32_MAX ? UINT32_MAX : b->hi + 1;
		v[k].messages = shown_count(m, i);
		v[k].subscribed = crdt_orset_contains(&m->subs, nv->name, nv->len);
		k++;
	}
	qsort(v, k, sizeof *v, cmp_mailbox);
	*out = v;
	*n = k;
	return 0;
}

static int cmp_row(const void *a, const void *b)
{
	uint32_t x = ((const struct crdt_row *)a)->uid, y = ((const struct crdt_row *)b)->uid;
	return x < y ? -1 : x > y;
}

int crdt_model_rows(const crdt_model *m, crdt_dot mbox, struct crdt_row **out, size_t *n)
{
	uint32_t bi;
	if (mbox_index(m, mbox, &bi) || !m->mboxes[bi].live)
		return err_set(MCRDT_ENOTFOUND, "no mailbox %" PRIx64 ".%" PRIu64, mbox.replica,
			       mbox.counter);
	uint32_t canon = m->mboxes[bi].canon;
	size_t cap = shown_count(m, canon);
	struct crdt_row *v = calloc(cap ? cap : 1, sizeof *v);
	if (!v)
		return err_set(MCRDT_ENOMEM, "out of memory listing messages");
	size_t k = 0;
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
			if (!(v[k].flags = flags_text(m, b->members[j]))) {
				crdt_rows_free(v, k);
				return err_set(MCRDT_ENOMEM, "out of memory listing messages");
			}
			k++;
		}
	}
	qsort(v, k, sizeof *v, cmp_row);
	*out = v;
	*n = k;
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

size_t crdt_model_memory(const crdt_model *m)
{
	size_t n = sizeof *m;
	n += m->caprep * 2 * sizeof(uint64_t) + hmap_bytes(&m->rixmap);
	n += m->capmsgs * sizeof *m->msgs + hmap_bytes(&m->guids);
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
