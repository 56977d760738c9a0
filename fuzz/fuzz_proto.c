/*
 * fuzz_proto.c - libFuzzer target for everything a peer or the disk hands
 * the core: protocol messages (every reader), ops inside PUSH/CHANGES
 * (decoded, then applied to a docset, whose state must then round-trip
 * through encode/load), and raw document states. Must never crash, leak
 * or trip a sanitizer; aborts if a decoded op cannot be applied or a
 * state written by the core cannot be read back.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "weft/weft.h"
#include "core/doc.h"
#include "core/op.h"
#include "core/proto.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

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

static void fuzz_ops(struct mp_reader *r, uint32_t n)
{
	struct weft_docset *ds;

	if (weft__docset_new(NULL, &ds) != WEFT_OK)
		return;
	for (uint32_t i = 0; i < n; i++) {
		struct weft_op op;
		enum weft_doc_change ch;

		if (weft__op_decode(r, &op) != WEFT_OK)
			break;
		if (weft__docset_apply(ds, &op, &ch, NULL) != WEFT_OK)
			abort(); /* a validated op always applies */
	}
	check_roundtrip(ds);
	weft__docset_free(ds);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct mp_reader r;
	uint32_t nf, n, inc;
	uint64_t seq;
	int type;

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
	weft__mp_reader_init(&r, data, size);
	if (weft__msg_begin(&r, &type, &nf) != WEFT_OK)
		return 0;
	switch (type) {
	case WEFT_MSG_HELLO: {
		struct weft_hello h;

		(void)weft__msg_hello_read(&r, nf, &h);
		break;
	}
	case WEFT_MSG_WELCOME: {
		struct weft_welcome w;

		(void)weft__msg_welcome_read(&r, nf, &w);
		break;
	}
	case WEFT_MSG_ACK: {
		struct weft_ack ack;

		if (weft__msg_ack_read(&r, nf, &ack) != WEFT_OK)
			break;
		for (uint32_t i = 0; i < ack.nrestamps; i++)
			if (weft__msg_restamp_read(&ack.restamps, &inc, &seq, &seq) != WEFT_OK)
				abort(); /* validated by ack_read */
		for (uint32_t i = 0; i < ack.nstates; i++) {
			const char *c, *id;
			size_t clen, ilen, slen;
			const void *st;
			struct weft_docset *ds;

			if (weft__msg_doc_state_read(&ack.states, &c, &clen, &id, &ilen, &st,
			                             &slen) != WEFT_OK)
				abort(); /* validated by ack_read */
			if (weft__docset_new(NULL, &ds) != WEFT_OK)
				break;
			if (weft__docset_load(ds, c, clen, id, ilen, st, slen) == WEFT_OK)
				check_roundtrip(ds);
			weft__docset_free(ds);
		}
		break;
	}
	case WEFT_MSG_SYNCED: {
		struct weft_cursor c;

		(void)weft__msg_synced_read(&r, nf, &c);
		break;
	}
	case WEFT_MSG_ERROR: {
		int64_t code;
		const char *m;
		size_t mlen;

		(void)weft__msg_error_read(&r, nf, &code, &m, &mlen);
		break;
	}
	case WEFT_MSG_PUSH:
	case WEFT_MSG_CHANGES:
		if (nf >= 2 && weft__mp_read_array(&r, &n) == WEFT_OK)
			fuzz_ops(&r, n);
		break;
	default:
		break;
	}
	return 0;
}
