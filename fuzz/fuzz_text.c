/*
 * fuzz_text.c - libFuzzer target for the text CRDT's decoders: update bytes
 * (weft__text_apply, and weft__text_apply_from for compact updates) on an
 * empty replica and on one that already holds a
 * small history, and whole documents (weft__text_load). Besides "never
 * crash, never read out of bounds", it checks and abort()s when broken:
 *  - apply returns WEFT_OK or WEFT_EPROTO, load WEFT_OK or WEFT_ECORRUPT;
 *  - every internal invariant holds afterwards (weft__text_check);
 *  - applying the same bytes again changes nothing (idempotence);
 *  - a loaded document re-encodes to bytes that load to the same text.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "weft/weft.h"
#include "core/text.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check(int cond)
{
	if (!cond)
		abort();
}

static char *dump(struct weft_text *t, size_t *len)
{
	char *s = malloc(weft__text_byte_len(t) + 1);

	check(s != NULL);
	check(weft__text_read(t, s, weft__text_byte_len(t), len) == WEFT_OK);
	return s;
}

/* Applies the bytes twice: as a self-contained update, or (compact) as a
 * compact update whose agent is (7, 2), as a TEXT op's envelope gives it. */
static int apply(struct weft_text *t, const uint8_t *data, size_t size, bool compact)
{
	return compact ? weft__text_apply_from(t, 7, 2, data, size)
	               : weft__text_apply(t, data, size);
}

static void try_apply(struct weft_text *t, const uint8_t *data, size_t size, bool compact)
{
	size_t l1, l2;
	char *s1, *s2;
	int rc;

	rc = apply(t, data, size, compact);
	check(rc == WEFT_OK || rc == WEFT_EPROTO);
	check(weft__text_check(t) == WEFT_OK);
	s1 = dump(t, &l1);
	rc = apply(t, data, size, compact);
	check(rc == WEFT_OK || rc == WEFT_EPROTO);
	s2 = dump(t, &l2);
	check(l1 == l2 && memcmp(s1, s2, l1) == 0);
	free(s1);
	free(s2);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct weft_text *t, *l = NULL, *l2 = NULL;
	struct mp_buf b;
	size_t n1, n2;
	char *s1, *s2;
	int rc;

	/* an empty replica */
	check(weft__text_new(NULL, 5, 1, &t) == WEFT_OK);
	try_apply(t, data, size, false);
	weft__text_free(t);
	check(weft__text_new(NULL, 5, 1, &t) == WEFT_OK);
	try_apply(t, data, size, true);
	weft__text_free(t);

	/* a replica with some history by agents 1 and 5 */
	check(weft__text_new(NULL, 1, 1, &t) == WEFT_OK);
	check(weft__text_insert(t, 0, "hello world", 11, NULL) == WEFT_OK);
	check(weft__text_delete(t, 2, 3, NULL) == WEFT_OK);
	check(weft__text_insert(t, 4, "\xc3\xa9\xe2\x82\xac", 5, NULL) == WEFT_OK);
	try_apply(t, data, size, size > 0 && (data[0] & 1));
	weft__text_free(t);

	/* a whole document */
	rc = weft__text_load(NULL, 9, 1, data, size, &l);
	check(rc == WEFT_OK || rc == WEFT_ECORRUPT);
	if (rc == WEFT_OK) {
		check(weft__text_check(l) == WEFT_OK);
		weft__mp_buf_init(&b, NULL, 0);
		check(weft__text_encode(l, 0, &b) == WEFT_OK);
		check(weft__text_load(NULL, 10, 1, b.data, b.len, &l2) == WEFT_OK);
		s1 = dump(l, &n1);
		s2 = dump(l2, &n2);
		check(n1 == n2 && memcmp(s1, s2, n1) == 0);
		free(s1);
		free(s2);
		weft__mp_buf_free(&b);
		weft__text_free(l2);
		weft__text_free(l);
	}
	return 0;
}
