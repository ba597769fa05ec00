/* math/bf16.h -- bfloat16 (the upper 16 bits of an IEEE float32: sign,
 * 8 exponent bits, 7 mantissa bits) as raw uint16_t bits, the one
 * conversion rule of both devices: the CUDA backend's bf16 mixed precision
 * (CRL_CUDA_BF16) rounds its operand copies with it, and the CPU tests check
 * it (tests/c/test_bf16.c).
 *
 * float -> bf16 rounds to nearest, ties to even (what __float2bfloat16_rn
 * does): finite values too large for bf16 become +-inf, infinities stay,
 * and a NaN stays a NaN of the same sign (made quiet, so that dropping its
 * low payload bits cannot turn it into an infinity). bf16 -> float is exact. */
#ifndef CRLAB_MATH_BF16_H
#define CRLAB_MATH_BF16_H

#include <stdint.h>
#include <string.h>

#include "hd.h"

CRL_HD uint16_t crl_bf16_from_float(float f)
{
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    if ((u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((u >> 16) | 0x0040u); /* NaN: quiet, sign kept */
    /* add just under half a unit of the kept last place, plus one when that
     * last place is odd: a tie then carries only from an odd value (to
     * even); a carry out of the mantissa bumps the exponent, up to inf */
    u += 0x7fffu + ((u >> 16) & 1u);
    return (uint16_t)(u >> 16);
}

CRL_HD float crl_bf16_to_float(uint16_t b)
{
    uint32_t u = (uint32_t)b << 16;
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

#endif
