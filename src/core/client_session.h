/*
 * client_session.h - the replica side of the sync protocol, sans I/O.
 *
 * A client session speaks docs/PROTOCOL.md for one replica over one
 * connection at a time. It owns no socket, thread, clock or data: the
 * replica's oplog, documents and cursor belong to the host (struct
 * weft_cs_host), which the session calls to read pending units and to
 * apply what the server sends; bytes leave through host->send. The libuv
 * WebSocket driver (src/client/sync.c) and the simulator
 * (tests/unit/test_sim.c) are two hosts of the same code.
 *
 * States (the names of docs/PROTOCOL.md and spec/protocol.pml):
 *
 *   WEFT_CS_IDLE --connected--> WEFT_CS_HELLO_SENT --WELCOME-->
 *   WEFT_CS_CATCHING_UP --SYNCED--> WEFT_CS_REALTIME; the connection going
 *   away returns to WEFT_CS_IDLE (the host reconnects with backoff); a
 *   fatal protocol error leads to WEFT_CS_FAILED, which only
 *   weft__cs_reset leaves.
 *
 * Pending units are pushed in key order (incarnation << 40 | seq of their
 * last op), each at most once per connection, within the limits of
 * WELCOME; after a reconnect everything still pending is pushed again and
 * the server's dedupe makes that harmless.
 *
 * Threads: one session belongs to one thread, as does its host.
 */
#ifndef WEFT_CORE_CLIENT_SESSION_H
#define WEFT_CORE_CLIENT_SESSION_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/proto.h"

enum weft_cs_state {
	WEFT_CS_IDLE = 0,
	WEFT_CS_HELLO_SENT = 1,
	WEFT_CS_CATCHING_UP = 2,
	WEFT_CS_REALTIME = 3,
	WEFT_CS_FAILED = 4
};

/* What the session needs from the replica and the transport. Every
 * callback but send/close/log may fail with a WEFT_E* code, which ends
 * the connection (the session closes it with 1011 and goes IDLE; the
 * host decides whether to retry). */
struct weft_cs_host {
	/* HELLO's replica, incarnation, cursor and token (h is zeroed, with
	 * version set; fill the rest). */
	void (*hello)(void *ctx, struct weft_hello *h);
	/* Pending units, oldest first: the count, and unit i's bytes, the
	 * key of its last op and its number of ops. Borrowed until the next
	 * callback. */
	size_t (*npending)(void *ctx);
	const uint8_t *(*pending)(void *ctx, size_t i, size_t *len, uint64_t *key, uint32_t *nops);
	/* ACK: every pending unit with key <= key(inc, seq) is durable on the
	 * server; drop them. */
	int (*acked)(void *ctx, uint32_t inc, uint64_t seq);
	/* REJECT: drop the pending unit(s) with ops inc/first..last, replace
	 * the listed documents with their states (re-applying what is still
	 * pending on them), and tell the application. */
	int (*rejected)(void *ctx, const struct weft_reject *j);
	/* ACK's re-stamped HLCs (observe each) and states (adopt as for
	 * REJECT). */
	int (*restamped)(void *ctx, uint32_t inc, uint64_t seq, uint64_t hlc);
	int (*adopt)(void *ctx, const char *coll, size_t clen, const char *id, size_t ilen,
	             const void *state, size_t len);
	/* Optional: a document state of a SNAPSHOT, to join (lattice join,
	 * weft__docset_merge_state) into the replica's document. Without it
	 * the session does not announce "snapshot" and gets the log instead. */
	int (*merge)(void *ctx, const char *coll, size_t clen, const char *id, size_t ilen,
	             const void *state, size_t len);
	/* One committed unit from the server (apply every op; idempotent). */
	int (*apply)(void *ctx, const struct weft_unit *u);
	/* A cursor to store (after the units before it were applied). */
	int (*cursor)(void *ctx, const struct weft_cursor *c, bool synced);
	/* WELCOME's clock: see docs/PROTOCOL.md "Clock correction". */
	int (*clock)(void *ctx, uint64_t server_time_ms, uint64_t max_drift_ms,
	             uint64_t hello_sent_ms, uint64_t now_ms);
	/* Optional: catch-up progress, in log positions (snapshot false) or
	 * in documents (snapshot true). */
	void (*progress)(void *ctx, bool snapshot, uint64_t done, uint64_t total);
	/* Transport. send: non-zero means the connection is failing. */
	int (*send)(void *ctx, const uint8_t *data, size_t len);
	void (*close)(void *ctx, int code, const char *reason);
	/* Optional: a line for the application's log; level as weft_log_level. */
	void (*log)(void *ctx, int level, const char *msg);
	void *ctx;
};

struct weft_cs {
	struct weft_cs_host host;
	enum weft_cs_state state;
	uint64_t pushed_key;   /* last pending key pushed on this connection */
	bool pushed_any;       /* pushed_key is valid */
	uint64_t max_push;     /* from WELCOME */
	uint64_t max_message;  /* min(WELCOME's, own limit) */
	uint64_t own_max;      /* own largest message */
	uint64_t heartbeat_ms; /* from WELCOME */
	uint64_t hello_sent_ms;
	uint64_t last_recv_ms;
	uint64_t last_send_ms;
	uint64_t ping_nonce;
	int error_code;    /* last ERROR code from the server, 0 if none */
	int fatal;         /* WEFT_E* that made the session FAILED */
	struct mp_buf out; /* message scratch */
	char err[256];     /* detail of the last failure */
};

/* Initializes a session (IDLE). own_max_message bounds what it sends and
 * accepts. */
void weft__cs_init(struct weft_cs *cs, const struct weft_cs_host *host, const struct weft_alloc *a,
                   uint64_t own_max_message);
void weft__cs_free(struct weft_cs *cs);

/* The transport is open: sends HELLO. Returns a send error or WEFT_OK. */
int weft__cs_connected(struct weft_cs *cs, uint64_t now_ms);
/*
 * One message from the server. Returns WEFT_OK, or the error that ended
 * the connection: a fatal one (WEFT_EPROTO: malformed or unexpected
 * message, ERROR 1-3; the state is FAILED) or a host callback's error
 * (the session closed the connection). ERROR 4/5/6 return WEFT_ECLOSED
 * and leave the state for weft__cs_disconnected.
 */
int weft__cs_recv(struct weft_cs *cs, const uint8_t *data, size_t len, uint64_t now_ms);
/* Pushes pending units not yet pushed on this connection (call after
 * local writes). Returns a send error or WEFT_OK. */
int weft__cs_pump(struct weft_cs *cs, uint64_t now_ms);
/* Heartbeat: sends PING when nothing was sent for a heartbeat, closes
 * the connection when nothing arrived for 3. Returns the next deadline
 * (UINT64_MAX if none). */
uint64_t weft__cs_tick(struct weft_cs *cs, uint64_t now_ms);
/* Says BYE (the caller then closes the transport). */
int weft__cs_bye(struct weft_cs *cs, const char *reason);
/* The transport is gone: back to IDLE (FAILED stays FAILED). */
void weft__cs_disconnected(struct weft_cs *cs);
/* Leaves FAILED for IDLE (the application fixed the cause). */
void weft__cs_reset(struct weft_cs *cs);

#endif
