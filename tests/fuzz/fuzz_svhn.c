/* tests/fuzz/fuzz_svhn.c -- crl_svhn_read (SVHN format 2, MATLAB through
 * libmatio; matio itself is not instrumented, crlab's use of it is). */
#include "crlab.h"
#include "fuzz_common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    crl_tensor *images = crl_tensor_new(CRL_UINT8, CRL_CPU, 1, (int64_t[]){0});
    crl_tensor *labels = crl_tensor_new(CRL_INT32, CRL_CPU, 1, (int64_t[]){0});
    if (images == NULL || labels == NULL) abort();
    crl_svhn_read(images, labels, fuzz_write_file(data, size, ".mat"));
    crl_tensor_free(images);
    crl_tensor_free(labels);
    return 0;
}
