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
	if ((rc = read_u64_max(r, &v, WEFT_OP_DELETE)) != WEFT_OK || v == 0)
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
