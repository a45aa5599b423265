#!/usr/bin/env bash
# The C++ tests and the Python tests under AddressSanitizer + UndefinedBehaviorSanitizer (issue 20).
#
#   scripts/sanitize.sh            # the C++ tests; or: make test-sanitize
#   scripts/sanitize.sh --python   # a subset of the Python tests; or: make test-sanitize-python
#   scripts/sanitize.sh --all      # both
#
# Configures build-sanitize/ (gcc, -fsanitize=address,undefined, -fno-sanitize-recover=undefined so
# that UB fails the test, RelWithDebInfo). Nothing in build/ or the installed .venv is touched.
#
# C++ half: builds the GoogleTest programs of the core, EnergyTarget, the Reference/CPU plugin and
# serialization, and runs them with LeakSanitizer on (tests/sanitize/lsan.supp lists the leaks that
# are OpenMM's, not ours). Prints {"name": "sanitizer_reports", "value": N, "unit": "reports"}.
#
# Python half: builds the API library, the Reference (and, where OpenMM has it, OpenCL) kernel
# plugin and the two extension modules (_core, pybind11; _plugin, SWIG) with the same flags, and
# stages them in build-sanitize/python-stage/:
#   openmmcgflow/  a copy of the build-tree package; its .so files keep their build-tree RUNPATH,
#                  which finds build-sanitize/libOpenMMCGFlow.so before OpenMM's library directory;
#   plugins/       symlinks to OpenMM's own plugins (not ours, not the CUDA ones) and copies of our
#                  sanitized kernel plugins; OPENMM_PLUGIN_DIR points there, so `import openmm` loads
#                  plugins from there only (CUDA is left out: no sanitized CUDA plugin is built).
# It then runs pytest on a fast subset covering every module (PYTHON_TESTS below) with
# PYTHONPATH=python-stage, LD_LIBRARY_PATH=build-sanitize and LD_PRELOAD of the compiler's libasan.so
# and libstdc++.so (python, numpy and OpenMM are not
# instrumented, and the ASan runtime must be the first library loaded; libubsan comes in as a
# dependency of our libraries). LeakSanitizer is off there (detect_leaks=0): CPython does not free its
# interned objects, module state and caches at exit, by design, so every run would report leaks that
# are not ours; our leaks are the C++ half's business. PYTHONMALLOC=malloc puts Python's objects on
# ASan's heap too. Reports inside libraries we do not build would be suppressed in
# tests/sanitize/asan-python.supp (none needed so far).
# /proc/self/maps is checked after `import openmmcgflow` and again at the end of the pytest session
# (tests/sanitize/loaded_libs.py): the run fails if a copy of our libraries from outside
# build-sanitize/ is mapped, or a sanitized one is missing.
# SANITIZE_PYTHON_TESTS overrides the pytest arguments (split on blanks), e.g.
# SANITIZE_PYTHON_TESTS=python/tests for the whole suite (not timed; its slow files, the active-learning,
# cgbg and example runs, take minutes each even without sanitizers).
# Prints {"name": "sanitizer_reports_python", "value": N, "unit": "reports"}.
#
# The builds take about 30 min (C++ half) and 42 min (Python half: libraries and modules, JOBS=1 on 2
# cores shared with other jobs), the tests a few minutes (C++) and about 2 min (Python subset: 372
# tests), so these are documented targets, not part of `make test`.
# Prints one {"name": "sanitize_failed_<program>", ...} line per program that failed; exits non-zero
# if any report or failure.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BUILD="${SANITIZE_BUILD_DIR:-$ROOT/build-sanitize}"
JOBS="${JOBS:-$(nproc 2>/dev/null || echo 2)}"
PYTHON="$ROOT/.venv/bin/python"
case "${1:-}" in
  "") RUN_CPP=1; RUN_PYTHON=0 ;;
  --python) RUN_CPP=0; RUN_PYTHON=1 ;;
  --all) RUN_CPP=1; RUN_PYTHON=1 ;;
  *) echo "usage: scripts/sanitize.sh [--python|--all]" >&2; exit 2 ;;
esac
[[ -x "$PYTHON" ]] || { echo "sanitize.sh: no .venv (run make install first)" >&2; exit 1; }
OPENMM_DIR="$("$PYTHON" -c "import os, openmm.version as v; print(os.path.dirname(v.openmm_library_path))")"
FLAGS="-fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined"

cmake -S "$ROOT" -B "$BUILD" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DOPENMM_DIR="$OPENMM_DIR" \
  -DPython3_EXECUTABLE="$PYTHON" -DSWIG_EXECUTABLE="$ROOT/.venv/bin/swig" \
  -DCMAKE_CXX_FLAGS="$FLAGS" -DCMAKE_EXE_LINKER_FLAGS="-fsanitize=address,undefined" \
  -DCMAKE_SHARED_LINKER_FLAGS="-fsanitize=address,undefined" > /dev/null

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

cpp_ok=1
if [[ $RUN_CPP -eq 1 ]]; then
  PROGRAMS=(test_core test_energy TestReferencePMFForce TestSerializePMFForce TestSerializeBoltzmannGeneratorIntegrator)
  cmake --build "$BUILD" -j "$JOBS" --target "${PROGRAMS[@]}"
  export ASAN_OPTIONS="detect_leaks=1:abort_on_error=0"
  export UBSAN_OPTIONS="print_stacktrace=1"
  export LSAN_OPTIONS="suppressions=$ROOT/tests/sanitize/lsan.supp"
  for program in "${PROGRAMS[@]}"; do
    run "$program" "$BUILD/tests/$program"
  done
  run TestReferencePMFForce_CPU "$BUILD/tests/TestReferencePMFForce" CPU
  unset ASAN_OPTIONS UBSAN_OPTIONS LSAN_OPTIONS
  echo "{\"name\": \"sanitizer_reports\", \"value\": $reports, \"unit\": \"reports\"}"
  [[ $reports -eq 0 && $failed -eq 0 ]] || cpp_ok=0
fi

python_ok=1
if [[ $RUN_PYTHON -eq 1 ]]; then
  reports=0
  failed=0
  started=$(date +%s)
  # Fast files (seconds to a minute each without sanitizers) that together reach every module:
  # the Force and both integrators on every platform, flows, model files, coordinates, statistics,
  # the trainers, EnergyTarget, input validation, NaN handling, the CNF path of cgbg.
  PYTHON_TESTS=(
    python/tests/test_pmf_force.py python/tests/test_bg_integrator.py python/tests/test_cg_monte_carlo.py
    python/tests/test_flows.py python/tests/test_core_io.py python/tests/test_coordinates.py
    python/tests/test_stats.py python/tests/test_pmf_trainer.py python/tests/test_bad_input_audit.py
    python/tests/test_energy_target.py python/tests/test_nan_storm.py python/tests/test_cgbg_cnf.py
    --deselect python/tests/test_cgbg_cnf.py::test_tiny_mueller_brown_run_with_a_cnf
  )
  if [[ -n "${SANITIZE_PYTHON_TESTS:-}" ]]; then
    read -r -a PYTHON_TESTS <<< "$SANITIZE_PYTHON_TESTS"
  fi
  TARGETS=(OpenMMCGFlow OpenMMCGFlowReference cgflow_core_module cgflow_plugin cgflow_python_files)
  with_opencl=0
  target_list="$(cmake --build "$BUILD" --target help)"  # (not piped into grep -q: SIGPIPE under pipefail)
  if grep -q "OpenMMCGFlowOpenCL" <<< "$target_list"; then
    TARGETS+=(OpenMMCGFlowOpenCL)
    with_opencl=1
  fi
  cmake --build "$BUILD" -j "$JOBS" --target "${TARGETS[@]}"
  built=$(date +%s)

  STAGE="$BUILD/python-stage"
  OPENMM_PLUGINS="$("$PYTHON" -c "import os, openmm.version as v; print(os.path.join(v.openmm_library_path, 'plugins'))")"
  rm -rf "$STAGE"
  mkdir -p "$STAGE/plugins"
  cp -r "$BUILD/python/openmmcgflow" "$STAGE/openmmcgflow"
  cp "$ROOT/tests/sanitize/loaded_libs.py" "$STAGE/"
  for lib in "$OPENMM_PLUGINS"/*.so; do
    case "$(basename "$lib")" in
      libOpenMMCGFlow*|*CUDA*) ;;
      *) ln -s "$lib" "$STAGE/plugins/" ;;
    esac
  done
  cp "$BUILD/libOpenMMCGFlowReference.so" "$STAGE/plugins/"
  [[ $with_opencl -eq 0 ]] || cp "$BUILD/libOpenMMCGFlowOpenCL.so" "$STAGE/plugins/"

  CXX_COMPILER="$(sed -n 's/^CMAKE_CXX_COMPILER:[A-Z]*=//p' "$BUILD/CMakeCache.txt")"
  ASAN_RUNTIME="$("${CXX_COMPILER:-c++}" -print-file-name=libasan.so)"
  # libstdc++ preloaded right after the runtime: python does not link it, and ASan resolves the real
  # __cxa_throw when it starts; without it the first C++ exception (matplotlib's ft2font, ours) dies in
  # "CHECK failed: ... real___cxa_throw != 0".
  CXX_RUNTIME="$("${CXX_COMPILER:-c++}" -print-file-name=libstdc++.so)"
  PY_ENV=(env LD_PRELOAD="$ASAN_RUNTIME:$CXX_RUNTIME" LD_LIBRARY_PATH="$BUILD" PYTHONPATH="$STAGE"
          OPENMM_PLUGIN_DIR="$STAGE/plugins" PYTHONMALLOC=malloc
          ASAN_OPTIONS="detect_leaks=0:abort_on_error=0:suppressions=$ROOT/tests/sanitize/asan-python.supp"
          UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1")
  check_loaded() {  # file written by loaded_libs.py, label
    "$PYTHON" - "$1" "$BUILD" "$with_opencl" "$2" <<'PY' || { failed=$((failed + 1)); return 0; }
import os, sys
path, build, opencl, label = sys.argv[1], os.path.realpath(sys.argv[2]) + os.sep, sys.argv[3] == "1", sys.argv[4]
if not os.path.exists(path):
    sys.exit(f"sanitize.sh: {label}: no list of loaded libraries ({path}): the process died early")
lines = open(path).read().splitlines()
mapped = [line[len("mapped "):] for line in lines if line.startswith("mapped ")]
ours = [m for m in mapped if not os.path.basename(m).startswith(("libasan", "libubsan"))]
for m in mapped:
    print(f"sanitize.sh: {label}: mapped {m}", file=sys.stderr)
errors = [f"unsanitized copy loaded: {m}" for m in ours if not os.path.realpath(m).startswith(build)]
bases = [os.path.basename(m) for m in ours]
needed = ["libOpenMMCGFlow.so", "libOpenMMCGFlowReference.so"] + (["libOpenMMCGFlowOpenCL.so"] if opencl else [])
errors += [f"not loaded: {n}" for n in needed if n not in bases]
errors += [f"not loaded: openmmcgflow/{n}*.so" for n in ("_core.", "_plugin.") if not any(b.startswith(n) for b in bases)]
if not any(os.path.basename(m).startswith("libasan") for m in mapped):
    errors.append("the ASan runtime is not loaded")
errors += [f"plugin load failure: {line[len('failure '):]}" for line in lines if line.startswith("failure ") and "CGFlow" in line]
for e in errors:
    print(f"sanitize.sh: {label}: {e}", file=sys.stderr)
sys.exit(1 if errors else 0)
PY
  }
  rm -f "$BUILD/python-loaded-import.txt" "$BUILD/python-loaded-pytest.txt"
  run python_import "${PY_ENV[@]}" "$PYTHON" "$STAGE/loaded_libs.py" "$BUILD/python-loaded-import.txt"
  check_loaded "$BUILD/python-loaded-import.txt" python_import
  if [[ $failed -eq 0 ]]; then
    # --capture=sys: a report written to fd 2 goes straight to the log, even when ASan ends the process.
    run python "${PY_ENV[@]}" SANITIZE_LOADED_LIBS="$BUILD/python-loaded-pytest.txt" \
      "$PYTHON" -m pytest -q -p no:cacheprovider -p loaded_libs --capture=sys --durations=15 "${PYTHON_TESTS[@]}"
    check_loaded "$BUILD/python-loaded-pytest.txt" pytest
  fi
  finished=$(date +%s)
  echo "sanitize.sh: python half: build $((built - started)) s, staging + tests $((finished - built)) s" >&2
  echo "{\"name\": \"sanitizer_reports_python\", \"value\": $reports, \"unit\": \"reports\"}"
  [[ $reports -eq 0 && $failed -eq 0 ]] || python_ok=0
fi
[[ $cpp_ok -eq 1 && $python_ok -eq 1 ]]
