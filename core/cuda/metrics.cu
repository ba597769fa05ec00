/* cuda/metrics.cu -- the batch statistics on the GPU, summed where the
 * logits are, without a read back per batch. One thread per example applies
 * math/metrics.h's row rules (the CPU's) and writes a record; then one block
 * sums the records in a fixed order (each bin by one thread, in example
 * order, as the CPU does) and adds the sums to the stats pairs, each entry
 * by one thread. A batch with a label out of range or a NaN / infinite
 * confidence is left out whole, as the CPU refuses it, and recorded for the
 * next read (deferred.cuh): crl_batch_stats_read and _summary check it. */
#include "common.cuh"
#include "deferred.cuh"

#include <stdio.h>
#include <string.h>

#include "../math/metrics.h"

namespace {

enum { SUM_THREADS = 256 }; /* >= CRL_STATS_MAX_BINS: one thread per bin */

struct Record {
    double norm;  /* the row's logit norm */
    float conf;
    int32_t bin;  /* -1: none */
    int8_t hit, topk, oneoff, bad;
};

__global__ void stats_rows_kernel(Record *rec, const float *z, int64_t z_off, int64_t zs0, int64_t zs1,
                                  const int32_t *y, int64_t y_off, int64_t ys, int64_t n, int64_t k, int nbins,
                                  crl_gpu_defer_ctx defer)
{
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x) {
        int32_t c = y[y_off + i * ys];
        Record o = {0, 0, -1, 0, 0, 0, 1};
        if (c < 0 || c >= k) {
            crl_gpu_defer(defer, i, CRL_DEFER_LABEL, (uint32_t)c);
        } else {
            crl_stats_row r = crl_stats_row_of(z + z_off + i * zs0, zs1, k, c, nbins);
            if (!r.conf_ok) {
                uint32_t bits;
                memcpy(&bits, &r.conf, sizeof bits);
                crl_gpu_defer(defer, i, CRL_DEFER_CONFIDENCE, bits);
            } else {
                o.conf = r.conf;
                o.bin = r.bin;
                o.hit = (int8_t)r.hit;
                o.topk = (int8_t)r.topk;
                o.oneoff = (int8_t)r.oneoff;
                o.norm = r.norm;
                o.bad = 0;
            }
        }
        rec[i] = o;
    }
}

/* The block's total of v, the same on every thread, in a fixed order. */
__device__ double block_sum(double v, double *part)
{
    part[threadIdx.x] = v;
    __syncthreads();
    for (int s = SUM_THREADS / 2; s > 0; s >>= 1) {
        if ((int)threadIdx.x < s) part[threadIdx.x] += part[threadIdx.x + s];
        __syncthreads();
    }
    double total = part[0];
    __syncthreads(); /* part is reused by the next call */
    return total;
}

/* stats (S, 2): the pairs. loss: NULL or the per-example losses. */
__global__ void stats_add_kernel(float *stats, const Record *rec, int64_t n, const float *loss, int64_t l_off,
                                 int64_t ls, int nbins)
{
    __shared__ double part[SUM_THREADS];
    double top1 = 0, topk = 0, oneoff = 0, bad = 0, lsum = 0, nsum = 0;
    for (int64_t i = threadIdx.x; i < n; i += SUM_THREADS) {
        top1 += rec[i].hit;
        topk += rec[i].topk;
        oneoff += rec[i].oneoff;
        bad += rec[i].bad;
    }
    top1 = block_sum(top1, part);
    topk = block_sum(topk, part);
    oneoff = block_sum(oneoff, part);
    bad = block_sum(bad, part);
    if (bad > 0) return; /* the batch is refused, as on the CPU; the record says why */
    if (threadIdx.x == 0) {
        /* in example order on one thread: the CPU's sums, bit for bit */
        for (int64_t i = 0; i < n; i++) nsum += rec[i].norm;
        if (loss)
            for (int64_t i = 0; i < n; i++) lsum += loss[l_off + i * ls];
        crl_stats_add_batch(stats, (double)n, top1, topk, oneoff, nsum, loss != NULL, lsum);
    }
    int b = threadIdx.x;
    if (b < nbins) {
        double count = 0, conf = 0, hits = 0;
        for (int64_t i = 0; i < n; i++) {
            if (rec[i].bin != b) continue;
            count += 1;
            conf += rec[i].conf;
            hits += rec[i].hit;
        }
        float *e = stats + 2 * (CRL_STAT_BINS + 3 * b);
        crl_stats_add(e, count);
        crl_stats_add(e + 2, conf);
        crl_stats_add(e + 4, hits);
    }
}

/* A host copy of stats (the reads' one transfer). */
crl_tensor *host_copy(const crl_tensor *stats)
{
    crl_tensor *h = crl_tensor_new(CRL_FLOAT32, CRL_CPU, stats->ndim, stats->sizes);
    if (h == NULL) return NULL;
    if (crl_tensor_copy(h, stats) != CRL_OK) {
        crl_tensor_free(h);
        return NULL;
    }
    return h;
}

} // namespace

extern "C" int crl_gpu_batch_stats_reset(crl_tensor *stats, int nbins)
{
    static const char *F = "crl_batch_stats_reset";
    if (stats == NULL) return crl_fail(CRL_ERR_ARG, F, "argument 'stats' is NULL");
    int rc = crl_check_stats_nbins(nbins, F);
    if (rc == CRL_OK) rc = crl_require_device(stats, CRL_CUDA, F, "stats");
    int64_t size[2] = {CRL_STAT_BINS + 3 * (int64_t)nbins, 2};
    if (rc == CRL_OK) rc = crl_prepare(stats, CRL_FLOAT32, CRL_CUDA, 2, size);
    if (rc) return rc;
    cudaStream_t s = crl_gpu_stream(); /* 0 (message set) would be the legacy default stream */
    if (s == 0) return CRL_ERR_DEVICE;
    CRL_GPU_TRY(cudaMemsetAsync(crl_tensor_data(stats), 0, (size_t)(size[0] * 2 * sizeof(float)), s), F);
    return CRL_OK;
}

extern "C" int crl_gpu_batch_stats(crl_tensor *stats, const crl_tensor *logits, const crl_tensor *labels,
                                   const crl_tensor *loss, int nbins)
{
    static const char *F = "crl_batch_stats";
    int rc = crl_check_batch_stats(stats, logits, labels, loss, nbins, CRL_CUDA, F);
    if (rc) return rc;
    int64_t n = logits->sizes[0], k = logits->sizes[1];
    crl_gpu_defer_ctx defer;
    if ((rc = crl_gpu_defer_begin(&defer, CRL_DEFER_BATCH_STATS, n, k, F))) return rc;
    Record *rec = NULL;
    if ((rc = crl_gpu_scratch((void **)&rec, (n > 0 ? n : 1) * (int64_t)sizeof(Record), F))) return rc;
    cudaStream_t s = crl_gpu_stream();
    if (n > 0) {
        stats_rows_kernel<<<crl_gpu_blocks(n), CRL_GPU_THREADS, 0, s>>>(
            rec, crl_gpu_base<float>(logits), logits->offset, logits->strides[0], logits->strides[1],
            crl_gpu_base<int32_t>(labels), labels->offset, labels->strides[0], n, k, nbins, defer);
        if ((rc = crl_gpu_launched(F, "stats_rows_kernel"))) return rc;
    }
    stats_add_kernel<<<1, SUM_THREADS, 0, s>>>((float *)crl_tensor_data(stats), rec, n,
                                               loss ? crl_gpu_base<float>(loss) : NULL, loss ? loss->offset : 0,
                                               loss ? loss->strides[0] : 0, nbins);
    return crl_gpu_launched(F, "stats_add_kernel");
}

/* crl_fail writes the buffer crl_last_error reads: the reason is copied first. */
static int stats_read_failed(const crl_tensor *stats, const char *func)
{
    char why[1024];
    snprintf(why, sizeof why, "%s", crl_last_error());
    return crl_fail(CRL_ERR_DEVICE, func, "reading stats %s back: %s", crl_shape(stats), why);
}

extern "C" int crl_gpu_batch_stats_read(double *values, const crl_tensor *stats, int64_t n)
{
    static const char *F = "crl_batch_stats_read";
    int rc = crl_check_stats(stats, -1, CRL_CUDA, F);
    if (rc == CRL_OK) rc = crl_gpu_defer_check(0, F);
    if (rc) return rc;
    crl_tensor *h = host_copy(stats);
    if (h == NULL) return stats_read_failed(stats, F);
    rc = crl_batch_stats_read(values, h, n); /* the CPU's kernel and messages on the copy */
    crl_tensor_free(h);
    return rc;
}

extern "C" int crl_gpu_batch_stats_summary(crl_batch_summary *out, const crl_tensor *stats)
{
    static const char *F = "crl_batch_stats_summary";
    if (out == NULL) return crl_fail(CRL_ERR_ARG, F, "argument 'out' is NULL");
    int rc = crl_check_stats(stats, -1, CRL_CUDA, F);
    if (rc == CRL_OK) rc = crl_gpu_defer_check(0, F);
    if (rc) return rc;
    crl_tensor *h = host_copy(stats);
    if (h == NULL) return stats_read_failed(stats, F);
    rc = crl_batch_stats_summary(out, h);
    crl_tensor_free(h);
    return rc;
}
