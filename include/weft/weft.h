/*
 * weft.h - the public interface of libweft, a local-first sync engine.
 *
 * If it is not in this file, it is not a published API.
 *
 * A replica is a file on disk plus its working set in memory. Reads and
 * writes are synchronous and touch only memory; a background thread makes
 * writes durable in batches (group commit). Syncing with a `weft serve`
 * server is explicit in this version (weft_sync, weft_watch); issue 6 adds
 * the always-on background sync driver.
 *
 * Conventions, for every function below:
 *  - Fallible functions return WEFT_OK (0) or a negative WEFT_E* code;
 *    results go through out-parameters, which are set only on success.
 *  - Strings are UTF-8, NUL-terminated unless a length is passed.
 *  - A weft_db handle belongs to one application thread at a time. The
 *    library's own background thread never touches the memory the
 *    application reads. Calls on one handle from two threads at once are
 *    undefined behaviour; different handles are independent.
 *  - The library never prints and never exits.
 */
#ifndef WEFT_H
#define WEFT_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(WEFT_BUILDING) && defined(__GNUC__)
#define WEFT_API __attribute__((visibility("default")))
#else
#define WEFT_API
#endif

#define WEFT_VERSION_MAJOR 0
#define WEFT_VERSION_MINOR 1
#define WEFT_VERSION_PATCH 0
#define WEFT_VERSION_STRING "0.1.0"

/* Returns WEFT_VERSION_STRING of the library actually linked. Any thread. */
WEFT_API const char *weft_version(void);

/* Error codes. Small on purpose: each means something different to a caller.
 * Detail goes to weft_errmsg(). */
enum {
	WEFT_OK = 0,
	WEFT_ENOMEM = -1,    /* an allocation failed; nothing was changed */
	WEFT_EINVAL = -2,    /* bad argument from the caller (bad JSON, bad id) */
	WEFT_EPROTO = -3,    /* bad bytes from a peer */
	WEFT_ECORRUPT = -4,  /* bad bytes on disk */
	WEFT_EDENIED = -5,   /* refused by the server or by permissions */
	WEFT_ETOOBIG = -6,   /* over a limit (document, frame, path depth) */
	WEFT_ECLOSED = -7,   /* the connection or handle is closed */
	WEFT_ENOTFOUND = -8, /* no such document */
	WEFT_EIO = -9,       /* the operating system or SQLite reported an error */
	WEFT_EBUSY = -10,    /* the replica file is open in another process */
	WEFT_ETIMEDOUT = -11 /* the server did not answer in time */
};

/* A static English description of an error code. Any thread. */
WEFT_API const char *weft_strerror(int rc);

typedef struct weft_db weft_db;

/* Options for weft_open. Fill with weft_options_init, then change fields.
 * New fields are only ever added at the end. */
typedef struct weft_options {
	int version;                /* set by weft_options_init */
	uint32_t flush_interval_ms; /* group-commit interval, default 100 */
	int read_only;              /* open without writing (dump); default 0 */
	/* Called with a WEFT_LOG_* level and a one-line message (borrowed for
	 * the call) for events an application may want to see: lost
	 * connections and retries, errors the server sent, failed flushes.
	 * May be NULL. Called on the thread that made the weft_* call that
	 * noticed the event; it must not call back into the same weft_db. */
	void (*log)(void *ctx, int level, const char *msg);
	void *log_ctx;
} weft_options;

/* Log levels for weft_options.log. */
enum { WEFT_LOG_ERROR = 1, WEFT_LOG_WARN = 2, WEFT_LOG_INFO = 3 };

/* Fills *opts with defaults. Cannot fail. Any thread. */
WEFT_API void weft_options_init(weft_options *opts);

/*
 * Opens (creating if needed) the replica stored in the SQLite file `path`.
 * `opts` may be NULL for defaults. On success *out is a new handle the
 * caller owns and must pass to weft_close. Every open of a writable replica
 * durably increments its incarnation, so operation ids lost in a crash are
 * never reused.
 *
 * Errors: WEFT_EINVAL (NULL path/out), WEFT_EBUSY (the file is open in
 * another process or handle), WEFT_ECORRUPT (not a weft replica, or damaged),
 * WEFT_EIO, WEFT_ENOMEM. On error *out is untouched and, if a handle was
 * needed to describe the error, the message is lost: use weft_open_errmsg.
 */
WEFT_API int weft_open(const char *path, const weft_options *opts, weft_db **out);

/* The message of the last weft_open failure on this thread ("" if none). */
WEFT_API const char *weft_open_errmsg(void);

/* Flushes pending writes, stops the background thread and frees the handle.
 * NULL is a no-op. Returns the flush's error code (the handle is freed
 * whatever it returns). */
WEFT_API int weft_close(weft_db *db);

/* Detail of the last error on this handle. Valid until the next call on the
 * handle. Never NULL. */
WEFT_API const char *weft_errmsg(weft_db *db);

/* The replica's 64-bit id (random, fixed at creation) and incarnation. */
WEFT_API uint64_t weft_replica_id(weft_db *db);
WEFT_API uint32_t weft_incarnation(weft_db *db);

/*
 * Merges the JSON object `json` (length `len`, or strlen if len is
 * (size_t)-1) into document (collection, id), creating it. Object keys merge
 * recursively; any other value replaces the field it lands on (see
 * docs/DATA-MODEL.md). Applies to memory and queues the op for the oplog.
 *
 * Errors: WEFT_EINVAL (not a JSON object, bad UTF-8, duplicate keys, number
 * out of range, empty collection or id), WEFT_ETOOBIG (over the limits in
 * docs/DATA-MODEL.md), WEFT_ENOMEM. On error nothing changed.
 */
WEFT_API int weft_put_json(weft_db *db, const char *collection, const char *id, const char *json,
                           size_t len);

/* Deletes the document (writes a tombstone). Deleting a document that does
 * not exist still writes the tombstone (it may exist on another replica).
 * Errors: WEFT_EINVAL, WEFT_ENOMEM. */
WEFT_API int weft_delete(weft_db *db, const char *collection, const char *id);

/*
 * Counters and sets (docs/DATA-MODEL.md, "Counters" and "Sets").
 *
 * `path` names a field of the document as dot-separated object keys: "a.b"
 * is key "b" inside key "a". Inside a key, "\." is a literal dot and "\\"
 * a literal backslash; no other escapes exist. The path must not be empty,
 * nor any key in it. The document is created if needed, and every object on
 * the way to the field is created too, as weft_put_json would.
 *
 * If the field does not show as a counter (for weft_incr) or a set (for
 * weft_set_add / weft_set_remove) on this replica right now, the op
 * replaces what is there, as a write of a new value would: older values,
 * objects and other-type data at the path are gone. Concurrent ops that
 * make the same path a counter (or a set) on two replicas keep each other's
 * increments (elements).
 *
 * Each call applies to memory, queues one op for the oplog and sync, and
 * returns without waiting for the disk, like weft_put_json. On error nothing
 * changed. Calls on one handle come from one thread at a time (see the
 * conventions above). All arguments are borrowed for the call only.
 */

/*
 * Adds `delta` (may be negative) to the counter at `path` of document
 * (collection, id). Concurrent increments all count; deleting, replacing or
 * writing a value at the path (or above it) resets the counter to 0, and
 * an increment made without having seen a reset (concurrent with it) is
 * dropped, whichever is stamped later: the reset wins. The value reads as
 * a JSON integer: the sum of the increments in two's complement int64.
 *
 * Errors: WEFT_EINVAL (NULL/empty collection, id or path, empty key, bad
 * escape, bad UTF-8, read-only replica), WEFT_ETOOBIG (path over the
 * limits, or this replica's total of increments or of decrements at the
 * field since its last reset would pass 2^64 - 1 in this incarnation),
 * WEFT_ENOMEM.
 */
WEFT_API int weft_incr(weft_db *db, const char *collection, const char *id, const char *path,
                       int64_t delta);

/*
 * Adds the element `element_json` (NUL-terminated JSON text: a string, an
 * integer, true, false or null; not a float, array or object) to the
 * add-wins set at `path`. The set reads as a JSON array of its elements,
 * each once, sorted by their canonical JSON text (bytewise). An add
 * concurrent with a remove of the same element wins.
 *
 * Errors: WEFT_EINVAL (as weft_incr, or an element that is not one of the
 * JSON values above), WEFT_ETOOBIG (path or element over the limits),
 * WEFT_ENOMEM.
 */
WEFT_API int weft_set_add(weft_db *db, const char *collection, const char *id, const char *path,
                          const char *element_json);

/*
 * Removes `element_json` (as in weft_set_add) from the set at `path`: every
 * add of it this replica has seen is undone; adds it has not seen yet (made
 * concurrently elsewhere) survive. Removing an absent element is not an
 * error (the field still becomes a set, see above).
 *
 * Errors: as weft_set_add; WEFT_ETOOBIG also when the removal would list
 * more adds than fit in one op (1 MiB).
 */
WEFT_API int weft_set_remove(weft_db *db, const char *collection, const char *id, const char *path,
                             const char *element_json);

/*
 * Collaborative text (docs/DATA-MODEL.md, "Text"): the field at `path` (as
 * for weft_incr) reads as a JSON string that several replicas can edit at
 * once; concurrent edits all survive and converge (typing at the same spot
 * on two replicas keeps each run of text together, never interleaved).
 *
 * weft_text_insert inserts the NUL-terminated UTF-8 string `utf8` (may be
 * empty) before the code point at `pos` (0 <= pos <= length).
 * weft_text_delete removes `count` code points starting at `pos`
 * (pos + count <= length). Positions and counts are Unicode code points of
 * the text this replica shows at the path now. If the path does not show
 * as a text here, the edit claims it as one, as weft_incr does for a
 * counter: older values, objects and other-type data at the path are gone,
 * and the edit applies to an empty text (or to the text the path held
 * before, if it was hidden under a newer value without being reset).
 * Deleting, replacing or writing a value at the path (or above it) resets
 * the text: edits made without having seen the reset are dropped.
 *
 * Each call applies to memory, queues one op for the oplog and sync, and
 * returns without waiting for the disk, like weft_put_json. An edit costs
 * O(length of the text) on this replica (the op is built on a copy).
 *
 * Errors: WEFT_EINVAL (NULL/empty collection, id or path, bad path, NULL
 * utf8, bad UTF-8, pos or count out of range, read-only replica),
 * WEFT_ETOOBIG (path over the limits, an edit whose op would pass the 1 MiB
 * value limit, or the text's own limits: 65536 writer incarnations per
 * text, 2^31 ops or bytes per incarnation), WEFT_ENOMEM. On error nothing
 * changed. Calls on one handle come from one thread at a time. All
 * arguments are borrowed for the call only.
 */
WEFT_API int weft_text_insert(weft_db *db, const char *collection, const char *id, const char *path,
                              size_t pos, const char *utf8);
WEFT_API int weft_text_delete(weft_db *db, const char *collection, const char *id, const char *path,
                              size_t pos, size_t count);

/*
 * Writes the canonical JSON of the visible document into a new buffer.
 * On success *out is a NUL-terminated string the caller frees with
 * weft_free, and *out_len (if not NULL) its length.
 * Errors: WEFT_ENOTFOUND (absent or deleted), WEFT_EINVAL, WEFT_ENOMEM.
 */
WEFT_API int weft_get_json(weft_db *db, const char *collection, const char *id, char **out,
                           size_t *out_len);

/* Frees memory returned by the library. NULL is a no-op. Any thread. */
WEFT_API void weft_free(void *p);

/* Called once per visible document. `json` is canonical and borrowed: valid
 * only during the call. Return non-zero to stop the scan early. */
typedef int (*weft_scan_cb)(void *ctx, const char *collection, const char *id, const char *json,
                            size_t len);

/* Calls cb for every visible document of `collection` (every collection if
 * NULL) in canonical order (collection, then id, by bytes). Must not write
 * to db from inside cb. Errors: WEFT_ENOMEM, WEFT_EINVAL. */
WEFT_API int weft_scan(weft_db *db, const char *collection, weft_scan_cb cb, void *ctx);

/* Blocks until every write made before the call is durable on disk.
 * Errors: WEFT_EIO (the write failed; it is retried by the next flush). */
WEFT_API int weft_flush(weft_db *db);

/* Number of local ops not yet acknowledged by a server. */
WEFT_API uint64_t weft_pending(weft_db *db);

/*
 * Canonical dump (docs/DATA-MODEL.md): every visible document as one JSON
 * line "\n"-terminated, sorted by collection then id. On success *out is
 * owned by the caller (weft_free). Errors: WEFT_ENOMEM.
 */
WEFT_API int weft_dump(weft_db *db, char **out, size_t *out_len);

/* The SHA-256 of `data`, as 64 lowercase hex digits and a NUL into hex. */
WEFT_API void weft_sha256_hex(const void *data, size_t len, char hex[65]);

/* A change delivered by weft_sync / weft_watch: the document after the
 * change, as canonical JSON, or NULL when it was deleted. All pointers are
 * borrowed for the duration of the callback. */
typedef struct weft_change {
	const char *collection;
	const char *id;
	int op;               /* WEFT_CHANGE_INSERT / _UPDATE / _DELETE */
	const char *doc_json; /* NULL for delete */
	int from_sync;        /* 1 when the change came from the server */
} weft_change;

enum { WEFT_CHANGE_INSERT = 1, WEFT_CHANGE_UPDATE = 2, WEFT_CHANGE_DELETE = 3 };

/* Return non-zero from a change callback to stop weft_watch. */
typedef int (*weft_change_cb)(void *ctx, const weft_change *change);

/*
 * Connects to `url` (ws://HOST:PORT), pushes every pending op, waits for the
 * acknowledgements, pulls everything new since the replica's cursor and
 * applies it, then returns. `cb` (may be NULL) sees each change applied from
 * the server, from inside this call. `timeout_ms` bounds the whole call; a
 * refused or lost connection is retried with backoff (100 ms doubling to
 * 2 s) until then. Whatever the outcome, what was applied is durable when
 * the call returns.
 *
 * Errors: WEFT_ETIMEDOUT (the server did not bring the replica in step in
 * time; unacknowledged ops stay in the oplog and sync later; weft_errmsg
 * names the last connection error), WEFT_EPROTO (the server sent something
 * malformed or refused us with an ERROR), WEFT_EINVAL (bad URL, read-only
 * replica), WEFT_EIO, WEFT_ENOMEM.
 * Runs on the calling thread; the handle must not be used by another
 * thread meanwhile.
 */
WEFT_API int weft_sync(weft_db *db, const char *url, int timeout_ms, weft_change_cb cb, void *ctx);

/*
 * Like weft_sync, then stays connected and calls `cb` for every change the
 * server sends (only changes to `collection`, when it is not NULL), until
 * cb returns non-zero; then returns WEFT_OK. A lost connection is retried
 * with backoff, forever. `cb` may write to db: those writes are pushed
 * after the message being handled. Errors as weft_sync, except that there
 * is no timeout; WEFT_EINVAL when cb is NULL.
 */
WEFT_API int weft_watch(weft_db *db, const char *url, const char *collection, weft_change_cb cb,
                        void *ctx);

/*
 * Peer-to-peer sync, with no server (docs/DATA-MODEL.md, "Peer-to-peer
 * sync (version vectors)"). Two replicas A and B sync by exchanging bytes
 * over any channel the application likes:
 *
 *     B: weft_version_vector(b, &vv, &vv_len)           -> send vv to A
 *     A: weft_export(a, vv, vv_len, &chg, &chg_len)      -> send chg to B
 *     B: weft_import(b, chg, chg_len)
 *
 * and the other way round for A to get B's changes. Afterwards B holds
 * everything A held (and vice versa): their weft_dump outputs are equal.
 * Imports are commutative and idempotent: change sets may arrive in any
 * order, twice, or from several peers. A change set carries whole
 * document states, not ops: weft_pending and the oplog are unaffected.
 *
 * Not supported yet: using peer-to-peer sync and a server (weft_sync,
 * weft_watch) on the same replica. The server re-stamps some ops and
 * replaces documents with its own view, which can drop changes imported
 * from peers and breaks what version vectors rely on; changes imported
 * from peers are also never pushed to a server.
 *
 * Threads: like every call on a handle, from the thread that owns it.
 * Buffers returned through `out` are owned by the caller (weft_free).
 */

/* Largest change set weft_export writes and weft_import accepts (bytes). */
#define WEFT_MAX_CHANGESET (512u * 1024u * 1024u)
/* Largest encoded version vector weft_export accepts (bytes). */
#define WEFT_MAX_VV_BYTES (4u * 1024u * 1024u)

/*
 * The replica's version vector: for each replica id, the largest HLC of
 * that replica's ops this replica has applied (to any document), as a
 * MessagePack map {replica id: uint -> hlc: uint} with keys ascending and
 * no zero values. An empty replica gives the empty map (one byte, 0x80).
 * On success *out (free with weft_free) and *out_len hold the bytes.
 * Cost: one pass over every document's vector.
 * Errors: WEFT_EINVAL (NULL argument), WEFT_ENOMEM.
 */
WEFT_API int weft_version_vector(weft_db *db, void **out, size_t *out_len);

/*
 * Writes a change set with every change this replica has that a peer
 * whose version vector is `peer_vv` (weft_version_vector's bytes, length
 * `peer_vv_len`) lacks: the full state of each document, tombstones
 * included, whose version vector has an entry above the peer's. With
 * peer_vv NULL (and peer_vv_len 0) it writes every document: do that once
 * for a replica whose documents were stored by an older version (their
 * vectors lack the ops from before, so an export for a vector may leave
 * them out). If nothing is
 * new for the peer the change set holds zero documents (a few bytes); it
 * is still valid to import. First waits until this replica's own writes
 * are durable (as weft_flush), so nothing exported can be lost in a crash.
 * On success *out (free with weft_free) and *out_len hold the bytes.
 * Errors: WEFT_EINVAL (NULL out/out_len, or peer_vv NULL with a length),
 * WEFT_EPROTO (peer_vv is not a canonical version vector), WEFT_ETOOBIG
 * (peer_vv over WEFT_MAX_VV_BYTES, or the change set would pass
 * WEFT_MAX_CHANGESET; splitting a delta into several change sets is not
 * supported yet), WEFT_EIO (the flush failed), WEFT_ENOMEM. Read-only
 * replicas may export, and weft_version_vector works on them too.
 */
WEFT_API int weft_export(weft_db *db, const void *peer_vv, size_t peer_vv_len, void **out,
                         size_t *out_len);

/*
 * Imports a change set from weft_export on another replica: joins each
 * document state into this replica's document (the lattice join of
 * docs/DATA-MODEL.md; every change either side made survives as the merge
 * rules say), in memory, and queues the changed documents for the disk
 * (durable after weft_flush, like local writes). All or nothing: the whole
 * change set is validated and joined before anything changes, and it is
 * journaled so that a crash halfway is completed on the next weft_open.
 * `changes` is borrowed for the call. Importing the same change set twice,
 * or an older one, changes nothing.
 *
 * Errors (nothing changed): WEFT_EINVAL (NULL argument, read-only
 * replica), WEFT_ETOOBIG (len over WEFT_MAX_CHANGESET), WEFT_EPROTO
 * (malformed, not canonical, unknown version, unsorted or repeated
 * entries, any invalid state, or a version vector entry more than 24 hours
 * ahead of this replica's clock: its clock would follow it), WEFT_ENOMEM. One exception: if queuing the
 * joined documents for the disk fails after they applied in memory, the
 * error (WEFT_ENOMEM) is returned with the import applied and journaled;
 * it is completed on disk at the next weft_open, and until then every
 * further weft_import returns that error.
 */
WEFT_API int weft_import(weft_db *db, const void *changes, size_t len);

#ifdef __cplusplus
}
#endif
#endif /* WEFT_H */
