/* crlab_api.h -- the whole public C API of libcrlab, as plain declarations.
 *
 * LuaJIT reads this file verbatim with ffi.cdef, so it holds declarations
 * only: no preprocessor lines, no inline code, no macros. C code includes
 * crlab.h, which pulls in <stdint.h> and <stddef.h> and then this file.
 * tests/c/abi_dump.c and tests/lua/test_abi.lua keep the struct layouts seen
 * by the C compiler and by the FFI in step.
 *
 * Conventions, once for the whole API:
 *  - Names are crl_<object>_<action>. Whatever a *_new returns, the caller
 *    frees once with the matching *_free; every other pointer is borrowed.
 *  - Outputs come first, then inputs, then sizes and options. Output tensors
 *    are resized by the callee, so one output can be reused across calls.
 *  - Every function that can fail returns int: 0 (CRL_OK) on success,
 *    otherwise an error code, and leaves a message in crl_last_error() that
 *    names the function, the argument and the shapes. Constructors return
 *    NULL on failure with the same message. Nothing here exits or aborts on
 *    anything a caller can pass.
 *  - Gradients of parameters accumulate (+=); gradients of inputs overwrite.
 *  - Dimensions are 0-based in C (the Lua layer is 1-based); class labels
 *    are 0-based int32 values everywhere.
 *
 * Worked example (C):
 *
 *     int64_t size[2] = {4, 10};
 *     crl_tensor *z = crl_tensor_new(CRL_FLOAT32, CRL_CPU, 2, size);  // (N, K)
 *     crl_tensor_normal(z, crl_generator_default(), 0.0, 1.0);
 *     ...fill labels (N) int32 ...
 *     crl_loss_spec spec = {CRL_LOSS_CRL, CRL_REDUCE_MEAN, 1.5f, 1.0f, 0, 0};
 *     double value;
 *     if (crl_loss_forward(&value, NULL, z, labels, &spec) != 0)
 *         fprintf(stderr, "%s\n", crl_last_error());
 *     crl_tensor_free(z);
 */

enum {
    CRL_OK = 0,
    CRL_ERR_ARG = 1,         /* a bad argument: NULL, out of range, wrong dtype */
    CRL_ERR_SHAPE = 2,       /* shapes that do not fit together */
    CRL_ERR_NOMEM = 3,       /* an allocation failed */
    CRL_ERR_DEVICE = 4,      /* CUDA missing, no device, or a CUDA call failed */
    CRL_ERR_UNSUPPORTED = 5, /* valid, but not implemented for this dtype/device */
    CRL_ERR_IO = 6           /* a file could not be read or written */
};

enum { CRL_FLOAT32 = 0, CRL_INT32 = 1, CRL_UINT8 = 2 };
enum { CRL_CPU = 0, CRL_CUDA = 1 };
enum { CRL_MAX_DIM = 5 };

/* The message of the last failure on this thread ("" if none yet). */
const char *crl_last_error(void);
void crl_clear_error(void);

/* ---- storage: a refcounted, 64-byte aligned block on one device ---------- */

typedef struct crl_storage {
    void *data;          /* host pointer or device pointer */
    int64_t nbytes;
    int32_t refcount;    /* updated atomically */
    int32_t device;      /* CRL_CPU or CRL_CUDA */
    int32_t device_index;
    int32_t owns_data;   /* 0: data belongs to someone else; 1: owned; 2: owned, page-locked */
} crl_storage;

/* ---- tensor: a strided view of a storage --------------------------------- */

typedef struct crl_tensor {
    crl_storage *storage;       /* NULL only for a tensor with no elements yet */
    int64_t offset;             /* in elements, not bytes */
    int64_t sizes[5];           /* (sizes[0], ..., sizes[ndim-1]) */
    int64_t strides[5];         /* in elements */
    int32_t ndim;               /* 0..5; 0 is a scalar with one element */
    int32_t dtype;              /* CRL_FLOAT32, CRL_INT32, CRL_UINT8 */
    int32_t device;             /* CRL_CPU or CRL_CUDA; equals storage->device */
    int32_t layout;             /* CRL_LAYOUT_*: how the elements lie in the storage */
} crl_tensor;

/* Layouts. PLAIN: the strides say where each element is. NCHW8C / NCHW16C
 * (oneDNN's nChw8c / nChw16c, chosen for the machine's vector width): a
 * 4-d float32 (N, C, H, W) tensor whose channels are grouped in blocks of
 * 8 or 16, element (n, c, h, w) at ((n * CB + c / B) * H * W + h * W + w) *
 * B + c % B with CB = ceil(C / B); the channels past C are zeros. sizes are
 * the logical (N, C, H, W); strides mean nothing then. Element access,
 * copies, fills and crl_tensor_reorder understand every layout; the layers
 * that work on blocked tensors say so below; every other operation refuses
 * a blocked tensor with a message saying to convert it (Lua: t:plain()). */
enum { CRL_LAYOUT_PLAIN = 0, CRL_LAYOUT_NCHW8C = 8, CRL_LAYOUT_NCHW16C = 16 };

/* A new contiguous tensor, zero-filled. size may be NULL when ndim is 0. */
crl_tensor *crl_tensor_new(int dtype, int device, int ndim, const int64_t *size);
/* The same for a header the caller allocated (LuaJIT does this: its tensor
 * objects are crl_tensor structs it owns); undo with crl_tensor_release. */
int crl_tensor_init(crl_tensor *t, int dtype, int device, int ndim, const int64_t *size);
/* Drops the storage reference of a caller-allocated header; the header
 * itself is left to its owner (and becomes an empty tensor). */
void crl_tensor_release(crl_tensor *t);
/* A new tensor header viewing the same elements as src (shares storage). */
crl_tensor *crl_tensor_new_view(const crl_tensor *src);
/* Drops this header's reference; NULL is allowed. */
void crl_tensor_free(crl_tensor *t);

int64_t crl_tensor_numel(const crl_tensor *t);
int crl_tensor_is_contiguous(const crl_tensor *t);
int crl_dtype_size(int dtype);
const char *crl_dtype_name(int dtype);
/* Writes "2x3x4" (or "scalar") into buf; returns buf. */
const char *crl_tensor_shape_str(const crl_tensor *t, char *buf, int buflen);
/* Address of element 0 of the view (host or device address). */
void *crl_tensor_data(const crl_tensor *t);

/* Makes t contiguous with this shape, keeping dtype and device. Keeps the
 * storage when it is large enough and either unshared or t already is
 * contiguous of this shape, else allocates a new one (old contents are not
 * preserved then): a view that must change shape or strides never writes
 * through the storage it shares. Outputs of operations follow this rule. */
int crl_tensor_resize(crl_tensor *t, int ndim, const int64_t *size);
/* Resize t to src's shape (and dtype, device when t has no storage). */
int crl_tensor_resize_as(crl_tensor *t, const crl_tensor *src);

/* ---- views: out becomes a view of src's storage (out may equal src) ------ */

int crl_tensor_set(crl_tensor *out, const crl_tensor *src);
int crl_tensor_narrow(crl_tensor *out, const crl_tensor *src, int dim, int64_t start, int64_t length);
int crl_tensor_select(crl_tensor *out, const crl_tensor *src, int dim, int64_t index);
int crl_tensor_transpose(crl_tensor *out, const crl_tensor *src, int dim0, int dim1);
/* A view with a new shape over the same elements; one size may be -1.
 * Fails when the strides of src cannot express the new shape. */
int crl_tensor_view(crl_tensor *out, const crl_tensor *src, int ndim, const int64_t *size);
/* Inserts (unsqueeze) or removes (squeeze) a dimension of size 1. */
int crl_tensor_unsqueeze(crl_tensor *out, const crl_tensor *src, int dim);
int crl_tensor_squeeze(crl_tensor *out, const crl_tensor *src, int dim);
/* A view that broadcasts src to this shape with stride 0 (PyTorch expand). */
int crl_tensor_expand(crl_tensor *out, const crl_tensor *src, int ndim, const int64_t *size);

/* ---- copies and fills ----------------------------------------------------- */

/* out = src in the given layout (CRL_LAYOUT_*), resized; a blocked layout
 * needs a 4-d float32 CPU tensor. out must not share src's storage. */
int crl_tensor_reorder(crl_tensor *out, const crl_tensor *src, int layout);
/* The blocked layout convolutions use on this machine (NCHW16C with
 * AVX-512, NCHW8C otherwise). */
int crl_layout_preferred(void);
const char *crl_layout_name(int layout);

/* dst and src hold the same number of elements. Converts dtype on the CPU;
 * copies between CPU and CUDA memory when the devices differ. */
int crl_tensor_copy(crl_tensor *dst, const crl_tensor *src);
/* out = a contiguous copy of src on the same device (resized). */
int crl_tensor_contiguous(crl_tensor *out, const crl_tensor *src);
int crl_tensor_fill(crl_tensor *t, double value);
/* Reads element `linear` (row-major order over the view) as a double. */
int crl_tensor_get(double *value, const crl_tensor *t, int64_t linear);
int crl_tensor_put(crl_tensor *t, int64_t linear, double value);
/* Copies n elements between a host buffer of doubles and the tensor
 * (row-major over the view). */
int crl_tensor_from_doubles(crl_tensor *t, const double *values, int64_t n);
int crl_tensor_to_doubles(double *values, const crl_tensor *t, int64_t n);

/* ---- elementwise (float32; PyTorch broadcasting; out is resized) --------- */

enum { CRL_OP_ADD = 0, CRL_OP_SUB = 1, CRL_OP_MUL = 2, CRL_OP_DIV = 3,
       CRL_OP_MAX = 4, CRL_OP_MIN = 5, CRL_OP_POW = 6, CRL_OP_EQ = 7,
       CRL_OP_NE = 8, CRL_OP_LT = 9, CRL_OP_LE = 10, CRL_OP_GT = 11,
       CRL_OP_GE = 12 };
/* out = a (op) b, broadcast. For comparisons out holds 1 or 0.
 * Comparisons also accept int32 and uint8 inputs of equal dtype. */
int crl_tensor_binary(crl_tensor *out, const crl_tensor *a, const crl_tensor *b, int op);
/* out = a (op) s, or s (op) a when reverse is 1. */
int crl_tensor_binary_scalar(crl_tensor *out, const crl_tensor *a, double s, int op, int reverse);

enum { CRL_UN_NEG = 0, CRL_UN_ABS = 1, CRL_UN_EXP = 2, CRL_UN_LOG = 3,
       CRL_UN_SQRT = 4, CRL_UN_TANH = 5, CRL_UN_SIGMOID = 6, CRL_UN_RELU = 7,
       CRL_UN_SQUARE = 8, CRL_UN_FLOOR = 9, CRL_UN_CEIL = 10, CRL_UN_SIGN = 11 };
int crl_tensor_unary(crl_tensor *out, const crl_tensor *a, int op);
/* out = clamp(a, lo, hi) */
int crl_tensor_clamp(crl_tensor *out, const crl_tensor *a, double lo, double hi);

/* ---- reductions ------------------------------------------------------------ */

/* Over all elements (any dtype on the CPU), in double precision. */
int crl_tensor_sum_all(double *value, const crl_tensor *t);
int crl_tensor_max_all(double *value, const crl_tensor *t);
int crl_tensor_min_all(double *value, const crl_tensor *t);

/* Along dimension dim of a float32 tensor; out has src's shape with that
 * dimension removed (keepdim = 0) or kept with size 1 (keepdim = 1). */
int crl_tensor_sum(crl_tensor *out, const crl_tensor *src, int dim, int keepdim);
int crl_tensor_mean(crl_tensor *out, const crl_tensor *src, int dim, int keepdim);
/* values (float32) and/or indices (int32, 0-based); either may be NULL. */
int crl_tensor_max(crl_tensor *values, crl_tensor *indices, const crl_tensor *src, int dim, int keepdim);
int crl_tensor_min(crl_tensor *values, crl_tensor *indices, const crl_tensor *src, int dim, int keepdim);

/* ---- linear algebra and softmax ------------------------------------------ */

/* out (M, N) = alpha * op(a) op(b) + beta * out, op(x) = x or x^T.
 * a, b: float32 matrices; any strides (non-BLAS strides are copied). When
 * beta is 0 out is resized and its old contents ignored. */
int crl_tensor_gemm(crl_tensor *out, const crl_tensor *a, const crl_tensor *b,
                    int transpose_a, int transpose_b, float alpha, float beta);
/* out = softmax / log-softmax of src along dim (float32). */
int crl_tensor_softmax(crl_tensor *out, const crl_tensor *src, int dim);
int crl_tensor_log_softmax(crl_tensor *out, const crl_tensor *src, int dim);

/* ---- random numbers -------------------------------------------------------- */

/* Philox4x32-10: the draw of element i of a fill is a pure function of
 * (seed, offset + i/4), so CPU and GPU give the same numbers and the state
 * is two integers. Each fill advances offset by ceil(numel / 4). */
typedef struct crl_generator {
    uint64_t seed;
    uint64_t offset;
} crl_generator;

/* The process-wide default generator (seed 0 until seeded). */
crl_generator *crl_generator_default(void);
void crl_generator_seed(crl_generator *g, uint64_t seed);
int crl_tensor_uniform(crl_tensor *t, crl_generator *g, double lo, double hi);
int crl_tensor_normal(crl_tensor *t, crl_generator *g, double mean, double std);
/* Fills an int32 tensor with a random permutation of 0..n-1 (n = numel). */
int crl_tensor_randperm(crl_tensor *t, crl_generator *g);

/* ---- losses over logits (N, K) and int32 labels (N) ---------------------- */

enum { CRL_LOSS_CE = 0, CRL_LOSS_NLLR = 1, CRL_LOSS_CRL = 2, CRL_LOSS_FOCAL = 3 };
enum { CRL_REDUCE_MEAN = 0, CRL_REDUCE_SUM = 1, CRL_REDUCE_NONE = 2 };

typedef struct crl_loss_spec {
    int32_t kind;        /* CRL_LOSS_* */
    int32_t reduction;   /* CRL_REDUCE_* */
    float alpha;         /* CRL: alpha >= 0 (NLLR is alpha 0, beta 1) */
    float beta;          /* CRL: beta > 0 */
    float gamma;         /* focal: gamma >= 0 */
    float smoothing;     /* CE: label smoothing in [0, 1) */
} crl_loss_spec;

/* value: the mean (REDUCE_MEAN) or sum (REDUCE_SUM, REDUCE_NONE) of the
 * per-example losses. per_example (N), float32, may be NULL; when given it
 * is resized and filled. */
int crl_loss_forward(double *value, crl_tensor *per_example, const crl_tensor *logits,
                     const crl_tensor *labels, const crl_loss_spec *spec);
/* grad (N, K) = d loss / d logits, overwritten. grad_output may be NULL
 * (1 for every example); with REDUCE_NONE it may be an (N) float32 tensor
 * of per-example upstream gradients; with MEAN or SUM a one-element tensor. */
int crl_loss_backward(crl_tensor *grad, const crl_tensor *logits, const crl_tensor *labels,
                      const crl_tensor *grad_output, const crl_loss_spec *spec);

/* ---- layers (CPU kernels; float32, NCHW) --------------------------------------
 * Forward passes overwrite their outputs (resized). Backward passes
 * overwrite the input gradient and accumulate (+=) the parameter gradients;
 * a NULL gradient output is skipped. */

typedef struct crl_conv2d_params {
    int32_t stride_h, stride_w;
    int32_t pad_h, pad_w;
    int32_t dilation_h, dilation_w; /* 1 (or 0, read as 1): a dense kernel */
    int32_t groups;                 /* 1 (or 0, read as 1); C and F divisible by it */
    int32_t pad_;
} crl_conv2d_params;

/* The reference convolution: im2col + OpenBLAS sgemm on plain tensors.
 * out (N, F, OH, OW) = conv(in (N, C, H, W), weight (F, C/groups, KH, KW))
 * + bias (F); bias may be NULL. workspace: any float32 tensor, grown as
 * needed (im2col buffer); pass the same one every step so nothing is
 * reallocated. Layers use a crl_conv2d_plan (below), which runs oneDNN. */
int crl_conv2d_forward(crl_tensor *out, const crl_tensor *in, const crl_tensor *weight,
                       const crl_tensor *bias, const crl_conv2d_params *p, crl_tensor *workspace);
int crl_conv2d_backward(crl_tensor *grad_in, crl_tensor *grad_weight, crl_tensor *grad_bias,
                        const crl_tensor *grad_out, const crl_tensor *in, const crl_tensor *weight,
                        const crl_conv2d_params *p, crl_tensor *workspace);
/* The most floats of workspace one chunk of images may use (default 16M,
 * 64 MiB); returns the previous value. Smaller bounds memory, larger gives
 * BLAS bigger products. */
int64_t crl_conv2d_workspace_limit(int64_t floats);

/* A convolution plan: what one convolution layer keeps between calls --
 * the oneDNN primitives for each input shape it has seen (a small cache),
 * the algorithm chosen per pass, the weights reordered for the library
 * (refreshed at every forward, so an optimiser step is always seen), and
 * its workspaces. One plan per layer; crl_conv2d_plan_free releases all.
 * The backend CRL_CONV_REFERENCE runs the im2col path above instead (for
 * tests and as a fallback). Inputs and gradients may be plain or blocked:
 * the output and grad_out of a oneDNN plan are blocked in
 * crl_layout_preferred() (or plain when asked with plain_output = 1);
 * grad_in takes the layout of in. Weights, bias and their gradients are
 * plain: the parameter slab never changes layout. The algorithm choice is
 * a fixed rule, not a timing, so equal inputs and thread counts give
 * bitwise-equal results. */
enum { CRL_CONV_ONEDNN = 0, CRL_CONV_REFERENCE = 1 };
enum { CRL_CONV_ALGO_AUTO = 0, CRL_CONV_ALGO_DIRECT = 1, CRL_CONV_ALGO_WINOGRAD = 2 };
typedef struct crl_conv2d_plan crl_conv2d_plan;
crl_conv2d_plan *crl_conv2d_plan_new(const crl_conv2d_params *p, int backend);
void crl_conv2d_plan_free(crl_conv2d_plan *plan);
/* CRL_CONV_ALGO_AUTO: winograd where it measured faster (3x3, stride 1,
 * dense, one group, at least 32 channels on both sides, on CPUs where
 * oneDNN has winograd kernels: AVX-512), direct elsewhere; or force one
 * (winograd falls back to direct where oneDNN refuses it). */
int crl_conv2d_plan_set_algorithm(crl_conv2d_plan *plan, int algo);
/* out = conv(in) + bias; plain_output = 1 asks for a plain out. */
int crl_conv2d_plan_forward(crl_conv2d_plan *plan, crl_tensor *out, const crl_tensor *in,
                            const crl_tensor *weight, const crl_tensor *bias, int plain_output);
/* grad_in overwritten, grad_weight / grad_bias accumulated; any may be NULL. */
int crl_conv2d_plan_backward(crl_conv2d_plan *plan, crl_tensor *grad_in, crl_tensor *grad_weight,
                             crl_tensor *grad_bias, const crl_tensor *grad_out, const crl_tensor *in,
                             const crl_tensor *weight);
/* What the plan ran last, e.g. "onednn fwd jit:avx512_core direct | bwd_data ...". */
const char *crl_conv2d_plan_describe(const crl_conv2d_plan *plan);

/* out (N, O) = in (N, I) weight (O, I)^T + bias (O); bias may be NULL. */
int crl_linear_forward(crl_tensor *out, const crl_tensor *in, const crl_tensor *weight,
                       const crl_tensor *bias);
int crl_linear_backward(crl_tensor *grad_in, crl_tensor *grad_weight, crl_tensor *grad_bias,
                        const crl_tensor *grad_out, const crl_tensor *in, const crl_tensor *weight);

/* Batch normalisation over (N, C) or (N, C, H, W), per channel C.
 * training = 1: normalise with the batch statistics, save them in
 * save_mean / save_invstd (C) for backward, and update running_mean /
 * running_var (C) with momentum (running_var takes the unbiased variance,
 * as in PyTorch). training = 0: normalise with the running statistics.
 * weight, bias (C) may be NULL (no affine transform). */
int crl_batchnorm_forward(crl_tensor *out, crl_tensor *save_mean, crl_tensor *save_invstd,
                          crl_tensor *running_mean, crl_tensor *running_var, const crl_tensor *in,
                          const crl_tensor *weight, const crl_tensor *bias, int training,
                          float momentum, float eps, int relu);
/* In evaluation mode the forward also fills save_mean / save_invstd (when
 * given) from the running statistics. Backward uses the saved statistics;
 * training = 1 includes their dependence on the batch, training = 0 treats
 * them as constants (the evaluation-mode gradient).
 * relu = 1 fuses a ReLU after the normalisation (out = max(bn(in), 0));
 * its backward then takes that output as relu_out (NULL otherwise) and
 * passes gradient only where relu_out > 0. One pass instead of two. */
int crl_batchnorm_backward(crl_tensor *grad_in, crl_tensor *grad_weight, crl_tensor *grad_bias,
                           const crl_tensor *grad_out, const crl_tensor *in, const crl_tensor *weight,
                           const crl_tensor *save_mean, const crl_tensor *save_invstd, int training,
                           const crl_tensor *relu_out);

/* out = max(in, 0); grad_in = grad_out where out > 0. out may be in. */
int crl_relu_forward(crl_tensor *out, const crl_tensor *in);
int crl_relu_backward(crl_tensor *grad_in, const crl_tensor *grad_out, const crl_tensor *out);

typedef struct crl_pool2d_params {
    int32_t kernel_h, kernel_w;
    int32_t stride_h, stride_w;
    int32_t pad_h, pad_w;
    int32_t count_include_pad;   /* average pooling: divide by the full window */
} crl_pool2d_params;

/* indices (N, C, OH, OW) int32: the argmax within each input plane. */
int crl_maxpool2d_forward(crl_tensor *out, crl_tensor *indices, const crl_tensor *in,
                          const crl_pool2d_params *p);
int crl_maxpool2d_backward(crl_tensor *grad_in, const crl_tensor *grad_out, const crl_tensor *indices,
                           const crl_tensor *in);
int crl_avgpool2d_forward(crl_tensor *out, const crl_tensor *in, const crl_pool2d_params *p);
int crl_avgpool2d_backward(crl_tensor *grad_in, const crl_tensor *grad_out, const crl_tensor *in,
                           const crl_pool2d_params *p);

/* out (N, C) = the mean of each (H, W) plane of in (N, C, H, W), plain or
 * blocked; backward spreads grad_out (N, C) evenly (grad_in in in's layout). */
int crl_global_avgpool2d_forward(crl_tensor *out, const crl_tensor *in);
int crl_global_avgpool2d_backward(crl_tensor *grad_in, const crl_tensor *grad_out, const crl_tensor *in);

/* The parameter-free shortcut of the CIFAR ResNets (option A): in (N, C, H,
 * W) subsampled by stride and zero-padded to out_channels (half before,
 * half after); out in in's layout, plain or blocked. Backward takes the
 * matching slice of grad_out back to in's shape and layout. */
int crl_shortcut_pad_forward(crl_tensor *out, const crl_tensor *in, int out_channels, int stride);
int crl_shortcut_pad_backward(crl_tensor *grad_in, const crl_tensor *grad_out, const crl_tensor *in, int stride);

/* Dropout with keep probability 1 - p: mask (same shape, float32) holds
 * 0 or 1 / (1 - p), drawn from the generator; out = in * mask. */
int crl_dropout_forward(crl_tensor *out, crl_tensor *mask, const crl_tensor *in, float p,
                        crl_generator *g);

/* ---- optimisers: one fused pass over the parameter slab --------------------
 * decay (same size as params) holds each element's weight-decay
 * coefficient (0 for parameters excluded from decay); NULL means none. */

int crl_sgd_step(crl_tensor *params, crl_tensor *momentum_buf, const crl_tensor *grads,
                 const crl_tensor *decay, float lr, float momentum, float dampening, int nesterov);
/* Adam (decoupled = 0: decay added to the gradient) or AdamW (decoupled =
 * 1: params -= lr * decay * params). step counts from 1. */
int crl_adam_step(crl_tensor *params, crl_tensor *m, crl_tensor *v, const crl_tensor *grads,
                  const crl_tensor *decay, float lr, float beta1, float beta2, float eps,
                  int64_t step, int decoupled);
/* Sum of squares of all elements, in double. */
int crl_tensor_sumsq(double *value, const crl_tensor *t);

/* ---- data ------------------------------------------------------------------- */

/* Reads an idx file (MNIST format), gzipped or plain, into out: uint8
 * (N, H, W) images or (N) labels. Fails naming the file on a bad magic,
 * truncation or an unsupported element type. */
int crl_idx_read(crl_tensor *out, const char *path);
/* Continues *crc (0 to start) over nbytes at data: zlib's CRC-32, that of
 * gzip and PNG (checkpoints keep one per tensor). */
int crl_crc32(uint32_t *crc, const void *data, int64_t nbytes);

/* ---- images: PNG (libpng) and JPEG (libjpeg-turbo) ------------------------------
 * Images are uint8 (C, H, W) tensors. channels = 0 keeps the file's own
 * (grey stays 1; RGB, palette and grey+alpha or RGBA become 3 or 1 with
 * the alpha dropped), 1 converts to grey, 3 to RGB. 16-bit PNGs are
 * reduced to 8 bits. CMYK JPEGs are refused. The format is recognised from
 * the first bytes, not from the file name. */

int crl_image_read(crl_tensor *out, const char *path, int channels);
/* The same from memory; name appears in error messages. */
int crl_image_decode(crl_tensor *out, const uint8_t *data, int64_t nbytes, int channels, const char *name);
/* Writes a uint8 (C, H, W) tensor, C = 1, 3 or 4, as a PNG (atomically). */
int crl_image_write_png(const char *path, const crl_tensor *image);
/* Writes a uint8 (C, H, W) tensor, C = 1 or 3, as a JPEG of this quality
 * (1-100); progressive = 1 writes a progressive JPEG. */
int crl_image_write_jpeg(const char *path, const crl_tensor *image, int quality, int progressive);

/* ---- dataset files ------------------------------------------------------------ */

/* CIFAR binary records: label byte(s) then 3072 bytes of R, G, B planes.
 * label_bytes = 1 (CIFAR-10) or 2 (CIFAR-100: coarse, fine); which = 0
 * reads the last label byte (the fine label), 1 the first (coarse).
 * images (N, 3, 32, 32) uint8 and labels (N) int32 are resized. A file
 * that is not a whole number of records fails naming the file and the
 * record where it breaks. */
int crl_cifar_read(crl_tensor *images, crl_tensor *labels, const char *path, int label_bytes, int which);

/* SVHN format 2 (.mat through libmatio): X (32, 32, 3, N) uint8 and y (N, 1)
 * with labels 1..10, 10 meaning the digit 0. Out: images (N, 3, 32, 32)
 * uint8, labels (N) int32 in 0..9. */
int crl_svhn_read(crl_tensor *images, crl_tensor *labels, const char *path);
/* Writes the same layout (for tests and for making subsets). */
int crl_svhn_write(const char *path, const crl_tensor *images, const crl_tensor *labels);

/* Stanford Cars (the devkit's level-5 .mat files through libmatio; every
 * variable's declared sizes are checked against its bytes first). The
 * annotations file (devkit/cars_train_annos.mat,
 * cars_test_annos_withlabels.mat) holds the 1xN struct array
 * 'annotations' with 1x1 numbers bbox_x1, bbox_y1, bbox_x2, bbox_y2 (MATLAB's
 * 1-based pixel corners, inclusive), class (1..classes) and the 1xL char
 * array fname. Out: labels (N) int32 class - 1, boxes (N, 4) float32
 * (x, y, w, h) = (x1 - 1, y1 - 1, x2 - x1 + 1, y2 - y1 + 1), the crop
 * box of crl_loader_config, and names: the N file names joined by '\n'
 * (uint8 bytes). A missing or mistyped field, a class outside
 * 1..classes or a box with x2 < x1 fails naming the file, the entry and
 * the field. */
int crl_cars_annos_read(crl_tensor *labels, crl_tensor *boxes, crl_tensor *names, const char *path,
                        int64_t classes);
/* devkit/cars_meta.mat: class_names, a 1xK cell array of names, into
 * names (uint8 bytes, the K names joined by '\n'). */
int crl_cars_meta_read(crl_tensor *names, const char *path);
/* Write the same layouts (for tests and subsets; compress = 1: zlib, as
 * MATLAB's -v7), through a temporary file and a rename. */
int crl_cars_annos_write(const char *path, const crl_tensor *labels, const crl_tensor *boxes,
                         const crl_tensor *names, int compress);
int crl_cars_meta_write(const char *path, const crl_tensor *names, int compress);

/* The entries of a folder, sorted, joined by '\n' into out (uint8 bytes);
 * kind 0: everything, 1: only folders, 2: only regular files. "." and ".."
 * are left out. */
int crl_dir_list(crl_tensor *out, const char *path, int kind);

/* ---- augmentation: per-image transforms ----------------------------------------
 * A pipeline is an array of crl_transform applied in order to one image:
 * uint8 (C, H, W) in, float32 (C, H', W') out. Pixel values are scaled to
 * [0, 1] first; NORMALIZE maps them to (x - mean) / std. Every random draw
 * of transform j on a sample comes from the Philox blocks (seed,
 * counter + 16 j + k), so a sample's augmentation depends only on its
 * (seed, counter) -- not on threads or on the other samples. A sample owns
 * 256 blocks (the loader's counters are 256 apart), so a pipeline has at
 * most 16 transforms; a longer one is refused (it would draw the next
 * sample's numbers). */
enum { CRL_TRANSFORM_BLOCKS = 16, CRL_SAMPLE_BLOCKS = 256,
       CRL_MAX_TRANSFORMS = CRL_SAMPLE_BLOCKS / CRL_TRANSFORM_BLOCKS };

enum { CRL_T_RANDOM_CROP = 0, CRL_T_CENTER_CROP = 1, CRL_T_RESIZE = 2, CRL_T_RANDOM_RESIZED_CROP = 3,
       CRL_T_HFLIP = 4, CRL_T_COLOR_JITTER = 5, CRL_T_LIGHTING = 6, CRL_T_CUTOUT = 7, CRL_T_NORMALIZE = 8 };

typedef struct crl_transform {
    int32_t kind;
    int32_t h, w;          /* output size; RESIZE with w = 0: shorter side to h, aspect kept */
    int32_t pad;           /* RANDOM_CROP: padding before the crop */
    int32_t reflect;       /* RANDOM_CROP: 1 reflect padding, 0 zeros */
    int32_t size;          /* CUTOUT: side of the square */
    float p;               /* HFLIP: probability */
    float scale[2];        /* RANDOM_RESIZED_CROP: area fraction range */
    float ratio[2];        /* RANDOM_RESIZED_CROP: aspect ratio range */
    float brightness, contrast, saturation; /* COLOR_JITTER strengths (0 = off) */
    float alphastd;        /* LIGHTING: std of the PCA coefficients */
    float eigval[3];       /* LIGHTING */
    float eigvec[9];       /* LIGHTING: row-major 3x3, columns are eigenvectors */
    float mean[4], std[4]; /* NORMALIZE */
} crl_transform;

/* Runs the pipeline on one image (for tests, previews and single use). */
int crl_transform_apply(crl_tensor *out, const crl_tensor *image, const crl_transform *t, int count,
                        uint64_t seed, uint64_t counter);

/* ---- the threaded batch loader ---------------------------------------------------
 * Worker threads read (or decode), augment and assemble whole batches into
 * a ring of reusable buffers ahead of the consumer. Sample k of an epoch
 * uses the Philox counter (epoch base + 256 k), so a seed fixes every batch
 * whatever the number of threads. */

typedef struct crl_loader crl_loader;

typedef struct crl_loader_config {
    const crl_tensor *images;   /* in-memory source: uint8 (N, C, H, W) ... */
    const char *paths;          /* ... or N file paths joined by '\n' (PNG or JPEG) */
    const crl_tensor *labels;   /* (N) int32 */
    const crl_tensor *boxes;    /* optional (N, 4) float32 x, y, w, h: crop before the transforms */
    const crl_transform *transforms;
    int32_t ntransforms;
    int32_t channels;           /* 1 or 3 */
    int32_t out_h, out_w;       /* the size every sample has after the transforms */
    int32_t batch;
    int32_t shuffle;            /* 1: a new seeded order each epoch */
    int32_t drop_last;          /* 1: leave out the last incomplete batch */
    int32_t threads;            /* worker threads (>= 1) */
    int32_t prefetch;           /* batches in the ring (>= 1) */
    int32_t skip_bad;           /* 1: an unreadable image is replaced by the next one and counted; 0: fail */
} crl_loader_config;

crl_loader *crl_loader_new(const crl_loader_config *cfg);
void crl_loader_free(crl_loader *l);
/* Starts an epoch: draws the order (if shuffling) and the augmentation
 * counters from g (NULL: the default generator) and sets the workers off. */
int crl_loader_start(crl_loader *l, crl_generator *g);
/* The next batch: images (B, C, H, W) float32 and labels (B) int32 become
 * views of a ring buffer, valid until the next call. *done is set to 1 (and
 * nothing returned) after the last batch. A worker's error (a corrupt file)
 * comes back here with the file name; the loader then stops the epoch. */
int crl_loader_next(crl_loader *l, crl_tensor *images, crl_tensor *labels, int *done);
int64_t crl_loader_batches(const crl_loader *l);
/* Images skipped (skip_bad = 1) since the loader was made. */
int64_t crl_loader_skipped(const crl_loader *l);

/* ---- process ------------------------------------------------------------------ */

/* How many storages (CPU or CUDA blocks) this process has allocated so far;
 * a training step after warm-up should add none. */
int64_t crl_storage_allocations(void);
/* Seconds on the monotonic clock (for timing; arbitrary origin). */
double crl_time_seconds(void);
/* 1 when file descriptor fd is a terminal. */
int crl_isatty(int fd);
/* Resident set size of this process in bytes (from /proc/self/statm). */
int64_t crl_rss_bytes(void);
/* Number of threads the CPU kernels use (OpenMP and OpenBLAS): n < 1 is
 * 1; more than 1024 fails (CRL_ERR_ARG) and keeps the current count. */
int crl_set_num_threads(int n);
int crl_get_num_threads(void);
/* Ctrl-C at the interactive prompt. crl_interrupt_arm installs a SIGINT
 * handler that only notes the signal (a blocked read returns with EINTR);
 * crl_interrupt_take returns 1 once per noted signal (then 0 until the next);
 * crl_interrupt_disarm puts back the handler found by arm. */
int crl_interrupt_arm(void);
int crl_interrupt_take(void);
void crl_interrupt_disarm(void);

/* ---- losses, results left in tensors --------------------------------------- */

/* As crl_loss_forward (the same code), with the value written into a
 * one-element float32 tensor, value (1), on the logits' device, so a
 * training loop can keep it there and read it back only when it prints. */
int crl_loss_forward_into(crl_tensor *value, crl_tensor *per_example, const crl_tensor *logits,
                          const crl_tensor *labels, const crl_loss_spec *spec);

/* ---- batch statistics: loss, top-1, top-k, calibration -------------------------
 * Sums over the batches of an epoch, kept in a float32 tensor stats
 * (CRL_STAT_BINS + 3 nbins, 2) the caller owns, on the device that computes
 * them, and read back only when wanted. Entry i is the pair stats[i][0] +
 * stats[i][1] (a float and its rounding error: about 48 bits, so counts are
 * exact and sums keep what a double would). Ranks come from the logits; a
 * tie ranks the lower class index first (argmax's first maximum). Top-k
 * uses k = min(5, K). The confidence is the largest softmax probability as
 * crl_tensor_softmax computes it; bin b of nbins holds confidences in
 * [b / nbins, (b + 1) / nbins), with 1.0 in the last bin. */

enum { CRL_STAT_BATCHES = 0,       /* batches added */
       CRL_STAT_EXAMPLES = 1,      /* examples N summed */
       CRL_STAT_TOP1 = 2,          /* examples whose label is the first maximum */
       CRL_STAT_TOPK = 3,          /* examples whose label ranks below k = min(5, K) */
       CRL_STAT_LOSS_EXAMPLES = 4, /* examples that came with a loss */
       CRL_STAT_LOSS_SUM = 5,      /* sum of their per-example losses */
       CRL_STAT_NAN_BATCH = 6,     /* 1-based number of the first batch whose loss was NaN; 0: none */
       CRL_STAT_LOGIT_NORM = 7,    /* sum over examples of the logits' L2 norm, ||z||_2 */
       CRL_STAT_ONEOFF = 8,        /* examples whose first maximum is within one class of the label
                                      (|argmax - y| <= 1: ordinal labels such as Adience's age groups) */
       CRL_STAT_BINS = 9 };        /* then per bin b: count, sum of confidence, sum of top-1 hits */

typedef struct crl_batch_summary {
    int64_t batches;
    int64_t examples;
    int64_t nan_batch;   /* as CRL_STAT_NAN_BATCH */
    int32_t nbins;
    int32_t pad_;
    double loss;         /* mean per-example loss (NaN when no loss was added) */
    double top1;         /* fraction of top-1 hits (NaN for no examples) */
    double topk;         /* fraction of top-k hits, k = min(5, K) */
    double ece;          /* sum_b |acc_b - conf_b| n_b / n (NaN without bins or examples) */
    double logit_norm;   /* mean L2 norm of the logit rows (NaN for no examples) */
    double oneoff;       /* fraction of examples with |argmax - label| <= 1 (NaN for no examples) */
} crl_batch_summary;

/* Makes stats a zeroed (CRL_STAT_BINS + 3 nbins, 2) float32 tensor,
 * 0 <= nbins <= 256 (0: no calibration bins, no confidence computed). */
int crl_batch_stats_reset(crl_tensor *stats, int nbins);
/* Adds one batch: logits (N, K) float32, labels (N) int32, loss (N) float32
 * per-example losses or NULL. nbins must be the one stats were reset for.
 * Fails, adding nothing, on a bad label or (nbins > 0) a NaN confidence,
 * i.e. NaN or infinite logits, naming the example and the shapes. Without
 * bins a row holding NaN counts as a miss. */
int crl_batch_stats(crl_tensor *stats, const crl_tensor *logits, const crl_tensor *labels,
                    const crl_tensor *loss, int nbins);
/* The sums turned into means, accuracies and ECE: the one place of that rule. */
int crl_batch_stats_summary(crl_batch_summary *out, const crl_tensor *stats);
/* The n = CRL_STAT_BINS + 3 nbins entries as doubles (for per-bin plots). */
int crl_batch_stats_read(double *values, const crl_tensor *stats, int64_t n);

/* ---- storage accounting ---------------------------------------------------- */

/* Bytes held right now by the storages of one device (CRL_CPU, which
 * includes page-locked host memory, or CRL_CUDA); -1 for an unknown device.
 * Counted atomically when a storage is made or freed, on any thread. The
 * Lua binding reads it to run the garbage collector when C memory grows,
 * since the collector sees only the small tensor headers. */
int64_t crl_storage_live_bytes(int device);

/* ---- CUDA devices ---------------------------------------------------------- */

/* 1 when this library was built with CUDA. */
int crl_cuda_compiled(void);
/* Number of usable devices (0 when none, or when built without CUDA). */
int crl_cuda_device_count(void);
/* Name and memory of device `index`; fails when there is no such device. */
int crl_cuda_device_info(char *name, int namelen, int64_t *total_bytes, int index);
int crl_cuda_synchronize(void);
/* The current device of this process (0 first) and the switch to another;
 * tensors made afterwards live there. */
int crl_cuda_set_device(int index);
int crl_cuda_get_device(void);

/* The caching allocator's figures for the current device, in bytes. A
 * freed CUDA tensor's block stays cached for the next tensor of a similar
 * size, so a training step after warm-up makes no cudaMalloc. */
typedef struct crl_cuda_memory_stats {
    int64_t allocated;      /* held by live tensors (rounded up to blocks) */
    int64_t reserved;       /* taken from the driver: allocated + cached */
    int64_t peak_allocated; /* the most `allocated` has been */
    int64_t device_mallocs; /* cudaMalloc calls so far */
    int64_t device_frees;   /* cudaFree calls so far (empty_cache, retries) */
    int64_t requests;       /* allocations asked of the cache so far */
    int64_t device_total;   /* the device's memory */
    int64_t device_free;    /* free on the device, as the driver says */
} crl_cuda_memory_stats;
int crl_cuda_memory(crl_cuda_memory_stats *out);
/* Gives the cached, unused blocks back to the driver. */
int crl_cuda_empty_cache(void);

/* Switches of the CUDA backend (process-wide; values 0/1 unless noted):
 *   TF32           fp32 convolutions and GEMMs may use TF32 tensor cores (1, as PyTorch)
 *   DETERMINISTIC  cuDNN only picks deterministic algorithms, and max pooling's
 *                  backward adds in the CPU's order, not with atomics (0)
 *   BENCHMARK      time the candidate convolution algorithms once per shape
 *                  and keep the fastest, instead of the heuristics' pick (0)
 *   WORKSPACE_MB   the most a convolution's workspace may take (1024)
 *   BF16           mixed precision: convolutions and GEMMs (matrix products, linear
 *                  layers) round their operands to bfloat16 and run on tensor cores,
 *                  accumulating and writing float32; tensors stay float32 (0) */
enum { CRL_CUDA_TF32 = 0, CRL_CUDA_DETERMINISTIC = 1, CRL_CUDA_BENCHMARK = 2, CRL_CUDA_WORKSPACE_MB = 3,
       CRL_CUDA_BF16 = 4 };
int crl_cuda_set_option(int option, int value);
/* The option's value, or -1 (message set) when CUDA cannot be loaded. */
int crl_cuda_get_option(int option);

/* CUDA graphs: the work queued between begin and end on the device's one
 * stream is captured (not run) and can then be replayed with one launch,
 * on the same tensors, as often as wanted: for steps that are many small
 * kernels. While capturing, an operation that would allocate device memory
 * the cache cannot give (so run the step once eagerly first), or read back
 * to the host (crl_tensor_get, a copy to the host, crl_loss_forward's
 * value, crl_tensor_sumsq, crl_cuda_synchronize), or copy from the host,
 * fails with a message saying so. Blocks the graph may use are not given to
 * other tensors until it is freed; a tensor whose storage is replaced after
 * the capture (resized larger, say) is not seen by the replays. */
typedef struct crl_cuda_graph crl_cuda_graph;
/* Starts capturing; NULL (message set) on failure. */
crl_cuda_graph *crl_cuda_graph_begin(void);
/* Ends the capture and prepares the graph; on failure the message names
 * the CUDA error, the stream is usable again, and g can only be freed. */
int crl_cuda_graph_end(crl_cuda_graph *g);
/* Queues one run of the graph on the stream (asynchronous, like a kernel). */
int crl_cuda_graph_replay(crl_cuda_graph *g);
/* Frees the graph after its queued replays (ends a capture still open). */
void crl_cuda_graph_free(crl_cuda_graph *g);
