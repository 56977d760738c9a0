/*
 * text_codec.c - the text CRDT's update and document encodings: writing
 * ops since a version (coalesced runs), and validating and applying update
 * bytes from peers, with buffering of updates whose dependencies are
 * missing. The CRDT itself (and its merge laws) is in text.c.
 *
 * Update encoding: MessagePack values one after another (no enclosing
 * array, so an encoder streams it without counting first):
 *   uint 1 (format), uint n, n x (uint replica, uint incarnation),
 *   then ops until the end of the bytes, each:
 *     uint h = len << 5 | CONT 16 | SAME 8 | IMPLICIT 4 | kind
 *       kind 0 insert, 1 delete forward (targets t, t+1, ...), 2 delete
 *       backward (t, t-1, ...), 3 tombstone insert (items born deleted:
 *       deleted content left out of a document);
 *     uint agent   unless SAME (same agent as the previous op; for the
 *                  first op, agent 0 of the table);
 *     uint seq     unless IMPLICIT (continues that agent's previous op);
 *     inserts: ref origin_left, ref origin_right, unless CONT (origin_left
 *       is seq - 1 and origin_right that of the agent's previous op, an
 *       insert); deletes: ref target;
 *     kind 0: str content, exactly len code points.
 *   A ref is nil (none), a negative int d (the op's agent, seq + d), or a
 *   uint agent index followed by a uint seq.
 * Compact update (weft__text_set_compact, weft__text_apply_from): the ops
 * of one agent that the receiver supplies (a TEXT op's writer), without the
 * header: in table space that agent is index 0 and
 *   - if no ref names another agent: the ops alone, from the first byte;
 *   - else: uint 2, uint n (>= 1), n x (uint replica, uint incarnation)
 *     for table indexes 1..n, then the ops.
 *   Every op is the supplied agent's (the first has SAME set or agent 0).
 *   The first value tells the forms apart: 1 is a self-contained update, 2
 *   a compact one with a table, a uint >= 32 the header of a compact one's
 *   first op (len >= 1, so h >= 32); 0 and 3..31 are refused (reserved for
 *   later forms). Empty bytes are a compact update without ops.
 * A whole document is the update from the empty version, optionally with
 * deleted content sent as tombstones. weft__text_apply checks every field
 * (indexes, ranges, UTF-8, code point counts, CONT/SAME/IMPLICIT only where
 * they have a referent) before applying anything; a load checks as it goes
 * and throws the replica away on error. Either allocates at most O(input)
 * for the agent table.
 */
#include "core/text_int.h"

/* ---- encoding ---- */

static void write_ref(struct mp_buf *b, const uint32_t *amap, struct id x, uint32_t a, uint32_t seq)
{
	if (x.a == NONE) {
		weft__mp_write_nil(b);
	} else if (x.a == a && x.s < seq) {
		weft__mp_write_int(b, (int64_t)x.s - (int64_t)seq);
	} else {
		weft__mp_write_uint(b, amap[x.a]);
		weft__mp_write_uint(b, x.s);
	}
}

static inline void note_agent(struct weft_text *t, uint32_t *n, uint32_t a)
{
	if (a != NONE && t->amap[a] == NONE)
		t->amap[a] = (*n)++;
}

/*
 * Writes items [k, kend) of op o (agent a) as one op; tomb: an insert
 * without content (its items are deleted).
 */
static void write_op(struct weft_text *t, struct mp_buf *b, uint32_t a, const struct op *o,
                     uint32_t k, uint32_t kend, bool tomb)
{
	const struct agent *ag = &t->agents[a];
	struct sst *st = &t->sst[a];
	uint32_t seq = o->seq + k, len = kend - k, kind = o->kind, h;
	bool ins = o->kind == K_INS;
	struct id x = o->x;

	if (ins && k > 0) {
		x.a = a;
		x.s = seq - 1;
	} else if (o->kind == K_DEL_FWD) {
		x.s += k;
	} else if (o->kind == K_DEL_BACK) {
		x.s -= k;
	}
	if (ins && (tomb || o->boff == NONE))
		kind = K_TOMB;
	h = ((uint32_t)0) | kind;
	if (st->exp == seq)
		h |= H_IMPLICIT;
	if (t->sprev == a)
		h |= H_SAME;
	if (ins && st->exp == seq && x.a == a && x.s == seq - 1 && st->lor.a != BAD &&
	    id_eq(st->lor, o->orr))
		h |= H_CONT;
	weft__mp_write_uint(b, ((uint64_t)len << 5) | h);
	if (!(h & H_SAME))
		weft__mp_write_uint(b, t->amap[a]);
	if (!(h & H_IMPLICIT))
		weft__mp_write_uint(b, seq);
	st->exp = seq + len;
	st->lor.a = BAD;
	t->sprev = a;
	if (!(h & H_CONT)) {
		write_ref(b, t->amap, x, a, seq);
		if (ins)
			write_ref(b, t->amap, o->orr, a, seq);
	}
	if (ins) {
		st->lor = o->orr;
		if (kind == K_INS) {
			const uint8_t *c = ag->content + o->boff;
			size_t sk = o->blen == o->len ? k : utf8_skip(c, o->blen, k);
			size_t ek = o->blen == o->len ? kend : utf8_skip(c, o->blen, kend);
			weft__mp_write_str(b, (const char *)c + sk, ek - sk);
		}
	}
}

/*
 * Emits the suffix of op o (agent a) from item k; with drop, inserted items
 * that are deleted now go out as tombs (no content). With b NULL, only
 * notes the agents it references.
 */
static void emit_op(struct weft_text *t, struct mp_buf *b, uint32_t *nag, uint32_t a,
                    const struct op *o, uint32_t k, bool drop)
{
	if (!b) {
		note_agent(t, nag, a);
		note_agent(t, nag, o->x.a);
		if (o->kind == K_INS)
			note_agent(t, nag, o->orr.a);
		return;
	}
	if (!drop || o->kind != K_INS || o->boff == NONE) {
		write_op(t, b, a, o, k, o->len, false);
		return;
	}
	while (k < o->len) {
		struct loc l;
		const struct run *r;
		uint32_t e;

		if (weft__text_find_id(t, (struct id){a, o->seq + k}, &l) != WEFT_OK)
			return; /* cannot happen: every item is in the tree */
		r = run_at(t, l);
		e = k + (r->len - l.off);
		if (e > o->len)
			e = o->len;
		/* extend over following runs with the same deleted state */
		while (e < o->len) {
			struct loc m;
			if (weft__text_find_id(t, (struct id){a, o->seq + e}, &m) != WEFT_OK ||
			    run_at(t, m)->del != r->del)
				break;
			e += run_at(t, m)->len - m.off;
			if (e > o->len)
				e = o->len;
		}
		write_op(t, b, a, o, k, e, r->del);
		k = e;
	}
}

/* Sizes the writer's scratch (amap, sst) for every agent. */
int weft__text_scratch_reserve(struct weft_text *t)
{
	size_t cap = t->capamap, scap = t->capsst;
	int rc = grow(t->al, (void **)&t->amap, &cap, t->nagents, sizeof(*t->amap));

	if (rc == WEFT_OK)
		rc = grow(t->al, (void **)&t->sst, &scap, t->nagents, sizeof(*t->sst));
	if (rc == WEFT_OK) {
		t->capamap = (uint32_t)cap;
		t->capsst = (uint32_t)scap;
	}
	return rc;
}

/* Resets the writer's scratch: amap (agent -> update table index) and sst. */
static int amap_reset(struct weft_text *t)
{
	uint32_t i;
	int rc = weft__text_scratch_reserve(t);

	if (rc)
		return rc;
	memset(t->amap, 0xff, t->nagents * sizeof(*t->amap));
	for (i = 0; i < t->nagents; i++) {
		t->sst[i].exp = NONE;
		t->sst[i].lor.a = BAD;
	}
	t->sprev = NONE;
	return WEFT_OK;
}

/* Writes an update's header: 1, nag and table entries [0, nag) for a
 * self-contained update (j0 0); 2, the count of other agents and entries
 * [1, nag) for a compact one (j0 1: index 0 is the implicit agent). */
static void write_header(struct weft_text *t, struct mp_buf *b, uint32_t j0, uint32_t nag)
{
	uint32_t i, j;

	weft__mp_write_uint(b, j0 ? 2 : 1);
	weft__mp_write_uint(b, nag - j0);
	for (j = j0; j < nag; j++) {
		for (i = 0; i < t->nagents; i++) {
			if (t->amap[i] == j) {
				if (j == 0)
					t->sprev = i; /* SAME applies to table agent 0 at first */
				weft__mp_write_uint(b, t->agents[i].replica);
				weft__mp_write_uint(b, t->agents[i].inc);
				break;
			}
		}
	}
}

void weft__text_set_compact(struct weft_text *t, bool compact)
{
	t->compact = compact;
}

/* The local agent's ops from seq `from` as one update, self-contained or
 * compact (t->compact). */
int weft__text_encode_local(struct weft_text *t, uint32_t from, struct mp_buf *b)
{
	struct agent *ag = &t->agents[0];
	uint32_t nag = 0;
	size_t i, i0;
	int pass, rc;

	if (from >= ag->next)
		return WEFT_OK;
	rc = amap_reset(t);
	if (rc)
		return rc;
	i0 = op_find(ag, from);
	t->amap[0] = nag++; /* table index 0 in either form */
	t->sprev = 0;       /* so SAME at the first op means the local agent */
	for (pass = 0; pass < 2; pass++) {
		/* a compact update needs a table only for refs to other agents */
		if (pass && (!t->compact || nag > 1))
			write_header(t, b, t->compact ? 1 : 0, nag);
		for (i = i0; i < ag->nops; i++) {
			const struct op *o = &ag->ops[i];
			uint32_t k = from > o->seq ? from - o->seq : 0;
			emit_op(t, pass ? b : NULL, &nag, 0, o, k, false);
		}
	}
	return b->err;
}

/* Decodes version bytes into have[agent] (agents this replica knows). */
static int version_decode(struct weft_text *t, const void *ver, size_t len, uint32_t *have)
{
	struct mp_reader r;
	uint32_t n, i, idx;
	uint64_t rep, inc, cnt;

	memset(have, 0, t->nagents * sizeof(*have));
	if (!ver || !len)
		return WEFT_OK;
	weft__mp_reader_init(&r, ver, len);
	if (weft__mp_read_array(&r, &n) || n % 3)
		return WEFT_EPROTO;
	for (i = 0; i < n; i += 3) {
		if (weft__mp_read_uint(&r, &rep) || weft__mp_read_uint(&r, &inc) ||
		    weft__mp_read_uint(&r, &cnt) || inc > UINT32_MAX || cnt > UINT32_MAX)
			return WEFT_EPROTO;
		if (weft__text_agent_find(t, rep, (uint32_t)inc, &idx))
			have[idx] = (uint32_t)cnt;
	}
	return weft__mp_reader_left(&r) ? WEFT_EPROTO : WEFT_OK;
}

void weft__text_version(const struct weft_text *t, struct mp_buf *out)
{
	uint32_t i;

	weft__mp_write_array(out, t->nagents * 3);
	for (i = 0; i < t->nagents; i++) {
		weft__mp_write_uint(out, t->agents[i].replica);
		weft__mp_write_uint(out, t->agents[i].inc);
		weft__mp_write_uint(out, t->agents[i].next);
	}
}

static int encode_since(struct weft_text *t, const void *ver, size_t ver_len, bool drop,
                        struct mp_buf *out)
{
	uint32_t *have, nag = 0;
	size_t i;
	int pass, rc;

	have = weft__malloc(t->al, (t->nagents ? t->nagents : 1) * sizeof(*have));
	if (!have)
		return WEFT_ENOMEM;
	rc = version_decode(t, ver, ver_len, have);
	if (rc == WEFT_OK)
		rc = amap_reset(t);
	if (rc)
		goto out_free;
	for (pass = 0; pass < 2; pass++) {
		if (pass)
			write_header(t, out, 0, nag);
		for (i = 0; i < t->nlog; i++) {
			uint32_t a = t->log[i].a;
			const struct op *o = &t->agents[a].ops[t->log[i].op];
			if (o->seq + o->len <= have[a])
				continue;
			emit_op(t, pass ? out : NULL, &nag, a, o,
			        have[a] > o->seq ? have[a] - o->seq : 0, drop);
		}
	}
	rc = out->err;
out_free:
	weft__free(t->al, have);
	return rc;
}

int weft__text_encode_since(struct weft_text *t, const void *ver, size_t ver_len,
                            struct mp_buf *out)
{
	return encode_since(t, ver, ver_len, false, out);
}

int weft__text_encode(struct weft_text *t, unsigned flags, struct mp_buf *out)
{
	return encode_since(t, NULL, 0, (flags & WEFT_TEXT_DROP_DELETED) != 0, out);
}

/* ---- remote ops ---- */

/* Fast paths for the one-byte MessagePack forms, which most fields use;
 * everything else goes through the codec. */
static inline int rd_uint(struct mp_reader *r, uint64_t *v)
{
	if (r->p < r->end && *r->p < 0x80) {
		*v = *r->p++;
		return WEFT_OK;
	}
	return weft__mp_read_uint(r, v);
}

static inline int rd_int(struct mp_reader *r, int64_t *v)
{
	if (r->p < r->end && (*r->p < 0x80 || *r->p >= 0xe0)) {
		*v = (int8_t)*r->p++;
		return WEFT_OK;
	}
	return weft__mp_read_int(r, v);
}

static int read_u32(struct mp_reader *r, uint32_t *v)
{
	uint64_t u;

	if (rd_uint(r, &u) || u > UINT32_MAX)
		return WEFT_EPROTO;
	*v = (uint32_t)u;
	return WEFT_OK;
}

static int read_ref(struct mp_reader *r, uint32_t nag, uint32_t seq, struct id *x)
{
	int64_t v;

	if (r->p < r->end && *r->p == 0xc0) { /* nil */
		r->p++;
		x->a = NONE;
		x->s = 0;
		return WEFT_OK;
	}
	if (rd_int(r, &v))
		return WEFT_EPROTO;
	if (v < 0) {
		if (-v > (int64_t)seq)
			return WEFT_EPROTO;
		x->a = SELF;
		x->s = (uint32_t)((int64_t)seq + v);
		return WEFT_OK;
	}
	if (v >= nag)
		return WEFT_EPROTO;
	x->a = (uint32_t)v;
	return read_u32(r, &x->s);
}

/* Reads one op; st[] and *prev carry the per-agent stream state (see
 * write_op). Refs come back in table space (SELF = the op's agent). */
static int read_op(struct mp_reader *r, uint32_t nag, struct sst *st, uint32_t *prev, struct rop *o)
{
	uint64_t h;
	struct sst *s;
	bool cont;
	int rc;

	if (rd_uint(r, &h))
		return WEFT_EPROTO;
	if (h & H_SAME) {
		if (*prev == NONE)
			return WEFT_EPROTO;
		o->aref = *prev;
	} else if (read_u32(r, &o->aref) || o->aref >= nag) {
		return WEFT_EPROTO;
	}
	s = &st[o->aref];
	*prev = o->aref;
	o->kind = (uint32_t)(h & 3);
	cont = (h & H_CONT) != 0;
	if (h & H_IMPLICIT) {
		if (s->exp == NONE)
			return WEFT_EPROTO;
		o->seq = s->exp;
	} else if (read_u32(r, &o->seq)) {
		return WEFT_EPROTO;
	}
	h >>= 5;
	if (h == 0 || h > WEFT_TEXT_MAX_SEQ || (uint64_t)o->seq + h > WEFT_TEXT_MAX_SEQ)
		return WEFT_EPROTO;
	o->len = (uint32_t)h;
	o->s = NULL;
	o->slen = 0;
	if (cont) {
		/* only an insert right after an insert of the same agent */
		if (o->kind == K_DEL_FWD || o->kind == K_DEL_BACK || s->lor.a == BAD ||
		    s->exp != o->seq || o->seq == 0)
			return WEFT_EPROTO;
		o->x.a = SELF;
		o->x.s = o->seq - 1;
		o->orr = s->lor;
	} else {
		rc = read_ref(r, nag, o->seq, &o->x);
		if (rc)
			return rc;
		if (o->kind == K_INS || o->kind == K_TOMB) {
			rc = read_ref(r, nag, o->seq, &o->orr);
			if (rc)
				return rc;
		}
	}
	s->exp = o->seq + o->len;
	s->lor.a = BAD;
	if (o->kind == K_INS || o->kind == K_TOMB) {
		/* a SELF ref stays meaningful: the next cont op is the same agent's */
		s->lor = o->orr;
		if (o->kind == K_TOMB)
			return WEFT_OK;
		if (weft__mp_read_str(r, &o->s, &o->slen))
			return WEFT_EPROTO;
		if (o->slen > WEFT_TEXT_MAX_CONTENT ||
		    utf8_cps((const uint8_t *)o->s, o->slen) != o->len)
			return WEFT_EPROTO;
	} else {
		if (o->x.a == NONE)
			return WEFT_EPROTO;
		if (o->kind == K_DEL_FWD && (uint64_t)o->x.s + o->len - 1 > UINT32_MAX)
			return WEFT_EPROTO;
		if (o->kind == K_DEL_BACK && o->x.s < o->len - 1)
			return WEFT_EPROTO;
	}
	return WEFT_OK;
}

static void sst_reset(struct sst *st, uint32_t n, uint32_t *prev)
{
	uint32_t i;

	for (i = 0; i < n; i++) {
		st[i].exp = NONE;
		st[i].lor.a = BAD;
	}
	*prev = n ? 0 : NONE; /* SAME at the first op means table agent 0 */
}

/* The agent of a compact update's ops, supplied by the caller. */
struct who {
	uint64_t replica;
	uint32_t inc;
};

/*
 * Header: the form and the agent table's size. *nag receives the size of
 * the table in index space, *j0 the index of its first entry in the bytes:
 * 0 for a self-contained update, 1 for a compact one (only if `compact`),
 * whose index 0 is the supplied agent and which may have no header at all.
 */
static int read_header(struct mp_reader *r, bool compact, uint32_t *nag, uint32_t *j0)
{
	struct mp_reader save = *r;
	uint64_t fmt;

	*j0 = 0;
	if (weft__mp_read_uint(r, &fmt))
		return WEFT_EPROTO;
	if (compact && fmt >= 32) {
		*r = save; /* the first op's header: no table */
		*nag = 1;
		*j0 = 1;
		return WEFT_OK;
	}
	if (fmt != 1 && !(compact && fmt == 2))
		return WEFT_EPROTO;
	if (read_u32(r, nag) || *nag > weft__mp_reader_left(r) / 2)
		return WEFT_EPROTO;
	if (fmt == 2) {
		/* other agents: at least one, or the table would be left out */
		if (*nag == 0 || *nag >= WEFT_TEXT_MAX_AGENTS)
			return WEFT_EPROTO;
		(*nag)++;
		*j0 = 1;
	} else if (*nag > WEFT_TEXT_MAX_AGENTS) {
		return WEFT_EPROTO;
	}
	return WEFT_OK;
}

/*
 * Applies one update: validates it all, then applies op by op. With `who`,
 * a compact update is accepted too, its ops being who's. Returns R_DONE,
 * R_MISSING (stopped at an op that is not ready) or an error.
 */
static int apply_one(struct weft_text *t, const uint8_t *data, size_t len, bool prevalidate,
                     const struct who *who)
{
	struct mp_reader r, v;
	struct rop o;
	struct sst *st;
	uint32_t nag, j0, i, *map = NULL, prev;
	uint64_t rep, inc;
	int rc;

	if (who && len == 0)
		return R_DONE; /* a compact update without ops */
	weft__mp_reader_init(&r, data, len);
	rc = read_header(&r, who != NULL, &nag, &j0);
	if (rc)
		return rc;
	map = weft__malloc(t->al, (size_t)(nag ? nag : 1) * (sizeof(*map) + sizeof(*st)));
	if (!map)
		return WEFT_ENOMEM;
	st = (struct sst *)(void *)(map + (nag ? nag : 1));
	/* validate everything before touching the replica (a load does not:
	 * its replica is thrown away on error) */
	v = r;
	rc = WEFT_EPROTO;
	for (i = j0; i < nag; i++) {
		if (weft__mp_read_uint(&v, &rep) || weft__mp_read_uint(&v, &inc) ||
		    inc > UINT32_MAX)
			goto out_free;
	}
	sst_reset(st, nag, &prev);
	while (prevalidate && weft__mp_reader_left(&v)) {
		rc = read_op(&v, nag, st, &prev, &o);
		if (rc == WEFT_OK && j0 && o.aref != 0)
			rc = WEFT_EPROTO; /* a compact update holds only who's ops */
		if (rc)
			goto out_free;
	}
	if (j0 && (rc = weft__text_agent_get(t, who->replica, who->inc, &map[0])) != WEFT_OK)
		goto out_free;
	for (i = j0; i < nag; i++) {
		weft__mp_read_uint(&r, &rep);
		weft__mp_read_uint(&r, &inc);
		rc = weft__text_agent_get(t, rep, (uint32_t)inc, &map[i]);
		if (rc)
			goto out_free;
	}
	rc = weft__text_agents_distinct(t, map, nag);
	if (rc)
		goto out_free;
	sst_reset(st, nag, &prev);
	rc = R_DONE;
	while (weft__mp_reader_left(&r)) {
		rc = read_op(&r, nag, st, &prev, &o);
		if (rc == WEFT_OK && j0 && o.aref != 0)
			rc = WEFT_EPROTO; /* only without prevalidation */
		if (rc)
			break;
		rc = weft__text_apply_op(t, &o, map);
		if (rc != R_DONE)
			break;
	}
out_free:
	weft__free(t->al, map);
	return rc;
}

static bool pend_same(const struct pend *p, const void *data, size_t len, const struct who *who)
{
	if (p->len != len || memcmp(p->data, data, len) != 0 || p->has_agent != (who != NULL))
		return false;
	return !who || (p->replica == who->replica && p->inc == who->inc);
}

static int pend_add(struct weft_text *t, const void *data, size_t len, const struct who *who)
{
	uint8_t *copy;
	size_t i;
	int rc;

	for (i = 0; i < t->npend; i++) {
		if (pend_same(&t->pend[i], data, len, who))
			return WEFT_OK;
	}
	if (len > WEFT_TEXT_MAX_PENDING - t->pend_bytes)
		return WEFT_ETOOBIG;
	rc = grow(t->al, (void **)&t->pend, &t->cappend, t->npend + 1, sizeof(*t->pend));
	if (rc)
		return rc;
	copy = weft__malloc(t->al, len);
	if (!copy)
		return WEFT_ENOMEM;
	memcpy(copy, data, len);
	t->pend[t->npend].data = copy;
	t->pend[t->npend].len = len;
	t->pend[t->npend].has_agent = who != NULL;
	t->pend[t->npend].replica = who ? who->replica : 0;
	t->pend[t->npend].inc = who ? who->inc : 0;
	t->npend++;
	t->pend_bytes += len;
	return WEFT_OK;
}

static void pend_drop(struct weft_text *t, size_t i)
{
	t->pend_bytes -= t->pend[i].len;
	weft__free(t->al, t->pend[i].data);
	t->pend[i] = t->pend[--t->npend];
}

/* Retries buffered updates until none makes progress. */
static int pend_retry(struct weft_text *t)
{
	bool progress = true;
	size_t i;
	int rc;

	while (progress) {
		progress = false;
		for (i = 0; i < t->npend;) {
			uint64_t before = 0;
			uint32_t a;
			for (a = 0; a < t->nagents; a++)
				before += t->agents[a].next;
			const struct pend *p = &t->pend[i];
			struct who w = {p->replica, p->inc};
			rc = apply_one(t, p->data, p->len, true, p->has_agent ? &w : NULL);
			if (rc == WEFT_ENOMEM)
				return rc;
			if (rc == R_MISSING) {
				uint64_t after = 0;
				for (a = 0; a < t->nagents; a++)
					after += t->agents[a].next;
				if (after != before)
					progress = true;
				i++;
				continue;
			}
			/* done, or invalid against our state: drop it */
			pend_drop(t, i);
			progress = true;
		}
	}
	return WEFT_OK;
}

static int apply_update(struct weft_text *t, const void *data, size_t len, const struct who *who)
{
	int rc;

	if (!data && len)
		return WEFT_EINVAL;
	rc = apply_one(t, data, len, true, who);
	if (rc == R_MISSING) {
		/* it may still have applied a prefix that others wait for */
		rc = pend_add(t, data, len, who);
		if (rc)
			return rc;
	} else if (rc != R_DONE) {
		return rc;
	}
	if (t->npend)
		return pend_retry(t);
	return WEFT_OK;
}

int weft__text_apply(struct weft_text *t, const void *data, size_t len)
{
	return apply_update(t, data, len, NULL);
}

int weft__text_apply_from(struct weft_text *t, uint64_t replica, uint32_t incarnation,
                          const void *data, size_t len)
{
	struct who w = {replica, incarnation};

	return apply_update(t, data, len, &w);
}

int weft__text_load(const struct weft_alloc *alloc, uint64_t replica, uint32_t incarnation,
                    const void *data, size_t len, struct weft_text **out)
{
	struct weft_text *t;
	int rc;

	if (!out || (!data && len))
		return WEFT_EINVAL;
	rc = weft__text_new(alloc, replica, incarnation, &t);
	if (rc)
		return rc;
	rc = apply_one(t, data, len, false, NULL);
	if (rc == R_MISSING || rc == WEFT_EPROTO)
		rc = WEFT_ECORRUPT;
	if (rc) {
		weft__text_free(t);
		return rc;
	}
	*out = t;
	return WEFT_OK;
}
