/*
 * store/mailbox.c — mailbox names, LIST, CREATE, DELETE, RENAME,
 * SUBSCRIBE and STATUS.
 */
#define _GNU_SOURCE
#include "store/store_int.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "common/error.h"
#include "common/grow.h"
#include "crdt/op.h"
#include "store/imap.h"
#include "store/meta.h"

/* ---- names ---- */

void st_guid_hex(crdt_dot d, char out[33])
{
	snprintf(out, 33, "%016" PRIx64 "%016" PRIx64, d.replica, d.counter);
}

int st_mailbox_name(const char *name, char **out)
{
	char q[STORE_QUOTE_SIZE];
	if (!name || !*name)
		return err_set(MCRDT_EINVAL, "empty mailbox name");
	size_t len = strlen(name);
	if (len > 1 && name[len - 1] == '/')
		len--; /* "A/": a client saying it will put mailboxes under A */
	if (len > CRDT_NAME_MAX)
		return err_set(MCRDT_EINVAL, "mailbox name %s is longer than %d bytes",
			       store_quote(q, name, len), CRDT_NAME_MAX);
	char *n = strndup(name, len);
	if (!n)
		return err_set(MCRDT_ENOMEM, "out of memory");
	/* INBOX is case-insensitive, as its children's first level. */
	if (strncasecmp(n, "INBOX", 5) == 0 && (n[5] == '\0' || n[5] == '/'))
		memcpy(n, "INBOX", 5);
	/* The folder mapping checks the rest: empty levels, '.', control
	 * characters, UTF-8 and length on disk. A leading '/' is an empty level. */
	char *dir;
	int rc = md_folder_dir(n, &dir);
	if (rc) {
		char why[256];
		snprintf(why, sizeof why, "%s", mcrdt_error_last());
		free(n);
		return err_set(rc, "invalid mailbox name %s: %s", store_quote(q, name, strlen(name)), why);
	}
	free(dir);
	*out = n;
	return 0;
}

int st_find(mcrdt_store *s, const char *name, crdt_dot *guid)
{
	int rc = crdt_model_find(s->m, name, guid);
	if (rc == MCRDT_ENOTFOUND) {
		char q[STORE_QUOTE_SIZE];
		return err_set(rc, "no mailbox %s", store_quote(q, name, strlen(name)));
	}
	return rc;
}

int st_view(mcrdt_store *s, crdt_dot guid, struct crdt_mailbox_info *info, char **name)
{
	struct crdt_mailbox_info v;
	int rc = crdt_model_mailbox(s->m, guid, &v);
	if (rc)
		return rc == MCRDT_ENOTFOUND ? err_set(rc, "the mailbox no longer exists") : rc;
	if (name)
		*name = v.name;
	else
		free(v.name);
	if (info) {
		*info = v;
		info->name = NULL;
	}
	return 0;
}

/* ---- LIST ---- */

static unsigned special_use(const char *name)
{
	static const struct {
		const char *name;
		unsigned attr;
	} table[] = {
		{ "Sent", MCRDT_MBOX_SENT },        { "Sent Messages", MCRDT_MBOX_SENT },
		{ "Sent Items", MCRDT_MBOX_SENT },  { "Drafts", MCRDT_MBOX_DRAFTS },
		{ "Trash", MCRDT_MBOX_TRASH },      { "Deleted Messages", MCRDT_MBOX_TRASH },
		{ "Deleted Items", MCRDT_MBOX_TRASH }, { "Junk", MCRDT_MBOX_JUNK },
		{ "Spam", MCRDT_MBOX_JUNK },        { "Archive", MCRDT_MBOX_ARCHIVE },
	};
	for (size_t i = 0; i < sizeof table / sizeof table[0]; i++)
		if (strcasecmp(name, table[i].name) == 0)
			return table[i].attr;
	return 0;
}

static int cmp_info(const void *a, const void *b)
{
	const char *x = ((const struct mcrdt_mailbox_info *)a)->name;
	const char *y = ((const struct mcrdt_mailbox_info *)b)->name;
	bool xi = strcmp(x, "INBOX") == 0, yi = strcmp(y, "INBOX") == 0;
	if (xi != yi)
		return xi ? -1 : 1;
	return strcmp(x, y);
}

static struct mcrdt_mailbox_info *find_info(struct mcrdt_mailbox_info *v, size_t n, const char *name,
					    size_t len)
{
	for (size_t i = 0; i < n; i++)
		if (strlen(v[i].name) == len && memcmp(v[i].name, name, len) == 0)
			return &v[i];
	return NULL;
}

/* Adds a nonexistent entry unless name is listed already. */
static int add_ghost(struct mcrdt_mailbox_info **v, size_t *n, size_t *cap, const char *name, size_t len,
		     unsigned attrs)
{
	struct mcrdt_mailbox_info *e = find_info(*v, *n, name, len);
	if (e) {
		e->attrs |= attrs & MCRDT_MBOX_SUBSCRIBED;
		return 0;
	}
	int rc = GROW(*v, *cap, *n + 1);
	if (rc)
		return rc;
	e = &(*v)[(*n)++];
	memset(e, 0, sizeof *e);
	e->attrs = MCRDT_MBOX_NONEXISTENT | attrs;
	if (!(e->name = strndup(name, len)))
		return err_set(MCRDT_ENOMEM, "out of memory");
	return 0;
}

int mcrdt_mailbox_list(mcrdt_store *s, struct mcrdt_mailbox_info **out, size_t *nout)
{
	int rc = st_begin_read(s);
	if (rc)
		return rc;
	struct crdt_mailbox_info *mb = NULL;
	size_t nmb = 0, n = 0, cap = 0;
	char **subs = NULL;
	size_t nsubs = 0;
	struct mcrdt_mailbox_info *v = NULL;
	rc = crdt_model_mailboxes(s->m, &mb, &nmb);
	if (rc == 0)
		rc = crdt_model_subscriptions(s->m, &subs, &nsubs);
	if (rc == 0)
		rc = GROW(v, cap, nmb + 1);
	for (size_t i = 0; rc == 0 && i < nmb; i++) {
		struct mcrdt_mailbox_info *e = &v[n++];
		memset(e, 0, sizeof *e);
		e->name = mb[i].name;
		mb[i].name = NULL;
		st_guid_hex(mb[i].guid, e->guid);
		e->uidvalidity = mb[i].uidvalidity;
		e->attrs = mb[i].subscribed ? MCRDT_MBOX_SUBSCRIBED : 0;
		if (!strchr(e->name, '/'))
			e->attrs |= special_use(e->name);
	}
	size_t real = n;
	for (size_t i = 0; rc == 0 && i < nsubs; i++)
		rc = add_ghost(&v, &n, &cap, subs[i], strlen(subs[i]), MCRDT_MBOX_SUBSCRIBED);
	/* Parents implied by a child ("A" of "A/B"). */
	for (size_t i = 0; rc == 0 && i < real; i++) {
		const char *name = v[i].name;
		for (const char *p = strchr(name, '/'); rc == 0 && p; p = strchr(p + 1, '/'))
			rc = add_ghost(&v, &n, &cap, name, (size_t)(p - name), 0);
	}
	for (size_t i = 0; rc == 0 && i < n; i++) {
		size_t len = strlen(v[i].name);
		bool kids = false;
		for (size_t k = 0; k < real && !kids; k++)
			kids = strncmp(v[k].name, v[i].name, len) == 0 && v[k].name[len] == '/';
		v[i].attrs |= kids ? MCRDT_MBOX_HASCHILDREN : MCRDT_MBOX_HASNOCHILDREN;
	}
	if (rc == 0 && n)
		qsort(v, n, sizeof *v, cmp_info);
	crdt_mailboxes_free(mb, nmb);
	crdt_strv_free(subs, nsubs);
	if (rc) {
		mcrdt_mailbox_list_free(v, n);
	} else {
		*out = v;
		*nout = n;
	}
	return st_end(s, rc);
}

void mcrdt_mailbox_list_free(struct mcrdt_mailbox_info *v, size_t n)
{
	for (size_t i = 0; v && i < n; i++)
		free(v[i].name);
	free(v);
}

/* ---- CREATE, DELETE, RENAME, SUBSCRIBE ---- */

/* Checks and normalises name, then begins the call (a read unless change). */
static int begin_named(mcrdt_store *s, const char *name, char **n, bool change, bool structural)
{
	int rc = st_mailbox_name(name, n);
	if (rc)
		return rc;
	if ((rc = change ? st_begin(s) : st_begin_read(s))) {
		free(*n);
		return rc;
	}
	if (structural && s->in_batch) {
		free(*n);
		return st_end(s, err_set(MCRDT_EINVAL, "mailboxes cannot be created, deleted or renamed "
					 "inside a batch"));
	}
	return 0;
}

int st_create(mcrdt_store *s, const char *name, crdt_dot *guid)
{
	crdt_dot g;
	char q[STORE_QUOTE_SIZE];
	if (crdt_model_find(s->m, name, &g) == 0)
		return err_set(MCRDT_EEXISTS, "mailbox %s exists", store_quote(q, name, strlen(name)));
	/* The folder first: a folder without its op is adopted by a scan. */
	int rc = md_folder_create(s->md, name);
	if (rc && rc != MCRDT_EEXISTS)
		return rc;
	crdt_oplist ops = CRDT_OPLIST_INIT;
	return st_commit(s, &ops, crdt_model_create(s->m, &ops, name, (uint32_t)time(NULL), guid));
}

int mcrdt_mailbox_create(mcrdt_store *s, const char *name)
{
	char *n;
	int rc = begin_named(s, name, &n, true, true);
	if (rc)
		return rc;
	rc = st_create(s, n, NULL);
	free(n);
	return st_end(s, rc);
}

int mcrdt_mailbox_delete(mcrdt_store *s, const char *name)
{
	char *n;
	int rc = begin_named(s, name, &n, true, true);
	if (rc)
		return rc;
	crdt_dot g;
	if (strcmp(n, "INBOX") == 0)
		rc = err_set(MCRDT_EINVAL, "INBOX cannot be deleted");
	else
		rc = st_find(s, n, &g);
	if (rc == 0) {
		rc = md_folder_delete(s->md, n);
		if (rc == MCRDT_ENOTFOUND)
			rc = 0; /* already gone from disk: the op still has to say so */
	}
	crdt_oplist ops = CRDT_OPLIST_INIT;
	if (rc == 0)
		rc = crdt_model_delete(s->m, &ops, g);
	rc = st_commit(s, &ops, rc);
	free(n);
	return st_end(s, rc);
}

/* IMAP: renaming INBOX moves its messages to a new mailbox. */
static int rename_inbox(mcrdt_store *s, const char *to)
{
	crdt_dot inbox, dest;
	int rc = st_find(s, "INBOX", &inbox);
	if (rc == 0)
		rc = st_create(s, to, &dest);
	struct st_msg *v = NULL;
	size_t n = 0;
	if (rc == 0)
		rc = st_collect(s, inbox, NULL, &v, &n);
	if (rc == 0 && n)
		rc = st_transfer(s, "INBOX", v, n, dest, to, true, NULL);
	st_msgs_free(v, n);
	return rc;
}

int mcrdt_mailbox_rename(mcrdt_store *s, const char *from, const char *to)
{
	char *f = NULL, *t = NULL;
	int rc = st_mailbox_name(to, &t);
	if (rc)
		return rc;
	if ((rc = begin_named(s, from, &f, true, true))) {
		free(t);
		return rc;
	}
	char q[STORE_QUOTE_SIZE];
	size_t flen = strlen(f);
	crdt_dot g, other;
	if (strcmp(t, "INBOX") == 0)
		rc = err_set(MCRDT_EEXISTS, "INBOX exists");
	else if (strcmp(f, "INBOX") == 0)
		rc = rename_inbox(s, t);
	else if ((rc = st_find(s, f, &g)) == 0) {
		if (strncmp(t, f, flen) == 0 && (t[flen] == '/' || t[flen] == '\0'))
			rc = err_set(MCRDT_EINVAL, "cannot rename %s under itself", store_quote(q, f, flen));
	}
	if (rc || strcmp(f, "INBOX") == 0)
		goto out;
	/* Every mailbox below f moves too; none of the new names may exist. */
	struct crdt_mailbox_info *v = NULL;
	size_t n = 0;
	if ((rc = crdt_model_mailboxes(s->m, &v, &n)))
		goto out;
	char **targets = calloc(n + 1, sizeof *targets);
	crdt_dot *guids = calloc(n + 1, sizeof *guids);
	size_t nt = 0;
	if (!targets || !guids)
		rc = err_set(MCRDT_ENOMEM, "out of memory");
	for (size_t i = 0; rc == 0 && i < n; i++) {
		const char *name = v[i].name;
		bool self = strcmp(name, f) == 0, kid = strncmp(name, f, flen) == 0 && name[flen] == '/';
		if (!self && !kid)
			continue;
		if (asprintf(&targets[nt], "%s%s", t, name + flen) < 0) {
			targets[nt] = NULL;
			rc = err_set(MCRDT_ENOMEM, "out of memory");
			break;
		}
		guids[nt++] = v[i].guid;
		char *dummy;
		if (crdt_model_find(s->m, targets[nt - 1], &other) == 0)
			rc = err_set(MCRDT_EEXISTS, "mailbox %s exists",
				     store_quote(q, targets[nt - 1], strlen(targets[nt - 1])));
		else if ((rc = st_mailbox_name(targets[nt - 1], &dummy)) == 0)
			free(dummy);
	}
	if (rc == 0)
		rc = md_folder_rename(s->md, f, t);
	if (rc == MCRDT_ENOTFOUND)
		rc = md_folder_create(s->md, t); /* no folder on disk: make the target's */
	crdt_oplist ops = CRDT_OPLIST_INIT;
	for (size_t i = 0; rc == 0 && i < nt; i++)
		rc = crdt_model_rename(s->m, &ops, guids[i], targets[i]);
	rc = st_commit(s, &ops, rc);
	for (size_t i = 0; targets && i < nt; i++)
		free(targets[i]);
	free(targets);
	free(guids);
	crdt_mailboxes_free(v, n);
out:
	free(f);
	free(t);
	return st_end(s, rc);
}

int mcrdt_mailbox_subscribe(mcrdt_store *s, const char *name, bool on)
{
	char *n;
	int rc = begin_named(s, name, &n, true, false);
	if (rc)
		return rc;
	crdt_oplist ops = CRDT_OPLIST_INIT;
	rc = st_commit(s, &ops, crdt_model_subscribe(s->m, &ops, n, on));
	free(n);
	return st_end(s, rc);
}

/* ---- STATUS ---- */

struct counts {
	struct mcrdt_status *st;
	int rc;
};

static int count_one(void *ctx, const struct crdt_msgview *v)
{
	struct counts *c = ctx;
	bool seen = false, deleted = false;
	for (size_t i = 0; i < v->nflags; i++) {
		seen |= strcmp(v->flags[i], "\\Seen") == 0;
		deleted |= strcmp(v->flags[i], "\\Deleted") == 0;
	}
	struct store_meta meta;
	if (store_meta_decode(v->meta, v->meta_len, &meta) == 0)
		c->st->size += meta.size;
	c->st->messages++;
	c->st->unseen += !seen;
	c->st->deleted += deleted;
	return 0;
}

int mcrdt_mailbox_status(mcrdt_store *s, const char *name, struct mcrdt_status *out)
{
	char *n;
	int rc = begin_named(s, name, &n, false, false);
	if (rc)
		return rc;
	crdt_dot g;
	struct crdt_mailbox_info info = { 0 };
	if ((rc = st_find(s, n, &g)) == 0 && (rc = st_view(s, g, &info, NULL)) == 0) {
		memset(out, 0, sizeof *out);
		out->uidnext = info.uidnext;
		out->uidvalidity = info.uidvalidity;
		out->highestmodseq = info.highestmodseq;
		struct counts c = { out, 0 };
		rc = crdt_model_each(s->m, g, 1, UINT32_MAX, count_one, &c);
	}
	free(n);
	return st_end(s, rc);
}
