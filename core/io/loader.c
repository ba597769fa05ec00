/* io/loader.c -- the threaded batch loader. Worker threads take whole
 * batches in order, decode (file source) or gather (memory source) each
 * sample, run the transform pipeline with the sample's own Philox counter,
 * and write into one slot of a ring of reusable batch buffers; the consumer
 * takes the batches in order. A slot is refilled only after the consumer
 * has moved past it. An error stops the epoch: workers take no new batch,
 * the batches before the failed one (all taken already) are still handed
 * out in order, then the consumer gets the error of the earliest failed
 * batch, named with its message (file name included). */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../internal.h"
#include "../cpu/transform.h"

#define COUNTER_STRIDE CRL_SAMPLE_BLOCKS /* Philox blocks reserved per sample */

struct crl_loader;
/* Made before the threads start, so a worker allocates nothing of its own
 * at start-up (the decode buffer is grown in place afterwards). */
struct worker_arg {
    struct crl_loader *l;
    crl_tensor *buf;
};

struct crl_loader {
    crl_loader_config cfg;
    crl_transform *transforms;
    char **paths;
    crl_tensor *images, *labels, *boxes; /* views of the caller's tensors, kept alive */
    int64_t n, nbatches, sample_floats;
    crl_tensor **slot_x, **slot_y;       /* prefetch slots: (B, C, H, W) and (B) */
    int64_t *slot_batch;                 /* which batch a slot holds (-1: none) */
    int32_t *order;                      /* this epoch's sample order */
    uint64_t seed, base;
    pthread_t *threads;
    struct worker_arg *args;             /* one per thread: its index and decode buffer */
    int nthreads;
    pthread_mutex_t mu;
    pthread_cond_t work, ready;
    int shutdown, active, failed;
    int64_t next_fill, next_take, released, in_flight, epoch;
    int64_t failed_batch;                /* the earliest batch that failed (when failed) */
    int64_t skipped;
    char error[1024];
};

static int64_t batch_len(const crl_loader *l, int64_t b)
{
    int64_t first = b * l->cfg.batch;
    return l->n - first < l->cfg.batch ? l->n - first : l->cfg.batch;
}

/* Reads sample idx as uint8 (C, H, W) into buf (file source) or points at it. */
static int load_sample(const crl_loader *l, int64_t idx, crl_tensor *buf, const uint8_t **pix, int64_t *c,
                       int64_t *h, int64_t *w)
{
    if (l->images) {
        const crl_tensor *im = l->images;
        int64_t per = im->sizes[1] * im->sizes[2] * im->sizes[3];
        *pix = (const uint8_t *)crl_tensor_data(im) + idx * per;
        *c = im->sizes[1];
        *h = im->sizes[2];
        *w = im->sizes[3];
    } else {
        int rc = crl_image_read(buf, l->paths[idx], l->cfg.channels);
        if (rc) return rc;
        *pix = crl_tensor_data(buf);
        *c = buf->sizes[0];
        *h = buf->sizes[1];
        *w = buf->sizes[2];
    }
    if (l->boxes) { /* crop to the box (clamped to the image) */
        const float *bx = (const float *)crl_tensor_data(l->boxes) + idx * 4;
        int64_t x0 = (int64_t)bx[0], y0 = (int64_t)bx[1], bw = (int64_t)(bx[2] + 0.5f), bh = (int64_t)(bx[3] + 0.5f);
        if (x0 < 0) x0 = 0;
        if (y0 < 0) y0 = 0;
        if (x0 >= *w) x0 = *w - 1;
        if (y0 >= *h) y0 = *h - 1;
        if (bw < 1) bw = 1;
        if (bh < 1) bh = 1;
        if (x0 + bw > *w) bw = *w - x0;
        if (y0 + bh > *h) bh = *h - y0;
        int64_t size[3] = {*c, bh, bw};
        crl_tensor *crop = crl_tensor_new(CRL_UINT8, CRL_CPU, 3, size);
        if (crop == NULL) return CRL_ERR_NOMEM;
        uint8_t *dst = crl_tensor_data(crop);
        for (int64_t ch = 0; ch < *c; ch++)
            for (int64_t y = 0; y < bh; y++)
                memcpy(dst + (ch * bh + y) * bw, *pix + (ch * *h + y0 + y) * *w + x0, (size_t)bw);
        crl_tensor_set(buf, crop);
        crl_tensor_free(crop);
        *pix = crl_tensor_data(buf);
        *h = bh;
        *w = bw;
    }
    return CRL_OK;
}

static int fill_batch(crl_loader *l, int64_t b, int slot, crl_tensor *buf, crl_scratch *scratch)
{
    float *x = crl_tensor_data(l->slot_x[slot]);
    int32_t *y = crl_tensor_data(l->slot_y[slot]);
    /* a page-locked slot may still be copying to the GPU from its last use */
    int rc0 = crl_cuda_host_fence(x);
    if (rc0 == CRL_OK) rc0 = crl_cuda_host_fence(y);
    if (rc0) return rc0;
    const int32_t *lab = crl_tensor_data(l->labels);
    int64_t len = batch_len(l, b);
    for (int64_t k = 0; k < len; k++) {
        int64_t pos = b * l->cfg.batch + k;
        int64_t idx = l->order[pos];
        const uint8_t *pix;
        int64_t c, h, w;
        int rc = load_sample(l, idx, buf, &pix, &c, &h, &w);
        int64_t tries = 0;
        while (rc != CRL_OK && l->cfg.skip_bad && l->paths && tries < l->n) {
            __atomic_add_fetch(&l->skipped, 1, __ATOMIC_RELAXED);
            idx = (idx + 1) % l->n;
            tries++;
            rc = load_sample(l, idx, buf, &pix, &c, &h, &w);
        }
        if (rc) return rc;
        if (c != l->cfg.channels)
            return crl_fail(CRL_ERR_SHAPE, "crl_loader", "sample %lld%s%s has %lld channels, the loader expects %d",
                            (long long)idx, l->paths ? " " : "", l->paths ? l->paths[idx] : "", (long long)c,
                            l->cfg.channels);
        float *res;
        int64_t oc, oh, ow;
        char name[64];
        if (!l->paths) snprintf(name, sizeof name, "sample %lld", (long long)idx);
        rc = crl_transform_run(&res, &oc, &oh, &ow, pix, c, h, w, l->transforms, l->cfg.ntransforms, l->seed,
                               l->base + (uint64_t)pos * COUNTER_STRIDE, scratch, "crl_loader",
                               l->paths ? l->paths[idx] : name);
        if (rc) return rc;
        if (oh != l->cfg.out_h || ow != l->cfg.out_w)
            return crl_fail(CRL_ERR_SHAPE, "crl_loader", "%s%s comes out of the transforms as %lldx%lld, the batch "
                            "expects %dx%d (end the pipeline with a fixed-size crop or resize)",
                            l->paths ? "" : name, l->paths ? l->paths[idx] : "", (long long)oh, (long long)ow,
                            l->cfg.out_h, l->cfg.out_w);
        memcpy(x + k * l->sample_floats, res, (size_t)l->sample_floats * sizeof(float));
        y[k] = lab[idx];
    }
    return CRL_OK;
}

static void *worker(void *arg)
{
    crl_loader *l = ((struct worker_arg *)arg)->l;
    crl_tensor *buf = ((struct worker_arg *)arg)->buf;
    crl_scratch scratch = {0};
    pthread_mutex_lock(&l->mu);
    for (;;) {
        /* a slot may be refilled only once the consumer has released it */
        while (!l->shutdown && !(l->active && !l->failed && l->next_fill < l->nbatches &&
                                 l->next_fill < l->released + l->cfg.prefetch))
            pthread_cond_wait(&l->work, &l->mu);
        if (l->shutdown) break;
        int64_t b = l->next_fill++;
        int slot = (int)(b % l->cfg.prefetch);
        l->in_flight++;
        pthread_mutex_unlock(&l->mu);
        int rc = fill_batch(l, b, slot, buf, &scratch);
        pthread_mutex_lock(&l->mu);
        l->in_flight--;
        if (rc != CRL_OK) {
            if (!l->failed || b < l->failed_batch) {
                snprintf(l->error, sizeof l->error, "%s", crl_last_error());
                l->failed_batch = b;
            }
            l->failed = 1;
        } else {
            l->slot_batch[slot] = b;
        }
        pthread_cond_broadcast(&l->ready);
    }
    pthread_mutex_unlock(&l->mu);
    crl_scratch_free(&scratch);
    return NULL;
}

static char **split_paths(const char *joined, int64_t *count)
{
    int64_t n = 1;
    for (const char *p = joined; *p; p++) n += *p == '\n';
    char **out = calloc((size_t)n, sizeof *out);
    if (out == NULL) return NULL;
    const char *p = joined;
    for (int64_t i = 0; i < n; i++) {
        const char *e = strchr(p, '\n');
        size_t len = e ? (size_t)(e - p) : strlen(p);
        out[i] = malloc(len + 1);
        if (out[i] == NULL) {
            for (int64_t j = 0; j < i; j++) free(out[j]);
            free(out);
            return NULL;
        }
        memcpy(out[i], p, len);
        out[i][len] = 0;
        p = e ? e + 1 : p + len;
    }
    *count = n;
    return out;
}

void crl_loader_free(crl_loader *l)
{
    if (l == NULL) return;
    if (l->threads) {
        pthread_mutex_lock(&l->mu);
        l->shutdown = 1;
        pthread_cond_broadcast(&l->work);
        pthread_mutex_unlock(&l->mu);
        for (int i = 0; i < l->nthreads; i++) pthread_join(l->threads[i], NULL);
        free(l->threads);
    }
    for (int i = 0; l->args && i < l->cfg.threads; i++) crl_tensor_free(l->args[i].buf);
    free(l->args);
    pthread_mutex_destroy(&l->mu);
    pthread_cond_destroy(&l->work);
    pthread_cond_destroy(&l->ready);
    for (int i = 0; l->slot_x && i < l->cfg.prefetch; i++) {
        crl_tensor_free(l->slot_x[i]);
        crl_tensor_free(l->slot_y[i]);
    }
    free(l->slot_x);
    free(l->slot_y);
    free(l->slot_batch);
    free(l->order);
    for (int64_t i = 0; l->paths && i < l->n; i++) free(l->paths[i]);
    free(l->paths);
    free(l->transforms);
    crl_tensor_free(l->images);
    crl_tensor_free(l->labels);
    crl_tensor_free(l->boxes);
    free(l);
}

crl_loader *crl_loader_new(const crl_loader_config *cfg)
{
    const char *func = __func__;
    if (cfg == NULL) {
        crl_fail(CRL_ERR_ARG, func, "argument 'cfg' is NULL");
        return NULL;
    }
    int bad = 0;
    if ((cfg->images == NULL) == (cfg->paths == NULL))
        bad = crl_fail(CRL_ERR_ARG, func, "give exactly one source: images or paths");
    else if (cfg->labels == NULL || cfg->labels->dtype != CRL_INT32 || cfg->labels->ndim != 1 ||
             !crl_tensor_is_contiguous(cfg->labels) || cfg->labels->device != CRL_CPU)
        bad = crl_fail(CRL_ERR_ARG, func, "labels must be a contiguous int32 (N) CPU tensor, got %s", crl_shape(cfg->labels));
    else if (cfg->channels != 1 && cfg->channels != 3 && !(cfg->images && cfg->channels >= 1 && cfg->channels <= 4))
        bad = crl_fail(CRL_ERR_ARG, func, "channels must be 1 or 3, got %d", cfg->channels);
    else if (cfg->out_h < 1 || cfg->out_w < 1 || cfg->batch < 1 || cfg->threads < 1 || cfg->threads > 256 ||
             cfg->prefetch < 1 || cfg->prefetch > 1024)
        bad = crl_fail(CRL_ERR_ARG, func, "need out_h, out_w, batch >= 1, threads in 1..256 and prefetch in 1..1024; "
                       "got %dx%d, batch %d, threads %d, prefetch %d", cfg->out_h, cfg->out_w, cfg->batch, cfg->threads,
                       cfg->prefetch);
    else
        bad = crl_transform_check(cfg->transforms, cfg->ntransforms, func);
    if (bad) return NULL;
    if (cfg->images) {
        const crl_tensor *im = cfg->images;
        if (im->dtype != CRL_UINT8 || im->ndim != 4 || !crl_tensor_is_contiguous(im) || im->device != CRL_CPU ||
            im->sizes[1] != cfg->channels || im->sizes[0] != cfg->labels->sizes[0]) {
            crl_fail(CRL_ERR_SHAPE, func, "images %s must be contiguous uint8 (N, %d, H, W) with N = %lld labels",
                     crl_shape(im), cfg->channels, (long long)cfg->labels->sizes[0]);
            return NULL;
        }
    }
    crl_loader *l = calloc(1, sizeof *l);
    if (l == NULL) {
        crl_fail(CRL_ERR_NOMEM, func, "out of memory");
        return NULL;
    }
    pthread_mutex_init(&l->mu, NULL);
    pthread_cond_init(&l->work, NULL);
    pthread_cond_init(&l->ready, NULL);
    l->cfg = *cfg;
    l->cfg.images = l->cfg.labels = l->cfg.boxes = NULL;
    l->cfg.paths = NULL;
    l->cfg.transforms = NULL;
    l->n = cfg->labels->sizes[0];
    if (cfg->paths) {
        int64_t np = 0;
        l->paths = split_paths(cfg->paths, &np);
        if (l->paths == NULL) {
            crl_fail(CRL_ERR_NOMEM, func, "out of memory");
            crl_loader_free(l);
            return NULL;
        }
        if (np != l->n) {
            for (int64_t i = 0; i < np; i++) free(l->paths[i]);
            free(l->paths);
            l->paths = NULL;
            crl_fail(CRL_ERR_SHAPE, func, "%lld paths but %lld labels", (long long)np, (long long)l->n);
            crl_loader_free(l);
            return NULL;
        }
    }
    if (cfg->boxes && (cfg->boxes->dtype != CRL_FLOAT32 || cfg->boxes->ndim != 2 || cfg->boxes->sizes[0] != l->n ||
                       cfg->boxes->sizes[1] != 4 || !crl_tensor_is_contiguous(cfg->boxes))) {
        crl_fail(CRL_ERR_SHAPE, func, "boxes %s must be contiguous float32 (N, 4) with N = %lld", crl_shape(cfg->boxes),
                 (long long)l->n);
        crl_loader_free(l);
        return NULL;
    }
    const int32_t *lab = crl_tensor_data(cfg->labels);
    for (int64_t i = 0; i < l->n; i++)
        if (lab[i] < 0) {
            crl_fail(CRL_ERR_ARG, func, "label %d of sample %lld is negative", lab[i], (long long)i);
            crl_loader_free(l);
            return NULL;
        }
    l->images = cfg->images ? crl_tensor_new_view(cfg->images) : NULL;
    l->labels = crl_tensor_new_view(cfg->labels);
    l->boxes = cfg->boxes ? crl_tensor_new_view(cfg->boxes) : NULL;
    l->transforms = malloc(sizeof(crl_transform) * (size_t)(cfg->ntransforms > 0 ? cfg->ntransforms : 1));
    l->order = malloc(sizeof(int32_t) * (size_t)(l->n > 0 ? l->n : 1));
    l->slot_x = calloc((size_t)cfg->prefetch, sizeof *l->slot_x);
    l->slot_y = calloc((size_t)cfg->prefetch, sizeof *l->slot_y);
    l->slot_batch = malloc(sizeof(int64_t) * (size_t)cfg->prefetch);
    l->threads = calloc((size_t)cfg->threads, sizeof(pthread_t));
    l->args = calloc((size_t)cfg->threads, sizeof *l->args);
    for (int i = 0; l->args && i < cfg->threads; i++) {
        l->args[i].l = l;
        l->args[i].buf = crl_tensor_new(CRL_UINT8, CRL_CPU, 0, NULL);
        if (l->args[i].buf == NULL) {
            for (int j = 0; j < i; j++) crl_tensor_free(l->args[j].buf);
            free(l->args);
            l->args = NULL;
            break;
        }
    }
    if (!l->labels || !l->transforms || !l->order || !l->slot_x || !l->slot_y || !l->slot_batch || !l->threads ||
        !l->args) {
        crl_fail(CRL_ERR_NOMEM, func, "out of memory");
        free(l->threads);
        l->threads = NULL;
        crl_loader_free(l);
        return NULL;
    }
    if (cfg->ntransforms > 0) memcpy(l->transforms, cfg->transforms, sizeof(crl_transform) * (size_t)cfg->ntransforms);
    l->sample_floats = (int64_t)cfg->channels * cfg->out_h * cfg->out_w;
    l->nbatches = cfg->drop_last ? l->n / cfg->batch : (l->n + cfg->batch - 1) / cfg->batch;
    int64_t xs[4] = {cfg->batch, cfg->channels, cfg->out_h, cfg->out_w}, ys[1] = {cfg->batch};
    for (int i = 0; i < cfg->prefetch; i++) {
        /* page-locked when a GPU is present, so batches copy to it quickly */
        l->slot_x[i] = crl_tensor_new_pinned(CRL_FLOAT32, 4, xs);
        l->slot_y[i] = crl_tensor_new_pinned(CRL_INT32, 1, ys);
        l->slot_batch[i] = -1;
        if (!l->slot_x[i] || !l->slot_y[i]) {
            free(l->threads);
            l->threads = NULL;
            crl_loader_free(l);
            return NULL;
        }
    }
    for (int i = 0; i < cfg->threads; i++) {
        if (pthread_create(&l->threads[i], NULL, worker, &l->args[i]) != 0) {
            crl_fail(CRL_ERR_NOMEM, func, "cannot start worker thread %d", i);
            l->nthreads = i;
            crl_loader_free(l);
            return NULL;
        }
        l->nthreads = i + 1;
    }
    return l;
}

int crl_loader_start(crl_loader *l, crl_generator *g)
{
    if (l == NULL) return crl_fail(CRL_ERR_ARG, __func__, "argument 'l' is NULL");
    if (g == NULL) g = crl_generator_default();
    pthread_mutex_lock(&l->mu);
    l->active = 0; /* stop handing out batches of an unfinished epoch */
    while (l->in_flight > 0) pthread_cond_wait(&l->ready, &l->mu);
    if (l->cfg.shuffle) {
        int64_t one = l->n;
        crl_tensor *perm = crl_tensor_new(CRL_INT32, CRL_CPU, 1, &one);
        int rc = perm ? crl_tensor_randperm(perm, g) : CRL_ERR_NOMEM;
        if (rc == CRL_OK) memcpy(l->order, crl_tensor_data(perm), sizeof(int32_t) * (size_t)l->n);
        crl_tensor_free(perm);
        if (rc) {
            pthread_mutex_unlock(&l->mu);
            return rc;
        }
    } else {
        for (int64_t i = 0; i < l->n; i++) l->order[i] = (int32_t)i;
    }
    l->seed = g->seed;
    l->base = g->offset;
    g->offset += (uint64_t)l->n * COUNTER_STRIDE;
    for (int i = 0; i < l->cfg.prefetch; i++) l->slot_batch[i] = -1;
    l->next_fill = l->next_take = l->released = 0;
    l->failed = 0;
    l->error[0] = 0;
    l->active = 1;
    l->epoch++;
    pthread_cond_broadcast(&l->work);
    pthread_mutex_unlock(&l->mu);
    return CRL_OK;
}

int crl_loader_next(crl_loader *l, crl_tensor *images, crl_tensor *labels, int *done)
{
    if (l == NULL) return crl_fail(CRL_ERR_ARG, __func__, "argument 'l' is NULL");
    CHECK_TENSOR(images, "images");
    CHECK_TENSOR(labels, "labels");
    if (done == NULL) return crl_fail(CRL_ERR_ARG, __func__, "argument 'done' is NULL");
    *done = 0;
    pthread_mutex_lock(&l->mu);
    if (!l->active) {
        pthread_mutex_unlock(&l->mu);
        return crl_fail(CRL_ERR_ARG, __func__, "no epoch is running: call crl_loader_start first");
    }
    /* the caller is done with the batch it held: its slot may refill */
    l->released = l->next_take;
    if (l->next_take >= l->nbatches) {
        *done = 1;
        l->active = 0;
        pthread_mutex_unlock(&l->mu);
        return CRL_OK;
    }
    pthread_cond_broadcast(&l->work);
    int64_t b = l->next_take;
    int slot = (int)(b % l->cfg.prefetch);
    /* batches before a failed one were all taken by workers: wait for them */
    while (!(l->failed && l->failed_batch <= b) && l->slot_batch[slot] != b) pthread_cond_wait(&l->ready, &l->mu);
    if (l->failed && l->failed_batch <= b) {
        l->active = 0;
        char msg[1024];
        snprintf(msg, sizeof msg, "%s", l->error);
        while (l->in_flight > 0) pthread_cond_wait(&l->ready, &l->mu);
        pthread_mutex_unlock(&l->mu);
        return crl_fail(CRL_ERR_IO, __func__, "batch %lld: %s", (long long)b, msg);
    }
    l->next_take = b + 1;
    pthread_cond_broadcast(&l->work);
    pthread_mutex_unlock(&l->mu);
    int64_t len = batch_len(l, b);
    int rc = crl_tensor_narrow(images, l->slot_x[slot], 0, 0, len);
    if (rc == CRL_OK) rc = crl_tensor_narrow(labels, l->slot_y[slot], 0, 0, len);
    return rc;
}

int64_t crl_loader_batches(const crl_loader *l) { return l ? l->nbatches : 0; }
int64_t crl_loader_skipped(const crl_loader *l) { return l ? __atomic_load_n(&l->skipped, __ATOMIC_RELAXED) : 0; }
