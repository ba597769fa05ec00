/* cuda/ops.cuh -- helpers the tensor-operation kernels of the CUDA backend
 * share (elementwise.cu, reduce.cu, blas.cu); not seen outside the plugin. */
#ifndef CRLAB_CUDA_OPS_CUH
#define CRLAB_CUDA_OPS_CUH

#include "common.cuh"

/* Grid-stride loop over [0, n) with 64-bit indices. */
#define CRL_GPU_LOOP(i, n)                                                         \
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < (n);     \
         i += (int64_t)gridDim.x * blockDim.x)

/* The stream, or CRL_ERR_DEVICE with the message set: never the legacy
 * default stream that crl_gpu_stream's 0 would mean. */
#define CRL_GPU_STREAM(s)                                                          \
    cudaStream_t s = crl_gpu_stream();                                             \
    if (s == 0) return CRL_ERR_DEVICE

/* Fails naming func when a required tensor argument is NULL. */
static inline int crl_gpu_nonnull(const void *p, const char *func, const char *name)
{
    return p ? CRL_OK : crl_fail(CRL_ERR_ARG, func, "argument '%s' is NULL", name);
}

/* dst = src element by element in row-major order (float32 CUDA tensors of
 * one element count, any strides), queued on the stream. */
int crl_gpu_copy_view(crl_tensor *dst, const crl_tensor *src, const char *func);

/* A new contiguous float32 CUDA copy of src (free it with crl_tensor_free:
 * the allocator is stream-ordered, so that is safe before the copy has
 * run), or NULL with the message set. */
crl_tensor *crl_gpu_contiguous_copy(const crl_tensor *src, const char *func);

#endif
