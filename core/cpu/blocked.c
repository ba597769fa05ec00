/* cpu/blocked.c -- the layers between convolutions on blocked (nChw16c /
 * nChw8c) tensors: batch normalisation (with the fused ReLU), and the
 * channel-block loops they share. Each (image, channel block) slab is
 * contiguous (HW, B), so the inner loops run over the B lanes of one
 * vector. Work is split over (image, block) pairs, and per-channel sums are
 * reduced over the images in a fixed order: results do not depend on the
 * thread count's scheduling, only on the pairs. Called by the public
 * functions in nn.c after their checks. Assumes B is 8 or 16 (a multiple
 * of the 8-float vectors below). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <pthread.h>

#include "../internal.h"
#include "blocked.h"
#include "../math/bn.h"

/* The per-slab partial sums live in one grow-only buffer, so a training
 * step allocates nothing here; callers hold the lock while they use it. */
static pthread_mutex_t scratch_lock = PTHREAD_MUTEX_INITIALIZER;
static double *scratch;
static size_t scratch_n;

static double *scratch_get(size_t n, const char *func)
{
    pthread_mutex_lock(&scratch_lock);
    if (n > scratch_n) {
        double *p = realloc(scratch, n * sizeof(double));
        if (p == NULL) {
            pthread_mutex_unlock(&scratch_lock);
            crl_fail(CRL_ERR_NOMEM, func, "out of host memory for %zu partial sums", n);
            return NULL;
        }
        scratch = p;
        scratch_n = n;
    }
    return scratch;
}

static void scratch_put(void) { pthread_mutex_unlock(&scratch_lock); }

/* (n, cb) slab of a blocked tensor: HW * B floats. */
static inline const float *slab(const float *base, int64_t i, int64_t k, const blk_shape *s)
{
    return base + (i * s->cb + k) * s->hw * s->b;
}

void crl_bn_channel(float *scale, float *shift, float *rm, float *rv, float *sm, float *si, int64_t c, int training,
                    double mean, double var, double count, float momentum, float eps, const float *w,
                    const float *b)
{
    if (training) {
        if (rm) rm[c] = (float)crl_bn_running(rm[c], momentum, mean);
        if (rv) rv[c] = (float)crl_bn_running(rv[c], momentum, crl_bn_unbiased(var, count));
    } else {
        mean = rm[c];
        var = rv[c];
    }
    double invstd = crl_bn_invstd(var, eps);
    if (sm) {
        sm[c] = (float)mean;
        si[c] = (float)invstd;
    }
    *scale = (float)(invstd * (w ? w[c] : 1.0f));
    *shift = (float)((b ? b[c] : 0.0f) - mean * invstd * (w ? w[c] : 1.0f));
}

void blk_shape_of(blk_shape *s, const crl_tensor *t)
{
    s->n = t->sizes[0];
    s->c = t->sizes[1];
    s->hw = t->sizes[2] * t->sizes[3];
    s->b = t->layout;
    s->cb = crl_layout_blocks(s->c, s->b);
}

#define INLINE static inline __attribute__((always_inline))

/* The per-slab kernels work on 8-float vectors (GCC/clang vector
 * extensions: AVX2 registers, two per lane group with B = 16), with the
 * ReLU mask applied by a compare-and-and rather than a branch: a branch per
 * element on the sign of random data costs more than the whole pass. The
 * OpenMP loops over slabs are in the callers. */
typedef float v8f __attribute__((vector_size(32), aligned(4)));
typedef int32_t v8i __attribute__((vector_size(32), aligned(4)));
#define V8(p) (*(const v8f *)(p))

/* g where r > 0, else 0 */
INLINE v8f masked(v8f g, v8f r) { return (v8f)((v8i)g & (r > 0.0f)); }

/* Slab ik: part1 = sum of (x - shift), part2 = sum of (x - shift)^2 per
 * lane (one read for both moments); shift: see blk_batchnorm_forward. */
INLINE void slab_moments_v(double *part1, double *part2, const float *x, const float *shift, const blk_shape *s,
                           int64_t ik)
{
    const float *p = slab(x, ik / s->cb, ik % s->cb, s), *m = shift + (ik % s->cb) * s->b;
    for (int64_t v = 0; v < s->b; v += 8) {
        v8f a1 = {0}, a2 = {0}, mv = V8(m + v);
        for (int64_t q = 0; q < s->hw; q++) {
            v8f d = V8(p + q * s->b + v) - mv;
            a1 += d;
            a2 += d * d;
        }
        for (int l = 0; l < 8; l++) {
            part1[ik * s->b + v + l] = a1[l];
            part2[ik * s->b + v + l] = a2[l];
        }
    }
}

static void slab_moments(double *part1, double *part2, const float *x, const float *shift, const blk_shape *s)
{
#pragma omp parallel for schedule(static)
    for (int64_t ik = 0; ik < s->n * s->cb; ik++) slab_moments_v(part1, part2, x, shift, s, ik);
}

static void normalise(float *y, const float *x, const float *scale, const float *shift, int relu, const blk_shape *s)
{
#pragma omp parallel for schedule(static)
    for (int64_t ik = 0; ik < s->n * s->cb; ik++) {
        const float *p = slab(x, ik / s->cb, ik % s->cb, s);
        float *o = y + (p - x);
        for (int64_t v = 0; v < s->b; v += 8) {
            v8f sc = V8(scale + (ik % s->cb) * s->b + v), sh = V8(shift + (ik % s->cb) * s->b + v);
            for (int64_t q = 0; q < s->hw; q++) {
                v8f r = V8(p + q * s->b + v) * sc + sh;
                if (relu) r = masked(r, r);
                *(v8f *)(o + q * s->b + v) = r;
            }
        }
    }
}

/* Slab ik: sums of g and g (x - mean), the ReLU's mask applied. */
static void grad_sums(double *part, double *part_gx, const float *gy, const float *x, const float *ro,
                      const float *fm, const blk_shape *s)
{
#pragma omp parallel for schedule(static)
    for (int64_t ik = 0; ik < s->n * s->cb; ik++) {
        int64_t off = slab(x, ik / s->cb, ik % s->cb, s) - x;
        const float *p = x + off, *g = gy + off, *r = ro ? ro + off : NULL;
        for (int64_t v = 0; v < s->b; v += 8) {
            v8f ag = {0}, agx = {0}, mv = V8(fm + (ik % s->cb) * s->b + v);
            for (int64_t q = 0; q < s->hw; q++) {
                v8f gq = V8(g + q * s->b + v);
                if (r) gq = masked(gq, V8(r + q * s->b + v));
                ag += gq;
                agx += gq * (V8(p + q * s->b + v) - mv);
            }
            for (int l = 0; l < 8; l++) {
                part[ik * s->b + v + l] = ag[l];
                part_gx[ik * s->b + v + l] = agx[l];
            }
        }
    }
}

static void grad_input(float *gx, const float *gy, const float *x, const float *ro, const float *fm, const float *ca,
                       const float *cb0, const float *cb1, const blk_shape *s)
{
#pragma omp parallel for schedule(static)
    for (int64_t ik = 0; ik < s->n * s->cb; ik++) {
        int64_t off = slab(x, ik / s->cb, ik % s->cb, s) - x, k0 = (ik % s->cb) * s->b;
        const float *p = x + off, *g = gy + off, *r = ro ? ro + off : NULL;
        float *o = gx + off;
        for (int64_t v = 0; v < s->b; v += 8) {
            v8f a = V8(ca + k0 + v), b0 = V8(cb0 + k0 + v), b1 = V8(cb1 + k0 + v), mv = V8(fm + k0 + v);
            for (int64_t q = 0; q < s->hw; q++) {
                v8f gq = V8(g + q * s->b + v);
                if (r) gq = masked(gq, V8(r + q * s->b + v));
                *(v8f *)(o + q * s->b + v) = a * gq + b0 + b1 * (V8(p + q * s->b + v) - mv);
            }
        }
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
    /* (3 cp floats of scale, shift, mean fit in 2 cp doubles) */
    double *part = scratch_get((size_t)(2 * s->n * cp + 4 * cp), "crl_batchnorm_forward");
    if (part == NULL) return CRL_ERR_NOMEM;
    float *scale = (float *)(part + 2 * s->n * cp + 2 * cp);
    double *part2 = part + s->n * cp, *tot = part2 + s->n * cp, *mean = tot + cp;
    float *shift = scale + cp, *fmean = shift + cp;
    double m_count = (double)(s->n * s->hw);
    if (training) {
        /* fmean holds the shift here: each channel's mean over the first
         * image, close to the batch mean, so the one-pass moments below
         * do not cancel (E[d^2] - E[d]^2 with d = x - shift) */
        for (int64_t c = 0; c < cp; c++) {
            const float *p0 = slab(x, 0, c / b, s) + c % b;
            double acc = 0;
            for (int64_t q = 0; q < s->hw; q++) acc += p0[q * b];
            fmean[c] = s->hw ? (float)(acc / (double)s->hw) : 0.0f;
        }
        slab_moments(part, part2, x, fmean, s);
        reduce_images(tot, part, s);
        reduce_images(mean, part2, s); /* mean: the shifted second moment for now */
        for (int64_t c = 0; c < cp; c++) {
            double m1 = tot[c] / m_count;
            tot[c] = mean[c] / m_count - m1 * m1; /* tot: the biased variance */
            if (tot[c] < 0) tot[c] = 0;
            mean[c] = fmean[c] + m1;
        }
    }
    for (int64_t c = 0; c < cp; c++) {
        if (c >= s->c) {
            scale[c] = shift[c] = 0.0f; /* padding lanes stay zero */
            continue;
        }
        crl_bn_channel(&scale[c], &shift[c], rm, rv, sm, si, c, training, training ? mean[c] : 0, training ? tot[c] : 0,
                       m_count, momentum, eps, w, bias);
    }
    normalise(y, x, scale, shift, relu, s);
    scratch_put();
    return CRL_OK;
}

int blk_batchnorm_backward(float *gx, float *gw, float *gb, const float *gy, const float *x, const float *w,
                           const float *sm, const float *si, int training, const float *ro, const blk_shape *s)
{
    int64_t cp = s->cb * s->b;
    double *part = scratch_get((size_t)(2 * s->n * cp + 4 * cp), "crl_batchnorm_backward");
    if (part == NULL) return CRL_ERR_NOMEM;
    float *coef = (float *)(part + 2 * s->n * cp + 2 * cp);
    double *part_gx = part + s->n * cp, *sum_g = part_gx + s->n * cp, *sum_gx = sum_g + cp;
    float *fm = coef, *ca = coef + cp, *cb0 = ca + cp, *cb1 = cb0 + cp;
    for (int64_t c = 0; c < cp; c++) fm[c] = c < s->c ? sm[c] : 0.0f;
    grad_sums(part, part_gx, gy, x, ro, fm, s);
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
    if (gx) grad_input(gx, gy, x, ro, fm, ca, cb0, cb1, s);
    scratch_put();
    return CRL_OK;
}
