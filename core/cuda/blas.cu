/* cuda/blas.cu -- matrix products on the GPU through cuBLAS:
 * crl_tensor_gemm, and the linear layer (crl_linear_forward / _backward)
 * as GEMMs plus a bias kernel each way.
 *
 * cuBLAS is column-major and our tensors are row-major. A row-major matrix
 * with leading dimension ld is, read column-major, its own transpose; so
 * row-major C = op(A) op(B) is computed as column-major C^T = op(B)^T
 * op(A)^T: the same buffers, operands swapped, m and n swapped, each
 * operand keeping its transpose flag (sgemm_rowmajor below, and its bf16
 * twin bf16gemm_rowmajor). Views are read as the CPU reads them (crl_blas_layout):
 * row-major or transposed views go to cuBLAS as they are, other strides
 * are copied to a contiguous matrix first.
 *
 * Math mode per call on the (shared) handle: TF32 tensor cores when
 * crl_gpu_option(CRL_CUDA_TF32) is 1 (crlab.cuda.allowTF32, the default),
 * plain float32 otherwise. Alpha and beta are host values.
 *
 * bf16 mixed precision (crl_gpu_option(CRL_CUDA_BF16), crlab.cuda.bf16):
 * every product goes through gemm_rowmajor, which rounds the operands to
 * bf16 copies (math/bf16.h) and calls cublasGemmEx with A and B
 * CUDA_R_16BF, C CUDA_R_32F (the float32 output itself, so beta keeps its
 * meaning), compute type CUBLAS_COMPUTE_32F and float alpha / beta: a
 * combination cuBLAS lists for cublasGemmEx, run on tensor cores. */
#include "common.cuh"
#include "bf16.cuh"
#include "ops.cuh"

namespace {

/* The stream's cuBLAS handle, set up for this call. */
int blas_handle(cublasHandle_t *h, const char *func)
{
    *h = crl_gpu_cublas(func);
    if (*h == NULL) return CRL_ERR_DEVICE;
    cublasMath_t mode = crl_gpu_option(CRL_CUDA_TF32) ? CUBLAS_TF32_TENSOR_OP_MATH : CUBLAS_DEFAULT_MATH;
    CRL_CUBLAS_TRY(cublasSetMathMode(*h, mode), func);
    CRL_CUBLAS_TRY(cublasSetPointerMode(*h, CUBLAS_POINTER_MODE_HOST), func);
    return CRL_OK;
}

/* Row-major C (m x n, ldc) = alpha op(A) op(B) + beta C, where op(A) is
 * m x k, op(B) is k x n, A and B are stored row-major with lda and ldb,
 * and ta / tb are the row-major transpose flags (as for cblas_sgemm with
 * CblasRowMajor). k >= 1. */
int sgemm_rowmajor(cublasHandle_t h, int ta, int tb, int64_t m, int64_t n, int64_t k, float alpha,
                   const float *A, int lda, const float *B, int ldb, float beta, float *C, int ldc,
                   const char *func)
{
    cublasStatus_t st = cublasSgemm(h, tb ? CUBLAS_OP_T : CUBLAS_OP_N, ta ? CUBLAS_OP_T : CUBLAS_OP_N, (int)n,
                                    (int)m, (int)k, &alpha, B, ldb, A, lda, &beta, C, ldc);
    if (st != CUBLAS_STATUS_SUCCESS) return crl_gpu_cublas_fail(st, func, "cublasSgemm");
    return CRL_OK;
}

/* The elements a row-major stored matrix of rows x cols with leading
 * dimension ld spans, from its first to its last (the gaps between rows
 * included: they lie inside the same storage). */
int64_t stored_span(int64_t rows, int64_t cols, int ld) { return (rows - 1) * (int64_t)ld + cols; }

/* sgemm_rowmajor's product (same arguments and meaning) on bf16 copies of A
 * and B, accumulated in float32 into the float32 C. */
int bf16gemm_rowmajor(cublasHandle_t h, int ta, int tb, int64_t m, int64_t n, int64_t k, float alpha,
                      const float *A, int lda, const float *B, int ldb, float beta, float *C, int ldc,
                      const char *func)
{
    /* as stored: op(A) is m x k, so A is k x m when transposed, else m x k */
    int64_t an = stored_span(ta ? k : m, ta ? m : k, lda), bn = stored_span(tb ? n : k, tb ? k : n, ldb);
    /* default math: tensor cores for bf16 inputs; the TF32 mode that
     * blas_handle may have set is about float32 inputs only */
    CRL_CUBLAS_TRY(cublasSetMathMode(h, CUBLAS_DEFAULT_MATH), func);
    crl_tensor *tA = NULL, *tB = NULL;
    uint16_t *bA = NULL, *bB = NULL;
    int rc = crl_gpu_bf16_copy(&tA, &bA, A, an, func);
    if (rc == CRL_OK) rc = crl_gpu_bf16_copy(&tB, &bB, B, bn, func);
    if (rc == CRL_OK) {
        /* the column-major swap of sgemm_rowmajor */
        cublasStatus_t st = cublasGemmEx(h, tb ? CUBLAS_OP_T : CUBLAS_OP_N, ta ? CUBLAS_OP_T : CUBLAS_OP_N, (int)n,
                                         (int)m, (int)k, &alpha, bB, CUDA_R_16BF, ldb, bA, CUDA_R_16BF, lda, &beta, C,
                                         CUDA_R_32F, ldc, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT);
        if (st != CUBLAS_STATUS_SUCCESS) rc = crl_gpu_cublas_fail(st, func, "cublasGemmEx (bf16)");
    }
    crl_tensor_free(tA);
    crl_tensor_free(tB);
    return rc;
}

/* The product of every GEMM here: float32, or bf16 operands when the
 * switch is on. */
int gemm_rowmajor(cublasHandle_t h, int ta, int tb, int64_t m, int64_t n, int64_t k, float alpha, const float *A,
                  int lda, const float *B, int ldb, float beta, float *C, int ldc, const char *func)
{
    if (crl_gpu_option(CRL_CUDA_BF16))
        return bf16gemm_rowmajor(h, ta, tb, m, n, k, alpha, A, lda, B, ldb, beta, C, ldc, func);
    return sgemm_rowmajor(h, ta, tb, m, n, k, alpha, A, lda, B, ldb, beta, C, ldc, func);
}

/* How a GEMM operand goes to cuBLAS: its data, row-major flag (1: it is the
 * transpose of a row-major matrix) and leading dimension; a contiguous copy
 * in *tmp when its strides fit neither (cf. operand() in cpu/linalg.c). */
int operand(const crl_tensor *t, crl_tensor **tmp, const float **ptr, int *trans, int *ld, const char *func)
{
    *tmp = NULL;
    int layout = crl_blas_layout(t, ld);
    if (layout < 0 || t->strides[0] > 0x7fffffff || t->strides[1] > 0x7fffffff) {
        *tmp = crl_gpu_contiguous_copy(t, func);
        if (*tmp == NULL) return CRL_ERR_DEVICE;
        t = *tmp;
        layout = crl_blas_layout(t, ld);
    }
    *trans = layout;
    *ptr = (const float *)crl_tensor_data(t);
    return CRL_OK;
}

/* y[r, c] = b[c] for the N x O output of a linear layer. */
__global__ void bias_rows_kernel(float *y, const float *b, int64_t rows, int64_t cols)
{
    CRL_GPU_LOOP(i, rows * cols) y[i] = b[i % cols];
}

/* gb[c] += sum_r gy[r, c], summed in double as on the CPU; one thread per
 * column, so neighbouring threads read neighbouring addresses. */
__global__ void bias_grad_kernel(float *gb, const float *gy, int64_t rows, int64_t cols)
{
    CRL_GPU_LOOP(c, cols)
    {
        double acc = 0;
        for (int64_t r = 0; r < rows; r++) acc += gy[r * cols + c];
        gb[c] += (float)acc;
    }
}

/* Zeroes a contiguous float32 tensor on the stream. */
int zero(crl_tensor *t, cudaStream_t s, const char *func)
{
    int64_t n = crl_tensor_numel(t);
    if (n > 0) CRL_GPU_TRY(cudaMemsetAsync(crl_tensor_data(t), 0, (size_t)n * sizeof(float), s), func);
    return CRL_OK;
}

/* The GEMM once out (m x n, m, n >= 1) is sized or checked: the operands'
 * layouts, out's (row-major as is; a transposed view as the row-major
 * transpose problem; anything else through a contiguous copy), then one
 * cublasSgemm. */
int gemm_run(crl_tensor *out, const crl_tensor *a, const crl_tensor *b, int transpose_a, int transpose_b,
             float alpha, float beta, int64_t m, int64_t n, int64_t k, const char *func)
{
    CRL_GPU_STREAM(s);
    if (k == 0) /* no products: C = beta C (0 when beta is 0; out was just sized, so contiguous) */
        return beta == 0.0f ? zero(out, s, func) : crl_gpu_tensor_binary_scalar(out, out, beta, CRL_OP_MUL, 0);
    cublasHandle_t h;
    int rc = blas_handle(&h, func);
    if (rc) return rc;
    crl_tensor *c = out, *ctmp = NULL, *atmp = NULL, *btmp = NULL;
    int ldc = 1;
    int out_layout = crl_blas_layout(out, &ldc);
    if (out_layout < 0 || out->strides[0] > 0x7fffffff || out->strides[1] > 0x7fffffff) {
        /* beta != 0 here (beta 0 sized out contiguous): start from out's values */
        ctmp = crl_gpu_contiguous_copy(out, func);
        if (ctmp == NULL) return CRL_ERR_DEVICE;
        c = ctmp;
        out_layout = 0;
        ldc = (int)n;
    }
    const float *pa = NULL, *pb = NULL;
    int ta = 0, tb = 0, lda = 1, ldb = 1;
    rc = operand(a, &atmp, &pa, &ta, &lda, func);
    if (rc == CRL_OK) rc = operand(b, &btmp, &pb, &tb, &ldb, func);
    if (rc == CRL_OK) {
        int fa = ta ^ (transpose_a != 0), fb = tb ^ (transpose_b != 0);
        float *pc = (float *)crl_tensor_data(c);
        if (out_layout == 0)
            rc = gemm_rowmajor(h, fa, fb, m, n, k, alpha, pa, lda, pb, ldb, beta, pc, ldc, func);
        else /* out is C^T stored row-major: C^T = op(B)^T op(A)^T */
            rc = gemm_rowmajor(h, !fb, !fa, n, m, k, alpha, pb, ldb, pa, lda, beta, pc, ldc, func);
    }
    if (rc == CRL_OK && ctmp) rc = crl_gpu_copy_view(out, ctmp, func);
    crl_tensor_free(atmp);
    crl_tensor_free(btmp);
    crl_tensor_free(ctmp);
    return rc;
}

} // namespace

extern "C" int crl_gpu_tensor_gemm(crl_tensor *out, const crl_tensor *a, const crl_tensor *b, int transpose_a,
                                   int transpose_b, float alpha, float beta)
{
    static const char *F = "crl_tensor_gemm";
    int rc = crl_gpu_nonnull(out, F, "out");
    if (rc == CRL_OK) rc = crl_gpu_nonnull(a, F, "a");
    if (rc == CRL_OK) rc = crl_gpu_nonnull(b, F, "b");
    if (rc == CRL_OK) rc = crl_gpu_require(a, F, "a");
    if (rc == CRL_OK) rc = crl_gpu_require(b, F, "b");
    int64_t m = 0, n = 0, k = 0;
    if (rc == CRL_OK) rc = crl_gemm_shapes(&m, &n, &k, out, a, b, transpose_a, transpose_b, beta, CRL_CUDA, F);
    if (rc) return rc;
    if (m == 0 || n == 0) return CRL_OK;
    return gemm_run(out, a, b, transpose_a, transpose_b, alpha, beta, m, n, k, F);
}

/* out (N, O) = in (N, I) weight^T + bias, weight (O, I), bias (O) or NULL
 * (cf. crl_cpu_linear_forward: the same checks and messages). */
extern "C" int crl_gpu_linear_forward(crl_tensor *out, const crl_tensor *in, const crl_tensor *weight,
                                      const crl_tensor *bias)
{
    static const char *F = "crl_linear_forward";
    int rc = crl_gpu_nonnull(out, F, "out");
    if (rc == CRL_OK) rc = crl_linear_forward_check(in, weight, bias, CRL_CUDA, F);
    if (rc) return rc;
    int64_t n = in->sizes[0], i = in->sizes[1], o = weight->sizes[0];
    if (out == in) return crl_fail(CRL_ERR_ARG, F, "out must not be in");
    int64_t sz[2] = {n, o};
    rc = crl_prepare(out, CRL_FLOAT32, CRL_CUDA, 2, sz);
    if (rc) return rc;
    if (n == 0 || o == 0) return CRL_OK;
    if (n > 0x7fffffff || o > 0x7fffffff || i > 0x7fffffff)
        return crl_fail(CRL_ERR_SHAPE, F, "a dimension exceeds 2^31-1");
    CRL_GPU_STREAM(s);
    float *y = (float *)crl_tensor_data(out);
    if (bias) {
        bias_rows_kernel<<<crl_gpu_blocks(n * o), CRL_GPU_THREADS, 0, s>>>(y, (const float *)crl_tensor_data(bias),
                                                                          n, o);
        rc = crl_gpu_launched(F, "bias_rows_kernel");
        if (rc) return rc;
    }
    if (i == 0) return bias ? CRL_OK : zero(out, s, F); /* no products: the bias, or 0 */
    cublasHandle_t h;
    rc = blas_handle(&h, F);
    if (rc) return rc;
    /* (N, O) = (N, I) x (O, I)^T, adding to the bias rows when there are any */
    return gemm_rowmajor(h, 0, 1, n, o, i, 1.0f, (const float *)crl_tensor_data(in), (int)i,
                          (const float *)crl_tensor_data(weight), (int)i, bias ? 1.0f : 0.0f, y, (int)o, F);
}

/* grad_in (N, I) = grad_out (N, O) weight (O, I), overwritten; grad_weight
 * (O, I) += grad_out^T in and grad_bias (O) += column sums of grad_out,
 * accumulated, as on the CPU. Each output may be NULL. */
extern "C" int crl_gpu_linear_backward(crl_tensor *grad_in, crl_tensor *grad_weight, crl_tensor *grad_bias,
                                       const crl_tensor *grad_out, const crl_tensor *in, const crl_tensor *weight)
{
    static const char *F = "crl_linear_backward";
    int rc = crl_linear_backward_check(grad_weight, grad_bias, grad_out, in, weight, CRL_CUDA, F);
    if (rc) return rc;
    int64_t n = in->sizes[0], i = in->sizes[1], o = weight->sizes[0];
    if (n > 0x7fffffff || o > 0x7fffffff || i > 0x7fffffff)
        return crl_fail(CRL_ERR_SHAPE, F, "a dimension exceeds 2^31-1");
    CRL_GPU_STREAM(s);
    const float *gy = (const float *)crl_tensor_data(grad_out);
    cublasHandle_t h = NULL;
    if (grad_in) {
        if (grad_in == in || grad_in == grad_out) return crl_fail(CRL_ERR_ARG, F, "grad_in must be its own tensor");
        rc = crl_prepare(grad_in, CRL_FLOAT32, CRL_CUDA, 2, in->sizes);
        if (rc) return rc;
        if (n > 0 && i > 0) {
            if (o == 0) {
                rc = zero(grad_in, s, F);
            } else if ((rc = blas_handle(&h, F)) == CRL_OK) {
                /* (N, I) = (N, O) x (O, I) */
                rc = gemm_rowmajor(h, 0, 0, n, i, o, 1.0f, gy, (int)o, (const float *)crl_tensor_data(weight),
                                    (int)i, 0.0f, (float *)crl_tensor_data(grad_in), (int)i, F);
            }
            if (rc) return rc;
        }
    }
    if (grad_weight && n > 0 && o > 0 && i > 0) {
        if (h == NULL && (rc = blas_handle(&h, F)) != CRL_OK) return rc;
        /* (O, I) += (N, O)^T x (N, I) */
        rc = gemm_rowmajor(h, 1, 0, o, i, n, 1.0f, gy, (int)o, (const float *)crl_tensor_data(in), (int)i, 1.0f,
                            (float *)crl_tensor_data(grad_weight), (int)i, F);
        if (rc) return rc;
    }
    if (grad_bias && o > 0) {
        bias_grad_kernel<<<crl_gpu_blocks(o), CRL_GPU_THREADS, 0, s>>>((float *)crl_tensor_data(grad_bias), gy, n, o);
        rc = crl_gpu_launched(F, "bias_grad_kernel");
    }
    return rc;
}
