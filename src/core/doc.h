/*
 * doc.h - the document model (docs/DATA-MODEL.md is the normative text).
 *
 * A document is (collection, id, a tree of fields). Each node of the tree
 * is addressed by its path of object keys from the root and carries three
 * stamps, each a (hlc, replica) pair that only ever grows (max):
 *   leaf   the node's value as a leaf (a MessagePack scalar or array) and
 *          the stamp of the write that set it;
 *   obj    the latest write that made this node an object (a write at or
 *          below it);
 *   clear  the latest write that cleared this node's subtree (a leaf write,
 *          a replace, or a delete at this path).
 * Anything in the subtree of a node with a stamp below the node's clear
 * stamp (or an ancestor's) is dead. A node shows as a leaf when its leaf
 * stamp is live and greater than its obj stamp, as an object when its obj
 * stamp is live and greater than its leaf stamp, and is absent otherwise.
 * A document is visible when its root is an object.
 *
 * A node may also be a PN-counter, an add-wins set (INCR/SADD/SREM ops) or
 * a collaborative text (TEXT ops, core/text.h);
 * their state hangs off the node in an extension, and the node shows as
 * whichever of leaf, object, counter or set was written last among those
 * still live (docs/DATA-MODEL.md, "Counters and sets").
 *
 * Because every component merges by max, applying ops in any order, any
 * number of times, gives the same state (commutative, associative,
 * idempotent), and the visible JSON is a function of the state.
 *
 * Each document also carries a version vector (core/vv.h): for each
 * replica, the largest HLC of its ops applied to the document, bumped by
 * every apply and joined by weft__docset_merge_state. Peer-to-peer sync
 * uses it to find what a peer lacks.
 *
 * A docset is the in-memory set of documents of a replica or server,
 * addressed by (collection, id) through a hash table.
 */
#ifndef WEFT_CORE_DOC_H
#define WEFT_CORE_DOC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/alloc.h"
#include "core/hlc.h"
#include "core/mp.h"
#include "core/op.h"
#include "core/vv.h"

struct weft_doc;
struct weft_docset;

/* Visibility of a document before and after an apply. */
enum weft_doc_change {
	WEFT_DOC_NONE = 0,     /* nothing visible changed */
	WEFT_DOC_INSERTED = 1, /* was absent or deleted, now visible */
	WEFT_DOC_UPDATED = 2,  /* visible before and after, content differs */
	WEFT_DOC_DELETED = 3   /* was visible, now absent */
};

int weft__docset_new(const struct weft_alloc *a, struct weft_docset **out);
void weft__docset_free(struct weft_docset *ds);
/* Number of documents held (visible or not). */
size_t weft__docset_count(const struct weft_docset *ds);

/* The document, or NULL. Borrowed: valid until the next apply, load or
 * commit of a staged state. */
struct weft_doc *weft__docset_find(struct weft_docset *ds, const char *coll, size_t coll_len,
                                   const char *id, size_t id_len);

/*
 * Applies one op (already validated by weft__op_decode or built by the
 * caller with the same rules). Creates the document if needed. *change
 * (may be NULL) tells what happened to its visibility; *doc_out (may be
 * NULL) receives the document.
 * Errors: WEFT_ENOMEM (the document may hold part of the op: re-applying
 * the same op later completes it, since apply is idempotent), WEFT_EPROTO.
 */
int weft__docset_apply(struct weft_docset *ds, const struct weft_op *op,
                       enum weft_doc_change *change, struct weft_doc **doc_out);

/* Loads a document's encoded state (weft__doc_encode or
 * weft__doc_encode_full; formats 1-3), replacing any document with the
 * same key, version vector included (empty for formats 1 and 2).
 * Errors: WEFT_ECORRUPT, WEFT_ENOMEM. */
int weft__docset_load(struct weft_docset *ds, const char *coll, size_t coll_len, const char *id,
                      size_t id_len, const void *state, size_t len);

/* Every document, sorted by (collection, id) bytewise, into a new array
 * of borrowed pointers (free with the docset's allocator through
 * weft__docset_free_list). Errors: WEFT_ENOMEM. */
int weft__docset_list(struct weft_docset *ds, struct weft_doc ***out, size_t *n);
void weft__docset_free_list(struct weft_docset *ds, struct weft_doc **list);

void weft__doc_key(const struct weft_doc *d, const char **coll, size_t *coll_len, const char **id,
                   size_t *id_len);
bool weft__doc_visible(const struct weft_doc *d);
/* Appends the visible document as canonical JSON to out. The document
 * must be visible. */
int weft__doc_write_json(const struct weft_doc *d, struct mp_buf *out);
/* Appends the visible document as one MessagePack map, the value the
 * predicates of core/pred.h evaluate: the content weft__doc_write_json
 * writes (counters as integers, sets as arrays in the same order, texts as
 * strings), with object keys in the same order and leaf values as stored.
 * The document must be visible. Errors: WEFT_ENOMEM, out->err. */
int weft__doc_write_value(const struct weft_doc *d, struct mp_buf *out);
/* Appends the content state (every stamp, tombstones included; format 2)
 * to out. This is what the server stores and sends and what Merkle leaves
 * hash: it leaves out the version vector, which only peer-to-peer sync
 * uses (a replica and the server that applied different but superseded
 * ops still compare equal). */
void weft__doc_encode(const struct weft_doc *d, struct mp_buf *out);
/* Appends the full state, format 3: the content state and the document's
 * version vector. What a replica stores and what peers exchange. */
void weft__doc_encode_full(const struct weft_doc *d, struct mp_buf *out);
/* The document's version vector (core/vv.h): for each replica, the largest
 * HLC of its ops applied to the document. Borrowed, like the document. */
const struct weft_vv *weft__doc_vv(const struct weft_doc *d);

/*
 * Peer-to-peer import: joining a state (weft__doc_encode_full, or an older
 * format) into the local document of the same key, as the lattice join of
 * every component (docs/DATA-MODEL.md, "Peer-to-peer sync"): commutative,
 * associative and idempotent.
 *
 * In two steps so that a whole change set applies all or nothing:
 * weft__docset_stage_state decodes and validates the state and builds the
 * joined document privately (the docset is not touched); after every
 * entry has staged, weft__docset_commit_staged swaps each in (it cannot
 * fail). The docset must not change between the two, and no two staged
 * entries may have the same key. weft__staged_free drops one uncommitted
 * (NULL is a no-op).
 * Errors of stage: WEFT_ECORRUPT (malformed or non-canonical state, bad
 * key lengths), WEFT_ENOMEM. *out is set only on success.
 */
struct weft_staged;
int weft__docset_stage_state(struct weft_docset *ds, const char *coll, size_t coll_len,
                             const char *id, size_t id_len, const void *state, size_t len,
                             struct weft_staged **out);
/* Whether committing changes the document (false: the join is the local
 * state already, e.g. a repeated import). */
bool weft__staged_changed(const struct weft_staged *s);
/* The largest HLC in the incoming state's version vector (0 when the
 * state brought nothing new). */
uint64_t weft__staged_max_hlc(const struct weft_staged *s);
/* Swaps the joined document in, consuming s; returns the document. */
struct weft_doc *weft__docset_commit_staged(struct weft_docset *ds, struct weft_staged *s);
void weft__staged_free(struct weft_docset *ds, struct weft_staged *s);
/* Stage and commit one state. *changed and *doc_out may be NULL. On error
 * the docset is unchanged. Errors: as weft__docset_stage_state. */
int weft__docset_merge_state(struct weft_docset *ds, const char *coll, size_t coll_len,
                             const char *id, size_t id_len, const void *state, size_t len,
                             bool *changed, struct weft_doc **doc_out);
/* The replica's version vector: the pointwise max of every document's,
 * into out (initialised here; free with weft__vv_free and the docset's
 * allocator). O(documents x entries). Errors: WEFT_ENOMEM (out empty). */
int weft__docset_vv(struct weft_docset *ds, struct weft_vv *out);

/*
 * Building CRDT op values (op.h) from the issuing replica's own state, so
 * that replicas and tests compute base stamps, totals and dots the same
 * way. `path` is the op's path (a MessagePack array of keys, not empty);
 * replica/inc the issuer's identity. Each appends the value to out.
 *
 * weft__docset_incr_value: INCR [delta, P, N, base, claim]; the base is the
 *   node's counter threshold, P/N the issuer's totals for its entry plus
 *   delta. WEFT_ETOOBIG when a total would pass 2^64 - 1.
 * weft__docset_sadd_value: SADD [elem, counter, claim]; the counter is the
 *   actor's next dot at that node. elem must satisfy weft__op_elem_read.
 * weft__docset_srem_value: SREM [elem, dots, claim] with the dots of elem's
 *   live entries.
 * claim is true when the node does not show as that type now.
 * Errors: out->err (WEFT_ENOMEM, WEFT_ETOOBIG).
 */
int weft__docset_incr_value(struct weft_docset *ds, const char *coll, size_t coll_len,
                            const char *id, size_t id_len, const uint8_t *path, size_t path_len,
                            uint64_t replica, uint32_t inc, int64_t delta, struct mp_buf *out);
int weft__docset_sadd_value(struct weft_docset *ds, const char *coll, size_t coll_len,
                            const char *id, size_t id_len, const uint8_t *path, size_t path_len,
                            uint64_t replica, uint32_t inc, const uint8_t *elem, size_t elem_len,
                            struct mp_buf *out);
int weft__docset_srem_value(struct weft_docset *ds, const char *coll, size_t coll_len,
                            const char *id, size_t id_len, const uint8_t *path, size_t path_len,
                            const uint8_t *elem, size_t elem_len, struct mp_buf *out);

/*
 * Builds the value of a TEXT op [update, base, claim] (op.h) for a local
 * edit at `path` by agent (replica, inc): an insert of utf8[0..len) (valid
 * UTF-8) before code point `pos`, or (del) a delete of `count` code points
 * from `pos`. Positions count in the text the issuer sees at the path:
 * its live text, or an empty one when there is none (a path showing as
 * another type shows its hidden live text again once claimed). Changes
 * nothing in the docset: the edit is made on a copy, and the caller applies
 * the op. Errors: WEFT_EINVAL (position out of range, bad UTF-8),
 * WEFT_ETOOBIG (text limits), WEFT_ENOMEM, out->err.
 */
int weft__docset_text_value(struct weft_docset *ds, const char *coll, size_t coll_len,
                            const char *id, size_t id_len, const uint8_t *path, size_t path_len,
                            uint64_t replica, uint32_t inc, bool del, size_t pos, const char *utf8,
                            size_t len, size_t count, struct mp_buf *out);

/* Sets the agent (replica, incarnation) of the texts this docset creates
 * and loads (core/text.h): a replica's own identity, set at open. A server,
 * which never edits text, leaves the default (0, 0). */
void weft__docset_set_agent(struct weft_docset *ds, uint64_t replica, uint32_t incarnation);

/* Appends the canonical dump line of a visible document:
 * {"collection":...,"doc":{...},"id":...} and "\n". */
int weft__doc_write_dump_line(const struct weft_doc *d, struct mp_buf *out);
/* The whole canonical dump of a docset (only visible documents). */
int weft__docset_dump(struct weft_docset *ds, struct mp_buf *out);

#endif
