/* cpu/cpu.h -- the CPU backend: one kernel per public operation, with the
 * public signature, reached through the op layer (core/ops.c) once it has
 * resolved the device. Generated once from the definitions, then kept by
 * hand like any other file. */
#ifndef CRLAB_CPU_H
#define CRLAB_CPU_H

#include "../crlab.h"

/* elementwise.c */
int crl_cpu_tensor_binary(crl_tensor *out, const crl_tensor *a, const crl_tensor *b, int op);
int crl_cpu_tensor_binary_scalar(crl_tensor *out, const crl_tensor *a, double s, int op, int reverse);
int crl_cpu_tensor_unary(crl_tensor *out, const crl_tensor *a, int op);
int crl_cpu_tensor_clamp(crl_tensor *out, const crl_tensor *a, double lo, double hi);

/* reduce.c */
int crl_cpu_tensor_sum(crl_tensor *out, const crl_tensor *src, int dim, int keepdim);
int crl_cpu_tensor_mean(crl_tensor *out, const crl_tensor *src, int dim, int keepdim);
int crl_cpu_tensor_max(crl_tensor *values, crl_tensor *indices, const crl_tensor *src, int dim, int keepdim);
int crl_cpu_tensor_min(crl_tensor *values, crl_tensor *indices, const crl_tensor *src, int dim, int keepdim);
int crl_cpu_tensor_softmax(crl_tensor *out, const crl_tensor *src, int dim);
int crl_cpu_tensor_log_softmax(crl_tensor *out, const crl_tensor *src, int dim);
int crl_cpu_tensor_sum_all(double *value, const crl_tensor *t);
int crl_cpu_tensor_max_all(double *value, const crl_tensor *t);
int crl_cpu_tensor_min_all(double *value, const crl_tensor *t);

/* linalg.c */
int crl_cpu_tensor_gemm(crl_tensor *out, const crl_tensor *a, const crl_tensor *b, int transpose_a, int transpose_b, float alpha, float beta);

/* loss.c */
int crl_cpu_loss_forward(double *value, crl_tensor *per_example, const crl_tensor *logits, const crl_tensor *labels, const crl_loss_spec *spec);
int crl_cpu_loss_forward_into(crl_tensor *value, crl_tensor *per_example, const crl_tensor *logits, const crl_tensor *labels, const crl_loss_spec *spec);
int crl_cpu_loss_backward(crl_tensor *grad, const crl_tensor *logits, const crl_tensor *labels, const crl_tensor *grad_output, const crl_loss_spec *spec);

/* conv.c */
int crl_cpu_conv2d_forward(crl_tensor *out, const crl_tensor *in, const crl_tensor *weight, const crl_tensor *bias, const crl_conv2d_params *p, crl_tensor *workspace);
int crl_cpu_conv2d_backward(crl_tensor *grad_in, crl_tensor *grad_weight, crl_tensor *grad_bias, const crl_tensor *grad_out, const crl_tensor *in, const crl_tensor *weight, const crl_conv2d_params *p, crl_tensor *workspace);

/* A convolution's output length along one axis (in, kernel k, padding,
 * dilation, stride), or -1 when the dilated kernel is larger than the
 * padded input: the one statement of the rule, for both paths. */
static inline int64_t crl_conv_out_len(int64_t in, int64_t k, int pad, int dil, int stride)
{
    int64_t e = in + 2 * (int64_t)pad - (int64_t)(dil > 1 ? dil : 1) * (k - 1) - 1;
    return e < 0 ? -1 : e / stride + 1;
}

/* The checks of a convolution's weight and bias gradients (both paths). */
int crl_conv2d_check_param_grads(const crl_tensor *grad_weight, const crl_tensor *grad_bias, const crl_tensor *weight,
                                 const char *func);

/* conv_plan.c */
int crl_cpu_conv2d_plan_forward(crl_conv2d_plan *pl, crl_tensor *out, const crl_tensor *in, const crl_tensor *weight, const crl_tensor *bias, int plain_output);
int crl_cpu_conv2d_plan_backward(crl_conv2d_plan *pl, crl_tensor *grad_in, crl_tensor *grad_weight, crl_tensor *grad_bias, const crl_tensor *grad_out, const crl_tensor *in, const crl_tensor *weight);

/* nn.c */
int crl_cpu_linear_forward(crl_tensor *out, const crl_tensor *in, const crl_tensor *weight, const crl_tensor *bias);
int crl_cpu_linear_backward(crl_tensor *grad_in, crl_tensor *grad_weight, crl_tensor *grad_bias, const crl_tensor *grad_out, const crl_tensor *in, const crl_tensor *weight);
int crl_cpu_batchnorm_forward(crl_tensor *out, crl_tensor *save_mean, crl_tensor *save_invstd, crl_tensor *running_mean, crl_tensor *running_var, const crl_tensor *in, const crl_tensor *weight, const crl_tensor *bias, int training, float momentum, float eps, int relu);
int crl_cpu_batchnorm_backward(crl_tensor *grad_in, crl_tensor *grad_weight, crl_tensor *grad_bias, const crl_tensor *grad_out, const crl_tensor *in, const crl_tensor *weight, const crl_tensor *save_mean, const crl_tensor *save_invstd, int training, const crl_tensor *relu_out);
int crl_cpu_relu_forward(crl_tensor *out, const crl_tensor *in);
int crl_cpu_relu_backward(crl_tensor *grad_in, const crl_tensor *grad_out, const crl_tensor *out);
int crl_cpu_maxpool2d_forward(crl_tensor *out, crl_tensor *indices, const crl_tensor *in, const crl_pool2d_params *p);
int crl_cpu_maxpool2d_backward(crl_tensor *grad_in, const crl_tensor *grad_out, const crl_tensor *indices, const crl_tensor *in);
int crl_cpu_avgpool2d_forward(crl_tensor *out, const crl_tensor *in, const crl_pool2d_params *p);
int crl_cpu_avgpool2d_backward(crl_tensor *grad_in, const crl_tensor *grad_out, const crl_tensor *in, const crl_pool2d_params *p);
int crl_cpu_dropout_forward(crl_tensor *out, crl_tensor *mask, const crl_tensor *in, float p, crl_generator *g);
int crl_cpu_global_avgpool2d_forward(crl_tensor *out, const crl_tensor *in);
int crl_cpu_global_avgpool2d_backward(crl_tensor *grad_in, const crl_tensor *grad_out, const crl_tensor *in);
int crl_cpu_shortcut_pad_forward(crl_tensor *out, const crl_tensor *in, int out_channels, int stride);
int crl_cpu_shortcut_pad_backward(crl_tensor *grad_in, const crl_tensor *grad_out, const crl_tensor *in, int stride);

/* optim.c */
int crl_cpu_sgd_step(crl_tensor *params, crl_tensor *momentum_buf, const crl_tensor *grads, const crl_tensor *decay, float lr, float momentum, float dampening, int nesterov);
int crl_cpu_adam_step(crl_tensor *params, crl_tensor *m, crl_tensor *v, const crl_tensor *grads, const crl_tensor *decay, float lr, float beta1, float beta2, float eps, int64_t step, int decoupled);
int crl_cpu_tensor_sumsq(double *value, const crl_tensor *t);

/* metrics.c */
int crl_cpu_batch_stats_reset(crl_tensor *stats, int nbins);
int crl_cpu_batch_stats(crl_tensor *stats, const crl_tensor *logits, const crl_tensor *labels, const crl_tensor *loss, int nbins);
int crl_cpu_batch_stats_read(double *values, const crl_tensor *stats, int64_t n);
int crl_cpu_batch_stats_summary(crl_batch_summary *out, const crl_tensor *stats);

#endif
