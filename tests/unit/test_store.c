/*
 * test_store.c - the storage conformance suite (core/store.h), run against
 * every backend: the in-memory store and SQLite (a file in a fresh mkdtemp
 * directory under /tmp, removed afterwards). Each conformance test is
 * registered once per backend; backend-specific tests (crash/restart and
 * fault injection for the memory store, reopen and foreign files for
 * SQLite, allocation failures) follow.
 */
#include <dirent.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <sqlite3.h>

#include "weft/weft.h"
#include "core/alloc.h"
#include "core/mp.h"
#include "core/store.h"
#include "store/sqlite_store.h"
#include "failalloc.h"

/* ---- fixtures ---- */

struct backend {
	const char *name; /* for messages */
	int is_sqlite;    /* 1: SQLite, 0: memory */
};

static const struct backend be_memory = {"memory", 0};
static const struct backend be_sqlite = {"sqlite", 1};

struct fixture {
	const struct backend *be; /* which store */
	struct weft_store *st;    /* the store under test */
	char dir[64];             /* SQLite: the temporary directory */
	char path[128];           /* SQLite: the database file */
};

static int fx_open(struct fixture *f)
{
	char err[256] = "";
	int rc;

	if (!f->be->is_sqlite)
		return weft__memstore_new(NULL, &f->st);
	rc = weft__sqlite_store_open(f->path, WEFT_SQLITE_CREATE, NULL, &f->st, err, sizeof(err));
	if (rc != WEFT_OK)
		print_error("open %s: %s\n", f->path, err);
	return rc;
}

/* Closes and reopens the store (SQLite only: the memory store would be
 * lost). */
static void fx_reopen(struct fixture *f)
{
	weft__store_close(f->st);
	f->st = NULL;
	assert_int_equal(fx_open(f), WEFT_OK);
}

static void rm_dir(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	char p[512];

	if (!d)
		return;
	while ((e = readdir(d)) != NULL) {
		if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
			continue;
		snprintf(p, sizeof(p), "%s/%s", dir, e->d_name);
		unlink(p);
	}
	closedir(d);
	rmdir(dir);
}

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));

	if (!f)
		return -1;
	f->be = *state;
	if (f->be->is_sqlite) {
		snprintf(f->dir, sizeof(f->dir), "/tmp/weft-test-store-XXXXXX");
		if (!mkdtemp(f->dir)) {
			free(f);
			return -1;
		}
		snprintf(f->path, sizeof(f->path), "%s/store.db", f->dir);
	}
	if (fx_open(f) != WEFT_OK) {
		if (f->be->is_sqlite)
			rm_dir(f->dir);
		free(f);
		return -1;
	}
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;

	weft__store_close(f->st);
	if (f->be->is_sqlite)
		rm_dir(f->dir);
	free(f);
	return 0;
}

/* ---- helpers ---- */

#define VT(st) ((st)->vt)

static void put_doc(struct weft_store *st, const char *coll, size_t clen, const char *id,
                    size_t ilen, const char *val)
{
	assert_int_equal(VT(st)->doc_put(st, coll, clen, id, ilen, val, strlen(val)), WEFT_OK);
}

/* Asserts that (coll, id) holds exactly `val`, or is missing if NULL. */
static void check_doc(struct weft_store *st, const char *coll, size_t clen, const char *id,
                      size_t ilen, const char *val)
{
	struct mp_buf b;
	int rc;

	weft__mp_buf_init(&b, NULL, 0);
	rc = VT(st)->doc_get(st, coll, clen, id, ilen, &b);
	if (!val) {
		assert_int_equal(rc, WEFT_ENOTFOUND);
	} else {
		assert_int_equal(rc, WEFT_OK);
		assert_int_equal(b.len, strlen(val));
		if (b.len)
			assert_memory_equal(b.data, val, b.len);
	}
	weft__mp_buf_free(&b);
}

static void check_meta(struct weft_store *st, const char *key, const char *val)
{
	struct mp_buf b;
	int rc;

	weft__mp_buf_init(&b, NULL, 0);
	rc = VT(st)->meta_get(st, key, &b);
	if (!val) {
		assert_int_equal(rc, WEFT_ENOTFOUND);
	} else {
		assert_int_equal(rc, WEFT_OK);
		assert_int_equal(b.len, strlen(val));
		if (b.len)
			assert_memory_equal(b.data, val, b.len);
	}
	weft__mp_buf_free(&b);
}

/* Collected scan output: keys, values and a running log of keys. */
#define MAX_SEEN 64
struct seen {
	size_t n;                /* entries seen */
	char coll[MAX_SEEN][16]; /* doc scan: collections */
	size_t clen[MAX_SEEN];   /* their lengths */
	char id[MAX_SEEN][16];   /* doc scan: ids */
	size_t ilen[MAX_SEEN];   /* their lengths */
	uint64_t key[MAX_SEEN];  /* log scan: keys */
	char val[MAX_SEEN][32];  /* values, NUL-terminated */
	int stop_at;             /* return `stop_rc` at this entry (1-based) */
	int stop_rc;             /* value to stop with */
};

static void seen_val(struct seen *s, const void *val, size_t len)
{
	assert_true(len < sizeof(s->val[0]));
	memcpy(s->val[s->n], len ? val : "", len);
	s->val[s->n][len] = '\0';
}

static int doc_collect(void *ctx, const char *coll, size_t coll_len, const char *id, size_t id_len,
                       const void *val, size_t val_len)
{
	struct seen *s = ctx;

	assert_true(s->n < MAX_SEEN);
	assert_true(coll_len <= sizeof(s->coll[0]) && id_len <= sizeof(s->id[0]));
	assert_non_null(coll);
	assert_non_null(id);
	memcpy(s->coll[s->n], coll, coll_len);
	s->clen[s->n] = coll_len;
	memcpy(s->id[s->n], id, id_len);
	s->ilen[s->n] = id_len;
	seen_val(s, val, val_len);
	s->n++;
	if (s->stop_at && (int)s->n == s->stop_at)
		return s->stop_rc;
	return 0;
}

static int log_collect(void *ctx, uint64_t key, const void *val, size_t val_len)
{
	struct seen *s = ctx;

	assert_true(s->n < MAX_SEEN);
	s->key[s->n] = key;
	seen_val(s, val, val_len);
	s->n++;
	if (s->stop_at && (int)s->n == s->stop_at)
		return s->stop_rc;
	return 0;
}

static void check_log(struct weft_store *st, uint64_t from, const uint64_t *keys, size_t n)
{
	struct seen s = {0};
	char v[32];

	assert_int_equal(VT(st)->log_scan(st, from, log_collect, &s), 0);
	assert_int_equal(s.n, n);
	for (size_t i = 0; i < n; i++) {
		assert_int_equal(s.key[i], keys[i]);
		snprintf(v, sizeof(v), "r%llu", (unsigned long long)keys[i]);
		assert_string_equal(s.val[i], v);
	}
}

static void append(struct weft_store *st, uint64_t key, int expect)
{
	char v[32];

	snprintf(v, sizeof(v), "r%llu", (unsigned long long)key);
	assert_int_equal(VT(st)->log_append(st, key, v, strlen(v)), expect);
}

static uint64_t last(struct weft_store *st)
{
	uint64_t k = 12345;

	assert_int_equal(VT(st)->log_last(st, &k), WEFT_OK);
	return k;
}

/* ---- conformance ---- */

static void test_meta(void **state)
{
	struct fixture *f = *state;
	struct weft_store *st = f->st;
	struct mp_buf b;
	uint64_t v = 0;

	check_meta(st, "replica", NULL);
	assert_int_equal(VT(st)->begin(st), WEFT_OK);
	assert_int_equal(VT(st)->meta_put(st, "replica", "abc", 3), WEFT_OK);
	assert_int_equal(VT(st)->meta_put(st, "empty", "", 0), WEFT_OK);
	assert_int_equal(VT(st)->meta_put(st, "bin", "\0\1\0", 3), WEFT_OK);
	assert_int_equal(VT(st)->commit(st), WEFT_OK);
	check_meta(st, "replica", "abc");
	check_meta(st, "empty", "");
	check_meta(st, "other", NULL);

	/* get appends, it does not reset */
	weft__mp_buf_init(&b, NULL, 0);
	weft__mp_write_raw(&b, "xy", 2);
	assert_int_equal(VT(st)->meta_get(st, "bin", &b), WEFT_OK);
	assert_int_equal(b.len, 5);
	assert_memory_equal(b.data, "xy\0\1\0", 5);
	weft__mp_buf_free(&b);

	assert_int_equal(VT(st)->begin(st), WEFT_OK);
	assert_int_equal(VT(st)->meta_put(st, "replica", "defgh", 5), WEFT_OK);
	assert_int_equal(weft__store_meta_put_u64(st, "hlc", 0x0102030405060708ull), WEFT_OK);
	assert_int_equal(VT(st)->commit(st), WEFT_OK);
	check_meta(st, "replica", "defgh");

	/* u64 helpers: little-endian, wrong length is corrupt */
	assert_int_equal(weft__store_meta_get_u64(st, "hlc", &v), WEFT_OK);
	assert_int_equal(v, 0x0102030405060708ull);
	check_meta(st, "hlc", "\x08\x07\x06\x05\x04\x03\x02\x01");
	assert_int_equal(weft__store_meta_get_u64(st, "replica", &v), WEFT_ECORRUPT);
	assert_int_equal(weft__store_meta_get_u64(st, "empty", &v), WEFT_ECORRUPT);
	assert_int_equal(weft__store_meta_get_u64(st, "nope", &v), WEFT_ENOTFOUND);
	assert_int_equal(v, 0x0102030405060708ull); /* untouched on error */
}

static void test_docs(void **state)
{
	struct fixture *f = *state;
	struct weft_store *st = f->st;

	check_doc(st, "c", 1, "x", 1, NULL);
	assert_int_equal(VT(st)->begin(st), WEFT_OK);
	put_doc(st, "c", 1, "x", 1, "one");
	put_doc(st, "c", 1, "y", 1, "two");
	put_doc(st, "d", 1, "x", 1, "three");
	put_doc(st, "c", 1, "e", 1, ""); /* an empty value is still a value */
	assert_int_equal(VT(st)->commit(st), WEFT_OK);
	check_doc(st, "c", 1, "x", 1, "one");
	check_doc(st, "c", 1, "y", 1, "two");
	check_doc(st, "d", 1, "x", 1, "three");
	check_doc(st, "c", 1, "e", 1, "");
	check_doc(st, "d", 1, "y", 1, NULL);
	check_doc(st, "cx", 2, "", 0, NULL); /* not a concatenation */

	assert_int_equal(VT(st)->begin(st), WEFT_OK);
	put_doc(st, "c", 1, "x", 1, "ONE, longer now");
	assert_int_equal(VT(st)->doc_del(st, "c", 1, "y", 1), WEFT_OK);
	assert_int_equal(VT(st)->doc_del(st, "c", 1, "zz", 2), WEFT_OK); /* missing: fine */
	assert_int_equal(VT(st)->commit(st), WEFT_OK);
	check_doc(st, "c", 1, "x", 1, "ONE, longer now");
	check_doc(st, "c", 1, "y", 1, NULL);

	/* delete then re-put in one transaction */
	assert_int_equal(VT(st)->begin(st), WEFT_OK);
	assert_int_equal(VT(st)->doc_del(st, "d", 1, "x", 1), WEFT_OK);
	check_doc(st, "d", 1, "x", 1, NULL);
	put_doc(st, "d", 1, "x", 1, "back");
	assert_int_equal(VT(st)->commit(st), WEFT_OK);
	check_doc(st, "d", 1, "x", 1, "back");
}

/* Keys given with explicit lengths; embedded NULs are ordinary bytes. */
struct key {
	const char *c; /* collection bytes */
	size_t cl;     /* its length */
	const char *i; /* id bytes */
	size_t il;     /* its length */
};

#define K(c, i)                                                                                    \
	{                                                                                          \
		c, sizeof(c) - 1, i, sizeof(i) - 1                                                 \
	}

static void test_doc_order(void **state)
{
	struct fixture *f = *state;
	struct weft_store *st = f->st;
	/* The expected order: collection bytewise first (shorter first on a
	 * common prefix), then id the same way. */
	static const struct key want[] = {
	    K("", "x"),
	    K("a", ""),
	    K("a", "a"),
	    K("a", "a\0"),
	    K("a", "a\0\0"),
	    K("a", "aa"),
	    K("a", "b"),
	    K("a", "z"),                /* before ("a\0", ...) although "az" > "a\0a" */
	    K("a", "\xc3\xa9"),         /* é: UTF-8 bytes sort above ASCII */
	    K("a", "\xe2\x82\xac"),     /* € */
	    K("a", "\xf0\x9f\x98\x80"), /* 😀 */
	    K("a", "\xff"),
	    K("a\0", "a"),
	    K("aa", ""),
	    K("b", "a"),
	    K("\xc3\xa9t\xc3\xa9", "1"),
	};
	const size_t n = sizeof(want) / sizeof(want[0]);
	struct seen s = {0};

	/* insert in a scrambled order */
	assert_int_equal(VT(st)->begin(st), WEFT_OK);
	for (size_t k = 0; k < n; k++) {
		size_t j = (k * 7 + 3) % n; /* 7 is coprime with 16 */
		char v[16];

		snprintf(v, sizeof(v), "v%zu", j);
		assert_int_equal(
		    VT(st)->doc_put(st, want[j].c, want[j].cl, want[j].i, want[j].il, v, strlen(v)),
		    WEFT_OK);
	}
	assert_int_equal(VT(st)->commit(st), WEFT_OK);

	assert_int_equal(VT(st)->doc_scan(st, doc_collect, &s), 0);
	assert_int_equal(s.n, n);
	for (size_t k = 0; k < n; k++) {
		char v[16];

		snprintf(v, sizeof(v), "v%zu", k);
		assert_int_equal(s.clen[k], want[k].cl);
		assert_memory_equal(s.coll[k], want[k].c, want[k].cl ? want[k].cl : 1);
		assert_int_equal(s.ilen[k], want[k].il);
		if (want[k].il)
			assert_memory_equal(s.id[k], want[k].i, want[k].il);
		assert_string_equal(s.val[k], v);
		check_doc(st, want[k].c, want[k].cl, want[k].i, want[k].il, v);
	}
	/* "a\0" and "a" are different ids */
	check_doc(st, "a", 1, "a\0\0\0", 4, NULL);
}

static void test_log(void **state)
{
	struct fixture *f = *state;
	struct weft_store *st = f->st;
	static const uint64_t all[] = {1, 2, 5, 10, 1000000000000ull};

	assert_int_equal(last(st), 0);
	check_log(st, 0, NULL, 0);
	assert_int_equal(VT(st)->begin(st), WEFT_OK);
	append(st, 0, WEFT_EINVAL); /* not above "nothing appended" */
	for (size_t i = 0; i < 5; i++)
		append(st, all[i], WEFT_OK);
	append(st, 1000000000000ull, WEFT_EINVAL);
	append(st, 7, WEFT_EINVAL);
	assert_int_equal(VT(st)->commit(st), WEFT_OK);

	assert_int_equal(last(st), 1000000000000ull);
	check_log(st, 0, all, 5);
	check_log(st, 1, all, 5);
	check_log(st, 3, all + 2, 3);
	check_log(st, 5, all + 2, 3);
	check_log(st, 1000000000000ull, all + 4, 1);
	check_log(st, 1000000000001ull, NULL, 0);
	check_log(st, UINT64_MAX, NULL, 0);

	assert_int_equal(VT(st)->begin(st), WEFT_OK);
	assert_int_equal(VT(st)->log_trim(st, 0), WEFT_OK); /* nothing */
	assert_int_equal(VT(st)->log_trim(st, 4), WEFT_OK); /* 1, 2 */
	check_log(st, 0, all + 2, 3);
	assert_int_equal(VT(st)->commit(st), WEFT_OK);
	check_log(st, 0, all + 2, 3);

	/* trim everything: the high-water mark stays */
	assert_int_equal(VT(st)->begin(st), WEFT_OK);
	assert_int_equal(VT(st)->log_trim(st, UINT64_MAX), WEFT_OK);
	assert_int_equal(VT(st)->commit(st), WEFT_OK);
	check_log(st, 0, NULL, 0);
	assert_int_equal(last(st), 1000000000000ull);
	assert_int_equal(VT(st)->begin(st), WEFT_OK);
	append(st, 10, WEFT_EINVAL);
	append(st, 1000000000000ull, WEFT_EINVAL);
	append(st, 1000000000001ull, WEFT_OK);
	assert_int_equal(VT(st)->commit(st), WEFT_OK);
	check_log(st, 0, (const uint64_t[]){1000000000001ull}, 1);

	/* append and trim in one transaction, trimming fresh entries too */
	assert_int_equal(VT(st)->begin(st), WEFT_OK);
	append(st, 1000000000002ull, WEFT_OK);
	append(st, 1000000000003ull, WEFT_OK);
	assert_int_equal(VT(st)->log_trim(st, 1000000000002ull), WEFT_OK);
	append(st, 1000000000004ull, WEFT_OK);
	assert_int_equal(VT(st)->commit(st), WEFT_OK);
	check_log(st, 0, (const uint64_t[]){1000000000003ull, 1000000000004ull}, 2);
	assert_int_equal(last(st), 1000000000004ull);
}

/* Many appends and trims in separate transactions (memstore compaction). */
static void test_log_churn(void **state)
{
	struct fixture *f = *state;
	struct weft_store *st = f->st;
	uint64_t k = 0;

	for (int round = 0; round < 50; round++) {
		assert_int_equal(VT(st)->begin(st), WEFT_OK);
		for (int i = 0; i < 20; i++)
			append(st, ++k, WEFT_OK);
		assert_int_equal(VT(st)->log_trim(st, k - 5), WEFT_OK);
		assert_int_equal(VT(st)->commit(st), WEFT_OK);
		check_log(st, 0, (const uint64_t[]){k - 4, k - 3, k - 2, k - 1, k}, 5);
	}
	assert_int_equal(last(st), 1000);
}

static void test_tx_rules(void **state)
{
	struct fixture *f = *state;
	struct weft_store *st = f->st;

	assert_int_equal(VT(st)->meta_put(st, "k", "v", 1), WEFT_EINVAL);
	assert_int_equal(VT(st)->doc_put(st, "c", 1, "i", 1, "v", 1), WEFT_EINVAL);
	assert_int_equal(VT(st)->doc_del(st, "c", 1, "i", 1), WEFT_EINVAL);
	assert_int_equal(VT(st)->log_append(st, 1, "v", 1), WEFT_EINVAL);
	assert_int_equal(VT(st)->log_trim(st, 1), WEFT_EINVAL);
	assert_int_equal(weft__store_meta_put_u64(st, "k", 1), WEFT_EINVAL);
	assert_int_equal(VT(st)->commit(st), WEFT_EINVAL);
	assert_int_equal(VT(st)->rollback(st), WEFT_OK); /* no-op */
	assert_string_not_equal(VT(st)->errmsg(st), "");

	assert_int_equal(VT(st)->begin(st), WEFT_OK);
	assert_int_equal(VT(st)->begin(st), WEFT_EINVAL);
	put_doc(st, "c", 1, "i", 1, "v"); /* the transaction is still usable */
	assert_int_equal(VT(st)->commit(st), WEFT_OK);
	check_doc(st, "c", 1, "i", 1, "v");
	check_meta(st, "k", NULL);
	assert_int_equal(last(st), 0);
	assert_non_null(VT(st)->errmsg(st));
	assert_int_equal(VT(st)->version, 1);
}

static void test_rollback(void **state)
{
	struct fixture *f = *state;
	struct weft_store *st = f->st;
	struct seen s = {0};

	assert_int_equal(VT(st)->begin(st), WEFT_OK);
	put_doc(st, "c", 1, "keep", 4, "1");
	put_doc(st, "c", 1, "del", 3, "2");
	assert_int_equal(VT(st)->meta_put(st, "m", "old", 3), WEFT_OK);
	append(st, 1, WEFT_OK);
	append(st, 2, WEFT_OK);
	assert_int_equal(VT(st)->commit(st), WEFT_OK);

	assert_int_equal(VT(st)->begin(st), WEFT_OK);
	put_doc(st, "c", 1, "keep", 4, "changed");
	put_doc(st, "c", 1, "keep", 4, "changed twice");
	assert_int_equal(VT(st)->doc_del(st, "c", 1, "del", 3), WEFT_OK);
	put_doc(st, "c", 1, "new", 3, "3");
	assert_int_equal(VT(st)->doc_del(st, "c", 1, "new", 3), WEFT_OK);
	put_doc(st, "c", 1, "new", 3, "4");
	put_doc(st, "n", 1, "new", 3, "5");
	assert_int_equal(VT(st)->meta_put(st, "m", "new", 3), WEFT_OK);
	assert_int_equal(VT(st)->meta_put(st, "m2", "x", 1), WEFT_OK);
	assert_int_equal(VT(st)->log_trim(st, 1), WEFT_OK);
	append(st, 3, WEFT_OK);
	assert_int_equal(VT(st)->rollback(st), WEFT_OK);

	check_doc(st, "c", 1, "keep", 4, "1");
	check_doc(st, "c", 1, "del", 3, "2");
	check_doc(st, "c", 1, "new", 3, NULL);
	check_doc(st, "n", 1, "new", 3, NULL);
	check_meta(st, "m", "old");
	check_meta(st, "m2", NULL);
	check_log(st, 0, (const uint64_t[]){1, 2}, 2);
	assert_int_equal(last(st), 2);
	assert_int_equal(VT(st)->doc_scan(st, doc_collect, &s), 0);
	assert_int_equal(s.n, 2);

	/* the rolled-back key 3 may be appended again */
	assert_int_equal(VT(st)->begin(st), WEFT_OK);
	append(st, 3, WEFT_OK);
	assert_int_equal(VT(st)->commit(st), WEFT_OK);
	assert_int_equal(last(st), 3);
}

static void test_read_own_writes(void **state)
{
	struct fixture *f = *state;
	struct weft_store *st = f->st;
	struct seen s = {0};

	assert_int_equal(VT(st)->begin(st), WEFT_OK);
	put_doc(st, "c", 1, "a", 1, "A");
	put_doc(st, "c", 1, "b", 1, "B");
	append(st, 1, WEFT_OK);
	assert_int_equal(VT(st)->commit(st), WEFT_OK);

	assert_int_equal(VT(st)->begin(st), WEFT_OK);
	put_doc(st, "c", 1, "a", 1, "A2");
	assert_int_equal(VT(st)->doc_del(st, "c", 1, "b", 1), WEFT_OK);
	put_doc(st, "c", 1, "c", 1, "C");
	assert_int_equal(VT(st)->meta_put(st, "m", "v", 1), WEFT_OK);
	append(st, 4, WEFT_OK);
	assert_int_equal(VT(st)->log_trim(st, 1), WEFT_OK);

	check_doc(st, "c", 1, "a", 1, "A2");
	check_doc(st, "c", 1, "b", 1, NULL);
	check_doc(st, "c", 1, "c", 1, "C");
	check_meta(st, "m", "v");
	check_log(st, 0, (const uint64_t[]){4}, 1);
	assert_int_equal(last(st), 4);
	assert_int_equal(VT(st)->doc_scan(st, doc_collect, &s), 0);
	assert_int_equal(s.n, 2);
	assert_string_equal(s.val[0], "A2");
	assert_string_equal(s.val[1], "C");
	assert_int_equal(VT(st)->commit(st), WEFT_OK);
	check_doc(st, "c", 1, "a", 1, "A2");
}

static void test_scan_stop(void **state)
{
	struct fixture *f = *state;
	struct weft_store *st = f->st;
	struct seen s = {.stop_at = 3, .stop_rc = 42};

	assert_int_equal(VT(st)->begin(st), WEFT_OK);
	for (int i = 0; i < 10; i++) {
		char id[8];

		snprintf(id, sizeof(id), "%d", i);
		put_doc(st, "c", 1, id, strlen(id), id);
		append(st, (uint64_t)i + 1, WEFT_OK);
	}
	assert_int_equal(VT(st)->commit(st), WEFT_OK);

	assert_int_equal(VT(st)->doc_scan(st, doc_collect, &s), 42);
	assert_int_equal(s.n, 3);
	memset(&s, 0, sizeof(s));
	s.stop_at = 2;
	s.stop_rc = -77;
	assert_int_equal(VT(st)->log_scan(st, 5, log_collect, &s), -77);
	assert_int_equal(s.n, 2);
	assert_int_equal(s.key[1], 6);

	/* a stopped scan leaves the store usable (SQLite: statement reset) */
	memset(&s, 0, sizeof(s));
	assert_int_equal(VT(st)->doc_scan(st, doc_collect, &s), 0);
	assert_int_equal(s.n, 10);
	assert_int_equal(VT(st)->begin(st), WEFT_OK);
	assert_int_equal(VT(st)->doc_del(st, "c", 1, "0", 1), WEFT_OK);
	assert_int_equal(VT(st)->commit(st), WEFT_OK);
}

struct big_scan {
	long n;         /* docs seen */
	char prev[16];  /* previous id */
	size_t prevlen; /* its length */
};

static int big_cb(void *ctx, const char *coll, size_t coll_len, const char *id, size_t id_len,
                  const void *val, size_t val_len)
{
	struct big_scan *b = ctx;
	char want[16];

	snprintf(want, sizeof(want), "%08ld", b->n);
	if (coll_len != 4 || memcmp(coll, "bulk", 4) != 0 || id_len != 8 ||
	    memcmp(id, want, 8) != 0 || val_len != 8 || memcmp(val, want, 8) != 0) {
		print_error("doc %ld: got id %.*s\n", b->n, (int)id_len, id);
		return -1;
	}
	b->n++;
	return 0;
}

static double now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

/* 100k docs in one transaction, inserted in a scrambled order, come back
 * in order. */
static void test_bulk(void **state)
{
	struct fixture *f = *state;
	struct weft_store *st = f->st;
	const long n = 100000;
	struct big_scan b = {0};
	double t0, t1, t2;

	t0 = now_ms();
	assert_int_equal(VT(st)->begin(st), WEFT_OK);
	for (long k = 0; k < n; k++) {
		long i = (k * 7919) % n; /* 7919 is prime, coprime with n */
		char id[16];

		snprintf(id, sizeof(id), "%08ld", i);
		assert_int_equal(VT(st)->doc_put(st, "bulk", 4, id, 8, id, 8), WEFT_OK);
	}
	assert_int_equal(VT(st)->commit(st), WEFT_OK);
	t1 = now_ms();
	assert_int_equal(VT(st)->doc_scan(st, big_cb, &b), 0);
	t2 = now_ms();
	assert_int_equal(b.n, n);
	print_message("[ %s ] 100k docs: put+commit %.0f ms, scan %.0f ms\n", f->be->name, t1 - t0,
	              t2 - t1);
}

/* ---- memory store only ---- */

static void test_mem_crash(void **state)
{
	struct fixture *f = *state;
	struct weft_store *st = f->st;
	struct mp_buf b;
	uint64_t k;

	assert_int_equal(VT(st)->begin(st), WEFT_OK);
	put_doc(st, "c", 1, "a", 1, "committed");
	assert_int_equal(VT(st)->meta_put(st, "m", "1", 1), WEFT_OK);
	append(st, 1, WEFT_OK);
	assert_int_equal(VT(st)->commit(st), WEFT_OK);

	assert_int_equal(VT(st)->begin(st), WEFT_OK);
	put_doc(st, "c", 1, "a", 1, "lost");
	put_doc(st, "c", 1, "b", 1, "lost");
	assert_int_equal(VT(st)->meta_put(st, "m", "2", 1), WEFT_OK);
	assert_int_equal(VT(st)->log_trim(st, 1), WEFT_OK);
	append(st, 2, WEFT_OK);
	weft__memstore_crash(st);

	weft__mp_buf_init(&b, NULL, 0);
	assert_int_equal(VT(st)->begin(st), WEFT_EIO);
	assert_int_equal(VT(st)->doc_get(st, "c", 1, "a", 1, &b), WEFT_EIO);
	assert_int_equal(VT(st)->meta_get(st, "m", &b), WEFT_EIO);
	assert_int_equal(VT(st)->log_last(st, &k), WEFT_EIO);
	assert_int_equal(VT(st)->doc_put(st, "c", 1, "a", 1, "x", 1), WEFT_EIO);
	weft__mp_buf_free(&b);

	weft__memstore_restart(st);
	check_doc(st, "c", 1, "a", 1, "committed");
	check_doc(st, "c", 1, "b", 1, NULL);
	check_meta(st, "m", "1");
	check_log(st, 0, (const uint64_t[]){1}, 1);
	assert_int_equal(last(st), 1);

	/* a crash outside a transaction loses nothing */
	weft__memstore_crash(st);
	weft__memstore_restart(st);
	check_doc(st, "c", 1, "a", 1, "committed");
	assert_int_equal(VT(st)->begin(st), WEFT_OK);
	append(st, 2, WEFT_OK);
	assert_int_equal(VT(st)->commit(st), WEFT_OK);
}

static void test_mem_fail_after(void **state)
{
	struct fixture *f = *state;
	struct weft_store *st = f->st;

	assert_int_equal(VT(st)->begin(st), WEFT_OK);
	put_doc(st, "c", 1, "a", 1, "old");
	append(st, 1, WEFT_OK);
	assert_int_equal(VT(st)->commit(st), WEFT_OK);

	/* begin, put, append pass; commit is the 4th mutating call */
	weft__memstore_fail_after(st, 4);
	assert_int_equal(VT(st)->begin(st), WEFT_OK);
	put_doc(st, "c", 1, "a", 1, "new");
	append(st, 2, WEFT_OK);
	assert_int_equal(VT(st)->commit(st), WEFT_EIO);
	assert_string_not_equal(VT(st)->errmsg(st), "");
	assert_int_equal(VT(st)->rollback(st), WEFT_OK);
	check_doc(st, "c", 1, "a", 1, "old");
	check_log(st, 0, (const uint64_t[]){1}, 1);
	assert_int_equal(last(st), 1);
	/* and every later mutating call fails until cleared */
	assert_int_equal(VT(st)->begin(st), WEFT_EIO);
	assert_int_equal(VT(st)->begin(st), WEFT_EIO);

	weft__memstore_fail_after(st, 0);
	assert_int_equal(VT(st)->begin(st), WEFT_OK);
	put_doc(st, "c", 1, "a", 1, "new");
	/* a failing put inside a transaction rolls it back (EIO) */
	weft__memstore_fail_after(st, 1);
	assert_int_equal(VT(st)->doc_put(st, "c", 1, "b", 1, "x", 1), WEFT_EIO);
	weft__memstore_fail_after(st, 0);
	assert_int_equal(VT(st)->commit(st), WEFT_EINVAL); /* no transaction any more */
	check_doc(st, "c", 1, "a", 1, "old");
	check_doc(st, "c", 1, "b", 1, NULL);
}

/*
 * The allocation-failure scenario: two transactions over all keyspaces.
 * Stops at the first error, which must be WEFT_ENOMEM; then rolls back and
 * checks that the store still holds what was last committed.
 */
static int alloc_scenario(const struct weft_alloc *a)
{
	struct weft_store *st = NULL;
	struct seen s = {0};
	size_t committed = 0;
	int rc;

	rc = weft__memstore_new(a, &st);
	if (rc != WEFT_OK)
		return rc;
	rc = VT(st)->begin(st);
	for (int i = 0; rc == WEFT_OK && i < 40; i++) {
		char id[8];

		snprintf(id, sizeof(id), "%02d", (i * 13) % 40);
		rc = VT(st)->doc_put(st, "c", 1, id, 2, id, 2);
		if (rc == WEFT_OK)
			rc = VT(st)->log_append(st, (uint64_t)i + 1, id, 2);
	}
	if (rc == WEFT_OK)
		rc = weft__store_meta_put_u64(st, "n", 40);
	if (rc == WEFT_OK)
		rc = VT(st)->commit(st);
	if (rc == WEFT_OK) {
		committed = 40;
		rc = VT(st)->begin(st);
	}
	for (int i = 0; rc == WEFT_OK && i < 40; i += 2) {
		char id[8];

		snprintf(id, sizeof(id), "%02d", i);
		rc = VT(st)->doc_put(st, "c", 1, id, 2, "changed", 7);
		if (rc == WEFT_OK)
			rc = VT(st)->doc_del(st, "c", 1, id, 2);
		if (rc == WEFT_OK)
			rc = VT(st)->doc_put(st, "d", 1, id, 2, "new", 3);
		if (rc == WEFT_OK)
			rc = VT(st)->log_append(st, (uint64_t)i + 100, "x", 1);
	}
	if (rc == WEFT_OK)
		rc = VT(st)->log_trim(st, 20);
	if (rc == WEFT_OK)
		rc = weft__store_meta_put_u64(st, "n", 41);
	if (rc == WEFT_OK)
		rc = VT(st)->commit(st);

	if (rc != WEFT_OK) {
		assert_int_equal(rc, WEFT_ENOMEM);
		assert_int_equal(VT(st)->rollback(st), WEFT_OK);
		assert_int_equal(VT(st)->doc_scan(st, doc_collect, &s), 0);
		assert_int_equal(s.n, committed);
		if (committed) {
			check_doc(st, "c", 1, "00", 2, "00");
			assert_int_equal(last(st), 40);
		}
	}
	weft__store_close(st);
	return rc;
}

static void test_mem_alloc_failures(void **state)
{
	struct failalloc fa;
	long total;

	(void)state;
	failalloc_init(&fa, 0, 0);
	assert_int_equal(alloc_scenario(&fa.a), WEFT_OK);
	assert_int_equal(fa.live, 0);
	total = fa.count;
	assert_true(total > 10);
	for (int sticky = 0; sticky <= 1; sticky++) {
		for (long i = 1; i <= total; i++) {
			failalloc_init(&fa, i, sticky);
			assert_int_equal(alloc_scenario(&fa.a), WEFT_ENOMEM);
			if (fa.live != 0)
				print_error("fail_at %ld sticky %d: %ld leaked\n", i, sticky,
				            fa.live);
			assert_int_equal(fa.live, 0);
		}
	}
}

/* ---- SQLite only ---- */

static void test_sqlite_reopen(void **state)
{
	struct fixture *f = *state;

	assert_int_equal(VT(f->st)->begin(f->st), WEFT_OK);
	put_doc(f->st, "c", 1, "a\0b", 3, "A");
	put_doc(f->st, "", 0, "", 0, "empty keys");
	assert_int_equal(VT(f->st)->meta_put(f->st, "m", "1", 1), WEFT_OK);
	for (uint64_t k = 1; k <= 5; k++)
		append(f->st, k, WEFT_OK);
	assert_int_equal(VT(f->st)->commit(f->st), WEFT_OK);

	assert_int_equal(VT(f->st)->begin(f->st), WEFT_OK);
	put_doc(f->st, "c", 1, "a\0b", 3, "uncommitted");
	put_doc(f->st, "c", 1, "x", 1, "uncommitted");
	append(f->st, 6, WEFT_OK);
	/* close with the transaction open: it must not survive */
	fx_reopen(f);

	check_doc(f->st, "c", 1, "a\0b", 3, "A");
	check_doc(f->st, "c", 1, "a", 1, NULL);
	check_doc(f->st, "", 0, "", 0, "empty keys");
	check_doc(f->st, "c", 1, "x", 1, NULL);
	check_meta(f->st, "m", "1");
	check_log(f->st, 0, (const uint64_t[]){1, 2, 3, 4, 5}, 5);
	assert_int_equal(last(f->st), 5);

	/* the high-water mark survives trimming everything and reopening */
	assert_int_equal(VT(f->st)->begin(f->st), WEFT_OK);
	assert_int_equal(VT(f->st)->log_trim(f->st, 5), WEFT_OK);
	assert_int_equal(VT(f->st)->commit(f->st), WEFT_OK);
	fx_reopen(f);
	check_log(f->st, 0, NULL, 0);
	assert_int_equal(last(f->st), 5);
	assert_int_equal(VT(f->st)->begin(f->st), WEFT_OK);
	append(f->st, 5, WEFT_EINVAL);
	append(f->st, 6, WEFT_OK);
	assert_int_equal(VT(f->st)->commit(f->st), WEFT_OK);
	fx_reopen(f);
	assert_int_equal(last(f->st), 6);
}

static void test_sqlite_limits(void **state)
{
	struct fixture *f = *state;
	struct weft_store *st = f->st;

	assert_int_equal(VT(st)->begin(st), WEFT_OK);
	append(st, (uint64_t)INT64_MAX + 1, WEFT_EINVAL);
	append(st, UINT64_MAX, WEFT_EINVAL);
	append(st, (uint64_t)INT64_MAX, WEFT_OK);
	assert_int_equal(VT(st)->meta_put(st, "__log_last", "x", 1), WEFT_EINVAL);
	assert_int_equal(VT(st)->commit(st), WEFT_OK);
	assert_int_equal(last(st), (uint64_t)INT64_MAX);
	check_log(st, (uint64_t)INT64_MAX, (const uint64_t[]){(uint64_t)INT64_MAX}, 1);
	check_log(st, (uint64_t)INT64_MAX + 1, NULL, 0);
	assert_string_equal(VT(st)->name, "sqlite");
}

static void test_sqlite_readonly(void **state)
{
	struct fixture *f = *state;
	struct weft_store *ro = NULL;
	char err[256];

	assert_int_equal(VT(f->st)->begin(f->st), WEFT_OK);
	put_doc(f->st, "c", 1, "a", 1, "A");
	append(f->st, 3, WEFT_OK);
	assert_int_equal(VT(f->st)->commit(f->st), WEFT_OK);
	weft__store_close(f->st);
	f->st = NULL;

	assert_int_equal(
	    weft__sqlite_store_open(f->path, WEFT_SQLITE_READONLY, NULL, &ro, err, sizeof(err)),
	    WEFT_OK);
	check_doc(ro, "c", 1, "a", 1, "A");
	assert_int_equal(last(ro), 3);
	assert_int_equal(VT(ro)->begin(ro), WEFT_EINVAL);
	assert_int_equal(VT(ro)->doc_put(ro, "c", 1, "b", 1, "B", 1), WEFT_EINVAL);
	weft__store_close(ro);
	assert_int_equal(fx_open(f), WEFT_OK);
}

/* Opening something that is not a weft store is refused with ECORRUPT
 * and leaves the file as it was. */
static void test_sqlite_foreign(void **state)
{
	struct fixture *f = *state;
	struct weft_store *st = (struct weft_store *)0x1;
	char path[192], wal[256], err[256];
	sqlite3 *db;
	FILE *fp;

	/* missing file without CREATE */
	snprintf(path, sizeof(path), "%s/missing.db", f->dir);
	assert_int_equal(weft__sqlite_store_open(path, 0, NULL, &st, err, sizeof(err)),
	                 WEFT_ENOTFOUND);
	assert_int_equal(access(path, F_OK), -1);

	/* garbage */
	snprintf(path, sizeof(path), "%s/garbage.db", f->dir);
	fp = fopen(path, "wb");
	assert_non_null(fp);
	for (int i = 0; i < 8192; i++)
		fputc((i * 31 + 7) & 0xff, fp);
	fclose(fp);
	assert_int_equal(
	    weft__sqlite_store_open(path, WEFT_SQLITE_CREATE, NULL, &st, err, sizeof(err)),
	    WEFT_ECORRUPT);
	assert_non_null(strstr(err, "not a weft store"));
	assert_ptr_equal(st, (struct weft_store *)0x1); /* untouched */

	/* another application's SQLite file */
	snprintf(path, sizeof(path), "%s/other.db", f->dir);
	assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
	assert_int_equal(
	    sqlite3_exec(db, "CREATE TABLE t(x); INSERT INTO t VALUES (1);", NULL, NULL, NULL),
	    SQLITE_OK);
	sqlite3_close(db);
	assert_int_equal(
	    weft__sqlite_store_open(path, WEFT_SQLITE_CREATE, NULL, &st, err, sizeof(err)),
	    WEFT_ECORRUPT);
	assert_non_null(strstr(err, "another application"));
	/* ... and its journal mode was not touched */
	snprintf(wal, sizeof(wal), "%s-wal", path);
	assert_int_equal(access(wal, F_OK), -1);

	/* a weft store from a newer schema */
	weft__store_close(f->st);
	f->st = NULL;
	assert_int_equal(sqlite3_open(f->path, &db), SQLITE_OK);
	assert_int_equal(sqlite3_exec(db, "PRAGMA user_version = 2", NULL, NULL, NULL), SQLITE_OK);
	sqlite3_close(db);
	assert_int_equal(weft__sqlite_store_open(f->path, 0, NULL, &st, err, sizeof(err)),
	                 WEFT_ECORRUPT);
	assert_non_null(strstr(err, "newer"));
	assert_int_equal(sqlite3_open(f->path, &db), SQLITE_OK);
	assert_int_equal(sqlite3_exec(db, "PRAGMA user_version = 1", NULL, NULL, NULL), SQLITE_OK);
	sqlite3_close(db);
	assert_int_equal(fx_open(f), WEFT_OK);
}

/* Two connections: the second cannot begin while the first holds the
 * write lock, and says so (EIO after the busy timeout). */
static void test_sqlite_busy(void **state)
{
	struct fixture *f = *state;
	struct weft_store *other = NULL;
	char err[256];

	assert_int_equal(weft__sqlite_store_open(f->path, 0, NULL, &other, err, sizeof(err)),
	                 WEFT_OK);
	assert_int_equal(VT(f->st)->begin(f->st), WEFT_OK);
	put_doc(f->st, "c", 1, "a", 1, "A");
	assert_int_equal(VT(other)->begin(other), WEFT_EIO);
	assert_non_null(strstr(VT(other)->errmsg(other), "locked"));
	check_doc(other, "c", 1, "a", 1, NULL); /* WAL: readers still read */
	assert_int_equal(VT(f->st)->commit(f->st), WEFT_OK);
	check_doc(other, "c", 1, "a", 1, "A");
	assert_int_equal(VT(other)->begin(other), WEFT_OK);
	assert_int_equal(VT(other)->commit(other), WEFT_OK);
	weft__store_close(other);
}

/*
 * A full disk without a test hook: RLIMIT_FSIZE makes writes past the limit
 * fail with EFBIG (SIGXFSZ ignored), which SQLite reports as FULL/IOERR.
 * The failing transaction must come back as WEFT_EIO, be rolled back, and
 * leave the store usable with its committed contents once space returns.
 */
static void test_sqlite_disk_full(void **state)
{
	struct fixture *f = *state;
	struct weft_store *st = f->st;
	struct rlimit old, lim;
	char val[4096];
	int rc = WEFT_OK;
	long i;

	assert_int_equal(VT(st)->begin(st), WEFT_OK);
	put_doc(st, "c", 1, "a", 1, "committed");
	append(st, 1, WEFT_OK);
	assert_int_equal(VT(st)->commit(st), WEFT_OK);

	memset(val, 'x', sizeof(val));
	assert_int_equal(getrlimit(RLIMIT_FSIZE, &old), 0);
	lim = old;
	lim.rlim_cur = 512 * 1024;
	signal(SIGXFSZ, SIG_IGN);
	assert_int_equal(setrlimit(RLIMIT_FSIZE, &lim), 0);

	assert_int_equal(VT(st)->begin(st), WEFT_OK);
	for (i = 0; rc == WEFT_OK && i < 1024; i++) {
		char id[16];

		snprintf(id, sizeof(id), "big%04ld", i);
		rc = VT(st)->doc_put(st, "c", 1, id, strlen(id), val, sizeof(val));
	}
	if (rc == WEFT_OK)
		rc = VT(st)->commit(st);
	setrlimit(RLIMIT_FSIZE, &old);
	signal(SIGXFSZ, SIG_DFL);

	assert_int_equal(rc, WEFT_EIO);
	print_message("[ sqlite ] disk full after %ld puts: %s\n", i, VT(st)->errmsg(st));
	assert_int_equal(VT(st)->rollback(st), WEFT_OK); /* already rolled back */
	assert_int_equal(VT(st)->commit(st), WEFT_EINVAL);
	check_doc(st, "c", 1, "a", 1, "committed");
	check_doc(st, "c", 1, "big0000", 7, NULL);
	assert_int_equal(last(st), 1);

	/* space is back: the store works and the data survive a reopen */
	assert_int_equal(VT(st)->begin(st), WEFT_OK);
	put_doc(st, "c", 1, "b", 1, "after");
	append(st, 2, WEFT_OK);
	assert_int_equal(VT(st)->commit(st), WEFT_OK);
	fx_reopen(f);
	check_doc(f->st, "c", 1, "a", 1, "committed");
	check_doc(f->st, "c", 1, "b", 1, "after");
	check_doc(f->st, "c", 1, "big0000", 7, NULL);
	assert_int_equal(last(f->st), 2);
}

static void test_sqlite_alloc_failures(void **state)
{
	struct fixture *f = *state;
	struct failalloc fa;
	struct weft_store *st = NULL;
	char err[256];

	failalloc_init(&fa, 1, 0);
	assert_int_equal(weft__sqlite_store_open(f->path, 0, &fa.a, &st, err, sizeof(err)),
	                 WEFT_ENOMEM);
	assert_int_equal(fa.live, 0);
	failalloc_init(&fa, 0, 0);
	assert_int_equal(weft__sqlite_store_open(f->path, 0, &fa.a, &st, err, sizeof(err)),
	                 WEFT_OK);
	weft__store_close(st);
	assert_int_equal(fa.live, 0);
}

#define ON(t, be) cmocka_unit_test_prestate_setup_teardown(t, setup, teardown, (void *)&be)
#define CONFORMANCE(be)                                                                            \
	ON(test_meta, be), ON(test_docs, be), ON(test_doc_order, be), ON(test_log, be),            \
	    ON(test_log_churn, be), ON(test_tx_rules, be), ON(test_rollback, be),                  \
	    ON(test_read_own_writes, be), ON(test_scan_stop, be), ON(test_bulk, be)

int main(void)
{
	const struct CMUnitTest memory[] = {
	    CONFORMANCE(be_memory),
	    ON(test_mem_crash, be_memory),
	    ON(test_mem_fail_after, be_memory),
	    cmocka_unit_test(test_mem_alloc_failures),
	};
	const struct CMUnitTest sqlite[] = {
	    CONFORMANCE(be_sqlite),
	    ON(test_sqlite_reopen, be_sqlite),
	    ON(test_sqlite_limits, be_sqlite),
	    ON(test_sqlite_readonly, be_sqlite),
	    ON(test_sqlite_foreign, be_sqlite),
	    ON(test_sqlite_busy, be_sqlite),
	    ON(test_sqlite_disk_full, be_sqlite),
	    ON(test_sqlite_alloc_failures, be_sqlite),
	};
	int failed = 0;

	failed += cmocka_run_group_tests_name("store/memory", memory, NULL, NULL);
	failed += cmocka_run_group_tests_name("store/sqlite", sqlite, NULL, NULL);
	return failed ? 1 : 0;
}
