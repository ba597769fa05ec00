/* test_layers.c -- convolution against a naive direct loop (forward and
 * all three gradients, with the batch split into several im2col chunks),
 * batch norm in evaluation mode against its formula, the optimiser updates
 * against PyTorch's update rules written out, and bad layer arguments. */
#include <math.h>
#include <string.h>

#include "crlab.h"
#include "tap.h"

static crl_tensor *randn(int ndim, const int64_t *size, uint64_t seed)
{
    crl_tensor *t = crl_tensor_new(CRL_FLOAT32, CRL_CPU, ndim, size);
    crl_generator g = {seed, 0};
    crl_tensor_normal(t, &g, 0, 1);
    return t;
}

static crl_tensor *empty(void) { return crl_tensor_new(CRL_FLOAT32, CRL_CPU, 0, NULL); }

static float *F(const crl_tensor *t) { return crl_tensor_data(t); }

static void test_conv_direct(int n, int c, int h, int w, int f, int kh, int kw, int stride, int pad,
                             int64_t ws_limit)
{
    int64_t si[4] = {n, c, h, w}, sw[4] = {f, c, kh, kw}, sb[1] = {f};
    crl_tensor *x = randn(4, si, 1), *wt = randn(4, sw, 2), *b = randn(1, sb, 3);
    crl_tensor *y = empty(), *ws = empty(), *gx = empty();
    crl_conv2d_params p = {stride, stride, pad, pad, 1, 1, 1, 0};
    int64_t old = crl_conv2d_workspace_limit(ws_limit);
    int rc = crl_conv2d_forward(y, x, wt, b, &p, ws);
    int oh = (h + 2 * pad - kh) / stride + 1, ow = (w + 2 * pad - kw) / stride + 1;
    int64_t so[4] = {n, f, oh, ow};
    crl_tensor *gy = randn(4, so, 4);
    crl_tensor *gw = crl_tensor_new(CRL_FLOAT32, CRL_CPU, 4, sw), *gb = crl_tensor_new(CRL_FLOAT32, CRL_CPU, 1, sb);
    crl_tensor_fill(gw, 0.5); /* parameter gradients accumulate onto this */
    crl_tensor_fill(gb, -0.25);
    rc |= crl_conv2d_backward(gx, gw, gb, gy, x, wt, &p, ws);
    crl_conv2d_workspace_limit(old);
    double err_y = 0, err_gx = 0, err_gw = 0, err_gb = 0;
    /* naive loops, in double */
    static double ref_gx[4096], ref_gw[4096], ref_gb[64];
    memset(ref_gx, 0, sizeof ref_gx);
    for (int i = 0; i < f * c * kh * kw; i++) ref_gw[i] = 0.5;
    for (int i = 0; i < f; i++) ref_gb[i] = -0.25;
    for (int ni = 0; ni < n; ni++)
        for (int fi = 0; fi < f; fi++)
            for (int oy = 0; oy < oh; oy++)
                for (int ox = 0; ox < ow; ox++) {
                    double acc = F(b)[fi];
                    double g = F(gy)[((ni * f + fi) * oh + oy) * ow + ox];
                    ref_gb[fi] += g;
                    for (int ci = 0; ci < c; ci++)
                        for (int ky = 0; ky < kh; ky++)
                            for (int kx = 0; kx < kw; kx++) {
                                int iy = oy * stride - pad + ky, ix = ox * stride - pad + kx;
                                if (iy < 0 || iy >= h || ix < 0 || ix >= w) continue;
                                int xi = ((ni * c + ci) * h + iy) * w + ix;
                                int wi = ((fi * c + ci) * kh + ky) * kw + kx;
                                acc += F(x)[xi] * F(wt)[wi];
                                ref_gx[xi] += g * F(wt)[wi];
                                ref_gw[wi] += g * F(x)[xi];
                            }
                    double got = F(y)[((ni * f + fi) * oh + oy) * ow + ox];
                    if (fabs(got - acc) > err_y) err_y = fabs(got - acc);
                }
    for (int i = 0; i < n * c * h * w; i++) err_gx = fmax(err_gx, fabs(F(gx)[i] - ref_gx[i]));
    for (int i = 0; i < f * c * kh * kw; i++) err_gw = fmax(err_gw, fabs(F(gw)[i] - ref_gw[i]));
    for (int i = 0; i < f; i++) err_gb = fmax(err_gb, fabs(F(gb)[i] - ref_gb[i]));
    ok(rc == 0 && y->sizes[2] == oh && y->sizes[3] == ow && err_y < 1e-4 && err_gx < 1e-4 && err_gw < 1e-3 &&
       err_gb < 1e-4,
       "conv (%d,%d,%d,%d) * (%d,%d,%d,%d) stride %d pad %d, workspace limit %lld: max error y %.1e, "
       "grad_in %.1e, grad_weight %.1e, grad_bias %.1e (direct loop)", n, c, h, w, f, c, kh, kw, stride, pad,
       (long long)ws_limit, err_y, err_gx, err_gw, err_gb);
    crl_tensor_free(x); crl_tensor_free(wt); crl_tensor_free(b); crl_tensor_free(y); crl_tensor_free(ws);
    crl_tensor_free(gx); crl_tensor_free(gy); crl_tensor_free(gw); crl_tensor_free(gb);
}

static void test_batchnorm_eval(void)
{
    int64_t s[4] = {2, 3, 2, 2}, sc[1] = {3};
    crl_tensor *x = randn(4, s, 5), *w = randn(1, sc, 6), *b = randn(1, sc, 7);
    crl_tensor *rm = randn(1, sc, 8), *rv = crl_tensor_new(CRL_FLOAT32, CRL_CPU, 1, sc), *y = empty();
    crl_tensor_fill(rv, 2.0);
    int rc = crl_batchnorm_forward(y, NULL, NULL, rm, rv, x, w, b, 0, 0.1f, 1e-5f, 0);
    double err = 0;
    for (int i = 0; i < 24; i++) {
        int ch = (i / 4) % 3;
        double want = (F(x)[i] - F(rm)[ch]) / sqrt(2.0 + 1e-5) * F(w)[ch] + F(b)[ch];
        err = fmax(err, fabs(F(y)[i] - want));
    }
    ok(rc == 0 && err < 1e-5, "batch norm in evaluation uses the running statistics (max error %.1e)", err);
    /* training: output has zero mean and unit variance per channel; running stats move */
    crl_tensor *sm = empty(), *si = empty();
    rc = crl_batchnorm_forward(y, sm, si, rm, rv, x, NULL, NULL, 1, 1.0f, 1e-5f, 0);
    double mean = 0, var = 0;
    for (int nn = 0; nn < 2; nn++)
        for (int q = 0; q < 4; q++) mean += F(y)[(nn * 3 + 1) * 4 + q] / 8;
    for (int nn = 0; nn < 2; nn++)
        for (int q = 0; q < 4; q++) var += pow(F(y)[(nn * 3 + 1) * 4 + q] - mean, 2) / 8;
    double xm = 0, xv = 0;
    for (int nn = 0; nn < 2; nn++)
        for (int q = 0; q < 4; q++) xm += F(x)[(nn * 3 + 1) * 4 + q] / 8;
    for (int nn = 0; nn < 2; nn++)
        for (int q = 0; q < 4; q++) xv += pow(F(x)[(nn * 3 + 1) * 4 + q] - xm, 2) / 7;
    ok(rc == 0 && fabs(mean) < 1e-6 && fabs(var - 1) < 1e-4 && fabs(F(rm)[1] - xm) < 1e-6 && fabs(F(rv)[1] - xv) < 1e-5,
       "batch norm in training normalises per channel; momentum 1 sets running mean and unbiased variance");
    int64_t one[4] = {1, 3, 1, 1};
    crl_tensor *x1 = randn(4, one, 9);
    ok(crl_batchnorm_forward(y, sm, si, rm, rv, x1, NULL, NULL, 1, 0.1f, 1e-5f, 0) != 0 &&
       strstr(crl_last_error(), "more than one value per channel"),
       "training batch norm on one value per channel fails: %s", crl_last_error());
    crl_tensor_free(x); crl_tensor_free(w); crl_tensor_free(b); crl_tensor_free(rm); crl_tensor_free(rv);
    crl_tensor_free(y); crl_tensor_free(sm); crl_tensor_free(si); crl_tensor_free(x1);
}

static void test_optimisers(void)
{
    int64_t s[1] = {5};
    crl_tensor *p = randn(1, s, 10), *g = randn(1, s, 11), *buf = crl_tensor_new(CRL_FLOAT32, CRL_CPU, 1, s);
    crl_tensor *decay = crl_tensor_new(CRL_FLOAT32, CRL_CPU, 1, s);
    crl_tensor_fill(decay, 1e-2);
    crl_tensor_put(decay, 4, 0);
    float p0[5], b0[5] = {0};
    memcpy(p0, F(p), sizeof p0);
    int good = 1;
    for (int step = 0; step < 3; step++) {
        crl_sgd_step(p, buf, g, decay, 0.1f, 0.9f, 0.0f, 1);
        for (int i = 0; i < 5; i++) { /* torch.optim.SGD, nesterov */
            float d = F(g)[i] + (i < 4 ? 1e-2f : 0.0f) * p0[i];
            b0[i] = 0.9f * b0[i] + d;
            p0[i] -= 0.1f * (d + 0.9f * b0[i]);
        }
    }
    for (int i = 0; i < 5; i++) good &= fabs(F(p)[i] - p0[i]) < 1e-6;
    ok(good, "SGD with Nesterov momentum and per-element weight decay follows torch.optim.SGD");
    crl_tensor *m = crl_tensor_new(CRL_FLOAT32, CRL_CPU, 1, s), *v = crl_tensor_new(CRL_FLOAT32, CRL_CPU, 1, s);
    float q[5], mm[5] = {0}, vv[5] = {0};
    memcpy(q, F(p), sizeof q);
    for (int step = 1; step <= 3; step++) {
        crl_adam_step(p, m, v, g, decay, 1e-2f, 0.9f, 0.999f, 1e-8f, step, 1);
        for (int i = 0; i < 5; i++) { /* torch.optim.AdamW */
            float wd = i < 4 ? 1e-2f : 0.0f;
            q[i] -= 1e-2f * wd * q[i];
            mm[i] = 0.9f * mm[i] + 0.1f * F(g)[i];
            vv[i] = 0.999f * vv[i] + 0.001f * F(g)[i] * F(g)[i];
            double mh = mm[i] / (1 - pow(0.9, step)), vh = vv[i] / (1 - pow(0.999, step));
            q[i] -= (float)(1e-2 * mh / (sqrt(vh) + 1e-8));
        }
    }
    good = 1;
    for (int i = 0; i < 5; i++) good &= fabs(F(p)[i] - q[i]) < 1e-5;
    ok(good, "AdamW follows torch.optim.AdamW");
    int64_t s4[1] = {4};
    crl_tensor *short_g = crl_tensor_new(CRL_FLOAT32, CRL_CPU, 1, s4);
    ok(crl_sgd_step(p, buf, short_g, NULL, 0.1f, 0.9f, 0, 0) != 0 && strstr(crl_last_error(), "grads"),
       "a gradient slab of the wrong size fails: %s", crl_last_error());
    ok(crl_sgd_step(p, buf, g, NULL, 0.1f, 0.0f, 0, 1) != 0, "Nesterov without momentum fails");
    double ss;
    crl_tensor_sumsq(&ss, g);
    double want = 0;
    for (int i = 0; i < 5; i++) want += (double)F(g)[i] * F(g)[i];
    ok(fabs(ss - want) < 1e-9, "sum of squares");
    crl_tensor_free(p); crl_tensor_free(g); crl_tensor_free(buf); crl_tensor_free(decay);
    crl_tensor_free(m); crl_tensor_free(v); crl_tensor_free(short_g);
}

static void test_bad_layers(void)
{
    int64_t si[4] = {2, 3, 5, 5}, sw[4] = {4, 2, 3, 3}, big[4] = {4, 3, 7, 7};
    crl_tensor *x = randn(4, si, 1), *w = randn(4, sw, 2), *wbig = randn(4, big, 3), *y = empty(), *ws = empty();
    crl_conv2d_params p = {1, 1, 0, 0, 1, 1, 1, 0};
    ok(crl_conv2d_forward(y, x, w, NULL, &p, ws) != 0 && strstr(crl_last_error(), "3 channels"),
       "conv with mismatched channels names both shapes: %s", crl_last_error());
    ok(crl_conv2d_forward(y, x, wbig, NULL, &p, ws) != 0 && strstr(crl_last_error(), "larger than"),
       "a kernel larger than the input fails: %s", crl_last_error());
    crl_conv2d_params bad = {0, 1, 0, 0, 1, 1, 1, 0};
    crl_tensor *w3 = randn(4, (int64_t[]){4, 3, 3, 3}, 4);
    ok(crl_conv2d_forward(y, x, w3, NULL, &bad, ws) != 0 && strstr(crl_last_error(), "stride"),
       "stride 0 fails: %s", crl_last_error());
    crl_tensor *xt = crl_tensor_new_view(x);
    crl_tensor_transpose(xt, x, 2, 3);
    ok(crl_conv2d_forward(y, xt, w3, NULL, &p, ws) != 0 && strstr(crl_last_error(), "contiguous"),
       "a non-contiguous input fails: %s", crl_last_error());
    crl_pool2d_params pp = {2, 2, 2, 2, 2, 0, 1};
    crl_tensor *ix = crl_tensor_new(CRL_INT32, CRL_CPU, 0, NULL);
    ok(crl_maxpool2d_forward(y, ix, x, &pp) != 0 && strstr(crl_last_error(), "half the kernel"),
       "pooling padding above half the kernel fails: %s", crl_last_error());
    crl_tensor *lin_w = randn(2, (int64_t[]){3, 7}, 5);
    crl_tensor *x2 = randn(2, (int64_t[]){2, 6}, 6);
    ok(crl_linear_forward(y, x2, lin_w, NULL) != 0 && strstr(crl_last_error(), "(2, 6)"),
       "linear with mismatched sizes fails: %s", crl_last_error());
    crl_tensor_free(x); crl_tensor_free(w); crl_tensor_free(wbig); crl_tensor_free(y); crl_tensor_free(ws);
    crl_tensor_free(w3); crl_tensor_free(xt); crl_tensor_free(ix); crl_tensor_free(lin_w); crl_tensor_free(x2);
}

int main(void)
{
    test_conv_direct(3, 2, 6, 5, 4, 3, 3, 1, 1, 0);
    test_conv_direct(3, 3, 7, 7, 2, 3, 3, 2, 1, 0);
    test_conv_direct(4, 2, 5, 6, 3, 1, 1, 1, 0, 0);
    test_conv_direct(2, 2, 9, 8, 3, 5, 3, 2, 2, 0);
    /* a limit below one image's columns forces one image per chunk */
    test_conv_direct(5, 3, 6, 6, 4, 3, 3, 1, 1, 100);
    test_conv_direct(5, 3, 6, 6, 4, 3, 3, 1, 1, 1500);
    test_batchnorm_eval();
    test_optimisers();
    test_bad_layers();
    return done_testing();
}
