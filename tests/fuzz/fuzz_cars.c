/* tests/fuzz/fuzz_cars.c -- crl_cars_annos_read and crl_cars_meta_read (the
 * Stanford Cars devkit's MATLAB files: crlab's level-5 walk, then libmatio;
 * matio itself is not instrumented, crlab's use of it is). Each input is
 * read as both files. */
#include "crlab.h"
#include "fuzz_common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    crl_tensor *labels = crl_tensor_new(CRL_INT32, CRL_CPU, 1, (int64_t[]){0});
    crl_tensor *boxes = crl_tensor_new(CRL_FLOAT32, CRL_CPU, 1, (int64_t[]){0});
    crl_tensor *names = crl_tensor_new(CRL_UINT8, CRL_CPU, 1, (int64_t[]){0});
    if (labels == NULL || boxes == NULL || names == NULL) abort();
    const char *path = fuzz_write_file(data, size, ".mat");
    crl_cars_annos_read(labels, boxes, names, path, 196);
    crl_cars_meta_read(names, path);
    crl_tensor_free(labels);
    crl_tensor_free(boxes);
    crl_tensor_free(names);
    return 0;
}
