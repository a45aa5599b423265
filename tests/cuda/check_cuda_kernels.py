#!/usr/bin/env python
"""Compile the common GPU kernels as CUDA with nvcc, without a GPU.

At run time OpenMM's CUDA platform compiles our common kernels with NVRTC after its own
prelude (the dialect macros of common.cu and the vector operations of vectorOps.cu), which
it keeps as strings inside libOpenMMCUDA. CI has nvcc but no GPU, so this check extracts
that prelude from the library, adds the precision typedefs a CudaContext would define, and
runs `nvcc --ptx` on every kernel file for each precision and each code path (local or
global scratch, periodic or not). A syntax or type error in the CUDA dialect fails here
instead of on a user's GPU.

usage: check_cuda_kernels.py LIBOPENMMCUDA KERNEL_DIR NVCC
"""
import itertools
import os
import subprocess
import sys
import tempfile


def extract_prelude(library):
    chunks = open(library, "rb").read().split(b"\0")
    common = [c for c in chunks if b'#define KERNEL extern "C" __global__' in c]
    vector_ops = [c for c in chunks if b"This file defines vector operations" in c]
    if len(common) != 1 or len(vector_ops) != 1:
        sys.exit(f"could not find OpenMM's CUDA prelude in {library} "
                 f"(found {len(common)} common and {len(vector_ops)} vectorOps sources)")
    return common[0].decode(), vector_ops[0].decode()


def precision_header(precision):
    real = "double" if precision == "double" else "float"
    mixed = "float" if precision == "single" else "double"
    lines = []
    for n, suffix in (("", ""), ("2", "2"), ("3", "3"), ("4", "4")):
        lines.append(f"typedef {real}{suffix} real{n};")
        lines.append(f"typedef {mixed}{suffix} mixed{n};")
    for n in ("2", "3", "4"):
        lines.append(f"#define make_real{n} make_{real}{n}")
        lines.append(f"#define make_mixed{n} make_{mixed}{n}")
    math = {"SQRT": "sqrt", "RSQRT": "rsqrt", "EXP": "exp", "LOG": "log", "COS": "cos", "SIN": "sin"}
    for macro, fn in math.items():
        lines.append(f"#define {macro} {fn}{'f' if real == 'float' else ''}")
    lines.append(f"#define RECIP(x) (1.0{'f' if real == 'float' else ''}/(x))")
    if precision == "double":
        lines.append("#define USE_DOUBLE_PRECISION 1")
    if precision == "mixed":
        lines.append("#define USE_MIXED_PRECISION 1")
    return "\n".join(lines) + "\n"


def main():
    if len(sys.argv) != 4:
        sys.exit(__doc__)
    library, kernel_dir, nvcc = sys.argv[1:]
    common, vector_ops = extract_prelude(library)
    kernels = "".join(open(os.path.join(kernel_dir, f)).read() for f in sorted(os.listdir(kernel_dir)) if f.endswith(".cc"))
    defines = {"NUM_FEATURES": 6, "NUM_INPUTS": 8, "NUM_MEMBERS": 3, "NUM_COPIES": 2, "NUM_LAYERS": 3, "NUM_INVOLVED": 6,
               "PADDED_NUM_ATOMS": 32, "TOTAL_WIDTH": 73, "MAX_WIDTH": 32, "SCRATCH_SIZE": 210,
               "WEIGHTS_PER_MEMBER": 800, "BIASES_PER_MEMBER": 65, "HIDDEN_ACTIVATION": 2, "OUTPUT_ACTIVATION": 0,
               "BG_MAX_BINS": 8, "BG_MAX_DIM": 60}
    failures = 0
    with tempfile.TemporaryDirectory() as tmp:
        for precision, local, periodic in itertools.product(("single", "mixed", "double"), (True, False), (True, False)):
            head = "".join(f"#define {k} {v}\n" for k, v in defines.items())
            head += "#define SCRATCH_IN_LOCAL 1\n" if local else ""
            head += "#define USE_PERIODIC 1\n" if periodic else ""
            source = head + precision_header(precision) + common + "\n" + vector_ops + "\n" + kernels
            path = os.path.join(tmp, f"pmf_{precision}_{int(local)}{int(periodic)}.cu")
            open(path, "w").write(source)
            result = subprocess.run([nvcc, "--ptx", "-arch=sm_80", "-o", path + ".ptx", path],
                                    capture_output=True, text=True)
            label = f"{precision} precision, scratch in {'local' if local else 'global'}, periodic={periodic}"
            if result.returncode != 0:
                failures += 1
                print(f"FAILED {label}\n{result.stderr}")
            else:
                print(f"ok     {label}")
    print(f"{12 - failures} passed, {failures} failed")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
