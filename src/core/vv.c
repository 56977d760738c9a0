/*
 * vv.c - version vectors (see vv.h for the prefix argument).
 *
 * A vector is a sorted array of (replica, hlc) with non-zero hlc; merge
 * is pointwise max, so it is commutative, associative and idempotent, and
 * canonical: equal vectors have equal arrays and equal bytes. Functions
 * that can fail allocate before they change anything.
 */
#include <string.h>

#include "weft/weft.h"
#include "core/vv.h"

void weft__vv_init(struct weft_vv *v)
{
	v->e = NULL;
	v->len = v->cap = 0;
}

void weft__vv_free(const struct weft_alloc *a, struct weft_vv *v)
{
	weft__free(a, v->e);
	weft__vv_init(v);
}

/* Index where replica is or would go; *found tells which. */
static uint32_t vv_search(const struct weft_vv *v, uint64_t replica, int *found)
{
	uint32_t lo = 0, hi = v->len;

	*found = 0;
	while (lo < hi) {
		uint32_t mid = lo + (hi - lo) / 2;

		if (v->e[mid].replica == replica) {
			*found = 1;
			return mid;
		}
		if (v->e[mid].replica < replica)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

uint64_t weft__vv_get(const struct weft_vv *v, uint64_t replica)
{
	int found;
	uint32_t i = vv_search(v, replica, &found);

	return found ? v->e[i].hlc : 0;
}

int weft__vv_bump(const struct weft_alloc *a, struct weft_vv *v, uint64_t replica, uint64_t hlc,
                  int *changed)
{
	int found;
	uint32_t i;

	if (hlc == 0)
		return WEFT_OK;
	i = vv_search(v, replica, &found);
	if (found) {
		if (hlc > v->e[i].hlc) {
			v->e[i].hlc = hlc;
			if (changed)
				*changed = 1;
		}
		return WEFT_OK;
	}
	if (v->len == v->cap) {
		uint32_t cap = v->cap ? v->cap * 2 : 2;
		struct weft_vv_entry *e;

		if (v->cap > UINT32_MAX / 2)
			return WEFT_ENOMEM;
		e = weft__realloc(a, v->e, (size_t)cap * sizeof(*e));
		if (!e)
			return WEFT_ENOMEM;
		v->e = e;
		v->cap = cap;
	}
	memmove(v->e + i + 1, v->e + i, (v->len - i) * sizeof(*v->e));
	v->e[i].replica = replica;
	v->e[i].hlc = hlc;
	v->len++;
	if (changed)
		*changed = 1;
	return WEFT_OK;
}

int weft__vv_join(const struct weft_alloc *a, struct weft_vv *dst, const struct weft_vv *src)
{
	struct weft_vv_entry *e;
	uint32_t i = 0, j = 0, k = 0, extra = 0;

	/* Fast path: every replica of src is already in dst. */
	for (uint32_t s = 0; s < src->len; s++) {
		int found;

		vv_search(dst, src->e[s].replica, &found);
		extra += !found;
	}
	if (extra == 0) {
		for (uint32_t s = 0; s < src->len; s++)
			weft__vv_bump(a, dst, src->e[s].replica, src->e[s].hlc, NULL);
		return WEFT_OK;
	}
	if ((size_t)dst->len + extra > UINT32_MAX)
		return WEFT_ENOMEM;
	e = weft__malloc(a, ((size_t)dst->len + extra) * sizeof(*e));
	if (!e)
		return WEFT_ENOMEM;
	while (i < dst->len || j < src->len) {
		if (j == src->len || (i < dst->len && dst->e[i].replica < src->e[j].replica)) {
			e[k++] = dst->e[i++];
		} else if (i == dst->len || src->e[j].replica < dst->e[i].replica) {
			e[k++] = src->e[j++];
		} else {
			e[k] = dst->e[i++];
			if (src->e[j].hlc > e[k].hlc)
				e[k].hlc = src->e[j].hlc;
			k++;
			j++;
		}
	}
	weft__free(a, dst->e);
	dst->e = e;
	dst->len = dst->cap = k;
	return WEFT_OK;
}

int weft__vv_exceeds(const struct weft_vv *d, const struct weft_vv *p)
{
	uint32_t j = 0;

	/* Both sorted: one merge pass. */
	for (uint32_t i = 0; i < d->len; i++) {
		while (j < p->len && p->e[j].replica < d->e[i].replica)
			j++;
		if (j == p->len || p->e[j].replica != d->e[i].replica || d->e[i].hlc > p->e[j].hlc)
			return 1;
	}
	return 0;
}

int weft__vv_covers(const struct weft_vv *v, const struct weft_vv *w)
{
	return !weft__vv_exceeds(w, v);
}

uint64_t weft__vv_max_hlc(const struct weft_vv *v)
{
	uint64_t m = 0;

	for (uint32_t i = 0; i < v->len; i++)
		if (v->e[i].hlc > m)
			m = v->e[i].hlc;
	return m;
}

void weft__vv_encode(const struct weft_vv *v, struct mp_buf *out)
{
	weft__mp_write_map(out, v->len);
	for (uint32_t i = 0; i < v->len; i++) {
		weft__mp_write_uint(out, v->e[i].replica);
		weft__mp_write_uint(out, v->e[i].hlc);
	}
}

int weft__vv_decode(const struct weft_alloc *a, struct mp_reader *r, struct weft_vv *v)
{
	uint32_t n;

	weft__vv_init(v);
	if (weft__mp_read_map(r, &n) != WEFT_OK)
		return WEFT_EPROTO;
	/* read_map bounded n by the bytes left (two per entry at least). */
	if (n && !(v->e = weft__malloc(a, (size_t)n * sizeof(*v->e))))
		return WEFT_ENOMEM;
	v->cap = n;
	for (uint32_t i = 0; i < n; i++) {
		struct weft_vv_entry *e = &v->e[i];

		if (weft__mp_read_uint(r, &e->replica) != WEFT_OK ||
		    weft__mp_read_uint(r, &e->hlc) != WEFT_OK || e->hlc == 0 ||
		    (i > 0 && e[-1].replica >= e->replica)) {
			weft__vv_free(a, v);
			return WEFT_EPROTO;
		}
		v->len++;
	}
	return WEFT_OK;
}
