/*
 * http.h - the HTTP fallback of the sync protocol: POST /v1/push and
 * POST /v1/pull, for clients that cannot keep a WebSocket open. See the
 * file comment of http.c for the endpoints.
 *
 * Each request gets a hub session of its own (core/hub.h) whose
 * transport collects what the hub sends into the response instead of a
 * socket; the answer goes out once the exchange is complete, and the
 * session is closed. The WebSocket endpoint (net/ws.h) frames the
 * requests and writes the answers.
 *
 * Threads: everything on the server's loop thread.
 */
#ifndef WEFT_SERVER_HTTP_H
#define WEFT_SERVER_HTTP_H

#include <stddef.h>
#include <stdint.h>

#include <uv.h>

#include "core/hub.h"
#include "net/ws.h"

/*
 * What the hub's `io` pointer points to in `weft serve`: one transport
 * link per session, a WebSocket connection or an HTTP request. The
 * server's hub io callbacks dispatch through ops.
 */
struct weft_link;

struct weft_link_ops {
	/* As struct weft_hub_io's send, close and queued, for this link. */
	int (*send)(struct weft_link *l, const uint8_t *data, size_t len);
	void (*close)(struct weft_link *l, int code, const char *reason);
	size_t (*queued)(const struct weft_link *l);
	/* The WebSocket connection under the link is gone (its on_close):
	 * ends the session and frees the link. */
	void (*gone)(struct weft_link *l);
};

struct weft_link {
	const struct weft_link_ops *ops;
};

struct weft_http_config {
	size_t pull_budget;    /* a pull stops adding catch-up CHANGES once they
	                          hold this many bytes (at least one chunk goes) */
	uint64_t max_wait_ms;  /* longest long poll (?wait=MS is capped to it) */
	size_t max_response;   /* most bytes of collected messages in one answer */
	size_t max_message;    /* largest request body (the hub's max_message) */
	uint64_t heartbeat_ms; /* the hub's; a long poll is capped to 2 of these */
};

/* Defaults: 4 MiB, 30000 ms, 64 MiB, 16 MiB, 30000 ms. */
void weft__http_config_init(struct weft_http_config *c);

struct weft_http;

/* The HTTP front of `hub` (borrowed; it must outlive the requests).
 * `cfg` is copied. Errors: WEFT_ENOMEM. */
int weft__http_new(uv_loop_t *loop, struct weft_hub *hub, const struct weft_http_config *cfg,
                   struct weft_http **out);
/* Frees it. Every request must be gone (run the loop until the WebSocket
 * server has stopped). NULL is a no-op. */
void weft__http_free(struct weft_http *h);

/* ws on_http: takes one request on `c`. Errors are answered on c; the
 * answer comes later through weft__http_commit_point or a timer. */
void weft__http_request(struct weft_http *h, struct weft_ws_conn *c,
                        const struct weft_ws_http_req *req, uint64_t now_ms);

/* Call right after each weft__hub_commit (and after weft__hub_shutdown):
 * answers every request whose exchange is complete, and starts the long
 * polls that wait for a change. Must not be called from inside a hub
 * callback. */
void weft__http_commit_point(struct weft_http *h);

#endif
