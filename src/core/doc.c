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
 * Counters and add-wins sets (docs/DATA-MODEL.md, "Counters", "Sets") live
 * in an extension allocated only for nodes that received INCR/SADD/SREM ops
 * (plain nodes pay one NULL pointer). Its parts merge by joins too:
 *   ctr, ctr_claim, set, set_claim   stamps, by max;
 *   counter entries                  (replica, incarnation, base) -> (P, N),
 *                                    pointwise max;
 *   set entries + causal context     a dot store: entries keyed by unique
 *                                    dots, context by union; an entry
 *                                    survives unless the other side saw its
 *                                    dot without it.
 * Each is a join-semilattice, so apply stays commutative, associative and
 * idempotent. A claim (an op that makes the path its type) kills older
 * data at the node except its own type's; a node shows as the live
 * component (leaf, obj, counter, set) with the largest stamp, where
 * liveness uses the thresholds of node_thr, which only grow. Entries that
 * fall below a threshold are dead for good, so leaving them out of the
 * encoding (and not storing them on insert) keeps it canonical: replicas
 * that applied the same ops encode the same bytes.
 *
 * Each document also keeps a version vector (core/vv.h): replica -> the
 * largest HLC of its ops applied here, bumped last by every apply (so an
 * op cut short by WEFT_ENOMEM is never claimed) and merged by max. Whole
 * states join component by component (weft__docset_stage_state, "joining
 * states" below) with the same laws as apply.
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
};

enum shown { SHOWN_ABSENT, SHOWN_LEAF, SHOWN_OBJECT, SHOWN_COUNTER, SHOWN_SET };

static const struct weft_stamp zero_stamp;

/* ---- stamps and visibility ---- */

/* The thresholds below which parts of a node are dead. */
struct thr {
	struct weft_stamp kids; /* leaf, obj and children: clears and claims */
	struct weft_stamp ctr;  /* counter entries (base) and the ctr stamp */
	struct weft_stamp set;  /* set entries (stamp) and the set stamp */
};

static void node_thr(const struct node *n, struct weft_stamp ec_parent, struct thr *t)
{
	struct weft_stamp ec = weft__stamp_max(ec_parent, n->clear);

	t->kids = t->ctr = t->set = ec;
	if (n->ext) {
		t->ctr = weft__stamp_max(ec, n->ext->set_claim);
		t->set = weft__stamp_max(ec, n->ext->ctr_claim);
		t->kids = weft__stamp_max(t->ctr, n->ext->ctr_claim);
	}
}

static bool live(struct weft_stamp s, struct weft_stamp thr)
{
	return !weft__stamp_is_zero(s) && weft__stamp_cmp(s, thr) >= 0;
}

/* What n shows as: the live component with the greatest stamp (an object
 * wins a tie with a leaf, as in format 1; other ties cannot happen between
 * distinct ops). *t (may be NULL) receives the thresholds; t->kids is the
 * effective clear its children inherit. */
static enum shown node_shown(const struct node *n, struct weft_stamp ec_parent, struct thr *t)
{
	struct thr th;
	enum shown best = SHOWN_ABSENT;
	struct weft_stamp bs = zero_stamp;

	node_thr(n, ec_parent, &th);
	if (t)
		*t = th;
	if (live(n->obj, th.kids)) {
		best = SHOWN_OBJECT;
		bs = n->obj;
	}
	if (live(n->leaf, th.kids) && (best == SHOWN_ABSENT || weft__stamp_cmp(n->leaf, bs) > 0)) {
		best = SHOWN_LEAF;
		bs = n->leaf;
	}
	if (n->ext && live(n->ext->ctr, th.ctr) &&
	    (best == SHOWN_ABSENT || weft__stamp_cmp(n->ext->ctr, bs) > 0)) {
		best = SHOWN_COUNTER;
		bs = n->ext->ctr;
	}
	if (n->ext && live(n->ext->set, th.set) &&
	    (best == SHOWN_ABSENT || weft__stamp_cmp(n->ext->set, bs) > 0))
		best = SHOWN_SET;
	return best;
}

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

static void ext_free(const struct weft_alloc *a, struct ext *x)
{
	if (!x)
		return;
	for (uint32_t i = 0; i < x->nse; i++)
		weft__free(a, x->se[i].elem);
	for (uint32_t i = 0; i < x->ncc; i++)
		weft__free(a, x->cc[i].cloud);
	weft__free(a, x->se);
	weft__free(a, x->ce);
	weft__free(a, x->cc);
	weft__free(a, x);
}

static void node_free_contents(const struct weft_alloc *a, struct node *n)
{
	ext_free(a, n->ext);
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

/* ---- counters and sets ---- */

static void write_stamp(struct mp_buf *out, struct weft_stamp s)
{
	weft__mp_write_uint(out, s.hlc);
	weft__mp_write_uint(out, s.replica);
}

/* Makes room for `need` elements in *arr (cap *cap). */
static int grow(const struct weft_alloc *a, void **arr, uint32_t *cap, uint32_t need, size_t size)
{
	uint32_t c = *cap ? *cap : 2;
	void *p;

	if (need <= *cap)
		return WEFT_OK;
	while (c < need)
		c = c > UINT32_MAX / 2 ? need : c * 2;
	p = weft__realloc(a, *arr, (size_t)c * size);
	if (!p)
		return WEFT_ENOMEM;
	*arr = p;
	*cap = c;
	return WEFT_OK;
}

static int ext_get(const struct weft_alloc *a, struct node *n, struct ext **out)
{
	if (!n->ext && !(n->ext = weft__zalloc(a, sizeof(*n->ext))))
		return WEFT_ENOMEM;
	*out = n->ext;
	return WEFT_OK;
}

static int ce_cmp(const struct ctr_entry *e, uint64_t replica, uint32_t inc, struct weft_stamp base)
{
	if (e->replica != replica)
		return e->replica < replica ? -1 : 1;
	if (e->inc != inc)
		return e->inc < inc ? -1 : 1;
	return weft__stamp_cmp(e->base, base);
}

static uint32_t ce_search(const struct ext *x, uint64_t replica, uint32_t inc,
                          struct weft_stamp base, bool *found)
{
	uint32_t lo = 0, hi = x->nce;

	*found = false;
	while (lo < hi) {
		uint32_t mid = lo + (hi - lo) / 2;
		int c = ce_cmp(&x->ce[mid], replica, inc, base);

		if (c == 0) {
			*found = true;
			return mid;
		}
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

/* INCR: the entry (replica, incarnation, base) takes the max of each
 * total; the stamps grow by max. Allocates before changing anything. */
static int apply_incr(const struct weft_alloc *a, struct node *n, const struct weft_op *op,
                      struct weft_stamp s, bool *changed)
{
	struct weft_incr v;
	struct ext *x;
	struct ctr_entry *e;
	uint32_t i;
	bool found;
	int rc;

	if (weft__op_incr_parse(op->value, op->value_len, &v) != WEFT_OK)
		return WEFT_EPROTO;
	if ((rc = ext_get(a, n, &x)) != WEFT_OK)
		return rc;
	i = ce_search(x, op->replica, op->incarnation, v.base, &found);
	if (!found) {
		if ((rc = grow(a, (void **)&x->ce, &x->ce_cap, x->nce + 1, sizeof(*x->ce))) !=
		    WEFT_OK)
			return rc;
		memmove(x->ce + i + 1, x->ce + i, (x->nce - i) * sizeof(*x->ce));
		x->nce++;
		x->ce[i] = (struct ctr_entry){
		    .replica = op->replica, .inc = op->incarnation, .base = v.base};
		*changed = true;
	}
	e = &x->ce[i];
	if (v.p > e->p) {
		e->p = v.p;
		*changed = true;
	}
	if (v.n > e->n) {
		e->n = v.n;
		*changed = true;
	}
	bump(&x->ctr, s, changed);
	if (v.claim)
		bump(&x->ctr_claim, s, changed);
	return WEFT_OK;
}

static int actor_cmp(uint64_t ar, uint32_t ai, uint64_t br, uint32_t bi)
{
	if (ar != br)
		return ar < br ? -1 : 1;
	return ai < bi ? -1 : ai > bi;
}

static uint32_t cc_search(const struct ext *x, uint64_t replica, uint32_t inc, bool *found)
{
	uint32_t lo = 0, hi = x->ncc;

	*found = false;
	while (lo < hi) {
		uint32_t mid = lo + (hi - lo) / 2;
		int c = actor_cmp(x->cc[mid].replica, x->cc[mid].inc, replica, inc);

		if (c == 0) {
			*found = true;
			return mid;
		}
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

/* Index in the actor's cloud where ctr is or would go. */
static uint32_t cloud_search(const struct cc_actor *c, uint64_t ctr, bool *found)
{
	uint32_t lo = 0, hi = c->ncloud;

	*found = false;
	while (lo < hi) {
		uint32_t mid = lo + (hi - lo) / 2;

		if (c->cloud[mid] == ctr) {
			*found = true;
			return mid;
		}
		if (c->cloud[mid] < ctr)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

static bool cc_has(const struct ext *x, const struct weft_dot *d)
{
	bool found;
	uint32_t i = cc_search(x, d->replica, d->inc, &found);

	if (!found)
		return false;
	if (d->ctr <= x->cc[i].max)
		return true;
	cloud_search(&x->cc[i], d->ctr, &found);
	return found;
}

/* Adds a dot to the causal context, keeping it compressed: a counter
 * max + 1 extends max and absorbs the cloud's contiguous prefix. On
 * WEFT_ENOMEM the context is unchanged, or holds a new empty actor (which
 * means nothing and is never encoded). */
static int cc_add(const struct weft_alloc *a, struct ext *x, const struct weft_dot *d,
                  bool *changed)
{
	struct cc_actor *c;
	uint32_t i, k, j;
	bool found;
	int rc;

	i = cc_search(x, d->replica, d->inc, &found);
	if (!found) {
		if ((rc = grow(a, (void **)&x->cc, &x->cc_cap, x->ncc + 1, sizeof(*x->cc))) !=
		    WEFT_OK)
			return rc;
		memmove(x->cc + i + 1, x->cc + i, (x->ncc - i) * sizeof(*x->cc));
		x->ncc++;
		x->cc[i] = (struct cc_actor){.replica = d->replica, .inc = d->inc};
	}
	c = &x->cc[i];
	if (d->ctr <= c->max)
		return WEFT_OK;
	k = cloud_search(c, d->ctr, &found);
	if (found)
		return WEFT_OK;
	*changed = true;
	if (d->ctr != c->max + 1) {
		if ((rc = grow(a, (void **)&c->cloud, &c->cap, c->ncloud + 1, sizeof(*c->cloud))) !=
		    WEFT_OK)
			return rc;
		memmove(c->cloud + k + 1, c->cloud + k, (c->ncloud - k) * sizeof(*c->cloud));
		c->cloud[k] = d->ctr;
		c->ncloud++;
		return WEFT_OK;
	}
	c->max++;
	for (j = 0; j < c->ncloud && c->cloud[j] == c->max + 1; j++)
		c->max++;
	if (j > 0) {
		memmove(c->cloud, c->cloud + j, (c->ncloud - j) * sizeof(*c->cloud));
		c->ncloud -= j;
	}
	return WEFT_OK;
}

static int se_cmp(const struct set_entry *e, const uint8_t *elem, size_t len,
                  const struct weft_dot *d)
{
	int c = key_cmp((const char *)e->elem, e->elem_len, (const char *)elem, len);

	return c ? c : weft__dot_cmp(&e->dot, d);
}

static uint32_t se_search(const struct ext *x, const uint8_t *elem, size_t len,
                          const struct weft_dot *d, bool *found)
{
	uint32_t lo = 0, hi = x->nse;

	*found = false;
	while (lo < hi) {
		uint32_t mid = lo + (hi - lo) / 2;
		int c = se_cmp(&x->se[mid], elem, len, d);

		if (c == 0) {
			*found = true;
			return mid;
		}
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

/* SADD: the delta {(elem, dot, stamp)} with context {dot}. The entry is
 * added unless the dot is already in the context (then it is either here
 * already or was removed); an entry already dead by the thresholds (its
 * stamp below t_set) is not stored, only its dot. The entry goes in before
 * the dot, so an op cut short by WEFT_ENOMEM is completed by re-applying. */
static int apply_sadd(const struct weft_alloc *a, struct node *n, const struct weft_op *op,
                      struct weft_stamp s, struct weft_stamp ec_parent, bool *changed)
{
	struct weft_setop v;
	struct weft_dot d;
	struct thr t;
	struct ext *x;
	int rc;

	if (weft__op_set_parse(op->kind, op->value, op->value_len, &v) != WEFT_OK)
		return WEFT_EPROTO;
	if ((rc = ext_get(a, n, &x)) != WEFT_OK)
		return rc;
	d = (struct weft_dot){.replica = op->replica, .inc = op->incarnation, .ctr = v.ctr};
	/* The claim takes part in the threshold of this very entry: a set claim
	 * never kills set entries, so computing t before it is the same. */
	node_thr(n, ec_parent, &t);
	if (!cc_has(x, &d) && weft__stamp_cmp(s, t.set) >= 0) {
		bool found;
		uint32_t i = se_search(x, v.elem, v.elem_len, &d, &found);

		if (!found) {
			uint8_t *copy;

			if ((rc = grow(a, (void **)&x->se, &x->se_cap, x->nse + 1,
			               sizeof(*x->se))) != WEFT_OK)
				return rc;
			if (!(copy = weft__malloc(a, v.elem_len)))
				return WEFT_ENOMEM;
			memcpy(copy, v.elem, v.elem_len);
			memmove(x->se + i + 1, x->se + i, (x->nse - i) * sizeof(*x->se));
			x->nse++;
			x->se[i] = (struct set_entry){
			    .elem = copy, .elem_len = (uint32_t)v.elem_len, .dot = d, .stamp = s};
			*changed = true;
		}
	}
	if ((rc = cc_add(a, x, &d, changed)) != WEFT_OK)
		return rc;
	bump(&x->set, s, changed);
	if (v.claim)
		bump(&x->set_claim, s, changed);
	return WEFT_OK;
}

static bool dots_have(const struct weft_dot *dots, uint32_t n, const struct weft_dot *want)
{
	uint32_t lo = 0, hi = n;

	while (lo < hi) {
		uint32_t mid = lo + (hi - lo) / 2;
		int c = weft__dot_cmp(&dots[mid], want);

		if (c == 0)
			return true;
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return false;
}

/* SREM: no entries, context = the listed dots. Entries whose dot is listed
 * go (whatever their element), then the dots join the context. */
static int apply_srem(const struct weft_alloc *a, struct node *n, const struct weft_op *op,
                      struct weft_stamp s, bool *changed)
{
	struct weft_setop v;
	struct weft_dot *dots = NULL;
	struct mp_reader r;
	struct ext *x;
	uint32_t k = 0;
	int rc;

	if (weft__op_set_parse(op->kind, op->value, op->value_len, &v) != WEFT_OK)
		return WEFT_EPROTO;
	if ((rc = ext_get(a, n, &x)) != WEFT_OK)
		return rc;
	/* The listed dots, decoded for binary search (the op's bytes bound
	 * their number). Removing first and adding dots after leaves an op cut
	 * short by WEFT_ENOMEM in a state that re-applying completes. */
	if (v.ndots > 0 && !(dots = weft__malloc(a, (size_t)v.ndots * sizeof(*dots))))
		return WEFT_ENOMEM;
	weft__mp_reader_init(&r, v.dots, v.dots_len);
	for (uint32_t i = 0; i < v.ndots; i++)
		if (weft__op_dot_read(&r, &dots[i]) != WEFT_OK) {
			rc = WEFT_EPROTO;
			goto out_free_dots;
		}
	for (uint32_t i = 0; i < x->nse; i++) {
		if (v.ndots > 0 && dots_have(dots, v.ndots, &x->se[i].dot)) {
			weft__free(a, x->se[i].elem);
			*changed = true;
		} else {
			x->se[k++] = x->se[i];
		}
	}
	x->nse = k;
	for (uint32_t i = 0; i < v.ndots; i++)
		if ((rc = cc_add(a, x, &dots[i], changed)) != WEFT_OK)
			goto out_free_dots;
	bump(&x->set, s, changed);
	if (v.claim)
		bump(&x->set_claim, s, changed);
out_free_dots:
	weft__free(a, dots);
	return rc;
}

/* Drops the entries of n that are dead by its thresholds (which only grow,
 * so they are dead for good; their dots stay in the context). Called on the
 * node an op targets; the encoding leaves out the others. */
static void ext_prune(const struct weft_alloc *a, struct node *n, struct weft_stamp ec_parent)
{
	struct ext *x = n->ext;
	struct thr t;
	uint32_t k = 0;

	node_thr(n, ec_parent, &t);
	for (uint32_t i = 0; i < x->nce; i++)
		if (weft__stamp_cmp(x->ce[i].base, t.ctr) >= 0)
			x->ce[k++] = x->ce[i];
	x->nce = k;
	k = 0;
	for (uint32_t i = 0; i < x->nse; i++) {
		if (weft__stamp_cmp(x->se[i].stamp, t.set) >= 0)
			x->se[k++] = x->se[i];
		else
			weft__free(a, x->se[i].elem);
	}
	x->nse = k;
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
	weft__vv_free(a, &d->vv);
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

/* A new empty document, not yet in any docset. Errors: WEFT_ENOMEM. */
static int doc_new(const struct weft_alloc *a, const char *coll, size_t coll_len, const char *id,
                   size_t id_len, struct weft_doc **out)
{
	struct weft_doc *d;

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
	*out = d;
	return WEFT_OK;
}

/* Links a document from doc_new into the table. Cannot fail. */
static void docset_link(struct weft_docset *ds, struct weft_doc *d)
{
	size_t b;

	if (ds->count >= ds->nbuckets)
		docset_grow(ds);
	b = d->hash & (ds->nbuckets - 1);
	d->next = ds->buckets[b];
	ds->buckets[b] = d;
	ds->count++;
}

static int docset_insert(struct weft_docset *ds, const char *coll, size_t coll_len, const char *id,
                         size_t id_len, struct weft_doc **out)
{
	int rc = doc_new(ds->alloc, coll, coll_len, id, id_len, out);

	if (rc == WEFT_OK)
		docset_link(ds, *out);
	return rc;
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
	struct weft_stamp ec = zero_stamp;
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

		struct thr t;

		if (op->kind != WEFT_OP_DELETE)
			bump(&n->obj, s, &changed);
		node_thr(n, ec, &t);
		ec = t.kids;
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
	case WEFT_OP_INCR:
	case WEFT_OP_SADD:
	case WEFT_OP_SREM:
		if (plen == 0)
			return WEFT_EPROTO;
		if (op->kind == WEFT_OP_INCR)
			rc = apply_incr(a, n, op, s, &changed);
		else if (op->kind == WEFT_OP_SADD)
			rc = apply_sadd(a, n, op, s, ec, &changed);
		else
			rc = apply_srem(a, n, op, s, &changed);
		if (rc != WEFT_OK)
			return rc;
		break;
	default:
		return WEFT_EPROTO;
	}
	if (n->ext)
		ext_prune(a, n, ec);
	/* Last, so that an op cut short by WEFT_ENOMEM is never claimed by the
	 * version vector (it may only under-claim, which is safe). */
	if ((rc = weft__vv_bump(a, &d->vv, op->replica, op->hlc, NULL)) != WEFT_OK)
		return rc;

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

/* ---- building CRDT ops from a replica's own state ---- */

/* The node at `path` (a MessagePack array of keys) of document (coll, id),
 * read-only: NULL when it does not exist yet. *t receives its thresholds
 * (those of an empty node under the deepest existing ancestor when it does
 * not exist) and *ec_parent the effective clear it inherits. */
static const struct node *node_lookup(struct weft_docset *ds, const char *coll, size_t coll_len,
                                      const char *id, size_t id_len, const uint8_t *path,
                                      size_t path_len, struct thr *t, struct weft_stamp *ec_parent)
{
	const struct weft_doc *d = weft__docset_find(ds, coll, coll_len, id, id_len);
	const struct node *n = d ? &d->root : NULL;
	struct weft_stamp ec = zero_stamp;
	struct mp_reader r;
	uint32_t plen = 0;

	weft__mp_reader_init(&r, path, path_len);
	if (weft__mp_read_array(&r, &plen) != WEFT_OK)
		plen = 0;
	for (uint32_t i = 0; i < plen && n; i++) {
		const char *k;
		size_t klen;
		bool found;
		uint32_t j;

		node_thr(n, ec, t);
		ec = t->kids;
		if (weft__mp_read_str(&r, &k, &klen) != WEFT_OK) {
			n = NULL;
			break;
		}
		j = kid_search(n, k, klen, &found);
		n = found ? n->kids[j] : NULL;
	}
	*ec_parent = ec;
	if (n)
		node_thr(n, ec, t);
	else
		t->kids = t->ctr = t->set = ec;
	return n;
}

int weft__docset_incr_value(struct weft_docset *ds, const char *coll, size_t coll_len,
                            const char *id, size_t id_len, const uint8_t *path, size_t path_len,
                            uint64_t replica, uint32_t inc, int64_t delta, struct mp_buf *out)
{
	struct weft_stamp ec;
	struct thr t;
	const struct node *n = node_lookup(ds, coll, coll_len, id, id_len, path, path_len, &t, &ec);
	uint64_t p = 0, m = 0;
	bool claim = !n || node_shown(n, ec, NULL) != SHOWN_COUNTER;

	if (n && n->ext) {
		bool found;
		uint32_t i = ce_search(n->ext, replica, inc, t.ctr, &found);

		if (found) {
			p = n->ext->ce[i].p;
			m = n->ext->ce[i].n;
		}
	}
	/* Totals never wrap: max-merging them relies on their only growing. */
	if (delta >= 0) {
		if (p + (uint64_t)delta < p)
			return WEFT_ETOOBIG;
		p += (uint64_t)delta;
	} else {
		uint64_t mag = (uint64_t)(-(delta + 1)) + 1;

		if (m + mag < m)
			return WEFT_ETOOBIG;
		m += mag;
	}
	weft__mp_write_array(out, 6);
	weft__mp_write_int(out, delta);
	weft__mp_write_uint(out, p);
	weft__mp_write_uint(out, m);
	write_stamp(out, t.ctr);
	weft__mp_write_bool(out, claim);
	return out->err;
}

int weft__docset_sadd_value(struct weft_docset *ds, const char *coll, size_t coll_len,
                            const char *id, size_t id_len, const uint8_t *path, size_t path_len,
                            uint64_t replica, uint32_t inc, const uint8_t *elem, size_t elem_len,
                            struct mp_buf *out)
{
	struct weft_stamp ec;
	struct thr t;
	const struct node *n = node_lookup(ds, coll, coll_len, id, id_len, path, path_len, &t, &ec);
	bool claim = !n || node_shown(n, ec, NULL) != SHOWN_SET;
	uint64_t next = 1;

	if (n && n->ext) {
		bool found;
		uint32_t i = cc_search(n->ext, replica, inc, &found);

		if (found) {
			const struct cc_actor *c = &n->ext->cc[i];

			next = (c->ncloud ? c->cloud[c->ncloud - 1] : c->max) + 1;
		}
	}
	if (next == 0)
		return WEFT_ETOOBIG;
	weft__mp_write_array(out, 3);
	weft__mp_write_raw(out, elem, elem_len);
	weft__mp_write_uint(out, next);
	weft__mp_write_bool(out, claim);
	return out->err;
}

int weft__docset_srem_value(struct weft_docset *ds, const char *coll, size_t coll_len,
                            const char *id, size_t id_len, const uint8_t *path, size_t path_len,
                            const uint8_t *elem, size_t elem_len, struct mp_buf *out)
{
	struct weft_stamp ec;
	struct thr t;
	const struct node *n = node_lookup(ds, coll, coll_len, id, id_len, path, path_len, &t, &ec);
	bool claim = !n || node_shown(n, ec, NULL) != SHOWN_SET;
	uint32_t lo = 0, hi = 0, k = 0;

	if (n && n->ext) {
		const struct ext *x = n->ext;
		struct weft_dot first = {0, 0, 0};
		bool found;

		/* Entries of one element are contiguous and sorted by dot. */
		lo = se_search(x, elem, elem_len, &first, &found);
		for (hi = lo; hi < x->nse && x->se[hi].elem_len == elem_len &&
		              memcmp(x->se[hi].elem, elem, elem_len) == 0;
		     hi++)
			k += weft__stamp_cmp(x->se[hi].stamp, t.set) >= 0;
	}
	weft__mp_write_array(out, 3);
	weft__mp_write_raw(out, elem, elem_len);
	weft__mp_write_array(out, k);
	for (uint32_t i = lo; i < hi; i++) {
		const struct set_entry *e = &n->ext->se[i];

		if (weft__stamp_cmp(e->stamp, t.set) < 0)
			continue;
		weft__mp_write_array(out, 3);
		weft__mp_write_uint(out, e->dot.replica);
		weft__mp_write_uint(out, e->dot.inc);
		weft__mp_write_uint(out, e->dot.ctr);
	}
	weft__mp_write_bool(out, claim);
	return out->err;
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

/* The counter's value: the sum of P - N over the entries whose base is at
 * or above the threshold, in uint64 (wrapping), read as two's complement. */
static int64_t ctr_value(const struct ext *x, struct weft_stamp thr)
{
	uint64_t sum = 0;

	for (uint32_t i = 0; i < x->nce; i++)
		if (weft__stamp_cmp(x->ce[i].base, thr) >= 0)
			sum += x->ce[i].p - x->ce[i].n;
	/* Portable uint64 -> int64 two's complement. */
	return sum <= INT64_MAX ? (int64_t)sum : -(int64_t)(~sum) - 1;
}

struct span {
	size_t off, len;
	const uint8_t *base; /* set before sorting */
};

static int span_cmp(const void *pa, const void *pb)
{
	const struct span *a = pa, *b = pb;

	return key_cmp((const char *)a->base + a->off, a->len, (const char *)b->base + b->off,
	               b->len);
}

/* The set as a JSON array of its live elements, each once, sorted by their
 * canonical JSON text (bytewise). */
static int set_write_json(const struct ext *x, struct weft_stamp thr, struct mp_buf *out)
{
	const struct weft_alloc *a = out->alloc;
	const struct set_entry *last = NULL;
	struct mp_buf tmp;
	struct span *sp = NULL;
	uint32_t n = 0;
	int rc = WEFT_OK;

	weft__mp_buf_init(&tmp, a, 0);
	if (x->nse && !(sp = weft__malloc(a, x->nse * sizeof(*sp)))) {
		rc = WEFT_ENOMEM;
		goto out_free;
	}
	for (uint32_t i = 0; i < x->nse; i++) {
		const struct set_entry *e = &x->se[i];
		struct mp_reader r;

		if (weft__stamp_cmp(e->stamp, thr) < 0)
			continue;
		/* Entries are sorted by element: skip repeats of one element. */
		if (last && last->elem_len == e->elem_len &&
		    memcmp(last->elem, e->elem, e->elem_len) == 0)
			continue;
		last = e;
		sp[n].off = tmp.len;
		weft__mp_reader_init(&r, e->elem, e->elem_len);
		if ((rc = weft__json_write_mp(&tmp, &r)) != WEFT_OK)
			goto out_free;
		sp[n].len = tmp.len - sp[n].off;
		n++;
	}
	for (uint32_t i = 0; i < n; i++)
		sp[i].base = tmp.data;
	if (n > 1)
		qsort(sp, n, sizeof(*sp), span_cmp);
	weft__mp_write_raw(out, "[", 1);
	for (uint32_t i = 0; i < n; i++) {
		if (i > 0)
			weft__mp_write_raw(out, ",", 1);
		weft__mp_write_raw(out, tmp.data + sp[i].off, sp[i].len);
	}
	weft__mp_write_raw(out, "]", 1);
	rc = out->err;
out_free:
	weft__free(a, sp);
	weft__mp_buf_free(&tmp);
	return rc;
}

static int node_write_json(const struct node *n, struct weft_stamp ec_parent, struct mp_buf *out)
{
	struct thr t;
	enum shown sh = node_shown(n, ec_parent, &t);
	bool first = true;
	int rc;

	if (sh == SHOWN_LEAF) {
		struct mp_reader r;

		weft__mp_reader_init(&r, n->val, n->val_len);
		return weft__json_write_mp(out, &r);
	}
	if (sh == SHOWN_COUNTER) {
		weft__json_write_int(out, ctr_value(n->ext, t.ctr));
		return out->err;
	}
	if (sh == SHOWN_SET)
		return set_write_json(n->ext, t.set, out);
	weft__mp_write_raw(out, "{", 1);
	for (uint32_t i = 0; i < n->nkids; i++) {
		const struct node *k = n->kids[i];

		if (node_shown(k, t.kids, NULL) == SHOWN_ABSENT)
			continue;
		if (!first)
			weft__mp_write_raw(out, ",", 1);
		first = false;
		weft__json_write_str(out, k->key, k->key_len);
		weft__mp_write_raw(out, ":", 1);
		if ((rc = node_write_json(k, t.kids, out)) != WEFT_OK)
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
 *         clear_hlc, clear_replica, [node...]]            (9 elements)
 *      | the same 9 followed by ext                       (10 elements)
 * ext  = [ctr_hlc, ctr_replica, ctr_claim_hlc, ctr_claim_replica,
 *         set_hlc, set_replica, set_claim_hlc, set_claim_replica,
 *         [[replica, incarnation, max, [counter...]]...],      causal context
 *         [[replica, incarnation, base_hlc, base_replica, p, n]...],  counter
 *         [[element, replica, incarnation, counter, hlc, replica]...]] set
 * state = [2, root node]            (weft__doc_encode: the content)
 *       | [3, root node, vv]        (weft__doc_encode_full)
 * vv is the document's version vector, a map {replica -> max hlc} sorted by
 * replica (core/vv.h). Format 1 ([1, root], no ext, ever) and format 2
 * load with an empty vv.
 *
 * The encoding is canonical: every list is sorted and free of repeats, the
 * context is compacted, empty actors are left out, and entries already
 * dead by the thresholds (which only grow) are left out, so replicas that
 * applied the same ops write the same bytes whatever their order. */

static bool ext_present(const struct ext *x)
{
	return x && (!weft__stamp_is_zero(x->ctr) || !weft__stamp_is_zero(x->set));
}

static void ext_encode(const struct ext *x, const struct thr *t, struct mp_buf *out)
{
	uint32_t n;

	weft__mp_write_array(out, 11);
	write_stamp(out, x->ctr);
	write_stamp(out, x->ctr_claim);
	write_stamp(out, x->set);
	write_stamp(out, x->set_claim);
	n = 0;
	for (uint32_t i = 0; i < x->ncc; i++)
		n += x->cc[i].max > 0 || x->cc[i].ncloud > 0;
	weft__mp_write_array(out, n);
	for (uint32_t i = 0; i < x->ncc; i++) {
		const struct cc_actor *c = &x->cc[i];

		if (c->max == 0 && c->ncloud == 0)
			continue;
		weft__mp_write_array(out, 4);
		weft__mp_write_uint(out, c->replica);
		weft__mp_write_uint(out, c->inc);
		weft__mp_write_uint(out, c->max);
		weft__mp_write_array(out, c->ncloud);
		for (uint32_t j = 0; j < c->ncloud; j++)
			weft__mp_write_uint(out, c->cloud[j]);
	}
	n = 0;
	for (uint32_t i = 0; i < x->nce; i++)
		n += weft__stamp_cmp(x->ce[i].base, t->ctr) >= 0;
	weft__mp_write_array(out, n);
	for (uint32_t i = 0; i < x->nce; i++) {
		const struct ctr_entry *e = &x->ce[i];

		if (weft__stamp_cmp(e->base, t->ctr) < 0)
			continue;
		weft__mp_write_array(out, 6);
		weft__mp_write_uint(out, e->replica);
		weft__mp_write_uint(out, e->inc);
		write_stamp(out, e->base);
		weft__mp_write_uint(out, e->p);
		weft__mp_write_uint(out, e->n);
	}
	n = 0;
	for (uint32_t i = 0; i < x->nse; i++)
		n += weft__stamp_cmp(x->se[i].stamp, t->set) >= 0;
	weft__mp_write_array(out, n);
	for (uint32_t i = 0; i < x->nse; i++) {
		const struct set_entry *e = &x->se[i];

		if (weft__stamp_cmp(e->stamp, t->set) < 0)
			continue;
		weft__mp_write_array(out, 6);
		weft__mp_write_raw(out, e->elem, e->elem_len);
		weft__mp_write_uint(out, e->dot.replica);
		weft__mp_write_uint(out, e->dot.inc);
		weft__mp_write_uint(out, e->dot.ctr);
		write_stamp(out, e->stamp);
	}
}

static void node_encode(const struct node *n, struct weft_stamp ec_parent, struct mp_buf *out)
{
	bool ext = ext_present(n->ext);
	struct thr t;

	node_thr(n, ec_parent, &t);
	weft__mp_write_array(out, ext ? 10 : 9);
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
		node_encode(n->kids[i], t.kids, out);
	if (ext)
		ext_encode(n->ext, &t, out);
}

void weft__doc_encode(const struct weft_doc *d, struct mp_buf *out)
{
	weft__mp_write_array(out, 2);
	weft__mp_write_uint(out, 2);
	node_encode(&d->root, zero_stamp, out);
}

void weft__doc_encode_full(const struct weft_doc *d, struct mp_buf *out)
{
	weft__mp_write_array(out, 3);
	weft__mp_write_uint(out, 3);
	node_encode(&d->root, zero_stamp, out);
	weft__vv_encode(&d->vv, out);
}

const struct weft_vv *weft__doc_vv(const struct weft_doc *d)
{
	return &d->vv;
}

static int read_stamp(struct mp_reader *r, struct weft_stamp *s)
{
	if (weft__mp_read_uint(r, &s->hlc) != WEFT_OK ||
	    weft__mp_read_uint(r, &s->replica) != WEFT_OK)
		return WEFT_ECORRUPT;
	return WEFT_OK;
}

static int read_actor(struct mp_reader *r, uint64_t *replica, uint32_t *inc)
{
	uint64_t v;

	if (weft__mp_read_uint(r, replica) != WEFT_OK || weft__mp_read_uint(r, &v) != WEFT_OK ||
	    v == 0 || v > WEFT_MAX_INCARNATION)
		return WEFT_ECORRUPT;
	*inc = (uint32_t)v;
	return WEFT_OK;
}

/* Decodes the causal context into x (empty), checking it is canonical. */
static int cc_decode(const struct weft_alloc *a, struct ext *x, struct mp_reader *r)
{
	uint32_t n, m, len;

	if (weft__mp_read_array(r, &n) != WEFT_OK)
		return WEFT_ECORRUPT;
	if (n && !(x->cc = weft__zalloc(a, n * sizeof(*x->cc))))
		return WEFT_ENOMEM;
	x->cc_cap = n;
	for (uint32_t i = 0; i < n; i++) {
		struct cc_actor *c = &x->cc[i];

		if (weft__mp_read_array(r, &len) != WEFT_OK || len != 4 ||
		    read_actor(r, &c->replica, &c->inc) != WEFT_OK ||
		    weft__mp_read_uint(r, &c->max) != WEFT_OK ||
		    weft__mp_read_array(r, &m) != WEFT_OK)
			return WEFT_ECORRUPT;
		x->ncc++;
		if (i > 0 && actor_cmp(c[-1].replica, c[-1].inc, c->replica, c->inc) >= 0)
			return WEFT_ECORRUPT;
		if (c->max == 0 && m == 0)
			return WEFT_ECORRUPT;
		if (m && !(c->cloud = weft__malloc(a, m * sizeof(*c->cloud))))
			return WEFT_ENOMEM;
		c->cap = m;
		for (uint32_t j = 0; j < m; j++) {
			uint64_t v, prev = j ? c->cloud[j - 1] : c->max;

			/* Compacted: a gap after max, strictly increasing. */
			if (weft__mp_read_uint(r, &v) != WEFT_OK || prev >= UINT64_MAX - 1 ||
			    v <= prev + (j ? 0 : 1))
				return WEFT_ECORRUPT;
			c->cloud[c->ncloud++] = v;
		}
	}
	return WEFT_OK;
}

/* Decodes an ext (format 2) into n, checking it is canonical. */
static int ext_decode(const struct weft_alloc *a, struct node *n, struct mp_reader *r)
{
	struct ext *x;
	uint32_t len, m;
	int rc;

	if (!(x = n->ext = weft__zalloc(a, sizeof(*x))))
		return WEFT_ENOMEM;
	if (weft__mp_read_array(r, &len) != WEFT_OK || len != 11 ||
	    read_stamp(r, &x->ctr) != WEFT_OK || read_stamp(r, &x->ctr_claim) != WEFT_OK ||
	    read_stamp(r, &x->set) != WEFT_OK || read_stamp(r, &x->set_claim) != WEFT_OK)
		return WEFT_ECORRUPT;
	/* Claims are ops of their type; the type's stamp covers them. */
	if (!ext_present(x) || weft__stamp_cmp(x->ctr_claim, x->ctr) > 0 ||
	    weft__stamp_cmp(x->set_claim, x->set) > 0)
		return WEFT_ECORRUPT;
	if ((rc = cc_decode(a, x, r)) != WEFT_OK)
		return rc;
	if (weft__mp_read_array(r, &m) != WEFT_OK)
		return WEFT_ECORRUPT;
	if (m && !(x->ce = weft__malloc(a, m * sizeof(*x->ce))))
		return WEFT_ENOMEM;
	x->ce_cap = m;
	for (uint32_t i = 0; i < m; i++) {
		struct ctr_entry *e = &x->ce[i];

		if (weft__mp_read_array(r, &len) != WEFT_OK || len != 6 ||
		    read_actor(r, &e->replica, &e->inc) != WEFT_OK ||
		    read_stamp(r, &e->base) != WEFT_OK || weft__mp_read_uint(r, &e->p) != WEFT_OK ||
		    weft__mp_read_uint(r, &e->n) != WEFT_OK)
			return WEFT_ECORRUPT;
		x->nce++;
		if (i > 0 && ce_cmp(&e[-1], e->replica, e->inc, e->base) >= 0)
			return WEFT_ECORRUPT;
	}
	if (m && weft__stamp_is_zero(x->ctr))
		return WEFT_ECORRUPT;
	if (weft__mp_read_array(r, &m) != WEFT_OK)
		return WEFT_ECORRUPT;
	if (m && !(x->se = weft__zalloc(a, m * sizeof(*x->se))))
		return WEFT_ENOMEM;
	x->se_cap = m;
	for (uint32_t i = 0; i < m; i++) {
		struct set_entry *e = &x->se[i];
		const uint8_t *raw;
		size_t raw_len;

		if (weft__mp_read_array(r, &len) != WEFT_OK || len != 6 ||
		    weft__op_elem_read(r, &raw, &raw_len) != WEFT_OK ||
		    read_actor(r, &e->dot.replica, &e->dot.inc) != WEFT_OK ||
		    weft__mp_read_uint(r, &e->dot.ctr) != WEFT_OK || e->dot.ctr == 0 ||
		    read_stamp(r, &e->stamp) != WEFT_OK || weft__stamp_is_zero(e->stamp))
			return WEFT_ECORRUPT;
		if (!(e->elem = weft__malloc(a, raw_len)))
			return WEFT_ENOMEM;
		memcpy(e->elem, raw, raw_len);
		e->elem_len = (uint32_t)raw_len;
		x->nse++;
		if (i > 0 && se_cmp(&e[-1], e->elem, e->elem_len, &e->dot) >= 0)
			return WEFT_ECORRUPT;
		if (!cc_has(x, &e->dot))
			return WEFT_ECORRUPT; /* an entry's dot is always in the context */
	}
	if ((m || x->ncc) && weft__stamp_is_zero(x->set))
		return WEFT_ECORRUPT;
	return WEFT_OK;
}

/* Decodes a node into n (zeroed by the caller). Keys must arrive sorted
 * and unique, as node_encode writes them. */
static int node_decode(const struct weft_alloc *a, struct node *n, struct mp_reader *r, int depth,
                       bool root, uint64_t ver)
{
	uint32_t len, nkids;
	enum mp_type t;
	const uint8_t *raw;
	size_t raw_len;
	int rc;

	if (depth > WEFT_MAX_DEPTH + 1)
		return WEFT_ECORRUPT;
	if (weft__mp_read_array(r, &len) != WEFT_OK || (len != 9 && (ver < 2 || len != 10)))
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
		if ((rc = node_decode(a, k, r, depth + 1, false, ver)) != WEFT_OK)
			return rc;
		if (i > 0 &&
		    key_cmp(n->kids[i - 1]->key, n->kids[i - 1]->key_len, k->key, k->key_len) >= 0)
			return WEFT_ECORRUPT;
	}
	if (len == 10) {
		if (root)
			return WEFT_ECORRUPT; /* the root is always an object */
		return ext_decode(a, n, r);
	}
	return WEFT_OK;
}

/* Decodes a whole state into root (zeroed by the caller) and vv (empty).
 * On error the caller frees both. Errors: WEFT_ECORRUPT, WEFT_ENOMEM. */
static int state_decode(const struct weft_alloc *a, const void *state, size_t len,
                        struct node *root, struct weft_vv *vv)
{
	struct mp_reader r;
	uint32_t n;
	uint64_t ver;
	int rc;

	weft__mp_reader_init(&r, state, len);
	if (weft__mp_read_array(&r, &n) != WEFT_OK || weft__mp_read_uint(&r, &ver) != WEFT_OK ||
	    ver < 1 || ver > 3 || n != (ver < 3 ? 2 : 3))
		return WEFT_ECORRUPT;
	if ((rc = node_decode(a, root, &r, 0, true, ver)) != WEFT_OK)
		return rc;
	if (ver >= 3 && (rc = weft__vv_decode(a, &r, vv)) != WEFT_OK)
		return rc == WEFT_ENOMEM ? rc : WEFT_ECORRUPT;
	if (weft__mp_reader_left(&r) != 0)
		return WEFT_ECORRUPT;
	return WEFT_OK;
}

int weft__docset_load(struct weft_docset *ds, const char *coll, size_t coll_len, const char *id,
                      size_t id_len, const void *state, size_t len)
{
	const struct weft_alloc *a = ds->alloc;
	struct node root;
	struct weft_vv vv;
	struct weft_doc *d;
	int rc;

	if (coll_len == 0 || id_len == 0 || coll_len > WEFT_MAX_COLLECTION || id_len > WEFT_MAX_ID)
		return WEFT_ECORRUPT;
	memset(&root, 0, sizeof(root));
	weft__vv_init(&vv);
	if ((rc = state_decode(a, state, len, &root, &vv)) != WEFT_OK)
		goto out_free_root;
	d = weft__docset_find(ds, coll, coll_len, id, id_len);
	if (!d && (rc = docset_insert(ds, coll, coll_len, id, id_len, &d)) != WEFT_OK)
		goto out_free_root;
	node_free_contents(a, &d->root);
	weft__vv_free(a, &d->vv);
	d->root = root;
	d->vv = vv;
	return WEFT_OK;

out_free_root:
	node_free_contents(a, &root);
	weft__vv_free(a, &vv);
	return rc;
}

/* ---- joining states (peer-to-peer import) ----
 *
 * join(A, B) is the least upper bound of two states, component by
 * component, the same lattice ops live in:
 *   leaf            the larger stamp with its value (on equal stamps the
 *                   larger value bytes, so even a peer that reused a stamp
 *                   cannot make the join order-dependent);
 *   obj, clear, ctr, ctr_claim, set, set_claim        max;
 *   counter entries      union, max of P and of N per key;
 *   set entries          an entry survives if the other side holds it too
 *                        or has not seen its dot; contexts unite;
 *   children             union by key, joined recursively;
 *   version vector       pointwise max.
 * Each is commutative, associative and idempotent, so the join is, and
 * joining the state of a replica that applied ops S into one that applied
 * T gives the state of S u T applied: the encoding (which leaves out
 * entries dead by the thresholds, themselves maxima) is the same bytes.
 *
 * The join works on private trees (src is consumed: its nodes, values and
 * entries move into dst) and is only swapped into the docset once every
 * document of a change set has joined, so a failure changes nothing. */

/* Set entries: the OR-set rule against the other side's context (before
 * the contexts unite). Entries moved from src are taken out of it. */
static int se_join(const struct weft_alloc *a, struct ext *dx, struct ext *sx)
{
	struct set_entry *out;
	uint32_t i = 0, j = 0, k = 0;
	size_t n = (size_t)dx->nse + sx->nse;

	if (n == 0)
		return WEFT_OK;
	if (n > UINT32_MAX || !(out = weft__malloc(a, n * sizeof(*out))))
		return WEFT_ENOMEM;
	while (i < dx->nse || j < sx->nse) {
		int c = i == dx->nse   ? 1
		        : j == sx->nse ? -1
		                       : se_cmp(&dx->se[i], sx->se[j].elem, sx->se[j].elem_len,
		                                &sx->se[j].dot);

		if (c == 0) {
			out[k] = dx->se[i++];
			out[k].stamp = weft__stamp_max(out[k].stamp, sx->se[j].stamp);
			k++;
			j++;
		} else if (c < 0) {
			if (!cc_has(sx, &dx->se[i].dot))
				out[k++] = dx->se[i];
			else
				weft__free(a, dx->se[i].elem);
			dx->se[i++].elem = NULL;
		} else {
			if (!cc_has(dx, &sx->se[j].dot)) {
				out[k++] = sx->se[j];
				sx->se[j].elem = NULL; /* moved */
			}
			j++;
		}
	}
	weft__free(a, dx->se);
	dx->se = out;
	dx->nse = k;
	dx->se_cap = (uint32_t)n;
	return WEFT_OK;
}

/* Counter entries: union, pointwise max of the totals. */
static int ce_join(const struct weft_alloc *a, struct ext *dx, const struct ext *sx)
{
	struct ctr_entry *out;
	uint32_t i = 0, j = 0, k = 0;
	size_t n = (size_t)dx->nce + sx->nce;

	if (sx->nce == 0)
		return WEFT_OK;
	if (n > UINT32_MAX || !(out = weft__malloc(a, n * sizeof(*out))))
		return WEFT_ENOMEM;
	while (i < dx->nce || j < sx->nce) {
		int c = i == dx->nce ? 1
		        : j == sx->nce
		            ? -1
		            : ce_cmp(&dx->ce[i], sx->ce[j].replica, sx->ce[j].inc, sx->ce[j].base);

		if (c == 0) {
			out[k] = dx->ce[i++];
			if (sx->ce[j].p > out[k].p)
				out[k].p = sx->ce[j].p;
			if (sx->ce[j].n > out[k].n)
				out[k].n = sx->ce[j].n;
			j++;
		} else if (c < 0) {
			out[k] = dx->ce[i++];
		} else {
			out[k] = sx->ce[j++];
		}
		k++;
	}
	weft__free(a, dx->ce);
	dx->ce = out;
	dx->nce = k;
	dx->ce_cap = (uint32_t)n;
	return WEFT_OK;
}

/* The union of two actors' dots into c (which holds d's dots): max of the
 * maxima, clouds merged above it, then compacted. */
static int actor_join(const struct weft_alloc *a, struct cc_actor *c, const struct cc_actor *s)
{
	uint64_t *cloud = NULL;
	uint32_t i = 0, j = 0, k = 0, drop = 0;
	size_t n = (size_t)c->ncloud + s->ncloud;

	if (s->max > c->max)
		c->max = s->max;
	if (n > UINT32_MAX)
		return WEFT_ENOMEM;
	if (n && !(cloud = weft__malloc(a, n * sizeof(*cloud))))
		return WEFT_ENOMEM;
	while (i < c->ncloud || j < s->ncloud) {
		uint64_t v;

		if (j == s->ncloud || (i < c->ncloud && c->cloud[i] < s->cloud[j]))
			v = c->cloud[i++];
		else if (i == c->ncloud || s->cloud[j] < c->cloud[i])
			v = s->cloud[j++];
		else
			v = c->cloud[i++], j++;
		if (v > c->max)
			cloud[k++] = v;
	}
	while (drop < k && cloud[drop] == c->max + 1) {
		c->max++;
		drop++;
	}
	if (drop)
		memmove(cloud, cloud + drop, (k - drop) * sizeof(*cloud));
	weft__free(a, c->cloud);
	c->cloud = cloud;
	c->ncloud = k - drop;
	c->cap = (uint32_t)n;
	return WEFT_OK;
}

/* Causal contexts: union per actor. Clouds of actors only src has move. */
static int cc_join(const struct weft_alloc *a, struct ext *dx, struct ext *sx)
{
	struct cc_actor *out;
	uint32_t i = 0, j = 0, k = 0;
	size_t n = (size_t)dx->ncc + sx->ncc;
	int rc;

	if (sx->ncc == 0)
		return WEFT_OK;
	if (n > UINT32_MAX || !(out = weft__zalloc(a, n * sizeof(*out))))
		return WEFT_ENOMEM;
	while (i < dx->ncc || j < sx->ncc) {
		int c = i == dx->ncc   ? 1
		        : j == sx->ncc ? -1
		                       : actor_cmp(dx->cc[i].replica, dx->cc[i].inc,
		                                   sx->cc[j].replica, sx->cc[j].inc);
		struct cc_actor *from = c <= 0 ? &dx->cc[i] : &sx->cc[j];

		out[k] = *from;
		from->cloud = NULL; /* moved */
		from->ncloud = from->cap = 0;
		if (c == 0 && (rc = actor_join(a, &out[k], &sx->cc[j])) != WEFT_OK) {
			for (uint32_t q = 0; q <= k; q++)
				weft__free(a, out[q].cloud);
			weft__free(a, out);
			return rc;
		}
		i += c <= 0;
		j += c >= 0;
		k++;
	}
	weft__free(a, dx->cc); /* every cloud moved out */
	dx->cc = out;
	dx->ncc = k;
	dx->cc_cap = (uint32_t)n;
	return WEFT_OK;
}

static int ext_join(const struct weft_alloc *a, struct node *dst, struct node *src)
{
	struct ext *dx = dst->ext, *sx = src->ext;
	int rc;

	if (!sx)
		return WEFT_OK;
	if (!dx) {
		dst->ext = sx;
		src->ext = NULL;
		return WEFT_OK;
	}
	/* Entries first: the rule reads both contexts as they were. */
	if ((rc = se_join(a, dx, sx)) != WEFT_OK || (rc = ce_join(a, dx, sx)) != WEFT_OK ||
	    (rc = cc_join(a, dx, sx)) != WEFT_OK)
		return rc;
	dx->ctr = weft__stamp_max(dx->ctr, sx->ctr);
	dx->ctr_claim = weft__stamp_max(dx->ctr_claim, sx->ctr_claim);
	dx->set = weft__stamp_max(dx->set, sx->set);
	dx->set_claim = weft__stamp_max(dx->set_claim, sx->set_claim);
	return WEFT_OK;
}

/* Joins src into dst (both private trees; src is consumed). On error both
 * stay well-formed for node_free_contents, in some partial state. */
static int node_join(const struct weft_alloc *a, struct node *dst, struct node *src)
{
	int c = weft__stamp_cmp(src->leaf, dst->leaf);
	uint32_t extra = 0, i = 0, j = 0, k = 0;
	int rc;

	if (c == 0 && !weft__stamp_is_zero(src->leaf))
		c = key_cmp((const char *)src->val, src->val_len, (const char *)dst->val,
		            dst->val_len);
	if (c > 0) {
		uint8_t *v = dst->val;

		dst->val = src->val;
		dst->val_len = src->val_len;
		dst->leaf = src->leaf;
		src->val = v;
	}
	dst->obj = weft__stamp_max(dst->obj, src->obj);
	dst->clear = weft__stamp_max(dst->clear, src->clear);
	if ((rc = ext_join(a, dst, src)) != WEFT_OK)
		return rc;

	/* Children present on both sides join in place; then the others move
	 * over in one merge of the two sorted lists. */
	for (j = 0; j < src->nkids; j++) {
		bool found;
		uint32_t at = kid_search(dst, src->kids[j]->key, src->kids[j]->key_len, &found);

		if (!found)
			extra++;
		else if ((rc = node_join(a, dst->kids[at], src->kids[j])) != WEFT_OK)
			return rc;
	}
	if (extra) {
		size_t n = (size_t)dst->nkids + extra;
		struct node **kids;
		uint32_t left = 0;

		if (n > UINT32_MAX || !(kids = weft__malloc(a, n * sizeof(*kids))))
			return WEFT_ENOMEM;
		for (i = 0, j = 0; i < dst->nkids || j < src->nkids;) {
			int kc = i == dst->nkids ? 1
			         : j == src->nkids
			             ? -1
			             : key_cmp(dst->kids[i]->key, dst->kids[i]->key_len,
			                       src->kids[j]->key, src->kids[j]->key_len);

			if (kc <= 0) {
				kids[k++] = dst->kids[i++];
				if (kc == 0)
					src->kids[left++] = src->kids[j++]; /* joined; stays */
			} else {
				kids[k++] = src->kids[j++]; /* moved */
			}
		}
		src->nkids = left;
		weft__free(a, dst->kids);
		dst->kids = kids;
		dst->nkids = k;
		dst->cap = (uint32_t)n;
	}
	return WEFT_OK;
}

struct weft_staged {
	struct weft_doc *doc;   /* the local document it replaces, or NULL */
	struct weft_doc *fresh; /* NULL, or a new unlinked document to add */
	struct node root;       /* the joined tree (when changed) */
	struct weft_vv vv;      /* the joined version vector (when changed) */
	bool changed;           /* the join differs from the local state */
	uint64_t in_max;        /* largest HLC in the incoming vector */
};

void weft__staged_free(struct weft_docset *ds, struct weft_staged *s)
{
	if (!s)
		return;
	node_free_contents(ds->alloc, &s->root);
	weft__vv_free(ds->alloc, &s->vv);
	if (s->fresh)
		doc_free(ds->alloc, s->fresh);
	weft__free(ds->alloc, s);
}

bool weft__staged_changed(const struct weft_staged *s)
{
	return s->changed;
}

uint64_t weft__staged_max_hlc(const struct weft_staged *s)
{
	return s->in_max;
}

int weft__docset_stage_state(struct weft_docset *ds, const char *coll, size_t coll_len,
                             const char *id, size_t id_len, const void *state, size_t len,
                             struct weft_staged **out)
{
	const struct weft_alloc *a = ds->alloc;
	struct weft_staged *s;
	struct mp_buf local, joined;
	struct node in;
	struct weft_vv in_vv;
	int rc;

	if (coll_len == 0 || id_len == 0 || coll_len > WEFT_MAX_COLLECTION || id_len > WEFT_MAX_ID)
		return WEFT_ECORRUPT;
	if (!(s = weft__zalloc(a, sizeof(*s))))
		return WEFT_ENOMEM;
	memset(&in, 0, sizeof(in));
	weft__vv_init(&in_vv);
	weft__vv_init(&s->vv);
	weft__mp_buf_init(&local, a, 0);
	weft__mp_buf_init(&joined, a, 0);
	s->doc = weft__docset_find(ds, coll, coll_len, id, id_len);
	if (s->doc) {
		weft__doc_encode_full(s->doc, &local);
		if ((rc = local.err) != WEFT_OK)
			goto out_free;
		/* Nothing new (a repeated import): no decode, no join. */
		if (local.len == len && memcmp(local.data, state, len) == 0)
			goto out_ok;
	}
	if ((rc = state_decode(a, state, len, &in, &in_vv)) != WEFT_OK)
		goto out_free;
	s->in_max = weft__vv_max_hlc(&in_vv);
	if (!s->doc) {
		if ((rc = doc_new(a, coll, coll_len, id, id_len, &s->fresh)) != WEFT_OK)
			goto out_free;
		s->root = in;
		s->vv = in_vv;
		memset(&in, 0, sizeof(in));
		weft__vv_init(&in_vv);
		s->changed = true;
		goto out_ok;
	}
	/* A private copy of the local document (decoding its canonical bytes
	 * also leaves out its dead entries), then the join into it. */
	if ((rc = state_decode(a, local.data, local.len, &s->root, &s->vv)) != WEFT_OK)
		goto out_free;
	if ((rc = node_join(a, &s->root, &in)) != WEFT_OK ||
	    (rc = weft__vv_join(a, &s->vv, &in_vv)) != WEFT_OK)
		goto out_free;
	weft__mp_write_array(&joined, 3);
	weft__mp_write_uint(&joined, 3);
	node_encode(&s->root, zero_stamp, &joined);
	weft__vv_encode(&s->vv, &joined);
	if ((rc = joined.err) != WEFT_OK)
		goto out_free;
	s->changed = joined.len != local.len || memcmp(joined.data, local.data, local.len) != 0;
out_ok:
	*out = s;
	s = NULL;
	rc = WEFT_OK;
out_free:
	weft__staged_free(ds, s);
	node_free_contents(a, &in);
	weft__vv_free(a, &in_vv);
	weft__mp_buf_free(&local);
	weft__mp_buf_free(&joined);
	return rc;
}

struct weft_doc *weft__docset_commit_staged(struct weft_docset *ds, struct weft_staged *s)
{
	struct weft_doc *d = s->doc;

	if (s->fresh) {
		d = s->fresh;
		s->fresh = NULL;
		docset_link(ds, d);
	}
	if (s->changed) {
		node_free_contents(ds->alloc, &d->root);
		weft__vv_free(ds->alloc, &d->vv);
		d->root = s->root;
		d->vv = s->vv;
		memset(&s->root, 0, sizeof(s->root));
		weft__vv_init(&s->vv);
	}
	weft__staged_free(ds, s);
	return d;
}

int weft__docset_merge_state(struct weft_docset *ds, const char *coll, size_t coll_len,
                             const char *id, size_t id_len, const void *state, size_t len,
                             bool *changed, struct weft_doc **doc_out)
{
	struct weft_staged *s;
	struct weft_doc *d;
	int rc = weft__docset_stage_state(ds, coll, coll_len, id, id_len, state, len, &s);

	if (rc != WEFT_OK)
		return rc;
	if (changed)
		*changed = s->changed;
	d = weft__docset_commit_staged(ds, s);
	if (doc_out)
		*doc_out = d;
	return WEFT_OK;
}

int weft__docset_vv(struct weft_docset *ds, struct weft_vv *out)
{
	int rc = WEFT_OK;

	weft__vv_init(out);
	for (size_t i = 0; i < ds->nbuckets && rc == WEFT_OK; i++)
		for (struct weft_doc *d = ds->buckets[i]; d && rc == WEFT_OK; d = d->next)
			rc = weft__vv_join(ds->alloc, out, &d->vv);
	if (rc != WEFT_OK)
		weft__vv_free(ds->alloc, out);
	return rc;
}
