/*
 * merkle.h - a Merkle summary of one collection, for anti-entropy between
 * a replica and the server.
 *
 * Leaves. One per document, visible or tombstoned (a tombstone is state
 * like any other, and two sides that disagree on it have not converged):
 *   leaf = SHA-256('L' || u32be(id_len) || id || state)
 * where `state` is the document's complete encoded state
 * (weft__doc_encode: every node's path, stamps, replica ids and values,
 * children sorted by key). Byte-identical states give identical leaves on
 * every side; a version number is never used.
 *
 * Shape. A fixed trie, so both sides partition the key space identically
 * with no coordination: the key of a document is SHA-256(id), and its first
 * 16 bits, read as 4 nibbles from the most significant, choose a path of
 * 4 levels of 16-way fan-out from the root (level 0) to one of 65,536
 * buckets (level 4). Node (level, prefix) covers the ids whose key starts
 * with the 4*level bits `prefix` (0 <= prefix < 16^level).
 *   bucket = SHA-256('B' || the bucket's leaf hashes, ids in bytewise order)
 *   inner  = SHA-256('N' || the 16 children's hashes, in nibble order)
 *   empty  = 32 zero bytes, at every level (an empty subtree is never hashed)
 * so the root of an empty collection is 32 zero bytes.
 *
 * Why fixed depth 4 rather than a depth chosen from the count: both sides
 * must agree on the shape without talking, and their counts differ. Costs
 * (bench/bench_merkle.c, 12-byte ids, 100-byte states, gcc -O3):
 *   - Memory is sparse: only non-empty nodes exist, an inner node is 168
 *     bytes and a bucket 64 plus one byte array holding its leaves as
 *     records (34 + id_len bytes each). No allocation per document. At 1M
 *     documents every bucket is occupied (~15 leaves each): 63 MB in all,
 *     63 bytes per document, 135k allocations. The fixed depth costs small
 *     collections instead: 100 documents take ~200 inner nodes and 100
 *     buckets (46 KB, 460 bytes per document; 10,000 take 1.9 MB).
 *   - Update: SHA-256 of the id and of the leaf input, a scan of the bucket,
 *     and on the next weft__merkle_root a rehash of the bucket (~15 x 32
 *     bytes at 1M docs) and of 4 inner nodes of 513 bytes: ~45 SHA-256
 *     blocks, 14 us for one update then the root at 1M documents. Updates
 *     between two roots share their ancestors' rehash (1,000 updates then
 *     one root: 8 ms). Building 1M leaves and the first root: 2.2 s.
 *   - Exchange: finding one differing document takes 6 round trips: the
 *     roots, 4 rounds of child hashes (~2 KB), one bucket's leaf list;
 *     2.9 KB in all at 1M documents; 100 differences cost 177 KB from a and 1.6 KB back, where
 *     listing every (id, leaf) would be 45 MB. Beyond ~10M documents a
 *     bucket holds ~150 leaves and the last round grows with it; a deeper
 *     shape would be a new format (every hash changes).
 *
 * Laziness. Updates mark the path to the root dirty; hashes are recomputed
 * on the next weft__merkle_root / node_hashes / diff, which therefore take
 * a non-const tree. Recomputing never allocates and cannot fail.
 *
 * Threads: a tree is used by one thread at a time; distinct trees are
 * independent. Nothing here does I/O.
 */
#ifndef WEFT_CORE_MERKLE_H
#define WEFT_CORE_MERKLE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/alloc.h"

struct mp_buf;
struct weft_doc;
struct weft_docset;

#define WEFT_MERKLE_FANOUT 16     /* children per inner node */
#define WEFT_MERKLE_DEPTH 4       /* levels below the root; buckets are level 4 */
#define WEFT_MERKLE_BUCKETS 65536 /* 16^4 */
#define WEFT_MERKLE_MAX_ID 65535  /* longest id accepted (the data model caps at 1024) */

struct weft_merkle;

/* Which side of a diff holds a document, or both with different leaves. */
enum weft_merkle_side {
	WEFT_MERKLE_ONLY_A = 1, /* in a, not in b */
	WEFT_MERKLE_ONLY_B = 2, /* in b, not in a */
	WEFT_MERKLE_DIFFER = 3  /* in both, leaf hashes differ */
};

/*
 * What a level-by-level exchange would have cost, as counted by
 * weft__merkle_diff. Side a starts. The model:
 *   - roots: a sends 32 bytes, b answers 1 (same or not);
 *   - each differing inner node (in both trees): a sends a 2-byte mask of
 *     its non-empty children and their hashes (32 each); b answers a 2-byte
 *     mask of the children that differ and a 2-byte mask of its own
 *     non-empty ones. A differing child that one side lacks entirely is not
 *     descended: the side that has it lists its ids (varint length + id);
 *   - each differing bucket (in both trees): a sends varint(count) and per
 *     leaf varint(id_len) + id + 32-byte hash; b answers a bitmap over a's
 *     leaves (those b lacks or holds differently) and varint(count) plus the
 *     ids of its leaves a lacks.
 * Node ids are never sent: both sides derive them from the previous round.
 * The documents themselves are not counted.
 */
struct weft_merkle_stats {
	uint64_t bytes_a_to_b;   /* hashes, masks and ids sent by a */
	uint64_t bytes_b_to_a;   /* answers sent by b */
	uint32_t rounds;         /* round trips (1 when the roots match) */
	uint64_t nodes_compared; /* node pairs whose hashes were compared */
	uint64_t differences;    /* documents reported */
};

/*
 * Creates an empty tree. a: the allocator (NULL: weft__alloc_default()),
 * borrowed for the tree's lifetime. Errors: WEFT_ENOMEM (*out untouched).
 */
int weft__merkle_new(const struct weft_alloc *a, struct weft_merkle **out);
/* Frees the tree and everything in it. NULL is a no-op. */
void weft__merkle_free(struct weft_merkle *m);
/* Number of leaves (documents) in the tree. */
size_t weft__merkle_count(const struct weft_merkle *m);
/* Approximate bytes held by the tree (payload sizes, without allocator
 * overhead). */
size_t weft__merkle_memory(const struct weft_merkle *m);

/* The leaf hash of a document: SHA-256('L' || u32be(id_len) || id ||
 * state). Pure; any thread. */
void weft__merkle_leaf_hash(const char *id, size_t id_len, const void *state, size_t state_len,
                            uint8_t out[32]);

/*
 * Sets the leaf of document `id` to the hash of its encoded state (insert
 * or replace). id and state are borrowed for the call; the tree keeps a
 * copy of the id. Setting the same hash again changes nothing.
 * Errors: WEFT_EINVAL (id_len 0 or over WEFT_MERKLE_MAX_ID, NULL id),
 * WEFT_ENOMEM (the tree is unchanged: same leaves, same root).
 */
int weft__merkle_update(struct weft_merkle *m, const char *id, size_t id_len, const void *state,
                        size_t state_len);
/* Same, with a leaf hash already computed by weft__merkle_leaf_hash. */
int weft__merkle_update_hash(struct weft_merkle *m, const char *id, size_t id_len,
                             const uint8_t leaf[32]);
/*
 * Removes document `id` (a document purged by tombstone collection; a
 * deleted document keeps its tombstone leaf). Never allocates; frees the
 * nodes that become empty. Errors: WEFT_ENOTFOUND, WEFT_EINVAL.
 */
int weft__merkle_remove(struct weft_merkle *m, const char *id, size_t id_len);
/* The stored leaf hash of `id`. Errors: WEFT_ENOTFOUND, WEFT_EINVAL. */
int weft__merkle_get(const struct weft_merkle *m, const char *id, size_t id_len, uint8_t out[32]);

/*
 * Sets the leaf of one document from its state (weft__doc_encode into
 * `scratch`, which is reset first and may be reused across calls to save
 * allocations; NULL uses a temporary buffer). Errors: WEFT_ENOMEM (the tree
 * is unchanged), WEFT_ETOOBIG (scratch's limit), WEFT_EINVAL.
 */
int weft__merkle_update_doc(struct weft_merkle *m, const struct weft_doc *d,
                            struct mp_buf *scratch);
/*
 * Sets the leaves of every document of collection coll[0..coll_len) in
 * ds (visible or not). Documents already in the tree and absent from ds
 * stay. Errors: WEFT_ENOMEM (some leaves may be set, each complete: calling
 * again finishes the job, since setting a leaf is idempotent).
 */
int weft__merkle_add_docset(struct weft_merkle *m, struct weft_docset *ds, const char *coll,
                            size_t coll_len);

/* The root hash (recomputes the dirty paths first). 32 zero bytes when the
 * tree is empty. Cannot fail. */
void weft__merkle_root(struct weft_merkle *m, uint8_t out[32]);

/*
 * The hash of node (level, prefix), 0 <= level <= 4, prefix < 16^level;
 * 32 zero bytes when that subtree is empty. Errors: WEFT_EINVAL.
 */
int weft__merkle_node_hash(struct weft_merkle *m, unsigned level, uint32_t prefix, uint8_t out[32]);
/*
 * The hashes of the 16 children of inner node (level, prefix), level 0..3:
 * child i is node (level + 1, prefix * 16 + i). Empty children get 32 zero
 * bytes and a 0 bit in *present (bit i = child i non-empty; may be NULL).
 * This is what one side sends in one round of the exchange.
 * Errors: WEFT_EINVAL.
 */
int weft__merkle_node_hashes(struct weft_merkle *m, unsigned level, uint32_t prefix,
                             uint8_t out[16][32], uint16_t *present);

/* Called once per leaf; a non-zero return stops the walk and is returned. */
typedef int (*weft_merkle_leaf_cb)(void *ctx, const char *id, size_t id_len,
                                   const uint8_t leaf[32]);
/*
 * Calls cb for each leaf of bucket `prefix` (< 65,536), ids in bytewise
 * order: the last round of the exchange. The id and hash are borrowed for
 * the callback only; cb must not modify the tree.
 * Returns WEFT_OK, WEFT_EINVAL, or cb's non-zero value.
 */
int weft__merkle_bucket_leaves(const struct weft_merkle *m, uint32_t prefix, weft_merkle_leaf_cb cb,
                               void *ctx);

/* Called once per differing document. A non-zero return stops the walk. */
typedef int (*weft_merkle_diff_cb)(void *ctx, const char *id, size_t id_len,
                                   enum weft_merkle_side side);
/*
 * Walks two trees in memory and calls cb for every document present on
 * one side only or with different leaves, descending only into subtrees
 * whose hashes differ. Order: by bucket, then by id. stats (may be NULL)
 * receives what the level-by-level exchange would have cost (see struct
 * weft_merkle_stats). a and b may be the same tree. Recomputes dirty paths
 * of both; never allocates. cb must not modify either tree.
 * Returns WEFT_OK or cb's non-zero value.
 */
int weft__merkle_diff(struct weft_merkle *a, struct weft_merkle *b, weft_merkle_diff_cb cb,
                      void *ctx, struct weft_merkle_stats *stats);

#endif
