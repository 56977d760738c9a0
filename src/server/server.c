/*
 * server.c - `weft serve`: the WebSocket front of the core's authority.
 *
 * One libuv loop on one thread (deliberately thin for now: issue 7 brings
 * partitions and the work spread over cores). Each loop iteration:
 *   1. reads from every ready connection; PUSH messages are validated op by
 *      op and staged in the authority (duplicates are noted for the ACK);
 *   2. a uv_check handle, which runs right after the I/O callbacks of the
 *      iteration, commits everything staged in ONE durable store
 *      transaction (group commit: the more connections push, the more ops
 *      share an fsync);
 *   3. only then sends each pusher its ACK and broadcasts the committed
 *      ops to every other connection as CHANGES with the new cursor.
 * Nothing uncommitted is ever acknowledged or sent. A connection that
 * sends something malformed gets an ERROR and a close; nobody else notices.
 */
#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>

#include <uv.h>

#include "weft/weft.h"
#include "core/authority.h"
#include "net/ws.h"
#include "server/server.h"
#include "store/sqlite_store.h"

#define MAX_PUSH_OPS 10000
#define CHANGES_CHUNK_BYTES (512 * 1024)
#define CHANGES_CHUNK_OPS 2000

struct conn {
	struct conn *next; /* list of live connections */
	struct conn *prev;
	struct server *srv;
	struct weft_ws_conn *ws;
	bool hello;            /* HELLO accepted */
	bool closing;          /* ERROR sent / close requested */
	uint64_t replica;      /* from HELLO */
	bool ack_pending;      /* ops pushed since the last commit */
	uint32_t ack_inc;      /* highest op identity pushed ... */
	uint64_t ack_seq;      /* ... on this connection */
	struct mp_buf restate; /* [collection, id] pairs whose state goes in
	                          the next ACK (re-pushed far-future ops) */
	uint32_t nrestate;     /* pairs in restate */
};

/* Most documents one ACK re-sends for re-pushed far-future ops; more are
 * dropped (the replica's view of them stays ahead until it next edits). */
#define MAX_RESTATE 1024

struct server {
	uv_loop_t loop;
	struct weft_ws_server *ws;
	struct weft_store *st;
	struct weft_authority *au;
	uv_check_t commit; /* the group-commit point */
	uv_signal_t sigint;
	uv_signal_t sigterm;
	struct conn conns; /* list head (sentinel) */
	struct weft_ws_limits limits;
	struct mp_buf out; /* message scratch */
	bool stopping;
	uint64_t max_drift_ms; /* from weft_serve_opts */
	int fatal;             /* a fatal error code, 0 if none */
	char *errbuf;
	size_t errlen;
};

void weft__serve_opts_init(struct weft_serve_opts *o)
{
	memset(o, 0, sizeof(*o));
	o->host = "127.0.0.1";
	o->port = 7410;
	o->data_dir = "./weft-data";
	o->durable = 1;
	o->max_drift_ms = WEFT_MAX_DRIFT_MS;
}

static uint64_t wall_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static void conn_error(struct conn *c, int code, const char *msg)
{
	struct server *srv = c->srv;

	if (c->closing)
		return;
	c->closing = true;
	weft__mp_buf_reset(&srv->out);
	weft__msg_error_write(&srv->out, code, msg);
	if (!srv->out.err)
		(void)weft__ws_send(c->ws, srv->out.data, srv->out.len);
	weft__mp_buf_reset(&srv->out);
	weft__ws_close(c->ws,
	               code == WEFT_PERR_SHUTDOWN   ? 1001
	               : code == WEFT_PERR_INTERNAL ? 1011
	                                            : 1008,
	               msg);
}

static int send_out(struct conn *c)
{
	struct server *srv = c->srv;
	int rc;

	if (srv->out.err) {
		rc = srv->out.err;
		weft__mp_buf_reset(&srv->out);
		return rc;
	}
	rc = weft__ws_send(c->ws, srv->out.data, srv->out.len);
	weft__mp_buf_reset(&srv->out);
	return rc;
}

/* ---- catch-up: CHANGES from the log, in chunks, then SYNCED ---- */

struct catchup {
	struct conn *c;
	struct mp_buf ops; /* encoded ops of the current chunk */
	uint32_t n;        /* ops in the chunk */
	uint64_t last_pos; /* position of the chunk's last op */
	int rc;
};

static int catchup_flush(struct catchup *cu)
{
	struct server *srv = cu->c->srv;
	struct weft_cursor cur = weft__authority_cursor(srv->au);

	if (cu->n == 0)
		return WEFT_OK;
	cur.pos = cu->last_pos;
	weft__mp_write_array(&srv->out, 3);
	weft__mp_write_uint(&srv->out, WEFT_MSG_CHANGES);
	weft__mp_write_array(&srv->out, cu->n);
	weft__mp_write_raw(&srv->out, cu->ops.data, cu->ops.len);
	weft__cursor_write(&srv->out, &cur);
	weft__mp_buf_reset(&cu->ops);
	cu->n = 0;
	return send_out(cu->c);
}

static int catchup_op(void *ctx, uint64_t pos, const void *val, size_t len)
{
	struct catchup *cu = ctx;
	int rc;

	weft__mp_write_raw(&cu->ops, val, len);
	if (cu->ops.err)
		return cu->ops.err;
	cu->n++;
	cu->last_pos = pos;
	if (cu->n >= CHANGES_CHUNK_OPS || cu->ops.len >= CHANGES_CHUNK_BYTES) {
		if ((rc = catchup_flush(cu)) != WEFT_OK)
			return rc;
	}
	return WEFT_OK;
}

static int send_catchup(struct conn *c, const struct weft_hello *h)
{
	struct server *srv = c->srv;
	struct weft_cursor now = weft__authority_cursor(srv->au);
	struct catchup cu = {.c = c};
	uint64_t from = 0;
	int rc;

	/* Another epoch (a different store) or a cursor from the future:
	 * start over from the beginning of the log. A store restored from a
	 * backup keeps its epoch; minting a new one on restore is issue 7's. */
	if (h->has_cursor && h->cursor.epoch == now.epoch && h->cursor.pos <= now.pos)
		from = h->cursor.pos;
	weft__mp_buf_init(&cu.ops, weft__alloc_default(), 0);
	rc = weft__authority_scan(srv->au, from, catchup_op, &cu);
	if (rc == WEFT_OK)
		rc = catchup_flush(&cu);
	weft__mp_buf_free(&cu.ops);
	if (rc != WEFT_OK)
		return rc;
	weft__msg_synced_write(&srv->out, &now);
	return send_out(c);
}

/* ---- messages ---- */

static void on_hello(struct conn *c, struct mp_reader *r, uint32_t nfields)
{
	struct server *srv = c->srv;
	struct weft_hello h;
	struct weft_welcome w = {
	    .version = WEFT_PROTO_VERSION,
	    .server_time_ms = wall_ms(),
	    .max_message = srv->limits.max_message,
	    .max_push = MAX_PUSH_OPS,
	    .max_drift_ms = srv->max_drift_ms,
	};
	int rc;

	if (c->hello || weft__msg_hello_read(r, nfields, &h) != WEFT_OK) {
		conn_error(c, WEFT_PERR_PROTOCOL, "malformed or repeated HELLO");
		return;
	}
	if (h.version != WEFT_PROTO_VERSION) {
		conn_error(c, WEFT_PERR_VERSION, "unsupported protocol version");
		return;
	}
	if (h.replica == 0) {
		conn_error(c, WEFT_PERR_PROTOCOL, "replica id 0 is reserved");
		return;
	}
	c->hello = true;
	c->replica = h.replica;
	weft__msg_welcome_write(&srv->out, &w);
	rc = send_out(c);
	if (rc == WEFT_OK)
		rc = send_catchup(c, &h);
	if (rc != WEFT_OK && !c->closing)
		conn_error(c, WEFT_PERR_INTERNAL, "catch-up failed");
}

static void on_push(struct conn *c, struct mp_reader *r, uint32_t nfields)
{
	struct server *srv = c->srv;
	uint64_t now;
	uint32_t n;
	int rc;

	if (!c->hello) {
		conn_error(c, WEFT_PERR_PROTOCOL, "PUSH before HELLO");
		return;
	}
	if (nfields < 2 || weft__mp_read_array(r, &n) != WEFT_OK) {
		conn_error(c, WEFT_PERR_PROTOCOL, "malformed PUSH");
		return;
	}
	if (n > MAX_PUSH_OPS) {
		conn_error(c, WEFT_PERR_TOO_BIG, "too many ops in one PUSH");
		return;
	}
	now = wall_ms();
	weft__authority_set_clock(srv->au, now, srv->max_drift_ms);
	/* Validate the whole message before staging any of it: a PUSH is
	 * refused as a whole, never half-applied. */
	{
		struct mp_reader v = *r;

		for (uint32_t i = 0; i < n; i++) {
			struct weft_op op;

			rc = weft__op_decode(&v, &op);
			if (rc == WEFT_ENOMEM) {
				conn_error(c, WEFT_PERR_INTERNAL, "out of memory");
				return;
			}
			if (rc != WEFT_OK) {
				conn_error(
				    c, rc == WEFT_ETOOBIG ? WEFT_PERR_TOO_BIG : WEFT_PERR_PROTOCOL,
				    rc == WEFT_ETOOBIG ? "op over the limits" : "malformed op");
				return;
			}
			if (op.replica != c->replica) {
				conn_error(c, WEFT_PERR_PROTOCOL, "op from another replica");
				return;
			}
		}
		if (weft__msg_skip_rest(&v, nfields, 2) != WEFT_OK) {
			conn_error(c, WEFT_PERR_PROTOCOL, "malformed PUSH");
			return;
		}
	}
	for (uint32_t i = 0; i < n; i++) {
		struct weft_op op;

		/* Validated above; only running out of memory can fail now. The
		 * ops staged so far may commit unacknowledged: the replica
		 * re-pushes them and the authority dedupes. */
		rc = weft__op_decode(r, &op);
		if (rc == WEFT_OK)
			rc = weft__authority_stage(srv->au, &op, NULL);
		if (rc < 0) {
			conn_error(c, WEFT_PERR_INTERNAL, "out of memory");
			return;
		}
		/*
		 * A duplicate that would have been re-stamped: its first push was
		 * committed with the server's stamp, but the ACK that said so may
		 * have been lost, and the replica's view still holds the
		 * far-future stamp. Send the document's state with this ACK too.
		 */
		if (rc == 1 && WEFT_HLC_MS(op.hlc) > now + srv->max_drift_ms &&
		    c->nrestate < MAX_RESTATE) {
			weft__mp_write_array(&c->restate, 2);
			weft__mp_write_str(&c->restate, op.coll, op.coll_len);
			weft__mp_write_str(&c->restate, op.id, op.id_len);
			if (c->restate.err) {
				conn_error(c, WEFT_PERR_INTERNAL, "out of memory");
				return;
			}
			c->nrestate++;
		}
		if (!c->ack_pending ||
		    weft__op_key(op.incarnation, op.seq) > weft__op_key(c->ack_inc, c->ack_seq)) {
			c->ack_inc = op.incarnation;
			c->ack_seq = op.seq;
		}
		c->ack_pending = true;
	}
}

static void on_message(void *ud, struct weft_ws_conn *ws, const uint8_t *data, size_t len)
{
	struct conn *c = weft__ws_get_data(ws);
	struct mp_reader r;
	uint32_t nfields;
	int type;

	(void)ud;
	if (c->closing)
		return;
	weft__mp_reader_init(&r, data, len);
	if (weft__msg_begin(&r, &type, &nfields) != WEFT_OK) {
		conn_error(c, WEFT_PERR_PROTOCOL, "not a weft message");
		return;
	}
	switch (type) {
	case WEFT_MSG_HELLO:
		on_hello(c, &r, nfields);
		break;
	case WEFT_MSG_PUSH:
		on_push(c, &r, nfields);
		break;
	default:
		/* Server-to-replica types are a protocol error here; types this
		 * version does not know are ignored (forward compatibility). */
		if (type <= WEFT_MSG_LAST)
			conn_error(c, WEFT_PERR_PROTOCOL, "unexpected message type");
		break;
	}
}

static void on_open(void *ud, struct weft_ws_conn *ws)
{
	struct server *srv = ud;
	struct conn *c = calloc(1, sizeof(*c));

	if (!c) {
		weft__ws_close(ws, 1011, "out of memory");
		return;
	}
	c->srv = srv;
	c->ws = ws;
	weft__mp_buf_init(&c->restate, weft__alloc_default(), 0);
	c->next = srv->conns.next;
	c->prev = &srv->conns;
	srv->conns.next->prev = c;
	srv->conns.next = c;
	weft__ws_set_data(ws, c);
	if (srv->stopping)
		conn_error(c, WEFT_PERR_SHUTDOWN, "server is stopping");
}

static void on_close(void *ud, struct weft_ws_conn *ws, uint16_t code, const char *reason)
{
	struct conn *c = weft__ws_get_data(ws);

	(void)ud;
	(void)code;
	(void)reason;
	if (!c)
		return;
	c->prev->next = c->next;
	c->next->prev = c->prev;
	weft__mp_buf_free(&c->restate);
	free(c);
}

/* ---- group commit, acknowledgements, broadcast ---- */

static void broadcast(struct server *srv)
{
	const struct weft_committed *batch;
	struct weft_cursor cur = weft__authority_cursor(srv->au);
	size_t n;

	batch = weft__authority_batch(srv->au, &n);
	if (n == 0)
		return;
	for (struct conn *c = srv->conns.next; c != &srv->conns; c = c->next) {
		size_t i = 0;

		if (!c->hello || c->closing)
			continue;
		/* Chunks of this connection's share: every op but its own. */
		while (i < n) {
			size_t start = i, bytes = 0;
			uint32_t cnt = 0;

			for (; i < n && cnt < CHANGES_CHUNK_OPS && bytes < CHANGES_CHUNK_BYTES;
			     i++) {
				if (batch[i].op.replica == c->replica)
					continue;
				cnt++;
				bytes += batch[i].op.raw_len;
			}
			if (cnt == 0)
				break;
			cur.pos = batch[i - 1].pos;
			weft__mp_write_array(&srv->out, 3);
			weft__mp_write_uint(&srv->out, WEFT_MSG_CHANGES);
			weft__mp_write_array(&srv->out, cnt);
			for (size_t k = start; k < i; k++)
				if (batch[k].op.replica != c->replica)
					weft__mp_write_raw(&srv->out, batch[k].op.raw,
					                   batch[k].op.raw_len);
			weft__cursor_write(&srv->out, &cur);
			if (send_out(c) != WEFT_OK)
				break; /* the transport closed it (send queue overflow) */
		}
	}
}

/* True when batch[i] is a re-stamped op of `replica` and no earlier one
 * of them touched the same document (one state per document). */
static bool first_restamp_of_doc(const struct weft_committed *batch, size_t i, uint64_t replica)
{
	const struct weft_op *op = &batch[i].op;

	if (!batch[i].restamped || op->replica != replica)
		return false;
	for (size_t k = 0; k < i; k++) {
		const struct weft_op *o = &batch[k].op;

		if (batch[k].restamped && o->replica == replica && o->coll_len == op->coll_len &&
		    o->id_len == op->id_len && memcmp(o->coll, op->coll, op->coll_len) == 0 &&
		    memcmp(o->id, op->id, op->id_len) == 0)
			return false;
	}
	return true;
}

/* Visits the [collection, id] pairs queued in c->restate whose document
 * exists; with out != NULL, writes each one's state entry. Returns the
 * number visited and, when writing, empties the queue. */
static uint32_t restate_visit(struct conn *c, struct weft_docset *docs, struct mp_buf *out,
                              struct mp_buf *state)
{
	struct mp_reader r;
	uint32_t count = 0;

	weft__mp_reader_init(&r, c->restate.data, c->restate.len);
	for (uint32_t i = 0; i < c->nrestate; i++) {
		const char *coll, *id;
		size_t clen, ilen;
		uint32_t two;
		struct weft_doc *d;

		/* We wrote these bytes ourselves; they cannot be malformed. */
		if (weft__mp_read_array(&r, &two) != WEFT_OK ||
		    weft__mp_read_str(&r, &coll, &clen) != WEFT_OK ||
		    weft__mp_read_str(&r, &id, &ilen) != WEFT_OK)
			break;
		d = weft__docset_find(docs, coll, clen, id, ilen);
		if (!d)
			continue;
		count++;
		if (!out)
			continue;
		weft__mp_buf_reset(state);
		weft__doc_encode(d, state);
		if (state->err)
			out->err = state->err; /* fails the send */
		weft__msg_doc_state_write(out, coll, clen, id, ilen, state->data, state->len);
	}
	if (out) {
		weft__mp_buf_reset(&c->restate);
		c->nrestate = 0;
	}
	return count;
}

static uint32_t restate_count(struct conn *c, struct weft_docset *docs)
{
	return restate_visit(c, docs, NULL, NULL);
}

static void restate_write(struct conn *c, struct weft_docset *docs, struct mp_buf *state)
{
	(void)restate_visit(c, docs, &c->srv->out, state);
}

/*
 * Sends a connection its ACK. When the authority re-stamped some of its
 * ops (clock drift), the ACK lists their new stamps and carries the
 * authoritative state of each document they touched, so the replica can
 * rebuild its view without its own far-future stamps.
 */
static void send_ack(struct conn *c, bool committed)
{
	struct server *srv = c->srv;
	const struct weft_committed *batch;
	struct weft_docset *docs = weft__authority_docs(srv->au);
	struct mp_buf state;
	uint32_t nre = 0, ndocs = 0;
	size_t n;

	/* The authority's batch is the last group committed; it belongs to
	 * this ACK only if this loop iteration committed it. */
	batch = weft__authority_batch(srv->au, &n);
	if (!committed)
		n = 0;
	for (size_t i = 0; i < n; i++) {
		if (batch[i].restamped && batch[i].op.replica == c->replica)
			nre++;
		if (first_restamp_of_doc(batch, i, c->replica))
			ndocs++;
	}
	weft__msg_ack_write(&srv->out, c->ack_inc, c->ack_seq, nre);
	for (size_t i = 0; i < n && nre; i++)
		if (batch[i].restamped && batch[i].op.replica == c->replica)
			weft__msg_restamp_write(&srv->out, batch[i].op.incarnation, batch[i].op.seq,
			                        batch[i].op.hlc);
	weft__msg_ack_states(&srv->out, ndocs + restate_count(c, docs));
	weft__mp_buf_init(&state, weft__alloc_default(), 0);
	for (size_t i = 0; i < n && ndocs; i++) {
		const struct weft_op *op = &batch[i].op;
		struct weft_doc *d;

		if (!first_restamp_of_doc(batch, i, c->replica))
			continue;
		/* Committed in this batch, so the document exists. */
		d = weft__docset_find(docs, op->coll, op->coll_len, op->id, op->id_len);
		weft__mp_buf_reset(&state);
		weft__doc_encode(d, &state);
		if (state.err)
			srv->out.err = state.err; /* fails the send below */
		weft__msg_doc_state_write(&srv->out, op->coll, op->coll_len, op->id, op->id_len,
		                          state.data, state.len);
	}
	restate_write(c, docs, &state);
	weft__mp_buf_free(&state);
	if (send_out(c) != WEFT_OK && !c->closing)
		conn_error(c, WEFT_PERR_INTERNAL, "cannot send ACK");
}

static void on_commit_point(uv_check_t *h)
{
	struct server *srv = h->data;
	bool committed = false;
	int rc = WEFT_OK;

	if (weft__authority_staged(srv->au) > 0) {
		rc = weft__authority_commit(srv->au);
		committed = rc == WEFT_OK;
	}
	if (rc != WEFT_OK) {
		fprintf(stderr, "weft serve: %s\n", weft__authority_errmsg(srv->au));
		for (struct conn *c = srv->conns.next; c != &srv->conns; c = c->next) {
			if (c->ack_pending) {
				c->ack_pending = false;
				conn_error(c, WEFT_PERR_INTERNAL, "commit failed; retry later");
			}
		}
		return;
	}
	for (struct conn *c = srv->conns.next; c != &srv->conns; c = c->next) {
		if (!c->ack_pending || c->closing)
			continue;
		c->ack_pending = false;
		send_ack(c, committed);
	}
	if (committed)
		broadcast(srv);
}

/* ---- lifecycle ---- */

static void on_signal(uv_signal_t *h, int signum)
{
	struct server *srv = h->data;

	(void)signum;
	if (srv->stopping)
		return;
	srv->stopping = true;
	/* Commit what is staged, so what was read is not lost, then stop. */
	on_commit_point(&srv->commit);
	for (struct conn *c = srv->conns.next, *next; c != &srv->conns; c = next) {
		next = c->next;
		conn_error(c, WEFT_PERR_SHUTDOWN, "server is stopping");
	}
	weft__ws_server_stop(srv->ws);
	uv_close((uv_handle_t *)&srv->commit, NULL);
	uv_close((uv_handle_t *)&srv->sigint, NULL);
	uv_close((uv_handle_t *)&srv->sigterm, NULL);
}

static int mkdir_p(const char *dir)
{
	char path[4096];
	size_t n = strlen(dir);

	if (n == 0 || n >= sizeof(path))
		return -1;
	memcpy(path, dir, n + 1);
	for (size_t i = 1; i <= n; i++) {
		if (path[i] == '/' || path[i] == '\0') {
			char ch = path[i];

			path[i] = '\0';
			if (mkdir(path, 0755) != 0 && errno != EEXIST)
				return -1;
			path[i] = ch;
		}
	}
	return 0;
}

static int store_path(const char *dir, char *buf, size_t len)
{
	int n = snprintf(buf, len, "%s/weft.db", dir);

	return n < 0 || (size_t)n >= len ? -1 : 0;
}

int weft__serve(const struct weft_serve_opts *o, char *errbuf, size_t errlen)
{
	struct server *srv;
	struct weft_ws_callbacks cbs = {on_open, on_message, on_close};
	char path[4096], err[256] = "";
	uint64_t epoch = 0;
	int rc;

	srv = calloc(1, sizeof(*srv));
	if (!srv) {
		snprintf(errbuf, errlen, "out of memory");
		return WEFT_ENOMEM;
	}
	srv->conns.next = srv->conns.prev = &srv->conns;
	srv->max_drift_ms = o->max_drift_ms;
	srv->errbuf = errbuf;
	srv->errlen = errlen;
	weft__mp_buf_init(&srv->out, weft__alloc_default(), 0);
	weft__ws_limits_init(&srv->limits);

	if (mkdir_p(o->data_dir) != 0 || store_path(o->data_dir, path, sizeof(path)) != 0) {
		snprintf(errbuf, errlen, "cannot create data directory %s: %s", o->data_dir,
		         strerror(errno));
		rc = WEFT_EIO;
		goto out_free;
	}
	rc = weft__sqlite_store_open(path,
	                             WEFT_SQLITE_CREATE | (o->durable ? 0 : WEFT_SQLITE_NOSYNC),
	                             NULL, &srv->st, err, sizeof(err));
	if (rc != WEFT_OK) {
		snprintf(errbuf, errlen, "%s: %s", path, err);
		goto out_free;
	}
	while (epoch == 0)
		if (getrandom(&epoch, sizeof(epoch), 0) != sizeof(epoch)) {
			snprintf(errbuf, errlen, "no randomness for the store epoch");
			rc = WEFT_EIO;
			goto out_close_store;
		}
	rc = weft__authority_open(srv->st, NULL, epoch, &srv->au);
	if (rc != WEFT_OK) {
		snprintf(errbuf, errlen, "%s: opening the store: %s (%s)", path, weft_strerror(rc),
		         srv->st->vt->errmsg(srv->st));
		goto out_close_store;
	}

	if (uv_loop_init(&srv->loop) != 0) {
		snprintf(errbuf, errlen, "uv_loop_init failed");
		rc = WEFT_EIO;
		goto out_free_au;
	}
	rc = weft__ws_server_start(&srv->loop, o->host, o->port, &srv->limits, &cbs, srv, &srv->ws,
	                           errbuf, errlen);
	if (rc != WEFT_OK)
		goto out_close_loop;
	uv_check_init(&srv->loop, &srv->commit);
	srv->commit.data = srv;
	uv_check_start(&srv->commit, on_commit_point);
	uv_signal_init(&srv->loop, &srv->sigint);
	uv_signal_init(&srv->loop, &srv->sigterm);
	srv->sigint.data = srv->sigterm.data = srv;
	uv_signal_start(&srv->sigint, on_signal, SIGINT);
	uv_signal_start(&srv->sigterm, on_signal, SIGTERM);
	signal(SIGPIPE, SIG_IGN);

	if (o->on_listen)
		o->on_listen(o->ctx, o->host, weft__ws_server_port(srv->ws));
	uv_run(&srv->loop, UV_RUN_DEFAULT);
	rc = srv->fatal;

out_close_loop:
	uv_run(&srv->loop, UV_RUN_DEFAULT);
	(void)uv_loop_close(&srv->loop);
out_free_au:
	weft__authority_free(srv->au);
out_close_store:
	weft__store_close(srv->st);
out_free:
	weft__mp_buf_free(&srv->out);
	free(srv);
	return rc;
}

int weft__serve_dump(const char *data_dir, char **out, size_t *out_len, char *errbuf, size_t errlen)
{
	struct weft_store *st;
	struct weft_authority *au;
	struct mp_buf b;
	char path[4096], err[256] = "";
	size_t len;
	int rc;

	if (store_path(data_dir, path, sizeof(path)) != 0) {
		snprintf(errbuf, errlen, "path too long");
		return WEFT_EINVAL;
	}
	rc = weft__sqlite_store_open(path, WEFT_SQLITE_READONLY, NULL, &st, err, sizeof(err));
	if (rc != WEFT_OK) {
		snprintf(errbuf, errlen, "%s: %s", path, err);
		return rc;
	}
	rc = weft__authority_open(st, NULL, 0, &au);
	if (rc != WEFT_OK) {
		snprintf(errbuf, errlen, "%s: %s", path, weft_strerror(rc));
		goto out_close;
	}
	weft__mp_buf_init(&b, weft__alloc_default(), 0);
	rc = weft__docset_dump(weft__authority_docs(au), &b);
	weft__mp_write_raw(&b, "", 1);
	if (rc == WEFT_OK)
		rc = b.err;
	if (rc == WEFT_OK) {
		*out = (char *)weft__mp_buf_take(&b, &len);
		*out_len = len - 1;
	} else {
		snprintf(errbuf, errlen, "dump: %s", weft_strerror(rc));
	}
	weft__mp_buf_free(&b);
	weft__authority_free(au);
out_close:
	weft__store_close(st);
	return rc;
}
