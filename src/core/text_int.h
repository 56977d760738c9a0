/*
 * text_int.h - what text.c (the CRDT: runs, chunks, integration, local
 * edits) and text_codec.c (update and document encodings) share. Private
 * to those two files; the API is text.h. Invariants are listed in text.c.
 */
#ifndef WEFT_CORE_TEXT_INT_H
#define WEFT_CORE_TEXT_INT_H

#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "weft/weft.h"
#include "core/mp.h"
#include "core/text.h"

#define CHUNK_CAP 32
#define NONE UINT32_MAX

enum { K_INS = 0, K_DEL_FWD = 1, K_DEL_BACK = 2, K_TOMB = 3 };

/* Results of applying a remote op besides the negative WEFT_E* codes:
 * applied (or already held), or waiting for a dependency. */
enum { R_DONE = 0, R_MISSING = 1 };

struct id {
	uint32_t a; /* agent index, NONE for none */
	uint32_t s; /* seq */
};

struct run {
	uint32_t agent; /* agent index */
	uint32_t seq;   /* seq of the first item */
	uint32_t len;   /* items (code points) */
	uint32_t boff;  /* first byte in the agent's content */
	uint32_t blen;  /* UTF-8 bytes */
	struct id ol;   /* origin_left of the first item */
	struct id orr;  /* origin_right of every item */
	uint32_t del;   /* 1 if deleted */
};

struct chunk {
	uint32_t n;                 /* runs used */
	uint32_t idx;               /* index in t->chunks */
	uint64_t vis;               /* visible code points */
	struct run runs[CHUNK_CAP]; /* document order */
};

#define FRAG_INLINE 3

struct frag {
	uint32_t off;    /* first item (offset in the op) */
	struct chunk *c; /* chunk holding items off.. up to the next fragment */
};

struct op {
	uint32_t seq;  /* first seq */
	uint32_t len;  /* ops / items */
	uint32_t kind; /* K_* */
	struct id x;   /* insert: origin_left of the first item; delete: target */
	struct id orr; /* insert: origin_right */
	uint32_t boff; /* insert: content bytes */
	uint32_t blen;
	uint32_t nfrag; /* insert: fragments */
	uint32_t fcap;  /* heap capacity of f.v, 0 while inline (FRAG_INLINE) */
	uint32_t tmp;   /* scratch for chunk splits */
	union {
		struct frag in[FRAG_INLINE];
		struct frag *v;
	} f;
};

struct agent {
	uint64_t replica;    /* replica id: first tie-break key */
	uint32_t inc;        /* incarnation: second tie-break key */
	uint32_t next;       /* ops held: seqs [0, next) */
	struct op *ops;      /* op log, sorted by seq, covering [0, next) */
	size_t nops, capops; /* used / allocated */
	uint32_t *opseq;     /* ops[i].seq, dense for a cache-friendly search */
	size_t capopseq;     /* allocated */
	uint8_t *content;    /* inserted UTF-8 in seq order (not tombstones) */
	size_t clen, ccap;   /* used / allocated bytes */
};

struct gref {
	uint32_t a;  /* agent index */
	uint32_t op; /* index in its op log */
};

struct pend {
	uint8_t *data;    /* a copy of the update */
	size_t len;       /* its bytes */
	uint64_t replica; /* agent supplied with a compact update (has_agent) */
	uint32_t inc;
	bool has_agent; /* applied by weft__text_apply_from */
};

struct weft_text {
	const struct weft_alloc *al;       /* every allocation goes through it */
	struct agent *agents;              /* index 0 is the local agent */
	uint32_t nagents, capagents;       /* used / allocated */
	struct chunk **chunks;             /* document order */
	uint32_t nchunks, capchunks;       /* used / allocated */
	uint64_t vis_len, vis_bytes;       /* visible code points / bytes */
	struct gref *log;                  /* every op in the order applied */
	size_t nlog, caplog;               /* used / allocated */
	struct pend *pend;                 /* updates waiting for dependencies */
	size_t npend, cappend, pend_bytes; /* used / allocated / bytes held */
	uint32_t hint_ci, hint_ri;         /* id lookup cache: a run recently found or placed */
	uint32_t cc_ci;                    /* position cache: chunk index */
	uint64_t cc_vis;                   /* and its visible start */
	uint64_t *fen;                     /* Fenwick tree of chunk vis, fen[1..nchunks] */
	uint32_t capfen;                   /* allocated (capchunks + 1) */
	uint32_t fen_valid;                /* fen[1..fen_valid] current; rest rebuilt on use */
	uint32_t fen_pci;                  /* chunk of a vis change not yet in fen */
	int64_t fen_pd;                    /* and its size (0: none) */
	uint32_t *amap;                    /* writer scratch: agent -> update table index */
	uint32_t capamap;
	struct sst *sst; /* writer scratch: per-agent stream state */
	uint32_t capsst;
	uint32_t sprev;  /* writer: agent of the previous op written */
	uint32_t *ahash; /* agent index by (replica, inc), NONE = empty slot */
	uint32_t ahcap;  /* slots, a power of two */
	bool compact;    /* local edits append compact updates (text.h) */
};

struct loc {
	uint32_t ci;  /* chunk index */
	uint32_t ri;  /* run index in the chunk (may equal n: end of chunk) */
	uint32_t off; /* item offset in the run */
};

/* One decoded op of an update. */
struct rop {
	uint32_t aref, seq, len, kind; /* agent (table index), first seq, count, K_* */
	struct id x, orr;              /* refs; agent fields are table indexes or SELF */
	const char *s;                 /* insert: content, pointing into the input */
	size_t slen;                   /* its bytes */
};

/* Per-agent state of an update being written or read (indexed by local
 * agent when writing, by table index when reading). */
struct sst {
	uint32_t exp;  /* seq its next op continues from; NONE before its first */
	struct id lor; /* origin_right of its last op if an insert, else a = BAD */
};
#define BAD (NONE - 2)

/* Header bits of an op: kind, then these, then len << 5. */
#define H_IMPLICIT 4u /* seq = the agent's exp: no seq field */
#define H_SAME 8u     /* same agent as the previous op: no agent field */
/* H_CONT: an insert continuing the agent's previous one (origin_left is
 * seq - 1, origin_right the same): no ref fields */
#define H_CONT 16u

/* Agent SELF in a decoded ref: the op's own agent. */
#define SELF (NONE - 1)

static inline int grow(const struct weft_alloc *al, void **p, size_t *cap, size_t need, size_t elsz)
{
	size_t ncap;
	void *np;

	if (need <= *cap)
		return WEFT_OK;
	ncap = *cap ? *cap : 8;
	while (ncap < need) {
		if (ncap > SIZE_MAX / 2 / elsz)
			return WEFT_ENOMEM;
		ncap *= 2;
	}
	np = weft__realloc(al, *p, ncap * elsz);
	if (!np)
		return WEFT_ENOMEM;
	*p = np;
	*cap = ncap;
	return WEFT_OK;
}

static inline bool id_eq(struct id x, struct id y)
{
	return x.a == y.a && (x.a == NONE || x.s == y.s);
}

static inline size_t utf8_cps(const uint8_t *s, size_t n)
{
	size_t i, c = 0;

	for (i = 0; i < n; i++)
		c += (s[i] & 0xc0) != 0x80;
	return c;
}

/* Bytes taken by the first k code points of s[0..n). */
static inline size_t utf8_skip(const uint8_t *s, size_t n, size_t k)
{
	size_t i = 0;

	if (k == 0)
		return 0;
	for (i = 1; i < n; i++) {
		if ((s[i] & 0xc0) != 0x80 && --k == 0)
			return i;
	}
	return n;
}

static inline struct frag *op_frags(struct op *o)
{
	return o->fcap ? o->f.v : o->f.in;
}

static inline size_t op_find(const struct agent *ag, uint32_t s)
{
	const uint32_t *q = ag->opseq;
	size_t lo = 0, n = ag->nops;

	if (n == 0)
		return 0;
	if (q[n - 1] <= s)
		return n - 1; /* recent items are the common case */
	/* branch-free lower bound: the last index with q[i] <= s */
	while (n > 1) {
		size_t half = n / 2;
		lo = q[lo + half] <= s ? lo + half : lo;
		n -= half;
	}
	return lo;
}

static inline struct run *run_at(struct weft_text *t, struct loc l)
{
	return &t->chunks[l.ci]->runs[l.ri];
}

/* Resolves an update-table ref to a local agent index. */
static inline void ref_local(struct id *x, const uint32_t *map, uint32_t self)
{
	if (x->a == SELF)
		x->a = self;
	else if (x->a != NONE)
		x->a = map[x->a];
}

/* ---- text.c ---- */

/* The agent (replica, inc): its index, 1 if found, else 0. */
int weft__text_agent_find(const struct weft_text *t, uint64_t replica, uint32_t inc, uint32_t *idx);
/* The index of agent (replica, inc), added if new. WEFT_ENOMEM/ETOOBIG. */
int weft__text_agent_get(struct weft_text *t, uint64_t replica, uint32_t inc, uint32_t *idx);
/* WEFT_EPROTO if map[0..n) names one agent twice; WEFT_ENOMEM. */
int weft__text_agents_distinct(struct weft_text *t, const uint32_t *map, uint32_t n);
/* Location of item x: WEFT_OK, R_MISSING (not here yet), WEFT_EPROTO (x
 * is not an insertion) or WEFT_ECORRUPT (broken invariant). */
int weft__text_find_id(struct weft_text *t, struct id x, struct loc *l);
/* Applies one decoded op (refs in update-table space, map: table ->
 * local agent): R_DONE, R_MISSING or a negative WEFT_E* code. */
int weft__text_apply_op(struct weft_text *t, struct rop *o, const uint32_t *map);

/* ---- text_codec.c ---- */

/* Sizes the update writer's scratch for every agent (WEFT_ENOMEM). */
int weft__text_scratch_reserve(struct weft_text *t);
/* The local agent's ops from seq `from` as one update, compact if
 * t->compact (scratch reserved). */
int weft__text_encode_local(struct weft_text *t, uint32_t from, struct mp_buf *b);

#endif
