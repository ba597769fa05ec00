/* cpu/blocked.c -- the layers between convolutions on blocked (nChw16c /
 * nChw8c) tensors: batch normalisation (with the fused ReLU), and the
 * channel-block loops they share. Each (image, channel block) slab is
 * contiguous (HW, B), so the inner loops run over the B lanes of one
 * vector. Work is split over (image, block) pairs, and per-channel sums are
 * reduced over the images in a fixed order: results do not depend on the
 * thread count's scheduling, only on the pairs. Called by the public
 * functions in nn.c after their checks. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "../internal.h"
#include "blocked.h"

/* (n, cb) slab of a blocked tensor: HW * B floats. */
static inline const float *slab(const float *base, int64_t i, int64_t k, const blk_shape *s)
{
    return base + (i * s->cb + k) * s->hw * s->b;
}

void blk_shape_of(blk_shape *s, const crl_tensor *t)
{
    s->n = t->sizes[0];
    s->c = t->sizes[1];
    s->hw = t->sizes[2] * t->sizes[3];
    s->b = t->layout;
    s->cb = crl_layout_blocks(s->c, s->b);
}

/* part[(i * cb + k) * B + l] = sum over the slab of f(x, l); two kinds:
 * plain sums, and sums of squared deviations from mean[c]. */
static void slab_sums(double *part, const float *x, const float *mean, const blk_shape *s)
{
    int64_t b = s->b;
#pragma omp parallel for schedule(static)
    for (int64_t ik = 0; ik < s->n * s->cb; ik++) {
        const float *p = slab(x, ik / s->cb, ik % s->cb, s);
        float acc[16] = {0}, m[16] = {0};
        if (mean)
            for (int64_t l = 0; l < b; l++) m[l] = mean[(ik % s->cb) * b + l];
        for (int64_t q = 0; q < s->hw; q++)
            for (int64_t l = 0; l < b; l++) {
                float v = mean ? (p[q * b + l] - m[l]) * (p[q * b + l] - m[l]) : p[q * b + l];
                acc[l] += v;
            }
        for (int64_t l = 0; l < b; l++) part[ik * b + l] = acc[l];
    }
}

/* per-channel totals over images, in image order */
static void reduce_images(double *tot, const double *part, const blk_shape *s)
{
    int64_t cp = s->cb * s->b;
    memset(tot, 0, (size_t)cp * sizeof(double));
    for (int64_t i = 0; i < s->n; i++)
        for (int64_t j = 0; j < cp; j++) tot[j] += part[i * cp + j];
}

int blk_batchnorm_forward(float *y, float *sm, float *si, float *rm, float *rv, const float *x, const float *w,
                          const float *bias, int training, float momentum, float eps, int relu, const blk_shape *s)
{
    int64_t cp = s->cb * s->b, b = s->b;
    double *part = malloc((size_t)(s->n * cp + 2 * cp) * sizeof(double));
    float *scale = malloc((size_t)(3 * cp) * sizeof(float));
    if (part == NULL || scale == NULL) {
        free(part);
        free(scale);
        return crl_fail(CRL_ERR_NOMEM, "crl_batchnorm_forward", "out of host memory for the statistics");
    }
    double *tot = part + s->n * cp, *mean = tot + cp;
    float *shift = scale + cp, *fmean = shift + cp;
    double m_count = (double)(s->n * s->hw);
    if (training) {
        slab_sums(part, x, NULL, s);
        reduce_images(tot, part, s);
        for (int64_t c = 0; c < cp; c++) {
            mean[c] = tot[c] / m_count;
            fmean[c] = (float)mean[c];
        }
        slab_sums(part, x, fmean, s);
        reduce_images(tot, part, s);
    }
    for (int64_t c = 0; c < cp; c++) {
        double mu, invstd;
        if (c >= s->c) {
            scale[c] = shift[c] = 0.0f; /* padding lanes stay zero */
            continue;
        }
        if (training) {
            double var = tot[c] / m_count;
            mu = mean[c];
            invstd = 1.0 / sqrt(var + eps);
            if (rm) rm[c] = (float)((1 - momentum) * rm[c] + momentum * mu);
            if (rv) rv[c] = (float)((1 - momentum) * rv[c] + momentum * var * m_count / (m_count - 1));
        } else {
            mu = rm[c];
            invstd = 1.0 / sqrt((double)rv[c] + eps);
        }
        if (sm) {
            sm[c] = (float)mu;
            si[c] = (float)invstd;
        }
        scale[c] = (float)(invstd * (w ? w[c] : 1.0f));
        shift[c] = (float)((bias ? bias[c] : 0.0f) - mu * invstd * (w ? w[c] : 1.0f));
    }
#pragma omp parallel for schedule(static)
    for (int64_t ik = 0; ik < s->n * s->cb; ik++) {
        const float *p = slab(x, ik / s->cb, ik % s->cb, s);
        float *o = y + (p - x);
        const float *sc = scale + (ik % s->cb) * b, *sh = shift + (ik % s->cb) * b;
        for (int64_t q = 0; q < s->hw; q++)
            for (int64_t l = 0; l < b; l++) {
                float v = p[q * b + l] * sc[l] + sh[l];
                o[q * b + l] = relu && !(v > 0.0f) ? 0.0f : v;
            }
    }
    free(part);
    free(scale);
    return CRL_OK;
}

int blk_batchnorm_backward(float *gx, float *gw, float *gb, const float *gy, const float *x, const float *w,
                           const float *sm, const float *si, int training, const float *ro, const blk_shape *s)
{
    int64_t cp = s->cb * s->b, b = s->b;
    double *part = malloc((size_t)(2 * s->n * cp + 2 * cp) * sizeof(double));
    float *coef = malloc((size_t)(4 * cp) * sizeof(float));
    if (part == NULL || coef == NULL) {
        free(part);
        free(coef);
        return crl_fail(CRL_ERR_NOMEM, "crl_batchnorm_backward", "out of host memory for the sums");
    }
    double *part_gx = part + s->n * cp, *sum_g = part_gx + s->n * cp, *sum_gx = sum_g + cp;
    float *fm = coef, *ca = coef + cp, *cb0 = ca + cp, *cb1 = cb0 + cp;
    for (int64_t c = 0; c < cp; c++) fm[c] = c < s->c ? sm[c] : 0.0f;
    /* sums of g and g (x - mean) per slab, the ReLU's mask applied */
#pragma omp parallel for schedule(static)
    for (int64_t ik = 0; ik < s->n * s->cb; ik++) {
        int64_t off = slab(x, ik / s->cb, ik % s->cb, s) - x;
        const float *p = x + off, *g = gy + off, *r = ro ? ro + off : NULL, *m = fm + (ik % s->cb) * b;
        float ag[16] = {0}, agx[16] = {0};
        for (int64_t q = 0; q < s->hw; q++)
            for (int64_t l = 0; l < b; l++) {
                float gq = r && !(r[q * b + l] > 0.0f) ? 0.0f : g[q * b + l];
                ag[l] += gq;
                agx[l] += gq * (p[q * b + l] - m[l]);
            }
        for (int64_t l = 0; l < b; l++) {
            part[ik * b + l] = ag[l];
            part_gx[ik * b + l] = agx[l];
        }
    }
    reduce_images(sum_g, part, s);
    reduce_images(sum_gx, part_gx, s);
    double m_count = (double)(s->n * s->hw);
    for (int64_t c = 0; c < cp; c++) {
        if (c >= s->c) {
            ca[c] = cb0[c] = cb1[c] = 0.0f;
            continue;
        }
        double invstd = si[c], sgx = sum_gx[c] * invstd;
        if (gb) gb[c] += (float)sum_g[c];
        if (gw) gw[c] += (float)sgx;
        double k = (w ? w[c] : 1.0) * invstd / m_count;
        ca[c] = (float)(k * m_count);
        cb0[c] = training ? (float)(-k * sum_g[c]) : 0.0f;
        cb1[c] = training ? (float)(-k * sgx * invstd) : 0.0f;
    }
    if (gx) {
#pragma omp parallel for schedule(static)
        for (int64_t ik = 0; ik < s->n * s->cb; ik++) {
            int64_t off = slab(x, ik / s->cb, ik % s->cb, s) - x, k0 = (ik % s->cb) * b;
            const float *p = x + off, *g = gy + off, *r = ro ? ro + off : NULL;
            float *o = gx + off;
            for (int64_t q = 0; q < s->hw; q++)
                for (int64_t l = 0; l < b; l++) {
                    float gq = r && !(r[q * b + l] > 0.0f) ? 0.0f : g[q * b + l];
                    o[q * b + l] = ca[k0 + l] * gq + cb0[k0 + l] + cb1[k0 + l] * (p[q * b + l] - fm[k0 + l]);
                }
        }
    }
    free(part);
    free(coef);
    return CRL_OK;
}
