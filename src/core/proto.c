/*
 * proto.c - encoding and decoding of the sync protocol's messages. See
 * proto.h and docs/PROTOCOL.md. Decoders validate everything; extra
 * trailing fields are skipped so that later versions can add them.
 */
#include <string.h>

#include "weft/weft.h"
#include "core/op.h"
#include "core/proto.h"

static void be64_put(uint8_t *p, uint64_t v)
{
	for (int i = 7; i >= 0; i--) {
		p[i] = (uint8_t)v;
		v >>= 8;
	}
}

static uint64_t be64_get(const uint8_t *p)
{
	uint64_t v = 0;

	for (int i = 0; i < 8; i++)
		v = (v << 8) | p[i];
	return v;
}

void weft__cursor_pack(const struct weft_cursor *c, uint8_t out[WEFT_CURSOR_LEN])
{
	be64_put(out, c->epoch);
	be64_put(out + 8, c->pos);
}

void weft__cursor_unpack(struct weft_cursor *c, const uint8_t in[WEFT_CURSOR_LEN])
{
	c->epoch = be64_get(in);
	c->pos = be64_get(in + 8);
}

void weft__cursor_write(struct mp_buf *b, const struct weft_cursor *c)
{
	uint8_t raw[WEFT_CURSOR_LEN];

	weft__cursor_pack(c, raw);
	weft__mp_write_bin(b, raw, sizeof(raw));
}

int weft__cursor_read(struct mp_reader *r, struct weft_cursor *c)
{
	struct mp_reader save = *r;
	const void *p;
	size_t len;

	if (weft__mp_read_bin(r, &p, &len) != WEFT_OK || len != WEFT_CURSOR_LEN) {
		*r = save;
		return WEFT_EPROTO;
	}
	weft__cursor_unpack(c, p);
	return WEFT_OK;
}

int weft__msg_begin(struct mp_reader *r, int *type, uint32_t *nfields)
{
	uint64_t t;

	if (weft__mp_read_array(r, nfields) != WEFT_OK || *nfields < 1)
		return WEFT_EPROTO;
	if (weft__mp_read_uint(r, &t) != WEFT_OK || t < WEFT_MSG_HELLO || t > WEFT_MSG_TYPE_MAX)
		return WEFT_EPROTO;
	*type = (int)t;
	return WEFT_OK;
}

int weft__msg_skip_rest(struct mp_reader *r, uint32_t nfields, uint32_t used)
{
	for (uint32_t i = used; i < nfields; i++)
		if (weft__mp_skip(r, NULL, NULL) != WEFT_OK)
			return WEFT_EPROTO;
	return weft__mp_reader_left(r) == 0 ? WEFT_OK : WEFT_EPROTO;
}

static void caps_write(struct mp_buf *b, const char *const *names)
{
	uint32_t n = 0;

	while (names && names[n])
		n++;
	weft__mp_write_array(b, n);
	for (uint32_t i = 0; i < n; i++)
		weft__mp_write_cstr(b, names[i]);
}

/* A list of at most WEFT_MAX_CAPS names of 1..WEFT_MAX_CAP_LEN bytes. */
static int caps_read(struct mp_reader *r, struct mp_reader *caps, uint32_t *n)
{
	if (weft__mp_read_array(r, n) != WEFT_OK || *n > WEFT_MAX_CAPS)
		return WEFT_EPROTO;
	*caps = *r;
	for (uint32_t i = 0; i < *n; i++) {
		const char *s;
		size_t len;

		if (weft__mp_read_str(r, &s, &len) != WEFT_OK || len == 0 || len > WEFT_MAX_CAP_LEN)
			return WEFT_EPROTO;
	}
	caps->end = r->p;
	return WEFT_OK;
}

bool weft__caps_has(const struct mp_reader *caps, uint32_t ncaps, const char *name)
{
	struct mp_reader r = *caps;
	size_t want = strlen(name);

	for (uint32_t i = 0; i < ncaps; i++) {
		const char *s;
		size_t len;

		if (weft__mp_read_str(&r, &s, &len) != WEFT_OK)
			return false;
		if (len == want && memcmp(s, name, len) == 0)
			return true;
	}
	return false;
}

void weft__msg_hello_write(struct mp_buf *b, const struct weft_hello *h)
{
	weft__mp_write_array(b, 7);
	weft__mp_write_uint(b, WEFT_MSG_HELLO);
	weft__mp_write_uint(b, h->version);
	weft__mp_write_uint(b, h->replica);
	weft__mp_write_uint(b, h->incarnation);
	if (h->has_cursor)
		weft__cursor_write(b, &h->cursor);
	else
		weft__mp_write_nil(b);
	if (h->token)
		weft__mp_write_str(b, h->token, h->token_len);
	else
		weft__mp_write_nil(b);
	caps_write(b, h->cap_names);
}

int weft__msg_hello_read(struct mp_reader *r, uint32_t nfields, struct weft_hello *h)
{
	enum mp_type t;
	uint64_t inc;

	memset(h, 0, sizeof(*h));
	weft__mp_reader_init(&h->caps, r->p, 0);
	if (nfields < 5)
		return WEFT_EPROTO;
	if (weft__mp_read_uint(r, &h->version) != WEFT_OK ||
	    weft__mp_read_uint(r, &h->replica) != WEFT_OK ||
	    weft__mp_read_uint(r, &inc) != WEFT_OK || inc == 0 || inc > WEFT_MAX_INCARNATION)
		return WEFT_EPROTO;
	h->incarnation = (uint32_t)inc;
	if (weft__mp_peek(r, &t) != WEFT_OK)
		return WEFT_EPROTO;
	if (t == MP_NIL) {
		(void)weft__mp_read_nil(r);
	} else {
		if (weft__cursor_read(r, &h->cursor) != WEFT_OK)
			return WEFT_EPROTO;
		h->has_cursor = true;
	}
	if (nfields >= 6) {
		if (weft__mp_peek(r, &t) != WEFT_OK)
			return WEFT_EPROTO;
		if (t == MP_NIL) {
			(void)weft__mp_read_nil(r);
		} else if (weft__mp_read_str(r, &h->token, &h->token_len) != WEFT_OK ||
		           h->token_len > WEFT_MAX_TOKEN) {
			return WEFT_EPROTO;
		}
	}
	if (nfields >= 7 && caps_read(r, &h->caps, &h->ncaps) != WEFT_OK)
		return WEFT_EPROTO;
	return weft__msg_skip_rest(r, nfields, nfields < 7 ? nfields : 7);
}

void weft__msg_welcome_write(struct mp_buf *b, const struct weft_welcome *w)
{
	weft__mp_write_array(b, 9);
	weft__mp_write_uint(b, WEFT_MSG_WELCOME);
	weft__mp_write_uint(b, w->version);
	weft__mp_write_uint(b, w->server_time_ms);
	weft__mp_write_uint(b, w->max_message);
	weft__mp_write_uint(b, w->max_push);
	weft__mp_write_uint(b, w->max_drift_ms);
	weft__mp_write_uint(b, w->max_txn_ops);
	weft__mp_write_uint(b, w->heartbeat_ms);
	caps_write(b, w->cap_names);
}

int weft__msg_welcome_read(struct mp_reader *r, uint32_t nfields, struct weft_welcome *w)
{
	memset(w, 0, sizeof(*w));
	weft__mp_reader_init(&w->caps, r->p, 0);
	if (nfields < 5)
		return WEFT_EPROTO;
	if (weft__mp_read_uint(r, &w->version) != WEFT_OK ||
	    weft__mp_read_uint(r, &w->server_time_ms) != WEFT_OK ||
	    weft__mp_read_uint(r, &w->max_message) != WEFT_OK ||
	    weft__mp_read_uint(r, &w->max_push) != WEFT_OK || w->max_push == 0)
		return WEFT_EPROTO;
	w->max_drift_ms = 60000;
	w->max_txn_ops = w->max_push;
	if (nfields >= 6 && weft__mp_read_uint(r, &w->max_drift_ms) != WEFT_OK)
		return WEFT_EPROTO;
	if (nfields >= 7 &&
	    (weft__mp_read_uint(r, &w->max_txn_ops) != WEFT_OK || w->max_txn_ops == 0))
		return WEFT_EPROTO;
	if (nfields >= 8 && weft__mp_read_uint(r, &w->heartbeat_ms) != WEFT_OK)
		return WEFT_EPROTO;
	if (nfields >= 9 && caps_read(r, &w->caps, &w->ncaps) != WEFT_OK)
		return WEFT_EPROTO;
	return weft__msg_skip_rest(r, nfields, nfields < 9 ? nfields : 9);
}

/* ---- units ---- */

int weft__unit_read(struct mp_reader *r, struct weft_unit *u)
{
	struct mp_reader save = *r;
	uint32_t n;

	memset(u, 0, sizeof(*u));
	u->raw = r->p;
	if (weft__mp_read_array(r, &n) != WEFT_OK)
		goto fail;
	if (n == 9) {
		/* A single op: the unit is the op. */
		*r = save;
		u->ops = *r;
		u->nops = 1;
	} else if (n == 1) {
		u->txn = true;
		if (weft__mp_read_array(r, &u->nops) != WEFT_OK || u->nops == 0)
			goto fail;
		u->ops = *r;
	} else {
		goto fail;
	}
	for (uint32_t i = 0; i < u->nops; i++) {
		struct mp_reader op = *r;
		uint32_t k;

		if (weft__mp_read_array(&op, &k) != WEFT_OK || k != 9 ||
		    weft__mp_skip(r, NULL, NULL) != WEFT_OK)
			goto fail;
	}
	u->ops.end = r->p;
	u->raw_len = (size_t)(r->p - u->raw);
	return WEFT_OK;
fail:
	*r = save;
	return WEFT_EPROTO;
}

void weft__unit_txn_write(struct mp_buf *b, uint32_t nops)
{
	weft__mp_write_array(b, 1);
	weft__mp_write_array(b, nops);
}

void weft__msg_push_begin(struct mp_buf *b, uint32_t nunits)
{
	weft__mp_write_array(b, 2);
	weft__mp_write_uint(b, WEFT_MSG_PUSH);
	weft__mp_write_array(b, nunits);
}

void weft__msg_changes_begin(struct mp_buf *b, uint32_t nunits, bool progress)
{
	weft__mp_write_array(b, progress ? 4 : 3);
	weft__mp_write_uint(b, WEFT_MSG_CHANGES);
	weft__mp_write_array(b, nunits);
}

void weft__msg_changes_end(struct mp_buf *b, const struct weft_cursor *c, uint64_t done,
                           uint64_t total)
{
	weft__cursor_write(b, c);
	if (total) {
		weft__mp_write_array(b, 2);
		weft__mp_write_uint(b, done);
		weft__mp_write_uint(b, total);
	}
}

int weft__msg_changes_read(struct mp_reader *r, uint32_t nfields, struct weft_changes *c)
{
	memset(c, 0, sizeof(*c));
	if (nfields < 3 || weft__mp_read_array(r, &c->nunits) != WEFT_OK)
		return WEFT_EPROTO;
	c->units = *r;
	for (uint32_t i = 0; i < c->nunits; i++) {
		struct weft_unit u;

		if (weft__unit_read(r, &u) != WEFT_OK)
			return WEFT_EPROTO;
	}
	c->units.end = r->p;
	if (weft__cursor_read(r, &c->cursor) != WEFT_OK)
		return WEFT_EPROTO;
	if (nfields >= 4) {
		uint32_t two;

		if (weft__mp_read_array(r, &two) != WEFT_OK || two != 2 ||
		    weft__mp_read_uint(r, &c->done) != WEFT_OK ||
		    weft__mp_read_uint(r, &c->total) != WEFT_OK || c->done > c->total)
			return WEFT_EPROTO;
		c->has_progress = true;
	}
	return weft__msg_skip_rest(r, nfields, nfields < 4 ? nfields : 4);
}

void weft__msg_ack_write(struct mp_buf *b, uint32_t incarnation, uint64_t seq, uint32_t nrestamps)
{
	weft__msg_ack_begin(b, incarnation, seq, nrestamps, false);
}

void weft__msg_ack_begin(struct mp_buf *b, uint32_t incarnation, uint64_t seq, uint32_t nrestamps,
                         bool cursor)
{
	weft__mp_write_array(b, cursor ? 6 : 5);
	weft__mp_write_uint(b, WEFT_MSG_ACK);
	weft__mp_write_uint(b, incarnation);
	weft__mp_write_uint(b, seq);
	weft__mp_write_array(b, nrestamps);
}

void weft__msg_restamp_write(struct mp_buf *b, uint32_t incarnation, uint64_t seq, uint64_t hlc)
{
	weft__mp_write_array(b, 3);
	weft__mp_write_uint(b, incarnation);
	weft__mp_write_uint(b, seq);
	weft__mp_write_uint(b, hlc);
}

void weft__msg_ack_states(struct mp_buf *b, uint32_t nstates)
{
	weft__mp_write_array(b, nstates);
}

void weft__msg_doc_state_write(struct mp_buf *b, const char *coll, size_t coll_len, const char *id,
                               size_t id_len, const void *state, size_t len)
{
	weft__mp_write_array(b, 3);
	weft__mp_write_str(b, coll, coll_len);
	weft__mp_write_str(b, id, id_len);
	weft__mp_write_bin(b, state, len);
}

int weft__msg_restamp_read(struct mp_reader *r, uint32_t *incarnation, uint64_t *seq, uint64_t *hlc)
{
	struct mp_reader save = *r;
	uint64_t inc;
	uint32_t n;

	if (weft__mp_read_array(r, &n) != WEFT_OK || n != 3 ||
	    weft__mp_read_uint(r, &inc) != WEFT_OK || inc == 0 || inc > WEFT_MAX_INCARNATION ||
	    weft__mp_read_uint(r, seq) != WEFT_OK || *seq == 0 || *seq > WEFT_MAX_SEQ ||
	    weft__mp_read_uint(r, hlc) != WEFT_OK || *hlc == 0) {
		*r = save;
		return WEFT_EPROTO;
	}
	*incarnation = (uint32_t)inc;
	return WEFT_OK;
}

int weft__msg_doc_state_read(struct mp_reader *r, const char **coll, size_t *coll_len,
                             const char **id, size_t *id_len, const void **state, size_t *len)
{
	struct mp_reader save = *r;
	uint32_t n;

	if (weft__mp_read_array(r, &n) != WEFT_OK || n != 3 ||
	    weft__mp_read_str(r, coll, coll_len) != WEFT_OK || *coll_len == 0 ||
	    *coll_len > WEFT_MAX_COLLECTION || weft__mp_read_str(r, id, id_len) != WEFT_OK ||
	    *id_len == 0 || *id_len > WEFT_MAX_ID || weft__mp_read_bin(r, state, len) != WEFT_OK) {
		*r = save;
		return WEFT_EPROTO;
	}
	return WEFT_OK;
}

/* Reads the header of a list of restamps or states and validates every
 * entry; *list covers exactly the entries. */
static int read_list(struct mp_reader *r, struct mp_reader *list, uint32_t *n, bool states)
{
	if (weft__mp_read_array(r, n) != WEFT_OK)
		return WEFT_EPROTO;
	*list = *r;
	for (uint32_t i = 0; i < *n; i++) {
		int rc;

		if (states) {
			const char *c, *id;
			size_t cl, il, sl;
			const void *st;

			rc = weft__msg_doc_state_read(r, &c, &cl, &id, &il, &st, &sl);
		} else {
			uint32_t inc;
			uint64_t seq, hlc;

			rc = weft__msg_restamp_read(r, &inc, &seq, &hlc);
		}
		if (rc != WEFT_OK)
			return WEFT_EPROTO;
	}
	list->end = r->p;
	return WEFT_OK;
}

int weft__msg_ack_read(struct mp_reader *r, uint32_t nfields, struct weft_ack *a)
{
	uint64_t inc;

	memset(a, 0, sizeof(*a));
	if (nfields < 3)
		return WEFT_EPROTO;
	if (weft__mp_read_uint(r, &inc) != WEFT_OK || inc == 0 || inc > WEFT_MAX_INCARNATION ||
	    weft__mp_read_uint(r, &a->seq) != WEFT_OK)
		return WEFT_EPROTO;
	a->incarnation = (uint32_t)inc;
	weft__mp_reader_init(&a->restamps, r->p, 0);
	weft__mp_reader_init(&a->states, r->p, 0);
	if (nfields >= 4 && read_list(r, &a->restamps, &a->nrestamps, false) != WEFT_OK)
		return WEFT_EPROTO;
	if (nfields >= 5 && read_list(r, &a->states, &a->nstates, true) != WEFT_OK)
		return WEFT_EPROTO;
	if (nfields >= 6) {
		if (weft__cursor_read(r, &a->cursor) != WEFT_OK)
			return WEFT_EPROTO;
		a->has_cursor = true;
	}
	return weft__msg_skip_rest(r, nfields, nfields < 6 ? nfields : 6);
}

void weft__msg_synced_write(struct mp_buf *b, const struct weft_cursor *c)
{
	weft__mp_write_array(b, 2);
	weft__mp_write_uint(b, WEFT_MSG_SYNCED);
	weft__cursor_write(b, c);
}

int weft__msg_synced_read(struct mp_reader *r, uint32_t nfields, struct weft_cursor *c)
{
	if (nfields < 2 || weft__cursor_read(r, c) != WEFT_OK)
		return WEFT_EPROTO;
	return weft__msg_skip_rest(r, nfields, 2);
}

void weft__msg_error_write(struct mp_buf *b, int code, const char *msg)
{
	weft__mp_write_array(b, 3);
	weft__mp_write_uint(b, WEFT_MSG_ERROR);
	weft__mp_write_int(b, code);
	weft__mp_write_cstr(b, msg);
}

int weft__msg_error_read(struct mp_reader *r, uint32_t nfields, int64_t *code, const char **msg,
                         size_t *msg_len)
{
	if (nfields < 3)
		return WEFT_EPROTO;
	if (weft__mp_read_int(r, code) != WEFT_OK ||
	    weft__mp_read_str(r, msg, msg_len) != WEFT_OK || *msg_len > WEFT_MAX_REASON)
		return WEFT_EPROTO;
	return weft__msg_skip_rest(r, nfields, 3);
}

void weft__msg_reject_write(struct mp_buf *b, uint32_t incarnation, uint64_t first_seq,
                            uint64_t last_seq, int code, const char *reason, uint32_t nstates)
{
	weft__mp_write_array(b, 7);
	weft__mp_write_uint(b, WEFT_MSG_REJECT);
	weft__mp_write_uint(b, incarnation);
	weft__mp_write_uint(b, first_seq);
	weft__mp_write_uint(b, last_seq);
	weft__mp_write_uint(b, (uint64_t)code);
	weft__mp_write_cstr(b, reason);
	weft__mp_write_array(b, nstates);
}

int weft__msg_reject_read(struct mp_reader *r, uint32_t nfields, struct weft_reject *j)
{
	uint64_t inc;

	memset(j, 0, sizeof(*j));
	weft__mp_reader_init(&j->states, r->p, 0);
	if (nfields < 6)
		return WEFT_EPROTO;
	if (weft__mp_read_uint(r, &inc) != WEFT_OK || inc == 0 || inc > WEFT_MAX_INCARNATION ||
	    weft__mp_read_uint(r, &j->first_seq) != WEFT_OK || j->first_seq == 0 ||
	    weft__mp_read_uint(r, &j->last_seq) != WEFT_OK || j->last_seq < j->first_seq ||
	    j->last_seq > WEFT_MAX_SEQ || weft__mp_read_uint(r, &j->code) != WEFT_OK ||
	    weft__mp_read_str(r, &j->reason, &j->reason_len) != WEFT_OK ||
	    j->reason_len > WEFT_MAX_REASON)
		return WEFT_EPROTO;
	j->incarnation = (uint32_t)inc;
	if (nfields >= 7 && read_list(r, &j->states, &j->nstates, true) != WEFT_OK)
		return WEFT_EPROTO;
	return weft__msg_skip_rest(r, nfields, nfields < 7 ? nfields : 7);
}

void weft__msg_ping_write(struct mp_buf *b, int type, uint64_t nonce)
{
	weft__mp_write_array(b, 2);
	weft__mp_write_uint(b, (uint64_t)type);
	weft__mp_write_uint(b, nonce);
}

int weft__msg_ping_read(struct mp_reader *r, uint32_t nfields, uint64_t *nonce)
{
	if (nfields < 2 || weft__mp_read_uint(r, nonce) != WEFT_OK)
		return WEFT_EPROTO;
	return weft__msg_skip_rest(r, nfields, 2);
}

void weft__msg_bye_write(struct mp_buf *b, const char *reason)
{
	weft__mp_write_array(b, 2);
	weft__mp_write_uint(b, WEFT_MSG_BYE);
	weft__mp_write_cstr(b, reason);
}

int weft__msg_bye_read(struct mp_reader *r, uint32_t nfields, const char **reason,
                       size_t *reason_len)
{
	if (nfields < 2 || weft__mp_read_str(r, reason, reason_len) != WEFT_OK ||
	    *reason_len > WEFT_MAX_REASON)
		return WEFT_EPROTO;
	return weft__msg_skip_rest(r, nfields, 2);
}

void weft__msg_snapshot_begin(struct mp_buf *b, uint32_t nstates)
{
	weft__mp_write_array(b, 4);
	weft__mp_write_uint(b, WEFT_MSG_SNAPSHOT);
	weft__mp_write_array(b, nstates);
}

void weft__msg_snapshot_end(struct mp_buf *b, uint64_t done, uint64_t total)
{
	weft__mp_write_uint(b, done);
	weft__mp_write_uint(b, total);
}

int weft__msg_snapshot_read(struct mp_reader *r, uint32_t nfields, struct weft_snapshot *s)
{
	memset(s, 0, sizeof(*s));
	weft__mp_reader_init(&s->states, r->p, 0);
	if (nfields < 4 || read_list(r, &s->states, &s->nstates, true) != WEFT_OK ||
	    weft__mp_read_uint(r, &s->done) != WEFT_OK ||
	    weft__mp_read_uint(r, &s->total) != WEFT_OK || s->done > s->total)
		return WEFT_EPROTO;
	return weft__msg_skip_rest(r, nfields, 4);
}
