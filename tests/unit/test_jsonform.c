/*
 * test_jsonform.c - the JSON debug form of the HTTP endpoints
 * (server/jsonform.h): exact golden strings both ways, exact 64-bit
 * integers at both ends of the range, bin as {"$bin": base64}, the "$map"
 * escape, round trips of every golden protocol message, and refusals.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "weft/weft.h"
#include "server/jsonform.h"

static char *to_json(const uint8_t *mp, size_t len)
{
	struct mp_buf out;
	char err[128];
	char *s;

	weft__mp_buf_init(&out, NULL, 0);
	assert_int_equal(weft__jsonform_from_mp(mp, len, &out, err, sizeof(err)), WEFT_OK);
	s = malloc(out.len + 1);
	assert_non_null(s);
	memcpy(s, out.data, out.len);
	s[out.len] = '\0';
	weft__mp_buf_free(&out);
	return s;
}

static void back_and_forth(const struct mp_buf *mp, const char *want)
{
	struct mp_buf again;
	char err[128];
	char *json = to_json(mp->data, mp->len);

	assert_string_equal(json, want);
	weft__mp_buf_init(&again, NULL, 0);
	assert_int_equal(weft__jsonform_to_mp(json, strlen(json), &again, err, sizeof(err)),
	                 WEFT_OK);
	assert_int_equal(again.len, mp->len);
	assert_memory_equal(again.data, mp->data, mp->len);
	weft__mp_buf_free(&again);
	free(json);
}

static void test_values(void **state)
{
	struct mp_buf b;

	(void)state;
	weft__mp_buf_init(&b, NULL, 0);
	weft__mp_write_array(&b, 7);
	weft__mp_write_nil(&b);
	weft__mp_write_bool(&b, true);
	weft__mp_write_uint(&b, UINT64_MAX);
	weft__mp_write_int(&b, INT64_MIN);
	weft__mp_write_cstr(&b, "a\"\\\n\xc3\xa9");
	weft__mp_write_bin(&b, "\x00\x01\xfe\xff", 4);
	weft__mp_write_map(&b, 2);
	weft__mp_write_cstr(&b, "z");
	weft__mp_write_uint(&b, 1);
	weft__mp_write_cstr(&b, "a");
	weft__mp_write_array(&b, 0);
	back_and_forth(&b, "[null,true,18446744073709551615,-9223372036854775808,"
	                   "\"a\\\"\\\\\\n\xc3\xa9\",{\"$bin\":\"AAH+/w==\"},{\"z\":1,\"a\":[]}]");

	/* A map that looks like an escape is escaped itself. */
	weft__mp_buf_reset(&b);
	weft__mp_write_map(&b, 1);
	weft__mp_write_cstr(&b, "$bin");
	weft__mp_write_cstr(&b, "not base64!");
	back_and_forth(&b, "{\"$map\":{\"$bin\":\"not base64!\"}}");

	/* A float stays a float. */
	weft__mp_buf_reset(&b);
	weft__mp_write_double(&b, 2.0);
	{
		char *j = to_json(b.data, b.len);

		assert_non_null(strchr(j, '.') ? j : strchr(j, 'e'));
		free(j);
	}
	weft__mp_buf_free(&b);
}

static void test_refusals(void **state)
{
	static const char *const bad[] = {
	    "",                     /* not JSON */
	    "[1,",                  /* truncated */
	    "18446744073709551616", /* above 2^64 - 1 */
	    "-9223372036854775809", /* below -2^63 */
	    "{\"$bin\":\"@@@\"}",   /* bad base64 */
	    "{\"$bin\":1}",         /* bin must be a string */
	    "{\"a\":1,\"a\":2}",    /* duplicate key */
	    "[1] [2]",              /* two values */
	};
	struct mp_buf b;
	char err[128];

	(void)state;
	weft__mp_buf_init(&b, NULL, 0);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		weft__mp_buf_reset(&b);
		assert_int_equal(weft__jsonform_to_mp(bad[i], strlen(bad[i]), &b, err, sizeof(err)),
		                 WEFT_EINVAL);
		assert_true(err[0] != '\0');
	}
	/* Deeper than the limit. */
	{
		char deep[200];

		memset(deep, '[', 100);
		memset(deep + 100, ']', 100);
		weft__mp_buf_reset(&b);
		assert_int_equal(weft__jsonform_to_mp(deep, sizeof(deep), &b, err, sizeof(err)),
		                 WEFT_EINVAL);
	}
	/* MessagePack the JSON form cannot hold: an int map key, trailing
	 * bytes, a NaN. */
	{
		static const uint8_t intkey[] = {0x81, 0x01, 0x02};
		static const uint8_t trailing[] = {0xc0, 0xc0};
		static const uint8_t nan[] = {0xcb, 0x7f, 0xf8, 0, 0, 0, 0, 0, 0};
		const uint8_t *cases[] = {intkey, trailing, nan};
		size_t lens[] = {sizeof(intkey), sizeof(trailing), sizeof(nan)};

		for (int i = 0; i < 3; i++) {
			weft__mp_buf_reset(&b);
			assert_int_equal(
			    weft__jsonform_from_mp(cases[i], lens[i], &b, err, sizeof(err)),
			    WEFT_EPROTO);
		}
	}
	weft__mp_buf_free(&b);
}

/* Every golden protocol message goes to JSON and back byte for byte. */
static void test_golden_messages(void **state)
{
	static const char *const names[] = {
	    "hello.bin",  "push_one_op.bin", "ack.bin",    "changes_catchup.bin",
	    "reject.bin", "welcome.bin",     "synced.bin", "push_txn.bin",
	};
	int found = 0;

	(void)state;
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		char path[512];
		uint8_t buf[1 << 16];
		size_t len;
		FILE *f;
		struct mp_buf mp, again;
		char err[128];
		char *json;

		snprintf(path, sizeof(path), "%s/golden/%s", WEFT_TEST_DATA_DIR, names[i]);
		f = fopen(path, "rb");
		assert_non_null(f);
		len = fread(buf, 1, sizeof(buf), f);
		fclose(f);
		found++;
		weft__mp_buf_init(&mp, NULL, 0);
		weft__mp_write_raw(&mp, buf, len);
		json = to_json(mp.data, mp.len);
		weft__mp_buf_init(&again, NULL, 0);
		assert_int_equal(weft__jsonform_to_mp(json, strlen(json), &again, err, sizeof(err)),
		                 WEFT_OK);
		assert_int_equal(again.len, len);
		assert_memory_equal(again.data, buf, len);
		weft__mp_buf_free(&again);
		weft__mp_buf_free(&mp);
		free(json);
	}
	assert_int_equal(found, (int)(sizeof(names) / sizeof(names[0])));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_values),
	    cmocka_unit_test(test_refusals),
	    cmocka_unit_test(test_golden_messages),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
