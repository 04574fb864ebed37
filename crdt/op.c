/*
 * crdt/op.c — construction, copying and validation of ops. See op.h.
 */
#include "crdt/op.h"

#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/error.h"

void crdt_op_init(crdt_op *op, enum crdt_op_type type)
{
	memset(op, 0, sizeof *op);
	crdt_vv_init(&op->deps);
	op->type = type;
}

void crdt_op_free(crdt_op *op)
{
	crdt_vv_free(&op->deps);
	free(op->name.s);
	for (size_t i = 0; i < op->nflags; i++)
		free(op->flags[i].s);
	free(op->flags);
	free(op->meta);
	crdt_op_init(op, op->type);
}

void crdt_op_reset(crdt_op *op)
{
	crdt_vv deps = op->deps;
	crdt_vv_clear(&deps);
	free(op->name.s);
	for (size_t i = 0; i < op->nflags; i++)
		free(op->flags[i].s);
	free(op->flags);
	free(op->meta);
	memset(op, 0, sizeof *op);
	op->deps = deps;
}

static int str_set(struct crdt_str *dst, const char *s, size_t len)
{
	char *c = malloc(len + 1);
	if (!c)
		return err_set(MCRDT_ENOMEM, "out of memory copying a string");
	memcpy(c, s, len);
	c[len] = '\0';
	free(dst->s);
	dst->s = c;
	dst->len = len;
	return 0;
}

int crdt_op_set_name(crdt_op *op, const char *name, size_t len)
{
	if (len > CRDT_NAME_MAX)
		return err_set(MCRDT_EINVAL, "mailbox name is %zu bytes, more than %d", len, CRDT_NAME_MAX);
	return str_set(&op->name, name, len);
}

int crdt_op_add_flag(crdt_op *op, const char *flag, size_t len)
{
	if (op->nflags >= CRDT_FLAGS_MAX)
		return err_set(MCRDT_EINVAL, "more than %d flags in one change", CRDT_FLAGS_MAX);
	struct crdt_str *nf = realloc(op->flags, (op->nflags + 1) * sizeof *nf);
	if (!nf)
		return err_set(MCRDT_ENOMEM, "out of memory adding a flag");
	op->flags = nf;
	nf[op->nflags].s = NULL;
	int rc = str_set(&nf[op->nflags], flag, len);
	if (rc == 0)
		op->nflags++;
	return rc;
}

int crdt_op_set_meta(crdt_op *op, const void *meta, size_t len)
{
	if (len > CRDT_META_MAX)
		return err_set(MCRDT_EINVAL, "message metadata is %zu bytes, more than %d", len, CRDT_META_MAX);
	uint8_t *c = malloc(len ? len : 1);
	if (!c)
		return err_set(MCRDT_ENOMEM, "out of memory copying message metadata");
	if (len)
		memcpy(c, meta, len);
	free(op->meta);
	op->meta = c;
	op->meta_len = len;
	return 0;
}

int crdt_op_copy(crdt_op *dst, const crdt_op *src)
{
	crdt_op_init(dst, src->type);
	dst->id = src->id;
	dst->mbox = src->mbox;
	dst->msg = src->msg;
	dst->space = src->space;
	dst->uid = src->uid;
	dst->uidvalidity = src->uidvalidity;
	int rc = crdt_vv_copy(&dst->deps, &src->deps);
	if (!rc && src->name.s)
		rc = str_set(&dst->name, src->name.s, src->name.len);
	for (size_t i = 0; !rc && i < src->nflags; i++)
		rc = crdt_op_add_flag(dst, src->flags[i].s, src->flags[i].len);
	if (!rc && src->meta)
		rc = crdt_op_set_meta(dst, src->meta, src->meta_len);
	if (rc)
		crdt_op_free(dst);
	return rc;
}

static bool bytes_eq(const void *a, size_t alen, const void *b, size_t blen)
{
	return alen == blen && (alen == 0 || memcmp(a, b, alen) == 0);
}

const char *crdt_op_diff(const crdt_op *a, const crdt_op *b)
{
	if (a->type != b->type)
		return "type";
	if (!crdt_dot_eq(a->id, b->id))
		return "id";
	if (crdt_vv_compare(&a->deps, &b->deps) != CRDT_VV_EQUAL)
		return "deps";
	if (!crdt_dot_eq(a->mbox, b->mbox))
		return "mbox";
	if (!crdt_dot_eq(a->msg, b->msg))
		return "msg";
	if (!crdt_dot_eq(a->space, b->space))
		return "space";
	if (a->uid != b->uid)
		return "uid";
	if (a->uidvalidity != b->uidvalidity)
		return "uidvalidity";
	if (!a->name.s != !b->name.s || !bytes_eq(a->name.s, a->name.len, b->name.s, b->name.len))
		return "name";
	if (a->nflags != b->nflags)
		return "flag count";
	for (size_t i = 0; i < a->nflags; i++)
		if (!bytes_eq(a->flags[i].s, a->flags[i].len, b->flags[i].s, b->flags[i].len))
			return "flag";
	if (!a->meta != !b->meta || !bytes_eq(a->meta, a->meta_len, b->meta, b->meta_len))
		return "meta";
	return NULL;
}

size_t crdt_op_bytes(const crdt_op *op)
{
	size_t n = op->deps.cap * sizeof *op->deps.e + op->nflags * sizeof *op->flags + op->meta_len;
	if (op->name.s)
		n += op->name.len + 1;
	for (size_t i = 0; i < op->nflags; i++)
		n += op->flags[i].len + 1;
	return n;
}

const char *crdt_op_type_name(enum crdt_op_type t)
{
	switch (t) {
	case CRDT_OP_MBOX_CREATE: return "create";
	case CRDT_OP_MBOX_RENAME: return "rename";
	case CRDT_OP_MBOX_DELETE: return "delete";
	case CRDT_OP_SUBSCRIBE: return "subscribe";
	case CRDT_OP_UNSUBSCRIBE: return "unsubscribe";
	case CRDT_OP_APPEND: return "append";
	case CRDT_OP_COPY: return "copy";
	case CRDT_OP_MOVE: return "move";
	case CRDT_OP_EXPUNGE: return "expunge";
	case CRDT_OP_FLAGS_ADD: return "flags+";
	case CRDT_OP_FLAGS_REMOVE: return "flags-";
	case CRDT_OP_FLAGS_SET: return "flags=";
	case CRDT_OP_CLAIM: return "claim";
	}
	return "unknown";
}

static int bad(const crdt_op *op, const char *what)
{
	return err_set(MCRDT_ECORRUPT, "invalid %s op (%" PRIx64 ",%" PRIu64 "): %s",
		       crdt_op_type_name(op->type), op->id.replica, op->id.counter, what);
}

static int dot_ok(crdt_dot d)
{
	return d.replica != 0 && d.counter != 0;
}

static int name_ok(const struct crdt_str *n)
{
	if (!n->s || n->len == 0 || n->len > CRDT_NAME_MAX)
		return 0;
	for (size_t i = 0; i < n->len; i++)
		if ((unsigned char)n->s[i] < 0x20 || n->s[i] == 0x7f)
			return 0; /* NUL and control characters never name a mailbox */
	return 1;
}

int crdt_op_validate(const crdt_op *op)
{
	if (op->id.counter > CRDT_COUNTER_MAX)
		return err_set(MCRDT_ERANGE, "op counter %" PRIu64 " out of range", op->id.counter);
	if (op->type < CRDT_OP_MBOX_CREATE || op->type > CRDT_OP_TYPE_MAX)
		return err_set(MCRDT_ECORRUPT, "unknown op type %d", (int)op->type);
	if (!dot_ok(op->id))
		return bad(op, "zero replica or counter");
	/* The deps name the issuer's past: never the op itself or later. */
	if (crdt_vv_base(&op->deps, op->id.replica) != op->id.counter - 1 ||
	    crdt_vv_exceptions(&op->deps) != 0)
		return bad(op, "dependencies do not end right before the op");
	if (op->deps.n - (crdt_vv_base(&op->deps, op->id.replica) ? 1 : 0) > CRDT_DEPS_MAX)
		return bad(op, "dependencies on too many replicas");
	for (size_t i = 0; i < op->deps.n; i++)
		if (op->deps.e[i].replica == 0 || op->deps.e[i].replica == UINT64_MAX ||
		    op->deps.e[i].base > CRDT_COUNTER_MAX)
			return bad(op, "dependency on an impossible replica or counter");
	for (size_t i = 0; i < op->nflags; i++) {
		const struct crdt_str *f = &op->flags[i];
		if (!f->s || f->len == 0 || f->len > CRDT_FLAG_MAX)
			return bad(op, "empty or oversized flag");
		for (size_t k = 0; k < f->len; k++)
			if ((unsigned char)f->s[k] <= 0x20 || f->s[k] == 0x7f)
				return bad(op, "flag with a space or control character");
	}
	if (op->nflags > CRDT_FLAGS_MAX || op->meta_len > CRDT_META_MAX)
		return bad(op, "too many flags or too much metadata");
	int has_name = 0, has_mbox = 0, has_msg = 0, has_uid = 0, has_flags = 0;
	/* Every op that claims a UID names its UID space. */
	switch (op->type) {
	case CRDT_OP_MBOX_CREATE:
		has_name = 1;
		if (op->uidvalidity == 0)
			return bad(op, "UIDVALIDITY 0");
		break;
	case CRDT_OP_MBOX_RENAME: has_name = has_mbox = 1; break;
	case CRDT_OP_MBOX_DELETE: has_mbox = 1; break;
	case CRDT_OP_SUBSCRIBE:
	case CRDT_OP_UNSUBSCRIBE: has_name = 1; break;
	case CRDT_OP_APPEND: has_mbox = has_uid = has_flags = 1; break;
	case CRDT_OP_COPY:
	case CRDT_OP_MOVE: has_mbox = has_msg = has_uid = has_flags = 1; break;
	case CRDT_OP_EXPUNGE: has_msg = 1; break;
	case CRDT_OP_FLAGS_ADD:
	case CRDT_OP_FLAGS_REMOVE:
	case CRDT_OP_FLAGS_SET: has_msg = has_flags = 1; break;
	case CRDT_OP_CLAIM: has_msg = has_uid = 1; break;
	}
	if (has_name && !name_ok(&op->name))
		return bad(op, "empty or malformed mailbox name");
	if (!has_name && op->name.s)
		return bad(op, "unexpected name");
	if (has_mbox && !dot_ok(op->mbox))
		return bad(op, "missing mailbox");
	if (has_msg && !dot_ok(op->msg))
		return bad(op, "missing message");
	if (has_uid && (op->uid == 0 || op->uid > CRDT_UID_MAX || !dot_ok(op->space)))
		return bad(op, "UID 0, UID out of range, or no UID space");
	if ((has_mbox && !crdt_vv_contains(&op->deps, op->mbox)) ||
	    (has_msg && !crdt_vv_contains(&op->deps, op->msg)) ||
	    (has_uid && !crdt_vv_contains(&op->deps, op->space)))
		return bad(op, "names a mailbox, message or UID space outside its dependencies");
	if (!has_uid && (op->uid || op->space.replica || op->space.counter))
		return bad(op, "unexpected UID");
	if (op->type != CRDT_OP_MBOX_CREATE && op->uidvalidity)
		return bad(op, "unexpected UIDVALIDITY");
	if (!has_mbox && (op->mbox.replica || op->mbox.counter))
		return bad(op, "unexpected mailbox");
	if (!has_msg && (op->msg.replica || op->msg.counter))
		return bad(op, "unexpected message");
	if (!has_flags && op->nflags)
		return bad(op, "unexpected flags");
	if (op->meta && op->type != CRDT_OP_APPEND && op->type != CRDT_OP_COPY && op->type != CRDT_OP_MOVE)
		return bad(op, "unexpected message metadata");
	return 0;
}

void crdt_op_format(const crdt_op *op, char *buf, size_t size)
{
	int n = snprintf(buf, size, "%" PRIx64 ".%" PRIu64 " %s", op->id.replica, op->id.counter,
			 crdt_op_type_name(op->type));
	size_t at = n < 0 ? 0 : (size_t)n;
#define ADD(...)                                                           \
	do {                                                               \
		if (at < size) {                                           \
			int k = snprintf(buf + at, size - at, __VA_ARGS__); \
			at += k < 0 ? 0 : (size_t)k;                       \
		}                                                          \
	} while (0)
	if (op->mbox.replica)
		ADD(" mbox=%" PRIx64 ".%" PRIu64, op->mbox.replica, op->mbox.counter);
	if (op->msg.replica)
		ADD(" msg=%" PRIx64 ".%" PRIu64, op->msg.replica, op->msg.counter);
	if (op->uid)
		ADD(" uid=%" PRIu32 "@%" PRIx64 ".%" PRIu64, op->uid, op->space.replica, op->space.counter);
	if (op->uidvalidity)
		ADD(" uidvalidity=%" PRIu32, op->uidvalidity);
	if (op->name.s)
		ADD(" name=\"%s\"", op->name.s);
	for (size_t i = 0; i < op->nflags; i++)
		ADD("%s%s", i ? "," : " flags=", op->flags[i].s);
#undef ADD
}
