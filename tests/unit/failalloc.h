/*
 * failalloc.h - an allocator for allocation-failure tests (nghttp2's
 * TEST_FAILMALLOC_RUN): counts allocations, and fails the Nth one (and,
 * when `sticky`, every one after it). Header-only, for tests.
 */
#ifndef WEFT_TEST_FAILALLOC_H
#define WEFT_TEST_FAILALLOC_H

#include <stdlib.h>

#include "core/alloc.h"

struct failalloc {
	struct weft_alloc a; /* pass &fa.a wherever an allocator is taken */
	long count;          /* allocations attempted so far */
	long fail_at;        /* 1-based allocation to fail; 0 = never */
	int sticky;          /* fail every allocation after fail_at too */
	long live;           /* allocations not yet freed (leak check) */
};

static void *failalloc_malloc(void *ctx, size_t n)
{
	struct failalloc *f = ctx;
	void *p;

	f->count++;
	if (f->fail_at && (f->count == f->fail_at || (f->sticky && f->count > f->fail_at)))
		return NULL;
	p = malloc(n);
	if (p)
		f->live++;
	return p;
}

static void *failalloc_realloc(void *ctx, void *old, size_t n)
{
	struct failalloc *f = ctx;
	void *p;

	if (!old)
		return failalloc_malloc(ctx, n);
	f->count++;
	if (f->fail_at && (f->count == f->fail_at || (f->sticky && f->count > f->fail_at)))
		return NULL;
	p = realloc(old, n);
	return p;
}

static void failalloc_free(void *ctx, void *p)
{
	struct failalloc *f = ctx;

	if (p)
		f->live--;
	free(p);
}

static inline void failalloc_init(struct failalloc *f, long fail_at, int sticky)
{
	f->a.malloc = failalloc_malloc;
	f->a.realloc = failalloc_realloc;
	f->a.free = failalloc_free;
	f->a.ctx = f;
	f->count = 0;
	f->fail_at = fail_at;
	f->sticky = sticky;
	f->live = 0;
}

#endif
