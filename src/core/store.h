/*
 * store.h - the storage interface (a versioned vtable, sqlite3_vfs style).
 *
 * Everything weft persists, on a replica or on the server, goes through
 * this interface, so the same authority and replica code runs over SQLite
 * (src/store/sqlite_store.c), PostgreSQL (later) and the in-memory store
 * the tests and the simulator use (src/core/memstore.c).
 *
 * A store holds three keyspaces:
 *   meta  small named values (replica id, incarnation, HLC high-water mark,
 *         cursor, store epoch, per-replica op high-water marks);
 *   docs  (collection, id) -> encoded document state (core/doc.h);
 *   log   uint64 key -> record, in key order. On a replica it is the oplog
 *         of unacknowledged ops; on the server, the change log behind
 *         cursors. Keys are appended in increasing order and trimmed from
 *         the front.
 *
 * Every mutation happens inside begin() .. commit(); commit() returns only
 * once the transaction is durable (the group-commit point: one commit for
 * many ops), and a transaction that was not committed is never visible
 * after a crash. Reads are allowed inside or outside a transaction and see
 * the transaction's own writes. A store is used by one thread at a time.
 *
 * Errors: WEFT_ENOTFOUND (get of a missing key), WEFT_EIO (I/O error, disk
 * full: the transaction is rolled back and the caller may retry),
 * WEFT_ECORRUPT, WEFT_ENOMEM, WEFT_EINVAL (mutation outside a transaction,
 * begin inside one, log key not increasing).
 *
 * Version 1. New members are only ever added at the end; a caller checks
 * `version` before using them.
 */
#ifndef WEFT_CORE_STORE_H
#define WEFT_CORE_STORE_H

#include <stddef.h>
#include <stdint.h>

#include "core/mp.h"

struct weft_store;

/* Scan callbacks return 0 to continue, anything else to stop the scan; a
 * non-zero return is passed back as the scan's result. Pointers are
 * borrowed for the duration of the call. */
typedef int (*weft_store_doc_cb)(void *ctx, const char *coll, size_t coll_len, const char *id,
                                 size_t id_len, const void *val, size_t val_len);
typedef int (*weft_store_log_cb)(void *ctx, uint64_t key, const void *val, size_t val_len);

struct weft_store_vtab {
	int version;      /* 1 */
	const char *name; /* "sqlite", "memory", ... */

	int (*begin)(struct weft_store *st);
	int (*commit)(struct weft_store *st);
	int (*rollback)(struct weft_store *st); /* no-op outside a transaction */

	/* meta: `key` is a NUL-terminated ASCII name. get appends the value to
	 * out (out is not reset first). */
	int (*meta_get)(struct weft_store *st, const char *key, struct mp_buf *out);
	int (*meta_put)(struct weft_store *st, const char *key, const void *val, size_t len);

	/* docs: get appends the value to out. put replaces. */
	int (*doc_get)(struct weft_store *st, const char *coll, size_t coll_len, const char *id,
	               size_t id_len, struct mp_buf *out);
	int (*doc_put)(struct weft_store *st, const char *coll, size_t coll_len, const char *id,
	               size_t id_len, const void *val, size_t len);
	int (*doc_del)(struct weft_store *st, const char *coll, size_t coll_len, const char *id,
	               size_t id_len); /* missing is not an error */
	/* All docs, ordered by (collection, id) bytewise. */
	int (*doc_scan)(struct weft_store *st, weft_store_doc_cb cb, void *ctx);

	/* log: append requires key > every key ever appended (also trimmed
	 * ones); scan visits keys >= from in order; trim removes keys <= upto. */
	int (*log_append)(struct weft_store *st, uint64_t key, const void *val, size_t len);
	int (*log_scan)(struct weft_store *st, uint64_t from, weft_store_log_cb cb, void *ctx);
	int (*log_trim)(struct weft_store *st, uint64_t upto);
	/* Highest key ever appended (0 if none). */
	int (*log_last)(struct weft_store *st, uint64_t *key);

	/* Rolls back any open transaction and frees the store. NULL-safe at
	 * the call site: weft__store_close(NULL) is a no-op. */
	void (*close)(struct weft_store *st);

	/* Detail of the last error, never NULL. */
	const char *(*errmsg)(struct weft_store *st);
};

/* The base every implementation embeds first. */
struct weft_store {
	const struct weft_store_vtab *vt;
};

static inline void weft__store_close(struct weft_store *st)
{
	if (st)
		st->vt->close(st);
}

/* ---- the in-memory store (core/memstore.c) ---- */

/* A new empty in-memory store. Errors: WEFT_ENOMEM. */
int weft__memstore_new(const struct weft_alloc *alloc, struct weft_store **out);
/* Simulates a crash: drops the open transaction (everything not committed)
 * and refuses all further calls with WEFT_EIO until weft__memstore_restart. */
void weft__memstore_crash(struct weft_store *st);
/* Brings a crashed store back with exactly its committed contents. */
void weft__memstore_restart(struct weft_store *st);
/* Fault injection: the Nth mutating call from now (1 = the next one) and
 * every later one fail with WEFT_EIO until cleared with n = 0. */
void weft__memstore_fail_after(struct weft_store *st, unsigned n);

/* Convenience wrappers for u64 meta values (8 bytes little-endian). */
int weft__store_meta_get_u64(struct weft_store *st, const char *key, uint64_t *v);
int weft__store_meta_put_u64(struct weft_store *st, const char *key, uint64_t v);

#endif
