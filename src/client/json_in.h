/*
 * json_in.h - JSON text from the application into MessagePack values, with
 * the data model's limits (docs/DATA-MODEL.md): strict UTF-8, no duplicate
 * keys, integers exact within int64, nesting within `max_depth`.
 */
#ifndef WEFT_CLIENT_JSON_IN_H
#define WEFT_CLIENT_JSON_IN_H

#include <stddef.h>

#include "core/mp.h"

/* Parses `json` (len bytes) and appends its MessagePack encoding to out.
 * Errors: WEFT_EINVAL (bad JSON; message in err), WEFT_ETOOBIG (nesting or
 * size), WEFT_ENOMEM. */
int weft__json_to_mp(const char *json, size_t len, int max_depth, struct mp_buf *out, char *err,
                     size_t errlen);

#endif
