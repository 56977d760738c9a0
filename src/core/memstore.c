/*
 * memstore.c - the in-memory implementation of core/store.h, used by the
 * tests and the simulator; plus the u64 meta helpers every backend shares.
 *
 * Layout. meta and docs are two treaps (randomised binary search trees)
 * of intrusive nodes, keyed by (a, b) byte strings: for docs a is the
 * collection and b the id, for meta a is the name and b is empty. Keys
 * compare with memcmp, the shorter first on a common prefix, so an
 * in-order walk is exactly the (collection, id) order store.h promises.
 * The log is an array of entries in key order with a moving head: append
 * pushes at the end, trim advances the head.
 *
 * Transactions. Mutations are applied in place, and every change to a
 * treap first records how to undo it (inserted node, replaced value,
 * removed node) in the undo log; the log array only remembers its head,
 * length and last key at begin. So reads inside a transaction see its
 * own writes for free, rollback replays the undo log backwards, and
 * commit just frees what the undo log kept alive (old values, removed
 * nodes, trimmed entries).
 *
 * Invariants:
 *  - outside a transaction the undo log is empty and the structures hold
 *    exactly the committed state; crash() is rollback plus a flag;
 *  - rollback and commit never allocate, so they cannot fail for lack of
 *    memory; every mutation reserves its undo record and allocates its
 *    copies before it changes anything, so WEFT_ENOMEM leaves the store
 *    as it was before the call (the transaction is still open and can be
 *    committed or rolled back);
 *  - log entries [head, len) are live and strictly increasing, and every
 *    key is <= log_last.
 *
 * Scan callbacks must not mutate the store (they may read it).
 */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "weft/weft.h"
#include "core/alloc.h"
#include "core/store.h"

/* A meta or doc entry, one allocation with its key bytes; the value is a
 * separate allocation so that a put can swap it and keep the old one for
 * rollback. */
struct node {
	struct node *left;  /* keys smaller than ours */
	struct node *right; /* keys larger than ours */
	uint32_t prio;      /* heap order: a parent's prio >= its children's */
	size_t alen;        /* collection (or meta name) length */
	size_t blen;        /* id length; 0 for meta */
	void *val;          /* value bytes (owned) */
	size_t vlen;        /* value length */
	char key[];         /* alen bytes of a, then blen bytes of b */
};

enum undo_kind {
	UNDO_INSERT,  /* node was inserted: remove and free it */
	UNDO_REPLACE, /* node's value was replaced: restore old_val */
	UNDO_REMOVE   /* node was removed: put it back */
};

struct undo {
	enum undo_kind kind; /* what to undo */
	struct node **root;  /* the treap the node belongs to */
	struct node *node;   /* the node concerned */
	void *old_val;       /* UNDO_REPLACE: the previous value (owned) */
	size_t old_vlen;     /* UNDO_REPLACE: its length */
};

struct log_entry {
	uint64_t key; /* strictly increasing along the array */
	void *val;    /* value bytes (owned) */
	size_t len;   /* value length */
};

struct memstore {
	struct weft_store base;         /* must be first */
	const struct weft_alloc *alloc; /* everything below comes from here */

	struct node *meta; /* treap of meta entries */
	struct node *docs; /* treap of docs */
	uint32_t rng;      /* xorshift state for treap priorities */

	struct log_entry *log; /* entries; [head, len) are live */
	size_t log_head;       /* first live entry */
	size_t log_len;        /* one past the last entry */
	size_t log_cap;        /* entries allocated */
	uint64_t log_last;     /* highest key ever appended */

	bool in_tx;           /* between begin and commit/rollback */
	struct undo *undo;    /* undo log of the open transaction */
	size_t undo_len;      /* records used */
	size_t undo_cap;      /* records allocated */
	size_t tx_log_head;   /* log_head at begin */
	size_t tx_log_len;    /* log_len at begin */
	uint64_t tx_log_last; /* log_last at begin */

	bool crashed;            /* refuse everything until restart */
	unsigned fail_countdown; /* mutating calls until injected EIO; 0 = off */
	bool failing;            /* the countdown reached 0: every call fails */

	char errmsg[128]; /* detail of the last error */
};

static struct memstore *ms_of(struct weft_store *st)
{
	return (struct memstore *)st;
}

static int ms_error(struct memstore *ms, int rc, const char *msg)
{
	snprintf(ms->errmsg, sizeof(ms->errmsg), "%s", msg);
	return rc;
}

/* ---- keys and the treap ---- */

static int cmp_bytes(const char *a, size_t alen, const char *b, size_t blen)
{
	size_t n = alen < blen ? alen : blen;
	int c = n ? memcmp(a, b, n) : 0;

	if (c != 0)
		return c;
	return (alen > blen) - (alen < blen);
}

/* Orders (a, b) against a node's key: collection first, then id. */
static int cmp_key(const char *a, size_t alen, const char *b, size_t blen, const struct node *n)
{
	int c = cmp_bytes(a, alen, n->key, n->alen);

	if (c != 0)
		return c;
	return cmp_bytes(b, blen, n->key + n->alen, n->blen);
}

static int cmp_node(const struct node *x, const struct node *y)
{
	return cmp_key(x->key, x->alen, x->key + x->alen, x->blen, y);
}

static struct node *treap_find(struct node *t, const char *a, size_t alen, const char *b,
                               size_t blen)
{
	while (t) {
		int c = cmp_key(a, alen, b, blen, t);

		if (c == 0)
			return t;
		t = c < 0 ? t->left : t->right;
	}
	return NULL;
}

/* Splits t into the keys below k (*l) and above it (*r); k is not in t. */
static void treap_split(struct node *t, const struct node *k, struct node **l, struct node **r)
{
	while (t) {
		if (cmp_node(k, t) < 0) {
			*r = t;
			r = &t->left;
			t = t->left;
		} else {
			*l = t;
			l = &t->right;
			t = t->right;
		}
	}
	*l = NULL;
	*r = NULL;
}

/* Joins l and r, every key of l being below every key of r. */
static struct node *treap_merge(struct node *l, struct node *r)
{
	struct node *root = NULL;
	struct node **pp = &root;

	while (l && r) {
		if (l->prio >= r->prio) {
			*pp = l;
			pp = &l->right;
			l = l->right;
		} else {
			*pp = r;
			pp = &r->left;
			r = r->left;
		}
	}
	*pp = l ? l : r;
	return root;
}

/* Links n (whose key is not in the treap yet) in; never allocates. */
static void treap_insert(struct node **root, struct node *n)
{
	struct node **pp = root;

	while (*pp && (*pp)->prio > n->prio)
		pp = cmp_node(n, *pp) < 0 ? &(*pp)->left : &(*pp)->right;
	treap_split(*pp, n, &n->left, &n->right);
	*pp = n;
}

/* Unlinks n, which is in the treap; never allocates. */
static void treap_remove(struct node **root, struct node *n)
{
	struct node **pp = root;

	while (*pp != n)
		pp = cmp_node(n, *pp) < 0 ? &(*pp)->left : &(*pp)->right;
	*pp = treap_merge(n->left, n->right);
	n->left = NULL;
	n->right = NULL;
}

static void node_free(const struct weft_alloc *a, struct node *n)
{
	weft__free(a, n->val);
	weft__free(a, n);
}

/* Frees a whole treap; the explicit stack-free walk rotates left children
 * up so it needs no recursion. */
static void treap_free(const struct weft_alloc *a, struct node *t)
{
	while (t) {
		if (t->left) {
			struct node *l = t->left;

			t->left = l->right;
			l->right = t;
			t = l;
		} else {
			struct node *r = t->right;

			node_free(a, t);
			t = r;
		}
	}
}

/* In-order walk calling cb for each doc; stops at the first non-zero. The
 * depth of a treap is O(log n) with overwhelming probability, so plain
 * recursion is fine. */
static int treap_walk_docs(struct node *t, weft_store_doc_cb cb, void *ctx)
{
	int rc;

	while (t) {
		rc = treap_walk_docs(t->left, cb, ctx);
		if (rc != 0)
			return rc;
		rc = cb(ctx, t->key, t->alen, t->key + t->alen, t->blen, t->val, t->vlen);
		if (rc != 0)
			return rc;
		t = t->right;
	}
	return 0;
}

static uint32_t ms_rand(struct memstore *ms)
{
	uint32_t x = ms->rng;

	x ^= x << 13;
	x ^= x >> 17;
	x ^= x << 5;
	ms->rng = x;
	return x;
}

/* ---- transactions ---- */

static void tx_undo(struct memstore *ms);

/* Common gate for every mutating call: crashed, fault injection, and
 * (unless this is begin) an open transaction. An injected EIO rolls the
 * open transaction back, as store.h says of EIO. */
static int ms_mutating(struct memstore *ms, bool need_tx)
{
	if (ms->crashed)
		return ms_error(ms, WEFT_EIO, "memstore: crashed");
	if (ms->failing || (ms->fail_countdown && --ms->fail_countdown == 0)) {
		ms->failing = true;
		if (ms->in_tx)
			tx_undo(ms);
		return ms_error(ms, WEFT_EIO, "memstore: injected I/O error");
	}
	if (need_tx && !ms->in_tx)
		return ms_error(ms, WEFT_EINVAL, "memstore: mutation outside a transaction");
	return WEFT_OK;
}

/* Makes room for one more undo record, so that the mutation after it
 * cannot fail half-way. */
static int undo_reserve(struct memstore *ms)
{
	struct undo *u;
	size_t cap;

	if (ms->undo_len < ms->undo_cap)
		return WEFT_OK;
	cap = ms->undo_cap ? ms->undo_cap * 2 : 16;
	if (cap > SIZE_MAX / sizeof(*u))
		return ms_error(ms, WEFT_ENOMEM, "memstore: out of memory");
	u = weft__realloc(ms->alloc, ms->undo, cap * sizeof(*u));
	if (!u)
		return ms_error(ms, WEFT_ENOMEM, "memstore: out of memory");
	ms->undo = u;
	ms->undo_cap = cap;
	return WEFT_OK;
}

static void undo_push(struct memstore *ms, enum undo_kind kind, struct node **root, struct node *n,
                      void *old_val, size_t old_vlen)
{
	ms->undo[ms->undo_len++] = (struct undo){
	    .kind = kind,
	    .root = root,
	    .node = n,
	    .old_val = old_val,
	    .old_vlen = old_vlen,
	};
}

static void free_log_range(struct memstore *ms, size_t from, size_t to)
{
	for (size_t i = from; i < to; i++)
		weft__free(ms->alloc, ms->log[i].val);
}

/* Restores the state at begin; cannot fail. */
static void tx_undo(struct memstore *ms)
{
	while (ms->undo_len) {
		struct undo *u = &ms->undo[--ms->undo_len];

		switch (u->kind) {
		case UNDO_INSERT:
			treap_remove(u->root, u->node);
			node_free(ms->alloc, u->node);
			break;
		case UNDO_REPLACE:
			weft__free(ms->alloc, u->node->val);
			u->node->val = u->old_val;
			u->node->vlen = u->old_vlen;
			break;
		case UNDO_REMOVE:
			treap_insert(u->root, u->node);
			break;
		}
	}
	/* Entries appended in the transaction are those past tx_log_len;
	 * entries before it were at most trimmed, i.e. kept alive. */
	free_log_range(ms, ms->tx_log_len, ms->log_len);
	ms->log_len = ms->tx_log_len;
	ms->log_head = ms->tx_log_head;
	ms->log_last = ms->tx_log_last;
	ms->in_tx = false;
}

/* Makes the transaction's changes the committed state; cannot fail. */
static void tx_finish(struct memstore *ms)
{
	for (size_t i = 0; i < ms->undo_len; i++) {
		struct undo *u = &ms->undo[i];

		if (u->kind == UNDO_REPLACE)
			weft__free(ms->alloc, u->old_val);
		else if (u->kind == UNDO_REMOVE)
			node_free(ms->alloc, u->node);
	}
	ms->undo_len = 0;
	free_log_range(ms, ms->tx_log_head, ms->log_head);
	/* Compact once the dead prefix dominates, so trim stays O(1)
	 * amortised and the array does not creep. */
	if (ms->log_head > ms->log_len / 2) {
		memmove(ms->log, ms->log + ms->log_head,
		        (ms->log_len - ms->log_head) * sizeof(*ms->log));
		ms->log_len -= ms->log_head;
		ms->log_head = 0;
	}
	ms->in_tx = false;
}

static int ms_begin(struct weft_store *st)
{
	struct memstore *ms = ms_of(st);
	int rc = ms_mutating(ms, false);

	if (rc != WEFT_OK)
		return rc;
	if (ms->in_tx)
		return ms_error(ms, WEFT_EINVAL, "memstore: begin inside a transaction");
	ms->in_tx = true;
	ms->tx_log_head = ms->log_head;
	ms->tx_log_len = ms->log_len;
	ms->tx_log_last = ms->log_last;
	return WEFT_OK;
}

static int ms_commit(struct weft_store *st)
{
	struct memstore *ms = ms_of(st);
	int rc = ms_mutating(ms, true);

	if (rc != WEFT_OK)
		return rc;
	tx_finish(ms);
	return WEFT_OK;
}

static int ms_rollback(struct weft_store *st)
{
	struct memstore *ms = ms_of(st);

	if (ms->crashed)
		return ms_error(ms, WEFT_EIO, "memstore: crashed");
	if (ms->in_tx)
		tx_undo(ms);
	return WEFT_OK;
}

/* ---- meta and docs ---- */

static int ms_put(struct memstore *ms, struct node **root, const char *a, size_t alen,
                  const char *b, size_t blen, const void *val, size_t vlen)
{
	struct node *n;
	void *copy;
	int rc;

	rc = undo_reserve(ms);
	if (rc != WEFT_OK)
		return rc;
	copy = weft__malloc(ms->alloc, vlen);
	if (!copy)
		return ms_error(ms, WEFT_ENOMEM, "memstore: out of memory");
	if (vlen)
		memcpy(copy, val, vlen);

	n = treap_find(*root, a, alen, b, blen);
	if (n) {
		undo_push(ms, UNDO_REPLACE, root, n, n->val, n->vlen);
		n->val = copy;
		n->vlen = vlen;
		return WEFT_OK;
	}

	if (alen > SIZE_MAX - sizeof(*n) - blen) {
		rc = ms_error(ms, WEFT_ENOMEM, "memstore: key too large");
		goto out_free_copy;
	}
	n = weft__malloc(ms->alloc, sizeof(*n) + alen + blen);
	if (!n) {
		rc = ms_error(ms, WEFT_ENOMEM, "memstore: out of memory");
		goto out_free_copy;
	}
	*n = (struct node){
	    .prio = ms_rand(ms),
	    .alen = alen,
	    .blen = blen,
	    .val = copy,
	    .vlen = vlen,
	};
	if (alen)
		memcpy(n->key, a, alen);
	if (blen)
		memcpy(n->key + alen, b, blen);
	treap_insert(root, n);
	undo_push(ms, UNDO_INSERT, root, n, NULL, 0);
	return WEFT_OK;

out_free_copy:
	weft__free(ms->alloc, copy);
	return rc;
}

static int ms_get(struct memstore *ms, struct node *root, const char *a, size_t alen, const char *b,
                  size_t blen, struct mp_buf *out)
{
	struct node *n;

	if (ms->crashed)
		return ms_error(ms, WEFT_EIO, "memstore: crashed");
	n = treap_find(root, a, alen, b, blen);
	if (!n)
		return WEFT_ENOTFOUND;
	weft__mp_write_raw(out, n->val, n->vlen);
	if (out->err)
		return ms_error(ms, out->err, "memstore: output buffer");
	return WEFT_OK;
}

static int ms_meta_get(struct weft_store *st, const char *key, struct mp_buf *out)
{
	struct memstore *ms = ms_of(st);

	return ms_get(ms, ms->meta, key, strlen(key), NULL, 0, out);
}

static int ms_meta_put(struct weft_store *st, const char *key, const void *val, size_t len)
{
	struct memstore *ms = ms_of(st);
	int rc = ms_mutating(ms, true);

	if (rc != WEFT_OK)
		return rc;
	return ms_put(ms, &ms->meta, key, strlen(key), NULL, 0, val, len);
}

static int ms_doc_get(struct weft_store *st, const char *coll, size_t coll_len, const char *id,
                      size_t id_len, struct mp_buf *out)
{
	struct memstore *ms = ms_of(st);

	return ms_get(ms, ms->docs, coll, coll_len, id, id_len, out);
}

static int ms_doc_put(struct weft_store *st, const char *coll, size_t coll_len, const char *id,
                      size_t id_len, const void *val, size_t len)
{
	struct memstore *ms = ms_of(st);
	int rc = ms_mutating(ms, true);

	if (rc != WEFT_OK)
		return rc;
	return ms_put(ms, &ms->docs, coll, coll_len, id, id_len, val, len);
}

static int ms_doc_del(struct weft_store *st, const char *coll, size_t coll_len, const char *id,
                      size_t id_len)
{
	struct memstore *ms = ms_of(st);
	struct node *n;
	int rc = ms_mutating(ms, true);

	if (rc != WEFT_OK)
		return rc;
	n = treap_find(ms->docs, coll, coll_len, id, id_len);
	if (!n)
		return WEFT_OK;
	rc = undo_reserve(ms);
	if (rc != WEFT_OK)
		return rc;
	treap_remove(&ms->docs, n);
	undo_push(ms, UNDO_REMOVE, &ms->docs, n, NULL, 0);
	return WEFT_OK;
}

static int ms_doc_scan(struct weft_store *st, weft_store_doc_cb cb, void *ctx)
{
	struct memstore *ms = ms_of(st);

	if (ms->crashed)
		return ms_error(ms, WEFT_EIO, "memstore: crashed");
	return treap_walk_docs(ms->docs, cb, ctx);
}

/* ---- log ---- */

static int ms_log_append(struct weft_store *st, uint64_t key, const void *val, size_t len)
{
	struct memstore *ms = ms_of(st);
	void *copy;
	int rc = ms_mutating(ms, true);

	if (rc != WEFT_OK)
		return rc;
	/* log_last is 0 on an empty log, so key 0 is never accepted: it
	 * would be indistinguishable from "nothing appended". */
	if (key <= ms->log_last)
		return ms_error(ms, WEFT_EINVAL, "memstore: log key not increasing");
	if (ms->log_len == ms->log_cap) {
		size_t cap = ms->log_cap ? ms->log_cap * 2 : 64;
		struct log_entry *l;

		if (cap > SIZE_MAX / sizeof(*l))
			return ms_error(ms, WEFT_ENOMEM, "memstore: out of memory");
		l = weft__realloc(ms->alloc, ms->log, cap * sizeof(*l));
		if (!l)
			return ms_error(ms, WEFT_ENOMEM, "memstore: out of memory");
		ms->log = l;
		ms->log_cap = cap;
	}
	copy = weft__malloc(ms->alloc, len);
	if (!copy)
		return ms_error(ms, WEFT_ENOMEM, "memstore: out of memory");
	if (len)
		memcpy(copy, val, len);
	ms->log[ms->log_len++] = (struct log_entry){.key = key, .val = copy, .len = len};
	ms->log_last = key;
	return WEFT_OK;
}

/* The first live entry with key >= k (log_len if none). */
static size_t log_lower_bound(const struct memstore *ms, uint64_t k)
{
	size_t lo = ms->log_head, hi = ms->log_len;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (ms->log[mid].key < k)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

static int ms_log_scan(struct weft_store *st, uint64_t from, weft_store_log_cb cb, void *ctx)
{
	struct memstore *ms = ms_of(st);

	if (ms->crashed)
		return ms_error(ms, WEFT_EIO, "memstore: crashed");
	for (size_t i = log_lower_bound(ms, from); i < ms->log_len; i++) {
		int rc = cb(ctx, ms->log[i].key, ms->log[i].val, ms->log[i].len);

		if (rc != 0)
			return rc;
	}
	return 0;
}

/* Trimmed entries stay allocated until commit, which frees them. */
static int ms_log_trim(struct weft_store *st, uint64_t upto)
{
	struct memstore *ms = ms_of(st);
	int rc = ms_mutating(ms, true);

	if (rc != WEFT_OK)
		return rc;
	if (upto == UINT64_MAX)
		ms->log_head = ms->log_len;
	else
		ms->log_head = log_lower_bound(ms, upto + 1);
	return WEFT_OK;
}

static int ms_log_last(struct weft_store *st, uint64_t *key)
{
	struct memstore *ms = ms_of(st);

	if (ms->crashed)
		return ms_error(ms, WEFT_EIO, "memstore: crashed");
	*key = ms->log_last;
	return WEFT_OK;
}

/* ---- lifetime ---- */

static void ms_close(struct weft_store *st)
{
	struct memstore *ms = ms_of(st);

	if (ms->in_tx)
		tx_undo(ms);
	treap_free(ms->alloc, ms->meta);
	treap_free(ms->alloc, ms->docs);
	free_log_range(ms, ms->log_head, ms->log_len);
	weft__free(ms->alloc, ms->log);
	weft__free(ms->alloc, ms->undo);
	weft__free(ms->alloc, ms);
}

static const char *ms_errmsg(struct weft_store *st)
{
	return ms_of(st)->errmsg;
}

static const struct weft_store_vtab memstore_vtab = {
    .version = 1,
    .name = "memory",
    .begin = ms_begin,
    .commit = ms_commit,
    .rollback = ms_rollback,
    .meta_get = ms_meta_get,
    .meta_put = ms_meta_put,
    .doc_get = ms_doc_get,
    .doc_put = ms_doc_put,
    .doc_del = ms_doc_del,
    .doc_scan = ms_doc_scan,
    .log_append = ms_log_append,
    .log_scan = ms_log_scan,
    .log_trim = ms_log_trim,
    .log_last = ms_log_last,
    .close = ms_close,
    .errmsg = ms_errmsg,
};

int weft__memstore_new(const struct weft_alloc *alloc, struct weft_store **out)
{
	struct memstore *ms;

	if (!alloc)
		alloc = weft__alloc_default();
	ms = weft__zalloc(alloc, sizeof(*ms));
	if (!ms)
		return WEFT_ENOMEM;
	ms->base.vt = &memstore_vtab;
	ms->alloc = alloc;
	ms->rng = 0x9e3779b9u; /* fixed: the simulator wants determinism */
	*out = &ms->base;
	return WEFT_OK;
}

void weft__memstore_crash(struct weft_store *st)
{
	struct memstore *ms = ms_of(st);

	if (ms->in_tx)
		tx_undo(ms);
	ms->crashed = true;
}

void weft__memstore_restart(struct weft_store *st)
{
	ms_of(st)->crashed = false;
}

void weft__memstore_fail_after(struct weft_store *st, unsigned n)
{
	struct memstore *ms = ms_of(st);

	ms->fail_countdown = n;
	ms->failing = false;
}

/* ---- helpers over any store ---- */

int weft__store_meta_get_u64(struct weft_store *st, const char *key, uint64_t *v)
{
	struct mp_buf b;
	uint64_t x = 0;
	int rc;

	/* Values longer than 8 bytes are corrupt anyway; the bound stops a
	 * damaged store from making us allocate much. */
	weft__mp_buf_init(&b, NULL, 64);
	rc = st->vt->meta_get(st, key, &b);
	if (rc == WEFT_ETOOBIG)
		rc = WEFT_ECORRUPT;
	if (rc != WEFT_OK)
		goto out_free_buf;
	if (b.len != 8) {
		rc = WEFT_ECORRUPT;
		goto out_free_buf;
	}
	for (int i = 7; i >= 0; i--)
		x = x << 8 | b.data[i];
	*v = x;
out_free_buf:
	weft__mp_buf_free(&b);
	return rc;
}

int weft__store_meta_put_u64(struct weft_store *st, const char *key, uint64_t v)
{
	uint8_t raw[8];

	for (int i = 0; i < 8; i++)
		raw[i] = (uint8_t)(v >> (8 * i));
	return st->vt->meta_put(st, key, raw, sizeof(raw));
}
