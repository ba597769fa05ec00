/* math/elementwise.h -- the arithmetic of one element of the elementwise
 * operations (crl_tensor_binary, _binary_scalar, _unary, _clamp) and the
 * float -> integer conversion of stored values: one definition, called by
 * the CPU kernels (cpu/elementwise.c, internal.h's crl_write_elem) and by
 * the CUDA kernels (cuda/elementwise.cu), so the CPU tests cover the
 * arithmetic the GPU runs. The op codes are CRL_OP_* and CRL_UN_* of
 * crlab_api.h; the kernels check the range before calling these. */
#ifndef CRLAB_MATH_ELEMENTWISE_H
#define CRLAB_MATH_ELEMENTWISE_H

#include <math.h>
#include <stdint.h>

#include "../crlab.h"
#include "convert.h"
#include "hd.h"

/* x op y for the arithmetic ops and comparisons on float32 (comparisons
 * give 1 or 0). MAX and MIN let NaN through, as PyTorch's maximum/minimum. */
CRL_HD float crl_binary_op(int op, float x, float y)
{
    switch (op) {
    case CRL_OP_ADD: return x + y;
    case CRL_OP_SUB: return x - y;
    case CRL_OP_MUL: return x * y;
    case CRL_OP_DIV: return x / y;
    case CRL_OP_MAX: return x > y || x != x ? x : y;
    case CRL_OP_MIN: return x < y || x != x ? x : y;
    case CRL_OP_POW: return powf(x, y);
    case CRL_OP_EQ: return x == y;
    case CRL_OP_NE: return x != y;
    case CRL_OP_LT: return x < y;
    case CRL_OP_LE: return x <= y;
    case CRL_OP_GT: return x > y;
    default: return x >= y;
    }
}

/* The comparisons (CRL_OP_EQ .. CRL_OP_GE) of two int32 or uint8 values,
 * read as doubles (exact for both). */
CRL_HD float crl_compare_op(int op, double x, double y)
{
    switch (op) {
    case CRL_OP_EQ: return x == y;
    case CRL_OP_NE: return x != y;
    case CRL_OP_LT: return x < y;
    case CRL_OP_LE: return x <= y;
    case CRL_OP_GT: return x > y;
    default: return x >= y;
    }
}

/* The unary maths; the sigmoid takes the branch whose exp cannot
 * overflow. */
CRL_HD float crl_unary_op(int op, float x)
{
    switch (op) {
    case CRL_UN_NEG: return -x;
    case CRL_UN_ABS: return fabsf(x);
    case CRL_UN_EXP: return expf(x);
    case CRL_UN_LOG: return logf(x);
    case CRL_UN_SQRT: return sqrtf(x);
    case CRL_UN_TANH: return tanhf(x);
    case CRL_UN_SIGMOID: return x >= 0 ? 1.0f / (1.0f + expf(-x)) : expf(x) / (1.0f + expf(x));
    case CRL_UN_RELU: return x > 0 ? x : 0.0f;
    case CRL_UN_SQUARE: return x * x;
    case CRL_UN_FLOOR: return floorf(x);
    case CRL_UN_CEIL: return ceilf(x);
    default: return (float)((x > 0) - (x < 0));
    }
}

/* x limited to [lo, hi]; NaN stays NaN. */
CRL_HD float crl_clamp_op(float x, float lo, float hi) { return x < lo ? lo : x > hi ? hi : x; }

#endif
