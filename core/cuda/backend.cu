/* cuda/backend.cu -- the CUDA backend's table for the op layer, and the
 * plugin's one exported symbol. */
#include "common.cuh"

static const crl_backend gpu_backend = {
    .device = CRL_CUDA,
    .name = "CUDA",
    .tensor_binary = crl_gpu_tensor_binary,
    .tensor_binary_scalar = crl_gpu_tensor_binary_scalar,
    .tensor_unary = crl_gpu_tensor_unary,
    .tensor_clamp = crl_gpu_tensor_clamp,
    .tensor_sum = crl_gpu_tensor_sum,
    .tensor_mean = crl_gpu_tensor_mean,
    .tensor_max = crl_gpu_tensor_max,
    .tensor_min = crl_gpu_tensor_min,
    .tensor_softmax = crl_gpu_tensor_softmax,
    .tensor_log_softmax = crl_gpu_tensor_log_softmax,
    .tensor_sum_all = crl_gpu_tensor_sum_all,
    .tensor_max_all = crl_gpu_tensor_max_all,
    .tensor_min_all = crl_gpu_tensor_min_all,
    .tensor_gemm = crl_gpu_tensor_gemm,
    .loss_forward = crl_gpu_loss_forward,
    .loss_forward_into = crl_gpu_loss_forward_into,
    .loss_backward = crl_gpu_loss_backward,
    .conv2d_forward = crl_gpu_conv2d_forward,
    .conv2d_backward = crl_gpu_conv2d_backward,
    .conv2d_plan_forward = crl_gpu_conv2d_plan_forward,
    .conv2d_plan_backward = crl_gpu_conv2d_plan_backward,
    .linear_forward = crl_gpu_linear_forward,
    .linear_backward = crl_gpu_linear_backward,
    .batchnorm_forward = crl_gpu_batchnorm_forward,
    .batchnorm_backward = crl_gpu_batchnorm_backward,
    .relu_forward = crl_gpu_relu_forward,
    .relu_backward = crl_gpu_relu_backward,
    .maxpool2d_forward = crl_gpu_maxpool2d_forward,
    .maxpool2d_backward = crl_gpu_maxpool2d_backward,
    .avgpool2d_forward = crl_gpu_avgpool2d_forward,
    .avgpool2d_backward = crl_gpu_avgpool2d_backward,
    .dropout_forward = crl_gpu_dropout_forward,
    .global_avgpool2d_forward = crl_gpu_global_avgpool2d_forward,
    .global_avgpool2d_backward = crl_gpu_global_avgpool2d_backward,
    .shortcut_pad_forward = crl_gpu_shortcut_pad_forward,
    .shortcut_pad_backward = crl_gpu_shortcut_pad_backward,
    .sgd_step = crl_gpu_sgd_step,
    .adam_step = crl_gpu_adam_step,
    .tensor_sumsq = crl_gpu_tensor_sumsq,
    .batch_stats_reset = crl_gpu_batch_stats_reset,
    .batch_stats = crl_gpu_batch_stats,
    .batch_stats_read = crl_gpu_batch_stats_read,
    .batch_stats_summary = crl_gpu_batch_stats_summary,
};

extern "C" __attribute__((visibility("default"))) int crl_cuda_plugin(int abi, const crl_backend **ops,
                                                                    const crl_cuda_runtime **rt)
{
    if (abi != CRL_CUDA_PLUGIN_ABI)
        return crl_fail(CRL_ERR_DEVICE, __func__, "libcrlab_cuda.so speaks plugin ABI %d, libcrlab.so asks for %d: "
                        "rebuild both (make)", CRL_CUDA_PLUGIN_ABI, abi);
    *ops = &gpu_backend;
    *rt = &crl_gpu_runtime;
    return CRL_OK;
}
