/* test_tensor.c -- tensors: allocation, views and their strides, copies,
 * broadcasting arithmetic and reductions against plain loops, sgemm with
 * every transpose and stride layout against a naive product, softmax, and
 * bad arguments returning errors with messages. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "crlab.h"
#include "tap.h"

static crl_tensor *filled(int ndim, const int64_t *size, uint64_t seed)
{
    crl_tensor *t = crl_tensor_new(CRL_FLOAT32, CRL_CPU, ndim, size);
    crl_generator g = {seed, 0};
    crl_tensor_normal(t, &g, 0, 1);
    return t;
}

static double at(const crl_tensor *t, int64_t i)
{
    double v = NAN;
    crl_tensor_get(&v, t, i);
    return v;
}

static int fails_with(int rc, const char *needle)
{
    return rc != CRL_OK && strstr(crl_last_error(), needle) != NULL;
}

static void test_new_and_views(void)
{
    int64_t s[3] = {2, 3, 4};
    crl_tensor *t = crl_tensor_new(CRL_FLOAT32, CRL_CPU, 3, s);
    ok(t && crl_tensor_numel(t) == 24 && crl_tensor_is_contiguous(t) && t->strides[0] == 12 &&
       t->strides[2] == 1 && ((uintptr_t)crl_tensor_data(t) % 64) == 0,
       "new (2,3,4): 24 elements, contiguous strides, 64-byte aligned");
    double sum;
    crl_tensor_sum_all(&sum, t);
    ok(sum == 0, "new tensors are zero-filled");
    for (int64_t i = 0; i < 24; i++) crl_tensor_put(t, i, (double)i);

    crl_tensor *v = crl_tensor_new_view(t);
    crl_tensor_narrow(v, t, 1, 1, 2); /* (2, 2, 4) starting at [0][1][0] */
    ok(v->sizes[1] == 2 && at(v, 0) == 4 && at(v, 8) == 16 && !crl_tensor_is_contiguous(v),
       "narrow(dim 1, start 1, length 2) views the right elements");
    crl_tensor_select(v, t, 2, 3); /* (2, 3): t[:, :, 3] */
    ok(v->ndim == 2 && at(v, 0) == 3 && at(v, 1) == 7 && at(v, 3) == 15, "select(dim 2, 3)");
    crl_tensor_transpose(v, t, 0, 2); /* (4, 3, 2) */
    ok(v->sizes[0] == 4 && at(v, 1) == 12 && at(v, 2) == 4, "transpose(0, 2)");
    int64_t ns[2] = {-1, 6};
    ok(crl_tensor_view(v, t, 2, ns) == CRL_OK && v->sizes[0] == 4 && at(v, 7) == 7,
       "view(-1, 6) infers 4");
    crl_tensor *tt = crl_tensor_new_view(t);
    crl_tensor_transpose(tt, t, 1, 2); /* (2, 4, 3), not contiguous */
    int64_t flat[1] = {24};
    ok(fails_with(crl_tensor_view(v, tt, 1, flat), "contiguous"),
       "view of a transposed tensor as flat fails and suggests contiguous(): %s", crl_last_error());
    int64_t merge[3] = {2, 4, 3};
    ok(crl_tensor_view(v, tt, 3, merge) == CRL_OK, "view to the same shape keeps working on strides");
    int64_t split[4] = {2, 2, 2, 3};
    int rc = crl_tensor_view(v, tt, 4, split), same_order = 1;
    for (int64_t i = 0; i < 24; i++) same_order &= at(v, i) == at(tt, i);
    ok(rc == CRL_OK && same_order && !crl_tensor_is_contiguous(v),
       "view (2,4,3)^T -> (2,2,2,3) splits a strided dimension without copying");
    crl_tensor *c = crl_tensor_new(CRL_FLOAT32, CRL_CPU, 0, NULL);
    crl_tensor_contiguous(c, tt);
    int same = at(tt, 1) == 4;
    for (int64_t i = 0; i < 24; i++) same &= at(c, i) == at(tt, i);
    ok(same && crl_tensor_is_contiguous(c), "contiguous() copies a transposed view in order");
    crl_tensor_unsqueeze(v, t, 1);
    ok(v->ndim == 4 && v->sizes[1] == 1 && at(v, 5) == 5, "unsqueeze(1)");
    crl_tensor_squeeze(v, v, 1);
    ok(v->ndim == 3 && v->sizes[1] == 3, "squeeze(1) undoes it (out == src)");
    int64_t row[1] = {4};
    crl_tensor *r = crl_tensor_new(CRL_FLOAT32, CRL_CPU, 1, row);
    int64_t ex[2] = {3, 4};
    ok(crl_tensor_expand(v, r, 2, ex) == CRL_OK && v->strides[0] == 0, "expand (4) to (3,4) with stride 0");

    /* A view keeps the storage alive after the original is freed. */
    crl_tensor *keep = crl_tensor_new_view(t);
    crl_tensor_select(keep, t, 0, 1);
    crl_tensor_free(t);
    ok(at(keep, 0) == 12 && at(keep, 11) == 23, "a view outlives the tensor it came from");
    crl_tensor_free(keep);
    crl_tensor_free(v);
    crl_tensor_free(tt);
    crl_tensor_free(c);
    crl_tensor_free(r);

    crl_tensor s0 = {0};
    s0.ndim = 1;
    ok(crl_tensor_init(&s0, CRL_INT32, CRL_CPU, 1, ex) == CRL_OK && crl_tensor_numel(&s0) == 3,
       "init on a caller-owned header");
    crl_tensor_release(&s0);
    ok(s0.storage == NULL && crl_tensor_numel(&s0) == 0, "release leaves an empty header");
}

static void test_copy_fill_convert(void)
{
    int64_t s[2] = {3, 4};
    crl_tensor *f = filled(2, s, 1);
    crl_tensor *i = crl_tensor_new(CRL_INT32, CRL_CPU, 2, s);
    crl_tensor_fill(f, 2.75);
    crl_tensor_put(f, 1, -3.9);
    crl_tensor_put(f, 2, 1e20);
    crl_tensor_put(f, 3, NAN);
    crl_tensor_copy(i, f);
    ok(at(i, 0) == 2 && at(i, 1) == -3 && at(i, 2) == 2147483647 && at(i, 3) == 0,
       "float -> int32 truncates toward zero, saturates, NaN -> 0");
    crl_tensor *b = crl_tensor_new(CRL_UINT8, CRL_CPU, 2, s);
    crl_tensor_copy(b, f);
    ok(at(b, 0) == 2 && at(b, 1) == 0 && at(b, 2) == 255, "float -> uint8 saturates to [0, 255]");
    crl_tensor *t = crl_tensor_new_view(f);
    crl_tensor_transpose(t, f, 0, 1);
    crl_tensor_fill(t, 1.5);
    double sum;
    crl_tensor_sum_all(&sum, f);
    ok(sum == 18, "fill through a transposed view fills every element");
    int64_t s12[1] = {12}, s13[1] = {13};
    crl_tensor *flat = crl_tensor_new(CRL_FLOAT32, CRL_CPU, 1, s12);
    ok(crl_tensor_copy(flat, t) == CRL_OK && at(flat, 1) == 1.5, "copy between shapes of equal numel");
    crl_tensor *bad = crl_tensor_new(CRL_FLOAT32, CRL_CPU, 1, s13);
    ok(fails_with(crl_tensor_copy(bad, f), "(3, 4)"), "copy with unequal numel fails: %s",
       crl_last_error());
    double vals[12];
    for (int k = 0; k < 12; k++) vals[k] = k * 0.5;
    crl_tensor_from_doubles(t, vals, 12);
    double back[12];
    crl_tensor_to_doubles(back, t, 12);
    ok(!memcmp(vals, back, sizeof vals) && at(f, 1) == 1.5 && at(f, 4) == 0.5,
       "from_doubles / to_doubles follow the view's row-major order");
    ok(fails_with(crl_tensor_get(&sum, f, 12), "out of range"), "get past the end fails");
    crl_tensor_free(f); crl_tensor_free(i); crl_tensor_free(b); crl_tensor_free(t);
    crl_tensor_free(flat); crl_tensor_free(bad);
}

/* out = a op b with broadcasting, against index arithmetic by hand. */
static void test_broadcast(void)
{
    int64_t sa[3] = {4, 1, 5}, sb[2] = {3, 1};
    crl_tensor *a = filled(3, sa, 2), *b = filled(2, sb, 3);
    crl_tensor *out = crl_tensor_new(CRL_FLOAT32, CRL_CPU, 0, NULL);
    const int ops[] = {CRL_OP_ADD, CRL_OP_SUB, CRL_OP_MUL, CRL_OP_DIV, CRL_OP_MAX, CRL_OP_GT};
    for (int o = 0; o < 6; o++) {
        crl_tensor_binary(out, a, b, ops[o]);
        int good = out->ndim == 3 && out->sizes[0] == 4 && out->sizes[1] == 3 && out->sizes[2] == 5;
        for (int i = 0; i < 4 && good; i++)
            for (int j = 0; j < 3; j++)
                for (int k = 0; k < 5; k++) {
                    float x = (float)at(a, i * 5 + k), y = (float)at(b, j);
                    float want = ops[o] == CRL_OP_ADD ? x + y : ops[o] == CRL_OP_SUB ? x - y
                               : ops[o] == CRL_OP_MUL ? x * y : ops[o] == CRL_OP_DIV ? x / y
                               : ops[o] == CRL_OP_MAX ? (x > y ? x : y) : (float)(x > y);
                    good &= (float)at(out, (i * 3 + j) * 5 + k) == want;
                }
        ok(good, "op %d: (4,1,5) with (3,1) broadcasts to (4,3,5) and matches a loop", ops[o]);
    }
    int64_t sc[2] = {2, 3};
    crl_tensor *c = filled(2, sc, 4);
    ok(fails_with(crl_tensor_binary(out, a, c, CRL_OP_ADD), "do not broadcast"),
       "(4,1,5) + (2,3) fails: %s", crl_last_error());
    crl_tensor_binary_scalar(out, b, 2.0, CRL_OP_SUB, 1);
    ok((float)at(out, 2) == (float)(2.0f - (float)at(b, 2)), "reverse scalar op computes s - a");
    /* in place on a view */
    crl_tensor *ct = crl_tensor_new_view(c);
    crl_tensor_transpose(ct, c, 0, 1);
    double before = at(c, 4);
    crl_tensor_binary_scalar(ct, ct, 10.0, CRL_OP_ADD, 0);
    ok((float)at(c, 4) == (float)(before + 10.0f), "in-place op through a transposed view");
    crl_tensor *ia = crl_tensor_new(CRL_INT32, CRL_CPU, 2, sc), *ib = crl_tensor_new(CRL_INT32, CRL_CPU, 2, sc);
    crl_tensor_put(ia, 1, 3);
    crl_tensor_binary(out, ia, ib, CRL_OP_EQ);
    double s;
    crl_tensor_sum_all(&s, out);
    ok(s == 5 && out->dtype == CRL_FLOAT32, "int32 == int32 gives a float 0/1 tensor");
    ok(fails_with(crl_tensor_binary(out, ia, ib, CRL_OP_ADD), "float32"), "int32 arithmetic fails: %s",
       crl_last_error());
    crl_tensor_unary(out, b, CRL_UN_EXP);
    ok(close_to(at(out, 1), exp(at(b, 1)), 1e-6, 0), "unary exp");
    crl_tensor_clamp(out, a, -0.5, 0.5);
    double mx, mn;
    crl_tensor_max_all(&mx, out);
    crl_tensor_min_all(&mn, out);
    ok(mx <= 0.5 && mn >= -0.5, "clamp to [-0.5, 0.5]");
    crl_tensor_free(a); crl_tensor_free(b); crl_tensor_free(c); crl_tensor_free(ct);
    crl_tensor_free(out); crl_tensor_free(ia); crl_tensor_free(ib);
}

static void test_reductions_and_softmax(void)
{
    int64_t s[3] = {3, 4, 5};
    crl_tensor *x = filled(3, s, 5);
    crl_tensor *out = crl_tensor_new(CRL_FLOAT32, CRL_CPU, 0, NULL);
    crl_tensor *idx = crl_tensor_new(CRL_INT32, CRL_CPU, 0, NULL);
    for (int dim = 0; dim < 3; dim++) {
        crl_tensor_sum(out, x, dim, 0);
        crl_tensor *mx = crl_tensor_new(CRL_FLOAT32, CRL_CPU, 0, NULL);
        crl_tensor_max(mx, idx, x, dim, 1);
        int good = out->ndim == 2 && mx->ndim == 3 && mx->sizes[dim] == 1;
        int64_t o_n = 1, in_n = 1;
        for (int d = 0; d < dim; d++) o_n *= s[d];
        for (int d = dim + 1; d < 3; d++) in_n *= s[d];
        for (int64_t o = 0; o < o_n; o++)
            for (int64_t i = 0; i < in_n; i++) {
                double acc = 0, best = -INFINITY;
                int arg = 0;
                for (int64_t k = 0; k < s[dim]; k++) {
                    double v = at(x, (o * s[dim] + k) * in_n + i);
                    acc += v;
                    if (v > best) { best = v; arg = (int)k; }
                }
                good &= close_to(at(out, o * in_n + i), acc, 1e-6, 1e-6);
                good &= at(mx, o * in_n + i) == best && at(idx, o * in_n + i) == arg;
            }
        ok(good, "sum and max/argmax along dim %d match a loop", dim);
        crl_tensor_free(mx);
    }
    crl_tensor_mean(out, x, -1, 0);
    double want = 0;
    for (int k = 0; k < 5; k++) want += at(x, k);
    ok(close_to(at(out, 0), want / 5, 1e-6, 1e-7), "mean along dim -1");
    ok(fails_with(crl_tensor_sum(out, x, 3, 0), "dim 3"), "dim 3 of a 3-d tensor fails: %s",
       crl_last_error());

    crl_tensor_softmax(out, x, 1);
    int good = 1;
    for (int a = 0; a < 3; a++)
        for (int c = 0; c < 5; c++) {
            double z = 0;
            for (int b = 0; b < 4; b++) z += exp(at(x, (a * 4 + b) * 5 + c));
            for (int b = 0; b < 4; b++)
                good &= close_to(at(out, (a * 4 + b) * 5 + c), exp(at(x, (a * 4 + b) * 5 + c)) / z, 1e-6, 1e-8);
        }
    ok(good, "softmax along the middle dimension matches exp / sum");
    int64_t s2[2] = {1, 3};
    crl_tensor *big = crl_tensor_new(CRL_FLOAT32, CRL_CPU, 2, s2);
    crl_tensor_put(big, 0, 1000);
    crl_tensor_put(big, 1, 0);
    crl_tensor_put(big, 2, -1000);
    crl_tensor_log_softmax(out, big, 1);
    ok(at(out, 0) == 0 && at(out, 1) == -1000 && isfinite(at(out, 2)), "log_softmax is stable at +-1000");
    crl_tensor_free(x); crl_tensor_free(out); crl_tensor_free(idx); crl_tensor_free(big);
}

static void test_gemm(void)
{
    int64_t m = 5, k = 7, n = 3;
    for (int layout = 0; layout < 16; layout++) {
        int ta = layout & 1, tb = (layout >> 1) & 1, view_a = (layout >> 2) & 1, view_b = (layout >> 3) & 1;
        /* stored shapes: a is (k, m) when ta, b is (n, k) when tb; a
         * "view" stores the transpose and hands gemm a transposed view */
        int64_t sa[2] = {ta ? k : m, ta ? m : k}, sb[2] = {tb ? n : k, tb ? k : n};
        int64_t sa_t[2] = {sa[1], sa[0]}, sb_t[2] = {sb[1], sb[0]};
        crl_tensor *a0 = filled(2, view_a ? sa_t : sa, 10 + layout), *b0 = filled(2, view_b ? sb_t : sb, 50 + layout);
        crl_tensor *a = crl_tensor_new_view(a0), *b = crl_tensor_new_view(b0);
        if (view_a) crl_tensor_transpose(a, a0, 0, 1);
        if (view_b) crl_tensor_transpose(b, b0, 0, 1);
        crl_tensor *c = crl_tensor_new(CRL_FLOAT32, CRL_CPU, 0, NULL);
        int rc = crl_tensor_gemm(c, a, b, ta, tb, 1.0f, 0.0f);
        int good = rc == CRL_OK && c->sizes[0] == m && c->sizes[1] == n;
        for (int64_t i = 0; i < m && good; i++)
            for (int64_t j = 0; j < n; j++) {
                double acc = 0;
                for (int64_t p = 0; p < k; p++)
                    acc += at(a, ta ? p * m + i : i * k + p) * at(b, tb ? j * k + p : p * n + j);
                good &= close_to(at(c, i * n + j), acc, 1e-5, 1e-5);
            }
        ok(good, "gemm transpose_a=%d transpose_b=%d, a %s, b %s matches a naive product", ta, tb,
           view_a ? "column-major view" : "row-major", view_b ? "column-major view" : "row-major");
        crl_tensor_free(a0); crl_tensor_free(b0); crl_tensor_free(a); crl_tensor_free(b); crl_tensor_free(c);
    }
    /* a view with strides BLAS cannot take, and accumulation with beta */
    int64_t big[2] = {10, 14};
    crl_tensor *base = filled(2, big, 99);
    crl_tensor *a = crl_tensor_new_view(base);
    int64_t sz[2] = {5, 7};
    crl_tensor_view(a, base, 2, big);
    a->sizes[0] = 5; a->sizes[1] = 7; a->strides[0] = 28; a->strides[1] = 2; /* every other element */
    crl_tensor *b = filled(2, (int64_t[]){7, 3}, 5);
    crl_tensor *c = filled(2, (int64_t[]){5, 3}, 6);
    double c0 = at(c, 4);
    crl_tensor_gemm(c, a, b, 0, 0, 2.0f, 0.5f);
    double acc = 0;
    for (int p = 0; p < 7; p++) acc += at(a, 1 * 7 + p) * at(b, p * 3 + 1);
    ok(close_to(at(c, 4), 2 * acc + 0.5 * c0, 1e-5, 1e-5), "gemm on a strided view with alpha and beta");
    ok(fails_with(crl_tensor_gemm(c, a, a, 0, 0, 1, 0), "inner sizes"), "gemm with mismatched inner sizes fails: %s",
       crl_last_error());
    ok(fails_with(crl_tensor_gemm(a, c, b, 0, 0, 1, 0), ""), "gemm into a tensor sharing memory with an input fails");
    (void)sz;
    crl_tensor_free(base); crl_tensor_free(a); crl_tensor_free(b); crl_tensor_free(c);
}

static void test_errors(void)
{
    int64_t neg[2] = {2, -1};
    ok(crl_tensor_new(CRL_FLOAT32, CRL_CPU, 2, neg) == NULL && strstr(crl_last_error(), "negative"),
       "negative size fails: %s", crl_last_error());
    int64_t six[6] = {1, 1, 1, 1, 1, 1};
    ok(crl_tensor_new(CRL_FLOAT32, CRL_CPU, 6, six) == NULL, "6 dimensions fail: %s", crl_last_error());
    ok(crl_tensor_new(7, CRL_CPU, 1, six) == NULL && strstr(crl_last_error(), "dtype"), "bad dtype fails");
    int64_t huge[3] = {1 << 20, 1 << 20, 1 << 20};
    ok(crl_tensor_new(CRL_FLOAT32, CRL_CPU, 3, huge) == NULL && strstr(crl_last_error(), "2^40"),
       "an absurd size fails without overflow: %s", crl_last_error());
    ok(fails_with(crl_tensor_fill(NULL, 1), "NULL"), "NULL tensor fails: %s", crl_last_error());
    int64_t s[2] = {2, 3};
    crl_tensor *t = crl_tensor_new(CRL_FLOAT32, CRL_CPU, 2, s);
    ok(fails_with(crl_tensor_narrow(t, t, 1, 2, 2), "do not fit"), "narrow past the end fails: %s",
       crl_last_error());
    ok(fails_with(crl_tensor_select(t, t, 0, 2), "out of range"), "select past the end fails");
    ok(fails_with(crl_tensor_transpose(t, t, 0, 5), "dim1 5"), "transpose of a missing dim fails");
    ok(crl_tensor_numel(t) == 6 && t->sizes[1] == 3, "failed view calls leave the tensor unchanged");
    crl_tensor *c = crl_tensor_new(CRL_FLOAT32, CRL_CUDA, 2, s);
    ok(c == NULL || crl_cuda_device_count() > 0, "a CUDA tensor without a device fails cleanly: %s",
       crl_last_error());
    crl_tensor_free(c);
    crl_tensor_free(t);
    crl_tensor_free(NULL);
    ok(1, "free(NULL) is harmless");
}

/* An output that must be resized never writes through storage it shares:
 * a view of another tensor gets a storage of its own (the api header's
 * "keeps the storage when it is unshared"); an output already of the
 * result's contiguous shape is written in place (into the viewed tensor). */
static int unchanged(const crl_tensor *t, int64_t n)
{
    int same = 1;
    for (int64_t i = 0; i < n; i++) same &= at(t, i) == (double)i;
    return same;
}

static void test_resize_shared(void)
{
    int64_t eight[1] = {8}, s32[2] = {3, 2}, s24[2] = {2, 4};
    crl_tensor *t = crl_tensor_new(CRL_FLOAT32, CRL_CPU, 1, eight);
    for (int64_t i = 0; i < 8; i++) crl_tensor_put(t, i, (double)i);
    crl_tensor *ones = crl_tensor_new(CRL_FLOAT32, CRL_CPU, 2, s32);
    crl_tensor_fill(ones, 1);

    crl_tensor *v = crl_tensor_new_view(t);
    crl_tensor_narrow(v, t, 0, 0, 2);
    int rc = crl_tensor_sum(v, ones, 1, 0); /* (3): v is resized from (2) */
    ok(rc == CRL_OK && v->sizes[0] == 3 && at(v, 0) == 2 && at(v, 2) == 2 && unchanged(t, 8),
       "sum into a (2) view resized to (3) leaves the viewed tensor alone");
    ok(v->storage != t->storage, "... the view got a storage of its own");

    crl_tensor_narrow(v, t, 0, 4, 4);
    int64_t six[1] = {6};
    ok(crl_tensor_resize(v, 1, six) == CRL_OK && unchanged(t, 8) && v->storage != t->storage,
       "crl_tensor_resize of a shared view allocates");

    crl_tensor *m = crl_tensor_new_view(t), *tr = crl_tensor_new_view(t);
    crl_tensor_view(m, t, 2, s24);
    crl_tensor_transpose(tr, m, 0, 1); /* (4, 2), not contiguous */
    crl_tensor *src = crl_tensor_new(CRL_FLOAT32, CRL_CPU, 3, (int64_t[]){4, 2, 3});
    crl_tensor_fill(src, 1);
    rc = crl_tensor_sum(tr, src, 2, 0); /* (4, 2): same shape, other strides */
    ok(rc == CRL_OK && at(tr, 0) == 3 && at(tr, 7) == 3 && unchanged(t, 8),
       "sum into a transposed (4, 2) view does not relayout the viewed storage");

    crl_tensor_narrow(v, t, 0, 2, 3);
    rc = crl_tensor_sum(v, ones, 1, 0); /* (3) into a contiguous (3) view: in place */
    ok(rc == CRL_OK && v->storage == t->storage && at(t, 1) == 1 && at(t, 2) == 2 && at(t, 4) == 2 &&
       at(t, 5) == 5, "sum into a view of the result's shape writes into the viewed tensor");

    crl_tensor_free(v);
    crl_tensor_free(m);
    crl_tensor_free(tr);
    crl_tensor_free(src);
    crl_tensor_free(ones);
    crl_tensor_free(t);
}

int main(void)
{
    test_new_and_views();
    test_resize_shared();
    test_copy_fill_convert();
    test_broadcast();
    test_reductions_and_softmax();
    test_gemm();
    test_errors();
    return done_testing();
}
