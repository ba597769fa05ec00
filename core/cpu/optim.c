/* cpu/optim.c -- optimiser updates as one fused pass over the parameter
 * slab (SGD with momentum / Nesterov, Adam, AdamW), and the squared norm
 * used for gradient clipping. The update rules are PyTorch's. */
#include <math.h>

#include "../internal.h"
#include "cpu.h"

static int slab(const crl_tensor *t, int64_t n, const char *func, const char *name)
{
    if (t == NULL) return crl_fail(CRL_ERR_ARG, func, "argument '%s' is NULL", name);
    int rc = crl_require_cpu(t, func, name);
    if (rc) return rc;
    if (t->dtype != CRL_FLOAT32 || !crl_tensor_is_contiguous(t) || crl_tensor_numel(t) != n)
        return crl_fail(CRL_ERR_SHAPE, func, "'%s' %s must be a contiguous float32 tensor of %lld elements "
                        "(the size of params)", name, crl_shape(t), (long long)n);
    return CRL_OK;
}

int crl_cpu_sgd_step(crl_tensor *params, crl_tensor *momentum_buf, const crl_tensor *grads,
                 const crl_tensor *decay, float lr, float momentum, float dampening, int nesterov)
{
    CHECK_TENSOR(params, "params");
    int64_t n = crl_tensor_numel(params);
    int rc = slab(params, n, __func__, "params");
    if (rc == CRL_OK) rc = slab(grads, n, __func__, "grads");
    if (rc == CRL_OK && decay) rc = slab(decay, n, __func__, "decay");
    if (rc == CRL_OK && momentum != 0) rc = slab(momentum_buf, n, __func__, "momentum_buf");
    if (rc) return rc;
    if (!(lr >= 0) || !(momentum >= 0) || (nesterov && (momentum <= 0 || dampening != 0)))
        return crl_fail(CRL_ERR_ARG, __func__, "lr %g and momentum %g must be >= 0; Nesterov needs "
                        "momentum > 0 and dampening 0", lr, momentum);
    float *p = crl_tensor_data(params);
    const float *g = crl_tensor_data(grads);
    const float *wd = decay ? crl_tensor_data(decay) : NULL;
    float *buf = momentum != 0 ? crl_tensor_data(momentum_buf) : NULL;
#pragma omp parallel for schedule(static) if (n > 65536)
    for (int64_t i = 0; i < n; i++) {
        float d = g[i] + (wd ? wd[i] * p[i] : 0.0f);
        if (buf) {
            buf[i] = momentum * buf[i] + (1.0f - dampening) * d;
            d = nesterov ? d + momentum * buf[i] : buf[i];
        }
        p[i] -= lr * d;
    }
    return CRL_OK;
}

int crl_cpu_adam_step(crl_tensor *params, crl_tensor *m, crl_tensor *v, const crl_tensor *grads,
                  const crl_tensor *decay, float lr, float beta1, float beta2, float eps,
                  int64_t step, int decoupled)
{
    CHECK_TENSOR(params, "params");
    int64_t n = crl_tensor_numel(params);
    int rc = slab(params, n, __func__, "params");
    if (rc == CRL_OK) rc = slab(grads, n, __func__, "grads");
    if (rc == CRL_OK) rc = slab(m, n, __func__, "m");
    if (rc == CRL_OK) rc = slab(v, n, __func__, "v");
    if (rc == CRL_OK && decay) rc = slab(decay, n, __func__, "decay");
    if (rc) return rc;
    if (!(lr >= 0) || !(beta1 >= 0 && beta1 < 1) || !(beta2 >= 0 && beta2 < 1) || !(eps > 0) || step < 1)
        return crl_fail(CRL_ERR_ARG, __func__, "need lr >= 0, betas in [0, 1), eps > 0, step >= 1; got lr %g, "
                        "betas (%g, %g), eps %g, step %lld", lr, beta1, beta2, eps, (long long)step);
    float *p = crl_tensor_data(params), *mm = crl_tensor_data(m), *vv = crl_tensor_data(v);
    const float *g = crl_tensor_data(grads);
    const float *wd = decay ? crl_tensor_data(decay) : NULL;
    double bc1 = 1.0 - pow(beta1, (double)step), bc2 = 1.0 - pow(beta2, (double)step);
    float step_size = (float)(lr / bc1), bc2_sqrt = (float)sqrt(bc2);
#pragma omp parallel for schedule(static) if (n > 65536)
    for (int64_t i = 0; i < n; i++) {
        float d = g[i];
        if (wd && !decoupled) d += wd[i] * p[i];
        if (wd && decoupled) p[i] -= lr * wd[i] * p[i];
        mm[i] = beta1 * mm[i] + (1.0f - beta1) * d;
        vv[i] = beta2 * vv[i] + (1.0f - beta2) * d * d;
        p[i] -= step_size * mm[i] / (sqrtf(vv[i]) / bc2_sqrt + eps);
    }
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
