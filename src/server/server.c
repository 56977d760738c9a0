/*
 * server.c - `weft serve`: the WebSocket transport around the core's hub
 * (core/hub.h), which holds all of the protocol logic, sans I/O, and
 * the HTTP fallback on the same port (server/http.h: POST /v1/push and
 * /v1/pull, one hub session per request).
 *
 * One libuv loop on one thread (deliberately thin for now: issue 7 brings
 * partitions and the work spread over cores). Each loop iteration:
 *   1. reads from every ready connection and hands each message to its
 *      session; PUSHed units are validated and staged in the authority;
 *   2. a uv_check handle, which runs right after the I/O callbacks of the
 *      iteration, is the hub's commit point: everything staged goes into
 *      ONE durable store transaction (group commit: the more connections
 *      push, the more ops share an fsync);
 *   3. only then does the hub send REJECTs and ACKs to the pushers, CHANGES
 *      to every live connection, and more catch-up to connections whose
 *      send queue has drained.
 *   4. HTTP requests whose exchange is complete are answered.
 * Nothing uncommitted is ever acknowledged or sent. A connection that
 * sends something malformed gets an ERROR and a close; nobody else notices.
 *
 * The hub's io pointer is a struct weft_link (http.h): a WebSocket
 * connection's (struct ws_link, below) or an HTTP request's.
 */
#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>

#include <uv.h>

#include "weft/weft.h"
#include "core/authority.h"
#include "core/hub.h"
#include "net/ws.h"
#include "server/http.h"
#include "server/server.h"
#include "store/sqlite_store.h"

struct server {
	uv_loop_t loop;
	struct weft_ws_server *ws;
	struct weft_store *st;
	struct weft_authority *au;
	struct weft_hub *hub;
	struct weft_http *http; /* POST /v1/push, /v1/pull */
	uv_check_t commit;      /* the group-commit point */
	uv_timer_t tick;        /* heartbeats */
	uv_signal_t sigint;
	uv_signal_t sigterm;
	struct weft_ws_limits limits;
	bool stopping;
	int fatal; /* a fatal error code, 0 if none */
};

void weft__serve_opts_init(struct weft_serve_opts *o)
{
	memset(o, 0, sizeof(*o));
	o->host = "127.0.0.1";
	o->port = 7410;
	o->data_dir = "./weft-data";
	o->durable = 1;
	o->max_drift_ms = WEFT_MAX_DRIFT_MS;
	o->heartbeat_ms = 30000;
	o->snapshot_min = 1000;
	o->http_pull_budget = (size_t)4 << 20;
	o->http_max_wait_ms = 30000;
}

static uint64_t wall_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* ---- the hub's transport: a link per session ---- */

static int io_send(void *ctx, void *io, const uint8_t *data, size_t len)
{
	struct weft_link *l = io;

	(void)ctx;
	return l->ops->send(l, data, len);
}

static void io_close(void *ctx, void *io, int code, const char *reason)
{
	struct weft_link *l = io;

	(void)ctx;
	l->ops->close(l, code, reason);
}

static size_t io_queued(void *ctx, void *io)
{
	const struct weft_link *l = io;

	(void)ctx;
	return l->ops->queued(l);
}

static void io_log(void *ctx, const char *msg)
{
	(void)ctx;
	fprintf(stderr, "weft serve: %s\n", msg);
}

/* ---- WebSocket connections: one session each ---- */

struct ws_link {
	struct weft_link link;  /* first: the hub's io pointer */
	struct weft_ws_conn *c; /* the connection */
	struct weft_ssn *ssn;   /* its session */
};

static int wl_send(struct weft_link *l, const uint8_t *data, size_t len)
{
	return weft__ws_send(((struct ws_link *)l)->c, data, len);
}

static void wl_close(struct weft_link *l, int code, const char *reason)
{
	weft__ws_close(((struct ws_link *)l)->c, (uint16_t)code, reason);
}

static size_t wl_queued(const struct weft_link *l)
{
	return weft__ws_queued(((const struct ws_link *)l)->c);
}

static void wl_gone(struct weft_link *l)
{
	struct ws_link *wl = (struct ws_link *)l;

	weft__ssn_closed(wl->ssn);
	free(wl);
}

static const struct weft_link_ops ws_link_ops = {wl_send, wl_close, wl_queued, wl_gone};

static void on_open(void *ud, struct weft_ws_conn *ws)
{
	struct server *srv = ud;
	struct ws_link *wl = malloc(sizeof(*wl));

	if (!wl) {
		weft__ws_close(ws, 1011, "out of memory");
		return;
	}
	wl->link.ops = &ws_link_ops;
	wl->c = ws;
	if (weft__hub_open(srv->hub, &wl->link, wall_ms(), &wl->ssn) != WEFT_OK) {
		free(wl);
		weft__ws_close(ws, 1011, "out of memory");
		return;
	}
	weft__ws_set_data(ws, &wl->link);
}

static void on_message(void *ud, struct weft_ws_conn *ws, const uint8_t *data, size_t len)
{
	struct weft_link *l = weft__ws_get_data(ws);

	(void)ud;
	if (l && l->ops == &ws_link_ops)
		weft__ssn_recv(((struct ws_link *)l)->ssn, data, len, wall_ms());
}

/* Any connection the server has seen (WebSocket or HTTP request) ended. */
static void on_close(void *ud, struct weft_ws_conn *ws, uint16_t code, const char *reason)
{
	struct weft_link *l = weft__ws_get_data(ws);

	(void)ud;
	(void)code;
	(void)reason;
	weft__ws_set_data(ws, NULL);
	if (l)
		l->ops->gone(l);
}

static void on_http(void *ud, struct weft_ws_conn *ws, const struct weft_ws_http_req *req)
{
	struct server *srv = ud;

	weft__http_request(srv->http, ws, req, wall_ms());
}

/* After all reads of a loop iteration: one group commit for all of them,
 * then ACKs, REJECTs, CHANGES, and more catch-up where sends drained. */
static void on_commit_point(uv_check_t *h)
{
	struct server *srv = h->data;

	(void)weft__hub_commit(srv->hub, wall_ms());
	weft__http_commit_point(srv->http);
}

static void on_tick(uv_timer_t *t)
{
	struct server *srv = t->data;

	(void)weft__hub_tick(srv->hub, wall_ms());
}

/* ---- lifecycle ---- */

static void on_signal(uv_signal_t *h, int signum)
{
	struct server *srv = h->data;

	(void)signum;
	if (srv->stopping)
		return;
	srv->stopping = true;
	/* Commit what is staged, so what was read is not lost, then stop. */
	weft__hub_shutdown(srv->hub, wall_ms());
	weft__http_commit_point(srv->http); /* HTTP requests get their ERROR 5 */
	weft__ws_server_stop(srv->ws);
	uv_close((uv_handle_t *)&srv->commit, NULL);
	uv_close((uv_handle_t *)&srv->tick, NULL);
	uv_close((uv_handle_t *)&srv->sigint, NULL);
	uv_close((uv_handle_t *)&srv->sigterm, NULL);
}

static int mkdir_p(const char *dir)
{
	char path[4096];
	size_t n = strlen(dir);

	if (n == 0 || n >= sizeof(path))
		return -1;
	memcpy(path, dir, n + 1);
	for (size_t i = 1; i <= n; i++) {
		if (path[i] == '/' || path[i] == '\0') {
			char ch = path[i];

			path[i] = '\0';
			if (mkdir(path, 0755) != 0 && errno != EEXIST)
				return -1;
			path[i] = ch;
		}
	}
	return 0;
}

static int store_path(const char *dir, char *buf, size_t len)
{
	int n = snprintf(buf, len, "%s/weft.db", dir);

	return n < 0 || (size_t)n >= len ? -1 : 0;
}

int weft__serve(const struct weft_serve_opts *o, char *errbuf, size_t errlen)
{
	struct server *srv;
	struct weft_ws_callbacks cbs = {on_open, on_message, on_close, on_http};
	char path[4096], err[256] = "";
	uint64_t epoch = 0;
	int rc;

	srv = calloc(1, sizeof(*srv));
	if (!srv) {
		snprintf(errbuf, errlen, "out of memory");
		return WEFT_ENOMEM;
	}
	weft__ws_limits_init(&srv->limits);

	if (mkdir_p(o->data_dir) != 0 || store_path(o->data_dir, path, sizeof(path)) != 0) {
		snprintf(errbuf, errlen, "cannot create data directory %s: %s", o->data_dir,
		         strerror(errno));
		rc = WEFT_EIO;
		goto out_free;
	}
	rc = weft__sqlite_store_open(path,
	                             WEFT_SQLITE_CREATE | (o->durable ? 0 : WEFT_SQLITE_NOSYNC),
	                             NULL, &srv->st, err, sizeof(err));
	if (rc != WEFT_OK) {
		snprintf(errbuf, errlen, "%s: %s", path, err);
		goto out_free;
	}
	while (epoch == 0)
		if (getrandom(&epoch, sizeof(epoch), 0) != sizeof(epoch)) {
			snprintf(errbuf, errlen, "no randomness for the store epoch");
			rc = WEFT_EIO;
			goto out_close_store;
		}
	rc = weft__authority_open(srv->st, NULL, epoch, &srv->au);
	if (rc != WEFT_OK) {
		snprintf(errbuf, errlen, "%s: opening the store: %s (%s)", path, weft_strerror(rc),
		         srv->st->vt->errmsg(srv->st));
		goto out_close_store;
	}

	{
		struct weft_hub_config cfg;
		struct weft_hub_io io = {io_send, io_close, io_queued, io_log, srv};

		weft__hub_config_init(&cfg);
		cfg.max_message = srv->limits.max_message;
		cfg.max_drift_ms = o->max_drift_ms;
		cfg.heartbeat_ms = o->heartbeat_ms;
		cfg.snapshot_min = o->snapshot_min;
		rc = weft__hub_new(srv->au, &cfg, &io, NULL, &srv->hub);
		if (rc != WEFT_OK) {
			snprintf(errbuf, errlen, "out of memory");
			goto out_free_au;
		}
	}
	if (uv_loop_init(&srv->loop) != 0) {
		snprintf(errbuf, errlen, "uv_loop_init failed");
		rc = WEFT_EIO;
		goto out_free_hub;
	}
	{
		struct weft_http_config hc;

		weft__http_config_init(&hc);
		hc.pull_budget = o->http_pull_budget;
		hc.max_wait_ms = o->http_max_wait_ms;
		hc.max_response = srv->limits.max_send_queue;
		hc.max_message = srv->limits.max_message;
		hc.heartbeat_ms = o->heartbeat_ms;
		rc = weft__http_new(&srv->loop, srv->hub, &hc, &srv->http);
		if (rc != WEFT_OK) {
			snprintf(errbuf, errlen, "out of memory");
			goto out_close_loop;
		}
	}
	rc = weft__ws_server_start(&srv->loop, o->host, o->port, &srv->limits, &cbs, srv, &srv->ws,
	                           errbuf, errlen);
	if (rc != WEFT_OK)
		goto out_close_loop;
	uv_check_init(&srv->loop, &srv->commit);
	srv->commit.data = srv;
	uv_check_start(&srv->commit, on_commit_point);
	uv_timer_init(&srv->loop, &srv->tick);
	srv->tick.data = srv;
	uv_timer_start(&srv->tick, on_tick, 1000, 1000);
	uv_signal_init(&srv->loop, &srv->sigint);
	uv_signal_init(&srv->loop, &srv->sigterm);
	srv->sigint.data = srv->sigterm.data = srv;
	uv_signal_start(&srv->sigint, on_signal, SIGINT);
	uv_signal_start(&srv->sigterm, on_signal, SIGTERM);
	signal(SIGPIPE, SIG_IGN);

	if (o->on_listen)
		o->on_listen(o->ctx, o->host, weft__ws_server_port(srv->ws));
	uv_run(&srv->loop, UV_RUN_DEFAULT);
	rc = srv->fatal;

out_close_loop:
	uv_run(&srv->loop, UV_RUN_DEFAULT);
	(void)uv_loop_close(&srv->loop);
	weft__http_free(srv->http);
out_free_hub:
	weft__hub_free(srv->hub);
out_free_au:
	weft__authority_free(srv->au);
out_close_store:
	weft__store_close(srv->st);
out_free:
	free(srv);
	return rc;
}

int weft__serve_dump(const char *data_dir, char **out, size_t *out_len, char *errbuf, size_t errlen)
{
	struct weft_store *st;
	struct weft_authority *au;
	struct mp_buf b;
	char path[4096], err[256] = "";
	size_t len;
	int rc;

	if (store_path(data_dir, path, sizeof(path)) != 0) {
		snprintf(errbuf, errlen, "path too long");
		return WEFT_EINVAL;
	}
	rc = weft__sqlite_store_open(path, WEFT_SQLITE_READONLY, NULL, &st, err, sizeof(err));
	if (rc != WEFT_OK) {
		snprintf(errbuf, errlen, "%s: %s", path, err);
		return rc;
	}
	rc = weft__authority_open(st, NULL, 0, &au);
	if (rc != WEFT_OK) {
		snprintf(errbuf, errlen, "%s: %s", path, weft_strerror(rc));
		goto out_close;
	}
	weft__mp_buf_init(&b, weft__alloc_default(), 0);
	rc = weft__docset_dump(weft__authority_docs(au), &b);
	weft__mp_write_raw(&b, "", 1);
	if (rc == WEFT_OK)
		rc = b.err;
	if (rc == WEFT_OK) {
		*out = (char *)weft__mp_buf_take(&b, &len);
		*out_len = len - 1;
	} else {
		snprintf(errbuf, errlen, "dump: %s", weft_strerror(rc));
	}
	weft__mp_buf_free(&b);
	weft__authority_free(au);
out_close:
	weft__store_close(st);
	return rc;
}
