/* test_bf16.c -- the float32 -> bfloat16 rounding of core/math/bf16.h (the
 * rule the CUDA backend's bf16 mixed precision converts its operands with)
 * against hand-worked bit patterns: exact values, ties to even, carries
 * into the exponent, overflow to infinity, signed zeros, subnormals, NaN. */
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "math/bf16.h"
#include "tap.h"

static float from_bits(uint32_t u)
{
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

static void bits_are(uint32_t in, uint16_t want, const char *what)
{
    uint16_t got = crl_bf16_from_float(from_bits(in));
    if (!ok(got == want, "%s: 0x%08x -> 0x%04x", what, (unsigned)in, (unsigned)want))
        diag("got 0x%04x", (unsigned)got);
}

int main(void)
{
    bits_are(0x3f800000u, 0x3f80, "1.0 is exact");
    bits_are(0xbf800000u, 0xbf80, "-1.0 is exact");
    bits_are(0x00000000u, 0x0000, "+0");
    bits_are(0x80000000u, 0x8000, "-0 keeps its sign");
    bits_are(0x40490fdbu, 0x4049, "pi rounds down (low half 0x0fdb)");
    /* 1 + 2^-8 is halfway between 1 and 1 + 2^-7: the tie goes to the even 1 */
    bits_are(0x3f808000u, 0x3f80, "1 + 2^-8 ties to even (down)");
    /* 1 + 3 * 2^-8 is halfway between 1 + 2^-7 (odd) and 1 + 2^-6 (even) */
    bits_are(0x3f818000u, 0x3f82, "1 + 3 * 2^-8 ties to even (up)");
    bits_are(0x3f808001u, 0x3f81, "just above a tie rounds up");
    bits_are(0x3f807fffu, 0x3f80, "just below a tie rounds down");
    bits_are(0xbf808001u, 0xbf81, "negative: rounds away from zero past the tie");
    bits_are(0x3fffffffu, 0x4000, "a mantissa carry bumps the exponent (2 - tiny -> 2)");
    bits_are(0x7f7fffffu, 0x7f80, "FLT_MAX overflows to +inf");
    bits_are(0xff7fffffu, 0xff80, "-FLT_MAX overflows to -inf");
    bits_are(0x7f7f7fffu, 0x7f7f, "the largest bf16 stays finite");
    bits_are(0x7f800000u, 0x7f80, "+inf stays");
    bits_are(0xff800000u, 0xff80, "-inf stays");
    bits_are(0x00000001u, 0x0000, "the smallest subnormal rounds to 0");
    bits_are(0x00018000u, 0x0002, "a subnormal tie goes to even");
    bits_are(0x7fc00000u, 0x7fc0, "quiet NaN stays");
    bits_are(0xffc00000u, 0xffc0, "negative NaN keeps its sign");
    /* a signalling NaN whose payload sits in the low 16 bits only: plain
     * truncation would give 0x7f80 (inf); it must stay a NaN */
    bits_are(0x7f800001u, 0x7fc0, "a low-payload NaN stays NaN (quieted)");
    {
        uint16_t b = crl_bf16_from_float(NAN);
        ok(isnan(crl_bf16_to_float(b)), "NAN round-trips to a NaN");
    }
    ok(crl_bf16_to_float(0x3f80) == 1.0f, "bf16 0x3f80 is 1.0");
    ok(crl_bf16_to_float(0xc040) == -3.0f, "bf16 0xc040 is -3.0");
    ok(crl_bf16_to_float(0x0001) == from_bits(0x00010000u), "bf16 -> float is the bits shifted up");
    /* the rounding error stays within half a unit in the last place: with 7
     * stored mantissa bits, 2^-8 relative (the unit roundoff of bf16) */
    {
        int good = 1;
        for (int i = 0; i < 80000 && good; i++) {
            float x = from_bits(0x3f800000u + (uint32_t)i * 97u) * (i % 2 ? -1.0f : 1.0f);
            float y = crl_bf16_to_float(crl_bf16_from_float(x));
            if (fabsf(y - x) > fabsf(x) * (1.0f / 256.0f)) good = 0;
        }
        ok(good, "|round(x) - x| <= 2^-8 |x| over a sweep of [1, 2)");
    }
    return done_testing();
}
