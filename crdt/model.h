/*
 * crdt/model.h — the mail model: mailboxes, messages, flags and IMAP UIDs
 * of one replica, as a CRDT driven by ops.
 *
 * Semantics (DESIGN.md "Convergence contract"):
 *  - A mailbox exists while it holds an add dot: CREATE adds one, and so
 *    does every op that puts a message into it; DELETE drops the observed
 *    ones and expunges the messages it observed. A message appended
 *    concurrently with a delete therefore keeps its mailbox alive.
 *  - A mailbox's name is a multi-value register (RENAME replaces observed
 *    values); of concurrent names the one with the greatest dot (counter,
 *    then replica) wins. Live mailboxes with the same effective name form one
 *    visible mailbox; the one with the highest effective UIDVALIDITY is its
 *    canonical member, which gives the view its GUID, UIDVALIDITY and UID
 *    space.
 *  - UIDVALIDITY: each mailbox keeps the value it was created with unless
 *    another known mailbox has the same or a larger one in (UIDVALIDITY,
 *    GUID) order, in which case it takes one more than its predecessor:
 *    every UID space has its own, and values only ever rise.
 *  - A mailbox stays live while it holds messages, whatever its add dots.
 *  - A message lives from its APPEND/COPY/MOVE until an EXPUNGE, MOVE or
 *    DELETE that observed it. Flag ops on a message that is gone do nothing.
 *  - Flags and keywords: add-wins per flag.
 *  - Subscriptions: an add-wins set of names.
 *  - UIDs: every op that adds a message claims a UID in a space (a canonical
 *    mailbox GUID). A UID claimed for two messages is burned for both. After
 *    a batch, crdt_model_settle shows each message at its newest claim in
 *    its view's space when that UID is not burned and is either where the
 *    message is already shown or above everything this replica has shown;
 *    the others get fresh CLAIM ops at (highest claim known) + 1, + 2, ...
 *    in GUID order.
 *
 * Local changes: the crdt_model_<verb> functions check the request against
 * the current state, make the op(s), apply them and append them to an
 * oplist for the caller to log and send. Remote ops: crdt_model_receive.
 * After either, call crdt_model_settle before reading views.
 *
 * Peer input is untrusted: crdt_model_receive refuses an invalid op with
 * nothing changed (crdt_op_validate, references outside its deps, UIDs
 * above CRDT_UID_MAX). Known limit: a peer may still claim UIDs up to
 * CRDT_UID_MAX and so use up a mailbox's UID space; peers are the
 * replicas of one user, authenticated by the transport.
 *
 * Pure: no I/O, no clock. Not thread-safe: one owner per model.
 */
#ifndef MCRDT_CRDT_MODEL_H
#define MCRDT_CRDT_MODEL_H

#include <stdbool.h>

#include "crdt/op.h"

typedef struct crdt_model crdt_model;

/* A growable list of ops; owns them. */
typedef struct {
	crdt_op *ops;
	size_t n, cap;
} crdt_oplist;

#define CRDT_OPLIST_INIT { NULL, 0, 0 }
void crdt_oplist_free(crdt_oplist *l);
/* Moves *op into the list (op is left empty). 0 or MCRDT_ENOMEM. */
int crdt_oplist_push(crdt_oplist *l, crdt_op *op);

/* replica: this replica's id, never 0. 0, MCRDT_EINVAL or MCRDT_ENOMEM. */
int crdt_model_new(crdt_model **out, uint64_t replica);
void crdt_model_free(crdt_model *m);
uint64_t crdt_model_replica(const crdt_model *m);

/* ---- local changes: each returns 0 or an error with nothing changed ---- */

/* Creates a mailbox. MCRDT_EEXISTS if a visible mailbox has the name. */
int crdt_model_create(crdt_model *m, crdt_oplist *out, const char *name, uint32_t uidvalidity,
		      crdt_dot *guid_out);
/* Renames the visible mailbox mbox (any member GUID of it). */
int crdt_model_rename(crdt_model *m, crdt_oplist *out, crdt_dot mbox, const char *name);
int crdt_model_delete(crdt_model *m, crdt_oplist *out, crdt_dot mbox);
int crdt_model_subscribe(crdt_model *m, crdt_oplist *out, const char *name, bool on);
/* Appends a message with flags; returns its GUID and UID. meta is opaque. */
int crdt_model_append(crdt_model *m, crdt_oplist *out, crdt_dot mbox, const char *const *flags,
		      size_t nflags, const void *meta, size_t meta_len, crdt_dot *guid_out,
		      uint32_t *uid_out);
/* COPY (move false) or MOVE of msg into mbox with its current flags. */
int crdt_model_copy(crdt_model *m, crdt_oplist *out, crdt_dot msg, crdt_dot mbox, bool move,
		    const void *meta, size_t meta_len, crdt_dot *guid_out, uint32_t *uid_out);
int crdt_model_expunge(crdt_model *m, crdt_oplist *out, crdt_dot msg);
/* type: CRDT_OP_FLAGS_ADD, _REMOVE or _SET. */
int crdt_model_flags(crdt_model *m, crdt_oplist *out, crdt_dot msg, enum crdt_op_type type,
		     const char *const *flags, size_t nflags);

/*
 * Applies an op from a peer (or replays one from the log). Returns 0 when
 * applied (and any buffered ops it unblocked), MCRDT_EDUPLICATE when it was
 * already applied or is already buffered, MCRDT_EPENDING when it was
 * buffered to wait for its dependencies, or MCRDT_ECORRUPT/MCRDT_ERANGE for
 * an invalid op (nothing changes). The model keeps a copy; op stays the
 * caller's.
 */
int crdt_model_receive(crdt_model *m, const crdt_op *op);

/*
 * Resolves UIDs after a batch: decides what each changed message shows and
 * issues CLAIM ops (appended to out) for those that need a fresh UID.
 */
int crdt_model_settle(crdt_model *m, crdt_oplist *out);

/* ---- snapshots (crdt/snapshot.c) ---- */

/*
 * The whole settled state as bytes (MCRDT_EINVAL when a settle is due):
 * what crdt_model_load needs to rebuild the replica exactly, shown UIDs
 * included. Ops waiting for dependencies are not in it: the caller stores
 * them (crdt_model_pending_op) and receives them again after loading.
 * *out is malloc'd; the caller frees it.
 */
int crdt_model_save(const crdt_model *m, uint8_t **out, size_t *len);
/* Rebuilds a model from crdt_model_save's bytes. MCRDT_ECORRUPT for
 * anything malformed (every count and index is checked). */
int crdt_model_load(crdt_model **out, const uint8_t *p, size_t len);
/* The i-th op waiting for dependencies (i < crdt_model_pending). */
const crdt_op *crdt_model_pending_op(const crdt_model *m, size_t i);

/* ---- reading ---- */

struct crdt_mailbox_info {
	crdt_dot guid;          /* canonical member */
	char *name;
	uint32_t uidvalidity;
	uint32_t uidnext;       /* above every UID claimed in the space */
	uint32_t messages;      /* shown messages */
	bool subscribed;
};
/* Visible mailboxes sorted by name. Free with crdt_mailboxes_free. */
int crdt_model_mailboxes(const crdt_model *m, struct crdt_mailbox_info **out, size_t *n);
void crdt_mailboxes_free(struct crdt_mailbox_info *v, size_t n);
/* The visible mailbox named name: 0 or MCRDT_ENOTFOUND. */
int crdt_model_find(const crdt_model *m, const char *name, crdt_dot *guid_out);

struct crdt_row {
	uint32_t uid;
	crdt_dot guid;
	char *flags;            /* sorted, space-separated */
};
/* The shown messages of a visible mailbox by UID. Free with crdt_rows_free. */
int crdt_model_rows(const crdt_model *m, crdt_dot mbox, struct crdt_row **out, size_t *n);
void crdt_rows_free(struct crdt_row *v, size_t n);

/* Whether a message is live (not expunged) in this replica's state. */
bool crdt_model_has_message(const crdt_model *m, crdt_dot msg);
/* The whole visible state as deterministic text; caller frees. */
int crdt_model_describe(const crdt_model *m, char **out);
/* This replica's causal context (contiguous). */
int crdt_model_context(const crdt_model *m, crdt_vv *out);
/* Ops buffered for missing dependencies. */
size_t crdt_model_pending(const crdt_model *m);
/* Buffered ops refused once their dependencies arrived (one naming, say, a
 * message as a mailbox): dropped, and counted here for the caller to report. */
size_t crdt_model_rejected(const crdt_model *m);
/* Bytes of memory the model holds (tables, records, strings). */
size_t crdt_model_memory(const crdt_model *m);
/* Live messages. */
size_t crdt_model_messages(const crdt_model *m);

#endif
