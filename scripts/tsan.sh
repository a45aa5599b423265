#!/usr/bin/env bash
# The multithreaded C++ paths under ThreadSanitizer (issue 20).
#
#   scripts/tsan.sh            # or: make test-tsan
#
# Configures build-tsan/ (gcc, -fsanitize=thread -O1 -g, RelWithDebInfo; no Python, OpenCL or CUDA
# targets), builds the GoogleTest programs that run threads, and runs them:
#   test_core             the flow engine's threaded passes (Flow::sample/logProb and their backward
#                         passes over util::parallelChunks), InternalCoordinates' thread blocks, the
#                         PMF trainer's per-member threads, the continuous flow's threaded ODE passes and
#                         flow-matching steps, MLP ensembles evaluated from several threads
#                         (all of test_core: the threaded tests and everything else in the same run);
#   test_energy           EnergyTarget's pool of Contexts (one std::thread per Context) and concurrent
#                         callers of one EnergyTarget;
#   TestReferencePMFForce on Reference and on CPU: PMFForceConcurrency.* runs several Contexts on one
#                         System holding one PMFForce (one model) from several std::threads at once
#                         (on Reference also created and destroyed there) against a serial evaluation;
#                         the rest of the program (PMFForce, CGMonteCarloIntegrator) is single-threaded
#                         on our side and costs a few seconds, so it runs whole.
# No gtest filter: the four runs take 2.5-10 min under TSan on 2 cores, nearly all of it test_core.
# Nothing in build/ or the installed .venv is touched. OpenMM (with the CPU platform's own thread
# pool), OpenBLAS and libstdc++'s compiled parts are not instrumented: races inside them are
# invisible, and tests/sanitize/tsan.supp is where reports with frames entirely inside such libraries
# would be suppressed, each with its reason (never a frame of our code; none needed so far).
# The build takes 15-17 min on 2 cores with JOBS=1, so it is a documented target, not part of
# `make test`.
# Prints {"name": "tsan_reports", "value": N, "unit": "reports"} (ThreadSanitizer warnings over all
# programs) and one {"name": "tsan_failed_<program>", ...} line per program that failed; exits
# non-zero if any report or failure.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BUILD="${TSAN_BUILD_DIR:-$ROOT/build-tsan}"
JOBS="${JOBS:-$(nproc 2>/dev/null || echo 2)}"
PYTHON="$ROOT/.venv/bin/python"
[[ -x "$PYTHON" ]] || { echo "tsan.sh: no .venv (run make install first)" >&2; exit 1; }
OPENMM_DIR="$("$PYTHON" -c "import os, openmm.version as v; print(os.path.dirname(v.openmm_library_path))")"

cmake -S "$ROOT" -B "$BUILD" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DOPENMM_DIR="$OPENMM_DIR" \
  -DPython3_EXECUTABLE="$PYTHON" \
  -DCGFLOW_BUILD_PYTHON=OFF -DCGFLOW_BUILD_OPENCL=OFF -DCGFLOW_BUILD_CUDA=OFF \
  -DCMAKE_C_COMPILER=gcc -DCMAKE_CXX_COMPILER=g++ \
  -DCMAKE_CXX_FLAGS="-fsanitize=thread -fno-omit-frame-pointer" \
  -DCMAKE_CXX_FLAGS_RELWITHDEBINFO="-O1 -g -DNDEBUG" \
  -DCMAKE_EXE_LINKER_FLAGS="-fsanitize=thread" -DCMAKE_SHARED_LINKER_FLAGS="-fsanitize=thread" > /dev/null
PROGRAMS=(test_core test_energy TestReferencePMFForce)
cmake --build "$BUILD" -j "$JOBS" --target "${PROGRAMS[@]}"

# halt_on_error=0: every report of a run is counted, not only the first. history_size=4 keeps the
# stack of the other access of a race available for longer runs.
export TSAN_OPTIONS="halt_on_error=0:second_deadlock_stack=1:history_size=4:suppressions=$ROOT/tests/sanitize/tsan.supp"
reports=0
failed=0
run() {  # name, command...
  local name="$1"; shift
  local log="$BUILD/tsan-$name.log"
  local start=$SECONDS
  if "$@" > "$log" 2>&1; then status=0; else status=$?; fi
  local n
  n=$(grep -c "^WARNING: ThreadSanitizer: " "$log" || true)
  reports=$((reports + n))
  if [[ $status -ne 0 ]]; then
    failed=$((failed + 1))
    echo "{\"name\": \"tsan_failed_$name\", \"value\": 1, \"unit\": \"program\", \"reports\": $n, \"log\": \"$log\"}"
  fi
  echo "tsan.sh: $name: exit $status, $n report(s), $((SECONDS - start)) s ($log)" >&2
}
run test_core "$BUILD/tests/test_core"
run test_energy "$BUILD/tests/test_energy"
run TestReferencePMFForce "$BUILD/tests/TestReferencePMFForce"
run TestReferencePMFForce_CPU "$BUILD/tests/TestReferencePMFForce" CPU
echo "{\"name\": \"tsan_reports\", \"value\": $reports, \"unit\": \"reports\"}"
[[ $reports -eq 0 && $failed -eq 0 ]]
