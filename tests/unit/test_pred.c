/*
 * test_pred.c - the predicate language (docs/PREDICATES.md): parse
 * successes with their canonical forms, parse failures with exact
 * messages, every limit, evaluation tables over every operator and type
 * pair (missing fields, null, nested and quoted paths, parameters, exact
 * int/float comparison, -0.0, unicode order), precedence, queries (order
 * by, limit, the document comparator), allocation failures, the total
 * order's laws on random values, the canonical form's round trip and the
 * boolean laws (not, De Morgan, and, or, in) on random predicates and
 * random documents, `contains` against a naive search, and
 * weft__doc_write_value on documents built through the docset.
 * Set WEFT_TEST_SEED to replay a seed; WEFT_TEST_ROUNDS to run longer.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "weft/weft.h"
#include "core/doc.h"
#include "core/json.h"
#include "core/mp.h"
#include "core/pred.h"
#include "failalloc.h"
#include "optest.h"

static uint64_t seed = 0x9e3779b97f4a7c15ULL;
static uint64_t rng;
static int rounds = 1;

static uint64_t rnd(void)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return rng;
}

static int setup_seed(void **state)
{
	const char *env = getenv("WEFT_TEST_SEED");
	const char *r = getenv("WEFT_TEST_ROUNDS");

	(void)state;
	if (env)
		seed = strtoull(env, NULL, 0);
	if (r && atoi(r) > 0)
		rounds = atoi(r);
	return 0;
}

static void reseed(const char *test)
{
	rng = seed ? seed : 1;
	printf("%s: seed %llu (WEFT_TEST_SEED to replay)\n", test, (unsigned long long)seed);
}

/* ---- helpers ---- */

static struct weft_pred *compile_ok(const char *text)
{
	struct weft_pred *p = NULL;
	char err[256];
	int rc = weft__pred_compile(NULL, text, strlen(text), &p, err, sizeof(err));

	if (rc != WEFT_OK)
		fail_msg("compile of [%s]: %s (%s)", text, weft_strerror(rc), err);
	return p;
}

/* The canonical text of p, NUL-terminated; caller frees. */
static char *format_pred(const struct weft_pred *p)
{
	struct mp_buf b;
	char *s;

	weft__mp_buf_init(&b, NULL, 0);
	assert_int_equal(weft__pred_format(p, &b), WEFT_OK);
	s = malloc(b.len + 1);
	assert_non_null(s);
	if (b.len)
		memcpy(s, b.data, b.len);
	s[b.len] = '\0';
	weft__mp_buf_free(&b);
	return s;
}

static char *format_query(const struct weft_query *q)
{
	struct mp_buf b;
	char *s;

	weft__mp_buf_init(&b, NULL, 0);
	assert_int_equal(weft__query_format(q, &b), WEFT_OK);
	s = malloc(b.len + 1);
	assert_non_null(s);
	if (b.len)
		memcpy(s, b.data, b.len);
	s[b.len] = '\0';
	weft__mp_buf_free(&b);
	return s;
}

/* Parameters bound from JSON text. */
struct binding {
	const char *name;
	const char *json;
};

struct params {
	struct weft_pred_param p[8];
	struct mp_buf b[8];
	size_t n;
};

static void params_init(struct params *ps, const struct binding *bs)
{
	memset(ps, 0, sizeof(*ps));
	for (size_t i = 0; bs && bs[i].name; i++, ps->n++) {
		weft__mp_buf_init(&ps->b[i], NULL, 0);
		json_mp(bs[i].json, &ps->b[i]);
		ps->p[i].name = bs[i].name;
		ps->p[i].name_len = strlen(bs[i].name);
		ps->p[i].value = ps->b[i].data;
		ps->p[i].value_len = ps->b[i].len;
	}
}

static void params_free(struct params *ps)
{
	for (size_t i = 0; i < ps->n; i++)
		weft__mp_buf_free(&ps->b[i]);
}

/* 1 match, 0 no match, or the error code. */
static int eval_raw(const char *text, const void *doc, size_t len, const struct binding *bs)
{
	struct weft_pred *p = compile_ok(text);
	struct params ps;
	bool m = false;
	int rc;

	params_init(&ps, bs);
	rc = weft__pred_eval(p, doc, len, ps.p, ps.n, &m);
	params_free(&ps);
	weft__pred_free(p);
	return rc == WEFT_OK ? (int)m : rc;
}

static int eval_json(const char *text, const char *doc, const struct binding *bs)
{
	struct mp_buf d;
	int rc;

	weft__mp_buf_init(&d, NULL, 0);
	json_mp(doc, &d);
	rc = eval_raw(text, d.data, d.len, bs);
	weft__mp_buf_free(&d);
	return rc;
}

/* ---- parsing ---- */

static void test_parse_canonical(void **state)
{
	static const char *const cases[][2] = {
	    {"", "true"},
	    {" \t\r\n ", "true"},
	    {"true", "true"},
	    {"false", "false"},
	    {"a==1", "a == 1"},
	    {"a!=1", "a != 1"},
	    {"a<1", "a < 1"},
	    {"a<=1", "a <= 1"},
	    {"a>1", "a > 1"},
	    {"a>=1", "a >= 1"},
	    {"a == 1 and b == 2 or c == 3", "a == 1 and b == 2 or c == 3"},
	    {"a == 1 and (b == 2 or c == 3)", "a == 1 and (b == 2 or c == 3)"},
	    {"(a == 1 and b == 2) and c == 3", "a == 1 and b == 2 and c == 3"},
	    {"a == 1 and (b == 2 and c == 3)", "a == 1 and b == 2 and c == 3"},
	    {"a == 1 or (b == 2 or c == 3)", "a == 1 or b == 2 or c == 3"},
	    {"(a == 1 or b == 2) and c == 3", "(a == 1 or b == 2) and c == 3"},
	    {"((a == 1))", "a == 1"},
	    {"not (a == 1)", "not a == 1"},
	    {"not(a == 1 and b == 2)", "not (a == 1 and b == 2)"},
	    {"not not a == 1", "not not a == 1"},
	    {"not (not (a == 1))", "not not a == 1"},
	    {"(not a == 1) and b == 2", "not a == 1 and b == 2"},
	    {"not true or false", "not true or false"},
	    {"exists ( a . b )", "exists(a.b)"},
	    {"not exists(archived)", "not exists(archived)"},
	    {"meta.\"due date\".day >= 3", "meta.\"due date\".day >= 3"},
	    {"\"a\" == 1", "a == 1"},
	    {"\"and\" == 1", "\"and\" == 1"},
	    {"x.and.order == 1", "x.and.order == 1"},
	    {"\"a.b\" == 1", "\"a.b\" == 1"},
	    {"\"\" == 1", "\"\" == 1"},
	    {"\"_x9\" == 1", "_x9 == 1"},
	    {"\"9x\" == 1", "\"9x\" == 1"},
	    {"\"\\u00e9\\t\" == 1", "\"\xc3\xa9\\t\" == 1"},
	    {"a == 1.0", "a == 1.0"},
	    {"a == 1e2", "a == 100.0"},
	    {"a == 1.5E+300", "a == 1.5e+300"},
	    {"a == -0.0", "a == 0.0"},
	    {"a == -0", "a == 0"},
	    {"a == 1e-7", "a == 1e-7"},
	    {"a == 0.000001", "a == 0.000001"},
	    {"a == 1e21", "a == 1e+21"},
	    {"a == 1e20", "a == 100000000000000000000.0"},
	    {"a == 0.1", "a == 0.1"},
	    {"a == 5e-324", "a == 5e-324"},
	    {"a == 1e-400", "a == 0.0"},
	    {"a == 123456789012345678901234567890e-30", "a == 0.12345678901234568"},
	    {"a == -9223372036854775808", "a == -9223372036854775808"},
	    {"a == 9223372036854775807", "a == 9223372036854775807"},
	    {"a == \"\\u00e9\\n\\\"\\/\\\\\"", "a == \"\xc3\xa9\\n\\\"/\\\\\""},
	    {"a == \"\\ud83d\\ude00\"", "a == \"\xf0\x9f\x98\x80\""},
	    {"a == \"\\u0001\\u001F\x7f\"", "a == \"\\u0001\\u001f\x7f\""},
	    {"a == \"\\b\\f\\r\"", "a == \"\\b\\f\\r\""},
	    {"a in [1,\"x\",[true,null],[]]", "a in [1, \"x\", [true, null], []]"},
	    {"a in []", "a in []"},
	    {"a == [1, [2]]", "a == [1, [2]]"},
	    {"a in $p", "a in $p"},
	    {"a contains $q", "a contains $q"},
	    {"a contains \"x\"", "a contains \"x\""},
	    {"a == null", "a == null"},
	    {"a != true", "a != true"},
	    {"owner == $sub", "owner == $sub"},
	    {"status == \"open\" and (priority >= 3 or tags contains \"urgent\") and not "
	     "exists(archived) and owner == $sub and kind in [\"a\", \"b\", 3]",
	     "status == \"open\" and (priority >= 3 or tags contains \"urgent\") and not "
	     "exists(archived) and owner == $sub and kind in [\"a\", \"b\", 3]"},
	    {"a\n==\n1\nor\tb == 2", "a == 1 or b == 2"},
	};

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct weft_pred *p = compile_ok(cases[i][0]), *p2;
		char *f = format_pred(p), *f2;

		if (strcmp(f, cases[i][1]) != 0)
			fail_msg("[%s] formats as [%s], want [%s]", cases[i][0], f, cases[i][1]);
		p2 = compile_ok(f);
		f2 = format_pred(p2);
		assert_string_equal(f2, f);
		free(f);
		free(f2);
		weft__pred_free(p);
		weft__pred_free(p2);
	}
}

struct perr {
	const char *text;
	int rc;
	const char *msg; /* NULL: only the code and the "at " prefix are checked */
};

static void check_errors(const struct perr *cases, size_t n, bool query)
{
	for (size_t i = 0; i < n; i++) {
		char err[256];
		int rc;

		memset(err, 'x', sizeof(err));
		if (query) {
			struct weft_query *q = (struct weft_query *)1;

			rc = weft__query_parse(NULL, cases[i].text, strlen(cases[i].text), &q, err,
			                       sizeof(err));
			assert_ptr_equal(q, (struct weft_query *)1); /* untouched */
		} else {
			struct weft_pred *p = (struct weft_pred *)1;

			rc = weft__pred_compile(NULL, cases[i].text, strlen(cases[i].text), &p, err,
			                        sizeof(err));
			assert_ptr_equal(p, (struct weft_pred *)1);
		}
		if (rc != cases[i].rc)
			fail_msg("[%s]: rc %d (%s), want %d", cases[i].text, rc, err, cases[i].rc);
		if (cases[i].msg && strcmp(err, cases[i].msg) != 0)
			fail_msg("[%s]: message [%s], want [%s]", cases[i].text, err, cases[i].msg);
		if (!cases[i].msg && strncmp(err, "at ", 3) != 0)
			fail_msg("[%s]: message [%s] has no position", cases[i].text, err);
	}
}

static void test_parse_errors(void **state)
{
	static const struct perr cases[] = {
	    {"a ==", WEFT_EINVAL, "at 1:5 (byte 4): expected a literal or a $parameter after '=='"},
	    {"(a == 1", WEFT_EINVAL, "at 1:8 (byte 7): expected ')' after expression"},
	    {"a = 1", WEFT_EINVAL, "at 1:3 (byte 2): expected '==' (there is no '=' operator)"},
	    {"a == 1 and", WEFT_EINVAL,
	     "at 1:11 (byte 10): expected an expression, found end of input"},
	    {"a", WEFT_EINVAL,
	     "at 1:2 (byte 1): expected '==', '!=', '<', '<=', '>', '>=', 'in' or 'contains' "
	     "after field path"},
	    {"and == 1", WEFT_EINVAL,
	     "at 1:1 (byte 0): expected an expression; 'and' is a reserved word (quote it to use "
	     "it as a key)"},
	    {"a == 1 b == 2", WEFT_EINVAL, "at 1:8 (byte 7): expected 'and', 'or' or end of input"},
	    {"a == 1)", WEFT_EINVAL, "at 1:7 (byte 6): expected 'and', 'or' or end of input"},
	    {"a == 01", WEFT_EINVAL, "at 1:6 (byte 5): invalid number"},
	    {"a == 1.", WEFT_EINVAL, "at 1:6 (byte 5): invalid number"},
	    {"a == .5", WEFT_EINVAL,
	     "at 1:6 (byte 5): expected a literal or a $parameter after '=='"},
	    {"a == 1e", WEFT_EINVAL, "at 1:6 (byte 5): invalid number"},
	    {"a == -x", WEFT_EINVAL, "at 1:6 (byte 5): invalid number"},
	    {"a == 2and b", WEFT_EINVAL, "at 1:6 (byte 5): invalid number"},
	    {"a == 9223372036854775808", WEFT_EINVAL,
	     "at 1:6 (byte 5): integer out of range (int64)"},
	    {"a == -9223372036854775809", WEFT_EINVAL,
	     "at 1:6 (byte 5): integer out of range (int64)"},
	    {"a == 1e999", WEFT_EINVAL, "at 1:6 (byte 5): number out of range (float64)"},
	    {"a == -1.7976931348623159e308", WEFT_EINVAL,
	     "at 1:6 (byte 5): number out of range (float64)"},
	    {"a == \"abc", WEFT_EINVAL, "at 1:6 (byte 5): unterminated string"},
	    {"a == \"abc\\", WEFT_EINVAL, "at 1:6 (byte 5): unterminated string"},
	    {"a == \"\\x\"", WEFT_EINVAL, "at 1:7 (byte 6): invalid escape '\\x' in string"},
	    {"a == \"\\u12\"", WEFT_EINVAL,
	     "at 1:7 (byte 6): invalid \\u escape (expected 4 hex digits)"},
	    {"a == \"\\u12zz\"", WEFT_EINVAL,
	     "at 1:7 (byte 6): invalid \\u escape (expected 4 hex digits)"},
	    {"a == \"\\\x01\"", WEFT_EINVAL, "at 1:7 (byte 6): invalid escape in string"},
	    {"a == \"\\ud800\"", WEFT_EINVAL, "at 1:7 (byte 6): unpaired surrogate in \\u escape"},
	    {"a == \"\\ud800\\u0041\"", WEFT_EINVAL,
	     "at 1:7 (byte 6): unpaired surrogate in \\u escape"},
	    {"a == \"\\udc00\"", WEFT_EINVAL, "at 1:7 (byte 6): unpaired surrogate in \\u escape"},
	    {"a == \"x\x01\"", WEFT_EINVAL,
	     "at 1:8 (byte 7): control character in string (write it as an escape)"},
	    {"a == \"x\n\"", WEFT_EINVAL,
	     "at 1:8 (byte 7): control character in string (write it as an escape)"},
	    {"a == \"\xff\"", WEFT_EINVAL, "at 1:7 (byte 6): invalid UTF-8 in string"},
	    {"a == \"\xc0\xaf\"", WEFT_EINVAL, "at 1:7 (byte 6): invalid UTF-8 in string"},
	    {"a == \"\xed\xa0\x80\"", WEFT_EINVAL, "at 1:7 (byte 6): invalid UTF-8 in string"},
	    {"a == \"\xe2\x82\"", WEFT_EINVAL, "at 1:7 (byte 6): invalid UTF-8 in string"},
	    {"\xc3\xa9 == 1", WEFT_EINVAL,
	     "at 1:1 (byte 0): unexpected byte 0xC3 outside a string"},
	    {"a == 1 # c", WEFT_EINVAL, "at 1:8 (byte 7): unexpected character '#'"},
	    {"a ==\n  $", WEFT_EINVAL, "at 2:3 (byte 7): expected a parameter name after '$'"},
	    {"a == $1", WEFT_EINVAL, "at 1:6 (byte 5): expected a parameter name after '$'"},
	    {"a in 3", WEFT_EINVAL, "at 1:6 (byte 5): expected '[' or a $parameter after 'in'"},
	    {"a in [1, 2", WEFT_EINVAL, "at 1:11 (byte 10): expected ',' or ']' in list"},
	    {"a in [1 2]", WEFT_EINVAL, "at 1:9 (byte 8): expected ',' or ']' in list"},
	    {"a in [1,]", WEFT_EINVAL, "at 1:9 (byte 8): expected a literal value"},
	    {"a in [$p]", WEFT_EINVAL, "at 1:7 (byte 6): parameters are not allowed inside a list"},
	    {"exists a", WEFT_EINVAL, "at 1:8 (byte 7): expected '(' after 'exists'"},
	    {"exists(a", WEFT_EINVAL, "at 1:9 (byte 8): expected ')' after field path"},
	    {"exists()", WEFT_EINVAL, "at 1:8 (byte 7): expected a field path"},
	    {"a. == 1", WEFT_EINVAL, "at 1:4 (byte 3): expected a key after '.'"},
	    {"a.1 == 1", WEFT_EINVAL, "at 1:3 (byte 2): expected a key after '.'"},
	    {"a == 1 order by a", WEFT_EINVAL,
	     "at 1:8 (byte 7): 'order by' and 'limit' are only allowed in a query"},
	    {"order by a", WEFT_EINVAL,
	     "at 1:1 (byte 0): 'order by' and 'limit' are only allowed in a query"},
	    {"limit 3", WEFT_EINVAL,
	     "at 1:1 (byte 0): 'order by' and 'limit' are only allowed in a query"},
	    {"1 == a", WEFT_EINVAL, "at 1:1 (byte 0): expected an expression"},
	    {"a == b", WEFT_EINVAL,
	     "at 1:6 (byte 5): expected a literal or a $parameter after '=='"},
	    {"a ! b", WEFT_EINVAL, "at 1:3 (byte 2): expected '!=' (negation is 'not')"},
	    {"a == 1 AND b == 2", WEFT_EINVAL,
	     "at 1:8 (byte 7): expected 'and', 'or' or end of input"},
	    {"a == 1 &&", WEFT_EINVAL, "at 1:8 (byte 7): unexpected character '&'"},
	    {"NOT a == 1", WEFT_EINVAL,
	     "at 1:5 (byte 4): expected '==', '!=', '<', '<=', '>', '>=', 'in' or 'contains' after "
	     "field path"},
	    {"not", WEFT_EINVAL, "at 1:4 (byte 3): expected an expression, found end of input"},
	    {"()", WEFT_EINVAL, "at 1:2 (byte 1): expected an expression"},
	    {"a contains", WEFT_EINVAL,
	     "at 1:11 (byte 10): expected a literal or a $parameter after 'contains'"},
	    {"\"\xc3\xa9\" == 1 and )", WEFT_EINVAL, "at 1:14 (byte 14): expected an expression"},
	    {"a == 1 and\n\n  b ==", WEFT_EINVAL,
	     "at 3:7 (byte 18): expected a literal or a $parameter after '=='"},
	    {"a == 1 and\r\n b == )", WEFT_EINVAL,
	     "at 2:7 (byte 18): expected a literal or a $parameter after '=='"},
	    {"true == 1", WEFT_EINVAL, "at 1:6 (byte 5): expected 'and', 'or' or end of input"},
	    {"a == nul", WEFT_EINVAL,
	     "at 1:6 (byte 5): expected a literal or a $parameter after '=='"},
	    {"a == 1 and \x00", WEFT_EINVAL, NULL},
	};

	(void)state;
	check_errors(cases, sizeof(cases) / sizeof(cases[0]), false);
}

static void test_parse_error_buffer(void **state)
{
	struct weft_pred *p = NULL;
	char small[8];
	const char nul_text[] = "a == \"x\0y\"";
	int rc;

	(void)state;
	/* truncated, still NUL-terminated */
	memset(small, 'x', sizeof(small));
	assert_int_equal(weft__pred_compile(NULL, "a ==", 4, &p, small, sizeof(small)),
	                 WEFT_EINVAL);
	assert_string_equal(small, "at 1:5 ");
	/* no buffer at all */
	assert_int_equal(weft__pred_compile(NULL, "a ==", 4, &p, NULL, 0), WEFT_EINVAL);
	assert_null(p);
	/* bad arguments */
	assert_int_equal(weft__pred_compile(NULL, NULL, 3, &p, small, sizeof(small)), WEFT_EINVAL);
	assert_int_equal(weft__pred_compile(NULL, "a", 1, NULL, NULL, 0), WEFT_EINVAL);
	/* NULL text of length 0 is the empty predicate */
	assert_int_equal(weft__pred_compile(NULL, NULL, 0, &p, NULL, 0), WEFT_OK);
	weft__pred_free(p);
	/* a raw NUL inside a string is a control character; the length counts */
	p = NULL;
	rc = weft__pred_compile(NULL, nul_text, sizeof(nul_text) - 1, &p, NULL, 0);
	assert_int_equal(rc, WEFT_EINVAL);
	/* an escaped one is fine, and text after the length is ignored */
	assert_int_equal(weft__pred_compile(NULL, "a == \"\\u0000\" garbage", 13, &p, NULL, 0),
	                 WEFT_OK);
	{
		char *f = format_pred(p);

		assert_string_equal(f, "a == \"\\u0000\"");
		free(f);
	}
	weft__pred_free(p);
	weft__pred_free(NULL);
	weft__query_free(NULL);
}

/* A string of n copies of s. */
static char *repeat(const char *pre, const char *s, size_t n, const char *post)
{
	size_t ls = strlen(s), lp = strlen(pre), lq = strlen(post);
	char *r = malloc(lp + ls * n + lq + 1), *w = r;

	assert_non_null(r);
	memcpy(w, pre, lp);
	w += lp;
	for (size_t i = 0; i < n; i++, w += ls)
		memcpy(w, s, ls);
	memcpy(w, post, lq + 1);
	return r;
}

static int try_compile(const char *text, char *err, size_t errlen)
{
	struct weft_pred *p = NULL;
	int rc = weft__pred_compile(NULL, text, strlen(text), &p, err, errlen);

	weft__pred_free(p);
	return rc;
}

static void expect_limit(const char *text, int want, const char *msg_part)
{
	char err[256];
	int rc = try_compile(text, err, sizeof(err));

	if (rc != want)
		fail_msg("rc %d (%s), want %d, for text of %zu bytes", rc, err, want, strlen(text));
	if (msg_part && !strstr(err, msg_part))
		fail_msg("message [%s] lacks [%s]", err, msg_part);
}

static void test_limits(void **state)
{
	char *t, *u;
	char key[WEFT_PRED_MAX_KEY + 16];

	(void)state;
	/* text length */
	t = repeat("a == 1", " ", WEFT_PRED_MAX_TEXT - 6, "");
	expect_limit(t, WEFT_OK, NULL);
	free(t);
	t = repeat("a == 1", " ", WEFT_PRED_MAX_TEXT - 5, "");
	expect_limit(t, WEFT_ETOOBIG, "text longer than 65536 bytes");
	free(t);

	/* nesting: parentheses, not, lists, and a mix */
	t = repeat("", "(", 32, "a == 1");
	u = repeat(t, ")", 32, "");
	expect_limit(u, WEFT_OK, NULL);
	free(t);
	free(u);
	t = repeat("", "(", 33, "a == 1");
	u = repeat(t, ")", 33, "");
	expect_limit(u, WEFT_ETOOBIG, "at 1:33 (byte 32): nesting deeper than 32 levels");
	free(t);
	free(u);
	t = repeat("", "not ", 32, "a == 1");
	expect_limit(t, WEFT_OK, NULL);
	free(t);
	t = repeat("", "not ", 33, "a == 1");
	expect_limit(t, WEFT_ETOOBIG, "nesting deeper than 32 levels");
	free(t);
	t = repeat("a in ", "[", 32, "");
	u = repeat(t, "]", 32, "");
	expect_limit(u, WEFT_OK, NULL);
	free(t);
	free(u);
	t = repeat("a in ", "[", 33, "");
	u = repeat(t, "]", 33, "");
	expect_limit(u, WEFT_ETOOBIG, "nesting deeper than 32 levels");
	free(t);
	free(u);
	t = repeat("", "not (", 16, "a in [1]");
	u = repeat(t, ")", 16, "");
	expect_limit(u, WEFT_ETOOBIG, "nesting deeper than 32 levels");
	free(t);
	free(u);
	t = repeat("", "not (", 15, "a in [1]");
	u = repeat(t, ")", 15, "");
	expect_limit(u, WEFT_OK, NULL);
	free(t);
	free(u);
	/* 100k parentheses: an error, not a stack overflow */
	t = repeat("", "(", 60000, "");
	expect_limit(t, WEFT_ETOOBIG, "nesting deeper than 32 levels");
	free(t);

	/* nodes: n comparisons joined by `or` are 2n - 1 nodes */
	t = repeat("a == 1", " or a == 1", 2047, "");
	expect_limit(t, WEFT_OK, NULL);
	free(t);
	t = repeat("a == 1", " or a == 1", 2048, "");
	expect_limit(t, WEFT_ETOOBIG, "more than 4096 nodes");
	free(t);

	/* list length */
	t = repeat("a in [0", ",1", WEFT_PRED_MAX_LIST - 1, "]");
	expect_limit(t, WEFT_OK, NULL);
	free(t);
	t = repeat("a in [0", ",1", WEFT_PRED_MAX_LIST, "]");
	expect_limit(t, WEFT_ETOOBIG, "list longer than 1024 elements");
	free(t);

	/* path segments */
	t = repeat("a", ".a", WEFT_PRED_MAX_PATH - 1, " == 1");
	expect_limit(t, WEFT_OK, NULL);
	free(t);
	t = repeat("a", ".a", WEFT_PRED_MAX_PATH, " == 1");
	expect_limit(t, WEFT_ETOOBIG, "field path longer than 32 keys");
	free(t);

	/* key length, unquoted and quoted (counted after unescaping) */
	memset(key, 'k', WEFT_PRED_MAX_KEY);
	key[WEFT_PRED_MAX_KEY] = '\0';
	t = repeat(key, "", 0, " == 1");
	expect_limit(t, WEFT_OK, NULL);
	free(t);
	t = repeat(key, "", 0, "k == 1");
	expect_limit(t, WEFT_ETOOBIG, "key longer than 1024 bytes");
	free(t);
	t = repeat("\"", "\\u0041", WEFT_PRED_MAX_KEY, "\" == 1");
	expect_limit(t, WEFT_OK, NULL);
	free(t);
	t = repeat("x.\"", "\\u0041", WEFT_PRED_MAX_KEY + 1, "\" == 1");
	expect_limit(t, WEFT_ETOOBIG, "at 1:3 (byte 2): key longer than 1024 bytes");
	free(t);

	/* distinct parameters and parameter names */
	{
		char buf[4096];
		size_t w = 0;

		for (int i = 0; i < WEFT_PRED_MAX_PARAMS; i++)
			w += (size_t)snprintf(buf + w, sizeof(buf) - w, "%sa == $p%d",
			                      i ? " or " : "", i);
		expect_limit(buf, WEFT_OK, NULL);
		/* reusing one is free */
		snprintf(buf + w, sizeof(buf) - w, " or b == $p0");
		expect_limit(buf, WEFT_OK, NULL);
		snprintf(buf + w, sizeof(buf) - w, " or b == $extra");
		expect_limit(buf, WEFT_ETOOBIG, "more than 32 distinct parameters");
	}
	memset(key, 'n', WEFT_PRED_MAX_PARAM_NAME);
	key[WEFT_PRED_MAX_PARAM_NAME] = '\0';
	t = repeat("a == $", key, 1, "");
	expect_limit(t, WEFT_OK, NULL);
	free(t);
	t = repeat("a == $n", key, 1, "");
	expect_limit(t, WEFT_ETOOBIG, "parameter name longer than 64 bytes");
	free(t);

	/* the canonical form must fit too: 1e20 prints as 100000000000000000000.0 */
	t = repeat("a in [1e20", ",1e20", 1023, "]");
	u = malloc(3 * strlen(t) + 16);
	assert_non_null(u);
	sprintf(u, "%s or %s or %s", t, t, t);
	assert_true(strlen(u) < WEFT_PRED_MAX_TEXT);
	expect_limit(u, WEFT_ETOOBIG, "canonical form longer than 65536 bytes");
	sprintf(u, "%s or %s", t, t);
	expect_limit(u, WEFT_OK, NULL);
	free(t);
	free(u);
}

/* ---- evaluation ---- */

static const char doc_main[] =
    "{\"i\": 2, \"neg\": -2, \"f\": 1.5, \"fl\": 2.0, \"s\": \"abc\", \"t\": true, \"fa\": false,"
    " \"n\": null, \"arr\": [1, 2], \"o\": {\"x\": 1, \"y\": {\"z\": \"deep\"}},"
    " \"tags\": [\"urgent\", \"b\", 3], \"e\": \"\", \"u\": \"\\u00e9\","
    " \"emoji\": \"\\ud83d\\ude00\", \"big\": 9007199254740993, \"big2\": 9007199254740992,"
    " \"imax\": 9223372036854775807, \"imin\": -9223372036854775808, \"z\": -0.0,"
    " \"due date\": {\"day\": 3}, \"a.b\": 1, \"and\": 7, \"\": 5, \"nested\": [[1, 2], [3]],"
    " \"objs\": [{\"k\": 1}], \"long\": \"the quick brown fox\"}";

struct ecase {
	const char *pred;
	int want; /* 1, 0 or an error code */
};

static void run_ecases(const char *doc, const struct ecase *cases, size_t n,
                       const struct binding *bs)
{
	for (size_t i = 0; i < n; i++) {
		int got = eval_json(cases[i].pred, doc, bs);

		if (got != cases[i].want)
			fail_msg("[%s] on %s: got %d, want %d", cases[i].pred, doc, got,
			         cases[i].want);
		/* `not p` is the negation wherever p evaluates */
		if (got == 0 || got == 1) {
			char buf[512];

			snprintf(buf, sizeof(buf), "not (%s)", cases[i].pred);
			assert_int_equal(eval_json(buf, doc, bs), !got);
		}
	}
}

static void test_eval_types(void **state)
{
	static const struct ecase cases[] = {
	    /* integers and floats */
	    {"i == 2", 1},
	    {"i == 2.0", 1},
	    {"i != 2", 0},
	    {"i != 3", 1},
	    {"i < 3", 1},
	    {"i < 2", 0},
	    {"i <= 2", 1},
	    {"i > 1", 1},
	    {"i > 2", 0},
	    {"i >= 2", 1},
	    {"i >= 2.5", 0},
	    {"i < 2.5", 1},
	    {"i > 1.5", 1},
	    {"i > 1.9999999999999998", 1},
	    {"neg < -1.5", 1},
	    {"neg > -2.5", 1},
	    {"neg == -2.0", 1},
	    {"neg < -2.0", 0},
	    {"f == 1.5", 1},
	    {"f > 1", 1},
	    {"f < 2", 1},
	    {"f >= 1.5", 1},
	    {"fl == 2", 1},
	    {"fl >= 2", 1},
	    {"fl > 2", 0},
	    /* 2^53 + 1 is not a double: exact comparison, no rounding */
	    {"big == 9007199254740992.0", 0},
	    {"big > 9007199254740992.0", 1},
	    {"big == 9007199254740993", 1},
	    {"big == 9007199254740993.0", 0}, /* the literal rounds to 2^53 */
	    {"big > 9007199254740993.0", 1},
	    {"big < 9007199254740994.0", 1},
	    {"big2 == 9007199254740992.0", 1},
	    {"big2 < 9007199254740993", 1},
	    {"big2 in [9007199254740992.0]", 1},
	    {"big in [9007199254740992.0]", 0},
	    /* INT64_MAX against 2^63 (what 9223372036854775807.0 reads as) */
	    {"imax < 9223372036854775807.0", 1},
	    {"imax == 9223372036854775807", 1},
	    {"imax < 9.3e18", 1},
	    {"imax > 9.2e18", 1},
	    {"imax > 9223372036854774784.0", 1}, /* the double just below 2^63 */
	    {"imin == -9223372036854775808", 1},
	    {"imin == -9223372036854775808.0", 1},
	    {"imin <= -9.223372036854775808e18", 1},
	    {"imin < -9223372036854775807", 1},
	    {"imin > -1e19", 1},
	    {"imin < -1e19", 0},
	    {"imin < -9223372036854774784.0", 1},
	    /* -0.0 is 0 */
	    {"z == 0", 1},
	    {"z == 0.0", 1},
	    {"z == -0.0", 1},
	    {"z == -0", 1},
	    {"z < 0", 0},
	    {"z >= 0", 1},
	    {"z <= 0.0", 1},
	    {"z in [0]", 1},
	    /* different types: == false, != true, ordering false both ways */
	    {"i == \"2\"", 0},
	    {"i != \"2\"", 1},
	    {"i < \"3\"", 0},
	    {"i >= \"3\"", 0},
	    {"s > 1", 0},
	    {"s < 1", 0},
	    {"t == 1", 0},
	    {"t > 0", 0},
	    {"n == 0", 0},
	    {"n == false", 0},
	    {"fa == 0", 0},
	    {"e == null", 0},
	    {"arr < 5", 0},
	    {"arr > 5", 0},
	    {"o == 1", 0},
	    {"o != 1", 1},
	    {"o > [1]", 0},
	    {"o < [1]", 0},
	    {"o == null", 0},
	    /* strings: UTF-8 bytes = code points */
	    {"s == \"abc\"", 1},
	    {"s != \"abc\"", 0},
	    {"s < \"abd\"", 1},
	    {"s > \"ab\"", 1},
	    {"s < \"abcd\"", 1},
	    {"s > \"ABC\"", 1},
	    {"s < \"b\"", 1},
	    {"s >= \"abc\"", 1},
	    {"s <= \"abb\"", 0},
	    {"u > \"z\"", 1},
	    {"u == \"\\u00e9\"", 1},
	    {"u == \"\xc3\xa9\"", 1},
	    {"u == \"e\\u0301\"", 0},   /* no normalisation */
	    {"emoji > \"\\uffff\"", 1}, /* code point order, not UTF-16 order */
	    {"emoji > \"\\ufb01\"", 1},
	    {"emoji == \"\\ud83d\\ude00\"", 1},
	    {"e == \"\"", 1},
	    {"e < \"a\"", 1},
	    {"e < \"\\u0000\"", 1},
	    /* booleans */
	    {"t == true", 1},
	    {"t != true", 0},
	    {"t > false", 1},
	    {"fa < true", 1},
	    {"fa >= false", 1},
	    {"t < true", 0},
	    {"t <= true", 1},
	    {"fa == false", 1},
	    /* null */
	    {"n == null", 1},
	    {"n != null", 0},
	    {"n <= null", 1},
	    {"n < null", 0},
	    {"n > null", 0},
	    {"n >= null", 1},
	    {"n < 1", 0},
	    {"exists(n)", 1},
	    {"n in [null]", 1},
	    {"n in [0, false, \"\"]", 0},
	    /* missing fields */
	    {"m == null", 0},
	    {"m != null", 1},
	    {"m == 1", 0},
	    {"m != 1", 1},
	    {"m < 1", 0},
	    {"m <= 1", 0},
	    {"m > 1", 0},
	    {"m >= 1", 0},
	    {"exists(m)", 0},
	    {"m in [null, 1]", 0},
	    {"m contains 1", 0},
	    {"m contains \"\"", 0},
	    {"o.q == 1", 0},
	    {"o.q != 1", 1},
	    {"s.x == 1", 0}, /* s is a string: nothing below it */
	    {"s.x != 1", 1},
	    {"exists(s.x)", 0},
	    {"arr.\"0\" == 1", 0}, /* paths do not index arrays */
	    {"objs.k == 1", 0},
	    {"exists(o)", 1},
	    {"exists(o.y.z)", 1},
	    {"o.y.z == \"deep\"", 1},
	    {"o.x == 1", 1},
	    {"exists(o.y.q)", 0},
	    {"exists(o.x.y.z)", 0},
	    /* arrays */
	    {"arr == [1, 2]", 1},
	    {"arr == [1.0, 2.0]", 1},
	    {"arr != [1, 2]", 0},
	    {"arr == [2, 1]", 0},
	    {"arr < [1, 3]", 1},
	    {"arr > [1]", 1},
	    {"arr < [1, 2, 0]", 1},
	    {"arr > []", 1},
	    {"arr < [1, \"a\"]", 1}, /* 2 < "a" in the total order */
	    {"arr == []", 0},
	    {"arr contains 2", 1},
	    {"arr contains 2.0", 1},
	    {"arr contains 3", 0},
	    {"arr contains [1]", 0},
	    {"arr in [[1, 2], 3]", 1},
	    {"arr in [[1, 2.0]]", 1},
	    {"arr in [[1]]", 0},
	    {"nested contains [3]", 1},
	    {"nested contains [1, 2]", 1},
	    {"nested contains [1]", 0},
	    {"nested == [[1, 2], [3]]", 1},
	    {"nested > [[1, 2], [2, 9]]", 1},
	    /* contains on sets (arrays) and strings */
	    {"tags contains \"urgent\"", 1},
	    {"tags contains \"urg\"", 0},
	    {"tags contains 3", 1},
	    {"tags contains 3.0", 1},
	    {"tags contains \"3\"", 0},
	    {"s contains \"bc\"", 1},
	    {"s contains \"abc\"", 1},
	    {"s contains \"\"", 1},
	    {"e contains \"\"", 1},
	    {"e contains \"a\"", 0},
	    {"s contains \"abcd\"", 0},
	    {"s contains \"ac\"", 0},
	    {"long contains \"brown f\"", 1},
	    {"long contains \"brown  f\"", 0},
	    {"u contains \"\\u00e9\"", 1},
	    {"emoji contains \"\\ud83d\\ude00\"", 1},
	    {"s contains 1", 0},
	    {"s contains [\"a\"]", 0},
	    {"i contains 2", 0},
	    {"t contains true", 0},
	    {"o contains \"x\"", 0},
	    {"n contains null", 0},
	    /* in */
	    {"i in [1, 2, 3]", 1},
	    {"i in [2.0]", 1},
	    {"i in []", 0},
	    {"i in [\"2\"]", 0},
	    {"s in [\"abc\"]", 1},
	    {"s in [\"ab\", 1]", 0},
	    {"t in [true]", 1},
	    {"t in [1]", 0},
	    {"o in [1, \"x\"]", 0},
	    /* keys: quoted, dotted, reserved, empty, escaped */
	    {"\"due date\".day == 3", 1},
	    {"\"due date\".\"day\" == 3", 1},
	    {"\"a.b\" == 1", 1},
	    {"a.b == 1", 0},
	    {"\"and\" == 7", 1},
	    {"\"\" == 5", 1},
	    {"\"\\u0061nd\" == 7", 1},
	    {"\"\\u0069\" == 2", 1},
	    {"I == 2", 0}, /* keys are case-sensitive */
	};

	(void)state;
	run_ecases(doc_main, cases, sizeof(cases) / sizeof(cases[0]), NULL);
}

static void test_eval_precedence(void **state)
{
	static const struct {
		const char *doc, *pred;
		int want;
	} cases[] = {
	    /* and binds tighter than or */
	    {"{\"a\":1,\"b\":0,\"c\":0}", "a == 1 or b == 1 and c == 1", 1},
	    {"{\"a\":1,\"b\":0,\"c\":0}", "(a == 1 or b == 1) and c == 1", 0},
	    {"{\"a\":0,\"b\":1,\"c\":1}", "a == 1 or b == 1 and c == 1", 1},
	    {"{\"a\":0,\"b\":1,\"c\":0}", "a == 1 or b == 1 and c == 1", 0},
	    {"{\"a\":0,\"b\":1,\"c\":0}", "b == 1 and c == 1 or a == 0", 1},
	    {"{\"a\":0,\"b\":1,\"c\":0}", "b == 1 and (c == 1 or a == 1)", 0},
	    /* not binds tighter than and / or, looser than comparison */
	    {"{\"a\":0,\"b\":1}", "not a == 1 and b == 1", 1},
	    {"{\"a\":1,\"b\":1}", "not a == 1 and b == 1", 0},
	    {"{\"a\":1,\"b\":1}", "not a == 1 or b == 1", 1},
	    {"{\"a\":1,\"b\":1}", "not (a == 1 or b == 1)", 0},
	    {"{\"a\":1,\"b\":0}", "not (a == 1 and b == 1)", 1},
	    {"{\"a\":1}", "not not a == 1", 1},
	    {"{\"a\":1}", "not not not a == 1", 0},
	    {"{}", "true", 1},
	    {"{}", "", 1},
	    {"{}", "false", 0},
	    {"{}", "not false and true", 1},
	    {"{}", "false or false or true", 1},
	    {"{}", "true and true and false", 0},
	};

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		int got = eval_json(cases[i].pred, cases[i].doc, NULL);

		if (got != cases[i].want)
			fail_msg("[%s] on %s: got %d, want %d", cases[i].pred, cases[i].doc, got,
			         cases[i].want);
	}
}

static void test_eval_params(void **state)
{
	static const struct binding bs[] = {
	    {"sub", "\"alice\""},
	    {"list", "[1, \"x\", null]"},
	    {"m", "{\"b\": 2, \"a\": 1}"},
	    {"num", "2.0"},
	    {"sub", "\"ignored: the first binding counts\""},
	    {"unused", "3"},
	    {NULL, NULL},
	};
	static const struct ecase cases[] = {
	    {"owner == $sub", 1},
	    {"owner != $sub", 0},
	    {"members contains $sub", 1},
	    {"title contains $sub", 1},
	    {"x in $list", 1},
	    {"owner in $list", 0},
	    {"gone in $list", 0},
	    {"n in $list", 1},
	    {"obj == $m", 1}, /* maps compare by content, not key order */
	    {"obj2 == $m", 0},
	    {"obj2 > $m", 1},
	    {"obj3 < $m", 1},
	    {"x == $num", 0},
	    {"two == $num", 1},
	    {"two >= $num", 1},
	    {"list == $list", 1},
	    {"list contains $num", 0},
	    {"$sub == 1", WEFT_EINVAL}, /* not reached: compile fails; see below */
	};
	static const char doc[] =
	    "{\"owner\": \"alice\", \"members\": [\"bob\", \"alice\"], \"title\": \"hi alice!\","
	    " \"x\": 1, \"n\": null, \"two\": 2, \"obj\": {\"a\": 1, \"b\": 2},"
	    " \"obj2\": {\"a\": 1, \"b\": 3}, \"obj3\": {\"a\": 1}, \"list\": [1, \"x\", null]}";
	struct weft_pred *p;
	struct mp_buf d;
	bool m = true;
	char err[128];

	(void)state;
	run_ecases(doc, cases, sizeof(cases) / sizeof(cases[0]) - 1, bs);
	assert_int_equal(
	    try_compile(cases[sizeof(cases) / sizeof(cases[0]) - 1].pred, err, sizeof(err)),
	    WEFT_EINVAL);

	/* an unbound parameter is an error even when the document is empty
	 * or the branch is never reached */
	{
		static const struct binding only_sub[] = {{"sub", "\"alice\""}, {NULL, NULL}};
		static const struct binding list_not_array[] = {
		    {"sub", "\"alice\""}, {"list", "\"x\""}, {NULL, NULL}};

		assert_int_equal(eval_json("owner == $sub", "{}", NULL), WEFT_EINVAL);
		assert_int_equal(eval_json("true or owner == $other", doc, only_sub), WEFT_EINVAL);
		assert_int_equal(eval_json("owner == $sub", doc, only_sub), 1);
		/* `in $p` needs an array, checked up front */
		assert_int_equal(eval_json("true or gone in $list", doc, list_not_array),
		                 WEFT_EINVAL);
		/* the same parameter elsewhere may be anything */
		assert_int_equal(eval_json("x == $list", "{\"x\": \"x\"}", list_not_array), 1);
	}

	/* malformed or trailing bytes in a parameter value */
	weft__mp_buf_init(&d, NULL, 0);
	json_mp(doc, &d);
	p = compile_ok("owner == $sub");
	{
		const uint8_t trunc[] = {0xa5, 'a', 'l'};
		const uint8_t trailing[] = {0xa1, 'a', 0xc0};
		const uint8_t bad_utf8[] = {0xa1, 0xff};
		struct weft_pred_param pp = {"sub", 3, trunc, sizeof(trunc)};

		assert_int_equal(weft__pred_eval(p, d.data, d.len, &pp, 1, &m), WEFT_EINVAL);
		pp.value = trailing;
		pp.value_len = sizeof(trailing);
		assert_int_equal(weft__pred_eval(p, d.data, d.len, &pp, 1, &m), WEFT_EINVAL);
		pp.value = bad_utf8;
		pp.value_len = sizeof(bad_utf8);
		assert_int_equal(weft__pred_eval(p, d.data, d.len, &pp, 1, &m), WEFT_EINVAL);
		pp.value = NULL;
		pp.value_len = 0;
		assert_int_equal(weft__pred_eval(p, d.data, d.len, &pp, 1, &m), WEFT_EINVAL);
		pp.value = trailing;
		pp.value_len = 2; /* "a" */
		m = true;
		assert_int_equal(weft__pred_eval(p, d.data, d.len, &pp, 1, &m), WEFT_OK);
		assert_false(m);
		/* names compare by length too */
		pp.name = "subx";
		pp.name_len = 3;
		assert_int_equal(weft__pred_eval(p, d.data, d.len, &pp, 1, &m), WEFT_OK);
		pp.name_len = 4;
		assert_int_equal(weft__pred_eval(p, d.data, d.len, &pp, 1, &m), WEFT_EINVAL);
	}
	weft__pred_free(p);
	weft__mp_buf_free(&d);

	/* the parameter list */
	p = compile_ok("a == $x and b in $y or c == $x or d contains $z_9");
	assert_int_equal(weft__pred_param_count(p), 3);
	assert_string_equal(weft__pred_param_name(p, 0), "x");
	assert_string_equal(weft__pred_param_name(p, 1), "y");
	assert_string_equal(weft__pred_param_name(p, 2), "z_9");
	assert_null(weft__pred_param_name(p, 3));
	weft__pred_free(p);
	p = compile_ok("a == 1");
	assert_int_equal(weft__pred_param_count(p), 0);
	assert_null(weft__pred_param_name(p, 0));
	weft__pred_free(p);
}

/* Documents the JSON reader cannot make: uint64, NaN, infinities, float32,
 * binaries, non-string keys, duplicate keys, malformed bytes. */
static void test_eval_raw_docs(void **state)
{
	struct mp_buf b;
	double nan_v = nan(""), inf_v = HUGE_VAL;

	(void)state;
	weft__mp_buf_init(&b, NULL, 0);
	weft__mp_write_map(&b, 9);
	weft__mp_write_cstr(&b, "u");
	weft__mp_write_uint(&b, UINT64_MAX);
	weft__mp_write_cstr(&b, "u63");
	weft__mp_write_uint(&b, (uint64_t)1 << 63);
	weft__mp_write_cstr(&b, "nan");
	weft__mp_write_double(&b, nan_v);
	weft__mp_write_cstr(&b, "inf");
	weft__mp_write_double(&b, inf_v);
	weft__mp_write_cstr(&b, "ninf");
	weft__mp_write_double(&b, -inf_v);
	weft__mp_write_cstr(&b, "f32");
	weft__mp_write_raw(&b, "\xca\x3f\xc0\x00\x00", 5); /* float32 1.5 */
	weft__mp_write_cstr(&b, "bin");
	weft__mp_write_bin(&b, "ab", 2);
	weft__mp_write_int(&b, 7); /* a non-string key is skipped */
	weft__mp_write_int(&b, 8);
	weft__mp_write_cstr(&b, "dup");
	weft__mp_write_int(&b, 1);
	/* (the ninth entry: "dup" again, which the first occurrence hides) */
	weft__mp_write_cstr(&b, "dup");
	weft__mp_write_int(&b, 2);
	/* the header said 9 entries: there are 10; the extra is never read */
	assert_int_equal(b.err, 0);
	{
		static const struct ecase cases[] = {
		    {"u > 9223372036854775807", 1},
		    {"u == 18446744073709551615.0", 0}, /* that double is 2^64 */
		    {"u < 18446744073709551615.0", 1},
		    {"u > 1.8446744073709550e19", 1},
		    {"u > 1e19", 1},
		    {"u < 1e20", 1},
		    {"u63 == 9223372036854775808.0", 1},
		    {"u63 > 9223372036854775807", 1},
		    {"u63 < 9223372036854777856.0", 1},
		    {"u > 1.5", 1},
		    {"nan == 1", 0},
		    {"nan > 1e308", 1}, /* NaN sorts above every number */
		    {"nan != 1", 1},
		    {"nan == 1e308", 0},
		    {"inf > 1e308", 1},
		    {"inf > 9223372036854775807", 1},
		    {"ninf < -9223372036854775808", 1},
		    {"ninf < -1e308", 1},
		    {"f32 == 1.5", 1},
		    {"f32 > 1", 1},
		    {"bin == \"ab\"", 0},
		    {"bin > \"zz\"", 0},
		    {"bin contains \"a\"", 0},
		    {"exists(bin)", 1},
		    {"dup == 1", 1},
		    {"dup == 2", 0},
		    {"\"7\" == 8", 0},
		};

		for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
			int got = eval_raw(cases[i].pred, b.data, b.len, NULL);

			if (got != cases[i].want)
				fail_msg("[%s]: got %d, want %d", cases[i].pred, got,
				         cases[i].want);
		}
	}
	weft__mp_buf_free(&b);

	/* not a map */
	{
		const uint8_t arr[] = {0x91, 0x01};
		const uint8_t i7[] = {0x07};
		const uint8_t empty_map[] = {0x80};

		assert_int_equal(eval_raw("true", arr, sizeof(arr), NULL), WEFT_EINVAL);
		assert_int_equal(eval_raw("a == 1", i7, sizeof(i7), NULL), WEFT_EINVAL);
		assert_int_equal(eval_raw("true", i7, 0, NULL), WEFT_EINVAL);
		assert_int_equal(eval_raw("true", empty_map, sizeof(empty_map), NULL), 1);
		assert_int_equal(eval_raw("a != 1", empty_map, sizeof(empty_map), NULL), 1);
	}
	/* truncated: {"a": 1, "b": <cut>}; only what is read is checked */
	{
		const uint8_t cut[] = {0x82, 0xa1, 'a', 0x01, 0xa1};
		const uint8_t bad_key[] = {0x82, 0xa1, 0xff, 0x01, 0xa1, 'b', 0x02};
		const uint8_t bad_val[] = {0x81, 0xa1, 'a', 0xc1};
		const uint8_t deep_cut[] = {0x81, 0xa1, 'a', 0x92, 0x01};

		assert_int_equal(eval_raw("a == 1", cut, sizeof(cut), NULL), 1);
		assert_int_equal(eval_raw("b == 1", cut, sizeof(cut), NULL), WEFT_EINVAL);
		assert_int_equal(eval_raw("a == 1 or b == 1", cut, sizeof(cut), NULL), 1);
		assert_int_equal(eval_raw("b == 1 or a == 1", cut, sizeof(cut), NULL), WEFT_EINVAL);
		assert_int_equal(eval_raw("b == 2", bad_key, sizeof(bad_key), NULL), WEFT_EINVAL);
		assert_int_equal(eval_raw("exists(a)", bad_val, sizeof(bad_val), NULL),
		                 WEFT_EINVAL);
		assert_int_equal(eval_raw("a == [1]", deep_cut, sizeof(deep_cut), NULL),
		                 WEFT_EINVAL);
		assert_int_equal(eval_raw("a.b == [1]", deep_cut, sizeof(deep_cut), NULL), 0);
	}
	/* malformed bytes further down a path */
	{
		const uint8_t inner_bad_key[] = {0x81, 0xa1, 'a', 0x81, 0xa1, 0xff, 0x01};
		const uint8_t inner_cut[] = {0x81, 0xa1, 'a', 0x82, 0xa1, 'x', 0x01, 0xc1};
		const uint8_t inner_header[] = {0x81, 0xa1, 'a', 0xdf, 0xff, 0xff, 0xff, 0xff};
		const uint8_t inner_key_type[] = {0x81, 0xa1, 'a', 0x82, 0x05,
		                                  0xc1, 0xa1, 'b', 0x01};
		const uint8_t inner_ok[] = {0x81, 0xa1, 'a', 0x82, 0x05, 0x06, 0xa1, 'b', 0x01};

		assert_int_equal(eval_raw("a.b == 1", inner_bad_key, sizeof(inner_bad_key), NULL),
		                 WEFT_EINVAL);
		assert_int_equal(eval_raw("a.b == 1", inner_cut, sizeof(inner_cut), NULL),
		                 WEFT_EINVAL);
		assert_int_equal(eval_raw("a.x == 1", inner_cut, sizeof(inner_cut), NULL), 1);
		assert_int_equal(eval_raw("a.b == 1", inner_header, sizeof(inner_header), NULL),
		                 WEFT_EINVAL);
		assert_int_equal(eval_raw("a.b == 1", inner_key_type, sizeof(inner_key_type), NULL),
		                 WEFT_EINVAL);
		assert_int_equal(eval_raw("a.b == 1", inner_ok, sizeof(inner_ok), NULL), 1);
	}
	/* bad arguments */
	{
		struct weft_pred *p = compile_ok("true");
		bool m;

		assert_int_equal(weft__pred_eval(p, NULL, 0, NULL, 0, &m), WEFT_EINVAL);
		assert_int_equal(weft__pred_eval(p, "\x80", 1, NULL, 0, NULL), WEFT_EINVAL);
		assert_int_equal(weft__pred_eval(p, "\x80", 1, NULL, 1, &m), WEFT_EINVAL);
		assert_int_equal(weft__pred_eval(NULL, "\x80", 1, NULL, 0, &m), WEFT_EINVAL);
		weft__pred_free(p);
	}
}

/* `contains` on strings against a naive search, on small alphabets where
 * periodic needles are common (the two-way algorithm's hard cases). */
static bool naive_contains(const char *h, size_t hl, const char *n, size_t nl)
{
	if (nl == 0)
		return true;
	for (size_t i = 0; i + nl <= hl; i++)
		if (memcmp(h + i, n, nl) == 0)
			return true;
	return false;
}

static void test_contains_search(void **state)
{
	char h[64], n[64], text[128];
	struct mp_buf d;

	(void)state;
	reseed("test_contains_search");
	weft__mp_buf_init(&d, NULL, 0);
	for (int round = 0; round < 20000 * rounds; round++) {
		size_t hl = rnd() % 40, nl = rnd() % 12, alpha = 1 + rnd() % 3;
		struct weft_pred *p;
		bool m;

		for (size_t i = 0; i < hl; i++)
			h[i] = (char)('a' + rnd() % alpha);
		/* half of the needles are taken from the haystack */
		if (hl && rnd() % 2) {
			size_t at = rnd() % hl;

			nl = nl > hl - at ? hl - at : nl;
			memcpy(n, h + at, nl);
			if (nl && rnd() % 3 == 0)
				n[rnd() % nl] ^= 1 + (char)(rnd() % 2);
		} else {
			for (size_t i = 0; i < nl; i++)
				n[i] = (char)('a' + rnd() % alpha);
		}
		snprintf(text, sizeof(text), "s contains \"%.*s\"", (int)nl, n);
		weft__mp_buf_reset(&d);
		weft__mp_write_map(&d, 1);
		weft__mp_write_cstr(&d, "s");
		weft__mp_write_str(&d, h, hl);
		p = compile_ok(text);
		assert_int_equal(weft__pred_eval(p, d.data, d.len, NULL, 0, &m), WEFT_OK);
		if (m != naive_contains(h, hl, n, nl))
			fail_msg("round %d: [%.*s] contains [%.*s]: got %d", round, (int)hl, h,
			         (int)nl, n, m);
		weft__pred_free(p);
	}
	weft__mp_buf_free(&d);

	/* a hostile case for a naive search: 1 MiB of 'a' against a^60000 b.
	 * The two-way search is linear; a quadratic one would take minutes. */
	{
		size_t hl = 1 << 20, nl = 60000;
		char *hay = malloc(hl), *txt = malloc(nl + 32);
		struct weft_pred *p = NULL;
		bool m = true;

		assert_non_null(hay);
		assert_non_null(txt);
		memset(hay, 'a', hl);
		memcpy(txt, "s contains \"", 12);
		memset(txt + 12, 'a', nl - 1);
		memcpy(txt + 12 + nl - 1, "b\"", 3);
		weft__mp_buf_reset(&d);
		weft__mp_write_map(&d, 1);
		weft__mp_write_cstr(&d, "s");
		weft__mp_write_str(&d, hay, hl);
		assert_int_equal(weft__pred_compile(NULL, txt, strlen(txt), &p, NULL, 0), WEFT_OK);
		assert_int_equal(weft__pred_eval(p, d.data, d.len, NULL, 0, &m), WEFT_OK);
		assert_false(m);
		weft__pred_free(p);
		/* and found at the very end */
		hay[hl - 1] = 'b';
		weft__mp_buf_reset(&d);
		weft__mp_write_map(&d, 1);
		weft__mp_write_cstr(&d, "s");
		weft__mp_write_str(&d, hay, hl);
		assert_int_equal(weft__pred_compile(NULL, txt, strlen(txt), &p, NULL, 0), WEFT_OK);
		assert_int_equal(weft__pred_eval(p, d.data, d.len, NULL, 0, &m), WEFT_OK);
		assert_true(m);
		weft__pred_free(p);
		free(hay);
		free(txt);
	}
	weft__mp_buf_free(&d);
}

/* ---- queries ---- */

static void test_query(void **state)
{
	static const char *const canon[][2] = {
	    {"", "true"},
	    {"true", "true"},
	    {"order by a", "order by a"},
	    {"true order by a asc", "order by a"},
	    {"false order by a", "false order by a"},
	    {"limit 0", "limit 0"},
	    {"true limit 10", "limit 10"},
	    {"a == 1 limit 9223372036854775807", "a == 1 limit 9223372036854775807"},
	    {"status == \"open\" order by priority desc, \"due date\".day ASC_is_key limit 3",
	     NULL},
	    {"status == \"open\" order by priority desc, \"due date\".day asc limit 3",
	     "status == \"open\" order by priority desc, \"due date\".day limit 3"},
	    {"a == 1 or b == 2 order by x.y desc,z", "a == 1 or b == 2 order by x.y desc, z"},
	    {"order by \"order\", x.limit limit 1", "order by \"order\", x.limit limit 1"},
	};
	static const struct perr errs[] = {
	    {"order a", WEFT_EINVAL, "at 1:7 (byte 6): expected 'by' after 'order'"},
	    {"order by", WEFT_EINVAL, "at 1:9 (byte 8): expected a field path"},
	    {"order by limit 1", WEFT_EINVAL, NULL},
	    {"order by a,", WEFT_EINVAL, "at 1:12 (byte 11): expected a field path"},
	    {"limit -1", WEFT_EINVAL,
	     "at 1:7 (byte 6): expected a non-negative integer after 'limit'"},
	    {"limit 1.5", WEFT_EINVAL,
	     "at 1:7 (byte 6): expected a non-negative integer after 'limit'"},
	    {"limit", WEFT_EINVAL,
	     "at 1:6 (byte 5): expected a non-negative integer after 'limit'"},
	    {"limit $n", WEFT_EINVAL, NULL},
	    {"limit 5 x", WEFT_EINVAL, "at 1:9 (byte 8): expected end of input"},
	    {"limit 1 order by a", WEFT_EINVAL, "at 1:9 (byte 8): expected end of input"},
	    {"order by a b", WEFT_EINVAL,
	     "at 1:12 (byte 11): expected ',', 'asc', 'desc', 'limit' or end of input"},
	    {"order by a desc desc", WEFT_EINVAL, NULL},
	    {"a == 1 b", WEFT_EINVAL,
	     "at 1:8 (byte 7): expected 'and', 'or', 'order by', 'limit' or end of input"},
	    {"order by a, b, c, d, e, f, g, h, i", WEFT_ETOOBIG,
	     "at 1:34 (byte 33): more than 8 order by keys"},
	    {"order by a limit 99999999999999999999", WEFT_EINVAL, NULL},
	};
	struct weft_query *q;
	uint64_t lim = 0;
	char err[256];

	(void)state;
	for (size_t i = 0; i < sizeof(canon) / sizeof(canon[0]); i++) {
		int rc =
		    weft__query_parse(NULL, canon[i][0], strlen(canon[i][0]), &q, err, sizeof(err));
		char *f, *f2;
		struct weft_query *q2;

		if (!canon[i][1]) {
			assert_int_not_equal(rc, WEFT_OK);
			continue;
		}
		if (rc != WEFT_OK)
			fail_msg("[%s]: %s", canon[i][0], err);
		f = format_query(q);
		if (strcmp(f, canon[i][1]) != 0)
			fail_msg("[%s] formats as [%s], want [%s]", canon[i][0], f, canon[i][1]);
		assert_int_equal(weft__query_parse(NULL, f, strlen(f), &q2, NULL, 0), WEFT_OK);
		f2 = format_query(q2);
		assert_string_equal(f, f2);
		free(f);
		free(f2);
		weft__query_free(q);
		weft__query_free(q2);
	}
	check_errors(errs, sizeof(errs) / sizeof(errs[0]), true);

	/* accessors */
	assert_int_equal(
	    weft__query_parse(NULL, "a == 1 order by b desc, c limit 7", 33, &q, err, sizeof(err)),
	    WEFT_OK);
	assert_true(weft__query_limit(q, &lim));
	assert_true(weft__query_limit(q, NULL));
	assert_int_equal(lim, 7);
	assert_int_equal(weft__query_order_count(q), 2);
	{
		char *f = format_pred(weft__query_pred(q));

		assert_string_equal(f, "a == 1");
		free(f);
	}
	weft__query_free(q);
	assert_int_equal(weft__query_parse(NULL, "a == 1", 6, &q, NULL, 0), WEFT_OK);
	assert_false(weft__query_limit(q, &lim));
	assert_int_equal(weft__query_order_count(q), 0);
	weft__query_free(q);
}

static const struct weft_query *sort_q;

struct sdoc {
	struct mp_buf b;
	int id;
};

static int sdoc_cmp(const void *pa, const void *pb)
{
	const struct sdoc *a = pa, *b = pb;
	int c = weft__query_cmp(sort_q, a->b.data, a->b.len, b->b.data, b->b.len);

	return c ? c : (a->id > b->id) - (a->id < b->id);
}

static void test_query_sort(void **state)
{
	static const char *const docs[] = {
	    "{\"id\": 0, \"p\": 2, \"t\": \"b\"}",
	    "{\"id\": 1, \"p\": 1, \"t\": \"z\"}",
	    "{\"id\": 2, \"t\": \"a\"}",
	    "{\"id\": 3, \"p\": 2, \"t\": \"a\"}",
	    "{\"id\": 4, \"p\": null, \"t\": \"c\"}",
	    "{\"id\": 5, \"p\": 1.5, \"t\": \"c\"}",
	    "{\"id\": 6, \"p\": \"x\", \"t\": \"c\"}",
	    "{\"id\": 7, \"p\": true}",
	    "{\"id\": 8, \"p\": [1], \"t\": \"c\"}",
	    "{\"id\": 9, \"p\": {\"a\": 1}}",
	};
	static const struct {
		const char *query;
		int order[10];
	} cases[] = {
	    /* missing < null < bool < number < string < array < map */
	    {"order by p", {2, 4, 7, 1, 5, 0, 3, 6, 8, 9}},
	    {"order by p desc", {9, 8, 6, 0, 3, 5, 1, 7, 4, 2}},
	    {"order by p desc, t", {9, 8, 6, 3, 0, 5, 1, 7, 4, 2}},
	    {"order by t, p desc", {9, 7, 3, 2, 0, 8, 6, 5, 4, 1}},
	    {"order by t desc, id desc", {1, 8, 6, 5, 4, 0, 3, 2, 9, 7}},
	    {"", {0, 1, 2, 3, 4, 5, 6, 7, 8, 9}},
	};
	struct sdoc sd[10];

	(void)state;
	for (size_t c = 0; c < sizeof(cases) / sizeof(cases[0]); c++) {
		struct weft_query *q;

		assert_int_equal(
		    weft__query_parse(NULL, cases[c].query, strlen(cases[c].query), &q, NULL, 0),
		    WEFT_OK);
		for (int i = 0; i < 10; i++) {
			weft__mp_buf_init(&sd[i].b, NULL, 0);
			json_mp(docs[i], &sd[i].b);
			sd[i].id = i;
		}
		/* shuffle, then sort */
		for (int i = 9; i > 0; i--) {
			int j = (int)(rnd() % (uint64_t)(i + 1));
			struct sdoc t = sd[i];

			sd[i] = sd[j];
			sd[j] = t;
		}
		sort_q = q;
		qsort(sd, 10, sizeof(sd[0]), sdoc_cmp);
		for (int i = 0; i < 10; i++)
			if (sd[i].id != cases[c].order[i])
				fail_msg("[%s]: position %d holds doc %d, want %d", cases[c].query,
				         i, sd[i].id, cases[c].order[i]);
		for (int i = 0; i < 10; i++)
			weft__mp_buf_free(&sd[i].b);
		weft__query_free(q);
	}
	/* malformed documents and NULL compare as all-missing */
	{
		struct weft_query *q;
		struct mp_buf a;
		const uint8_t bad[] = {0x81, 0xa1, 'p', 0xc1};

		weft__mp_buf_init(&a, NULL, 0);
		json_mp("{\"p\": 1}", &a);
		assert_int_equal(weft__query_parse(NULL, "order by p", 10, &q, NULL, 0), WEFT_OK);
		assert_int_equal(weft__query_cmp(q, a.data, a.len, bad, sizeof(bad)), 1);
		assert_int_equal(weft__query_cmp(q, bad, sizeof(bad), a.data, a.len), -1);
		assert_int_equal(weft__query_cmp(q, bad, sizeof(bad), NULL, 0), 0);
		assert_int_equal(weft__query_cmp(q, a.data, a.len, a.data, a.len), 0);
		weft__query_free(q);
		weft__mp_buf_free(&a);
	}
}

/* ---- allocation failures ---- */

static void test_alloc_failure(void **state)
{
	static const char *const texts[] = {
	    "",
	    "a == 1",
	    "status == \"open\" and (priority >= 3 or tags contains \"urgent\") and not "
	    "exists(archived) and owner == $sub and kind in [\"a\", \"b\", 3]",
	    "a in [[1, 2, [3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18]], \"x\"] or "
	    "\"k e y\".\"\\u00e9\" == 1.5e300 or (a == 1 and b == 2 and (c == 3 or d == $x))",
	};
	static const char *const queries[] = {
	    "order by a",
	    "a == $p and b contains \"x\" order by a desc, b.c limit 5",
	};

	(void)state;
	for (int kind = 0; kind < 2; kind++) {
		size_t n =
		    kind ? sizeof(queries) / sizeof(queries[0]) : sizeof(texts) / sizeof(texts[0]);

		for (size_t t = 0; t < n; t++) {
			const char *text = kind ? queries[t] : texts[t];
			struct failalloc fa;
			long total;

			/* count the allocations of a successful run */
			failalloc_init(&fa, 0, 0);
			if (kind) {
				struct weft_query *q;

				assert_int_equal(
				    weft__query_parse(&fa.a, text, strlen(text), &q, NULL, 0),
				    WEFT_OK);
				weft__query_free(q);
			} else {
				struct weft_pred *p;

				assert_int_equal(
				    weft__pred_compile(&fa.a, text, strlen(text), &p, NULL, 0),
				    WEFT_OK);
				weft__pred_free(p);
			}
			assert_int_equal(fa.live, 0);
			total = fa.count;
			assert_true(total > 0);
			for (int sticky = 0; sticky < 2; sticky++) {
				for (long i = 1; i <= total; i++) {
					char err[64];
					int rc;

					failalloc_init(&fa, i, sticky);
					if (kind) {
						struct weft_query *q = NULL;

						rc = weft__query_parse(&fa.a, text, strlen(text),
						                       &q, err, sizeof(err));
						assert_null(q);
					} else {
						struct weft_pred *p = NULL;

						rc = weft__pred_compile(&fa.a, text, strlen(text),
						                        &p, err, sizeof(err));
						assert_null(p);
					}
					if (rc != WEFT_ENOMEM)
						fail_msg(
						    "[%s]: failing allocation %ld of %ld gave %d",
						    text, i, total, rc);
					assert_string_equal(err, "out of memory");
					if (fa.live != 0)
						fail_msg("[%s]: failing allocation %ld leaks %ld",
						         text, i, fa.live);
				}
			}
		}
	}
}

/* ---- random values, predicates and documents ---- */

static const char *const keys[] = {"a", "b", "c", "d e", "\xc3\xa9", "and", "x"};
#define NKEYS (sizeof(keys) / sizeof(keys[0]))

static double rnd_double(void)
{
	static const double pick[] = {0.0,
	                              -0.0,
	                              1.0,
	                              -1.0,
	                              1.5,
	                              2.0,
	                              0.5,
	                              9007199254740992.0,
	                              9007199254740993.0,
	                              9223372036854775808.0,
	                              -9223372036854775808.0,
	                              1e300,
	                              -1e300,
	                              5e-324,
	                              0.1,
	                              3.0};
	double d;
	uint64_t bits;

	if (rnd() % 4)
		return pick[rnd() % (sizeof(pick) / sizeof(pick[0]))];
	do {
		bits = rnd();
		memcpy(&d, &bits, sizeof(d));
	} while (!isfinite(d));
	return d;
}

static int64_t rnd_int(void)
{
	static const int64_t pick[] = {
	    INT64_MIN, INT64_MAX, 9007199254740993LL, 9007199254740992LL, -9007199254740993LL,
	    1000000,   -1};

	if (rnd() % 3)
		return (int64_t)(rnd() % 7) - 3;
	return pick[rnd() % (sizeof(pick) / sizeof(pick[0]))];
}

static const char *const strs[] = {"",     "x", "y", "xy", "\xc3\xa9", "a", "\xf0\x9f\x98\x80",
                                   "x\"y", "\n"};
#define NSTRS (sizeof(strs) / sizeof(strs[0]))

/* A random value for documents and the total-order laws. with_odd adds
 * what JSON cannot hold (uint64, NaN, infinities, binaries, non-string
 * keys, duplicate keys). */
static void gen_value(struct mp_buf *b, int depth, bool with_odd)
{
	int kinds = depth >= 3 ? 7 : 9;

	switch (rnd() % (uint64_t)(kinds + (with_odd ? 2 : 0))) {
	case 0:
		weft__mp_write_nil(b);
		break;
	case 1:
		weft__mp_write_bool(b, rnd() % 2);
		break;
	case 2:
	case 3:
		weft__mp_write_int(b, rnd_int());
		break;
	case 4:
		weft__mp_write_double(b, rnd_double());
		break;
	case 5:
	case 6:
		weft__mp_write_cstr(b, strs[rnd() % NSTRS]);
		break;
	case 7: {
		uint32_t n = (uint32_t)(rnd() % 4);

		weft__mp_write_array(b, n);
		for (uint32_t i = 0; i < n; i++)
			gen_value(b, depth + 1, with_odd);
		break;
	}
	case 8: {
		/* distinct keys in a random order (duplicates with_odd) */
		uint32_t n = (uint32_t)(rnd() % 4), used = 0;

		weft__mp_write_map(b, n);
		for (uint32_t i = 0; i < n; i++) {
			uint32_t k;

			do
				k = (uint32_t)(rnd() % NKEYS);
			while ((used & (1u << k)) && !(with_odd && rnd() % 4 == 0));
			used |= 1u << k;
			if (with_odd && rnd() % 8 == 0)
				weft__mp_write_int(b, k);
			else
				weft__mp_write_cstr(b, keys[k]);
			gen_value(b, depth + 1, with_odd);
		}
		break;
	}
	default:
		switch (rnd() % 5) {
		case 0:
			weft__mp_write_uint(b, UINT64_MAX - rnd() % 3);
			break;
		case 1:
			weft__mp_write_double(b, nan(""));
			break;
		case 2:
			weft__mp_write_double(b, rnd() % 2 ? HUGE_VAL : -HUGE_VAL);
			break;
		case 3: {
			const char *s = strs[rnd() % NSTRS];

			weft__mp_write_bin(b, s, strlen(s));
			break;
		}
		default:
			weft__mp_write_raw(b, "\xca\x3f\xc0\x00\x00", 5);
			break;
		}
	}
}

static void gen_doc(struct mp_buf *b)
{
	uint32_t n = (uint32_t)(rnd() % (NKEYS + 1)), used = 0;

	weft__mp_buf_reset(b);
	weft__mp_write_map(b, n);
	for (uint32_t i = 0; i < n; i++) {
		uint32_t k;

		do
			k = (uint32_t)(rnd() % NKEYS);
		while (used & (1u << k));
		used |= 1u << k;
		weft__mp_write_cstr(b, keys[k]);
		gen_value(b, 1, false);
	}
}

/* Random predicate text with random spacing, quoting and parentheses. */
struct tbuf {
	char *s;
	size_t len, cap;
};

static void tput(struct tbuf *t, const char *s)
{
	size_t n = strlen(s);

	if (t->len + n + 1 > t->cap) {
		t->cap = (t->len + n + 1) * 2;
		t->s = realloc(t->s, t->cap);
		assert_non_null(t->s);
	}
	memcpy(t->s + t->len, s, n + 1);
	t->len += n;
}

static void ws(struct tbuf *t)
{
	static const char *const w[] = {" ", " ", " ", "  ", "\t", "\n", " \r\n "};

	tput(t, w[rnd() % (sizeof(w) / sizeof(w[0]))]);
}

static void gen_string_lit(struct tbuf *t, const char *s)
{
	tput(t, "\"");
	for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
		char c[16];

		if (*p == '"' || *p == '\\' || *p < 0x20 || (*p < 0x80 && rnd() % 8 == 0)) {
			snprintf(c, sizeof(c), "\\u%04x", *p);
		} else if (p[0] == 0xc3 && p[1] == 0xa9 && rnd() % 3 == 0) {
			snprintf(c, sizeof(c), "\\u00%s", rnd() % 2 ? "e9" : "E9");
			p++;
		} else if (p[0] == 0xf0 && p[1] == 0x9f && p[2] == 0x98 && p[3] == 0x80 &&
		           rnd() % 3 == 0) {
			snprintf(c, sizeof(c), "\\ud83d\\ude00");
			p += 3;
		} else {
			c[0] = (char)*p;
			c[1] = '\0';
		}
		tput(t, c);
	}
	tput(t, "\"");
}

static void gen_path(struct tbuf *t)
{
	int n = 1 + (int)(rnd() % 3 == 0) + (int)(rnd() % 6 == 0);

	for (int i = 0; i < n; i++) {
		const char *k = keys[rnd() % NKEYS];

		if (i > 0)
			tput(t, rnd() % 8 ? "." : " . ");
		if (strcmp(k, "a") == 0 || strcmp(k, "b") == 0 || strcmp(k, "c") == 0 ||
		    strcmp(k, "x") == 0 || (i > 0 && strcmp(k, "and") == 0))
			if (rnd() % 3)
				tput(t, k);
			else
				gen_string_lit(t, k);
		else
			gen_string_lit(t, k);
	}
}

static void gen_literal(struct tbuf *t, int depth)
{
	char buf[64];

	switch (rnd() % (depth >= 2 ? 6 : 7)) {
	case 0:
		tput(t, "null");
		break;
	case 1:
		tput(t, rnd() % 2 ? "true" : "false");
		break;
	case 2:
		snprintf(buf, sizeof(buf), "%lld", (long long)rnd_int());
		tput(t, buf);
		break;
	case 3: {
		double d = rnd_double();

		snprintf(buf, sizeof(buf), rnd() % 2 ? "%.17g" : "%.3e", d);
		/* %g may print an integer; keep it a float literal */
		if (!strpbrk(buf, ".eE"))
			strcat(buf, ".0");
		tput(t, buf);
		break;
	}
	case 4:
	case 5:
		gen_string_lit(t, strs[rnd() % NSTRS]);
		break;
	default: {
		int n = (int)(rnd() % 4);

		tput(t, "[");
		for (int i = 0; i < n; i++) {
			if (i)
				tput(t, rnd() % 2 ? "," : ", ");
			gen_literal(t, depth + 1);
		}
		tput(t, "]");
	}
	}
}

static void gen_pred(struct tbuf *t, int depth)
{
	static const char *const ops[] = {"==", "!=", "<", "<=", ">", ">="};

	switch (depth >= 4 ? 4 + rnd() % 6 : rnd() % 10) {
	case 0:
		tput(t, "(");
		gen_pred(t, depth + 1);
		tput(t, ")");
		break;
	case 1:
		tput(t, "not");
		ws(t);
		gen_pred(t, depth + 1);
		break;
	case 2:
	case 3:
		gen_pred(t, depth + 1);
		ws(t);
		tput(t, rnd() % 2 ? "and" : "or");
		ws(t);
		gen_pred(t, depth + 1);
		break;
	case 4:
		switch (rnd() % 8) {
		case 0:
			tput(t, rnd() % 2 ? "true" : "false");
			return;
		case 1:
			tput(t, "exists(");
			gen_path(t);
			tput(t, ")");
			return;
		default:
			break;
		}
		/* fall through */
	default:
		gen_path(t);
		ws(t);
		switch (rnd() % 5) {
		case 0:
			tput(t, "in");
			ws(t);
			if (rnd() % 4 == 0) {
				tput(t, rnd() % 2 ? "$p" : "$r");
			} else {
				int n = (int)(rnd() % 4);

				tput(t, "[");
				for (int i = 0; i < n; i++) {
					if (i)
						tput(t, ", ");
					gen_literal(t, 1);
				}
				tput(t, "]");
			}
			return;
		case 1:
			tput(t, "contains");
			break;
		default:
			tput(t, ops[rnd() % 6]);
			break;
		}
		ws(t);
		if (rnd() % 6 == 0)
			tput(t, rnd() % 3 == 0 ? "$p" : rnd() % 2 ? "$q" : "$r");
		else
			gen_literal(t, 0);
	}
}

static const struct binding rand_params[] = {{"p", "[1, \"x\", null, [1, 2]]"},
                                             {"q", "\"x\""},
                                             {"r", "[\"\\u00e9\", 2.0, []]"},
                                             {NULL, NULL}};

static int eval_pred(const struct weft_pred *p, const struct mp_buf *d, const struct params *ps)
{
	bool m;
	int rc = weft__pred_eval(p, d->data, d->len, ps->p, ps->n, &m);

	if (rc != WEFT_OK)
		fail_msg("eval failed: %s", weft_strerror(rc));
	return m;
}

static struct weft_pred *compile_fmt(const char *fmt, const char *a, const char *b)
{
	char *t = malloc(strlen(fmt) + strlen(a) + (b ? strlen(b) : 0) + 1);
	struct weft_pred *p;

	assert_non_null(t);
	sprintf(t, fmt, a, b);
	p = compile_ok(t);
	free(t);
	return p;
}

static void test_random_predicates(void **state)
{
	struct params ps;
	struct mp_buf docs[24];
	int ndocs = 24, n_true = 0, n_false = 0;

	(void)state;
	reseed("test_random_predicates");
	params_init(&ps, rand_params);
	for (int i = 0; i < ndocs; i++)
		weft__mp_buf_init(&docs[i], NULL, 0);
	for (int round = 0; round < 1500 * rounds; round++) {
		struct tbuf t1 = {0}, t2 = {0};
		struct weft_pred *p1, *p2, *r1, *not1, *and12, *or12, *dm_l, *dm_r;
		char *f1, *f2, *g1;

		for (int i = 0; i < ndocs; i++)
			gen_doc(&docs[i]);
		gen_pred(&t1, 0);
		gen_pred(&t2, 0);
		p1 = compile_ok(t1.s);
		p2 = compile_ok(t2.s);
		f1 = format_pred(p1);
		f2 = format_pred(p2);
		/* the canonical form round-trips byte for byte and means the same */
		r1 = compile_ok(f1);
		g1 = format_pred(r1);
		if (strcmp(f1, g1) != 0)
			fail_msg("round %d: [%s] -> [%s] -> [%s]", round, t1.s, f1, g1);
		not1 = compile_fmt("not (%s)", f1, NULL);
		and12 = compile_fmt("(%s) and (%s)", f1, f2);
		or12 = compile_fmt("(%s) or (%s)", f1, f2);
		dm_l = compile_fmt("not ((%s) and (%s))", f1, f2);
		dm_r = compile_fmt("not (%s) or not (%s)", f1, f2);
		for (int i = 0; i < ndocs; i++) {
			int e1 = eval_pred(p1, &docs[i], &ps), e2 = eval_pred(p2, &docs[i], &ps);

			e1 ? n_true++ : n_false++;
			if (eval_pred(r1, &docs[i], &ps) != e1)
				fail_msg("round %d: [%s] and its canonical form [%s] disagree",
				         round, t1.s, f1);
			assert_int_equal(eval_pred(not1, &docs[i], &ps), !e1);
			assert_int_equal(eval_pred(and12, &docs[i], &ps), e1 && e2);
			assert_int_equal(eval_pred(or12, &docs[i], &ps), e1 || e2);
			assert_int_equal(eval_pred(dm_l, &docs[i], &ps),
			                 eval_pred(dm_r, &docs[i], &ps));
		}
		weft__pred_free(p1);
		weft__pred_free(p2);
		weft__pred_free(r1);
		weft__pred_free(not1);
		weft__pred_free(and12);
		weft__pred_free(or12);
		weft__pred_free(dm_l);
		weft__pred_free(dm_r);
		free(f1);
		free(f2);
		free(g1);
		free(t1.s);
		free(t2.s);
	}
	/* the generator is useful only if both outcomes are common */
	printf("test_random_predicates: %d matches, %d misses\n", n_true, n_false);
	assert_true(n_true > ndocs * 100 && n_false > ndocs * 100);
	for (int i = 0; i < ndocs; i++)
		weft__mp_buf_free(&docs[i]);
	params_free(&ps);
}

/* Laws of single comparisons against random values: x != v is not x == v;
 * x <= v is x < v or x == v; x in [a, b] is x == a or x == b; x > v and
 * x < v exclude each other; and == agrees with the total order. */
static void test_random_comparisons(void **state)
{
	struct mp_buf d, v;

	(void)state;
	reseed("test_random_comparisons");
	weft__mp_buf_init(&d, NULL, 0);
	weft__mp_buf_init(&v, NULL, 0);
	for (int round = 0; round < 3000 * rounds; round++) {
		struct tbuf a = {0}, b = {0};
		char text[1024];
		int eq, ne, lt, le, gt, ge, in2, eqa, eqb;

		gen_literal(&a, 0);
		gen_literal(&b, 0);
		gen_doc(&d);
#define EV(...) (snprintf(text, sizeof(text), __VA_ARGS__), eval_raw(text, d.data, d.len, NULL))
		eq = EV("a == %s", a.s);
		ne = EV("a != %s", a.s);
		lt = EV("a < %s", a.s);
		le = EV("a <= %s", a.s);
		gt = EV("a > %s", a.s);
		ge = EV("a >= %s", a.s);
		in2 = EV("a in [%s, %s]", a.s, b.s);
		eqa = eq;
		eqb = EV("a == %s", b.s);
#undef EV
		if (ne != !eq || le != (lt || eq) || ge != (gt || eq) || (lt && gt) ||
		    in2 != (eqa || eqb))
			fail_msg("round %d: literal %s: == %d != %d < %d <= %d > %d >= %d in %d",
			         round, a.s, eq, ne, lt, le, gt, ge, in2);
		/* == is the total order's equality (literal text is JSON) */
		{
			struct mp_reader r;
			const uint8_t *raw = NULL;
			size_t raw_len = 0;
			uint32_t n;
			bool found = false;

			weft__mp_reader_init(&r, d.data, d.len);
			assert_int_equal(weft__mp_read_map(&r, &n), WEFT_OK);
			for (uint32_t i = 0; i < n && !found; i++) {
				const char *k;
				size_t kl;

				assert_int_equal(weft__mp_read_str(&r, &k, &kl), WEFT_OK);
				assert_int_equal(weft__mp_skip(&r, &raw, &raw_len), WEFT_OK);
				found = kl == 1 && k[0] == 'a';
			}
			weft__mp_buf_reset(&v);
			json_mp(a.s, &v);
			assert_int_equal(
			    eq, found && weft__pred_value_cmp(raw, raw_len, v.data, v.len) == 0);
		}
		free(a.s);
		free(b.s);
	}
	weft__mp_buf_free(&d);
	weft__mp_buf_free(&v);
}

/* The total order: reflexive, antisymmetric, transitive, and blind to the
 * order of map keys; numbers compared exactly (checked against long double
 * where it holds every int64 exactly). */
static void test_total_order(void **state)
{
	enum { N = 300 };
	struct mp_buf v[N];

	(void)state;
	reseed("test_total_order");
	for (int round = 0; round < rounds; round++) {
		for (int i = 0; i < N; i++) {
			weft__mp_buf_init(&v[i], NULL, 0);
			gen_value(&v[i], 0, true);
			assert_int_equal(v[i].err, 0);
		}
		for (int i = 0; i < N; i++) {
			assert_int_equal(
			    weft__pred_value_cmp(v[i].data, v[i].len, v[i].data, v[i].len), 0);
			for (int j = 0; j < N; j++) {
				int c =
				    weft__pred_value_cmp(v[i].data, v[i].len, v[j].data, v[j].len);
				int r =
				    weft__pred_value_cmp(v[j].data, v[j].len, v[i].data, v[i].len);

				assert_true(c >= -1 && c <= 1);
				assert_int_equal(c, -r);
			}
		}
		/* transitivity on random triples */
		for (int k = 0; k < 200000; k++) {
			int i = (int)(rnd() % N), j = (int)(rnd() % N), l = (int)(rnd() % N);
			int ij = weft__pred_value_cmp(v[i].data, v[i].len, v[j].data, v[j].len);
			int jl = weft__pred_value_cmp(v[j].data, v[j].len, v[l].data, v[l].len);
			int il = weft__pred_value_cmp(v[i].data, v[i].len, v[l].data, v[l].len);

			if (ij <= 0 && jl <= 0 && !(il <= 0))
				fail_msg("not transitive: %d %d %d", ij, jl, il);
			if (ij == 0 && jl == 0)
				assert_int_equal(il, 0);
		}
		for (int i = 0; i < N; i++)
			weft__mp_buf_free(&v[i]);
	}

	/* missing and malformed values */
	{
		const uint8_t nil[] = {0xc0}, bad[] = {0xc1}, two[] = {0x01, 0x02};

		assert_int_equal(weft__pred_value_cmp(NULL, 0, nil, 1), -1);
		assert_int_equal(weft__pred_value_cmp(nil, 1, NULL, 0), 1);
		assert_int_equal(weft__pred_value_cmp(NULL, 0, NULL, 0), 0);
		assert_int_equal(weft__pred_value_cmp(bad, 1, NULL, 0), 0);
		assert_int_equal(weft__pred_value_cmp(two, 2, nil, 1), -1);
		assert_int_equal(weft__pred_value_cmp(nil, 0, nil, 1), -1);
	}

	/* maps: key order does not matter; duplicates count */
	{
		struct mp_buf a, b;

		weft__mp_buf_init(&a, NULL, 0);
		weft__mp_buf_init(&b, NULL, 0);
		json_mp("{\"b\": [1, {\"y\": 1, \"x\": 2}], \"a\": 1, \"c\": null}", &a);
		json_mp("{\"c\": null, \"a\": 1.0, \"b\": [1, {\"x\": 2, \"y\": 1}]}", &b);
		assert_int_equal(weft__pred_value_cmp(a.data, a.len, b.data, b.len), 0);
		weft__mp_buf_reset(&b);
		json_mp("{\"c\": null, \"a\": 1, \"b\": [1, {\"x\": 2, \"y\": 2}]}", &b);
		assert_int_equal(weft__pred_value_cmp(a.data, a.len, b.data, b.len), -1);
		/* {a:1, a:1} > {a:1} and < {a:1, b:0}; {a:1, a:1} == itself */
		weft__mp_buf_reset(&a);
		weft__mp_buf_reset(&b);
		weft__mp_write_map(&a, 2);
		weft__mp_write_cstr(&a, "a");
		weft__mp_write_int(&a, 1);
		weft__mp_write_cstr(&a, "a");
		weft__mp_write_int(&a, 1);
		json_mp("{\"a\": 1}", &b);
		assert_int_equal(weft__pred_value_cmp(a.data, a.len, b.data, b.len), 1);
		weft__mp_buf_reset(&b);
		json_mp("{\"a\": 1, \"b\": 0}", &b);
		assert_int_equal(weft__pred_value_cmp(a.data, a.len, b.data, b.len), -1);
		weft__mp_buf_reset(&b);
		json_mp("{\"a\": 2}", &b);
		assert_int_equal(weft__pred_value_cmp(a.data, a.len, b.data, b.len), -1);
		weft__mp_buf_reset(&b);
		weft__mp_write_map(&b, 3);
		for (int i = 0; i < 3; i++) {
			weft__mp_write_cstr(&b, "a");
			weft__mp_write_int(&b, 1);
		}
		assert_int_equal(weft__pred_value_cmp(a.data, a.len, b.data, b.len), -1);
		weft__mp_buf_free(&a);
		weft__mp_buf_free(&b);
	}

#if LDBL_MANT_DIG >= 64
	/* int64 against double, exactly */
	{
		struct mp_buf a, b;

		weft__mp_buf_init(&a, NULL, 0);
		weft__mp_buf_init(&b, NULL, 0);
		for (int k = 0; k < 200000; k++) {
			int64_t i = rnd() % 2 ? (int64_t)rnd() : rnd_int();
			double d =
			    rnd() % 2 ? rnd_double() : (double)i + (double)((int)(rnd() % 5) - 2);
			long double li = (long double)i, ld = (long double)d;
			int want = (li > ld) - (li < ld);

			if (rnd() % 4 == 0)
				d = (double)i;
			ld = (long double)d;
			want = (li > ld) - (li < ld);
			weft__mp_buf_reset(&a);
			weft__mp_buf_reset(&b);
			weft__mp_write_int(&a, i);
			weft__mp_write_double(&b, d);
			if (weft__pred_value_cmp(a.data, a.len, b.data, b.len) != want)
				fail_msg("%lld vs %.17g: want %d", (long long)i, d, want);
		}
		weft__mp_buf_free(&a);
		weft__mp_buf_free(&b);
	}
#endif
}

/* ---- documents built through the docset ---- */

static void apply(struct weft_docset *ds, int kind, uint64_t hlc, const char *path_json,
                  const char *arg, int64_t delta, const char *text_ins)
{
	struct mp_buf pb, vb, eb;
	struct top t;

	weft__mp_buf_init(&pb, NULL, 0);
	weft__mp_buf_init(&vb, NULL, 0);
	weft__mp_buf_init(&eb, NULL, 0);
	json_mp(path_json, &pb);
	switch (kind) {
	case WEFT_OP_SET:
	case WEFT_OP_REPLACE:
		json_mp(arg, &vb);
		break;
	case WEFT_OP_DELETE:
		weft__mp_write_nil(&vb);
		break;
	case WEFT_OP_INCR:
		assert_int_equal(
		    weft__docset_incr_value(ds, "c", 1, "d", 1, pb.data, pb.len, 1, 1, delta, &vb),
		    WEFT_OK);
		break;
	case WEFT_OP_SADD:
		json_mp(arg, &eb);
		assert_int_equal(weft__docset_sadd_value(ds, "c", 1, "d", 1, pb.data, pb.len, 1, 1,
		                                         eb.data, eb.len, &vb),
		                 WEFT_OK);
		break;
	case WEFT_OP_SREM:
		json_mp(arg, &eb);
		assert_int_equal(weft__docset_srem_value(ds, "c", 1, "d", 1, pb.data, pb.len,
		                                         eb.data, eb.len, &vb),
		                 WEFT_OK);
		break;
	default:
		assert_int_equal(weft__docset_text_value(ds, "c", 1, "d", 1, pb.data, pb.len, 1, 1,
		                                         false, 0, text_ins, strlen(text_ins), 0,
		                                         &vb),
		                 WEFT_OK);
		break;
	}
	assert_int_equal(mk_raw(&t, kind, 1, 1, hlc, hlc, pb.data, pb.len, vb.data, vb.len),
	                 WEFT_OK);
	assert_int_equal(weft__docset_apply(ds, &t.op, NULL, NULL), WEFT_OK);
	top_free(&t);
	weft__mp_buf_free(&pb);
	weft__mp_buf_free(&vb);
	weft__mp_buf_free(&eb);
}

/* The doc's value, checked to print as exactly its canonical JSON. */
static void doc_value(struct weft_docset *ds, struct mp_buf *val)
{
	struct weft_doc *d = weft__docset_find(ds, "c", 1, "d", 1);
	struct mp_buf js, js2;
	struct mp_reader r;

	assert_non_null(d);
	assert_true(weft__doc_visible(d));
	weft__mp_buf_init(&js, NULL, 0);
	weft__mp_buf_init(&js2, NULL, 0);
	weft__mp_buf_reset(val);
	assert_int_equal(weft__doc_write_value(d, val), WEFT_OK);
	assert_true(weft__mp_valid(val->data, val->len, true));
	assert_int_equal(weft__doc_write_json(d, &js), WEFT_OK);
	weft__mp_reader_init(&r, val->data, val->len);
	assert_int_equal(weft__json_write_mp(&js2, &r), WEFT_OK);
	if (js.len != js2.len || memcmp(js.data, js2.data, js.len) != 0)
		fail_msg("value prints %.*s, the document %.*s", (int)js2.len, js2.data,
		         (int)js.len, js.data);
	weft__mp_buf_free(&js);
	weft__mp_buf_free(&js2);
}

static void test_doc_value(void **state)
{
	static const struct ecase cases[] = {
	    {"title == \"Hello\"", 1},
	    {"meta.x > 1 and meta.x < 2", 1},
	    {"meta.arr == [1, [\"a\"]]", 0},
	    {"meta.arr.k == 1", 0},
	    {"likes == 5", 1},
	    {"likes > 4.5", 1},
	    {"tags contains \"urgent\"", 1},
	    {"tags contains \"gone\"", 0},
	    {"tags == [\"b\", \"urgent\", 3]", 1}, /* the JSON order: "b" < "urgent" < 3 */
	    {"tags contains 3", 1},
	    {"body contains \"world\"", 1},
	    {"body == \"hello world\"", 1},
	    {"exists(old)", 0},
	    {"exists(meta.gone)", 0},
	    {"\"k e y\" == null", 1},
	};
	struct weft_docset *ds;
	struct mp_buf val;

	(void)state;
	assert_int_equal(weft__docset_new(NULL, &ds), WEFT_OK);
	weft__docset_set_agent(ds, 1, 1);
	weft__mp_buf_init(&val, NULL, 0);
	apply(
	    ds, WEFT_OP_SET, 10, "[]",
	    "{\"title\": \"Hello\", \"meta\": {\"x\": 1.5, \"arr\": [1, {\"k\": 1}], \"gone\": 1},"
	    " \"old\": true, \"k e y\": null}",
	    0, NULL);
	apply(ds, WEFT_OP_INCR, 11, "[\"likes\"]", NULL, 7, NULL);
	apply(ds, WEFT_OP_INCR, 12, "[\"likes\"]", NULL, -2, NULL);
	apply(ds, WEFT_OP_SADD, 13, "[\"tags\"]", "\"urgent\"", 0, NULL);
	apply(ds, WEFT_OP_SADD, 14, "[\"tags\"]", "3", 0, NULL);
	apply(ds, WEFT_OP_SADD, 15, "[\"tags\"]", "\"b\"", 0, NULL);
	apply(ds, WEFT_OP_SADD, 16, "[\"tags\"]", "\"gone\"", 0, NULL);
	apply(ds, WEFT_OP_SADD, 17, "[\"tags\"]", "\"urgent\"", 0, NULL);
	apply(ds, WEFT_OP_SREM, 18, "[\"tags\"]", "\"gone\"", 0, NULL);
	apply(ds, WEFT_OP_TEXT, 19, "[\"body\"]", NULL, 0, "hello world");
	apply(ds, WEFT_OP_DELETE, 20, "[\"old\"]", NULL, 0, NULL);
	apply(ds, WEFT_OP_DELETE, 21, "[\"meta\", \"gone\"]", NULL, 0, NULL);
	doc_value(ds, &val);
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		int got = eval_raw(cases[i].pred, val.data, val.len, NULL);

		if (got != cases[i].want)
			fail_msg("[%s]: got %d, want %d", cases[i].pred, got, cases[i].want);
	}
	/* an empty set, an empty object, and a text reset by a later write */
	apply(ds, WEFT_OP_SREM, 22, "[\"tags\"]", "\"urgent\"", 0, NULL);
	apply(ds, WEFT_OP_SREM, 23, "[\"tags\"]", "\"b\"", 0, NULL);
	apply(ds, WEFT_OP_SREM, 24, "[\"tags\"]", "3", 0, NULL);
	apply(ds, WEFT_OP_SET, 25, "[\"meta\"]", "{}", 0, NULL);
	apply(ds, WEFT_OP_SET, 26, "[\"body\"]", "\"plain\"", 0, NULL);
	doc_value(ds, &val);
	assert_int_equal(eval_raw("tags == []", val.data, val.len, NULL), 1);
	assert_int_equal(eval_raw("meta.x == 1.5", val.data, val.len, NULL), 1);
	assert_int_equal(eval_raw("body == \"plain\"", val.data, val.len, NULL), 1);
	apply(ds, WEFT_OP_REPLACE, 27, "[\"meta\"]", "{}", 0, NULL);
	doc_value(ds, &val);
	assert_int_equal(eval_raw("exists(meta) and not exists(meta.x)", val.data, val.len, NULL),
	                 1);

	/* allocation failures while writing the value */
	{
		struct weft_doc *d = weft__docset_find(ds, "c", 1, "d", 1);
		struct failalloc fa;
		struct mp_buf out;
		long total;

		apply(ds, WEFT_OP_SADD, 28, "[\"tags\"]", "\"z\"", 0, NULL);
		apply(ds, WEFT_OP_SADD, 29, "[\"tags\"]", "\"a\"", 0, NULL);
		apply(ds, WEFT_OP_TEXT, 30, "[\"t2\"]", NULL, 0, "text");
		failalloc_init(&fa, 0, 0);
		weft__mp_buf_init(&out, &fa.a, 0);
		assert_int_equal(weft__doc_write_value(d, &out), WEFT_OK);
		weft__mp_buf_free(&out);
		total = fa.count;
		for (long i = 1; i <= total; i++) {
			failalloc_init(&fa, i, 0);
			weft__mp_buf_init(&out, &fa.a, 0);
			assert_int_equal(weft__doc_write_value(d, &out), WEFT_ENOMEM);
			weft__mp_buf_free(&out);
			assert_int_equal(fa.live, 0);
		}
	}
	weft__mp_buf_free(&val);
	weft__docset_free(ds);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_parse_canonical),    cmocka_unit_test(test_parse_errors),
	    cmocka_unit_test(test_parse_error_buffer), cmocka_unit_test(test_limits),
	    cmocka_unit_test(test_eval_types),         cmocka_unit_test(test_eval_precedence),
	    cmocka_unit_test(test_eval_params),        cmocka_unit_test(test_eval_raw_docs),
	    cmocka_unit_test(test_contains_search),    cmocka_unit_test(test_query),
	    cmocka_unit_test(test_query_sort),         cmocka_unit_test(test_alloc_failure),
	    cmocka_unit_test(test_random_predicates),  cmocka_unit_test(test_random_comparisons),
	    cmocka_unit_test(test_total_order),        cmocka_unit_test(test_doc_value),
	};

	return cmocka_run_group_tests(tests, setup_seed, NULL);
}
