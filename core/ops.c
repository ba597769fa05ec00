/* ops.c -- the op layer: every public operation on tensors resolves its
 * device from its arguments here, once, and calls that device's kernel
 * (cpu/cpu.h; a CUDA backend adds its own beside it). Arguments that the
 * kernel only writes (out, grad_in, ...: resized by the callee) do not vote;
 * every other tensor must be on the same device, or the call fails naming
 * the operation and both devices. A device without a kernel for the
 * operation fails here, in one place. Shapes, dtypes and layouts are
 * checked by the kernels, which share the helpers of internal.h; those
 * helpers refuse a tensor of another device as well, as a second line. */
#include "internal.h"
#include "backend.h"

/* ---- elementwise.c --------------------------------------------------------- */

int crl_tensor_binary(crl_tensor *out, const crl_tensor *a, const crl_tensor *b, int op)
{
    const crl_tensor *args[2] = {a, b};
    static const char *const names[2] = {"a", "b"};
    int device;
    int rc = crl_op_device(&device, __func__, 2, args, names);
    if (rc) return rc;
    CRL_CALL(device, tensor_binary, (out, a, b, op));
}

int crl_tensor_binary_scalar(crl_tensor *out, const crl_tensor *a, double s, int op, int reverse)
{
    const crl_tensor *args[1] = {a};
    static const char *const names[1] = {"a"};
    int device;
    int rc = crl_op_device(&device, __func__, 1, args, names);
    if (rc) return rc;
    CRL_CALL(device, tensor_binary_scalar, (out, a, s, op, reverse));
}

int crl_tensor_unary(crl_tensor *out, const crl_tensor *a, int op)
{
    const crl_tensor *args[1] = {a};
    static const char *const names[1] = {"a"};
    int device;
    int rc = crl_op_device(&device, __func__, 1, args, names);
    if (rc) return rc;
    CRL_CALL(device, tensor_unary, (out, a, op));
}

int crl_tensor_clamp(crl_tensor *out, const crl_tensor *a, double lo, double hi)
{
    const crl_tensor *args[1] = {a};
    static const char *const names[1] = {"a"};
    int device;
    int rc = crl_op_device(&device, __func__, 1, args, names);
    if (rc) return rc;
    CRL_CALL(device, tensor_clamp, (out, a, lo, hi));
}

/* ---- reduce.c -------------------------------------------------------------- */

int crl_tensor_sum(crl_tensor *out, const crl_tensor *src, int dim, int keepdim)
{
    const crl_tensor *args[1] = {src};
    static const char *const names[1] = {"src"};
    int device;
    int rc = crl_op_device(&device, __func__, 1, args, names);
    if (rc) return rc;
    CRL_CALL(device, tensor_sum, (out, src, dim, keepdim));
}

int crl_tensor_mean(crl_tensor *out, const crl_tensor *src, int dim, int keepdim)
{
    const crl_tensor *args[1] = {src};
    static const char *const names[1] = {"src"};
    int device;
    int rc = crl_op_device(&device, __func__, 1, args, names);
    if (rc) return rc;
    CRL_CALL(device, tensor_mean, (out, src, dim, keepdim));
}

int crl_tensor_max(crl_tensor *values, crl_tensor *indices, const crl_tensor *src, int dim, int keepdim)
{
    const crl_tensor *args[1] = {src};
    static const char *const names[1] = {"src"};
    int device;
    int rc = crl_op_device(&device, __func__, 1, args, names);
    if (rc) return rc;
    CRL_CALL(device, tensor_max, (values, indices, src, dim, keepdim));
}

int crl_tensor_min(crl_tensor *values, crl_tensor *indices, const crl_tensor *src, int dim, int keepdim)
{
    const crl_tensor *args[1] = {src};
    static const char *const names[1] = {"src"};
    int device;
    int rc = crl_op_device(&device, __func__, 1, args, names);
    if (rc) return rc;
    CRL_CALL(device, tensor_min, (values, indices, src, dim, keepdim));
}

int crl_tensor_softmax(crl_tensor *out, const crl_tensor *src, int dim)
{
    const crl_tensor *args[1] = {src};
    static const char *const names[1] = {"src"};
    int device;
    int rc = crl_op_device(&device, __func__, 1, args, names);
    if (rc) return rc;
    CRL_CALL(device, tensor_softmax, (out, src, dim));
}

int crl_tensor_log_softmax(crl_tensor *out, const crl_tensor *src, int dim)
{
    const crl_tensor *args[1] = {src};
    static const char *const names[1] = {"src"};
    int device;
    int rc = crl_op_device(&device, __func__, 1, args, names);
    if (rc) return rc;
    CRL_CALL(device, tensor_log_softmax, (out, src, dim));
}

int crl_tensor_sum_all(double *value, const crl_tensor *t)
{
    const crl_tensor *args[1] = {t};
    static const char *const names[1] = {"t"};
    int device;
    int rc = crl_op_device(&device, __func__, 1, args, names);
    if (rc) return rc;
    CRL_CALL(device, tensor_sum_all, (value, t));
}

int crl_tensor_max_all(double *value, const crl_tensor *t)
{
    const crl_tensor *args[1] = {t};
    static const char *const names[1] = {"t"};
    int device;
    int rc = crl_op_device(&device, __func__, 1, args, names);
    if (rc) return rc;
    CRL_CALL(device, tensor_max_all, (value, t));
}

int crl_tensor_min_all(double *value, const crl_tensor *t)
{
    const crl_tensor *args[1] = {t};
    static const char *const names[1] = {"t"};
    int device;
    int rc = crl_op_device(&device, __func__, 1, args, names);
    if (rc) return rc;
    CRL_CALL(device, tensor_min_all, (value, t));
}

/* ---- linalg.c -------------------------------------------------------------- */

int crl_tensor_gemm(crl_tensor *out, const crl_tensor *a, const crl_tensor *b, int transpose_a, int transpose_b, float alpha, float beta)
{
    const crl_tensor *args[2] = {a, b};
    static const char *const names[2] = {"a", "b"};
    int device;
    int rc = crl_op_device(&device, __func__, 2, args, names);
    if (rc) return rc;
    CRL_CALL(device, tensor_gemm, (out, a, b, transpose_a, transpose_b, alpha, beta));
}

/* ---- loss.c ---------------------------------------------------------------- */

int crl_loss_forward(double *value, crl_tensor *per_example, const crl_tensor *logits, const crl_tensor *labels, const crl_loss_spec *spec)
{
    const crl_tensor *args[2] = {logits, labels};
    static const char *const names[2] = {"logits", "labels"};
    int device;
    int rc = crl_op_device(&device, __func__, 2, args, names);
    if (rc) return rc;
    CRL_CALL(device, loss_forward, (value, per_example, logits, labels, spec));
}

int crl_loss_forward_into(crl_tensor *value, crl_tensor *per_example, const crl_tensor *logits, const crl_tensor *labels, const crl_loss_spec *spec)
{
    const crl_tensor *args[2] = {logits, labels};
    static const char *const names[2] = {"logits", "labels"};
    int device;
    int rc = crl_op_device(&device, __func__, 2, args, names);
    if (rc) return rc;
    CRL_CALL(device, loss_forward_into, (value, per_example, logits, labels, spec));
}

int crl_loss_backward(crl_tensor *grad, const crl_tensor *logits, const crl_tensor *labels, const crl_tensor *grad_output, const crl_loss_spec *spec)
{
    const crl_tensor *args[3] = {logits, labels, grad_output};
    static const char *const names[3] = {"logits", "labels", "grad_output"};
    int device;
    int rc = crl_op_device(&device, __func__, 3, args, names);
    if (rc) return rc;
    CRL_CALL(device, loss_backward, (grad, logits, labels, grad_output, spec));
}

/* ---- conv.c ---------------------------------------------------------------- */

int crl_conv2d_forward(crl_tensor *out, const crl_tensor *in, const crl_tensor *weight, const crl_tensor *bias, const crl_conv2d_params *p, crl_tensor *workspace)
{
    const crl_tensor *args[3] = {in, weight, bias};
    static const char *const names[3] = {"in", "weight", "bias"};
    int device;
    int rc = crl_op_device(&device, __func__, 3, args, names);
    if (rc) return rc;
    CRL_CALL(device, conv2d_forward, (out, in, weight, bias, p, workspace));
}

int crl_conv2d_backward(crl_tensor *grad_in, crl_tensor *grad_weight, crl_tensor *grad_bias, const crl_tensor *grad_out, const crl_tensor *in, const crl_tensor *weight, const crl_conv2d_params *p, crl_tensor *workspace)
{
    const crl_tensor *args[5] = {grad_weight, grad_bias, grad_out, in, weight};
    static const char *const names[5] = {"grad_weight", "grad_bias", "grad_out", "in", "weight"};
    int device;
    int rc = crl_op_device(&device, __func__, 5, args, names);
    if (rc) return rc;
    CRL_CALL(device, conv2d_backward, (grad_in, grad_weight, grad_bias, grad_out, in, weight, p, workspace));
}

/* ---- conv_plan.c ----------------------------------------------------------- */

int crl_conv2d_plan_forward(crl_conv2d_plan *pl, crl_tensor *out, const crl_tensor *in, const crl_tensor *weight, const crl_tensor *bias, int plain_output)
{
    const crl_tensor *args[3] = {in, weight, bias};
    static const char *const names[3] = {"in", "weight", "bias"};
    int device;
    int rc = crl_op_device(&device, __func__, 3, args, names);
    if (rc) return rc;
    CRL_CALL(device, conv2d_plan_forward, (pl, out, in, weight, bias, plain_output));
}

int crl_conv2d_plan_backward(crl_conv2d_plan *pl, crl_tensor *grad_in, crl_tensor *grad_weight, crl_tensor *grad_bias, const crl_tensor *grad_out, const crl_tensor *in, const crl_tensor *weight)
{
    const crl_tensor *args[5] = {grad_weight, grad_bias, grad_out, in, weight};
    static const char *const names[5] = {"grad_weight", "grad_bias", "grad_out", "in", "weight"};
    int device;
    int rc = crl_op_device(&device, __func__, 5, args, names);
    if (rc) return rc;
    CRL_CALL(device, conv2d_plan_backward, (pl, grad_in, grad_weight, grad_bias, grad_out, in, weight));
}

/* ---- nn.c ------------------------------------------------------------------ */

int crl_linear_forward(crl_tensor *out, const crl_tensor *in, const crl_tensor *weight, const crl_tensor *bias)
{
    const crl_tensor *args[3] = {in, weight, bias};
    static const char *const names[3] = {"in", "weight", "bias"};
    int device;
    int rc = crl_op_device(&device, __func__, 3, args, names);
    if (rc) return rc;
    CRL_CALL(device, linear_forward, (out, in, weight, bias));
}

int crl_linear_backward(crl_tensor *grad_in, crl_tensor *grad_weight, crl_tensor *grad_bias, const crl_tensor *grad_out, const crl_tensor *in, const crl_tensor *weight)
{
    const crl_tensor *args[5] = {grad_weight, grad_bias, grad_out, in, weight};
    static const char *const names[5] = {"grad_weight", "grad_bias", "grad_out", "in", "weight"};
    int device;
    int rc = crl_op_device(&device, __func__, 5, args, names);
    if (rc) return rc;
    CRL_CALL(device, linear_backward, (grad_in, grad_weight, grad_bias, grad_out, in, weight));
}

int crl_batchnorm_forward(crl_tensor *out, crl_tensor *save_mean, crl_tensor *save_invstd, crl_tensor *running_mean, crl_tensor *running_var, const crl_tensor *in, const crl_tensor *weight, const crl_tensor *bias, int training, float momentum, float eps, int relu)
{
    const crl_tensor *args[5] = {running_mean, running_var, in, weight, bias};
    static const char *const names[5] = {"running_mean", "running_var", "in", "weight", "bias"};
    int device;
    int rc = crl_op_device(&device, __func__, 5, args, names);
    if (rc) return rc;
    CRL_CALL(device, batchnorm_forward, (out, save_mean, save_invstd, running_mean, running_var, in, weight, bias, training, momentum, eps, relu));
}

int crl_batchnorm_backward(crl_tensor *grad_in, crl_tensor *grad_weight, crl_tensor *grad_bias, const crl_tensor *grad_out, const crl_tensor *in, const crl_tensor *weight, const crl_tensor *save_mean, const crl_tensor *save_invstd, int training, const crl_tensor *relu_out)
{
    const crl_tensor *args[8] = {grad_weight, grad_bias, grad_out, in, weight, save_mean, save_invstd, relu_out};
    static const char *const names[8] = {"grad_weight", "grad_bias", "grad_out", "in", "weight", "save_mean", "save_invstd", "relu_out"};
    int device;
    int rc = crl_op_device(&device, __func__, 8, args, names);
    if (rc) return rc;
    CRL_CALL(device, batchnorm_backward, (grad_in, grad_weight, grad_bias, grad_out, in, weight, save_mean, save_invstd, training, relu_out));
}

int crl_relu_forward(crl_tensor *out, const crl_tensor *in)
{
    const crl_tensor *args[1] = {in};
    static const char *const names[1] = {"in"};
    int device;
    int rc = crl_op_device(&device, __func__, 1, args, names);
    if (rc) return rc;
    CRL_CALL(device, relu_forward, (out, in));
}

int crl_relu_backward(crl_tensor *grad_in, const crl_tensor *grad_out, const crl_tensor *out)
{
    const crl_tensor *args[2] = {grad_out, out};
    static const char *const names[2] = {"grad_out", "out"};
    int device;
    int rc = crl_op_device(&device, __func__, 2, args, names);
    if (rc) return rc;
    CRL_CALL(device, relu_backward, (grad_in, grad_out, out));
}

int crl_maxpool2d_forward(crl_tensor *out, crl_tensor *indices, const crl_tensor *in, const crl_pool2d_params *p)
{
    const crl_tensor *args[1] = {in};
    static const char *const names[1] = {"in"};
    int device;
    int rc = crl_op_device(&device, __func__, 1, args, names);
    if (rc) return rc;
    CRL_CALL(device, maxpool2d_forward, (out, indices, in, p));
}

int crl_maxpool2d_backward(crl_tensor *grad_in, const crl_tensor *grad_out, const crl_tensor *indices, const crl_tensor *in)
{
    const crl_tensor *args[3] = {grad_out, indices, in};
    static const char *const names[3] = {"grad_out", "indices", "in"};
    int device;
    int rc = crl_op_device(&device, __func__, 3, args, names);
    if (rc) return rc;
    CRL_CALL(device, maxpool2d_backward, (grad_in, grad_out, indices, in));
}

int crl_avgpool2d_forward(crl_tensor *out, const crl_tensor *in, const crl_pool2d_params *p)
{
    const crl_tensor *args[1] = {in};
    static const char *const names[1] = {"in"};
    int device;
    int rc = crl_op_device(&device, __func__, 1, args, names);
    if (rc) return rc;
    CRL_CALL(device, avgpool2d_forward, (out, in, p));
}

int crl_avgpool2d_backward(crl_tensor *grad_in, const crl_tensor *grad_out, const crl_tensor *in, const crl_pool2d_params *p)
{
    const crl_tensor *args[2] = {grad_out, in};
    static const char *const names[2] = {"grad_out", "in"};
    int device;
    int rc = crl_op_device(&device, __func__, 2, args, names);
    if (rc) return rc;
    CRL_CALL(device, avgpool2d_backward, (grad_in, grad_out, in, p));
}

int crl_dropout_forward(crl_tensor *out, crl_tensor *mask, const crl_tensor *in, float p, crl_generator *g)
{
    const crl_tensor *args[1] = {in};
    static const char *const names[1] = {"in"};
    int device;
    int rc = crl_op_device(&device, __func__, 1, args, names);
    if (rc) return rc;
    CRL_CALL(device, dropout_forward, (out, mask, in, p, g));
}

int crl_global_avgpool2d_forward(crl_tensor *out, const crl_tensor *in)
{
    const crl_tensor *args[1] = {in};
    static const char *const names[1] = {"in"};
    int device;
    int rc = crl_op_device(&device, __func__, 1, args, names);
    if (rc) return rc;
    CRL_CALL(device, global_avgpool2d_forward, (out, in));
}

int crl_global_avgpool2d_backward(crl_tensor *grad_in, const crl_tensor *grad_out, const crl_tensor *in)
{
    const crl_tensor *args[2] = {grad_out, in};
    static const char *const names[2] = {"grad_out", "in"};
    int device;
    int rc = crl_op_device(&device, __func__, 2, args, names);
    if (rc) return rc;
    CRL_CALL(device, global_avgpool2d_backward, (grad_in, grad_out, in));
}

int crl_shortcut_pad_forward(crl_tensor *out, const crl_tensor *in, int out_channels, int stride)
{
    const crl_tensor *args[1] = {in};
    static const char *const names[1] = {"in"};
    int device;
    int rc = crl_op_device(&device, __func__, 1, args, names);
    if (rc) return rc;
    CRL_CALL(device, shortcut_pad_forward, (out, in, out_channels, stride));
}

int crl_shortcut_pad_backward(crl_tensor *grad_in, const crl_tensor *grad_out, const crl_tensor *in, int stride)
{
    const crl_tensor *args[2] = {grad_out, in};
    static const char *const names[2] = {"grad_out", "in"};
    int device;
    int rc = crl_op_device(&device, __func__, 2, args, names);
    if (rc) return rc;
    CRL_CALL(device, shortcut_pad_backward, (grad_in, grad_out, in, stride));
}

/* ---- optim.c --------------------------------------------------------------- */

int crl_sgd_step(crl_tensor *params, crl_tensor *momentum_buf, const crl_tensor *grads, const crl_tensor *decay, float lr, float momentum, float dampening, int nesterov)
{
    const crl_tensor *args[4] = {params, momentum_buf, grads, decay};
    static const char *const names[4] = {"params", "momentum_buf", "grads", "decay"};
    int device;
    int rc = crl_op_device(&device, __func__, 4, args, names);
    if (rc) return rc;
    CRL_CALL(device, sgd_step, (params, momentum_buf, grads, decay, lr, momentum, dampening, nesterov));
}

int crl_adam_step(crl_tensor *params, crl_tensor *m, crl_tensor *v, const crl_tensor *grads, const crl_tensor *decay, float lr, float beta1, float beta2, float eps, int64_t step, int decoupled)
{
    const crl_tensor *args[5] = {params, m, v, grads, decay};
    static const char *const names[5] = {"params", "m", "v", "grads", "decay"};
    int device;
    int rc = crl_op_device(&device, __func__, 5, args, names);
    if (rc) return rc;
    CRL_CALL(device, adam_step, (params, m, v, grads, decay, lr, beta1, beta2, eps, step, decoupled));
}

int crl_tensor_sumsq(double *value, const crl_tensor *t)
{
    const crl_tensor *args[1] = {t};
    static const char *const names[1] = {"t"};
    int device;
    int rc = crl_op_device(&device, __func__, 1, args, names);
    if (rc) return rc;
    CRL_CALL(device, tensor_sumsq, (value, t));
}

/* ---- metrics.c ------------------------------------------------------------- */

int crl_batch_stats_reset(crl_tensor *stats, int nbins)
{
    const crl_tensor *args[1] = {stats};
    static const char *const names[1] = {"stats"};
    int device;
    int rc = crl_op_device(&device, __func__, 1, args, names);
    if (rc) return rc;
    CRL_CALL(device, batch_stats_reset, (stats, nbins));
}

int crl_batch_stats(crl_tensor *stats, const crl_tensor *logits, const crl_tensor *labels, const crl_tensor *loss, int nbins)
{
    const crl_tensor *args[4] = {stats, logits, labels, loss};
    static const char *const names[4] = {"stats", "logits", "labels", "loss"};
    int device;
    int rc = crl_op_device(&device, __func__, 4, args, names);
    if (rc) return rc;
    CRL_CALL(device, batch_stats, (stats, logits, labels, loss, nbins));
}

int crl_batch_stats_read(double *values, const crl_tensor *stats, int64_t n)
{
    const crl_tensor *args[1] = {stats};
    static const char *const names[1] = {"stats"};
    int device;
    int rc = crl_op_device(&device, __func__, 1, args, names);
    if (rc) return rc;
    CRL_CALL(device, batch_stats_read, (values, stats, n));
}

int crl_batch_stats_summary(crl_batch_summary *out, const crl_tensor *stats)
{
    const crl_tensor *args[1] = {stats};
    static const char *const names[1] = {"stats"};
    int device;
    int rc = crl_op_device(&device, __func__, 1, args, names);
    if (rc) return rc;
    CRL_CALL(device, batch_stats_summary, (out, stats));
}
