/* cpu/nn.c -- the layers other than convolution: linear (sgemm), batch
 * normalisation, ReLU, max and average pooling, dropout. Float32, CPU,
 * contiguous NCHW (or (N, C)) inputs; loops over channels or planes run in
 * parallel with OpenMP. */
#include <cblas.h>
#include <math.h>
#include <string.h>

#include "../internal.h"
#include "../math/pool.h"
#include "cpu.h"
#include "blocked.h"
#include "../math/philox.h"
#include "../backend.h"
#include "../math/bn.h"

/* A contiguous float32 plain tensor on this device (the CPU for the CPU
 * kernels; CUDA when the CUDA kernels run the shared checks below). */
static int need_f32_on(const crl_tensor *t, int device, const char *func, const char *name)
{
    if (t == NULL) return crl_fail(CRL_ERR_ARG, func, "argument '%s' is NULL", name);
    int rc = crl_require_device(t, device, func, name);
    if (rc) return rc;
    if (t->dtype != CRL_FLOAT32 || !crl_tensor_is_contiguous(t))
        return crl_fail(CRL_ERR_ARG, func, "'%s' %s must be a contiguous float32 tensor (got %s%s)", name,
                        crl_shape(t), crl_dtype_name(t->dtype),
                        crl_tensor_is_contiguous(t) ? "" : ", not contiguous");
    return CRL_OK;
}

static int need_f32(const crl_tensor *t, const char *func, const char *name)
{
    return need_f32_on(t, CRL_CPU, func, name);
}

/* A float32 tensor in this layout: contiguous when plain, or blocked with
 * the same block size (the layers between convolutions accept both; blocked
 * tensors live on the CPU only). */
static int need_f32_as(const crl_tensor *t, int layout, int device, const char *func, const char *name)
{
    if (t == NULL) return crl_fail(CRL_ERR_ARG, func, "argument '%s' is NULL", name);
    int rc = crl_layout_check(t, func, name);
    if (rc) return rc;
    if (t->layout == CRL_LAYOUT_PLAIN && layout == CRL_LAYOUT_PLAIN) return need_f32_on(t, device, func, name);
    if (t->device != CRL_CPU || t->dtype != CRL_FLOAT32 || t->ndim != 4 || t->layout != layout)
        return crl_fail(CRL_ERR_ARG, func, "'%s' %s must be a float32 CPU tensor in the %s layout, got %s", name,
                        crl_shape(t), crl_layout_name(layout), crl_layout_name(t->layout));
    return CRL_OK;
}

/* Blocked tensors read in step must have one shape, not just one count:
 * their spans differ otherwise. */
static int same_blocked_shape(const crl_tensor *a, const crl_tensor *b, const char *func, const char *an,
                              const char *bn)
{
    if (a->layout != CRL_LAYOUT_PLAIN && memcmp(a->sizes, b->sizes, 4 * sizeof a->sizes[0]) != 0)
        return crl_fail(CRL_ERR_SHAPE, func, "'%s' %s and '%s' %s must have one shape", an, crl_shape(a), bn,
                        crl_shape(b));
    return CRL_OK;
}

static int same_numel(const crl_tensor *a, int64_t n, const char *func, const char *name, const char *what)
{
    if (crl_tensor_numel(a) != n)
        return crl_fail(CRL_ERR_SHAPE, func, "'%s' %s must hold %lld elements (%s)", name, crl_shape(a),
                        (long long)n, what);
    return CRL_OK;
}

/* ---- linear ---------------------------------------------------------------- */

/* The linear layer's checks on `device`, shared with the CUDA kernels. */
int crl_linear_forward_check(const crl_tensor *in, const crl_tensor *weight, const crl_tensor *bias, int device,
                             const char *func)
{
    int rc = need_f32_on(in, device, func, "in");
    if (rc == CRL_OK) rc = need_f32_on(weight, device, func, "weight");
    if (rc) return rc;
    if (in->ndim != 2 || weight->ndim != 2 || in->sizes[1] != weight->sizes[1])
        return crl_fail(CRL_ERR_SHAPE, func, "in %s must be (N, I) and weight %s (O, I) with equal I",
                        crl_shape(in), crl_shape(weight));
    if (bias && ((rc = need_f32_on(bias, device, func, "bias")) ||
                 (rc = same_numel(bias, weight->sizes[0], func, "bias", "O"))))
        return rc;
    return CRL_OK;
}

int crl_linear_backward_check(const crl_tensor *grad_weight, const crl_tensor *grad_bias, const crl_tensor *grad_out,
                              const crl_tensor *in, const crl_tensor *weight, int device, const char *func)
{
    int rc = need_f32_on(in, device, func, "in");
    if (rc == CRL_OK) rc = need_f32_on(weight, device, func, "weight");
    if (rc == CRL_OK) rc = need_f32_on(grad_out, device, func, "grad_out");
    if (rc) return rc;
    if (in->ndim != 2 || weight->ndim != 2 || grad_out->ndim != 2 || in->sizes[1] != weight->sizes[1] ||
        grad_out->sizes[0] != in->sizes[0] || grad_out->sizes[1] != weight->sizes[0])
        return crl_fail(CRL_ERR_SHAPE, func, "grad_out %s, in %s and weight %s do not fit (N,O), (N,I), (O,I)",
                        crl_shape(grad_out), crl_shape(in), crl_shape(weight));
    int64_t i = in->sizes[1], o = weight->sizes[0];
    if (grad_weight && ((rc = need_f32_on(grad_weight, device, func, "grad_weight")) ||
                        (rc = same_numel(grad_weight, o * i, func, "grad_weight", "O*I"))))
        return rc;
    if (grad_bias && ((rc = need_f32_on(grad_bias, device, func, "grad_bias")) ||
                      (rc = same_numel(grad_bias, o, func, "grad_bias", "O"))))
        return rc;
    return CRL_OK;
}

int crl_cpu_linear_forward(crl_tensor *out, const crl_tensor *in, const crl_tensor *weight,
                       const crl_tensor *bias)
{
    CHECK_TENSOR(out, "out");
    int rc = crl_linear_forward_check(in, weight, bias, CRL_CPU, __func__);
    if (rc) return rc;
    int64_t n = in->sizes[0], i = in->sizes[1], o = weight->sizes[0];
    if (out == in) return crl_fail(CRL_ERR_ARG, __func__, "out must not be in");
    int64_t sz[2] = {n, o};
    rc = crl_prepare(out, CRL_FLOAT32, CRL_CPU, 2, sz);
    if (rc) return rc;
    float *y = crl_tensor_data(out);
    if (bias) {
        const float *b = crl_tensor_data(bias);
        for (int64_t r = 0; r < n; r++) memcpy(y + r * o, b, (size_t)o * sizeof(float));
    }
    if (n > 0 && o > 0)
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)n, (int)o, (int)i, 1.0f,
                    crl_tensor_data(in), (int)i, crl_tensor_data(weight), (int)i, bias ? 1.0f : 0.0f, y,
                    (int)o);
    return CRL_OK;
}

int crl_cpu_linear_backward(crl_tensor *grad_in, crl_tensor *grad_weight, crl_tensor *grad_bias,
                        const crl_tensor *grad_out, const crl_tensor *in, const crl_tensor *weight)
{
    int rc = crl_linear_backward_check(grad_weight, grad_bias, grad_out, in, weight, CRL_CPU, __func__);
    if (rc) return rc;
    int64_t n = in->sizes[0], i = in->sizes[1], o = weight->sizes[0];
    const float *gy = crl_tensor_data(grad_out);
    if (grad_in) {
        if (grad_in == in || grad_in == grad_out) return crl_fail(CRL_ERR_ARG, __func__, "grad_in must be its own tensor");
        rc = crl_prepare(grad_in, CRL_FLOAT32, CRL_CPU, 2, in->sizes);
        if (rc) return rc;
        if (n > 0 && i > 0)
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)n, (int)i, (int)o, 1.0f, gy, (int)o,
                        crl_tensor_data(weight), (int)i, 0.0f, crl_tensor_data(grad_in), (int)i);
    }
    if (grad_weight && n > 0)
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, (int)o, (int)i, (int)n, 1.0f, gy, (int)o,
                    crl_tensor_data(in), (int)i, 1.0f, crl_tensor_data(grad_weight), (int)i);
    if (grad_bias) {
        float *gb = crl_tensor_data(grad_bias);
        for (int64_t c = 0; c < o; c++) {
            double acc = 0;
            for (int64_t r = 0; r < n; r++) acc += gy[r * o + c];
            gb[c] += (float)acc;
        }
    }
    return CRL_OK;
}

/* ---- batch normalisation ----------------------------------------------------- */

static int bn_shape(const crl_tensor *in, int64_t *n, int64_t *c, int64_t *hw, const char *func)
{
    if (in->ndim != 2 && in->ndim != 4)
        return crl_fail(CRL_ERR_SHAPE, func, "in %s must be (N, C) or (N, C, H, W)", crl_shape(in));
    *n = in->sizes[0];
    *c = in->sizes[1];
    *hw = in->ndim == 4 ? in->sizes[2] * in->sizes[3] : 1;
    return CRL_OK;
}

int crl_batchnorm_check_forward(int64_t *n, int64_t *c, int64_t *hw, const crl_tensor *out,
                                const crl_tensor *save_mean, const crl_tensor *save_invstd,
                                const crl_tensor *running_mean, const crl_tensor *running_var, const crl_tensor *in,
                                const crl_tensor *weight, const crl_tensor *bias, int training, float momentum,
                                float eps, int device, const char *func)
{
    if (out == NULL) return crl_fail(CRL_ERR_ARG, func, "argument '%s' is NULL", "out");
    if (in == NULL) return crl_fail(CRL_ERR_ARG, func, "argument '%s' is NULL", "in");
    int rc = need_f32_as(in, in->layout, device, func, "in");
    if (rc) return rc;
    if ((rc = bn_shape(in, n, c, hw, func))) return rc;
    const crl_tensor *vecs[4] = {running_mean, running_var, weight, bias};
    const char *names[4] = {"running_mean", "running_var", "weight", "bias"};
    for (int k = 0; k < 4; k++)
        if (vecs[k] && ((rc = need_f32_on(vecs[k], device, func, names[k])) ||
                        (rc = same_numel(vecs[k], *c, func, names[k], "one per channel"))))
            return rc;
    if (!(eps > 0) || !(momentum >= 0 && momentum <= 1))
        return crl_fail(CRL_ERR_ARG, func, "eps %g must be > 0 and momentum %g in [0, 1]", eps, momentum);
    if (!training && (!running_mean || !running_var))
        return crl_fail(CRL_ERR_ARG, func, "evaluation mode needs running_mean and running_var");
    if (training && *n * *hw < 2)
        return crl_fail(CRL_ERR_SHAPE, func, "training needs more than one value per channel, got in %s", crl_shape(in));
    if (training && save_mean == NULL) return crl_fail(CRL_ERR_ARG, func, "argument '%s' is NULL", "save_mean");
    if (training && save_invstd == NULL) return crl_fail(CRL_ERR_ARG, func, "argument '%s' is NULL", "save_invstd");
    return CRL_OK;
}

int crl_cpu_batchnorm_forward(crl_tensor *out, crl_tensor *save_mean, crl_tensor *save_invstd,
                          crl_tensor *running_mean, crl_tensor *running_var, const crl_tensor *in,
                          const crl_tensor *weight, const crl_tensor *bias, int training,
                          float momentum, float eps, int relu)
{
    int64_t n, c, hw;
    int rc = crl_batchnorm_check_forward(&n, &c, &hw, out, save_mean, save_invstd, running_mean, running_var, in,
                                         weight, bias, training, momentum, eps, CRL_CPU, __func__);
    if (rc) return rc;
    if (save_mean && save_invstd &&
        ((rc = crl_prepare(save_mean, CRL_FLOAT32, CRL_CPU, 1, &c)) ||
         (rc = crl_prepare(save_invstd, CRL_FLOAT32, CRL_CPU, 1, &c))))
        return rc;
    if (out != in && (rc = crl_prepare_layout(out, CRL_FLOAT32, CRL_CPU, in->ndim, in->sizes, in->layout))) return rc;
    const float *x = crl_tensor_data(in);
    float *y = crl_tensor_data(out);
    const float *w = weight ? crl_tensor_data(weight) : NULL, *b = bias ? crl_tensor_data(bias) : NULL;
    float *rm = running_mean ? crl_tensor_data(running_mean) : NULL;
    float *rv = running_var ? crl_tensor_data(running_var) : NULL;
    float *sm = save_mean && save_invstd ? crl_tensor_data(save_mean) : NULL;
    float *si = save_mean && save_invstd ? crl_tensor_data(save_invstd) : NULL;
    if (in->layout != CRL_LAYOUT_PLAIN) {
        blk_shape bs;
        blk_shape_of(&bs, in);
        return blk_batchnorm_forward(y, sm, si, rm, rv, x, w, b, training, momentum, eps, relu, &bs);
    }
    double m_count = (double)(n * hw);
#pragma omp parallel for schedule(static)
    for (int64_t ch = 0; ch < c; ch++) {
        double mean = 0, var = 0;
        if (training) {
            /* float partial sums per plane (vectorised), double across planes */
            double acc = 0;
            for (int64_t i = 0; i < n; i++) {
                const float *p = x + (i * c + ch) * hw;
                float part = 0;
                for (int64_t q = 0; q < hw; q++) part += p[q];
                acc += part;
            }
            mean = acc / m_count;
            float fm = (float)mean;
            for (int64_t i = 0; i < n; i++) {
                const float *p = x + (i * c + ch) * hw;
                float part = 0;
                for (int64_t q = 0; q < hw; q++) part += (p[q] - fm) * (p[q] - fm);
                var += part;
            }
            var /= m_count;
        }
        float scale, shift;
        crl_bn_channel(&scale, &shift, rm, rv, sm, si, ch, training, mean, var, m_count, momentum, eps, w, b);
        for (int64_t i = 0; i < n; i++) {
            const float *p = x + (i * c + ch) * hw;
            float *o = y + (i * c + ch) * hw;
            if (relu) {
                for (int64_t q = 0; q < hw; q++) o[q] = crl_relu(p[q] * scale + shift);
            } else {
                for (int64_t q = 0; q < hw; q++) o[q] = p[q] * scale + shift;
            }
        }
    }
    return CRL_OK;
}

int crl_batchnorm_check_backward(int64_t *n, int64_t *c, int64_t *hw, const crl_tensor *grad_in,
                                 const crl_tensor *grad_weight, const crl_tensor *grad_bias,
                                 const crl_tensor *grad_out, const crl_tensor *in, const crl_tensor *weight,
                                 const crl_tensor *save_mean, const crl_tensor *save_invstd,
                                 const crl_tensor *relu_out, int device, const char *func)
{
    if (in == NULL) return crl_fail(CRL_ERR_ARG, func, "argument '%s' is NULL", "in");
    int rc = need_f32_as(in, in->layout, device, func, "in");
    if (rc == CRL_OK) rc = need_f32_as(grad_out, in->layout, device, func, "grad_out");
    if (rc == CRL_OK) rc = need_f32_on(save_mean, device, func, "save_mean");
    if (rc == CRL_OK) rc = need_f32_on(save_invstd, device, func, "save_invstd");
    if (rc) return rc;
    if ((rc = bn_shape(in, n, c, hw, func))) return rc;
    if (crl_tensor_numel(grad_out) != crl_tensor_numel(in))
        return crl_fail(CRL_ERR_SHAPE, func, "grad_out %s and in %s differ", crl_shape(grad_out), crl_shape(in));
    if ((rc = same_blocked_shape(in, grad_out, func, "in", "grad_out")) ||
        (relu_out && (rc = same_blocked_shape(in, relu_out, func, "in", "relu_out"))))
        return rc;
    if (relu_out && ((rc = need_f32_as(relu_out, in->layout, device, func, "relu_out")) ||
                     (rc = same_numel(relu_out, crl_tensor_numel(in), func, "relu_out", "like in"))))
        return rc;
    const crl_tensor *vecs[5] = {weight, grad_weight, grad_bias, save_mean, save_invstd};
    const char *names[5] = {"weight", "grad_weight", "grad_bias", "save_mean", "save_invstd"};
    for (int k = 0; k < 5; k++)
        if (vecs[k] && ((rc = need_f32_on(vecs[k], device, func, names[k])) ||
                        (rc = same_numel(vecs[k], *c, func, names[k], "one per channel"))))
            return rc;
    if (grad_in && (grad_in == in || grad_in == grad_out))
        return crl_fail(CRL_ERR_ARG, func, "grad_in must be its own tensor");
    return CRL_OK;
}

int crl_cpu_batchnorm_backward(crl_tensor *grad_in, crl_tensor *grad_weight, crl_tensor *grad_bias,
                           const crl_tensor *grad_out, const crl_tensor *in, const crl_tensor *weight,
                           const crl_tensor *save_mean, const crl_tensor *save_invstd, int training,
                           const crl_tensor *relu_out)
{
    int64_t n, c, hw;
    int rc = crl_batchnorm_check_backward(&n, &c, &hw, grad_in, grad_weight, grad_bias, grad_out, in, weight,
                                          save_mean, save_invstd, relu_out, CRL_CPU, __func__);
    if (rc) return rc;
    const float *ro = relu_out ? crl_tensor_data(relu_out) : NULL;
    if (grad_in && (rc = crl_prepare_layout(grad_in, CRL_FLOAT32, CRL_CPU, in->ndim, in->sizes, in->layout)))
        return rc;
    const float *x = crl_tensor_data(in), *gy = crl_tensor_data(grad_out);
    const float *w = weight ? crl_tensor_data(weight) : NULL;
    const float *sm = crl_tensor_data(save_mean), *si = crl_tensor_data(save_invstd);
    float *gw = grad_weight ? crl_tensor_data(grad_weight) : NULL;
    float *gb = grad_bias ? crl_tensor_data(grad_bias) : NULL;
    float *gx = grad_in ? crl_tensor_data(grad_in) : NULL;
    if (in->layout != CRL_LAYOUT_PLAIN) {
        blk_shape bs;
        blk_shape_of(&bs, in);
        return blk_batchnorm_backward(gx, gw, gb, gy, x, w, sm, si, training, ro, &bs);
    }
    double m_count = (double)(n * hw);
#pragma omp parallel for schedule(static)
    for (int64_t ch = 0; ch < c; ch++) {
        double mean = sm[ch], invstd = si[ch], sum_g = 0, sum_gx = 0;
        for (int64_t i = 0; i < n; i++) {
            const float *p = x + (i * c + ch) * hw, *g = gy + (i * c + ch) * hw;
            const float *r = ro ? ro + (i * c + ch) * hw : NULL;
            float sg = 0, sgx = 0, fm = (float)mean;
            if (r) {
                for (int64_t q = 0; q < hw; q++) {
                    float gq = crl_relu_grad(g[q], r[q]);
                    sg += gq;
                    sgx += gq * (p[q] - fm);
                }
            } else {
                for (int64_t q = 0; q < hw; q++) {
                    sg += g[q];
                    sgx += g[q] * (p[q] - fm);
                }
            }
            sum_g += sg;
            sum_gx += sgx * invstd;
        }
        if (gb) gb[ch] += (float)sum_g;
        if (gw) gw[ch] += (float)sum_gx;
        if (gx) {
            double k = (w ? w[ch] : 1.0) * invstd / m_count;
            double mg = sum_g, mgx = sum_gx;
            float a = (float)(k * m_count), b0 = (float)(-k * mg), b1 = (float)(-k * mgx * invstd);
            float fm = (float)mean;
            for (int64_t i = 0; i < n; i++) {
                const float *p = x + (i * c + ch) * hw, *g = gy + (i * c + ch) * hw;
                const float *r = ro ? ro + (i * c + ch) * hw : NULL;
                float *o = gx + (i * c + ch) * hw;
                if (!training) {
                    for (int64_t q = 0; q < hw; q++) o[q] = a * (r ? crl_relu_grad(g[q], r[q]) : g[q]);
                    continue;
                }
                if (r) {
                    for (int64_t q = 0; q < hw; q++)
                        o[q] = a * crl_relu_grad(g[q], r[q]) + b0 + b1 * (p[q] - fm);
                } else {
                    for (int64_t q = 0; q < hw; q++) o[q] = a * g[q] + b0 + b1 * (p[q] - fm);
                }
            }
        }
    }
    return CRL_OK;
}

/* ---- the layers' checks, shared with the CUDA kernels ----------------------------------
 * Each validates one layer's inputs on `device` before anything is written,
 * so both backends give one set of messages. On the CPU an input may be
 * plain or blocked (in its own layout, or in's for a gradient); on CUDA it
 * is plain. The output sizes worked out on the way come back. */

int crl_layer_f32(const crl_tensor *t, int layout, int device, const char *func, const char *name)
{
    return need_f32_as(t, layout, device, func, name);
}

int crl_relu_backward_check(const crl_tensor *grad_out, const crl_tensor *out, int device, const char *func)
{
    if (out == NULL) return crl_fail(CRL_ERR_ARG, func, "argument '%s' is NULL", "out");
    int rc = crl_layer_f32(out, out->layout, device, func, "out");
    if (rc == CRL_OK) rc = crl_layer_f32(grad_out, out->layout, device, func, "grad_out");
    if (rc) return rc;
    if (crl_tensor_numel(grad_out) != crl_tensor_numel(out))
        return crl_fail(CRL_ERR_SHAPE, func, "grad_out %s and out %s differ", crl_shape(grad_out), crl_shape(out));
    return same_blocked_shape(out, grad_out, func, "out", "grad_out");
}

int crl_pool2d_check(int64_t *oh, int64_t *ow, const crl_tensor *in, const crl_pool2d_params *p, int device,
                     const char *func)
{
    if (in == NULL) return crl_fail(CRL_ERR_ARG, func, "argument '%s' is NULL", "in");
    int rc = crl_layer_f32(in, in->layout, device, func, "in");
    if (rc) return rc;
    if (p == NULL) return crl_fail(CRL_ERR_ARG, func, "argument 'p' is NULL");
    if (in->ndim != 4) return crl_fail(CRL_ERR_SHAPE, func, "in %s must be (N, C, H, W)", crl_shape(in));
    if (p->kernel_h < 1 || p->kernel_w < 1 || p->stride_h < 1 || p->stride_w < 1 || p->pad_h < 0 ||
        p->pad_w < 0 || p->pad_h * 2 > p->kernel_h || p->pad_w * 2 > p->kernel_w)
        return crl_fail(CRL_ERR_ARG, func, "kernel (%d, %d), stride (%d, %d), pad (%d, %d): kernel and stride "
                        "must be >= 1 and pad at most half the kernel", p->kernel_h, p->kernel_w, p->stride_h,
                        p->stride_w, p->pad_h, p->pad_w);
    if (in->sizes[2] + 2 * p->pad_h < p->kernel_h || in->sizes[3] + 2 * p->pad_w < p->kernel_w)
        return crl_fail(CRL_ERR_SHAPE, func, "kernel %dx%d is larger than the padded input %s", p->kernel_h,
                        p->kernel_w, crl_shape(in));
    *oh = crl_pool_out_size(in->sizes[2], p->kernel_h, p->stride_h, p->pad_h);
    *ow = crl_pool_out_size(in->sizes[3], p->kernel_w, p->stride_w, p->pad_w);
    return CRL_OK;
}

int crl_maxpool2d_backward_check(const crl_tensor *grad_out, const crl_tensor *indices, const crl_tensor *in,
                                 int device, const char *func)
{
    if (indices == NULL) return crl_fail(CRL_ERR_ARG, func, "argument '%s' is NULL", "indices");
    if (in == NULL) return crl_fail(CRL_ERR_ARG, func, "argument '%s' is NULL", "in");
    int rc = crl_layer_f32(in, in->layout, device, func, "in");
    if (rc == CRL_OK) rc = crl_layer_f32(grad_out, in->layout, device, func, "grad_out");
    if (rc) return rc;
    if (indices->dtype != CRL_INT32 || !crl_tensor_is_contiguous(indices) || indices->device != device ||
        crl_tensor_numel(indices) != crl_tensor_numel(grad_out) ||
        grad_out->ndim != 4 || in->ndim != 4 || grad_out->sizes[0] * grad_out->sizes[1] != in->sizes[0] * in->sizes[1])
        return crl_fail(CRL_ERR_SHAPE, func, "grad_out %s, indices %s and in %s do not fit",
                        crl_shape(grad_out), crl_shape(indices), crl_shape(in));
    return CRL_OK;
}

int crl_avgpool2d_backward_check(int64_t *oh, int64_t *ow, const crl_tensor *grad_out, const crl_tensor *in,
                                 const crl_pool2d_params *p, int device, const char *func)
{
    if (in == NULL) return crl_fail(CRL_ERR_ARG, func, "argument '%s' is NULL", "in");
    int rc = crl_layer_f32(in, in->layout, device, func, "in");
    if (rc == CRL_OK) rc = crl_layer_f32(grad_out, in->layout, device, func, "grad_out");
    if (rc == CRL_OK) rc = crl_pool2d_check(oh, ow, in, p, device, func);
    if (rc) return rc;
    if (grad_out->ndim != 4 || grad_out->sizes[0] != in->sizes[0] || grad_out->sizes[1] != in->sizes[1] ||
        grad_out->sizes[2] != *oh || grad_out->sizes[3] != *ow)
        return crl_fail(CRL_ERR_SHAPE, func, "grad_out %s does not match the pooled shape of in %s",
                        crl_shape(grad_out), crl_shape(in));
    return CRL_OK;
}

static int need_nchw(const crl_tensor *t, int device, const char *func, const char *name)
{
    int rc = crl_layer_f32(t, t ? t->layout : 0, device, func, name);
    if (rc == CRL_OK && t->ndim != 4)
        rc = crl_fail(CRL_ERR_SHAPE, func, "'%s' %s must be (N, C, H, W)", name, crl_shape(t));
    return rc;
}

int crl_global_avgpool2d_check(const crl_tensor *grad_out, const crl_tensor *in, int device, const char *func)
{
    int rc = need_nchw(in, device, func, "in");
    if (rc == CRL_OK && grad_out) rc = need_f32_on(grad_out, device, func, "grad_out");
    if (rc) return rc;
    if (grad_out && crl_tensor_numel(grad_out) != in->sizes[0] * in->sizes[1])
        return crl_fail(CRL_ERR_SHAPE, func, "grad_out %s must hold (N, C) for in %s", crl_shape(grad_out),
                        crl_shape(in));
    return CRL_OK;
}

int crl_shortcut_pad_check(int64_t *oh, int64_t *ow, const crl_tensor *grad_out, const crl_tensor *in,
                           int out_channels, int stride, int device, const char *func)
{
    int rc = need_nchw(in, device, func, "in");
    if (rc) return rc;
    if (stride < 1 || out_channels < in->sizes[1])
        return crl_fail(CRL_ERR_ARG, func, "stride %d must be >= 1 and out_channels %d at least in's %lld", stride,
                        out_channels, (long long)in->sizes[1]);
    *oh = crl_shortcut_out_size(in->sizes[2], stride);
    *ow = crl_shortcut_out_size(in->sizes[3], stride);
    if (grad_out == NULL) return CRL_OK;
    if ((rc = crl_layer_f32(grad_out, in->layout, device, func, "grad_out"))) return rc;
    if (grad_out->ndim != 4 || grad_out->sizes[0] != in->sizes[0] || grad_out->sizes[2] != *oh ||
        grad_out->sizes[3] != *ow)
        return crl_fail(CRL_ERR_SHAPE, func, "grad_out %s does not fit in %s with stride %d", crl_shape(grad_out),
                        crl_shape(in), stride);
    return CRL_OK;
}

/* ---- ReLU ------------------------------------------------------------------------ */

int crl_cpu_relu_forward(crl_tensor *out, const crl_tensor *in)
{
    CHECK_TENSOR(out, "out");
    CHECK_TENSOR(in, "in");
    int rc = need_f32_as(in, in->layout, CRL_CPU, __func__, "in");
    if (rc) return rc;
    if (out != in && (rc = crl_prepare_layout(out, CRL_FLOAT32, CRL_CPU, in->ndim, in->sizes, in->layout))) return rc;
    int64_t n = crl_tensor_span(in); /* blocked: the padding lanes stay zero */
    const float *x = crl_tensor_data(in);
    float *y = crl_tensor_data(out);
#pragma omp parallel for schedule(static) if (n > 32768)
    for (int64_t i = 0; i < n; i++) y[i] = crl_relu(x[i]);
    return CRL_OK;
}

int crl_cpu_relu_backward(crl_tensor *grad_in, const crl_tensor *grad_out, const crl_tensor *out)
{
    CHECK_TENSOR(grad_in, "grad_in");
    int rc = crl_relu_backward_check(grad_out, out, CRL_CPU, __func__);
    if (rc) return rc;
    int64_t n = crl_tensor_span(out);
    if (grad_in != grad_out &&
        (rc = crl_prepare_layout(grad_in, CRL_FLOAT32, CRL_CPU, out->ndim, out->sizes, out->layout)))
        return rc;
    const float *g = crl_tensor_data(grad_out), *y = crl_tensor_data(out);
    float *gx = crl_tensor_data(grad_in);
#pragma omp parallel for schedule(static) if (n > 32768)
    for (int64_t i = 0; i < n; i++) gx[i] = crl_relu_grad(g[i], y[i]);
    return CRL_OK;
}

/* ---- pooling ------------------------------------------------------------------------ */

/* Plane pl = n * C + c of a 4-d tensor, plain or blocked: the offset of its
 * element (0, 0) and the distance between neighbouring elements. Lets the
 * per-plane loops (pooling) read and write either layout. */
static int64_t plane_at(const crl_tensor *t, int64_t pl, int64_t *step)
{
    int64_t c = t->sizes[1], hw = t->sizes[2] * t->sizes[3];
    if (t->layout == CRL_LAYOUT_PLAIN) {
        *step = 1;
        return pl * hw;
    }
    *step = t->layout;
    return crl_blocked_offset(pl / c, pl % c, 0, c, hw, t->layout);
}

int crl_cpu_maxpool2d_forward(crl_tensor *out, crl_tensor *indices, const crl_tensor *in,
                          const crl_pool2d_params *p)
{
    CHECK_TENSOR(out, "out");
    CHECK_TENSOR(indices, "indices");
    int64_t oh = 0, ow = 0;
    int rc = crl_pool2d_check(&oh, &ow, in, p, CRL_CPU, __func__);
    if (rc) return rc;
    int64_t osz[4] = {in->sizes[0], in->sizes[1], oh, ow};
    if ((rc = crl_prepare_layout(out, CRL_FLOAT32, CRL_CPU, 4, osz, in->layout)) ||
        (rc = crl_prepare(indices, CRL_INT32, CRL_CPU, 4, osz)))
        return rc;
    if (out->layout != CRL_LAYOUT_PLAIN) memset(crl_tensor_data(out), 0, (size_t)crl_tensor_span(out) * 4);
    int64_t planes = in->sizes[0] * in->sizes[1], h = in->sizes[2], w = in->sizes[3];
    const float *x = crl_tensor_data(in);
    float *y0 = crl_tensor_data(out);
    int32_t *ix = crl_tensor_data(indices);
#pragma omp parallel for schedule(static)
    for (int64_t pl = 0; pl < planes; pl++) {
        int64_t es, os;
        const float *src = x + plane_at(in, pl, &es);
        float *y = y0 + plane_at(out, pl, &os);
        for (int64_t oy = 0; oy < oh; oy++)
            for (int64_t ox = 0; ox < ow; ox++)
                y[(oy * ow + ox) * os] = crl_maxpool_window(&ix[(pl * oh + oy) * ow + ox], src, es, h, w, oy, ox, p);
    }
    return CRL_OK;
}

int crl_cpu_maxpool2d_backward(crl_tensor *grad_in, const crl_tensor *grad_out, const crl_tensor *indices,
                           const crl_tensor *in)
{
    CHECK_TENSOR(grad_in, "grad_in");
    int rc = crl_maxpool2d_backward_check(grad_out, indices, in, CRL_CPU, __func__);
    if (rc) return rc;
    if ((rc = crl_prepare_layout(grad_in, CRL_FLOAT32, CRL_CPU, 4, in->sizes, in->layout))) return rc;
    int64_t planes = in->sizes[0] * in->sizes[1], hw = in->sizes[2] * in->sizes[3];
    int64_t ohw = grad_out->sizes[2] * grad_out->sizes[3];
    const float *g0 = crl_tensor_data(grad_out);
    const int32_t *ix = crl_tensor_data(indices);
    float *gx = crl_tensor_data(grad_in);
    memset(gx, 0, (size_t)crl_tensor_span(grad_in) * sizeof(float));
#pragma omp parallel for schedule(static)
    for (int64_t pl = 0; pl < planes; pl++) {
        int64_t es, gs;
        float *dst = gx + plane_at(grad_in, pl, &es);
        const float *g = g0 + plane_at(grad_out, pl, &gs);
        for (int64_t q = 0; q < ohw; q++) {
            int32_t a = ix[pl * ohw + q];
            if (a >= 0 && a < hw) dst[a * es] += g[q * gs];
        }
    }
    return CRL_OK;
}

int crl_cpu_avgpool2d_forward(crl_tensor *out, const crl_tensor *in, const crl_pool2d_params *p)
{
    CHECK_TENSOR(out, "out");
    int64_t oh = 0, ow = 0;
    int rc = crl_pool2d_check(&oh, &ow, in, p, CRL_CPU, __func__);
    if (rc) return rc;
    int64_t osz[4] = {in->sizes[0], in->sizes[1], oh, ow};
    if ((rc = crl_prepare_layout(out, CRL_FLOAT32, CRL_CPU, 4, osz, in->layout))) return rc;
    if (out->layout != CRL_LAYOUT_PLAIN) memset(crl_tensor_data(out), 0, (size_t)crl_tensor_span(out) * 4);
    int64_t planes = in->sizes[0] * in->sizes[1], h = in->sizes[2], w = in->sizes[3];
    const float *x = crl_tensor_data(in);
    float *y0 = crl_tensor_data(out);
#pragma omp parallel for schedule(static)
    for (int64_t pl = 0; pl < planes; pl++) {
        int64_t es, os;
        const float *src = x + plane_at(in, pl, &es);
        float *y = y0 + plane_at(out, pl, &os);
        for (int64_t oy = 0; oy < oh; oy++)
            for (int64_t ox = 0; ox < ow; ox++) y[(oy * ow + ox) * os] = crl_avgpool_window(src, es, h, w, oy, ox, p);
    }
    return CRL_OK;
}

/* Gathers each input's gradient from the outputs that cover it (the CUDA
 * kernel does the same, per element, with no atomics). */
int crl_cpu_avgpool2d_backward(crl_tensor *grad_in, const crl_tensor *grad_out, const crl_tensor *in,
                           const crl_pool2d_params *p)
{
    CHECK_TENSOR(grad_in, "grad_in");
    int64_t oh = 0, ow = 0;
    int rc = crl_avgpool2d_backward_check(&oh, &ow, grad_out, in, p, CRL_CPU, __func__);
    if (rc) return rc;
    if ((rc = crl_prepare_layout(grad_in, CRL_FLOAT32, CRL_CPU, 4, in->sizes, in->layout))) return rc;
    int64_t planes = in->sizes[0] * in->sizes[1], h = in->sizes[2], w = in->sizes[3];
    const float *g0 = crl_tensor_data(grad_out);
    float *gx = crl_tensor_data(grad_in);
    if (grad_in->layout != CRL_LAYOUT_PLAIN) memset(gx, 0, (size_t)crl_tensor_span(grad_in) * sizeof(float));
#pragma omp parallel for schedule(static)
    for (int64_t pl = 0; pl < planes; pl++) {
        int64_t es, gs;
        float *dst = gx + plane_at(grad_in, pl, &es);
        const float *g = g0 + plane_at(grad_out, pl, &gs);
        for (int64_t iy = 0; iy < h; iy++)
            for (int64_t jx = 0; jx < w; jx++)
                dst[(iy * w + jx) * es] = crl_avgpool_grad_at(g, gs, oh, ow, h, w, iy, jx, p);
    }
    return CRL_OK;
}

/* ---- dropout -------------------------------------------------------------------------- */

int crl_cpu_dropout_forward(crl_tensor *out, crl_tensor *mask, const crl_tensor *in, float p,
                        crl_generator *g)
{
    CHECK_TENSOR(out, "out");
    CHECK_TENSOR(mask, "mask");
    int rc = need_f32(in, __func__, "in");
    if (rc) return rc;
    if (!(p >= 0 && p < 1)) return crl_fail(CRL_ERR_ARG, __func__, "p = %g must be in [0, 1)", p);
    if (g == NULL) g = crl_generator_default();
    if ((rc = crl_prepare(mask, CRL_FLOAT32, CRL_CPU, in->ndim, in->sizes))) return rc;
    if (out != in && (rc = crl_prepare(out, CRL_FLOAT32, CRL_CPU, in->ndim, in->sizes))) return rc;
    int64_t n = crl_tensor_numel(in);
    const float *x = crl_tensor_data(in);
    float *y = crl_tensor_data(out), *m = crl_tensor_data(mask);
    float keep = 1.0f / (1.0f - p);
    uint64_t base = g->offset, seed = g->seed;
    uint32_t threshold = crl_dropout_threshold(p);
#pragma omp parallel for schedule(static) if (n > 65536)
    for (int64_t blk = 0; blk < (n + 3) / 4; blk++) {
        uint32_t w[4];
        crl_philox_block(w, seed, base + (uint64_t)blk);
        for (int j = 0; j < 4 && blk * 4 + j < n; j++) {
            int64_t i = blk * 4 + j;
            m[i] = crl_dropout_mask(w[j], threshold, keep);
            y[i] = x[i] * m[i];
        }
    }
    g->offset += (uint64_t)((n + 3) / 4);
    return CRL_OK;
}

/* ---- global average pooling and the padding shortcut, plain or blocked ------------------ */

/* Offset of (n, c, q) with q = h * W + w, in a plain or blocked tensor. */
static inline int64_t at(const blk_shape *s, int64_t n, int64_t c, int64_t q)
{
    if (s->b == 0) return (n * s->c + c) * s->hw + q;
    return crl_blocked_offset(n, c, q, s->c, s->hw, s->b);
}

static void shape_any(blk_shape *s, const crl_tensor *t)
{
    if (t->layout != CRL_LAYOUT_PLAIN) {
        blk_shape_of(s, t);
        return;
    }
    s->n = t->sizes[0];
    s->c = t->sizes[1];
    s->hw = t->sizes[2] * t->sizes[3];
    s->b = 0;
    s->cb = s->c;
}

int crl_cpu_global_avgpool2d_forward(crl_tensor *out, const crl_tensor *in)
{
    CHECK_TENSOR(out, "out");
    int rc = crl_global_avgpool2d_check(NULL, in, CRL_CPU, __func__);
    if (rc) return rc;
    int64_t osz[2] = {in->sizes[0], in->sizes[1]};
    if ((rc = crl_prepare(out, CRL_FLOAT32, CRL_CPU, 2, osz))) return rc;
    blk_shape s;
    shape_any(&s, in);
    int64_t step = s.b ? s.b : 1; /* (n, c, q) is at(n, c, 0) + q * step in both layouts */
    const float *x = crl_tensor_data(in);
    float *y = crl_tensor_data(out);
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < s.n; i++)
        for (int64_t c = 0; c < s.c; c++) y[i * s.c + c] = crl_plane_mean(x + at(&s, i, c, 0), step, s.hw);
    return CRL_OK;
}

int crl_cpu_global_avgpool2d_backward(crl_tensor *grad_in, const crl_tensor *grad_out, const crl_tensor *in)
{
    CHECK_TENSOR(grad_in, "grad_in");
    int rc = crl_global_avgpool2d_check(grad_out, in, CRL_CPU, __func__);
    if (rc) return rc;
    if ((rc = crl_prepare_layout(grad_in, CRL_FLOAT32, CRL_CPU, 4, in->sizes, in->layout))) return rc;
    if (in->layout != CRL_LAYOUT_PLAIN) memset(crl_tensor_data(grad_in), 0, (size_t)crl_tensor_span(in) * 4);
    blk_shape s;
    shape_any(&s, in);
    const float *g = crl_tensor_data(grad_out);
    float *gx = crl_tensor_data(grad_in);
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < s.n; i++)
        for (int64_t c = 0; c < s.c; c++) {
            float v = g[i * s.c + c] / (float)s.hw;
            for (int64_t q = 0; q < s.hw; q++) gx[at(&s, i, c, q)] = v;
        }
    return CRL_OK;
}

/* The one loop of both passes: out channel co = ci + pad, pixel (y*s, x*s). */
static void shortcut_walk(float *big, float *small, const blk_shape *sb, const blk_shape *ss, int64_t pad,
                          int64_t ow, int64_t w, int stride, int to_big)
{
    int64_t oh = sb->hw / ow;
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < ss->n; i++)
        for (int64_t c = 0; c < ss->c; c++)
            for (int64_t y = 0; y < oh; y++)
                for (int64_t x = 0; x < ow; x++) {
                    int64_t ob = at(sb, i, c + pad, y * ow + x), os = at(ss, i, c, y * stride * w + x * stride);
                    if (to_big) big[ob] = small[os];
                    else small[os] = big[ob];
                }
}

int crl_cpu_shortcut_pad_forward(crl_tensor *out, const crl_tensor *in, int out_channels, int stride)
{
    CHECK_TENSOR(out, "out");
    int64_t oh = 0, ow = 0;
    int rc = crl_shortcut_pad_check(&oh, &ow, NULL, in, out_channels, stride, CRL_CPU, __func__);
    if (rc) return rc;
    int64_t osz[4] = {in->sizes[0], out_channels, oh, ow};
    if ((rc = crl_prepare_layout(out, CRL_FLOAT32, CRL_CPU, 4, osz, in->layout))) return rc;
    if ((rc = crl_tensor_fill(out, 0))) return rc;
    blk_shape sb, ss;
    shape_any(&sb, out);
    shape_any(&ss, in);
    shortcut_walk(crl_tensor_data(out), crl_tensor_data(in), &sb, &ss,
                  crl_shortcut_channel_offset(out_channels, in->sizes[1]), ow, in->sizes[3], stride, 1);
    return CRL_OK;
}

int crl_cpu_shortcut_pad_backward(crl_tensor *grad_in, const crl_tensor *grad_out, const crl_tensor *in, int stride)
{
    CHECK_TENSOR(grad_in, "grad_in");
    CHECK_TENSOR(grad_out, "grad_out");
    int64_t oh = 0, ow = 0;
    int rc = crl_shortcut_pad_check(&oh, &ow, grad_out, in, (int)grad_out->sizes[1], stride, CRL_CPU, __func__);
    if (rc) return rc;
    if ((rc = crl_prepare_layout(grad_in, CRL_FLOAT32, CRL_CPU, 4, in->sizes, in->layout))) return rc;
    if ((rc = crl_tensor_fill(grad_in, 0))) return rc;
    blk_shape sb, ss;
    shape_any(&sb, grad_out);
    shape_any(&ss, in);
    shortcut_walk((float *)crl_tensor_data(grad_out), crl_tensor_data(grad_in), &sb, &ss,
                  crl_shortcut_channel_offset(grad_out->sizes[1], in->sizes[1]), ow, in->sizes[3], stride, 0);
    return CRL_OK;
}
