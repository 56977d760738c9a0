/*
 * authority.c - dedupe, ordering, cursors and group commit. See authority.h.
 *
 * Invariants:
 *  - position increases by one per committed unit (an op or a
 *    transaction), in commit order; the log key of a unit is its position
 *    and its record is the unit's bytes, so a cursor (epoch, pos) names
 *    exactly the units a replica has seen;
 *  - for every (replica, incarnation) the committed high-water mark `seq`
 *    is durable in the same store transaction as the units (and the
 *    rejections) it covers, so an op is applied at most once even across
 *    a crash between commit and acknowledgement (the replica re-pushes;
 *    the authority sees a duplicate and acknowledges it again), and a
 *    rejected op is never applied later;
 *  - the in-memory documents equal the store's documents plus the staged
 *    units; after every commit, successful or not, nothing is staged and
 *    they equal the store's;
 *  - a unit is applied whole or not at all: one that may fail half-way (a
 *    transaction, or one holding a TEXT op, whose update is checked
 *    against the document) is first applied to copies of its documents.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "weft/weft.h"
#include "core/authority.h"

/* A rejected unit's seqs and code, remembered durably (meta "rej:...")
 * so that a re-push of it is rejected again, never acknowledged as if it
 * had been applied. */
struct rej_range {
	uint64_t first, last;
	uint64_t code;
};

struct hw_entry {
	uint64_t replica;           /* key part 1 */
	uint32_t inc;               /* key part 2; 0 marks an empty slot */
	bool dirty;                 /* staged_seq moved since the last commit */
	uint64_t seq;               /* committed high-water mark */
	uint64_t staged_seq;        /* high-water mark including staged ops */
	uint64_t restamp_hi;        /* highest seq the server re-stamped ... */
	uint64_t staged_restamp_hi; /* ... committed / including staged */
	struct rej_range *rej;      /* rejections, in seq order (owned) */
	uint32_t nrej;              /* including staged ones */
	uint32_t nrej_committed;
	uint32_t rej_cap;
};

/* A unit read for the next commit: staged, or a rejection. */
struct staged {
	uint8_t *raw; /* owned copy of the unit (re-encoded if re-stamped) */
	size_t raw_len;
	struct weft_committed_op *ops; /* decoded, pointing into raw (owned) */
	uint32_t nops;
	void *origin;     /* caller's tag */
	uint64_t replica; /* identities: replica, inc, first..last */
	uint32_t inc;
	uint64_t first, last;
	bool restamped;     /* the server replaced some op's HLC */
	bool rejected;      /* not applied; only the mark moves */
	bool again;         /* a re-push of a unit rejected before */
	int code;           /* rejection code */
	const char *reason; /* static rejection text */
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
	struct staged *staged; /* units waiting for the next commit */
	size_t nstaged;
	size_t staged_cap;
	struct staged *group; /* the last committed group (owned) */
	size_t ngroup;
	size_t group_cap;
	struct weft_committed *batch; /* views of its committed units */
	size_t nbatch;
	struct weft_rejected *rejects; /* views of its rejections */
	size_t nrejects;
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

static void rs_key(char *buf, size_t len, uint64_t replica, uint32_t inc)
{
	snprintf(buf, len, "rs:%016" PRIx64 ":%08" PRIx32, replica, inc);
}

static void rej_key(char *buf, size_t len, uint64_t replica, uint32_t inc)
{
	snprintf(buf, len, "rej:%016" PRIx64 ":%08" PRIx32, replica, inc);
}

static uint64_t le64(const uint8_t *p)
{
	uint64_t v = 0;

	for (int i = 7; i >= 0; i--)
		v = (v << 8) | p[i];
	return v;
}

static void put_le64(uint8_t *p, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static int rej_add(struct weft_authority *au, struct hw_entry *e, uint64_t first, uint64_t last,
                   uint64_t code)
{
	/* Adjacent rejections with one code in one group are one range (a
	 * PUSH of many invalid ops costs one entry). Committed ranges stay as
	 * they are: a failed commit only has to drop the entries after
	 * nrej_committed. */
	if (e->nrej > e->nrej_committed) {
		struct rej_range *p = &e->rej[e->nrej - 1];

		if (p->last + 1 == first && p->code == code) {
			p->last = last;
			return WEFT_OK;
		}
	}
	if (e->nrej == e->rej_cap) {
		uint32_t cap = e->rej_cap ? e->rej_cap * 2 : 4;
		struct rej_range *n = weft__realloc(au->alloc, e->rej, cap * sizeof(*n));

		if (!n)
			return WEFT_ENOMEM;
		e->rej = n;
		e->rej_cap = cap;
	}
	e->rej[e->nrej].first = first;
	e->rej[e->nrej].last = last;
	e->rej[e->nrej].code = code;
	e->nrej++;
	return WEFT_OK;
}

/* The rejection covering seqs first..last, if any. */
static const struct rej_range *rej_find(const struct hw_entry *e, uint64_t first, uint64_t last)
{
	for (uint32_t i = 0; i < e->nrej; i++)
		if (e->rej[i].first <= last && first <= e->rej[i].last)
			return &e->rej[i];
	return NULL;
}

/* Loads the rejections of a (replica, incarnation) that has some. */
static int rej_load(struct weft_authority *au, struct hw_entry *e)
{
	struct mp_buf b;
	char key[48];
	int rc;

	rej_key(key, sizeof(key), e->replica, e->inc);
	weft__mp_buf_init(&b, au->alloc, 0);
	rc = au->st->vt->meta_get(au->st, key, &b);
	if (rc == WEFT_ENOTFOUND) {
		rc = WEFT_OK;
	} else if (rc == WEFT_OK) {
		if (b.len % 24 != 0)
			rc = WEFT_ECORRUPT;
		for (size_t off = 0; rc == WEFT_OK && off < b.len; off += 24)
			rc = rej_add(au, e, le64(b.data + off), le64(b.data + off + 8),
			             le64(b.data + off + 16));
	}
	weft__mp_buf_free(&b);
	e->nrej_committed = e->nrej;
	return rc;
}

static int rej_store(struct weft_authority *au, const struct hw_entry *e)
{
	uint8_t *buf = weft__malloc(au->alloc, (size_t)e->nrej * 24);
	char key[48];
	int rc;

	if (!buf)
		return WEFT_ENOMEM;
	for (uint32_t i = 0; i < e->nrej; i++) {
		put_le64(buf + i * 24, e->rej[i].first);
		put_le64(buf + i * 24 + 8, e->rej[i].last);
		put_le64(buf + i * 24 + 16, e->rej[i].code);
	}
	rej_key(key, sizeof(key), e->replica, e->inc);
	rc = au->st->vt->meta_put(au->st, key, buf, (size_t)e->nrej * 24);
	weft__free(au->alloc, buf);
	return rc;
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
	rs_key(key, sizeof(key), replica, inc);
	e->restamp_hi = 0;
	rc = weft__store_meta_get_u64(au->st, key, &e->restamp_hi);
	if (rc != WEFT_OK && rc != WEFT_ENOTFOUND)
		return rc;
	e->staged_restamp_hi = e->restamp_hi;
	e->rej = NULL;
	e->nrej = e->nrej_committed = e->rej_cap = 0;
	au->hw_len++;
	*out = e;
	return rej_load(au, e);
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

static void staged_free(struct weft_authority *au, struct staged *s)
{
	weft__free(au->alloc, s->raw);
	weft__free(au->alloc, s->ops);
	s->raw = NULL;
	s->ops = NULL;
}

static void batch_clear(struct weft_authority *au)
{
	for (size_t i = 0; i < au->ngroup; i++)
		staged_free(au, &au->group[i]);
	au->ngroup = 0;
	au->nbatch = 0;
	au->nrejects = 0;
}

void weft__authority_free(struct weft_authority *au)
{
	if (!au)
		return;
	batch_clear(au);
	for (size_t i = 0; i < au->nstaged; i++)
		staged_free(au, &au->staged[i]);
	weft__free(au->alloc, au->staged);
	weft__free(au->alloc, au->group);
	weft__free(au->alloc, au->batch);
	weft__free(au->alloc, au->rejects);
	weft__free(au->alloc, au->touched);
	for (size_t i = 0; i < au->hw_cap; i++)
		if (au->hw[i].inc)
			weft__free(au->alloc, au->hw[i].rej);
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

/* Reads the identity of the op at r (the first three of its nine
 * fields) without consuming it. Errors: WEFT_EPROTO. */
static int op_ident(const struct mp_reader *at, uint64_t *replica, uint32_t *inc, uint64_t *seq)
{
	struct mp_reader r = *at;
	uint64_t v;
	uint32_t n;

	if (weft__mp_read_array(&r, &n) != WEFT_OK || n != 9 ||
	    weft__mp_read_uint(&r, replica) != WEFT_OK || weft__mp_read_uint(&r, &v) != WEFT_OK ||
	    v == 0 || v > WEFT_MAX_INCARNATION || weft__mp_read_uint(&r, seq) != WEFT_OK ||
	    *seq == 0 || *seq > WEFT_MAX_SEQ)
		return WEFT_EPROTO;
	*inc = (uint32_t)v;
	return WEFT_OK;
}

/* Decodes the ops of s->raw into s->ops. Errors as weft__op_decode. */
static int decode_ops(struct staged *s, bool txn)
{
	struct mp_reader r;
	uint32_t n;
	int rc;

	weft__mp_reader_init(&r, s->raw, s->raw_len);
	if (txn &&
	    (weft__mp_read_array(&r, &n) != WEFT_OK || weft__mp_read_array(&r, &n) != WEFT_OK))
		return WEFT_EPROTO;
	for (uint32_t i = 0; i < s->nops; i++)
		if ((rc = weft__op_decode(&r, &s->ops[i].op)) != WEFT_OK)
			return rc;
	return WEFT_OK;
}

/*
 * Replaces the HLC of every op of the unit that is too far in the future
 * with the server's, re-encoding the unit: a replica whose clock runs
 * ahead cannot win every conflict for as long as its clock is wrong. The
 * replica learns the new stamps from its ACK. Other stamps are observed,
 * so the server's clock stays above every stamp it has accepted.
 */
static int restamp(struct weft_authority *au, struct staged *s, bool txn)
{
	struct mp_buf b;
	size_t len;
	bool any = false;
	int rc;

	for (uint32_t i = 0; i < s->nops; i++) {
		uint64_t hlc = s->ops[i].op.hlc;

		s->ops[i].restamped =
		    au->drift_set && WEFT_HLC_MS(hlc) > au->now_ms + au->max_drift_ms;
		if (s->ops[i].restamped)
			any = true;
		else
			weft__hlc_observe(&au->hlc, hlc);
	}
	if (!any)
		return WEFT_OK;
	weft__mp_buf_init(&b, au->alloc, s->raw_len + 16);
	if (txn)
		weft__unit_txn_write(&b, s->nops);
	for (uint32_t i = 0; i < s->nops; i++) {
		struct weft_op re = s->ops[i].op;

		if (s->ops[i].restamped)
			re.hlc = weft__hlc_now(&au->hlc, au->now_ms);
		weft__op_encode(&b, &re);
	}
	if (b.err) {
		rc = b.err;
		weft__mp_buf_free(&b);
		return rc;
	}
	weft__free(au->alloc, s->raw);
	s->raw = weft__mp_buf_take(&b, &len);
	s->raw_len = len;
	s->restamped = true;
	/* Cannot fail: we encoded what we had decoded. */
	return decode_ops(s, txn);
}

static void hw_restage(struct weft_authority *au);

/* Reloads every document from the store and forgets everything staged:
 * the in-memory state becomes the durable one again. */
static void group_drop(struct weft_authority *au)
{
	for (size_t i = 0; i < au->nstaged; i++)
		staged_free(au, &au->staged[i]);
	au->nstaged = 0;
	hw_restage(au);
	if (load_docs(au) != WEFT_OK)
		snprintf(au->err, sizeof(au->err), "reloading documents after a failure failed");
}

/* True when an op before ops[i] names the same document. */
static bool seen_before(const struct staged *s, uint32_t i)
{
	const struct weft_op *op = &s->ops[i].op;

	for (uint32_t k = 0; k < i; k++) {
		const struct weft_op *o = &s->ops[k].op;

		if (o->coll_len == op->coll_len && o->id_len == op->id_len &&
		    memcmp(o->coll, op->coll, op->coll_len) == 0 &&
		    memcmp(o->id, op->id, op->id_len) == 0)
			return true;
	}
	return false;
}

/*
 * Applies a unit that may fail half-way on copies of its documents first;
 * only if all of it applies are the copies installed. Returns WEFT_OK,
 * WEFT_EPROTO / WEFT_ETOOBIG when the documents refuse it (nothing
 * changed), WEFT_ENOMEM before anything changed, or (*lost set) an error
 * after the documents were partly replaced.
 */
static int apply_trial(struct weft_authority *au, struct staged *s, bool *lost)
{
	struct weft_docset *tmp;
	struct mp_buf b;
	int rc;

	*lost = false;
	if ((rc = weft__docset_new(au->alloc, &tmp)) != WEFT_OK)
		return rc;
	weft__mp_buf_init(&b, au->alloc, 0);
	for (uint32_t i = 0; i < s->nops && rc == WEFT_OK; i++) {
		const struct weft_op *op = &s->ops[i].op;
		struct weft_doc *d;

		if (weft__docset_find(tmp, op->coll, op->coll_len, op->id, op->id_len))
			continue;
		d = weft__docset_find(au->docs, op->coll, op->coll_len, op->id, op->id_len);
		if (!d)
			continue;
		weft__mp_buf_reset(&b);
		weft__doc_encode_full(d, &b);
		rc = b.err ? b.err
		           : weft__docset_load(tmp, op->coll, op->coll_len, op->id, op->id_len,
		                               b.data, b.len);
	}
	for (uint32_t i = 0; i < s->nops && rc == WEFT_OK; i++)
		rc = weft__docset_apply(tmp, &s->ops[i].op, NULL, NULL);
	if (rc == WEFT_ECORRUPT)
		rc = WEFT_EPROTO;
	for (uint32_t i = 0; i < s->nops && rc == WEFT_OK; i++) {
		const struct weft_op *op = &s->ops[i].op;
		struct weft_doc *d =
		    weft__docset_find(tmp, op->coll, op->coll_len, op->id, op->id_len);

		if (seen_before(s, i))
			continue;
		weft__mp_buf_reset(&b);
		weft__doc_encode_full(d, &b);
		rc = b.err ? b.err
		           : weft__docset_load(au->docs, op->coll, op->coll_len, op->id, op->id_len,
		                               b.data, b.len);
		if (rc != WEFT_OK)
			*lost = true;
	}
	weft__mp_buf_free(&b);
	weft__docset_free(tmp);
	return rc;
}

static int staged_push(struct weft_authority *au, struct staged **out)
{
	if (au->nstaged == au->staged_cap) {
		size_t cap = au->staged_cap ? au->staged_cap * 2 : 64;
		struct staged *n = weft__realloc(au->alloc, au->staged, cap * sizeof(*n));

		if (!n)
			return WEFT_ENOMEM;
		au->staged = n;
		au->staged_cap = cap;
	}
	*out = &au->staged[au->nstaged];
	memset(*out, 0, sizeof(**out));
	return WEFT_OK;
}

int weft__authority_stage_unit(struct weft_authority *au, const struct weft_unit *u,
                               uint64_t replica, void *origin, enum weft_stage_outcome *outcome,
                               bool *gap)
{
	struct mp_reader r = u->ops;
	struct hw_entry *e;
	struct staged *s;
	uint64_t first = 0, rep, seq;
	uint32_t inc = 0, in;
	bool text = false, lost = false;
	int rc;

	*gap = false;
	*outcome = WEFT_STAGED;
	for (uint32_t i = 0; i < u->nops; i++) {
		if (op_ident(&r, &rep, &in, &seq) != WEFT_OK) {
			snprintf(au->err, sizeof(au->err), "malformed op identity");
			return WEFT_EPROTO;
		}
		if (rep != replica) {
			snprintf(au->err, sizeof(au->err), "op from another replica");
			return WEFT_EPROTO;
		}
		if (i == 0) {
			inc = in;
			first = seq;
		} else if (in != inc || seq != first + i) {
			snprintf(au->err, sizeof(au->err),
			         "transaction ops must have one incarnation and consecutive seqs");
			return WEFT_EPROTO;
		}
		if (weft__mp_skip(&r, NULL, NULL) != WEFT_OK)
			return WEFT_EPROTO;
	}
	if (u->nops == 0 || first + u->nops - 1 > WEFT_MAX_SEQ) {
		snprintf(au->err, sizeof(au->err), "empty unit or seq out of range");
		return WEFT_EPROTO;
	}
	if ((rc = hw_get(au, replica, inc, &e)) != WEFT_OK)
		return rc;
	if (first + u->nops - 1 <= e->staged_seq) {
		const struct rej_range *rj = rej_find(e, first, first + u->nops - 1);

		*outcome = WEFT_DUPLICATE;
		if (!rj)
			return WEFT_OK;
		/* Rejected before, and the REJECT may have been lost: say it
		 * again rather than acknowledge it as applied. */
		if ((rc = staged_push(au, &s)) != WEFT_OK)
			return rc;
		s->raw = weft__malloc(au->alloc, u->raw_len);
		if (!s->raw)
			return WEFT_ENOMEM;
		memcpy(s->raw, u->raw, u->raw_len);
		s->raw_len = u->raw_len;
		s->origin = origin;
		s->replica = replica;
		s->inc = inc;
		s->first = first; /* the unit's own seqs: rj may span several */
		s->last = first + u->nops - 1;
		s->rejected = s->again = true;
		s->code = (int)rj->code;
		s->reason = "rejected before";
		au->nstaged++;
		*outcome = WEFT_REJECTED;
		return WEFT_OK;
	}
	if (first <= e->staged_seq) {
		snprintf(au->err, sizeof(au->err),
		         "transaction overlaps ops already applied (seq %" PRIu64 " <= %" PRIu64
		         ")",
		         first, e->staged_seq);
		return WEFT_EPROTO;
	}
	*gap = first != e->staged_seq + 1;

	if ((rc = staged_push(au, &s)) != WEFT_OK)
		return rc;
	s->origin = origin;
	s->replica = replica;
	s->inc = inc;
	s->first = first;
	s->last = first + u->nops - 1;
	s->nops = u->nops;
	s->raw = weft__malloc(au->alloc, u->raw_len);
	s->ops = weft__zalloc(au->alloc, u->nops * sizeof(*s->ops));
	if (!s->raw || !s->ops) {
		staged_free(au, s);
		return WEFT_ENOMEM;
	}
	memcpy(s->raw, u->raw, u->raw_len);
	s->raw_len = u->raw_len;
	rc = decode_ops(s, u->txn);
	if (rc == WEFT_OK)
		rc = restamp(au, s, u->txn);
	if (rc == WEFT_OK) {
		for (uint32_t i = 0; i < s->nops; i++)
			text |= s->ops[i].op.kind == WEFT_OP_TEXT;
		if (s->nops > 1 || text)
			rc = apply_trial(au, s, &lost);
		else if ((rc = weft__docset_apply(au->docs, &s->ops[0].op, NULL, NULL)) != WEFT_OK)
			lost = true; /* validated, so only memory can fail */
	}
	if (lost) {
		staged_free(au, s);
		snprintf(au->err, sizeof(au->err), "applying a unit failed: %s; group dropped",
		         weft_strerror(rc));
		group_drop(au);
		return rc == WEFT_EPROTO ? WEFT_ENOMEM : rc;
	}
	if (rc == WEFT_ENOMEM) {
		staged_free(au, s);
		return rc;
	}
	if (rc != WEFT_OK) {
		/* The unit breaks a rule: it never applies, and its identities
		 * are used up so that the replica's queue moves on. */
		weft__free(au->alloc, s->ops);
		s->ops = NULL;
		s->rejected = true;
		s->code = rc == WEFT_ETOOBIG ? WEFT_REJECT_TOO_BIG : WEFT_REJECT_INVALID;
		s->reason = rc == WEFT_ETOOBIG ? "an op is over a limit"
		                               : "an op is malformed or its document refuses it";
		*outcome = WEFT_REJECTED;
		if (rej_add(au, e, s->first, s->last, (uint64_t)s->code) != WEFT_OK) {
			staged_free(au, s);
			return WEFT_ENOMEM;
		}
	}
	au->nstaged++;
	e->staged_seq = s->last;
	if (s->restamped && !s->rejected) {
		for (uint32_t i = 0; i < s->nops; i++)
			if (s->ops[i].restamped && s->ops[i].op.seq > e->staged_restamp_hi)
				e->staged_restamp_hi = s->ops[i].op.seq;
	}
	e->dirty = true;
	return WEFT_OK;
}

int weft__authority_stage(struct weft_authority *au, const struct weft_op *op, void *origin)
{
	struct weft_unit u;
	struct mp_reader r;
	enum weft_stage_outcome out;
	bool gap;
	int rc;

	weft__mp_reader_init(&r, op->raw, op->raw_len);
	if (weft__unit_read(&r, &u) != WEFT_OK)
		return WEFT_EPROTO;
	rc = weft__authority_stage_unit(au, &u, op->replica, origin, &out, &gap);
	if (rc != WEFT_OK)
		return rc;
	return out == WEFT_STAGED ? WEFT_OK : 1;
}

/* Recomputes staged high-water marks from the committed ones and what is
 * still staged. */
static void hw_restage(struct weft_authority *au)
{
	for (size_t i = 0; i < au->hw_cap; i++) {
		au->hw[i].staged_seq = au->hw[i].seq;
		au->hw[i].dirty = false;
		au->hw[i].nrej = au->hw[i].nrej_committed;
		au->hw[i].staged_restamp_hi = au->hw[i].restamp_hi;
	}
	for (size_t i = 0; i < au->nstaged; i++) {
		struct hw_entry *e = hw_find(au, au->staged[i].replica, au->staged[i].inc);

		if (e->inc && au->staged[i].last > e->staged_seq) {
			e->staged_seq = au->staged[i].last;
			e->dirty = true;
		}
	}
}

int weft__authority_restamped(struct weft_authority *au, uint64_t replica, uint32_t inc,
                              uint64_t seq, bool *maybe)
{
	struct hw_entry *e;
	int rc;

	if ((rc = hw_get(au, replica, inc, &e)) != WEFT_OK)
		return rc;
	*maybe = seq <= e->staged_restamp_hi;
	return WEFT_OK;
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

/* Writes units, touched documents and marks into the open transaction. */
static int commit_write(struct weft_authority *au, struct mp_buf *buf)
{
	struct weft_store *st = au->st;
	size_t ntouched = 0, nops = 0;
	uint64_t pos = au->pos;
	int rc;

	for (size_t i = 0; i < au->nstaged; i++)
		if (!au->staged[i].rejected)
			nops += au->staged[i].nops;
	if (nops > au->touched_cap) {
		struct weft_doc **t = weft__realloc(au->alloc, au->touched, nops * sizeof(*t));

		if (!t)
			return WEFT_ENOMEM;
		au->touched = t;
		au->touched_cap = nops;
	}
	for (size_t i = 0; i < au->nstaged; i++) {
		struct staged *s = &au->staged[i];

		if (s->rejected)
			continue;
		rc = st->vt->log_append(st, ++pos, s->raw, s->raw_len);
		if (rc != WEFT_OK)
			return rc;
		for (uint32_t k = 0; k < s->nops; k++) {
			const struct weft_op *op = &s->ops[k].op;

			/* Applied when staged, so the document exists. */
			au->touched[ntouched++] =
			    weft__docset_find(au->docs, op->coll, op->coll_len, op->id, op->id_len);
		}
	}
	if (ntouched > 1)
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
		if (e->nrej != e->nrej_committed && (rc = rej_store(au, e)) != WEFT_OK)
			return rc;
		if (e->staged_restamp_hi != e->restamp_hi) {
			rs_key(key, sizeof(key), e->replica, e->inc);
			if ((rc = weft__store_meta_put_u64(st, key, e->staged_restamp_hi)) !=
			    WEFT_OK)
				return rc;
		}
	}
	return weft__store_meta_put_u64(st, "hlc", au->hlc.last);
}

/* Makes room for the views of a group of n units. */
static int views_reserve(struct weft_authority *au, size_t n)
{
	if (n <= au->group_cap)
		return WEFT_OK;
	{
		struct staged *g = weft__realloc(au->alloc, au->group, n * sizeof(*g));
		struct weft_committed *b;
		struct weft_rejected *j;

		if (!g)
			return WEFT_ENOMEM;
		au->group = g;
		b = weft__realloc(au->alloc, au->batch, n * sizeof(*b));
		if (!b)
			return WEFT_ENOMEM;
		au->batch = b;
		j = weft__realloc(au->alloc, au->rejects, n * sizeof(*j));
		if (!j)
			return WEFT_ENOMEM;
		au->rejects = j;
		au->group_cap = n;
	}
	return WEFT_OK;
}

int weft__authority_commit(struct weft_authority *au)
{
	struct weft_store *st = au->st;
	struct mp_buf buf;
	int rc;

	batch_clear(au);
	if (au->nstaged == 0)
		return WEFT_OK;
	if ((rc = views_reserve(au, au->nstaged)) != WEFT_OK) {
		snprintf(au->err, sizeof(au->err), "out of memory before a group commit");
		group_drop(au);
		return rc;
	}
	weft__mp_buf_init(&buf, au->alloc, 0);
	if ((rc = st->vt->begin(st)) == WEFT_OK) {
		rc = commit_write(au, &buf);
		if (rc == WEFT_OK)
			rc = st->vt->commit(st);
	}
	weft__mp_buf_free(&buf);
	if (rc != WEFT_OK) {
		snprintf(au->err, sizeof(au->err), "group commit of %zu units failed: %s (%s)",
		         au->nstaged, weft_strerror(rc), st->vt->errmsg(st));
		st->vt->rollback(st);
		/* Memory holds the group: rebuild it from the store. */
		group_drop(au);
		return rc;
	}

	/* Durable: the group becomes the batch, marks become committed. */
	memcpy(au->group, au->staged, au->nstaged * sizeof(*au->group));
	au->ngroup = au->nstaged;
	au->nstaged = 0;
	for (size_t i = 0; i < au->ngroup; i++) {
		struct staged *s = &au->group[i];

		if (s->rejected) {
			struct weft_rejected *j = &au->rejects[au->nrejects++];

			j->origin = s->origin;
			j->replica = s->replica;
			j->incarnation = s->inc;
			j->first_seq = s->first;
			j->last_seq = s->last;
			j->code = s->code;
			j->reason = s->reason;
			j->raw = s->raw;
			j->raw_len = s->raw_len;
		} else {
			struct weft_committed *c = &au->batch[au->nbatch++];

			c->pos = ++au->pos;
			c->origin = s->origin;
			c->replica = s->replica;
			c->raw = s->raw;
			c->raw_len = s->raw_len;
			c->ops = s->ops;
			c->nops = s->nops;
			c->restamped = s->restamped;
		}
	}
	for (size_t i = 0; i < au->hw_cap; i++) {
		if (au->hw[i].inc && au->hw[i].dirty) {
			au->hw[i].seq = au->hw[i].staged_seq;
			au->hw[i].dirty = false;
			au->hw[i].nrej_committed = au->hw[i].nrej;
			au->hw[i].restamp_hi = au->hw[i].staged_restamp_hi;
		}
	}
	return WEFT_OK;
}

const struct weft_committed *weft__authority_batch(const struct weft_authority *au, size_t *n)
{
	*n = au->nbatch;
	return au->batch;
}

const struct weft_rejected *weft__authority_rejected(const struct weft_authority *au, size_t *n)
{
	*n = au->nrejects;
	return au->rejects;
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
