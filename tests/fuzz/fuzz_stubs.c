/* tests/fuzz/fuzz_stubs.c -- the C harnesses compile only the parsers and
 * the tensor basics; these stand in for the CPU compute backend and oneDNN,
 * which no parser calls (a call through the empty table would crash). */
#include "internal.h"
#include "backend.h"

int crl_dnnl_block_size(void) { return CRL_LAYOUT_NCHW8C; }
const crl_backend crl_cpu_backend;
