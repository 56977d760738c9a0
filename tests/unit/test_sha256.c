/*
 * test_sha256.c - SHA-256 against the FIPS 180-2/NIST example vectors, the
 * padding boundaries (55, 56, 63, 64, 65, 119, 120 bytes; digests from an
 * independent implementation, Python's hashlib), and incremental hashing
 * split at every offset of a 200-byte message.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/sha256.h"

static void to_hex(const uint8_t d[32], char hex[65])
{
	for (int i = 0; i < 32; i++)
		snprintf(hex + 2 * i, 3, "%02x", d[i]);
}

static void check(const void *data, size_t len, const char *want)
{
	uint8_t d[32];
	char hex[65];

	weft__sha256(data, len, d);
	to_hex(d, hex);
	assert_string_equal(hex, want);
}

static void test_nist_vectors(void **state)
{
	(void)state;
	check("", 0, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
	check("abc", 3, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
	check("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq", 56,
	      "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
	check("abcdefghbcdefghicdefghijdefghijkefghijklfghijklmghijklmnhijklmnoijklmnopjklmnop"
	      "qklmnopqrlmnopqrsmnopqrstnopqrstu",
	      112, "cf5b16a778af8380036ce59e7b0492370b249b11e8f07a51afac45037afee9d1");
}

static void test_million_a(void **state)
{
	char *m = malloc(1000000);
	struct weft_sha256 s;
	uint8_t d[32];
	char hex[65];
	const char *want = "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0";

	(void)state;
	assert_non_null(m);
	memset(m, 'a', 1000000);
	check(m, 1000000, want);
	/* and in odd-sized pieces */
	weft__sha256_init(&s);
	for (size_t off = 0; off < 1000000; off += 997)
		weft__sha256_update(&s, m + off, 1000000 - off < 997 ? 1000000 - off : 997);
	weft__sha256_final(&s, d);
	to_hex(d, hex);
	assert_string_equal(hex, want);
	free(m);
}

static void test_padding_boundaries(void **state)
{
	static const struct {
		size_t n;
		const char *hex;
	} v[] = {
	    {55, "d5e285683cd4efc02d021a5c62014694958901005d6f71e89e0989fac77e4072"},
	    {56, "04c26261370ee7541549d16dee320c723e3fd14671e66a099afe0a377c16888e"},
	    {63, "75220b47218278e656f2013bb8f0c455a25eaf01e86c64924e9d48d89776d6f2"},
	    {64, "7ce100971f64e7001e8fe5a51973ecdfe1ced42befe7ee8d5fd6219506b5393c"},
	    {65, "9537c5fdf120482f7d58d25e9ed583f52c02b4e304ea814db1633ad565aed7e9"},
	    {119, "000b48d4edf0fa7bee3c6236ecd2785baa5db4eeb8bb54341b029e0d9fa5fb0c"},
	    {120, "13f05a0b594787f5ecd315edc96141bd3243203d1b7d4f0836f37308b276ba98"},
	};
	char m[128];

	(void)state;
	memset(m, 'x', sizeof(m));
	for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++)
		check(m, v[i].n, v[i].hex);
}

static void test_incremental_every_split(void **state)
{
	uint8_t m[200], one[32], d[32];
	char hex[65];

	(void)state;
	for (int i = 0; i < 200; i++)
		m[i] = (uint8_t)(i * 7 + 3);
	weft__sha256(m, sizeof(m), one);
	to_hex(one, hex);
	assert_string_equal(hex,
	                    "2c7e18c942ef065b526a2d4e5546283749cd3ddfb51d8fc71f42717363685f46");
	for (size_t a = 0; a <= sizeof(m); a++) {
		struct weft_sha256 s;

		weft__sha256_init(&s);
		weft__sha256_update(&s, m, a);
		weft__sha256_update(&s, NULL, 0);
		weft__sha256_update(&s, m + a, sizeof(m) - a);
		weft__sha256_final(&s, d);
		assert_memory_equal(d, one, 32);
		/* three pieces: a, then 1 byte, then the rest */
		if (a < sizeof(m)) {
			weft__sha256_init(&s);
			weft__sha256_update(&s, m, a);
			weft__sha256_update(&s, m + a, 1);
			weft__sha256_update(&s, m + a + 1, sizeof(m) - a - 1);
			weft__sha256_final(&s, d);
			assert_memory_equal(d, one, 32);
		}
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_nist_vectors),
	    cmocka_unit_test(test_million_a),
	    cmocka_unit_test(test_padding_boundaries),
	    cmocka_unit_test(test_incremental_every_split),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
