/* cuda/elementwise.cu -- the CUDA kernels of the elementwise operations:
 * crl_tensor_binary (PyTorch broadcasting; comparisons also on int32 and
 * uint8), _binary_scalar, _unary and _clamp, plus the strided float copy
 * the other kernels use. The arithmetic of one element is
 * math/elementwise.h's and the argument rules (dtypes, broadcast shape,
 * sizing out) are cpu/elementwise.c's, so both devices accept the same
 * arguments with the same messages and compute the same values.
 *
 * Every operand is read through a crl_gpu_view laid over out's shape
 * (broadcast dimensions get stride 0), so any strides work, and out itself
 * may be a strided view that already has the result's shape (in-place
 * updates of narrowed tensors). One thread per output element reads its
 * inputs and then writes: out may be one of the inputs. */
#include "common.cuh"
#include "ops.cuh"
#include "../math/elementwise.h"

namespace {

/* t read in the shape (ndim, size) that it broadcasts to: dimensions
 * right-aligned, those of size 1 (or missing) stride 0. Flagged contiguous
 * only when t already has that shape and is contiguous, so element i is
 * offset + i. */
crl_gpu_view broadcast_view(const crl_tensor *t, int ndim, const int64_t *size)
{
    crl_gpu_view v;
    v.ndim = ndim;
    v.offset = t->offset;
    int same = t->ndim == ndim;
    for (int d = 0; d < CRL_MAX_DIM; d++) {
        v.size[d] = 1;
        v.stride[d] = 0;
        if (d >= ndim) continue;
        int td = d - (ndim - t->ndim);
        v.size[d] = size[d];
        v.stride[d] = (td >= 0 && t->sizes[td] != 1) ? t->strides[td] : 0;
        if (td < 0 || t->sizes[td] != size[d]) same = 0;
    }
    v.contiguous = same && crl_tensor_is_contiguous(t);
    return v;
}

__global__ void binary_kernel(float *out, crl_gpu_view vo, const float *a, crl_gpu_view va, const float *b,
                              crl_gpu_view vb, int64_t n, int op)
{
    CRL_GPU_LOOP(i, n)
    {
        float x = a[crl_gpu_offset(va, i)], y = b[crl_gpu_offset(vb, i)];
        out[crl_gpu_offset(vo, i)] = crl_binary_op(op, x, y);
    }
}

/* Comparisons of int32 or uint8 tensors, as doubles like the CPU. */
template <typename T>
__global__ void compare_kernel(float *out, crl_gpu_view vo, const T *a, crl_gpu_view va, const T *b,
                               crl_gpu_view vb, int64_t n, int op)
{
    CRL_GPU_LOOP(i, n)
    {
        double x = (double)a[crl_gpu_offset(va, i)], y = (double)b[crl_gpu_offset(vb, i)];
        out[crl_gpu_offset(vo, i)] = crl_compare_op(op, x, y);
    }
}

/* a op s, or s op a when reverse. */
__global__ void scalar_kernel(float *out, crl_gpu_view vo, const float *a, crl_gpu_view va, float s, int64_t n,
                              int op, int reverse)
{
    CRL_GPU_LOOP(i, n)
    {
        float x = a[crl_gpu_offset(va, i)];
        out[crl_gpu_offset(vo, i)] = reverse ? crl_binary_op(op, s, x) : crl_binary_op(op, x, s);
    }
}

__global__ void unary_kernel(float *out, crl_gpu_view vo, const float *a, crl_gpu_view va, int64_t n, int op)
{
    CRL_GPU_LOOP(i, n) out[crl_gpu_offset(vo, i)] = crl_unary_op(op, a[crl_gpu_offset(va, i)]);
}

__global__ void clamp_kernel(float *out, crl_gpu_view vo, const float *a, crl_gpu_view va, int64_t n, float lo,
                             float hi)
{
    CRL_GPU_LOOP(i, n) out[crl_gpu_offset(vo, i)] = crl_clamp_op(a[crl_gpu_offset(va, i)], lo, hi);
}

__global__ void copy_view_kernel(float *dst, crl_gpu_view vd, const float *src, crl_gpu_view vs, int64_t n)
{
    CRL_GPU_LOOP(i, n) dst[crl_gpu_offset(vd, i)] = src[crl_gpu_offset(vs, i)];
}

/* The checks of a float32 CUDA input of a one-operand op, and out sized
 * like it (cf. unary_prologue in cpu/elementwise.c). */
int unary_prologue(crl_tensor *out, const crl_tensor *a, const char *func)
{
    int rc = crl_gpu_require(a, func, "a");
    if (rc == CRL_OK) rc = crl_require_dtype(a, CRL_FLOAT32, func, "a");
    if (rc == CRL_OK) rc = crl_prepare_elementwise(out, a->ndim, a->sizes, a, NULL);
    return rc;
}

} // namespace

extern "C" int crl_gpu_tensor_binary(crl_tensor *out, const crl_tensor *a, const crl_tensor *b, int op)
{
    static const char *F = "crl_tensor_binary";
    int rc = crl_gpu_nonnull(out, F, "out");
    if (rc == CRL_OK) rc = crl_gpu_nonnull(a, F, "a");
    if (rc == CRL_OK) rc = crl_gpu_nonnull(b, F, "b");
    if (rc) return rc;
    if (op < CRL_OP_ADD || op > CRL_OP_GE) return crl_fail(CRL_ERR_ARG, F, "unknown op %d", op);
    rc = crl_gpu_require(a, F, "a");
    if (rc == CRL_OK) rc = crl_gpu_require(b, F, "b");
    if (rc == CRL_OK) rc = crl_binary_dtypes(a, b, op, F);
    int ndim = 0;
    int64_t size[CRL_MAX_DIM];
    if (rc == CRL_OK) rc = crl_broadcast_shape(&ndim, size, a, b, F);
    if (rc) return rc;
    /* the views before out is sized: out may be a or b */
    crl_gpu_view va = broadcast_view(a, ndim, size), vb = broadcast_view(b, ndim, size);
    const void *pa = a->storage ? a->storage->data : NULL, *pb = b->storage ? b->storage->data : NULL;
    int dtype = a->dtype;
    rc = crl_prepare_elementwise(out, ndim, size, a, b);
    if (rc) return rc;
    int64_t n = crl_tensor_numel(out);
    if (n == 0) return CRL_OK;
    CRL_GPU_STREAM(s);
    crl_gpu_view vo = broadcast_view(out, ndim, size);
    float *po = crl_gpu_base<float>(out);
    unsigned blocks = crl_gpu_blocks(n);
    if (dtype == CRL_FLOAT32) {
        binary_kernel<<<blocks, CRL_GPU_THREADS, 0, s>>>(po, vo, (const float *)pa, va, (const float *)pb, vb, n,
                                                         op);
        return crl_gpu_launched(F, "binary_kernel");
    }
    if (dtype == CRL_INT32)
        compare_kernel<int32_t><<<blocks, CRL_GPU_THREADS, 0, s>>>(po, vo, (const int32_t *)pa, va,
                                                                   (const int32_t *)pb, vb, n, op);
    else
        compare_kernel<uint8_t><<<blocks, CRL_GPU_THREADS, 0, s>>>(po, vo, (const uint8_t *)pa, va,
                                                                   (const uint8_t *)pb, vb, n, op);
    return crl_gpu_launched(F, "compare_kernel");
}

extern "C" int crl_gpu_tensor_binary_scalar(crl_tensor *out, const crl_tensor *a, double s, int op, int reverse)
{
    static const char *F = "crl_tensor_binary_scalar";
    int rc = crl_gpu_nonnull(out, F, "out");
    if (rc == CRL_OK) rc = crl_gpu_nonnull(a, F, "a");
    if (rc) return rc;
    if (op < CRL_OP_ADD || op > CRL_OP_GE) return crl_fail(CRL_ERR_ARG, F, "unknown op %d", op);
    rc = crl_gpu_require(a, F, "a");
    if (rc == CRL_OK) rc = crl_require_dtype(a, CRL_FLOAT32, F, "a");
    if (rc) return rc;
    crl_gpu_view va = broadcast_view(a, a->ndim, a->sizes);
    const float *pa = crl_gpu_base<float>(a);
    rc = crl_prepare_elementwise(out, a->ndim, a->sizes, a, NULL);
    if (rc) return rc;
    int64_t n = crl_tensor_numel(out);
    if (n == 0) return CRL_OK;
    CRL_GPU_STREAM(stream);
    crl_gpu_view vo = broadcast_view(out, out->ndim, out->sizes);
    scalar_kernel<<<crl_gpu_blocks(n), CRL_GPU_THREADS, 0, stream>>>(crl_gpu_base<float>(out), vo, pa, va,
                                                                      (float)s, n, op, reverse != 0);
    return crl_gpu_launched(F, "scalar_kernel");
}

extern "C" int crl_gpu_tensor_unary(crl_tensor *out, const crl_tensor *a, int op)
{
    static const char *F = "crl_tensor_unary";
    int rc = crl_gpu_nonnull(out, F, "out");
    if (rc == CRL_OK) rc = crl_gpu_nonnull(a, F, "a");
    if (rc) return rc;
    if (op < CRL_UN_NEG || op > CRL_UN_SIGN) return crl_fail(CRL_ERR_ARG, F, "unknown op %d", op);
    crl_gpu_view va = broadcast_view(a, a->ndim, a->sizes);
    const float *pa = crl_gpu_base<float>(a);
    rc = unary_prologue(out, a, F);
    if (rc) return rc;
    int64_t n = crl_tensor_numel(out);
    if (n == 0) return CRL_OK;
    CRL_GPU_STREAM(s);
    crl_gpu_view vo = broadcast_view(out, out->ndim, out->sizes);
    unary_kernel<<<crl_gpu_blocks(n), CRL_GPU_THREADS, 0, s>>>(crl_gpu_base<float>(out), vo, pa, va, n, op);
    return crl_gpu_launched(F, "unary_kernel");
}

extern "C" int crl_gpu_tensor_clamp(crl_tensor *out, const crl_tensor *a, double lo, double hi)
{
    static const char *F = "crl_tensor_clamp";
    int rc = crl_gpu_nonnull(out, F, "out");
    if (rc == CRL_OK) rc = crl_gpu_nonnull(a, F, "a");
    if (rc) return rc;
    if (!(lo <= hi)) return crl_fail(CRL_ERR_ARG, F, "lo %g is greater than hi %g", lo, hi);
    crl_gpu_view va = broadcast_view(a, a->ndim, a->sizes);
    const float *pa = crl_gpu_base<float>(a);
    rc = unary_prologue(out, a, F);
    if (rc) return rc;
    int64_t n = crl_tensor_numel(out);
    if (n == 0) return CRL_OK;
    CRL_GPU_STREAM(s);
    crl_gpu_view vo = broadcast_view(out, out->ndim, out->sizes);
    clamp_kernel<<<crl_gpu_blocks(n), CRL_GPU_THREADS, 0, s>>>(crl_gpu_base<float>(out), vo, pa, va, n, (float)lo,
                                                               (float)hi);
    return crl_gpu_launched(F, "clamp_kernel");
}

int crl_gpu_copy_view(crl_tensor *dst, const crl_tensor *src, const char *func)
{
    int64_t n = crl_tensor_numel(dst);
    if (n != crl_tensor_numel(src) || dst->dtype != CRL_FLOAT32 || src->dtype != CRL_FLOAT32 ||
        dst->device != CRL_CUDA || src->device != CRL_CUDA)
        return crl_fail(CRL_ERR_ARG, func, "internal: copying %s %s to %s %s", crl_dtype_name(src->dtype),
                        crl_shape(src), crl_dtype_name(dst->dtype), crl_shape(dst));
    if (n == 0) return CRL_OK;
    CRL_GPU_STREAM(s);
    copy_view_kernel<<<crl_gpu_blocks(n), CRL_GPU_THREADS, 0, s>>>(
        crl_gpu_base<float>(dst), crl_gpu_view_of(dst), crl_gpu_base<float>(src), crl_gpu_view_of(src), n);
    return crl_gpu_launched(func, "copy_view_kernel");
}

crl_tensor *crl_gpu_contiguous_copy(const crl_tensor *src, const char *func)
{
    crl_tensor *t = crl_tensor_new(CRL_FLOAT32, CRL_CUDA, src->ndim, src->sizes);
    if (t == NULL) return NULL;
    if (crl_gpu_copy_view(t, src, func) != CRL_OK) {
        crl_tensor_free(t);
        return NULL;
    }
    return t;
}
