/* cuda/loss.cu -- the classification losses on the GPU: forward (value to
 * the host, or left in a device tensor for the trainer) and backward. The
 * arithmetic per row is math/loss.h, the CPU's own; here each row is one
 * warp: the 32 lanes take strided columns, and the partial maxima and sums
 * are merged by butterfly shuffles (every lane ends with the same values).
 * The value is the sum of the rows' losses (in double) in a fixed order by
 * one block, so it is deterministic. Labels out of range are found in the
 * kernel (see deferred.cuh: NaN for the row, an error at the next read). */
#include "common.cuh"
#include "deferred.cuh"
#include "../math/loss.h"

namespace {

const unsigned FULL = 0xffffffffu;
enum { WARP = 32, REDUCE_THREADS = 256 };

/* The row's statistics, computed by the 32 lanes of a warp together. */
__device__ crl_loss_stats warp_row_stats(const float *zi, int64_t zs, int64_t k, int32_t c, int lane)
{
    crl_loss_pass1 a = crl_loss_pass1_init();
    for (int64_t j = lane; j < k; j += WARP) crl_loss_pass1_add(&a, zi[j * zs], j == c);
    for (int off = WARP / 2; off > 0; off >>= 1) {
        crl_loss_pass1 b;
        b.m = __shfl_xor_sync(FULL, a.m, off);
        b.mo = __shfl_xor_sync(FULL, a.mo, off);
        b.zsum = __shfl_xor_sync(FULL, a.zsum, off);
        crl_loss_pass1_merge(&a, &b);
    }
    double s = 0, so = 0;
    for (int64_t j = lane; j < k; j += WARP) crl_loss_pass2_add(&s, &so, &a, zi[j * zs], j == c);
    for (int off = WARP / 2; off > 0; off >>= 1) {
        s += __shfl_xor_sync(FULL, s, off);
        so += __shfl_xor_sync(FULL, so, off);
    }
    return crl_loss_stats_of(&a, s, so, zi[c * zs], k);
}

/* The logits (N, K) and labels (N) as the kernels read them. */
struct Rows {
    const float *z;
    int64_t z_off, zs0, zs1;
    const int32_t *y;
    int64_t y_off, ys;
    int64_t n, k;
};

Rows rows_of(const crl_tensor *logits, const crl_tensor *labels)
{
    Rows r;
    r.z = crl_gpu_base<float>(logits);
    r.z_off = logits->offset;
    r.zs0 = logits->strides[0];
    r.zs1 = logits->strides[1];
    r.y = crl_gpu_base<int32_t>(labels);
    r.y_off = labels->offset;
    r.ys = labels->strides[0];
    r.n = logits->sizes[0];
    r.k = logits->sizes[1];
    return r;
}

/* row_loss (N) double, per_example (N) float or NULL. */
__global__ void loss_rows_kernel(double *row_loss, float *per_example, Rows r, crl_loss_spec spec,
                                 crl_gpu_defer_ctx defer)
{
    int lane = threadIdx.x % WARP;
    int64_t warp = ((int64_t)blockIdx.x * blockDim.x + threadIdx.x) / WARP;
    int64_t warps = (int64_t)gridDim.x * blockDim.x / WARP;
    for (int64_t i = warp; i < r.n; i += warps) { /* warp-uniform: every lane takes part in the shuffles */
        int32_t c = r.y[r.y_off + i * r.ys];
        double l;
        if (c < 0 || c >= r.k) {
            if (lane == 0) crl_gpu_defer(defer, i, CRL_DEFER_LABEL, (uint32_t)c);
            l = NAN;
        } else {
            crl_loss_stats st = warp_row_stats(r.z + r.z_off + i * r.zs0, r.zs1, r.k, c, lane);
            l = crl_loss_row_value(&st, &spec, r.k);
        }
        if (lane == 0) {
            row_loss[i] = l;
            if (per_example) per_example[i] = (float)l;
        }
    }
}

/* One block: the sum of row_loss (N) in a fixed order (each thread a
 * strided share, then a tree), divided by N for the mean (NaN when N = 0). */
__global__ void loss_reduce_kernel(double *out_d, float *out_f, const double *row_loss, int64_t n, int mean)
{
    __shared__ double part[REDUCE_THREADS];
    double acc = 0;
    for (int64_t i = threadIdx.x; i < n; i += REDUCE_THREADS) acc += row_loss[i];
    part[threadIdx.x] = acc;
    __syncthreads();
    for (int s = REDUCE_THREADS / 2; s > 0; s >>= 1) {
        if ((int)threadIdx.x < s) part[threadIdx.x] += part[threadIdx.x + s];
        __syncthreads();
    }
    if (threadIdx.x == 0) {
        double v = mean ? (n ? part[0] / (double)n : NAN) : part[0];
        if (out_d) *out_d = v;
        if (out_f) *out_f = (float)v;
    }
}

/* grad (N, K) contiguous; grad_output: NULL, or read at element i (reduction
 * 'none') or 0 through its view. */
__global__ void loss_backward_kernel(float *grad, Rows r, crl_loss_spec spec, const float *go, crl_gpu_view go_view,
                                     int go_per_row, double scale, crl_gpu_defer_ctx defer)
{
    int lane = threadIdx.x % WARP;
    int64_t warp = ((int64_t)blockIdx.x * blockDim.x + threadIdx.x) / WARP;
    int64_t warps = (int64_t)gridDim.x * blockDim.x / WARP;
    for (int64_t i = warp; i < r.n; i += warps) {
        int32_t c = r.y[r.y_off + i * r.ys];
        float *gi = grad + i * r.k;
        if (c < 0 || c >= r.k) {
            if (lane == 0) crl_gpu_defer(defer, i, CRL_DEFER_LABEL, (uint32_t)c);
            for (int64_t j = lane; j < r.k; j += WARP) gi[j] = NAN;
            continue;
        }
        const float *zi = r.z + r.z_off + i * r.zs0;
        double up = scale;
        if (go) up *= (double)go[crl_gpu_offset(go_view, go_per_row ? i : 0)];
        crl_loss_stats st = warp_row_stats(zi, r.zs1, r.k, c, lane);
        crl_loss_grad_row gr = crl_loss_grad_of(&st, &spec, r.k, up);
        for (int64_t j = lane; j < r.k; j += WARP)
            gi[j] = (float)(j == c ? gr.at_label : crl_loss_grad_elem(&gr, zi[j * r.zs1]));
    }
}

/* Everything the CPU checks before work but the label values. */
int check_inputs(const crl_tensor *logits, const crl_tensor *labels, const crl_loss_spec *spec, const char *func)
{
    if (spec == NULL) return crl_fail(CRL_ERR_ARG, func, "argument 'spec' is NULL");
    int rc = crl_check_logits_labels(logits, labels, CRL_CUDA, func);
    if (rc == CRL_OK) rc = crl_check_loss_spec(logits, spec, func);
    return rc;
}

/* The one forward path: the value goes to *host_value (read back, and the
 * labels' check with it) or into value_out's element (no read back). */
int forward(double *host_value, crl_tensor *value_out, crl_tensor *per_example, const crl_tensor *logits,
            const crl_tensor *labels, const crl_loss_spec *spec, int op, const char *func)
{
    int rc = check_inputs(logits, labels, spec, func);
    if (rc == CRL_OK && host_value)
        rc = crl_gpu_no_capture(func, "reading the loss value back to the host (crl_loss_forward_into does not)");
    if (rc) return rc;
    if (per_example == logits || per_example == labels)
        return crl_fail(CRL_ERR_ARG, func, "per_example must be a tensor of its own");
    int64_t n = logits->sizes[0], k = logits->sizes[1], one = 1;
    if (per_example && (rc = crl_prepare(per_example, CRL_FLOAT32, CRL_CUDA, 1, &n)) != CRL_OK) return rc;
    if (value_out && (rc = crl_prepare(value_out, CRL_FLOAT32, CRL_CUDA, 1, &one)) != CRL_OK) return rc;
    crl_gpu_defer_ctx defer;
    if ((rc = crl_gpu_defer_begin(&defer, op, n, k, func))) return rc;
    double *scratch; /* [0]: the value, [1..n]: the rows' losses */
    if ((rc = crl_gpu_scratch((void **)&scratch, (n + 1) * (int64_t)sizeof(double), func))) return rc;
    cudaStream_t s = crl_gpu_stream();
    if (n > 0) {
        loss_rows_kernel<<<crl_gpu_blocks(n * WARP), CRL_GPU_THREADS, 0, s>>>(
            scratch + 1, per_example ? (float *)crl_tensor_data(per_example) : NULL, rows_of(logits, labels), *spec,
            defer);
        if ((rc = crl_gpu_launched(func, "loss_rows_kernel"))) return rc;
    }
    loss_reduce_kernel<<<1, REDUCE_THREADS, 0, s>>>(host_value ? scratch : NULL,
                                                    value_out ? (float *)crl_tensor_data(value_out) : NULL,
                                                    scratch + 1, n, spec->reduction == CRL_REDUCE_MEAN);
    if ((rc = crl_gpu_launched(func, "loss_reduce_kernel"))) return rc;
    if (host_value == NULL) return CRL_OK;
    double v;
    CRL_GPU_TRY(cudaMemcpyAsync(&v, scratch, sizeof v, cudaMemcpyDeviceToHost, s), func);
    if ((rc = crl_gpu_defer_check(defer.call, func))) return rc; /* synchronises */
    *host_value = v;
    return CRL_OK;
}

} // namespace

extern "C" int crl_gpu_loss_forward(double *value, crl_tensor *per_example, const crl_tensor *logits,
                                    const crl_tensor *labels, const crl_loss_spec *spec)
{
    static const char *F = "crl_loss_forward";
    if (value == NULL) return crl_fail(CRL_ERR_ARG, F, "argument 'value' is NULL");
    return forward(value, NULL, per_example, logits, labels, spec, CRL_DEFER_LOSS_FORWARD, F);
}

extern "C" int crl_gpu_loss_forward_into(crl_tensor *value, crl_tensor *per_example, const crl_tensor *logits,
                                         const crl_tensor *labels, const crl_loss_spec *spec)
{
    static const char *F = "crl_loss_forward_into";
    if (value == NULL) return crl_fail(CRL_ERR_ARG, F, "argument 'value' is NULL");
    if (value == logits || value == labels || (per_example != NULL && value == per_example))
        return crl_fail(CRL_ERR_ARG, F, "value must be a tensor of its own");
    return forward(NULL, value, per_example, logits, labels, spec, CRL_DEFER_LOSS_FORWARD_INTO, F);
}

extern "C" int crl_gpu_loss_backward(crl_tensor *grad, const crl_tensor *logits, const crl_tensor *labels,
                                     const crl_tensor *grad_output, const crl_loss_spec *spec)
{
    static const char *F = "crl_loss_backward";
    if (grad == NULL) return crl_fail(CRL_ERR_ARG, F, "argument 'grad' is NULL");
    int rc = check_inputs(logits, labels, spec, F);
    if (rc) return rc;
    if (grad == logits || grad == labels) return crl_fail(CRL_ERR_ARG, F, "grad must be a tensor of its own");
    int64_t n = logits->sizes[0], k = logits->sizes[1];
    if (grad_output && (rc = crl_check_loss_grad_output(grad_output, logits, spec, F))) return rc;
    if ((rc = crl_prepare(grad, CRL_FLOAT32, CRL_CUDA, 2, logits->sizes))) return rc;
    if (n == 0) return CRL_OK;
    crl_gpu_defer_ctx defer;
    if ((rc = crl_gpu_defer_begin(&defer, CRL_DEFER_LOSS_BACKWARD, n, k, F))) return rc;
    crl_gpu_view go_view = {};
    if (grad_output) go_view = crl_gpu_view_of(grad_output);
    double scale = spec->reduction == CRL_REDUCE_MEAN ? 1.0 / (double)(n ? n : 1) : 1.0;
    loss_backward_kernel<<<crl_gpu_blocks(n * WARP), CRL_GPU_THREADS, 0, crl_gpu_stream()>>>(
        (float *)crl_tensor_data(grad), rows_of(logits, labels), *spec,
        grad_output ? crl_gpu_base<float>(grad_output) : NULL, go_view, spec->reduction == CRL_REDUCE_NONE, scale,
        defer);
    return crl_gpu_launched(F, "loss_backward_kernel");
}
