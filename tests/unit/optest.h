/*
 * optest.h - building and decoding ops in tests of the document model
 * (test_crdt.c, test_textfield.c). Header-only; functions are static
 * inline so a test that does not use one does not warn. Include it after
 * <cmocka.h>: the helpers assert with cmocka.
 */
#ifndef WEFT_TEST_OPTEST_H
#define WEFT_TEST_OPTEST_H

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "weft/weft.h"
#include "core/mp.h"
#include "core/op.h"
#include "client/json_in.h"

struct top {
	uint8_t *raw; /* the encoded op; op points into it */
	size_t len;
	struct weft_op op;
};

static inline void top_free(struct top *t)
{
	free(t->raw);
	t->raw = NULL;
}

/* Appends the MessagePack of JSON text to b. */
static inline void json_mp(const char *json, struct mp_buf *b)
{
	char err[128];

	assert_int_equal(weft__json_to_mp(json, strlen(json), 40, b, err, sizeof(err)), WEFT_OK);
}

/* Encodes and decodes an op (the decode validates it like a peer). */
static inline int mk_raw(struct top *t, int kind, uint64_t replica, uint32_t inc, uint64_t seq,
                         uint64_t hlc, const uint8_t *path, size_t path_len, const uint8_t *val,
                         size_t val_len)
{
	struct mp_buf eb;
	struct mp_reader r;
	struct weft_op op;
	int rc;

	memset(&op, 0, sizeof(op));
	op.replica = replica;
	op.incarnation = inc;
	op.seq = seq;
	op.hlc = hlc;
	op.kind = (enum weft_op_kind)kind;
	op.coll = "c";
	op.coll_len = 1;
	op.id = "d";
	op.id_len = 1;
	op.path = path;
	op.path_len = path_len;
	op.value = val;
	op.value_len = val_len;
	weft__mp_buf_init(&eb, NULL, 0);
	weft__op_encode(&eb, &op);
	assert_int_equal(eb.err, 0);
	memset(t, 0, sizeof(*t));
	t->raw = weft__mp_buf_take(&eb, &t->len);
	weft__mp_reader_init(&r, t->raw, t->len);
	rc = weft__op_decode(&r, &t->op);
	if (rc != WEFT_OK)
		top_free(t);
	return rc;
}

#endif
