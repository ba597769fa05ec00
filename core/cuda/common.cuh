/* cuda/common.cuh -- what every CUDA file of the backend shares: the
 * stream, the library handles, error reporting that names the operation,
 * launch sizes, the gate of a CUDA kernel's arguments, strided views.
 *
 * One stream per device carries every kernel, copy, cuBLAS and cuDNN call,
 * so work is ordered without events and nothing waits for the GPU until the
 * host reads a value back (crl_tensor_get, a device->host copy). */
#ifndef CRLAB_CUDA_COMMON_CUH
#define CRLAB_CUDA_COMMON_CUH

#include <cublas_v2.h>
#include <cuda_runtime.h>
#include <cudnn.h>
#include <stdint.h>

#include "../backend.h"
#include "../internal.h"
#include "gpu.h"

extern "C" {

extern const crl_cuda_runtime crl_gpu_runtime;

/* The current device's stream and library handles (made on first use, tied
 * to the stream; NULL with the message set when making one failed). */
cudaStream_t crl_gpu_stream(void);
cublasHandle_t crl_gpu_cublas(const char *func);
cudnnHandle_t crl_gpu_cudnn(const char *func);

/* Errors: "func: what failed: message (name)"; the sticky launch error of
 * the runtime is cleared where it can be. */
int crl_gpu_fail(cudaError_t err, const char *func, const char *what);
int crl_gpu_cudnn_fail(cudnnStatus_t st, const char *func, const char *what);
int crl_gpu_cublas_fail(cublasStatus_t st, const char *func, const char *what);
/* After a kernel launch: reports a bad launch (configuration, no kernel
 * image for this GPU) naming the operation and the kernel. Asynchronous
 * faults surface at the next synchronising call, as in every CUDA program. */
int crl_gpu_launched(const char *func, const char *kernel);

/* The gate of a CUDA kernel: t is non-NULL and passes crl_require_device
 * for CRL_CUDA (the CPU kernels' gate and message). */
int crl_gpu_require(const crl_tensor *t, const char *func, const char *name);

/* Device scratch memory for one call (grow-only, per device, stream-ordered:
 * valid until the next call of crl_gpu_scratch on the same stream). */
int crl_gpu_scratch(void **ptr, int64_t nbytes, const char *func);

/* tensor.cu: the runtime's fill and device-to-device copy. */
int crl_gpu_fill(crl_tensor *t, double value);
int crl_gpu_copy(crl_tensor *dst, const crl_tensor *src);

/* Fails, naming func and `what` (e.g. "reading the loss value back to the
 * host"), when the current device's stream is being captured into a CUDA
 * graph, where the host cannot wait for the GPU; CRL_OK otherwise. Every
 * read back calls it before queueing anything. */
int crl_gpu_no_capture(const char *func, const char *what);

/* Switch values (crl_cuda_set_option), read by the kernels. */
int crl_gpu_option(int option);

} /* extern "C" */

#define CRL_GPU_TRY(call, func)                                            \
    do {                                                                   \
        cudaError_t e_ = (call);                                           \
        if (e_ != cudaSuccess) return crl_gpu_fail(e_, (func), #call);     \
    } while (0)
#define CRL_CUDNN_TRY(call, func)                                          \
    do {                                                                   \
        cudnnStatus_t s_ = (call);                                         \
        if (s_ != CUDNN_STATUS_SUCCESS) return crl_gpu_cudnn_fail(s_, (func), #call); \
    } while (0)
#define CRL_CUBLAS_TRY(call, func)                                         \
    do {                                                                   \
        cublasStatus_t s_ = (call);                                        \
        if (s_ != CUBLAS_STATUS_SUCCESS) return crl_gpu_cublas_fail(s_, (func), #call); \
    } while (0)

enum { CRL_GPU_THREADS = 256 };

/* Blocks for n elements at `threads` per block, each thread striding over
 * the rest (grid-stride loops), capped so huge tensors stay launchable. */
static inline unsigned crl_gpu_blocks(int64_t n, int threads = CRL_GPU_THREADS)
{
    int64_t b = (n + threads - 1) / threads;
    if (b < 1) b = 1;
    if (b > 65535 * 8) b = 65535 * 8;
    return (unsigned)b;
}

/* A strided view passed to kernels by value: element i in row-major order
 * -> offset in elements from the storage's base. */
struct crl_gpu_view {
    int ndim;
    int64_t offset;
    int64_t size[CRL_MAX_DIM];
    int64_t stride[CRL_MAX_DIM];
    int contiguous;
};

static inline crl_gpu_view crl_gpu_view_of(const crl_tensor *t)
{
    crl_gpu_view v;
    v.ndim = t->ndim;
    v.offset = t->offset;
    for (int d = 0; d < CRL_MAX_DIM; d++) {
        v.size[d] = d < t->ndim ? t->sizes[d] : 1;
        v.stride[d] = d < t->ndim ? t->strides[d] : 0;
    }
    v.contiguous = crl_tensor_is_contiguous(t);
    return v;
}

__device__ __forceinline__ int64_t crl_gpu_offset(const crl_gpu_view &v, int64_t i)
{
    if (v.contiguous) return v.offset + i;
    int64_t off = v.offset;
    for (int d = v.ndim - 1; d >= 0; d--) {
        int64_t s = v.size[d];
        off += (i % s) * v.stride[d];
        i /= s;
    }
    return off;
}

/* The storage base of a tensor (the view's offset is added by the kernel). */
template <typename T> static inline T *crl_gpu_base(const crl_tensor *t)
{
    return t->storage ? (T *)t->storage->data : (T *)0;
}

#endif
