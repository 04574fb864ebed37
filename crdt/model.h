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
 *  - Meta: each message keeps the opaque meta bytes of the op that made it
 *    (APPEND, COPY or MOVE), verbatim, for its life; claims leave them be.
 *
 * MODSEQ (IMAP CONDSTORE/QRESYNC; per replica, never part of convergence):
 *  - The model counts the ops it applies: local ops, received ops, the
 *    CLAIMs settle issues, buffered ops when released; not duplicates, not
 *    ops merely buffered, not refused ops. The same ops received in the
 *    same order with the same settle calls give the same values, so a
 *    replica replaying its log gets them back.
 *  - A message's MODSEQ is the value of the last op that created it,
 *    changed its set of flags (an op that leaves the set as it was does
 *    not count) or changed or burned its claim; when settle shows it under
 *    a new UID, the counter's value at that settle.
 *  - When a view stops showing a UID (expunge, move, delete, a new claim
 *    for the message, its mailbox leaving the view) the UID is recorded as
 *    vanished with the value of the op that removed the message, or the
 *    counter's value at the settle that decided it.
 *  - A view's HIGHESTMODSEQ is the largest of its UID space's creation,
 *    its shown messages' and its vanished UIDs' values: it never goes
 *    down while the view keeps its UIDVALIDITY, and anything that changes
 *    in the view after a read carries a larger value than it had then.
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
/* The MODSEQ counter: how many ops this model has applied (see above). */
uint64_t crdt_model_modseq(const crdt_model *m);

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
 * A replica that joins others brings mailboxes of its own that it never
 * used: the INBOX every store makes at creation, say. Where such a
 * mailbox of this replica (never a message, never a UID claimed) shares
 * its name with a peer's mailbox that was used, this deletes this
 * replica's one (a DELETE of that member alone), so that the visible
 * mailbox keeps the used one's UID space and UIDVALIDITY instead of
 * taking the newcomer's. Call it after receiving a batch, before the
 * settle. *n_out (may be NULL) gets the mailboxes given up.
 */
int crdt_model_give_way(crdt_model *m, crdt_oplist *out, size_t *n_out);

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
	uint64_t highestmodseq; /* HIGHESTMODSEQ of the view (see above) */
};
/* Visible mailboxes sorted by name. Free with crdt_mailboxes_free. */
int crdt_model_mailboxes(const crdt_model *m, struct crdt_mailbox_info **out, size_t *n);
void crdt_mailboxes_free(struct crdt_mailbox_info *v, size_t n);
/* One of them, by its (canonical) guid, without listing the rest, and
 * without counting its messages (out->messages is 0: that count walks the
 * mailbox, and an IMAP call needs the rest): 0, MCRDT_ENOTFOUND (no error
 * message set), MCRDT_ENOMEM. Caller frees out->name. */
int crdt_model_mailbox(const crdt_model *m, crdt_dot guid, struct crdt_mailbox_info *out);
/* The visible mailbox named name: 0 or MCRDT_ENOTFOUND. */
int crdt_model_find(const crdt_model *m, const char *name, crdt_dot *guid_out);

struct crdt_row {
	uint32_t uid;
	crdt_dot guid;
	char *flags;            /* sorted, space-separated */
	uint64_t modseq;        /* the message's MODSEQ */
};
/* The shown messages of a visible mailbox by UID. Free with crdt_rows_free. */
int crdt_model_rows(const crdt_model *m, crdt_dot mbox, struct crdt_row **out, size_t *n);
void crdt_rows_free(struct crdt_row *v, size_t n);

/* A shown message as crdt_model_each passes it. */
struct crdt_msgview {
	uint32_t uid;
	crdt_dot guid;
	uint64_t modseq;
	const char *const *flags; /* its distinct flags, sorted by strcmp (NULL when none) */
	size_t nflags;
	const uint8_t *meta;      /* never NULL; meta_len 0 when it has none */
	size_t meta_len;
};
typedef int (*crdt_each_fn)(void *ctx, const struct crdt_msgview *v);
/*
 * Calls fn for every message shown in the view of the visible mailbox mbox
 * (any member GUID) with lo <= uid <= hi, in ascending UID order, after a
 * settle. A non-zero return from fn stops the walk and is returned. The
 * pointers in *v are valid during that call only, and fn must not change
 * the model. A range small next to the view goes UID by UID through the
 * claims; a large one collects the view and sorts it once; neither
 * allocates per message. 0, MCRDT_ENOTFOUND when mbox is not a visible
 * mailbox, MCRDT_ENOMEM.
 */
int crdt_model_each(const crdt_model *m, crdt_dot mbox, uint32_t lo, uint32_t hi, crdt_each_fn fn,
		    void *ctx);

/*
 * The UIDs the view of the visible mailbox mbox (any member GUID) stopped
 * showing with a value above since (QRESYNC "expunged since"), ascending,
 * each once, none shown right now. *uids is malloc'd (NULL when *n is 0);
 * the caller frees it. 0, MCRDT_ENOTFOUND when mbox is not a visible
 * mailbox, MCRDT_ENOMEM. A view whose UIDVALIDITY changed has a new UID
 * space and nothing vanished from it yet.
 */
int crdt_model_vanished(const crdt_model *m, crdt_dot mbox, uint64_t since, uint32_t **uids,
			size_t *n);

/*
 * The meta bytes of live message msg (those of the op that made it). *meta
 * points into the model and stays valid until the next change to it; with
 * no meta, *len is 0 and *meta a valid empty pointer. 0, or
 * MCRDT_ENOTFOUND when msg is not live.
 */
int crdt_model_meta(const crdt_model *m, crdt_dot msg, const uint8_t **meta, size_t *len);

/* A live message as crdt_model_message gives it. */
struct crdt_msginfo {
	crdt_dot mbox;            /* canonical member of the view holding it */
	const char *mailbox;      /* that view's name */
	uint32_t uid;             /* shown UID, 0 when not shown */
	const char **flags;       /* its distinct flags, sorted (array malloc'd) */
	size_t nflags;
	const uint8_t *meta;      /* never NULL; meta_len 0 when none */
	size_t meta_len;
};
/*
 * Where live message msg is and what it carries, after a settle. The
 * strings and meta point into the model and stay valid until its next
 * change; free the flags array with crdt_msginfo_free. 0, MCRDT_ENOTFOUND
 * when msg is not live, MCRDT_ENOMEM.
 */
int crdt_model_message(const crdt_model *m, crdt_dot msg, struct crdt_msginfo *out);
void crdt_msginfo_free(struct crdt_msginfo *x);

/*
 * Of two live messages that are one message imported twice (the caller
 * decides that: same file name, same content), the one every replica
 * keeps, in *keep: the one whose own mailbox (the member it was added to)
 * ranks higher by (UIDVALIDITY as created, GUID), then the smaller GUID.
 * Of concurrently created mailboxes of one name, the highest in that order
 * leads the view and gives it its UID space, so the copy kept is the one
 * already claimed there: it keeps its UID, and where each replica imported
 * the same files, nothing moves. The order depends only on the ops that
 * made the two messages and their mailboxes, so every replica keeps the
 * same copy whatever else it knows. 0, MCRDT_ENOTFOUND when either is not
 * live.
 */
int crdt_model_keeper(const crdt_model *m, crdt_dot a, crdt_dot b, crdt_dot *keep);

/*
 * The subscribed names, sorted by bytes, whether a mailbox has the name or
 * not (IMAP LSUB). *names is an array of *n malloc'd strings; free it with
 * crdt_strv_free. 0 or MCRDT_ENOMEM.
 */
int crdt_model_subscriptions(const crdt_model *m, char ***names, size_t *n);
/* Frees n strings and the array v (NULL is fine). */
void crdt_strv_free(char **v, size_t n);

/* Whether a message is live (not expunged) in this replica's state. */
bool crdt_model_has_message(const crdt_model *m, crdt_dot msg);
/* The whole visible state as deterministic text; caller frees. Only what
 * converges: replicas with the same ops describe the same text. */
int crdt_model_describe(const crdt_model *m, char **out);
/* crdt_model_describe plus this replica's own state: the MODSEQ counter,
 * each view's HIGHESTMODSEQ, each message's MODSEQ and meta (length and
 * hash), every mailbox's HIGHESTMODSEQ and the vanished records. Two
 * replicas differ here; a replica and its reloaded snapshot do not.
 * Caller frees. */
int crdt_model_describe_local(const crdt_model *m, char **out);
/* This replica's causal context (contiguous). */
int crdt_model_context(const crdt_model *m, crdt_vv *out);
/* Ops buffered for missing dependencies. */
size_t crdt_model_pending(const crdt_model *m);
/* Buffered ops refused once their dependencies arrived (one naming, say, a
 * message as a mailbox): dropped, and counted here for the caller to report. */
size_t crdt_model_rejected(const crdt_model *m);
/*
 * After a restart: treats every UID claimed in a space as possibly shown.
 * A replica that replayed a stretch of its log in one batch cannot know
 * which of those UIDs its clients saw (one shown and expunged within the
 * stretch leaves no trace), so from now on nothing new is shown below the
 * highest claim (invariant (b) across restarts). A peer's message claimed
 * lower then gets a fresh claim instead. For the same reason every view's
 * HIGHESTMODSEQ is raised to the counter, and crdt_model_vanished asked
 * about an earlier MODSEQ reports every UID up to the highest claim that
 * is not shown (QRESYNC lets a server report more than what vanished).
 * Call it after a settle.
 */
void crdt_model_assume_shown(crdt_model *m);
/* Bytes of memory the model holds (tables, records, strings, the meta
 * pool, vanished records). */
size_t crdt_model_memory(const crdt_model *m);
/* Live messages. */
size_t crdt_model_messages(const crdt_model *m);

#endif
