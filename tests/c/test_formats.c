/* test_formats.c -- image and dataset files written here in their exact
 * formats and read back: PNG (grey, RGB, RGBA, palette, 16-bit; written
 * with libpng directly), JPEG (baseline and progressive, grey and colour;
 * CMYK refused), CIFAR-10/100 records, SVHN and Stanford Cars .mat
 * (libmatio), and the errors for truncated, corrupt, mistyped or
 * incomplete files. */
#include <matio.h>
#include <png.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <turbojpeg.h>
#include <unistd.h>
#include <zlib.h>

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

/* ---- Stanford Cars: the devkit's .mat files -------------------------------------------- */

static crl_tensor *text_of(const char *s)
{
    int64_t n = (int64_t)strlen(s);
    crl_tensor *t = crl_tensor_new(CRL_UINT8, CRL_CPU, 1, &n);
    memcpy(crl_tensor_data(t), s, (size_t)n);
    return t;
}

static int text_is(const crl_tensor *t, const char *s)
{
    return t->ndim == 1 && t->sizes[0] == (int64_t)strlen(s) && !memcmp(crl_tensor_data(t), s, strlen(s));
}

/* 'annotations' of n entries written with matio directly: field `odd` (or
 * none) is replaced by `odd_value` in entry `at`, or left out when
 * odd_value is NULL; the fname is UTF-8 (MATLAB writes UTF-16) */
static void write_annos(const char *path, int n, const char *odd, matvar_t *odd_value, int at)
{
    const char *all[6] = {"bbox_x1", "bbox_y1", "bbox_x2", "bbox_y2", "class", "fname"}, *fields[7] = {NULL};
    int nf = 0;
    for (int f = 0; f < 6; f++)
        if (!(odd && !odd_value && !strcmp(all[f], odd))) fields[nf++] = all[f];
    size_t dims[2] = {1, (size_t)n}, one[2] = {1, 1};
    matvar_t *s = Mat_VarCreateStruct2("annotations", 2, dims, fields);
    for (int i = 0; i < n; i++)
        for (int f = 0; f < nf; f++) {
            matvar_t *e;
            if (odd && odd_value && i == at && !strcmp(fields[f], odd)) {
                e = odd_value;
            } else if (!strcmp(fields[f], "fname")) {
                char name[16];
                snprintf(name, sizeof name, "%05d.jpg", i + 1);
                size_t nd[2] = {1, strlen(name)};
                e = Mat_VarCreate(NULL, MAT_C_CHAR, MAT_T_UTF8, 2, nd, name, 0);
            } else {
                uint16_t v = (uint16_t)(!strcmp(fields[f], "class") ? 1 + i : 10 * (f + 1) + i);
                e = Mat_VarCreate(NULL, MAT_C_UINT16, MAT_T_UINT16, 2, one, &v, 0);
            }
            Mat_VarSetStructFieldByIndex(s, (size_t)f, (size_t)i, e);
        }
    mat_t *mat = Mat_CreateVer(path, NULL, MAT_FT_MAT5);
    Mat_VarWrite(mat, s, MAT_COMPRESSION_NONE);
    Mat_VarFree(s);
    Mat_Close(mat);
}

static void write_var(const char *path, matvar_t *v, int compress)
{
    mat_t *mat = Mat_CreateVer(path, NULL, MAT_FT_MAT5);
    Mat_VarWrite(mat, v, compress ? MAT_COMPRESSION_ZLIB : MAT_COMPRESSION_NONE);
    Mat_VarFree(v);
    Mat_Close(mat);
}

/* Replaces the first `len` bytes equal to `from` in a file by `to`. */
static int patch_file(const char *path, const void *from, const void *to, size_t len)
{
    size_t n;
    uint8_t *b = read_bytes(path, &n);
    int done = 0;
    for (size_t i = 0; i + len <= n && !done; i++)
        if (!memcmp(b + i, from, len)) memcpy(b + i, to, len), done = 1;
    write_bytes(path, b, n);
    free(b);
    return done;
}

/* Rewrites a plain level-5 file of one variable as MATLAB's -v7 does:
 * the variable's element zlib-compressed. */
static void compress_file(const char *from, const char *to)
{
    size_t n;
    uint8_t *b = read_bytes(from, &n);
    uLongf zn = compressBound((uLong)(n - 128));
    uint8_t *z = malloc(128 + 8 + zn);
    memcpy(z, b, 128);
    compress2(z + 136, &zn, b + 128, (uLong)(n - 128), 6);
    uint32_t tag[2] = {MAT_T_COMPRESSED, (uint32_t)zn};
    memcpy(z + 128, tag, 8);
    write_bytes(to, z, 136 + zn);
    free(z);
    free(b);
}

/* an unnamed double array (a struct field or cell) */
#define DOUBLES(dims, v) Mat_VarCreate(NULL, MAT_C_DOUBLE, MAT_T_DOUBLE, 2, dims, v, 0)

static void test_cars(void)
{
    int64_t n = 3, bs[2] = {3, 4};
    crl_tensor *lab = crl_tensor_new(CRL_INT32, CRL_CPU, 1, &n), *box = crl_tensor_new(CRL_FLOAT32, CRL_CPU, 2, bs);
    int32_t *l = crl_tensor_data(lab);
    float *b = crl_tensor_data(box);
    for (int i = 0; i < 3; i++) {
        l[i] = (int32_t)(195 - 97 * i); /* 195, 98, 1 */
        b[4 * i] = (float)(5 + i), b[4 * i + 1] = (float)(7 + i), b[4 * i + 2] = 30, b[4 * i + 3] = (float)(20 - i);
    }
    crl_tensor *names = text_of("00001.jpg\n00002.jpg\n08144.jpg");
    crl_tensor *l2 = crl_tensor_new(CRL_INT32, CRL_CPU, 0, NULL), *b2 = crl_tensor_new(CRL_FLOAT32, CRL_CPU, 0, NULL);
    crl_tensor *n2 = crl_tensor_new(CRL_UINT8, CRL_CPU, 0, NULL);
    for (int compress = 0; compress < 2; compress++) {
        const char *p = path_of(compress ? "annos_z.mat" : "annos.mat");
        int rc = crl_cars_annos_write(p, lab, box, names, compress);
        rc = rc ? rc : crl_cars_annos_read(l2, b2, n2, p, 196);
        ok(rc == CRL_OK && l2->sizes[0] == 3 && !memcmp(crl_tensor_data(l2), l, 12) && b2->sizes[0] == 3 &&
           !memcmp(crl_tensor_data(b2), b, 48) && text_is(n2, "00001.jpg\n00002.jpg\n08144.jpg"),
           "Cars annotations (%s) round-trip: labels, boxes (x, y, w, h) and file names: %s",
           compress ? "zlib-compressed, as MATLAB -v7" : "plain", rc ? crl_last_error() : "");
    }
    /* the file holds MATLAB's layout: 1xN struct, 1-based corners and classes */
    mat_t *mat = Mat_Open(path_of("annos.mat"), MAT_ACC_RDONLY);
    matvar_t *a = Mat_VarRead(mat, "annotations");
    Mat_Close(mat);
    char *const *fn = a ? Mat_VarGetStructFieldnames(a) : NULL;
    matvar_t *x1 = a ? Mat_VarGetStructFieldByName(a, "bbox_x1", 1) : NULL;
    matvar_t *y2 = a ? Mat_VarGetStructFieldByName(a, "bbox_y2", 1) : NULL;
    matvar_t *cl = a ? Mat_VarGetStructFieldByName(a, "class", 0) : NULL;
    ok(a && a->class_type == MAT_C_STRUCT && a->rank == 2 && a->dims[0] == 1 && a->dims[1] == 3 &&
       Mat_VarGetNumberOfFields(a) == 6 && !strcmp(fn[0], "bbox_x1") && !strcmp(fn[5], "fname") && x1 && y2 && cl &&
       *(double *)x1->data == 7 && *(double *)y2->data == 8 + 19 && *(double *)cl->data == 196,
       "the file holds a 1x3 struct with bbox_x1 = x + 1, bbox_y2 = y + h, class = label + 1");
    Mat_VarFree(a);
    crl_tensor *cn = text_of("AM General Hummer SUV 2000\nCitro\xc3\xabn C5 2003\nsmart fortwo Convertible 2012");
    int rc = crl_cars_meta_write(path_of("meta.mat"), cn, 1);
    rc = rc ? rc : crl_cars_meta_read(n2, path_of("meta.mat"));
    ok(rc == CRL_OK && text_is(n2, "AM General Hummer SUV 2000\nCitro\xc3\xabn C5 2003\nsmart fortwo Convertible 2012"),
       "cars_meta.mat class_names (a cell of UTF-16 char arrays, as MATLAB) reads back as UTF-8: %s",
       rc ? crl_last_error() : "");
    /* matio's own char storage, UTF-8, and integer classes (uint16 here) */
    write_annos(path_of("utf8.mat"), 2, NULL, NULL, 0);
    rc = crl_cars_annos_read(l2, b2, n2, path_of("utf8.mat"), 196);
    float *bb = crl_tensor_data(b2);
    ok(rc == CRL_OK && text_is(n2, "00001.jpg\n00002.jpg") && ((int32_t *)crl_tensor_data(l2))[1] == 1 &&
       bb[4] == 10 && bb[5] == 20 && bb[6] == 31 - 11 + 1 && bb[7] == 41 - 21 + 1,
       "annotations with uint16 numbers and UTF-8 names read as well: %s", rc ? crl_last_error() : "");

    /* a file written on a big-endian machine ('MI'; tests/fuzz/make_corpus.lua swaps a plain one) */
    rc = crl_cars_annos_read(l2, b2, n2, "tests/fuzz/corpus/cars/annos-be.mat", 196);
    bb = crl_tensor_data(b2);
    ok(rc == CRL_OK && text_is(n2, "00001.jpg\n08144.jpg") && ((int32_t *)crl_tensor_data(l2))[1] == 195 &&
       bb[0] == 3 && bb[1] == 4 && bb[2] == 10 && bb[3] == 6 && bb[6] == 16 && bb[7] == 12,
       "big-endian annotations read the same: %s", rc ? crl_last_error() : "");
    rc = crl_cars_meta_read(n2, "tests/fuzz/corpus/cars/meta-be.mat");
    ok(rc == CRL_OK && text_is(n2, "AM General Hummer SUV 2000\nCitro\xc3\xabn C5 2003\nsmart fortwo Convertible 2012"),
       "big-endian class names read the same: %s", rc ? crl_last_error() : "");

    /* each damage refused with the file, the entry and the field */
    size_t one[2] = {1, 1}, three[2] = {1, 3};
    write_annos(path_of("noclass.mat"), 2, "class", NULL, 0);
    ok(fails_with(crl_cars_annos_read(l2, b2, n2, path_of("noclass.mat"), 196), "annotations has no field 'class'") &&
       strstr(crl_last_error(), "cars_test_annos_withlabels.mat") && strstr(crl_last_error(), "noclass.mat"),
       "annotations without 'class' (the devkit's label-less test file) is refused with a hint: %s",
       crl_last_error());
    write_annos(path_of("charclass.mat"), 3, "class", Mat_VarCreate(NULL, MAT_C_CHAR, MAT_T_UINT8, 2, one, "7", 0), 1);
    ok(fails_with(crl_cars_annos_read(l2, b2, n2, path_of("charclass.mat"), 196),
                  "annotations(2).class must be a real number (1x1), got a 1x1 char array"),
       "a class stored as text is refused naming the entry: %s", crl_last_error());
    double v3[3] = {1, 2, 3}, big = 197, frac = 2.5, neg = -1, wide = 5, nan = NAN;
    write_annos(path_of("vecbox.mat"), 3, "bbox_y1", DOUBLES(three, v3), 2);
    ok(fails_with(crl_cars_annos_read(l2, b2, n2, path_of("vecbox.mat"), 196),
                  "annotations(3).bbox_y1 must be a real number (1x1), got a 1x3 double array"),
       "a 1x3 bbox_y1 is refused: %s", crl_last_error());
    write_annos(path_of("big.mat"), 2, "class", DOUBLES(one, &big), 1);
    ok(fails_with(crl_cars_annos_read(l2, b2, n2, path_of("big.mat"), 196),
                  "annotations(2).class = 197 is not a class in 1..196"), "class 197 of 196 is refused: %s",
       crl_last_error());
    ok(fails_with(crl_cars_annos_read(l2, b2, n2, path_of("utf8.mat"), 1), "annotations(2).class = 2 is not a class "
                  "in 1..1"), "a class beyond the class names given is refused: %s", crl_last_error());
    write_annos(path_of("frac.mat"), 2, "class", DOUBLES(one, &frac), 0);
    ok(fails_with(crl_cars_annos_read(l2, b2, n2, path_of("frac.mat"), 196), "class = 2.5 is not a class"),
       "a fractional class is refused: %s", crl_last_error());
    write_annos(path_of("neg.mat"), 2, "bbox_x2", DOUBLES(one, &neg), 0);
    ok(fails_with(crl_cars_annos_read(l2, b2, n2, path_of("neg.mat"), 196), "annotations(1).bbox_x2 = -1 is not a "
                  "pixel coordinate"), "a negative corner is refused: %s", crl_last_error());
    write_annos(path_of("nan.mat"), 2, "bbox_y2", DOUBLES(one, &nan), 1);
    ok(fails_with(crl_cars_annos_read(l2, b2, n2, path_of("nan.mat"), 196), "annotations(2).bbox_y2 = nan"),
       "a NaN corner is refused: %s", crl_last_error());
    write_annos(path_of("flip.mat"), 2, "bbox_x2", DOUBLES(one, &wide), 0);
    ok(fails_with(crl_cars_annos_read(l2, b2, n2, path_of("flip.mat"), 196), "annotations(1) has the box (10, 20)-(5, "
                  "40): x2 and y2 must not be less than x1 and y1"), "a box with x2 < x1 is refused: %s",
       crl_last_error());
    write_annos(path_of("numname.mat"), 2, "fname", DOUBLES(one, &big), 1);
    ok(fails_with(crl_cars_annos_read(l2, b2, n2, path_of("numname.mat"), 196), "annotations(2).fname must be a 1xL "
                  "char array (a file name without line breaks), got a 1x1 double array"),
       "a number for a file name is refused: %s", crl_last_error());
    size_t nl[2] = {1, 5};
    write_annos(path_of("nlname.mat"), 2, "fname", Mat_VarCreate(NULL, MAT_C_CHAR, MAT_T_UINT8, 2, nl, "a\nb.j", 0), 0);
    ok(fails_with(crl_cars_annos_read(l2, b2, n2, path_of("nlname.mat"), 196), "annotations(1).fname must be"),
       "a file name with a line break is refused: %s", crl_last_error());
    write_var(path_of("matrix.mat"), Mat_VarCreate("annotations", MAT_C_DOUBLE, MAT_T_DOUBLE, 2, three, v3, 0), 0);
    ok(fails_with(crl_cars_annos_read(l2, b2, n2, path_of("matrix.mat"), 196), "annotations must be a 1xN struct "
                  "array, got a 1x3 double array"), "annotations that are not a struct are refused: %s",
       crl_last_error());
    ok(fails_with(crl_cars_annos_read(l2, b2, n2, path_of("meta.mat"), 196), "meta.mat' has no variable 'annotations'"),
       "the class-names file given for the annotations is refused: %s", crl_last_error());
    ok(fails_with(crl_cars_meta_read(n2, path_of("annos.mat")), "has no variable 'class_names'"),
       "and the other way round: %s", crl_last_error());
    ok(fails_with(crl_cars_annos_read(l2, b2, n2, path_of("nothing.mat"), 196), "cannot open") &&
       strstr(crl_last_error(), "nothing.mat"), "a missing file is named: %s", crl_last_error());
    ok(fails_with(crl_cars_annos_read(l2, b2, n2, path_of("annos.mat"), 0), "classes must be in 1..100000"),
       "classes = 0 is an argument error: %s", crl_last_error());
    write_var(path_of("meta_num.mat"), Mat_VarCreate("class_names", MAT_C_DOUBLE, MAT_T_DOUBLE, 2, three, v3, 0), 1);
    ok(fails_with(crl_cars_meta_read(n2, path_of("meta_num.mat")), "class_names must be a 1xK cell array"),
       "class_names that are numbers are refused: %s", crl_last_error());
    matvar_t *cell = Mat_VarCreate("class_names", MAT_C_CELL, MAT_T_CELL, 2, three, NULL, 0);
    Mat_VarSetCell(cell, 0, Mat_VarCreate(NULL, MAT_C_CHAR, MAT_T_UINT8, 2, nl, "Acura", 0));
    Mat_VarSetCell(cell, 1, DOUBLES(one, &big));
    Mat_VarSetCell(cell, 2, Mat_VarCreate(NULL, MAT_C_CHAR, MAT_T_UINT8, 2, nl, "Buick", 0));
    write_var(path_of("meta_cell.mat"), cell, 0);
    ok(fails_with(crl_cars_meta_read(n2, path_of("meta_cell.mat")), "class_names{2} must be a 1xL char array"),
       "a class name that is a number is refused naming the cell: %s", crl_last_error());
    write_bytes(path_of("v73.mat"), "MATLAB 7.3 MAT-file", 19);
    ok(fails_with(crl_cars_meta_read(n2, path_of("v73.mat")), "is not a MATLAB level-5 file"),
       "a file without the level-5 header is refused: %s", crl_last_error());
    uint8_t hdr[128];
    memset(hdr, ' ', 128);
    hdr[124] = 0, hdr[125] = 2, hdr[126] = 'I', hdr[127] = 'M';
    write_bytes(path_of("hdf5.mat"), hdr, 128);
    ok(fails_with(crl_cars_meta_read(n2, path_of("hdf5.mat")), "version 0x0200 (7.3, HDF5); crlab reads level-5"),
       "a MATLAB 7.3 (HDF5) file is refused with what to do: %s", crl_last_error());

    /* what a damaged header declares is checked before matio allocates it */
    const uint8_t dims3[8] = {1, 0, 0, 0, 3, 0, 0, 0}, dims_huge[8] = {1, 0, 0, 0, 0, 0xe1, 0xf5, 0x05}; /* 10^8 */
    crl_cars_annos_write(path_of("huge.mat"), lab, box, names, 0);
    int patched = patch_file(path_of("huge.mat"), dims3, dims_huge, 8);
    compress_file(path_of("huge.mat"), path_of("huge_z.mat"));
    ok(patched && fails_with(crl_cars_annos_read(l2, b2, n2, path_of("huge.mat"), 196), "declares 600000000 cell or "
                             "struct entries in"), "a 1x3 struct whose header declares 1x10^8 is refused "
       "before matio allocates 6x10^8 fields: %s", crl_last_error());
    ok(fails_with(crl_cars_annos_read(l2, b2, n2, path_of("huge_z.mat"), 196), "declares 600000000 cell or "
                  "struct entries"), "and so is its compressed form: %s", crl_last_error());
    /* a file name whose data tag declares 2^31 bytes (matio allocates a char array by its tag) */
    crl_cars_annos_write(path_of("longname.mat"), lab, box, names, 0);
    const uint8_t utag[8] = {MAT_T_UINT16, 0, 0, 0, 18, 0, 0, 0}, utag_big[8] = {MAT_T_UINT16, 0, 0, 0, 0, 0, 0, 0x80};
    patched = patch_file(path_of("longname.mat"), utag, utag_big, 8);
    ok(patched && fails_with(crl_cars_annos_read(l2, b2, n2, path_of("longname.mat"), 196), "declares 2147483648 data "
                             "bytes"), "a char array whose data tag declares 2^31 bytes is refused: %s",
       crl_last_error());
    /* cells nested 10 deep */
    matvar_t *deep = Mat_VarCreate(NULL, MAT_C_CHAR, MAT_T_UINT8, 2, nl, "Acura", 0);
    for (int d = 0; d < 10; d++) {
        matvar_t *c = Mat_VarCreate(d == 9 ? "class_names" : NULL, MAT_C_CELL, MAT_T_CELL, 2, one, NULL, 0);
        Mat_VarSetCell(c, 0, deep);
        deep = c;
    }
    write_var(path_of("deep.mat"), deep, 0);
    ok(fails_with(crl_cars_meta_read(n2, path_of("deep.mat")), "nests arrays more than 8 deep"),
       "cells nested 10 deep are refused: %s", crl_last_error());
    write_annos(path_of("cut.mat"), 3, NULL, NULL, 0);
    size_t cn_len;
    uint8_t *cut = read_bytes(path_of("cut.mat"), &cn_len);
    write_bytes(path_of("cut.mat"), cut, cn_len - 20);
    free(cut);
    ok(fails_with(crl_cars_annos_read(l2, b2, n2, path_of("cut.mat"), 196), "is truncated"),
       "a cut annotations file is refused as truncated: %s", crl_last_error());

    /* random byte flips and cuts of both forms: a result or a message, never a crash */
    int runs = 0, refused = 0, silent = 0;
    unsigned seed = 777;
    for (int k = 0; k < 2; k++) {
        size_t len;
        uint8_t *orig = read_bytes(path_of(k ? "annos_z.mat" : "annos.mat"), &len);
        uint8_t *buf = malloc(len);
        for (int r = 0; r < 200; r++) {
            memcpy(buf, orig, len);
            size_t m = len;
            int flips = 1 + (int)((seed = seed * 1103515245u + 12345u) >> 16) % 6;
            for (int f = 0; f < flips; f++) {
                seed = seed * 1103515245u + 12345u;
                buf[128 + (seed >> 8) % (len - 128)] ^= (uint8_t)(1 + (seed >> 20) % 255);
            }
            if (r % 4 == 0) m = 128 + (seed >> 4) % (len - 128);
            write_bytes(path_of("mutated.mat"), buf, m);
            int rc2 = crl_cars_annos_read(l2, b2, n2, path_of("mutated.mat"), 196);
            runs++;
            if (rc2 != CRL_OK) {
                refused++;
                if (crl_last_error()[0] == 0) silent++;
            }
        }
        free(buf);
        free(orig);
    }
    ok(runs == 400 && silent == 0, "400 mutated or cut annotation files: no crash, %d refused with a message, %d read",
       refused, runs - refused);
    crl_tensor_free(cn);
    crl_tensor_free(lab);
    crl_tensor_free(box);
    crl_tensor_free(names);
    crl_tensor_free(l2);
    crl_tensor_free(b2);
    crl_tensor_free(n2);
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
    /* found by fuzz_cars: a 1x0 char array whose data tag declares 2^32 - 2
     * bytes (matio allocates a char array by its tag, whatever its size) */
    ok(fails_with(crl_cars_meta_read(t, "tests/fuzz/corpus/cars/empty-char-huge-tag.mat"),
                  "declares 4294967294 data bytes in 64 bytes"),
       "a Cars class name of 0 characters declaring 2^32 - 2 bytes is refused: %s", crl_last_error());
    /* found by fuzz_cars: a variable whose tag declares 0 bytes (matio reads
     * flags, dimensions and name from what follows, then allocated 7 GB) */
    compress_file("tests/fuzz/corpus/cars/empty-variable.mat", path_of("empty-variable-z.mat"));
    ok(fails_with(crl_cars_meta_read(t, "tests/fuzz/corpus/cars/empty-variable.mat"), "broken array flags in "
                  "variable at byte 128") &&
       fails_with(crl_cars_meta_read(t, path_of("empty-variable-z.mat")), "broken array flags in variable at byte 128"),
       "a variable of 0 bytes is refused, plain and compressed: %s", crl_last_error());
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
    test_cars();
    test_mutations();
    test_crc32();
    test_fuzz_found();
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    if (system(cmd) != 0) diag("could not remove %s", dir);
    return done_testing();
}
