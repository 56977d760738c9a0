/*
 * test_golden.c - golden wire vectors for every message and every op kind
 * of protocol version 1 (src/core/proto.h is the source of truth for the
 * shapes, src/core/op.h for the op values).
 *
 * The bytes of every vector below were derived by hand from the
 * MessagePack specification and the message definitions, one comment per
 * field; none was captured from our encoder, since the point is to catch
 * encoder drift. tests/data/golden/<name>.bin holds the same bytes: they
 * were written once from these literals with `test_golden --write`, which
 * never overwrites an existing file (hello.bin and push_one_op.bin predate
 * this file and are checked against literals too).
 *
 * For each vector:
 *  (a) our encoder produces exactly the golden bytes;
 *  (b) our decoder reads them back into the expected field values;
 *  (c) msgpack-c, an independent decoder, reads them as the object tree the
 *      definitions describe (types, values, array lengths, the 16-byte bin
 *      cursor, nested units) and consumes the whole buffer, in one call and
 *      fed byte by byte to its streaming unpacker;
 *  (d) with an unknown trailing field appended (array length + 1) a message
 *      still decodes to the same values, while an op with a tenth element
 *      is refused (ops are not extensible); a byte after a message is
 *      refused;
 *  (e) every truncation is refused with an error code, never a crash (the
 *      prefix lives in a buffer of exactly its size, so ASan sees any
 *      over-read).
 * Decode-only vectors are the shorter forms an older peer sends (absent
 * optional fields read as their defaults).
 */
#include <errno.h>
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include <msgpack.h>

#include "weft/weft.h"
#include "core/op.h"
#include "core/proto.h"

/* ---- helpers ---- */

/* What a test allocates is freed by its teardown, also when an assertion
 * fails (cmocka jumps out of the test). */
static void *kept[512]; /* unhex() and other buffers */
static size_t nkept;
static uint8_t *cut_buf;      /* a truncated copy */
static struct mp_buf scratch; /* encoder output */

static void *keep(void *p)
{
	assert_non_null(p);
	assert_true(nkept < sizeof(kept) / sizeof(kept[0]));
	kept[nkept++] = p;
	return p;
}

static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* Hex digits (spaces allowed between bytes) to bytes, kept until the end
 * of the run. */
static const uint8_t *unhex(const char *hex, size_t *len)
{
	uint8_t *out = keep(malloc(strlen(hex) / 2 + 1));
	size_t n = 0;

	for (const char *s = hex; *s;) {
		if (*s == ' ') {
			s++;
			continue;
		}
		if (hexval(s[0]) < 0 || hexval(s[1]) < 0)
			fail_msg("bad hex literal at \"%.16s\"", s);
		out[n++] = (uint8_t)(hexval(s[0]) << 4 | hexval(s[1]));
		s += 2;
	}
	*len = n;
	return out;
}

static void assert_bytes(const void *got, size_t got_len, const char *want_hex)
{
	size_t len;
	const uint8_t *want = unhex(want_hex, &len);

	assert_int_equal(got_len, len);
	if (len)
		assert_memory_equal(got, want, len);
}

static void assert_str(const char *got, size_t got_len, const char *want)
{
	assert_int_equal(got_len, strlen(want));
	if (got_len)
		assert_memory_equal(got, want, got_len);
}

static uint8_t *read_golden(const char *name, size_t *len)
{
	char path[512];
	uint8_t *buf = keep(malloc(1 << 16));
	FILE *f;

	snprintf(path, sizeof(path), "%s/golden/%s.bin", WEFT_TEST_DATA_DIR, name);
	f = fopen(path, "rb");
	if (!f)
		fail_msg("cannot open %s: %s", path, strerror(errno));
	*len = fread(buf, 1, 1 << 16, f);
	fclose(f);
	return buf;
}

/* ---- the op vectors ----
 *
 * Constants spelled out by hand in the hex below:
 *   replica R = 0x0102030405060708           -> cf 01 02 03 04 05 06 07 08
 *   hlc H     = 1700000000000 << 16 (ms, counter 0)
 *             = 0x018bcfe568000000           -> cf 01 8b cf e5 68 00 00 00
 *   epoch E   = 0x1122334455667788 (cursors: bin 16 = c4 10, E, position)
 * Every op is [replica, incarnation, seq, hlc, kind, collection, id, path,
 * value] (an array of exactly 9: 0x99), writer R, incarnation 1, document
 * ("todos", "1"), seq n with hlc H + n - 1.
 */
#define R_ UINT64_C(0x0102030405060708)
#define H_ UINT64_C(0x018bcfe568000000)
#define E_ UINT64_C(0x1122334455667788)

/* The worked example of docs/PROTOCOL.md: a root SET {"title": "milk"}. */
#define OP_MILK_PATH "90"                            /* path: [] */
#define OP_MILK_VALUE "81 a5 7469746c65 a4 6d696c6b" /* {"title": "milk"} */
#define OP_MILK                                                                                    \
	"99"                  /* op: array(9) */                                                   \
	"cf 0102030405060708" /* replica R (uint64) */                                             \
	"01"                  /* incarnation 1 */                                                  \
	"01"                  /* seq 1 */                                                          \
	"cf 018bcfe568000000" /* hlc H */                                                          \
	"01"                  /* kind 1 = SET */                                                   \
	"a5 746f646f73"       /* collection "todos" (fixstr 5) */                                  \
	"a1 31"               /* id "1" */                                                         \
	    OP_MILK_PATH OP_MILK_VALUE

/* SET of a nested object at ["meta"]: false, a negative int that needs
 * int8, a float64, an array with nil. */
#define OP_SET_PATH "91 a4 6d657461" /* path: ["meta"] */
#define OP_SET_VALUE                                                                               \
	"84"                        /* value: map(4) */                                            \
	"a4 646f6e65 c2"            /* "done": false */                                            \
	"a1 6e d0 df"               /* "n": -33 (int8; negative fixint stops at -32) */            \
	"a1 77 cb 3fe0000000000000" /* "w": 0.5 (float64) */                                       \
	"a4 74616773 92 a1 61 c0"   /* "tags": ["a", nil] */
#define OP_SET                                                                                     \
	"99"                  /* op: array(9) */                                                   \
	"cf 0102030405060708" /* replica R */                                                      \
	"01"                  /* incarnation 1 */                                                  \
	"02"                  /* seq 2 */                                                          \
	"cf 018bcfe568000001" /* hlc H + 1 */                                                      \
	"01"                  /* kind 1 = SET */                                                   \
	"a5 746f646f73"       /* "todos" */                                                        \
	"a1 31"               /* "1" */                                                            \
	    OP_SET_PATH OP_SET_VALUE

#define OP_REPLACE_PATH "90"                            /* path: [] */
#define OP_REPLACE_VALUE "81 a5 7469746c65 a4 65676773" /* {"title": "eggs"} */
#define OP_REPLACE                                                                                 \
	"99"                  /* op: array(9) */                                                   \
	"cf 0102030405060708" /* replica R */                                                      \
	"01"                  /* incarnation 1 */                                                  \
	"03"                  /* seq 3 */                                                          \
	"cf 018bcfe568000002" /* hlc H + 2 */                                                      \
	"02"                  /* kind 2 = REPLACE */                                               \
	"a5 746f646f73"       /* "todos" */                                                        \
	"a1 31"               /* "1" */                                                            \
	    OP_REPLACE_PATH OP_REPLACE_VALUE

#define OP_DELETE_PATH "91 a4 6d657461" /* path: ["meta"] */
#define OP_DELETE_VALUE "c0"            /* value: nil (required for DELETE) */
#define OP_DELETE                                                                                  \
	"99"                  /* op: array(9) */                                                   \
	"cf 0102030405060708" /* replica R */                                                      \
	"01"                  /* incarnation 1 */                                                  \
	"04"                  /* seq 4 */                                                          \
	"cf 018bcfe568000003" /* hlc H + 3 */                                                      \
	"03"                  /* kind 3 = DELETE */                                                \
	"a5 746f646f73"       /* "todos" */                                                        \
	"a1 31"               /* "1" */                                                            \
	    OP_DELETE_PATH OP_DELETE_VALUE

/* INCR [delta, P, N, base_hlc, base_replica, claim]: -2, so N (2) holds
 * it; the base is (H, R). */
#define OP_INCR_PATH "91 a5 636f756e74" /* path: ["count"] */
#define OP_INCR_VALUE                                                                              \
	"96"                  /* value: array(6) */                                                \
	"fe"                  /* delta -2 (negative fixint) */                                     \
	"03"                  /* P total 3 */                                                      \
	"02"                  /* N total 2 */                                                      \
	"cf 018bcfe568000000" /* base_hlc H */                                                     \
	"cf 0102030405060708" /* base_replica R */                                                 \
	"c2"                  /* claim false */
#define OP_INCR                                                                                    \
	"99"                  /* op: array(9) */                                                   \
	"cf 0102030405060708" /* replica R */                                                      \
	"01"                  /* incarnation 1 */                                                  \
	"05"                  /* seq 5 */                                                          \
	"cf 018bcfe568000004" /* hlc H + 4 */                                                      \
	"04"                  /* kind 4 = INCR */                                                  \
	"a5 746f646f73"       /* "todos" */                                                        \
	"a1 31"               /* "1" */                                                            \
	    OP_INCR_PATH OP_INCR_VALUE

/* SADD [element, counter, claim]. */
#define OP_ELEM "a6 757267656e74"     /* element "urgent" (fixstr 6) */
#define OP_SADD_PATH "91 a4 74616773" /* path: ["tags"] */
#define OP_SADD_VALUE                                                                              \
	"93"        /* value: array(3) */                                                          \
	    OP_ELEM /* element */                                                                  \
	"01"        /* counter 1 */                                                                \
	"c2"        /* claim false */
#define OP_SADD                                                                                    \
	"99"                  /* op: array(9) */                                                   \
	"cf 0102030405060708" /* replica R */                                                      \
	"01"                  /* incarnation 1 */                                                  \
	"06"                  /* seq 6 */                                                          \
	"cf 018bcfe568000005" /* hlc H + 5 */                                                      \
	"05"                  /* kind 5 = SADD */                                                  \
	"a5 746f646f73"       /* "todos" */                                                        \
	"a1 31"               /* "1" */                                                            \
	    OP_SADD_PATH OP_SADD_VALUE

/* SREM [element, [[replica, incarnation, counter]...], claim], the dots
 * sorted ascending: (9, 3, 2) < (R, 1, 1). */
#define OP_SREM_PATH "91 a4 74616773" /* path: ["tags"] */
#define OP_SREM_VALUE                                                                              \
	"93"                           /* value: array(3) */                                       \
	    OP_ELEM                    /* element */                                               \
	"92"                           /* dots: array(2) */                                        \
	"93 09 03 02"                  /* [9, 3, 2] */                                             \
	"93 cf 0102030405060708 01 01" /* [R, 1, 1] */                                             \
	"c3"                           /* claim true */
#define OP_SREM                                                                                    \
	"99"                  /* op: array(9) */                                                   \
	"cf 0102030405060708" /* replica R */                                                      \
	"01"                  /* incarnation 1 */                                                  \
	"07"                  /* seq 7 */                                                          \
	"cf 018bcfe568000006" /* hlc H + 6 */                                                      \
	"06"                  /* kind 6 = SREM */                                                  \
	"a5 746f646f73"       /* "todos" */                                                        \
	"a1 31"               /* "1" */                                                            \
	    OP_SREM_PATH OP_SREM_VALUE

/* TEXT [update:bin, base_hlc, base_replica, claim] with an empty update
 * (the op codec checks the shape only; core/text.c checks the bytes). */
#define OP_TEXT_PATH "91 a4 626f6479" /* path: ["body"] */
#define OP_TEXT_VALUE                                                                              \
	"94"    /* value: array(4) */                                                              \
	"c4 00" /* update: bin 8 of 0 bytes */                                                     \
	"00"    /* base_hlc 0 */                                                                   \
	"00"    /* base_replica 0 */                                                               \
	"c3"    /* claim true */
#define OP_TEXT                                                                                    \
	"99"                  /* op: array(9) */                                                   \
	"cf 0102030405060708" /* replica R */                                                      \
	"01"                  /* incarnation 1 */                                                  \
	"08"                  /* seq 8 */                                                          \
	"cf 018bcfe568000007" /* hlc H + 7 */                                                      \
	"07"                  /* kind 7 = TEXT */                                                  \
	"a5 746f646f73"       /* "todos" */                                                        \
	"a1 31"               /* "1" */                                                            \
	    OP_TEXT_PATH OP_TEXT_VALUE

/*
 * What msgpack-c must see, in a small notation: [..] array, {k v ..} map,
 * u<n> positive integer, i<n> negative integer, d<x> float64, n nil, T/F
 * booleans, s'..' str, x<hex> bin (x alone: empty bin).
 */
#define SH_R "u0x0102030405060708"
#define SH_OP(seq, hlc, kind, path, value)                                                         \
	"[" SH_R " u1 u" seq " u" hlc " u" kind " s'todos' s'1' " path " " value "]"
#define SH_MILK SH_OP("1", "0x018bcfe568000000", "1", "[]", "{s'title' s'milk'}")
#define SH_SET                                                                                     \
	SH_OP("2", "0x018bcfe568000001", "1", "[s'meta']",                                         \
	      "{s'done' F s'n' i-33 s'w' d0.5 s'tags' [s'a' n]}")
#define SH_REPLACE SH_OP("3", "0x018bcfe568000002", "2", "[]", "{s'title' s'eggs'}")
#define SH_DELETE SH_OP("4", "0x018bcfe568000003", "3", "[s'meta']", "n")
#define SH_INCR                                                                                    \
	SH_OP("5", "0x018bcfe568000004", "4", "[s'count']",                                        \
	      "[i-2 u3 u2 u0x018bcfe568000000 " SH_R " F]")
#define SH_SADD SH_OP("6", "0x018bcfe568000005", "5", "[s'tags']", "[s'urgent' u1 F]")
#define SH_SREM                                                                                    \
	SH_OP("7", "0x018bcfe568000006", "6", "[s'tags']",                                         \
	      "[s'urgent' [[u9 u3 u2] [" SH_R " u1 u1]] T]")
#define SH_TEXT SH_OP("8", "0x018bcfe568000007", "7", "[s'body']", "[x u0 u0 T]")
#define SH_CURSOR(pos) "x1122334455667788" pos

/* Expected field values of one op. */
struct xop {
	const char *hex; /* the whole op */
	uint64_t seq, hlc;
	enum weft_op_kind kind;
	const char *path_hex, *value_hex;
	/* The parsed value of the CRDT kinds. */
	int64_t delta;               /* INCR */
	uint64_t p, n;               /* INCR */
	uint64_t base_hlc, base_rep; /* INCR, TEXT */
	uint64_t ctr;                /* SADD */
	uint32_t ndots;              /* SREM */
	struct weft_dot dots[2];     /* SREM */
	bool claim;                  /* INCR, SADD, SREM, TEXT */
};

static const struct xop X_MILK = {.hex = OP_MILK,
                                  .seq = 1,
                                  .hlc = H_,
                                  .kind = WEFT_OP_SET,
                                  .path_hex = OP_MILK_PATH,
                                  .value_hex = OP_MILK_VALUE};
static const struct xop X_SET = {.hex = OP_SET,
                                 .seq = 2,
                                 .hlc = H_ + 1,
                                 .kind = WEFT_OP_SET,
                                 .path_hex = OP_SET_PATH,
                                 .value_hex = OP_SET_VALUE};
static const struct xop X_REPLACE = {.hex = OP_REPLACE,
                                     .seq = 3,
                                     .hlc = H_ + 2,
                                     .kind = WEFT_OP_REPLACE,
                                     .path_hex = OP_REPLACE_PATH,
                                     .value_hex = OP_REPLACE_VALUE};
static const struct xop X_DELETE = {.hex = OP_DELETE,
                                    .seq = 4,
                                    .hlc = H_ + 3,
                                    .kind = WEFT_OP_DELETE,
                                    .path_hex = OP_DELETE_PATH,
                                    .value_hex = OP_DELETE_VALUE};
static const struct xop X_INCR = {.hex = OP_INCR,
                                  .seq = 5,
                                  .hlc = H_ + 4,
                                  .kind = WEFT_OP_INCR,
                                  .path_hex = OP_INCR_PATH,
                                  .value_hex = OP_INCR_VALUE,
                                  .delta = -2,
                                  .p = 3,
                                  .n = 2,
                                  .base_hlc = H_,
                                  .base_rep = R_,
                                  .claim = false};
static const struct xop X_SADD = {.hex = OP_SADD,
                                  .seq = 6,
                                  .hlc = H_ + 5,
                                  .kind = WEFT_OP_SADD,
                                  .path_hex = OP_SADD_PATH,
                                  .value_hex = OP_SADD_VALUE,
                                  .ctr = 1,
                                  .claim = false};
static const struct xop X_SREM = {.hex = OP_SREM,
                                  .seq = 7,
                                  .hlc = H_ + 6,
                                  .kind = WEFT_OP_SREM,
                                  .path_hex = OP_SREM_PATH,
                                  .value_hex = OP_SREM_VALUE,
                                  .ndots = 2,
                                  .dots = {{9, 3, 2}, {R_, 1, 1}},
                                  .claim = true};
static const struct xop X_TEXT = {.hex = OP_TEXT,
                                  .seq = 8,
                                  .hlc = H_ + 7,
                                  .kind = WEFT_OP_TEXT,
                                  .path_hex = OP_TEXT_PATH,
                                  .value_hex = OP_TEXT_VALUE,
                                  .base_hlc = 0,
                                  .base_rep = 0,
                                  .claim = true};

/* The op of x as our encoder takes it (path and value are pre-encoded). */
static void op_of(const struct xop *x, struct weft_op *op)
{
	memset(op, 0, sizeof(*op));
	op->replica = R_;
	op->incarnation = 1;
	op->seq = x->seq;
	op->hlc = x->hlc;
	op->kind = x->kind;
	op->coll = "todos";
	op->coll_len = 5;
	op->id = "1";
	op->id_len = 1;
	op->path = unhex(x->path_hex, &op->path_len);
	op->value = unhex(x->value_hex, &op->value_len);
}

static void check_value(const struct weft_op *op, const struct xop *x)
{
	struct weft_incr inc;
	struct weft_setop so;
	struct weft_textop to;

	switch (x->kind) {
	case WEFT_OP_INCR:
		assert_int_equal(weft__op_incr_parse(op->value, op->value_len, &inc), WEFT_OK);
		assert_int_equal(inc.delta, x->delta);
		assert_int_equal(inc.p, x->p);
		assert_int_equal(inc.n, x->n);
		assert_int_equal(inc.base.hlc, x->base_hlc);
		assert_int_equal(inc.base.replica, x->base_rep);
		assert_int_equal(inc.claim, x->claim);
		break;
	case WEFT_OP_SADD:
	case WEFT_OP_SREM:
		assert_int_equal(weft__op_set_parse(x->kind, op->value, op->value_len, &so),
		                 WEFT_OK);
		assert_bytes(so.elem, so.elem_len, OP_ELEM);
		assert_int_equal(so.claim, x->claim);
		if (x->kind == WEFT_OP_SADD) {
			assert_int_equal(so.ctr, x->ctr);
		} else {
			struct mp_reader r;

			assert_int_equal(so.ndots, x->ndots);
			weft__mp_reader_init(&r, so.dots, so.dots_len);
			for (uint32_t i = 0; i < so.ndots; i++) {
				struct weft_dot d;

				assert_int_equal(weft__op_dot_read(&r, &d), WEFT_OK);
				assert_int_equal(d.replica, x->dots[i].replica);
				assert_int_equal(d.inc, x->dots[i].inc);
				assert_int_equal(d.ctr, x->dots[i].ctr);
			}
			assert_int_equal(weft__mp_reader_left(&r), 0);
		}
		break;
	case WEFT_OP_TEXT:
		assert_int_equal(weft__op_text_parse(op->value, op->value_len, &to), WEFT_OK);
		assert_int_equal(to.update_len, 0);
		assert_int_equal(to.base.hlc, x->base_hlc);
		assert_int_equal(to.base.replica, x->base_rep);
		assert_int_equal(to.claim, x->claim);
		break;
	default:
		break;
	}
}

/* Decodes one op at r; checks every field against x unless x is NULL. */
static int dec_op(struct mp_reader *r, const struct xop *x)
{
	const uint8_t *start = r->p;
	struct weft_op op;
	int rc = weft__op_decode(r, &op);

	if (rc != WEFT_OK || !x)
		return rc;
	assert_int_equal(op.replica, R_);
	assert_int_equal(op.incarnation, 1);
	assert_int_equal(op.seq, x->seq);
	assert_int_equal(op.hlc, x->hlc);
	assert_int_equal(op.kind, x->kind);
	assert_str(op.coll, op.coll_len, "todos");
	assert_str(op.id, op.id_len, "1");
	assert_bytes(op.path, op.path_len, x->path_hex);
	assert_bytes(op.value, op.value_len, x->value_hex);
	assert_ptr_equal(op.raw, start);
	assert_bytes(op.raw, op.raw_len, x->hex);
	check_value(&op, x);
	return WEFT_OK;
}

/* ---- units ---- */

struct xunit {
	bool txn;
	uint32_t nops;
	const struct xop *ops[2];
};

static void enc_units(struct mp_buf *b, const struct xunit *u, uint32_t n)
{
	for (uint32_t i = 0; i < n; i++) {
		if (u[i].txn)
			weft__unit_txn_write(b, u[i].nops);
		for (uint32_t k = 0; k < u[i].nops; k++) {
			struct weft_op op;

			op_of(u[i].ops[k], &op);
			weft__op_encode(b, &op);
		}
	}
}

/* Reads n units at r (weft__unit_read, then weft__op_decode of each op).
 * With chk, checks them against u[0..nu). */
static int dec_units(struct mp_reader *r, uint32_t n, const struct xunit *u, uint32_t nu, bool chk)
{
	if (chk)
		assert_int_equal(n, nu);
	for (uint32_t i = 0; i < n; i++) {
		const uint8_t *start = r->p;
		struct weft_unit wu;
		struct mp_reader ops;
		int rc = weft__unit_read(r, &wu);

		if (rc != WEFT_OK)
			return rc;
		if (chk) {
			assert_int_equal(wu.txn, u[i].txn);
			assert_int_equal(wu.nops, u[i].nops);
			assert_ptr_equal(wu.raw, start);
			assert_int_equal(wu.raw_len, (size_t)(r->p - start));
		}
		ops = wu.ops;
		for (uint32_t k = 0; k < wu.nops; k++)
			if ((rc = dec_op(&ops, chk ? u[i].ops[k] : NULL)) != WEFT_OK)
				return rc;
		if (weft__mp_reader_left(&ops) != 0)
			return WEFT_EPROTO;
	}
	return WEFT_OK;
}

/* ---- messages: expected values, encoders and decoders ---- */

static int begin(struct mp_reader *r, int want, uint32_t *nf, bool chk)
{
	int type, rc = weft__msg_begin(r, &type, nf);

	if (rc != WEFT_OK)
		return rc;
	if (chk)
		assert_int_equal(type, want);
	return type == want ? WEFT_OK : WEFT_EPROTO;
}

static void check_caps(const struct mp_reader *caps, uint32_t ncaps, const char *const *want)
{
	struct mp_reader r = *caps;
	uint32_t n = 0;

	while (want && want[n])
		n++;
	assert_int_equal(ncaps, n);
	for (uint32_t i = 0; i < n; i++) {
		const char *s;
		size_t len;

		assert_int_equal(weft__mp_read_str(&r, &s, &len), WEFT_OK);
		assert_str(s, len, want[i]);
		assert_true(weft__caps_has(caps, ncaps, want[i]));
	}
	assert_int_equal(weft__mp_reader_left(&r), 0);
	assert_false(weft__caps_has(caps, ncaps, "nope"));
}

/* HELLO */
static void enc_hello(struct mp_buf *b, const void *x)
{
	weft__msg_hello_write(b, x);
}

static int dec_hello(struct mp_reader *r, const void *x, bool chk)
{
	const struct weft_hello *e = x;
	struct weft_hello h;
	uint32_t nf;
	int rc;

	if ((rc = begin(r, WEFT_MSG_HELLO, &nf, chk)) != WEFT_OK ||
	    (rc = weft__msg_hello_read(r, nf, &h)) != WEFT_OK || !chk)
		return rc;
	assert_int_equal(h.version, e->version);
	assert_int_equal(h.replica, e->replica);
	assert_int_equal(h.incarnation, e->incarnation);
	assert_int_equal(h.has_cursor, e->has_cursor);
	if (e->has_cursor) {
		assert_int_equal(h.cursor.epoch, e->cursor.epoch);
		assert_int_equal(h.cursor.pos, e->cursor.pos);
	}
	if (e->token) {
		assert_non_null(h.token);
		assert_str(h.token, h.token_len, e->token);
	} else {
		assert_null(h.token);
	}
	check_caps(&h.caps, h.ncaps, e->cap_names);
	return WEFT_OK;
}

static const struct weft_hello X_HELLO = {.version = 1, .replica = R_, .incarnation = 1};
static const char *const hello_caps[] = {"txn", "ping", NULL};
static const struct weft_hello X_HELLO_FULL = {.version = 1,
                                               .replica = R_,
                                               .incarnation = 7,
                                               .has_cursor = true,
                                               .cursor = {E_, 42},
                                               .token = "tok",
                                               .token_len = 3,
                                               .cap_names = hello_caps};

/* WELCOME */
static void enc_welcome(struct mp_buf *b, const void *x)
{
	weft__msg_welcome_write(b, x);
}

static int dec_welcome(struct mp_reader *r, const void *x, bool chk)
{
	const struct weft_welcome *e = x;
	struct weft_welcome w;
	uint32_t nf;
	int rc;

	if ((rc = begin(r, WEFT_MSG_WELCOME, &nf, chk)) != WEFT_OK ||
	    (rc = weft__msg_welcome_read(r, nf, &w)) != WEFT_OK || !chk)
		return rc;
	assert_int_equal(w.version, e->version);
	assert_int_equal(w.server_time_ms, e->server_time_ms);
	assert_int_equal(w.max_message, e->max_message);
	assert_int_equal(w.max_push, e->max_push);
	assert_int_equal(w.max_drift_ms, e->max_drift_ms);
	assert_int_equal(w.max_txn_ops, e->max_txn_ops);
	assert_int_equal(w.heartbeat_ms, e->heartbeat_ms);
	check_caps(&w.caps, w.ncaps, e->cap_names);
	return WEFT_OK;
}

static const char *const welcome_caps[] = {"txn", "reject", "ping", "progress", NULL};
static const struct weft_welcome X_WELCOME = {.version = 1,
                                              .server_time_ms = UINT64_C(1700000000000),
                                              .max_message = 16777216,
                                              .max_push = 10000,
                                              .max_drift_ms = 60000,
                                              .max_txn_ops = 1000,
                                              .heartbeat_ms = 30000,
                                              .cap_names = welcome_caps};
/* The five fields of an older server: the rest take their defaults. */
static const struct weft_welcome X_WELCOME_MIN = {.version = 1,
                                                  .server_time_ms = UINT64_C(1700000000000),
                                                  .max_message = 16777216,
                                                  .max_push = 10000,
                                                  .max_drift_ms = 60000,
                                                  .max_txn_ops = 10000,
                                                  .heartbeat_ms = 0};

/* PUSH and CHANGES */
struct xunits {
	const struct xunit *u;
	uint32_t n;
	/* CHANGES only */
	uint64_t pos;
	bool progress;
	uint64_t done, total;
};

static void enc_push(struct mp_buf *b, const void *x)
{
	const struct xunits *e = x;

	weft__msg_push_begin(b, e->n);
	enc_units(b, e->u, e->n);
}

/* There is no PUSH reader in proto.h: this is what a receiver (hub.c)
 * does with one. */
static int dec_push(struct mp_reader *r, const void *x, bool chk)
{
	const struct xunits *e = x;
	uint32_t nf, n;
	int rc;

	if ((rc = begin(r, WEFT_MSG_PUSH, &nf, chk)) != WEFT_OK)
		return rc;
	if (nf < 2)
		return WEFT_EPROTO;
	if ((rc = weft__mp_read_array(r, &n)) != WEFT_OK ||
	    (rc = dec_units(r, n, e->u, e->n, chk)) != WEFT_OK)
		return rc;
	return weft__msg_skip_rest(r, nf, 2);
}

static void enc_changes(struct mp_buf *b, const void *x)
{
	const struct xunits *e = x;
	struct weft_cursor c = {E_, e->pos};

	weft__msg_changes_begin(b, e->n, e->progress);
	enc_units(b, e->u, e->n);
	weft__msg_changes_end(b, &c, e->done, e->total);
}

static int dec_changes(struct mp_reader *r, const void *x, bool chk)
{
	const struct xunits *e = x;
	struct weft_changes c;
	uint32_t nf;
	int rc;

	if ((rc = begin(r, WEFT_MSG_CHANGES, &nf, chk)) != WEFT_OK ||
	    (rc = weft__msg_changes_read(r, nf, &c)) != WEFT_OK)
		return rc;
	if (chk) {
		assert_int_equal(c.cursor.epoch, E_);
		assert_int_equal(c.cursor.pos, e->pos);
		assert_int_equal(c.has_progress, e->progress);
		assert_int_equal(c.done, e->done);
		assert_int_equal(c.total, e->total);
	}
	if ((rc = dec_units(&c.units, c.nunits, e->u, e->n, chk)) != WEFT_OK)
		return rc;
	return weft__mp_reader_left(&c.units) == 0 ? WEFT_OK : WEFT_EPROTO;
}

static const struct xunit U_MILK[] = {{false, 1, {&X_MILK}}};
static const struct xunit U_TWO[] = {{false, 1, {&X_SET}}, {false, 1, {&X_REPLACE}}};
static const struct xunit U_TXN[] = {{true, 2, {&X_DELETE, &X_INCR}}};
static const struct xunit U_MIXED[] = {{false, 1, {&X_SADD}}, {true, 2, {&X_SREM, &X_TEXT}}};
static const struct xunit U_SADD[] = {{false, 1, {&X_SADD}}};

static const struct xunits X_PUSH_ONE = {.u = U_MILK, .n = 1};
static const struct xunits X_PUSH_TWO = {.u = U_TWO, .n = 2};
static const struct xunits X_PUSH_TXN = {.u = U_TXN, .n = 1};
static const struct xunits X_PUSH_MIXED = {.u = U_MIXED, .n = 2};
static const struct xunits X_CHANGES_LIVE = {.u = U_SADD, .n = 1, .pos = 7};
static const struct xunits X_CHANGES_CATCHUP = {
    .u = U_TWO, .n = 2, .pos = 2, .progress = true, .done = 2, .total = 5};
static const struct xunits X_CHANGES_TXN = {.u = U_TXN, .n = 1, .pos = 3};

/* ACK and REJECT */
struct xstate {
	const char *coll, *id, *state_hex;
};

struct xack {
	uint32_t inc;
	uint64_t seq;
	bool has_cursor; /* ACK: field 5, the cursor (E, cpos) */
	uint64_t cpos;
	uint64_t last_seq; /* last_seq, code, reason: REJECT */
	int code;
	const char *reason;
	uint32_t nre;
	struct {
		uint32_t inc;
		uint64_t seq, hlc;
	} re[2];
	uint32_t nst;
	struct xstate st[2];
};

static void check_states(struct mp_reader r, uint32_t n, const struct xack *e)
{
	assert_int_equal(n, e->nst);
	for (uint32_t i = 0; i < n; i++) {
		const char *c, *id;
		size_t clen, ilen, slen;
		const void *st;

		assert_int_equal(weft__msg_doc_state_read(&r, &c, &clen, &id, &ilen, &st, &slen),
		                 WEFT_OK);
		assert_str(c, clen, e->st[i].coll);
		assert_str(id, ilen, e->st[i].id);
		assert_bytes(st, slen, e->st[i].state_hex);
	}
	assert_int_equal(weft__mp_reader_left(&r), 0);
}

static void enc_states(struct mp_buf *b, const struct xack *e)
{
	for (uint32_t i = 0; i < e->nst; i++) {
		size_t len;
		const uint8_t *st = unhex(e->st[i].state_hex, &len);

		weft__msg_doc_state_write(b, e->st[i].coll, strlen(e->st[i].coll), e->st[i].id,
		                          strlen(e->st[i].id), st, len);
	}
}

static void enc_ack(struct mp_buf *b, const void *x)
{
	const struct xack *e = x;

	struct weft_cursor c = {E_, e->cpos};

	if (e->has_cursor)
		weft__msg_ack_begin(b, e->inc, e->seq, e->nre, true);
	else
		weft__msg_ack_write(b, e->inc, e->seq, e->nre);
	for (uint32_t i = 0; i < e->nre; i++)
		weft__msg_restamp_write(b, e->re[i].inc, e->re[i].seq, e->re[i].hlc);
	weft__msg_ack_states(b, e->nst);
	enc_states(b, e);
	if (e->has_cursor)
		weft__cursor_write(b, &c);
}

static int dec_ack(struct mp_reader *r, const void *x, bool chk)
{
	const struct xack *e = x;
	struct weft_ack a;
	struct mp_reader rs;
	uint32_t nf;
	int rc;

	if ((rc = begin(r, WEFT_MSG_ACK, &nf, chk)) != WEFT_OK ||
	    (rc = weft__msg_ack_read(r, nf, &a)) != WEFT_OK || !chk)
		return rc;
	assert_int_equal(a.incarnation, e->inc);
	assert_int_equal(a.seq, e->seq);
	assert_int_equal(a.has_cursor, e->has_cursor);
	if (e->has_cursor) {
		assert_int_equal(a.cursor.epoch, E_);
		assert_int_equal(a.cursor.pos, e->cpos);
	}
	assert_int_equal(a.nrestamps, e->nre);
	rs = a.restamps;
	for (uint32_t i = 0; i < a.nrestamps; i++) {
		uint32_t inc;
		uint64_t seq, hlc;

		assert_int_equal(weft__msg_restamp_read(&rs, &inc, &seq, &hlc), WEFT_OK);
		assert_int_equal(inc, e->re[i].inc);
		assert_int_equal(seq, e->re[i].seq);
		assert_int_equal(hlc, e->re[i].hlc);
	}
	assert_int_equal(weft__mp_reader_left(&rs), 0);
	check_states(a.states, a.nstates, e);
	return WEFT_OK;
}

static const struct xack X_ACK = {.inc = 1, .seq = 3};
static const struct xack X_ACK_CURSOR = {.inc = 1, .seq = 3, .has_cursor = true, .cpos = 9};
static const struct xack X_ACK_RESTAMP = {
    .inc = 1,
    .seq = 5,
    .nre = 2,
    .re = {{1, 4, UINT64_C(0x018bcfe568010000)}, {1, 5, UINT64_C(0x018bcfe568010001)}},
    .nst = 1,
    .st = {{"todos", "1", "92 01 c0"}}};

static void enc_reject(struct mp_buf *b, const void *x)
{
	const struct xack *e = x;

	weft__msg_reject_write(b, e->inc, e->seq, e->last_seq, e->code, e->reason, e->nst);
	enc_states(b, e);
}

static int dec_reject(struct mp_reader *r, const void *x, bool chk)
{
	const struct xack *e = x;
	struct weft_reject j;
	uint32_t nf;
	int rc;

	if ((rc = begin(r, WEFT_MSG_REJECT, &nf, chk)) != WEFT_OK ||
	    (rc = weft__msg_reject_read(r, nf, &j)) != WEFT_OK || !chk)
		return rc;
	assert_int_equal(j.incarnation, e->inc);
	assert_int_equal(j.first_seq, e->seq);
	assert_int_equal(j.last_seq, e->last_seq);
	assert_int_equal(j.code, e->code);
	assert_str(j.reason, j.reason_len, e->reason);
	check_states(j.states, j.nstates, e);
	return WEFT_OK;
}

static const struct xack X_REJECT = {
    .inc = 1, .seq = 4, .last_seq = 5, .code = WEFT_REJECT_INVALID, .reason = "bad op"};
static const struct xack X_REJECT_STATES = {.inc = 1,
                                            .seq = 6,
                                            .last_seq = 6,
                                            .code = WEFT_REJECT_TOO_BIG,
                                            .reason = "too big",
                                            .nst = 2,
                                            .st = {{"todos", "1", "92 01 c0"}, {"todos", "2", ""}}};

/* SNAPSHOT: the states of an xack, done in .seq and total in .last_seq. */
static void enc_snapshot(struct mp_buf *b, const void *x)
{
	const struct xack *e = x;

	weft__msg_snapshot_begin(b, e->nst);
	enc_states(b, e);
	weft__msg_snapshot_end(b, e->seq, e->last_seq);
}

static int dec_snapshot(struct mp_reader *r, const void *x, bool chk)
{
	const struct xack *e = x;
	struct weft_snapshot sn;
	uint32_t nf;
	int rc;

	if ((rc = begin(r, WEFT_MSG_SNAPSHOT, &nf, chk)) != WEFT_OK ||
	    (rc = weft__msg_snapshot_read(r, nf, &sn)) != WEFT_OK || !chk)
		return rc;
	assert_int_equal(sn.done, e->seq);
	assert_int_equal(sn.total, e->last_seq);
	check_states(sn.states, sn.nstates, e);
	return WEFT_OK;
}

static const struct xack X_SNAPSHOT = {
    .seq = 1, .last_seq = 2, .nst = 1, .st = {{"todos", "1", "92 01 c0"}}};

/* SYNCED */
static void enc_synced(struct mp_buf *b, const void *x)
{
	weft__msg_synced_write(b, x);
}

static int dec_synced(struct mp_reader *r, const void *x, bool chk)
{
	const struct weft_cursor *e = x;
	struct weft_cursor c;
	uint32_t nf;
	int rc;

	if ((rc = begin(r, WEFT_MSG_SYNCED, &nf, chk)) != WEFT_OK ||
	    (rc = weft__msg_synced_read(r, nf, &c)) != WEFT_OK || !chk)
		return rc;
	assert_int_equal(c.epoch, e->epoch);
	assert_int_equal(c.pos, e->pos);
	return WEFT_OK;
}

static const struct weft_cursor X_SYNCED = {E_, 42};

/* ERROR */
struct xtext {
	int type;
	int64_t code;
	const char *text;
};

static void enc_error(struct mp_buf *b, const void *x)
{
	const struct xtext *e = x;

	weft__msg_error_write(b, (int)e->code, e->text);
}

static int dec_error(struct mp_reader *r, const void *x, bool chk)
{
	const struct xtext *e = x;
	const char *msg;
	size_t len;
	int64_t code;
	uint32_t nf;
	int rc;

	if ((rc = begin(r, WEFT_MSG_ERROR, &nf, chk)) != WEFT_OK ||
	    (rc = weft__msg_error_read(r, nf, &code, &msg, &len)) != WEFT_OK || !chk)
		return rc;
	assert_int_equal(code, e->code);
	assert_str(msg, len, e->text);
	return WEFT_OK;
}

static const struct xtext X_ERROR = {WEFT_MSG_ERROR, WEFT_PERR_INTERNAL,
                                     "commit failed; retry later"};

/* PING, PONG */
struct xping {
	int type;
	uint64_t nonce;
};

static void enc_ping(struct mp_buf *b, const void *x)
{
	const struct xping *e = x;

	weft__msg_ping_write(b, e->type, e->nonce);
}

static int dec_ping(struct mp_reader *r, const void *x, bool chk)
{
	const struct xping *e = x;
	uint64_t nonce;
	uint32_t nf;
	int rc;

	if ((rc = begin(r, e->type, &nf, chk)) != WEFT_OK ||
	    (rc = weft__msg_ping_read(r, nf, &nonce)) != WEFT_OK || !chk)
		return rc;
	assert_int_equal(nonce, e->nonce);
	return WEFT_OK;
}

static const struct xping X_PING = {WEFT_MSG_PING, UINT64_C(0x0123456789abcdef)};
static const struct xping X_PONG = {WEFT_MSG_PONG, 300};

/* BYE */
static void enc_bye(struct mp_buf *b, const void *x)
{
	const struct xtext *e = x;

	weft__msg_bye_write(b, e->text);
}

static int dec_bye(struct mp_reader *r, const void *x, bool chk)
{
	const struct xtext *e = x;
	const char *why;
	size_t len;
	uint32_t nf;
	int rc;

	if ((rc = begin(r, WEFT_MSG_BYE, &nf, chk)) != WEFT_OK ||
	    (rc = weft__msg_bye_read(r, nf, &why, &len)) != WEFT_OK || !chk)
		return rc;
	assert_str(why, len, e->text);
	return WEFT_OK;
}

static const struct xtext X_BYE = {WEFT_MSG_BYE, 0, "done"};

/* A type this version does not know: well-formed, and skipped whole. */
static int dec_unknown(struct mp_reader *r, const void *x, bool chk)
{
	const struct xping *e = x;
	uint32_t nf;
	int rc;

	if ((rc = begin(r, e->type, &nf, chk)) != WEFT_OK)
		return rc;
	return weft__msg_skip_rest(r, nf, 1);
}

static const struct xping X_UNKNOWN = {200, 0};

/* An op on its own. */
static void enc_op(struct mp_buf *b, const void *x)
{
	struct weft_op op;

	op_of(x, &op);
	weft__op_encode(b, &op);
}

static int dec_op_vec(struct mp_reader *r, const void *x, bool chk)
{
	int rc = dec_op(r, chk ? x : NULL);

	if (rc != WEFT_OK)
		return rc;
	return weft__mp_reader_left(r) == 0 ? WEFT_OK : WEFT_EPROTO;
}

/* ---- the vectors ---- */

enum ext { EXT_MSG, EXT_OP, EXT_NONE };

struct vec {
	const char *name;                                /* tests/data/golden/<name>.bin */
	const char *hex;                                 /* the bytes, derived by hand */
	const char *shape;                               /* what msgpack-c must see */
	void (*encode)(struct mp_buf *b, const void *x); /* NULL: decode-only */
	int (*decode)(struct mp_reader *r, const void *x, bool chk);
	const void *x; /* expected field values */
	/* EXT_NONE when the next field is an optional one this version
	 * knows (the older peers' forms, ACK without its cursor, CHANGES
	 * without progress): an unknown field can only come after it, which
	 * the vectors with every field check. */
	enum ext ext;
};

static struct vec vecs[] = {
    /* HELLO [1, version, replica, incarnation, cursor|nil, token|nil, caps]:
     * no cursor, no token, no caps (predates this file). */
    {"hello",
     "97"                  /* array(7) */
     "01"                  /* type 1 = HELLO */
     "01"                  /* version 1 */
     "cf 0102030405060708" /* replica R (uint64) */
     "01"                  /* incarnation 1 */
     "c0"                  /* cursor: nil */
     "c0"                  /* token: nil */
     "90",                 /* caps: [] */
     "[u1 u1 " SH_R " u1 n n []]", enc_hello, dec_hello, &X_HELLO, EXT_MSG},
    /* HELLO with a cursor, a token and two caps. */
    {"hello_full",
     "97"                  /* array(7) */
     "01"                  /* type 1 = HELLO */
     "01"                  /* version 1 */
     "cf 0102030405060708" /* replica R */
     "07"                  /* incarnation 7 */
     "c4 10"               /* cursor: bin 8, 16 bytes */
     "1122334455667788"    /*   epoch E (big-endian) */
     "000000000000002a"    /*   position 42 (big-endian) */
     "a3 746f6b"           /* token "tok" */
     "92 a3 74786e a4 70696e67" /* caps ["txn", "ping"] */,
     "[u1 u1 " SH_R " u7 " SH_CURSOR("000000000000002a") " s'tok' [s'txn' s'ping']]", enc_hello,
     dec_hello, &X_HELLO_FULL, EXT_MSG},
    /* The five fields of a first-cut v1 client (token nil, no caps). */
    {"hello_min",
     "95"                  /* array(5) */
     "01"                  /* type 1 = HELLO */
     "01"                  /* version 1 */
     "cf 0102030405060708" /* replica R */
     "01"                  /* incarnation 1 */
     "c0",                 /* cursor: nil */
     "[u1 u1 " SH_R " u1 n]", NULL, dec_hello, &X_HELLO, EXT_NONE},
    /* WELCOME [2, version, server_time_ms, max_message, max_push,
     * max_drift_ms, max_txn_ops, heartbeat_ms, caps]. */
    {"welcome",
     "99"                  /* array(9) */
     "02"                  /* type 2 = WELCOME */
     "01"                  /* version 1 */
     "cf 0000018bcfe56800" /* server_time_ms 1700000000000 (> 2^32: uint64) */
     "ce 01000000"         /* max_message 16777216 (uint32) */
     "cd 2710"             /* max_push 10000 (uint16) */
     "cd ea60"             /* max_drift_ms 60000 */
     "cd 03e8"             /* max_txn_ops 1000 */
     "cd 7530"             /* heartbeat_ms 30000 */
     "94"                  /* caps: array(4) */
     "a3 74786e"           /*   "txn" */
     "a6 72656a656374"     /*   "reject" */
     "a4 70696e67"         /*   "ping" */
     "a8 70726f6772657373" /*   "progress" */,
     "[u2 u1 u1700000000000 u16777216 u10000 u60000 u1000 u30000"
     " [s'txn' s'reject' s'ping' s'progress']]",
     enc_welcome, dec_welcome, &X_WELCOME, EXT_MSG},
    /* An older server's WELCOME: drift 60000, max_txn_ops = max_push,
     * no heartbeat, no caps. */
    {"welcome_min",
     "95"                  /* array(5) */
     "02"                  /* type 2 = WELCOME */
     "01"                  /* version 1 */
     "cf 0000018bcfe56800" /* server_time_ms 1700000000000 */
     "ce 01000000"         /* max_message 16777216 */
     "cd 2710",            /* max_push 10000 */
     "[u2 u1 u1700000000000 u16777216 u10000]", NULL, dec_welcome, &X_WELCOME_MIN, EXT_NONE},
    /* PUSH [3, [unit...]]: the worked example (predates this file). */
    {"push_one_op",
     "92" /* array(2) */
     "03" /* type 3 = PUSH */
     "91" /* units: array(1) */
     OP_MILK /* unit 1: a single op */,
     "[u3 [" SH_MILK "]]", enc_push, dec_push, &X_PUSH_ONE, EXT_MSG},
    /* PUSH of two single-op units. */
    {"push_ops",
     "92"   /* array(2) */
     "03"   /* type 3 = PUSH */
     "92"   /* units: array(2) */
     OP_SET /* unit 1: SET */
         OP_REPLACE /* unit 2: REPLACE */,
     "[u3 [" SH_SET " " SH_REPLACE "]]", enc_push, dec_push, &X_PUSH_TWO, EXT_MSG},
    /* PUSH of one transaction [[op, op]]. */
    {"push_txn",
     "92"      /* array(2) */
     "03"      /* type 3 = PUSH */
     "91"      /* units: array(1) */
     "91"      /* unit 1: a transaction, array(1) ... */
     "92"      /* ... of its ops, array(2) */
     OP_DELETE /* seq 4 */
         OP_INCR /* seq 5 */,
     "[u3 [[[" SH_DELETE " " SH_INCR "]]]]", enc_push, dec_push, &X_PUSH_TXN, EXT_MSG},
    /* PUSH of a single op, then a transaction. */
    {"push_mixed",
     "92"    /* array(2) */
     "03"    /* type 3 = PUSH */
     "92"    /* units: array(2) */
     OP_SADD /* unit 1: SADD */
     "91 92" /* unit 2: a transaction of 2 ops */
     OP_SREM /* seq 7 */
         OP_TEXT /* seq 8 */,
     "[u3 [" SH_SADD " [[" SH_SREM " " SH_TEXT "]]]]", enc_push, dec_push, &X_PUSH_MIXED, EXT_MSG},
    /* ACK [4, incarnation, seq, restamps, states], nothing re-stamped. */
    {"ack",
     "95" /* array(5) */
     "04" /* type 4 = ACK */
     "01" /* incarnation 1 */
     "03" /* seq 3 */
     "90" /* restamps: [] */
     "90" /* states: [] */,
     "[u4 u1 u3 [] []]", enc_ack, dec_ack, &X_ACK, EXT_NONE},
    /* ACK with the optional cursor: every committed unit up to position 9
     * has been sent on this connection. */
    {"ack_cursor",
     "96"               /* array(6) */
     "04"               /* type 4 = ACK */
     "01"               /* incarnation 1 */
     "03"               /* seq 3 */
     "90"               /* restamps: [] */
     "90"               /* states: [] */
     "c4 10"            /* cursor: bin 16 */
     "1122334455667788" /*   epoch E */
     "0000000000000009" /*   position 9 */,
     "[u4 u1 u3 [] [] " SH_CURSOR("0000000000000009") "]", enc_ack, dec_ack, &X_ACK_CURSOR,
     EXT_MSG},
    /* An older server's ACK, without the lists. */
    {"ack_min",
     "93" /* array(3) */
     "04" /* type 4 = ACK */
     "01" /* incarnation 1 */
     "03" /* seq 3 */,
     "[u4 u1 u3]", NULL, dec_ack, &X_ACK, EXT_NONE},
    /* ACK with two re-stamped ops and the state of their document. */
    {"ack_restamp",
     "95"                           /* array(5) */
     "04"                           /* type 4 = ACK */
     "01"                           /* incarnation 1 */
     "05"                           /* seq 5 */
     "92"                           /* restamps: array(2) */
     "93 01 04 cf 018bcfe568010000" /*   [1, 4, (ms + 1) << 16] */
     "93 01 05 cf 018bcfe568010001" /*   [1, 5, (ms + 1) << 16 | 1] */
     "91"                           /* states: array(1) */
     "93 a5 746f646f73 a1 31"       /*   ["todos", "1", */
     "c4 03 9201c0",                /*    state (opaque here): bin 8 of 3 bytes] */
     "[u4 u1 u5 [[u1 u4 u0x018bcfe568010000] [u1 u5 u0x018bcfe568010001]]"
     " [[s'todos' s'1' x9201c0]]]",
     enc_ack, dec_ack, &X_ACK_RESTAMP, EXT_NONE},
    /* CHANGES [5, [unit...], cursor]: realtime, no progress. */
    {"changes_live",
     "93"               /* array(3) */
     "05"               /* type 5 = CHANGES */
     "91"               /* units: array(1) */
     OP_SADD            /* unit 1 */
     "c4 10"            /* cursor: bin 16 */
     "1122334455667788" /*   epoch E */
     "0000000000000007" /*   position 7 */,
     "[u5 [" SH_SADD "] " SH_CURSOR("0000000000000007") "]", enc_changes, dec_changes,
     &X_CHANGES_LIVE, EXT_NONE},
    /* CHANGES [5, [unit...], cursor, [done, total]]: catch-up. */
    {"changes_catchup",
     "94"               /* array(4) */
     "05"               /* type 5 = CHANGES */
     "92"               /* units: array(2) */
     OP_SET             /* unit 1, position 1 */
         OP_REPLACE     /* unit 2, position 2 */
     "c4 10"            /* cursor: bin 16 */
     "1122334455667788" /*   epoch E */
     "0000000000000002" /*   position 2 */
     "92 02 05" /* progress: [done 2, total 5] */,
     "[u5 [" SH_SET " " SH_REPLACE "] " SH_CURSOR("0000000000000002") " [u2 u5]]", enc_changes,
     dec_changes, &X_CHANGES_CATCHUP, EXT_MSG},
    /* CHANGES carrying a transaction unit. */
    {"changes_txn",
     "93"               /* array(3) */
     "05"               /* type 5 = CHANGES */
     "91"               /* units: array(1) */
     "91 92"            /* unit 1: a transaction of 2 ops */
     OP_DELETE          /*   seq 4 */
         OP_INCR        /*   seq 5 */
     "c4 10"            /* cursor: bin 16 */
     "1122334455667788" /*   epoch E */
     "0000000000000003" /*   position 3 */,
     "[u5 [[[" SH_DELETE " " SH_INCR "]]] " SH_CURSOR("0000000000000003") "]", enc_changes,
     dec_changes, &X_CHANGES_TXN, EXT_NONE},
    /* SYNCED [6, cursor]. */
    {"synced",
     "92"               /* array(2) */
     "06"               /* type 6 = SYNCED */
     "c4 10"            /* cursor: bin 16 */
     "1122334455667788" /*   epoch E */
     "000000000000002a" /*   position 42 */,
     "[u6 " SH_CURSOR("000000000000002a") "]", enc_synced, dec_synced, &X_SYNCED, EXT_MSG},
    /* ERROR [7, code, message]. */
    {"error",
     "93"                                /* array(3) */
     "07"                                /* type 7 = ERROR */
     "04"                                /* code 4 = INTERNAL */
     "ba"                                /* message: fixstr 26 */
     "636f6d6d6974 20 6661696c65643b 20" /*   "commit failed; " */
     "7265747279 20 6c61746572" /*   "retry later" */,
     "[u7 u4 s'commit failed; retry later']", enc_error, dec_error, &X_ERROR, EXT_MSG},
    /* REJECT [8, incarnation, first_seq, last_seq, code, reason, states]:
     * a transaction of seqs 4..5, no states. */
    {"reject",
     "97"              /* array(7) */
     "08"              /* type 8 = REJECT */
     "01"              /* incarnation 1 */
     "04"              /* first_seq 4 */
     "05"              /* last_seq 5 */
     "01"              /* code 1 = INVALID */
     "a6 626164206f70" /* reason "bad op" */
     "90" /* states: [] */,
     "[u8 u1 u4 u5 u1 s'bad op' []]", enc_reject, dec_reject, &X_REJECT, EXT_MSG},
    /* REJECT of one op with the states of two documents. */
    {"reject_states",
     "97"                     /* array(7) */
     "08"                     /* type 8 = REJECT */
     "01"                     /* incarnation 1 */
     "06"                     /* first_seq 6 */
     "06"                     /* last_seq 6 */
     "02"                     /* code 2 = TOO_BIG */
     "a7 746f6f20626967"      /* reason "too big" */
     "92"                     /* states: array(2) */
     "93 a5 746f646f73 a1 31" /*   ["todos", "1", */
     "c4 03 9201c0"           /*    bin 8 of 3 bytes] */
     "93 a5 746f646f73 a1 32" /*   ["todos", "2", */
     "c4 00" /*    bin 8 of 0 bytes] */,
     "[u8 u1 u6 u6 u2 s'too big' [[s'todos' s'1' x9201c0] [s'todos' s'2' x]]]", enc_reject,
     dec_reject, &X_REJECT_STATES, EXT_MSG},
    /* PING [9, nonce]. */
    {"ping",
     "92" /* array(2) */
     "09" /* type 9 = PING */
     "cf 0123456789abcdef" /* nonce (uint64) */,
     "[u9 u0x0123456789abcdef]", enc_ping, dec_ping, &X_PING, EXT_MSG},
    /* PONG [10, nonce]. */
    {"pong",
     "92" /* array(2) */
     "0a" /* type 10 = PONG */
     "cd 012c" /* nonce 300 (uint16) */,
     "[u10 u300]", enc_ping, dec_ping, &X_PONG, EXT_MSG},
    /* BYE [11, reason]. */
    {"bye",
     "92" /* array(2) */
     "0b" /* type 11 = BYE */
     "a4 646f6e65" /* reason "done" */,
     "[u11 s'done']", enc_bye, dec_bye, &X_BYE, EXT_MSG},
    /* SNAPSHOT [12, [[collection, id, state]...], done, total]. */
    {"snapshot",
     "94"                     /* array(4) */
     "0c"                     /* type 12 = SNAPSHOT */
     "91"                     /* states: array(1) */
     "93 a5 746f646f73 a1 31" /*   ["todos", "1", */
     "c4 03 9201c0"           /*    bin 8 of 3 bytes] */
     "01"                     /* done 1 */
     "02" /* total 2 */,
     "[u12 [[s'todos' s'1' x9201c0]] u1 u2]", enc_snapshot, dec_snapshot, &X_SNAPSHOT, EXT_MSG},
    /* A later version's message type: read and skipped, not an error. */
    {"unknown_type",
     "92"    /* array(2) */
     "cc c8" /* type 200 (uint8) */
     "a1 78" /* "x" */,
     "[u200 s'x']", NULL, dec_unknown, &X_UNKNOWN, EXT_MSG},
    /* Each op kind on its own. */
    {"op_set", OP_SET, SH_SET, enc_op, dec_op_vec, &X_SET, EXT_OP},
    {"op_replace", OP_REPLACE, SH_REPLACE, enc_op, dec_op_vec, &X_REPLACE, EXT_OP},
    {"op_delete", OP_DELETE, SH_DELETE, enc_op, dec_op_vec, &X_DELETE, EXT_OP},
    {"op_incr", OP_INCR, SH_INCR, enc_op, dec_op_vec, &X_INCR, EXT_OP},
    {"op_sadd", OP_SADD, SH_SADD, enc_op, dec_op_vec, &X_SADD, EXT_OP},
    {"op_srem", OP_SREM, SH_SREM, enc_op, dec_op_vec, &X_SREM, EXT_OP},
    {"op_text", OP_TEXT, SH_TEXT, enc_op, dec_op_vec, &X_TEXT, EXT_OP},
};

#define NVECS (sizeof(vecs) / sizeof(vecs[0]))

/* ---- msgpack-c, the independent decoder ---- */

static void shape_fail(const char *shape, const char *at, const char *what)
{
	fail_msg("msgpack-c: %s at offset %d of shape \"%s\"", what, (int)(at - shape), shape);
}

static void skip_sp(const char **sp)
{
	while (**sp == ' ')
		(*sp)++;
}

/* Matches o against the shape at *sp and advances *sp past it. */
static void shape_match(const msgpack_object *o, const char **sp, const char *shape)
{
	const char *s;
	char *end;

	skip_sp(sp);
	s = *sp;
	switch (*s) {
	case '[': {
		uint32_t i = 0;

		if (o->type != MSGPACK_OBJECT_ARRAY)
			shape_fail(shape, s, "not an array");
		*sp = s + 1;
		for (skip_sp(sp); **sp != ']'; skip_sp(sp)) {
			if (i >= o->via.array.size)
				shape_fail(shape, *sp, "array too short");
			shape_match(&o->via.array.ptr[i++], sp, shape);
		}
		if (i != o->via.array.size)
			shape_fail(shape, *sp, "array too long");
		(*sp)++;
		return;
	}
	case '{': {
		uint32_t i = 0;

		if (o->type != MSGPACK_OBJECT_MAP)
			shape_fail(shape, s, "not a map");
		*sp = s + 1;
		for (skip_sp(sp); **sp != '}'; skip_sp(sp)) {
			if (i >= o->via.map.size)
				shape_fail(shape, *sp, "map too short");
			shape_match(&o->via.map.ptr[i].key, sp, shape);
			shape_match(&o->via.map.ptr[i++].val, sp, shape);
		}
		if (i != o->via.map.size)
			shape_fail(shape, *sp, "map too long");
		(*sp)++;
		return;
	}
	case 'u': {
		unsigned long long v = strtoull(s + 1, &end, 0);

		if (o->type != MSGPACK_OBJECT_POSITIVE_INTEGER)
			shape_fail(shape, s, "not a positive integer");
		if (o->via.u64 != v)
			shape_fail(shape, s, "wrong unsigned value");
		*sp = end;
		return;
	}
	case 'i': {
		long long v = strtoll(s + 1, &end, 0);

		if (o->type != MSGPACK_OBJECT_NEGATIVE_INTEGER)
			shape_fail(shape, s, "not a negative integer");
		if (o->via.i64 != v)
			shape_fail(shape, s, "wrong negative value");
		*sp = end;
		return;
	}
	case 'd': {
		double v = strtod(s + 1, &end);

		if (o->type != MSGPACK_OBJECT_FLOAT64)
			shape_fail(shape, s, "not a float64");
		if (o->via.f64 != v)
			shape_fail(shape, s, "wrong float value");
		*sp = end;
		return;
	}
	case 'n':
		if (o->type != MSGPACK_OBJECT_NIL)
			shape_fail(shape, s, "not nil");
		*sp = s + 1;
		return;
	case 'T':
	case 'F':
		if (o->type != MSGPACK_OBJECT_BOOLEAN)
			shape_fail(shape, s, "not a boolean");
		if (o->via.boolean != (*s == 'T'))
			shape_fail(shape, s, "wrong boolean");
		*sp = s + 1;
		return;
	case 's': {
		const char *q = strchr(s + 2, '\'');

		if (s[1] != '\'' || !q)
			shape_fail(shape, s, "bad str in shape");
		if (o->type != MSGPACK_OBJECT_STR)
			shape_fail(shape, s, "not a str");
		if (o->via.str.size != (uint32_t)(q - s - 2) ||
		    memcmp(o->via.str.ptr, s + 2, o->via.str.size) != 0)
			shape_fail(shape, s, "wrong str");
		*sp = q + 1;
		return;
	}
	case 'x': {
		const char *q = s + 1;
		uint32_t n = 0;

		if (o->type != MSGPACK_OBJECT_BIN)
			shape_fail(shape, s, "not a bin");
		while (hexval(q[0]) >= 0 && hexval(q[1]) >= 0) {
			if (n >= o->via.bin.size ||
			    (uint8_t)o->via.bin.ptr[n] != (hexval(q[0]) << 4 | hexval(q[1])))
				shape_fail(shape, s, "wrong bin bytes");
			n++;
			q += 2;
		}
		if (n != o->via.bin.size)
			shape_fail(shape, s, "wrong bin length");
		*sp = q;
		return;
	}
	default:
		shape_fail(shape, s, "bad shape");
	}
}

static void check_shape(const msgpack_object *o, const char *shape)
{
	const char *sp = shape;

	shape_match(o, &sp, shape);
	skip_sp(&sp);
	if (*sp)
		shape_fail(shape, sp, "shape has more after the value");
}

/* (c): in one call, then byte by byte through the streaming unpacker. */
static void check_msgpack_c(const uint8_t *p, size_t len, const char *shape)
{
	msgpack_unpacked u;
	msgpack_unpacker *up;
	size_t off = 0;

	msgpack_unpacked_init(&u);
	assert_int_equal(msgpack_unpack_next(&u, (const char *)p, len, &off),
	                 MSGPACK_UNPACK_SUCCESS);
	assert_int_equal(off, len); /* one value, nothing after it */
	check_shape(&u.data, shape);

	up = msgpack_unpacker_new(64);
	assert_non_null(up);
	for (size_t i = 0; i < len; i++) {
		assert_true(msgpack_unpacker_reserve_buffer(up, 1));
		memcpy(msgpack_unpacker_buffer(up), p + i, 1);
		msgpack_unpacker_buffer_consumed(up, 1);
		/* No prefix is a whole value. */
		assert_int_equal(msgpack_unpacker_next(up, &u),
		                 i + 1 < len ? MSGPACK_UNPACK_CONTINUE : MSGPACK_UNPACK_SUCCESS);
	}
	check_shape(&u.data, shape);
	assert_int_equal(msgpack_unpacker_next(up, &u), MSGPACK_UNPACK_CONTINUE);
	msgpack_unpacker_free(up);
	msgpack_unpacked_destroy(&u);
}

/* ---- the test of one vector ---- */

static void test_vector(void **state)
{
	const struct vec *v = *state;
	size_t len, flen;
	const uint8_t *bytes = unhex(v->hex, &len);
	const uint8_t *file = read_golden(v->name, &flen);
	struct mp_buf *b = &scratch;
	struct mp_reader r;
	uint8_t *ext;

	/* The file holds the hand-derived bytes. */
	assert_int_equal(flen, len);
	assert_memory_equal(file, bytes, len);

	/* (a) our encoder */
	if (v->encode) {
		v->encode(b, v->x);
		assert_int_equal(b->err, 0);
		assert_int_equal(b->len, len);
		assert_memory_equal(b->data, bytes, len);
	}

	/* (b) our decoder */
	weft__mp_reader_init(&r, bytes, len);
	assert_int_equal(v->decode(&r, v->x, true), WEFT_OK);
	assert_int_equal(weft__mp_reader_left(&r), 0);

	/* (c) msgpack-c */
	check_msgpack_c(bytes, len, v->shape);

	/* (d) extensibility: one more element of an unknown field. */
	ext = keep(malloc(len + 16));
	memcpy(ext, bytes, len);
	if (v->ext != EXT_NONE) {
		static const uint8_t extra[] = {0x92, 0xa6, 'f', 'u', 't', 'u', 'r', 'e', 0xc0};

		assert_true(ext[0] >= 0x90 && ext[0] < 0x9f); /* a fixarray */
		ext[0]++;
		memcpy(ext + len, extra, sizeof(extra));
		weft__mp_reader_init(&r, ext, len + sizeof(extra));
		if (v->ext == EXT_MSG) {
			assert_int_equal(v->decode(&r, v->x, true), WEFT_OK);
			assert_int_equal(weft__mp_reader_left(&r), 0);
		} else {
			/* An op is exactly 9 elements. */
			assert_int_equal(v->decode(&r, v->x, false), WEFT_EPROTO);
			assert_ptr_equal(r.p, ext); /* the reader is left alone */
		}
		memcpy(ext, bytes, len);
	}
	/* A byte after a message is refused (an op is read from a stream of
	 * them, so this does not apply to one). */
	if (v->ext != EXT_OP) {
		ext[len] = 0xc0;
		weft__mp_reader_init(&r, ext, len + 1);
		assert_int_not_equal(v->decode(&r, v->x, false), WEFT_OK);
	}

	/* (e) every truncation is an error, in a buffer of exactly its size */
	for (size_t cut = 0; cut < len; cut++) {
		uint8_t *copy = cut_buf = malloc(cut ? cut : 1);
		int rc;

		assert_non_null(copy);
		memcpy(copy, bytes, cut);
		weft__mp_reader_init(&r, copy, cut);
		rc = v->decode(&r, v->x, false);
		if (rc >= 0)
			fail_msg("%s cut at %zu of %zu bytes: decoder returned %d", v->name, cut,
			         len, rc);
		free(copy);
		cut_buf = NULL;
	}
}

/* ---- limits of the optional fields (not golden: built with our writer) ---- */

static int read_built(struct mp_buf *b, int type_want)
{
	struct mp_reader r;
	uint32_t nf;
	int type, rc;

	weft__mp_reader_init(&r, b->data, b->len);
	if ((rc = weft__msg_begin(&r, &type, &nf)) != WEFT_OK)
		return rc;
	assert_int_equal(type, type_want);
	switch (type) {
	case WEFT_MSG_HELLO: {
		struct weft_hello h;

		return weft__msg_hello_read(&r, nf, &h);
	}
	case WEFT_MSG_ERROR: {
		const char *m;
		size_t ml;
		int64_t code;

		return weft__msg_error_read(&r, nf, &code, &m, &ml);
	}
	case WEFT_MSG_BYE: {
		const char *m;
		size_t ml;

		return weft__msg_bye_read(&r, nf, &m, &ml);
	}
	case WEFT_MSG_REJECT: {
		struct weft_reject j;

		return weft__msg_reject_read(&r, nf, &j);
	}
	default:
		return WEFT_EINVAL;
	}
}

/* A text of n bytes 'x' (NUL-terminated). */
static char *text_of(size_t n)
{
	char *s = keep(malloc(n + 1));

	memset(s, 'x', n);
	s[n] = 0;
	return s;
}

/* Writes a message of `type` (BYE, REJECT or ERROR) with a text of n bytes
 * and reads it back. */
static int text_msg(int type, size_t n)
{
	const char *text = text_of(n);

	weft__mp_buf_reset(&scratch);
	if (type == WEFT_MSG_BYE)
		weft__msg_bye_write(&scratch, text);
	else if (type == WEFT_MSG_REJECT)
		weft__msg_reject_write(&scratch, 1, 1, 1, WEFT_REJECT_INVALID, text, 0);
	else
		weft__msg_error_write(&scratch, WEFT_PERR_PROTOCOL, text);
	return read_built(&scratch, type);
}

static void check_text_limit(int type)
{
	for (size_t n = WEFT_MAX_REASON; n <= WEFT_MAX_REASON + 1; n++) {
		int rc = text_msg(type, n);

		if ((n <= WEFT_MAX_REASON) != (rc == WEFT_OK))
			fail_msg("message type %d with a text of %zu bytes (WEFT_MAX_REASON %d): "
			         "read returned %d, expected %s",
			         type, n, WEFT_MAX_REASON, rc,
			         n <= WEFT_MAX_REASON ? "WEFT_OK" : "WEFT_EPROTO");
	}
}

/*
 * proto.h: WEFT_MAX_REASON bounds "a REJECT / BYE / ERROR text",
 * WEFT_MAX_TOKEN the token, WEFT_MAX_CAPS and WEFT_MAX_CAP_LEN the caps.
 * Each limit is accepted and one past it refused.
 */
static void test_limits(void **state)
{
	const char *names[WEFT_MAX_CAPS + 2];
	struct weft_hello h = {.version = 1, .replica = 1, .incarnation = 1};
	static const size_t lens[] = {0, 1, WEFT_MAX_CAP_LEN, WEFT_MAX_CAP_LEN + 1};

	(void)state;
	check_text_limit(WEFT_MSG_BYE);
	check_text_limit(WEFT_MSG_REJECT);
	/* The token. */
	for (size_t n = WEFT_MAX_TOKEN; n <= WEFT_MAX_TOKEN + 1; n++) {
		h.token = text_of(n);
		h.token_len = n;
		weft__mp_buf_reset(&scratch);
		weft__msg_hello_write(&scratch, &h);
		assert_int_equal(read_built(&scratch, WEFT_MSG_HELLO),
		                 n <= WEFT_MAX_TOKEN ? WEFT_OK : WEFT_EPROTO);
	}
	h.token = NULL;
	h.token_len = 0;
	/* The number of caps. */
	for (size_t n = WEFT_MAX_CAPS; n <= WEFT_MAX_CAPS + 1; n++) {
		for (size_t i = 0; i < n; i++)
			names[i] = "c";
		names[n] = NULL;
		h.cap_names = names;
		weft__mp_buf_reset(&scratch);
		weft__msg_hello_write(&scratch, &h);
		assert_int_equal(read_built(&scratch, WEFT_MSG_HELLO),
		                 n <= WEFT_MAX_CAPS ? WEFT_OK : WEFT_EPROTO);
	}
	/* The length of one cap: 1..WEFT_MAX_CAP_LEN. */
	for (size_t i = 0; i < sizeof(lens) / sizeof(lens[0]); i++) {
		names[0] = text_of(lens[i]);
		names[1] = NULL;
		weft__mp_buf_reset(&scratch);
		weft__msg_hello_write(&scratch, &h);
		assert_int_equal(read_built(&scratch, WEFT_MSG_HELLO),
		                 lens[i] >= 1 && lens[i] <= WEFT_MAX_CAP_LEN ? WEFT_OK
		                                                             : WEFT_EPROTO);
	}
}

/* The ERROR text has the same bound (proto.h, WEFT_MAX_REASON), but
 * weft__msg_error_read does not check it: this test fails until it does. */
static void test_error_text_limit(void **state)
{
	(void)state;
	check_text_limit(WEFT_MSG_ERROR);
}

/* ---- running ---- */

static int free_kept(void **state)
{
	(void)state;
	while (nkept)
		free(kept[--nkept]);
	free(cut_buf);
	cut_buf = NULL;
	weft__mp_buf_free(&scratch);
	return 0;
}

/* `test_golden --write`: writes tests/data/golden/<name>.bin from the
 * literals above, for files that do not exist yet (never overwrites). */
static int write_files(void)
{
	int rc = 0;

	for (size_t i = 0; i < NVECS; i++) {
		char path[512];
		size_t len;
		const uint8_t *bytes = unhex(vecs[i].hex, &len);
		FILE *f;

		snprintf(path, sizeof(path), "%s/golden/%s.bin", WEFT_TEST_DATA_DIR, vecs[i].name);
		f = fopen(path, "wbx");
		if (!f) {
			printf("kept    %s\n", path);
			continue;
		}
		if (fwrite(bytes, 1, len, f) != len)
			rc = 1;
		if (fclose(f) != 0)
			rc = 1;
		printf("written %s (%zu bytes)\n", path, len);
	}
	(void)free_kept(NULL);
	return rc;
}

int main(int argc, char **argv)
{
	struct CMUnitTest tests[NVECS + 2];
	size_t n = 0;

	weft__mp_buf_init(&scratch, NULL, 0);
	if (argc > 1 && strcmp(argv[1], "--write") == 0)
		return write_files();
	for (size_t i = 0; i < NVECS; i++)
		tests[n++] = (struct CMUnitTest){.name = vecs[i].name,
		                                 .test_func = test_vector,
		                                 .teardown_func = free_kept,
		                                 .initial_state = &vecs[i]};
	tests[n++] = (struct CMUnitTest){
	    .name = "limits", .test_func = test_limits, .teardown_func = free_kept};
	tests[n++] = (struct CMUnitTest){.name = "error_text_limit",
	                                 .test_func = test_error_text_limit,
	                                 .teardown_func = free_kept};
	return _cmocka_run_group_tests("golden", tests, n, NULL, NULL);
}
