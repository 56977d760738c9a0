/*
 * sync.c - weft_sync and weft_watch: one sync session over WebSocket.
 *
 * The session runs its own libuv loop on the calling thread:
 *   connect -> HELLO(replica, incarnation, cursor) -> WELCOME
 *   -> PUSH every pending op (in chunks within the server's limits)
 *   <- CHANGES (catch-up from the cursor, then realtime) / ACK / SYNCED
 * weft_sync finishes when the server has said SYNCED and acknowledged
 * every op that was pending; weft_watch keeps going. A lost connection
 * is retried with backoff (100 ms doubling to 2 s) until the deadline, and
 * every unacknowledged op is pushed again: the server dedupes by op
 * identity, so a re-push after a lost ACK is harmless.
 *
 * The protocol itself is the sans-I/O client session (core/client_session.h);
 * this file is its libuv/WebSocket transport and the replica as its host.
 * Issue 6 replaces it with the library's always-on background driver.
 */
#include <string.h>

#include <uv.h>

#include "net/ws.h"
#include "client/replica.h"
#include "core/client_session.h"

struct session {
	weft_db *db;
	uv_loop_t loop;
	uv_timer_t deadline;       /* the whole call's time limit */
	uv_timer_t retry;          /* reconnect backoff */
	uv_timer_t beat;           /* heartbeat */
	struct weft_ws_conn *conn; /* current connection or NULL */
	const char *url;
	struct weft_ws_limits limits;
	struct weft_ws_callbacks cbs;
	struct weft_cs cs;      /* the protocol, sans I/O */
	bool watch;             /* weft_watch: never finish on our own */
	const char *collection; /* watch filter, or NULL */
	size_t coll_len;
	weft_change_cb cb;
	void *ctx;
	bool synced; /* SYNCED received on this connection */
	uint32_t backoff_ms;
	bool finishing;     /* result decided; closing down */
	bool timers_closed; /* uv_close called on the timers */
	int rc;             /* the result */
	struct mp_buf json; /* change JSON scratch */
};

static void close_timers(struct session *s)
{
	if (s->timers_closed)
		return;
	s->timers_closed = true;
	uv_close((uv_handle_t *)&s->deadline, NULL);
	uv_close((uv_handle_t *)&s->retry, NULL);
	uv_close((uv_handle_t *)&s->beat, NULL);
}

/* Decides the result and winds down: the loop ends once the connection
 * (if any) has closed and the timers are closed. */
static void finish(struct session *s, int rc)
{
	if (s->finishing)
		return;
	s->finishing = true;
	s->rc = rc;
	uv_timer_stop(&s->deadline);
	uv_timer_stop(&s->retry);
	uv_timer_stop(&s->beat);
	if (s->conn) {
		(void)weft__cs_bye(&s->cs, "done");
		weft__ws_close(s->conn, 1000, "done");
	} else {
		close_timers(s);
	}
}

static void maybe_done(struct session *s)
{
	if (!s->watch && s->synced && s->db->npend == 0)
		finish(s, WEFT_OK);
}

static int deliver(struct session *s, enum weft_doc_change ch, struct weft_doc *d)
{
	weft_change c;
	const char *coll, *id;
	size_t clen, ilen;
	int rc = WEFT_OK, stop;

	if (!s->cb || ch == WEFT_DOC_NONE || s->finishing)
		return WEFT_OK;
	weft__doc_key(d, &coll, &clen, &id, &ilen);
	if (s->collection && (clen != s->coll_len || memcmp(coll, s->collection, s->coll_len) != 0))
		return WEFT_OK;
	memset(&c, 0, sizeof(c));
	c.collection = coll; /* NUL-terminated copies owned by the doc */
	c.id = id;
	c.from_sync = 1;
	c.op = ch == WEFT_DOC_INSERTED  ? WEFT_CHANGE_INSERT
	       : ch == WEFT_DOC_UPDATED ? WEFT_CHANGE_UPDATE
	                                : WEFT_CHANGE_DELETE;
	if (ch != WEFT_DOC_DELETED) {
		weft__mp_buf_reset(&s->json);
		rc = weft__doc_write_json(d, &s->json);
		weft__mp_write_raw(&s->json, "", 1);
		if (rc == WEFT_OK && (rc = s->json.err) != WEFT_OK)
			return rc;
		if (rc != WEFT_OK)
			return rc;
		c.doc_json = (const char *)s->json.data;
	}
	stop = s->cb(s->ctx, &c);
	if (stop)
		finish(s, WEFT_OK);
	return WEFT_OK;
}

/* ---- the replica, as the client session's host ---- */

static void h_hello(void *ctx, struct weft_hello *h)
{
	struct session *s = ctx;

	h->replica = s->db->replica;
	h->incarnation = s->db->incarnation;
	h->has_cursor = s->db->has_cursor;
	h->cursor = s->db->cursor;
}

static size_t h_npending(void *ctx)
{
	struct session *s = ctx;

	return s->db->npend;
}

static const uint8_t *h_pending(void *ctx, size_t i, size_t *len, uint64_t *key, uint32_t *nops)
{
	struct session *s = ctx;

	*len = s->db->pend[i].len;
	*key = s->db->pend[i].key;
	*nops = 1;
	return s->db->pend[i].raw;
}

static int h_acked(void *ctx, uint32_t inc, uint64_t seq)
{
	struct session *s = ctx;
	int rc = weft__db_acked(s->db, inc, seq);

	if (rc == WEFT_OK)
		maybe_done(s);
	return rc;
}

static int h_adopt(void *ctx, const char *coll, size_t clen, const char *id, size_t ilen,
                   const void *state, size_t len)
{
	struct session *s = ctx;
	enum weft_doc_change ch;
	struct weft_doc *d;
	int rc = weft__db_adopt_state(s->db, coll, clen, id, ilen, state, len, &ch, &d);

	return rc == WEFT_OK ? deliver(s, ch, d) : rc;
}

static int h_merge(void *ctx, const char *coll, size_t clen, const char *id, size_t ilen,
                   const void *state, size_t len)
{
	struct session *s = ctx;
	enum weft_doc_change ch;
	struct weft_doc *d;
	int rc = weft__db_merge_state(s->db, coll, clen, id, ilen, state, len, &ch, &d);

	return rc == WEFT_OK ? deliver(s, ch, d) : rc;
}

static int h_rejected(void *ctx, const struct weft_reject *j)
{
	struct session *s = ctx;
	struct mp_reader st = j->states;
	int rc;

	if ((rc = weft__db_rejected(s->db, j->incarnation, j->first_seq, j->last_seq)) != WEFT_OK)
		return rc;
	for (uint32_t i = 0; i < j->nstates; i++) {
		const char *coll, *id;
		size_t clen, ilen, slen;
		const void *state;

		(void)weft__msg_doc_state_read(&st, &coll, &clen, &id, &ilen, &state, &slen);
		if ((rc = h_adopt(ctx, coll, clen, id, ilen, state, slen)) != WEFT_OK)
			return rc;
	}
	maybe_done(s);
	return WEFT_OK;
}

static int h_restamped(void *ctx, uint32_t inc, uint64_t seq, uint64_t hlc)
{
	struct session *s = ctx;

	(void)inc;
	(void)seq;
	weft__hlc_observe(&s->db->hlc, hlc);
	return WEFT_OK;
}

static int h_apply(void *ctx, const struct weft_unit *u)
{
	struct session *s = ctx;
	struct mp_reader r = u->ops;
	int rc;

	for (uint32_t i = 0; i < u->nops && !s->finishing; i++) {
		struct weft_op op;
		enum weft_doc_change ch;
		struct weft_doc *d;

		if ((rc = weft__op_decode(&r, &op)) != WEFT_OK)
			return weft__db_err(s->db, WEFT_EPROTO, "malformed op in CHANGES");
		if ((rc = weft__db_apply_remote(s->db, &op, &ch, &d)) != WEFT_OK)
			return rc;
		if ((rc = deliver(s, ch, d)) != WEFT_OK)
			return rc;
	}
	return WEFT_OK;
}

static int h_cursor(void *ctx, const struct weft_cursor *c, bool synced)
{
	struct session *s = ctx;
	int rc;

	if (s->finishing)
		return WEFT_OK; /* the cursor stays behind what was not applied */
	if ((rc = weft__db_set_cursor(s->db, c)) != WEFT_OK)
		return rc;
	if (synced) {
		s->synced = true;
		maybe_done(s);
	}
	return WEFT_OK;
}

static int h_clock(void *ctx, uint64_t server_ms, uint64_t max_drift_ms, uint64_t sent_ms,
                   uint64_t now_ms)
{
	struct session *s = ctx;

	s->backoff_ms = 0;
	return weft__db_clock_sync(s->db, server_ms, max_drift_ms, sent_ms, now_ms);
}

static int h_send(void *ctx, const uint8_t *data, size_t len)
{
	struct session *s = ctx;

	return s->conn ? weft__ws_send(s->conn, data, len) : WEFT_ECLOSED;
}

static void h_close(void *ctx, int code, const char *reason)
{
	struct session *s = ctx;

	if (s->conn)
		weft__ws_close(s->conn, (uint16_t)code, reason);
}

static void h_log(void *ctx, int level, const char *msg)
{
	struct session *s = ctx;

	weft__db_log(s->db, level, "%s", msg);
}

/* ---- transport ---- */

static void on_beat(uv_timer_t *t)
{
	struct session *s = t->data;
	uint64_t now = weft__wall_ms(), next = weft__cs_tick(&s->cs, now);

	if (next != UINT64_MAX && !s->finishing)
		uv_timer_start(&s->beat, on_beat, next > now ? next - now : 1, 0);
}

static void on_open(void *ud, struct weft_ws_conn *c)
{
	struct session *s = ud;

	(void)c;
	if (weft__cs_connected(&s->cs, weft__wall_ms()) != WEFT_OK)
		weft__ws_close(s->conn, 1011, "send failed");
}

static void on_message(void *ud, struct weft_ws_conn *c, const uint8_t *data, size_t len)
{
	struct session *s = ud;
	bool was_welcomed = s->cs.state != WEFT_CS_HELLO_SENT;
	int rc;

	(void)c;
	if (s->finishing)
		return;
	rc = weft__cs_recv(&s->cs, data, len, weft__wall_ms());
	if (!was_welcomed && s->cs.state == WEFT_CS_CATCHING_UP && s->cs.heartbeat_ms)
		uv_timer_start(&s->beat, on_beat, s->cs.heartbeat_ms / 2, 0);
	if (rc == WEFT_ECLOSED) {
		weft__db_err(s->db, WEFT_ECLOSED, "%s", s->cs.err);
		return; /* transient: the server closes, we reconnect */
	}
	if (rc != WEFT_OK) {
		if (s->cs.state == WEFT_CS_FAILED)
			weft__db_err(s->db, rc, "%s", s->cs.err);
		finish(s, rc);
	}
}

static void connect_now(struct session *s);

static void on_retry(uv_timer_t *t)
{
	connect_now(t->data);
}

static void on_close(void *ud, struct weft_ws_conn *c, uint16_t code, const char *reason)
{
	struct session *s = ud;

	(void)c;
	s->conn = NULL;
	weft__cs_disconnected(&s->cs);
	uv_timer_stop(&s->beat);
	if (s->finishing) {
		close_timers(s);
		return;
	}
	weft__db_err(s->db, WEFT_ECLOSED, "connection to %s closed (%u %s)", s->url, code,
	             reason ? reason : "");
	s->backoff_ms = s->backoff_ms ? (s->backoff_ms * 2 > 2000 ? 2000 : s->backoff_ms * 2) : 100;
	weft__db_log(s->db, WEFT_LOG_INFO, "connection to %s closed (%u %s); retrying in %u ms",
	             s->url, code, reason ? reason : "", s->backoff_ms);
	uv_timer_start(&s->retry, on_retry, s->backoff_ms, 0);
}

static void connect_now(struct session *s)
{
	int rc;

	s->synced = false;
	rc = weft__ws_connect(&s->loop, s->url, &s->limits, &s->cbs, s, &s->conn);
	if (rc != WEFT_OK) {
		s->conn = NULL;
		weft__db_err(s->db, rc, "cannot connect to %s", s->url);
		finish(s, rc);
	}
}

static void on_deadline(uv_timer_t *t)
{
	struct session *s = t->data;

	if (!s->finishing)
		weft__db_err(s->db, WEFT_ETIMEDOUT,
		             "timed out waiting for %s (%zu ops still pending locally)", s->url,
		             s->db->npend);
	finish(s, WEFT_ETIMEDOUT);
}

static int run(weft_db *db, const char *url, int timeout_ms, bool watch, const char *collection,
               weft_change_cb cb, void *ctx)
{
	struct session s;
	int frc;

	if (!db || !url)
		return WEFT_EINVAL;
	if (!db->w)
		return weft__db_err(db, WEFT_EINVAL, "replica is open read-only");
	memset(&s, 0, sizeof(s));
	s.db = db;
	s.url = url;
	s.watch = watch;
	s.collection = collection;
	s.coll_len = collection ? strlen(collection) : 0;
	s.cb = cb;
	s.ctx = ctx;
	s.rc = WEFT_ECLOSED;
	weft__ws_limits_init(&s.limits);
	s.cbs.on_open = on_open;
	s.cbs.on_message = on_message;
	s.cbs.on_close = on_close;
	{
		struct weft_cs_host host = {
		    .hello = h_hello,
		    .npending = h_npending,
		    .pending = h_pending,
		    .acked = h_acked,
		    .rejected = h_rejected,
		    .restamped = h_restamped,
		    .adopt = h_adopt,
		    .merge = h_merge,
		    .apply = h_apply,
		    .cursor = h_cursor,
		    .clock = h_clock,
		    .send = h_send,
		    .close = h_close,
		    .log = h_log,
		    .ctx = &s,
		};

		weft__cs_init(&s.cs, &host, db->alloc, s.limits.max_message);
	}
	weft__mp_buf_init(&s.json, db->alloc, 0);
	if (uv_loop_init(&s.loop) != 0) {
		weft__cs_free(&s.cs);
		weft__mp_buf_free(&s.json);
		return weft__db_err(db, WEFT_EIO, "uv_loop_init failed");
	}
	uv_timer_init(&s.loop, &s.deadline);
	uv_timer_init(&s.loop, &s.retry);
	uv_timer_init(&s.loop, &s.beat);
	s.deadline.data = s.retry.data = s.beat.data = &s;
	if (timeout_ms >= 0)
		uv_timer_start(&s.deadline, on_deadline, (uint64_t)timeout_ms, 0);

	connect_now(&s);
	uv_run(&s.loop, UV_RUN_DEFAULT);
	if (uv_loop_close(&s.loop) != 0 && s.rc == WEFT_OK)
		s.rc = weft__db_err(db, WEFT_EIO, "sync loop ended with open handles");
	weft__cs_free(&s.cs);
	weft__mp_buf_free(&s.json);

	/* Whatever happened, what was applied and the cursor become durable
	 * before we return: a CLI that exits next must not lose them. */
	frc = weft_flush(db);
	return s.rc == WEFT_OK ? frc : s.rc;
}

int weft_sync(weft_db *db, const char *url, int timeout_ms, weft_change_cb cb, void *ctx)
{
	return run(db, url, timeout_ms, false, NULL, cb, ctx);
}

int weft_watch(weft_db *db, const char *url, const char *collection, weft_change_cb cb, void *ctx)
{
	if (!cb)
		return weft__db_err(db, WEFT_EINVAL, "callback is NULL");
	return run(db, url, -1, true, collection, cb, ctx);
}
