/* cpu/loss.c -- the classification losses over logits z (N, K) and int32
 * labels y (N), forward and backward with respect to z.
 *
 * With lse = log sum_j exp z_j and lse_o = log sum_{j != y} exp z_j, every
 * quantity is taken from log-sum-exps, never from 1 - p_y:
 *   log p_y          = z_y - lse
 *   log S            = lse_o - lse           S = sum_{j != y} p_j
 *   CE               = lse - z_y
 *   CE, smoothing e  = lse - (1 - e) z_y - (e / K) sum_j z_j
 *   CRL(a, b)        = b (lse - z_y + log(a + S)),  log(a + S) = logaddexp(log a, log S)
 *   NLLR             = CRL(0, 1) = lse_o - z_y
 *   focal(g)         = -S^g log p_y
 * Gradients (p = softmax z):
 *   CE               p - q,  q = (1 - e) onehot(y) + e / K
 *   CRL              b (a + 1) / (a + S) (p - onehot(y)); written as
 *                    exp(z_k - lse - log(a + S)) for k != y and
 *                    -exp(log S - log(a + S)) at y, so NLLR stays finite
 *                    and exact as p_y -> 1
 *   focal            (S^g - g S^(g-1) p_y log p_y) (p - onehot(y))
 * Everything is accumulated in double. The per-row arithmetic is in
 * math/loss.h, shared with the CUDA kernels; the checks here are shared too
 * (crl_check_logits_labels, crl_check_loss_spec). */
#include <math.h>

#include "../internal.h"
#include "../math/loss.h"
#include "cpu.h"

static const char *loss_name(int kind)
{
    switch (kind) {
    case CRL_LOSS_CE: return "ce";
    case CRL_LOSS_NLLR: return "nllr";
    case CRL_LOSS_CRL: return "crl";
    case CRL_LOSS_FOCAL: return "focal";
    default: return "unknown";
    }
}

int crl_check_logits_labels(const crl_tensor *logits, const crl_tensor *labels, int device, const char *func)
{
    CHECK_TENSOR(logits, "logits");
    CHECK_TENSOR(labels, "labels");
    int rc = crl_require_device(logits, device, func, "logits");
    if (rc == CRL_OK) rc = crl_require_device(labels, device, func, "labels");
    if (rc) return rc;
    if (logits->dtype != CRL_FLOAT32 || logits->ndim != 2)
        return crl_fail(CRL_ERR_SHAPE, func, "logits must be a float32 (N, K) matrix, got %s %s",
                        crl_dtype_name(logits->dtype), crl_shape(logits));
    if (labels->dtype != CRL_INT32 || labels->ndim != 1)
        return crl_fail(CRL_ERR_SHAPE, func, "labels must be an int32 (N) vector, got %s %s",
                        crl_dtype_name(labels->dtype), crl_shape(labels));
    if (labels->sizes[0] != logits->sizes[0])
        return crl_fail(CRL_ERR_SHAPE, func, "logits %s hold %lld examples but labels %s hold %lld",
                        crl_shape(logits), (long long)logits->sizes[0], crl_shape(labels),
                        (long long)labels->sizes[0]);
    return CRL_OK;
}

int crl_check_loss_spec(const crl_tensor *logits, const crl_loss_spec *spec, const char *func)
{
    if (spec == NULL) return crl_fail(CRL_ERR_ARG, func, "argument 'spec' is NULL");
    int64_t k = logits->sizes[1];
    if (spec->kind < CRL_LOSS_CE || spec->kind > CRL_LOSS_FOCAL)
        return crl_fail(CRL_ERR_ARG, func, "unknown loss kind %d", spec->kind);
    if (spec->reduction < CRL_REDUCE_MEAN || spec->reduction > CRL_REDUCE_NONE)
        return crl_fail(CRL_ERR_ARG, func, "unknown reduction %d", spec->reduction);
    if (k < 1 || ((spec->kind == CRL_LOSS_NLLR || spec->kind == CRL_LOSS_CRL) && k < 2))
        return crl_fail(CRL_ERR_SHAPE, func, "%s needs at least %d classes, logits are %s",
                        loss_name(spec->kind), spec->kind == CRL_LOSS_NLLR ||
                        spec->kind == CRL_LOSS_CRL ? 2 : 1, crl_shape(logits));
    if (spec->kind == CRL_LOSS_CRL && !(spec->alpha >= 0 && isfinite(spec->alpha)))
        return crl_fail(CRL_ERR_ARG, func, "crl alpha = %g must be finite and >= 0", spec->alpha);
    if (spec->kind == CRL_LOSS_CRL && !(spec->beta > 0 && isfinite(spec->beta)))
        return crl_fail(CRL_ERR_ARG, func, "crl beta = %g must be finite and > 0", spec->beta);
    if (spec->kind == CRL_LOSS_FOCAL && !(spec->gamma >= 0 && isfinite(spec->gamma)))
        return crl_fail(CRL_ERR_ARG, func, "focal gamma = %g must be finite and >= 0", spec->gamma);
    if (spec->kind == CRL_LOSS_CE && !(spec->smoothing >= 0 && spec->smoothing < 1))
        return crl_fail(CRL_ERR_ARG, func, "ce smoothing = %g must be in [0, 1)", spec->smoothing);
    return CRL_OK;
}

int crl_check_loss_grad_output(const crl_tensor *grad_output, const crl_tensor *logits, const crl_loss_spec *spec,
                               const char *func)
{
    int rc = crl_require_device(grad_output, logits->device, func, "grad_output");
    if (rc == CRL_OK) rc = crl_require_dtype(grad_output, CRL_FLOAT32, func, "grad_output");
    if (rc) return rc;
    int64_t want = spec->reduction == CRL_REDUCE_NONE ? logits->sizes[0] : 1;
    if (crl_tensor_numel(grad_output) != want)
        return crl_fail(CRL_ERR_SHAPE, func, "grad_output %s must hold %lld element(s) for reduction '%s'",
                        crl_shape(grad_output), (long long)want,
                        spec->reduction == CRL_REDUCE_NONE ? "none" :
                        spec->reduction == CRL_REDUCE_SUM ? "sum" : "mean");
    return CRL_OK;
}

/* Checks everything before any work: shapes, dtypes, devices, the spec and
 * every label. */
static int check_inputs(const crl_tensor *logits, const crl_tensor *labels,
                        const crl_loss_spec *spec, const char *func)
{
    if (spec == NULL) return crl_fail(CRL_ERR_ARG, func, "argument 'spec' is NULL");
    int rc = crl_check_logits_labels(logits, labels, CRL_CPU, func);
    if (rc == CRL_OK) rc = crl_check_loss_spec(logits, spec, func);
    if (rc) return rc;
    int64_t n = logits->sizes[0], k = logits->sizes[1];
    const int32_t *y = labels->storage ? labels->storage->data : NULL;
    for (int64_t i = 0; i < n; i++) {
        int32_t c = y[labels->offset + i * labels->strides[0]];
        if (c < 0 || c >= k)
            return crl_fail(CRL_ERR_ARG, func, "label %d of example %lld (0-based) is outside [0, %lld) "
                            "for logits %s", c, (long long)i, (long long)k, crl_shape(logits));
    }
    return CRL_OK;
}

/* The one forward path: validates, fills per_example (when given) and
 * returns the reduced value through *value. */
static int forward(double *value, crl_tensor *per_example, const crl_tensor *logits,
                   const crl_tensor *labels, const crl_loss_spec *spec, const char *func)
{
    int rc = check_inputs(logits, labels, spec, func);
    if (rc) return rc;
    if (per_example == logits || per_example == labels)
        return crl_fail(CRL_ERR_ARG, func, "per_example must be a tensor of its own");
    int64_t n = logits->sizes[0], k = logits->sizes[1];
    if (per_example && (rc = crl_prepare(per_example, CRL_FLOAT32, CRL_CPU, 1, &n)) != CRL_OK)
        return rc;
    const float *z = logits->storage ? logits->storage->data : NULL;
    const int32_t *y = labels->storage ? labels->storage->data : NULL;
    float *out = per_example ? crl_tensor_data(per_example) : NULL;
    double total = 0;
    for (int64_t i = 0; i < n; i++) {
        int32_t c = y[labels->offset + i * labels->strides[0]];
        crl_loss_stats r = crl_loss_row_stats(z + logits->offset + i * logits->strides[0], logits->strides[1], k, c);
        double l = crl_loss_row_value(&r, spec, k);
        total += l;
        if (out) out[i] = (float)l;
    }
    *value = spec->reduction == CRL_REDUCE_MEAN ? (n ? total / (double)n : NAN) : total;
    return CRL_OK;
}

int crl_cpu_loss_forward(double *value, crl_tensor *per_example, const crl_tensor *logits,
                     const crl_tensor *labels, const crl_loss_spec *spec)
{
    if (value == NULL) return crl_fail(CRL_ERR_ARG, __func__, "argument 'value' is NULL");
    return forward(value, per_example, logits, labels, spec, __func__);
}

int crl_cpu_loss_forward_into(crl_tensor *value, crl_tensor *per_example, const crl_tensor *logits,
                          const crl_tensor *labels, const crl_loss_spec *spec)
{
    CHECK_TENSOR(value, "value");
    if (value == logits || value == labels || (per_example != NULL && value == per_example))
        return crl_fail(CRL_ERR_ARG, __func__, "value must be a tensor of its own");
    double v;
    int rc = forward(&v, per_example, logits, labels, spec, __func__);
    int64_t one = 1;
    if (rc == CRL_OK) rc = crl_prepare(value, CRL_FLOAT32, logits->device, 1, &one);
    if (rc == CRL_OK) rc = crl_tensor_put(value, 0, v);
    return rc;
}

int crl_cpu_loss_backward(crl_tensor *grad, const crl_tensor *logits, const crl_tensor *labels,
                      const crl_tensor *grad_output, const crl_loss_spec *spec)
{
    CHECK_TENSOR(grad, "grad");
    int rc = check_inputs(logits, labels, spec, __func__);
    if (rc) return rc;
    if (grad == logits || grad == labels)
        return crl_fail(CRL_ERR_ARG, __func__, "grad must be a tensor of its own");
    int64_t n = logits->sizes[0], k = logits->sizes[1];
    if (grad_output && (rc = crl_check_loss_grad_output(grad_output, logits, spec, __func__))) return rc;
    rc = crl_prepare(grad, CRL_FLOAT32, CRL_CPU, 2, logits->sizes);
    if (rc) return rc;
    const float *z = logits->storage->data;
    const int32_t *y = labels->storage->data;
    float *g = crl_tensor_data(grad);
    double scale = spec->reduction == CRL_REDUCE_MEAN ? 1.0 / (double)(n ? n : 1) : 1.0;
    for (int64_t i = 0; i < n; i++) {
        int32_t c = y[labels->offset + i * labels->strides[0]];
        const float *zi = z + logits->offset + i * logits->strides[0];
        int64_t zs = logits->strides[1];
        float *gi = g + i * k;
        double up = scale;
        if (grad_output) {
            double v;
            crl_tensor_get(&v, grad_output, spec->reduction == CRL_REDUCE_NONE ? i : 0);
            up *= v;
        }
        crl_loss_stats r = crl_loss_row_stats(zi, zs, k, c);
        crl_loss_grad_row gr = crl_loss_grad_of(&r, spec, k, up);
        for (int64_t j = 0; j < k; j++) gi[j] = (float)crl_loss_grad_elem(&gr, zi[j * zs]);
        gi[c] = (float)gr.at_label;
    }
    return CRL_OK;
}
