/*
 * doc_internal.h - the document model's data structures, shared by doc.c
 * (apply, visibility, JSON, op building) and doc_state.c (state encoding,
 * decoding and the join of states). Nothing outside those two files
 * includes this header: everyone else uses doc.h.
 */
#ifndef WEFT_CORE_DOC_INTERNAL_H
#define WEFT_CORE_DOC_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/doc.h"
#include "core/text.h"

struct node {
	char *key;               /* key in the parent; NULL for the root */
	uint32_t key_len;        /* bytes of key */
	uint32_t val_len;        /* bytes of val */
	uint8_t *val;            /* leaf value (MessagePack), NULL if no leaf */
	struct weft_stamp leaf;  /* stamp of the leaf value */
	struct weft_stamp obj;   /* latest write at or below this node */
	struct weft_stamp clear; /* latest clear of this subtree */
	struct node **kids;      /* children sorted by key */
	uint32_t nkids;          /* children in use */
	uint32_t cap;            /* children allocated */
	struct ext *ext;         /* counter/set state; NULL for plain nodes */
};

/* One replica incarnation's contribution to a counter since a reset. */
struct ctr_entry {
	uint64_t replica;       /* issuing replica */
	uint32_t inc;           /* its incarnation */
	struct weft_stamp base; /* counter threshold the issuer saw */
	uint64_t p;             /* cumulative increments (max-merged) */
	uint64_t n;             /* cumulative decrements (max-merged) */
};

/* One add of a set element: (element, dot, op stamp). */
struct set_entry {
	uint8_t *elem;           /* minimal MessagePack scalar */
	uint32_t elem_len;       /* bytes of elem */
	struct weft_dot dot;     /* identity of the add */
	struct weft_stamp stamp; /* the SADD op's stamp */
};

/* The causal context of one actor: dots 1..max, plus `cloud` beyond. */
struct cc_actor {
	uint64_t replica;
	uint32_t inc;
	uint32_t ncloud; /* dots in cloud */
	uint32_t cap;    /* cloud allocated */
	uint64_t max;    /* every counter 1..max is seen */
	uint64_t *cloud; /* sorted counters > max + 1 also seen */
};

/* Extension of a node that ever received INCR/SADD/SREM ops. */
struct ext {
	struct weft_stamp ctr;       /* max stamp of INCR ops */
	struct weft_stamp ctr_claim; /* max stamp of claiming INCR ops */
	struct weft_stamp set;       /* max stamp of SADD/SREM ops */
	struct weft_stamp set_claim; /* max stamp of claiming SADD/SREM ops */
	struct ctr_entry *ce;        /* sorted by (replica, inc, base) */
	uint32_t nce, ce_cap;
	struct set_entry *se; /* sorted by (elem bytes, dot) */
	uint32_t nse, se_cap;
	struct cc_actor *cc; /* sorted by (replica, inc) */
	uint32_t ncc, cc_cap;
	struct weft_stamp txt;       /* max stamp of TEXT ops */
	struct weft_stamp txt_claim; /* max stamp of claiming TEXT ops */
	struct weft_stamp tbase;     /* text threshold `text` was started at */
	struct weft_text *text;      /* the text of base tbase; NULL if none */
};

struct weft_doc {
	struct weft_doc *next; /* hash chain */
	uint64_t hash;         /* hash of (coll, id) */
	char *coll;            /* NUL-terminated copy */
	char *id;              /* NUL-terminated copy */
	uint32_t coll_len;
	uint32_t id_len;
	struct node root;
	struct weft_vv vv; /* replica -> max HLC of its ops applied here */
};

struct weft_docset {
	const struct weft_alloc *alloc;
	struct weft_doc **buckets; /* power-of-two hash table */
	size_t nbuckets;
	size_t count;
	uint64_t agent_replica; /* local text agent (weft__docset_set_agent) */
	uint32_t agent_inc;     /* its incarnation; 0 on a server */
};

enum shown { SHOWN_ABSENT, SHOWN_LEAF, SHOWN_OBJECT, SHOWN_COUNTER, SHOWN_SET, SHOWN_TEXT };

/* The thresholds below which parts of a node are dead. */
struct thr {
	struct weft_stamp kids; /* leaf, obj and children: clears and claims */
	struct weft_stamp ctr;  /* counter entries (base) and the ctr stamp */
	struct weft_stamp set;  /* set entries (stamp) and the set stamp */
	struct weft_stamp txt;  /* the text (its base) and the txt stamp */
};

/* The zero stamp: "never". */
static const struct weft_stamp weft__doc_zero_stamp = {0, 0};

/* Helpers shared by doc.c and doc_state.c (defined in doc.c). */
void weft__doc_node_thr(const struct node *n, struct weft_stamp ec_parent, struct thr *t);
bool weft__doc_live(struct weft_stamp s, struct weft_stamp thr);
int weft__doc_key_cmp(const char *a, size_t alen, const char *b, size_t blen);
void weft__doc_node_free_contents(const struct weft_alloc *a, struct node *n);
bool weft__doc_text_live(const struct ext *x, const struct thr *t);
uint32_t weft__doc_kid_search(const struct node *n, const char *key, size_t len, bool *found);
void weft__doc_write_stamp(struct mp_buf *out, struct weft_stamp s);
int weft__doc_grow(const struct weft_alloc *a, void **arr, uint32_t *cap, uint32_t need,
                   size_t size);
int weft__doc_ce_cmp(const struct ctr_entry *e, uint64_t replica, uint32_t inc,
                     struct weft_stamp base);
int weft__doc_actor_cmp(uint64_t ar, uint32_t ai, uint64_t br, uint32_t bi);
bool weft__doc_cc_has(const struct ext *x, const struct weft_dot *d);
int weft__doc_se_cmp(const struct set_entry *e, const uint8_t *elem, size_t len,
                     const struct weft_dot *d);
void weft__doc_destroy(const struct weft_alloc *a, struct weft_doc *d);
int weft__doc_create(const struct weft_alloc *a, const char *coll, size_t coll_len, const char *id,
                     size_t id_len, struct weft_doc **out);
void weft__docset_link(struct weft_docset *ds, struct weft_doc *d);
int weft__docset_insert(struct weft_docset *ds, const char *coll, size_t coll_len, const char *id,
                        size_t id_len, struct weft_doc **out);

#endif
