/* cuda/layers.cu -- the CUDA kernels of ReLU, max and average pooling,
 * global average pooling and the padding shortcut: plain NCHW float32, one
 * thread per output element in grid-stride loops on the backend's stream.
 *
 * The checks are the CPU's (crl_*_check in cpu/nn.c, run with CRL_CUDA),
 * and the per-element rules are the CPU's (math/pool.h): window bounds,
 * output sizes, the max pooling indices (position iy * W + jx in the input
 * plane, as the CPU stores them), the shortcut's channel offset. Backward
 * passes gather where the geometry is known (average pooling, shortcut),
 * so they need no atomics and add in the CPU's order. Max pooling's
 * backward has only the indices: it scatters with atomicAdd (overlapping
 * windows may add in any order), or, with the DETERMINISTIC switch, one
 * thread per plane adds in the CPU's order. */
#include "common.cuh"

#include "../math/pool.h"

#define GRID_LOOP(i, n) \
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < (n); i += (int64_t)gridDim.x * blockDim.x)

namespace {

int need_arg(const void *t, const char *func, const char *name)
{
    return t ? CRL_OK : crl_fail(CRL_ERR_ARG, func, "argument '%s' is NULL", name);
}

/* The stream, or 0 with the message set. */
int stream_of(cudaStream_t *s)
{
    *s = crl_gpu_stream();
    return *s ? CRL_OK : CRL_ERR_DEVICE;
}

float *fdata(const crl_tensor *t) { return (float *)crl_tensor_data(t); }

/* Zeroes a contiguous float tensor, ordered on the stream. */
int zero(const crl_tensor *t, cudaStream_t s, const char *func)
{
    int64_t n = crl_tensor_numel(t);
    if (n > 0) CRL_GPU_TRY(cudaMemsetAsync(fdata(t), 0, (size_t)n * sizeof(float), s), func);
    return CRL_OK;
}

/* ---- kernels ----------------------------------------------------------------------------- */

__global__ void relu_forward_kernel(float *y, const float *x, int64_t n)
{
    GRID_LOOP(i, n) y[i] = crl_relu(x[i]);
}

__global__ void relu_backward_kernel(float *gx, const float *g, const float *y, int64_t n)
{
    GRID_LOOP(i, n) gx[i] = crl_relu_grad(g[i], y[i]);
}

/* y, ix (planes, oh, ow); x (planes, h, w) */
__global__ void maxpool_forward_kernel(float *y, int32_t *ix, const float *x, int64_t planes, int64_t h,
                                       int64_t w, int64_t oh, int64_t ow, crl_pool2d_params p)
{
    GRID_LOOP(i, planes * oh * ow) {
        int64_t ox = i % ow, oy = (i / ow) % oh, pl = i / (ow * oh);
        int32_t arg;
        y[i] = crl_maxpool_window(&arg, x + pl * h * w, 1, h, w, oy, ox, &p);
        ix[i] = arg;
    }
}

/* gx (planes, hw), zeroed; g, ix (planes, ohw). Indices outside the plane
 * are skipped, as on the CPU. */
__global__ void maxpool_backward_atomic_kernel(float *gx, const float *g, const int32_t *ix, int64_t planes,
                                               int64_t ohw, int64_t hw)
{
    GRID_LOOP(i, planes * ohw) {
        int32_t a = ix[i];
        if (a >= 0 && a < hw) atomicAdd(&gx[(i / ohw) * hw + a], g[i]);
    }
}

/* The same, one thread per plane adding in order: the CPU's sums exactly. */
__global__ void maxpool_backward_plane_kernel(float *gx, const float *g, const int32_t *ix, int64_t planes,
                                              int64_t ohw, int64_t hw)
{
    GRID_LOOP(pl, planes) {
        for (int64_t q = 0; q < ohw; q++) {
            int32_t a = ix[pl * ohw + q];
            if (a >= 0 && a < hw) gx[pl * hw + a] += g[pl * ohw + q];
        }
    }
}

/* y (planes, oh, ow); x (planes, h, w) */
__global__ void avgpool_forward_kernel(float *y, const float *x, int64_t planes, int64_t h, int64_t w, int64_t oh,
                                       int64_t ow, crl_pool2d_params p)
{
    GRID_LOOP(i, planes * oh * ow) {
        int64_t ox = i % ow, oy = (i / ow) % oh, pl = i / (ow * oh);
        y[i] = crl_avgpool_window(x + pl * h * w, 1, h, w, oy, ox, &p);
    }
}

/* gx (planes, h, w), one thread per input element; g (planes, oh, ow) */
__global__ void avgpool_backward_kernel(float *gx, const float *g, int64_t planes, int64_t h, int64_t w,
                                        int64_t oh, int64_t ow, crl_pool2d_params p)
{
    GRID_LOOP(i, planes * h * w) {
        int64_t jx = i % w, iy = (i / w) % h, pl = i / (w * h);
        gx[i] = crl_avgpool_grad_at(g + pl * oh * ow, 1, oh, ow, h, w, iy, jx, &p);
    }
}

/* y (planes); x (planes, hw) */
__global__ void global_avgpool_forward_kernel(float *y, const float *x, int64_t planes, int64_t hw)
{
    GRID_LOOP(pl, planes) y[pl] = crl_plane_mean(x + pl * hw, 1, hw);
}

/* gx (planes, hw); g (planes) */
__global__ void global_avgpool_backward_kernel(float *gx, const float *g, int64_t planes, int64_t hw)
{
    GRID_LOOP(i, planes * hw) gx[i] = g[i / hw] / (float)hw;
}

/* y (N, co, oh, ow), x (N, ci, h, w): output channel c holds input channel
 * c - pad at pixels (oy * stride, ox * stride); the other channels are 0. */
__global__ void shortcut_forward_kernel(float *y, const float *x, int64_t n, int64_t co, int64_t ci, int64_t h,
                                        int64_t w, int64_t oh, int64_t ow, int64_t pad, int64_t stride)
{
    GRID_LOOP(i, n * co * oh * ow) {
        int64_t ox = i % ow, oy = (i / ow) % oh, c = (i / (ow * oh)) % co, b = i / (ow * oh * co);
        int64_t src = c - pad;
        y[i] = src >= 0 && src < ci ? x[((b * ci + src) * h + oy * stride) * w + ox * stride] : 0.0f;
    }
}

/* gx (N, ci, h, w), one thread per input element; g (N, co, oh, ow) */
__global__ void shortcut_backward_kernel(float *gx, const float *g, int64_t n, int64_t co, int64_t ci, int64_t h,
                                         int64_t w, int64_t oh, int64_t ow, int64_t pad, int64_t stride)
{
    GRID_LOOP(i, n * ci * h * w) {
        int64_t jx = i % w, iy = (i / w) % h, c = (i / (w * h)) % ci, b = i / (w * h * ci);
        gx[i] = iy % stride == 0 && jx % stride == 0
                    ? g[((b * co + c + pad) * oh + iy / stride) * ow + jx / stride]
                    : 0.0f;
    }
}

} // namespace

/* ---- the operations -------------------------------------------------------------------------- */

extern "C" int crl_gpu_relu_forward(crl_tensor *out, const crl_tensor *in)
{
    static const char *F = "crl_relu_forward";
    int rc = need_arg(out, F, "out");
    if (rc == CRL_OK) rc = need_arg(in, F, "in");
    if (rc == CRL_OK) rc = crl_layer_f32(in, CRL_LAYOUT_PLAIN, CRL_CUDA, F, "in");
    if (rc) return rc;
    if (out != in && (rc = crl_prepare(out, CRL_FLOAT32, CRL_CUDA, in->ndim, in->sizes))) return rc;
    int64_t n = crl_tensor_numel(in);
    cudaStream_t s;
    if ((rc = stream_of(&s)) || n == 0) return rc;
    relu_forward_kernel<<<crl_gpu_blocks(n), CRL_GPU_THREADS, 0, s>>>(fdata(out), fdata(in), n);
    return crl_gpu_launched(F, "relu_forward_kernel");
}

extern "C" int crl_gpu_relu_backward(crl_tensor *grad_in, const crl_tensor *grad_out, const crl_tensor *out)
{
    static const char *F = "crl_relu_backward";
    int rc = need_arg(grad_in, F, "grad_in");
    if (rc == CRL_OK) rc = crl_relu_backward_check(grad_out, out, CRL_CUDA, F);
    if (rc) return rc;
    if (grad_in != grad_out && (rc = crl_prepare(grad_in, CRL_FLOAT32, CRL_CUDA, out->ndim, out->sizes))) return rc;
    int64_t n = crl_tensor_numel(out);
    cudaStream_t s;
    if ((rc = stream_of(&s)) || n == 0) return rc;
    relu_backward_kernel<<<crl_gpu_blocks(n), CRL_GPU_THREADS, 0, s>>>(fdata(grad_in), fdata(grad_out), fdata(out), n);
    return crl_gpu_launched(F, "relu_backward_kernel");
}

extern "C" int crl_gpu_maxpool2d_forward(crl_tensor *out, crl_tensor *indices, const crl_tensor *in,
                                         const crl_pool2d_params *p)
{
    static const char *F = "crl_maxpool2d_forward";
    int64_t oh = 0, ow = 0;
    int rc = need_arg(out, F, "out");
    if (rc == CRL_OK) rc = need_arg(indices, F, "indices");
    if (rc == CRL_OK) rc = crl_pool2d_check(&oh, &ow, in, p, CRL_CUDA, F);
    if (rc) return rc;
    int64_t osz[4] = {in->sizes[0], in->sizes[1], oh, ow};
    if ((rc = crl_prepare(out, CRL_FLOAT32, CRL_CUDA, 4, osz)) || (rc = crl_prepare(indices, CRL_INT32, CRL_CUDA, 4, osz)))
        return rc;
    int64_t planes = in->sizes[0] * in->sizes[1], n = planes * oh * ow;
    cudaStream_t s;
    if ((rc = stream_of(&s)) || n == 0) return rc;
    maxpool_forward_kernel<<<crl_gpu_blocks(n), CRL_GPU_THREADS, 0, s>>>(
        fdata(out), (int32_t *)crl_tensor_data(indices), fdata(in), planes, in->sizes[2], in->sizes[3], oh, ow, *p);
    return crl_gpu_launched(F, "maxpool_forward_kernel");
}

extern "C" int crl_gpu_maxpool2d_backward(crl_tensor *grad_in, const crl_tensor *grad_out, const crl_tensor *indices,
                                          const crl_tensor *in)
{
    static const char *F = "crl_maxpool2d_backward";
    int rc = need_arg(grad_in, F, "grad_in");
    if (rc == CRL_OK) rc = crl_maxpool2d_backward_check(grad_out, indices, in, CRL_CUDA, F);
    if (rc) return rc;
    if ((rc = crl_prepare(grad_in, CRL_FLOAT32, CRL_CUDA, 4, in->sizes))) return rc;
    int64_t planes = in->sizes[0] * in->sizes[1], hw = in->sizes[2] * in->sizes[3];
    int64_t ohw = grad_out->sizes[2] * grad_out->sizes[3];
    cudaStream_t s;
    if ((rc = stream_of(&s)) || (rc = zero(grad_in, s, F)) || planes * ohw == 0) return rc;
    const int32_t *ix = (const int32_t *)crl_tensor_data(indices);
    if (crl_gpu_option(CRL_CUDA_DETERMINISTIC)) {
        maxpool_backward_plane_kernel<<<crl_gpu_blocks(planes), CRL_GPU_THREADS, 0, s>>>(
            fdata(grad_in), fdata(grad_out), ix, planes, ohw, hw);
        return crl_gpu_launched(F, "maxpool_backward_plane_kernel");
    }
    maxpool_backward_atomic_kernel<<<crl_gpu_blocks(planes * ohw), CRL_GPU_THREADS, 0, s>>>(
        fdata(grad_in), fdata(grad_out), ix, planes, ohw, hw);
    return crl_gpu_launched(F, "maxpool_backward_atomic_kernel");
}

extern "C" int crl_gpu_avgpool2d_forward(crl_tensor *out, const crl_tensor *in, const crl_pool2d_params *p)
{
    static const char *F = "crl_avgpool2d_forward";
    int64_t oh = 0, ow = 0;
    int rc = need_arg(out, F, "out");
    if (rc == CRL_OK) rc = crl_pool2d_check(&oh, &ow, in, p, CRL_CUDA, F);
    if (rc) return rc;
    int64_t osz[4] = {in->sizes[0], in->sizes[1], oh, ow};
    if ((rc = crl_prepare(out, CRL_FLOAT32, CRL_CUDA, 4, osz))) return rc;
    int64_t planes = in->sizes[0] * in->sizes[1], n = planes * oh * ow;
    cudaStream_t s;
    if ((rc = stream_of(&s)) || n == 0) return rc;
    avgpool_forward_kernel<<<crl_gpu_blocks(n), CRL_GPU_THREADS, 0, s>>>(fdata(out), fdata(in), planes, in->sizes[2],
                                                                        in->sizes[3], oh, ow, *p);
    return crl_gpu_launched(F, "avgpool_forward_kernel");
}

extern "C" int crl_gpu_avgpool2d_backward(crl_tensor *grad_in, const crl_tensor *grad_out, const crl_tensor *in,
                                          const crl_pool2d_params *p)
{
    static const char *F = "crl_avgpool2d_backward";
    int64_t oh = 0, ow = 0;
    int rc = need_arg(grad_in, F, "grad_in");
    if (rc == CRL_OK) rc = crl_avgpool2d_backward_check(&oh, &ow, grad_out, in, p, CRL_CUDA, F);
    if (rc) return rc;
    if ((rc = crl_prepare(grad_in, CRL_FLOAT32, CRL_CUDA, 4, in->sizes))) return rc;
    int64_t planes = in->sizes[0] * in->sizes[1], n = crl_tensor_numel(in);
    cudaStream_t s;
    if ((rc = stream_of(&s)) || n == 0) return rc;
    avgpool_backward_kernel<<<crl_gpu_blocks(n), CRL_GPU_THREADS, 0, s>>>(fdata(grad_in), fdata(grad_out), planes,
                                                                         in->sizes[2], in->sizes[3], oh, ow, *p);
    return crl_gpu_launched(F, "avgpool_backward_kernel");
}

extern "C" int crl_gpu_global_avgpool2d_forward(crl_tensor *out, const crl_tensor *in)
{
    static const char *F = "crl_global_avgpool2d_forward";
    int rc = need_arg(out, F, "out");
    if (rc == CRL_OK) rc = crl_global_avgpool2d_check(NULL, in, CRL_CUDA, F);
    if (rc) return rc;
    int64_t osz[2] = {in->sizes[0], in->sizes[1]};
    if ((rc = crl_prepare(out, CRL_FLOAT32, CRL_CUDA, 2, osz))) return rc;
    int64_t planes = osz[0] * osz[1];
    cudaStream_t s;
    if ((rc = stream_of(&s)) || planes == 0) return rc;
    global_avgpool_forward_kernel<<<crl_gpu_blocks(planes), CRL_GPU_THREADS, 0, s>>>(
        fdata(out), fdata(in), planes, in->sizes[2] * in->sizes[3]);
    return crl_gpu_launched(F, "global_avgpool_forward_kernel");
}

extern "C" int crl_gpu_global_avgpool2d_backward(crl_tensor *grad_in, const crl_tensor *grad_out, const crl_tensor *in)
{
    static const char *F = "crl_global_avgpool2d_backward";
    int rc = need_arg(grad_in, F, "grad_in");
    if (rc == CRL_OK) rc = crl_global_avgpool2d_check(grad_out, in, CRL_CUDA, F);
    if (rc) return rc;
    if ((rc = crl_prepare(grad_in, CRL_FLOAT32, CRL_CUDA, 4, in->sizes))) return rc;
    int64_t planes = in->sizes[0] * in->sizes[1], hw = in->sizes[2] * in->sizes[3];
    cudaStream_t s;
    if ((rc = stream_of(&s)) || planes * hw == 0) return rc;
    global_avgpool_backward_kernel<<<crl_gpu_blocks(planes * hw), CRL_GPU_THREADS, 0, s>>>(
        fdata(grad_in), fdata(grad_out), planes, hw);
    return crl_gpu_launched(F, "global_avgpool_backward_kernel");
}

extern "C" int crl_gpu_shortcut_pad_forward(crl_tensor *out, const crl_tensor *in, int out_channels, int stride)
{
    static const char *F = "crl_shortcut_pad_forward";
    int64_t oh = 0, ow = 0;
    int rc = need_arg(out, F, "out");
    if (rc == CRL_OK) rc = crl_shortcut_pad_check(&oh, &ow, NULL, in, out_channels, stride, CRL_CUDA, F);
    if (rc) return rc;
    int64_t n = in->sizes[0], ci = in->sizes[1], osz[4] = {n, out_channels, oh, ow};
    if ((rc = crl_prepare(out, CRL_FLOAT32, CRL_CUDA, 4, osz))) return rc;
    int64_t total = crl_tensor_numel(out);
    cudaStream_t s;
    if ((rc = stream_of(&s)) || total == 0) return rc;
    shortcut_forward_kernel<<<crl_gpu_blocks(total), CRL_GPU_THREADS, 0, s>>>(
        fdata(out), fdata(in), n, out_channels, ci, in->sizes[2], in->sizes[3], oh, ow,
        crl_shortcut_channel_offset(out_channels, ci), stride);
    return crl_gpu_launched(F, "shortcut_forward_kernel");
}

extern "C" int crl_gpu_shortcut_pad_backward(crl_tensor *grad_in, const crl_tensor *grad_out, const crl_tensor *in,
                                             int stride)
{
    static const char *F = "crl_shortcut_pad_backward";
    int64_t oh = 0, ow = 0;
    int rc = need_arg(grad_in, F, "grad_in");
    if (rc == CRL_OK) rc = need_arg(grad_out, F, "grad_out");
    if (rc == CRL_OK)
        rc = crl_shortcut_pad_check(&oh, &ow, grad_out, in, (int)grad_out->sizes[1], stride, CRL_CUDA, F);
    if (rc) return rc;
    if ((rc = crl_prepare(grad_in, CRL_FLOAT32, CRL_CUDA, 4, in->sizes))) return rc;
    int64_t n = in->sizes[0], ci = in->sizes[1], co = grad_out->sizes[1], total = crl_tensor_numel(in);
    cudaStream_t s;
    if ((rc = stream_of(&s)) || total == 0) return rc;
    shortcut_backward_kernel<<<crl_gpu_blocks(total), CRL_GPU_THREADS, 0, s>>>(
        fdata(grad_in), fdata(grad_out), n, co, ci, in->sizes[2], in->sizes[3], oh, ow,
        crl_shortcut_channel_offset(co, ci), stride);
    return crl_gpu_launched(F, "shortcut_backward_kernel");
}
