/* cuda/deferred.cuh -- errors found by a kernel that the host does not
 * wait for: labels out of range (the losses' forward_into and backward,
 * the batch statistics) and NaN or infinite confidences (the batch
 * statistics).
 *
 * The CPU checks every label before any work. On the GPU that would need a
 * device->host read, a stall of the stream on every training step, which
 * is what crl_loss_forward_into exists to avoid. So instead the kernel
 * checks each row: a bad row gets NaN losses and gradients (the batch
 * statistics leave the whole batch out, as the CPU refuses it), and the
 * first bad example (lowest index) is recorded in a per-device record.
 * Every call that reads back to the host anyway checks the record and fails
 * with the CPU's message: crl_loss_forward (a bad label of its own call gives
 * exactly the CPU's message), crl_batch_stats_read and
 * crl_batch_stats_summary (naming the earlier operation that found it). */
#ifndef CRLAB_CUDA_DEFERRED_CUH
#define CRLAB_CUDA_DEFERRED_CUH

#include "common.cuh"

enum { CRL_DEFER_LABEL = 0, CRL_DEFER_CONFIDENCE = 1 };
/* The operations that record (for the message). */
enum { CRL_DEFER_LOSS_FORWARD = 0, CRL_DEFER_LOSS_FORWARD_INTO = 1, CRL_DEFER_LOSS_BACKWARD = 2,
       CRL_DEFER_BATCH_STATS = 3 };

struct crl_gpu_deferred {
    /* (example << 33) | (what << 32) | payload (the label, or the bits of
     * the float confidence): atomicMin keeps the lowest example; all ones
     * when nothing is recorded */
    unsigned long long key;
    int64_t n, k;   /* the logits' shape */
    int32_t op;     /* CRL_DEFER_* operation */
    uint32_t call;  /* the host's number for the launch */
};

/* The launch's context: where to record, and what to record with it. */
struct crl_gpu_defer_ctx {
    crl_gpu_deferred *rec;
    int64_t n, k;
    int32_t op;
    uint32_t call;
};

/* Records example i's error; the launch-constant fields are written by the
 * thread that lowered the key, so they always match the kept key (launches
 * on the one stream do not overlap). */
__device__ __forceinline__ void crl_gpu_defer(const crl_gpu_defer_ctx &c, int64_t i, int what, uint32_t payload)
{
    unsigned long long key = ((unsigned long long)i << 33) | ((unsigned long long)what << 32) | payload;
    unsigned long long old = atomicMin(&c.rec->key, key);
    if (key < old) {
        c.rec->n = c.n;
        c.rec->k = c.k;
        c.rec->op = c.op;
        c.rec->call = c.call;
    }
}

extern "C" {
/* The context for a launch of op on the current device (its record made on
 * first use); *call is the launch's number. */
int crl_gpu_defer_begin(crl_gpu_defer_ctx *ctx, int op, int64_t n, int64_t k, const char *func);
/* Reads the record back (synchronising the stream); when one is there,
 * clears it and fails naming it. call: the number of the launch that func
 * itself made (its own bad label gets exactly the CPU's message), or 0. */
int crl_gpu_defer_check(uint32_t call, const char *func);
}

#endif
