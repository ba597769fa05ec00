/* backend.h -- a compute backend as the op layer (core/ops.c) sees it: one
 * function pointer per public operation, with the public signature. The CPU
 * fills every entry (cpu/backend.c), and so does the CUDA plugin (core/cuda/,
 * built as libcrlab_cuda.so and loaded on first use); a NULL entry, for an
 * operation added before its CUDA kernel, is reported by the op layer as
 * "no kernel for this device yet".
 * Not part of the API: the FFI never sees this header. */
#ifndef CRLAB_BACKEND_H
#define CRLAB_BACKEND_H

#include "crlab.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct crl_backend {
    int device;       /* CRL_CPU or CRL_CUDA */
    const char *name; /* "CPU", "CUDA" */
    int (*tensor_binary)(crl_tensor *out, const crl_tensor *a, const crl_tensor *b, int op);
    int (*tensor_binary_scalar)(crl_tensor *out, const crl_tensor *a, double s, int op, int reverse);
    int (*tensor_unary)(crl_tensor *out, const crl_tensor *a, int op);
    int (*tensor_clamp)(crl_tensor *out, const crl_tensor *a, double lo, double hi);
    int (*tensor_sum)(crl_tensor *out, const crl_tensor *src, int dim, int keepdim);
    int (*tensor_mean)(crl_tensor *out, const crl_tensor *src, int dim, int keepdim);
    int (*tensor_max)(crl_tensor *values, crl_tensor *indices, const crl_tensor *src, int dim, int keepdim);
    int (*tensor_min)(crl_tensor *values, crl_tensor *indices, const crl_tensor *src, int dim, int keepdim);
    int (*tensor_softmax)(crl_tensor *out, const crl_tensor *src, int dim);
    int (*tensor_log_softmax)(crl_tensor *out, const crl_tensor *src, int dim);
    int (*tensor_sum_all)(double *value, const crl_tensor *t);
    int (*tensor_max_all)(double *value, const crl_tensor *t);
    int (*tensor_min_all)(double *value, const crl_tensor *t);
    int (*tensor_gemm)(crl_tensor *out, const crl_tensor *a, const crl_tensor *b, int transpose_a, int transpose_b, float alpha, float beta);
    int (*loss_forward)(double *value, crl_tensor *per_example, const crl_tensor *logits, const crl_tensor *labels, const crl_loss_spec *spec);
    int (*loss_forward_into)(crl_tensor *value, crl_tensor *per_example, const crl_tensor *logits, const crl_tensor *labels, const crl_loss_spec *spec);
    int (*loss_backward)(crl_tensor *grad, const crl_tensor *logits, const crl_tensor *labels, const crl_tensor *grad_output, const crl_loss_spec *spec);
    int (*conv2d_forward)(crl_tensor *out, const crl_tensor *in, const crl_tensor *weight, const crl_tensor *bias, const crl_conv2d_params *p, crl_tensor *workspace);
    int (*conv2d_backward)(crl_tensor *grad_in, crl_tensor *grad_weight, crl_tensor *grad_bias, const crl_tensor *grad_out, const crl_tensor *in, const crl_tensor *weight, const crl_conv2d_params *p, crl_tensor *workspace);
    int (*conv2d_plan_forward)(crl_conv2d_plan *pl, crl_tensor *out, const crl_tensor *in, const crl_tensor *weight, const crl_tensor *bias, int plain_output);
    int (*conv2d_plan_backward)(crl_conv2d_plan *pl, crl_tensor *grad_in, crl_tensor *grad_weight, crl_tensor *grad_bias, const crl_tensor *grad_out, const crl_tensor *in, const crl_tensor *weight);
    int (*linear_forward)(crl_tensor *out, const crl_tensor *in, const crl_tensor *weight, const crl_tensor *bias);
    int (*linear_backward)(crl_tensor *grad_in, crl_tensor *grad_weight, crl_tensor *grad_bias, const crl_tensor *grad_out, const crl_tensor *in, const crl_tensor *weight);
    int (*batchnorm_forward)(crl_tensor *out, crl_tensor *save_mean, crl_tensor *save_invstd, crl_tensor *running_mean, crl_tensor *running_var, const crl_tensor *in, const crl_tensor *weight, const crl_tensor *bias, int training, float momentum, float eps, int relu);
    int (*batchnorm_backward)(crl_tensor *grad_in, crl_tensor *grad_weight, crl_tensor *grad_bias, const crl_tensor *grad_out, const crl_tensor *in, const crl_tensor *weight, const crl_tensor *save_mean, const crl_tensor *save_invstd, int training, const crl_tensor *relu_out);
    int (*relu_forward)(crl_tensor *out, const crl_tensor *in);
    int (*relu_backward)(crl_tensor *grad_in, const crl_tensor *grad_out, const crl_tensor *out);
    int (*maxpool2d_forward)(crl_tensor *out, crl_tensor *indices, const crl_tensor *in, const crl_pool2d_params *p);
    int (*maxpool2d_backward)(crl_tensor *grad_in, const crl_tensor *grad_out, const crl_tensor *indices, const crl_tensor *in);
    int (*avgpool2d_forward)(crl_tensor *out, const crl_tensor *in, const crl_pool2d_params *p);
    int (*avgpool2d_backward)(crl_tensor *grad_in, const crl_tensor *grad_out, const crl_tensor *in, const crl_pool2d_params *p);
    int (*dropout_forward)(crl_tensor *out, crl_tensor *mask, const crl_tensor *in, float p, crl_generator *g);
    int (*global_avgpool2d_forward)(crl_tensor *out, const crl_tensor *in);
    int (*global_avgpool2d_backward)(crl_tensor *grad_in, const crl_tensor *grad_out, const crl_tensor *in);
    int (*shortcut_pad_forward)(crl_tensor *out, const crl_tensor *in, int out_channels, int stride);
    int (*shortcut_pad_backward)(crl_tensor *grad_in, const crl_tensor *grad_out, const crl_tensor *in, int stride);
    int (*sgd_step)(crl_tensor *params, crl_tensor *momentum_buf, const crl_tensor *grads, const crl_tensor *decay, float lr, float momentum, float dampening, int nesterov);
    int (*adam_step)(crl_tensor *params, crl_tensor *m, crl_tensor *v, const crl_tensor *grads, const crl_tensor *decay, float lr, float beta1, float beta2, float eps, int64_t step, int decoupled);
    int (*tensor_sumsq)(double *value, const crl_tensor *t);
    int (*batch_stats_reset)(crl_tensor *stats, int nbins);
    int (*batch_stats)(crl_tensor *stats, const crl_tensor *logits, const crl_tensor *labels, const crl_tensor *loss, int nbins);
    int (*batch_stats_read)(double *values, const crl_tensor *stats, int64_t n);
    int (*batch_stats_summary)(crl_batch_summary *out, const crl_tensor *stats);
} crl_backend;

/* The device side of the CUDA plugin: memory, copies, the device, the
 * switches. Each returns a status and sets the message itself. */
typedef struct crl_cuda_runtime {
    int (*device_count)(void);
    int (*device_info)(char *name, int namelen, int64_t *total_bytes, int index);
    int (*set_device)(int index);
    int (*get_device)(void);
    int (*synchronize)(void);
    int (*malloc)(void **ptr, int64_t nbytes);
    void (*free)(void *ptr);
    int (*memset_zero)(void *ptr, int64_t nbytes);
    int (*memcpy)(void *dst, const void *src, int64_t nbytes, int kind);
    int (*host_alloc)(void **ptr, int64_t nbytes);
    void (*host_free)(void *ptr);
    int (*host_fence)(const void *host_ptr);
    int (*memory_stats)(crl_cuda_memory_stats *out);
    int (*empty_cache)(void);
    int (*set_option)(int option, int value);
    int (*get_option)(int option);
    /* device-side element work of tensor.c: a fill, and a copy between two
     * CUDA tensors of any strides and dtypes (conversion as math/convert.h) */
    int (*fill)(crl_tensor *t, double value);
    int (*copy)(crl_tensor *dst, const crl_tensor *src);
    /* CUDA graphs (crlab_api.h: crl_cuda_graph_begin ...) */
    int (*graph_begin)(crl_cuda_graph **g);
    int (*graph_end)(crl_cuda_graph *g);
    int (*graph_replay)(crl_cuda_graph *g);
    void (*graph_free)(crl_cuda_graph *g);
} crl_cuda_runtime;

/* What libcrlab_cuda.so exports (one symbol, resolved after dlopen). */
#define CRL_CUDA_PLUGIN_ABI 2
typedef int (*crl_cuda_plugin_fn)(int abi, const crl_backend **ops, const crl_cuda_runtime **rt);

extern const crl_backend crl_cpu_backend;

/* The backend of a device: the CPU's table, or the CUDA plugin's (loaded
 * on first use; fails naming func and why it could not be loaded). */
int crl_backend_for(const crl_backend **be, int device, const char *func);
/* The CUDA runtime of the plugin, or NULL with the message set. */
const crl_cuda_runtime *crl_cuda_rt(const char *func);

/* The op layer's call: the backend of `device`, its entry `fn` or the
 * one "no kernel" error, then the call with the arguments `args`. */
#define CRL_CALL(device, fn, args)                                          \
    do {                                                                    \
        const crl_backend *be_;                                             \
        int rc_ = crl_backend_for(&be_, (device), __func__);                \
        if (rc_) return rc_;                                                \
        if (be_->fn == NULL) return crl_no_kernel(__func__, (device));      \
        return be_->fn args;                                                \
    } while (0)

/* The convolution plan's per-device state: the CPU plan object carries one
 * opaque slot for the CUDA backend (descriptors, chosen algorithms), freed
 * with the plan through the destructor stored beside it. */
typedef struct crl_conv2d_device_slot {
    void *state;
    void (*destroy)(void *state);
} crl_conv2d_device_slot;
crl_conv2d_device_slot *crl_conv2d_plan_device_slot(crl_conv2d_plan *plan);
const crl_conv2d_params *crl_conv2d_plan_params(const crl_conv2d_plan *plan);
void crl_conv2d_plan_set_description(crl_conv2d_plan *plan, const char *text);

/* The checks of the plan calls, shared by the CPU and CUDA kernels (same
 * messages on both devices): the arguments of crl_conv2d_plan_forward /
 * _backward for a kernel of `device`, and the call's shape. */
typedef struct crl_conv2d_shape {
    int64_t n, c, h, w, f, kh, kw, oh, ow, cg; /* cg: input channels per group */
} crl_conv2d_shape;
int crl_conv2d_plan_check(crl_conv2d_shape *s, const crl_conv2d_plan *plan, const crl_tensor *in,
                          const crl_tensor *weight, const crl_tensor *bias, int device, const char *func);
int crl_conv2d_plan_check_forward(crl_conv2d_shape *s, const crl_conv2d_plan *plan, const crl_tensor *out,
                                  const crl_tensor *in, const crl_tensor *weight, const crl_tensor *bias, int device,
                                  const char *func);
int crl_conv2d_plan_check_backward(crl_conv2d_shape *s, const crl_conv2d_plan *plan, const crl_tensor *grad_in,
                                   const crl_tensor *grad_weight, const crl_tensor *grad_bias,
                                   const crl_tensor *grad_out, const crl_tensor *in, const crl_tensor *weight,
                                   int device, const char *func);

/* The checks of the plan-less crl_conv2d_forward / _backward, likewise. */
int crl_conv2d_check_forward(const crl_tensor *out, const crl_tensor *in, const crl_tensor *weight,
                             const crl_tensor *bias, const crl_conv2d_params *p, int device, const char *func);
int crl_conv2d_check_backward(const crl_tensor *grad_in, const crl_tensor *grad_weight, const crl_tensor *grad_bias,
                              const crl_tensor *grad_out, const crl_tensor *in, const crl_tensor *weight,
                              const crl_conv2d_params *p, int device, const char *func);

/* The checks of crl_batchnorm_forward / _backward, shared likewise; they
 * give the call's shape as N, C and H*W (1 for an (N, C) input). */
int crl_batchnorm_check_forward(int64_t *n, int64_t *c, int64_t *hw, const crl_tensor *out,
                                const crl_tensor *save_mean, const crl_tensor *save_invstd,
                                const crl_tensor *running_mean, const crl_tensor *running_var, const crl_tensor *in,
                                const crl_tensor *weight, const crl_tensor *bias, int training, float momentum,
                                float eps, int device, const char *func);
int crl_batchnorm_check_backward(int64_t *n, int64_t *c, int64_t *hw, const crl_tensor *grad_in,
                                 const crl_tensor *grad_weight, const crl_tensor *grad_bias,
                                 const crl_tensor *grad_out, const crl_tensor *in, const crl_tensor *weight,
                                 const crl_tensor *save_mean, const crl_tensor *save_invstd,
                                 const crl_tensor *relu_out, int device, const char *func);

#ifdef __cplusplus
}
#endif

#endif
