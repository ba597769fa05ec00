/* cuda/device.cu -- the CUDA side of the core for now: device memory,
 * copies between host and device, and the device query. Built only when
 * nvcc is found (core/cuda_none.c stands in otherwise). The CUDA runtime is
 * linked statically, so libcrlab.so loads on machines without CUDA and
 * reports "no device" there instead of failing to load. */
#include <cuda_runtime.h>
#include <stdio.h>
#include <string.h>

#include "../internal.h"

static int cuda_fail(cudaError_t err, const char *func, const char *what)
{
    return crl_fail(CRL_ERR_DEVICE, func, "%s failed: %s (%s)", what, cudaGetErrorString(err),
                    cudaGetErrorName(err));
}

extern "C" int crl_cuda_compiled(void) { return 1; }

extern "C" int crl_cuda_device_count(void)
{
    int n = 0;
    if (cudaGetDeviceCount(&n) != cudaSuccess) {
        cudaGetLastError(); /* clear the sticky "no driver" error */
        return 0;
    }
    return n;
}

extern "C" int crl_cuda_device_info(char *name, int namelen, int64_t *total_bytes, int index)
{
    int n = crl_cuda_device_count();
    if (index < 0 || index >= n)
        return crl_fail(CRL_ERR_DEVICE, __func__, "no CUDA device %d (this machine has %d)", index, n);
    cudaDeviceProp prop;
    cudaError_t err = cudaGetDeviceProperties(&prop, index);
    if (err != cudaSuccess) return cuda_fail(err, __func__, "cudaGetDeviceProperties");
    if (name && namelen > 0) snprintf(name, (size_t)namelen, "%s", prop.name);
    if (total_bytes) *total_bytes = (int64_t)prop.totalGlobalMem;
    return CRL_OK;
}

extern "C" int crl_cuda_synchronize(void)
{
    if (crl_cuda_device_count() == 0)
        return crl_fail(CRL_ERR_DEVICE, __func__, "no CUDA device is available");
    cudaError_t err = cudaDeviceSynchronize();
    return err == cudaSuccess ? CRL_OK : cuda_fail(err, __func__, "cudaDeviceSynchronize");
}

extern "C" int crl_cuda_malloc(void **ptr, int64_t nbytes)
{
    if (crl_cuda_device_count() == 0)
        return crl_fail(CRL_ERR_DEVICE, __func__,
                        "no CUDA device is available for a %lld-byte tensor", (long long)nbytes);
    cudaError_t err = cudaMalloc(ptr, (size_t)nbytes);
    if (err != cudaSuccess) {
        cudaGetLastError();
        return crl_fail(CRL_ERR_DEVICE, __func__, "cudaMalloc of %lld bytes failed: %s",
                        (long long)nbytes, cudaGetErrorString(err));
    }
    return CRL_OK;
}

extern "C" void crl_cuda_free(void *ptr)
{
    if (ptr) cudaFree(ptr);
}

extern "C" int crl_cuda_memset_zero(void *ptr, int64_t nbytes)
{
    cudaError_t err = cudaMemset(ptr, 0, (size_t)nbytes);
    return err == cudaSuccess ? CRL_OK : cuda_fail(err, __func__, "cudaMemset");
}

extern "C" int crl_cuda_memcpy(void *dst, const void *src, int64_t nbytes, int kind)
{
    static const cudaMemcpyKind kinds[3] = {cudaMemcpyHostToDevice, cudaMemcpyDeviceToHost,
                                            cudaMemcpyDeviceToDevice};
    if (kind < 0 || kind > 2) return crl_fail(CRL_ERR_ARG, __func__, "unknown copy kind %d", kind);
    cudaError_t err = cudaMemcpy(dst, src, (size_t)nbytes, kinds[kind]);
    return err == cudaSuccess ? CRL_OK : cuda_fail(err, __func__, "cudaMemcpy");
}

extern "C" int crl_cuda_host_alloc(void **ptr, int64_t nbytes)
{
    if (crl_cuda_device_count() == 0)
        return crl_fail(CRL_ERR_DEVICE, __func__, "no CUDA device for page-locked memory");
    cudaError_t err = cudaHostAlloc(ptr, (size_t)nbytes, cudaHostAllocDefault);
    if (err != cudaSuccess) {
        cudaGetLastError();
        return cuda_fail(err, __func__, "cudaHostAlloc");
    }
    return CRL_OK;
}

extern "C" void crl_cuda_host_free(void *ptr)
{
    if (ptr) cudaFreeHost(ptr);
}
