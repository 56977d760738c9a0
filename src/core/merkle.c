/*
 * merkle.c - the Merkle summary of one collection (merkle.h states the
 * hash formats and the shape; this file keeps them).
 *
 * The tree is a sparse 16-way trie of fixed depth over the first 16 bits
 * of SHA-256(id): inner nodes at levels 0..3, buckets at level 4. A bucket
 * keeps its leaves as one byte array of records
 *   u16 id_len (host order) | 32-byte leaf hash | id bytes
 * sorted by id bytewise (shorter first on a common prefix), so a bucket
 * costs two allocations however many documents it holds, and a document
 * none of its own.
 *
 * Invariants:
 *   - every node linked into the tree is non-empty: a bucket holds at least
 *     one leaf, an inner node at least one child (remove prunes, update
 *     links new nodes only once every allocation has succeeded). So an
 *     absent child is exactly an empty subtree, whose hash is 32 zeros;
 *   - records in a bucket are strictly increasing by id (no duplicates);
 *   - a node that is not dirty holds the hash of its current contents, and
 *     every ancestor of a dirty node is dirty (updates mark the whole path),
 *     so recomputing descends only into dirty children;
 *   - the hashes are a function of the set of (id, leaf) pairs only, never
 *     of the order of updates or of allocation history;
 *   - a failed call (WEFT_ENOMEM) leaves the leaves and hashes as they were;
 *     at most a bucket's byte array has grown.
 */
#include <string.h>

#include "weft/weft.h"
#include "core/doc.h"
#include "core/merkle.h"
#include "core/sha256.h"

#define REC_HDR 34u /* u16 id_len + 32-byte hash */

struct inner {
	uint8_t hash[32]; /* valid when !dirty */
	bool dirty;       /* a descendant changed since hash was computed */
	uint8_t nchild;   /* non-NULL entries of child */
	void *child[16];  /* struct inner * (levels 0..2) or struct bucket * (level 3) */
};

struct bucket {
	uint8_t hash[32]; /* valid when !dirty */
	bool dirty;       /* a leaf changed since hash was computed */
	uint32_t n;       /* leaves */
	size_t len;       /* bytes of data used */
	size_t cap;       /* bytes of data allocated */
	uint8_t *data;    /* records, sorted by id */
};

struct weft_merkle {
	const struct weft_alloc *a; /* borrowed */
	struct inner *root;         /* NULL when empty */
	size_t count;               /* leaves */
	size_t mem;                 /* bytes held (payload sizes) */
};

static const uint8_t zero_hash[32];

/* ---- keys and records ---- */

/* The bucket of an id: the first 16 bits of SHA-256(id). */
static uint32_t bucket_of(const char *id, size_t id_len)
{
	uint8_t k[32];

	weft__sha256(id, id_len, k);
	return (uint32_t)k[0] << 8 | k[1];
}

/* The child index taken at `level` (0..3) on the way to bucket `b`. */
static unsigned nibble(uint32_t b, unsigned level)
{
	return (b >> (12 - 4 * level)) & 15u;
}

static size_t rec_id_len(const uint8_t *r)
{
	uint16_t l;

	memcpy(&l, r, sizeof(l));
	return l;
}

static const char *rec_id(const uint8_t *r)
{
	return (const char *)r + REC_HDR;
}

static const uint8_t *rec_hash(const uint8_t *r)
{
	return r + 2;
}

static int id_cmp(const char *x, size_t xl, const char *y, size_t yl)
{
	int c = memcmp(x, y, xl < yl ? xl : yl);

	if (c)
		return c;
	return xl < yl ? -1 : xl > yl;
}

/* Offset of the record for id in b, with *found; or, when absent, the
 * offset where it would be inserted. A linear scan: buckets hold ~15
 * leaves at 1M documents, and the scan costs less than the hash that
 * precedes every lookup. */
static size_t bucket_find(const struct bucket *b, const char *id, size_t id_len, bool *found)
{
	size_t off = 0;

	*found = false;
	while (off < b->len) {
		const uint8_t *r = b->data + off;
		size_t l = rec_id_len(r);
		int c = id_cmp(rec_id(r), l, id, id_len);

		if (c == 0) {
			*found = true;
			return off;
		}
		if (c > 0)
			return off;
		off += REC_HDR + l;
	}
	return off;
}

/* ---- lifetime ---- */

int weft__merkle_new(const struct weft_alloc *a, struct weft_merkle **out)
{
	struct weft_merkle *m;

	if (!a)
		a = weft__alloc_default();
	m = weft__malloc(a, sizeof(*m));
	if (!m)
		return WEFT_ENOMEM;
	m->a = a;
	m->root = NULL;
	m->count = 0;
	m->mem = sizeof(*m);
	*out = m;
	return WEFT_OK;
}

static void bucket_free(struct weft_merkle *m, struct bucket *b)
{
	m->mem -= sizeof(*b) + b->cap;
	weft__free(m->a, b->data);
	weft__free(m->a, b);
}

static void inner_free(struct weft_merkle *m, struct inner *in, unsigned level)
{
	for (unsigned i = 0; i < 16; i++) {
		if (!in->child[i])
			continue;
		if (level == WEFT_MERKLE_DEPTH - 1)
			bucket_free(m, in->child[i]);
		else
			inner_free(m, in->child[i], level + 1);
	}
	m->mem -= sizeof(*in);
	weft__free(m->a, in);
}

void weft__merkle_free(struct weft_merkle *m)
{
	if (!m)
		return;
	if (m->root)
		inner_free(m, m->root, 0);
	weft__free(m->a, m);
}

size_t weft__merkle_count(const struct weft_merkle *m)
{
	return m->count;
}

size_t weft__merkle_memory(const struct weft_merkle *m)
{
	return m->mem;
}

/* ---- hashing ---- */

void weft__merkle_leaf_hash(const char *id, size_t id_len, const void *state, size_t state_len,
                            uint8_t out[32])
{
	struct weft_sha256 s;
	uint8_t hdr[5] = {'L', (uint8_t)(id_len >> 24), (uint8_t)(id_len >> 16),
	                  (uint8_t)(id_len >> 8), (uint8_t)id_len};

	weft__sha256_init(&s);
	weft__sha256_update(&s, hdr, sizeof(hdr));
	weft__sha256_update(&s, id, id_len);
	weft__sha256_update(&s, state, state_len);
	weft__sha256_final(&s, out);
}

static void bucket_rehash(struct bucket *b)
{
	struct weft_sha256 s;
	size_t off = 0;

	weft__sha256_init(&s);
	weft__sha256_update(&s, "B", 1);
	while (off < b->len) {
		weft__sha256_update(&s, rec_hash(b->data + off), 32);
		off += REC_HDR + rec_id_len(b->data + off);
	}
	weft__sha256_final(&s, b->hash);
	b->dirty = false;
}

/* Recomputes the dirty nodes under `in` (at `level`), then `in`. */
static void inner_rehash(struct inner *in, unsigned level)
{
	struct weft_sha256 s;

	weft__sha256_init(&s);
	weft__sha256_update(&s, "N", 1);
	for (unsigned i = 0; i < 16; i++) {
		const uint8_t *h = zero_hash;

		if (in->child[i] && level == WEFT_MERKLE_DEPTH - 1) {
			struct bucket *b = in->child[i];

			if (b->dirty)
				bucket_rehash(b);
			h = b->hash;
		} else if (in->child[i]) {
			struct inner *c = in->child[i];

			if (c->dirty)
				inner_rehash(c, level + 1);
			h = c->hash;
		}
		weft__sha256_update(&s, h, 32);
	}
	weft__sha256_final(&s, in->hash);
	in->dirty = false;
}

static void recompute(struct weft_merkle *m)
{
	if (m->root && m->root->dirty)
		inner_rehash(m->root, 0);
}

void weft__merkle_root(struct weft_merkle *m, uint8_t out[32])
{
	recompute(m);
	memcpy(out, m->root ? m->root->hash : zero_hash, 32);
}

/* ---- update and remove ---- */

static bool id_ok(const char *id, size_t id_len)
{
	return id && id_len > 0 && id_len <= WEFT_MERKLE_MAX_ID;
}

/* The path to bucket `b`: path[0..depth) are the inner nodes that exist
 * (path[0] the root), *bk the bucket or NULL. Returns depth (0..4). */
static unsigned path_find(const struct weft_merkle *m, uint32_t b, struct inner *path[4],
                          struct bucket **bk)
{
	struct inner *in = m->root;
	unsigned depth = 0;

	*bk = NULL;
	while (in) {
		path[depth] = in;
		if (depth == WEFT_MERKLE_DEPTH - 1) {
			*bk = in->child[nibble(b, depth)];
			return depth + 1;
		}
		in = in->child[nibble(b, depth)];
		depth++;
	}
	return depth;
}

static void path_dirty(struct inner *path[4], struct bucket *bk)
{
	for (unsigned i = 0; i < WEFT_MERKLE_DEPTH; i++)
		path[i]->dirty = true;
	bk->dirty = true;
}

/* Makes room for `need` more bytes in b->data. On failure b is unchanged. */
static int bucket_reserve(struct weft_merkle *m, struct bucket *b, size_t need)
{
	size_t cap = b->cap ? b->cap : 64;
	uint8_t *p;

	if (b->len + need <= b->cap)
		return WEFT_OK;
	while (cap < b->len + need)
		cap += cap / 2;
	p = weft__realloc(m->a, b->data, cap);
	if (!p)
		return WEFT_ENOMEM;
	m->mem += cap - b->cap;
	b->data = p;
	b->cap = cap;
	return WEFT_OK;
}

/*
 * Creates the missing part of the path to bucket `b` (inner nodes
 * path[depth..3] and the bucket with room for `need` bytes) without linking
 * anything, then links it all. On WEFT_ENOMEM everything new is freed and
 * the tree is untouched.
 */
static int path_create(struct weft_merkle *m, uint32_t b, struct inner *path[4], unsigned depth,
                       size_t need, struct bucket **bk_out)
{
	struct inner *fresh[4] = {NULL, NULL, NULL, NULL};
	struct bucket *bk;
	int rc = WEFT_ENOMEM;

	for (unsigned i = depth; i < WEFT_MERKLE_DEPTH; i++) {
		fresh[i] = weft__zalloc(m->a, sizeof(*fresh[i]));
		if (!fresh[i])
			goto out_free_fresh;
		m->mem += sizeof(*fresh[i]);
	}
	bk = weft__zalloc(m->a, sizeof(*bk));
	if (!bk)
		goto out_free_fresh;
	m->mem += sizeof(*bk);
	rc = bucket_reserve(m, bk, need);
	if (rc != WEFT_OK) {
		bucket_free(m, bk);
		goto out_free_fresh;
	}
	/* Everything allocated: link top-down. */
	for (unsigned i = depth; i < WEFT_MERKLE_DEPTH; i++) {
		if (i == 0) {
			m->root = fresh[0];
		} else {
			path[i - 1]->child[nibble(b, i - 1)] = fresh[i];
			path[i - 1]->nchild++;
		}
		path[i] = fresh[i];
	}
	path[WEFT_MERKLE_DEPTH - 1]->child[nibble(b, WEFT_MERKLE_DEPTH - 1)] = bk;
	path[WEFT_MERKLE_DEPTH - 1]->nchild++;
	*bk_out = bk;
	return WEFT_OK;

out_free_fresh:
	for (unsigned i = depth; i < WEFT_MERKLE_DEPTH; i++) {
		if (fresh[i]) {
			m->mem -= sizeof(*fresh[i]);
			weft__free(m->a, fresh[i]);
		}
	}
	return rc;
}

int weft__merkle_update_hash(struct weft_merkle *m, const char *id, size_t id_len,
                             const uint8_t leaf[32])
{
	struct inner *path[4];
	struct bucket *bk;
	uint32_t b;
	unsigned depth;
	size_t off, need = REC_HDR + id_len;
	bool found = false;
	uint16_t l16 = (uint16_t)id_len;
	int rc;

	if (!id_ok(id, id_len))
		return WEFT_EINVAL;
	b = bucket_of(id, id_len);
	depth = path_find(m, b, path, &bk);
	if (bk) {
		off = bucket_find(bk, id, id_len, &found);
		if (found) {
			uint8_t *h = bk->data + off + 2;

			if (memcmp(h, leaf, 32) != 0) {
				memcpy(h, leaf, 32);
				path_dirty(path, bk);
			}
			return WEFT_OK;
		}
		rc = bucket_reserve(m, bk, need);
		if (rc != WEFT_OK)
			return rc;
	} else {
		rc = path_create(m, b, path, depth, need, &bk);
		if (rc != WEFT_OK)
			return rc;
		off = 0;
	}
	memmove(bk->data + off + need, bk->data + off, bk->len - off);
	memcpy(bk->data + off, &l16, sizeof(l16));
	memcpy(bk->data + off + 2, leaf, 32);
	memcpy(bk->data + off + REC_HDR, id, id_len);
	bk->len += need;
	bk->n++;
	m->count++;
	path_dirty(path, bk);
	return WEFT_OK;
}

int weft__merkle_update(struct weft_merkle *m, const char *id, size_t id_len, const void *state,
                        size_t state_len)
{
	uint8_t leaf[32];

	if (!id_ok(id, id_len) || (!state && state_len))
		return WEFT_EINVAL;
	weft__merkle_leaf_hash(id, id_len, state, state_len, leaf);
	return weft__merkle_update_hash(m, id, id_len, leaf);
}

int weft__merkle_remove(struct weft_merkle *m, const char *id, size_t id_len)
{
	struct inner *path[4];
	struct bucket *bk;
	uint32_t b;
	size_t off, sz;
	bool found;

	if (!id_ok(id, id_len))
		return WEFT_EINVAL;
	b = bucket_of(id, id_len);
	path_find(m, b, path, &bk);
	if (!bk)
		return WEFT_ENOTFOUND;
	off = bucket_find(bk, id, id_len, &found);
	if (!found)
		return WEFT_ENOTFOUND;
	sz = REC_HDR + id_len;
	memmove(bk->data + off, bk->data + off + sz, bk->len - off - sz);
	bk->len -= sz;
	bk->n--;
	m->count--;
	if (bk->n > 0) {
		path_dirty(path, bk);
		return WEFT_OK;
	}
	/* The bucket is empty: unlink it and every ancestor left empty. */
	bucket_free(m, bk);
	for (unsigned i = WEFT_MERKLE_DEPTH; i-- > 0;) {
		path[i]->child[nibble(b, i)] = NULL;
		path[i]->dirty = true;
		if (--path[i]->nchild > 0) {
			while (i-- > 0)
				path[i]->dirty = true;
			return WEFT_OK;
		}
		m->mem -= sizeof(*path[i]);
		weft__free(m->a, path[i]);
	}
	m->root = NULL;
	return WEFT_OK;
}

int weft__merkle_get(const struct weft_merkle *m, const char *id, size_t id_len, uint8_t out[32])
{
	struct inner *path[4];
	struct bucket *bk;
	size_t off;
	bool found;

	if (!id_ok(id, id_len))
		return WEFT_EINVAL;
	path_find(m, bucket_of(id, id_len), path, &bk);
	if (!bk)
		return WEFT_ENOTFOUND;
	off = bucket_find(bk, id, id_len, &found);
	if (!found)
		return WEFT_ENOTFOUND;
	memcpy(out, rec_hash(bk->data + off), 32);
	return WEFT_OK;
}

/* ---- documents ---- */

int weft__merkle_update_doc(struct weft_merkle *m, const struct weft_doc *d, struct mp_buf *scratch)
{
	struct mp_buf tmp;
	struct mp_buf *buf = scratch;
	const char *coll, *id;
	size_t coll_len, id_len;
	int rc;

	if (!buf) {
		weft__mp_buf_init(&tmp, m->a, 0);
		buf = &tmp;
	}
	weft__mp_buf_reset(buf);
	weft__doc_key(d, &coll, &coll_len, &id, &id_len);
	weft__doc_encode(d, buf);
	rc = buf->err;
	if (rc == WEFT_OK)
		rc = weft__merkle_update(m, id, id_len, buf->data, buf->len);
	if (!scratch)
		weft__mp_buf_free(&tmp);
	return rc;
}

int weft__merkle_add_docset(struct weft_merkle *m, struct weft_docset *ds, const char *coll,
                            size_t coll_len)
{
	struct weft_doc **list;
	struct mp_buf scratch;
	size_t n;
	int rc;

	rc = weft__docset_list(ds, &list, &n);
	if (rc != WEFT_OK)
		return rc;
	weft__mp_buf_init(&scratch, m->a, 0);
	for (size_t i = 0; i < n; i++) {
		const char *c, *id;
		size_t cl, il;

		weft__doc_key(list[i], &c, &cl, &id, &il);
		if (cl != coll_len || memcmp(c, coll, cl) != 0)
			continue;
		rc = weft__merkle_update_doc(m, list[i], &scratch);
		if (rc != WEFT_OK)
			break;
	}
	weft__mp_buf_free(&scratch);
	weft__docset_free_list(ds, list);
	return rc;
}

/* ---- the exchange's primitives ---- */

/* Node (level, prefix) of an up-to-date tree: an inner node (level < 4)
 * or a bucket, NULL when that subtree is empty. */
static void *node_at(const struct weft_merkle *m, unsigned level, uint32_t prefix)
{
	void *p = m->root;

	for (unsigned l = 0; l < level && p; l++)
		p = ((struct inner *)p)->child[(prefix >> (4 * (level - 1 - l))) & 15u];
	return p;
}

static bool node_ok(unsigned level, uint32_t prefix)
{
	return level <= WEFT_MERKLE_DEPTH && prefix < (UINT32_C(1) << (4 * level));
}

int weft__merkle_node_hash(struct weft_merkle *m, unsigned level, uint32_t prefix, uint8_t out[32])
{
	void *p;

	if (!node_ok(level, prefix))
		return WEFT_EINVAL;
	recompute(m);
	p = node_at(m, level, prefix);
	if (!p)
		memcpy(out, zero_hash, 32);
	else if (level == WEFT_MERKLE_DEPTH)
		memcpy(out, ((struct bucket *)p)->hash, 32);
	else
		memcpy(out, ((struct inner *)p)->hash, 32);
	return WEFT_OK;
}

int weft__merkle_node_hashes(struct weft_merkle *m, unsigned level, uint32_t prefix,
                             uint8_t out[16][32], uint16_t *present)
{
	struct inner *in;
	uint16_t mask = 0;

	if (level >= WEFT_MERKLE_DEPTH || !node_ok(level, prefix))
		return WEFT_EINVAL;
	recompute(m);
	in = node_at(m, level, prefix);
	for (unsigned i = 0; i < 16; i++) {
		const uint8_t *h = zero_hash;

		if (in && in->child[i]) {
			mask |= (uint16_t)(1u << i);
			if (level == WEFT_MERKLE_DEPTH - 1)
				h = ((struct bucket *)in->child[i])->hash;
			else
				h = ((struct inner *)in->child[i])->hash;
		}
		memcpy(out[i], h, 32);
	}
	if (present)
		*present = mask;
	return WEFT_OK;
}

int weft__merkle_bucket_leaves(const struct weft_merkle *m, uint32_t prefix, weft_merkle_leaf_cb cb,
                               void *ctx)
{
	const struct bucket *bk;
	size_t off = 0;

	if (!node_ok(WEFT_MERKLE_DEPTH, prefix))
		return WEFT_EINVAL;
	bk = node_at(m, WEFT_MERKLE_DEPTH, prefix);
	while (bk && off < bk->len) {
		const uint8_t *r = bk->data + off;
		int rc = cb(ctx, rec_id(r), rec_id_len(r), rec_hash(r));

		if (rc)
			return rc;
		off += REC_HDR + rec_id_len(r);
	}
	return WEFT_OK;
}

/* ---- diff ---- */

struct diff {
	weft_merkle_diff_cb cb;
	void *ctx;
	struct weft_merkle_stats *st; /* never NULL here */
};

static uint64_t varint_len(uint64_t v)
{
	uint64_t n = 1;

	while (v >= 0x80) {
		v >>= 7;
		n++;
	}
	return n;
}

static void note_round(struct diff *d, uint32_t round)
{
	if (d->st->rounds < round)
		d->st->rounds = round;
}

static int report(struct diff *d, const uint8_t *r, enum weft_merkle_side side)
{
	d->st->differences++;
	return d->cb(d->ctx, rec_id(r), rec_id_len(r), side);
}

/* Reports every leaf under node p (at level) as on one side only; the
 * side that holds them lists their ids, which *bytes counts. */
static int list_all(struct diff *d, const void *p, unsigned level, enum weft_merkle_side side,
                    uint64_t *bytes)
{
	int rc;

	if (level == WEFT_MERKLE_DEPTH) {
		const struct bucket *bk = p;

		for (size_t off = 0; off < bk->len; off += REC_HDR + rec_id_len(bk->data + off)) {
			size_t l = rec_id_len(bk->data + off);

			*bytes += varint_len(l) + l;
			rc = report(d, bk->data + off, side);
			if (rc)
				return rc;
		}
		return 0;
	}
	for (unsigned i = 0; i < 16; i++) {
		const void *c = ((const struct inner *)p)->child[i];

		if (!c)
			continue;
		rc = list_all(d, c, level + 1, side, bytes);
		if (rc)
			return rc;
	}
	return 0;
}

/* Two non-empty buckets whose hashes differ: merge their sorted records. */
static int walk_bucket(struct diff *d, const struct bucket *x, const struct bucket *y)
{
	size_t i = 0, j = 0;
	uint64_t only_b = 0;
	int rc = 0;

	note_round(d, 2 + WEFT_MERKLE_DEPTH);
	d->st->bytes_a_to_b += varint_len(x->n);
	d->st->bytes_b_to_a += (x->n + 7u) / 8;
	while (i < x->len || j < y->len) {
		const uint8_t *rx = i < x->len ? x->data + i : NULL;
		const uint8_t *ry = j < y->len ? y->data + j : NULL;
		int c;

		if (rx && ry)
			c = id_cmp(rec_id(rx), rec_id_len(rx), rec_id(ry), rec_id_len(ry));
		else
			c = rx ? -1 : 1;
		if (c <= 0) {
			size_t l = rec_id_len(rx);

			d->st->bytes_a_to_b += varint_len(l) + l + 32;
			i += REC_HDR + l;
		}
		if (c >= 0) {
			size_t l = rec_id_len(ry);

			j += REC_HDR + l;
			if (c > 0) {
				d->st->bytes_b_to_a += varint_len(l) + l;
				only_b++;
			}
		}
		if (c < 0)
			rc = report(d, rx, WEFT_MERKLE_ONLY_A);
		else if (c > 0)
			rc = report(d, ry, WEFT_MERKLE_ONLY_B);
		else if (memcmp(rec_hash(rx), rec_hash(ry), 32) != 0)
			rc = report(d, rx, WEFT_MERKLE_DIFFER);
		if (rc)
			return rc;
	}
	d->st->bytes_b_to_a += varint_len(only_b);
	return 0;
}

static const uint8_t *child_hash(const struct inner *in, unsigned level, unsigned i)
{
	if (level == WEFT_MERKLE_DEPTH - 1)
		return ((const struct bucket *)in->child[i])->hash;
	return ((const struct inner *)in->child[i])->hash;
}

/* Two non-empty inner nodes at `level` whose hashes differ: one round of
 * the exchange (a sends its children's hashes, b answers which differ). */
static int walk_inner(struct diff *d, const struct inner *x, const struct inner *y, unsigned level)
{
	int rc = 0;

	note_round(d, level + 2);
	d->st->bytes_a_to_b += 2 + 32u * x->nchild;
	d->st->bytes_b_to_a += 4;
	for (unsigned i = 0; i < 16 && !rc; i++) {
		const void *cx = x->child[i], *cy = y->child[i];

		if (!cx && !cy)
			continue;
		d->st->nodes_compared++;
		if (cx && cy) {
			if (memcmp(child_hash(x, level, i), child_hash(y, level, i), 32) == 0)
				continue;
			if (level + 1 == WEFT_MERKLE_DEPTH)
				rc = walk_bucket(d, cx, cy);
			else
				rc = walk_inner(d, cx, cy, level + 1);
		} else if (cx) {
			/* a learns from b's answer that b has nothing here and
			 * lists its ids in its next message. */
			note_round(d, level + 3);
			rc = list_all(d, cx, level + 1, WEFT_MERKLE_ONLY_A, &d->st->bytes_a_to_b);
		} else {
			rc = list_all(d, cy, level + 1, WEFT_MERKLE_ONLY_B, &d->st->bytes_b_to_a);
		}
	}
	return rc;
}

int weft__merkle_diff(struct weft_merkle *a, struct weft_merkle *b, weft_merkle_diff_cb cb,
                      void *ctx, struct weft_merkle_stats *stats)
{
	struct weft_merkle_stats local;
	struct diff d = {.cb = cb, .ctx = ctx, .st = stats ? stats : &local};

	memset(d.st, 0, sizeof(*d.st));
	recompute(a);
	recompute(b);
	d.st->rounds = 1;
	d.st->bytes_a_to_b = 32;
	d.st->bytes_b_to_a = 1;
	if (!a->root && !b->root)
		return WEFT_OK;
	d.st->nodes_compared = 1;
	if (!b->root) {
		note_round(&d, 2);
		return list_all(&d, a->root, 0, WEFT_MERKLE_ONLY_A, &d.st->bytes_a_to_b);
	}
	if (!a->root)
		return list_all(&d, b->root, 0, WEFT_MERKLE_ONLY_B, &d.st->bytes_b_to_a);
	if (memcmp(a->root->hash, b->root->hash, 32) == 0)
		return WEFT_OK;
	return walk_inner(&d, a->root, b->root, 0);
}
