/*
 * test_crdt.c - counters and add-wins sets (docs/DATA-MODEL.md, "Counters"
 * and "Sets"): one test per rule, each checked in every delivery order and
 * with duplicates; model tests where 3-8 simulated replicas issue ops from
 * their own state (as a real replica computes bases, totals and dots),
 * exchange them shuffled, duplicated, dropped and resent, crash and come
 * back in a new incarnation, and must end byte-identical and equal to a
 * plain reference model; allocation-failure runs over apply and load; and
 * the public API on a real file.
 * Set WEFT_TEST_SEED to replay a seed; WEFT_TEST_ROUNDS to run longer.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "weft/weft.h"
#include "core/doc.h"
#include "core/op.h"
#include "client/json_in.h"
#include "failalloc.h"
#include "optest.h"

/* A simulated replica: its own docset, identity and clock. */
struct rep {
	struct weft_docset *ds;
	uint64_t replica;
	uint32_t inc;
	uint64_t seq;
	uint64_t hlc;
};

static void rep_init(struct rep *r, uint64_t replica)
{
	memset(r, 0, sizeof(*r));
	assert_int_equal(weft__docset_new(NULL, &r->ds), WEFT_OK);
	r->replica = replica;
	r->inc = 1;
}

static void rep_free(struct rep *r)
{
	weft__docset_free(r->ds);
}

/*
 * Issues an op on replica r from its own state, at HLC hlc (0: the next
 * one), and applies it locally. kind SET/REPLACE take a JSON value, DELETE
 * nothing, INCR a delta, SADD/SREM a JSON element. path is JSON.
 */
static struct top issue(struct rep *r, int kind, uint64_t hlc, const char *path_json,
                        const char *arg, int64_t delta)
{
	struct mp_buf pb, vb, eb;
	struct top t;

	weft__mp_buf_init(&pb, NULL, 0);
	weft__mp_buf_init(&vb, NULL, 0);
	weft__mp_buf_init(&eb, NULL, 0);
	json_mp(path_json, &pb);
	if (kind == WEFT_OP_SADD || kind == WEFT_OP_SREM)
		json_mp(arg, &eb);
	switch (kind) {
	case WEFT_OP_SET:
	case WEFT_OP_REPLACE:
		json_mp(arg, &vb);
		break;
	case WEFT_OP_DELETE:
		weft__mp_write_nil(&vb);
		break;
	case WEFT_OP_INCR:
		assert_int_equal(weft__docset_incr_value(r->ds, "c", 1, "d", 1, pb.data, pb.len,
		                                         r->replica, r->inc, delta, &vb),
		                 WEFT_OK);
		break;
	case WEFT_OP_SADD:
		assert_int_equal(weft__docset_sadd_value(r->ds, "c", 1, "d", 1, pb.data, pb.len,
		                                         r->replica, r->inc, eb.data, eb.len, &vb),
		                 WEFT_OK);
		break;
	default:
		assert_int_equal(weft__docset_srem_value(r->ds, "c", 1, "d", 1, pb.data, pb.len,
		                                         eb.data, eb.len, &vb),
		                 WEFT_OK);
	}
	r->hlc = hlc ? hlc : r->hlc + 1;
	assert_int_equal(mk_raw(&t, kind, r->replica, r->inc, ++r->seq, r->hlc, pb.data, pb.len,
	                        vb.data, vb.len),
	                 WEFT_OK);
	assert_int_equal(weft__docset_apply(r->ds, &t.op, NULL, NULL), WEFT_OK);
	weft__mp_buf_free(&pb);
	weft__mp_buf_free(&vb);
	weft__mp_buf_free(&eb);
	return t;
}

/* Delivers op t to replica r (its clock observes the op's). */
static void deliver(struct rep *r, const struct top *t)
{
	assert_int_equal(weft__docset_apply(r->ds, &t->op, NULL, NULL), WEFT_OK);
	if (t->op.hlc > r->hlc)
		r->hlc = t->op.hlc;
}

/* Visible JSON of document c/d, or "ABSENT". Caller frees. */
static char *view(struct weft_docset *ds)
{
	struct weft_doc *d = weft__docset_find(ds, "c", 1, "d", 1);
	struct mp_buf b;
	size_t len;

	if (!d || !weft__doc_visible(d))
		return strdup("ABSENT");
	weft__mp_buf_init(&b, NULL, 0);
	assert_int_equal(weft__doc_write_json(d, &b), WEFT_OK);
	weft__mp_write_raw(&b, "", 1);
	return (char *)weft__mp_buf_take(&b, &len);
}

static void encode(struct weft_docset *ds, struct mp_buf *out)
{
	struct weft_doc *d = weft__docset_find(ds, "c", 1, "d", 1);

	weft__mp_buf_init(out, NULL, 0);
	if (d)
		weft__doc_encode(d, out);
	assert_int_equal(out->err, 0);
}

/* ---- every delivery order ---- */

static char *apply_order(struct top *ops, const int *idx, int n, struct mp_buf *enc)
{
	struct weft_docset *ds;
	char *v;

	assert_int_equal(weft__docset_new(NULL, &ds), WEFT_OK);
	for (int i = 0; i < n; i++)
		assert_int_equal(weft__docset_apply(ds, &ops[idx[i]].op, NULL, NULL), WEFT_OK);
	v = view(ds);
	encode(ds, enc);
	weft__docset_free(ds);
	return v;
}

/* Every permutation of ops (n <= 6) gives `expect` and the same state
 * bytes; applying everything twice does too. Frees the ops. */
static void check_all_orders(struct top *ops, int n, const char *expect)
{
	int idx[12], c[6] = {0}, i = 1;
	struct mp_buf first, enc;
	char *v;

	for (int k = 0; k < n; k++)
		idx[k] = k;
	v = apply_order(ops, idx, n, &first);
	if (strcmp(v, expect) != 0)
		fail_msg("issue order gave %s, expected %s", v, expect);
	free(v);
	while (i < n) {
		if (c[i] < i) {
			int j = (i % 2 == 0) ? 0 : c[i], tmp = idx[j];

			idx[j] = idx[i];
			idx[i] = tmp;
			v = apply_order(ops, idx, n, &enc);
			if (strcmp(v, expect) != 0)
				fail_msg("order gave %s, expected %s", v, expect);
			assert_memory_equal(enc.data, first.data, first.len);
			assert_int_equal(enc.len, first.len);
			weft__mp_buf_free(&enc);
			free(v);
			c[i]++;
			i = 1;
		} else {
			c[i] = 0;
			i++;
		}
	}
	for (int k = 0; k < n; k++)
		idx[n + k] = n - 1 - k;
	v = apply_order(ops, idx, 2 * n, &enc);
	assert_string_equal(v, expect);
	assert_int_equal(enc.len, first.len);
	assert_memory_equal(enc.data, first.data, first.len);
	weft__mp_buf_free(&enc);
	weft__mp_buf_free(&first);
	free(v);
	for (int k = 0; k < n; k++)
		top_free(&ops[k]);
}

static void check_view(struct rep *r, const char *expect)
{
	char *v = view(r->ds);

	assert_string_equal(v, expect);
	free(v);
}

/* ---- counter rules ---- */

static void test_concurrent_increments(void **state)
{
	struct rep a, b;
	struct top ops[3];

	(void)state;
	rep_init(&a, 1);
	rep_init(&b, 2);
	ops[0] = issue(&a, WEFT_OP_INCR, 10, "[\"x\"]", NULL, 5);
	ops[1] = issue(&b, WEFT_OP_INCR, 10, "[\"x\"]", NULL, 3);
	ops[2] = issue(&a, WEFT_OP_INCR, 11, "[\"x\"]", NULL, -2);
	check_view(&a, "{\"x\":3}");
	check_view(&b, "{\"x\":3}");
	check_all_orders(ops, 3, "{\"x\":6}");
	rep_free(&a);
	rep_free(&b);
}

static void test_duplicates_exact(void **state)
{
	struct rep a;
	struct top t1, t2;

	(void)state;
	rep_init(&a, 1);
	t1 = issue(&a, WEFT_OP_INCR, 0, "[\"x\"]", NULL, 7);
	t2 = issue(&a, WEFT_OP_INCR, 0, "[\"x\"]", NULL, -3);
	for (int i = 0; i < 5; i++) {
		deliver(&a, &t1);
		deliver(&a, &t2);
	}
	check_view(&a, "{\"x\":4}");
	/* Out of order and duplicated on a fresh replica. */
	{
		struct rep b;

		rep_init(&b, 2);
		deliver(&b, &t2);
		deliver(&b, &t1);
		deliver(&b, &t2);
		check_view(&b, "{\"x\":4}");
		rep_free(&b);
	}
	top_free(&t1);
	top_free(&t2);
	rep_free(&a);
}

static void test_reset_then_increment(void **state)
{
	struct rep a, b;
	struct top ops[4];

	(void)state;
	rep_init(&a, 1);
	rep_init(&b, 2);
	ops[0] = issue(&a, WEFT_OP_INCR, 10, "[\"x\"]", NULL, 5);
	ops[1] = issue(&a, WEFT_OP_DELETE, 20, "[\"x\"]", NULL, 0);
	check_view(&a, "{}");
	ops[2] = issue(&a, WEFT_OP_INCR, 30, "[\"x\"]", NULL, 2);
	check_view(&a, "{\"x\":2}");
	deliver(&b, &ops[0]);
	deliver(&b, &ops[1]);
	ops[3] = issue(&b, WEFT_OP_INCR, 31, "[\"x\"]", NULL, 1);
	check_all_orders(ops, 4, "{\"x\":3}");
	rep_free(&a);
	rep_free(&b);
}

static void test_reset_wins_over_concurrent_increment(void **state)
{
	struct rep a, b, c;
	struct top later_del[3], earlier_del[3];

	(void)state;
	rep_init(&a, 1);
	rep_init(&b, 2);
	/* The delete is later than the concurrent increment: dropped, and x is
	 * gone. */
	later_del[0] = issue(&a, WEFT_OP_INCR, 10, "[\"x\"]", NULL, 5);
	deliver(&b, &later_del[0]);
	later_del[1] = issue(&b, WEFT_OP_INCR, 15, "[\"x\"]", NULL, 3);
	later_del[2] = issue(&a, WEFT_OP_DELETE, 20, "[\"x\"]", NULL, 0);
	check_all_orders(later_del, 3, "{}");
	rep_free(&a);
	rep_free(&b);

	/* The increment has the larger stamp but did not see the delete: its
	 * entry counts from the old base and is dropped; x shows as a counter
	 * (the latest op there is an increment) of value 0. */
	rep_init(&a, 1);
	rep_init(&c, 3);
	earlier_del[0] = issue(&a, WEFT_OP_INCR, 10, "[\"x\"]", NULL, 5);
	deliver(&c, &earlier_del[0]);
	earlier_del[1] = issue(&a, WEFT_OP_DELETE, 20, "[\"x\"]", NULL, 0);
	earlier_del[2] = issue(&c, WEFT_OP_INCR, 25, "[\"x\"]", NULL, 3);
	check_all_orders(earlier_del, 3, "{\"x\":0}");
	rep_free(&a);
	rep_free(&c);
}

static void test_counter_claims(void **state)
{
	struct rep a, b;
	struct top over_obj[3], over_leaf[2], both[2];

	(void)state;
	/* Over an old object: the claim replaces it; a later concurrent write
	 * below x makes x an object again, holding only the newer key. */
	rep_init(&a, 1);
	rep_init(&b, 2);
	over_obj[0] = issue(&a, WEFT_OP_SET, 10, "[]", "{\"x\":{\"k\":1}}", 0);
	deliver(&b, &over_obj[0]);
	over_obj[1] = issue(&a, WEFT_OP_INCR, 20, "[\"x\"]", NULL, 2);
	check_view(&a, "{\"x\":2}");
	over_obj[2] = issue(&b, WEFT_OP_SET, 30, "[\"x\",\"m\"]", "1", 0);
	check_all_orders(over_obj, 3, "{\"x\":{\"m\":1}}");
	rep_free(&a);
	rep_free(&b);

	rep_init(&a, 1);
	over_leaf[0] = issue(&a, WEFT_OP_SET, 10, "[]", "{\"x\":\"old\",\"y\":1}", 0);
	over_leaf[1] = issue(&a, WEFT_OP_INCR, 20, "[\"x\"]", NULL, -4);
	check_all_orders(over_leaf, 2, "{\"x\":-4,\"y\":1}");
	rep_free(&a);

	/* Two replicas make x a counter concurrently: both increments count. */
	rep_init(&a, 1);
	rep_init(&b, 2);
	both[0] = issue(&a, WEFT_OP_INCR, 20, "[\"x\"]", NULL, 2);
	both[1] = issue(&b, WEFT_OP_INCR, 21, "[\"x\"]", NULL, 3);
	assert_true(both[0].op.value[both[0].op.value_len - 1] == 0xc3); /* claim */
	check_all_orders(both, 2, "{\"x\":5}");
	rep_free(&a);
	rep_free(&b);
}

/* A crash loses a replica's last increment; its next incarnation's
 * increments count on their own. */
static void test_incarnation_keys(void **state)
{
	struct rep a;
	struct top ops[3];
	struct weft_docset *snap;
	struct mp_buf enc;

	(void)state;
	rep_init(&a, 1);
	ops[0] = issue(&a, WEFT_OP_INCR, 10, "[\"x\"]", NULL, 1);
	encode(a.ds, &enc);
	ops[1] = issue(&a, WEFT_OP_INCR, 11, "[\"x\"]", NULL, 10); /* lost locally */
	assert_int_equal(weft__docset_new(NULL, &snap), WEFT_OK);
	assert_int_equal(weft__docset_load(snap, "c", 1, "d", 1, enc.data, enc.len), WEFT_OK);
	weft__docset_free(a.ds);
	a.ds = snap;
	a.inc = 2;
	ops[2] = issue(&a, WEFT_OP_INCR, 12, "[\"x\"]", NULL, 100);
	check_all_orders(ops, 3, "{\"x\":111}");
	weft__mp_buf_free(&enc);
	rep_free(&a);
}

/* ---- set rules ---- */

static void test_add_wins(void **state)
{
	struct rep a, b;
	struct top ops[3];

	(void)state;
	rep_init(&a, 1);
	rep_init(&b, 2);
	ops[0] = issue(&a, WEFT_OP_SADD, 10, "[\"s\"]", "\"e\"", 0);
	deliver(&b, &ops[0]);
	ops[1] = issue(&b, WEFT_OP_SREM, 20, "[\"s\"]", "\"e\"", 0);
	check_view(&b, "{\"s\":[]}");
	ops[2] = issue(&a, WEFT_OP_SADD, 15, "[\"s\"]", "\"e\"", 0);
	check_all_orders(ops, 3, "{\"s\":[\"e\"]}");
	rep_free(&a);
	rep_free(&b);
}

static void test_remove_and_readd(void **state)
{
	struct rep a, b;
	struct top rm[4], re[3];

	(void)state;
	rep_init(&a, 1);
	rep_init(&b, 2);
	rm[0] = issue(&a, WEFT_OP_SADD, 10, "[\"s\"]", "\"e\"", 0);
	rm[1] = issue(&a, WEFT_OP_SADD, 11, "[\"s\"]", "\"e\"", 0);
	rm[2] = issue(&a, WEFT_OP_SADD, 12, "[\"s\"]", "7", 0);
	deliver(&b, &rm[0]);
	deliver(&b, &rm[1]);
	deliver(&b, &rm[2]);
	rm[3] = issue(&b, WEFT_OP_SREM, 13, "[\"s\"]", "\"e\"", 0);
	check_all_orders(rm, 4, "{\"s\":[7]}");
	rep_free(&a);
	rep_free(&b);

	rep_init(&a, 1);
	re[0] = issue(&a, WEFT_OP_SADD, 10, "[\"s\"]", "true", 0);
	re[1] = issue(&a, WEFT_OP_SREM, 11, "[\"s\"]", "true", 0);
	re[2] = issue(&a, WEFT_OP_SADD, 12, "[\"s\"]", "true", 0);
	check_all_orders(re, 3, "{\"s\":[true]}");
	rep_free(&a);
}

static void test_set_cleared_by_delete(void **state)
{
	struct rep a, b;
	struct top ops[5];

	(void)state;
	rep_init(&a, 1);
	rep_init(&b, 2);
	ops[0] = issue(&a, WEFT_OP_SADD, 10, "[\"s\"]", "\"a\"", 0);
	ops[1] = issue(&a, WEFT_OP_SADD, 11, "[\"s\"]", "\"b\"", 0);
	ops[2] = issue(&b, WEFT_OP_SADD, 12, "[\"s\"]", "\"d\"", 0); /* concurrent, older */
	ops[3] = issue(&a, WEFT_OP_DELETE, 20, "[]", NULL, 0);
	ops[4] = issue(&a, WEFT_OP_SADD, 30, "[\"s\"]", "\"c\"", 0);
	check_all_orders(ops, 5, "{\"s\":[\"c\"]}");
	rep_free(&a);
	rep_free(&b);
}

static void test_set_order_and_types(void **state)
{
	struct rep a;
	struct top ops[6];
	const char *elems[] = {"\"b\"", "10", "2", "true", "null", "\"a\""};

	(void)state;
	rep_init(&a, 1);
	for (int i = 0; i < 6; i++)
		ops[i] = issue(&a, WEFT_OP_SADD, 0, "[\"s\"]", elems[i], 0);
	/* Sorted by canonical JSON text: '"' < digits < 'n' < 't'. */
	check_view(&a, "{\"s\":[\"a\",\"b\",10,2,null,true]}");
	for (int i = 0; i < 6; i++)
		top_free(&ops[i]);
	rep_free(&a);
}

/* A set and a counter on one path: the later op's type shows, a claim
 * replaces the other type's older data. */
static void test_type_conflicts(void **state)
{
	struct rep a, b;
	struct top ops[3];

	(void)state;
	rep_init(&a, 1);
	rep_init(&b, 2);
	ops[0] = issue(&a, WEFT_OP_INCR, 10, "[\"x\"]", NULL, 5);
	deliver(&b, &ops[0]);
	ops[1] = issue(&b, WEFT_OP_SADD, 20, "[\"x\"]", "1", 0); /* claims: counter reset */
	check_view(&b, "{\"x\":[1]}");
	ops[2] = issue(&a, WEFT_OP_INCR, 30, "[\"x\"]", NULL, 1); /* concurrent, newer */
	/* The counter shows (latest), but its old entry died with the set
	 * claim, as did the new one counted from the old base. */
	check_all_orders(ops, 3, "{\"x\":0}");
	rep_free(&a);
	rep_free(&b);
}

/* ---- op validation ---- */

static int raw_op(int kind, const char *path_json, const uint8_t *val, size_t len)
{
	struct mp_buf pb;
	struct top t;
	int rc;

	weft__mp_buf_init(&pb, NULL, 0);
	json_mp(path_json, &pb);
	rc = mk_raw(&t, kind, 1, 1, 1, 5, pb.data, pb.len, val, len);
	if (rc == WEFT_OK)
		top_free(&t);
	weft__mp_buf_free(&pb);
	return rc;
}

static void test_op_validation(void **state)
{
	/* SADD [elem, 1, false] with elem in various encodings. */
	static const uint8_t ok_int[] = {0x93, 0x01, 0x01, 0xc2};
	static const uint8_t long_int[] = {0x93, 0xd0, 0x01, 0x01, 0xc2};
	static const uint8_t int8_pos[] = {0x93, 0xd0, 0x50, 0x01, 0xc2};
	static const uint8_t u16_small[] = {0x93, 0xcd, 0x00, 0x10, 0x01, 0xc2};
	static const uint8_t str8[] = {0x93, 0xd9, 0x01, 'a', 0x01, 0xc2};
	static const uint8_t ok_str[] = {0x93, 0xa1, 'a', 0x01, 0xc2};
	static const uint8_t flt[] = {0x93, 0xcb, 0, 0, 0, 0, 0, 0, 0, 0, 0x01, 0xc2};
	static const uint8_t arr[] = {0x93, 0x90, 0x01, 0xc2};
	static const uint8_t ctr0[] = {0x93, 0x01, 0x00, 0xc2};
	static const uint8_t noclaim[] = {0x92, 0x01, 0x01};
	/* SREM [1, dots, false] */
	static const uint8_t rem_ok[] = {0x93, 0x01, 0x92, 0x93, 1, 1, 1, 0x93, 1, 1, 2, 0xc2};
	static const uint8_t rem_unsorted[] = {0x93, 0x01, 0x92, 0x93, 1, 1,
	                                       2,    0x93, 1,    1,    1, 0xc2};
	static const uint8_t rem_inc0[] = {0x93, 0x01, 0x91, 0x93, 1, 0, 1, 0xc2};
	/* INCR [delta, p, n, base_hlc, base_replica, claim] */
	static const uint8_t incr_ok[] = {0x96, 0x05, 0x05, 0x00, 0x00, 0x00, 0xc3};
	static const uint8_t incr_bad_tot[] = {0x96, 0x05, 0x04, 0x00, 0x00, 0x00, 0xc3};
	static const uint8_t incr_neg[] = {0x96, 0xfe, 0x00, 0x02, 0x00, 0x00, 0xc2};
	static const uint8_t incr_short[] = {0x95, 0x05, 0x05, 0x00, 0x00, 0x00};

	(void)state;
	assert_int_equal(raw_op(WEFT_OP_SADD, "[\"s\"]", ok_int, sizeof(ok_int)), WEFT_OK);
	assert_int_equal(raw_op(WEFT_OP_SADD, "[\"s\"]", ok_str, sizeof(ok_str)), WEFT_OK);
	assert_int_equal(raw_op(WEFT_OP_SADD, "[\"s\"]", long_int, sizeof(long_int)), WEFT_EPROTO);
	assert_int_equal(raw_op(WEFT_OP_SADD, "[\"s\"]", int8_pos, sizeof(int8_pos)), WEFT_EPROTO);
	assert_int_equal(raw_op(WEFT_OP_SADD, "[\"s\"]", u16_small, sizeof(u16_small)),
	                 WEFT_EPROTO);
	assert_int_equal(raw_op(WEFT_OP_SADD, "[\"s\"]", str8, sizeof(str8)), WEFT_EPROTO);
	assert_int_equal(raw_op(WEFT_OP_SADD, "[\"s\"]", flt, sizeof(flt)), WEFT_EPROTO);
	assert_int_equal(raw_op(WEFT_OP_SADD, "[\"s\"]", arr, sizeof(arr)), WEFT_EPROTO);
	assert_int_equal(raw_op(WEFT_OP_SADD, "[\"s\"]", ctr0, sizeof(ctr0)), WEFT_EPROTO);
	assert_int_equal(raw_op(WEFT_OP_SADD, "[\"s\"]", noclaim, sizeof(noclaim)), WEFT_EPROTO);
	assert_int_equal(raw_op(WEFT_OP_SADD, "[]", ok_int, sizeof(ok_int)), WEFT_EPROTO);
	assert_int_equal(raw_op(WEFT_OP_SREM, "[\"s\"]", rem_ok, sizeof(rem_ok)), WEFT_OK);
	assert_int_equal(raw_op(WEFT_OP_SREM, "[\"s\"]", rem_unsorted, sizeof(rem_unsorted)),
	                 WEFT_EPROTO);
	assert_int_equal(raw_op(WEFT_OP_SREM, "[\"s\"]", rem_inc0, sizeof(rem_inc0)), WEFT_EPROTO);
	assert_int_equal(raw_op(WEFT_OP_SREM, "[\"s\"]", ok_int, sizeof(ok_int)), WEFT_EPROTO);
	assert_int_equal(raw_op(WEFT_OP_INCR, "[\"x\"]", incr_ok, sizeof(incr_ok)), WEFT_OK);
	assert_int_equal(raw_op(WEFT_OP_INCR, "[\"x\"]", incr_neg, sizeof(incr_neg)), WEFT_OK);
	assert_int_equal(raw_op(WEFT_OP_INCR, "[]", incr_ok, sizeof(incr_ok)), WEFT_EPROTO);
	assert_int_equal(raw_op(WEFT_OP_INCR, "[\"x\"]", incr_bad_tot, sizeof(incr_bad_tot)),
	                 WEFT_EPROTO);
	assert_int_equal(raw_op(WEFT_OP_INCR, "[\"x\"]", incr_short, sizeof(incr_short)),
	                 WEFT_EPROTO);
	assert_int_equal(raw_op(7, "[\"x\"]", incr_ok, sizeof(incr_ok)), WEFT_EPROTO);
}

/* Every single-bit change of valid CRDT ops either fails to decode or
 * decodes into an op that applies cleanly: decoding is the trust boundary. */
static void test_op_bitflips(void **state)
{
	struct rep a, b;
	struct top t[4];

	(void)state;
	rep_init(&a, 1);
	rep_init(&b, 2);
	t[0] = issue(&a, WEFT_OP_INCR, 0, "[\"x\"]", NULL, -300);
	t[1] = issue(&a, WEFT_OP_SADD, 0, "[\"s\"]", "\"elem\"", 0);
	t[2] = issue(&a, WEFT_OP_SADD, 0, "[\"s\"]", "\"elem\"", 0);
	t[3] = issue(&a, WEFT_OP_SREM, 0, "[\"s\"]", "\"elem\"", 0);
	for (int i = 0; i < 4; i++) {
		uint8_t *copy = malloc(t[i].len);

		assert_non_null(copy);
		for (size_t at = 0; at < t[i].len; at++) {
			for (int bit = 0; bit < 8; bit++) {
				struct mp_reader r;
				struct weft_op op;

				memcpy(copy, t[i].raw, t[i].len);
				copy[at] ^= (uint8_t)(1u << bit);
				weft__mp_reader_init(&r, copy, t[i].len);
				if (weft__op_decode(&r, &op) != WEFT_OK)
					continue;
				assert_int_equal(weft__docset_apply(b.ds, &op, NULL, NULL),
				                 WEFT_OK);
				assert_int_equal(weft__docset_apply(a.ds, &op, NULL, NULL),
				                 WEFT_OK);
			}
		}
		free(copy);
	}
	for (int i = 0; i < 4; i++)
		top_free(&t[i]);
	rep_free(&a);
	rep_free(&b);
}

/* Every prefix and every single-byte change of a state with counters and
 * sets either loads or is refused; none crashes (ASan checks the rest). */
static void test_state_corruption(void **state)
{
	struct rep a, b;
	struct top t[7];
	struct mp_buf enc;
	struct weft_docset *ds;

	(void)state;
	rep_init(&a, 1);
	rep_init(&b, 2);
	t[0] = issue(&a, WEFT_OP_INCR, 0, "[\"x\"]", NULL, 3);
	t[1] = issue(&a, WEFT_OP_SADD, 0, "[\"o\",\"s\"]", "\"e\"", 0);
	t[2] = issue(&a, WEFT_OP_SADD, 0, "[\"o\",\"s\"]", "300", 0);
	t[3] = issue(&b, WEFT_OP_SADD, 0, "[\"o\",\"s\"]", "null", 0);
	t[4] = issue(&b, WEFT_OP_SADD, 0, "[\"o\",\"s\"]", "false", 0);
	deliver(&a, &t[4]); /* a sees dot 2 of b but not dot 1: a cloud */
	t[5] = issue(&a, WEFT_OP_SREM, 0, "[\"o\",\"s\"]", "\"e\"", 0);
	t[6] = issue(&a, WEFT_OP_SET, 0, "[\"y\"]", "[1,2]", 0);
	encode(a.ds, &enc);
	assert_int_equal(weft__docset_new(NULL, &ds), WEFT_OK);
	assert_int_equal(weft__docset_load(ds, "c", 1, "d", 1, enc.data, enc.len), WEFT_OK);
	{
		char *v1 = view(a.ds), *v2 = view(ds);

		assert_string_equal(v1, v2);
		assert_string_equal(v1, "{\"o\":{\"s\":[300,false]},\"x\":3,\"y\":[1,2]}");
		free(v1);
		free(v2);
	}
	for (size_t cut = 0; cut < enc.len; cut++)
		assert_int_equal(weft__docset_load(ds, "c", 1, "z", 1, enc.data, cut),
		                 WEFT_ECORRUPT);
	for (size_t i = 0; i < enc.len; i++) {
		for (int bit = 0; bit < 8; bit++) {
			int rc;

			enc.data[i] ^= (uint8_t)(1u << bit);
			rc = weft__docset_load(ds, "c", 1, "z", 1, enc.data, enc.len);
			assert_true(rc == WEFT_OK || rc == WEFT_ECORRUPT);
			enc.data[i] ^= (uint8_t)(1u << bit);
		}
	}
	/* A format-1 state still loads. */
	{
		static const uint8_t v1[] = {0x92, 0x01, 0x99, 0xc0, 0, 0, 0xc0, 5, 1, 0, 0, 0x90};

		assert_int_equal(weft__docset_load(ds, "c", 1, "v", 1, v1, sizeof(v1)), WEFT_OK);
	}
	weft__mp_buf_free(&enc);
	weft__docset_free(ds);
	for (int i = 0; i < 7; i++)
		top_free(&t[i]);
	rep_free(&a);
	rep_free(&b);
}

/* ---- model tests ---- */

static uint64_t rng;

static uint64_t rnd(void)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return rng;
}

enum { MODEL_COUNTER, MODEL_SET, MODEL_MIXED };

#define MAX_REPS 8
#define MAX_OPS 24

static const char *paths[] = {"[\"x\"]", "[\"o\",\"y\"]"};
static const char *elems[] = {"\"a\"", "\"b\"", "1", "-300", "true", "null"};

/* Prefix relation for the two paths and the delete targets. */
static const char *del_paths[] = {"[]", "[\"x\"]", "[\"o\"]", "[\"o\",\"y\"]"};

static bool del_covers(int del, int path)
{
	/* del_paths[del] is a prefix of paths[path]? */
	if (del == 0)
		return true;
	if (path == 0)
		return del == 1;
	return del == 2 || del == 3;
}

struct mop {
	struct top t;
	int kind;
	int path; /* index into paths, or into del_paths for deletes */
	int elem; /* index into elems */
	int64_t delta;
};

static bool stamp_ge(uint64_t ah, uint64_t ar, uint64_t bh, uint64_t br)
{
	return ah != bh ? ah > bh : ar >= br;
}

/* The reference value of one path: NULL when absent. */
static void ref_field(const struct mop *ops, int n, int path, int model, char *out, size_t len,
                      bool *present)
{
	uint64_t eh = 0, er = 0; /* final clear */
	bool live = false;
	int64_t sum = 0;

	for (int i = 0; i < n; i++) {
		if (ops[i].kind == WEFT_OP_DELETE && del_covers(ops[i].path, path) &&
		    stamp_ge(ops[i].t.op.hlc, ops[i].t.op.replica, eh, er)) {
			eh = ops[i].t.op.hlc;
			er = ops[i].t.op.replica;
		}
	}
	for (int i = 0; i < n; i++)
		if (ops[i].kind != WEFT_OP_DELETE && ops[i].path == path &&
		    stamp_ge(ops[i].t.op.hlc, ops[i].t.op.replica, eh, er))
			live = true;
	*present = live;
	if (!live)
		return;
	if (model == MODEL_COUNTER) {
		for (int i = 0; i < n; i++) {
			struct weft_incr v;

			if (ops[i].kind != WEFT_OP_INCR || ops[i].path != path)
				continue;
			assert_int_equal(
			    weft__op_incr_parse(ops[i].t.op.value, ops[i].t.op.value_len, &v),
			    WEFT_OK);
			if (stamp_ge(v.base.hlc, v.base.replica, eh, er))
				sum = (int64_t)((uint64_t)sum + (uint64_t)ops[i].delta);
		}
		snprintf(out, len, "%lld", (long long)sum);
		return;
	}
	/* Set: elements with an add not covered by any remove and not older
	 * than the clear, sorted by JSON text (elems[] are canonical JSON). */
	{
		bool in[6] = {false};
		const char *sorted[6];
		int k = 0;
		size_t w = 0;

		for (int i = 0; i < n; i++) {
			bool removed = false;
			struct weft_dot d;

			if (ops[i].kind != WEFT_OP_SADD || ops[i].path != path ||
			    !stamp_ge(ops[i].t.op.hlc, ops[i].t.op.replica, eh, er))
				continue;
			{
				struct weft_setop v;

				assert_int_equal(weft__op_set_parse(WEFT_OP_SADD, ops[i].t.op.value,
				                                    ops[i].t.op.value_len, &v),
				                 WEFT_OK);
				d = (struct weft_dot){ops[i].t.op.replica, ops[i].t.op.incarnation,
				                      v.ctr};
			}
			for (int j = 0; j < n && !removed; j++) {
				struct weft_setop v;
				struct mp_reader r;

				if (ops[j].kind != WEFT_OP_SREM || ops[j].path != path)
					continue;
				assert_int_equal(weft__op_set_parse(WEFT_OP_SREM, ops[j].t.op.value,
				                                    ops[j].t.op.value_len, &v),
				                 WEFT_OK);
				weft__mp_reader_init(&r, v.dots, v.dots_len);
				for (uint32_t q = 0; q < v.ndots; q++) {
					struct weft_dot e;

					assert_int_equal(weft__op_dot_read(&r, &e), WEFT_OK);
					if (weft__dot_cmp(&d, &e) == 0)
						removed = true;
				}
			}
			if (!removed)
				in[ops[i].elem] = true;
		}
		for (int e = 0; e < 6; e++)
			if (in[e])
				sorted[k++] = elems[e];
		for (int i = 1; i < k; i++)
			for (int j = i; j > 0 && strcmp(sorted[j - 1], sorted[j]) > 0; j--) {
				const char *tmp = sorted[j];

				sorted[j] = sorted[j - 1];
				sorted[j - 1] = tmp;
			}
		out[w++] = '[';
		for (int i = 0; i < k; i++)
			w += (size_t)snprintf(out + w, len - w, "%s%s", i ? "," : "", sorted[i]);
		snprintf(out + w, len - w, "]");
	}
}

/* The reference document: {"o":{"y":...},"x":...} with absent parts left
 * out, or ABSENT. */
static void ref_doc(const struct mop *ops, int n, int model, char *out, size_t len)
{
	char fx[256], fy[256];
	bool px, py, root = false, o = false;
	uint64_t rh = 0, rr = 0, oh = 0, orr = 0;

	ref_field(ops, n, 0, model, fx, sizeof(fx), &px);
	ref_field(ops, n, 1, model, fy, sizeof(fy), &py);
	for (int i = 0; i < n; i++) {
		if (ops[i].kind != WEFT_OP_DELETE)
			continue;
		if (ops[i].path == 0 && stamp_ge(ops[i].t.op.hlc, ops[i].t.op.replica, rh, rr)) {
			rh = ops[i].t.op.hlc;
			rr = ops[i].t.op.replica;
		}
		if (ops[i].path <= 2 && ops[i].path != 1 &&
		    stamp_ge(ops[i].t.op.hlc, ops[i].t.op.replica, oh, orr)) {
			oh = ops[i].t.op.hlc;
			orr = ops[i].t.op.replica;
		}
	}
	for (int i = 0; i < n; i++) {
		if (ops[i].kind == WEFT_OP_DELETE)
			continue;
		if (stamp_ge(ops[i].t.op.hlc, ops[i].t.op.replica, rh, rr))
			root = true;
		if (ops[i].path == 1 && stamp_ge(ops[i].t.op.hlc, ops[i].t.op.replica, oh, orr))
			o = true;
	}
	if (!root) {
		snprintf(out, len, "ABSENT");
		return;
	}
	snprintf(out, len, "{%s%s%s%s%s%s%s%s}", o ? "\"o\":{" : "", o && py ? "\"y\":" : "",
	         o && py ? fy : "", o ? "}" : "", o && px ? "," : "", px ? "\"x\":" : "",
	         px ? fx : "", "");
}

static void dump_history(const struct mop *ops, int n)
{
	for (int i = 0; i < n; i++)
		fprintf(
		    stderr,
		    "  op %d: kind %d replica %llu inc %u hlc %llu path %d elem %d delta %lld\n", i,
		    ops[i].kind, (unsigned long long)ops[i].t.op.replica, ops[i].t.op.incarnation,
		    (unsigned long long)ops[i].t.op.hlc, ops[i].path, ops[i].elem,
		    (long long)ops[i].delta);
}

/* One random history: replicas issue ops from their own state, exchange
 * them in random order with duplicates and drops, sometimes crash back to
 * a saved state in a new incarnation; at the end everything is resent. */
static void model_round(uint64_t seed, int round, int model)
{
	struct rep reps[MAX_REPS];
	struct mp_buf snaps[MAX_REPS];
	struct mop ops[MAX_OPS];
	bool got[MAX_REPS][MAX_OPS];
	int nrep, nops, steps;
	struct mp_buf enc0;
	char *view0, expect[1024];

	rng = seed + (uint64_t)round * 7919 + (uint64_t)model * 104729 + 1;
	rnd();
	nrep = 3 + (int)(rnd() % 6);
	nops = 0;
	steps = 4 + (int)(rnd() % 30);
	memset(got, 0, sizeof(got));
	for (int k = 0; k < nrep; k++) {
		rep_init(&reps[k], 1 + rnd() % 1000);
		for (int j = 0; j < k; j++)
			if (reps[j].replica == reps[k].replica)
				reps[k].replica += 1000 + (uint64_t)k;
		weft__mp_buf_init(&snaps[k], NULL, 0);
	}
	for (int s = 0; s < steps && nops < MAX_OPS; s++) {
		int k = (int)(rnd() % (uint64_t)nrep);
		struct rep *r = &reps[k];
		uint64_t what = rnd() % 10;

		if (what < 5) {
			struct mop *m = &ops[nops];
			uint64_t h = r->hlc + 1 + rnd() % 2;
			uint64_t pick = rnd() % 10;

			memset(m, 0, sizeof(*m));
			m->path = (int)(rnd() % 2);
			if (pick < 2) {
				m->kind = WEFT_OP_DELETE;
				m->path = (int)(rnd() % 4);
				m->t = issue(r, m->kind, h, del_paths[m->path], NULL, 0);
			} else if (model == MODEL_MIXED && pick < 3) {
				m->kind = WEFT_OP_SET;
				m->t = issue(r, m->kind, h, paths[m->path],
				             rnd() % 2 ? "5" : "{\"k\":1}", 0);
			} else if (model == MODEL_COUNTER || (model == MODEL_MIXED && pick < 6)) {
				m->kind = WEFT_OP_INCR;
				m->delta = (int64_t)(rnd() % 11) - 5;
				if (rnd() % 16 == 0)
					m->delta = rnd() % 2 ? INT64_MAX / 4 : INT64_MIN / 4;
				m->t = issue(r, m->kind, h, paths[m->path], NULL, m->delta);
			} else {
				m->kind = rnd() % 3 ? WEFT_OP_SADD : WEFT_OP_SREM;
				m->elem = (int)(rnd() % 6);
				m->t = issue(r, m->kind, h, paths[m->path], elems[m->elem], 0);
			}
			got[k][nops] = true;
			nops++;
		} else if (what < 9) {
			/* Deliver a few ops to k, any order, some twice, some not. */
			int cnt = 1 + (int)(rnd() % 4);

			for (int c = 0; c < cnt && nops > 0; c++) {
				int i = (int)(rnd() % (uint64_t)nops);

				if (got[k][i] && rnd() % 3)
					continue;
				deliver(r, &ops[i].t);
				got[k][i] = true;
			}
		} else if (rnd() % 2) {
			/* Snapshot, as the store would persist. */
			weft__mp_buf_free(&snaps[k]);
			encode(r->ds, &snaps[k]);
		} else if (r->inc < 50) {
			/* Crash: back to the last snapshot, new incarnation. Ops
			 * issued or received since are lost here but may live on
			 * elsewhere, and are resent at the end. */
			weft__docset_free(r->ds);
			assert_int_equal(weft__docset_new(NULL, &r->ds), WEFT_OK);
			if (snaps[k].len)
				assert_int_equal(weft__docset_load(r->ds, "c", 1, "d", 1,
				                                   snaps[k].data, snaps[k].len),
				                 WEFT_OK);
			r->inc++;
			r->seq = 0;
			for (int i = 0; i < nops; i++)
				got[k][i] = false; /* resending to it is harmless */
		}
	}
	/* Resend everything to everyone, shuffled, with duplicates. */
	for (int k = 0; k < nrep; k++) {
		int order[2 * MAX_OPS], m = 0;

		for (int i = 0; i < nops; i++) {
			if (!got[k][i] || rnd() % 4 == 0)
				order[m++] = i;
		}
		for (int i = m - 1; i > 0; i--) {
			int j = (int)(rnd() % (uint64_t)(i + 1)), tmp = order[i];

			order[i] = order[j];
			order[j] = tmp;
		}
		for (int i = 0; i < m; i++)
			deliver(&reps[k], &ops[order[i]].t);
	}
	encode(reps[0].ds, &enc0);
	view0 = view(reps[0].ds);
	if (model != MODEL_MIXED) {
		ref_doc(ops, nops, model, expect, sizeof(expect));
		if (strcmp(view0, expect) != 0) {
			fprintf(stderr, "seed %llu round %d model %d: shows %s, reference %s\n",
			        (unsigned long long)seed, round, model, view0, expect);
			dump_history(ops, nops);
			fail();
		}
	}
	for (int k = 0; k < nrep; k++) {
		struct mp_buf e, e2;
		struct weft_docset *ds;
		char *v = view(reps[k].ds), *v2;

		encode(reps[k].ds, &e);
		if (strcmp(v, view0) != 0 || e.len != enc0.len ||
		    (e.len && memcmp(e.data, enc0.data, e.len) != 0)) {
			fprintf(stderr,
			        "seed %llu round %d model %d: replica %d shows %s, replica 0 %s\n",
			        (unsigned long long)seed, round, model, k, v, view0);
			dump_history(ops, nops);
			fail();
		}
		/* Save/load round trip. */
		assert_int_equal(weft__docset_new(NULL, &ds), WEFT_OK);
		if (e.len)
			assert_int_equal(weft__docset_load(ds, "c", 1, "d", 1, e.data, e.len),
			                 WEFT_OK);
		v2 = view(ds);
		encode(ds, &e2);
		assert_string_equal(v2, v);
		assert_int_equal(e2.len, e.len);
		if (e.len)
			assert_memory_equal(e2.data, e.data, e.len);
		free(v);
		free(v2);
		weft__mp_buf_free(&e);
		weft__mp_buf_free(&e2);
		weft__docset_free(ds);
	}
	free(view0);
	weft__mp_buf_free(&enc0);
	for (int k = 0; k < nrep; k++) {
		rep_free(&reps[k]);
		weft__mp_buf_free(&snaps[k]);
	}
	for (int i = 0; i < nops; i++)
		top_free(&ops[i].t);
}

static void run_model(const char *name, int model, int default_rounds)
{
	const char *env = getenv("WEFT_TEST_SEED");
	const char *rounds_env = getenv("WEFT_TEST_ROUNDS");
	uint64_t seed = env ? strtoull(env, NULL, 0) : 0xc0ffee11ULL;
	int rounds = rounds_env ? atoi(rounds_env) : default_rounds;

	printf("%s: seed %llu, %d rounds (WEFT_TEST_SEED to replay)\n", name,
	       (unsigned long long)seed, rounds);
	for (int round = 0; round < rounds; round++)
		model_round(seed, round, model);
}

static void test_model_counter(void **state)
{
	(void)state;
	run_model("test_model_counter", MODEL_COUNTER, 10000);
}

static void test_model_set(void **state)
{
	(void)state;
	run_model("test_model_set", MODEL_SET, 10000);
}

/* Counters, sets, values and deletes on the same paths: no reference model
 * for the type conflicts, but every replica must converge to the same bytes
 * and survive a save/load round trip. */
static void test_model_mixed_converges(void **state)
{
	(void)state;
	run_model("test_model_mixed_converges", MODEL_MIXED, 5000);
}

/* ---- allocation failures ---- */

static struct mp_buf clean_state; /* the state of the run without failures */

/* Applies ops to a docset on allocator fa, writes its JSON, encodes it and
 * loads the state into a second docset. On WEFT_ENOMEM, re-applying every
 * op with allocation working must give the clean run's state (an op cut
 * short is completed by applying it again). */
static int failalloc_scenario(struct failalloc *fa, struct top *ops, int n, bool record)
{
	struct weft_docset *ds = NULL, *ds2 = NULL;
	struct weft_doc *d;
	struct mp_buf b, enc;
	int rc;

	weft__mp_buf_init(&b, &fa->a, 0);
	weft__mp_buf_init(&enc, &fa->a, 0);
	if ((rc = weft__docset_new(&fa->a, &ds)) != WEFT_OK)
		goto out;
	for (int i = 0; i < n; i++)
		if ((rc = weft__docset_apply(ds, &ops[i].op, NULL, NULL)) != WEFT_OK)
			goto out;
	d = weft__docset_find(ds, "c", 1, "d", 1);
	if ((rc = weft__doc_write_json(d, &b)) != WEFT_OK)
		goto out;
	weft__doc_encode(d, &enc);
	if ((rc = enc.err) != WEFT_OK)
		goto out;
	if ((rc = weft__docset_new(&fa->a, &ds2)) != WEFT_OK)
		goto out;
	if ((rc = weft__docset_load(ds2, "c", 1, "d", 1, enc.data, enc.len)) != WEFT_OK)
		goto out;
	if (record) {
		weft__mp_buf_init(&clean_state, NULL, 0);
		weft__mp_write_raw(&clean_state, enc.data, enc.len);
	}
out:
	if (rc == WEFT_ENOMEM && ds) {
		struct mp_buf e2;

		fa->fail_at = 0;
		for (int i = 0; i < n; i++)
			assert_int_equal(weft__docset_apply(ds, &ops[i].op, NULL, NULL), WEFT_OK);
		weft__mp_buf_init(&e2, NULL, 0);
		weft__doc_encode(weft__docset_find(ds, "c", 1, "d", 1), &e2);
		assert_int_equal(e2.len, clean_state.len);
		assert_memory_equal(e2.data, clean_state.data, e2.len);
		weft__mp_buf_free(&e2);
	}
	weft__docset_free(ds);
	weft__docset_free(ds2);
	weft__mp_buf_free(&enc);
	weft__mp_buf_free(&b);
	return rc;
}

static void test_failalloc(void **state)
{
	struct rep a, b;
	struct top ops[9];
	struct failalloc fa;
	long total;

	(void)state;
	rep_init(&a, 1);
	rep_init(&b, 2);
	ops[0] = issue(&a, WEFT_OP_SET, 0, "[]", "{\"x\":\"v\",\"o\":{\"k\":1}}", 0);
	ops[1] = issue(&a, WEFT_OP_INCR, 0, "[\"x\"]", NULL, 4);
	ops[2] = issue(&b, WEFT_OP_INCR, 0, "[\"x\"]", NULL, -1);
	ops[3] = issue(&a, WEFT_OP_SADD, 0, "[\"o\",\"s\"]", "\"e\"", 0);
	ops[4] = issue(&b, WEFT_OP_SADD, 0, "[\"o\",\"s\"]", "\"f\"", 0);
	ops[5] = issue(&b, WEFT_OP_SADD, 0, "[\"o\",\"s\"]", "\"g\"", 0);
	deliver(&a, &ops[5]);
	ops[6] = issue(&a, WEFT_OP_SREM, 0, "[\"o\",\"s\"]", "\"g\"", 0);
	ops[7] = issue(&a, WEFT_OP_SADD, 0, "[\"o\",\"t\"]", "1", 0);
	ops[8] = issue(&a, WEFT_OP_DELETE, 0, "[\"o\",\"t\"]", NULL, 0);

	failalloc_init(&fa, 0, 0);
	assert_int_equal(failalloc_scenario(&fa, ops, 9, true), WEFT_OK);
	assert_int_equal(fa.live, 0);
	total = fa.count;
	assert_true(total > 20);
	for (long k = 1; k <= total; k++) {
		for (int sticky = 0; sticky < 2; sticky++) {
			failalloc_init(&fa, k, sticky);
			assert_int_equal(failalloc_scenario(&fa, ops, 9, false), WEFT_ENOMEM);
			if (fa.live != 0)
				fail_msg("failing allocation %ld of %ld leaked %ld", k, total,
				         fa.live);
		}
	}
	weft__mp_buf_free(&clean_state);
	for (int i = 0; i < 9; i++)
		top_free(&ops[i]);
	rep_free(&a);
	rep_free(&b);
}

/* ---- the public API ---- */

static void test_public_api(void **state)
{
	char dir[64], path[96];
	weft_db *db;
	char *json;

	(void)state;
	snprintf(dir, sizeof(dir), "/tmp/weft-test-crdt-XXXXXX");
	assert_non_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/r.db", dir);
	assert_int_equal(weft_open(path, NULL, &db), WEFT_OK);
	assert_int_equal(weft_put_json(db, "c", "d", "{\"n\":\"old\",\"keep\":1}", (size_t)-1),
	                 WEFT_OK);
	assert_int_equal(weft_incr(db, "c", "d", "n", 5), WEFT_OK);
	assert_int_equal(weft_incr(db, "c", "d", "n", -7), WEFT_OK);
	assert_int_equal(weft_incr(db, "c", "d", "a\\.b.c", 1), WEFT_OK);
	assert_int_equal(weft_set_add(db, "c", "d", "tags", "\"x\""), WEFT_OK);
	assert_int_equal(weft_set_add(db, "c", "d", "tags", "\"y\""), WEFT_OK);
	assert_int_equal(weft_set_add(db, "c", "d", "tags", "3"), WEFT_OK);
	assert_int_equal(weft_set_remove(db, "c", "d", "tags", "\"x\""), WEFT_OK);
	assert_int_equal(weft_set_remove(db, "c", "d", "tags", "\"absent\""), WEFT_OK);
	assert_int_equal(weft_set_add(db, "c", "d", "b\\\\s", "null"), WEFT_OK);

	/* Errors change nothing. */
	assert_int_equal(weft_incr(db, "c", "d", "", 1), WEFT_EINVAL);
	assert_int_equal(weft_incr(db, "c", "d", NULL, 1), WEFT_EINVAL);
	assert_int_equal(weft_incr(db, "c", "d", "a..b", 1), WEFT_EINVAL);
	assert_int_equal(weft_incr(db, "c", "d", "a.", 1), WEFT_EINVAL);
	assert_int_equal(weft_incr(db, "c", "d", "a\\x", 1), WEFT_EINVAL);
	assert_int_equal(weft_incr(db, "c", "d", "a\\", 1), WEFT_EINVAL);
	assert_int_equal(weft_incr(db, "", "d", "a", 1), WEFT_EINVAL);
	assert_int_equal(weft_set_add(db, "c", "d", "tags", "1.5"), WEFT_EINVAL);
	assert_int_equal(weft_set_add(db, "c", "d", "tags", "[1]"), WEFT_EINVAL);
	assert_int_equal(weft_set_add(db, "c", "d", "tags", "{}"), WEFT_EINVAL);
	assert_int_equal(weft_set_add(db, "c", "d", "tags", "nope"), WEFT_EINVAL);
	assert_int_equal(weft_set_add(db, "c", "d", "tags", NULL), WEFT_EINVAL);
	/* This replica's total of increments would pass 2^64 - 1. */
	assert_int_equal(weft_incr(db, "c", "d", "n", INT64_MAX), WEFT_OK);
	assert_int_equal(weft_incr(db, "c", "d", "n", INT64_MAX), WEFT_ETOOBIG);
	assert_int_equal(weft_incr(db, "c", "d", "n", -INT64_MAX), WEFT_OK);

	assert_int_equal(weft_get_json(db, "c", "d", &json, NULL), WEFT_OK);
	assert_string_equal(json, "{\"a.b\":{\"c\":1},\"b\\\\s\":[null],\"keep\":1,\"n\":-2,"
	                          "\"tags\":[\"y\",3]}");
	weft_free(json);
	assert_int_equal(weft_close(db), WEFT_OK);

	assert_int_equal(weft_open(path, NULL, &db), WEFT_OK);
	assert_int_equal(weft_get_json(db, "c", "d", &json, NULL), WEFT_OK);
	assert_string_equal(json, "{\"a.b\":{\"c\":1},\"b\\\\s\":[null],\"keep\":1,\"n\":-2,"
	                          "\"tags\":[\"y\",3]}");
	weft_free(json);
	/* A new incarnation keeps counting from the loaded value. */
	assert_int_equal(weft_incr(db, "c", "d", "n", 10), WEFT_OK);
	assert_int_equal(weft_set_remove(db, "c", "d", "tags", "\"y\""), WEFT_OK);
	assert_int_equal(weft_get_json(db, "c", "d", &json, NULL), WEFT_OK);
	assert_string_equal(json, "{\"a.b\":{\"c\":1},\"b\\\\s\":[null],\"keep\":1,\"n\":8,"
	                          "\"tags\":[3]}");
	weft_free(json);
	assert_int_equal(weft_close(db), WEFT_OK);
	assert_int_equal(weft_open(path, NULL, &db), WEFT_OK);
	assert_int_equal(weft_get_json(db, "c", "d", &json, NULL), WEFT_OK);
	assert_string_equal(json, "{\"a.b\":{\"c\":1},\"b\\\\s\":[null],\"keep\":1,\"n\":8,"
	                          "\"tags\":[3]}");
	weft_free(json);
	assert_int_equal(weft_close(db), WEFT_OK);
	{
		char cmd[160];

		snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
		assert_int_equal(system(cmd), 0);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_concurrent_increments),
	    cmocka_unit_test(test_duplicates_exact),
	    cmocka_unit_test(test_reset_then_increment),
	    cmocka_unit_test(test_reset_wins_over_concurrent_increment),
	    cmocka_unit_test(test_counter_claims),
	    cmocka_unit_test(test_incarnation_keys),
	    cmocka_unit_test(test_add_wins),
	    cmocka_unit_test(test_remove_and_readd),
	    cmocka_unit_test(test_set_cleared_by_delete),
	    cmocka_unit_test(test_set_order_and_types),
	    cmocka_unit_test(test_type_conflicts),
	    cmocka_unit_test(test_op_validation),
	    cmocka_unit_test(test_op_bitflips),
	    cmocka_unit_test(test_state_corruption),
	    cmocka_unit_test(test_model_counter),
	    cmocka_unit_test(test_model_set),
	    cmocka_unit_test(test_model_mixed_converges),
	    cmocka_unit_test(test_failalloc),
	    cmocka_unit_test(test_public_api),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
