/* test_random.c -- the Philox4x32-10 generator against the known-answer
 * vectors of Random123 (Salmon et al.), the counter semantics that make a
 * draw independent of how it is split, and the distributions' moments. */
#include <math.h>
#include <string.h>

#include "crlab.h"
#include "internal.h"
#include "tap.h"

static void test_known_answers(void)
{
    struct { uint32_t ctr[4], key[2], want[4]; } kat[3] = {
        {{0, 0, 0, 0}, {0, 0}, {0x6627e8d5, 0xe169c58d, 0xbc57ac4c, 0x9b00dbd8}},
        {{0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff}, {0xffffffff, 0xffffffff},
         {0x408f276d, 0x41c83b0e, 0xa20bc7c6, 0x6d5451fd}},
        {{0x243f6a88, 0x85a308d3, 0x13198a2e, 0x03707344}, {0xa4093822, 0x299f31d0},
         {0xd16cfe09, 0x94fdcceb, 0x5001e420, 0x24126ea1}},
    };
    for (int i = 0; i < 3; i++) {
        uint32_t out[4];
        crl_philox4x32(out, kat[i].ctr, kat[i].key);
        ok(!memcmp(out, kat[i].want, sizeof out), "Philox4x32-10 known answer %d: %08x %08x %08x %08x",
           i, out[0], out[1], out[2], out[3]);
    }
}

static crl_tensor *vec(int64_t n)
{
    return crl_tensor_new(CRL_FLOAT32, CRL_CPU, 1, &n);
}

static void test_counter_semantics(void)
{
    crl_generator g;
    crl_generator_seed(&g, 42);
    crl_tensor *a = vec(10), *b = vec(6), *whole = vec(18);
    crl_tensor_uniform(a, &g, 0, 1);
    ok(g.offset == 3, "a fill of 10 advances the counter by ceil(10/4) = 3 blocks");
    crl_tensor_uniform(b, &g, 0, 1);
    crl_generator_seed(&g, 42);
    crl_tensor_uniform(whole, &g, 0, 1);
    const float *pa = crl_tensor_data(a), *pb = crl_tensor_data(b), *pw = crl_tensor_data(whole);
    ok(!memcmp(pa, pw, 10 * sizeof(float)) && !memcmp(pb, pw + 12, 6 * sizeof(float)),
       "draws depend only on (seed, block): fills of 10 then 6 equal elements 0-9 and 12-17 of one fill");
    crl_generator h = {43, 0};
    crl_tensor_uniform(a, &h, 0, 1);
    ok(memcmp(pa, pw, 10 * sizeof(float)) != 0, "another seed gives other numbers");
    crl_tensor_free(a); crl_tensor_free(b); crl_tensor_free(whole);
}

static void test_moments(void)
{
    int64_t n = 200000;
    crl_tensor *t = vec(n);
    crl_generator g = {7, 0};
    crl_tensor_uniform(t, &g, -2, 3);
    double mn, mx, sum;
    crl_tensor_min_all(&mn, t);
    crl_tensor_max_all(&mx, t);
    crl_tensor_sum_all(&sum, t);
    ok(mn >= -2 && mx < 3 && fabs(sum / n - 0.5) < 0.02, "uniform(-2, 3): range [%.4f, %.4f], mean %.4f",
       mn, mx, sum / n);
    crl_tensor_normal(t, &g, 1, 2);
    const float *p = crl_tensor_data(t);
    double s1 = 0, s2 = 0;
    for (int64_t i = 0; i < n; i++) { s1 += p[i]; s2 += (double)p[i] * p[i]; }
    double mean = s1 / n, sd = sqrt(s2 / n - mean * mean);
    ok(fabs(mean - 1) < 0.02 && fabs(sd - 2) < 0.02, "normal(1, 2): mean %.4f, std %.4f", mean, sd);
    crl_tensor_free(t);

    int64_t m = 1000;
    crl_tensor *perm = crl_tensor_new(CRL_INT32, CRL_CPU, 1, &m);
    crl_tensor_randperm(perm, &g);
    int seen[1000] = {0}, good = 1, moved = 0;
    const int32_t *q = crl_tensor_data(perm);
    for (int i = 0; i < 1000; i++) {
        if (q[i] < 0 || q[i] >= 1000 || seen[q[i]]++) good = 0;
        moved += q[i] != i;
    }
    ok(good && moved > 900, "randperm(1000) is a permutation (%d elements moved)", moved);
    crl_tensor_free(perm);
    crl_tensor *one = vec(1);
    ok(crl_tensor_uniform(NULL, &g, 0, 1) != 0 && crl_tensor_normal(one, &g, 0, -1) != 0 &&
       crl_tensor_uniform(one, &g, 2, 1) != 0, "NULL tensor, negative std or lo > hi fail");
    crl_tensor_free(one);
}

int main(void)
{
    test_known_answers();
    test_counter_semantics();
    test_moments();
    return done_testing();
}
