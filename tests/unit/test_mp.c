/*
 * test_mp.c - the MessagePack codec: round trips of every type and every
 * integer-width boundary, golden encodings, every malformed-input path
 * (each must return WEFT_EPROTO and leave the reader where it was), the
 * depth limit, the writer's size limit and allocation failures, and the
 * json_compatible rules of weft__mp_valid / weft__mp_validate (duplicate
 * keys in large unsorted maps, a 1 MiB map, scratch allocation failure).
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "weft/weft.h"
#include "core/mp.h"
#include "failalloc.h"

/* Asserts that r still points where `saved` did. */
static void assert_unchanged(const struct mp_reader *r, const struct mp_reader *saved)
{
	assert_ptr_equal(r->p, saved->p);
	assert_ptr_equal(r->end, saved->end);
}

static void assert_bytes(const struct mp_buf *b, const char *hex)
{
	char got[512];
	size_t i;

	assert_int_equal(b->err, 0);
	assert_true(b->len * 2 < sizeof(got));
	for (i = 0; i < b->len; i++)
		snprintf(got + 2 * i, 3, "%02x", b->data[i]);
	got[2 * i] = '\0';
	assert_string_equal(got, hex);
}

/* Skipping or validating `data` must fail and leave the reader alone (for
 * containers whose header is fine but whose contents are not). */
static void assert_skip_fails(const void *data, size_t len)
{
	struct mp_reader r, saved;

	weft__mp_reader_init(&r, data, len);
	saved = r;
	assert_int_equal(weft__mp_skip(&r, NULL, NULL), WEFT_EPROTO);
	assert_unchanged(&r, &saved);
	assert_false(weft__mp_valid(data, len, false));
	assert_false(weft__mp_valid(data, len, true));
}

/* Every reader on `data` must fail with EPROTO and leave the reader alone. */
static void assert_all_readers_fail(const void *data, size_t len)
{
	struct mp_reader r, saved;
	const char *s;
	const void *p;
	const uint8_t *raw;
	size_t n;
	uint32_t c;
	int64_t i;
	uint64_t u;
	double d;
	bool b;

	weft__mp_reader_init(&r, data, len);
	saved = r;
	assert_int_equal(weft__mp_skip(&r, &raw, &n), WEFT_EPROTO);
	assert_unchanged(&r, &saved);
	assert_int_equal(weft__mp_read_nil(&r), WEFT_EPROTO);
	assert_int_equal(weft__mp_read_bool(&r, &b), WEFT_EPROTO);
	assert_int_equal(weft__mp_read_int(&r, &i), WEFT_EPROTO);
	assert_int_equal(weft__mp_read_uint(&r, &u), WEFT_EPROTO);
	assert_int_equal(weft__mp_read_double(&r, &d), WEFT_EPROTO);
	assert_int_equal(weft__mp_read_str(&r, &s, &n), WEFT_EPROTO);
	assert_int_equal(weft__mp_read_bin(&r, &p, &n), WEFT_EPROTO);
	assert_int_equal(weft__mp_read_array(&r, &c), WEFT_EPROTO);
	assert_int_equal(weft__mp_read_map(&r, &c), WEFT_EPROTO);
	assert_unchanged(&r, &saved);
	assert_false(weft__mp_valid(data, len, false));
	assert_false(weft__mp_valid(data, len, true));
}

static void test_int_boundaries(void **state)
{
	static const struct {
		int64_t v;
		size_t len;
	} v[] = {
	    {0, 1},
	    {1, 1},
	    {127, 1},
	    {128, 2},
	    {255, 2},
	    {256, 3},
	    {65535, 3},
	    {65536, 5},
	    {4294967295LL, 5},
	    {4294967296LL, 9},
	    {INT64_MAX, 9},
	    {-1, 1},
	    {-32, 1},
	    {-33, 2},
	    {-128, 2},
	    {-129, 3},
	    {-32768, 3},
	    {-32769, 5},
	    {INT32_MIN, 5},
	    {(int64_t)INT32_MIN - 1, 9},
	    {INT64_MIN, 9},
	};
	struct mp_buf b;

	(void)state;
	weft__mp_buf_init(&b, NULL, 0);
	for (size_t k = 0; k < sizeof(v) / sizeof(v[0]); k++) {
		struct mp_reader r, saved;
		enum mp_type t;
		int64_t i;
		uint64_t u;

		weft__mp_buf_reset(&b);
		weft__mp_write_int(&b, v[k].v);
		assert_int_equal(b.err, 0);
		assert_int_equal(b.len, v[k].len);
		weft__mp_reader_init(&r, b.data, b.len);
		assert_int_equal(weft__mp_peek(&r, &t), WEFT_OK);
		assert_int_equal(t, MP_INT);
		saved = r;
		assert_int_equal(weft__mp_read_double(&r, &(double){0}), WEFT_EPROTO);
		assert_unchanged(&r, &saved);
		if (v[k].v < 0) {
			assert_int_equal(weft__mp_read_uint(&r, &u), WEFT_EPROTO);
			assert_unchanged(&r, &saved);
		} else {
			assert_int_equal(weft__mp_read_uint(&r, &u), WEFT_OK);
			assert_int_equal(u, (uint64_t)v[k].v);
			r = saved;
			/* write_uint gives the same bytes for non-negative values */
			struct mp_buf b2;
			weft__mp_buf_init(&b2, NULL, 0);
			weft__mp_write_uint(&b2, (uint64_t)v[k].v);
			assert_int_equal(b2.len, b.len);
			assert_memory_equal(b2.data, b.data, b.len);
			weft__mp_buf_free(&b2);
		}
		assert_int_equal(weft__mp_read_int(&r, &i), WEFT_OK);
		assert_true(i == v[k].v);
		assert_int_equal(weft__mp_reader_left(&r), 0);
		assert_true(weft__mp_valid(b.data, b.len, true));
	}
	weft__mp_buf_free(&b);
}

static void test_uint_above_int64(void **state)
{
	static const uint64_t v[] = {(uint64_t)INT64_MAX + 1, UINT64_MAX};
	struct mp_buf b;

	(void)state;
	weft__mp_buf_init(&b, NULL, 0);
	for (size_t k = 0; k < 2; k++) {
		struct mp_reader r, saved;
		enum mp_type t;
		int64_t i;
		uint64_t u;

		weft__mp_buf_reset(&b);
		weft__mp_write_uint(&b, v[k]);
		assert_int_equal(b.len, 9);
		weft__mp_reader_init(&r, b.data, b.len);
		saved = r;
		assert_int_equal(weft__mp_peek(&r, &t), WEFT_OK);
		assert_int_equal(t, MP_UINT);
		assert_int_equal(weft__mp_read_int(&r, &i), WEFT_EPROTO);
		assert_unchanged(&r, &saved);
		assert_int_equal(weft__mp_read_uint(&r, &u), WEFT_OK);
		assert_true(u == v[k]);
		assert_int_equal(weft__mp_reader_left(&r), 0);
	}
	weft__mp_buf_free(&b);
}

/* Non-minimal encodings from other writers are read too. */
static void test_int_lenient_encodings(void **state)
{
	static const uint8_t u64_one[] = {0xcf, 0, 0, 0, 0, 0, 0, 0, 1};
	static const uint8_t i8_five[] = {0xd0, 0x05};
	static const uint8_t i16_neg[] = {0xd1, 0xff, 0xfe};
	static const uint8_t i32_neg[] = {0xd2, 0x80, 0, 0, 0};
	static const uint8_t u16_small[] = {0xcd, 0, 7};
	struct mp_reader r;
	enum mp_type t;
	int64_t i;
	uint64_t u;

	(void)state;
	weft__mp_reader_init(&r, u64_one, sizeof(u64_one));
	assert_int_equal(weft__mp_peek(&r, &t), WEFT_OK);
	assert_int_equal(t, MP_INT);
	assert_int_equal(weft__mp_read_int(&r, &i), WEFT_OK);
	assert_int_equal(i, 1);
	weft__mp_reader_init(&r, i8_five, sizeof(i8_five));
	assert_int_equal(weft__mp_read_uint(&r, &u), WEFT_OK);
	assert_int_equal(u, 5);
	weft__mp_reader_init(&r, i16_neg, sizeof(i16_neg));
	assert_int_equal(weft__mp_read_int(&r, &i), WEFT_OK);
	assert_int_equal(i, -2);
	weft__mp_reader_init(&r, i32_neg, sizeof(i32_neg));
	assert_int_equal(weft__mp_read_int(&r, &i), WEFT_OK);
	assert_true(i == INT32_MIN);
	weft__mp_reader_init(&r, u16_small, sizeof(u16_small));
	assert_int_equal(weft__mp_read_int(&r, &i), WEFT_OK);
	assert_int_equal(i, 7);
}

static void test_golden_bytes(void **state)
{
	struct mp_buf b;
	char big[65536];

	(void)state;
	memset(big, 'x', sizeof(big));
	weft__mp_buf_init(&b, NULL, 0);

	weft__mp_write_map(&b, 2);
	weft__mp_write_cstr(&b, "a");
	weft__mp_write_int(&b, 1);
	weft__mp_write_cstr(&b, "b");
	weft__mp_write_array(&b, 4);
	weft__mp_write_bool(&b, true);
	weft__mp_write_bool(&b, false);
	weft__mp_write_nil(&b);
	weft__mp_write_int(&b, -1);
	assert_bytes(&b, "82a16101a16294c3c2c0ff");

	weft__mp_buf_reset(&b);
	weft__mp_write_int(&b, 300);
	weft__mp_write_int(&b, -33);
	weft__mp_write_int(&b, -129);
	weft__mp_write_uint(&b, 65536);
	assert_bytes(&b, "cd012cd0dfd1ff7fce00010000");

	weft__mp_buf_reset(&b);
	weft__mp_write_int(&b, INT64_MIN);
	weft__mp_write_uint(&b, UINT64_MAX);
	assert_bytes(&b, "d38000000000000000cfffffffffffffffff");

	weft__mp_buf_reset(&b);
	weft__mp_write_double(&b, 1.5);
	weft__mp_write_double(&b, 1.0); /* float64 even when integral */
	assert_bytes(&b, "cb3ff8000000000000cb3ff0000000000000");

	weft__mp_buf_reset(&b);
	weft__mp_write_str(&b, "hi", 2);
	weft__mp_write_str(&b, "", 0);
	weft__mp_write_bin(&b, "\x01\x02", 2);
	weft__mp_write_bin(&b, NULL, 0);
	weft__mp_write_array(&b, 0);
	weft__mp_write_map(&b, 0);
	weft__mp_write_raw(&b, "\xc0", 1);
	assert_bytes(&b, "a26869a0c4020102c4009080c0");

	/* header width boundaries */
	weft__mp_buf_reset(&b);
	weft__mp_write_str(&b, big, 31);
	assert_int_equal(b.data[0], 0xbf);
	assert_int_equal(b.len, 32);
	weft__mp_buf_reset(&b);
	weft__mp_write_str(&b, big, 32);
	assert_memory_equal(b.data, "\xd9\x20", 2);
	weft__mp_buf_reset(&b);
	weft__mp_write_str(&b, big, 255);
	assert_memory_equal(b.data, "\xd9\xff", 2);
	weft__mp_buf_reset(&b);
	weft__mp_write_str(&b, big, 256);
	assert_memory_equal(b.data, "\xda\x01\x00", 3);
	weft__mp_buf_reset(&b);
	weft__mp_write_str(&b, big, 65535);
	assert_memory_equal(b.data, "\xda\xff\xff", 3);
	weft__mp_buf_reset(&b);
	weft__mp_write_str(&b, big, 65536);
	assert_memory_equal(b.data, "\xdb\x00\x01\x00\x00", 5);
	assert_int_equal(b.len, 65541);
	weft__mp_buf_reset(&b);
	weft__mp_write_bin(&b, big, 255);
	assert_memory_equal(b.data, "\xc4\xff", 2);
	weft__mp_buf_reset(&b);
	weft__mp_write_bin(&b, big, 256);
	assert_memory_equal(b.data, "\xc5\x01\x00", 3);
	weft__mp_buf_reset(&b);
	weft__mp_write_bin(&b, big, 65536);
	assert_memory_equal(b.data, "\xc6\x00\x01\x00\x00", 5);

	weft__mp_buf_reset(&b);
	weft__mp_write_array(&b, 15);
	weft__mp_write_array(&b, 16);
	weft__mp_write_array(&b, 65535);
	weft__mp_write_array(&b, 65536);
	weft__mp_write_map(&b, 15);
	weft__mp_write_map(&b, 16);
	weft__mp_write_map(&b, 65536);
	assert_bytes(&b, "9fdc0010dcffffdd000100008fde0010df00010000");
	weft__mp_buf_free(&b);
}

static void test_all_types_round_trip(void **state)
{
	static const uint8_t bin[] = {0, 1, 0xff};
	static const double dv[] = {0.0, -0.0, 1.5, -2.25, 1e300, 5e-324, INFINITY, -INFINITY};
	struct mp_buf b;
	struct mp_reader r, saved;
	enum mp_type t;
	const char *s;
	const void *p;
	const uint8_t *raw;
	size_t n;
	uint32_t c;
	double d;
	bool bv;

	(void)state;
	weft__mp_buf_init(&b, NULL, 0);
	weft__mp_write_array(&b, 3 + 8 + 4);
	weft__mp_write_nil(&b);
	weft__mp_write_bool(&b, true);
	weft__mp_write_bool(&b, false);
	for (size_t i = 0; i < 8; i++)
		weft__mp_write_double(&b, dv[i]);
	weft__mp_write_cstr(&b, "h\xc3\xa9llo \xf0\x9f\x98\x80");
	weft__mp_write_bin(&b, bin, sizeof(bin));
	weft__mp_write_map(&b, 1);
	weft__mp_write_cstr(&b, "k");
	weft__mp_write_array(&b, 0);
	weft__mp_write_double(&b, NAN);
	assert_int_equal(b.err, 0);

	assert_true(weft__mp_valid(b.data, b.len, false));
	assert_false(weft__mp_valid(b.data, b.len, true)); /* bin, inf, nan */

	weft__mp_reader_init(&r, b.data, b.len);
	assert_int_equal(weft__mp_peek(&r, &t), WEFT_OK);
	assert_int_equal(t, MP_ARRAY);
	assert_int_equal(weft__mp_read_array(&r, &c), WEFT_OK);
	assert_int_equal(c, 15);
	assert_int_equal(weft__mp_peek(&r, &t), WEFT_OK);
	assert_int_equal(t, MP_NIL);
	saved = r;
	assert_int_equal(weft__mp_read_bool(&r, &bv), WEFT_EPROTO);
	assert_unchanged(&r, &saved);
	assert_int_equal(weft__mp_read_nil(&r), WEFT_OK);
	assert_int_equal(weft__mp_peek(&r, &t), WEFT_OK);
	assert_int_equal(t, MP_BOOL);
	assert_int_equal(weft__mp_read_nil(&r), WEFT_EPROTO);
	assert_int_equal(weft__mp_read_bool(&r, &bv), WEFT_OK);
	assert_true(bv);
	assert_int_equal(weft__mp_read_bool(&r, &bv), WEFT_OK);
	assert_false(bv);
	for (size_t i = 0; i < 8; i++) {
		assert_int_equal(weft__mp_peek(&r, &t), WEFT_OK);
		assert_int_equal(t, MP_FLOAT);
		saved = r;
		assert_int_equal(weft__mp_read_int(&r, &(int64_t){0}), WEFT_EPROTO);
		assert_unchanged(&r, &saved);
		assert_int_equal(weft__mp_read_double(&r, &d), WEFT_OK);
		assert_memory_equal(&d, &dv[i], sizeof(d));
	}
	assert_int_equal(weft__mp_peek(&r, &t), WEFT_OK);
	assert_int_equal(t, MP_STR);
	saved = r;
	assert_int_equal(weft__mp_read_bin(&r, &p, &n), WEFT_EPROTO);
	assert_unchanged(&r, &saved);
	assert_int_equal(weft__mp_read_str(&r, &s, &n), WEFT_OK);
	assert_int_equal(n, strlen("h\xc3\xa9llo \xf0\x9f\x98\x80"));
	assert_memory_equal(s, "h\xc3\xa9llo \xf0\x9f\x98\x80", n);
	assert_int_equal(weft__mp_peek(&r, &t), WEFT_OK);
	assert_int_equal(t, MP_BIN);
	assert_int_equal(weft__mp_read_str(&r, &s, &n), WEFT_EPROTO);
	assert_int_equal(weft__mp_read_bin(&r, &p, &n), WEFT_OK);
	assert_int_equal(n, 3);
	assert_memory_equal(p, bin, 3);
	assert_int_equal(weft__mp_peek(&r, &t), WEFT_OK);
	assert_int_equal(t, MP_MAP);
	assert_int_equal(weft__mp_read_array(&r, &c), WEFT_EPROTO);
	saved = r;
	assert_int_equal(weft__mp_skip(&r, &raw, &n), WEFT_OK);
	assert_ptr_equal(raw, saved.p);
	assert_int_equal(n, 4); /* 81 a1 6b 90 */
	r = saved;
	assert_int_equal(weft__mp_read_map(&r, &c), WEFT_OK);
	assert_int_equal(c, 1);
	assert_int_equal(weft__mp_read_str(&r, &s, &n), WEFT_OK);
	assert_int_equal(weft__mp_read_array(&r, &c), WEFT_OK);
	assert_int_equal(c, 0);
	assert_int_equal(weft__mp_read_double(&r, &d), WEFT_OK);
	assert_true(isnan(d));
	assert_int_equal(weft__mp_reader_left(&r), 0);
	assert_int_equal(weft__mp_peek(&r, &t), WEFT_EPROTO);
	assert_all_readers_fail(r.p, 0);
	weft__mp_buf_free(&b);
}

static void test_float32(void **state)
{
	static const uint8_t f[] = {0xca, 0x3f, 0xc0, 0x00, 0x00}; /* 1.5f */
	static const uint8_t nan32[] = {0xca, 0x7f, 0xc0, 0x00, 0x00};
	static const uint8_t inf32[] = {0xca, 0xff, 0x80, 0x00, 0x00};
	struct mp_reader r;
	double d;

	(void)state;
	weft__mp_reader_init(&r, f, sizeof(f));
	assert_int_equal(weft__mp_read_double(&r, &d), WEFT_OK);
	assert_true(d == 1.5);
	assert_true(weft__mp_valid(f, sizeof(f), true));
	assert_true(weft__mp_valid(nan32, sizeof(nan32), false));
	assert_false(weft__mp_valid(nan32, sizeof(nan32), true));
	assert_false(weft__mp_valid(inf32, sizeof(inf32), true));
}

/* A value using every kind of header, for the truncation test. */
static void build_complex(struct mp_buf *b)
{
	char s40[40];

	memset(s40, 'z', sizeof(s40));
	weft__mp_write_map(b, 3);
	weft__mp_write_cstr(b, "list");
	weft__mp_write_array(b, 9);
	weft__mp_write_int(b, -1);
	weft__mp_write_int(b, 1000);
	weft__mp_write_int(b, INT64_MIN);
	weft__mp_write_uint(b, UINT64_MAX);
	weft__mp_write_double(b, 0.25);
	weft__mp_write_str(b, s40, sizeof(s40));
	weft__mp_write_bin(b, "ab", 2);
	weft__mp_write_nil(b);
	weft__mp_write_cstr(b, "\xe2\x82\xac");
	weft__mp_write_cstr(b, "m");
	weft__mp_write_map(b, 1);
	weft__mp_write_cstr(b, "");
	weft__mp_write_array(b, 1);
	weft__mp_write_bool(b, true);
	weft__mp_write_cstr(b, "n");
	weft__mp_write_int(b, -70000);
	weft__mp_write_raw(b, "\xca\x3f\xc0\x00\x00", 0); /* nothing */
}

static void test_truncated_everywhere(void **state)
{
	struct mp_buf b;

	(void)state;
	weft__mp_buf_init(&b, NULL, 0);
	build_complex(&b);
	assert_int_equal(b.err, 0);
	assert_true(weft__mp_valid(b.data, b.len, false));
	for (size_t len = 0; len < b.len; len++) {
		/* a copy exactly `len` long, so ASan sees any read past the end */
		uint8_t *cut = malloc(len ? len : 1);
		struct mp_reader r, saved;
		const uint8_t *raw;
		size_t n;

		assert_non_null(cut);
		memcpy(cut, b.data, len);
		weft__mp_reader_init(&r, cut, len);
		saved = r;
		assert_int_equal(weft__mp_skip(&r, &raw, &n), WEFT_EPROTO);
		assert_unchanged(&r, &saved);
		assert_false(weft__mp_valid(cut, len, false));
		assert_false(weft__mp_valid(cut, len, true));
		free(cut);
	}
	/* trailing bytes: one value plus more is not "exactly one value" */
	weft__mp_write_nil(&b);
	assert_false(weft__mp_valid(b.data, b.len, false));
	weft__mp_buf_free(&b);
}

/* Each scalar header cut short, tried with every reader. */
static void test_truncated_heads(void **state)
{
	(void)state;
	static const struct {
		const char *b;
		size_t n;
	} t[] = {
	    {"\xcc", 1},
	    {"\xcd\x00", 2},
	    {"\xce\x00\x00\x00", 4},
	    {"\xcf\x00\x00\x00\x00\x00\x00\x00", 8},
	    {"\xd0", 1},
	    {"\xd1\x00", 2},
	    {"\xd2\x00\x00\x00", 4},
	    {"\xd3\x00\x00\x00\x00\x00\x00\x00", 8},
	    {"\xca\x00\x00\x00", 4},
	    {"\xcb\x00\x00\x00\x00\x00\x00\x00", 8},
	    {"\xd9", 1},
	    {"\xda\x00", 2},
	    {"\xdb\x00\x00\x00", 4},
	    {"\xc4", 1},
	    {"\xc5\x00", 2},
	    {"\xc6\x00\x00\x00", 4},
	    {"\xdc\x00", 2},
	    {"\xdd\x00\x00\x00", 4},
	    {"\xde\x00", 2},
	    {"\xdf\x00\x00\x00", 4},
	    {"\xa1", 1},
	    {"\xd9\x02\x61", 3},
	    {"\xc4\x01", 2},
	    {"\x91", 1},
	};
	for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		uint8_t *cut = malloc(t[i].n);

		assert_non_null(cut);
		memcpy(cut, t[i].b, t[i].n);
		assert_all_readers_fail(cut, t[i].n);
		free(cut);
	}
	/* headers that fit, contents that do not */
	assert_skip_fails("\x81\xa1\x61", 3);
	assert_skip_fails("\x92\xa1\x61", 3);
	assert_skip_fails("\x92\x91\x91", 3);
}

static void test_utf8(void **state)
{
	static const struct {
		const char *s;
		size_t n;
	} good[] =
	    {
	        {"", 0},
	        {"plain ascii", 11},
	        {"\x00", 1},
	        {"\x7f", 1},
	        {"\xc2\x80", 2},         /* U+0080 */
	        {"\xdf\xbf", 2},         /* U+07FF */
	        {"\xe0\xa0\x80", 3},     /* U+0800 */
	        {"\xed\x9f\xbf", 3},     /* U+D7FF */
	        {"\xee\x80\x80", 3},     /* U+E000 */
	        {"\xef\xbf\xbf", 3},     /* U+FFFF */
	        {"\xf0\x90\x80\x80", 4}, /* U+10000 */
	        {"\xf4\x8f\xbf\xbf", 4}, /* U+10FFFF */
	        {"a\xc3\xa9z\xe2\x82\xac", 7},
	    },
	  bad[] = {
	      {"\xc0\x80", 2},                 /* overlong NUL */
	      {"\xc1\xbf", 2},                 /* overlong */
	      {"\xe0\x80\x80", 3},             /* overlong */
	      {"\xe0\x9f\xbf", 3},             /* overlong U+07FF */
	      {"\xf0\x80\x80\x80", 4},         /* overlong */
	      {"\xf0\x8f\xbf\xbf", 4},         /* overlong U+FFFF */
	      {"\xed\xa0\x80", 3},             /* U+D800 surrogate */
	      {"\xed\xbf\xbf", 3},             /* U+DFFF surrogate */
	      {"\xed\xa0\x80\xed\xb0\x80", 6}, /* CESU-8 pair */
	      {"\xf4\x90\x80\x80", 4},         /* U+110000 */
	      {"\xf5\x80\x80\x80", 4},
	      {"\xf8\x88\x80\x80\x80", 5},
	      {"\xfe", 1},
	      {"\xff", 1},
	      {"\x80", 1}, /* lone continuation */
	      {"a\xbf", 2},
	      {"\xc2", 1}, /* truncated */
	      {"\xe1\x80", 2},
	      {"\xf1\x80\x80", 3},
	      {"\xc2\x41", 2}, /* bad continuation */
	      {"\xe1\x80\x41", 3},
	      {"\xf1\x80\x80\xc0", 4},
	  };
	uint8_t buf[16];

	(void)state;
	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		struct mp_reader r;
		const char *s;
		size_t n;

		assert_true(weft__utf8_valid(good[i].s, good[i].n));
		buf[0] = (uint8_t)(0xa0 | good[i].n);
		memcpy(buf + 1, good[i].s, good[i].n);
		weft__mp_reader_init(&r, buf, good[i].n + 1);
		assert_int_equal(weft__mp_read_str(&r, &s, &n), WEFT_OK);
		assert_int_equal(n, good[i].n);
		assert_true(weft__mp_valid(buf, good[i].n + 1, true));
	}
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		uint8_t bin[16];

		assert_false(weft__utf8_valid(bad[i].s, bad[i].n));
		buf[0] = (uint8_t)(0xa0 | bad[i].n);
		memcpy(buf + 1, bad[i].s, bad[i].n);
		assert_all_readers_fail(buf, bad[i].n + 1);
		/* the same bytes as bin are fine */
		bin[0] = 0xc4;
		bin[1] = (uint8_t)bad[i].n;
		memcpy(bin + 2, bad[i].s, bad[i].n);
		assert_true(weft__mp_valid(bin, bad[i].n + 2, false));
		/* and the string inside a container is caught by skip too */
		uint8_t arr[20] = {0x92, 0xc0};
		memcpy(arr + 2, buf, bad[i].n + 1);
		assert_false(weft__mp_valid(arr, bad[i].n + 3, false));
	}
}

static void test_reserved_and_ext(void **state)
{
	static const struct {
		const char *b;
		size_t n;
	} t[] = {
	    {"\xc1", 1},
	    {"\xc7\x01\x05\x00", 4},                          /* ext8 */
	    {"\xc8\x00\x01\x05\x00", 5},                      /* ext16 */
	    {"\xc9\x00\x00\x00\x01\x05\x00", 7},              /* ext32 */
	    {"\xd4\x05\x00", 3},                              /* fixext1 */
	    {"\xd5\x05\x00\x00", 4},                          /* fixext2 */
	    {"\xd6\x05\x00\x00\x00\x00", 6},                  /* fixext4 */
	    {"\xd7\xff\x00\x00\x00\x00\x00\x00\x00\x00", 10}, /* timestamp */
	    {"\xd8\x05\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00", 18},
	};
	struct mp_reader r;
	enum mp_type type;

	(void)state;
	for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		assert_all_readers_fail(t[i].b, t[i].n);
		weft__mp_reader_init(&r, t[i].b, t[i].n);
		assert_int_equal(weft__mp_peek(&r, &type), WEFT_EPROTO);
	}
	assert_skip_fails("\x91\xc1", 2);
	assert_skip_fails("\x81\xa1\x61\xd4\x05\x00", 6);
	assert_skip_fails("\x81\xc7\x00\x01\xc0", 5);
}

static void test_hostile_headers(void **state)
{
	static const struct {
		const char *b;
		size_t n;
	} t[] = {
	    {"\xdd\xff\xff\xff\xff", 5}, /* array of 2^32-1, nothing after */
	    {"\xdf\xff\xff\xff\xff", 5}, /* map of 2^32-1 */
	    {"\xdb\xff\xff\xff\xff", 5}, /* str of 2^32-1 */
	    {"\xc6\xff\xff\xff\xff", 5}, /* bin of 2^32-1 */
	    {"\xdc\xff\xff\xc0\xc0", 5}, /* array16 of 65535, 2 elements */
	    {"\x92\xc0", 2},             /* fixarray of 2, 1 element */
	    {"\x82\xc0\xc0\xc0", 4},     /* map of 2 pairs, 3 bytes */
	    {"\x81\xc0", 2},             /* map of 1 pair, 1 byte */
	};
	struct mp_reader r, saved;
	uint32_t n;

	(void)state;
	for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++)
		assert_all_readers_fail(t[i].b, t[i].n);
	/* the count is checked at the header, before any element is read */
	weft__mp_reader_init(&r, "\xdd\xff\xff\xff\xff", 5);
	saved = r;
	assert_int_equal(weft__mp_read_array(&r, &n), WEFT_EPROTO);
	assert_unchanged(&r, &saved);
	/* a count equal to the bytes left passes the header check */
	weft__mp_reader_init(&r, "\x92\xc0\xc0", 3);
	assert_int_equal(weft__mp_read_array(&r, &n), WEFT_OK);
	assert_int_equal(n, 2);
	weft__mp_reader_init(&r, "\x82\xc0\xc0\xc0\xc0", 5);
	assert_int_equal(weft__mp_read_map(&r, &n), WEFT_OK);
	assert_int_equal(n, 2);
}

/* n nested arrays (the innermost empty), or maps {"":{"":...{}}}. */
static uint8_t *nest(size_t n, bool maps, size_t *len)
{
	uint8_t *p = malloc(2 * n + 1);
	size_t k = 0;

	assert_non_null(p);
	for (size_t i = 0; i + 1 < n; i++) {
		if (maps) {
			p[k++] = 0x81;
			p[k++] = 0xa0;
		} else {
			p[k++] = 0x91;
		}
	}
	p[k++] = maps ? 0x80 : 0x90;
	*len = k;
	return p;
}

static void test_depth_limit(void **state)
{
	(void)state;
	for (int maps = 0; maps < 2; maps++) {
		size_t len;
		uint8_t *p;
		struct mp_reader r, saved;

		p = nest(WEFT_MP_MAX_DEPTH, maps, &len);
		assert_true(weft__mp_valid(p, len, false));
		assert_true(weft__mp_valid(p, len, true));
		weft__mp_reader_init(&r, p, len);
		assert_int_equal(weft__mp_skip(&r, NULL, NULL), WEFT_OK);
		free(p);

		p = nest(WEFT_MP_MAX_DEPTH + 1, maps, &len);
		assert_false(weft__mp_valid(p, len, false));
		assert_false(weft__mp_valid(p, len, true));
		weft__mp_reader_init(&r, p, len);
		saved = r;
		assert_int_equal(weft__mp_skip(&r, NULL, NULL), WEFT_EPROTO);
		assert_unchanged(&r, &saved);
		free(p);

		p = nest(200000, maps, &len);
		assert_false(weft__mp_valid(p, len, true));
		free(p);
	}
}

static void test_writer_max(void **state)
{
	struct mp_buf b;

	(void)state;
	weft__mp_buf_init(&b, NULL, 10);
	weft__mp_write_str(&b, "0123456789abcdefghij", 20);
	assert_int_equal(b.err, WEFT_ETOOBIG);
	assert_int_equal(b.len, 0);
	weft__mp_write_nil(&b); /* sticky: no-op */
	assert_int_equal(b.len, 0);
	assert_int_equal(b.err, WEFT_ETOOBIG);

	weft__mp_buf_reset(&b);
	assert_int_equal(b.err, 0);
	weft__mp_write_str(&b, "012345678", 9); /* exactly 10 bytes */
	assert_int_equal(b.err, 0);
	assert_int_equal(b.len, 10);
	assert_true(b.cap <= 10);
	weft__mp_write_nil(&b);
	assert_int_equal(b.err, WEFT_ETOOBIG);
	assert_int_equal(b.len, 10);
	weft__mp_buf_free(&b);
	assert_null(b.data);
	assert_int_equal(b.max, 10);

	/* a multi-byte head that would cross the limit writes nothing */
	weft__mp_buf_init(&b, NULL, 8);
	weft__mp_write_uint(&b, UINT64_MAX);
	assert_int_equal(b.err, WEFT_ETOOBIG);
	assert_int_equal(b.len, 0);
	weft__mp_buf_free(&b);
}

static void test_buf_take(void **state)
{
	struct mp_buf b;
	uint8_t *p;
	size_t n;

	(void)state;
	weft__mp_buf_init(&b, NULL, 0);
	p = weft__mp_buf_take(&b, &n);
	assert_null(p);
	assert_int_equal(n, 0);
	weft__mp_write_cstr(&b, "abc");
	p = weft__mp_buf_take(&b, &n);
	assert_non_null(p);
	assert_int_equal(n, 4);
	assert_memory_equal(p,
	                    "\xa3"
	                    "abc",
	                    4);
	assert_null(b.data);
	assert_int_equal(b.len, 0);
	weft__free(b.alloc, p);
	/* a buffer in error hands out nothing */
	b.max = 2;
	weft__mp_write_cstr(&b, "abc");
	assert_int_equal(b.err, WEFT_ETOOBIG);
	p = weft__mp_buf_take(&b, &n);
	assert_null(p);
	assert_int_equal(n, 0);
	assert_int_equal(b.err, 0);
	weft__mp_buf_free(&b);
}

/* Enough writes to make the buffer grow several times. */
static void alloc_scenario(struct mp_buf *b)
{
	char s[300];

	memset(s, 'q', sizeof(s));
	weft__mp_write_array(b, 100);
	for (int i = 0; i < 100; i++) {
		weft__mp_write_int(b, (int64_t)i * 100003);
		weft__mp_write_str(b, s, (size_t)i * 3);
	}
}

static void test_writer_alloc_failure(void **state)
{
	struct failalloc fa;
	struct mp_buf b;
	long count;

	(void)state;
	failalloc_init(&fa, 0, 0);
	weft__mp_buf_init(&b, &fa.a, 0);
	alloc_scenario(&b);
	assert_int_equal(b.err, 0);
	count = fa.count;
	assert_true(count > 3);
	weft__mp_buf_free(&b);
	assert_int_equal(fa.live, 0);

	for (long i = 1; i <= count; i++) {
		for (int sticky = 0; sticky < 2; sticky++) {
			size_t len;

			failalloc_init(&fa, i, sticky);
			weft__mp_buf_init(&b, &fa.a, 0);
			alloc_scenario(&b);
			assert_int_equal(b.err, WEFT_ENOMEM);
			/* nothing more is appended after the first failure */
			len = b.len;
			assert_int_equal(fa.count, i);
			weft__mp_write_nil(&b);
			assert_int_equal(b.len, len);
			weft__mp_buf_free(&b);
			assert_int_equal(fa.live, 0);
		}
	}
}

/* A map of n keys "k0".."k<n-1>" (values nil); key `dup` is a copy of key
 * `of` when dup != of. */
static void build_map(struct mp_buf *b, uint32_t n, uint32_t dup, uint32_t of)
{
	weft__mp_buf_reset(b);
	weft__mp_write_map(b, n);
	for (uint32_t i = 0; i < n; i++) {
		char k[16];

		snprintf(k, sizeof(k), "k%u", (unsigned)(i == dup ? of : i));
		weft__mp_write_cstr(b, k);
		weft__mp_write_nil(b);
	}
}

static void test_valid_json_compatible(void **state)
{
	static const struct {
		const char *b;
		size_t n;
		bool plain, json;
	} t[] = {
	    {"\x82\xa1\x61\x01\xa1\x61\x02", 7, true, false},         /* {"a":1,"a":2} */
	    {"\x82\xa1\x61\x01\xa1\x62\x02", 7, true, true},          /* {"a":1,"b":2} */
	    {"\x82\xa1\x61\x01\xa2\x61\x61\x02", 8, true, true},      /* "a","aa" */
	    {"\x82\xa0\x01\xa0\x02", 5, true, false},                 /* "" twice */
	    {"\x81\x01\x02", 3, true, false},                         /* {1:2} */
	    {"\x81\xc0\x02", 3, true, false},                         /* {nil:2} */
	    {"\x81\xc4\x01\x61\x02", 5, true, false},                 /* bin key */
	    {"\xc4\x01\x61", 3, true, false},                         /* bin */
	    {"\x91\xc4\x00", 3, true, false},                         /* bin in array */
	    {"\xcb\x7f\xf8\x00\x00\x00\x00\x00\x00", 9, true, false}, /* NaN */
	    {"\xcb\x7f\xf0\x00\x00\x00\x00\x00\x00", 9, true, false}, /* +Inf */
	    {"\xcb\xff\xf0\x00\x00\x00\x00\x00\x00", 9, true, false}, /* -Inf */
	    {"\xcb\x7f\xef\xff\xff\xff\xff\xff\xff", 9, true, true},  /* DBL_MAX */
	    {"\x92\x80\x82\xa1\x78\xc0\xa1\x78\xc0", 9, true, false}, /* dup nested */
	    {"\x81\xa1\x61\x82\xa1\x62\xc0\xa1\x62\xc0", 10, true, false},
	    {"\x82\xa1\x61\x81\xa1\x62\xc0\xa1\x62\x81\xa1\x62\xc0", 13, true, true},
	    {"\xc0", 1, true, true},
	    {"", 0, false, false},
	    {"\xc0\xc0", 2, false, false},
	};
	struct mp_buf b;

	(void)state;
	for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		assert_int_equal(weft__mp_valid(t[i].b, t[i].n, false), t[i].plain);
		assert_int_equal(weft__mp_valid(t[i].b, t[i].n, true), t[i].json);
	}

	/* big maps: duplicates inside one block, across blocks, at the ends */
	weft__mp_buf_init(&b, NULL, 0);
	static const uint32_t sizes[] = {2, 63, 64, 65, 128, 129, 200, 1000};
	for (size_t s = 0; s < sizeof(sizes) / sizeof(sizes[0]); s++) {
		uint32_t n = sizes[s];

		build_map(&b, n, UINT32_MAX, 0);
		assert_true(weft__mp_valid(b.data, b.len, true));
		build_map(&b, n, n - 1, 0);
		assert_true(weft__mp_valid(b.data, b.len, false));
		assert_false(weft__mp_valid(b.data, b.len, true));
		build_map(&b, n, 1, 0);
		assert_false(weft__mp_valid(b.data, b.len, true));
		build_map(&b, n, n - 1, n - 2);
		assert_false(weft__mp_valid(b.data, b.len, true));
		build_map(&b, n, n / 2, n > 2 ? n / 2 + 1 : 0);
		assert_false(weft__mp_valid(b.data, b.len, true));
		if (n > 70) {
			build_map(&b, n, 70, 3);
			assert_false(weft__mp_valid(b.data, b.len, true));
		}
	}
	/* sorted keys take the linear path; a repeat breaks the order */
	for (int dup = 0; dup < 2; dup++) {
		weft__mp_buf_reset(&b);
		weft__mp_write_map(&b, 1000);
		for (int i = 0; i < 1000; i++) {
			char k[8];

			snprintf(k, sizeof(k), "%04d", dup && i == 600 ? 599 : i);
			weft__mp_write_cstr(&b, k);
			weft__mp_write_int(&b, i);
		}
		assert_true(weft__mp_valid(b.data, b.len, false));
		assert_int_equal(weft__mp_valid(b.data, b.len, true), !dup);
	}
	/* a non-string key in a later block of a big map */
	weft__mp_buf_reset(&b);
	weft__mp_write_map(&b, 100);
	for (int i = 0; i < 99; i++) {
		char k[8];

		snprintf(k, sizeof(k), "%d", i);
		weft__mp_write_cstr(&b, k);
		weft__mp_write_int(&b, i);
	}
	weft__mp_write_int(&b, 7); /* integer key, last */
	weft__mp_write_int(&b, 7);
	assert_true(weft__mp_valid(b.data, b.len, false));
	assert_false(weft__mp_valid(b.data, b.len, true));
	weft__mp_buf_free(&b);
}

/* Key i of an unsorted map: the hex of i times an odd constant, a bijection
 * on uint32, so the keys are distinct and in no particular order. */
static void shuffled_key(char *k, size_t size, uint32_t i)
{
	snprintf(k, size, "%08x", (unsigned)(i * 2654435761u));
}

/* A map of n unsorted keys (values nil); key `dup` is a copy of key `of`
 * when dup != of. Appends to b. */
static void write_shuffled_map(struct mp_buf *b, uint32_t n, uint32_t dup, uint32_t of)
{
	weft__mp_write_map(b, n);
	for (uint32_t i = 0; i < n; i++) {
		char k[16];

		shuffled_key(k, sizeof(k), i == dup ? of : i);
		weft__mp_write_cstr(b, k);
		weft__mp_write_nil(b);
	}
}

static int validate(const struct mp_buf *b, const struct weft_alloc *a)
{
	return weft__mp_validate(b->data, b->len, true, a);
}

static void test_validate_large_unsorted(void **state)
{
	static const uint32_t sizes[] = {65, 100, 1000, 50000};
	struct mp_buf b;

	(void)state;
	weft__mp_buf_init(&b, NULL, 0);
	for (size_t s = 0; s < sizeof(sizes) / sizeof(sizes[0]); s++) {
		uint32_t n = sizes[s];
		const struct {
			uint32_t dup, of;
		} dups[] = {
		    {1, 0},             /* at the start */
		    {n - 1, n - 2},     /* at the end */
		    {n - 1, 0},         /* first and last */
		    {3 * n / 4, n / 4}, /* one in each half */
		    {n / 2, n / 2 - 1}, /* across the middle */
		};

		weft__mp_buf_reset(&b);
		write_shuffled_map(&b, n, UINT32_MAX, 0);
		assert_int_equal(validate(&b, NULL), WEFT_OK);
		assert_true(weft__mp_valid(b.data, b.len, true));
		for (size_t d = 0; d < sizeof(dups) / sizeof(dups[0]); d++) {
			weft__mp_buf_reset(&b);
			write_shuffled_map(&b, n, dups[d].dup, dups[d].of);
			assert_int_equal(b.err, 0);
			assert_int_equal(weft__mp_validate(b.data, b.len, false, NULL), WEFT_OK);
			assert_int_equal(validate(&b, NULL), WEFT_EPROTO);
			assert_false(weft__mp_valid(b.data, b.len, true));
		}
	}

	/* a duplicate in a big map nested in another big map, after a big
	 * valid sibling: the scratch is reused and grown between maps */
	for (int dup = 0; dup < 2; dup++) {
		weft__mp_buf_reset(&b);
		weft__mp_write_array(&b, 2);
		write_shuffled_map(&b, 300, UINT32_MAX, 0);
		weft__mp_write_map(&b, 100);
		for (uint32_t i = 0; i < 100; i++) {
			char k[16];

			shuffled_key(k, sizeof(k), i);
			weft__mp_write_cstr(&b, k);
			if (i == 40)
				write_shuffled_map(&b, 1000, dup ? 999 : UINT32_MAX, 17);
			else
				weft__mp_write_int(&b, i);
		}
		assert_int_equal(validate(&b, NULL), dup ? WEFT_EPROTO : WEFT_OK);
	}

	/* a non-string key late in a big unsorted map */
	weft__mp_buf_reset(&b);
	weft__mp_write_map(&b, 200);
	for (uint32_t i = 0; i < 199; i++) {
		char k[16];

		shuffled_key(k, sizeof(k), i);
		weft__mp_write_cstr(&b, k);
		weft__mp_write_nil(&b);
	}
	weft__mp_write_int(&b, 1);
	weft__mp_write_nil(&b);
	assert_int_equal(weft__mp_validate(b.data, b.len, false, NULL), WEFT_OK);
	assert_int_equal(validate(&b, NULL), WEFT_EPROTO);
	weft__mp_buf_free(&b);
}

/* Validates b and prints how long it took (no assertion on the time: a
 * sanitizer or a loaded machine is slow, and a quadratic check takes
 * seconds here, so a regression shows in the output and the suite time). */
static void validate_timed(const struct mp_buf *b, uint32_t n, const char *what)
{
	clock_t t0 = clock();

	assert_int_equal(validate(b, NULL), WEFT_OK);
	printf("    1 MiB map, %u unsorted %s keys (%zu bytes): validated in %.3f s\n", (unsigned)n,
	       what, b->len, (double)(clock() - t0) / CLOCKS_PER_SEC);
}

static void test_validate_1mib_map(void **state)
{
	/* 64 symbols: key i of the tiny map is 3 of them, from i times an odd
	 * number mod 64^3 (a bijection), so the keys are distinct and unsorted */
	static const char sym[] =
	    "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz-_";
	struct mp_buf b;
	uint32_t n;

	(void)state;
	weft__mp_buf_init(&b, NULL, (size_t)1 << 20);

	/* ~100k short keys: 10 bytes a pair */
	n = ((1u << 20) - 5) / 10;
	write_shuffled_map(&b, n, UINT32_MAX, 0);
	assert_int_equal(b.err, 0);
	validate_timed(&b, n, "8-byte");

	/* as many tiny keys as fit: 5 bytes a pair */
	weft__mp_buf_reset(&b);
	n = ((1u << 20) - 5) / 5;
	weft__mp_write_map(&b, n);
	for (uint32_t i = 0; i < n; i++) {
		uint32_t v = (i * 40503u) & 0x3ffff;
		char k[3] = {sym[v >> 12], sym[(v >> 6) & 63], sym[v & 63]};

		weft__mp_write_str(&b, k, 3);
		weft__mp_write_nil(&b);
	}
	assert_int_equal(b.err, 0);
	validate_timed(&b, n, "3-byte");
	weft__mp_buf_free(&b);
}

static void test_validate_alloc_failure(void **state)
{
	struct failalloc fa;
	struct mp_buf b;

	(void)state;
	weft__mp_buf_init(&b, NULL, 0);

	/* small or sorted maps, and plain validation, take no scratch */
	weft__mp_write_array(&b, 2);
	write_shuffled_map(&b, 64, UINT32_MAX, 0);
	weft__mp_write_map(&b, 1000);
	for (int i = 0; i < 1000; i++) {
		char k[8];

		snprintf(k, sizeof(k), "%04d", i);
		weft__mp_write_cstr(&b, k);
		weft__mp_write_nil(&b);
	}
	failalloc_init(&fa, 1, 1);
	assert_int_equal(validate(&b, &fa.a), WEFT_OK);
	assert_int_equal(fa.count, 0);
	weft__mp_buf_reset(&b);
	write_shuffled_map(&b, 2000, UINT32_MAX, 0);
	assert_int_equal(weft__mp_validate(b.data, b.len, false, &fa.a), WEFT_OK);
	assert_int_equal(fa.count, 0);

	/* one large unsorted map: one allocation, freed */
	weft__mp_buf_reset(&b);
	write_shuffled_map(&b, 1000, UINT32_MAX, 0);
	failalloc_init(&fa, 0, 0);
	assert_int_equal(validate(&b, &fa.a), WEFT_OK);
	assert_int_equal(fa.count, 1);
	assert_int_equal(fa.live, 0);
	failalloc_init(&fa, 1, 0);
	assert_int_equal(validate(&b, &fa.a), WEFT_ENOMEM);
	assert_int_equal(fa.live, 0);

	/* maps of 100, 80, 1000, 900 and 100 unsorted keys: the scratch is
	 * taken once, grown once, reused for the rest, freed at the end */
	weft__mp_buf_reset(&b);
	weft__mp_write_array(&b, 5);
	write_shuffled_map(&b, 100, UINT32_MAX, 0);
	write_shuffled_map(&b, 80, UINT32_MAX, 0);
	write_shuffled_map(&b, 1000, UINT32_MAX, 0);
	write_shuffled_map(&b, 900, UINT32_MAX, 0);
	write_shuffled_map(&b, 100, UINT32_MAX, 0);
	failalloc_init(&fa, 0, 0);
	assert_int_equal(validate(&b, &fa.a), WEFT_OK);
	assert_int_equal(fa.count, 2);
	assert_int_equal(fa.live, 0);
	/* failing the first or the second allocation, or every one */
	for (long at = 1; at <= 2; at++) {
		for (int sticky = 0; sticky < 2; sticky++) {
			failalloc_init(&fa, at, sticky);
			assert_int_equal(validate(&b, &fa.a), WEFT_ENOMEM);
			assert_int_equal(fa.live, 0);
		}
	}
	failalloc_init(&fa, 3, 1);
	assert_int_equal(validate(&b, &fa.a), WEFT_OK);
	assert_int_equal(fa.live, 0);

	/* invalid bytes found with the scratch held are EPROTO, freed too */
	weft__mp_buf_reset(&b);
	weft__mp_write_array(&b, 2);
	write_shuffled_map(&b, 100, UINT32_MAX, 0);
	write_shuffled_map(&b, 1000, 999, 3);
	failalloc_init(&fa, 0, 0);
	assert_int_equal(validate(&b, &fa.a), WEFT_EPROTO);
	assert_int_equal(fa.live, 0);
	weft__mp_buf_free(&b);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_int_boundaries),
	    cmocka_unit_test(test_uint_above_int64),
	    cmocka_unit_test(test_int_lenient_encodings),
	    cmocka_unit_test(test_golden_bytes),
	    cmocka_unit_test(test_all_types_round_trip),
	    cmocka_unit_test(test_float32),
	    cmocka_unit_test(test_truncated_everywhere),
	    cmocka_unit_test(test_truncated_heads),
	    cmocka_unit_test(test_utf8),
	    cmocka_unit_test(test_reserved_and_ext),
	    cmocka_unit_test(test_hostile_headers),
	    cmocka_unit_test(test_depth_limit),
	    cmocka_unit_test(test_writer_max),
	    cmocka_unit_test(test_buf_take),
	    cmocka_unit_test(test_writer_alloc_failure),
	    cmocka_unit_test(test_valid_json_compatible),
	    cmocka_unit_test(test_validate_large_unsorted),
	    cmocka_unit_test(test_validate_1mib_map),
	    cmocka_unit_test(test_validate_alloc_failure),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
