/*
 * hub.h - the server side of the sync protocol, sans I/O.
 *
 * A hub owns the server sessions of one authority (core/authority.h): it
 * turns the bytes of client messages into staged units, and each commit
 * point into ACK, REJECT and CHANGES messages. It owns no socket, thread
 * or clock: time comes in as arguments, and bytes leave through the
 * callbacks of struct weft_hub_io, which the transport (libuv WebSocket
 * in `weft serve`, HTTP, the simulator's network) implements. The same
 * code runs in all of them. docs/PROTOCOL.md is the normative text.
 *
 * A session moves through these states (the names are those of
 * docs/PROTOCOL.md and spec/protocol.pml):
 *
 *   WEFT_SS_AWAIT_HELLO  --HELLO-->  WEFT_SS_CATCHING_UP  --(log head
 *   reached: SYNCED)-->  WEFT_SS_LIVE;  any state --(ERROR, BYE, transport
 *   gone)--> WEFT_SS_CLOSED.
 *
 * A replica with no usable cursor (none, or another store's) that
 * announced the "snapshot" capability first gets the current documents as
 * SNAPSHOT chunks (when the log is long enough for that to be cheaper),
 * then the log from the position the snapshot started at.
 *
 * While catching up, a session reads the change log from its cursor in
 * chunks, no faster than the transport drains (struct weft_hub_io.queued
 * against weft_hub_config.catchup_window), and receives no realtime
 * broadcast: it keeps reading the log until it reaches the head, so its
 * cursor never passes a unit it has not been sent. Once live it receives
 * every committed unit of other replicas right after each commit.
 *
 * Threads: a hub and its sessions belong to one thread.
 */
#ifndef WEFT_CORE_HUB_H
#define WEFT_CORE_HUB_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/authority.h"

struct weft_hub;
struct weft_ssn;

enum weft_ss_state {
	WEFT_SS_AWAIT_HELLO = 0,
	WEFT_SS_CATCHING_UP = 1,
	WEFT_SS_LIVE = 2,
	WEFT_SS_CLOSED = 3
};

struct weft_hub_config {
	uint64_t max_message;   /* largest message accepted, announced in WELCOME */
	uint32_t max_push;      /* most ops in one PUSH */
	uint32_t max_txn_ops;   /* most ops in one transaction */
	uint64_t max_drift_ms;  /* see weft__authority_set_clock */
	uint64_t heartbeat_ms;  /* close sessions silent for 3 of these; 0 = never */
	size_t catchup_window;  /* catch-up pauses while the transport holds this much */
	size_t catchup_chunk;   /* a CHANGES chunk closes at this many bytes ... */
	uint32_t catchup_units; /* ... or this many units */
	uint64_t snapshot_min;  /* a replica with no usable cursor that can take
	                           SNAPSHOT gets document states instead of the
	                           log when the log holds at least this many
	                           units (UINT64_MAX: never) */
	size_t max_snapshots;   /* snapshots under way at once (each holds a copy
	                           of every document key); more sessions get the
	                           log instead */
};

/* Defaults: 16 MiB, 10000, 1000, 60 s, 30 s, 4 MiB, 512 KiB, 2000, 1000, 8. */
void weft__hub_config_init(struct weft_hub_config *c);

/* The transport, as the hub sees it. `io` is the transport's pointer for
 * one connection, given to weft__hub_open. */
struct weft_hub_io {
	/* Queues one message. A non-zero return means the transport could not
	 * take it and is closing the connection; the hub then treats the
	 * session as closing (weft__ssn_closed still follows). */
	int (*send)(void *ctx, void *io, const uint8_t *data, size_t len);
	/* Closes the connection after what was queued, with a WebSocket close
	 * code (1000, 1001, 1008, 1009, 1011) and a reason. The transport
	 * calls weft__ssn_closed once it is gone. */
	void (*close)(void *ctx, void *io, int code, const char *reason);
	/* Bytes queued on the connection and not yet written. */
	size_t (*queued)(void *ctx, void *io);
	/* Optional: a line for the operator's log. */
	void (*log)(void *ctx, const char *msg);
	void *ctx;
};

/* Counters, for tests and the operator. */
struct weft_hub_stats {
	uint64_t sessions;  /* sessions opened */
	uint64_t units;     /* units committed */
	uint64_t rejected;  /* units rejected */
	uint64_t dups;      /* duplicate units (re-pushed) */
	uint64_t gaps;      /* units whose seq skipped past the mark */
	uint64_t commits;   /* successful group commits */
	uint64_t failures;  /* failed group commits */
	uint64_t timeouts;  /* sessions closed for silence */
	uint64_t catchups;  /* CHANGES chunks read from the log */
	uint64_t snapshots; /* SNAPSHOT chunks sent */
	uint64_t protocol;  /* sessions closed for a protocol error */
};

/*
 * A hub over `au` (borrowed; the caller frees it after the hub). `cfg` and
 * `io` are copied. Errors: WEFT_ENOMEM.
 */
int weft__hub_new(struct weft_authority *au, const struct weft_hub_config *cfg,
                  const struct weft_hub_io *io, const struct weft_alloc *a, struct weft_hub **out);
/* Frees the hub and every session (no callback is called). */
void weft__hub_free(struct weft_hub *hub);

/* A new connection, in WEFT_SS_AWAIT_HELLO. Errors: WEFT_ENOMEM. */
int weft__hub_open(struct weft_hub *hub, void *io, uint64_t now_ms, struct weft_ssn **out);
/* One complete message from the connection. Replies go out through the
 * io callbacks, now or at the next commit point. */
void weft__ssn_recv(struct weft_ssn *s, const uint8_t *data, size_t len, uint64_t now_ms);
/* The transport is gone; s is freed (now, or after the next commit if it
 * has staged units) and must not be used again. */
void weft__ssn_closed(struct weft_ssn *s);
enum weft_ss_state weft__ssn_state(const struct weft_ssn *s);

/*
 * The commit point: commits every staged unit in one durable transaction,
 * then sends REJECTs and ACKs to the pushers and CHANGES to every live
 * session, then continues catch-ups that the transport has room for. Call
 * it after each batch of reads (once per event-loop iteration), and
 * whenever a transport drained. Returns the commit's error (the pushers
 * of the lost group got ERROR 4 and were closed), else WEFT_OK.
 */
int weft__hub_commit(struct weft_hub *hub, uint64_t now_ms);

/* Timers: closes sessions silent for 3 heartbeats. Returns the time of
 * the next deadline (UINT64_MAX if none). */
uint64_t weft__hub_tick(struct weft_hub *hub, uint64_t now_ms);

/* Stopping: commits what is staged, then sends ERROR 5 (SHUTDOWN) to
 * every session and closes it. New sessions get the same at once. */
void weft__hub_shutdown(struct weft_hub *hub, uint64_t now_ms);

const struct weft_hub_stats *weft__hub_stats(const struct weft_hub *hub);

#endif
