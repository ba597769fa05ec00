/* tests/fuzz/fuzz_image.c -- crl_image_decode on PNG and JPEG bytes (it
 * picks the decoder by the magic). The first byte chooses the channels
 * asked for: 0 (as stored), 1 or 3; the rest is the file. */
#include "crlab.h"
#include "fuzz_common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1) return 0;
    static const int channels[3] = {0, 1, 3};
    crl_tensor *t = crl_tensor_new(CRL_UINT8, CRL_CPU, 1, (int64_t[]){0});
    if (t == NULL) abort();
    crl_image_decode(t, data + 1, (int64_t)size - 1, channels[data[0] % 3], "fuzz");
    crl_tensor_free(t);
    return 0;
}
