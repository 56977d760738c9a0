/*
 * server.h - `weft serve`: the authoritative sync server.
 *
 * Runs a libuv loop on the calling thread with the WebSocket endpoint
 * (net/ws.h) at /v1/ws and the HTTP fallback (server/http.h) at POST
 * /v1/push and /v1/pull in front of the core's authority
 * (core/authority.h) over the embedded SQLite store in
 * `data_dir`/weft.db.
 */
#ifndef WEFT_SERVER_SERVER_H
#define WEFT_SERVER_SERVER_H

#include <stddef.h>
#include <stdint.h>

struct weft_serve_opts {
	const char *host;          /* default "127.0.0.1" */
	int port;                  /* default 7410; 0 picks a free port */
	const char *data_dir;      /* default "./weft-data"; created if missing */
	int durable;               /* 1 (default): fsync before acknowledging */
	uint64_t max_drift_ms;     /* re-stamp ops whose HLC leads the server's
	                              clock by more; default WEFT_MAX_DRIFT_MS (60 s) */
	uint64_t snapshot_min;     /* a replica with no usable cursor gets document
	                              states (SNAPSHOT) instead of the log once it
	                              holds this many units; default 1000 */
	uint64_t heartbeat_ms;     /* announced in WELCOME; a connection silent for
	                              3 of these is closed; default 30000, 0 = never */
	size_t http_pull_budget;   /* POST /v1/pull stops adding catch-up CHANGES
	                              past this many bytes; default 4 MiB */
	uint64_t http_max_wait_ms; /* cap of POST /v1/pull?wait=MS; default 30000 */
	/* Called once the server listens, with the bound port (tests read it
	 * from the "listening" line printed by the weft tool). May be NULL. */
	void (*on_listen)(void *ctx, const char *host, int port);
	void *ctx;
};

void weft__serve_opts_init(struct weft_serve_opts *o);

/* Runs until SIGINT/SIGTERM (clean shutdown, returns 0) or a fatal error
 * (returns a negative WEFT_E* code, message in errbuf). Logs go to stderr. */
int weft__serve(const struct weft_serve_opts *o, char *errbuf, size_t errlen);

/* The canonical dump (docs/DATA-MODEL.md) of the server store in data_dir,
 * opened read-only. *out is malloc'ed; caller frees. */
int weft__serve_dump(const char *data_dir, char **out, size_t *out_len, char *errbuf,
                     size_t errlen);

#endif
