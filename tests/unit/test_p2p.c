/*
 * test_p2p.c - peer-to-peer sync with version vectors (docs/DATA-MODEL.md,
 * "Peer-to-peer sync"): the join of states is idempotent, commutative and
 * associative and equals applying the union of the ops; a model test where
 * 3-5 simulated replicas issue random ops from their own state (LWW
 * writes, deletes, counters, sets over several documents) and sync in
 * random pairs by version vector, then all pairs: every replica ends
 * byte-identical to one docset that applied every op, a sync with nothing
 * new carries nothing, and an import leaves the importer's vector covering
 * the exporter's; allocation failures over the join; version vector
 * encoding; and the public API on real files (weft_version_vector,
 * weft_export, weft_import), corrupted change sets included.
 * Set WEFT_TEST_SEED to replay a seed; WEFT_TEST_ROUNDS to run longer.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>

#include "weft/weft.h"
#include "core/doc.h"
#include "core/op.h"
#include "core/vv.h"
#include "client/json_in.h"
#include "store/sqlite_store.h"
#include "failalloc.h"

/* ---- ops issued by simulated replicas ---- */

static uint64_t rng;

static uint64_t rnd(void)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return rng;
}

struct top {
	uint8_t *raw; /* the encoded op; op points into it */
	size_t len;
	struct weft_op op;
};

static void json_mp(const char *json, struct mp_buf *b)
{
	char err[128];

	assert_int_equal(weft__json_to_mp(json, strlen(json), 40, b, err, sizeof(err)), WEFT_OK);
}

/* A simulated replica: its own docset, identity and clock. */
struct rep {
	struct weft_docset *ds;
	uint64_t replica;
	uint32_t inc;
	uint64_t seq;
	uint64_t hlc;
};

static void rep_init(struct rep *r, uint64_t replica, const struct weft_alloc *a)
{
	memset(r, 0, sizeof(*r));
	assert_int_equal(weft__docset_new(a, &r->ds), WEFT_OK);
	r->replica = replica;
	r->inc = 1;
}

static const char *colls[] = {"c", "k"};
static const char *ids[] = {"d0", "d1", "d2"};

/* Issues an op of `kind` on document (coll, id) from r's own state at the
 * next HLC, and applies it to r. arg: JSON value (SET/REPLACE) or element
 * (SADD/SREM); delta for INCR. */
static struct top issue(struct rep *r, const char *coll, const char *id, int kind,
                        const char *path_json, const char *arg, int64_t delta)
{
	struct mp_buf pb, vb, eb, ob;
	struct weft_op op;
	struct mp_reader rd;
	struct top t;
	size_t cl = strlen(coll), il = strlen(id);

	weft__mp_buf_init(&pb, NULL, 0);
	weft__mp_buf_init(&vb, NULL, 0);
	weft__mp_buf_init(&eb, NULL, 0);
	weft__mp_buf_init(&ob, NULL, 0);
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
		assert_int_equal(weft__docset_incr_value(r->ds, coll, cl, id, il, pb.data, pb.len,
		                                         r->replica, r->inc, delta, &vb),
		                 WEFT_OK);
		break;
	case WEFT_OP_SADD:
		assert_int_equal(weft__docset_sadd_value(r->ds, coll, cl, id, il, pb.data, pb.len,
		                                         r->replica, r->inc, eb.data, eb.len, &vb),
		                 WEFT_OK);
		break;
	default:
		assert_int_equal(weft__docset_srem_value(r->ds, coll, cl, id, il, pb.data, pb.len,
		                                         eb.data, eb.len, &vb),
		                 WEFT_OK);
	}
	r->hlc += 1 + rnd() % 2;
	memset(&op, 0, sizeof(op));
	op.replica = r->replica;
	op.incarnation = r->inc;
	op.seq = ++r->seq;
	op.hlc = r->hlc;
	op.kind = (enum weft_op_kind)kind;
	op.coll = coll;
	op.coll_len = cl;
	op.id = id;
	op.id_len = il;
	op.path = pb.data;
	op.path_len = pb.len;
	op.value = vb.data;
	op.value_len = vb.len;
	weft__op_encode(&ob, &op);
	assert_int_equal(ob.err, 0);
	t.raw = weft__mp_buf_take(&ob, &t.len);
	weft__mp_reader_init(&rd, t.raw, t.len);
	assert_int_equal(weft__op_decode(&rd, &t.op), WEFT_OK);
	assert_int_equal(weft__docset_apply(r->ds, &t.op, NULL, NULL), WEFT_OK);
	weft__mp_buf_free(&pb);
	weft__mp_buf_free(&vb);
	weft__mp_buf_free(&eb);
	return t;
}

static const char *paths[] = {"[\"x\"]", "[\"o\",\"y\"]"};
static const char *del_paths[] = {"[]", "[\"x\"]", "[\"o\"]", "[\"o\",\"y\"]"};
static const char *elems[] = {"\"a\"", "\"b\"", "1", "-300", "true", "null"};
static const char *vals[] = {"5", "\"s\"", "[1,2]", "{\"k\":1}", "{\"x\":{\"z\":true}}", "null"};

/* One random op of any kind on a random document of r. */
static struct top random_op(struct rep *r)
{
	const char *coll = colls[rnd() % 2], *id = ids[rnd() % 3];
	uint64_t pick = rnd() % 12;
	const char *path = paths[rnd() % 2];

	if (pick < 2)
		return issue(r, coll, id, WEFT_OP_DELETE, del_paths[rnd() % 4], NULL, 0);
	if (pick < 4)
		return issue(r, coll, id, WEFT_OP_SET, path, vals[rnd() % 6], 0);
	if (pick < 5)
		return issue(r, coll, id, WEFT_OP_REPLACE, rnd() % 3 ? path : "[]",
		             rnd() % 2 ? "{\"x\":7}" : "{\"o\":{}}", 0);
	if (pick < 8) {
		int64_t delta = (int64_t)(rnd() % 11) - 5;

		if (rnd() % 16 == 0)
			delta = rnd() % 2 ? INT64_MAX / 4 : INT64_MIN / 4;
		return issue(r, coll, id, WEFT_OP_INCR, path, NULL, delta);
	}
	return issue(r, coll, id, rnd() % 3 ? WEFT_OP_SADD : WEFT_OP_SREM, path, elems[rnd() % 6],
	             0);
}

/* ---- states ---- */

/* Every document's full state, in (collection, id) order, into one
 * buffer: equal buffers mean byte-identical docsets. */
static void docset_bytes(struct weft_docset *ds, struct mp_buf *out)
{
	struct weft_doc **list;
	size_t n;

	weft__mp_buf_init(out, NULL, 0);
	assert_int_equal(weft__docset_list(ds, &list, &n), WEFT_OK);
	for (size_t i = 0; i < n; i++) {
		const char *c, *id;
		size_t cl, il;

		weft__doc_key(list[i], &c, &cl, &id, &il);
		weft__mp_write_str(out, c, cl);
		weft__mp_write_str(out, id, il);
		weft__doc_encode_full(list[i], out);
	}
	weft__docset_free_list(ds, list);
	assert_int_equal(out->err, 0);
}

static void assert_same_docsets(struct weft_docset *a, struct weft_docset *b, const char *what,
                                uint64_t seed, int round)
{
	struct mp_buf x, y;

	docset_bytes(a, &x);
	docset_bytes(b, &y);
	if (x.len != y.len || (x.len && memcmp(x.data, y.data, x.len) != 0))
		fail_msg("%s: seed %llu round %d: states differ (%zu vs %zu bytes)", what,
		         (unsigned long long)seed, round, x.len, y.len);
	weft__mp_buf_free(&x);
	weft__mp_buf_free(&y);
}

/* The full state of one document (empty buffer if absent). */
static void doc_state(struct weft_docset *ds, const char *coll, const char *id, struct mp_buf *out)
{
	struct weft_doc *d = weft__docset_find(ds, coll, strlen(coll), id, strlen(id));

	weft__mp_buf_init(out, NULL, 0);
	if (d)
		weft__doc_encode_full(d, out);
	assert_int_equal(out->err, 0);
}

/*
 * Peer-to-peer sync from `from` to `to` through the core, as weft_export
 * and weft_import do: every document of `from` whose vector exceeds `to`'s
 * replica vector is staged into `to`, then all commit. Returns how many
 * documents travelled.
 */
static size_t p2p_sync(struct rep *from, struct rep *to)
{
	struct weft_vv pv;
	struct weft_doc **list;
	struct weft_staged **st;
	size_t n, k = 0;
	struct mp_buf b;

	assert_int_equal(weft__docset_vv(to->ds, &pv), WEFT_OK);
	assert_int_equal(weft__docset_list(from->ds, &list, &n), WEFT_OK);
	st = calloc(n ? n : 1, sizeof(*st));
	weft__mp_buf_init(&b, NULL, 0);
	for (size_t i = 0; i < n; i++) {
		const char *c, *id;
		size_t cl, il;

		if (!weft__vv_exceeds(weft__doc_vv(list[i]), &pv))
			continue;
		weft__mp_buf_reset(&b);
		weft__doc_encode_full(list[i], &b);
		weft__doc_key(list[i], &c, &cl, &id, &il);
		assert_int_equal(
		    weft__docset_stage_state(to->ds, c, cl, id, il, b.data, b.len, &st[k]),
		    WEFT_OK);
		k++;
	}
	for (size_t i = 0; i < k; i++) {
		struct weft_doc *d = weft__docset_commit_staged(to->ds, st[i]);
		uint64_t m = weft__vv_max_hlc(weft__doc_vv(d));

		if (m > to->hlc)
			to->hlc = m; /* the clock observes what it imported */
	}
	free(st);
	weft__mp_buf_free(&b);
	weft__docset_free_list(from->ds, list);
	weft__vv_free(weft__alloc_default(), &pv);
	return k;
}

/* ---- version vectors ---- */

static void test_vv_basics(void **state)
{
	const struct weft_alloc *a = weft__alloc_default();
	struct weft_vv v, w;
	struct mp_buf b;
	struct mp_reader r;
	int changed = 0;

	(void)state;
	weft__vv_init(&v);
	weft__vv_init(&w);
	assert_int_equal(weft__vv_bump(a, &v, 9, 5, &changed), WEFT_OK);
	assert_true(changed);
	assert_int_equal(weft__vv_bump(a, &v, 3, 7, NULL), WEFT_OK);
	changed = 0;
	assert_int_equal(weft__vv_bump(a, &v, 9, 4, &changed), WEFT_OK);
	assert_false(changed);
	assert_int_equal(weft__vv_bump(a, &v, 4, 0, NULL), WEFT_OK); /* 0: nothing */
	assert_int_equal(v.len, 2);
	assert_int_equal(weft__vv_get(&v, 9), 5);
	assert_int_equal(weft__vv_get(&v, 3), 7);
	assert_int_equal(weft__vv_get(&v, 4), 0);
	assert_int_equal(weft__vv_bump(a, &w, 9, 6, NULL), WEFT_OK);
	assert_int_equal(weft__vv_bump(a, &w, 1, 1, NULL), WEFT_OK);
	assert_true(weft__vv_exceeds(&v, &w)); /* 3:7 */
	assert_true(weft__vv_exceeds(&w, &v)); /* 9:6, 1:1 */
	assert_false(weft__vv_covers(&v, &w));
	assert_int_equal(weft__vv_join(a, &v, &w), WEFT_OK);
	assert_true(weft__vv_covers(&v, &w));
	assert_false(weft__vv_exceeds(&w, &v));
	assert_int_equal(weft__vv_max_hlc(&v), 7);
	/* Encoding: a map with ascending keys; the decoder is strict. */
	weft__mp_buf_init(&b, NULL, 0);
	weft__vv_encode(&v, &b);
	{
		static const uint8_t want[] = {0x83, 1, 1, 3, 7, 9, 6};

		assert_int_equal(b.len, sizeof(want));
		assert_memory_equal(b.data, want, sizeof(want));
	}
	weft__mp_reader_init(&r, b.data, b.len);
	weft__vv_free(a, &w);
	assert_int_equal(weft__vv_decode(a, &r, &w), WEFT_OK);
	assert_int_equal(w.len, 3);
	weft__vv_free(a, &w);
	{
		static const uint8_t unsorted[] = {0x82, 3, 7, 1, 1};
		static const uint8_t dup[] = {0x82, 3, 7, 3, 8};
		static const uint8_t zero[] = {0x81, 3, 0};
		static const uint8_t neg[] = {0x81, 3, 0xff};
		static const uint8_t arr[] = {0x91, 3};
		static const uint8_t huge[] = {0xdf, 0xff, 0xff, 0xff, 0xff};
		const uint8_t *bad[] = {unsorted, dup, zero, neg, arr, huge};
		size_t lens[] = {sizeof(unsorted), sizeof(dup), sizeof(zero),
		                 sizeof(neg),      sizeof(arr), sizeof(huge)};

		for (int i = 0; i < 6; i++) {
			weft__mp_reader_init(&r, bad[i], lens[i]);
			assert_int_equal(weft__vv_decode(a, &r, &w), WEFT_EPROTO);
			assert_int_equal(w.len, 0);
		}
	}
	for (size_t cut = 0; cut < b.len; cut++) {
		weft__mp_reader_init(&r, b.data, cut);
		assert_int_equal(weft__vv_decode(a, &r, &w), WEFT_EPROTO);
	}
	weft__mp_buf_free(&b);
	weft__vv_free(a, &v);
}

/* Formats: weft__doc_encode stays format 2 (what the server and Merkle
 * leaves see); the full state is format 3 with the vector; formats 1 and 2
 * load with an empty vector; apply bumps the vector. */
static void test_state_formats(void **state)
{
	struct rep a;
	struct top t[3];
	struct mp_buf v2, v3;
	struct weft_docset *ds;
	struct weft_doc *d;

	(void)state;
	rng = 42;
	rep_init(&a, 77, NULL);
	t[0] = issue(&a, "c", "d0", WEFT_OP_SET, "[\"x\"]", "1", 0);
	t[1] = issue(&a, "c", "d0", WEFT_OP_INCR, "[\"o\",\"y\"]", NULL, 3);
	t[2] = issue(&a, "c", "d0", WEFT_OP_SADD, "[\"o\",\"z\"]", "\"e\"", 0);
	d = weft__docset_find(a.ds, "c", 1, "d0", 2);
	assert_int_equal(weft__doc_vv(d)->len, 1);
	assert_int_equal(weft__vv_get(weft__doc_vv(d), 77), a.hlc);
	weft__mp_buf_init(&v2, NULL, 0);
	weft__mp_buf_init(&v3, NULL, 0);
	weft__doc_encode(d, &v2);
	weft__doc_encode_full(d, &v3);
	assert_int_equal(v2.data[1], 2);
	assert_int_equal(v3.data[0], 0x93);
	assert_int_equal(v3.data[1], 3);
	assert_int_equal(weft__docset_new(NULL, &ds), WEFT_OK);
	assert_int_equal(weft__docset_load(ds, "c", 1, "d0", 2, v2.data, v2.len), WEFT_OK);
	assert_int_equal(weft__doc_vv(weft__docset_find(ds, "c", 1, "d0", 2))->len, 0);
	assert_int_equal(weft__docset_load(ds, "c", 1, "d0", 2, v3.data, v3.len), WEFT_OK);
	{
		struct mp_buf again;

		weft__mp_buf_init(&again, NULL, 0);
		weft__doc_encode_full(weft__docset_find(ds, "c", 1, "d0", 2), &again);
		assert_int_equal(again.len, v3.len);
		assert_memory_equal(again.data, v3.data, v3.len);
		weft__mp_buf_free(&again);
	}
	/* Every prefix and bit flip of a format-3 state loads or is refused. */
	for (size_t cut = 0; cut < v3.len; cut++)
		assert_int_equal(weft__docset_load(ds, "c", 1, "z", 1, v3.data, cut),
		                 WEFT_ECORRUPT);
	for (size_t i = 0; i < v3.len; i++)
		for (int bit = 0; bit < 8; bit++) {
			int rc;
			bool ch;

			v3.data[i] ^= (uint8_t)(1u << bit);
			rc = weft__docset_load(ds, "c", 1, "z", 1, v3.data, v3.len);
			assert_true(rc == WEFT_OK || rc == WEFT_ECORRUPT);
			rc = weft__docset_merge_state(ds, "c", 1, "d0", 2, v3.data, v3.len, &ch,
			                              NULL);
			assert_true(rc == WEFT_OK || rc == WEFT_ECORRUPT);
			v3.data[i] ^= (uint8_t)(1u << bit);
		}
	/* A format-1 state with a vector element is refused. */
	{
		static const uint8_t v1x[] = {0x93, 0x01, 0x99, 0xc0, 0,    0,   0xc0,
		                              5,    1,    0,    0,    0x90, 0x80};
		static const uint8_t v3ok[] = {0x93, 0x03, 0x99, 0xc0, 0,    0, 0xc0, 5,
		                               1,    0,    0,    0x90, 0x81, 1, 5};

		assert_int_equal(weft__docset_load(ds, "c", 1, "v", 1, v1x, sizeof(v1x)),
		                 WEFT_ECORRUPT);
		assert_int_equal(weft__docset_load(ds, "c", 1, "v", 1, v3ok, sizeof(v3ok)),
		                 WEFT_OK);
	}
	weft__mp_buf_free(&v2);
	weft__mp_buf_free(&v3);
	weft__docset_free(ds);
	for (int i = 0; i < 3; i++)
		free(t[i].raw);
	weft__docset_free(a.ds);
}

/* ---- join laws ---- */

#define POOL 24

/* A docset that applied the ops of pool[] selected by mask. */
static struct weft_docset *subset(struct top *pool, int n, uint32_t mask)
{
	struct weft_docset *ds;

	assert_int_equal(weft__docset_new(NULL, &ds), WEFT_OK);
	for (int i = 0; i < n; i++)
		if (mask & (1u << i))
			assert_int_equal(weft__docset_apply(ds, &pool[i].op, NULL, NULL), WEFT_OK);
	return ds;
}

/* into := join(into, from), document by document. */
static void join_into(struct weft_docset *into, struct weft_docset *from)
{
	struct weft_doc **list;
	size_t n;
	struct mp_buf b;

	weft__mp_buf_init(&b, NULL, 0);
	assert_int_equal(weft__docset_list(from, &list, &n), WEFT_OK);
	for (size_t i = 0; i < n; i++) {
		const char *c, *id;
		size_t cl, il;

		weft__mp_buf_reset(&b);
		weft__doc_encode_full(list[i], &b);
		weft__doc_key(list[i], &c, &cl, &id, &il);
		assert_int_equal(
		    weft__docset_merge_state(into, c, cl, id, il, b.data, b.len, NULL, NULL),
		    WEFT_OK);
	}
	weft__docset_free_list(from, list);
	weft__mp_buf_free(&b);
}

static struct weft_docset *copy_of(struct weft_docset *ds)
{
	struct weft_docset *c;

	assert_int_equal(weft__docset_new(NULL, &c), WEFT_OK);
	join_into(c, ds);
	return c;
}

static void test_join_laws(void **state)
{
	const char *env = getenv("WEFT_TEST_SEED");
	const char *rounds_env = getenv("WEFT_TEST_ROUNDS");
	uint64_t seed = env ? strtoull(env, NULL, 0) : 0x10a1f00dULL;
	int rounds = rounds_env ? atoi(rounds_env) / 5 : 2000;

	(void)state;
	printf("test_join_laws: seed %llu, %d rounds (WEFT_TEST_SEED to replay)\n",
	       (unsigned long long)seed, rounds);
	for (int round = 0; round < rounds; round++) {
		struct rep reps[3];
		struct top pool[POOL];
		struct weft_docset *x[3], *t1, *t2, *u;
		uint32_t mask[3];
		int n = 4 + (int)((rng = seed + (uint64_t)round * 7919 + 1, rnd()) % (POOL - 4));

		for (int k = 0; k < 3; k++)
			rep_init(&reps[k], 100 + (uint64_t)k * 7, NULL);
		/* Ops issued from each replica's own state, with some of the
		 * others' ops delivered in between, so bases, dots and claims
		 * are realistic. */
		for (int i = 0; i < n; i++) {
			struct rep *r = &reps[rnd() % 3];

			pool[i] = random_op(r);
			for (int k = 0; k < 3; k++)
				if (&reps[k] != r && rnd() % 3 == 0) {
					assert_int_equal(
					    weft__docset_apply(reps[k].ds, &pool[i].op, NULL, NULL),
					    WEFT_OK);
					if (pool[i].op.hlc > reps[k].hlc)
						reps[k].hlc = pool[i].op.hlc;
				}
		}
		for (int k = 0; k < 3; k++) {
			mask[k] = (uint32_t)rnd() & ((1u << n) - 1);
			x[k] = subset(pool, n, mask[k]);
		}
		/* Idempotent: join(A, A) = A. */
		t1 = copy_of(x[0]);
		assert_same_docsets(t1, x[0], "copy", seed, round);
		join_into(t1, x[0]);
		assert_same_docsets(t1, x[0], "idempotent", seed, round);
		weft__docset_free(t1);
		/* Commutative: join(A, B) = join(B, A), and both equal the
		 * state of the union of their ops. */
		t1 = copy_of(x[0]);
		join_into(t1, x[1]);
		t2 = copy_of(x[1]);
		join_into(t2, x[0]);
		assert_same_docsets(t1, t2, "commutative", seed, round);
		u = subset(pool, n, mask[0] | mask[1]);
		assert_same_docsets(t1, u, "join = union of ops", seed, round);
		weft__docset_free(u);
		/* Associative: join(join(A, B), C) = join(A, join(B, C)). */
		join_into(t1, x[2]);
		weft__docset_free(t2);
		t2 = copy_of(x[1]);
		join_into(t2, x[2]);
		u = copy_of(x[0]);
		join_into(u, t2);
		assert_same_docsets(t1, u, "associative", seed, round);
		weft__docset_free(u);
		u = subset(pool, n, mask[0] | mask[1] | mask[2]);
		assert_same_docsets(t1, u, "join of three = union of ops", seed, round);
		weft__docset_free(u);
		weft__docset_free(t1);
		weft__docset_free(t2);
		for (int k = 0; k < 3; k++) {
			weft__docset_free(x[k]);
			weft__docset_free(reps[k].ds);
		}
		for (int i = 0; i < n; i++)
			free(pool[i].raw);
	}
}

/* ---- the model test ---- */

#define MAX_REPS 5
#define MAX_OPS 40

static void model_round(uint64_t seed, int round)
{
	struct rep reps[MAX_REPS], all;
	struct top ops[MAX_OPS];
	int nrep, nops = 0, steps;

	rng = seed + (uint64_t)round * 7919 + 1;
	rnd();
	nrep = 3 + (int)(rnd() % 3);
	steps = 6 + (int)(rnd() % 40);
	for (int k = 0; k < nrep; k++) {
		rep_init(&reps[k], 1 + rnd() % 1000, NULL);
		for (int j = 0; j < k; j++)
			if (reps[j].replica == reps[k].replica)
				reps[k].replica += 1000 + (uint64_t)k;
	}
	for (int s = 0; s < steps; s++) {
		int k = (int)(rnd() % (uint64_t)nrep);

		if (rnd() % 10 < 6 && nops < MAX_OPS) {
			ops[nops++] = random_op(&reps[k]);
		} else {
			/* A P2P sync k -> j. */
			int j = (int)(rnd() % (uint64_t)nrep);
			struct weft_vv vk, vj;

			if (j == k)
				continue;
			p2p_sync(&reps[k], &reps[j]);
			assert_int_equal(weft__docset_vv(reps[k].ds, &vk), WEFT_OK);
			assert_int_equal(weft__docset_vv(reps[j].ds, &vj), WEFT_OK);
			if (!weft__vv_covers(&vj, &vk))
				fail_msg("seed %llu round %d: importer's vector does not cover "
				         "the exporter's",
				         (unsigned long long)seed, round);
			weft__vv_free(weft__alloc_default(), &vk);
			weft__vv_free(weft__alloc_default(), &vj);
			/* Right after, the importer lacks nothing of the exporter. */
			if (p2p_sync(&reps[k], &reps[j]) != 0)
				fail_msg("seed %llu round %d: a repeated sync carried documents",
				         (unsigned long long)seed, round);
		}
	}
	/* All pairs, twice: the second pass must carry nothing. */
	for (int pass = 0; pass < 2; pass++)
		for (int k = 0; k < nrep; k++)
			for (int j = 0; j < nrep; j++) {
				size_t moved;

				if (j == k)
					continue;
				moved = p2p_sync(&reps[k], &reps[j]);
				if (pass == 1 && moved != 0)
					fail_msg("seed %llu round %d: %zu documents in a sync "
					         "with nothing new",
					         (unsigned long long)seed, round, moved);
			}
	/* One docset that applied every op, in a random order. */
	rep_init(&all, 0, NULL);
	for (int i = nops - 1; i > 0; i--) {
		int j = (int)(rnd() % (uint64_t)(i + 1));
		struct top t = ops[i];

		ops[i] = ops[j];
		ops[j] = t;
	}
	for (int i = 0; i < nops; i++)
		assert_int_equal(weft__docset_apply(all.ds, &ops[i].op, NULL, NULL), WEFT_OK);
	for (int k = 0; k < nrep; k++)
		assert_same_docsets(reps[k].ds, all.ds, "replica vs every op", seed, round);
	weft__docset_free(all.ds);
	for (int k = 0; k < nrep; k++)
		weft__docset_free(reps[k].ds);
	for (int i = 0; i < nops; i++)
		free(ops[i].raw);
}

static void test_model_p2p(void **state)
{
	const char *env = getenv("WEFT_TEST_SEED");
	const char *rounds_env = getenv("WEFT_TEST_ROUNDS");
	uint64_t seed = env ? strtoull(env, NULL, 0) : 0x9e3779b9ULL;
	int rounds = rounds_env ? atoi(rounds_env) : 10000;

	(void)state;
	printf("test_model_p2p: seed %llu, %d histories (WEFT_TEST_SEED to replay)\n",
	       (unsigned long long)seed, rounds);
	for (int round = 0; round < rounds; round++)
		model_round(seed, round);
}

/* ---- allocation failures ---- */

/*
 * Joins state B into a docset holding state A, on an allocator that fails
 * the k-th allocation (and, sticky, every later one): each failure is
 * WEFT_ENOMEM, the docset is left exactly as it was, and nothing leaks.
 * Both an existing document and a new one are joined.
 */
static void test_failalloc_merge(void **state)
{
	struct rep a, b;
	struct top t[10];
	struct mp_buf sa, sb, want, got;
	long total = 0;

	(void)state;
	rng = 7;
	rep_init(&a, 1, NULL);
	rep_init(&b, 2, NULL);
	t[0] = issue(&a, "c", "d0", WEFT_OP_SET, "[]", "{\"x\":\"v\",\"o\":{\"k\":1}}", 0);
	t[1] = issue(&a, "c", "d0", WEFT_OP_INCR, "[\"x\"]", NULL, 4);
	t[2] = issue(&b, "c", "d0", WEFT_OP_INCR, "[\"x\"]", NULL, -1);
	t[3] = issue(&a, "c", "d0", WEFT_OP_SADD, "[\"o\",\"s\"]", "\"e\"", 0);
	t[4] = issue(&b, "c", "d0", WEFT_OP_SADD, "[\"o\",\"s\"]", "\"f\"", 0);
	t[5] = issue(&b, "c", "d0", WEFT_OP_SADD, "[\"o\",\"s\"]", "\"g\"", 0);
	assert_int_equal(weft__docset_apply(a.ds, &t[5].op, NULL, NULL), WEFT_OK);
	t[6] = issue(&a, "c", "d0", WEFT_OP_SREM, "[\"o\",\"s\"]", "\"g\"", 0);
	t[7] = issue(&b, "c", "d0", WEFT_OP_SET, "[\"o\",\"n\"]", "{\"deep\":[1]}", 0);
	t[8] = issue(&b, "c", "d0", WEFT_OP_SADD, "[\"o\",\"s\"]", "\"h\"", 0);
	t[9] = issue(&a, "c", "d0", WEFT_OP_DELETE, "[\"o\",\"k\"]", NULL, 0);
	doc_state(a.ds, "c", "d0", &sa);
	doc_state(b.ds, "c", "d0", &sb);
	/* The expected join: A with B's ops applied. */
	for (int i = 0; i < 10; i++)
		assert_int_equal(weft__docset_apply(a.ds, &t[i].op, NULL, NULL), WEFT_OK);
	doc_state(a.ds, "c", "d0", &want);

	for (long k = 1;; k++) {
		int done = 1;

		for (int sticky = 0; sticky < 2; sticky++) {
			struct failalloc fa;
			struct weft_docset *ds;
			bool changed;
			int rc;

			failalloc_init(&fa, 0, 0);
			assert_int_equal(weft__docset_new(&fa.a, &ds), WEFT_OK);
			assert_int_equal(weft__docset_load(ds, "c", 1, "d0", 2, sa.data, sa.len),
			                 WEFT_OK);
			fa.count = 0;
			fa.fail_at = k;
			fa.sticky = sticky;
			rc = weft__docset_merge_state(ds, "c", 1, "d0", 2, sb.data, sb.len,
			                              &changed, NULL);
			if (rc == WEFT_OK)
				rc = weft__docset_merge_state(ds, "c", 1, "new", 3, sb.data, sb.len,
				                              NULL, NULL);
			fa.fail_at = 0;
			if (rc == WEFT_OK) {
				doc_state(ds, "c", "d0", &got);
				assert_int_equal(got.len, want.len);
				assert_memory_equal(got.data, want.data, want.len);
				weft__mp_buf_free(&got);
				assert_true(changed);
				if (total == 0)
					total = k - 1;
			} else {
				done = 0;
				assert_int_equal(rc, WEFT_ENOMEM);
				/* Either nothing changed, or the first join fully
				 * committed and the second (new doc) did not. */
				doc_state(ds, "c", "d0", &got);
				assert_true(
				    (got.len == sa.len && memcmp(got.data, sa.data, sa.len) == 0) ||
				    (got.len == want.len &&
				     memcmp(got.data, want.data, want.len) == 0));
				weft__mp_buf_free(&got);
				assert_null(weft__docset_find(ds, "c", 1, "new", 3));
			}
			weft__docset_free(ds);
			if (fa.live != 0)
				fail_msg("failing allocation %ld leaked %ld", k, fa.live);
		}
		if (done)
			break;
	}
	printf("failalloc merge: %ld allocation sites exercised\n", total);
	assert_true(total > 10);
	weft__mp_buf_free(&sa);
	weft__mp_buf_free(&sb);
	weft__mp_buf_free(&want);
	for (int i = 0; i < 10; i++)
		free(t[i].raw);
	weft__docset_free(a.ds);
	weft__docset_free(b.ds);
}

/* ---- the public API on real files ---- */

static char *dump_of(weft_db *db)
{
	char *d;

	assert_int_equal(weft_dump(db, &d, NULL), WEFT_OK);
	return d;
}

/* B gets everything of A it lacks. Returns the change set's length. */
static size_t api_sync(weft_db *a, weft_db *b)
{
	void *vv, *chg;
	size_t vlen, clen;

	assert_int_equal(weft_version_vector(b, &vv, &vlen), WEFT_OK);
	assert_int_equal(weft_export(a, vv, vlen, &chg, &clen), WEFT_OK);
	assert_int_equal(weft_import(b, chg, clen), WEFT_OK);
	weft_free(vv);
	weft_free(chg);
	return clen;
}

static void test_public_api(void **state)
{
	char dir[64], pa[96], pb[96];
	weft_db *a, *b;
	char *da, *db_, *before;
	void *chg, *vv;
	size_t clen, vlen;

	(void)state;
	snprintf(dir, sizeof(dir), "/tmp/weft-test-p2p-XXXXXX");
	assert_non_null(mkdtemp(dir));
	snprintf(pa, sizeof(pa), "%s/a.db", dir);
	snprintf(pb, sizeof(pb), "%s/b.db", dir);
	assert_int_equal(weft_open(pa, NULL, &a), WEFT_OK);
	assert_int_equal(weft_open(pb, NULL, &b), WEFT_OK);

	/* An empty replica: empty vector, empty change set. */
	assert_int_equal(weft_version_vector(a, &vv, &vlen), WEFT_OK);
	assert_int_equal(vlen, 1);
	assert_int_equal(((uint8_t *)vv)[0], 0x80);
	weft_free(vv);
	assert_int_equal(api_sync(a, b), 3); /* [1, []] */

	assert_int_equal(weft_put_json(a, "notes", "n1", "{\"title\":\"a\",\"n\":1}", (size_t)-1),
	                 WEFT_OK);
	assert_int_equal(weft_incr(a, "notes", "n1", "views", 2), WEFT_OK);
	assert_int_equal(weft_set_add(a, "notes", "n1", "tags", "\"x\""), WEFT_OK);
	assert_int_equal(weft_put_json(b, "notes", "n1", "{\"body\":\"b\"}", (size_t)-1), WEFT_OK);
	assert_int_equal(weft_incr(b, "notes", "n1", "views", 5), WEFT_OK);
	assert_int_equal(weft_put_json(b, "notes", "n2", "{\"k\":true}", (size_t)-1), WEFT_OK);
	assert_int_equal(weft_put_json(b, "todo", "t", "{\"k\":1}", (size_t)-1), WEFT_OK);
	assert_int_equal(weft_delete(b, "todo", "t"), WEFT_OK);

	assert_true(api_sync(a, b) > 3);
	assert_true(api_sync(b, a) > 3);
	da = dump_of(a);
	db_ = dump_of(b);
	assert_string_equal(da, db_);
	assert_string_equal(
	    da, "{\"collection\":\"notes\",\"doc\":{\"body\":\"b\",\"n\":1,\"tags\":[\"x\"],"
	        "\"title\":\"a\",\"views\":7},\"id\":\"n1\"}\n"
	        "{\"collection\":\"notes\",\"doc\":{\"k\":true},\"id\":\"n2\"}\n");
	free(db_);
	/* Nothing new: both ways carry zero documents. */
	assert_int_equal(api_sync(a, b), 3);
	assert_int_equal(api_sync(b, a), 3);
	/* Imports are idempotent: everything again changes nothing. */
	assert_int_equal(weft_export(a, NULL, 0, &chg, &clen), WEFT_OK);
	assert_int_equal(weft_import(b, chg, clen), WEFT_OK);
	db_ = dump_of(b);
	assert_string_equal(da, db_);
	free(db_);

	/* Corrupted change sets are refused and change nothing. Every
	 * prefix is refused; a bit flip may also give another valid change
	 * set (a different value, id or stamp), so flips go to a third
	 * replica whose expected state follows what it accepted. */
	before = dump_of(b);
	for (size_t cut = 0; cut < clen; cut++)
		assert_int_equal(weft_import(b, chg, cut), WEFT_EPROTO);
	db_ = dump_of(b);
	assert_string_equal(db_, before);
	free(db_);
	free(before);
	{
		char pc[96];
		weft_db *c;
		int refused = 0, accepted = 0;

		snprintf(pc, sizeof(pc), "%s/c.db", dir);
		assert_int_equal(weft_open(pc, NULL, &c), WEFT_OK);
		assert_int_equal(weft_import(c, chg, clen), WEFT_OK);
		before = dump_of(c);
		assert_string_equal(before, da);
		for (size_t i = 0; i < clen; i += 1 + clen / 256) {
			for (int bit = 0; bit < 8; bit++) {
				int rc;
				char *now;

				((uint8_t *)chg)[i] ^= (uint8_t)(1u << bit);
				rc = weft_import(c, chg, clen);
				((uint8_t *)chg)[i] ^= (uint8_t)(1u << bit);
				assert_true(rc == WEFT_OK || rc == WEFT_EPROTO);
				now = dump_of(c);
				if (rc != WEFT_OK) {
					assert_string_equal(now, before);
					refused++;
				} else {
					accepted++;
				}
				free(before);
				before = now;
			}
		}
		printf("bit flips: %d refused, %d accepted as another valid change set\n", refused,
		       accepted);
		assert_true(refused > 100);
		free(before);
		assert_int_equal(weft_close(c), WEFT_OK);
	}
	weft_free(chg);
	{
		/* Unsorted, repeated, wrong version, trailing bytes, too big. */
		static const uint8_t ver2[] = {0x92, 0x02, 0x90};
		static const uint8_t trailing[] = {0x92, 0x01, 0x90, 0xc0};
		static const uint8_t notarr[] = {0x80};
		static const uint8_t rep[] = {0x92, 0x01, 0x92, 0x93, 0xa1, 'c',  0xa1,
		                              'd',  0xc4, 0x01, 0xc0, 0x93, 0xa1, 'c',
		                              0xa1, 'd',  0xc4, 0x01, 0xc0};
		static const uint8_t emptyid[] = {0x92, 0x01, 0x91, 0x93, 0xa1,
		                                  'c',  0xa0, 0xc4, 0x01, 0xc0};

		before = dump_of(b);
		assert_int_equal(weft_import(b, ver2, sizeof(ver2)), WEFT_EPROTO);
		assert_int_equal(weft_import(b, trailing, sizeof(trailing)), WEFT_EPROTO);
		assert_int_equal(weft_import(b, notarr, sizeof(notarr)), WEFT_EPROTO);
		assert_int_equal(weft_import(b, rep, sizeof(rep)), WEFT_EPROTO);
		assert_int_equal(weft_import(b, emptyid, sizeof(emptyid)), WEFT_EPROTO);
		assert_int_equal(weft_import(b, ver2, (size_t)WEFT_MAX_CHANGESET + 1),
		                 WEFT_ETOOBIG);
		assert_int_equal(weft_import(b, NULL, 0), WEFT_EINVAL);
		/* A bad peer vector. */
		assert_int_equal(weft_export(a, "\x82\x03\x07\x01\x01", 5, &chg, &clen),
		                 WEFT_EPROTO);
		assert_int_equal(weft_export(a, NULL, 3, &chg, &clen), WEFT_EINVAL);
		assert_int_equal(weft_export(a, ver2, (size_t)WEFT_MAX_VV_BYTES + 1, &chg, &clen),
		                 WEFT_ETOOBIG);
		db_ = dump_of(b);
		assert_string_equal(before, db_);
		free(db_);
		free(before);
	}

	/* Durable: after reopening, equal still, and nothing to sync. */
	assert_int_equal(weft_close(a), WEFT_OK);
	assert_int_equal(weft_close(b), WEFT_OK);
	assert_int_equal(weft_open(pa, NULL, &a), WEFT_OK);
	assert_int_equal(weft_open(pb, NULL, &b), WEFT_OK);
	db_ = dump_of(b);
	assert_string_equal(da, db_);
	free(db_);
	assert_int_equal(api_sync(a, b), 3);
	assert_int_equal(api_sync(b, a), 3);
	/* Concurrent edits after the sync merge on the next one. */
	assert_int_equal(weft_incr(a, "notes", "n1", "views", 1), WEFT_OK);
	assert_int_equal(weft_set_remove(b, "notes", "n1", "tags", "\"x\""), WEFT_OK);
	assert_int_equal(weft_delete(a, "notes", "n2"), WEFT_OK);
	api_sync(a, b);
	api_sync(b, a);
	free(da);
	da = dump_of(a);
	db_ = dump_of(b);
	assert_string_equal(da, db_);
	assert_string_equal(da, "{\"collection\":\"notes\",\"doc\":{\"body\":\"b\",\"n\":1,"
	                        "\"tags\":[],\"title\":\"a\",\"views\":8},\"id\":\"n1\"}\n");
	/* The writes after an import are stamped after what it brought. */
	assert_int_equal(weft_put_json(b, "notes", "n1", "{\"title\":\"z\"}", (size_t)-1), WEFT_OK);
	api_sync(b, a);
	free(da);
	da = dump_of(a);
	assert_non_null(strstr(da, "\"title\":\"z\""));
	free(da);
	free(db_);
	assert_int_equal(weft_close(a), WEFT_OK);
	assert_int_equal(weft_close(b), WEFT_OK);
	{
		char cmd[160];

		snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
		assert_int_equal(system(cmd), 0);
	}
}

/*
 * A crash after the journal of an import committed but before the
 * documents did: the store holds the journal (meta "p2p_import") and old
 * documents. The next open joins the journal again and clears it.
 */
static void test_journal_replay(void **state)
{
	char dir[64], pa[96], pb[96];
	weft_db *a, *b;
	void *chg;
	size_t clen;
	char *da, *db_;
	struct weft_store *st;
	char err[128];

	(void)state;
	snprintf(dir, sizeof(dir), "/tmp/weft-test-p2pj-XXXXXX");
	assert_non_null(mkdtemp(dir));
	snprintf(pa, sizeof(pa), "%s/a.db", dir);
	snprintf(pb, sizeof(pb), "%s/b.db", dir);
	assert_int_equal(weft_open(pa, NULL, &a), WEFT_OK);
	assert_int_equal(weft_put_json(a, "c", "x", "{\"v\":1}", (size_t)-1), WEFT_OK);
	assert_int_equal(weft_incr(a, "c", "y", "n", 3), WEFT_OK);
	assert_int_equal(weft_export(a, NULL, 0, &chg, &clen), WEFT_OK);
	da = dump_of(a);
	assert_int_equal(weft_close(a), WEFT_OK);
	assert_int_equal(weft_open(pb, NULL, &b), WEFT_OK);
	assert_int_equal(weft_put_json(b, "c", "z", "{\"w\":2}", (size_t)-1), WEFT_OK);
	assert_int_equal(weft_close(b), WEFT_OK);

	assert_int_equal(
	    weft__sqlite_store_open(pb, WEFT_SQLITE_CREATE, NULL, &st, err, sizeof(err)), WEFT_OK);
	assert_int_equal(st->vt->begin(st), WEFT_OK);
	assert_int_equal(st->vt->meta_put(st, "p2p_import", chg, clen), WEFT_OK);
	assert_int_equal(st->vt->commit(st), WEFT_OK);
	weft__store_close(st);

	assert_int_equal(weft_open(pb, NULL, &b), WEFT_OK);
	db_ = dump_of(b);
	assert_non_null(strstr(db_, "\"id\":\"x\""));
	assert_non_null(strstr(db_, "\"id\":\"y\""));
	assert_non_null(strstr(db_, "\"id\":\"z\""));
	free(db_);
	assert_int_equal(weft_close(b), WEFT_OK);
	/* Cleared: a second open replays nothing, and the state persisted. */
	assert_int_equal(
	    weft__sqlite_store_open(pb, WEFT_SQLITE_READONLY, NULL, &st, err, sizeof(err)),
	    WEFT_OK);
	{
		struct mp_buf m;

		weft__mp_buf_init(&m, NULL, 0);
		assert_int_equal(st->vt->meta_get(st, "p2p_import", &m), WEFT_OK);
		assert_int_equal(m.len, 1);
		assert_int_equal(m.data[0], 0xc0);
		weft__mp_buf_free(&m);
	}
	weft__store_close(st);
	assert_int_equal(weft_open(pb, NULL, &b), WEFT_OK);
	db_ = dump_of(b);
	assert_non_null(strstr(db_, "\"id\":\"x\""));
	assert_non_null(strstr(db_, "\"v\":1"));
	free(db_);
	/* A damaged journal is refused at open, not half applied. */
	assert_int_equal(weft_close(b), WEFT_OK);
	assert_int_equal(
	    weft__sqlite_store_open(pb, WEFT_SQLITE_CREATE, NULL, &st, err, sizeof(err)), WEFT_OK);
	assert_int_equal(st->vt->begin(st), WEFT_OK);
	assert_int_equal(st->vt->meta_put(st, "p2p_import", chg, clen - 1), WEFT_OK);
	assert_int_equal(st->vt->commit(st), WEFT_OK);
	weft__store_close(st);
	assert_int_equal(weft_open(pb, NULL, &b), WEFT_ECORRUPT);
	weft_free(chg);
	free(da);
	{
		char cmd[160];

		snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
		assert_int_equal(system(cmd), 0);
	}
}

/* A change set stamped far ahead of the importer's clock is refused (its
 * clock would follow, for good); one a little ahead is taken, and the
 * importer's next write is stamped after it. */
static void test_clock_drift(void **state)
{
	char dir[64], pa[96];
	weft_db *a;
	struct rep r;
	struct top t;
	struct timespec ts;
	uint64_t wall;
	char *json;

	(void)state;
	clock_gettime(CLOCK_REALTIME, &ts);
	wall = (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
	snprintf(dir, sizeof(dir), "/tmp/weft-test-p2pd-XXXXXX");
	assert_non_null(mkdtemp(dir));
	snprintf(pa, sizeof(pa), "%s/a.db", dir);
	assert_int_equal(weft_open(pa, NULL, &a), WEFT_OK);
	for (int k = 0; k < 2; k++) {
		struct mp_buf cs, st;
		uint64_t ahead_ms = k == 0 ? UINT64_C(48) * 3600 * 1000 : 60 * 1000;

		rep_init(&r, 5, NULL);
		r.hlc = WEFT_HLC_MAKE(wall + ahead_ms, 0);
		t = issue(&r, "c", "d", WEFT_OP_SET, "[]", "{\"v\":\"peer\"}", 0);
		doc_state(r.ds, "c", "d", &st);
		weft__mp_buf_init(&cs, NULL, 0);
		weft__mp_write_array(&cs, 2);
		weft__mp_write_uint(&cs, 1);
		weft__mp_write_array(&cs, 1);
		weft__mp_write_array(&cs, 3);
		weft__mp_write_cstr(&cs, "c");
		weft__mp_write_cstr(&cs, "d");
		weft__mp_write_bin(&cs, st.data, st.len);
		assert_int_equal(weft_import(a, cs.data, cs.len), k == 0 ? WEFT_EPROTO : WEFT_OK);
		weft__mp_buf_free(&cs);
		weft__mp_buf_free(&st);
		free(t.raw);
		weft__docset_free(r.ds);
	}
	/* Stamped after the import, although the peer's clock is ahead. */
	assert_int_equal(weft_put_json(a, "c", "d", "{\"v\":\"mine\"}", (size_t)-1), WEFT_OK);
	assert_int_equal(weft_get_json(a, "c", "d", &json, NULL), WEFT_OK);
	assert_string_equal(json, "{\"v\":\"mine\"}");
	weft_free(json);
	assert_int_equal(weft_close(a), WEFT_OK);
	{
		char cmd[160];

		snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
		assert_int_equal(system(cmd), 0);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_vv_basics),       cmocka_unit_test(test_state_formats),
	    cmocka_unit_test(test_join_laws),       cmocka_unit_test(test_model_p2p),
	    cmocka_unit_test(test_failalloc_merge), cmocka_unit_test(test_public_api),
	    cmocka_unit_test(test_journal_replay),  cmocka_unit_test(test_clock_drift),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
