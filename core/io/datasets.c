/* io/datasets.c -- the binary dataset formats read in C: CIFAR-10/100
 * records and SVHN format 2 MATLAB files (through libmatio), and sorted
 * folder listings for the image-folder datasets. */
#include <dirent.h>
#include <matio.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

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
    case MAT_C_UINT8: return ((const uint8_t *)v->data)[i];
    case MAT_C_INT32: return ((const int32_t *)v->data)[i];
    case MAT_C_UINT16: return ((const uint16_t *)v->data)[i];
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
