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

/* A unit's bytes: the ops alone (n == 1, txn false) or [[ops...]]. */
static void mkunit(struct mp_buf *b, bool txn, const struct enc_op *const *ops, uint32_t n,
                   struct weft_unit *u)
{
	struct mp_reader r;

	weft__mp_buf_reset(b);
	if (txn)
		weft__unit_txn_write(b, n);
	for (uint32_t i = 0; i < n; i++)
		weft__mp_write_raw(b, ops[i]->raw, ops[i]->len);
	assert_int_equal(b->err, 0);
	weft__mp_reader_init(&r, b->data, b->len);
	assert_int_equal(weft__unit_read(&r, u), WEFT_OK);
}

/* A TEXT op whose update bytes no document accepts: it decodes, and is
 * refused when applied. */
static void mkpoison(struct enc_op *e, uint64_t replica, uint32_t inc, uint64_t seq, const char *id)
{
	struct mp_buf val, path, b;
	struct weft_op op;
	struct mp_reader r;

	weft__mp_buf_init(&val, NULL, 0);
	weft__mp_buf_init(&path, NULL, 0);
	weft__mp_write_array(&path, 1);
	weft__mp_write_cstr(&path, "t");
	weft__mp_write_array(&val, 4);
	weft__mp_write_bin(&val, "\x07\xff\xfe\xfd\x13", 5);
	weft__mp_write_uint(&val, 0);
	weft__mp_write_uint(&val, 0);
	weft__mp_write_bool(&val, true);
	memset(&op, 0, sizeof(op));
	op.replica = replica;
	op.incarnation = inc;
	op.seq = seq;
	op.hlc = WEFT_HLC_MAKE(1000 + seq, 0);
	op.kind = WEFT_OP_TEXT;
	op.coll = "c";
	op.coll_len = 1;
	op.id = id;
	op.id_len = strlen(id);
	op.path = path.data;
	op.path_len = path.len;
	op.value = val.data;
	op.value_len = val.len;
	weft__mp_buf_init(&b, NULL, 0);
	weft__op_encode(&b, &op);
	assert_int_equal(b.err, 0);
	assert_true(b.len <= sizeof(e->raw));
	memcpy(e->raw, b.data, b.len);
	e->len = b.len;
	weft__mp_buf_free(&b);
	weft__mp_buf_free(&val);
	weft__mp_buf_free(&path);
	weft__mp_reader_init(&r, e->raw, e->len);
	assert_int_equal(weft__op_decode(&r, &e->op), WEFT_OK);
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
		struct enc_op a1, b1, a2, a3, p4;
		struct mp_buf ub;
		int rc;

		failalloc_init(&fa, fail_at, 0);
		weft__mp_buf_init(&ub, NULL, 0);
		mkop(&a1, 7, 1, 1, "x", 1);
		mkop(&b1, 8, 1, 1, "y", 1);
		if (weft__memstore_new(NULL, &st) != WEFT_OK)
			fail();
		mkop(&a2, 7, 1, 2, "x", 2);
		mkop(&a3, 7, 1, 3, "y", 3);
		mkpoison(&p4, 7, 1, 4, "y");
		rc = weft__authority_open(st, &fa.a, 1, &au);
		if (rc == WEFT_OK)
			rc = weft__authority_stage(au, &a1.op, NULL);
		if (rc == WEFT_OK)
			rc = weft__authority_stage(au, &b1.op, NULL);
		if (rc == WEFT_OK) {
			/* A transaction (applied on copies first) and a poisoned
			 * unit (a remembered rejection). */
			const struct enc_op *t[2] = {&a2, &a3};
			enum weft_stage_outcome out;
			struct weft_unit u;
			bool gap;

			mkunit(&ub, true, t, 2, &u);
			rc = weft__authority_stage_unit(au, &u, 7, NULL, &out, &gap);
			if (rc == WEFT_OK) {
				t[0] = &p4;
				mkunit(&ub, false, t, 1, &u);
				rc = weft__authority_stage_unit(au, &u, 7, NULL, &out, &gap);
			}
		}
		if (rc == WEFT_OK)
			rc = weft__authority_commit(au);
		if (rc == WEFT_OK) {
			/* Reopen: the marks and the rejection load again. */
			weft__authority_free(au);
			au = NULL;
			rc = weft__authority_open(st, &fa.a, 1, &au);
			if (rc == WEFT_OK) {
				rc = weft__authority_stage(au, &p4.op, NULL);
				if (rc >= 0) {
					assert_int_equal(rc, 1); /* rejected again */
					rc = WEFT_OK;
				}
			}
		}
		if (rc != WEFT_OK)
			assert_int_equal(rc, WEFT_ENOMEM);
		weft__authority_free(au);
		weft__mp_buf_free(&ub);
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

/*
 * Transactions commit whole at one position; a unit that breaks a rule is
 * rejected whole (nothing of it applied), its seqs still move the mark,
 * and the rejection is remembered durably, so a re-push is rejected again
 * (also after a reopen), never acknowledged as applied.
 */
static void test_transactions_and_rejections(void **state)
{
	struct weft_store *st;
	struct weft_authority *au;
	struct enc_op a1, a2, a3, p4, b1;
	const struct enc_op *txn[2], *bad[2];
	const struct weft_committed *batch;
	const struct weft_rejected *rej;
	enum weft_stage_outcome out;
	struct weft_unit u;
	struct mp_buf ub;
	uint64_t cnt[2] = {0, 0};
	size_t n;
	bool gap;
	char *d;

	(void)state;
	weft__mp_buf_init(&ub, NULL, 0);
	assert_int_equal(weft__memstore_new(NULL, &st), WEFT_OK);
	assert_int_equal(weft__authority_open(st, NULL, 5, &au), WEFT_OK);
	mkop(&a1, 7, 1, 1, "x", 1);
	mkop(&a2, 7, 1, 2, "y", 2);
	mkop(&a3, 7, 1, 3, "x", 3);
	mkpoison(&p4, 7, 1, 4, "y");
	txn[0] = &a1;
	txn[1] = &a2;
	mkunit(&ub, true, txn, 2, &u);
	assert_true(u.txn);
	assert_int_equal(weft__authority_stage_unit(au, &u, 7, NULL, &out, &gap), WEFT_OK);
	assert_int_equal(out, WEFT_STAGED);
	assert_false(gap);
	assert_int_equal(weft__authority_commit(au), WEFT_OK);
	batch = weft__authority_batch(au, &n);
	assert_int_equal(n, 1);
	assert_int_equal(batch[0].pos, 1);
	assert_int_equal(batch[0].nops, 2);
	assert_int_equal(batch[0].ops[1].op.seq, 2);
	assert_int_equal(weft__authority_scan(au, 0, count_cb, cnt), WEFT_OK);
	assert_int_equal(cnt[0], 1); /* one log record for the transaction */

	/* [[a3, poison]]: rejected whole; x keeps a1's value. */
	bad[0] = &a3;
	bad[1] = &p4;
	mkunit(&ub, true, bad, 2, &u);
	assert_int_equal(weft__authority_stage_unit(au, &u, 7, NULL, &out, &gap), WEFT_OK);
	assert_int_equal(out, WEFT_REJECTED);
	assert_int_equal(weft__authority_commit(au), WEFT_OK);
	weft__authority_batch(au, &n);
	assert_int_equal(n, 0);
	rej = weft__authority_rejected(au, &n);
	assert_int_equal(n, 1);
	assert_int_equal(rej[0].incarnation, 1);
	assert_int_equal(rej[0].first_seq, 3);
	assert_int_equal(rej[0].last_seq, 4);
	assert_int_equal(rej[0].code, WEFT_REJECT_INVALID);
	assert_int_equal(weft__authority_cursor(au).pos, 1);
	d = dump(au);
	assert_string_equal(d, "{\"collection\":\"c\",\"doc\":{\"k\":1},\"id\":\"x\"}\n"
	                       "{\"collection\":\"c\",\"doc\":{\"k\":2},\"id\":\"y\"}\n");
	free(d);

	/* Re-pushed (its REJECT was lost): rejected again, durably. */
	for (int round = 0; round < 2; round++) {
		mkunit(&ub, true, bad, 2, &u);
		assert_int_equal(weft__authority_stage_unit(au, &u, 7, NULL, &out, &gap), WEFT_OK);
		assert_int_equal(out, WEFT_REJECTED);
		assert_int_equal(weft__authority_commit(au), WEFT_OK);
		rej = weft__authority_rejected(au, &n);
		assert_int_equal(n, 1);
		assert_int_equal(rej[0].first_seq, 3);
		assert_int_equal(rej[0].last_seq, 4);
		/* The transaction before it is a plain duplicate. */
		mkunit(&ub, true, txn, 2, &u);
		assert_int_equal(weft__authority_stage_unit(au, &u, 7, NULL, &out, &gap), WEFT_OK);
		assert_int_equal(out, WEFT_DUPLICATE);
		weft__authority_free(au);
		assert_int_equal(weft__authority_open(st, NULL, 5, &au), WEFT_OK);
	}

	/* The next op after the rejection applies: the queue moved on. */
	mkop(&b1, 7, 1, 5, "x", 9);
	assert_int_equal(weft__authority_stage(au, &b1.op, NULL), WEFT_OK);
	assert_int_equal(weft__authority_commit(au), WEFT_OK);
	assert_int_equal(weft__authority_cursor(au).pos, 2);

	/* Two invalid units in one group share one remembered range, but a
	 * re-push of one is rejected again with its own seqs only. */
	{
		struct enc_op p6, p7;

		mkpoison(&p6, 7, 1, 6, "y");
		mkpoison(&p7, 7, 1, 7, "y");
		assert_int_equal(weft__authority_stage(au, &p6.op, NULL), 1);
		assert_int_equal(weft__authority_stage(au, &p7.op, NULL), 1);
		assert_int_equal(weft__authority_commit(au), WEFT_OK);
		weft__authority_rejected(au, &n);
		assert_int_equal(n, 2);
		assert_int_equal(weft__authority_stage(au, &p7.op, NULL), 1);
		assert_int_equal(weft__authority_commit(au), WEFT_OK);
		rej = weft__authority_rejected(au, &n);
		assert_int_equal(n, 1);
		assert_int_equal(rej[0].first_seq, 7);
		assert_int_equal(rej[0].last_seq, 7);
	}

	/* A gap is accepted and reported; an overlap, a foreign op or a
	 * transaction with mixed incarnations is a protocol error. */
	mkop(&b1, 7, 2, 10, "z", 1);
	mkunit(&ub, false, (const struct enc_op *const[]){&b1}, 1, &u);
	assert_int_equal(weft__authority_stage_unit(au, &u, 7, NULL, &out, &gap), WEFT_OK);
	assert_true(gap);
	assert_int_equal(weft__authority_stage_unit(au, &u, 8, NULL, &out, &gap), WEFT_EPROTO);
	mkop(&a1, 7, 2, 10, "z", 1);
	mkop(&a2, 7, 2, 11, "z", 2);
	mkunit(&ub, true, txn, 2, &u);
	assert_int_equal(weft__authority_stage_unit(au, &u, 7, NULL, &out, &gap), WEFT_EPROTO);
	mkop(&a2, 7, 3, 11, "z", 2);
	mkunit(&ub, true, txn, 2, &u);
	assert_int_equal(weft__authority_stage_unit(au, &u, 7, NULL, &out, &gap), WEFT_EPROTO);
	assert_int_equal(weft__authority_commit(au), WEFT_OK);

	/* An op over a limit is rejected with TOO_BIG. */
	{
		char big[300];

		memset(big, 'q', sizeof(big) - 1);
		big[sizeof(big) - 1] = '\0';
		mkop(&a1, 9, 1, 1, "w", 1);
		/* Rewrite the collection ("c") into one of 299 bytes. */
		{
			struct weft_op op = a1.op;
			struct mp_buf b;
			struct mp_reader r;

			op.coll = big;
			op.coll_len = strlen(big);
			weft__mp_buf_init(&b, NULL, 0);
			weft__op_encode(&b, &op);
			weft__mp_reader_init(&r, b.data, b.len);
			assert_int_equal(weft__unit_read(&r, &u), WEFT_OK);
			assert_int_equal(weft__authority_stage_unit(au, &u, 9, NULL, &out, &gap),
			                 WEFT_OK);
			assert_int_equal(out, WEFT_REJECTED);
			weft__mp_buf_free(&b);
		}
		assert_int_equal(weft__authority_commit(au), WEFT_OK);
		rej = weft__authority_rejected(au, &n);
		assert_int_equal(n, 1);
		assert_int_equal(rej[0].code, WEFT_REJECT_TOO_BIG);
	}
	weft__mp_buf_free(&ub);
	weft__authority_free(au);
	weft__store_close(st);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_commit_order_dedupe_cursor),
	    cmocka_unit_test(test_crash_before_commit_loses_only_uncommitted),
	    cmocka_unit_test(test_failed_commit_is_all_or_nothing),
	    cmocka_unit_test(test_drift_restamp),
	    cmocka_unit_test(test_allocation_failures),
	    cmocka_unit_test(test_transactions_and_rejections),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
