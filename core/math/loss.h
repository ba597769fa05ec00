/* math/loss.h -- the per-row arithmetic of the classification losses
 * (cpu/loss.c states the formulas), shared by the CPU kernels and the CUDA
 * kernels of cuda/loss.cu, so the CPU tests cover what the GPU computes.
 *
 * A row's statistics come from two passes over its K logits: the first
 * takes the maxima (over all j, and over j != y) and the sum of the logits,
 * the second the sums of exp(z_j - max). The CPU runs each pass as one
 * loop; the GPU splits a row over the 32 lanes of a warp and merges the
 * lanes' partial results with the same functions (maxima merge exactly,
 * the sums in another order). Everything is in double, and the shift by
 * the maximum stays apart from log s: z_j - m is exact for float logits
 * of one magnitude, where m + log s would round away log s (equal logits
 * of 1e16 would lose log 3). */
#ifndef CRLAB_MATH_LOSS_H
#define CRLAB_MATH_LOSS_H

#include <math.h>
#include <stdint.h>

#include "../crlab.h"
#include "hd.h"

CRL_HD double crl_logaddexp(double a, double b)
{
    if (a == -INFINITY) return b;
    if (b == -INFINITY) return a;
    double m = a > b ? a : b;
    return m + log1p(exp(-fabs(a - b)));
}

/* First pass: m = max_j z_j, mo = max_{j != y} z_j, zsum = sum_j z_j. */
typedef struct {
    double m, mo, zsum;
} crl_loss_pass1;

CRL_HD crl_loss_pass1 crl_loss_pass1_init(void)
{
    crl_loss_pass1 a;
    a.m = -INFINITY;
    a.mo = -INFINITY;
    a.zsum = 0;
    return a;
}

CRL_HD void crl_loss_pass1_add(crl_loss_pass1 *a, double v, int is_label)
{
    a->zsum += v;
    if (v > a->m) a->m = v;
    if (!is_label && v > a->mo) a->mo = v;
}

CRL_HD void crl_loss_pass1_merge(crl_loss_pass1 *a, const crl_loss_pass1 *b)
{
    a->zsum += b->zsum;
    if (b->m > a->m) a->m = b->m;
    if (b->mo > a->mo) a->mo = b->mo;
}

/* Second pass: s = sum_j exp(z_j - m), so = sum_{j != y} exp(z_j - mo);
 * the sums merge by addition. A -inf logit adds exp(-inf) = 0 to so even
 * when mo is -inf too (every other logit -inf: so = 0, S = 0). */
CRL_HD void crl_loss_pass2_add(double *s, double *so, const crl_loss_pass1 *a, double v, int is_label)
{
    *s += exp(v - a->m);
    if (!is_label && v != -INFINITY) *so += exp(v - a->mo);
}

/* The per-row quantities every loss needs; lse = m + log_sum. */
typedef struct {
    double m;       /* max_j z_j */
    double log_sum; /* log sum_j exp(z_j - m) */
    double log_py;  /* z_y - lse */
    double log_s;   /* log sum_{j != y} p_j (-inf when K = 1) */
    double zmean;   /* m - (1/K) sum_j z_j, for label smoothing */
} crl_loss_stats;

CRL_HD crl_loss_stats crl_loss_stats_of(const crl_loss_pass1 *a, double s, double so, double zy, int64_t k)
{
    crl_loss_stats r;
    r.m = a->m;
    r.log_sum = log(s);
    r.log_py = (zy - a->m) - r.log_sum;
    r.log_s = k > 1 ? (a->mo - a->m) + (log(so) - r.log_sum) : -INFINITY;
    r.zmean = a->m - a->zsum / (double)k;
    return r;
}

/* log p_j of a logit of the row */
CRL_HD double crl_loss_log_p(const crl_loss_stats *r, double zj)
{
    return (zj - r->m) - r->log_sum;
}

/* Both passes over one row z[j * zs] with label y, as one loop each. */
CRL_HD crl_loss_stats crl_loss_row_stats(const float *z, int64_t zs, int64_t k, int32_t y)
{
    crl_loss_pass1 a = crl_loss_pass1_init();
    for (int64_t j = 0; j < k; j++) crl_loss_pass1_add(&a, z[j * zs], j == y);
    double s = 0, so = 0;
    for (int64_t j = 0; j < k; j++) crl_loss_pass2_add(&s, &so, &a, z[j * zs], j == y);
    return crl_loss_stats_of(&a, s, so, z[y * zs], k);
}

/* log(alpha + S) for CRL (alpha 0 and beta 1 for NLLR). */
CRL_HD double crl_loss_log_as(const crl_loss_stats *r, double alpha)
{
    return crl_logaddexp(alpha > 0 ? log(alpha) : -INFINITY, r->log_s);
}

/* The row's loss. */
CRL_HD double crl_loss_row_value(const crl_loss_stats *r, const crl_loss_spec *spec, int64_t k)
{
    double log_py = r->log_py;
    (void)k;
    switch (spec->kind) {
    case CRL_LOSS_CE: {
        /* (1 - e)(lse - z_y) + e (lse - mean z); the smoothing term only
         * with e > 0: 0 * inf is NaN for a -inf logit */
        double e = spec->smoothing;
        return -(1 - e) * log_py + (e > 0 ? e * (r->zmean + r->log_sum) : 0.0);
    }
    case CRL_LOSS_NLLR:
        return -log_py + r->log_s;
    case CRL_LOSS_CRL: {
        double log_a = spec->alpha > 0 ? log((double)spec->alpha) : -INFINITY;
        return spec->beta * (-log_py + crl_logaddexp(log_a, r->log_s));
    }
    default: {
        double s = exp(r->log_s);
        return -pow(s, (double)spec->gamma) * log_py;
    }
    }
}

/* The gradient of a row, given its statistics and the upstream factor up
 * (grad_output times 1/N for the mean): element j != y is
 * crl_loss_grad_elem(g, z_j), element y is g->at_label. */
typedef struct {
    int kind;
    crl_loss_stats r;
    double up;      /* CE: up; focal: up * w */
    double q_off;   /* CE: e / K */
    double f;       /* CRL, NLLR: up beta (alpha + 1) */
    double log_as;  /* CRL, NLLR: log(alpha + S) */
    double at_label;
} crl_loss_grad_row;

CRL_HD crl_loss_grad_row crl_loss_grad_of(const crl_loss_stats *r, const crl_loss_spec *spec, int64_t k, double up)
{
    crl_loss_grad_row g;
    g.kind = spec->kind;
    g.r = *r;
    g.up = up;
    g.q_off = 0;
    g.f = 0;
    g.log_as = 0;
    double s = exp(r->log_s);
    if (spec->kind == CRL_LOSS_CE) {
        double e = spec->smoothing;
        g.q_off = e / (double)k;
        g.at_label = up * (-s + e - g.q_off);
    } else if (spec->kind == CRL_LOSS_NLLR || spec->kind == CRL_LOSS_CRL) {
        double alpha = spec->kind == CRL_LOSS_CRL ? spec->alpha : 0.0;
        double beta = spec->kind == CRL_LOSS_CRL ? spec->beta : 1.0;
        g.log_as = crl_loss_log_as(r, alpha);
        g.f = up * beta * (alpha + 1.0);
        g.at_label = -g.f * exp(r->log_s - g.log_as);
    } else {
        double gam = spec->gamma, log_py = r->log_py, py = exp(log_py);
        /* p log p -> 0 as p -> 0 (a -inf label logit) */
        double w = pow(s, gam) - (s > 0 && gam > 0 && py > 0 ? gam * pow(s, gam - 1) * py * log_py : 0);
        g.up = up * w;
        g.at_label = -up * w * s;
    }
    return g;
}

CRL_HD double crl_loss_grad_elem(const crl_loss_grad_row *g, double zj)
{
    double log_p = crl_loss_log_p(&g->r, zj);
    switch (g->kind) {
    case CRL_LOSS_CE: return g->up * (exp(log_p) - g->q_off);
    case CRL_LOSS_NLLR:
    case CRL_LOSS_CRL: return g->f * exp(log_p - g->log_as);
    default: return g->up * exp(log_p);
    }
}

#endif
