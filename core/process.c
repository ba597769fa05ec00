/* process.c -- process-level facts and settings: resident memory (for the
 * memory-flatness check), the CPU kernels' thread count, and the SIGINT
 * handler of the interactive prompt. */
#include <cblas.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#ifdef _OPENMP
#include <omp.h>
#endif

#include "internal.h"

double crl_time_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

int crl_isatty(int fd) { return isatty(fd) ? 1 : 0; }

int64_t crl_rss_bytes(void)
{
    FILE *f = fopen("/proc/self/statm", "r");
    if (f == NULL) return -1;
    long long pages_total = 0, pages_resident = 0;
    int n = fscanf(f, "%lld %lld", &pages_total, &pages_resident);
    fclose(f);
    if (n != 2) return -1;
    return (int64_t)pages_resident * (int64_t)sysconf(_SC_PAGESIZE);
}

/* The CPU kernels parallelise over images and channels with OpenMP and
 * call a single-threaded sgemm from each thread; a second, OpenBLAS-owned
 * thread pool would only compete with them for the cores. */
__attribute__((constructor)) static void single_threaded_blas(void)
{
    openblas_set_num_threads(1);
}

/* More threads than this is refused: libgomp does not fail cleanly when it
 * cannot start them (100000 crashed in the first parallel region), and
 * compute kernels gain nothing past a few threads per core. */
#define CRL_MAX_THREADS 1024

int crl_set_num_threads(int n)
{
    if (n > CRL_MAX_THREADS)
        return crl_fail(CRL_ERR_ARG, __func__, "%d threads requested, at most %d (%ld CPUs online)", n,
                        CRL_MAX_THREADS, sysconf(_SC_NPROCESSORS_ONLN));
    if (n < 1) n = 1;
#ifdef _OPENMP
    omp_set_num_threads(n);
#endif
    return CRL_OK;
}

int crl_get_num_threads(void)
{
#ifdef _OPENMP
    return omp_get_max_threads();
#else
    return 1;
#endif
}

/* Ctrl-C for the prompt: the handler only notes the signal; the prompt
 * takes the note between Lua instructions (a debug hook) or when a read
 * returns early. No SA_RESTART, so a blocked read returns with EINTR. */
static volatile sig_atomic_t interrupted;
static struct sigaction sigint_before;
static int sigint_armed;

static void note_interrupt(int sig)
{
    (void)sig;
    interrupted = 1;
}

int crl_interrupt_arm(void)
{
    if (sigint_armed) return CRL_OK;
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = note_interrupt;
    sigemptyset(&sa.sa_mask);
    if (sigaction(SIGINT, &sa, &sigint_before) != 0)
        return crl_fail(CRL_ERR_ARG, __func__, "cannot install a SIGINT handler: %s", strerror(errno));
    interrupted = 0;
    sigint_armed = 1;
    return CRL_OK;
}

void crl_interrupt_disarm(void)
{
    if (!sigint_armed) return;
    sigaction(SIGINT, &sigint_before, NULL);
    sigint_armed = 0;
}

int crl_interrupt_take(void) { return __atomic_exchange_n(&interrupted, 0, __ATOMIC_SEQ_CST) ? 1 : 0; }
