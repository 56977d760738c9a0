/*
 * fuzz_ws.c - libFuzzer target for the server side of the WebSocket
 * transport (net/ws.c): HTTP request heads and bodies (http-parser and the
 * routing around it), the upgrade handshake, frame-header validation
 * (frame_peek), wslay framing and reassembly, and the send, close and
 * HTTP-answer paths driven from the upper layer's callbacks.
 *
 * Nothing is mocked and ws.c is used as it is: two servers made on the
 * first call listen on 127.0.0.1:0 on one uv loop and serve every input,
 * the main one (300 ms deadlines) and a quick one (10 ms) for the inputs
 * that wait for the server's own timeouts. Each input is one TCP
 * connection from a plain non-blocking client socket: the harness writes
 * the bytes, reads and discards the answers, ends its side, and runs the
 * loop (UV_RUN_NOWAIT turns, bounded in number and in wall-clock time)
 * until the server has freed the connection (the loop holds no handle but
 * the listeners again). The harness never waits on the server's clocks
 * except in the waiting end: it ends its side once nothing moves, so an
 * input takes well under a millisecond. Everything is freed at exit.
 *
 * Input: byte 0 = mode (bits 0-1), end (bits 2-3), cuts (bits 4-6),
 * variant (bit 7); byte 1 = actions; byte 2 = a parameter; then `cuts`
 * bytes, each a cut point (k/256 of the stream) where a write ends; the
 * rest is the payload.
 *  mode 0 RAW     the payload as it is (HTTP garbage, smuggling, ...)
 *       1 WS      a valid upgrade for /v1/ws, then the payload as frames
 *       2 WSMASK  a valid upgrade, then the payload read as frames that
 *                 the harness masks (key from the parameter), so the
 *                 fuzzer gets past the mask check without learning it
 *       3 HTTP    a POST /v1/push or /v1/pull head with Content-Length
 *                 or (variant) chunked, then the payload as the body:
 *                 framed by the harness (action bit 7: chunks of
 *                 `parameter` bytes) or as raw chunked encoding;
 *                 action bit 4 adds Expect: 100-continue, bit 5 picks
 *                 /v1/pull, bit 6 announces more than is sent
 *  end  0 EOF     shutdown(SHUT_WR) right after the last write
 *       1 QUIET   wait until nothing moves, answer a deferred request,
 *                 then shutdown(SHUT_WR)
 *       2 RST     the same, then an abortive close (SO_LINGER 0)
 *       3 CLOSE   the same, then close(); with parameter 0xFF instead
 *                 connect to the quick server and wait (up to WAIT_MS)
 *                 for its own timeouts (handshake, idle)
 *  actions bits 0-1, on_message: 0 nothing, 1 echo, 2 echo then
 *       weft__ws_close with a code and reason picked by the message,
 *       3 send max_message bytes (odd length) or flood such sends until
 *       the send queue refuses one (even length);
 *       bits 2-3, on_http: 0 answer 200 at once, 1 answer another status
 *       with an extra header, 2 drop it with weft__ws_close, 3 answer it
 *       later (a long poll: when the connection is quiet);
 *       variant in WS/WSMASK: on_open sends a greeting.
 *
 * Aborts (after any sanitizer) when:
 *  - on_message delivers more than max_message, or for a conn that is not
 *    open; on_open, on_http or on_close fire for a conn in the wrong
 *    state; on_close does not fire exactly once for every conn seen;
 *  - on_http gets a field that is NULL, too long, a path the transport
 *    serves itself, a body over max_message, or (mode HTTP) a method,
 *    path, Content-Type or body other than what was sent, or a body that
 *    was never completed;
 *  - a valid upgrade (WS, WSMASK) or a complete request (HTTP) ended by
 *    EOF is not delivered (on_open / on_http);
 *  - the send queue takes more than max_send_queue, or an API call
 *    documented to fail (send on an HTTP conn, a second answer, bad
 *    answer arguments) does not;
 *  - the connection is not gone END_MS after the client left, or (every
 *    HEALTH_EVERY inputs, on both servers, the first time while the
 *    input's connection is still there unless it ended by EOF) a fresh
 *    GET /healthz is not answered 200 "ok".
 * The checks that depend on time allow for a loaded machine: delivery is
 * not asserted when the input took nearly as long as the handshake
 * deadline, and a /healthz that the deadline may have cut short is
 * retried.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE 1 /* sockets and poll under -std=c11 (replay defines it too) */
#endif
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "weft/weft.h"
#include "net/ws.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MAX_MESSAGE (64u << 10)     /* server's max_message */
#define MAX_SEND_QUEUE (256u << 10) /* server's max_send_queue */
#define HS_TIMEOUT_MS 300           /* handshake_timeout_ms of the main server */
#define IDLE_TIMEOUT_MS 300         /* idle_timeout_ms of the main server */
#define QUICK_TIMEOUT_MS 10         /* both, on the server for the waiting end */
#define WAIT_MS 100                 /* waiting end: how long to wait for them */
#define SLACK_MS 10                 /* uv_now is coarse: a deadline may fire this much early */
#define WRITE_MS 2000               /* give up a write the server does not take */
#define END_MS 5000                 /* the server must free the conn this soon */
#define HEALTH_MS 2000              /* /healthz must be answered this soon */
#define HEALTH_EVERY 16             /* inputs between /healthz checks */
#define QUIET_TURNS 3               /* loop turns without progress = quiet */
#define MAX_TURNS 5000              /* bound on the turns of one quiet wait */
#define MAX_SEEN 4                  /* conns the upper layer sees per input */
#define HEAD_KEEP 512               /* first answer bytes kept (healthz check) */
#define REASON_MAX 123              /* close reason bytes that fit in a frame */

enum mode { M_RAW, M_WS, M_WSMASK, M_HTTP };
enum end { E_EOF, E_QUIET, E_RST, E_CLOSE };

#define UPGRADE_HEAD                                                                               \
	"GET /v1/ws HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"                         \
	"Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"                   \
	"Sec-WebSocket-Version: 13\r\n\r\n"

/* One input, decoded. */
struct plan {
	enum mode mode;         /* what the harness builds around the payload */
	enum end end;           /* how the client leaves */
	bool variant;           /* WS: greeting; HTTP: chunked */
	uint8_t act;            /* callback actions, HTTP head options */
	uint8_t param;          /* mask key seed, chunk size, length excess */
	const uint8_t *cuts;    /* cut points */
	size_t ncuts;           /* bytes at cuts */
	const uint8_t *payload; /* the rest of the input */
	size_t len;             /* bytes at payload */
};

/* A connection the upper layer has seen. */
struct seen {
	struct weft_ws_conn *c; /* never dereferenced after on_close */
	bool http;              /* came through on_http, not on_open */
	bool closed;            /* on_close fired */
};

/* The client end of one connection. */
struct client {
	int fd;                   /* -1 once closed */
	bool eof;                 /* FIN or an error was read: the server left */
	int err;                  /* the error read (errno), 0 for a FIN */
	bool wfail;               /* a write failed: stop writing */
	size_t rx;                /* bytes read */
	char head[HEAD_KEEP + 1]; /* the first bytes read, NUL-terminated */
	size_t head_len;          /* bytes in head */
};

/* A growable byte buffer. */
struct buf {
	uint8_t *p; /* bytes */
	size_t len; /* bytes used */
	size_t cap; /* bytes allocated */
};

static struct {
	uv_loop_t *loop;               /* made on the first input */
	struct weft_ws_server *srv[2]; /* the servers under test: main, quick */
	int port[2];                   /* their ports */
	unsigned base;                 /* handles in the loop with no conn */
	unsigned long inputs;          /* inputs run */
	/* the input being run */
	enum mode mode;               /* its mode */
	uint8_t msg_act;              /* on_message action */
	uint8_t http_act;             /* on_http action */
	bool greet;                   /* on_open sends a greeting */
	const char *want_path;        /* HTTP: the path sent */
	const uint8_t *want_body;     /* HTTP: the body sent, if body_known */
	size_t want_body_len;         /* bytes at want_body */
	bool body_known;              /* HTTP: the body is complete and known */
	bool body_never;              /* HTTP: the body is never complete */
	struct seen seen[MAX_SEEN];   /* conns seen by the upper layer */
	size_t nseen;                 /* entries in seen */
	struct weft_ws_conn *pending; /* an on_http request answered later */
	unsigned long events;         /* callbacks so far (progress signal) */
	unsigned opens;               /* on_open this input */
	unsigned https;               /* on_http this input */
} g;

static uint8_t big[MAX_MESSAGE]; /* the flood action's message */
static uint8_t rbuf[65536];      /* client reads land here */

static const uint16_t close_codes[16] = {1000, 1001, 1002, 1003, 1004, 1005, 1006, 1008,
                                         1009, 1011, 1015, 2999, 3000, 4999, 5000, 0};

static void check(bool ok, const char *what, ...) __attribute__((format(printf, 2, 3)));

/* Aborts with a message when `ok` is false. */
static void check(bool ok, const char *what, ...)
{
	va_list ap;

	if (ok)
		return;
	fprintf(stderr, "fuzz_ws: ");
	va_start(ap, what);
	vfprintf(stderr, what, ap);
	va_end(ap);
	fprintf(stderr, "\n");
	abort();
}

static void buf_put(struct buf *b, const void *p, size_t n)
{
	if (n == 0)
		return;
	if (n > b->cap - b->len) {
		size_t cap = b->cap ? b->cap : 1024;

		while (cap - b->len < n)
			cap *= 2;
		b->p = realloc(b->p, cap);
		check(b->p != NULL, "out of memory");
		b->cap = cap;
	}
	memcpy(b->p + b->len, p, n);
	b->len += n;
}

static void buf_str(struct buf *b, const char *fmt, ...)
{
	char tmp[512];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(tmp, sizeof(tmp), fmt, ap);
	va_end(ap);
	check(n >= 0 && (size_t)n < sizeof(tmp), "format overflow");
	buf_put(b, tmp, (size_t)n);
}

static uint64_t ms_since(uint64_t t0)
{
	return (uv_hrtime() - t0) / 1000000u;
}

static void count_cb(uv_handle_t *h, void *arg)
{
	(void)h;
	(*(unsigned *)arg)++;
}

/* Handles in the loop, closing ones included: a conn's two handles leave
 * only when their close callbacks have run, and the last one frees it. */
static unsigned live_handles(void)
{
	unsigned n = 0;

	uv_walk(g.loop, count_cb, &n);
	return n;
}

/* ------------------------------------------------------------------ */
/* the upper layer                                                      */

static struct seen *seen_find(const struct weft_ws_conn *c)
{
	for (size_t i = 0; i < g.nseen; i++) {
		if (g.seen[i].c == c)
			return &g.seen[i];
	}
	return NULL;
}

static void seen_add(struct weft_ws_conn *c, bool http)
{
	check(seen_find(c) == NULL, "%s for a conn already seen", http ? "on_http" : "on_open");
	check(g.nseen < MAX_SEEN, "more conns than the input made");
	g.seen[g.nseen++] = (struct seen){.c = c, .http = http};
}

/* Checks that calls which do not apply to a WebSocket conn fail; sends the
 * greeting if the input asks. */
static void on_open(void *ud, struct weft_ws_conn *c)
{
	int rc;

	(void)ud;
	g.events++;
	g.opens++;
	seen_add(c, false);
	rc = weft__ws_http_reply(c, 200, "text/plain", NULL, "x", 1);
	check(rc == WEFT_ECLOSED, "http_reply on a WebSocket conn: %d", rc);
	rc = weft__ws_send(c, NULL, 1);
	check(rc == WEFT_EINVAL, "send(NULL, 1): %d", rc);
	if (g.greet) {
		rc = weft__ws_send(c, "hi", 2);
		check(rc == WEFT_OK, "greeting from on_open: %d", rc);
	}
}

/* Checks the message against max_message and the conn's state, then does
 * what the input's on_message action says (echo, close, big sends). */
static void on_message(void *ud, struct weft_ws_conn *c, const uint8_t *data, size_t len)
{
	static const char *const reasons[4] = {
	    "",
	    "bye",
	    "a long reason that does not fit in a close frame: 0123456789012345678901234567890"
	    "1234567890123456789012345678901234567890123456789012345678901234567890",
	    "\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9"
	    "\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9"
	    "\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9"
	    "\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9"
	    "\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9"
	    "\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9",
	};
	struct seen *s = seen_find(c);
	int rc = WEFT_OK, i;

	(void)ud;
	g.events++;
	check(len <= MAX_MESSAGE, "on_message: %zu bytes, max_message is %u", len, MAX_MESSAGE);
	check(data != NULL, "on_message: data is NULL");
	check(s && !s->http && !s->closed, "on_message for a conn that is not open");
	switch (g.msg_act) {
	case 1:
	case 2:
		rc = weft__ws_send(c, data, len);
		check(rc == WEFT_OK || rc == WEFT_ETOOBIG || rc == WEFT_ECLOSED, "echo: %d", rc);
		if (g.msg_act == 2)
			weft__ws_close(c, close_codes[len ? data[0] % 16 : 0], reasons[len % 4]);
		break;
	case 3:
		if (len % 2) {
			rc = weft__ws_send(c, big, sizeof(big));
			check(rc == WEFT_OK || rc == WEFT_ETOOBIG || rc == WEFT_ECLOSED,
			      "max_message send: %d", rc);
			break;
		}
		/* The queue holds MAX_SEND_QUEUE: the fifth send must fail. */
		for (i = 0; i < 8; i++) {
			rc = weft__ws_send(c, big, sizeof(big));
			if (rc != WEFT_OK)
				break;
		}
		check(i <= 4 && (rc == WEFT_ETOOBIG || rc == WEFT_ECLOSED),
		      "flood: send %d returned %d, queued %zu", i, rc, weft__ws_queued(c));
		break;
	default:
		break;
	}
}

/* Exactly once per conn seen, never for one the upper layer did not see. */
static void on_close(void *ud, struct weft_ws_conn *c, uint16_t code, const char *reason)
{
	struct seen *s = seen_find(c);

	(void)ud;
	g.events++;
	check(s != NULL, "on_close for a conn never seen");
	check(!s->closed, "on_close twice for one conn");
	s->closed = true;
	check(code != 0, "on_close with code 0");
	check(reason != NULL && strlen(reason) <= REASON_MAX, "on_close: bad reason");
	if (g.pending == c)
		g.pending = NULL;
}

static bool has_crlf(const char *s)
{
	return strpbrk(s, "\r\n") != NULL;
}

/* Checks the request's fields (against what was sent, in mode HTTP) and
 * answers it, drops it or keeps it for later, as the input says. */
static void on_http(void *ud, struct weft_ws_conn *c, const struct weft_ws_http_req *req)
{
	static const int statuses[4] = {204, 400, 503, 599};
	const char *ct;
	size_t ctlen;
	int rc;

	(void)ud;
	g.events++;
	g.https++;
	seen_add(c, true);
	check(req && req->method && req->path && req->query && req->content_type && req->body,
	      "on_http: a NULL field");
	ct = req->content_type;
	ctlen = strlen(ct);
	check(req->body_len <= MAX_MESSAGE, "on_http: body of %zu bytes", req->body_len);
	check(strlen(req->path) < 256 && !strchr(req->path, '?') && !has_crlf(req->path),
	      "on_http: bad path");
	check(strcmp(req->path, "/v1/ws") != 0 && strcmp(req->path, "/healthz") != 0,
	      "on_http for %s, which the transport serves", req->path);
	check(ctlen < 256 && !has_crlf(ct) &&
	          (ctlen == 0 || (ct[0] != ' ' && ct[0] != '\t' && ct[ctlen - 1] != ' ' &&
	                          ct[ctlen - 1] != '\t')),
	      "on_http: bad Content-Type \"%s\"", ct);
	if (g.mode == M_HTTP) {
		check(strcmp(req->method, "POST") == 0, "on_http: method %s", req->method);
		check(strcmp(req->path, g.want_path) == 0, "on_http: path %s, sent %s", req->path,
		      g.want_path);
		check(req->query[0] == '\0', "on_http: query \"%s\"", req->query);
		check(strcmp(ct, "application/msgpack") == 0, "on_http: Content-Type \"%s\"", ct);
		check(!g.body_never, "on_http for a body that was never completed");
		if (g.body_known)
			check(req->body_len == g.want_body_len &&
			          memcmp(req->body, g.want_body, req->body_len) == 0,
			      "on_http: body of %zu bytes differs from the %zu sent", req->body_len,
			      g.want_body_len);
	}
	rc = weft__ws_send(c, "x", 1);
	check(rc == WEFT_ECLOSED, "send on an HTTP conn: %d", rc);
	switch (g.http_act) {
	case 0:
		rc = weft__ws_http_reply(c, 200, "application/msgpack", NULL, req->body,
		                         req->body_len < 16 ? req->body_len : 16);
		check(rc == WEFT_OK, "http_reply: %d", rc);
		rc = weft__ws_http_reply(c, 200, "text/plain", NULL, "again", 5);
		check(rc == WEFT_ECLOSED, "second http_reply: %d", rc);
		break;
	case 1:
		rc = weft__ws_http_reply(c, 199, "text/plain", NULL, NULL, 0);
		check(rc == WEFT_EINVAL, "http_reply(199): %d", rc);
		rc = weft__ws_http_reply(c, 200, "text/plain\r\nX-Evil: 1", NULL, NULL, 0);
		check(rc == WEFT_EINVAL, "http_reply with CRLF in the type: %d", rc);
		rc = weft__ws_http_reply(c, statuses[req->body_len % 4], "text/plain",
		                         "X-Fuzz: 1\r\n", NULL, 0);
		check(rc == WEFT_OK, "http_reply: %d", rc);
		break;
	case 2:
		weft__ws_close(c, 1000, "dropped");
		rc = weft__ws_http_reply(c, 200, "text/plain", NULL, NULL, 0);
		check(rc == WEFT_ECLOSED, "http_reply after close: %d", rc);
		break;
	default:
		g.pending = c;
		break;
	}
}

/* Answers the request held back by on_http action 3 (a long poll). */
static void answer_pending(void)
{
	int rc;

	if (!g.pending)
		return;
	rc = weft__ws_http_reply(g.pending, 200, "application/json", "X-Late: 1\r\n", "[]", 2);
	check(rc == WEFT_OK, "late http_reply: %d", rc);
	g.pending = NULL;
}

/* ------------------------------------------------------------------ */
/* the client                                                           */

/* Connects a non-blocking client socket to 127.0.0.1:port. */
static void client_open(struct client *cl, int port)
{
	struct sockaddr_in sa;
	int one = 1, fd = -1, tries;

	memset(cl, 0, sizeof(*cl));
	memset(&sa, 0, sizeof(sa));
	sa.sin_family = AF_INET;
	sa.sin_port = htons((uint16_t)port);
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	/* A blocking connect completes in the kernel (the listener's backlog);
	 * retry a little if the ephemeral ports are all in TIME_WAIT. */
	for (tries = 0; tries < 200; tries++) {
		fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
		check(fd >= 0, "socket: %s", strerror(errno));
		if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0)
			break;
		check(errno == EADDRNOTAVAIL || errno == EAGAIN || errno == EINTR, "connect: %s",
		      strerror(errno));
		close(fd);
		fd = -1;
		usleep(10000);
	}
	check(fd >= 0, "connect: no ephemeral port");
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	check(fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK) == 0, "fcntl");
	cl->fd = fd;
}

/* Reads and discards what the server sent; true if anything moved. */
static bool client_drain(struct client *cl)
{
	bool moved = false;

	while (cl->fd >= 0 && !cl->eof) {
		ssize_t n = recv(cl->fd, rbuf, sizeof(rbuf), 0);

		if (n > 0) {
			size_t keep = HEAD_KEEP - cl->head_len;

			if (keep > (size_t)n)
				keep = (size_t)n;
			memcpy(cl->head + cl->head_len, rbuf, keep);
			cl->head_len += keep;
			cl->head[cl->head_len] = '\0';
			cl->rx += (size_t)n;
			moved = true;
			continue;
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			break;
		cl->err = n < 0 ? errno : 0;
		cl->eof = true; /* FIN, or ECONNRESET */
		moved = true;
	}
	return moved;
}

/* Closes the client socket: a FIN, or a RST when `rst`. */
static void client_close(struct client *cl, bool rst)
{
	if (cl->fd < 0)
		return;
	if (rst) {
		struct linger lg = {.l_onoff = 1, .l_linger = 0};

		setsockopt(cl->fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
	}
	close(cl->fd);
	cl->fd = -1;
	cl->eof = true;
}

/* One loop turn without blocking, then the client reads; true if
 * anything moved (a callback, bytes or EOF for the client, a handle
 * opened or freed). */
static bool turn(struct client *cl)
{
	unsigned long ev = g.events;
	unsigned h = live_handles();
	bool moved;

	uv_run(g.loop, UV_RUN_NOWAIT);
	moved = client_drain(cl);
	return moved || ev != g.events || h != live_handles();
}

/* Sleeps until the loop or the client socket has something, at most
 * `max_ms` (the loop's next timer included). */
static void idle_wait(const struct client *cl, int max_ms)
{
	struct pollfd p[2] = {{.fd = uv_backend_fd(g.loop), .events = POLLIN},
	                      {.fd = cl->fd, .events = POLLIN}};
	int t = uv_backend_timeout(g.loop);

	if (t < 0 || t > max_ms)
		t = max_ms;
	(void)poll(p, cl->fd >= 0 && !cl->eof ? 2 : 1, t);
}

/* Turns the loop until nothing has moved for QUIET_TURNS turns. */
static void wait_quiet(struct client *cl)
{
	int quiet = 0;

	for (int i = 0; i < MAX_TURNS && quiet < QUIET_TURNS; i++)
		quiet = turn(cl) ? 0 : quiet + 1;
}

/* Writes all of p[0..n), turning the loop while the socket is full; stops
 * when the server has gone or takes nothing for WRITE_MS. */
static void client_write(struct client *cl, const uint8_t *p, size_t n)
{
	uint64_t t0 = uv_hrtime();

	while (n > 0 && cl->fd >= 0 && !cl->wfail) {
		ssize_t w = send(cl->fd, p, n, MSG_NOSIGNAL);

		if (w > 0) {
			p += w;
			n -= (size_t)w;
		} else if (w < 0 && errno == EINTR) {
			continue;
		} else if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK) &&
		           ms_since(t0) < WRITE_MS) {
			/* Socket full: let the server read. */
			if (!turn(cl))
				idle_wait(cl, 1);
		} else {
			cl->wfail = true; /* the server has gone (EPIPE, ECONNRESET) */
		}
	}
}

/* After the client has left (or is leaving): turns the loop until the
 * server has freed the connection, i.e. the loop holds at most `base`
 * handles. A server that keeps it is wedged. */
static void finish(struct client *cl, unsigned base, const char *what)
{
	uint64_t t0 = uv_hrtime();

	for (;;) {
		bool moved = turn(cl);

		if (cl->eof)
			client_close(cl, false);
		if (cl->fd < 0 && live_handles() <= base)
			break;
		check(ms_since(t0) < END_MS, "%s: the connection is still there after %d ms", what,
		      END_MS);
		if (!moved)
			idle_wait(cl, 5);
	}
}

/* ------------------------------------------------------------------ */
/* the input                                                            */

/* Splits the input into the header bytes, the cut points and the payload
 * (see the file comment); a short input reads as zeros. */
static void plan_parse(struct plan *p, const uint8_t *data, size_t size)
{
	uint8_t b[3] = {0, 0, 0};
	size_t hdr;

	memcpy(b, data, size < 3 ? size : 3);
	p->mode = (enum mode)(b[0] & 3);
	p->end = (enum end)((b[0] >> 2) & 3);
	p->ncuts = (b[0] >> 4) & 7;
	p->variant = (b[0] & 0x80) != 0;
	p->act = b[1];
	p->param = b[2];
	hdr = 3 + p->ncuts;
	if (hdr > size)
		hdr = size;
	p->cuts = data + (size < 3 ? size : 3);
	p->ncuts = hdr - (size < 3 ? size : 3);
	p->payload = data + hdr;
	p->len = size - hdr;
}

/* The payload read as client frames (header with any mask bit, extended
 * length, payload), written out masked with a key from `seed`. A frame
 * longer than what is left keeps its announced length. */
static void build_masked(struct buf *s, const uint8_t *p, size_t n, uint8_t seed)
{
	size_t i = 0;
	unsigned idx = 0;

	while (i < n) {
		uint8_t h[2], key[4];
		size_t ext, take, k;
		uint64_t flen = 0;

		h[0] = p[i++];
		if (i == n) {
			buf_put(s, h, 1);
			break;
		}
		h[1] = p[i++] | 0x80;
		ext = (h[1] & 0x7F) == 126 ? 2 : (h[1] & 0x7F) == 127 ? 8 : 0;
		buf_put(s, h, 2);
		if (n - i < ext) {
			buf_put(s, p + i, n - i);
			break;
		}
		for (k = 0; k < ext; k++)
			flen = flen << 8 | p[i + k];
		if (ext == 0)
			flen = h[1] & 0x7F;
		buf_put(s, p + i, ext);
		i += ext;
		for (k = 0; k < 4; k++)
			key[k] = (uint8_t)(seed * (k + 1) + idx * 37);
		buf_put(s, key, 4);
		take = flen < n - i ? (size_t)flen : n - i;
		for (k = 0; k < take; k++) {
			uint8_t m = p[i + k] ^ key[k % 4];

			buf_put(s, &m, 1);
		}
		i += take;
		idx++;
	}
}

/* Mode HTTP: a POST head, then the payload as a Content-Length or chunked
 * body; records what on_http must see. */
static void build_http(const struct plan *p, struct buf *s)
{
	bool expect = p->act & 0x10, pull = p->act & 0x20, shortb = p->act & 0x40;
	bool framed = p->act & 0x80, chunked = p->variant;

	g.want_path = pull ? "/v1/pull" : "/v1/push";
	buf_str(s, "POST %s HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/msgpack\r\n",
	        g.want_path);
	if (expect)
		buf_str(s, "Expect: 100-continue\r\n");
	if (!chunked) {
		size_t cl = p->len;

		if (shortb)
			cl = p->param ? p->len + p->param : (size_t)MAX_MESSAGE + 1;
		buf_str(s, "Content-Length: %zu\r\n\r\n", cl);
		buf_put(s, p->payload, p->len);
		g.body_known = !shortb;
		g.body_never = shortb;
	} else if (!framed) {
		buf_str(s, "Transfer-Encoding: chunked\r\n\r\n");
		buf_put(s, p->payload, p->len);
	} else {
		size_t step = p->param ? p->param : p->len, i;

		buf_str(s, "Transfer-Encoding: chunked\r\n\r\n");
		for (i = 0; i < p->len; i += step) {
			size_t k = p->len - i < step ? p->len - i : step;

			buf_str(s, "%zx\r\n", k);
			buf_put(s, p->payload + i, k);
			buf_str(s, "\r\n");
		}
		if (!shortb)
			buf_str(s, "0\r\n\r\n");
		g.body_known = !shortb;
		g.body_never = shortb;
	}
	g.want_body = p->payload;
	g.want_body_len = p->len;
}

/* The bytes the client sends, all of them, before the cuts. */
static void build_stream(const struct plan *p, struct buf *s)
{
	switch (p->mode) {
	case M_RAW:
		buf_put(s, p->payload, p->len);
		break;
	case M_WS:
		buf_str(s, UPGRADE_HEAD);
		buf_put(s, p->payload, p->len);
		break;
	case M_WSMASK:
		buf_str(s, UPGRADE_HEAD);
		build_masked(s, p->payload, p->len, p->param);
		break;
	default:
		build_http(p, s);
		break;
	}
}

/* Per-input state for the callbacks. */
static void input_reset(const struct plan *p)
{
	g.mode = p->mode;
	g.msg_act = p->act & 3;
	g.http_act = (p->act >> 2) & 3;
	g.greet = p->variant && (p->mode == M_WS || p->mode == M_WSMASK);
	g.want_path = NULL;
	g.want_body = NULL;
	g.want_body_len = 0;
	g.body_known = false;
	g.body_never = false;
	g.nseen = 0;
	g.pending = NULL;
	g.opens = 0;
	g.https = 0;
}

/* Writes the stream in pieces cut at the input's points, letting the
 * server read each piece on its own. */
static void send_pieces(struct client *cl, const struct plan *p, const struct buf *s)
{
	size_t cut[8], n = 0, pos = 0;

	for (size_t i = 0; i < p->ncuts; i++) {
		size_t c = s->len * p->cuts[i] / 256, j = n;

		while (j > 0 && cut[j - 1] > c) {
			cut[j] = cut[j - 1];
			j--;
		}
		cut[j] = c;
		n++;
	}
	for (size_t i = 0; i <= n; i++) {
		size_t to = i < n ? cut[i] : s->len;

		if (to <= pos)
			continue;
		client_write(cl, s->p + pos, to - pos);
		pos = to;
		turn(cl);
		turn(cl);
	}
}

/* A fresh GET /healthz on server `k` must be answered 200 "ok", also
 * while the input's connection is still there (`alone` false: its
 * callbacks may then fire meanwhile). An attempt that took about as long
 * as the server's handshake deadline may have been cut short by it (this
 * process descheduled for 10 ms on a loaded machine): it is retried, a
 * few times. */
static void health_check(int k, bool alone)
{
	static const char req[] = "GET /healthz HTTP/1.1\r\nHost: fuzz\r\n\r\n";
	unsigned long ev = g.events;
	unsigned base = live_handles();
	uint64_t limit = k ? QUICK_TIMEOUT_MS : HS_TIMEOUT_MS;
	bool ok = false;

	for (int tries = 1; !ok; tries++) {
		uint64_t t0 = uv_hrtime();
		struct client cl;

		client_open(&cl, g.port[k]);
		turn(&cl); /* the server accepts: its deadline starts after t0 */
		client_write(&cl, (const uint8_t *)req, sizeof(req) - 1);
		while (!cl.eof) {
			check(ms_since(t0) < HEALTH_MS,
			      "GET /healthz: no answer in %d ms, the server is wedged", HEALTH_MS);
			if (!turn(&cl))
				idle_wait(&cl, 5);
		}
		ok = strncmp(cl.head, "HTTP/1.1 200 ", 13) == 0 && strstr(cl.head, "\r\n\r\nok\n");
		check(ok || (tries < 5 && ms_since(t0) + SLACK_MS >= limit),
		      "GET /healthz: bad answer \"%s\" (%zu bytes, then %s after %llu ms)", cl.head,
		      cl.rx, cl.err ? strerror(cl.err) : "EOF", (unsigned long long)ms_since(t0));
		finish(&cl, base, "GET /healthz");
	}
	check(!alone || g.events == ev, "callbacks fired for GET /healthz");
}

/* At exit: stop both servers and free everything, so that LeakSanitizer
 * sees nothing of ours. */
static void teardown(void)
{
	if (!g.loop)
		return;
	weft__ws_server_stop(g.srv[0]);
	weft__ws_server_stop(g.srv[1]);
	uv_run(g.loop, UV_RUN_DEFAULT);
	check(uv_loop_close(g.loop) == 0, "a handle outlived the servers");
	free(g.loop);
	g.loop = NULL;
}

/* Two servers on one loop: the main one, and a quick one with 10 ms
 * deadlines that serves the inputs which wait for the server's own
 * timeouts, so that those cost milliseconds, not hundreds. */
static void setup(void)
{
	static const struct weft_ws_callbacks cb = {
	    .on_open = on_open,
	    .on_message = on_message,
	    .on_close = on_close,
	    .on_http = on_http,
	};
	struct weft_ws_limits lim;
	char err[128];
	int rc;

	g.loop = malloc(sizeof(*g.loop));
	check(g.loop != NULL && uv_loop_init(g.loop) == 0, "uv_loop_init");
	weft__ws_limits_init(&lim);
	lim.max_message = MAX_MESSAGE;
	lim.max_send_queue = MAX_SEND_QUEUE;
	for (int k = 0; k < 2; k++) {
		lim.handshake_timeout_ms = k ? QUICK_TIMEOUT_MS : HS_TIMEOUT_MS;
		lim.idle_timeout_ms = k ? QUICK_TIMEOUT_MS : IDLE_TIMEOUT_MS;
		rc = weft__ws_server_start(g.loop, "127.0.0.1", 0, &lim, &cb, NULL, &g.srv[k], err,
		                           sizeof(err));
		check(rc == WEFT_OK, "server start: %d %s", rc, err);
		g.port[k] = weft__ws_server_port(g.srv[k]);
	}
	g.base = live_handles();
	atexit(teardown);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct plan p;
	struct buf s = {0};
	struct client cl;
	uint64_t t0;
	bool wait, by_eof, health;

	if (!g.loop)
		setup();
	plan_parse(&p, data, size);
	input_reset(&p);
	build_stream(&p, &s);
	wait = p.end == E_CLOSE && p.param == 0xFF;
	health = g.inputs++ % HEALTH_EVERY == 0;

	t0 = uv_hrtime();
	client_open(&cl, g.port[wait]);
	turn(&cl); /* the server accepts */
	send_pieces(&cl, &p, &s);
	if (p.end == E_EOF) {
		shutdown(cl.fd, SHUT_WR);
	} else {
		wait_quiet(&cl);
		if (health)
			health_check(wait, false);
		answer_pending();
		wait_quiet(&cl);
		if (wait) {
			uint64_t t1 = uv_hrtime();

			/* Let the server's own deadlines end it. */
			while (!cl.eof && live_handles() != g.base && ms_since(t1) < WAIT_MS) {
				if (!turn(&cl))
					idle_wait(&cl, 5);
			}
			answer_pending();
			if (!cl.eof)
				shutdown(cl.fd, SHUT_WR);
		} else if (p.end == E_QUIET) {
			shutdown(cl.fd, SHUT_WR);
		} else {
			client_close(&cl, p.end == E_RST);
		}
	}
	finish(&cl, g.base, "input");
	/* Delivery is asserted for inputs ended by EOF, unless the harness was
	 * so slow (a loaded machine) that the handshake deadline may have cut
	 * the connection short. */
	by_eof = !cl.wfail && (p.end == E_EOF || p.end == E_QUIET) &&
	         ms_since(t0) + SLACK_MS < HS_TIMEOUT_MS;

	for (size_t i = 0; i < g.nseen; i++)
		check(g.seen[i].closed, "on_close did not fire for a conn the upper layer saw");
	check(g.pending == NULL, "a deferred request was neither answered nor closed");
	if (by_eof && (p.mode == M_WS || p.mode == M_WSMASK))
		check(g.opens == 1, "a valid upgrade was not opened (%u)", g.opens);
	if (by_eof && p.mode == M_HTTP && g.body_known && p.len <= MAX_MESSAGE)
		check(g.https == 1, "a complete request was not delivered (%u)", g.https);
	if (health) {
		health_check(!wait, true);
		if (p.end == E_EOF)
			health_check(wait, true);
	}
	free(s.p);
	return 0;
}
