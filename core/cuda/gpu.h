/* cuda/gpu.h -- the CUDA backend's kernels, one per public operation, with
 * the public signature (cf. cpu/cpu.h), reached through the op layer once
 * it has resolved the device to CUDA. Prefixed crl_gpu_ so that nothing in
 * the plugin shadows libcrlab.so's own crl_cuda_* entry points.
 *
 * The table in backend.cu lists them all; an operation without a CUDA
 * kernel would have a NULL entry there, which the op layer reports as "no
 * CUDA kernel yet". */
#ifndef CRLAB_GPU_H
#define CRLAB_GPU_H

#include "../crlab.h"

#ifdef __cplusplus
extern "C" {
#endif

int crl_gpu_tensor_binary(crl_tensor *out, const crl_tensor *a, const crl_tensor *b, int op);
int crl_gpu_tensor_binary_scalar(crl_tensor *out, const crl_tensor *a, double s, int op, int reverse);
int crl_gpu_tensor_unary(crl_tensor *out, const crl_tensor *a, int op);
int crl_gpu_tensor_clamp(crl_tensor *out, const crl_tensor *a, double lo, double hi);
int crl_gpu_tensor_sum(crl_tensor *out, const crl_tensor *src, int dim, int keepdim);
int crl_gpu_tensor_mean(crl_tensor *out, const crl_tensor *src, int dim, int keepdim);
int crl_gpu_tensor_max(crl_tensor *values, crl_tensor *indices, const crl_tensor *src, int dim, int keepdim);
int crl_gpu_tensor_min(crl_tensor *values, crl_tensor *indices, const crl_tensor *src, int dim, int keepdim);
int crl_gpu_tensor_softmax(crl_tensor *out, const crl_tensor *src, int dim);
int crl_gpu_tensor_log_softmax(crl_tensor *out, const crl_tensor *src, int dim);
int crl_gpu_tensor_sum_all(double *value, const crl_tensor *t);
int crl_gpu_tensor_max_all(double *value, const crl_tensor *t);
int crl_gpu_tensor_min_all(double *value, const crl_tensor *t);
int crl_gpu_tensor_gemm(crl_tensor *out, const crl_tensor *a, const crl_tensor *b, int transpose_a, int transpose_b, float alpha, float beta);
int crl_gpu_loss_forward(double *value, crl_tensor *per_example, const crl_tensor *logits, const crl_tensor *labels, const crl_loss_spec *spec);
int crl_gpu_loss_forward_into(crl_tensor *value, crl_tensor *per_example, const crl_tensor *logits, const crl_tensor *labels, const crl_loss_spec *spec);
int crl_gpu_loss_backward(crl_tensor *grad, const crl_tensor *logits, const crl_tensor *labels, const crl_tensor *grad_output, const crl_loss_spec *spec);
int crl_gpu_conv2d_forward(crl_tensor *out, const crl_tensor *in, const crl_tensor *weight, const crl_tensor *bias, const crl_conv2d_params *p, crl_tensor *workspace);
int crl_gpu_conv2d_backward(crl_tensor *grad_in, crl_tensor *grad_weight, crl_tensor *grad_bias, const crl_tensor *grad_out, const crl_tensor *in, const crl_tensor *weight, const crl_conv2d_params *p, crl_tensor *workspace);
int crl_gpu_conv2d_plan_forward(crl_conv2d_plan *pl, crl_tensor *out, const crl_tensor *in, const crl_tensor *weight, const crl_tensor *bias, int plain_output);
int crl_gpu_conv2d_plan_backward(crl_conv2d_plan *pl, crl_tensor *grad_in, crl_tensor *grad_weight, crl_tensor *grad_bias, const crl_tensor *grad_out, const crl_tensor *in, const crl_tensor *weight);
int crl_gpu_linear_forward(crl_tensor *out, const crl_tensor *in, const crl_tensor *weight, const crl_tensor *bias);
int crl_gpu_linear_backward(crl_tensor *grad_in, crl_tensor *grad_weight, crl_tensor *grad_bias, const crl_tensor *grad_out, const crl_tensor *in, const crl_tensor *weight);
int crl_gpu_batchnorm_forward(crl_tensor *out, crl_tensor *save_mean, crl_tensor *save_invstd, crl_tensor *running_mean, crl_tensor *running_var, const crl_tensor *in, const crl_tensor *weight, const crl_tensor *bias, int training, float momentum, float eps, int relu);
int crl_gpu_batchnorm_backward(crl_tensor *grad_in, crl_tensor *grad_weight, crl_tensor *grad_bias, const crl_tensor *grad_out, const crl_tensor *in, const crl_tensor *weight, const crl_tensor *save_mean, const crl_tensor *save_invstd, int training, const crl_tensor *relu_out);
int crl_gpu_relu_forward(crl_tensor *out, const crl_tensor *in);
int crl_gpu_relu_backward(crl_tensor *grad_in, const crl_tensor *grad_out, const crl_tensor *out);
int crl_gpu_maxpool2d_forward(crl_tensor *out, crl_tensor *indices, const crl_tensor *in, const crl_pool2d_params *p);
int crl_gpu_maxpool2d_backward(crl_tensor *grad_in, const crl_tensor *grad_out, const crl_tensor *indices, const crl_tensor *in);
int crl_gpu_avgpool2d_forward(crl_tensor *out, const crl_tensor *in, const crl_pool2d_params *p);
int crl_gpu_avgpool2d_backward(crl_tensor *grad_in, const crl_tensor *grad_out, const crl_tensor *in, const crl_pool2d_params *p);
int crl_gpu_dropout_forward(crl_tensor *out, crl_tensor *mask, const crl_tensor *in, float p, crl_generator *g);
int crl_gpu_global_avgpool2d_forward(crl_tensor *out, const crl_tensor *in);
int crl_gpu_global_avgpool2d_backward(crl_tensor *grad_in, const crl_tensor *grad_out, const crl_tensor *in);
int crl_gpu_shortcut_pad_forward(crl_tensor *out, const crl_tensor *in, int out_channels, int stride);
int crl_gpu_shortcut_pad_backward(crl_tensor *grad_in, const crl_tensor *grad_out, const crl_tensor *in, int stride);
int crl_gpu_sgd_step(crl_tensor *params, crl_tensor *momentum_buf, const crl_tensor *grads, const crl_tensor *decay, float lr, float momentum, float dampening, int nesterov);
int crl_gpu_adam_step(crl_tensor *params, crl_tensor *m, crl_tensor *v, const crl_tensor *grads, const crl_tensor *decay, float lr, float beta1, float beta2, float eps, int64_t step, int decoupled);
int crl_gpu_tensor_sumsq(double *value, const crl_tensor *t);
int crl_gpu_batch_stats_reset(crl_tensor *stats, int nbins);
int crl_gpu_batch_stats(crl_tensor *stats, const crl_tensor *logits, const crl_tensor *labels, const crl_tensor *loss, int nbins);
int crl_gpu_batch_stats_read(double *values, const crl_tensor *stats, int64_t n);
int crl_gpu_batch_stats_summary(crl_batch_summary *out, const crl_tensor *stats);

#ifdef __cplusplus
}
#endif

#endif
