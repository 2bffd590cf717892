/* SPDX-License-Identifier: Apache-2.0 */
/*
 * pickle_paddle.c — what paddle.load does to a loaded dict, done the same way (spec
 * pickle-and-distributed-formats.md §1.5, §1.6): big arrays that paddle.save cut into
 * `key@@.i` slices (protocol 2/3) are joined again under their key, which Paddle re-inserts at the
 * end of the dict; then every tensor listed in "StructuredToParameterName@@" gets its Paddle
 * variable name.  The name table itself stays in the tree (writers reproduce it).  Last, arrays
 * paddle.load makes tensors take the dtype Paddle gives them (pickle_tensors.c).
 */
#include "pickle_vm.h"

#include <string.h>

#define BIG_INFO "UnpackBigParamInfor@@"

static pdckpt_status bad_info(pk_vm *vm, const char *key, const char *what) {
    return pdk_fail(vm->err, PDCKPT_ERR_FORMAT, vm->in->name, -1, BIG_INFO " entry '%s': %s", key,
                    what);
}

/* The slices of one big array: 1-D tensors of one dtype whose sizes add up to the shape. */
static pdckpt_status check_slices(pk_vm *vm, pdckpt_value *root, const char *key,
                                  const pdckpt_value *slices, pdckpt_dtype *dtype,
                                  uint64_t *total) {
    *total = 0;
    for (size_t i = 0; i < pdckpt_value_len(slices); i++) {
        const char        *name = pdckpt_value_get_string(pdckpt_value_at(slices, i), NULL);
        pdckpt_tensor_view v;
        if (!name || !pdckpt_tensor_get_memory(pdckpt_dict_get(root, name), &v, NULL))
            return bad_info(vm, key, "a slice is missing or is not an array");
        if (v.n_dims != 1) return bad_info(vm, key, "a slice is not 1-D");
        if (i == 0) *dtype = v.dtype;
        if (v.dtype != *dtype) return bad_info(vm, key, "slices have different dtypes");
        *total += v.n_elements;
    }
    if (pdckpt_value_len(slices) == 0) return bad_info(vm, key, "no slices");
    return PDCKPT_OK;
}

static pdckpt_status origin_shape(pk_vm *vm, const char *key, const pdckpt_value *shape,
                                  int32_t *nd, int64_t *dims) {
    pdckpt_kind k = pdckpt_value_kind(shape);
    size_t      n = pdckpt_value_len(shape);
    if ((k != PDCKPT_KIND_TUPLE && k != PDCKPT_KIND_LIST) || n > PDCKPT_MAX_DIMS)
        return bad_info(vm, key, "OriginShape is not a shape");
    for (size_t i = 0; i < n; i++)
        if (!pdckpt_value_get_int(pdckpt_value_at(shape, i), &dims[i]) || dims[i] < 0)
            return bad_info(vm, key, "OriginShape is not a shape");
    *nd = (int32_t)n;
    return PDCKPT_OK;
}

static pdckpt_status join_one(pk_vm *vm, pdckpt_value *root, const char *key,
                              const pdckpt_value *entry) {
    const pdckpt_value *slices = pdckpt_dict_get(entry, "slices");
    int64_t             dims[PDCKPT_MAX_DIMS];
    int32_t             nd = 0;
    pdckpt_dtype        dtype = PDCKPT_DTYPE_INVALID;
    uint64_t            total, n_el, n_bytes;
    PDK_TRY(origin_shape(vm, key, pdckpt_dict_get(entry, "OriginShape"), &nd, dims));
    PDK_TRY(check_slices(vm, root, key, slices, &dtype, &total));
    if (pdk_tensor_sizes(dtype, nd, dims, &n_el, &n_bytes, vm->err) != PDCKPT_OK || n_el != total) {
        pdk_error_reset(vm->err);
        return bad_info(vm, key, "the slices do not add up to OriginShape");
    }
    if (n_bytes > vm->opts->max_tensor_bytes)
        return pdk_fail(vm->err, PDCKPT_ERR_LIMIT, vm->in->name, -1,
                        BIG_INFO " entry '%s': expected at most %llu bytes (max_tensor_bytes), "
                                 "found %llu",
                        key, (unsigned long long)vm->opts->max_tensor_bytes,
                        (unsigned long long)n_bytes);
    PDK_TRY(pk_charge(vm, n_bytes));
    pdckpt_value *t = NULL;
    PDK_TRY(pdckpt_tensor_new(vm->a, dtype, nd, dims, &t, vm->err));
    uint8_t *d = pdckpt_tensor_data_mut(t);
    pdk_value_note_at(
        t, pdckpt_value_offset(
               pdckpt_dict_get(/* its first slice's */
                               root, pdckpt_value_get_string(pdckpt_value_at(slices, 0), NULL))));
    for (size_t i = 0; i < pdckpt_value_len(slices); i++) {
        pdckpt_tensor_view v; /* 1-D (check_slices), so C order is the memory itself */
        pdckpt_tensor_get_memory(
            pdckpt_dict_get(root, pdckpt_value_get_string(pdckpt_value_at(slices, i), NULL)), &v,
            NULL);
        if (v.n_bytes) memcpy(d, v.data, (size_t)v.n_bytes);
        d += v.n_bytes;
    }
    return pdckpt_dict_set(root, key, t, vm->err); /* a new key goes to the end, as in Paddle */
}

static pdckpt_status join_big_arrays(pk_vm *vm, pdckpt_value *root) {
    const pdckpt_value *info = pdckpt_dict_get(root, BIG_INFO);
    if (!info) return PDCKPT_OK;
    if (pdckpt_value_kind(info) != PDCKPT_KIND_DICT)
        return pdk_fail(vm->err, PDCKPT_ERR_FORMAT, vm->in->name, -1,
                        "expected " BIG_INFO " to be a dict, found a %s",
                        pdckpt_kind_name(pdckpt_value_kind(info)));
    for (size_t i = 0; i < pdckpt_value_len(info); i++) {
        const char         *key = pdckpt_value_get_string(pdckpt_dict_key_at(info, i), NULL);
        const pdckpt_value *entry = pdckpt_value_at(info, i);
        if (!key || pdckpt_value_kind(entry) != PDCKPT_KIND_DICT)
            return bad_info(vm, key ? key : "?", "expected a string key and a dict");
        PDK_TRY(join_one(vm, root, key, entry));
    }
    for (size_t i = 0; i < pdckpt_value_len(info); i++) {
        const pdckpt_value *slices = pdckpt_dict_get(pdckpt_value_at(info, i), "slices");
        for (size_t j = 0; j < pdckpt_value_len(slices); j++)
            pdckpt_dict_remove(root, pdckpt_value_get_string(pdckpt_value_at(slices, j), NULL));
    }
    pdckpt_dict_remove(root, BIG_INFO); /* frees `info` */
    return PDCKPT_OK;
}

/* Tensors listed in the name table carry their Paddle name: set in place on a tensor the root
 * alone holds (the VM has let go of its values by now), else on a renamed copy (a shared value
 * is never changed in place). */
static pdckpt_status apply_names(pk_vm *vm, pdckpt_value *root) {
    const pdckpt_value *table = pdckpt_dict_get(root, PDCKPT_NAME_TABLE_KEY);
    if (pdckpt_value_kind(table) != PDCKPT_KIND_DICT) return PDCKPT_OK;
    for (size_t i = 0; i < pdckpt_value_len(table); i++) {
        pdk_dict_prefetch(root, pdckpt_dict_key_at(table, i + 8)); /* NULL past the end */
        size_t      klen, nlen;
        const char *key = pdckpt_value_get_string(pdckpt_dict_key_at(table, i), &klen);
        const char *name = pdckpt_value_get_string(pdckpt_value_at(table, i), &nlen);
        if (!key || !name || strlen(key) != klen || strlen(name) != nlen) continue;
        pdckpt_value *t = pdckpt_dict_get_mut(root, key);
        if (pdckpt_value_kind(t) != PDCKPT_KIND_TENSOR) continue;
        if (pdk_value_refs(t) == 1) {
            PDK_TRY(pk_charge(vm, nlen + 1));
            PDK_TRY(pdckpt_tensor_set_name(t, name, vm->err));
            continue;
        }
        pdckpt_value *named = NULL;
        PDK_TRY(pk_tensor_renamed(vm, t, name, &named));
        PDK_TRY(pdckpt_dict_set(root, key, named, vm->err));
    }
    return PDCKPT_OK;
}

/* paddle.to_tensor makes a uint16 array a bfloat16 tensor: where paddle.load returns a tensor,
 * a uint16 array is bfloat16 (float8 has no such rule: Paddle pickles it as int8 and loads int8).
 */
static pdckpt_status retype_bits(void *ctx, pdckpt_value *t, const char *path, pdckpt_error *err) {
    (void)ctx;
    (void)path;
    pdckpt_tensor_view v;
    pdckpt_tensor_get_memory(t, &v, NULL);
    return v.dtype == PDCKPT_DTYPE_UINT16 ? pdckpt_tensor_reinterpret(t, PDCKPT_DTYPE_BFLOAT16, err)
                                          : PDCKPT_OK;
}

static bool is_text(const pdckpt_value *v) {
    size_t      len;
    const char *s = pdckpt_value_get_string(v, &len);
    return s && pdckpt_value_kind(v) == PDCKPT_KIND_STRING && strlen(s) == len;
}

pdckpt_status pdk_pickle_paddle_keys_ok(const pdckpt_value *root, const char *file,
                                        pdckpt_error *err) {
    if (pdckpt_value_kind(root) != PDCKPT_KIND_DICT) return PDCKPT_OK;
    if (pdckpt_dict_get(root, BIG_INFO))
        return pdk_fail(err, PDCKPT_ERR_ARGUMENT, file, -1,
                        "the key '" BIG_INFO "' is paddle.save's record of arrays it split, "
                        "which paddle.load joins (and fails on anything else): rename it");
    const pdckpt_value *table = pdckpt_dict_get(root, PDCKPT_NAME_TABLE_KEY);
    if (!table) return PDCKPT_OK;
    bool ok = pdckpt_value_kind(table) == PDCKPT_KIND_DICT;
    for (size_t i = 0; ok && i < pdckpt_value_len(table); i++) {
        const pdckpt_value *key = pdckpt_dict_key_at(table, i);
        ok = is_text(key) && is_text(pdckpt_value_at(table, i)) &&
             pdckpt_dict_get(root, pdckpt_value_get_string(key, NULL));
    }
    if (ok) return PDCKPT_OK;
    return pdk_fail(err, PDCKPT_ERR_ARGUMENT, file, -1,
                    "the key '" PDCKPT_NAME_TABLE_KEY "' is paddle.save's name table, which "
                    "paddle.load reads as {key: name} for keys of the dict (and fails on anything "
                    "else): expected a dict of str to str naming keys beside it, found %s",
                    pdckpt_value_kind(table) == PDCKPT_KIND_DICT ? "other entries"
                                                                 : "another value");
}

pdckpt_status pk_paddle_finish(pk_vm *vm, pdckpt_value **root) {
    if (pdckpt_value_kind(*root) == PDCKPT_KIND_DICT) {
        PDK_TRY(join_big_arrays(vm, *root));
        PDK_TRY(apply_names(vm, *root));
        /* no name table: pickled as it is, and so written back (pickle_write.c) */
        if (pdckpt_value_kind(pdckpt_dict_get(*root, PDCKPT_NAME_TABLE_KEY)) != PDCKPT_KIND_DICT)
            pdk_dict_set_plain(*root, true);
    }
    return pdk_pickle_paddle_tensors(*root, false, retype_bits, NULL, vm->err);
}
