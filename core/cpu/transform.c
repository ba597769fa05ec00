/* cpu/transform.c -- the per-image augmentation transforms: crops (random
 * with zero or reflect padding, centre, random-resized as in the Inception
 * / ResNet ImageNet recipes), resizing (separable triangle filter, widened
 * when shrinking so it antialiases as PIL and torchvision do), horizontal
 * flip, colour jitter, PCA lighting noise, cutout and normalisation. One
 * image at a time, no threads: the loader runs many images in parallel. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "../internal.h"
#include "transform.h"

/* Uniform in [0, 1) from word k of transform j's blocks. */
typedef struct {
    uint64_t seed, base;
    uint32_t words[4];
    int64_t block;
    int used;
} draws;

static void draws_init(draws *d, uint64_t seed, uint64_t base)
{
    d->seed = seed;
    d->base = base;
    d->block = -1;
    d->used = 4;
}

static uint32_t next_word(draws *d)
{
    if (d->used == 4) {
        d->block++;
        crl_philox(d->words, d->seed, d->base + (uint64_t)d->block);
        d->used = 0;
    }
    return d->words[d->used++];
}

static double uniform01(draws *d) { return (next_word(d) >> 8) * (1.0 / 16777216.0); }

static double normal01(draws *d)
{
    double u1 = ((next_word(d) >> 8) + 1) * (1.0 / 16777216.0), u2 = uniform01(d);
    return sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2);
}

/* An integer in [lo, hi] */
static int64_t randint(draws *d, int64_t lo, int64_t hi)
{
    if (hi <= lo) return lo;
    return lo + (int64_t)(next_word(d) % (uint32_t)(hi - lo + 1));
}

static int ensure(crl_scratch *s, int which, size_t floats)
{
    float **buf = which ? &s->b : &s->a;
    size_t *cap = which ? &s->cap_b : &s->cap_a;
    if (*cap >= floats) return 0;
    float *grown = realloc(*buf, floats * sizeof(float) + 64);
    if (grown == NULL) return -1;
    *buf = grown;
    *cap = floats;
    return 0;
}

void crl_scratch_free(crl_scratch *s)
{
    free(s->a);
    free(s->b);
    free(s->tmp);
    free(s->wbuf);
    memset(s, 0, sizeof *s);
}

/* ---- resampling ------------------------------------------------------------- */

/* Taps of the triangle filter for out samples over in samples [0, in). */
static int taps(crl_scratch *s, int64_t in, int64_t out, int64_t **start, int64_t **count, float **weights,
                int64_t *ktaps)
{
    double scale = (double)in / (double)out;
    double support = scale > 1 ? scale : 1.0;
    int64_t k = (int64_t)ceil(support) * 2 + 1;
    size_t need = (size_t)(out * 2) * sizeof(int64_t) + (size_t)(out * k) * sizeof(float);
    if (s->wcap < need) {
        void *grown = realloc(s->wbuf, need);
        if (grown == NULL) return -1;
        s->wbuf = grown;
        s->wcap = need;
    }
    *start = s->wbuf;
    *count = *start + out;
    *weights = (float *)(*count + out);
    for (int64_t i = 0; i < out; i++) {
        double center = (i + 0.5) * scale;
        int64_t lo = (int64_t)floor(center - support + 0.5), hi = (int64_t)floor(center + support + 0.5);
        if (lo < 0) lo = 0;
        if (hi > in) hi = in;
        if (hi - lo > k) hi = lo + k;
        double total = 0;
        float *w = *weights + i * k;
        for (int64_t j = lo; j < hi; j++) {
            double t = fabs((j + 0.5 - center) / support);
            w[j - lo] = (float)(t < 1 ? 1 - t : 0);
            total += w[j - lo];
        }
        if (total <= 0) { /* degenerate: nearest sample */
            lo = (int64_t)center < in ? (int64_t)center : in - 1;
            hi = lo + 1;
            w[0] = 1;
            total = 1;
        }
        for (int64_t j = 0; j < hi - lo; j++) w[j] = (float)(w[j] / total);
        (*start)[i] = lo;
        (*count)[i] = hi - lo;
    }
    *ktaps = k;
    return 0;
}

/* dst (c, oh, ow) = resize of the region [y0, y0 + rh) x [x0, x0 + rw) of
 * src (c, h, w): float, or uint8 (src8, scaled by 1/255) so a decoded image
 * need not be converted whole when only a crop of it is used. */
static int resample(crl_scratch *s, float *dst, int64_t oh, int64_t ow, const float *src, const uint8_t *src8,
                    int64_t c, int64_t h, int64_t w, int64_t y0, int64_t x0, int64_t rh, int64_t rw)
{
    float *tmp = s->tmp;
    int64_t *st, *cn, k;
    float *wt;
    /* horizontal: tmp (c, rh, ow) */
    if (taps(s, rw, ow, &st, &cn, &wt, &k)) return -1;
    for (int64_t ch = 0; ch < c; ch++)
        for (int64_t y = 0; y < rh; y++) {
            float *o = tmp + (ch * rh + y) * ow;
            if (src8) {
                const uint8_t *row = src8 + (ch * h + y0 + y) * w + x0;
                for (int64_t i = 0; i < ow; i++) {
                    const float *ww = wt + i * k;
                    float acc = 0;
                    for (int64_t j = 0; j < cn[i]; j++) acc += ww[j] * row[st[i] + j];
                    o[i] = acc * (1.0f / 255.0f);
                }
            } else {
                const float *row = src + (ch * h + y0 + y) * w + x0;
                for (int64_t i = 0; i < ow; i++) {
                    const float *ww = wt + i * k;
                    float acc = 0;
                    for (int64_t j = 0; j < cn[i]; j++) acc += ww[j] * row[st[i] + j];
                    o[i] = acc;
                }
            }
        }
    /* vertical: dst (c, oh, ow) */
    if (taps(s, rh, oh, &st, &cn, &wt, &k)) return -1;
    for (int64_t ch = 0; ch < c; ch++)
        for (int64_t i = 0; i < oh; i++) {
            float *o = dst + (ch * oh + i) * ow;
            for (int64_t x = 0; x < ow; x++) o[x] = 0;
            const float *ww = wt + i * k;
            for (int64_t j = 0; j < cn[i]; j++) {
                const float *row = tmp + (ch * rh + st[i] + j) * ow;
                float f = ww[j];
                for (int64_t x = 0; x < ow; x++) o[x] += f * row[x];
            }
        }
    return 0;
}

static inline int64_t reflect_index(int64_t i, int64_t n)
{
    if (n == 1) return 0;
    while (i < 0 || i >= n) i = i < 0 ? -i : 2 * (n - 1) - i;
    return i;
}

static inline float clamp01(float v) { return v < 0 ? 0 : v > 1 ? 1 : v; }

/* ---- the pipeline -------------------------------------------------------------- */

int crl_transform_run(float **result, int64_t *oc, int64_t *oh, int64_t *ow, const uint8_t *img, int64_t c,
                      int64_t h, int64_t w, const crl_transform *t, int count, uint64_t seed, uint64_t counter,
                      crl_scratch *s, const char *func, const char *name)
{
    /* The image stays uint8 until a transform needs floats; a leading
     * resize or random-resized crop reads the bytes directly. */
    const uint8_t *cur8 = img;
    float *cur = NULL;
    int cur_is_a = 1;
    for (int j = 0; j < count; j++) {
        const crl_transform *tr = &t[j];
        draws d;
        draws_init(&d, seed, counter + CRL_TRANSFORM_BLOCKS * (uint64_t)j);
        int64_t nh = h, nw = w;
        /* transforms that change the size write into the other buffer */
        int64_t y0 = 0, x0 = 0, rh = h, rw = w;
        int resize = 0;
        if (cur8 && tr->kind != CRL_T_RESIZE && tr->kind != CRL_T_RANDOM_RESIZED_CROP) {
            if (ensure(s, 0, (size_t)(c * h * w))) return crl_fail(CRL_ERR_NOMEM, func, "out of memory for '%s'", name);
            cur = s->a;
            for (int64_t i = 0; i < c * h * w; i++) cur[i] = cur8[i] * (1.0f / 255.0f);
            cur8 = NULL;
            cur_is_a = 1;
        }
        switch (tr->kind) {
        case CRL_T_RANDOM_CROP:
        case CRL_T_CENTER_CROP: {
            nh = tr->h > 0 ? tr->h : h;
            nw = tr->w > 0 ? tr->w : w;
            int64_t pad = tr->kind == CRL_T_RANDOM_CROP ? tr->pad : 0;
            if (nh > h + 2 * pad || nw > w + 2 * pad)
                return crl_fail(CRL_ERR_SHAPE, func, "'%s': a %lldx%lld crop does not fit a %lldx%lld image with "
                                "padding %lld", name, (long long)nh, (long long)nw, (long long)h, (long long)w,
                                (long long)pad);
            int64_t oy, ox;
            if (tr->kind == CRL_T_RANDOM_CROP) {
                oy = randint(&d, 0, h + 2 * pad - nh) - pad;
                ox = randint(&d, 0, w + 2 * pad - nw) - pad;
            } else {
                oy = (h - nh) / 2;
                ox = (w - nw) / 2;
            }
            if (ensure(s, cur_is_a, (size_t)(c * nh * nw)))
                return crl_fail(CRL_ERR_NOMEM, func, "out of memory for '%s'", name);
            float *dst = cur_is_a ? s->b : s->a;
            for (int64_t ch = 0; ch < c; ch++)
                for (int64_t y = 0; y < nh; y++)
                    for (int64_t x = 0; x < nw; x++) {
                        int64_t sy = y + oy, sx = x + ox;
                        float v;
                        if (sy >= 0 && sy < h && sx >= 0 && sx < w) v = cur[(ch * h + sy) * w + sx];
                        else if (tr->reflect) v = cur[(ch * h + reflect_index(sy, h)) * w + reflect_index(sx, w)];
                        else v = 0;
                        dst[(ch * nh + y) * nw + x] = v;
                    }
            cur = dst;
            cur_is_a = !cur_is_a;
            break;
        }
        case CRL_T_RESIZE:
            if (tr->w > 0) {
                nh = tr->h;
                nw = tr->w;
            } else if (h <= w) {
                nh = tr->h;
                nw = (int64_t)floor((double)tr->h * w / h + 0.5);
            } else {
                nw = tr->h;
                nh = (int64_t)floor((double)tr->h * h / w + 0.5);
            }
            resize = 1;
            break;
        case CRL_T_RANDOM_RESIZED_CROP: {
            double area = (double)h * w, lr0 = log(tr->ratio[0]), lr1 = log(tr->ratio[1]);
            int found = 0;
            for (int attempt = 0; attempt < 10 && !found; attempt++) {
                double target = area * (tr->scale[0] + (tr->scale[1] - tr->scale[0]) * uniform01(&d));
                double aspect = exp(lr0 + (lr1 - lr0) * uniform01(&d));
                int64_t cw = (int64_t)floor(sqrt(target * aspect) + 0.5), chh = (int64_t)floor(sqrt(target / aspect) + 0.5);
                if (cw > 0 && cw <= w && chh > 0 && chh <= h) {
                    y0 = randint(&d, 0, h - chh);
                    x0 = randint(&d, 0, w - cw);
                    rh = chh;
                    rw = cw;
                    found = 1;
                }
            }
            if (!found) { /* the centre crop torchvision falls back to */
                double in_ratio = (double)w / h;
                if (in_ratio < tr->ratio[0]) {
                    rw = w;
                    rh = (int64_t)floor(w / tr->ratio[0] + 0.5);
                } else if (in_ratio > tr->ratio[1]) {
                    rh = h;
                    rw = (int64_t)floor(h * tr->ratio[1] + 0.5);
                } else {
                    rh = h;
                    rw = w;
                }
                if (rh > h) rh = h;
                if (rw > w) rw = w;
                if (rh < 1) rh = 1;
                if (rw < 1) rw = 1;
                y0 = (h - rh) / 2;
                x0 = (w - rw) / 2;
            }
            nh = tr->h;
            nw = tr->w;
            resize = 1;
            break;
        }
        case CRL_T_HFLIP:
            if (uniform01(&d) < tr->p) {
                for (int64_t ch = 0; ch < c; ch++)
                    for (int64_t y = 0; y < h; y++) {
                        float *row = cur + (ch * h + y) * w;
                        for (int64_t x = 0; x < w / 2; x++) {
                            float v = row[x];
                            row[x] = row[w - 1 - x];
                            row[w - 1 - x] = v;
                        }
                    }
            }
            break;
        case CRL_T_COLOR_JITTER: {
            /* brightness, contrast, saturation, in this fixed order */
            int64_t hw = h * w;
            if (tr->brightness > 0) {
                float f = (float)(fmax(0, 1 - tr->brightness) + (1 + tr->brightness - fmax(0, 1 - tr->brightness)) * uniform01(&d));
                for (int64_t i = 0; i < c * hw; i++) cur[i] = clamp01(cur[i] * f);
            }
            if (tr->contrast > 0) {
                float f = (float)(fmax(0, 1 - tr->contrast) + (1 + tr->contrast - fmax(0, 1 - tr->contrast)) * uniform01(&d));
                double mean = 0;
                for (int64_t i = 0; i < hw; i++)
                    mean += c == 3 ? 0.299 * cur[i] + 0.587 * cur[hw + i] + 0.114 * cur[2 * hw + i] : cur[i];
                mean /= (double)hw;
                for (int64_t i = 0; i < c * hw; i++) cur[i] = clamp01(cur[i] * f + (float)mean * (1 - f));
            }
            if (tr->saturation > 0 && c == 3) {
                float f = (float)(fmax(0, 1 - tr->saturation) + (1 + tr->saturation - fmax(0, 1 - tr->saturation)) * uniform01(&d));
                for (int64_t i = 0; i < hw; i++) {
                    float g = 0.299f * cur[i] + 0.587f * cur[hw + i] + 0.114f * cur[2 * hw + i];
                    for (int64_t ch = 0; ch < 3; ch++) cur[ch * hw + i] = clamp01(cur[ch * hw + i] * f + g * (1 - f));
                }
            }
            break;
        }
        case CRL_T_LIGHTING: {
            if (c != 3) return crl_fail(CRL_ERR_SHAPE, func, "'%s': lighting noise needs 3 channels, got %lld", name, (long long)c);
            double a[3], rgb[3];
            for (int k = 0; k < 3; k++) a[k] = normal01(&d) * tr->alphastd;
            for (int r = 0; r < 3; r++) {
                rgb[r] = 0;
                for (int k = 0; k < 3; k++) rgb[r] += tr->eigvec[r * 3 + k] * a[k] * tr->eigval[k];
            }
            for (int64_t ch = 0; ch < 3; ch++)
                for (int64_t i = 0; i < h * w; i++) cur[ch * h * w + i] += (float)rgb[ch];
            break;
        }
        case CRL_T_CUTOUT: {
            int64_t cy = randint(&d, 0, h - 1), cx = randint(&d, 0, w - 1), half = tr->size / 2;
            for (int64_t ch = 0; ch < c; ch++)
                for (int64_t y = cy - half; y < cy - half + tr->size; y++) {
                    if (y < 0 || y >= h) continue;
                    for (int64_t x = cx - half; x < cx - half + tr->size; x++)
                        if (x >= 0 && x < w) cur[(ch * h + y) * w + x] = 0;
                }
            break;
        }
        case CRL_T_NORMALIZE:
            if (c > 4) return crl_fail(CRL_ERR_SHAPE, func, "'%s': normalise takes at most 4 channels", name);
            for (int64_t ch = 0; ch < c; ch++) {
                if (!(tr->std[ch] > 0))
                    return crl_fail(CRL_ERR_ARG, func, "'%s': normalise std[%lld] = %g must be > 0", name,
                                    (long long)ch, tr->std[ch]);
                float m = tr->mean[ch], inv = 1.0f / tr->std[ch];
                for (int64_t i = 0; i < h * w; i++) cur[ch * h * w + i] = (cur[ch * h * w + i] - m) * inv;
            }
            break;
        default:
            return crl_fail(CRL_ERR_ARG, func, "transform %d has unknown kind %d", j, tr->kind);
        }
        if (resize) {
            if (nh < 1 || nw < 1)
                return crl_fail(CRL_ERR_ARG, func, "'%s': resize to %lldx%lld", name, (long long)nh, (long long)nw);
            size_t tmp_need = (size_t)(c * rh * nw);
            if (s->tmp_cap < tmp_need) {
                float *g = realloc(s->tmp, tmp_need * sizeof(float) + 64);
                if (g == NULL) return crl_fail(CRL_ERR_NOMEM, func, "out of memory for '%s'", name);
                s->tmp = g;
                s->tmp_cap = tmp_need;
            }
            if (ensure(s, cur_is_a, (size_t)(c * nh * nw)))
                return crl_fail(CRL_ERR_NOMEM, func, "out of memory for '%s'", name);
            float *dst = cur_is_a ? s->b : s->a;
            if (resample(s, dst, nh, nw, cur, cur8, c, h, w, y0, x0, rh, rw))
                return crl_fail(CRL_ERR_NOMEM, func, "out of memory for '%s'", name);
            cur = dst;
            cur_is_a = !cur_is_a;
            cur8 = NULL;
        }
        h = nh;
        w = nw;
    }
    if (cur8) { /* no transforms used floats: convert now */
        if (ensure(s, 0, (size_t)(c * h * w))) return crl_fail(CRL_ERR_NOMEM, func, "out of memory for '%s'", name);
        cur = s->a;
        for (int64_t i = 0; i < c * h * w; i++) cur[i] = cur8[i] * (1.0f / 255.0f);
    }
    *result = cur;
    *oc = c;
    *oh = h;
    *ow = w;
    return CRL_OK;
}

int crl_transform_check(const crl_transform *t, int count, const char *func)
{
    if (count > 0 && t == NULL) return crl_fail(CRL_ERR_ARG, func, "argument 'transforms' is NULL");
    if (count > CRL_MAX_TRANSFORMS)
        return crl_fail(CRL_ERR_ARG, func, "%d transforms, at most %d (each draws from %d of a sample's %d "
                        "Philox blocks)", count, CRL_MAX_TRANSFORMS, CRL_TRANSFORM_BLOCKS, CRL_SAMPLE_BLOCKS);
    for (int j = 0; j < count; j++) {
        const crl_transform *tr = &t[j];
        switch (tr->kind) {
        case CRL_T_RANDOM_CROP:
            if (tr->pad < 0) return crl_fail(CRL_ERR_ARG, func, "transform %d: padding %d < 0", j, tr->pad);
            break;
        case CRL_T_CENTER_CROP:
        case CRL_T_RESIZE:
            if (tr->h < 1 || tr->w < 0)
                return crl_fail(CRL_ERR_ARG, func, "transform %d: size %dx%d is invalid", j, tr->h, tr->w);
            break;
        case CRL_T_RANDOM_RESIZED_CROP:
            if (tr->h < 1 || tr->w < 1 || !(tr->scale[0] > 0 && tr->scale[0] <= tr->scale[1] && tr->scale[1] <= 1) ||
                !(tr->ratio[0] > 0 && tr->ratio[0] <= tr->ratio[1]))
                return crl_fail(CRL_ERR_ARG, func, "transform %d: random resized crop needs a size, 0 < scale[0] <= "
                                "scale[1] <= 1 and 0 < ratio[0] <= ratio[1]", j);
            break;
        case CRL_T_HFLIP:
            if (!(tr->p >= 0 && tr->p <= 1)) return crl_fail(CRL_ERR_ARG, func, "transform %d: p = %g", j, tr->p);
            break;
        case CRL_T_COLOR_JITTER:
            if (tr->brightness < 0 || tr->contrast < 0 || tr->saturation < 0)
                return crl_fail(CRL_ERR_ARG, func, "transform %d: jitter strengths must be >= 0", j);
            break;
        case CRL_T_LIGHTING:
            if (tr->alphastd < 0) return crl_fail(CRL_ERR_ARG, func, "transform %d: alphastd < 0", j);
            break;
        case CRL_T_CUTOUT:
            if (tr->size < 1) return crl_fail(CRL_ERR_ARG, func, "transform %d: cutout size %d < 1", j, tr->size);
            break;
        case CRL_T_NORMALIZE:
            for (int k = 0; k < 4; k++)
                if (!(tr->std[k] > 0) && !(k > 0 && tr->std[k] == 0))
                    return crl_fail(CRL_ERR_ARG, func, "transform %d: std[%d] = %g must be > 0", j, k, tr->std[k]);
            break;
        default:
            return crl_fail(CRL_ERR_ARG, func, "transform %d has unknown kind %d", j, tr->kind);
        }
    }
    return CRL_OK;
}

int crl_transform_apply(crl_tensor *out, const crl_tensor *image, const crl_transform *t, int count,
                        uint64_t seed, uint64_t counter)
{
    CHECK_TENSOR(out, "out");
    CHECK_TENSOR(image, "image");
    int rc = crl_require_host(image, __func__, "image");
    if (rc) return rc;
    if (image->dtype != CRL_UINT8 || image->ndim != 3 || !crl_tensor_is_contiguous(image))
        return crl_fail(CRL_ERR_SHAPE, __func__, "image must be a contiguous uint8 (C, H, W), got %s %s",
                        crl_dtype_name(image->dtype), crl_shape(image));
    if ((rc = crl_transform_check(t, count, __func__))) return rc;
    crl_scratch s = {0};
    float *res;
    int64_t c, h, w;
    rc = crl_transform_run(&res, &c, &h, &w, crl_tensor_data(image), image->sizes[0], image->sizes[1],
                           image->sizes[2], t, count, seed, counter, &s, __func__, "image");
    if (rc == CRL_OK) {
        int64_t size[3] = {c, h, w};
        rc = crl_prepare(out, CRL_FLOAT32, CRL_CPU, 3, size);
        if (rc == CRL_OK) memcpy(crl_tensor_data(out), res, (size_t)(c * h * w) * sizeof(float));
    }
    crl_scratch_free(&s);
    return rc;
}
