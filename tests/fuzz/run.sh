#!/bin/sh
# tests/fuzz/run.sh BUILD SECONDS RUNS NAME... -- runs each harness BUILD/fuzz_NAME
# for SECONDS (or RUNS executions when RUNS is set) on a working corpus
# BUILD/corpus/NAME seeded from tests/fuzz/corpus/NAME, saves crashes under
# BUILD/crashes/NAME/, prints executions, exec/s and crash files per harness.
# Exits 1 when any harness crashed.
build=$1 seconds=$2 runs=$3
shift 3
root=$(cd "$(dirname "$0")/../.." && pwd)
status=0
for name in "$@"; do
  case $name in
    idx|json|checkpoint) max=8192 ;;
    cifar) max=6200 ;;        # two CIFAR-100 records
    svhn|image) max=16384 ;;
    cars) max=8192 ;;         # two annotations or a few class names, plain or zlib
    *) max=4096 ;;            # the text files of cub200 and adience
  esac
  mkdir -p "$build/corpus/$name" "$build/crashes/$name" "$build/logs"
  log="$build/logs/$name.log"
  if [ -n "$runs" ]; then limit="-runs=$runs"; else limit="-max_total_time=$seconds"; fi
  # the Lua harnesses: LuaJIT's heap is mmap'd, where LeakSanitizer does not look
  case $name in json|checkpoint|cub200|adience) leaks=0 ;; *) leaks=1 ;; esac
  # libmatio (not crlab) allocates what a damaged header declares while it
  # reads the variables' headers (crlab checks X's size before the data):
  # for svhn only memory actually used counts, and a failed allocation is NULL
  # (a block of gigabytes, never touched, costs nothing unsanitized, but
  # under ASan seconds of shadow poisoning, and the shadow pages pile up
  # past the RSS limit: above 256 MiB, 16384 times the largest input, ASan
  # returns NULL, which matio reports as an error)
  mlimit=2048 mnull=0 masize=
  case $name in svhn) mlimit=1048576 mnull=1 masize=max_allocation_size_mb=256: ;; esac
  ASAN_OPTIONS="detect_leaks=$leaks:allocator_may_return_null=$mnull:$masize${ASAN_OPTIONS:-}" UBSAN_OPTIONS="print_stacktrace=1:${UBSAN_OPTIONS:-}" \
  CRLAB_HOME="$root" "$build/fuzz_$name" $limit -max_len=$max -timeout=10 -rss_limit_mb=2048 -malloc_limit_mb=$mlimit \
    -print_final_stats=1 -artifact_prefix="$build/crashes/$name/" \
    "$build/corpus/$name" "$root/tests/fuzz/corpus/$name" >"$log" 2>&1
  rc=$?
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
  rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -1)
  crashes=$(ls "$build/crashes/$name" 2>/dev/null | wc -l)
  printf '%-11s %10s execs %7s exec/s  %s crash file(s)  (log %s)\n' "$name" "${execs:-?}" "${rate:-?}" "$crashes" "$log"
  ls "$build/crashes/$name" 2>/dev/null | sed "s|^|    $build/crashes/$name/|"
  if [ "$rc" != 0 ] || [ "$crashes" != 0 ]; then
    status=1
    grep -m3 -E 'ERROR|SUMMARY|fuzz:' "$log" | sed 's/^/    /'
  fi
done
exit $status
