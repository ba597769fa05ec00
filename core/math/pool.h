/* math/pool.h -- the index rules of the pooling layers, ReLU and the
 * padding shortcut, stated once for the CPU kernels (cpu/nn.c) and the CUDA
 * kernels (cuda/layers.cu). A plane is one (H, W) image of an (N, C, H, W)
 * tensor, its elements `step` apart (1 when plain; the block size when
 * blocked, on the CPU); a position within it is iy * W + jx, which is also
 * what max pooling's indices hold. */
#ifndef CRLAB_MATH_POOL_H
#define CRLAB_MATH_POOL_H

#include <math.h>
#include <stdint.h>

#include "../crlab.h"
#include "hd.h"

/* ReLU and its derivative taken at the output: NaN maps to 0 (x > 0 is
 * false), and the kink at 0 passes no gradient. */
CRL_HD float crl_relu(float x) { return x > 0.0f ? x : 0.0f; }
CRL_HD float crl_relu_grad(float g, float y) { return y > 0.0f ? g : 0.0f; }

/* Output size of one pooled dimension; in + 2 pad >= k is checked before. */
CRL_HD int64_t crl_pool_out_size(int64_t in, int64_t k, int64_t stride, int64_t pad)
{
    return (in + 2 * pad - k) / stride + 1;
}

/* The window of output position o along one dimension, clipped to the
 * input [0, in): positions lo .. hi - 1. Padding is never read. */
CRL_HD void crl_pool_window(int64_t *lo, int64_t *hi, int64_t o, int64_t k, int64_t stride, int64_t pad,
                            int64_t in)
{
    int64_t a = o * stride - pad, b = a + k;
    *lo = a < 0 ? 0 : a;
    *hi = b > in ? in : b;
}

/* The output positions lo .. hi - 1 whose windows hold input position i
 * (the inverse of crl_pool_window, for backward passes that gather):
 * o covers i when o * stride - pad <= i < o * stride - pad + k. */
CRL_HD void crl_pool_covering(int64_t *lo, int64_t *hi, int64_t i, int64_t k, int64_t stride, int64_t pad,
                              int64_t out)
{
    int64_t first = i + pad - k + 1; /* the smallest o * stride that reaches i */
    int64_t a = first <= 0 ? 0 : (first + stride - 1) / stride;
    int64_t b = (i + pad) / stride + 1;
    *lo = a;
    *hi = b > out ? out : b;
}

/* Max pooling at output (oy, ox) of a plane of h x w: the largest value of
 * the window and its position iy * w + jx. Ties keep the first in row-major
 * order; a NaN wins (the last one), so NaN propagates as in PyTorch. An
 * empty window gives -inf at position -1 (not reachable with pad <= k / 2). */
CRL_HD float crl_maxpool_window(int32_t *arg, const float *plane, int64_t step, int64_t h, int64_t w,
                                int64_t oy, int64_t ox, const crl_pool2d_params *p)
{
    int64_t y0, y1, x0, x1;
    crl_pool_window(&y0, &y1, oy, p->kernel_h, p->stride_h, p->pad_h, h);
    crl_pool_window(&x0, &x1, ox, p->kernel_w, p->stride_w, p->pad_w, w);
    float best = -INFINITY;
    int32_t at = -1;
    for (int64_t iy = y0; iy < y1; iy++)
        for (int64_t jx = x0; jx < x1; jx++) {
            float v = plane[(iy * w + jx) * step];
            if (v > best || at < 0 || v != v) {
                best = v;
                at = (int32_t)(iy * w + jx);
            }
        }
    *arg = at;
    return best;
}

/* Average pooling's divisor at output (oy, ox): the full window with
 * count_include_pad, else the part of it inside the input. */
CRL_HD float crl_avgpool_divisor(int64_t oy, int64_t ox, int64_t h, int64_t w, const crl_pool2d_params *p)
{
    if (p->count_include_pad) return (float)(p->kernel_h * p->kernel_w);
    int64_t y0, y1, x0, x1;
    crl_pool_window(&y0, &y1, oy, p->kernel_h, p->stride_h, p->pad_h, h);
    crl_pool_window(&x0, &x1, ox, p->kernel_w, p->stride_w, p->pad_w, w);
    return (float)((y1 - y0) * (x1 - x0));
}

/* Average pooling at output (oy, ox): the window's sum in double, divided. */
CRL_HD float crl_avgpool_window(const float *plane, int64_t step, int64_t h, int64_t w, int64_t oy, int64_t ox,
                                const crl_pool2d_params *p)
{
    int64_t y0, y1, x0, x1;
    crl_pool_window(&y0, &y1, oy, p->kernel_h, p->stride_h, p->pad_h, h);
    crl_pool_window(&x0, &x1, ox, p->kernel_w, p->stride_w, p->pad_w, w);
    double acc = 0;
    for (int64_t iy = y0; iy < y1; iy++)
        for (int64_t jx = x0; jx < x1; jx++) acc += plane[(iy * w + jx) * step];
    return (float)(acc / crl_avgpool_divisor(oy, ox, h, w, p));
}

/* Average pooling's gradient at input (iy, jx) of a plane, gathered from
 * the outputs whose windows hold it (grad, oh x ow, elements gstep apart):
 * added in row-major output order from 0, so it equals the sum a scatter
 * over the outputs in that order builds, bit for bit. */
CRL_HD float crl_avgpool_grad_at(const float *grad, int64_t gstep, int64_t oh, int64_t ow, int64_t h, int64_t w,
                                 int64_t iy, int64_t jx, const crl_pool2d_params *p)
{
    int64_t y0, y1, x0, x1;
    crl_pool_covering(&y0, &y1, iy, p->kernel_h, p->stride_h, p->pad_h, oh);
    crl_pool_covering(&x0, &x1, jx, p->kernel_w, p->stride_w, p->pad_w, ow);
    float acc = 0.0f;
    for (int64_t oy = y0; oy < y1; oy++)
        for (int64_t ox = x0; ox < x1; ox++)
            acc += grad[(oy * ow + ox) * gstep] / crl_avgpool_divisor(oy, ox, h, w, p);
    return acc;
}

/* Global average pooling: the mean of one plane of hw elements, summed in
 * float in order (0 for an empty plane). */
CRL_HD float crl_plane_mean(const float *plane, int64_t step, int64_t hw)
{
    float acc = 0;
    for (int64_t q = 0; q < hw; q++) acc += plane[q * step];
    return hw ? acc / (float)hw : 0.0f;
}

/* The padding shortcut (ResNet option A): output size of a dimension
 * subsampled by stride (positions 0, stride, 2 stride, ...), and the
 * first output channel of input channel 0 (half the padding goes before). */
CRL_HD int64_t crl_shortcut_out_size(int64_t in, int64_t stride) { return (in - 1) / stride + 1; }
CRL_HD int64_t crl_shortcut_channel_offset(int64_t out_channels, int64_t in_channels)
{
    return (out_channels - in_channels) / 2;
}

#endif
