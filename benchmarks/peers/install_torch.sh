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
# For each one it cannot find, a stub library is built into torch/lib (on torch's RPATH) that
# defines exactly the symbols torch imports from it, each aborting with a message if ever called.
# Without a GPU driver CUDA reports no device, so no stub is reached; site-packages/nvidia is
# left untouched.
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
venv="$(cd "$here/../.." && pwd)/.venv"
python="$venv/bin/python"
stamp="$venv/.cgflow-torch-peer.stamp"
want="$(cat "$0" "$here/requirements-torch.txt" | sha256sum | cut -d' ' -f1)"

# The stamp alone would survive a `pip uninstall torch`; torch's extension module would not.
if [[ -f "$stamp" && "$(cat "$stamp")" == "$want" ]] \
        && compgen -G "$venv/lib/python3*/site-packages/torch/_C.*.so" > /dev/null; then
    echo "torch peer: already installed in $venv" >&2
    exit 0
fi
[[ -x "$python" ]] || { echo "torch peer: no virtual environment at $venv" >&2; exit 1; }

echo "torch peer: pip install --no-deps -r requirements-torch.txt" >&2
"$python" -m pip install --quiet --no-deps -r "$here/requirements-torch.txt"

"$python" - "${CC:-cc}" <<'EOF'
"""Stubs every shared library in torch's import closure that the dynamic loader cannot find."""
import glob
import importlib.util
import os
import re
import subprocess
import sys
import tempfile

DEFAULT_DIRS = ["/lib/x86_64-linux-gnu", "/usr/lib/x86_64-linux-gnu", "/lib64", "/usr/lib64", "/lib", "/usr/lib"]


def run(*cmd):
    return subprocess.run(cmd, check=True, capture_output=True, text=True).stdout


def ld_cache():
    """soname -> path of the 64-bit entries of the ld.so cache (what the loader searches after RPATH)."""
    cache = {}
    for line in run("ldconfig", "-p").splitlines()[1:]:
        m = re.match(r"\s*(\S+) \((.*)\) => (\S+)", line)
        if m and "64" in m.group(2):
            cache.setdefault(m.group(1), m.group(3))
    return cache


def dynamic_section(path):
    """(NEEDED sonames, RPATH/RUNPATH directories with $ORIGIN expanded) of one ELF file."""
    text = run("readelf", "-dW", path)
    needed = re.findall(r"\(NEEDED\).*\[(.+)\]", text)
    m = re.search(r"\((?:RPATH|RUNPATH)\).*\[(.+)\]", text)
    origin = os.path.dirname(path)
    rpath = [d.replace("$ORIGIN", origin) for d in m.group(1).split(":")] if m else []
    return needed, rpath


def dynamic_symbols(path):
    """[(name, version or None, type, defined, weak)] of the dynamic symbol table."""
    symbols = []
    for line in run("readelf", "-W", "--dyn-syms", path).splitlines():
        f = line.split()
        if len(f) < 8 or not f[0].endswith(":") or not f[0][:-1].isdigit():
            continue
        name, _, version = f[7].replace("@@", "@").partition("@")
        symbols.append((name, version or None, f[3], f[6] != "UND", f[4] == "WEAK"))
    return symbols


def version_needs(path):
    """version name -> soname that must define it (the .gnu.version_r section)."""
    needs, current = {}, None
    for line in run("readelf", "-VW", path).splitlines():
        m = re.search(r"File: (\S+)", line)
        if m:
            current = m.group(1)
            continue
        m = re.search(r"Name: (\S+)\s+Flags", line)
        if m and current:
            needs[m.group(1)] = current
    return needs


cc = sys.argv[1]
torch_dir = os.path.dirname(importlib.util.find_spec("torch").origin)
lib_dir = os.path.join(torch_dir, "lib")
cache = ld_cache()
manifest = os.path.join(lib_dir, "cgflow-cuda-stubs.txt")  # the stubs of an earlier run
if os.path.exists(manifest):
    for soname in open(manifest).read().split():
        os.remove(os.path.join(lib_dir, soname))
    os.remove(manifest)

# Walk the closure of the interpreter (it defines the Python C API torch imports) and of
# torch._C as the loader would; RPATH is inherited down the chain.
start = [os.path.realpath(sys.executable), glob.glob(os.path.join(torch_dir, "_C.*.so"))[0]]
queue, seen, missing = [(path, []) for path in start], set(), {}  # missing: soname -> needing files
while queue:
    path, inherited = queue.pop()
    if path in seen:
        continue
    seen.add(path)
    needed, rpath = dynamic_section(path)
    search = rpath + inherited
    for soname in needed:
        hits = [os.path.join(d, soname) for d in search if os.path.exists(os.path.join(d, soname))]
        found = hits[0] if hits else cache.get(soname) or next(
            (os.path.join(d, soname) for d in DEFAULT_DIRS if os.path.exists(os.path.join(d, soname))), None)
        if found:
            queue.append((os.path.realpath(found), search))
        else:
            missing.setdefault(soname, set()).add(path)

if not missing:
    print("torch peer: every library torch links against is present; no stubs", file=sys.stderr)
    sys.exit(0)

defined = {name for path in seen for name, _, _, is_def, _ in dynamic_symbols(path) if is_def}
for soname, users in sorted(missing.items()):
    functions, objects, versions = {}, {}, set()
    for user in users:
        needs = version_needs(user)
        versions |= {v for v, f in needs.items() if f == soname}
        # An unversioned import not defined anywhere may come from any missing library this
        # file needs; each of their stubs defines it and the loader takes the first.
        for name, version, kind, is_def, weak in dynamic_symbols(user):
            if is_def or weak or name in defined or (version is not None and needs.get(version) != soname):
                continue
            (objects if kind == "OBJECT" else functions)[name] = version
    body = ["#include <stdio.h>", "#include <stdlib.h>",
            "static void stub_called(const char *name) {",
            f'    fprintf(stderr, "torch peer: %s of the stub {soname} was called; '
            f'install the real library to use CUDA\\n", name);',
            "    abort();", "}"]
    for i, name in enumerate(sorted(functions)):
        body += [f'void f{i}(void) __asm__("{name}");', f'void f{i}(void) {{ stub_called("{name}"); }}']
    for i, name in enumerate(sorted(objects)):
        body.append(f'char o{i}[256] __asm__("{name}");')
    tmp = tempfile.mkdtemp()
    src = os.path.join(tmp, "stub.c")
    with open(src, "w") as f:
        f.write("\n".join(body) + "\n")
    cmd = [cc, "-shared", "-fPIC", "-O1", "-o", os.path.join(lib_dir, soname), src, f"-Wl,-soname,{soname}"]
    if versions:
        # Unversioned imports go into the first node; a versioned lib cannot have an anonymous one.
        nodes = sorted(versions)
        syms = {v: [] for v in nodes}
        for name, version in {**functions, **objects}.items():
            syms[version or nodes[0]].append(name)
        script = os.path.join(tmp, "stub.map")
        with open(script, "w") as f:
            for v in nodes:
                f.write(f"{v} {{ global: {' '.join(f'{s};' for s in syms[v])} local: *; }};\n")
        cmd.append(f"-Wl,--version-script={script}")
    run(*cmd)
    with open(manifest, "a") as f:
        f.write(soname + "\n")
    print(f"torch peer: stub {soname}: {len(functions)} functions, {len(objects)} objects, "
          f"versions {sorted(versions) or '-'}", file=sys.stderr)
EOF

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
