/*
 * alloc.c - the default (libc) allocator and small helpers over any
 * allocator. See alloc.h.
 */
#include <stdlib.h>
#include <string.h>

#include "core/alloc.h"

static void *libc_malloc(void *ctx, size_t n)
{
	(void)ctx;
	return malloc(n);
}

static void *libc_realloc(void *ctx, void *p, size_t n)
{
	(void)ctx;
	return realloc(p, n);
}

static void libc_free(void *ctx, void *p)
{
	(void)ctx;
	free(p);
}

static const struct weft_alloc default_alloc = {
    .malloc = libc_malloc,
    .realloc = libc_realloc,
    .free = libc_free,
    .ctx = NULL,
};

const struct weft_alloc *weft__alloc_default(void)
{
	return &default_alloc;
}

void *weft__zalloc(const struct weft_alloc *a, size_t n)
{
	void *p = weft__malloc(a, n);

	if (p)
		memset(p, 0, n ? n : 1);
	return p;
}

char *weft__strndup(const struct weft_alloc *a, const char *s, size_t len)
{
	char *p = weft__malloc(a, len + 1);

	if (p) {
		memcpy(p, s, len);
		p[len] = '\0';
	}
	return p;
}
