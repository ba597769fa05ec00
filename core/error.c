/* error.c -- the thread-local last-error message and small shared checks.
 * Every failing public function leaves "function: what was wrong" here; the
 * Lua layer reads it once, in one place, and raises it as a Lua error. */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "internal.h"

static _Thread_local char last_error[1024];
static _Thread_local char shape_bufs[4][96];
static _Thread_local int shape_next;

const char *crl_last_error(void) { return last_error; }

void crl_clear_error(void) { last_error[0] = '\0'; }

int crl_fail(int code, const char *func, const char *fmt, ...)
{
    /* a backend's kernel speaks as the public operation: crl_cpu_x -> crl_x */
    int cpu = strncmp(func, "crl_cpu_", 8) == 0;
    int n = snprintf(last_error, sizeof last_error, "%s%s: ", cpu ? "crl_" : "", cpu ? func + 8 : func);
    if (n < 0 || n >= (int)sizeof last_error) n = 0;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(last_error + n, sizeof last_error - (size_t)n, fmt, ap);
    va_end(ap);
    return code;
}

const char *crl_shape(const crl_tensor *t)
{
    char *buf = shape_bufs[shape_next];
    shape_next = (shape_next + 1) % 4;
    if (t == NULL) {
        snprintf(buf, sizeof shape_bufs[0], "(null)");
        return buf;
    }
    int n = snprintf(buf, sizeof shape_bufs[0], "(");
    for (int d = 0; d < t->ndim && n < (int)sizeof shape_bufs[0]; d++)
        n += snprintf(buf + n, sizeof shape_bufs[0] - (size_t)n, d ? ", %lld" : "%lld",
                      (long long)t->sizes[d]);
    if (n < (int)sizeof shape_bufs[0])
        snprintf(buf + n, sizeof shape_bufs[0] - (size_t)n, ")");
    return buf;
}

static const char *device_name(int device) { return device == CRL_CUDA ? "CUDA" : device == CRL_CPU ? "CPU" : "unknown"; }

int crl_op_device(int *device, const char *func, int n, const crl_tensor *const *args, const char *const *names)
{
    int first = -1;
    *device = CRL_CPU;
    for (int i = 0; i < n; i++) {
        if (args[i] == NULL) continue;
        if (first < 0) {
            first = i;
            *device = args[i]->device;
        } else if (args[i]->device != *device) {
            return crl_fail(CRL_ERR_DEVICE, func, "'%s' %s is on the %s and '%s' %s on the %s; move one of them "
                            "(:cuda() or :float())", names[first], crl_shape(args[first]), device_name(*device),
                            names[i], crl_shape(args[i]), device_name(args[i]->device));
        }
    }
    return CRL_OK;
}

int crl_require_cpu(const crl_tensor *t, const char *func, const char *name)
{
    if (t->device != CRL_CPU)
        return crl_fail(CRL_ERR_DEVICE, func, "'%s' %s is on the %s, and this is the CPU kernel", name, crl_shape(t),
                        device_name(t->device));
    return crl_require_plain(t, func, name);
}

int crl_require_on(const crl_tensor *t, int device, const char *func, const char *name)
{
    if (device == CRL_CPU) return crl_require_cpu(t, func, name);
    if (t->device != device)
        return crl_fail(CRL_ERR_DEVICE, func, "'%s' %s is on the %s, and this is the %s kernel", name, crl_shape(t),
                        device_name(t->device), device_name(device));
    return crl_require_plain(t, func, name);
}

int crl_require_host(const crl_tensor *t, const char *func, const char *name)
{
    if (t->device != CRL_CPU)
        return crl_fail(CRL_ERR_DEVICE, func, "'%s' %s is on the %s; this reads host memory (copy it with :float())",
                        name, crl_shape(t), device_name(t->device));
    return crl_require_plain(t, func, name);
}

int crl_no_kernel(const char *func, int device)
{
    return crl_fail(CRL_ERR_UNSUPPORTED, func, "this operation has no %s kernel yet (copy the tensors to the CPU "
                    "with :float())", device_name(device));
}

int crl_require_dtype(const crl_tensor *t, int dtype, const char *func, const char *name)
{
    if (t->dtype != dtype)
        return crl_fail(CRL_ERR_ARG, func, "'%s' must be %s, got %s %s", name,
                        crl_dtype_name(dtype), crl_dtype_name(t->dtype), crl_shape(t));
    return CRL_OK;
}

int crl_normalize_dim(int *dim, int ndim, const char *func, const char *name)
{
    int d = *dim;
    if (d < 0) d += ndim;
    if (d < 0 || d >= ndim)
        return crl_fail(CRL_ERR_ARG, func, "%s %d is out of range for a %d-dimensional tensor",
                        name, *dim, ndim);
    *dim = d;
    return CRL_OK;
}
