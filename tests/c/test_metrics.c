/* test_metrics.c -- crl_batch_stats against a plain loop over the softmax
 * probabilities (the rule the trainer's evaluate() used): top-1, top-k,
 * the ECE bins, on logits with many ties, K < 5, confidence exactly 1;
 * sums over many batches; and the failures (NaN logits, bad labels, a
 * stats tensor reset for other bins) that must add nothing. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "crlab.h"
#include "tap.h"

typedef struct {
    double n, top1, topk, bin_n[32], bin_conf[32], bin_acc[32];
} ref_stats;

/* The reference: softmax, then first maximum, rank by (value, index). */
static void ref_add(ref_stats *r, const crl_tensor *logits, const int32_t *y, int nbins)
{
    int64_t n = logits->sizes[0], k = logits->sizes[1];
    crl_tensor *p = crl_tensor_new(CRL_FLOAT32, CRL_CPU, 0, NULL);
    crl_tensor_softmax(p, logits, 1);
    const float *pp = crl_tensor_data(p);
    for (int64_t i = 0; i < n; i++) {
        const float *row = pp + i * k;
        float best = -1, py = row[y[i]];
        int64_t arg = 0, above = 0;
        for (int64_t j = 0; j < k; j++) {
            if (row[j] > best) best = row[j], arg = j;
            if (row[j] > py || (row[j] == py && j < y[i])) above++;
        }
        int hit = arg == y[i];
        r->top1 += hit;
        r->topk += above < (k < 5 ? k : 5);
        int b = (int)floor((double)best * nbins);
        if (b > nbins - 1) b = nbins - 1;
        r->bin_n[b] += 1;
        r->bin_conf[b] += best;
        r->bin_acc[b] += hit;
    }
    r->n += (double)n;
    crl_tensor_free(p);
}

static double ref_ece(const ref_stats *r, int nbins)
{
    double e = 0;
    for (int b = 0; b < nbins; b++) e += fabs(r->bin_acc[b] - r->bin_conf[b]) / r->n;
    return e;
}

static crl_tensor *labels_of(const int32_t *y, int64_t n)
{
    crl_tensor *t = crl_tensor_new(CRL_INT32, CRL_CPU, 1, &n);
    memcpy(crl_tensor_data(t), y, (size_t)n * sizeof *y);
    return t;
}

/* Integer logits in -2..2: ties everywhere. */
static crl_tensor *tied_logits(int64_t n, int64_t k, unsigned *seed, int32_t *y)
{
    int64_t s[2] = {n, k};
    crl_tensor *z = crl_tensor_new(CRL_FLOAT32, CRL_CPU, 2, s);
    float *d = crl_tensor_data(z);
    for (int64_t i = 0; i < n * k; i++) d[i] = (float)(rand_r(seed) % 5 - 2);
    for (int64_t i = 0; i < n; i++) y[i] = rand_r(seed) % (int)k;
    return z;
}

static int fails_with(int rc, const char *needle)
{
    return rc != CRL_OK && strstr(crl_last_error(), needle) != NULL;
}

static void test_against_reference(void)
{
    const int nbins = 15;
    unsigned seed = 7;
    int64_t ks[4] = {10, 3, 1, 7};
    for (int c = 0; c < 4; c++) {
        int64_t k = ks[c];
        crl_tensor *stats = crl_tensor_new(CRL_FLOAT32, CRL_CPU, 0, NULL);
        crl_batch_stats_reset(stats, nbins);
        ref_stats r;
        memset(&r, 0, sizeof r);
        int good = 1;
        for (int batch = 0; batch < 5; batch++) {
            int32_t y[40];
            crl_tensor *z = tied_logits(40, k, &seed, y);
            if (c == 3) { /* confident rows: confidence exactly 1 */
                float *d = crl_tensor_data(z);
                for (int64_t i = 0; i < 40; i += 3) d[i * k + (i % k)] = 50;
            }
            crl_tensor *yt = labels_of(y, 40);
            good &= crl_batch_stats(stats, z, yt, NULL, nbins) == CRL_OK;
            ref_add(&r, z, y, nbins);
            crl_tensor_free(z);
            crl_tensor_free(yt);
        }
        crl_batch_summary s;
        good &= crl_batch_stats_summary(&s, stats) == CRL_OK;
        double v[CRL_STAT_BINS + 3 * 15];
        good &= crl_batch_stats_read(v, stats, CRL_STAT_BINS + 3 * nbins) == CRL_OK;
        int bins_equal = 1;
        for (int b = 0; b < nbins; b++)
            bins_equal &= v[CRL_STAT_BINS + 3 * b] == r.bin_n[b] &&
                          fabs(v[CRL_STAT_BINS + 3 * b + 1] - r.bin_conf[b]) < 1e-12 &&
                          v[CRL_STAT_BINS + 3 * b + 2] == r.bin_acc[b];
        ok(good && s.batches == 5 && s.examples == 200 && s.top1 == r.top1 / r.n && s.topk == r.topk / r.n &&
           bins_equal && fabs(s.ece - ref_ece(&r, nbins)) < 1e-12,
           "K = %lld, tied logits: top-1 %.3f, top-%d %.3f, ECE %.4f and every bin match the reference loop",
           (long long)k, s.top1, k < 5 ? (int)k : 5, s.topk, s.ece);
        if (c == 3)
            ok(r.bin_n[14] > 0 && v[CRL_STAT_BINS + 3 * 14] == r.bin_n[14],
               "confidence exactly 1.0 lands in the last bin (%g examples)", r.bin_n[14]);
        if (k == 1)
            ok(s.top1 == 1 && s.topk == 1 && s.ece == 0, "K = 1: every example is a hit with confidence 1");
        crl_tensor_free(stats);
    }
}

static void test_loss_and_sums(void)
{
    crl_tensor *stats = crl_tensor_new(CRL_FLOAT32, CRL_CPU, 0, NULL);
    crl_batch_stats_reset(stats, 0);
    int64_t n = 100, two[2] = {100, 3};
    crl_tensor *z = crl_tensor_new(CRL_FLOAT32, CRL_CPU, 2, two);
    crl_tensor *y = crl_tensor_new(CRL_INT32, CRL_CPU, 1, &n);
    crl_tensor *l = crl_tensor_new(CRL_FLOAT32, CRL_CPU, 1, &n);
    crl_tensor_fill(l, 0.1);
    double want = 0, per = (double)0.1f * 100;
    for (int i = 0; i < 3000; i++) {
        crl_batch_stats(stats, z, y, l, 0);
        want += per;
    }
    crl_batch_summary s;
    crl_batch_stats_summary(&s, stats);
    ok(s.examples == 300000 && fabs(s.loss * 300000 - want) / want < 1e-13,
       "3000 batches: the loss sum keeps double precision in the float32 pair (rel. error %.1e)",
       fabs(s.loss * 300000 - want) / want);
    ok(s.top1 == 1 && s.nbins == 0 && isnan(s.ece), "all-zero logits with label 0: all top-1 (first maximum); "
       "no bins, no ECE");
    crl_tensor_put(l, 17, NAN);
    crl_batch_stats(stats, z, y, l, 0);
    crl_batch_stats(stats, z, y, l, 0);
    crl_batch_stats_summary(&s, stats);
    ok(s.nan_batch == 3001 && isnan(s.loss), "a NaN loss marks its batch (3001, the first one) and the mean");
    crl_tensor *empty = crl_tensor_new(CRL_FLOAT32, CRL_CPU, 0, NULL);
    crl_batch_stats_reset(empty, 15);
    crl_batch_stats_summary(&s, empty);
    ok(s.examples == 0 && isnan(s.top1) && isnan(s.loss) && isnan(s.ece), "no examples: NaN, not a division trap");
    crl_tensor_free(empty);
    crl_tensor_free(stats);
    crl_tensor_free(z);
    crl_tensor_free(y);
    crl_tensor_free(l);
}

static void test_errors(void)
{
    crl_tensor *stats = crl_tensor_new(CRL_FLOAT32, CRL_CPU, 0, NULL);
    crl_batch_stats_reset(stats, 15);
    int64_t two[2] = {4, 6}, n = 4;
    crl_tensor *z = crl_tensor_new(CRL_FLOAT32, CRL_CPU, 2, two);
    int32_t yv[4] = {0, 1, 2, 3};
    crl_tensor *y = labels_of(yv, 4);
    crl_batch_stats(stats, z, y, NULL, 15);
    double before[CRL_STAT_BINS + 45], after[CRL_STAT_BINS + 45];
    crl_batch_stats_read(before, stats, CRL_STAT_BINS + 45);

    crl_tensor_put(z, 2 * 6 + 4, NAN);
    ok(fails_with(crl_batch_stats(stats, z, y, NULL, 15),
                  "confidence of example 2 (0-based) is nan: its logits hold NaN or infinite values (logits (4, 6), "
                  "labels (4))"), "a NaN logit: %s", crl_last_error());
    crl_tensor_put(z, 2 * 6 + 4, INFINITY);
    ok(fails_with(crl_batch_stats(stats, z, y, NULL, 15), "logits hold NaN or infinite"), "an infinite logit too");
    crl_tensor_put(z, 2 * 6 + 4, 0);
    yv[1] = 6;
    crl_tensor *yb = labels_of(yv, 4);
    ok(fails_with(crl_batch_stats(stats, z, yb, NULL, 15), "label 6 of example 1 (0-based) is outside [0, 6)"),
       "a label out of range: %s", crl_last_error());
    ok(fails_with(crl_batch_stats(stats, z, y, NULL, 10), "were reset for 15 bins, not 10"),
       "nbins other than the reset's: %s", crl_last_error());
    crl_tensor *l = crl_tensor_new(CRL_FLOAT32, CRL_CPU, 1, &n);
    ok(fails_with(crl_batch_stats(stats, z, y, z, 15), "loss must be the float32 (N) per-example losses"),
       "a loss of the wrong shape: %s", crl_last_error());
    ok(fails_with(crl_batch_stats(z, z, y, l, 15), "stats must be a contiguous float32"),
       "logits as stats: %s", crl_last_error());
    ok(fails_with(crl_batch_stats_reset(stats, 300), "nbins = 300 must be in 0..256"), "300 bins: %s",
       crl_last_error());
    crl_batch_stats_read(after, stats, CRL_STAT_BINS + 45);
    ok(memcmp(before, after, sizeof before) == 0, "failed calls added nothing (with bins)");
    crl_tensor_free(stats);
    crl_tensor_free(z);
    crl_tensor_free(y);
    crl_tensor_free(yb);
    crl_tensor_free(l);
}

int main(void)
{
    test_against_reference();
    test_loss_and_sums();
    test_errors();
    return done_testing();
}
