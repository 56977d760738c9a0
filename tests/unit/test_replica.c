/*
 * test_replica.c - the public replica API on a real SQLite file: writes
 * are visible at once, everything reloads on reopen (documents, pending
 * ops, clock, incarnation), a second open of the same file is refused,
 * bad input is refused with nothing changed, and the write-behind thread
 * makes writes durable (weft_flush). Runs under TSan in CI: the writer
 * thread meets the application thread here.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "weft/weft.h"

static char dir[256];
static char path[300];

static int setup(void **state)
{
	(void)state;
	snprintf(dir, sizeof(dir), "/tmp/weft-test-replica-XXXXXX");
	if (!mkdtemp(dir))
		return -1;
	snprintf(path, sizeof(path), "%s/r.db", dir);
	return 0;
}

static int teardown(void **state)
{
	char cmd[400];

	(void)state;
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	return system(cmd) == 0 ? 0 : -1;
}

static void expect_doc(weft_db *db, const char *coll, const char *id, const char *json)
{
	char *out = NULL;
	size_t len = 0;

	assert_int_equal(weft_get_json(db, coll, id, &out, &len), WEFT_OK);
	assert_string_equal(out, json);
	assert_int_equal(len, strlen(json));
	weft_free(out);
}

static int count_cb(void *ctx, const char *coll, const char *id, const char *json, size_t len)
{
	int *n = ctx;

	(void)coll;
	(void)id;
	(void)json;
	(void)len;
	(*n)++;
	return 0;
}

static void test_write_read_reopen(void **state)
{
	weft_db *db, *db2;
	weft_options o;
	char *dump1, *dump2, *out;
	uint32_t inc;
	uint64_t replica;
	int n = 0;

	(void)state;
	weft_options_init(&o);
	o.flush_interval_ms = 5;
	assert_int_equal(weft_open(path, &o, &db), WEFT_OK);
	inc = weft_incarnation(db);
	replica = weft_replica_id(db);
	assert_int_equal(inc, 1);
	assert_true(replica != 0);

	assert_int_equal(
	    weft_put_json(db, "todos", "1", "{\"title\":\"milk\",\"n\":1}", (size_t)-1), WEFT_OK);
	expect_doc(db, "todos", "1", "{\"n\":1,\"title\":\"milk\"}");
	assert_int_equal(weft_put_json(db, "todos", "1", "{\"done\":true,\"n\":2.5}", (size_t)-1),
	                 WEFT_OK);
	expect_doc(db, "todos", "1", "{\"done\":true,\"n\":2.5,\"title\":\"milk\"}");
	for (int i = 0; i < 500; i++) {
		char id[16];

		snprintf(id, sizeof(id), "k%03d", i);
		assert_int_equal(weft_put_json(db, "bulk", id, "{\"i\":1}", (size_t)-1), WEFT_OK);
	}
	assert_int_equal(weft_put_json(db, "todos", "gone", "{\"x\":1}", (size_t)-1), WEFT_OK);
	assert_int_equal(weft_delete(db, "todos", "gone"), WEFT_OK);
	assert_int_equal(weft_get_json(db, "todos", "gone", &out, NULL), WEFT_ENOTFOUND);
	assert_int_equal(weft_scan(db, "bulk", count_cb, &n), WEFT_OK);
	assert_int_equal(n, 500);
	assert_int_equal(weft_pending(db), 504);

	/* The same file cannot be opened twice (same process, other handle). */
	assert_int_equal(weft_open(path, NULL, &db2), WEFT_EBUSY);
	assert_non_null(strstr(weft_open_errmsg(), "in use"));

	assert_int_equal(weft_dump(db, &dump1, NULL), WEFT_OK);
	assert_int_equal(weft_close(db), WEFT_OK);

	/* Reopen: everything is back, the incarnation moved on. */
	assert_int_equal(weft_open(path, NULL, &db), WEFT_OK);
	assert_int_equal(weft_incarnation(db), inc + 1);
	assert_int_equal(weft_replica_id(db), replica);
	assert_int_equal(weft_pending(db), 504);
	assert_int_equal(weft_dump(db, &dump2, NULL), WEFT_OK);
	assert_string_equal(dump1, dump2);
	expect_doc(db, "todos", "1", "{\"done\":true,\"n\":2.5,\"title\":\"milk\"}");
	/* Writes of the new incarnation win over older ones (clock reloaded). */
	assert_int_equal(weft_put_json(db, "todos", "1", "{\"n\":3}", (size_t)-1), WEFT_OK);
	expect_doc(db, "todos", "1", "{\"done\":true,\"n\":3,\"title\":\"milk\"}");
	assert_int_equal(weft_flush(db), WEFT_OK);
	weft_free(dump1);
	weft_free(dump2);
	assert_int_equal(weft_close(db), WEFT_OK);

	/* Read-only open sees the data, writes nothing, takes no lock. */
	weft_options_init(&o);
	o.read_only = 1;
	assert_int_equal(weft_open(path, &o, &db), WEFT_OK);
	expect_doc(db, "todos", "1", "{\"done\":true,\"n\":3,\"title\":\"milk\"}");
	assert_int_equal(weft_put_json(db, "todos", "2", "{}", (size_t)-1), WEFT_EINVAL);
	assert_int_equal(weft_open(path, NULL, &db2), WEFT_OK); /* writer beside a reader */
	assert_int_equal(weft_close(db2), WEFT_OK);
	assert_int_equal(weft_close(db), WEFT_OK);
}

static void test_bad_input_changes_nothing(void **state)
{
	weft_db *db;
	char *before, *after, big[40000];
	const char *bad[] = {
	    "",
	    "{",
	    "[1,2]",
	    "42",
	    "{\"a\":1,\"a\":2}",
	    "{\"a\":\"\xff\"}",
	    "{\"a\":123456789012345678901234567890}",
	    "{\"a\":NaN}",
	    "{\"a\":1} trailing",
	};

	(void)state;
	assert_int_equal(weft_open(path, NULL, &db), WEFT_OK);
	assert_int_equal(weft_put_json(db, "c", "x", "{\"ok\":1}", (size_t)-1), WEFT_OK);
	assert_int_equal(weft_dump(db, &before, NULL), WEFT_OK);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		int rc = weft_put_json(db, "c", "x", bad[i], (size_t)-1);

		assert_true(rc == WEFT_EINVAL);
		assert_true(strlen(weft_errmsg(db)) > 0);
	}
	assert_int_equal(weft_put_json(db, "", "x", "{}", (size_t)-1), WEFT_EINVAL);
	assert_int_equal(weft_put_json(db, "c", "", "{}", (size_t)-1), WEFT_EINVAL);
	assert_int_equal(weft_put_json(db, "c\xff", "x", "{}", (size_t)-1), WEFT_EINVAL);
	/* Nesting deeper than the limit. */
	memset(big, 0, sizeof(big));
	for (int i = 0; i < 40; i++)
		strcat(big, "{\"a\":");
	strcat(big, "1");
	for (int i = 0; i < 40; i++)
		strcat(big, "}");
	assert_int_equal(weft_put_json(db, "c", "x", big, (size_t)-1), WEFT_ETOOBIG);
	assert_int_equal(weft_dump(db, &after, NULL), WEFT_OK);
	assert_string_equal(before, after);
	assert_int_equal(weft_pending(db), 1);
	weft_free(before);
	weft_free(after);
	assert_int_equal(weft_close(db), WEFT_OK);
}

static void test_oversized_document(void **state)
{
	weft_db *db;
	size_t n = 2 * 1024 * 1024;
	char *json = malloc(n + 16);

	(void)state;
	assert_non_null(json);
	strcpy(json, "{\"a\":\"");
	memset(json + 6, 'x', n);
	strcpy(json + 6 + n, "\"}");
	assert_int_equal(weft_open(path, NULL, &db), WEFT_OK);
	assert_int_equal(weft_put_json(db, "c", "big", json, (size_t)-1), WEFT_ETOOBIG);
	assert_int_equal(weft_pending(db), 0);
	assert_int_equal(weft_close(db), WEFT_OK);
	free(json);
}

static void test_open_errors(void **state)
{
	weft_db *db = NULL;
	char junk[300];
	FILE *f;

	(void)state;
	assert_int_equal(weft_open(NULL, NULL, &db), WEFT_EINVAL);
	assert_int_equal(weft_open("/nonexistent-dir/x.db", NULL, &db), WEFT_EIO);
	snprintf(junk, sizeof(junk), "%s/junk.db", dir);
	f = fopen(junk, "wb");
	assert_non_null(f);
	fputs("this is not a database, it is a text file long enough to look like a header", f);
	fclose(f);
	assert_int_equal(weft_open(junk, NULL, &db), WEFT_ECORRUPT);
	assert_null(db);
	assert_true(strlen(weft_open_errmsg()) > 0);
	assert_int_equal(weft_close(NULL), WEFT_OK);
	assert_string_equal(weft_strerror(WEFT_EBUSY), "in use by another process");
	assert_string_equal(weft_version(), WEFT_VERSION_STRING);
}

struct logged {
	int calls;
	int last_level;
	char last[512];
};

static void log_cb(void *ctx, int level, const char *msg)
{
	struct logged *l = ctx;

	l->calls++;
	l->last_level = level;
	snprintf(l->last, sizeof(l->last), "%s", msg);
}

/* weft_sync against a port nobody listens on: ETIMEDOUT, the write stays
 * pending, and the application's log callback hears about the retries. */
static void test_sync_unreachable_logs(void **state)
{
	struct logged l = {0};
	weft_options o;
	weft_db *db;

	(void)state;
	weft_options_init(&o);
	o.log = log_cb;
	o.log_ctx = &l;
	assert_int_equal(weft_open(path, &o, &db), WEFT_OK);
	assert_int_equal(weft_put_json(db, "c", "x", "{\"a\":1}", (size_t)-1), WEFT_OK);
	assert_int_equal(weft_sync(db, "ws://127.0.0.1:1", 300, NULL, NULL), WEFT_ETIMEDOUT);
	assert_int_equal(weft_pending(db), 1);
	assert_true(l.calls >= 1);
	assert_int_equal(l.last_level, WEFT_LOG_INFO);
	assert_non_null(strstr(l.last, "retrying"));
	assert_int_equal(weft_sync(db, "not a url", 300, NULL, NULL), WEFT_EINVAL);
	assert_int_equal(weft_close(db), WEFT_OK);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_write_read_reopen, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_bad_input_changes_nothing, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_oversized_document, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_open_errors, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_sync_unreachable_logs, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
