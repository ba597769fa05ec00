/* cuda/random.cu -- dropout on the GPU, drawing the CPU's stream: element i
 * takes word i % 4 of the Philox block at counter (generator offset + i / 4)
 * under the generator's seed (math/philox.h, the CPU's code), so the same
 * generator state gives the same mask on both devices, and the generator
 * advances by the same ceil(N / 4) blocks. One thread per block of four. */
#include "common.cuh"
#include "../math/philox.h"

namespace {

__global__ void dropout_kernel(float *out, float *mask, const float *in, int64_t n, uint64_t seed, uint64_t base,
                               uint32_t threshold, float keep)
{
    int64_t blocks = (n + 3) / 4;
    for (int64_t blk = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; blk < blocks;
         blk += (int64_t)gridDim.x * blockDim.x) {
        uint32_t w[4];
        crl_philox_block(w, seed, base + (uint64_t)blk);
        for (int j = 0; j < 4 && blk * 4 + j < n; j++) {
            int64_t i = blk * 4 + j;
            float m = crl_dropout_mask(w[j], threshold, keep);
            mask[i] = m;
            out[i] = in[i] * m; /* in place when out is in: each element is read, then written, by one thread */
        }
    }
}

} // namespace

extern "C" int crl_gpu_dropout_forward(crl_tensor *out, crl_tensor *mask, const crl_tensor *in, float p,
                                       crl_generator *g)
{
    static const char *F = "crl_dropout_forward";
    if (out == NULL) return crl_fail(CRL_ERR_ARG, F, "argument 'out' is NULL");
    if (mask == NULL) return crl_fail(CRL_ERR_ARG, F, "argument 'mask' is NULL");
    int rc = crl_layer_f32(in, CRL_LAYOUT_PLAIN, CRL_CUDA, F, "in"); /* cpu/nn.c's check and message */
    if (rc) return rc;
    if (!(p >= 0 && p < 1)) return crl_fail(CRL_ERR_ARG, F, "p = %g must be in [0, 1)", p);
    if (g == NULL) g = crl_generator_default();
    if ((rc = crl_prepare(mask, CRL_FLOAT32, CRL_CUDA, in->ndim, in->sizes))) return rc;
    if (out != in && (rc = crl_prepare(out, CRL_FLOAT32, CRL_CUDA, in->ndim, in->sizes))) return rc;
    int64_t n = crl_tensor_numel(in);
    float keep = 1.0f / (1.0f - p);
    if (n > 0) {
        cudaStream_t s = crl_gpu_stream(); /* 0 (message set) would be the legacy default stream */
        if (s == 0) return CRL_ERR_DEVICE;
        dropout_kernel<<<crl_gpu_blocks((n + 3) / 4), CRL_GPU_THREADS, 0, s>>>(
            (float *)crl_tensor_data(out), (float *)crl_tensor_data(mask), (const float *)crl_tensor_data(in), n,
            g->seed, g->offset, crl_dropout_threshold(p), keep);
        if ((rc = crl_gpu_launched(F, "dropout_kernel"))) return rc;
    }
    g->offset += (uint64_t)((n + 3) / 4);
    return CRL_OK;
}
