/*
 * mp.c - MessagePack: a bounded, growable writer and a zero-copy reader.
 *
 * Writer invariants: len <= cap, len <= max (max 0 means SIZE_MAX); once err
 * is set every append is a no-op, so callers check b->err once at the end.
 * Integers are written in their smallest encoding, doubles always as
 * float64, so equal values always encode to equal bytes.
 *
 * Reader invariants: nothing here allocates but the duplicate-key scratch
 * below, nothing reads at or past `end`, nothing asserts on input bytes.
 * Every length from the input is compared with the bytes that remain
 * before it is used, and an array or map header is refused when it claims
 * more elements than bytes remain (each element takes at least one byte).
 * A failed read returns WEFT_EPROTO and leaves the reader where it was.
 * Skipping is iterative with an explicit stack of WEFT_MP_MAX_DEPTH
 * counters, so hostile nesting cannot exhaust the C stack.
 *
 * Duplicate map keys (json_compatible validation) are found in O(n log n)
 * per map. First one linear pass: keys in strictly increasing byte order
 * (canonical maps, as our writers emit them) are distinct. Otherwise a map
 * of at most KEY_BLOCK keys is checked on the stack (insertion-sort the key
 * slices, compare neighbours), and a larger one with an array of key slices
 * from the caller's scratch allocator, sorted with qsort. One array serves
 * every map of one weft__mp_validate call: a map's keys are checked before
 * the traversal enters its values, so no two checks overlap. The array holds
 * at most one slice per two input bytes (a pair takes at least two), so its
 * size is bounded by the input: 8 bytes of scratch per input byte at worst
 * on 64-bit targets. This is the only allocation in the reader. Each key
 * check walks its map's bytes at most twice, and a map is walked by the
 * checks of the maps enclosing it, so validation reads every input byte
 * O(WEFT_MP_MAX_DEPTH) times at most.
 *
 * Floats assume IEEE 754 binary32/binary64 (true of every target we build
 * for, WebAssembly included).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "weft/weft.h"
#include "core/mp.h"

#define KEY_BLOCK 64 /* maps with more keys use the allocated scratch */

/* ---- writer ---- */

static const struct weft_alloc *buf_alloc(const struct mp_buf *b)
{
	return b->alloc ? b->alloc : weft__alloc_default();
}

void weft__mp_buf_init(struct mp_buf *b, const struct weft_alloc *alloc, size_t max)
{
	b->data = NULL;
	b->len = 0;
	b->cap = 0;
	b->max = max;
	b->err = 0;
	b->alloc = alloc ? alloc : weft__alloc_default();
}

void weft__mp_buf_free(struct mp_buf *b)
{
	weft__free(buf_alloc(b), b->data);
	b->data = NULL;
	b->len = 0;
	b->cap = 0;
	b->err = 0;
}

void weft__mp_buf_reset(struct mp_buf *b)
{
	b->len = 0;
	b->err = 0;
}

/*
 * Hands the buffer's bytes to the caller, who frees them with b->alloc.
 * If the buffer is in error the bytes are incomplete: they are freed and
 * NULL comes back. NULL with *len 0 also means nothing was ever written.
 * Either way b is left empty and usable.
 */
uint8_t *weft__mp_buf_take(struct mp_buf *b, size_t *len)
{
	uint8_t *p = b->data;
	size_t n = b->len;

	if (b->err) {
		weft__free(buf_alloc(b), p);
		p = NULL;
		n = 0;
	}
	b->data = NULL;
	b->len = 0;
	b->cap = 0;
	b->err = 0;
	if (len)
		*len = n;
	return p;
}

/*
 * Makes room for `need` more bytes. Growth doubles, clamped to max. Returns
 * false (and sets the sticky error) when the buffer is already in error,
 * when max would be exceeded, or when the allocator fails.
 */
static bool buf_reserve(struct mp_buf *b, size_t need)
{
	size_t max = b->max ? b->max : SIZE_MAX;
	size_t want, cap;
	uint8_t *p;

	if (b->err)
		return false;
	if (b->len > max || need > max - b->len) {
		b->err = WEFT_ETOOBIG;
		return false;
	}
	want = b->len + need;
	if (want <= b->cap)
		return true;
	cap = b->cap ? b->cap : 64;
	while (cap < want)
		cap = cap > SIZE_MAX / 2 ? SIZE_MAX : cap * 2;
	if (cap > max)
		cap = max;
	if (b->data)
		p = weft__realloc(buf_alloc(b), b->data, cap);
	else
		p = weft__malloc(buf_alloc(b), cap);
	if (!p) {
		b->err = WEFT_ENOMEM;
		return false;
	}
	b->data = p;
	b->cap = cap;
	return true;
}

/* Appends a head of 1 + `n` bytes: `tag` then the low n bytes of v, big-endian. */
static void put_head(struct mp_buf *b, uint8_t tag, uint64_t v, unsigned n, size_t extra)
{
	uint8_t *p;

	if (extra > SIZE_MAX - 9) {
		b->err = b->err ? b->err : WEFT_ETOOBIG;
		return;
	}
	if (!buf_reserve(b, 1 + n + extra))
		return;
	p = b->data + b->len;
	*p++ = tag;
	for (unsigned i = n; i > 0; i--)
		*p++ = (uint8_t)(v >> (8 * (i - 1)));
	b->len += 1 + n;
}

static void put_bytes(struct mp_buf *b, const void *src, size_t len)
{
	if (!buf_reserve(b, len))
		return;
	if (len)
		memcpy(b->data + b->len, src, len);
	b->len += len;
}

void weft__mp_write_nil(struct mp_buf *b)
{
	put_head(b, 0xc0, 0, 0, 0);
}

void weft__mp_write_bool(struct mp_buf *b, bool v)
{
	put_head(b, v ? 0xc3 : 0xc2, 0, 0, 0);
}

void weft__mp_write_uint(struct mp_buf *b, uint64_t v)
{
	if (v < 128)
		put_head(b, (uint8_t)v, 0, 0, 0);
	else if (v <= UINT8_MAX)
		put_head(b, 0xcc, v, 1, 0);
	else if (v <= UINT16_MAX)
		put_head(b, 0xcd, v, 2, 0);
	else if (v <= UINT32_MAX)
		put_head(b, 0xce, v, 4, 0);
	else
		put_head(b, 0xcf, v, 8, 0);
}

void weft__mp_write_int(struct mp_buf *b, int64_t v)
{
	if (v >= 0)
		weft__mp_write_uint(b, (uint64_t)v);
	else if (v >= -32)
		put_head(b, (uint8_t)(0xe0 | (uint8_t)(v + 32)), 0, 0, 0);
	else if (v >= INT8_MIN)
		put_head(b, 0xd0, (uint64_t)v, 1, 0);
	else if (v >= INT16_MIN)
		put_head(b, 0xd1, (uint64_t)v, 2, 0);
	else if (v >= INT32_MIN)
		put_head(b, 0xd2, (uint64_t)v, 4, 0);
	else
		put_head(b, 0xd3, (uint64_t)v, 8, 0);
}

void weft__mp_write_double(struct mp_buf *b, double v)
{
	uint64_t bits;

	memcpy(&bits, &v, sizeof(bits));
	put_head(b, 0xcb, bits, 8, 0);
}

void weft__mp_write_str(struct mp_buf *b, const char *s, size_t len)
{
	if (len > UINT32_MAX) {
		b->err = b->err ? b->err : WEFT_ETOOBIG;
		return;
	}
	if (len < 32)
		put_head(b, (uint8_t)(0xa0 | len), 0, 0, len);
	else if (len <= UINT8_MAX)
		put_head(b, 0xd9, len, 1, len);
	else if (len <= UINT16_MAX)
		put_head(b, 0xda, len, 2, len);
	else
		put_head(b, 0xdb, len, 4, len);
	put_bytes(b, s, len);
}

void weft__mp_write_cstr(struct mp_buf *b, const char *s)
{
	weft__mp_write_str(b, s, strlen(s));
}

void weft__mp_write_bin(struct mp_buf *b, const void *p, size_t len)
{
	if (len > UINT32_MAX) {
		b->err = b->err ? b->err : WEFT_ETOOBIG;
		return;
	}
	if (len <= UINT8_MAX)
		put_head(b, 0xc4, len, 1, len);
	else if (len <= UINT16_MAX)
		put_head(b, 0xc5, len, 2, len);
	else
		put_head(b, 0xc6, len, 4, len);
	put_bytes(b, p, len);
}

void weft__mp_write_array(struct mp_buf *b, uint32_t n)
{
	if (n < 16)
		put_head(b, (uint8_t)(0x90 | n), 0, 0, 0);
	else if (n <= UINT16_MAX)
		put_head(b, 0xdc, n, 2, 0);
	else
		put_head(b, 0xdd, n, 4, 0);
}

void weft__mp_write_map(struct mp_buf *b, uint32_t n)
{
	if (n < 16)
		put_head(b, (uint8_t)(0x80 | n), 0, 0, 0);
	else if (n <= UINT16_MAX)
		put_head(b, 0xde, n, 2, 0);
	else
		put_head(b, 0xdf, n, 4, 0);
}

void weft__mp_write_raw(struct mp_buf *b, const void *p, size_t len)
{
	put_bytes(b, p, len);
}

/* ---- UTF-8 ---- */

/*
 * RFC 3629 section 4: the well-formed byte sequences. The second byte's
 * range depends on the first (E0, ED, F0, F4), which is what rules out
 * overlong forms, UTF-16 surrogates and code points above U+10FFFF.
 */
bool weft__utf8_valid(const char *str, size_t len)
{
	const uint8_t *s = (const uint8_t *)str;
	const uint8_t *end = s + len;

	while (s < end) {
		uint8_t c = *s;
		uint8_t lo = 0x80, hi = 0xbf;
		size_t more;

		if (c < 0x80) {
			s++;
			continue;
		}
		if (c >= 0xc2 && c <= 0xdf) {
			more = 1;
		} else if (c >= 0xe0 && c <= 0xef) {
			more = 2;
			if (c == 0xe0)
				lo = 0xa0;
			else if (c == 0xed)
				hi = 0x9f;
		} else if (c >= 0xf0 && c <= 0xf4) {
			more = 3;
			if (c == 0xf0)
				lo = 0x90;
			else if (c == 0xf4)
				hi = 0x8f;
		} else {
			return false;
		}
		if ((size_t)(end - s) <= more)
			return false;
		if (s[1] < lo || s[1] > hi)
			return false;
		for (size_t i = 2; i <= more; i++)
			if (s[i] < 0x80 || s[i] > 0xbf)
				return false;
		s += more + 1;
	}
	return true;
}

/* ---- reader ---- */

/* One decoded value head. For str/bin, data/len are the payload; for
 * array/map, len is the element (pair) count and data the first element. */
struct head {
	enum mp_type type;   /* what the value is */
	bool b;              /* MP_BOOL */
	int64_t i;           /* MP_INT */
	uint64_t u;          /* MP_UINT (and MP_INT >= 0, as unsigned) */
	double d;            /* MP_FLOAT */
	const uint8_t *data; /* str/bin payload, or container contents */
	uint32_t len;        /* str/bin bytes, array elements, map pairs */
};

static uint64_t be(const uint8_t *p, unsigned n)
{
	uint64_t v = 0;

	for (unsigned i = 0; i < n; i++)
		v = (v << 8) | p[i];
	return v;
}

/* The n-byte two's complement value v, without implementation-defined casts. */
static int64_t sign_extend(uint64_t v, unsigned n)
{
	uint64_t sign = (uint64_t)1 << (8 * n - 1);

	if (!(v & sign))
		return (int64_t)v;
	if (n == 8)
		return -(int64_t)(~v) - 1;
	return (int64_t)v - (int64_t)(sign << 1);
}

/* Type from the first byte alone; 0 for reserved (0xc1) and ext bytes. */
static enum mp_type type_of(uint8_t c)
{
	if (c <= 0x7f || c >= 0xe0)
		return MP_INT;
	if (c <= 0x8f)
		return MP_MAP;
	if (c <= 0x9f)
		return MP_ARRAY;
	if (c <= 0xbf)
		return MP_STR;
	switch (c) {
	case 0xc0:
		return MP_NIL;
	case 0xc2:
	case 0xc3:
		return MP_BOOL;
	case 0xc4:
	case 0xc5:
	case 0xc6:
		return MP_BIN;
	case 0xca:
	case 0xcb:
		return MP_FLOAT;
	case 0xcc:
	case 0xcd:
	case 0xce:
	case 0xcf:
	case 0xd0:
	case 0xd1:
	case 0xd2:
	case 0xd3:
		return MP_INT; /* 0xcf may turn out MP_UINT; see read_head */
	case 0xd9:
	case 0xda:
	case 0xdb:
		return MP_STR;
	case 0xdc:
	case 0xdd:
		return MP_ARRAY;
	case 0xde:
	case 0xdf:
		return MP_MAP;
	default:
		return (enum mp_type)0; /* 0xc1, ext 0xc7-0xc9, fixext 0xd4-0xd8 */
	}
}

/*
 * Decodes the head of the value at p (strings: and checks their UTF-8;
 * containers: and checks the count against the bytes left). On success sets
 * *h and *next (past a str/bin payload, or past a container header) and
 * returns WEFT_OK; else WEFT_EPROTO.
 */
static int read_head(const uint8_t *p, const uint8_t *end, struct head *h, const uint8_t **next)
{
	size_t left = (size_t)(end - p);
	uint8_t c;
	unsigned n = 0; /* bytes of length/value after the tag */
	uint64_t v;

	if (left == 0)
		return WEFT_EPROTO;
	c = *p;
	h->type = type_of(c);
	if (h->type == 0)
		return WEFT_EPROTO;
	switch (c) {
	case 0xc4:
	case 0xcc:
	case 0xd0:
	case 0xd9:
		n = 1;
		break;
	case 0xc5:
	case 0xcd:
	case 0xd1:
	case 0xda:
	case 0xdc:
	case 0xde:
		n = 2;
		break;
	case 0xc6:
	case 0xca:
	case 0xce:
	case 0xd2:
	case 0xdb:
	case 0xdd:
	case 0xdf:
		n = 4;
		break;
	case 0xcb:
	case 0xcf:
	case 0xd3:
		n = 8;
		break;
	default:
		break;
	}
	if (left - 1 < n)
		return WEFT_EPROTO;
	v = be(p + 1, n);
	p += 1 + n;
	left -= 1 + n;

	switch (h->type) {
	case MP_NIL:
		break;
	case MP_BOOL:
		h->b = c == 0xc3;
		break;
	case MP_INT:
		if (c <= 0x7f) {
			h->i = c;
		} else if (c >= 0xe0) {
			h->i = (int64_t)c - 256;
		} else if (c >= 0xcc && c <= 0xcf) {
			if (v > INT64_MAX) {
				h->type = MP_UINT;
				h->u = v;
				break;
			}
			h->i = (int64_t)v;
		} else {
			h->i = sign_extend(v, n);
		}
		h->u = (uint64_t)h->i;
		break;
	case MP_FLOAT:
		if (c == 0xca) {
			uint32_t bits = (uint32_t)v;
			float f;

			memcpy(&f, &bits, sizeof(f));
			h->d = f;
		} else {
			memcpy(&h->d, &v, sizeof(h->d));
		}
		break;
	case MP_STR:
	case MP_BIN:
		if (n == 0)
			v = c & 0x1f;
		if (v > left)
			return WEFT_EPROTO;
		if (h->type == MP_STR && !weft__utf8_valid((const char *)p, (size_t)v))
			return WEFT_EPROTO;
		h->data = p;
		h->len = (uint32_t)v;
		p += v;
		break;
	case MP_ARRAY:
	case MP_MAP:
		if (n == 0)
			v = c & 0x0f;
		/* each element needs at least one byte; a map has 2v elements */
		if ((h->type == MP_MAP ? 2 * v : v) > left)
			return WEFT_EPROTO;
		h->data = p;
		h->len = (uint32_t)v;
		break;
	default:
		break;
	}
	*next = p;
	return WEFT_OK;
}

static int key_cmp(const uint8_t *a, size_t alen, const uint8_t *b, size_t blen)
{
	int c = memcmp(a, b, alen < blen ? alen : blen);

	if (c)
		return c;
	return alen < blen ? -1 : alen > blen;
}

struct key {
	const uint8_t *p; /* key bytes, in the input */
	uint32_t len;     /* key length */
};

/* The duplicate-key scratch of one weft__mp_validate call: an array of key
 * slices, grown on demand and reused by every large map. */
struct scratch {
	const struct weft_alloc *a;
	struct key *k; /* NULL until a map needs it */
	size_t cap;    /* slices allocated */
	size_t max;    /* slices the whole input can need (pairs <= len / 2) */
};

static int skip_value(const uint8_t *p, const uint8_t *end, struct scratch *s,
                      const uint8_t **next);

/*
 * Reads one map key at *p (which must be a str) and skips its value, for the
 * duplicate-key check. On success *k is the key and *p points past the value.
 */
static int next_pair(const uint8_t **p, const uint8_t *end, struct key *k)
{
	struct head h;
	const uint8_t *q;
	int rc;

	rc = read_head(*p, end, &h, &q);
	if (rc != WEFT_OK)
		return rc;
	if (h.type != MP_STR)
		return WEFT_EPROTO;
	k->p = h.data;
	k->len = h.len;
	return skip_value(q, end, NULL, p);
}

/* Insertion sort of a small block of keys. */
static void keys_sort(struct key *k, size_t n)
{
	for (size_t i = 1; i < n; i++) {
		struct key t = k[i];
		size_t j = i;

		while (j > 0 && key_cmp(k[j - 1].p, k[j - 1].len, t.p, t.len) > 0) {
			k[j] = k[j - 1];
			j--;
		}
		k[j] = t;
	}
}

static int key_qcmp(const void *a, const void *b)
{
	const struct key *x = a, *y = b;

	return key_cmp(x->p, x->len, y->p, y->len);
}

/*
 * Makes s->k hold at least n slices. The old contents need not survive, so
 * it frees and allocates rather than reallocating (no copy, and nothing to
 * clean up when the allocation fails). Growth doubles, clamped to s->max.
 */
static int scratch_reserve(struct scratch *s, size_t n)
{
	size_t cap;

	if (n <= s->cap)
		return WEFT_OK;
	cap = s->cap > s->max / 2 ? s->max : s->cap * 2;
	if (cap < n)
		cap = n;
	if (cap > SIZE_MAX / sizeof(*s->k))
		return WEFT_ENOMEM;
	weft__free(s->a, s->k);
	s->cap = 0;
	s->k = weft__malloc(s->a, cap * sizeof(*s->k));
	if (!s->k)
		return WEFT_ENOMEM;
	s->cap = cap;
	return WEFT_OK;
}

/* True iff two neighbours of the sorted k[0..n) are equal. */
static bool keys_dup(const struct key *k, size_t n)
{
	for (size_t i = 1; i < n; i++)
		if (key_cmp(k[i - 1].p, k[i - 1].len, k[i].p, k[i].len) == 0)
			return true;
	return false;
}

/*
 * The json_compatible check of one map's keys: all strings, no two equal.
 * `p` is the first key, `n` the pair count. Values are skipped with the
 * plain rules (they are checked in full by the caller's traversal). Returns
 * WEFT_OK, WEFT_EPROTO, or WEFT_ENOMEM when a map of more than KEY_BLOCK
 * unsorted keys needs more scratch than s can get.
 */
static int check_map_keys(const uint8_t *p, const uint8_t *end, uint32_t n, struct scratch *s)
{
	struct key block[KEY_BLOCK];
	struct key *k = block;
	int rc = WEFT_OK;

	/* fast path: keys in strictly increasing order (our own writers emit
	 * canonical maps) are distinct; one linear pass proves it */
	{
		const uint8_t *q = p;
		struct key prev = {NULL, 0}, cur;
		uint32_t i;

		for (i = 0; i < n; i++) {
			rc = next_pair(&q, end, &cur);
			if (rc != WEFT_OK)
				goto out;
			if (i > 0 && key_cmp(prev.p, prev.len, cur.p, cur.len) >= 0)
				break;
			prev = cur;
		}
		if (i == n)
			goto out;
	}
	if (n > KEY_BLOCK) {
		rc = scratch_reserve(s, n);
		if (rc != WEFT_OK)
			goto out;
		k = s->k;
	}
	for (uint32_t i = 0; i < n; i++) {
		rc = next_pair(&p, end, &k[i]);
		if (rc != WEFT_OK)
			goto out;
	}
	if (n > KEY_BLOCK)
		qsort(k, n, sizeof(*k), key_qcmp);
	else
		keys_sort(k, n);
	if (keys_dup(k, n))
		rc = WEFT_EPROTO;
out:
	return rc;
}

/*
 * Walks one whole value at p, iteratively: stack[d] counts the elements
 * still to read in the d-th open container. Containers nest at most
 * WEFT_MP_MAX_DEPTH deep (an empty one counts too). With a scratch `s`,
 * also applies the json_compatible rules (and may return WEFT_ENOMEM);
 * with NULL, only the plain ones. Sets *next past the value.
 */
static int skip_value(const uint8_t *p, const uint8_t *end, struct scratch *s, const uint8_t **next)
{
	uint64_t stack[WEFT_MP_MAX_DEPTH];
	unsigned depth = 0;
	bool json = s != NULL;
	struct head h;
	int rc;

	for (;;) {
		rc = read_head(p, end, &h, &p);
		if (rc != WEFT_OK)
			goto out;
		if (json && h.type == MP_BIN) {
			rc = WEFT_EPROTO;
			goto out;
		}
		if (json && h.type == MP_FLOAT && (h.d != h.d || h.d - h.d != 0)) {
			rc = WEFT_EPROTO; /* NaN fails h.d == h.d, +-Inf fails Inf - Inf == 0 */
			goto out;
		}
		if (h.type == MP_ARRAY || h.type == MP_MAP) {
			if (depth == WEFT_MP_MAX_DEPTH) {
				rc = WEFT_EPROTO;
				goto out;
			}
			if (json && h.type == MP_MAP) {
				rc = check_map_keys(p, end, h.len, s);
				if (rc != WEFT_OK)
					goto out;
			}
			if (h.len > 0) {
				stack[depth++] = h.type == MP_MAP ? 2 * (uint64_t)h.len : h.len;
				continue;
			}
		}
		/* one value done: close every container it completes */
		while (depth > 0 && --stack[depth - 1] == 0)
			depth--;
		if (depth == 0)
			break;
	}
	*next = p;
out:
	return rc;
}

int weft__mp_peek(const struct mp_reader *r, enum mp_type *type)
{
	enum mp_type t;
	struct head h;
	const uint8_t *next;

	if (r->p >= r->end)
		return WEFT_EPROTO;
	t = type_of(*r->p);
	if (t == 0)
		return WEFT_EPROTO;
	/* only uint64 needs its payload to tell MP_INT from MP_UINT */
	if (*r->p == 0xcf && read_head(r->p, r->end, &h, &next) == WEFT_OK)
		t = h.type;
	*type = t;
	return WEFT_OK;
}

/* Reads the head at r and checks its type; consumes it only on success. */
static int read_typed(struct mp_reader *r, enum mp_type want, struct head *h)
{
	const uint8_t *next;
	int rc;

	rc = read_head(r->p, r->end, h, &next);
	if (rc != WEFT_OK)
		return rc;
	if (h->type != want)
		return WEFT_EPROTO;
	r->p = next;
	return WEFT_OK;
}

int weft__mp_read_nil(struct mp_reader *r)
{
	struct head h;

	return read_typed(r, MP_NIL, &h);
}

int weft__mp_read_bool(struct mp_reader *r, bool *v)
{
	struct head h;
	int rc = read_typed(r, MP_BOOL, &h);

	if (rc == WEFT_OK)
		*v = h.b;
	return rc;
}

int weft__mp_read_int(struct mp_reader *r, int64_t *v)
{
	struct head h;
	int rc = read_typed(r, MP_INT, &h);

	if (rc == WEFT_OK)
		*v = h.i;
	return rc;
}

int weft__mp_read_uint(struct mp_reader *r, uint64_t *v)
{
	const uint8_t *next;
	struct head h;
	int rc;

	rc = read_head(r->p, r->end, &h, &next);
	if (rc != WEFT_OK)
		return rc;
	if (!(h.type == MP_UINT || (h.type == MP_INT && h.i >= 0)))
		return WEFT_EPROTO;
	*v = h.u;
	r->p = next;
	return WEFT_OK;
}

int weft__mp_read_double(struct mp_reader *r, double *v)
{
	struct head h;
	int rc = read_typed(r, MP_FLOAT, &h);

	if (rc == WEFT_OK)
		*v = h.d;
	return rc;
}

int weft__mp_read_str(struct mp_reader *r, const char **s, size_t *len)
{
	struct head h;
	int rc = read_typed(r, MP_STR, &h);

	if (rc == WEFT_OK) {
		*s = (const char *)h.data;
		*len = h.len;
	}
	return rc;
}

int weft__mp_read_bin(struct mp_reader *r, const void **p, size_t *len)
{
	struct head h;
	int rc = read_typed(r, MP_BIN, &h);

	if (rc == WEFT_OK) {
		*p = h.data;
		*len = h.len;
	}
	return rc;
}

int weft__mp_read_array(struct mp_reader *r, uint32_t *n)
{
	struct head h;
	int rc = read_typed(r, MP_ARRAY, &h);

	if (rc == WEFT_OK)
		*n = h.len;
	return rc;
}

int weft__mp_read_map(struct mp_reader *r, uint32_t *n)
{
	struct head h;
	int rc = read_typed(r, MP_MAP, &h);

	if (rc == WEFT_OK)
		*n = h.len;
	return rc;
}

int weft__mp_skip(struct mp_reader *r, const uint8_t **raw, size_t *raw_len)
{
	const uint8_t *next;
	int rc;

	rc = skip_value(r->p, r->end, NULL, &next);
	if (rc != WEFT_OK)
		return rc;
	if (raw)
		*raw = r->p;
	if (raw_len)
		*raw_len = (size_t)(next - r->p);
	r->p = next;
	return WEFT_OK;
}

int weft__mp_validate(const void *data, size_t len, bool json_compatible,
                      const struct weft_alloc *scratch)
{
	struct scratch s = {scratch ? scratch : weft__alloc_default(), NULL, 0, len / 2};
	const uint8_t *p = data;
	const uint8_t *next;
	int rc;

	if (len == 0) {
		rc = WEFT_EPROTO;
		goto out;
	}
	rc = skip_value(p, p + len, json_compatible ? &s : NULL, &next);
	if (rc == WEFT_OK && next != p + len)
		rc = WEFT_EPROTO;
out:
	weft__free(s.a, s.k);
	return rc;
}

bool weft__mp_valid(const void *data, size_t len, bool json_compatible)
{
	return weft__mp_validate(data, len, json_compatible, NULL) == WEFT_OK;
}
