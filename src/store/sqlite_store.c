/*
 * sqlite_store.c - the SQLite implementation of core/store.h.
 *
 * One SQLite file in WAL mode with synchronous=FULL, so commit() returns
 * once the transaction is durable (WEFT_SQLITE_NOSYNC turns that off for
 * tests). Schema version 1:
 *
 *   meta(key TEXT PRIMARY KEY, val BLOB) WITHOUT ROWID
 *   docs(coll BLOB, id BLOB, val BLOB, PRIMARY KEY(coll, id)) WITHOUT ROWID
 *   log(key INTEGER PRIMARY KEY, val BLOB)
 *
 * BLOB comparison in SQLite is memcmp with the shorter first on a common
 * prefix, which is exactly the (collection, id) order store.h promises.
 * The file is marked with PRAGMA application_id = 0x77656674 ('weft') and
 * PRAGMA user_version = 1; anything else is refused with WEFT_ECORRUPT
 * before we write a byte to it.
 *
 * Invariants:
 *  - log keys are SQLite integers (signed 64-bit): keys >= 2^63 are refused
 *    with WEFT_EINVAL, so the signed order is the unsigned order. Key 0 is
 *    never accepted (it cannot exceed "0 = nothing appended");
 *  - the highest key ever appended lives in meta "__log_last" (8 bytes
 *    little-endian), written in the same transaction as the appends, so
 *    log_last and the append-must-increase rule survive trims and reopens.
 *    The meta key "__log_last" is therefore reserved: meta_put refuses it;
 *  - `in_tx` mirrors SQLite's transaction state; an error that makes SQLite
 *    (or us, for EIO) roll back clears it;
 *  - all statements are prepared at open and live as long as the store.
 *    Scan callbacks must not mutate the store nor start another scan of
 *    the same keyspace (they may read it otherwise).
 */
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include <sqlite3.h>

#include "weft/weft.h"
#include "core/alloc.h"
#include "store/sqlite_store.h"

#define WEFT_SQLITE_APP_ID 0x77656674 /* 'weft' */
#define WEFT_SQLITE_SCHEMA 1
#define LOG_LAST_KEY "__log_last"
#define BUSY_TIMEOUT_MS 100 /* the replica lock is taken elsewhere */

enum stmt_id {
	S_BEGIN,
	S_COMMIT,
	S_ROLLBACK,
	S_META_GET,
	S_META_PUT,
	S_DOC_GET,
	S_DOC_PUT,
	S_DOC_DEL,
	S_DOC_SCAN,
	S_LOG_APPEND,
	S_LOG_SCAN,
	S_LOG_TRIM,
	S_LOG_MAX,
	S_COUNT
};

static const char *const stmt_sql[S_COUNT] = {
    [S_BEGIN] = "BEGIN IMMEDIATE",
    [S_COMMIT] = "COMMIT",
    [S_ROLLBACK] = "ROLLBACK",
    [S_META_GET] = "SELECT val FROM meta WHERE key = ?1",
    [S_META_PUT] = "INSERT OR REPLACE INTO meta(key, val) VALUES (?1, ?2)",
    [S_DOC_GET] = "SELECT val FROM docs WHERE coll = ?1 AND id = ?2",
    [S_DOC_PUT] = "INSERT OR REPLACE INTO docs(coll, id, val) VALUES (?1, ?2, ?3)",
    [S_DOC_DEL] = "DELETE FROM docs WHERE coll = ?1 AND id = ?2",
    [S_DOC_SCAN] = "SELECT coll, id, val FROM docs ORDER BY coll, id",
    [S_LOG_APPEND] = "INSERT INTO log(key, val) VALUES (?1, ?2)",
    [S_LOG_SCAN] = "SELECT key, val FROM log WHERE key >= ?1 ORDER BY key",
    [S_LOG_TRIM] = "DELETE FROM log WHERE key <= ?1",
    [S_LOG_MAX] = "SELECT max(key) FROM log",
};

static const char schema_sql[] =
    "CREATE TABLE meta(key TEXT PRIMARY KEY, val BLOB) WITHOUT ROWID;"
    "CREATE TABLE docs(coll BLOB, id BLOB, val BLOB, PRIMARY KEY(coll, id)) WITHOUT ROWID;"
    "CREATE TABLE log(key INTEGER PRIMARY KEY, val BLOB);"
    "PRAGMA application_id = 2003134068;" /* WEFT_SQLITE_APP_ID */
    "PRAGMA user_version = 1;";

_Static_assert(WEFT_SQLITE_APP_ID == 2003134068, "schema_sql spells the application id");

struct sqlite_store {
	struct weft_store base;         /* must be first */
	const struct weft_alloc *alloc; /* the allocator this struct came from */
	sqlite3 *db;                    /* the connection */
	sqlite3_stmt *stmt[S_COUNT];    /* prepared once, see stmt_sql */
	bool readonly;                  /* opened with WEFT_SQLITE_READONLY */
	bool in_tx;                     /* a BEGIN is open */
	uint64_t log_last;              /* highest log key ever appended */
	uint64_t tx_log_last;           /* log_last at begin */
	char errmsg[256];               /* detail of the last error */
};

static struct sqlite_store *ss_of(struct weft_store *st)
{
	return (struct sqlite_store *)st;
}

static int ss_error(struct sqlite_store *ss, int rc, const char *msg)
{
	snprintf(ss->errmsg, sizeof(ss->errmsg), "%s", msg);
	return rc;
}

static int map_sqlite(int src)
{
	switch (src & 0xff) {
	case SQLITE_OK:
	case SQLITE_ROW:
	case SQLITE_DONE:
		return WEFT_OK;
	case SQLITE_NOMEM:
		return WEFT_ENOMEM;
	case SQLITE_CORRUPT:
	case SQLITE_NOTADB:
		return WEFT_ECORRUPT;
	case SQLITE_TOOBIG:
		return WEFT_ETOOBIG;
	default: /* FULL, IOERR, BUSY, LOCKED, CANTOPEN, READONLY, ... */
		return WEFT_EIO;
	}
}

/*
 * Turns SQLite's result `src` from doing `what` into a weft code, with the
 * detail in errmsg. If a transaction was open and SQLite rolled it back by
 * itself (it may on FULL, IOERR, BUSY, NOMEM), or the error is an I/O
 * error (store.h: EIO means the transaction is rolled back), the
 * transaction is rolled back and in_tx cleared.
 */
static int ss_fail(struct sqlite_store *ss, int src, const char *what)
{
	int rc = map_sqlite(src);
	const char *extra = "";

	if ((src & 0xff) == SQLITE_BUSY || (src & 0xff) == SQLITE_LOCKED)
		extra = " (the database is locked by another connection)";
	snprintf(ss->errmsg, sizeof(ss->errmsg), "sqlite: %s: %s%s", what, sqlite3_errmsg(ss->db),
	         extra);
	if (ss->in_tx && (rc == WEFT_EIO || sqlite3_get_autocommit(ss->db))) {
		if (!sqlite3_get_autocommit(ss->db)) {
			sqlite3_stmt *s = ss->stmt[S_ROLLBACK];

			sqlite3_step(s);
			sqlite3_reset(s);
		}
		ss->in_tx = false;
		ss->log_last = ss->tx_log_last;
	}
	return rc;
}

/* Steps a statement expected to run to completion, and resets it. */
static int ss_exec(struct sqlite_store *ss, sqlite3_stmt *s, const char *what)
{
	int src = sqlite3_step(s);

	sqlite3_reset(s);
	sqlite3_clear_bindings(s);
	if (src != SQLITE_DONE && src != SQLITE_ROW)
		return ss_fail(ss, src, what);
	return WEFT_OK;
}

/* Binds bytes as a BLOB; a zero-length one must not become NULL. */
static int bind_bytes(sqlite3_stmt *s, int i, const void *p, size_t len)
{
	if (len == 0)
		return sqlite3_bind_zeroblob(s, i, 0);
	return sqlite3_bind_blob64(s, i, p, (sqlite3_uint64)len, SQLITE_STATIC);
}

/* Column bytes, never NULL (SQLite returns NULL for empty blobs). */
static const void *col_bytes(sqlite3_stmt *s, int i, size_t *len)
{
	const void *p = sqlite3_column_blob(s, i);

	*len = (size_t)sqlite3_column_bytes(s, i);
	return p ? p : "";
}

static int need_tx(struct sqlite_store *ss)
{
	if (!ss->in_tx)
		return ss_error(ss, WEFT_EINVAL, "sqlite: mutation outside a transaction");
	return WEFT_OK;
}

/* ---- transactions ---- */

static int ss_begin(struct weft_store *st)
{
	struct sqlite_store *ss = ss_of(st);
	int rc;

	if (ss->readonly)
		return ss_error(ss, WEFT_EINVAL, "sqlite: store is read-only");
	if (ss->in_tx)
		return ss_error(ss, WEFT_EINVAL, "sqlite: begin inside a transaction");
	rc = ss_exec(ss, ss->stmt[S_BEGIN], "begin");
	if (rc != WEFT_OK)
		return rc;
	ss->in_tx = true;
	ss->tx_log_last = ss->log_last;
	return WEFT_OK;
}

static int put_log_last(struct sqlite_store *ss)
{
	sqlite3_stmt *s = ss->stmt[S_META_PUT];
	uint8_t raw[8];

	for (int i = 0; i < 8; i++)
		raw[i] = (uint8_t)(ss->log_last >> (8 * i));
	sqlite3_bind_text(s, 1, LOG_LAST_KEY, -1, SQLITE_STATIC);
	bind_bytes(s, 2, raw, sizeof(raw));
	return ss_exec(ss, s, "write " LOG_LAST_KEY);
}

/* Writes the log high-water mark if it moved, then commits. Any failure
 * rolls the whole transaction back (ss_fail). */
static int ss_commit(struct weft_store *st)
{
	struct sqlite_store *ss = ss_of(st);
	int rc;

	rc = need_tx(ss);
	if (rc != WEFT_OK)
		return rc;
	if (ss->log_last != ss->tx_log_last) {
		rc = put_log_last(ss);
		if (rc != WEFT_OK)
			goto out_rollback;
	}
	rc = ss_exec(ss, ss->stmt[S_COMMIT], "commit");
	if (rc != WEFT_OK)
		goto out_rollback;
	ss->in_tx = false;
	return WEFT_OK;

out_rollback:
	/* ss_fail already rolled back on EIO; other codes (ENOMEM) leave a
	 * failed commit's transaction open in SQLite, so close it here too:
	 * a commit that failed never leaves a half-open transaction. */
	if (ss->in_tx) {
		sqlite3_stmt *s = ss->stmt[S_ROLLBACK];

		sqlite3_step(s);
		sqlite3_reset(s);
		ss->in_tx = false;
		ss->log_last = ss->tx_log_last;
	}
	return rc;
}

static int ss_rollback(struct weft_store *st)
{
	struct sqlite_store *ss = ss_of(st);
	int rc;

	if (!ss->in_tx)
		return WEFT_OK;
	rc = ss_exec(ss, ss->stmt[S_ROLLBACK], "rollback");
	ss->in_tx = false;
	ss->log_last = ss->tx_log_last;
	return rc;
}

/* ---- meta and docs ---- */

/* Steps a single-row lookup and appends column 0 to out. */
static int get_into(struct sqlite_store *ss, sqlite3_stmt *s, struct mp_buf *out, const char *what)
{
	int src = sqlite3_step(s);
	int rc = WEFT_OK;

	if (src == SQLITE_ROW) {
		size_t len;
		const void *p = col_bytes(s, 0, &len);

		weft__mp_write_raw(out, p, len);
		if (out->err)
			rc = ss_error(ss, out->err, "sqlite: output buffer");
	} else if (src == SQLITE_DONE) {
		rc = WEFT_ENOTFOUND;
	} else {
		rc = ss_fail(ss, src, what);
	}
	sqlite3_reset(s);
	sqlite3_clear_bindings(s);
	return rc;
}

static int ss_meta_get(struct weft_store *st, const char *key, struct mp_buf *out)
{
	struct sqlite_store *ss = ss_of(st);
	sqlite3_stmt *s = ss->stmt[S_META_GET];

	sqlite3_bind_text(s, 1, key, -1, SQLITE_STATIC);
	return get_into(ss, s, out, "meta get");
}

static int ss_meta_put(struct weft_store *st, const char *key, const void *val, size_t len)
{
	struct sqlite_store *ss = ss_of(st);
	sqlite3_stmt *s = ss->stmt[S_META_PUT];
	int rc;

	rc = need_tx(ss);
	if (rc != WEFT_OK)
		return rc;
	if (strcmp(key, LOG_LAST_KEY) == 0)
		return ss_error(ss, WEFT_EINVAL, "sqlite: meta key " LOG_LAST_KEY " is reserved");
	sqlite3_bind_text(s, 1, key, -1, SQLITE_STATIC);
	bind_bytes(s, 2, val, len);
	return ss_exec(ss, s, "meta put");
}

static int ss_doc_get(struct weft_store *st, const char *coll, size_t coll_len, const char *id,
                      size_t id_len, struct mp_buf *out)
{
	struct sqlite_store *ss = ss_of(st);
	sqlite3_stmt *s = ss->stmt[S_DOC_GET];

	bind_bytes(s, 1, coll, coll_len);
	bind_bytes(s, 2, id, id_len);
	return get_into(ss, s, out, "doc get");
}

static int ss_doc_put(struct weft_store *st, const char *coll, size_t coll_len, const char *id,
                      size_t id_len, const void *val, size_t len)
{
	struct sqlite_store *ss = ss_of(st);
	sqlite3_stmt *s = ss->stmt[S_DOC_PUT];
	int rc;

	rc = need_tx(ss);
	if (rc != WEFT_OK)
		return rc;
	bind_bytes(s, 1, coll, coll_len);
	bind_bytes(s, 2, id, id_len);
	bind_bytes(s, 3, val, len);
	return ss_exec(ss, s, "doc put");
}

static int ss_doc_del(struct weft_store *st, const char *coll, size_t coll_len, const char *id,
                      size_t id_len)
{
	struct sqlite_store *ss = ss_of(st);
	sqlite3_stmt *s = ss->stmt[S_DOC_DEL];
	int rc;

	rc = need_tx(ss);
	if (rc != WEFT_OK)
		return rc;
	bind_bytes(s, 1, coll, coll_len);
	bind_bytes(s, 2, id, id_len);
	return ss_exec(ss, s, "doc del");
}

static int ss_doc_scan(struct weft_store *st, weft_store_doc_cb cb, void *ctx)
{
	struct sqlite_store *ss = ss_of(st);
	sqlite3_stmt *s = ss->stmt[S_DOC_SCAN];
	int src, rc = 0;

	while ((src = sqlite3_step(s)) == SQLITE_ROW) {
		size_t clen, ilen, vlen;
		const void *c = col_bytes(s, 0, &clen);
		const void *i = col_bytes(s, 1, &ilen);
		const void *v = col_bytes(s, 2, &vlen);

		rc = cb(ctx, c, clen, i, ilen, v, vlen);
		if (rc != 0)
			break;
	}
	if (rc == 0 && src != SQLITE_DONE)
		rc = ss_fail(ss, src, "doc scan");
	sqlite3_reset(s);
	return rc;
}

/* ---- log ---- */

static int ss_log_append(struct weft_store *st, uint64_t key, const void *val, size_t len)
{
	struct sqlite_store *ss = ss_of(st);
	sqlite3_stmt *s = ss->stmt[S_LOG_APPEND];
	int rc;

	rc = need_tx(ss);
	if (rc != WEFT_OK)
		return rc;
	if (key > (uint64_t)INT64_MAX)
		return ss_error(ss, WEFT_EINVAL, "sqlite: log key >= 2^63");
	if (key <= ss->log_last)
		return ss_error(ss, WEFT_EINVAL, "sqlite: log key not increasing");
	sqlite3_bind_int64(s, 1, (sqlite3_int64)key);
	bind_bytes(s, 2, val, len);
	rc = ss_exec(ss, s, "log append");
	if (rc == WEFT_OK)
		ss->log_last = key;
	return rc;
}

static int ss_log_scan(struct weft_store *st, uint64_t from, weft_store_log_cb cb, void *ctx)
{
	struct sqlite_store *ss = ss_of(st);
	sqlite3_stmt *s = ss->stmt[S_LOG_SCAN];
	int src, rc = 0;

	if (from > (uint64_t)INT64_MAX)
		return 0; /* no key can be that large */
	sqlite3_bind_int64(s, 1, (sqlite3_int64)from);
	while ((src = sqlite3_step(s)) == SQLITE_ROW) {
		size_t vlen;
		const void *v = col_bytes(s, 1, &vlen);

		rc = cb(ctx, (uint64_t)sqlite3_column_int64(s, 0), v, vlen);
		if (rc != 0)
			break;
	}
	if (rc == 0 && src != SQLITE_DONE)
		rc = ss_fail(ss, src, "log scan");
	sqlite3_reset(s);
	sqlite3_clear_bindings(s);
	return rc;
}

static int ss_log_trim(struct weft_store *st, uint64_t upto)
{
	struct sqlite_store *ss = ss_of(st);
	sqlite3_stmt *s = ss->stmt[S_LOG_TRIM];
	int rc;

	rc = need_tx(ss);
	if (rc != WEFT_OK)
		return rc;
	if (upto > (uint64_t)INT64_MAX)
		upto = (uint64_t)INT64_MAX;
	sqlite3_bind_int64(s, 1, (sqlite3_int64)upto);
	return ss_exec(ss, s, "log trim");
}

static int ss_log_last(struct weft_store *st, uint64_t *key)
{
	*key = ss_of(st)->log_last;
	return WEFT_OK;
}

/* ---- lifetime ---- */

static void ss_free(struct sqlite_store *ss)
{
	for (int i = 0; i < S_COUNT; i++)
		sqlite3_finalize(ss->stmt[i]);
	sqlite3_close_v2(ss->db);
	weft__free(ss->alloc, ss);
}

static void ss_close(struct weft_store *st)
{
	struct sqlite_store *ss = ss_of(st);

	if (ss->in_tx)
		ss_rollback(st);
	ss_free(ss);
}

static const char *ss_errmsg(struct weft_store *st)
{
	return ss_of(st)->errmsg;
}

static const struct weft_store_vtab sqlite_vtab = {
    .version = 1,
    .name = "sqlite",
    .begin = ss_begin,
    .commit = ss_commit,
    .rollback = ss_rollback,
    .meta_get = ss_meta_get,
    .meta_put = ss_meta_put,
    .doc_get = ss_doc_get,
    .doc_put = ss_doc_put,
    .doc_del = ss_doc_del,
    .doc_scan = ss_doc_scan,
    .log_append = ss_log_append,
    .log_scan = ss_log_scan,
    .log_trim = ss_log_trim,
    .log_last = ss_log_last,
    .close = ss_close,
    .errmsg = ss_errmsg,
};

/* ---- open ---- */

/* Runs a one-row, one-integer query (a PRAGMA or a count). */
static int query_int(struct sqlite_store *ss, const char *sql, sqlite3_int64 *v)
{
	sqlite3_stmt *s = NULL;
	int src;

	src = sqlite3_prepare_v2(ss->db, sql, -1, &s, NULL);
	if (src == SQLITE_OK) {
		src = sqlite3_step(s);
		if (src == SQLITE_ROW) {
			*v = sqlite3_column_int64(s, 0);
			src = SQLITE_OK;
		} else if (src == SQLITE_DONE) {
			*v = 0;
			src = SQLITE_OK;
		}
	}
	sqlite3_finalize(s);
	if (src != SQLITE_OK)
		return ss_fail(ss, src, sql);
	return WEFT_OK;
}

static int exec_sql(struct sqlite_store *ss, const char *sql, const char *what)
{
	int src = sqlite3_exec(ss->db, sql, NULL, NULL, NULL);

	if (src != SQLITE_OK)
		return ss_fail(ss, src, what);
	return WEFT_OK;
}

/*
 * Decides whether the file is ours before anything is written to it: an
 * empty database gets the schema (if writable), a weft store of a version
 * we know is accepted, anything else is WEFT_ECORRUPT. Reading the header
 * is also what turns a non-SQLite file into SQLITE_NOTADB.
 */
static int check_schema(struct sqlite_store *ss, bool *empty)
{
	sqlite3_int64 app_id = 0, version = 0, objects = 0;
	int rc;

	rc = query_int(ss, "PRAGMA application_id", &app_id);
	if (rc == WEFT_OK)
		rc = query_int(ss, "PRAGMA user_version", &version);
	if (rc == WEFT_OK)
		rc = query_int(ss, "SELECT count(*) FROM sqlite_master", &objects);
	if (rc == WEFT_ECORRUPT)
		return ss_error(ss, rc, "not a weft store: not an SQLite database, or damaged");
	if (rc != WEFT_OK)
		return rc;

	*empty = false;
	if (app_id == 0 && version == 0 && objects == 0) {
		*empty = true;
		if (ss->readonly)
			return ss_error(ss, WEFT_ECORRUPT,
			                "not a weft store: empty database opened read-only");
		return WEFT_OK;
	}
	if (app_id != WEFT_SQLITE_APP_ID) {
		snprintf(ss->errmsg, sizeof(ss->errmsg),
		         "not a weft store: SQLite file of another application "
		         "(application_id 0x%08llx)",
		         (unsigned long long)(uint32_t)app_id);
		return WEFT_ECORRUPT;
	}
	if (version > WEFT_SQLITE_SCHEMA) {
		snprintf(ss->errmsg, sizeof(ss->errmsg),
		         "weft store schema version %lld is newer than this library's (%d)",
		         (long long)version, WEFT_SQLITE_SCHEMA);
		return WEFT_ECORRUPT;
	}
	if (version < 1) {
		snprintf(ss->errmsg, sizeof(ss->errmsg), "weft store with bad schema version %lld",
		         (long long)version);
		return WEFT_ECORRUPT;
	}
	return WEFT_OK;
}

/* Loads log_last: the larger of the recorded mark and the largest key. */
static int load_log_last(struct sqlite_store *ss)
{
	struct mp_buf b;
	sqlite3_int64 max;
	uint64_t v = 0;
	int rc;

	weft__mp_buf_init(&b, ss->alloc, 64);
	rc = ss_meta_get(&ss->base, LOG_LAST_KEY, &b);
	if (rc == WEFT_OK) {
		if (b.len != 8) {
			rc = ss_error(ss, WEFT_ECORRUPT, "weft store: bad " LOG_LAST_KEY);
			goto out_free_buf;
		}
		for (int i = 7; i >= 0; i--)
			v = v << 8 | b.data[i];
	} else if (rc == WEFT_ETOOBIG) {
		rc = ss_error(ss, WEFT_ECORRUPT, "weft store: bad " LOG_LAST_KEY);
		goto out_free_buf;
	} else if (rc != WEFT_ENOTFOUND) {
		goto out_free_buf;
	}
	rc = query_int(ss, stmt_sql[S_LOG_MAX], &max);
	if (rc != WEFT_OK)
		goto out_free_buf;
	if (max < 0) {
		rc = ss_error(ss, WEFT_ECORRUPT, "weft store: negative log key");
		goto out_free_buf;
	}
	ss->log_last = (uint64_t)max > v ? (uint64_t)max : v;
out_free_buf:
	weft__mp_buf_free(&b);
	return rc;
}

static void set_errbuf(char *errbuf, size_t errlen, const char *msg)
{
	if (errbuf && errlen)
		snprintf(errbuf, errlen, "%s", msg);
}

int weft__sqlite_store_open(const char *path, int flags, const struct weft_alloc *alloc,
                            struct weft_store **out, char *errbuf, size_t errlen)
{
	struct sqlite_store *ss;
	struct stat sb;
	bool empty;
	int oflags, src, rc;

	if (!alloc)
		alloc = weft__alloc_default();
	if (!path || !out) {
		set_errbuf(errbuf, errlen, "sqlite: NULL path or out");
		return WEFT_EINVAL;
	}
	if ((flags & WEFT_SQLITE_READONLY) && (flags & WEFT_SQLITE_CREATE)) {
		set_errbuf(errbuf, errlen, "sqlite: READONLY and CREATE together");
		return WEFT_EINVAL;
	}
	if (!(flags & WEFT_SQLITE_CREATE) && stat(path, &sb) != 0 && errno == ENOENT) {
		set_errbuf(errbuf, errlen, "sqlite: no such file");
		return WEFT_ENOTFOUND;
	}

	ss = weft__zalloc(alloc, sizeof(*ss));
	if (!ss) {
		set_errbuf(errbuf, errlen, "sqlite: out of memory");
		return WEFT_ENOMEM;
	}
	ss->base.vt = &sqlite_vtab;
	ss->alloc = alloc;
	ss->readonly = (flags & WEFT_SQLITE_READONLY) != 0;

	if (ss->readonly)
		oflags = SQLITE_OPEN_READONLY;
	else
		oflags =
		    SQLITE_OPEN_READWRITE | (flags & WEFT_SQLITE_CREATE ? SQLITE_OPEN_CREATE : 0);
	src = sqlite3_open_v2(path, &ss->db, oflags | SQLITE_OPEN_NOMUTEX, NULL);
	if (src != SQLITE_OK) {
		rc = ss->db ? ss_fail(ss, src, "open") : WEFT_ENOMEM;
		if (!ss->db)
			ss_error(ss, rc, "sqlite: out of memory");
		goto out_free;
	}
	sqlite3_extended_result_codes(ss->db, 1);
	sqlite3_busy_timeout(ss->db, BUSY_TIMEOUT_MS);

	rc = check_schema(ss, &empty);
	if (rc != WEFT_OK)
		goto out_free;
	if (!ss->readonly) {
		/* Only now that the file is known to be ours (or empty). */
		rc = exec_sql(ss, "PRAGMA journal_mode=WAL", "journal_mode");
		if (rc != WEFT_OK)
			goto out_free;
		rc = exec_sql(ss,
		              flags & WEFT_SQLITE_NOSYNC ? "PRAGMA synchronous=OFF"
		                                         : "PRAGMA synchronous=FULL",
		              "synchronous");
		if (rc != WEFT_OK)
			goto out_free;
	}
	if (empty) {
		/* Another process may have raced us to create it: re-check
		 * under the write lock. */
		rc = exec_sql(ss, "BEGIN IMMEDIATE", "create schema");
		if (rc != WEFT_OK)
			goto out_free;
		rc = check_schema(ss, &empty);
		if (rc == WEFT_OK && empty)
			rc = exec_sql(ss, schema_sql, "create schema");
		if (rc == WEFT_OK)
			rc = exec_sql(ss, "COMMIT", "create schema");
		if (rc != WEFT_OK) {
			sqlite3_exec(ss->db, "ROLLBACK", NULL, NULL, NULL);
			goto out_free;
		}
	}

	for (int i = 0; i < S_COUNT; i++) {
		src = sqlite3_prepare_v3(ss->db, stmt_sql[i], -1, SQLITE_PREPARE_PERSISTENT,
		                         &ss->stmt[i], NULL);
		if (src != SQLITE_OK) {
			rc = ss_fail(ss, src, "prepare");
			if (rc == WEFT_EIO && (src & 0xff) == SQLITE_ERROR)
				rc = ss_error(ss, WEFT_ECORRUPT,
				              "weft store: schema does not match version 1");
			goto out_free;
		}
	}
	rc = load_log_last(ss);
	if (rc != WEFT_OK)
		goto out_free;

	*out = &ss->base;
	return WEFT_OK;

out_free:
	set_errbuf(errbuf, errlen, ss->errmsg);
	ss_free(ss);
	return rc;
}
