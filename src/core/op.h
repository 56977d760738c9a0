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
 * value is nil for WEFT_OP_DELETE, any JSON-compatible MessagePack value
 * for SET/REPLACE, and for the CRDT field kinds (docs/DATA-MODEL.md,
 * "Counters" and "Sets"; path never empty):
 *   INCR  [delta:int, p_total:uint, n_total:uint, base_hlc:uint,
 *          base_replica:uint, claim:bool]
 *   SADD  [element, counter:uint >= 1, claim:bool]
 *   SREM  [element, [[replica:uint, incarnation:uint, counter:uint]...],
 *          claim:bool]   (dots sorted strictly ascending)
 *   TEXT  [update:bin, base_hlc:uint, base_replica:uint, claim:bool]
 *          (update: bytes of the text module, core/text.h, validated when
 *          applied; base: the text threshold the issuer saw)
 * An element is nil, a bool, an int64 or a str, in minimal encoding.
 * Decoding is zero-copy: struct weft_op points into the bytes.
 */
#ifndef WEFT_CORE_OP_H
#define WEFT_CORE_OP_H

#include <stdbool.h>
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
	WEFT_OP_DELETE = 3,  /* clear the subtree at path; [] deletes the doc */
	WEFT_OP_INCR = 4,    /* PN-counter increment at path */
	WEFT_OP_SADD = 5,    /* add-wins set: add an element at path */
	WEFT_OP_SREM = 6,    /* add-wins set: remove observed dots at path */
	WEFT_OP_TEXT = 7     /* collaborative text: apply a text update at path */
};
#define WEFT_OP_KIND_MAX WEFT_OP_TEXT

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

/* The value of an INCR op, parsed (weft__op_incr_parse). */
struct weft_incr {
	int64_t delta;          /* the increment as issued (informational) */
	uint64_t p, n;          /* issuer's new cumulative totals for its entry */
	struct weft_stamp base; /* counter threshold the issuer saw */
	bool claim;             /* replace other types older than the op */
};

/* A dot: one add of an actor (replica, incarnation) to one set node. */
struct weft_dot {
	uint64_t replica;
	uint32_t inc;
	uint64_t ctr; /* 1.. per actor and set node */
};

/* The value of an SADD or SREM op, parsed (weft__op_set_parse). */
struct weft_setop {
	const uint8_t *elem; /* minimal MessagePack scalar, borrowed */
	size_t elem_len;
	uint64_t ctr;        /* SADD: the dot's counter */
	const uint8_t *dots; /* SREM: the first dot's bytes (ndots of them) */
	size_t dots_len;
	uint32_t ndots;
	bool claim;
};

/* The value of a TEXT op, parsed (weft__op_text_parse). */
struct weft_textop {
	const uint8_t *update;  /* text update bytes (core/text.h), borrowed */
	size_t update_len;      /* bytes of update */
	struct weft_stamp base; /* text threshold the issuer saw */
	bool claim;             /* replace other types older than the op */
};

/* Reads one set element at r: nil, bool, an int64 or a UTF-8 str, in the
 * smallest encoding the weft__mp_write functions produce (so equal elements have equal
 * bytes). *raw and *len receive its bytes. Errors: WEFT_EPROTO. */
int weft__op_elem_read(struct mp_reader *r, const uint8_t **raw, size_t *len);
/* Reads one dot [replica, incarnation, counter]. Errors: WEFT_EPROTO. */
int weft__op_dot_read(struct mp_reader *r, struct weft_dot *d);
/* Total order on dots: replica, incarnation, counter. */
int weft__dot_cmp(const struct weft_dot *a, const struct weft_dot *b);
/* Parse (and fully validate) the value of an INCR / SADD / SREM op.
 * Errors: WEFT_EPROTO. */
int weft__op_incr_parse(const uint8_t *v, size_t len, struct weft_incr *out);
int weft__op_set_parse(enum weft_op_kind kind, const uint8_t *v, size_t len,
                       struct weft_setop *out);
/* Parses the value of a TEXT op (its shape only: the update bytes are
 * checked by weft__text_apply). Errors: WEFT_EPROTO. */
int weft__op_text_parse(const uint8_t *v, size_t len, struct weft_textop *out);

/* Appends the op's encoding to b (check b->err). */
void weft__op_encode(struct mp_buf *b, const struct weft_op *op);

/*
 * Decodes one op from r and validates it against the limits above: kinds,
 * lengths, UTF-8, path of at most WEFT_MAX_DEPTH keys, a JSON-compatible
 * value (objects with string keys, no duplicates, finite numbers) nested
 * no deeper than the depth limit, value nil iff delete, root SET/REPLACE
 * values that are objects, incarnation and seq in range and non-zero; for
 * INCR/SADD/SREM/TEXT a non-empty path and a value of the shape above.
 * On success *op points into r's bytes (op->raw covers the encoding).
 * Errors: WEFT_EPROTO (malformed), WEFT_ETOOBIG (over a limit),
 * WEFT_ENOMEM (scratch for checking duplicate keys of a large map).
 */
int weft__op_decode(struct mp_reader *r, struct weft_op *op);

#endif
