#!/usr/bin/env bash
# The C++ tests under AddressSanitizer + UndefinedBehaviorSanitizer (issue 20).
#
#   scripts/sanitize.sh            # or: make test-sanitize
#
# Configures build-sanitize/ (gcc, -fsanitize=address,undefined, -fno-sanitize-recover=undefined so
# that UB fails the test, RelWithDebInfo), builds the GoogleTest programs of the core, EnergyTarget,
# the Reference/CPU plugin and serialization, and runs them with LeakSanitizer on
# (tests/sanitize/lsan.supp lists the leaks that are OpenMM's, not ours). Nothing in build/ or the
# installed .venv is touched. The build takes about 30 min on 2 cores, the tests a few minutes, so
# it is a documented target, not part of `make test`.
# Prints {"name": "sanitizer_reports", "value": N, "unit": "reports"} (ASan/UBSan/LSan reports over all
# programs) and one {"name": "sanitize_failed_<program>", ...} line per program that failed; exits
# non-zero if any report or failure.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BUILD="${SANITIZE_BUILD_DIR:-$ROOT/build-sanitize}"
JOBS="${JOBS:-$(nproc 2>/dev/null || echo 2)}"
PYTHON="$ROOT/.venv/bin/python"
[[ -x "$PYTHON" ]] || { echo "sanitize.sh: no .venv (run make install first)" >&2; exit 1; }
OPENMM_DIR="$("$PYTHON" -c "import os, openmm.version as v; print(os.path.dirname(v.openmm_library_path))")"
FLAGS="-fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined"

cmake -S "$ROOT" -B "$BUILD" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DOPENMM_DIR="$OPENMM_DIR" \
  -DPython3_EXECUTABLE="$PYTHON" -DSWIG_EXECUTABLE="$ROOT/.venv/bin/swig" \
  -DCMAKE_CXX_FLAGS="$FLAGS" -DCMAKE_EXE_LINKER_FLAGS="-fsanitize=address,undefined" \
  -DCMAKE_SHARED_LINKER_FLAGS="-fsanitize=address,undefined" > /dev/null
PROGRAMS=(test_core test_energy TestReferencePMFForce TestSerializePMFForce TestSerializeBoltzmannGeneratorIntegrator)
cmake --build "$BUILD" -j "$JOBS" --target "${PROGRAMS[@]}"

export ASAN_OPTIONS="detect_leaks=1:abort_on_error=0"
export UBSAN_OPTIONS="print_stacktrace=1"
export LSAN_OPTIONS="suppressions=$ROOT/tests/sanitize/lsan.supp"
reports=0
failed=0
run() {  # name, command...
  local name="$1"; shift
  local log="$BUILD/sanitize-$name.log"
  if "$@" > "$log" 2>&1; then status=0; else status=$?; fi
  local n
  n=$(grep -cE "^==[0-9]+==ERROR: |runtime error: " "$log" || true)
  reports=$((reports + n))
  if [[ $status -ne 0 ]]; then
    failed=$((failed + 1))
    echo "{\"name\": \"sanitize_failed_$name\", \"value\": 1, \"unit\": \"program\", \"reports\": $n, \"log\": \"$log\"}"
  fi
  echo "sanitize.sh: $name: exit $status, $n report(s) ($log)" >&2
}
for program in "${PROGRAMS[@]}"; do
  run "$program" "$BUILD/tests/$program"
done
run TestReferencePMFForce_CPU "$BUILD/tests/TestReferencePMFForce" CPU
echo "{\"name\": \"sanitizer_reports\", \"value\": $reports, \"unit\": \"reports\"}"
[[ $reports -eq 0 && $failed -eq 0 ]]
