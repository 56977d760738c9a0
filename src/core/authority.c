/*
 * authority.c - dedupe, ordering, cursors and group commit. See authority.h.
 *
 * Invariants:
 *  - position increases by one per committed op, in commit order; the log
 *    key of an op is its position, so a cursor (epoch, pos) names exactly
 *    the ops a replica has seen;
 *  - for every (replica, incarnation) the committed high-water mark `seq`
 *    is durable in the same store transaction as the ops it covers, so an
 *    op is applied at most once even across a crash between commit and
 *    acknowledgement (the replica re-pushes; the authority sees a
 *    duplicate and acknowledges it again);
 *  - the in-memory documents equal the store's documents after every
 *    commit, successful or not.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "weft/weft.h"
#include "core/authority.h"

struct hw_entry {
	uint64_t replica;    /* key part 1 */
	uint32_t inc;        /* key part 2; 0 marks an empty slot */
	bool dirty;          /* staged_seq moved since the last commit */
	uint64_t seq;        /* committed high-water mark */
	uint64_t staged_seq; /* high-water mark including staged ops */
};

struct staged {
	uint8_t *raw;      /* owned copy of the encoded op */
	struct weft_op op; /* decoded, pointing into raw */
	void *origin;      /* caller's tag */
	bool restamped;    /* the server replaced the op's HLC */
};

struct weft_authority {
	const struct weft_alloc *alloc;
	struct weft_store *st; /* borrowed */
	struct weft_docset *docs;
	uint64_t epoch;      /* store epoch */
	uint64_t pos;        /* position of the last committed op */
	struct hw_entry *hw; /* open-addressing table, power-of-two size */
	size_t hw_cap;
	size_t hw_len;
	struct staged *staged; /* ops waiting for the next commit */
	size_t nstaged;
	size_t staged_cap;
	struct weft_committed *batch; /* the last committed group */
	uint8_t **batch_raw;          /* owned encodings behind batch[i].op */
	size_t nbatch;
	size_t batch_cap;
	struct weft_doc **touched; /* scratch for a commit */
	size_t touched_cap;
	struct weft_hlc hlc;   /* the server's clock; persisted as meta "hlc" */
	uint64_t now_ms;       /* physical time from weft__authority_set_clock */
	uint64_t max_drift_ms; /* accepted lead of an op's HLC over now_ms */
	bool drift_set;        /* set_clock was called */
	char err[256];
};

/* ---- high-water marks ---- */

static size_t hw_slot(uint64_t replica, uint32_t inc, size_t cap)
{
	uint64_t h =
	    replica * UINT64_C(0x9e3779b97f4a7c15) ^ (uint64_t)inc * UINT64_C(0xc2b2ae3d27d4eb4f);

	return (size_t)(h ^ (h >> 29)) & (cap - 1);
}

static struct hw_entry *hw_find(struct weft_authority *au, uint64_t replica, uint32_t inc)
{
	size_t i = hw_slot(replica, inc, au->hw_cap);

	for (;; i = (i + 1) & (au->hw_cap - 1)) {
		struct hw_entry *e = &au->hw[i];

		if (e->inc == 0 || (e->replica == replica && e->inc == inc))
			return e;
	}
}

static int hw_grow(struct weft_authority *au)
{
	size_t cap = au->hw_cap ? au->hw_cap * 2 : 64;
	struct hw_entry *old = au->hw, *t = weft__zalloc(au->alloc, cap * sizeof(*t));
	size_t oldcap = au->hw_cap;

	if (!t)
		return WEFT_ENOMEM;
	au->hw = t;
	au->hw_cap = cap;
	for (size_t i = 0; i < oldcap; i++)
		if (old[i].inc)
			*hw_find(au, old[i].replica, old[i].inc) = old[i];
	weft__free(au->alloc, old);
	return WEFT_OK;
}

static void hw_key(char *buf, size_t len, uint64_t replica, uint32_t inc)
{
	snprintf(buf, len, "hw:%016" PRIx64 ":%08" PRIx32, replica, inc);
}

/* The entry for (replica, inc), loading its mark from the store the first
 * time it is seen. */
static int hw_get(struct weft_authority *au, uint64_t replica, uint32_t inc, struct hw_entry **out)
{
	struct hw_entry *e;
	char key[48];
	uint64_t seq = 0;
	int rc;

	if ((au->hw_len + 1) * 2 > au->hw_cap && (rc = hw_grow(au)) != WEFT_OK)
		return rc;
	e = hw_find(au, replica, inc);
	if (e->inc) {
		*out = e;
		return WEFT_OK;
	}
	hw_key(key, sizeof(key), replica, inc);
	rc = weft__store_meta_get_u64(au->st, key, &seq);
	if (rc != WEFT_OK && rc != WEFT_ENOTFOUND)
		return rc;
	e->replica = replica;
	e->inc = inc;
	e->seq = e->staged_seq = seq;
	e->dirty = false;
	au->hw_len++;
	*out = e;
	return WEFT_OK;
}

/* ---- open / free ---- */

static int load_doc(void *ctx, const char *coll, size_t coll_len, const char *id, size_t id_len,
                    const void *val, size_t len)
{
	return weft__docset_load(ctx, coll, coll_len, id, id_len, val, len);
}

static int load_docs(struct weft_authority *au)
{
	struct weft_docset *ds;
	int rc;

	if ((rc = weft__docset_new(au->alloc, &ds)) != WEFT_OK)
		return rc;
	rc = au->st->vt->doc_scan(au->st, load_doc, ds);
	if (rc != WEFT_OK) {
		weft__docset_free(ds);
		snprintf(au->err, sizeof(au->err), "loading documents: %s", weft_strerror(rc));
		return rc;
	}
	weft__docset_free(au->docs);
	au->docs = ds;
	return WEFT_OK;
}

int weft__authority_open(struct weft_store *st, const struct weft_alloc *a, uint64_t new_epoch,
                         struct weft_authority **out)
{
	struct weft_authority *au;
	int rc;

	if (!a)
		a = weft__alloc_default();
	au = weft__zalloc(a, sizeof(*au));
	if (!au)
		return WEFT_ENOMEM;
	au->alloc = a;
	au->st = st;
	if ((rc = hw_grow(au)) != WEFT_OK)
		goto out_free;

	rc = weft__store_meta_get_u64(st, "epoch", &au->epoch);
	if (rc == WEFT_ENOTFOUND) {
		au->epoch = new_epoch ? new_epoch : 1;
		if ((rc = st->vt->begin(st)) != WEFT_OK)
			goto out_free;
		rc = weft__store_meta_put_u64(st, "epoch", au->epoch);
		if (rc == WEFT_OK)
			rc = st->vt->commit(st);
		if (rc != WEFT_OK) {
			st->vt->rollback(st);
			goto out_free;
		}
	} else if (rc != WEFT_OK) {
		goto out_free;
	}
	if ((rc = st->vt->log_last(st, &au->pos)) != WEFT_OK)
		goto out_free;
	{
		uint64_t hlc = 0;

		rc = weft__store_meta_get_u64(st, "hlc", &hlc);
		if (rc != WEFT_OK && rc != WEFT_ENOTFOUND)
			goto out_free;
		weft__hlc_init(&au->hlc, hlc);
	}
	if ((rc = load_docs(au)) != WEFT_OK)
		goto out_free;
	*out = au;
	return WEFT_OK;

out_free:
	weft__authority_free(au);
	return rc;
}

static void batch_clear(struct weft_authority *au)
{
	for (size_t i = 0; i < au->nbatch; i++)
		weft__free(au->alloc, au->batch_raw[i]);
	au->nbatch = 0;
}

void weft__authority_free(struct weft_authority *au)
{
	if (!au)
		return;
	batch_clear(au);
	for (size_t i = 0; i < au->nstaged; i++)
		weft__free(au->alloc, au->staged[i].raw);
	weft__free(au->alloc, au->staged);
	weft__free(au->alloc, au->batch);
	weft__free(au->alloc, au->batch_raw);
	weft__free(au->alloc, au->touched);
	weft__free(au->alloc, au->hw);
	weft__docset_free(au->docs);
	weft__free(au->alloc, au);
}

/* ---- clock ---- */

void weft__authority_set_clock(struct weft_authority *au, uint64_t now_ms, uint64_t max_drift_ms)
{
	au->now_ms = now_ms;
	au->max_drift_ms = max_drift_ms;
	au->drift_set = true;
}

uint64_t weft__authority_hlc(const struct weft_authority *au)
{
	return au->hlc.last;
}

/*
 * Replaces a staged op's HLC, which is too far in the future, with the
 * server's: the op is re-encoded with a fresh server timestamp, so a
 * replica whose clock runs ahead cannot win every conflict for as long as
 * its clock is wrong. The replica learns the new stamp from its ACK.
 */
static int restamp(struct weft_authority *au, struct staged *s)
{
	struct weft_op re = s->op;
	struct mp_buf b;
	struct mp_reader r;
	size_t len;
	int rc;

	re.hlc = weft__hlc_now(&au->hlc, au->now_ms);
	weft__mp_buf_init(&b, au->alloc, 0);
	weft__op_encode(&b, &re);
	if (b.err) {
		rc = b.err;
		weft__mp_buf_free(&b);
		return rc;
	}
	weft__free(au->alloc, s->raw);
	s->raw = weft__mp_buf_take(&b, &len);
	weft__mp_reader_init(&r, s->raw, len);
	rc = weft__op_decode(&r, &s->op);
	if (rc != WEFT_OK) {
		/* Cannot happen: we encoded what we had decoded. Keep raw owned
		 * by the caller's error path. */
		return rc;
	}
	s->restamped = true;
	return WEFT_OK;
}

/* ---- staging ---- */

int weft__authority_stage(struct weft_authority *au, const struct weft_op *op, void *origin)
{
	struct hw_entry *e;
	struct staged *s;
	struct mp_reader r;
	int rc;

	if ((rc = hw_get(au, op->replica, op->incarnation, &e)) != WEFT_OK)
		return rc;
	if (op->seq <= e->staged_seq)
		return 1; /* duplicate: committed or already staged */
	if (au->nstaged == au->staged_cap) {
		size_t cap = au->staged_cap ? au->staged_cap * 2 : 64;
		struct staged *n = weft__realloc(au->alloc, au->staged, cap * sizeof(*n));

		if (!n)
			return WEFT_ENOMEM;
		au->staged = n;
		au->staged_cap = cap;
	}
	s = &au->staged[au->nstaged];
	s->raw = weft__malloc(au->alloc, op->raw_len);
	if (!s->raw)
		return WEFT_ENOMEM;
	memcpy(s->raw, op->raw, op->raw_len);
	weft__mp_reader_init(&r, s->raw, op->raw_len);
	if ((rc = weft__op_decode(&r, &s->op)) != WEFT_OK) {
		weft__free(au->alloc, s->raw);
		return rc;
	}
	s->restamped = false;
	if (au->drift_set && WEFT_HLC_MS(op->hlc) > au->now_ms + au->max_drift_ms) {
		if ((rc = restamp(au, s)) != WEFT_OK) {
			weft__free(au->alloc, s->raw);
			return rc;
		}
	} else {
		weft__hlc_observe(&au->hlc, op->hlc);
	}
	s->origin = origin;
	au->nstaged++;
	e->staged_seq = op->seq;
	e->dirty = true;
	return WEFT_OK;
}

/* Recomputes staged high-water marks from the committed ones and what is
 * still staged. */
static void hw_restage(struct weft_authority *au)
{
	for (size_t i = 0; i < au->hw_cap; i++) {
		au->hw[i].staged_seq = au->hw[i].seq;
		au->hw[i].dirty = false;
	}
	for (size_t i = 0; i < au->nstaged; i++) {
		struct hw_entry *e =
		    hw_find(au, au->staged[i].op.replica, au->staged[i].op.incarnation);

		if (e->inc && au->staged[i].op.seq > e->staged_seq) {
			e->staged_seq = au->staged[i].op.seq;
			e->dirty = true;
		}
	}
}

size_t weft__authority_staged(const struct weft_authority *au)
{
	return au->nstaged;
}

/* ---- commit ---- */

static int ptr_cmp(const void *a, const void *b)
{
	uintptr_t x = (uintptr_t) * (void *const *)a, y = (uintptr_t) * (void *const *)b;

	return x < y ? -1 : x > y;
}

/* Writes ops, touched documents and marks into the open transaction. */
static int commit_write(struct weft_authority *au, struct mp_buf *buf)
{
	struct weft_store *st = au->st;
	size_t ntouched = 0;
	int rc;

	if (au->nstaged > au->touched_cap) {
		struct weft_doc **t =
		    weft__realloc(au->alloc, au->touched, au->nstaged * sizeof(*t));

		if (!t)
			return WEFT_ENOMEM;
		au->touched = t;
		au->touched_cap = au->nstaged;
	}
	for (size_t i = 0; i < au->nstaged; i++) {
		struct staged *s = &au->staged[i];

		rc = st->vt->log_append(st, au->pos + 1 + i, s->raw, s->op.raw_len);
		if (rc != WEFT_OK)
			return rc;
		rc = weft__docset_apply(au->docs, &s->op, NULL, &au->touched[ntouched]);
		if (rc != WEFT_OK)
			return rc;
		ntouched++;
	}
	qsort(au->touched, ntouched, sizeof(*au->touched), ptr_cmp);
	for (size_t i = 0; i < ntouched; i++) {
		const char *c, *id;
		size_t clen, idlen;

		if (i > 0 && au->touched[i] == au->touched[i - 1])
			continue;
		weft__mp_buf_reset(buf);
		weft__doc_encode(au->touched[i], buf);
		if (buf->err)
			return buf->err;
		weft__doc_key(au->touched[i], &c, &clen, &id, &idlen);
		rc = st->vt->doc_put(st, c, clen, id, idlen, buf->data, buf->len);
		if (rc != WEFT_OK)
			return rc;
	}
	for (size_t i = 0; i < au->hw_cap; i++) {
		struct hw_entry *e = &au->hw[i];
		char key[48];

		if (!e->inc || !e->dirty)
			continue;
		hw_key(key, sizeof(key), e->replica, e->inc);
		if ((rc = weft__store_meta_put_u64(st, key, e->staged_seq)) != WEFT_OK)
			return rc;
	}
	return weft__store_meta_put_u64(st, "hlc", au->hlc.last);
}

int weft__authority_commit(struct weft_authority *au)
{
	struct weft_store *st = au->st;
	struct mp_buf buf;
	int rc;

	batch_clear(au);
	if (au->nstaged == 0)
		return WEFT_OK;
	if (au->nstaged > au->batch_cap) {
		size_t cap = au->nstaged;
		struct weft_committed *b = weft__realloc(au->alloc, au->batch, cap * sizeof(*b));
		uint8_t **r;

		if (!b) {
			rc = WEFT_ENOMEM;
			goto out_fail;
		}
		au->batch = b;
		r = weft__realloc(au->alloc, au->batch_raw, cap * sizeof(*r));
		if (!r) {
			rc = WEFT_ENOMEM;
			goto out_fail;
		}
		au->batch_raw = r;
		au->batch_cap = cap;
	}
	weft__mp_buf_init(&buf, au->alloc, 0);
	if ((rc = st->vt->begin(st)) != WEFT_OK)
		goto out_free_buf;
	rc = commit_write(au, &buf);
	if (rc == WEFT_OK)
		rc = st->vt->commit(st);
	if (rc != WEFT_OK) {
		snprintf(au->err, sizeof(au->err), "group commit of %zu ops failed: %s (%s)",
		         au->nstaged, weft_strerror(rc), st->vt->errmsg(st));
		st->vt->rollback(st);
		/* Memory may hold part of the group: rebuild it from the store. */
		if (load_docs(au) != WEFT_OK)
			snprintf(au->err, sizeof(au->err),
			         "group commit failed and reloading documents failed too");
		goto out_free_buf;
	}

	/* Durable: the group becomes the batch, marks become committed. */
	for (size_t i = 0; i < au->nstaged; i++) {
		au->batch[i].op = au->staged[i].op;
		au->batch[i].pos = au->pos + 1 + i;
		au->batch[i].origin = au->staged[i].origin;
		au->batch[i].restamped = au->staged[i].restamped;
		au->batch_raw[i] = au->staged[i].raw;
	}
	au->nbatch = au->nstaged;
	au->pos += au->nstaged;
	au->nstaged = 0;
	for (size_t i = 0; i < au->hw_cap; i++) {
		if (au->hw[i].inc && au->hw[i].dirty) {
			au->hw[i].seq = au->hw[i].staged_seq;
			au->hw[i].dirty = false;
		}
	}
	weft__mp_buf_free(&buf);
	return WEFT_OK;

out_free_buf:
	weft__mp_buf_free(&buf);
out_fail:
	for (size_t i = 0; i < au->nstaged; i++)
		weft__free(au->alloc, au->staged[i].raw);
	au->nstaged = 0;
	hw_restage(au);
	return rc;
}

const struct weft_committed *weft__authority_batch(const struct weft_authority *au, size_t *n)
{
	*n = au->nbatch;
	return au->batch;
}

struct weft_cursor weft__authority_cursor(const struct weft_authority *au)
{
	struct weft_cursor c = {au->epoch, au->pos};

	return c;
}

int weft__authority_scan(struct weft_authority *au, uint64_t from, weft_store_log_cb cb, void *ctx)
{
	if (from >= au->pos)
		return WEFT_OK;
	return au->st->vt->log_scan(au->st, from + 1, cb, ctx);
}

struct weft_docset *weft__authority_docs(struct weft_authority *au)
{
	return au->docs;
}

const char *weft__authority_errmsg(const struct weft_authority *au)
{
	return au->err;
}
