/* math/philox.h -- Philox4x32-10 (Salmon et al. 2011), the counter-based
 * generator of core/random.c and of the GPU's dropout: one block of four
 * 32-bit words from a 128-bit counter and a 64-bit key. Stated once so
 * that the same (seed, counter) gives the same words on both devices. */
#ifndef CRLAB_MATH_PHILOX_H
#define CRLAB_MATH_PHILOX_H

#include <stdint.h>

#include "hd.h"

CRL_HD void crl_philox4x32_block(uint32_t out[4], const uint32_t ctr[4], const uint32_t key[2])
{
    uint32_t c0 = ctr[0], c1 = ctr[1], c2 = ctr[2], c3 = ctr[3];
    uint32_t k0 = key[0], k1 = key[1];
    for (int round = 0; round < 10; round++) {
        uint64_t p0 = (uint64_t)0xD2511F53u * c0;
        uint64_t p1 = (uint64_t)0xCD9E8D57u * c2;
        uint32_t n0 = (uint32_t)(p1 >> 32) ^ c1 ^ k0;
        uint32_t n1 = (uint32_t)p1;
        uint32_t n2 = (uint32_t)(p0 >> 32) ^ c3 ^ k1;
        uint32_t n3 = (uint32_t)p0;
        c0 = n0; c1 = n1; c2 = n2; c3 = n3;
        k0 += 0x9E3779B9u;
        k1 += 0xBB67AE85u;
    }
    out[0] = c0; out[1] = c1; out[2] = c2; out[3] = c3;
}

/* The library's use: key = the generator's seed, counter = (block, 0). */
CRL_HD void crl_philox_block(uint32_t out[4], uint64_t key, uint64_t counter)
{
    uint32_t c[4] = {(uint32_t)counter, (uint32_t)(counter >> 32), 0, 0};
    uint32_t k[2] = {(uint32_t)key, (uint32_t)(key >> 32)};
    crl_philox4x32_block(out, c, k);
}

/* Dropout's use of the stream: element i takes word i % 4 of the block at
 * counter offset + i / 4 and is kept when the word is at or above the
 * threshold (P(drop) = p to 2^-32); kept elements are scaled by
 * 1 / (1 - p) in float, dropped ones are 0. */
CRL_HD uint32_t crl_dropout_threshold(float p) { return (uint32_t)((double)p * 4294967296.0); }
CRL_HD float crl_dropout_mask(uint32_t word, uint32_t threshold, float keep_scale)
{
    return word >= threshold ? keep_scale : 0.0f;
}

#endif
