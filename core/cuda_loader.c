/* cuda_loader.c -- the CUDA backend is a plugin: core/cuda/ builds into
 * libcrlab_cuda.so next to libcrlab.so (when nvcc is found), linked against
 * cuDNN and cuBLAS. libcrlab.so itself never links a CUDA library, so a CPU
 * user loads none; the first CUDA request (a device query, a :cuda(), an
 * operation on a CUDA tensor) dlopens the plugin and takes its tables. When
 * it cannot be loaded (built without CUDA, cuDNN missing, ...) device
 * queries answer "no device" and every request fails with the reason.
 * The device count, which the batch loader asks for, first looks for the
 * NVIDIA driver (libcuda.so.1) and loads nothing more on a machine without
 * one, so CPU training never maps cuDNN or cuBLAS. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "backend.h"
#include "internal.h"

#ifndef CRL_WITH_CUDA
#define CRL_WITH_CUDA 0
#endif

static pthread_once_t load_once = PTHREAD_ONCE_INIT;
static const crl_backend *cuda_ops;
static const crl_cuda_runtime *cuda_runtime;
static char load_error[4096 + 1024];

static void load_plugin(void)
{
    if (!CRL_WITH_CUDA) {
        snprintf(load_error, sizeof load_error,
                 "this libcrlab was built without CUDA (rebuild with nvcc on PATH, or make CUDA=1)");
        return;
    }
    /* the plugin sits beside this library */
    Dl_info info;
    char path[4096];
    if (dladdr((void *)load_plugin, &info) && info.dli_fname && strrchr(info.dli_fname, '/')) {
        const char *slash = strrchr(info.dli_fname, '/');
        snprintf(path, sizeof path, "%.*s/libcrlab_cuda.so", (int)(slash - info.dli_fname), info.dli_fname);
    } else {
        snprintf(path, sizeof path, "libcrlab_cuda.so");
    }
    void *h = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (h == NULL) {
        const char *why = dlerror();
        snprintf(load_error, sizeof load_error,
                 "the CUDA backend could not be loaded: %s (cuDNN 9 and cuBLAS must be on the library path, "
                 "e.g. LD_LIBRARY_PATH)", why ? why : path);
        return;
    }
    crl_cuda_plugin_fn entry = (crl_cuda_plugin_fn)dlsym(h, "crl_cuda_plugin");
    if (entry == NULL) {
        snprintf(load_error, sizeof load_error, "%s has no crl_cuda_plugin entry point", path);
        return;
    }
    const crl_backend *ops = NULL;
    const crl_cuda_runtime *rt = NULL;
    if (entry(CRL_CUDA_PLUGIN_ABI, &ops, &rt) != CRL_OK || ops == NULL || rt == NULL) {
        snprintf(load_error, sizeof load_error, "%s refused to start: %s", path, crl_last_error());
        return;
    }
    cuda_ops = ops;
    cuda_runtime = rt;
}

const crl_cuda_runtime *crl_cuda_rt(const char *func)
{
    pthread_once(&load_once, load_plugin);
    if (cuda_runtime == NULL) crl_fail(CRL_ERR_DEVICE, func, "%s", load_error);
    return cuda_runtime;
}

int crl_backend_for(const crl_backend **be, int device, const char *func)
{
    if (device == CRL_CPU) {
        *be = &crl_cpu_backend;
        return CRL_OK;
    }
    if (device != CRL_CUDA) return crl_fail(CRL_ERR_ARG, func, "unknown device %d", device);
    if (crl_cuda_rt(func) == NULL) return CRL_ERR_DEVICE;
    *be = cuda_ops;
    return CRL_OK;
}

int crl_cuda_compiled(void) { return CRL_WITH_CUDA; }

static pthread_once_t driver_once = PTHREAD_ONCE_INIT;
static int driver_present;

static void probe_driver(void)
{
    void *h = CRL_WITH_CUDA ? dlopen("libcuda.so.1", RTLD_LAZY | RTLD_LOCAL) : NULL;
    driver_present = h != NULL; /* kept open: the CUDA runtime loads it anyway */
}

int crl_cuda_device_count(void)
{
    pthread_once(&driver_once, probe_driver);
    if (!driver_present) return 0;
    pthread_once(&load_once, load_plugin);
    return cuda_runtime ? cuda_runtime->device_count() : 0;
}

/* Forwards to the runtime, or fails with the load error. */
#define RT_OR_FAIL(rt)                                  \
    const crl_cuda_runtime *rt = crl_cuda_rt(__func__); \
    if (rt == NULL) return CRL_ERR_DEVICE

int crl_cuda_device_info(char *name, int namelen, int64_t *total_bytes, int index)
{
    RT_OR_FAIL(rt);
    return rt->device_info(name, namelen, total_bytes, index);
}

int crl_cuda_set_device(int index)
{
    RT_OR_FAIL(rt);
    return rt->set_device(index);
}

int crl_cuda_get_device(void)
{
    pthread_once(&load_once, load_plugin);
    return cuda_runtime ? cuda_runtime->get_device() : -1;
}

int crl_cuda_synchronize(void)
{
    RT_OR_FAIL(rt);
    return rt->synchronize();
}

int crl_cuda_memory(crl_cuda_memory_stats *out)
{
    if (out == NULL) return crl_fail(CRL_ERR_ARG, __func__, "argument 'out' is NULL");
    memset(out, 0, sizeof *out);
    RT_OR_FAIL(rt);
    return rt->memory_stats(out);
}

int crl_cuda_empty_cache(void)
{
    RT_OR_FAIL(rt);
    return rt->empty_cache();
}

int crl_cuda_set_option(int option, int value)
{
    RT_OR_FAIL(rt);
    return rt->set_option(option, value);
}

int crl_cuda_get_option(int option)
{
    const crl_cuda_runtime *rt = crl_cuda_rt(__func__);
    return rt ? rt->get_option(option) : -1;
}

int crl_cuda_malloc(void **ptr, int64_t nbytes)
{
    *ptr = NULL;
    RT_OR_FAIL(rt);
    return rt->malloc(ptr, nbytes);
}

void crl_cuda_free(void *ptr)
{
    if (ptr && cuda_runtime) cuda_runtime->free(ptr);
}

int crl_cuda_memset_zero(void *ptr, int64_t nbytes)
{
    RT_OR_FAIL(rt);
    return rt->memset_zero(ptr, nbytes);
}

int crl_cuda_memcpy(void *dst, const void *src, int64_t nbytes, int kind)
{
    RT_OR_FAIL(rt);
    return rt->memcpy(dst, src, nbytes, kind);
}

int crl_cuda_host_alloc(void **ptr, int64_t nbytes)
{
    *ptr = NULL;
    RT_OR_FAIL(rt);
    return rt->host_alloc(ptr, nbytes);
}

void crl_cuda_host_free(void *ptr)
{
    if (ptr && cuda_runtime) cuda_runtime->host_free(ptr);
}

int crl_cuda_host_fence(const void *host_ptr)
{
    return cuda_runtime && host_ptr ? cuda_runtime->host_fence(host_ptr) : CRL_OK;
}

int crl_cuda_fill(crl_tensor *t, double value)
{
    RT_OR_FAIL(rt);
    return rt->fill(t, value);
}

int crl_cuda_copy(crl_tensor *dst, const crl_tensor *src)
{
    RT_OR_FAIL(rt);
    return rt->copy(dst, src);
}

crl_cuda_graph *crl_cuda_graph_begin(void)
{
    const crl_cuda_runtime *rt = crl_cuda_rt(__func__);
    crl_cuda_graph *g = NULL;
    if (rt == NULL || rt->graph_begin(&g) != CRL_OK) return NULL;
    return g;
}

int crl_cuda_graph_end(crl_cuda_graph *g)
{
    RT_OR_FAIL(rt);
    return rt->graph_end(g);
}

int crl_cuda_graph_replay(crl_cuda_graph *g)
{
    RT_OR_FAIL(rt);
    return rt->graph_replay(g);
}

void crl_cuda_graph_free(crl_cuda_graph *g)
{
    if (g && cuda_runtime) cuda_runtime->graph_free(g);
}
