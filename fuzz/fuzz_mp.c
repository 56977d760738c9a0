/*
 * fuzz_mp.c - libFuzzer target for the MessagePack reader, weft__mp_valid
 * and the canonical JSON writer. Besides "never crash, never read out of
 * bounds", it checks these invariants and abort()s when one breaks:
 *  - a failed read leaves the reader where it was;
 *  - mp_skip succeeds on a prefix iff mp_valid(plain) holds for that
 *    prefix; mp_valid(plain) on the whole input iff skip consumes it all;
 *  - mp_valid(json) implies mp_valid(plain);
 *  - mp_validate agrees with mp_valid; with an allocator that always fails
 *    it returns the same verdict or WEFT_ENOMEM (json), and never touches
 *    the allocator for plain validation;
 *  - json_write_mp succeeds iff the value is valid and json_compatible, and
 *    then its output is valid UTF-8 and the reader moved past the value;
 *  - decoding the value with the typed readers and re-encoding it with the
 *    writer gives a value that is valid and prints the same JSON.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "weft/weft.h"
#include "core/json.h"
#include "core/mp.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check(int cond)
{
	if (!cond)
		abort();
}

static void *no_malloc(void *ctx, size_t n)
{
	(void)ctx;
	(void)n;
	return NULL;
}

static void *no_realloc(void *ctx, void *p, size_t n)
{
	(void)ctx;
	(void)p;
	(void)n;
	return NULL;
}

static void no_free(void *ctx, void *p)
{
	(void)ctx;
	check(p == NULL); /* nothing was ever handed out */
}

static const struct weft_alloc no_alloc = {no_malloc, no_realloc, no_free, NULL};

/* Every typed reader at r: a failure must not move r. */
static void try_readers(const struct mp_reader *r0)
{
	struct mp_reader r = *r0;
	enum mp_type t;
	const char *s;
	const void *p;
	size_t n;
	uint32_t c;
	int64_t i;
	uint64_t u;
	double d;
	bool b;

	if (weft__mp_read_nil(&r) != WEFT_OK)
		check(r.p == r0->p);
	r = *r0;
	if (weft__mp_read_bool(&r, &b) != WEFT_OK)
		check(r.p == r0->p);
	r = *r0;
	if (weft__mp_read_int(&r, &i) != WEFT_OK)
		check(r.p == r0->p);
	r = *r0;
	if (weft__mp_read_uint(&r, &u) != WEFT_OK)
		check(r.p == r0->p);
	r = *r0;
	if (weft__mp_read_double(&r, &d) != WEFT_OK)
		check(r.p == r0->p);
	r = *r0;
	if (weft__mp_read_str(&r, &s, &n) == WEFT_OK)
		check(weft__utf8_valid(s, n) && s + n <= (const char *)r.end);
	else
		check(r.p == r0->p);
	r = *r0;
	if (weft__mp_read_bin(&r, &p, &n) == WEFT_OK)
		check((const uint8_t *)p + n <= r.end);
	else
		check(r.p == r0->p);
	r = *r0;
	if (weft__mp_read_array(&r, &c) == WEFT_OK)
		check(c <= weft__mp_reader_left(&r));
	else
		check(r.p == r0->p);
	r = *r0;
	if (weft__mp_read_map(&r, &c) == WEFT_OK)
		check((uint64_t)c * 2 <= weft__mp_reader_left(&r));
	else
		check(r.p == r0->p);
	r = *r0;
	(void)weft__mp_peek(&r, &t);
}

/* Re-encodes one already validated value through the typed readers. */
static void rebuild(struct mp_reader *r, struct mp_buf *out)
{
	enum mp_type t;
	const char *s;
	const void *p;
	size_t n;
	uint32_t c;
	int64_t i;
	uint64_t u;
	double d;
	bool b;

	check(weft__mp_peek(r, &t) == WEFT_OK);
	switch (t) {
	case MP_NIL:
		check(weft__mp_read_nil(r) == WEFT_OK);
		weft__mp_write_nil(out);
		break;
	case MP_BOOL:
		check(weft__mp_read_bool(r, &b) == WEFT_OK);
		weft__mp_write_bool(out, b);
		break;
	case MP_INT:
		check(weft__mp_read_int(r, &i) == WEFT_OK);
		weft__mp_write_int(out, i);
		break;
	case MP_UINT:
		check(weft__mp_read_uint(r, &u) == WEFT_OK);
		weft__mp_write_uint(out, u);
		break;
	case MP_FLOAT:
		check(weft__mp_read_double(r, &d) == WEFT_OK);
		weft__mp_write_double(out, d);
		break;
	case MP_STR:
		check(weft__mp_read_str(r, &s, &n) == WEFT_OK);
		weft__mp_write_str(out, s, n);
		break;
	case MP_BIN:
		check(weft__mp_read_bin(r, &p, &n) == WEFT_OK);
		weft__mp_write_bin(out, p, n);
		break;
	case MP_ARRAY:
		check(weft__mp_read_array(r, &c) == WEFT_OK);
		weft__mp_write_array(out, c);
		for (uint32_t k = 0; k < c; k++)
			rebuild(r, out);
		break;
	case MP_MAP:
		check(weft__mp_read_map(r, &c) == WEFT_OK);
		weft__mp_write_map(out, c);
		for (uint32_t k = 0; k < 2 * (uint64_t)c; k++)
			rebuild(r, out);
		break;
	default:
		abort();
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct mp_reader r, saved;
	struct mp_buf json, again, re;
	const uint8_t *raw;
	size_t raw_len;
	bool ok_skip, valid_plain, valid_json;
	int rc;

	weft__mp_reader_init(&r, data, size);
	try_readers(&r);

	saved = r;
	ok_skip = weft__mp_skip(&r, &raw, &raw_len) == WEFT_OK;
	if (!ok_skip) {
		check(r.p == saved.p);
		raw = data;
		raw_len = 0;
	} else {
		check(raw == data && raw_len >= 1 && raw_len <= size && r.p == data + raw_len);
	}
	valid_plain = weft__mp_valid(data, size, false);
	valid_json = weft__mp_valid(data, size, true);
	check(valid_plain == (ok_skip && raw_len == size));
	check(!valid_json || valid_plain);
	rc = weft__mp_validate(data, size, true, NULL);
	check(rc == (valid_json ? WEFT_OK : WEFT_EPROTO));
	rc = weft__mp_validate(data, size, true, &no_alloc);
	check(rc == WEFT_ENOMEM || rc == (valid_json ? WEFT_OK : WEFT_EPROTO));
	rc = weft__mp_validate(data, size, false, &no_alloc);
	check(rc == (valid_plain ? WEFT_OK : WEFT_EPROTO));
	if (ok_skip) {
		check(weft__mp_valid(raw, raw_len, false));
		valid_json = weft__mp_valid(raw, raw_len, true);
	} else {
		valid_json = false;
	}

	weft__mp_buf_init(&json, NULL, (size_t)64 << 20);
	weft__mp_reader_init(&r, data, size);
	rc = weft__json_write_mp(&json, &r);
	if (rc == WEFT_ETOOBIG || rc == WEFT_ENOMEM)
		goto out_json;
	check(rc == WEFT_OK || rc == WEFT_EPROTO);
	check((rc == WEFT_OK) == valid_json);
	if (rc == WEFT_OK) {
		check(r.p == data + raw_len);
		check(weft__utf8_valid((const char *)json.data, json.len));
	} else {
		check(r.p == data && json.len == 0);
	}

	if (ok_skip) {
		/* rebuild through the typed readers and the writer */
		weft__mp_buf_init(&re, NULL, 0);
		weft__mp_reader_init(&r, raw, raw_len);
		rebuild(&r, &re);
		check(r.p == raw + raw_len);
		if (re.err == 0) {
			check(weft__mp_valid(re.data, re.len, false));
			check(weft__mp_valid(re.data, re.len, true) == valid_json);
			if (rc == WEFT_OK) {
				weft__mp_buf_init(&again, NULL, (size_t)64 << 20);
				weft__mp_reader_init(&r, re.data, re.len);
				check(weft__json_write_mp(&again, &r) == WEFT_OK);
				check(again.len == json.len &&
				      (json.len == 0 ||
				       memcmp(again.data, json.data, json.len) == 0));
				weft__mp_buf_free(&again);
			}
		}
		weft__mp_buf_free(&re);
	}
out_json:
	weft__mp_buf_free(&json);
	return 0;
}
