/* tests/fuzz/fuzz_cars.c -- crl_cars_annos_read and crl_cars_meta_read (the
 * Stanford Cars devkit's MATLAB files: crlab's level-5 walk, then libmatio;
 * matio itself is not instrumented, crlab's use of it is). Each input is
 * read as both files, as it is and with everything after the 128-byte
 * header zlib-compressed into one variable, as MATLAB's -v7 writes it (so
 * mutations reach matio's compressed-variable parser too, which a mutated
 * deflate stream rarely would). */
#include <zlib.h>

#include "crlab.h"
#include "fuzz_common.h"

static void read_both(const uint8_t *data, size_t size, crl_tensor *labels, crl_tensor *boxes, crl_tensor *names)
{
    const char *path = fuzz_write_file(data, size, ".mat");
    crl_cars_annos_read(labels, boxes, names, path, 196);
    crl_cars_meta_read(names, path);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    crl_tensor *labels = crl_tensor_new(CRL_INT32, CRL_CPU, 1, (int64_t[]){0});
    crl_tensor *boxes = crl_tensor_new(CRL_FLOAT32, CRL_CPU, 1, (int64_t[]){0});
    crl_tensor *names = crl_tensor_new(CRL_UINT8, CRL_CPU, 1, (int64_t[]){0});
    if (labels == NULL || boxes == NULL || names == NULL) abort();
    read_both(data, size, labels, boxes, names);
    if (size > 136 && data[128] == 14) { /* an uncompressed variable first: compress the rest */
        uLongf zn = compressBound((uLong)(size - 128));
        uint8_t *z = malloc(136 + zn);
        if (z == NULL) abort();
        memcpy(z, data, 128);
        if (compress2(z + 136, &zn, data + 128, (uLong)(size - 128), 1) != Z_OK) abort();
        uint32_t tag[2] = {15, (uint32_t)zn}; /* miCOMPRESSED, little-endian like the host */
        memcpy(z + 128, tag, 8);
        read_both(z, 136 + zn, labels, boxes, names);
        free(z);
    }
    crl_tensor_free(labels);
    crl_tensor_free(boxes);
    crl_tensor_free(names);
    return 0;
}
