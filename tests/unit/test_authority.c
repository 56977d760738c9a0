/*
 * test_authority.c - the server's authority logic over the memory store:
 * dedupe by op identity (also across a crash between commit and ack),
 * positions in commit order, cursor scans, group commit all-or-nothing
 * with the in-memory documents rebuilt after a failed commit, reopening
 * with the same epoch and documents, and allocation failure.
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
#include "core/authority.h"
#include "failalloc.h"

struct enc_op {
	uint8_t raw[256];
	size_t len;
	struct weft_op op;
};

/* Encodes a SET of {"k": v} on c/<id> by (replica, inc, seq) at `hlc`. */
static void mkop_hlc(struct enc_op *e, uint64_t replica, uint32_t inc, uint64_t seq, const char *id,
                     int64_t v, uint64_t hlc)
{
	struct mp_buf val, b;
	struct weft_op op;
	struct mp_reader r;

	weft__mp_buf_init(&val, NULL, 0);
	weft__mp_write_map(&val, 1);
	weft__mp_write_cstr(&val, "k");
	weft__mp_write_int(&val, v);
	memset(&op, 0, sizeof(op));
	op.replica = replica;
	op.incarnation = inc;
	op.seq = seq;
	op.hlc = hlc;
	op.kind = WEFT_OP_SET;
	op.coll = "c";
	op.coll_len = 1;
	op.id = id;
	op.id_len = strlen(id);
	op.value = val.data;
	op.value_len = val.len;
	weft__mp_buf_init(&b, NULL, sizeof(e->raw));
	weft__op_encode(&b, &op);
	assert_int_equal(b.err, 0);
	memcpy(e->raw, b.data, b.len);
	e->len = b.len;
	weft__mp_buf_free(&b);
	weft__mp_buf_free(&val);
	weft__mp_reader_init(&r, e->raw, e->len);
	assert_int_equal(weft__op_decode(&r, &e->op), WEFT_OK);
}

static void mkop(struct enc_op *e, uint64_t replica, uint32_t inc, uint64_t seq, const char *id,
                 int64_t v)
{
	mkop_hlc(e, replica, inc, seq, id, v, WEFT_HLC_MAKE(1000 + seq, 0));
}

static char *dump(struct weft_authority *au)
{
	struct mp_buf b;
	size_t len;

	weft__mp_buf_init(&b, NULL, 0);
	assert_int_equal(weft__docset_dump(weft__authority_docs(au), &b), WEFT_OK);
	weft__mp_write_raw(&b, "", 1);
	return (char *)weft__mp_buf_take(&b, &len);
}

static int count_cb(void *ctx, uint64_t key, const void *val, size_t len)
{
	uint64_t *n = ctx;

	(void)val;
	(void)len;
	assert_int_equal(key, n[1] + 1); /* consecutive positions */
	n[1] = key;
	n[0]++;
	return 0;
}

static void test_commit_order_dedupe_cursor(void **state)
{
	struct weft_store *st;
	struct weft_authority *au;
	struct enc_op a1, a2, b1;
	const struct weft_committed *batch;
	size_t n;
	uint64_t cnt[2] = {0, 0};
	char *d;

	(void)state;
	assert_int_equal(weft__memstore_new(NULL, &st), WEFT_OK);
	assert_int_equal(weft__authority_open(st, NULL, 42, &au), WEFT_OK);
	assert_int_equal(weft__authority_cursor(au).epoch, 42);
	assert_int_equal(weft__authority_cursor(au).pos, 0);

	mkop(&a1, 7, 1, 1, "x", 1);
	mkop(&a2, 7, 1, 2, "x", 2);
	mkop(&b1, 9, 3, 1, "y", 5);
	assert_int_equal(weft__authority_stage(au, &a1.op, NULL), WEFT_OK);
	assert_int_equal(weft__authority_stage(au, &a1.op, NULL), 1); /* staged twice */
	assert_int_equal(weft__authority_stage(au, &b1.op, NULL), WEFT_OK);
	assert_int_equal(weft__authority_stage(au, &a2.op, NULL), WEFT_OK);
	assert_int_equal(weft__authority_staged(au), 3);
	/* Staged units are applied to memory (validated against their
	 * documents) but nothing is in the store before the commit. */
	assert_int_equal(weft__authority_scan(au, 0, count_cb, cnt), WEFT_OK);
	assert_int_equal(cnt[0], 0);
	assert_int_equal(weft__authority_commit(au), WEFT_OK);
	batch = weft__authority_batch(au, &n);
	assert_int_equal(n, 3);
	assert_int_equal(batch[0].pos, 1);
	assert_int_equal(batch[2].pos, 3);
	assert_int_equal(batch[2].ops[0].op.seq, 2);
	assert_int_equal(weft__authority_cursor(au).pos, 3);
	d = dump(au);
	assert_string_equal(d, "{\"collection\":\"c\",\"doc\":{\"k\":2},\"id\":\"x\"}\n"
	                       "{\"collection\":\"c\",\"doc\":{\"k\":5},\"id\":\"y\"}\n");
	free(d);
	/* Re-pushed after a lost ACK: a duplicate. */
	assert_int_equal(weft__authority_stage(au, &a2.op, NULL), 1);
	assert_int_equal(weft__authority_stage(au, &a1.op, NULL), 1);
	assert_int_equal(weft__authority_commit(au), WEFT_OK);
	weft__authority_batch(au, &n);
	assert_int_equal(n, 0);
	/* Scans from a cursor. */
	assert_int_equal(weft__authority_scan(au, 0, count_cb, cnt), WEFT_OK);
	assert_int_equal(cnt[0], 3);
	cnt[0] = 0;
	cnt[1] = 2;
	assert_int_equal(weft__authority_scan(au, 2, count_cb, cnt), WEFT_OK);
	assert_int_equal(cnt[0], 1);

	/* Reopen over the same store: same epoch, documents, marks. */
	weft__authority_free(au);
	assert_int_equal(weft__authority_open(st, NULL, 99, &au), WEFT_OK);
	assert_int_equal(weft__authority_cursor(au).epoch, 42);
	assert_int_equal(weft__authority_cursor(au).pos, 3);
	assert_int_equal(weft__authority_stage(au, &a2.op, NULL), 1);
	d = dump(au);
	assert_non_null(strstr(d, "{\"k\":2}"));
	free(d);
	weft__authority_free(au);
	weft__store_close(st);
}

static void test_crash_before_commit_loses_only_uncommitted(void **state)
{
	struct weft_store *st;
	struct weft_authority *au;
	struct enc_op a1, a2;
	char *d;

	(void)state;
	assert_int_equal(weft__memstore_new(NULL, &st), WEFT_OK);
	assert_int_equal(weft__authority_open(st, NULL, 1, &au), WEFT_OK);
	mkop(&a1, 7, 1, 1, "x", 1);
	mkop(&a2, 7, 1, 2, "x", 2);
	assert_int_equal(weft__authority_stage(au, &a1.op, NULL), WEFT_OK);
	assert_int_equal(weft__authority_commit(au), WEFT_OK);
	assert_int_equal(weft__authority_stage(au, &a2.op, NULL), WEFT_OK);
	/* Crash: the staged op was never committed nor acknowledged. */
	weft__authority_free(au);
	weft__memstore_crash(st);
	weft__memstore_restart(st);
	assert_int_equal(weft__authority_open(st, NULL, 1, &au), WEFT_OK);
	assert_int_equal(weft__authority_cursor(au).pos, 1);
	/* The replica re-pushes a2: applied now, not a duplicate. */
	assert_int_equal(weft__authority_stage(au, &a1.op, NULL), 1);
	assert_int_equal(weft__authority_stage(au, &a2.op, NULL), WEFT_OK);
	assert_int_equal(weft__authority_commit(au), WEFT_OK);
	d = dump(au);
	assert_string_equal(d, "{\"collection\":\"c\",\"doc\":{\"k\":2},\"id\":\"x\"}\n");
	free(d);
	weft__authority_free(au);
	weft__store_close(st);
}

static void test_failed_commit_is_all_or_nothing(void **state)
{
	struct weft_store *st;
	struct weft_authority *au;
	struct enc_op a1, a2, a3;
	char *before, *after;

	(void)state;
	assert_int_equal(weft__memstore_new(NULL, &st), WEFT_OK);
	assert_int_equal(weft__authority_open(st, NULL, 1, &au), WEFT_OK);
	mkop(&a1, 7, 1, 1, "x", 1);
	mkop(&a2, 7, 1, 2, "x", 2);
	mkop(&a3, 7, 1, 3, "z", 3);
	assert_int_equal(weft__authority_stage(au, &a1.op, NULL), WEFT_OK);
	assert_int_equal(weft__authority_commit(au), WEFT_OK);
	before = dump(au);
	for (unsigned fail = 1; fail <= 6; fail++) {
		assert_int_equal(weft__authority_stage(au, &a2.op, NULL), WEFT_OK);
		assert_int_equal(weft__authority_stage(au, &a3.op, NULL), WEFT_OK);
		weft__memstore_fail_after(st, fail);
		assert_int_equal(weft__authority_commit(au), WEFT_EIO);
		weft__memstore_fail_after(st, 0);
		/* Nothing of the group is visible, positions did not move. */
		after = dump(au);
		assert_string_equal(before, after);
		free(after);
		assert_int_equal(weft__authority_cursor(au).pos, 1);
		assert_int_equal(weft__authority_staged(au), 0);
	}
	/* The replica re-pushes: the ops are new again, not duplicates. */
	assert_int_equal(weft__authority_stage(au, &a2.op, NULL), WEFT_OK);
	assert_int_equal(weft__authority_stage(au, &a3.op, NULL), WEFT_OK);
	assert_int_equal(weft__authority_commit(au), WEFT_OK);
	assert_int_equal(weft__authority_cursor(au).pos, 3);
	free(before);
	weft__authority_free(au);
	weft__store_close(st);
}

/* A replica whose clock runs a day ahead cannot win every conflict: the
 * authority re-stamps its op with the server's clock, so a causally later
 * write of a correct replica wins. Ops within the drift keep their stamp;
 * the server's clock observes them and persists across reopen. */
static void test_drift_restamp(void **state)
{
	const uint64_t now = 1700000000000ULL, day = 86400000ULL;
	struct weft_store *st;
	struct weft_authority *au;
	struct enc_op fut, ok, later;
	const struct weft_committed *batch;
	size_t n;
	uint64_t hlc_after;
	char *d;

	(void)state;
	assert_int_equal(weft__memstore_new(NULL, &st), WEFT_OK);
	assert_int_equal(weft__authority_open(st, NULL, 1, &au), WEFT_OK);
	weft__authority_set_clock(au, now, WEFT_MAX_DRIFT_MS);

	/* Replica 7's clock is a day ahead; replica 9's is right. */
	mkop_hlc(&fut, 7, 1, 1, "x", 1, WEFT_HLC_MAKE(now + day, 0));
	assert_int_equal(weft__authority_stage(au, &fut.op, NULL), WEFT_OK);
	/* 30 s ahead: within the drift, kept. */
	mkop_hlc(&ok, 9, 1, 1, "y", 2, WEFT_HLC_MAKE(now + 30000, 0));
	assert_int_equal(weft__authority_stage(au, &ok.op, NULL), WEFT_OK);
	assert_int_equal(weft__authority_commit(au), WEFT_OK);
	batch = weft__authority_batch(au, &n);
	assert_int_equal(n, 2);
	assert_true(batch[0].restamped);
	assert_true(WEFT_HLC_MS(batch[0].ops[0].op.hlc) >= now);
	assert_true(WEFT_HLC_MS(batch[0].ops[0].op.hlc) <= now + WEFT_MAX_DRIFT_MS);
	assert_false(batch[1].restamped);
	assert_int_equal(batch[1].ops[0].op.hlc, WEFT_HLC_MAKE(now + 30000, 0));
	/* The log holds the re-stamped op, so every replica sees that stamp. */
	assert_int_equal(batch[0].ops[0].op.seq, 1);
	assert_int_equal(batch[0].ops[0].op.replica, 7);

	/* A causally later write by the correct replica wins over the
	 * re-stamped one. */
	weft__authority_set_clock(au, now + 5000, WEFT_MAX_DRIFT_MS);
	/* Replica 9 has seen the first write: its stamp is above it. */
	mkop_hlc(&later, 9, 1, 2, "x", 3, weft__authority_hlc(au) + 1);
	assert_int_equal(weft__authority_stage(au, &later.op, NULL), WEFT_OK);
	assert_int_equal(weft__authority_commit(au), WEFT_OK);
	d = dump(au);
	assert_string_equal(d, "{\"collection\":\"c\",\"doc\":{\"k\":3},\"id\":\"x\"}\n"
	                       "{\"collection\":\"c\",\"doc\":{\"k\":2},\"id\":\"y\"}\n");
	free(d);

	/* The server's clock survives a reopen. */
	hlc_after = weft__authority_hlc(au);
	weft__authority_free(au);
	assert_int_equal(weft__authority_open(st, NULL, 1, &au), WEFT_OK);
	assert_int_equal(weft__authority_hlc(au), hlc_after);
	weft__authority_free(au);
	weft__store_close(st);
}

/* Fail each allocation of a stage+commit scenario in turn: every failure
 * is an error code (never a crash), and nothing leaks. */
static void test_allocation_failures(void **state)
{
	long total;

	(void)state;
	for (long fail_at = 1;; fail_at++) {
		struct failalloc fa;
		struct weft_store *st;
		struct weft_authority *au = NULL;
		struct enc_op a1, b1;
		int rc;

		failalloc_init(&fa, fail_at, 0);
		mkop(&a1, 7, 1, 1, "x", 1);
		mkop(&b1, 8, 1, 1, "y", 1);
		if (weft__memstore_new(NULL, &st) != WEFT_OK)
			fail();
		rc = weft__authority_open(st, &fa.a, 1, &au);
		if (rc == WEFT_OK)
			rc = weft__authority_stage(au, &a1.op, NULL);
		if (rc == WEFT_OK)
			rc = weft__authority_stage(au, &b1.op, NULL);
		if (rc == WEFT_OK)
			rc = weft__authority_commit(au);
		if (rc != WEFT_OK)
			assert_int_equal(rc, WEFT_ENOMEM);
		weft__authority_free(au);
		weft__store_close(st);
		assert_int_equal(fa.live, 0);
		if (fa.count < fail_at) {
			total = fail_at - 1;
			break;
		}
	}
	printf("allocation failure: %ld allocation sites exercised\n", total);
	assert_true(total > 5);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_commit_order_dedupe_cursor),
	    cmocka_unit_test(test_crash_before_commit_loses_only_uncommitted),
	    cmocka_unit_test(test_failed_commit_is_all_or_nothing),
	    cmocka_unit_test(test_drift_restamp),
	    cmocka_unit_test(test_allocation_failures),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
