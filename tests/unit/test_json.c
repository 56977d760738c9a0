/*
 * test_json.c - canonical JSON output: golden strings, member order by key
 * bytes at every depth, the ECMAScript number format (RFC 8785 appendix B
 * vectors and more), string escapes, refusal of values JSON cannot hold,
 * allocation failures, and 100k random doubles that must print in the
 * shortest form that reads back bit-identical.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "weft/weft.h"
#include "core/json.h"
#include "failalloc.h"

/* Converts the MessagePack in `in` to JSON and checks it against `want`. */
static void assert_json(const struct mp_buf *in, const char *want)
{
	struct mp_buf out;
	struct mp_reader r;
	char *got;

	assert_int_equal(in->err, 0);
	weft__mp_buf_init(&out, NULL, 0);
	weft__mp_reader_init(&r, in->data, in->len);
	assert_int_equal(weft__json_write_mp(&out, &r), WEFT_OK);
	assert_int_equal(weft__mp_reader_left(&r), 0);
	got = malloc(out.len + 1);
	assert_non_null(got);
	memcpy(got, out.data, out.len);
	got[out.len] = '\0';
	assert_string_equal(got, want);
	free(got);
	weft__mp_buf_free(&out);
}

/* The JSON of one double, as a NUL-terminated string in buf. */
static void double_str(double v, char *buf, size_t size)
{
	struct mp_buf out;

	weft__mp_buf_init(&out, NULL, 0);
	weft__json_write_double(&out, v);
	assert_int_equal(out.err, 0);
	assert_true(out.len < size);
	memcpy(buf, out.data, out.len);
	buf[out.len] = '\0';
	weft__mp_buf_free(&out);
}

static double from_bits(uint64_t bits)
{
	double d;

	memcpy(&d, &bits, sizeof(d));
	return d;
}

static void test_golden(void **state)
{
	struct mp_buf b;

	(void)state;
	weft__mp_buf_init(&b, NULL, 0);
	weft__mp_write_map(&b, 3);
	weft__mp_write_cstr(&b, "b");
	weft__mp_write_array(&b, 5);
	weft__mp_write_int(&b, 1);
	weft__mp_write_map(&b, 2);
	weft__mp_write_cstr(&b, "z");
	weft__mp_write_nil(&b);
	weft__mp_write_cstr(&b, "a");
	weft__mp_write_bool(&b, true);
	weft__mp_write_bool(&b, false);
	weft__mp_write_array(&b, 0);
	weft__mp_write_map(&b, 0);
	weft__mp_write_cstr(&b, "a");
	weft__mp_write_cstr(&b, "x\n");
	weft__mp_write_cstr(&b, "c");
	weft__mp_write_double(&b, 2.5);
	assert_json(&b, "{\"a\":\"x\\n\",\"b\":[1,{\"a\":true,\"z\":null},false,[],{}],\"c\":2.5}");

	weft__mp_buf_reset(&b);
	weft__mp_write_int(&b, INT64_MIN);
	assert_json(&b, "-9223372036854775808");
	weft__mp_buf_reset(&b);
	weft__mp_write_int(&b, INT64_MAX);
	assert_json(&b, "9223372036854775807");
	weft__mp_buf_reset(&b);
	weft__mp_write_uint(&b, UINT64_MAX);
	assert_json(&b, "18446744073709551615");
	weft__mp_buf_reset(&b);
	weft__mp_write_int(&b, 0);
	assert_json(&b, "0");
	weft__mp_buf_reset(&b);
	weft__mp_write_int(&b, -1);
	assert_json(&b, "-1");
	weft__mp_buf_reset(&b);
	weft__mp_write_cstr(&b, "");
	assert_json(&b, "\"\"");
	weft__mp_buf_reset(&b);
	weft__mp_write_raw(&b, "\xca\x3f\xc0\x00\x00", 5); /* float32 1.5 */
	assert_json(&b, "1.5");
	weft__mp_buf_free(&b);
}

static void test_key_order(void **state)
{
	/* written in scrambled order; canonical is by bytes, shorter first */
	static const char *keys[] = {
	    "b", "\xf0\x9f\x98\x80", "aa", "\xc3\xa9", "", "a", "z", "\xe2\x82\xac", "B", "ab",
	};
	struct mp_buf b;

	(void)state;
	weft__mp_buf_init(&b, NULL, 0);
	weft__mp_write_map(&b, 10);
	for (int i = 0; i < 10; i++) {
		weft__mp_write_cstr(&b, keys[i]);
		weft__mp_write_int(&b, i);
	}
	assert_json(&b, "{\"\":4,\"B\":8,\"a\":5,\"aa\":2,\"ab\":9,\"b\":0,\"z\":6,"
	                "\"\xc3\xa9\":3,\"\xe2\x82\xac\":7,\"\xf0\x9f\x98\x80\":1}");

	/* maps nested in arrays in maps are sorted too */
	weft__mp_buf_reset(&b);
	weft__mp_write_array(&b, 2);
	weft__mp_write_map(&b, 2);
	weft__mp_write_cstr(&b, "y");
	weft__mp_write_map(&b, 2);
	weft__mp_write_cstr(&b, "q");
	weft__mp_write_array(&b, 1);
	weft__mp_write_map(&b, 2);
	weft__mp_write_cstr(&b, "n");
	weft__mp_write_int(&b, 1);
	weft__mp_write_cstr(&b, "m");
	weft__mp_write_int(&b, 2);
	weft__mp_write_cstr(&b, "p");
	weft__mp_write_nil(&b);
	weft__mp_write_cstr(&b, "x");
	weft__mp_write_nil(&b);
	weft__mp_write_map(&b, 1);
	weft__mp_write_cstr(&b, "k");
	weft__mp_write_int(&b, 3);
	assert_json(&b, "[{\"x\":null,\"y\":{\"p\":null,\"q\":[{\"m\":2,\"n\":1}]}},{\"k\":3}]");

	/* a big map: every key in order */
	weft__mp_buf_reset(&b);
	weft__mp_write_map(&b, 300);
	for (int i = 299; i >= 0; i--) {
		char k[8];

		snprintf(k, sizeof(k), "%03d", i);
		weft__mp_write_cstr(&b, k);
		weft__mp_write_int(&b, i);
	}
	{
		struct mp_buf out;
		struct mp_reader r;
		size_t pos = 1;

		weft__mp_buf_init(&out, NULL, 0);
		weft__mp_reader_init(&r, b.data, b.len);
		assert_int_equal(weft__json_write_mp(&out, &r), WEFT_OK);
		for (int i = 0; i < 300; i++) {
			char m[32];
			int n = snprintf(m, sizeof(m), "%s\"%03d\":%d", i ? "," : "", i, i);

			assert_memory_equal(out.data + pos, m, (size_t)n);
			pos += (size_t)n;
		}
		assert_int_equal(pos + 1, out.len);
		weft__mp_buf_free(&out);
	}
	weft__mp_buf_free(&b);
}

static void test_numbers(void **state)
{
	static const struct {
		uint64_t bits;
		const char *want;
	} rfc[] = {
	    /* RFC 8785 appendix B */
	    {0x0000000000000000, "0"},
	    {0x8000000000000000, "0"},
	    {0x0000000000000001, "5e-324"},
	    {0x8000000000000001, "-5e-324"},
	    {0x7fefffffffffffff, "1.7976931348623157e+308"},
	    {0xffefffffffffffff, "-1.7976931348623157e+308"},
	    {0x4340000000000000, "9007199254740992"},
	    {0xc340000000000000, "-9007199254740992"},
	    {0x4430000000000000, "295147905179352830000"},
	    {0x44b52d02c7e14af5, "9.999999999999997e+22"},
	    {0x44b52d02c7e14af6, "1e+23"},
	    {0x44b52d02c7e14af7, "1.0000000000000001e+23"},
	    {0x444b1ae4d6e2ef4e, "999999999999999700000"},
	    {0x444b1ae4d6e2ef4f, "999999999999999900000"},
	    {0x444b1ae4d6e2ef50, "1e+21"},
	    {0x3eb0c6f7a0b5ed8c, "9.999999999999997e-7"},
	    {0x3eb0c6f7a0b5ed8d, "0.000001"},
	    {0x41b3de4355555553, "333333333.3333332"},
	    {0x41b3de4355555554, "333333333.33333325"},
	    {0x41b3de4355555555, "333333333.3333333"},
	    {0x41b3de4355555556, "333333333.3333334"},
	    {0x41b3de4355555557, "333333333.33333343"},
	    {0xbecbf647612f3696, "-0.0000033333333333333333"},
	    {0x43143ff3c1cb0959, "1424953923781206.2"},
	};
	static const struct {
		double v;
		const char *want;
	} es[] = {
	    {1.0, "1"},
	    {-1.5, "-1.5"},
	    {0.1, "0.1"},
	    {0.5, "0.5"},
	    {100, "100"},
	    {123.456, "123.456"},
	    {1e21, "1e+21"},
	    {1e20, "100000000000000000000"},
	    {1.2345678901234568e20, "123456789012345680000"},
	    {1.5e-7, "1.5e-7"},
	    {0.000001, "0.000001"},
	    {0.0000015, "0.0000015"},
	    {1e-7, "1e-7"},
	    {5e-324, "5e-324"},
	    {1.7976931348623157e308, "1.7976931348623157e+308"},
	    {333333333.3333333, "333333333.3333333"},
	    {2.2250738585072014e-308, "2.2250738585072014e-308"},
	    {1e300, "1e+300"},
	    {-1e-300, "-1e-300"},
	    {4.35, "4.35"},
	    {0.3, "0.3"},
	    {0.1 + 0.2, "0.30000000000000004"},
	    {12345.678e10, "123456780000000"},
	    {9007199254740993.0, "9007199254740992"},
	    {1.5e21, "1.5e+21"},
	    {123e-20, "1.23e-18"},
	    /* RFC 8785 section 3.2.2 example */
	    {333333333.33333329, "333333333.3333333"},
	    {1E30, "1e+30"},
	    {4.50, "4.5"},
	    {2e-3, "0.002"},
	    {0.000000000000000000000000001, "1e-27"},
	};
	char buf[64];

	(void)state;
	for (size_t i = 0; i < sizeof(rfc) / sizeof(rfc[0]); i++) {
		double_str(from_bits(rfc[i].bits), buf, sizeof(buf));
		assert_string_equal(buf, rfc[i].want);
	}
	for (size_t i = 0; i < sizeof(es) / sizeof(es[0]); i++) {
		double_str(es[i].v, buf, sizeof(buf));
		assert_string_equal(buf, es[i].want);
	}
	/* -0.0 through the MessagePack path as well */
	{
		struct mp_buf b;

		weft__mp_buf_init(&b, NULL, 0);
		weft__mp_write_double(&b, -0.0);
		assert_json(&b, "0");
		weft__mp_buf_free(&b);
	}
	/* non-finite doubles have no JSON form: the direct writer prints null */
	double_str(NAN, buf, sizeof(buf));
	assert_string_equal(buf, "null");
	double_str(-INFINITY, buf, sizeof(buf));
	assert_string_equal(buf, "null");
}

static void test_escapes(void **state)
{
	static const char in[] = "q\"b\\\b\f\n\r\t\x01\x1f\x7f/\xc3\xa9\xe2\x80\xa8";
	struct mp_buf b;

	(void)state;
	weft__mp_buf_init(&b, NULL, 0);
	weft__mp_write_str(&b, in, sizeof(in) - 1);
	assert_json(&b, "\"q\\\"b\\\\\\b\\f\\n\\r\\t\\u0001\\u001f\x7f/\xc3\xa9\xe2\x80\xa8\"");

	/* an embedded NUL and every control character */
	weft__mp_buf_reset(&b);
	{
		char ctl[32];
		char want[256];
		size_t k = 0;

		for (int i = 0; i < 32; i++)
			ctl[i] = (char)i;
		weft__mp_write_str(&b, ctl, 32);
		want[k++] = '"';
		for (int i = 0; i < 32; i++) {
			const char *e = NULL;
			char u[8];

			switch (i) {
			case '\b':
				e = "\\b";
				break;
			case '\f':
				e = "\\f";
				break;
			case '\n':
				e = "\\n";
				break;
			case '\r':
				e = "\\r";
				break;
			case '\t':
				e = "\\t";
				break;
			default:
				snprintf(u, sizeof(u), "\\u%04x", i);
				e = u;
				break;
			}
			memcpy(want + k, e, strlen(e));
			k += strlen(e);
		}
		want[k++] = '"';
		want[k] = '\0';
		assert_json(&b, want);
	}
	/* map keys are escaped the same way */
	weft__mp_buf_reset(&b);
	weft__mp_write_map(&b, 1);
	weft__mp_write_cstr(&b, "a\"b");
	weft__mp_write_cstr(&b, "\x1b");
	assert_json(&b, "{\"a\\\"b\":\"\\u001b\"}");
	weft__mp_buf_free(&b);
}

/* weft__json_write_mp on `in` must fail with `rc`, leave the reader where it
 * was and the output as it was. */
static void assert_json_fails(const void *in, size_t len, int rc)
{
	struct mp_buf out;
	struct mp_reader r, saved;

	weft__mp_buf_init(&out, NULL, 0);
	weft__mp_write_raw(&out, "xyz", 3);
	weft__mp_reader_init(&r, in, len);
	saved = r;
	assert_int_equal(weft__json_write_mp(&out, &r), rc);
	assert_ptr_equal(r.p, saved.p);
	assert_int_equal(out.len, 3);
	weft__mp_buf_free(&out);
}

static void test_refused(void **state)
{
	static const struct {
		const char *b;
		size_t n;
	} t[] = {
	    {"\xcb\x7f\xf8\x00\x00\x00\x00\x00\x00", 9},              /* NaN */
	    {"\xcb\x7f\xf0\x00\x00\x00\x00\x00\x00", 9},              /* Inf */
	    {"\xca\xff\x80\x00\x00", 5},                              /* -Inf float32 */
	    {"\xc4\x01\x61", 3},                                      /* bin */
	    {"\x82\xa1\x61\x01\xa1\x61\x02", 7},                      /* dup key */
	    {"\x82\xa0\x01\xa0\x02", 5},                              /* dup "" */
	    {"\x81\x01\x02", 3},                                      /* int key */
	    {"\x81\xc4\x01\x61\x02", 5},                              /* bin key */
	    {"\x93\x01\x02\xc4\x00", 5},                              /* bin late in array */
	    {"\x81\xa1\x61\x81\xa1\x62\xcb\x7f\xf8\0\0\0\0\0\0", 15}, /* nested NaN */
	    {"\x92\xc0", 2},                                          /* truncated */
	    {"\xc1", 1},                                              /* reserved */
	    {"\xa2\xc3\x28", 3},                                      /* bad UTF-8 */
	    {"\xd4\x01\x00", 3},                                      /* ext */
	    {"", 0},
	};

	(void)state;
	for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++)
		assert_json_fails(t[i].b, t[i].n, WEFT_EPROTO);
	/* 65 nested arrays */
	{
		uint8_t deep[65];

		memset(deep, 0x91, sizeof(deep));
		deep[64] = 0x90;
		struct mp_buf out;
		struct mp_reader r;

		assert_json_fails(deep, sizeof(deep), WEFT_EPROTO);
		/* 64 is fine */
		weft__mp_buf_init(&out, NULL, 0);
		weft__mp_reader_init(&r, deep + 1, sizeof(deep) - 1);
		assert_int_equal(weft__json_write_mp(&out, &r), WEFT_OK);
		assert_int_equal(out.len, 128);
		weft__mp_buf_free(&out);
	}
}

static void test_consumes_one_value(void **state)
{
	static const uint8_t two[] = {0x81, 0xa1, 0x61, 0x01, 0xc3};
	struct mp_buf out;
	struct mp_reader r;

	(void)state;
	weft__mp_buf_init(&out, NULL, 0);
	weft__mp_reader_init(&r, two, sizeof(two));
	assert_int_equal(weft__json_write_mp(&out, &r), WEFT_OK);
	assert_int_equal(weft__mp_reader_left(&r), 1);
	assert_int_equal(weft__json_write_mp(&out, &r), WEFT_OK);
	assert_int_equal(weft__mp_reader_left(&r), 0);
	assert_int_equal(out.len, strlen("{\"a\":1}true"));
	assert_memory_equal(out.data, "{\"a\":1}true", out.len);
	weft__mp_buf_free(&out);
}

static void build_nested(struct mp_buf *b)
{
	weft__mp_write_array(b, 20);
	for (int i = 0; i < 20; i++) {
		weft__mp_write_map(b, 3);
		weft__mp_write_cstr(b, "zz");
		weft__mp_write_double(b, i / 7.0);
		weft__mp_write_cstr(b, "a");
		weft__mp_write_cstr(b, "some string value to make the output grow");
		weft__mp_write_cstr(b, "m");
		weft__mp_write_map(b, 1);
		weft__mp_write_cstr(b, "k");
		weft__mp_write_int(b, i);
	}
}

static void test_alloc_failure(void **state)
{
	struct failalloc fa;
	struct mp_buf in, out;
	struct mp_reader r;
	long count;

	(void)state;
	weft__mp_buf_init(&in, NULL, 0);
	build_nested(&in);

	failalloc_init(&fa, 0, 0);
	weft__mp_buf_init(&out, &fa.a, 0);
	weft__mp_reader_init(&r, in.data, in.len);
	assert_int_equal(weft__json_write_mp(&out, &r), WEFT_OK);
	count = fa.count;
	assert_true(count > 20); /* output growth plus one scratch per map */
	weft__mp_buf_free(&out);
	assert_int_equal(fa.live, 0);

	for (long i = 1; i <= count; i++) {
		for (int sticky = 0; sticky < 2; sticky++) {
			failalloc_init(&fa, i, sticky);
			weft__mp_buf_init(&out, &fa.a, 0);
			weft__mp_reader_init(&r, in.data, in.len);
			assert_int_equal(weft__json_write_mp(&out, &r), WEFT_ENOMEM);
			assert_int_equal(out.err, WEFT_ENOMEM);
			assert_ptr_equal(r.p, in.data);
			weft__mp_buf_free(&out);
			assert_int_equal(fa.live, 0);
		}
	}

	/* output limit */
	weft__mp_buf_init(&out, NULL, 100);
	weft__mp_reader_init(&r, in.data, in.len);
	assert_int_equal(weft__json_write_mp(&out, &r), WEFT_ETOOBIG);
	assert_int_equal(out.len, 0);
	assert_ptr_equal(r.p, in.data);
	weft__mp_buf_free(&out);
	weft__mp_buf_free(&in);
}

static uint64_t xorshift64(uint64_t *s)
{
	uint64_t x = *s;

	x ^= x << 13;
	x ^= x >> 7;
	x ^= x << 17;
	*s = x;
	return x;
}

/* Significant digits of a printed number: the mantissa's digits without
 * leading zeros and without trailing zeros. */
static int significant_digits(const char *s)
{
	char d[64];
	int n = 0, k;

	for (; *s && *s != 'e'; s++)
		if (*s >= '0' && *s <= '9' && (n > 0 || *s != '0'))
			d[n++] = *s;
	k = n;
	while (k > 1 && d[k - 1] == '0')
		k--;
	return k;
}

/* Prints v and checks it reads back bit-identical and that no shorter
 * precision would have round-tripped. */
static void check_shortest(double v)
{
	char buf[64], shorter[64];
	double back;
	int k;

	double_str(v, buf, sizeof(buf));
	if (v == 0) {
		assert_string_equal(buf, "0");
		return;
	}
	back = strtod(buf, NULL);
	if (memcmp(&v, &back, sizeof(v)) != 0)
		fail_msg("%.17g printed as %s reads back as %.17g", v, buf, back);
	k = significant_digits(buf);
	if (k > 1) {
		snprintf(shorter, sizeof(shorter), "%.*e", k - 2, v);
		if (strtod(shorter, NULL) == v)
			fail_msg("%.17g printed as %s but %s round-trips", v, buf, shorter);
	}
}

static void test_random_doubles(void **state)
{
	const uint64_t seed = 0x9e3779b97f4a7c15ULL;
	uint64_t s = seed;
	int done = 0;

	(void)state;
	printf("random doubles: seed 0x%016" PRIx64 "\n", seed);
	/* 100k random bit patterns (non-finite ones skipped) */
	while (done < 100000) {
		double v = from_bits(xorshift64(&s));

		if (!isfinite(v))
			continue;
		check_shortest(v);
		done++;
	}
	/* 50k short decimals m * 10^e, the values people actually write */
	for (int i = 0; i < 50000; i++) {
		char lit[64];
		int64_t m = (int64_t)(xorshift64(&s) % 2000001) - 1000000;
		int e = (int)(xorshift64(&s) % 61) - 30;

		snprintf(lit, sizeof(lit), "%" PRId64 "e%d", m, e);
		check_shortest(strtod(lit, NULL));
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_golden),        cmocka_unit_test(test_key_order),
	    cmocka_unit_test(test_numbers),       cmocka_unit_test(test_escapes),
	    cmocka_unit_test(test_refused),       cmocka_unit_test(test_consumes_one_value),
	    cmocka_unit_test(test_alloc_failure), cmocka_unit_test(test_random_doubles),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
