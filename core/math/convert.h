/* math/convert.h -- storing a value into an element of another dtype, the
 * one rule for both devices: float to integer truncates toward zero like C
 * and PyTorch, but saturates instead of invoking undefined behaviour, and
 * NaN becomes 0. */
#ifndef CRLAB_MATH_CONVERT_H
#define CRLAB_MATH_CONVERT_H

#include <stdint.h>

#include "../crlab.h"
#include "hd.h"

CRL_HD int32_t crl_to_int32(double v)
{
    if (!(v == v)) return 0;
    if (v > 2147483647.0) return 2147483647;
    if (v < -2147483648.0) return (int32_t)(-2147483647 - 1);
    return (int32_t)v;
}

CRL_HD uint8_t crl_to_uint8(double v)
{
    if (!(v == v)) return 0;
    if (v > 255.0) return 255;
    if (v < 0.0) return 0;
    return (uint8_t)v;
}

CRL_HD double crl_load_elem(const void *base, int dtype, int64_t off)
{
    switch (dtype) {
    case CRL_FLOAT32: return ((const float *)base)[off];
    case CRL_INT32: return ((const int32_t *)base)[off];
    default: return ((const uint8_t *)base)[off];
    }
}

CRL_HD void crl_store_elem(void *base, int dtype, int64_t off, double v)
{
    switch (dtype) {
    case CRL_FLOAT32: ((float *)base)[off] = (float)v; break;
    case CRL_INT32: ((int32_t *)base)[off] = crl_to_int32(v); break;
    default: ((uint8_t *)base)[off] = crl_to_uint8(v); break;
    }
}

#endif
