/* random.c -- the seeded counter-based generator (Philox4x32-10, Salmon et
 * al. 2011) and the random fills built on it. Element i of a fill takes
 * word i % 4 of the Philox block at counter offset + i / 4, so the numbers
 * depend only on (seed, offset, i): the same on any device and with any
 * number of threads, and the whole state is two integers. The block
 * function itself is math/philox.h, shared with the CUDA kernels. */
#include <math.h>

#include "internal.h"
#include "math/philox.h"

static crl_generator default_generator = {0, 0};

crl_generator *crl_generator_default(void) { return &default_generator; }

void crl_generator_seed(crl_generator *g, uint64_t seed)
{
    if (g == NULL) return;
    g->seed = seed;
    g->offset = 0;
}

void crl_philox4x32(uint32_t out[4], const uint32_t ctr[4], const uint32_t key[2])
{
    crl_philox4x32_block(out, ctr, key);
}

void crl_philox(uint32_t out[4], uint64_t key, uint64_t counter) { crl_philox_block(out, key, counter); }

/* A uniform float in (0, 1]: 24 random bits, never 0 so log() is safe. */
static inline double unit(uint32_t w) { return ((w >> 8) + 1) * (1.0 / 16777216.0); }

static int fill_random(crl_tensor *t, crl_generator *g, double a, double b, int normal,
                       const char *func)
{
    CHECK_TENSOR(t, "t");
    if (g == NULL) g = &default_generator;
    int rc = crl_require_dtype(t, CRL_FLOAT32, func, "t");
    if (rc) return rc;
    int64_t n = crl_tensor_numel(t);
    if (t->device != CRL_CPU) {
        crl_tensor *h = crl_tensor_new(CRL_FLOAT32, CRL_CPU, t->ndim, t->sizes);
        if (h == NULL) return CRL_ERR_NOMEM;
        rc = fill_random(h, g, a, b, normal, func);
        if (rc == CRL_OK) rc = crl_tensor_copy(t, h);
        crl_tensor_free(h);
        return rc;
    }
    float *base = t->storage ? t->storage->data : NULL;
    int contiguous = crl_tensor_is_contiguous(t);
    float *p = crl_tensor_data(t);
    for (int64_t blk = 0; blk * 4 < n; blk++) {
        uint32_t w[4];
        crl_philox(w, g->seed, g->offset + (uint64_t)blk);
        double v[4];
        if (normal) { /* Box-Muller on pairs (w0, w1) and (w2, w3) */
            for (int j = 0; j < 4; j += 2) {
                double r = sqrt(-2.0 * log(unit(w[j])));
                double th = 6.283185307179586 * unit(w[j + 1]);
                v[j] = a + b * r * cos(th);
                v[j + 1] = a + b * r * sin(th);
            }
        } else {
            for (int j = 0; j < 4; j++) v[j] = a + (b - a) * (1.0 - unit(w[j]));
        }
        for (int j = 0; j < 4 && blk * 4 + j < n; j++) {
            int64_t i = blk * 4 + j;
            if (contiguous) p[i] = (float)v[j];
            else base[crl_linear_to_offset(t, i)] = (float)v[j];
        }
    }
    g->offset += (uint64_t)((n + 3) / 4);
    return CRL_OK;
}

int crl_tensor_uniform(crl_tensor *t, crl_generator *g, double lo, double hi)
{
    if (!(lo <= hi))
        return crl_fail(CRL_ERR_ARG, __func__, "lo %g must not exceed hi %g", lo, hi);
    return fill_random(t, g, lo, hi, 0, __func__);
}

int crl_tensor_normal(crl_tensor *t, crl_generator *g, double mean, double std)
{
    if (!(std >= 0))
        return crl_fail(CRL_ERR_ARG, __func__, "std %g must be >= 0", std);
    return fill_random(t, g, mean, std, 1, __func__);
}

/* Fisher-Yates driven by Philox words; one block per swap keeps the draw
 * of step i independent of how earlier steps were computed. */
int crl_tensor_randperm(crl_tensor *t, crl_generator *g)
{
    CHECK_TENSOR(t, "t");
    if (g == NULL) g = &default_generator;
    int rc = crl_require_dtype(t, CRL_INT32, __func__, "t");
    if (rc) return rc;
    if (t->device != CRL_CPU) return crl_no_kernel(__func__, t->device);
    if ((rc = crl_require_plain(t, __func__, "t"))) return rc;
    int64_t n = crl_tensor_numel(t);
    if (n > 0x7fffffff)
        return crl_fail(CRL_ERR_ARG, __func__, "%lld elements exceed the int32 range", (long long)n);
    int32_t *base = t->storage ? t->storage->data : NULL;
    for (int64_t i = 0; i < n; i++) base[crl_linear_to_offset(t, i)] = (int32_t)i;
    for (int64_t i = n - 1; i > 0; i--) {
        uint32_t w[4];
        crl_philox(w, g->seed, g->offset + (uint64_t)(n - 1 - i));
        uint64_t r = ((uint64_t)w[0] << 32) | w[1];
        int64_t j = (int64_t)(r % (uint64_t)(i + 1));
        int64_t oi = crl_linear_to_offset(t, i), oj = crl_linear_to_offset(t, j);
        int32_t tmp = base[oi];
        base[oi] = base[oj];
        base[oj] = tmp;
    }
    g->offset += (uint64_t)(n > 1 ? n - 1 : 0);
    return CRL_OK;
}
