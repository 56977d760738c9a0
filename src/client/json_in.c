/*
 * json_in.c - JSON text into MessagePack through jansson. See json_in.h.
 *
 * jansson is the boundary parser (strict UTF-8, exact 64-bit integers,
 * JSON_REJECT_DUPLICATES); the core never sees JSON text.
 */
#include <stdio.h>
#include <string.h>

#include <jansson.h>

#include "weft/weft.h"
#include "client/json_in.h"

static int emit(json_t *v, int depth, int max_depth, struct mp_buf *out)
{
	int rc;

	switch (json_typeof(v)) {
	case JSON_NULL:
		weft__mp_write_nil(out);
		break;
	case JSON_TRUE:
		weft__mp_write_bool(out, true);
		break;
	case JSON_FALSE:
		weft__mp_write_bool(out, false);
		break;
	case JSON_INTEGER:
		weft__mp_write_int(out, (int64_t)json_integer_value(v));
		break;
	case JSON_REAL:
		weft__mp_write_double(out, json_real_value(v));
		break;
	case JSON_STRING:
		weft__mp_write_str(out, json_string_value(v), json_string_length(v));
		break;
	case JSON_ARRAY: {
		size_t i;
		json_t *e;

		if (depth >= max_depth)
			return WEFT_ETOOBIG;
		weft__mp_write_array(out, (uint32_t)json_array_size(v));
		json_array_foreach(v, i, e)
		{
			if ((rc = emit(e, depth + 1, max_depth, out)) != WEFT_OK)
				return rc;
		}
		break;
	}
	case JSON_OBJECT: {
		const char *k;
		json_t *e;

		if (depth >= max_depth)
			return WEFT_ETOOBIG;
		weft__mp_write_map(out, (uint32_t)json_object_size(v));
		json_object_foreach(v, k, e)
		{
			weft__mp_write_str(out, k, strlen(k));
			if ((rc = emit(e, depth + 1, max_depth, out)) != WEFT_OK)
				return rc;
		}
		break;
	}
	}
	return out->err;
}

int weft__json_to_mp(const char *json, size_t len, int max_depth, struct mp_buf *out, char *err,
                     size_t errlen)
{
	json_error_t je;
	json_t *root;
	int rc;

	root = json_loadb(json, len, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, &je);
	if (!root) {
		snprintf(err, errlen, "invalid JSON at line %d column %d: %s", je.line, je.column,
		         je.text);
		return WEFT_EINVAL;
	}
	rc = emit(root, 0, max_depth, out);
	if (rc == WEFT_ETOOBIG)
		snprintf(err, errlen, "JSON nested deeper than %d levels", max_depth);
	else if (rc != WEFT_OK)
		snprintf(err, errlen, "encoding JSON: %s", weft_strerror(rc));
	json_decref(root);
	return rc;
}
