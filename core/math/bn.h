/* math/bn.h -- batch normalisation's per-value rules, shared by the CPU
 * kernels (cpu/nn.c, cpu/blocked.c) and the CUDA ones (cuda/batchnorm.cu,
 * which leaves the batch statistics themselves to cuDNN). */
#ifndef CRLAB_MATH_BN_H
#define CRLAB_MATH_BN_H

#include <math.h>

#include "hd.h"
#include "pool.h" /* crl_relu, crl_relu_grad: the fused ReLU */

/* 1 / std from a (biased) variance: what save_invstd holds. */
CRL_HD double crl_bn_invstd(double var, double eps) { return 1.0 / sqrt(var + eps); }

/* A running average after one batch: momentum is the weight of the new
 * value (PyTorch's convention, cuDNN's exponentialAverageFactor). */
CRL_HD double crl_bn_running(double old, double momentum, double value) { return (1 - momentum) * old + momentum * value; }

/* The unbiased variance of count values from their biased one. */
CRL_HD double crl_bn_unbiased(double var, double count) { return var * count / (count - 1); }

#endif
