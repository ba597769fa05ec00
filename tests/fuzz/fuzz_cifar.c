/* tests/fuzz/fuzz_cifar.c -- crl_cifar_read on CIFAR-10 (1 label byte) and
 * CIFAR-100 records (2, fine and coarse) from the same bytes. */
#include "crlab.h"
#include "fuzz_common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    crl_tensor *images = crl_tensor_new(CRL_UINT8, CRL_CPU, 1, (int64_t[]){0});
    crl_tensor *labels = crl_tensor_new(CRL_INT32, CRL_CPU, 1, (int64_t[]){0});
    if (images == NULL || labels == NULL) abort();
    const char *path = fuzz_write_file(data, size, ".bin");
    crl_cifar_read(images, labels, path, 1, 0);
    crl_cifar_read(images, labels, path, 2, 0);
    crl_cifar_read(images, labels, path, 2, 1);
    crl_tensor_free(images);
    crl_tensor_free(labels);
    return 0;
}
