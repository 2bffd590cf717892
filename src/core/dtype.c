/* SPDX-License-Identifier: Apache-2.0 */
/*
 * dtype.c — the one table that maps each element type to Paddle's VarType code, numpy's pickle
 * spelling, safetensors' name and DLPack's code (spec binary-and-static-formats.md §1.4;
 * pickle-and-distributed-formats.md §1.9).  numpy has no bfloat16/float8: those have no numpy
 * code, and Paddle pickles bfloat16 as uint16 bits.
 */
#include "pdk_core.h"

#include <string.h>

/* DLPack DLDataTypeCode values (DLPack 1.1). */
enum {
    DL_INT = 0,
    DL_UINT = 1,
    DL_FLOAT = 2,
    DL_BFLOAT = 4,
    DL_COMPLEX = 5,
    DL_BOOL = 6,
    DL_F8_E4M3FN = 10,
    DL_F8_E4M3FNUZ = 11,
    DL_F8_E5M2 = 12,
    DL_F8_E5M2FNUZ = 13,
    DL_F8_E8M0FNU = 14
};

static const pdk_dtype_info dtype_table[PDCKPT_DTYPE_COUNT] = {
    [PDCKPT_DTYPE_BOOL] = {"bool", "b1", '|', "BOOL", 0, 1, DL_BOOL, 8},
    [PDCKPT_DTYPE_UINT8] = {"uint8", "u1", '|', "U8", 20, 1, DL_UINT, 8},
    [PDCKPT_DTYPE_INT8] = {"int8", "i1", '|', "I8", 21, 1, DL_INT, 8},
    [PDCKPT_DTYPE_INT16] = {"int16", "i2", '<', "I16", 1, 2, DL_INT, 16},
    [PDCKPT_DTYPE_UINT16] = {"uint16", "u2", '<', "U16", -1, 2, DL_UINT, 16},
    [PDCKPT_DTYPE_INT32] = {"int32", "i4", '<', "I32", 2, 4, DL_INT, 32},
    [PDCKPT_DTYPE_UINT32] = {"uint32", "u4", '<', "U32", -1, 4, DL_UINT, 32},
    [PDCKPT_DTYPE_INT64] = {"int64", "i8", '<', "I64", 3, 8, DL_INT, 64},
    [PDCKPT_DTYPE_UINT64] = {"uint64", "u8", '<', "U64", -1, 8, DL_UINT, 64},
    [PDCKPT_DTYPE_FLOAT16] = {"float16", "f2", '<', "F16", 4, 2, DL_FLOAT, 16},
    [PDCKPT_DTYPE_BFLOAT16] = {"bfloat16", NULL, '<', "BF16", 22, 2, DL_BFLOAT, 16},
    [PDCKPT_DTYPE_FLOAT32] = {"float32", "f4", '<', "F32", 5, 4, DL_FLOAT, 32},
    [PDCKPT_DTYPE_FLOAT64] = {"float64", "f8", '<', "F64", 6, 8, DL_FLOAT, 64},
    [PDCKPT_DTYPE_COMPLEX64] = {"complex64", "c8", '<', "C64", 23, 8, DL_COMPLEX, 64},
    [PDCKPT_DTYPE_COMPLEX128] = {"complex128", "c16", '<', NULL, 24, 16, DL_COMPLEX, 128},
    [PDCKPT_DTYPE_FLOAT8_E4M3FN] = {"float8_e4m3fn", NULL, '|', "F8_E4M3", 32, 1, DL_F8_E4M3FN, 8},
    [PDCKPT_DTYPE_FLOAT8_E5M2] = {"float8_e5m2", NULL, '|', "F8_E5M2", 33, 1, DL_F8_E5M2, 8},
    [PDCKPT_DTYPE_FLOAT8_E4M3FNUZ] = {"float8_e4m3fnuz", NULL, '|', "F8_E4M3FNUZ", -1, 1,
                                      DL_F8_E4M3FNUZ, 8},
    [PDCKPT_DTYPE_FLOAT8_E5M2FNUZ] = {"float8_e5m2fnuz", NULL, '|', "F8_E5M2FNUZ", -1, 1,
                                      DL_F8_E5M2FNUZ, 8},
    [PDCKPT_DTYPE_FLOAT8_E8M0FNU] = {"float8_e8m0fnu", NULL, '|', "F8_E8M0", -1, 1, DL_F8_E8M0FNU,
                                     8},
};

/* safetensors' Dtype enum in declaration order: its writer lays tensors out by this rank,
 * highest first, then by name (safetensors 0.8 `prepare`), which pdckpt reproduces byte for
 * byte.  F4 / F6_E2M3 / F6_E3M2 pack several elements per byte; pdckpt's tensors are whole bytes
 * per element, so those are refused by name (pdk_dtype_safetensors_subbyte). */
static const char *const safetensors_order[] = {
    "BOOL",    "F4",          "F6_E2M3",     "F6_E3M2", "U8",  "I8",  "F8_E5M2", "F8_E4M3",
    "F8_E8M0", "F8_E4M3FNUZ", "F8_E5M2FNUZ", "I16",     "U16", "F16", "BF16",    "I32",
    "U32",     "F32",         "C64",         "F64",     "I64", "U64",
};

const pdk_dtype_info *pdk_dtype_info_of(pdckpt_dtype dtype) {
    if ((unsigned)dtype >= PDCKPT_DTYPE_COUNT || dtype == PDCKPT_DTYPE_INVALID) return NULL;
    return &dtype_table[dtype];
}

size_t pdckpt_dtype_size(pdckpt_dtype dtype) {
    const pdk_dtype_info *info = pdk_dtype_info_of(dtype);
    return info ? info->size : 0;
}

const char *pdckpt_dtype_name(pdckpt_dtype dtype) {
    const pdk_dtype_info *info = pdk_dtype_info_of(dtype);
    return info ? info->name : "invalid";
}

pdckpt_dtype pdckpt_dtype_from_name(const char *name) {
    if (!name) return PDCKPT_DTYPE_INVALID;
    for (int d = 1; d < PDCKPT_DTYPE_COUNT; d++)
        if (strcmp(dtype_table[d].name, name) == 0) return (pdckpt_dtype)d;
    return PDCKPT_DTYPE_INVALID;
}

int pdckpt_dtype_to_paddle(pdckpt_dtype dtype) {
    const pdk_dtype_info *info = pdk_dtype_info_of(dtype);
    return info ? info->paddle : -1;
}

pdckpt_dtype pdckpt_dtype_from_paddle(int code) {
    if (code < 0) return PDCKPT_DTYPE_INVALID;
    for (int d = 1; d < PDCKPT_DTYPE_COUNT; d++)
        if (dtype_table[d].paddle == code) return (pdckpt_dtype)d;
    return PDCKPT_DTYPE_INVALID;
}

pdckpt_dtype pdk_dtype_from_safetensors(const char *name, size_t len) {
    for (int d = 1; d < PDCKPT_DTYPE_COUNT; d++) {
        const char *st = dtype_table[d].safetensors;
        if (st && len && st[0] == name[0] && strlen(st) == len && memcmp(st, name, len) == 0)
            return (pdckpt_dtype)d;
    }
    return PDCKPT_DTYPE_INVALID;
}

pdckpt_dtype pdk_dtype_from_numpy_code(const char *code, size_t len) {
    for (int d = 1; d < PDCKPT_DTYPE_COUNT; d++) {
        const char *np = dtype_table[d].numpy_code;
        if (np && len && np[0] == code[0] && strlen(np) == len && memcmp(np, code, len) == 0)
            return (pdckpt_dtype)d;
    }
    return PDCKPT_DTYPE_INVALID;
}

int pdk_dtype_safetensors_rank(pdckpt_dtype dtype) {
    const pdk_dtype_info *info = pdk_dtype_info_of(dtype);
    for (size_t i = 0;
         info && info->safetensors && i < sizeof safetensors_order / sizeof *safetensors_order; i++)
        if (strcmp(safetensors_order[i], info->safetensors) == 0) return (int)i;
    return -1;
}

int pdk_dtype_safetensors_subbyte(const char *name, size_t len) {
    static const struct {
        const char *name;
        int         bits;
    } packed[] = {{"F4", 4}, {"F6_E2M3", 6}, {"F6_E3M2", 6}};
    for (size_t i = 0; i < sizeof packed / sizeof *packed; i++)
        if (strlen(packed[i].name) == len && memcmp(packed[i].name, name, len) == 0)
            return packed[i].bits;
    return 0;
}
