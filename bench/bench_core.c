/*
 * bench_core.c - first numbers for the foundation, printed as JSON lines.
 *
 *   local_put     weft_put_json of a 5-field document through the replica
 *                 (memory + oplog queue; durable in the background)
 *   local_get     weft_get_json by id (includes writing canonical JSON)
 *   counter_incr  weft_incr on 1,000 documents' counters
 *   set_add       weft_set_add of 50 distinct elements into 1,000 sets
 *   remote_apply  docset apply of decoded remote ops (field ops/s)
 *   flush         weft_flush after the puts: the write-behind cost
 *   memory        bytes a docset holds for 100,000 documents of 5 fields
 *                 (counted by its allocator: payload + 16 B per block)
 *   sqlite_bare   bare SQLite batched inserts of the same op bytes, in
 *                 batches of 1,000, synchronous=FULL, measured in the same
 *                 run as the reference for durable write-behind
 *
 * Usage: bench_core [N] (default 100000). Each figure is the median of 5
 * runs. Timing is wall clock; run on an idle machine and compare ratios.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <sqlite3.h>

#include "weft/weft.h"
#include "core/doc.h"
#include "core/op.h"

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

static double median5(double v[5])
{
	qsort(v, 5, sizeof(v[0]), cmp_d);
	return v[2];
}

struct ops {
	uint8_t **raw;
	size_t *len;
	struct weft_op *op;
};

/* n encoded SET ops of a 5-field object over n/10 documents. */
static void make_ops(struct ops *o, int n)
{
	o->raw = calloc((size_t)n, sizeof(*o->raw));
	o->len = calloc((size_t)n, sizeof(*o->len));
	o->op = calloc((size_t)n, sizeof(*o->op));
	for (int i = 0; i < n; i++) {
		struct mp_buf val, enc;
		struct weft_op op;
		struct mp_reader r;
		char id[32];

		snprintf(id, sizeof(id), "doc%d", i / 10);
		weft__mp_buf_init(&val, NULL, 0);
		weft__mp_write_map(&val, 5);
		weft__mp_write_cstr(&val, "title");
		weft__mp_write_cstr(&val, "buy milk");
		weft__mp_write_cstr(&val, "done");
		weft__mp_write_bool(&val, i & 1);
		weft__mp_write_cstr(&val, "n");
		weft__mp_write_int(&val, i);
		weft__mp_write_cstr(&val, "owner");
		weft__mp_write_cstr(&val, "ada");
		weft__mp_write_cstr(&val, "prio");
		weft__mp_write_double(&val, 0.5);
		memset(&op, 0, sizeof(op));
		op.replica = 1 + (uint64_t)(i % 3);
		op.incarnation = 1;
		op.seq = (uint64_t)i + 1;
		op.hlc = WEFT_HLC_MAKE(1000000 + (uint64_t)i, 0);
		op.kind = WEFT_OP_SET;
		op.coll = "todos";
		op.coll_len = 5;
		op.id = id;
		op.id_len = strlen(id);
		op.value = val.data;
		op.value_len = val.len;
		weft__mp_buf_init(&enc, NULL, 0);
		weft__op_encode(&enc, &op);
		o->raw[i] = weft__mp_buf_take(&enc, &o->len[i]);
		weft__mp_reader_init(&r, o->raw[i], o->len[i]);
		if (weft__op_decode(&r, &o->op[i]) != WEFT_OK)
			abort();
		weft__mp_buf_free(&val);
	}
}

struct counting {
	struct weft_alloc a;
	size_t bytes; /* live payload bytes + 16 per block (malloc overhead) */
};

static void *count_malloc(void *ctx, size_t n)
{
	struct counting *c = ctx;
	size_t *p = malloc(n + sizeof(size_t));

	if (!p)
		return NULL;
	*p = n;
	c->bytes += n + 16;
	return p + 1;
}

static void *count_realloc(void *ctx, void *old, size_t n)
{
	struct counting *c = ctx;
	size_t *p = old ? (size_t *)old - 1 : NULL, before = p ? *p : 0;

	p = realloc(p, n + sizeof(size_t));
	if (!p)
		return NULL;
	*p = n;
	c->bytes += n - before + (old ? 0 : 16);
	return p + 1;
}

static void count_free(void *ctx, void *q)
{
	struct counting *c = ctx;
	size_t *p = (size_t *)q - 1;

	c->bytes -= *p + 16;
	free(p);
}

/* Bytes held by a docset of n/10 documents after applying the n ops
 * (each document's 5 fields written 10 times by 3 replicas). */
static size_t bench_memory(struct ops *o, int n)
{
	struct counting c = {{count_malloc, count_realloc, count_free, NULL}, 0};
	struct weft_docset *ds;
	size_t bytes;

	c.a.ctx = &c;
	if (weft__docset_new(&c.a, &ds) != WEFT_OK)
		abort();
	for (int i = 0; i < n; i++)
		if (weft__docset_apply(ds, &o->op[i], NULL, NULL) != WEFT_OK)
			abort();
	bytes = c.bytes;
	weft__docset_free(ds);
	return bytes;
}

static double bench_remote_apply(struct ops *o, int n)
{
	struct weft_docset *ds;
	double t0, t1;

	if (weft__docset_new(NULL, &ds) != WEFT_OK)
		abort();
	t0 = now_s();
	for (int i = 0; i < n; i++)
		if (weft__docset_apply(ds, &o->op[i], NULL, NULL) != WEFT_OK)
			abort();
	t1 = now_s();
	weft__docset_free(ds);
	return t1 - t0;
}

static double bench_sqlite_bare(struct ops *o, int n, const char *dir)
{
	char path[512];
	sqlite3 *db;
	sqlite3_stmt *st;
	double t0, t1;

	snprintf(path, sizeof(path), "%s/bare.db", dir);
	unlink(path);
	if (sqlite3_open(path, &db) != SQLITE_OK)
		abort();
	sqlite3_exec(db,
	             "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL;"
	             "CREATE TABLE log(key INTEGER PRIMARY KEY, val BLOB);",
	             NULL, NULL, NULL);
	sqlite3_prepare_v2(db, "INSERT INTO log VALUES(?,?)", -1, &st, NULL);
	t0 = now_s();
	for (int i = 0; i < n; i++) {
		if (i % 1000 == 0)
			sqlite3_exec(db, "BEGIN", NULL, NULL, NULL);
		sqlite3_bind_int64(st, 1, i + 1);
		sqlite3_bind_blob(st, 2, o->raw[i], (int)o->len[i], SQLITE_STATIC);
		if (sqlite3_step(st) != SQLITE_DONE)
			abort();
		sqlite3_reset(st);
		if (i % 1000 == 999 || i == n - 1)
			sqlite3_exec(db, "COMMIT", NULL, NULL, NULL);
	}
	t1 = now_s();
	sqlite3_finalize(st);
	sqlite3_close(db);
	unlink(path);
	return t1 - t0;
}

int main(int argc, char **argv)
{
	int n = argc > 1 ? atoi(argv[1]) : 100000;
	double put[5], get[5], flush[5], apply[5], bare[5], incr[5], sadd[5];
	char dir[] = "/tmp/weft-bench-XXXXXX";
	struct ops o;

	if (n <= 0 || !mkdtemp(dir))
		return 2;
	make_ops(&o, n);
	for (int run = 0; run < 5; run++) {
		char path[512], cmd[600];
		weft_db *db;
		double t0, t1, t2;

		snprintf(path, sizeof(path), "%s/r%d.db", dir, run);
		if (weft_open(path, NULL, &db) != WEFT_OK)
			return 1;
		t0 = now_s();
		for (int i = 0; i < n; i++) {
			char id[32];

			snprintf(id, sizeof(id), "doc%d", i);
			if (weft_put_json(db, "todos", id,
			                  "{\"title\":\"buy milk\",\"done\":false,\"n\":1,"
			                  "\"owner\":\"ada\",\"prio\":0.5}",
			                  (size_t)-1) != WEFT_OK)
				return 1;
		}
		t1 = now_s();
		if (weft_flush(db) != WEFT_OK)
			return 1;
		t2 = now_s();
		put[run] = (t1 - t0) / n;
		flush[run] = t2 - t1;
		t0 = now_s();
		for (int i = 0; i < n; i++) {
			char id[32], *out;

			snprintf(id, sizeof(id), "doc%d", i);
			if (weft_get_json(db, "todos", id, &out, NULL) != WEFT_OK)
				return 1;
			weft_free(out);
		}
		get[run] = (now_s() - t0) / n;
		t0 = now_s();
		for (int i = 0; i < n; i++) {
			char id[32];

			snprintf(id, sizeof(id), "doc%d", i % 1000);
			if (weft_incr(db, "stats", id, "views", 1) != WEFT_OK)
				return 1;
		}
		incr[run] = (now_s() - t0) / n;
		t0 = now_s();
		for (int i = 0; i < n; i++) {
			char id[32], elem[32];

			snprintf(id, sizeof(id), "doc%d", i % 1000);
			snprintf(elem, sizeof(elem), "%d", i % 50);
			if (weft_set_add(db, "stats", id, "tags", elem) != WEFT_OK)
				return 1;
		}
		sadd[run] = (now_s() - t0) / n;
		weft_close(db);
		snprintf(cmd, sizeof(cmd), "rm -f '%s'*", path);
		if (system(cmd) != 0)
			return 1;
		apply[run] = bench_remote_apply(&o, n);
		bare[run] = bench_sqlite_bare(&o, n, dir);
	}
	printf("{\"bench\":\"local_put\",\"n\":%d,\"ns_per_op\":%.0f}\n", n, median5(put) * 1e9);
	printf("{\"bench\":\"local_get\",\"n\":%d,\"ns_per_op\":%.0f}\n", n, median5(get) * 1e9);
	printf("{\"bench\":\"counter_incr\",\"n\":%d,\"ns_per_op\":%.0f}\n", n,
	       median5(incr) * 1e9);
	printf("{\"bench\":\"set_add\",\"n\":%d,\"ns_per_op\":%.0f}\n", n, median5(sadd) * 1e9);
	printf("{\"bench\":\"flush_after_puts\",\"n\":%d,\"ms\":%.1f}\n", n, median5(flush) * 1e3);
	printf("{\"bench\":\"remote_apply\",\"n\":%d,\"field_ops_per_s\":%.0f}\n", n,
	       5.0 * n / median5(apply));
	{
		struct ops m;
		int docs = 100000;

		make_ops(&m, docs * 10);
		printf("{\"bench\":\"memory\",\"docs\":%d,\"fields\":5,\"bytes\":%zu,"
		       "\"bytes_per_doc\":%.0f}\n",
		       docs, bench_memory(&m, docs * 10),
		       (double)bench_memory(&m, docs * 10) / docs);
		for (int i = 0; i < docs * 10; i++)
			free(m.raw[i]);
		free(m.raw);
		free(m.len);
		free(m.op);
	}
	printf("{\"bench\":\"sqlite_bare_batched_insert\",\"n\":%d,\"rows_per_s\":%.0f}\n", n,
	       n / median5(bare));
	printf("{\"bench\":\"durable_write_behind\",\"n\":%d,\"ops_per_s\":%.0f,"
	       "\"ratio_to_bare_sqlite\":%.2f}\n",
	       n, n / (median5(put) * n + median5(flush)),
	       (n / (median5(put) * n + median5(flush))) / (n / median5(bare)));
	rmdir(dir);
	for (int i = 0; i < n; i++)
		free(o.raw[i]);
	free(o.raw);
	free(o.len);
	free(o.op);
	return 0;
}
