/* cuda/reduce.cu -- the CUDA kernels of the reductions: over all elements
 * (crl_tensor_sum_all, _max_all, _min_all, and crl_tensor_sumsq for
 * gradient clipping; each returns a double to the host, so each ends with
 * a device->host read that waits for the stream) and along one dimension
 * (crl_tensor_sum, _mean, _max, _min with indices, _softmax,
 * _log_softmax).
 *
 * As on the CPU (cpu/reduce.c) sums accumulate in double, and softmax
 * subtracts the row maximum and sums its exponentials in double. The
 * maximum / minimum / arg-extreme / softmax steps are math/reduce.h's,
 * whose combines are associative, so the tree reductions here pick what
 * the CPU's left-to-right loops pick (NaN wins, ties keep the lower
 * index). Sums differ from the CPU's only by the order of double additions.
 * Every reduction uses a fixed launch shape for a given size and no
 * atomics, so results are run-to-run deterministic.
 *
 * Along a dimension the input (any strides) is read as (outer, n, inner) in
 * row-major order through its crl_gpu_view; one warp reduces one output
 * (o, i), its 32 lanes striding over k, then combining with shuffles. */
#include "common.cuh"
#include "ops.cuh"
#include "../math/reduce.h"

namespace {

const unsigned FULL_MASK = 0xffffffffu;

enum { ALL_SUM = 0, ALL_MAX = 1, ALL_MIN = 2 };
enum { ALL_MAX_BLOCKS = 1024 };

/* One element x entering a running all-elements result. */
__device__ __forceinline__ double all_step(int what, double acc, double x)
{
    switch (what) {
    case ALL_SUM: return acc + x;
    default: return crl_extreme_step(what == ALL_MAX, acc, x);
    }
}

/* Two partial results combined. */
__device__ __forceinline__ double all_combine(int what, double acc, double part)
{
    return what == ALL_MAX || what == ALL_MIN ? crl_extreme_step(what == ALL_MAX, acc, part) : acc + part;
}

/* A running maximum or minimum starts from element 0 (entering it twice
 * changes nothing); a sum from 0. */
template <typename T> __device__ __forceinline__ double all_start(int what, const T *x, const crl_gpu_view &v)
{
    return what == ALL_MAX || what == ALL_MIN ? (double)x[crl_gpu_offset(v, 0)] : 0.0;
}

/* The block's threads' results, combined in shared memory; thread 0's
 * return value is the block's. blockDim.x is CRL_GPU_THREADS. */
__device__ double block_combine(int what, double acc)
{
    __shared__ double sh[CRL_GPU_THREADS];
    sh[threadIdx.x] = acc;
    __syncthreads();
    for (int s = CRL_GPU_THREADS / 2; s > 0; s >>= 1) {
        if ((int)threadIdx.x < s) sh[threadIdx.x] = all_combine(what, sh[threadIdx.x], sh[threadIdx.x + s]);
        __syncthreads();
    }
    return sh[0];
}

/* Pass 1: one partial result per block, written to partial[blockIdx.x]. */
template <typename T>
__global__ void all_partial_kernel(double *partial, const T *x, crl_gpu_view v, int64_t n, int what)
{
    double acc = all_start(what, x, v);
    CRL_GPU_LOOP(i, n) acc = all_step(what, acc, (double)x[crl_gpu_offset(v, i)]);
    acc = block_combine(what, acc);
    if (threadIdx.x == 0) partial[blockIdx.x] = acc;
}

/* Pass 2, one block: the partials combined into *result. */
__global__ void all_final_kernel(double *result, const double *partial, int nparts, int what)
{
    double acc = what == ALL_MAX || what == ALL_MIN ? partial[0] : 0.0;
    for (int i = threadIdx.x; i < nparts; i += blockDim.x) acc = all_combine(what, acc, partial[i]);
    acc = block_combine(what, acc);
    if (threadIdx.x == 0) *result = acc;
}

/* Runs both passes over t (n > 0 elements, any strides and dtype) and
 * reads the result back. */
int all_elements_gpu(double *value, const crl_tensor *t, int64_t n, int what, const char *func)
{
    CRL_GPU_STREAM(s);
    int nparts = (int)crl_gpu_blocks(n);
    if (nparts > ALL_MAX_BLOCKS) nparts = ALL_MAX_BLOCKS;
    void *scratch = NULL;
    int rc = crl_gpu_no_capture(func, "reading a reduction of all elements back to the host");
    if (rc) return rc;
    rc = crl_gpu_scratch(&scratch, (int64_t)(nparts + 1) * (int64_t)sizeof(double), func);
    if (rc) return rc;
    double *partial = (double *)scratch, *result = partial + nparts;
    crl_gpu_view v = crl_gpu_view_of(t);
    const void *base = t->storage->data;
    switch (t->dtype) {
    case CRL_FLOAT32:
        all_partial_kernel<float><<<nparts, CRL_GPU_THREADS, 0, s>>>(partial, (const float *)base, v, n, what);
        break;
    case CRL_INT32:
        all_partial_kernel<int32_t><<<nparts, CRL_GPU_THREADS, 0, s>>>(partial, (const int32_t *)base, v, n, what);
        break;
    default:
        all_partial_kernel<uint8_t><<<nparts, CRL_GPU_THREADS, 0, s>>>(partial, (const uint8_t *)base, v, n, what);
        break;
    }
    rc = crl_gpu_launched(func, "all_partial_kernel");
    if (rc) return rc;
    all_final_kernel<<<1, CRL_GPU_THREADS, 0, s>>>(result, partial, nparts, what);
    rc = crl_gpu_launched(func, "all_final_kernel");
    if (rc) return rc;
    double host = 0;
    CRL_GPU_TRY(cudaMemcpyAsync(&host, result, sizeof host, cudaMemcpyDeviceToHost, s), func);
    CRL_GPU_TRY(cudaStreamSynchronize(s), func);
    *value = host;
    return CRL_OK;
}

/* cf. all_elements in cpu/reduce.c: the same checks, in the same order. */
int all_elements(double *value, const crl_tensor *t, int what, const char *func)
{
    int rc = crl_gpu_nonnull(t, func, "t");
    if (rc) return rc;
    if (value == NULL) return crl_fail(CRL_ERR_ARG, func, "argument 'value' is NULL");
    int64_t n = crl_tensor_numel(t);
    if (n == 0 && what != ALL_SUM)
        return crl_fail(CRL_ERR_SHAPE, func, "the tensor %s is empty", crl_shape(t));
    rc = crl_gpu_require(t, func, "t");
    if (rc) return rc;
    if (n == 0) {
        *value = 0.0;
        return CRL_OK;
    }
    return all_elements_gpu(value, t, n, what, func);
}

/* ---- along one dimension ------------------------------------------------------------------- */

/* The (outer, n, inner) split of src along dim and the output shape, after
 * the checks of split_dim in cpu/reduce.c. When an output shares src's
 * storage (must_copy), src is read from a contiguous copy *tmp instead, so
 * no warp reads what another has written. */
struct dim_split {
    int64_t outer, n, inner;
    int out_ndim;
    int64_t out_size[CRL_MAX_DIM];
    crl_gpu_view v; /* of src, or of the copy */
    const float *x; /* its storage base */
    crl_tensor *tmp;
};

int split_dim(dim_split *s, const crl_tensor *src, int dim, int keepdim, int must_copy, const char *func)
{
    int rc = crl_gpu_nonnull(src, func, "src");
    if (rc == CRL_OK) rc = crl_gpu_require(src, func, "src");
    if (rc == CRL_OK) rc = crl_require_dtype(src, CRL_FLOAT32, func, "src");
    if (rc == CRL_OK) rc = crl_normalize_dim(&dim, src->ndim, func, "dim");
    if (rc) return rc;
    crl_reduce_shape(&s->outer, &s->n, &s->inner, &s->out_ndim, s->out_size, src, dim, keepdim);
    s->tmp = NULL;
    if (must_copy && crl_tensor_numel(src) > 0) {
        s->tmp = crl_gpu_contiguous_copy(src, func);
        if (s->tmp == NULL) return CRL_ERR_DEVICE;
        src = s->tmp;
    }
    s->v = crl_gpu_view_of(src);
    s->x = crl_gpu_base<float>(src);
    return CRL_OK;
}

/* Warps of the grid-stride loop over rows: this thread's warp, the count. */
__device__ __forceinline__ int64_t warp_index(void)
{
    return ((int64_t)blockIdx.x * blockDim.x + threadIdx.x) >> 5;
}
__device__ __forceinline__ int64_t warp_count(void) { return ((int64_t)gridDim.x * blockDim.x) >> 5; }

/* Launch shape: one warp per row (CRL_GPU_THREADS is a multiple of 32, so
 * no warp is partial and every lane of a warp runs the same rows). */
static_assert(CRL_GPU_THREADS % 32 == 0, "whole warps");
inline unsigned row_blocks(int64_t rows) { return crl_gpu_blocks(rows * 32); }

/* y[r] = scale * sum_k x(o, k, i), r = o * inner + i. */
__global__ void sum_dim_kernel(float *y, const float *x, crl_gpu_view vx, int64_t outer, int64_t n, int64_t inner,
                               double scale)
{
    const int lane = threadIdx.x & 31;
    const int64_t rows = outer * inner;
    for (int64_t r = warp_index(); r < rows; r += warp_count()) {
        int64_t base = (r / inner) * n * inner + r % inner;
        double acc = 0;
        for (int64_t k = lane; k < n; k += 32) acc += x[crl_gpu_offset(vx, base + k * inner)];
        for (int off = 16; off > 0; off >>= 1) acc += __shfl_down_sync(FULL_MASK, acc, off);
        if (lane == 0) y[r] = (float)(acc * scale);
    }
}

/* y[r], ix[r] = the extreme of row r and its index (either may be NULL);
 * n >= 1. A lane without an element holds arg -1. */
__global__ void extreme_dim_kernel(float *y, int32_t *ix, const float *x, crl_gpu_view vx, int64_t outer, int64_t n,
                                   int64_t inner, int want_max)
{
    const int lane = threadIdx.x & 31;
    const int64_t rows = outer * inner;
    for (int64_t r = warp_index(); r < rows; r += warp_count()) {
        int64_t base = (r / inner) * n * inner + r % inner;
        float best = 0.0f;
        long long arg = -1;
        for (int64_t k = lane; k < n; k += 32) {
            float v = x[crl_gpu_offset(vx, base + k * inner)];
            if (arg < 0 || crl_extreme_takes(want_max, best, arg, v, k)) {
                best = v;
                arg = k;
            }
        }
        for (int off = 16; off > 0; off >>= 1) {
            float ob = __shfl_down_sync(FULL_MASK, best, off);
            long long oa = __shfl_down_sync(FULL_MASK, arg, off);
            if (oa >= 0 && (arg < 0 || crl_extreme_takes(want_max, best, arg, ob, oa))) {
                best = ob;
                arg = oa;
            }
        }
        if (lane == 0) {
            if (y) y[r] = best;
            if (ix) ix[r] = (int32_t)arg;
        }
    }
}

/* Softmax (or log-softmax) of each row into the contiguous y of src's
 * shape: the maximum, then z = sum exp(x - shift) in double, then the
 * outputs. Each lane writes only the elements it read, after the whole
 * warp has read the row twice, so y may be a contiguous x. */
__global__ void softmax_dim_kernel(float *y, const float *x, crl_gpu_view vx, int64_t outer, int64_t n,
                                   int64_t inner, int want_log)
{
    const int lane = threadIdx.x & 31;
    const int64_t rows = outer * inner;
    for (int64_t r = warp_index(); r < rows; r += warp_count()) {
        int64_t base = (r / inner) * n * inner + r % inner;
        float m = -INFINITY;
        for (int64_t k = lane; k < n; k += 32) m = crl_softmax_max(m, x[crl_gpu_offset(vx, base + k * inner)]);
        for (int off = 16; off > 0; off >>= 1) m = crl_softmax_max(m, __shfl_down_sync(FULL_MASK, m, off));
        m = __shfl_sync(FULL_MASK, m, 0);
        double shift = crl_softmax_shift(m);
        double z = 0;
        for (int64_t k = lane; k < n; k += 32) z += exp((double)x[crl_gpu_offset(vx, base + k * inner)] - shift);
        for (int off = 16; off > 0; off >>= 1) z += __shfl_down_sync(FULL_MASK, z, off);
        z = __shfl_sync(FULL_MASK, z, 0);
        double logz = log(z);
        for (int64_t k = lane; k < n; k += 32)
            y[base + k * inner] = crl_softmax_out(x[crl_gpu_offset(vx, base + k * inner)], shift, logz, want_log);
    }
}

int sum_or_mean(crl_tensor *out, const crl_tensor *src, int dim, int keepdim, int mean, const char *func)
{
    int rc = crl_gpu_nonnull(out, func, "out");
    if (rc) return rc;
    if (out == src) return crl_fail(CRL_ERR_ARG, func, "out and src must be different tensors");
    dim_split s;
    int shared = src && out->storage != NULL && out->storage == src->storage;
    rc = split_dim(&s, src, dim, keepdim, shared, func);
    if (rc) return rc;
    rc = crl_prepare(out, CRL_FLOAT32, CRL_CUDA, s.out_ndim, s.out_size);
    int64_t rows = s.outer * s.inner;
    if (rc == CRL_OK && rows > 0) {
        cudaStream_t stream = crl_gpu_stream();
        if (stream == 0) {
            rc = CRL_ERR_DEVICE;
        } else {
            double scale = mean ? (s.n ? 1.0 / (double)s.n : NAN) : 1.0;
            sum_dim_kernel<<<row_blocks(rows), CRL_GPU_THREADS, 0, stream>>>(
                (float *)crl_tensor_data(out), s.x, s.v, s.outer, s.n, s.inner, scale);
            rc = crl_gpu_launched(func, "sum_dim_kernel");
        }
    }
    crl_tensor_free(s.tmp);
    return rc;
}

int extreme(crl_tensor *values, crl_tensor *indices, const crl_tensor *src, int dim, int keepdim, int want_max,
            const char *func)
{
    if (values == NULL && indices == NULL)
        return crl_fail(CRL_ERR_ARG, func, "'values' and 'indices' are both NULL");
    if (values == src || indices == src)
        return crl_fail(CRL_ERR_ARG, func, "outputs and src must be different tensors");
    dim_split s;
    int shared = src && ((values && values->storage != NULL && values->storage == src->storage) ||
                         (indices && indices->storage != NULL && indices->storage == src->storage));
    int rc = split_dim(&s, src, dim, keepdim, shared, func);
    if (rc) return rc;
    if (s.n == 0)
        rc = crl_fail(CRL_ERR_SHAPE, func, "cannot reduce over an empty dimension of %s", crl_shape(src));
    if (rc == CRL_OK && values) rc = crl_prepare(values, CRL_FLOAT32, CRL_CUDA, s.out_ndim, s.out_size);
    if (rc == CRL_OK && indices) rc = crl_prepare(indices, CRL_INT32, CRL_CUDA, s.out_ndim, s.out_size);
    int64_t rows = s.outer * s.inner;
    if (rc == CRL_OK && rows > 0) {
        cudaStream_t stream = crl_gpu_stream();
        if (stream == 0) {
            rc = CRL_ERR_DEVICE;
        } else {
            extreme_dim_kernel<<<row_blocks(rows), CRL_GPU_THREADS, 0, stream>>>(
                values ? (float *)crl_tensor_data(values) : NULL,
                indices ? (int32_t *)crl_tensor_data(indices) : NULL, s.x, s.v, s.outer, s.n, s.inner, want_max);
            rc = crl_gpu_launched(func, "extreme_dim_kernel");
        }
    }
    crl_tensor_free(s.tmp);
    return rc;
}

/* out may be src when src is contiguous, as on the CPU; a strided src
 * that shares out's storage is read from a copy. */
int softmax_impl(crl_tensor *out, const crl_tensor *src, int dim, int want_log, const char *func)
{
    int rc = crl_gpu_nonnull(out, func, "out");
    if (rc) return rc;
    dim_split s;
    int shared = src && out->storage != NULL && out->storage == src->storage &&
                 !(out == src && crl_tensor_is_contiguous(src));
    rc = split_dim(&s, src, dim, 1, shared, func);
    if (rc) return rc;
    rc = crl_prepare(out, CRL_FLOAT32, CRL_CUDA, src->ndim, src->sizes);
    int64_t rows = s.outer * s.inner;
    if (rc == CRL_OK && rows > 0 && s.n > 0) {
        cudaStream_t stream = crl_gpu_stream();
        if (stream == 0) {
            rc = CRL_ERR_DEVICE;
        } else {
            softmax_dim_kernel<<<row_blocks(rows), CRL_GPU_THREADS, 0, stream>>>(
                (float *)crl_tensor_data(out), s.x, s.v, s.outer, s.n, s.inner, want_log);
            rc = crl_gpu_launched(func, "softmax_dim_kernel");
        }
    }
    crl_tensor_free(s.tmp);
    return rc;
}

} // namespace

extern "C" int crl_gpu_tensor_sum_all(double *value, const crl_tensor *t)
{
    return all_elements(value, t, ALL_SUM, "crl_tensor_sum_all");
}

extern "C" int crl_gpu_tensor_max_all(double *value, const crl_tensor *t)
{
    return all_elements(value, t, ALL_MAX, "crl_tensor_max_all");
}

extern "C" int crl_gpu_tensor_min_all(double *value, const crl_tensor *t)
{
    return all_elements(value, t, ALL_MIN, "crl_tensor_min_all");
}

extern "C" int crl_gpu_tensor_sum(crl_tensor *out, const crl_tensor *src, int dim, int keepdim)
{
    return sum_or_mean(out, src, dim, keepdim, 0, "crl_tensor_sum");
}

extern "C" int crl_gpu_tensor_mean(crl_tensor *out, const crl_tensor *src, int dim, int keepdim)
{
    return sum_or_mean(out, src, dim, keepdim, 1, "crl_tensor_mean");
}

extern "C" int crl_gpu_tensor_max(crl_tensor *values, crl_tensor *indices, const crl_tensor *src, int dim,
                                  int keepdim)
{
    return extreme(values, indices, src, dim, keepdim, 1, "crl_tensor_max");
}

extern "C" int crl_gpu_tensor_min(crl_tensor *values, crl_tensor *indices, const crl_tensor *src, int dim,
                                  int keepdim)
{
    return extreme(values, indices, src, dim, keepdim, 0, "crl_tensor_min");
}

extern "C" int crl_gpu_tensor_softmax(crl_tensor *out, const crl_tensor *src, int dim)
{
    return softmax_impl(out, src, dim, 0, "crl_tensor_softmax");
}

extern "C" int crl_gpu_tensor_log_softmax(crl_tensor *out, const crl_tensor *src, int dim)
{
    return softmax_impl(out, src, dim, 1, "crl_tensor_log_softmax");
}
