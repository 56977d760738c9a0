/*
 * text.c - collaborative plain text: a sequence CRDT of the Fugue/YATA
 * family (FugueMax, which is Yjs's YATA with the "YjsMod" right-origin rule
 * of diamond-types and reference-crdts).
 *
 * Model. Every op of every agent gets an id (agent, seq): agents are
 * (replica, incarnation) pairs, mapped to a local index in order of first
 * sight (index 0 is the local agent); seq counts that agent's ops from 0, and
 * inserts and deletes share the counter. An inserted code point is an item
 * with two origins: origin_left, the item just before it when it was typed
 * (or none = start), and origin_right, the item that followed that one in
 * the replica's full sequence, tombstones included (or none = end). Deleting
 * marks items deleted (tombstones stay for ever); a deletion names its target
 * ids, so deleting twice is harmless.
 *
 * Integration (remote insert of item X, FugueMax/YjsMod): start right after
 * X.origin_left and scan the items o up to X.origin_right:
 *   - o.origin_left before X.origin_left: stop, X goes here;
 *   - o.origin_left after X.origin_left: o lies in a subtree we are passing,
 *     keep going;
 *   - same origin_left: if o.origin_right is before X.origin_right, o might
 *     be a sibling that sorts after X: remember this spot (if not already
 *     remembered) and keep going; if o.origin_right is after, forget it and
 *     keep going; if both origin_right are equal, X goes before o iff
 *     X.agent < o.agent (replica, then incarnation), else forget and keep
 *     going.
 * X is placed at the remembered spot if any, else where the scan stopped.
 * Local inserts set origin_right to the next item of the full sequence, so
 * the scan stops at once and a local insert lands where typed.
 *
 * Merge laws. The position of every item is a function of the set of items
 * (the scan only compares positions of items both replicas hold, and the
 * result is the same whatever order concurrent siblings arrived in: this is
 * FugueMax, proved to converge in Weidner & Kleppmann, "The Art of the
 * Fugue"); the deleted flag is an OR. So applying ops is commutative (for
 * ops whose dependencies are present), associative and idempotent.
 *
 * Non-interleaving. FugueMax is maximally non-interleaving: a run typed
 * forwards is a chain of right children (each item's origin_left is the
 * previous one), so another agent's concurrent run at the same spot, having
 * the same origin_left for its first item, sorts wholly before or wholly
 * after it (the tie-break decides at the first items, and the rest of each
 * run is passed as a subtree). Typed backwards, every item of A's run has
 * the same origin_left X and, as origin_right, the item A typed before it;
 * only A's first item has the original right neighbour Y. An item of B's
 * run arriving with origin_left X scans past A's later items (same
 * origin_left, origin_right before Y: the spot before them is remembered)
 * up to A's first item (same origin_right Y: the agent tie-break), so it
 * lands before the whole of A's run or after all of it, never inside: each
 * backward run stays together as a chain of left children (Fugue's tree).
 *
 * Representation. Items are held as runs: consecutive seqs of one agent
 * where every item's origin_left is its predecessor, all share one
 * origin_right and one deleted flag, and the UTF-8 bytes are contiguous in
 * the agent's content buffer. Runs sit in document order in fixed-capacity
 * chunks (an array of chunk pointers, each chunk counting its visible code
 * points), split on demand; runs are never removed, so chunks are never
 * empty. Invariants:
 *   - chunks[i]->idx == i; 1 <= chunks[i]->n <= CHUNK_CAP (a lone first
 *     chunk may be empty);
 *   - chunk->vis is the sum of len over its live runs; t->vis_len, t->vis_bytes
 *     are the totals (no per-chunk byte counts are kept); cc_vis is the
 *     visible start of chunk cc_ci;
 *   - position index: fen[1..nchunks] is a Fenwick (binary indexed) tree
 *     of the chunks' vis, less a pending change fen_pd of chunk fen_pci;
 *     nodes up to fen_valid are current: for 1 <= i <= fen_valid, fen[i] is
 *     the sum of chunks[j]->vis for i - lowbit(i) <= j < i, minus fen_pd if
 *     fen_pci is one of those j; capfen >= nchunks + 1 always;
 *   - each agent's op log is sorted by seq and covers [0, next) exactly;
 *     each insert op carries "fragments": sorted (offset, chunk) intervals,
 *     the first at offset 0 and neighbours in different chunks, telling
 *     which chunk holds each of its items, which gives the id -> run lookup
 *     in O(log ops + log fragments + CHUNK_CAP);
 *   - the global log lists (agent, op) in the order ops were applied, a
 *     causal order; only its last entry may grow by coalescing.
 * Position lookup first tries the last chunk used and a few neighbours
 * (edits are local: typing stays O(CHUNK_CAP)), else descends the Fenwick
 * tree: O(log chunks + CHUNK_CAP) wherever the previous edit was. Every
 * change of a chunk's vis (insert, delete) goes through vis_add, which
 * updates the tree in O(log chunks) (deferred while the same chunk keeps
 * changing, so typing in one place pays O(1)); run splits and merges
 * inside a chunk leave vis unchanged. A split of chunk ci shifts the index
 * of every later chunk, which a Fenwick tree cannot absorb, so it marks
 * the nodes from ci on stale (fen_valid) and the next lookup that misses
 * the cache recomputes them, O(chunks - ci), without allocating
 * (chunks_reserve sized fen). This is amortised cheaply: a split already
 * costs O(chunks - ci) (memmove of the pointer array, renumbering idx), so
 * the rebuild only adds a constant factor, and splits are rare: a split
 * leaves two chunks with about CHUNK_CAP/2 free slots each, so there is at
 * most about one per CHUNK_CAP/2 new runs, i.e. O(chunks / (CHUNK_CAP/2))
 * per run created; a burst of splits (remote integration never looks up
 * positions) pays for one rebuild, from the leftmost split. A counted
 * B-tree over chunks would make splits O(log n) too, but would replace the
 * chunk indexes that locations, fragments and the id lookup rely on. Id
 * lookup first tries the runs next to the last one found or placed
 * (checked, so a stale hint only misses).
 *
 * Causality. An op is applied only once its agent's previous ops and the
 * items it references are present; updates holding ops that are not ready
 * are buffered (copied, up to WEFT_TEXT_MAX_PENDING bytes) and retried after
 * every later successful apply (see weft__text_apply).
 *
 * Failures. Every step that allocates does so before it changes anything
 * (chunk splits reserve fragment room first and are neutral on their own),
 * so WEFT_ENOMEM leaves a consistent replica; a multi-op call may have
 * applied a prefix of its ops, each recorded like any other op.
 *
 * Encodings: see text_codec.c.
 */
#include "core/text_int.h"

/* ---- small helpers ---- */

static int agent_cmp(const struct weft_text *t, uint32_t x, uint32_t y)
{
	const struct agent *a = &t->agents[x], *b = &t->agents[y];

	if (a->replica != b->replica)
		return a->replica < b->replica ? -1 : 1;
	if (a->inc != b->inc)
		return a->inc < b->inc ? -1 : 1;
	return 0;
}

static inline uint32_t agent_hash(uint64_t replica, uint32_t inc)
{
	uint64_t h = (replica ^ ((uint64_t)inc << 32 | inc)) * 0x9e3779b97f4a7c15ull;

	return (uint32_t)(h >> 32);
}

/* Open-addressing index (linear probing) of agents by (replica, inc). */
int weft__text_agent_find(const struct weft_text *t, uint64_t replica, uint32_t inc, uint32_t *idx)
{
	uint32_t m, h, i;

	if (!t->ahash)
		return 0;
	m = t->ahcap - 1;
	for (h = agent_hash(replica, inc) & m;; h = (h + 1) & m) {
		i = t->ahash[h];
		if (i == NONE)
			return 0;
		if (t->agents[i].replica == replica && t->agents[i].inc == inc) {
			*idx = i;
			return 1;
		}
	}
}

/* Makes the index hold n agents at <= 50% load. */
static int agent_index_reserve(struct weft_text *t, uint32_t n)
{
	uint32_t cap = t->ahcap ? t->ahcap : 16, i, h;
	uint32_t *nh;

	while (cap < 2 * n)
		cap *= 2;
	if (cap == t->ahcap)
		return WEFT_OK;
	nh = weft__malloc(t->al, cap * sizeof(*nh));
	if (!nh)
		return WEFT_ENOMEM;
	memset(nh, 0xff, cap * sizeof(*nh));
	for (i = 0; i < t->nagents; i++) {
		for (h = agent_hash(t->agents[i].replica, t->agents[i].inc) & (cap - 1);
		     nh[h] != NONE; h = (h + 1) & (cap - 1))
			;
		nh[h] = i;
	}
	weft__free(t->al, t->ahash);
	t->ahash = nh;
	t->ahcap = cap;
	return WEFT_OK;
}

int weft__text_agent_get(struct weft_text *t, uint64_t replica, uint32_t inc, uint32_t *idx)
{
	size_t cap = t->capagents, need = (size_t)t->nagents + 1;
	struct agent *ag;
	int rc;

	if (weft__text_agent_find(t, replica, inc, idx))
		return WEFT_OK;
	if (t->nagents >= WEFT_TEXT_MAX_AGENTS)
		return WEFT_ETOOBIG;
	rc = grow(t->al, (void **)&t->agents, &cap, need, sizeof(*t->agents));
	if (rc == WEFT_OK)
		rc = agent_index_reserve(t, t->nagents + 1);
	if (rc)
		return rc;
	t->capagents = (uint32_t)cap;
	ag = &t->agents[t->nagents];
	memset(ag, 0, sizeof(*ag));
	ag->replica = replica;
	ag->inc = inc;
	{
		uint32_t m = t->ahcap - 1, h;
		for (h = agent_hash(replica, inc) & m; t->ahash[h] != NONE; h = (h + 1) & m)
			;
		t->ahash[h] = t->nagents;
	}
	*idx = t->nagents++;
	return WEFT_OK;
}

/* WEFT_EPROTO if an update's agent table names one agent twice. */
int weft__text_agents_distinct(struct weft_text *t, const uint32_t *map, uint32_t n)
{
	uint8_t *seen;
	uint32_t i;
	int rc = WEFT_OK;

	if (n < 2)
		return WEFT_OK;
	seen = weft__zalloc(t->al, t->nagents);
	if (!seen)
		return WEFT_ENOMEM;
	for (i = 0; i < n && rc == WEFT_OK; i++) {
		if (seen[map[i]])
			rc = WEFT_EPROTO;
		seen[map[i]] = 1;
	}
	weft__free(t->al, seen);
	return rc;
}

/* Index of the op holding seq s of agent ag (s < ag->next). */
/* ---- fragments ---- */

static int frag_reserve(const struct weft_alloc *al, struct op *o, uint32_t need)
{
	struct frag *v;
	uint32_t ncap;

	if (need <= FRAG_INLINE || need <= o->fcap)
		return WEFT_OK;
	ncap = o->fcap ? o->fcap : 2 * FRAG_INLINE;
	while (ncap < need)
		ncap *= 2;
	if (o->fcap) {
		v = weft__realloc(al, o->f.v, ncap * sizeof(*v));
		if (!v)
			return WEFT_ENOMEM;
	} else {
		v = weft__malloc(al, ncap * sizeof(*v));
		if (!v)
			return WEFT_ENOMEM;
		memcpy(v, o->f.in, o->nfrag * sizeof(*v));
	}
	o->f.v = v;
	o->fcap = ncap;
	return WEFT_OK;
}

static struct chunk *frag_chunk(struct op *o, uint32_t off)
{
	struct frag *f = op_frags(o);
	uint32_t lo = 0, hi = o->nfrag;

	while (hi - lo > 1) {
		uint32_t mid = lo + (hi - lo) / 2;
		if (f[mid].off <= off)
			lo = mid;
		else
			hi = mid;
	}
	return f[lo].c;
}

/*
 * Items [a, b) of insert op o now live in chunk c. Capacity for nfrag + 2
 * entries must have been reserved (frag_reserve), so this cannot fail.
 */
static void frag_set(struct op *o, uint32_t a, uint32_t b, struct chunk *c)
{
	struct frag *f = op_frags(o), mid[3];
	uint32_t n = o->nfrag, i = 0, j, k, nm = 0, endj, w, r, lo, hi;

	if (n == 0) {
		f[0].off = 0;
		f[0].c = c;
		o->nfrag = 1;
		return;
	}
	/* i: fragment holding a (binary search: one op may span thousands of
	 * chunks); j: fragment holding b - 1 */
	for (lo = 0, hi = n; hi - lo > 1;) {
		uint32_t m = lo + (hi - lo) / 2;
		if (f[m].off <= a)
			lo = m;
		else
			hi = m;
	}
	i = lo;
	j = i;
	while (j + 1 < n && f[j + 1].off < b)
		j++;
	if (f[i].c == c && (j == i)) {
		return; /* already there */
	}
	endj = j + 1 < n ? f[j + 1].off : o->len;
	if (f[i].off < a)
		mid[nm++] = f[i];
	mid[nm].off = a;
	mid[nm++].c = c;
	if (b < endj) {
		mid[nm].off = b;
		mid[nm++].c = f[j].c;
	}
	/* replace f[i..j] (j - i + 1 entries) by mid[0..nm) */
	k = j - i + 1;
	if (nm != k)
		memmove(f + i + nm, f + j + 1, (n - j - 1) * sizeof(*f));
	memcpy(f + i, mid, nm * sizeof(*f));
	n = n - k + nm;
	/* merge neighbours with the same chunk: no two neighbours shared one
	 * before, so only f[i - 1 .. i + nm] can need it */
	lo = i > 0 ? i - 1 : 0;
	hi = i + nm + 1 < n ? i + nm + 1 : n;
	for (w = lo + 1, r = lo + 1; r < hi; r++) {
		if (f[w - 1].c == f[r].c)
			continue;
		f[w++] = f[r];
	}
	if (w < hi)
		memmove(f + w, f + hi, (n - hi) * sizeof(*f));
	o->nfrag = n - (hi - w);
}

/* ---- position index: a Fenwick tree over the chunks' visible counts ---- */

static inline uint32_t lowbit(uint32_t i)
{
	return i & (0u - i);
}

/* Adds the pending change of one chunk's vis to the tree, O(log n). */
static void fen_flush(struct weft_text *t)
{
	uint32_t i;

	for (i = t->fen_pci + 1; t->fen_pd && i <= t->nchunks; i += lowbit(i))
		t->fen[i] = (uint64_t)((int64_t)t->fen[i] + t->fen_pd);
	t->fen_pd = 0;
}

/*
 * Recomputes the stale nodes fen[fen_valid + 1 .. nchunks] from the chunks
 * and the valid nodes below them: node j (chunks j - lowbit(j) .. j - 1) is
 * chunk j - 1 plus nodes j - 1, j - 2, j - 4, .. j - lowbit(j) / 2, so the
 * loop reads each stale chunk once and O(1) nodes per chunk on average.
 * The pending change goes in first.
 */
static void fen_rebuild(struct weft_text *t)
{
	uint64_t *f = t->fen, sum;
	uint32_t n = t->nchunks, j, k;

	fen_flush(t);
	for (j = t->fen_valid + 1; j <= n; j++) {
		sum = t->chunks[j - 1]->vis;
		for (k = 1; k < lowbit(j); k <<= 1)
			sum += f[j - k];
		f[j] = sum;
	}
	t->fen_valid = n;
}

/*
 * The chunk holding visible code point pos (< vis_len), and in *start the
 * visible count of the chunks before it: a descent over the tree, O(log n).
 */
static uint32_t fen_find(struct weft_text *t, uint64_t pos, uint64_t *start)
{
	const uint64_t *f = t->fen;
	uint32_t n = t->nchunks, i = 0, step = 1;
	uint64_t p = pos;

	if (t->fen_valid < n)
		fen_rebuild(t);
	else
		fen_flush(t);
	while (step <= n / 2)
		step <<= 1;
	for (; step; step >>= 1) {
		if (i + step <= n && f[i + step] <= p) {
			i += step;
			p -= f[i];
		}
	}
	*start = pos - p;
	return i; /* chunks [0, i) hold pos - p <= pos code points, chunk i the rest */
}

/* ---- chunks ---- */

/*
 * Every change of a chunk's visible count goes through here (splits
 * instead mark part of the index stale). Changes to one chunk accumulate
 * in fen_pd and reach the tree when another chunk changes or a lookup
 * needs it, so typing in one place stays O(1) per keystroke. (Flushing
 * into stale nodes is harmless: they are recomputed before use; a change
 * to a chunk only stale nodes cover is not kept at all, so replicas that
 * never look up positions never pay for the index.)
 */
static inline void vis_add(struct weft_text *t, uint32_t ci, int64_t d, int64_t db)
{
	t->chunks[ci]->vis = (uint64_t)((int64_t)t->chunks[ci]->vis + d);
	t->vis_len = (uint64_t)((int64_t)t->vis_len + d);
	t->vis_bytes = (uint64_t)((int64_t)t->vis_bytes + db);
	if (ci < t->cc_ci)
		t->cc_vis = (uint64_t)((int64_t)t->cc_vis + d);
	if (ci >= t->fen_valid)
		return; /* only stale nodes cover ci: nothing to keep */
	if (ci != t->fen_pci) {
		fen_flush(t);
		t->fen_pci = ci;
	}
	t->fen_pd += d;
}

/* Room for n chunks, and for their position index (so rebuilding it
 * never allocates). */
static int chunks_reserve(struct weft_text *t, size_t n)
{
	size_t cap = t->capchunks, fcap = t->capfen;
	int rc = grow(t->al, (void **)&t->chunks, &cap, n, sizeof(*t->chunks));

	if (rc == WEFT_OK)
		t->capchunks = (uint32_t)cap;
	if (rc == WEFT_OK)
		rc = grow(t->al, (void **)&t->fen, &fcap, n + 1, sizeof(*t->fen));
	if (rc == WEFT_OK)
		t->capfen = (uint32_t)fcap;
	return rc;
}

/*
 * Makes room for k more runs in the chunk of *l, splitting it in two when
 * full; *l is moved to follow its position. Semantically neutral; on
 * WEFT_ENOMEM nothing changed.
 */
static int ensure_room(struct weft_text *t, struct loc *l, uint32_t k)
{
	struct chunk *c = t->chunks[l->ci], *nc;
	uint32_t h, i, lo, hi, first[CHUNK_CAP];
	size_t j;
	struct op *o;
	int rc;

	if (c->n + k <= CHUNK_CAP)
		return WEFT_OK;
	rc = chunks_reserve(t, (size_t)t->nchunks + 1);
	if (rc)
		return rc;
	h = c->n / 2;
	/* reserve fragment room for every op touched by the moving runs (each
	 * run can add two fragments to each op it overlaps) */
	for (i = h; i < c->n; i++) {
		struct run *r = &c->runs[i];
		struct agent *ag = &t->agents[r->agent];
		first[i] = (uint32_t)op_find(ag, r->seq);
		for (j = first[i]; j < ag->nops && ag->ops[j].seq < r->seq + r->len; j++)
			ag->ops[j].tmp += 2;
	}
	rc = WEFT_OK;
	for (i = h; i < c->n; i++) {
		struct run *r = &c->runs[i];
		struct agent *ag = &t->agents[r->agent];
		for (j = first[i]; j < ag->nops && ag->ops[j].seq < r->seq + r->len; j++) {
			o = &ag->ops[j];
			if (o->tmp && rc == WEFT_OK)
				rc = frag_reserve(t->al, o, o->nfrag + o->tmp);
			o->tmp = 0;
		}
	}
	if (rc)
		return rc;
	nc = weft__malloc(t->al, sizeof(*nc));
	if (!nc)
		return WEFT_ENOMEM;
	nc->n = c->n - h;
	nc->vis = 0;
	memcpy(nc->runs, c->runs + h, nc->n * sizeof(struct run));
	c->n = h;
	for (i = 0; i < nc->n; i++) {
		if (!nc->runs[i].del)
			nc->vis += nc->runs[i].len;
	}
	c->vis -= nc->vis;
	/* the position index: fen_pci names a chunk by its old index, so the
	 * pending change goes in first; nodes covering chunks >= l->ci are
	 * then stale, recomputed on the next lookup that needs them */
	fen_flush(t);
	if (t->fen_valid > l->ci)
		t->fen_valid = l->ci;
	memmove(t->chunks + l->ci + 2, t->chunks + l->ci + 1,
	        (t->nchunks - l->ci - 1) * sizeof(*t->chunks));
	t->chunks[l->ci + 1] = nc;
	t->nchunks++;
	for (i = l->ci + 1; i < t->nchunks; i++)
		t->chunks[i]->idx = i;
	if (t->cc_ci > l->ci)
		t->cc_ci++;
	for (i = 0; i < nc->n; i++) {
		struct run *r = &nc->runs[i];
		struct agent *ag = &t->agents[r->agent];
		for (j = first[h + i]; j < ag->nops && ag->ops[j].seq < r->seq + r->len; j++) {
			o = &ag->ops[j];
			lo = r->seq > o->seq ? r->seq - o->seq : 0;
			hi = r->seq + r->len < o->seq + o->len ? r->seq + r->len - o->seq : o->len;
			frag_set(o, lo, hi, nc);
		}
	}
	if (l->ri >= h) {
		l->ci++;
		l->ri -= h;
	}
	return WEFT_OK;
}

/*
 * Splits the run at l (l->off > 0) so that l->off starts a run; room for one
 * run must exist. l then points at the new run, offset 0.
 */
static void split_run(struct weft_text *t, struct loc *l)
{
	struct chunk *c = t->chunks[l->ci];
	struct run *r = &c->runs[l->ri], *n;
	const struct agent *ag = &t->agents[r->agent];
	uint32_t k = l->off, kb = 0;

	/* A run without content (deleted, loaded without it) has no bytes to
	 * split, and its boff means nothing. */
	if (r->blen)
		kb = r->blen == r->len ? k : (uint32_t)utf8_skip(ag->content + r->boff, r->blen, k);
	memmove(r + 2, r + 1, (c->n - l->ri - 1) * sizeof(*r));
	c->n++;
	n = r + 1;
	*n = *r;
	n->seq = r->seq + k;
	n->len = r->len - k;
	n->ol.a = r->agent;
	n->ol.s = r->seq + k - 1;
	if (r->blen) {
		n->boff = r->boff + kb;
		n->blen = r->blen - kb;
		r->blen = kb;
	}
	r->len = k;
	l->ri++;
	l->off = 0;
}

/* True if run b continues run a (same chunk, a just before b). */
static inline bool run_chains(const struct run *a, const struct run *b)
{
	return a->agent == b->agent && a->seq + a->len == b->seq && b->ol.a == a->agent &&
	       b->ol.s == b->seq - 1 && id_eq(a->orr, b->orr) && a->del == b->del &&
	       a->boff + a->blen == b->boff;
}

/* Merges run ri of chunk ci into its predecessor if it continues it. */
static void try_merge(struct weft_text *t, uint32_t ci, uint32_t ri)
{
	struct chunk *c = t->chunks[ci];
	struct run *a, *b;

	if (ri == 0 || ri >= c->n)
		return;
	a = &c->runs[ri - 1];
	b = &c->runs[ri];
	if (!run_chains(a, b))
		return;
	a->len += b->len;
	a->blen += b->blen;
	memmove(b, b + 1, (c->n - ri - 1) * sizeof(*b));
	c->n--;
}

/* The location of item (a, s), which must be held (an insert's item). */
int weft__text_find_id(struct weft_text *t, struct id x, struct loc *l)
{
	struct agent *ag;
	struct chunk *c;
	struct op *o;
	uint32_t i;

	if (x.a >= t->nagents)
		return WEFT_EPROTO;
	ag = &t->agents[x.a];
	if (x.s >= ag->next)
		return R_MISSING;
	/* edits are local: try the runs around the last one found or placed
	 * (the hint may be stale; it is only trusted after this check) */
	if (t->hint_ci < t->nchunks) {
		static const int8_t near[] = {0, -1, 1, 2, -2, 3};
		c = t->chunks[t->hint_ci];
		for (i = 0; i < sizeof(near); i++) {
			uint32_t ri = t->hint_ri + (uint32_t)(int32_t)near[i];
			const struct run *r;
			if (ri >= c->n)
				continue;
			r = &c->runs[ri];
			if (r->agent == x.a && x.s - r->seq < r->len) {
				l->ci = t->hint_ci;
				l->ri = ri;
				l->off = x.s - r->seq;
				t->hint_ri = ri;
				return WEFT_OK;
			}
		}
	}
	o = &ag->ops[op_find(ag, x.s)];
	if (o->kind != K_INS)
		return WEFT_EPROTO;
	c = frag_chunk(o, x.s - o->seq);
	for (i = 0; i < c->n; i++) {
		struct run *r = &c->runs[i];
		if (r->agent == x.a && x.s >= r->seq && x.s - r->seq < r->len) {
			l->ci = c->idx;
			l->ri = i;
			l->off = x.s - r->seq;
			t->hint_ci = l->ci;
			t->hint_ri = i;
			return WEFT_OK;
		}
	}
	return WEFT_ECORRUPT; /* broken invariant */
}

/* Chunks walked from the last one used before asking the Fenwick tree. */
#define NEAR_WALK 4

/*
 * Location of the visible code point at index pos (< vis_len). Typing is
 * local, so the last chunk used and up to NEAR_WALK chunks either side are
 * tried first (O(1)); anything else is a descent of the Fenwick tree,
 * O(log chunks).
 */
static void find_vis(struct weft_text *t, uint64_t pos, struct loc *l)
{
	uint32_t ci = t->cc_ci, i, k;
	uint64_t start = t->cc_vis;
	struct chunk *c;

	for (k = 0; ci < t->nchunks; k++) {
		if (pos < start) {
			if (k == NEAR_WALK || ci == 0)
				break;
			ci--;
			start -= t->chunks[ci]->vis;
		} else if (pos - start >= t->chunks[ci]->vis) {
			if (k == NEAR_WALK || ci + 1 >= t->nchunks)
				break;
			start += t->chunks[ci]->vis;
			ci++;
		} else {
			goto found;
		}
	}
	ci = fen_find(t, pos, &start);
found:
	t->cc_ci = ci;
	t->cc_vis = start;
	c = t->chunks[ci];
	pos -= start;
	for (i = 0;; i++) {
		struct run *r = &c->runs[i];
		if (r->del)
			continue;
		if (pos < r->len)
			break;
		pos -= r->len;
	}
	l->ci = ci;
	l->ri = i;
	l->off = (uint32_t)pos;
}

/* Id of the first item at or after l (run boundary), NONE at the end. */
static struct id id_at(struct weft_text *t, struct loc l)
{
	struct id x = {NONE, 0};

	while (l.ci < t->nchunks && l.ri >= t->chunks[l.ci]->n) {
		l.ci++;
		l.ri = 0;
	}
	if (l.ci < t->nchunks) {
		struct run *r = run_at(t, l);
		x.a = r->agent;
		x.s = r->seq + l.off;
	}
	return x;
}

static int loc_cmp(struct loc x, struct loc y)
{
	if (x.ci != y.ci)
		return x.ci < y.ci ? -1 : 1;
	if (x.ri != y.ri)
		return x.ri < y.ri ? -1 : 1;
	if (x.off != y.off)
		return x.off < y.off ? -1 : 1;
	return 0;
}

/* ---- op log ---- */

static int log_reserve(struct weft_text *t)
{
	return grow(t->al, (void **)&t->log, &t->caplog, t->nlog + 1, sizeof(*t->log));
}

static int ops_reserve(struct weft_text *t, struct agent *ag)
{
	int rc = grow(t->al, (void **)&ag->ops, &ag->capops, ag->nops + 1, sizeof(*ag->ops));

	if (rc == WEFT_OK)
		rc = grow(t->al, (void **)&ag->opseq, &ag->capopseq, ag->nops + 1,
		          sizeof(*ag->opseq));
	return rc;
}

static inline bool op_is_last(const struct weft_text *t, uint32_t a)
{
	const struct agent *ag = &t->agents[a];

	return t->nlog && t->log[t->nlog - 1].a == a && t->log[t->nlog - 1].op == ag->nops - 1;
}

/* Appends a new op (capacity reserved by the caller). */
static struct op *op_push(struct weft_text *t, uint32_t a, const struct op *src)
{
	struct agent *ag = &t->agents[a];
	struct op *o = &ag->ops[ag->nops];

	*o = *src;
	o->nfrag = 0;
	o->fcap = 0;
	o->tmp = 0;
	ag->opseq[ag->nops] = o->seq;
	t->log[t->nlog].a = a;
	t->log[t->nlog].op = (uint32_t)ag->nops;
	t->nlog++;
	ag->nops++;
	return o;
}

/*
 * Puts items seq.. of agent a (a run r, not yet in the tree) at l, a run
 * boundary with room for one run, recording or extending the insert op.
 * Op log, global log and content room must be reserved; the op's fragment
 * vector needs room for 2 more.
 */
static void place(struct weft_text *t, struct loc l, const struct run *r, struct op *o)
{
	struct chunk *c = t->chunks[l.ci];
	uint32_t ri = l.ri;

	if (ri > 0 && run_chains(&c->runs[ri - 1], r)) {
		c->runs[ri - 1].len += r->len;
		c->runs[ri - 1].blen += r->blen;
		ri--;
	} else {
		memmove(c->runs + ri + 1, c->runs + ri, (c->n - ri) * sizeof(*r));
		c->runs[ri] = *r;
		c->n++;
	}
	t->hint_ci = l.ci;
	t->hint_ri = ri;
	if (!r->del)
		vis_add(t, l.ci, r->len, r->blen);
	frag_set(o, r->seq - o->seq, r->seq - o->seq + r->len, c);
}

/*
 * Records insert items (a, seq .. seq+len) as an op: extends the agent's
 * last op when it continues it and is the newest entry of the global log,
 * else pushes a new op. Capacity must be reserved.
 */
static struct op *op_record_ins(struct weft_text *t, const struct run *r)
{
	struct agent *ag = &t->agents[r->agent];
	struct op *last = ag->nops ? &ag->ops[ag->nops - 1] : NULL;

	if (last && last->kind == K_INS && op_is_last(t, r->agent) &&
	    last->seq + last->len == r->seq && r->ol.a == r->agent && r->ol.s == r->seq - 1 &&
	    id_eq(last->orr, r->orr) && last->boff + last->blen == r->boff) {
		last->len += r->len;
		last->blen += r->blen;
		return last;
	}
	struct op n = {.seq = r->seq,
	               .len = r->len,
	               .kind = K_INS,
	               .x = r->ol,
	               .orr = r->orr,
	               .boff = r->boff,
	               .blen = r->blen};
	return op_push(t, r->agent, &n);
}

/* Reserves what inserting one op of agent a into chunk c needs. */
static int reserve_ins(struct weft_text *t, uint32_t a, size_t bytes, struct chunk *c)
{
	struct agent *ag = &t->agents[a];
	struct op *last;
	int rc;

	if (ag->clen + bytes > WEFT_TEXT_MAX_CONTENT)
		return WEFT_ETOOBIG;
	rc = grow(t->al, (void **)&ag->content, &ag->ccap, ag->clen + bytes, 1);
	if (rc == WEFT_OK)
		rc = ops_reserve(t, ag);
	if (rc == WEFT_OK)
		rc = log_reserve(t);
	last = ag->nops ? &ag->ops[ag->nops - 1] : NULL;
	/* extending the last op adds a fragment only when it changes chunk */
	if (rc == WEFT_OK && last && last->kind == K_INS && op_frags(last)[last->nfrag - 1].c != c)
		rc = frag_reserve(t->al, last, last->nfrag + 2);
	return rc;
}

/* Finishes an insert whose run r goes at l (a boundary). */
static int insert_at(struct weft_text *t, struct loc l, struct run *r, const uint8_t *bytes)
{
	struct agent *ag = &t->agents[r->agent];
	struct op *o;
	int rc;

	/* room first: a chunk split may use fragment capacity */
	rc = ensure_room(t, &l, 1);
	if (rc == WEFT_OK)
		rc = reserve_ins(t, r->agent, r->blen, t->chunks[l.ci]);
	if (rc)
		return rc;
	if (r->boff != NONE) {
		if (r->blen)
			memcpy(ag->content + ag->clen, bytes, r->blen);
		r->boff = (uint32_t)ag->clen;
		ag->clen += r->blen;
	}
	ag->next = r->seq + r->len;
	o = op_record_ins(t, r);
	place(t, l, r, o);
	return WEFT_OK;
}

/* A chunk for the first run of an empty document. */
static int first_chunk(struct weft_text *t)
{
	struct chunk *c;
	int rc;

	if (t->nchunks)
		return WEFT_OK;
	rc = chunks_reserve(t, 1);
	if (rc)
		return rc;
	c = weft__malloc(t->al, sizeof(*c));
	if (!c)
		return WEFT_ENOMEM;
	c->n = 0;
	c->idx = 0;
	c->vis = 0;
	t->chunks[0] = c;
	t->nchunks = 1;
	t->cc_ci = 0;
	t->cc_vis = 0;
	t->fen_valid = 0;
	t->fen_pci = 0;
	t->fen_pd = 0;
	return WEFT_OK;
}

/*
 * Boundary just after item l (splitting its run if needed; may split
 * chunks). On return *l is a run boundary.
 */
static int cut_after(struct weft_text *t, struct loc *l)
{
	struct run *r = run_at(t, *l);
	int rc;

	if (l->off + 1 == r->len) {
		l->ri++;
		l->off = 0;
		return WEFT_OK;
	}
	l->off++;
	rc = ensure_room(t, l, 1);
	if (rc)
		return rc;
	split_run(t, l);
	return WEFT_OK;
}

/* ---- deletion ---- */

/*
 * Marks k items from l (inside one live run) deleted, splitting the run as
 * needed; on WEFT_ENOMEM nothing changed.
 */
static int mark_at(struct weft_text *t, struct loc l, uint32_t k)
{
	struct run *r;
	int rc;

	rc = ensure_room(t, &l, 2);
	if (rc)
		return rc;
	if (l.off > 0)
		split_run(t, &l);
	r = run_at(t, l);
	if (k < r->len) {
		struct loc m = l;
		m.off = k;
		split_run(t, &m);
		r = run_at(t, l);
	}
	r->del = 1;
	vis_add(t, l.ci, -(int64_t)r->len, -(int64_t)r->blen);
	try_merge(t, l.ci, l.ri + 1);
	try_merge(t, l.ci, l.ri);
	return WEFT_OK;
}

/* Marks items [s, s + n) of agent a deleted. They must all be items. */
static int mark_deleted(struct weft_text *t, uint32_t a, uint32_t s, uint32_t n)
{
	struct loc l;
	struct run *r;
	uint32_t k;
	int rc;

	while (n > 0) {
		rc = weft__text_find_id(t, (struct id){a, s}, &l);
		if (rc)
			return rc;
		r = run_at(t, l);
		k = r->len - l.off;
		if (k > n)
			k = n;
		if (!r->del) {
			rc = mark_at(t, l, k);
			if (rc)
				return rc;
		}
		s += k;
		n -= k;
	}
	return WEFT_OK;
}

/*
 * Checks that items [s, s + n) of agent a are all here: WEFT_OK, R_MISSING
 * (not yet), or WEFT_EPROTO (some of those ids are not insertions).
 */
static int items_ok(struct weft_text *t, uint32_t a, uint32_t s, uint32_t n)
{
	struct loc l;
	int rc;

	if (a >= t->nagents)
		return WEFT_EPROTO;
	if ((uint64_t)s + n > t->agents[a].next)
		return R_MISSING;
	while (n > 0) {
		const struct run *r;
		uint32_t k;

		rc = weft__text_find_id(t, (struct id){a, s}, &l);
		if (rc)
			return rc;
		r = run_at(t, l);
		k = r->len - l.off;
		if (k > n)
			k = n;
		s += k;
		n -= k;
	}
	return WEFT_OK;
}

/* ---- public: lifecycle ---- */

int weft__text_new(const struct weft_alloc *alloc, uint64_t replica, uint32_t incarnation,
                   struct weft_text **out)
{
	struct weft_text *t;
	uint32_t idx;

	if (!out)
		return WEFT_EINVAL;
	if (!alloc)
		alloc = weft__alloc_default();
	t = weft__zalloc(alloc, sizeof(*t));
	if (!t)
		return WEFT_ENOMEM;
	t->al = alloc;
	if (weft__text_agent_get(t, replica, incarnation, &idx) != WEFT_OK) {
		weft__text_free(t);
		return WEFT_ENOMEM;
	}
	*out = t;
	return WEFT_OK;
}

void weft__text_free(struct weft_text *t)
{
	uint32_t i;
	size_t j;

	if (!t)
		return;
	for (i = 0; i < t->nagents; i++) {
		struct agent *ag = &t->agents[i];
		for (j = 0; j < ag->nops; j++) {
			if (ag->ops[j].fcap)
				weft__free(t->al, ag->ops[j].f.v);
		}
		weft__free(t->al, ag->ops);
		weft__free(t->al, ag->opseq);
		weft__free(t->al, ag->content);
	}
	weft__free(t->al, t->agents);
	for (i = 0; i < t->nchunks; i++)
		weft__free(t->al, t->chunks[i]);
	weft__free(t->al, t->chunks);
	weft__free(t->al, t->fen);
	weft__free(t->al, t->log);
	for (j = 0; j < t->npend; j++)
		weft__free(t->al, t->pend[j].data);
	weft__free(t->al, t->pend);
	weft__free(t->al, t->amap);
	weft__free(t->al, t->sst);
	weft__free(t->al, t->ahash);
	weft__free(t->al, t);
}

size_t weft__text_len(const struct weft_text *t)
{
	return (size_t)t->vis_len;
}

size_t weft__text_byte_len(const struct weft_text *t)
{
	return (size_t)t->vis_bytes;
}

size_t weft__text_pending(const struct weft_text *t)
{
	return t->npend;
}

size_t weft__text_runs(const struct weft_text *t)
{
	size_t n = 0;
	uint32_t i;

	for (i = 0; i < t->nchunks; i++)
		n += t->chunks[i]->n;
	return n;
}

int weft__text_read(const struct weft_text *t, char *dst, size_t cap, size_t *len)
{
	size_t w = 0;
	uint32_t i, j;

	if (len)
		*len = (size_t)t->vis_bytes;
	if (cap < t->vis_bytes)
		return WEFT_ETOOBIG;
	for (i = 0; i < t->nchunks; i++) {
		const struct chunk *c = t->chunks[i];
		for (j = 0; j < c->n; j++) {
			const struct run *r = &c->runs[j];
			if (r->del)
				continue;
			memcpy(dst + w, t->agents[r->agent].content + r->boff, r->blen);
			w += r->blen;
		}
	}
	return WEFT_OK;
}

/* ---- local edits ---- */

int weft__text_insert(struct weft_text *t, size_t pos, const char *utf8, size_t len,
                      struct mp_buf *update)
{
	struct agent *ag = &t->agents[0];
	struct loc l;
	struct run r;
	size_t n;
	uint32_t from = ag->next;
	int rc;

	if (pos > t->vis_len || (!utf8 && len))
		return WEFT_EINVAL;
	if (len == 0)
		return WEFT_OK;
	if (!weft__utf8_valid(utf8, len))
		return WEFT_EINVAL;
	n = utf8_cps((const uint8_t *)utf8, len);
	if (n > WEFT_TEXT_MAX_SEQ - ag->next || len > WEFT_TEXT_MAX_CONTENT)
		return WEFT_ETOOBIG;
	/* the update's scratch first, so that encoding it cannot fail later */
	rc = update ? weft__text_scratch_reserve(t) : WEFT_OK;
	if (rc == WEFT_OK)
		rc = first_chunk(t);
	if (rc)
		return rc;
	memset(&r, 0, sizeof(r));
	r.agent = 0;
	r.seq = ag->next;
	r.len = (uint32_t)n;
	r.blen = (uint32_t)len;
	if (pos == 0) {
		r.ol.a = NONE;
		l.ci = 0;
		l.ri = 0;
		l.off = 0;
	} else {
		struct run *p;
		find_vis(t, pos - 1, &l);
		p = run_at(t, l);
		r.ol.a = p->agent;
		r.ol.s = p->seq + l.off;
		rc = cut_after(t, &l);
		if (rc)
			return rc;
	}
	r.orr = id_at(t, l);
	rc = insert_at(t, l, &r, (const uint8_t *)utf8);
	if (rc == WEFT_OK && update)
		weft__text_encode_local(t, from, update);
	return rc;
}

/* Records a deletion of targets x .. by the local agent (capacity reserved). */
static void op_record_del(struct weft_text *t, uint32_t a, uint32_t seq, struct id x, uint32_t k)
{
	struct agent *ag = &t->agents[a];
	struct op *last = ag->nops ? &ag->ops[ag->nops - 1] : NULL;

	if (last && last->kind != K_INS && op_is_last(t, a) && last->seq + last->len == seq &&
	    last->x.a == x.a) {
		if ((last->kind == K_DEL_FWD) && last->x.s + last->len == x.s) {
			last->len += k;
			return;
		}
		if (k == 1 && (last->kind == K_DEL_BACK || last->len == 1) &&
		    last->x.s >= last->len && last->x.s - last->len == x.s) {
			last->kind = K_DEL_BACK;
			last->len++;
			return;
		}
	}
	struct op n = {.seq = seq, .len = k, .kind = K_DEL_FWD, .x = x};
	op_push(t, a, &n);
}

int weft__text_delete(struct weft_text *t, size_t pos, size_t count, struct mp_buf *update)
{
	struct agent *ag = &t->agents[0];
	uint32_t from = ag->next;
	struct loc l;
	int rc = WEFT_OK;

	if (pos > t->vis_len || count > t->vis_len - pos)
		return WEFT_EINVAL;
	if (count > WEFT_TEXT_MAX_SEQ - ag->next)
		return WEFT_ETOOBIG;
	if (update && count) {
		rc = weft__text_scratch_reserve(t);
		if (rc)
			return rc;
	}
	while (count > 0) {
		struct run *r;
		struct id x;
		uint32_t k;

		find_vis(t, pos, &l);
		r = run_at(t, l);
		k = r->len - l.off;
		if (k > count)
			k = (uint32_t)count;
		x.a = r->agent;
		x.s = r->seq + l.off;
		rc = ops_reserve(t, ag);
		if (rc == WEFT_OK)
			rc = log_reserve(t);
		if (rc)
			break;
		/* marking first: it can fail (ENOMEM) before changing anything */
		rc = mark_at(t, l, k);
		if (rc)
			break;
		op_record_del(t, 0, ag->next, x, k);
		ag->next += k;
		count -= k;
	}
	if (update && ag->next > from)
		weft__text_encode_local(t, from, update);
	return rc;
}

/*
 * Integrates remote insert run r (its content bytes at `bytes`): FugueMax
 * scan from just after r->ol (see the top of the file).
 */
static int integrate(struct weft_text *t, struct run *r, const uint8_t *bytes, struct loc left)
{
	struct loc it, dest, scan_start, lr, ol_l = {0, 0, 0}, or_l = {0, 0, 0};
	bool scanning = false, have_or = false, has_left = r->ol.a != NONE;
	int rc, c;

	rc = first_chunk(t);
	if (rc)
		return rc;
	if (has_left) {
		rc = cut_after(t, &left);
		if (rc)
			return rc;
		/* left is now a boundary in the chunk of the ol item, just after it */
		ol_l.ci = left.ci;
		ol_l.ri = left.ri - 1;
		ol_l.off = t->chunks[left.ci]->runs[left.ri - 1].len - 1;
	} else {
		left.ci = 0;
		left.ri = 0;
		left.off = 0;
	}
	it = left;
	dest = left;
	scan_start = left;
	for (;;) {
		struct run *o;
		struct loc ocur = it;

		while (ocur.ci < t->nchunks && ocur.ri >= t->chunks[ocur.ci]->n) {
			ocur.ci++;
			ocur.ri = 0;
		}
		if (!scanning)
			dest = it;
		if (ocur.ci >= t->nchunks)
			break;
		o = run_at(t, ocur);
		if (o->agent == r->orr.a && r->orr.s - o->seq < o->len) {
			/* reached origin_right (a run start, unless the input is odd) */
			if (!scanning) {
				dest = ocur;
				dest.off = r->orr.s - o->seq;
			}
			break;
		}
		/* compare o's origin_left with ours */
		if (o->ol.a == NONE) {
			c = has_left ? -1 : 0;
		} else {
			rc = weft__text_find_id(t, o->ol, &lr);
			if (rc)
				return rc;
			c = has_left ? loc_cmp(lr, ol_l) : 1;
		}
		if (c < 0)
			break;
		if (c == 0) {
			int cr;
			if (id_eq(o->orr, r->orr)) {
				cr = 0;
			} else if (o->orr.a == NONE) {
				cr = 1;
			} else if (r->orr.a == NONE) {
				cr = -1;
			} else {
				if (!have_or) {
					rc = weft__text_find_id(t, r->orr, &or_l);
					if (rc)
						return rc;
					have_or = true;
				}
				rc = weft__text_find_id(t, o->orr, &lr);
				if (rc)
					return rc;
				cr = loc_cmp(lr, or_l);
			}
			if (cr == 0) {
				if (agent_cmp(t, r->agent, o->agent) < 0)
					break;
				scanning = false;
			} else if (cr < 0) {
				if (!scanning)
					scan_start = ocur;
				scanning = true;
			} else {
				scanning = false;
			}
		}
		it = ocur;
		it.ri++;
	}
	if (scanning)
		dest = scan_start;
	if (dest.off > 0) {
		rc = ensure_room(t, &dest, 1);
		if (rc)
			return rc;
		split_run(t, &dest);
	}
	return insert_at(t, dest, r, bytes);
}

int weft__text_apply_op(struct weft_text *t, struct rop *o, const uint32_t *map)
{
	uint32_t a = map[o->aref], k;
	struct agent *ag = &t->agents[a];
	struct loc left = {0, 0, 0};
	int rc;

	ref_local(&o->x, map, a);
	if (o->kind == K_INS || o->kind == K_TOMB)
		ref_local(&o->orr, map, a);
	if (o->seq + o->len <= ag->next)
		return R_DONE;
	if (o->seq > ag->next)
		return R_MISSING;
	k = ag->next - o->seq;
	if (o->kind == K_INS || o->kind == K_TOMB) {
		struct run r;
		size_t sk = o->s ? utf8_skip((const uint8_t *)o->s, o->slen, k) : 0;

		memset(&r, 0, sizeof(r));
		r.agent = a;
		r.seq = ag->next;
		r.len = o->len - k;
		r.blen = (uint32_t)(o->slen - sk);
		if (o->kind == K_TOMB) {
			r.del = 1;
			r.boff = NONE;
		}
		if (k > 0) {
			r.ol.a = a;
			r.ol.s = r.seq - 1;
		} else {
			r.ol = o->x;
		}
		r.orr = o->orr;
		if (r.ol.a != NONE) {
			rc = weft__text_find_id(t, r.ol, &left); /* WEFT_OK, R_MISSING or EPROTO */
			if (rc)
				return rc;
		}
		if (r.orr.a != NONE) {
			rc = items_ok(t, r.orr.a, r.orr.s, 1);
			if (rc)
				return rc;
		}
		return integrate(t, &r, o->s ? (const uint8_t *)o->s + sk : NULL, left);
	} else {
		struct id x = o->x;
		uint32_t n = o->len - k, lo;

		if (o->kind == K_DEL_FWD) {
			x.s += k;
			lo = x.s;
		} else {
			x.s -= k;
			lo = x.s - (n - 1);
		}
		rc = items_ok(t, x.a, lo, n);
		if (rc)
			return rc;
		rc = ops_reserve(t, ag);
		if (rc == WEFT_OK)
			rc = log_reserve(t);
		if (rc == WEFT_OK)
			rc = mark_deleted(t, x.a, lo, n);
		if (rc)
			return rc;
		if (o->kind == K_DEL_BACK && n == 1)
			o->kind = K_DEL_FWD;
		if (o->kind == K_DEL_FWD || n == 1) {
			op_record_del(t, a, ag->next, x, n);
		} else {
			struct op nop = {.seq = ag->next, .len = n, .kind = K_DEL_BACK, .x = x};
			op_push(t, a, &nop);
		}
		ag->next += n;
		return R_DONE;
	}
}

/* ---- invariant check ---- */

int weft__text_check(const struct weft_text *tc)
{
	struct weft_text *t = (struct weft_text *)tc;
	uint64_t vis = 0, bytes = 0, start = 0;
	uint32_t i, j;
	size_t k, nlog = 0;

	for (i = 0; i < t->nchunks; i++) {
		struct chunk *c = t->chunks[i];
		uint64_t cv = 0;
		if (c->idx != i || (c->n == 0 && t->nchunks > 1) || c->n > CHUNK_CAP)
			return WEFT_ECORRUPT;
		if (i == t->cc_ci && start != t->cc_vis)
			return WEFT_ECORRUPT;
		for (j = 0; j < c->n; j++) {
			struct run *r = &c->runs[j];
			struct loc l;
			if (r->len == 0 || r->agent >= t->nagents)
				return WEFT_ECORRUPT;
			if (j > 0 && run_chains(&c->runs[j - 1], r) && 0)
				return WEFT_ECORRUPT;
			t->hint_ci = NONE; /* check the fragment index, not the cache */
			if (weft__text_find_id(t, (struct id){r->agent, r->seq}, &l) || l.ci != i ||
			    l.ri != j)
				return WEFT_ECORRUPT;
			t->hint_ci = NONE;
			if (weft__text_find_id(t, (struct id){r->agent, r->seq + r->len - 1}, &l) ||
			    l.ci != i || l.ri != j)
				return WEFT_ECORRUPT;
			if (r->boff == NONE ? r->blen != 0 || !r->del
			                    : utf8_cps(t->agents[r->agent].content + r->boff,
			                               r->blen) != r->len)
				return WEFT_ECORRUPT;
			if (!r->del) {
				cv += r->len;
				bytes += r->blen;
			}
		}
		if (cv != c->vis)
			return WEFT_ECORRUPT;
		vis += cv;
		start += cv;
	}
	if (vis != t->vis_len || bytes != t->vis_bytes)
		return WEFT_ECORRUPT;
	/* the position index: fen[i] sums the vis of chunks i - lowbit(i) .. i - 1 */
	if (t->nchunks && t->capfen < t->nchunks + 1)
		return WEFT_ECORRUPT;
	if (t->fen_pd && (t->fen_pci >= t->nchunks || t->fen_pci >= t->fen_valid))
		return WEFT_ECORRUPT;
	for (i = 1; i <= t->fen_valid && i <= t->nchunks; i++) {
		uint64_t sum = 0;
		for (j = i - lowbit(i); j < i; j++)
			sum += t->chunks[j]->vis;
		if (t->fen_pci >= i - lowbit(i) && t->fen_pci < i)
			sum = (uint64_t)((int64_t)sum - t->fen_pd);
		if (sum != t->fen[i])
			return WEFT_ECORRUPT;
	}
	for (i = 0; i < t->nagents; i++) {
		struct agent *ag = &t->agents[i];
		uint32_t s = 0;
		for (k = 0; k < ag->nops; k++) {
			struct op *o = &ag->ops[k];
			const struct frag *f = op_frags(o);
			if (o->seq != s || o->len == 0)
				return WEFT_ECORRUPT;
			if (o->kind == K_INS && (o->nfrag == 0 || f[0].off != 0))
				return WEFT_ECORRUPT;
			for (j = 1; o->kind == K_INS && j < o->nfrag; j++) {
				if (f[j].off <= f[j - 1].off || f[j].off >= o->len ||
				    f[j].c == f[j - 1].c)
					return WEFT_ECORRUPT;
			}
			s += o->len;
		}
		if (s != ag->next)
			return WEFT_ECORRUPT;
		nlog += ag->nops;
	}
	return nlog == t->nlog ? WEFT_OK : WEFT_ECORRUPT;
}
