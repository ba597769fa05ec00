# crlab -- one plain Makefile. `make` builds core/build/libcrlab.so, the
# CUDA backend core/build/libcrlab_cuda.so beside it when nvcc is found
# (`make CUDA=0` skips it; libcrlab.so loads it on first CUDA use), the C
# test programs, and checks the Lua side loads. See README.md for the targets.

CC      ?= cc
# -march=native: the library is built where it runs (PORTABLE=1 leaves it out)
CFLAGS  ?= -O3 -g $(if $(PORTABLE),,-march=native)
CUDA_HOME ?= /usr/local/cuda
NVCC    ?= $(shell command -v nvcc 2>/dev/null || ls $(CUDA_HOME)/bin/nvcc 2>/dev/null)
ifeq ($(origin CUDA), undefined)
  CUDA := $(if $(NVCC),1,0)
endif

BUILD   ?= core/build
WARN    := -Wall -Wextra -Wshadow -Wstrict-prototypes -Wno-unused-parameter
ALLCFLAGS := -std=c11 -D_POSIX_C_SOURCE=200809L -fPIC -pthread -fopenmp $(WARN) $(CFLAGS) $(XCFLAGS)
LDLIBS  := -ldnnl -lopenblas -lpng -lturbojpeg -lmatio -lz -lm -lpthread -fopenmp
NVFLAGS := -O3 -Xcompiler -fPIC,-fvisibility=hidden,-Wall -std=c++17 --expt-relaxed-constexpr \
           -gencode arch=compute_80,code=sm_80 -gencode arch=compute_90,code=sm_90 \
           -gencode arch=compute_90,code=compute_90

CORE_SRC := core/error.c core/tensor.c core/random.c core/process.c core/ops.c \
            core/cpu/elementwise.c core/cpu/reduce.c core/cpu/linalg.c core/cpu/loss.c \
            core/cpu/conv.c core/cpu/conv_plan.c core/cpu/blocked.c core/cpu/nn.c core/cpu/optim.c core/io/idx.c \
            core/io/image.c core/io/datasets.c core/io/loader.c core/cpu/transform.c \
            core/cpu/metrics.c core/cpu/backend.c core/cuda_loader.c
CORE_HDR := core/crlab.h core/crlab_api.h core/internal.h core/backend.h core/cpu/transform.h core/cpu/blocked.h \
            core/cpu/cpu.h $(wildcard core/math/*.h)
CUDA_SRC := $(wildcard core/cuda/*.cu)
CUDA_HDR := $(wildcard core/cuda/*.h core/cuda/*.cuh)

# oneDNN 2.x runs the CPU convolutions; say what to install when it is missing.
DNNL_HEADER := $(firstword $(wildcard /usr/include/oneapi/dnnl/dnnl.h /usr/local/include/oneapi/dnnl/dnnl.h) \
                 $(shell echo '\#include <oneapi/dnnl/dnnl.h>' | $(CC) -E -x c - >/dev/null 2>&1 && echo found))
ifeq ($(DNNL_HEADER),)
  $(error oneDNN was not found (oneapi/dnnl/dnnl.h): install Debian's libdnnl-dev, e.g. sh scripts/setup.sh)
endif

ifeq ($(CUDA),1)
  ifeq ($(NVCC),)
    $(error CUDA=1 but nvcc was not found; install the CUDA toolkit or use CUDA=0)
  endif
  CUDA_OBJ := $(CUDA_SRC:core/%.cu=$(BUILD)/%.o)
  CUDA_LIB := $(BUILD)/libcrlab_cuda.so
  ALLCFLAGS += -DCRL_WITH_CUDA=1
endif
CORE_OBJ := $(CORE_SRC:core/%.c=$(BUILD)/%.o)
LDLIBS   += -ldl

LIB := $(BUILD)/libcrlab.so
TEST_SRC := $(wildcard tests/c/test_*.c)
TEST_BIN := $(TEST_SRC:tests/c/%.c=$(BUILD)/tests/%)
ABI_DUMP := $(BUILD)/tests/abi_dump

.PHONY: all lib tests test asan fuzz run demo bench clean install uninstall
all: lib tests
	@if [ "$(CUDA)" = 1 ]; then echo "built $(LIB) with CUDA"; \
	 else echo "built $(LIB) without CUDA (no nvcc found, or CUDA=0)"; fi

lib: $(LIB) $(CUDA_LIB)
tests: $(TEST_BIN) $(ABI_DUMP)

$(BUILD)/%.o: core/%.c $(CORE_HDR)
	@mkdir -p $(dir $@)
	$(CC) $(ALLCFLAGS) -c $< -o $@

$(BUILD)/%.o: core/%.cu $(CORE_HDR) $(CUDA_HDR)
	@mkdir -p $(dir $@)
	$(NVCC) $(NVFLAGS) -Icore -c $< -o $@

# -z nodelete: LuaJIT unloads libraries at exit while the OpenMP and
# OpenBLAS worker threads still run; the library must stay mapped.
# Switching CUDA on or off relinks: the stamp names the current choice.
$(BUILD)/.cuda-$(CUDA):
	@mkdir -p $(BUILD)
	@rm -f $(BUILD)/.cuda-*
	@touch $@

$(BUILD)/cuda_loader.o: $(BUILD)/.cuda-$(CUDA)
$(LIB): $(CORE_OBJ) $(BUILD)/.cuda-$(CUDA)
	$(CC) -shared -pthread -Wl,-z,nodelete -Wl,-soname,libcrlab.so $(CFLAGS) $(XCFLAGS) -o $@ $(CORE_OBJ) $(LDLIBS)

# The CUDA plugin: the runtime linked statically, cuDNN and cuBLAS from
# the toolkit's folder unless LD_LIBRARY_PATH names others (the GPU check
# script points it at the pip packages' copies); libcrlab.so is resolved to
# the already-loaded library by its soname.
$(CUDA_LIB): $(CUDA_OBJ) $(LIB)
	$(NVCC) -shared -Xcompiler -fPIC -o $@ $(CUDA_OBJ) -L$(BUILD) -lcrlab \
	  -L$(CUDA_HOME)/lib64 -lcudnn -lcublas -lcudart_static -ldl -lrt -lpthread \
	  -Xlinker -rpath,'$$ORIGIN' -Xlinker -rpath,$(CUDA_HOME)/lib64 -Xlinker -z,nodelete

$(BUILD)/tests/%: tests/c/%.c tests/c/tap.h $(LIB)
	@mkdir -p $(dir $@)
	$(CC) $(ALLCFLAGS) -Icore -o $@ $< -L$(BUILD) -Wl,-rpath,'$$ORIGIN/..' -lcrlab -lpng -lturbojpeg -lmatio -lz -lm

# The test runner: C programs and Lua files, all speaking TAP, under prove.
# The GPU tests (tests/lua/test_cuda*.lua) skip without a GPU; they run a
# second time with the CPU standing in for the device, which checks their
# own code runs (and says nothing about CUDA).
test: all
	CRLAB_BUILD=$(BUILD) prove -e tests/run-one $(TEST_BIN) tests/lua/test_*.lua
	@echo "GPU tests with the CPU standing in for the device (the harness's self-check):"
	CRLAB_BUILD=$(BUILD) CRLAB_TEST_DEVICE=cpu prove -e tests/run-one tests/lua/test_cuda_*.lua

# The same tests with AddressSanitizer and UndefinedBehaviorSanitizer in a
# separate build (CPU only: the sanitizers and the CUDA runtime do not mix).
# LeakSanitizer runs with use_tls=0: GCC 12's runtime crashes scanning the
# thread-local storage of the dlopen'd oneDNN, and tests/lsan.supp names
# what the loader and OpenMP keep only there. A 16 MiB quarantine keeps the
# resident-memory test about the program, not about freed blocks ASan holds.
ASAN_FLAGS := -O1 -g $(if $(PORTABLE),-Wno-psabi,-march=native) -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined
asan:
	$(MAKE) BUILD=core/build-asan CUDA=0 CFLAGS="$(ASAN_FLAGS)" all
	CRLAB_BUILD=core/build-asan CRLAB_ASAN=1 \
	  ASAN_OPTIONS=detect_leaks=1:abort_on_error=0:quarantine_size_mb=16 UBSAN_OPTIONS=print_stacktrace=1 \
	  LSAN_OPTIONS=use_tls=0:print_suppressions=0:suppressions=$(CURDIR)/tests/lsan.supp \
	  prove -e tests/run-one $(TEST_SRC:tests/c/%.c=core/build-asan/tests/%) tests/lua/test_*.lua

# libFuzzer harnesses (tests/fuzz/) for every parser a user's file reaches:
# idx, CIFAR, SVHN, Stanford Cars, PNG/JPEG in C (the parsers compiled into each harness,
# instrumented), and in Lua the safetensors checkpoint, its JSON, and the
# CUB-200 and Adience text files (LuaJIT embedded; the C below them is the
# plain $(LIB), not instrumented). `make fuzz` runs each FUZZ_SECONDS
# (default 60), or FUZZ_RUNS executions; crashes go to core/build-fuzz/crashes/.
FUZZ_CC      ?= clang
FUZZ_BUILD   := core/build-fuzz
FUZZ_SECONDS ?= 60
FUZZ_C       := idx cifar svhn cars image
FUZZ_LUA     := json checkpoint cub200 adience
FUZZ_FLAGS   := -std=c11 -D_POSIX_C_SOURCE=200809L -g -O1 -fno-omit-frame-pointer \
                -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined
FUZZ_CORE    := core/error.c core/tensor.c core/cuda_loader.c core/io/idx.c core/io/datasets.c core/io/image.c \
                tests/fuzz/fuzz_stubs.c
FUZZ_BIN     := $(FUZZ_C:%=$(FUZZ_BUILD)/fuzz_%) $(FUZZ_LUA:%=$(FUZZ_BUILD)/fuzz_%)

$(FUZZ_C:%=$(FUZZ_BUILD)/fuzz_%): $(FUZZ_BUILD)/fuzz_%: tests/fuzz/fuzz_%.c tests/fuzz/fuzz_common.h $(FUZZ_CORE) $(CORE_HDR)
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_FLAGS) -Icore -Itests/fuzz -o $@ $< $(FUZZ_CORE) -lpng -lturbojpeg -lmatio -lz -lm -ldl -lpthread

$(FUZZ_LUA:%=$(FUZZ_BUILD)/fuzz_%): $(FUZZ_BUILD)/fuzz_%: tests/fuzz/fuzz_lua.c $(LIB)
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_FLAGS) -Wall -Wextra $(shell pkg-config --cflags luajit) -DFUZZ_TARGET='"$*"' \
	  -DCRLAB_ROOT='"$(CURDIR)"' -o $@ $< $(shell pkg-config --libs luajit || echo -lluajit-5.1)

fuzz: $(FUZZ_BIN)
	CRLAB_LIB=$(CURDIR)/$(LIB) tests/fuzz/run.sh $(FUZZ_BUILD) $(FUZZ_SECONDS) "$(FUZZ_RUNS)" $(FUZZ_C) $(FUZZ_LUA)

# The main job: the fmnist suite (scripts/suites/fmnist.lua), CE vs CRL on
# Fashion-MNIST over 3 seeds, then its report (runs/suites/fmnist/). Runs
# already done are kept: rm -rf runs/suites/fmnist to train them again.
run: all
	scripts/crlab scripts/suite.lua run fmnist
	scripts/crlab scripts/suite.lua report fmnist

# crlab.explore at work: the losses against p_y, sweeps, and three small real
# runs (CE, CRL, NLLR) seen through calibration and logit norms: runs/demo/*.png.
demo: all
	scripts/crlab scripts/demo.lua

# Throughput against PyTorch / torchvision (when installed) on the same threads.
bench: all
	scripts/crlab scripts/bench.lua
	scripts/crlab scripts/bench_loader.lua

PREFIX ?= /usr/local
install: all
	ln -sf $(CURDIR)/scripts/crlab $(PREFIX)/bin/crlab
	@echo "installed $(PREFIX)/bin/crlab -> $(CURDIR)/scripts/crlab"
uninstall:
	rm -f $(PREFIX)/bin/crlab

clean:
	rm -rf core/build core/build-asan core/build-fuzz
