/* math/reduce.h -- the rules of the reductions (cpu/reduce.c and
 * cuda/reduce.cu): how one more element, or one more partial result,
 * enters a running maximum, minimum or arg-extreme, and the pieces of a
 * stable softmax. Each combine below is associative, so a GPU tree
 * reduction gives what the CPU's left-to-right loop gives. */
#ifndef CRLAB_MATH_REDUCE_H
#define CRLAB_MATH_REDUCE_H

#include <math.h>
#include <stdint.h>

#include "hd.h"

/* The maximum (want_max) or minimum of all elements, running: NaN wins and
 * stays. acc and x may be partial results as well as elements. */
CRL_HD double crl_extreme_step(int want_max, double acc, double x)
{
    return ((want_max ? x > acc : x < acc) || x != x) ? x : acc;
}

/* Whether candidate (x, j) replaces the running (best, i) of max(dim) or
 * min(dim): NaN wins (the first NaN), a strictly better value wins, ties
 * keep the lower index, as PyTorch. Left to right (j > i) this is the
 * plain loop; between partial results of a tree it gives the same pair. */
CRL_HD int crl_extreme_takes(int want_max, float best, int64_t i, float x, int64_t j)
{
    if (best != best) return x != x && j < i;
    if (x != x) return 1;
    if (want_max ? x > best : x < best) return 1;
    return x == best && j < i;
}

/* Softmax along a row: m is the row's maximum (NaN ignored: start from
 * -inf and keep x > m), shifted by crl_softmax_shift; z = sum exp(x - m')
 * in double; then each output from x - m' and log z, kept apart (m' + log z
 * would round log z away for logits of 1e16). */
CRL_HD float crl_softmax_max(float m, float x) { return x > m ? x : m; }

/* All -inf: the shift is 0, so exp gives 0/0 = NaN, as PyTorch. */
CRL_HD double crl_softmax_shift(float m) { return m == -INFINITY ? 0.0 : (double)m; }

CRL_HD float crl_softmax_out(float x, double shift, double logz, int want_log)
{
    double lp = ((double)x - shift) - logz;
    return (float)(want_log ? lp : exp(lp));
}

#endif
