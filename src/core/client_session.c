/*
 * client_session.c - the replica side of the sync protocol, sans I/O. See
 * client_session.h and docs/PROTOCOL.md ("Client behaviour").
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "weft/weft.h"
#include "core/client_session.h"

static const char *const client_caps[] = {"txn", "reject", "ping", "progress", NULL};
static const char *const client_caps_snap[] = {"txn",      "reject",   "ping",
                                               "progress", "snapshot", NULL};

void weft__cs_init(struct weft_cs *cs, const struct weft_cs_host *host, const struct weft_alloc *a,
                   uint64_t own_max_message)
{
	memset(cs, 0, sizeof(*cs));
	cs->host = *host;
	cs->state = WEFT_CS_IDLE;
	cs->own_max = own_max_message;
	weft__mp_buf_init(&cs->out, a, 0);
}

void weft__cs_free(struct weft_cs *cs)
{
	weft__mp_buf_free(&cs->out);
}

#if defined(__GNUC__)
static int fail(struct weft_cs *cs, int rc, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
#endif

/* A fatal protocol error: FAILED, and the connection closes. */
static int fail(struct weft_cs *cs, int rc, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(cs->err, sizeof(cs->err), fmt, ap);
	va_end(ap);
	cs->state = WEFT_CS_FAILED;
	cs->fatal = rc;
	if (cs->host.log)
		cs->host.log(cs->host.ctx, WEFT_LOG_ERROR, cs->err);
	cs->host.close(cs->host.ctx, 1008, cs->err);
	return rc;
}

/* A host callback failed: the connection ends, the session may retry. */
static int host_failed(struct weft_cs *cs, int rc, const char *what)
{
	snprintf(cs->err, sizeof(cs->err), "%s failed: %s", what, weft_strerror(rc));
	if (cs->host.log)
		cs->host.log(cs->host.ctx, WEFT_LOG_ERROR, cs->err);
	cs->host.close(cs->host.ctx, 1011, cs->err);
	return rc;
}

static int send_out(struct weft_cs *cs, uint64_t now_ms)
{
	int rc = cs->out.err;

	if (rc == WEFT_OK)
		rc = cs->host.send(cs->host.ctx, cs->out.data, cs->out.len);
	weft__mp_buf_reset(&cs->out);
	if (rc == WEFT_OK)
		cs->last_send_ms = now_ms;
	return rc;
}

int weft__cs_connected(struct weft_cs *cs, uint64_t now_ms)
{
	struct weft_hello h;

	if (cs->state == WEFT_CS_FAILED)
		return cs->fatal;
	memset(&h, 0, sizeof(h));
	h.version = WEFT_PROTO_VERSION;
	cs->host.hello(cs->host.ctx, &h);
	h.cap_names = cs->host.merge ? client_caps_snap : client_caps;
	weft__msg_hello_write(&cs->out, &h);
	cs->state = WEFT_CS_HELLO_SENT;
	cs->pushed_any = false;
	cs->error_code = 0;
	cs->hello_sent_ms = now_ms;
	cs->last_recv_ms = now_ms;
	return send_out(cs, now_ms);
}

void weft__cs_disconnected(struct weft_cs *cs)
{
	if (cs->state != WEFT_CS_FAILED)
		cs->state = WEFT_CS_IDLE;
	cs->pushed_any = false;
}

void weft__cs_reset(struct weft_cs *cs)
{
	cs->state = WEFT_CS_IDLE;
	cs->fatal = 0;
	cs->pushed_any = false;
}

/* Index of the first pending unit not yet pushed on this connection
 * (pending keys increase). */
static size_t first_unpushed(struct weft_cs *cs, size_t n)
{
	size_t lo = 0, hi = n;

	if (!cs->pushed_any)
		return 0;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2, len;
		uint64_t key;
		uint32_t nops;

		(void)cs->host.pending(cs->host.ctx, mid, &len, &key, &nops);
		if (key <= cs->pushed_key)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

int weft__cs_pump(struct weft_cs *cs, uint64_t now_ms)
{
	size_t n, i;

	if (cs->state != WEFT_CS_CATCHING_UP && cs->state != WEFT_CS_REALTIME)
		return WEFT_OK;
	n = cs->host.npending(cs->host.ctx);
	i = first_unpushed(cs, n);
	while (i < n) {
		size_t k = 0, bytes = 16, len;
		uint64_t ops = 0, key = 0;
		uint32_t nops;
		int rc;

		/* Count what fits: max_push ops, about max_message / 2 bytes
		 * (a single larger unit still goes alone). */
		while (i + k < n) {
			(void)cs->host.pending(cs->host.ctx, i + k, &len, &key, &nops);
			if (k > 0 &&
			    (ops + nops > cs->max_push || bytes + len > cs->max_message / 2))
				break;
			ops += nops;
			bytes += len;
			k++;
		}
		weft__msg_push_begin(&cs->out, (uint32_t)k);
		for (size_t j = 0; j < k; j++) {
			const uint8_t *p = cs->host.pending(cs->host.ctx, i + j, &len, &key, &nops);

			weft__mp_write_raw(&cs->out, p, len);
		}
		if ((rc = send_out(cs, now_ms)) != WEFT_OK)
			return rc;
		cs->pushed_key = key;
		cs->pushed_any = true;
		i += k;
	}
	return WEFT_OK;
}

static int on_welcome(struct weft_cs *cs, struct mp_reader *r, uint32_t nfields, uint64_t now_ms)
{
	struct weft_welcome w;
	int rc;

	if (cs->state != WEFT_CS_HELLO_SENT)
		return fail(cs, WEFT_EPROTO, "unexpected WELCOME");
	if (weft__msg_welcome_read(r, nfields, &w) != WEFT_OK)
		return fail(cs, WEFT_EPROTO, "malformed WELCOME");
	if (w.version != WEFT_PROTO_VERSION)
		return fail(cs, WEFT_EPROTO, "server speaks protocol %llu",
		            (unsigned long long)w.version);
	rc = cs->host.clock(cs->host.ctx, w.server_time_ms, w.max_drift_ms, cs->hello_sent_ms,
	                    now_ms);
	if (rc != WEFT_OK)
		return host_failed(cs, rc, "clock");
	cs->max_push = w.max_push;
	cs->max_message = w.max_message < cs->own_max ? w.max_message : cs->own_max;
	cs->heartbeat_ms = w.heartbeat_ms;
	cs->state = WEFT_CS_CATCHING_UP;
	return weft__cs_pump(cs, now_ms);
}

static int on_changes(struct weft_cs *cs, struct mp_reader *r, uint32_t nfields)
{
	struct weft_changes c;
	int rc;

	if (weft__msg_changes_read(r, nfields, &c) != WEFT_OK)
		return fail(cs, WEFT_EPROTO, "malformed CHANGES");
	for (uint32_t i = 0; i < c.nunits; i++) {
		struct weft_unit u;

		(void)weft__unit_read(&c.units, &u); /* validated */
		if ((rc = cs->host.apply(cs->host.ctx, &u)) != WEFT_OK)
			return rc == WEFT_EPROTO ? fail(cs, rc, "bad op in CHANGES")
			                         : host_failed(cs, rc, "applying CHANGES");
	}
	if (c.has_progress && cs->host.progress)
		cs->host.progress(cs->host.ctx, false, c.done, c.total);
	if ((rc = cs->host.cursor(cs->host.ctx, &c.cursor, false)) != WEFT_OK)
		return host_failed(cs, rc, "storing the cursor");
	return WEFT_OK;
}

static int on_snapshot(struct weft_cs *cs, struct mp_reader *r, uint32_t nfields)
{
	struct weft_snapshot sn;
	int rc;

	if (cs->state != WEFT_CS_CATCHING_UP || !cs->host.merge)
		return fail(cs, WEFT_EPROTO, "unexpected SNAPSHOT");
	if (weft__msg_snapshot_read(r, nfields, &sn) != WEFT_OK)
		return fail(cs, WEFT_EPROTO, "malformed SNAPSHOT");
	for (uint32_t i = 0; i < sn.nstates; i++) {
		const char *coll, *id;
		size_t clen, ilen, slen;
		const void *st;

		(void)weft__msg_doc_state_read(&sn.states, &coll, &clen, &id, &ilen, &st, &slen);
		rc = cs->host.merge(cs->host.ctx, coll, clen, id, ilen, st, slen);
		if (rc != WEFT_OK)
			return rc == WEFT_EPROTO || rc == WEFT_ECORRUPT
			           ? fail(cs, WEFT_EPROTO, "bad document state in SNAPSHOT")
			           : host_failed(cs, rc, "merging a snapshot");
	}
	if (cs->host.progress)
		cs->host.progress(cs->host.ctx, true, sn.done, sn.total);
	return WEFT_OK;
}

static int on_ack(struct weft_cs *cs, struct mp_reader *r, uint32_t nfields)
{
	struct weft_ack a;
	int rc;

	if (weft__msg_ack_read(r, nfields, &a) != WEFT_OK)
		return fail(cs, WEFT_EPROTO, "malformed ACK");
	if ((rc = cs->host.acked(cs->host.ctx, a.incarnation, a.seq)) != WEFT_OK)
		return host_failed(cs, rc, "dropping acknowledged ops");
	for (uint32_t i = 0; i < a.nrestamps; i++) {
		uint32_t inc;
		uint64_t seq, hlc;

		(void)weft__msg_restamp_read(&a.restamps, &inc, &seq, &hlc); /* validated */
		if ((rc = cs->host.restamped(cs->host.ctx, inc, seq, hlc)) != WEFT_OK)
			return host_failed(cs, rc, "observing a re-stamp");
	}
	for (uint32_t i = 0; i < a.nstates; i++) {
		const char *coll, *id;
		size_t clen, ilen, slen;
		const void *st;

		(void)weft__msg_doc_state_read(&a.states, &coll, &clen, &id, &ilen, &st, &slen);
		rc = cs->host.adopt(cs->host.ctx, coll, clen, id, ilen, st, slen);
		if (rc != WEFT_OK)
			return rc == WEFT_EPROTO || rc == WEFT_ECORRUPT
			           ? fail(cs, WEFT_EPROTO, "bad document state in ACK")
			           : host_failed(cs, rc, "adopting a state");
	}
	if (a.has_cursor && (rc = cs->host.cursor(cs->host.ctx, &a.cursor, false)) != WEFT_OK)
		return host_failed(cs, rc, "storing the cursor");
	return WEFT_OK;
}

static int on_reject(struct weft_cs *cs, struct mp_reader *r, uint32_t nfields)
{
	struct weft_reject j;
	int rc;

	if (weft__msg_reject_read(r, nfields, &j) != WEFT_OK)
		return fail(cs, WEFT_EPROTO, "malformed REJECT");
	if (cs->host.log) {
		char line[256];

		snprintf(line, sizeof(line), "server rejected ops %u:%llu..%llu (code %llu): %.*s",
		         j.incarnation, (unsigned long long)j.first_seq,
		         (unsigned long long)j.last_seq, (unsigned long long)j.code,
		         (int)(j.reason_len > 120 ? 120 : j.reason_len), j.reason);
		cs->host.log(cs->host.ctx, WEFT_LOG_WARN, line);
	}
	rc = cs->host.rejected(cs->host.ctx, &j);
	if (rc != WEFT_OK)
		return rc == WEFT_EPROTO || rc == WEFT_ECORRUPT
		           ? fail(cs, WEFT_EPROTO, "bad document state in REJECT")
		           : host_failed(cs, rc, "handling a rejection");
	return WEFT_OK;
}

int weft__cs_recv(struct weft_cs *cs, const uint8_t *data, size_t len, uint64_t now_ms)
{
	struct mp_reader r;
	uint32_t nfields;
	int type, rc = WEFT_OK;

	if (cs->state == WEFT_CS_FAILED)
		return cs->fatal;
	if (cs->state == WEFT_CS_IDLE)
		return WEFT_OK; /* after the close: ignore */
	cs->last_recv_ms = now_ms;
	weft__mp_reader_init(&r, data, len);
	if (weft__msg_begin(&r, &type, &nfields) != WEFT_OK)
		return fail(cs, WEFT_EPROTO, "malformed message from server");
	if (cs->state == WEFT_CS_HELLO_SENT && type != WEFT_MSG_WELCOME && type != WEFT_MSG_ERROR &&
	    type <= WEFT_MSG_LAST)
		return fail(cs, WEFT_EPROTO, "server spoke before WELCOME");
	switch (type) {
	case WEFT_MSG_WELCOME:
		return on_welcome(cs, &r, nfields, now_ms);
	case WEFT_MSG_ACK:
		rc = on_ack(cs, &r, nfields);
		break;
	case WEFT_MSG_REJECT:
		rc = on_reject(cs, &r, nfields);
		break;
	case WEFT_MSG_CHANGES:
		rc = on_changes(cs, &r, nfields);
		break;
	case WEFT_MSG_SNAPSHOT:
		rc = on_snapshot(cs, &r, nfields);
		break;
	case WEFT_MSG_SYNCED: {
		struct weft_cursor cur;

		if (weft__msg_synced_read(&r, nfields, &cur) != WEFT_OK)
			return fail(cs, WEFT_EPROTO, "malformed SYNCED");
		if ((rc = cs->host.cursor(cs->host.ctx, &cur, true)) != WEFT_OK)
			return host_failed(cs, rc, "storing the cursor");
		cs->state = WEFT_CS_REALTIME;
		break;
	}
	case WEFT_MSG_PING: {
		uint64_t nonce;

		if (weft__msg_ping_read(&r, nfields, &nonce) != WEFT_OK)
			return fail(cs, WEFT_EPROTO, "malformed PING");
		weft__msg_ping_write(&cs->out, WEFT_MSG_PONG, nonce);
		return send_out(cs, now_ms);
	}
	case WEFT_MSG_PONG: {
		uint64_t nonce;

		if (weft__msg_ping_read(&r, nfields, &nonce) != WEFT_OK)
			return fail(cs, WEFT_EPROTO, "malformed PONG");
		break;
	}
	case WEFT_MSG_BYE: {
		const char *why;
		size_t wlen;

		if (weft__msg_bye_read(&r, nfields, &why, &wlen) != WEFT_OK)
			return fail(cs, WEFT_EPROTO, "malformed BYE");
		cs->host.close(cs->host.ctx, 1000, "bye");
		return WEFT_ECLOSED;
	}
	case WEFT_MSG_ERROR: {
		int64_t code;
		const char *msg;
		size_t mlen;

		if (weft__msg_error_read(&r, nfields, &code, &msg, &mlen) != WEFT_OK)
			return fail(cs, WEFT_EPROTO, "malformed ERROR");
		cs->error_code = code > 0 && code < 256 ? (int)code : -1;
		/* Internal errors, shutdowns and timeouts are transient: the
		 * server closes, the host reconnects. */
		if (code == WEFT_PERR_INTERNAL || code == WEFT_PERR_SHUTDOWN ||
		    code == WEFT_PERR_TIMEOUT) {
			snprintf(cs->err, sizeof(cs->err), "server error %lld: %.*s",
			         (long long)code, (int)(mlen > 200 ? 200 : mlen), msg);
			if (cs->host.log)
				cs->host.log(cs->host.ctx, WEFT_LOG_WARN, cs->err);
			return WEFT_ECLOSED;
		}
		return fail(cs, WEFT_EPROTO, "server error %lld: %.*s", (long long)code,
		            (int)(mlen > 200 ? 200 : mlen), msg);
	}
	default:
		if (type > WEFT_MSG_LAST)
			return WEFT_OK; /* a later version's message: ignored */
		return fail(cs, WEFT_EPROTO, "unexpected message type %d", type);
	}
	if (rc != WEFT_OK)
		return rc;
	/* Ops written while handling (e.g. in a callback) go out too. */
	return weft__cs_pump(cs, now_ms);
}

uint64_t weft__cs_tick(struct weft_cs *cs, uint64_t now_ms)
{
	uint64_t hb = cs->heartbeat_ms, next;

	if (hb == 0 || (cs->state != WEFT_CS_CATCHING_UP && cs->state != WEFT_CS_REALTIME))
		return UINT64_MAX;
	if (now_ms >= cs->last_recv_ms + 3 * hb) {
		snprintf(cs->err, sizeof(cs->err), "no message from the server for %llu ms",
		         (unsigned long long)(now_ms - cs->last_recv_ms));
		cs->host.close(cs->host.ctx, 1001, "heartbeat timeout");
		return UINT64_MAX;
	}
	/* Ping at half the heartbeat, so the server hears from us well
	 * within its 3 heartbeats. */
	if (now_ms >= cs->last_send_ms + hb / 2) {
		weft__msg_ping_write(&cs->out, WEFT_MSG_PING, ++cs->ping_nonce);
		(void)send_out(cs, now_ms);
	}
	next = cs->last_send_ms + hb / 2;
	if (cs->last_recv_ms + 3 * hb < next)
		next = cs->last_recv_ms + 3 * hb;
	return next;
}

int weft__cs_bye(struct weft_cs *cs, const char *reason)
{
	if (cs->state == WEFT_CS_IDLE || cs->state == WEFT_CS_FAILED)
		return WEFT_OK;
	weft__msg_bye_write(&cs->out, reason);
	return send_out(cs, cs->last_send_ms);
}
