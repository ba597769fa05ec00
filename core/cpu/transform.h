/* cpu/transform.h -- the transform pipeline's internal entry, shared by
 * crl_transform_apply and the loader's worker threads (each with its own
 * scratch buffers, grown as needed and kept). */
#ifndef CRLAB_TRANSFORM_H
#define CRLAB_TRANSFORM_H

#include "../internal.h"

typedef struct {
    float *a, *b, *tmp;
    size_t cap_a, cap_b, tmp_cap;
    void *wbuf;
    size_t wcap;
} crl_scratch;

void crl_scratch_free(crl_scratch *s);
int crl_transform_check(const crl_transform *t, int count, const char *func);
/* img uint8 (c, h, w) -> *result float (oc, oh, ow), pointing into s. */
int crl_transform_run(float **result, int64_t *oc, int64_t *oh, int64_t *ow, const uint8_t *img, int64_t c,
                      int64_t h, int64_t w, const crl_transform *t, int count, uint64_t seed, uint64_t counter,
                      crl_scratch *s, const char *func, const char *name);

#endif
