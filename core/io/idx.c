/* io/idx.c -- the idx format of MNIST and Fashion-MNIST, gzipped or plain
 * (zlib's gzread reads both). Header: two zero bytes, an element type byte
 * (0x08 = unsigned byte), the number of dimensions, then each dimension as
 * a big-endian 32-bit integer; the data follow in row-major order. */
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <zlib.h>

#include "../internal.h"

static uint32_t be32(const unsigned char *b)
{
    return ((uint32_t)b[0] << 24) | ((uint32_t)b[1] << 16) | ((uint32_t)b[2] << 8) | b[3];
}

int crl_idx_read(crl_tensor *out, const char *path)
{
    CHECK_TENSOR(out, "out");
    if (path == NULL) return crl_fail(CRL_ERR_ARG, __func__, "argument 'path' is NULL");
    gzFile f = gzopen(path, "rb");
    if (f == NULL) return crl_fail(CRL_ERR_IO, __func__, "cannot open '%s'", path);
    unsigned char head[4];
    int rc = CRL_OK;
    if (gzread(f, head, 4) != 4) {
        rc = crl_fail(CRL_ERR_IO, __func__, "'%s' is too short for an idx header (4 bytes)", path);
    } else if (head[0] != 0 || head[1] != 0 || head[3] < 1 || head[3] > 4) {
        rc = crl_fail(CRL_ERR_IO, __func__, "'%s' is not an idx file: magic %02x %02x %02x %02x (expected "
                      "00 00 08 01..04)", path, head[0], head[1], head[2], head[3]);
    } else if (head[2] != 0x08) {
        rc = crl_fail(CRL_ERR_UNSUPPORTED, __func__, "'%s' holds idx element type 0x%02x; only unsigned "
                      "bytes (0x08) are supported", path, head[2]);
    }
    int64_t dims[4] = {0}, numel = 1;
    int ndim = head[3];
    for (int d = 0; rc == CRL_OK && d < ndim; d++) {
        unsigned char b[4];
        if (gzread(f, b, 4) != 4) {
            rc = crl_fail(CRL_ERR_IO, __func__, "'%s' is truncated in its header (dimension %d)", path, d);
            break;
        }
        dims[d] = be32(b);
        if (dims[d] > ((int64_t)1 << 31) || (dims[d] > 0 && numel > ((int64_t)1 << 40) / dims[d])) {
            rc = crl_fail(CRL_ERR_IO, __func__, "'%s' declares an implausible size %lld in dimension %d", path,
                          (long long)dims[d], d);
            break;
        }
        numel *= dims[d];
    }
    /* what the file can hold, checked before allocating: its bytes after the
     * header when plain, 1032 times its size when gzipped (deflate's
     * largest ratio), so a short file never reserves the size it claims */
    struct stat st;
    if (rc == CRL_OK && stat(path, &st) == 0) {
        int64_t room = gzdirect(f) ? (int64_t)st.st_size - 4 - 4 * ndim : (int64_t)st.st_size * 1032;
        if (numel > room)
            rc = crl_fail(CRL_ERR_IO, __func__, "'%s' is truncated: the header promises %lld bytes of data, a "
                          "%lld-byte file cannot hold them", path, (long long)numel, (long long)st.st_size);
    }
    if (rc == CRL_OK) rc = crl_prepare(out, CRL_UINT8, CRL_CPU, ndim, dims);
    if (rc == CRL_OK) {
        unsigned char *p = crl_tensor_data(out);
        int64_t got = 0;
        while (got < numel) {
            unsigned chunk = numel - got > (1 << 30) ? (1u << 30) : (unsigned)(numel - got);
            int r = gzread(f, p + got, chunk);
            if (r <= 0) break;
            got += r;
        }
        if (got != numel) {
            int errnum = 0;
            const char *zmsg = gzerror(f, &errnum);
            rc = crl_fail(CRL_ERR_IO, __func__, "'%s' is truncated: the header promises %lld bytes of data, "
                          "the file holds %lld%s%s", path, (long long)numel, (long long)got,
                          errnum < 0 ? "; zlib: " : "", errnum < 0 ? zmsg : "");
        }
    }
    gzclose(f);
    return rc;
}

int crl_crc32(uint32_t *crc, const void *data, int64_t nbytes)
{
    if (crc == NULL) return crl_fail(CRL_ERR_ARG, __func__, "argument 'crc' is NULL");
    if (nbytes < 0) return crl_fail(CRL_ERR_ARG, __func__, "nbytes = %lld is negative", (long long)nbytes);
    if (data == NULL && nbytes > 0) return crl_fail(CRL_ERR_ARG, __func__, "argument 'data' is NULL");
    const unsigned char *p = data;
    uLong c = *crc;
    while (nbytes > 0) { /* zlib takes a uInt length */
        uInt chunk = nbytes > (1 << 30) ? (1u << 30) : (uInt)nbytes;
        c = crc32(c, p, chunk);
        p += chunk;
        nbytes -= chunk;
    }
    *crc = (uint32_t)c;
    return CRL_OK;
}
