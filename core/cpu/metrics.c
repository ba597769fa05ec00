/* cpu/metrics.c -- classification statistics summed over batches where they
 * are computed: examples, loss, top-1, top-k (k = min(5, K)) and the bins
 * of the expected calibration error, and the one place that turns the sums
 * into accuracies and ECE.
 *
 * The rules, once:
 *  - Ranks come from the logits (softmax is monotone, so this is the order
 *    of the probabilities without their float32 rounding). The rank of the
 *    label y is the number of classes j with z_j > z_y, or z_j == z_y and
 *    j < y: equal values rank by lower index first, as argmax's "first
 *    maximum". Top-1 is rank 0, top-k is rank < k.
 *  - The confidence is the largest softmax probability, computed as
 *    crl_tensor_softmax does (a log-sum-exp in double, rounded to float), so
 *    it is that op's row maximum, bit for bit. Bin b of nbins holds
 *    confidences in [b / nbins, (b + 1) / nbins); 1.0 goes to the last bin.
 *  - ECE = sum_b |correct_b - confidence_b| / n, where correct_b and
 *    confidence_b are the bin's sums: the same as sum_b |acc_b - conf_b| n_b / n.
 *
 * Each entry of stats (S, 2) float32 is a pair: value = stats[i][0] +
 * stats[i][1], a float and the rounding error it leaves, refreshed on each
 * addition from a double sum. That keeps about 48 bits, so counts are exact
 * to 2^48 and an epoch's loss sum loses nothing a double would keep, in a
 * float32 tensor any backend can hold. A batch is validated and summed in
 * double first and added only when all of it is good. The per-row rules
 * and the pair are math/metrics.h, shared with the CUDA kernels. */
#include <math.h>

#include "../internal.h"
#include "../math/metrics.h"
#include "cpu.h"

enum { STATS_MAX_BINS = CRL_STATS_MAX_BINS };

static int64_t stats_rows(int nbins) { return CRL_STAT_BINS + 3 * (int64_t)nbins; }

int crl_check_stats_nbins(int nbins, const char *func)
{
    if (nbins < 0 || nbins > STATS_MAX_BINS)
        return crl_fail(CRL_ERR_ARG, func, "nbins = %d must be in 0..%d", nbins, STATS_MAX_BINS);
    return CRL_OK;
}

/* stats must be the (CRL_STAT_BINS + 3 nbins, 2) float32 tensor that
 * crl_batch_stats_reset made. */
int crl_check_stats(const crl_tensor *stats, int nbins, int device, const char *func)
{
    if (stats == NULL) return crl_fail(CRL_ERR_ARG, func, "argument 'stats' is NULL");
    int rc = crl_require_device(stats, device, func, "stats");
    if (rc) return rc;
    if (stats->dtype != CRL_FLOAT32 || stats->ndim != 2 || stats->sizes[1] != 2 ||
        stats->sizes[0] < CRL_STAT_BINS || (stats->sizes[0] - CRL_STAT_BINS) % 3 != 0 ||
        !crl_tensor_is_contiguous(stats))
        return crl_fail(CRL_ERR_SHAPE, func, "stats must be a contiguous float32 (%d + 3 nbins, 2) tensor "
                        "made by crl_batch_stats_reset, got %s %s", CRL_STAT_BINS,
                        crl_dtype_name(stats->dtype), crl_shape(stats));
    if (nbins >= 0 && stats->sizes[0] != stats_rows(nbins))
        return crl_fail(CRL_ERR_SHAPE, func, "stats %s were reset for %lld bins, not %d", crl_shape(stats),
                        (long long)(stats->sizes[0] - CRL_STAT_BINS) / 3, nbins);
    return CRL_OK;
}

int crl_cpu_batch_stats_reset(crl_tensor *stats, int nbins)
{
    CHECK_TENSOR(stats, "stats");
    int rc = crl_check_stats_nbins(nbins, __func__);
    if (rc == CRL_OK) rc = crl_require_cpu(stats, __func__, "stats");
    int64_t size[2] = {stats_rows(nbins), 2};
    if (rc == CRL_OK) rc = crl_prepare(stats, CRL_FLOAT32, stats->device, 2, size);
    if (rc == CRL_OK) rc = crl_tensor_fill(stats, 0);
    return rc;
}

static double entry(const float *e) { return crl_stats_entry(e); }

static void add(float *e, double x) { crl_stats_add(e, x); }

int crl_check_batch_stats(const crl_tensor *stats, const crl_tensor *logits, const crl_tensor *labels,
                          const crl_tensor *loss, int nbins, int device, const char *func)
{
    int rc = crl_check_stats_nbins(nbins, func);
    if (rc == CRL_OK) rc = crl_check_stats(stats, nbins, device, func);
    if (rc) return rc;
    if ((rc = crl_check_logits_labels(logits, labels, device, func))) return rc;
    if (loss) {
        if ((rc = crl_require_device(loss, device, func, "loss"))) return rc;
        if (loss->dtype != CRL_FLOAT32 || loss->ndim != 1 || loss->sizes[0] != logits->sizes[0])
            return crl_fail(CRL_ERR_SHAPE, func, "loss must be the float32 (N) per-example losses of "
                            "logits %s, got %s %s", crl_shape(logits), crl_dtype_name(loss->dtype),
                            crl_shape(loss));
    }
    if (stats == logits || stats == labels || stats == loss)
        return crl_fail(CRL_ERR_ARG, func, "stats must be a tensor of its own");
    return CRL_OK;
}

int crl_cpu_batch_stats(crl_tensor *stats, const crl_tensor *logits, const crl_tensor *labels,
                    const crl_tensor *loss, int nbins)
{
    int rc = crl_check_batch_stats(stats, logits, labels, loss, nbins, CRL_CPU, __func__);
    if (rc) return rc;
    int64_t n = logits->sizes[0], k = logits->sizes[1];
    if (n == 0) {
        add(crl_tensor_data(stats), 1.0); /* CRL_STAT_BATCHES */
        return CRL_OK;
    }
    const float *z = logits->storage->data;
    const int32_t *y = labels->storage->data;
    for (int64_t i = 0; i < n; i++) {
        int32_t c = y[labels->offset + i * labels->strides[0]];
        if (c < 0 || c >= k)
            return crl_fail(CRL_ERR_ARG, __func__, "label %d of example %lld (0-based) is outside [0, %lld) "
                            "for logits %s", c, (long long)i, (long long)k, crl_shape(logits));
    }

    /* the batch in double, added to stats only once all of it is good */
    double top1 = 0, topk = 0, oneoff = 0, norm_sum = 0, loss_sum = 0, bins[3 * STATS_MAX_BINS] = {0};
    for (int64_t i = 0; i < n; i++) {
        int32_t c = y[labels->offset + i * labels->strides[0]];
        crl_stats_row r = crl_stats_row_of(z + logits->offset + i * logits->strides[0], logits->strides[1], k, c,
                                           nbins);
        top1 += r.hit;
        topk += r.topk;
        oneoff += r.oneoff;
        norm_sum += r.norm;
        if (nbins > 0) {
            if (!r.conf_ok)
                return crl_fail(CRL_ERR_ARG, __func__, "the confidence of example %lld (0-based) is %g: its "
                                "logits hold NaN or infinite values (logits %s, labels %s)", (long long)i,
                                (double)r.conf, crl_shape(logits), crl_shape(labels));
            bins[3 * r.bin] += 1;
            bins[3 * r.bin + 1] += r.conf;
            bins[3 * r.bin + 2] += r.hit;
        }
    }
    if (loss) {
        const float *l = loss->storage->data;
        for (int64_t i = 0; i < n; i++) loss_sum += l[loss->offset + i * loss->strides[0]];
    }

    float *s = crl_tensor_data(stats);
    crl_stats_add_batch(s, (double)n, top1, topk, oneoff, norm_sum, loss != NULL, loss_sum);
    for (int b = 0; b < 3 * nbins; b++) add(s + 2 * (CRL_STAT_BINS + b), bins[b]);
    return CRL_OK;
}

int crl_cpu_batch_stats_read(double *values, const crl_tensor *stats, int64_t n)
{
    int rc = crl_check_stats(stats, -1, CRL_CPU, __func__);
    if (rc) return rc;
    if (values == NULL) return crl_fail(CRL_ERR_ARG, __func__, "argument 'values' is NULL");
    if (n != stats->sizes[0])
        return crl_fail(CRL_ERR_SHAPE, __func__, "stats %s hold %lld entries, not %lld", crl_shape(stats),
                        (long long)stats->sizes[0], (long long)n);
    const float *s = crl_tensor_data(stats);
    for (int64_t i = 0; i < n; i++) values[i] = entry(s + 2 * i);
    return CRL_OK;
}

int crl_cpu_batch_stats_summary(crl_batch_summary *out, const crl_tensor *stats)
{
    if (out == NULL) return crl_fail(CRL_ERR_ARG, __func__, "argument 'out' is NULL");
    int rc = crl_check_stats(stats, -1, CRL_CPU, __func__);
    if (rc) return rc;
    const float *s = crl_tensor_data(stats);
    int nbins = (int)((stats->sizes[0] - CRL_STAT_BINS) / 3);
    double n = entry(s + 2 * CRL_STAT_EXAMPLES), nl = entry(s + 2 * CRL_STAT_LOSS_EXAMPLES);
    out->batches = (int64_t)entry(s + 2 * CRL_STAT_BATCHES);
    out->examples = (int64_t)n;
    out->nan_batch = (int64_t)entry(s + 2 * CRL_STAT_NAN_BATCH);
    out->nbins = nbins;
    out->pad_ = 0;
    out->loss = nl > 0 ? entry(s + 2 * CRL_STAT_LOSS_SUM) / nl : NAN;
    out->top1 = n > 0 ? entry(s + 2 * CRL_STAT_TOP1) / n : NAN;
    out->topk = n > 0 ? entry(s + 2 * CRL_STAT_TOPK) / n : NAN;
    out->logit_norm = n > 0 ? entry(s + 2 * CRL_STAT_LOGIT_NORM) / n : NAN;
    out->oneoff = n > 0 ? entry(s + 2 * CRL_STAT_ONEOFF) / n : NAN;
    double ece = 0;
    for (int b = 0; b < nbins; b++) {
        const float *e = s + 2 * (CRL_STAT_BINS + 3 * b);
        ece += fabs(entry(e + 4) - entry(e + 2)) / n;  /* |acc_b - conf_b| n_b / n */
    }
    out->ece = nbins > 0 && n > 0 ? ece : NAN;
    return CRL_OK;
}
