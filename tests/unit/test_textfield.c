/*
 * test_textfield.c - collaborative text as a field type (docs/DATA-MODEL.md,
 * "Text"): one test per rule, each checked in every delivery order and with
 * duplicates; a model test where 3-5 simulated replicas edit a text field
 * from their own state (as a real replica builds TEXT ops), write other
 * fields, reset the text path now and then, exchange their ops shuffled and
 * duplicated, and must end showing identical JSON; the P2P join of text
 * states; allocation-failure runs over applying a TEXT op and loading a
 * state with a text; and the public API on a real file.
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
#include "core/text.h"
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

static void rep_init_alloc(struct rep *r, uint64_t replica, const struct weft_alloc *a)
{
	memset(r, 0, sizeof(*r));
	assert_int_equal(weft__docset_new(a, &r->ds), WEFT_OK);
	r->replica = replica;
	r->inc = 1;
	weft__docset_set_agent(r->ds, replica, 1);
}

static void rep_init(struct rep *r, uint64_t replica)
{
	rep_init_alloc(r, replica, NULL);
}

static void rep_free(struct rep *r)
{
	weft__docset_free(r->ds);
}

static int cur_round = -1; /* the model round running, for messages */

static void deliver(struct rep *r, const struct top *t)
{
	int rc = weft__docset_apply(r->ds, &t->op, NULL, NULL);

	if (rc != WEFT_OK)
		fail_msg("round %d: apply of op %llu/%llu (kind %d) on replica %llu: %s", cur_round,
		         (unsigned long long)t->op.replica, (unsigned long long)t->op.seq,
		         (int)t->op.kind, (unsigned long long)r->replica, weft_strerror(rc));
	if (t->op.hlc > r->hlc)
		r->hlc = t->op.hlc;
}

/* A TEXT op issued by r from its own state at HLC hlc (0: the next one),
 * applied locally. Returns rc of building the value (WEFT_EINVAL: out of
 * range; *t is then empty). */
static int text_issue(struct rep *r, struct top *t, uint64_t hlc, const char *path_json, bool del,
                      size_t pos, const char *s, size_t count)
{
	struct mp_buf pb, vb;
	int rc;

	memset(t, 0, sizeof(*t));
	weft__mp_buf_init(&pb, NULL, 0);
	weft__mp_buf_init(&vb, NULL, 0);
	json_mp(path_json, &pb);
	rc = weft__docset_text_value(r->ds, "c", 1, "d", 1, pb.data, pb.len, r->replica, r->inc,
	                             del, pos, s, s ? strlen(s) : 0, count, &vb);

	if (rc == WEFT_OK) {
		r->hlc = hlc ? hlc : r->hlc + 1;
		assert_int_equal(mk_raw(t, WEFT_OP_TEXT, r->replica, r->inc, ++r->seq, r->hlc,
		                        pb.data, pb.len, vb.data, vb.len),
		                 WEFT_OK);
		deliver(r, t);
	}
	weft__mp_buf_free(&pb);
	weft__mp_buf_free(&vb);
	return rc;
}

static struct top tins(struct rep *r, uint64_t hlc, const char *path, size_t pos, const char *s)
{
	struct top t;

	assert_int_equal(text_issue(r, &t, hlc, path, false, pos, s, 0), WEFT_OK);
	return t;
}

static struct top tdel(struct rep *r, uint64_t hlc, const char *path, size_t pos, size_t n)
{
	struct top t;

	assert_int_equal(text_issue(r, &t, hlc, path, true, pos, NULL, n), WEFT_OK);
	return t;
}

/* SET/REPLACE (JSON value) or DELETE (val NULL) from r, applied locally. */
static struct top other(struct rep *r, int kind, uint64_t hlc, const char *path_json,
                        const char *val)
{
	struct mp_buf pb, vb;
	struct top t;

	weft__mp_buf_init(&pb, NULL, 0);
	weft__mp_buf_init(&vb, NULL, 0);
	json_mp(path_json, &pb);
	if (val)
		json_mp(val, &vb);
	else
		weft__mp_write_nil(&vb);
	r->hlc = hlc ? hlc : r->hlc + 1;
	assert_int_equal(mk_raw(&t, kind, r->replica, r->inc, ++r->seq, r->hlc, pb.data, pb.len,
	                        vb.data, vb.len),
	                 WEFT_OK);
	deliver(r, &t);
	weft__mp_buf_free(&pb);
	weft__mp_buf_free(&vb);
	return t;
}

/* The document's JSON on r ("absent" when not visible), malloc'ed. */
static char *doc_json(struct rep *r)
{
	struct weft_doc *d = weft__docset_find(r->ds, "c", 1, "d", 1);
	struct mp_buf b;
	size_t len;

	if (!d || !weft__doc_visible(d))
		return strdup("absent");
	weft__mp_buf_init(&b, NULL, 0);
	assert_int_equal(weft__doc_write_json(d, &b), WEFT_OK);
	weft__mp_write_raw(&b, "", 1);
	return (char *)weft__mp_buf_take(&b, &len);
}

static void assert_json(struct rep *r, const char *want)
{
	char *got = doc_json(r);

	if (strcmp(got, want) != 0)
		fail_msg("want %s, got %s", want, got);
	free(got);
}

/* Applies ops[order[i]] to a fresh replica for every permutation of n ops
 * (n <= 5), each order also with the whole list delivered twice, and checks
 * the JSON. */
static void all_orders(const struct top *ops, int n, const char *want)
{
	int idx[5], c[5] = {0}, i = 0;

	for (int k = 0; k < n; k++)
		idx[k] = k;
	for (;;) {
		for (int dup = 0; dup < 2; dup++) {
			struct rep r;

			rep_init(&r, 999);
			for (int pass = 0; pass <= dup; pass++)
				for (int k = 0; k < n; k++)
					deliver(&r, &ops[idx[k]]);
			assert_json(&r, want);
			rep_free(&r);
		}
		/* Heap's algorithm, iterative. */
		while (i < n && c[i] >= i) {
			c[i] = 0;
			i++;
		}
		if (i >= n)
			break;
		if (i % 2 == 0) {
			int t = idx[0];
			idx[0] = idx[i];
			idx[i] = t;
		} else {
			int t = idx[c[i]];
			idx[c[i]] = idx[i];
			idx[i] = t;
		}
		c[i]++;
		i = 0;
	}
}

/* ---- rules ---- */

static void test_insert_delete_visible(void **state)
{
	struct rep a;
	struct top ops[4];

	(void)state;
	rep_init(&a, 1);
	ops[0] = tins(&a, 10, "[\"t\",\"body\"]", 0, "hello");
	ops[1] = tins(&a, 11, "[\"t\",\"body\"]", 5, " wörld");
	ops[2] = tdel(&a, 12, "[\"t\",\"body\"]", 0, 1);
	ops[3] = tins(&a, 13, "[\"t\",\"body\"]", 0, "J");
	assert_json(&a, "{\"t\":{\"body\":\"Jello wörld\"}}");
	all_orders(ops, 4, "{\"t\":{\"body\":\"Jello wörld\"}}");
	/* Out of range positions are refused and change nothing. */
	{
		struct top t;

		assert_int_equal(text_issue(&a, &t, 0, "[\"t\",\"body\"]", false, 12, "x", 0),
		                 WEFT_EINVAL);
		assert_int_equal(text_issue(&a, &t, 0, "[\"t\",\"body\"]", true, 10, NULL, 2),
		                 WEFT_EINVAL);
		assert_int_equal(text_issue(&a, &t, 0, "[\"t\",\"body\"]", false, 0, "\xff", 0),
		                 WEFT_EINVAL);
	}
	assert_json(&a, "{\"t\":{\"body\":\"Jello wörld\"}}");
	for (int i = 0; i < 4; i++)
		top_free(&ops[i]);
	rep_free(&a);
}

/* Two replicas type at the same spot concurrently, one character per op:
 * both runs survive whole, in the same order everywhere. */
static void test_concurrent_same_spot(void **state)
{
	struct rep a, b;
	struct top base, ta[3], tb[3], all[6];
	char *ja, *jb;

	(void)state;
	rep_init(&a, 1);
	rep_init(&b, 2);
	base = tins(&a, 10, "[\"s\"]", 0, "ab");
	deliver(&b, &base);
	for (int i = 0; i < 3; i++) {
		ta[i] = tins(&a, 20 + i, "[\"s\"]", 1 + i, "X");
		tb[i] = tins(&b, 20 + i, "[\"s\"]", 1 + i, "Y");
	}
	/* Deliver in opposite orders, B's ops reversed to A. */
	for (int i = 2; i >= 0; i--)
		deliver(&a, &tb[i]);
	for (int i = 0; i < 3; i++)
		deliver(&b, &ta[i]);
	ja = doc_json(&a);
	jb = doc_json(&b);
	assert_string_equal(ja, jb);
	if (strcmp(ja, "{\"s\":\"aXXXYYYb\"}") != 0 && strcmp(ja, "{\"s\":\"aYYYXXXb\"}") != 0)
		fail_msg("interleaved: %s", ja);
	for (int i = 0; i < 3; i++) {
		all[i] = ta[i];
		all[3 + i] = tb[i];
	}
	/* Every order of a subset (with the base first). */
	{
		struct top sub[5] = {ta[0], ta[1], tb[0], tb[1], tb[2]};
		struct rep r;
		char *want;

		rep_init(&r, 9);
		deliver(&r, &base);
		for (int i = 0; i < 5; i++)
			deliver(&r, &sub[i]);
		want = doc_json(&r);
		rep_free(&r);
		/* base must come first for positions; orders of the rest vary,
		 * and the base itself may also arrive late (buffered). */
		for (int k = 0; k < 2; k++) {
			rep_init(&r, 9);
			if (k == 0)
				deliver(&r, &base);
			for (int i = 4; i >= 0; i--)
				deliver(&r, &sub[i]);
			if (k == 1)
				deliver(&r, &base);
			assert_json(&r, want);
			rep_free(&r);
		}
		free(want);
	}
	(void)all;
	free(ja);
	free(jb);
	top_free(&base);
	for (int i = 0; i < 3; i++) {
		top_free(&ta[i]);
		top_free(&tb[i]);
	}
	rep_free(&a);
	rep_free(&b);
}

/* A text claim replaces an older scalar, and a concurrent older scalar
 * write; a newer scalar write resets the text. */
static void test_claim_over_scalar(void **state)
{
	struct rep a, b, c;
	struct top ops[3];

	(void)state;
	rep_init(&a, 1);
	rep_init(&b, 2);
	rep_init(&c, 3);
	ops[0] = other(&a, WEFT_OP_SET, 10, "[]", "{\"f\":\"old\",\"k\":1}");
	deliver(&b, &ops[0]);
	ops[1] = tins(&b, 30, "[\"f\"]", 0, "new");          /* claims f as a text */
	ops[2] = other(&c, WEFT_OP_SET, 20, "[\"f\"]", "7"); /* concurrent, older */
	/* The concurrent older scalar write at f is a clear at 20 that B's text
	 * (base 10, from the clear of the scalar "old") did not see: reset wins,
	 * as for counters. The claim at 30 still decides that f is a text. */
	all_orders(ops, 3, "{\"f\":\"\",\"k\":1}");
	{
		struct top sub[2] = {ops[0], ops[1]};

		all_orders(sub, 2, "{\"f\":\"new\",\"k\":1}");
	}
	top_free(&ops[2]);
	ops[2] = other(&c, WEFT_OP_SET, 40, "[\"f\"]", "7"); /* concurrent, newer */
	all_orders(ops, 3, "{\"f\":7,\"k\":1}");
	/* A text hidden under a newer object shows again once claimed. */
	{
		struct rep r;
		struct top o[4];

		rep_init(&r, 5);
		o[0] = tins(&r, 10, "[\"g\"]", 0, "hi");
		o[1] = other(&r, WEFT_OP_SET, 11, "[\"g\"]", "{\"x\":1}");
		assert_json(&r, "{\"g\":{\"x\":1}}");
		o[2] = tins(&r, 12, "[\"g\"]", 2, "!");
		assert_json(&r, "{\"g\":\"hi!\"}");
		all_orders(o, 3, "{\"g\":\"hi!\"}");
		for (int i = 0; i < 3; i++)
			top_free(&o[i]);
		rep_free(&r);
	}
	for (int i = 0; i < 3; i++)
		top_free(&ops[i]);
	rep_free(&a);
	rep_free(&b);
	rep_free(&c);
}

/* Delete of the path, then a new text: only the new text shows; an edit
 * that did not see the delete is dropped whatever its stamp. */
static void test_reset(void **state)
{
	struct rep a, b;
	struct top ops[5];

	(void)state;
	rep_init(&a, 1);
	rep_init(&b, 2);
	ops[0] = tins(&a, 10, "[\"p\",\"t\"]", 0, "old");
	deliver(&b, &ops[0]);
	ops[1] = other(&a, WEFT_OP_DELETE, 20, "[\"p\",\"t\"]", NULL);
	ops[2] = tins(&a, 30, "[\"p\",\"t\"]", 0, "new");
	assert_json(&a, "{\"p\":{\"t\":\"new\"}}");
	ops[3] = tins(&b, 40, "[\"p\",\"t\"]", 3, "er"); /* missed the delete */
	all_orders(ops, 4, "{\"p\":{\"t\":\"new\"}}");
	/* Without the new text, the later stale edit shows an empty text
	 * (as a counter shows 0 after a reset it missed). */
	{
		struct top sub[3] = {ops[0], ops[1], ops[3]};

		all_orders(sub, 3, "{\"p\":{\"t\":\"\"}}");
	}
	/* Replacing the parent resets too. */
	ops[4] = other(&b, WEFT_OP_REPLACE, 50, "[\"p\"]", "{\"q\":1}");
	all_orders(ops, 5, "{\"p\":{\"q\":1}}");
	for (int i = 0; i < 5; i++)
		top_free(&ops[i]);
	rep_free(&a);
	rep_free(&b);
}

static void state_of(struct rep *r, struct mp_buf *out, bool full)
{
	struct weft_doc *d = weft__docset_find(r->ds, "c", 1, "d", 1);

	assert_non_null(d);
	if (full)
		weft__doc_encode_full(d, out);
	else
		weft__doc_encode(d, out);
	assert_int_equal(out->err, 0);
}

static void test_save_load(void **state)
{
	struct rep a, b;
	struct top ops[4];
	struct mp_buf s1, s2;

	(void)state;
	rep_init(&a, 1);
	rep_init(&b, 2);
	ops[0] = tins(&a, 10, "[\"t\"]", 0, "héllo");
	ops[1] = tdel(&a, 11, "[\"t\"]", 1, 1);
	ops[2] = other(&a, WEFT_OP_SET, 12, "[\"n\"]", "1");
	weft__mp_buf_init(&s1, NULL, 0);
	weft__mp_buf_init(&s2, NULL, 0);
	state_of(&a, &s1, true);
	assert_int_equal(weft__docset_load(b.ds, "c", 1, "d", 1, s1.data, s1.len), WEFT_OK);
	assert_json(&b, "{\"n\":1,\"t\":\"hllo\"}");
	state_of(&b, &s2, true);
	assert_int_equal(s1.len, s2.len);
	assert_memory_equal(s1.data, s2.data, s1.len);
	/* The loaded replica edits on (as its own agent) and A follows. */
	ops[3] = tins(&b, 20, "[\"t\"]", 4, "!");
	deliver(&a, &ops[3]);
	assert_json(&a, "{\"n\":1,\"t\":\"hllo!\"}");
	/* Format-2 content state loads too. */
	weft__mp_buf_reset(&s1);
	state_of(&a, &s1, false);
	assert_int_equal(weft__docset_load(b.ds, "c", 1, "d", 1, s1.data, s1.len), WEFT_OK);
	assert_json(&b, "{\"n\":1,\"t\":\"hllo!\"}");
	/* Corrupt text bytes are refused. */
	{
		size_t at = s1.len - 3;

		s1.data[at] ^= 0x55;
		int rc = weft__docset_load(b.ds, "c", 1, "d", 1, s1.data, s1.len);

		assert_true(rc == WEFT_ECORRUPT || rc == WEFT_OK);
	}
	weft__mp_buf_free(&s1);
	weft__mp_buf_free(&s2);
	for (int i = 0; i < 4; i++)
		top_free(&ops[i]);
	rep_free(&a);
	rep_free(&b);
}

/* Bad TEXT ops: refused by the decoder (shape) or by apply (update bytes),
 * and a refused update changes nothing. */
static void test_bad_ops(void **state)
{
	struct rep a;
	struct top t;
	struct mp_buf pb, vb;
	struct mp_buf before, after;

	(void)state;
	rep_init(&a, 1);
	t = tins(&a, 10, "[\"t\"]", 0, "x");
	top_free(&t);
	weft__mp_buf_init(&pb, NULL, 0);
	weft__mp_buf_init(&vb, NULL, 0);
	json_mp("[\"t\"]", &pb);
	/* Wrong shape. */
	json_mp("[1,2]", &vb);
	assert_int_equal(mk_raw(&t, WEFT_OP_TEXT, 2, 1, 1, 20, pb.data, pb.len, vb.data, vb.len),
	                 WEFT_EPROTO);
	/* Root path. */
	weft__mp_buf_reset(&vb);
	weft__mp_write_array(&vb, 4);
	weft__mp_write_bin(&vb, "", 0);
	weft__mp_write_uint(&vb, 0);
	weft__mp_write_uint(&vb, 0);
	weft__mp_write_bool(&vb, true);
	assert_int_equal(
	    mk_raw(&t, WEFT_OP_TEXT, 2, 1, 1, 20, (const uint8_t *)"\x90", 1, vb.data, vb.len),
	    WEFT_EPROTO);
	/* Garbage update bytes: decoded, refused by apply, nothing changes. */
	weft__mp_buf_reset(&vb);
	weft__mp_write_array(&vb, 4);
	weft__mp_write_bin(&vb, "\x01\x01\x93garbage", 10);
	weft__mp_write_uint(&vb, 0);
	weft__mp_write_uint(&vb, 0);
	weft__mp_write_bool(&vb, true);
	assert_int_equal(mk_raw(&t, WEFT_OP_TEXT, 2, 1, 1, 20, pb.data, pb.len, vb.data, vb.len),
	                 WEFT_OK);
	weft__mp_buf_init(&before, NULL, 0);
	weft__mp_buf_init(&after, NULL, 0);
	state_of(&a, &before, true);
	assert_int_equal(weft__docset_apply(a.ds, &t.op, NULL, NULL), WEFT_EPROTO);
	state_of(&a, &after, true);
	assert_int_equal(before.len, after.len);
	assert_memory_equal(before.data, after.data, before.len);
	/* On a path with no text yet (fresh instance): also nothing. */
	{
		struct top u;

		json_mp("[\"u\"]", (weft__mp_buf_reset(&pb), &pb));
		assert_int_equal(
		    mk_raw(&u, WEFT_OP_TEXT, 2, 1, 1, 20, pb.data, pb.len, vb.data, vb.len),
		    WEFT_OK);
		assert_int_equal(weft__docset_apply(a.ds, &u.op, NULL, NULL), WEFT_EPROTO);
		weft__mp_buf_reset(&after);
		state_of(&a, &after, true);
		assert_int_equal(before.len, after.len);
		assert_memory_equal(before.data, after.data, before.len);
		top_free(&u);
	}
	top_free(&t);
	weft__mp_buf_free(&before);
	weft__mp_buf_free(&after);
	weft__mp_buf_free(&pb);
	weft__mp_buf_free(&vb);
	rep_free(&a);
}

/* A TEXT op carries a compact update (no agent header: the op's envelope
 * names the writer); ops with the self-contained form of earlier versions
 * still apply, and a compact edit of another writer's text names that
 * writer in its table. */
static void test_compact_update(void **state)
{
	const uint64_t big = 0x0123456789abcdefull;
	struct rep a, b, c;
	struct top t1, t2, old;
	struct weft_textop tv;
	struct weft_text *w;
	struct mp_buf pb, vb, up;

	(void)state;
	rep_init(&a, big);
	rep_init(&b, 2);
	rep_init(&c, 3);
	t1 = tins(&a, 10, "[\"t\"]", 0, "hello");
	assert_int_equal(weft__op_text_parse(t1.op.value, t1.op.value_len, &tv), WEFT_OK);
	/* h (2 bytes), seq 0, two nil refs, "hello" (6): 11 bytes, no header */
	assert_int_equal(tv.update_len, 11);
	assert_true(tv.update[0] != 0x01);
	deliver(&b, &t1);
	assert_json(&b, "{\"t\":\"hello\"}");

	/* the self-contained form, as this development version wrote it */
	weft__mp_buf_init(&pb, NULL, 0);
	weft__mp_buf_init(&vb, NULL, 0);
	weft__mp_buf_init(&up, NULL, 0);
	assert_int_equal(weft__text_new(NULL, 0x77, 1, &w), WEFT_OK);
	assert_int_equal(weft__text_insert(w, 0, "old", 3, &up), WEFT_OK);
	assert_int_equal(up.data[0], 0x01);
	json_mp("[\"u\"]", &pb);
	weft__mp_write_array(&vb, 4);
	weft__mp_write_bin(&vb, up.data, up.len);
	weft__mp_write_uint(&vb, 0);
	weft__mp_write_uint(&vb, 0);
	weft__mp_write_bool(&vb, true);
	assert_int_equal(
	    mk_raw(&old, WEFT_OP_TEXT, 0x77, 1, 1, 20, pb.data, pb.len, vb.data, vb.len), WEFT_OK);
	deliver(&c, &t1);
	deliver(&c, &old);
	assert_json(&c, "{\"t\":\"hello\",\"u\":\"old\"}");
	/* c edits 0x77's text: its update lists agent 0x77 */
	t2 = tins(&c, 30, "[\"u\"]", 2, "!");
	assert_int_equal(weft__op_text_parse(t2.op.value, t2.op.value_len, &tv), WEFT_OK);
	assert_int_equal(tv.update[0], 0x02);
	assert_json(&c, "{\"t\":\"hello\",\"u\":\"ol!d\"}");
	/* on b, the edit waits for the text it edits, then both apply */
	deliver(&b, &t2);
	deliver(&b, &old);
	assert_json(&b, "{\"t\":\"hello\",\"u\":\"ol!d\"}");
	weft__text_free(w);
	weft__mp_buf_free(&pb);
	weft__mp_buf_free(&vb);
	weft__mp_buf_free(&up);
	top_free(&t1);
	top_free(&t2);
	top_free(&old);
	rep_free(&a);
	rep_free(&b);
	rep_free(&c);
}

/* Is weft__text_encode canonical? Two texts that applied the same ops in
 * different orders: compare their encodings. The answer is recorded in
 * DATA-MODEL.md ("Text", canonicity); this test pins it down, so a change
 * in the text module's encoding shows up here. */
static void test_text_encode_canonicity(void **state)
{
	struct weft_text *a, *b, *x, *y;
	struct mp_buf ua, ub, ea, eb;
	char buf[32];
	size_t n;

	(void)state;
	assert_int_equal(weft__text_new(NULL, 1, 1, &a), WEFT_OK);
	assert_int_equal(weft__text_new(NULL, 2, 1, &b), WEFT_OK);
	weft__mp_buf_init(&ua, NULL, 0);
	weft__mp_buf_init(&ub, NULL, 0);
	weft__mp_buf_init(&ea, NULL, 0);
	weft__mp_buf_init(&eb, NULL, 0);
	assert_int_equal(weft__text_insert(a, 0, "aaa", 3, &ua), WEFT_OK);
	assert_int_equal(weft__text_insert(b, 0, "bbb", 3, &ub), WEFT_OK);
	assert_int_equal(weft__text_new(NULL, 9, 1, &x), WEFT_OK);
	assert_int_equal(weft__text_new(NULL, 9, 1, &y), WEFT_OK);
	assert_int_equal(weft__text_apply(x, ua.data, ua.len), WEFT_OK);
	assert_int_equal(weft__text_apply(x, ub.data, ub.len), WEFT_OK);
	assert_int_equal(weft__text_apply(y, ub.data, ub.len), WEFT_OK);
	assert_int_equal(weft__text_apply(y, ua.data, ua.len), WEFT_OK);
	assert_int_equal(weft__text_read(x, buf, sizeof(buf), &n), WEFT_OK);
	assert_int_equal(weft__text_encode(x, 0, &ea), WEFT_OK);
	assert_int_equal(weft__text_encode(y, 0, &eb), WEFT_OK);
	printf("text_encode canonical across apply orders: %s\n",
	       ea.len == eb.len && memcmp(ea.data, eb.data, ea.len) == 0 ? "yes" : "NO");
	/* Currently not: the encoding follows each replica's apply order. */
	assert_false(ea.len == eb.len && memcmp(ea.data, eb.data, ea.len) == 0);
	weft__mp_buf_free(&ua);
	weft__mp_buf_free(&ub);
	weft__mp_buf_free(&ea);
	weft__mp_buf_free(&eb);
	weft__text_free(a);
	weft__text_free(b);
	weft__text_free(x);
	weft__text_free(y);
}

/* P2P join of two replicas' text states equals applying the union. */
static void test_p2p_join(void **state)
{
	struct rep a, b, u;
	struct top base, oa[2], ob[2];
	struct mp_buf sa, sb;
	bool changed;

	(void)state;
	rep_init(&a, 1);
	rep_init(&b, 2);
	rep_init(&u, 3);
	base = tins(&a, 10, "[\"t\"]", 0, "base");
	deliver(&b, &base);
	oa[0] = tins(&a, 20, "[\"t\"]", 4, "A");
	oa[1] = tdel(&a, 21, "[\"t\"]", 0, 1);
	ob[0] = tins(&b, 22, "[\"t\"]", 0, "B");
	ob[1] = other(&b, WEFT_OP_SET, 23, "[\"z\"]", "1");
	deliver(&u, &base);
	for (int i = 0; i < 2; i++) {
		deliver(&u, &oa[i]);
		deliver(&u, &ob[i]);
	}
	weft__mp_buf_init(&sa, NULL, 0);
	weft__mp_buf_init(&sb, NULL, 0);
	state_of(&a, &sa, true);
	state_of(&b, &sb, true);
	assert_int_equal(
	    weft__docset_merge_state(a.ds, "c", 1, "d", 1, sb.data, sb.len, &changed, NULL),
	    WEFT_OK);
	assert_true(changed);
	assert_int_equal(
	    weft__docset_merge_state(b.ds, "c", 1, "d", 1, sa.data, sa.len, &changed, NULL),
	    WEFT_OK);
	{
		char *ju = doc_json(&u);

		assert_json(&a, ju);
		assert_json(&b, ju);
		free(ju);
	}
	/* A repeated import changes nothing. */
	weft__mp_buf_reset(&sb);
	state_of(&b, &sb, true);
	assert_int_equal(
	    weft__docset_merge_state(b.ds, "c", 1, "d", 1, sb.data, sb.len, &changed, NULL),
	    WEFT_OK);
	assert_false(changed);
	weft__mp_buf_free(&sa);
	weft__mp_buf_free(&sb);
	top_free(&base);
	for (int i = 0; i < 2; i++) {
		top_free(&oa[i]);
		top_free(&ob[i]);
	}
	rep_free(&a);
	rep_free(&b);
	rep_free(&u);
}

/* ---- the model test ---- */

static uint64_t rng_next(uint64_t *s)
{
	uint64_t z = (*s += UINT64_C(0x9e3779b97f4a7c15));

	z = (z ^ (z >> 30)) * UINT64_C(0xbf58476d1ce4e5b9);
	z = (z ^ (z >> 27)) * UINT64_C(0x94d049bb133111eb);
	return z ^ (z >> 31);
}

static uint32_t rnd(uint64_t *s, uint32_t n)
{
	return (uint32_t)(rng_next(s) % n);
}

#define MAX_REPS 5
#define MAX_OPS 96

/* Visible length (code points) of the text at ["t"] on r, or 0. */
static size_t text_len_of(struct rep *r)
{
	char *j = doc_json(r);
	const char *p = strstr(j, "\"t\":\"");
	size_t n = 0;

	if (p) {
		for (p += 5; *p && *p != '"'; p++) {
			if (*p == '\\')
				p++; /* never happens: the alphabet has no escapes */
			if (((unsigned char)*p & 0xc0) != 0x80)
				n++;
		}
	}
	free(j);
	return n;
}

static long model_bytes_equal, model_bytes_differ, model_text_shown, model_text_chars;

static void model_round(uint64_t seed, int round)
{
	static const char *alpha[] = {"a", "b", "é", "z", "xy", "€", "q"};
	uint64_t s = seed ^ ((uint64_t)round * UINT64_C(0x2545f4914f6cdd1d));
	int nrep = 3 + (int)rnd(&s, 3);
	int nops = 20 + (int)rnd(&s, 40);
	struct rep r[MAX_REPS];
	struct top ops[MAX_OPS];
	int n = 0;
	char *want;

	for (int i = 0; i < nrep; i++)
		rep_init(&r[i], (uint64_t)i + 1);
	while (n < nops) {
		int who = (int)rnd(&s, (uint32_t)nrep);
		uint32_t k = rnd(&s, 100);
		struct rep *me = &r[who];
		size_t len = text_len_of(me);
		uint64_t hlc = me->hlc + 1 + rnd(&s, 3);

		if (k < 55) {
			if (text_issue(me, &ops[n], hlc, "[\"t\"]", false,
			               rnd(&s, (uint32_t)len + 1), alpha[rnd(&s, 7)], 0) == WEFT_OK)
				n++;
		} else if (k < 80) {
			size_t pos = len ? rnd(&s, (uint32_t)len) : 0;
			size_t cnt =
			    len ? 1 + rnd(&s, (uint32_t)(len - pos < 3 ? len - pos : 3)) : 0;

			if (text_issue(me, &ops[n], hlc, "[\"t\"]", true, pos, NULL, cnt) ==
			    WEFT_OK)
				n++;
		} else if (k < 88) {
			ops[n++] = other(me, WEFT_OP_SET, hlc, "[\"o\"]", "{\"v\":1}");
		} else if (k < 92) {
			ops[n++] = other(me, WEFT_OP_SET, hlc, "[\"t\"]", "5"); /* scalar over */
		} else if (k < 95) {
			ops[n++] = other(me, WEFT_OP_DELETE, hlc, "[\"t\"]", NULL);
		} else {
			/* gossip: deliver a few random ops to a random replica */
			for (int j = 0; j < 4 && n > 0; j++)
				deliver(&r[rnd(&s, (uint32_t)nrep)], &ops[rnd(&s, (uint32_t)n)]);
			continue;
		}
		/* Random partial delivery: shuffled, with duplicates. */
		for (int j = 0, m = (int)rnd(&s, 4); j < m; j++)
			deliver(&r[rnd(&s, (uint32_t)nrep)], &ops[rnd(&s, (uint32_t)n)]);
	}
	/* Final delivery: everything to everyone, shuffled, some twice. */
	for (int i = 0; i < nrep; i++) {
		int perm[MAX_OPS];

		for (int j = 0; j < n; j++)
			perm[j] = j;
		for (int j = n - 1; j > 0; j--) {
			int q = (int)rnd(&s, (uint32_t)j + 1), t = perm[j];

			perm[j] = perm[q];
			perm[q] = t;
		}
		for (int j = 0; j < n; j++) {
			deliver(&r[i], &ops[perm[j]]);
			if (rnd(&s, 8) == 0)
				deliver(&r[i], &ops[perm[rnd(&s, (uint32_t)j + 1)]]);
		}
	}
	want = doc_json(&r[0]);
	if (strstr(want, "\"t\":\"")) {
		model_text_shown++;
		model_text_chars += (long)text_len_of(&r[0]);
	}
	for (int i = 1; i < nrep; i++) {
		char *got = doc_json(&r[i]);

		if (strcmp(want, got) != 0)
			fail_msg("seed %llu round %d: replica %d shows %s, replica 0 %s",
			         (unsigned long long)seed, round, i, got, want);
		free(got);
	}
	/* Byte equality of states: the text encoding is not canonical across
	 * apply orders (see test_text_encode_canonicity), so only counted. */
	{
		struct mp_buf b0, bi;
		bool same = true;

		weft__mp_buf_init(&b0, NULL, 0);
		weft__mp_buf_init(&bi, NULL, 0);
		state_of(&r[0], &b0, false);
		for (int i = 1; i < nrep; i++) {
			weft__mp_buf_reset(&bi);
			state_of(&r[i], &bi, false);
			same = same && bi.len == b0.len && memcmp(bi.data, b0.data, b0.len) == 0;
		}
		if (same)
			model_bytes_equal++;
		else
			model_bytes_differ++;
		/* Round trip and P2P: r[0]'s state loaded elsewhere and joined
		 * into every other replica shows the same JSON. */
		for (int i = 1; i < nrep; i++) {
			bool changed;

			assert_int_equal(weft__docset_merge_state(r[i].ds, "c", 1, "d", 1, b0.data,
			                                          b0.len, &changed, NULL),
			                 WEFT_OK);
			assert_json(&r[i], want);
		}
		{
			struct rep l;

			rep_init(&l, 77);
			assert_int_equal(weft__docset_load(l.ds, "c", 1, "d", 1, b0.data, b0.len),
			                 WEFT_OK);
			assert_json(&l, want);
			rep_free(&l);
		}
		weft__mp_buf_free(&b0);
		weft__mp_buf_free(&bi);
	}
	free(want);
	for (int i = 0; i < n; i++)
		top_free(&ops[i]);
	for (int i = 0; i < nrep; i++)
		rep_free(&r[i]);
}

static void test_model(void **state)
{
	const char *env = getenv("WEFT_TEST_SEED");
	const char *rounds_env = getenv("WEFT_TEST_ROUNDS");
	uint64_t seed = env ? strtoull(env, NULL, 0) : 0x7e47f1e1dULL;
	int rounds = rounds_env ? atoi(rounds_env) : 5000;

	(void)state;
	printf("text model: seed %llu, %d rounds (WEFT_TEST_SEED to replay)\n",
	       (unsigned long long)seed, rounds);
	for (int round = 0; round < rounds; round++) {
		cur_round = round;
		model_round(seed, round);
	}
	cur_round = -1;
	printf("text model: converged states byte-identical in %ld rounds, differing bytes "
	       "(same JSON) in %ld\n",
	       model_bytes_equal, model_bytes_differ);
	printf("text model: a text shows at the end of %ld rounds, %.1f code points on average\n",
	       model_text_shown,
	       model_text_shown ? (double)model_text_chars / model_text_shown : 0.0);
}

/* ---- allocation failures ---- */

/* Applies ops to a fresh docset on fa, loads `st` into another doc, joins
 * it into the first, and writes JSON and state. Returns the first error. */
static int failalloc_scenario(struct failalloc *fa, const struct top *ops, int n,
                              const struct mp_buf *st)
{
	struct weft_docset *ds;
	int rc;

	if ((rc = weft__docset_new(&fa->a, &ds)) != WEFT_OK)
		return rc;
	weft__docset_set_agent(ds, 42, 1);
	for (int i = 0; i < n - 1 && rc == WEFT_OK; i++)
		rc = weft__docset_apply(ds, &ops[i].op, NULL, NULL);
	if (rc == WEFT_OK)
		rc = weft__docset_load(ds, "c", 1, "e", 1, st->data, st->len);
	/* The P2P join of a state with a text into the document with the same
	 * text (equal bases: the missing ops move over). */
	if (rc == WEFT_OK)
		rc = weft__docset_merge_state(ds, "c", 1, "d", 1, st->data, st->len, NULL, NULL);
	if (rc == WEFT_OK)
		rc = weft__docset_apply(ds, &ops[n - 1].op, NULL, NULL);
	if (rc == WEFT_OK) {
		struct weft_doc *d = weft__docset_find(ds, "c", 1, "d", 1);
		struct mp_buf b;

		weft__mp_buf_init(&b, &fa->a, 0);
		rc = weft__doc_write_json(d, &b);
		if (rc == WEFT_OK) {
			weft__doc_encode_full(d, &b);
			rc = b.err;
		}
		weft__mp_buf_free(&b);
	}
	weft__docset_free(ds);
	return rc;
}

static void test_failalloc(void **state)
{
	struct rep a, b;
	struct top ops[5];
	struct mp_buf st;
	struct failalloc fa;
	long total;

	(void)state;
	rep_init(&a, 1);
	rep_init(&b, 2);
	ops[0] = tins(&a, 10, "[\"x\",\"t\"]", 0, "hello");
	deliver(&b, &ops[0]);
	ops[1] = tins(&b, 11, "[\"x\",\"t\"]", 5, "!!");
	ops[2] = tins(&a, 12, "[\"x\",\"t\"]", 0, "é");
	ops[3] = tdel(&a, 13, "[\"x\",\"t\"]", 1, 3);
	ops[4] = other(&a, WEFT_OP_DELETE, 14, "[\"x\",\"t\"]", NULL);
	weft__mp_buf_init(&st, NULL, 0);
	deliver(&a, &ops[1]);
	{
		struct rep c;
		struct top extra;

		/* C holds ops 0-3 and one more edit of its own, which the join
		 * brings over. */
		rep_init(&c, 3);
		for (int i = 0; i < 4; i++)
			deliver(&c, &ops[i]);
		extra = tins(&c, 15, "[\"x\",\"t\"]", 0, "C");
		top_free(&extra);
		state_of(&c, &st, true);
		rep_free(&c);
	}
	failalloc_init(&fa, 0, 0);
	assert_int_equal(failalloc_scenario(&fa, ops, 5, &st), WEFT_OK);
	assert_int_equal(fa.live, 0);
	total = fa.count;
	assert_true(total > 20);
	for (long k = 1; k <= total; k++) {
		for (int sticky = 0; sticky < 2; sticky++) {
			failalloc_init(&fa, k, sticky);
			int rc = failalloc_scenario(&fa, ops, 5, &st);

			if (rc != WEFT_ENOMEM)
				fail_msg("failing allocation %ld of %ld (sticky %d) gave %d", k,
				         total, sticky, rc);
			if (fa.live != 0)
				fail_msg("failing allocation %ld of %ld leaked %ld", k, total,
				         fa.live);
		}
	}
	printf("failalloc: %ld allocation points, each failed alone and sticky\n", total);
	weft__mp_buf_free(&st);
	for (int i = 0; i < 5; i++)
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
	snprintf(dir, sizeof(dir), "/tmp/weft-test-textfield-XXXXXX");
	assert_non_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/r.db", dir);
	assert_int_equal(weft_open(path, NULL, &db), WEFT_OK);
	assert_int_equal(weft_put_json(db, "c", "d", "{\"t\":\"old\",\"k\":1}", (size_t)-1),
	                 WEFT_OK);
	assert_int_equal(weft_text_insert(db, "c", "d", "t", 0, "héllo"), WEFT_OK);
	assert_int_equal(weft_text_insert(db, "c", "d", "t", 5, " world"), WEFT_OK);
	assert_int_equal(weft_text_delete(db, "c", "d", "t", 0, 2), WEFT_OK);
	assert_int_equal(weft_text_insert(db, "c", "d", "t", 99, "x"), WEFT_EINVAL);
	assert_int_equal(weft_text_delete(db, "c", "d", "t", 5, 99), WEFT_EINVAL);
	assert_int_equal(weft_text_insert(db, "c", "d", "t", 0, "\xc3"), WEFT_EINVAL);
	assert_int_equal(weft_text_insert(db, "c", "d", "t", 0, NULL), WEFT_EINVAL);
	assert_int_equal(weft_text_insert(db, "c", "d", "", 0, "x"), WEFT_EINVAL);
	assert_int_equal(weft_get_json(db, "c", "d", &json, NULL), WEFT_OK);
	assert_string_equal(json, "{\"k\":1,\"t\":\"llo world\"}");
	weft_free(json);
	assert_int_equal(weft_close(db), WEFT_OK);
	/* Reopened (a new incarnation, a new text agent): same text, and
	 * editing goes on. */
	assert_int_equal(weft_open(path, NULL, &db), WEFT_OK);
	assert_int_equal(weft_text_insert(db, "c", "d", "t", 0, "he"), WEFT_OK);
	assert_int_equal(weft_get_json(db, "c", "d", &json, NULL), WEFT_OK);
	assert_string_equal(json, "{\"k\":1,\"t\":\"hello world\"}");
	weft_free(json);
	assert_int_equal(weft_close(db), WEFT_OK);
	unlink(path);
	{
		char p2[128];

		snprintf(p2, sizeof(p2), "%s-lock", path);
		unlink(p2);
	}
	rmdir(dir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_insert_delete_visible),
	    cmocka_unit_test(test_concurrent_same_spot),
	    cmocka_unit_test(test_claim_over_scalar),
	    cmocka_unit_test(test_reset),
	    cmocka_unit_test(test_save_load),
	    cmocka_unit_test(test_bad_ops),
	    cmocka_unit_test(test_compact_update),
	    cmocka_unit_test(test_text_encode_canonicity),
	    cmocka_unit_test(test_p2p_join),
	    cmocka_unit_test(test_model),
	    cmocka_unit_test(test_failalloc),
	    cmocka_unit_test(test_public_api),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
