/*
 * bench_text.c - replays one editing trace through the text CRDT and prints
 * one JSON object:
 *   bench_text TRACE.json.gz [--mode local|remote] [--runs N]
 * local: every patch applied as a local edit on one replica (each edit also
 * encodes its own update, whose average size is reported); remote: the
 * whole history, encoded on a replica that made it, merged into a fresh
 * replica (with deleted content). ms is the median over the runs (default
 * 5), excluding decompression and JSON parsing; encoded_bytes is the
 * whole-document encoding without deleted content (encoded_full_bytes
 * with it) and load_ms the median time to load the former.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>
#include <zlib.h>

#include "weft/weft.h"
#include "core/sha256.h"
#include "core/text.h"

struct patch {
	uint32_t pos, del;
	const char *ins;
	size_t ins_len;
};

static double now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static int cmp_d(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

static double median(double *v, int n)
{
	qsort(v, (size_t)n, sizeof(*v), cmp_d);
	return v[n / 2];
}

static json_t *load_json(const char *path)
{
	gzFile f = gzopen(path, "rb");
	char *buf = NULL;
	size_t len = 0, cap = 0;
	json_error_t err;
	json_t *j;
	int n;

	if (!f)
		return NULL;
	for (;;) {
		if (cap - len < 65536) {
			cap = cap ? cap * 2 : 1 << 20;
			buf = realloc(buf, cap);
			if (!buf)
				return NULL;
		}
		n = gzread(f, buf + len, (unsigned)(cap - len));
		if (n <= 0)
			break;
		len += (size_t)n;
	}
	gzclose(f);
	j = json_loadb(buf, len, 0, &err);
	free(buf);
	if (!j)
		fprintf(stderr, "%s: %s\n", path, err.text);
	return j;
}

/* Replays the patches locally; with upd, collects each edit's update size. */
static int replay(const struct patch *p, size_t n, struct weft_text *t, struct mp_buf *upd,
                  size_t *upd_bytes, size_t *upd_count)
{
	size_t i;
	int rc;

	for (i = 0; i < n; i++) {
		if (p[i].del) {
			if (upd)
				weft__mp_buf_reset(upd);
			rc = weft__text_delete(t, p[i].pos, p[i].del, upd);
			if (rc)
				return rc;
			if (upd) {
				*upd_bytes += upd->len;
				(*upd_count)++;
			}
		}
		if (p[i].ins_len) {
			if (upd)
				weft__mp_buf_reset(upd);
			rc = weft__text_insert(t, p[i].pos, p[i].ins, p[i].ins_len, upd);
			if (rc)
				return rc;
			if (upd) {
				*upd_bytes += upd->len;
				(*upd_count)++;
			}
		}
	}
	return WEFT_OK;
}

int main(int argc, char **argv)
{
	const char *path = NULL, *mode = "local";
	int runs = 5, r, i;
	json_t *j, *txns, *txn, *pa, *pp;
	struct patch *p = NULL;
	size_t np = 0, cap = 0, ti, pi, upd_bytes = 0, upd_count = 0, len;
	double ms[64], lms[64];
	struct mp_buf enc, full, upd;
	struct weft_text *src = NULL;
	uint8_t digest[32];
	char *text;

	for (i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--mode") == 0 && i + 1 < argc)
			mode = argv[++i];
		else if (strcmp(argv[i], "--runs") == 0 && i + 1 < argc)
			runs = atoi(argv[++i]);
		else
			path = argv[i];
	}
	if (!path || runs < 1 || runs > 64 ||
	    (strcmp(mode, "local") != 0 && strcmp(mode, "remote") != 0)) {
		fprintf(stderr,
		        "usage: bench_text TRACE.json.gz [--mode local|remote] [--runs N]\n");
		return 2;
	}
	j = load_json(path);
	if (!j) {
		fprintf(stderr, "cannot read %s\n", path);
		return 1;
	}
	txns = json_object_get(j, "txns");
	json_array_foreach(txns, ti, txn)
	{
		pa = json_object_get(txn, "patches");
		json_array_foreach(pa, pi, pp)
		{
			if (np == cap) {
				cap = cap ? cap * 2 : 4096;
				p = realloc(p, cap * sizeof(*p));
				if (!p)
					return 1;
			}
			p[np].pos = (uint32_t)json_integer_value(json_array_get(pp, 0));
			p[np].del = (uint32_t)json_integer_value(json_array_get(pp, 1));
			p[np].ins = json_string_value(json_array_get(pp, 2));
			p[np].ins_len = p[np].ins ? strlen(p[np].ins) : 0;
			np++;
		}
	}

	/* the reference replica: per-op update sizes and the encoded document */
	weft__mp_buf_init(&upd, NULL, 0);
	weft__mp_buf_init(&enc, NULL, 0);
	weft__mp_buf_init(&full, NULL, 0);
	if (weft__text_new(NULL, 0x9e3779b97f4a7c15ull, 1, &src) ||
	    replay(p, np, src, &upd, &upd_bytes, &upd_count) ||
	    weft__text_encode(src, WEFT_TEXT_DROP_DELETED, &enc) ||
	    weft__text_encode(src, 0, &full)) {
		fprintf(stderr, "replay failed\n");
		return 1;
	}

	for (r = 0; r < runs; r++) {
		struct weft_text *t, *l;
		double t0, t1;

		weft__text_new(NULL, 0x1234567890abcdefull, 1, &t);
		t0 = now_ms();
		if (strcmp(mode, "local") == 0) {
			if (replay(p, np, t, NULL, NULL, NULL))
				return 1;
		} else {
			if (weft__text_apply(t, full.data, full.len))
				return 1;
		}
		t1 = now_ms();
		ms[r] = t1 - t0;
		weft__text_free(t);
		t0 = now_ms();
		if (weft__text_load(NULL, 0x42, 1, enc.data, enc.len, &l))
			return 1;
		lms[r] = now_ms() - t0;
		weft__text_free(l);
	}

	len = weft__text_byte_len(src);
	text = malloc(len + 1);
	weft__text_read(src, text, len, &len);
	weft__sha256(text, len, digest);
	printf("{\"trace\":\"%s\",\"mode\":\"%s\",\"ops\":%zu,\"ms\":%.3f,\"final_len\":%zu,"
	       "\"final_bytes\":%zu,\"final_sha256\":\"",
	       path, mode, np, median(ms, runs), weft__text_len(src), len);
	for (i = 0; i < 32; i++)
		printf("%02x", digest[i]);
	printf("\",\"encoded_bytes\":%zu,\"encoded_full_bytes\":%zu,\"avg_update_bytes\":%.2f,"
	       "\"load_ms\":%.3f,\"runs\":%zu}\n",
	       enc.len, full.len, upd_count ? (double)upd_bytes / (double)upd_count : 0.0,
	       median(lms, runs), weft__text_runs(src));
	free(text);
	weft__mp_buf_free(&enc);
	weft__mp_buf_free(&full);
	weft__mp_buf_free(&upd);
	weft__text_free(src);
	free(p);
	json_decref(j);
	return 0;
}
