/* cpu/elementwise.c -- elementwise arithmetic on float32 tensors with
 * PyTorch broadcasting, comparisons, unary maths and clamp. Any strides;
 * out may be one of the inputs when it already has the result's shape.
 * The per-element arithmetic is math/elementwise.h's, and the shape and
 * dtype rules below are shared with the CUDA kernels (internal.h). */
#include <math.h>
#include <string.h>

#include "../internal.h"
#include "cpu.h"

/* Walks the elements of a (ndim, size) shape in row-major order, keeping
 * the element offsets of up to three operands in step; the innermost
 * dimension is a plain loop so the compiler can vectorise it. */
typedef struct {
    int ndim;
    int64_t sizes[CRL_MAX_DIM];
    int64_t strides[3][CRL_MAX_DIM];
    int64_t base[3];
} walk3;

static void walk3_init(walk3 *w, const crl_tensor *out, const crl_tensor *a, const crl_tensor *b)
{
    const crl_tensor *ops[3] = {out, a, b};
    w->ndim = out->ndim;
    for (int d = 0; d < out->ndim; d++) w->sizes[d] = out->sizes[d];
    for (int k = 0; k < 3; k++) {
        const crl_tensor *t = ops[k];
        w->base[k] = t ? t->offset : 0;
        for (int d = 0; d < out->ndim; d++) {
            /* right-align t's dimensions; broadcast ones get stride 0 */
            int td = d - (out->ndim - (t ? t->ndim : 0));
            w->strides[k][d] = (t && td >= 0 && t->sizes[td] != 1) ? t->strides[td] : 0;
        }
    }
}

/* Runs the body once per innermost row with o, ia, ib (the row's first
 * element offsets), n (its length) and so, sa, sb (the strides along it).
 * Rows are independent, so large tensors split them over threads. */
#define WALK3(w, ...)                                                             \
    do {                                                                          \
        int last_ = (w).ndim - 1;                                                 \
        int64_t n_ = (w).ndim ? (w).sizes[last_] : 1;                             \
        int64_t so = (w).ndim ? (w).strides[0][last_] : 0;                        \
        int64_t sa = (w).ndim ? (w).strides[1][last_] : 0;                        \
        int64_t sb = (w).ndim ? (w).strides[2][last_] : 0;                        \
        int64_t rows_ = 1;                                                        \
        for (int d_ = 0; d_ < last_; d_++) rows_ *= (w).sizes[d_];                \
        _Pragma("omp parallel for schedule(static) if (rows_ * n_ > 65536)")    \
        for (int64_t r_ = 0; r_ < rows_; r_++) {                                  \
            int64_t o = (w).base[0], ia = (w).base[1], ib = (w).base[2];          \
            int64_t rem_ = r_;                                                    \
            for (int d_ = last_ - 1; d_ >= 0; d_--) {                             \
                int64_t i_ = rem_ % (w).sizes[d_];                                \
                rem_ /= (w).sizes[d_];                                            \
                o += i_ * (w).strides[0][d_];                                     \
                ia += i_ * (w).strides[1][d_];                                    \
                ib += i_ * (w).strides[2][d_];                                    \
            }                                                                     \
            int64_t n = n_;                                                       \
            __VA_ARGS__;                                                          \
        }                                                                         \
    } while (0)

int crl_broadcast_shape(int *ndim, int64_t *size, const crl_tensor *a, const crl_tensor *b, const char *func)
{
    int n = a->ndim > b->ndim ? a->ndim : b->ndim;
    for (int d = 0; d < n; d++) {
        int da = d - (n - a->ndim), db = d - (n - b->ndim);
        int64_t sa = da >= 0 ? a->sizes[da] : 1, sb = db >= 0 ? b->sizes[db] : 1;
        if (sa != sb && sa != 1 && sb != 1)
            return crl_fail(CRL_ERR_SHAPE, func,
                            "shapes %s and %s do not broadcast (dimension %d: %lld vs %lld)",
                            crl_shape(a), crl_shape(b), d, (long long)sa, (long long)sb);
        size[d] = sa == 1 ? sb : sa;
    }
    *ndim = n;
    return CRL_OK;
}

static int same_shape(const crl_tensor *t, int ndim, const int64_t *size)
{
    if (t->ndim != ndim) return 0;
    for (int d = 0; d < ndim; d++)
        if (t->sizes[d] != size[d]) return 0;
    return 1;
}

/* Keeps out's strides when it already has the right shape and dtype (so
 * in-place updates work on views); otherwise resizes it. */
int crl_prepare_elementwise(crl_tensor *out, int ndim, const int64_t *size, const crl_tensor *a,
                            const crl_tensor *b)
{
    if (out->storage != NULL && out->dtype == CRL_FLOAT32 && out->device == a->device &&
        out->layout == CRL_LAYOUT_PLAIN && same_shape(out, ndim, size))
        return CRL_OK;
    if (out == a || out == b)
        return crl_fail(CRL_ERR_SHAPE, "crl_tensor_binary",
                        "in-place result %s does not have the broadcast shape", crl_shape(out));
    return crl_prepare(out, CRL_FLOAT32, a->device, ndim, size);
}

/* Arithmetic on float32; comparisons on two tensors of one dtype. */
int crl_binary_dtypes(const crl_tensor *a, const crl_tensor *b, int op, const char *func)
{
    int is_compare = op >= CRL_OP_EQ;
    if (a->dtype != b->dtype || (!is_compare && a->dtype != CRL_FLOAT32))
        return crl_fail(CRL_ERR_ARG, func,
                        "arithmetic needs float32 tensors (comparisons: two of one dtype), "
                        "got a %s %s and b %s %s",
                        crl_dtype_name(a->dtype), crl_shape(a), crl_dtype_name(b->dtype),
                        crl_shape(b));
    return CRL_OK;
}

static int check_op(int op, const char *func)
{
    if (op < CRL_OP_ADD || op > CRL_OP_GE)
        return crl_fail(CRL_ERR_ARG, func, "unknown op %d", op);
    return CRL_OK;
}

/* a + b for two blocked tensors of one shape and layout (the residual sum
 * between convolutions): over the whole span, padding lanes 0 + 0. out may
 * be a or b. */
static int add_blocked(crl_tensor *out, const crl_tensor *a, const crl_tensor *b)
{
    if (b->layout != a->layout || a->ndim != 4 || b->ndim != 4 || a->dtype != CRL_FLOAT32 ||
        b->dtype != CRL_FLOAT32 || memcmp(a->sizes, b->sizes, 4 * sizeof a->sizes[0]) != 0)
        return crl_fail(CRL_ERR_SHAPE, "crl_tensor_binary",
                        "a %s (%s) and b %s (%s): a blocked tensor adds only to one of its shape and layout",
                        crl_shape(a), crl_layout_name(a->layout), crl_shape(b), crl_layout_name(b->layout));
    int rc = CRL_OK;
    if (out != a && out != b) rc = crl_prepare_layout(out, CRL_FLOAT32, CRL_CPU, 4, a->sizes, a->layout);
    if (rc) return rc;
    int64_t n = crl_tensor_span(a);
    const float *pa = crl_tensor_data(a), *pb = crl_tensor_data(b);
    float *po = crl_tensor_data(out);
#pragma omp parallel for schedule(static) if (n > 32768)
    for (int64_t i = 0; i < n; i++) po[i] = pa[i] + pb[i];
    return CRL_OK;
}

int crl_cpu_tensor_binary(crl_tensor *out, const crl_tensor *a, const crl_tensor *b, int op)
{
    CHECK_TENSOR(out, "out");
    CHECK_TENSOR(a, "a");
    CHECK_TENSOR(b, "b");
    int rc = check_op(op, __func__);
    if (rc) return rc;
    if (a->layout != CRL_LAYOUT_PLAIN && op == CRL_OP_ADD && a->device == CRL_CPU && b->device == CRL_CPU)
        return add_blocked(out, a, b);
    rc = crl_require_cpu(a, __func__, "a");
    if (rc == CRL_OK) rc = crl_require_cpu(b, __func__, "b");
    if (rc) return rc;
    rc = crl_binary_dtypes(a, b, op, __func__);
    if (rc) return rc;
    int ndim = 0;
    int64_t size[CRL_MAX_DIM];
    rc = crl_broadcast_shape(&ndim, size, a, b, __func__);
    if (rc == CRL_OK) rc = crl_prepare_elementwise(out, ndim, size, a, b);
    if (rc) return rc;
    walk3 w;
    walk3_init(&w, out, a, b);
    float *po = out->storage->data;
    if (a->dtype == CRL_FLOAT32) {
        const float *pa = a->storage->data, *pb = b->storage->data;
        WALK3(w, {
            for (int64_t i = 0; i < n; i++)
                po[o + i * so] = crl_binary_op(op, pa[ia + i * sa], pb[ib + i * sb]);
        });
    } else {
        const void *pa = a->storage->data, *pb = b->storage->data;
        int dt = a->dtype;
        WALK3(w, {
            for (int64_t i = 0; i < n; i++) {
                double x = crl_read_elem(pa, dt, ia + i * sa), y = crl_read_elem(pb, dt, ib + i * sb);
                po[o + i * so] = crl_compare_op(op, x, y);
            }
        });
    }
    return CRL_OK;
}

int crl_cpu_tensor_binary_scalar(crl_tensor *out, const crl_tensor *a, double s, int op, int reverse)
{
    CHECK_TENSOR(out, "out");
    CHECK_TENSOR(a, "a");
    int rc = check_op(op, __func__);
    if (rc == CRL_OK) rc = crl_require_cpu(a, __func__, "a");
    if (rc == CRL_OK) rc = crl_require_dtype(a, CRL_FLOAT32, __func__, "a");
    if (rc == CRL_OK) rc = crl_prepare_elementwise(out, a->ndim, a->sizes, a, NULL);
    if (rc) return rc;
    walk3 w;
    walk3_init(&w, out, a, NULL);
    float *po = out->storage->data;
    const float *pa = a->storage->data;
    float fs = (float)s;
    if (reverse) {
        WALK3(w, {
            (void)ib; (void)sb;
            for (int64_t i = 0; i < n; i++) po[o + i * so] = crl_binary_op(op, fs, pa[ia + i * sa]);
        });
    } else if (op == CRL_OP_ADD || op == CRL_OP_MUL) {
        int mul = op == CRL_OP_MUL;
        WALK3(w, {
            (void)ib; (void)sb;
            for (int64_t i = 0; i < n; i++)
                po[o + i * so] = mul ? pa[ia + i * sa] * fs : pa[ia + i * sa] + fs;
        });
    } else {
        WALK3(w, {
            (void)ib; (void)sb;
            for (int64_t i = 0; i < n; i++) po[o + i * so] = crl_binary_op(op, pa[ia + i * sa], fs);
        });
    }
    return CRL_OK;
}

/* Checks a float32 CPU input, sizes out like it, and sets up the walk. */
static int unary_prologue(walk3 *w, crl_tensor *out, const crl_tensor *a, const char *func)
{
    int rc = crl_require_cpu(a, func, "a");
    if (rc == CRL_OK) rc = crl_require_dtype(a, CRL_FLOAT32, func, "a");
    if (rc == CRL_OK) rc = crl_prepare_elementwise(out, a->ndim, a->sizes, a, NULL);
    if (rc == CRL_OK) walk3_init(w, out, a, NULL);
    return rc;
}

int crl_cpu_tensor_unary(crl_tensor *out, const crl_tensor *a, int op)
{
    CHECK_TENSOR(out, "out");
    CHECK_TENSOR(a, "a");
    if (op < CRL_UN_NEG || op > CRL_UN_SIGN)
        return crl_fail(CRL_ERR_ARG, __func__, "unknown op %d", op);
    walk3 w;
    int rc = unary_prologue(&w, out, a, __func__);
    if (rc) return rc;
    float *po = out->storage->data;
    const float *pa = a->storage->data;
    WALK3(w, {
        (void)ib; (void)sb;
        for (int64_t i = 0; i < n; i++) po[o + i * so] = crl_unary_op(op, pa[ia + i * sa]);
    });
    return CRL_OK;
}

int crl_cpu_tensor_clamp(crl_tensor *out, const crl_tensor *a, double lo, double hi)
{
    CHECK_TENSOR(out, "out");
    CHECK_TENSOR(a, "a");
    if (!(lo <= hi))
        return crl_fail(CRL_ERR_ARG, __func__, "lo %g is greater than hi %g", lo, hi);
    walk3 w;
    int rc = unary_prologue(&w, out, a, __func__);
    if (rc) return rc;
    float *po = out->storage->data;
    const float *pa = a->storage->data;
    float flo = (float)lo, fhi = (float)hi;
    WALK3(w, {
        (void)ib; (void)sb;
        for (int64_t i = 0; i < n; i++) {
            float x = pa[ia + i * sa];
            po[o + i * so] = crl_clamp_op(x, flo, fhi);
        }
    });
    return CRL_OK;
}
