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
 * Issue 6 replaces this with the library's always-on background driver;
 * the message handling here moves into the sans-I/O session of issue 5.
 */
#include <string.h>

#include <uv.h>

#include "net/ws.h"
#include "client/replica.h"

struct session {
	weft_db *db;
	uv_loop_t loop;
	uv_timer_t deadline;       /* the whole call's time limit */
	uv_timer_t retry;          /* reconnect backoff */
	struct weft_ws_conn *conn; /* current connection or NULL */
	const char *url;
	struct weft_ws_limits limits;
	struct weft_ws_callbacks cbs;
	bool watch;             /* weft_watch: never finish on our own */
	const char *collection; /* watch filter, or NULL */
	size_t coll_len;
	weft_change_cb cb;
	void *ctx;
	bool welcomed;        /* WELCOME received on this connection */
	bool synced;          /* SYNCED received on this connection */
	size_t pushed;        /* pend entries pushed on this connection */
	uint64_t max_push;    /* from WELCOME */
	uint64_t max_message; /* from WELCOME */
	uint32_t backoff_ms;
	bool finishing;         /* result decided; closing down */
	bool timers_closed;     /* uv_close called on both timers */
	uint64_t hello_sent_ms; /* wall clock when HELLO left (clock offset) */
	int rc;                 /* the result */
	struct mp_buf out;      /* message scratch */
	struct mp_buf json;     /* change JSON scratch */
};

static void close_timers(struct session *s)
{
	if (s->timers_closed)
		return;
	s->timers_closed = true;
	uv_close((uv_handle_t *)&s->deadline, NULL);
	uv_close((uv_handle_t *)&s->retry, NULL);
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
	if (s->conn)
		weft__ws_close(s->conn, 1000, "done");
	else
		close_timers(s);
}

static int send_out(struct session *s)
{
	int rc;

	if (s->out.err)
		return s->out.err;
	rc = weft__ws_send(s->conn, s->out.data, s->out.len);
	weft__mp_buf_reset(&s->out);
	return rc;
}

/* Pushes pending ops not yet pushed on this connection, in PUSH messages
 * of at most max_push ops and about max_message / 2 bytes. */
static int push_pending(struct session *s)
{
	weft_db *db = s->db;

	while (s->pushed < db->npend) {
		size_t n = 0, bytes = 16, i = s->pushed;
		int rc;

		while (i + n < db->npend && n < s->max_push &&
		       (n == 0 || bytes + db->pend[i + n].len <= s->max_message / 2)) {
			bytes += db->pend[i + n].len;
			n++;
		}
		weft__mp_write_array(&s->out, 2);
		weft__mp_write_uint(&s->out, WEFT_MSG_PUSH);
		weft__mp_write_array(&s->out, (uint32_t)n);
		for (size_t k = 0; k < n; k++)
			weft__mp_write_raw(&s->out, db->pend[i + k].raw, db->pend[i + k].len);
		if ((rc = send_out(s)) != WEFT_OK)
			return rc;
		s->pushed += n;
	}
	return WEFT_OK;
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

	if (!s->cb || ch == WEFT_DOC_NONE)
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

static int on_changes(struct session *s, struct mp_reader *r, uint32_t nfields)
{
	struct weft_cursor cur;
	uint32_t n;
	int rc;

	if (nfields < 3 || weft__mp_read_array(r, &n) != WEFT_OK)
		return WEFT_EPROTO;
	for (uint32_t i = 0; i < n && !s->finishing; i++) {
		struct weft_op op;
		enum weft_doc_change ch;
		struct weft_doc *d;

		if ((rc = weft__op_decode(r, &op)) != WEFT_OK)
			return rc;
		if ((rc = weft__db_apply_remote(s->db, &op, &ch, &d)) != WEFT_OK)
			return rc;
		if ((rc = deliver(s, ch, d)) != WEFT_OK)
			return rc;
	}
	if (s->finishing)
		return WEFT_OK; /* the cursor stays behind what was not applied */
	if (weft__cursor_read(r, &cur) != WEFT_OK || weft__msg_skip_rest(r, nfields, 3) != WEFT_OK)
		return WEFT_EPROTO;
	return weft__db_set_cursor(s->db, &cur);
}

/*
 * ACK: drop the acknowledged ops from the pending list, then adopt the
 * server's stamps and the authoritative state of every document whose op
 * the server re-stamped (re-applying our still-pending ops on top).
 */
static int on_ack(struct session *s, struct mp_reader *r, uint32_t nfields)
{
	struct weft_ack a;
	size_t before = s->db->npend, removed;
	int rc;

	if (weft__msg_ack_read(r, nfields, &a) != WEFT_OK)
		return weft__db_err(s->db, WEFT_EPROTO, "malformed ACK");
	if ((rc = weft__db_acked(s->db, a.incarnation, a.seq)) != WEFT_OK)
		return rc;
	/* Acknowledged ops left the front of the pending list. */
	removed = before - s->db->npend;
	s->pushed = s->pushed > removed ? s->pushed - removed : 0;
	for (uint32_t i = 0; i < a.nrestamps; i++) {
		uint32_t inc;
		uint64_t seq, hlc;

		(void)weft__msg_restamp_read(&a.restamps, &inc, &seq, &hlc); /* validated */
		weft__hlc_observe(&s->db->hlc, hlc);
	}
	for (uint32_t i = 0; i < a.nstates && !s->finishing; i++) {
		const char *coll, *id;
		size_t clen, ilen, slen;
		const void *state;
		enum weft_doc_change ch;
		struct weft_doc *d;

		(void)weft__msg_doc_state_read(&a.states, &coll, &clen, &id, &ilen, &state, &slen);
		rc = weft__db_adopt_state(s->db, coll, clen, id, ilen, state, slen, &ch, &d);
		if (rc != WEFT_OK)
			return rc == WEFT_EPROTO
			           ? weft__db_err(s->db, rc, "bad document state in ACK")
			           : rc;
		if ((rc = deliver(s, ch, d)) != WEFT_OK)
			return rc;
	}
	maybe_done(s);
	return WEFT_OK;
}

static int handle(struct session *s, const uint8_t *data, size_t len)
{
	struct mp_reader r;
	uint32_t nfields;
	int type, rc;

	weft__mp_reader_init(&r, data, len);
	if (weft__msg_begin(&r, &type, &nfields) != WEFT_OK)
		return weft__db_err(s->db, WEFT_EPROTO, "malformed message from server");
	if (!s->welcomed && type != WEFT_MSG_WELCOME && type != WEFT_MSG_ERROR &&
	    type <= WEFT_MSG_LAST)
		return weft__db_err(s->db, WEFT_EPROTO, "server spoke before WELCOME");
	switch (type) {
	case WEFT_MSG_WELCOME: {
		struct weft_welcome w;

		if (weft__msg_welcome_read(&r, nfields, &w) != WEFT_OK)
			return weft__db_err(s->db, WEFT_EPROTO, "malformed WELCOME");
		if (w.version != WEFT_PROTO_VERSION)
			return weft__db_err(s->db, WEFT_EPROTO, "server speaks protocol %llu",
			                    (unsigned long long)w.version);
		rc = weft__db_clock_sync(s->db, w.server_time_ms, w.max_drift_ms, s->hello_sent_ms,
		                         weft__wall_ms());
		if (rc != WEFT_OK)
			return rc;
		s->welcomed = true;
		s->max_push = w.max_push;
		s->max_message =
		    w.max_message < s->limits.max_message ? w.max_message : s->limits.max_message;
		s->backoff_ms = 0;
		return push_pending(s);
	}
	case WEFT_MSG_ACK:
		return on_ack(s, &r, nfields);
	case WEFT_MSG_CHANGES:
		if ((rc = on_changes(s, &r, nfields)) != WEFT_OK)
			return rc == WEFT_EPROTO ? weft__db_err(s->db, rc, "malformed CHANGES")
			                         : rc;
		return WEFT_OK;
	case WEFT_MSG_SYNCED: {
		struct weft_cursor cur;

		if (weft__msg_synced_read(&r, nfields, &cur) != WEFT_OK)
			return weft__db_err(s->db, WEFT_EPROTO, "malformed SYNCED");
		if ((rc = weft__db_set_cursor(s->db, &cur)) != WEFT_OK)
			return rc;
		s->synced = true;
		maybe_done(s);
		return WEFT_OK;
	}
	case WEFT_MSG_ERROR: {
		int64_t code;
		const char *msg;
		size_t mlen;

		if (weft__msg_error_read(&r, nfields, &code, &msg, &mlen) != WEFT_OK)
			return weft__db_err(s->db, WEFT_EPROTO, "malformed ERROR");
		weft__db_err(s->db, WEFT_EPROTO, "server error %lld: %.*s", (long long)code,
		             (int)(mlen > 400 ? 400 : mlen), msg);
		weft__db_log(s->db, WEFT_LOG_WARN, "%s", weft_errmsg(s->db));
		/* Internal errors and shutdowns are transient: reconnect. */
		if (code == WEFT_PERR_INTERNAL || code == WEFT_PERR_SHUTDOWN)
			return WEFT_OK;
		return WEFT_EPROTO;
	}
	default:
		if (type > WEFT_MSG_LAST)
			return WEFT_OK; /* a later version's message: ignored */
		return weft__db_err(s->db, WEFT_EPROTO, "unexpected message type %d", type);
	}
}

static void on_open(void *ud, struct weft_ws_conn *c)
{
	struct session *s = ud;
	struct weft_hello h = {
	    .version = WEFT_PROTO_VERSION,
	    .replica = s->db->replica,
	    .incarnation = s->db->incarnation,
	    .has_cursor = s->db->has_cursor,
	    .cursor = s->db->cursor,
	};

	(void)c;
	weft__msg_hello_write(&s->out, &h);
	s->hello_sent_ms = weft__wall_ms();
	if (send_out(s) != WEFT_OK)
		weft__ws_close(s->conn, 1011, "send failed");
}

static void on_message(void *ud, struct weft_ws_conn *c, const uint8_t *data, size_t len)
{
	struct session *s = ud;
	int rc;

	(void)c;
	if (s->finishing)
		return;
	rc = handle(s, data, len);
	if (rc == WEFT_OK && s->welcomed && !s->finishing)
		rc = push_pending(s); /* writes made inside a watch callback */
	if (rc != WEFT_OK)
		finish(s, rc);
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

	s->welcomed = false;
	s->synced = false;
	s->pushed = 0;
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
	weft__mp_buf_init(&s.out, db->alloc, 0);
	weft__mp_buf_init(&s.json, db->alloc, 0);
	if (uv_loop_init(&s.loop) != 0)
		return weft__db_err(db, WEFT_EIO, "uv_loop_init failed");
	uv_timer_init(&s.loop, &s.deadline);
	uv_timer_init(&s.loop, &s.retry);
	s.deadline.data = s.retry.data = &s;
	if (timeout_ms >= 0)
		uv_timer_start(&s.deadline, on_deadline, (uint64_t)timeout_ms, 0);

	connect_now(&s);
	uv_run(&s.loop, UV_RUN_DEFAULT);
	if (uv_loop_close(&s.loop) != 0 && s.rc == WEFT_OK)
		s.rc = weft__db_err(db, WEFT_EIO, "sync loop ended with open handles");
	weft__mp_buf_free(&s.out);
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
