/*
 * test_proto.c - protocol messages and ops: the golden vectors in
 * tests/data/golden freeze the wire format (the encoder must produce them
 * byte for byte and the decoder must read them back), every message
 * round-trips, and every truncation or corruption of a valid message is
 * refused with an error, never a crash.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "weft/weft.h"
#include "core/op.h"
#include "core/proto.h"

static uint8_t *read_file(const char *name, size_t *len)
{
	char path[512];
	FILE *f;
	uint8_t *buf = malloc(1 << 16);

	snprintf(path, sizeof(path), "%s/golden/%s", WEFT_TEST_DATA_DIR, name);
	f = fopen(path, "rb");
	assert_non_null(f);
	assert_non_null(buf);
	*len = fread(buf, 1, 1 << 16, f);
	fclose(f);
	return buf;
}

static void test_golden_hello(void **state)
{
	struct weft_hello h = {.version = 1, .replica = 0x0102030405060708ULL, .incarnation = 1};
	struct weft_hello back;
	struct mp_buf b;
	struct mp_reader r;
	uint32_t nf;
	size_t len;
	int type;
	uint8_t *golden = read_file("hello.bin", &len);

	(void)state;
	weft__mp_buf_init(&b, NULL, 0);
	weft__msg_hello_write(&b, &h);
	assert_int_equal(b.len, len);
	assert_memory_equal(b.data, golden, len);
	weft__mp_reader_init(&r, golden, len);
	assert_int_equal(weft__msg_begin(&r, &type, &nf), WEFT_OK);
	assert_int_equal(type, WEFT_MSG_HELLO);
	assert_int_equal(weft__msg_hello_read(&r, nf, &back), WEFT_OK);
	assert_int_equal(back.replica, h.replica);
	assert_int_equal(back.incarnation, 1);
	assert_false(back.has_cursor);
	weft__mp_buf_free(&b);
	free(golden);
}

static void test_golden_push(void **state)
{
	static const uint8_t value[] = {0x81, 0xa5, 't', 'i', 't', 'l',
	                                'e',  0xa4, 'm', 'i', 'l', 'k'};
	struct weft_op op, back;
	struct mp_buf b;
	struct mp_reader r;
	uint32_t nf, n;
	size_t len;
	int type;
	uint8_t *golden = read_file("push_one_op.bin", &len);

	(void)state;
	memset(&op, 0, sizeof(op));
	op.replica = 0x0102030405060708ULL;
	op.incarnation = 1;
	op.seq = 1;
	op.hlc = WEFT_HLC_MAKE(1700000000000ULL, 0);
	op.kind = WEFT_OP_SET;
	op.coll = "todos";
	op.coll_len = 5;
	op.id = "1";
	op.id_len = 1;
	op.value = value;
	op.value_len = sizeof(value);
	weft__mp_buf_init(&b, NULL, 0);
	weft__mp_write_array(&b, 2);
	weft__mp_write_uint(&b, WEFT_MSG_PUSH);
	weft__mp_write_array(&b, 1);
	weft__op_encode(&b, &op);
	assert_int_equal(b.len, len);
	assert_memory_equal(b.data, golden, len);

	weft__mp_reader_init(&r, golden, len);
	assert_int_equal(weft__msg_begin(&r, &type, &nf), WEFT_OK);
	assert_int_equal(type, WEFT_MSG_PUSH);
	assert_int_equal(weft__mp_read_array(&r, &n), WEFT_OK);
	assert_int_equal(n, 1);
	assert_int_equal(weft__op_decode(&r, &back), WEFT_OK);
	assert_int_equal(back.hlc, op.hlc);
	assert_int_equal(back.seq, 1);
	assert_int_equal(back.value_len, sizeof(value));
	assert_memory_equal(back.value, value, sizeof(value));
	assert_int_equal(weft__mp_reader_left(&r), 0);

	/* Every truncation of the op is refused and leaves the reader alone. */
	for (size_t cut = 3; cut < len; cut++) {
		uint8_t *copy = malloc(cut);

		memcpy(copy, golden, cut);
		weft__mp_reader_init(&r, copy + 3, cut - 3);
		assert_int_not_equal(weft__op_decode(&r, &back), WEFT_OK);
		assert_ptr_equal(r.p, copy + 3);
		free(copy);
	}
	/* Every single-byte corruption either decodes to a valid op or is
	 * refused; none crashes (run under ASan in CI). */
	for (size_t i = 3; i < len; i++) {
		for (int v = 0; v < 256; v += 7) {
			uint8_t *copy = malloc(len);

			memcpy(copy, golden, len);
			copy[i] = (uint8_t)v;
			weft__mp_reader_init(&r, copy + 3, len - 3);
			(void)weft__op_decode(&r, &back);
			free(copy);
		}
	}
	weft__mp_buf_free(&b);
	free(golden);
}

static void test_messages_roundtrip_and_refuse_garbage(void **state)
{
	struct weft_cursor c = {0xdeadbeefcafef00dULL, 12345}, c2;
	struct weft_welcome w = {.version = 1,
	                         .server_time_ms = 1700000000000ULL,
	                         .max_message = 1 << 24,
	                         .max_push = 10000,
	                         .max_drift_ms = 5000,
	                         .max_txn_ops = 500,
	                         .heartbeat_ms = 30000},
	                    w2;
	struct mp_buf b;
	struct mp_reader r, rs;
	struct weft_ack ack;
	uint32_t nf;
	int64_t code;
	const char *msg;
	size_t mlen;
	int type;

	(void)state;
	weft__mp_buf_init(&b, NULL, 0);
	weft__msg_welcome_write(&b, &w);
	weft__mp_reader_init(&r, b.data, b.len);
	assert_int_equal(weft__msg_begin(&r, &type, &nf), WEFT_OK);
	assert_int_equal(weft__msg_welcome_read(&r, nf, &w2), WEFT_OK);
	assert_int_equal(w2.max_push, 10000);
	assert_int_equal(w2.server_time_ms, w.server_time_ms);
	assert_int_equal(w2.max_drift_ms, 5000);
	assert_int_equal(w2.max_txn_ops, 500);
	assert_int_equal(w2.heartbeat_ms, 30000);
	assert_int_equal(w2.ncaps, 0);

	weft__mp_buf_reset(&b);
	weft__msg_synced_write(&b, &c);
	weft__mp_reader_init(&r, b.data, b.len);
	assert_int_equal(weft__msg_begin(&r, &type, &nf), WEFT_OK);
	assert_int_equal(type, WEFT_MSG_SYNCED);
	assert_int_equal(weft__msg_synced_read(&r, nf, &c2), WEFT_OK);
	assert_int_equal(c2.epoch, c.epoch);
	assert_int_equal(c2.pos, c.pos);

	weft__mp_buf_reset(&b);
	weft__msg_ack_write(&b, 3, 77, 2);
	weft__msg_restamp_write(&b, 3, 76, 999);
	weft__msg_restamp_write(&b, 3, 77, 1000);
	weft__msg_ack_states(&b, 1);
	weft__msg_doc_state_write(&b, "todos", 5, "1", 1, "\x92\x01\xc0", 3);
	weft__mp_reader_init(&r, b.data, b.len);
	assert_int_equal(weft__msg_begin(&r, &type, &nf), WEFT_OK);
	assert_int_equal(weft__msg_ack_read(&r, nf, &ack), WEFT_OK);
	assert_int_equal(ack.incarnation, 3);
	assert_int_equal(ack.seq, 77);
	assert_int_equal(ack.nrestamps, 2);
	assert_int_equal(ack.nstates, 1);
	rs = ack.restamps;
	{
		uint32_t ri;
		uint64_t rseq, rh;

		assert_int_equal(weft__msg_restamp_read(&rs, &ri, &rseq, &rh), WEFT_OK);
		assert_int_equal(rseq, 76);
		assert_int_equal(rh, 999);
		assert_int_equal(weft__msg_restamp_read(&rs, &ri, &rseq, &rh), WEFT_OK);
		assert_int_equal(rh, 1000);
		assert_int_equal(weft__mp_reader_left(&rs), 0);
	}
	{
		const char *sc, *si;
		size_t scl, sil, sl;
		const void *st;

		assert_int_equal(
		    weft__msg_doc_state_read(&ack.states, &sc, &scl, &si, &sil, &st, &sl), WEFT_OK);
		assert_int_equal(scl, 5);
		assert_int_equal(sl, 3);
		assert_int_equal(weft__mp_reader_left(&ack.states), 0);
	}
	/* Truncated ACK. */
	for (size_t cut = 0; cut < b.len; cut++) {
		weft__mp_reader_init(&r, b.data, cut);
		assert_true(weft__msg_begin(&r, &type, &nf) != WEFT_OK ||
		            weft__msg_ack_read(&r, nf, &ack) != WEFT_OK);
	}

	weft__mp_buf_reset(&b);
	weft__msg_error_write(&b, WEFT_PERR_TOO_BIG, "too big");
	weft__mp_reader_init(&r, b.data, b.len);
	assert_int_equal(weft__msg_begin(&r, &type, &nf), WEFT_OK);
	assert_int_equal(weft__msg_error_read(&r, nf, &code, &msg, &mlen), WEFT_OK);
	assert_int_equal(code, WEFT_PERR_TOO_BIG);
	assert_int_equal(mlen, 7);

	/* A later version's extra trailing field is skipped. */
	weft__mp_buf_reset(&b);
	weft__mp_write_array(&b, 7);
	weft__mp_write_uint(&b, WEFT_MSG_ACK);
	weft__mp_write_uint(&b, 1);
	weft__mp_write_uint(&b, 2);
	weft__mp_write_array(&b, 0);
	weft__mp_write_array(&b, 0);
	weft__cursor_write(&b, &c);
	weft__mp_write_cstr(&b, "future");
	weft__mp_reader_init(&r, b.data, b.len);
	assert_int_equal(weft__msg_begin(&r, &type, &nf), WEFT_OK);
	assert_int_equal(weft__msg_ack_read(&r, nf, &ack), WEFT_OK);
	assert_true(ack.has_cursor);
	assert_int_equal(ack.cursor.pos, c.pos);

	/* Not messages at all. */
	{
		static const uint8_t bad[][4] = {
		    {0x90}, {0x91, 0x00}, {0x91, 0xcd, 0x01, 0x00}, {0xc0}, {0x91, 0xa1, 'x'},
		};

		for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
			weft__mp_reader_init(&r, bad[i], 4);
			assert_int_equal(weft__msg_begin(&r, &type, &nf), WEFT_EPROTO);
		}
	}
	/* Incarnation 0 and over the op format's limit are refused. */
	weft__mp_buf_reset(&b);
	weft__msg_ack_write(&b, 0, 1, 0);
	weft__msg_ack_states(&b, 0);
	weft__mp_reader_init(&r, b.data, b.len);
	assert_int_equal(weft__msg_begin(&r, &type, &nf), WEFT_OK);
	assert_int_equal(weft__msg_ack_read(&r, nf, &ack), WEFT_EPROTO);
	weft__mp_buf_reset(&b);
	weft__msg_ack_write(&b, WEFT_MAX_INCARNATION + 1, 1, 0);
	weft__msg_ack_states(&b, 0);
	weft__mp_reader_init(&r, b.data, b.len);
	assert_int_equal(weft__msg_begin(&r, &type, &nf), WEFT_OK);
	assert_int_equal(weft__msg_ack_read(&r, nf, &ack), WEFT_EPROTO);
	weft__mp_buf_free(&b);
}

/* Ops over the limits are refused with ETOOBIG; structurally bad ones with
 * EPROTO. */
static void test_op_limits(void **state)
{
	struct weft_op op, back;
	struct mp_buf val, b;
	struct mp_reader r;
	char big[WEFT_MAX_ID + 2];

	(void)state;
	memset(big, 'x', sizeof(big));
	memset(&op, 0, sizeof(op));
	op.replica = 1;
	op.incarnation = 1;
	op.seq = 1;
	op.hlc = 1;
	op.kind = WEFT_OP_SET;
	op.coll = "c";
	op.coll_len = 1;
	op.id = big;
	op.id_len = WEFT_MAX_ID + 1;
	weft__mp_buf_init(&val, NULL, 0);
	weft__mp_write_map(&val, 0);
	op.value = val.data;
	op.value_len = val.len;
	weft__mp_buf_init(&b, NULL, 0);
	weft__op_encode(&b, &op);
	weft__mp_reader_init(&r, b.data, b.len);
	assert_int_equal(weft__op_decode(&r, &back), WEFT_ETOOBIG);

	/* Nesting deeper than WEFT_MAX_DEPTH. */
	op.id_len = 1;
	weft__mp_buf_reset(&val);
	for (int i = 0; i < WEFT_MAX_DEPTH + 1; i++) {
		weft__mp_write_map(&val, 1);
		weft__mp_write_cstr(&val, "a");
	}
	weft__mp_write_int(&val, 1);
	op.value = val.data;
	op.value_len = val.len;
	weft__mp_buf_reset(&b);
	weft__op_encode(&b, &op);
	weft__mp_reader_init(&r, b.data, b.len);
	assert_int_equal(weft__op_decode(&r, &back), WEFT_ETOOBIG);

	/* A document root must be an object; a delete carries nil. */
	weft__mp_buf_reset(&val);
	weft__mp_write_int(&val, 5);
	op.value = val.data;
	op.value_len = val.len;
	weft__mp_buf_reset(&b);
	weft__op_encode(&b, &op);
	weft__mp_reader_init(&r, b.data, b.len);
	assert_int_equal(weft__op_decode(&r, &back), WEFT_EPROTO);
	op.kind = WEFT_OP_DELETE;
	weft__mp_buf_reset(&b);
	weft__op_encode(&b, &op);
	weft__mp_reader_init(&r, b.data, b.len);
	assert_int_equal(weft__op_decode(&r, &back), WEFT_EPROTO);

	/* Duplicate keys in a value. */
	op.kind = WEFT_OP_SET;
	weft__mp_buf_reset(&val);
	weft__mp_write_map(&val, 2);
	weft__mp_write_cstr(&val, "k");
	weft__mp_write_int(&val, 1);
	weft__mp_write_cstr(&val, "k");
	weft__mp_write_int(&val, 2);
	op.value = val.data;
	op.value_len = val.len;
	weft__mp_buf_reset(&b);
	weft__op_encode(&b, &op);
	weft__mp_reader_init(&r, b.data, b.len);
	assert_int_equal(weft__op_decode(&r, &back), WEFT_EPROTO);

	/* seq 0 and kind 4 are refused. */
	weft__mp_buf_reset(&val);
	weft__mp_write_map(&val, 0);
	op.value = val.data;
	op.value_len = val.len;
	op.seq = 0;
	weft__mp_buf_reset(&b);
	weft__op_encode(&b, &op);
	weft__mp_reader_init(&r, b.data, b.len);
	assert_int_equal(weft__op_decode(&r, &back), WEFT_EPROTO);
	op.seq = 1;
	op.kind = (enum weft_op_kind)4;
	weft__mp_buf_reset(&b);
	weft__op_encode(&b, &op);
	weft__mp_reader_init(&r, b.data, b.len);
	assert_int_equal(weft__op_decode(&r, &back), WEFT_EPROTO);
	weft__mp_buf_free(&b);
	weft__mp_buf_free(&val);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_golden_hello),
	    cmocka_unit_test(test_golden_push),
	    cmocka_unit_test(test_messages_roundtrip_and_refuse_garbage),
	    cmocka_unit_test(test_op_limits),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
