/*
 * mp.h - the core's MessagePack codec: bounded writer, zero-copy reader.
 *
 * The same codec writes the wire and the disk. The writer appends to a
 * growable buffer that refuses to grow past `max` (curl's dynbuf): once an
 * append fails, the buffer stays in error and every later append is a no-op,
 * so callers check once at the end (mp_buf.err).
 *
 * The reader never allocates (except weft__mp_validate's scratch, freed
 * before it returns) and never reads past `end`: strings and binaries come
 * back as pointers into the input. Every length read from the input is
 * checked against the bytes that remain before it is used, and nesting is
 * limited by WEFT_MP_MAX_DEPTH. Every malformed input returns
 * WEFT_EPROTO; nothing asserts on input bytes.
 *
 * Supported: nil, bool, int (all widths, into int64/uint64), float32/64,
 * str (must be valid UTF-8 when read with mp_read_str / validated),
 * bin, array, map. Ext types are refused (WEFT_EPROTO).
 */
#ifndef WEFT_CORE_MP_H
#define WEFT_CORE_MP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/alloc.h"

#define WEFT_MP_MAX_DEPTH 64

/* ---- writer ---- */
struct mp_buf {
	uint8_t *data; /* bytes written so far */
	size_t len;    /* bytes used */
	size_t cap;    /* bytes allocated */
	size_t max;    /* hard limit on len; 0 means SIZE_MAX */
	int err;       /* first error (WEFT_ENOMEM/ETOOBIG) or 0 */
	const struct weft_alloc *alloc;
};

/* Initialises an empty buffer. Cannot fail. alloc NULL means the default. */
void weft__mp_buf_init(struct mp_buf *b, const struct weft_alloc *alloc, size_t max);
/* Frees the bytes and resets to empty; keeps alloc and max. */
void weft__mp_buf_free(struct mp_buf *b);
/* Resets len and err to 0, keeping the allocation. */
void weft__mp_buf_reset(struct mp_buf *b);
/* Hands the bytes to the caller (free with b->alloc) and resets b. */
uint8_t *weft__mp_buf_take(struct mp_buf *b, size_t *len);

void weft__mp_write_nil(struct mp_buf *b);
void weft__mp_write_bool(struct mp_buf *b, bool v);
void weft__mp_write_int(struct mp_buf *b, int64_t v);   /* smallest encoding */
void weft__mp_write_uint(struct mp_buf *b, uint64_t v); /* smallest encoding */
void weft__mp_write_double(struct mp_buf *b, double v); /* always float64 */
void weft__mp_write_str(struct mp_buf *b, const char *s, size_t len);
void weft__mp_write_cstr(struct mp_buf *b, const char *s);
void weft__mp_write_bin(struct mp_buf *b, const void *p, size_t len);
void weft__mp_write_array(struct mp_buf *b, uint32_t n); /* header only */
void weft__mp_write_map(struct mp_buf *b, uint32_t n);   /* header only */
/* Appends already-encoded bytes (one or more whole values). */
void weft__mp_write_raw(struct mp_buf *b, const void *p, size_t len);

/* ---- reader ---- */
enum mp_type {
	MP_NIL = 1,
	MP_BOOL,
	MP_INT,   /* signed; value fits int64 */
	MP_UINT,  /* unsigned; value > INT64_MAX */
	MP_FLOAT, /* float32 or float64, read as double */
	MP_STR,
	MP_BIN,
	MP_ARRAY,
	MP_MAP
};

struct mp_reader {
	const uint8_t *p;   /* next byte */
	const uint8_t *end; /* one past the last byte */
};

static inline void weft__mp_reader_init(struct mp_reader *r, const void *data, size_t len)
{
	/* An empty buffer may have no storage (NULL): no arithmetic on it. */
	r->p = data ? (const uint8_t *)data : (const uint8_t *)"";
	r->end = data ? r->p + len : r->p;
}
static inline size_t weft__mp_reader_left(const struct mp_reader *r)
{
	return (size_t)(r->end - r->p);
}

/* Type of the next value without consuming it. WEFT_EPROTO at end of
 * input or on a byte that starts no supported value. */
int weft__mp_peek(const struct mp_reader *r, enum mp_type *type);

/* Each reader consumes one value of the named type, or returns WEFT_EPROTO
 * (wrong type, truncated) and leaves r unchanged. */
int weft__mp_read_nil(struct mp_reader *r);
int weft__mp_read_bool(struct mp_reader *r, bool *v);
/* Any integer that fits int64 (positive fixint .. int64, uint64 <= INT64_MAX). */
int weft__mp_read_int(struct mp_reader *r, int64_t *v);
/* Any non-negative integer (also signed encodings of values >= 0). */
int weft__mp_read_uint(struct mp_reader *r, uint64_t *v);
/* float32/float64 (integers are not accepted here). */
int weft__mp_read_double(struct mp_reader *r, double *v);
/* str: *s points into the input, not NUL-terminated; must be valid UTF-8
 * (no overlongs, no surrogates, <= U+10FFFF) else WEFT_EPROTO. */
int weft__mp_read_str(struct mp_reader *r, const char **s, size_t *len);
int weft__mp_read_bin(struct mp_reader *r, const void **p, size_t *len);
/* Headers: *n is the element count (pairs for maps). The count is checked
 * against the bytes left (each element needs at least one byte), so a
 * hostile header cannot make a caller allocate more than the input size. */
int weft__mp_read_array(struct mp_reader *r, uint32_t *n);
int weft__mp_read_map(struct mp_reader *r, uint32_t *n);
/* Skips one whole value (recursively, depth-limited, strings UTF-8-checked).
 * If raw/raw_len are not NULL they receive the skipped value's bytes. */
int weft__mp_skip(struct mp_reader *r, const uint8_t **raw, size_t *raw_len);

/*
 * Checks that data[0..len) is exactly one well-formed value (same rules as
 * mp_skip) and, when `json_compatible`, also: map keys are strings, no
 * duplicate keys in any map, no bin, no NaN/Inf floats. Costs O(len log len)
 * whatever the input, so it is safe on untrusted bytes.
 *
 * data/len: the bytes, borrowed for the call only. scratch: where the
 * duplicate-key check of maps with more than 64 unsorted keys takes its
 * array of key slices (up to 8 bytes per input byte on 64-bit targets);
 * NULL means weft__alloc_default(). It is used only with json_compatible,
 * and everything taken from it is freed before the call returns.
 *
 * Returns WEFT_OK; WEFT_EPROTO if the bytes are not valid (also len 0 or
 * bytes after the value); WEFT_ENOMEM if the scratch allocation failed, in
 * which case validity is unknown. Reentrant: it touches no shared state, so
 * any thread may call it as long as `scratch` is safe to use from it.
 */
int weft__mp_validate(const void *data, size_t len, bool json_compatible,
                      const struct weft_alloc *scratch);

/* weft__mp_validate(data, len, json_compatible, NULL) == WEFT_OK: false on
 * invalid bytes and also when the default allocator fails (callers that must
 * tell the two apart use weft__mp_validate). */
bool weft__mp_valid(const void *data, size_t len, bool json_compatible);

/* True iff s[0..len) is valid UTF-8 (RFC 3629). */
bool weft__utf8_valid(const char *s, size_t len);

#endif
