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

/* One op of a committed unit. */
struct weft_committed_op {
	struct weft_op op; /* points into the unit's bytes, owned by the authority */
	bool restamped;    /* op.hlc is the server's, not the replica's */
};

/* One unit (an op or a transaction) of the last committed group. */
struct weft_committed {
	uint64_t pos;       /* its position in commit order */
	void *origin;       /* the tag passed to weft__authority_stage_unit */
	uint64_t replica;   /* the writer */
	const uint8_t *raw; /* the unit as logged (core/proto.h "unit") */
	size_t raw_len;
	const struct weft_committed_op *ops;
	uint32_t nops;
	bool restamped; /* some op of it was re-stamped */
};

/* One unit of the last committed group that was rejected: its ops were
 * not applied, but its identities count as applied (the high-water mark
 * moved past them in the same commit), so a re-push is a duplicate. */
struct weft_rejected {
	void *origin;
	uint64_t replica;
	uint32_t incarnation;
	uint64_t first_seq, last_seq;
	int code;           /* enum weft_reject_code */
	const char *reason; /* static text */
	const uint8_t *raw; /* the unit's bytes (owned by the authority) */
	size_t raw_len;
};

/* What weft__authority_stage_unit did with a unit. */
enum weft_stage_outcome {
	WEFT_STAGED = 0,    /* staged for the next commit */
	WEFT_DUPLICATE = 1, /* already committed or staged: acknowledge it */
	WEFT_REJECTED = 2   /* can never apply: staged as a rejection */
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
 * Stages one unit (core/proto.h: an op or a transaction) pushed by
 * `replica`, for the next group commit. The unit's structure must have
 * been read with weft__unit_read; its ops are validated here. `origin` is
 * an opaque tag handed back with the committed or rejected unit (the
 * server passes the connection's session).
 *
 * The unit is applied to the in-memory documents now (so it is validated
 * against the document it changes), but nothing of it may leave the
 * authority before weft__authority_commit succeeds. A unit is:
 *  - a duplicate (*outcome = WEFT_DUPLICATE) when its last seq is at or
 *    below the high-water mark of its (replica, incarnation), committed or
 *    staged: nothing happens;
 *  - rejected (WEFT_REJECTED) when an op breaks a rule or a limit of
 *    DATA-MODEL.md or its document refuses it: nothing is applied, the
 *    high-water mark moves past it, and the commit lists it in
 *    weft__authority_rejected;
 *  - staged (WEFT_STAGED) otherwise.
 * Seqs need not start right after the high-water mark (a store restored
 * from a backup may lack acknowledged ops); *gap is set when they do not.
 *
 * Errors (nothing staged): WEFT_EPROTO when the unit cannot be this
 * replica's (an op names another replica, a transaction mixes
 * incarnations or has non-consecutive seqs, a transaction overlaps ops
 * already applied, an op's identity is malformed), with the reason in
 * weft__authority_errmsg; WEFT_ENOMEM, after which the whole staged group
 * is dropped as if its commit had failed (weft__authority_staged() == 0)
 * and the documents are reloaded from the store.
 */
int weft__authority_stage_unit(struct weft_authority *au, const struct weft_unit *u,
                               uint64_t replica, void *origin, enum weft_stage_outcome *outcome,
                               bool *gap);

/*
 * Stages one op as a unit of its own. Returns WEFT_OK when staged, 1 when
 * it is a duplicate or was rejected. Errors as weft__authority_stage_unit.
 */
int weft__authority_stage(struct weft_authority *au, const struct weft_op *op, void *origin);

/*
 * Whether the op (replica, inc, seq) may have been re-stamped by the
 * server (*maybe): true for every seq up to the highest one of that
 * (replica, incarnation) that was re-stamped (kept durably with the marks).
 * A re-push of such an op gets the document's state with its ACK, since
 * the ACK that carried the new stamp may have been lost: a superset, never
 * a miss. Errors: WEFT_ENOMEM, store errors.
 */
int weft__authority_restamped(struct weft_authority *au, uint64_t replica, uint32_t inc,
                              uint64_t seq, bool *maybe);

/* Number of units staged (rejections included) and not yet committed. */
size_t weft__authority_staged(const struct weft_authority *au);

/*
 * Commits every staged unit, every rejection and the high-water marks in
 * one durable store transaction. On success the group is available
 * through weft__authority_batch and weft__authority_rejected until the
 * next commit. On failure (WEFT_EIO, WEFT_ENOMEM, ...) nothing of the
 * group is durable, the in-memory documents are rebuilt from the store,
 * the staged units are dropped (their replicas re-push them), and the
 * error is returned.
 */
int weft__authority_commit(struct weft_authority *au);
const struct weft_committed *weft__authority_batch(const struct weft_authority *au, size_t *n);
const struct weft_rejected *weft__authority_rejected(const struct weft_authority *au, size_t *n);

/* The cursor after the last committed op. */
struct weft_cursor weft__authority_cursor(const struct weft_authority *au);

/* Calls cb for every committed unit with position > from, in order, with
 * the unit's bytes (borrowed during the call). Non-zero from cb stops the
 * scan and is returned. */
int weft__authority_scan(struct weft_authority *au, uint64_t from, weft_store_log_cb cb, void *ctx);

/* The authoritative documents (borrowed). They include what is staged:
 * read them only right after a commit, when nothing is. */
struct weft_docset *weft__authority_docs(struct weft_authority *au);

/* Detail of the last error. */
const char *weft__authority_errmsg(const struct weft_authority *au);

#endif
