/* cuda/device.cu -- the device side of the CUDA backend: the device and its
 * stream, the caching allocator, copies, page-locked host memory, the
 * cuBLAS and cuDNN handles, the switches, and error reporting.
 *
 * The caching allocator keeps freed device blocks for reuse, like
 * PyTorch's: sizes are rounded (512 B below 1 MiB, 128 KiB above), a
 * request takes the smallest cached block that fits within a quarter more
 * than asked, and cudaMalloc runs only when none does; so a training step
 * after warm-up makes no cudaMalloc and no cudaFree. One stream per device
 * orders all work, so a block freed by one operation and reused by the next
 * is safe without events. When cudaMalloc fails the cache is given back
 * and the request retried once; then the error names the size asked for,
 * what tensors hold, what is cached and what the device has free.
 *
 * CUDA graphs (crl_cuda_graph_*): a step captured on THE stream and
 * replayed. The graph holds raw device addresses, so while it lives no
 * block it may touch may be handed to another tensor: every block live
 * when the capture began (or taken from the cache during it) is in the
 * graph's `uses`, and when its tensor frees it the block goes to the
 * graph's `held` list instead of the cache, rejoining the cache when the
 * graph is freed (a block freed during the capture may serve a later
 * request of the same capture: the graph replays them in that order).
 * During a capture nothing may call cudaMalloc (illegal there): a request
 * neither can serve fails, as does any read back to the host (a copy to the
 * host, a synchronisation), which a graph cannot contain. */
#include <algorithm>
#include <map>
#include <mutex>
#include <new>
#include <stdio.h>
#include <string.h>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "common.cuh"

enum { MAX_DEVICES = 16 };

namespace {

struct Block {
    int64_t size;
};

struct Pinned {
    int64_t size;
    cudaEvent_t copied; /* recorded after the last copy out of this block */
    bool pending;
};

} // namespace

/* The opaque handle of crlab_api.h. */
struct crl_cuda_graph {
    int device;
    bool capturing;                               /* between begin and end */
    cudaGraphExec_t exec;                         /* NULL until end succeeded */
    std::unordered_set<void *> uses;              /* blocks the graph may read or write */
    std::vector<std::pair<int64_t, void *>> held; /* of those, freed by their tensors since */
};

namespace {

struct Device {
    bool ready;
    cudaStream_t stream;
    cublasHandle_t cublas;
    void *cublas_workspace; /* set on the handle so that cuBLAS never allocates (in a capture, say) */
    cudnnHandle_t cudnn;
    std::multimap<int64_t, void *> cached;    /* size -> free block */
    std::unordered_map<void *, int64_t> live; /* block -> size */
    int64_t allocated, reserved, peak;
    int64_t mallocs, frees, requests;
    void *scratch;
    int64_t scratch_size;
    crl_cuda_graph *capture;              /* the graph being captured, or NULL */
    std::vector<crl_cuda_graph *> graphs; /* every graph not yet freed */
    std::vector<crl_cuda_graph *> doomed; /* freed during another's capture: retired after it */
};

std::mutex lock;
Device devices[MAX_DEVICES];
int current_device;
int device_total = -1;
std::map<const char *, Pinned> pinned; /* page-locked blocks by start address */
int options[5] = {1, 0, 0, 1024, 0};   /* TF32, DETERMINISTIC, BENCHMARK, WORKSPACE_MB, BF16 */

const char *human(char *buf, size_t n, int64_t bytes)
{
    double v = (double)bytes;
    const char *unit = "B";
    if (v >= 1 << 30) { v /= 1 << 30; unit = "GiB"; }
    else if (v >= 1 << 20) { v /= 1 << 20; unit = "MiB"; }
    else if (v >= 1 << 10) { v /= 1 << 10; unit = "KiB"; }
    snprintf(buf, n, unit[0] == 'B' ? "%.0f %s" : "%.2f %s", v, unit);
    return buf;
}

int64_t round_size(int64_t n)
{
    if (n <= 0) n = 1;
    int64_t q = n < (1 << 20) ? 512 : (128 << 10);
    return (n + q - 1) / q * q;
}

int count_devices(void)
{
    if (device_total < 0) {
        int n = 0;
        if (cudaGetDeviceCount(&n) != cudaSuccess) {
            cudaGetLastError(); /* clear the sticky "no driver" / "no device" error */
            n = 0;
        }
        device_total = n > MAX_DEVICES ? MAX_DEVICES : n;
    }
    return device_total;
}

/* Makes the current device current on this thread and its stream ready.
 * Called with the lock held. */
int ensure_device(const char *func)
{
    if (count_devices() == 0) return crl_fail(CRL_ERR_DEVICE, func, "no CUDA device is available");
    Device &d = devices[current_device];
    static thread_local int current_on_thread = -1; /* cudaSetDevice once per thread and switch */
    if (current_on_thread != current_device) {
        CRL_GPU_TRY(cudaSetDevice(current_device), func);
        current_on_thread = current_device;
    }
    if (!d.ready) {
        CRL_GPU_TRY(cudaStreamCreateWithFlags(&d.stream, cudaStreamNonBlocking), func);
        d.ready = true;
    }
    return CRL_OK;
}

void release_cached(Device &d)
{
    for (auto &kv : d.cached) {
        cudaFree(kv.second);
        d.reserved -= kv.first;
        d.frees++;
    }
    d.cached.clear();
}

/* Fails naming func and what would happen when the device's stream is
 * being captured into a CUDA graph (asked of the driver, so a capture begun
 * outside crlab counts too). */
int refuse_in_capture(Device &d, const char *func, const char *what)
{
    if (!d.ready) return CRL_OK;
    cudaStreamCaptureStatus st = cudaStreamCaptureStatusNone;
    cudaError_t err = cudaStreamIsCapturing(d.stream, &st);
    if (err != cudaSuccess) return crl_gpu_fail(err, func, "cudaStreamIsCapturing");
    if (st == cudaStreamCaptureStatusNone) return CRL_OK;
    return crl_fail(CRL_ERR_DEVICE, func, "%s during CUDA graph capture, where the host cannot wait for the "
                    "GPU: do it before crl_cuda_graph_begin or after the replay", what);
}

/* Takes a block for nbytes from the cache or the driver. Lock held. */
int alloc_locked(Device &d, void **ptr, int64_t nbytes, const char *func)
{
    int64_t size = round_size(nbytes);
    d.requests++;
    auto it = d.cached.lower_bound(size);
    int reuse = -1; /* during a capture: a block of its own held list (freed earlier in the capture) */
    if (d.capture) {
        std::vector<std::pair<int64_t, void *>> &h = d.capture->held;
        for (size_t i = 0; i < h.size(); i++)
            if (h[i].first >= size && h[i].first <= size + size / 4 && (reuse < 0 || h[i].first < h[reuse].first))
                reuse = (int)i;
    }
    if (reuse >= 0) {
        /* the graph's work is one chain on one stream, so a block freed by
         * an earlier operation of the capture is free again for a later one
         * at every replay, as in eager order */
        *ptr = d.capture->held[reuse].second;
        size = d.capture->held[reuse].first;
        d.capture->held.erase(d.capture->held.begin() + reuse);
    } else if (it != d.cached.end() && it->first <= size + size / 4) {
        *ptr = it->second;
        size = it->first;
        d.cached.erase(it);
        if (d.capture) d.capture->uses.insert(*ptr); /* the graph may use it: never cached again while it lives */
    } else {
        char a[32], b[32], c[32], e[32], f[32];
        if (d.capture) {
            *ptr = NULL;
            return crl_fail(CRL_ERR_DEVICE, func, "a request for %s (no cached block fits) would allocate during "
                            "CUDA graph capture: run a step eagerly first, so that the captured step finds its "
                            "memory in the cache", human(a, sizeof a, size));
        }
        cudaError_t err = cudaMalloc(ptr, (size_t)size);
        if (err == cudaErrorMemoryAllocation && !d.cached.empty()) {
            cudaGetLastError();
            /* cached blocks may still be read or written by queued work
             * (freed in stream order), and cudaFree is not documented to
             * wait for it: drain the stream first, as empty_cache does */
            cudaStreamSynchronize(d.stream);
            release_cached(d); /* give the cache back and try once more */
            err = cudaMalloc(ptr, (size_t)size);
        }
        if (err != cudaSuccess) {
            cudaGetLastError();
            *ptr = NULL;
            size_t free_b = 0, total_b = 0;
            cudaMemGetInfo(&free_b, &total_b);
            return crl_fail(CRL_ERR_NOMEM, func,
                            "out of memory on CUDA device %d: asked for %s; tensors hold %s, the cache %s, "
                            "and the device has %s free of %s (%s)",
                            current_device, human(a, sizeof a, size), human(b, sizeof b, d.allocated),
                            human(c, sizeof c, d.reserved - d.allocated), human(e, sizeof e, (int64_t)free_b),
                            human(f, sizeof f, (int64_t)total_b), cudaGetErrorString(err));
        }
        d.mallocs++;
        d.reserved += size;
    }
    d.live[*ptr] = size;
    d.allocated += size;
    if (d.allocated > d.peak) d.peak = d.allocated;
    return CRL_OK;
}

/* A freed block: back to the cache, or onto the held list of the first
 * living graph that may use it. Lock held. */
void cache_block(Device &d, int64_t size, void *ptr, const crl_cuda_graph *skip)
{
    for (crl_cuda_graph *g : d.graphs) {
        if (g != skip && g->uses.count(ptr)) {
            g->held.emplace_back(size, ptr);
            return;
        }
    }
    d.cached.emplace(size, ptr);
}

/* The end of a freed graph: waits for its replays (the stream must not be
 * capturing), destroys it, and gives its held blocks back. Lock held. */
void retire(Device &d, crl_cuda_graph *g)
{
    if (g->exec) {
        cudaStreamSynchronize(d.stream); /* no replay may still be running */
        cudaGraphExecDestroy(g->exec);
        cudaGetLastError();
    }
    d.graphs.erase(std::remove(d.graphs.begin(), d.graphs.end(), g), d.graphs.end());
    for (auto &b : g->held) cache_block(d, b.first, b.second, g);
    delete g;
}

} // namespace

extern "C" {

int crl_gpu_fail(cudaError_t err, const char *func, const char *what)
{
    cudaGetLastError();
    return crl_fail(CRL_ERR_DEVICE, func, "%s failed: %s (%s)", what, cudaGetErrorString(err),
                    cudaGetErrorName(err));
}

int crl_gpu_cudnn_fail(cudnnStatus_t st, const char *func, const char *what)
{
    char detail[256] = "";
    cudnnGetLastErrorString(detail, sizeof detail);
    return crl_fail(CRL_ERR_DEVICE, func, "%s failed: %s%s%s", what, cudnnGetErrorString(st),
                    detail[0] ? ": " : "", detail);
}

int crl_gpu_cublas_fail(cublasStatus_t st, const char *func, const char *what)
{
    return crl_fail(CRL_ERR_DEVICE, func, "%s failed: %s (%s)", what, cublasGetStatusString(st),
                    cublasGetStatusName(st));
}

int crl_gpu_launched(const char *func, const char *kernel)
{
    cudaError_t err = cudaGetLastError();
    if (err == cudaSuccess) return CRL_OK;
    return crl_fail(CRL_ERR_DEVICE, func, "launching %s failed: %s (%s)", kernel, cudaGetErrorString(err),
                    cudaGetErrorName(err));
}

int crl_gpu_require(const crl_tensor *t, const char *func, const char *name)
{
    if (t == NULL) return crl_fail(CRL_ERR_ARG, func, "argument '%s' is NULL", name);
    return crl_require_device(t, CRL_CUDA, func, name);
}

static cudaStream_t stream_for(const char *func)
{
    std::lock_guard<std::mutex> g(lock);
    if (ensure_device(func) != CRL_OK) return 0;
    return devices[current_device].stream;
}

cudaStream_t crl_gpu_stream(void) { return stream_for("crl_gpu_stream"); }

cublasHandle_t crl_gpu_cublas(const char *func)
{
    std::lock_guard<std::mutex> g(lock);
    if (ensure_device(func) != CRL_OK) return NULL;
    Device &d = devices[current_device];
    if (d.cublas == NULL) {
        cublasStatus_t st = cublasCreate(&d.cublas);
        if (st != CUBLAS_STATUS_SUCCESS) {
            d.cublas = NULL;
            crl_gpu_cublas_fail(st, func, "cublasCreate");
            return NULL;
        }
        cublasSetStream(d.cublas, d.stream);
        /* after cublasSetStream, which resets the workspace to cuBLAS's own
         * pool; 32 MiB is cuBLAS's advice for Hopper (4 MiB before) */
        const int64_t ws_bytes = (int64_t)32 << 20;
        if (alloc_locked(d, &d.cublas_workspace, ws_bytes, func) != CRL_OK) {
            cublasDestroy(d.cublas);
            d.cublas = NULL;
            return NULL;
        }
        st = cublasSetWorkspace(d.cublas, d.cublas_workspace, (size_t)ws_bytes);
        if (st != CUBLAS_STATUS_SUCCESS) {
            cublasDestroy(d.cublas);
            d.cublas = NULL;
            crl_gpu_cublas_fail(st, func, "cublasSetWorkspace");
            return NULL;
        }
    }
    return d.cublas;
}

cudnnHandle_t crl_gpu_cudnn(const char *func)
{
    std::lock_guard<std::mutex> g(lock);
    if (ensure_device(func) != CRL_OK) return NULL;
    Device &d = devices[current_device];
    if (d.cudnn == NULL) {
        cudnnStatus_t st = cudnnCreate(&d.cudnn);
        if (st != CUDNN_STATUS_SUCCESS) {
            d.cudnn = NULL;
            crl_gpu_cudnn_fail(st, func, "cudnnCreate");
            return NULL;
        }
        cudnnSetStream(d.cudnn, d.stream);
    }
    return d.cudnn;
}

int crl_gpu_option(int option) { return option >= 0 && option < 5 ? options[option] : 0; }

int crl_gpu_no_capture(const char *func, const char *what)
{
    std::lock_guard<std::mutex> g(lock);
    int rc = ensure_device(func);
    if (rc) return rc;
    return refuse_in_capture(devices[current_device], func, what);
}

} /* extern "C" */

/* ---- the runtime table ------------------------------------------------------------------ */

static int rt_device_count(void)
{
    std::lock_guard<std::mutex> g(lock);
    return count_devices();
}

static int rt_device_info(char *name, int namelen, int64_t *total_bytes, int index)
{
    int n = rt_device_count();
    if (index < 0 || index >= n)
        return crl_fail(CRL_ERR_DEVICE, "crl_cuda_device_info", "no CUDA device %d (this machine has %d)", index, n);
    cudaDeviceProp prop;
    CRL_GPU_TRY(cudaGetDeviceProperties(&prop, index), "crl_cuda_device_info");
    if (name && namelen > 0) snprintf(name, (size_t)namelen, "%s", prop.name);
    if (total_bytes) *total_bytes = (int64_t)prop.totalGlobalMem;
    return CRL_OK;
}

static int rt_set_device(int index)
{
    std::lock_guard<std::mutex> g(lock);
    int n = count_devices();
    if (index < 0 || index >= n)
        return crl_fail(CRL_ERR_DEVICE, "crl_cuda_set_device", "no CUDA device %d (this machine has %d)", index, n);
    current_device = index;
    return ensure_device("crl_cuda_set_device");
}

static int rt_get_device(void) { return current_device; }

static int rt_synchronize(void)
{
    cudaStream_t s = stream_for("crl_cuda_synchronize");
    if (s == 0) return CRL_ERR_DEVICE;
    int rc = crl_gpu_no_capture("crl_cuda_synchronize", "waiting for the GPU (crl_cuda_synchronize)");
    if (rc) return rc;
    CRL_GPU_TRY(cudaStreamSynchronize(s), "crl_cuda_synchronize");
    return CRL_OK;
}

static int rt_malloc(void **ptr, int64_t nbytes)
{
    static const char *func = "crl_cuda_malloc";
    *ptr = NULL;
    std::lock_guard<std::mutex> g(lock);
    int rc = ensure_device(func);
    if (rc) return rc;
    return alloc_locked(devices[current_device], ptr, nbytes, func);
}

static void rt_free(void *ptr)
{
    if (ptr == NULL) return;
    std::lock_guard<std::mutex> g(lock);
    for (int i = 0; i < MAX_DEVICES; i++) {
        Device &d = devices[i];
        auto it = d.live.find(ptr);
        if (it == d.live.end()) continue;
        cache_block(d, it->second, ptr, NULL);
        d.allocated -= it->second;
        d.live.erase(it);
        return;
    }
}

static int rt_memset_zero(void *ptr, int64_t nbytes)
{
    cudaStream_t s = stream_for("crl_cuda_memset_zero");
    if (s == 0) return CRL_ERR_DEVICE;
    CRL_GPU_TRY(cudaMemsetAsync(ptr, 0, (size_t)nbytes, s), "crl_cuda_memset_zero");
    return CRL_OK;
}

/* The page-locked block holding [p, p + n), or NULL. Lock held. */
static Pinned *find_pinned(const void *p, int64_t n)
{
    auto it = pinned.upper_bound((const char *)p);
    if (it == pinned.begin()) return NULL;
    --it;
    const char *start = it->first;
    if ((const char *)p + n <= start + it->second.size) return &it->second;
    return NULL;
}

static int rt_memcpy(void *dst, const void *src, int64_t nbytes, int kind)
{
    static const char *func = "crl_cuda_memcpy";
    if (kind < 0 || kind > 2) return crl_fail(CRL_ERR_ARG, func, "unknown copy kind %d", kind);
    cudaStream_t s = stream_for(func);
    if (s == 0) return CRL_ERR_DEVICE;
    if (nbytes == 0) return CRL_OK;
    if (kind == 0) {
        int rc = crl_gpu_no_capture(func, "copying host memory to the device (the graph would copy from that "
                                          "host memory at each replay)");
        if (rc) return rc;
        /* host -> device: from page-locked memory the copy overlaps with the
         * work queued before it, and an event marks when the host block may
         * be written again (crl_cuda_host_fence). From ordinary memory the
         * runtime usually stages the data before returning, but the API
         * only says it "might be synchronous", and callers free or reuse
         * the source at once (stack buffers, temporaries): wait for it. */
        {
            std::lock_guard<std::mutex> g(lock);
            CRL_GPU_TRY(cudaMemcpyAsync(dst, src, (size_t)nbytes, cudaMemcpyHostToDevice, s), func);
            Pinned *pb = find_pinned(src, nbytes);
            if (pb) {
                CRL_GPU_TRY(cudaEventRecord(pb->copied, s), func);
                pb->pending = true;
                return CRL_OK;
            }
        }
        CRL_GPU_TRY(cudaStreamSynchronize(s), func);
        return CRL_OK;
    }
    if (kind == 1) { /* device -> host: the host reads it next */
        char what[96];
        snprintf(what, sizeof what, "reading %lld bytes back to the host (a tensor's values)", (long long)nbytes);
        int rc = crl_gpu_no_capture(func, what);
        if (rc) return rc;
        CRL_GPU_TRY(cudaMemcpyAsync(dst, src, (size_t)nbytes, cudaMemcpyDeviceToHost, s), func);
        CRL_GPU_TRY(cudaStreamSynchronize(s), func);
        return CRL_OK;
    }
    CRL_GPU_TRY(cudaMemcpyAsync(dst, src, (size_t)nbytes, cudaMemcpyDeviceToDevice, s), func);
    return CRL_OK;
}

static int rt_host_alloc(void **ptr, int64_t nbytes)
{
    static const char *func = "crl_cuda_host_alloc";
    *ptr = NULL;
    if (rt_device_count() == 0) return crl_fail(CRL_ERR_DEVICE, func, "no CUDA device for page-locked memory");
    CRL_GPU_TRY(cudaHostAlloc(ptr, (size_t)nbytes, cudaHostAllocDefault), func);
    cudaEvent_t ev;
    cudaError_t err = cudaEventCreateWithFlags(&ev, cudaEventDisableTiming);
    if (err != cudaSuccess) {
        cudaFreeHost(*ptr);
        *ptr = NULL;
        return crl_gpu_fail(err, func, "cudaEventCreateWithFlags");
    }
    std::lock_guard<std::mutex> g(lock);
    pinned[(const char *)*ptr] = Pinned{nbytes, ev, false};
    return CRL_OK;
}

static int rt_host_fence(const void *p)
{
    cudaEvent_t ev = NULL;
    {
        std::lock_guard<std::mutex> g(lock);
        Pinned *pb = find_pinned(p, 1);
        if (pb == NULL || !pb->pending) return CRL_OK;
        ev = pb->copied;
        pb->pending = false;
    }
    CRL_GPU_TRY(cudaEventSynchronize(ev), "crl_cuda_host_fence");
    return CRL_OK;
}

static void rt_host_free(void *ptr)
{
    if (ptr == NULL) return;
    cudaEvent_t ev = NULL;
    {
        std::lock_guard<std::mutex> g(lock);
        auto it = pinned.find((const char *)ptr);
        if (it != pinned.end()) {
            ev = it->second.copied;
            pinned.erase(it);
        }
    }
    if (ev) {
        cudaEventSynchronize(ev); /* no copy may still read the block */
        cudaEventDestroy(ev);
    }
    cudaFreeHost(ptr);
}

static int rt_memory_stats(crl_cuda_memory_stats *out)
{
    std::lock_guard<std::mutex> g(lock);
    int rc = ensure_device("crl_cuda_memory");
    if (rc) return rc;
    Device &d = devices[current_device];
    out->allocated = d.allocated;
    out->reserved = d.reserved;
    out->peak_allocated = d.peak;
    out->device_mallocs = d.mallocs;
    out->device_frees = d.frees;
    out->requests = d.requests;
    size_t free_b = 0, total_b = 0;
    CRL_GPU_TRY(cudaMemGetInfo(&free_b, &total_b), "crl_cuda_memory");
    out->device_total = (int64_t)total_b;
    out->device_free = (int64_t)free_b;
    return CRL_OK;
}

static int rt_empty_cache(void)
{
    std::lock_guard<std::mutex> g(lock);
    int rc = ensure_device("crl_cuda_empty_cache");
    if (rc) return rc;
    Device &d = devices[current_device];
    if ((rc = refuse_in_capture(d, "crl_cuda_empty_cache", "emptying the cache"))) return rc;
    CRL_GPU_TRY(cudaStreamSynchronize(d.stream), "crl_cuda_empty_cache");
    release_cached(d);
    return CRL_OK;
}

static int rt_set_option(int option, int value)
{
    static const char *const names[5] = {"TF32", "DETERMINISTIC", "BENCHMARK", "WORKSPACE_MB", "BF16"};
    if (option < 0 || option > 4)
        return crl_fail(CRL_ERR_ARG, "crl_cuda_set_option", "unknown option %d (0..4)", option);
    if (option == CRL_CUDA_WORKSPACE_MB ? value < 0 : (value != 0 && value != 1))
        return crl_fail(CRL_ERR_ARG, "crl_cuda_set_option", "%s must be %s, got %d", names[option],
                        option == CRL_CUDA_WORKSPACE_MB ? ">= 0" : "0 or 1", value);
    options[option] = value;
    return CRL_OK;
}

static int rt_get_option(int option) { return crl_gpu_option(option); }

extern "C" int crl_gpu_scratch(void **ptr, int64_t nbytes, const char *func)
{
    Device &d = devices[current_device];
    if (nbytes <= d.scratch_size && d.scratch) {
        *ptr = d.scratch;
        return CRL_OK;
    }
    if (d.scratch) rt_free(d.scratch); /* stream-ordered: earlier users finish first */
    d.scratch = NULL;
    d.scratch_size = 0;
    int rc = rt_malloc(&d.scratch, nbytes);
    if (rc) {
        char why[1024]; /* crl_fail writes the buffer crl_last_error reads */
        snprintf(why, sizeof why, "%s", crl_last_error());
        return crl_fail(rc, func, "scratch of %lld bytes: %s", (long long)nbytes, why);
    }
    d.scratch_size = nbytes;
    *ptr = d.scratch;
    return CRL_OK;
}

/* ---- CUDA graphs ------------------------------------------------------------------------- */

static int rt_graph_begin(crl_cuda_graph **out)
{
    static const char *F = "crl_cuda_graph_begin";
    *out = NULL;
    std::lock_guard<std::mutex> g(lock);
    int rc = ensure_device(F);
    if (rc) return rc;
    Device &d = devices[current_device];
    if ((rc = refuse_in_capture(d, F, "beginning another capture"))) return rc;
    crl_cuda_graph *gr = new (std::nothrow) crl_cuda_graph();
    if (gr == NULL) return crl_fail(CRL_ERR_NOMEM, F, "out of host memory for a graph");
    try {
        gr->uses.reserve(d.live.size());
        for (auto &kv : d.live) gr->uses.insert(kv.first);
        d.graphs.push_back(gr);
    } catch (const std::bad_alloc &) {
        delete gr;
        return crl_fail(CRL_ERR_NOMEM, F, "out of host memory for a graph");
    }
    gr->device = current_device;
    cudaError_t err = cudaStreamBeginCapture(d.stream, cudaStreamCaptureModeThreadLocal);
    if (err != cudaSuccess) {
        d.graphs.pop_back();
        delete gr;
        return crl_gpu_fail(err, F, "cudaStreamBeginCapture");
    }
    gr->capturing = true;
    d.capture = gr;
    *out = gr;
    return CRL_OK;
}

/* Ends the capture of g on its device's stream; the captured graph, or
 * NULL. Lock held. */
static cudaError_t end_capture(Device &d, crl_cuda_graph *g, cudaGraph_t *graph)
{
    *graph = NULL;
    g->capturing = false;
    d.capture = NULL;
    cudaError_t err = cudaStreamEndCapture(d.stream, graph);
    if (err != cudaSuccess) cudaGetLastError();
    /* graphs freed during the capture: their replays can be waited for now */
    std::vector<crl_cuda_graph *> doomed;
    doomed.swap(d.doomed);
    for (crl_cuda_graph *x : doomed) retire(d, x);
    return err;
}

static int rt_graph_end(crl_cuda_graph *g)
{
    static const char *F = "crl_cuda_graph_end";
    if (g == NULL) return crl_fail(CRL_ERR_ARG, F, "argument 'g' is NULL");
    std::lock_guard<std::mutex> lk(lock);
    Device &d = devices[g->device];
    if (!g->capturing)
        return crl_fail(CRL_ERR_ARG, F, "this graph is not being captured (crl_cuda_graph_end runs once, after "
                        "crl_cuda_graph_begin)");
    cudaGraph_t graph = NULL;
    cudaError_t err = end_capture(d, g, &graph);
    if (err != cudaSuccess || graph == NULL) {
        if (graph) cudaGraphDestroy(graph);
        if (err == cudaSuccess) err = cudaErrorStreamCaptureInvalidated;
        return crl_fail(CRL_ERR_DEVICE, F, "the capture failed: %s (%s); an operation in it cannot be captured "
                        "(the stream is usable again; free this graph)", cudaGetErrorString(err),
                        cudaGetErrorName(err));
    }
    err = cudaGraphInstantiate(&g->exec, graph, 0);
    cudaGraphDestroy(graph); /* the executable graph does not need it */
    if (err != cudaSuccess) {
        g->exec = NULL;
        cudaGetLastError();
        return crl_fail(CRL_ERR_DEVICE, F, "cudaGraphInstantiate failed: %s (%s)", cudaGetErrorString(err),
                        cudaGetErrorName(err));
    }
    return CRL_OK;
}

static int rt_graph_replay(crl_cuda_graph *g)
{
    static const char *F = "crl_cuda_graph_replay";
    if (g == NULL) return crl_fail(CRL_ERR_ARG, F, "argument 'g' is NULL");
    std::lock_guard<std::mutex> lk(lock);
    if (g->exec == NULL)
        return crl_fail(CRL_ERR_ARG, F, "this graph has not been captured (crl_cuda_graph_end did not succeed)");
    if (g->device != current_device)
        return crl_fail(CRL_ERR_DEVICE, F, "this graph was captured on CUDA device %d, and device %d is current",
                        g->device, current_device);
    Device &d = devices[g->device];
    int rc = refuse_in_capture(d, F, "replaying a graph");
    if (rc) return rc;
    CRL_GPU_TRY(cudaGraphLaunch(g->exec, d.stream), F);
    return CRL_OK;
}

static void rt_graph_free(crl_cuda_graph *g)
{
    if (g == NULL) return;
    std::lock_guard<std::mutex> lk(lock);
    Device &d = devices[g->device];
    if (g->capturing) { /* never ended (the captured function failed): end it, so the stream works again */
        cudaGraph_t graph = NULL;
        end_capture(d, g, &graph);
        if (graph) cudaGraphDestroy(graph);
    }
    if (d.capture) { /* another graph is being captured: the stream cannot be waited for now */
        d.doomed.push_back(g);
        return;
    }
    retire(d, g);
}

extern "C" const crl_cuda_runtime crl_gpu_runtime = {
    rt_device_count, rt_device_info, rt_set_device, rt_get_device, rt_synchronize,
    rt_malloc,       rt_free,        rt_memset_zero, rt_memcpy,     rt_host_alloc,
    rt_host_free,    rt_host_fence,  rt_memory_stats, rt_empty_cache, rt_set_option,
    rt_get_option,   crl_gpu_fill,   crl_gpu_copy,   rt_graph_begin, rt_graph_end,
    rt_graph_replay, rt_graph_free,
};
