/*
 * hlc.h - hybrid logical clock (Kulkarni et al. 2014).
 *
 * An HLC timestamp is one uint64: the high 48 bits are milliseconds since
 * the Unix epoch (good until year 10889), the low 16 bits a logical counter.
 * Comparing two timestamps as integers compares them as HLCs. A write's
 * stamp is (hlc, replica id); ties on hlc are broken by the replica id, so
 * stamps are totally ordered and unique: one replica never issues the same
 * hlc twice.
 *
 * The clock takes physical time as an argument (sans-I/O): callers pass
 * their wall clock, the simulator passes its own.
 */
#ifndef WEFT_CORE_HLC_H
#define WEFT_CORE_HLC_H

#include <stdint.h>

#define WEFT_HLC_MS_MAX ((UINT64_C(1) << 48) - 1)
#define WEFT_HLC_MAKE(ms, c) (((uint64_t)(ms) << 16) | (uint64_t)(c))
#define WEFT_HLC_MS(h) ((h) >> 16)
#define WEFT_HLC_COUNTER(h) ((h)&0xffffu)

struct weft_hlc {
	uint64_t last; /* highest timestamp issued or observed */
};

/* A write's identity in LWW comparisons. */
struct weft_stamp {
	uint64_t hlc;     /* WEFT_HLC_MAKE(ms, counter); 0 = "never" */
	uint64_t replica; /* writer's replica id */
};

static inline int weft__stamp_cmp(struct weft_stamp a, struct weft_stamp b)
{
	if (a.hlc != b.hlc)
		return a.hlc < b.hlc ? -1 : 1;
	if (a.replica != b.replica)
		return a.replica < b.replica ? -1 : 1;
	return 0;
}

static inline int weft__stamp_is_zero(struct weft_stamp s)
{
	return s.hlc == 0 && s.replica == 0;
}

static inline struct weft_stamp weft__stamp_max(struct weft_stamp a, struct weft_stamp b)
{
	return weft__stamp_cmp(a, b) >= 0 ? a : b;
}

/* Starts a clock at `last` (0, or the persisted high-water mark). */
static inline void weft__hlc_init(struct weft_hlc *h, uint64_t last)
{
	h->last = last;
}

/*
 * A timestamp for a local event at physical time `wall_ms`: greater than
 * every timestamp issued or observed before. When the wall clock is behind
 * (stepped back, or a remote clock ahead), the physical part stays and the
 * counter advances; when the counter is exhausted the physical part is
 * advanced by one instead, so the counter never wraps.
 */
uint64_t weft__hlc_now(struct weft_hlc *h, uint64_t wall_ms);

/* Observes a timestamp from another replica: later local timestamps will
 * be greater than it. */
void weft__hlc_observe(struct weft_hlc *h, uint64_t remote);

#endif
