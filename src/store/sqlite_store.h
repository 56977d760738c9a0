/*
 * sqlite_store.h - the SQLite implementation of core/store.h.
 */
#ifndef WEFT_STORE_SQLITE_STORE_H
#define WEFT_STORE_SQLITE_STORE_H

#include "core/store.h"

enum {
	WEFT_SQLITE_CREATE = 1,   /* create the file if missing */
	WEFT_SQLITE_READONLY = 2, /* open read-only (no transactions allowed) */
	WEFT_SQLITE_NOSYNC = 4    /* synchronous=OFF: tests only; not durable */
};

/*
 * Opens or creates the SQLite database at `path` in WAL mode with
 * synchronous=FULL (commit is durable when it returns), creates the schema
 * if needed, and checks the schema version (WEFT_ECORRUPT if the file is
 * not a weft store or from a newer version). `errbuf` (may be NULL) of
 * `errlen` bytes receives a message on failure.
 * Errors: WEFT_EIO, WEFT_ECORRUPT, WEFT_ENOMEM, WEFT_ENOTFOUND (no file and
 * no WEFT_SQLITE_CREATE).
 */
int weft__sqlite_store_open(const char *path, int flags, const struct weft_alloc *alloc,
                            struct weft_store **out, char *errbuf, size_t errlen);

#endif
