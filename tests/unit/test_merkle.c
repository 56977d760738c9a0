/*
 * test_merkle.c - the Merkle summary: the hash formats (frozen here), the
 * root as a function of the set of leaves only (any insertion order, any
 * history of overwrites and removals), diffs that name exactly the
 * documents that differ (real document states, one side only, removals,
 * 10,000 documents with 50 random differences), the level-by-level
 * primitives finding the same set as the in-memory diff, argument checks,
 * and allocation failure at every allocation.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <cmocka.h>

#include "weft/weft.h"
#include "core/doc.h"
#include "core/merkle.h"
#include "core/sha256.h"
#include "failalloc.h"

static const uint8_t zeros[32];

/* ---- helpers ---- */

static uint64_t rng_state;

static uint64_t rnd(void)
{
	/* splitmix64: a reproducible stream from the printed seed */
	uint64_t z = (rng_state += 0x9e3779b97f4a7c15u);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9u;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebu;
	return z ^ (z >> 31);
}

static void seed_rng(const char *test)
{
	uint64_t seed = (uint64_t)time(NULL);
	const char *env = getenv("WEFT_SEED");

	if (env)
		seed = strtoull(env, NULL, 10);
	printf("%s: seed %llu (WEFT_SEED=%llu replays)\n", test, (unsigned long long)seed,
	       (unsigned long long)seed);
	rng_state = seed;
}

static struct weft_merkle *mk(const struct weft_alloc *a)
{
	struct weft_merkle *m = NULL;

	assert_int_equal(weft__merkle_new(a, &m), WEFT_OK);
	assert_non_null(m);
	return m;
}

/* Sets document "doc-<i>" to the synthetic state "state-<i>-<v>". */
static int put(struct weft_merkle *m, unsigned i, unsigned v)
{
	char id[32], st[64];
	int il = snprintf(id, sizeof(id), "doc-%u", i);
	int sl = snprintf(st, sizeof(st), "state-%u-%u", i, v);

	return weft__merkle_update(m, id, (size_t)il, st, (size_t)sl);
}

static int del(struct weft_merkle *m, unsigned i)
{
	char id[32];
	int il = snprintf(id, sizeof(id), "doc-%u", i);

	return weft__merkle_remove(m, id, (size_t)il);
}

static void root_of(struct weft_merkle *m, uint8_t out[32])
{
	weft__merkle_root(m, out);
}

static void assert_same_root(struct weft_merkle *a, struct weft_merkle *b)
{
	uint8_t ra[32], rb[32];

	root_of(a, ra);
	root_of(b, rb);
	assert_memory_equal(ra, rb, 32);
}

/* What a diff reported, as one line per document: "<side> <id>\n",
 * appended in report order. */
struct seen {
	char buf[1 << 16];
	size_t len;
	size_t n;
};

static int seen_cb(void *ctx, const char *id, size_t id_len, enum weft_merkle_side side)
{
	struct seen *s = ctx;
	int w = snprintf(s->buf + s->len, sizeof(s->buf) - s->len, "%d %.*s\n", (int)side,
	                 (int)id_len, id);

	assert_true(w > 0 && (size_t)w < sizeof(s->buf) - s->len);
	s->len += (size_t)w;
	s->n++;
	return 0;
}

static bool seen_has(const struct seen *s, enum weft_merkle_side side, const char *id)
{
	char line[128];

	snprintf(line, sizeof(line), "%d %s\n", (int)side, id);
	/* each line starts at the beginning or after a newline */
	for (const char *p = s->buf; (p = strstr(p, line)) != NULL; p++)
		if (p == s->buf || p[-1] == '\n')
			return true;
	return false;
}

static void diff(struct weft_merkle *a, struct weft_merkle *b, struct seen *s,
                 struct weft_merkle_stats *st)
{
	s->len = 0;
	s->n = 0;
	s->buf[0] = '\0';
	assert_int_equal(weft__merkle_diff(a, b, seen_cb, s, st), WEFT_OK);
}

/* ---- formats ---- */

static void test_empty_root(void **state)
{
	struct weft_merkle *a = mk(NULL), *b = mk(NULL);
	uint8_t r[32], kids[16][32];
	uint16_t present = 0xffff;
	struct seen *s = calloc(1, sizeof(*s));
	struct weft_merkle_stats st;

	(void)state;
	root_of(a, r);
	assert_memory_equal(r, zeros, 32);
	assert_int_equal(weft__merkle_count(a), 0);
	assert_int_equal(weft__merkle_node_hashes(a, 2, 0xab, kids, &present), WEFT_OK);
	assert_int_equal(present, 0);
	for (int i = 0; i < 16; i++)
		assert_memory_equal(kids[i], zeros, 32);
	assert_int_equal(weft__merkle_node_hash(a, 4, 0xffff, r), WEFT_OK);
	assert_memory_equal(r, zeros, 32);
	diff(a, b, s, &st);
	assert_int_equal(s->n, 0);
	assert_int_equal(st.rounds, 1);
	assert_int_equal(st.bytes_a_to_b, 32);
	assert_int_equal(st.bytes_b_to_a, 1);
	/* Filled and emptied again: back to the constant. */
	for (unsigned i = 0; i < 100; i++)
		assert_int_equal(put(a, i, 0), WEFT_OK);
	root_of(a, r);
	assert_memory_not_equal(r, zeros, 32);
	/* After every removal (which prunes emptied nodes at every level),
	 * the root is that of a tree built from what remains. */
	for (unsigned i = 0; i < 100; i++) {
		struct weft_merkle *ref = mk(NULL);

		assert_int_equal(del(a, i), WEFT_OK);
		for (unsigned j = i + 1; j < 100; j++)
			assert_int_equal(put(ref, j, 0), WEFT_OK);
		assert_same_root(a, ref);
		weft__merkle_free(ref);
	}
	root_of(a, r);
	assert_memory_equal(r, zeros, 32);
	assert_int_equal(weft__merkle_count(a), 0);
	free(s);
	weft__merkle_free(a);
	weft__merkle_free(b);
	weft__merkle_free(NULL);
}

static uint32_t bucket_of(const char *id, size_t len)
{
	uint8_t k[32];

	weft__sha256(id, len, k);
	return (uint32_t)k[0] << 8 | k[1];
}

/* The formats of merkle.h, recomputed here by hand for a one-leaf tree:
 * changing any of them must fail this test. */
static void test_format_frozen(void **state)
{
	struct weft_merkle *m = mk(NULL);
	struct weft_sha256 s;
	uint8_t leaf[32], h[32], got[32], pre[5] = {'L', 0, 0, 0, 5};
	uint32_t b = bucket_of("hello", 5);

	(void)state;
	weft__sha256_init(&s);
	weft__sha256_update(&s, pre, 5);
	weft__sha256_update(&s, "hello", 5);
	weft__sha256_update(&s, "\x81\xa1k\x01", 4);
	weft__sha256_final(&s, leaf);
	weft__merkle_leaf_hash("hello", 5, "\x81\xa1k\x01", 4, got);
	assert_memory_equal(got, leaf, 32);

	assert_int_equal(weft__merkle_update(m, "hello", 5, "\x81\xa1k\x01", 4), WEFT_OK);
	assert_int_equal(weft__merkle_get(m, "hello", 5, got), WEFT_OK);
	assert_memory_equal(got, leaf, 32);
	weft__sha256_init(&s);
	weft__sha256_update(&s, "B", 1);
	weft__sha256_update(&s, leaf, 32);
	weft__sha256_final(&s, h);
	assert_int_equal(weft__merkle_node_hash(m, 4, b, got), WEFT_OK);
	assert_memory_equal(got, h, 32);
	for (int level = 3; level >= 0; level--) {
		unsigned slot = (b >> (12 - 4 * level)) & 15u;

		weft__sha256_init(&s);
		weft__sha256_update(&s, "N", 1);
		for (unsigned i = 0; i < 16; i++)
			weft__sha256_update(&s, i == slot ? h : zeros, 32);
		weft__sha256_final(&s, h);
		assert_int_equal(
		    weft__merkle_node_hash(m, (unsigned)level, b >> (16 - 4 * level), got),
		    WEFT_OK);
		assert_memory_equal(got, h, 32);
	}
	root_of(m, got);
	assert_memory_equal(got, h, 32);
	weft__merkle_free(m);
}

/* ---- order independence ---- */

static void shuffle(unsigned *v, unsigned n)
{
	for (unsigned i = n; i > 1; i--) {
		unsigned j = (unsigned)(rnd() % i), t = v[i - 1];

		v[i - 1] = v[j];
		v[j] = t;
	}
}

static void test_order_independent(void **state)
{
	enum { N = 2000 };
	unsigned *order = malloc(N * sizeof(*order));
	struct weft_merkle *ref = mk(NULL);
	struct seen *s = calloc(1, sizeof(*s));

	(void)state;
	seed_rng("order_independent");
	for (unsigned i = 0; i < N; i++) {
		order[i] = i;
		assert_int_equal(put(ref, i, 1), WEFT_OK);
	}
	for (int round = 0; round < 4; round++) {
		struct weft_merkle *m = mk(NULL);

		shuffle(order, N);
		for (unsigned k = 0; k < N; k++) {
			unsigned i = order[k];

			/* Rounds 2 and 3 pass through other states and removals
			 * first; only the final set of leaves may matter. */
			if (round >= 2 && i % 3 == 0)
				assert_int_equal(put(m, i, 7), WEFT_OK);
			if (round == 3 && i % 5 == 0) {
				assert_int_equal(put(m, N + i, 0), WEFT_OK);
				assert_int_equal(del(m, i % 3 == 0 ? i : N + i), WEFT_OK);
			}
			assert_int_equal(put(m, i, 1), WEFT_OK);
			/* Interleave root computations with the updates. */
			if (k % 512 == 0) {
				uint8_t r[32];

				root_of(m, r);
			}
		}
		if (round == 3)
			for (unsigned i = 0; i < N; i += 15)
				assert_int_equal(del(m, N + i), WEFT_OK);
		assert_int_equal(weft__merkle_count(m), N);
		assert_same_root(m, ref);
		diff(m, ref, s, NULL);
		assert_int_equal(s->n, 0);
		/* Writing the same state again changes nothing. */
		assert_int_equal(put(m, 5, 1), WEFT_OK);
		assert_same_root(m, ref);
		weft__merkle_free(m);
	}
	free(s);
	free(order);
	weft__merkle_free(ref);
}

/* ---- real document states ---- */

static void apply(struct weft_docset *ds, enum weft_op_kind kind, const char *coll, const char *id,
                  uint64_t hlc, uint64_t replica, int64_t v)
{
	struct mp_buf val;
	struct weft_op op;
	static const uint8_t empty_path[1] = {0x90};

	weft__mp_buf_init(&val, NULL, 0);
	if (kind == WEFT_OP_DELETE) {
		weft__mp_write_nil(&val);
	} else {
		weft__mp_write_map(&val, 2);
		weft__mp_write_cstr(&val, "k");
		weft__mp_write_int(&val, v);
		weft__mp_write_cstr(&val, "name");
		weft__mp_write_cstr(&val, id);
	}
	assert_int_equal(val.err, 0);
	memset(&op, 0, sizeof(op));
	op.replica = replica;
	op.incarnation = 1;
	op.seq = hlc;
	op.hlc = WEFT_HLC_MAKE(1000 + hlc, 0);
	op.kind = kind;
	op.coll = coll;
	op.coll_len = strlen(coll);
	op.id = id;
	op.id_len = strlen(id);
	op.path = empty_path;
	op.path_len = 1;
	op.value = val.data;
	op.value_len = val.len;
	assert_int_equal(weft__docset_apply(ds, &op, NULL, NULL), WEFT_OK);
	weft__mp_buf_free(&val);
}

/* Two replicas apply the same ops, except that one field of one document
 * carries a different stamp: its leaf, and only its leaf, differs. A
 * document deleted on both sides keeps a (tombstone) leaf; a delete seen by
 * one side only is a difference. */
static void test_doc_states(void **state)
{
	struct weft_docset *x, *y;
	struct weft_merkle *a = mk(NULL), *b = mk(NULL);
	struct seen *s = calloc(1, sizeof(*s));
	char id[16];
	uint8_t ra[32], rb[32];

	(void)state;
	assert_int_equal(weft__docset_new(NULL, &x), WEFT_OK);
	assert_int_equal(weft__docset_new(NULL, &y), WEFT_OK);
	for (int i = 0; i < 50; i++) {
		snprintf(id, sizeof(id), "d%d", i);
		/* Same value, same HLC, different writer for d17. */
		apply(x, WEFT_OP_SET, "c", id, (uint64_t)i + 1, 7, i);
		apply(y, WEFT_OP_SET, "c", id, (uint64_t)i + 1, i == 17 ? 8 : 7, i);
		apply(x, WEFT_OP_SET, "other", id, 1, 7, i); /* another collection */
	}
	apply(x, WEFT_OP_DELETE, "c", "d3", 100, 7, 0);
	apply(y, WEFT_OP_DELETE, "c", "d3", 100, 7, 0);
	assert_int_equal(weft__merkle_add_docset(a, x, "c", 1), WEFT_OK);
	assert_int_equal(weft__merkle_add_docset(b, y, "c", 1), WEFT_OK);
	assert_int_equal(weft__merkle_count(a), 50); /* the tombstone d3 included */
	root_of(a, ra);
	root_of(b, rb);
	assert_memory_not_equal(ra, rb, 32);
	diff(a, b, s, NULL);
	assert_int_equal(s->n, 1);
	assert_true(seen_has(s, WEFT_MERKLE_DIFFER, "d17"));

	/* The same stamp on both sides: converged. */
	apply(x, WEFT_OP_SET, "c", "d17", 60, 9, 1);
	apply(y, WEFT_OP_SET, "c", "d17", 60, 9, 1);
	assert_int_equal(weft__merkle_update_doc(a, weft__docset_find(x, "c", 1, "d17", 3), NULL),
	                 WEFT_OK);
	assert_int_equal(weft__merkle_add_docset(b, y, "c", 1), WEFT_OK);
	assert_same_root(a, b);

	/* A delete on one side only. */
	apply(y, WEFT_OP_DELETE, "c", "d40", 200, 7, 0);
	assert_int_equal(weft__merkle_update_doc(b, weft__docset_find(y, "c", 1, "d40", 3), NULL),
	                 WEFT_OK);
	diff(a, b, s, NULL);
	assert_int_equal(s->n, 1);
	assert_true(seen_has(s, WEFT_MERKLE_DIFFER, "d40"));

	free(s);
	weft__merkle_free(a);
	weft__merkle_free(b);
	weft__docset_free(x);
	weft__docset_free(y);
}

/* ---- one side only, removal ---- */

static void test_one_side_and_remove(void **state)
{
	struct weft_merkle *a = mk(NULL), *b = mk(NULL), *half = mk(NULL);
	struct seen *s = calloc(1, sizeof(*s));
	struct weft_merkle_stats st;
	uint8_t h[32];

	(void)state;
	for (unsigned i = 0; i < 300; i++) {
		assert_int_equal(put(a, i, 0), WEFT_OK);
		assert_int_equal(put(b, i, 0), WEFT_OK);
	}
	assert_int_equal(put(a, 1000, 0), WEFT_OK);
	assert_int_equal(put(a, 1001, 0), WEFT_OK);
	assert_int_equal(put(b, 2000, 0), WEFT_OK);
	diff(a, b, s, &st);
	assert_int_equal(s->n, 3);
	assert_true(seen_has(s, WEFT_MERKLE_ONLY_A, "doc-1000"));
	assert_true(seen_has(s, WEFT_MERKLE_ONLY_A, "doc-1001"));
	assert_true(seen_has(s, WEFT_MERKLE_ONLY_B, "doc-2000"));
	assert_int_equal(st.differences, 3);
	diff(b, a, s, NULL);
	assert_true(seen_has(s, WEFT_MERKLE_ONLY_B, "doc-1000"));
	assert_true(seen_has(s, WEFT_MERKLE_ONLY_A, "doc-2000"));

	/* Against an empty tree, everything is on one side. */
	diff(a, half, s, NULL);
	assert_int_equal(s->n, 302);
	diff(half, a, s, NULL);
	assert_int_equal(s->n, 302);
	assert_true(seen_has(s, WEFT_MERKLE_ONLY_B, "doc-299"));

	/* Removal. */
	assert_int_equal(del(a, 1000), WEFT_OK);
	assert_int_equal(del(a, 1001), WEFT_OK);
	assert_int_equal(del(a, 1001), WEFT_ENOTFOUND);
	assert_int_equal(weft__merkle_get(a, "doc-1001", 8, h), WEFT_ENOTFOUND);
	assert_int_equal(weft__merkle_remove(a, "nope", 4), WEFT_ENOTFOUND);
	assert_int_equal(del(b, 2000), WEFT_OK);
	assert_same_root(a, b);
	for (unsigned i = 0; i < 300; i += 2)
		assert_int_equal(del(a, i), WEFT_OK);
	for (unsigned i = 1; i < 300; i += 2)
		assert_int_equal(put(half, i, 0), WEFT_OK);
	assert_same_root(a, half);
	diff(a, b, s, NULL);
	assert_int_equal(s->n, 150);
	assert_true(seen_has(s, WEFT_MERKLE_ONLY_B, "doc-0"));
	assert_true(seen_has(s, WEFT_MERKLE_ONLY_B, "doc-298"));
	assert_false(seen_has(s, WEFT_MERKLE_ONLY_B, "doc-1"));
	free(s);
	weft__merkle_free(a);
	weft__merkle_free(b);
	weft__merkle_free(half);
}

/* ---- the level-by-level exchange through the primitives ---- */

struct leafset {
	char id[64][32];
	uint8_t h[64][32];
	size_t n;
};

static int collect_leaf(void *ctx, const char *id, size_t id_len, const uint8_t leaf[32])
{
	struct leafset *l = ctx;

	assert_true(l->n < 64 && id_len < 32);
	memcpy(l->id[l->n], id, id_len);
	l->id[l->n][id_len] = '\0';
	memcpy(l->h[l->n], leaf, 32);
	l->n++;
	return 0;
}

/* What two peers would do: compare the children's hashes of every node
 * that differs, level by level, then the leaves of differing buckets.
 * Appends "<side> <id>" lines to s in the same format as seen_cb. */
static void exchange(struct weft_merkle *a, struct weft_merkle *b, unsigned level, uint32_t prefix,
                     struct seen *s)
{
	if (level < WEFT_MERKLE_DEPTH) {
		uint8_t ha[16][32], hb[16][32];

		assert_int_equal(weft__merkle_node_hashes(a, level, prefix, ha, NULL), WEFT_OK);
		assert_int_equal(weft__merkle_node_hashes(b, level, prefix, hb, NULL), WEFT_OK);
		for (uint32_t i = 0; i < 16; i++)
			if (memcmp(ha[i], hb[i], 32) != 0)
				exchange(a, b, level + 1, prefix * 16 + i, s);
		return;
	}
	struct leafset la = {.n = 0}, lb = {.n = 0};

	assert_int_equal(weft__merkle_bucket_leaves(a, prefix, collect_leaf, &la), WEFT_OK);
	assert_int_equal(weft__merkle_bucket_leaves(b, prefix, collect_leaf, &lb), WEFT_OK);
	for (size_t i = 0; i < la.n; i++) {
		size_t j = 0;

		while (j < lb.n && strcmp(la.id[i], lb.id[j]) != 0)
			j++;
		if (j == lb.n)
			seen_cb(s, la.id[i], strlen(la.id[i]), WEFT_MERKLE_ONLY_A);
		else if (memcmp(la.h[i], lb.h[j], 32) != 0)
			seen_cb(s, la.id[i], strlen(la.id[i]), WEFT_MERKLE_DIFFER);
	}
	for (size_t j = 0; j < lb.n; j++) {
		size_t i = 0;

		while (i < la.n && strcmp(la.id[i], lb.id[j]) != 0)
			i++;
		if (i == la.n)
			seen_cb(s, lb.id[j], strlen(lb.id[j]), WEFT_MERKLE_ONLY_B);
	}
}

/* 10,000 documents, 50 random differences of every kind: the diff names
 * exactly those 50, and so does the exchange through the primitives. */
static void test_10k_50_differences(void **state)
{
	enum { N = 10000, D = 50 };
	struct weft_merkle *a = mk(NULL), *b = mk(NULL);
	struct seen *s = calloc(1, sizeof(*s)), *s2 = calloc(1, sizeof(*s2));
	unsigned *order = malloc(N * sizeof(*order));
	struct weft_merkle_stats st;
	char id[32];

	(void)state;
	seed_rng("10k_50_differences");
	for (unsigned i = 0; i < N; i++) {
		order[i] = i;
		assert_int_equal(put(a, i, 0), WEFT_OK);
		assert_int_equal(put(b, i, 0), WEFT_OK);
	}
	shuffle(order, N);
	for (unsigned k = 0; k < D; k++) {
		unsigned i = order[k];

		switch (k % 3) {
		case 0:
			assert_int_equal(put(b, i, 1), WEFT_OK);
			break;
		case 1:
			assert_int_equal(del(b, i), WEFT_OK);
			break;
		default:
			assert_int_equal(del(a, i), WEFT_OK);
			break;
		}
	}
	diff(a, b, s, &st);
	assert_int_equal(s->n, D);
	assert_int_equal(st.differences, D);
	for (unsigned k = 0; k < D; k++) {
		static const enum weft_merkle_side side[3] = {
		    WEFT_MERKLE_DIFFER, WEFT_MERKLE_ONLY_A, WEFT_MERKLE_ONLY_B};

		snprintf(id, sizeof(id), "doc-%u", order[k]);
		if (!seen_has(s, side[k % 3], id))
			fail_msg("difference %s (side %d) not reported", id, (int)side[k % 3]);
	}
	assert_true(st.rounds >= 2 && st.rounds <= 2 + WEFT_MERKLE_DEPTH);
	printf("10k/50: a->b %llu bytes, b->a %llu bytes, %u rounds, %llu nodes compared\n",
	       (unsigned long long)st.bytes_a_to_b, (unsigned long long)st.bytes_b_to_a, st.rounds,
	       (unsigned long long)st.nodes_compared);

	s2->len = 0;
	s2->n = 0;
	exchange(a, b, 0, 0, s2);
	assert_int_equal(s2->n, D);
	assert_int_equal(s2->len, s->len);
	for (unsigned k = 0; k < D; k++) {
		snprintf(id, sizeof(id), "doc-%u", order[k]);
		assert_true(strstr(s2->buf, id) != NULL);
	}

	free(order);
	free(s);
	free(s2);
	weft__merkle_free(a);
	weft__merkle_free(b);
}

static int stop_cb(void *ctx, const char *id, size_t id_len, enum weft_merkle_side side)
{
	int *calls = ctx;

	(void)id;
	(void)id_len;
	(void)side;
	return ++*calls == 2 ? 42 : 0;
}

static void test_diff_stops(void **state)
{
	struct weft_merkle *a = mk(NULL), *b = mk(NULL);
	int calls = 0;

	(void)state;
	for (unsigned i = 0; i < 10; i++)
		assert_int_equal(put(a, i, 0), WEFT_OK);
	assert_int_equal(weft__merkle_diff(a, b, stop_cb, &calls, NULL), 42);
	assert_int_equal(calls, 2);
	calls = 0;
	assert_int_equal(weft__merkle_diff(a, a, stop_cb, &calls, NULL), WEFT_OK);
	assert_int_equal(calls, 0);
	weft__merkle_free(a);
	weft__merkle_free(b);
}

static void test_einval(void **state)
{
	struct weft_merkle *m = mk(NULL);
	uint8_t h[32], kids[16][32];
	char big[WEFT_MERKLE_MAX_ID + 1];

	(void)state;
	memset(big, 'x', sizeof(big));
	assert_int_equal(weft__merkle_update(m, "", 0, "s", 1), WEFT_EINVAL);
	assert_int_equal(weft__merkle_update(m, NULL, 3, "s", 1), WEFT_EINVAL);
	assert_int_equal(weft__merkle_update(m, big, sizeof(big), "s", 1), WEFT_EINVAL);
	assert_int_equal(weft__merkle_update(m, big, sizeof(big) - 1, "s", 1), WEFT_OK);
	assert_int_equal(weft__merkle_update(m, "x", 1, NULL, 0), WEFT_OK);
	assert_int_equal(weft__merkle_remove(m, "", 0), WEFT_EINVAL);
	assert_int_equal(weft__merkle_node_hash(m, 5, 0, h), WEFT_EINVAL);
	assert_int_equal(weft__merkle_node_hash(m, 1, 16, h), WEFT_EINVAL);
	assert_int_equal(weft__merkle_node_hashes(m, 4, 0, kids, NULL), WEFT_EINVAL);
	assert_int_equal(weft__merkle_node_hashes(m, 3, 4096, kids, NULL), WEFT_EINVAL);
	assert_int_equal(weft__merkle_bucket_leaves(m, 65536, collect_leaf, NULL), WEFT_EINVAL);
	assert_int_equal(weft__merkle_count(m), 2);
	weft__merkle_free(m);
}

/* ---- allocation failure ---- */

/* Ids that share one bucket, so that a bucket's array must grow. */
static char coll_ids[6][24];

static void find_colliding_ids(void)
{
	uint32_t want = bucket_of("c-0", 3);
	int n = 0;

	if (coll_ids[0][0])
		return;
	for (unsigned i = 0; n < 6; i++) {
		char id[24];
		int l = snprintf(id, sizeof(id), "c-%u", i);

		if (bucket_of(id, (size_t)l) == want)
			memcpy(coll_ids[n++], id, (size_t)l + 1);
	}
}

/* One step of the scenario; `step` numbers them. Returns the call's rc. */
static int scenario_step(struct weft_merkle *m, struct weft_docset *ds, int step)
{
	if (step < 40)
		return put(m, (unsigned)step, 0);
	if (step < 46)
		return weft__merkle_update(m, coll_ids[step - 40], strlen(coll_ids[step - 40]),
		                           "state", 5);
	if (step < 56)
		return put(m, (unsigned)(step - 46) * 3, 2); /* overwrite */
	if (step < 62) {
		int k = step - 56;

		return k % 2 ? weft__merkle_remove(m, coll_ids[k], strlen(coll_ids[k]))
		             : del(m, (unsigned)k * 7);
	}
	if (step == 62)
		return weft__merkle_add_docset(m, ds, "c", 1);
	return weft__merkle_update(m, coll_ids[1], strlen(coll_ids[1]), "again", 5);
}

enum { STEPS = 64 };

static void test_alloc_failure(void **state)
{
	struct weft_docset *ds;
	struct weft_merkle *ref = mk(NULL);
	uint8_t want[32];
	long total;

	(void)state;
	find_colliding_ids();
	assert_int_equal(weft__docset_new(NULL, &ds), WEFT_OK);
	for (int i = 0; i < 5; i++) {
		char id[8];

		snprintf(id, sizeof(id), "x%d", i);
		apply(ds, WEFT_OP_SET, "c", id, (uint64_t)i + 1, 7, i);
	}
	for (int step = 0; step < STEPS; step++)
		assert_int_equal(scenario_step(ref, ds, step), WEFT_OK);
	root_of(ref, want);

	/* Count the allocations of a clean run. */
	{
		struct failalloc fa;
		struct weft_merkle *m;

		failalloc_init(&fa, 0, 0);
		assert_int_equal(weft__merkle_new(&fa.a, &m), WEFT_OK);
		for (int step = 0; step < STEPS; step++)
			assert_int_equal(scenario_step(m, ds, step), WEFT_OK);
		total = fa.count;
		weft__merkle_free(m);
		assert_int_equal(fa.live, 0);
	}
	assert_true(total > 50);

	for (long fail = 1; fail <= total; fail++) {
		struct failalloc fa;
		struct weft_merkle *m = NULL;
		int failures = 0;
		uint8_t r[32];

		failalloc_init(&fa, fail, 0);
		if (weft__merkle_new(&fa.a, &m) != WEFT_OK) {
			assert_null(m);
			assert_int_equal(fa.live, 0);
			continue;
		}
		for (int step = 0; step < STEPS; step++) {
			uint8_t before[32], after[32];
			size_t count = weft__merkle_count(m);
			int rc;

			root_of(m, before);
			rc = scenario_step(m, ds, step);
			if (rc == WEFT_OK)
				continue;
			assert_int_equal(rc, WEFT_ENOMEM);
			failures++;
			if (step != 62) {
				/* Unchanged, and still usable. */
				root_of(m, after);
				assert_memory_equal(before, after, 32);
				assert_int_equal(weft__merkle_count(m), count);
			}
			assert_int_equal(scenario_step(m, ds, step), WEFT_OK);
		}
		assert_int_equal(failures, 1);
		root_of(m, r);
		assert_memory_equal(r, want, 32);
		weft__merkle_free(m);
		if (fa.live != 0)
			fail_msg("allocation %ld failed: %ld blocks leaked", fail, fa.live);
	}

	/* Removing everything gives all memory back but the handle. */
	{
		struct failalloc fa;
		struct weft_merkle *m, *empty = mk(NULL);

		failalloc_init(&fa, 0, 0);
		assert_int_equal(weft__merkle_new(&fa.a, &m), WEFT_OK);
		for (unsigned i = 0; i < 500; i++)
			assert_int_equal(put(m, i, 0), WEFT_OK);
		for (unsigned i = 0; i < 500; i++)
			assert_int_equal(del(m, i), WEFT_OK);
		assert_int_equal(fa.live, 1);
		assert_int_equal(weft__merkle_memory(m), weft__merkle_memory(empty));
		weft__merkle_free(m);
		weft__merkle_free(empty);
		assert_int_equal(fa.live, 0);
	}
	weft__merkle_free(ref);
	weft__docset_free(ds);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_empty_root),          cmocka_unit_test(test_format_frozen),
	    cmocka_unit_test(test_order_independent),   cmocka_unit_test(test_doc_states),
	    cmocka_unit_test(test_one_side_and_remove), cmocka_unit_test(test_10k_50_differences),
	    cmocka_unit_test(test_diff_stops),          cmocka_unit_test(test_einval),
	    cmocka_unit_test(test_alloc_failure),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
