/* cuda/optim.cu -- the optimiser steps on the GPU: one fused kernel over
 * the parameter slab each, applying math/optim.h's per-element rule (the
 * CPU's) to every element; the checks are the CPU's (crl_check_*_step). */
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
    sgd_kernel<<<crl_gpu_blocks(n), CRL_GPU_THREADS, 0, crl_gpu_stream()>>>(
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
    adam_kernel<<<crl_gpu_blocks(n), CRL_GPU_THREADS, 0, crl_gpu_stream()>>>(
        (float *)crl_tensor_data(params), (float *)crl_tensor_data(m), (float *)crl_tensor_data(v),
        (const float *)crl_tensor_data(grads), decay ? (const float *)crl_tensor_data(decay) : NULL, n, lr, beta1,
        beta2, eps, c, decoupled);
    return crl_gpu_launched(F, "adam_kernel");
}
