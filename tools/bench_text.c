/*
 * bench_text.c - `weft bench text TRACE.json.gz [--mode local|remote]
 * [--runs N]`: replays an editing trace (the format of the editing-traces
 * NOTICE) through the text CRDT and prints one JSON object.
 *
 * Sequential traces: `local` applies every patch as a local edit on one
 * replica; `remote` encodes the whole history on a replica that made it and
 * merges it into a fresh replica. Concurrent traces: each agent edits its
 * own replica, merging the updates of a transaction's parents before
 * applying it (both modes do this; `remote` then also merges the final
 * history into a fresh replica). `ms` is the median over the runs and
 * excludes decompressing and parsing the trace. The final text is checked
 * against the trace's endContent; a mismatch is an error (exit 1), never a
 * number.
 *
 * Output fields: trace, mode, ops, ms, final_len (code points),
 * final_sha256 (of the final text as UTF-8), encoded_bytes (whole document
 * without deleted content), encoded_full_bytes (with it), load_ms (loading
 * encoded_bytes), runs, and two averages per patch of the trace (a patch
 * that deletes and inserts makes two updates):
 *   - avg_update_bytes: the compact update (weft__text_set_compact), the
 *     CRDT payload a TEXT op carries inside a weft op, whose envelope
 *     supplies the agent;
 *   - avg_update_full_bytes: the self-contained update (agent header
 *     included), as weft__text_encode_since sends between peers.
 * The reference replay is made once in each form (the compact replay's
 * replicas merge each other's updates with weft__text_apply_from), and
 * both must reach endContent. The timed runs (`ms`) of a concurrent trace
 * exchange self-contained updates.
 */
#include <limits.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>
#include <zlib.h>

#include "weft/weft.h"
#include "core/sha256.h"
#include "core/text.h"
#include "tools/bench.h"

#define MAX_RUNS 64
#define MAX_TRACE_BYTES (512u << 20) /* decompressed */

struct patch {
	size_t pos;      /* code points */
	size_t del;      /* code points */
	const char *ins; /* UTF-8, borrowed from the JSON */
	size_t ins_len;  /* bytes */
};

struct txn {
	size_t agent; /* concurrent traces only */
	size_t first; /* index of its first patch */
	size_t npatches;
	size_t *parents; /* indexes of earlier txns */
	size_t nparents;
	size_t upd_first; /* its updates: [upd_first, upd_first + npatches) */
};

struct trace {
	json_t *root;
	const char *end; /* endContent */
	size_t end_len;
	bool concurrent;
	size_t nagents;
	struct patch *p;
	size_t np;
	struct txn *t;
	size_t nt;
};

static double now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static int cmp_d(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

static int cmp_size(const void *a, const void *b)
{
	size_t x = *(const size_t *)a, y = *(const size_t *)b;

	return x < y ? -1 : x > y;
}

static double median(double *v, int n)
{
	qsort(v, (size_t)n, sizeof(*v), cmp_d);
	return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

/* Reads and parses a gzipped (or plain) JSON file. */
static json_t *load_json(const char *path, char *err, size_t errlen)
{
	gzFile f = gzopen(path, "rb");
	char *buf = NULL;
	size_t len = 0, cap = 0;
	json_error_t je;
	json_t *j = NULL;
	int n;

	if (!f) {
		snprintf(err, errlen, "cannot open %s", path);
		return NULL;
	}
	for (;;) {
		if (len + 65536 > cap) {
			char *nb;

			cap = cap ? cap * 2 : 1 << 20;
			if (cap > MAX_TRACE_BYTES || !(nb = realloc(buf, cap))) {
				snprintf(err, errlen, "%s: too large or out of memory", path);
				goto out;
			}
			buf = nb;
		}
		n = gzread(f, buf + len, 65536);
		if (n < 0) {
			snprintf(err, errlen, "%s: not a readable gzip file", path);
			goto out;
		}
		if (n == 0)
			break;
		len += (size_t)n;
	}
	j = json_loadb(buf, len, 0, &je);
	if (!j)
		snprintf(err, errlen, "%s: bad JSON at line %d: %s", path, je.line, je.text);
out:
	gzclose(f);
	free(buf);
	return j;
}

static bool get_size(json_t *v, size_t *out)
{
	if (!json_is_integer(v) || json_integer_value(v) < 0)
		return false;
	*out = (size_t)json_integer_value(v);
	return true;
}

/* Checks the trace's shape and flattens its patches. */
static int trace_parse(struct trace *tr, char *err, size_t errlen)
{
	json_t *txns = json_object_get(tr->root, "txns"), *txn, *pp, *pa;
	json_t *end = json_object_get(tr->root, "endContent");
	size_t ti, pi, total = 0;

	if (!json_is_array(txns) || !json_is_string(end)) {
		snprintf(err, errlen, "not an editing trace (txns, endContent)");
		return -1;
	}
	tr->end = json_string_value(end);
	tr->end_len = json_string_length(end);
	tr->concurrent =
	    json_is_string(json_object_get(tr->root, "kind")) &&
	    strcmp(json_string_value(json_object_get(tr->root, "kind")), "concurrent") == 0;
	if (tr->concurrent && (!get_size(json_object_get(tr->root, "numAgents"), &tr->nagents) ||
	                       tr->nagents == 0 || tr->nagents > 4096)) {
		snprintf(err, errlen, "concurrent trace without a sane numAgents");
		return -1;
	}
	json_array_foreach(txns, ti, txn)
	{
		pa = json_object_get(txn, "patches");
		if (!json_is_array(pa)) {
			snprintf(err, errlen, "txn %zu has no patches", ti);
			return -1;
		}
		total += json_array_size(pa);
	}
	tr->nt = json_array_size(txns);
	tr->p = calloc(total ? total : 1, sizeof(*tr->p));
	tr->t = calloc(tr->nt ? tr->nt : 1, sizeof(*tr->t));
	if (!tr->p || !tr->t) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	json_array_foreach(txns, ti, txn)
	{
		struct txn *t = &tr->t[ti];
		json_t *parents = json_object_get(txn, "parents");

		t->first = tr->np;
		json_array_foreach(json_object_get(txn, "patches"), pi, pp)
		{
			struct patch *p = &tr->p[tr->np];
			json_t *ins = json_array_get(pp, 2);

			if (!json_is_array(pp) || json_array_size(pp) != 3 ||
			    !get_size(json_array_get(pp, 0), &p->pos) ||
			    !get_size(json_array_get(pp, 1), &p->del) || !json_is_string(ins)) {
				snprintf(err, errlen, "txn %zu patch %zu is not [pos, del, text]",
				         ti, pi);
				return -1;
			}
			p->ins = json_string_value(ins);
			p->ins_len = json_string_length(ins);
			tr->np++;
		}
		t->npatches = tr->np - t->first;
		if (!tr->concurrent)
			continue;
		if (!get_size(json_object_get(txn, "agent"), &t->agent) ||
		    t->agent >= tr->nagents || !json_is_array(parents)) {
			snprintf(err, errlen, "txn %zu: bad agent or parents", ti);
			return -1;
		}
		t->nparents = json_array_size(parents);
		t->parents = calloc(t->nparents ? t->nparents : 1, sizeof(size_t));
		if (!t->parents) {
			snprintf(err, errlen, "out of memory");
			return -1;
		}
		for (size_t k = 0; k < t->nparents; k++) {
			if (!get_size(json_array_get(parents, k), &t->parents[k]) ||
			    t->parents[k] >= ti) {
				snprintf(err, errlen, "txn %zu: a parent is not an earlier txn",
				         ti);
				return -1;
			}
		}
	}
	return 0;
}

static void trace_free(struct trace *tr)
{
	for (size_t i = 0; tr->t && i < tr->nt; i++)
		free(tr->t[i].parents);
	free(tr->t);
	free(tr->p);
	json_decref(tr->root);
}

/* Applies patches [first, first + n) as local edits. With `upd`, each
 * edit's update is appended and its end offset recorded in offs[]. */
static int apply_patches(struct weft_text *t, const struct patch *p, size_t n, struct mp_buf *upd,
                         size_t *offs)
{
	int rc;

	for (size_t i = 0; i < n; i++) {
		if (p[i].del && (rc = weft__text_delete(t, p[i].pos, p[i].del, upd)) != WEFT_OK)
			return rc;
		if (p[i].ins_len &&
		    (rc = weft__text_insert(t, p[i].pos, p[i].ins, p[i].ins_len, upd)) != WEFT_OK)
			return rc;
		if (offs)
			offs[i] = upd->len;
	}
	return WEFT_OK;
}

#define AGENT_BASE 0x1000 /* replica id of a concurrent trace's agent 0 */

/*
 * Replays a concurrent trace: one replica per agent; before applying a txn
 * on its agent's replica, the updates of every ancestor it has not seen
 * are applied, in index order (a topological order). Leaves every update
 * in `upd` (offs[i] = end of patch i's update), compact ones if `compact`,
 * and returns replica 0 after it has merged everything.
 */
static int replay_concurrent(const struct trace *tr, bool compact, struct mp_buf *upd, size_t *offs,
                             struct weft_text **out)
{
	struct weft_text **reps = calloc(tr->nagents, sizeof(*reps));
	char *seen = calloc(tr->nagents * (tr->nt ? tr->nt : 1), 1);
	size_t *stack = calloc(tr->nt ? tr->nt : 1, sizeof(size_t));
	size_t *order = calloc(tr->nt ? tr->nt : 1, sizeof(size_t));
	int rc = WEFT_ENOMEM;

	if (!reps || !seen || !stack || !order)
		goto out;
	for (size_t a = 0; a < tr->nagents; a++) {
		if ((rc = weft__text_new(NULL, AGENT_BASE + a, 1, &reps[a])) != WEFT_OK)
			goto out;
		weft__text_set_compact(reps[a], compact);
	}
	for (size_t i = 0; i <= tr->nt; i++) {
		size_t ag = i < tr->nt ? tr->t[i].agent : 0;
		char *mine = seen + ag * tr->nt;
		size_t sp = 0, no = 0;

		/* Collect the unseen ancestors of txn i (every unseen txn for
		 * the final merge into replica 0), then apply them in index
		 * order, which is a topological order. */
		if (i == tr->nt) {
			for (size_t k = 0; k < tr->nt; k++)
				if (!mine[k])
					order[no++] = k;
		} else {
			for (size_t k = 0; k < tr->t[i].nparents; k++)
				stack[sp++] = tr->t[i].parents[k];
			while (sp) {
				size_t x = stack[--sp];

				if (mine[x])
					continue;
				mine[x] = 2;
				order[no++] = x;
				for (size_t k = 0; k < tr->t[x].nparents && sp < tr->nt; k++)
					stack[sp++] = tr->t[x].parents[k];
			}
			qsort(order, no, sizeof(*order), cmp_size);
		}
		for (size_t o = 0; o < no; o++) {
			size_t x = order[o];
			const struct txn *t = &tr->t[x];

			mine[x] = 1;
			for (size_t k = t->first; k < t->first + t->npatches; k++) {
				size_t from = k ? offs[k - 1] : 0;

				if (compact)
					rc = weft__text_apply_from(reps[ag], AGENT_BASE + t->agent,
					                           1, upd->data + from,
					                           offs[k] - from);
				else
					rc = weft__text_apply(reps[ag], upd->data + from,
					                      offs[k] - from);
				if (rc != WEFT_OK)
					goto out;
			}
		}
		if (i == tr->nt)
			break;
		rc = apply_patches(reps[ag], tr->p + tr->t[i].first, tr->t[i].npatches, upd,
		                   offs + tr->t[i].first);
		if (rc != WEFT_OK)
			goto out;
		mine[i] = 1;
	}
	*out = reps[0];
	reps[0] = NULL;
	rc = WEFT_OK;
out:
	for (size_t a = 0; reps && a < tr->nagents; a++)
		weft__text_free(reps[a]);
	free(reps);
	free(seen);
	free(stack);
	free(order);
	return rc;
}

/* The reference replay of the whole trace, keeping each edit's update. */
static int replay(const struct trace *tr, bool compact, struct mp_buf *upd, size_t *offs,
                  struct weft_text **out)
{
	int rc;

	if (tr->concurrent)
		return replay_concurrent(tr, compact, upd, offs, out);
	if ((rc = weft__text_new(NULL, 0x9e3779b97f4a7c15ull, 1, out)) != WEFT_OK)
		return rc;
	weft__text_set_compact(*out, compact);
	return apply_patches(*out, tr->p, tr->np, upd, offs);
}

/* Whether t's visible text is end[0..len). */
static bool text_is(const struct weft_text *t, const char *end, size_t len)
{
	size_t n = weft__text_byte_len(t);
	char *buf = malloc(n + 1);
	bool same = buf && weft__text_read(t, buf, n + 1, &n) == WEFT_OK && n == len &&
	            memcmp(buf, end, n) == 0;

	free(buf);
	return same;
}

static int usage(void)
{
	fprintf(stderr, "usage: weft bench text TRACE.json.gz [--mode local|remote] [--runs N]\n");
	return 2;
}

int weft__tool_bench_text(int argc, char **argv)
{
	const char *path = NULL, *mode = "local";
	struct trace tr = {0};
	struct mp_buf enc, full, upd, cupd;
	struct weft_text *src = NULL;
	double ms[MAX_RUNS], lms[MAX_RUNS];
	size_t *offs = NULL, len;
	uint8_t digest[32];
	char err[512] = "", *text = NULL;
	int runs = 5, status = 1;
	bool remote;

	for (int i = 0; i < argc; i++) {
		if (strcmp(argv[i], "--mode") == 0 && i + 1 < argc) {
			mode = argv[++i];
		} else if (strcmp(argv[i], "--runs") == 0 && i + 1 < argc) {
			char *end;
			long v = strtol(argv[++i], &end, 10);

			if (*end != '\0' || v < 1 || v > MAX_RUNS)
				return usage();
			runs = (int)v;
		} else if (strcmp(argv[i], "--help") == 0) {
			printf("usage: weft bench text TRACE.json.gz [--mode local|remote] [--runs "
			       "N]\n");
			return 0;
		} else if (argv[i][0] == '-' || path) {
			return usage();
		} else {
			path = argv[i];
		}
	}
	if (!path || (strcmp(mode, "local") != 0 && strcmp(mode, "remote") != 0))
		return usage();
	remote = strcmp(mode, "remote") == 0;

	weft__mp_buf_init(&upd, NULL, 0);
	weft__mp_buf_init(&cupd, NULL, 0);
	weft__mp_buf_init(&enc, NULL, 0);
	weft__mp_buf_init(&full, NULL, 0);
	tr.root = load_json(path, err, sizeof(err));
	if (!tr.root || trace_parse(&tr, err, sizeof(err)) != 0)
		goto out;
	offs = calloc(tr.np ? tr.np : 1, sizeof(*offs));
	if (!offs) {
		snprintf(err, sizeof(err), "out of memory");
		goto out;
	}

	/* The reference replays: per-edit updates in the compact form, then in
	 * the self-contained one (which the timed runs reuse), and the encoded
	 * document. */
	for (int compact = 1; compact >= 0; compact--) {
		weft__text_free(src);
		src = NULL;
		if (replay(&tr, compact, compact ? &cupd : &upd, offs, &src) != WEFT_OK) {
			snprintf(err, sizeof(err), "replaying the trace failed (bad positions?)");
			goto out;
		}
		if (compact && (cupd.err || !text_is(src, tr.end, tr.end_len))) {
			snprintf(err, sizeof(err),
			         "compact replay: final text differs from endContent");
			goto out;
		}
	}
	if (weft__text_encode(src, WEFT_TEXT_DROP_DELETED, &enc) != WEFT_OK ||
	    weft__text_encode(src, 0, &full) != WEFT_OK || upd.err) {
		snprintf(err, sizeof(err), "encoding failed");
		goto out;
	}
	len = weft__text_byte_len(src);
	text = malloc(len + 1);
	if (!text || weft__text_read(src, text, len + 1, &len) != WEFT_OK) {
		snprintf(err, sizeof(err), "out of memory");
		goto out;
	}
	if (len != tr.end_len || memcmp(text, tr.end, len) != 0) {
		snprintf(err, sizeof(err), "final text differs from endContent");
		goto out;
	}

	for (int r = 0; r < runs; r++) {
		struct weft_text *t = NULL, *l = NULL;
		struct mp_buf scratch;
		double t0;
		int rc;

		weft__mp_buf_init(&scratch, NULL, 0);
		t0 = now_ms();
		if (remote) {
			rc = weft__text_new(NULL, 0x1234567890abcdefull, 1, &t);
			if (rc == WEFT_OK)
				rc = weft__text_apply(t, full.data, full.len);
		} else if (tr.concurrent) {
			rc = replay_concurrent(&tr, false, &scratch, offs, &t);
		} else {
			rc = weft__text_new(NULL, 0x1234567890abcdefull, 1, &t);
			if (rc == WEFT_OK)
				rc = apply_patches(t, tr.p, tr.np, NULL, NULL);
		}
		ms[r] = now_ms() - t0;
		if (rc == WEFT_OK && weft__text_len(t) != weft__text_len(src))
			rc = WEFT_EPROTO;
		weft__text_free(t);
		weft__mp_buf_free(&scratch);
		t0 = now_ms();
		if (rc == WEFT_OK)
			rc = weft__text_load(NULL, 0x42, 1, enc.data, enc.len, &l);
		lms[r] = now_ms() - t0;
		weft__text_free(l);
		if (rc != WEFT_OK) {
			snprintf(err, sizeof(err), "run %d failed: %s", r, weft_strerror(rc));
			goto out;
		}
	}

	weft__sha256(text, len, digest);
	printf("{\"trace\":");
	{
		json_t *s = json_string(path);
		char *q = s ? json_dumps(s, JSON_ENCODE_ANY) : NULL;

		printf("%s", q ? q : "null");
		free(q);
		json_decref(s);
	}
	printf(",\"mode\":\"%s\",\"concurrent\":%s,\"ops\":%zu,\"ms\":%.3f,\"final_len\":%zu,"
	       "\"final_sha256\":\"",
	       mode, tr.concurrent ? "true" : "false", tr.np, median(ms, runs),
	       weft__text_len(src));
	for (int i = 0; i < 32; i++)
		printf("%02x", digest[i]);
	printf("\",\"encoded_bytes\":%zu,\"encoded_full_bytes\":%zu,\"avg_update_bytes\":%.2f,"
	       "\"avg_update_full_bytes\":%.2f,\"load_ms\":%.3f,\"runs\":%d}\n",
	       enc.len, full.len, tr.np ? (double)cupd.len / (double)tr.np : 0.0,
	       tr.np ? (double)upd.len / (double)tr.np : 0.0, median(lms, runs), runs);
	status = 0;
out:
	if (status != 0)
		fprintf(stderr, "weft: bench text: %s\n", err[0] ? err : "failed");
	free(text);
	free(offs);
	weft__text_free(src);
	weft__mp_buf_free(&enc);
	weft__mp_buf_free(&full);
	weft__mp_buf_free(&upd);
	weft__mp_buf_free(&cupd);
	trace_free(&tr);
	return status;
}
