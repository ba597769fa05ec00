/* tests/fuzz/fuzz_idx.c -- crl_idx_read on plain and gzipped idx files. */
#include "crlab.h"
#include "fuzz_common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    crl_tensor *t = crl_tensor_new(CRL_UINT8, CRL_CPU, 1, (int64_t[]){0});
    if (t == NULL) abort();
    crl_idx_read(t, fuzz_write_file(data, size, ".idx"));
    crl_tensor_free(t);
    return 0;
}
