/*
 * fuzz_proto.c - libFuzzer target for everything a peer or the disk hands
 * the core: protocol messages (every reader of proto.h: HELLO with token
 * and caps, WELCOME, PUSH and CHANGES units with their ops, ACK with
 * restamps, states and cursor, REJECT, SYNCED, ERROR, PING, PONG, BYE and
 * unknown types), units and ops on their own (decoded, then applied to a
 * docset, whose state must then round-trip through encode/load), and raw
 * document states.
 *
 * Must never crash, leak or trip a sanitizer. Aborts when a list a reader
 * validated cannot be walked, a decoded op other than TEXT cannot be
 * applied (a TEXT update is only checked when applied), a state written
 * by the core cannot be read back, or a decoded message, written again by
 * our encoder, does not decode to the same values (where the encoder can
 * express them).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "weft/weft.h"
#include "core/doc.h"
#include "core/op.h"
#include "core/proto.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check(bool ok, const char *what)
{
	if (!ok) {
		fprintf(stderr, "fuzz_proto: %s\n", what);
		abort();
	}
}

static void check_roundtrip(struct weft_docset *ds)
{
	struct weft_doc **list;
	struct weft_docset *copy;
	size_t n;

	if (weft__docset_list(ds, &list, &n) != WEFT_OK)
		return;
	if (weft__docset_new(NULL, &copy) != WEFT_OK) {
		weft__docset_free_list(ds, list);
		return;
	}
	for (size_t i = 0; i < n; i++) {
		struct mp_buf b, j1, j2;
		const char *c, *id;
		size_t clen, ilen;
		struct weft_doc *d2;

		weft__mp_buf_init(&b, NULL, 0);
		weft__doc_encode(list[i], &b);
		weft__doc_key(list[i], &c, &clen, &id, &ilen);
		if (weft__docset_load(copy, c, clen, id, ilen, b.data, b.len) != WEFT_OK)
			abort(); /* the core cannot read its own state */
		d2 = weft__docset_find(copy, c, clen, id, ilen);
		if (!d2 || weft__doc_visible(d2) != weft__doc_visible(list[i]))
			abort();
		if (weft__doc_visible(d2)) {
			weft__mp_buf_init(&j1, NULL, 0);
			weft__mp_buf_init(&j2, NULL, 0);
			if (weft__doc_write_json(list[i], &j1) != WEFT_OK ||
			    weft__doc_write_json(d2, &j2) != WEFT_OK || j1.len != j2.len ||
			    memcmp(j1.data, j2.data, j1.len) != 0)
				abort();
			weft__mp_buf_free(&j1);
			weft__mp_buf_free(&j2);
		}
		weft__mp_buf_free(&b);
	}
	weft__docset_free(copy);
	weft__docset_free_list(ds, list);
}

/* Decodes n ops at r and applies them to ds; stops at the first op that
 * does not decode. */
static void apply_ops(struct weft_docset *ds, struct mp_reader *r, uint32_t n)
{
	for (uint32_t i = 0; i < n; i++) {
		struct weft_op op;
		enum weft_doc_change ch;
		int rc;

		if (weft__op_decode(r, &op) != WEFT_OK)
			break;
		rc = weft__docset_apply(ds, &op, &ch, NULL);
		/* A validated op always applies, but for the bytes of a TEXT
		 * update, which only the text module checks. */
		check(rc == WEFT_OK || (rc == WEFT_EPROTO && op.kind == WEFT_OP_TEXT),
		      "a validated op does not apply");
	}
}

/*
 * Reads up to n units at r (weft__unit_read) and applies their ops to a
 * fresh docset. With `validated` (the units of a CHANGES that
 * weft__msg_changes_read accepted), every unit must read again and cover
 * exactly its bytes.
 */
static void fuzz_units(struct mp_reader *r, uint32_t n, bool validated)
{
	struct weft_docset *ds;

	if (weft__docset_new(NULL, &ds) != WEFT_OK)
		return;
	for (uint32_t i = 0; i < n; i++) {
		const uint8_t *start = r->p;
		struct weft_unit u;
		struct mp_reader ops;

		if (weft__unit_read(r, &u) != WEFT_OK) {
			check(!validated, "a validated unit does not read");
			check(r->p == start, "a refused unit moved the reader");
			break;
		}
		check(u.raw == start && u.raw_len == (size_t)(r->p - start) && u.nops >= 1,
		      "unit bounds");
		check(u.txn || u.nops == 1, "a single-op unit with several ops");
		ops = u.ops;
		apply_ops(ds, &ops, u.nops);
	}
	check_roundtrip(ds);
	weft__docset_free(ds);
}

/* ---- re-encoding: decode(encode(decode(x))) == decode(x) ---- */

/* Copies a validated caps list into NUL-terminated names; false when a
 * name holds a NUL byte (valid UTF-8, but not a C string). */
static bool caps_copy(const struct mp_reader *caps, uint32_t n,
                      char names[WEFT_MAX_CAPS][WEFT_MAX_CAP_LEN + 1],
                      const char *ptrs[WEFT_MAX_CAPS + 1])
{
	struct mp_reader r = *caps;

	check(n <= WEFT_MAX_CAPS, "too many caps accepted");
	for (uint32_t i = 0; i < n; i++) {
		const char *s;
		size_t len;

		check(weft__mp_read_str(&r, &s, &len) == WEFT_OK && len >= 1 &&
		          len <= WEFT_MAX_CAP_LEN,
		      "a validated cap does not read");
		if (memchr(s, 0, len))
			return false;
		memcpy(names[i], s, len);
		names[i][len] = 0;
		check(weft__caps_has(caps, n, names[i]), "caps_has misses a cap of the list");
		ptrs[i] = names[i];
	}
	check(weft__mp_reader_left(&r) == 0, "caps list has extra bytes");
	ptrs[n] = NULL;
	return true;
}

/* The input may use longer encodings than ours: compare values. */
static void same_caps(struct mp_reader a, uint32_t na, struct mp_reader b, uint32_t nb)
{
	check(na == nb, "caps differ after re-encoding");
	for (uint32_t i = 0; i < na; i++) {
		const char *s1, *s2;
		size_t l1, l2;

		check(weft__mp_read_str(&a, &s1, &l1) == WEFT_OK &&
		          weft__mp_read_str(&b, &s2, &l2) == WEFT_OK && l1 == l2 &&
		          memcmp(s1, s2, l1) == 0,
		      "caps differ after re-encoding");
	}
}

static void same_states(struct mp_reader a, struct mp_reader b, uint32_t n)
{
	for (uint32_t i = 0; i < n; i++) {
		const char *c1, *c2, *i1, *i2;
		size_t cl1, cl2, il1, il2, sl1, sl2;
		const void *s1, *s2;

		check(weft__msg_doc_state_read(&a, &c1, &cl1, &i1, &il1, &s1, &sl1) == WEFT_OK &&
		          weft__msg_doc_state_read(&b, &c2, &cl2, &i2, &il2, &s2, &sl2) ==
		              WEFT_OK &&
		          cl1 == cl2 && il1 == il2 && sl1 == sl2 && memcmp(c1, c2, cl1) == 0 &&
		          memcmp(i1, i2, il1) == 0 && (sl1 == 0 || memcmp(s1, s2, sl1) == 0),
		      "states differ after re-encoding");
	}
}

/* Starts reading what b holds: a message of type `type`. */
static void reread(const struct mp_buf *b, struct mp_reader *r, int type, uint32_t *nf)
{
	int t;

	check(b->err == 0, "out of memory");
	weft__mp_reader_init(r, b->data, b->len);
	check(weft__msg_begin(r, &t, nf) == WEFT_OK && t == type, "re-encoded message");
}

static void again_hello(const struct weft_hello *h)
{
	char names[WEFT_MAX_CAPS][WEFT_MAX_CAP_LEN + 1];
	const char *ptrs[WEFT_MAX_CAPS + 1];
	struct weft_hello w = *h, h2;
	struct mp_reader r;
	struct mp_buf b;
	uint32_t nf;

	if (!caps_copy(&h->caps, h->ncaps, names, ptrs))
		return;
	w.cap_names = ptrs;
	weft__mp_buf_init(&b, NULL, 0);
	weft__msg_hello_write(&b, &w);
	reread(&b, &r, WEFT_MSG_HELLO, &nf);
	check(weft__msg_hello_read(&r, nf, &h2) == WEFT_OK, "re-encoded HELLO refused");
	check(h2.version == h->version && h2.replica == h->replica &&
	          h2.incarnation == h->incarnation && h2.has_cursor == h->has_cursor &&
	          (!h->has_cursor ||
	           (h2.cursor.epoch == h->cursor.epoch && h2.cursor.pos == h->cursor.pos)) &&
	          (h2.token == NULL) == (h->token == NULL) && h2.token_len == h->token_len &&
	          (!h->token || memcmp(h2.token, h->token, h->token_len) == 0),
	      "HELLO differs after re-encoding");
	same_caps(h->caps, h->ncaps, h2.caps, h2.ncaps);
	weft__mp_buf_free(&b);
}

static void again_welcome(const struct weft_welcome *w)
{
	char names[WEFT_MAX_CAPS][WEFT_MAX_CAP_LEN + 1];
	const char *ptrs[WEFT_MAX_CAPS + 1];
	struct weft_welcome x = *w, w2;
	struct mp_reader r;
	struct mp_buf b;
	uint32_t nf;

	check(w->max_push > 0 && w->max_txn_ops > 0, "WELCOME limits of 0 accepted");
	if (!caps_copy(&w->caps, w->ncaps, names, ptrs))
		return;
	x.cap_names = ptrs;
	weft__mp_buf_init(&b, NULL, 0);
	weft__msg_welcome_write(&b, &x);
	reread(&b, &r, WEFT_MSG_WELCOME, &nf);
	check(weft__msg_welcome_read(&r, nf, &w2) == WEFT_OK, "re-encoded WELCOME refused");
	check(w2.version == w->version && w2.server_time_ms == w->server_time_ms &&
	          w2.max_message == w->max_message && w2.max_push == w->max_push &&
	          w2.max_drift_ms == w->max_drift_ms && w2.max_txn_ops == w->max_txn_ops &&
	          w2.heartbeat_ms == w->heartbeat_ms,
	      "WELCOME differs after re-encoding");
	same_caps(w->caps, w->ncaps, w2.caps, w2.ncaps);
	weft__mp_buf_free(&b);
}

/* Walks the validated restamps and states of an ACK or REJECT (loading
 * each state into a docset) and writes them to b (if not NULL). */
static void walk_states(struct mp_reader st, uint32_t n, struct mp_buf *b)
{
	for (uint32_t i = 0; i < n; i++) {
		const char *c, *id;
		size_t clen, ilen, slen;
		const void *s;
		struct weft_docset *ds;

		check(weft__msg_doc_state_read(&st, &c, &clen, &id, &ilen, &s, &slen) == WEFT_OK,
		      "a validated state does not read");
		if (b)
			weft__msg_doc_state_write(b, c, clen, id, ilen, s, slen);
		if (weft__docset_new(NULL, &ds) != WEFT_OK)
			continue;
		if (weft__docset_load(ds, c, clen, id, ilen, s, slen) == WEFT_OK)
			check_roundtrip(ds);
		weft__docset_free(ds);
	}
	check(weft__mp_reader_left(&st) == 0, "state list has extra bytes");
}

static void fuzz_ack(const struct weft_ack *a)
{
	struct mp_reader rs = a->restamps, r;
	struct weft_ack a2;
	struct mp_buf b;
	uint32_t nf;

	weft__mp_buf_init(&b, NULL, 0);
	weft__msg_ack_begin(&b, a->incarnation, a->seq, a->nrestamps, a->has_cursor);
	for (uint32_t i = 0; i < a->nrestamps; i++) {
		uint32_t inc;
		uint64_t seq, hlc;

		check(weft__msg_restamp_read(&rs, &inc, &seq, &hlc) == WEFT_OK,
		      "a validated restamp does not read");
		weft__msg_restamp_write(&b, inc, seq, hlc);
	}
	check(weft__mp_reader_left(&rs) == 0, "restamp list has extra bytes");
	weft__msg_ack_states(&b, a->nstates);
	walk_states(a->states, a->nstates, &b);
	if (a->has_cursor)
		weft__cursor_write(&b, &a->cursor);
	reread(&b, &r, WEFT_MSG_ACK, &nf);
	check(weft__msg_ack_read(&r, nf, &a2) == WEFT_OK, "re-encoded ACK refused");
	check(a2.incarnation == a->incarnation && a2.seq == a->seq &&
	          a2.nrestamps == a->nrestamps && a2.nstates == a->nstates &&
	          a2.has_cursor == a->has_cursor &&
	          (!a->has_cursor ||
	           (a2.cursor.epoch == a->cursor.epoch && a2.cursor.pos == a->cursor.pos)),
	      "ACK differs after re-encoding");
	same_states(a->states, a2.states, a->nstates);
	weft__mp_buf_free(&b);
}

static void fuzz_reject(const struct weft_reject *j)
{
	struct weft_reject j2;
	struct mp_reader r;
	struct mp_buf b;
	char reason[WEFT_MAX_REASON + 1];
	uint32_t nf;

	check(j->first_seq >= 1 && j->first_seq <= j->last_seq && j->last_seq <= WEFT_MAX_SEQ &&
	          j->reason_len <= WEFT_MAX_REASON,
	      "REJECT out of its limits accepted");
	/* The writer takes an int code and a C string. */
	if (j->code > INT32_MAX || memchr(j->reason, 0, j->reason_len)) {
		walk_states(j->states, j->nstates, NULL);
		return;
	}
	memcpy(reason, j->reason, j->reason_len);
	reason[j->reason_len] = 0;
	weft__mp_buf_init(&b, NULL, 0);
	weft__msg_reject_write(&b, j->incarnation, j->first_seq, j->last_seq, (int)j->code, reason,
	                       j->nstates);
	walk_states(j->states, j->nstates, &b);
	reread(&b, &r, WEFT_MSG_REJECT, &nf);
	check(weft__msg_reject_read(&r, nf, &j2) == WEFT_OK, "re-encoded REJECT refused");
	check(j2.incarnation == j->incarnation && j2.first_seq == j->first_seq &&
	          j2.last_seq == j->last_seq && j2.code == j->code &&
	          j2.reason_len == j->reason_len &&
	          memcmp(j2.reason, j->reason, j->reason_len) == 0 && j2.nstates == j->nstates,
	      "REJECT differs after re-encoding");
	same_states(j->states, j2.states, j->nstates);
	weft__mp_buf_free(&b);
}

static void fuzz_changes(const struct weft_changes *c)
{
	struct mp_reader units = c->units, r;
	struct weft_changes c2;
	struct mp_buf b;
	uint32_t nf;

	check(!c->has_progress || c->done <= c->total, "progress done > total accepted");
	fuzz_units(&units, c->nunits, true);
	check(weft__mp_reader_left(&units) == 0, "units list has extra bytes");
	/* changes_end writes progress only when total > 0. */
	if (c->has_progress && c->total == 0)
		return;
	weft__mp_buf_init(&b, NULL, 0);
	weft__msg_changes_begin(&b, c->nunits, c->has_progress);
	weft__mp_write_raw(&b, c->units.p, weft__mp_reader_left(&c->units));
	weft__msg_changes_end(&b, &c->cursor, c->done, c->has_progress ? c->total : 0);
	reread(&b, &r, WEFT_MSG_CHANGES, &nf);
	check(weft__msg_changes_read(&r, nf, &c2) == WEFT_OK, "re-encoded CHANGES refused");
	check(c2.nunits == c->nunits && c2.cursor.epoch == c->cursor.epoch &&
	          c2.cursor.pos == c->cursor.pos && c2.has_progress == c->has_progress &&
	          c2.done == (c->has_progress ? c->done : 0) &&
	          c2.total == (c->has_progress ? c->total : 0) &&
	          weft__mp_reader_left(&c2.units) == weft__mp_reader_left(&c->units),
	      "CHANGES differs after re-encoding");
	weft__mp_buf_free(&b);
}

/* PUSH has no reader in proto.h: this is what the hub does with one. */
static void fuzz_push(struct mp_reader *r, uint32_t nf)
{
	struct mp_reader v;
	uint32_t n;

	if (nf < 2 || weft__mp_read_array(r, &n) != WEFT_OK)
		return;
	v = *r;
	fuzz_units(&v, n, false);
	for (uint32_t i = 0; i < n; i++) {
		struct weft_unit u;

		if (weft__unit_read(r, &u) != WEFT_OK)
			return;
	}
	(void)weft__msg_skip_rest(r, nf, 2);
}

static void fuzz_text(int type, struct mp_reader *r, uint32_t nf)
{
	const char *s;
	size_t len;
	int64_t code = 0;
	int rc;

	if (type == WEFT_MSG_BYE)
		rc = weft__msg_bye_read(r, nf, &s, &len);
	else
		rc = weft__msg_error_read(r, nf, &code, &s, &len);
	if (rc != WEFT_OK)
		return;
	check(weft__utf8_valid(s, len), "invalid UTF-8 accepted");
	check(type != WEFT_MSG_BYE || len <= WEFT_MAX_REASON, "BYE over WEFT_MAX_REASON accepted");
	if (!memchr(s, 0, len) && code >= INT32_MIN && code <= INT32_MAX) {
		char *text = malloc(len + 1);
		struct mp_reader r2;
		struct mp_buf b;
		const char *s2;
		size_t len2;
		int64_t code2 = 0;
		uint32_t nf2;

		check(text != NULL, "out of memory");
		memcpy(text, s, len);
		text[len] = 0;
		weft__mp_buf_init(&b, NULL, 0);
		if (type == WEFT_MSG_BYE)
			weft__msg_bye_write(&b, text);
		else
			weft__msg_error_write(&b, (int)code, text);
		reread(&b, &r2, type, &nf2);
		rc = type == WEFT_MSG_BYE ? weft__msg_bye_read(&r2, nf2, &s2, &len2)
		                          : weft__msg_error_read(&r2, nf2, &code2, &s2, &len2);
		check(rc == WEFT_OK && len2 == len && memcmp(s2, s, len) == 0 && code2 == code,
		      "BYE/ERROR differs after re-encoding");
		weft__mp_buf_free(&b);
		free(text);
	}
}

static void fuzz_message(const uint8_t *data, size_t size)
{
	struct mp_reader r;
	uint32_t nf;
	int type;

	weft__mp_reader_init(&r, data, size);
	if (weft__msg_begin(&r, &type, &nf) != WEFT_OK)
		return;
	check(type >= 1 && type <= WEFT_MSG_TYPE_MAX && nf >= 1, "msg_begin bounds");
	switch (type) {
	case WEFT_MSG_HELLO: {
		struct weft_hello h;

		if (weft__msg_hello_read(&r, nf, &h) != WEFT_OK)
			break;
		check(h.incarnation >= 1 && h.incarnation <= WEFT_MAX_INCARNATION &&
		          h.token_len <= WEFT_MAX_TOKEN,
		      "HELLO out of its limits accepted");
		again_hello(&h);
		break;
	}
	case WEFT_MSG_WELCOME: {
		struct weft_welcome w;

		if (weft__msg_welcome_read(&r, nf, &w) == WEFT_OK)
			again_welcome(&w);
		break;
	}
	case WEFT_MSG_PUSH:
		fuzz_push(&r, nf);
		break;
	case WEFT_MSG_ACK: {
		struct weft_ack a;

		if (weft__msg_ack_read(&r, nf, &a) == WEFT_OK)
			fuzz_ack(&a);
		break;
	}
	case WEFT_MSG_CHANGES: {
		struct weft_changes c;

		if (weft__msg_changes_read(&r, nf, &c) == WEFT_OK)
			fuzz_changes(&c);
		break;
	}
	case WEFT_MSG_SYNCED: {
		struct weft_cursor c, c2;
		struct mp_reader r2;
		struct mp_buf b;
		uint32_t nf2;

		if (weft__msg_synced_read(&r, nf, &c) != WEFT_OK)
			break;
		weft__mp_buf_init(&b, NULL, 0);
		weft__msg_synced_write(&b, &c);
		reread(&b, &r2, WEFT_MSG_SYNCED, &nf2);
		check(weft__msg_synced_read(&r2, nf2, &c2) == WEFT_OK && c2.epoch == c.epoch &&
		          c2.pos == c.pos,
		      "SYNCED differs after re-encoding");
		weft__mp_buf_free(&b);
		break;
	}
	case WEFT_MSG_ERROR:
	case WEFT_MSG_BYE:
		fuzz_text(type, &r, nf);
		break;
	case WEFT_MSG_REJECT: {
		struct weft_reject j;

		if (weft__msg_reject_read(&r, nf, &j) == WEFT_OK)
			fuzz_reject(&j);
		break;
	}
	case WEFT_MSG_SNAPSHOT: {
		struct weft_snapshot sn, sn2;
		struct mp_reader r2;
		struct mp_buf b;
		uint32_t nf2;

		if (weft__msg_snapshot_read(&r, nf, &sn) != WEFT_OK)
			break;
		check(sn.done <= sn.total, "SNAPSHOT with done > total accepted");
		weft__mp_buf_init(&b, NULL, 0);
		weft__msg_snapshot_begin(&b, sn.nstates);
		walk_states(sn.states, sn.nstates, &b);
		weft__msg_snapshot_end(&b, sn.done, sn.total);
		reread(&b, &r2, WEFT_MSG_SNAPSHOT, &nf2);
		check(weft__msg_snapshot_read(&r2, nf2, &sn2) == WEFT_OK && sn2.done == sn.done &&
		          sn2.total == sn.total && sn2.nstates == sn.nstates,
		      "SNAPSHOT differs after re-encoding");
		weft__mp_buf_free(&b);
		break;
	}
	case WEFT_MSG_PING:
	case WEFT_MSG_PONG: {
		uint64_t nonce, n2;
		struct mp_reader r2;
		struct mp_buf b;
		uint32_t nf2;

		if (weft__msg_ping_read(&r, nf, &nonce) != WEFT_OK)
			break;
		weft__mp_buf_init(&b, NULL, 0);
		weft__msg_ping_write(&b, type, nonce);
		reread(&b, &r2, type, &nf2);
		check(weft__msg_ping_read(&r2, nf2, &n2) == WEFT_OK && n2 == nonce,
		      "PING/PONG differs after re-encoding");
		weft__mp_buf_free(&b);
		break;
	}
	default:
		/* A type this version does not know: skipped whole. */
		(void)weft__msg_skip_rest(&r, nf, 1);
		break;
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct mp_reader r;

	/* As a document state. */
	{
		struct weft_docset *ds;

		if (weft__docset_new(NULL, &ds) == WEFT_OK) {
			if (weft__docset_load(ds, "c", 1, "d", 1, data, size) == WEFT_OK)
				check_roundtrip(ds);
			weft__docset_free(ds);
		}
	}
	/* As a protocol message. */
	fuzz_message(data, size);
	/* As a stream of units (a change log's records, back to back). */
	weft__mp_reader_init(&r, data, size);
	fuzz_units(&r, UINT32_MAX, false);
	return 0;
}
