/* internal.h -- helpers shared by the core's own files, not part of the API.
 *
 * crl_fail() records "function: message" in the thread-local error slot and
 * returns the code, so a check reads
 *     if (dim < 0) return crl_fail(CRL_ERR_ARG, __func__, "dim %d ...", dim);
 * CHECK_TENSOR names the argument when a tensor pointer is NULL. */
#ifndef CRLAB_INTERNAL_H
#define CRLAB_INTERNAL_H

#include "crlab.h"
#include "math/convert.h"
#include "math/elementwise.h"

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

/* Element access by dtype; the conversion rule is core/math/convert.h's. */
static inline double crl_read_elem(const void *base, int dtype, int64_t off)
{
    return crl_load_elem(base, dtype, off);
}

static inline void crl_write_elem(void *base, int dtype, int64_t off, double v)
{
    crl_store_elem(base, dtype, off, v);
}

/* Makes out a contiguous tensor of this dtype, device and shape, dropping
 * its storage when the dtype or device differ (the callee-resizes rule). */
int crl_prepare(crl_tensor *out, int dtype, int device, int ndim, const int64_t *size);

/* The elementwise operations' shared rules (cpu/elementwise.c), used by
 * the CPU and CUDA kernels alike: the PyTorch broadcast of a's and b's
 * shapes (fails naming both), the dtype rule of crl_tensor_binary, and the
 * sizing of out (kept, strides and all, when it already has the result's
 * shape and is float32 on a's device, so in-place updates of views work). */
int crl_broadcast_shape(int *ndim, int64_t *size, const crl_tensor *a, const crl_tensor *b, const char *func);
int crl_binary_dtypes(const crl_tensor *a, const crl_tensor *b, int op, const char *func);
int crl_prepare_elementwise(crl_tensor *out, int ndim, const int64_t *size, const crl_tensor *a,
                            const crl_tensor *b);

/* GEMM's shared rules (cpu/linalg.c): crl_gemm_shapes checks a and b (any
 * device; the caller has checked the device), gives op(a) m x k times
 * op(b) k x n, and sizes out on `device` (beta 0) or checks it (beta != 0).
 * crl_blas_layout says how a 2-D view goes to row-major BLAS: 0 (row-major,
 * *ld = rows' stride), 1 (the transpose of a row-major matrix, *ld =
 * columns' stride) or -1 (neither: copy it first). */
int crl_gemm_shapes(int64_t *m, int64_t *n, int64_t *k, crl_tensor *out, const crl_tensor *a,
                    const crl_tensor *b, int transpose_a, int transpose_b, float beta, int device,
                    const char *func);
int crl_blas_layout(const crl_tensor *t, int *ld);

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
/* The same gate for any device's kernel: a plain tensor on `device`. */
int crl_require_device(const crl_tensor *t, int device, const char *func, const char *name);
/* Checks shared by the CPU and CUDA kernels, with one set of messages
 * (cpu/loss.c, cpu/optim.c). Call them after the NULL checks. The logits (N, K) float32 and labels (N)
 * int32 of the losses and the batch statistics, on `device`; the loss's
 * spec against those logits (kind, reduction, parameters, enough classes;
 * not the label values, which the kernels check); a parameter slab of n
 * contiguous float32 elements on `device`. */
int crl_check_logits_labels(const crl_tensor *logits, const crl_tensor *labels, int device, const char *func);
int crl_check_loss_spec(const crl_tensor *logits, const crl_loss_spec *spec, const char *func);
/* grad_output of a loss's backward: float32 with one element, or N for
 * reduction 'none', on the logits' device. */
int crl_check_loss_grad_output(const crl_tensor *grad_output, const crl_tensor *logits, const crl_loss_spec *spec,
                               const char *func);
int crl_check_slab(const crl_tensor *t, int64_t n, int device, const char *func, const char *name);
/* The batch statistics (cpu/metrics.c): nbins in range; a stats tensor made
 * by crl_batch_stats_reset (for nbins bins; nbins < 0: any); every argument
 * of crl_batch_stats but the label values. */
int crl_check_stats_nbins(int nbins, const char *func);
int crl_check_stats(const crl_tensor *stats, int nbins, int device, const char *func);
int crl_check_batch_stats(const crl_tensor *stats, const crl_tensor *logits, const crl_tensor *labels,
                          const crl_tensor *loss, int nbins, int device, const char *func);
/* Every argument of an optimiser step (the slabs, then the numbers). */
int crl_check_sgd_step(const crl_tensor *params, const crl_tensor *momentum_buf, const crl_tensor *grads,
                       const crl_tensor *decay, float lr, float momentum, float dampening, int nesterov, int device,
                       const char *func);
int crl_check_adam_step(const crl_tensor *params, const crl_tensor *m, const crl_tensor *v, const crl_tensor *grads,
                        const crl_tensor *decay, float lr, float beta1, float beta2, float eps, int64_t step,
                        int device, const char *func);
/* A reduction's view of src along (normalised) dim: outer x n x inner, and
 * the result's shape (the reduced dimension dropped, or kept as 1) -- the
 * one statement for both devices' reduce kernels. */
static inline void crl_reduce_shape(int64_t *outer, int64_t *n, int64_t *inner, int *out_ndim, int64_t *out_size,
                                    const crl_tensor *src, int dim, int keepdim)
{
    *outer = 1;
    *inner = 1;
    *n = src->sizes[dim];
    for (int d = 0; d < dim; d++) *outer *= src->sizes[d];
    for (int d = dim + 1; d < src->ndim; d++) *inner *= src->sizes[d];
    *out_ndim = 0;
    for (int d = 0; d < src->ndim; d++) {
        if (d != dim) out_size[(*out_ndim)++] = src->sizes[d];
        else if (keepdim) out_size[(*out_ndim)++] = 1;
    }
}

/* The linear layer's checks (cpu/nn.c), for the kernels of both devices. */
int crl_linear_forward_check(const crl_tensor *in, const crl_tensor *weight, const crl_tensor *bias, int device,
                             const char *func);
int crl_linear_backward_check(const crl_tensor *grad_weight, const crl_tensor *grad_bias, const crl_tensor *grad_out,
                              const crl_tensor *in, const crl_tensor *weight, int device, const char *func);
/* For functions that read host memory by nature (image files, transforms). */
int crl_require_host(const crl_tensor *t, const char *func, const char *name);

/* The checks of the layers between convolutions (cpu/nn.c), shared by the
 * CPU and CUDA kernels so both give the same messages: each validates the
 * inputs of one layer on `device` (the CPU also takes blocked tensors,
 * CUDA plain ones) and returns the output sizes it works out. func is the
 * public name. crl_layer_f32: a contiguous float32 tensor in `layout`. */
int crl_layer_f32(const crl_tensor *t, int layout, int device, const char *func, const char *name);
int crl_relu_backward_check(const crl_tensor *grad_out, const crl_tensor *out, int device, const char *func);
int crl_pool2d_check(int64_t *oh, int64_t *ow, const crl_tensor *in, const crl_pool2d_params *p, int device,
                     const char *func);
int crl_maxpool2d_backward_check(const crl_tensor *grad_out, const crl_tensor *indices, const crl_tensor *in,
                                 int device, const char *func);
int crl_avgpool2d_backward_check(int64_t *oh, int64_t *ow, const crl_tensor *grad_out, const crl_tensor *in,
                                 const crl_pool2d_params *p, int device, const char *func);
/* grad_out NULL: the forward pass's checks. */
int crl_global_avgpool2d_check(const crl_tensor *grad_out, const crl_tensor *in, int device, const char *func);
int crl_shortcut_pad_check(int64_t *oh, int64_t *ow, const crl_tensor *grad_out, const crl_tensor *in,
                           int out_channels, int stride, int device, const char *func);

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
/* On the device: fill a CUDA tensor; copy between two CUDA tensors of any
 * strides and dtypes. */
int crl_cuda_fill(crl_tensor *t, double value);
int crl_cuda_copy(crl_tensor *dst, const crl_tensor *src);

/* A CPU tensor in page-locked memory when a CUDA device is present, in
 * ordinary memory otherwise (the storage remembers which, for freeing). */
crl_tensor *crl_tensor_new_pinned(int dtype, int ndim, const int64_t *size);

#ifdef __cplusplus
}
#endif

#endif
