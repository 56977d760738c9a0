/*
 * jsonform.c - MessagePack <-> the JSON debug form. See jsonform.h.
 *
 * MessagePack to JSON is written here, over the core's zero-copy reader
 * and its JSON string and number writers (core/json.h); nesting is
 * bounded by WEFT_JSONFORM_MAX_DEPTH, so the recursion is.
 *
 * JSON to MessagePack goes through jansson, the project's boundary
 * parser (strict UTF-8, JSON_REJECT_DUPLICATES). jansson holds integers
 * as long long and refuses anything above 2^63-1, while replica ids are
 * unsigned 64-bit. So a first pass over the text finds the integer
 * literals above 2^63-1 (up to 2^64-1), notes their values and their
 * rank among all integer literals, and blanks them to "0" padded with
 * spaces (which keeps the text valid JSON, and jansson's line and
 * column numbers right). The emitter, which visits jansson's values in
 * document order (arrays in order; objects keep insertion order, and
 * duplicate keys are refused), puts each noted value back at its rank.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "weft/weft.h"
#include "core/json.h"
#include "server/jsonform.h"

static const char b64_tab[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/* ---- MessagePack -> JSON ---- */

struct writer {
	struct mp_buf *out;
	char *err;
	size_t errlen;
};

static int wr_fail(struct writer *w, const char *why)
{
	snprintf(w->err, w->errlen, "%s", why);
	return WEFT_EPROTO;
}

static void put(struct mp_buf *out, const char *s)
{
	weft__mp_write_raw(out, s, strlen(s));
}

/* Standard base64 with padding, in groups of up to 64 characters. */
static void b64_put(struct mp_buf *out, const uint8_t *p, size_t n)
{
	char q[64];
	size_t k = 0, i;

	for (i = 0; i + 3 <= n; i += 3) {
		uint32_t v = (uint32_t)p[i] << 16 | (uint32_t)p[i + 1] << 8 | p[i + 2];

		q[k++] = b64_tab[v >> 18];
		q[k++] = b64_tab[(v >> 12) & 63];
		q[k++] = b64_tab[(v >> 6) & 63];
		q[k++] = b64_tab[v & 63];
		if (k == sizeof(q)) {
			weft__mp_write_raw(out, q, k);
			k = 0;
		}
	}
	if (n - i == 1) {
		q[k++] = b64_tab[p[i] >> 2];
		q[k++] = b64_tab[(p[i] & 3) << 4];
		q[k++] = '=';
		q[k++] = '=';
	} else if (n - i == 2) {
		q[k++] = b64_tab[p[i] >> 2];
		q[k++] = b64_tab[((p[i] & 3) << 4) | (p[i + 1] >> 4)];
		q[k++] = b64_tab[(p[i + 1] & 15) << 2];
		q[k++] = '=';
	}
	weft__mp_write_raw(out, q, k);
}

/* True when the next value at r is the string "$bin" or "$map". */
static bool is_escape_key(const struct mp_reader *r)
{
	struct mp_reader k = *r;
	const char *s;
	size_t n;

	return weft__mp_read_str(&k, &s, &n) == WEFT_OK && n == 4 &&
	       (memcmp(s, "$bin", 4) == 0 || memcmp(s, "$map", 4) == 0);
}

static int wr_value(struct writer *w, struct mp_reader *r, int depth);

static int wr_map(struct writer *w, struct mp_reader *r, int depth)
{
	struct mp_buf *out = w->out;
	bool wrap;
	uint32_t n;
	int rc;

	if (weft__mp_read_map(r, &n) != WEFT_OK)
		return wr_fail(w, "malformed MessagePack");
	wrap = n == 1 && is_escape_key(r);
	if (wrap)
		put(out, "{\"$map\":");
	put(out, "{");
	for (uint32_t i = 0; i < n; i++) {
		enum mp_type t;
		const char *k;
		size_t klen;

		if (weft__mp_peek(r, &t) != WEFT_OK)
			return wr_fail(w, "malformed MessagePack");
		if (t != MP_STR)
			return wr_fail(w, "a map key that is not a string has no JSON form");
		if (weft__mp_read_str(r, &k, &klen) != WEFT_OK)
			return wr_fail(w, "malformed MessagePack (a string that is not UTF-8)");
		if (i > 0)
			put(out, ",");
		weft__json_write_str(out, k, klen);
		put(out, ":");
		rc = wr_value(w, r, depth + 1);
		if (rc != WEFT_OK)
			return rc;
	}
	put(out, wrap ? "}}" : "}");
	return out->err;
}

static int wr_value(struct writer *w, struct mp_reader *r, int depth)
{
	struct mp_buf *out = w->out;
	enum mp_type t;
	int rc = WEFT_EPROTO;

	if (weft__mp_peek(r, &t) != WEFT_OK)
		return wr_fail(w, "malformed MessagePack");
	switch (t) {
	case MP_NIL:
		rc = weft__mp_read_nil(r);
		put(out, "null");
		break;
	case MP_BOOL: {
		bool v = false;

		rc = weft__mp_read_bool(r, &v);
		put(out, v ? "true" : "false");
		break;
	}
	case MP_INT: {
		int64_t v = 0;

		rc = weft__mp_read_int(r, &v);
		weft__json_write_int(out, v);
		break;
	}
	case MP_UINT: {
		uint64_t v = 0;

		rc = weft__mp_read_uint(r, &v);
		weft__json_write_uint(out, v);
		break;
	}
	case MP_FLOAT: {
		double v = 0;
		size_t start = out->len;

		rc = weft__mp_read_double(r, &v);
		if (rc == WEFT_OK && !isfinite(v))
			return wr_fail(w, "a NaN or infinite float has no JSON form");
		weft__json_write_double(out, v);
		/* Keep it a float when read back: 1.0 is written "1.0", not "1". */
		if (out->err == WEFT_OK && !memchr(out->data + start, '.', out->len - start) &&
		    !memchr(out->data + start, 'e', out->len - start))
			put(out, ".0");
		break;
	}
	case MP_STR: {
		const char *s;
		size_t n;

		rc = weft__mp_read_str(r, &s, &n);
		if (rc != WEFT_OK)
			return wr_fail(w, "malformed MessagePack (a string that is not UTF-8)");
		weft__json_write_str(out, s, n);
		break;
	}
	case MP_BIN: {
		const void *p;
		size_t n;

		rc = weft__mp_read_bin(r, &p, &n);
		if (rc != WEFT_OK)
			break;
		put(out, "{\"$bin\":\"");
		b64_put(out, p, n);
		put(out, "\"}");
		break;
	}
	case MP_ARRAY: {
		uint32_t n;

		if (depth >= WEFT_JSONFORM_MAX_DEPTH)
			return wr_fail(w, "nested too deep");
		rc = weft__mp_read_array(r, &n);
		if (rc != WEFT_OK)
			break;
		put(out, "[");
		for (uint32_t i = 0; i < n && rc == WEFT_OK; i++) {
			if (i > 0)
				put(out, ",");
			rc = wr_value(w, r, depth + 1);
		}
		if (rc != WEFT_OK)
			return rc;
		put(out, "]");
		break;
	}
	case MP_MAP:
		if (depth >= WEFT_JSONFORM_MAX_DEPTH)
			return wr_fail(w, "nested too deep");
		return wr_map(w, r, depth);
	}
	if (rc != WEFT_OK)
		return wr_fail(w, "malformed MessagePack");
	return out->err;
}

int weft__jsonform_from_mp(const uint8_t *data, size_t len, struct mp_buf *out, char *err,
                           size_t errlen)
{
	struct writer w = {out, err, errlen};
	struct mp_reader r;
	int rc;

	weft__mp_reader_init(&r, data, len);
	rc = wr_value(&w, &r, 0);
	if (rc == WEFT_OK && weft__mp_reader_left(&r) != 0)
		rc = wr_fail(&w, "bytes after the MessagePack value");
	if (rc == WEFT_ENOMEM || rc == WEFT_ETOOBIG)
		snprintf(err, errlen, "writing JSON: %s", weft_strerror(rc));
	return rc;
}

/* ---- JSON -> MessagePack ---- */

/* An integer literal above INT64_MAX: its rank among all integer
 * literals of the text, and its value. */
struct big_int {
	size_t rank;
	uint64_t v;
	size_t off, len; /* where it is in the text */
};

struct reader {
	struct mp_buf *out;
	struct big_int *bigs;
	size_t nbigs;
	size_t next;  /* next entry of bigs to put back */
	size_t nints; /* integers emitted so far */
	char *err;
	size_t errlen;
};

static void where(const char *s, size_t off, int *line, int *col)
{
	*line = 1;
	*col = 1;
	for (size_t i = 0; i < off; i++) {
		if (s[i] == '\n') {
			(*line)++;
			*col = 1;
		} else {
			(*col)++;
		}
	}
}

static bool is_num_char(char ch)
{
	return (ch >= '0' && ch <= '9') || ch == '-' || ch == '+' || ch == '.' || ch == 'e' ||
	       ch == 'E';
}

static bool all_digits(const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (s[i] < '0' || s[i] > '9')
			return false;
	return true;
}

/*
 * The first pass: finds the integer literals (outside strings) that
 * jansson cannot hold. Tokens that are not integers in JSON's grammar are
 * left for jansson to accept or refuse. Errors: WEFT_EINVAL (an integer
 * out of -2^63 .. 2^64-1), WEFT_ENOMEM.
 */
static int scan_ints(const char *s, size_t len, struct reader *rd)
{
	size_t i = 0, rank = 0, cap = 0;

	while (i < len) {
		size_t st = i, k;
		bool neg;
		uint64_t v = 0;

		if (s[i] == '"') {
			for (i++; i < len && s[i] != '"'; i++)
				if (s[i] == '\\')
					i++;
			i++;
			continue;
		}
		if (s[i] != '-' && !(s[i] >= '0' && s[i] <= '9')) {
			i++;
			continue;
		}
		while (i < len && is_num_char(s[i]))
			i++;
		neg = s[st] == '-';
		k = st + neg;
		if (k == i || (s[k] == '0' && i - k > 1) || !all_digits(s + k, i - k))
			continue; /* a float, or not a number (jansson says why) */
		for (; k < i; k++) {
			unsigned d = (unsigned)(s[k] - '0');

			if (v > (UINT64_MAX - d) / 10) {
				k = i + 1; /* over 2^64-1: reported below */
				break;
			}
			v = v * 10 + d;
		}
		if (k > i || (neg && v > (uint64_t)INT64_MAX + 1)) {
			int line, col;

			where(s, st, &line, &col);
			snprintf(rd->err, rd->errlen,
			         "integer out of range (-2^63 .. 2^64-1) at line %d column %d",
			         line, col);
			return WEFT_EINVAL;
		}
		if (!neg && v > (uint64_t)INT64_MAX) {
			if (rd->nbigs == cap) {
				size_t ncap = cap ? cap * 2 : 8;
				struct big_int *b = realloc(rd->bigs, ncap * sizeof(*b));

				if (!b)
					return WEFT_ENOMEM;
				rd->bigs = b;
				cap = ncap;
			}
			rd->bigs[rd->nbigs++] = (struct big_int){rank, v, st, i - st};
		}
		rank++;
	}
	return WEFT_OK;
}

static int rd_fail(struct reader *rd, const char *why)
{
	snprintf(rd->err, rd->errlen, "%s", why);
	return WEFT_EINVAL;
}

static int b64_val(char ch)
{
	const char *p = ch ? strchr(b64_tab, ch) : NULL;

	return p ? (int)(p - b64_tab) : -1;
}

/* Strict standard base64 with padding into a bin. */
static int emit_bin(struct reader *rd, const char *s, size_t n)
{
	size_t pad = 0, olen, o = 0;
	uint8_t *buf;

	if (n % 4 != 0)
		return rd_fail(rd, "\"$bin\": base64 length is not a multiple of 4");
	if (n > 0 && s[n - 1] == '=')
		pad = n > 1 && s[n - 2] == '=' ? 2 : 1;
	olen = n / 4 * 3 - pad;
	buf = malloc(olen ? olen : 1);
	if (!buf)
		return WEFT_ENOMEM;
	for (size_t i = 0; i < n; i += 4) {
		int v[4];
		uint32_t x;
		bool last = i + 4 == n;

		for (int j = 0; j < 4; j++) {
			v[j] = b64_val(s[i + j]);
			if (v[j] < 0 && !(last && s[i + j] == '=' && j >= 4 - (int)pad)) {
				free(buf);
				return rd_fail(rd, "\"$bin\": not standard base64");
			}
			if (v[j] < 0)
				v[j] = 0;
		}
		x = (uint32_t)v[0] << 18 | (uint32_t)v[1] << 12 | (uint32_t)v[2] << 6 |
		    (uint32_t)v[3];
		if (last && ((pad == 1 && (x & 0xff)) || (pad == 2 && (x & 0xffff)))) {
			free(buf);
			return rd_fail(rd, "\"$bin\": not canonical base64 (stray bits)");
		}
		buf[o++] = (uint8_t)(x >> 16);
		if (o < olen)
			buf[o++] = (uint8_t)(x >> 8);
		if (o < olen)
			buf[o++] = (uint8_t)x;
	}
	weft__mp_write_bin(rd->out, buf, olen);
	free(buf);
	return rd->out->err;
}

static int emit(struct reader *rd, json_t *v, int depth);

static int emit_members(struct reader *rd, json_t *obj, int depth)
{
	const char *k;
	json_t *e;
	int rc;

	weft__mp_write_map(rd->out, (uint32_t)json_object_size(obj));
	json_object_foreach(obj, k, e)
	{
		weft__mp_write_str(rd->out, k, strlen(k));
		rc = emit(rd, e, depth + 1);
		if (rc != WEFT_OK)
			return rc;
	}
	return rd->out->err;
}

static int emit(struct reader *rd, json_t *v, int depth)
{
	struct mp_buf *out = rd->out;

	switch (json_typeof(v)) {
	case JSON_NULL:
		weft__mp_write_nil(out);
		break;
	case JSON_TRUE:
		weft__mp_write_bool(out, true);
		break;
	case JSON_FALSE:
		weft__mp_write_bool(out, false);
		break;
	case JSON_INTEGER:
		if (rd->next < rd->nbigs && rd->bigs[rd->next].rank == rd->nints)
			weft__mp_write_uint(out, rd->bigs[rd->next++].v);
		else
			weft__mp_write_int(out, (int64_t)json_integer_value(v));
		rd->nints++;
		break;
	case JSON_REAL:
		weft__mp_write_double(out, json_real_value(v));
		break;
	case JSON_STRING:
		weft__mp_write_str(out, json_string_value(v), json_string_length(v));
		break;
	case JSON_ARRAY: {
		size_t i;
		json_t *e;
		int rc;

		if (depth >= WEFT_JSONFORM_MAX_DEPTH)
			return rd_fail(rd, "nested too deep");
		weft__mp_write_array(out, (uint32_t)json_array_size(v));
		json_array_foreach(v, i, e)
		{
			rc = emit(rd, e, depth + 1);
			if (rc != WEFT_OK)
				return rc;
		}
		break;
	}
	case JSON_OBJECT: {
		json_t *e;

		if (depth >= WEFT_JSONFORM_MAX_DEPTH)
			return rd_fail(rd, "nested too deep");
		if (json_object_size(v) != 1)
			return emit_members(rd, v, depth);
		if ((e = json_object_get(v, "$bin")) != NULL) {
			if (!json_is_string(e))
				return rd_fail(rd, "\"$bin\" takes a base64 string");
			return emit_bin(rd, json_string_value(e), json_string_length(e));
		}
		if ((e = json_object_get(v, "$map")) != NULL) {
			if (!json_is_object(e))
				return rd_fail(rd, "\"$map\" takes an object");
			if (depth + 1 >= WEFT_JSONFORM_MAX_DEPTH)
				return rd_fail(rd, "nested too deep");
			return emit_members(rd, e, depth + 1);
		}
		return emit_members(rd, v, depth);
	}
	}
	return out->err;
}

int weft__jsonform_to_mp(const char *json, size_t len, struct mp_buf *out, char *err, size_t errlen)
{
	struct reader rd = {.out = out, .err = err, .errlen = errlen};
	char *copy = NULL;
	const char *text = json;
	json_error_t je;
	json_t *root;
	int rc;

	rc = scan_ints(json, len, &rd);
	if (rc != WEFT_OK)
		goto out_free_bigs;
	if (rd.nbigs > 0) {
		copy = malloc(len);
		if (!copy) {
			rc = WEFT_ENOMEM;
			goto out_free_bigs;
		}
		memcpy(copy, json, len);
		for (size_t i = 0; i < rd.nbigs; i++) {
			memset(copy + rd.bigs[i].off, ' ', rd.bigs[i].len);
			copy[rd.bigs[i].off] = '0';
		}
		text = copy;
	}
	root =
	    json_loadb(text, len, JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL | JSON_DECODE_ANY, &je);
	if (!root) {
		snprintf(err, errlen, "invalid JSON at line %d column %d: %s", je.line, je.column,
		         je.text);
		rc = WEFT_EINVAL;
		goto out_free_copy;
	}
	rc = emit(&rd, root, 0);
	if (rc == WEFT_ENOMEM || rc == WEFT_ETOOBIG)
		snprintf(err, errlen, "converting JSON: %s", weft_strerror(rc));
	json_decref(root);
out_free_copy:
	free(copy);
out_free_bigs:
	free(rd.bigs);
	if (rc == WEFT_ENOMEM)
		snprintf(err, errlen, "out of memory");
	return rc;
}
