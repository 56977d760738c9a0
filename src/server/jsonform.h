/*
 * jsonform.h - the JSON debug form of MessagePack values, both ways.
 *
 * The HTTP endpoints (server/http.h) take and give MessagePack; with
 * Content-Type application/json they take and give the same values
 * written as JSON instead, for curl and for debugging:
 *
 *   MessagePack                JSON
 *   nil                        null
 *   true / false               true / false
 *   integer                    integer, exact (-2^63 .. 2^64-1)
 *   float32 / float64          number with a '.' or an exponent (read back
 *                              as float64); NaN and infinities have no form
 *   str                        string
 *   bin                        {"$bin": "<standard base64, padded>"}
 *   array                      array
 *   map (string keys only)     object, members in the map's order
 *   map with one member whose  {"$map": {<the map's member>}}
 *   key is "$bin" or "$map"
 *
 * So every object with one member named "$bin" or "$map" is an escape,
 * and every MessagePack value with string map keys and finite floats has
 * exactly one JSON form that reads back to it (up to integer and float
 * encoding widths: the reader writes the smallest integer encoding and
 * float64).
 *
 * Threads: no shared state; any thread.
 */
#ifndef WEFT_SERVER_JSONFORM_H
#define WEFT_SERVER_JSONFORM_H

#include <stddef.h>
#include <stdint.h>

#include "core/mp.h"

/* Deepest nesting of arrays and objects either way. */
#define WEFT_JSONFORM_MAX_DEPTH 64

/*
 * Appends the JSON form of the one MessagePack value at data[0..len) to
 * `out` (text, not NUL-terminated). Errors: WEFT_EPROTO (malformed
 * MessagePack, bytes after the value, nesting over the limit, a map key
 * that is not a string, a NaN or infinite float: reason in err),
 * WEFT_ENOMEM / WEFT_ETOOBIG (out->err). On error, out holds a partial
 * text.
 */
int weft__jsonform_from_mp(const uint8_t *data, size_t len, struct mp_buf *out, char *err,
                           size_t errlen);

/*
 * Parses the JSON form in json[0..len) (UTF-8, one value, RFC 8259; a
 * duplicate object key is refused) and appends its one MessagePack value
 * to `out`. Errors: WEFT_EINVAL (not JSON, an integer out of range, a bad
 * "$bin" or "$map" escape, nesting over the limit: reason with line and
 * column where known in err), WEFT_ENOMEM, WEFT_ETOOBIG (out->max).
 */
int weft__jsonform_to_mp(const char *json, size_t len, struct mp_buf *out, char *err,
                         size_t errlen);

#endif
