/*
 * op.h - operations: the unit of change that travels through the oplog,
 * the wire and the server's change log.
 *
 * An op changes one document. Its identity is (replica, incarnation, seq):
 * the incarnation is incremented durably every time a replica file is
 * opened and seq counts from 1 within an incarnation, so an op number lost
 * in a crash is never reused. Its LWW stamp is (hlc, replica).
 *
 * Encoding (MessagePack, docs/PROTOCOL.md "Op"):
 *   [replica:uint, incarnation:uint, seq:uint, hlc:uint, kind:uint,
 *    collection:str, id:str, path:[str...], value]
 * value is nil for WEFT_OP_DELETE and any JSON-compatible MessagePack value
 * otherwise. Decoding is zero-copy: struct weft_op points into the bytes.
 */
#ifndef WEFT_CORE_OP_H
#define WEFT_CORE_OP_H

#include <stddef.h>
#include <stdint.h>

#include "core/hlc.h"
#include "core/mp.h"

/* Limits every replica and the server enforce (docs/DATA-MODEL.md). */
#define WEFT_MAX_COLLECTION 255      /* bytes */
#define WEFT_MAX_ID 1024             /* bytes */
#define WEFT_MAX_KEY 1024            /* bytes, one object key */
#define WEFT_MAX_DEPTH 32            /* path length + value nesting */
#define WEFT_MAX_VALUE (1024 * 1024) /* encoded bytes of one op's value */
#define WEFT_MAX_INCARNATION ((UINT32_C(1) << 23) - 1)
#define WEFT_MAX_SEQ ((UINT64_C(1) << 40) - 1)

enum weft_op_kind {
	WEFT_OP_SET = 1,     /* merge an object / write a leaf at path */
	WEFT_OP_REPLACE = 2, /* clear the subtree at path, then SET */
	WEFT_OP_DELETE = 3   /* clear the subtree at path; [] deletes the doc */
};

struct weft_op {
	uint64_t replica;     /* writer's replica id */
	uint32_t incarnation; /* writer's incarnation, 1.. */
	uint64_t seq;         /* 1.. within the incarnation */
	uint64_t hlc;         /* LWW stamp is (hlc, replica) */
	enum weft_op_kind kind;
	const char *coll; /* borrowed, not NUL-terminated */
	size_t coll_len;
	const char *id; /* borrowed, not NUL-terminated */
	size_t id_len;
	const uint8_t *path; /* borrowed MessagePack array of str */
	size_t path_len;
	const uint8_t *value; /* borrowed MessagePack value (nil for delete) */
	size_t value_len;
	const uint8_t *raw; /* the whole encoded op, when decoded */
	size_t raw_len;
};

/* The op's identity packed as a log key: incarnation << 40 | seq. Keys of
 * one replica increase in the order it issued its ops. */
static inline uint64_t weft__op_key(uint32_t incarnation, uint64_t seq)
{
	return ((uint64_t)incarnation << 40) | seq;
}

static inline struct weft_stamp weft__op_stamp(const struct weft_op *op)
{
	struct weft_stamp s = {op->hlc, op->replica};
	return s;
}

/* Appends the op's encoding to b (check b->err). */
void weft__op_encode(struct mp_buf *b, const struct weft_op *op);

/*
 * Decodes one op from r and validates it against the limits above: kinds,
 * lengths, UTF-8, path of at most WEFT_MAX_DEPTH keys, a JSON-compatible
 * value (objects with string keys, no duplicates, finite numbers) nested
 * no deeper than the depth limit, value nil iff delete, root SET/REPLACE
 * values that are objects, incarnation and seq in range and non-zero.
 * On success *op points into r's bytes (op->raw covers the encoding).
 * Errors: WEFT_EPROTO (malformed), WEFT_ETOOBIG (over a limit),
 * WEFT_ENOMEM (scratch for checking duplicate keys of a large map).
 */
int weft__op_decode(struct mp_reader *r, struct weft_op *op);

#endif
