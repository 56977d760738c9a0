/*
 * vv.h - version vectors for serverless peer-to-peer sync
 * (docs/DATA-MODEL.md, "Peer-to-peer sync").
 *
 * A version vector maps a replica id to an HLC: the largest HLC of that
 * replica's ops a document (or a whole replica) has applied. Missing
 * entries mean 0 ("nothing"). Entries are kept sorted by replica id, with
 * no zero values, so equal vectors have equal bytes. Vectors merge by
 * pointwise max: a join-semilattice (commutative, associative,
 * idempotent).
 *
 * Every document carries one (its "doc VV", bumped by every op applied to
 * it and joined by weft__docset_merge_state); a replica's VV is the
 * pointwise max over its documents' VVs.
 *
 * Why max-HLC vectors are enough (the prefix argument). Say a replica
 * *knows a prefix* of origin r when, for some h, it holds every op of r
 * with HLC <= h and none above: then V[r] = h describes exactly what it
 * has of r. Assumptions:
 *   1. each replica issues strictly increasing HLCs in issue order
 *      (hlc.h: the clock persists its high-water mark, and weft_export
 *      makes everything it exports durable first, so no exported op is
 *      ever lost and reissued with a smaller HLC);
 *   2. no one re-stamps ops on the peer-to-peer path (the server does,
 *      which is why mixing server sync and peer-to-peer sync on one
 *      replica is not supported yet);
 *   3. an import is all-or-nothing, also across a crash (the replica
 *      journals the change set, client/replica.c).
 * Local ops keep the replica's knowledge of itself a prefix (1). An
 * export for a peer with vector P carries, whole, every document whose
 * doc VV D has some D[r] > P[r]. Any document left out has every op of
 * every origin r at an HLC <= D[r] <= P[r], which the peer already holds
 * because its knowledge of r is a prefix up to P[r]. So after the import
 * the peer holds everything the exporter held, and its knowledge of each
 * r is the union of two prefixes of r: again a prefix (3 makes this hold
 * also when the import is cut short). By induction every replica's
 * knowledge of every origin stays a prefix, and the max-HLC vector is an
 * exact summary of it.
 *
 * Encoding (the public form, and inside a document's state): a
 * MessagePack map {replica:uint -> hlc:uint}, keys strictly ascending,
 * values non-zero.
 */
#ifndef WEFT_CORE_VV_H
#define WEFT_CORE_VV_H

#include <stddef.h>
#include <stdint.h>

#include "core/alloc.h"
#include "core/mp.h"

struct weft_vv_entry {
	uint64_t replica; /* origin replica id */
	uint64_t hlc;     /* largest HLC of its ops seen; never 0 */
};

struct weft_vv {
	struct weft_vv_entry *e; /* sorted by replica, strictly */
	uint32_t len;            /* entries in use */
	uint32_t cap;            /* entries allocated */
};

/* An empty vector. Cannot fail. */
void weft__vv_init(struct weft_vv *v);
/* Frees the entries and empties v. */
void weft__vv_free(const struct weft_alloc *a, struct weft_vv *v);
/* v[replica], 0 when absent. O(log len). */
uint64_t weft__vv_get(const struct weft_vv *v, uint64_t replica);
/* v[replica] = max(v[replica], hlc). hlc 0 is a no-op. *changed (may be
 * NULL) is set when v grew. Errors: WEFT_ENOMEM (v unchanged). */
int weft__vv_bump(const struct weft_alloc *a, struct weft_vv *v, uint64_t replica, uint64_t hlc,
                  int *changed);
/* dst = max(dst, src) pointwise. Errors: WEFT_ENOMEM (dst unchanged). */
int weft__vv_join(const struct weft_alloc *a, struct weft_vv *dst, const struct weft_vv *src);
/* True when some d[r] > p[r] (p missing = 0): d has something p lacks. */
int weft__vv_exceeds(const struct weft_vv *d, const struct weft_vv *p);
/* True when every v[r] >= w[r]: v covers w. */
int weft__vv_covers(const struct weft_vv *v, const struct weft_vv *w);
/* Largest HLC in v (0 when empty). */
uint64_t weft__vv_max_hlc(const struct weft_vv *v);
/* Appends the map encoding to out (check out->err). */
void weft__vv_encode(const struct weft_vv *v, struct mp_buf *out);
/* Reads one map at r into v (empty), checking the canonical form: keys
 * strictly ascending, values non-zero. Errors: WEFT_EPROTO (bad bytes; v
 * left empty), WEFT_ENOMEM. The entry count is bounded by the input. */
int weft__vv_decode(const struct weft_alloc *a, struct mp_reader *r, struct weft_vv *v);

#endif
