/* test_loss.c -- the losses against reference values from an independent
 * numpy implementation (tests/ref/loss_ref.txt), their gradients against
 * central finite differences, the p_y -> 1 regime, and bad arguments. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "crlab.h"
#include "tap.h"

static crl_tensor *mat(int64_t n, int64_t k)
{
    int64_t s[2] = {n, k};
    return crl_tensor_new(CRL_FLOAT32, CRL_CPU, 2, s);
}

static crl_tensor *labels_of(const int32_t *y, int64_t n)
{
    crl_tensor *t = crl_tensor_new(CRL_INT32, CRL_CPU, 1, &n);
    memcpy(crl_tensor_data(t), y, (size_t)n * sizeof *y);
    return t;
}

static const char *kind_name(int kind)
{
    static const char *names[] = {"ce", "nllr", "crl", "focal"};
    return names[kind];
}

/* ---- reference file ------------------------------------------------------ */

static int read_floats(FILE *f, const char *tag, double *v, int n)
{
    char word[32];
    if (fscanf(f, "%31s", word) != 1 || strcmp(word, tag) != 0) return 0;
    for (int i = 0; i < n; i++)
        if (fscanf(f, "%lf", &v[i]) != 1) return 0;
    return 1;
}

static void test_reference(void)
{
    const char *path = "tests/ref/loss_ref.txt";
    FILE *f = fopen(path, "r");
    if (!ok(f != NULL, "open %s (run from the repository root)", path)) return;
    char line[256];
    if (fgets(line, sizeof line, f) == NULL) line[0] = 0; /* the header comment */
    int cases = 0, bad_value = 0, bad_per = 0, bad_grad = 0, parse_ok = 1;
    double worst = 0;
    char kind[16], red[16];
    double alpha, beta, gamma, smoothing;
    int n, k;
    while (fscanf(f, " case %15s %15s %lf %lf %lf %lf %d %d", kind, red, &alpha, &beta, &gamma,
                  &smoothing, &n, &k) == 8) {
        double *z = malloc(sizeof(double) * (size_t)(n * k)), *per = malloc(sizeof(double) * (size_t)n);
        double *grad = malloc(sizeof(double) * (size_t)(n * k)), *yd = malloc(sizeof(double) * (size_t)n);
        double value;
        parse_ok &= read_floats(f, "logits", z, n * k) && read_floats(f, "labels", yd, n) &&
                    read_floats(f, "value", &value, 1) && read_floats(f, "per", per, n) &&
                    read_floats(f, "grad", grad, n * k);
        crl_loss_spec spec = {0};
        spec.kind = !strcmp(kind, "ce") ? CRL_LOSS_CE : !strcmp(kind, "nllr") ? CRL_LOSS_NLLR
                    : !strcmp(kind, "crl") ? CRL_LOSS_CRL : CRL_LOSS_FOCAL;
        spec.reduction = !strcmp(red, "mean") ? CRL_REDUCE_MEAN : !strcmp(red, "sum") ? CRL_REDUCE_SUM
                         : CRL_REDUCE_NONE;
        spec.alpha = (float)alpha;
        spec.beta = (float)beta;
        spec.gamma = (float)gamma;
        spec.smoothing = (float)smoothing;
        crl_tensor *zt = mat(n, k), *g = mat(1, 1), *pe = mat(1, 1);
        crl_tensor_from_doubles(zt, z, n * k);
        int32_t y[64];
        for (int i = 0; i < n; i++) y[i] = (int32_t)yd[i];
        crl_tensor *yt = labels_of(y, n);
        double got;
        int rc = crl_loss_forward(&got, pe, zt, yt, &spec);
        rc |= crl_loss_backward(g, zt, yt, NULL, &spec);
        if (rc) diag("case %d: %s", cases, crl_last_error());
        if (rc || !close_to(got, value, 1e-7, 1e-9)) bad_value++;
        const float *pp = crl_tensor_data(pe), *gp = crl_tensor_data(g);
        for (int i = 0; i < n && !rc; i++)
            if (!close_to(pp[i], per[i], 2e-6, 1e-7)) bad_per++;
        for (int i = 0; i < n * k && !rc; i++) {
            double err = fabs(gp[i] - grad[i]) / (1e-7 + fabs(grad[i]));
            if (err > worst) worst = err;
            if (!close_to(gp[i], grad[i], 2e-6, 1e-8)) bad_grad++;
        }
        crl_tensor_free(zt); crl_tensor_free(g); crl_tensor_free(pe); crl_tensor_free(yt);
        free(z); free(per); free(grad); free(yd);
        cases++;
    }
    fclose(f);
    ok(parse_ok && cases >= 90, "read %d reference cases", cases);
    ok(bad_value == 0, "loss values match numpy (%d mismatches)", bad_value);
    ok(bad_per == 0, "per-example losses match numpy (%d mismatches)", bad_per);
    ok(bad_grad == 0, "gradients match numpy (%d mismatches, worst relative error %.2e)", bad_grad, worst);
}

/* ---- finite differences ------------------------------------------------- */

/* Logits are multiples of 2^-10 and steps are 2^-6 and 2^-7, so every
 * perturbed input is exact in float32 and the forward pass (accumulated in
 * double) sees exactly the perturbation; Richardson extrapolation of two
 * central differences leaves an O(h^4) truncation error. */
static double loss_at(crl_tensor *z, const crl_tensor *y, const crl_loss_spec *spec)
{
    double v = NAN;
    crl_loss_forward(&v, NULL, z, y, spec);
    return v;
}

static int fd_check(const crl_loss_spec *spec, int64_t n, int64_t k, double confident, unsigned seed,
                    double *worst_out)
{
    crl_tensor *z = mat(n, k), *g = mat(1, 1);
    int32_t y[16];
    srand(seed);
    float *zp = crl_tensor_data(z);
    for (int64_t i = 0; i < n * k; i++) zp[i] = (float)((rand() % 4096 - 2048) / 1024.0);
    for (int64_t i = 0; i < n; i++) {
        y[i] = (int32_t)(rand() % k);
        if (i == 0) zp[i * k + y[i]] += (float)confident;
    }
    crl_tensor *yt = labels_of(y, n);
    crl_loss_backward(g, z, yt, NULL, spec);
    const float *gp = crl_tensor_data(g);
    double worst = 0;
    int bad = 0;
    for (int64_t i = 0; i < n * k; i++) {
        float orig = zp[i];
        double d[2];
        for (int r = 0; r < 2; r++) {
            float h = r == 0 ? 1.0f / 64 : 1.0f / 128;
            zp[i] = orig + h;
            double up = loss_at(z, yt, spec);
            zp[i] = orig - h;
            double down = loss_at(z, yt, spec);
            d[r] = (up - down) / (2.0 * h);
        }
        zp[i] = orig;
        double fd = (4 * d[1] - d[0]) / 3;
        double err = fabs(gp[i] - fd) / (1e-6 + fabs(fd));
        if (err > worst) worst = err;
        if (!close_to(gp[i], fd, 2e-4, 2e-7)) bad++;
    }
    crl_tensor_free(z); crl_tensor_free(g); crl_tensor_free(yt);
    *worst_out = worst;
    return bad;
}

static void test_finite_differences(void)
{
    struct { int kind; float alpha, beta, gamma, smoothing; } params[] = {
        {CRL_LOSS_CE, 0, 0, 0, 0},      {CRL_LOSS_CE, 0, 0, 0, 0.2f},   {CRL_LOSS_NLLR, 0, 0, 0, 0},
        {CRL_LOSS_CRL, 1.5f, 1, 0, 0},  {CRL_LOSS_CRL, 1, 0.5f, 0, 0},  {CRL_LOSS_CRL, 4, 2, 0, 0},
        {CRL_LOSS_CRL, 0, 1, 0, 0},     {CRL_LOSS_FOCAL, 0, 0, 0, 0},   {CRL_LOSS_FOCAL, 0, 0, 0.5f, 0},
        {CRL_LOSS_FOCAL, 0, 0, 2, 0},   {CRL_LOSS_FOCAL, 0, 0, 5, 0},
    };
    int64_t ks[] = {2, 3, 7, 50};
    double confident[] = {0, 6};
    for (size_t p = 0; p < sizeof params / sizeof params[0]; p++)
        for (int r = 0; r < 3; r++) {
            crl_loss_spec spec = {params[p].kind, r, params[p].alpha, params[p].beta, params[p].gamma,
                                  params[p].smoothing};
            int bad = 0;
            double worst = 0;
            for (size_t ki = 0; ki < 4; ki++)
                for (int c = 0; c < 2; c++) {
                    double w;
                    if (r == CRL_REDUCE_NONE) spec.reduction = CRL_REDUCE_SUM; /* d(sum)/dz = rows */
                    bad += fd_check(&spec, 4, ks[ki], confident[c], 1000u + (unsigned)(p * 31 + ki * 7 + c), &w);
                    if (w > worst) worst = w;
                    spec.reduction = r;
                }
            ok(bad == 0, "%s(alpha=%g beta=%g gamma=%g smoothing=%g) reduction %d: gradient = finite "
               "differences for K in {2,3,7,50}, p_y up to ~1 (worst relative error %.1e)",
               kind_name(spec.kind), spec.alpha, spec.beta, spec.gamma, spec.smoothing, r, worst);
        }
}

/* ---- p_y -> 1 ------------------------------------------------------------- */

static void test_confident(void)
{
    /* z_y = 40: S = sum_{j != y} p_j is about 1e-17, so 1 - p_y is 0 in
     * float32 and double alike; NLLR must still be lse_{j != y} - z_y. */
    crl_tensor *z = mat(1, 4), *g = mat(1, 1);
    float zv[4] = {0.5f, 40.0f, -1.0f, 0.25f};
    memcpy(crl_tensor_data(z), zv, sizeof zv);
    int32_t yv[1] = {1};
    crl_tensor *y = labels_of(yv, 1);
    crl_loss_spec nllr = {CRL_LOSS_NLLR, CRL_REDUCE_MEAN, 0, 1, 0, 0};
    double v;
    crl_loss_forward(&v, NULL, z, y, &nllr);
    double want = log(exp(0.5) + exp(-1.0) + exp(0.25)) - 40.0;
    ok(close_to(v, want, 1e-12, 0), "NLLR at p_y = 1 - 1e-17 is exact: %.15g (want %.15g)", v, want);
    crl_loss_backward(g, z, y, NULL, &nllr);
    const float *gp = crl_tensor_data(g);
    double esum = exp(0.5) + exp(-1.0) + exp(0.25);
    ok(gp[1] == -1.0f && close_to(gp[0], exp(0.5) / esum, 1e-6, 0) &&
       close_to(gp[2], exp(-1.0) / esum, 1e-6, 0),
       "NLLR gradient there is finite: (%g, %g, %g, %g)", gp[0], gp[1], gp[2], gp[3]);
    crl_loss_spec crl = {CRL_LOSS_CRL, CRL_REDUCE_MEAN, 1.5f, 1, 0, 0};
    crl_loss_forward(&v, NULL, z, y, &crl);
    ok(close_to(v, log(1.5), 1e-12, 1e-15), "CRL(1.5, 1) reaches its minimum log(alpha) = %.12g: %.12g",
       log(1.5), v);
    crl_loss_spec focal = {CRL_LOSS_FOCAL, CRL_REDUCE_MEAN, 0, 0, 0.5f, 0};
    crl_loss_backward(g, z, y, NULL, &focal);
    int finite = 1;
    for (int i = 0; i < 4; i++) finite &= isfinite(gp[i]);
    ok(finite, "focal(gamma=0.5) gradient is finite where (1-p_y)^(gamma-1) would overflow");
    crl_tensor_free(z); crl_tensor_free(g); crl_tensor_free(y);
}

/* ---- grad_output, strides ------------------------------------------------ */

static void test_grad_output_and_strides(void)
{
    crl_generator gen = {7, 0};
    int64_t kn[2] = {6, 3};
    crl_tensor *zt = crl_tensor_new(CRL_FLOAT32, CRL_CPU, 2, kn); /* (K, N) then transposed */
    crl_tensor_normal(zt, &gen, 0, 2);
    crl_tensor *z = crl_tensor_new_view(zt);
    crl_tensor_transpose(z, zt, 0, 1); /* (3, 6) non-contiguous */
    crl_tensor *zc = mat(1, 1);
    crl_tensor_contiguous(zc, z);
    int32_t yv[3] = {5, 0, 2};
    crl_tensor *y = labels_of(yv, 3);
    crl_loss_spec spec = {CRL_LOSS_CRL, CRL_REDUCE_NONE, 1.5f, 1, 0, 0};
    crl_tensor *g1 = mat(1, 1), *g2 = mat(1, 1), *go = crl_tensor_new(CRL_FLOAT32, CRL_CPU, 1, &kn[1]);
    double v1, v2;
    crl_loss_forward(&v1, NULL, z, y, &spec);
    crl_loss_forward(&v2, NULL, zc, y, &spec);
    crl_loss_backward(g1, z, y, NULL, &spec);
    float *gop = crl_tensor_data(go);
    gop[0] = 2; gop[1] = -1; gop[2] = 0.5f;
    crl_loss_backward(g2, zc, y, go, &spec);
    ok(v1 == v2, "a transposed view of the logits gives the same loss as its contiguous copy");
    const float *a = crl_tensor_data(g1), *b = crl_tensor_data(g2);
    int good = 1;
    for (int i = 0; i < 3; i++)
        for (int j = 0; j < 6; j++) good &= close_to(b[i * 6 + j], a[i * 6 + j] * gop[i], 1e-6, 1e-9);
    ok(good, "per-example grad_output scales each row of the gradient (reduction none)");
    crl_tensor_free(zt); crl_tensor_free(z); crl_tensor_free(zc); crl_tensor_free(y);
    crl_tensor_free(g1); crl_tensor_free(g2); crl_tensor_free(go);
}

/* ---- bad arguments --------------------------------------------------------- */

static int fails_with(int rc, const char *needle)
{
    return rc != CRL_OK && strstr(crl_last_error(), needle) != NULL;
}

static void test_errors(void)
{
    crl_tensor *z = mat(2, 3), *g = mat(1, 1);
    int32_t yv[3] = {0, 3, 1};
    crl_tensor *bad_label = labels_of(yv, 2);
    crl_tensor *three = labels_of((int32_t[]){0, 1, 2}, 3);
    crl_tensor *neg = labels_of((int32_t[]){0, -1}, 2);
    crl_tensor *fl = crl_tensor_new(CRL_FLOAT32, CRL_CPU, 1, (int64_t[]){2});
    crl_tensor *good = labels_of((int32_t[]){0, 2}, 2);
    crl_loss_spec spec = {CRL_LOSS_CRL, CRL_REDUCE_MEAN, 1.5f, 1, 0, 0};
    double v = 12345;
    ok(fails_with(crl_loss_forward(&v, NULL, z, bad_label, &spec), "label 3 of example 1") && v == 12345,
       "label 3 with K = 3 fails before any work: %s", crl_last_error());
    ok(fails_with(crl_loss_backward(g, z, neg, NULL, &spec), "label -1"), "label -1 fails: %s",
       crl_last_error());
    ok(fails_with(crl_loss_forward(&v, NULL, z, three, &spec), "(2, 3)"),
       "logits (2,3) with 3 labels fails naming both shapes: %s", crl_last_error());
    ok(fails_with(crl_loss_forward(&v, NULL, z, fl, &spec), "int32"), "float labels fail: %s",
       crl_last_error());
    ok(fails_with(crl_loss_forward(&v, NULL, fl, good, &spec), "(N, K)"), "1-D logits fail: %s",
       crl_last_error());
    ok(fails_with(crl_loss_forward(&v, NULL, z, good, NULL), "spec"), "NULL spec fails: %s",
       crl_last_error());
    ok(fails_with(crl_loss_forward(NULL, NULL, z, good, &spec), "value"), "NULL value fails");
    ok(fails_with(crl_loss_forward(&v, NULL, NULL, good, &spec), "logits"), "NULL logits fails");
    crl_loss_spec bad = spec;
    bad.alpha = -1;
    ok(fails_with(crl_loss_forward(&v, NULL, z, good, &bad), "alpha"), "alpha < 0 fails: %s",
       crl_last_error());
    bad = spec;
    bad.beta = 0;
    ok(fails_with(crl_loss_forward(&v, NULL, z, good, &bad), "beta"), "beta = 0 fails");
    bad = spec;
    bad.alpha = NAN;
    ok(fails_with(crl_loss_forward(&v, NULL, z, good, &bad), "alpha"), "alpha = NaN fails");
    bad = (crl_loss_spec){CRL_LOSS_FOCAL, CRL_REDUCE_MEAN, 0, 0, -2, 0};
    ok(fails_with(crl_loss_forward(&v, NULL, z, good, &bad), "gamma"), "gamma < 0 fails");
    bad = (crl_loss_spec){CRL_LOSS_CE, CRL_REDUCE_MEAN, 0, 0, 0, 1};
    ok(fails_with(crl_loss_forward(&v, NULL, z, good, &bad), "smoothing"), "smoothing = 1 fails");
    bad = (crl_loss_spec){9, CRL_REDUCE_MEAN, 0, 0, 0, 0};
    ok(fails_with(crl_loss_forward(&v, NULL, z, good, &bad), "kind"), "unknown kind fails");
    bad = (crl_loss_spec){CRL_LOSS_CE, 7, 0, 0, 0, 0};
    ok(fails_with(crl_loss_forward(&v, NULL, z, good, &bad), "reduction"), "unknown reduction fails");
    crl_tensor *z1 = mat(2, 1);
    crl_tensor *zeros = labels_of((int32_t[]){0, 0}, 2);
    bad = (crl_loss_spec){CRL_LOSS_NLLR, CRL_REDUCE_MEAN, 0, 1, 0, 0};
    ok(fails_with(crl_loss_forward(&v, NULL, z1, zeros, &bad), "at least 2 classes"),
       "NLLR with K = 1 fails: %s", crl_last_error());
    crl_tensor *go = mat(1, 2);
    spec.reduction = CRL_REDUCE_NONE;
    ok(fails_with(crl_loss_backward(g, z, good, go, &spec) == CRL_OK ? 1 : CRL_OK, ""),
       "grad_output (1, 2) for reduction none (N = 2) is accepted (2 elements)");
    crl_tensor *go3 = mat(1, 3);
    ok(fails_with(crl_loss_backward(g, z, good, go3, &spec), "grad_output"),
       "grad_output with 3 elements for N = 2 fails: %s", crl_last_error());
    ok(fails_with(crl_loss_backward(z, z, good, NULL, &spec), "grad"), "grad aliasing logits fails");
    crl_tensor_free(z); crl_tensor_free(g); crl_tensor_free(bad_label); crl_tensor_free(three);
    crl_tensor_free(neg); crl_tensor_free(fl); crl_tensor_free(good); crl_tensor_free(z1);
    crl_tensor_free(zeros); crl_tensor_free(go); crl_tensor_free(go3);
}

/* forward_into: the same value as forward, left in a (1) float32 tensor
 * that is reused across calls; a bad call leaves it untouched. */
static void test_forward_into(void)
{
    crl_tensor *z = mat(6, 4);
    crl_generator g = {11, 0};
    crl_tensor_normal(z, &g, 0, 2);
    int32_t yv[6] = {0, 3, 1, 2, 2, 0};
    crl_tensor *y = labels_of(yv, 6);
    int64_t zero = 0;
    crl_tensor *value = crl_tensor_new(CRL_INT32, CRL_CPU, 1, &zero); /* wrong dtype: replaced */
    crl_tensor *per = crl_tensor_new(CRL_FLOAT32, CRL_CPU, 1, &zero);
    int all_same = 1;
    for (int kind = CRL_LOSS_CE; kind <= CRL_LOSS_FOCAL; kind++)
        for (int red = CRL_REDUCE_MEAN; red <= CRL_REDUCE_NONE; red++) {
            crl_loss_spec spec = {kind, red, 1.5f, 1.0f, 2.0f, 0.1f};
            double want, got;
            crl_loss_forward(&want, NULL, z, y, &spec);
            int rc = crl_loss_forward_into(value, per, z, y, &spec);
            crl_tensor_get(&got, value, 0);
            if (rc != CRL_OK || value->dtype != CRL_FLOAT32 || value->ndim != 1 || value->sizes[0] != 1 ||
                got != (double)(float)want || per->sizes[0] != 6) {
                all_same = 0;
                diag("%s reduction %d: rc %d, got %.9g, want %.9g", kind_name(kind), red, rc, got, want);
            }
        }
    ok(all_same, "forward_into writes forward's value (as float32) into a (1) tensor, for every loss and reduction");
    void *data = crl_tensor_data(value);
    crl_loss_spec ce = {CRL_LOSS_CE, CRL_REDUCE_MEAN, 0, 1, 0, 0};
    crl_loss_forward_into(value, NULL, z, y, &ce);
    ok(crl_tensor_data(value) == data, "a second call reuses the value's storage");
    int32_t bad[6] = {0, 3, 1, 9, 2, 0};
    crl_tensor *yb = labels_of(bad, 6);
    double before, after;
    crl_tensor_get(&before, value, 0);
    int rc = crl_loss_forward_into(value, NULL, z, yb, &ce);
    crl_tensor_get(&after, value, 0);
    ok(rc == CRL_ERR_ARG && strstr(crl_last_error(), "crl_loss_forward_into: label 9 of example 3") &&
       before == after, "a bad label fails naming this function, and the value is left alone: %s",
       crl_last_error());
    ok(crl_loss_forward_into(z, NULL, z, y, &ce) == CRL_ERR_ARG &&
       crl_loss_forward_into(per, per, z, y, &ce) == CRL_ERR_ARG &&
       crl_loss_forward_into(NULL, NULL, z, y, &ce) == CRL_ERR_ARG,
       "value may not be the logits, the per-example output or NULL");
    crl_tensor_free(z);
    crl_tensor_free(y);
    crl_tensor_free(yb);
    crl_tensor_free(value);
    crl_tensor_free(per);
}

int main(void)
{
    test_reference();
    test_finite_differences();
    test_confident();
    test_grad_output_and_strides();
    test_errors();
    test_forward_into();
    return done_testing();
}
