/*
 * http.c - the sync protocol over plain HTTP/1.1 requests: POST /v1/push
 * and POST /v1/pull, on the WebSocket server's port (net/ws.h frames
 * the requests; the hub, core/hub.h, runs the protocol as for a
 * WebSocket). docs/PROTOCOL.md "HTTP fallback" is the normative text.
 *
 * A request body is one array of client messages, each exactly as on
 * the WebSocket; the answer's body is one array of the server messages
 * of the exchange, in the order the hub sent them. Both are MessagePack
 * (application/msgpack or application/x-msgpack) or the JSON debug form
 * of server/jsonform.h (application/json); the answer uses the
 * request's type.
 *
 *   POST /v1/push   [HELLO, PUSH...]  ->  [WELCOME, REJECT..., ACK]
 *   POST /v1/pull   [HELLO]           ->  [WELCOME, CHANGES..., SYNCED]
 *   POST /v1/pull?wait=MS             ->  the same, or, when it was
 *                                         already at the head, [WELCOME,
 *                                         SYNCED, CHANGES...] once a
 *                                         change arrives or MS pass
 *
 * Each request is one hub session whose transport is the request itself:
 * what the hub sends is collected (the hub's `queued` reports the bytes
 * of catch-up collected so far, which is how a pull stops at its budget),
 * and the answer goes out at the first commit point (uv_check, after the
 * group commit) where the exchange is complete:
 *  - push: always that first commit point, which acknowledged (or
 *    rejected) what the request pushed. A push session never sends its
 *    catch-up: `queued` says "full" so the log is not read, CHANGES and
 *    SYNCED are left out, and the ACK goes without its cursor field
 *    (nothing was delivered on this "connection", so the cursor would
 *    promise what the client never got);
 *  - pull: at once if the session closed, sent CHANGES, or stopped short
 *    of the head (budget); else, with ?wait, it stays live in the hub and
 *    the next commit's fan-out (CHANGES) or the timer ends it.
 * Then the session is closed. A hub ERROR is part of the exchange: it is
 * the last message of a 200 answer. A client that goes away ends its
 * session like a dropped WebSocket.
 *
 * Invariant: a request is in h->open from its start until it is
 * answered; its memory lives until the connection's on_close (gone),
 * after which its timer's close callback frees it.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "weft/weft.h"
#include "core/proto.h"
#include "server/http.h"
#include "server/jsonform.h"

#define HDR_RESERVE 5 /* room for the answer's array header (array32) */

enum form { FORM_MSGPACK, FORM_XMSGPACK, FORM_JSON };

static const char *const form_type[] = {"application/msgpack", "application/x-msgpack",
                                        "application/json"};

struct weft_http {
	uv_loop_t *loop;             /* the server's loop */
	struct weft_hub *hub;        /* borrowed */
	struct weft_http_config cfg; /* copied */
	struct http_req *open;       /* requests not yet answered */
	size_t nreqs;                /* requests allocated (until freed) */
};

struct http_req {
	struct weft_link link;     /* first: the hub's io pointer */
	struct weft_http *h;       /* owner */
	struct http_req *prev;     /* in h->open while unanswered */
	struct http_req *next;     /* in h->open while unanswered */
	struct weft_ws_conn *conn; /* NULL once gone */
	struct weft_ssn *ssn;      /* NULL once closed */
	bool pull;                 /* /v1/pull, else /v1/push */
	enum form form;            /* request and answer body type */
	struct mp_buf msgs;        /* HDR_RESERVE bytes, then the messages */
	uint32_t nmsgs;            /* messages in msgs */
	size_t changes_bytes;      /* bytes of CHANGES in msgs (the budget) */
	bool got_changes;          /* a CHANGES was collected */
	bool hub_closed;           /* the hub closed the session */
	bool waiting;              /* long poll: the timer runs */
	bool answered;             /* the answer is queued (or failed) */
	uint64_t wait_ms;          /* long poll limit; 0 = none */
	uv_timer_t timer;          /* long poll; data = this */
};

void weft__http_config_init(struct weft_http_config *c)
{
	memset(c, 0, sizeof(*c));
	c->pull_budget = (size_t)4 << 20;
	c->max_wait_ms = 30000;
	c->max_response = (size_t)64 << 20;
	c->max_message = (size_t)16 << 20;
	c->heartbeat_ms = 30000;
}

int weft__http_new(uv_loop_t *loop, struct weft_hub *hub, const struct weft_http_config *cfg,
                   struct weft_http **out)
{
	struct weft_http *h = calloc(1, sizeof(*h));

	if (!h)
		return WEFT_ENOMEM;
	h->loop = loop;
	h->hub = hub;
	h->cfg = *cfg;
	if (h->cfg.pull_budget == 0)
		h->cfg.pull_budget = 1; /* one chunk per answer: progress */
	*out = h;
	return WEFT_OK;
}

void weft__http_free(struct weft_http *h)
{
	free(h); /* h->nreqs is 0 once the WebSocket server has stopped */
}

/* ---- answers ---- */

/* An error or refusal in text/plain; the request had no session. */
static void reply_text(struct weft_ws_conn *c, int status, const char *extra, const char *msg)
{
	char body[512];
	int n = snprintf(body, sizeof(body), "%s\n", msg);

	if (n < 0 || (size_t)n >= sizeof(body))
		n = (int)sizeof(body) - 1;
	(void)weft__ws_http_reply(c, status, "text/plain; charset=utf-8", extra, body, (size_t)n);
}

static void unlist(struct http_req *rq)
{
	struct weft_http *h = rq->h;

	if (rq->prev)
		rq->prev->next = rq->next;
	else if (h->open == rq)
		h->open = rq->next;
	if (rq->next)
		rq->next->prev = rq->prev;
	rq->prev = rq->next = NULL;
}

/* Writes the array header of n elements right before `end`; returns its
 * first byte. */
static uint8_t *array_header_before(uint8_t *end, uint32_t n)
{
	if (n < 16) {
		end[-1] = (uint8_t)(0x90 | n);
		return end - 1;
	}
	if (n <= 0xffff) {
		end[-3] = 0xdc;
		end[-2] = (uint8_t)(n >> 8);
		end[-1] = (uint8_t)n;
		return end - 3;
	}
	end[-5] = 0xdd;
	end[-4] = (uint8_t)(n >> 24);
	end[-3] = (uint8_t)(n >> 16);
	end[-2] = (uint8_t)(n >> 8);
	end[-1] = (uint8_t)n;
	return end - 5;
}

/* Ends the exchange: closes the session and sends what was collected. */
static void answer(struct http_req *rq)
{
	struct weft_http *h = rq->h;
	uint8_t *body;
	size_t len;

	if (rq->answered)
		return;
	rq->answered = true;
	unlist(rq);
	uv_timer_stop(&rq->timer);
	if (rq->ssn) {
		weft__ssn_closed(rq->ssn);
		rq->ssn = NULL;
	}
	if (!rq->conn)
		return;
	if (rq->msgs.err) {
		reply_text(rq->conn, 500, NULL, "out of memory");
		return;
	}
	body = array_header_before(rq->msgs.data + HDR_RESERVE, rq->nmsgs);
	len = rq->msgs.len - (size_t)(body - rq->msgs.data);
	if (rq->form == FORM_JSON) {
		struct mp_buf j;
		char err[160], msg[200];

		weft__mp_buf_init(&j, NULL, 4 * h->cfg.max_response);
		if (weft__jsonform_from_mp(body, len, &j, err, sizeof(err)) != WEFT_OK) {
			snprintf(msg, sizeof(msg), "the answer has no JSON form: %s", err);
			reply_text(rq->conn, 500, NULL, msg);
		} else {
			(void)weft__ws_http_reply(rq->conn, 200, form_type[rq->form], NULL, j.data,
			                          j.len);
		}
		weft__mp_buf_free(&j);
		return;
	}
	(void)weft__ws_http_reply(rq->conn, 200, form_type[rq->form], NULL, body, len);
}

static void on_wait_done(uv_timer_t *t)
{
	answer(t->data);
}

void weft__http_commit_point(struct weft_http *h)
{
	struct http_req *rq, *next;

	for (rq = h->open; rq; rq = next) {
		next = rq->next;
		if (rq->hub_closed || !rq->pull || rq->got_changes || rq->wait_ms == 0 ||
		    !rq->ssn || weft__ssn_state(rq->ssn) != WEFT_SS_LIVE) {
			answer(rq);
		} else if (!rq->waiting) {
			rq->waiting = true; /* at the head, with ?wait: a long poll */
			uv_timer_start(&rq->timer, on_wait_done, rq->wait_ms, 0);
		}
	}
}

/* ---- the hub's transport for one request ---- */

static int rq_send(struct weft_link *l, const uint8_t *data, size_t len)
{
	struct http_req *rq = (struct http_req *)l;
	struct mp_reader r;
	uint32_t nfields = 0;
	int type = 0;

	weft__mp_reader_init(&r, data, len);
	(void)weft__msg_begin(&r, &type, &nfields); /* the hub's own bytes */
	if (!rq->pull && (type == WEFT_MSG_CHANGES || type == WEFT_MSG_SYNCED))
		return WEFT_OK; /* a push does not deliver */
	if (len > rq->h->cfg.max_response - (rq->msgs.len - HDR_RESERVE))
		return WEFT_ETOOBIG; /* the hub closes the session: answered as is */
	if (!rq->pull && type == WEFT_MSG_ACK && nfields > 5) {
		/* ACK [4, inc, seq, restamps, states, cursor...]: without the
		 * cursor, which speaks of deliveries a push does not make. */
		const uint8_t *start = r.p;

		for (int i = 0; i < 4; i++)
			if (weft__mp_skip(&r, NULL, NULL) != WEFT_OK)
				return WEFT_EPROTO;
		weft__mp_write_array(&rq->msgs, 5);
		weft__mp_write_uint(&rq->msgs, WEFT_MSG_ACK);
		weft__mp_write_raw(&rq->msgs, start, (size_t)(r.p - start));
	} else {
		weft__mp_write_raw(&rq->msgs, data, len);
	}
	if (rq->msgs.err)
		return rq->msgs.err;
	rq->nmsgs++;
	if (type == WEFT_MSG_CHANGES) {
		rq->changes_bytes += len;
		rq->got_changes = true;
	}
	return WEFT_OK;
}

static void rq_close(struct weft_link *l, int code, const char *reason)
{
	struct http_req *rq = (struct http_req *)l;

	(void)code;
	(void)reason;
	rq->hub_closed = true; /* answered at the next commit point */
}

/* A push never catches up; a pull catches up to its budget. */
static size_t rq_queued(const struct weft_link *l)
{
	const struct http_req *rq = (const struct http_req *)l;

	if (!rq->pull || rq->changes_bytes >= rq->h->cfg.pull_budget)
		return SIZE_MAX;
	return 0;
}

static void rq_free_cb(uv_handle_t *t)
{
	struct http_req *rq = t->data;

	rq->h->nreqs--;
	weft__mp_buf_free(&rq->msgs);
	free(rq);
}

static void rq_gone(struct weft_link *l)
{
	struct http_req *rq = (struct http_req *)l;

	rq->conn = NULL;
	if (!rq->answered) {
		rq->answered = true;
		unlist(rq);
		uv_timer_stop(&rq->timer);
	}
	if (rq->ssn) {
		weft__ssn_closed(rq->ssn);
		rq->ssn = NULL;
	}
	uv_close((uv_handle_t *)&rq->timer, rq_free_cb);
}

static const struct weft_link_ops rq_ops = {rq_send, rq_close, rq_queued, rq_gone};

/* ---- requests ---- */

static bool ascii_caseeq(const char *a, size_t alen, const char *b)
{
	if (strlen(b) != alen)
		return false;
	for (size_t i = 0; i < alen; i++) {
		char x = a[i], y = b[i];

		if (x >= 'A' && x <= 'Z')
			x = (char)(x - 'A' + 'a');
		if (x != y)
			return false;
	}
	return true;
}

/* The body type named by a Content-Type value (parameters ignored), or -1. */
static int parse_form(const char *ct)
{
	size_t n = strcspn(ct, ";");

	while (n > 0 && (ct[n - 1] == ' ' || ct[n - 1] == '\t'))
		n--;
	for (int f = FORM_MSGPACK; f <= FORM_JSON; f++)
		if (ascii_caseeq(ct, n, form_type[f]))
			return f;
	return -1;
}

/* ?wait=MS (other parameters are ignored). Returns 0, or -1 if malformed. */
static int parse_wait(const char *q, uint64_t *ms)
{
	*ms = 0;
	while (*q) {
		size_t n = strcspn(q, "&");

		if (n >= 5 && memcmp(q, "wait=", 5) == 0) {
			uint64_t v = 0;

			if (n == 5 || n > 5 + 12)
				return -1;
			for (size_t i = 5; i < n; i++) {
				if (q[i] < '0' || q[i] > '9')
					return -1;
				v = v * 10 + (uint64_t)(q[i] - '0');
			}
			*ms = v;
		}
		q += n;
		if (*q == '&')
			q++;
	}
	return 0;
}

/*
 * Checks that the body is one array of messages (each a MessagePack
 * array) and nothing else. *first is left on the first message.
 */
static int split(const uint8_t *p, size_t len, struct mp_reader *first, uint32_t *n, char *why,
                 size_t whylen)
{
	struct mp_reader r;

	weft__mp_reader_init(&r, p, len);
	if (weft__mp_read_array(&r, n) != WEFT_OK) {
		snprintf(why, whylen, "the body is not an array of messages");
		return WEFT_EPROTO;
	}
	if (*n == 0) {
		snprintf(why, whylen, "the body holds no message");
		return WEFT_EPROTO;
	}
	*first = r;
	for (uint32_t i = 0; i < *n; i++) {
		enum mp_type t;

		if (weft__mp_peek(&r, &t) != WEFT_OK || t != MP_ARRAY ||
		    weft__mp_skip(&r, NULL, NULL) != WEFT_OK) {
			snprintf(why, whylen, "message %u of the body is not a well-formed array",
			         i);
			return WEFT_EPROTO;
		}
	}
	if (weft__mp_reader_left(&r) != 0) {
		snprintf(why, whylen, "bytes after the array of messages");
		return WEFT_EPROTO;
	}
	return WEFT_OK;
}

/* Opens the session and feeds it the messages; the answer comes at the
 * next commit point. */
static void start(struct weft_http *h, struct weft_ws_conn *c, bool pull, enum form form,
                  uint64_t wait_ms, struct mp_reader msgs, uint32_t n, uint64_t now_ms)
{
	struct http_req *rq = calloc(1, sizeof(*rq));

	if (!rq) {
		reply_text(c, 500, NULL, "out of memory");
		return;
	}
	rq->link.ops = &rq_ops;
	rq->h = h;
	rq->conn = c;
	rq->pull = pull;
	rq->form = form;
	rq->wait_ms = wait_ms;
	weft__mp_buf_init(&rq->msgs, NULL, 0);
	weft__mp_write_raw(&rq->msgs, "\0\0\0\0\0", HDR_RESERVE);
	if (rq->msgs.err || weft__hub_open(h->hub, &rq->link, now_ms, &rq->ssn) != WEFT_OK) {
		weft__mp_buf_free(&rq->msgs);
		free(rq);
		reply_text(c, 500, NULL, "out of memory");
		return;
	}
	uv_timer_init(h->loop, &rq->timer); /* cannot fail */
	rq->timer.data = rq;
	h->nreqs++;
	rq->next = h->open;
	if (h->open)
		h->open->prev = rq;
	h->open = rq;
	weft__ws_set_data(c, &rq->link);
	for (uint32_t i = 0; i < n && !rq->hub_closed; i++) {
		const uint8_t *raw;
		size_t len;

		(void)weft__mp_skip(&msgs, &raw, &len); /* checked by split */
		weft__ssn_recv(rq->ssn, raw, len, now_ms);
	}
}

void weft__http_request(struct weft_http *h, struct weft_ws_conn *c,
                        const struct weft_ws_http_req *req, uint64_t now_ms)
{
	bool push = strcmp(req->path, "/v1/push") == 0, pull = strcmp(req->path, "/v1/pull") == 0;
	const uint8_t *body = req->body;
	size_t len = req->body_len;
	struct mp_reader msgs;
	struct mp_buf conv;
	char why[200], err[160];
	uint64_t wait_ms;
	uint32_t n;
	int form;

	if (!push && !pull) {
		reply_text(c, 404, NULL, "not found (POST /v1/push, POST /v1/pull, GET /v1/ws)");
		return;
	}
	if (strcmp(req->method, "POST") != 0) {
		reply_text(c, 405, "Allow: POST\r\n", "method not allowed: use POST");
		return;
	}
	form = parse_form(req->content_type);
	if (form < 0) {
		reply_text(c, 415, NULL,
		           "unsupported content type: use application/msgpack, "
		           "application/x-msgpack or application/json");
		return;
	}
	if (parse_wait(req->query, &wait_ms) != 0) {
		reply_text(c, 400, NULL, "bad query: wait=MS takes a number of milliseconds");
		return;
	}
	if (!pull || wait_ms > h->cfg.max_wait_ms)
		wait_ms = pull ? h->cfg.max_wait_ms : 0;
	/* Under 3 heartbeats, after which the hub would time the session out. */
	if (h->cfg.heartbeat_ms > 0 && wait_ms > 2 * h->cfg.heartbeat_ms)
		wait_ms = 2 * h->cfg.heartbeat_ms;
	weft__mp_buf_init(&conv, NULL, h->cfg.max_message);
	if (form == FORM_JSON) {
		int rc = weft__jsonform_to_mp((const char *)body, len, &conv, err, sizeof(err));

		if (rc != WEFT_OK) {
			snprintf(why, sizeof(why), "JSON body: %s", err);
			reply_text(c, rc == WEFT_ENOMEM ? 500 : 400, NULL, why);
			goto out_free_conv;
		}
		body = conv.data;
		len = conv.len;
	}
	if (split(body, len, &msgs, &n, why, sizeof(why)) != WEFT_OK) {
		reply_text(c, 400, NULL, why);
		goto out_free_conv;
	}
	if (pull) {
		struct mp_reader m = msgs;
		uint32_t nfields;
		int type;

		if (n != 1 || weft__msg_begin(&m, &type, &nfields) != WEFT_OK ||
		    type != WEFT_MSG_HELLO) {
			reply_text(c, 400, NULL, "the body of /v1/pull is [HELLO]");
			goto out_free_conv;
		}
	}
	start(h, c, pull, (enum form)form, wait_ms, msgs, n, now_ms);
out_free_conv:
	weft__mp_buf_free(&conv);
}
