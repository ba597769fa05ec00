/* cuda/conv.cu -- convolution plans on the GPU: cuDNN 9 through its legacy
 * (v7-style) API, cudnn_cnn.h: cudnnConvolutionForward / BackwardData /
 * BackwardFilter / BackwardBias, with the algorithms chosen by
 * cudnnGetConvolution*Algorithm_v7 (heuristics) or timed once per shape by
 * cudnnFindConvolution*AlgorithmEx (CRL_CUDA_BENCHMARK). cuDNN 9 marks this
 * whole API CUDNN_DEPRECATED (warnings only with CUDNN_WARN_DEPRECATED
 * defined); it is still shipped and documented, and is what PyTorch's v7
 * path uses.
 *
 * Same semantics as cpu/conv_plan.c: out overwritten (+ bias), grad_in
 * overwritten, grad_weight / grad_bias accumulated (cuDNN's beta = 1), any
 * gradient may be NULL; groups, dilation, stride and symmetric padding as
 * in crl_conv2d_params; the argument checks are the CPU's own
 * (crl_conv2d_plan_check_*), so both devices refuse with one message.
 *
 * The plan object is the CPU's; this file keeps its state in the plan's
 * device slot: cuDNN descriptors and the chosen algorithm per pass for the
 * last few input shapes (and switch values) seen. The plan's backend and
 * algorithm settings (oneDNN / reference, direct / winograd) are CPU
 * matters and are ignored here.
 *
 * bf16 mixed precision (CRL_CUDA_BF16, an entry key like the other
 * switches): the operands are rounded to bfloat16 copies (math/bf16.h) and
 * cuDNN runs its PSEUDO_BFLOAT16_CONFIG -- x, w, y (and dx, dw, dy)
 * CUDNN_DATA_BFLOAT16, the convolution descriptor's compute type
 * CUDNN_DATA_FLOAT, tensor-op math -- the one bf16 configuration the legacy
 * API documents (cuDNN's cudnn_cnn library reference, the supported data
 * type configurations of cudnnConvolutionForward / BackwardData /
 * BackwardFilter). Its outputs are bf16, so the results come back through
 * scratch: out and grad_in converted (exactly) to float32, the bf16 weight
 * gradient added into the float32 grad_weight; the bias and its gradient
 * stay float32 throughout. Accumulation inside cuDNN is float32.
 *
 * Layout: plain NCHW fp32, as every CUDA tensor. NHWC (channels-last),
 * which tensor-core kernels prefer, was not measured: there was no GPU where
 * this was written. Nothing here has run on a GPU yet. */
#include "common.cuh"
#include "bf16.cuh"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const FWD = "crl_conv2d_plan_forward";
static const char *const BWD = "crl_conv2d_plan_backward";

enum { CACHE = 4, PASS_FWD = 0, PASS_DATA = 1, PASS_FILTER = 2, MAX_PERF = 64 };

struct conv_entry {
    int used;
    int64_t n, c, h, w, f, kh, kw; /* the key: the call's shape... */
    int64_t cg, wnumel;             /* input channels per group, weight elements */
    int tf32, det, bench, ws_mb;    /* ...and the switches when the entry was made */
    int bf16;                        /* x, y, wd are bf16 (CRL_CUDA_BF16); yf the float32 y for the bias */
    uint64_t stamp;
    cudnnTensorDescriptor_t x, y, b; /* in / grad_in, out / grad_out, bias (1, F, 1, 1) */
    cudnnTensorDescriptor_t yf;      /* bf16 entries only: out / grad_out as the float32 tensors they are */
    cudnnFilterDescriptor_t wd;
    /* one convolution descriptor per pass: each carries its own math type,
     * the one of the algorithm chosen for that pass */
    cudnnConvolutionDescriptor_t conv[3];
    int chosen[3], algo[3], timed[3];
    cudnnMathType_t math[3];
    size_t ws[3];
};

struct conv_state {
    uint64_t clock;
    conv_entry cache[CACHE];
};

static void entry_clear(conv_entry *e)
{
    if (e->x) cudnnDestroyTensorDescriptor(e->x);
    if (e->y) cudnnDestroyTensorDescriptor(e->y);
    if (e->b) cudnnDestroyTensorDescriptor(e->b);
    if (e->yf) cudnnDestroyTensorDescriptor(e->yf);
    if (e->wd) cudnnDestroyFilterDescriptor(e->wd);
    for (int i = 0; i < 3; i++)
        if (e->conv[i]) cudnnDestroyConvolutionDescriptor(e->conv[i]);
    memset(e, 0, sizeof *e);
}

/* The slot's destructor, called by crl_conv2d_plan_free (host-only calls). */
static void state_destroy(void *p)
{
    conv_state *st = (conv_state *)p;
    for (int i = 0; i < CACHE; i++) entry_clear(&st->cache[i]);
    free(st);
}

static int state_of(conv_state **out, crl_conv2d_plan *pl, const char *func)
{
    crl_conv2d_device_slot *slot = crl_conv2d_plan_device_slot(pl);
    if (slot->state == NULL) {
        conv_state *st = (conv_state *)calloc(1, sizeof *st);
        if (st == NULL) return crl_fail(CRL_ERR_NOMEM, func, "out of host memory for a plan's CUDA state");
        slot->state = st;
        slot->destroy = state_destroy;
    }
    *out = (conv_state *)slot->state;
    return CRL_OK;
}

/* Descriptors of one shape; the caller clears the entry on failure. */
static int build(conv_entry *e, const crl_conv2d_shape *s, const crl_conv2d_params *p, const char *func)
{
    const int64_t dims[] = {s->n, s->c, s->h, s->w, s->f, s->kh, s->kw, s->oh, s->ow};
    for (size_t i = 0; i < sizeof dims / sizeof dims[0]; i++)
        if (dims[i] > INT_MAX)
            return crl_fail(CRL_ERR_UNSUPPORTED, func, "a dimension of %lld is beyond cuDNN's int descriptors",
                            (long long)dims[i]);
    CRL_CUDNN_TRY(cudnnCreateTensorDescriptor(&e->x), func);
    CRL_CUDNN_TRY(cudnnCreateTensorDescriptor(&e->y), func);
    CRL_CUDNN_TRY(cudnnCreateTensorDescriptor(&e->b), func);
    CRL_CUDNN_TRY(cudnnCreateFilterDescriptor(&e->wd), func);
    /* the operands' type: float32, or bf16 copies (PSEUDO_BFLOAT16_CONFIG) */
    const cudnnDataType_t dt = e->bf16 ? CUDNN_DATA_BFLOAT16 : CUDNN_DATA_FLOAT;
    CRL_CUDNN_TRY(cudnnSetTensor4dDescriptor(e->x, CUDNN_TENSOR_NCHW, dt, (int)s->n, (int)s->c,
                                             (int)s->h, (int)s->w), func);
    CRL_CUDNN_TRY(cudnnSetTensor4dDescriptor(e->y, CUDNN_TENSOR_NCHW, dt, (int)s->n, (int)s->f,
                                             (int)s->oh, (int)s->ow), func);
    CRL_CUDNN_TRY(cudnnSetTensor4dDescriptor(e->b, CUDNN_TENSOR_NCHW, CUDNN_DATA_FLOAT, 1, (int)s->f, 1, 1), func);
    CRL_CUDNN_TRY(cudnnSetFilter4dDescriptor(e->wd, dt, CUDNN_TENSOR_NCHW, (int)s->f, (int)s->cg,
                                             (int)s->kh, (int)s->kw), func);
    if (e->bf16) {
        CRL_CUDNN_TRY(cudnnCreateTensorDescriptor(&e->yf), func);
        CRL_CUDNN_TRY(cudnnSetTensor4dDescriptor(e->yf, CUDNN_TENSOR_NCHW, CUDNN_DATA_FLOAT, (int)s->n, (int)s->f,
                                                 (int)s->oh, (int)s->ow), func);
    }
    /* TF32 allowed: the default math (tensor cores may run fp32 as TF32);
     * else FMA math, which keeps fp32 to the FMA units; bf16: tensor cores
     * (the compute type below stays CUDNN_DATA_FLOAT in every case) */
    cudnnMathType_t math = e->bf16 ? CUDNN_TENSOR_OP_MATH : e->tf32 ? CUDNN_DEFAULT_MATH : CUDNN_FMA_MATH;
    for (int i = 0; i < 3; i++) {
        CRL_CUDNN_TRY(cudnnCreateConvolutionDescriptor(&e->conv[i]), func);
        CRL_CUDNN_TRY(cudnnSetConvolution2dDescriptor(e->conv[i], p->pad_h, p->pad_w, p->stride_h, p->stride_w,
                                                      p->dilation_h, p->dilation_w, CUDNN_CROSS_CORRELATION,
                                                      CUDNN_DATA_FLOAT), func);
        CRL_CUDNN_TRY(cudnnSetConvolutionGroupCount(e->conv[i], p->groups), func);
        CRL_CUDNN_TRY(cudnnSetConvolutionMathType(e->conv[i], math), func);
        e->math[i] = math;
    }
    /* the shape rule is crl_conv_out_len's; cuDNN must agree with it */
    int on, oc, ohh, oww;
    CRL_CUDNN_TRY(cudnnGetConvolution2dForwardOutputDim(e->conv[0], e->x, e->wd, &on, &oc, &ohh, &oww), func);
    if (on != s->n || oc != s->f || ohh != s->oh || oww != s->ow)
        return crl_fail(CRL_ERR_SHAPE, func, "cuDNN gives an output (%d, %d, %d, %d), crlab (%lld, %lld, %lld, %lld)",
                        on, oc, ohh, oww, (long long)s->n, (long long)s->f, (long long)s->oh, (long long)s->ow);
    return CRL_OK;
}

/* The entry of this shape and these switch values, made on first use (the
 * least recently used one is replaced). */
static int find_entry(conv_entry **out, conv_state *st, const crl_conv2d_shape *s, const crl_conv2d_params *p,
                      const char *func)
{
    int tf32 = crl_gpu_option(CRL_CUDA_TF32) != 0, det = crl_gpu_option(CRL_CUDA_DETERMINISTIC) != 0;
    int bench = crl_gpu_option(CRL_CUDA_BENCHMARK) != 0, ws_mb = crl_gpu_option(CRL_CUDA_WORKSPACE_MB);
    int bf16 = crl_gpu_option(CRL_CUDA_BF16) != 0;
    conv_entry *victim = &st->cache[0];
    for (int i = 0; i < CACHE; i++) {
        conv_entry *e = &st->cache[i];
        if (e->used && e->n == s->n && e->c == s->c && e->h == s->h && e->w == s->w && e->f == s->f &&
            e->kh == s->kh && e->kw == s->kw && e->tf32 == tf32 && e->det == det && e->bench == bench &&
            e->ws_mb == ws_mb && e->bf16 == bf16) {
            e->stamp = ++st->clock;
            *out = e;
            return CRL_OK;
        }
        /* the victim: the first free entry, else the least recently used */
        if (victim->used && (!e->used || e->stamp < victim->stamp)) victim = e;
    }
    entry_clear(victim);
    victim->n = s->n; victim->c = s->c; victim->h = s->h; victim->w = s->w;
    victim->f = s->f; victim->kh = s->kh; victim->kw = s->kw;
    victim->cg = s->cg;
    victim->wnumel = s->f * s->cg * s->kh * s->kw;
    victim->tf32 = tf32; victim->det = det; victim->bench = bench; victim->ws_mb = ws_mb;
    victim->bf16 = bf16;
    int rc = build(victim, s, p, func);
    if (rc) {
        entry_clear(victim);
        return rc;
    }
    victim->used = 1;
    victim->stamp = ++st->clock;
    *out = victim;
    return CRL_OK;
}

static size_t ws_limit(const conv_entry *e) { return (size_t)(e->ws_mb > 0 ? e->ws_mb : 0) << 20; }

/* The first result (cuDNN orders them best first) that ran or may run,
 * fits the workspace limit, is deterministic when asked, and keeps fp32
 * off the tensor cores unless TF32 is allowed (bf16 entries are meant for
 * them); -1 if none. */
template <typename Perf> static int pick(const Perf *perf, int count, const conv_entry *e)
{
    for (int i = 0; i < count; i++) {
        if (perf[i].status != CUDNN_STATUS_SUCCESS || perf[i].memory > ws_limit(e)) continue;
        if (e->det && perf[i].determinism != CUDNN_DETERMINISTIC) continue;
        if (!e->bf16 && !e->tf32 && (perf[i].mathType == CUDNN_TENSOR_OP_MATH ||
                         perf[i].mathType == CUDNN_TENSOR_OP_MATH_ALLOW_CONVERSION))
            continue;
        return i;
    }
    return -1;
}

/* The largest workspace among the allowed heuristic candidates: what the
 * timing runs get, so that they try every algorithm that could be picked. */
template <typename Perf> static size_t find_workspace(const Perf *perf, int count, const conv_entry *e)
{
    size_t most = 0;
    for (int i = 0; i < count; i++)
        if (perf[i].status == CUDNN_STATUS_SUCCESS && perf[i].memory <= ws_limit(e) && perf[i].memory > most)
            most = perf[i].memory;
    return most;
}

static const char *const pass_name[3] = {"forward", "backward-data", "backward-filter"};

static int none_fits(const conv_entry *e, int pass, const char *func)
{
    return crl_fail(CRL_ERR_UNSUPPORTED, func,
                    "cuDNN offers no %s algorithm for in (%lld, %lld, %lld, %lld), weight (%lld, %lld, %lld, %lld) "
                    "within a %d MiB workspace%s%s (crlab.cuda: raise the workspace limit%s)",
                    pass_name[pass], (long long)e->n, (long long)e->c, (long long)e->h, (long long)e->w,
                    (long long)e->f, (long long)e->cg, (long long)e->kh, (long long)e->kw, e->ws_mb,
                    e->det ? ", deterministic" : "", e->bf16 ? ", bf16" : e->tf32 ? "" : ", without TF32",
                    e->det ? " or allow non-deterministic algorithms" : "");
}

/* Settles the algorithm of one pass of entry e (once): heuristics, or with
 * CRL_CUDA_BENCHMARK a timing of the candidates on the call's own data
 * (buffers the timing may write: the pass's output, or for the filter pass
 * a scratch copy, since grad_weight accumulates). */
static int choose(conv_entry *e, int pass, cudnnHandle_t h, const void *x, const void *w, void *y, const void *dy,
                  void *dx, const char *func)
{
    if (e->chosen[pass]) return CRL_OK;
    int count = 0, idx = -1;
    cudnnMathType_t math = e->math[pass];
    size_t mem = 0;
    int algo = 0;
    cudnnConvolutionDescriptor_t cd = e->conv[pass];
    if (pass == PASS_FWD) {
        cudnnConvolutionFwdAlgoPerf_t perf[MAX_PERF];
        CRL_CUDNN_TRY(cudnnGetConvolutionForwardAlgorithm_v7(h, e->x, e->wd, cd, e->y, MAX_PERF, &count, perf), func);
        if (e->bench) {
            size_t wsz = find_workspace(perf, count, e);
            void *ws = NULL;
            int rc = wsz ? crl_gpu_scratch(&ws, (int64_t)wsz, func) : CRL_OK;
            if (rc) return rc;
            CRL_CUDNN_TRY(cudnnFindConvolutionForwardAlgorithmEx(h, e->x, x, e->wd, w, cd, e->y, y, MAX_PERF, &count,
                                                                 perf, ws, wsz), func);
        }
        if ((idx = pick(perf, count, e)) < 0) return none_fits(e, pass, func);
        algo = perf[idx].algo; math = perf[idx].mathType; mem = perf[idx].memory;
    } else if (pass == PASS_DATA) {
        cudnnConvolutionBwdDataAlgoPerf_t perf[MAX_PERF];
        CRL_CUDNN_TRY(cudnnGetConvolutionBackwardDataAlgorithm_v7(h, e->wd, e->y, cd, e->x, MAX_PERF, &count, perf),
                      func);
        if (e->bench) {
            size_t wsz = find_workspace(perf, count, e);
            void *ws = NULL;
            int rc = wsz ? crl_gpu_scratch(&ws, (int64_t)wsz, func) : CRL_OK;
            if (rc) return rc;
            CRL_CUDNN_TRY(cudnnFindConvolutionBackwardDataAlgorithmEx(h, e->wd, w, e->y, dy, cd, e->x, dx, MAX_PERF,
                                                                      &count, perf, ws, wsz), func);
        }
        if ((idx = pick(perf, count, e)) < 0) return none_fits(e, pass, func);
        algo = perf[idx].algo; math = perf[idx].mathType; mem = perf[idx].memory;
    } else {
        cudnnConvolutionBwdFilterAlgoPerf_t perf[MAX_PERF];
        CRL_CUDNN_TRY(cudnnGetConvolutionBackwardFilterAlgorithm_v7(h, e->x, e->y, cd, e->wd, MAX_PERF, &count, perf),
                      func);
        if (e->bench) {
            /* scratch: [workspace | a throw-away weight gradient (of the
             * filter descriptor's type), 256-aligned] */
            size_t wsz = find_workspace(perf, count, e), off = (wsz + 255) & ~(size_t)255;
            size_t dwbytes = (size_t)e->wnumel * (e->bf16 ? sizeof(uint16_t) : sizeof(float));
            void *ws = NULL;
            int rc = crl_gpu_scratch(&ws, (int64_t)(off + dwbytes), func);
            if (rc) return rc;
            CRL_CUDNN_TRY(cudnnFindConvolutionBackwardFilterAlgorithmEx(h, e->x, x, e->y, dy, cd, e->wd,
                                                                        (char *)ws + off, MAX_PERF, &count, perf,
                                                                        wsz ? ws : NULL, wsz), func);
        }
        if ((idx = pick(perf, count, e)) < 0) return none_fits(e, pass, func);
        algo = perf[idx].algo; math = perf[idx].mathType; mem = perf[idx].memory;
    }
    /* cuDNN runs an algorithm with the math type of the descriptor: give it
     * the one the algorithm was listed (or timed) with, as PyTorch does */
    if (math != e->math[pass]) {
        CRL_CUDNN_TRY(cudnnSetConvolutionMathType(cd, math), func);
        e->math[pass] = math;
    }
    size_t need = 0;
    if (pass == PASS_FWD)
        CRL_CUDNN_TRY(cudnnGetConvolutionForwardWorkspaceSize(h, e->x, e->wd, cd, e->y, (cudnnConvolutionFwdAlgo_t)algo,
                                                              &need), func);
    else if (pass == PASS_DATA)
        CRL_CUDNN_TRY(cudnnGetConvolutionBackwardDataWorkspaceSize(h, e->wd, e->y, cd, e->x,
                                                                   (cudnnConvolutionBwdDataAlgo_t)algo, &need), func);
    else
        CRL_CUDNN_TRY(cudnnGetConvolutionBackwardFilterWorkspaceSize(h, e->x, e->y, cd, e->wd,
                                                                     (cudnnConvolutionBwdFilterAlgo_t)algo, &need),
                      func);
    e->algo[pass] = algo;
    e->ws[pass] = need > mem ? need : mem;
    e->timed[pass] = e->bench;
    e->chosen[pass] = 1;
    return CRL_OK;
}

static const char *algo_name(int pass, int algo)
{
    static const char *const fwd[] = {"IMPLICIT_GEMM", "IMPLICIT_PRECOMP_GEMM", "GEMM", "DIRECT",
                                      "FFT", "FFT_TILING", "WINOGRAD", "WINOGRAD_NONFUSED"};
    static const char *const data[] = {"ALGO_0", "ALGO_1", "FFT", "FFT_TILING", "WINOGRAD", "WINOGRAD_NONFUSED"};
    static const char *const filter[] = {"ALGO_0", "ALGO_1", "FFT", "ALGO_3", "WINOGRAD", "WINOGRAD_NONFUSED",
                                         "FFT_TILING"};
    if (algo < 0) return "?";
    if (pass == PASS_FWD) return algo < 8 ? fwd[algo] : "?";
    if (pass == PASS_DATA) return algo < 6 ? data[algo] : "?";
    return algo < 7 ? filter[algo] : "?";
}

static const char *math_name(cudnnMathType_t m)
{
    return m == CUDNN_FMA_MATH ? "fma" : m == CUDNN_TENSOR_OP_MATH ? "tensor-op" : m == CUDNN_DEFAULT_MATH ? "default"
                                                                                                          : "conversion";
}

/* "cudnn fwd IMPLICIT_PRECOMP_GEMM (heuristic, tensor-op, 0 KiB) | bwd_data ... | bwd_filter ..." */
static void describe(crl_conv2d_plan *pl, const conv_entry *e)
{
    static const char *const label[3] = {"fwd", "bwd_data", "bwd_filter"};
    char text[512];
    int n = snprintf(text, sizeof text, "cudnn");
    for (int i = 0; i < 3 && n >= 0 && n < (int)sizeof text; i++) {
        if (e->chosen[i])
            n += snprintf(text + n, sizeof text - (size_t)n, "%s %s %s (%s, %s, %zu KiB)", i ? " |" : "", label[i],
                          algo_name(i, e->algo[i]), e->timed[i] ? "timed" : "heuristic", math_name(e->math[i]),
                          (e->ws[i] + 1023) / 1024);
        else
            n += snprintf(text + n, sizeof text - (size_t)n, "%s %s -", i ? " |" : "", label[i]);
    }
    if (e->bf16 && n >= 0 && n < (int)sizeof text) snprintf(text + n, sizeof text - (size_t)n, " | bf16 operands");
    crl_conv2d_plan_set_description(pl, text);
}

static inline float *dptr(const crl_tensor *t) { return crl_gpu_base<float>(t) + t->offset; }

/* The workspace of a pass (NULL when it needs none). */
static int workspace(void **ws, const conv_entry *e, int pass, const char *func)
{
    *ws = NULL;
    if (e->ws[pass] == 0) return CRL_OK;
    return crl_gpu_scratch(ws, (int64_t)e->ws[pass], func);
}

/* ---- bf16 mixed precision: the passes on bf16 copies --------------------------------------- */

/* y (float32, xn elements in, yn out) = conv(x, w) through bf16 copies of
 * x and w and a bf16 result, converted back exactly. Scaling factors are
 * float for every data type but double (cuDNN's rule). */
static int forward_bf16(conv_entry *e, cudnnHandle_t h, float *y, const float *x, const float *w, int64_t xn,
                        int64_t yn)
{
    crl_tensor *tx = NULL, *tw = NULL, *ty = NULL;
    uint16_t *bx = NULL, *bw = NULL, *by = NULL;
    int rc = crl_gpu_bf16_copy(&tx, &bx, x, xn, FWD);
    if (rc == CRL_OK) rc = crl_gpu_bf16_copy(&tw, &bw, w, e->wnumel, FWD);
    if (rc == CRL_OK) rc = crl_gpu_bf16_buffer(&ty, &by, yn);
    if (rc == CRL_OK) rc = choose(e, PASS_FWD, h, bx, bw, by, NULL, NULL, FWD);
    void *ws = NULL;
    if (rc == CRL_OK) rc = workspace(&ws, e, PASS_FWD, FWD);
    if (rc == CRL_OK) {
        const float one = 1.0f, zero = 0.0f;
        cudnnStatus_t st = cudnnConvolutionForward(h, &one, e->x, bx, e->wd, bw, e->conv[PASS_FWD],
                                                   (cudnnConvolutionFwdAlgo_t)e->algo[PASS_FWD], ws,
                                                   e->ws[PASS_FWD], &zero, e->y, by);
        rc = st == CUDNN_STATUS_SUCCESS ? crl_gpu_bf16_to_float(y, by, yn, 0, FWD)
                                        : crl_gpu_cudnn_fail(st, FWD, "cudnnConvolutionForward (bf16)");
    }
    crl_tensor_free(tx);
    crl_tensor_free(tw);
    crl_tensor_free(ty);
    return rc;
}

/* grad_in (dx, overwritten) and grad_weight (dw, accumulated in float32),
 * either may be NULL, through bf16 copies of grad_out, weight and in: each
 * pass writes a bf16 result (beta 0) that is then converted into dx or
 * added into dw. */
static int backward_bf16(conv_entry *e, cudnnHandle_t h, float *dx, float *dw, const float *dy, const float *x,
                         const float *w, int64_t xn, int64_t yn)
{
    crl_tensor *tdy = NULL, *tx = NULL, *tw = NULL, *tout = NULL;
    uint16_t *bdy = NULL, *bx = NULL, *bw = NULL, *bout = NULL;
    const float one = 1.0f, zero = 0.0f;
    void *ws = NULL;
    int rc = crl_gpu_bf16_copy(&tdy, &bdy, dy, yn, BWD);
    if (rc == CRL_OK && dx) {
        rc = crl_gpu_bf16_copy(&tw, &bw, w, e->wnumel, BWD);
        if (rc == CRL_OK) rc = crl_gpu_bf16_buffer(&tout, &bout, xn);
        if (rc == CRL_OK) rc = choose(e, PASS_DATA, h, NULL, bw, NULL, bdy, bout, BWD);
        if (rc == CRL_OK) rc = workspace(&ws, e, PASS_DATA, BWD);
        if (rc == CRL_OK) {
            cudnnStatus_t st = cudnnConvolutionBackwardData(h, &one, e->wd, bw, e->y, bdy, e->conv[PASS_DATA],
                                                            (cudnnConvolutionBwdDataAlgo_t)e->algo[PASS_DATA], ws,
                                                            e->ws[PASS_DATA], &zero, e->x, bout);
            rc = st == CUDNN_STATUS_SUCCESS ? crl_gpu_bf16_to_float(dx, bout, xn, 0, BWD)
                                            : crl_gpu_cudnn_fail(st, BWD, "cudnnConvolutionBackwardData (bf16)");
        }
        crl_tensor_free(tout);
        tout = NULL;
    }
    if (rc == CRL_OK && dw) {
        rc = crl_gpu_bf16_copy(&tx, &bx, x, xn, BWD);
        if (rc == CRL_OK) rc = crl_gpu_bf16_buffer(&tout, &bout, e->wnumel);
        if (rc == CRL_OK) rc = choose(e, PASS_FILTER, h, bx, NULL, NULL, bdy, NULL, BWD);
        if (rc == CRL_OK) rc = workspace(&ws, e, PASS_FILTER, BWD);
        if (rc == CRL_OK) {
            cudnnStatus_t st = cudnnConvolutionBackwardFilter(h, &one, e->x, bx, e->y, bdy, e->conv[PASS_FILTER],
                                                              (cudnnConvolutionBwdFilterAlgo_t)e->algo[PASS_FILTER],
                                                              ws, e->ws[PASS_FILTER], &zero, e->wd, bout);
            rc = st == CUDNN_STATUS_SUCCESS ? crl_gpu_bf16_to_float(dw, bout, e->wnumel, 1, BWD)
                                            : crl_gpu_cudnn_fail(st, BWD, "cudnnConvolutionBackwardFilter (bf16)");
        }
    }
    crl_tensor_free(tdy);
    crl_tensor_free(tx);
    crl_tensor_free(tw);
    crl_tensor_free(tout);
    return rc;
}

extern "C" int crl_gpu_conv2d_plan_forward(crl_conv2d_plan *pl, crl_tensor *out, const crl_tensor *in,
                                           const crl_tensor *weight, const crl_tensor *bias, int plain_output)
{
    (void)plain_output; /* CUDA tensors are always plain */
    crl_conv2d_shape s;
    int rc = crl_conv2d_plan_check_forward(&s, pl, out, in, weight, bias, CRL_CUDA, FWD);
    if (rc) return rc;
    int64_t osz[4] = {s.n, s.f, s.oh, s.ow};
    if ((rc = crl_prepare(out, CRL_FLOAT32, CRL_CUDA, 4, osz))) return rc;
    if (s.n == 0) return CRL_OK;
    cudnnHandle_t h = crl_gpu_cudnn(FWD);
    if (h == NULL) return CRL_ERR_DEVICE;
    conv_state *st = NULL;
    conv_entry *e = NULL;
    if ((rc = state_of(&st, pl, FWD)) || (rc = find_entry(&e, st, &s, crl_conv2d_plan_params(pl), FWD))) return rc;
    float *y = dptr(out);
    const float *x = dptr(in), *w = dptr(weight);
    if (e->bf16) {
        rc = forward_bf16(e, h, y, x, w, s.n * s.c * s.h * s.w, s.n * s.f * s.oh * s.ow);
        if (rc) return rc;
    } else {
        if ((rc = choose(e, PASS_FWD, h, x, w, y, NULL, NULL, FWD))) return rc;
        void *ws;
        if ((rc = workspace(&ws, e, PASS_FWD, FWD))) return rc;
        const float one = 1.0f, zero = 0.0f;
        CRL_CUDNN_TRY(cudnnConvolutionForward(h, &one, e->x, x, e->wd, w, e->conv[PASS_FWD],
                                              (cudnnConvolutionFwdAlgo_t)e->algo[PASS_FWD], ws, e->ws[PASS_FWD],
                                              &zero, e->y, y), FWD);
    }
    const float one = 1.0f;
    if (bias) CRL_CUDNN_TRY(cudnnAddTensor(h, &one, e->b, dptr(bias), &one, e->bf16 ? e->yf : e->y, y), FWD);
    describe(pl, e);
    return CRL_OK;
}

extern "C" int crl_gpu_conv2d_plan_backward(crl_conv2d_plan *pl, crl_tensor *grad_in, crl_tensor *grad_weight,
                                            crl_tensor *grad_bias, const crl_tensor *grad_out, const crl_tensor *in,
                                            const crl_tensor *weight)
{
    crl_conv2d_shape s;
    int rc = crl_conv2d_plan_check_backward(&s, pl, grad_in, grad_weight, grad_bias, grad_out, in, weight, CRL_CUDA,
                                            BWD);
    if (rc) return rc;
    /* the gradients on this device, as the checks left them to the op layer */
    const crl_tensor *outs[3] = {grad_in, grad_weight, grad_bias};
    const char *names[3] = {"grad_in", "grad_weight", "grad_bias"};
    for (int i = 1; i < 3; i++)
        if (outs[i] && (rc = crl_gpu_require(outs[i], BWD, names[i]))) return rc;
    if ((rc = crl_gpu_require(grad_out, BWD, "grad_out"))) return rc;
    if (grad_in && (rc = crl_prepare(grad_in, CRL_FLOAT32, CRL_CUDA, 4, in->sizes))) return rc;
    if (s.n == 0 || (!grad_in && !grad_weight && !grad_bias)) return CRL_OK;
    cudnnHandle_t h = crl_gpu_cudnn(BWD);
    if (h == NULL) return CRL_ERR_DEVICE;
    conv_state *st = NULL;
    conv_entry *e = NULL;
    if ((rc = state_of(&st, pl, BWD)) || (rc = find_entry(&e, st, &s, crl_conv2d_plan_params(pl), BWD))) return rc;
    const float *x = dptr(in), *w = dptr(weight), *dy = dptr(grad_out);
    const float one = 1.0f, zero = 0.0f;
    void *ws;
    if (e->bf16 && (grad_in || grad_weight)) {
        rc = backward_bf16(e, h, grad_in ? dptr(grad_in) : NULL, grad_weight ? dptr(grad_weight) : NULL, dy, x, w,
                           s.n * s.c * s.h * s.w, s.n * s.f * s.oh * s.ow);
        if (rc) return rc;
    } else if (grad_in) {
        float *dx = dptr(grad_in);
        if ((rc = choose(e, PASS_DATA, h, x, w, NULL, dy, dx, BWD))) return rc;
        if ((rc = workspace(&ws, e, PASS_DATA, BWD))) return rc;
        CRL_CUDNN_TRY(cudnnConvolutionBackwardData(h, &one, e->wd, w, e->y, dy, e->conv[PASS_DATA],
                                                   (cudnnConvolutionBwdDataAlgo_t)e->algo[PASS_DATA], ws,
                                                   e->ws[PASS_DATA], &zero, e->x, dx), BWD);
    }
    if (grad_weight && !e->bf16) {
        if ((rc = choose(e, PASS_FILTER, h, x, w, NULL, dy, NULL, BWD))) return rc;
        if ((rc = workspace(&ws, e, PASS_FILTER, BWD))) return rc;
        /* beta = 1: accumulated, as the API promises */
        CRL_CUDNN_TRY(cudnnConvolutionBackwardFilter(h, &one, e->x, x, e->y, dy, e->conv[PASS_FILTER],
                                                     (cudnnConvolutionBwdFilterAlgo_t)e->algo[PASS_FILTER], ws,
                                                     e->ws[PASS_FILTER], &one, e->wd, dptr(grad_weight)), BWD);
    }
    if (grad_bias)
        CRL_CUDNN_TRY(cudnnConvolutionBackwardBias(h, &one, e->bf16 ? e->yf : e->y, dy, &one, e->b, dptr(grad_bias)),
                      BWD);
    describe(pl, e);
    return CRL_OK;
}

/* ---- the plan-less calls ------------------------------------------------------------------ */

/* crl_conv2d_forward / _backward on CUDA tensors: the CPU's checks (groups
 * refused, as there), then a plan made for the one call, so each call
 * builds descriptors and asks the heuristics again: a reference path, not
 * one for training (layers keep a plan). The workspace argument is not used:
 * cuDNN's workspace comes from the device scratch. */
static const char *const PFWD = "crl_conv2d_forward";
static const char *const PBWD = "crl_conv2d_backward";

extern "C" int crl_gpu_conv2d_forward(crl_tensor *out, const crl_tensor *in, const crl_tensor *weight,
                                      const crl_tensor *bias, const crl_conv2d_params *p, crl_tensor *workspace)
{
    (void)workspace;
    int rc = crl_conv2d_check_forward(out, in, weight, bias, p, CRL_CUDA, PFWD);
    if (rc) return rc;
    crl_conv2d_plan *pl = crl_conv2d_plan_new(p, CRL_CONV_REFERENCE);
    if (pl == NULL) return CRL_ERR_NOMEM; /* the checks passed: only the allocation can fail (message set) */
    rc = crl_gpu_conv2d_plan_forward(pl, out, in, weight, bias, 1);
    crl_conv2d_plan_free(pl);
    return rc;
}

extern "C" int crl_gpu_conv2d_backward(crl_tensor *grad_in, crl_tensor *grad_weight, crl_tensor *grad_bias,
                                       const crl_tensor *grad_out, const crl_tensor *in, const crl_tensor *weight,
                                       const crl_conv2d_params *p, crl_tensor *workspace)
{
    (void)workspace;
    int rc = crl_conv2d_check_backward(grad_in, grad_weight, grad_bias, grad_out, in, weight, p, CRL_CUDA, PBWD);
    if (rc) return rc;
    crl_conv2d_plan *pl = crl_conv2d_plan_new(p, CRL_CONV_REFERENCE);
    if (pl == NULL) return CRL_ERR_NOMEM;
    rc = crl_gpu_conv2d_plan_backward(pl, grad_in, grad_weight, grad_bias, grad_out, in, weight);
    crl_conv2d_plan_free(pl);
    return rc;
}
