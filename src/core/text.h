/*
 * text.h - a collaborative plain-text sequence CRDT (FugueMax / YjsMod
 * integration over run-length encoded items). See text.c for the
 * algorithm, its invariants and the encodings.
 *
 * Positions and counts are Unicode code points; text is UTF-8. One
 * struct weft_text is one replica of one text; it is not thread-safe: call
 * every function on one instance from one thread at a time (different
 * instances are independent).
 */
#ifndef WEFT_CORE_TEXT_H
#define WEFT_CORE_TEXT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/alloc.h"
#include "core/mp.h"

struct weft_text;

/* Limits on what one instance holds; beyond them calls fail with
 * WEFT_ETOOBIG (local edits) or WEFT_EPROTO/WEFT_ECORRUPT (decoders). */
#define WEFT_TEXT_MAX_AGENTS 65536u       /* distinct (replica, incarnation) */
#define WEFT_TEXT_MAX_SEQ 0x7fffffffu     /* ops per agent */
#define WEFT_TEXT_MAX_CONTENT 0x7fffffffu /* UTF-8 bytes inserted per agent */
#define WEFT_TEXT_MAX_PENDING (64u << 20) /* bytes of buffered updates */

/*
 * Creates an empty text whose local edits are made by agent
 * (replica, incarnation). alloc NULL means weft__alloc_default(); it must
 * outlive the text. Returns WEFT_OK and sets *out, or WEFT_ENOMEM /
 * WEFT_EINVAL (out NULL) and leaves *out untouched.
 */
int weft__text_new(const struct weft_alloc *alloc, uint64_t replica, uint32_t incarnation,
                   struct weft_text **out);
/* Frees everything the text owns. NULL is a no-op. */
void weft__text_free(struct weft_text *t);

/*
 * Local edits. insert puts utf8[0..len) (valid UTF-8, may be empty) before
 * the code point at `pos` (0 <= pos <= length); delete removes `count` code
 * points from `pos` (pos + count <= length).
 *
 * If `update` is not NULL, the update bytes of exactly this edit are
 * appended to it: self-contained (the format of weft__text_encode_since),
 * or compact after weft__text_set_compact(t, true). On error nothing is
 * appended (check update->err for the buffer's own limit).
 *
 * Returns WEFT_OK; WEFT_EINVAL (pos/count out of range, bad UTF-8, NULL
 * utf8 with len > 0); WEFT_ETOOBIG (over the limits above); WEFT_ENOMEM.
 * On WEFT_ENOMEM an insert changed nothing; a delete spanning several runs
 * may have deleted a prefix of the range (recorded as ops like any other
 * edit, so replicas still converge).
 */
int weft__text_insert(struct weft_text *t, size_t pos, const char *utf8, size_t len,
                      struct mp_buf *update);
int weft__text_delete(struct weft_text *t, size_t pos, size_t count, struct mp_buf *update);

/*
 * Chooses the form of the updates local edits append. A compact update
 * leaves out the agent header of the self-contained form: its ops are
 * implicitly the local agent's, (replica, incarnation) of weft__text_new
 * or weft__text_load, and the receiver must supply that agent to
 * weft__text_apply_from (a TEXT op takes it from its envelope). It names
 * other agents only when its refs point at their items. Off by default.
 */
void weft__text_set_compact(struct weft_text *t, bool compact);

/* Visible length in code points / in UTF-8 bytes. */
size_t weft__text_len(const struct weft_text *t);
size_t weft__text_byte_len(const struct weft_text *t);

/*
 * Copies the visible text (UTF-8, not NUL-terminated) into dst[0..cap).
 * *len receives weft__text_byte_len(). Returns WEFT_OK, or WEFT_ETOOBIG if
 * cap is smaller than that (nothing copied).
 */
int weft__text_read(const struct weft_text *t, char *dst, size_t cap, size_t *len);

/*
 * The replica's version (how many ops of each agent it holds), appended to
 * `out` as one MessagePack array [replica, incarnation, count, ...]. Errors
 * only through out->err.
 */
void weft__text_version(const struct weft_text *t, struct mp_buf *out);

/*
 * Appends to `out` one update holding every op this replica has that the
 * version ver[0..ver_len) (from weft__text_version of any replica; NULL/0
 * means the empty version) lacks, in causal order, consecutive ops of one
 * agent coalesced into runs. Returns WEFT_OK; WEFT_EPROTO (bad version
 * bytes); WEFT_ENOMEM; or out->err (WEFT_ENOMEM/WEFT_ETOOBIG) if the buffer
 * refused to grow.
 */
int weft__text_encode_since(struct weft_text *t, const void *ver, size_t ver_len,
                            struct mp_buf *out);

/*
 * Merges update bytes from any replica. Idempotent and order-free: ops
 * already known are skipped, and an update containing an op whose
 * dependencies (its agent's earlier ops, the items it references) are not
 * here yet is BUFFERED (copied) and retried after every later successful
 * apply, so updates may arrive in any order. weft__text_pending() tells
 * how many updates wait.
 *
 * The bytes are validated in full before anything is applied. Returns
 * WEFT_OK (applied or buffered); WEFT_EPROTO (malformed, a compact update,
 * which only weft__text_apply_from can place, or an op that
 * contradicts what the replica holds, e.g. a reference to a deletion's id;
 * ops before it in the update stay applied); WEFT_ETOOBIG (buffer limit);
 * WEFT_ENOMEM (a prefix of the ops may be applied; applying the update
 * again is safe).
 */
int weft__text_apply(struct weft_text *t, const void *data, size_t len);

/*
 * Like weft__text_apply, for the updates of one agent: a compact update
 * (weft__text_set_compact) is applied with (replica, incarnation) as the
 * agent of its ops; a self-contained update (told apart by its first byte,
 * text_codec.c) is applied as weft__text_apply does, and the agent
 * arguments are ignored. An empty update (len 0) holds no ops and is
 * WEFT_OK. Same buffering (the agent is kept with a buffered update),
 * validation and errors as weft__text_apply; WEFT_EPROTO also if a compact
 * update lists the supplied agent in its table of other agents.
 */
int weft__text_apply_from(struct weft_text *t, uint64_t replica, uint32_t incarnation,
                          const void *data, size_t len);
/* Number of buffered updates waiting for dependencies. */
size_t weft__text_pending(const struct weft_text *t);

/* weft__text_encode flags. */
#define WEFT_TEXT_DROP_DELETED 1u /* leave out the content of deleted text */

/*
 * Whole-document encoding: appends the full history (an update from the
 * empty version) to out. With WEFT_TEXT_DROP_DELETED, inserted text that is
 * deleted now goes out as content-less tombstones: the document converges
 * with every peer the same way, but a replica loaded from it cannot give
 * that text back (its updates carry the same tombstones). Same errors as
 * weft__text_encode_since.
 */
int weft__text_encode(struct weft_text *t, unsigned flags, struct mp_buf *out);

/*
 * Loads a document encoded by weft__text_encode into a new text whose
 * local agent is (replica, incarnation). Returns WEFT_OK and sets *out;
 * WEFT_ECORRUPT (malformed, or incomplete: it depends on ops it does not
 * hold); WEFT_ENOMEM; WEFT_EINVAL. *out is untouched on error.
 */
int weft__text_load(const struct weft_alloc *alloc, uint64_t replica, uint32_t incarnation,
                    const void *data, size_t len, struct weft_text **out);

/*
 * Debugging aid for tests: checks every internal invariant (counters,
 * indexes, id lookups, run coalescing) and returns WEFT_OK or
 * WEFT_ECORRUPT. O(n log n).
 */
int weft__text_check(const struct weft_text *t);

/* Number of runs in document order (for tests and benchmarks). */
size_t weft__text_runs(const struct weft_text *t);

#endif
