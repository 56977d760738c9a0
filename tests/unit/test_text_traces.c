/*
 * test_text_traces.c - replays the real editing traces of
 * $WEFT_DATA_DIR/editing-traces (default: the path CMake passes) through
 * the text CRDT and checks the final text equals endContent exactly:
 *  - every sequential trace in local mode (edits on one replica), and in
 *    remote mode (the whole history encoded on that replica, applied to a
 *    fresh one, and loaded as a document);
 *  - the concurrent trace with one replica per agent: before a txn runs on
 *    its agent's replica, the updates of all its ancestors are merged there.
 * Exits 77 (skipped) when the traces are not there.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <zlib.h>

#include "weft/weft.h"
#include "core/text.h"

#ifndef WEFT_TRACE_DIR
#define WEFT_TRACE_DIR "../shared/data"
#endif

static char trace_dir[1024];

static json_t *load_trace(const char *name)
{
	char path[1400];
	gzFile f;
	char *buf = NULL;
	size_t len = 0, cap = 0;
	int n;
	json_t *j;
	json_error_t err;

	snprintf(path, sizeof(path), "%s/%s", trace_dir, name);
	f = gzopen(path, "rb");
	if (!f)
		fail_msg("cannot open %s", path);
	for (;;) {
		if (cap - len < 65536) {
			cap = cap ? cap * 2 : 1 << 20;
			buf = realloc(buf, cap);
			assert_non_null(buf);
		}
		n = gzread(f, buf + len, (unsigned)(cap - len));
		assert_true(n >= 0);
		if (n == 0)
			break;
		len += (size_t)n;
	}
	gzclose(f);
	j = json_loadb(buf, len, 0, &err);
	free(buf);
	if (!j)
		fail_msg("%s: %s", path, err.text);
	return j;
}

static size_t utf8_len(const char *s)
{
	size_t n = 0;

	for (; *s; s++)
		n += (*s & 0xc0) != 0x80;
	return n;
}

static void apply_patches(struct weft_text *t, json_t *patches, struct mp_buf *upd, size_t **offs,
                          size_t *noffs, size_t *capoffs)
{
	size_t i;
	json_t *p;

	json_array_foreach(patches, i, p)
	{
		size_t pos = (size_t)json_integer_value(json_array_get(p, 0));
		size_t del = (size_t)json_integer_value(json_array_get(p, 1));
		const char *ins = json_string_value(json_array_get(p, 2));
		size_t before;

		if (del) {
			before = upd ? upd->len : 0;
			assert_int_equal(weft__text_delete(t, pos, del, upd), WEFT_OK);
			if (upd) {
				if (*noffs + 2 > *capoffs) {
					*capoffs = *capoffs ? *capoffs * 2 : 1024;
					*offs = realloc(*offs, *capoffs * sizeof(**offs));
				}
				(*offs)[(*noffs)++] = before;
				(*offs)[(*noffs)++] = upd->len;
			}
		}
		if (ins && *ins) {
			before = upd ? upd->len : 0;
			assert_int_equal(weft__text_insert(t, pos, ins, strlen(ins), upd), WEFT_OK);
			if (upd) {
				if (*noffs + 2 > *capoffs) {
					*capoffs = *capoffs ? *capoffs * 2 : 1024;
					*offs = realloc(*offs, *capoffs * sizeof(**offs));
				}
				(*offs)[(*noffs)++] = before;
				(*offs)[(*noffs)++] = upd->len;
			}
		}
	}
}

static void assert_text(struct weft_text *t, const char *want)
{
	size_t len, wl = strlen(want);
	char *got = malloc(weft__text_byte_len(t) + 1);

	assert_non_null(got);
	assert_int_equal(weft__text_read(t, got, weft__text_byte_len(t), &len), WEFT_OK);
	got[len] = '\0';
	assert_int_equal(len, wl);
	assert_int_equal(weft__text_len(t), utf8_len(want));
	if (memcmp(got, want, wl) != 0) {
		size_t i = 0;
		while (got[i] == want[i])
			i++;
		fail_msg("text differs at byte %zu", i);
	}
	free(got);
}

static void run_sequential(const char *name)
{
	json_t *j = load_trace(name), *txns, *txn;
	const char *end = json_string_value(json_object_get(j, "endContent"));
	struct weft_text *t, *r, *l;
	struct mp_buf enc;
	size_t i;

	assert_non_null(end);
	txns = json_object_get(j, "txns");
	assert_int_equal(weft__text_new(NULL, 0x1111, 1, &t), WEFT_OK);
	json_array_foreach(txns, i, txn)
	{
		apply_patches(t, json_object_get(txn, "patches"), NULL, NULL, NULL, NULL);
	}
	assert_int_equal(weft__text_check(t), WEFT_OK);
	assert_text(t, end);

	/* remote: the whole history into a fresh replica */
	weft__mp_buf_init(&enc, NULL, 0);
	assert_int_equal(weft__text_encode(t, 0, &enc), WEFT_OK);
	assert_int_equal(weft__text_new(NULL, 0x2222, 1, &r), WEFT_OK);
	assert_int_equal(weft__text_apply(r, enc.data, enc.len), WEFT_OK);
	assert_int_equal(weft__text_pending(r), 0);
	assert_int_equal(weft__text_check(r), WEFT_OK);
	assert_text(r, end);
	assert_int_equal(weft__text_load(NULL, 0x3333, 1, enc.data, enc.len, &l), WEFT_OK);
	assert_text(l, end);
	weft__text_free(l);
	printf("%s: %zu runs, encoded %zu bytes\n", name, weft__text_runs(t), enc.len);
	/* the document without deleted content */
	weft__mp_buf_reset(&enc);
	assert_int_equal(weft__text_encode(t, WEFT_TEXT_DROP_DELETED, &enc), WEFT_OK);
	assert_int_equal(weft__text_load(NULL, 0x3333, 1, enc.data, enc.len, &l), WEFT_OK);
	assert_int_equal(weft__text_check(l), WEFT_OK);
	assert_text(l, end);
	printf("%s: without deleted content %zu bytes\n", name, enc.len);
	weft__mp_buf_free(&enc);
	weft__text_free(l);
	weft__text_free(r);
	weft__text_free(t);
	json_decref(j);
}

static void test_automerge_paper(void **state)
{
	(void)state;
	run_sequential("editing-traces/sequential_traces/automerge-paper.json.gz");
}
static void test_seph_blog1(void **state)
{
	(void)state;
	run_sequential("editing-traces/sequential_traces/seph-blog1.json.gz");
}
static void test_sveltecomponent(void **state)
{
	(void)state;
	run_sequential("editing-traces/sequential_traces/sveltecomponent.json.gz");
}
static void test_friendsforever_flat(void **state)
{
	(void)state;
	run_sequential("editing-traces/sequential_traces/friendsforever_flat.json.gz");
}
static void test_ascii_automerge_paper(void **state)
{
	(void)state;
	run_sequential("editing-traces/sequential_traces/ascii_only/automerge-paper.json.gz");
}

/* Applies txn k and its unapplied ancestors' updates on replica r. */
static void merge_ancestors(struct weft_text *r, json_t *txns, size_t k, char *applied,
                            const struct mp_buf *upd, const size_t *offs, const size_t *first,
                            const size_t *count, size_t *stack, size_t *order)
{
	size_t sp = 0, no = 0, i, idx;
	json_t *pa;

	/* collect the unapplied ancestors (DFS), then apply in index order */
	json_array_foreach(json_object_get(json_array_get(txns, k), "parents"), i, pa)
	{
		idx = (size_t)json_integer_value(pa);
		if (!applied[idx]) {
			applied[idx] = 2;
			stack[sp++] = idx;
		}
	}
	while (sp) {
		size_t x = stack[--sp];
		order[no++] = x;
		json_array_foreach(json_object_get(json_array_get(txns, x), "parents"), i, pa)
		{
			idx = (size_t)json_integer_value(pa);
			if (!applied[idx]) {
				applied[idx] = 2;
				stack[sp++] = idx;
			}
		}
	}
	/* index order is a topological order */
	{
		/* simple sort (ancestor sets are small in practice) */
		size_t x, y;
		for (x = 1; x < no; x++) {
			size_t v = order[x];
			for (y = x; y > 0 && order[y - 1] > v; y--)
				order[y] = order[y - 1];
			order[y] = v;
		}
	}
	for (i = 0; i < no; i++) {
		size_t x = order[i], u;
		applied[x] = 1;
		for (u = first[x]; u < first[x] + count[x]; u++) {
			assert_int_equal(weft__text_apply(r, upd->data + offs[2 * u],
			                                  offs[2 * u + 1] - offs[2 * u]),
			                 WEFT_OK);
		}
	}
}

static void test_concurrent(void **state)
{
	json_t *j = load_trace("editing-traces/concurrent_traces/friendsforever.json.gz");
	json_t *txns = json_object_get(j, "txns"), *txn;
	const char *end = json_string_value(json_object_get(j, "endContent"));
	size_t nag = (size_t)json_integer_value(json_object_get(j, "numAgents"));
	size_t ntx = json_array_size(txns), i, a;
	struct weft_text **reps = calloc(nag, sizeof(*reps));
	char **applied = calloc(nag, sizeof(*applied));
	size_t *first = calloc(ntx, sizeof(size_t)), *count = calloc(ntx, sizeof(size_t));
	size_t *stack = calloc(ntx, sizeof(size_t)), *order = calloc(ntx, sizeof(size_t));
	size_t *offs = NULL, noffs = 0, capoffs = 0;
	struct mp_buf upd;

	(void)state;
	weft__mp_buf_init(&upd, NULL, 0);
	for (a = 0; a < nag; a++) {
		assert_int_equal(weft__text_new(NULL, 0x1000 + a, 1, &reps[a]), WEFT_OK);
		applied[a] = calloc(ntx, 1);
	}
	json_array_foreach(txns, i, txn)
	{
		size_t ag = (size_t)json_integer_value(json_object_get(txn, "agent"));
		merge_ancestors(reps[ag], txns, i, applied[ag], &upd, offs, first, count, stack,
		                order);
		first[i] = noffs / 2;
		apply_patches(reps[ag], json_object_get(txn, "patches"), &upd, &offs, &noffs,
		              &capoffs);
		count[i] = noffs / 2 - first[i];
		applied[ag][i] = 1;
	}
	/* bring every replica up to date with everything */
	for (a = 0; a < nag; a++) {
		size_t u;
		for (i = 0; i < ntx; i++) {
			if (applied[a][i])
				continue;
			for (u = first[i]; u < first[i] + count[i]; u++)
				assert_int_equal(weft__text_apply(reps[a], upd.data + offs[2 * u],
				                                  offs[2 * u + 1] - offs[2 * u]),
				                 WEFT_OK);
		}
		assert_int_equal(weft__text_pending(reps[a]), 0);
		assert_int_equal(weft__text_check(reps[a]), WEFT_OK);
		assert_text(reps[a], end);
		weft__text_free(reps[a]);
		free(applied[a]);
	}
	weft__mp_buf_free(&upd);
	free(offs);
	free(reps);
	free(applied);
	free(first);
	free(count);
	free(stack);
	free(order);
	json_decref(j);
}

int main(void)
{
	const char *env = getenv("WEFT_DATA_DIR");
	char probe[1400];
	FILE *f;
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_sveltecomponent),
	    cmocka_unit_test(test_friendsforever_flat),
	    cmocka_unit_test(test_seph_blog1),
	    cmocka_unit_test(test_automerge_paper),
	    cmocka_unit_test(test_ascii_automerge_paper),
	    cmocka_unit_test(test_concurrent),
	};

	snprintf(trace_dir, sizeof(trace_dir), "%s", env && *env ? env : WEFT_TRACE_DIR);
	snprintf(probe, sizeof(probe), "%s/editing-traces/NOTICE.md", trace_dir);
	f = fopen(probe, "r");
	if (!f) {
		printf("SKIPPED: editing traces not found at %s/editing-traces\n", trace_dir);
		return 77;
	}
	fclose(f);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
