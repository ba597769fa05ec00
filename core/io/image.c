/* io/image.c -- PNG through libpng and JPEG through libjpeg-turbo's
 * TurboJPEG API, into uint8 (C, H, W) tensors; PNG writing.
 *
 * libpng reports errors by longjmp to a setjmp point; that jump never
 * leaves this file: each libpng call sequence sits in one function with its
 * own setjmp, and becomes a status and a message like everywhere else. */
#include <png.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <turbojpeg.h>

#include "../internal.h"

static int check_channels(int channels, const char *func)
{
    if (channels != 0 && channels != 1 && channels != 3)
        return crl_fail(CRL_ERR_ARG, func, "channels must be 0 (as stored), 1 or 3, got %d", channels);
    return CRL_OK;
}

/* interleaved (H, W, C) -> planes (C, H, W); one pass per pixel, the
 * common 1 and 3 channel cases without an inner channel loop */
static void to_planes(uint8_t *dst, const uint8_t *src, int64_t h, int64_t w, int64_t c)
{
    int64_t n = h * w;
    if (c == 1) {
        memcpy(dst, src, (size_t)n);
    } else if (c == 3) {
        uint8_t *r = dst, *g = dst + n, *b = dst + 2 * n;
        for (int64_t i = 0; i < n; i++) {
            r[i] = src[3 * i];
            g[i] = src[3 * i + 1];
            b[i] = src[3 * i + 2];
        }
    } else {
        for (int64_t i = 0; i < n; i++)
            for (int64_t k = 0; k < c; k++) dst[k * n + i] = src[i * c + k];
    }
}

/* ---- PNG ------------------------------------------------------------------------- */

typedef struct {
    const uint8_t *data;
    size_t size, pos;
} mem_reader;

static void png_mem_read(png_structp png, png_bytep out, png_size_t n)
{
    mem_reader *r = png_get_io_ptr(png);
    if (r->pos + n > r->size) png_error(png, "the data ends early (truncated file)");
    memcpy(out, r->data + r->pos, n);
    r->pos += n;
}

typedef struct {
    char msg[256];
} png_err;

static void png_on_error(png_structp png, png_const_charp msg)
{
    png_err *e = png_get_error_ptr(png);
    snprintf(e->msg, sizeof e->msg, "%s", msg);
    png_longjmp(png, 1);
}

static void png_on_warning(png_structp png, png_const_charp msg)
{
    (void)png;
    (void)msg;
}

static int decode_png(crl_tensor *out, const uint8_t *data, int64_t nbytes, int channels, const char *name,
                      const char *func)
{
    png_err err = {{0}};
    mem_reader reader = {data, (size_t)nbytes, 0};
    png_structp png = png_create_read_struct(PNG_LIBPNG_VER_STRING, &err, png_on_error, png_on_warning);
    if (png == NULL) return crl_fail(CRL_ERR_NOMEM, func, "cannot create a PNG reader for '%s'", name);
    png_infop info = png_create_info_struct(png);
    uint8_t *volatile pixels = NULL;
    png_bytep *volatile rows = NULL;
    volatile int rc = CRL_OK;
    if (info == NULL) {
        png_destroy_read_struct(&png, NULL, NULL);
        return crl_fail(CRL_ERR_NOMEM, func, "cannot create a PNG reader for '%s'", name);
    }
    if (setjmp(png_jmpbuf(png))) {
        rc = crl_fail(CRL_ERR_IO, func, "'%s' is not a readable PNG: %s", name, err.msg);
    } else {
        png_set_read_fn(png, &reader, png_mem_read);
        png_set_user_limits(png, 1 << 16, 1 << 16);
        png_read_info(png, info);
        png_uint_32 w = png_get_image_width(png, info), h = png_get_image_height(png, info);
        int color = png_get_color_type(png, info), depth = png_get_bit_depth(png, info);
        if (depth == 16) png_set_strip_16(png);
        if (color == PNG_COLOR_TYPE_PALETTE) png_set_palette_to_rgb(png);
        if (color == PNG_COLOR_TYPE_GRAY && depth < 8) png_set_expand_gray_1_2_4_to_8(png);
        png_set_strip_alpha(png);
        int is_gray = color == PNG_COLOR_TYPE_GRAY || color == PNG_COLOR_TYPE_GRAY_ALPHA;
        int want = channels ? channels : (is_gray ? 1 : 3);
        if (want == 3 && is_gray) png_set_gray_to_rgb(png);
        if (want == 1 && !is_gray) png_set_rgb_to_gray_fixed(png, 1, -1, -1);
        png_read_update_info(png, info);
        int got = png_get_channels(png, info);
        if (got != want) png_error(png, "unexpected channel count after conversion");
        /* zlib packs at most 1032 bytes into one: the rows (a filter
         * byte and at least w/8 bytes each) must fit the file */
        if ((uint64_t)h * ((w + 7) / 8 + 1) > (uint64_t)nbytes * 1032)
            png_error(png, "its size cannot be coded in the file's bytes (truncated file)");
        size_t stride = png_get_rowbytes(png, info);
        pixels = malloc(stride * h);
        rows = malloc(sizeof(png_bytep) * h);
        if (pixels == NULL || rows == NULL) png_error(png, "out of memory");
        for (png_uint_32 y = 0; y < h; y++) rows[y] = pixels + y * stride;
        png_read_image(png, rows);
        int64_t size[3] = {want, h, w};
        rc = crl_prepare(out, CRL_UINT8, CRL_CPU, 3, size);
        if (rc == CRL_OK) to_planes(crl_tensor_data(out), pixels, h, w, want);
    }
    png_destroy_read_struct(&png, &info, NULL);
    free(pixels);
    free(rows);
    return rc;
}

/* ---- JPEG -------------------------------------------------------------------------- */

static int decode_jpeg(crl_tensor *out, const uint8_t *data, int64_t nbytes, int channels, const char *name,
                       const char *func)
{
    tjhandle tj = tjInitDecompress();
    if (tj == NULL) return crl_fail(CRL_ERR_NOMEM, func, "cannot create a JPEG decoder for '%s'", name);
    int w = 0, h = 0, subsamp = 0, colorspace = 0, rc = CRL_OK;
    uint8_t *pixels = NULL;
    if (tjDecompressHeader3(tj, data, (unsigned long)nbytes, &w, &h, &subsamp, &colorspace) != 0) {
        rc = crl_fail(CRL_ERR_IO, func, "'%s' is not a readable JPEG: %s", name, tjGetErrorStr2(tj));
    } else if (w < 1 || h < 1) { /* a header cut short may "succeed" without a frame */
        rc = crl_fail(CRL_ERR_IO, func, "'%s' is not a readable JPEG: it ends before its frame header", name);
    } else if (colorspace == TJCS_CMYK || colorspace == TJCS_YCCK) {
        rc = crl_fail(CRL_ERR_UNSUPPORTED, func, "'%s' is a CMYK JPEG; convert it to RGB first "
                      "(e.g. convert in.jpg -colorspace sRGB out.jpg)", name);
    } else if ((int64_t)w * h > nbytes * 8192) {
        /* every 8x8 block of a component costs at least a bit (its DC
         * code) and a component may be sampled 4x4 coarser: a header that
         * promises more pixels comes with a file too short to hold them */
        rc = crl_fail(CRL_ERR_IO, func, "'%s' is a corrupt or truncated JPEG: %dx%d pixels cannot be coded in %lld "
                      "bytes", name, w, h, (long long)nbytes);
    } else {
        int want = channels ? channels : (colorspace == TJCS_GRAY ? 1 : 3);
        pixels = malloc((size_t)w * (size_t)h * (size_t)want);
        if (pixels == NULL) {
            rc = crl_fail(CRL_ERR_NOMEM, func, "out of memory decoding '%s' (%dx%d)", name, w, h);
        } else if (tjDecompress2(tj, data, (unsigned long)nbytes, pixels, w, 0, h,
                                 want == 1 ? TJPF_GRAY : TJPF_RGB, TJFLAG_ACCURATEDCT | TJFLAG_STOPONWARNING) != 0) {
            rc = crl_fail(CRL_ERR_IO, func, "'%s' is a corrupt or truncated JPEG: %s", name, tjGetErrorStr2(tj));
        } else {
            int64_t size[3] = {want, h, w};
            rc = crl_prepare(out, CRL_UINT8, CRL_CPU, 3, size);
            if (rc == CRL_OK) to_planes(crl_tensor_data(out), pixels, h, w, want);
        }
    }
    free(pixels);
    tjDestroy(tj);
    return rc;
}

int crl_image_decode(crl_tensor *out, const uint8_t *data, int64_t nbytes, int channels, const char *name)
{
    CHECK_TENSOR(out, "out");
    if (name == NULL) name = "(memory)";
    int rc = check_channels(channels, __func__);
    if (rc) return rc;
    if (data == NULL || nbytes < 4)
        return crl_fail(CRL_ERR_IO, __func__, "'%s' is empty or too short to be an image (%lld bytes)", name,
                        (long long)nbytes);
    static const uint8_t png_sig[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
    if (nbytes >= 8 && memcmp(data, png_sig, 8) == 0) return decode_png(out, data, nbytes, channels, name, __func__);
    if (data[0] == 0xFF && data[1] == 0xD8 && data[2] == 0xFF)
        return decode_jpeg(out, data, nbytes, channels, name, __func__);
    return crl_fail(CRL_ERR_UNSUPPORTED, __func__, "'%s' is neither PNG nor JPEG (first bytes %02x %02x %02x %02x)",
                    name, data[0], data[1], data[2], data[3]);
}

int crl_image_read(crl_tensor *out, const char *path, int channels)
{
    CHECK_TENSOR(out, "out");
    if (path == NULL) return crl_fail(CRL_ERR_ARG, __func__, "argument 'path' is NULL");
    FILE *f = fopen(path, "rb");
    if (f == NULL) return crl_fail(CRL_ERR_IO, __func__, "cannot open '%s'", path);
    uint8_t *buf = NULL;
    long size = -1;
    if (fseek(f, 0, SEEK_END) == 0) size = ftell(f);
    int rc = CRL_OK;
    if (size < 0 || fseek(f, 0, SEEK_SET) != 0) {
        rc = crl_fail(CRL_ERR_IO, __func__, "cannot read '%s'", path);
    } else if ((buf = malloc(size > 0 ? (size_t)size : 1)) == NULL) {
        rc = crl_fail(CRL_ERR_NOMEM, __func__, "out of memory reading '%s' (%ld bytes)", path, size);
    } else if (fread(buf, 1, (size_t)size, f) != (size_t)size) {
        rc = crl_fail(CRL_ERR_IO, __func__, "short read from '%s'", path);
    }
    fclose(f);
    if (rc == CRL_OK) rc = crl_image_decode(out, buf, size, channels, path);
    free(buf);
    return rc;
}

/* ---- PNG writing ----------------------------------------------------------------------- */

static int write_png_file(FILE *f, const uint8_t *pixels, int64_t c, int64_t h, int64_t w, png_err *err)
{
    png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, err, png_on_error, png_on_warning);
    if (png == NULL) return -1;
    png_infop info = png_create_info_struct(png);
    uint8_t *volatile row = NULL;
    volatile int failed = 0;
    if (info == NULL || setjmp(png_jmpbuf(png))) {
        failed = 1;
    } else {
        png_init_io(png, f);
        int types[5] = {0, PNG_COLOR_TYPE_GRAY, PNG_COLOR_TYPE_GRAY_ALPHA, PNG_COLOR_TYPE_RGB, PNG_COLOR_TYPE_RGBA};
        png_set_IHDR(png, info, (png_uint_32)w, (png_uint_32)h, 8, types[c], PNG_INTERLACE_NONE,
                     PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
        png_write_info(png, info);
        row = malloc((size_t)(w * c));
        if (row == NULL) png_error(png, "out of memory");
        for (int64_t y = 0; y < h; y++) {
            for (int64_t x = 0; x < w; x++)
                for (int64_t k = 0; k < c; k++) row[x * c + k] = pixels[(k * h + y) * w + x];
            png_write_row(png, row);
        }
        png_write_end(png, NULL);
    }
    free(row);
    png_destroy_write_struct(&png, info ? &info : NULL);
    return failed ? -1 : 0;
}

int crl_image_write_png(const char *path, const crl_tensor *image)
{
    CHECK_TENSOR(image, "image");
    if (path == NULL) return crl_fail(CRL_ERR_ARG, __func__, "argument 'path' is NULL");
    int rc = crl_require_host(image, __func__, "image");
    if (rc) return rc;
    if (image->dtype != CRL_UINT8 || image->ndim != 3 || !crl_tensor_is_contiguous(image) ||
        (image->sizes[0] != 1 && image->sizes[0] != 3 && image->sizes[0] != 4) || image->sizes[1] < 1 ||
        image->sizes[2] < 1)
        return crl_fail(CRL_ERR_SHAPE, __func__, "image must be a contiguous uint8 (C, H, W) with C = 1, 3 or 4, "
                        "got %s %s", crl_dtype_name(image->dtype), crl_shape(image));
    size_t n = strlen(path);
    char *tmp = malloc(n + 5);
    if (tmp == NULL) return crl_fail(CRL_ERR_NOMEM, __func__, "out of memory");
    memcpy(tmp, path, n);
    memcpy(tmp + n, ".tmp", 5);
    FILE *f = fopen(tmp, "wb");
    if (f == NULL) {
        rc = crl_fail(CRL_ERR_IO, __func__, "cannot write '%s'", tmp);
        free(tmp);
        return rc;
    }
    png_err err = {{0}};
    int failed = write_png_file(f, crl_tensor_data(image), image->sizes[0], image->sizes[1], image->sizes[2], &err);
    if (fclose(f) != 0) failed = 1;
    if (failed) {
        remove(tmp);
        rc = crl_fail(CRL_ERR_IO, __func__, "writing '%s' failed: %s", path, err.msg[0] ? err.msg : "I/O error");
    } else if (rename(tmp, path) != 0) {
        remove(tmp);
        rc = crl_fail(CRL_ERR_IO, __func__, "cannot rename '%s' to '%s'", tmp, path);
    }
    free(tmp);
    return rc;
}

int crl_image_write_jpeg(const char *path, const crl_tensor *image, int quality, int progressive)
{
    CHECK_TENSOR(image, "image");
    if (path == NULL) return crl_fail(CRL_ERR_ARG, __func__, "argument 'path' is NULL");
    int rc = crl_require_host(image, __func__, "image");
    if (rc) return rc;
    if (image->dtype != CRL_UINT8 || image->ndim != 3 || !crl_tensor_is_contiguous(image) ||
        (image->sizes[0] != 1 && image->sizes[0] != 3) || image->sizes[1] < 1 || image->sizes[2] < 1)
        return crl_fail(CRL_ERR_SHAPE, __func__, "image must be a contiguous uint8 (C, H, W) with C = 1 or 3, got %s %s",
                        crl_dtype_name(image->dtype), crl_shape(image));
    if (quality < 1 || quality > 100) return crl_fail(CRL_ERR_ARG, __func__, "quality %d is outside 1..100", quality);
    int64_t c = image->sizes[0], h = image->sizes[1], w = image->sizes[2];
    uint8_t *inter = malloc((size_t)(c * h * w));
    if (inter == NULL) return crl_fail(CRL_ERR_NOMEM, __func__, "out of memory");
    const uint8_t *src = crl_tensor_data(image);
    for (int64_t y = 0; y < h; y++)
        for (int64_t x = 0; x < w; x++)
            for (int64_t k = 0; k < c; k++) inter[(y * w + x) * c + k] = src[(k * h + y) * w + x];
    tjhandle tj = tjInitCompress();
    unsigned char *jpeg = NULL;
    unsigned long size = 0;
    if (tj == NULL) {
        rc = crl_fail(CRL_ERR_NOMEM, __func__, "cannot create a JPEG encoder");
    } else if (tjCompress2(tj, inter, (int)w, 0, (int)h, c == 1 ? TJPF_GRAY : TJPF_RGB, &jpeg, &size,
                           c == 1 ? TJSAMP_GRAY : TJSAMP_420, quality,
                           TJFLAG_ACCURATEDCT | (progressive ? TJFLAG_PROGRESSIVE : 0)) != 0) {
        rc = crl_fail(CRL_ERR_IO, __func__, "encoding '%s' failed: %s", path, tjGetErrorStr2(tj));
    } else {
        FILE *f = fopen(path, "wb");
        if (f == NULL || fwrite(jpeg, 1, size, f) != size) rc = crl_fail(CRL_ERR_IO, __func__, "cannot write '%s'", path);
        if (f && fclose(f) != 0 && rc == CRL_OK) rc = crl_fail(CRL_ERR_IO, __func__, "cannot write '%s'", path);
    }
    tjFree(jpeg);
    if (tj) tjDestroy(tj);
    free(inter);
    return rc;
}
