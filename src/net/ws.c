/*
 * ws.c - the WebSocket transport: libuv sockets, http-parser for the
 * upgrade handshake, wslay for framing.
 *
 * One `struct weft_ws_conn` per TCP connection, server or client side,
 * moves through one state machine:
 *
 *   CONNECTING  client only: TCP connect in flight
 *   HTTP        server: reading the request; client: awaiting the 101
 *   REQUEST     server only: a plain HTTP request (not an upgrade) was
 *               handed to on_http; the upper layer answers it with
 *               weft__ws_http_reply, now or later (a long poll). Bytes
 *               from the peer are discarded (every response carries
 *               Connection: close); its EOF means it has gone
 *   OPEN        frames flow; the upper layer has seen the conn
 *   CLOSING     our or the peer's close frame is queued; no more messages
 *               go up or may be sent
 *   DRAIN       on_close has fired; our last bytes flush, then FIN, then
 *               we wait (bounded) for the peer's EOF
 *   DEAD        uv_close called on both handles; freed in the last
 *               close callback
 *
 * Invariants:
 *  - Upper-layer callbacks fire only from the read path and from
 *    conn_drive(), and conn_drive() only runs at the top of a libuv
 *    callback. Public functions (send, close, server_stop) queue work and
 *    "kick" the conn's timer; they never call back into the upper layer,
 *    so it may call them from inside any callback. `busy` marks a conn
 *    whose wslay context or callback is on the stack: its sends are
 *    flushed by the caller up the stack, not re-entrantly.
 *  - on_close fires exactly once for a conn the upper layer has seen
 *    (`seen`: on_open, or weft__ws_connect's *out), on leaving CLOSING
 *    or an earlier state. The memory is freed only after both handles'
 *    close callbacks, so a pointer used later in the same loop turn finds
 *    state DEAD, never freed memory.
 *  - Every frame header from the peer is checked by frame_peek() before
 *    wslay sees it: opcode, RSV bits, masking, minimal length encoding,
 *    control-frame rules, fragmentation order, text frames (1003) and the
 *    message length against max_message (1009). wslay 1.1.1 learns a
 *    frame's length only once a first payload byte has arrived, so
 *    without the peek a header announcing 100 MB would just sit there;
 *    and on a framing error wslay sends a close without a status code.
 *  - The request head is limited to HTTP_MAX_BYTES. Only requests for
 *    on_http (paths other than /v1/ws and /healthz) may carry a body,
 *    of at most max_message bytes: a larger Content-Length or chunk size
 *    is answered 413 before any of the body is read, and the body buffer
 *    grows with the bytes that actually arrived.
 *  - wslay runs unbuffered: payload bytes are appended to `msg`, which
 *    grows with the bytes actually received and never past max_message.
 *    Nothing is ever allocated from a length read off the wire.
 *  - Bytes queued for sending (wslay's queue + obuf + uv writes in
 *    flight) stay within max_send_queue: a send that would pass it fails
 *    and aborts the connection with 1008. At most WRITE_HIGH_WATER bytes
 *    are handed to libuv at a time; the rest waits inside wslay.
 */
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <http_parser.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <wslay/wslay.h>

#include "weft/weft.h"
#include "net/ws.h"

#define WS_PATH "/v1/ws"
#define WS_GUID "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
#define HTTP_MAX_BYTES 8192      /* request/response head, start line included */
#define HTTP_MAX_HEADERS 64      /* header lines in one head */
#define HDR_VALUE_MAX 256        /* longest value kept for a header we read */
#define RBUF_SIZE 65536          /* one uv read */
#define OBUF_MAX 65536           /* largest single uv write */
#define WRITE_HIGH_WATER 1048576 /* bytes in uv writes before wslay waits */
#define CLOSE_LINGER_MS 2000     /* CLOSING: wait this long for the peer's close */
#define DRAIN_LINGER_MS 2000     /* DRAIN: wait this long for the peer's EOF */
#define MSG_KEEP_MAX 65536       /* keep a reassembly buffer up to this size */
#define REASON_MAX 123           /* close reason bytes that fit in a frame */
#define HTTP_STALL_MS 10000      /* REQUEST: a response must keep draining */
#define BODY_MIN_CAP 4096        /* first allocation of a request body */

enum conn_state { ST_CONNECTING, ST_HTTP, ST_REQUEST, ST_OPEN, ST_CLOSING, ST_DRAIN, ST_DEAD };

/* The headers we look at. */
enum hdr_id { H_UPGRADE, H_CONNECTION, H_VERSION, H_KEY, H_ACCEPT, H_CTYPE, H_EXPECT, H_COUNT };

static const char *const hdr_names[H_COUNT] = {
    "upgrade",
    "connection",
    "sec-websocket-version",
    "sec-websocket-key",
    "sec-websocket-accept",
    "content-type",
    "expect",
};

/* Where a server-side request goes, decided once its head is complete. */
enum route { R_NONE, R_WS, R_HEALTH, R_UPPER };

struct http_hdr {
	char v[HDR_VALUE_MAX]; /* value, NUL-terminated; repeats joined by ", " */
	size_t len;            /* bytes in v */
	unsigned count;        /* times the header appeared */
	bool over;             /* the value did not fit */
};

/* Parser state for one HTTP head (request on the server, response on the
 * client); freed when the handshake ends. */
struct handshake {
	http_parser hp;             /* hp.data = this */
	size_t nbytes;              /* bytes of the head fed to the parser */
	char url[256];              /* request target, NUL-terminated */
	size_t url_len;             /* bytes in url */
	bool url_over;              /* the target did not fit */
	char field[32];             /* name of the header being read */
	size_t field_len;           /* bytes in field */
	bool field_over;            /* the name did not fit (so not ours) */
	int last;                   /* 0 none, 1 field, 2 value: last callback */
	int cur;                    /* enum hdr_id receiving a value, or -1 */
	unsigned nheaders;          /* header lines seen */
	struct http_hdr h[H_COUNT]; /* the headers we look at */
	bool has_body;              /* the request carried a body */
	bool headers_done;          /* on_headers_complete fired */
	bool msg_done;              /* on_message_complete fired */
	char expect[32];            /* client: the Sec-WebSocket-Accept we want */
	bool server;                /* parsing a request (server side) */
	bool upper_ok;              /* the upper layer takes requests (on_http) */
	enum route route;           /* server: where the request goes */
	int reject;                 /* server: HTTP status to answer at once, 0 none */
	bool continue_sent;         /* "100 Continue" written */
	size_t max_body;            /* largest body accepted (max_message) */
	uint8_t *body;              /* R_UPPER: the body so far */
	size_t body_len;            /* bytes in body */
	size_t body_cap;            /* bytes allocated at body */
};

/* Frame-header validator state; see frame_peek(). */
struct frame_peek {
	uint8_t hdr[14];  /* header bytes of the current frame so far */
	size_t hlen;      /* bytes in hdr; 0 = between frames */
	uint64_t flen;    /* payload length of the current frame, once known */
	uint64_t rem;     /* payload bytes of the current frame still to come */
	bool in_msg;      /* a fragmented binary message is in progress */
	uint64_t msg_len; /* payload bytes of that message so far */
};

struct weft_ws_conn {
	uv_tcp_t tcp;                    /* the socket; data = this */
	uv_timer_t timer;                /* deadlines and kicks; data = this */
	uv_connect_t connect_req;        /* client: the connect in flight */
	uv_shutdown_t shutdown_req;      /* DRAIN: our FIN */
	uv_loop_t *loop;                 /* the loop everything runs on */
	struct weft_ws_server *srv;      /* owning server; NULL for a client */
	struct weft_ws_conn *prev;       /* in srv->conns */
	struct weft_ws_conn *next;       /* in srv->conns */
	struct weft_ws_limits lim;       /* limits, copied */
	struct weft_ws_callbacks cb;     /* callbacks, copied */
	void *ud;                        /* first argument of every callback */
	void *data;                      /* weft__ws_set_data's pointer */
	enum conn_state state;           /* see the file comment */
	bool server;                     /* accepted by a server (masks expected) */
	bool seen;                       /* the upper layer knows this conn */
	bool notified;                   /* on_close has fired */
	bool close_received;             /* the peer's close frame arrived */
	bool close_fast;                 /* after our close frame, don't wait */
	bool want_abort;                 /* drop the TCP connection at next drive */
	bool shutdown_started;           /* uv_shutdown issued */
	bool msg_oom;                    /* reassembly failed to grow */
	bool close_pending;              /* our close frame waits for the data queue */
	bool replied;                    /* REQUEST: the response is queued */
	uint16_t close_wire;             /* its code on the wire (0 = none) */
	int busy;                        /* >0 while wslay or a callback runs */
	int nhandles;                    /* handles not yet closed */
	uint16_t code;                   /* code for on_close; 0 = undecided */
	char reason[REASON_MAX + 1];     /* reason for on_close */
	char close_text[REASON_MAX + 1]; /* reason in our close frame */
	uint64_t hs_deadline;            /* loop time the handshake must end; 0 none */
	uint64_t last_read;              /* loop time of the last bytes read */
	uint64_t state_since;            /* loop time CLOSING/DRAIN began */
	struct handshake *hs;            /* during CONNECTING/HTTP only */
	wslay_event_context_ptr ws;      /* from OPEN on */
	struct frame_peek fp;            /* incoming frame validator */
	const uint8_t *rp;               /* bytes being handed to wslay */
	size_t rlen;                     /* bytes left at rp */
	uint8_t op;                      /* opcode of the frame wslay delivers */
	uint8_t *msg;                    /* message being reassembled */
	size_t msg_len;                  /* bytes in msg */
	size_t msg_cap;                  /* bytes allocated at msg */
	uint8_t *obuf;                   /* frame bytes from wslay not yet written */
	size_t obuf_len;                 /* bytes in obuf */
	size_t obuf_cap;                 /* bytes allocated at obuf */
	size_t wq_bytes;                 /* bytes in uv writes in flight */
	char host[80];                   /* client: Host header value */
	char peer[64];                   /* "ip:port" of the peer */
	uint8_t rbuf[RBUF_SIZE];         /* uv reads land here */
};

struct weft_ws_server {
	uv_tcp_t tcp;                /* the listening socket; data = this */
	uv_loop_t *loop;             /* the loop it runs on */
	struct weft_ws_limits lim;   /* limits for every accepted conn */
	struct weft_ws_callbacks cb; /* callbacks for every accepted conn */
	void *ud;                    /* their first argument */
	struct weft_ws_conn *conns;  /* accepted conns not yet freed */
	size_t nconns;               /* length of conns */
	int port;                    /* port actually bound */
	bool stopping;               /* weft__ws_server_stop was called */
	bool listener_closed;        /* the listener's close callback ran */
};

/* One uv write; owns its bytes. */
struct write_req {
	uv_write_t req;         /* req.data unused */
	struct weft_ws_conn *c; /* the conn writing */
	uint8_t *data;          /* the bytes, freed on completion */
	size_t len;             /* bytes at data */
};

static void conn_drive(struct weft_ws_conn *c);
static void conn_begin_close(struct weft_ws_conn *c, uint16_t code, const char *reason, bool fast);
static void ws_feed(struct weft_ws_conn *c, const uint8_t *data, size_t n);

void weft__ws_limits_init(struct weft_ws_limits *l)
{
	l->max_message = (size_t)16 << 20;
	l->max_send_queue = (size_t)64 << 20;
	l->handshake_timeout_ms = 10000;
	l->idle_timeout_ms = 0;
}

/* ------------------------------------------------------------------ */
/* small helpers                                                        */

static int ascii_lower(int ch)
{
	return ch >= 'A' && ch <= 'Z' ? ch + ('a' - 'A') : ch;
}

static bool ascii_caseeq(const char *a, size_t alen, const char *b)
{
	size_t i;

	for (i = 0; i < alen; i++) {
		if (b[i] == '\0' ||
		    ascii_lower((unsigned char)a[i]) != ascii_lower((unsigned char)b[i]))
			return false;
	}
	return b[alen] == '\0';
}

/* The value without leading and trailing spaces and tabs. */
static const char *trim(const char *s, size_t len, size_t *outlen)
{
	while (len > 0 && (*s == ' ' || *s == '\t')) {
		s++;
		len--;
	}
	while (len > 0 && (s[len - 1] == ' ' || s[len - 1] == '\t'))
		len--;
	*outlen = len;
	return s;
}

/* Whether the comma-separated list `v` holds `tok` (case-insensitive). */
static bool has_token(const struct http_hdr *h, const char *tok)
{
	const char *p = h->v, *end = h->v + h->len;

	if (h->count == 0 || h->over)
		return false;
	while (p < end) {
		const char *comma = memchr(p, ',', (size_t)(end - p));
		const char *stop = comma ? comma : end;
		size_t tlen;
		const char *t = trim(p, (size_t)(stop - p), &tlen);

		if (ascii_caseeq(t, tlen, tok))
			return true;
		p = stop + 1;
	}
	return false;
}

/* Sec-WebSocket-Accept for `key`: base64(SHA-1(key + GUID)), 28 chars. */
static int ws_accept_of(const char *key, size_t keylen, char out[32])
{
	char buf[128];
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int mdlen = 0;

	if (keylen + sizeof(WS_GUID) > sizeof(buf))
		return -1;
	memcpy(buf, key, keylen);
	memcpy(buf + keylen, WS_GUID, sizeof(WS_GUID) - 1);
	if (!EVP_Digest(buf, keylen + sizeof(WS_GUID) - 1, md, &mdlen, EVP_sha1(), NULL) ||
	    mdlen != 20)
		return -1;
	EVP_EncodeBlock((unsigned char *)out, md, 20);
	return 0;
}

/* A Sec-WebSocket-Key must be the base64 of exactly 16 bytes. */
static bool ws_key_valid(const char *k, size_t len)
{
	unsigned char out[24];
	size_t i;

	if (len != 24 || k[22] != '=' || k[23] != '=')
		return false;
	for (i = 0; i < 22; i++) {
		char ch = k[i];
		if (!((ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') ||
		      (ch >= '0' && ch <= '9') || ch == '+' || ch == '/'))
			return false;
	}
	return EVP_DecodeBlock(out, (const unsigned char *)k, 24) == 18;
}

/* Close codes that may appear on the wire (what wslay accepts). */
static uint16_t wire_code(uint16_t code)
{
	if ((code >= 1000 && code <= 1011 && code != 1004 && code != 1005 && code != 1006) ||
	    (code >= 3000 && code <= 4999))
		return code;
	return 0;
}

/* Length of `s` cut to `max` bytes without splitting a UTF-8 sequence. */
static size_t utf8_cut(const char *s, size_t max)
{
	size_t len = s ? strlen(s) : 0;

	if (len <= max)
		return len;
	len = max;
	while (len > 0 && ((unsigned char)s[len] & 0xC0) == 0x80)
		len--;
	return len;
}

/* Records the code on_close will report; the first decision wins. */
static void conn_set_code(struct weft_ws_conn *c, uint16_t code, const char *reason, size_t rlen)
{
	if (c->code)
		return;
	c->code = code;
	if (rlen > REASON_MAX)
		rlen = REASON_MAX;
	if (rlen)
		memcpy(c->reason, reason, rlen);
	c->reason[rlen] = '\0';
}

static void conn_set_codes(struct weft_ws_conn *c, uint16_t code, const char *reason)
{
	conn_set_code(c, code, reason, utf8_cut(reason, REASON_MAX));
}

/* A write to a peer that has gone must fail with EPIPE, not kill the
 * process: ignore SIGPIPE unless the application already chose. */
static void ignore_sigpipe(void)
{
	struct sigaction sa;

	if (sigaction(SIGPIPE, NULL, &sa) == 0 && sa.sa_handler == SIG_DFL) {
		memset(&sa, 0, sizeof(sa));
		sa.sa_handler = SIG_IGN;
		sigemptyset(&sa.sa_mask);
		sigaction(SIGPIPE, &sa, NULL);
	}
}

/* Parses an IPv4/IPv6 literal or "localhost". */
static int addr_parse(const char *host, int port, struct sockaddr_storage *ss)
{
	memset(ss, 0, sizeof(*ss));
	if (strcmp(host, "localhost") == 0)
		host = "127.0.0.1";
	if (uv_ip4_addr(host, port, (struct sockaddr_in *)ss) == 0)
		return 0;
	if (uv_ip6_addr(host, port, (struct sockaddr_in6 *)ss) == 0)
		return 0;
	return -1;
}

static void peer_name(struct weft_ws_conn *c)
{
	struct sockaddr_storage ss;
	int len = sizeof(ss);
	char ip[48];

	strcpy(c->peer, "?");
	if (uv_tcp_getpeername(&c->tcp, (struct sockaddr *)&ss, &len) != 0)
		return;
	if (ss.ss_family == AF_INET) {
		const struct sockaddr_in *a = (const struct sockaddr_in *)&ss;
		if (uv_ip4_name(a, ip, sizeof(ip)) == 0)
			snprintf(c->peer, sizeof(c->peer), "%s:%u", ip,
			         (unsigned)ntohs(a->sin_port));
	} else if (ss.ss_family == AF_INET6) {
		const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)&ss;
		if (uv_ip6_name(a, ip, sizeof(ip)) == 0)
			snprintf(c->peer, sizeof(c->peer), "[%s]:%u", ip,
			         (unsigned)ntohs(a->sin6_port));
	}
}

/* ------------------------------------------------------------------ */
/* frame header validation                                              */

/*
 * Checks the frame headers in buf[0..n) as they stream past, keeping state
 * across calls. Returns n when every header is acceptable (so far), else
 * the offset where the offending frame starts in buf (0 if it began in an
 * earlier read) with *code and *reason set; the bytes before that offset
 * may still be given to wslay.
 */
static size_t frame_peek(struct frame_peek *fp, bool server, uint64_t max, const uint8_t *buf,
                         size_t n, uint16_t *code, const char **reason)
{
	size_t i = 0, start = 0;

	while (i < n) {
		uint8_t b0, b1, op, l7;
		size_t ext, need;
		bool fin, masked;

		if (fp->rem > 0) {
			uint64_t k = n - i;
			if (k > fp->rem)
				k = fp->rem;
			i += (size_t)k;
			fp->rem -= k;
			continue;
		}
		if (fp->hlen == 0)
			start = i;
		fp->hdr[fp->hlen++] = buf[i++];
		if (fp->hlen < 2)
			continue;
		b0 = fp->hdr[0];
		b1 = fp->hdr[1];
		fin = b0 & 0x80;
		op = b0 & 0x0F;
		masked = b1 & 0x80;
		l7 = b1 & 0x7F;
		ext = l7 == 126 ? 2 : l7 == 127 ? 8 : 0;
		need = 2 + ext + (masked ? 4 : 0);
		if (fp->hlen == 2) {
			*code = 1002;
			if (b0 & 0x70) {
				*reason = "reserved bits set";
				goto out_bad;
			}
			if (op != 0 && op != 1 && op != 2 && op != 8 && op != 9 && op != 10) {
				*reason = "unknown opcode";
				goto out_bad;
			}
			if ((op & 8) && (!fin || l7 > 125)) {
				*reason = "bad control frame";
				goto out_bad;
			}
			if (server != masked) {
				*reason = server ? "unmasked client frame" : "masked server frame";
				goto out_bad;
			}
			if (op == 1) {
				*code = 1003;
				*reason = "text frames not supported";
				goto out_bad;
			}
			if (op == 0 && !fp->in_msg) {
				*reason = "unexpected continuation frame";
				goto out_bad;
			}
			if (op == 2 && fp->in_msg) {
				*reason = "expected a continuation frame";
				goto out_bad;
			}
		}
		if (fp->hlen == 2 + ext) {
			uint64_t len = 0;
			size_t k;

			for (k = 0; k < ext; k++)
				len = len << 8 | fp->hdr[2 + k];
			if (ext == 0)
				len = l7;
			*code = 1002;
			if ((ext == 2 && len < 126) ||
			    (ext == 8 && (len < 65536 || (len >> 63) != 0))) {
				*reason = "bad frame length";
				goto out_bad;
			}
			if (!(op & 8) && (len > max || fp->msg_len > max - len)) {
				*code = 1009;
				*reason = "message too big";
				goto out_bad;
			}
			fp->flen = len;
		}
		if (fp->hlen == need) {
			if (!(op & 8)) {
				fp->msg_len = fin ? 0 : fp->msg_len + fp->flen;
				fp->in_msg = !fin;
			}
			fp->rem = fp->flen;
			fp->hlen = 0;
		}
	}
	return n;
out_bad:
	return start;
}

/* ------------------------------------------------------------------ */
/* lifetime                                                             */

static void server_maybe_free(struct weft_ws_server *s)
{
	if (s->stopping && s->listener_closed && s->nconns == 0)
		free(s);
}

static void conn_free(struct weft_ws_conn *c)
{
	struct weft_ws_server *s = c->srv;

	if (c->ws)
		wslay_event_context_free(c->ws);
	if (c->hs)
		free(c->hs->body);
	free(c->hs);
	free(c->msg);
	free(c->obuf);
	if (s) {
		if (c->prev)
			c->prev->next = c->next;
		else
			s->conns = c->next;
		if (c->next)
			c->next->prev = c->prev;
		s->nconns--;
	}
	free(c);
	if (s)
		server_maybe_free(s);
}

static void conn_close_cb(uv_handle_t *h)
{
	struct weft_ws_conn *c = h->data;

	if (--c->nhandles == 0)
		conn_free(c);
}

/* Fires on_close once, if the upper layer knows this conn. */
static void conn_notify(struct weft_ws_conn *c)
{
	uint16_t code = c->code ? c->code : 1006;
	const char *reason = c->code ? c->reason : "connection lost";

	if (!c->seen || c->notified)
		return;
	c->notified = true;
	if (c->cb.on_close) {
		c->busy++;
		c->cb.on_close(c->ud, c, code, reason);
		c->busy--;
	}
}

/* Drops the TCP connection now (pending writes are cancelled). */
static void conn_abort(struct weft_ws_conn *c)
{
	if (c->state == ST_DEAD)
		return;
	c->state = ST_DEAD;
	conn_notify(c);
	uv_close((uv_handle_t *)&c->tcp, conn_close_cb);
	uv_close((uv_handle_t *)&c->timer, conn_close_cb);
}

static void shutdown_cb(uv_shutdown_t *req, int status)
{
	struct weft_ws_conn *c = req->data;

	if (c->state == ST_DEAD)
		return;
	if (status < 0)
		c->want_abort = true;
	conn_drive(c);
}

/*
 * Detaches the upper layer (on_close) and starts the orderly end of the
 * TCP connection: flush what is queued, send FIN, wait for the peer's EOF.
 */
static void conn_finish(struct weft_ws_conn *c)
{
	if (c->state >= ST_DRAIN)
		return;
	if (c->state == ST_CONNECTING) {
		conn_abort(c);
		return;
	}
	c->state = ST_DRAIN;
	c->state_since = uv_now(c->loop);
	conn_notify(c);
	if (!c->shutdown_started) {
		c->shutdown_started = true;
		c->shutdown_req.data = c;
		if (uv_shutdown(&c->shutdown_req, (uv_stream_t *)&c->tcp, shutdown_cb) != 0)
			c->want_abort = true;
	}
}

static void timer_cb(uv_timer_t *t)
{
	conn_drive(t->data);
}

/* Makes conn_drive run from the loop soon (never re-entrantly). */
static void conn_kick(struct weft_ws_conn *c)
{
	if (c->state != ST_DEAD)
		uv_timer_start(&c->timer, timer_cb, 0, 0);
}

/* The loop time of the current state's deadline; 0 = none. */
static uint64_t conn_deadline(const struct weft_ws_conn *c)
{
	switch (c->state) {
	case ST_CONNECTING:
	case ST_HTTP:
		return c->hs_deadline;
	case ST_REQUEST:
		/* Waiting for the upper layer has no limit here (it keeps its
		 * own); a queued response must keep draining. */
		return c->replied ? c->state_since + HTTP_STALL_MS : 0;
	case ST_OPEN:
		return c->lim.idle_timeout_ms ? c->last_read + c->lim.idle_timeout_ms : 0;
	case ST_CLOSING:
		return c->state_since + CLOSE_LINGER_MS;
	case ST_DRAIN:
		return c->state_since + DRAIN_LINGER_MS;
	default:
		return 0;
	}
}

static void conn_arm(struct weft_ws_conn *c)
{
	uint64_t d = conn_deadline(c), now = uv_now(c->loop);

	if (d == 0)
		uv_timer_stop(&c->timer);
	else
		uv_timer_start(&c->timer, timer_cb, d > now ? d - now : 0, 0);
}

/* ------------------------------------------------------------------ */
/* writing                                                              */

static void write_cb(uv_write_t *req, int status)
{
	struct write_req *wr = (struct write_req *)req;
	struct weft_ws_conn *c = wr->c;

	c->wq_bytes -= wr->len;
	free(wr->data);
	free(wr);
	if (c->state == ST_DEAD)
		return;
	if (c->state == ST_REQUEST)
		c->state_since = uv_now(c->loop); /* progress: restart the stall clock */
	if (status < 0) {
		conn_set_codes(c, 1006, uv_strerror(status));
		c->want_abort = true;
	}
	conn_drive(c);
}

/* Writes `data` (taking ownership). On failure the conn is set to abort. */
static int conn_write_take(struct weft_ws_conn *c, uint8_t *data, size_t len)
{
	struct write_req *wr;
	uv_buf_t b;
	int r;

	wr = malloc(sizeof(*wr));
	if (!wr) {
		r = UV_ENOMEM;
		goto out_fail;
	}
	wr->c = c;
	wr->data = data;
	wr->len = len;
	b = uv_buf_init((char *)data, (unsigned int)len);
	r = uv_write(&wr->req, (uv_stream_t *)&c->tcp, &b, 1, write_cb);
	if (r != 0)
		goto out_free_req;
	c->wq_bytes += len;
	return 0;
out_free_req:
	free(wr);
out_fail:
	free(data);
	conn_set_codes(c, 1006, uv_strerror(r));
	c->want_abort = true;
	return -1;
}

static int conn_write_copy(struct weft_ws_conn *c, const void *data, size_t len)
{
	uint8_t *p = malloc(len ? len : 1);

	if (!p) {
		conn_set_codes(c, 1006, "out of memory");
		c->want_abort = true;
		return -1;
	}
	memcpy(p, data, len);
	return conn_write_take(c, p, len);
}

/* Hands our pending close frame to wslay once every data message queued
 * before it has left wslay's queue: wslay sends control frames ahead of
 * queued data, and nothing at all after a close. */
static void conn_queue_close(struct weft_ws_conn *c)
{
	int r;

	c->close_pending = false;
	r = wslay_event_queue_close(c->ws, c->close_wire, (const uint8_t *)c->close_text,
	                            c->close_wire ? strlen(c->close_text) : 0);
	if (r != 0 && r != WSLAY_ERR_NO_MORE_MSG)
		c->want_abort = true;
}

/* Moves frames from wslay's queue into uv writes, up to the high water. */
static void conn_flush(struct weft_ws_conn *c)
{
	while (c->ws && !c->want_abort) {
		if (c->close_pending && wslay_event_get_queued_msg_count(c->ws) == 0)
			conn_queue_close(c);
		if (c->wq_bytes >= WRITE_HIGH_WATER)
			break;
		if (wslay_event_want_write(c->ws) && wslay_event_send(c->ws) != 0) {
			conn_set_codes(c, 1006, "send failed");
			c->want_abort = true;
			break;
		}
		if (c->obuf_len == 0) {
			if (c->close_pending && wslay_event_get_queued_msg_count(c->ws) == 0)
				continue;
			break;
		}
		if (conn_write_take(c, c->obuf, c->obuf_len) != 0) {
			c->obuf = NULL;
			c->obuf_len = c->obuf_cap = 0;
			break;
		}
		c->obuf = NULL;
		c->obuf_len = c->obuf_cap = 0;
	}
}

/* ------------------------------------------------------------------ */
/* the driver                                                           */

static void conn_timeout(struct weft_ws_conn *c)
{
	switch (c->state) {
	case ST_CONNECTING:
	case ST_HTTP:
		conn_set_codes(c, 1006, "handshake timeout");
		conn_abort(c);
		break;
	case ST_REQUEST:
		conn_set_codes(c, 1006, "response stalled");
		conn_abort(c);
		break;
	case ST_OPEN:
		conn_begin_close(c, 1001, "idle timeout", true);
		break;
	case ST_CLOSING:
		/* The peer never answered our close, or never read it. */
		conn_finish(c);
		break;
	default:
		conn_abort(c);
		break;
	}
}

/*
 * Runs at the top of every libuv callback for the conn: enforces
 * deadlines, flushes, ends the close handshake, then re-arms the timer.
 * The only place (with the read path) that may call the upper layer.
 */
static void conn_drive(struct weft_ws_conn *c)
{
	uint64_t d;

	if (c->state == ST_DEAD || c->busy)
		return;
	if (c->want_abort) {
		conn_abort(c);
		return;
	}
	d = conn_deadline(c);
	if (d != 0 && uv_now(c->loop) >= d) {
		conn_timeout(c);
		if (c->state == ST_DEAD)
			return;
	}
	if (c->state == ST_OPEN || c->state == ST_CLOSING)
		conn_flush(c);
	if (c->state == ST_REQUEST && c->replied && !c->want_abort && c->wq_bytes == 0)
		conn_finish(c); /* the response is out: FIN, then on_close */
	if (c->state == ST_CLOSING && !c->want_abort && !c->close_pending &&
	    wslay_event_get_close_sent(c->ws) && c->wq_bytes == 0 && c->obuf_len == 0 &&
	    (c->close_received || c->close_fast))
		conn_finish(c);
	if (c->want_abort) {
		conn_abort(c);
		return;
	}
	conn_arm(c);
}

/* Starts the close handshake with `code` (or drops a conn not yet open). */
static void conn_begin_close(struct weft_ws_conn *c, uint16_t code, const char *reason, bool fast)
{
	size_t rlen;
	uint16_t wc;

	switch (c->state) {
	case ST_CONNECTING:
	case ST_HTTP:
	case ST_REQUEST:
		conn_set_codes(c, code, reason);
		c->want_abort = true;
		break;
	case ST_OPEN:
		wc = wire_code(code);
		rlen = wc ? utf8_cut(reason, REASON_MAX) : 0;
		c->close_wire = wc;
		memcpy(c->close_text, reason, rlen);
		c->close_text[rlen] = '\0';
		c->close_pending = true;
		conn_set_codes(c, code ? code : 1005, reason);
		c->state = ST_CLOSING;
		c->state_since = uv_now(c->loop);
		c->close_fast = fast;
		break;
	case ST_CLOSING:
		c->close_fast = c->close_fast || fast;
		break;
	default:
		break;
	}
}

/* ------------------------------------------------------------------ */
/* wslay callbacks                                                      */

static ssize_t ws_recv_cb(wslay_event_context_ptr ctx, uint8_t *buf, size_t len, int flags,
                          void *ud)
{
	struct weft_ws_conn *c = ud;

	(void)flags;
	if (c->rlen == 0) {
		wslay_event_set_error(ctx, WSLAY_ERR_WOULDBLOCK);
		return -1;
	}
	if (len > c->rlen)
		len = c->rlen;
	memcpy(buf, c->rp, len);
	c->rp += len;
	c->rlen -= len;
	return (ssize_t)len;
}

static ssize_t ws_send_cb(wslay_event_context_ptr ctx, const uint8_t *data, size_t len, int flags,
                          void *ud)
{
	struct weft_ws_conn *c = ud;
	size_t room;

	(void)flags;
	if (c->obuf_cap - c->obuf_len < len && c->obuf_cap < OBUF_MAX) {
		size_t cap = c->obuf_cap ? c->obuf_cap : 4096;
		uint8_t *p;

		while (cap < c->obuf_len + len && cap < OBUF_MAX)
			cap *= 2;
		if (cap > OBUF_MAX)
			cap = OBUF_MAX;
		p = realloc(c->obuf, cap);
		if (p) {
			c->obuf = p;
			c->obuf_cap = cap;
		} else if (c->obuf_len == 0) {
			wslay_event_set_error(ctx, WSLAY_ERR_CALLBACK_FAILURE);
			return -1;
		}
	}
	room = c->obuf_cap - c->obuf_len;
	if (room == 0) {
		wslay_event_set_error(ctx, WSLAY_ERR_WOULDBLOCK);
		return -1;
	}
	if (len > room)
		len = room;
	memcpy(c->obuf + c->obuf_len, data, len);
	c->obuf_len += len;
	return (ssize_t)len;
}

static int ws_genmask_cb(wslay_event_context_ptr ctx, uint8_t *buf, size_t len, void *ud)
{
	(void)ctx;
	(void)ud;
	return RAND_bytes(buf, (int)len) == 1 ? 0 : -1;
}

static void ws_frame_start_cb(wslay_event_context_ptr ctx,
                              const struct wslay_event_on_frame_recv_start_arg *arg, void *ud)
{
	struct weft_ws_conn *c = ud;

	(void)ctx;
	c->op = arg->opcode;
	if (arg->opcode == WSLAY_BINARY_FRAME) {
		c->msg_len = 0;
		c->msg_oom = false;
	}
}

/* Appends payload to the message; the buffer grows with what arrived,
 * never past max_message (frame_peek guarantees the total fits). */
static void ws_frame_chunk_cb(wslay_event_context_ptr ctx,
                              const struct wslay_event_on_frame_recv_chunk_arg *arg, void *ud)
{
	struct weft_ws_conn *c = ud;
	size_t need;

	(void)ctx;
	if ((c->op != WSLAY_BINARY_FRAME && c->op != WSLAY_CONTINUATION_FRAME) || c->msg_oom ||
	    arg->data_length == 0)
		return;
	if (arg->data_length > c->lim.max_message - c->msg_len) {
		c->msg_oom = true; /* cannot happen: frame_peek checked */
		return;
	}
	need = c->msg_len + arg->data_length;
	if (need > c->msg_cap) {
		size_t cap = c->msg_cap ? c->msg_cap : 4096;
		uint8_t *p;

		while (cap < need)
			cap = cap > c->lim.max_message / 2 ? c->lim.max_message : cap * 2;
		p = realloc(c->msg, cap);
		if (!p) {
			c->msg_oom = true;
			return;
		}
		c->msg = p;
		c->msg_cap = cap;
	}
	memcpy(c->msg + c->msg_len, arg->data, arg->data_length);
	c->msg_len += arg->data_length;
}

static void ws_msg_cb(wslay_event_context_ptr ctx, const struct wslay_event_on_msg_recv_arg *arg,
                      void *ud)
{
	static const uint8_t empty[1];
	struct weft_ws_conn *c = ud;

	(void)ctx;
	if (arg->opcode == WSLAY_BINARY_FRAME) {
		if (c->msg_oom)
			conn_begin_close(c, 1011, "out of memory", true);
		else if (c->state == ST_OPEN && c->cb.on_message)
			c->cb.on_message(c->ud, c, c->msg_len ? c->msg : empty, c->msg_len);
		c->msg_len = 0;
		if (c->msg_cap > MSG_KEEP_MAX) {
			free(c->msg);
			c->msg = NULL;
			c->msg_cap = 0;
		}
	} else if (arg->opcode == WSLAY_CONNECTION_CLOSE) {
		/* wslay has already queued the echoing close frame. */
		if (arg->status_code && arg->msg_length >= 2)
			conn_set_code(c, arg->status_code, (const char *)arg->msg + 2,
			              arg->msg_length - 2);
		else
			conn_set_codes(c, 1005, "");
		c->close_received = true;
		if (c->state == ST_OPEN) {
			c->state = ST_CLOSING;
			c->state_since = uv_now(c->loop);
		}
	}
}

static const struct wslay_event_callbacks ws_callbacks = {
    .recv_callback = ws_recv_cb,
    .send_callback = ws_send_cb,
    .genmask_callback = ws_genmask_cb,
    .on_frame_recv_start_callback = ws_frame_start_cb,
    .on_frame_recv_chunk_callback = ws_frame_chunk_cb,
    .on_frame_recv_end_callback = NULL,
    .on_msg_recv_callback = ws_msg_cb,
};

/*
 * Feeds bytes from the socket to wslay, after frame_peek has vetted them.
 * Called from the read path only; on_message may fire from here.
 */
static void ws_feed(struct weft_ws_conn *c, const uint8_t *data, size_t n)
{
	uint16_t code = 0;
	const char *reason = NULL;
	size_t ok;
	int r;

	c->last_read = uv_now(c->loop);
	if (!wslay_event_get_read_enabled(c->ws))
		return;
	ok = frame_peek(&c->fp, c->server, c->lim.max_message, data, n, &code, &reason);
	c->rp = data;
	c->rlen = ok;
	c->busy++;
	r = wslay_event_recv(c->ws);
	c->busy--;
	c->rp = NULL;
	c->rlen = 0;
	if (r != 0) {
		conn_set_codes(c, 1011, "receive failed");
		c->want_abort = true;
		return;
	}
	if (ok < n && wslay_event_get_read_enabled(c->ws)) {
		wslay_event_shutdown_read(c->ws);
		conn_begin_close(c, code, reason, true);
	} else if (c->state == ST_OPEN && !wslay_event_get_read_enabled(c->ws)) {
		/* wslay refused something past the peek (a bad close code or
		 * bad UTF-8 in a close reason) and queued a close itself. */
		conn_set_codes(c, 1002, "protocol error");
		c->state = ST_CLOSING;
		c->state_since = uv_now(c->loop);
		c->close_fast = true;
	}
}

/* Handshake done: hand the conn to wslay and tell the upper layer. */
static int conn_open(struct weft_ws_conn *c, const uint8_t *rest, size_t nrest)
{
	int r;

	if (c->server)
		r = wslay_event_context_server_init(&c->ws, &ws_callbacks, c);
	else
		r = wslay_event_context_client_init(&c->ws, &ws_callbacks, c);
	if (r != 0) {
		c->ws = NULL;
		return -1;
	}
	wslay_event_config_set_no_buffering(c->ws, 1);
	wslay_event_config_set_max_recv_msg_length(c->ws, c->lim.max_message);
	free(c->hs);
	c->hs = NULL;
	c->state = ST_OPEN;
	c->seen = true;
	c->last_read = uv_now(c->loop);
	if (c->cb.on_open) {
		c->busy++;
		c->cb.on_open(c->ud, c);
		c->busy--;
	}
	if (nrest > 0 && (c->state == ST_OPEN || c->state == ST_CLOSING))
		ws_feed(c, rest, nrest);
	return 0;
}

/* ------------------------------------------------------------------ */
/* HTTP handshake                                                       */

static int hs_on_url(http_parser *p, const char *at, size_t len)
{
	struct handshake *hs = p->data;

	if (len >= sizeof(hs->url) - hs->url_len) {
		hs->url_over = true;
		return 0;
	}
	memcpy(hs->url + hs->url_len, at, len);
	hs->url_len += len;
	hs->url[hs->url_len] = '\0';
	return 0;
}

static int hs_on_header_field(http_parser *p, const char *at, size_t len)
{
	struct handshake *hs = p->data;

	if (hs->last != 1) {
		if (++hs->nheaders > HTTP_MAX_HEADERS)
			return 1;
		hs->field_len = 0;
		hs->field_over = false;
		hs->cur = -1;
		hs->last = 1;
	}
	if (len > sizeof(hs->field) - hs->field_len) {
		hs->field_over = true;
		return 0;
	}
	memcpy(hs->field + hs->field_len, at, len);
	hs->field_len += len;
	return 0;
}

static void hdr_append(struct http_hdr *h, const char *at, size_t len)
{
	if (h->over || len >= sizeof(h->v) - h->len) {
		h->over = true;
		return;
	}
	memcpy(h->v + h->len, at, len);
	h->len += len;
	h->v[h->len] = '\0';
}

static int hs_on_header_value(http_parser *p, const char *at, size_t len)
{
	struct handshake *hs = p->data;

	if (hs->last != 2) {
		int i;

		hs->last = 2;
		hs->cur = -1;
		for (i = 0; i < H_COUNT && !hs->field_over; i++) {
			if (ascii_caseeq(hs->field, hs->field_len, hdr_names[i])) {
				hs->cur = i;
				break;
			}
		}
		if (hs->cur >= 0 && hs->h[hs->cur].count++ > 0)
			hdr_append(&hs->h[hs->cur], ", ", 2);
	}
	if (hs->cur >= 0)
		hdr_append(&hs->h[hs->cur], at, len);
	return 0;
}

static bool path_is(const char *url, size_t plen, const char *path)
{
	return plen == strlen(path) && memcmp(url, path, plen) == 0;
}

/*
 * Server side: decides where the request goes as soon as its head is
 * complete, so that a request that will be refused is refused before
 * its body is read (a non-zero return stops the parser; hs->reject says
 * with which status). Client side: nothing to decide.
 */
static int hs_on_headers_complete(http_parser *p)
{
	struct handshake *hs = p->data;
	bool chunked = (p->flags & F_CHUNKED) != 0;
	bool known = p->content_length != ULLONG_MAX;
	bool body = chunked || (known && p->content_length > 0);
	size_t plen;

	hs->headers_done = true;
	if (!hs->server)
		return 0;
	plen = strcspn(hs->url, "?");
	if (hs->url_over)
		hs->reject = 400;
	else if (path_is(hs->url, plen, WS_PATH))
		hs->route = R_WS;
	else if (path_is(hs->url, plen, "/healthz"))
		hs->route = R_HEALTH;
	else if (hs->upper_ok)
		hs->route = R_UPPER;
	else
		hs->reject = 404;
	if (hs->reject == 0 && hs->route != R_UPPER) {
		if (p->method != HTTP_GET)
			hs->reject = 405;
		else if (body)
			hs->reject = 400;
	}
	if (hs->reject == 0 && hs->route == R_UPPER && !chunked && known &&
	    p->content_length > hs->max_body)
		hs->reject = 413;
	return hs->reject ? -1 : 0;
}

/* A chunk of a chunked body is announced: refuse it before it arrives if
 * the body would pass max_body (p->content_length is the chunk's size). */
static int hs_on_chunk_header(http_parser *p)
{
	struct handshake *hs = p->data;

	if (hs->route == R_UPPER && p->content_length > hs->max_body - hs->body_len) {
		hs->reject = 413;
		return -1;
	}
	return 0;
}

/* Body bytes: kept for the upper layer (R_UPPER), else only noted. The
 * buffer grows with what arrived, never past max_body. */
static int hs_on_body(http_parser *p, const char *at, size_t len)
{
	struct handshake *hs = p->data;
	size_t need;

	hs->has_body = true;
	if (hs->route != R_UPPER)
		return 0;
	if (len > hs->max_body - hs->body_len) {
		hs->reject = 413;
		return -1;
	}
	need = hs->body_len + len;
	if (need > hs->body_cap) {
		size_t cap = hs->body_cap ? hs->body_cap : BODY_MIN_CAP;
		uint8_t *b;

		while (cap < need)
			cap = cap > hs->max_body / 2 ? hs->max_body : cap * 2;
		b = realloc(hs->body, cap);
		if (!b) {
			hs->reject = 500;
			return -1;
		}
		hs->body = b;
		hs->body_cap = cap;
	}
	memcpy(hs->body + hs->body_len, at, len);
	hs->body_len = need;
	return 0;
}

/* Stops the parser after one message: what follows is frames. */
static int hs_on_message_complete(http_parser *p)
{
	struct handshake *hs = p->data;

	hs->msg_done = true;
	return 1;
}

static const http_parser_settings hs_settings = {
    .on_url = hs_on_url,
    .on_header_field = hs_on_header_field,
    .on_header_value = hs_on_header_value,
    .on_headers_complete = hs_on_headers_complete,
    .on_body = hs_on_body,
    .on_message_complete = hs_on_message_complete,
    .on_chunk_header = hs_on_chunk_header,
};

/* Feeds bytes to the parser: the head may take HTTP_MAX_BYTES in all,
 * the body is bounded by the callbacks above. Returns the bytes consumed;
 * *bad when the message is malformed or its head too large. */
static size_t hs_execute(struct handshake *hs, const uint8_t *data, size_t n, bool *bad)
{
	size_t done = 0;

	while (done < n && !hs->msg_done && HTTP_PARSER_ERRNO(&hs->hp) == HPE_OK) {
		size_t allow = n - done, np;

		if (!hs->headers_done) {
			if (allow > HTTP_MAX_BYTES - hs->nbytes)
				allow = HTTP_MAX_BYTES - hs->nbytes;
			if (allow == 0)
				break;
		}
		np = http_parser_execute(&hs->hp, &hs_settings, (const char *)data + done, allow);
		if (!hs->headers_done)
			hs->nbytes += np;
		done += np;
		if (np < allow)
			break; /* stopped: an error, or the end of the message */
	}
	*bad = !hs->msg_done && (HTTP_PARSER_ERRNO(&hs->hp) != HPE_OK ||
	                         (!hs->headers_done && hs->nbytes >= HTTP_MAX_BYTES));
	return done;
}

static const char *http_status_text(int status)
{
	switch (status) {
	case 200:
		return "OK";
	case 400:
		return "Bad Request";
	case 404:
		return "Not Found";
	case 405:
		return "Method Not Allowed";
	case 413:
		return "Content Too Large";
	case 415:
		return "Unsupported Media Type";
	case 426:
		return "Upgrade Required";
	case 500:
		return "Internal Server Error";
	case 503:
		return "Service Unavailable";
	default:
		return "Status";
	}
}

/* Queues one whole HTTP response (head and body in one write). Returns 0,
 * or -1 with the conn set to abort (WEFT_ENOMEM in *rc when out of
 * memory, else WEFT_ECLOSED). */
static int http_write(struct weft_ws_conn *c, int status, const char *ctype, const char *extra,
                      const void *body, size_t len, int *rc)
{
	char head[512];
	uint8_t *p;
	int hlen;

	hlen = snprintf(head, sizeof(head),
	                "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n%s"
	                "Cache-Control: no-store\r\nConnection: close\r\n\r\n",
	                status, http_status_text(status), ctype, len, extra);
	if (hlen < 0 || (size_t)hlen >= sizeof(head)) {
		*rc = WEFT_EINVAL;
		conn_set_codes(c, 1006, "response head too long");
		c->want_abort = true;
		return -1;
	}
	p = malloc((size_t)hlen + len);
	if (!p) {
		*rc = WEFT_ENOMEM;
		conn_set_codes(c, 1006, "out of memory");
		c->want_abort = true;
		return -1;
	}
	memcpy(p, head, (size_t)hlen);
	if (len)
		memcpy(p + hlen, body, len);
	*rc = WEFT_ECLOSED;
	return conn_write_take(c, p, (size_t)hlen + len);
}

/* Sends one of our own complete HTTP responses and ends the connection
 * (the upper layer has not seen it: no callback). */
static void http_reply(struct weft_ws_conn *c, int status)
{
	const char *extra = "", *body;
	int rc;

	switch (status) {
	case 200:
		body = "ok\n";
		break;
	case 404:
		body = "not found\n";
		break;
	case 405:
		extra = "Allow: GET\r\n";
		body = "method not allowed\n";
		break;
	case 413:
		body = "request body too large\n";
		break;
	case 426:
		extra = "Upgrade: websocket\r\nSec-WebSocket-Version: 13\r\n";
		body = "upgrade required\n";
		break;
	case 500:
		body = "internal error\n";
		break;
	default:
		status = 400;
		body = "bad request\n";
		break;
	}
	if (http_write(c, status, "text/plain", extra, body, strlen(body), &rc) == 0)
		conn_finish(c); /* not seen: no callback */
}

/* A complete request for the upper layer: the conn enters REQUEST and is
 * the upper layer's until on_close. The body is borrowed for the call. */
static void server_deliver(struct weft_ws_conn *c)
{
	static const uint8_t empty[1];
	struct handshake *hs = c->hs;
	const struct http_hdr *ct = &hs->h[H_CTYPE];
	size_t plen = strcspn(hs->url, "?"), tlen = 0;
	char path[sizeof(hs->url)], ctype[HDR_VALUE_MAX];
	struct weft_ws_http_req req;
	const char *t;

	memcpy(path, hs->url, plen);
	path[plen] = '\0';
	if (ct->count == 1 && !ct->over) {
		t = trim(ct->v, ct->len, &tlen);
		memcpy(ctype, t, tlen);
	}
	ctype[tlen] = '\0';
	req.method = http_method_str((enum http_method)hs->hp.method);
	req.path = path;
	req.query = hs->url[plen] == '?' ? hs->url + plen + 1 : "";
	req.content_type = ctype;
	req.body = hs->body ? hs->body : empty;
	req.body_len = hs->body_len;
	c->state = ST_REQUEST;
	c->state_since = uv_now(c->loop);
	c->seen = true;
	c->busy++;
	c->cb.on_http(c->ud, c, &req);
	c->busy--;
	free(hs->body);
	free(hs);
	c->hs = NULL;
}

/* Decides what to do with a complete request (server side). */
static void server_route(struct weft_ws_conn *c, const uint8_t *rest, size_t nrest)
{
	struct handshake *hs = c->hs;
	const struct http_hdr *ver = &hs->h[H_VERSION], *key = &hs->h[H_KEY];
	size_t vlen, klen;
	const char *v, *k;
	char accept[32], resp[160];
	int len;

	/* hs_on_headers_complete has refused every other case. */
	if (hs->route == R_UPPER) {
		server_deliver(c); /* what follows the request is ignored */
		return;
	}
	if (hs->route == R_HEALTH) {
		http_reply(c, 200);
		return;
	}
	if (hs->route != R_WS || hs->hp.method != HTTP_GET || hs->has_body) {
		http_reply(c, 400);
		return;
	}
	v = trim(ver->v, ver->len, &vlen);
	k = trim(key->v, key->len, &klen);
	if (!has_token(&hs->h[H_UPGRADE], "websocket") || ver->count != 1 || ver->over ||
	    !(vlen == 2 && memcmp(v, "13", 2) == 0)) {
		http_reply(c, 426);
		return;
	}
	if (!has_token(&hs->h[H_CONNECTION], "upgrade") || key->count != 1 || key->over ||
	    !ws_key_valid(k, klen) || hs->hp.http_major != 1 || hs->hp.http_minor < 1) {
		http_reply(c, 400);
		return;
	}
	if (ws_accept_of(k, klen, accept) != 0) {
		http_reply(c, 500);
		return;
	}
	len = snprintf(resp, sizeof(resp),
	               "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
	               "Connection: Upgrade\r\nSec-WebSocket-Accept: %s\r\n\r\n",
	               accept);
	if (conn_write_copy(c, resp, (size_t)len) != 0)
		return;
	if (conn_open(c, rest, nrest) != 0) {
		c->want_abort = true; /* out of memory; the peer sees a drop */
		return;
	}
}

static void server_http_feed(struct weft_ws_conn *c, const uint8_t *data, size_t n)
{
	struct handshake *hs = c->hs;
	bool bad;
	size_t np = hs_execute(hs, data, n, &bad);

	if (hs->reject) {
		http_reply(c, hs->reject);
		return;
	}
	if (hs->msg_done) {
		server_route(c, data + np, n - np);
		return;
	}
	if (bad) {
		http_reply(c, 400);
		return;
	}
	if (!hs->headers_done)
		return;
	/* A body is on its way: the head had to arrive in time, the body
	 * must keep arriving (no gap longer than the handshake timeout). */
	if (c->lim.handshake_timeout_ms)
		c->hs_deadline = uv_now(c->loop) + c->lim.handshake_timeout_ms;
	if (hs->route == R_UPPER && !hs->continue_sent &&
	    has_token(&hs->h[H_EXPECT], "100-continue")) {
		static const char cont[] = "HTTP/1.1 100 Continue\r\n\r\n";

		hs->continue_sent = true;
		(void)conn_write_copy(c, cont, sizeof(cont) - 1);
	}
}

static void client_fail(struct weft_ws_conn *c, const char *reason)
{
	conn_set_codes(c, 1006, reason);
	c->want_abort = true;
}

/* Checks the server's answer to our upgrade request. */
static void client_http_feed(struct weft_ws_conn *c, const uint8_t *data, size_t n)
{
	struct handshake *hs = c->hs;
	const struct http_hdr *acc = &hs->h[H_ACCEPT];
	char why[64];
	const char *a;
	size_t alen, np;
	bool bad;

	np = hs_execute(hs, data, n, &bad);
	if (!hs->headers_done) {
		if (bad)
			client_fail(c, "handshake failed: bad HTTP response");
		return;
	}
	if (hs->hp.status_code != 101) {
		snprintf(why, sizeof(why), "handshake failed: HTTP %u", hs->hp.status_code);
		client_fail(c, why);
		return;
	}
	a = trim(acc->v, acc->len, &alen);
	if (!hs->hp.upgrade || !has_token(&hs->h[H_UPGRADE], "websocket") ||
	    !has_token(&hs->h[H_CONNECTION], "upgrade") || acc->count != 1 || acc->over ||
	    alen != strlen(hs->expect) || memcmp(a, hs->expect, alen) != 0) {
		client_fail(c, "handshake failed: bad upgrade response");
		return;
	}
	if (conn_open(c, data + np, n - np) != 0)
		client_fail(c, "out of memory");
}

/* ------------------------------------------------------------------ */
/* reading                                                              */

static void alloc_cb(uv_handle_t *h, size_t hint, uv_buf_t *buf)
{
	struct weft_ws_conn *c = h->data;

	(void)hint;
	*buf = uv_buf_init((char *)c->rbuf, sizeof(c->rbuf));
}

static void read_cb(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
	struct weft_ws_conn *c = s->data;
	const uint8_t *data = (const uint8_t *)buf->base;
	size_t n = (size_t)nread;

	if (nread == 0 || c->state == ST_DEAD)
		return;
	if (nread < 0) {
		if (c->state == ST_HTTP && !c->server)
			conn_set_codes(c, 1006, "handshake failed: connection closed");
		else if (nread == UV_EOF)
			conn_set_codes(c, 1006, "connection closed by peer");
		else
			conn_set_codes(c, 1006, uv_strerror((int)nread));
		c->want_abort = true;
		conn_drive(c);
		return;
	}
	switch (c->state) {
	case ST_HTTP:
		if (c->server)
			server_http_feed(c, data, n);
		else
			client_http_feed(c, data, n);
		break;
	case ST_OPEN:
	case ST_CLOSING:
		ws_feed(c, data, n);
		break;
	default:
		break; /* DRAIN: the upper layer is gone; discard */
	}
	conn_drive(c);
}

/* ------------------------------------------------------------------ */
/* conn creation                                                        */

static struct weft_ws_conn *conn_new(uv_loop_t *loop, const struct weft_ws_limits *lim,
                                     const struct weft_ws_callbacks *cb, void *ud, bool server)
{
	struct weft_ws_conn *c;

	c = calloc(1, sizeof(*c));
	if (!c)
		goto out;
	c->hs = calloc(1, sizeof(*c->hs));
	if (!c->hs)
		goto out_free_conn;
	http_parser_init(&c->hs->hp, server ? HTTP_REQUEST : HTTP_RESPONSE);
	c->hs->hp.data = c->hs;
	c->hs->cur = -1;
	c->loop = loop;
	if (lim)
		c->lim = *lim;
	else
		weft__ws_limits_init(&c->lim);
	c->cb = *cb;
	c->hs->server = server;
	c->hs->upper_ok = server && cb->on_http != NULL;
	c->hs->max_body = c->lim.max_message;
	c->ud = ud;
	c->server = server;
	strcpy(c->peer, "?");
	if (uv_tcp_init(loop, &c->tcp) != 0)
		goto out_free_hs;
	c->tcp.data = c;
	c->nhandles = 1;
	uv_timer_init(loop, &c->timer); /* cannot fail */
	c->timer.data = c;
	c->nhandles = 2;
	c->state_since = uv_now(loop);
	if (c->lim.handshake_timeout_ms)
		c->hs_deadline = uv_now(loop) + c->lim.handshake_timeout_ms;
	return c;
out_free_hs:
	free(c->hs);
out_free_conn:
	free(c);
	c = NULL;
out:
	return c;
}

/* ------------------------------------------------------------------ */
/* server                                                               */

static void listener_close_cb(uv_handle_t *h)
{
	struct weft_ws_server *s = h->data;

	s->listener_closed = true;
	server_maybe_free(s);
}

static void on_connection(uv_stream_t *l, int status)
{
	struct weft_ws_server *s = l->data;
	struct weft_ws_conn *c;

	if (status < 0 || s->stopping)
		return;
	c = conn_new(s->loop, &s->lim, &s->cb, s->ud, true);
	if (!c)
		return;
	c->srv = s;
	c->next = s->conns;
	if (s->conns)
		s->conns->prev = c;
	s->conns = c;
	s->nconns++;
	c->state = ST_HTTP;
	if (uv_accept(l, (uv_stream_t *)&c->tcp) != 0 ||
	    uv_read_start((uv_stream_t *)&c->tcp, alloc_cb, read_cb) != 0) {
		conn_abort(c);
		return;
	}
	uv_tcp_nodelay(&c->tcp, 1);
	peer_name(c);
	conn_arm(c);
}

int weft__ws_server_start(uv_loop_t *loop, const char *host, int port,
                          const struct weft_ws_limits *limits, const struct weft_ws_callbacks *cb,
                          void *ud, struct weft_ws_server **out, char *errbuf, size_t errlen)
{
	struct weft_ws_server *s;
	struct sockaddr_storage ss;
	int len = sizeof(ss), r, rc;

	if (errbuf && errlen)
		errbuf[0] = '\0';
	if (!loop || !host || !cb || !out || port < 0 || port > 65535 ||
	    addr_parse(host, port, &ss) != 0) {
		if (errbuf && errlen)
			snprintf(errbuf, errlen, "bad listen address '%s' port %d",
			         host ? host : "(null)", port);
		rc = WEFT_EINVAL;
		goto out;
	}
	s = calloc(1, sizeof(*s));
	if (!s) {
		rc = WEFT_ENOMEM;
		goto out;
	}
	s->loop = loop;
	if (limits)
		s->lim = *limits;
	else
		weft__ws_limits_init(&s->lim);
	s->cb = *cb;
	s->ud = ud;
	r = uv_tcp_init(loop, &s->tcp);
	if (r != 0) {
		rc = WEFT_EIO;
		goto out_free_server;
	}
	s->tcp.data = s;
	r = uv_tcp_bind(&s->tcp, (const struct sockaddr *)&ss, 0);
	if (r == 0)
		r = uv_listen((uv_stream_t *)&s->tcp, 128, on_connection);
	if (r == 0)
		r = uv_tcp_getsockname(&s->tcp, (struct sockaddr *)&ss, &len);
	if (r != 0) {
		rc = WEFT_EIO;
		goto out_close_listener;
	}
	s->port = ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
	                                         : ((struct sockaddr_in *)&ss)->sin_port);
	ignore_sigpipe();
	*out = s;
	return WEFT_OK;
out_close_listener:
	if (errbuf && errlen)
		snprintf(errbuf, errlen, "listen on %s:%d: %s", host, port, uv_strerror(r));
	/* The handle is in the loop now: it is freed by its close callback
	 * the next time the loop runs. */
	s->stopping = true;
	uv_close((uv_handle_t *)&s->tcp, listener_close_cb);
	return rc;
out_free_server:
	free(s);
out:
	return rc;
}

int weft__ws_server_port(const struct weft_ws_server *s)
{
	return s ? s->port : -1;
}

void weft__ws_server_stop(struct weft_ws_server *s)
{
	struct weft_ws_conn *c;

	if (!s || s->stopping)
		return;
	s->stopping = true;
	uv_close((uv_handle_t *)&s->tcp, listener_close_cb);
	for (c = s->conns; c; c = c->next) {
		/* An answered HTTP request finishes sending on its own. */
		if (c->state >= ST_DRAIN || (c->state == ST_REQUEST && c->replied))
			continue;
		conn_begin_close(c, 1001, "server shutting down", true);
		if (!c->busy)
			conn_flush(c);
		conn_kick(c);
	}
}

/* ------------------------------------------------------------------ */
/* client                                                               */

/* Splits "ws://HOST:PORT[/v1/ws]"; HOST may be "[v6]". */
static int url_parse(const char *url, char *host, size_t hostcap, int *port, bool *v6)
{
	const char *p, *end;
	long v = 0;

	if (strncmp(url, "ws://", 5) != 0)
		return -1;
	p = url + 5;
	*v6 = *p == '[';
	if (*v6) {
		end = strchr(++p, ']');
		if (!end)
			return -1;
	} else {
		end = p + strcspn(p, ":/");
	}
	if (end == p || (size_t)(end - p) >= hostcap)
		return -1;
	memcpy(host, p, (size_t)(end - p));
	host[end - p] = '\0';
	p = end + (*v6 ? 1 : 0);
	if (*p++ != ':')
		return -1;
	if (*p < '0' || *p > '9')
		return -1;
	while (*p >= '0' && *p <= '9') {
		v = v * 10 + (*p++ - '0');
		if (v > 65535)
			return -1;
	}
	if (v == 0 || (*p != '\0' && strcmp(p, WS_PATH) != 0))
		return -1;
	*port = (int)v;
	return 0;
}

static void connect_cb(uv_connect_t *req, int status)
{
	struct weft_ws_conn *c = req->data;
	unsigned char nonce[16];
	char key[32], buf[384];
	int len;

	if (c->state == ST_DEAD)
		return;
	if (status < 0) {
		client_fail(c,
		            status == UV_ECONNREFUSED ? "connection refused" : uv_strerror(status));
		goto out_drive;
	}
	uv_tcp_nodelay(&c->tcp, 1);
	peer_name(c);
	if (RAND_bytes(nonce, sizeof(nonce)) != 1) {
		client_fail(c, "no random bytes for the key");
		goto out_drive;
	}
	EVP_EncodeBlock((unsigned char *)key, nonce, sizeof(nonce));
	if (ws_accept_of(key, strlen(key), c->hs->expect) != 0) {
		client_fail(c, "SHA-1 failed");
		goto out_drive;
	}
	len = snprintf(buf, sizeof(buf),
	               "GET " WS_PATH " HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\n"
	               "Connection: Upgrade\r\nSec-WebSocket-Key: %s\r\n"
	               "Sec-WebSocket-Version: 13\r\n\r\n",
	               c->host, key);
	if (conn_write_copy(c, buf, (size_t)len) != 0)
		goto out_drive;
	if (uv_read_start((uv_stream_t *)&c->tcp, alloc_cb, read_cb) != 0) {
		client_fail(c, "read failed");
		goto out_drive;
	}
	c->state = ST_HTTP;
out_drive:
	conn_drive(c);
}

int weft__ws_connect(uv_loop_t *loop, const char *url, const struct weft_ws_limits *limits,
                     const struct weft_ws_callbacks *cb, void *ud, struct weft_ws_conn **out)
{
	struct weft_ws_conn *c;
	struct sockaddr_storage ss;
	char host[64];
	int port, r;
	bool v6;

	if (!loop || !url || !cb || !out || url_parse(url, host, sizeof(host), &port, &v6) != 0 ||
	    addr_parse(host, port, &ss) != 0)
		return WEFT_EINVAL;
	c = conn_new(loop, limits, cb, ud, false);
	if (!c)
		return WEFT_ENOMEM;
	snprintf(c->host, sizeof(c->host), v6 ? "[%s]:%d" : "%s:%d", host, port);
	c->state = ST_CONNECTING;
	c->seen = true;
	ignore_sigpipe();
	c->connect_req.data = c;
	r = uv_tcp_connect(&c->connect_req, &c->tcp, (const struct sockaddr *)&ss, connect_cb);
	if (r != 0) {
		/* Reported like any failed connect: on_close from the loop. */
		client_fail(c, r == UV_ECONNREFUSED ? "connection refused" : uv_strerror(r));
		conn_kick(c);
	} else {
		conn_arm(c);
	}
	*out = c;
	return WEFT_OK;
}

/* ------------------------------------------------------------------ */
/* per-connection API                                                   */

int weft__ws_send(struct weft_ws_conn *c, const void *data, size_t len)
{
	struct wslay_event_msg m;
	size_t q;
	int r;

	if (!c || (!data && len))
		return WEFT_EINVAL;
	if (c->state != ST_OPEN || c->want_abort)
		return WEFT_ECLOSED;
	if (len > c->lim.max_message)
		return WEFT_ETOOBIG;
	q = weft__ws_queued(c);
	if (q > c->lim.max_send_queue || len > c->lim.max_send_queue - q) {
		/* The peer does not keep up. Its socket is full, so a close
		 * frame would never get through: drop the connection. */
		conn_set_codes(c, 1008, "send queue overflow");
		c->state = ST_CLOSING;
		c->state_since = uv_now(c->loop);
		c->want_abort = true;
		conn_kick(c);
		return WEFT_ETOOBIG;
	}
	m.opcode = WSLAY_BINARY_FRAME;
	m.msg = data;
	m.msg_length = len;
	r = wslay_event_queue_msg(c->ws, &m);
	if (r == WSLAY_ERR_NOMEM)
		return WEFT_ENOMEM;
	if (r != 0)
		return WEFT_ECLOSED;
	if (!c->busy) {
		conn_flush(c);
		if (c->want_abort)
			conn_kick(c);
	}
	return WEFT_OK;
}

void weft__ws_close(struct weft_ws_conn *c, uint16_t code, const char *reason)
{
	if (!c || c->state >= ST_CLOSING)
		return;
	conn_begin_close(c, code, reason ? reason : "", false);
	if (!c->busy)
		conn_flush(c);
	conn_kick(c);
}

int weft__ws_http_reply(struct weft_ws_conn *c, int status, const char *content_type,
                        const char *extra_headers, const void *body, size_t len)
{
	int rc;

	if (!c || (!body && len) || status < 200 || status > 599 || !content_type ||
	    strpbrk(content_type, "\r\n"))
		return WEFT_EINVAL;
	if (c->state != ST_REQUEST || c->replied || c->want_abort)
		return WEFT_ECLOSED;
	c->replied = true;
	c->state_since = uv_now(c->loop);
	if (http_write(c, status, content_type, extra_headers ? extra_headers : "", body, len,
	               &rc) != 0) {
		conn_kick(c);
		return rc;
	}
	conn_set_codes(c, 1000, "response sent");
	conn_kick(c);
	return WEFT_OK;
}

size_t weft__ws_queued(const struct weft_ws_conn *c)
{
	size_t q = c->obuf_len + c->wq_bytes;

	if (c->ws)
		q += wslay_event_get_queued_msg_length(c->ws);
	return q;
}

void weft__ws_set_data(struct weft_ws_conn *c, void *data)
{
	c->data = data;
}

void *weft__ws_get_data(const struct weft_ws_conn *c)
{
	return c->data;
}

const char *weft__ws_peer(const struct weft_ws_conn *c)
{
	return c->peer;
}
