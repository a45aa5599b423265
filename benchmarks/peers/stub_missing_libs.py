#!/usr/bin/env python
"""Stubs every shared library in torch's import closure that the dynamic loader cannot find.

Shared by install_torch.sh (torch in the project's .venv) and install_peers.sh (torch in
.venv-peers): run it with the interpreter whose torch is to be made importable,

    PYTHON benchmarks/peers/stub_missing_libs.py [CC]

PyPI's Linux torch is the CUDA build, installed there with --no-deps: its CPU kernels and their
BLAS (MKL, linked statically into libtorch_cpu.so) are all in the torch wheel, and the CUDA
libraries only have to be loadable, because libtorch_cuda.so is linked against them. This walks
the import closure of the interpreter and torch._C as the loader would (RPATH inherited down the
chain, then the ld.so cache, then the default directories). Libraries it finds are used as they
are. For each one it cannot find, a stub is compiled with CC (default cc) into torch/lib (on
torch's RPATH) that defines exactly the symbols torch imports from it, each function aborting with
a message if ever called (objects are zero-filled). Without a GPU driver CUDA reports no device,
so no stub is reached. The stubs are listed in torch/lib/cgflow-cuda-stubs.txt and removed again
by the next run, so running it twice gives the same result. Needs readelf (binutils), ldconfig and
a C compiler.

The CUDA runtime (libcudart) is the exception: libtorch_cuda.so registers its kernels with it
while it loads (__cudaRegisterFatBinary) and torch.cuda.is_available() asks it for devices, so a
stub of it would abort `import torch`. It has to be real (the nvidia-cuda-runtime wheel, which
reports no device without a driver); where it is missing this exits with an error instead.
"""
import glob
import importlib.util
import os
import re
import subprocess
import sys
import tempfile

DEFAULT_DIRS = ["/lib/x86_64-linux-gnu", "/usr/lib/x86_64-linux-gnu", "/lib64", "/usr/lib64", "/lib", "/usr/lib"]
MUST_BE_REAL = re.compile(r"libcudart\.so(\.|$)")  # called while torch loads (see the docstring)


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


def main():
    cc = sys.argv[1] if len(sys.argv) > 1 else os.environ.get("CC", "cc")
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
        print("stub_missing_libs: every library torch links against is present; no stubs", file=sys.stderr)
        return

    real_needed = sorted(soname for soname in missing if MUST_BE_REAL.match(soname))
    if real_needed:
        sys.exit(f"stub_missing_libs: {', '.join(real_needed)} (needed by "
                 f"{', '.join(sorted(os.path.basename(p) for s in real_needed for p in missing[s]))}) is not found "
                 "and cannot be stubbed: install the CUDA runtime torch pins (pip install --no-deps "
                 "nvidia-cuda-runtime==<the version of torch's cuda-toolkit>)")

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
                f'    fprintf(stderr, "torch: %s of the stub {soname} was called; '
                f'install the real library to use CUDA\\n", name);',
                "    abort();", "}"]
        for i, name in enumerate(sorted(functions)):
            body += [f'void f{i}(void) __asm__("{name}");', f'void f{i}(void) {{ stub_called("{name}"); }}']
        for i, name in enumerate(sorted(objects)):
            body.append(f'char o{i}[256] __asm__("{name}");')
        with tempfile.TemporaryDirectory() as tmp:
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
        print(f"stub_missing_libs: stub {soname}: {len(functions)} functions, {len(objects)} objects, "
              f"versions {sorted(versions) or '-'}", file=sys.stderr)


if __name__ == "__main__":
    main()
