/*
 * crdt/model_int.h — the mail model's records, shared by model.c (ops and
 * UID settlement) and view.c (reading). Not for other modules.
 *
 * Memory per message is what the scale target is about: a 40-byte record,
 * a GUID index slot, an 8-byte claim slot, one 16-byte flag dot per set
 * flag, a member slot and its meta bytes (plus a one- to three-byte length)
 * in the meta pool. Dots inside are packed: (local replica index << 48) | counter.
 */
#ifndef MCRDT_CRDT_MODEL_INT_H
#define MCRDT_CRDT_MODEL_INT_H

#include "common/hashmap.h"
#include "crdt/model.h"
#include "crdt/orset.h"

typedef uint64_t pdot;
#define PDOT_CTR_BITS 48
#define PDOT_CTR_MAX ((UINT64_C(1) << PDOT_CTR_BITS) - 1)
#define RIX_MAX 0xfffeu            /* 0xffff is reserved for markers */
#define CLAIM_BURNED UINT64_C(0xfffffffffffffffe)
#define NONE UINT32_MAX

static inline pdot pdot_make(uint32_t rix, uint64_t ctr)
{
	return ((uint64_t)rix << PDOT_CTR_BITS) | ctr;
}
static inline uint32_t pdot_rix(pdot d)
{
	return (uint32_t)(d >> PDOT_CTR_BITS);
}
static inline uint64_t pdot_ctr(pdot d)
{
	return d & PDOT_CTR_MAX;
}

enum {
	MSG_LIVE = 1,
	MSG_DIRTY = 2,     /* queued for settle */
	MSG_XCLAIMS = 4,   /* has claims in another mailbox's space (xclaims) */
};

#define MEMBERS_MAX ((UINT32_C(1) << 29) - 1)
/* Mailbox indexes fit 24 bits in struct msg: at most this many mailboxes
 * ever known (each costs a record far larger than a message's). */
#define MBOXES_MAX ((UINT32_C(1) << 24) - 1)
/* MODSEQ values fit 48 bits in struct msg, like op counters. */
#define MODSEQ_MAX ((UINT64_C(1) << 48) - 1)

/*
 * 40 bytes: the 48-bit MODSEQ is split over the spare bits of the two
 * 24-bit mailbox indexes and a word of its own (msg_modseq reads it).
 */
struct msg {
	pdot guid;
	uint32_t mbox : 24;        /* mailbox index */
	uint32_t seq_hi : 8;       /* MODSEQ bits 40..47 */
	uint32_t shown_space : 24; /* mailbox index of the view it is shown in */
	uint32_t seq_mid : 8;      /* MODSEQ bits 32..39 */
	uint32_t pos : 29;         /* index in the mailbox's member array */
	uint32_t state : 3;        /* MSG_ bits */
	uint32_t flags;            /* head of its flag-dot chain, or NONE */
	uint32_t claim;            /* newest claim in its own mailbox's space, 0 none;
				    * next free slot when not live */
	uint32_t shown;            /* UID shown on this replica, 0 when not shown */
	uint32_t meta;             /* offset of its meta in the pool, NONE when empty */
	uint32_t seq_lo;           /* MODSEQ bits 0..31 */
};

_Static_assert(sizeof(struct msg) == 40, "struct msg is the per-message record: keep it at 40 bytes");

/* The counter value of the message's last visible change (model.h). */
static inline uint64_t msg_modseq(const struct msg *x)
{
	return (uint64_t)x->seq_hi << 40 | (uint64_t)x->seq_mid << 32 | x->seq_lo;
}
static inline void msg_set_modseq(struct msg *x, uint64_t v)
{
	x->seq_hi = (uint32_t)(v >> 40) & 0xff;
	x->seq_mid = (uint32_t)(v >> 32) & 0xff;
	x->seq_lo = (uint32_t)v;
}

/* A UID a view stopped showing (crdt_model_vanished). */
struct vanished {
	uint32_t space;        /* mailbox index of the view's UID space */
	uint32_t uid;
	uint64_t modseq;       /* counter value when it stopped being shown */
};
_Static_assert(sizeof(struct vanished) == 16, "vanished records are 16 bytes");

struct fdot {
	pdot dot;
	uint32_t flag;        /* interned flag index */
	uint32_t next;        /* next in the message's chain, or free list */
};

struct nameval {
	crdt_dot dot;
	char *name;
	size_t len;
};

struct mbox {
	crdt_dot guid;
	uint32_t uidvalidity; /* as created */
	uint32_t uv_eff;      /* made unique among all known mailboxes */
	bool live;
	crdt_dot *exists;     /* add dots (OR-set of this mailbox) */
	size_t nexists, capexists;
	struct nameval *names;/* multi-value register */
	size_t nnames;
	uint32_t *members;    /* live messages */
	size_t nmembers, capmembers;
	pdot *uids;           /* claims by UID (dense part): message pdot, */
	size_t capuids;       /* CLAIM_BURNED, or 0 when unclaimed */
	size_t nuids;         /* claimed slots in uids (bounds its growth) */
	uint32_t canon;       /* canonical mailbox of its visible group */
	uint32_t hi;          /* highest UID claimed in this space */
	uint32_t shown_max;   /* highest UID this replica has shown here */
	uint64_t hms;         /* HIGHESTMODSEQ of this UID space: its creation,
			       * messages shown in it, UIDs it stopped showing */
};

/* The order of mailboxes by (UIDVALIDITY as created, GUID): effective
 * UIDVALIDITY rises along it, and of the live members of a view the last
 * in it leads. */
static inline int mbox_rank_cmp(const struct mbox *x, const struct mbox *y)
{
	if (x->uidvalidity != y->uidvalidity)
		return x->uidvalidity < y->uidvalidity ? -1 : 1;
	return crdt_dot_cmp(x->guid, y->guid);
}

struct crdt_model {
	uint64_t self;
	/* replicas: local index <-> global id, and the causal context */
	uint64_t *rep;
	uint64_t *cc;
	size_t nrep, caprep;
	struct hmap rixmap;   /* global id -> index */

	struct msg *msgs;
	size_t nmsgs, capmsgs;
	uint32_t freemsg;     /* free slot chain */
	size_t live;
	struct hmap guids;    /* pdot -> message index */

	/* Meta pool: each entry is a varint length then the bytes, referenced
	 * by offset (struct msg.meta). Entries of expunged messages are
	 * garbage until the pool is compacted (model.c meta_compact). */
	uint8_t *meta;
	size_t nmeta, capmeta;
	size_t metagarbage;

	uint64_t modseq;      /* ops applied (crdt_model_modseq) */
	uint64_t opseq;       /* the value of the op being applied, 0 between ops */

	/* UIDs views stopped showing, in the order they stopped (so modseq
	 * never decreases along the array). Not yet garbage-collected: this
	 * grows by 16 bytes per expunge or UID move for the model's life. */
	struct vanished *van;
	size_t nvan, capvan;

	struct fdot *fpool;
	size_t nf, capf;
	uint32_t freef;

	char **flagnames;
	size_t nflagnames, capflagnames;
	struct hmap flagids;  /* XXH3 of name (probed) -> flag index */

	struct mbox *mboxes;
	size_t nmboxes, capmboxes;
	struct hmap mboxids;  /* pdot -> mailbox index */
	bool names_dirty;

	struct hmap claims;   /* claims beyond a space's dense vector: (space << 32 | uid) -> as uids */
	struct hmap xclaims;  /* (space << 32 | message index) -> newest uid */

	crdt_orset subs;

	uint32_t *dirty;
	size_t ndirty, capdirty;

	crdt_op *pending;     /* ops waiting for dependencies */
	size_t npending, cappending;
	struct hmap pendids;  /* pdot of op id -> index in pending */
	size_t rejected;
	uint64_t van_floor;    /* vanished records are complete only above this (crdt_model_assume_shown) */      /* buffered ops found invalid when released */
};

/* Shared by model.c, view.c and snapshot.c. */
int rix_intern(crdt_model *m, uint64_t replica, uint32_t *out);
int flag_intern(crdt_model *m, const char *name, size_t len, uint32_t *out);
int fdot_new(crdt_model *m, struct msg *x, pdot dot, uint32_t flag);
uint64_t *claim_slot(crdt_model *m, uint32_t space, uint32_t uid, bool create);
const struct nameval *mbox_name(const struct mbox *b);
int mbox_index(const crdt_model *m, crdt_dot guid, uint32_t *out);
int msg_index(const crdt_model *m, crdt_dot guid, uint32_t *out);
crdt_dot dot_of(const crdt_model *m, pdot d);
/* The distinct flags of message i, sorted; free the array (not the names). */
int msg_flag_names(const crdt_model *m, uint32_t i, const char ***out, size_t *n_out);
/* The same into *buf (capacity *cap, grown with realloc as needed; the
 * caller frees it): one buffer serves many messages. */
int msg_flag_names_into(const crdt_model *m, uint32_t i, const char ***buf, size_t *cap,
			size_t *n_out);
/* The meta bytes of message x (len 0 and a non-NULL pointer when none). */
void msg_meta(const crdt_model *m, const struct msg *x, const uint8_t **p, size_t *len);
/* Puts len bytes into the meta pool: *off gets their offset, or NONE for
 * none. 0, MCRDT_ENOMEM or MCRDT_ERANGE (the pool is at 4 GiB). */
int meta_put(crdt_model *m, const uint8_t *p, size_t len, uint32_t *off);
/* The claim slot of uid in space for reading (NULL when never claimed). */
const uint64_t *claim_get(const crdt_model *m, uint32_t space, uint32_t uid);

#endif
