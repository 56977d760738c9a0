/*
 * doc_state.c - a document's state as bytes, and the join of two states.
 *
 * The encoding (docs/DATA-MODEL.md, "State encoding") writes every live
 * stamp and entry of a document, children in key order and dead entries
 * left out, so replicas that applied the same ops encode the same bytes.
 * Decoding validates everything (order, ranges, compacted causal
 * contexts) and refuses bad bytes with WEFT_ECORRUPT, never asserting on
 * them. The join (peer-to-peer import) is the lattice join of every
 * component, so importing is commutative, associative and idempotent.
 */
#include <stdlib.h>
#include <string.h>

#include "weft/weft.h"
#include "core/doc.h"
#include "core/doc_internal.h"
#include "core/json.h"

/* ---- state encoding ----
 * node = [key|nil, leaf_hlc, leaf_replica, value|nil, obj_hlc, obj_replica,
 *         clear_hlc, clear_replica, [node...]]            (9 elements)
 *      | the same 9 followed by ext                       (10 elements)
 * ext  = [ctr_hlc, ctr_replica, ctr_claim_hlc, ctr_claim_replica,
 *         set_hlc, set_replica, set_claim_hlc, set_claim_replica,
 *         [[replica, incarnation, max, [counter...]]...],      causal context
 *         [[replica, incarnation, base_hlc, base_replica, p, n]...],  counter
 *         [[element, replica, incarnation, counter, hlc, replica]...], set
 *         text]   (text: only for nodes that received TEXT ops; 12 elements)
 * text = [txt_hlc, txt_replica, txt_claim_hlc, txt_claim_replica,
 *         base_hlc, base_replica, weft__text_encode bytes | nil]
 * state = [2, root node]            (weft__doc_encode: the content)
 *       | [3, root node, vv]        (weft__doc_encode_full)
 * vv is the document's version vector, a map {replica -> max hlc} sorted by
 * replica (core/vv.h). Format 1 ([1, root], no ext, ever) and format 2
 * load with an empty vv.
 *
 * The encoding is canonical: every list is sorted and free of repeats, the
 * context is compacted, empty actors are left out, and entries already
 * dead by the thresholds (which only grow) are left out, so replicas that
 * applied the same ops write the same bytes whatever their order; except
 * the text bytes, which follow the order a replica applied the text's ops
 * in (core/text.h): same text, possibly different bytes. */

static bool ext_present(const struct ext *x)
{
	return x && (!weft__stamp_is_zero(x->ctr) || !weft__stamp_is_zero(x->set) ||
	             !weft__stamp_is_zero(x->txt));
}

/* The text part: [txt, txt_claim, base, text|nil], the text (weft__text_encode)
 * only when live. weft__text_encode needs scratch: its failure goes to
 * out->err like the buffer's own. */
static void text_part_encode(const struct ext *x, const struct thr *t, struct mp_buf *out)
{
	bool live = weft__doc_text_live(x, t);
	struct mp_buf tb;
	int rc;

	weft__mp_write_array(out, 7);
	weft__doc_write_stamp(out, x->txt);
	weft__doc_write_stamp(out, x->txt_claim);
	weft__doc_write_stamp(out, live ? x->tbase : weft__doc_zero_stamp);
	if (!live) {
		weft__mp_write_nil(out);
		return;
	}
	weft__mp_buf_init(&tb, out->alloc, 0);
	rc = weft__text_encode(x->text, 0, &tb);
	if (rc != WEFT_OK && !out->err)
		out->err = rc;
	weft__mp_write_bin(out, tb.data, tb.len);
	weft__mp_buf_free(&tb);
}

static void ext_encode(const struct ext *x, const struct thr *t, struct mp_buf *out)
{
	uint32_t n;

	bool txt = !weft__stamp_is_zero(x->txt);

	weft__mp_write_array(out, txt ? 12 : 11);
	weft__doc_write_stamp(out, x->ctr);
	weft__doc_write_stamp(out, x->ctr_claim);
	weft__doc_write_stamp(out, x->set);
	weft__doc_write_stamp(out, x->set_claim);
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
		weft__doc_write_stamp(out, e->base);
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
		weft__doc_write_stamp(out, e->stamp);
	}
	if (txt)
		text_part_encode(x, t, out);
}

static void node_encode(const struct node *n, struct weft_stamp ec_parent, struct mp_buf *out)
{
	bool ext = ext_present(n->ext);
	struct thr t;

	weft__doc_node_thr(n, ec_parent, &t);
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
	node_encode(&d->root, weft__doc_zero_stamp, out);
}

void weft__doc_encode_full(const struct weft_doc *d, struct mp_buf *out)
{
	weft__mp_write_array(out, 3);
	weft__mp_write_uint(out, 3);
	node_encode(&d->root, weft__doc_zero_stamp, out);
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
		if (i > 0 && weft__doc_actor_cmp(c[-1].replica, c[-1].inc, c->replica, c->inc) >= 0)
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

/* Decodes the text part of an ext (text_part_encode) into x. */
static int text_part_decode(const struct weft_docset *ds, struct ext *x, struct mp_reader *r)
{
	uint32_t len;
	enum mp_type t;
	const void *p;
	size_t plen;
	int rc;

	if (weft__mp_read_array(r, &len) != WEFT_OK || len != 7 ||
	    read_stamp(r, &x->txt) != WEFT_OK || read_stamp(r, &x->txt_claim) != WEFT_OK ||
	    read_stamp(r, &x->tbase) != WEFT_OK || weft__mp_peek(r, &t) != WEFT_OK)
		return WEFT_ECORRUPT;
	if (weft__stamp_is_zero(x->txt) || weft__stamp_cmp(x->txt_claim, x->txt) > 0)
		return WEFT_ECORRUPT;
	if (t == MP_NIL) {
		if (weft__mp_read_nil(r) != WEFT_OK || !weft__stamp_is_zero(x->tbase))
			return WEFT_ECORRUPT;
		return WEFT_OK;
	}
	if (weft__mp_read_bin(r, &p, &plen) != WEFT_OK)
		return WEFT_ECORRUPT;
	rc = weft__text_load(ds->alloc, ds->agent_replica, ds->agent_inc, p, plen, &x->text);
	return rc == WEFT_ENOMEM ? rc : rc != WEFT_OK ? WEFT_ECORRUPT : WEFT_OK;
}

/* Decodes an ext (format 2) into n, checking it is canonical. */
static int ext_decode(const struct weft_docset *ds, struct node *n, struct mp_reader *r)
{
	const struct weft_alloc *a = ds->alloc;
	struct ext *x;
	uint32_t len, m;
	int rc;

	if (!(x = n->ext = weft__zalloc(a, sizeof(*x))))
		return WEFT_ENOMEM;
	if (weft__mp_read_array(r, &len) != WEFT_OK || (len != 11 && len != 12) ||
	    read_stamp(r, &x->ctr) != WEFT_OK || read_stamp(r, &x->ctr_claim) != WEFT_OK ||
	    read_stamp(r, &x->set) != WEFT_OK || read_stamp(r, &x->set_claim) != WEFT_OK)
		return WEFT_ECORRUPT;
	/* Claims are ops of their type; the type's stamp covers them. */
	if ((len == 11 && !ext_present(x)) || weft__stamp_cmp(x->ctr_claim, x->ctr) > 0 ||
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
		if (i > 0 && weft__doc_ce_cmp(&e[-1], e->replica, e->inc, e->base) >= 0)
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
		if (i > 0 && weft__doc_se_cmp(&e[-1], e->elem, e->elem_len, &e->dot) >= 0)
			return WEFT_ECORRUPT;
		if (!weft__doc_cc_has(x, &e->dot))
			return WEFT_ECORRUPT; /* an entry's dot is always in the context */
	}
	if ((m || x->ncc) && weft__stamp_is_zero(x->set))
		return WEFT_ECORRUPT;
	if (len == 12)
		return text_part_decode(ds, x, r);
	return WEFT_OK;
}

/* Decodes a node into n (zeroed by the caller). Keys must arrive sorted
 * and unique, as node_encode writes them. */
static int node_decode(const struct weft_docset *ds, struct node *n, struct mp_reader *r, int depth,
                       bool root, uint64_t ver)
{
	const struct weft_alloc *a = ds->alloc;
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
		if ((rc = node_decode(ds, k, r, depth + 1, false, ver)) != WEFT_OK)
			return rc;
		if (i > 0 && weft__doc_key_cmp(n->kids[i - 1]->key, n->kids[i - 1]->key_len, k->key,
		                               k->key_len) >= 0)
			return WEFT_ECORRUPT;
	}
	if (len == 10) {
		if (root)
			return WEFT_ECORRUPT; /* the root is always an object */
		return ext_decode(ds, n, r);
	}
	return WEFT_OK;
}

/* Decodes a whole state into root (zeroed by the caller) and vv (empty).
 * On error the caller frees both. Errors: WEFT_ECORRUPT, WEFT_ENOMEM. */
static int state_decode(const struct weft_docset *ds, const void *state, size_t len,
                        struct node *root, struct weft_vv *vv)
{
	const struct weft_alloc *a = ds->alloc;
	struct mp_reader r;
	uint32_t n;
	uint64_t ver;
	int rc;

	weft__mp_reader_init(&r, state, len);
	if (weft__mp_read_array(&r, &n) != WEFT_OK || weft__mp_read_uint(&r, &ver) != WEFT_OK ||
	    ver < 1 || ver > 3 || n != (ver < 3 ? 2 : 3))
		return WEFT_ECORRUPT;
	if ((rc = node_decode(ds, root, &r, 0, true, ver)) != WEFT_OK)
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
	if ((rc = state_decode(ds, state, len, &root, &vv)) != WEFT_OK)
		goto out_free_root;
	d = weft__docset_find(ds, coll, coll_len, id, id_len);
	if (!d && (rc = weft__docset_insert(ds, coll, coll_len, id, id_len, &d)) != WEFT_OK)
		goto out_free_root;
	weft__doc_node_free_contents(a, &d->root);
	weft__vv_free(a, &d->vv);
	d->root = root;
	d->vv = vv;
	return WEFT_OK;

out_free_root:
	weft__doc_node_free_contents(a, &root);
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
 *   obj, clear, ctr, ctr_claim, set, set_claim, txt, txt_claim   max;
 *   text            the larger base wins; equal bases: the ops of src's
 *                   text that dst's lacks are applied to it;
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
		                       : weft__doc_se_cmp(&dx->se[i], sx->se[j].elem,
		                                          sx->se[j].elem_len, &sx->se[j].dot);

		if (c == 0) {
			out[k] = dx->se[i++];
			out[k].stamp = weft__stamp_max(out[k].stamp, sx->se[j].stamp);
			k++;
			j++;
		} else if (c < 0) {
			if (!weft__doc_cc_has(sx, &dx->se[i].dot))
				out[k++] = dx->se[i];
			else
				weft__free(a, dx->se[i].elem);
			dx->se[i++].elem = NULL;
		} else {
			if (!weft__doc_cc_has(dx, &sx->se[j].dot)) {
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
		int c = i == dx->nce   ? 1
		        : j == sx->nce ? -1
		                       : weft__doc_ce_cmp(&dx->ce[i], sx->ce[j].replica,
		                                          sx->ce[j].inc, sx->ce[j].base);

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
		                       : weft__doc_actor_cmp(dx->cc[i].replica, dx->cc[i].inc,
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

/* Texts: the instance of the larger base wins (the other missed a reset);
 * of equal bases, dst receives src's ops that it lacks (by its version),
 * which is the text of the union of their ops. */
static int text_join(const struct weft_alloc *a, struct ext *dx, struct ext *sx)
{
	struct mp_buf ver, upd;
	int c, rc;

	if (!sx->text)
		return WEFT_OK;
	c = dx->text ? weft__stamp_cmp(sx->tbase, dx->tbase) : 1;
	if (c < 0)
		return WEFT_OK;
	if (c > 0) {
		weft__text_free(dx->text);
		dx->text = sx->text;
		dx->tbase = sx->tbase;
		sx->text = NULL;
		return WEFT_OK;
	}
	weft__mp_buf_init(&ver, a, 0);
	weft__mp_buf_init(&upd, a, 0);
	weft__text_version(dx->text, &ver);
	rc = ver.err;
	if (rc == WEFT_OK)
		rc = weft__text_encode_since(sx->text, ver.data, ver.len, &upd);
	if (rc == WEFT_OK)
		rc = weft__text_apply(dx->text, upd.data, upd.len);
	weft__mp_buf_free(&ver);
	weft__mp_buf_free(&upd);
	return rc == WEFT_ENOMEM ? rc : rc != WEFT_OK ? WEFT_ECORRUPT : WEFT_OK;
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
	dx->txt = weft__stamp_max(dx->txt, sx->txt);
	dx->txt_claim = weft__stamp_max(dx->txt_claim, sx->txt_claim);
	return text_join(a, dx, sx);
}

/* Joins src into dst (both private trees; src is consumed). On error both
 * stay well-formed for node_free_contents, in some partial state. */
static int node_join(const struct weft_alloc *a, struct node *dst, struct node *src)
{
	int c = weft__stamp_cmp(src->leaf, dst->leaf);
	uint32_t extra = 0, i = 0, j = 0, k = 0;
	int rc;

	if (c == 0 && !weft__stamp_is_zero(src->leaf))
		c = weft__doc_key_cmp((const char *)src->val, src->val_len, (const char *)dst->val,
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
		uint32_t at =
		    weft__doc_kid_search(dst, src->kids[j]->key, src->kids[j]->key_len, &found);

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
			             : weft__doc_key_cmp(dst->kids[i]->key, dst->kids[i]->key_len,
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
	weft__doc_node_free_contents(ds->alloc, &s->root);
	weft__vv_free(ds->alloc, &s->vv);
	if (s->fresh)
		weft__doc_destroy(ds->alloc, s->fresh);
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
	if ((rc = state_decode(ds, state, len, &in, &in_vv)) != WEFT_OK)
		goto out_free;
	s->in_max = weft__vv_max_hlc(&in_vv);
	if (!s->doc) {
		if ((rc = weft__doc_create(a, coll, coll_len, id, id_len, &s->fresh)) != WEFT_OK)
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
	if ((rc = state_decode(ds, local.data, local.len, &s->root, &s->vv)) != WEFT_OK)
		goto out_free;
	if ((rc = node_join(a, &s->root, &in)) != WEFT_OK ||
	    (rc = weft__vv_join(a, &s->vv, &in_vv)) != WEFT_OK)
		goto out_free;
	weft__mp_write_array(&joined, 3);
	weft__mp_write_uint(&joined, 3);
	node_encode(&s->root, weft__doc_zero_stamp, &joined);
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
	weft__doc_node_free_contents(a, &in);
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
		weft__docset_link(ds, d);
	}
	if (s->changed) {
		weft__doc_node_free_contents(ds->alloc, &d->root);
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
