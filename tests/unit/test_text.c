/*
 * test_text.c - the text CRDT: sequential edits against a naive reference
 * (an array of code points spliced by hand), random concurrent histories on
 * 3-5 replicas delivered shuffled and duplicated (must converge byte for
 * byte), non-interleaving of concurrent runs typed forwards and backwards,
 * multi-byte UTF-8, encode/load/encode_since round trips, hostile update
 * bytes, and an allocation-failure run.
 * WEFT_TEST_SEED replays a seed; WEFT_TEST_ROUNDS is the number of
 * concurrent histories (default 10,000; the other random tests scale with
 * it). WEFT_TEXT_CORPUS_DIR=dir
 * rewrites the seed corpus of fuzz/fuzz_text.c into dir.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "weft/weft.h"
#include "core/text.h"
#include "failalloc.h"

static uint64_t seed;
static int rounds = 1;
static uint64_t rng_state;

static uint64_t rnd(void)
{
	uint64_t x = rng_state;

	x ^= x << 13;
	x ^= x >> 7;
	x ^= x << 17;
	rng_state = x;
	return x;
}

static size_t rndn(size_t n)
{
	return n ? (size_t)(rnd() % n) : 0;
}

/* A random code point of 1-4 UTF-8 bytes, written to out; returns bytes. */
static size_t rnd_cp(char *out, uint32_t *cp)
{
	static const uint32_t pool[] = {'a',  'b',  'c',   'x',    'y',    'z',     ' ',
	                                '\n', 0xe9, 0x3b1, 0x20ac, 0x4e2d, 0x1f600, 0x10348};
	uint32_t c = pool[rndn(sizeof(pool) / sizeof(pool[0]))];

	*cp = c;
	if (c < 0x80) {
		out[0] = (char)c;
		return 1;
	}
	if (c < 0x800) {
		out[0] = (char)(0xc0 | (c >> 6));
		out[1] = (char)(0x80 | (c & 0x3f));
		return 2;
	}
	if (c < 0x10000) {
		out[0] = (char)(0xe0 | (c >> 12));
		out[1] = (char)(0x80 | ((c >> 6) & 0x3f));
		out[2] = (char)(0x80 | (c & 0x3f));
		return 3;
	}
	out[0] = (char)(0xf0 | (c >> 18));
	out[1] = (char)(0x80 | ((c >> 12) & 0x3f));
	out[2] = (char)(0x80 | ((c >> 6) & 0x3f));
	out[3] = (char)(0x80 | (c & 0x3f));
	return 4;
}

static size_t cp_encode(uint32_t c, char *out)
{
	if (c < 0x80) {
		out[0] = (char)c;
		return 1;
	}
	if (c < 0x800) {
		out[0] = (char)(0xc0 | (c >> 6));
		out[1] = (char)(0x80 | (c & 0x3f));
		return 2;
	}
	if (c < 0x10000) {
		out[0] = (char)(0xe0 | (c >> 12));
		out[1] = (char)(0x80 | ((c >> 6) & 0x3f));
		out[2] = (char)(0x80 | (c & 0x3f));
		return 3;
	}
	out[0] = (char)(0xf0 | (c >> 18));
	out[1] = (char)(0x80 | ((c >> 12) & 0x3f));
	out[2] = (char)(0x80 | ((c >> 6) & 0x3f));
	out[3] = (char)(0x80 | (c & 0x3f));
	return 4;
}

/* The text as a malloc'd NUL-terminated string. */
static char *text_str(struct weft_text *t)
{
	size_t len;
	char *s = malloc(weft__text_byte_len(t) + 1);

	assert_non_null(s);
	assert_int_equal(weft__text_read(t, s, weft__text_byte_len(t), &len), WEFT_OK);
	s[len] = '\0';
	return s;
}

static void assert_text(struct weft_text *t, const char *want)
{
	char *s = text_str(t);

	assert_string_equal(s, want);
	free(s);
}

/* ---- sequential edits against the naive reference ---- */

struct ref {
	uint32_t *cp;
	size_t len, cap;
};

static void ref_splice(struct ref *r, size_t pos, size_t del, const uint32_t *ins, size_t n)
{
	if (r->len - del + n > r->cap) {
		r->cap = (r->len - del + n) * 2 + 16;
		r->cp = realloc(r->cp, r->cap * sizeof(*r->cp));
		assert_non_null(r->cp);
	}
	memmove(r->cp + pos + n, r->cp + pos + del, (r->len - pos - del) * sizeof(*r->cp));
	if (n)
		memcpy(r->cp + pos, ins, n * sizeof(*ins));
	r->len = r->len - del + n;
}

static char *ref_str(const struct ref *r)
{
	char *s = malloc(r->len * 4 + 1);
	size_t i, w = 0;

	assert_non_null(s);
	for (i = 0; i < r->len; i++)
		w += cp_encode(r->cp[i], s + w);
	s[w] = '\0';
	return s;
}

static void test_sequential_reference(void **state)
{
	int iter, step, steps = 400;

	(void)state;
	rng_state = seed ^ 0x1234567;
	for (iter = 0; iter < 40 * rounds; iter++) {
		struct weft_text *t;
		struct ref r = {0};

		assert_int_equal(weft__text_new(NULL, 7, 1, &t), WEFT_OK);
		for (step = 0; step < steps; step++) {
			size_t pos = rndn(r.len + 1);
			if (r.len > 0 && rndn(3) == 0) {
				size_t del = 1 + rndn(rndn(4) == 0 ? 20 : 3);
				if (pos == r.len)
					pos--;
				if (del > r.len - pos)
					del = r.len - pos;
				assert_int_equal(weft__text_delete(t, pos, del, NULL), WEFT_OK);
				ref_splice(&r, pos, del, NULL, 0);
			} else {
				char buf[64];
				uint32_t cps[16];
				size_t n = 1 + rndn(rndn(4) == 0 ? 12 : 2), i, w = 0;
				for (i = 0; i < n; i++)
					w += rnd_cp(buf + w, &cps[i]);
				assert_int_equal(weft__text_insert(t, pos, buf, w, NULL), WEFT_OK);
				ref_splice(&r, pos, 0, cps, n);
			}
			assert_int_equal(weft__text_len(t), r.len);
			if (step % 37 == 0 || step == steps - 1) {
				char *want = ref_str(&r);
				assert_int_equal(weft__text_check(t), WEFT_OK);
				assert_text(t, want);
				free(want);
			}
		}
		weft__text_free(t);
		free(r.cp);
	}
}

/*
 * Long documents: many chunks, so position lookups go through the chunk
 * index (a Fenwick tree) rather than the last-chunk cache. Edits at random
 * positions, bursts of local typing and backspacing (cache hits, deferred
 * index updates, chunk splits that leave the index partly stale), checked
 * against the naive reference and weft__text_check (which verifies the
 * index against the chunks).
 */
static void test_long_random_reference(void **state)
{
	int iter, step, steps = 6000;

	(void)state;
	rng_state = seed ^ 0x10f1;
	for (iter = 0; iter < 2 * rounds; iter++) {
		struct weft_text *t;
		struct ref r = {0};

		assert_int_equal(weft__text_new(NULL, 9, 1, &t), WEFT_OK);
		for (step = 0; step < steps; step++) {
			size_t pos = rndn(r.len + 1), burst = rndn(8) == 0 ? 1 + rndn(40) : 1, b;
			int del = r.len > 0 && step > steps / 3 && rndn(3) == 0;
			for (b = 0; b < burst; b++) {
				if (del && r.len > 0) {
					size_t k = 1 + rndn(rndn(4) == 0 ? 30 : 3);
					if (pos == r.len)
						pos--;
					if (k > r.len - pos)
						k = r.len - pos;
					if (burst > 1 && pos > 0) {
						pos--; /* backspacing */
						k = 1;
					}
					assert_int_equal(weft__text_delete(t, pos, k, NULL),
					                 WEFT_OK);
					ref_splice(&r, pos, k, NULL, 0);
				} else {
					char buf[64];
					uint32_t cps[16];
					size_t n = 1 + rndn(rndn(4) == 0 ? 12 : 3), i, w = 0;
					for (i = 0; i < n; i++)
						w += rnd_cp(buf + w, &cps[i]);
					assert_int_equal(weft__text_insert(t, pos, buf, w, NULL),
					                 WEFT_OK);
					ref_splice(&r, pos, 0, cps, n);
					pos += n; /* keep typing */
				}
			}
			assert_int_equal(weft__text_len(t), r.len);
			if (step % 499 == 0 || step == steps - 1) {
				char *want = ref_str(&r);
				assert_int_equal(weft__text_check(t), WEFT_OK);
				assert_text(t, want);
				free(want);
			}
		}
		weft__text_free(t);
		free(r.cp);
	}
}

static double now_ms(void)
{
	struct timespec ts;

	timespec_get(&ts, TIME_UTC);
	return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

/*
 * Timing only (printed, never asserted): edits at random positions of a
 * long document, where the last-chunk cache rarely helps. Small by default;
 * WEFT_TEXT_BENCH=1 runs 100,000 edits on a 1,000,000-char document.
 */
static void test_random_position_timing(void **state)
{
	const char *env = getenv("WEFT_TEXT_BENCH");
	size_t doc = 100000, edits = 10000, i, len;
	struct weft_text *t;
	char *block;
	double t0, t1;

	(void)state;
	if (env && atoi(env) > 0) {
		doc = 1000000;
		edits = 100000;
	}
	rng_state = seed ^ 0x7117;
	block = malloc(1000);
	assert_non_null(block);
	for (i = 0; i < 1000; i++)
		block[i] = (char)('a' + rndn(26));
	assert_int_equal(weft__text_new(NULL, 11, 1, &t), WEFT_OK);
	for (i = 0; i < doc / 1000; i++)
		assert_int_equal(weft__text_insert(t, i * 1000, block, 1000, NULL), WEFT_OK);
	t0 = now_ms();
	for (i = 0; i < edits; i++) {
		len = weft__text_len(t);
		if (rndn(2) == 0)
			assert_int_equal(
			    weft__text_insert(t, rndn(len + 1), block, 1 + rndn(5), NULL), WEFT_OK);
		else
			assert_int_equal(weft__text_delete(t, rndn(len - 3), 1 + rndn(3), NULL),
			                 WEFT_OK);
	}
	t1 = now_ms();
	printf("random-position edits: %zu on a %zu-char document: %.1f ms (%.0f ns/edit), "
	       "%zu runs\n",
	       edits, doc, t1 - t0, (t1 - t0) * 1e6 / (double)edits, weft__text_runs(t));
	assert_int_equal(weft__text_check(t), WEFT_OK);
	weft__text_free(t);
	free(block);
}

/* Typing runs: forward typing, backspacing, forward delete, jumps. */
static void test_typing_patterns(void **state)
{
	struct weft_text *t;
	size_t i;

	(void)state;
	assert_int_equal(weft__text_new(NULL, 1, 1, &t), WEFT_OK);
	for (i = 0; i < 100; i++)
		assert_int_equal(weft__text_insert(t, i, "a", 1, NULL), WEFT_OK);
	assert_int_equal(weft__text_runs(t), 1);
	for (i = 0; i < 10; i++)
		assert_int_equal(weft__text_delete(t, 99 - i, 1, NULL), WEFT_OK); /* backspace */
	for (i = 0; i < 10; i++)
		assert_int_equal(weft__text_delete(t, 40, 1, NULL), WEFT_OK); /* delete key */
	assert_int_equal(weft__text_len(t), 80);
	assert_int_equal(weft__text_insert(t, 0, "xy", 2, NULL), WEFT_OK);
	assert_int_equal(weft__text_delete(t, 0, 82, NULL), WEFT_OK);
	assert_int_equal(weft__text_len(t), 0);
	assert_int_equal(weft__text_insert(t, 0, "end", 3, NULL), WEFT_OK);
	assert_int_equal(weft__text_check(t), WEFT_OK);
	assert_text(t, "end");
	assert_int_equal(weft__text_insert(t, 4, "x", 1, NULL), WEFT_EINVAL);
	assert_int_equal(weft__text_delete(t, 2, 2, NULL), WEFT_EINVAL);
	assert_int_equal(weft__text_insert(t, 0, "\xff", 1, NULL), WEFT_EINVAL);
	assert_int_equal(weft__text_insert(t, 0, "\xc3", 1, NULL), WEFT_EINVAL);
	assert_int_equal(weft__text_insert(t, 0, NULL, 0, NULL), WEFT_OK);
	weft__text_free(t);
}

static void test_utf8(void **state)
{
	struct weft_text *t, *u;
	struct mp_buf b;
	char buf[8];

	(void)state;
	assert_int_equal(weft__text_new(NULL, 1, 1, &t), WEFT_OK);
	/* é (2), € (3), 😀 (4), a (1) */
	assert_int_equal(weft__text_insert(t, 0,
	                                   "\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80"
	                                   "a",
	                                   10, NULL),
	                 WEFT_OK);
	assert_int_equal(weft__text_len(t), 4);
	assert_int_equal(weft__text_byte_len(t), 10);
	assert_int_equal(weft__text_insert(t, 2, "\xe4\xb8\xad", 3, NULL), WEFT_OK);
	assert_text(t, "\xc3\xa9\xe2\x82\xac\xe4\xb8\xad\xf0\x9f\x98\x80"
	               "a");
	assert_int_equal(weft__text_delete(t, 1, 1, NULL), WEFT_OK);
	assert_text(t, "\xc3\xa9\xe4\xb8\xad\xf0\x9f\x98\x80"
	               "a");
	assert_int_equal(weft__text_delete(t, 2, 1, NULL), WEFT_OK);
	assert_text(t, "\xc3\xa9\xe4\xb8\xad"
	               "a");
	assert_int_equal(weft__text_len(t), 3);
	assert_int_equal(weft__text_read(t, buf, 2, NULL), WEFT_ETOOBIG);
	/* surrogates and overlongs are not UTF-8 */
	assert_int_equal(weft__text_insert(t, 0, "\xed\xa0\x80", 3, NULL), WEFT_EINVAL);
	assert_int_equal(weft__text_insert(t, 0, "\xc0\xaf", 2, NULL), WEFT_EINVAL);
	weft__mp_buf_init(&b, NULL, 0);
	assert_int_equal(weft__text_encode(t, 0, &b), WEFT_OK);
	assert_int_equal(weft__text_load(NULL, 2, 1, b.data, b.len, &u), WEFT_OK);
	assert_text(u, "\xc3\xa9\xe4\xb8\xad"
	               "a");
	assert_int_equal(weft__text_len(u), 3);
	weft__mp_buf_free(&b);
	weft__text_free(u);
	weft__text_free(t);
}

/* ---- concurrency ---- */

struct msg {
	uint8_t *data;
	size_t len;
	uint64_t replica; /* the agent of a compact update */
	uint32_t inc;
};

struct net {
	struct msg *m;
	size_t n, cap;
};

static void net_push(struct net *nt, struct mp_buf *b)
{
	if (nt->n == nt->cap) {
		nt->cap = nt->cap ? nt->cap * 2 : 64;
		nt->m = realloc(nt->m, nt->cap * sizeof(*nt->m));
		assert_non_null(nt->m);
	}
	nt->m[nt->n].data = weft__mp_buf_take(b, &nt->m[nt->n].len);
	nt->n++;
}

static void net_free(struct net *nt)
{
	size_t i;

	for (i = 0; i < nt->n; i++)
		free(nt->m[i].data);
	free(nt->m);
	memset(nt, 0, sizeof(*nt));
}

/* One random local edit on t; its update goes to the net. */
static void random_edit(struct weft_text *t, struct net *nt)
{
	struct mp_buf b;
	size_t len = weft__text_len(t);

	weft__mp_buf_init(&b, NULL, 0);
	if (len > 0 && rndn(4) == 0) {
		size_t pos = rndn(len), del = 1 + rndn(3);
		if (del > len - pos)
			del = len - pos;
		assert_int_equal(weft__text_delete(t, pos, del, &b), WEFT_OK);
	} else {
		char buf[32];
		uint32_t cp;
		size_t n = 1 + rndn(3), i, w = 0, pos = rndn(len + 1);
		for (i = 0; i < n; i++)
			w += rnd_cp(buf + w, &cp);
		assert_int_equal(weft__text_insert(t, pos, buf, w, &b), WEFT_OK);
	}
	assert_int_equal(b.err, 0);
	net_push(nt, &b);
}

static void sync_full(struct weft_text *from, struct weft_text *to)
{
	struct mp_buf v, u;

	weft__mp_buf_init(&v, NULL, 0);
	weft__mp_buf_init(&u, NULL, 0);
	weft__text_version(to, &v);
	assert_int_equal(weft__text_encode_since(from, v.data, v.len, &u), WEFT_OK);
	assert_int_equal(weft__text_apply(to, u.data, u.len), WEFT_OK);
	weft__mp_buf_free(&v);
	weft__mp_buf_free(&u);
}

/* Full document (deleted content dropped) from `from` merged into `to`. */
static void sync_doc_dropped(struct weft_text *from, struct weft_text *to)
{
	struct mp_buf u;

	weft__mp_buf_init(&u, NULL, 0);
	assert_int_equal(weft__text_encode(from, WEFT_TEXT_DROP_DELETED, &u), WEFT_OK);
	assert_int_equal(weft__text_apply(to, u.data, u.len), WEFT_OK);
	weft__mp_buf_free(&u);
}

static void test_model_concurrent(void **state)
{
	long histories = 10000L * rounds, h;

	(void)state;
	rng_state = seed ^ 0xabcdef;
	for (h = 0; h < histories; h++) {
		struct weft_text *rep[5];
		struct net nt = {0};
		size_t nrep = 3 + rndn(3), i, steps = 4 + rndn(16), s;

		if (h % 64 == 63)
			steps = 300 + rndn(300); /* big enough to split chunks */
		char *want;

		for (i = 0; i < nrep; i++)
			assert_int_equal(weft__text_new(NULL, rnd() % 4, (uint32_t)i, &rep[i]),
			                 WEFT_OK);
		for (s = 0; s < steps; s++) {
			size_t k = rndn(nrep);
			if (nt.n > 0 && rndn(2) == 0) {
				/* deliver a random message (maybe again, maybe early) */
				struct msg *m = &nt.m[rndn(nt.n)];
				assert_int_equal(weft__text_apply(rep[k], m->data, m->len),
				                 WEFT_OK);
			} else {
				random_edit(rep[k], &nt);
			}
		}
		if (rndn(4) == 0) {
			/* state-based sync for some histories */
			for (i = 1; i < nrep; i++) {
				if (rndn(2))
					sync_full(rep[i], rep[0]);
				else
					sync_doc_dropped(rep[i], rep[0]);
			}
			for (i = 1; i < nrep; i++)
				sync_full(rep[0], rep[i]);
		} else {
			/* deliver everything, shuffled, with duplicates */
			for (i = 0; i < nrep; i++) {
				size_t j, n = nt.n, *perm = malloc((n + 1) * sizeof(size_t));
				for (j = 0; j < n; j++)
					perm[j] = j;
				for (j = n; j > 1; j--) {
					size_t x = rndn(j), tmp = perm[j - 1];
					perm[j - 1] = perm[x];
					perm[x] = tmp;
				}
				for (j = 0; j < n; j++) {
					struct msg *m = &nt.m[perm[j]];
					assert_int_equal(weft__text_apply(rep[i], m->data, m->len),
					                 WEFT_OK);
					if (rndn(8) == 0)
						assert_int_equal(
						    weft__text_apply(rep[i], m->data, m->len),
						    WEFT_OK);
				}
				free(perm);
			}
		}
		want = text_str(rep[0]);
		for (i = 0; i < nrep; i++) {
			char *got = text_str(rep[i]);
			if (strcmp(got, want) != 0 || weft__text_pending(rep[i]) != 0 ||
			    weft__text_check(rep[i]) != WEFT_OK)
				fail_msg(
				    "history %ld (seed %llu): replica %zu diverged: '%s' vs '%s' "
				    "(pending %zu)",
				    h, (unsigned long long)seed, i, got, want,
				    weft__text_pending(rep[i]));
			free(got);
		}
		free(want);
		for (i = 0; i < nrep; i++)
			weft__text_free(rep[i]);
		net_free(&nt);
	}
}

/*
 * The model test with compact updates: each replica's edits go out without
 * the agent header (a few replicas keep the self-contained form) and are
 * delivered with the agent supplied, shuffled, duplicated and early; some
 * histories finish with a state-based sync instead.
 */
static void test_model_compact(void **state)
{
	long histories = 4000L * rounds, h;

	(void)state;
	rng_state = seed ^ 0xc0c0a;
	for (h = 0; h < histories; h++) {
		struct weft_text *rep[5];
		uint64_t rid[5];
		struct net nt = {0};
		size_t nrep = 2 + rndn(4), i, j, steps = 4 + rndn(24), s;
		char *want;

		if (h % 64 == 63)
			steps = 300 + rndn(300);
		for (i = 0; i < nrep; i++) {
			rid[i] = rndn(2) ? rnd() : rnd() % 4; /* large and small ids */
			assert_int_equal(weft__text_new(NULL, rid[i], (uint32_t)i + 1, &rep[i]),
			                 WEFT_OK);
			weft__text_set_compact(rep[i], rndn(8) != 0);
		}
		for (s = 0; s < steps; s++) {
			size_t k = rndn(nrep);
			if (nt.n > 0 && rndn(2) == 0) {
				struct msg *m = &nt.m[rndn(nt.n)];
				assert_int_equal(weft__text_apply_from(rep[k], m->replica, m->inc,
				                                       m->data, m->len),
				                 WEFT_OK);
			} else {
				random_edit(rep[k], &nt);
				nt.m[nt.n - 1].replica = rid[k];
				nt.m[nt.n - 1].inc = (uint32_t)k + 1;
			}
		}
		if (rndn(5) == 0) {
			for (i = 1; i < nrep; i++)
				sync_full(rep[i], rep[0]);
			for (i = 1; i < nrep; i++)
				sync_full(rep[0], rep[i]);
		} else {
			for (i = 0; i < nrep; i++) {
				size_t n = nt.n, *perm = malloc((n + 1) * sizeof(size_t));
				for (j = 0; j < n; j++)
					perm[j] = j;
				for (j = n; j > 1; j--) {
					size_t x = rndn(j), tmp = perm[j - 1];
					perm[j - 1] = perm[x];
					perm[x] = tmp;
				}
				for (j = 0; j < n; j++) {
					struct msg *m = &nt.m[perm[j]];
					int d = rndn(8) == 0 ? 2 : 1;
					while (d--)
						assert_int_equal(
						    weft__text_apply_from(rep[i], m->replica,
						                          m->inc, m->data, m->len),
						    WEFT_OK);
				}
				free(perm);
			}
		}
		want = text_str(rep[0]);
		for (i = 0; i < nrep; i++) {
			char *got = text_str(rep[i]);
			if (strcmp(got, want) != 0 || weft__text_pending(rep[i]) != 0 ||
			    weft__text_check(rep[i]) != WEFT_OK)
				fail_msg("compact history %ld (seed %llu): replica %zu diverged: "
				         "'%s' vs '%s' (pending %zu)",
				         h, (unsigned long long)seed, i, got, want,
				         weft__text_pending(rep[i]));
			free(got);
		}
		free(want);
		for (i = 0; i < nrep; i++)
			weft__text_free(rep[i]);
		net_free(&nt);
	}
}

/* A compact update is the self-contained one without its header when it
 * references only its own agent, and carries a table of the others when
 * it does; weft__text_apply refuses it. */
static void test_compact_form(void **state)
{
	struct weft_text *a, *b, *c, *x;
	struct mp_buf full, cmp, hdr;

	(void)state;
	weft__mp_buf_init(&full, NULL, 0);
	weft__mp_buf_init(&cmp, NULL, 0);
	weft__mp_buf_init(&hdr, NULL, 0);
	assert_int_equal(weft__text_new(NULL, 0x9e3779b97f4a7c15ull, 7, &a), WEFT_OK);
	assert_int_equal(weft__text_new(NULL, 0x9e3779b97f4a7c15ull, 7, &b), WEFT_OK);
	assert_int_equal(weft__text_new(NULL, 5, 1, &c), WEFT_OK);
	weft__text_set_compact(b, true);
	assert_int_equal(weft__text_insert(a, 0, "hello", 5, &full), WEFT_OK);
	assert_int_equal(weft__text_insert(b, 0, "hello", 5, &cmp), WEFT_OK);
	weft__mp_write_uint(&hdr, 1);
	weft__mp_write_uint(&hdr, 1);
	weft__mp_write_uint(&hdr, 0x9e3779b97f4a7c15ull);
	weft__mp_write_uint(&hdr, 7);
	assert_int_equal(full.len, hdr.len + cmp.len);
	assert_memory_equal(full.data, hdr.data, hdr.len);
	assert_memory_equal(full.data + hdr.len, cmp.data, cmp.len);
	assert_true(cmp.data[0] >= 0x20);
	/* refused without an agent, applied with one, and by the old form */
	assert_int_equal(weft__text_apply(c, cmp.data, cmp.len), WEFT_EPROTO);
	assert_int_equal(weft__text_len(c), 0);
	assert_int_equal(weft__text_apply_from(c, 0x9e3779b97f4a7c15ull, 7, cmp.data, cmp.len),
	                 WEFT_OK);
	assert_int_equal(weft__text_apply_from(c, 99, 1, full.data, full.len), WEFT_OK);
	assert_int_equal(weft__text_apply_from(c, 99, 1, NULL, 0), WEFT_OK);
	assert_text(c, "hello");
	/* c's edit inside a's text references agent a: a table of one */
	weft__text_set_compact(c, true);
	weft__mp_buf_reset(&cmp);
	assert_int_equal(weft__text_insert(c, 2, "XY", 2, &cmp), WEFT_OK);
	assert_int_equal(cmp.data[0], 0x02);
	assert_int_equal(cmp.data[1], 0x01);
	assert_int_equal(weft__text_apply_from(a, 5, 1, cmp.data, cmp.len), WEFT_OK);
	assert_text(a, "heXYllo");
	/* on a replica without a's items: buffered until they come */
	assert_int_equal(weft__text_new(NULL, 8, 1, &x), WEFT_OK);
	assert_int_equal(weft__text_apply_from(x, 5, 1, cmp.data, cmp.len), WEFT_OK);
	assert_int_equal(weft__text_pending(x), 1);
	assert_int_equal(weft__text_len(x), 0);
	sync_full(c, x);
	assert_int_equal(weft__text_pending(x), 0);
	assert_text(x, "heXYllo");
	weft__text_free(x);
	weft__mp_buf_free(&full);
	weft__mp_buf_free(&cmp);
	weft__mp_buf_free(&hdr);
	weft__text_free(a);
	weft__text_free(b);
	weft__text_free(c);
}

/* Two replicas type at the same spot concurrently; the runs must not mix. */
static void interleave_case(int backwards, uint64_t ra, uint64_t rb)
{
	struct weft_text *a, *b;
	struct mp_buf ua, ub;
	const char *sa = "abcdef", *sb = "uvwxyz";
	char *ta, *tb;
	size_t i;

	assert_int_equal(weft__text_new(NULL, ra, 1, &a), WEFT_OK);
	assert_int_equal(weft__text_new(NULL, rb, 1, &b), WEFT_OK);
	weft__mp_buf_init(&ua, NULL, 0);
	weft__mp_buf_init(&ub, NULL, 0);
	assert_int_equal(weft__text_insert(a, 0, "[]", 2, NULL), WEFT_OK);
	sync_full(a, b);
	for (i = 0; i < 6; i++) {
		size_t k = backwards ? 5 - i : i;
		size_t pos = backwards ? 1 : 1 + i;
		assert_int_equal(weft__text_insert(a, pos, sa + k, 1, NULL), WEFT_OK);
		assert_int_equal(weft__text_insert(b, pos, sb + k, 1, NULL), WEFT_OK);
	}
	sync_full(a, b);
	sync_full(b, a);
	ta = text_str(a);
	tb = text_str(b);
	assert_string_equal(ta, tb);
	if (strcmp(ta, "[abcdefuvwxyz]") != 0 && strcmp(ta, "[uvwxyzabcdef]") != 0)
		fail_msg("interleaved (%s): %s", backwards ? "backwards" : "forwards", ta);
	free(ta);
	free(tb);
	weft__mp_buf_free(&ua);
	weft__mp_buf_free(&ub);
	weft__text_free(a);
	weft__text_free(b);
}

static void test_no_interleaving_forwards(void **state)
{
	(void)state;
	interleave_case(0, 1, 2);
	interleave_case(0, 2, 1);
}

static void test_no_interleaving_backwards(void **state)
{
	(void)state;
	interleave_case(1, 1, 2);
	interleave_case(1, 2, 1);
}

/* Three agents, each typing a word at the same spot, per-op delivery. */
static void test_no_interleaving_three(void **state)
{
	struct weft_text *r[3];
	struct net nt = {0};
	const char *w[3] = {"one", "two", "six"};
	size_t i, j, k;
	char *s;

	(void)state;
	for (i = 0; i < 3; i++)
		assert_int_equal(weft__text_new(NULL, 10 + i, 1, &r[i]), WEFT_OK);
	for (j = 0; j < 3; j++) {
		for (i = 0; i < 3; i++) {
			struct mp_buf b;
			weft__mp_buf_init(&b, NULL, 0);
			assert_int_equal(weft__text_insert(r[i], j, w[i] + j, 1, &b), WEFT_OK);
			net_push(&nt, &b);
		}
	}
	for (i = 0; i < 3; i++) {
		for (k = nt.n; k-- > 0;)
			assert_int_equal(weft__text_apply(r[i], nt.m[k].data, nt.m[k].len),
			                 WEFT_OK);
		assert_int_equal(weft__text_pending(r[i]), 0);
	}
	s = text_str(r[0]);
	for (i = 1; i < 3; i++)
		assert_text(r[i], s);
	assert_int_equal(strlen(s), 9);
	for (i = 0; i < 3; i++)
		assert_non_null(strstr(s, w[i]));
	free(s);
	for (i = 0; i < 3; i++)
		weft__text_free(r[i]);
	net_free(&nt);
}

/* ---- encodings ---- */

static void test_encode_roundtrip(void **state)
{
	int iter;

	(void)state;
	rng_state = seed ^ 0x5555;
	for (iter = 0; iter < 50 * rounds; iter++) {
		struct weft_text *a, *b, *l;
		struct net nt = {0};
		struct mp_buf enc, v, u;
		size_t i;
		char *sa;

		assert_int_equal(weft__text_new(NULL, 100, 1, &a), WEFT_OK);
		assert_int_equal(weft__text_new(NULL, 200, 1, &b), WEFT_OK);
		for (i = 0; i < 60; i++)
			random_edit(i % 3 ? a : b, &nt);
		sync_full(b, a);
		for (i = 0; i < 30; i++)
			random_edit(a, &nt);
		/* whole document */
		weft__mp_buf_init(&enc, NULL, 0);
		assert_int_equal(weft__text_encode(a, 0, &enc), WEFT_OK);
		assert_int_equal(weft__text_load(NULL, 300, 1, enc.data, enc.len, &l), WEFT_OK);
		sa = text_str(a);
		assert_text(l, sa);
		assert_int_equal(weft__text_check(l), WEFT_OK);
		/* re-encoding the loaded copy gives the same bytes */
		weft__mp_buf_init(&u, NULL, 0);
		assert_int_equal(weft__text_encode(l, 0, &u), WEFT_OK);
		assert_int_equal(u.len, enc.len);
		assert_memory_equal(u.data, enc.data, enc.len);
		weft__mp_buf_free(&u);
		/* without deleted content: smaller, same text, re-encodes stably */
		weft__mp_buf_init(&u, NULL, 0);
		assert_int_equal(weft__text_encode(a, WEFT_TEXT_DROP_DELETED, &u), WEFT_OK);
		weft__text_free(l);
		assert_int_equal(weft__text_load(NULL, 300, 1, u.data, u.len, &l), WEFT_OK);
		assert_text(l, sa);
		assert_int_equal(weft__text_check(l), WEFT_OK);
		weft__mp_buf_init(&v, NULL, 0);
		assert_int_equal(weft__text_encode(l, 0, &v), WEFT_OK);
		assert_int_equal(v.len, u.len);
		assert_memory_equal(v.data, u.data, u.len);
		weft__mp_buf_free(&u);
		weft__mp_buf_free(&v);
		/* since b's version: only what b lacks */
		weft__mp_buf_init(&v, NULL, 0);
		weft__mp_buf_init(&u, NULL, 0);
		weft__text_version(b, &v);
		assert_int_equal(weft__text_encode_since(a, v.data, v.len, &u), WEFT_OK);
		assert_true(u.len < enc.len);
		assert_int_equal(weft__text_apply(b, u.data, u.len), WEFT_OK);
		assert_text(b, sa);
		/* nothing left to send */
		weft__mp_buf_reset(&v);
		weft__mp_buf_reset(&u);
		weft__text_version(b, &v);
		assert_int_equal(weft__text_encode_since(a, v.data, v.len, &u), WEFT_OK);
		assert_true(u.len <= 2);
		free(sa);
		weft__mp_buf_free(&enc);
		weft__mp_buf_free(&v);
		weft__mp_buf_free(&u);
		weft__text_free(a);
		weft__text_free(b);
		weft__text_free(l);
		net_free(&nt);
	}
}

/* Truncations and bit flips of valid updates: never a crash, only OK
 * (valid or buffered) or EPROTO; loads fail with ECORRUPT. */
static void test_hostile_bytes(void **state)
{
	struct weft_text *a, *x;
	struct mp_buf enc;
	size_t i, cut;
	int iter;
	static const uint8_t bad[][12] = {
	    {0x01, 0xce, 0xff, 0xff, 0xff, 0xff}, /* huge agent count */
	    {0x02, 0x00},                         /* unknown format */
	    {0x01, 0x01, 0x05, 0x01, 0x00, 0x00, 0x00, 0xc0, 0xc0, 0xa1, 0x41},
	    {0x01, 0x01, 0x05, 0x01, 0x00, 0x00, 0x07, 0xc0, 0xc0, 0xa1, 0x41},
	    {0x01, 0x01, 0x05, 0x01, 0x00, 0x00, 0x04, 0xc0},
	    {0x01, 0x01, 0x05, 0x01, 0x00, 0x05, 0x05, 0xc0},
	};

	(void)state;
	rng_state = seed ^ 0x777;
	assert_int_equal(weft__text_new(NULL, 1, 1, &a), WEFT_OK);
	for (i = 0; i < 50; i++) {
		struct net nt = {0};
		random_edit(a, &nt);
		net_free(&nt);
	}
	weft__mp_buf_init(&enc, NULL, 0);
	assert_int_equal(weft__text_encode(a, 0, &enc), WEFT_OK);
	for (cut = 0; cut < enc.len; cut++) {
		int rc;
		assert_int_equal(weft__text_new(NULL, 2, 1, &x), WEFT_OK);
		rc = weft__text_apply(x, enc.data, cut);
		assert_true(rc == WEFT_OK || rc == WEFT_EPROTO);
		assert_int_equal(weft__text_check(x), WEFT_OK);
		weft__text_free(x);
	}
	for (iter = 0; iter < 300 * rounds; iter++) {
		uint8_t *m = malloc(enc.len);
		struct weft_text *l = NULL;
		int rc;
		memcpy(m, enc.data, enc.len);
		for (i = 0; i < 1 + rndn(3); i++)
			m[rndn(enc.len)] ^= (uint8_t)(1u << rndn(8));
		assert_int_equal(weft__text_new(NULL, 2, 1, &x), WEFT_OK);
		rc = weft__text_apply(x, m, enc.len);
		assert_true(rc == WEFT_OK || rc == WEFT_EPROTO);
		assert_int_equal(weft__text_check(x), WEFT_OK);
		rc = weft__text_load(NULL, 3, 1, m, enc.len, &l);
		assert_true(rc == WEFT_OK || rc == WEFT_ECORRUPT);
		weft__text_free(l);
		weft__text_free(x);
		free(m);
	}
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		assert_int_equal(weft__text_new(NULL, 2, 1, &x), WEFT_OK);
		assert_int_equal(weft__text_apply(x, bad[i], sizeof(bad[i])), WEFT_EPROTO);
		weft__text_free(x);
	}
	weft__mp_buf_free(&enc);
	weft__text_free(a);
}

/* The same for compact updates applied with their agent supplied: never a
 * crash, only OK or EPROTO, and an update refused changes no text. */
static void test_hostile_compact(void **state)
{
	struct weft_text *a, *b, *x;
	struct mp_buf u, pre;
	size_t i, cut;
	int iter;
	struct {
		uint8_t b[16];
		size_t len;
	} bad[] = {
	    {{0x00, 0x25, 0xc0, 0xc0}, 4},                         /* reserved form 0 */
	    {{0x03, 0x25, 0xc0, 0xc0}, 4},                         /* reserved form 3 */
	    {{0x1f}, 1},                                           /* reserved form 31 */
	    {{0xc0}, 1},                                           /* not a uint */
	    {{0xa1, 0x41}, 2},                                     /* not a uint */
	    {{0x02, 0x00, 0x20, 0x00, 0xc0, 0xc0, 0xa1, 0x41}, 8}, /* empty table */
	    {{0x02, 0xce, 0xff, 0xff, 0xff, 0xff}, 6},             /* huge table */
	    {{0x02, 0x01, 0x04, 0x01}, 4},                         /* lists the agent */
	    /* an op of table agent 1: only the supplied agent's ops */
	    {{0x02, 0x01, 0x07, 0x01, 0x20, 0x01, 0x00, 0xc0, 0xc0, 0xa1, 0x41}, 11},
	    {{0x28, 0x00, 0xc0, 0xc0, 0xa1, 0x41, 0x00}, 7}, /* trailing junk */
	    {{0x2c, 0xc0, 0xc0, 0xa1, 0x41}, 5},             /* IMPLICIT first */
	    {{0x38, 0x01}, 2},                               /* CONT first */
	    {{0x28, 0x00, 0xc0, 0xc0, 0xa2, 0x41, 0x41}, 7}, /* 1 cp, 2 given */
	    {{0x28, 0x00, 0x05, 0x00, 0xc0, 0xa1, 0x41}, 7}, /* agent 5 of 1 */
	    {{0x29, 0x00, 0xc0}, 3},                         /* delete of nothing */
	    {{0x20}, 1},                                     /* truncated */
	};

	(void)state;
	rng_state = seed ^ 0x999;
	/* a is 9/1; b's edit references a's items, so it carries a table */
	assert_int_equal(weft__text_new(NULL, 9, 1, &a), WEFT_OK);
	assert_int_equal(weft__text_new(NULL, 7, 1, &b), WEFT_OK);
	weft__text_set_compact(b, true);
	weft__mp_buf_init(&u, NULL, 0);
	weft__mp_buf_init(&pre, NULL, 0);
	assert_int_equal(weft__text_insert(a, 0, "base text", 9, NULL), WEFT_OK);
	sync_full(a, b);
	assert_int_equal(weft__text_insert(b, 0, "q", 1, NULL), WEFT_OK);
	assert_int_equal(weft__text_delete(b, 7, 2, NULL), WEFT_OK);
	assert_int_equal(weft__text_encode(b, 0, &pre), WEFT_OK);
	assert_int_equal(weft__text_insert(b, 5, "\xc3\xa9\xe4\xb8\xadz", 6, &u), WEFT_OK);
	assert_int_equal(u.data[0], 0x02);
	for (cut = 0; cut <= u.len; cut++) {
		int rc;
		assert_int_equal(weft__text_new(NULL, 2, 1, &x), WEFT_OK);
		assert_int_equal(weft__text_apply(x, pre.data, pre.len), WEFT_OK);
		rc = weft__text_apply_from(x, 7, 1, u.data, cut);
		assert_true(rc == WEFT_OK || rc == WEFT_EPROTO);
		assert_int_equal(weft__text_check(x), WEFT_OK);
		if (cut == u.len) {
			assert_int_equal(rc, WEFT_OK);
			assert_text(x, "qbase\xc3\xa9\xe4\xb8\xadz tt");
		} else if (rc == WEFT_EPROTO) {
			assert_text(x, "qbase tt");
		}
		weft__text_free(x);
	}
	for (iter = 0; iter < 1000 * rounds; iter++) {
		uint8_t *m = malloc(u.len);
		int rc;
		memcpy(m, u.data, u.len);
		for (i = 0; i < 1 + rndn(3); i++)
			m[rndn(u.len)] ^= (uint8_t)(1u << rndn(8));
		assert_int_equal(weft__text_new(NULL, 2, 1, &x), WEFT_OK);
		assert_int_equal(weft__text_apply(x, pre.data, pre.len), WEFT_OK);
		rc = weft__text_apply_from(x, 7, 1, m, u.len);
		assert_true(rc == WEFT_OK || rc == WEFT_EPROTO);
		assert_int_equal(weft__text_check(x), WEFT_OK);
		if (rc == WEFT_EPROTO)
			assert_text(x, "qbase tt");
		weft__text_free(x);
		free(m);
	}
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		assert_int_equal(weft__text_new(NULL, 9, 1, &x), WEFT_OK);
		assert_int_equal(weft__text_insert(x, 0, "abc", 3, NULL), WEFT_OK);
		if (weft__text_apply_from(x, 4, 1, bad[i].b, bad[i].len) != WEFT_EPROTO)
			fail_msg("bad compact vector %zu accepted", i);
		assert_text(x, "abc");
		assert_int_equal(weft__text_pending(x), 0);
		weft__text_free(x);
	}
	weft__mp_buf_free(&u);
	weft__mp_buf_free(&pre);
	weft__text_free(a);
	weft__text_free(b);
}

/* ---- allocation failures ---- */

static int failalloc_scenario(const struct weft_alloc *al)
{
	struct weft_text *a = NULL, *b = NULL, *l = NULL;
	struct mp_buf enc, up;
	int rc, i;

	weft__mp_buf_init(&enc, weft__alloc_default(), 0);
	weft__mp_buf_init(&up, weft__alloc_default(), 0);
	rc = weft__text_new(al, 1, 1, &a);
	if (rc)
		goto out;
	rc = weft__text_new(al, 2, 1, &b);
	if (rc)
		goto out;
	weft__text_set_compact(a, true);
	for (i = 0; i < 120 && rc == WEFT_OK; i++) {
		size_t len = weft__text_len(a);
		weft__mp_buf_reset(&up); /* keep the last edit's update only */
		if (i % 5 == 4)
			rc = weft__text_delete(a, (size_t)(i * 7) % len, 1, &up);
		else
			rc = weft__text_insert(a, (size_t)(i * 13) % (len + 1), "ab\xc3\xa9", 4,
			                       &up);
	}
	if (rc)
		goto out;
	rc = weft__text_insert(b, 0, "zz", 2, NULL);
	if (rc)
		goto out;
	rc = weft__text_encode(a, 0, &enc);
	if (rc)
		goto out;
	/* out of order: the last edit (compact, its agent supplied) first,
	 * buffered */
	rc = weft__text_apply_from(b, 1, 1, up.data, up.len);
	if (rc)
		goto out;
	rc = weft__text_apply(b, enc.data, enc.len);
	if (rc)
		goto out;
	rc = weft__text_load(al, 3, 1, enc.data, enc.len, &l);
out:
	weft__text_free(a);
	weft__text_free(b);
	weft__text_free(l);
	weft__mp_buf_free(&enc);
	weft__mp_buf_free(&up);
	return rc;
}

static void test_alloc_failures(void **state)
{
	struct failalloc fa;
	long n, k;

	(void)state;
	failalloc_init(&fa, 0, 0);
	assert_int_equal(failalloc_scenario(&fa.a), WEFT_OK);
	assert_int_equal(fa.live, 0);
	n = fa.count;
	assert_true(n > 10);
	for (k = 1; k <= n; k++) {
		int rc;
		failalloc_init(&fa, k, 1);
		rc = failalloc_scenario(&fa.a);
		if (rc != WEFT_ENOMEM)
			fail_msg("allocation %ld of %ld: rc %d", k, n, rc);
		assert_int_equal(fa.live, 0);
	}
}

/* With WEFT_TEXT_CORPUS_DIR set, (re)writes the seed corpus of
 * fuzz/fuzz_text.c there (fuzz/corpus/fuzz_text); otherwise does nothing. */
static void corpus_file(const char *dir, const char *name, struct mp_buf *b)
{
	char path[1024];
	FILE *f;

	assert_int_equal(b->err, 0);
	snprintf(path, sizeof(path), "%s/%s", dir, name);
	f = fopen(path, "wb");
	assert_non_null(f);
	assert_int_equal(fwrite(b->data, 1, b->len, f), b->len);
	fclose(f);
	weft__mp_buf_reset(b);
}

static void test_write_corpus(void **state)
{
	const char *dir = getenv("WEFT_TEXT_CORPUS_DIR");
	struct weft_text *a, *b;
	struct mp_buf u, v;
	int i;

	(void)state;
	if (!dir || !*dir)
		return;
	weft__mp_buf_init(&u, NULL, 0);
	weft__mp_buf_init(&v, NULL, 0);
	assert_int_equal(weft__text_new(NULL, 1, 1, &a), WEFT_OK);
	assert_int_equal(weft__text_new(NULL, 2, 1, &b), WEFT_OK);
	assert_int_equal(weft__text_insert(a, 0, "hello", 5, &u), WEFT_OK);
	corpus_file(dir, "insert_run", &u);
	assert_int_equal(weft__text_insert(a, 5, "!", 1, &u), WEFT_OK);
	corpus_file(dir, "insert_append", &u);
	assert_int_equal(weft__text_delete(a, 1, 2, &u), WEFT_OK);
	corpus_file(dir, "delete_fwd", &u);
	assert_int_equal(weft__text_insert(a, 0, "\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80", 9, &u),
	                 WEFT_OK);
	corpus_file(dir, "insert_utf8", &u);
	assert_int_equal(weft__text_delete(a, 3, 1, NULL), WEFT_OK);
	assert_int_equal(weft__text_delete(a, 2, 1, &u), WEFT_OK);
	corpus_file(dir, "delete_back_step", &u);
	assert_int_equal(weft__text_encode(a, 0, &u), WEFT_OK);
	corpus_file(dir, "doc_small", &u);
	assert_int_equal(weft__text_insert(b, 0, "xyz", 3, NULL), WEFT_OK);
	assert_int_equal(weft__text_encode(a, 0, &u), WEFT_OK);
	assert_int_equal(weft__text_apply(b, u.data, u.len), WEFT_OK);
	weft__mp_buf_reset(&u);
	assert_int_equal(weft__text_insert(b, 2, "QQ", 2, NULL), WEFT_OK);
	assert_int_equal(weft__text_delete(b, 0, 4, NULL), WEFT_OK);
	weft__text_version(a, &v);
	assert_int_equal(weft__text_encode_since(b, v.data, v.len, &u), WEFT_OK);
	corpus_file(dir, "since_version", &u);
	assert_int_equal(weft__text_encode(b, 0, &u), WEFT_OK);
	corpus_file(dir, "doc_two_agents", &u);
	for (i = 0; i < 200; i++)
		assert_int_equal(
		    weft__text_insert(b, (size_t)(i * 7) % (weft__text_len(b) + 1), "ab", 2, NULL),
		    WEFT_OK);
	for (i = 0; i < 50; i++)
		assert_int_equal(
		    weft__text_delete(b, (size_t)(i * 11) % weft__text_len(b), 1, NULL), WEFT_OK);
	assert_int_equal(weft__text_encode(b, 0, &u), WEFT_OK);
	corpus_file(dir, "doc_many_runs", &u);
	weft__text_version(a, &u);
	corpus_file(dir, "version_bytes", &u);
	assert_int_equal(weft__text_encode(b, WEFT_TEXT_DROP_DELETED, &u), WEFT_OK);
	corpus_file(dir, "doc_dropped", &u);
	weft__mp_buf_free(&u);
	weft__mp_buf_free(&v);
	weft__text_free(a);
	weft__text_free(b);
}

int main(void)
{
	const char *env = getenv("WEFT_TEST_SEED");
	const char *r = getenv("WEFT_TEST_ROUNDS");
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_typing_patterns),
	    cmocka_unit_test(test_utf8),
	    cmocka_unit_test(test_sequential_reference),
	    cmocka_unit_test(test_long_random_reference),
	    cmocka_unit_test(test_random_position_timing),
	    cmocka_unit_test(test_no_interleaving_forwards),
	    cmocka_unit_test(test_no_interleaving_backwards),
	    cmocka_unit_test(test_no_interleaving_three),
	    cmocka_unit_test(test_encode_roundtrip),
	    cmocka_unit_test(test_hostile_bytes),
	    cmocka_unit_test(test_compact_form),
	    cmocka_unit_test(test_hostile_compact),
	    cmocka_unit_test(test_model_compact),
	    cmocka_unit_test(test_alloc_failures),
	    cmocka_unit_test(test_model_concurrent),
	    cmocka_unit_test(test_write_corpus),
	};

	/* A fixed default seed keeps CI deterministic; set WEFT_TEST_SEED to
	 * explore others. WEFT_TEST_ROUNDS is the number of concurrent
	 * histories, as in the other model tests; every random test scales
	 * with it (10,000 = the default scale). */
	seed = env && *env ? strtoull(env, NULL, 0) : 0x7e47ULL;
	if (!seed)
		seed = 1;
	if (r && atoi(r) > 0)
		rounds = atoi(r) / 10000 > 0 ? atoi(r) / 10000 : 1;
	printf("test_text: seed %llu, rounds %d (WEFT_TEST_SEED / WEFT_TEST_ROUNDS)\n",
	       (unsigned long long)seed, rounds);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
