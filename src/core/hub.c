/*
 * hub.c - server sessions over the authority, sans I/O. See hub.h and
 * docs/PROTOCOL.md.
 *
 * Invariants:
 *  - nothing uncommitted leaves the hub: ACK, REJECT and CHANGES are
 *    written only from weft__hub_commit, after the authority's commit;
 *  - a session in WEFT_SS_CATCHING_UP gets no broadcast; its cursor
 *    (caught) only moves over units it was sent, in log order, until it
 *    reaches the head, where it turns live in the same call, so no unit
 *    is skipped between catch-up and realtime;
 *  - a session that closes while units it pushed are staged stays
 *    allocated (dead) until the commit, since staged units point to it.
 */
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "weft/weft.h"
#include "core/hub.h"

/* One document of a snapshot, by key: the documents themselves may be
 * replaced in the docset between chunks. */
struct snapkey {
	char *coll; /* owned, NUL-terminated */
	char *id;
	size_t coll_len, id_len;
};

struct weft_ssn {
	struct weft_ssn *next; /* the hub's list */
	struct weft_ssn *prev;
	struct weft_hub *hub;
	void *io;
	enum weft_ss_state state;
	bool dead;             /* transport gone; free after the commit */
	uint64_t replica;      /* from HELLO */
	bool ack_pending;      /* units pushed since the last commit point */
	uint32_t ack_inc;      /* highest identity pushed ... */
	uint64_t ack_seq;      /* ... on this session */
	struct mp_buf restate; /* [collection, id] pairs whose state goes in
	                          the next ACK (re-pushed far-future ops) */
	uint32_t nrestate;
	struct snapkey *snap; /* snapshot: the documents to send (owned) */
	size_t nsnap, snap_next;
	uint64_t caught;       /* catch-up: last position sent */
	uint64_t catch_start;  /* catch-up: where it started (progress) */
	uint64_t last_recv_ms; /* heartbeat */
};

/* Most documents one ACK re-sends for re-pushed far-future ops; more are
 * dropped (the replica's view of them stays ahead until it next edits). */
#define MAX_RESTATE 1024

struct weft_hub {
	const struct weft_alloc *alloc;
	struct weft_authority *au;
	struct weft_hub_config cfg;
	struct weft_hub_io io;
	struct weft_ssn list; /* sentinel */
	struct mp_buf out;    /* message scratch */
	struct mp_buf state;  /* document state scratch */
	bool stopping;
	size_t nsnapping; /* sessions holding a snapshot's keys */
	struct weft_hub_stats stats;
};

static const char *const server_caps[] = {"txn", "reject", "ping", "progress", "snapshot", NULL};

void weft__hub_config_init(struct weft_hub_config *c)
{
	memset(c, 0, sizeof(*c));
	c->max_message = 16u << 20;
	c->max_push = 10000;
	c->max_txn_ops = 1000;
	c->max_drift_ms = WEFT_MAX_DRIFT_MS;
	c->heartbeat_ms = 30000;
	c->catchup_window = 4u << 20;
	c->catchup_chunk = 512u << 10;
	c->catchup_units = 2000;
	c->snapshot_min = 1000;
	c->max_snapshots = 8;
}

int weft__hub_new(struct weft_authority *au, const struct weft_hub_config *cfg,
                  const struct weft_hub_io *io, const struct weft_alloc *a, struct weft_hub **out)
{
	struct weft_hub *hub;

	if (!a)
		a = weft__alloc_default();
	hub = weft__zalloc(a, sizeof(*hub));
	if (!hub)
		return WEFT_ENOMEM;
	hub->alloc = a;
	hub->au = au;
	hub->cfg = *cfg;
	hub->io = *io;
	hub->list.next = hub->list.prev = &hub->list;
	weft__mp_buf_init(&hub->out, a, 0);
	weft__mp_buf_init(&hub->state, a, 0);
	*out = hub;
	return WEFT_OK;
}

static void snap_free(struct weft_ssn *s)
{
	if (s->snap)
		s->hub->nsnapping--;
	for (size_t i = 0; i < s->nsnap; i++) {
		weft__free(s->hub->alloc, s->snap[i].coll);
		weft__free(s->hub->alloc, s->snap[i].id);
	}
	weft__free(s->hub->alloc, s->snap);
	s->snap = NULL;
	s->nsnap = s->snap_next = 0;
}

static void ssn_free(struct weft_ssn *s)
{
	struct weft_hub *hub = s->hub;

	snap_free(s);
	s->prev->next = s->next;
	s->next->prev = s->prev;
	weft__mp_buf_free(&s->restate);
	weft__free(hub->alloc, s);
}

void weft__hub_free(struct weft_hub *hub)
{
	if (!hub)
		return;
	while (hub->list.next != &hub->list)
		ssn_free(hub->list.next);
	weft__mp_buf_free(&hub->out);
	weft__mp_buf_free(&hub->state);
	weft__free(hub->alloc, hub);
}

const struct weft_hub_stats *weft__hub_stats(const struct weft_hub *hub)
{
	return &hub->stats;
}

enum weft_ss_state weft__ssn_state(const struct weft_ssn *s)
{
	return s->state;
}

#if defined(__GNUC__)
static void logf_(struct weft_hub *hub, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
#endif

static void logf_(struct weft_hub *hub, const char *fmt, ...)
{
	char line[512];
	va_list ap;

	if (!hub->io.log)
		return;
	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	hub->io.log(hub->io.ctx, line);
}

static bool usable(const struct weft_ssn *s)
{
	return !s->dead && s->state != WEFT_SS_CLOSED;
}

/* Sends hub->out on s and resets it. A transport failure closes s. */
static int send_out(struct weft_ssn *s)
{
	struct weft_hub *hub = s->hub;
	int rc = hub->out.err;

	if (rc == WEFT_OK && usable(s))
		rc = hub->io.send(hub->io.ctx, s->io, hub->out.data, hub->out.len);
	weft__mp_buf_reset(&hub->out);
	if (rc != WEFT_OK && usable(s)) {
		s->state = WEFT_SS_CLOSED;
		hub->io.close(hub->io.ctx, s->io, rc == WEFT_ENOMEM ? 1011 : 1008,
		              rc == WEFT_ENOMEM ? "out of memory" : "send failed");
	}
	return rc;
}

static int close_code(int perr)
{
	switch (perr) {
	case WEFT_PERR_SHUTDOWN:
		return 1001;
	case WEFT_PERR_INTERNAL:
		return 1011;
	default:
		return 1008;
	}
}

/* ERROR, then close. */
static void fail(struct weft_ssn *s, int code, const char *msg)
{
	struct weft_hub *hub = s->hub;

	if (!usable(s))
		return;
	if (code == WEFT_PERR_PROTOCOL || code == WEFT_PERR_TOO_BIG || code == WEFT_PERR_VERSION)
		hub->stats.protocol++;
	weft__mp_buf_reset(&hub->out);
	weft__msg_error_write(&hub->out, code, msg);
	(void)send_out(s);
	if (usable(s)) {
		s->state = WEFT_SS_CLOSED;
		hub->io.close(hub->io.ctx, s->io, close_code(code), msg);
	}
}

int weft__hub_open(struct weft_hub *hub, void *io, uint64_t now_ms, struct weft_ssn **out)
{
	struct weft_ssn *s = weft__zalloc(hub->alloc, sizeof(*s));

	if (!s)
		return WEFT_ENOMEM;
	s->hub = hub;
	s->io = io;
	s->state = WEFT_SS_AWAIT_HELLO;
	s->last_recv_ms = now_ms;
	weft__mp_buf_init(&s->restate, hub->alloc, 0);
	s->next = hub->list.next;
	s->prev = &hub->list;
	hub->list.next->prev = s;
	hub->list.next = s;
	hub->stats.sessions++;
	*out = s;
	if (hub->stopping)
		fail(s, WEFT_PERR_SHUTDOWN, "server is stopping");
	return WEFT_OK;
}

void weft__ssn_closed(struct weft_ssn *s)
{
	s->state = WEFT_SS_CLOSED;
	s->dead = true;
	if (weft__authority_staged(s->hub->au) == 0)
		ssn_free(s);
}

/* ---- catch-up ---- */

struct chunk {
	struct weft_ssn *s;
	struct mp_buf units; /* encoded units of the chunk */
	uint32_t n;
	uint64_t last_pos;
	bool full; /* stop: the chunk is full */
};

static int chunk_unit(void *ctx, uint64_t pos, const void *val, size_t len)
{
	struct chunk *ck = ctx;
	struct weft_hub *hub = ck->s->hub;

	weft__mp_write_raw(&ck->units, val, len);
	if (ck->units.err)
		return ck->units.err;
	ck->n++;
	ck->last_pos = pos;
	if (ck->n >= hub->cfg.catchup_units || ck->units.len >= hub->cfg.catchup_chunk) {
		ck->full = true;
		return 1; /* stop the scan: one chunk at a time */
	}
	return WEFT_OK;
}

/* Copies the keys of every document, in (collection, id) order. */
static int snap_build(struct weft_ssn *s)
{
	struct weft_hub *hub = s->hub;
	struct weft_docset *ds = weft__authority_docs(hub->au);
	struct weft_doc **list;
	size_t n;
	int rc;

	if ((rc = weft__docset_list(ds, &list, &n)) != WEFT_OK)
		return rc;
	if (n == 0) {
		weft__docset_free_list(ds, list);
		return WEFT_OK; /* nothing to send: s->snap stays NULL */
	}
	s->snap = weft__zalloc(hub->alloc, n * sizeof(*s->snap));
	if (!s->snap) {
		weft__docset_free_list(ds, list);
		return WEFT_ENOMEM;
	}
	hub->nsnapping++; /* paired with snap_free */
	for (size_t i = 0; i < n; i++) {
		const char *c, *id;
		size_t clen, ilen;
		struct snapkey *k = &s->snap[s->nsnap];

		weft__doc_key(list[i], &c, &clen, &id, &ilen);
		k->coll = weft__strndup(hub->alloc, c, clen);
		k->id = weft__strndup(hub->alloc, id, ilen);
		s->nsnap++;
		if (!k->coll || !k->id) {
			weft__docset_free_list(ds, list);
			snap_free(s);
			return WEFT_ENOMEM;
		}
		k->coll_len = clen;
		k->id_len = ilen;
	}
	weft__docset_free_list(ds, list);
	return WEFT_OK;
}

/* One SNAPSHOT chunk: the current states of the next documents. Only at a
 * point where nothing is staged, since staged units are in the documents
 * and must not leave before their commit. */
static int snap_chunk(struct weft_ssn *s)
{
	struct weft_hub *hub = s->hub;
	struct weft_docset *ds = weft__authority_docs(hub->au);
	struct mp_buf body;
	size_t end = s->snap_next;
	uint32_t n = 0;
	int rc;

	weft__mp_buf_init(&body, hub->alloc, 0);
	while (end < s->nsnap && n < hub->cfg.catchup_units && body.len < hub->cfg.catchup_chunk) {
		const struct snapkey *k = &s->snap[end++];
		struct weft_doc *d = weft__docset_find(ds, k->coll, k->coll_len, k->id, k->id_len);

		if (!d)
			continue;
		weft__mp_buf_reset(&hub->state);
		weft__doc_encode_full(d, &hub->state);
		if (hub->state.err) {
			body.err = hub->state.err;
			break;
		}
		weft__msg_doc_state_write(&body, k->coll, k->coll_len, k->id, k->id_len,
		                          hub->state.data, hub->state.len);
		n++;
	}
	if ((rc = body.err) == WEFT_OK) {
		weft__msg_snapshot_begin(&hub->out, n);
		weft__mp_write_raw(&hub->out, body.data, body.len);
		weft__msg_snapshot_end(&hub->out, end, s->nsnap);
		hub->stats.snapshots++;
		if (send_out(s) == WEFT_OK)
			s->snap_next = end;
	}
	weft__mp_buf_free(&body);
	if (s->snap_next == s->nsnap)
		snap_free(s); /* done: the log from where it started follows */
	return rc;
}

/*
 * Sends catch-up chunks while the transport has room, and SYNCED once the
 * log head is reached (the session is live from then on). Returns a store
 * error, else WEFT_OK.
 */
static int catch_up(struct weft_ssn *s)
{
	struct weft_hub *hub = s->hub;
	struct chunk ck = {.s = s};
	int rc = WEFT_OK;

	weft__mp_buf_init(&ck.units, hub->alloc, 0);
	while (usable(s) && s->state == WEFT_SS_CATCHING_UP && s->snap) {
		if (weft__authority_staged(hub->au) > 0 ||
		    hub->io.queued(hub->io.ctx, s->io) >= hub->cfg.catchup_window)
			break; /* resumed at a later commit point */
		if ((rc = snap_chunk(s)) != WEFT_OK)
			break;
	}
	while (rc == WEFT_OK && usable(s) && s->state == WEFT_SS_CATCHING_UP && !s->snap) {
		struct weft_cursor head = weft__authority_cursor(hub->au);

		if (s->caught >= head.pos) {
			weft__msg_synced_write(&hub->out, &head);
			if (send_out(s) == WEFT_OK)
				s->state = WEFT_SS_LIVE;
			break;
		}
		if (hub->io.queued(hub->io.ctx, s->io) >= hub->cfg.catchup_window)
			break; /* resumed at a later commit point */
		weft__mp_buf_reset(&ck.units);
		ck.n = 0;
		ck.full = false;
		rc = weft__authority_scan(hub->au, s->caught, chunk_unit, &ck);
		if (rc == 1)
			rc = WEFT_OK;
		if (rc != WEFT_OK || ck.n == 0) {
			if (rc == WEFT_OK)
				rc = WEFT_ECORRUPT; /* the log ends before the head */
			break;
		}
		head.pos = ck.last_pos;
		weft__msg_changes_begin(&hub->out, ck.n, true);
		weft__mp_write_raw(&hub->out, ck.units.data, ck.units.len);
		weft__msg_changes_end(&hub->out, &head, ck.last_pos - s->catch_start,
		                      weft__authority_cursor(hub->au).pos - s->catch_start);
		hub->stats.catchups++;
		if (send_out(s) != WEFT_OK)
			break;
		s->caught = ck.last_pos;
	}
	weft__mp_buf_free(&ck.units);
	if (rc != WEFT_OK) {
		logf_(hub, "catch-up of replica %016" PRIx64 " failed: %s", s->replica,
		      weft_strerror(rc));
		fail(s, WEFT_PERR_INTERNAL, "catch-up failed");
	}
	return rc;
}

/* ---- messages ---- */

static void on_hello(struct weft_ssn *s, struct mp_reader *r, uint32_t nfields, uint64_t now_ms)
{
	struct weft_hub *hub = s->hub;
	struct weft_cursor head = weft__authority_cursor(hub->au);
	struct weft_hello h;
	struct weft_welcome w = {
	    .version = WEFT_PROTO_VERSION,
	    .server_time_ms = now_ms,
	    .max_message = hub->cfg.max_message,
	    .max_push = hub->cfg.max_push,
	    .max_drift_ms = hub->cfg.max_drift_ms,
	    .max_txn_ops = hub->cfg.max_txn_ops,
	    .heartbeat_ms = hub->cfg.heartbeat_ms,
	    .cap_names = server_caps,
	};

	if (s->state != WEFT_SS_AWAIT_HELLO) {
		fail(s, WEFT_PERR_PROTOCOL, "repeated HELLO");
		return;
	}
	if (weft__msg_hello_read(r, nfields, &h) != WEFT_OK) {
		fail(s, WEFT_PERR_PROTOCOL, "malformed HELLO");
		return;
	}
	if (h.version != WEFT_PROTO_VERSION) {
		fail(s, WEFT_PERR_VERSION, "unsupported protocol version");
		return;
	}
	if (h.replica == 0) {
		fail(s, WEFT_PERR_PROTOCOL, "replica id 0 is reserved");
		return;
	}
	s->replica = h.replica;
	weft__msg_welcome_write(&hub->out, &w);
	if (send_out(s) != WEFT_OK)
		return;
	/*
	 * Another epoch (the store was replaced or restored) or a cursor from
	 * the future: the replica's cursor means nothing here, so it gets the
	 * whole log again. It never silently misses a change.
	 */
	s->caught = 0;
	if (h.has_cursor && h.cursor.epoch == head.epoch && h.cursor.pos <= head.pos)
		s->caught = h.cursor.pos;
	s->catch_start = s->caught;
	s->state = WEFT_SS_CATCHING_UP;
	/*
	 * No usable cursor and a long log: the current documents, then the log
	 * from here. A document changed meanwhile is in both, which is
	 * harmless: applying is idempotent. Each snapshot holds a copy of
	 * every key, so only max_snapshots run at once; others read the log.
	 */
	if (s->caught == 0 && head.pos > 0 && head.pos >= hub->cfg.snapshot_min &&
	    hub->nsnapping < hub->cfg.max_snapshots &&
	    weft__caps_has(&h.caps, h.ncaps, "snapshot")) {
		if (snap_build(s) != WEFT_OK) {
			fail(s, WEFT_PERR_INTERNAL, "out of memory");
			return;
		}
		s->caught = s->catch_start = head.pos;
		if (!s->snap) /* no documents at all */
			s->caught = s->catch_start = 0;
	}
	(void)catch_up(s);
}

/* Queues [collection, id] of the documents of a re-pushed duplicate unit
 * whose ops the server may have re-stamped: the ACK that said so may have
 * been lost, and the replica's view may still hold its own stamps. The
 * next ACK carries the documents' states. */
static int restate_dup(struct weft_ssn *s, const struct weft_unit *u)
{
	struct weft_hub *hub = s->hub;
	struct mp_reader r = u->ops;
	int rc;

	for (uint32_t i = 0; i < u->nops && s->nrestate < MAX_RESTATE; i++) {
		struct weft_op op;
		bool maybe;

		if (weft__op_decode(&r, &op) != WEFT_OK)
			return WEFT_OK; /* was never committed then: nothing to restate */
		rc = weft__authority_restamped(hub->au, op.replica, op.incarnation, op.seq, &maybe);
		if (rc != WEFT_OK)
			return rc;
		if (!maybe)
			continue;
		weft__mp_write_array(&s->restate, 2);
		weft__mp_write_str(&s->restate, op.coll, op.coll_len);
		weft__mp_write_str(&s->restate, op.id, op.id_len);
		if (s->restate.err)
			return s->restate.err;
		s->nrestate++;
	}
	return WEFT_OK;
}

/* The highest identity of the unit (its last op's). */
static void unit_last(const struct weft_unit *u, uint32_t *inc, uint64_t *seq)
{
	struct mp_reader r = u->ops;
	uint64_t v, rep;
	uint32_t n;

	*inc = 0;
	*seq = 0;
	for (uint32_t i = 0; i + 1 < u->nops; i++)
		(void)weft__mp_skip(&r, NULL, NULL);
	if (weft__mp_read_array(&r, &n) == WEFT_OK && weft__mp_read_uint(&r, &rep) == WEFT_OK &&
	    weft__mp_read_uint(&r, &v) == WEFT_OK && weft__mp_read_uint(&r, seq) == WEFT_OK)
		*inc = (uint32_t)v;
}

static void group_lost(struct weft_hub *hub);

static void on_push(struct weft_ssn *s, struct mp_reader *r, uint32_t nfields, uint64_t now_ms)
{
	struct weft_hub *hub = s->hub;
	struct mp_reader v;
	uint32_t n, gaps;
	uint64_t ops = 0;

	if (s->state != WEFT_SS_CATCHING_UP && s->state != WEFT_SS_LIVE) {
		fail(s, WEFT_PERR_PROTOCOL, "PUSH before HELLO");
		return;
	}
	if (nfields < 2 || weft__mp_read_array(r, &n) != WEFT_OK) {
		fail(s, WEFT_PERR_PROTOCOL, "malformed PUSH");
		return;
	}
	/* The structure of the whole message first: a malformed PUSH is
	 * refused before anything of it is staged. */
	v = *r;
	for (uint32_t i = 0; i < n; i++) {
		struct weft_unit u;

		if (weft__unit_read(&v, &u) != WEFT_OK) {
			fail(s, WEFT_PERR_PROTOCOL, "malformed unit in PUSH");
			return;
		}
		if (u.nops > hub->cfg.max_txn_ops) {
			fail(s, WEFT_PERR_TOO_BIG, "transaction over max_txn_ops");
			return;
		}
		ops += u.nops;
	}
	if (ops > hub->cfg.max_push) {
		fail(s, WEFT_PERR_TOO_BIG, "too many ops in one PUSH");
		return;
	}
	if (weft__msg_skip_rest(&v, nfields, 2) != WEFT_OK) {
		fail(s, WEFT_PERR_PROTOCOL, "malformed PUSH");
		return;
	}
	weft__authority_set_clock(hub->au, now_ms, hub->cfg.max_drift_ms);
	gaps = 0;
	for (uint32_t i = 0; i < n; i++) {
		enum weft_stage_outcome outcome;
		struct weft_unit u;
		uint32_t inc;
		uint64_t seq;
		bool gap;
		int rc;

		(void)weft__unit_read(r, &u); /* checked above */
		rc = weft__authority_stage_unit(hub->au, &u, s->replica, s, &outcome, &gap);
		if (rc == WEFT_EPROTO) {
			fail(s, WEFT_PERR_PROTOCOL, weft__authority_errmsg(hub->au));
			return;
		}
		if (rc != WEFT_OK) {
			/* Out of memory: the authority dropped the whole group. */
			logf_(hub, "%s", weft__authority_errmsg(hub->au));
			s->ack_pending = true;
			group_lost(hub);
			return;
		}
		if (gap) {
			/* One log line per PUSH at most: a replica skipping on
			 * every unit must not flood the operator's log. */
			if (gaps++ == 0)
				logf_(hub, "replica %016" PRIx64 " skipped ops (a restored store?)",
				      s->replica);
			hub->stats.gaps++;
		}
		if (outcome == WEFT_DUPLICATE) {
			hub->stats.dups++;
			if (restate_dup(s, &u) != WEFT_OK) {
				fail(s, WEFT_PERR_INTERNAL, "out of memory");
				return;
			}
		}
		unit_last(&u, &inc, &seq);
		if (!s->ack_pending ||
		    weft__op_key(inc, seq) > weft__op_key(s->ack_inc, s->ack_seq)) {
			s->ack_inc = inc;
			s->ack_seq = seq;
		}
		s->ack_pending = true;
	}
}

void weft__ssn_recv(struct weft_ssn *s, const uint8_t *data, size_t len, uint64_t now_ms)
{
	struct weft_hub *hub = s->hub;
	struct mp_reader r;
	uint32_t nfields;
	int type;

	if (!usable(s))
		return;
	s->last_recv_ms = now_ms;
	weft__mp_reader_init(&r, data, len);
	if (weft__msg_begin(&r, &type, &nfields) != WEFT_OK) {
		fail(s, WEFT_PERR_PROTOCOL, "not a weft message");
		return;
	}
	switch (type) {
	case WEFT_MSG_HELLO:
		on_hello(s, &r, nfields, now_ms);
		break;
	case WEFT_MSG_PUSH:
		on_push(s, &r, nfields, now_ms);
		break;
	case WEFT_MSG_PING: {
		uint64_t nonce;

		if (s->state == WEFT_SS_AWAIT_HELLO) {
			fail(s, WEFT_PERR_PROTOCOL, "PING before HELLO");
			break;
		}
		if (weft__msg_ping_read(&r, nfields, &nonce) != WEFT_OK) {
			fail(s, WEFT_PERR_PROTOCOL, "malformed PING");
			break;
		}
		weft__msg_ping_write(&hub->out, WEFT_MSG_PONG, nonce);
		(void)send_out(s);
		break;
	}
	case WEFT_MSG_PONG: {
		uint64_t nonce;

		if (weft__msg_ping_read(&r, nfields, &nonce) != WEFT_OK)
			fail(s, WEFT_PERR_PROTOCOL, "malformed PONG");
		break;
	}
	case WEFT_MSG_BYE: {
		const char *why;
		size_t wlen;

		if (weft__msg_bye_read(&r, nfields, &why, &wlen) != WEFT_OK) {
			fail(s, WEFT_PERR_PROTOCOL, "malformed BYE");
			break;
		}
		s->state = WEFT_SS_CLOSED;
		hub->io.close(hub->io.ctx, s->io, 1000, "bye");
		break;
	}
	default:
		/* Server-to-replica types are a protocol error here; types this
		 * version does not know are ignored (forward compatibility). */
		if (type <= WEFT_MSG_LAST)
			fail(s, WEFT_PERR_PROTOCOL, "unexpected message type");
		break;
	}
}

/* ---- the commit point ---- */

/* The collection and id of the op at r (consumed). */
static int op_doc(struct mp_reader *r, const char **coll, size_t *clen, const char **id,
                  size_t *ilen)
{
	struct mp_reader op = *r;
	uint32_t n;

	if (weft__mp_skip(r, NULL, NULL) != WEFT_OK || weft__mp_read_array(&op, &n) != WEFT_OK ||
	    n != 9)
		return WEFT_EPROTO;
	for (int i = 0; i < 5; i++)
		if (weft__mp_skip(&op, NULL, NULL) != WEFT_OK)
			return WEFT_EPROTO;
	if (weft__mp_read_str(&op, coll, clen) != WEFT_OK ||
	    weft__mp_read_str(&op, id, ilen) != WEFT_OK || *clen == 0 ||
	    *clen > WEFT_MAX_COLLECTION || *ilen == 0 || *ilen > WEFT_MAX_ID)
		return WEFT_EPROTO;
	return WEFT_OK;
}

/* Writes the state entry of one document, if it exists. Returns 1 if
 * written. */
static int state_entry(struct weft_hub *hub, const char *coll, size_t clen, const char *id,
                       size_t ilen, bool write)
{
	struct weft_doc *d = weft__docset_find(weft__authority_docs(hub->au), coll, clen, id, ilen);

	if (!d)
		return 0;
	if (write) {
		weft__mp_buf_reset(&hub->state);
		weft__doc_encode(d, &hub->state);
		if (hub->state.err)
			hub->out.err = hub->state.err; /* fails the send */
		weft__msg_doc_state_write(&hub->out, coll, clen, id, ilen, hub->state.data,
		                          hub->state.len);
	}
	return 1;
}

/* True when an op of the unit before the one at `upto` names the same
 * document (one state per document). */
static bool doc_seen(const uint8_t *raw, size_t len, bool txn, uint32_t upto, const char *coll,
                     size_t clen, const char *id, size_t ilen)
{
	struct mp_reader r;
	uint32_t n;

	weft__mp_reader_init(&r, raw, len);
	if (txn &&
	    (weft__mp_read_array(&r, &n) != WEFT_OK || weft__mp_read_array(&r, &n) != WEFT_OK))
		return false;
	for (uint32_t i = 0; i < upto; i++) {
		const char *c, *d;
		size_t cl, dl;

		if (op_doc(&r, &c, &cl, &d, &dl) != WEFT_OK)
			return false;
		if (cl == clen && dl == ilen && memcmp(c, coll, clen) == 0 &&
		    memcmp(d, id, ilen) == 0)
			return true;
	}
	return false;
}

/* Visits the documents a rejected unit names; writes their states when
 * `write`. Returns how many exist. */
static uint32_t reject_states(struct weft_hub *hub, const struct weft_rejected *j, bool write)
{
	struct weft_unit u;
	struct mp_reader r;
	uint32_t count = 0;

	weft__mp_reader_init(&r, j->raw, j->raw_len);
	if (weft__unit_read(&r, &u) != WEFT_OK)
		return 0;
	r = u.ops;
	for (uint32_t i = 0; i < u.nops; i++) {
		const char *coll, *id;
		size_t clen, ilen;

		if (op_doc(&r, &coll, &clen, &id, &ilen) != WEFT_OK)
			break; /* the rest is unreadable: no state for it */
		if (doc_seen(j->raw, j->raw_len, u.txn, i, coll, clen, id, ilen))
			continue;
		count += (uint32_t)state_entry(hub, coll, clen, id, ilen, write);
	}
	return count;
}

static void send_reject(struct weft_hub *hub, const struct weft_rejected *j)
{
	struct weft_ssn *s = j->origin;

	hub->stats.rejected++;
	if (!usable(s))
		return;
	weft__msg_reject_write(&hub->out, j->incarnation, j->first_seq, j->last_seq, j->code,
	                       j->reason, reject_states(hub, j, false));
	(void)reject_states(hub, j, true);
	(void)send_out(s);
}

/* Visits the [collection, id] pairs queued in s->restate whose document
 * exists, writing their states when `write` (which also empties the
 * queue). Returns the number visited. */
static uint32_t restate_visit(struct weft_ssn *s, bool write)
{
	struct mp_reader r;
	uint32_t count = 0;

	weft__mp_reader_init(&r, s->restate.data, s->restate.len);
	for (uint32_t i = 0; i < s->nrestate; i++) {
		const char *coll, *id;
		size_t clen, ilen;
		uint32_t two;

		/* We wrote these bytes ourselves; they cannot be malformed. */
		if (weft__mp_read_array(&r, &two) != WEFT_OK ||
		    weft__mp_read_str(&r, &coll, &clen) != WEFT_OK ||
		    weft__mp_read_str(&r, &id, &ilen) != WEFT_OK)
			break;
		count += (uint32_t)state_entry(s->hub, coll, clen, id, ilen, write);
	}
	if (write) {
		weft__mp_buf_reset(&s->restate);
		s->nrestate = 0;
	}
	return count;
}

/* True when batch[i].ops[k] is the first re-stamped op of the session's
 * replica that names its document in the batch. */
static bool first_restamp_of_doc(const struct weft_committed *batch, size_t i, uint32_t k)
{
	const struct weft_op *op = &batch[i].ops[k].op;

	if (!batch[i].ops[k].restamped)
		return false;
	for (size_t b = 0; b <= i; b++) {
		if (batch[b].replica != batch[i].replica || !batch[b].restamped)
			continue;
		for (uint32_t m = 0; m < batch[b].nops && (b < i || m < k); m++) {
			const struct weft_op *o = &batch[b].ops[m].op;

			if (batch[b].ops[m].restamped && o->coll_len == op->coll_len &&
			    o->id_len == op->id_len &&
			    memcmp(o->coll, op->coll, op->coll_len) == 0 &&
			    memcmp(o->id, op->id, op->id_len) == 0)
				return false;
		}
	}
	return true;
}

/*
 * ACK [4, inc, seq, restamps, states]. When the authority re-stamped ops
 * of this replica (clock drift), the ACK lists their new stamps and the
 * authoritative state of each document they touched, so the replica can
 * rebuild its view without its own far-future stamps.
 */
static void send_ack(struct weft_ssn *s, const struct weft_committed *batch, size_t n)
{
	struct weft_hub *hub = s->hub;
	uint32_t nre = 0, ndocs = 0;

	for (size_t i = 0; i < n; i++) {
		if (batch[i].replica != s->replica || !batch[i].restamped)
			continue;
		for (uint32_t k = 0; k < batch[i].nops; k++) {
			nre += batch[i].ops[k].restamped;
			ndocs += first_restamp_of_doc(batch, i, k);
		}
	}
	weft__msg_ack_begin(&hub->out, s->ack_inc, s->ack_seq, nre, true);
	for (size_t i = 0; i < n && nre; i++) {
		if (batch[i].replica != s->replica || !batch[i].restamped)
			continue;
		for (uint32_t k = 0; k < batch[i].nops; k++)
			if (batch[i].ops[k].restamped)
				weft__msg_restamp_write(&hub->out, batch[i].ops[k].op.incarnation,
				                        batch[i].ops[k].op.seq,
				                        batch[i].ops[k].op.hlc);
	}
	weft__msg_ack_states(&hub->out, ndocs + restate_visit(s, false));
	for (size_t i = 0; i < n && ndocs; i++) {
		if (batch[i].replica != s->replica || !batch[i].restamped)
			continue;
		for (uint32_t k = 0; k < batch[i].nops; k++) {
			const struct weft_op *op = &batch[i].ops[k].op;

			if (first_restamp_of_doc(batch, i, k))
				(void)state_entry(hub, op->coll, op->coll_len, op->id, op->id_len,
				                  true);
		}
	}
	(void)restate_visit(s, true);
	{
		struct weft_cursor cur = weft__authority_cursor(hub->au);

		cur.pos = s->caught;
		weft__cursor_write(&hub->out, &cur);
	}
	(void)send_out(s);
}

/* CHANGES of the batch to a live session: every unit but those it
 * pushed itself, in chunks. Units of its replica that came through
 * another connection (an old one whose PUSH arrived late, from an
 * incarnation that crashed before it could keep them) are sent: the
 * replica may not have them. */
static void broadcast_to(struct weft_ssn *s, const struct weft_committed *batch, size_t n)
{
	struct weft_hub *hub = s->hub;
	struct weft_cursor cur = weft__authority_cursor(hub->au);
	size_t i = 0;

	while (i < n && usable(s)) {
		size_t start = i, bytes = 0;
		uint32_t cnt = 0;

		for (; i < n && cnt < hub->cfg.catchup_units && bytes < hub->cfg.catchup_chunk;
		     i++) {
			if (batch[i].origin == s)
				continue;
			cnt++;
			bytes += batch[i].raw_len;
		}
		if (cnt == 0)
			break;
		cur.pos = batch[i - 1].pos;
		weft__msg_changes_begin(&hub->out, cnt, false);
		for (size_t k = start; k < i; k++)
			if (batch[k].origin != s)
				weft__mp_write_raw(&hub->out, batch[k].raw, batch[k].raw_len);
		weft__msg_changes_end(&hub->out, &cur, 0, 0);
		if (send_out(s) != WEFT_OK)
			break;
	}
	s->caught = batch[n - 1].pos;
}

/* Every pusher of a lost group is told to re-push: ERROR 4 and close. */
static void group_lost(struct weft_hub *hub)
{
	hub->stats.failures++;
	for (struct weft_ssn *s = hub->list.next; s != &hub->list; s = s->next) {
		if (s->ack_pending) {
			s->ack_pending = false;
			fail(s, WEFT_PERR_INTERNAL, "commit failed; retry later");
		}
	}
}

static void reap(struct weft_hub *hub)
{
	for (struct weft_ssn *s = hub->list.next, *next; s != &hub->list; s = next) {
		next = s->next;
		if (s->dead)
			ssn_free(s);
	}
}

int weft__hub_commit(struct weft_hub *hub, uint64_t now_ms)
{
	const struct weft_committed *batch = NULL;
	const struct weft_rejected *rej;
	size_t n = 0, nrej = 0;
	bool committed = false;
	int rc = WEFT_OK;

	(void)now_ms;
	if (weft__authority_staged(hub->au) > 0) {
		rc = weft__authority_commit(hub->au);
		committed = rc == WEFT_OK;
		if (rc != WEFT_OK) {
			logf_(hub, "%s", weft__authority_errmsg(hub->au));
			group_lost(hub);
		}
	}
	if (committed) {
		hub->stats.commits++;
		batch = weft__authority_batch(hub->au, &n);
		rej = weft__authority_rejected(hub->au, &nrej);
		hub->stats.units += n;
		/* Fan-out first: a live pusher's ACK then carries a cursor past
		 * everything of this group. */
		for (struct weft_ssn *s = hub->list.next; s != &hub->list; s = s->next)
			if (usable(s) && s->state == WEFT_SS_LIVE && n > 0)
				broadcast_to(s, batch, n);
		for (size_t i = 0; i < nrej; i++)
			send_reject(hub, &rej[i]);
	}
	for (struct weft_ssn *s = hub->list.next; s != &hub->list; s = s->next) {
		if (!s->ack_pending)
			continue;
		s->ack_pending = false;
		if (usable(s))
			send_ack(s, committed ? batch : NULL, committed ? n : 0);
	}
	for (struct weft_ssn *s = hub->list.next; s != &hub->list; s = s->next)
		if (usable(s) && s->state == WEFT_SS_CATCHING_UP)
			(void)catch_up(s);
	reap(hub);
	return rc;
}

uint64_t weft__hub_tick(struct weft_hub *hub, uint64_t now_ms)
{
	uint64_t next = UINT64_MAX, limit = hub->cfg.heartbeat_ms * 3;

	if (hub->cfg.heartbeat_ms == 0)
		return next;
	for (struct weft_ssn *s = hub->list.next; s != &hub->list; s = s->next) {
		if (!usable(s))
			continue;
		if (now_ms >= s->last_recv_ms + limit) {
			hub->stats.timeouts++;
			fail(s, WEFT_PERR_TIMEOUT, "no message for 3 heartbeats");
		} else if (s->last_recv_ms + limit < next) {
			next = s->last_recv_ms + limit;
		}
	}
	return next;
}

void weft__hub_shutdown(struct weft_hub *hub, uint64_t now_ms)
{
	if (hub->stopping)
		return;
	/* Commit what was read, so nothing read is lost, then say goodbye. */
	(void)weft__hub_commit(hub, now_ms);
	hub->stopping = true;
	for (struct weft_ssn *s = hub->list.next; s != &hub->list; s = s->next)
		fail(s, WEFT_PERR_SHUTDOWN, "server is stopping");
}
