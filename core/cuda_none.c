/* cuda_none.c -- stands in for core/cuda/ when the library is built without
 * CUDA (make CUDA=0, or no nvcc): every device request fails with a message
 * that says how to get a CUDA build. */
#include "internal.h"

static int no_cuda(const char *func)
{
    return crl_fail(CRL_ERR_DEVICE, func,
                    "this libcrlab was built without CUDA (rebuild with nvcc on PATH, or make CUDA=1)");
}

int crl_cuda_compiled(void) { return 0; }
int crl_cuda_device_count(void) { return 0; }

int crl_cuda_device_info(char *name, int namelen, int64_t *total_bytes, int index)
{
    (void)name; (void)namelen; (void)total_bytes; (void)index;
    return no_cuda(__func__);
}

int crl_cuda_synchronize(void) { return no_cuda(__func__); }

int crl_cuda_malloc(void **ptr, int64_t nbytes)
{
    (void)nbytes;
    *ptr = NULL;
    return no_cuda(__func__);
}

void crl_cuda_free(void *ptr) { (void)ptr; }

int crl_cuda_memset_zero(void *ptr, int64_t nbytes)
{
    (void)ptr; (void)nbytes;
    return no_cuda(__func__);
}

int crl_cuda_memcpy(void *dst, const void *src, int64_t nbytes, int kind)
{
    (void)dst; (void)src; (void)nbytes; (void)kind;
    return no_cuda(__func__);
}

int crl_cuda_host_alloc(void **ptr, int64_t nbytes)
{
    (void)nbytes;
    *ptr = NULL;
    return no_cuda(__func__);
}

void crl_cuda_host_free(void *ptr) { (void)ptr; }
