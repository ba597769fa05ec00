/* math/metrics.h -- the per-row rules of the batch statistics (cpu/metrics.c
 * states them: rank with ties to the lower index, confidence as
 * crl_tensor_softmax's row maximum, the bin of a confidence) and the
 * float-pair accumulator of a stats entry, shared by the CPU kernel and the
 * CUDA kernels of cuda/metrics.cu. */
#ifndef CRLAB_MATH_METRICS_H
#define CRLAB_MATH_METRICS_H

#include <math.h>
#include <stdint.h>

#include "../crlab.h"
#include "hd.h"

enum { CRL_STATS_MAX_BINS = 256, CRL_STATS_TOPK = 5 };

/* The row's largest softmax probability, as crl_tensor_softmax computes it. */
CRL_HD float crl_stats_confidence(const float *z, int64_t zs, int64_t k, float zmax)
{
    float m = zmax;
    if (m == -INFINITY) m = 0;
    double s = 0;
    for (int64_t j = 0; j < k; j++) s += exp((double)z[j * zs] - m);
    double logz = log(s) + m;
    return (float)exp((double)zmax - logz);
}

/* One example: top-1 and top-k hits (k = min(5, K)), and with nbins > 0
 * its confidence and bin. conf_ok is 0 when the confidence is not in
 * [0, 1] (NaN or infinite logits): the batch is refused then. */
typedef struct {
    int hit, topk, oneoff, conf_ok, bin;
    float conf;
    double norm; /* the row's L2 norm, its squares summed in double in class order */
} crl_stats_row;

CRL_HD crl_stats_row crl_stats_row_of(const float *z, int64_t zs, int64_t k, int32_t y, int nbins)
{
    crl_stats_row r;
    int64_t kk = k < CRL_STATS_TOPK ? k : CRL_STATS_TOPK;
    float zy = z[y * zs], zmax = z[0];
    int64_t rank = 0, amax = 0;
    int nan = 0;
    double sq = 0;
    for (int64_t j = 0; j < k; j++) {
        float v = z[j * zs];
        if (v != v) nan = 1;
        if (v > zmax) {
            zmax = v;
            amax = j; /* the first maximum */
        }
        if (v > zy || (v == zy && j < y)) rank++;
        sq += (double)v * v;
    }
    r.hit = !nan && rank == 0;
    r.topk = !nan && rank < kk;
    r.oneoff = !nan && amax - y <= 1 && y - amax <= 1;
    r.norm = sqrt(sq);
    r.conf = 0;
    r.conf_ok = 1;
    r.bin = -1;
    if (nbins > 0) {
        r.conf = nan ? NAN : crl_stats_confidence(z, zs, k, zmax);
        r.conf_ok = r.conf >= 0 && r.conf <= 1;
        if (r.conf_ok) {
            int b = (int)floor((double)r.conf * nbins);
            r.bin = b >= nbins ? nbins - 1 : b;
        }
    }
    return r;
}

/* A stats entry is a float pair e[0] + e[1] (a float and the rounding error
 * it leaves), refreshed from a double sum on each addition. */
CRL_HD double crl_stats_entry(const float *e) { return (double)e[0] + (double)e[1]; }

CRL_HD void crl_stats_add(float *e, double x)
{
    double s = (double)e[0] + (double)e[1] + x;
    float hi = (float)s;
    e[0] = hi;
    e[1] = (float)(s - (double)hi);
}

/* One batch's counts into the stats entries s (CRL_STAT_* pairs): n
 * examples, top-1, top-k and one-off hits, the sum of the rows' logit
 * norms, and, when has_loss, its loss sum; the first batch whose loss sum
 * is NaN is remembered. */
CRL_HD void crl_stats_add_batch(float *s, double n, double top1, double topk, double oneoff, double norm_sum,
                                int has_loss, double loss_sum)
{
    crl_stats_add(s + 2 * CRL_STAT_BATCHES, 1.0);
    crl_stats_add(s + 2 * CRL_STAT_EXAMPLES, n);
    crl_stats_add(s + 2 * CRL_STAT_TOP1, top1);
    crl_stats_add(s + 2 * CRL_STAT_TOPK, topk);
    crl_stats_add(s + 2 * CRL_STAT_ONEOFF, oneoff);
    crl_stats_add(s + 2 * CRL_STAT_LOGIT_NORM, norm_sum);
    if (has_loss) {
        crl_stats_add(s + 2 * CRL_STAT_LOSS_EXAMPLES, n);
        crl_stats_add(s + 2 * CRL_STAT_LOSS_SUM, loss_sum);
        if (loss_sum != loss_sum && crl_stats_entry(s + 2 * CRL_STAT_NAN_BATCH) == 0)
            crl_stats_add(s + 2 * CRL_STAT_NAN_BATCH, crl_stats_entry(s + 2 * CRL_STAT_BATCHES));
    }
}

#endif
