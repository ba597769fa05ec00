/* internal.h -- helpers shared by the core's own files, not part of the API.
 *
 * crl_fail() records "function: message" in the thread-local error slot and
 * returns the code, so a check reads
 *     if (dim < 0) return crl_fail(CRL_ERR_ARG, __func__, "dim %d ...", dim);
 * CHECK_TENSOR names the argument when a tensor pointer is NULL. */
#ifndef CRLAB_INTERNAL_H
#define CRLAB_INTERNAL_H

#include "crlab.h"

#ifdef __cplusplus
extern "C" {
#endif

#if defined(__GNUC__)
#define CRL_PRINTF(a, b) __attribute__((format(printf, a, b)))
#else
#define CRL_PRINTF(a, b)
#endif

int crl_fail(int code, const char *func, const char *fmt, ...) CRL_PRINTF(3, 4);

#define CHECK_TENSOR(t, name)                                                  \
    do {                                                                       \
        if ((t) == NULL)                                                       \
            return crl_fail(CRL_ERR_ARG, __func__, "argument '%s' is NULL", name); \
    } while (0)

/* Shape text for messages, e.g. SHAPE(t) -> "(2, 3)". Uses one of a few
 * rotating thread-local buffers so one message can name several shapes. */
const char *crl_shape(const crl_tensor *t);

/* Storage allocation on either device (CPU: 64-byte aligned, zeroed). */
crl_storage *crl_storage_new(int64_t nbytes, int device);
void crl_storage_retain(crl_storage *s);
void crl_storage_release(crl_storage *s);

/* Element i of a strided view in row-major order -> element offset. */
int64_t crl_linear_to_offset(const crl_tensor *t, int64_t i);

static inline double crl_read_elem(const void *base, int dtype, int64_t off)
{
    switch (dtype) {
    case CRL_FLOAT32: return ((const float *)base)[off];
    case CRL_INT32: return ((const int32_t *)base)[off];
    default: return ((const uint8_t *)base)[off];
    }
}

/* Float to integer conversion truncates toward zero like C and PyTorch,
 * but saturates instead of invoking undefined behaviour; NaN becomes 0. */
static inline void crl_write_elem(void *base, int dtype, int64_t off, double v)
{
    switch (dtype) {
    case CRL_FLOAT32: ((float *)base)[off] = (float)v; break;
    case CRL_INT32:
        if (!(v == v)) v = 0;
        if (v > 2147483647.0) v = 2147483647.0;
        if (v < -2147483648.0) v = -2147483648.0;
        ((int32_t *)base)[off] = (int32_t)v;
        break;
    default:
        if (!(v == v)) v = 0;
        if (v > 255.0) v = 255.0;
        if (v < 0.0) v = 0.0;
        ((uint8_t *)base)[off] = (uint8_t)v;
        break;
    }
}

/* Makes out a contiguous tensor of this dtype, device and shape, dropping
 * its storage when the dtype or device differ (the callee-resizes rule). */
int crl_prepare(crl_tensor *out, int dtype, int device, int ndim, const int64_t *size);

/* Layouts (see CRL_LAYOUT_* in crlab_api.h). */
static inline int64_t crl_layout_blocks(int64_t c, int64_t b) { return (c + b - 1) / b; }
/* Element (n, c, q = h * W + w) of a blocked (N, C, H, W) tensor with block
 * b and hw = H * W: the one statement of the layout, in elements. */
static inline int64_t crl_blocked_offset(int64_t n, int64_t c, int64_t q, int64_t C, int64_t hw, int64_t b)
{
    return ((n * crl_layout_blocks(C, b) + c / b) * hw + q) * b + c % b;
}
/* Elements the storage spans from the tensor's offset (padding included). */
int64_t crl_tensor_span(const crl_tensor *t);
/* crl_prepare for a layout: blocked needs float32 (N, C, H, W). */
int crl_prepare_layout(crl_tensor *out, int dtype, int device, int ndim, const int64_t *size, int layout);
/* Fails naming the argument when t's layout is not one of CRL_LAYOUT_*
 * (or blocked on anything but a float32 (N, C, H, W) tensor). */
int crl_layout_check(const crl_tensor *t, const char *func, const char *name);
/* Fails naming the argument when t is not plain (the gate of plain-only kernels). */
int crl_require_plain(const crl_tensor *t, const char *func, const char *name);
/* oneDNN's vector block on this CPU: 16 with AVX-512, else 8. */
int crl_dnnl_block_size(void);

/* The op layer (ops.c): the device of an operation's arguments (NULLs
 * skipped; all must agree, or the message names both), and the one error
 * for a device that has no kernel for it. */
int crl_op_device(int *device, const char *func, int n, const crl_tensor *const *args, const char *const *names);
int crl_no_kernel(const char *func, int device);
/* The CPU kernels' own gate, behind the op layer: a plain CPU tensor. */
int crl_require_cpu(const crl_tensor *t, const char *func, const char *name);
/* The same gate for a kernel of `device` (CRL_CPU: crl_require_cpu). */
int crl_require_on(const crl_tensor *t, int device, const char *func, const char *name);
/* For functions that read host memory by nature (image files, transforms). */
int crl_require_host(const crl_tensor *t, const char *func, const char *name);

/* Requirements checked at the top of most kernels. */
int crl_require_dtype(const crl_tensor *t, int dtype, const char *func, const char *name);
int crl_normalize_dim(int *dim, int ndim, const char *func, const char *name);

/* Philox4x32-10 block: four 32-bit words from (key, counter). The full
 * form takes all four counter words (known-answer tests use it). */
void crl_philox(uint32_t out[4], uint64_t key, uint64_t counter);
void crl_philox4x32(uint32_t out[4], const uint32_t ctr[4], const uint32_t key[2]);

/* The CUDA side, forwarded by core/cuda_loader.c to the plugin
 * libcrlab_cuda.so (core/cuda/), loaded on first use. Each returns a status
 * and sets the error message itself. */
int crl_cuda_malloc(void **ptr, int64_t nbytes);
void crl_cuda_free(void *ptr);
int crl_cuda_memset_zero(void *ptr, int64_t nbytes);
/* kind: 0 host->device, 1 device->host, 2 device->device */
int crl_cuda_memcpy(void *dst, const void *src, int64_t nbytes, int kind);
/* Page-locked host memory (fast, asynchronous copies to the GPU); fails
 * without a device, and the caller then uses ordinary memory. */
int crl_cuda_host_alloc(void **ptr, int64_t nbytes);
void crl_cuda_host_free(void *ptr);
/* Waits until every copy from this page-locked host block to the device
 * has finished, so the block can be written again (the loader calls it
 * before refilling a batch slot). A no-op without CUDA. */
int crl_cuda_host_fence(const void *host_ptr);

/* A CPU tensor in page-locked memory when a CUDA device is present, in
 * ordinary memory otherwise (the storage remembers which, for freeing). */
crl_tensor *crl_tensor_new_pinned(int dtype, int ndim, const int64_t *size);

#ifdef __cplusplus
}
#endif

#endif
