/*
 * doc.c - documents as trees of LWW stamps, and the docset that holds them.
 *
 * The merge laws (docs/DATA-MODEL.md): each node carries leaf, obj and
 * clear stamps that only grow by max, and a leaf value that travels with
 * its stamp. An op is a join of such stamps along one path, so applying
 * ops is commutative, associative and idempotent; the visible tree is
 * computed from the stamps alone:
 *
 *   ec(n)    = max(clear of n and of every ancestor)   (effective clear)
 *   leaf ok  = leaf stamp != 0 and leaf >= ec(n)
 *   obj ok   = obj stamp  != 0 and obj  >= ec(n)
 *   n shows as a leaf   if leaf ok and (not obj ok or leaf > obj)
 *   n shows as an object if obj ok and not shown as a leaf
 *
 * Children of a node are kept sorted by key bytes (memcmp, then length),
 * which is also the canonical JSON key order, so writing JSON never sorts.
 */
#include <stdlib.h>
#include <string.h>

#include "weft/weft.h"
#include "core/doc.h"
#include "core/json.h"

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
};

struct weft_doc {
	struct weft_doc *next; /* hash chain */
	uint64_t hash;         /* hash of (coll, id) */
	char *coll;            /* NUL-terminated copy */
	char *id;              /* NUL-terminated copy */
	uint32_t coll_len;
	uint32_t id_len;
	struct node root;
};

struct weft_docset {
	const struct weft_alloc *alloc;
	struct weft_doc **buckets; /* power-of-two hash table */
	size_t nbuckets;
	size_t count;
};

enum shown { SHOWN_ABSENT, SHOWN_LEAF, SHOWN_OBJECT };

/* ---- stamps and visibility ---- */

static enum shown node_shown(const struct node *n, struct weft_stamp ec_parent,
                             struct weft_stamp *ec_out)
{
	struct weft_stamp ec = weft__stamp_max(ec_parent, n->clear);
	bool leaf_ok = !weft__stamp_is_zero(n->leaf) && weft__stamp_cmp(n->leaf, ec) >= 0;
	bool obj_ok = !weft__stamp_is_zero(n->obj) && weft__stamp_cmp(n->obj, ec) >= 0;

	if (ec_out)
		*ec_out = ec;
	if (leaf_ok && (!obj_ok || weft__stamp_cmp(n->leaf, n->obj) > 0))
		return SHOWN_LEAF;
	if (obj_ok)
		return SHOWN_OBJECT;
	return SHOWN_ABSENT;
}

static const struct weft_stamp zero_stamp;

bool weft__doc_visible(const struct weft_doc *d)
{
	return node_shown(&d->root, zero_stamp, NULL) == SHOWN_OBJECT;
}

/* ---- nodes ---- */

static int key_cmp(const char *a, size_t alen, const char *b, size_t blen)
{
	int c = memcmp(a, b, alen < blen ? alen : blen);

	if (c)
		return c;
	return alen < blen ? -1 : alen > blen;
}

static void node_free_contents(const struct weft_alloc *a, struct node *n)
{
	for (uint32_t i = 0; i < n->nkids; i++) {
		node_free_contents(a, n->kids[i]);
		weft__free(a, n->kids[i]);
	}
	weft__free(a, n->kids);
	weft__free(a, n->val);
	weft__free(a, n->key);
}

/* Binary search for key among n's children: returns the index where it is
 * or would be inserted, and sets *found. */
static uint32_t kid_search(const struct node *n, const char *key, size_t len, bool *found)
{
	uint32_t lo = 0, hi = n->nkids;

	while (lo < hi) {
		uint32_t mid = lo + (hi - lo) / 2;
		int c = key_cmp(n->kids[mid]->key, n->kids[mid]->key_len, key, len);

		if (c == 0) {
			*found = true;
			return mid;
		}
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	*found = false;
	return lo;
}

static int kid_get(const struct weft_alloc *a, struct node *n, const char *key, size_t len,
                   struct node **out)
{
	bool found;
	uint32_t i = kid_search(n, key, len, &found);
	struct node *k;

	if (found) {
		*out = n->kids[i];
		return WEFT_OK;
	}
	if (n->nkids == n->cap) {
		uint32_t cap = n->cap ? n->cap * 2 : 4;
		struct node **kids = weft__realloc(a, n->kids, cap * sizeof(*kids));

		if (!kids)
			return WEFT_ENOMEM;
		n->kids = kids;
		n->cap = cap;
	}
	k = weft__zalloc(a, sizeof(*k));
	if (!k)
		return WEFT_ENOMEM;
	k->key = weft__strndup(a, key, len);
	if (!k->key) {
		weft__free(a, k);
		return WEFT_ENOMEM;
	}
	k->key_len = (uint32_t)len;
	memmove(n->kids + i + 1, n->kids + i, (n->nkids - i) * sizeof(*n->kids));
	n->kids[i] = k;
	n->nkids++;
	*out = k;
	return WEFT_OK;
}

static int node_set_leaf(const struct weft_alloc *a, struct node *n, const uint8_t *v, size_t len,
                         struct weft_stamp s, bool *changed)
{
	if (weft__stamp_cmp(s, n->clear) > 0) {
		n->clear = s;
		*changed = true;
	}
	if (weft__stamp_cmp(s, n->leaf) > 0) {
		uint8_t *copy = weft__malloc(a, len);

		if (!copy)
			return WEFT_ENOMEM;
		memcpy(copy, v, len);
		weft__free(a, n->val);
		n->val = copy;
		n->val_len = (uint32_t)len;
		n->leaf = s;
		*changed = true;
	}
	return WEFT_OK;
}

static void bump(struct weft_stamp *dst, struct weft_stamp s, bool *changed)
{
	if (weft__stamp_cmp(s, *dst) > 0) {
		*dst = s;
		*changed = true;
	}
}

/* Writes the value at r into n with stamp s: a map merges key by key, any
 * other value is a leaf. The op decoder has bounded the nesting. */
static int node_set_value(const struct weft_alloc *a, struct node *n, struct mp_reader *r,
                          struct weft_stamp s, bool *changed)
{
	enum mp_type t;
	uint32_t count;
	const uint8_t *raw;
	size_t raw_len;
	int rc;

	if ((rc = weft__mp_peek(r, &t)) != WEFT_OK)
		return rc;
	if (t != MP_MAP) {
		if ((rc = weft__mp_skip(r, &raw, &raw_len)) != WEFT_OK)
			return rc;
		return node_set_leaf(a, n, raw, raw_len, s, changed);
	}
	if ((rc = weft__mp_read_map(r, &count)) != WEFT_OK)
		return rc;
	bump(&n->obj, s, changed);
	for (uint32_t i = 0; i < count; i++) {
		const char *k;
		size_t klen;
		struct node *kid;

		if ((rc = weft__mp_read_str(r, &k, &klen)) != WEFT_OK)
			return rc;
		if ((rc = kid_get(a, n, k, klen, &kid)) != WEFT_OK)
			return rc;
		if ((rc = node_set_value(a, kid, r, s, changed)) != WEFT_OK)
			return rc;
	}
	return WEFT_OK;
}

/* ---- the docset's hash table ---- */

static uint64_t key_hash(const char *coll, size_t clen, const char *id, size_t ilen)
{
	/* FNV-1a 64 over coll, a separator, and id. */
	uint64_t h = UINT64_C(0xcbf29ce484222325);

	for (size_t i = 0; i < clen; i++)
		h = (h ^ (uint8_t)coll[i]) * UINT64_C(0x100000001b3);
	h = (h ^ 0xff) * UINT64_C(0x100000001b3);
	for (size_t i = 0; i < ilen; i++)
		h = (h ^ (uint8_t)id[i]) * UINT64_C(0x100000001b3);
	return h ^ (h >> 32);
}

int weft__docset_new(const struct weft_alloc *a, struct weft_docset **out)
{
	struct weft_docset *ds;

	if (!a)
		a = weft__alloc_default();
	ds = weft__zalloc(a, sizeof(*ds));
	if (!ds)
		return WEFT_ENOMEM;
	ds->alloc = a;
	ds->nbuckets = 64;
	ds->buckets = weft__zalloc(a, ds->nbuckets * sizeof(*ds->buckets));
	if (!ds->buckets) {
		weft__free(a, ds);
		return WEFT_ENOMEM;
	}
	*out = ds;
	return WEFT_OK;
}

static void doc_free(const struct weft_alloc *a, struct weft_doc *d)
{
	node_free_contents(a, &d->root);
	weft__free(a, d->coll);
	weft__free(a, d->id);
	weft__free(a, d);
}

void weft__docset_free(struct weft_docset *ds)
{
	if (!ds)
		return;
	for (size_t i = 0; i < ds->nbuckets; i++) {
		struct weft_doc *d = ds->buckets[i], *next;

		for (; d; d = next) {
			next = d->next;
			doc_free(ds->alloc, d);
		}
	}
	weft__free(ds->alloc, ds->buckets);
	weft__free(ds->alloc, ds);
}

size_t weft__docset_count(const struct weft_docset *ds)
{
	return ds->count;
}

struct weft_doc *weft__docset_find(struct weft_docset *ds, const char *coll, size_t coll_len,
                                   const char *id, size_t id_len)
{
	uint64_t h = key_hash(coll, coll_len, id, id_len);
	struct weft_doc *d = ds->buckets[h & (ds->nbuckets - 1)];

	for (; d; d = d->next) {
		if (d->hash == h && d->coll_len == coll_len && d->id_len == id_len &&
		    memcmp(d->coll, coll, coll_len) == 0 && memcmp(d->id, id, id_len) == 0)
			return d;
	}
	return NULL;
}

/* Doubles the table when the load passes 1. Failure to grow is harmless:
 * the chains just get longer. */
static void docset_grow(struct weft_docset *ds)
{
	size_t n = ds->nbuckets * 2;
	struct weft_doc **b = weft__zalloc(ds->alloc, n * sizeof(*b));

	if (!b)
		return;
	for (size_t i = 0; i < ds->nbuckets; i++) {
		struct weft_doc *d = ds->buckets[i], *next;

		for (; d; d = next) {
			next = d->next;
			d->next = b[d->hash & (n - 1)];
			b[d->hash & (n - 1)] = d;
		}
	}
	weft__free(ds->alloc, ds->buckets);
	ds->buckets = b;
	ds->nbuckets = n;
}

static int docset_insert(struct weft_docset *ds, const char *coll, size_t coll_len, const char *id,
                         size_t id_len, struct weft_doc **out)
{
	const struct weft_alloc *a = ds->alloc;
	struct weft_doc *d;
	size_t b;

	d = weft__zalloc(a, sizeof(*d));
	if (!d)
		return WEFT_ENOMEM;
	d->coll = weft__strndup(a, coll, coll_len);
	d->id = weft__strndup(a, id, id_len);
	if (!d->coll || !d->id) {
		doc_free(a, d);
		return WEFT_ENOMEM;
	}
	d->coll_len = (uint32_t)coll_len;
	d->id_len = (uint32_t)id_len;
	d->hash = key_hash(coll, coll_len, id, id_len);
	if (ds->count >= ds->nbuckets)
		docset_grow(ds);
	b = d->hash & (ds->nbuckets - 1);
	d->next = ds->buckets[b];
	ds->buckets[b] = d;
	ds->count++;
	*out = d;
	return WEFT_OK;
}

/* ---- apply ---- */

int weft__docset_apply(struct weft_docset *ds, const struct weft_op *op,
                       enum weft_doc_change *change, struct weft_doc **doc_out)
{
	const struct weft_alloc *a = ds->alloc;
	struct weft_stamp s = weft__op_stamp(op);
	struct weft_doc *d;
	struct node *n;
	struct mp_reader r;
	uint32_t plen;
	bool was, changed = false;
	int rc;

	d = weft__docset_find(ds, op->coll, op->coll_len, op->id, op->id_len);
	if (!d &&
	    (rc = docset_insert(ds, op->coll, op->coll_len, op->id, op->id_len, &d)) != WEFT_OK)
		return rc;
	was = weft__doc_visible(d);

	/* Walk the path. A write (not a delete) at or below a node makes every
	 * node on the way an object as of s. */
	n = &d->root;
	weft__mp_reader_init(&r, op->path, op->path_len);
	if (op->path_len == 0)
		plen = 0;
	else if ((rc = weft__mp_read_array(&r, &plen)) != WEFT_OK)
		return rc;
	for (uint32_t i = 0; i < plen; i++) {
		const char *k;
		size_t klen;

		if (op->kind != WEFT_OP_DELETE)
			bump(&n->obj, s, &changed);
		if ((rc = weft__mp_read_str(&r, &k, &klen)) != WEFT_OK)
			return rc;
		if ((rc = kid_get(a, n, k, klen, &n)) != WEFT_OK)
			return rc;
	}

	switch (op->kind) {
	case WEFT_OP_DELETE:
		bump(&n->clear, s, &changed);
		break;
	case WEFT_OP_REPLACE:
		bump(&n->clear, s, &changed);
		/* fall through */
	case WEFT_OP_SET:
		weft__mp_reader_init(&r, op->value, op->value_len);
		if ((rc = node_set_value(a, n, &r, s, &changed)) != WEFT_OK)
			return rc;
		break;
	default:
		return WEFT_EPROTO;
	}

	if (change) {
		bool now = weft__doc_visible(d);

		if (!was && now)
			*change = WEFT_DOC_INSERTED;
		else if (was && !now)
			*change = WEFT_DOC_DELETED;
		else if (was && now && changed)
			*change = WEFT_DOC_UPDATED;
		else
			*change = WEFT_DOC_NONE;
	}
	if (doc_out)
		*doc_out = d;
	return WEFT_OK;
}

/* ---- listing ---- */

static int doc_cmp(const void *pa, const void *pb)
{
	const struct weft_doc *a = *(struct weft_doc *const *)pa;
	const struct weft_doc *b = *(struct weft_doc *const *)pb;
	int c = key_cmp(a->coll, a->coll_len, b->coll, b->coll_len);

	return c ? c : key_cmp(a->id, a->id_len, b->id, b->id_len);
}

int weft__docset_list(struct weft_docset *ds, struct weft_doc ***out, size_t *n)
{
	struct weft_doc **list = weft__malloc(ds->alloc, ds->count * sizeof(*list));
	size_t k = 0;

	if (!list)
		return WEFT_ENOMEM;
	for (size_t i = 0; i < ds->nbuckets; i++)
		for (struct weft_doc *d = ds->buckets[i]; d; d = d->next)
			list[k++] = d;
	qsort(list, k, sizeof(*list), doc_cmp);
	*out = list;
	*n = k;
	return WEFT_OK;
}

void weft__docset_free_list(struct weft_docset *ds, struct weft_doc **list)
{
	weft__free(ds->alloc, list);
}

void weft__doc_key(const struct weft_doc *d, const char **coll, size_t *coll_len, const char **id,
                   size_t *id_len)
{
	*coll = d->coll;
	*coll_len = d->coll_len;
	*id = d->id;
	*id_len = d->id_len;
}

/* ---- canonical JSON ---- */

static int node_write_json(const struct node *n, struct weft_stamp ec_parent, struct mp_buf *out)
{
	struct weft_stamp ec;
	enum shown sh = node_shown(n, ec_parent, &ec);
	bool first = true;
	int rc;

	if (sh == SHOWN_LEAF) {
		struct mp_reader r;

		weft__mp_reader_init(&r, n->val, n->val_len);
		return weft__json_write_mp(out, &r);
	}
	weft__mp_write_raw(out, "{", 1);
	for (uint32_t i = 0; i < n->nkids; i++) {
		const struct node *k = n->kids[i];

		if (node_shown(k, ec, NULL) == SHOWN_ABSENT)
			continue;
		if (!first)
			weft__mp_write_raw(out, ",", 1);
		first = false;
		weft__json_write_str(out, k->key, k->key_len);
		weft__mp_write_raw(out, ":", 1);
		if ((rc = node_write_json(k, ec, out)) != WEFT_OK)
			return rc;
	}
	weft__mp_write_raw(out, "}", 1);
	return out->err;
}

int weft__doc_write_json(const struct weft_doc *d, struct mp_buf *out)
{
	return node_write_json(&d->root, zero_stamp, out);
}

int weft__doc_write_dump_line(const struct weft_doc *d, struct mp_buf *out)
{
	int rc;

	weft__mp_write_raw(out, "{\"collection\":", 14);
	weft__json_write_str(out, d->coll, d->coll_len);
	weft__mp_write_raw(out, ",\"doc\":", 7);
	if ((rc = weft__doc_write_json(d, out)) != WEFT_OK)
		return rc;
	weft__mp_write_raw(out, ",\"id\":", 6);
	weft__json_write_str(out, d->id, d->id_len);
	weft__mp_write_raw(out, "}\n", 2);
	return out->err;
}

int weft__docset_dump(struct weft_docset *ds, struct mp_buf *out)
{
	struct weft_doc **list;
	size_t n;
	int rc;

	if ((rc = weft__docset_list(ds, &list, &n)) != WEFT_OK)
		return rc;
	for (size_t i = 0; i < n && rc == WEFT_OK; i++)
		if (weft__doc_visible(list[i]))
			rc = weft__doc_write_dump_line(list[i], out);
	weft__docset_free_list(ds, list);
	return rc;
}

/* ---- state encoding ----
 * node = [key|nil, leaf_hlc, leaf_replica, value|nil, obj_hlc, obj_replica,
 *         clear_hlc, clear_replica, [node...]]
 * Format version 1 is the first element of the document state:
 * state = [1, root node]. */

static void node_encode(const struct node *n, struct mp_buf *out)
{
	weft__mp_write_array(out, 9);
	if (n->key)
		weft__mp_write_str(out, n->key, n->key_len);
	else
		weft__mp_write_nil(out);
	weft__mp_write_uint(out, n->leaf.hlc);
	weft__mp_write_uint(out, n->leaf.replica);
	if (n->val)
		weft__mp_write_raw(out, n->val, n->val_len);
	else
		weft__mp_write_nil(out);
	weft__mp_write_uint(out, n->obj.hlc);
	weft__mp_write_uint(out, n->obj.replica);
	weft__mp_write_uint(out, n->clear.hlc);
	weft__mp_write_uint(out, n->clear.replica);
	weft__mp_write_array(out, n->nkids);
	for (uint32_t i = 0; i < n->nkids; i++)
		node_encode(n->kids[i], out);
}

void weft__doc_encode(const struct weft_doc *d, struct mp_buf *out)
{
	weft__mp_write_array(out, 2);
	weft__mp_write_uint(out, 1);
	node_encode(&d->root, out);
}

static int read_stamp(struct mp_reader *r, struct weft_stamp *s)
{
	if (weft__mp_read_uint(r, &s->hlc) != WEFT_OK ||
	    weft__mp_read_uint(r, &s->replica) != WEFT_OK)
		return WEFT_ECORRUPT;
	return WEFT_OK;
}

/* Decodes a node into n (zeroed by the caller). Keys must arrive sorted
 * and unique, as node_encode writes them. */
static int node_decode(const struct weft_alloc *a, struct node *n, struct mp_reader *r, int depth,
                       bool root)
{
	uint32_t len, nkids;
	enum mp_type t;
	const uint8_t *raw;
	size_t raw_len;
	int rc;

	if (depth > WEFT_MAX_DEPTH + 1)
		return WEFT_ECORRUPT;
	if (weft__mp_read_array(r, &len) != WEFT_OK || len != 9)
		return WEFT_ECORRUPT;
	if (root) {
		if (weft__mp_read_nil(r) != WEFT_OK)
			return WEFT_ECORRUPT;
	} else {
		const char *k;
		size_t klen;

		if (weft__mp_read_str(r, &k, &klen) != WEFT_OK || klen > WEFT_MAX_KEY)
			return WEFT_ECORRUPT;
		if (!(n->key = weft__strndup(a, k, klen)))
			return WEFT_ENOMEM;
		n->key_len = (uint32_t)klen;
	}
	if ((rc = read_stamp(r, &n->leaf)) != WEFT_OK)
		return rc;
	if (weft__mp_peek(r, &t) != WEFT_OK || weft__mp_skip(r, &raw, &raw_len) != WEFT_OK)
		return WEFT_ECORRUPT;
	if (!weft__stamp_is_zero(n->leaf)) {
		if (t == MP_MAP)
			return WEFT_ECORRUPT;
		rc = weft__mp_validate(raw, raw_len, true, a);
		if (rc != WEFT_OK)
			return rc == WEFT_ENOMEM ? rc : WEFT_ECORRUPT;
		if (!(n->val = weft__malloc(a, raw_len)))
			return WEFT_ENOMEM;
		memcpy(n->val, raw, raw_len);
		n->val_len = (uint32_t)raw_len;
	}
	if ((rc = read_stamp(r, &n->obj)) != WEFT_OK || (rc = read_stamp(r, &n->clear)) != WEFT_OK)
		return rc;
	if (weft__mp_read_array(r, &nkids) != WEFT_OK)
		return WEFT_ECORRUPT;
	if (nkids) {
		n->kids = weft__zalloc(a, nkids * sizeof(*n->kids));
		if (!n->kids)
			return WEFT_ENOMEM;
		n->cap = nkids;
	}
	for (uint32_t i = 0; i < nkids; i++) {
		struct node *k = weft__zalloc(a, sizeof(*k));

		if (!k)
			return WEFT_ENOMEM;
		n->kids[n->nkids++] = k;
		if ((rc = node_decode(a, k, r, depth + 1, false)) != WEFT_OK)
			return rc;
		if (i > 0 &&
		    key_cmp(n->kids[i - 1]->key, n->kids[i - 1]->key_len, k->key, k->key_len) >= 0)
			return WEFT_ECORRUPT;
	}
	return WEFT_OK;
}

int weft__docset_load(struct weft_docset *ds, const char *coll, size_t coll_len, const char *id,
                      size_t id_len, const void *state, size_t len)
{
	const struct weft_alloc *a = ds->alloc;
	struct node root;
	struct mp_reader r;
	struct weft_doc *d;
	uint32_t n;
	uint64_t ver;
	int rc;

	if (coll_len == 0 || id_len == 0 || coll_len > WEFT_MAX_COLLECTION || id_len > WEFT_MAX_ID)
		return WEFT_ECORRUPT;
	memset(&root, 0, sizeof(root));
	weft__mp_reader_init(&r, state, len);
	if (weft__mp_read_array(&r, &n) != WEFT_OK || n != 2 ||
	    weft__mp_read_uint(&r, &ver) != WEFT_OK || ver != 1) {
		rc = WEFT_ECORRUPT;
		goto out_free_root;
	}
	if ((rc = node_decode(a, &root, &r, 0, true)) != WEFT_OK)
		goto out_free_root;
	if (weft__mp_reader_left(&r) != 0) {
		rc = WEFT_ECORRUPT;
		goto out_free_root;
	}
	d = weft__docset_find(ds, coll, coll_len, id, id_len);
	if (!d && (rc = docset_insert(ds, coll, coll_len, id, id_len, &d)) != WEFT_OK)
		goto out_free_root;
	node_free_contents(a, &d->root);
	d->root = root;
	return WEFT_OK;

out_free_root:
	node_free_contents(a, &root);
	return rc;
}
