/* test_formats.c -- image and dataset files written here in their exact
 * formats and read back: PNG (grey, RGB, RGBA, palette, 16-bit; written
 * with libpng directly), JPEG (baseline and progressive, grey and colour;
 * CMYK refused), CIFAR-10/100 records, SVHN .mat (libmatio), and the
 * errors for truncated, corrupt or incomplete files. */
#include <matio.h>
#include <png.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <turbojpeg.h>
#include <unistd.h>

#include "crlab.h"
#include "tap.h"

static char dir[256];

static const char *path_of(const char *name)
{
    static char buf[4][512];
    static int next;
    char *p = buf[next];
    next = (next + 1) % 4;
    snprintf(p, 512, "%s/%s", dir, name);
    return p;
}

static int fails_with(int rc, const char *needle)
{
    return rc != CRL_OK && strstr(crl_last_error(), needle) != NULL;
}

static void write_bytes(const char *path, const void *data, size_t n)
{
    FILE *f = fopen(path, "wb");
    fwrite(data, 1, n, f);
    fclose(f);
}

static uint8_t *read_bytes(const char *path, size_t *n)
{
    FILE *f = fopen(path, "rb");
    fseek(f, 0, SEEK_END);
    *n = (size_t)ftell(f);
    fseek(f, 0, SEEK_SET);
    uint8_t *b = malloc(*n);
    if (fread(b, 1, *n, f) != *n) *n = 0;
    fclose(f);
    return b;
}

/* A PNG written with libpng: color type, bit depth, optional palette. */
static void write_png_raw(const char *path, int w, int h, int color, int depth, const uint8_t *rows_data, int rowbytes,
                          const png_color *palette, int npal)
{
    FILE *f = fopen(path, "wb");
    png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, NULL, NULL, NULL);
    png_infop info = png_create_info_struct(png);
    if (setjmp(png_jmpbuf(png))) {
        fclose(f);
        return;
    }
    png_init_io(png, f);
    png_set_IHDR(png, info, w, h, depth, color, PNG_INTERLACE_NONE, PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
    if (palette) png_set_PLTE(png, info, palette, npal);
    png_write_info(png, info);
    for (int y = 0; y < h; y++) png_write_row(png, (png_const_bytep)(rows_data + y * rowbytes));
    png_write_end(png, NULL);
    png_destroy_write_struct(&png, &info);
    fclose(f);
}

static void test_png(void)
{
    const int w = 5, h = 3;
    /* RGB through crlab's writer, read back exactly */
    int64_t sz[3] = {3, h, w};
    crl_tensor *img = crl_tensor_new(CRL_UINT8, CRL_CPU, 3, sz), *back = crl_tensor_new(CRL_UINT8, CRL_CPU, 0, NULL);
    uint8_t *p = crl_tensor_data(img);
    for (int i = 0; i < 3 * h * w; i++) p[i] = (uint8_t)(i * 17 + 3);
    int rc = crl_image_write_png(path_of("rgb.png"), img);
    rc |= crl_image_read(back, path_of("rgb.png"), 0);
    ok(rc == 0 && back->sizes[0] == 3 && back->sizes[1] == h && back->sizes[2] == w &&
       !memcmp(crl_tensor_data(back), p, (size_t)(3 * h * w)), "RGB PNG: written and read back exactly as (3, H, W)");
    ok(access(path_of("rgb.png.tmp"), F_OK) != 0, "the PNG writer leaves no temporary file");
    /* grey, 8-bit */
    uint8_t grey[15];
    for (int i = 0; i < 15; i++) grey[i] = (uint8_t)(i * 11);
    write_png_raw(path_of("grey.png"), w, h, PNG_COLOR_TYPE_GRAY, 8, grey, w, NULL, 0);
    rc = crl_image_read(back, path_of("grey.png"), 0);
    ok(rc == 0 && back->sizes[0] == 1 && !memcmp(crl_tensor_data(back), grey, 15), "grey PNG reads as (1, H, W)");
    rc = crl_image_read(back, path_of("grey.png"), 3);
    const uint8_t *q = crl_tensor_data(back);
    ok(rc == 0 && back->sizes[0] == 3 && q[7] == grey[7] && q[15 + 7] == grey[7] && q[30 + 7] == grey[7],
       "grey PNG with channels = 3 repeats the plane");
    /* RGBA: alpha dropped */
    uint8_t rgba[15 * 4];
    for (int i = 0; i < 15; i++) {
        rgba[i * 4] = (uint8_t)i;
        rgba[i * 4 + 1] = (uint8_t)(2 * i);
        rgba[i * 4 + 2] = (uint8_t)(3 * i);
        rgba[i * 4 + 3] = (uint8_t)(i % 2 ? 0 : 255);
    }
    write_png_raw(path_of("rgba.png"), w, h, PNG_COLOR_TYPE_RGB_ALPHA, 8, rgba, w * 4, NULL, 0);
    rc = crl_image_read(back, path_of("rgba.png"), 0);
    q = crl_tensor_data(back);
    ok(rc == 0 && back->sizes[0] == 3 && q[4] == 4 && q[15 + 4] == 8 && q[30 + 5] == 15,
       "RGBA PNG reads as RGB, the alpha dropped (not composited)");
    /* palette, 4-bit indices */
    png_color pal[3] = {{255, 0, 0}, {0, 255, 0}, {10, 20, 30}};
    uint8_t idx[3 * 3]; /* 5 pixels at 4 bits = 3 bytes a row */
    memset(idx, 0, sizeof idx);
    idx[0] = 0x01;      /* pixels 0, 1 = 0, 1 */
    idx[1] = 0x20;      /* pixel 2 = 2 */
    write_png_raw(path_of("pal.png"), w, h, PNG_COLOR_TYPE_PALETTE, 4, idx, 3, pal, 3);
    rc = crl_image_read(back, path_of("pal.png"), 0);
    q = crl_tensor_data(back);
    ok(rc == 0 && back->sizes[0] == 3 && q[0] == 255 && q[15 + 1] == 255 && q[2] == 10 && q[15 + 2] == 20 &&
       q[30 + 2] == 30, "palette PNG (4-bit) expands to RGB");
    /* 16-bit grey: reduced to the high byte */
    uint8_t g16[15 * 2];
    for (int i = 0; i < 15; i++) {
        g16[2 * i] = (uint8_t)(i * 16);
        g16[2 * i + 1] = 0x80;
    }
    write_png_raw(path_of("g16.png"), w, h, PNG_COLOR_TYPE_GRAY, 16, g16, w * 2, NULL, 0);
    rc = crl_image_read(back, path_of("g16.png"), 0);
    q = crl_tensor_data(back);
    int good = rc == 0 && back->sizes[0] == 1;
    for (int i = 0; i < 15 && good; i++) good &= abs(q[i] - i * 16) <= 1;
    ok(good, "16-bit PNG is reduced to 8 bits");
    /* truncated and corrupt */
    size_t n;
    uint8_t *bytes = read_bytes(path_of("rgb.png"), &n);
    write_bytes(path_of("cut.png"), bytes, n / 2);
    ok(fails_with(crl_image_read(back, path_of("cut.png"), 0), path_of("cut.png")),
       "a truncated PNG fails naming the file: %s", crl_last_error());
    bytes[20] ^= 0xFF; /* inside IHDR: the CRC no longer matches */
    write_bytes(path_of("bad.png"), bytes, n);
    ok(fails_with(crl_image_read(back, path_of("bad.png"), 0), "not a readable PNG"), "a corrupt PNG fails: %s",
       crl_last_error());
    free(bytes);
    write_bytes(path_of("text.png"), "hello, world", 12);
    ok(fails_with(crl_image_read(back, path_of("text.png"), 0), "neither PNG nor JPEG"), "a text file fails: %s",
       crl_last_error());
    ok(fails_with(crl_image_read(back, path_of("missing.png"), 0), "cannot open"), "a missing file fails");
    ok(fails_with(crl_image_read(back, path_of("rgb.png"), 2), "channels"), "channels = 2 is refused");
    crl_tensor_free(img);
    crl_tensor_free(back);
}

static void test_jpeg(void)
{
    const int w = 48, h = 32;
    int64_t sz[3] = {3, h, w}, gsz[3] = {1, h, w};
    crl_tensor *img = crl_tensor_new(CRL_UINT8, CRL_CPU, 3, sz), *grey = crl_tensor_new(CRL_UINT8, CRL_CPU, 3, gsz);
    crl_tensor *back = crl_tensor_new(CRL_UINT8, CRL_CPU, 0, NULL);
    uint8_t *p = crl_tensor_data(img), *g = crl_tensor_data(grey);
    for (int c = 0; c < 3; c++)
        for (int y = 0; y < h; y++)
            for (int x = 0; x < w; x++) p[(c * h + y) * w + x] = (uint8_t)(40 + c * 30 + 2 * x + y);
    for (int i = 0; i < h * w; i++) g[i] = (uint8_t)(i % w * 4);
    for (int prog = 0; prog < 2; prog++) {
        const char *name = prog ? "prog.jpg" : "base.jpg";
        int rc = crl_image_write_jpeg(path_of(name), img, 95, prog);
        rc |= crl_image_read(back, path_of(name), 0);
        int worst = 0;
        const uint8_t *q = crl_tensor_data(back);
        for (int i = 0; rc == 0 && i < 3 * h * w; i++) worst = abs(q[i] - p[i]) > worst ? abs(q[i] - p[i]) : worst;
        ok(rc == 0 && back->sizes[0] == 3 && back->sizes[1] == h && back->sizes[2] == w && worst <= 8,
           "%s colour JPEG reads back within 8 levels (worst %d)", prog ? "progressive" : "baseline", worst);
    }
    int rc = crl_image_write_jpeg(path_of("grey.jpg"), grey, 95, 0);
    rc |= crl_image_read(back, path_of("grey.jpg"), 0);
    int worst = 0;
    const uint8_t *q = crl_tensor_data(back);
    for (int i = 0; rc == 0 && i < h * w; i++) worst = abs(q[i] - g[i]) > worst ? abs(q[i] - g[i]) : worst;
    ok(rc == 0 && back->sizes[0] == 1 && worst <= 8, "grey JPEG reads as (1, H, W) (worst %d)", worst);
    /* CMYK */
    tjhandle tj = tjInitCompress();
    uint8_t *cmyk = malloc((size_t)(w * h * 4));
    for (int i = 0; i < w * h * 4; i++) cmyk[i] = (uint8_t)(i * 7);
    unsigned char *jpeg = NULL;
    unsigned long jsize = 0;
    tjCompress2(tj, cmyk, w, 0, h, TJPF_CMYK, &jpeg, &jsize, TJSAMP_444, 90, 0);
    write_bytes(path_of("cmyk.jpg"), jpeg, jsize);
    tjFree(jpeg);
    tjDestroy(tj);
    free(cmyk);
    ok(fails_with(crl_image_read(back, path_of("cmyk.jpg"), 0), "CMYK"), "a CMYK JPEG is refused: %s", crl_last_error());
    size_t n;
    uint8_t *bytes = read_bytes(path_of("base.jpg"), &n);
    write_bytes(path_of("cut.jpg"), bytes, n * 2 / 3);
    ok(fails_with(crl_image_read(back, path_of("cut.jpg"), 0), path_of("cut.jpg")),
       "a truncated JPEG fails naming the file: %s", crl_last_error());
    free(bytes);
    crl_tensor_free(img);
    crl_tensor_free(grey);
    crl_tensor_free(back);
}

static void test_cifar(void)
{
    for (int version = 10; version <= 100; version += 90) {
        int lb = version == 10 ? 1 : 2, n = 4;
        size_t rec = (size_t)lb + 3072;
        uint8_t *buf = malloc(rec * (size_t)n);
        for (int i = 0; i < n; i++) {
            uint8_t *r = buf + rec * (size_t)i;
            r[0] = (uint8_t)(i + 1);             /* CIFAR-10 label, or CIFAR-100 coarse */
            if (lb == 2) r[1] = (uint8_t)(50 + i); /* fine */
            for (int k = 0; k < 3072; k++) r[lb + k] = (uint8_t)(k * 3 + i);
        }
        const char *name = version == 10 ? "data_batch_1.bin" : "train.bin";
        write_bytes(path_of(name), buf, rec * (size_t)n);
        crl_tensor *im = crl_tensor_new(CRL_UINT8, CRL_CPU, 0, NULL), *lab = crl_tensor_new(CRL_INT32, CRL_CPU, 0, NULL);
        int rc = crl_cifar_read(im, lab, path_of(name), lb, 0);
        const uint8_t *q = crl_tensor_data(im);
        const int32_t *l = crl_tensor_data(lab);
        ok(rc == 0 && im->sizes[0] == n && im->sizes[1] == 3 && im->sizes[2] == 32 && l[2] == (lb == 1 ? 3 : 52) &&
           q[3072 * 2 + 1024 + 5] == (uint8_t)((1024 + 5) * 3 + 2),
           "CIFAR-%d records: pixels in R, G, B planes and the %s label", version, lb == 1 ? "" : "fine");
        if (lb == 2) {
            rc = crl_cifar_read(im, lab, path_of(name), 2, 1);
            ok(rc == 0 && ((const int32_t *)crl_tensor_data(lab))[3] == 4, "CIFAR-100 coarse labels on request");
        }
        write_bytes(path_of("cut.bin"), buf, rec * (size_t)n - 100);
        ok(fails_with(crl_cifar_read(im, lab, path_of("cut.bin"), lb, 0), "record 3 is incomplete"),
           "a truncated CIFAR-%d file names the broken record: %s", version, crl_last_error());
        crl_tensor_free(im);
        crl_tensor_free(lab);
        free(buf);
    }
}

static void test_svhn(void)
{
    int64_t sz[4] = {3, 3, 32, 32}, ln = 3;
    crl_tensor *im = crl_tensor_new(CRL_UINT8, CRL_CPU, 4, sz), *lab = crl_tensor_new(CRL_INT32, CRL_CPU, 1, &ln);
    uint8_t *p = crl_tensor_data(im);
    for (int i = 0; i < 3 * 3072; i++) p[i] = (uint8_t)(i * 13);
    int32_t *l = crl_tensor_data(lab);
    l[0] = 0;
    l[1] = 7;
    l[2] = 9;
    crl_tensor *im2 = crl_tensor_new(CRL_UINT8, CRL_CPU, 0, NULL), *lab2 = crl_tensor_new(CRL_INT32, CRL_CPU, 0, NULL);
    int rc = crl_svhn_write(path_of("train_32x32.mat"), im, lab);
    rc |= crl_svhn_read(im2, lab2, path_of("train_32x32.mat"));
    ok(rc == 0 && !memcmp(crl_tensor_data(im2), p, 3 * 3072) && !memcmp(crl_tensor_data(lab2), l, 12),
       "SVHN .mat (X 32x32x3xN, y with 10 for the digit 0) round-trips exactly: %s", rc ? crl_last_error() : "");
    /* check the file really stores 10 for the digit 0, MATLAB-style */
    mat_t *mat = Mat_Open(path_of("train_32x32.mat"), MAT_ACC_RDONLY);
    matvar_t *y = Mat_VarRead(mat, "y");
    matvar_t *x = Mat_VarRead(mat, "X");
    ok(y && ((double *)y->data)[0] == 10 && x && x->rank == 4 && x->dims[3] == 3 &&
       ((uint8_t *)x->data)[1] == p[32], "the file holds y = 10 for 0 and X in column-major 32x32x3xN");
    Mat_VarFree(y);
    Mat_VarFree(x);
    Mat_Close(mat);
    /* a file with only y */
    mat = Mat_CreateVer(path_of("noX.mat"), NULL, MAT_FT_MAT5);
    double yv[2] = {1, 2};
    size_t yd[2] = {2, 1};
    matvar_t *vy = Mat_VarCreate("y", MAT_C_DOUBLE, MAT_T_DOUBLE, 2, yd, yv, 0);
    Mat_VarWrite(mat, vy, MAT_COMPRESSION_NONE);
    Mat_VarFree(vy);
    Mat_Close(mat);
    ok(fails_with(crl_svhn_read(im2, lab2, path_of("noX.mat")), "no variable 'X'"), "a .mat without X fails: %s",
       crl_last_error());
    write_bytes(path_of("junk.mat"), "not a mat file at all, nope", 27);
    ok(fails_with(crl_svhn_read(im2, lab2, path_of("junk.mat")), "junk.mat"), "a junk .mat fails naming it: %s",
       crl_last_error());
    crl_tensor_free(im);
    crl_tensor_free(lab);
    crl_tensor_free(im2);
    crl_tensor_free(lab2);
}

/* Random byte flips and truncations of valid files: every read must
 * return (success or an error with a message), never crash; under
 * `make asan` this also checks for overreads. */
static void test_mutations(void)
{
    const char *files[3] = {"rgb.png", "base.jpg", "grey.png"};
    crl_tensor *back = crl_tensor_new(CRL_UINT8, CRL_CPU, 0, NULL);
    unsigned seed = 12345;
    int runs = 0, failed_cleanly = 0, bad_message = 0;
    for (int k = 0; k < 3; k++) {
        size_t n;
        uint8_t *orig = read_bytes(path_of(files[k]), &n);
        uint8_t *buf = malloc(n);
        for (int r = 0; r < 150; r++) {
            memcpy(buf, orig, n);
            size_t len = n;
            int flips = 1 + (int)((seed = seed * 1103515245u + 12345u) >> 16) % 8;
            for (int f = 0; f < flips; f++) {
                seed = seed * 1103515245u + 12345u;
                buf[(seed >> 8) % n] ^= (uint8_t)(1 + (seed >> 20) % 255);
            }
            if (r % 3 == 0) len = 8 + (seed >> 4) % (n - 8);
            int rc = crl_image_decode(back, buf, (int64_t)len, 0, "mutated");
            runs++;
            if (rc != CRL_OK) {
                failed_cleanly++;
                if (crl_last_error()[0] == 0) bad_message++;
            }
        }
        free(buf);
        free(orig);
    }
    ok(runs == 450 && bad_message == 0, "450 mutated or cut PNG/JPEG files: no crash, %d refused with a message, "
       "%d decoded", failed_cleanly, runs - failed_cleanly);
    crl_tensor_free(back);
}

/* crl_crc32: the standard check value, in pieces as at once, and its bad arguments */
static void test_crc32(void)
{
    uint32_t whole = 0, parts = 0;
    ok(crl_crc32(&whole, "123456789", 9) == CRL_OK && whole == 0xCBF43926u,
       "crl_crc32 of \"123456789\" is 0xcbf43926 (got 0x%08x)", (unsigned)whole);
    ok(crl_crc32(&parts, "1234", 4) == CRL_OK && crl_crc32(&parts, "56789", 5) == CRL_OK && parts == whole,
       "crl_crc32 continued over two pieces equals the whole");
    ok(crl_crc32(&parts, NULL, 0) == CRL_OK && parts == whole, "crl_crc32 of no bytes changes nothing");
    ok(fails_with(crl_crc32(&parts, NULL, 4), "'data' is NULL") && fails_with(crl_crc32(&parts, "x", -1), "negative"),
       "crl_crc32 refuses NULL data and a negative length");
}

/* Inputs found by the fuzz harnesses (tests/fuzz/): each is refused with a
 * message before anything is allocated for the size its header claims. */
static void test_fuzz_found(void)
{
    crl_tensor *t = crl_tensor_new(CRL_UINT8, CRL_CPU, 1, (int64_t[]){0});
    /* idx (0, 532776, 792084036, 1263688032): no elements, strides past 2^63 */
    static const uint8_t zero_dim[] = {0, 0, 8, 4, 0, 0, 0, 0, 0, 0x08, 0x21, 0x28, 0x2f, 0x36, 0x3d, 0x44,
                                       0x4b, 0x52, 0x59, 0x60};
    write_bytes(path_of("zero.idx"), zero_dim, sizeof zero_dim);
    ok(fails_with(crl_idx_read(t, path_of("zero.idx")), "more than 2^40 elements"),
       "an idx of size 0 x 2^19 x 2^29 x 2^30 is refused: %s", crl_last_error());
    /* idx (256, 2^31, 2) = 2^40 bytes promised by a 20-byte file */
    static const uint8_t huge[] = {0, 0, 8, 3, 0, 0, 1, 0, 0x80, 0, 0, 0, 0, 0, 0, 2, 1, 2, 3, 4};
    write_bytes(path_of("huge.idx"), huge, sizeof huge);
    ok(fails_with(crl_idx_read(t, path_of("huge.idx")), "a 20-byte file cannot hold them"),
       "an idx promising 2^40 bytes in 20 is refused as truncated: %s", crl_last_error());
    /* a JPEG cut inside its APP0 segment */
    static const uint8_t jpeg_cut[] = {0xff, 0xd8, 0xff, 0xe0, 0x00, 0x10, 0x4a, 0x46, 0xdf, 0xae};
    ok(fails_with(crl_image_decode(t, jpeg_cut, sizeof jpeg_cut, 0, "cut"), "not a readable JPEG"),
       "a JPEG cut before its frame header is refused: %s", crl_last_error());
    /* a PNG header of 65535 x 65535 RGB pixels, then 2 bytes of image data */
    uint8_t png[43] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n', 0, 0, 0, 13, 'I', 'H', 'D', 'R',
                       0, 0, 0xff, 0xff, 0, 0, 0xff, 0xff, 8, 2, 0, 0, 0, 0, 0, 0, 0,
                       0, 0, 0, 2, 'I', 'D', 'A', 'T', 0x78, 0x9c};
    uint32_t crc = 0;
    crl_crc32(&crc, png + 12, 17);
    for (int i = 0; i < 4; i++) png[29 + i] = (uint8_t)(crc >> (24 - 8 * i));
    ok(fails_with(crl_image_decode(t, png, sizeof png, 0, "big"), "cannot be coded in the file's bytes"),
       "a 43-byte PNG promising 65535 x 65535 pixels is refused: %s", crl_last_error());
    /* an SVHN file of 2 images whose X declares a million */
    crl_tensor *im = crl_tensor_new(CRL_UINT8, CRL_CPU, 4, (int64_t[]){2, 3, 32, 32});
    crl_tensor *lab = crl_tensor_new(CRL_INT32, CRL_CPU, 1, (int64_t[]){2});
    size_t n = 0;
    uint8_t *mat = NULL;
    if (crl_svhn_write(path_of("big.mat"), im, lab) == CRL_OK) mat = read_bytes(path_of("big.mat"), &n);
    static const uint8_t dims[16] = {32, 0, 0, 0, 32, 0, 0, 0, 3, 0, 0, 0, 2, 0, 0, 0};
    int patched = 0;
    for (size_t i = 0; mat && i + 16 <= n && !patched; i++)
        if (!memcmp(mat + i, dims, 16)) {
            mat[i + 12] = 0x40, mat[i + 13] = 0x42, mat[i + 14] = 0x0f; /* 1000000 */
            patched = 1;
        }
    if (mat) write_bytes(path_of("big.mat"), mat, n);
    ok(patched && fails_with(crl_svhn_read(im, lab, path_of("big.mat")), "cannot hold them"),
       "an SVHN file declaring 10^6 images in %zu bytes is refused as truncated: %s", n, crl_last_error());
    free(mat);
    /* found by fuzz_svhn: a complex X (matio's data is then a pair of
     * pointers) was read as its bytes, out of bounds */
    ok(fails_with(crl_svhn_read(im, lab, "tests/fuzz/corpus/svhn/complex-x.mat"), "X must be uint8"),
       "an SVHN file whose X is complex is refused: %s", crl_last_error());
    crl_tensor_free(im);
    crl_tensor_free(lab);
    crl_tensor_free(t);
}

int main(void)
{
    snprintf(dir, sizeof dir, "/tmp/crlab-formats-XXXXXX");
    if (mkdtemp(dir) == NULL) return 1;
    test_png();
    test_jpeg();
    test_cifar();
    test_svhn();
    test_mutations();
    test_crc32();
    test_fuzz_found();
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    if (system(cmd) != 0) diag("could not remove %s", dir);
    return done_testing();
}
