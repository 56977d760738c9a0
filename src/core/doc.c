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
 * Counters, add-wins sets and texts (docs/DATA-MODEL.md, "Counters", "Sets",
 * "Text") live in an extension allocated only for nodes that received
 * INCR/SADD/SREM/TEXT ops
 * (plain nodes pay one NULL pointer). Its parts merge by joins too:
 *   ctr, ctr_claim, set, set_claim   stamps, by max;
 *   counter entries                  (replica, incarnation, base) -> (P, N),
 *                                    pointwise max;
 *   set entries + causal context     a dot store: entries keyed by unique
 *                                    dots, context by union; an entry
 *                                    survives unless the other side saw its
 *                                    dot without it.
 *   txt, txt_claim                   stamps, by max;
 *   (text base, text)                lexicographic: the larger base wins
 *                                    (the other missed a reset), equal
 *                                    bases merge their texts (core/text.h,
 *                                    itself commutative, associative and
 *                                    idempotent).
 * Each is a join-semilattice, so apply stays commutative, associative and
 * idempotent. A claim (an op that makes the path its type) kills older
 * data at the node except its own type's; a node shows as the live
 * component (leaf, obj, counter, set) with the largest stamp, where
 * liveness uses the thresholds of node_thr, which only grow. Entries that
 * fall below a threshold are dead for good, so leaving them out of the
 * encoding (and not storing them on insert) keeps it canonical: replicas
 * that applied the same ops encode the same bytes, except inside texts,
 * whose encoding follows the order their ops were applied in (same
 * content, possibly different bytes; DATA-MODEL.md, "Text").
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
#include "core/doc_internal.h"
#include "core/json.h"

/* ---- stamps and visibility ---- */

void weft__doc_node_thr(const struct node *n, struct weft_stamp ec_parent, struct thr *t)
{
	struct weft_stamp ec = weft__stamp_max(ec_parent, n->clear);

	t->kids = t->ctr = t->set = t->txt = ec;
	if (n->ext) {
		const struct ext *x = n->ext;

		t->ctr = weft__stamp_max(weft__stamp_max(ec, x->set_claim), x->txt_claim);
		t->set = weft__stamp_max(weft__stamp_max(ec, x->ctr_claim), x->txt_claim);
		t->txt = weft__stamp_max(weft__stamp_max(ec, x->ctr_claim), x->set_claim);
		t->kids = weft__stamp_max(t->ctr, x->ctr_claim);
	}
}

/* Whether the node's text instance is live: it exists and was started at
 * or above the text threshold (an older one missed a reset). */
bool weft__doc_text_live(const struct ext *x, const struct thr *t)
{
	return x && x->text && weft__stamp_cmp(x->tbase, t->txt) >= 0;
}

bool weft__doc_live(struct weft_stamp s, struct weft_stamp thr)
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
	struct weft_stamp bs = weft__doc_zero_stamp;

	weft__doc_node_thr(n, ec_parent, &th);
	if (t)
		*t = th;
	if (weft__doc_live(n->obj, th.kids)) {
		best = SHOWN_OBJECT;
		bs = n->obj;
	}
	if (weft__doc_live(n->leaf, th.kids) &&
	    (best == SHOWN_ABSENT || weft__stamp_cmp(n->leaf, bs) > 0)) {
		best = SHOWN_LEAF;
		bs = n->leaf;
	}
	if (n->ext && weft__doc_live(n->ext->ctr, th.ctr) &&
	    (best == SHOWN_ABSENT || weft__stamp_cmp(n->ext->ctr, bs) > 0)) {
		best = SHOWN_COUNTER;
		bs = n->ext->ctr;
	}
	if (n->ext && weft__doc_live(n->ext->set, th.set) &&
	    (best == SHOWN_ABSENT || weft__stamp_cmp(n->ext->set, bs) > 0)) {
		best = SHOWN_SET;
		bs = n->ext->set;
	}
	if (n->ext && weft__doc_live(n->ext->txt, th.txt) &&
	    (best == SHOWN_ABSENT || weft__stamp_cmp(n->ext->txt, bs) > 0))
		best = SHOWN_TEXT;
	return best;
}

bool weft__doc_visible(const struct weft_doc *d)
{
	return node_shown(&d->root, weft__doc_zero_stamp, NULL) == SHOWN_OBJECT;
}

/* ---- nodes ---- */

int weft__doc_key_cmp(const char *a, size_t alen, const char *b, size_t blen)
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
	weft__text_free(x->text);
	weft__free(a, x);
}

void weft__doc_node_free_contents(const struct weft_alloc *a, struct node *n)
{
	ext_free(a, n->ext);
	for (uint32_t i = 0; i < n->nkids; i++) {
		weft__doc_node_free_contents(a, n->kids[i]);
		weft__free(a, n->kids[i]);
	}
	weft__free(a, n->kids);
	weft__free(a, n->val);
	weft__free(a, n->key);
}

/* Binary search for key among n's children: returns the index where it is
 * or would be inserted, and sets *found. */
uint32_t weft__doc_kid_search(const struct node *n, const char *key, size_t len, bool *found)
{
	uint32_t lo = 0, hi = n->nkids;

	while (lo < hi) {
		uint32_t mid = lo + (hi - lo) / 2;
		int c = weft__doc_key_cmp(n->kids[mid]->key, n->kids[mid]->key_len, key, len);

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
	uint32_t i = weft__doc_kid_search(n, key, len, &found);
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

void weft__doc_write_stamp(struct mp_buf *out, struct weft_stamp s)
{
	weft__mp_write_uint(out, s.hlc);
	weft__mp_write_uint(out, s.replica);
}

/* Makes room for `need` elements in *arr (cap *cap). */
int weft__doc_grow(const struct weft_alloc *a, void **arr, uint32_t *cap, uint32_t need,
                   size_t size)
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

int weft__doc_ce_cmp(const struct ctr_entry *e, uint64_t replica, uint32_t inc,
                     struct weft_stamp base)
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
		int c = weft__doc_ce_cmp(&x->ce[mid], replica, inc, base);

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
		if ((rc = weft__doc_grow(a, (void **)&x->ce, &x->ce_cap, x->nce + 1,
		                         sizeof(*x->ce))) != WEFT_OK)
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

int weft__doc_actor_cmp(uint64_t ar, uint32_t ai, uint64_t br, uint32_t bi)
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
		int c = weft__doc_actor_cmp(x->cc[mid].replica, x->cc[mid].inc, replica, inc);

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

bool weft__doc_cc_has(const struct ext *x, const struct weft_dot *d)
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
		if ((rc = weft__doc_grow(a, (void **)&x->cc, &x->cc_cap, x->ncc + 1,
		                         sizeof(*x->cc))) != WEFT_OK)
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
		if ((rc = weft__doc_grow(a, (void **)&c->cloud, &c->cap, c->ncloud + 1,
		                         sizeof(*c->cloud))) != WEFT_OK)
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

int weft__doc_se_cmp(const struct set_entry *e, const uint8_t *elem, size_t len,
                     const struct weft_dot *d)
{
	int c = weft__doc_key_cmp((const char *)e->elem, e->elem_len, (const char *)elem, len);

	return c ? c : weft__dot_cmp(&e->dot, d);
}

static uint32_t se_search(const struct ext *x, const uint8_t *elem, size_t len,
                          const struct weft_dot *d, bool *found)
{
	uint32_t lo = 0, hi = x->nse;

	*found = false;
	while (lo < hi) {
		uint32_t mid = lo + (hi - lo) / 2;
		int c = weft__doc_se_cmp(&x->se[mid], elem, len, d);

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
	weft__doc_node_thr(n, ec_parent, &t);
	if (!weft__doc_cc_has(x, &d) && weft__stamp_cmp(s, t.set) >= 0) {
		bool found;
		uint32_t i = se_search(x, v.elem, v.elem_len, &d, &found);

		if (!found) {
			uint8_t *copy;

			if ((rc = weft__doc_grow(a, (void **)&x->se, &x->se_cap, x->nse + 1,
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

	weft__doc_node_thr(n, ec_parent, &t);
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
	if (x->text && !weft__doc_text_live(x, &t)) {
		weft__text_free(x->text);
		x->text = NULL;
		x->tbase = weft__doc_zero_stamp;
	}
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

void weft__doc_destroy(const struct weft_alloc *a, struct weft_doc *d)
{
	weft__doc_node_free_contents(a, &d->root);
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
			weft__doc_destroy(ds->alloc, d);
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
int weft__doc_create(const struct weft_alloc *a, const char *coll, size_t coll_len, const char *id,
                     size_t id_len, struct weft_doc **out)
{
	struct weft_doc *d;

	d = weft__zalloc(a, sizeof(*d));
	if (!d)
		return WEFT_ENOMEM;
	d->coll = weft__strndup(a, coll, coll_len);
	d->id = weft__strndup(a, id, id_len);
	if (!d->coll || !d->id) {
		weft__doc_destroy(a, d);
		return WEFT_ENOMEM;
	}
	d->coll_len = (uint32_t)coll_len;
	d->id_len = (uint32_t)id_len;
	d->hash = key_hash(coll, coll_len, id, id_len);
	*out = d;
	return WEFT_OK;
}

/* Links a document from doc_new into the table. Cannot fail. */
void weft__docset_link(struct weft_docset *ds, struct weft_doc *d)
{
	size_t b;

	if (ds->count >= ds->nbuckets)
		docset_grow(ds);
	b = d->hash & (ds->nbuckets - 1);
	d->next = ds->buckets[b];
	ds->buckets[b] = d;
	ds->count++;
}

int weft__docset_insert(struct weft_docset *ds, const char *coll, size_t coll_len, const char *id,
                        size_t id_len, struct weft_doc **out)
{
	int rc = weft__doc_create(ds->alloc, coll, coll_len, id, id_len, out);

	if (rc == WEFT_OK)
		weft__docset_link(ds, *out);
	return rc;
}

/* ---- apply ---- */

static const struct node *node_lookup(struct weft_docset *ds, const char *coll, size_t coll_len,
                                      const char *id, size_t id_len, const uint8_t *path,
                                      size_t path_len, struct thr *t, struct weft_stamp *ec_parent);

void weft__docset_set_agent(struct weft_docset *ds, uint64_t replica, uint32_t incarnation)
{
	ds->agent_replica = replica;
	ds->agent_inc = incarnation;
}

/* Whether the text's version (how many ops of each agent it holds) is
 * still `ver`, into *same. Errors: WEFT_ENOMEM. */
static int text_version_is(const struct weft_alloc *a, struct weft_text *t,
                           const struct mp_buf *ver, bool *same)
{
	struct mp_buf now;
	int rc;

	weft__mp_buf_init(&now, a, 0);
	weft__text_version(t, &now);
	rc = now.err;
	*same = now.len == ver->len && memcmp(now.data, ver->data, now.len) == 0;
	weft__mp_buf_free(&now);
	return rc;
}

/*
 * TEXT, first step, before anything else of the document changes: the
 * update goes into the text instance of the op's base (DATA-MODEL.md,
 * "Text"). An op whose base is below the text threshold or below the base
 * of the instance held missed a reset: its text is dead for good and only
 * its stamps count. An op of the instance's base applies to it in place;
 * an op of a newer base starts a new instance (*fresh), which the second
 * step installs in place of the old one. The update is applied with the
 * op's writer (replica, incarnation) as the agent of a compact update
 * (ops written by this version); a self-contained one (earlier versions)
 * names its agents itself. An empty update (an edit that
 * inserted or deleted nothing) holds no ops: it only claims the path. So
 * an update that
 * weft__text_apply refuses (WEFT_EPROTO) changes nothing else; see the
 * caveats of weft__text_apply for what it may have applied in place.
 */
static int text_prepare(struct weft_docset *ds, const struct weft_op *op,
                        const struct weft_textop *v, struct weft_text **fresh, bool *changed)
{
	const struct weft_alloc *a = ds->alloc;
	struct weft_stamp ec;
	struct thr t;
	const struct node *n = node_lookup(ds, op->coll, op->coll_len, op->id, op->id_len, op->path,
	                                   op->path_len, &t, &ec);
	struct ext *x = n ? n->ext : NULL;
	int c = x && x->text ? weft__stamp_cmp(v->base, x->tbase) : 1;
	struct mp_buf ver;
	int rc;

	*fresh = NULL;
	if (weft__stamp_cmp(v->base, t.txt) < 0 || c < 0)
		return WEFT_OK; /* dead: it missed a reset */
	if (c == 0) {
		bool same = true;

		weft__mp_buf_init(&ver, a, 0);
		weft__text_version(x->text, &ver);
		rc = ver.err;
		if (rc == WEFT_OK && v->update_len > 0)
			rc = weft__text_apply_from(x->text, op->replica, op->incarnation, v->update,
			                           v->update_len);
		if (rc == WEFT_OK)
			rc = text_version_is(a, x->text, &ver, &same);
		if (!same)
			*changed = true;
		weft__mp_buf_free(&ver);
		return rc == WEFT_EINVAL ? WEFT_EPROTO : rc;
	}
	if ((rc = weft__text_new(a, ds->agent_replica, ds->agent_inc, fresh)) != WEFT_OK)
		return rc;
	if (v->update_len > 0 &&
	    (rc = weft__text_apply_from(*fresh, op->replica, op->incarnation, v->update,
	                                v->update_len)) != WEFT_OK) {
		weft__text_free(*fresh);
		*fresh = NULL;
		return rc == WEFT_EINVAL ? WEFT_EPROTO : rc;
	}
	*changed = true;
	return WEFT_OK;
}

/* TEXT, second step, at the target node: installs a new instance and
 * bumps the stamps. Cannot fail once the extension exists. */
static int apply_text(const struct weft_alloc *a, struct node *n, const struct weft_textop *v,
                      struct weft_text **fresh, struct weft_stamp s, bool *changed)
{
	struct ext *x;
	int rc;

	if ((rc = ext_get(a, n, &x)) != WEFT_OK)
		return rc;
	if (*fresh) {
		weft__text_free(x->text);
		x->text = *fresh;
		x->tbase = v->base;
		*fresh = NULL;
		*changed = true;
	}
	bump(&x->txt, s, changed);
	if (v->claim)
		bump(&x->txt_claim, s, changed);
	return WEFT_OK;
}

int weft__docset_apply(struct weft_docset *ds, const struct weft_op *op,
                       enum weft_doc_change *change, struct weft_doc **doc_out)
{
	const struct weft_alloc *a = ds->alloc;
	struct weft_stamp s = weft__op_stamp(op);
	struct weft_doc *d;
	struct node *n;
	struct mp_reader r;
	struct weft_stamp ec = weft__doc_zero_stamp;
	struct weft_textop tv;
	struct weft_text *fresh = NULL;
	uint32_t plen;
	bool was = false, changed = false;
	int rc;

	if (op->kind == WEFT_OP_TEXT) {
		if (op->path_len == 0 ||
		    weft__op_text_parse(op->value, op->value_len, &tv) != WEFT_OK)
			return WEFT_EPROTO;
		d = weft__docset_find(ds, op->coll, op->coll_len, op->id, op->id_len);
		was = d && weft__doc_visible(d);
		if ((rc = text_prepare(ds, op, &tv, &fresh, &changed)) != WEFT_OK)
			return rc;
	}
	d = weft__docset_find(ds, op->coll, op->coll_len, op->id, op->id_len);
	if (!d) {
		if ((rc = weft__docset_insert(ds, op->coll, op->coll_len, op->id, op->id_len,
		                              &d)) != WEFT_OK)
			goto out;
	} else if (op->kind != WEFT_OP_TEXT) {
		was = weft__doc_visible(d);
	}

	/* Walk the path. A write (not a delete) at or below a node makes every
	 * node on the way an object as of s. */
	n = &d->root;
	weft__mp_reader_init(&r, op->path, op->path_len);
	if (op->path_len == 0)
		plen = 0;
	else if ((rc = weft__mp_read_array(&r, &plen)) != WEFT_OK)
		goto out;
	for (uint32_t i = 0; i < plen; i++) {
		const char *k;
		size_t klen;

		struct thr t;

		if (op->kind != WEFT_OP_DELETE)
			bump(&n->obj, s, &changed);
		weft__doc_node_thr(n, ec, &t);
		ec = t.kids;
		if ((rc = weft__mp_read_str(&r, &k, &klen)) != WEFT_OK)
			goto out;
		if ((rc = kid_get(a, n, k, klen, &n)) != WEFT_OK)
			goto out;
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
			goto out;
		break;
	case WEFT_OP_INCR:
	case WEFT_OP_SADD:
	case WEFT_OP_SREM:
	case WEFT_OP_TEXT:
		if (plen == 0) {
			rc = WEFT_EPROTO;
			goto out;
		}
		if (op->kind == WEFT_OP_INCR)
			rc = apply_incr(a, n, op, s, &changed);
		else if (op->kind == WEFT_OP_SADD)
			rc = apply_sadd(a, n, op, s, ec, &changed);
		else if (op->kind == WEFT_OP_SREM)
			rc = apply_srem(a, n, op, s, &changed);
		else
			rc = apply_text(a, n, &tv, &fresh, s, &changed);
		if (rc != WEFT_OK)
			goto out;
		break;
	default:
		rc = WEFT_EPROTO;
		goto out;
	}
	if (n->ext)
		ext_prune(a, n, ec);
	/* Last, so that an op cut short by WEFT_ENOMEM is never claimed by the
	 * version vector (it may only under-claim, which is safe). */
	if ((rc = weft__vv_bump(a, &d->vv, op->replica, op->hlc, NULL)) != WEFT_OK)
		goto out;

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
	rc = WEFT_OK;
out:
	weft__text_free(fresh);
	return rc;
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
	struct weft_stamp ec = weft__doc_zero_stamp;
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

		weft__doc_node_thr(n, ec, t);
		ec = t->kids;
		if (weft__mp_read_str(&r, &k, &klen) != WEFT_OK) {
			n = NULL;
			break;
		}
		j = weft__doc_kid_search(n, k, klen, &found);
		n = found ? n->kids[j] : NULL;
	}
	*ec_parent = ec;
	if (n)
		weft__doc_node_thr(n, ec, t);
	else
		t->kids = t->ctr = t->set = t->txt = ec;
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
	weft__doc_write_stamp(out, t.ctr);
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

/*
 * TEXT [update, base, claim]: the update is compact (core/text.h: its
 * agent is the op's writer, replica/inc here, which the caller must put in
 * the op's envelope). The edit is made on a private copy of the
 * text the issuer sees (the live instance of the node, or a new empty one
 * at the text threshold), so that nothing changes here until the op is
 * applied like any other (weft__docset_apply then finds the ops new). The
 * copy costs O(text) per edit.
 */
int weft__docset_text_value(struct weft_docset *ds, const char *coll, size_t coll_len,
                            const char *id, size_t id_len, const uint8_t *path, size_t path_len,
                            uint64_t replica, uint32_t inc, bool del, size_t pos, const char *utf8,
                            size_t len, size_t count, struct mp_buf *out)
{
	const struct weft_alloc *a = ds->alloc;
	struct weft_stamp ec, base;
	struct thr t;
	const struct node *n = node_lookup(ds, coll, coll_len, id, id_len, path, path_len, &t, &ec);
	bool claim = !n || node_shown(n, ec, NULL) != SHOWN_TEXT;
	struct weft_text *w = NULL;
	struct mp_buf tmp, upd;
	int rc;

	weft__mp_buf_init(&tmp, a, 0);
	weft__mp_buf_init(&upd, a, 0);
	if (n && weft__doc_text_live(n->ext, &t)) {
		base = n->ext->tbase;
		if ((rc = weft__text_encode(n->ext->text, 0, &tmp)) != WEFT_OK)
			goto out_free;
		rc = weft__text_load(a, replica, inc, tmp.data, tmp.len, &w);
		if (rc == WEFT_ECORRUPT)
			rc = WEFT_EINVAL; /* cannot happen: our own encoding */
	} else {
		base = t.txt;
		rc = weft__text_new(a, replica, inc, &w);
	}
	if (rc != WEFT_OK)
		goto out_free;
	/* the op's envelope names the writer: the update leaves it out */
	weft__text_set_compact(w, true);
	if (del)
		rc = weft__text_delete(w, pos, count, &upd);
	else
		rc = weft__text_insert(w, pos, utf8, len, &upd);
	if (rc == WEFT_OK)
		rc = upd.err;
	if (rc != WEFT_OK)
		goto out_free;
	weft__mp_write_array(out, 4);
	weft__mp_write_bin(out, upd.data, upd.len);
	weft__doc_write_stamp(out, base);
	weft__mp_write_bool(out, claim);
	rc = out->err;
out_free:
	weft__text_free(w);
	weft__mp_buf_free(&tmp);
	weft__mp_buf_free(&upd);
	return rc;
}

/* ---- listing ---- */

static int doc_cmp(const void *pa, const void *pb)
{
	const struct weft_doc *a = *(struct weft_doc *const *)pa;
	const struct weft_doc *b = *(struct weft_doc *const *)pb;
	int c = weft__doc_key_cmp(a->coll, a->coll_len, b->coll, b->coll_len);

	return c ? c : weft__doc_key_cmp(a->id, a->id_len, b->id, b->id_len);
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

	return weft__doc_key_cmp((const char *)a->base + a->off, a->len,
	                         (const char *)b->base + b->off, b->len);
}

struct vspan {
	struct span s; /* first, so span_cmp sorts vspans */
	const struct set_entry *e;
};

/* The set's live elements, each once, sorted by their canonical JSON text
 * (bytewise): as a JSON array (json) or as a MessagePack array of the
 * elements themselves, in the same order. */
static int set_write(const struct ext *x, struct weft_stamp thr, struct mp_buf *out, bool json)
{
	const struct weft_alloc *a = out->alloc;
	const struct set_entry *last = NULL;
	struct mp_buf tmp;
	struct vspan *sp = NULL;
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
		sp[n].e = e;
		sp[n].s.off = tmp.len;
		weft__mp_reader_init(&r, e->elem, e->elem_len);
		if ((rc = weft__json_write_mp(&tmp, &r)) != WEFT_OK)
			goto out_free;
		sp[n].s.len = tmp.len - sp[n].s.off;
		n++;
	}
	for (uint32_t i = 0; i < n; i++)
		sp[i].s.base = tmp.data;
	if (n > 1)
		qsort(sp, n, sizeof(*sp), span_cmp);
	if (json) {
		weft__mp_write_raw(out, "[", 1);
		for (uint32_t i = 0; i < n; i++) {
			if (i > 0)
				weft__mp_write_raw(out, ",", 1);
			weft__mp_write_raw(out, tmp.data + sp[i].s.off, sp[i].s.len);
		}
		weft__mp_write_raw(out, "]", 1);
	} else {
		weft__mp_write_array(out, n);
		for (uint32_t i = 0; i < n; i++)
			weft__mp_write_raw(out, sp[i].e->elem, sp[i].e->elem_len);
	}
	rc = out->err;
out_free:
	weft__free(a, sp);
	weft__mp_buf_free(&tmp);
	return rc;
}

/* The text as a JSON string: the live instance's content, or "" when the
 * instance missed a reset (text ops after it were made without seeing
 * it). */
static int text_write_json(const struct ext *x, const struct thr *t, struct mp_buf *out)
{
	size_t len = 0, cap;
	char *buf;
	int rc;

	if (!weft__doc_text_live(x, t)) {
		weft__mp_write_raw(out, "\"\"", 2);
		return out->err;
	}
	cap = weft__text_byte_len(x->text);
	if (!(buf = weft__malloc(out->alloc, cap ? cap : 1)))
		return WEFT_ENOMEM;
	rc = weft__text_read(x->text, buf, cap, &len);
	if (rc == WEFT_OK) {
		weft__json_write_str(out, buf, len);
		rc = out->err;
	}
	weft__free(out->alloc, buf);
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
		return set_write(n->ext, t.set, out, true);
	if (sh == SHOWN_TEXT)
		return text_write_json(n->ext, &t, out);
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
	return node_write_json(&d->root, weft__doc_zero_stamp, out);
}

/* ---- visible value as MessagePack ---- */

/* One live set element and its canonical JSON (the sort key). */
static int node_write_value(const struct node *n, struct weft_stamp ec_parent, struct mp_buf *out)
{
	struct thr t;
	enum shown sh = node_shown(n, ec_parent, &t);
	uint32_t shown = 0;
	int rc;

	if (sh == SHOWN_LEAF) {
		weft__mp_write_raw(out, n->val, n->val_len);
		return out->err;
	}
	if (sh == SHOWN_COUNTER) {
		weft__mp_write_int(out, ctr_value(n->ext, t.ctr));
		return out->err;
	}
	if (sh == SHOWN_SET)
		return set_write(n->ext, t.set, out, false);
	if (sh == SHOWN_TEXT) {
		size_t len = 0, cap;
		char *buf;

		if (!weft__doc_text_live(n->ext, &t)) {
			weft__mp_write_str(out, "", 0);
			return out->err;
		}
		cap = weft__text_byte_len(n->ext->text);
		if (!(buf = weft__malloc(out->alloc, cap ? cap : 1)))
			return WEFT_ENOMEM;
		rc = weft__text_read(n->ext->text, buf, cap, &len);
		if (rc == WEFT_OK) {
			weft__mp_write_str(out, buf, len);
			rc = out->err;
		}
		weft__free(out->alloc, buf);
		return rc;
	}
	for (uint32_t i = 0; i < n->nkids; i++)
		if (node_shown(n->kids[i], t.kids, NULL) != SHOWN_ABSENT)
			shown++;
	weft__mp_write_map(out, shown);
	for (uint32_t i = 0; i < n->nkids; i++) {
		const struct node *k = n->kids[i];

		if (node_shown(k, t.kids, NULL) == SHOWN_ABSENT)
			continue;
		weft__mp_write_str(out, k->key, k->key_len);
		if ((rc = node_write_value(k, t.kids, out)) != WEFT_OK)
			return rc;
	}
	return out->err;
}

int weft__doc_write_value(const struct weft_doc *d, struct mp_buf *out)
{
	return node_write_value(&d->root, weft__doc_zero_stamp, out);
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
