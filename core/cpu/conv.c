/* cpu/conv.c -- the reference 2-D convolution: im2col + one OpenBLAS sgemm per chunk
 * of images. The images of a chunk are unrolled side by side into
 * col (C*KH*KW, nb*OH*OW), so each GEMM is large enough for BLAS to thread
 * well; the (F, nb*OH*OW) product is then permuted into (nb, F, OH, OW).
 * Backward recomputes the chunk's columns, accumulates the weight gradient
 * from them, and reuses the same buffer for the column gradient that col2im
 * folds back into the input gradient. Inputs must be contiguous NCHW. */
#include <cblas.h>
#include <string.h>
#ifdef _OPENMP
#include <omp.h>
#endif

#include "../internal.h"
#include "cpu.h"
#include "../backend.h"

/* Floats of workspace a chunk may use, so memory stays bounded whatever
 * the batch size (64 MiB by default). */
static int64_t ws_limit = (int64_t)16 << 20;

int64_t crl_conv2d_workspace_limit(int64_t floats)
{
    int64_t old = ws_limit;
    if (floats > 0) ws_limit = floats;
    return old;
}

typedef struct {
    int64_t n, c, h, w, f, kh, kw, oh, ow;
    int64_t ckk, ohw;
    int64_t dh, dw; /* dilation */
} conv_shape;

/* The checks of the plan-less calls for a kernel of `device` (the CUDA
 * backend's runs them too, through crl_conv2d_check_*: one set of words). */
static int check_conv(conv_shape *s, const crl_tensor *in, const crl_tensor *weight,
                      const crl_tensor *bias, const crl_conv2d_params *p, int device, const char *func)
{
    if (in == NULL) return crl_fail(CRL_ERR_ARG, func, "argument '%s' is NULL", "in");
    if (weight == NULL) return crl_fail(CRL_ERR_ARG, func, "argument '%s' is NULL", "weight");
    if (p == NULL) return crl_fail(CRL_ERR_ARG, func, "argument 'p' is NULL");
    int rc = crl_require_device(in, device, func, "in");
    if (rc == CRL_OK) rc = crl_require_device(weight, device, func, "weight");
    if (rc == CRL_OK && bias) rc = crl_require_device(bias, device, func, "bias");
    if (rc) return rc;
    if (in->dtype != CRL_FLOAT32 || in->ndim != 4 || !crl_tensor_is_contiguous(in))
        return crl_fail(CRL_ERR_SHAPE, func, "in must be a contiguous float32 (N, C, H, W) tensor, got %s %s",
                        crl_dtype_name(in->dtype), crl_shape(in));
    if (weight->dtype != CRL_FLOAT32 || weight->ndim != 4 || !crl_tensor_is_contiguous(weight))
        return crl_fail(CRL_ERR_SHAPE, func, "weight must be a contiguous float32 (F, C, KH, KW) tensor, got %s",
                        crl_shape(weight));
    if (weight->sizes[1] != in->sizes[1])
        return crl_fail(CRL_ERR_SHAPE, func, "in %s has %lld channels but weight %s expects %lld",
                        crl_shape(in), (long long)in->sizes[1], crl_shape(weight),
                        (long long)weight->sizes[1]);
    if (p->stride_h < 1 || p->stride_w < 1 || p->pad_h < 0 || p->pad_w < 0)
        return crl_fail(CRL_ERR_ARG, func, "stride (%d, %d) must be >= 1 and padding (%d, %d) >= 0",
                        p->stride_h, p->stride_w, p->pad_h, p->pad_w);
    if (p->groups > 1)
        return crl_fail(CRL_ERR_UNSUPPORTED, func, "groups = %d: grouped convolutions run through a crl_conv2d_plan",
                        p->groups);
    s->dh = p->dilation_h > 1 ? p->dilation_h : 1;
    s->dw = p->dilation_w > 1 ? p->dilation_w : 1;
    s->n = in->sizes[0]; s->c = in->sizes[1]; s->h = in->sizes[2]; s->w = in->sizes[3];
    s->f = weight->sizes[0]; s->kh = weight->sizes[2]; s->kw = weight->sizes[3];
    s->oh = crl_conv_out_len(s->h, s->kh, p->pad_h, p->dilation_h, p->stride_h);
    s->ow = crl_conv_out_len(s->w, s->kw, p->pad_w, p->dilation_w, p->stride_w);
    if (s->oh < 0 || s->ow < 0)
        return crl_fail(CRL_ERR_SHAPE, func, "kernel %lldx%lld (dilation %lld, %lld) is larger than the padded input %s",
                        (long long)s->kh, (long long)s->kw, (long long)s->dh, (long long)s->dw, crl_shape(in));
    s->ckk = s->c * s->kh * s->kw;
    s->ohw = s->oh * s->ow;
    if (bias) {
        if (bias->dtype != CRL_FLOAT32 || crl_tensor_numel(bias) != s->f || !crl_tensor_is_contiguous(bias))
            return crl_fail(CRL_ERR_SHAPE, func, "bias %s must be a contiguous float32 vector of %lld",
                            crl_shape(bias), (long long)s->f);
    }
    return CRL_OK;
}

/* The output columns ox whose input column ox * stride - pad + kj lies in
 * [0, w): [*lo, *hi). */
static void valid_range(int64_t *lo, int64_t *hi, int64_t kj, int64_t ow, int64_t w, int stride, int pad)
{
    int64_t a = pad - kj; /* ox * stride >= a */
    int64_t l = a <= 0 ? 0 : (a + stride - 1) / stride;
    int64_t b = w + pad - kj; /* ox * stride < b */
    int64_t h = b <= 0 ? 0 : (b + stride - 1) / stride;
    if (h > ow) h = ow;
    if (l > h) l = h;
    *lo = l;
    *hi = h;
}

/* col[(c, ki, kj), b * OHW + (oy, ox)] for images x[0..nb); one thread. */
static void im2col(float *col, const float *x, int64_t nb, const conv_shape *s, const crl_conv2d_params *p)
{
    int64_t ld = nb * s->ohw;
    for (int64_t c = 0; c < s->c; c++)
        for (int64_t ki = 0; ki < s->kh; ki++)
            for (int64_t kj = 0; kj < s->kw; kj++) {
                int64_t lo, hi;
                valid_range(&lo, &hi, kj * s->dw, s->ow, s->w, p->stride_w, p->pad_w);
                int64_t off = kj * s->dw - p->pad_w;
                float *row = col + ((c * s->kh + ki) * s->kw + kj) * ld;
                for (int64_t b = 0; b < nb; b++) {
                    const float *plane = x + (b * s->c + c) * s->h * s->w;
                    for (int64_t oy = 0; oy < s->oh; oy++) {
                        int64_t iy = oy * p->stride_h - p->pad_h + ki * s->dh;
                        float *dst = row + b * s->ohw + oy * s->ow;
                        if (iy < 0 || iy >= s->h) {
                            memset(dst, 0, (size_t)s->ow * sizeof(float));
                            continue;
                        }
                        const float *src = plane + iy * s->w;
                        for (int64_t ox = 0; ox < lo; ox++) dst[ox] = 0.0f;
                        if (p->stride_w == 1) {
                            memcpy(dst + lo, src + lo + off, (size_t)(hi - lo) * sizeof(float));
                        } else {
                            for (int64_t ox = lo; ox < hi; ox++) dst[ox] = src[ox * p->stride_w + off];
                        }
                        for (int64_t ox = hi; ox < s->ow; ox++) dst[ox] = 0.0f;
                    }
                }
            }
}

/* The adjoint of im2col: gx[0..nb) = fold(gcol); one thread. */
static void col2im(float *gx, const float *gcol, int64_t nb, const conv_shape *s, const crl_conv2d_params *p)
{
    int64_t ld = nb * s->ohw;
    memset(gx, 0, (size_t)(nb * s->c * s->h * s->w) * sizeof(float));
    for (int64_t c = 0; c < s->c; c++)
        for (int64_t ki = 0; ki < s->kh; ki++)
            for (int64_t kj = 0; kj < s->kw; kj++) {
                int64_t lo, hi;
                valid_range(&lo, &hi, kj * s->dw, s->ow, s->w, p->stride_w, p->pad_w);
                int64_t off = kj * s->dw - p->pad_w;
                const float *row = gcol + ((c * s->kh + ki) * s->kw + kj) * ld;
                for (int64_t b = 0; b < nb; b++) {
                    float *plane = gx + (b * s->c + c) * s->h * s->w;
                    for (int64_t oy = 0; oy < s->oh; oy++) {
                        int64_t iy = oy * p->stride_h - p->pad_h + ki * s->dh;
                        if (iy < 0 || iy >= s->h) continue;
                        float *dst = plane + iy * s->w;
                        const float *src = row + b * s->ohw + oy * s->ow;
                        if (p->stride_w == 1) {
                            for (int64_t ox = lo; ox < hi; ox++) dst[ox + off] += src[ox];
                        } else {
                            for (int64_t ox = lo; ox < hi; ox++) dst[ox * p->stride_w + off] += src[ox];
                        }
                    }
                }
            }
}

int crl_conv2d_check_param_grads(const crl_tensor *grad_weight, const crl_tensor *grad_bias, const crl_tensor *weight,
                                 const char *func)
{
    if (grad_weight && (grad_weight->dtype != CRL_FLOAT32 || !crl_tensor_is_contiguous(grad_weight) ||
                        crl_tensor_numel(grad_weight) != crl_tensor_numel(weight)))
        return crl_fail(CRL_ERR_SHAPE, func, "grad_weight %s must be contiguous float32 like weight %s",
                        crl_shape(grad_weight), crl_shape(weight));
    if (grad_bias && (grad_bias->dtype != CRL_FLOAT32 || !crl_tensor_is_contiguous(grad_bias) ||
                      crl_tensor_numel(grad_bias) != weight->sizes[0]))
        return crl_fail(CRL_ERR_SHAPE, func, "grad_bias %s must be a contiguous float32 vector of %lld",
                        crl_shape(grad_bias), (long long)weight->sizes[0]);
    return CRL_OK;
}

static int check_forward(conv_shape *s, const crl_tensor *out, const crl_tensor *in, const crl_tensor *weight,
                         const crl_tensor *bias, const crl_conv2d_params *p, int device, const char *func)
{
    if (out == NULL) return crl_fail(CRL_ERR_ARG, func, "argument '%s' is NULL", "out");
    int rc = check_conv(s, in, weight, bias, p, device, func);
    if (rc) return rc;
    if (out == in || out == weight) return crl_fail(CRL_ERR_ARG, func, "out must not be an input");
    return CRL_OK;
}

static int check_backward(conv_shape *s, const crl_tensor *grad_in, const crl_tensor *grad_weight,
                          const crl_tensor *grad_bias, const crl_tensor *grad_out, const crl_tensor *in,
                          const crl_tensor *weight, const crl_conv2d_params *p, int device, const char *func)
{
    if (grad_out == NULL) return crl_fail(CRL_ERR_ARG, func, "argument '%s' is NULL", "grad_out");
    int rc = check_conv(s, in, weight, NULL, p, device, func);
    if (rc) return rc;
    if (grad_out->dtype != CRL_FLOAT32 || grad_out->ndim != 4 || !crl_tensor_is_contiguous(grad_out) ||
        grad_out->sizes[0] != s->n || grad_out->sizes[1] != s->f || grad_out->sizes[2] != s->oh ||
        grad_out->sizes[3] != s->ow)
        return crl_fail(CRL_ERR_SHAPE, func,
                        "grad_out %s must be a contiguous float32 (%lld, %lld, %lld, %lld) for in %s, weight %s",
                        crl_shape(grad_out), (long long)s->n, (long long)s->f, (long long)s->oh,
                        (long long)s->ow, crl_shape(in), crl_shape(weight));
    if ((rc = crl_conv2d_check_param_grads(grad_weight, grad_bias, weight, func))) return rc;
    if (grad_in && (grad_in == in || grad_in == grad_out))
        return crl_fail(CRL_ERR_ARG, func, "grad_in must be a tensor of its own");
    return CRL_OK;
}

int crl_conv2d_check_forward(const crl_tensor *out, const crl_tensor *in, const crl_tensor *weight,
                             const crl_tensor *bias, const crl_conv2d_params *p, int device, const char *func)
{
    conv_shape s;
    return check_forward(&s, out, in, weight, bias, p, device, func);
}

int crl_conv2d_check_backward(const crl_tensor *grad_in, const crl_tensor *grad_weight, const crl_tensor *grad_bias,
                              const crl_tensor *grad_out, const crl_tensor *in, const crl_tensor *weight,
                              const crl_conv2d_params *p, int device, const char *func)
{
    conv_shape s;
    return check_backward(&s, grad_in, grad_weight, grad_bias, grad_out, in, weight, p, device, func);
}

static int grow_workspace(crl_tensor *ws, int64_t need, const char *func)
{
    if (ws == NULL) return crl_fail(CRL_ERR_ARG, func, "argument 'workspace' is NULL");
    if (ws->dtype != CRL_FLOAT32 || ws->device != CRL_CPU)
        return crl_fail(CRL_ERR_ARG, func, "workspace must be a CPU float32 tensor");
    if (ws->storage != NULL && ws->storage->nbytes >= (ws->offset + need) * 4 && ws->ndim == 1 &&
        ws->sizes[0] >= need)
        return CRL_OK;
    return crl_tensor_resize(ws, 1, &need);
}

static int thread_count(void)
{
#ifdef _OPENMP
    return omp_get_max_threads();
#else
    return 1;
#endif
}

static int thread_id(void)
{
#ifdef _OPENMP
    return omp_get_thread_num();
#else
    return 0;
#endif
}

/* Threads split the batch into contiguous slices; each works through its
 * slice in chunks of nb images with its own part of the workspace and a
 * single-threaded sgemm, so no thread pools compete. */
typedef struct {
    int nt;          /* threads */
    int64_t nb;      /* images per chunk */
    int64_t per;     /* floats of workspace per thread */
} conv_plan;

static conv_plan plan(const conv_shape *s, int64_t extra_per_thread)
{
    conv_plan pl;
    pl.nt = thread_count();
    if (pl.nt > s->n) pl.nt = (int)(s->n > 0 ? s->n : 1);
    int64_t per_image = (s->ckk + s->f) * s->ohw;
    int64_t budget = ws_limit / pl.nt - extra_per_thread;
    pl.nb = per_image > 0 ? budget / per_image : s->n;
    if (pl.nb < 1) pl.nb = 1;
    int64_t slice = (s->n + pl.nt - 1) / pl.nt;
    if (pl.nb > slice) pl.nb = slice;
    pl.per = per_image * pl.nb + extra_per_thread;
    return pl;
}

/* Thread t's private weight gradient (F * CKK), after its columns and
 * permuted output gradient in the workspace. */
static float *private_grad(float *ws, int t, const conv_plan *pl, const conv_shape *s)
{
    return ws + t * pl->per + (s->ckk + s->f) * pl->nb * s->ohw;
}

/* Thread t's images: [*first, *last). */
static void slice_of(int64_t *first, int64_t *last, int t, const conv_plan *pl, int64_t n)
{
    int64_t slice = (n + pl->nt - 1) / pl->nt;
    *first = t * slice < n ? t * slice : n;
    *last = *first + slice < n ? *first + slice : n;
}

int crl_cpu_conv2d_forward(crl_tensor *out, const crl_tensor *in, const crl_tensor *weight,
                       const crl_tensor *bias, const crl_conv2d_params *p, crl_tensor *workspace)
{
    conv_shape s;
    int rc = check_forward(&s, out, in, weight, bias, p, CRL_CPU, __func__);
    if (rc) return rc;
    int64_t osz[4] = {s.n, s.f, s.oh, s.ow};
    rc = crl_prepare(out, CRL_FLOAT32, CRL_CPU, 4, osz);
    if (rc) return rc;
    conv_plan pl = plan(&s, 0);
    rc = grow_workspace(workspace, pl.per * pl.nt, __func__);
    if (rc) return rc;
    float *ws = crl_tensor_data(workspace);
    const float *x = crl_tensor_data(in), *wt = crl_tensor_data(weight);
    const float *bs = bias ? crl_tensor_data(bias) : NULL;
    float *y = crl_tensor_data(out);
#pragma omp parallel num_threads(pl.nt)
    {
        int t = thread_id();
        int64_t first, last;
        slice_of(&first, &last, t, &pl, s.n);
        float *col = ws + t * pl.per;
        float *tmp = col + s.ckk * pl.nb * s.ohw;
        for (int64_t n0 = first; n0 < last; n0 += pl.nb) {
            int64_t cnt = last - n0 < pl.nb ? last - n0 : pl.nb;
            int64_t ld = cnt * s.ohw;
            im2col(col, x + n0 * s.c * s.h * s.w, cnt, &s, p);
            /* tmp (F, cnt*OHW) = W (F, CKK) col (CKK, cnt*OHW) */
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)s.f, (int)ld, (int)s.ckk, 1.0f,
                        wt, (int)s.ckk, col, (int)ld, 0.0f, tmp, (int)ld);
            for (int64_t b = 0; b < cnt; b++)
                for (int64_t f = 0; f < s.f; f++) {
                    float *dst = y + ((n0 + b) * s.f + f) * s.ohw;
                    const float *src = tmp + f * ld + b * s.ohw;
                    float add = bs ? bs[f] : 0.0f;
                    for (int64_t q = 0; q < s.ohw; q++) dst[q] = src[q] + add;
                }
        }
    }
    return CRL_OK;
}

int crl_cpu_conv2d_backward(crl_tensor *grad_in, crl_tensor *grad_weight, crl_tensor *grad_bias,
                        const crl_tensor *grad_out, const crl_tensor *in, const crl_tensor *weight,
                        const crl_conv2d_params *p, crl_tensor *workspace)
{
    conv_shape s;
    int rc = check_backward(&s, grad_in, grad_weight, grad_bias, grad_out, in, weight, p, CRL_CPU, __func__);
    if (rc) return rc;
    if (grad_in && (rc = crl_prepare(grad_in, CRL_FLOAT32, CRL_CPU, 4, in->sizes))) return rc;
    const float *x = crl_tensor_data(in), *wt = crl_tensor_data(weight), *gy = crl_tensor_data(grad_out);
    float *gw = grad_weight ? crl_tensor_data(grad_weight) : NULL;
    float *gb = grad_bias ? crl_tensor_data(grad_bias) : NULL;
    float *gx = grad_in ? crl_tensor_data(grad_in) : NULL;
    if (gb) {
#pragma omp parallel for schedule(static)
        for (int64_t f = 0; f < s.f; f++) {
            double acc = 0;
            for (int64_t n = 0; n < s.n; n++) {
                const float *g = gy + (n * s.f + f) * s.ohw;
                for (int64_t q = 0; q < s.ohw; q++) acc += g[q];
            }
            gb[f] += (float)acc;
        }
    }
    if (!gw && !gx) return CRL_OK;
    /* each thread accumulates its weight gradient privately (F * CKK) */
    int64_t wsize = s.f * s.ckk;
    conv_plan pl = plan(&s, gw ? wsize : 0);
    rc = grow_workspace(workspace, pl.per * pl.nt, __func__);
    if (rc) return rc;
    float *ws = crl_tensor_data(workspace);
#pragma omp parallel num_threads(pl.nt)
    {
        int t = thread_id();
        int64_t first, last;
        slice_of(&first, &last, t, &pl, s.n);
        float *col = ws + t * pl.per;
        float *gperm = col + s.ckk * pl.nb * s.ohw;
        float *gw_t = private_grad(ws, t, &pl, &s);
        if (gw) memset(gw_t, 0, (size_t)wsize * sizeof(float));
        for (int64_t n0 = first; n0 < last; n0 += pl.nb) {
            int64_t cnt = last - n0 < pl.nb ? last - n0 : pl.nb;
            int64_t ld = cnt * s.ohw;
            for (int64_t b = 0; b < cnt; b++)
                for (int64_t f = 0; f < s.f; f++)
                    memcpy(gperm + f * ld + b * s.ohw, gy + ((n0 + b) * s.f + f) * s.ohw,
                           (size_t)s.ohw * sizeof(float));
            if (gw) {
                im2col(col, x + n0 * s.c * s.h * s.w, cnt, &s, p);
                /* gW_t (F, CKK) += gperm (F, ld) col^T (ld, CKK) */
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)s.f, (int)s.ckk, (int)ld, 1.0f,
                            gperm, (int)ld, col, (int)ld, 1.0f, gw_t, (int)s.ckk);
            }
            if (gx) {
                /* gcol (CKK, ld) = W^T (CKK, F) gperm (F, ld), into the col buffer */
                cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, (int)s.ckk, (int)ld, (int)s.f, 1.0f,
                            wt, (int)s.ckk, gperm, (int)ld, 0.0f, col, (int)ld);
                col2im(gx + n0 * s.c * s.h * s.w, col, cnt, &s, p);
            }
        }
    }
    if (gw) {
        /* sum the private gradients in thread order: deterministic */
#pragma omp parallel for schedule(static)
        for (int64_t i = 0; i < wsize; i++) {
            float acc = gw[i];
            for (int t = 0; t < pl.nt; t++) acc += private_grad(ws, t, &pl, &s)[i];
            gw[i] = acc;
        }
    }
    return CRL_OK;
}
