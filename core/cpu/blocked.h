/* cpu/blocked.h -- kernels on blocked (nChw16c / nChw8c) tensors, called by
 * the public layer functions once they have checked their arguments. */
#ifndef CRLAB_CPU_BLOCKED_H
#define CRLAB_CPU_BLOCKED_H

#include "../crlab.h"

typedef struct {
    int64_t n, c, hw, b, cb; /* images, channels, H*W, block, channel blocks */
} blk_shape;

void blk_shape_of(blk_shape *s, const crl_tensor *t);

/* Batch norm's per-channel rules, stated once for both layouts: from the
 * batch mean and biased variance over count values (training) or the
 * running statistics (evaluation), update the running averages (momentum;
 * unbiased variance, as PyTorch), save mean and 1/std for backward, and
 * give channel c's affine map y = x * (*scale) + (*shift). Vectors may be
 * NULL. */
void crl_bn_channel(float *scale, float *shift, float *rm, float *rv, float *sm, float *si, int64_t c, int training,
                    double mean, double var, double count, float momentum, float eps, const float *w,
                    const float *b);

/* y, x: blocked (N, C, H, W); vectors (C) as in crl_batchnorm_forward. */
int blk_batchnorm_forward(float *y, float *sm, float *si, float *rm, float *rv, const float *x, const float *w,
                          const float *bias, int training, float momentum, float eps, int relu, const blk_shape *s);
int blk_batchnorm_backward(float *gx, float *gw, float *gb, const float *gy, const float *x, const float *w,
                           const float *sm, const float *si, int training, const float *ro, const blk_shape *s);

#endif
