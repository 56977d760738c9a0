/*
 * json.c - canonical JSON (RFC 8785 style) of MessagePack values.
 *
 * Invariants of the output: no whitespace; object members sorted by the
 * UTF-8 bytes of their keys (memcmp, shorter first on a common prefix);
 * integers exact; floats as ECMAScript Number::toString prints the shortest
 * decimal that round-trips (RFC 8785 section 3.2.2.3), with -0 as 0; strings
 * escaped only where JSON requires it. The same value therefore always
 * prints to the same bytes, which is what the state hash is computed over.
 *
 * weft__json_write_mp first validates the whole value with the reader
 * (depth limit, UTF-8, lengths), then prints it recursively; recursion depth
 * is bounded by WEFT_MP_MAX_DEPTH because the value was validated first.
 * Sorting a map's members needs a scratch array, taken from out->alloc and
 * freed before returning. On any error the output is rolled back to the
 * length it had on entry and the reader is left unchanged.
 *
 * Locale: the shortest-digits search uses snprintf("%.*e") and strtod,
 * which follow LC_NUMERIC. The library never calls setlocale. The digits and
 * exponent are taken out of snprintf's output without assuming the decimal
 * point is '.', and strtod reads back the very string snprintf produced, so
 * the round-trip test holds in any locale; the JSON itself is built here
 * digit by digit and always uses '.'.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "weft/weft.h"
#include "core/json.h"

static void put(struct mp_buf *out, const char *s, size_t len)
{
	weft__mp_write_raw(out, s, len);
}

static void put_c(struct mp_buf *out, char c)
{
	weft__mp_write_raw(out, &c, 1);
}

void weft__json_write_str(struct mp_buf *out, const char *s, size_t len)
{
	static const char hex[] = "0123456789abcdef";
	size_t run = 0; /* start of the bytes not yet written */

	put_c(out, '"');
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];
		char esc[6];
		size_t n = 2;

		if (c >= 0x20 && c != '"' && c != '\\')
			continue;
		put(out, s + run, i - run);
		run = i + 1;
		esc[0] = '\\';
		switch (c) {
		case '"':
			esc[1] = '"';
			break;
		case '\\':
			esc[1] = '\\';
			break;
		case '\b':
			esc[1] = 'b';
			break;
		case '\f':
			esc[1] = 'f';
			break;
		case '\n':
			esc[1] = 'n';
			break;
		case '\r':
			esc[1] = 'r';
			break;
		case '\t':
			esc[1] = 't';
			break;
		default:
			memcpy(esc + 1, "u00", 3);
			esc[4] = hex[c >> 4];
			esc[5] = hex[c & 15];
			n = 6;
			break;
		}
		put(out, esc, n);
	}
	put(out, s + run, len - run);
	put_c(out, '"');
}

void weft__json_write_uint(struct mp_buf *out, uint64_t v)
{
	char buf[20];
	size_t i = sizeof(buf);

	do {
		buf[--i] = (char)('0' + v % 10);
		v /= 10;
	} while (v);
	put(out, buf + i, sizeof(buf) - i);
}

void weft__json_write_int(struct mp_buf *out, int64_t v)
{
	if (v < 0) {
		put_c(out, '-');
		/* -(v + 1) + 1 avoids overflow on INT64_MIN */
		weft__json_write_uint(out, (uint64_t)(-(v + 1)) + 1);
	} else {
		weft__json_write_uint(out, (uint64_t)v);
	}
}

/*
 * The shortest decimal that reads back as v (v finite and > 0): on return
 * digits[0..*k) holds the significant digits (no trailing zeros) and *n is
 * the ECMAScript exponent, so v ~= 0.d1d2...dk * 10^n. Tries 1..17
 * significant digits; snprintf rounds correctly, so the first precision
 * that round-trips gives the closest shortest decimal. 17 always does.
 */
static void shortest_digits(double v, char digits[18], int *k, int *n)
{
	char buf[64];
	int prec, len = 0, exp10 = 0;

	for (prec = 1; prec <= 17; prec++) {
		snprintf(buf, sizeof(buf), "%.*e", prec - 1, v);
		if (prec == 17 || strtod(buf, NULL) == v)
			break;
	}
	/* buf is "d[<point>ddd]e<sign>xx"; the point may be any locale string */
	const char *p = buf;
	for (; *p && *p != 'e' && *p != 'E'; p++)
		if (*p >= '0' && *p <= '9' && len < 17)
			digits[len++] = *p;
	if (*p) {
		int neg = 0;

		p++;
		if (*p == '-' || *p == '+')
			neg = *p++ == '-';
		for (; *p >= '0' && *p <= '9'; p++)
			exp10 = exp10 * 10 + (*p - '0');
		if (neg)
			exp10 = -exp10;
	}
	while (len > 1 && digits[len - 1] == '0')
		len--;
	digits[len] = '\0';
	*k = len;
	*n = exp10 + 1;
}

static void put_zeros(struct mp_buf *out, int count)
{
	static const char zeros[] = "0000000000000000000000";

	while (count > 0) {
		int m = count < 22 ? count : 22;

		put(out, zeros, (size_t)m);
		count -= m;
	}
}

/*
 * ECMAScript Number::toString (ES2023 6.1.6.1.20, RFC 8785 3.2.2.3). A
 * non-finite v cannot be represented; it prints as null, as JSON.stringify
 * does (weft__json_write_mp refuses such values before getting here).
 */
void weft__json_write_double(struct mp_buf *out, double v)
{
	char d[18];
	int k, n;

	if (!isfinite(v)) {
		put(out, "null", 4);
		return;
	}
	if (v == 0) {
		put_c(out, '0'); /* also -0 */
		return;
	}
	if (v < 0) {
		put_c(out, '-');
		v = -v;
	}
	shortest_digits(v, d, &k, &n);
	if (k <= n && n <= 21) {
		put(out, d, (size_t)k);
		put_zeros(out, n - k);
	} else if (0 < n && n <= 21) {
		put(out, d, (size_t)n);
		put_c(out, '.');
		put(out, d + n, (size_t)(k - n));
	} else if (-6 < n && n <= 0) {
		put(out, "0.", 2);
		put_zeros(out, -n);
		put(out, d, (size_t)k);
	} else {
		int e = n - 1;

		put_c(out, d[0]);
		if (k > 1) {
			put_c(out, '.');
			put(out, d + 1, (size_t)(k - 1));
		}
		put_c(out, 'e');
		put_c(out, e < 0 ? '-' : '+');
		weft__json_write_uint(out, (uint64_t)(e < 0 ? -e : e));
	}
}

struct member {
	const uint8_t *key;   /* key bytes, in the input */
	size_t key_len;       /* key length */
	const uint8_t *value; /* the value's encoded bytes, in the input */
	size_t value_len;     /* their length */
};

static int member_cmp(const void *a, const void *b)
{
	const struct member *x = a, *y = b;
	size_t n = x->key_len < y->key_len ? x->key_len : y->key_len;
	int c = n ? memcmp(x->key, y->key, n) : 0;

	if (c)
		return c;
	return x->key_len < y->key_len ? -1 : x->key_len > y->key_len;
}

static int write_value(struct mp_buf *out, struct mp_reader *r);

static bool mul_overflows(size_t a, size_t b)
{
	return b != 0 && a > SIZE_MAX / b;
}

/*
 * Prints a map of n pairs (header already read): collects the members,
 * sorts them by key bytes, refuses non-string and duplicate keys.
 */
static int write_map(struct mp_buf *out, struct mp_reader *r, uint32_t n)
{
	const struct weft_alloc *a = out->alloc ? out->alloc : weft__alloc_default();
	struct member *m = NULL;
	int rc = WEFT_OK;

	if (n == 0) {
		put(out, "{}", 2);
		goto out;
	}
	/* the product can overflow on 32-bit targets only */
	if (!mul_overflows(n, sizeof(*m)))
		m = weft__malloc(a, n * sizeof(*m));
	if (!m) {
		rc = WEFT_ENOMEM;
		if (!out->err)
			out->err = WEFT_ENOMEM;
		goto out;
	}
	for (uint32_t i = 0; i < n; i++) {
		const char *k;

		rc = weft__mp_read_str(r, &k, &m[i].key_len);
		if (rc != WEFT_OK)
			goto out_free;
		m[i].key = (const uint8_t *)k;
		rc = weft__mp_skip(r, &m[i].value, &m[i].value_len);
		if (rc != WEFT_OK)
			goto out_free;
	}
	qsort(m, n, sizeof(*m), member_cmp);
	for (uint32_t i = 1; i < n; i++) {
		if (member_cmp(&m[i - 1], &m[i]) == 0) {
			rc = WEFT_EPROTO;
			goto out_free;
		}
	}
	put_c(out, '{');
	for (uint32_t i = 0; i < n; i++) {
		struct mp_reader sub;

		if (i)
			put_c(out, ',');
		weft__json_write_str(out, (const char *)m[i].key, m[i].key_len);
		put_c(out, ':');
		weft__mp_reader_init(&sub, m[i].value, m[i].value_len);
		rc = write_value(out, &sub);
		if (rc != WEFT_OK)
			goto out_free;
	}
	put_c(out, '}');
out_free:
	weft__free(a, m);
out:
	return rc;
}

/* Prints one value of an already validated input; see the file comment. */
static int write_value(struct mp_buf *out, struct mp_reader *r)
{
	enum mp_type t;
	int rc;

	rc = weft__mp_peek(r, &t);
	if (rc != WEFT_OK)
		goto out;
	switch (t) {
	case MP_NIL:
		rc = weft__mp_read_nil(r);
		if (rc == WEFT_OK)
			put(out, "null", 4);
		break;
	case MP_BOOL: {
		bool b;

		rc = weft__mp_read_bool(r, &b);
		if (rc == WEFT_OK)
			put(out, b ? "true" : "false", b ? 4 : 5);
		break;
	}
	case MP_INT: {
		int64_t i;

		rc = weft__mp_read_int(r, &i);
		if (rc == WEFT_OK)
			weft__json_write_int(out, i);
		break;
	}
	case MP_UINT: {
		uint64_t u;

		rc = weft__mp_read_uint(r, &u);
		if (rc == WEFT_OK)
			weft__json_write_uint(out, u);
		break;
	}
	case MP_FLOAT: {
		double d;

		rc = weft__mp_read_double(r, &d);
		if (rc == WEFT_OK && !isfinite(d))
			rc = WEFT_EPROTO;
		if (rc == WEFT_OK)
			weft__json_write_double(out, d);
		break;
	}
	case MP_STR: {
		const char *s;
		size_t len;

		rc = weft__mp_read_str(r, &s, &len);
		if (rc == WEFT_OK)
			weft__json_write_str(out, s, len);
		break;
	}
	case MP_ARRAY: {
		uint32_t n;

		rc = weft__mp_read_array(r, &n);
		if (rc != WEFT_OK)
			break;
		put_c(out, '[');
		for (uint32_t i = 0; i < n && rc == WEFT_OK; i++) {
			if (i)
				put_c(out, ',');
			rc = write_value(out, r);
		}
		put_c(out, ']');
		break;
	}
	case MP_MAP: {
		uint32_t n;

		rc = weft__mp_read_map(r, &n);
		if (rc == WEFT_OK)
			rc = write_map(out, r, n);
		break;
	}
	default:
		rc = WEFT_EPROTO; /* bin has no JSON form */
		break;
	}
out:
	return rc;
}

int weft__json_write_mp(struct mp_buf *out, struct mp_reader *r)
{
	struct mp_reader val;
	const uint8_t *raw;
	size_t raw_len, start = out->len;
	int rc;

	/* validate first: bounds the recursion below by WEFT_MP_MAX_DEPTH */
	val = *r;
	rc = weft__mp_skip(&val, &raw, &raw_len);
	if (rc != WEFT_OK)
		goto out;
	rc = write_value(out, r);
	if (rc == WEFT_OK && out->err)
		rc = out->err;
	if (rc != WEFT_OK) {
		*r = (struct mp_reader){.p = raw, .end = r->end};
		goto out_rollback;
	}
	*r = val;
	goto out;
out_rollback:
	if (out->len >= start)
		out->len = start;
out:
	return rc;
}
