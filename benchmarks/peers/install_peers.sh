#!/usr/bin/env bash
# Creates the peers environment .venv-peers (beside the repository's .venv) for the
# benchmarks that compare our plugin with PyTorch-based peers in ONE process: torch 2.12,
# openmm-torch's CPU wheel (acellera-openmmtorch-cpu) and normflows, pinned in
# requirements-peers.txt. The project's .venv is never written to.
#
#   bash benchmarks/peers/install_peers.sh          # then: .venv-peers/bin/python benchmarks/...
#
# Layout: .venv-peers is a real venv made with the base interpreter of .venv's python (same
# Python version, so .venv's extension modules load). A .pth file in its site-packages appends
# .venv's site-packages to sys.path, so torch, openmmtorch and normflows come from .venv-peers
# (a torch in .venv, e.g. from install_torch.sh, is shadowed) and openmm, openmmcgflow and numpy
# from .venv. openmm-torch's libraries install under .venv-peers' own OpenMM.libs/lib, where the
# loader cannot find libOpenMM.so: they bind to the copy openmm already loaded (same soname), and
# a symlink to .venv's libOpenMM.so beside them covers `import openmmtorch` before `import openmm`
# (the loader recognises the same file, so there is still one copy). openmm does not scan that
# plugin directory: load the plugins with openmm.Platform.loadPluginLibrary (check_peers.py has
# load_openmm_torch_plugins()).
#
# torch: PyPI only has the CUDA build for Linux, so it goes in with --no-deps and its pure-Python
# dependencies pinned, and stub_missing_libs.py (shared with install_torch.sh) stubs the CUDA
# libraries the loader cannot find, as install_torch.sh does for .venv. normflows is an sdist:
# pip builds it (setuptools from PyPI in an isolated build environment).
#
# Idempotent: a stamp holding the hash of this script, stub_missing_libs.py and
# requirements-peers.txt skips the installation when nothing changed; the self-check
# (check_peers.py) runs every time, since .venv (openmm, our plugin) may have changed under it.
# Needs, besides .venv (make install): a C compiler, readelf and ldconfig (Debian: gcc, binutils,
# libc-bin) and PyPI.
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
venv="$root/.venv"
peers="$root/.venv-peers"
stamp="$peers/.cgflow-peers.stamp"
want="$(cat "$0" "$here/stub_missing_libs.py" "$here/requirements-peers.txt" | sha256sum | cut -d' ' -f1)"
say() { echo "peers: $*" >&2; }

[[ -x "$venv/bin/python" ]] || { say "no project environment at $venv (run make install first)"; exit 1; }
export PATH="$PATH:/sbin:/usr/sbin"  # ldconfig, for a user without sbin on PATH
for tool in "${CC:-cc}" readelf ldconfig; do
    command -v "$tool" > /dev/null || { say "$tool not found (Debian: apt-get install gcc binutils libc-bin)"; exit 1; }
done

project_site="$("$venv/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
base_python="$("$venv/bin/python" -c 'import sys; print(sys._base_executable)')"
want_version="$("$venv/bin/python" -c 'import sys; print("%d.%d" % sys.version_info[:2])')"
[[ -d "$project_site/openmm" ]] || { say "openmm is not installed in $venv"; exit 1; }

if [[ -x "$peers/bin/python" ]]; then
    have_version="$("$peers/bin/python" -c 'import sys; print("%d.%d" % sys.version_info[:2])' 2>/dev/null || true)"
    if [[ "$have_version" != "$want_version" ]]; then
        say "$peers has Python ${have_version:-?}, .venv has $want_version: recreating it"
        rm -rf "$peers"
    fi
fi

if [[ -f "$stamp" && "$(cat "$stamp")" == "$want" ]] \
        && compgen -G "$peers/lib/python*/site-packages/torch/_C.*.so" > /dev/null; then
    say "already installed in $peers"
else
    rm -f "$stamp"
    if [[ ! -x "$peers/bin/python" ]]; then
        say "creating $peers with $base_python"
        "$base_python" -m venv "$peers"
    fi
    # pip runs before the .pth below exists (or is rewritten), so it sees only .venv-peers and
    # can neither count nor touch what .venv holds.
    rm -f "$peers"/lib/python*/site-packages/cgflow-project-venv.pth
    say "pip install --no-deps -r requirements-peers.txt (torch is a ~530 MB download)"
    "$peers/bin/python" -m pip install --quiet --disable-pip-version-check --no-deps \
        -r "$here/requirements-peers.txt"
    "$peers/bin/python" "$here/stub_missing_libs.py" "${CC:-cc}"
fi

peers_site="$("$peers/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
# A path line in a .pth file is appended to sys.path after the venv's own site-packages.
echo "$project_site" > "$peers_site/cgflow-project-venv.pth"
ln -sfn "$project_site/OpenMM.libs/lib/libOpenMM.so" "$peers_site/OpenMM.libs/lib/libOpenMM.so"
echo "$want" > "$stamp"

say "self-check"
"$peers/bin/python" "$here/check_peers.py"
say "ready: $peers/bin/python ($("$peers/bin/python" -c 'import torch, normflows; print("torch", torch.__version__, "normflows", normflows.__version__)'))"
