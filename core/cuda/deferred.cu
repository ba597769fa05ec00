/* cuda/deferred.cu -- the per-device record of errors found by kernels
 * (deferred.cuh says why and who checks it). */
#include <mutex>
#include <string.h>

#include "deferred.cuh"

namespace {
std::mutex lock;
crl_gpu_deferred *records[16];
uint32_t calls;

const char *op_name(int op)
{
    switch (op) {
    case CRL_DEFER_LOSS_FORWARD: return "crl_loss_forward";
    case CRL_DEFER_LOSS_FORWARD_INTO: return "crl_loss_forward_into";
    case CRL_DEFER_LOSS_BACKWARD: return "crl_loss_backward";
    default: return "crl_batch_stats";
    }
}

/* The current device's record, made (and cleared to all ones) on first use. */
int record(crl_gpu_deferred **rec, const char *func)
{
    int dev = 0;
    CRL_GPU_TRY(cudaGetDevice(&dev), func);
    if (dev < 0 || dev >= 16) return crl_fail(CRL_ERR_DEVICE, func, "CUDA device %d is out of range", dev);
    cudaStream_t s = crl_gpu_stream();
    if (s == 0) return CRL_ERR_DEVICE;
    std::lock_guard<std::mutex> g(lock);
    if (records[dev] == NULL) {
        int rc = crl_gpu_no_capture(func, "making the device's error record (a cudaMalloc; run a step eagerly first)");
        if (rc) return rc;
        void *p = NULL;
        CRL_GPU_TRY(cudaMalloc(&p, sizeof(crl_gpu_deferred)), func);
        CRL_GPU_TRY(cudaMemsetAsync(p, 0xff, sizeof(crl_gpu_deferred), s), func);
        records[dev] = (crl_gpu_deferred *)p;
    }
    *rec = records[dev];
    return CRL_OK;
}
} // namespace

extern "C" int crl_gpu_defer_begin(crl_gpu_defer_ctx *ctx, int op, int64_t n, int64_t k, const char *func)
{
    int rc = record(&ctx->rec, func);
    if (rc) return rc;
    ctx->n = n;
    ctx->k = k;
    ctx->op = op;
    {
        std::lock_guard<std::mutex> g(lock);
        if (++calls == 0) calls = 1; /* 0 means "no launch of mine" to crl_gpu_defer_check */
        ctx->call = calls;
    }
    return CRL_OK;
}

extern "C" int crl_gpu_defer_check(uint32_t call, const char *func)
{
    int rc = crl_gpu_no_capture(func, "reading the record of bad labels or confidences back to the host");
    if (rc) return rc;
    crl_gpu_deferred *rec = NULL;
    if ((rc = record(&rec, func))) return rc;
    cudaStream_t s = crl_gpu_stream();
    crl_gpu_deferred h;
    CRL_GPU_TRY(cudaMemcpyAsync(&h, rec, sizeof h, cudaMemcpyDeviceToHost, s), func);
    CRL_GPU_TRY(cudaStreamSynchronize(s), func);
    if (h.key == ~0ull) return CRL_OK;
    CRL_GPU_TRY(cudaMemsetAsync(rec, 0xff, sizeof h, s), func);
    long long i = (long long)(h.key >> 33);
    int what = (int)((h.key >> 32) & 1);
    uint32_t payload = (uint32_t)h.key;
    if (what == CRL_DEFER_LABEL && call != 0 && h.call == call)
        return crl_fail(CRL_ERR_ARG, func, "label %d of example %lld (0-based) is outside [0, %lld) for logits "
                        "(%lld, %lld)", (int)(int32_t)payload, i, (long long)h.k, (long long)h.n, (long long)h.k);
    if (what == CRL_DEFER_LABEL)
        return crl_fail(CRL_ERR_ARG, func, "label %d of example %lld (0-based) is outside [0, %lld) for logits "
                        "(%lld, %lld), found on the GPU by an earlier %s (its losses and gradients for that "
                        "example are NaN; a batch's statistics were left out)", (int)(int32_t)payload, i,
                        (long long)h.k, (long long)h.n, (long long)h.k, op_name(h.op));
    float conf;
    memcpy(&conf, &payload, sizeof conf);
    return crl_fail(CRL_ERR_ARG, func, "the confidence of example %lld (0-based) is %g: its logits hold NaN or "
                    "infinite values (logits (%lld, %lld)), found on the GPU by an earlier %s (that batch was "
                    "left out)", i, (double)conf, (long long)h.n, (long long)h.k, op_name(h.op));
}
