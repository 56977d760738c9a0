/*
 * test_doc.c - the merge rules of docs/DATA-MODEL.md, one test per rule,
 * each checked in every delivery order, plus a model test: random op
 * histories delivered shuffled and duplicated to three replicas must give
 * byte-identical states, and the visible JSON must equal a plain reference
 * model (the ops applied one after another in stamp order to a JSON tree).
 * Set WEFT_TEST_SEED to replay a seed; WEFT_TEST_ROUNDS to run longer.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include <jansson.h>

#include "weft/weft.h"
#include "core/doc.h"
#include "core/op.h"
#include "client/json_in.h"
#include "failalloc.h"

/* An op built from JSON text: path as a JSON array, value as JSON. */
struct top {
	uint8_t *raw;
	size_t len;
	struct weft_op op;
	uint64_t hlc, replica;
	int kind;
	json_t *path;  /* reference-model copy */
	json_t *value; /* reference-model copy, NULL for delete */
};

static uint64_t next_seq = 1;

static struct top mk(int kind, uint64_t replica, uint64_t hlc, const char *path_json,
                     const char *value_json)
{
	struct top t;
	struct mp_buf pb, vb, eb;
	struct weft_op op;
	struct mp_reader r;
	char err[128];

	memset(&t, 0, sizeof(t));
	weft__mp_buf_init(&pb, NULL, 0);
	weft__mp_buf_init(&vb, NULL, 0);
	weft__mp_buf_init(&eb, NULL, 0);
	assert_int_equal(weft__json_to_mp(path_json, strlen(path_json), 40, &pb, err, sizeof(err)),
	                 WEFT_OK);
	if (value_json)
		assert_int_equal(
		    weft__json_to_mp(value_json, strlen(value_json), 40, &vb, err, sizeof(err)),
		    WEFT_OK);
	else
		weft__mp_write_nil(&vb);
	memset(&op, 0, sizeof(op));
	op.replica = replica;
	op.incarnation = 1;
	op.seq = next_seq++;
	op.hlc = hlc;
	op.kind = (enum weft_op_kind)kind;
	op.coll = "c";
	op.coll_len = 1;
	op.id = "d";
	op.id_len = 1;
	op.path = pb.data;
	op.path_len = pb.len;
	op.value = vb.data;
	op.value_len = vb.len;
	weft__op_encode(&eb, &op);
	assert_int_equal(eb.err, 0);
	t.raw = weft__mp_buf_take(&eb, &t.len);
	weft__mp_reader_init(&r, t.raw, t.len);
	assert_int_equal(weft__op_decode(&r, &t.op), WEFT_OK);
	t.hlc = hlc;
	t.replica = replica;
	t.kind = kind;
	t.path = json_loads(path_json, 0, NULL);
	t.value = value_json ? json_loads(value_json, JSON_DECODE_ANY, NULL) : NULL;
	weft__mp_buf_free(&pb);
	weft__mp_buf_free(&vb);
	return t;
}

static void top_free(struct top *t)
{
	free(t->raw);
	json_decref(t->path);
	json_decref(t->value);
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

/* Applies ops[] in the order given by idx[] to a fresh docset. */
static char *apply_order(struct top *ops, const int *idx, int n)
{
	struct weft_docset *ds;
	char *v;

	assert_int_equal(weft__docset_new(NULL, &ds), WEFT_OK);
	for (int i = 0; i < n; i++)
		assert_int_equal(weft__docset_apply(ds, &ops[idx[i]].op, NULL, NULL), WEFT_OK);
	v = view(ds);
	weft__docset_free(ds);
	return v;
}

/* Every permutation of ops (n <= 5) gives `expect`; applying everything
 * twice does too (idempotence). */
static void check_all_orders(struct top *ops, int n, const char *expect)
{
	int idx[10], c[5] = {0}, i = 1;
	char *v;

	for (int k = 0; k < n; k++)
		idx[k] = k;
	v = apply_order(ops, idx, n);
	assert_string_equal(v, expect);
	free(v);
	/* Heap's algorithm over all permutations. */
	while (i < n) {
		if (c[i] < i) {
			int j = (i % 2 == 0) ? 0 : c[i], tmp = idx[j];

			idx[j] = idx[i];
			idx[i] = tmp;
			v = apply_order(ops, idx, n);
			if (strcmp(v, expect) != 0)
				fail_msg("order gave %s, expected %s", v, expect);
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
	v = apply_order(ops, idx, 2 * n);
	assert_string_equal(v, expect);
	free(v);
	for (int k = 0; k < n; k++)
		top_free(&ops[k]);
}

#define R1 1
#define R2 2

static void test_merge_keys(void **state)
{
	struct top ops[] = {
	    mk(WEFT_OP_SET, R1, 10, "[]", "{\"a\":1}"),
	    mk(WEFT_OP_SET, R2, 11, "[]", "{\"b\":2}"),
	};

	(void)state;
	check_all_orders(ops, 2, "{\"a\":1,\"b\":2}");
}

static void test_nested_merge(void **state)
{
	struct top ops[] = {
	    mk(WEFT_OP_SET, R1, 10, "[]", "{\"a\":{\"b\":1}}"),
	    mk(WEFT_OP_SET, R2, 10, "[]", "{\"a\":{\"c\":2}}"),
	};

	(void)state;
	check_all_orders(ops, 2, "{\"a\":{\"b\":1,\"c\":2}}");
}

static void test_same_field_lww_and_tie(void **state)
{
	struct top a[] = {
	    mk(WEFT_OP_SET, R1, 10, "[]", "{\"v\":\"r1\"}"),
	    mk(WEFT_OP_SET, R2, 9, "[]", "{\"v\":\"r2\"}"),
	};
	struct top tie[] = {
	    mk(WEFT_OP_SET, R1, 10, "[]", "{\"v\":\"r1\"}"),
	    mk(WEFT_OP_SET, R2, 10, "[]", "{\"v\":\"r2\"}"),
	};

	(void)state;
	check_all_orders(a, 2, "{\"v\":\"r1\"}");
	/* Same HLC: the higher replica id wins. */
	check_all_orders(tie, 2, "{\"v\":\"r2\"}");
}

/* A write to `a` against a concurrent write to `a.b`: the later stamp
 * decides whether a is a leaf or an object. */
static void test_parent_vs_child(void **state)
{
	struct top leaf_later[] = {
	    mk(WEFT_OP_SET, R1, 20, "[]", "{\"a\":5}"),
	    mk(WEFT_OP_SET, R2, 10, "[]", "{\"a\":{\"b\":1}}"),
	};
	struct top child_later[] = {
	    mk(WEFT_OP_SET, R1, 10, "[]", "{\"a\":5}"),
	    mk(WEFT_OP_SET, R2, 20, "[]", "{\"a\":{\"b\":1}}"),
	};
	/* a.b written at 10, a.c at 5, a = 7 at 7: the leaf clears a.c but
	 * loses to a.b, so a is {b}. */
	struct top mixed[] = {
	    mk(WEFT_OP_SET, R1, 7, "[]", "{\"a\":7}"),
	    mk(WEFT_OP_SET, R2, 10, "[]", "{\"a\":{\"b\":1}}"),
	    mk(WEFT_OP_SET, R2, 5, "[]", "{\"a\":{\"c\":1}}"),
	};
	/* Once a child made a an object, deleting the child leaves {} and the
	 * older scalar does not come back. */
	struct top no_resurrect[] = {
	    mk(WEFT_OP_SET, R1, 7, "[]", "{\"a\":7}"),
	    mk(WEFT_OP_SET, R2, 10, "[]", "{\"a\":{\"b\":1}}"),
	    mk(WEFT_OP_DELETE, R1, 12, "[\"a\",\"b\"]", NULL),
	};

	(void)state;
	check_all_orders(leaf_later, 2, "{\"a\":5}");
	check_all_orders(child_later, 2, "{\"a\":{\"b\":1}}");
	check_all_orders(mixed, 3, "{\"a\":{\"b\":1}}");
	check_all_orders(no_resurrect, 3, "{\"a\":{}}");
}

static void test_delete_vs_update(void **state)
{
	struct top del_later[] = {
	    mk(WEFT_OP_SET, R1, 5, "[]", "{\"x\":1}"),
	    mk(WEFT_OP_SET, R2, 10, "[]", "{\"y\":2}"),
	    mk(WEFT_OP_DELETE, R1, 20, "[]", NULL),
	};
	struct top upd_later[] = {
	    mk(WEFT_OP_SET, R1, 5, "[]", "{\"x\":1}"),
	    mk(WEFT_OP_DELETE, R1, 10, "[]", NULL),
	    mk(WEFT_OP_SET, R2, 20, "[]", "{\"y\":2}"),
	};

	(void)state;
	check_all_orders(del_later, 3, "ABSENT");
	/* The update after the delete revives the document with only the
	 * fields written after the delete. */
	check_all_orders(upd_later, 3, "{\"y\":2}");
}

static void test_replace_and_delete_path(void **state)
{
	struct top rep[] = {
	    mk(WEFT_OP_SET, R1, 5, "[]", "{\"a\":{\"b\":1,\"c\":2},\"k\":0}"),
	    mk(WEFT_OP_REPLACE, R1, 10, "[\"a\"]", "{\"d\":3}"),
	    mk(WEFT_OP_SET, R2, 12, "[]", "{\"a\":{\"e\":4}}"),
	    mk(WEFT_OP_SET, R2, 8, "[]", "{\"a\":{\"f\":5}}"),
	};
	struct top del[] = {
	    mk(WEFT_OP_SET, R1, 5, "[]", "{\"a\":{\"b\":1,\"c\":2}}"),
	    mk(WEFT_OP_DELETE, R2, 10, "[\"a\",\"b\"]", NULL),
	    mk(WEFT_OP_SET, R1, 11, "[\"a\",\"c\"]", "[1,2]"),
	};
	struct top root_replace[] = {
	    mk(WEFT_OP_SET, R1, 5, "[]", "{\"a\":1,\"b\":2}"),
	    mk(WEFT_OP_REPLACE, R2, 10, "[]", "{\"z\":true}"),
	};

	(void)state;
	check_all_orders(rep, 4, "{\"a\":{\"d\":3,\"e\":4},\"k\":0}");
	check_all_orders(del, 3, "{\"a\":{\"c\":[1,2]}}");
	check_all_orders(root_replace, 2, "{\"z\":true}");
}

static void test_change_kinds_and_state_roundtrip(void **state)
{
	struct weft_docset *ds, *ds2;
	struct top a = mk(WEFT_OP_SET, R1, 5, "[]", "{\"a\":1}");
	struct top b = mk(WEFT_OP_SET, R1, 6, "[]", "{\"a\":2}");
	struct top old = mk(WEFT_OP_SET, R2, 1, "[]", "{\"a\":0}");
	struct top d = mk(WEFT_OP_DELETE, R1, 7, "[]", NULL);
	enum weft_doc_change ch;
	struct weft_doc *doc;
	struct mp_buf enc;
	char *v1, *v2;

	(void)state;
	assert_int_equal(weft__docset_new(NULL, &ds), WEFT_OK);
	assert_int_equal(weft__docset_apply(ds, &a.op, &ch, &doc), WEFT_OK);
	assert_int_equal(ch, WEFT_DOC_INSERTED);
	assert_int_equal(weft__docset_apply(ds, &b.op, &ch, &doc), WEFT_OK);
	assert_int_equal(ch, WEFT_DOC_UPDATED);
	assert_int_equal(weft__docset_apply(ds, &b.op, &ch, &doc), WEFT_OK);
	assert_int_equal(ch, WEFT_DOC_NONE); /* duplicate */
	assert_int_equal(weft__docset_apply(ds, &old.op, &ch, &doc), WEFT_OK);
	assert_int_equal(ch, WEFT_DOC_NONE); /* loses LWW */

	/* State encoding round-trips, tombstones included. */
	weft__mp_buf_init(&enc, NULL, 0);
	weft__doc_encode(doc, &enc);
	assert_int_equal(weft__docset_new(NULL, &ds2), WEFT_OK);
	assert_int_equal(weft__docset_load(ds2, "c", 1, "d", 1, enc.data, enc.len), WEFT_OK);
	v1 = view(ds);
	v2 = view(ds2);
	assert_string_equal(v1, v2);
	free(v1);
	free(v2);
	/* A corrupt state is refused, not crashed on. */
	for (size_t cut = 0; cut < enc.len; cut++)
		assert_int_not_equal(weft__docset_load(ds2, "c", 1, "x", 1, enc.data, cut),
		                     WEFT_OK);

	assert_int_equal(weft__docset_apply(ds, &d.op, &ch, &doc), WEFT_OK);
	assert_int_equal(ch, WEFT_DOC_DELETED);
	assert_int_equal(weft__docset_apply(ds2, &d.op, &ch, &doc), WEFT_OK);
	assert_int_equal(ch, WEFT_DOC_DELETED);
	weft__mp_buf_free(&enc);
	weft__docset_free(ds);
	weft__docset_free(ds2);
	top_free(&a);
	top_free(&b);
	top_free(&old);
	top_free(&d);
}

/* Fail each allocation of applying a history and loading its state, in
 * turn: every failure is WEFT_ENOMEM, nothing leaks, and re-applying the
 * same ops afterwards (apply is idempotent) gives the full result. */
static void test_allocation_failures(void **state)
{
	struct top ops[] = {
	    mk(WEFT_OP_SET, R1, 5, "[]", "{\"a\":{\"b\":1,\"c\":[1,2]},\"k\":\"v\"}"),
	    mk(WEFT_OP_REPLACE, R2, 6, "[\"a\"]", "{\"d\":{\"e\":null}}"),
	    mk(WEFT_OP_DELETE, R1, 7, "[\"k\"]", NULL),
	    mk(WEFT_OP_SET, R2, 8, "[\"x\",\"y\"]", "true"),
	};
	const int n = (int)(sizeof(ops) / sizeof(ops[0]));
	int sites = 0;

	(void)state;
	for (long fail_at = 1;; fail_at++) {
		struct failalloc fa;
		struct weft_docset *ds = NULL, *back = NULL;
		struct mp_buf enc;
		struct weft_doc *d;
		int rc = WEFT_OK;
		char *v;

		failalloc_init(&fa, fail_at, 0);
		rc = weft__docset_new(&fa.a, &ds);
		for (int i = 0; i < n && rc == WEFT_OK; i++)
			rc = weft__docset_apply(ds, &ops[i].op, NULL, NULL);
		if (rc == WEFT_OK) {
			weft__mp_buf_init(&enc, NULL, 0);
			d = weft__docset_find(ds, "c", 1, "d", 1);
			weft__doc_encode(d, &enc);
			rc = weft__docset_new(&fa.a, &back);
			if (rc == WEFT_OK)
				rc = weft__docset_load(back, "c", 1, "d", 1, enc.data, enc.len);
			weft__mp_buf_free(&enc);
		}
		if (rc != WEFT_OK) {
			assert_int_equal(rc, WEFT_ENOMEM);
			if (ds) {
				/* Idempotent: applying everything again completes it. */
				fa.fail_at = 0;
				for (int i = 0; i < n; i++)
					assert_int_equal(
					    weft__docset_apply(ds, &ops[i].op, NULL, NULL),
					    WEFT_OK);
				v = view(ds);
				assert_string_equal(
				    v, "{\"a\":{\"d\":{\"e\":null}},\"x\":{\"y\":true}}");
				free(v);
			}
		}
		weft__docset_free(back);
		weft__docset_free(ds);
		assert_int_equal(fa.live, 0);
		if (fa.count < fail_at)
			break;
		sites++;
	}
	printf("allocation failure: %d allocation sites exercised\n", sites);
	assert_true(sites > 10);
	for (int i = 0; i < n; i++)
		top_free(&ops[i]);
}

/* ---- the model test ---- */

static uint64_t rng;

static uint64_t rnd(void)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return rng;
}

static const char *keys[] = {"a", "b", "c"};

static void rand_value(char *buf, size_t len, int depth)
{
	switch (rnd() % (depth > 1 ? 3 : 5)) {
	case 0:
		snprintf(buf, len, "%d", (int)(rnd() % 100));
		break;
	case 1:
		snprintf(buf, len, "\"s%d\"", (int)(rnd() % 10));
		break;
	case 2:
		snprintf(buf, len, "[%d,%d]", (int)(rnd() % 10), (int)(rnd() % 10));
		break;
	default: {
		char a[256], b[256];

		rand_value(a, sizeof(a), depth + 1);
		rand_value(b, sizeof(b), depth + 1);
		if (rnd() % 4 == 0) {
			snprintf(buf, len, "{}");
		} else {
			int k1 = (int)(rnd() % 3), k2 = (k1 + 1 + (int)(rnd() % 2)) % 3;

			int w =
			    snprintf(buf, len, "{\"%s\":%s,\"%s\":%s}", keys[k1], a, keys[k2], b);

			assert_true(w > 0 && (size_t)w < len);
		}
	}
	}
}

static void rand_path(char *buf, size_t len, int min)
{
	int n = min + (int)(rnd() % (unsigned)(3 - min));

	if (n == 0)
		snprintf(buf, len, "[]");
	else if (n == 1)
		snprintf(buf, len, "[\"%s\"]", keys[rnd() % 3]);
	else
		snprintf(buf, len, "[\"%s\",\"%s\"]", keys[rnd() % 3], keys[rnd() % 3]);
}

/* Reference model: apply to a plain JSON tree, in stamp order. */
static void ref_merge(json_t *dst, const char *k, json_t *v)
{
	json_t *cur = json_object_get(dst, k);

	if (json_is_object(v)) {
		const char *kk;
		json_t *vv;

		if (!json_is_object(cur)) {
			cur = json_object();
			json_object_set_new(dst, k, cur);
		}
		json_object_foreach(v, kk, vv) ref_merge(cur, kk, vv);
	} else {
		json_object_set_new(dst, k, json_deep_copy(v));
	}
}

static void ref_apply(json_t **doc, const struct top *t)
{
	size_t n = json_array_size(t->path);
	json_t *node;

	if (t->kind == WEFT_OP_DELETE && n == 0) {
		json_decref(*doc);
		*doc = NULL;
		return;
	}
	if (t->kind == WEFT_OP_DELETE) {
		node = *doc;
		for (size_t i = 0; node && i + 1 < n; i++) {
			node = json_object_get(node, json_string_value(json_array_get(t->path, i)));
			if (!json_is_object(node))
				node = NULL;
		}
		if (json_is_object(node))
			json_object_del(node, json_string_value(json_array_get(t->path, n - 1)));
		return;
	}
	if (!*doc)
		*doc = json_object();
	if (n == 0) {
		if (t->kind == WEFT_OP_REPLACE)
			json_object_clear(*doc);
		const char *kk;
		json_t *vv;

		json_object_foreach(t->value, kk, vv) ref_merge(*doc, kk, vv);
		return;
	}
	node = *doc;
	for (size_t i = 0; i + 1 < n; i++) {
		const char *k = json_string_value(json_array_get(t->path, i));
		json_t *next = json_object_get(node, k);

		if (!json_is_object(next)) {
			next = json_object();
			json_object_set_new(node, k, next);
		}
		node = next;
	}
	{
		const char *last = json_string_value(json_array_get(t->path, n - 1));

		if (t->kind == WEFT_OP_REPLACE)
			json_object_del(node, last);
		ref_merge(node, last, t->value);
	}
}

static int stamp_order(const void *pa, const void *pb)
{
	const struct top *a = pa, *b = pb;

	if (a->hlc != b->hlc)
		return a->hlc < b->hlc ? -1 : 1;
	return a->replica < b->replica ? -1 : a->replica > b->replica;
}

static void test_model_random_histories(void **state)
{
	const char *env = getenv("WEFT_TEST_SEED");
	const char *rounds_env = getenv("WEFT_TEST_ROUNDS");
	uint64_t seed = env ? strtoull(env, NULL, 0) : 0x5eed1234ULL;
	int rounds = rounds_env ? atoi(rounds_env) : 10000;

	(void)state;
	printf("test_model_random_histories: seed %llu, %d rounds (WEFT_TEST_SEED to replay)\n",
	       (unsigned long long)seed, rounds);
	for (int round = 0; round < rounds; round++) {
		struct top ops[12];
		int n = 1 + (int)((rng = seed + (uint64_t)round * 7919 + 1, rnd()) % 12);
		struct weft_docset *reps[3];
		struct mp_buf enc[3];
		char *views[3], *expect;
		json_t *ref = NULL;

		for (int i = 0; i < n; i++) {
			char path[64], val[512];
			int kind = 1 + (int)(rnd() % 3);
			uint64_t r = 1 + rnd() % 3, h = 1 + rnd() % 6; /* many ties */

			if (kind == WEFT_OP_DELETE) {
				rand_path(path, sizeof(path), 0);
				ops[i] = mk(kind, r, h, path, NULL);
			} else {
				rand_path(path, sizeof(path), 0);
				rand_value(val, sizeof(val), 0);
				if (strcmp(path, "[]") == 0 && val[0] != '{')
					snprintf(val, sizeof(val), "{\"a\":1}");
				ops[i] = mk(kind, r, h, path, val);
			}
		}
		/* Two ops of one replica never share an HLC (ties across
		 * replicas are common and intended). */
		for (int i = 0; i < n; i++) {
			for (int j = 0; j < i; j++) {
				if (ops[i].replica == ops[j].replica && ops[i].hlc == ops[j].hlc) {
					ops[i].hlc++;
					ops[i].op.hlc = ops[i].hlc;
					j = -1; /* recheck against all earlier ops */
				}
			}
		}

		for (int k = 0; k < 3; k++) {
			int order[40], m = 0;

			assert_int_equal(weft__docset_new(NULL, &reps[k]), WEFT_OK);
			for (int i = 0; i < n; i++) {
				order[m++] = i;
				if (rnd() % 4 == 0)
					order[m++] = i; /* duplicate delivery */
			}
			for (int i = m - 1; i > 0; i--) {
				int j = (int)(rnd() % (uint64_t)(i + 1)), t = order[i];

				order[i] = order[j];
				order[j] = t;
			}
			for (int i = 0; i < m; i++)
				assert_int_equal(
				    weft__docset_apply(reps[k], &ops[order[i]].op, NULL, NULL),
				    WEFT_OK);
			views[k] = view(reps[k]);
			weft__mp_buf_init(&enc[k], NULL, 0);
			{
				struct weft_doc *d = weft__docset_find(reps[k], "c", 1, "d", 1);

				if (d)
					weft__doc_encode(d, &enc[k]);
			}
			/* Save/load never changes which value wins: a docset
			 * loaded from the saved state shows the same JSON and
			 * saves the same bytes. */
			if (enc[k].len) {
				struct weft_docset *back;
				struct weft_doc *bd;
				struct mp_buf again;
				char *bv;

				assert_int_equal(weft__docset_new(NULL, &back), WEFT_OK);
				assert_int_equal(weft__docset_load(back, "c", 1, "d", 1,
				                                   enc[k].data, enc[k].len),
				                 WEFT_OK);
				bv = view(back);
				assert_string_equal(bv, views[k]);
				bd = weft__docset_find(back, "c", 1, "d", 1);
				weft__mp_buf_init(&again, NULL, 0);
				weft__doc_encode(bd, &again);
				assert_int_equal(again.len, enc[k].len);
				assert_memory_equal(again.data, enc[k].data, enc[k].len);
				weft__mp_buf_free(&again);
				free(bv);
				weft__docset_free(back);
			}
		}
		qsort(ops, (size_t)n, sizeof(ops[0]), stamp_order);
		for (int i = 0; i < n; i++)
			ref_apply(&ref, &ops[i]);
		expect = ref ? json_dumps(ref, JSON_COMPACT | JSON_SORT_KEYS) : strdup("ABSENT");
		for (int k = 0; k < 3; k++) {
			if (strcmp(views[k], expect) != 0 || enc[k].len != enc[0].len ||
			    memcmp(enc[k].data, enc[0].data, enc[0].len) != 0) {
				fprintf(stderr,
				        "seed %llu round %d: replica %d shows %s, reference %s\n",
				        (unsigned long long)seed, round, k, views[k], expect);
				for (int i = 0; i < n; i++) {
					char *p = json_dumps(ops[i].path, JSON_COMPACT);
					char *v = ops[i].value
					              ? json_dumps(ops[i].value,
					                           JSON_COMPACT | JSON_ENCODE_ANY)
					              : strdup("-");

					fprintf(stderr,
					        "  op kind %d hlc %llu r %llu path %s value %s\n",
					        ops[i].kind, (unsigned long long)ops[i].hlc,
					        (unsigned long long)ops[i].replica, p, v);
					free(p);
					free(v);
				}
				fail();
			}
		}
		for (int k = 0; k < 3; k++) {
			free(views[k]);
			weft__mp_buf_free(&enc[k]);
			weft__docset_free(reps[k]);
		}
		free(expect);
		json_decref(ref);
		for (int i = 0; i < n; i++)
			top_free(&ops[i]);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_merge_keys),
	    cmocka_unit_test(test_nested_merge),
	    cmocka_unit_test(test_same_field_lww_and_tie),
	    cmocka_unit_test(test_parent_vs_child),
	    cmocka_unit_test(test_delete_vs_update),
	    cmocka_unit_test(test_replace_and_delete_path),
	    cmocka_unit_test(test_change_kinds_and_state_roundtrip),
	    cmocka_unit_test(test_allocation_failures),
	    cmocka_unit_test(test_model_random_histories),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
