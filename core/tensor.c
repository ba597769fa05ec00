/* tensor.c -- storage and tensor headers: allocation, refcounting, views,
 * copies (also between CPU and CUDA memory), fills and element access.
 * Assumes sizes and strides count elements; a view never owns more than one
 * reference to its storage. */
#include <stdlib.h>
#include <string.h>
#include <stdio.h>

#include "internal.h"

/* The largest tensor we agree to describe: keeps byte counts far from
 * int64 overflow. */
#define CRL_MAX_NUMEL ((int64_t)1 << 40)

int crl_dtype_size(int dtype)
{
    switch (dtype) {
    case CRL_FLOAT32: return 4;
    case CRL_INT32: return 4;
    case CRL_UINT8: return 1;
    default: return 0;
    }
}

const char *crl_dtype_name(int dtype)
{
    switch (dtype) {
    case CRL_FLOAT32: return "float32";
    case CRL_INT32: return "int32";
    case CRL_UINT8: return "uint8";
    default: return "unknown-dtype";
    }
}

/* ---- storage ---------------------------------------------------------------- */

static int64_t storage_allocations;
/* Bytes held by live storages, per device (CRL_CPU, CRL_CUDA). Storages are
 * made and freed on loader threads too, hence the atomics. */
static int64_t storage_live_bytes[2];

int64_t crl_storage_allocations(void)
{
    return __atomic_load_n(&storage_allocations, __ATOMIC_RELAXED);
}

int64_t crl_storage_live_bytes(int device)
{
    if (device != CRL_CPU && device != CRL_CUDA) {
        crl_fail(CRL_ERR_ARG, __func__, "unknown device %d (CRL_CPU or CRL_CUDA)", device);
        return -1;
    }
    return __atomic_load_n(&storage_live_bytes[device], __ATOMIC_RELAXED);
}

crl_storage *crl_storage_new(int64_t nbytes, int device)
{
    __atomic_add_fetch(&storage_allocations, 1, __ATOMIC_RELAXED);
    crl_storage *s = calloc(1, sizeof *s);
    if (s == NULL) {
        crl_fail(CRL_ERR_NOMEM, __func__, "out of host memory for a storage header");
        return NULL;
    }
    int64_t rounded = (nbytes + 63) / 64 * 64;
    if (rounded == 0) rounded = 64;
    if (device == CRL_CPU) {
        s->data = aligned_alloc(64, (size_t)rounded);
        if (s->data == NULL) {
            crl_fail(CRL_ERR_NOMEM, __func__, "out of host memory allocating %lld bytes",
                     (long long)rounded);
            free(s);
            return NULL;
        }
        memset(s->data, 0, (size_t)rounded);
    } else {
        if (crl_cuda_malloc(&s->data, rounded) != CRL_OK) {
            free(s);
            return NULL;
        }
        if (crl_cuda_memset_zero(s->data, rounded) != CRL_OK) {
            crl_cuda_free(s->data);
            free(s);
            return NULL;
        }
    }
    s->nbytes = rounded;
    s->refcount = 1;
    s->device = device;
    s->device_index = 0;
    s->owns_data = 1;
    __atomic_add_fetch(&storage_live_bytes[device == CRL_CPU ? CRL_CPU : CRL_CUDA], rounded,
                       __ATOMIC_RELAXED);
    return s;
}

void crl_storage_retain(crl_storage *s)
{
    if (s) __atomic_add_fetch(&s->refcount, 1, __ATOMIC_RELAXED);
}

void crl_storage_release(crl_storage *s)
{
    if (s == NULL) return;
    if (__atomic_sub_fetch(&s->refcount, 1, __ATOMIC_ACQ_REL) != 0) return;
    __atomic_sub_fetch(&storage_live_bytes[s->device == CRL_CPU ? CRL_CPU : CRL_CUDA], s->nbytes,
                       __ATOMIC_RELAXED);
    if (s->owns_data == 2) crl_cuda_host_free(s->data);
    else if (s->owns_data && s->device == CRL_CPU) free(s->data);
    else if (s->owns_data) crl_cuda_free(s->data);
    free(s);
}

/* ---- tensor headers --------------------------------------------------------- */

static int check_sizes(const char *func, int ndim, const int64_t *size, int64_t *numel)
{
    if (ndim < 0 || ndim > CRL_MAX_DIM)
        return crl_fail(CRL_ERR_ARG, func, "ndim %d is outside 0..%d", ndim, CRL_MAX_DIM);
    if (ndim > 0 && size == NULL)
        return crl_fail(CRL_ERR_ARG, func, "argument 'size' is NULL for ndim %d", ndim);
    int64_t n = 1, nonzero = 1; /* the strides multiply the sizes other than 0: they must not overflow */
    for (int d = 0; d < ndim; d++) {
        if (size[d] < 0)
            return crl_fail(CRL_ERR_ARG, func, "size[%d] = %lld is negative", d, (long long)size[d]);
        if (size[d] > 0 && nonzero > CRL_MAX_NUMEL / size[d])
            return crl_fail(CRL_ERR_ARG, func, "the shape has more than 2^40 elements%s", n ? "" :
                            " (counting its sizes other than 0)");
        n *= size[d];
        if (size[d] > 0) nonzero *= size[d];
    }
    *numel = n;
    return CRL_OK;
}

static void set_contiguous_strides(crl_tensor *t)
{
    int64_t s = 1;
    for (int d = t->ndim - 1; d >= 0; d--) {
        t->strides[d] = s;
        s *= t->sizes[d];
    }
}

int crl_tensor_init(crl_tensor *t, int dtype, int device, int ndim, const int64_t *size)
{
    CHECK_TENSOR(t, "t");
    int64_t numel;
    if (crl_dtype_size(dtype) == 0) return crl_fail(CRL_ERR_ARG, __func__, "unknown dtype %d", dtype);
    if (device != CRL_CPU && device != CRL_CUDA)
        return crl_fail(CRL_ERR_ARG, __func__, "unknown device %d", device);
    int rc = check_sizes(__func__, ndim, size, &numel);
    if (rc) return rc;
    crl_storage *s = crl_storage_new(numel * crl_dtype_size(dtype), device);
    if (s == NULL) return device == CRL_CPU ? CRL_ERR_NOMEM : CRL_ERR_DEVICE;
    crl_storage_release(t->storage);
    memset(t, 0, sizeof *t);
    t->storage = s;
    t->ndim = ndim;
    t->dtype = dtype;
    t->device = device;
    for (int d = 0; d < ndim; d++) t->sizes[d] = size[d];
    set_contiguous_strides(t);
    return CRL_OK;
}

void crl_tensor_release(crl_tensor *t)
{
    if (t == NULL) return;
    crl_storage_release(t->storage);
    t->storage = NULL;
    t->ndim = 1;
    t->sizes[0] = 0;
    t->strides[0] = 1;
    t->offset = 0;
}

crl_tensor *crl_tensor_new(int dtype, int device, int ndim, const int64_t *size)
{
    crl_tensor *t = calloc(1, sizeof *t);
    if (t == NULL) {
        crl_fail(CRL_ERR_NOMEM, __func__, "out of host memory for a tensor header");
        return NULL;
    }
    if (crl_tensor_init(t, dtype, device, ndim, size) != CRL_OK) {
        free(t);
        return NULL;
    }
    return t;
}

crl_tensor *crl_tensor_new_pinned(int dtype, int ndim, const int64_t *size)
{
    crl_tensor *t = crl_tensor_new(dtype, CRL_CPU, ndim, size);
    if (t == NULL || crl_cuda_device_count() == 0) return t;
    void *p = NULL;
    if (crl_cuda_host_alloc(&p, t->storage->nbytes) != CRL_OK) {
        crl_clear_error();
        return t; /* ordinary memory still works */
    }
    memset(p, 0, (size_t)t->storage->nbytes);
    free(t->storage->data);
    t->storage->data = p;
    t->storage->owns_data = 2;
    return t;
}

crl_tensor *crl_tensor_new_view(const crl_tensor *src)
{
    if (src == NULL) {
        crl_fail(CRL_ERR_ARG, __func__, "argument 'src' is NULL");
        return NULL;
    }
    crl_tensor *t = calloc(1, sizeof *t);
    if (t == NULL) {
        crl_fail(CRL_ERR_NOMEM, __func__, "out of host memory for a tensor header");
        return NULL;
    }
    *t = *src;
    crl_storage_retain(t->storage);
    return t;
}

void crl_tensor_free(crl_tensor *t)
{
    if (t == NULL) return;
    crl_storage_release(t->storage);
    free(t);
}

int64_t crl_tensor_numel(const crl_tensor *t)
{
    if (t == NULL) return 0;
    int64_t n = 1;
    for (int d = 0; d < t->ndim; d++) n *= t->sizes[d];
    return n;
}

int crl_tensor_is_contiguous(const crl_tensor *t)
{
    if (t == NULL || t->layout != CRL_LAYOUT_PLAIN) return 0;
    int64_t s = 1;
    for (int d = t->ndim - 1; d >= 0; d--) {
        if (t->sizes[d] != 1 && t->strides[d] != s) return 0;
        s *= t->sizes[d];
    }
    return 1;
}

const char *crl_tensor_shape_str(const crl_tensor *t, char *buf, int buflen)
{
    if (buf == NULL || buflen <= 0) return "";
    buf[0] = '\0';
    if (t == NULL) return buf;
    if (t->ndim == 0) {
        snprintf(buf, (size_t)buflen, "scalar");
        return buf;
    }
    int n = 0;
    for (int d = 0; d < t->ndim && n < buflen; d++)
        n += snprintf(buf + n, (size_t)(buflen - n), d ? "x%lld" : "%lld", (long long)t->sizes[d]);
    return buf;
}

void *crl_tensor_data(const crl_tensor *t)
{
    if (t == NULL || t->storage == NULL) return NULL;
    return (char *)t->storage->data + t->offset * crl_dtype_size(t->dtype);
}

int64_t crl_linear_to_offset(const crl_tensor *t, int64_t i)
{
    if (t->layout != CRL_LAYOUT_PLAIN) {
        int64_t c = t->sizes[1], hw = t->sizes[2] * t->sizes[3];
        return t->offset + crl_blocked_offset(i / (hw * c), (i / hw) % c, i % hw, c, hw, t->layout);
    }
    int64_t off = t->offset;
    for (int d = t->ndim - 1; d >= 0; d--) {
        int64_t n = t->sizes[d];
        off += (i % n) * t->strides[d];
        i /= n;
    }
    return off;
}

/* Elements the storage must hold for this shape in this layout. */
static int64_t span_of(int ndim, const int64_t *size, int64_t numel, int layout)
{
    if (layout == CRL_LAYOUT_PLAIN || ndim != 4) return numel;
    return size[0] * crl_layout_blocks(size[1], layout) * layout * size[2] * size[3];
}

/* Whether t already is a contiguous tensor of this shape and layout. */
static int has_shape(const crl_tensor *t, int ndim, const int64_t *size, int layout)
{
    if (t->ndim != ndim || t->layout != layout) return 0;
    int64_t stride = 1;
    for (int d = ndim - 1; d >= 0; d--) {
        if (t->sizes[d] != size[d]) return 0;
        if (size[d] != 1 && t->strides[d] != stride) return 0;
        stride *= size[d];
    }
    return 1;
}

/* Keeps the storage when it is large enough and either unshared or already
 * holding this contiguous shape (writing into a view of the result's shape
 * is writing into the viewed tensor); a shared storage is never resized
 * into, which would overwrite the other tensors' elements. */
static int resize_layout(crl_tensor *t, int ndim, const int64_t *size, int64_t numel, int layout)
{
    int64_t span = span_of(ndim, size, numel, layout);
    int64_t need = (t->offset + span) * crl_dtype_size(t->dtype);
    int shared = t->storage && __atomic_load_n(&t->storage->refcount, __ATOMIC_ACQUIRE) > 1 &&
                 !has_shape(t, ndim, size, layout);
    if (t->storage == NULL || t->storage->nbytes < need || shared) {
        crl_storage *s = crl_storage_new(span * crl_dtype_size(t->dtype), t->device);
        if (s == NULL) return CRL_ERR_NOMEM;
        crl_storage_release(t->storage);
        t->storage = s;
        t->offset = 0;
    }
    t->ndim = ndim;
    t->layout = layout;
    for (int d = 0; d < ndim; d++) t->sizes[d] = size[d];
    set_contiguous_strides(t);
    return CRL_OK;
}

int64_t crl_tensor_span(const crl_tensor *t)
{
    return span_of(t->ndim, t->sizes, crl_tensor_numel(t), t->layout);
}

int crl_prepare_layout(crl_tensor *out, int dtype, int device, int ndim, const int64_t *size, int layout)
{
    if (layout != CRL_LAYOUT_PLAIN && (ndim != 4 || dtype != CRL_FLOAT32))
        return crl_fail(CRL_ERR_ARG, __func__, "a blocked layout needs a float32 (N, C, H, W) tensor");
    if (out->dtype != dtype || out->device != device) {
        crl_storage_release(out->storage);
        out->storage = NULL;
        out->offset = 0;
        out->dtype = dtype;
        out->device = device;
    }
    int64_t numel;
    int rc = check_sizes(__func__, ndim, size, &numel);
    if (rc) return rc;
    return resize_layout(out, ndim, size, numel, layout);
}

int crl_layout_check(const crl_tensor *t, const char *func, const char *name)
{
    if (t->layout == CRL_LAYOUT_PLAIN) return CRL_OK;
    if ((t->layout != CRL_LAYOUT_NCHW8C && t->layout != CRL_LAYOUT_NCHW16C) || t->ndim != 4 ||
        t->dtype != CRL_FLOAT32)
        return crl_fail(CRL_ERR_ARG, func, "'%s' %s %s has layout %d: blocked layouts are %d and %d, for float32 "
                        "(N, C, H, W) tensors", name, crl_dtype_name(t->dtype), crl_shape(t), t->layout,
                        CRL_LAYOUT_NCHW8C, CRL_LAYOUT_NCHW16C);
    return CRL_OK;
}

int crl_require_plain(const crl_tensor *t, const char *func, const char *name)
{
    int rc = crl_layout_check(t, func, name);
    if (rc) return rc;
    if (t->layout != CRL_LAYOUT_PLAIN)
        return crl_fail(CRL_ERR_UNSUPPORTED, func,
                        "'%s' %s is in the blocked layout %s, which this operation does not read; "
                        "convert it first (Lua: t:plain(), C: crl_tensor_reorder)",
                        name, crl_shape(t), crl_layout_name(t->layout));
    return CRL_OK;
}

int crl_tensor_resize(crl_tensor *t, int ndim, const int64_t *size)
{
    CHECK_TENSOR(t, "t");
    int64_t numel;
    int rc = check_sizes(__func__, ndim, size, &numel);
    if (rc) return rc;
    return resize_layout(t, ndim, size, numel, CRL_LAYOUT_PLAIN);
}

int crl_tensor_resize_as(crl_tensor *t, const crl_tensor *src)
{
    CHECK_TENSOR(t, "t");
    CHECK_TENSOR(src, "src");
    return crl_tensor_resize(t, src->ndim, src->sizes);
}

/* ---- views ------------------------------------------------------------------ */

int crl_tensor_set(crl_tensor *out, const crl_tensor *src)
{
    CHECK_TENSOR(out, "out");
    CHECK_TENSOR(src, "src");
    if (out == src) return CRL_OK;
    crl_storage_retain(src->storage);
    crl_storage_release(out->storage);
    *out = *src;
    return CRL_OK;
}

int crl_tensor_narrow(crl_tensor *out, const crl_tensor *src, int dim, int64_t start, int64_t length)
{
    CHECK_TENSOR(out, "out");
    CHECK_TENSOR(src, "src");
    if (src->layout != CRL_LAYOUT_PLAIN) return crl_require_plain(src, __func__, "src");
    int rc = crl_normalize_dim(&dim, src->ndim, __func__, "dim");
    if (rc) return rc;
    if (start < 0 || length < 0 || start + length > src->sizes[dim])
        return crl_fail(CRL_ERR_ARG, __func__,
                        "start %lld, length %lld do not fit dimension %d of size %lld in %s",
                        (long long)start, (long long)length, dim, (long long)src->sizes[dim],
                        crl_shape(src));
    int64_t stride = src->strides[dim];
    crl_tensor_set(out, src);
    out->offset += start * stride;
    out->sizes[dim] = length;
    return CRL_OK;
}

int crl_tensor_select(crl_tensor *out, const crl_tensor *src, int dim, int64_t index)
{
    CHECK_TENSOR(out, "out");
    CHECK_TENSOR(src, "src");
    if (src->layout != CRL_LAYOUT_PLAIN) return crl_require_plain(src, __func__, "src");
    int rc = crl_normalize_dim(&dim, src->ndim, __func__, "dim");
    if (rc) return rc;
    if (index < 0 || index >= src->sizes[dim])
        return crl_fail(CRL_ERR_ARG, __func__, "index %lld is out of range for dimension %d of %s",
                        (long long)index, dim, crl_shape(src));
    int64_t stride = src->strides[dim];
    crl_tensor_set(out, src);
    out->offset += index * stride;
    for (int d = dim; d < out->ndim - 1; d++) {
        out->sizes[d] = out->sizes[d + 1];
        out->strides[d] = out->strides[d + 1];
    }
    out->ndim--;
    return CRL_OK;
}

int crl_tensor_transpose(crl_tensor *out, const crl_tensor *src, int dim0, int dim1)
{
    CHECK_TENSOR(out, "out");
    CHECK_TENSOR(src, "src");
    if (src->layout != CRL_LAYOUT_PLAIN) return crl_require_plain(src, __func__, "src");
    int rc = crl_normalize_dim(&dim0, src->ndim, __func__, "dim0");
    if (rc == CRL_OK) rc = crl_normalize_dim(&dim1, src->ndim, __func__, "dim1");
    if (rc) return rc;
    crl_tensor_set(out, src);
    int64_t s = out->sizes[dim0], st = out->strides[dim0];
    out->sizes[dim0] = out->sizes[dim1];
    out->strides[dim0] = out->strides[dim1];
    out->sizes[dim1] = s;
    out->strides[dim1] = st;
    return CRL_OK;
}

/* Strides for viewing src with shape `size`, or 0 if the memory layout
 * cannot express it (the rule PyTorch's view follows: each run of new
 * dimensions must map onto a run of old dimensions that is contiguous
 * within itself). */
static int view_strides(int64_t *stride, const crl_tensor *src, int ndim, const int64_t *size)
{
    int64_t numel = crl_tensor_numel(src);
    if (numel == 0 || src->ndim == 0) {
        int64_t s = 1;
        for (int d = ndim - 1; d >= 0; d--) { stride[d] = s; s *= size[d]; }
        return 1;
    }
    int view_d = ndim - 1;
    int64_t chunk_base_stride = src->strides[src->ndim - 1];
    int64_t tensor_numel = 1, view_numel = 1;
    for (int d = src->ndim - 1; d >= 0; d--) {
        tensor_numel *= src->sizes[d];
        if (d == 0 || (src->sizes[d - 1] != 1 &&
                       src->strides[d - 1] != tensor_numel * chunk_base_stride)) {
            while (view_d >= 0 && (view_numel < tensor_numel || size[view_d] == 1)) {
                stride[view_d] = view_numel * chunk_base_stride;
                view_numel *= size[view_d];
                view_d--;
            }
            if (view_numel != tensor_numel) return 0;
            if (d > 0) {
                chunk_base_stride = src->strides[d - 1];
                tensor_numel = 1;
                view_numel = 1;
            }
        }
    }
    return view_d == -1;
}

int crl_tensor_view(crl_tensor *out, const crl_tensor *src, int ndim, const int64_t *size)
{
    CHECK_TENSOR(out, "out");
    CHECK_TENSOR(src, "src");
    if (src->layout != CRL_LAYOUT_PLAIN) return crl_require_plain(src, __func__, "src");
    if (ndim < 0 || ndim > CRL_MAX_DIM)
        return crl_fail(CRL_ERR_ARG, __func__, "ndim %d is outside 0..%d", ndim, CRL_MAX_DIM);
    if (ndim > 0 && size == NULL)
        return crl_fail(CRL_ERR_ARG, __func__, "argument 'size' is NULL");
    int64_t shape[CRL_MAX_DIM];
    int infer = -1;
    int64_t known = 1;
    int64_t numel = crl_tensor_numel(src);
    for (int d = 0; d < ndim; d++) {
        shape[d] = size[d];
        if (size[d] == -1) {
            if (infer >= 0)
                return crl_fail(CRL_ERR_ARG, __func__, "only one size may be -1");
            infer = d;
        } else if (size[d] < 0) {
            return crl_fail(CRL_ERR_ARG, __func__, "size[%d] = %lld is negative", d,
                            (long long)size[d]);
        } else {
            known *= size[d];
        }
    }
    if (infer >= 0) {
        if (known == 0 || numel % known != 0)
            return crl_fail(CRL_ERR_SHAPE, __func__, "cannot view %s (%lld elements) with a -1 size",
                            crl_shape(src), (long long)numel);
        shape[infer] = numel / known;
        known *= shape[infer];
    }
    if (known != numel) {
        crl_tensor tmp = {0};
        tmp.ndim = ndim;
        for (int d = 0; d < ndim; d++) tmp.sizes[d] = shape[d];
        return crl_fail(CRL_ERR_SHAPE, __func__, "cannot view %s (%lld elements) as %s (%lld elements)",
                        crl_shape(src), (long long)numel, crl_shape(&tmp), (long long)known);
    }
    int64_t stride[CRL_MAX_DIM];
    if (!view_strides(stride, src, ndim, shape))
        return crl_fail(CRL_ERR_SHAPE, __func__,
                        "the strides of %s cannot express the new shape; call :contiguous() first",
                        crl_shape(src));
    crl_tensor_set(out, src);
    out->ndim = ndim;
    for (int d = 0; d < ndim; d++) {
        out->sizes[d] = shape[d];
        out->strides[d] = stride[d];
    }
    return CRL_OK;
}

int crl_tensor_unsqueeze(crl_tensor *out, const crl_tensor *src, int dim)
{
    CHECK_TENSOR(out, "out");
    CHECK_TENSOR(src, "src");
    if (src->layout != CRL_LAYOUT_PLAIN) return crl_require_plain(src, __func__, "src");
    if (src->ndim >= CRL_MAX_DIM)
        return crl_fail(CRL_ERR_SHAPE, __func__, "%s already has %d dimensions", crl_shape(src),
                        CRL_MAX_DIM);
    int rc = crl_normalize_dim(&dim, src->ndim + 1, __func__, "dim");
    if (rc) return rc;
    crl_tensor_set(out, src);
    for (int d = out->ndim; d > dim; d--) {
        out->sizes[d] = out->sizes[d - 1];
        out->strides[d] = out->strides[d - 1];
    }
    out->sizes[dim] = 1;
    out->strides[dim] = dim + 1 < out->ndim + 1 ? out->sizes[dim + 1] * out->strides[dim + 1] : 1;
    out->ndim++;
    return CRL_OK;
}

int crl_tensor_squeeze(crl_tensor *out, const crl_tensor *src, int dim)
{
    CHECK_TENSOR(out, "out");
    CHECK_TENSOR(src, "src");
    if (src->layout != CRL_LAYOUT_PLAIN) return crl_require_plain(src, __func__, "src");
    int rc = crl_normalize_dim(&dim, src->ndim, __func__, "dim");
    if (rc) return rc;
    if (src->sizes[dim] != 1)
        return crl_fail(CRL_ERR_SHAPE, __func__, "dimension %d of %s has size %lld, not 1", dim,
                        crl_shape(src), (long long)src->sizes[dim]);
    return crl_tensor_select(out, src, dim, 0);
}

int crl_tensor_expand(crl_tensor *out, const crl_tensor *src, int ndim, const int64_t *size)
{
    CHECK_TENSOR(out, "out");
    CHECK_TENSOR(src, "src");
    if (src->layout != CRL_LAYOUT_PLAIN) return crl_require_plain(src, __func__, "src");
    if (ndim < src->ndim || ndim > CRL_MAX_DIM || (ndim > 0 && size == NULL))
        return crl_fail(CRL_ERR_ARG, __func__, "cannot expand %s to %d dimensions", crl_shape(src),
                        ndim);
    int64_t nsize[CRL_MAX_DIM], nstride[CRL_MAX_DIM];
    for (int d = ndim - 1, s = src->ndim - 1; d >= 0; d--, s--) {
        int64_t have = s >= 0 ? src->sizes[s] : 1;
        int64_t want = size[d] == -1 ? have : size[d];
        if (s >= 0 && have == want) {
            nsize[d] = have;
            nstride[d] = src->strides[s];
        } else if (have == 1 && want >= 0) {
            nsize[d] = want;
            nstride[d] = 0;
        } else {
            return crl_fail(CRL_ERR_SHAPE, __func__,
                            "cannot expand %s: dimension %d has size %lld, wanted %lld",
                            crl_shape(src), d, (long long)have, (long long)want);
        }
    }
    crl_tensor_set(out, src);
    out->ndim = ndim;
    for (int d = 0; d < ndim; d++) {
        out->sizes[d] = nsize[d];
        out->strides[d] = nstride[d];
    }
    return CRL_OK;
}

/* ---- element access ------------------------------------------------------------ */

static int check_storage(const crl_tensor *t, const char *func, const char *name)
{
    if (t->storage == NULL && crl_tensor_numel(t) > 0)
        return crl_fail(CRL_ERR_ARG, func, "'%s' %s has no storage", name, crl_shape(t));
    return CRL_OK;
}

int crl_tensor_get(double *value, const crl_tensor *t, int64_t linear)
{
    CHECK_TENSOR(t, "t");
    if (value == NULL) return crl_fail(CRL_ERR_ARG, __func__, "argument 'value' is NULL");
    int64_t n = crl_tensor_numel(t);
    if (linear < 0 || linear >= n)
        return crl_fail(CRL_ERR_ARG, __func__, "element %lld is out of range for %s (%lld elements)",
                        (long long)linear, crl_shape(t), (long long)n);
    int rc = check_storage(t, __func__, "t");
    if (rc) return rc;
    int64_t off = crl_linear_to_offset(t, linear);
    if (t->device == CRL_CPU) {
        *value = crl_read_elem(t->storage->data, t->dtype, off);
        return CRL_OK;
    }
    unsigned char buf[8];
    int es = crl_dtype_size(t->dtype);
    rc = crl_cuda_memcpy(buf, (char *)t->storage->data + off * es, es, 1);
    if (rc) return rc;
    *value = crl_read_elem(buf, t->dtype, 0);
    return CRL_OK;
}

int crl_tensor_put(crl_tensor *t, int64_t linear, double value)
{
    CHECK_TENSOR(t, "t");
    int64_t n = crl_tensor_numel(t);
    if (linear < 0 || linear >= n)
        return crl_fail(CRL_ERR_ARG, __func__, "element %lld is out of range for %s (%lld elements)",
                        (long long)linear, crl_shape(t), (long long)n);
    int rc = check_storage(t, __func__, "t");
    if (rc) return rc;
    int64_t off = crl_linear_to_offset(t, linear);
    if (t->device == CRL_CPU) {
        crl_write_elem(t->storage->data, t->dtype, off, value);
        return CRL_OK;
    }
    unsigned char buf[8];
    int es = crl_dtype_size(t->dtype);
    crl_write_elem(buf, t->dtype, 0, value);
    return crl_cuda_memcpy((char *)t->storage->data + off * es, buf, es, 0);
}

/* Runs fn over a CPU copy when t lives on the GPU. */
static crl_tensor *host_copy(const crl_tensor *t, int dtype)
{
    crl_tensor *h = crl_tensor_new(dtype, CRL_CPU, t->ndim, t->sizes);
    if (h == NULL) return NULL;
    if (crl_tensor_copy(h, t) != CRL_OK) {
        crl_tensor_free(h);
        return NULL;
    }
    return h;
}

/* The checks shared by from_doubles and to_doubles. */
static int check_doubles(const crl_tensor *t, const double *values, int64_t n, const char *func)
{
    if (t == NULL) return crl_fail(CRL_ERR_ARG, func, "argument 't' is NULL");
    if (values == NULL && n > 0) return crl_fail(CRL_ERR_ARG, func, "argument 'values' is NULL");
    if (n != crl_tensor_numel(t))
        return crl_fail(CRL_ERR_SHAPE, func, "%lld values for a tensor %s of %lld elements", (long long)n,
                        crl_shape(t), (long long)crl_tensor_numel(t));
    return check_storage(t, func, "t");
}

int crl_tensor_from_doubles(crl_tensor *t, const double *values, int64_t n)
{
    int rc = check_doubles(t, values, n, __func__);
    if (rc) return rc;
    if (t->device != CRL_CPU) {
        crl_tensor *h = crl_tensor_new(t->dtype, CRL_CPU, t->ndim, t->sizes);
        if (h == NULL) return CRL_ERR_NOMEM;
        rc = crl_tensor_from_doubles(h, values, n);
        if (rc == CRL_OK) rc = crl_tensor_copy(t, h);
        crl_tensor_free(h);
        return rc;
    }
    for (int64_t i = 0; i < n; i++)
        crl_write_elem(t->storage->data, t->dtype, crl_linear_to_offset(t, i), values[i]);
    return CRL_OK;
}

int crl_tensor_to_doubles(double *values, const crl_tensor *t, int64_t n)
{
    int rc = check_doubles(t, values, n, __func__);
    if (rc) return rc;
    if (t->device != CRL_CPU) {
        crl_tensor *h = host_copy(t, t->dtype);
        if (h == NULL) return CRL_ERR_DEVICE;
        rc = crl_tensor_to_doubles(values, h, n);
        crl_tensor_free(h);
        return rc;
    }
    for (int64_t i = 0; i < n; i++)
        values[i] = crl_read_elem(t->storage->data, t->dtype, crl_linear_to_offset(t, i));
    return CRL_OK;
}

/* ---- copies and fills --------------------------------------------------------- */

/* CPU to CPU, any dtypes and strides. */
static void copy_cpu(crl_tensor *dst, const crl_tensor *src)
{
    int64_t n = crl_tensor_numel(dst);
    if (dst->dtype == src->dtype && crl_tensor_is_contiguous(dst) &&
        crl_tensor_is_contiguous(src)) {
        memmove(crl_tensor_data(dst), crl_tensor_data(src), (size_t)(n * crl_dtype_size(dst->dtype)));
        return;
    }
    if (dst->dtype == CRL_FLOAT32 && src->dtype == CRL_FLOAT32 && dst->ndim == src->ndim &&
        dst->layout == CRL_LAYOUT_PLAIN && src->layout == CRL_LAYOUT_PLAIN) {
        /* same shape: walk rows of the last dimension with both strides */
        int same = 1;
        for (int d = 0; d < dst->ndim; d++) same &= dst->sizes[d] == src->sizes[d];
        if (same && dst->ndim > 0) {
            float *d = dst->storage->data;
            const float *s = src->storage->data;
            int last = dst->ndim - 1;
            int64_t len = dst->sizes[last], sd = dst->strides[last], ss = src->strides[last];
            int64_t idx[CRL_MAX_DIM] = {0};
            for (int64_t r = 0; r < n / (len ? len : 1); r++) {
                int64_t od = dst->offset, os = src->offset;
                for (int k = 0; k < last; k++) {
                    od += idx[k] * dst->strides[k];
                    os += idx[k] * src->strides[k];
                }
                for (int64_t i = 0; i < len; i++) d[od + i * sd] = s[os + i * ss];
                for (int k = last - 1; k >= 0; k--) {
                    if (++idx[k] < dst->sizes[k]) break;
                    idx[k] = 0;
                }
            }
            return;
        }
        float *d = dst->storage->data;
        const float *s = src->storage->data;
        for (int64_t i = 0; i < n; i++)
            d[crl_linear_to_offset(dst, i)] = s[crl_linear_to_offset(src, i)];
        return;
    }
    for (int64_t i = 0; i < n; i++)
        crl_write_elem(dst->storage->data, dst->dtype, crl_linear_to_offset(dst, i),
                   crl_read_elem(src->storage->data, src->dtype, crl_linear_to_offset(src, i)));
}

int crl_tensor_copy(crl_tensor *dst, const crl_tensor *src)
{
    CHECK_TENSOR(dst, "dst");
    CHECK_TENSOR(src, "src");
    int64_t n = crl_tensor_numel(dst);
    if (n != crl_tensor_numel(src))
        return crl_fail(CRL_ERR_SHAPE, __func__, "dst %s has %lld elements, src %s has %lld",
                        crl_shape(dst), (long long)n, crl_shape(src),
                        (long long)crl_tensor_numel(src));
    if (n == 0) return CRL_OK;
    int rc = check_storage(dst, __func__, "dst");
    if (rc == CRL_OK) rc = check_storage(src, __func__, "src");
    if (rc) return rc;
    if (dst->device == CRL_CPU && src->device == CRL_CPU) {
        if (dst->layout != CRL_LAYOUT_PLAIN && dst->layout == src->layout && dst->ndim == 4 &&
            src->ndim == 4 && memcmp(dst->sizes, src->sizes, sizeof dst->sizes[0] * 4) == 0)
            memmove(crl_tensor_data(dst), crl_tensor_data(src), (size_t)crl_tensor_span(src) * sizeof(float));
        else
            copy_cpu(dst, src);
        return CRL_OK;
    }
    if (dst->layout != CRL_LAYOUT_PLAIN || src->layout != CRL_LAYOUT_PLAIN)
        return crl_fail(CRL_ERR_UNSUPPORTED, __func__, "copies between devices need plain tensors; convert first");
    /* At least one side is on the GPU. Between CUDA tensors the device
     * copies (any strides, any dtypes); across devices contiguous blocks of
     * equal dtype move, through a contiguous staging tensor on either side
     * when needed. */
    if (dst->device == CRL_CUDA && src->device == CRL_CUDA) return crl_cuda_copy(dst, src);
    int64_t nbytes = n * crl_dtype_size(dst->dtype);
    if (dst->device == CRL_CUDA) { /* host -> device */
        if (!crl_tensor_is_contiguous(dst)) {
            crl_tensor *d = crl_tensor_new(dst->dtype, CRL_CUDA, dst->ndim, dst->sizes);
            if (d == NULL) return CRL_ERR_DEVICE;
            rc = crl_tensor_copy(d, src);
            if (rc == CRL_OK) rc = crl_cuda_copy(dst, d);
            crl_tensor_free(d); /* the cache reuses its block in stream order */
            return rc;
        }
        if (src->dtype == dst->dtype && crl_tensor_is_contiguous(src))
            return crl_cuda_memcpy(crl_tensor_data(dst), crl_tensor_data(src), nbytes, 0);
        crl_tensor *h = host_copy(src, dst->dtype);
        if (h == NULL) return CRL_ERR_NOMEM;
        rc = crl_cuda_memcpy(crl_tensor_data(dst), crl_tensor_data(h), nbytes, 0);
        crl_tensor_free(h);
        return rc;
    }
    /* device -> host */
    if (!crl_tensor_is_contiguous(src)) {
        crl_tensor *d = crl_tensor_new(src->dtype, CRL_CUDA, src->ndim, src->sizes);
        if (d == NULL) return CRL_ERR_DEVICE;
        rc = crl_cuda_copy(d, src);
        if (rc == CRL_OK) rc = crl_tensor_copy(dst, d);
        crl_tensor_free(d);
        return rc;
    }
    nbytes = n * crl_dtype_size(src->dtype);
    if (src->dtype == dst->dtype && crl_tensor_is_contiguous(dst))
        return crl_cuda_memcpy(crl_tensor_data(dst), crl_tensor_data(src), nbytes, 1);
    crl_tensor *h = crl_tensor_new(src->dtype, CRL_CPU, src->ndim, src->sizes);
    if (h == NULL) return CRL_ERR_NOMEM;
    rc = crl_cuda_memcpy(crl_tensor_data(h), crl_tensor_data(src), nbytes, 1);
    if (rc == CRL_OK) copy_cpu(dst, h);
    crl_tensor_free(h);
    return rc;
}

int crl_tensor_contiguous(crl_tensor *out, const crl_tensor *src)
{
    CHECK_TENSOR(out, "out");
    CHECK_TENSOR(src, "src");
    if (out == src)
        return crl_fail(CRL_ERR_ARG, __func__, "out and src must be different tensors");
    if (out->storage == NULL || out->device != src->device || out->dtype != src->dtype ||
        out->storage == src->storage) {
        crl_storage_release(out->storage);
        out->storage = NULL;
        out->offset = 0;
        out->device = src->device;
        out->dtype = src->dtype;
    }
    int rc = crl_tensor_resize_as(out, src);
    if (rc) return rc;
    return crl_tensor_copy(out, src);
}

/* ---- layouts ------------------------------------------------------------------ */

int crl_layout_preferred(void) { return crl_dnnl_block_size(); }

const char *crl_layout_name(int layout)
{
    switch (layout) {
    case CRL_LAYOUT_PLAIN: return "plain";
    case CRL_LAYOUT_NCHW8C: return "nChw8c";
    case CRL_LAYOUT_NCHW16C: return "nChw16c";
    default: return "unknown";
    }
}

/* plain (N, C, H, W) <-> blocked: one (n, channel block) slab per task. */
static void reorder_blocked(float *dst, const float *src, int64_t n, int64_t c, int64_t hw, int64_t b,
                            int to_blocked)
{
    int64_t cb = crl_layout_blocks(c, b);
#pragma omp parallel for schedule(static) if (n * c * hw > 65536)
    for (int64_t nb = 0; nb < n * cb; nb++) {
        int64_t i = nb / cb, k = nb % cb, c0 = k * b, lanes = c - c0 < b ? c - c0 : b;
        float *blk = (to_blocked ? dst : (float *)src) + nb * hw * b;
        if (to_blocked) {
            const float *plane = src + (i * c + c0) * hw;
            for (int64_t q = 0; q < hw; q++) {
                for (int64_t l = 0; l < lanes; l++) blk[q * b + l] = plane[l * hw + q];
                for (int64_t l = lanes; l < b; l++) blk[q * b + l] = 0.0f;
            }
        } else {
            float *plane = dst + (i * c + c0) * hw;
            for (int64_t l = 0; l < lanes; l++)
                for (int64_t q = 0; q < hw; q++) plane[l * hw + q] = blk[q * b + l];
        }
    }
}

int crl_tensor_reorder(crl_tensor *out, const crl_tensor *src, int layout)
{
    CHECK_TENSOR(out, "out");
    CHECK_TENSOR(src, "src");
    if (layout != CRL_LAYOUT_PLAIN && layout != CRL_LAYOUT_NCHW8C && layout != CRL_LAYOUT_NCHW16C)
        return crl_fail(CRL_ERR_ARG, __func__, "unknown layout %d", layout);
    if (out == src || (out->storage != NULL && out->storage == src->storage))
        return crl_fail(CRL_ERR_ARG, __func__, "out must not share src's storage");
    int rc = check_storage(src, __func__, "src");
    if (rc == CRL_OK) rc = crl_layout_check(src, __func__, "src");
    if (rc) return rc;
    if (layout != CRL_LAYOUT_PLAIN || src->layout != CRL_LAYOUT_PLAIN) {
        if (src->device != CRL_CPU || src->dtype != CRL_FLOAT32 || src->ndim != 4)
            return crl_fail(CRL_ERR_ARG, __func__, "src %s must be a float32 (N, C, H, W) CPU tensor for layout %s",
                            crl_shape(src), crl_layout_name(layout != CRL_LAYOUT_PLAIN ? layout : src->layout));
    }
    rc = crl_prepare_layout(out, src->dtype, src->device, src->ndim, src->sizes, layout);
    if (rc) return rc;
    int64_t hw = src->ndim == 4 ? src->sizes[2] * src->sizes[3] : 0;
    if (layout == src->layout) {
        if (layout == CRL_LAYOUT_PLAIN) return crl_tensor_copy(out, src);
        memcpy(crl_tensor_data(out), crl_tensor_data(src), (size_t)crl_tensor_span(src) * sizeof(float));
    } else if (src->layout == CRL_LAYOUT_PLAIN && crl_tensor_is_contiguous(src)) {
        reorder_blocked(crl_tensor_data(out), crl_tensor_data(src), src->sizes[0], src->sizes[1], hw, layout, 1);
    } else if (layout == CRL_LAYOUT_PLAIN) {
        reorder_blocked(crl_tensor_data(out), crl_tensor_data(src), src->sizes[0], src->sizes[1], hw, src->layout, 0);
    } else { /* strided plain, or blocked to another block size: element by element */
        if (src->layout != CRL_LAYOUT_PLAIN || layout != CRL_LAYOUT_PLAIN) rc = crl_tensor_fill(out, 0);
        if (rc == CRL_OK) copy_cpu(out, src);
    }
    return rc;
}

int crl_tensor_fill(crl_tensor *t, double value)
{
    CHECK_TENSOR(t, "t");
    int64_t n = crl_tensor_numel(t);
    if (n == 0) return CRL_OK;
    int rc = check_storage(t, __func__, "t");
    if (rc) return rc;
    if (t->device != CRL_CPU) return crl_cuda_fill(t, value);
    if (t->layout != CRL_LAYOUT_PLAIN && value == 0.0) {
        memset(crl_tensor_data(t), 0, (size_t)crl_tensor_span(t) * sizeof(float));
        return CRL_OK;
    }
    if (t->dtype == CRL_FLOAT32 && crl_tensor_is_contiguous(t)) {
        float *p = crl_tensor_data(t);
        float v = (float)value;
        for (int64_t i = 0; i < n; i++) p[i] = v;
        return CRL_OK;
    }
    for (int64_t i = 0; i < n; i++)
        crl_write_elem(t->storage->data, t->dtype, crl_linear_to_offset(t, i), value);
    return CRL_OK;
}

int crl_prepare(crl_tensor *out, int dtype, int device, int ndim, const int64_t *size)
{
    return crl_prepare_layout(out, dtype, device, ndim, size, CRL_LAYOUT_PLAIN);
}
