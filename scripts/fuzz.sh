#!/usr/bin/env bash
# Coverage-guided fuzzing of the parsers that read outside data (tests/fuzz, issue 20).
#
#   scripts/fuzz.sh                 # every target for FUZZ_SECONDS (default 60) each
#   FUZZ_SECONDS=600 scripts/fuzz.sh safetensors model_file
#   scripts/fuzz.sh --make-corpus   # rewrite tests/fuzz/corpus/ with the project's own writers
#
# Installs clang if it is missing (apt-get), configures build-fuzz/ with -DCGFLOW_BUILD_FUZZERS=ON
# (clang, ASan+UBSan+libFuzzer; nothing in build/ or the installed .venv is touched), builds the
# fuzzers and runs each one. New corpus entries go to build-fuzz/corpus/<target>/, crash artifacts to
# build-fuzz/artifacts/; the committed seeds in tests/fuzz/corpus/<target>/ are only read.
# Prints one JSON line per target and metric:
#   {"name": "fuzz_execs_<target>", "value": N, "unit": "execs"}
#   {"name": "fuzz_crashes_<target>", "value": K, "unit": "crashes"}
# and exits non-zero if any target crashed (or failed to run).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BUILD="${FUZZ_BUILD_DIR:-$ROOT/build-fuzz}"
SECONDS_PER_TARGET="${FUZZ_SECONDS:-60}"
JOBS="${JOBS:-$(nproc 2>/dev/null || echo 2)}"
ALL_TARGETS=(safetensors model_file flow_config position_map xml_proxies)

MAKE_CORPUS=0
TARGETS=()
for arg in "$@"; do
  case "$arg" in
    --make-corpus) MAKE_CORPUS=1 ;;
    -h|--help) sed -n '2,17p' "$0"; exit 0 ;;
    *) TARGETS+=("$arg") ;;
  esac
done
[ ${#TARGETS[@]} -eq 0 ] && TARGETS=("${ALL_TARGETS[@]}")

log() { echo "fuzz.sh: $*" >&2; }

# Largest input per target: a few KB of JSON, model files and XML with a small embedded model.
max_len() {
  case "$1" in
    safetensors) echo 8192 ;;
    model_file) echo 16384 ;;
    flow_config|position_map) echo 4096 ;;
    xml_proxies) echo 16384 ;;
    *) echo 4096 ;;
  esac
}

# ---- clang (libFuzzer ships with it on Debian) ----
if ! command -v clang++ >/dev/null 2>&1; then
  log "clang++ not found; installing clang with apt-get"
  SUDO=""
  [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq clang >&2
fi

# ---- configure and build ----
if [ ! -f "$BUILD/CMakeCache.txt" ]; then
  if [ -z "${OPENMM_DIR:-}" ]; then
    PY="$ROOT/.venv/bin/python"
    [ -x "$PY" ] || PY="$(command -v python3)"
    OPENMM_DIR="$("$PY" -c "import os, openmm.version as v; print(os.path.dirname(v.openmm_library_path))")"
  fi
  log "configuring $BUILD (OPENMM_DIR=$OPENMM_DIR)"
  mkdir -p "$BUILD"
  CC=clang CXX=clang++ cmake -S "$ROOT" -B "$BUILD" -DCMAKE_BUILD_TYPE=RelWithDebInfo \
    -DOPENMM_DIR="$OPENMM_DIR" -DCGFLOW_BUILD_FUZZERS=ON -DCGFLOW_BUILD_TESTS=OFF \
    -DCGFLOW_BUILD_PYTHON=OFF -DCGFLOW_BUILD_OPENCL=OFF -DCGFLOW_BUILD_CUDA=OFF \
    -DCGFLOW_USE_OPENBLAS=OFF >"$BUILD/configure.log" 2>&1 || { cat "$BUILD/configure.log" >&2; exit 1; }
fi
BUILD_TARGETS=()
for t in "${TARGETS[@]}"; do BUILD_TARGETS+=("fuzz_$t"); done
[ $MAKE_CORPUS -eq 1 ] && BUILD_TARGETS+=(fuzz_make_corpus)
log "building ${BUILD_TARGETS[*]}"
cmake --build "$BUILD" -j "$JOBS" --target "${BUILD_TARGETS[@]}" >"$BUILD/build.log" 2>&1 ||
  { tail -50 "$BUILD/build.log" >&2; exit 1; }

export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0}"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}"

if [ $MAKE_CORPUS -eq 1 ]; then
  ASAN_OPTIONS=detect_leaks=0 "$BUILD/fuzz/fuzz_make_corpus" "$ROOT/tests/fuzz/corpus" >&2
  exit 0
fi

# ---- run ----
mkdir -p "$BUILD/artifacts" "$BUILD/logs"
failed=0
for t in "${TARGETS[@]}"; do
  exe="$BUILD/fuzz/fuzz_$t"
  work="$BUILD/corpus/$t"
  seeds="$ROOT/tests/fuzz/corpus/$t"
  logfile="$BUILD/logs/$t.log"
  mkdir -p "$work"
  # libFuzzer's findings: crash-, leak-, timeout-, oom- (slow-unit- files are only reports of slow inputs).
  count_findings() {
    find "$BUILD/artifacts" -maxdepth 1 \( -name "$t-crash-*" -o -name "$t-leak-*" -o -name "$t-timeout-*" \
      -o -name "$t-oom-*" \) | wc -l
  }
  before=$(count_findings)
  log "running fuzz_$t for ${SECONDS_PER_TARGET}s (log: $logfile)"
  rc=0
  "$exe" "$work" "$seeds" -max_total_time="$SECONDS_PER_TARGET" -max_len="$(max_len "$t")" \
    -timeout=20 -rss_limit_mb=2560 -malloc_limit_mb=2048 -print_final_stats=1 \
    -artifact_prefix="$BUILD/artifacts/$t-" >"$logfile" 2>&1 || rc=$?
  execs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$logfile" | tail -1 | grep -o '[0-9]*$' || true)
  if [ -z "$execs" ]; then
    # No final stats (the run died early): take the last progress line's count.
    execs=$(grep -o '^#[0-9]*' "$logfile" | tail -1 | tr -d '#' || true)
  fi
  after=$(count_findings)
  crashes=$((after - before))
  if [ "$rc" -ne 0 ] && [ "$crashes" -eq 0 ]; then crashes=1; fi
  if [ "$crashes" -ne 0 ]; then
    failed=1
    log "fuzz_$t FAILED (exit $rc); see $logfile and $BUILD/artifacts/$t-*"
    grep -m5 -E 'ERROR: |runtime error|FUZZ_CHECK|terminate called|Test unit written' "$logfile" >&2 || true
  fi
  echo "{\"name\": \"fuzz_execs_$t\", \"value\": ${execs:-0}, \"unit\": \"execs\"}"
  echo "{\"name\": \"fuzz_crashes_$t\", \"value\": $crashes, \"unit\": \"crashes\"}"
done
exit $failed
