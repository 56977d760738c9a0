/*
 * ws.h - WebSocket transport over libuv + wslay + http-parser.
 *
 * The only layer that touches sockets. It carries binary messages and
 * nothing else: what the bytes mean is the sync protocol's business
 * (core/proto.h). One API for both ends: the server accepts connections on
 * a listening socket and upgrades requests for the path "/v1/ws"; the
 * client connects to ws://HOST:PORT/v1/ws. Both hand the upper layer a
 * `struct weft_ws_conn`.
 *
 * Limits (struct weft_ws_limits) are enforced before anything is
 * allocated: a frame or message longer than max_message closes the
 * connection with 1009; a protocol error (bad framing, unmasked client
 * frame, bad UTF-8 in a text frame, bad HTTP) closes it with 1002 / an HTTP
 * 400; text frames are refused with 1003; a send queue over max_send_queue
 * bytes drops the connection (the local on_close reports 1008 "send queue
 * overflow"; the peer, whose socket is full, just sees it close) instead of
 * growing without bound, so a slow reader can never stall the loop or eat
 * the server's memory. A connection that has not finished its handshake
 * within handshake_timeout_ms is closed. Failures of one connection never
 * affect another.
 *
 * Plain HTTP: with an on_http callback, the server also takes HTTP/1.1
 * requests for any path other than /v1/ws and /healthz (the upper layer
 * routes them; this layer only frames them). Such a request may carry a
 * body (Content-Length or chunked) of at most max_message bytes: a larger
 * announced length or chunk is answered 413 before the body is read. The
 * request goes up complete through on_http; the upper layer answers it
 * once, now or later (a long poll), with weft__ws_http_reply. Every
 * response carries "Connection: close" (no keep-alive): after the answer
 * is written the connection ends, and bytes the client sends after its
 * request are discarded. A client that closes its connection before the
 * answer (EOF, even a half-close) is gone: on_close fires. The head of a
 * request must arrive within handshake_timeout_ms, and its body must keep
 * arriving (no gap longer than that); an answer that stops draining for
 * 10 s is dropped.
 *
 * Threads: everything runs on the thread that runs the uv loop; callbacks
 * fire from that loop. A callback may call weft__ws_send/close on any
 * connection, including the one it was called for.
 */
#ifndef WEFT_NET_WS_H
#define WEFT_NET_WS_H

#include <stddef.h>
#include <stdint.h>

#include <uv.h>

struct weft_ws_conn;
struct weft_ws_server;

struct weft_ws_limits {
	size_t max_message;            /* largest message accepted (bytes) */
	size_t max_send_queue;         /* bytes queued for sending before close */
	uint32_t handshake_timeout_ms; /* 0 = no limit */
	uint32_t idle_timeout_ms;      /* close after this long without any
	                                 frame from the peer; 0 = no limit */
};

/* Defaults: 16 MiB message, 64 MiB send queue, 10 s handshake, no idle limit. */
void weft__ws_limits_init(struct weft_ws_limits *l);

/* A plain HTTP request (see on_http). Every pointer is borrowed for the
 * call; strings are NUL-terminated. */
struct weft_ws_http_req {
	const char *method;       /* "POST", "GET", ... */
	const char *path;         /* the target up to '?' (e.g. "/v1/pull") */
	const char *query;        /* what follows '?', "" if none (not decoded) */
	const char *content_type; /* the Content-Type value, trimmed; "" if absent,
	                             repeated or too long */
	const uint8_t *body;      /* the body (de-chunked); never NULL */
	size_t body_len;          /* bytes at body, at most max_message */
};

struct weft_ws_callbacks {
	/* Handshake complete; the connection may send. */
	void (*on_open)(void *ud, struct weft_ws_conn *c);
	/* One complete binary message; `data` is borrowed for the call. */
	void (*on_message)(void *ud, struct weft_ws_conn *c, const uint8_t *data, size_t len);
	/* The connection is gone (closed by either side, failed, or never
	 * opened). `code` is the WebSocket close code received or sent (1006
	 * when the TCP connection just dropped or could not be made) and
	 * `reason` a short text (borrowed). After this returns the conn pointer
	 * is invalid. Fires exactly once per connection that the upper layer
	 * has seen (via on_open or weft__ws_connect's *out). */
	void (*on_close)(void *ud, struct weft_ws_conn *c, uint16_t code, const char *reason);
	/* Optional, server side: one complete plain HTTP request for a path
	 * other than /v1/ws and /healthz (NULL: those get 404). From this call
	 * on the upper layer has seen the conn: it answers with
	 * weft__ws_http_reply (during the call or later), and on_close fires
	 * once when the connection is gone (after the answer was written, or
	 * when the client left first). weft__ws_close drops the connection
	 * without an answer. weft__ws_send does not apply (WEFT_ECLOSED). */
	void (*on_http)(void *ud, struct weft_ws_conn *c, const struct weft_ws_http_req *req);
};

/*
 * Listens on host:port (port 0 picks a free port, see weft__ws_server_port).
 * Errors: WEFT_EINVAL (bad address), WEFT_EIO (bind/listen failed; detail
 * in errbuf), WEFT_ENOMEM.
 */
int weft__ws_server_start(uv_loop_t *loop, const char *host, int port,
                          const struct weft_ws_limits *limits, const struct weft_ws_callbacks *cb,
                          void *ud, struct weft_ws_server **out, char *errbuf, size_t errlen);
/* The port actually bound. */
int weft__ws_server_port(const struct weft_ws_server *s);
/* Stops listening and closes every connection (on_close fires for each);
 * frees the server once all handles are closed (run the loop to finish). */
void weft__ws_server_stop(struct weft_ws_server *s);

/*
 * Starts connecting to `url` ("ws://HOST:PORT" or "ws://HOST:PORT/v1/ws";
 * HOST an IPv4/IPv6 literal or "localhost"). *out is valid at once; on_open
 * or on_close fires later from the loop.
 * Errors: WEFT_EINVAL (bad URL), WEFT_ENOMEM.
 */
int weft__ws_connect(uv_loop_t *loop, const char *url, const struct weft_ws_limits *limits,
                     const struct weft_ws_callbacks *cb, void *ud, struct weft_ws_conn **out);

/* Queues one binary message (copied). Errors: WEFT_ECLOSED (closing or
 * closed), WEFT_ETOOBIG (over max_message, or the send queue would pass
 * max_send_queue: the connection is then closed with 1008), WEFT_ENOMEM. */
int weft__ws_send(struct weft_ws_conn *c, const void *data, size_t len);
/* Sends a close frame with code/reason after the queued messages, then
 * closes. Idempotent. */
void weft__ws_close(struct weft_ws_conn *c, uint16_t code, const char *reason);
/*
 * Answers the request of an on_http conn: status (200..599), Content-Type
 * (a single line), optional extra header lines (each ending in "\r\n"; NULL
 * for none) and body (copied). Connection: close is always sent: the
 * connection ends once the answer is written, then on_close fires.
 * Errors: WEFT_EINVAL (bad arguments), WEFT_ECLOSED (not a request
 * awaiting its answer: answered already, or the client has gone),
 * WEFT_ENOMEM (the connection is then dropped).
 */
int weft__ws_http_reply(struct weft_ws_conn *c, int status, const char *content_type,
                        const char *extra_headers, const void *body, size_t len);
/* Bytes currently queued for sending. */
size_t weft__ws_queued(const struct weft_ws_conn *c);
/* The upper layer's pointer for this connection. */
void weft__ws_set_data(struct weft_ws_conn *c, void *data);
void *weft__ws_get_data(const struct weft_ws_conn *c);
/* "IP:port" of the peer, for logs. */
const char *weft__ws_peer(const struct weft_ws_conn *c);

#endif
