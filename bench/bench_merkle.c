/*
 * bench_merkle.c - the Merkle summary at a million documents, printed as
 * JSON lines.
 *
 *   build         weft__merkle_update of every document (synthetic 100-byte
 *                 states) then the first weft__merkle_root, per side
 *   root_after_1  one update then weft__merkle_root (median of 1,001)
 *   root_after_1k 1,000 updates then one weft__merkle_root
 *   diff          weft__merkle_diff of the two sides, which differ in 100
 *                 documents (34 changed, 33 only on a, 33 only on b), with
 *                 the bytes a level-by-level exchange would send each way
 *                 and, for scale, what sending every (id, leaf) would cost
 *   diff_1        the same with a single changed document
 *   memory        bytes held by one side, from allocation counting
 *                 (requested sizes, without malloc's own overhead)
 *   exchange_n    bytes exchanged for 100 differences at smaller sizes
 *
 * Usage: bench_merkle [N] (default 1000000). Wall clock; compare ratios.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "weft/weft.h"
#include "core/merkle.h"

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int cmp_d(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

/* ---- an allocator that counts live bytes ---- */

struct counting {
	struct weft_alloc a;
	size_t live; /* bytes requested and not freed */
	size_t peak;
	size_t blocks;
};

/* A max_align_t-sized header keeps the caller's block aligned. */
#define HDR sizeof(max_align_t)

static void *c_malloc(void *ctx, size_t n)
{
	struct counting *c = ctx;
	unsigned char *p = malloc(HDR + n);

	if (!p)
		return NULL;
	memcpy(p, &n, sizeof(n));
	c->live += n;
	c->blocks++;
	if (c->live > c->peak)
		c->peak = c->live;
	return p + HDR;
}

static void *c_realloc(void *ctx, void *old, size_t n)
{
	struct counting *c = ctx;
	unsigned char *p;
	size_t was;

	if (!old)
		return c_malloc(ctx, n);
	p = (unsigned char *)old - HDR;
	memcpy(&was, p, sizeof(was));
	p = realloc(p, HDR + n);
	if (!p)
		return NULL;
	memcpy(p, &n, sizeof(n));
	c->live = c->live - was + n;
	if (c->live > c->peak)
		c->peak = c->live;
	return p + HDR;
}

static void c_free(void *ctx, void *q)
{
	struct counting *c = ctx;
	unsigned char *p;
	size_t was;

	if (!q)
		return;
	p = (unsigned char *)q - HDR;
	memcpy(&was, p, sizeof(was));
	c->live -= was;
	c->blocks--;
	free(p);
}

static void counting_init(struct counting *c)
{
	memset(c, 0, sizeof(*c));
	c->a.malloc = c_malloc;
	c->a.realloc = c_realloc;
	c->a.free = c_free;
	c->a.ctx = c;
}

/* ---- synthetic documents ---- */

static int mkid(char *id, size_t cap, unsigned i)
{
	return snprintf(id, cap, "doc-%08u", i);
}

/* 100 bytes, a function of (i, version). */
static void mkstate(uint8_t st[100], unsigned i, unsigned version)
{
	uint64_t x = ((uint64_t)i << 20 | version) * 0x9e3779b97f4a7c15u + 1;

	for (int k = 0; k < 100; k++) {
		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		st[k] = (uint8_t)x;
	}
}

static void put(struct weft_merkle *m, unsigned i, unsigned version)
{
	char id[32];
	uint8_t st[100];
	int l = mkid(id, sizeof(id), i);

	mkstate(st, i, version);
	if (weft__merkle_update(m, id, (size_t)l, st, sizeof(st)) != WEFT_OK) {
		fprintf(stderr, "update failed\n");
		exit(1);
	}
}

static void del(struct weft_merkle *m, unsigned i)
{
	char id[32];
	int l = mkid(id, sizeof(id), i);

	if (weft__merkle_remove(m, id, (size_t)l) != WEFT_OK) {
		fprintf(stderr, "remove failed\n");
		exit(1);
	}
}

static int count_cb(void *ctx, const char *id, size_t id_len, enum weft_merkle_side side)
{
	size_t *n = ctx;

	(void)id;
	(void)id_len;
	(void)side;
	(*n)++;
	return 0;
}

/* Document numbers to make different: k -> k * odd + c mod n, a bijection
 * when n is a power of ten (the multiplier is prime to 2 and 5), so the
 * sets of k used below never pick the same document twice. */
static unsigned pick(unsigned k, unsigned n)
{
	return (unsigned)(((uint64_t)k * 2654435761u + 12345) % n);
}

/* Builds a (all n docs) and b (n docs, `d` of them different: a third
 * changed, a third only on a, a third only on b). Returns build seconds of
 * a in *build_s. */
static void build_pair(unsigned n, unsigned d, const struct weft_alloc *alloc,
                       struct weft_merkle **a, struct weft_merkle **b, double *build_s)
{
	uint8_t r[32];
	double t0;

	if (weft__merkle_new(alloc, a) != WEFT_OK || weft__merkle_new(NULL, b) != WEFT_OK)
		exit(1);
	t0 = now_s();
	for (unsigned i = 0; i < n; i++)
		put(*a, i, 0);
	weft__merkle_root(*a, r);
	*build_s = now_s() - t0;
	for (unsigned i = 0; i < n; i++)
		put(*b, i, 0);
	for (unsigned k = 0; k < d; k++) {
		unsigned i = pick(k, n);

		switch (k % 3) {
		case 0:
			put(*b, i, 1);
			break;
		case 1:
			del(*b, i);
			break;
		default:
			del(*a, i);
			break;
		}
	}
}

static void report_diff(const char *name, unsigned n, struct weft_merkle *a, struct weft_merkle *b)
{
	struct weft_merkle_stats st;
	size_t found = 0;
	double t0, t;
	uint8_t r[32];

	/* Both roots up to date first, so the diff time is the walk only. */
	weft__merkle_root(a, r);
	weft__merkle_root(b, r);
	t0 = now_s();
	weft__merkle_diff(a, b, count_cb, &found, &st);
	t = now_s() - t0;
	printf("{\"bench\":\"%s\",\"n\":%u,\"differences\":%zu,\"us\":%.1f,"
	       "\"bytes_a_to_b\":%llu,\"bytes_b_to_a\":%llu,\"rounds\":%u,"
	       "\"nodes_compared\":%llu,\"naive_bytes\":%llu}\n",
	       name, n, found, t * 1e6, (unsigned long long)st.bytes_a_to_b,
	       (unsigned long long)st.bytes_b_to_a, st.rounds,
	       (unsigned long long)st.nodes_compared,
	       /* every (varint len, 12-byte id, 32-byte leaf) of a */
	       (unsigned long long)weft__merkle_count(a) * (1 + 12 + 32));
}

int main(int argc, char **argv)
{
	unsigned n = argc > 1 ? (unsigned)strtoul(argv[1], NULL, 10) : 1000000;
	struct counting ca;
	struct weft_merkle *a, *b;
	double build, t0, times[1001];
	uint8_t r[32];

	counting_init(&ca);
	build_pair(n, 100, &ca.a, &a, &b, &build);
	printf("{\"bench\":\"build\",\"n\":%u,\"ms\":%.1f,\"ns_per_doc\":%.0f}\n", n, build * 1e3,
	       build * 1e9 / n);
	printf("{\"bench\":\"memory\",\"n\":%u,\"bytes\":%zu,\"bytes_per_doc\":%.1f,"
	       "\"blocks\":%zu,\"tree_reported\":%zu}\n",
	       n, ca.live, (double)ca.live / n, ca.blocks, weft__merkle_memory(a));

	/* One update then the root, repeated: each pays its own path. */
	for (int k = 0; k < 1001; k++) {
		t0 = now_s();
		put(a, pick((unsigned)k + 1000, n), 2 + (unsigned)k);
		weft__merkle_root(a, r);
		times[k] = now_s() - t0;
	}
	qsort(times, 1001, sizeof(times[0]), cmp_d);
	printf("{\"bench\":\"root_after_1\",\"n\":%u,\"us_median\":%.2f,\"us_p99\":%.2f}\n", n,
	       times[500] * 1e6, times[990] * 1e6);
	t0 = now_s();
	for (unsigned k = 0; k < 1000; k++)
		put(a, pick(k + 5000, n), 3000);
	weft__merkle_root(a, r);
	printf("{\"bench\":\"root_after_1k\",\"n\":%u,\"ms\":%.2f}\n", n, (now_s() - t0) * 1e3);
	/* Undo those updates on a, so that a and b differ in the 100 only. */
	for (int k = 0; k < 1001; k++)
		put(a, pick((unsigned)k + 1000, n), 0);
	for (unsigned k = 0; k < 1000; k++)
		put(a, pick(k + 5000, n), 0);
	report_diff("diff", n, a, b);

	/* One changed document. */
	for (unsigned k = 0; k < 100; k++) {
		unsigned i = pick(k, n);

		put(a, i, 0);
		put(b, i, 0);
	}
	put(b, 7, 9);
	report_diff("diff_1", n, a, b);
	weft__merkle_free(a);
	weft__merkle_free(b);
	if (ca.live != 0)
		fprintf(stderr, "leak: %zu bytes\n", ca.live);

	/* Bytes exchanged for 100 differences as the collection grows. */
	for (unsigned m = 1000; m < n; m *= 10) {
		build_pair(m, 100, NULL, &a, &b, &build);
		report_diff("exchange_n", m, a, b);
		weft__merkle_free(a);
		weft__merkle_free(b);
	}
	return 0;
}
