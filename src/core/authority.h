/*
 * authority.h - the server's authority logic, independent of any I/O.
 *
 * The authority turns ops pushed by replicas into the one committed order
 * every replica converges on. It dedupes by op identity (a high-water mark
 * of seq per (replica, incarnation)), assigns each accepted op the next
 * position in commit order, applies it to the authoritative documents and
 * makes the whole group durable with one store commit (group commit). Only
 * after weft__authority_commit succeeds may the caller acknowledge the ops
 * or send them to anyone: nothing uncommitted ever leaves the authority.
 *
 * The same code runs in `weft serve`, in tests over the memory store, and
 * later in the simulator and over PostgreSQL. It owns no socket, thread or
 * clock.
 */
#ifndef WEFT_CORE_AUTHORITY_H
#define WEFT_CORE_AUTHORITY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/doc.h"
#include "core/op.h"
#include "core/proto.h"
#include "core/store.h"

struct weft_authority;

/* One op of the last committed group. */
struct weft_committed {
	struct weft_op op; /* points into memory owned by the authority */
	uint64_t pos;      /* its position in commit order */
	void *origin;      /* the tag passed to weft__authority_stage */
	bool restamped;    /* op.hlc is the server's, not the replica's */
};

/* Default for weft__authority_set_clock's max_drift_ms. */
#define WEFT_MAX_DRIFT_MS 60000

/*
 * Opens the authority over `st` (which it borrows; the caller closes it
 * after weft__authority_free). A fresh store is stamped with `new_epoch`
 * (the caller's random number); an existing one keeps its epoch. Loads the
 * documents and the high-water marks.
 * Errors: WEFT_ENOMEM, WEFT_EIO, WEFT_ECORRUPT.
 */
int weft__authority_open(struct weft_store *st, const struct weft_alloc *a, uint64_t new_epoch,
                         struct weft_authority **out);
void weft__authority_free(struct weft_authority *au);

/*
 * Tells the authority the server's physical time and the largest drift it
 * accepts. Call before staging (the server calls it once per loop
 * iteration). An op whose HLC is more than max_drift_ms ahead of now_ms is
 * re-stamped with the server's HLC when staged (docs/DATA-MODEL.md,
 * "Clock drift"); every other op's HLC is observed, so the server's clock
 * stays above every stamp it has accepted. Without a call, now_ms is 0 and
 * nothing is re-stamped.
 */
void weft__authority_set_clock(struct weft_authority *au, uint64_t now_ms, uint64_t max_drift_ms);

/* The server's HLC high-water mark (the last stamp issued or observed). */
uint64_t weft__authority_hlc(const struct weft_authority *au);

/*
 * Stages one validated op for the next group commit. `origin` is an opaque
 * tag handed back with the committed op (the server passes the connection).
 * Returns WEFT_OK when staged, 1 when the op is a duplicate of one already
 * committed or staged (the caller acknowledges it without applying it
 * again). Errors: WEFT_ENOMEM.
 */
int weft__authority_stage(struct weft_authority *au, const struct weft_op *op, void *origin);

/* Number of ops staged and not yet committed. */
size_t weft__authority_staged(const struct weft_authority *au);

/*
 * Commits every staged op in one durable store transaction. On success the
 * group is available through weft__authority_batch until the next commit.
 * On failure (WEFT_EIO, WEFT_ENOMEM, ...) nothing of the group is durable,
 * the in-memory documents are rebuilt from the store, the staged ops are
 * dropped (their replicas re-push them), and the error is returned.
 */
int weft__authority_commit(struct weft_authority *au);
const struct weft_committed *weft__authority_batch(const struct weft_authority *au, size_t *n);

/* The cursor after the last committed op. */
struct weft_cursor weft__authority_cursor(const struct weft_authority *au);

/* Calls cb for every committed op with position > from, in order, with the
 * encoded op (borrowed during the call). Non-zero from cb stops the scan
 * and is returned. */
int weft__authority_scan(struct weft_authority *au, uint64_t from, weft_store_log_cb cb, void *ctx);

/* The authoritative documents (borrowed). */
struct weft_docset *weft__authority_docs(struct weft_authority *au);

/* Detail of the last error. */
const char *weft__authority_errmsg(const struct weft_authority *au);

#endif
