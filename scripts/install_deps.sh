#!/usr/bin/env bash
# Installs everything the build needs, idempotently: Debian packages (when missing) and the
# project virtualenv .venv with OpenMM from PyPI. Safe to run again; does nothing when done.
set -euo pipefail
cd "$(dirname "$0")/.."

APT_PACKAGES=(libeigen3-dev nlohmann-json3-dev ocl-icd-opencl-dev opencl-headers
              pocl-opencl-icd clinfo libgtest-dev librandom123-dev cmake g++ make)
missing=()
for p in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "[install] apt packages: ${missing[*]}"
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}"
fi

PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  echo "[install] creating .venv"
  "$PY" -m venv .venv
fi
STAMP=.venv/.cgflow-deps-v2
if [ ! -f "$STAMP" ] || [ requirements.txt -nt "$STAMP" ]; then
  echo "[install] pip packages from requirements.txt"
  .venv/bin/python -m pip install -q --upgrade pip
  .venv/bin/python -m pip install -q -r requirements.txt
  touch "$STAMP"
fi
