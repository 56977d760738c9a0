/*
 * op.c - encoding, decoding and validation of ops. See op.h.
 *
 * Decoding is the trust boundary for everything a peer or the disk hands
 * us: after weft__op_decode succeeds, the rest of the core may rely on the
 * limits in op.h without checking again.
 */
#include <string.h>

#include "weft/weft.h"
#include "core/op.h"

void weft__op_encode(struct mp_buf *b, const struct weft_op *op)
{
	weft__mp_write_array(b, 9);
	weft__mp_write_uint(b, op->replica);
	weft__mp_write_uint(b, op->incarnation);
	weft__mp_write_uint(b, op->seq);
	weft__mp_write_uint(b, op->hlc);
	weft__mp_write_uint(b, (uint64_t)op->kind);
	weft__mp_write_str(b, op->coll, op->coll_len);
	weft__mp_write_str(b, op->id, op->id_len);
	if (op->path_len)
		weft__mp_write_raw(b, op->path, op->path_len);
	else
		weft__mp_write_array(b, 0);
	if (op->value_len)
		weft__mp_write_raw(b, op->value, op->value_len);
	else
		weft__mp_write_nil(b);
}

/*
 * Depth of the value at r (a scalar is 0, [] or {} is 1), consuming it.
 * Stops with WEFT_ETOOBIG as soon as `limit` is passed, so a hostile
 * nesting costs no more than the limit in stack.
 */
static int value_depth(struct mp_reader *r, int limit, int *depth)
{
	enum mp_type t;
	uint32_t n;
	int rc, d, max = 0;

	rc = weft__mp_peek(r, &t);
	if (rc != WEFT_OK)
		return rc;
	if (t != MP_ARRAY && t != MP_MAP) {
		*depth = 0;
		return weft__mp_skip(r, NULL, NULL);
	}
	if (limit <= 0)
		return WEFT_ETOOBIG;
	rc = t == MP_ARRAY ? weft__mp_read_array(r, &n) : weft__mp_read_map(r, &n);
	if (rc != WEFT_OK)
		return rc;
	for (uint32_t i = 0; i < n; i++) {
		if (t == MP_MAP) {
			const char *k;
			size_t klen;

			rc = weft__mp_read_str(r, &k, &klen);
			if (rc != WEFT_OK)
				return rc;
			if (klen > WEFT_MAX_KEY)
				return WEFT_ETOOBIG;
		}
		rc = value_depth(r, limit - 1, &d);
		if (rc != WEFT_OK)
			return rc;
		if (d > max)
			max = d;
	}
	*depth = max + 1;
	return WEFT_OK;
}

static int read_u64_max(struct mp_reader *r, uint64_t *v, uint64_t max)
{
	int rc = weft__mp_read_uint(r, v);

	if (rc != WEFT_OK)
		return rc;
	return *v > max ? WEFT_EPROTO : WEFT_OK;
}

/* Bytes of the smallest MessagePack header weft__mp_write_int / _str use. */
static size_t int_len(int64_t v)
{
	if (v >= -32 && v < 128)
		return 1;
	if (v >= 0)
		return v <= UINT8_MAX ? 2 : v <= UINT16_MAX ? 3 : v <= (int64_t)UINT32_MAX ? 5 : 9;
	return v >= INT8_MIN ? 2 : v >= INT16_MIN ? 3 : v >= INT32_MIN ? 5 : 9;
}

static size_t str_head_len(size_t len)
{
	return len < 32 ? 1 : len <= UINT8_MAX ? 2 : len <= UINT16_MAX ? 3 : 5;
}

int weft__op_elem_read(struct mp_reader *r, const uint8_t **raw, size_t *len)
{
	struct mp_reader save = *r, sub;
	const uint8_t *p;
	size_t n;
	enum mp_type t;
	int rc;

	if ((rc = weft__mp_peek(r, &t)) != WEFT_OK)
		return WEFT_EPROTO;
	if (t != MP_NIL && t != MP_BOOL && t != MP_INT && t != MP_STR)
		return WEFT_EPROTO;
	if ((rc = weft__mp_skip(r, &p, &n)) != WEFT_OK)
		return WEFT_EPROTO;
	weft__mp_reader_init(&sub, p, n);
	if (t == MP_INT) {
		int64_t v;

		if (weft__mp_read_int(&sub, &v) != WEFT_OK || n != int_len(v) ||
		    (v >= 0 && n > 1 && (p[0] & 0xfc) != 0xcc))
			goto bad; /* a non-negative value must use a uint form */
	} else if (t == MP_STR) {
		const char *s;
		size_t slen;

		if (weft__mp_read_str(&sub, &s, &slen) != WEFT_OK || n != str_head_len(slen) + slen)
			goto bad;
	}
	*raw = p;
	*len = n;
	return WEFT_OK;
bad:
	*r = save;
	return WEFT_EPROTO;
}

int weft__op_dot_read(struct mp_reader *r, struct weft_dot *d)
{
	uint32_t n;
	uint64_t inc;

	if (weft__mp_read_array(r, &n) != WEFT_OK || n != 3 ||
	    weft__mp_read_uint(r, &d->replica) != WEFT_OK ||
	    weft__mp_read_uint(r, &inc) != WEFT_OK || inc == 0 || inc > WEFT_MAX_INCARNATION ||
	    weft__mp_read_uint(r, &d->ctr) != WEFT_OK || d->ctr == 0)
		return WEFT_EPROTO;
	d->inc = (uint32_t)inc;
	return WEFT_OK;
}

int weft__dot_cmp(const struct weft_dot *a, const struct weft_dot *b)
{
	if (a->replica != b->replica)
		return a->replica < b->replica ? -1 : 1;
	if (a->inc != b->inc)
		return a->inc < b->inc ? -1 : 1;
	if (a->ctr != b->ctr)
		return a->ctr < b->ctr ? -1 : 1;
	return 0;
}

int weft__op_incr_parse(const uint8_t *v, size_t len, struct weft_incr *out)
{
	struct mp_reader r;
	struct weft_incr x;
	uint32_t n;

	weft__mp_reader_init(&r, v, len);
	if (weft__mp_read_array(&r, &n) != WEFT_OK || n != 6 ||
	    weft__mp_read_int(&r, &x.delta) != WEFT_OK || weft__mp_read_uint(&r, &x.p) != WEFT_OK ||
	    weft__mp_read_uint(&r, &x.n) != WEFT_OK ||
	    weft__mp_read_uint(&r, &x.base.hlc) != WEFT_OK ||
	    weft__mp_read_uint(&r, &x.base.replica) != WEFT_OK ||
	    weft__mp_read_bool(&r, &x.claim) != WEFT_OK || weft__mp_reader_left(&r) != 0)
		return WEFT_EPROTO;
	/* The totals include the delta that produced them. */
	if (x.delta >= 0 ? x.p < (uint64_t)x.delta : x.n < (uint64_t)(-(x.delta + 1)) + 1)
		return WEFT_EPROTO;
	*out = x;
	return WEFT_OK;
}

int weft__op_set_parse(enum weft_op_kind kind, const uint8_t *v, size_t len, struct weft_setop *out)
{
	struct mp_reader r;
	struct weft_setop x;
	uint32_t n;

	memset(&x, 0, sizeof(x));
	weft__mp_reader_init(&r, v, len);
	if (weft__mp_read_array(&r, &n) != WEFT_OK || n != 3 ||
	    weft__op_elem_read(&r, &x.elem, &x.elem_len) != WEFT_OK)
		return WEFT_EPROTO;
	if (kind == WEFT_OP_SADD) {
		if (weft__mp_read_uint(&r, &x.ctr) != WEFT_OK || x.ctr == 0)
			return WEFT_EPROTO;
	} else {
		struct weft_dot prev, d;

		if (weft__mp_read_array(&r, &x.ndots) != WEFT_OK)
			return WEFT_EPROTO;
		x.dots = r.p;
		for (uint32_t i = 0; i < x.ndots; i++) {
			if (weft__op_dot_read(&r, &d) != WEFT_OK)
				return WEFT_EPROTO;
			if (i > 0 && weft__dot_cmp(&prev, &d) >= 0)
				return WEFT_EPROTO; /* sorted, no duplicates */
			prev = d;
		}
		x.dots_len = (size_t)(r.p - x.dots);
	}
	if (weft__mp_read_bool(&r, &x.claim) != WEFT_OK || weft__mp_reader_left(&r) != 0)
		return WEFT_EPROTO;
	*out = x;
	return WEFT_OK;
}

int weft__op_text_parse(const uint8_t *v, size_t len, struct weft_textop *out)
{
	struct mp_reader r;
	struct weft_textop x;
	const void *p;
	uint32_t n;

	weft__mp_reader_init(&r, v, len);
	if (weft__mp_read_array(&r, &n) != WEFT_OK || n != 4 ||
	    weft__mp_read_bin(&r, &p, &x.update_len) != WEFT_OK ||
	    weft__mp_read_uint(&r, &x.base.hlc) != WEFT_OK ||
	    weft__mp_read_uint(&r, &x.base.replica) != WEFT_OK ||
	    weft__mp_read_bool(&r, &x.claim) != WEFT_OK || weft__mp_reader_left(&r) != 0)
		return WEFT_EPROTO;
	x.update = p;
	*out = x;
	return WEFT_OK;
}

int weft__op_decode(struct mp_reader *r, struct weft_op *out)
{
	struct mp_reader save = *r, sub;
	struct weft_op op;
	uint64_t v;
	uint32_t n, plen;
	const uint8_t *start = r->p;
	enum mp_type t;
	int rc, depth;

	memset(&op, 0, sizeof(op));
	rc = weft__mp_read_array(r, &n);
	if (rc != WEFT_OK || n != 9) {
		rc = WEFT_EPROTO;
		goto fail;
	}
	if ((rc = weft__mp_read_uint(r, &op.replica)) != WEFT_OK)
		goto fail;
	if ((rc = read_u64_max(r, &v, WEFT_MAX_INCARNATION)) != WEFT_OK || v == 0)
		goto fail_proto;
	op.incarnation = (uint32_t)v;
	if ((rc = read_u64_max(r, &op.seq, WEFT_MAX_SEQ)) != WEFT_OK || op.seq == 0)
		goto fail_proto;
	if ((rc = weft__mp_read_uint(r, &op.hlc)) != WEFT_OK || op.hlc == 0)
		goto fail_proto;
	if ((rc = read_u64_max(r, &v, WEFT_OP_KIND_MAX)) != WEFT_OK || v == 0)
		goto fail_proto;
	op.kind = (enum weft_op_kind)v;
	if ((rc = weft__mp_read_str(r, &op.coll, &op.coll_len)) != WEFT_OK)
		goto fail;
	if ((rc = weft__mp_read_str(r, &op.id, &op.id_len)) != WEFT_OK)
		goto fail;
	if (op.coll_len == 0 || op.id_len == 0) {
		rc = WEFT_EPROTO;
		goto fail;
	}
	if (op.coll_len > WEFT_MAX_COLLECTION || op.id_len > WEFT_MAX_ID) {
		rc = WEFT_ETOOBIG;
		goto fail;
	}

	/* Path: an array of string keys. */
	op.path = r->p;
	if ((rc = weft__mp_read_array(r, &plen)) != WEFT_OK)
		goto fail;
	if (plen > WEFT_MAX_DEPTH) {
		rc = WEFT_ETOOBIG;
		goto fail;
	}
	for (uint32_t i = 0; i < plen; i++) {
		const char *k;
		size_t klen;

		if ((rc = weft__mp_read_str(r, &k, &klen)) != WEFT_OK)
			goto fail;
		if (klen > WEFT_MAX_KEY) {
			rc = WEFT_ETOOBIG;
			goto fail;
		}
	}
	op.path_len = (size_t)(r->p - op.path);

	/* Value: nil for delete; otherwise JSON-compatible, within limits. */
	op.value = r->p;
	if ((rc = weft__mp_skip(r, NULL, NULL)) != WEFT_OK)
		goto fail;
	op.value_len = (size_t)(r->p - op.value);
	if (op.value_len > WEFT_MAX_VALUE) {
		rc = WEFT_ETOOBIG;
		goto fail;
	}
	weft__mp_reader_init(&sub, op.value, op.value_len);
	if ((rc = weft__mp_peek(&sub, &t)) != WEFT_OK)
		goto fail;
	if (op.kind == WEFT_OP_DELETE) {
		if (t != MP_NIL)
			goto fail_proto;
	} else if (op.kind >= WEFT_OP_INCR) {
		struct weft_incr inc;
		struct weft_setop so;
		struct weft_textop to;

		if (plen == 0)
			goto fail_proto; /* the root is always an object */
		if (op.kind == WEFT_OP_INCR)
			rc = weft__op_incr_parse(op.value, op.value_len, &inc);
		else if (op.kind == WEFT_OP_TEXT)
			rc = weft__op_text_parse(op.value, op.value_len, &to);
		else
			rc = weft__op_set_parse(op.kind, op.value, op.value_len, &so);
		if (rc != WEFT_OK)
			goto fail;
	} else {
		rc = weft__mp_validate(op.value, op.value_len, true, NULL);
		if (rc != WEFT_OK)
			goto fail;
		if (plen == 0 && t != MP_MAP)
			goto fail_proto; /* a document is an object */
		rc = value_depth(&sub, WEFT_MAX_DEPTH - (int)plen, &depth);
		if (rc != WEFT_OK)
			goto fail;
	}
	op.raw = start;
	op.raw_len = (size_t)(r->p - start);
	*out = op;
	return WEFT_OK;

fail_proto:
	if (rc == WEFT_OK)
		rc = WEFT_EPROTO;
fail:
	*r = save;
	return rc == WEFT_ETOOBIG || rc == WEFT_ENOMEM ? rc : WEFT_EPROTO;
}
