/*
 * replica.h - the internals of a weft_db shared by replica.c (local reads
 * and writes, open/close) and sync.c (the sync session).
 */
#ifndef WEFT_CLIENT_REPLICA_H
#define WEFT_CLIENT_REPLICA_H

#include <stdbool.h>
#include <stdint.h>

#include "weft/weft.h"
#include "core/doc.h"
#include "core/hlc.h"
#include "core/proto.h"
#include "core/store.h"
#include "client/writer.h"

/* One op not yet acknowledged by the server, in issue order. */
struct pending_op {
	uint64_t key; /* weft__op_key(incarnation, seq) */
	uint8_t *raw; /* encoded op */
	size_t len;
};

struct weft_db {
	const struct weft_alloc *alloc;
	weft_options opts;
	int lock_fd;              /* holds the flock on "<path>-lock"; -1 read-only */
	struct weft_store *st;    /* owned; used only by the writer once open */
	struct writer *w;         /* NULL when read-only */
	struct weft_docset *docs; /* the working set, application thread only */
	uint64_t replica;         /* random id fixed at creation */
	uint32_t incarnation;     /* this open's incarnation */
	uint64_t seq;             /* last op seq issued in this incarnation */
	struct weft_hlc hlc;
	int64_t clock_offset_ms; /* server time - wall clock, from the last
	                             handshake; added to the wall clock */
	bool has_cursor;         /* a server cursor is known */
	struct weft_cursor cursor;
	struct pending_op *pend; /* unacknowledged ops, oldest first */
	size_t npend;
	size_t pend_cap;
	struct mp_buf scratch; /* encoding scratch */
	int p2p_stuck;         /* an import could not be queued for the disk
	                          after it applied: further imports are refused
	                          until reopen (its journal replays then) */
	char errmsg[512];
};

/* Sets db->errmsg and returns rc. */
int weft__db_err(weft_db *db, int rc, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;

/* Formats a message for the application's log callback, if it set one. */
void weft__db_log(weft_db *db, int level, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;

/* Applies an op that arrived from the server: memory, then the writer.
 * *change and *doc tell the caller what became visible. */
int weft__db_apply_remote(weft_db *db, const struct weft_op *op, enum weft_doc_change *change,
                          struct weft_doc **doc);

/* The server acknowledged every op of this replica up to (inc, seq). */
int weft__db_acked(weft_db *db, uint32_t incarnation, uint64_t seq);

/* The server rejected this replica's ops (incarnation, first..last):
 * drops them from the pending list (the durable oplog keeps them until
 * a later ACK trims past them; re-pushed, they are duplicates). The
 * caller then adopts the states the REJECT carried. */
int weft__db_rejected(weft_db *db, uint32_t incarnation, uint64_t first, uint64_t last);

/* Replaces the replica's view of a document with the server's
 * authoritative state, then re-applies this replica's unacknowledged ops
 * on it (client/adopt.c). *change tells what became visible. */
int weft__db_adopt_state(weft_db *db, const char *coll, size_t coll_len, const char *id,
                         size_t id_len, const void *state, size_t len, enum weft_doc_change *change,
                         struct weft_doc **doc);

/* Joins a document state from a SNAPSHOT (initial sync) into the
 * replica's document (client/adopt.c) and queues the result for the
 * store. *change tells what became visible. Errors: WEFT_EPROTO (bad
 * state bytes), WEFT_ENOMEM, writer errors. */
int weft__db_merge_state(weft_db *db, const char *coll, size_t coll_len, const char *id,
                         size_t id_len, const void *state, size_t len, enum weft_doc_change *change,
                         struct weft_doc **doc);

/* Handshake clock correction: the server's time and accepted drift, and
 * when the HELLO left and the WELCOME arrived by our wall clock. */
int weft__db_clock_sync(weft_db *db, uint64_t server_ms, uint64_t max_drift_ms, uint64_t sent_ms,
                        uint64_t recv_ms);

/* Wall-clock milliseconds (CLOCK_REALTIME). */
uint64_t weft__wall_ms(void);

/* Queues a document's full state (weft__doc_encode_full) for the store. */
int weft__db_persist_doc(weft_db *db, struct weft_doc *d);

/* Re-applies a peer-to-peer import that a crash interrupted (the journal
 * in meta "p2p_import", client/replica.c). Called by weft_open once the writer
 * runs. Errors: WEFT_ECORRUPT, WEFT_ENOMEM, store errors. */
int weft__db_p2p_replay(weft_db *db);

/* Records a new cursor (memory + writer). */
int weft__db_set_cursor(weft_db *db, const struct weft_cursor *c);

#endif
