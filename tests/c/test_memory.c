/* test_memory.c -- the live storage byte counters: up when a storage is
 * made, down when its last reference goes, unchanged by views, exact when
 * threads make and free storages at once (the loader's workers do), and
 * kept per device. */
#include <pthread.h>
#include <string.h>

#include "crlab.h"
#include "tap.h"

static int64_t cpu(void) { return crl_storage_live_bytes(CRL_CPU); }

static void test_up_and_down(void)
{
    int64_t base = cpu();
    int64_t size[2] = {10, 100}; /* 4000 bytes, held as 4032 (64-byte blocks) */
    crl_tensor *t = crl_tensor_new(CRL_FLOAT32, CRL_CPU, 2, size);
    ok(cpu() - base == 4032, "a (10, 100) float32 tensor adds 4032 bytes (4000 rounded up to 64): %lld",
       (long long)(cpu() - base));
    crl_tensor *v = crl_tensor_new_view(t);
    crl_tensor_narrow(v, t, 0, 2, 3);
    ok(cpu() - base == 4032, "a view adds nothing");
    crl_tensor_free(t);
    ok(cpu() - base == 4032, "freeing the tensor while a view holds the storage frees nothing");
    crl_tensor_free(v);
    ok(cpu() == base, "freeing the last reference returns the count to where it was");

    crl_tensor u;
    memset(&u, 0, sizeof u);
    int64_t one = 16;
    crl_tensor_init(&u, CRL_UINT8, CRL_CPU, 1, &one);
    ok(cpu() - base == 64, "an init'ed header counts too (16 bytes held as 64)");
    int64_t big = 1 << 20;
    crl_tensor_resize(&u, 1, &big);
    ok(cpu() - base == big, "resizing to 1 MiB swaps the storage: %lld", (long long)(cpu() - base));
    crl_tensor_release(&u);
    ok(cpu() == base, "release drops it");
    ok(crl_storage_live_bytes(CRL_CUDA) == 0 || crl_cuda_device_count() > 0,
       "no CUDA bytes are held without a device");
}

static void *churn(void *arg)
{
    int64_t n = (int64_t)(intptr_t)arg;
    for (int i = 0; i < 2000; i++) {
        crl_tensor *t = crl_tensor_new(CRL_UINT8, CRL_CPU, 1, &n);
        crl_tensor *v = crl_tensor_new_view(t);
        crl_tensor_free(t);
        crl_tensor_free(v);
    }
    return NULL;
}

static void test_threads(void)
{
    int64_t base = cpu();
    pthread_t th[4];
    for (int i = 0; i < 4; i++) pthread_create(&th[i], NULL, churn, (void *)(intptr_t)(100 + 64 * i));
    for (int i = 0; i < 4; i++) pthread_join(th[i], NULL);
    ok(cpu() == base, "4 threads making and freeing 8000 storages leave the count where it was");
}

static void test_devices(void)
{
    ok(crl_storage_live_bytes(7) == -1 && strstr(crl_last_error(), "unknown device 7") != NULL,
       "an unknown device gives -1 and a message: %s", crl_last_error());
    if (crl_cuda_device_count() == 0) {
        ok(1, "# SKIP no CUDA device");
        return;
    }
    int64_t base_cpu = cpu(), base_gpu = crl_storage_live_bytes(CRL_CUDA);
    int64_t n = 1000;
    crl_tensor *g = crl_tensor_new(CRL_FLOAT32, CRL_CUDA, 1, &n);
    ok(g && crl_storage_live_bytes(CRL_CUDA) - base_gpu == 4032 && cpu() == base_cpu,
       "a CUDA tensor counts on the CUDA side only");
    crl_tensor_free(g);
    ok(crl_storage_live_bytes(CRL_CUDA) == base_gpu, "and is uncounted when freed");
}

int main(void)
{
    test_up_and_down();
    test_threads();
    test_devices();
    return done_testing();
}
