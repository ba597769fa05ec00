/* cpu/linalg.c -- matrix multiply through OpenBLAS cblas_sgemm. Row-major
 * and column-major (transposed) views go to BLAS as they are, with the
 * matching transpose flag; other strides are copied to a contiguous
 * matrix first. */
#include <cblas.h>

#include "../internal.h"
#include "cpu.h"

/* How a 2-D view can be handed to row-major BLAS: trans 0 with ld = rows'
 * stride, trans 1 (it is the transpose of a row-major matrix) with ld =
 * columns' stride, or -1 when neither layout fits. The CUDA GEMM reads
 * views by the same rule. */
int crl_blas_layout(const crl_tensor *t, int *ld)
{
    int64_t r = t->sizes[0], c = t->sizes[1];
    int64_t s0 = r == 1 ? (c > 0 ? c : 1) : t->strides[0];
    int64_t s1 = c == 1 ? (r > 0 ? r : 1) : t->strides[1];
    if (s1 == 1 && s0 >= (c > 1 ? c : 1)) {
        *ld = (int)s0;
        return 0;
    }
    if (s0 == 1 && s1 >= (r > 1 ? r : 1)) {
        *ld = (int)s1;
        return 1;
    }
    return -1;
}

static int operand(const crl_tensor *t, crl_tensor **tmp, const float **ptr,
                   int *trans, int *ld)
{
    *tmp = NULL;
    int layout = crl_blas_layout(t, ld);
    if (layout < 0 || t->strides[0] > 0x7fffffff || t->strides[1] > 0x7fffffff) {
        *tmp = crl_tensor_new(CRL_FLOAT32, CRL_CPU, 2, t->sizes);
        if (*tmp == NULL) return CRL_ERR_NOMEM;
        int rc = crl_tensor_copy(*tmp, t);
        if (rc) return rc;
        t = *tmp;
        layout = crl_blas_layout(t, ld);
    }
    *trans = layout;
    *ptr = crl_tensor_data(t);
    return CRL_OK;
}

int crl_gemm_shapes(int64_t *m_out, int64_t *n_out, int64_t *k_out, crl_tensor *out, const crl_tensor *a,
                    const crl_tensor *b, int transpose_a, int transpose_b, float beta, int device,
                    const char *func)
{
    int rc = crl_require_dtype(a, CRL_FLOAT32, func, "a");
    if (rc == CRL_OK) rc = crl_require_dtype(b, CRL_FLOAT32, func, "b");
    if (rc) return rc;
    if (a->ndim != 2 || b->ndim != 2)
        return crl_fail(CRL_ERR_SHAPE, func, "a %s and b %s must both be matrices",
                        crl_shape(a), crl_shape(b));
    int64_t m = transpose_a ? a->sizes[1] : a->sizes[0];
    int64_t k = transpose_a ? a->sizes[0] : a->sizes[1];
    int64_t kb = transpose_b ? b->sizes[1] : b->sizes[0];
    int64_t n = transpose_b ? b->sizes[0] : b->sizes[1];
    if (k != kb)
        return crl_fail(CRL_ERR_SHAPE, func,
                        "inner sizes differ: op(a) is %lldx%lld (a %s%s), op(b) is %lldx%lld (b %s%s)",
                        (long long)m, (long long)k, crl_shape(a), transpose_a ? "^T" : "",
                        (long long)kb, (long long)n, crl_shape(b), transpose_b ? "^T" : "");
    if (m > 0x7fffffff || n > 0x7fffffff || k > 0x7fffffff)
        return crl_fail(CRL_ERR_SHAPE, func, "a dimension exceeds 2^31-1");
    if (out == a || out == b ||
        (out->storage != NULL && (out->storage == a->storage || out->storage == b->storage)))
        return crl_fail(CRL_ERR_ARG, func, "out must not share memory with a or b");
    int64_t shape[2] = {m, n};
    if (beta == 0.0f) {
        rc = crl_prepare(out, CRL_FLOAT32, device, 2, shape);
    } else if (out->ndim != 2 || out->sizes[0] != m || out->sizes[1] != n ||
               out->dtype != CRL_FLOAT32 || out->device != device) {
        rc = crl_fail(CRL_ERR_SHAPE, func, "with beta != 0, out %s must be float32 %lldx%lld",
                      crl_shape(out), (long long)m, (long long)n);
    }
    *m_out = m;
    *n_out = n;
    *k_out = k;
    return rc;
}

int crl_cpu_tensor_gemm(crl_tensor *out, const crl_tensor *a, const crl_tensor *b,
                    int transpose_a, int transpose_b, float alpha, float beta)
{
    CHECK_TENSOR(out, "out");
    CHECK_TENSOR(a, "a");
    CHECK_TENSOR(b, "b");
    int rc = crl_require_cpu(a, __func__, "a");
    if (rc == CRL_OK) rc = crl_require_cpu(b, __func__, "b");
    int64_t m = 0, n = 0, k = 0;
    if (rc == CRL_OK)
        rc = crl_gemm_shapes(&m, &n, &k, out, a, b, transpose_a, transpose_b, beta, CRL_CPU, __func__);
    if (rc) return rc;
    int64_t shape[2] = {m, n};
    if (m == 0 || n == 0) return CRL_OK;

    /* out itself must be row-major for BLAS; otherwise work in a copy. */
    crl_tensor *c = out, *ctmp = NULL;
    int ldc;
    if (crl_blas_layout(out, &ldc) != 0) {
        ctmp = crl_tensor_new(CRL_FLOAT32, CRL_CPU, 2, shape);
        if (ctmp == NULL) return CRL_ERR_NOMEM;
        if (beta != 0.0f && (rc = crl_tensor_copy(ctmp, out)) != CRL_OK) {
            crl_tensor_free(ctmp);
            return rc;
        }
        c = ctmp;
        ldc = (int)n;
    }
    crl_tensor *atmp = NULL, *btmp = NULL;
    const float *pa = NULL, *pb = NULL;
    int ta = 0, tb = 0, lda = 1, ldb = 1;
    rc = operand(a, &atmp, &pa, &ta, &lda);
    if (rc == CRL_OK) rc = operand(b, &btmp, &pb, &tb, &ldb);
    if (rc == CRL_OK) {
        if (k == 0) {
            rc = beta == 0.0f ? crl_tensor_fill(c, 0.0) : crl_tensor_binary_scalar(c, c, beta, CRL_OP_MUL, 0);
        } else {
            cblas_sgemm(CblasRowMajor, (ta ^ (transpose_a != 0)) ? CblasTrans : CblasNoTrans,
                        (tb ^ (transpose_b != 0)) ? CblasTrans : CblasNoTrans, (int)m, (int)n, (int)k,
                        alpha, pa, lda, pb, ldb, beta, crl_tensor_data(c), ldc);
        }
    }
    if (rc == CRL_OK && ctmp) rc = crl_tensor_copy(out, ctmp);
    crl_tensor_free(atmp);
    crl_tensor_free(btmp);
    crl_tensor_free(ctmp);
    return rc;
}
