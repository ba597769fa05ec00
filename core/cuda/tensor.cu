/* cuda/tensor.cu -- element work behind tensor.c for CUDA tensors: fills
 * and copies between CUDA tensors of any strides and dtypes, on the stream,
 * so zeroing a gradient slab or making a view contiguous never goes
 * through the host. Conversions follow core/math/convert.h. */
#include <math.h>

#include "common.cuh"

__global__ void fill_kernel(void *base, int dtype, crl_gpu_view v, int64_t n, double value)
{
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x)
        crl_store_elem(base, dtype, crl_gpu_offset(v, i), value);
}

__global__ void copy_kernel(void *dbase, int dtype_d, crl_gpu_view dv, const void *sbase, int dtype_s,
                            crl_gpu_view sv, int64_t n)
{
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x)
        crl_store_elem(dbase, dtype_d, crl_gpu_offset(dv, i), crl_load_elem(sbase, dtype_s, crl_gpu_offset(sv, i)));
}

extern "C" int crl_gpu_fill(crl_tensor *t, double value)
{
    static const char *F = "crl_tensor_fill";
    int64_t n = crl_tensor_numel(t);
    if (n == 0) return CRL_OK;
    cudaStream_t s = crl_gpu_stream();
    if (s == 0) return CRL_ERR_DEVICE;
    if (value == 0.0 && !signbit(value) && crl_tensor_is_contiguous(t)) { /* -0.0f is not all zero bytes */
        CRL_GPU_TRY(cudaMemsetAsync(crl_tensor_data(t), 0, (size_t)(n * crl_dtype_size(t->dtype)), s), F);
        return CRL_OK;
    }
    fill_kernel<<<crl_gpu_blocks(n), CRL_GPU_THREADS, 0, s>>>(t->storage->data, t->dtype, crl_gpu_view_of(t), n,
                                                              value);
    return crl_gpu_launched(F, "fill_kernel");
}

/* The bytes [*lo, *hi) of t's storage that its elements lie in (n > 0). */
static void byte_span(const crl_tensor *t, int64_t *lo, int64_t *hi)
{
    int64_t first = t->offset, last = t->offset;
    for (int d = 0; d < t->ndim; d++) {
        int64_t step = (t->sizes[d] - 1) * t->strides[d];
        if (step < 0) first += step;
        else last += step;
    }
    *lo = first * crl_dtype_size(t->dtype);
    *hi = (last + 1) * crl_dtype_size(t->dtype);
}

extern "C" int crl_gpu_copy(crl_tensor *dst, const crl_tensor *src)
{
    static const char *F = "crl_tensor_copy";
    int64_t n = crl_tensor_numel(dst);
    if (n == 0) return CRL_OK;
    cudaStream_t s = crl_gpu_stream();
    if (s == 0) return CRL_ERR_DEVICE;
    if (dst->storage == src->storage) {
        /* overlapping views: cudaMemcpyAsync forbids overlap and the kernel's
         * threads would race, so src goes through a temporary first (the
         * CPU's memmove semantics); the cache reuses it in stream order */
        int64_t dlo, dhi, slo, shi;
        byte_span(dst, &dlo, &dhi);
        byte_span(src, &slo, &shi);
        if (dlo < shi && slo < dhi) {
            crl_tensor *tmp = crl_tensor_new(src->dtype, CRL_CUDA, src->ndim, src->sizes);
            if (tmp == NULL) return CRL_ERR_DEVICE;
            int rc = crl_gpu_copy(tmp, src);
            if (rc == CRL_OK) rc = crl_gpu_copy(dst, tmp);
            crl_tensor_free(tmp);
            return rc;
        }
    }
    if (dst->dtype == src->dtype && crl_tensor_is_contiguous(dst) && crl_tensor_is_contiguous(src)) {
        CRL_GPU_TRY(cudaMemcpyAsync(crl_tensor_data(dst), crl_tensor_data(src),
                                    (size_t)(n * crl_dtype_size(dst->dtype)), cudaMemcpyDeviceToDevice, s), F);
        return CRL_OK;
    }
    copy_kernel<<<crl_gpu_blocks(n), CRL_GPU_THREADS, 0, s>>>(dst->storage->data, dst->dtype, crl_gpu_view_of(dst),
                                                              src->storage->data, src->dtype, crl_gpu_view_of(src), n);
    return crl_gpu_launched(F, "copy_kernel");
}
