/* cpu/optim.c -- optimiser updates as one fused pass over the parameter
 * slab (SGD with momentum / Nesterov, Adam, AdamW), and the squared norm
 * used for gradient clipping. The update rules are PyTorch's, stated per
 * element in math/optim.h (shared with the CUDA kernels). */
#include <math.h>

#include "../internal.h"
#include "cpu.h"
#include "../math/optim.h"

int crl_check_slab(const crl_tensor *t, int64_t n, int device, const char *func, const char *name)
{
    if (t == NULL) return crl_fail(CRL_ERR_ARG, func, "argument '%s' is NULL", name);
    int rc = crl_require_device(t, device, func, name);
    if (rc) return rc;
    if (t->dtype != CRL_FLOAT32 || !crl_tensor_is_contiguous(t) || crl_tensor_numel(t) != n)
        return crl_fail(CRL_ERR_SHAPE, func, "'%s' %s must be a contiguous float32 tensor of %lld elements "
                        "(the size of params)", name, crl_shape(t), (long long)n);
    return CRL_OK;
}

static int slab(const crl_tensor *t, int64_t n, const char *func, const char *name)
{
    return crl_check_slab(t, n, CRL_CPU, func, name);
}

int crl_check_sgd_step(const crl_tensor *params, const crl_tensor *momentum_buf, const crl_tensor *grads,
                       const crl_tensor *decay, float lr, float momentum, float dampening, int nesterov, int device,
                       const char *func)
{
    if (params == NULL) return crl_fail(CRL_ERR_ARG, func, "argument 'params' is NULL");
    int64_t n = crl_tensor_numel(params);
    int rc = crl_check_slab(params, n, device, func, "params");
    if (rc == CRL_OK) rc = crl_check_slab(grads, n, device, func, "grads");
    if (rc == CRL_OK && decay) rc = crl_check_slab(decay, n, device, func, "decay");
    if (rc == CRL_OK && momentum != 0) rc = crl_check_slab(momentum_buf, n, device, func, "momentum_buf");
    if (rc) return rc;
    if (!(lr >= 0) || !(momentum >= 0) || (nesterov && (momentum <= 0 || dampening != 0)))
        return crl_fail(CRL_ERR_ARG, func, "lr %g and momentum %g must be >= 0; Nesterov needs "
                        "momentum > 0 and dampening 0", lr, momentum);
    return CRL_OK;
}

int crl_check_adam_step(const crl_tensor *params, const crl_tensor *m, const crl_tensor *v, const crl_tensor *grads,
                        const crl_tensor *decay, float lr, float beta1, float beta2, float eps, int64_t step,
                        int device, const char *func)
{
    if (params == NULL) return crl_fail(CRL_ERR_ARG, func, "argument 'params' is NULL");
    int64_t n = crl_tensor_numel(params);
    int rc = crl_check_slab(params, n, device, func, "params");
    if (rc == CRL_OK) rc = crl_check_slab(grads, n, device, func, "grads");
    if (rc == CRL_OK) rc = crl_check_slab(m, n, device, func, "m");
    if (rc == CRL_OK) rc = crl_check_slab(v, n, device, func, "v");
    if (rc == CRL_OK && decay) rc = crl_check_slab(decay, n, device, func, "decay");
    if (rc) return rc;
    if (!(lr >= 0) || !(beta1 >= 0 && beta1 < 1) || !(beta2 >= 0 && beta2 < 1) || !(eps > 0) || step < 1)
        return crl_fail(CRL_ERR_ARG, func, "need lr >= 0, betas in [0, 1), eps > 0, step >= 1; got lr %g, "
                        "betas (%g, %g), eps %g, step %lld", lr, beta1, beta2, eps, (long long)step);
    return CRL_OK;
}

int crl_cpu_sgd_step(crl_tensor *params, crl_tensor *momentum_buf, const crl_tensor *grads,
                 const crl_tensor *decay, float lr, float momentum, float dampening, int nesterov)
{
    int rc = crl_check_sgd_step(params, momentum_buf, grads, decay, lr, momentum, dampening, nesterov, CRL_CPU,
                                __func__);
    if (rc) return rc;
    int64_t n = crl_tensor_numel(params);
    float *p = crl_tensor_data(params);
    const float *g = crl_tensor_data(grads);
    const float *wd = decay ? crl_tensor_data(decay) : NULL;
    float *buf = momentum != 0 ? crl_tensor_data(momentum_buf) : NULL;
#pragma omp parallel for schedule(static) if (n > 65536)
    for (int64_t i = 0; i < n; i++)
        crl_sgd_update(p + i, buf ? buf + i : NULL, g[i], wd ? wd + i : NULL, lr, momentum, dampening, nesterov);
    return CRL_OK;
}

int crl_cpu_adam_step(crl_tensor *params, crl_tensor *m, crl_tensor *v, const crl_tensor *grads,
                  const crl_tensor *decay, float lr, float beta1, float beta2, float eps,
                  int64_t step, int decoupled)
{
    int rc = crl_check_adam_step(params, m, v, grads, decay, lr, beta1, beta2, eps, step, CRL_CPU, __func__);
    if (rc) return rc;
    int64_t n = crl_tensor_numel(params);
    float *p = crl_tensor_data(params), *mm = crl_tensor_data(m), *vv = crl_tensor_data(v);
    const float *g = crl_tensor_data(grads);
    const float *wd = decay ? crl_tensor_data(decay) : NULL;
    crl_adam_consts c = crl_adam_consts_of(lr, beta1, beta2, step);
#pragma omp parallel for schedule(static) if (n > 65536)
    for (int64_t i = 0; i < n; i++)
        crl_adam_update(p + i, mm + i, vv + i, g[i], wd ? wd + i : NULL, lr, beta1, beta2, eps, c, decoupled);
    return CRL_OK;
}

int crl_cpu_tensor_sumsq(double *value, const crl_tensor *t)
{
    CHECK_TENSOR(t, "t");
    if (value == NULL) return crl_fail(CRL_ERR_ARG, __func__, "argument 'value' is NULL");
    int64_t n = crl_tensor_numel(t);
    int rc = slab(t, n, __func__, "t");
    if (rc) return rc;
    const float *x = crl_tensor_data(t);
    double acc = 0;
#pragma omp parallel for reduction(+ : acc) schedule(static) if (n > 65536)
    for (int64_t i = 0; i < n; i++) acc += (double)x[i] * x[i];
    *value = acc;
    return CRL_OK;
}
