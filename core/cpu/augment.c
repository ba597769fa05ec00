/* cpu/augment.c -- assembles a training batch in one pass: gather the
 * indexed uint8 images, random crop with zero or reflect padding, random
 * horizontal flip, scale to [0, 1] and normalise per channel. Each batch
 * element draws from its own Philox block, so the result does not depend
 * on the number of threads. */
#include "../internal.h"

static inline int64_t reflect(int64_t i, int64_t n)
{
    if (n == 1) return 0;
    while (i < 0 || i >= n) i = i < 0 ? -i : 2 * (n - 1) - i;
    return i;
}

int crl_batch_assemble(crl_tensor *out, crl_tensor *labels_out, const crl_tensor *images,
                       const crl_tensor *labels, const crl_tensor *indices,
                       const crl_augment_params *p, crl_generator *g)
{
    CHECK_TENSOR(out, "out");
    CHECK_TENSOR(images, "images");
    CHECK_TENSOR(indices, "indices");
    if (p == NULL) return crl_fail(CRL_ERR_ARG, __func__, "argument 'p' is NULL");
    if (g == NULL) g = crl_generator_default();
    int rc = crl_require_cpu(images, __func__, "images");
    if (rc == CRL_OK) rc = crl_require_cpu(indices, __func__, "indices");
    if (rc) return rc;
    if (images->dtype != CRL_UINT8 || (images->ndim != 3 && images->ndim != 4) ||
        !crl_tensor_is_contiguous(images))
        return crl_fail(CRL_ERR_SHAPE, __func__, "images must be contiguous uint8 (N, C, H, W) or (N, H, W), "
                        "got %s %s", crl_dtype_name(images->dtype), crl_shape(images));
    if (indices->dtype != CRL_INT32 || indices->ndim != 1 || !crl_tensor_is_contiguous(indices))
        return crl_fail(CRL_ERR_SHAPE, __func__, "indices must be a contiguous int32 vector, got %s",
                        crl_shape(indices));
    int64_t n = images->sizes[0], c = images->ndim == 4 ? images->sizes[1] : 1;
    int64_t h = images->sizes[images->ndim - 2], w = images->sizes[images->ndim - 1];
    int64_t b = indices->sizes[0];
    if (c > 4) return crl_fail(CRL_ERR_SHAPE, __func__, "images %s have %lld channels; at most 4", crl_shape(images), (long long)c);
    if (p->pad < 0 || p->pad > h || p->pad > w)
        return crl_fail(CRL_ERR_ARG, __func__, "crop padding %d must be in [0, %lld]", p->pad,
                        (long long)(h < w ? h : w));
    for (int64_t k = 0; k < c; k++)
        if (!(p->std[k] > 0)) return crl_fail(CRL_ERR_ARG, __func__, "std[%lld] = %g must be > 0", (long long)k, p->std[k]);
    const int32_t *ix = crl_tensor_data(indices);
    for (int64_t k = 0; k < b; k++)
        if (ix[k] < 0 || ix[k] >= n)
            return crl_fail(CRL_ERR_ARG, __func__, "index %d at batch position %lld is outside [0, %lld)", ix[k],
                            (long long)k, (long long)n);
    if (labels_out) {
        CHECK_TENSOR(labels, "labels");
        if ((labels->dtype != CRL_UINT8 && labels->dtype != CRL_INT32) || labels->ndim != 1 ||
            labels->sizes[0] != n || !crl_tensor_is_contiguous(labels))
            return crl_fail(CRL_ERR_SHAPE, __func__, "labels %s must be a contiguous uint8 or int32 vector of %lld",
                            crl_shape(labels), (long long)n);
        if ((rc = crl_prepare(labels_out, CRL_INT32, CRL_CPU, 1, &b))) return rc;
    }
    int64_t osz[4] = {b, c, h, w};
    if ((rc = crl_prepare(out, CRL_FLOAT32, CRL_CPU, 4, osz))) return rc;
    const uint8_t *x = crl_tensor_data(images);
    float *y = crl_tensor_data(out);
    float scale[4], shift[4];
    for (int64_t k = 0; k < c; k++) {
        scale[k] = 1.0f / (255.0f * p->std[k]);
        shift[k] = -p->mean[k] / p->std[k];
    }
    uint64_t seed = g->seed, base = g->offset;
    int64_t span = 2 * (int64_t)p->pad + 1;
#pragma omp parallel for schedule(static)
    for (int64_t k = 0; k < b; k++) {
        uint32_t r[4];
        crl_philox(r, seed, base + (uint64_t)k);
        int64_t dy = p->pad ? (int64_t)(r[0] % span) - p->pad : 0;
        int64_t dx = p->pad ? (int64_t)(r[1] % span) - p->pad : 0;
        int flip = p->hflip ? (int)(r[2] & 1) : 0;
        const uint8_t *src = x + (int64_t)ix[k] * c * h * w;
        for (int64_t ch = 0; ch < c; ch++) {
            float *dst = y + (k * c + ch) * h * w;
            const uint8_t *plane = src + ch * h * w;
            for (int64_t yy = 0; yy < h; yy++) {
                int64_t sy = yy + dy;
                int inside_y = sy >= 0 && sy < h;
                if (!inside_y && p->reflect) sy = reflect(sy, h);
                for (int64_t xx = 0; xx < w; xx++) {
                    int64_t sx = (flip ? w - 1 - xx : xx) + dx;
                    float v;
                    if (inside_y && sx >= 0 && sx < w) {
                        v = plane[sy * w + sx];
                    } else if (p->reflect) {
                        v = plane[sy * w + reflect(sx, w)];
                    } else {
                        v = 0.0f;
                    }
                    dst[yy * w + xx] = v * scale[ch] + shift[ch];
                }
            }
        }
    }
    if (labels_out) {
        int32_t *lo = crl_tensor_data(labels_out);
        for (int64_t k = 0; k < b; k++)
            lo[k] = labels->dtype == CRL_UINT8 ? ((const uint8_t *)crl_tensor_data(labels))[ix[k]]
                                               : ((const int32_t *)crl_tensor_data(labels))[ix[k]];
    }
    if (p->pad || p->hflip) g->offset += (uint64_t)b; /* no draws, no advance */
    return CRL_OK;
}
