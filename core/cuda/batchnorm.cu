/* cuda/batchnorm.cu -- batch normalisation on the GPU: cuDNN 9's legacy
 * batch-norm API (cudnn_ops.h, CUDNN_BATCHNORM_SPATIAL: one mean and
 * variance per channel over N x H x W; an (N, C) input is (N, C, 1, 1)),
 * with the CPU's semantics (cpu/nn.c):
 *
 *   training   cudnnBatchNormalizationForwardTraining. Its
 *              exponentialAverageFactor is crlab's momentum (the header:
 *              running = new * factor + running * (1 - factor)); it keeps
 *              the unbiased variance in the running average, as crlab and
 *              PyTorch do, and saves the batch mean and 1/sqrt(var + eps):
 *              save_mean / save_invstd as the CPU stores them.
 *   evaluation cudnnBatchNormalizationForwardInference on the running
 *              statistics; save_mean / save_invstd, when given, filled
 *              from them by a small kernel (crl_bn_invstd, as the CPU).
 *   relu       the fused ReLU: a pass over the output after cuDNN; its
 *              backward masks grad_out by relu_out > 0 first.
 *   backward   training: cudnnBatchNormalizationBackward with the saved
 *              statistics and beta = 1 on the parameter gradients (they
 *              accumulate); evaluation (statistics as constants, which
 *              cuDNN has no call for): one block per channel below.
 *
 * cuDNN 9 marks this API CUDNN_DEPRECATED (silent unless
 * CUDNN_WARN_DEPRECATED is defined). Missing optional tensors (weight,
 * bias, one running statistic, grad_in or a parameter gradient) are stood
 * in for by scratch memory, as cuDNN wants every pointer. Nothing here has
 * run on a GPU yet. */
#include "common.cuh"

#include <limits.h>

#include "../math/bn.h"

static const char *const FWD = "crl_batchnorm_forward";
static const char *const BWD = "crl_batchnorm_backward";

/* ---- kernels -------------------------------------------------------------------------- */

__global__ void bn_fill(float *p, int64_t n, float v)
{
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x)
        p[i] = v;
}

__global__ void bn_relu(float *y, int64_t n)
{
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x)
        y[i] = crl_relu(y[i]);
}

/* g where the fused ReLU's output r > 0, else 0 */
__global__ void bn_relu_mask(float *out, const float *g, const float *r, int64_t n)
{
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x)
        out[i] = crl_relu_grad(g[i], r[i]);
}

/* Evaluation mode's saved statistics: the running ones, as mean and 1/std. */
__global__ void bn_eval_stats(float *sm, float *si, const float *rm, const float *rv, int64_t c, float eps)
{
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < c; i += (int64_t)gridDim.x * blockDim.x) {
        sm[i] = rm[i];
        si[i] = (float)crl_bn_invstd(rv[i], eps);
    }
}

enum { BN_THREADS = 256 };

/* Evaluation-mode backward, block b = channel b (the CPU's formulas with
 * the statistics as constants): g' = g masked by the ReLU when fused,
 * grad_bias += sum g', grad_weight += sum g' (x - mean) invstd,
 * grad_in = weight * invstd * g'. Sums in double, in a fixed order per
 * block size: deterministic. gx, gy, x, ro: (N, C, HW); gw, gb, w, sm,
 * si: (C); gx, gw, gb, ro, w may be NULL. */
__global__ void bn_eval_backward(float *gx, float *gw, float *gb, const float *gy, const float *x, const float *ro,
                                 const float *w, const float *sm, const float *si, int64_t n, int64_t c, int64_t hw)
{
    __shared__ double s_g[BN_THREADS], s_gx[BN_THREADS];
    const int64_t ch = blockIdx.x;
    const float mean = sm[ch], invstd = si[ch];
    const float a = (w ? w[ch] : 1.0f) * invstd;
    double acc_g = 0, acc_gx = 0;
    for (int64_t j = threadIdx.x; j < n * hw; j += blockDim.x) {
        int64_t i = (j / hw * c + ch) * hw + j % hw;
        float g = ro ? crl_relu_grad(gy[i], ro[i]) : gy[i];
        acc_g += g;
        acc_gx += (double)g * (x[i] - mean);
        if (gx) gx[i] = a * g;
    }
    s_g[threadIdx.x] = acc_g;
    s_gx[threadIdx.x] = acc_gx;
    __syncthreads();
    for (int half = blockDim.x / 2; half > 0; half /= 2) {
        if ((int)threadIdx.x < half) {
            s_g[threadIdx.x] += s_g[threadIdx.x + half];
            s_gx[threadIdx.x] += s_gx[threadIdx.x + half];
        }
        __syncthreads();
    }
    if (threadIdx.x == 0) {
        if (gb) gb[ch] += (float)s_g[0];
        if (gw) gw[ch] += (float)(s_gx[0] * invstd);
    }
}

/* ---- helpers ------------------------------------------------------------------------------ */

static inline float *dptr(const crl_tensor *t) { return t ? crl_gpu_base<float>(t) + t->offset : NULL; }

/* Pieces of one scratch block, each 256-byte aligned. */
struct carver {
    size_t used;
    char *base;
    size_t take(int64_t floats)
    {
        size_t at = used;
        used += ((size_t)floats * sizeof(float) + 255) & ~(size_t)255;
        return at;
    }
    float *at(size_t off) const { return (float *)(base + off); }
};

/* The data and per-channel descriptors of an (N, C) or (N, C, H, W) input;
 * destroyed with the object. */
struct bn_desc {
    cudnnTensorDescriptor_t x = NULL, p = NULL;
    ~bn_desc()
    {
        if (x) cudnnDestroyTensorDescriptor(x);
        if (p) cudnnDestroyTensorDescriptor(p);
    }
    int make(const crl_tensor *in, const char *func)
    {
        int64_t d[4] = {in->sizes[0], in->sizes[1], in->ndim == 4 ? in->sizes[2] : 1, in->ndim == 4 ? in->sizes[3] : 1};
        for (int i = 0; i < 4; i++)
            if (d[i] > INT_MAX)
                return crl_fail(CRL_ERR_UNSUPPORTED, func, "in %s: a dimension beyond cuDNN's int descriptors",
                                crl_shape(in));
        CRL_CUDNN_TRY(cudnnCreateTensorDescriptor(&x), func);
        CRL_CUDNN_TRY(cudnnCreateTensorDescriptor(&p), func);
        CRL_CUDNN_TRY(cudnnSetTensor4dDescriptor(x, CUDNN_TENSOR_NCHW, CUDNN_DATA_FLOAT, (int)d[0], (int)d[1], (int)d[2],
                                                 (int)d[3]), func);
        CRL_CUDNN_TRY(cudnnDeriveBNTensorDescriptor(p, x, CUDNN_BATCHNORM_SPATIAL), func);
        return CRL_OK;
    }
};

#define BN_LAUNCH(func, kernel, n, ...)                                                                     \
    do {                                                                                                    \
        kernel<<<crl_gpu_blocks(n), CRL_GPU_THREADS, 0, crl_gpu_stream()>>>(__VA_ARGS__);                   \
        int lrc_ = crl_gpu_launched((func), #kernel);                                                       \
        if (lrc_) return lrc_;                                                                              \
    } while (0)

/* ---- forward ------------------------------------------------------------------------------ */

extern "C" int crl_gpu_batchnorm_forward(crl_tensor *out, crl_tensor *save_mean, crl_tensor *save_invstd,
                                         crl_tensor *running_mean, crl_tensor *running_var, const crl_tensor *in,
                                         const crl_tensor *weight, const crl_tensor *bias, int training,
                                         float momentum, float eps, int relu)
{
    int64_t n, c, hw;
    int rc = crl_batchnorm_check_forward(&n, &c, &hw, out, save_mean, save_invstd, running_mean, running_var, in,
                                         weight, bias, training, momentum, eps, CRL_CUDA, FWD);
    if (rc) return rc;
    int save = save_mean && save_invstd;
    if (save && ((rc = crl_prepare(save_mean, CRL_FLOAT32, CRL_CUDA, 1, &c)) ||
                 (rc = crl_prepare(save_invstd, CRL_FLOAT32, CRL_CUDA, 1, &c))))
        return rc;
    if (out != in && (rc = crl_prepare(out, CRL_FLOAT32, CRL_CUDA, in->ndim, in->sizes))) return rc;
    int64_t numel = n * c * hw;
    /* every launch and copy below is on crl_gpu_stream(): never its failure
     * value 0, the legacy default stream */
    if (crl_gpu_stream() == 0) return CRL_ERR_DEVICE;
    if (!training && save && c > 0)
        BN_LAUNCH(FWD, bn_eval_stats, c, dptr(save_mean), dptr(save_invstd), dptr(running_mean), dptr(running_var), c,
                  eps);
    if (numel == 0) return CRL_OK;
    cudnnHandle_t h = crl_gpu_cudnn(FWD);
    if (h == NULL) return CRL_ERR_DEVICE;
    bn_desc d;
    if ((rc = d.make(in, FWD))) return rc;

    const float *x = dptr(in);
    float *y = dptr(out), *rm = dptr(running_mean), *rv = dptr(running_var);
    /* in place (out is in): cuDNN does not promise x == y, so through scratch */
    int in_place = y == x;
    carver cv = {0, NULL};
    size_t o_ones = weight ? 0 : cv.take(c), o_zeros = bias ? 0 : cv.take(c);
    size_t o_dummy = training && (rm == NULL) != (rv == NULL) ? cv.take(c) : 0;
    size_t o_tmp = in_place ? cv.take(numel) : 0;
    if (cv.used) {
        void *p;
        if ((rc = crl_gpu_scratch(&p, (int64_t)cv.used, FWD))) return rc;
        cv.base = (char *)p;
    }
    const float *scale = dptr(weight), *shift = dptr(bias);
    if (!weight) {
        BN_LAUNCH(FWD, bn_fill, c, cv.at(o_ones), c, 1.0f);
        scale = cv.at(o_ones);
    }
    if (!bias) {
        CRL_GPU_TRY(cudaMemsetAsync(cv.at(o_zeros), 0, (size_t)c * sizeof(float), crl_gpu_stream()), FWD);
        shift = cv.at(o_zeros);
    }
    /* cuDNN takes both running statistics or neither; the CPU updates
     * whichever is given: the other goes to a throw-away buffer */
    if (training && rm == NULL && rv != NULL) rm = cv.at(o_dummy);
    if (training && rv == NULL && rm != NULL) rv = cv.at(o_dummy);
    float *yy = in_place ? cv.at(o_tmp) : y;
    const float one = 1.0f, zero = 0.0f;
    if (training)
        CRL_CUDNN_TRY(cudnnBatchNormalizationForwardTraining(h, CUDNN_BATCHNORM_SPATIAL, &one, &zero, d.x, x, d.x, yy,
                                                             d.p, scale, shift, (double)momentum, rm, rv, (double)eps,
                                                             dptr(save_mean), dptr(save_invstd)), FWD);
    else
        CRL_CUDNN_TRY(cudnnBatchNormalizationForwardInference(h, CUDNN_BATCHNORM_SPATIAL, &one, &zero, d.x, x, d.x, yy,
                                                              d.p, scale, shift, rm, rv, (double)eps), FWD);
    if (relu) BN_LAUNCH(FWD, bn_relu, numel, yy, numel);
    if (in_place)
        CRL_GPU_TRY(cudaMemcpyAsync(y, yy, (size_t)numel * sizeof(float), cudaMemcpyDeviceToDevice, crl_gpu_stream()),
                    FWD);
    return CRL_OK;
}

/* ---- backward ----------------------------------------------------------------------------- */

extern "C" int crl_gpu_batchnorm_backward(crl_tensor *grad_in, crl_tensor *grad_weight, crl_tensor *grad_bias,
                                          const crl_tensor *grad_out, const crl_tensor *in, const crl_tensor *weight,
                                          const crl_tensor *save_mean, const crl_tensor *save_invstd, int training,
                                          const crl_tensor *relu_out)
{
    int64_t n, c, hw;
    int rc = crl_batchnorm_check_backward(&n, &c, &hw, grad_in, grad_weight, grad_bias, grad_out, in, weight,
                                          save_mean, save_invstd, relu_out, CRL_CUDA, BWD);
    if (rc) return rc;
    if (grad_in && (rc = crl_prepare(grad_in, CRL_FLOAT32, CRL_CUDA, in->ndim, in->sizes))) return rc;
    int64_t numel = n * c * hw;
    if (numel == 0 || (!grad_in && !grad_weight && !grad_bias)) return CRL_OK;
    if (crl_gpu_stream() == 0) return CRL_ERR_DEVICE; /* not the legacy default stream */
    const float *x = dptr(in), *gy = dptr(grad_out), *ro = dptr(relu_out);
    const float *sm = dptr(save_mean), *si = dptr(save_invstd);
    float *gx = dptr(grad_in), *gw = dptr(grad_weight), *gb = dptr(grad_bias);
    if (!training) {
        if (c > INT_MAX) return crl_fail(CRL_ERR_UNSUPPORTED, BWD, "in %s: too many channels", crl_shape(in));
        bn_eval_backward<<<(unsigned)c, BN_THREADS, 0, crl_gpu_stream()>>>(gx, gw, gb, gy, x, ro, dptr(weight), sm, si,
                                                                          n, c, hw);
        return crl_gpu_launched(BWD, "bn_eval_backward");
    }
    cudnnHandle_t h = crl_gpu_cudnn(BWD);
    if (h == NULL) return CRL_ERR_DEVICE;
    bn_desc d;
    if ((rc = d.make(in, BWD))) return rc;
    carver cv = {0, NULL};
    size_t o_ones = weight ? 0 : cv.take(c), o_dw = gw ? 0 : cv.take(c), o_db = gb ? 0 : cv.take(c);
    size_t o_mask = ro ? cv.take(numel) : 0, o_dx = gx ? 0 : cv.take(numel);
    if (cv.used) {
        void *p;
        if ((rc = crl_gpu_scratch(&p, (int64_t)cv.used, BWD))) return rc;
        cv.base = (char *)p;
    }
    const float *scale = dptr(weight);
    if (!weight) {
        BN_LAUNCH(BWD, bn_fill, c, cv.at(o_ones), c, 1.0f);
        scale = cv.at(o_ones);
    }
    /* throw-away parameter gradients start at zero: cuDNN adds into them */
    if (!gw) {
        gw = cv.at(o_dw);
        CRL_GPU_TRY(cudaMemsetAsync(gw, 0, (size_t)c * sizeof(float), crl_gpu_stream()), BWD);
    }
    if (!gb) {
        gb = cv.at(o_db);
        CRL_GPU_TRY(cudaMemsetAsync(gb, 0, (size_t)c * sizeof(float), crl_gpu_stream()), BWD);
    }
    if (ro) {
        BN_LAUNCH(BWD, bn_relu_mask, numel, cv.at(o_mask), gy, ro, numel);
        gy = cv.at(o_mask);
    }
    if (!gx) gx = cv.at(o_dx);
    /* grad_in overwritten (beta 0), parameter gradients accumulated (beta 1).
     * With the saved statistics given, epsilon does not enter the result;
     * the call still wants one (the forward's is not passed to backward). */
    const float one = 1.0f, zero = 0.0f;
    const double eps_unused = 1e-5;
    CRL_CUDNN_TRY(cudnnBatchNormalizationBackward(h, CUDNN_BATCHNORM_SPATIAL, &one, &zero, &one, &one, d.x, x, d.x, gy,
                                                  d.x, gx, d.p, scale, gw, gb, eps_unused, sm, si), BWD);
    return CRL_OK;
}
