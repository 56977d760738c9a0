/*
 * fuzz_hub.c - libFuzzer target for the server's session logic (core/hub.c)
 * over the authority and the memory store.
 *
 * The input is a script. Its first byte picks small limits (CHANGES
 * chunks of 1..4 units, a small catch-up window); every later command
 * starts with an opcode byte: open a session (optionally with a valid
 * HELLO synthesized for replica N, so the fuzzer reaches PUSH handling at
 * once), feed a session a length-prefixed chunk of the input as one
 * message, synthesize a HELLO / PUSH (single ops and transactions of every
 * kind, in order, duplicated, with gaps, far-future stamps, another
 * replica's ops) / PING / BYE, commit, tick the clock, drain a transport
 * or make its next send fail, make the store fail its next mutations,
 * close a transport, shut down. Up to 3 sessions are open at once.
 *
 * Must never crash, leak or trip a sanitizer, and aborts when:
 *  - the hub sends anything our own decoders refuse, a message type a
 *    server never sends, or anything on a connection it closed or that was
 *    reported gone (weft__ssn_closed);
 *  - WELCOME is not the first message of a connection, SYNCED comes twice,
 *    CHANGES with progress (catch-up) come after SYNCED or without it
 *    (realtime) before, or an ERROR is not followed by a close;
 *  - a connection's cursor (CHANGES, SYNCED, ACK) goes backwards or past
 *    the log head, or names another epoch;
 *  - a catch-up CHANGES is not exactly the next units of the log, or a
 *    realtime CHANGES leaves out a unit the connection neither pushed nor
 *    wrote under its own replica, or SYNCED / an ACK's cursor covers units
 *    the connection was never sent;
 *  - after a commit the store's log positions are not 1..head without a
 *    gap, a logged unit does not decode, or the authority's cursor went
 *    back.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "weft/weft.h"
#include "core/authority.h"
#include "core/hub.h"
#include "core/op.h"
#include "core/proto.h"
#include "core/store.h"
#include "core/text.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define SLOTS 3      /* sessions open at once */
#define MAX_CONNS 16 /* sessions per input */
#define EPOCH UINT64_C(0x1122334455667788)
#define T0 UINT64_C(1700000000000)

static void check(bool ok, const char *what)
{
	if (!ok) {
		fprintf(stderr, "fuzz_hub: %s\n", what);
		abort();
	}
}

/* One connection, as the fake transport sees it. Never reused: its
 * address is the hub's `io` for exactly one session. */
struct conn {
	struct weft_ssn *s;   /* NULL once weft__ssn_closed was called */
	bool gone;            /* weft__ssn_closed was called */
	bool closing;         /* the hub called close */
	bool welcomed;        /* WELCOME received */
	bool synced;          /* SYNCED received */
	bool got_error;       /* ERROR received */
	bool fail_send;       /* the next send fails */
	bool hello_pending;   /* a valid HELLO was fed and not yet answered */
	uint64_t hello_start; /* where that HELLO's catch-up starts */
	uint64_t seen;        /* every position <= seen was sent, pushed here or
	                       predates the HELLO cursor */
	size_t queued;        /* bytes "not yet written" */
	uint64_t replica;     /* from the HELLO */
	uint32_t inc;
	uint64_t next_seq; /* synthesized PUSH */
	uint64_t ctr;      /* INCR totals, SADD counters */
};

struct fz {
	struct weft_store *st;
	struct weft_authority *au;
	struct weft_hub *hub;
	struct weft_hub_config cfg;
	struct conn conns[MAX_CONNS];
	int nconns;
	int slot[SLOTS];  /* conn index, -1 if free */
	uint64_t now;     /* ms */
	uint64_t known;   /* positions 1..known have origin[] */
	int *origin;      /* origin[pos]: conn index of the pusher, -1 unknown */
	uint64_t *writer; /* writer[pos]: the unit's replica */
	size_t origin_cap;
	const uint8_t *in; /* the rest of the script */
	size_t left;
	struct mp_buf msg; /* synthesized messages */
	struct mp_buf val; /* op values */
};

static uint8_t take(struct fz *f)
{
	if (!f->left)
		return 0;
	f->left--;
	return *f->in++;
}

static int conn_index(const struct fz *f, const struct conn *c)
{
	return (int)(c - f->conns);
}

/* ---- positions and the log ---- */

struct logscan {
	uint64_t next; /* the position expected next */
	int rc;
};

static int log_check_cb(void *ctx, uint64_t key, const void *val, size_t len)
{
	struct logscan *ls = ctx;
	struct mp_reader r, ops;
	struct weft_unit u;

	check(key == ls->next, "log positions are not consecutive");
	ls->next++;
	weft__mp_reader_init(&r, val, len);
	check(weft__unit_read(&r, &u) == WEFT_OK && weft__mp_reader_left(&r) == 0,
	      "a logged unit is malformed");
	ops = u.ops;
	for (uint32_t i = 0; i < u.nops; i++) {
		struct weft_op op;

		check(weft__op_decode(&ops, &op) == WEFT_OK, "a logged op does not decode");
	}
	return 0;
}

/* Records the origin of the units committed since the last call, and
 * checks the log and the cursor. */
static void sync_positions(struct fz *f)
{
	struct weft_cursor cur = weft__authority_cursor(f->au);
	const struct weft_committed *batch;
	struct logscan ls = {1, 0};
	uint64_t last;
	size_t n;

	check(cur.epoch == EPOCH, "the store epoch changed");
	check(cur.pos >= f->known, "the authority's cursor went back");
	if (cur.pos == f->known)
		return;
	batch = weft__authority_batch(f->au, &n);
	check(n == cur.pos - f->known, "the batch does not cover the new positions");
	if (cur.pos + 1 > f->origin_cap) {
		size_t cap = 2 * (cur.pos + 1);

		f->origin = realloc(f->origin, cap * sizeof(*f->origin));
		f->writer = realloc(f->writer, cap * sizeof(*f->writer));
		check(f->origin && f->writer, "out of memory");
		f->origin_cap = cap;
	}
	for (size_t i = 0; i < n; i++) {
		uint64_t pos = f->known + 1 + i;

		check(batch[i].pos == pos, "batch positions are not consecutive");
		f->origin[pos] = -1;
		f->writer[pos] = batch[i].replica;
		for (int k = 0; k < f->nconns; k++)
			if (f->conns[k].s && (void *)f->conns[k].s == batch[i].origin)
				f->origin[pos] = k;
	}
	f->known = cur.pos;
	check(f->st->vt->log_scan(f->st, 0, log_check_cb, &ls) == 0, "log scan failed");
	check(ls.next == cur.pos + 1, "the log does not end at the head");
	check(f->st->vt->log_last(f->st, &last) == WEFT_OK && last == cur.pos,
	      "log_last is not the head");
}

/* May the hub leave position pos out of c's realtime CHANGES? Only when
 * the connection pushed it, or (older rule) its own replica wrote it. */
static bool skippable(const struct fz *f, const struct conn *c, uint64_t pos)
{
	return f->origin[pos] == conn_index(f, c) || f->writer[pos] == c->replica;
}

/* Compares the units of a CHANGES with the log range (seen, to]. */
struct rangecheck {
	struct fz *f;
	struct conn *c;
	struct mp_reader units; /* the message's, still to match */
	uint32_t left;          /* units still to match */
	uint64_t to;
	uint64_t next; /* the position expected next */
	bool catchup;  /* every unit, none skipped */
};

static int range_cb(void *ctx, uint64_t key, const void *val, size_t len)
{
	struct rangecheck *rc = ctx;
	struct mp_reader r = rc->units;
	struct weft_unit u;

	if (key > rc->to)
		return 1;
	check(key == rc->next, "log gap under a CHANGES");
	rc->next++;
	if (rc->left && weft__unit_read(&r, &u) == WEFT_OK && u.raw_len == len &&
	    memcmp(u.raw, val, len) == 0) {
		rc->units = r;
		rc->left--;
		return 0;
	}
	check(!rc->catchup, "catch-up CHANGES is not the log");
	check(skippable(rc->f, rc->c, key), "realtime CHANGES left out another replica's unit");
	return 0;
}

static void check_range(struct fz *f, struct conn *c, const struct weft_changes *ch, bool catchup)
{
	struct rangecheck rc = {f, c, ch->units, ch->nunits, ch->cursor.pos, c->seen + 1, catchup};

	(void)f->st->vt->log_scan(f->st, c->seen + 1, range_cb, &rc);
	check(rc.next == ch->cursor.pos + 1, "CHANGES cursor is past the log");
	check(rc.left == 0, "CHANGES holds units that are not in the log range");
}

/* Positions (seen, to] must all be the connection's own. */
static void check_own_upto(struct fz *f, struct conn *c, uint64_t to)
{
	for (uint64_t p = c->seen + 1; p <= to; p++)
		check(p <= f->known && skippable(f, c, p), "a cursor covers units never sent");
}

/* ---- what the hub sends ---- */

static void check_cursor(struct fz *f, struct conn *c, const struct weft_cursor *cur)
{
	check(cur->epoch == EPOCH, "cursor of another epoch");
	check(cur->pos <= weft__authority_cursor(f->au).pos, "cursor past the head");
	check(cur->pos >= c->seen, "a connection's cursor went back");
}

static void check_states(struct mp_reader r, uint32_t n)
{
	for (uint32_t i = 0; i < n; i++) {
		const char *coll, *id;
		size_t cl, il, sl;
		const void *st;

		check(weft__msg_doc_state_read(&r, &coll, &cl, &id, &il, &st, &sl) == WEFT_OK,
		      "bad state entry");
	}
	check(weft__mp_reader_left(&r) == 0, "state list has extra bytes");
}

static void check_units(struct mp_reader r, uint32_t n)
{
	for (uint32_t i = 0; i < n; i++) {
		struct weft_unit u;
		struct mp_reader ops;

		check(weft__unit_read(&r, &u) == WEFT_OK, "bad unit in CHANGES");
		ops = u.ops;
		for (uint32_t k = 0; k < u.nops; k++) {
			struct weft_op op;

			check(weft__op_decode(&ops, &op) == WEFT_OK, "bad op in CHANGES");
		}
	}
}

static void check_message(struct fz *f, struct conn *c, const uint8_t *data, size_t len)
{
	struct mp_reader r;
	uint32_t nf;
	int type;

	sync_positions(f);
	weft__mp_reader_init(&r, data, len);
	check(weft__msg_begin(&r, &type, &nf) == WEFT_OK, "not a message");
	/* The hub answers a PING that comes before HELLO (the weft client,
	 * client_session.c, would call that PONG "server spoke before
	 * WELCOME"; it never pings that early). */
	check(type == WEFT_MSG_ERROR || type == WEFT_MSG_PONG || c->welcomed ||
	          type == WEFT_MSG_WELCOME,
	      "a message before WELCOME");
	switch (type) {
	case WEFT_MSG_WELCOME: {
		struct weft_welcome w;

		check(weft__msg_welcome_read(&r, nf, &w) == WEFT_OK, "bad WELCOME");
		check(!c->welcomed, "second WELCOME");
		check(c->hello_pending, "WELCOME without a valid HELLO");
		c->welcomed = true;
		c->hello_pending = false;
		c->seen = c->hello_start;
		break;
	}
	case WEFT_MSG_CHANGES: {
		struct weft_changes ch;

		check(weft__msg_changes_read(&r, nf, &ch) == WEFT_OK, "bad CHANGES");
		check_units(ch.units, ch.nunits);
		check(ch.nunits > 0, "empty CHANGES");
		check_cursor(f, c, &ch.cursor);
		check(ch.cursor.pos > c->seen, "CHANGES cursor does not advance");
		if (ch.has_progress)
			check(!c->synced, "catch-up CHANGES after SYNCED");
		else
			check(c->synced, "realtime CHANGES before SYNCED");
		check_range(f, c, &ch, ch.has_progress);
		c->seen = ch.cursor.pos;
		break;
	}
	case WEFT_MSG_SYNCED: {
		struct weft_cursor cur;

		check(weft__msg_synced_read(&r, nf, &cur) == WEFT_OK, "bad SYNCED");
		check(!c->synced, "second SYNCED");
		check_cursor(f, c, &cur);
		check(cur.pos == c->seen, "SYNCED before every unit was sent");
		c->synced = true;
		break;
	}
	case WEFT_MSG_ACK: {
		struct weft_ack a;
		struct mp_reader rs;

		check(weft__msg_ack_read(&r, nf, &a) == WEFT_OK, "bad ACK");
		rs = a.restamps;
		for (uint32_t i = 0; i < a.nrestamps; i++) {
			uint32_t inc;
			uint64_t seq, hlc;

			check(weft__msg_restamp_read(&rs, &inc, &seq, &hlc) == WEFT_OK,
			      "bad restamp");
		}
		check_states(a.states, a.nstates);
		if (a.has_cursor) {
			check_cursor(f, c, &a.cursor);
			check_own_upto(f, c, a.cursor.pos);
			c->seen = a.cursor.pos;
		}
		break;
	}
	case WEFT_MSG_REJECT: {
		struct weft_reject j;

		check(weft__msg_reject_read(&r, nf, &j) == WEFT_OK, "bad REJECT");
		check_states(j.states, j.nstates);
		break;
	}
	case WEFT_MSG_ERROR: {
		const char *m;
		size_t ml;
		int64_t code;

		check(weft__msg_error_read(&r, nf, &code, &m, &ml) == WEFT_OK, "bad ERROR");
		check(code >= WEFT_PERR_PROTOCOL && code <= WEFT_PERR_TIMEOUT,
		      "unknown ERROR code");
		c->got_error = true;
		break;
	}
	case WEFT_MSG_PONG: {
		uint64_t nonce;

		check(weft__msg_ping_read(&r, nf, &nonce) == WEFT_OK, "bad PONG");
		break;
	}
	default:
		check(false, "a message type the server never sends");
	}
}

/* ---- the fake transport ---- */

static int io_send(void *ctx, void *io, const uint8_t *data, size_t len)
{
	struct fz *f = ctx;
	struct conn *c = io;

	check(!c->gone, "send after weft__ssn_closed");
	check(!c->closing, "send after close");
	check_message(f, c, data, len);
	if (c->fail_send) {
		c->fail_send = false;
		return WEFT_ECLOSED;
	}
	c->queued += len;
	return 0;
}

static void io_close(void *ctx, void *io, int code, const char *reason)
{
	struct conn *c = io;

	(void)ctx;
	check(!c->gone, "close after weft__ssn_closed");
	check(!c->closing, "closed twice");
	check(code >= 1000 && code <= 1011 && reason, "bad close");
	c->closing = true;
}

static size_t io_queued(void *ctx, void *io)
{
	struct conn *c = io;

	(void)ctx;
	check(!c->gone, "queued after weft__ssn_closed");
	return c->queued;
}

/* After each call into the hub: an ERROR is always followed by a close,
 * and positions are recorded. */
static void after_call(struct fz *f)
{
	sync_positions(f);
	for (int k = 0; k < f->nconns; k++)
		if (f->conns[k].got_error)
			check(f->conns[k].closing || f->conns[k].gone, "ERROR without close");
}

/* ---- driving the hub ---- */

static struct conn *slot_conn(struct fz *f, uint8_t b)
{
	int k = f->slot[b % SLOTS];

	return k < 0 ? NULL : &f->conns[k];
}

/* Feeds one message; first notes what a valid HELLO in it implies. */
static void feed(struct fz *f, struct conn *c, const uint8_t *data, size_t len)
{
	struct mp_reader r;
	struct weft_hello h;
	uint32_t nf;
	int type;

	weft__mp_reader_init(&r, data, len);
	if (!c->welcomed && weft__msg_begin(&r, &type, &nf) == WEFT_OK && type == WEFT_MSG_HELLO &&
	    weft__msg_hello_read(&r, nf, &h) == WEFT_OK && h.version == WEFT_PROTO_VERSION &&
	    h.replica != 0) {
		struct weft_cursor head = weft__authority_cursor(f->au);

		c->hello_pending = true;
		c->hello_start = 0;
		if (h.has_cursor && h.cursor.epoch == head.epoch && h.cursor.pos <= head.pos)
			c->hello_start = h.cursor.pos;
		c->replica = h.replica;
		c->inc = h.incarnation;
		c->next_seq = 1;
	}
	weft__ssn_recv(c->s, data, len, f->now);
	after_call(f);
	c->hello_pending = false;
}

static void feed_msg(struct fz *f, struct conn *c)
{
	uint8_t *copy;

	check(f->msg.err == 0, "out of memory");
	/* A copy of exactly its size: ASan sees any read past the end. */
	copy = malloc(f->msg.len ? f->msg.len : 1);
	check(copy != NULL, "out of memory");
	memcpy(copy, f->msg.data, f->msg.len);
	feed(f, c, copy, f->msg.len);
	free(copy);
	weft__mp_buf_reset(&f->msg);
}

static void hello(struct fz *f, struct conn *c, uint8_t b)
{
	static const char *const caps[] = {"txn", "ping", NULL};
	struct weft_hello h = {.version = 1,
	                       .replica = 1 + (b & 3),
	                       .incarnation = 1 + ((b >> 2) & 1),
	                       .cap_names = caps};
	struct weft_cursor head = weft__authority_cursor(f->au);

	switch ((b >> 3) & 3) {
	case 1: /* the head */
		h.has_cursor = true;
		h.cursor = head;
		break;
	case 2: /* somewhere in the log */
		h.has_cursor = true;
		h.cursor.epoch = EPOCH;
		h.cursor.pos = head.pos ? take(f) % (head.pos + 1) : 0;
		break;
	case 3: /* another store, or the future */
		h.has_cursor = true;
		h.cursor.epoch = (b & 0x20) ? EPOCH : 7;
		h.cursor.pos = head.pos + 1 + take(f);
		break;
	default:
		break;
	}
	if (b & 0x40) {
		h.token = "token";
		h.token_len = 5;
	}
	weft__msg_hello_write(&f->msg, &h);
	feed_msg(f, c);
}

/* Writes one valid op of kind `kind` (1..7) to f->msg. */
static void write_op(struct fz *f, struct conn *c, uint64_t replica, uint64_t seq, uint8_t kind,
                     uint8_t b)
{
	static const char *const ids[] = {"a", "b", "c"};
	struct weft_op op;
	struct mp_buf *v = &f->val;
	uint8_t path[8];
	size_t plen = 0;

	memset(&op, 0, sizeof(op));
	op.replica = replica;
	op.incarnation = c->inc ? c->inc : 1;
	op.seq = seq;
	op.hlc = WEFT_HLC_MAKE((b & 0x80) ? f->now + 3600000 : f->now, seq & 0xffff);
	op.kind = (enum weft_op_kind)kind;
	op.coll = "c";
	op.coll_len = 1;
	op.id = ids[b % 3];
	op.id_len = 1;
	weft__mp_buf_reset(v);
	c->ctr++;
	switch (kind) {
	case WEFT_OP_SET:
	case WEFT_OP_REPLACE:
		if (b & 0x10) { /* a field */
			path[plen++] = 0x91;
			path[plen++] = 0xa1;
			path[plen++] = 'f';
			weft__mp_write_int(v, (int64_t)seq);
		} else {
			weft__mp_write_map(v, 1);
			weft__mp_write_cstr(v, (b & 0x20) ? "x" : "y");
			weft__mp_write_uint(v, seq);
		}
		break;
	case WEFT_OP_DELETE:
		if (b & 0x10) {
			path[plen++] = 0x91;
			path[plen++] = 0xa1;
			path[plen++] = 'f';
		}
		weft__mp_write_nil(v);
		break;
	case WEFT_OP_INCR:
		path[plen++] = 0x91;
		path[plen++] = 0xa1;
		path[plen++] = 'n';
		weft__mp_write_array(v, 6);
		weft__mp_write_int(v, 1);
		weft__mp_write_uint(v, c->ctr);
		weft__mp_write_uint(v, 0);
		weft__mp_write_uint(v, 0);
		weft__mp_write_uint(v, 0);
		weft__mp_write_bool(v, false);
		break;
	case WEFT_OP_SADD:
	case WEFT_OP_SREM:
		path[plen++] = 0x91;
		path[plen++] = 0xa1;
		path[plen++] = 's';
		weft__mp_write_array(v, 3);
		weft__mp_write_cstr(v, (b & 0x20) ? "e" : "f");
		if (kind == WEFT_OP_SADD) {
			weft__mp_write_uint(v, c->ctr);
		} else {
			weft__mp_write_array(v, 1);
			weft__mp_write_array(v, 3);
			weft__mp_write_uint(v, replica);
			weft__mp_write_uint(v, op.incarnation);
			weft__mp_write_uint(v, 1 + (b & 3));
		}
		weft__mp_write_bool(v, false);
		break;
	default: { /* TEXT: an insert made by core/text.c, bytes the text
		  * module refuses (the unit is rejected), or an empty update */
		struct weft_text *t = NULL;
		struct mp_buf upd;

		path[plen++] = 0x91;
		path[plen++] = 0xa1;
		path[plen++] = 't';
		weft__mp_buf_init(&upd, NULL, 0);
		if (b & 0x40)
			weft__mp_write_raw(&upd, "\xff\x00\x13", 3);
		else if (!(b & 0x20) &&
		         weft__text_new(NULL, replica, op.incarnation, &t) == WEFT_OK)
			(void)weft__text_insert(t, 0, "hi", 2, &upd);
		weft__text_free(t);
		weft__mp_write_array(v, 4);
		weft__mp_write_bin(v, upd.data, upd.len);
		weft__mp_write_uint(v, 0);
		weft__mp_write_uint(v, 0);
		weft__mp_write_bool(v, false);
		weft__mp_buf_free(&upd);
		break;
	}
	}
	check(v->err == 0, "out of memory");
	op.path = plen ? path : NULL;
	op.path_len = plen;
	op.value = v->data;
	op.value_len = v->len;
	weft__op_encode(&f->msg, &op);
}

/* A PUSH of 1..4 units (single ops or transactions of 2), with seqs in
 * order unless the script says otherwise. */
static void push(struct fz *f, struct conn *c, uint8_t b)
{
	uint32_t n = 1 + (b & 3);

	weft__msg_push_begin(&f->msg, n);
	for (uint32_t i = 0; i < n; i++) {
		uint8_t u = take(f), k = take(f);
		uint32_t nops = (u & 1) ? 2 : 1;
		uint64_t replica = (u & 2) ? c->replica + 1 : c->replica;

		if (c->next_seq == 0)
			c->next_seq = 1;
		switch ((u >> 2) & 7) {
		case 1: /* a duplicate of the previous unit */
			if (c->next_seq > nops)
				c->next_seq -= nops;
			break;
		case 2: /* a gap */
			c->next_seq += 1 + (u >> 5);
			break;
		case 3: /* from the start */
			c->next_seq = 1;
			break;
		default:
			break;
		}
		if (nops > 1)
			weft__unit_txn_write(&f->msg, nops);
		for (uint32_t o = 0; o < nops; o++) {
			write_op(f, c, replica ? replica : 1, c->next_seq++, 1 + (k % 7), take(f));
			k = (uint8_t)(k / 7 + take(f));
		}
	}
	feed_msg(f, c);
}

static void open_session(struct fz *f, uint8_t b)
{
	int s = (b & 3) % SLOTS;
	struct conn *c;

	if (f->slot[s] >= 0 || f->nconns >= MAX_CONNS)
		return;
	c = &f->conns[f->nconns];
	memset(c, 0, sizeof(*c));
	f->slot[s] = f->nconns++;
	check(weft__hub_open(f->hub, c, f->now, &c->s) == WEFT_OK, "hub_open failed");
	after_call(f);
	if (b & 4)
		hello(f, c, b >> 3);
}

static void transport_gone(struct fz *f, int s)
{
	struct conn *c;

	if (f->slot[s] < 0)
		return;
	c = &f->conns[f->slot[s]];
	f->slot[s] = -1;
	weft__ssn_closed(c->s);
	c->s = NULL;
	c->gone = true;
	after_call(f);
}

static void step(struct fz *f)
{
	uint8_t op = take(f), b = take(f);
	struct conn *c = slot_conn(f, b);

	switch (op % 16) {
	case 0:
		open_session(f, b);
		break;
	case 1:
	case 14:
	case 15: { /* a raw message: a length byte (255: two more), then bytes */
		size_t len = take(f);

		if (len == 255)
			len = (size_t)take(f) << 8 | take(f);
		if (len > f->left)
			len = f->left;
		if (c) {
			uint8_t *copy = malloc(len ? len : 1);

			check(copy != NULL, "out of memory");
			memcpy(copy, f->in, len);
			feed(f, c, copy, len);
			free(copy);
		}
		f->in += len;
		f->left -= len;
		break;
	}
	case 2:
		if (c)
			hello(f, c, take(f));
		break;
	case 3:
		if (c)
			push(f, c, take(f));
		break;
	case 4:
		(void)weft__hub_commit(f->hub, f->now);
		after_call(f);
		break;
	case 5:
		f->now += (uint64_t)b * 250;
		(void)weft__hub_tick(f->hub, f->now);
		after_call(f);
		break;
	case 6:
		transport_gone(f, b % SLOTS);
		break;
	case 7:
		weft__memstore_fail_after(f->st, b % 5);
		break;
	case 8:
	case 9:
		if (c) {
			if (op % 16 == 8)
				weft__msg_ping_write(&f->msg, WEFT_MSG_PING, b);
			else
				weft__msg_bye_write(&f->msg, (b & 1) ? "done" : "");
			feed_msg(f, c);
		}
		break;
	case 10: /* the transport drained */
		if (c)
			c->queued = 0;
		(void)weft__hub_commit(f->hub, f->now);
		after_call(f);
		break;
	case 11:
		if (c)
			c->fail_send = true;
		break;
	case 12:
		if (b == 0x5d) { /* rare: the server stops */
			weft__hub_shutdown(f->hub, f->now);
			after_call(f);
		}
		break;
	default: /* 13: the transport reports every connection the hub closed */
		for (int s = 0; s < SLOTS; s++)
			if (f->slot[s] >= 0 && f->conns[f->slot[s]].closing)
				transport_gone(f, s);
		break;
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const struct weft_hub_io io = {
	    .send = io_send, .close = io_close, .queued = io_queued};
	struct weft_hub_io hio = io;
	struct fz f;
	uint8_t cfg, end;

	if (size < 2)
		return 0;
	memset(&f, 0, sizeof(f));
	f.in = data + 2;
	f.left = size - 2;
	f.now = T0;
	cfg = data[0];
	end = data[1];
	for (int s = 0; s < SLOTS; s++)
		f.slot[s] = -1;
	weft__mp_buf_init(&f.msg, NULL, 0);
	weft__mp_buf_init(&f.val, NULL, 0);
	weft__hub_config_init(&f.cfg);
	f.cfg.catchup_units = 1 + (cfg & 3);
	f.cfg.catchup_chunk = (cfg & 4) ? 64 : 4096;
	f.cfg.catchup_window = (size_t)128 << ((cfg >> 3) & 3);
	f.cfg.max_push = 4 + ((cfg >> 5) & 1) * 8;
	f.cfg.max_txn_ops = 1 + ((cfg >> 6) & 1);
	f.cfg.heartbeat_ms = (cfg & 0x80) ? 1000 : 0;
	f.cfg.max_drift_ms = 60000;
	hio.ctx = &f;
	check(weft__memstore_new(NULL, &f.st) == WEFT_OK, "memstore_new failed");
	check(weft__authority_open(f.st, NULL, EPOCH, &f.au) == WEFT_OK, "authority_open failed");
	check(weft__hub_new(f.au, &f.cfg, &hio, NULL, &f.hub) == WEFT_OK, "hub_new failed");
	sync_positions(&f);

	while (f.left)
		step(&f);

	/* The end: commit what is staged, or not; report the transports gone,
	 * or let weft__hub_free free the sessions. */
	if (end & 1) {
		(void)weft__hub_commit(f.hub, f.now);
		after_call(&f);
	}
	if (end & 2)
		for (int s = 0; s < SLOTS; s++)
			transport_gone(&f, (s + end / 4) % SLOTS);
	weft__hub_free(f.hub);
	weft__authority_free(f.au);
	weft__store_close(f.st);
	weft__mp_buf_free(&f.msg);
	weft__mp_buf_free(&f.val);
	free(f.origin);
	free(f.writer);
	return 0;
}
