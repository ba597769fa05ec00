/* math/hd.h -- CRL_HD marks a function of the shared math headers
 * (core/math/): compiled by the C compiler for the CPU kernels and by nvcc
 * for both host and device, so the CPU tests cover the arithmetic the CUDA
 * kernels run. Write `CRL_HD double f(...)`. */
#ifndef CRLAB_MATH_HD_H
#define CRLAB_MATH_HD_H

#ifdef __CUDACC__
#define CRL_HD static __host__ __device__ __forceinline__
#else
#define CRL_HD static inline
#endif

#endif
