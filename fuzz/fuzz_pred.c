/*
 * fuzz_pred.c - libFuzzer target for the predicate language (core/pred.h).
 *
 * The input is predicate text, then a NUL byte, then a MessagePack
 * document (no NUL: the document is an empty map). Besides "never crash,
 * never read out of bounds, never leak", it checks these invariants and
 * abort()s when one breaks:
 *  - compiling either succeeds or returns EINVAL/ETOOBIG with a message
 *    that starts with "at " (ENOMEM only when asked for);
 *  - the canonical form of a compiled predicate compiles, formats to the
 *    same bytes, is no longer than WEFT_PRED_MAX_TEXT, and gives the same
 *    result on the document;
 *  - `not (canonical)` gives the negation whenever it compiles;
 *  - evaluation returns OK or EINVAL, and on a document that is one
 *    well-formed map with all parameters bound it never returns EINVAL
 *    unless a parameter used with `in` is not an array;
 *  - failing any one allocation of a compile gives WEFT_ENOMEM and frees
 *    everything;
 *  - the same text as a query: the same round trip, and the document
 *    compares equal to itself.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "weft/weft.h"
#include "core/mp.h"
#include "core/pred.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check(int cond)
{
	if (!cond)
		abort();
}

/* Counts allocations, fails the fail_at-th (1-based; 0 never). */
struct cnt {
	struct weft_alloc a;
	long count, fail_at, live;
};

static void *cnt_malloc(void *ctx, size_t n)
{
	struct cnt *c = ctx;
	void *p;

	if (++c->count == c->fail_at)
		return NULL;
	if ((p = malloc(n)))
		c->live++;
	return p;
}

static void *cnt_realloc(void *ctx, void *old, size_t n)
{
	struct cnt *c = ctx;

	if (!old)
		return cnt_malloc(ctx, n);
	if (++c->count == c->fail_at)
		return NULL;
	return realloc(old, n);
}

static void cnt_free(void *ctx, void *p)
{
	struct cnt *c = ctx;

	if (p)
		c->live--;
	free(p);
}

static void cnt_init(struct cnt *c, long fail_at)
{
	c->a.malloc = cnt_malloc;
	c->a.realloc = cnt_realloc;
	c->a.free = cnt_free;
	c->a.ctx = c;
	c->count = c->live = 0;
	c->fail_at = fail_at;
}

static const uint8_t p_val[] = {0x93, 0x01, 0xa1, 'x', 0xc0}; /* [1, "x", nil] */
static const uint8_t q_val[] = {0xa1, 'x'};                   /* "x" */
static const uint8_t s_val[] = {0xa5, 'a', 'l', 'i', 'c', 'e'};
static const struct weft_pred_param params[] = {
    {"p", 1, p_val, sizeof(p_val)},
    {"q", 1, q_val, sizeof(q_val)},
    {"sub", 3, s_val, sizeof(s_val)},
};
#define NPARAMS (sizeof(params) / sizeof(params[0]))

static bool all_bound(const struct weft_pred *p, bool *in_non_array)
{
	*in_non_array = false;
	for (size_t i = 0; i < weft__pred_param_count(p); i++) {
		const char *n = weft__pred_param_name(p, i);
		bool found = false;

		check(n != NULL);
		for (size_t k = 0; k < NPARAMS; k++)
			found |= strcmp(n, params[k].name) == 0;
		if (!found)
			return false;
		if (strcmp(n, "p") != 0)
			*in_non_array = true; /* may be used with `in`: allowed to fail */
	}
	check(weft__pred_param_name(p, weft__pred_param_count(p)) == NULL);
	return true;
}

static int eval(const struct weft_pred *p, const uint8_t *doc, size_t len, bool *m)
{
	int rc = weft__pred_eval(p, doc, len, params, NPARAMS, m);

	check(rc == WEFT_OK || rc == WEFT_EINVAL);
	return rc;
}

/* The canonical text of p (or of q), then the same checks on it. */
static void round_trip(const struct weft_pred *p, const struct weft_query *q, const uint8_t *doc,
                       size_t len, int rc0, bool m0)
{
	struct mp_buf f1, f2, neg;
	struct weft_pred *p2 = NULL, *pn = NULL;
	struct weft_query *q2 = NULL;
	bool m;

	weft__mp_buf_init(&f1, NULL, 0);
	weft__mp_buf_init(&f2, NULL, 0);
	weft__mp_buf_init(&neg, NULL, 0);
	check((q ? weft__query_format(q, &f1) : weft__pred_format(p, &f1)) == WEFT_OK);
	check(f1.len <= WEFT_PRED_MAX_TEXT);
	check(weft__utf8_valid((const char *)f1.data, f1.len));
	if (q) {
		check(weft__query_parse(NULL, (const char *)f1.data, f1.len, &q2, NULL, 0) ==
		      WEFT_OK);
		check(weft__query_format(q2, &f2) == WEFT_OK);
		check(weft__query_order_count(q2) == weft__query_order_count(q));
		check(weft__query_limit(q2, NULL) == weft__query_limit(q, NULL));
		weft__query_free(q2);
	} else {
		check(weft__pred_compile(NULL, (const char *)f1.data, f1.len, &p2, NULL, 0) ==
		      WEFT_OK);
		check(weft__pred_format(p2, &f2) == WEFT_OK);
		check(weft__pred_param_count(p2) == weft__pred_param_count(p));
		/* same meaning: the same result, or an error both times */
		check(eval(p2, doc, len, &m) == rc0);
		check(rc0 != WEFT_OK || m == m0);
		weft__pred_free(p2);
		/* the negation, when it fits the limits */
		weft__mp_write_raw(&neg, "not (", 5);
		weft__mp_write_raw(&neg, f1.data, f1.len);
		weft__mp_write_raw(&neg, ")", 1);
		check(neg.err == 0);
		if (weft__pred_compile(NULL, (const char *)neg.data, neg.len, &pn, NULL, 0) ==
		    WEFT_OK) {
			int rc = eval(pn, doc, len, &m);

			/* an error is the same error; a skipped branch cannot
			 * differ because `not` evaluates all of its operand */
			check(rc == rc0);
			check(rc != WEFT_OK || m == !m0);
			weft__pred_free(pn);
		}
	}
	check(f1.len == f2.len && (f1.len == 0 || memcmp(f1.data, f2.data, f1.len) == 0));
	weft__mp_buf_free(&f1);
	weft__mp_buf_free(&f2);
	weft__mp_buf_free(&neg);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const uint8_t empty_map[] = {0x80};
	const uint8_t *nul = memchr(data, 0, size);
	const char *text = (const char *)data;
	size_t text_len = nul ? (size_t)(nul - data) : size;
	const uint8_t *doc = nul ? nul + 1 : empty_map;
	size_t doc_len = nul ? size - text_len - 1 : sizeof(empty_map);
	struct weft_pred *p = NULL;
	struct weft_query *q = NULL;
	struct cnt c;
	char err[160];
	bool m = false, in_non_array;
	int rc;

	/* compile */
	cnt_init(&c, 0);
	rc = weft__pred_compile(&c.a, text, text_len, &p, err, sizeof(err));
	check(rc == WEFT_OK || rc == WEFT_EINVAL || rc == WEFT_ETOOBIG);
	if (rc != WEFT_OK) {
		check(p == NULL && c.live == 0);
		check(strncmp(err, "at ", 3) == 0 || strncmp(err, "text longer", 11) == 0 ||
		      strncmp(err, "canonical form", 14) == 0);
	} else {
		long total = c.count;
		struct weft_pred *pf = NULL;
		struct cnt f;

		rc = eval(p, doc, doc_len, &m);
		if (rc == WEFT_EINVAL && all_bound(p, &in_non_array) && !in_non_array &&
		    weft__mp_valid(doc, doc_len, false)) {
			uint32_t n;
			struct mp_reader r;

			weft__mp_reader_init(&r, doc, doc_len);
			check(weft__mp_read_map(&r, &n) != WEFT_OK); /* only a non-map may fail */
		}
		round_trip(p, NULL, doc, doc_len, rc, m);
		/* fail one allocation, picked by the input */
		cnt_init(&f, 1 + (long)(size % (size_t)total));
		check(weft__pred_compile(&f.a, text, text_len, &pf, NULL, 0) == WEFT_ENOMEM);
		check(pf == NULL && f.live == 0);
		weft__pred_free(p);
		check(c.live == 0);
	}

	/* the same text as a query */
	rc = weft__query_parse(NULL, text, text_len, &q, err, sizeof(err));
	check(rc == WEFT_OK || rc == WEFT_EINVAL || rc == WEFT_ETOOBIG);
	if (rc == WEFT_OK) {
		round_trip(weft__query_pred(q), q, doc, doc_len, 0, false);
		check(weft__query_cmp(q, doc, doc_len, doc, doc_len) == 0);
		check(weft__query_cmp(q, doc, doc_len, empty_map, 1) ==
		      -weft__query_cmp(q, empty_map, 1, doc, doc_len));
		weft__query_free(q);
	}
	if (weft__mp_valid(doc, doc_len, false))
		check(weft__pred_value_cmp(doc, doc_len, doc, doc_len) == 0);
	return 0;
}
