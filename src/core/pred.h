/*
 * pred.h - the predicate language: one filter for local queries, live
 * queries, server subscriptions and permission rules (docs/PREDICATES.md is
 * the normative text; this header is its C interface).
 *
 *   status == "open" and (priority >= 3 or tags contains "urgent")
 *       and not exists(archived) and owner == $sub and kind in ["a", "b", 3]
 *
 * A predicate is compiled once from UTF-8 text into an immutable struct
 * weft_pred, then evaluated against documents given as their visible value
 * encoded as a MessagePack map (weft__doc_write_value). Parameters ($name)
 * are bound at evaluation time to caller-supplied MessagePack values. A
 * query adds `order by` keys and a `limit` to a predicate.
 *
 * Threads: compiling, formatting and freeing touch only the objects passed
 * in. A compiled predicate or query is never modified after it is built, so
 * any number of threads may evaluate, compare with and format the same one
 * at the same time (freeing it must wait until they are done).
 *
 * Evaluation never allocates: it reads the document and parameter bytes in
 * place, bounded by their lengths, and uses a bounded amount of stack.
 */
#ifndef WEFT_CORE_PRED_H
#define WEFT_CORE_PRED_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/alloc.h"
#include "core/mp.h"

/* Limits (docs/PREDICATES.md, "Limits"). Going over one is WEFT_ETOOBIG. */
#define WEFT_PRED_MAX_TEXT 65536    /* bytes of the text, and of its canonical form */
#define WEFT_PRED_MAX_DEPTH 32      /* nested '(' / 'not' / '[' */
#define WEFT_PRED_MAX_NODES 4096    /* comparisons, operators, constants, list elements */
#define WEFT_PRED_MAX_LIST 1024     /* elements of one list literal */
#define WEFT_PRED_MAX_PATH 32       /* segments of one field path */
#define WEFT_PRED_MAX_KEY 1024      /* bytes of one path segment */
#define WEFT_PRED_MAX_PARAMS 32     /* distinct parameters in one predicate */
#define WEFT_PRED_MAX_PARAM_NAME 64 /* bytes of one parameter name */
#define WEFT_QUERY_MAX_ORDER 8      /* `order by` keys of one query */

struct weft_pred;
struct weft_query;

/* One parameter binding for evaluation: `$name` takes `value`. */
struct weft_pred_param {
	const char *name;  /* without the '$'; name_len bytes, no NUL needed */
	size_t name_len;   /* bytes of name */
	const void *value; /* exactly one MessagePack value, value_len bytes */
	size_t value_len;  /* bytes of value */
};

/*
 * Compiles predicate text.
 *
 * a: allocator for the result (NULL: weft__alloc_default()); every
 *   allocation, scratch included, goes through it.
 * text/len: UTF-8 text, borrowed for the call (need not be NUL-terminated;
 *   NULL is allowed when len is 0). An empty or blank text means `true`.
 * out: receives the predicate, owned by the caller (weft__pred_free). Set
 *   only on success.
 * err/errlen: on failure, a NUL-terminated English message is written there
 *   (truncated to errlen; err may be NULL when errlen is 0). Syntax and
 *   limit errors read "at LINE:COL (byte OFFSET): what was expected".
 *
 * Errors: WEFT_EINVAL (syntax, bad literal, bad UTF-8, `order by`/`limit`
 * in a plain predicate, NULL out or text), WEFT_ETOOBIG (a limit above),
 * WEFT_ENOMEM (nothing is leaked). Any thread.
 */
int weft__pred_compile(const struct weft_alloc *a, const char *text, size_t len,
                       struct weft_pred **out, char *err, size_t errlen);

/* Frees a predicate from weft__pred_compile. NULL is a no-op. */
void weft__pred_free(struct weft_pred *p);

/*
 * Evaluates p against one document.
 *
 * doc/doc_len: the document's visible value, a MessagePack map
 *   (weft__doc_write_value), borrowed for the call. Only the parts the
 *   predicate needs are read; each is checked as it is read.
 * params/nparams: bindings for the predicate's parameters (NULL when
 *   nparams is 0), borrowed for the call. The first binding of a name
 *   counts; bindings the predicate does not use are ignored.
 * match: receives the result. Set only on success.
 *
 * Errors: WEFT_EINVAL when a parameter the predicate uses is unbound, its
 * value is not exactly one well-formed MessagePack value, or a parameter
 * used with `in` is not an array (all checked before the document is
 * read, whatever the document); when doc is not a MessagePack map or bytes
 * the evaluator reads are malformed (an `and`/`or` that is decided early
 * does not read the rest, so a malformed part it skips is not noticed).
 * Never allocates. Any thread, concurrently on the same p.
 */
int weft__pred_eval(const struct weft_pred *p, const void *doc, size_t doc_len,
                    const struct weft_pred_param *params, size_t nparams, bool *match);

/*
 * Appends the canonical text of p to out (no NUL): minimal parentheses,
 * single spaces, canonical literals and keys (docs/PREDICATES.md,
 * "Canonical form"). Compiling that text gives a predicate with the same
 * meaning whose canonical text is the same bytes, and it is never longer
 * than WEFT_PRED_MAX_TEXT. Errors: out->err (WEFT_ENOMEM, WEFT_ETOOBIG).
 * Any thread.
 */
int weft__pred_format(const struct weft_pred *p, struct mp_buf *out);

/* Number of distinct parameters p uses (at most WEFT_PRED_MAX_PARAMS). */
size_t weft__pred_param_count(const struct weft_pred *p);
/* The i-th distinct parameter's name, without '$', NUL-terminated, in order
 * of first appearance in the text; NULL when i is out of range. Borrowed
 * from p: valid until weft__pred_free. */
const char *weft__pred_param_name(const struct weft_pred *p, size_t i);

/*
 * The total order over MessagePack values that `order by` sorts with
 * (docs/PREDICATES.md, "Total order"): missing < null < false < true <
 * numbers < strings < binaries < arrays < maps. a/alen and b/blen are each
 * one value; NULL (or a length of 0) means "missing", and bytes that are
 * not exactly one well-formed value also compare as missing. Returns -1, 0
 * or 1. Never allocates. Any thread.
 */
int weft__pred_value_cmp(const void *a, size_t alen, const void *b, size_t blen);

/*
 * Compiles query text: a predicate (possibly empty), then optionally
 * `order by PATH [asc|desc] (, PATH [asc|desc])*`, then optionally
 * `limit N`. Parameters, ownership, threads and errors as
 * weft__pred_compile (order by and limit are allowed here). *out is freed
 * with weft__query_free.
 */
int weft__query_parse(const struct weft_alloc *a, const char *text, size_t len,
                      struct weft_query **out, char *err, size_t errlen);

/* Frees a query. NULL is a no-op. */
void weft__query_free(struct weft_query *q);

/* The query's predicate, borrowed from q (valid until weft__query_free). */
const struct weft_pred *weft__query_pred(const struct weft_query *q);

/* Whether the query has a `limit`; if so *n (may be NULL) receives it
 * (0 .. INT64_MAX). */
bool weft__query_limit(const struct weft_query *q, uint64_t *n);

/* Number of `order by` keys (0 .. WEFT_QUERY_MAX_ORDER). */
size_t weft__query_order_count(const struct weft_query *q);

/*
 * Compares two documents (MessagePack maps, as for weft__pred_eval) by the
 * query's `order by` keys: the value at each key's path in the total order
 * of weft__pred_value_cmp, reversed for `desc`, the first key that differs
 * deciding. A path that is absent, or that cannot be read because the
 * bytes are malformed, is "missing". Returns -1, 0 (equal on every key, or
 * no keys; callers that need a strict order break ties by collection and
 * id) or 1. A total preorder on any bytes, so it is safe as a qsort
 * comparator. Never allocates. Any thread.
 */
int weft__query_cmp(const struct weft_query *q, const void *a, size_t alen, const void *b,
                    size_t blen);

/* Appends the canonical text of the query (the predicate's, then its
 * clauses) to out, as weft__pred_format. Errors: out->err. Any thread. */
int weft__query_format(const struct weft_query *q, struct mp_buf *out);

#endif
