/* tests/fuzz/fuzz_common.h -- what the libFuzzer harnesses share: one
 * scratch file per process (in $TMPDIR, else /dev/shm, else /tmp) that each
 * input is written to, for the parsers that read from a path. */
#ifndef CRLAB_FUZZ_COMMON_H
#define CRLAB_FUZZ_COMMON_H
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char fuzz_path[4096];

static void fuzz_remove_file(void) { if (fuzz_path[0]) unlink(fuzz_path); }

/* Writes the input to the process's scratch file; returns its path. */
static const char *fuzz_write_file(const uint8_t *data, size_t size, const char *suffix)
{
    if (!fuzz_path[0]) {
        const char *dir = getenv("TMPDIR");
        if (dir == NULL || !*dir) dir = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";
        snprintf(fuzz_path, sizeof fuzz_path, "%s/crlab-fuzz-%ld%s", dir, (long)getpid(), suffix);
        atexit(fuzz_remove_file);
    }
    FILE *f = fopen(fuzz_path, "wb");
    if (f == NULL || (size && fwrite(data, 1, size, f) != size) || fclose(f) != 0) {
        perror(fuzz_path);
        abort();
    }
    return fuzz_path;
}
#endif
