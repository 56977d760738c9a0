/*
 * proto.h - sync protocol messages (docs/PROTOCOL.md is normative).
 *
 * Every WebSocket binary message carries exactly one MessagePack array
 * whose first element is the message type. This is protocol version 1's
 * thin first cut: the messages below are enough for push, acknowledgement,
 * pull from a cursor and realtime fan-out. Issue 5 extends it (unknown
 * trailing array elements are ignored by both sides, so messages can grow).
 *
 *   HELLO   [1, version, replica, incarnation, cursor|nil]      C -> S
 *   WELCOME [2, version, server_time_ms, max_message, max_push,
 *            max_drift_ms]                                      S -> C
 *   PUSH    [3, [op...]]                                        C -> S
 *   ACK     [4, incarnation, seq, [[inc, seq, hlc]...],
 *            [[collection, id, state]...]]                      S -> C
 *   CHANGES [5, [op...], cursor]                                S -> C
 *   SYNCED  [6, cursor]                                         S -> C
 *   ERROR   [7, code, message]                                  S -> C
 *
 * A cursor is 16 opaque bytes (bin): the store epoch and a position in
 * commit order, both big-endian uint64. Replicas store it and hand it back.
 */
#ifndef WEFT_CORE_PROTO_H
#define WEFT_CORE_PROTO_H

#include <stdbool.h>
#include <stdint.h>

#include "core/mp.h"

#define WEFT_PROTO_VERSION 1
#define WEFT_CURSOR_LEN 16

enum weft_msg_type {
	WEFT_MSG_HELLO = 1,
	WEFT_MSG_WELCOME = 2,
	WEFT_MSG_PUSH = 3,
	WEFT_MSG_ACK = 4,
	WEFT_MSG_CHANGES = 5,
	WEFT_MSG_SYNCED = 6,
	WEFT_MSG_ERROR = 7,
	WEFT_MSG_REJECT = 8,
	WEFT_MSG_PING = 9,
	WEFT_MSG_PONG = 10,
	WEFT_MSG_BYE = 11,
	WEFT_MSG_SNAPSHOT = 12,
	WEFT_MSG_LAST = 12, /* the highest type this version knows */
	/* Types up to this are well-formed; a peer ignores a type it does not
	 * know (a later version's message), so versions can add messages. */
	WEFT_MSG_TYPE_MAX = 255
};

/* Error codes carried by ERROR messages. */
enum weft_proto_error {
	WEFT_PERR_PROTOCOL = 1, /* malformed or unexpected message */
	WEFT_PERR_VERSION = 2,  /* unsupported protocol version */
	WEFT_PERR_TOO_BIG = 3,  /* over a limit announced in WELCOME */
	WEFT_PERR_INTERNAL = 4, /* the server failed (e.g. its disk); retry later */
	WEFT_PERR_SHUTDOWN = 5, /* the server is stopping; reconnect later */
	WEFT_PERR_TIMEOUT = 6   /* the peer went silent (no message for 3 heartbeats) */
};

/* Why the server rejected a unit (REJECT's code). */
enum weft_reject_code {
	WEFT_REJECT_INVALID = 1,   /* the op breaks a rule of DATA-MODEL.md */
	WEFT_REJECT_TOO_BIG = 2,   /* the op is over a limit */
	WEFT_REJECT_FORBIDDEN = 3, /* not permitted (reserved: issue 7) */
	WEFT_REJECT_CONFLICT = 4   /* refused by a conflict strategy (reserved) */
};

/* Limits on HELLO's optional fields. */
#define WEFT_MAX_TOKEN 8192  /* bytes of the token */
#define WEFT_MAX_CAPS 32     /* capability names in HELLO or WELCOME */
#define WEFT_MAX_CAP_LEN 64  /* bytes of one capability name */
#define WEFT_MAX_REASON 1024 /* bytes of a REJECT / BYE / ERROR text */

struct weft_cursor {
	uint64_t epoch; /* store epoch: random, fixed when the store was created */
	uint64_t pos;   /* position of the last change delivered, 0 = none */
};

void weft__cursor_write(struct mp_buf *b, const struct weft_cursor *c);
/* Reads a cursor (bin of 16 bytes). Errors: WEFT_EPROTO. */
int weft__cursor_read(struct mp_reader *r, struct weft_cursor *c);
/* Cursor <-> 16 raw bytes (for storing in meta). */
void weft__cursor_pack(const struct weft_cursor *c, uint8_t out[WEFT_CURSOR_LEN]);
void weft__cursor_unpack(struct weft_cursor *c, const uint8_t in[WEFT_CURSOR_LEN]);

/* Reads the array header and the type (1..WEFT_MSG_TYPE_MAX, possibly one
 * this version does not know) of a message. *nfields is the array length
 * including the type. Errors: WEFT_EPROTO. */
int weft__msg_begin(struct mp_reader *r, int *type, uint32_t *nfields);

struct weft_hello {
	uint64_t version;
	uint64_t replica;
	uint32_t incarnation;
	bool has_cursor;
	struct weft_cursor cursor;
	const char *token; /* borrowed; NULL when nil or absent */
	size_t token_len;
	struct mp_reader caps; /* read: ncaps str entries (validated) */
	uint32_t ncaps;
	const char *const *cap_names; /* write: NULL-terminated, or NULL */
};

struct weft_welcome {
	uint64_t version;
	uint64_t server_time_ms;
	uint64_t max_message;
	uint64_t max_push;     /* most ops in one PUSH */
	uint64_t max_drift_ms; /* ops stamped further ahead are re-stamped;
	                          absent on the wire means 60000 */
	uint64_t max_txn_ops;  /* most ops in one transaction; absent means
	                          max_push */
	uint64_t heartbeat_ms; /* the server closes a connection silent for 3
	                          heartbeats; 0 = no heartbeat (absent) */
	struct mp_reader caps; /* read: ncaps str entries (validated) */
	uint32_t ncaps;
	const char *const *cap_names; /* write: NULL-terminated, or NULL */
};

/* True when the caps list holds `name`. */
bool weft__caps_has(const struct mp_reader *caps, uint32_t ncaps, const char *name);

/*
 * A unit is what PUSH and CHANGES carry and what the change log holds at
 * one position: a single op (an array of 9) or a transaction, [[op...]]
 * (an array of 1 holding the array of its ops, at least one). A
 * transaction's ops come from one (replica, incarnation) with consecutive
 * seqs; it commits or is rejected as a whole.
 */
struct weft_unit {
	const uint8_t *raw; /* the unit's bytes */
	size_t raw_len;
	bool txn;
	uint32_t nops;
	struct mp_reader ops; /* covers exactly the ops: weft__op_decode each */
};

/* Reads the structure of one unit at r (each op must be a well-formed
 * MessagePack array of 9; the ops themselves are not validated) and
 * consumes it. Errors: WEFT_EPROTO. */
int weft__unit_read(struct mp_reader *r, struct weft_unit *u);
/* Writes the header of a transaction of n ops; the ops follow. */
void weft__unit_txn_write(struct mp_buf *b, uint32_t nops);

void weft__msg_hello_write(struct mp_buf *b, const struct weft_hello *h);
/* After weft__msg_begin returned HELLO. Errors: WEFT_EPROTO. */
int weft__msg_hello_read(struct mp_reader *r, uint32_t nfields, struct weft_hello *h);
void weft__msg_welcome_write(struct mp_buf *b, const struct weft_welcome *w);
int weft__msg_welcome_read(struct mp_reader *r, uint32_t nfields, struct weft_welcome *w);
/*
 * ACK [4, incarnation, seq, restamps, states, cursor]: every op of the
 * replica up to (incarnation, seq) is durable. The optional cursor says
 * that every committed unit up to it has been sent on this connection
 * (or was pushed on it), so the replica may store it. `restamps` lists [incarnation, seq,
 * hlc] for ops of this ACK whose HLC the server replaced (clock drift);
 * `states` lists [collection, id, state] with the authoritative state
 * (core/doc.h encoding) of each document those ops touched. A replica
 * first drops the acknowledged ops, then replaces its view of each listed
 * document with the state and re-applies its own ops on it that are still
 * unacknowledged. One message, so nothing can be seen in between.
 *
 * Writing: weft__msg_ack_write (header and restamps count), then
 * `nrestamps` weft__msg_restamp_write, then weft__msg_ack_states (count),
 * then that many weft__msg_doc_state_write.
 */
struct weft_ack {
	uint32_t incarnation;
	uint64_t seq;
	bool has_cursor;           /* field 5, optional */
	struct weft_cursor cursor; /* everything up to it has been sent */
	struct mp_reader restamps; /* nrestamps entries: weft__msg_restamp_read */
	uint32_t nrestamps;
	struct mp_reader states; /* nstates entries: weft__msg_doc_state_read */
	uint32_t nstates;
};

void weft__msg_ack_write(struct mp_buf *b, uint32_t incarnation, uint64_t seq, uint32_t nrestamps);
/* Like weft__msg_ack_write, for an ACK with the optional cursor: the
 * caller writes it with weft__cursor_write after the states. */
void weft__msg_ack_begin(struct mp_buf *b, uint32_t incarnation, uint64_t seq, uint32_t nrestamps,
                         bool cursor);
void weft__msg_restamp_write(struct mp_buf *b, uint32_t incarnation, uint64_t seq, uint64_t hlc);
void weft__msg_ack_states(struct mp_buf *b, uint32_t nstates);
void weft__msg_doc_state_write(struct mp_buf *b, const char *coll, size_t coll_len, const char *id,
                               size_t id_len, const void *state, size_t len);
/* Reads and validates a whole ACK (an ACK without the lists, from an
 * older server, has none). Errors: WEFT_EPROTO. */
int weft__msg_ack_read(struct mp_reader *r, uint32_t nfields, struct weft_ack *a);
int weft__msg_restamp_read(struct mp_reader *r, uint32_t *incarnation, uint64_t *seq,
                           uint64_t *hlc);
int weft__msg_doc_state_read(struct mp_reader *r, const char **coll, size_t *coll_len,
                             const char **id, size_t *id_len, const void **state, size_t *len);
/*
 * REJECT [8, incarnation, first_seq, last_seq, code, reason, states]: the
 * unit with ops (incarnation, first_seq..last_seq) of the replica was not
 * applied and never will be; it still counts for the next ACK. `states`
 * is the same list as ACK's: the authoritative state of each document the
 * unit named, so the replica can rebuild its view without the unit.
 * Writing: weft__msg_reject_write (with the count of states), then that
 * many weft__msg_doc_state_write.
 */
struct weft_reject {
	uint32_t incarnation;
	uint64_t first_seq, last_seq;
	uint64_t code; /* enum weft_reject_code; unknown codes are kept */
	const char *reason;
	size_t reason_len;
	struct mp_reader states;
	uint32_t nstates;
};

void weft__msg_reject_write(struct mp_buf *b, uint32_t incarnation, uint64_t first_seq,
                            uint64_t last_seq, int code, const char *reason, uint32_t nstates);
int weft__msg_reject_read(struct mp_reader *r, uint32_t nfields, struct weft_reject *j);

/* CHANGES [5, [unit...], cursor, progress]: the header for n units (the
 * caller writes the units next, then weft__msg_changes_end). `progress`,
 * present during catch-up only, is [done, total] in log positions: pass
 * progress = true to begin exactly when passing total > 0 to end. */
void weft__msg_changes_begin(struct mp_buf *b, uint32_t nunits, bool progress);
void weft__msg_changes_end(struct mp_buf *b, const struct weft_cursor *c, uint64_t done,
                           uint64_t total);
struct weft_changes {
	struct mp_reader units; /* nunits units (weft__unit_read each) */
	uint32_t nunits;
	struct weft_cursor cursor;
	bool has_progress;
	uint64_t done, total;
};
/* Validates the structure of every unit (not the ops inside).
 * Errors: WEFT_EPROTO. */
int weft__msg_changes_read(struct mp_reader *r, uint32_t nfields, struct weft_changes *c);

/*
 * SNAPSHOT [12, [[collection, id, state]...], done, total]: a chunk of an
 * initial sync from document states (the state is weft__doc_encode_full's),
 * sent after WELCOME and before any CHANGES to a replica that has no
 * usable cursor and announced the "snapshot" capability. done/total count
 * documents. Writing: weft__msg_snapshot_begin, n weft__msg_doc_state_write,
 * weft__msg_snapshot_end.
 */
void weft__msg_snapshot_begin(struct mp_buf *b, uint32_t nstates);
void weft__msg_snapshot_end(struct mp_buf *b, uint64_t done, uint64_t total);
struct weft_snapshot {
	struct mp_reader states; /* nstates entries: weft__msg_doc_state_read */
	uint32_t nstates;
	uint64_t done, total;
};
/* Validates every entry's shape. Errors: WEFT_EPROTO. */
int weft__msg_snapshot_read(struct mp_reader *r, uint32_t nfields, struct weft_snapshot *s);

/* PUSH [3, [unit...]]: header for n units; the units follow. */
void weft__msg_push_begin(struct mp_buf *b, uint32_t nunits);

/* PING [9, nonce] / PONG [10, nonce]: either side may ping; the other
 * answers PONG with the same nonce. */
void weft__msg_ping_write(struct mp_buf *b, int type, uint64_t nonce);
int weft__msg_ping_read(struct mp_reader *r, uint32_t nfields, uint64_t *nonce);
/* BYE [11, reason]: the sender is done and closes; no reply. */
void weft__msg_bye_write(struct mp_buf *b, const char *reason);
int weft__msg_bye_read(struct mp_reader *r, uint32_t nfields, const char **reason,
                       size_t *reason_len);

void weft__msg_synced_write(struct mp_buf *b, const struct weft_cursor *c);
int weft__msg_synced_read(struct mp_reader *r, uint32_t nfields, struct weft_cursor *c);
void weft__msg_error_write(struct mp_buf *b, int code, const char *msg);
int weft__msg_error_read(struct mp_reader *r, uint32_t nfields, int64_t *code, const char **msg,
                         size_t *msg_len);
/* Skips the fields of a message that this version does not know, after
 * the caller has read `used` of nfields (type included). */
int weft__msg_skip_rest(struct mp_reader *r, uint32_t nfields, uint32_t used);

#endif
