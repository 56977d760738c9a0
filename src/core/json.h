/*
 * json.h - canonical JSON output (docs/DATA-MODEL.md, "Canonical form").
 *
 * Writes MessagePack values as canonical JSON: object keys sorted by their
 * UTF-8 bytes (memcmp, shorter first on a common prefix), no whitespace,
 * integers exact, floats in the shortest form that round-trips, printed as
 * ECMAScript Number.prototype.toString does (RFC 8785 section 3.2.2.3),
 * strings with only the escapes RFC 8785 requires (\" \\ \b \f \n \r \t and
 * \u00XX in lowercase hex for other controls; everything else as UTF-8).
 * -0.0 prints as 0. Floats that hold an integer print as an integer (1.0 ->
 * 1), as in ECMAScript.
 */
#ifndef WEFT_CORE_JSON_H
#define WEFT_CORE_JSON_H

#include <stddef.h>

#include "core/mp.h"

/* Appends the canonical JSON of the one MessagePack value at `r` to `out`
 * (a byte buffer reused from mp.h; no MessagePack is written to it), and
 * consumes it. Errors: WEFT_EPROTO (malformed, non-string map key, bin,
 * NaN/Inf, duplicate key), WEFT_ENOMEM / WEFT_ETOOBIG (out->err). */
int weft__json_write_mp(struct mp_buf *out, struct mp_reader *r);

/* Appends `s` as a canonical JSON string literal (with quotes). */
void weft__json_write_str(struct mp_buf *out, const char *s, size_t len);
/* Appends the canonical form of a double (must be finite). */
void weft__json_write_double(struct mp_buf *out, double v);
void weft__json_write_int(struct mp_buf *out, int64_t v);
void weft__json_write_uint(struct mp_buf *out, uint64_t v);

#endif
