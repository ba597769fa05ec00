/* cuda/bf16.cuh -- bf16 mixed precision (CRL_CUDA_BF16) helpers shared by
 * conv.cu and blas.cu: bfloat16 copies of float32 operands, rounded by the
 * one rule of math/bf16.h, and their results brought back to float32.
 * The copies live in temporary CUDA tensors from the caching allocator
 * (float32 tensors of half as many elements: storage only), freed by the
 * caller with crl_tensor_free once the calls that read them are queued:
 * the allocator is stream-ordered, as for crl_gpu_contiguous_copy. */
#ifndef CRLAB_CUDA_BF16_CUH
#define CRLAB_CUDA_BF16_CUH

#include "common.cuh"

/* Room for n bf16 values (n >= 0): *holder owns it, *ptr is its start
 * (CRL_ERR_DEVICE with the allocation's message when there is no memory). */
int crl_gpu_bf16_buffer(crl_tensor **holder, uint16_t **ptr, int64_t n);
/* A new buffer holding src[0..n) rounded to bf16. */
int crl_gpu_bf16_copy(crl_tensor **holder, uint16_t **ptr, const float *src, int64_t n, const char *func);
/* dst[0..n) = src as float32 (exact), or dst += src when accumulate. */
int crl_gpu_bf16_to_float(float *dst, const uint16_t *src, int64_t n, int accumulate, const char *func);

#endif
