/*
 * adopt.c - a replica adopting the server's view: the authoritative state
 * of a document (after the server re-stamped or rejected one of our ops),
 * a snapshot state joined into ours (initial sync), and the clock
 * correction measured at the handshake.
 *
 * Adopting a state replaces the document, then re-applies our own ops on
 * it that the server has not acknowledged yet, so local writes in flight
 * stay visible (they are still in the pending list and will be pushed).
 * Ops the server re-stamped were acknowledged before the STATE arrived
 * (the server sends ACK first), so their far-future stamps are gone.
 */
#include <string.h>
#include <time.h>

#include "client/replica.h"

uint64_t weft__wall_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* Visible JSON of d into b (empty when absent). */
static int view(struct weft_doc *d, struct mp_buf *b)
{
	weft__mp_buf_reset(b);
	if (!d || !weft__doc_visible(d))
		return WEFT_OK;
	return weft__doc_write_json(d, b);
}

/* What became visible: `was` and `before` describe the document before,
 * d is it after (NULL if absent); after is scratch. */
static int classify(bool was, const struct mp_buf *before, struct weft_doc *d, struct mp_buf *after,
                    enum weft_doc_change *change)
{
	bool now = d && weft__doc_visible(d);
	int rc;

	if ((rc = view(d, after)) != WEFT_OK)
		return rc;
	if (!was && now)
		*change = WEFT_DOC_INSERTED;
	else if (was && !now)
		*change = WEFT_DOC_DELETED;
	else if (now &&
	         (before->len != after->len || memcmp(before->data, after->data, after->len) != 0))
		*change = WEFT_DOC_UPDATED;
	else
		*change = WEFT_DOC_NONE;
	return WEFT_OK;
}

int weft__db_adopt_state(weft_db *db, const char *coll, size_t coll_len, const char *id,
                         size_t id_len, const void *state, size_t len, enum weft_doc_change *change,
                         struct weft_doc **doc)
{
	struct mp_buf before, after;
	struct weft_doc *d;
	bool was;
	int rc;

	weft__mp_buf_init(&before, db->alloc, 0);
	weft__mp_buf_init(&after, db->alloc, 0);
	d = weft__docset_find(db->docs, coll, coll_len, id, id_len);
	was = d && weft__doc_visible(d);
	if ((rc = view(d, &before)) != WEFT_OK)
		goto out_free;
	rc = weft__docset_load(db->docs, coll, coll_len, id, id_len, state, len);
	if (rc != WEFT_OK) {
		rc = rc == WEFT_ECORRUPT ? WEFT_EPROTO : rc; /* bad bytes from the server */
		goto out_free;
	}
	for (size_t i = 0; i < db->npend; i++) {
		struct mp_reader r;
		struct weft_op op;

		weft__mp_reader_init(&r, db->pend[i].raw, db->pend[i].len);
		if ((rc = weft__op_decode(&r, &op)) != WEFT_OK)
			goto out_free;
		if (op.coll_len != coll_len || op.id_len != id_len ||
		    memcmp(op.coll, coll, coll_len) != 0 || memcmp(op.id, id, id_len) != 0)
			continue;
		if ((rc = weft__docset_apply(db->docs, &op, NULL, NULL)) != WEFT_OK)
			goto out_free;
	}
	d = weft__docset_find(db->docs, coll, coll_len, id, id_len);
	if ((rc = classify(was, &before, d, &after, change)) != WEFT_OK)
		goto out_free;
	*doc = d;
	weft__mp_buf_reset(&before);
	weft__doc_encode_full(d, &before);
	if ((rc = before.err) == WEFT_OK)
		rc = weft__writer_doc_put(db->w, coll, coll_len, id, id_len, before.data,
		                          before.len);
out_free:
	weft__mp_buf_free(&before);
	weft__mp_buf_free(&after);
	return rc;
}

int weft__db_merge_state(weft_db *db, const char *coll, size_t coll_len, const char *id,
                         size_t id_len, const void *state, size_t len, enum weft_doc_change *change,
                         struct weft_doc **doc)
{
	struct mp_buf before, after;
	struct weft_doc *d;
	bool was, changed = false;
	int rc;

	weft__mp_buf_init(&before, db->alloc, 0);
	weft__mp_buf_init(&after, db->alloc, 0);
	d = weft__docset_find(db->docs, coll, coll_len, id, id_len);
	was = d && weft__doc_visible(d);
	if ((rc = view(d, &before)) != WEFT_OK)
		goto out_free;
	rc = weft__docset_merge_state(db->docs, coll, coll_len, id, id_len, state, len, &changed,
	                              &d);
	if (rc != WEFT_OK) {
		rc = rc == WEFT_ECORRUPT ? WEFT_EPROTO : rc; /* bad bytes from the server */
		goto out_free;
	}
	if ((rc = classify(was, &before, d, &after, change)) != WEFT_OK)
		goto out_free;
	*doc = d;
	if (changed)
		rc = weft__db_persist_doc(db, d);
out_free:
	weft__mp_buf_free(&before);
	weft__mp_buf_free(&after);
	return rc;
}

int weft__db_clock_sync(weft_db *db, uint64_t server_ms, uint64_t max_drift_ms, uint64_t sent_ms,
                        uint64_t recv_ms)
{
	uint64_t mid = sent_ms + (recv_ms - sent_ms) / 2, limit;
	uint8_t raw[8];
	uint64_t u;

	/* The server's clock read at about the middle of the round trip. */
	db->clock_offset_ms = (int64_t)(server_ms - mid);
	u = (uint64_t)db->clock_offset_ms;
	for (int i = 0; i < 8; i++)
		raw[i] = (uint8_t)(u >> (8 * i));
	/*
	 * A clock that ran far ahead left our HLC in the future, and an HLC
	 * never goes back by itself: every later op would be re-stamped. Step
	 * it back to the edge of what the server accepts. Every op of ours the
	 * server kept with its own stamp was stamped at most max_drift_ms
	 * ahead of the server's clock then, so no stamp is issued twice.
	 */
	limit = WEFT_HLC_MAKE(server_ms + max_drift_ms, 0);
	if (db->hlc.last > limit)
		db->hlc.last = limit;
	return weft__writer_meta_put(db->w, "clock_offset", raw, sizeof(raw));
}
