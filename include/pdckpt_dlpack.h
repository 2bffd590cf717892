/* SPDX-License-Identifier: Apache-2.0 */
/*
 * pdckpt_dlpack.h — hand a pdckpt tensor to NumPy, Paddle, PyTorch, CuPy, JAX ... without a copy,
 * through DLPack 1.x (DLManagedTensorVersioned).
 *
 * Debian 12 ships dlpack 0.6, which predates the versioned struct, so this header declares the
 * DLPack 1.x ABI itself (written from the published ABI of DLPack 1.1, checked below with static
 * size and offset assertions).  If <dlpack/dlpack.h> 1.x was included first, its declarations are
 * used instead; an older one is refused, because its DLManagedTensor is not what pdckpt returns.
 * Including the real header after this one is harmless: its include guard is already defined.
 */
#ifndef PDCKPT_DLPACK_H
#define PDCKPT_DLPACK_H

#include "pdckpt.h"

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(DLPACK_DLPACK_H_) || defined(DLPACK_MAJOR_VERSION)
#if DLPACK_MAJOR_VERSION < 1
#error "pdckpt_dlpack.h needs DLPack >= 1.0; an older dlpack.h was included first"
#endif
#else
#define DLPACK_DLPACK_H_
#define DLPACK_MAJOR_VERSION 1
#define DLPACK_MINOR_VERSION 1

typedef struct {
    uint32_t major;
    uint32_t minor;
} DLPackVersion;

typedef enum {
    kDLCPU = 1,
    kDLCUDA = 2,
    kDLCUDAHost = 3,
    kDLOpenCL = 4,
    kDLVulkan = 7,
    kDLMetal = 8,
    kDLVPI = 9,
    kDLROCM = 10,
    kDLROCMHost = 11,
    kDLExtDev = 12,
    kDLCUDAManaged = 13,
    kDLOneAPI = 14,
    kDLWebGPU = 15,
    kDLHexagon = 16,
    kDLMAIA = 17,
} DLDeviceType;

typedef struct {
    DLDeviceType device_type;
    int32_t      device_id;
} DLDevice;

/* DLDataTypeCode (DLPack 1.1): codes 7-14 are the float8 family. */
typedef enum {
    kDLInt = 0,
    kDLUInt = 1,
    kDLFloat = 2,
    kDLOpaqueHandle = 3,
    kDLBfloat = 4,
    kDLComplex = 5,
    kDLBool = 6,
    kDLFloat8_e3m4 = 7,
    kDLFloat8_e4m3 = 8,
    kDLFloat8_e4m3b11fnuz = 9,
    kDLFloat8_e4m3fn = 10,
    kDLFloat8_e4m3fnuz = 11,
    kDLFloat8_e5m2 = 12,
    kDLFloat8_e5m2fnuz = 13,
    kDLFloat8_e8m0fnu = 14,
} DLDataTypeCode;

typedef struct {
    uint8_t  code; /* a DLDataTypeCode */
    uint8_t  bits;
    uint16_t lanes;
} DLDataType;

typedef struct {
    void      *data;
    DLDevice   device;
    int32_t    ndim;
    DLDataType dtype;
    int64_t   *shape;
    int64_t   *strides; /* in elements; never NULL when ndim > 0 (required since DLPack 1.2) */
    uint64_t   byte_offset;
} DLTensor;

/* The legacy (pre-1.0) managed tensor, still asked for by consumers that pass no max_version. */
typedef struct DLManagedTensor {
    DLTensor dl_tensor;
    void    *manager_ctx;
    void (*deleter)(struct DLManagedTensor *self);
} DLManagedTensor;

#define DLPACK_FLAG_BITMASK_READ_ONLY              (1UL << 0UL)
#define DLPACK_FLAG_BITMASK_IS_COPIED              (1UL << 1UL)
#define DLPACK_FLAG_BITMASK_IS_SUBBYTE_TYPE_PADDED (1UL << 2UL)

typedef struct DLManagedTensorVersioned {
    DLPackVersion version;
    void         *manager_ctx;
    void (*deleter)(struct DLManagedTensorVersioned *self);
    uint64_t flags;
    DLTensor dl_tensor;
} DLManagedTensorVersioned;
#endif /* DLPACK_DLPACK_H_ */

/* The ABI is fixed by the spec; these catch a wrong declaration on the common 64-bit targets. */
#if UINTPTR_MAX == UINT64_MAX
#ifdef __cplusplus
#define PDCKPT_DL_ASSERT static_assert
#else
#define PDCKPT_DL_ASSERT _Static_assert
#endif
PDCKPT_DL_ASSERT(sizeof(DLPackVersion) == 8, "DLPackVersion is two uint32");
PDCKPT_DL_ASSERT(sizeof(DLDevice) == 8, "DLDevice is two int32");
PDCKPT_DL_ASSERT(sizeof(DLDataType) == 4, "DLDataType is u8 code, u8 bits, u16 lanes");
PDCKPT_DL_ASSERT(sizeof(DLTensor) == 48, "DLTensor layout");
PDCKPT_DL_ASSERT(offsetof(DLTensor, ndim) == 16 && offsetof(DLTensor, dtype) == 20 &&
                     offsetof(DLTensor, shape) == 24 && offsetof(DLTensor, strides) == 32 &&
                     offsetof(DLTensor, byte_offset) == 40,
                 "DLTensor member offsets");
PDCKPT_DL_ASSERT(sizeof(DLManagedTensor) == 64 && offsetof(DLManagedTensor, deleter) == 56,
                 "DLManagedTensor layout");
PDCKPT_DL_ASSERT(offsetof(DLManagedTensorVersioned, manager_ctx) == 8 &&
                     offsetof(DLManagedTensorVersioned, deleter) == 16 &&
                     offsetof(DLManagedTensorVersioned, flags) == 24 &&
                     offsetof(DLManagedTensorVersioned, dl_tensor) == 32 &&
                     sizeof(DLManagedTensorVersioned) == 80,
                 "DLManagedTensorVersioned layout");
#undef PDCKPT_DL_ASSERT
#endif

/* Exports a TENSOR value as a new DLPack 1.x managed tensor on the CPU, without copying: the data
 * pointer is the tensor's own (it may be unaligned; byte_offset is 0), shape and C-order strides
 * are always filled in, and version is {1, 1}.  The export holds a reference to the tensor's
 * pdckpt_buffer, so it stays valid after the value (and the tree it came from) is freed; call
 * (*out)->deleter(*out) exactly once when done.  flags has READ_ONLY when the data is read-only
 * (a file mapping, loaded data, or caller memory).  A tensor whose data is borrowed from the
 * caller (pdckpt_tensor_new_borrowed, pdckpt_load_memory) has no buffer to hold, so its bytes are
 * copied into a new one and flags has IS_COPIED instead (the copy is writable).
 * The deleter may run on any thread.  Errors: ARGUMENT (not a tensor, NULL out), NOMEM. */
PDCKPT_API pdckpt_status pdckpt_value_to_dlpack(const pdckpt_value        *value,
                                                DLManagedTensorVersioned **out, pdckpt_error *err);

/* Same, but always exports a private, writable copy of the data (flags = IS_COPIED), as DLPack's
 * `copy=True` asks for. */
PDCKPT_API pdckpt_status pdckpt_value_to_dlpack_copy(const pdckpt_value        *value,
                                                     DLManagedTensorVersioned **out,
                                                     pdckpt_error              *err);

#ifdef __cplusplus
}
#endif
#endif /* PDCKPT_DLPACK_H */
