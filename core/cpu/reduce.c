/* cpu/reduce.c -- reductions over all elements and along one dimension.
 * Along a dimension the input is viewed as (outer, n, inner) after making it
 * contiguous; accumulation is in double so sums of many float32 values stay
 * accurate. */
#include <math.h>
#include <stdlib.h>

#include "../internal.h"
#include "../math/reduce.h"
#include "cpu.h"

static int all_elements(double *value, const crl_tensor *t, int what, const char *func)
{
    CHECK_TENSOR(t, "t");
    if (value == NULL) return crl_fail(CRL_ERR_ARG, func, "argument 'value' is NULL");
    int64_t n = crl_tensor_numel(t);
    if (n == 0 && what != 0)
        return crl_fail(CRL_ERR_SHAPE, func, "the tensor %s is empty", crl_shape(t));
    int rc = crl_require_cpu(t, func, "t");
    if (rc) return rc;
    const void *base = t->storage ? t->storage->data : NULL;
    double acc = what == 0 ? 0.0 : crl_read_elem(base, t->dtype, crl_linear_to_offset(t, 0));
    if (t->dtype == CRL_FLOAT32 && crl_tensor_is_contiguous(t)) {
        const float *p = crl_tensor_data(t);
        for (int64_t i = 0; i < n; i++) {
            double x = p[i];
            acc = what == 0 ? acc + x : crl_extreme_step(what == 1, acc, x);
        }
    } else {
        for (int64_t i = 0; i < n; i++) {
            double x = crl_read_elem(base, t->dtype, crl_linear_to_offset(t, i));
            acc = what == 0 ? acc + x : crl_extreme_step(what == 1, acc, x);
        }
    }
    *value = acc;
    return CRL_OK;
}

int crl_cpu_tensor_sum_all(double *value, const crl_tensor *t) { return all_elements(value, t, 0, __func__); }
int crl_cpu_tensor_max_all(double *value, const crl_tensor *t) { return all_elements(value, t, 1, __func__); }
int crl_cpu_tensor_min_all(double *value, const crl_tensor *t) { return all_elements(value, t, 2, __func__); }

/* The (outer, n, inner) split of a contiguous src along dim, the output
 * shape, and a contiguous float32 view of src (a copy when needed). */
typedef struct {
    int64_t outer, n, inner;
    int out_ndim;
    int64_t out_size[CRL_MAX_DIM];
    const float *x;
    crl_tensor *tmp;
} dim_split;

static int split_dim(dim_split *s, const crl_tensor *src, int dim, int keepdim, const char *func)
{
    CHECK_TENSOR(src, "src");
    int rc = crl_require_cpu(src, func, "src");
    if (rc == CRL_OK) rc = crl_require_dtype(src, CRL_FLOAT32, func, "src");
    if (rc == CRL_OK) rc = crl_normalize_dim(&dim, src->ndim, func, "dim");
    if (rc) return rc;
    crl_reduce_shape(&s->outer, &s->n, &s->inner, &s->out_ndim, s->out_size, src, dim, keepdim);
    s->tmp = NULL;
    if (crl_tensor_is_contiguous(src)) {
        s->x = crl_tensor_data(src);
        return CRL_OK;
    }
    s->tmp = crl_tensor_new(CRL_FLOAT32, CRL_CPU, src->ndim, src->sizes);
    if (s->tmp == NULL) return CRL_ERR_NOMEM;
    rc = crl_tensor_copy(s->tmp, src);
    if (rc) {
        crl_tensor_free(s->tmp);
        return rc;
    }
    s->x = crl_tensor_data(s->tmp);
    return CRL_OK;
}

static int sum_or_mean(crl_tensor *out, const crl_tensor *src, int dim, int keepdim, int mean,
                       const char *func)
{
    CHECK_TENSOR(out, "out");
    if (out == src) return crl_fail(CRL_ERR_ARG, func, "out and src must be different tensors");
    dim_split s;
    int rc = split_dim(&s, src, dim, keepdim, func);
    if (rc) return rc;
    rc = crl_prepare(out, CRL_FLOAT32, CRL_CPU, s.out_ndim, s.out_size);
    if (rc == CRL_OK) {
        float *y = crl_tensor_data(out);
        double scale = mean ? (s.n ? 1.0 / (double)s.n : NAN) : 1.0;
        for (int64_t o = 0; o < s.outer; o++)
            for (int64_t i = 0; i < s.inner; i++) {
                double acc = 0;
                const float *xp = s.x + o * s.n * s.inner + i;
                for (int64_t k = 0; k < s.n; k++) acc += xp[k * s.inner];
                y[o * s.inner + i] = (float)(acc * scale);
            }
    }
    crl_tensor_free(s.tmp);
    return rc;
}

int crl_cpu_tensor_sum(crl_tensor *out, const crl_tensor *src, int dim, int keepdim)
{
    return sum_or_mean(out, src, dim, keepdim, 0, __func__);
}

int crl_cpu_tensor_mean(crl_tensor *out, const crl_tensor *src, int dim, int keepdim)
{
    return sum_or_mean(out, src, dim, keepdim, 1, __func__);
}

/* NaN wins, as in PyTorch; ties keep the first index. */
static int extreme(crl_tensor *values, crl_tensor *indices, const crl_tensor *src, int dim,
                   int keepdim, int want_max, const char *func)
{
    if (values == NULL && indices == NULL)
        return crl_fail(CRL_ERR_ARG, func, "'values' and 'indices' are both NULL");
    if (values == src || indices == src)
        return crl_fail(CRL_ERR_ARG, func, "outputs and src must be different tensors");
    dim_split s;
    int rc = split_dim(&s, src, dim, keepdim, func);
    if (rc) return rc;
    if (s.n == 0)
        rc = crl_fail(CRL_ERR_SHAPE, func, "cannot reduce over an empty dimension of %s",
                      crl_shape(src));
    if (rc == CRL_OK && values) rc = crl_prepare(values, CRL_FLOAT32, CRL_CPU, s.out_ndim, s.out_size);
    if (rc == CRL_OK && indices) rc = crl_prepare(indices, CRL_INT32, CRL_CPU, s.out_ndim, s.out_size);
    if (rc == CRL_OK) {
        float *v = values ? crl_tensor_data(values) : NULL;
        int32_t *ix = indices ? crl_tensor_data(indices) : NULL;
        for (int64_t o = 0; o < s.outer; o++)
            for (int64_t i = 0; i < s.inner; i++) {
                const float *xp = s.x + o * s.n * s.inner + i;
                float best = xp[0];
                int64_t arg = 0;
                for (int64_t k = 1; k < s.n && best == best; k++) {
                    float x = xp[k * s.inner];
                    if (crl_extreme_takes(want_max, best, arg, x, k)) {
                        best = x;
                        arg = k;
                    }
                }
                if (v) v[o * s.inner + i] = best;
                if (ix) ix[o * s.inner + i] = (int32_t)arg;
            }
    }
    crl_tensor_free(s.tmp);
    return rc;
}

int crl_cpu_tensor_max(crl_tensor *values, crl_tensor *indices, const crl_tensor *src, int dim, int keepdim)
{
    return extreme(values, indices, src, dim, keepdim, 1, __func__);
}

int crl_cpu_tensor_min(crl_tensor *values, crl_tensor *indices, const crl_tensor *src, int dim, int keepdim)
{
    return extreme(values, indices, src, dim, keepdim, 0, __func__);
}

/* Softmax and log-softmax along dim, stable (the row maximum is
 * subtracted first). out may be src when src is contiguous. */
static int softmax_impl(crl_tensor *out, const crl_tensor *src, int dim, int want_log,
                        const char *func)
{
    CHECK_TENSOR(out, "out");
    dim_split s;
    int rc = split_dim(&s, src, dim, 1, func);
    if (rc) return rc;
    rc = crl_prepare(out, CRL_FLOAT32, CRL_CPU, src->ndim, src->sizes);
    if (rc == CRL_OK) {
        float *y = crl_tensor_data(out);
        for (int64_t o = 0; o < s.outer; o++)
            for (int64_t i = 0; i < s.inner; i++) {
                const float *xp = s.x + o * s.n * s.inner + i;
                float *yp = y + o * s.n * s.inner + i;
                float m = -INFINITY;
                for (int64_t k = 0; k < s.n; k++) m = crl_softmax_max(m, xp[k * s.inner]);
                double shift = crl_softmax_shift(m);
                double z = 0;
                for (int64_t k = 0; k < s.n; k++) z += exp((double)xp[k * s.inner] - shift);
                double logz = log(z);
                for (int64_t k = 0; k < s.n; k++)
                    yp[k * s.inner] = crl_softmax_out(xp[k * s.inner], shift, logz, want_log);
            }
    }
    crl_tensor_free(s.tmp);
    return rc;
}

int crl_cpu_tensor_softmax(crl_tensor *out, const crl_tensor *src, int dim)
{
    return softmax_impl(out, src, dim, 0, __func__);
}

int crl_cpu_tensor_log_softmax(crl_tensor *out, const crl_tensor *src, int dim)
{
    return softmax_impl(out, src, dim, 1, __func__);
}
