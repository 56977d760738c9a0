/*
 * bench_p2p.c - peer-to-peer sync of a delta between two replica files,
 * printed as one JSON line.
 *
 * Replica A holds a base of N/10 documents that replica B already has
 * (synced before), then writes N new documents of 5 fields each. B asks
 * for what it lacks:
 *   vv_ms            weft_version_vector on B
 *   export_ms        weft_export on A for B's vector: picks the N new
 *                    documents out of 1.1 N and encodes their states
 *   bytes            size of that change set
 *   import_ms        weft_import of it on B (validate, join, journal and
 *                    queue the documents for the disk)
 *   import_flush_ms  weft_flush after the import: the write-behind cost
 *   noop_import_ms   importing the same change set again (nothing new)
 *
 * Usage: bench_p2p [N] (default 100000). Each figure is the median of 5
 * runs (import on a fresh copy of B each time). Wall clock; compare
 * ratios on an idle machine.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "weft/weft.h"

#define RUNS 5

static double now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static int cmp_d(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

static double median(double v[RUNS])
{
	qsort(v, RUNS, sizeof(v[0]), cmp_d);
	return v[RUNS / 2];
}

static void check(int rc, const char *what)
{
	if (rc != WEFT_OK) {
		fprintf(stderr, "bench_p2p: %s: %s\n", what, weft_strerror(rc));
		exit(1);
	}
}

static void put_docs(weft_db *db, const char *prefix, int n)
{
	for (int i = 0; i < n; i++) {
		char id[48], json[256];

		snprintf(id, sizeof(id), "%s%d", prefix, i);
		snprintf(json, sizeof(json),
		         "{\"title\":\"buy milk %d\",\"done\":%s,\"n\":%d,\"owner\":\"ada\","
		         "\"prio\":%d}",
		         i, i & 1 ? "true" : "false", i, i % 5);
		check(weft_put_json(db, "todos", id, json, (size_t)-1), "put");
	}
	check(weft_flush(db), "flush");
}

int main(int argc, char **argv)
{
	int n = argc > 1 ? atoi(argv[1]) : 100000;
	char dir[] = "/tmp/weft-bench-p2p-XXXXXX", path[128];
	double t_vv[RUNS], t_exp[RUNS], t_imp[RUNS], t_flush[RUNS], t_noop[RUNS];
	void *base = NULL, *chg = NULL;
	size_t base_len, chg_len = 0;
	weft_db *a, *b;

	if (n <= 0 || !mkdtemp(dir))
		return 1;
	snprintf(path, sizeof(path), "%s/a.db", dir);
	check(weft_open(path, NULL, &a), "open a");
	put_docs(a, "base", n / 10);
	check(weft_export(a, NULL, 0, &base, &base_len), "export base");
	put_docs(a, "new", n);

	for (int run = 0; run < RUNS; run++) {
		void *vv;
		size_t vv_len;
		double t;

		snprintf(path, sizeof(path), "%s/b%d.db", dir, run);
		check(weft_open(path, NULL, &b), "open b");
		check(weft_import(b, base, base_len), "import base");
		check(weft_flush(b), "flush b");

		t = now_ms();
		check(weft_version_vector(b, &vv, &vv_len), "vv");
		t_vv[run] = now_ms() - t;
		weft_free(chg);
		t = now_ms();
		check(weft_export(a, vv, vv_len, &chg, &chg_len), "export");
		t_exp[run] = now_ms() - t;
		weft_free(vv);
		t = now_ms();
		check(weft_import(b, chg, chg_len), "import");
		t_imp[run] = now_ms() - t;
		t = now_ms();
		check(weft_flush(b), "flush after import");
		t_flush[run] = now_ms() - t;
		t = now_ms();
		check(weft_import(b, chg, chg_len), "import again");
		t_noop[run] = now_ms() - t;
		check(weft_close(b), "close b");
	}
	printf("{\"bench\":\"p2p\",\"docs\":%d,\"fields\":5,\"base_docs\":%d,"
	       "\"vv_ms\":%.2f,\"export_ms\":%.1f,\"bytes\":%zu,\"import_ms\":%.1f,"
	       "\"import_flush_ms\":%.1f,\"noop_import_ms\":%.1f}\n",
	       n, n / 10, median(t_vv), median(t_exp), chg_len, median(t_imp), median(t_flush),
	       median(t_noop));
	weft_free(chg);
	weft_free(base);
	check(weft_close(a), "close a");
	{
		char cmd[160];

		snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
		if (system(cmd) != 0)
			return 1;
	}
	return 0;
}
