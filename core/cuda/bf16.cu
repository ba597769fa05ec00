/* cuda/bf16.cu -- the conversions of bf16 mixed precision (see bf16.cuh). */
#include "bf16.cuh"

#include "../math/bf16.h"
#include "ops.cuh"

namespace {

__global__ void to_bf16_kernel(uint16_t *dst, const float *src, int64_t n)
{
    CRL_GPU_LOOP(i, n) dst[i] = crl_bf16_from_float(src[i]);
}

__global__ void from_bf16_kernel(float *dst, const uint16_t *src, int64_t n)
{
    CRL_GPU_LOOP(i, n) dst[i] = crl_bf16_to_float(src[i]);
}

__global__ void add_bf16_kernel(float *dst, const uint16_t *src, int64_t n)
{
    CRL_GPU_LOOP(i, n) dst[i] += crl_bf16_to_float(src[i]);
}

} // namespace

int crl_gpu_bf16_buffer(crl_tensor **holder, uint16_t **ptr, int64_t n)
{
    *ptr = NULL;
    int64_t words = n / 2 + 1; /* two bf16 per float32 element; never empty */
    *holder = crl_tensor_new(CRL_FLOAT32, CRL_CUDA, 1, &words);
    if (*holder == NULL) return CRL_ERR_DEVICE; /* message set by the allocation */
    *ptr = (uint16_t *)crl_tensor_data(*holder);
    return CRL_OK;
}

int crl_gpu_bf16_copy(crl_tensor **holder, uint16_t **ptr, const float *src, int64_t n, const char *func)
{
    int rc = crl_gpu_bf16_buffer(holder, ptr, n);
    if (rc || n == 0) return rc;
    CRL_GPU_STREAM(s);
    to_bf16_kernel<<<crl_gpu_blocks(n), CRL_GPU_THREADS, 0, s>>>(*ptr, src, n);
    return crl_gpu_launched(func, "to_bf16_kernel");
}

int crl_gpu_bf16_to_float(float *dst, const uint16_t *src, int64_t n, int accumulate, const char *func)
{
    if (n == 0) return CRL_OK;
    CRL_GPU_STREAM(s);
    if (accumulate) {
        add_bf16_kernel<<<crl_gpu_blocks(n), CRL_GPU_THREADS, 0, s>>>(dst, src, n);
        return crl_gpu_launched(func, "add_bf16_kernel");
    }
    from_bf16_kernel<<<crl_gpu_blocks(n), CRL_GPU_THREADS, 0, s>>>(dst, src, n);
    return crl_gpu_launched(func, "from_bf16_kernel");
}
