/* SPDX-License-Identifier: Apache-2.0 */
/*
 * json_lite.h — a strict, bounded JSON reader over a cursor, for headers whose schema pdckpt knows
 * (safetensors).  Errors carry the exact byte offset; nothing is allocated except decoded strings.
 */
#ifndef PDK_JSON_LITE_H
#define PDK_JSON_LITE_H

#include "pdk_format.h"

void pdk_json_ws(pdk_cursor *cur);
/* Consumes `c` after optional whitespace, or fails naming `context`. */
pdckpt_status pdk_json_expect(pdk_cursor *cur, char c, const char *context);
/* After optional whitespace: true and consumes `c` when it is next. */
bool pdk_json_accept(pdk_cursor *cur, char c);
/* Decodes a string into a new NUL-terminated buffer from `a` (free with pdk_free(a, s, *len + 1)).
 */
pdckpt_status pdk_json_string(pdk_cursor *cur, const pdckpt_allocator *a, char **out, size_t *len);
/* A string of ASCII without control characters or escapes (its text is its bytes): *text points
 * into the input, the cursor moves past it.  Anything else: false, the cursor only past whitespace
 * (read it with pdk_json_string, which decodes and reports errors). */
bool          pdk_json_plain(pdk_cursor *cur, const char **text, size_t *len);
pdckpt_status pdk_json_uint(pdk_cursor *cur, uint64_t *out, const char *what);
/* Skips any value, nesting at most `max_depth` deep. */
pdckpt_status pdk_json_skip(pdk_cursor *cur, int max_depth);
/* Appends `s[0..len)` as a JSON string literal (with quotes) to the sink, through the one JSON
 * string writer (pdckpt_json_write_string), escaped as safetensors' own writer (serde_json) does;
 * UNSUPPORTED when it is not UTF-8. */
pdckpt_status pdk_json_write_string(pdk_sink *sink, const char *s, size_t len, pdckpt_error *err);
/* The same with every code point past U+007E as \uxxxx: Python's json.dump (ensure_ascii). */
pdckpt_status pdk_json_write_ascii(pdk_sink *sink, const char *s, size_t len, pdckpt_error *err);

#endif /* PDK_JSON_LITE_H */
