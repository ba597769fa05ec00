/* cuda/optim.cu -- the optimiser steps on the GPU: one fused kernel over
 * the parameter slab each, applying math/optim.h's per-element rule (the
 * CPU's) to every element; the checks are the CPU's (crl_check_*_step).
 * And the squared norm of gradient clipping. */
#include "common.cuh"
#include "../math/optim.h"

namespace {

__global__ void sgd_kernel(float *p, float *buf, const float *g, const float *wd, int64_t n, float lr, float momentum,
                           float dampening, int nesterov)
{
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x)
        crl_sgd_update(p + i, buf ? buf + i : NULL, g[i], wd ? wd + i : NULL, lr, momentum, dampening, nesterov);
}

__global__ void adam_kernel(float *p, float *m, float *v, const float *g, const float *wd, int64_t n, float lr,
                            float beta1, float beta2, float eps, crl_adam_consts c, int decoupled)
{
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x)
        crl_adam_update(p + i, m + i, v + i, g[i], wd ? wd + i : NULL, lr, beta1, beta2, eps, c, decoupled);
}

} // namespace

extern "C" int crl_gpu_sgd_step(crl_tensor *params, crl_tensor *momentum_buf, const crl_tensor *grads,
                                const crl_tensor *decay, float lr, float momentum, float dampening, int nesterov)
{
    static const char *F = "crl_sgd_step";
    int rc = crl_check_sgd_step(params, momentum_buf, grads, decay, lr, momentum, dampening, nesterov, CRL_CUDA, F);
    if (rc) return rc;
    int64_t n = crl_tensor_numel(params);
    if (n == 0) return CRL_OK;
    cudaStream_t s = crl_gpu_stream(); /* 0 (message set) would be the legacy default stream */
    if (s == 0) return CRL_ERR_DEVICE;
    sgd_kernel<<<crl_gpu_blocks(n), CRL_GPU_THREADS, 0, s>>>(
        (float *)crl_tensor_data(params), momentum != 0 ? (float *)crl_tensor_data(momentum_buf) : NULL,
        (const float *)crl_tensor_data(grads), decay ? (const float *)crl_tensor_data(decay) : NULL, n, lr, momentum,
        dampening, nesterov);
    return crl_gpu_launched(F, "sgd_kernel");
}

extern "C" int crl_gpu_adam_step(crl_tensor *params, crl_tensor *m, crl_tensor *v, const crl_tensor *grads,
                                 const crl_tensor *decay, float lr, float beta1, float beta2, float eps, int64_t step,
                                 int decoupled)
{
    static const char *F = "crl_adam_step";
    int rc = crl_check_adam_step(params, m, v, grads, decay, lr, beta1, beta2, eps, step, CRL_CUDA, F);
    if (rc) return rc;
    int64_t n = crl_tensor_numel(params);
    if (n == 0) return CRL_OK;
    crl_adam_consts c = crl_adam_consts_of(lr, beta1, beta2, step);
    cudaStream_t s = crl_gpu_stream();
    if (s == 0) return CRL_ERR_DEVICE;
    adam_kernel<<<crl_gpu_blocks(n), CRL_GPU_THREADS, 0, s>>>(
        (float *)crl_tensor_data(params), (float *)crl_tensor_data(m), (float *)crl_tensor_data(v),
        (const float *)crl_tensor_data(grads), decay ? (const float *)crl_tensor_data(decay) : NULL, n, lr, beta1,
        beta2, eps, c, decoupled);
    return crl_gpu_launched(F, "adam_kernel");
}

namespace {

enum { SUMSQ_THREADS = 256, SUMSQ_BLOCKS = 1024 };

/* Stage 1: each block's share of sum x^2 (in double) to part[block]. */
__global__ void sumsq_partial_kernel(double *part, const float *x, int64_t n)
{
    __shared__ double sh[SUMSQ_THREADS];
    double acc = 0;
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x)
        acc += (double)x[i] * x[i];
    sh[threadIdx.x] = acc;
    __syncthreads();
    for (int s = SUMSQ_THREADS / 2; s > 0; s >>= 1) {
        if ((int)threadIdx.x < s) sh[threadIdx.x] += sh[threadIdx.x + s];
        __syncthreads();
    }
    if (threadIdx.x == 0) part[blockIdx.x] = sh[0];
}

/* Stage 2: one block sums the partials in a fixed order. */
__global__ void sumsq_final_kernel(double *out, const double *part, int nparts)
{
    __shared__ double sh[SUMSQ_THREADS];
    double acc = 0;
    for (int i = threadIdx.x; i < nparts; i += SUMSQ_THREADS) acc += part[i];
    sh[threadIdx.x] = acc;
    __syncthreads();
    for (int s = SUMSQ_THREADS / 2; s > 0; s >>= 1) {
        if ((int)threadIdx.x < s) sh[threadIdx.x] += sh[threadIdx.x + s];
        __syncthreads();
    }
    if (threadIdx.x == 0) *out = sh[0];
}

} // namespace

/* The squared norm for gradient clipping: a deterministic two-stage sum (the
 * same grid for a given n), read back to the host. */
extern "C" int crl_gpu_tensor_sumsq(double *value, const crl_tensor *t)
{
    static const char *F = "crl_tensor_sumsq";
    if (t == NULL) return crl_fail(CRL_ERR_ARG, F, "argument 't' is NULL");
    if (value == NULL) return crl_fail(CRL_ERR_ARG, F, "argument 'value' is NULL");
    int64_t n = crl_tensor_numel(t);
    int rc = crl_check_slab(t, n, CRL_CUDA, F, "t");
    if (rc == CRL_OK) rc = crl_gpu_no_capture(F, "reading the sum of squares back to the host (gradient clipping)");
    if (rc) return rc;
    cudaStream_t s = crl_gpu_stream();
    if (s == 0) return CRL_ERR_DEVICE;
    int blocks = (int)crl_gpu_blocks(n, SUMSQ_THREADS);
    if (blocks > SUMSQ_BLOCKS) blocks = SUMSQ_BLOCKS;
    double *scratch; /* [0]: the total, [1..blocks]: the partials */
    if ((rc = crl_gpu_scratch((void **)&scratch, (blocks + 1) * (int64_t)sizeof(double), F))) return rc;
    sumsq_partial_kernel<<<blocks, SUMSQ_THREADS, 0, s>>>(scratch + 1, (const float *)crl_tensor_data(t), n);
    if ((rc = crl_gpu_launched(F, "sumsq_partial_kernel"))) return rc;
    sumsq_final_kernel<<<1, SUMSQ_THREADS, 0, s>>>(scratch, scratch + 1, blocks);
    if ((rc = crl_gpu_launched(F, "sumsq_final_kernel"))) return rc;
    double v;
    CRL_GPU_TRY(cudaMemcpyAsync(&v, scratch, sizeof v, cudaMemcpyDeviceToHost, s), F);
    CRL_GPU_TRY(cudaStreamSynchronize(s), F);
    *value = v;
    return CRL_OK;
}
