/*
 * alloc.h - the allocator every core object takes.
 *
 * Each long-lived object (store, document set, authority, session) holds a
 * `const struct weft_alloc *` and allocates only through it, so that an
 * application can supply its own and tests can fail the Nth allocation
 * (nghttp2's TEST_FAILMALLOC_RUN). weft__alloc_default() is libc.
 */
#ifndef WEFT_CORE_ALLOC_H
#define WEFT_CORE_ALLOC_H

#include <stddef.h>

struct weft_alloc {
	void *(*malloc)(void *ctx, size_t size);
	void *(*realloc)(void *ctx, void *p, size_t size);
	void (*free)(void *ctx, void *p);
	void *ctx;
};

/* The libc allocator. Never NULL; the object is static. */
const struct weft_alloc *weft__alloc_default(void);

static inline void *weft__malloc(const struct weft_alloc *a, size_t n)
{
	return a->malloc(a->ctx, n ? n : 1);
}
static inline void *weft__realloc(const struct weft_alloc *a, void *p, size_t n)
{
	return a->realloc(a->ctx, p, n ? n : 1);
}
static inline void weft__free(const struct weft_alloc *a, void *p)
{
	if (p)
		a->free(a->ctx, p);
}
/* calloc-like: zeroed memory for `n` bytes. */
void *weft__zalloc(const struct weft_alloc *a, size_t n);
/* A copy of `len` bytes of `s` plus a NUL. NULL on allocation failure. */
char *weft__strndup(const struct weft_alloc *a, const char *s, size_t len);

#endif
