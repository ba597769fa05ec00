/* math/optim.h -- the per-element updates of the optimisers (PyTorch's
 * rules, in float32), stated once for the CPU loop of cpu/optim.c and the
 * fused CUDA kernel of cuda/optim.cu. wd points at the element's
 * weight-decay coefficient, or is NULL without a decay slab (then nothing
 * is added at all, so an infinite weight stays out of the arithmetic). */
#ifndef CRLAB_MATH_OPTIM_H
#define CRLAB_MATH_OPTIM_H

#include <math.h>
#include <stddef.h>
#include <stdint.h>

#include "hd.h"

/* SGD: d = g + wd p; with momentum buf = momentum buf + (1 - dampening) d
 * and d = Nesterov ? d + momentum buf : buf; then p -= lr d. buf is NULL
 * without momentum. */
CRL_HD void crl_sgd_update(float *p, float *buf, float g, const float *wd, float lr, float momentum,
                           float dampening, int nesterov)
{
    float d = g + (wd ? *wd * *p : 0.0f);
    if (buf) {
        *buf = momentum * *buf + (1.0f - dampening) * d;
        d = nesterov ? d + momentum * *buf : *buf;
    }
    *p -= lr * d;
}

/* The step's constants of Adam: step_size = lr / (1 - beta1^t) and
 * sqrt(1 - beta2^t), from doubles as PyTorch does. */
typedef struct {
    float step_size;
    float bc2_sqrt;
} crl_adam_consts;

CRL_HD crl_adam_consts crl_adam_consts_of(float lr, float beta1, float beta2, int64_t step)
{
    double bc1 = 1.0 - pow((double)beta1, (double)step), bc2 = 1.0 - pow((double)beta2, (double)step);
    crl_adam_consts c;
    c.step_size = (float)(lr / bc1);
    c.bc2_sqrt = (float)sqrt(bc2);
    return c;
}

/* Adam (decoupled = 0: d = g + wd p) or AdamW (decoupled = 1: p -= lr wd p
 * first), then the moments and p -= step_size m / (sqrt(v) / bc2_sqrt + eps). */
CRL_HD void crl_adam_update(float *p, float *m, float *v, float g, const float *wd, float lr, float beta1,
                            float beta2, float eps, crl_adam_consts c, int decoupled)
{
    float d = g;
    if (wd && !decoupled) d += *wd * *p;
    if (wd && decoupled) *p -= lr * *wd * *p;
    *m = beta1 * *m + (1.0f - beta1) * d;
    *v = beta2 * *v + (1.0f - beta2) * d * d;
    *p -= c.step_size * *m / (sqrtf(*v) / c.bc2_sqrt + eps);
}

#endif
