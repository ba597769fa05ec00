#!/bin/sh
# scripts/gpu-check.sh -- the one-shot GPU check, in two halves.
#
#   scripts/gpu-check.sh pack [--dry-run]     on the build machine
#   scripts/gpu-check.sh run                  on the GPU machine, from the repository root
#
# The GPU machine gets a copy of the working tree (plus a few named ignored
# files) and has the NVIDIA driver, Python with PyTorch and pip's cuDNN and
# cuBLAS, but none of the Debian libraries crlab links (OpenBLAS, oneDNN,
# libpng, libjpeg-turbo, matio + HDF5), no luajit, no network, and no time to
# build. So `pack` builds here and puts into ONE git-ignored file,
# core/build/gpu-pack.tar.xz, the luajit binary, libcrlab.so, the CUDA plugin
# libcrlab_cuda.so and every shared library they need, except
#   - glibc's own (libc, libm, libpthread, libdl, librt, libresolv, ld-linux):
#     they belong to the system and must match its loader;
#   - the CUDA libraries the GPU machine provides (libcuda from the driver,
#     cuDNN, cuBLAS/cuBLASLt, NVRTC from pip).
# GCC's runtime (libstdc++, libgcc_s, libgomp) is packed too, in lib/gcc/:
# the GPU machine's copies may be older than the ones our libraries were
# linked against (a missing GLIBCXX_3.4.30 stops the load), while ours need
# glibc >= 2.36 and so may not load on an older system. `run` therefore
# tries the system's runtime first (a newer libstdc++ serves older binaries,
# and it is what cuDNN was tested with) and falls back to the packed one.
#
# `pack --dry-run` also rehearses `run` here: it unpacks into a temporary
# folder, checks with ldd that nothing resolves outside the pack except glibc
# and CUDA, and runs the GPU tests with the packed luajit (they skip without
# a GPU). Both fail when the pack is over 60 MiB (the tool carries 64 MiB).
#
# `run` unpacks into core/build/gpu-run (inside the repository), points
# LD_LIBRARY_PATH at it and at pip's NVIDIA library folders, prints the
# device, runs tests/lua/test_cuda*.lua (at most 3 min in all) into
# $OUT/gpu-tests.log and the GPU benchmark (at most 4 min) into
# $OUT/gpu-bench.log; OUT defaults to ./gpu-out. It needs no compiler and no
# make. Options: --pack FILE, --tests-only, --bench-only, --tests-budget S,
# --bench-budget S, --bench-args "ARGS".
set -u

root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root" || exit 1
PACK=core/build/gpu-pack.tar.xz
LIMIT_MIB=60

die() { echo "gpu-check: $*" >&2; exit 1; }
mib() { awk -v b="$1" 'BEGIN { printf "%.1f", b / 1048576 }'; }

is_excluded() { # a library name the pack leaves to the target system
  case "$1" in
    linux-vdso.so*|ld-linux*|libc.so.*|libm.so.*|libpthread.so.*|libdl.so.*|librt.so.*|libresolv.so.*| \
    libutil.so.*|libanl.so.*|libnsl.so.*|libBrokenLocale.so.*|libmvec.so.*|libthread_db.so.*) return 0 ;;
    libcuda.so*|libcudnn*|libcublas*|libnvrtc*|libnvJitLink*|libcudart.so*|libnvidia-*) return 0 ;;
  esac
  return 1
}

is_gcc_runtime() {
  case "$1" in libstdc++.so.*|libgcc_s.so.*|libgomp.so.*) return 0 ;; esac
  return 1
}

# ---------------------------------------------------------------------------
# pack

# Prints "name path" for every library ldd resolves for the given files.
resolve() {
  for f in "$@"; do ldd "$f"; done | awk '$2 == "=>" && $3 ~ /^\// {print $1, $3}' | sort -u
}

pack() {
  dry=0
  for a in "$@"; do
    case "$a" in
      --dry-run) dry=1 ;;
      *) die "pack: unknown option $a" ;;
    esac
  done
  command -v xz >/dev/null || die "xz is needed to pack"
  command -v ldd >/dev/null || die "ldd is needed to pack"
  nvcc=$(command -v nvcc 2>/dev/null || ls /usr/local/cuda/bin/nvcc 2>/dev/null)
  [ -n "$nvcc" ] || die "pack: nvcc was not found: the CUDA plugin cannot be built here"
  echo "== building with CUDA (make -j2)"
  make -j2 CUDA=1 >/tmp/gpu-check-make.$$ 2>&1 || { tail -30 /tmp/gpu-check-make.$$; rm -f /tmp/gpu-check-make.$$; die "the build failed"; }
  tail -1 /tmp/gpu-check-make.$$
  rm -f /tmp/gpu-check-make.$$
  luajit=$(command -v luajit) || die "luajit is not on PATH"
  luajit=$(readlink -f "$luajit")
  lib=core/build/libcrlab.so
  plugin=core/build/libcrlab_cuda.so
  [ -f "$lib" ] && [ -f "$plugin" ] || die "the build left no $lib or $plugin"

  stage=$(mktemp -d /tmp/gpu-pack.XXXXXX)
  trap 'rm -rf "$stage"' EXIT
  p=$stage/gpu-pack
  mkdir -p "$p/bin" "$p/lib/gcc"
  cp "$luajit" "$p/bin/luajit"
  cp "$lib" "$plugin" "$p/lib/"
  # the debugging information of our own two libraries is not needed there
  strip --strip-debug "$p/lib/libcrlab.so" "$p/lib/libcrlab_cuda.so" 2>/dev/null || true

  # ldd lists the whole closure (libraries of libraries); libraries that are
  # opened with dlopen at run time are not in it: any that crlab needs
  # would be added to the resolve line (none today: oneDNN's optional VTune
  # hooks, libgomp's offload plugins and HDF5's filter plugins are not used)
  resolve "$luajit" "$lib" "$plugin" >"$stage/deps"
  while read -r name path; do
    case "$name" in libcrlab.so|libcrlab_cuda.so) continue ;; esac
    is_excluded "$name" && continue
    if is_gcc_runtime "$name"; then dest=$p/lib/gcc/$name; else dest=$p/lib/$name; fi
    cp -L "$path" "$dest" || die "cannot copy $path"
  done <"$stage/deps"

  # what the target's glibc must provide, and which GCC runtime versions
  # our binaries need (run compares; no binutils there)
  glibc_of() { for f in "$@"; do objdump -T "$f" 2>/dev/null | grep -o 'GLIBC_[0-9.]*'; done | sort -uV | tail -1; }
  need_glibc="$(glibc_of "$p"/bin/* "$p"/lib/*.so*); the packed GCC runtime $(glibc_of "$p"/lib/gcc/*)"
  {
    echo "crlab GPU pack"
    echo "commit: $(git rev-parse --short HEAD 2>/dev/null)$(git diff --quiet HEAD 2>/dev/null || echo ' (with uncommitted changes)')"
    echo "built: $(date -u +%Y-%m-%dT%H:%M:%SZ) on $(. /etc/os-release 2>/dev/null; echo "${PRETTY_NAME:-?}"), $(ldd --version | head -1)"
    echo "needs: $need_glibc (or newer)"
    echo "files:"
    (cd "$p" && find . -type f | sort | while read -r f; do printf '  %10d  %s\n' "$(stat -c %s "$f")" "$f"; done)
  } >"$p/MANIFEST"

  mkdir -p core/build
  echo "== compressing (xz -9)"
  tar -C "$stage" -cf - gpu-pack | xz -9 -T0 >"$PACK.tmp" || die "tar/xz failed"
  mv "$PACK.tmp" "$PACK"
  size=$(stat -c %s "$PACK")
  raw=$(du -sb "$p" | cut -f1)
  cat "$p/MANIFEST"
  echo "$PACK: $(mib "$size") MiB ($(mib "$raw") MiB unpacked, $(find "$p" -type f | wc -l) files)"
  if [ "$size" -gt $((LIMIT_MIB * 1048576)) ]; then
    die "the pack is over $LIMIT_MIB MiB: it would not travel with the working tree (64 MiB in all)"
  fi
  tree=$(git ls-files -z | xargs -0 du -cb 2>/dev/null | tail -1 | cut -f1)
  echo "with the tracked files ($(mib "$tree") MiB) a run carries $(mib $((tree + size))) MiB of its 64"
  if [ "$dry" = 1 ]; then
    rm -rf "$stage"
    trap - EXIT
    rehearse
  else
    echo "next, on the GPU machine: scripts/gpu-check.sh run   (carry $PACK)"
  fi
}

# The run half, here: unpacks into a temporary folder, checks that the pack
# is complete, and runs the GPU tests with the packed luajit.
rehearse() {
  echo "== rehearsing the run half here"
  tmp=$(mktemp -d /tmp/gpu-rehearse.XXXXXX)
  trap 'rm -rf "$tmp"' EXIT
  unpack "$tmp"
  pk=$tmp/gpu-pack
  bad=0
  for f in "$pk"/bin/luajit "$pk"/lib/*.so* "$pk"/lib/gcc/*; do
    # only the pack on the path: whatever else resolves must be glibc or CUDA
    out=$(LD_LIBRARY_PATH="$pk/lib:$pk/lib/gcc" ldd "$f" 2>&1)
    echo "$out" | awk '$2 == "=>" {print $1, $3}' | while read -r name path; do
      case "$path" in "$pk"/*) continue ;; esac
      if [ "$path" = "not" ]; then
        is_excluded "$name" || echo "  $(basename "$f"): $name is not found"
        continue
      fi
      is_excluded "$name" || echo "  $(basename "$f"): $name resolves outside the pack, to $path"
    done >>"$tmp/leaks"
  done
  if [ -s "$tmp/leaks" ]; then
    echo "the pack is incomplete:"
    cat "$tmp/leaks"
    bad=1
  else
    echo "ldd: every library of the pack resolves inside it, except glibc and CUDA's"
  fi
  for t in tests/lua/test_cuda*.lua; do
    res=$(env -u LD_LIBRARY_PATH LD_LIBRARY_PATH="$pk/lib:$pk/lib/gcc" PATH="$pk/bin:/usr/bin:/bin" \
          CRLAB_LIB="$pk/lib/libcrlab.so" LUA_PATH="$root/lua/?.lua;$root/lua/?/init.lua;$root/tests/lua/?.lua;;" \
          CRLAB_HOME="$root" luajit "$t" 2>&1)
    rc=$?
    o=$(echo "$res" | grep -c '^ok ')
    b=$(echo "$res" | grep -c '^not ok ')
    echo "  $t: exit $rc, $o ok, $b not ok"
    [ "$rc" = 0 ] && [ "$b" = 0 ] || { bad=1; echo "$res" | tail -20; }
  done
  # with the CPU standing in, the packed build runs real work too
  res=$(env -u LD_LIBRARY_PATH LD_LIBRARY_PATH="$pk/lib:$pk/lib/gcc" PATH="$pk/bin:/usr/bin:/bin" \
        CRLAB_TEST_DEVICE=cpu CRLAB_LIB="$pk/lib/libcrlab.so" \
        LUA_PATH="$root/lua/?.lua;$root/lua/?/init.lua;$root/tests/lua/?.lua;;" CRLAB_HOME="$root" \
        luajit tests/lua/test_cuda_ops.lua 2>&1)
  rc=$?
  echo "  test_cuda_ops.lua with the CPU standing in: exit $rc, $(echo "$res" | grep -c '^ok ') ok"
  [ "$rc" = 0 ] || bad=1
  rm -rf "$tmp"
  trap - EXIT
  [ "$bad" = 0 ] || die "the rehearsal failed"
  echo "rehearsal passed (the CUDA code itself can only be checked on the GPU machine)"
}

# ---------------------------------------------------------------------------
# run

# Unpacks $PACK into $1/gpu-pack.
unpack() {
  dest=$1
  [ -f "$PACK" ] || die "no pack at $PACK (run 'scripts/gpu-check.sh pack' on the build machine and carry it)"
  mkdir -p "$dest"
  if command -v xz >/dev/null 2>&1; then
    xz -dc "$PACK" | tar -C "$dest" -xf - || die "unpacking $PACK failed"
  else
    python3 -c 'import sys, tarfile; tarfile.open(sys.argv[1], "r:xz").extractall(sys.argv[2])' "$PACK" "$dest" ||
      die "unpacking $PACK failed (no xz, and Python could not either)"
  fi
  [ -x "$dest/gpu-pack/bin/luajit" ] || die "the pack holds no bin/luajit"
}

# Folders holding pip's NVIDIA libraries (cuDNN, cuBLAS, NVRTC, ...): every
# folder under an nvidia package directory that holds a shared library. Both
# layouts are covered: nvidia/<lib>/lib (CUDA 12 wheels) and nvidia/cu13/lib.
nvidia_dirs() {
  py=$(command -v python3 || command -v python) || return 0
  timeout 60 "$py" - <<'EOF' 2>/dev/null | while read -r top; do
import site, sys, os
tops = set()
try:
    import nvidia
    tops.update(getattr(nvidia, '__path__', []))
except Exception:
    pass
for d in site.getsitepackages() + [site.getusersitepackages()] + sys.path:
    if os.path.isdir(os.path.join(d, 'nvidia')):
        tops.add(os.path.join(d, 'nvidia'))
for t in sorted(tops):
    print(t)
EOF
    find "$top" -maxdepth 4 -name 'lib*.so*' -printf '%h\n' 2>/dev/null
  done | sort -u
}

run_half() {
  tests_budget=180
  bench_budget=240
  do_tests=1
  do_bench=1
  bench_args=""
  while [ $# -gt 0 ]; do
    case "$1" in
      --pack) PACK=$2; shift ;;
      --tests-only) do_bench=0 ;;
      --bench-only) do_tests=0 ;;
      --tests-budget) tests_budget=$2; shift ;;
      --bench-budget) bench_budget=$2; shift ;;
      --bench-args) bench_args=$2; shift ;;
      *) die "run: unknown option $1" ;;
    esac
    shift
  done
  OUT=${OUT:-$root/gpu-out}
  mkdir -p "$OUT"
  OUT=$(cd "$OUT" && pwd)
  env_log=$OUT/gpu-env.log
  : >"$env_log"
  say() { echo "$@" | tee -a "$env_log"; }

  dest=$root/core/build/gpu-run
  case "$dest" in "$root"/core/build/*) ;; *) die "refusing to unpack outside the repository" ;; esac
  rm -rf "$dest"
  unpack "$dest"
  pk=$dest/gpu-pack
  say "== pack"
  sed -n '1,4p' "$pk/MANIFEST" | tee -a "$env_log"
  say "this system: $(ldd --version 2>/dev/null | head -1), $(uname -srm)"

  say "== device"
  if command -v nvidia-smi >/dev/null 2>&1; then
    nvidia-smi 2>&1 | tee -a "$env_log"
  else
    say "nvidia-smi is not on PATH"
  fi

  cuda_dirs=$(nvidia_dirs | tr '\n' ':')
  if [ -z "$cuda_dirs" ]; then
    for d in /usr/local/cuda/lib64 /usr/local/cuda/lib; do [ -d "$d" ] && cuda_dirs="$cuda_dirs$d:"; done
    say "no pip NVIDIA packages found; using ${cuda_dirs:-the default library path}"
  fi
  for need in libcudnn.so.9 libcublas.so.13 libcublasLt.so.13; do
    found=""
    for d in $(echo "$cuda_dirs" | tr ':' ' '); do [ -e "$d/$need" ] && found=$d/$need && break; done
    say "$need: ${found:-NOT FOUND in the pip folders (the system path may still have it)}"
  done

  export CRLAB_LIB="$pk/lib/libcrlab.so"
  export PATH="$pk/bin:$PATH"
  export LUA_PATH="$root/lua/?.lua;$root/lua/?/init.lua;$root/tests/lua/?.lua;;"
  export CRLAB_HOME="$root"
  orig_ld=${LD_LIBRARY_PATH:-}
  # Python (the PyTorch half of the benchmark) must not see our libraries
  if [ -n "$orig_ld" ]; then export CRLAB_PYTHON="env LD_LIBRARY_PATH=$orig_ld python3"
  else export CRLAB_PYTHON="env -u LD_LIBRARY_PATH python3"; fi
  probe='local ffi = require "ffi"; ffi.load(os.getenv("CRLAB_LIB"), true)
         ffi.load((os.getenv("CRLAB_LIB"):gsub("libcrlab%.so$", "libcrlab_cuda.so")))'
  gcc_choice="the system's"
  # no empty entries: an empty entry in LD_LIBRARY_PATH means the current folder
  tail_ld=$(printf '%s' "$cuda_dirs$orig_ld" | tr -s ':' | sed 's/^://; s/:$//')
  export LD_LIBRARY_PATH="$pk/lib${tail_ld:+:$tail_ld}"
  if ! why=$(luajit -e "$probe" 2>&1); then
    say "with the system's GCC runtime the libraries do not load: $why"
    export LD_LIBRARY_PATH="$pk/lib:$pk/lib/gcc${tail_ld:+:$tail_ld}"
    gcc_choice="the packed"
    if ! why=$(luajit -e "$probe" 2>&1); then
      say "with the packed GCC runtime neither: $why"
      gcc_choice="neither (the tests will say why)"
    fi
  fi
  say "GCC runtime (libstdc++, libgcc_s, libgomp): $gcc_choice"
  say "LD_LIBRARY_PATH=$LD_LIBRARY_PATH"
  if command -v ldd >/dev/null 2>&1; then
    say "== ldd libcrlab_cuda.so"
    ldd "$pk/lib/libcrlab_cuda.so" 2>&1 | tee -a "$env_log" | grep -E 'not found|cudnn|cublas' || true
  fi
  ndev=$(luajit -e 'print(require("crlab").cuda.deviceCount())' 2>/dev/null || echo 0)
  luajit -e 'local c = require "crlab"
    print(("crlab.cuda: compiled %s, %d device(s)"):format(tostring(c.cuda.compiled()), c.cuda.deviceCount()))
    if c.cuda.deviceCount() == 0 then
      local ok, err = pcall(function() return c.zeros(1):cuda() end)
      print("why: " .. tostring(err))
    end' 2>&1 | tee -a "$env_log"

  status=0
  if [ "$ndev" = 0 ]; then
    say "NO CUDA DEVICE is usable: the GPU tests will only skip and the benchmark cannot run"
    status=1
  fi
  if [ "$do_tests" = 1 ]; then
    log=$OUT/gpu-tests.log
    : >"$log"
    say "== GPU tests (at most ${tests_budget}s) -> $log"
    start=$(date +%s)
    tot_ok=0; tot_bad=0; tot_skip=0
    for t in tests/lua/test_cuda*.lua; do
      left=$((tests_budget - ($(date +%s) - start)))
      if [ "$left" -le 0 ]; then
        say "  $t: not run (the time budget is spent)"
        status=1
        continue
      fi
      echo "# ---- $t" >>"$log"
      t0=$(date +%s)
      timeout -k 5 "$left" luajit "$t" >"$OUT/.one" 2>&1
      rc=$?
      cat "$OUT/.one" >>"$log"
      o=$(grep -c '^ok ' "$OUT/.one"); s=$(grep -ci '^ok [0-9]* # skip' "$OUT/.one"); b=$(grep -c '^not ok ' "$OUT/.one")
      o=$((o - s))
      tot_ok=$((tot_ok + o)); tot_bad=$((tot_bad + b)); tot_skip=$((tot_skip + s))
      note=""
      [ "$rc" = 124 ] || [ "$rc" = 137 ] && note=" (TIMED OUT)"
      say "  $t: $o ok, $b not ok, $s skipped, exit $rc, $(( $(date +%s) - t0 ))s$note"
      [ "$rc" = 0 ] && [ "$b" = 0 ] || status=1
    done
    rm -f "$OUT/.one"
    say "GPU tests: $tot_ok ok, $tot_bad not ok, $tot_skip skipped"
    [ "$tot_bad" -gt 0 ] && { echo "failures:"; grep -A3 '^not ok ' "$log" | head -60; }
  fi
  if [ "$do_bench" = 1 ]; then
    blog=$OUT/gpu-bench.log
    say "== GPU benchmark (at most ${bench_budget}s) -> $blog"
    # the benchmark spreads its own time over the models; timeout is the backstop
    # shellcheck disable=SC2086
    timeout -k 5 "$bench_budget" luajit scripts/bench.lua --device cuda --budget $((bench_budget - 15)) $bench_args \
      >"$blog" 2>&1
    rc=$?
    cat "$blog"
    [ "$rc" = 0 ] || { say "the benchmark ended with exit $rc$([ "$rc" = 124 ] && echo ' (timed out)')"; status=1; }
  fi
  return $status
}

case "${1:-}" in
  pack) shift; pack "$@" ;;
  run) shift; run_half "$@" ;;
  *) sed -n '2,40p' "$0" | sed 's/^# \{0,1\}//'; exit 2 ;;
esac
