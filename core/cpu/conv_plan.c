/* cpu/conv_plan.c -- convolution plans: oneDNN 2.x convolutions with the
 * state a layer keeps between calls (primitives per input shape, reordered
 * weights, workspaces), and the im2col reference path behind the same API.
 *
 * Activations flow in oneDNN's blocked layout (nChw16c with AVX-512,
 * nChw8c otherwise), which crl_tensor records in its layout field; the
 * weights stay plain (OIHW, the parameter slab) and are reordered into the
 * primitive's format at every call, a few microseconds, so an optimiser step
 * is always seen and nothing can go stale. Weight gradients come back
 * through a reorder with a sum post-op: accumulated, as the API promises.
 *
 * Assumes one stream on the calling thread: oneDNN's CPU execution is
 * synchronous, and the shared scratchpad is used under a lock.
 * Pitfalls of the 2.6 C API (see the oneDNN probe notes): backward
 * descriptors are built from `any` weights with a forward hint (fixing the
 * forward's weight format makes backward-data fall back to `ref:any`), and
 * `dnnl_convolution_auto` is a poor guide, so the algorithm is chosen here
 * per pass from measurements. */
#include <dnnl.h>
#include <dnnl_debug.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../internal.h"
#include "cpu.h"
#include "../backend.h"

#if DNNL_VERSION_MAJOR != 2
#error "crlab's convolutions use the oneDNN 2.x C API (Debian 12: apt-get install libdnnl-dev)"
#endif

/* ---- engine, stream and the shared scratchpad -------------------------------------- */

static dnnl_engine_t engine;
static dnnl_stream_t stream;
static dnnl_status_t engine_status = dnnl_success;
static pthread_once_t engine_once = PTHREAD_ONCE_INIT;
static pthread_mutex_t exec_lock = PTHREAD_MUTEX_INITIALIZER;
static crl_tensor scratch; /* bytes, grown to the largest primitive's need */

static void engine_init(void)
{
    engine_status = dnnl_engine_create(&engine, dnnl_cpu, 0);
    if (engine_status == dnnl_success) engine_status = dnnl_stream_create(&stream, engine, dnnl_stream_default_flags);
}

static int dnnl_fail(dnnl_status_t st, const char *func, const char *what)
{
    return crl_fail(st == dnnl_unimplemented ? CRL_ERR_UNSUPPORTED : st == dnnl_out_of_memory ? CRL_ERR_NOMEM : CRL_ERR_ARG,
                    func, "oneDNN %s: %s", what, dnnl_status2str(st));
}

#define DN(call, what)                                                                     \
    do {                                                                                   \
        dnnl_status_t st_ = (call);                                                        \
        if (st_ != dnnl_success) return dnnl_fail(st_, func, what);                        \
    } while (0)

static int ensure_engine(const char *func)
{
    pthread_once(&engine_once, engine_init);
    if (engine_status != dnnl_success) return dnnl_fail(engine_status, func, "engine");
    return CRL_OK;
}

int crl_dnnl_block_size(void)
{
    dnnl_cpu_isa_t isa = dnnl_get_effective_cpu_isa();
    return (isa & dnnl_cpu_isa_avx512_core) == dnnl_cpu_isa_avx512_core ? CRL_LAYOUT_NCHW16C : CRL_LAYOUT_NCHW8C;
}

/* ---- the plan ------------------------------------------------------------------------ */

enum { CACHE = 4 };

typedef struct {
    int64_t n, c, h, w, f, kh, kw; /* the key, with the two below */
    int src_layout, dst_layout;    /* layouts of the src and dst the primitives read and write */
    int threads;                   /* oneDNN splits the work for this many threads when it makes a primitive */
    int has_bias, used;
    uint64_t stamp;
    int algo[3];                   /* per pass: fwd, bwd_data, bwd_weights */
    int ref[3];                    /* 1: oneDNN offered only its slow `ref` kernel: im2col instead */
    dnnl_memory_desc_t src_md, dst_md, wplain_md, bias_md;
    dnnl_primitive_desc_t pd[3];
    dnnl_primitive_t prim[3];
    dnnl_primitive_t wreorder[2];  /* plain weights -> fwd / bwd_data format */
    dnnl_primitive_t dwreorder;    /* bwd_weights format -> plain, summed in */
    /* memory objects of each run site (the 3 passes, 2 weight reorders, the
     * gradient reorder), made once and pointed at the data of each call */
    dnnl_memory_t mem[6][5];
} conv_entry;
enum { SITE_FWD = 0, SITE_BWD_DATA = 1, SITE_BWD_WEIGHTS = 2, SITE_WREORDER = 3, SITE_DWREORDER = 5 };

struct crl_conv2d_plan {
    crl_conv2d_params p;
    int backend, algo;
    uint64_t clock;
    conv_entry cache[CACHE];
    crl_tensor wbuf[2], dwbuf, dbias, src_tmp, dout_tmp, din_tmp, ws; /* plan-owned buffers */
    char describe[512];
    crl_conv2d_device_slot device; /* the CUDA backend's state for this plan */
};

static void entry_clear(conv_entry *e)
{
    for (int i = 0; i < 3; i++) {
        if (e->prim[i]) dnnl_primitive_destroy(e->prim[i]);
        if (e->pd[i]) dnnl_primitive_desc_destroy(e->pd[i]);
    }
    for (int i = 0; i < 2; i++)
        if (e->wreorder[i]) dnnl_primitive_destroy(e->wreorder[i]);
    if (e->dwreorder) dnnl_primitive_destroy(e->dwreorder);
    for (int i = 0; i < 6; i++)
        for (int j = 0; j < 5; j++)
            if (e->mem[i][j]) dnnl_memory_destroy(e->mem[i][j]);
    memset(e, 0, sizeof *e);
}

static void normalise(crl_conv2d_params *p)
{
    if (p->dilation_h < 1) p->dilation_h = 1;
    if (p->dilation_w < 1) p->dilation_w = 1;
    if (p->groups < 1) p->groups = 1;
}

crl_conv2d_plan *crl_conv2d_plan_new(const crl_conv2d_params *p, int backend)
{
    if (p == NULL) {
        crl_fail(CRL_ERR_ARG, __func__, "argument 'p' is NULL");
        return NULL;
    }
    if (backend != CRL_CONV_ONEDNN && backend != CRL_CONV_REFERENCE) {
        crl_fail(CRL_ERR_ARG, __func__, "unknown backend %d (CRL_CONV_ONEDNN or CRL_CONV_REFERENCE)", backend);
        return NULL;
    }
    crl_conv2d_params q = *p;
    normalise(&q);
    if (q.stride_h < 1 || q.stride_w < 1 || q.pad_h < 0 || q.pad_w < 0) {
        crl_fail(CRL_ERR_ARG, __func__, "stride (%d, %d) must be >= 1 and padding (%d, %d) >= 0", q.stride_h,
                 q.stride_w, q.pad_h, q.pad_w);
        return NULL;
    }
    crl_conv2d_plan *pl = calloc(1, sizeof *pl);
    if (pl == NULL) {
        crl_fail(CRL_ERR_NOMEM, __func__, "out of host memory for a plan");
        return NULL;
    }
    pl->p = q;
    pl->backend = backend;
    crl_tensor *bufs[] = {&pl->wbuf[0], &pl->wbuf[1], &pl->dwbuf, &pl->dbias, &pl->src_tmp, &pl->dout_tmp,
                          &pl->din_tmp, &pl->ws};
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++) {
        bufs[i]->ndim = 1;
        bufs[i]->strides[0] = 1;
    }
    snprintf(pl->describe, sizeof pl->describe, "%s (not run yet)",
             backend == CRL_CONV_ONEDNN ? "onednn" : "reference im2col");
    return pl;
}

void crl_conv2d_plan_free(crl_conv2d_plan *pl)
{
    if (pl == NULL) return;
    for (int i = 0; i < CACHE; i++) entry_clear(&pl->cache[i]);
    crl_tensor *bufs[] = {&pl->wbuf[0], &pl->wbuf[1], &pl->dwbuf, &pl->dbias, &pl->src_tmp, &pl->dout_tmp,
                          &pl->din_tmp, &pl->ws};
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++) crl_tensor_release(bufs[i]);
    if (pl->device.state && pl->device.destroy) pl->device.destroy(pl->device.state);
    free(pl);
}

crl_conv2d_device_slot *crl_conv2d_plan_device_slot(crl_conv2d_plan *pl) { return &pl->device; }
const crl_conv2d_params *crl_conv2d_plan_params(const crl_conv2d_plan *pl) { return &pl->p; }

void crl_conv2d_plan_set_description(crl_conv2d_plan *pl, const char *text)
{
    snprintf(pl->describe, sizeof pl->describe, "%s", text);
}

int crl_conv2d_plan_set_algorithm(crl_conv2d_plan *pl, int algo)
{
    if (pl == NULL) return crl_fail(CRL_ERR_ARG, __func__, "argument 'plan' is NULL");
    if (algo < CRL_CONV_ALGO_AUTO || algo > CRL_CONV_ALGO_WINOGRAD)
        return crl_fail(CRL_ERR_ARG, __func__, "unknown algorithm %d", algo);
    if (algo != pl->algo)
        for (int i = 0; i < CACHE; i++) entry_clear(&pl->cache[i]);
    pl->algo = algo;
    return CRL_OK;
}

const char *crl_conv2d_plan_describe(const crl_conv2d_plan *pl)
{
    return pl ? pl->describe : "";
}

/* ---- validation ---------------------------------------------------------------------- */

typedef crl_conv2d_shape shape;

static const char *device_word(int device) { return device == CRL_CUDA ? "CUDA" : "CPU"; }

/* The checks of a plan call, shared by the CPU and CUDA kernels so that both
 * devices refuse the same arguments with the same words. `device` is the
 * kernel's; the op layer has already refused a mix of devices, this is the
 * second line. Blocked inputs exist only on the CPU. */
int crl_conv2d_plan_check(shape *s, const crl_conv2d_plan *pl, const crl_tensor *in, const crl_tensor *weight,
                          const crl_tensor *bias, int device, const char *func)
{
    if (pl == NULL) return crl_fail(CRL_ERR_ARG, func, "argument 'plan' is NULL");
    if (in == NULL) return crl_fail(CRL_ERR_ARG, func, "argument '%s' is NULL", "in");
    if (weight == NULL) return crl_fail(CRL_ERR_ARG, func, "argument '%s' is NULL", "weight");
    if (in->device != device || weight->device != device || (bias && bias->device != device))
        return crl_fail(CRL_ERR_UNSUPPORTED, func, "a %s tensor reached the %s convolution (in %s, weight %s)",
                        device_word(device == CRL_CUDA ? CRL_CPU : CRL_CUDA), device_word(device), crl_shape(in),
                        crl_shape(weight));
    int rc = crl_layout_check(in, func, "in");
    if (rc) return rc;
    if (device != CRL_CPU && (rc = crl_require_plain(in, func, "in"))) return rc;
    if (in->dtype != CRL_FLOAT32 || in->ndim != 4 || (in->layout == CRL_LAYOUT_PLAIN && !crl_tensor_is_contiguous(in)))
        return crl_fail(CRL_ERR_SHAPE, func, "in must be a float32 (N, C, H, W) tensor, contiguous or blocked; got %s %s",
                        crl_dtype_name(in->dtype), crl_shape(in));
    if ((rc = crl_require_plain(weight, func, "weight"))) return rc;
    if (weight->dtype != CRL_FLOAT32 || weight->ndim != 4 || !crl_tensor_is_contiguous(weight))
        return crl_fail(CRL_ERR_SHAPE, func, "weight must be a contiguous float32 (F, C/groups, KH, KW) tensor, got %s",
                        crl_shape(weight));
    const crl_conv2d_params *p = &pl->p;
    s->n = in->sizes[0]; s->c = in->sizes[1]; s->h = in->sizes[2]; s->w = in->sizes[3];
    s->f = weight->sizes[0]; s->kh = weight->sizes[2]; s->kw = weight->sizes[3];
    s->cg = weight->sizes[1];
    if (s->c % p->groups != 0 || s->f % p->groups != 0 || s->cg * p->groups != s->c)
        return crl_fail(CRL_ERR_SHAPE, func, "in %s has %lld channels and weight %s %lld outputs: with %d groups "
                        "both must divide by %d and weight must hold C/groups = %lld input channels",
                        crl_shape(in), (long long)s->c, crl_shape(weight), (long long)s->f, p->groups, p->groups,
                        (long long)(s->c / p->groups));
    s->oh = crl_conv_out_len(s->h, s->kh, p->pad_h, p->dilation_h, p->stride_h);
    s->ow = crl_conv_out_len(s->w, s->kw, p->pad_w, p->dilation_w, p->stride_w);
    if (s->oh < 0 || s->ow < 0)
        return crl_fail(CRL_ERR_SHAPE, func, "kernel %lldx%lld (dilation %d, %d) is larger than the padded input %s",
                        (long long)s->kh, (long long)s->kw, p->dilation_h, p->dilation_w, crl_shape(in));
    if (bias && (bias->dtype != CRL_FLOAT32 || crl_tensor_numel(bias) != s->f || !crl_tensor_is_contiguous(bias)))
        return crl_fail(CRL_ERR_SHAPE, func, "bias %s must be a contiguous float32 vector of %lld", crl_shape(bias),
                        (long long)s->f);
    return CRL_OK;
}

int crl_conv2d_plan_check_forward(shape *s, const crl_conv2d_plan *pl, const crl_tensor *out, const crl_tensor *in,
                                  const crl_tensor *weight, const crl_tensor *bias, int device, const char *func)
{
    if (out == NULL) return crl_fail(CRL_ERR_ARG, func, "argument '%s' is NULL", "out");
    int rc = crl_conv2d_plan_check(s, pl, in, weight, bias, device, func);
    if (rc) return rc;
    if (out == in || out == weight || (out->storage && out->storage == in->storage))
        return crl_fail(CRL_ERR_ARG, func, "out must not be (or share storage with) an input");
    return CRL_OK;
}

int crl_conv2d_plan_check_backward(shape *s, const crl_conv2d_plan *pl, const crl_tensor *grad_in,
                                   const crl_tensor *grad_weight, const crl_tensor *grad_bias,
                                   const crl_tensor *grad_out, const crl_tensor *in, const crl_tensor *weight,
                                   int device, const char *func)
{
    if (grad_out == NULL) return crl_fail(CRL_ERR_ARG, func, "argument '%s' is NULL", "grad_out");
    int rc = crl_conv2d_plan_check(s, pl, in, weight, NULL, device, func);
    if (rc) return rc;
    if (grad_out->dtype != CRL_FLOAT32 || grad_out->ndim != 4 || grad_out->sizes[0] != s->n ||
        grad_out->sizes[1] != s->f || grad_out->sizes[2] != s->oh || grad_out->sizes[3] != s->ow ||
        (grad_out->layout == CRL_LAYOUT_PLAIN && !crl_tensor_is_contiguous(grad_out)))
        return crl_fail(CRL_ERR_SHAPE, func, "grad_out %s must be a float32 (%lld, %lld, %lld, %lld) for in %s, weight %s",
                        crl_shape(grad_out), (long long)s->n, (long long)s->f, (long long)s->oh, (long long)s->ow,
                        crl_shape(in), crl_shape(weight));
    if (device != CRL_CPU && (rc = crl_require_plain(grad_out, func, "grad_out"))) return rc;
    if ((rc = crl_conv2d_check_param_grads(grad_weight, grad_bias, weight, func))) return rc;
    if (grad_in && (grad_in == in || grad_in == grad_out ||
                    (grad_in->storage && (grad_in->storage == in->storage || grad_in->storage == grad_out->storage))))
        return crl_fail(CRL_ERR_ARG, func, "grad_in must be a tensor of its own");
    return CRL_OK;
}

/* ---- primitives ------------------------------------------------------------------------ */

static dnnl_format_tag_t tag_of(int layout)
{
    return layout == CRL_LAYOUT_NCHW16C ? dnnl_aBcd16b : layout == CRL_LAYOUT_NCHW8C ? dnnl_aBcd8b : dnnl_abcd;
}

/* Winograd where the oneDNN probe measured it faster on this CPU family:
 * 3x3, stride 1, dense, one group, 32 channels or more on both sides. */
static int choose_algo(const crl_conv2d_plan *pl, const shape *s)
{
    const crl_conv2d_params *p = &pl->p;
    int wino_ok = s->kh == 3 && s->kw == 3 && p->stride_h == 1 && p->stride_w == 1 && p->dilation_h == 1 &&
                  p->dilation_w == 1 && p->groups == 1;
    if (!wino_ok || pl->algo == CRL_CONV_ALGO_DIRECT) return CRL_CONV_ALGO_DIRECT;
    if (pl->algo == CRL_CONV_ALGO_WINOGRAD) return CRL_CONV_ALGO_WINOGRAD;
    return s->c >= 32 && s->f >= 32 ? CRL_CONV_ALGO_WINOGRAD : CRL_CONV_ALGO_DIRECT;
}

static dnnl_status_t op_desc(dnnl_convolution_desc_t *cd, int pass, int algo, const conv_entry *e,
                             const crl_conv2d_params *p, const shape *s)
{
    dnnl_alg_kind_t alg = algo == CRL_CONV_ALGO_WINOGRAD ? dnnl_convolution_winograd : dnnl_convolution_direct;
    dnnl_memory_desc_t wany, bany;
    dnnl_dims_t st = {p->stride_h, p->stride_w}, dil = {p->dilation_h - 1, p->dilation_w - 1};
    dnnl_dims_t pl = {p->pad_h, p->pad_w};
    dnnl_dims_t pr = {(s->oh - 1) * p->stride_h + (s->kh - 1) * p->dilation_h + 1 - s->h - p->pad_h,
                      (s->ow - 1) * p->stride_w + (s->kw - 1) * p->dilation_w + 1 - s->w - p->pad_w};
    dnnl_status_t r;
    if (p->groups > 1) {
        dnnl_dims_t wd = {p->groups, s->f / p->groups, s->cg, s->kh, s->kw};
        r = dnnl_memory_desc_init_by_tag(&wany, 5, wd, dnnl_f32, dnnl_format_tag_any);
    } else {
        dnnl_dims_t wd = {s->f, s->c, s->kh, s->kw};
        r = dnnl_memory_desc_init_by_tag(&wany, 4, wd, dnnl_f32, dnnl_format_tag_any);
    }
    if (r != dnnl_success) return r;
    dnnl_dims_t bd = {s->f};
    r = dnnl_memory_desc_init_by_tag(&bany, 1, bd, dnnl_f32, dnnl_a);
    if (r != dnnl_success) return r;
    const dnnl_memory_desc_t *b = e->has_bias ? &bany : NULL;
    if (pass == 0)
        return dnnl_dilated_convolution_forward_desc_init(cd, dnnl_forward_training, alg, &e->src_md, &wany, b,
                                                          &e->dst_md, st, dil, pl, pr);
    if (pass == 1)
        return dnnl_dilated_convolution_backward_data_desc_init(cd, alg, &e->src_md, &wany, &e->dst_md, st, dil, pl, pr);
    return dnnl_dilated_convolution_backward_weights_desc_init(cd, alg, &e->src_md, &wany, b, &e->dst_md, st, dil,
                                                               pl, pr);
}

/* The primitive descriptor of one pass; falls back from winograd to
 * direct where oneDNN has no winograd kernel. */
static int make_pd(conv_entry *e, int pass, const crl_conv2d_plan *pl, const shape *s, const char *func)
{
    dnnl_primitive_attr_t attr;
    DN(dnnl_primitive_attr_create(&attr), "attributes");
    dnnl_status_t st = dnnl_primitive_attr_set_scratchpad_mode(attr, dnnl_scratchpad_mode_user);
    for (int algo = e->algo[pass]; st == dnnl_success; algo = CRL_CONV_ALGO_DIRECT) {
        dnnl_convolution_desc_t cd, hd;
        dnnl_primitive_desc_t hint = NULL;
        st = op_desc(&cd, pass, algo, e, &pl->p, s);
        if (st == dnnl_success && pass > 0) {
            /* backward passes need a forward of the same algorithm as a hint */
            st = op_desc(&hd, 0, algo, e, &pl->p, s);
            if (st == dnnl_success) st = dnnl_primitive_desc_create(&hint, &hd, attr, engine, NULL);
        }
        if (st == dnnl_success) st = dnnl_primitive_desc_create(&e->pd[pass], &cd, attr, engine, hint);
        if (hint) dnnl_primitive_desc_destroy(hint);
        if (st == dnnl_success) {
            e->algo[pass] = algo;
            break;
        }
        if (algo == CRL_CONV_ALGO_DIRECT || st != dnnl_unimplemented) break;
        st = dnnl_success;
    }
    dnnl_primitive_attr_destroy(attr);
    if (st == dnnl_unimplemented) {
        /* no oneDNN kernel at all for this case: the im2col path runs it */
        e->ref[pass] = 1;
        return CRL_OK;
    }
    if (st != dnnl_success)
        return crl_fail(st == dnnl_out_of_memory ? CRL_ERR_NOMEM : CRL_ERR_ARG, func,
                        "oneDNN convolution primitive descriptor for in (%lld, %lld, %lld, %lld) %s, weight (%lld, "
                        "%lld, %lld, %lld): %s", (long long)s->n, (long long)s->c, (long long)s->h, (long long)s->w,
                        crl_layout_name(e->src_layout), (long long)s->f, (long long)s->cg, (long long)s->kh,
                        (long long)s->kw, dnnl_status2str(st));
    const char *impl = "";
    dnnl_primitive_desc_query(e->pd[pass], dnnl_query_impl_info_str, 0, &impl);
    if (strncmp(impl, "ref", 3) == 0) {
        /* oneDNN's reference loops are orders of magnitude slower than im2col */
        e->ref[pass] = 1;
        return CRL_OK;
    }
    DN(dnnl_primitive_create(&e->prim[pass], e->pd[pass]), "convolution primitive");
    return CRL_OK;
}

static int make_reorder(dnnl_primitive_t *out, const dnnl_memory_desc_t *from, const dnnl_memory_desc_t *to,
                        int sum, const char *func)
{
    dnnl_primitive_attr_t attr = NULL;
    dnnl_post_ops_t po = NULL;
    dnnl_primitive_desc_t pd = NULL;
    dnnl_status_t st = dnnl_primitive_attr_create(&attr);
    if (st == dnnl_success && sum) {
        st = dnnl_post_ops_create(&po);
        if (st == dnnl_success) st = dnnl_post_ops_append_sum(po, 1.0f);
        if (st == dnnl_success) st = dnnl_primitive_attr_set_post_ops(attr, po);
    }
    if (st == dnnl_success) st = dnnl_reorder_primitive_desc_create(&pd, from, engine, to, engine, attr);
    if (st == dnnl_success) st = dnnl_primitive_create(out, pd);
    if (pd) dnnl_primitive_desc_destroy(pd);
    if (po) dnnl_post_ops_destroy(po);
    if (attr) dnnl_primitive_attr_destroy(attr);
    if (st != dnnl_success) return dnnl_fail(st, func, "weights reorder");
    return CRL_OK;
}

static const dnnl_memory_desc_t *pd_md(const conv_entry *e, int pass, dnnl_query_t what)
{
    return dnnl_primitive_desc_query_md(e->pd[pass], what, 0);
}

/* The entry for this shape, made on first use (the least recently used
 * one is replaced); the backward primitives are made by the first backward.
 * has_bias < 0: either (a backward that wants no bias gradient can use the
 * forward's entry, whose bias gradient it then ignores). */
static int find_entry(conv_entry **out, crl_conv2d_plan *pl, const shape *s, int src_layout, int dst_layout,
                      int has_bias, const char *func)
{
    conv_entry *victim = &pl->cache[0];
    pl->clock++;
    for (int i = 0; i < CACHE; i++) {
        conv_entry *e = &pl->cache[i];
        if (e->used && e->n == s->n && e->c == s->c && e->h == s->h && e->w == s->w && e->f == s->f &&
            e->kh == s->kh && e->kw == s->kw && e->src_layout == src_layout && e->dst_layout == dst_layout &&
            (has_bias < 0 || e->has_bias == has_bias) && e->threads == crl_get_num_threads()) {
            e->stamp = pl->clock;
            *out = e;
            return CRL_OK;
        }
        if (!e->used || e->stamp < victim->stamp) victim = e;
    }
    int rc = ensure_engine(func);
    if (rc) return rc;
    conv_entry *e = victim;
    entry_clear(e);
    e->n = s->n; e->c = s->c; e->h = s->h; e->w = s->w; e->f = s->f; e->kh = s->kh; e->kw = s->kw;
    e->src_layout = src_layout;
    e->dst_layout = dst_layout;
    e->has_bias = has_bias > 0;
    e->threads = crl_get_num_threads();
    int algo = choose_algo(pl, s);
    e->algo[0] = e->algo[1] = e->algo[2] = algo;
    dnnl_dims_t sd = {s->n, s->c, s->h, s->w}, dd = {s->n, s->f, s->oh, s->ow}, bd = {s->f};
    DN(dnnl_memory_desc_init_by_tag(&e->src_md, 4, sd, dnnl_f32, tag_of(src_layout)), "src descriptor");
    DN(dnnl_memory_desc_init_by_tag(&e->dst_md, 4, dd, dnnl_f32, tag_of(dst_layout)), "dst descriptor");
    DN(dnnl_memory_desc_init_by_tag(&e->bias_md, 1, bd, dnnl_f32, dnnl_a), "bias descriptor");
    if (pl->p.groups > 1) {
        dnnl_dims_t wd = {pl->p.groups, s->f / pl->p.groups, s->cg, s->kh, s->kw};
        DN(dnnl_memory_desc_init_by_tag(&e->wplain_md, 5, wd, dnnl_f32, dnnl_goihw), "weights descriptor");
    } else {
        dnnl_dims_t wd = {s->f, s->c, s->kh, s->kw};
        DN(dnnl_memory_desc_init_by_tag(&e->wplain_md, 4, wd, dnnl_f32, dnnl_oihw), "weights descriptor");
    }
    e->used = 1;
    e->stamp = pl->clock;
    rc = make_pd(e, 0, pl, s, func);
    if (rc == CRL_OK && !e->ref[0])
        rc = make_reorder(&e->wreorder[0], &e->wplain_md, pd_md(e, 0, dnnl_query_weights_md), 0, func);
    if (rc) {
        entry_clear(e);
        return rc;
    }
    *out = e;
    return CRL_OK;
}

static int ensure_backward(conv_entry *e, crl_conv2d_plan *pl, const shape *s, const char *func)
{
    int rc = CRL_OK;
    if (e->pd[1] == NULL && !e->ref[1]) {
        rc = make_pd(e, 1, pl, s, func);
        if (rc == CRL_OK && !e->ref[1])
            rc = make_reorder(&e->wreorder[1], &e->wplain_md, pd_md(e, 1, dnnl_query_weights_md), 0, func);
    }
    if (rc == CRL_OK && e->pd[2] == NULL && !e->ref[2]) {
        rc = make_pd(e, 2, pl, s, func);
        if (rc == CRL_OK && !e->ref[2])
            rc = make_reorder(&e->dwreorder, pd_md(e, 2, dnnl_query_diff_weights_md), &e->wplain_md, 1, func);
    }
    if (rc) entry_clear(e);
    return rc;
}

/* ---- execution --------------------------------------------------------------------------- */

static int grow(crl_tensor *buf, size_t bytes)
{
    int64_t n = (int64_t)(bytes + 3) / 4;
    if (buf->storage != NULL && buf->storage->nbytes >= n * 4) return CRL_OK;
    buf->dtype = CRL_FLOAT32;
    buf->device = CRL_CPU;
    return crl_tensor_resize(buf, 1, &n);
}

typedef struct {
    int arg;
    const dnnl_memory_desc_t *md;
    void *data;
} exec_arg;

/* Runs one primitive on these buffers, with the shared scratchpad. The
 * memory objects of a run site are made at its first run and re-pointed
 * after that, so a step allocates nothing. */
static int run(dnnl_memory_t *mem, dnnl_primitive_t prim, const_dnnl_primitive_desc_t pd, const exec_arg *a, int na,
               const char *func)
{
    dnnl_exec_arg_t args[5];
    int n = 0, rc = CRL_OK;
    pthread_mutex_lock(&exec_lock);
    const dnnl_memory_desc_t *spmd = pd ? dnnl_primitive_desc_query_md(pd, dnnl_query_scratchpad_md, 0) : NULL;
    size_t sp = spmd ? dnnl_memory_desc_get_size(spmd) : 0;
    if (sp && grow(&scratch, sp)) rc = CRL_ERR_NOMEM;
    for (int i = 0; i < na + 1 && rc == CRL_OK; i++) {
        if (i == na && sp == 0) break;
        const dnnl_memory_desc_t *md = i < na ? a[i].md : spmd;
        void *data = i < na ? a[i].data : crl_tensor_data(&scratch);
        dnnl_status_t st = mem[i] ? dnnl_memory_set_data_handle(mem[i], data)
                                  : dnnl_memory_create(&mem[i], md, engine, data);
        if (st != dnnl_success) {
            rc = dnnl_fail(st, func, "memory");
            break;
        }
        args[n].arg = i < na ? a[i].arg : DNNL_ARG_SCRATCHPAD;
        args[n].memory = mem[i];
        n++;
    }
    if (rc == CRL_OK) {
        dnnl_status_t st = dnnl_primitive_execute(prim, stream, n, args);
        if (st == dnnl_success) st = dnnl_stream_wait(stream);
        if (st != dnnl_success) rc = dnnl_fail(st, func, "execute");
    }
    pthread_mutex_unlock(&exec_lock);
    return rc;
}

/* Weights (plain) -> the format of pass 0 or 1, into the plan's buffer. */
static int reorder_weights(crl_conv2d_plan *pl, conv_entry *e, int pass, const crl_tensor *weight, const char *func)
{
    const dnnl_memory_desc_t *wmd = pd_md(e, pass, dnnl_query_weights_md);
    if (grow(&pl->wbuf[pass], dnnl_memory_desc_get_size(wmd))) return CRL_ERR_NOMEM;
    exec_arg a[2] = {{DNNL_ARG_FROM, &e->wplain_md, crl_tensor_data(weight)},
                     {DNNL_ARG_TO, wmd, crl_tensor_data(&pl->wbuf[pass])}};
    return run(e->mem[SITE_WREORDER + pass], e->wreorder[pass], NULL, a, 2, func);
}

static const char *impl_of(const conv_entry *e, int pass)
{
    const char *s = "";
    if (e->pd[pass]) dnnl_primitive_desc_query(e->pd[pass], dnnl_query_impl_info_str, 0, &s);
    return s;
}

static void describe(crl_conv2d_plan *pl, const conv_entry *e)
{
    static const char *an[] = {"auto", "direct", "winograd"};
    const char *im = "im2col (oneDNN had only ref)";
    snprintf(pl->describe, sizeof pl->describe, "onednn fwd %s %s | bwd_data %s %s | bwd_weights %s %s",
             e->ref[0] ? im : impl_of(e, 0), e->ref[0] ? "" : an[e->algo[0]],
             e->ref[1] ? im : e->pd[1] ? impl_of(e, 1) : "-", e->pd[1] && !e->ref[1] ? an[e->algo[1]] : "",
             e->ref[2] ? im : e->pd[2] ? impl_of(e, 2) : "-", e->pd[2] && !e->ref[2] ? an[e->algo[2]] : "");
}

/* The layout a plain input is given to oneDNN in: the stem's few channels
 * stay plain (oneDNN has kernels for that), others are reordered. */
static int src_layout_for(const crl_tensor *in)
{
    if (in->layout != CRL_LAYOUT_PLAIN) return in->layout;
    return in->sizes[1] < 8 ? CRL_LAYOUT_PLAIN : crl_layout_preferred();
}

/* in as the primitive reads it: itself, or reordered into src_tmp. */
static int src_view(const crl_tensor **src, crl_conv2d_plan *pl, const crl_tensor *in, int layout)
{
    if (in->layout == layout) {
        *src = in;
        return CRL_OK;
    }
    *src = &pl->src_tmp;
    return crl_tensor_reorder(&pl->src_tmp, in, layout);
}

static int reference_forward(crl_conv2d_plan *pl, crl_tensor *out, const crl_tensor *in, const crl_tensor *weight,
                             const crl_tensor *bias);
static int reference_backward(crl_conv2d_plan *pl, crl_tensor *grad_in, crl_tensor *grad_weight, crl_tensor *grad_bias,
                              const crl_tensor *grad_out, const crl_tensor *in, const crl_tensor *weight);

/* The im2col path on plain copies of whatever layouts it is given: out in
 * layout dl; grad_in in in's layout. For the reference backend, and for the
 * passes where oneDNN offers only its `ref` loops. */
static int im2col_forward(crl_conv2d_plan *pl, crl_tensor *out, const crl_tensor *in, const crl_tensor *weight,
                          const crl_tensor *bias, int dl)
{
    const crl_tensor *xp;
    int rc = src_view(&xp, pl, in, CRL_LAYOUT_PLAIN);
    if (rc) return rc;
    if (dl == CRL_LAYOUT_PLAIN) return reference_forward(pl, out, xp, weight, bias);
    if ((rc = reference_forward(pl, &pl->dout_tmp, xp, weight, bias))) return rc;
    return crl_tensor_reorder(out, &pl->dout_tmp, dl);
}

static int im2col_backward(crl_conv2d_plan *pl, crl_tensor *grad_in, crl_tensor *grad_weight, crl_tensor *grad_bias,
                           const crl_tensor *grad_out, const crl_tensor *in, const crl_tensor *weight)
{
    const crl_tensor *xp, *gyp = grad_out;
    crl_tensor *gxp = in->layout == CRL_LAYOUT_PLAIN ? grad_in : (grad_in ? &pl->din_tmp : NULL);
    int rc = src_view(&xp, pl, in, CRL_LAYOUT_PLAIN);
    if (rc) return rc;
    if (grad_out->layout != CRL_LAYOUT_PLAIN) {
        if ((rc = crl_tensor_reorder(&pl->dout_tmp, grad_out, CRL_LAYOUT_PLAIN))) return rc;
        gyp = &pl->dout_tmp;
    }
    rc = reference_backward(pl, gxp, grad_weight, grad_bias, gyp, xp, weight);
    if (rc == CRL_OK && gxp != grad_in) rc = crl_tensor_reorder(grad_in, gxp, in->layout);
    return rc;
}

int crl_cpu_conv2d_plan_forward(crl_conv2d_plan *pl, crl_tensor *out, const crl_tensor *in, const crl_tensor *weight,
                            const crl_tensor *bias, int plain_output)
{
    const char *func = __func__;
    shape s = {0};
    int rc = crl_conv2d_plan_check_forward(&s, pl, out, in, weight, bias, CRL_CPU, func);
    if (rc) return rc;
    if (pl->backend == CRL_CONV_REFERENCE) return im2col_forward(pl, out, in, weight, bias, CRL_LAYOUT_PLAIN);
    int sl = src_layout_for(in), dl = plain_output ? CRL_LAYOUT_PLAIN : crl_layout_preferred();
    conv_entry *e;
    if ((rc = find_entry(&e, pl, &s, sl, dl, bias != NULL, func))) return rc;
    if (e->ref[0]) {
        rc = im2col_forward(pl, out, in, weight, bias, dl);
        describe(pl, e);
        return rc;
    }
    const crl_tensor *src;
    if ((rc = src_view(&src, pl, in, sl))) return rc;
    int64_t osz[4] = {s.n, s.f, s.oh, s.ow};
    if ((rc = crl_prepare_layout(out, CRL_FLOAT32, CRL_CPU, 4, osz, dl))) return rc;
    if ((rc = reorder_weights(pl, e, 0, weight, func))) return rc;
    exec_arg a[4] = {{DNNL_ARG_SRC, &e->src_md, crl_tensor_data(src)},
                     {DNNL_ARG_WEIGHTS, pd_md(e, 0, dnnl_query_weights_md), crl_tensor_data(&pl->wbuf[0])},
                     {DNNL_ARG_DST, &e->dst_md, crl_tensor_data(out)},
                     {DNNL_ARG_BIAS, &e->bias_md, bias ? crl_tensor_data(bias) : NULL}};
    rc = run(e->mem[SITE_FWD], e->prim[0], e->pd[0], a, bias ? 4 : 3, func);
    describe(pl, e);
    return rc;
}

int crl_cpu_conv2d_plan_backward(crl_conv2d_plan *pl, crl_tensor *grad_in, crl_tensor *grad_weight, crl_tensor *grad_bias,
                             const crl_tensor *grad_out, const crl_tensor *in, const crl_tensor *weight)
{
    const char *func = __func__;
    shape s = {0};
    int rc = crl_conv2d_plan_check_backward(&s, pl, grad_in, grad_weight, grad_bias, grad_out, in, weight, CRL_CPU,
                                            func);
    if (rc) return rc;
    if (pl->backend == CRL_CONV_REFERENCE)
        return im2col_backward(pl, grad_in, grad_weight, grad_bias, grad_out, in, weight);
    int sl = src_layout_for(in), dl = grad_out->layout;
    conv_entry *e;
    if ((rc = find_entry(&e, pl, &s, sl, dl, grad_bias != NULL ? 1 : -1, func))) return rc;
    if ((rc = ensure_backward(e, pl, &s, func))) return rc;
    const crl_tensor *gy = grad_out;
    int ref_in = grad_in && e->ref[1], ref_w = (grad_weight || grad_bias) && e->ref[2];
    if (ref_in || ref_w) {
        rc = im2col_backward(pl, ref_in ? grad_in : NULL, ref_w ? grad_weight : NULL, ref_w ? grad_bias : NULL,
                             grad_out, in, weight);
        if (rc) return rc;
        if (ref_in) grad_in = NULL;
        if (ref_w) grad_weight = grad_bias = NULL;
    }
    if (grad_in) {
        /* diff_src in the src layout; back to in's layout when they differ */
        crl_tensor *gx = in->layout == sl ? grad_in : &pl->din_tmp;
        if ((rc = crl_prepare_layout(gx, CRL_FLOAT32, CRL_CPU, 4, in->sizes, sl))) return rc;
        if ((rc = reorder_weights(pl, e, 1, weight, func))) return rc;
        exec_arg a[3] = {{DNNL_ARG_DIFF_DST, &e->dst_md, crl_tensor_data(gy)},
                         {DNNL_ARG_WEIGHTS, pd_md(e, 1, dnnl_query_weights_md), crl_tensor_data(&pl->wbuf[1])},
                         {DNNL_ARG_DIFF_SRC, &e->src_md, crl_tensor_data(gx)}};
        if ((rc = run(e->mem[SITE_BWD_DATA], e->prim[1], e->pd[1], a, 3, func))) return rc;
        if (gx != grad_in && (rc = crl_tensor_reorder(grad_in, gx, in->layout))) return rc;
    }
    if (grad_weight || grad_bias) {
        const crl_tensor *src;
        if ((rc = src_view(&src, pl, in, sl))) return rc;
        const dnnl_memory_desc_t *dwmd = pd_md(e, 2, dnnl_query_diff_weights_md);
        if (grow(&pl->dwbuf, dnnl_memory_desc_get_size(dwmd)) || grow(&pl->dbias, (size_t)s.f * 4))
            return CRL_ERR_NOMEM;
        exec_arg a[4] = {{DNNL_ARG_SRC, &e->src_md, crl_tensor_data(src)},
                         {DNNL_ARG_DIFF_DST, &e->dst_md, crl_tensor_data(gy)},
                         {DNNL_ARG_DIFF_WEIGHTS, dwmd, crl_tensor_data(&pl->dwbuf)},
                         {DNNL_ARG_DIFF_BIAS, &e->bias_md, crl_tensor_data(&pl->dbias)}};
        if ((rc = run(e->mem[SITE_BWD_WEIGHTS], e->prim[2], e->pd[2], a, grad_bias ? 4 : 3, func))) return rc;
        if (grad_weight) {
            exec_arg r[2] = {{DNNL_ARG_FROM, dwmd, crl_tensor_data(&pl->dwbuf)},
                             {DNNL_ARG_TO, &e->wplain_md, crl_tensor_data(grad_weight)}};
            if ((rc = run(e->mem[SITE_DWREORDER], e->dwreorder, NULL, r, 2, func))) return rc;
        }
        if (grad_bias) {
            float *gb = crl_tensor_data(grad_bias);
            const float *db = crl_tensor_data(&pl->dbias);
            for (int64_t f = 0; f < s.f; f++) gb[f] += db[f];
        }
    }
    describe(pl, e);
    return CRL_OK;
}

/* ---- the reference path: im2col per group, on plain tensors --------------------------------- */

/* Group g's slice of a contiguous (N, X, ...) tensor along dimension 1, as
 * a new contiguous tensor in dst (for groups > 1 only). */
static int group_slice(crl_tensor *dst, const crl_tensor *src, int groups, int g)
{
    crl_tensor v = {0};
    int64_t part = src->sizes[1] / groups;
    int rc = crl_tensor_narrow(&v, src, 1, g * part, part);
    if (rc == CRL_OK) rc = crl_tensor_contiguous(dst, &v);
    crl_tensor_release(&v);
    return rc;
}

static int reference_forward(crl_conv2d_plan *pl, crl_tensor *out, const crl_tensor *in, const crl_tensor *weight,
                             const crl_tensor *bias)
{
    int rc = crl_require_plain(in, __func__, "in");
    if (rc) return rc;
    snprintf(pl->describe, sizeof pl->describe, "reference im2col + sgemm");
    int groups = pl->p.groups;
    crl_conv2d_params one = pl->p;
    one.groups = 1;
    if (groups == 1) return crl_conv2d_forward(out, in, weight, bias, &one, &pl->ws);
    /* per group: slices in, weight, bias; the group's output copied into out */
    crl_tensor xi = {0}, wi = {0}, bi = {0}, yi = {0}, ov = {0};
    for (int g = 0; g < groups && rc == CRL_OK; g++) {
        rc = group_slice(&xi, in, groups, g);
        if (rc == CRL_OK) {
            int64_t fpg = weight->sizes[0] / groups;
            crl_tensor wv = {0};
            rc = crl_tensor_narrow(&wv, weight, 0, g * fpg, fpg);
            if (rc == CRL_OK) rc = crl_tensor_contiguous(&wi, &wv);
            crl_tensor_release(&wv);
            if (rc == CRL_OK && bias) {
                crl_tensor bv = {0};
                rc = crl_tensor_narrow(&bv, bias, 0, g * fpg, fpg);
                if (rc == CRL_OK) rc = crl_tensor_contiguous(&bi, &bv);
                crl_tensor_release(&bv);
            }
            if (rc == CRL_OK) rc = crl_conv2d_forward(&yi, &xi, &wi, bias ? &bi : NULL, &one, &pl->ws);
            if (rc == CRL_OK && g == 0) {
                int64_t osz[4] = {yi.sizes[0], weight->sizes[0], yi.sizes[2], yi.sizes[3]};
                rc = crl_prepare(out, CRL_FLOAT32, CRL_CPU, 4, osz);
            }
            if (rc == CRL_OK) rc = crl_tensor_narrow(&ov, out, 1, g * fpg, fpg);
            if (rc == CRL_OK) rc = crl_tensor_copy(&ov, &yi);
        }
    }
    crl_tensor *tmp[] = {&xi, &wi, &bi, &yi, &ov};
    for (int i = 0; i < 5; i++) crl_tensor_release(tmp[i]);
    return rc;
}

static int reference_backward(crl_conv2d_plan *pl, crl_tensor *grad_in, crl_tensor *grad_weight, crl_tensor *grad_bias,
                              const crl_tensor *grad_out, const crl_tensor *in, const crl_tensor *weight)
{
    int rc = crl_require_plain(in, __func__, "in");
    if (rc == CRL_OK) rc = crl_require_plain(grad_out, __func__, "grad_out");
    if (rc) return rc;
    int groups = pl->p.groups;
    crl_conv2d_params one = pl->p;
    one.groups = 1;
    if (groups == 1) return crl_conv2d_backward(grad_in, grad_weight, grad_bias, grad_out, in, weight, &one, &pl->ws);
    if (grad_in && (rc = crl_prepare(grad_in, CRL_FLOAT32, CRL_CPU, 4, in->sizes))) return rc;
    int64_t fpg = weight->sizes[0] / groups, cpg = in->sizes[1] / groups;
    crl_tensor xi = {0}, wi = {0}, gyi = {0}, gxi = {0}, gwi = {0}, gbi = {0}, v = {0};
    for (int g = 0; g < groups && rc == CRL_OK; g++) {
        rc = group_slice(&xi, in, groups, g);
        if (rc == CRL_OK) rc = group_slice(&gyi, grad_out, groups, g);
        if (rc == CRL_OK) rc = crl_tensor_narrow(&v, weight, 0, g * fpg, fpg);
        if (rc == CRL_OK) rc = crl_tensor_contiguous(&wi, &v);
        int64_t wsz[4] = {fpg, weight->sizes[1], weight->sizes[2], weight->sizes[3]}, bsz = fpg;
        if (rc == CRL_OK) rc = crl_prepare(&gwi, CRL_FLOAT32, CRL_CPU, 4, wsz);
        if (rc == CRL_OK) rc = crl_prepare(&gbi, CRL_FLOAT32, CRL_CPU, 1, &bsz);
        if (rc == CRL_OK) rc = crl_tensor_fill(&gwi, 0);
        if (rc == CRL_OK) rc = crl_tensor_fill(&gbi, 0);
        if (rc == CRL_OK)
            rc = crl_conv2d_backward(grad_in ? &gxi : NULL, grad_weight ? &gwi : NULL, grad_bias ? &gbi : NULL, &gyi,
                                     &xi, &wi, &one, &pl->ws);
        if (rc == CRL_OK && grad_in) {
            rc = crl_tensor_narrow(&v, grad_in, 1, g * cpg, cpg);
            if (rc == CRL_OK) rc = crl_tensor_copy(&v, &gxi);
        }
        if (rc == CRL_OK && grad_weight) {
            float *gw = (float *)crl_tensor_data(grad_weight) + g * crl_tensor_numel(&gwi);
            const float *src = crl_tensor_data(&gwi);
            for (int64_t i = 0; i < crl_tensor_numel(&gwi); i++) gw[i] += src[i];
        }
        if (rc == CRL_OK && grad_bias) {
            float *gb = (float *)crl_tensor_data(grad_bias) + g * fpg;
            const float *src = crl_tensor_data(&gbi);
            for (int64_t i = 0; i < fpg; i++) gb[i] += src[i];
        }
    }
    crl_tensor *tmp[] = {&xi, &wi, &gyi, &gxi, &gwi, &gbi, &v};
    for (int i = 0; i < 7; i++) crl_tensor_release(tmp[i]);
    return rc;
}
