/*
 * writer.h - the replica's write-behind thread (group commit to the store).
 *
 * The application thread enqueues records (oplog appends, document states,
 * meta values, oplog trims); the writer thread applies everything queued
 * in one store transaction per batch: it waits up to `interval_ms` after
 * the first record of a batch so that many writes share one commit, or
 * less when a flush is requested. A failed batch is rolled back, kept at
 * the head of the queue in order and retried with exponential backoff
 * (50 ms doubling to 5 s), so a transient error (disk full) loses nothing.
 *
 * Threads: writer_enqueue_* and writer_flush are called from the
 * application thread (the one that owns the weft_db); the store is touched
 * only by the writer thread between writer_start and writer_stop.
 */
#ifndef WEFT_CLIENT_WRITER_H
#define WEFT_CLIENT_WRITER_H

#include <stddef.h>
#include <stdint.h>

#include "core/store.h"

struct writer;

/* Starts the thread; the writer borrows st until writer_stop. */
int weft__writer_start(struct weft_store *st, const struct weft_alloc *a, uint32_t interval_ms,
                       struct writer **out);
/* Flushes (retrying failed batches a few times), stops and frees. Returns
 * the last error if the final flush failed (what was queued is then lost
 * from memory but everything acknowledged to the caller by a successful
 * flush is durable). */
int weft__writer_stop(struct writer *w);

/* Each enqueue copies its arguments. Errors: WEFT_ENOMEM (nothing queued). */
int weft__writer_log_append(struct writer *w, uint64_t key, const void *val, size_t len);
int weft__writer_log_trim(struct writer *w, uint64_t upto);
int weft__writer_doc_put(struct writer *w, const char *coll, size_t coll_len, const char *id,
                         size_t id_len, const void *val, size_t len);
int weft__writer_meta_put(struct writer *w, const char *key, const void *val, size_t len);

/* Blocks until everything enqueued before the call is durable. Returns
 * WEFT_OK, or the error of a failed attempt to commit it (the records stay
 * queued and are retried). */
int weft__writer_flush(struct writer *w);

#endif
