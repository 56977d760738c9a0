/*
 * hlc.c - hybrid logical clock. See hlc.h.
 *
 * Invariant: every value weft__hlc_now returns is strictly greater than
 * h->last before the call (monotonic, unique per clock), whatever the wall
 * clock does.
 */
#include "core/hlc.h"

uint64_t weft__hlc_now(struct weft_hlc *h, uint64_t wall_ms)
{
	uint64_t pt = wall_ms > WEFT_HLC_MS_MAX ? WEFT_HLC_MS_MAX : wall_ms;
	uint64_t last_ms = WEFT_HLC_MS(h->last);
	uint64_t next;

	if (pt > last_ms)
		next = WEFT_HLC_MAKE(pt, 0);
	else if (WEFT_HLC_COUNTER(h->last) < 0xffffu)
		next = h->last + 1;
	else
		next = WEFT_HLC_MAKE(last_ms + 1, 0);
	h->last = next;
	return next;
}

void weft__hlc_observe(struct weft_hlc *h, uint64_t remote)
{
	if (remote > h->last)
		h->last = remote;
}
