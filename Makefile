# Two entry points for a new user (see README): `make demo` and `make test`.
# Both install whatever is missing (Debian packages, the .venv with OpenMM from PyPI),
# build with CMake, install the plugin into the venv's OpenMM, then run.
VENV      := .venv
PYTHON    := $(CURDIR)/$(VENV)/bin/python
BUILD_DIR := build
JOBS      ?= $(shell nproc 2>/dev/null || echo 2)
CMAKE_ARGS ?=

.PHONY: all deps configure build install test test-cpp test-python demo bench fuzz test-sanitize test-sanitize-python test-tsan clean

all: install

deps:
	@bash scripts/install_deps.sh

$(BUILD_DIR)/CMakeCache.txt: | deps
	@OPENMM_DIR=$$($(PYTHON) -c "import os, openmm.version as v; print(os.path.dirname(v.openmm_library_path))") && \
	cmake -S . -B $(BUILD_DIR) -DCMAKE_BUILD_TYPE=Release -DOPENMM_DIR=$$OPENMM_DIR \
	  -DPython3_EXECUTABLE=$(PYTHON) -DSWIG_EXECUTABLE=$(CURDIR)/$(VENV)/bin/swig $(CMAKE_ARGS)

configure: deps $(BUILD_DIR)/CMakeCache.txt

build: configure
	@cmake --build $(BUILD_DIR) -j $(JOBS)

install: build
	@cmake --install $(BUILD_DIR) > $(BUILD_DIR)/install.log

test-cpp: install
	@cd $(BUILD_DIR) && ctest --output-on-failure -j $(JOBS)

test-python: install
	@$(PYTHON) -m pytest -q python/tests

test: test-cpp test-python

demo: install
	@$(PYTHON) examples/cgbg_alanine.py
	@$(PYTHON) examples/data_free_double_well.py
	@$(PYTHON) examples/bg_double_well.py
	@$(PYTHON) examples/pmf_md_demo.py

bench: install
	@$(PYTHON) benchmarks/pmf_force.py
	@$(PYTHON) benchmarks/energy_target.py
	@$(PYTHON) benchmarks/bg_integrator.py
	@$(PYTHON) benchmarks/data_free.py --case double_well
	@bash benchmarks/peers/install_torch.sh
	@$(PYTHON) benchmarks/flow_throughput.py

# libFuzzer targets for the parsers (tests/fuzz): its own clang build in build-fuzz/, nothing installed.
# `make fuzz FUZZ_SECONDS=600` fuzzes each target for 10 minutes; crash inputs land in build-fuzz/artifacts/.
FUZZ_SECONDS ?= 60
fuzz:
	@FUZZ_SECONDS=$(FUZZ_SECONDS) bash scripts/fuzz.sh

# The C++ tests under ASan + UBSan (+ LeakSanitizer) in build-sanitize/ (about 30 min on 2 cores).
test-sanitize: install
	@bash scripts/sanitize.sh

# A subset of the Python tests (every module) against ASan + UBSan builds of the plugin libraries and
# both extension modules, staged in build-sanitize/python-stage/ (the installed copies are not loaded).
test-sanitize-python: install
	@bash scripts/sanitize.sh --python

# The multithreaded C++ paths under ThreadSanitizer in build-tsan/ (20-30 min on 2 cores).
test-tsan: install
	@bash scripts/tsan.sh

clean:
	rm -rf $(BUILD_DIR)
