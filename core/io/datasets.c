/* io/datasets.c -- the binary dataset formats read in C: CIFAR-10/100
 * records, SVHN format 2 and the Stanford Cars devkit's MATLAB files
 * (through libmatio, after a check of what their headers declare), and
 * sorted folder listings for the image-folder datasets. */
#include <dirent.h>
#include <matio.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include "../internal.h"

int crl_cifar_read(crl_tensor *images, crl_tensor *labels, const char *path, int label_bytes, int which)
{
    CHECK_TENSOR(images, "images");
    CHECK_TENSOR(labels, "labels");
    if (path == NULL) return crl_fail(CRL_ERR_ARG, __func__, "argument 'path' is NULL");
    if ((label_bytes != 1 && label_bytes != 2) || (which != 0 && which != 1) || (label_bytes == 1 && which))
        return crl_fail(CRL_ERR_ARG, __func__, "label_bytes must be 1 (CIFAR-10) or 2 (CIFAR-100) and which 0 "
                        "(fine) or 1 (coarse, CIFAR-100 only); got %d, %d", label_bytes, which);
    FILE *f = fopen(path, "rb");
    if (f == NULL) return crl_fail(CRL_ERR_IO, __func__, "cannot open '%s'", path);
    long size = -1;
    if (fseek(f, 0, SEEK_END) == 0) size = ftell(f);
    int64_t rec = label_bytes + 3072;
    int rc = CRL_OK;
    if (size < 0 || fseek(f, 0, SEEK_SET) != 0) {
        rc = crl_fail(CRL_ERR_IO, __func__, "cannot read '%s'", path);
    } else if (size == 0 || size % rec != 0) {
        rc = crl_fail(CRL_ERR_IO, __func__, "'%s' holds %ld bytes: record %ld is incomplete (CIFAR-%s records are "
                      "%lld bytes; truncated download?)", path, size, size / rec, label_bytes == 1 ? "10" : "100",
                      (long long)rec);
    }
    int64_t n = rc == CRL_OK ? size / rec : 0;
    int64_t isz[4] = {n, 3, 32, 32};
    if (rc == CRL_OK && (rc = crl_prepare(images, CRL_UINT8, CRL_CPU, 4, isz)) == CRL_OK)
        rc = crl_prepare(labels, CRL_INT32, CRL_CPU, 1, &n);
    uint8_t *img = rc == CRL_OK ? crl_tensor_data(images) : NULL;
    int32_t *lab = rc == CRL_OK ? crl_tensor_data(labels) : NULL;
    int limit = label_bytes == 1 ? 10 : which ? 20 : 100;
    for (int64_t i = 0; rc == CRL_OK && i < n; i++) {
        uint8_t head[2];
        if (fread(head, 1, (size_t)label_bytes, f) != (size_t)label_bytes ||
            fread(img + i * 3072, 1, 3072, f) != 3072) {
            rc = crl_fail(CRL_ERR_IO, __func__, "short read in '%s' at record %lld", path, (long long)i);
            break;
        }
        int v = label_bytes == 1 ? head[0] : head[which ? 0 : 1];
        if (v >= limit)
            rc = crl_fail(CRL_ERR_IO, __func__, "'%s' record %lld has label %d, outside 0..%d", path, (long long)i,
                          v, limit - 1);
        lab[i] = v;
    }
    fclose(f);
    return rc;
}

/* ---- SVHN -------------------------------------------------------------------------- */

static double mat_number(const matvar_t *v, size_t i)
{
    switch (v->class_type) {
    case MAT_C_DOUBLE: return ((const double *)v->data)[i];
    case MAT_C_SINGLE: return ((const float *)v->data)[i];
    case MAT_C_INT8: return ((const int8_t *)v->data)[i];
    case MAT_C_UINT8: return ((const uint8_t *)v->data)[i];
    case MAT_C_INT16: return ((const int16_t *)v->data)[i];
    case MAT_C_UINT16: return ((const uint16_t *)v->data)[i];
    case MAT_C_INT32: return ((const int32_t *)v->data)[i];
    case MAT_C_UINT32: return ((const uint32_t *)v->data)[i];
    case MAT_C_INT64: return (double)((const int64_t *)v->data)[i];
    case MAT_C_UINT64: return (double)((const uint64_t *)v->data)[i];
    default: return -1;
    }
}

int crl_svhn_read(crl_tensor *images, crl_tensor *labels, const char *path)
{
    CHECK_TENSOR(images, "images");
    CHECK_TENSOR(labels, "labels");
    if (path == NULL) return crl_fail(CRL_ERR_ARG, __func__, "argument 'path' is NULL");
    mat_t *mat = Mat_Open(path, MAT_ACC_RDONLY);
    if (mat == NULL) return crl_fail(CRL_ERR_IO, __func__, "cannot open '%s' as a MATLAB file", path);
    /* libmatio allocates what a variable declares before reading it: the
     * declared bytes of X and y are checked against the file's size first
     * (1032 times it when compressed, zlib's largest ratio) */
    static const char *const vars[2] = {"X", "y"};
    struct stat st;
    int have_size = stat(path, &st) == 0;
    for (int v = 0; v < 2 && have_size; v++) {
        matvar_t *info = Mat_VarReadInfo(mat, vars[v]);
        if (info == NULL) continue;
        size_t es = Mat_SizeOfClass(info->class_type);
        double declared = info->rank > 0 ? (double)(es ? es : 1) : 0;
        for (int d = 0; d < info->rank; d++) declared *= (double)info->dims[d];
        double room = (double)st.st_size * (info->compression == MAT_COMPRESSION_ZLIB ? 1032 : 1);
        Mat_VarFree(info);
        if (declared > room) {
            Mat_Close(mat);
            return crl_fail(CRL_ERR_IO, __func__, "'%s' is truncated: %s declares %.0f bytes, a %lld-byte file "
                            "cannot hold them", path, vars[v], declared, (long long)st.st_size);
        }
    }
    /* X is read, checked and copied out, and freed, before y is read, so
     * nothing of one variable is used after matio has parsed the next */
    int rc = CRL_OK;
    size_t n = 0;
    crl_tensor *img = NULL;
    matvar_t *x = Mat_VarRead(mat, "X");
    if (x == NULL) {
        rc = crl_fail(CRL_ERR_IO, __func__, "'%s' has no variable 'X' (SVHN format 2 files hold X and y)", path);
    } else if (x->rank != 4 || x->dims[0] != 32 || x->dims[1] != 32 || x->dims[2] != 3 ||
               x->class_type != MAT_C_UINT8 || x->isComplex || x->data == NULL || x->nbytes < 3072 * x->dims[3]) {
        /* (a complex variable's data is a pair of pointers, not the bytes) */
        rc = crl_fail(CRL_ERR_IO, __func__, "'%s': X must be uint8 32x32x3xN, got rank %d (%zu x %zu x ...)", path,
                      x->rank, x->rank > 0 ? x->dims[0] : 0, x->rank > 1 ? x->dims[1] : 0);
    } else {
        n = x->dims[3];
        int64_t isz[4] = {(int64_t)n, 3, 32, 32};
        img = crl_tensor_new(CRL_UINT8, CRL_CPU, 4, isz);
        if (img == NULL) {
            rc = CRL_ERR_NOMEM;
        } else {
            const uint8_t *src = x->data;
            uint8_t *dst = crl_tensor_data(img);
            /* MATLAB is column-major: X(row, col, channel, n) */
            for (size_t i = 0; i < n; i++)
                for (size_t c = 0; c < 3; c++)
                    for (size_t row = 0; row < 32; row++)
                        for (size_t col = 0; col < 32; col++)
                            dst[((i * 3 + c) * 32 + row) * 32 + col] = src[row + 32 * (col + 32 * (c + 3 * i))];
        }
    }
    Mat_VarFree(x);
    matvar_t *y = rc == CRL_OK ? Mat_VarRead(mat, "y") : NULL;
    if (rc == CRL_OK && y == NULL)
        rc = crl_fail(CRL_ERR_IO, __func__, "'%s' has no variable 'y' (SVHN format 2 files hold X and y)", path);
    if (rc == CRL_OK) {
        size_t ny = y->rank >= 1 ? y->dims[0] * (y->rank >= 2 ? y->dims[1] : 1) : 0;
        size_t es = Mat_SizeOfClass(y->class_type);
        if (ny != n || y->data == NULL || y->isComplex || es == 0 || y->nbytes < ny * es)
            rc = crl_fail(CRL_ERR_IO, __func__, "'%s': X holds %zu images but y holds %zu labels", path, n, ny);
    }
    if (rc == CRL_OK) {
        int64_t nn = (int64_t)n;
        crl_tensor *lab_t = crl_tensor_new(CRL_INT32, CRL_CPU, 1, &nn);
        if (lab_t == NULL) rc = CRL_ERR_NOMEM;
        for (size_t i = 0; i < n && rc == CRL_OK; i++) {
            double v = mat_number(y, i);
            if (!(v >= 1 && v <= 10 && v == (int)v))
                rc = crl_fail(CRL_ERR_IO, __func__, "'%s': y(%zu) = %g is not a label in 1..10", path, i + 1, v);
            else
                ((int32_t *)crl_tensor_data(lab_t))[i] = (int32_t)v % 10; /* 10 is the digit 0 */
        }
        if (rc == CRL_OK) rc = crl_tensor_set(images, img);
        if (rc == CRL_OK) rc = crl_tensor_set(labels, lab_t);
        crl_tensor_free(lab_t);
    }
    crl_tensor_free(img);
    Mat_VarFree(y);
    Mat_Close(mat);
    return rc;
}

int crl_svhn_write(const char *path, const crl_tensor *images, const crl_tensor *labels)
{
    CHECK_TENSOR(images, "images");
    CHECK_TENSOR(labels, "labels");
    if (path == NULL) return crl_fail(CRL_ERR_ARG, __func__, "argument 'path' is NULL");
    if (images->dtype != CRL_UINT8 || images->ndim != 4 || images->sizes[1] != 3 || images->sizes[2] != 32 ||
        images->sizes[3] != 32 || !crl_tensor_is_contiguous(images) || labels->dtype != CRL_INT32 ||
        labels->ndim != 1 || labels->sizes[0] != images->sizes[0] || !crl_tensor_is_contiguous(labels))
        return crl_fail(CRL_ERR_SHAPE, __func__, "images %s must be uint8 (N, 3, 32, 32) and labels %s int32 (N)",
                        crl_shape(images), crl_shape(labels));
    size_t n = (size_t)images->sizes[0];
    uint8_t *x = malloc(n * 3072 + 1);
    double *y = malloc(n * sizeof(double) + 1);
    if (x == NULL || y == NULL) {
        free(x);
        free(y);
        return crl_fail(CRL_ERR_NOMEM, __func__, "out of memory");
    }
    const uint8_t *src = crl_tensor_data(images);
    const int32_t *lab = crl_tensor_data(labels);
    for (size_t i = 0; i < n; i++) {
        for (size_t c = 0; c < 3; c++)
            for (size_t row = 0; row < 32; row++)
                for (size_t col = 0; col < 32; col++)
                    x[row + 32 * (col + 32 * (c + 3 * i))] = src[((i * 3 + c) * 32 + row) * 32 + col];
        y[i] = lab[i] == 0 ? 10 : lab[i];
    }
    int rc = CRL_OK;
    mat_t *mat = Mat_CreateVer(path, NULL, MAT_FT_MAT5);
    if (mat == NULL) {
        rc = crl_fail(CRL_ERR_IO, __func__, "cannot create '%s'", path);
    } else {
        size_t xd[4] = {32, 32, 3, n}, yd[2] = {n, 1};
        matvar_t *vx = Mat_VarCreate("X", MAT_C_UINT8, MAT_T_UINT8, 4, xd, x, 0);
        matvar_t *vy = Mat_VarCreate("y", MAT_C_DOUBLE, MAT_T_DOUBLE, 2, yd, y, 0);
        if (vx == NULL || vy == NULL || Mat_VarWrite(mat, vx, MAT_COMPRESSION_NONE) != 0 ||
            Mat_VarWrite(mat, vy, MAT_COMPRESSION_NONE) != 0)
            rc = crl_fail(CRL_ERR_IO, __func__, "writing '%s' failed", path);
        Mat_VarFree(vx);
        Mat_VarFree(vy);
        Mat_Close(mat);
    }
    free(x);
    free(y);
    return rc;
}

/* ---- MATLAB level-5 files: what the headers declare, checked before matio reads ----- */

/* libmatio allocates what a variable's headers declare before it reads
 * what they describe: a struct array's elements x fields (with a variable
 * for each) while it reads the headers, a numeric array's elements and a
 * char array's bytes before their data. mat5_check walks every element of
 * a level-5 file first, inflating a compressed one, and refuses an array
 * that declares more than its own bytes can hold: an element of a numeric
 * or char array takes at least a byte, an entry of a cell or struct array
 * at least its 8-byte tag, and a char array's data tag may declare no more
 * than follows it. A variable may be `limit` bytes (inflated) at most, so
 * what matio then allocates is a small multiple of `limit` (the walk holds
 * a whole variable in memory: fine for the Cars devkit's 3 MB, not for
 * SVHN's gigabyte, which has its own cheaper check above). The
 * walk reads the layout as matio does (tags, flags, dimensions, name,
 * field names); inside cells and structs the names must be empty, as
 * MATLAB writes them, since matio skips them there. */

enum { MAT5_MAX_DEPTH = 8, MAT5_MAX_RANK = 13 };

typedef struct mat5_walk {
    const char *func, *path; /* for messages */
    char var[72];            /* the variable's name in quotes, once read */
    int swap;                /* the file's byte order is not the host's */
} mat5_walk;

static uint32_t mat5_u32(const mat5_walk *w, const uint8_t *p)
{
    uint32_t v;
    memcpy(&v, p, 4);
    return w->swap ? (v >> 24) | ((v >> 8) & 0xff00u) | ((v << 8) & 0xff0000u) | (v << 24) : v;
}

static size_t pad8(size_t n) { return (n + 7) & ~(size_t)7; }

static int mat5_damaged(const mat5_walk *w, const char *what)
{
    return crl_fail(CRL_ERR_IO, w->func, "'%s' is damaged: broken %s in variable %s", w->path, what, w->var);
}

static int mat5_too_big(const mat5_walk *w, double count, const char *what, size_t len)
{
    return crl_fail(CRL_ERR_IO, w->func, "'%s' is damaged: variable %s declares %.0f %s in %zu bytes, which "
                    "cannot hold them", w->path, w->var, count, what, len);
}

/* The array whose contents (what follows its miMATRIX tag) are p[0..len). */
static int mat5_array(mat5_walk *w, const uint8_t *p, size_t len, int depth)
{
    /* an empty array in a cell or struct is its tag alone; matio reads a
     * variable's flags, dimensions and name whatever its tag declares */
    if (len == 0 && depth > 0) return CRL_OK;
    if (depth > MAT5_MAX_DEPTH)
        return crl_fail(CRL_ERR_IO, w->func, "'%s': variable %s nests arrays more than %d deep", w->path, w->var,
                        MAT5_MAX_DEPTH);
    if (len < 24 || mat5_u32(w, p) != MAT_T_UINT32 || mat5_u32(w, p + 4) != 8) return mat5_damaged(w, "array flags");
    uint32_t flags = mat5_u32(w, p + 8);
    int cls = (int)(flags & 0xff);
    p += 16, len -= 16;
    uint32_t dbytes = mat5_u32(w, p + 4);
    if (mat5_u32(w, p) != MAT_T_INT32 || dbytes % 4 || dbytes < 8 || dbytes > 4 * MAT5_MAX_RANK ||
        len < 8 + pad8(dbytes))
        return mat5_damaged(w, "dimensions");
    double nel = 1;
    for (uint32_t k = 0; k < dbytes / 4; k++) nel *= mat5_u32(w, p + 8 + 4 * k);
    p += 8 + pad8(dbytes), len -= 8 + pad8(dbytes);
    if (len < 8) return mat5_damaged(w, "name");
    uint32_t ntag = mat5_u32(w, p), nlen = mat5_u32(w, p + 4);
    size_t nsize;
    if (ntag == MAT_T_INT8 && (depth == 0 || nlen == 0)) {
        nsize = 8 + pad8(nlen);
        if (depth == 0 && nsize <= len)
            snprintf(w->var, sizeof w->var, "'%.*s'", (int)(nlen < 63 ? nlen : 63), (const char *)p + 8);
    }
    else if (depth == 0 && (ntag & 0xffff) == MAT_T_INT8 && (ntag >> 16) >= 1 && (ntag >> 16) <= 4) {
        nsize = 8; /* a short name packed in its tag */
        snprintf(w->var, sizeof w->var, "'%.*s'", (int)(ntag >> 16), (const char *)p + 4);
    } else
        return mat5_damaged(w, "name");
    if (nsize > len) return mat5_damaged(w, "name");
    p += nsize, len -= nsize;
    double entries = 0;
    switch (cls) {
    case MAT_C_CHAR: case MAT_C_DOUBLE: case MAT_C_SINGLE: case MAT_C_INT8: case MAT_C_UINT8: case MAT_C_INT16:
    case MAT_C_UINT16: case MAT_C_INT32: case MAT_C_UINT32: case MAT_C_INT64: case MAT_C_UINT64:
        if (nel > (double)len) return mat5_too_big(w, nel, "array elements", len);
        if (cls == MAT_C_CHAR) { /* matio allocates a char array's bytes by its data tag, even of 0 elements */
            if (len < 8) return mat5_damaged(w, "char data");
            uint32_t dtag = mat5_u32(w, p);
            size_t n = dtag >> 16 ? dtag >> 16 : mat5_u32(w, p + 4), room = len - (dtag >> 16 ? 4 : 8);
            if (n > room) return mat5_too_big(w, (double)n, "data bytes", room);
        }
        return CRL_OK;
    case MAT_C_CELL:
        entries = nel;
        break;
    case MAT_C_STRUCT: {
        if (len < 16) return mat5_damaged(w, "struct field names");
        uint32_t ltag = mat5_u32(w, p), fsize = mat5_u32(w, p + 4);
        if ((ltag & 0xffff) != MAT_T_INT32 || fsize == 0) return mat5_damaged(w, "struct field names");
        p += 8, len -= 8;
        uint32_t ftag = mat5_u32(w, p);
        size_t nfields, fbytes;
        if (ftag == MAT_T_INT8) {
            nfields = mat5_u32(w, p + 4) / fsize;
            fbytes = 8 + pad8(nfields * fsize);
        } else if ((ftag & 0xffff) == MAT_T_INT8 && (ftag >> 16) >= 1 && (ftag >> 16) <= 4) {
            nfields = (ftag >> 16) / fsize;
            fbytes = 8;
        } else {
            return mat5_damaged(w, "struct field names");
        }
        if (fbytes > len) return mat5_damaged(w, "struct field names");
        p += fbytes, len -= fbytes;
        entries = nel * (double)nfields;
        break;
    }
    default:
        return crl_fail(CRL_ERR_IO, w->func, "'%s': variable %s holds a MATLAB array of class %d (sparse, object, "
                        "function or unknown), which crlab does not read", w->path, w->var, cls);
    }
    if (entries * 8 > (double)len) return mat5_too_big(w, entries, "cell or struct entries", len);
    for (size_t e = 0; e < (size_t)entries; e++) {
        uint32_t n = len >= 8 ? mat5_u32(w, p + 4) : 0;
        if (len < 8 || mat5_u32(w, p) != MAT_T_MATRIX || n > len - 8) return mat5_damaged(w, "cell or struct entry");
        int rc = mat5_array(w, p + 8, n, depth + 1);
        if (rc) return rc;
        p += 8 + (size_t)n, len -= 8 + (size_t)n;
    }
    return CRL_OK;
}

/* A compressed variable's bytes inflated into *out (at most limit bytes). */
static int mat5_inflate(const mat5_walk *w, const uint8_t *in, size_t n, size_t limit, uint8_t **out, size_t *len)
{
    *out = NULL;
    *len = 0;
    z_stream z;
    memset(&z, 0, sizeof z);
    if (inflateInit(&z) != Z_OK) return crl_fail(CRL_ERR_NOMEM, w->func, "out of memory inflating '%s'", w->path);
    size_t cap = n < 1024 ? 4096 : n < limit / 4 ? 4 * n : limit;
    if (cap > limit) cap = limit;
    uint8_t *buf = malloc(cap);
    int zrc = Z_OK, nomem = buf == NULL, full = 0;
    z.next_in = (Bytef *)in;
    z.avail_in = (uInt)n;
    while (!nomem && zrc == Z_OK) {
        if (z.total_out == cap) {
            if (cap == limit) {
                full = 1;
                break;
            }
            cap = cap > limit / 2 ? limit : 2 * cap;
            uint8_t *grown = realloc(buf, cap);
            if (grown == NULL) {
                nomem = 1;
                break;
            }
            buf = grown;
        }
        z.next_out = buf + z.total_out;
        z.avail_out = (uInt)(cap - z.total_out);
        zrc = inflate(&z, Z_NO_FLUSH);
        if (zrc == Z_BUF_ERROR && z.avail_out == 0) zrc = Z_OK; /* wants more room */
    }
    int rc = CRL_OK;
    if (nomem)
        rc = crl_fail(CRL_ERR_NOMEM, w->func, "out of memory inflating '%s'", w->path);
    else if (full)
        rc = crl_fail(CRL_ERR_IO, w->func, "'%s': a compressed variable inflates to more than %zu bytes, more than "
                      "this reader takes (a damaged file?)", w->path, limit);
    else if (zrc != Z_STREAM_END)
        rc = crl_fail(CRL_ERR_IO, w->func, "'%s' is damaged: a compressed variable does not inflate (zlib: %s)",
                      w->path, z.msg ? z.msg : zError(zrc));
    size_t total = z.total_out;
    inflateEnd(&z);
    if (rc) {
        free(buf);
        return rc;
    }
    *out = buf;
    *len = total;
    return CRL_OK;
}

/* Checks a level-5 MAT file's every variable (see above); refuses other
 * files (MATLAB 7.3's HDF5, version 4) with a message. */
static int mat5_check(const char *func, const char *path, size_t limit)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL) return crl_fail(CRL_ERR_IO, func, "cannot open '%s'", path);
    struct stat st;
    uint8_t head[128];
    if (fstat(fileno(f), &st) != 0 || fread(head, 1, 128, f) != 128 || !((head[126] == 'I' && head[127] == 'M') ||
                                                                        (head[126] == 'M' && head[127] == 'I'))) {
        fclose(f);
        return crl_fail(CRL_ERR_IO, func, "'%s' is not a MATLAB level-5 file (no 128-byte header ending in 'IM' or "
                        "'MI')", path);
    }
    const uint16_t one = 1;
    int host_le = *(const uint8_t *)&one == 1, file_le = head[126] == 'I';
    mat5_walk w = {func, path, "", host_le != file_le};
    unsigned version = file_le ? head[124] | head[125] << 8 : head[125] | head[124] << 8;
    if (version != 0x0100) {
        fclose(f);
        return crl_fail(CRL_ERR_IO, func, "'%s' is a MATLAB file of version 0x%04x%s; crlab reads level-5 files "
                        "(MATLAB's save -v7 or -v6)", path, version, version == 0x0200 ? " (7.3, HDF5)" : "");
    }
    int rc = CRL_OK;
    size_t pos = 128;
    uint8_t tag[8];
    while (rc == CRL_OK && fread(tag, 1, 8, f) == 8) {
        uint32_t type = mat5_u32(&w, tag), n = mat5_u32(&w, tag + 4);
        pos += 8;
        if (type != MAT_T_MATRIX && type != MAT_T_COMPRESSED) {
            rc = crl_fail(CRL_ERR_IO, func, "'%s' is damaged: an element of type %u at byte %zu where a variable "
                          "should start", path, type, pos - 8);
        } else if (n > (uint64_t)st.st_size - pos) {
            rc = crl_fail(CRL_ERR_IO, func, "'%s' is truncated: a variable at byte %zu declares %u bytes, the file "
                          "ends %lld bytes later", path, pos - 8, n, (long long)st.st_size - (long long)pos);
        } else if (n > limit) {
            rc = crl_fail(CRL_ERR_IO, func, "'%s': a variable of %u bytes, more than this reader takes (%zu; a "
                          "damaged file?)", path, n, limit);
        } else {
            uint8_t *buf = malloc(n ? n : 1), *inflated = NULL;
            size_t len = 0;
            if (buf == NULL) {
                rc = crl_fail(CRL_ERR_NOMEM, func, "out of memory reading '%s'", path);
            } else if (fread(buf, 1, n, f) != n) {
                rc = crl_fail(CRL_ERR_IO, func, "short read in '%s' at byte %zu", path, pos);
            } else if (type == MAT_T_COMPRESSED) {
                rc = mat5_inflate(&w, buf, n, limit, &inflated, &len);
            }
            const uint8_t *m = type == MAT_T_COMPRESSED ? inflated : buf;
            if (type == MAT_T_COMPRESSED && rc == CRL_OK) { /* the inflated bytes hold one miMATRIX element */
                uint32_t mn = len >= 8 ? mat5_u32(&w, m + 4) : 0;
                if (len < 8 || mat5_u32(&w, m) != MAT_T_MATRIX || mn > len - 8)
                    rc = crl_fail(CRL_ERR_IO, func, "'%s' is damaged: the compressed variable at byte %zu does not "
                                  "hold an array of the size its tag declares", path, pos - 8);
                m += 8;
                len = mn;
            } else {
                len = n;
            }
            snprintf(w.var, sizeof w.var, "at byte %zu", pos - 8);
            if (rc == CRL_OK) rc = mat5_array(&w, m, len, 0);
            free(buf);
            free(inflated);
            pos += n;
        }
    }
    fclose(f);
    return rc;
}

/* ---- Stanford Cars ------------------------------------------------------------------- */

/* The devkit's files are about 3 MB inflated; a variable of more is damage */
#define CARS_MAT_LIMIT ((size_t)32 << 20)
#define CARS_MAX_CLASSES 100000
#define CARS_MAX_NAME 4096
#define CARS_MAX_COORD 16777216.0 /* 2^24: exact in float32 */

static const char *const mat_class_names[18] = {"empty", "cell", "struct", "object", "char", "sparse", "double",
                                                 "single", "int8", "uint8", "int16", "uint16", "int32", "uint32",
                                                 "int64", "uint64", "function", "opaque"};

/* "a 1x3 char array" (for messages) */
static const char *mat_describe(const matvar_t *v, char *buf, size_t cap)
{
    if (v == NULL) {
        snprintf(buf, cap, "nothing");
        return buf;
    }
    int n = snprintf(buf, cap, "a ");
    for (int d = 0; d < v->rank && d < 4 && n > 0 && (size_t)n < cap; d++)
        n += snprintf(buf + n, cap - (size_t)n, d ? "x%zu" : "%zu", v->dims ? v->dims[d] : 0);
    if (n > 0 && (size_t)n < cap)
        snprintf(buf + n, cap - (size_t)n, " %s%s array", v->isComplex ? "complex " : "",
                 v->class_type >= 0 && v->class_type < 18 ? mat_class_names[v->class_type] : "unknown");
    return buf;
}

static size_t mat_numel(const matvar_t *v)
{
    size_t n = v->rank > 0 && v->dims != NULL ? 1 : 0;
    for (int d = 0; d < v->rank && v->dims != NULL; d++) n *= v->dims[d];
    return n;
}

/* The value of a 1x1 real numeric array in *out; 0 when v is not one. */
static int mat_scalar(const matvar_t *v, double *out)
{
    if (v == NULL || v->class_type < MAT_C_DOUBLE || v->class_type > MAT_C_UINT64 || v->isComplex ||
        v->data == NULL || mat_numel(v) != 1 || v->nbytes < Mat_SizeOfClass(v->class_type))
        return 0;
    *out = mat_number(v, 0);
    return 1;
}

/* A growing byte buffer: the names joined by '\n'. */
typedef struct text_buf {
    char *p;
    size_t len, cap;
} text_buf;

static int text_put(text_buf *t, const char *s, size_t n)
{
    if (t->len + n + 1 > t->cap) {
        size_t cap = t->cap ? t->cap : 4096;
        while (cap < t->len + n + 1) cap *= 2;
        char *grown = realloc(t->p, cap);
        if (grown == NULL) return -1;
        t->p = grown;
        t->cap = cap;
    }
    memcpy(t->p + t->len, s, n);
    t->len += n;
    return 0;
}

/* Appends the text of a 1xL char array to t as UTF-8 (matio keeps MATLAB's
 * UTF-16 as 16-bit units, other files' text as bytes). 0: done; 1: v is not
 * a row of 1..CARS_MAX_NAME characters without NUL or line breaks; -1: out of memory. */
static int mat_text(text_buf *t, const matvar_t *v)
{
    if (v == NULL || v->class_type != MAT_C_CHAR || v->isComplex || v->data == NULL || v->rank != 2 ||
        v->dims == NULL || v->dims[0] != 1 || v->dims[1] < 1 || v->dims[1] > CARS_MAX_NAME)
        return 1;
    size_t n = v->dims[1];
    const uint8_t *b = v->data;
    if (v->data_type == MAT_T_UTF8 || v->data_type == MAT_T_UINT8 || v->data_type == MAT_T_INT8) {
        if (v->data_type == MAT_T_UTF8) n = v->nbytes; /* characters of several bytes */
        if (v->nbytes < n || n == 0) return 1;
        for (size_t i = 0; i < n; i++)
            if (b[i] == 0 || b[i] == '\n' || b[i] == '\r') return 1;
        return text_put(t, (const char *)b, n);
    }
    if (v->data_type != MAT_T_UTF16 && v->data_type != MAT_T_UINT16 && v->data_type != MAT_T_INT16) return 1;
    if (v->nbytes < 2 * n) return 1;
    for (size_t i = 0; i < n; i++) {
        uint16_t u;
        memcpy(&u, b + 2 * i, 2);
        char e[3];
        size_t k;
        if (u == 0 || u == '\n' || u == '\r' || (u >= 0xd800 && u <= 0xdfff)) return 1; /* (no surrogate pairs) */
        if (u < 0x80) {
            e[0] = (char)u, k = 1;
        } else if (u < 0x800) {
            e[0] = (char)(0xc0 | u >> 6), e[1] = (char)(0x80 | (u & 0x3f)), k = 2;
        } else {
            e[0] = (char)(0xe0 | u >> 12), e[1] = (char)(0x80 | ((u >> 6) & 0x3f)), e[2] = (char)(0x80 | (u & 0x3f));
            k = 3;
        }
        if (text_put(t, e, k)) return -1;
    }
    return 0;
}

/* The joined names as a uint8 tensor (no trailing '\n'). */
static crl_tensor *text_tensor(const text_buf *t)
{
    int64_t n = (int64_t)t->len;
    crl_tensor *out = crl_tensor_new(CRL_UINT8, CRL_CPU, 1, &n);
    if (out != NULL && n > 0) memcpy(crl_tensor_data(out), t->p, t->len);
    return out;
}

/* Opens a checked level-5 file and reads one variable. */
static matvar_t *mat_read_checked(const char *func, const char *path, const char *name, int *rc)
{
    *rc = mat5_check(func, path, CARS_MAT_LIMIT);
    if (*rc) return NULL;
    mat_t *mat = Mat_Open(path, MAT_ACC_RDONLY);
    if (mat == NULL) {
        *rc = crl_fail(CRL_ERR_IO, func, "cannot open '%s' as a MATLAB file", path);
        return NULL;
    }
    matvar_t *info = Mat_VarReadInfo(mat, name), *v = info ? Mat_VarRead(mat, name) : NULL;
    Mat_VarFree(info);
    Mat_Close(mat);
    if (info == NULL)
        *rc = crl_fail(CRL_ERR_IO, func, "'%s' has no variable '%s'", path, name);
    else if (v == NULL)
        *rc = crl_fail(CRL_ERR_IO, func, "'%s' is damaged: its variable '%s' cannot be read", path, name);
    return v;
}

int crl_cars_meta_read(crl_tensor *names, const char *path)
{
    CHECK_TENSOR(names, "names");
    if (path == NULL) return crl_fail(CRL_ERR_ARG, __func__, "argument 'path' is NULL");
    int rc;
    matvar_t *v = mat_read_checked(__func__, path, "class_names", &rc);
    if (v == NULL) return rc;
    char what[96];
    size_t k = mat_numel(v);
    text_buf t = {0};
    if (v->class_type != MAT_C_CELL || v->rank != 2 || v->dims == NULL || (v->dims[0] != 1 && v->dims[1] != 1) ||
        k < 1 || k > CARS_MAX_CLASSES || v->data == NULL || v->nbytes < k * sizeof(matvar_t *)) {
        rc = crl_fail(CRL_ERR_IO, __func__, "'%s': class_names must be a 1xK cell array of names (K = 196 for the "
                      "Cars devkit), got %s", path, mat_describe(v, what, sizeof what));
    }
    matvar_t *const *cells = v->data;
    for (size_t i = 0; rc == CRL_OK && i < k; i++) {
        int bad = (i > 0 && text_put(&t, "\n", 1)) ? -1 : mat_text(&t, cells[i]);
        if (bad < 0)
            rc = crl_fail(CRL_ERR_NOMEM, __func__, "out of memory reading '%s'", path);
        else if (bad)
            rc = crl_fail(CRL_ERR_IO, __func__, "'%s': class_names{%zu} must be a 1xL char array (a name without "
                          "line breaks), got %s", path, i + 1, mat_describe(cells[i], what, sizeof what));
    }
    crl_tensor *out = rc == CRL_OK ? text_tensor(&t) : NULL;
    if (rc == CRL_OK && out == NULL) rc = crl_fail(CRL_ERR_NOMEM, __func__, "out of memory");
    if (rc == CRL_OK) rc = crl_tensor_set(names, out);
    crl_tensor_free(out);
    free(t.p);
    Mat_VarFree(v);
    return rc;
}

enum { CARS_X1, CARS_Y1, CARS_X2, CARS_Y2, CARS_CLASS, CARS_FNAME, CARS_NFIELDS };
/* (NULL-terminated, as Mat_VarCreateStruct2 takes them) */
static const char *const cars_fields[CARS_NFIELDS + 1] = {"bbox_x1", "bbox_y1", "bbox_x2", "bbox_y2", "class",
                                                          "fname", NULL};

int crl_cars_annos_read(crl_tensor *labels, crl_tensor *boxes, crl_tensor *names, const char *path,
                        int64_t classes)
{
    CHECK_TENSOR(labels, "labels");
    CHECK_TENSOR(boxes, "boxes");
    CHECK_TENSOR(names, "names");
    if (path == NULL) return crl_fail(CRL_ERR_ARG, __func__, "argument 'path' is NULL");
    if (classes < 1 || classes > CARS_MAX_CLASSES)
        return crl_fail(CRL_ERR_ARG, __func__, "classes must be in 1..%d, got %lld", CARS_MAX_CLASSES,
                        (long long)classes);
    int rc;
    matvar_t *v = mat_read_checked(__func__, path, "annotations", &rc);
    if (v == NULL) return rc;
    char what[96];
    size_t n = mat_numel(v), nf = Mat_VarGetNumberOfFields(v);
    char *const *fnames = v->class_type == MAT_C_STRUCT ? Mat_VarGetStructFieldnames(v) : NULL;
    if (v->class_type != MAT_C_STRUCT || v->rank != 2 || v->dims == NULL || (v->dims[0] != 1 && v->dims[1] != 1) ||
        n < 1 || fnames == NULL || (nf > 0 && (v->data == NULL || v->nbytes / nf / sizeof(matvar_t *) < n)))
        rc = crl_fail(CRL_ERR_IO, __func__, "'%s': annotations must be a 1xN struct array, got %s", path,
                      mat_describe(v, what, sizeof what));
    size_t col[CARS_NFIELDS];
    for (int f = 0; rc == CRL_OK && f < CARS_NFIELDS; f++) {
        col[f] = nf;
        for (size_t j = 0; j < nf; j++)
            if (fnames[j] && !strcmp(fnames[j], cars_fields[f])) col[f] = j;
        if (col[f] == nf)
            rc = crl_fail(CRL_ERR_IO, __func__, "'%s': annotations has no field '%s' (it needs bbox_x1, bbox_y1, "
                          "bbox_x2, bbox_y2, class and fname%s)", path, cars_fields[f], f == CARS_CLASS ?
                          "; devkit/cars_test_annos.mat has no classes, cars_test_annos_withlabels.mat has" : "");
    }
    int64_t nn = (int64_t)n, bsz[2] = {nn, 4};
    crl_tensor *lab = NULL, *box = NULL, *txt = NULL;
    if (rc == CRL_OK) {
        lab = crl_tensor_new(CRL_INT32, CRL_CPU, 1, &nn);
        box = crl_tensor_new(CRL_FLOAT32, CRL_CPU, 2, bsz);
        if (lab == NULL || box == NULL) rc = crl_fail(CRL_ERR_NOMEM, __func__, "out of memory");
    }
    text_buf t = {0};
    matvar_t *const *entry = v->data;
    for (size_t i = 0; rc == CRL_OK && i < n; i++) {
        double c[5];
        for (int f = 0; rc == CRL_OK && f < CARS_FNAME; f++) {
            const matvar_t *e = entry[i * nf + col[f]];
            if (!mat_scalar(e, &c[f]))
                rc = crl_fail(CRL_ERR_IO, __func__, "'%s': annotations(%zu).%s must be a real number (1x1), got %s",
                              path, i + 1, cars_fields[f], mat_describe(e, what, sizeof what));
        }
        if (rc) break;
        if (!(c[CARS_CLASS] >= 1 && c[CARS_CLASS] <= (double)classes && c[CARS_CLASS] == (int64_t)c[CARS_CLASS])) {
            rc = crl_fail(CRL_ERR_IO, __func__, "'%s': annotations(%zu).class = %g is not a class in 1..%lld (the "
                          "class names number %lld)", path, i + 1, c[CARS_CLASS], (long long)classes,
                          (long long)classes);
            break;
        }
        /* corners in MATLAB's 1-based pixels, inclusive (a 0 is let through:
         * the crop clamps it to the image) */
        for (int f = 0; rc == CRL_OK && f < 4; f++)
            if (!(c[f] >= 0 && c[f] <= CARS_MAX_COORD))
                rc = crl_fail(CRL_ERR_IO, __func__, "'%s': annotations(%zu).%s = %g is not a pixel coordinate in "
                              "0..%.0f", path, i + 1, cars_fields[f], c[f], CARS_MAX_COORD);
        if (rc == CRL_OK && (c[CARS_X2] < c[CARS_X1] || c[CARS_Y2] < c[CARS_Y1]))
            rc = crl_fail(CRL_ERR_IO, __func__, "'%s': annotations(%zu) has the box (%g, %g)-(%g, %g): x2 and y2 "
                          "must not be less than x1 and y1", path, i + 1, c[CARS_X1], c[CARS_Y1], c[CARS_X2],
                          c[CARS_Y2]);
        if (rc) break;
        ((int32_t *)crl_tensor_data(lab))[i] = (int32_t)c[CARS_CLASS] - 1;
        float *b = (float *)crl_tensor_data(box) + 4 * i; /* (x, y, w, h), 0-based */
        b[0] = (float)(c[CARS_X1] - 1);
        b[1] = (float)(c[CARS_Y1] - 1);
        b[2] = (float)(c[CARS_X2] - c[CARS_X1] + 1);
        b[3] = (float)(c[CARS_Y2] - c[CARS_Y1] + 1);
        const matvar_t *fn = entry[i * nf + col[CARS_FNAME]];
        int bad = (i > 0 && text_put(&t, "\n", 1)) ? -1 : mat_text(&t, fn);
        if (bad < 0)
            rc = crl_fail(CRL_ERR_NOMEM, __func__, "out of memory reading '%s'", path);
        else if (bad)
            rc = crl_fail(CRL_ERR_IO, __func__, "'%s': annotations(%zu).fname must be a 1xL char array (a file "
                          "name without line breaks), got %s", path, i + 1, mat_describe(fn, what, sizeof what));
    }
    if (rc == CRL_OK && (txt = text_tensor(&t)) == NULL) rc = crl_fail(CRL_ERR_NOMEM, __func__, "out of memory");
    if (rc == CRL_OK) rc = crl_tensor_set(labels, lab);
    if (rc == CRL_OK) rc = crl_tensor_set(boxes, box);
    if (rc == CRL_OK) rc = crl_tensor_set(names, txt);
    crl_tensor_free(lab);
    crl_tensor_free(box);
    crl_tensor_free(txt);
    free(t.p);
    Mat_VarFree(v);
    return rc;
}

/* ---- writers (for tests and subsets) ----------------------------------------------- */

/* The 1xL char array of the UTF-8 text [s, s + n), stored as MATLAB does,
 * in UTF-16 units (matio 1.5.23 declares a compressed UTF-8 char array 8
 * bytes longer than it writes, and then misreads what follows). */
static matvar_t *mat_char_row(const char *s, size_t n)
{
    size_t dims[2] = {1, n};
    uint16_t *u = malloc(2 * n + 2); /* (characters of up to 3 bytes) */
    if (u == NULL) return NULL;
    const uint8_t *b = (const uint8_t *)s;
    size_t k = 0;
    for (size_t i = 0; i < n; k++) {
        if (b[i] >= 0xe0 && i + 2 < n) {
            u[k] = (uint16_t)((b[i] & 0x0f) << 12 | (b[i + 1] & 0x3f) << 6 | (b[i + 2] & 0x3f));
            i += 3;
        } else if (b[i] >= 0xc0 && i + 1 < n) {
            u[k] = (uint16_t)((b[i] & 0x1f) << 6 | (b[i + 1] & 0x3f));
            i += 2;
        } else {
            u[k] = b[i++];
        }
    }
    dims[1] = k;
    matvar_t *v = Mat_VarCreate(NULL, MAT_C_CHAR, MAT_T_UINT16, 2, dims, u, 0);
    free(u);
    return v;
}

/* Splits a uint8 tensor of '\n'-joined names; returns the count, or -1. */
static int64_t split_names(const crl_tensor *names, const char **starts, size_t *lens, int64_t max)
{
    const char *p = crl_tensor_data(names);
    int64_t n = names->sizes[0], count = 0, from = 0;
    for (int64_t i = 0; i <= n; i++) {
        if (i < n && p[i] != '\n') continue;
        if (count == max) return -1;
        starts[count] = p + from;
        lens[count++] = (size_t)(i - from);
        from = i + 1;
    }
    return count;
}

/* Writes one variable to path through a temporary file and a rename. */
static int mat_write_one(const char *func, const char *path, matvar_t *v, int compress)
{
    size_t plen = strlen(path);
    char *tmp = malloc(plen + 16);
    if (tmp == NULL) return crl_fail(CRL_ERR_NOMEM, func, "out of memory");
    snprintf(tmp, plen + 16, "%s.tmp%ld", path, (long)getpid());
    int rc = CRL_OK;
    mat_t *mat = Mat_CreateVer(tmp, NULL, MAT_FT_MAT5);
    if (mat == NULL) {
        rc = crl_fail(CRL_ERR_IO, func, "cannot create '%s'", tmp);
    } else {
        int bad = Mat_VarWrite(mat, v, compress ? MAT_COMPRESSION_ZLIB : MAT_COMPRESSION_NONE);
        if (Mat_Close(mat) != 0 || bad) rc = crl_fail(CRL_ERR_IO, func, "writing '%s' failed", tmp);
        if (rc == CRL_OK && rename(tmp, path) != 0)
            rc = crl_fail(CRL_ERR_IO, func, "cannot rename '%s' to '%s'", tmp, path);
        if (rc) remove(tmp);
    }
    free(tmp);
    return rc;
}

int crl_cars_meta_write(const char *path, const crl_tensor *names, int compress)
{
    CHECK_TENSOR(names, "names");
    if (path == NULL) return crl_fail(CRL_ERR_ARG, __func__, "argument 'path' is NULL");
    if (names->dtype != CRL_UINT8 || names->ndim != 1 || !crl_tensor_is_contiguous(names) || names->sizes[0] < 1)
        return crl_fail(CRL_ERR_SHAPE, __func__, "names %s must be uint8 bytes (the names joined by '\\n')",
                        crl_shape(names));
    const char **starts = malloc(CARS_MAX_CLASSES * sizeof *starts);
    size_t *lens = malloc(CARS_MAX_CLASSES * sizeof *lens);
    int64_t k = starts && lens ? split_names(names, starts, lens, CARS_MAX_CLASSES) : -2;
    int rc = CRL_OK;
    if (k == -2) rc = crl_fail(CRL_ERR_NOMEM, __func__, "out of memory");
    else if (k < 0) rc = crl_fail(CRL_ERR_ARG, __func__, "more than %d class names", CARS_MAX_CLASSES);
    size_t dims[2] = {1, (size_t)(k > 0 ? k : 0)};
    matvar_t *cell = rc == CRL_OK ? Mat_VarCreate("class_names", MAT_C_CELL, MAT_T_CELL, 2, dims, NULL, 0) : NULL;
    if (rc == CRL_OK && cell == NULL) rc = crl_fail(CRL_ERR_NOMEM, __func__, "out of memory");
    for (int64_t i = 0; rc == CRL_OK && i < k; i++) {
        matvar_t *s = mat_char_row(starts[i], lens[i]);
        if (s == NULL) rc = crl_fail(CRL_ERR_NOMEM, __func__, "out of memory");
        else Mat_VarSetCell(cell, (int)i, s);
    }
    if (rc == CRL_OK) rc = mat_write_one(__func__, path, cell, compress);
    Mat_VarFree(cell);
    free(starts);
    free(lens);
    return rc;
}

int crl_cars_annos_write(const char *path, const crl_tensor *labels, const crl_tensor *boxes,
                         const crl_tensor *names, int compress)
{
    CHECK_TENSOR(labels, "labels");
    CHECK_TENSOR(boxes, "boxes");
    CHECK_TENSOR(names, "names");
    if (path == NULL) return crl_fail(CRL_ERR_ARG, __func__, "argument 'path' is NULL");
    int64_t n = labels->ndim == 1 ? labels->sizes[0] : -1;
    if (labels->dtype != CRL_INT32 || n < 1 || !crl_tensor_is_contiguous(labels) || boxes->dtype != CRL_FLOAT32 ||
        boxes->ndim != 2 || boxes->sizes[0] != n || boxes->sizes[1] != 4 || !crl_tensor_is_contiguous(boxes) ||
        names->dtype != CRL_UINT8 || names->ndim != 1 || !crl_tensor_is_contiguous(names))
        return crl_fail(CRL_ERR_SHAPE, __func__, "labels %s must be int32 (N), boxes %s float32 (N, 4) and names %s "
                        "uint8 bytes (N names joined by '\\n')", crl_shape(labels), crl_shape(boxes),
                        crl_shape(names));
    const char **starts = malloc((size_t)n * sizeof *starts);
    size_t *lens = malloc((size_t)n * sizeof *lens);
    int64_t k = starts && lens ? split_names(names, starts, lens, n) : -2;
    if (k != n) {
        free(starts);
        free(lens);
        return k == -2 ? crl_fail(CRL_ERR_NOMEM, __func__, "out of memory")
                       : crl_fail(CRL_ERR_ARG, __func__, "names holds %s names, labels %lld", k < 0 ? "more" :
                                  "fewer", (long long)n);
    }
    size_t dims[2] = {1, (size_t)n}, one[2] = {1, 1};
    matvar_t *s = Mat_VarCreateStruct2("annotations", 2, dims, cars_fields);
    int rc = s == NULL ? crl_fail(CRL_ERR_NOMEM, __func__, "out of memory") : CRL_OK;
    const int32_t *lab = crl_tensor_data(labels);
    const float *box = crl_tensor_data(boxes);
    for (int64_t i = 0; rc == CRL_OK && i < n; i++) {
        const float *b = box + 4 * i; /* (x, y, w, h) 0-based -> MATLAB's 1-based corners */
        double v[5] = {b[0] + 1.0, b[1] + 1.0, (double)b[0] + b[2], (double)b[1] + b[3], lab[i] + 1.0};
        for (int f = 0; rc == CRL_OK && f < CARS_NFIELDS; f++) {
            matvar_t *e = f < CARS_FNAME ? Mat_VarCreate(NULL, MAT_C_DOUBLE, MAT_T_DOUBLE, 2, one, &v[f], 0)
                                         : mat_char_row(starts[i], lens[i]);
            if (e == NULL) rc = crl_fail(CRL_ERR_NOMEM, __func__, "out of memory");
            else Mat_VarSetStructFieldByIndex(s, (size_t)f, (size_t)i, e);
        }
    }
    if (rc == CRL_OK) rc = mat_write_one(__func__, path, s, compress);
    Mat_VarFree(s);
    free(starts);
    free(lens);
    return rc;
}

/* ---- folders ------------------------------------------------------------------------- */

static int cmp_names(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

int crl_dir_list(crl_tensor *out, const char *path, int kind)
{
    CHECK_TENSOR(out, "out");
    if (path == NULL) return crl_fail(CRL_ERR_ARG, __func__, "argument 'path' is NULL");
    if (kind < 0 || kind > 2) return crl_fail(CRL_ERR_ARG, __func__, "kind must be 0, 1 or 2, got %d", kind);
    DIR *d = opendir(path);
    if (d == NULL) return crl_fail(CRL_ERR_IO, __func__, "cannot open the folder '%s'", path);
    char **names = NULL;
    size_t count = 0, cap = 0, total = 0;
    int rc = CRL_OK;
    size_t plen = strlen(path);
    struct dirent *e;
    while (rc == CRL_OK && (e = readdir(d)) != NULL) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
        if (strchr(e->d_name, '\n')) {
            rc = crl_fail(CRL_ERR_IO, __func__, "'%s' holds a file name with a line break", path);
            break;
        }
        if (kind) {
            size_t len = plen + strlen(e->d_name) + 2;
            char *full = malloc(len);
            struct stat st;
            int isdir = 0, isreg = 0;
            if (full) {
                snprintf(full, len, "%s/%s", path, e->d_name);
                if (stat(full, &st) == 0) {
                    isdir = S_ISDIR(st.st_mode);
                    isreg = S_ISREG(st.st_mode);
                }
                free(full);
            }
            if ((kind == 1 && !isdir) || (kind == 2 && !isreg)) continue;
        }
        if (count == cap) {
            cap = cap ? cap * 2 : 256;
            char **grown = realloc(names, cap * sizeof *names);
            if (grown == NULL) {
                rc = crl_fail(CRL_ERR_NOMEM, __func__, "out of memory listing '%s'", path);
                break;
            }
            names = grown;
        }
        names[count] = strdup(e->d_name);
        if (names[count] == NULL) {
            rc = crl_fail(CRL_ERR_NOMEM, __func__, "out of memory listing '%s'", path);
            break;
        }
        total += strlen(names[count]) + 1;
        count++;
    }
    closedir(d);
    if (rc == CRL_OK) {
        if (count > 1) qsort(names, count, sizeof *names, cmp_names);
        int64_t nbytes = (int64_t)(total > 0 ? total - 1 : 0);
        rc = crl_prepare(out, CRL_UINT8, CRL_CPU, 1, &nbytes);
        if (rc == CRL_OK) {
            char *p = crl_tensor_data(out);
            for (size_t i = 0; i < count; i++) {
                size_t len = strlen(names[i]);
                memcpy(p, names[i], len);
                p += len;
                if (i + 1 < count) *p++ = '\n';
            }
        }
    }
    for (size_t i = 0; i < count; i++) free(names[i]);
    free(names);
    return rc;
}
