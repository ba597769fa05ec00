/* abi_dump.c -- prints the size of every struct in crlab_api.h and the
 * offset of each field as the C compiler laid them out, one per line:
 *     crl_tensor 96
 *     crl_tensor.offset 8
 * tests/lua/test_abi.lua compares these with what LuaJIT's FFI computes
 * from the same header. A struct added to the API must be added here. */
#include <stddef.h>
#include <stdio.h>

#include "crlab.h"

#define SIZE(T) printf("%s %zu\n", #T, sizeof(T))
#define FIELD(T, f) printf("%s.%s %zu\n", #T, #f, offsetof(T, f))

int main(void)
{
    SIZE(crl_storage);
    FIELD(crl_storage, data);
    FIELD(crl_storage, nbytes);
    FIELD(crl_storage, refcount);
    FIELD(crl_storage, device);
    FIELD(crl_storage, device_index);
    FIELD(crl_storage, owns_data);
    SIZE(crl_tensor);
    FIELD(crl_tensor, storage);
    FIELD(crl_tensor, offset);
    FIELD(crl_tensor, sizes);
    FIELD(crl_tensor, strides);
    FIELD(crl_tensor, ndim);
    FIELD(crl_tensor, dtype);
    FIELD(crl_tensor, device);
    FIELD(crl_tensor, layout);
    SIZE(crl_generator);
    FIELD(crl_generator, seed);
    FIELD(crl_generator, offset);
    SIZE(crl_loss_spec);
    FIELD(crl_loss_spec, kind);
    FIELD(crl_loss_spec, reduction);
    FIELD(crl_loss_spec, alpha);
    FIELD(crl_loss_spec, beta);
    FIELD(crl_loss_spec, gamma);
    FIELD(crl_loss_spec, smoothing);
    SIZE(crl_conv2d_params);
    FIELD(crl_conv2d_params, stride_h);
    FIELD(crl_conv2d_params, stride_w);
    FIELD(crl_conv2d_params, pad_h);
    FIELD(crl_conv2d_params, pad_w);
    FIELD(crl_conv2d_params, dilation_h);
    FIELD(crl_conv2d_params, dilation_w);
    FIELD(crl_conv2d_params, groups);
    SIZE(crl_pool2d_params);
    FIELD(crl_pool2d_params, kernel_h);
    FIELD(crl_pool2d_params, kernel_w);
    FIELD(crl_pool2d_params, stride_h);
    FIELD(crl_pool2d_params, stride_w);
    FIELD(crl_pool2d_params, pad_h);
    FIELD(crl_pool2d_params, pad_w);
    FIELD(crl_pool2d_params, count_include_pad);
    SIZE(crl_cuda_memory_stats);
    FIELD(crl_cuda_memory_stats, allocated);
    FIELD(crl_cuda_memory_stats, reserved);
    FIELD(crl_cuda_memory_stats, peak_allocated);
    FIELD(crl_cuda_memory_stats, device_mallocs);
    FIELD(crl_cuda_memory_stats, device_frees);
    FIELD(crl_cuda_memory_stats, requests);
    FIELD(crl_cuda_memory_stats, device_total);
    FIELD(crl_cuda_memory_stats, device_free);
    SIZE(crl_transform);
    FIELD(crl_transform, kind);
    FIELD(crl_transform, h);
    FIELD(crl_transform, w);
    FIELD(crl_transform, pad);
    FIELD(crl_transform, reflect);
    FIELD(crl_transform, size);
    FIELD(crl_transform, p);
    FIELD(crl_transform, scale);
    FIELD(crl_transform, ratio);
    FIELD(crl_transform, brightness);
    FIELD(crl_transform, contrast);
    FIELD(crl_transform, saturation);
    FIELD(crl_transform, alphastd);
    FIELD(crl_transform, eigval);
    FIELD(crl_transform, eigvec);
    FIELD(crl_transform, mean);
    FIELD(crl_transform, std);
    SIZE(crl_loader_config);
    FIELD(crl_loader_config, images);
    FIELD(crl_loader_config, paths);
    FIELD(crl_loader_config, labels);
    FIELD(crl_loader_config, boxes);
    FIELD(crl_loader_config, transforms);
    FIELD(crl_loader_config, ntransforms);
    FIELD(crl_loader_config, channels);
    FIELD(crl_loader_config, out_h);
    FIELD(crl_loader_config, out_w);
    FIELD(crl_loader_config, batch);
    FIELD(crl_loader_config, shuffle);
    FIELD(crl_loader_config, drop_last);
    FIELD(crl_loader_config, threads);
    FIELD(crl_loader_config, prefetch);
    FIELD(crl_loader_config, skip_bad);
    SIZE(crl_batch_summary);
    FIELD(crl_batch_summary, batches);
    FIELD(crl_batch_summary, examples);
    FIELD(crl_batch_summary, nan_batch);
    FIELD(crl_batch_summary, nbins);
    FIELD(crl_batch_summary, pad_);
    FIELD(crl_batch_summary, loss);
    FIELD(crl_batch_summary, top1);
    FIELD(crl_batch_summary, topk);
    FIELD(crl_batch_summary, ece);
    FIELD(crl_batch_summary, logit_norm);
    FIELD(crl_batch_summary, oneoff);
    return 0;
}
