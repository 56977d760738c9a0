/*
 * weft.c - the `weft` command: the server (`weft serve`) and a small client
 * for scripts and tests (put, get, del, sync, watch, dump).
 *
 * The command line is a contract that tests and scripts rely on:
 *  - exit status 0 success, 1 document not found, 2 usage or other error,
 *    3 timed out or could not reach the server (a write stays in the local
 *    replica's oplog and syncs later);
 *  - errors go to stderr as "weft: <command>: <message>";
 *  - usage goes to stdout for --help and `weft help`, to stderr for
 *    mistakes;
 *  - options may come before, between or after the positional arguments,
 *    as "--opt value" or "--opt=value"; "--" ends the options.
 *
 * Every client command opens the replica, does one thing, optionally syncs
 * with the server, and closes the replica (which flushes it to disk). The
 * tool holds no state between runs; everything lives in the replica file.
 */
#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "weft/weft.h"
#include "server/server.h"
#include "tools/bench.h"

/* Exit statuses (the contract above). */
enum {
	CLI_OK = 0,
	CLI_NOTFOUND = 1,
	CLI_ERR = 2,
	CLI_TIMEOUT = 3,
};

#define DEFAULT_WAIT_MS 10000
#define DEFAULT_LISTEN "127.0.0.1:7410"
#define DEFAULT_DATA "./weft-data"
#define MAX_POS 5

/* One bit per option, so that each command can list the ones it accepts. */
enum {
	OPT_DB = 1u << 0,
	OPT_SERVER = 1u << 1,
	OPT_WAIT = 1u << 2,
	OPT_LISTEN = 1u << 3,
	OPT_DATA = 1u << 4,
	OPT_HASH = 1u << 5,
	OPT_NO_FSYNC = 1u << 6,
	OPT_MAX_DRIFT = 1u << 7,
	OPT_SNAPSHOT_MIN = 1u << 8,
};

struct optdef {
	const char *name; /* without the leading "--" */
	unsigned bit;     /* OPT_* */
	bool has_arg;     /* takes a value */
};

static const struct optdef optdefs[] = {
    {"db", OPT_DB, true},
    {"server", OPT_SERVER, true},
    {"wait", OPT_WAIT, true},
    {"listen", OPT_LISTEN, true},
    {"data", OPT_DATA, true},
    {"hash", OPT_HASH, false},
    {"no-fsync", OPT_NO_FSYNC, false},
    {"max-drift", OPT_MAX_DRIFT, true},
    {"snapshot-min", OPT_SNAPSHOT_MIN, true},
};

/* The parsed command line of one run. */
struct cli {
	const char *cmd;          /* command name, for messages */
	unsigned seen;            /* OPT_* bits given */
	const char *db;           /* --db */
	const char *server;       /* --server */
	const char *wait;         /* --wait, as given */
	int wait_ms;              /* --wait in milliseconds */
	const char *listen;       /* --listen */
	const char *data;         /* --data */
	const char *max_drift;    /* --max-drift, as given */
	const char *snapshot_min; /* --snapshot-min, as given */
	const char *pos[MAX_POS]; /* positional arguments */
	int npos;                 /* number of them */
};

struct command {
	const char *name;
	unsigned opts;     /* OPT_* bits accepted */
	unsigned required; /* OPT_* bits that must be given */
	int min_pos;       /* positional arguments required */
	int max_pos;       /* positional arguments allowed */
	const char *synopsis;
	const char *help; /* the rest of `weft <name> --help` */
	int (*run)(struct cli *c);
};

static int cmd_serve(struct cli *c);
static int cmd_put(struct cli *c);
static int cmd_get(struct cli *c);
static int cmd_del(struct cli *c);
static int cmd_incr(struct cli *c);
static int cmd_sadd(struct cli *c);
static int cmd_srem(struct cli *c);
static int cmd_text_insert(struct cli *c);
static int cmd_text_delete(struct cli *c);
static int cmd_sync(struct cli *c);
static int cmd_watch(struct cli *c);
static int cmd_dump(struct cli *c);

static const struct command commands[] = {
    {
        .name = "serve",
        .opts = OPT_LISTEN | OPT_DATA | OPT_NO_FSYNC | OPT_MAX_DRIFT | OPT_SNAPSHOT_MIN,
        .required = 0,
        .min_pos = 0,
        .max_pos = 0,
        .synopsis = "weft serve [--listen HOST:PORT] [--data DIR] [--no-fsync] [--max-drift S]\n"
                    "           [--snapshot-min N]",
        .help =
            "Runs the sync server until SIGINT or SIGTERM (then exits 0).\n"
            "\n"
            "  --listen HOST:PORT  address to listen on (default " DEFAULT_LISTEN ");\n"
            "                      port 0 picks a free port. IPv6: [ADDR]:PORT.\n"
            "  --data DIR          where the server keeps its store (default " DEFAULT_DATA ");\n"
            "                      created if missing.\n"
            "  --no-fsync          acknowledge writes once the operating system has them,\n"
            "                      without waiting for the disk. Faster, but acknowledged\n"
            "                      writes no longer survive a power loss or an OS crash\n"
            "                      (they still survive the server process being killed).\n"
            "  --max-drift S       re-stamp ops whose clock is more than S seconds ahead of\n"
            "                      the server's (default 60), so a replica with a clock\n"
            "                      far in the future cannot win every conflict.\n"
            "  --snapshot-min N    a replica with no usable cursor gets the documents'\n"
            "                      states instead of the whole change log once the log\n"
            "                      holds N units or more (default 1000).\n"
            "\n"
            "Once listening, prints one line to stdout:\n"
            "  weft serve: listening on HOST:PORT\n",
        .run = cmd_serve,
    },
    {
        .name = "put",
        .opts = OPT_DB | OPT_SERVER | OPT_WAIT,
        .required = OPT_DB,
        .min_pos = 3,
        .max_pos = 3,
        .synopsis = "weft put --db FILE [--server URL [--wait SECONDS]] COLLECTION ID JSON",
        .help = "Merges the JSON object into document COLLECTION/ID of the replica FILE\n"
                "(created if missing), creating the document if needed. Object keys merge\n"
                "recursively; any other value replaces the field it lands on.\n"
                "\n"
                "  --db FILE       the replica file.\n"
                "  --server URL    then sync with the server at URL (ws://HOST:PORT) and\n"
                "                  exit only once it has acknowledged the write.\n"
                "  --wait SECONDS  how long to wait for the server (default 10). On timeout\n"
                "                  the exit status is 3 and the write stays in the replica,\n"
                "                  to be pushed by the next sync.\n",
        .run = cmd_put,
    },
    {
        .name = "incr",
        .opts = OPT_DB | OPT_SERVER | OPT_WAIT,
        .required = OPT_DB,
        .min_pos = 4,
        .max_pos = 4,
        .synopsis = "weft incr --db FILE [--server URL [--wait SECONDS]] COLLECTION ID PATH N",
        .help = "Adds N (any 64-bit integer, negative to decrement) to the counter at PATH\n"
                "of document COLLECTION/ID. Concurrent increments on other replicas all\n"
                "count. PATH is dot-separated object keys (\\. for a literal dot).\n"
                "\n"
                "  --db, --server, --wait  as for `weft put`.\n",
        .run = cmd_incr,
    },
    {
        .name = "sadd",
        .opts = OPT_DB | OPT_SERVER | OPT_WAIT,
        .required = OPT_DB,
        .min_pos = 4,
        .max_pos = 4,
        .synopsis = "weft sadd --db FILE [--server URL [--wait SECONDS]] COLLECTION ID PATH VALUE",
        .help = "Adds VALUE to the set at PATH of document COLLECTION/ID (add wins over a\n"
                "concurrent remove). VALUE is a JSON string, integer, true, false or null;\n"
                "text that is not JSON is taken as a string (`urgent` is \"urgent\").\n"
                "PATH is dot-separated object keys (\\. for a literal dot).\n"
                "\n"
                "  --db, --server, --wait  as for `weft put`.\n",
        .run = cmd_sadd,
    },
    {
        .name = "srem",
        .opts = OPT_DB | OPT_SERVER | OPT_WAIT,
        .required = OPT_DB,
        .min_pos = 4,
        .max_pos = 4,
        .synopsis = "weft srem --db FILE [--server URL [--wait SECONDS]] COLLECTION ID PATH VALUE",
        .help = "Removes VALUE, as this replica has seen it added, from the set at PATH of\n"
                "document COLLECTION/ID. VALUE and PATH as for `weft sadd`.\n"
                "\n"
                "  --db, --server, --wait  as for `weft put`.\n",
        .run = cmd_srem,
    },
    {
        .name = "text-insert",
        .opts = OPT_DB | OPT_SERVER | OPT_WAIT,
        .required = OPT_DB,
        .min_pos = 5,
        .max_pos = 5,
        .synopsis = "weft text-insert --db FILE [--server URL [--wait SECONDS]] COLLECTION ID PATH "
                    "POS TEXT",
        .help = "Inserts TEXT (UTF-8) before the code point at POS (0 is the start) of the\n"
                "collaborative text at PATH of document COLLECTION/ID. Concurrent edits on\n"
                "other replicas all survive. If PATH is not a text yet, it becomes one.\n"
                "PATH is dot-separated object keys (\\. for a literal dot).\n"
                "\n"
                "  --db, --server, --wait  as for `weft put`.\n",
        .run = cmd_text_insert,
    },
    {
        .name = "text-delete",
        .opts = OPT_DB | OPT_SERVER | OPT_WAIT,
        .required = OPT_DB,
        .min_pos = 5,
        .max_pos = 5,
        .synopsis = "weft text-delete --db FILE [--server URL [--wait SECONDS]] COLLECTION ID PATH "
                    "POS COUNT",
        .help = "Deletes COUNT code points from POS of the collaborative text at PATH of\n"
                "document COLLECTION/ID. PATH as for `weft text-insert`.\n"
                "\n"
                "  --db, --server, --wait  as for `weft put`.\n",
        .run = cmd_text_delete,
    },
    {
        .name = "get",
        .opts = OPT_DB | OPT_SERVER | OPT_WAIT,
        .required = OPT_DB,
        .min_pos = 2,
        .max_pos = 2,
        .synopsis = "weft get --db FILE [--server URL [--wait SECONDS]] COLLECTION ID",
        .help = "Prints document COLLECTION/ID as canonical JSON (keys sorted, no spaces)\n"
                "and a newline. Exit status 1 if there is no such document.\n"
                "\n"
                "  --db FILE       the replica file.\n"
                "  --server URL    sync with the server at URL (ws://HOST:PORT) first.\n"
                "  --wait SECONDS  how long to wait for the server (default 10); exit\n"
                "                  status 3 on timeout.\n",
        .run = cmd_get,
    },
    {
        .name = "del",
        .opts = OPT_DB | OPT_SERVER | OPT_WAIT,
        .required = OPT_DB,
        .min_pos = 2,
        .max_pos = 2,
        .synopsis = "weft del --db FILE [--server URL [--wait SECONDS]] COLLECTION ID",
        .help = "Deletes document COLLECTION/ID (the deletion syncs like a write; deleting\n"
                "a document this replica has not seen still deletes it everywhere).\n"
                "\n"
                "  --db FILE       the replica file.\n"
                "  --server URL    then sync with the server at URL (ws://HOST:PORT) and\n"
                "                  exit only once it has acknowledged the deletion.\n"
                "  --wait SECONDS  how long to wait for the server (default 10); exit\n"
                "                  status 3 on timeout, the deletion then syncs later.\n",
        .run = cmd_del,
    },
    {
        .name = "sync",
        .opts = OPT_DB | OPT_SERVER | OPT_WAIT,
        .required = OPT_DB | OPT_SERVER,
        .min_pos = 0,
        .max_pos = 0,
        .synopsis = "weft sync --db FILE --server URL [--wait SECONDS]",
        .help = "Pushes every write the server has not acknowledged yet, pulls everything\n"
                "new from the server, and exits 0 once the replica is in step with it.\n"
                "\n"
                "  --db FILE       the replica file.\n"
                "  --server URL    the server, ws://HOST:PORT.\n"
                "  --wait SECONDS  how long to wait for the server (default 10); exit\n"
                "                  status 3 on timeout.\n",
        .run = cmd_sync,
    },
    {
        .name = "watch",
        .opts = OPT_DB | OPT_SERVER,
        .required = OPT_DB | OPT_SERVER,
        .min_pos = 0,
        .max_pos = 1,
        .synopsis = "weft watch --db FILE --server URL [COLLECTION]",
        .help =
            "Syncs, then stays connected and prints one JSON object per line for each\n"
            "change (of COLLECTION only, if given), keys sorted:\n"
            "  {\"collection\":\"c\",\"doc\":{...}|null,\"from_sync\":true|false,\"id\":\"x\",\n"
            "   \"op\":\"insert\"|\"update\"|\"delete\"}\n"
            "\"doc\" is the document after the change, null when it was deleted.\n"
            "\n"
            "Runs until killed. A lost connection is retried (backoff from 100 ms up\n"
            "to 2 s) and resumes where it stopped, so a server restart loses nothing.\n"
            "SIGINT and SIGTERM keep their default action: the process ends at once,\n"
            "by the signal. That is safe: the replica survives a crash, and changes\n"
            "received but not yet written to disk are pulled again by the next sync.\n"
            "\n"
            "  --db FILE       the replica file (held open, so other commands on the\n"
            "                  same FILE fail while watch runs).\n"
            "  --server URL    the server, ws://HOST:PORT.\n",
        .run = cmd_watch,
    },
    {
        .name = "dump",
        .opts = OPT_DB | OPT_DATA | OPT_HASH,
        .required = 0,
        .min_pos = 0,
        .max_pos = 0,
        .synopsis = "weft dump (--db FILE | --data DIR) [--hash]",
        .help = "Prints the canonical dump (docs/DATA-MODEL.md): every visible document\n"
                "as one line {\"collection\":C,\"doc\":{...},\"id\":I} of canonical JSON,\n"
                "sorted by collection then id. Two replicas (or a replica and the server)\n"
                "hold the same data exactly when their dumps are equal.\n"
                "\n"
                "  --db FILE   dump a replica file (opened read-only).\n"
                "  --data DIR  dump a server's store (opened read-only; the server may run).\n"
                "  --hash      print only the SHA-256 of the dump, in hex.\n",
        .run = cmd_dump,
    },
};

#define NCOMMANDS (sizeof(commands) / sizeof(commands[0]))

static void print_main_usage(FILE *f)
{
	fputs("usage: weft <command> [options] [arguments]\n"
	      "\n"
	      "weft is a local-first sync engine: each replica is a file, and\n"
	      "`weft serve` is the server that replicas sync through.\n"
	      "\n"
	      "Commands:\n",
	      f);
	for (size_t i = 0; i < NCOMMANDS; i++)
		fprintf(f, "  %s\n", commands[i].synopsis);
	fputs("  weft bench text TRACE.json.gz [--mode local|remote] [--runs N]\n"
	      "  weft help [COMMAND]\n"
	      "  weft --version\n"
	      "\n"
	      "`weft COMMAND --help` describes one command. URL is ws://HOST:PORT.\n"
	      "Options may come before or after the arguments, as --opt VALUE or\n"
	      "--opt=VALUE; `--` ends the options.\n"
	      "\n"
	      "Exit status: 0 success; 1 document not found; 2 usage or other error;\n"
	      "3 timed out waiting for, or could not reach, the server (writes stay\n"
	      "in the local replica and sync later).\n"
	      "\n"
	      "Environment: WEFT_LOG=1 prints the library's log messages to stderr.\n",
	      f);
}

static void print_command_usage(const struct command *cmd, FILE *f)
{
	fprintf(f, "usage: %s\n\n%s", cmd->synopsis, cmd->help);
}

static const struct command *find_command(const char *name)
{
	for (size_t i = 0; i < NCOMMANDS; i++) {
		if (strcmp(commands[i].name, name) == 0)
			return &commands[i];
	}
	return NULL;
}

/* "weft: <command>: <message>" on stderr. */
__attribute__((format(printf, 2, 3))) static void err(const struct cli *c, const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "weft: %s: ", c->cmd);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

/* A mistake on the command line: the message, then the synopsis. */
__attribute__((format(printf, 2, 3))) static int usage_err(const struct cli *c, const char *fmt,
                                                           ...)
{
	const struct command *cmd = find_command(c->cmd);
	va_list ap;

	fprintf(stderr, "weft: %s: ", c->cmd);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	if (cmd != NULL)
		fprintf(stderr, "usage: %s\nTry 'weft %s --help' for more.\n", cmd->synopsis,
		        cmd->name);
	return CLI_ERR;
}

/*
 * Parses --wait: a non-negative decimal number of seconds ("10", "0.5").
 * Exponents, signs, "inf" and "nan" are refused on purpose. Values past
 * INT_MAX milliseconds are clamped (that is over 24 days).
 */
static int parse_wait(const char *s, int *out_ms)
{
	const char *p = s;
	int digits = 0;
	double ms;

	while (*p >= '0' && *p <= '9') {
		p++;
		digits++;
	}
	if (*p == '.') {
		p++;
		while (*p >= '0' && *p <= '9') {
			p++;
			digits++;
		}
	}
	if (*p != '\0' || digits == 0)
		return -1;
	ms = strtod(s, NULL) * 1000.0;
	*out_ms = ms >= (double)INT_MAX ? INT_MAX : (int)(ms + 0.5);
	return 0;
}

/*
 * Checks the shape of --server before anything is written, so that a typo
 * is a usage error and not a local write followed by a failed sync:
 * ws://HOST:PORT or wss://HOST:PORT, optionally followed by a /path; HOST
 * a name, an IPv4 address or a bracketed IPv6 address. The library checks
 * the rest.
 */
static bool url_ok(const char *url)
{
	const char *p, *host_end;
	long port = 0;
	int digits = 0;

	if (strncmp(url, "ws://", 5) == 0)
		p = url + 5;
	else if (strncmp(url, "wss://", 6) == 0)
		p = url + 6;
	else
		return false;
	if (*p == '[') {
		host_end = strchr(p, ']');
		if (host_end == NULL || host_end == p + 1)
			return false;
		p = host_end + 1;
	} else {
		host_end = p + strcspn(p, ":/");
		if (host_end == p)
			return false;
		p = host_end;
	}
	if (*p++ != ':')
		return false;
	for (; *p >= '0' && *p <= '9'; p++) {
		port = port * 10 + (*p - '0');
		if (++digits > 5)
			return false;
	}
	return digits > 0 && port > 0 && port <= 65535 && (*p == '\0' || *p == '/');
}

/* True if some argument before "--" asks for help. */
static bool wants_help(int argc, char **argv)
{
	for (int i = 0; i < argc; i++) {
		if (strcmp(argv[i], "--") == 0)
			return false;
		if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0)
			return true;
	}
	return false;
}

static void opt_store(struct cli *c, unsigned bit, const char *value)
{
	switch (bit) {
	case OPT_DB:
		c->db = value;
		break;
	case OPT_SERVER:
		c->server = value;
		break;
	case OPT_WAIT:
		c->wait = value;
		break;
	case OPT_LISTEN:
		c->listen = value;
		break;
	case OPT_DATA:
		c->data = value;
		break;
	case OPT_MAX_DRIFT:
		c->max_drift = value;
		break;
	case OPT_SNAPSHOT_MIN:
		c->snapshot_min = value;
		break;
	default: /* flags: only their bit in c->seen */
		break;
	}
}

/*
 * Parses the arguments after the command name into *c. Returns CLI_OK, or
 * CLI_ERR after printing what is wrong.
 */
static int parse_args(const struct command *cmd, int argc, char **argv, struct cli *c)
{
	bool only_pos = false;

	for (int i = 0; i < argc; i++) {
		const char *a = argv[i];
		const struct optdef *def = NULL;
		const char *name, *eq, *value = NULL;
		size_t namelen;

		/* "-", and negative numbers ("-2" for `weft incr`), are
		 * arguments, not options. */
		if (only_pos || a[0] != '-' || a[1] == '\0' || (a[1] >= '0' && a[1] <= '9')) {
			if (c->npos >= cmd->max_pos)
				return usage_err(c, "unexpected argument '%s'", a);
			c->pos[c->npos++] = a;
			continue;
		}
		if (strcmp(a, "--") == 0) {
			only_pos = true;
			continue;
		}
		if (a[1] != '-')
			return usage_err(c, "unknown option '%s'", a);
		name = a + 2;
		eq = strchr(name, '=');
		namelen = eq != NULL ? (size_t)(eq - name) : strlen(name);
		for (size_t k = 0; k < sizeof(optdefs) / sizeof(optdefs[0]); k++) {
			if (strlen(optdefs[k].name) == namelen &&
			    memcmp(optdefs[k].name, name, namelen) == 0) {
				def = &optdefs[k];
				break;
			}
		}
		if (def == NULL || (cmd->opts & def->bit) == 0)
			return usage_err(c, "unknown option '--%.*s'", (int)namelen, name);
		if (c->seen & def->bit)
			return usage_err(c, "option --%s given twice", def->name);
		if (def->has_arg) {
			if (eq != NULL)
				value = eq + 1;
			else if (i + 1 < argc)
				value = argv[++i];
			if (value == NULL)
				return usage_err(c, "option --%s needs a value", def->name);
			if (value[0] == '\0')
				return usage_err(c, "option --%s needs a non-empty value",
				                 def->name);
		} else if (eq != NULL) {
			return usage_err(c, "option --%s takes no value", def->name);
		}
		c->seen |= def->bit;
		opt_store(c, def->bit, value);
	}
	for (size_t k = 0; k < sizeof(optdefs) / sizeof(optdefs[0]); k++) {
		if ((cmd->required & optdefs[k].bit) && !(c->seen & optdefs[k].bit))
			return usage_err(c, "--%s is required", optdefs[k].name);
	}
	if (c->npos < cmd->min_pos)
		return usage_err(c, "missing arguments");
	if (c->wait != NULL && parse_wait(c->wait, &c->wait_ms) != 0)
		return usage_err(c, "--wait: '%s' is not a non-negative number of seconds",
		                 c->wait);
	if (c->server != NULL && !url_ok(c->server))
		return usage_err(c, "--server: '%s' is not ws://HOST:PORT", c->server);
	if (c->wait != NULL && c->server == NULL)
		return usage_err(c, "--wait needs --server");
	return CLI_OK;
}

static void log_to_stderr(void *ctx, int level, const char *msg)
{
	static const char *const names[] = {"?", "error", "warning", "info"};

	(void)ctx;
	fprintf(stderr, "weft: %s: %s\n", names[level >= 1 && level <= 3 ? level : 0], msg);
}

static bool log_enabled(void)
{
	const char *v = getenv("WEFT_LOG");

	return v != NULL && v[0] != '\0' && strcmp(v, "0") != 0;
}

/* Opens the replica named by --db. Prints why on failure. */
static int db_open(struct cli *c, bool read_only, weft_db **out)
{
	weft_options o;
	int rc;

	weft_options_init(&o);
	o.read_only = read_only ? 1 : 0;
	if (log_enabled())
		o.log = log_to_stderr;
	rc = weft_open(c->db, &o, out);
	if (rc == WEFT_OK)
		return CLI_OK;
	if (rc == WEFT_EBUSY) {
		err(c, "%s: the replica is in use by another process", c->db);
	} else {
		const char *msg = weft_open_errmsg();

		err(c, "%s: cannot open the replica: %s%s%s", c->db, weft_strerror(rc),
		    msg[0] != '\0' ? ": " : "", msg);
	}
	return CLI_ERR;
}

/* Reports a failed call on an open replica; returns the exit status. */
static int db_fail(struct cli *c, weft_db *db, int rc, const char *what)
{
	const char *msg = weft_errmsg(db);
	const char *str = weft_strerror(rc);
	bool detail = msg[0] != '\0' && strcmp(msg, str) != 0;

	err(c, "%s: %s%s%s", what, str, detail ? ": " : "", detail ? msg : "");
	return CLI_ERR;
}

/*
 * Closes the replica (which flushes it) and folds a flush failure into the
 * exit status, unless an earlier failure is already being reported.
 */
static int db_finish(struct cli *c, weft_db *db, int status)
{
	int rc = weft_close(db);

	if (rc != WEFT_OK && status == CLI_OK) {
		err(c, "%s: writing the replica failed: %s", c->db, weft_strerror(rc));
		status = CLI_ERR;
	}
	return status;
}

/*
 * One weft_sync with the server of --server, bounded by --wait. Timeouts
 * and connection failures are exit status 3: nothing is lost, unacknowledged
 * writes stay in the oplog and are pushed by a later sync.
 */
static int sync_with_server(struct cli *c, weft_db *db)
{
	int rc = weft_sync(db, c->server, c->wait_ms, NULL, NULL);
	const char *msg, *why;

	if (rc == WEFT_OK)
		return CLI_OK;
	msg = weft_errmsg(db);
	why = msg[0] != '\0' ? msg : weft_strerror(rc);
	if (rc == WEFT_ETIMEDOUT || rc == WEFT_ECLOSED) {
		uint64_t pending = weft_pending(db);

		if (pending > 0)
			err(c,
			    "server %s: %s; %llu unacknowledged write%s kept in the replica, to "
			    "sync later",
			    c->server, why, (unsigned long long)pending, pending == 1 ? "" : "s");
		else
			err(c, "server %s: %s", c->server, why);
		return CLI_TIMEOUT;
	}
	err(c, "server %s: %s: %s", c->server, weft_strerror(rc), why);
	return CLI_ERR;
}

/* "COLLECTION/ID" of the positional arguments, for messages (truncated). */
static const char *doc_name(const struct cli *c, char *buf, size_t cap)
{
	snprintf(buf, cap, "%s/%s", c->pos[0], c->pos[1]);
	return buf;
}

/* Flushes stdout and reports a write error (a closed pipe, a full disk). */
static int finish_output(struct cli *c)
{
	if (fflush(stdout) != 0 || ferror(stdout)) {
		err(c, "writing to stdout: %s", strerror(errno));
		return CLI_ERR;
	}
	return CLI_OK;
}

static void on_listen(void *ctx, const char *host, int port)
{
	(void)ctx;
	if (strchr(host, ':') != NULL)
		printf("weft serve: listening on [%s]:%d\n", host, port);
	else
		printf("weft serve: listening on %s:%d\n", host, port);
	fflush(stdout);
}

/*
 * Splits "HOST:PORT" or "[IPV6]:PORT" into host (copied into buf) and port.
 */
static int parse_listen(const char *s, char *buf, size_t cap, int *port)
{
	const char *host = s, *colon, *p;
	size_t hostlen;
	long v = 0;

	if (s[0] == '[') {
		const char *close = strchr(s, ']');

		if (close == NULL || close[1] != ':')
			return -1;
		host = s + 1;
		hostlen = (size_t)(close - host);
		colon = close + 1;
	} else {
		colon = strrchr(s, ':');
		if (colon == NULL)
			return -1;
		hostlen = (size_t)(colon - s);
		if (memchr(s, ':', hostlen) != NULL) /* bare IPv6 needs brackets */
			return -1;
	}
	if (hostlen == 0 || hostlen >= cap)
		return -1;
	p = colon + 1;
	if (*p == '\0')
		return -1;
	for (; *p != '\0'; p++) {
		if (*p < '0' || *p > '9')
			return -1;
		v = v * 10 + (*p - '0');
		if (v > 65535)
			return -1;
	}
	memcpy(buf, host, hostlen);
	buf[hostlen] = '\0';
	*port = (int)v;
	return 0;
}

static int cmd_serve(struct cli *c)
{
	struct weft_serve_opts o;
	char host[256];
	char errbuf[512] = "";
	int port, rc;
	const char *listen = c->listen != NULL ? c->listen : DEFAULT_LISTEN;

	if (parse_listen(listen, host, sizeof(host), &port) != 0)
		return usage_err(c, "--listen: '%s' is not HOST:PORT", listen);
	weft__serve_opts_init(&o);
	o.host = host;
	o.port = port;
	o.data_dir = c->data != NULL ? c->data : DEFAULT_DATA;
	o.durable = (c->seen & OPT_NO_FSYNC) ? 0 : 1;
	if (c->max_drift != NULL) {
		int ms;

		if (parse_wait(c->max_drift, &ms) != 0)
			return usage_err(
			    c, "--max-drift: '%s' is not a non-negative number of seconds",
			    c->max_drift);
		o.max_drift_ms = (uint64_t)ms;
	}
	if (c->snapshot_min != NULL) {
		char *end;
		unsigned long long n;

		errno = 0;
		n = strtoull(c->snapshot_min, &end, 10);
		if (errno != 0 || end == c->snapshot_min || *end != '\0' ||
		    c->snapshot_min[0] == '-')
			return usage_err(c, "--snapshot-min: '%s' is not a count", c->snapshot_min);
		o.snapshot_min = n;
	}
	o.on_listen = on_listen;
	o.ctx = NULL;
	rc = weft__serve(&o, errbuf, sizeof(errbuf));
	if (rc != 0) {
		err(c, "%s", errbuf[0] != '\0' ? errbuf : weft_strerror(rc));
		return CLI_ERR;
	}
	return CLI_OK;
}

/* The local write of each writing command; pos[] is already checked for
 * count. Returns a WEFT_* code (weft_errmsg has the detail). */
typedef int (*write_fn)(struct cli *c, weft_db *db);

/*
 * Runs a writing command: open the replica, make the write, and with
 * --server make it durable locally first (if the server is away, the write
 * must still be there for the next sync), then sync until the server has
 * acknowledged it.
 */
static int run_write(struct cli *c, write_fn write)
{
	char name[256];
	weft_db *db;
	int rc, status;

	status = db_open(c, false, &db);
	if (status != CLI_OK)
		return status;
	rc = write(c, db);
	if (rc != WEFT_OK) {
		status = db_fail(c, db, rc, doc_name(c, name, sizeof(name)));
		goto out_close;
	}
	if (c->server != NULL) {
		rc = weft_flush(db);
		if (rc != WEFT_OK) {
			status = db_fail(c, db, rc, "flush");
			goto out_close;
		}
		status = sync_with_server(c, db);
	}
out_close:
	return db_finish(c, db, status);
}

static int write_put(struct cli *c, weft_db *db)
{
	return weft_put_json(db, c->pos[0], c->pos[1], c->pos[2], (size_t)-1);
}

static int write_del(struct cli *c, weft_db *db)
{
	return weft_delete(db, c->pos[0], c->pos[1]);
}

/* N of `weft incr`: a decimal int64, optionally signed. */
static int parse_i64(const char *s, int64_t *out)
{
	char *end;
	long long v;

	if (*s == '\0' || (*s != '-' && *s != '+' && (*s < '0' || *s > '9')))
		return -1;
	errno = 0;
	v = strtoll(s, &end, 10);
	if (errno != 0 || *end != '\0')
		return -1;
	*out = (int64_t)v;
	return 0;
}

static int write_incr(struct cli *c, weft_db *db)
{
	int64_t n = 0;

	(void)parse_i64(c->pos[3], &n); /* checked by cmd_incr */
	return weft_incr(db, c->pos[0], c->pos[1], c->pos[2], n);
}

/* VALUE of sadd/srem as JSON: itself when it is a JSON scalar, else a JSON
 * string holding it. Returns a malloc'ed string or NULL. */
static char *set_element_json(const char *v)
{
	json_t *j = json_loads(v, JSON_DECODE_ANY, NULL);
	char *out;

	if (j && !json_is_object(j) && !json_is_array(j)) {
		json_decref(j);
		return strdup(v);
	}
	json_decref(j);
	j = json_string(v);
	if (!j)
		return NULL; /* not UTF-8: let the library say so */
	out = json_dumps(j, JSON_ENCODE_ANY);
	json_decref(j);
	return out;
}

static int write_set(struct cli *c, weft_db *db, bool add)
{
	char *elem = set_element_json(c->pos[3]);
	int rc;

	if (!elem)
		return weft_set_add(db, c->pos[0], c->pos[1], c->pos[2], c->pos[3]);
	rc = add ? weft_set_add(db, c->pos[0], c->pos[1], c->pos[2], elem)
	         : weft_set_remove(db, c->pos[0], c->pos[1], c->pos[2], elem);
	free(elem);
	return rc;
}

static int write_sadd(struct cli *c, weft_db *db)
{
	return write_set(c, db, true);
}

static int write_srem(struct cli *c, weft_db *db)
{
	return write_set(c, db, false);
}

static int cmd_put(struct cli *c)
{
	return run_write(c, write_put);
}

static int cmd_del(struct cli *c)
{
	return run_write(c, write_del);
}

static int cmd_incr(struct cli *c)
{
	int64_t n;

	if (parse_i64(c->pos[3], &n) != 0)
		return usage_err(c, "N: '%s' is not a 64-bit integer", c->pos[3]);
	return run_write(c, write_incr);
}

/* A set element must be a scalar: JSON objects and arrays are refused. */
static bool element_ok(const char *v)
{
	json_t *j = json_loads(v, JSON_DECODE_ANY, NULL);
	bool ok = !json_is_object(j) && !json_is_array(j);

	json_decref(j);
	return ok;
}

static int cmd_sadd(struct cli *c)
{
	if (!element_ok(c->pos[3]))
		return usage_err(c, "VALUE: '%s' is not a JSON scalar", c->pos[3]);
	return run_write(c, write_sadd);
}

static int cmd_srem(struct cli *c)
{
	if (!element_ok(c->pos[3]))
		return usage_err(c, "VALUE: '%s' is not a JSON scalar", c->pos[3]);
	return run_write(c, write_srem);
}

/* POS and COUNT of text-insert/text-delete: a decimal size_t. */
static int parse_size(const char *s, size_t *out)
{
	char *end;
	unsigned long long v;

	if (*s < '0' || *s > '9')
		return -1;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno != 0 || *end != '\0' || v > SIZE_MAX)
		return -1;
	*out = (size_t)v;
	return 0;
}

static int write_text_insert(struct cli *c, weft_db *db)
{
	size_t pos = 0;

	(void)parse_size(c->pos[3], &pos); /* checked by cmd_text_insert */
	return weft_text_insert(db, c->pos[0], c->pos[1], c->pos[2], pos, c->pos[4]);
}

static int write_text_delete(struct cli *c, weft_db *db)
{
	size_t pos = 0, count = 0;

	(void)parse_size(c->pos[3], &pos); /* checked by cmd_text_delete */
	(void)parse_size(c->pos[4], &count);
	return weft_text_delete(db, c->pos[0], c->pos[1], c->pos[2], pos, count);
}

static int cmd_text_insert(struct cli *c)
{
	size_t pos;

	if (parse_size(c->pos[3], &pos) != 0)
		return usage_err(c, "POS: '%s' is not a non-negative integer", c->pos[3]);
	return run_write(c, write_text_insert);
}

static int cmd_text_delete(struct cli *c)
{
	size_t pos, count;

	if (parse_size(c->pos[3], &pos) != 0)
		return usage_err(c, "POS: '%s' is not a non-negative integer", c->pos[3]);
	if (parse_size(c->pos[4], &count) != 0)
		return usage_err(c, "COUNT: '%s' is not a non-negative integer", c->pos[4]);
	return run_write(c, write_text_delete);
}

static int cmd_get(struct cli *c)
{
	char name[256];
	weft_db *db;
	char *json = NULL;
	size_t len = 0;
	int rc, status;

	status = db_open(c, false, &db);
	if (status != CLI_OK)
		return status;
	if (c->server != NULL) {
		status = sync_with_server(c, db);
		if (status != CLI_OK)
			goto out_close;
	}
	rc = weft_get_json(db, c->pos[0], c->pos[1], &json, &len);
	if (rc == WEFT_ENOTFOUND) {
		err(c, "%s: not found", doc_name(c, name, sizeof(name)));
		status = CLI_NOTFOUND;
		goto out_close;
	}
	if (rc != WEFT_OK) {
		status = db_fail(c, db, rc, doc_name(c, name, sizeof(name)));
		goto out_close;
	}
	fwrite(json, 1, len, stdout);
	fputc('\n', stdout);
	weft_free(json);
	status = finish_output(c);
out_close:
	return db_finish(c, db, status);
}

static int cmd_sync(struct cli *c)
{
	weft_db *db;
	int status;

	status = db_open(c, false, &db);
	if (status != CLI_OK)
		return status;
	status = sync_with_server(c, db);
	return db_finish(c, db, status);
}

/* Writes s as a JSON string the way the canonical form does
 * (docs/DATA-MODEL.md): '"' and '\\' escaped, control characters as \b \f
 * \n \r \t or else \u00xx in lowercase hex, everything else (UTF-8, DEL)
 * as is. */
static void json_put_string(FILE *f, const char *s)
{
	fputc('"', f);
	for (const unsigned char *p = (const unsigned char *)s; *p != '\0'; p++) {
		if (*p == '"' || *p == '\\') {
			fputc('\\', f);
			fputc(*p, f);
		} else if (*p < 0x20) {
			const char *esc = NULL;

			switch (*p) {
			case '\b':
				esc = "\\b";
				break;
			case '\f':
				esc = "\\f";
				break;
			case '\n':
				esc = "\\n";
				break;
			case '\r':
				esc = "\\r";
				break;
			case '\t':
				esc = "\\t";
				break;
			default:
				break;
			}
			if (esc != NULL)
				fputs(esc, f);
			else
				fprintf(f, "\\u%04x", (unsigned)*p);
		} else {
			fputc(*p, f);
		}
	}
	fputc('"', f);
}

static const char *op_name(int op)
{
	switch (op) {
	case WEFT_CHANGE_INSERT:
		return "insert";
	case WEFT_CHANGE_UPDATE:
		return "update";
	case WEFT_CHANGE_DELETE:
		return "delete";
	default:
		return "unknown";
	}
}

struct watch_state {
	bool out_failed; /* stdout could not be written: stop watching */
	int out_errno;   /* why */
};

/* One change, one line, keys in sorted order; flushed at once so that a
 * reader of the pipe sees each change as it happens. */
static int watch_cb(void *ctx, const weft_change *ch)
{
	struct watch_state *w = ctx;
	FILE *f = stdout;

	fputs("{\"collection\":", f);
	json_put_string(f, ch->collection);
	fputs(",\"doc\":", f);
	fputs(ch->doc_json != NULL ? ch->doc_json : "null", f);
	fprintf(f, ",\"from_sync\":%s,\"id\":", ch->from_sync ? "true" : "false");
	json_put_string(f, ch->id);
	fprintf(f, ",\"op\":\"%s\"}\n", op_name(ch->op));
	if (fflush(f) != 0 || ferror(f)) {
		w->out_failed = true;
		w->out_errno = errno;
		return 1;
	}
	return 0;
}

static int cmd_watch(struct cli *c)
{
	struct watch_state w = {0};
	weft_db *db;
	int rc, status;

	status = db_open(c, false, &db);
	if (status != CLI_OK)
		return status;
	rc = weft_watch(db, c->server, c->npos > 0 ? c->pos[0] : NULL, watch_cb, &w);
	if (w.out_failed) {
		err(c, "writing to stdout: %s", strerror(w.out_errno));
		status = CLI_ERR;
	} else if (rc == WEFT_ETIMEDOUT || rc == WEFT_ECLOSED) {
		const char *msg = weft_errmsg(db);

		err(c, "server %s: %s%s%s", c->server, weft_strerror(rc),
		    msg[0] != '\0' ? ": " : "", msg);
		status = CLI_TIMEOUT;
	} else if (rc != WEFT_OK) {
		status = db_fail(c, db, rc, "watch");
	}
	return db_finish(c, db, status);
}

/* Prints the dump, or with --hash its SHA-256. */
static int dump_output(struct cli *c, const char *out, size_t len)
{
	if (c->seen & OPT_HASH) {
		char hex[65];

		weft_sha256_hex(out, len, hex);
		printf("%s\n", hex);
	} else {
		fwrite(out, 1, len, stdout);
	}
	return finish_output(c);
}

static int cmd_dump(struct cli *c)
{
	char *out = NULL;
	size_t len = 0;
	int rc, status;

	if ((c->db == NULL) == (c->data == NULL))
		return usage_err(c, "give exactly one of --db and --data");
	if (c->data != NULL) {
		char errbuf[512] = "";

		rc = weft__serve_dump(c->data, &out, &len, errbuf, sizeof(errbuf));
		if (rc != WEFT_OK) {
			err(c, "%s: %s", c->data, errbuf[0] != '\0' ? errbuf : weft_strerror(rc));
			return CLI_ERR;
		}
		status = dump_output(c, out, len);
		free(out);
		return status;
	}

	weft_db *db;

	status = db_open(c, true, &db);
	if (status != CLI_OK)
		return status;
	rc = weft_dump(db, &out, &len);
	if (rc != WEFT_OK) {
		status = db_fail(c, db, rc, "dump");
		goto out_close;
	}
	status = dump_output(c, out, len);
	weft_free(out);
out_close:
	return db_finish(c, db, status);
}

int main(int argc, char **argv)
{
	const struct command *cmd;
	struct cli c = {.wait_ms = DEFAULT_WAIT_MS};
	int status;

	/* Socket writes to a peer that went away must fail with EPIPE, not
	 * kill the process; the same for stdout into a closed pipe. */
	signal(SIGPIPE, SIG_IGN);

	if (argc < 2) {
		print_main_usage(stderr);
		return CLI_ERR;
	}
	if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
		print_main_usage(stdout);
		return CLI_OK;
	}
	if (strcmp(argv[1], "--version") == 0) {
		printf("%s\n", weft_version());
		return CLI_OK;
	}
	if (strcmp(argv[1], "bench") == 0) {
		/* Benchmarks take their own arguments (tools/bench_*.c). */
		if (argc >= 3 && strcmp(argv[2], "text") == 0)
			return weft__tool_bench_text(argc - 3, argv + 3);
		fputs("usage: weft bench text TRACE.json.gz [--mode local|remote] [--runs N]\n",
		      stderr);
		return CLI_ERR;
	}
	if (strcmp(argv[1], "help") == 0) {
		if (argc == 2) {
			print_main_usage(stdout);
			return CLI_OK;
		}
		if (argc > 3) {
			fputs("weft: help: too many arguments\n", stderr);
			return CLI_ERR;
		}
		cmd = find_command(argv[2]);
		if (cmd == NULL) {
			fprintf(stderr, "weft: help: unknown command '%s'\n", argv[2]);
			print_main_usage(stderr);
			return CLI_ERR;
		}
		print_command_usage(cmd, stdout);
		return CLI_OK;
	}
	cmd = find_command(argv[1]);
	if (cmd == NULL) {
		fprintf(stderr, "weft: unknown %s '%s'\n", argv[1][0] == '-' ? "option" : "command",
		        argv[1]);
		print_main_usage(stderr);
		return CLI_ERR;
	}
	if (wants_help(argc - 2, argv + 2)) {
		print_command_usage(cmd, stdout);
		return CLI_OK;
	}
	c.cmd = cmd->name;
	status = parse_args(cmd, argc - 2, argv + 2, &c);
	if (status != CLI_OK)
		return status;
	return cmd->run(&c);
}
