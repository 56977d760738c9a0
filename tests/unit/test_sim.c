/*
 * test_sim.c - deterministic simulation of the sync protocol.
 *
 * Several replicas and the server run the real protocol code: each
 * replica drives the sans-I/O client session (core/client_session.h) with
 * a small host that keeps its documents in a docset, its pending units in
 * memory and a "durable" image that a crash falls back to; the server is
 * the real hub (core/hub.h) and authority over the crash-simulating
 * memory store. Between them runs a simulated network of in-order
 * connections with latency. Everything is driven by one seed: a failing
 * seed replays exactly (WEFT_SIM_SEED=<seed>).
 *
 * Faults, during the first phase: connections cut (what is in flight is
 * lost, or keeps arriving at the old server session after the replica
 * reconnected: reordering across connections), PUSH messages duplicated,
 * latency spikes, partitions (a replica cannot connect for a while),
 * crashes of any replica (what it had not flushed is lost, and it comes
 * back with a new incarnation) and of the server (what was not committed
 * is lost), failed group commits, and clocks skewed by up to a day in
 * either direction. Replicas write SETs, counter increments, set adds,
 * text inserts, transactions of 2-3 ops, and now and then a poisoned
 * unit (a TEXT op whose update bytes are garbage, alone or inside a
 * transaction) that the server must reject.
 *
 * Then the faults stop, and the checks run once everything is quiet:
 *  - every replica and the server hold identical documents;
 *  - no acknowledged op is lost: it is in the server's log (or was
 *    rejected, and only poisoned units are ever rejected);
 *  - no op is applied twice: every identity is in the log at most once,
 *    and a transaction's ops are one unit;
 *  - counters: acknowledged increments <= total <= issued increments;
 *  - no upload queue is stuck: every replica reaches realtime with
 *    nothing pending, within a bounded number of steps;
 *  - a correct replica never makes the server see a gap in its seqs.
 *
 * WEFT_SIM_SEEDS=<n> sets how many seeds run (default 200; the extended
 * run uses 100000).
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
#include "core/doc.h"
#include "core/hub.h"

#define MAX_REPS 5
#define MAX_CONNS 64
#define BASE_MS UINT64_C(1700000000000)

static uint64_t g_seed;
static unsigned g_step;

#define CHECK(cond)                                                                                \
	do {                                                                                       \
		if (!(cond)) {                                                                     \
			fprintf(stderr, "sim: seed %llu step %u: check failed: %s (%s:%d)\n",      \
			        (unsigned long long)g_seed, g_step, #cond, __FILE__, __LINE__);    \
			fail();                                                                    \
		}                                                                                  \
	} while (0)

/* ---- deterministic random numbers (splitmix64) ---- */

static uint64_t g_rng;

static uint64_t rnd(void)
{
	uint64_t z = (g_rng += UINT64_C(0x9e3779b97f4a7c15));

	z = (z ^ (z >> 30)) * UINT64_C(0xbf58476d1ce4e5b9);
	z = (z ^ (z >> 27)) * UINT64_C(0x94d049bb133111eb);
	return z ^ (z >> 31);
}

static unsigned rn(unsigned n)
{
	return (unsigned)(rnd() % n);
}

static bool chance(unsigned percent)
{
	return rn(1000) < percent * 10;
}

/* ---- the network ---- */

struct msg {
	struct msg *next;
	uint64_t at; /* delivery time */
	size_t len;
	uint8_t data[];
};

struct queue {
	struct msg *head, *tail;
};

struct conn {
	bool used;
	int rep;              /* replica index */
	struct weft_ssn *ssn; /* server side, NULL once closed there */
	struct queue c2s, s2c;
	bool c_open;     /* the replica still uses it */
	bool s_closing;  /* the hub asked to close it */
	bool c_closing;  /* the replica asked to close it */
	bool drain_only; /* cut, but c2s keeps arriving (reordering) */
};

static void q_push(struct queue *q, const uint8_t *data, size_t len, uint64_t at)
{
	struct msg *m = malloc(sizeof(*m) + len);

	assert_non_null(m);
	m->next = NULL;
	m->len = len;
	memcpy(m->data, data, len);
	/* In order: never before the message ahead of it. */
	m->at = q->tail && q->tail->at > at ? q->tail->at : at;
	if (q->tail)
		q->tail->next = m;
	else
		q->head = m;
	q->tail = m;
}

static struct msg *q_pop(struct queue *q)
{
	struct msg *m = q->head;

	if (m) {
		q->head = m->next;
		if (!q->head)
			q->tail = NULL;
	}
	return m;
}

static void q_clear(struct queue *q)
{
	struct msg *m;

	while ((m = q_pop(q)))
		free(m);
}

/* ---- the ledger of every op issued ---- */

struct lop {
	uint64_t replica;
	uint32_t inc;
	uint64_t seq;
	bool incr;      /* a +1 on the shared counter */
	bool poisoned;  /* in a unit the server must reject */
	bool acked;     /* the replica saw an ACK covering it */
	bool rejected;  /* the replica saw a REJECT covering it */
	uint32_t txn;   /* ops in its unit */
	uint64_t first; /* first seq of its unit */
};

static struct lop *g_ledger;
static size_t g_nledger, g_ledger_cap;

static void ledger_add(const struct lop *l)
{
	if (g_nledger == g_ledger_cap) {
		g_ledger_cap = g_ledger_cap ? g_ledger_cap * 2 : 1024;
		g_ledger = realloc(g_ledger, g_ledger_cap * sizeof(*g_ledger));
		assert_non_null(g_ledger);
	}
	g_ledger[g_nledger++] = *l;
}

static struct lop *ledger_find(uint64_t replica, uint32_t inc, uint64_t seq)
{
	/* Recent entries are the likely ones. */
	for (size_t i = g_nledger; i-- > 0;)
		if (g_ledger[i].replica == replica && g_ledger[i].inc == inc &&
		    g_ledger[i].seq == seq)
			return &g_ledger[i];
	return NULL;
}

/* ---- replicas ---- */

struct unit {
	uint8_t *raw;
	size_t len;
	uint64_t key; /* of the last op */
	uint32_t nops;
};

struct image {              /* what survives a crash */
	struct mp_buf docs; /* [coll, id, state] entries */
	uint32_t ndocs;
	struct unit *pend;
	size_t npend;
	bool has_cursor;
	struct weft_cursor cursor;
	uint32_t inc;
	int64_t offset_ms;
	uint64_t hlc;
};

struct rep {
	uint64_t id;
	bool up;
	uint32_t inc;
	uint64_t seq;
	struct weft_hlc hlc;
	int64_t skew_ms;   /* its wall clock minus the true time */
	int64_t offset_ms; /* clock correction from WELCOME */
	struct weft_docset *docs;
	struct unit *pend;
	size_t npend, pend_cap;
	bool has_cursor;
	struct weft_cursor cursor;
	struct weft_cs cs;
	int conn; /* index or -1 */
	uint64_t partition_until;
	uint64_t retry_at;
	uint32_t backoff;
	struct image img;
};

static struct rep g_reps[MAX_REPS];
static int g_nreps;
static struct conn g_conns[MAX_CONNS];
static uint64_t g_now; /* true time, ms since BASE_MS */
static bool g_faults;
static uint64_t g_issued_incr;

/* ---- the server ---- */

static struct weft_store *g_st;
static struct weft_authority *g_au;
static struct weft_hub *g_hub;
static uint64_t g_gaps_before; /* gaps of hubs that crashed */

/* What the seeds exercised, summed (printed, and checked to be non-zero
 * so that a change that silently disables a fault fails the test). */
static struct {
	uint64_t ops, units, rejected, dups, commits, failed_commits, server_crashes,
	    replica_crashes, cuts, catchups, snapshots, steps;
} g_tot;

static uint64_t latency(void)
{
	if (g_faults && chance(3))
		return 200 + rn(2000); /* a spike */
	return 1 + rn(20);
}

static int io_send(void *ctx, void *io, const uint8_t *data, size_t len)
{
	struct conn *c = io;

	(void)ctx;
	if (c->s_closing)
		return WEFT_ECLOSED;
	q_push(&c->s2c, data, len, g_now + latency());
	return WEFT_OK;
}

static void io_close(void *ctx, void *io, int code, const char *reason)
{
	struct conn *c = io;

	(void)ctx;
	(void)code;
	(void)reason;
	c->s_closing = true;
}

static size_t io_queued(void *ctx, void *io)
{
	struct conn *c = io;
	size_t n = 0;

	(void)ctx;
	for (struct msg *m = c->s2c.head; m; m = m->next)
		n += m->len;
	return n;
}

static void server_start(void)
{
	struct weft_hub_config cfg;
	struct weft_hub_io io = {io_send, io_close, io_queued, NULL, NULL};

	CHECK(weft__authority_open(g_st, NULL, 77, &g_au) == WEFT_OK);
	weft__hub_config_init(&cfg);
	cfg.catchup_units = 1 + rn(5); /* small chunks: catch-up spans many */
	cfg.catchup_window = 64 + rn(4096);
	cfg.max_push = 8 + rn(32);
	cfg.max_txn_ops = 4;
	cfg.heartbeat_ms = 5000;
	cfg.snapshot_min = chance(50) ? rn(40) : UINT64_MAX; /* states, or the log */
	CHECK(weft__hub_new(g_au, &cfg, &io, NULL, &g_hub) == WEFT_OK);
}

static void server_stop(void)
{
	const struct weft_hub_stats *st = weft__hub_stats(g_hub);

	g_gaps_before += st->gaps;
	g_tot.units += st->units;
	g_tot.rejected += st->rejected;
	g_tot.dups += st->dups;
	g_tot.commits += st->commits;
	g_tot.failed_commits += st->failures;
	g_tot.catchups += st->catchups;
	g_tot.snapshots += st->snapshots;
	weft__hub_free(g_hub);
	weft__authority_free(g_au);
	g_hub = NULL;
	g_au = NULL;
}

/* ---- the replica as the session's host ---- */

static struct rep *rep_of(void *ctx)
{
	return ctx;
}

static void h_hello(void *ctx, struct weft_hello *h)
{
	struct rep *r = rep_of(ctx);

	h->replica = r->id;
	h->incarnation = r->inc;
	h->has_cursor = r->has_cursor;
	h->cursor = r->cursor;
}

static size_t h_npending(void *ctx)
{
	return rep_of(ctx)->npend;
}

static const uint8_t *h_pending(void *ctx, size_t i, size_t *len, uint64_t *key, uint32_t *nops)
{
	struct rep *r = rep_of(ctx);

	*len = r->pend[i].len;
	*key = r->pend[i].key;
	*nops = r->pend[i].nops;
	return r->pend[i].raw;
}

static void mark_unit(const struct unit *u, bool acked)
{
	struct mp_reader rd;
	struct weft_unit wu;
	struct mp_reader ops;

	weft__mp_reader_init(&rd, u->raw, u->len);
	CHECK(weft__unit_read(&rd, &wu) == WEFT_OK);
	ops = wu.ops;
	for (uint32_t i = 0; i < wu.nops; i++) {
		struct mp_reader o = ops;
		uint64_t rep, inc, seq;
		uint32_t n;
		struct lop *l;

		CHECK(weft__mp_read_array(&o, &n) == WEFT_OK);
		CHECK(weft__mp_read_uint(&o, &rep) == WEFT_OK);
		CHECK(weft__mp_read_uint(&o, &inc) == WEFT_OK);
		CHECK(weft__mp_read_uint(&o, &seq) == WEFT_OK);
		CHECK(weft__mp_skip(&ops, NULL, NULL) == WEFT_OK);
		l = ledger_find(rep, (uint32_t)inc, seq);
		CHECK(l != NULL);
		if (acked)
			l->acked = true;
		else
			l->rejected = true;
	}
}

static int h_acked(void *ctx, uint32_t inc, uint64_t seq)
{
	struct rep *r = rep_of(ctx);
	uint64_t key = weft__op_key(inc, seq);
	size_t k = 0;

	while (k < r->npend && r->pend[k].key <= key) {
		mark_unit(&r->pend[k], true);
		free(r->pend[k++].raw);
	}
	memmove(r->pend, r->pend + k, (r->npend - k) * sizeof(*r->pend));
	r->npend -= k;
	return WEFT_OK;
}

static void reapply_pending(struct rep *r, const char *coll, size_t clen, const char *id,
                            size_t ilen)
{
	for (size_t i = 0; i < r->npend; i++) {
		struct mp_reader rd;
		struct weft_unit u;

		weft__mp_reader_init(&rd, r->pend[i].raw, r->pend[i].len);
		CHECK(weft__unit_read(&rd, &u) == WEFT_OK);
		for (uint32_t k = 0; k < u.nops; k++) {
			struct weft_op op;

			CHECK(weft__op_decode(&u.ops, &op) == WEFT_OK);
			if (op.coll_len != clen || op.id_len != ilen ||
			    memcmp(op.coll, coll, clen) != 0 || memcmp(op.id, id, ilen) != 0)
				continue;
			/* A poisoned op is refused here as it was when issued. */
			(void)weft__docset_apply(r->docs, &op, NULL, NULL);
		}
	}
}

static int h_adopt(void *ctx, const char *coll, size_t clen, const char *id, size_t ilen,
                   const void *state, size_t len)
{
	struct rep *r = rep_of(ctx);
	int rc = weft__docset_load(r->docs, coll, clen, id, ilen, state, len);

	if (rc != WEFT_OK)
		return rc;
	reapply_pending(r, coll, clen, id, ilen);
	return WEFT_OK;
}

static int h_merge(void *ctx, const char *coll, size_t clen, const char *id, size_t ilen,
                   const void *state, size_t len)
{
	return weft__docset_merge_state(rep_of(ctx)->docs, coll, clen, id, ilen, state, len, NULL,
	                                NULL);
}

static int h_rejected(void *ctx, const struct weft_reject *j)
{
	struct rep *r = rep_of(ctx);
	uint64_t lo = weft__op_key(j->incarnation, j->first_seq);
	uint64_t hi = weft__op_key(j->incarnation, j->last_seq);
	struct mp_reader st = j->states;
	size_t k = 0;

	for (size_t i = 0; i < r->npend; i++) {
		if (r->pend[i].key >= lo && r->pend[i].key <= hi) {
			mark_unit(&r->pend[i], false);
			free(r->pend[i].raw);
		} else {
			r->pend[k++] = r->pend[i];
		}
	}
	r->npend = k;
	for (uint32_t i = 0; i < j->nstates; i++) {
		const char *coll, *id;
		size_t clen, ilen, slen;
		const void *state;
		int rc;

		CHECK(weft__msg_doc_state_read(&st, &coll, &clen, &id, &ilen, &state, &slen) ==
		      WEFT_OK);
		if ((rc = h_adopt(ctx, coll, clen, id, ilen, state, slen)) != WEFT_OK)
			return rc;
	}
	return WEFT_OK;
}

static int h_restamped(void *ctx, uint32_t inc, uint64_t seq, uint64_t hlc)
{
	(void)inc;
	(void)seq;
	weft__hlc_observe(&rep_of(ctx)->hlc, hlc);
	return WEFT_OK;
}

static int h_apply(void *ctx, const struct weft_unit *u)
{
	struct rep *r = rep_of(ctx);
	struct mp_reader ops = u->ops;

	for (uint32_t i = 0; i < u->nops; i++) {
		struct weft_op op;
		int rc;

		if ((rc = weft__op_decode(&ops, &op)) != WEFT_OK)
			return rc;
		weft__hlc_observe(&r->hlc, op.hlc);
		if ((rc = weft__docset_apply(r->docs, &op, NULL, NULL)) != WEFT_OK)
			return rc;
	}
	return WEFT_OK;
}

static int h_cursor(void *ctx, const struct weft_cursor *c, bool synced)
{
	struct rep *r = rep_of(ctx);

	(void)synced;
	r->cursor = *c;
	r->has_cursor = true;
	return WEFT_OK;
}

static uint64_t rep_wall(const struct rep *r)
{
	return (uint64_t)((int64_t)(BASE_MS + g_now) + r->skew_ms);
}

static int h_clock(void *ctx, uint64_t server_ms, uint64_t max_drift_ms, uint64_t sent_ms,
                   uint64_t now_ms)
{
	struct rep *r = rep_of(ctx);
	uint64_t mid = sent_ms + (now_ms - sent_ms) / 2, limit;

	r->offset_ms = (int64_t)(server_ms - mid);
	limit = WEFT_HLC_MAKE(server_ms + max_drift_ms, 0);
	if (r->hlc.last > limit)
		r->hlc.last = limit;
	return WEFT_OK;
}

static int h_send(void *ctx, const uint8_t *data, size_t len)
{
	struct rep *r = rep_of(ctx);
	struct conn *c;

	if (r->conn < 0)
		return WEFT_ECLOSED;
	c = &g_conns[r->conn];
	q_push(&c->c2s, data, len, g_now + latency());
	/* A duplicated PUSH: the server must dedupe it. */
	if (g_faults && len > 1 && data[1] == WEFT_MSG_PUSH && chance(5))
		q_push(&c->c2s, data, len, g_now + latency());
	return WEFT_OK;
}

static void h_close(void *ctx, int code, const char *reason)
{
	struct rep *r = rep_of(ctx);

	(void)code;
	(void)reason;
	if (r->conn >= 0)
		g_conns[r->conn].c_closing = true;
}

/* ---- replica lifecycle ---- */

static void units_free(struct unit *u, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(u[i].raw);
	free(u);
}

static struct unit *units_copy(const struct unit *u, size_t n)
{
	struct unit *c = calloc(n ? n : 1, sizeof(*c));

	assert_non_null(c);
	for (size_t i = 0; i < n; i++) {
		c[i] = u[i];
		c[i].raw = malloc(u[i].len);
		assert_non_null(c[i].raw);
		memcpy(c[i].raw, u[i].raw, u[i].len);
	}
	return c;
}

/* Flushes the replica: its documents, pending units, cursor and clock
 * become what a crash falls back to. */
static void rep_flush(struct rep *r)
{
	struct weft_doc **list;
	size_t n;
	struct mp_buf st;

	weft__mp_buf_reset(&r->img.docs);
	CHECK(weft__docset_list(r->docs, &list, &n) == WEFT_OK);
	weft__mp_buf_init(&st, NULL, 0);
	for (size_t i = 0; i < n; i++) {
		const char *c, *id;
		size_t clen, ilen;

		weft__doc_key(list[i], &c, &clen, &id, &ilen);
		weft__mp_buf_reset(&st);
		weft__doc_encode_full(list[i], &st);
		weft__msg_doc_state_write(&r->img.docs, c, clen, id, ilen, st.data, st.len);
	}
	weft__mp_buf_free(&st);
	weft__docset_free_list(r->docs, list);
	CHECK(r->img.docs.err == 0);
	r->img.ndocs = (uint32_t)n;
	units_free(r->img.pend, r->img.npend);
	r->img.pend = units_copy(r->pend, r->npend);
	r->img.npend = r->npend;
	r->img.has_cursor = r->has_cursor;
	r->img.cursor = r->cursor;
	r->img.offset_ms = r->offset_ms;
	r->img.hlc = r->hlc.last;
}

static void rep_disconnect(struct rep *r)
{
	if (r->conn >= 0) {
		g_conns[r->conn].c_open = false;
		r->conn = -1;
	}
	weft__cs_disconnected(&r->cs);
	r->backoff = r->backoff ? (r->backoff * 2 > 2000 ? 2000 : r->backoff * 2) : 100;
	r->retry_at = g_now + r->backoff / 2 + rn(r->backoff);
}

/* Opens the replica from its image, with a new incarnation. */
static void rep_open(struct rep *r)
{
	struct mp_reader rd;

	weft__docset_free(r->docs);
	CHECK(weft__docset_new(NULL, &r->docs) == WEFT_OK);
	weft__mp_reader_init(&rd, r->img.docs.data, r->img.docs.len);
	for (uint32_t i = 0; i < r->img.ndocs; i++) {
		const char *c, *id;
		size_t clen, ilen, slen;
		const void *st;

		CHECK(weft__msg_doc_state_read(&rd, &c, &clen, &id, &ilen, &st, &slen) == WEFT_OK);
		CHECK(weft__docset_load(r->docs, c, clen, id, ilen, st, slen) == WEFT_OK);
	}
	units_free(r->pend, r->npend);
	r->pend = units_copy(r->img.pend, r->img.npend);
	r->npend = r->pend_cap = r->img.npend;
	r->has_cursor = r->img.has_cursor;
	r->cursor = r->img.cursor;
	r->offset_ms = r->img.offset_ms;
	weft__hlc_init(&r->hlc, r->img.hlc);
	r->inc = ++r->img.inc; /* durable before anything else happens */
	r->seq = 0;
	weft__docset_set_agent(r->docs, r->id, r->inc);
	r->up = true;
	r->conn = -1;
	r->backoff = 0;
	r->retry_at = g_now;
	weft__cs_reset(&r->cs);
}

static void rep_crash(struct rep *r)
{
	if (r->conn >= 0) {
		struct conn *c = &g_conns[r->conn];

		c->c_open = false;
		q_clear(&c->s2c);
		if (!chance(50))
			q_clear(&c->c2s); /* else it still arrives: reordering */
		c->drain_only = true;
		r->conn = -1;
	}
	weft__cs_disconnected(&r->cs);
	r->up = false;
	r->retry_at = g_now + 50 + rn(500);
}

static void rep_init(struct rep *r, int i)
{
	static const struct weft_cs_host host = {
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
	};
	struct weft_cs_host h = host;

	memset(r, 0, sizeof(*r));
	r->id = 0x1000 + (uint64_t)i * 0x10001;
	h.ctx = r;
	weft__cs_init(&r->cs, &h, NULL, 16u << 20);
	weft__mp_buf_init(&r->img.docs, NULL, 0);
	/* Some clocks are wrong by up to a day either way. */
	if (chance(30))
		r->skew_ms = (int64_t)rn(86400000) * (chance(50) ? 1 : -1);
	else
		r->skew_ms = (int64_t)rn(200) - 100;
	r->conn = -1;
	rep_open(r);
}

static void rep_free(struct rep *r)
{
	weft__cs_free(&r->cs);
	weft__docset_free(r->docs);
	units_free(r->pend, r->npend);
	units_free(r->img.pend, r->img.npend);
	weft__mp_buf_free(&r->img.docs);
}

/* ---- writes ---- */

static void path1(struct mp_buf *b, const char *key)
{
	weft__mp_write_array(b, 1);
	weft__mp_write_cstr(b, key);
}

/* Builds one op of replica r (seq taken) into b (appended). Returns
 * false when the op is poisoned (not applied locally). */
static bool build_op(struct rep *r, struct mp_buf *b, int kind, const char *id, bool *incr,
                     bool poison)
{
	struct weft_op op;
	struct mp_buf path, val;
	static const char *const keys[] = {"a", "b", "c"};
	uint64_t wall = (uint64_t)((int64_t)rep_wall(r) + r->offset_ms);

	memset(&op, 0, sizeof(op));
	weft__mp_buf_init(&path, NULL, 0);
	weft__mp_buf_init(&val, NULL, 0);
	op.replica = r->id;
	op.incarnation = r->inc;
	op.seq = ++r->seq;
	op.hlc = weft__hlc_now(&r->hlc, wall);
	op.coll = "c";
	op.coll_len = 1;
	op.id = id;
	op.id_len = strlen(id);
	*incr = false;
	if (poison) {
		op.kind = WEFT_OP_TEXT;
		path1(&path, "t");
		weft__mp_write_array(&val, 4);
		weft__mp_write_bin(&val, "\x07\xff\xfe\xfd\x13", 5);
		weft__mp_write_uint(&val, 0);
		weft__mp_write_uint(&val, 0);
		weft__mp_write_bool(&val, true);
	} else if (kind == 0) {
		op.kind = WEFT_OP_SET;
		weft__mp_write_map(&val, 1);
		weft__mp_write_cstr(&val, keys[rn(3)]);
		weft__mp_write_uint(&val, rnd() % 1000);
	} else if (kind == 1) {
		op.kind = WEFT_OP_INCR;
		op.coll = "c";
		op.id = "ctr";
		op.id_len = 3;
		path1(&path, "n");
		CHECK(weft__docset_incr_value(r->docs, "c", 1, "ctr", 3, path.data, path.len, r->id,
		                              r->inc, 1, &val) == WEFT_OK);
		*incr = true;
	} else if (kind == 2) {
		uint8_t elem[16];
		struct mp_buf e;

		op.kind = WEFT_OP_SADD;
		path1(&path, "s");
		weft__mp_buf_init(&e, NULL, 0);
		weft__mp_write_uint(&e, rn(8));
		memcpy(elem, e.data, e.len);
		CHECK(weft__docset_sadd_value(r->docs, "c", 1, id, op.id_len, path.data, path.len,
		                              r->id, r->inc, elem, e.len, &val) == WEFT_OK);
		weft__mp_buf_free(&e);
	} else if (kind == 3) {
		op.kind = WEFT_OP_DELETE;
		path1(&path, keys[rn(3)]);
	} else {
		op.kind = WEFT_OP_TEXT;
		path1(&path, "t");
		CHECK(weft__docset_text_value(r->docs, "c", 1, id, op.id_len, path.data, path.len,
		                              r->id, r->inc, false, 0, "xy", 2, 0,
		                              &val) == WEFT_OK);
	}
	op.path = path.len ? path.data : NULL;
	op.path_len = path.len;
	op.value = val.len ? val.data : NULL;
	op.value_len = val.len;
	weft__op_encode(b, &op);
	CHECK(b->err == 0);
	{
		struct lop l = {.replica = r->id, .inc = r->inc, .seq = op.seq, .incr = *incr};

		ledger_add(&l);
	}
	weft__mp_buf_free(&path);
	weft__mp_buf_free(&val);
	return !poison;
}

/* One local write (an op or a transaction) on replica r. */
static void rep_write(struct rep *r)
{
	static const char *const ids[] = {"d0", "d1", "d2", "d3"};
	struct mp_buf b;
	struct unit u;
	uint32_t nops = chance(15) ? 2 + rn(2) : 1;
	bool poison_unit = chance(2);
	uint32_t poison_at = rn(nops);
	size_t first_ledger = g_nledger;
	uint64_t first_seq = r->seq + 1;

	weft__mp_buf_init(&b, NULL, 0);
	if (nops > 1)
		weft__unit_txn_write(&b, nops);
	for (uint32_t i = 0; i < nops; i++) {
		size_t at = b.len;
		bool incr;
		int kind = (int)rn(10);

		kind = kind < 4 ? 0 : kind < 6 ? 1 : kind < 8 ? 2 : kind < 9 ? 3 : 4;
		build_op(r, &b, kind, ids[rn(4)], &incr, poison_unit && i == poison_at);
		if (incr)
			g_issued_incr++;
		/* Applied locally at once (memory first), so the next op of a
		 * transaction builds on it. A poisoned unit is not applied:
		 * the application would have seen its write fail. */
		if (!poison_unit) {
			struct mp_reader rd;
			struct weft_op op;

			weft__mp_reader_init(&rd, b.data + at, b.len - at);
			CHECK(weft__op_decode(&rd, &op) == WEFT_OK);
			CHECK(weft__docset_apply(r->docs, &op, NULL, NULL) == WEFT_OK);
		}
	}
	for (size_t i = first_ledger; i < g_nledger; i++) {
		g_ledger[i].poisoned = poison_unit;
		g_ledger[i].txn = nops;
		g_ledger[i].first = first_seq;
	}
	u.raw = weft__mp_buf_take(&b, &u.len);
	u.key = weft__op_key(r->inc, r->seq);
	u.nops = nops;
	if (r->npend == r->pend_cap) {
		r->pend_cap = r->pend_cap ? r->pend_cap * 2 : 16;
		r->pend = realloc(r->pend, r->pend_cap * sizeof(*r->pend));
		assert_non_null(r->pend);
	}
	r->pend[r->npend++] = u;
	CHECK(weft__cs_pump(&r->cs, rep_wall(r)) == WEFT_OK);
}

/* ---- the event loop ---- */

static void conn_server_gone(struct conn *c)
{
	if (c->ssn) {
		weft__ssn_closed(c->ssn);
		c->ssn = NULL;
	}
}

static void conn_release(struct conn *c)
{
	q_clear(&c->c2s);
	q_clear(&c->s2c);
	memset(c, 0, sizeof(*c));
}

static void rep_connect(struct rep *r)
{
	int i;

	for (i = 0; i < MAX_CONNS && g_conns[i].used; i++)
		;
	if (i == MAX_CONNS)
		return; /* every slot busy: try later */
	memset(&g_conns[i], 0, sizeof(g_conns[i]));
	g_conns[i].used = true;
	g_conns[i].rep = (int)(r - g_reps);
	g_conns[i].c_open = true;
	CHECK(weft__hub_open(g_hub, &g_conns[i], BASE_MS + g_now, &g_conns[i].ssn) == WEFT_OK);
	r->conn = i;
	CHECK(weft__cs_connected(&r->cs, rep_wall(r)) == WEFT_OK);
}

/* Delivers what is due on connection c; closes what is done. */
static void conn_step(struct conn *c)
{
	struct rep *r = &g_reps[c->rep];
	struct msg *m;

	if (c->c2s.head && c->c2s.head->at <= g_now) {
		m = q_pop(&c->c2s);
		if (c->ssn && !c->s_closing)
			weft__ssn_recv(c->ssn, m->data, m->len, BASE_MS + g_now);
		free(m);
	}
	if (c->c_open && c->s2c.head && c->s2c.head->at <= g_now) {
		m = q_pop(&c->s2c);
		if (!c->c_closing) {
			int rc = weft__cs_recv(&r->cs, m->data, m->len, rep_wall(r));

			CHECK(rc == WEFT_OK || rc == WEFT_ECLOSED);
			CHECK(r->cs.state != WEFT_CS_FAILED);
		}
		free(m);
	}
	/* The server closed: the replica sees it once everything sent before
	 * the close arrived. */
	if (c->c_open && c->s_closing && !c->s2c.head)
		rep_disconnect(r);
	/* The replica closed (or the connection was cut): the server sees it
	 * once what the replica sent arrived. */
	if ((c->c_closing || !c->c_open) && !c->c2s.head) {
		conn_server_gone(c);
		if (c->c_open)
			rep_disconnect(r);
	}
	if (c->s_closing && c->ssn && !c->c2s.head)
		conn_server_gone(c);
	if (!c->c_open && !c->ssn)
		conn_release(c);
}

static void server_crash(void)
{
	/* Everything not committed is lost; every connection drops. */
	for (int i = 0; i < MAX_CONNS; i++) {
		struct conn *c = &g_conns[i];

		if (!c->used)
			continue;
		if (c->c_open)
			rep_disconnect(&g_reps[c->rep]);
		c->ssn = NULL; /* freed with the hub */
		conn_release(c);
	}
	server_stop();
	weft__memstore_crash(g_st);
	weft__memstore_restart(g_st);
	server_start();
}

static void cut(struct rep *r)
{
	struct conn *c = &g_conns[r->conn];

	q_clear(&c->s2c);
	if (!chance(50))
		q_clear(&c->c2s);
	c->drain_only = true;
	rep_disconnect(r);
}

static void step(void)
{
	unsigned e = rn(100);

	g_step++;
	if (e < 25) {
		struct rep *r = &g_reps[rn((unsigned)g_nreps)];

		if (r->up && g_faults)
			rep_write(r);
	} else if (e < 65) {
		for (int k = 0; k < 4; k++) {
			struct conn *c = &g_conns[rn(MAX_CONNS)];

			if (c->used)
				conn_step(c);
		}
	} else if (e < 75) {
		if (g_faults && chance(3))
			weft__memstore_fail_after(g_st, 1 + rn(3));
		(void)weft__hub_commit(g_hub, BASE_MS + g_now);
		weft__memstore_fail_after(g_st, 0);
	} else if (e < 85) {
		g_now += 1 + rn(30);
		(void)weft__hub_tick(g_hub, BASE_MS + g_now);
		for (int i = 0; i < g_nreps; i++)
			if (g_reps[i].up && g_reps[i].conn >= 0)
				(void)weft__cs_tick(&g_reps[i].cs, rep_wall(&g_reps[i]));
	} else if (e < 90) {
		struct rep *r = &g_reps[rn((unsigned)g_nreps)];

		if (r->up)
			rep_flush(r);
	} else if (g_faults && e < 92) {
		struct rep *r = &g_reps[rn((unsigned)g_nreps)];

		if (r->up && r->conn >= 0) {
			g_tot.cuts++;
			cut(r);
		}
	} else if (g_faults && e < 93) {
		struct rep *r = &g_reps[rn((unsigned)g_nreps)];

		if (r->up) {
			g_tot.replica_crashes++;
			rep_crash(r);
		}
	} else if (g_faults && e == 93 && chance(30)) {
		g_tot.server_crashes++;
		server_crash();
	} else if (g_faults && e == 94) {
		struct rep *r = &g_reps[rn((unsigned)g_nreps)];

		r->partition_until = g_now + rn(3000);
		if (r->conn >= 0)
			cut(r);
	}
	/* Replicas come back and reconnect. */
	for (int i = 0; i < g_nreps; i++) {
		struct rep *r = &g_reps[i];

		if (!r->up && g_now >= r->retry_at)
			rep_open(r);
		if (r->up && r->conn < 0 && g_now >= r->retry_at && g_now >= r->partition_until)
			rep_connect(r);
	}
}

/* ---- the checks ---- */

static bool quiet(void)
{
	if (weft__authority_staged(g_au) > 0)
		return false;
	for (int i = 0; i < MAX_CONNS; i++)
		if (g_conns[i].used && (g_conns[i].c2s.head || g_conns[i].s2c.head))
			return false;
	for (int i = 0; i < g_nreps; i++) {
		struct rep *r = &g_reps[i];

		if (!r->up || r->npend > 0 || r->cs.state != WEFT_CS_REALTIME)
			return false;
		if (!r->has_cursor || r->cursor.pos != weft__authority_cursor(g_au).pos)
			return false;
	}
	return true;
}

static char *dump(struct weft_docset *ds)
{
	struct mp_buf b;
	size_t len;

	weft__mp_buf_init(&b, NULL, 0);
	CHECK(weft__docset_dump(ds, &b) == WEFT_OK);
	weft__mp_write_raw(&b, "", 1);
	return (char *)weft__mp_buf_take(&b, &len);
}

#define SEEN 0x80000000u /* in lop.txn: the op was found in the log */

struct logscan {
	uint64_t units;
};

static int check_unit(void *ctx, uint64_t pos, const void *val, size_t len)
{
	struct logscan *ls = ctx;
	struct mp_reader rd;
	struct weft_unit u;
	uint64_t first = 0;

	(void)pos;
	ls->units++;
	weft__mp_reader_init(&rd, val, len);
	CHECK(weft__unit_read(&rd, &u) == WEFT_OK);
	for (uint32_t i = 0; i < u.nops; i++) {
		struct weft_op op;
		struct lop *l;

		CHECK(weft__op_decode(&u.ops, &op) == WEFT_OK);
		l = ledger_find(op.replica, op.incarnation, op.seq);
		CHECK(l != NULL);
		CHECK(!l->poisoned); /* a poisoned unit is never committed */
		CHECK(!l->rejected);
		CHECK(!(l->txn & SEEN)); /* applied twice */
		CHECK(u.nops == l->txn); /* a transaction is one unit */
		if (i == 0)
			first = op.seq;
		CHECK(l->first == first);
		l->txn |= SEEN;
	}
	return 0;
}

static void check_final(void)
{
	char *want = dump(weft__authority_docs(g_au));
	struct logscan ls = {0};
	uint64_t acked_incr = 0, total = 0;

	for (int i = 0; i < g_nreps; i++) {
		char *got = dump(g_reps[i].docs);

		if (strcmp(got, want) != 0)
			fprintf(stderr, "sim: seed %llu: replica %d differs:\n%s\nserver:\n%s\n",
			        (unsigned long long)g_seed, i, got, want);
		CHECK(strcmp(got, want) == 0);
		free(got);
	}
	/* Each identity at most once in the log (check_unit), and every
	 * acknowledged op is there. */
	for (size_t i = 0; i < g_nledger; i++)
		CHECK(!(g_ledger[i].txn & SEEN));
	CHECK(weft__authority_scan(g_au, 0, check_unit, &ls) == WEFT_OK);
	for (size_t i = 0; i < g_nledger; i++) {
		struct lop *l = &g_ledger[i];
		bool seen = (l->txn & SEEN) != 0;

		if (l->rejected)
			CHECK(l->poisoned);
		if (l->acked && !l->rejected)
			CHECK(seen);
		if (l->poisoned)
			CHECK(!seen);
		if (l->incr && l->acked)
			acked_incr++;
	}
	/* The counter: acknowledged <= total <= issued. */
	{
		struct weft_doc *d =
		    weft__docset_find(weft__authority_docs(g_au), "c", 1, "ctr", 3);

		if (d && weft__doc_visible(d)) {
			struct mp_buf j;
			const char *p;

			weft__mp_buf_init(&j, NULL, 0);
			CHECK(weft__doc_write_json(d, &j) == WEFT_OK);
			weft__mp_write_raw(&j, "", 1);
			p = strstr((const char *)j.data, "\"n\":");
			if (p)
				total = strtoull(p + 4, NULL, 10);
			weft__mp_buf_free(&j);
		}
	}
	if (acked_incr > total || total > g_issued_incr)
		fprintf(stderr, "sim: seed %llu: counter %llu, acknowledged %llu, issued %llu\n",
		        (unsigned long long)g_seed, (unsigned long long)total,
		        (unsigned long long)acked_incr, (unsigned long long)g_issued_incr);
	CHECK(acked_incr <= total);
	CHECK(total <= g_issued_incr);
	CHECK(g_gaps_before + weft__hub_stats(g_hub)->gaps == 0);
	free(want);
}

static void run_seed(uint64_t seed, unsigned fault_steps)
{
	unsigned quiesce;

	g_seed = seed;
	g_rng = seed;
	g_step = 0;
	g_now = 0;
	g_nledger = 0;
	g_issued_incr = 0;
	g_gaps_before = 0;
	g_faults = true;
	memset(g_conns, 0, sizeof(g_conns));
	CHECK(weft__memstore_new(NULL, &g_st) == WEFT_OK);
	server_start();
	g_nreps = 3 + (int)rn(3);
	for (int i = 0; i < g_nreps; i++)
		rep_init(&g_reps[i], i);
	for (unsigned i = 0; i < fault_steps; i++)
		step();

	/* Heal: no more faults or writes; everyone back up. */
	g_faults = false;
	for (int i = 0; i < g_nreps; i++) {
		g_reps[i].partition_until = 0;
		if (!g_reps[i].up)
			g_reps[i].retry_at = g_now;
	}
	for (quiesce = 0; quiesce < 200000 && !quiet(); quiesce++)
		step();
	if (!quiet()) {
		for (int i = 0; i < g_nreps; i++)
			fprintf(stderr, "sim: seed %llu: replica %d up %d state %d pending %zu\n",
			        (unsigned long long)seed, i, g_reps[i].up, g_reps[i].cs.state,
			        g_reps[i].npend);
	}
	CHECK(quiet()); /* nobody stuck */
	check_final();
	g_tot.ops += g_nledger;
	g_tot.steps += g_step;

	for (int i = 0; i < MAX_CONNS; i++)
		if (g_conns[i].used)
			conn_release(&g_conns[i]);
	for (int i = 0; i < g_nreps; i++)
		rep_free(&g_reps[i]);
	server_stop();
	weft__store_close(g_st);
}

static void test_simulation(void **state)
{
	const char *one = getenv("WEFT_SIM_SEED"), *n = getenv("WEFT_SIM_SEEDS");
	unsigned seeds = n ? (unsigned)strtoul(n, NULL, 10) : 200;

	(void)state;
	if (one) {
		run_seed(strtoull(one, NULL, 10), 600);
	} else {
		for (unsigned s = 1; s <= seeds; s++)
			run_seed(s, 600);
		printf("sim: %u seeds passed: %llu steps, %llu ops issued, %llu units committed, "
		       "%llu rejected, %llu duplicate units, %llu commits (%llu failed), "
		       "%llu catch-up chunks, %llu snapshot chunks, %llu server crashes, "
		       "%llu replica crashes, "
		       "%llu connections cut\n",
		       seeds, (unsigned long long)g_tot.steps, (unsigned long long)g_tot.ops,
		       (unsigned long long)g_tot.units, (unsigned long long)g_tot.rejected,
		       (unsigned long long)g_tot.dups, (unsigned long long)g_tot.commits,
		       (unsigned long long)g_tot.failed_commits, (unsigned long long)g_tot.catchups,
		       (unsigned long long)g_tot.snapshots,
		       (unsigned long long)g_tot.server_crashes,
		       (unsigned long long)g_tot.replica_crashes, (unsigned long long)g_tot.cuts);
		if (seeds >= 50) {
			CHECK(g_tot.rejected > 0);
			CHECK(g_tot.dups > 0);
			CHECK(g_tot.failed_commits > 0);
			CHECK(g_tot.server_crashes > 0);
			CHECK(g_tot.replica_crashes > 0);
			CHECK(g_tot.cuts > 0);
			CHECK(g_tot.snapshots > 0);
		}
	}
	free(g_ledger);
	g_ledger = NULL;
	g_ledger_cap = 0;
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_simulation),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
