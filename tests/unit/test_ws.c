/*
 * test_ws.c - the WebSocket transport (net/ws.c), in process.
 *
 * One uv loop on one thread runs an echo server, weft__ws_connect clients
 * and "raw" TCP clients that write bytes built by hand: bad HTTP, bad and
 * oversized frames, a socket dropped mid-frame, a peer that never reads.
 * Callbacks only record what happened; the asserts run after the loop has
 * finished, and every test ends with uv_loop_close() == 0 (no handle
 * leaked). A safety timer turns a hang into a failure.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "weft/weft.h"
#include "net/ws.h"

#define SAFETY_MS 20000
#define MAX_GOOD 4
#define MAX_RAW 32
#define RAW_RX_MAX (4u << 20)
#define FLOOD_MSG (256u << 10)

/* RFC 6455's sample key, and the accept value it must produce. */
#define SAMPLE_KEY "dGhlIHNhbXBsZSBub25jZQ=="
#define SAMPLE_ACCEPT "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
#define UPGRADE_REQ                                                                                \
	"GET /v1/ws HTTP/1.1\r\nHost: test\r\nUpgrade: websocket\r\n"                              \
	"Connection: keep-alive, Upgrade\r\nSec-WebSocket-Key: " SAMPLE_KEY "\r\n"                 \
	"Sec-WebSocket-Version: 13\r\n\r\n"

struct env;

/* A weft__ws_connect client that sends `total` messages (at most `window`
 * bytes unanswered) and checks each echo. */
struct goodc {
	struct env *env;        /* owning test */
	struct weft_ws_conn *c; /* the connection */
	int total;              /* messages to exchange */
	int sent;               /* messages sent */
	int recvd;              /* echoes received */
	size_t inflight;        /* bytes sent, not yet echoed */
	size_t window;          /* cap on inflight */
	size_t *sizes;          /* size of message i */
	uint8_t *scratch;       /* message being built */
	int mismatches;         /* echoes that differed */
	int send_errors;        /* weft__ws_send failures */
	bool opened;            /* on_open fired */
	bool done;              /* all echoes in (or gave up) */
	bool finish_on_close;   /* the scenario ends at on_close */
	int closes;             /* on_close count (must end at 1) */
	uint16_t close_code;    /* on_close's code */
	char close_reason[128]; /* on_close's reason */
};

/* A raw TCP client: writes `tx`, reads everything into `rx`. */
struct rawc {
	uv_tcp_t tcp;          /* the socket; data = this */
	uv_connect_t creq;     /* connect request */
	uv_write_t wreq;       /* the write of tx */
	uv_write_t wreq2;      /* the close_on_echo write */
	struct env *env;       /* owning test */
	const char *name;      /* for failure messages */
	uint8_t *tx;           /* bytes to send once connected */
	size_t txlen;          /* bytes at tx */
	bool drop_after_write; /* close the socket once tx is written */
	bool no_read;          /* never read (a stalled peer) */
	bool close_on_echo;    /* send a close once "hello" and a pong came */
	bool sent_close;       /* that close was sent */
	uint8_t *rx;           /* bytes received */
	size_t rxlen;          /* bytes at rx */
	bool eof;              /* the server closed */
	bool closed;           /* uv_close called */
	int connect_status;    /* connect's status */
	uint64_t t_start;      /* loop time at start */
	uint64_t t_end;        /* loop time at eof/close */
};

struct env {
	uv_loop_t loop;                  /* the test's loop */
	uv_timer_t safety;               /* fails the test instead of hanging */
	struct weft_ws_server *srv;      /* the echo server */
	int port;                        /* its port */
	int pending;                     /* scenarios not yet finished */
	bool finishing;                  /* good clients asked to close */
	bool stopped;                    /* server stopped */
	bool timed_out;                  /* the safety timer fired */
	int srv_open;                    /* server on_open count */
	int srv_close;                   /* server on_close count */
	int by_code[16];                 /* server on_close by code-1000 */
	int other_codes;                 /* server on_close with other codes */
	struct goodc *goods[MAX_GOOD];   /* good clients */
	int ngoods;                      /* entries in goods */
	struct rawc *raws[MAX_RAW];      /* raw clients */
	int nraws;                       /* entries in raws */
	struct rawc *flood_raw;          /* the raw client that never reads */
	struct weft_ws_conn *flood_conn; /* its server-side conn */
	int flood_rc;                    /* weft__ws_send's last result */
	size_t flood_bytes;              /* bytes queued before it failed */
	bool flood_closed_1008;          /* its on_close came with 1008 */
	uint8_t *flood_buf;              /* FLOOD_MSG bytes */
};

static uint64_t rng_state;

static uint64_t rng_next(void)
{
	uint64_t x = rng_state;

	x ^= x << 13;
	x ^= x >> 7;
	x ^= x << 17;
	rng_state = x;
	return x;
}

static uint8_t msg_byte(int i, size_t j)
{
	return (uint8_t)(i * 131 + j * 7 + (j >> 9));
}

static void env_stop(struct env *e);
struct rawc;
static void raw_close(struct rawc *r);

/* ------------------------------------------------------------------ */
/* the echo server                                                      */

static void srv_on_open(void *ud, struct weft_ws_conn *c)
{
	struct env *e = ud;

	(void)c;
	e->srv_open++;
}

static void srv_on_message(void *ud, struct weft_ws_conn *c, const uint8_t *data, size_t len)
{
	struct env *e = ud;
	int rc, i;

	if (len == 5 && memcmp(data, "FLOOD", 5) == 0) {
		/* Push until the queue limit trips. */
		e->flood_conn = c;
		for (i = 0; i < 100000; i++) {
			rc = weft__ws_send(c, e->flood_buf, FLOOD_MSG);
			e->flood_rc = rc;
			if (rc != WEFT_OK)
				break;
			e->flood_bytes += FLOOD_MSG;
		}
		return;
	}
	weft__ws_send(c, data, len);
}

static void srv_on_close(void *ud, struct weft_ws_conn *c, uint16_t code, const char *reason)
{
	struct env *e = ud;

	(void)reason;
	e->srv_close++;
	if (code >= 1000 && code < 1016)
		e->by_code[code - 1000]++;
	else
		e->other_codes++;
	if (c == e->flood_conn) {
		e->flood_closed_1008 = code == 1008 && strcmp(reason, "send queue overflow") == 0;
		e->flood_conn = NULL;
		if (e->flood_raw)
			raw_close(e->flood_raw);
	}
}

static const struct weft_ws_callbacks srv_cbs = {
    .on_open = srv_on_open,
    .on_message = srv_on_message,
    .on_close = srv_on_close,
};

/* ------------------------------------------------------------------ */
/* test environment                                                     */

static void scenario_done(struct env *e)
{
	if (--e->pending == 0)
		env_stop(e);
}

static void safety_cb(uv_timer_t *t)
{
	struct env *e = t->data;

	e->timed_out = true;
	env_stop(e);
}

static void env_init(struct env *e, const struct weft_ws_limits *lim)
{
	char err[128];
	int rc;

	memset(e, 0, sizeof(*e));
	assert_int_equal(uv_loop_init(&e->loop), 0);
	uv_timer_init(&e->loop, &e->safety);
	e->safety.data = e;
	uv_timer_start(&e->safety, safety_cb, SAFETY_MS, 0);
	rc = weft__ws_server_start(&e->loop, "127.0.0.1", 0, lim, &srv_cbs, e, &e->srv, err,
	                           sizeof(err));
	if (rc != WEFT_OK)
		fail_msg("server_start: %d %s", rc, err);
	e->port = weft__ws_server_port(e->srv);
	assert_true(e->port > 0);
	e->flood_buf = calloc(1, FLOOD_MSG);
	assert_non_null(e->flood_buf);
}

static void raw_close_cb(uv_handle_t *h);

/* Everything is done (or the safety timer fired): close what is left. */
static void env_stop(struct env *e)
{
	int i;

	if (e->stopped)
		return;
	e->stopped = true;
	for (i = 0; i < e->ngoods; i++) {
		if (e->goods[i]->closes == 0)
			weft__ws_close(e->goods[i]->c, 1000, "bye");
	}
	for (i = 0; i < e->nraws; i++) {
		struct rawc *r = e->raws[i];
		if (!r->closed) {
			r->closed = true;
			uv_close((uv_handle_t *)&r->tcp, NULL);
		}
	}
	weft__ws_server_stop(e->srv);
	uv_close((uv_handle_t *)&e->safety, NULL);
}

static void env_run_and_close(struct env *e)
{
	uv_run(&e->loop, UV_RUN_DEFAULT);
	if (e->timed_out)
		fail_msg("timed out with %d scenarios pending", e->pending);
	assert_int_equal(uv_loop_close(&e->loop), 0);
}

/* Frees the clients' records once the checks are done. */
static void env_free(struct env *e)
{
	int i;

	for (i = 0; i < e->ngoods; i++) {
		free(e->goods[i]->sizes);
		free(e->goods[i]->scratch);
		free(e->goods[i]);
	}
	for (i = 0; i < e->nraws; i++) {
		free(e->raws[i]->tx);
		free(e->raws[i]->rx);
		free(e->raws[i]);
	}
	free(e->flood_buf);
}

/* ------------------------------------------------------------------ */
/* good clients                                                         */

static void good_pump(struct goodc *g)
{
	while (g->sent < g->total && (g->inflight < g->window || g->inflight == 0)) {
		int i = g->sent;
		size_t j, len = g->sizes[i];
		int rc;

		for (j = 0; j < len; j++)
			g->scratch[j] = msg_byte(i, j);
		rc = weft__ws_send(g->c, g->scratch, len);
		if (rc != WEFT_OK) {
			g->send_errors++;
			return;
		}
		g->sent++;
		g->inflight += len;
	}
}

static void good_on_open(void *ud, struct weft_ws_conn *c)
{
	struct goodc *g = ud;

	(void)c;
	g->opened = true;
	if (g->total == 0) {
		g->done = true;
		if (!g->finish_on_close)
			scenario_done(g->env);
		return;
	}
	good_pump(g);
}

static void good_on_message(void *ud, struct weft_ws_conn *c, const uint8_t *data, size_t len)
{
	struct goodc *g = ud;
	size_t j;

	(void)c;
	if (g->done || g->recvd >= g->total) {
		g->mismatches++;
		return;
	}
	if (len != g->sizes[g->recvd]) {
		g->mismatches++;
	} else {
		for (j = 0; j < len; j++) {
			if (data[j] != msg_byte(g->recvd, j)) {
				g->mismatches++;
				break;
			}
		}
	}
	g->inflight -= g->sizes[g->recvd];
	g->recvd++;
	if (g->recvd == g->total) {
		g->done = true;
		scenario_done(g->env);
		return;
	}
	good_pump(g);
}

static void good_on_close(void *ud, struct weft_ws_conn *c, uint16_t code, const char *reason)
{
	struct goodc *g = ud;

	(void)c;
	g->closes++;
	g->close_code = code;
	snprintf(g->close_reason, sizeof(g->close_reason), "%s", reason);
	if (g->finish_on_close || !g->done) {
		g->done = true;
		scenario_done(g->env);
	}
}

static const struct weft_ws_callbacks good_cbs = {
    .on_open = good_on_open,
    .on_message = good_on_message,
    .on_close = good_on_close,
};

/* Sizes: the framing boundaries, some large ones, mostly small. */
static struct goodc *good_start(struct env *e, int total, size_t window, bool big)
{
	static const size_t fixed[] = {0, 1, 125, 126, 127, 65535, 65536, 65537, 1048576};
	struct goodc *g = calloc(1, sizeof(*g));
	char url[64];
	size_t maxlen = 0;
	int i, rc;

	assert_non_null(g);
	g->env = e;
	g->total = total;
	g->window = window;
	g->sizes = calloc((size_t)total + 1, sizeof(size_t));
	assert_non_null(g->sizes);
	for (i = 0; i < total; i++) {
		size_t s;
		if (big && i < (int)(sizeof(fixed) / sizeof(fixed[0])))
			s = fixed[i];
		else if (big && i % 50 == 0)
			s = (size_t)(rng_next() % (1048576 + 1));
		else
			s = (size_t)(rng_next() % 4097);
		g->sizes[i] = s;
		if (s > maxlen)
			maxlen = s;
	}
	g->scratch = malloc(maxlen + 1);
	assert_non_null(g->scratch);
	snprintf(url, sizeof(url), "ws://127.0.0.1:%d/v1/ws", e->port);
	rc = weft__ws_connect(&e->loop, url, NULL, &good_cbs, g, &g->c);
	assert_int_equal(rc, WEFT_OK);
	assert_true(e->ngoods < MAX_GOOD);
	e->goods[e->ngoods++] = g;
	e->pending++;
	return g;
}

static void good_check(const struct goodc *g)
{
	if (g->mismatches || g->send_errors || g->recvd != g->total || !g->opened)
		fail_msg("good client: opened=%d recvd=%d/%d mismatches=%d send_errors=%d "
		         "close=%u '%s'",
		         g->opened, g->recvd, g->total, g->mismatches, g->send_errors,
		         g->close_code, g->close_reason);
	assert_int_equal(g->closes, 1);
	if (g->close_code != 1000 && g->close_code != 1001)
		fail_msg("good client closed with %u '%s'", g->close_code, g->close_reason);
}

/* ------------------------------------------------------------------ */
/* raw clients                                                          */

static void raw_close_cb(uv_handle_t *h)
{
	struct rawc *r = h->data;

	scenario_done(r->env);
}

static void raw_close(struct rawc *r)
{
	if (r->closed)
		return;
	r->closed = true;
	r->t_end = uv_now(&r->env->loop);
	uv_close((uv_handle_t *)&r->tcp, raw_close_cb);
}

static bool raw_has_frame(const struct rawc *r, uint8_t op, const void *data, size_t len);
static size_t frame_build(uint8_t *out, uint8_t b0, uint64_t announce, const void *payload,
                          size_t plen, const uint8_t *mask);
static void raw_write_cb(uv_write_t *req, int status);

static void raw_alloc_cb(uv_handle_t *h, size_t hint, uv_buf_t *buf)
{
	(void)h;
	buf->base = malloc(hint);
	buf->len = buf->base ? hint : 0;
}

static void raw_read_cb(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
	struct rawc *r = s->data;

	if (nread > 0 && r->rxlen + (size_t)nread <= RAW_RX_MAX) {
		uint8_t *p = realloc(r->rx, r->rxlen + (size_t)nread);
		if (p) {
			memcpy(p + r->rxlen, buf->base, (size_t)nread);
			r->rx = p;
			r->rxlen += (size_t)nread;
		}
	}
	free(buf->base);
	if (nread < 0) {
		r->eof = true;
		raw_close(r);
		return;
	}
	if (r->close_on_echo && !r->sent_close && raw_has_frame(r, 0x2, "hello", 5) &&
	    raw_has_frame(r, 0xA, "p", 1)) {
		static const uint8_t mask[4] = {1, 2, 3, 4};
		static uint8_t frame[16];
		uv_buf_t b;

		r->sent_close = true;
		b = uv_buf_init((char *)frame, (unsigned int)frame_build(frame, 0x88, 5,
		                                                         "\x03\xe8"
		                                                         "bye",
		                                                         5, mask));
		r->wreq2.data = r;
		uv_write(&r->wreq2, (uv_stream_t *)&r->tcp, &b, 1, raw_write_cb);
	}
}

static void raw_write_cb(uv_write_t *req, int status)
{
	struct rawc *r = req->data;

	(void)status;
	if (r->drop_after_write)
		raw_close(r);
}

static void raw_connect_cb(uv_connect_t *req, int status)
{
	struct rawc *r = req->data;
	uv_buf_t b;

	r->connect_status = status;
	if (r->closed)
		return;
	if (status < 0) {
		raw_close(r);
		return;
	}
	if (!r->no_read)
		uv_read_start((uv_stream_t *)&r->tcp, raw_alloc_cb, raw_read_cb);
	if (r->txlen) {
		b = uv_buf_init((char *)r->tx, (unsigned int)r->txlen);
		r->wreq.data = r;
		uv_write(&r->wreq, (uv_stream_t *)&r->tcp, &b, 1, raw_write_cb);
	} else if (r->drop_after_write) {
		raw_close(r);
	}
}

/* Starts a raw client that sends `tx` (copied). */
static struct rawc *raw_start(struct env *e, const char *name, const void *tx, size_t txlen)
{
	struct rawc *r = calloc(1, sizeof(*r));
	struct sockaddr_in sa;

	assert_non_null(r);
	r->env = e;
	r->name = name;
	r->tx = malloc(txlen + 1);
	assert_non_null(r->tx);
	memcpy(r->tx, tx, txlen);
	r->txlen = txlen;
	r->t_start = uv_now(&e->loop);
	uv_tcp_init(&e->loop, &r->tcp);
	r->tcp.data = r;
	r->creq.data = r;
	uv_ip4_addr("127.0.0.1", e->port, &sa);
	assert_int_equal(
	    uv_tcp_connect(&r->creq, &r->tcp, (const struct sockaddr *)&sa, raw_connect_cb), 0);
	assert_true(e->nraws < MAX_RAW);
	e->raws[e->nraws++] = r;
	e->pending++;
	return r;
}

/* Builds one client frame by hand: first byte b0, announced payload length
 * `announce` (may exceed plen: a truncated frame), masked with `mask`
 * unless mask is NULL. Returns the bytes written to out. */
static size_t frame_build(uint8_t *out, uint8_t b0, uint64_t announce, const void *payload,
                          size_t plen, const uint8_t *mask)
{
	const uint8_t *p = payload;
	uint8_t mbit = mask ? 0x80 : 0;
	size_t n = 0, i;

	out[n++] = b0;
	if (announce < 126) {
		out[n++] = mbit | (uint8_t)announce;
	} else if (announce < 65536) {
		out[n++] = mbit | 126;
		out[n++] = (uint8_t)(announce >> 8);
		out[n++] = (uint8_t)announce;
	} else {
		out[n++] = mbit | 127;
		for (i = 0; i < 8; i++)
			out[n++] = (uint8_t)(announce >> (56 - 8 * i));
	}
	if (mask) {
		memcpy(out + n, mask, 4);
		n += 4;
	}
	for (i = 0; i < plen; i++)
		out[n + i] = mask ? (uint8_t)(p[i] ^ mask[i % 4]) : p[i];
	return n + plen;
}

/* Appends to a growing byte string. */
struct bytes {
	uint8_t *p; /* data */
	size_t len; /* bytes used */
};

static void bytes_add(struct bytes *b, const void *data, size_t len)
{
	b->p = realloc(b->p, b->len + len + 1);
	assert_non_null(b->p);
	memcpy(b->p + b->len, data, len);
	b->len += len;
}

static void bytes_frame(struct bytes *b, uint8_t b0, uint64_t announce, const void *payload,
                        size_t plen, bool masked)
{
	static const uint8_t mask[4] = {0x37, 0xfa, 0x21, 0x3d};
	uint8_t *tmp = malloc(plen + 14);

	assert_non_null(tmp);
	bytes_add(b, tmp, frame_build(tmp, b0, announce, payload, plen, masked ? mask : NULL));
	free(tmp);
}

/* "HTTP/1.1 NNN" at the start of rx, or -1. */
static int raw_status(const struct rawc *r)
{
	int st = -1;
	char head[16];

	if (r->rxlen < 12)
		return -1;
	memcpy(head, r->rx, 12);
	head[12] = '\0';
	if (sscanf(head, "HTTP/1.1 %d", &st) != 1)
		return -1;
	return st;
}

/* Offset just after the response head, or 0. */
static size_t raw_head_end(const struct rawc *r)
{
	size_t i;

	for (i = 0; i + 4 <= r->rxlen; i++) {
		if (memcmp(r->rx + i, "\r\n\r\n", 4) == 0)
			return i + 4;
	}
	return 0;
}

struct sframe {
	uint8_t op;          /* opcode */
	bool fin;            /* FIN bit */
	const uint8_t *data; /* payload */
	size_t len;          /* payload bytes */
};

/* The next (unmasked, server) frame at *pos; false at the end. */
static bool next_frame(const struct rawc *r, size_t *pos, struct sframe *f)
{
	const uint8_t *b = r->rx + *pos;
	size_t n = r->rxlen - *pos, h = 2, i;
	uint64_t len;

	if (n < 2)
		return false;
	f->fin = b[0] & 0x80;
	f->op = b[0] & 0x0f;
	len = b[1] & 0x7f;
	if (len == 126) {
		if (n < 4)
			return false;
		len = (uint64_t)b[2] << 8 | b[3];
		h = 4;
	} else if (len == 127) {
		if (n < 10)
			return false;
		for (len = 0, i = 0; i < 8; i++)
			len = len << 8 | b[2 + i];
		h = 10;
	}
	if (n - h < len)
		return false;
	f->data = b + h;
	f->len = (size_t)len;
	*pos += h + (size_t)len;
	return true;
}

/* The code of the server's close frame (1005 if empty), or 0 if none. */
static unsigned raw_close_code(const struct rawc *r)
{
	size_t pos = raw_head_end(r);
	struct sframe f;

	if (pos == 0)
		return 0;
	while (next_frame(r, &pos, &f)) {
		if (f.op == 8)
			return f.len >= 2 ? (unsigned)(f.data[0] << 8 | f.data[1]) : 1005;
	}
	return 0;
}

static bool raw_has_frame(const struct rawc *r, uint8_t op, const void *data, size_t len)
{
	size_t pos = raw_head_end(r);
	struct sframe f;

	if (pos == 0)
		return false;
	while (next_frame(r, &pos, &f)) {
		if (f.op == op && f.len == len && memcmp(f.data, data, len) == 0)
			return true;
	}
	return false;
}

static void expect_close(const struct rawc *r, unsigned code)
{
	unsigned got = raw_close_code(r);

	if (raw_status(r) != 101 || got != code || !r->eof)
		fail_msg("%s: status %d, close code %u (want %u), eof %d", r->name, raw_status(r),
		         got, code, r->eof);
}

static struct rawc *raw_upgrade(struct env *e, const char *name, struct bytes *frames)
{
	struct bytes b = {0};
	struct rawc *r;

	bytes_add(&b, UPGRADE_REQ, strlen(UPGRADE_REQ));
	if (frames && frames->len)
		bytes_add(&b, frames->p, frames->len);
	r = raw_start(e, name, b.p, b.len);
	free(b.p);
	if (frames)
		free(frames->p);
	return r;
}

/* ------------------------------------------------------------------ */
/* tests                                                                */

static void server_limits(struct weft_ws_limits *l)
{
	weft__ws_limits_init(l);
	l->max_message = 2u << 20;
	l->max_send_queue = 8u << 20;
	l->handshake_timeout_ms = 5000;
}

/* (a) 1000 messages of 0 B .. 1 MiB, echoed byte-identical and in order. */
static void test_echo_many(void **state)
{
	struct weft_ws_limits lim;
	struct env e;
	struct goodc *g;

	(void)state;
	server_limits(&lim);
	env_init(&e, &lim);
	g = good_start(&e, 1000, 4u << 20, true);
	env_run_and_close(&e);
	good_check(g);
	assert_int_equal(e.srv_open, 1);
	assert_int_equal(e.srv_close, 1);
	env_free(&e);
}

/* (b) hostile raw clients while a good client keeps exchanging echoes. */
static void test_hostile_peers(void **state)
{
	static const uint8_t garbage16[16] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
	                                      0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff};
	static const char garbage_http[] = "\x16\x03\x01\x02\x00garbage\r\n\r\n";
	struct weft_ws_limits lim;
	struct env e;
	struct goodc *g;
	struct rawc *r_http, *r_frame, *r_huge, *r_trunc, *r_text, *r_unmasked, *r_pipe, *r_fragbig;
	struct bytes b;
	uint8_t *meg;

	(void)state;
	server_limits(&lim);
	env_init(&e, &lim);
	g = good_start(&e, 300, 1u << 20, false);

	r_http = raw_start(&e, "garbage http", garbage_http, sizeof(garbage_http) - 1);

	memset(&b, 0, sizeof(b));
	bytes_add(&b, garbage16, sizeof(garbage16));
	r_frame = raw_upgrade(&e, "garbage frame", &b);

	/* A header announcing 100 MB, then nothing: must be refused at once. */
	memset(&b, 0, sizeof(b));
	bytes_frame(&b, 0x82, 100u << 20, NULL, 0, true);
	r_huge = raw_upgrade(&e, "100 MB header", &b);

	/* Five bytes announced, two sent, then the socket is dropped. */
	memset(&b, 0, sizeof(b));
	bytes_frame(&b, 0x82, 5, "he", 2, true);
	r_trunc = raw_upgrade(&e, "truncated frame", &b);
	r_trunc->drop_after_write = true;

	memset(&b, 0, sizeof(b));
	bytes_frame(&b, 0x81, 3, "abc", 3, true);
	r_text = raw_upgrade(&e, "text frame", &b);

	memset(&b, 0, sizeof(b));
	bytes_frame(&b, 0x82, 3, "abc", 3, false);
	r_unmasked = raw_upgrade(&e, "unmasked frame", &b);

	/* Pipelined after the request: a fragmented message with a ping
	 * between its fragments. The client closes once both answers came
	 * (a close sent at once could overtake the echo: wslay answers a
	 * close ahead of queued data, which RFC 6455 allows). */
	memset(&b, 0, sizeof(b));
	bytes_frame(&b, 0x02, 3, "hel", 3, true);
	bytes_frame(&b, 0x89, 1, "p", 1, true);
	bytes_frame(&b, 0x80, 2, "lo", 2, true);
	r_pipe = raw_upgrade(&e, "pipelined", &b);
	r_pipe->close_on_echo = true;

	/* Fragments within max_message each, over it together. */
	meg = calloc(1, 1u << 20);
	assert_non_null(meg);
	memset(&b, 0, sizeof(b));
	bytes_frame(&b, 0x02, 1u << 20, meg, 1u << 20, true);
	bytes_frame(&b, 0x00, 1u << 20, meg, 1u << 20, true);
	bytes_frame(&b, 0x80, 1, meg, 1, true);
	free(meg);
	r_fragbig = raw_upgrade(&e, "fragments over max", &b);

	env_run_and_close(&e);

	good_check(g);
	if (raw_status(r_http) != 400 || !r_http->eof)
		fail_msg("garbage http: status %d eof %d", raw_status(r_http), r_http->eof);
	expect_close(r_frame, 1002);
	expect_close(r_huge, 1009);
	if (r_huge->t_end - r_huge->t_start > 3000)
		fail_msg("100 MB header took %llu ms",
		         (unsigned long long)(r_huge->t_end - r_huge->t_start));
	expect_close(r_text, 1003);
	expect_close(r_unmasked, 1002);
	expect_close(r_pipe, 1000);
	assert_true(raw_has_frame(r_pipe, 0x2, "hello", 5));
	assert_true(raw_has_frame(r_pipe, 0xA, "p", 1));
	expect_close(r_fragbig, 1009);
	(void)r_trunc;

	/* Server side: every conn it opened was closed, once, with the
	 * expected code. */
	assert_int_equal(e.srv_open, 8);
	assert_int_equal(e.srv_close, 8);
	assert_int_equal(e.by_code[2], 2);                /* garbage frame, unmasked */
	assert_int_equal(e.by_code[9], 2);                /* 100 MB header, fragments */
	assert_int_equal(e.by_code[3], 1);                /* text */
	assert_int_equal(e.by_code[6], 1);                /* truncated, then dropped */
	assert_int_equal(e.by_code[0] + e.by_code[1], 2); /* pipelined, good */
	assert_int_equal(e.other_codes, 0);
	env_free(&e);
}

/* (c) a peer that never reads: the server's queue limit trips, that conn
 * closes with 1008, and the server keeps serving a good client. */
static void test_send_queue_overflow(void **state)
{
	struct weft_ws_limits lim;
	struct env e;
	struct goodc *g;
	struct bytes b = {0};

	(void)state;
	server_limits(&lim);
	env_init(&e, &lim);
	g = good_start(&e, 400, 256u << 10, false);
	bytes_frame(&b, 0x82, 5, "FLOOD", 5, true);
	e.flood_raw = raw_upgrade(&e, "never reads", &b);
	e.flood_raw->no_read = true;
	env_run_and_close(&e);

	good_check(g);
	assert_int_equal(e.flood_rc, WEFT_ETOOBIG);
	assert_true(e.flood_bytes <= lim.max_send_queue);
	assert_true(e.flood_bytes > 0);
	assert_true(e.flood_closed_1008);
	assert_int_equal(e.by_code[8], 1);
	assert_int_equal(e.srv_open, 2);
	assert_int_equal(e.srv_close, 2);
	env_free(&e);
}

/* (d) plain HTTP: health check, wrong paths, methods and handshakes. */
static void test_http_routes(void **state)
{
	static const char pad_head[] = "GET /v1/ws HTTP/1.1\r\nX-Pad: ";
	struct weft_ws_limits lim;
	struct env e;
	struct rawc *health, *other, *post, *noup, *badver, *badkey, *nokey, *big, *many, *silent,
	    *ok;
	struct bytes b = {0};
	char *pad;
	int i;

	(void)state;
	server_limits(&lim);
	lim.handshake_timeout_ms = 300;
	env_init(&e, &lim);

	health = raw_start(&e, "healthz", "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n", 35);
	other = raw_start(&e, "other", "GET /other HTTP/1.1\r\nHost: x\r\n\r\n", 33);
	post = raw_start(&e, "post", "POST /v1/ws HTTP/1.1\r\nContent-Length: 0\r\n\r\n", 43);
	noup = raw_start(&e, "no upgrade", "GET /v1/ws HTTP/1.1\r\nHost: x\r\n\r\n", 33);
	{
		static const char req[] =
		    "GET /v1/ws HTTP/1.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
		    "Sec-WebSocket-Key: " SAMPLE_KEY "\r\nSec-WebSocket-Version: 8\r\n\r\n";
		badver = raw_start(&e, "version 8", req, sizeof(req) - 1);
	}
	{
		static const char req[] =
		    "GET /v1/ws HTTP/1.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
		    "Sec-WebSocket-Key: c2hvcnQ=\r\nSec-WebSocket-Version: 13\r\n\r\n";
		badkey = raw_start(&e, "short key", req, sizeof(req) - 1);
	}
	{
		static const char req[] =
		    "GET /v1/ws HTTP/1.1\r\nUpgrade: websocket\r\nConnection: close\r\n"
		    "Sec-WebSocket-Key: " SAMPLE_KEY "\r\nSec-WebSocket-Version: 13\r\n\r\n";
		nokey = raw_start(&e, "connection close", req, sizeof(req) - 1);
	}
	pad = malloc(9000);
	assert_non_null(pad);
	memset(pad, 'a', 9000);
	bytes_add(&b, pad_head, sizeof(pad_head) - 1);
	bytes_add(&b, pad, 9000);
	bytes_add(&b, "\r\n\r\n", 4);
	free(pad);
	big = raw_start(&e, "9000-byte header", b.p, b.len);
	free(b.p);
	memset(&b, 0, sizeof(b));
	bytes_add(&b, "GET /v1/ws HTTP/1.1\r\n", 21);
	for (i = 0; i < 100; i++)
		bytes_add(&b, "X-h: 1\r\n", 8);
	bytes_add(&b, "\r\n", 2);
	many = raw_start(&e, "100 headers", b.p, b.len);
	free(b.p);
	silent = raw_start(&e, "silent", "", 0);

	/* A real upgrade (Connection as a token list), then a close frame. */
	memset(&b, 0, sizeof(b));
	bytes_frame(&b, 0x88, 2, "\x03\xe8", 2, true);
	ok = raw_upgrade(&e, "upgrade", &b);

	env_run_and_close(&e);

	assert_int_equal(raw_status(health), 200);
	assert_true(health->rxlen >= 3 && memcmp(health->rx + health->rxlen - 3, "ok\n", 3) == 0);
	assert_int_equal(raw_status(other), 404);
	assert_int_equal(raw_status(post), 405);
	assert_int_equal(raw_status(noup), 426);
	assert_int_equal(raw_status(badver), 426);
	assert_int_equal(raw_status(badkey), 400);
	assert_int_equal(raw_status(nokey), 400);
	assert_int_equal(raw_status(big), 400);
	assert_int_equal(raw_status(many), 400);
	assert_true(silent->eof);
	assert_int_equal(silent->rxlen, 0);
	assert_true(health->eof && other->eof && post->eof && big->eof && many->eof);
	expect_close(ok, 1000);
	assert_non_null(
	    memmem(ok->rx, ok->rxlen, "Sec-WebSocket-Accept: " SAMPLE_ACCEPT "\r\n", 22 + 28 + 2));
	assert_int_equal(e.srv_open, 1);
	assert_int_equal(e.srv_close, 1);
	assert_int_equal(e.by_code[0], 1);
	env_free(&e);
}

/* (e) nothing listens: on_close 1006 "connection refused", exactly once. */
static struct goodc refused_g;

static void refused_on_close(void *ud, struct weft_ws_conn *c, uint16_t code, const char *reason)
{
	struct goodc *g = ud;

	(void)c;
	g->closes++;
	g->close_code = code;
	snprintf(g->close_reason, sizeof(g->close_reason), "%s", reason);
}

static void refused_on_open(void *ud, struct weft_ws_conn *c)
{
	struct goodc *g = ud;

	(void)c;
	g->opened = true;
}

static void test_connect_refused(void **state)
{
	static const struct weft_ws_callbacks cbs = {
	    .on_open = refused_on_open,
	    .on_close = refused_on_close,
	};
	uv_loop_t loop;
	uv_tcp_t probe;
	struct sockaddr_storage ss;
	int len = sizeof(ss), port;
	char url[64];
	struct weft_ws_conn *c;

	(void)state;
	assert_int_equal(uv_loop_init(&loop), 0);
	/* Find a free port: bind, read it back, close. */
	{
		struct sockaddr_in sa;
		uv_tcp_init(&loop, &probe);
		uv_ip4_addr("127.0.0.1", 0, &sa);
		assert_int_equal(uv_tcp_bind(&probe, (const struct sockaddr *)&sa, 0), 0);
		assert_int_equal(uv_tcp_getsockname(&probe, (struct sockaddr *)&ss, &len), 0);
		port = ntohs(((struct sockaddr_in *)&ss)->sin_port);
		uv_close((uv_handle_t *)&probe, NULL);
		uv_run(&loop, UV_RUN_DEFAULT);
	}
	memset(&refused_g, 0, sizeof(refused_g));
	snprintf(url, sizeof(url), "ws://127.0.0.1:%d", port);
	assert_int_equal(weft__ws_connect(&loop, url, NULL, &cbs, &refused_g, &c), WEFT_OK);
	assert_non_null(c);
	uv_run(&loop, UV_RUN_DEFAULT);
	assert_int_equal(uv_loop_close(&loop), 0);
	assert_false(refused_g.opened);
	assert_int_equal(refused_g.closes, 1);
	assert_int_equal(refused_g.close_code, 1006);
	assert_non_null(strstr(refused_g.close_reason, "refused"));
}

/* Argument checking: bad URLs and addresses are refused up front. */
static void test_bad_arguments(void **state)
{
	static const struct weft_ws_callbacks cbs = {.on_close = refused_on_close};
	static const char *const bad_urls[] = {
	    "http://127.0.0.1:1",
	    "ws://127.0.0.1",
	    "ws://127.0.0.1:0",
	    "ws://127.0.0.1:70000",
	    "ws://127.0.0.1:80/x",
	    "ws://example.com:80",
	    "ws://[::1:80",
	    "ws://:80",
	    "",
	};
	struct weft_ws_server *s = NULL;
	struct weft_ws_conn *c = NULL;
	uv_loop_t loop;
	char err[128];
	size_t i;

	(void)state;
	assert_int_equal(uv_loop_init(&loop), 0);
	for (i = 0; i < sizeof(bad_urls) / sizeof(bad_urls[0]); i++) {
		if (weft__ws_connect(&loop, bad_urls[i], NULL, &cbs, NULL, &c) != WEFT_EINVAL)
			fail_msg("accepted url '%s'", bad_urls[i]);
	}
	assert_int_equal(weft__ws_server_start(&loop, "not-an-ip", 0, NULL, &srv_cbs, NULL, &s, err,
	                                       sizeof(err)),
	                 WEFT_EINVAL);
	assert_int_equal(weft__ws_server_start(&loop, "127.0.0.1", 65536, NULL, &srv_cbs, NULL, &s,
	                                       err, sizeof(err)),
	                 WEFT_EINVAL);
	assert_null(s);
	/* IPv6 literal and localhost work. */
	if (weft__ws_server_start(&loop, "::1", 0, NULL, &srv_cbs, NULL, &s, err, sizeof(err)) ==
	    WEFT_OK) {
		assert_true(weft__ws_server_port(s) > 0);
		weft__ws_server_stop(s);
	}
	assert_int_equal(weft__ws_server_start(&loop, "localhost", 0, NULL, &srv_cbs, NULL, &s, err,
	                                       sizeof(err)),
	                 WEFT_OK);
	weft__ws_server_stop(s);
	uv_run(&loop, UV_RUN_DEFAULT);
	assert_int_equal(uv_loop_close(&loop), 0);
}

/* Idle timeout: a conn with no traffic is closed with 1001. */
static void test_idle_timeout(void **state)
{
	struct weft_ws_limits lim;
	struct env e;
	struct goodc *g;

	(void)state;
	server_limits(&lim);
	lim.idle_timeout_ms = 200;
	env_init(&e, &lim);
	g = good_start(&e, 0, 0, false);
	g->finish_on_close = true;
	env_run_and_close(&e);
	assert_true(g->opened);
	assert_int_equal(g->closes, 1);
	assert_int_equal(g->close_code, 1001);
	assert_string_equal(g->close_reason, "idle timeout");
	assert_int_equal(e.by_code[1], 1);
	assert_int_equal(e.srv_close, 1);
	env_free(&e);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_bad_arguments), cmocka_unit_test(test_connect_refused),
	    cmocka_unit_test(test_http_routes),   cmocka_unit_test(test_echo_many),
	    cmocka_unit_test(test_hostile_peers), cmocka_unit_test(test_send_queue_overflow),
	    cmocka_unit_test(test_idle_timeout),
	};
	const char *seed = getenv("WEFT_TEST_SEED");

	rng_state = seed ? strtoull(seed, NULL, 0) : 0x9e3779b97f4a7c15ull;
	if (rng_state == 0)
		rng_state = 1;
	printf("test_ws: seed 0x%llx (set WEFT_TEST_SEED to replay)\n",
	       (unsigned long long)rng_state);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
