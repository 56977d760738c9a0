/*
 * replica.c - weft_db: open/close, synchronous local reads and writes.
 *
 * Every write applies to the in-memory docset and appends an op to the
 * pending list, then hands the op, the document's new state and the clock
 * to the write-behind thread; it returns without waiting for the disk.
 * Durability comes from the writer's group commit (weft_flush waits for
 * it). On open, the documents, the unacknowledged ops, the clock's
 * high-water mark and the server cursor all reload from the store.
 *
 * Peer-to-peer sync (weft_version_vector, weft_export, weft_import) is at
 * the end of this file; imports are journaled so that they apply all or
 * nothing on disk too.
 *
 * Invariants: the pending list holds exactly the ops issued or loaded and
 * not yet acknowledged, in issue order (ascending op key); the writer
 * receives records in the order the changes happened in memory.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include "core/sha256.h"
#include "client/json_in.h"
#include "client/replica.h"
#include "store/sqlite_store.h"

static _Thread_local char open_errmsg[512];

const char *weft_version(void)
{
	return WEFT_VERSION_STRING;
}

const char *weft_strerror(int rc)
{
	switch (rc) {
	case WEFT_OK:
		return "ok";
	case WEFT_ENOMEM:
		return "out of memory";
	case WEFT_EINVAL:
		return "invalid argument";
	case WEFT_EPROTO:
		return "protocol error";
	case WEFT_ECORRUPT:
		return "corrupt data on disk";
	case WEFT_EDENIED:
		return "denied";
	case WEFT_ETOOBIG:
		return "over a limit";
	case WEFT_ECLOSED:
		return "connection closed";
	case WEFT_ENOTFOUND:
		return "not found";
	case WEFT_EIO:
		return "I/O error";
	case WEFT_EBUSY:
		return "in use by another process";
	case WEFT_ETIMEDOUT:
		return "timed out";
	}
	return "unknown error";
}

int weft__db_err(weft_db *db, int rc, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(db->errmsg, sizeof(db->errmsg), fmt, ap);
	va_end(ap);
	return rc;
}

static int open_err(int rc, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;

static int open_err(int rc, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(open_errmsg, sizeof(open_errmsg), fmt, ap);
	va_end(ap);
	return rc;
}

void weft__db_log(weft_db *db, int level, const char *fmt, ...)
{
	char msg[512];
	va_list ap;

	if (!db->opts.log)
		return;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	db->opts.log(db->opts.log_ctx, level, msg);
}

const char *weft_open_errmsg(void)
{
	return open_errmsg;
}

const char *weft_errmsg(weft_db *db)
{
	return db ? db->errmsg : "no handle";
}

void weft_options_init(weft_options *o)
{
	memset(o, 0, sizeof(*o));
	o->version = 1;
	o->flush_interval_ms = 100;
}

void weft_free(void *p)
{
	free(p);
}

/* ---- open ---- */

static int pend_push(weft_db *db, uint64_t key, const void *raw, size_t len)
{
	struct pending_op *p;

	if (db->npend == db->pend_cap) {
		size_t cap = db->pend_cap ? db->pend_cap * 2 : 64;

		p = weft__realloc(db->alloc, db->pend, cap * sizeof(*p));
		if (!p)
			return WEFT_ENOMEM;
		db->pend = p;
		db->pend_cap = cap;
	}
	p = &db->pend[db->npend];
	p->raw = weft__malloc(db->alloc, len);
	if (!p->raw)
		return WEFT_ENOMEM;
	memcpy(p->raw, raw, len);
	p->len = len;
	p->key = key;
	db->npend++;
	return WEFT_OK;
}

static int load_doc(void *ctx, const char *coll, size_t coll_len, const char *id, size_t id_len,
                    const void *val, size_t len)
{
	weft_db *db = ctx;

	return weft__docset_load(db->docs, coll, coll_len, id, id_len, val, len);
}

static int load_op(void *ctx, uint64_t key, const void *val, size_t len)
{
	weft_db *db = ctx;
	struct mp_reader r;
	struct weft_op op;

	weft__mp_reader_init(&r, val, len);
	if (weft__op_decode(&r, &op) != WEFT_OK || weft__op_key(op.incarnation, op.seq) != key)
		return WEFT_ECORRUPT;
	return pend_push(db, key, val, len);
}

/* Reads the replica's identity, bumps and persists the incarnation, and
 * loads the clock and cursor. One store transaction, committed before the
 * handle is returned, so a crash right after open still never reuses the
 * incarnation. */
static int open_meta(weft_db *db, const char *path, bool read_only)
{
	struct weft_store *st = db->st;
	uint64_t v = 0;
	struct mp_buf b;
	int rc;

	rc = weft__store_meta_get_u64(st, "replica", &db->replica);
	if (rc == WEFT_ENOTFOUND && read_only) {
		db->replica = 0;
		rc = WEFT_OK;
	} else if (rc == WEFT_ENOTFOUND) {
		do {
			if (getrandom(&db->replica, sizeof(db->replica), 0) != sizeof(db->replica))
				return open_err(WEFT_EIO, "%s: no randomness for a replica id",
				                path);
		} while (db->replica == 0);
		rc = WEFT_OK;
	}
	if (rc != WEFT_OK)
		return open_err(rc, "%s: reading replica id: %s", path, st->vt->errmsg(st));

	rc = weft__store_meta_get_u64(st, "incarnation", &v);
	if (rc != WEFT_OK && rc != WEFT_ENOTFOUND)
		return open_err(rc, "%s: reading incarnation: %s", path, st->vt->errmsg(st));
	if (v >= WEFT_MAX_INCARNATION)
		return open_err(WEFT_ECORRUPT, "%s: incarnation %llu exhausted", path,
		                (unsigned long long)v);
	db->incarnation = (uint32_t)v + (read_only ? 0 : 1);

	v = 0;
	rc = weft__store_meta_get_u64(st, "hlc", &v);
	if (rc != WEFT_OK && rc != WEFT_ENOTFOUND)
		return open_err(rc, "%s: reading clock: %s", path, st->vt->errmsg(st));
	weft__hlc_init(&db->hlc, v);

	v = 0;
	rc = weft__store_meta_get_u64(st, "clock_offset", &v);
	if (rc != WEFT_OK && rc != WEFT_ENOTFOUND)
		return open_err(rc, "%s: reading clock offset: %s", path, st->vt->errmsg(st));
	db->clock_offset_ms = (int64_t)v;

	weft__mp_buf_init(&b, db->alloc, 64);
	rc = st->vt->meta_get(st, "cursor", &b);
	if (rc == WEFT_OK && b.len == WEFT_CURSOR_LEN) {
		weft__cursor_unpack(&db->cursor, b.data);
		db->has_cursor = true;
	} else if (rc == WEFT_OK) {
		rc = WEFT_ECORRUPT;
	} else if (rc == WEFT_ENOTFOUND) {
		rc = WEFT_OK;
	}
	weft__mp_buf_free(&b);
	if (rc != WEFT_OK)
		return open_err(rc, "%s: reading cursor: %s", path, weft_strerror(rc));
	if (read_only)
		return WEFT_OK;

	if ((rc = st->vt->begin(st)) != WEFT_OK)
		goto out_io;
	rc = weft__store_meta_put_u64(st, "replica", db->replica);
	if (rc == WEFT_OK)
		rc = weft__store_meta_put_u64(st, "incarnation", db->incarnation);
	if (rc == WEFT_OK)
		rc = st->vt->commit(st);
	if (rc == WEFT_OK)
		return WEFT_OK;
	st->vt->rollback(st);
out_io:
	return open_err(rc, "%s: writing incarnation: %s", path, st->vt->errmsg(st));
}

static int take_lock(const char *path, int *fd_out)
{
	size_t n = strlen(path);
	char *lp = malloc(n + 6);
	int fd;

	if (!lp)
		return open_err(WEFT_ENOMEM, "out of memory");
	memcpy(lp, path, n);
	memcpy(lp + n, "-lock", 6);
	fd = open(lp, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
	if (fd < 0) {
		int e = errno;

		open_err(WEFT_EIO, "%s: %s", lp, strerror(e));
		free(lp);
		return WEFT_EIO;
	}
	if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
		int e = errno;

		close(fd);
		if (e == EWOULDBLOCK)
			open_err(WEFT_EBUSY, "%s: replica is in use by another process or handle",
			         path);
		else
			open_err(WEFT_EIO, "%s: locking: %s", lp, strerror(e));
		free(lp);
		return e == EWOULDBLOCK ? WEFT_EBUSY : WEFT_EIO;
	}
	free(lp);
	*fd_out = fd;
	return WEFT_OK;
}

int weft_open(const char *path, const weft_options *opts, weft_db **out)
{
	const struct weft_alloc *a = weft__alloc_default();
	char err[256] = "";
	weft_db *db;
	int rc;

	open_errmsg[0] = '\0';
	if (!path || !out || !*path)
		return open_err(WEFT_EINVAL, "weft_open: NULL or empty argument");
	db = weft__zalloc(a, sizeof(*db));
	if (!db)
		return open_err(WEFT_ENOMEM, "out of memory");
	db->alloc = a;
	db->lock_fd = -1;
	if (opts)
		db->opts = *opts;
	else
		weft_options_init(&db->opts);
	weft__mp_buf_init(&db->scratch, a, 0);

	if (!db->opts.read_only && (rc = take_lock(path, &db->lock_fd)) != WEFT_OK)
		goto out_close;
	rc = weft__sqlite_store_open(path,
	                             db->opts.read_only ? WEFT_SQLITE_READONLY : WEFT_SQLITE_CREATE,
	                             a, &db->st, err, sizeof(err));
	if (rc != WEFT_OK) {
		open_err(rc, "%s: %s", path, err);
		goto out_close;
	}
	if ((rc = weft__docset_new(a, &db->docs)) != WEFT_OK) {
		open_err(rc, "out of memory");
		goto out_close;
	}
	if ((rc = open_meta(db, path, db->opts.read_only)) != WEFT_OK)
		goto out_close;
	/* Texts created or loaded here edit as this incarnation. */
	weft__docset_set_agent(db->docs, db->replica, db->incarnation);
	if ((rc = db->st->vt->doc_scan(db->st, load_doc, db)) != WEFT_OK) {
		open_err(rc, "%s: loading documents: %s", path, weft_strerror(rc));
		goto out_close;
	}
	if ((rc = db->st->vt->log_scan(db->st, 1, load_op, db)) != WEFT_OK) {
		open_err(rc, "%s: loading the oplog: %s", path, weft_strerror(rc));
		goto out_close;
	}
	if (!db->opts.read_only) {
		rc = weft__writer_start(db->st, a, db->opts.flush_interval_ms, &db->w);
		if (rc != WEFT_OK) {
			open_err(rc, "%s: starting the writer thread failed", path);
			goto out_close;
		}
		if ((rc = weft__db_p2p_replay(db)) != WEFT_OK) {
			open_err(rc, "%s: replaying an interrupted peer-to-peer import: %s", path,
			         weft_strerror(rc));
			goto out_close;
		}
	}
	*out = db;
	return WEFT_OK;

out_close : {
	char keep[sizeof(open_errmsg)];

	memcpy(keep, open_errmsg, sizeof(keep));
	weft_close(db);
	memcpy(open_errmsg, keep, sizeof(keep));
}
	return rc;
}

int weft_close(weft_db *db)
{
	int rc = WEFT_OK;

	if (!db)
		return WEFT_OK;
	if (db->w)
		rc = weft__writer_stop(db->w);
	weft__store_close(db->st);
	weft__docset_free(db->docs);
	for (size_t i = 0; i < db->npend; i++)
		weft__free(db->alloc, db->pend[i].raw);
	weft__free(db->alloc, db->pend);
	weft__mp_buf_free(&db->scratch);
	if (db->lock_fd >= 0)
		close(db->lock_fd);
	weft__free(db->alloc, db);
	return rc;
}

uint64_t weft_replica_id(weft_db *db)
{
	return db->replica;
}

uint32_t weft_incarnation(weft_db *db)
{
	return db->incarnation;
}

uint64_t weft_pending(weft_db *db)
{
	return db->npend;
}

int weft_flush(weft_db *db)
{
	int rc;

	if (!db->w)
		return WEFT_OK;
	rc = weft__writer_flush(db->w);
	if (rc != WEFT_OK) {
		weft__db_log(db, WEFT_LOG_ERROR,
		             "flush failed: %s (the writes stay queued and are retried)",
		             weft_strerror(rc));
		return weft__db_err(db, rc, "flush failed: %s", weft_strerror(rc));
	}
	return WEFT_OK;
}

/* ---- writes ---- */

static int check_key(weft_db *db, const char *coll, const char *id, size_t *clen, size_t *ilen)
{
	if (!coll || !id)
		return weft__db_err(db, WEFT_EINVAL, "collection and id are required");
	*clen = strlen(coll);
	*ilen = strlen(id);
	if (*clen == 0 || *ilen == 0)
		return weft__db_err(db, WEFT_EINVAL, "collection and id must not be empty");
	if (*clen > WEFT_MAX_COLLECTION || *ilen > WEFT_MAX_ID)
		return weft__db_err(db, WEFT_ETOOBIG,
		                    "collection (max %d bytes) or id (max %d) too long",
		                    WEFT_MAX_COLLECTION, WEFT_MAX_ID);
	if (!weft__utf8_valid(coll, *clen) || !weft__utf8_valid(id, *ilen))
		return weft__db_err(db, WEFT_EINVAL, "collection and id must be valid UTF-8");
	return WEFT_OK;
}

/* Persists a document's full state (format 3, version vector included)
 * through the writer. */
int weft__db_persist_doc(weft_db *db, struct weft_doc *d)
{
	const char *c, *id;
	size_t clen = 0, ilen = 0;

	weft__mp_buf_reset(&db->scratch);
	weft__doc_encode_full(d, &db->scratch);
	if (db->scratch.err)
		return db->scratch.err;
	weft__doc_key(d, &c, &clen, &id, &ilen);
	return weft__writer_doc_put(db->w, c, clen, id, ilen, db->scratch.data, db->scratch.len);
}

/* Issues, applies and queues one local op whose collection, id, kind, path
 * and value the caller filled in. */
static int local_op(weft_db *db, struct weft_op *op)
{
	struct mp_buf enc;
	struct mp_reader r;
	struct weft_op dec;
	struct weft_doc *d;
	uint64_t hlc_le;
	uint8_t hlc_buf[8];
	int rc;

	if (!db->w)
		return weft__db_err(db, WEFT_EINVAL, "replica is open read-only");
	if (db->seq >= WEFT_MAX_SEQ)
		return weft__db_err(db, WEFT_ETOOBIG, "op numbers of this incarnation exhausted");
	op->replica = db->replica;
	op->incarnation = db->incarnation;
	op->seq = db->seq + 1;
	/* Physical time is our wall clock corrected by the offset to the
	 * server measured at the last handshake (client/adopt.c). */
	op->hlc =
	    weft__hlc_now(&db->hlc, (uint64_t)((int64_t)weft__wall_ms() + db->clock_offset_ms));

	weft__mp_buf_init(&enc, db->alloc, 0);
	weft__op_encode(&enc, op);
	if ((rc = enc.err) != WEFT_OK)
		goto out_free_enc;
	/* Decoding what we encoded validates it against the same limits every
	 * peer applies, so a local write can never produce an op the server
	 * would refuse. */
	weft__mp_reader_init(&r, enc.data, enc.len);
	if ((rc = weft__op_decode(&r, &dec)) != WEFT_OK) {
		weft__db_err(db, rc, "document over the limits of docs/DATA-MODEL.md");
		goto out_free_enc;
	}
	if ((rc = pend_push(db, weft__op_key(dec.incarnation, dec.seq), enc.data, enc.len)) !=
	    WEFT_OK)
		goto out_free_enc;
	if ((rc = weft__docset_apply(db->docs, &dec, NULL, &d)) != WEFT_OK) {
		weft__free(db->alloc, db->pend[--db->npend].raw);
		goto out_free_enc;
	}
	db->seq++;
	rc = weft__writer_log_append(db->w, weft__op_key(dec.incarnation, dec.seq), enc.data,
	                             enc.len);
	if (rc == WEFT_OK)
		rc = weft__db_persist_doc(db, d);
	hlc_le = db->hlc.last;
	for (int i = 0; i < 8; i++)
		hlc_buf[i] = (uint8_t)(hlc_le >> (8 * i));
	if (rc == WEFT_OK)
		rc = weft__writer_meta_put(db->w, "hlc", hlc_buf, sizeof(hlc_buf));
out_free_enc:
	weft__mp_buf_free(&enc);
	if (rc == WEFT_ENOMEM)
		weft__db_err(db, rc, "out of memory");
	return rc;
}

/* Issues a local op of `kind` on (collection, id): path and value are
 * encoded MessagePack (path_len 0 means the document root). */
static int issue_op(weft_db *db, enum weft_op_kind kind, const char *collection, size_t clen,
                    const char *id, size_t ilen, const uint8_t *path, size_t path_len,
                    const uint8_t *value, size_t value_len)
{
	struct weft_op op;

	memset(&op, 0, sizeof(op));
	op.kind = kind;
	op.coll = collection;
	op.coll_len = clen;
	op.id = id;
	op.id_len = ilen;
	op.path = path;
	op.path_len = path_len;
	op.value = value;
	op.value_len = value_len;
	return local_op(db, &op);
}

int weft_put_json(weft_db *db, const char *collection, const char *id, const char *json, size_t len)
{
	struct mp_buf val;
	size_t clen = 0, ilen = 0;
	int rc;

	if ((rc = check_key(db, collection, id, &clen, &ilen)) != WEFT_OK)
		return rc;
	if (!json)
		return weft__db_err(db, WEFT_EINVAL, "JSON is required");
	if (len == (size_t)-1)
		len = strlen(json);
	weft__mp_buf_init(&val, db->alloc, WEFT_MAX_VALUE);
	rc = weft__json_to_mp(json, len, WEFT_MAX_DEPTH, &val, db->errmsg, sizeof(db->errmsg));
	if (rc == WEFT_ETOOBIG && val.err == WEFT_ETOOBIG)
		weft__db_err(db, rc, "document larger than %d bytes encoded", WEFT_MAX_VALUE);
	if (rc != WEFT_OK)
		goto out_free_val;
	if (!(val.data[0] >= 0x80 && val.data[0] <= 0x8f) && val.data[0] != 0xde &&
	    val.data[0] != 0xdf) {
		rc = weft__db_err(db, WEFT_EINVAL, "a document must be a JSON object");
		goto out_free_val;
	}
	rc = issue_op(db, WEFT_OP_SET, collection, clen, id, ilen, NULL, 0, val.data, val.len);
out_free_val:
	weft__mp_buf_free(&val);
	return rc;
}

int weft_delete(weft_db *db, const char *collection, const char *id)
{
	static const uint8_t nil = 0xc0;
	size_t clen = 0, ilen = 0;
	int rc;

	if ((rc = check_key(db, collection, id, &clen, &ilen)) != WEFT_OK)
		return rc;
	return issue_op(db, WEFT_OP_DELETE, collection, clen, id, ilen, NULL, 0, &nil, 1);
}

/* ---- counters and sets ---- */

/*
 * Parses `path` ("a.b", with "\." a literal dot and "\\" a backslash) into
 * a MessagePack array of keys appended to out. Errors: WEFT_EINVAL (NULL
 * or empty path, empty key, bad escape, bad UTF-8), WEFT_ETOOBIG (a key
 * over WEFT_MAX_KEY bytes or more than WEFT_MAX_DEPTH keys), WEFT_ENOMEM.
 */
static int path_parse(weft_db *db, const char *path, struct mp_buf *out)
{
	size_t len, nkeys = 1, klen = 0;
	char *key;
	int rc = WEFT_OK;

	if (!path || !*path)
		return weft__db_err(db, WEFT_EINVAL, "path must not be empty");
	len = strlen(path);
	for (size_t i = 0; i < len; i++) {
		if (path[i] == '\\') {
			if (i + 1 == len || (path[i + 1] != '.' && path[i + 1] != '\\'))
				return weft__db_err(db, WEFT_EINVAL,
				                    "path: only \\. and \\\\ are escapes");
			i++;
		} else if (path[i] == '.') {
			nkeys++;
		}
	}
	if (nkeys > WEFT_MAX_DEPTH)
		return weft__db_err(db, WEFT_ETOOBIG, "path deeper than %d keys", WEFT_MAX_DEPTH);
	if (!(key = weft__malloc(db->alloc, len)))
		return weft__db_err(db, WEFT_ENOMEM, "out of memory");
	weft__mp_write_array(out, (uint32_t)nkeys);
	for (size_t i = 0; i <= len; i++) {
		if (i == len || path[i] == '.') {
			if (klen == 0) {
				rc = weft__db_err(db, WEFT_EINVAL, "path has an empty key");
				break;
			}
			if (klen > WEFT_MAX_KEY) {
				rc = weft__db_err(db, WEFT_ETOOBIG, "path key over %d bytes",
				                  WEFT_MAX_KEY);
				break;
			}
			if (!weft__utf8_valid(key, klen)) {
				rc = weft__db_err(db, WEFT_EINVAL, "path is not valid UTF-8");
				break;
			}
			weft__mp_write_str(out, key, klen);
			klen = 0;
		} else if (path[i] == '\\') {
			key[klen++] = path[++i];
		} else {
			key[klen++] = path[i];
		}
	}
	weft__free(db->alloc, key);
	if (rc == WEFT_OK && out->err)
		rc = weft__db_err(db, out->err, "out of memory");
	return rc;
}

/* Parses a set element: one JSON string, integer, boolean or null, into
 * its minimal MessagePack encoding. Errors: WEFT_EINVAL, WEFT_ENOMEM. */
static int elem_parse(weft_db *db, const char *json, struct mp_buf *out)
{
	struct mp_reader r;
	const uint8_t *raw;
	size_t raw_len;
	char err[256];
	int rc;

	if (!json)
		return weft__db_err(db, WEFT_EINVAL, "element is required");
	rc = weft__json_to_mp(json, strlen(json), 1, out, err, sizeof(err));
	if (rc == WEFT_ENOMEM)
		return weft__db_err(db, rc, "out of memory");
	if (rc == WEFT_ETOOBIG && out->err == WEFT_ETOOBIG)
		return weft__db_err(db, rc, "element larger than %d bytes", WEFT_MAX_VALUE);
	if (rc != WEFT_OK)
		return weft__db_err(db, WEFT_EINVAL, "element: %s", err);
	weft__mp_reader_init(&r, out->data, out->len);
	if (weft__op_elem_read(&r, &raw, &raw_len) != WEFT_OK || weft__mp_reader_left(&r) != 0)
		return weft__db_err(db, WEFT_EINVAL,
		                    "a set element is a JSON string, integer, boolean or null");
	return WEFT_OK;
}

/* Builds the value of an INCR/SADD/SREM from the replica's own state and
 * issues it through local_op, like every other write. */
static int crdt_op(weft_db *db, const char *collection, const char *id, const char *path,
                   enum weft_op_kind kind, int64_t delta, const char *element_json)
{
	struct mp_buf pb, eb, vb;
	size_t clen = 0, ilen = 0;
	int rc;

	if ((rc = check_key(db, collection, id, &clen, &ilen)) != WEFT_OK)
		return rc;
	weft__mp_buf_init(&pb, db->alloc, 0);
	weft__mp_buf_init(&eb, db->alloc, WEFT_MAX_VALUE);
	weft__mp_buf_init(&vb, db->alloc, WEFT_MAX_VALUE);
	if ((rc = path_parse(db, path, &pb)) != WEFT_OK)
		goto out_free;
	if (kind != WEFT_OP_INCR && (rc = elem_parse(db, element_json, &eb)) != WEFT_OK)
		goto out_free;
	if (kind == WEFT_OP_INCR)
		rc = weft__docset_incr_value(db->docs, collection, clen, id, ilen, pb.data, pb.len,
		                             db->replica, db->incarnation, delta, &vb);
	else if (kind == WEFT_OP_SADD)
		rc = weft__docset_sadd_value(db->docs, collection, clen, id, ilen, pb.data, pb.len,
		                             db->replica, db->incarnation, eb.data, eb.len, &vb);
	else
		rc = weft__docset_srem_value(db->docs, collection, clen, id, ilen, pb.data, pb.len,
		                             eb.data, eb.len, &vb);
	if (rc != WEFT_OK) {
		weft__db_err(db, rc,
		             rc == WEFT_ETOOBIG ? "counter total or set value over its limit"
		                                : "out of memory");
		goto out_free;
	}
	rc = issue_op(db, kind, collection, clen, id, ilen, pb.data, pb.len, vb.data, vb.len);
out_free:
	weft__mp_buf_free(&pb);
	weft__mp_buf_free(&eb);
	weft__mp_buf_free(&vb);
	return rc;
}

int weft_incr(weft_db *db, const char *collection, const char *id, const char *path, int64_t delta)
{
	return crdt_op(db, collection, id, path, WEFT_OP_INCR, delta, NULL);
}

int weft_set_add(weft_db *db, const char *collection, const char *id, const char *path,
                 const char *element_json)
{
	return crdt_op(db, collection, id, path, WEFT_OP_SADD, 0, element_json);
}

int weft_set_remove(weft_db *db, const char *collection, const char *id, const char *path,
                    const char *element_json)
{
	return crdt_op(db, collection, id, path, WEFT_OP_SREM, 0, element_json);
}

/* ---- collaborative text ---- */

/* Builds a TEXT op from the replica's own state (the edit is made on a copy
 * of the text, core/doc.h) and issues it through local_op. Its update is
 * compact (core/text.h): the agent of its ops is (db->replica,
 * db->incarnation), which local_op writes into the op's envelope and every
 * replica takes from there when it applies the op. */
static int text_op(weft_db *db, const char *collection, const char *id, const char *path, bool del,
                   size_t pos, const char *utf8, size_t count)
{
	struct mp_buf pb, vb;
	size_t clen = 0, ilen = 0, len = 0;
	int rc;

	if ((rc = check_key(db, collection, id, &clen, &ilen)) != WEFT_OK)
		return rc;
	if (!del) {
		if (!utf8)
			return weft__db_err(db, WEFT_EINVAL, "text is required");
		len = strlen(utf8);
		if (!weft__utf8_valid(utf8, len))
			return weft__db_err(db, WEFT_EINVAL, "text is not valid UTF-8");
		if (len > WEFT_MAX_VALUE)
			return weft__db_err(db, WEFT_ETOOBIG, "text edit larger than %d bytes",
			                    WEFT_MAX_VALUE);
	}
	if (!db->w)
		return weft__db_err(db, WEFT_EINVAL, "replica is open read-only");
	weft__mp_buf_init(&pb, db->alloc, 0);
	weft__mp_buf_init(&vb, db->alloc, 0);
	if ((rc = path_parse(db, path, &pb)) != WEFT_OK)
		goto out_free;
	rc = weft__docset_text_value(db->docs, collection, clen, id, ilen, pb.data, pb.len,
	                             db->replica, db->incarnation, del, pos, utf8, len, count, &vb);
	if (rc != WEFT_OK) {
		weft__db_err(db, rc,
		             rc == WEFT_EINVAL    ? "text position or count out of range"
		             : rc == WEFT_ETOOBIG ? "text over its limits"
		                                  : "out of memory");
		goto out_free;
	}
	rc = issue_op(db, WEFT_OP_TEXT, collection, clen, id, ilen, pb.data, pb.len, vb.data,
	              vb.len);
out_free:
	weft__mp_buf_free(&pb);
	weft__mp_buf_free(&vb);
	return rc;
}

int weft_text_insert(weft_db *db, const char *collection, const char *id, const char *path,
                     size_t pos, const char *utf8)
{
	return text_op(db, collection, id, path, false, pos, utf8, 0);
}

int weft_text_delete(weft_db *db, const char *collection, const char *id, const char *path,
                     size_t pos, size_t count)
{
	return text_op(db, collection, id, path, true, pos, NULL, count);
}

/* ---- remote changes (called by sync.c) ---- */

int weft__db_apply_remote(weft_db *db, const struct weft_op *op, enum weft_doc_change *change,
                          struct weft_doc **doc)
{
	int rc;

	weft__hlc_observe(&db->hlc, op->hlc);
	if ((rc = weft__docset_apply(db->docs, op, change, doc)) != WEFT_OK)
		return rc;
	/* Persist even when nothing visible changed: tombstones and losing
	 * stamps are state too, and replicas must hold identical states. */
	return weft__db_persist_doc(db, *doc);
}

int weft__db_acked(weft_db *db, uint32_t incarnation, uint64_t seq)
{
	uint64_t key = weft__op_key(incarnation, seq);
	size_t k = 0;

	while (k < db->npend && db->pend[k].key <= key)
		weft__free(db->alloc, db->pend[k++].raw);
	if (k == 0)
		return WEFT_OK;
	memmove(db->pend, db->pend + k, (db->npend - k) * sizeof(*db->pend));
	db->npend -= k;
	return weft__writer_log_trim(db->w, key);
}

int weft__db_rejected(weft_db *db, uint32_t incarnation, uint64_t first, uint64_t last)
{
	uint64_t lo = weft__op_key(incarnation, first), hi = weft__op_key(incarnation, last);
	size_t k = 0;

	for (size_t i = 0; i < db->npend; i++) {
		if (db->pend[i].key >= lo && db->pend[i].key <= hi)
			weft__free(db->alloc, db->pend[i].raw);
		else
			db->pend[k++] = db->pend[i];
	}
	if (k != db->npend)
		weft__db_log(db, WEFT_LOG_WARN, "the server rejected ops %u:%llu..%llu",
		             (unsigned)incarnation, (unsigned long long)first,
		             (unsigned long long)last);
	db->npend = k;
	return WEFT_OK;
}

int weft__db_set_cursor(weft_db *db, const struct weft_cursor *c)
{
	uint8_t raw[WEFT_CURSOR_LEN];

	db->cursor = *c;
	db->has_cursor = true;
	weft__cursor_pack(c, raw);
	return weft__writer_meta_put(db->w, "cursor", raw, sizeof(raw));
}

/* ---- reads ---- */

int weft_get_json(weft_db *db, const char *collection, const char *id, char **out, size_t *out_len)
{
	struct weft_doc *d;
	struct mp_buf b;
	size_t clen = 0, ilen = 0, len;
	uint8_t *p;
	int rc;

	if ((rc = check_key(db, collection, id, &clen, &ilen)) != WEFT_OK)
		return rc;
	if (!out)
		return weft__db_err(db, WEFT_EINVAL, "out is NULL");
	d = weft__docset_find(db->docs, collection, clen, id, ilen);
	if (!d || !weft__doc_visible(d))
		return weft__db_err(db, WEFT_ENOTFOUND, "%s/%s not found", collection, id);
	weft__mp_buf_init(&b, db->alloc, 0);
	rc = weft__doc_write_json(d, &b);
	weft__mp_write_raw(&b, "", 1);
	if (rc == WEFT_OK)
		rc = b.err;
	if (rc != WEFT_OK) {
		weft__mp_buf_free(&b);
		return weft__db_err(db, rc, "writing JSON: %s", weft_strerror(rc));
	}
	p = weft__mp_buf_take(&b, &len);
	*out = (char *)p;
	if (out_len)
		*out_len = len - 1;
	return WEFT_OK;
}

int weft_scan(weft_db *db, const char *collection, weft_scan_cb cb, void *ctx)
{
	struct weft_doc **list;
	struct mp_buf b;
	size_t n, clen = collection ? strlen(collection) : 0;
	int rc;

	if (!cb)
		return weft__db_err(db, WEFT_EINVAL, "callback is NULL");
	if ((rc = weft__docset_list(db->docs, &list, &n)) != WEFT_OK)
		return weft__db_err(db, rc, "out of memory");
	weft__mp_buf_init(&b, db->alloc, 0);
	for (size_t i = 0; i < n; i++) {
		const char *c, *id;
		size_t cl, il;

		weft__doc_key(list[i], &c, &cl, &id, &il);
		if (collection && (cl != clen || memcmp(c, collection, cl) != 0))
			continue;
		if (!weft__doc_visible(list[i]))
			continue;
		weft__mp_buf_reset(&b);
		rc = weft__doc_write_json(list[i], &b);
		weft__mp_write_raw(&b, "", 1);
		if (rc == WEFT_OK && (rc = b.err) == WEFT_OK) {
			if (cb(ctx, c, id, (const char *)b.data, b.len - 1) != 0)
				break;
		}
		if (rc != WEFT_OK) {
			weft__db_err(db, rc, "writing JSON: %s", weft_strerror(rc));
			break;
		}
	}
	weft__mp_buf_free(&b);
	weft__docset_free_list(db->docs, list);
	return rc;
}

int weft_dump(weft_db *db, char **out, size_t *out_len)
{
	struct mp_buf b;
	size_t len;
	int rc;

	weft__mp_buf_init(&b, db->alloc, 0);
	rc = weft__docset_dump(db->docs, &b);
	weft__mp_write_raw(&b, "", 1);
	if (rc == WEFT_OK)
		rc = b.err;
	if (rc != WEFT_OK) {
		weft__mp_buf_free(&b);
		return weft__db_err(db, rc, "dump: %s", weft_strerror(rc));
	}
	*out = (char *)weft__mp_buf_take(&b, &len);
	if (out_len)
		*out_len = len - 1;
	return WEFT_OK;
}

void weft_sha256_hex(const void *data, size_t len, char hex[65])
{
	static const char digits[] = "0123456789abcdef";
	uint8_t d[32];

	weft__sha256(data, len, d);
	for (int i = 0; i < 32; i++) {
		hex[2 * i] = digits[d[i] >> 4];
		hex[2 * i + 1] = digits[d[i] & 15];
	}
	hex[64] = '\0';
}

/* ---- peer-to-peer sync (docs/DATA-MODEL.md, "Peer-to-peer sync") ----
 *
 * Change set: [1, [[collection:str, id:str, state:bin] ...]], entries
 * sorted by (collection, id) bytewise with no repeats, each state a full
 * document state (weft__doc_encode_full). The exporter picks every
 * document whose version vector has something the peer's lacks; the
 * importer joins each state into its own document (core/doc.c), all or
 * nothing. An import is journaled: the change set goes to meta
 * "p2p_import" before the documents it changes and the journal is cleared
 * after them, all through the writer, which commits in order. A crash in
 * between leaves the journal, and weft_open joins it again (the join is
 * idempotent) before the replica is used, so part of an import on disk is
 * always completed: left alone, it would make the replica's version
 * vector claim ops it lacks (core/vv.h, assumption 3). */

#define CHANGESET_VERSION 1
#define P2P_JOURNAL "p2p_import"
/* How far ahead of our clock an imported HLC may be (24 hours). */
#define P2P_MAX_DRIFT_MS (UINT64_C(24) * 3600 * 1000)

/* Our clock's physical time: the wall clock with the offset to the server
 * measured at the last handshake (0 without a server). */
static uint64_t clock_ms(weft_db *db)
{
	return (uint64_t)((int64_t)weft__wall_ms() + db->clock_offset_ms);
}

static const uint8_t journal_empty = 0xc0; /* nil: no import in progress */

static int key_order(const char *ac, size_t acl, const char *ai, size_t ail, const char *bc,
                     size_t bcl, const char *bi, size_t bil)
{
	int c = memcmp(ac, bc, acl < bcl ? acl : bcl);

	if (c == 0 && acl != bcl)
		c = acl < bcl ? -1 : 1;
	if (c == 0)
		c = memcmp(ai, bi, ail < bil ? ail : bil);
	if (c == 0 && ail != bil)
		c = ail < bil ? -1 : 1;
	return c;
}

static int vv_out(weft_db *db, const struct weft_vv *v, void **out, size_t *out_len)
{
	struct mp_buf b;

	weft__mp_buf_init(&b, db->alloc, 0);
	weft__vv_encode(v, &b);
	if (b.err) {
		int rc = b.err;

		weft__mp_buf_free(&b);
		return weft__db_err(db, rc, "out of memory");
	}
	*out = weft__mp_buf_take(&b, out_len);
	return WEFT_OK;
}

int weft_version_vector(weft_db *db, void **out, size_t *out_len)
{
	struct weft_vv v;
	int rc;

	if (!db || !out || !out_len)
		return db ? weft__db_err(db, WEFT_EINVAL, "out and out_len are required")
		          : WEFT_EINVAL;
	if ((rc = weft__docset_vv(db->docs, &v)) != WEFT_OK)
		return weft__db_err(db, rc, "out of memory");
	rc = vv_out(db, &v, out, out_len);
	weft__vv_free(db->alloc, &v);
	return rc;
}

int weft_export(weft_db *db, const void *peer_vv, size_t peer_vv_len, void **out, size_t *out_len)
{
	struct weft_vv peer;
	struct weft_doc **list = NULL;
	struct mp_buf b, st;
	size_t n = 0, pick = 0;
	int rc;

	if (!db || !out || !out_len || (!peer_vv && peer_vv_len))
		return db ? weft__db_err(db, WEFT_EINVAL, "weft_export: bad arguments")
		          : WEFT_EINVAL;
	weft__vv_init(&peer);
	weft__mp_buf_init(&b, db->alloc, WEFT_MAX_CHANGESET);
	weft__mp_buf_init(&st, db->alloc, 0);
	if (peer_vv) {
		struct mp_reader r;

		if (peer_vv_len > WEFT_MAX_VV_BYTES) {
			rc = weft__db_err(db, WEFT_ETOOBIG, "version vector over %u bytes",
			                  (unsigned)WEFT_MAX_VV_BYTES);
			goto out_free;
		}
		weft__mp_reader_init(&r, peer_vv, peer_vv_len);
		rc = weft__vv_decode(db->alloc, &r, &peer);
		if (rc == WEFT_OK && weft__mp_reader_left(&r) != 0)
			rc = WEFT_EPROTO;
		if (rc != WEFT_OK) {
			weft__db_err(db, rc, "malformed version vector");
			goto out_free;
		}
	}
	/* Never hand out what a crash could still take back (core/vv.h,
	 * assumption 1): the ops and states exported must be durable. */
	if (db->w && (rc = weft__writer_flush(db->w)) != WEFT_OK) {
		weft__db_err(db, rc, "flush before export failed: %s", weft_strerror(rc));
		goto out_free;
	}
	if ((rc = weft__docset_list(db->docs, &list, &n)) != WEFT_OK) {
		weft__db_err(db, rc, "out of memory");
		goto out_free;
	}
	/* Every document when the peer sent no vector (older documents carry
	 * an empty one); else those with something the peer lacks. */
	for (size_t i = 0; i < n; i++) {
		if (!peer_vv || weft__vv_exceeds(weft__doc_vv(list[i]), &peer))
			list[pick++] = list[i];
	}
	if (pick > UINT32_MAX) {
		rc = weft__db_err(db, WEFT_ETOOBIG, "too many documents for one change set");
		goto out_free;
	}
	weft__mp_write_array(&b, 2);
	weft__mp_write_uint(&b, CHANGESET_VERSION);
	weft__mp_write_array(&b, (uint32_t)pick);
	for (size_t i = 0; i < pick && !b.err; i++) {
		const char *c, *id;
		size_t cl, il;

		weft__mp_buf_reset(&st);
		weft__doc_encode_full(list[i], &st);
		if ((rc = st.err) != WEFT_OK)
			break;
		weft__doc_key(list[i], &c, &cl, &id, &il);
		weft__mp_write_array(&b, 3);
		weft__mp_write_str(&b, c, cl);
		weft__mp_write_str(&b, id, il);
		weft__mp_write_bin(&b, st.data, st.len);
	}
	if (rc == WEFT_OK)
		rc = b.err;
	if (rc != WEFT_OK) {
		weft__db_err(db, rc,
		             rc == WEFT_ETOOBIG ? "change set over the limit: sync in steps"
		                                : "out of memory");
		goto out_free;
	}
	*out = weft__mp_buf_take(&b, out_len);
out_free:
	if (list)
		weft__docset_free_list(db->docs, list);
	weft__vv_free(db->alloc, &peer);
	weft__mp_buf_free(&st);
	weft__mp_buf_free(&b);
	return rc;
}

/*
 * Validates a change set and stages every entry (nothing changes on
 * error), then commits them all to memory and queues the journal, the
 * changed documents and the cleared journal for the disk. `journal` is
 * false when replaying the journal itself (it is already stored, and was
 * checked against the clock when it was first imported).
 * Errors: WEFT_EPROTO (malformed change set or state), WEFT_ENOMEM.
 */
static int import_apply(weft_db *db, const uint8_t *p, size_t len, bool journal)
{
	struct weft_staged **staged = NULL;
	struct mp_reader r;
	uint32_t n = 0, nst = 0, nchanged = 0;
	uint64_t ver, max_hlc = 0;
	const char *pc = NULL, *pi = NULL;
	size_t pcl = 0, pil = 0;
	int rc = WEFT_EPROTO;

	weft__mp_reader_init(&r, p, len);
	if (weft__mp_read_array(&r, &n) != WEFT_OK || n != 2 ||
	    weft__mp_read_uint(&r, &ver) != WEFT_OK || ver != CHANGESET_VERSION ||
	    weft__mp_read_array(&r, &n) != WEFT_OK) {
		weft__db_err(db, rc, "not a version %d change set", CHANGESET_VERSION);
		goto out_free;
	}
	/* An entry takes at least 8 bytes: the array bounds the input. */
	if (n > weft__mp_reader_left(&r) / 8) {
		weft__db_err(db, rc, "change set shorter than its entry count");
		goto out_free;
	}
	if (n && !(staged = weft__zalloc(db->alloc, (size_t)n * sizeof(*staged)))) {
		rc = weft__db_err(db, WEFT_ENOMEM, "out of memory");
		goto out_free;
	}
	for (uint32_t i = 0; i < n; i++) {
		const char *c, *id;
		size_t cl, il, sl;
		const void *state;
		uint32_t k;

		rc = WEFT_EPROTO;
		if (weft__mp_read_array(&r, &k) != WEFT_OK || k != 3 ||
		    weft__mp_read_str(&r, &c, &cl) != WEFT_OK ||
		    weft__mp_read_str(&r, &id, &il) != WEFT_OK ||
		    weft__mp_read_bin(&r, &state, &sl) != WEFT_OK) {
			weft__db_err(db, rc, "change set entry %u is malformed", i);
			goto out_free;
		}
		if (cl == 0 || il == 0 || cl > WEFT_MAX_COLLECTION || il > WEFT_MAX_ID) {
			weft__db_err(db, rc, "change set entry %u: bad collection or id", i);
			goto out_free;
		}
		if (i > 0 && key_order(pc, pcl, pi, pil, c, cl, id, il) >= 0) {
			weft__db_err(db, rc, "change set entries not sorted or repeated at %u", i);
			goto out_free;
		}
		pc = c, pcl = cl, pi = id, pil = il;
		rc = weft__docset_stage_state(db->docs, c, cl, id, il, state, sl, &staged[i]);
		if (rc != WEFT_OK) {
			rc = rc == WEFT_ECORRUPT ? WEFT_EPROTO : rc; /* bad bytes from a peer */
			weft__db_err(db, rc, "change set entry %u (%.*s/%.*s): %s", i, (int)cl, c,
			             (int)(il > 64 ? 64 : il), id, weft_strerror(rc));
			goto out_free;
		}
		nst++;
		nchanged += weft__staged_changed(staged[i]);
		if (weft__staged_max_hlc(staged[i]) > max_hlc)
			max_hlc = weft__staged_max_hlc(staged[i]);
	}
	if (weft__mp_reader_left(&r) != 0) {
		rc = weft__db_err(db, WEFT_EPROTO, "bytes after the change set");
		goto out_free;
	}
	/* Our clock will observe these HLCs and never go back: a peer clock
	 * far ahead would drag every later write of ours (up to wrapping the
	 * HLC) with it. The server re-stamps such ops; peers cannot. */
	if (journal && WEFT_HLC_MS(max_hlc) > clock_ms(db) + P2P_MAX_DRIFT_MS) {
		rc = weft__db_err(db, WEFT_EPROTO,
		                  "change set stamped more than %d hours ahead of our clock",
		                  (int)(P2P_MAX_DRIFT_MS / 3600000));
		goto out_free;
	}
	rc = WEFT_OK;
	if (nchanged == 0)
		goto out_free; /* nothing new: no journal, no writes */
	if (journal && (rc = weft__writer_meta_put(db->w, P2P_JOURNAL, p, len)) != WEFT_OK) {
		weft__db_err(db, rc, "out of memory");
		goto out_free;
	}
	/* From here on nothing can stop the import in memory. */
	for (uint32_t i = 0; i < nst; i++) {
		bool changed = weft__staged_changed(staged[i]);
		struct weft_doc *d = weft__docset_commit_staged(db->docs, staged[i]);

		staged[i] = NULL;
		if (!changed)
			continue;
		if (rc == WEFT_OK)
			rc = weft__db_persist_doc(db, d);
	}
	/* Our next writes must be stamped after everything we saw. */
	weft__hlc_observe(&db->hlc, max_hlc);
	if (rc == WEFT_OK) {
		uint8_t raw[8];

		for (int i = 0; i < 8; i++)
			raw[i] = (uint8_t)(db->hlc.last >> (8 * i));
		rc = weft__writer_meta_put(db->w, "hlc", raw, sizeof(raw));
	}
	if (rc == WEFT_OK)
		rc = weft__writer_meta_put(db->w, P2P_JOURNAL, &journal_empty, 1);
	if (rc != WEFT_OK) {
		/* Applied in memory and journaled, but not all queued: the
		 * journal must survive until the next open replays it, so no
		 * later import may overwrite it. */
		db->p2p_stuck = rc;
		weft__db_err(db, rc,
		             "import applied but not queued for the disk (%s); it is "
		             "journaled and replays on the next open",
		             weft_strerror(rc));
	}
out_free:
	for (uint32_t i = 0; i < nst; i++)
		weft__staged_free(db->docs, staged[i]);
	weft__free(db->alloc, staged);
	return rc;
}

int weft_import(weft_db *db, const void *changes, size_t len)
{
	if (!db)
		return WEFT_EINVAL;
	if (!changes)
		return weft__db_err(db, WEFT_EINVAL, "changes is NULL");
	if (!db->w)
		return weft__db_err(db, WEFT_EINVAL, "replica is open read-only");
	if (db->p2p_stuck)
		return weft__db_err(db, db->p2p_stuck,
		                    "an earlier import could not be queued for the disk: reopen "
		                    "the replica");
	if (len > WEFT_MAX_CHANGESET)
		return weft__db_err(db, WEFT_ETOOBIG, "change set over %u bytes",
		                    (unsigned)WEFT_MAX_CHANGESET);
	return import_apply(db, changes, len, true);
}

int weft__db_p2p_replay(weft_db *db)
{
	struct mp_buf b;
	int rc;

	weft__mp_buf_init(&b, db->alloc, WEFT_MAX_CHANGESET);
	rc = db->st->vt->meta_get(db->st, P2P_JOURNAL, &b);
	if (rc == WEFT_ENOTFOUND || (rc == WEFT_OK && b.len == 1 && b.data[0] == journal_empty)) {
		rc = WEFT_OK;
		goto out_free;
	}
	if (rc != WEFT_OK)
		goto out_free;
	rc = import_apply(db, b.data, b.len, false);
	if (rc == WEFT_EPROTO)
		rc = WEFT_ECORRUPT; /* our own journal */
	if (rc == WEFT_OK)          /* nothing changed (all were durable): clear it */
		rc = weft__writer_meta_put(db->w, P2P_JOURNAL, &journal_empty, 1);
	if (rc == WEFT_OK)
		rc = weft__writer_flush(db->w);
out_free:
	weft__mp_buf_free(&b);
	return rc;
}
