/*
 * crdt/op.h — the ops of the mail model: every change a replica makes.
 *
 * An op is named by its dot and carries its causal dependencies (the
 * issuer's context when it made the op). "Observed" in every remove means
 * "covered by the deps", so ops carry no lists of observed dots.
 *
 * UID claims: APPEND, COPY and MOVE claim uid in a UID space (the GUID of
 * the mailbox whose view showed the message; see crdt/model.h); CLAIM
 * claims again for a message whose UID could not be shown.
 *
 * A message's GUID is the dot of the op that created it (APPEND, COPY,
 * MOVE); a mailbox's GUID is the dot of its CREATE.
 *
 * An op owns every buffer it points to; crdt_op_free releases them.
 */
#ifndef MCRDT_CRDT_OP_H
#define MCRDT_CRDT_OP_H

#include "crdt/vv.h"

enum crdt_op_type {
	CRDT_OP_MBOX_CREATE = 1, /* name, uidvalidity */
	CRDT_OP_MBOX_RENAME,     /* mbox, name */
	CRDT_OP_MBOX_DELETE,     /* mbox */
	CRDT_OP_SUBSCRIBE,       /* name */
	CRDT_OP_UNSUBSCRIBE,     /* name */
	CRDT_OP_APPEND,          /* mbox, space, uid, flags, meta */
	CRDT_OP_COPY,            /* mbox, msg (source), space, uid, flags, meta */
	CRDT_OP_MOVE,            /* mbox, msg (source, removed), space, uid, flags, meta */
	CRDT_OP_EXPUNGE,         /* msg */
	CRDT_OP_FLAGS_ADD,       /* msg, flags */
	CRDT_OP_FLAGS_REMOVE,    /* msg, flags */
	CRDT_OP_FLAGS_SET,       /* msg, flags: exactly these, replacing observed ones */
	CRDT_OP_CLAIM,           /* space, msg, uid */
	CRDT_OP_TYPE_MAX = CRDT_OP_CLAIM
};

/* Bounds every op must respect, from a local caller or a peer. */
#define CRDT_NAME_MAX 1024   /* bytes of a mailbox name */
#define CRDT_FLAG_MAX 255    /* bytes of one flag or keyword */
#define CRDT_FLAGS_MAX 128   /* flags in one op */
#define CRDT_META_MAX 65536  /* bytes of opaque per-message metadata */
/* The highest UID a claim may name: half the IMAP range, so that a peer's
 * claim can never leave a mailbox without room for fresh UIDs on its own. */
#define CRDT_UID_MAX 0x7fffffffu
/* Replicas an op's deps may name besides its issuer. */
#define CRDT_DEPS_MAX 65536
/* Ops a replica holds back for missing dependencies, at most. */
#define CRDT_PENDING_MAX 1000000
/* The highest op counter: dots pack it into 48 bits in memory. */
#define CRDT_COUNTER_MAX ((UINT64_C(1) << 48) - 1)

struct crdt_str {
	char *s;    /* NUL-terminated copy; len excludes the NUL */
	size_t len;
};

typedef struct crdt_op {
	crdt_dot id;
	crdt_vv deps;
	enum crdt_op_type type;
	crdt_dot mbox;
	crdt_dot msg;
	crdt_dot space; /* the mailbox whose UID space uid was claimed in */
	uint32_t uid;
	uint32_t uidvalidity;
	struct crdt_str name;
	struct crdt_str *flags;
	size_t nflags;
	uint8_t *meta;  /* opaque to crdt/: the store's per-message data */
	size_t meta_len;
} crdt_op;

void crdt_op_init(crdt_op *op, enum crdt_op_type type);
void crdt_op_free(crdt_op *op);
/* Empties op for reuse, keeping its deps' memory (a decoder's loop). */
void crdt_op_reset(crdt_op *op);
/* Deep copy into dst (which is overwritten, not freed). 0 or MCRDT_ENOMEM. */
int crdt_op_copy(crdt_op *dst, const crdt_op *src);
/* Setters that copy their input. 0, MCRDT_ENOMEM or MCRDT_EINVAL. */
int crdt_op_set_name(crdt_op *op, const char *name, size_t len);
int crdt_op_add_flag(crdt_op *op, const char *flag, size_t len);
int crdt_op_set_meta(crdt_op *op, const void *meta, size_t len);
/*
 * Checks every field against the type's rules and the bounds above, and
 * that every mailbox, message and UID space the op names is in its deps
 * (an op can only name what its issuer had seen). 0, or MCRDT_ECORRUPT
 * naming the field (an op from a peer is untrusted).
 */
int crdt_op_validate(const crdt_op *op);
/* The first field in which a and b differ ("type", "deps", "name", ...),
 * or NULL when they are equal (deps compared as version vectors). */
const char *crdt_op_diff(const crdt_op *a, const crdt_op *b);
/* Heap bytes the op's buffers hold (not the struct itself). */
size_t crdt_op_bytes(const crdt_op *op);
/* The type's name, e.g. "append". */
const char *crdt_op_type_name(enum crdt_op_type t);
/* One line describing the op into buf (for traces and `mcrdt log`). */
void crdt_op_format(const crdt_op *op, char *buf, size_t size);

#endif
