/*
 * test_hub.c - the server session (core/hub.c) and the client session
 * (core/client_session.c) message by message: every state transition,
 * every ERROR the server sends and the client's reaction to it, PING/PONG,
 * BYE, heartbeats, shutdown, paced catch-up with progress and no fan-out
 * while catching up. The simulator (test_sim.c) checks the sessions
 * together under faults; this file pins down each rule on its own.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "weft/weft.h"
#include "core/authority.h"
#include "core/client_session.h"
#include "core/hub.h"

#define T0 UINT64_C(1700000000000)

/* ---- a fake transport: records what the hub sends per connection ---- */

struct sent {
	uint8_t *data;
	size_t len;
};

struct fconn {
	struct weft_ssn *ssn;
	struct sent msgs[4096];
	size_t n;      /* messages sent */
	size_t read;   /* messages consumed by the test */
	size_t queued; /* bytes the "transport" still holds */
	int close_code;
	bool closing;
};

static int f_send(void *ctx, void *io, const uint8_t *data, size_t len)
{
	struct fconn *c = io;

	(void)ctx;
	assert_true(c->n < 4096);
	c->msgs[c->n].data = malloc(len);
	assert_non_null(c->msgs[c->n].data);
	memcpy(c->msgs[c->n].data, data, len);
	c->msgs[c->n].len = len;
	c->n++;
	c->queued += len;
	return WEFT_OK;
}

static void f_close(void *ctx, void *io, int code, const char *reason)
{
	struct fconn *c = io;

	(void)ctx;
	(void)reason;
	c->closing = true;
	c->close_code = code;
}

static size_t f_queued(void *ctx, void *io)
{
	(void)ctx;
	return ((struct fconn *)io)->queued;
}

static void fconn_free(struct fconn *c)
{
	for (size_t i = 0; i < c->n; i++)
		free(c->msgs[i].data);
	free(c);
}

/* The type of the next unread message (0 if none), and a reader after
 * its type. */
static int next(struct fconn *c, struct mp_reader *r, uint32_t *nf)
{
	int type;

	if (c->read == c->n)
		return 0;
	weft__mp_reader_init(r, c->msgs[c->read].data, c->msgs[c->read].len);
	c->read++;
	assert_int_equal(weft__msg_begin(r, &type, nf), WEFT_OK);
	return type;
}

static int64_t expect_error(struct fconn *c)
{
	struct mp_reader r;
	uint32_t nf;
	int64_t code;
	const char *msg;
	size_t mlen;

	assert_int_equal(next(c, &r, &nf), WEFT_MSG_ERROR);
	assert_int_equal(weft__msg_error_read(&r, nf, &code, &msg, &mlen), WEFT_OK);
	assert_true(c->closing);
	return code;
}

struct env {
	struct weft_store *st;
	struct weft_authority *au;
	struct weft_hub *hub;
	struct weft_hub_config cfg;
	struct mp_buf b;
};

static void env_open(struct env *e, void (*tweak)(struct weft_hub_config *))
{
	struct weft_hub_io io = {f_send, f_close, f_queued, NULL, NULL};

	memset(e, 0, sizeof(*e));
	assert_int_equal(weft__memstore_new(NULL, &e->st), WEFT_OK);
	assert_int_equal(weft__authority_open(e->st, NULL, 9, &e->au), WEFT_OK);
	weft__hub_config_init(&e->cfg);
	if (tweak)
		tweak(&e->cfg);
	assert_int_equal(weft__hub_new(e->au, &e->cfg, &io, NULL, &e->hub), WEFT_OK);
	weft__mp_buf_init(&e->b, NULL, 0);
}

static void env_close(struct env *e)
{
	weft__hub_free(e->hub);
	weft__authority_free(e->au);
	weft__store_close(e->st);
	weft__mp_buf_free(&e->b);
}

static struct fconn *conn(struct env *e)
{
	struct fconn *c = calloc(1, sizeof(*c));

	assert_non_null(c);
	assert_int_equal(weft__hub_open(e->hub, c, T0, &c->ssn), WEFT_OK);
	return c;
}

static void recv_buf(struct fconn *c, struct mp_buf *b, uint64_t now)
{
	assert_int_equal(b->err, 0);
	weft__ssn_recv(c->ssn, b->data, b->len, now);
	weft__mp_buf_reset(b);
}

static void hello(struct env *e, struct fconn *c, uint64_t replica, const struct weft_cursor *cur)
{
	struct weft_hello h = {.version = 1, .replica = replica, .incarnation = 1};

	if (cur) {
		h.has_cursor = true;
		h.cursor = *cur;
	}
	weft__msg_hello_write(&e->b, &h);
	recv_buf(c, &e->b, T0);
}

/* Appends a SET op of replica/inc/seq on c/<id>. */
static void op(struct mp_buf *b, uint64_t replica, uint64_t seq, const char *id)
{
	struct weft_op o;
	uint8_t val[] = {0x81, 0xa1, 'k', 0x01};

	memset(&o, 0, sizeof(o));
	o.replica = replica;
	o.incarnation = 1;
	o.seq = seq;
	o.hlc = WEFT_HLC_MAKE(T0, seq);
	o.kind = WEFT_OP_SET;
	o.coll = "c";
	o.coll_len = 1;
	o.id = id;
	o.id_len = strlen(id);
	o.value = val;
	o.value_len = sizeof(val);
	weft__op_encode(b, &o);
}

static void push_ops(struct env *e, struct fconn *c, uint64_t replica, uint64_t first, uint32_t n)
{
	weft__msg_push_begin(&e->b, n);
	for (uint32_t i = 0; i < n; i++)
		op(&e->b, replica, first + i, "d");
	recv_buf(c, &e->b, T0);
}

/* ---- server session ---- */

static void test_handshake_and_errors(void **state)
{
	struct env e;
	struct fconn *c;
	struct mp_reader r;
	uint32_t nf;

	(void)state;
	env_open(&e, NULL);

	/* HELLO -> WELCOME, SYNCED (empty log); PING -> PONG; BYE -> 1000. */
	c = conn(&e);
	assert_int_equal(weft__ssn_state(c->ssn), WEFT_SS_AWAIT_HELLO);
	hello(&e, c, 5, NULL);
	{
		struct weft_welcome w;
		struct weft_cursor cur;
		uint64_t nonce;

		assert_int_equal(next(c, &r, &nf), WEFT_MSG_WELCOME);
		assert_int_equal(weft__msg_welcome_read(&r, nf, &w), WEFT_OK);
		assert_int_equal(w.max_txn_ops, e.cfg.max_txn_ops);
		assert_int_equal(w.heartbeat_ms, e.cfg.heartbeat_ms);
		assert_true(weft__caps_has(&w.caps, w.ncaps, "txn"));
		assert_int_equal(next(c, &r, &nf), WEFT_MSG_SYNCED);
		assert_int_equal(weft__msg_synced_read(&r, nf, &cur), WEFT_OK);
		assert_int_equal(cur.epoch, 9);
		assert_int_equal(weft__ssn_state(c->ssn), WEFT_SS_LIVE);
		weft__msg_ping_write(&e.b, WEFT_MSG_PING, 77);
		recv_buf(c, &e.b, T0);
		assert_int_equal(next(c, &r, &nf), WEFT_MSG_PONG);
		assert_int_equal(weft__msg_ping_read(&r, nf, &nonce), WEFT_OK);
		assert_int_equal(nonce, 77);
		/* A message type from a later version is ignored. */
		weft__mp_write_array(&e.b, 2);
		weft__mp_write_uint(&e.b, 200);
		weft__mp_write_cstr(&e.b, "future");
		recv_buf(c, &e.b, T0);
		assert_int_equal(next(c, &r, &nf), 0);
		assert_false(c->closing);
		weft__msg_bye_write(&e.b, "done");
		recv_buf(c, &e.b, T0);
		assert_true(c->closing);
		assert_int_equal(c->close_code, 1000);
		assert_int_equal(weft__ssn_state(c->ssn), WEFT_SS_CLOSED);
	}
	weft__ssn_closed(c->ssn);
	fconn_free(c);

	/* Each way of breaking the rules: the ERROR code and close code. */
	c = conn(&e);
	push_ops(&e, c, 5, 1, 1); /* PUSH before HELLO */
	assert_int_equal(expect_error(c), WEFT_PERR_PROTOCOL);
	assert_int_equal(c->close_code, 1008);
	weft__ssn_closed(c->ssn);
	fconn_free(c);

	c = conn(&e);
	hello(&e, c, 5, NULL);
	c->read = c->n;
	hello(&e, c, 5, NULL); /* twice */
	assert_int_equal(expect_error(c), WEFT_PERR_PROTOCOL);
	weft__ssn_closed(c->ssn);
	fconn_free(c);

	c = conn(&e);
	{
		struct weft_hello h = {.version = 2, .replica = 5, .incarnation = 1};

		weft__msg_hello_write(&e.b, &h);
		recv_buf(c, &e.b, T0);
		assert_int_equal(expect_error(c), WEFT_PERR_VERSION);
	}
	weft__ssn_closed(c->ssn);
	fconn_free(c);

	c = conn(&e);
	hello(&e, c, 0, NULL); /* replica 0 */
	assert_int_equal(expect_error(c), WEFT_PERR_PROTOCOL);
	weft__ssn_closed(c->ssn);
	fconn_free(c);

	c = conn(&e);
	hello(&e, c, 5, NULL);
	c->read = c->n;
	weft__msg_synced_write(&e.b, &(struct weft_cursor){1, 1}); /* a server message */
	recv_buf(c, &e.b, T0);
	assert_int_equal(expect_error(c), WEFT_PERR_PROTOCOL);
	weft__ssn_closed(c->ssn);
	fconn_free(c);

	/* Too many ops, a transaction over the limit, an op of another
	 * replica, a malformed unit: nothing of the PUSH is staged. */
	for (int k = 0; k < 4; k++) {
		c = conn(&e);
		hello(&e, c, 5, NULL);
		c->read = c->n;
		if (k == 0) {
			push_ops(&e, c, 5, 1, e.cfg.max_push + 1);
			assert_int_equal(expect_error(c), WEFT_PERR_TOO_BIG);
		} else if (k == 1) {
			weft__msg_push_begin(&e.b, 1);
			weft__unit_txn_write(&e.b, e.cfg.max_txn_ops + 1);
			for (uint32_t i = 0; i <= e.cfg.max_txn_ops; i++)
				op(&e.b, 5, 1 + i, "d");
			recv_buf(c, &e.b, T0);
			assert_int_equal(expect_error(c), WEFT_PERR_TOO_BIG);
		} else if (k == 2) {
			push_ops(&e, c, 6, 1, 1);
			assert_int_equal(expect_error(c), WEFT_PERR_PROTOCOL);
		} else {
			weft__msg_push_begin(&e.b, 2);
			op(&e.b, 5, 1, "d");
			weft__mp_write_array(&e.b, 3); /* neither an op nor a txn */
			weft__mp_write_uint(&e.b, 1);
			weft__mp_write_uint(&e.b, 2);
			weft__mp_write_uint(&e.b, 3);
			recv_buf(c, &e.b, T0);
			assert_int_equal(expect_error(c), WEFT_PERR_PROTOCOL);
		}
		assert_int_equal(weft__authority_staged(e.au), 0);
		weft__ssn_closed(c->ssn);
		fconn_free(c);
	}
	env_close(&e);
}

static void small_catchup(struct weft_hub_config *cfg)
{
	cfg->catchup_units = 5;
	cfg->catchup_window = 1; /* one chunk in flight at a time */
	cfg->heartbeat_ms = 1000;
}

/*
 * A replica behind by 40 units catches up in chunks of 5, one chunk per
 * drain of its send queue, with progress; units committed meanwhile come
 * through the log (no fan-out while catching up), without gap or
 * duplicate, and then SYNCED. A live connection meanwhile gets fan-out.
 */
static void test_paced_catch_up(void **state)
{
	struct env e;
	struct fconn *w, *late, *live;
	struct mp_reader r;
	uint32_t nf;
	uint64_t expect = 1, last_done = 0, pushed = 40;
	int type, chunks = 0;
	bool synced = false;

	(void)state;
	env_open(&e, small_catchup);
	w = conn(&e);
	hello(&e, w, 5, NULL);
	for (uint64_t s = 1; s <= 40; s++)
		push_ops(&e, w, 5, s, 1);
	assert_int_equal(weft__hub_commit(e.hub, T0), WEFT_OK);
	assert_int_equal(weft__authority_cursor(e.au).pos, 40);

	live = conn(&e);
	hello(&e, live, 7, &(struct weft_cursor){9, 40});
	late = conn(&e);
	hello(&e, late, 6, NULL);
	assert_int_equal(weft__ssn_state(live->ssn), WEFT_SS_LIVE);
	assert_int_equal(weft__ssn_state(late->ssn), WEFT_SS_CATCHING_UP);
	while (!synced) {
		/* More commits arrive while it catches up. */
		if (pushed < 50) {
			pushed++;
			push_ops(&e, w, 5, pushed, 1);
		}
		late->queued = 0; /* the transport drained */
		assert_int_equal(weft__hub_commit(e.hub, T0), WEFT_OK);
		while ((type = next(late, &r, &nf)) != 0) {
			if (type == WEFT_MSG_WELCOME)
				continue;
			if (type == WEFT_MSG_SYNCED) {
				struct weft_cursor cur;

				assert_int_equal(weft__msg_synced_read(&r, nf, &cur), WEFT_OK);
				assert_int_equal(cur.pos, expect - 1);
				synced = true;
				continue;
			}
			{
				struct weft_changes ch;

				assert_int_equal(type, WEFT_MSG_CHANGES);
				assert_int_equal(weft__msg_changes_read(&r, nf, &ch), WEFT_OK);
				assert_true(ch.has_progress); /* catch-up, never fan-out */
				assert_true(ch.nunits <= 5);
				assert_true(ch.done > last_done);
				assert_true(ch.done <= ch.total);
				last_done = ch.done;
				for (uint32_t i = 0; i < ch.nunits; i++) {
					struct weft_unit u;
					struct weft_op o;

					assert_int_equal(weft__unit_read(&ch.units, &u), WEFT_OK);
					assert_int_equal(weft__op_decode(&u.ops, &o), WEFT_OK);
					assert_int_equal(o.seq, expect); /* no gap, no dup */
					expect++;
				}
				assert_int_equal(ch.cursor.pos, expect - 1);
				chunks++;
			}
		}
	}
	assert_int_equal(weft__ssn_state(late->ssn), WEFT_SS_LIVE);
	assert_true(chunks >= 8);
	/* The live connection got every new unit as fan-out. */
	{
		uint64_t got = 0;

		while ((type = next(live, &r, &nf)) != 0) {
			struct weft_changes ch;

			if (type != WEFT_MSG_CHANGES)
				continue;
			assert_int_equal(weft__msg_changes_read(&r, nf, &ch), WEFT_OK);
			assert_false(ch.has_progress);
			got += ch.nunits;
		}
		assert_int_equal(got, pushed - 40);
		assert_int_equal(expect - 1, pushed);
	}
	weft__ssn_closed(w->ssn);
	weft__ssn_closed(late->ssn);
	weft__ssn_closed(live->ssn);
	fconn_free(w);
	fconn_free(late);
	fconn_free(live);
	env_close(&e);
}

static void snap_config(struct weft_hub_config *cfg)
{
	cfg->catchup_units = 2;  /* two documents per SNAPSHOT chunk */
	cfg->catchup_window = 1; /* one chunk per drain */
	cfg->snapshot_min = 10;
	cfg->max_snapshots = 1;
}

/*
 * A replica with no cursor that can take SNAPSHOT gets the documents'
 * states, then SYNCED at the head (the log is not replayed); one that
 * cannot gets the log. A unit committed while the snapshot is under way
 * comes through the log from where the snapshot started.
 */
static void test_snapshot_initial_sync(void **state)
{
	static const char *const ids[] = {"a", "b", "c", "d", "e"};
	static const char *const caps[] = {"snapshot", NULL};
	struct env e;
	struct fconn *w, *fresh, *old, *second;
	struct mp_reader r;
	uint32_t nf;
	uint64_t docs = 0, last_done = 0;
	int type, changes = 0;
	bool synced = false;

	(void)state;
	env_open(&e, snap_config);
	w = conn(&e);
	hello(&e, w, 5, NULL);
	for (uint64_t s = 1; s <= 40; s++) {
		weft__msg_push_begin(&e.b, 1);
		op(&e.b, 5, s, ids[s % 5]);
		recv_buf(w, &e.b, T0);
	}
	assert_int_equal(weft__hub_commit(e.hub, T0), WEFT_OK);

	fresh = conn(&e);
	{
		struct weft_hello h = {.version = 1, .replica = 6, .incarnation = 1};

		h.cap_names = caps;
		weft__msg_hello_write(&e.b, &h);
		recv_buf(fresh, &e.b, T0);
	}
	/* A second fresh replica while one snapshot is under way: over
	 * max_snapshots, it gets the log. */
	second = conn(&e);
	{
		struct weft_hello h = {.version = 1, .replica = 8, .incarnation = 1};

		h.cap_names = caps;
		weft__msg_hello_write(&e.b, &h);
		recv_buf(second, &e.b, T0);
	}
	/* One more unit before the snapshot is done. */
	weft__msg_push_begin(&e.b, 1);
	op(&e.b, 5, 41, "z");
	recv_buf(w, &e.b, T0);
	fresh->queued = 0;
	assert_int_equal(weft__hub_commit(e.hub, T0), WEFT_OK);
	for (int round = 0; round < 10 && !synced; round++) {
		while ((type = next(fresh, &r, &nf)) != 0) {
			if (type == WEFT_MSG_SNAPSHOT) {
				struct weft_snapshot sn;

				assert_int_equal(changes, 0); /* states come first */
				assert_int_equal(weft__msg_snapshot_read(&r, nf, &sn), WEFT_OK);
				assert_true(sn.nstates <= 2);
				assert_true(sn.done > last_done);
				assert_int_equal(sn.total, 5);
				last_done = sn.done;
				docs += sn.nstates;
			} else if (type == WEFT_MSG_CHANGES) {
				struct weft_changes ch;
				struct weft_unit u;
				struct weft_op o;

				assert_int_equal(weft__msg_changes_read(&r, nf, &ch), WEFT_OK);
				assert_int_equal(ch.nunits, 1); /* only the unit after the start */
				assert_int_equal(weft__unit_read(&ch.units, &u), WEFT_OK);
				assert_int_equal(weft__op_decode(&u.ops, &o), WEFT_OK);
				assert_int_equal(o.seq, 41);
				changes++;
			} else if (type == WEFT_MSG_SYNCED) {
				struct weft_cursor cur;

				assert_int_equal(weft__msg_synced_read(&r, nf, &cur), WEFT_OK);
				assert_int_equal(cur.pos, 41);
				synced = true;
			}
		}
		fresh->queued = 0;
		second->queued = 0;
		assert_int_equal(weft__hub_commit(e.hub, T0), WEFT_OK);
	}
	assert_true(synced);
	for (int round = 0; round < 30; round++) {
		second->queued = 0;
		assert_int_equal(weft__hub_commit(e.hub, T0), WEFT_OK);
	}
	{
		int second_changes = 0;

		while ((type = next(second, &r, &nf)) != 0) {
			assert_int_not_equal(type, WEFT_MSG_SNAPSHOT);
			second_changes += type == WEFT_MSG_CHANGES;
		}
		assert_true(second_changes > 0);
	}
	assert_int_equal(weft__ssn_state(second->ssn), WEFT_SS_LIVE);
	assert_int_equal(docs, 5);
	assert_int_equal(changes, 1);
	assert_true(weft__hub_stats(e.hub)->snapshots >= 3);

	/* Without the capability: the log. */
	changes = 0;
	old = conn(&e);
	hello(&e, old, 7, NULL);
	changes = 0;
	for (int round = 0; round < 30; round++) {
		old->queued = 0;
		assert_int_equal(weft__hub_commit(e.hub, T0), WEFT_OK);
	}
	while ((type = next(old, &r, &nf)) != 0) {
		assert_int_not_equal(type, WEFT_MSG_SNAPSHOT);
		changes += type == WEFT_MSG_CHANGES;
	}
	assert_int_equal(changes, 21); /* 41 units, 2 per chunk */
	assert_int_equal(weft__ssn_state(old->ssn), WEFT_SS_LIVE);
	weft__ssn_closed(w->ssn);
	weft__ssn_closed(fresh->ssn);
	weft__ssn_closed(old->ssn);
	weft__ssn_closed(second->ssn);
	fconn_free(second);
	fconn_free(w);
	fconn_free(fresh);
	fconn_free(old);
	env_close(&e);
}

/* A silent connection is closed with ERROR 6 after 3 heartbeats; one that
 * pings stays. Shutdown says ERROR 5 to everyone, new connections too. */
static void test_heartbeat_and_shutdown(void **state)
{
	struct env e;
	struct fconn *quiet, *chatty, *late;
	struct mp_reader r;
	uint32_t nf;

	(void)state;
	env_open(&e, small_catchup); /* heartbeat 1000 ms */
	quiet = conn(&e);
	chatty = conn(&e);
	hello(&e, quiet, 5, NULL);
	hello(&e, chatty, 6, NULL);
	quiet->read = quiet->n;
	chatty->read = chatty->n;
	for (uint64_t t = 500; t <= 3500; t += 500) {
		weft__msg_ping_write(&e.b, WEFT_MSG_PING, t);
		weft__ssn_recv(chatty->ssn, e.b.data, e.b.len, T0 + t);
		weft__mp_buf_reset(&e.b);
		(void)weft__hub_tick(e.hub, T0 + t);
	}
	assert_int_equal(expect_error(quiet), WEFT_PERR_TIMEOUT);
	assert_false(chatty->closing);
	assert_int_equal(weft__hub_stats(e.hub)->timeouts, 1);

	push_ops(&e, chatty, 6, 1, 1);
	chatty->read = chatty->n;
	weft__hub_shutdown(e.hub, T0 + 4000);
	/* What was staged was committed before the goodbye. */
	assert_int_equal(weft__authority_cursor(e.au).pos, 1);
	assert_int_equal(next(chatty, &r, &nf), WEFT_MSG_ACK);
	assert_int_equal(expect_error(chatty), WEFT_PERR_SHUTDOWN);
	assert_int_equal(chatty->close_code, 1001);
	late = conn(&e);
	assert_int_equal(expect_error(late), WEFT_PERR_SHUTDOWN);
	weft__ssn_closed(quiet->ssn);
	weft__ssn_closed(chatty->ssn);
	weft__ssn_closed(late->ssn);
	fconn_free(quiet);
	fconn_free(chatty);
	fconn_free(late);
	env_close(&e);
}

/* ---- client session ---- */

struct fhost {
	struct mp_buf out[64];
	int nout;
	int closed;
	uint64_t acked_key;
	int applied, cursors;
};

static void c_hello(void *ctx, struct weft_hello *h)
{
	(void)ctx;
	h->replica = 5;
	h->incarnation = 1;
}
static size_t c_npending(void *ctx)
{
	(void)ctx;
	return 0;
}
static const uint8_t *c_pending(void *ctx, size_t i, size_t *len, uint64_t *key, uint32_t *nops)
{
	(void)ctx;
	(void)i;
	(void)len;
	(void)key;
	(void)nops;
	return NULL;
}
static int c_acked(void *ctx, uint32_t inc, uint64_t seq)
{
	((struct fhost *)ctx)->acked_key = weft__op_key(inc, seq);
	return WEFT_OK;
}
static int c_rejected(void *ctx, const struct weft_reject *j)
{
	(void)ctx;
	(void)j;
	return WEFT_OK;
}
static int c_restamped(void *ctx, uint32_t inc, uint64_t seq, uint64_t hlc)
{
	(void)ctx;
	(void)inc;
	(void)seq;
	(void)hlc;
	return WEFT_OK;
}
static int c_adopt(void *ctx, const char *coll, size_t clen, const char *id, size_t ilen,
                   const void *state, size_t len)
{
	(void)ctx;
	(void)coll;
	(void)clen;
	(void)id;
	(void)ilen;
	(void)state;
	(void)len;
	return WEFT_OK;
}
static int c_apply(void *ctx, const struct weft_unit *u)
{
	((struct fhost *)ctx)->applied += (int)u->nops;
	return WEFT_OK;
}
static int c_cursor(void *ctx, const struct weft_cursor *c, bool synced)
{
	(void)c;
	(void)synced;
	((struct fhost *)ctx)->cursors++;
	return WEFT_OK;
}
static int c_clock(void *ctx, uint64_t s, uint64_t d, uint64_t a, uint64_t b)
{
	(void)ctx;
	(void)s;
	(void)d;
	(void)a;
	(void)b;
	return WEFT_OK;
}
static int c_send(void *ctx, const uint8_t *data, size_t len)
{
	struct fhost *h = ctx;

	assert_true(h->nout < 64);
	weft__mp_buf_init(&h->out[h->nout], NULL, 0);
	weft__mp_write_raw(&h->out[h->nout++], data, len);
	return WEFT_OK;
}
static void c_close(void *ctx, int code, const char *reason)
{
	(void)reason;
	((struct fhost *)ctx)->closed = code;
}

static void client_open(struct weft_cs *cs, struct fhost *h)
{
	struct weft_cs_host host = {
	    .hello = c_hello,
	    .npending = c_npending,
	    .pending = c_pending,
	    .acked = c_acked,
	    .rejected = c_rejected,
	    .restamped = c_restamped,
	    .adopt = c_adopt,
	    .apply = c_apply,
	    .cursor = c_cursor,
	    .clock = c_clock,
	    .send = c_send,
	    .close = c_close,
	    .ctx = h,
	};

	memset(h, 0, sizeof(*h));
	weft__cs_init(cs, &host, NULL, 1u << 20);
	assert_int_equal(cs->state, WEFT_CS_IDLE);
	assert_int_equal(weft__cs_connected(cs, T0), WEFT_OK);
	assert_int_equal(cs->state, WEFT_CS_HELLO_SENT);
}

static void client_close(struct weft_cs *cs, struct fhost *h)
{
	for (int i = 0; i < h->nout; i++)
		weft__mp_buf_free(&h->out[i]);
	weft__cs_free(cs);
}

static int feed(struct weft_cs *cs, struct mp_buf *b, uint64_t now)
{
	int rc = weft__cs_recv(cs, b->data, b->len, now);

	weft__mp_buf_reset(b);
	return rc;
}

static void test_client_states(void **state)
{
	struct weft_welcome w = {.version = 1,
	                         .server_time_ms = T0,
	                         .max_message = 1u << 20,
	                         .max_push = 100,
	                         .max_drift_ms = 60000,
	                         .max_txn_ops = 10,
	                         .heartbeat_ms = 1000};
	struct weft_cursor cur = {9, 3};
	struct weft_cs cs;
	struct fhost h;
	struct mp_buf b;

	(void)state;
	weft__mp_buf_init(&b, NULL, 0);

	/* HELLO_SENT -> CATCHING_UP -> REALTIME; heartbeats; then an ERROR 4
	 * is transient (the server closes; IDLE on disconnect). */
	client_open(&cs, &h);
	weft__msg_welcome_write(&b, &w);
	assert_int_equal(feed(&cs, &b, T0), WEFT_OK);
	assert_int_equal(cs.state, WEFT_CS_CATCHING_UP);
	weft__msg_changes_begin(&b, 1, true);
	op(&b, 7, 1, "x");
	weft__msg_changes_end(&b, &cur, 1, 3);
	assert_int_equal(feed(&cs, &b, T0), WEFT_OK);
	assert_int_equal(h.applied, 1);
	weft__msg_synced_write(&b, &cur);
	assert_int_equal(feed(&cs, &b, T0), WEFT_OK);
	assert_int_equal(cs.state, WEFT_CS_REALTIME);
	assert_int_equal(h.cursors, 2);
	/* Idle for half a heartbeat: a PING goes out. */
	for (int i = 0; i < h.nout; i++)
		weft__mp_buf_free(&h.out[i]);
	h.nout = 0;
	(void)weft__cs_tick(&cs, T0 + 600);
	assert_int_equal(h.nout, 1);
	assert_int_equal(h.out[0].data[1], WEFT_MSG_PING);
	weft__mp_buf_free(&h.out[0]);
	h.nout = 0;
	/* A PING from the server gets a PONG. */
	weft__msg_ping_write(&b, WEFT_MSG_PING, 3);
	assert_int_equal(feed(&cs, &b, T0 + 700), WEFT_OK);
	assert_int_equal(h.out[0].data[1], WEFT_MSG_PONG);
	/* Nothing for 3 heartbeats: the client closes. */
	(void)weft__cs_tick(&cs, T0 + 700 + 3000);
	assert_int_equal(h.closed, 1001);
	weft__msg_error_write(&b, WEFT_PERR_INTERNAL, "commit failed; retry later");
	assert_int_equal(feed(&cs, &b, T0), WEFT_ECLOSED);
	assert_int_not_equal(cs.state, WEFT_CS_FAILED);
	weft__cs_disconnected(&cs);
	assert_int_equal(cs.state, WEFT_CS_IDLE);
	client_close(&cs, &h);

	/* ERROR 1 is fatal: FAILED until reset. */
	client_open(&cs, &h);
	weft__msg_error_write(&b, WEFT_PERR_PROTOCOL, "malformed");
	assert_int_equal(feed(&cs, &b, T0), WEFT_EPROTO);
	assert_int_equal(cs.state, WEFT_CS_FAILED);
	weft__cs_disconnected(&cs);
	assert_int_equal(cs.state, WEFT_CS_FAILED);
	assert_int_equal(weft__cs_connected(&cs, T0), WEFT_EPROTO);
	weft__cs_reset(&cs);
	assert_int_equal(cs.state, WEFT_CS_IDLE);
	client_close(&cs, &h);

	/* A known message before WELCOME, garbage, a malformed ACK: FAILED. */
	for (int k = 0; k < 3; k++) {
		client_open(&cs, &h);
		if (k == 0) {
			weft__msg_synced_write(&b, &cur);
		} else if (k == 1) {
			weft__mp_write_cstr(&b, "junk");
		} else {
			weft__msg_welcome_write(&b, &w);
			assert_int_equal(feed(&cs, &b, T0), WEFT_OK);
			weft__mp_write_array(&b, 3);
			weft__mp_write_uint(&b, WEFT_MSG_ACK);
			weft__mp_write_uint(&b, 0); /* incarnation 0 */
			weft__mp_write_uint(&b, 1);
		}
		assert_int_equal(feed(&cs, &b, T0), WEFT_EPROTO);
		assert_int_equal(cs.state, WEFT_CS_FAILED);
		assert_int_equal(h.closed, 1008);
		client_close(&cs, &h);
	}

	/* A later version's message is ignored; BYE from the server closes. */
	client_open(&cs, &h);
	weft__msg_welcome_write(&b, &w);
	assert_int_equal(feed(&cs, &b, T0), WEFT_OK);
	weft__mp_write_array(&b, 1);
	weft__mp_write_uint(&b, 99);
	assert_int_equal(feed(&cs, &b, T0), WEFT_OK);
	assert_int_equal(cs.state, WEFT_CS_CATCHING_UP);
	weft__msg_bye_write(&b, "maintenance");
	assert_int_equal(feed(&cs, &b, T0), WEFT_ECLOSED);
	assert_int_equal(h.closed, 1000);
	client_close(&cs, &h);
	weft__mp_buf_free(&b);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_handshake_and_errors),
	    cmocka_unit_test(test_paced_catch_up),
	    cmocka_unit_test(test_snapshot_initial_sync),
	    cmocka_unit_test(test_heartbeat_and_shutdown),
	    cmocka_unit_test(test_client_states),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
