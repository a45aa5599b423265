#!/usr/bin/env bash
# Installs a CPU-usable PyTorch into the repository's .venv for the flow-throughput benchmark's
# peer (benchmarks/peers/torch_flow.py). Idempotent: a stamp holding the hash of this script and
# of requirements-torch.txt makes a second run return at once.
#
# Why not `pip install torch`: PyPI only has the CUDA build of torch for Linux x86_64, and its
# dependencies are ~3 GB of CUDA wheels that a CPU run never calls (resolving them would also
# downgrade the nvidia-cuda-runtime that openmm-cuda-13 brought). So torch and its few pure-Python
# dependencies go in with --no-deps (requirements-torch.txt). The CPU kernels and their BLAS (MKL,
# linked statically into libtorch_cpu.so) are all in the torch wheel; the CUDA libraries only
# have to be loadable, because libtorch_cuda.so is linked against them. Those the dynamic loader
# finds (the venv's nvidia/cu13 runtime, a CUDA toolkit in the ld.so cache) are used as they are.
# For each one it cannot find, stub_missing_libs.py (shared with install_peers.sh) builds a stub
# library into torch/lib (on torch's RPATH) that defines exactly the symbols torch imports from
# it, each aborting with a message if ever called. Without a GPU driver CUDA reports no device, so
# no stub is reached; site-packages/nvidia is left untouched.
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
venv="$(cd "$here/../.." && pwd)/.venv"
python="$venv/bin/python"
stamp="$venv/.cgflow-torch-peer.stamp"
want="$(cat "$0" "$here/stub_missing_libs.py" "$here/requirements-torch.txt" | sha256sum | cut -d' ' -f1)"

# The stamp alone would survive a `pip uninstall torch`; torch's extension module would not.
if [[ -f "$stamp" && "$(cat "$stamp")" == "$want" ]] \
        && compgen -G "$venv/lib/python3*/site-packages/torch/_C.*.so" > /dev/null; then
    echo "torch peer: already installed in $venv" >&2
    exit 0
fi
[[ -x "$python" ]] || { echo "torch peer: no virtual environment at $venv" >&2; exit 1; }

echo "torch peer: pip install --no-deps -r requirements-torch.txt" >&2
"$python" -m pip install --quiet --no-deps -r "$here/requirements-torch.txt"

"$python" "$here/stub_missing_libs.py" "${CC:-cc}"

"$python" - <<'EOF'
"""Checks that torch imports and does float64 BLAS work on two threads."""
import torch

torch.set_num_threads(2)
a = torch.randn(256, 256, dtype=torch.float64)
assert torch.allclose((a @ a.T).diagonal(), (a * a).sum(1))
assert torch.get_num_threads() == 2 and not torch.cuda.is_available()
EOF

echo "$want" > "$stamp"
echo "torch peer: torch $("$python" -c 'import torch; print(torch.__version__)') installed in $venv" >&2
