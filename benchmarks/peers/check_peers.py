#!/usr/bin/env python
"""Self-check of the peers environment (.venv-peers), run by install_peers.sh at its end.

    .venv-peers/bin/python benchmarks/peers/check_peers.py

Checks, in one process:
  * openmm, openmmcgflow (both from the project's .venv), torch 2.12, openmmtorch and normflows
    (from .venv-peers) import, and torch runs float64 BLAS on two threads;
  * the openmm-torch plugin libraries load with openmm.Platform.loadPluginLibrary, and
    libOpenMMTorch.so binds to the libOpenMM.so that openmm already loaded: one libOpenMM.so in
    /proc/self/maps;
  * a TorchScript module E = sum of squared positions runs as openmmtorch.TorchForce in a
    Reference and a CPU Context (energy and forces against the closed form), beside an
    openmmcgflow PMFForce Context, and both forces together in one System give the sum of both.

load_openmm_torch_plugins() is importable for the benchmarks that use TorchForce.
"""
import glob
import importlib.metadata
import os
import subprocess
import sys
import tempfile

import numpy as np


def load_openmm_torch_plugins(required=("Reference",)):
    """Loads openmm-torch's platform plugins (they live under the wheel's own OpenMM.libs, which
    openmm does not scan). Returns {plugin file name: None or the error}; raises if a plugin whose
    name ends in one of `required` fails."""
    import openmm
    import openmmtorch
    plugin_dir = os.path.join(os.path.dirname(os.path.abspath(openmmtorch.__file__)), "OpenMM.libs", "lib", "plugins")
    results = {}
    for path in sorted(glob.glob(os.path.join(plugin_dir, "libOpenMMTorch*.so"))):
        name = os.path.basename(path)
        try:
            openmm.Platform.loadPluginLibrary(path)
            results[name] = None
        except Exception as error:  # OpenMMException: e.g. no OpenCL runtime
            if any(name == f"libOpenMMTorch{platform}.so" for platform in required):
                raise
            results[name] = str(error).splitlines()[0]
    missing = [p for p in required if f"libOpenMMTorch{p}.so" not in results]
    if missing:
        raise RuntimeError(f"no openmm-torch plugin for {missing} in {plugin_dir}")
    return results


def mapped_libraries(stem):
    """Distinct paths of files named `stem` mapped into this process."""
    paths = set()
    with open("/proc/self/maps") as maps:
        for line in maps:
            path = line.split(maxsplit=5)[-1].strip() if len(line.split()) >= 6 else ""
            if os.path.basename(path) == stem:
                paths.add(path)
    return paths


def check(condition, message):
    if not condition:
        sys.exit(f"check_peers: FAILED: {message}")


def main():
    import openmm
    import openmmcgflow as cg
    import torch
    import openmmtorch
    import normflows

    peers_prefix = os.path.realpath(sys.prefix)
    origin = {m.__name__: os.path.realpath(m.__file__) for m in (openmm, cg, torch, openmmtorch, normflows, np)}
    for name in ("torch", "openmmtorch", "normflows"):
        check(origin[name].startswith(peers_prefix + os.sep), f"{name} comes from {origin[name]}, not {peers_prefix}")
    for name in ("openmm", "openmmcgflow", "numpy"):
        check(not origin[name].startswith(peers_prefix + os.sep), f"{name} should come from the project's .venv: {origin[name]}")
    check(torch.__version__.startswith("2.12."), f"torch {torch.__version__}, expected 2.12.x")

    torch.set_num_threads(2)
    a = torch.randn(256, 256, dtype=torch.float64)
    check(torch.allclose((a @ a.T).diagonal(), (a * a).sum(1)), "torch float64 matmul")
    check(torch.get_num_threads() == 2 and not torch.cuda.is_available(), "torch threads / CUDA")

    plugins = load_openmm_torch_plugins()
    copies = mapped_libraries("libOpenMM.so")
    check(len(copies) == 1, f"{len(copies)} libOpenMM.so mapped: {sorted(copies)}")
    openmm_lib = os.path.realpath(os.path.join(openmm.version.openmm_library_path, "libOpenMM.so"))
    check(os.path.realpath(next(iter(copies))) == openmm_lib, f"libOpenMM.so mapped from {copies}, openmm's is {openmm_lib}")
    check(len(mapped_libraries("libOpenMMTorch.so")) == 1, "libOpenMMTorch.so is not mapped exactly once")
    # openmmtorch first: its libOpenMM.so comes through the symlink install_peers.sh puts beside
    # libOpenMMTorch.so, and openmm's own import must then find that same copy.
    probe = subprocess.run(
        [sys.executable, "-c", "import openmmtorch, openmm, os; print(sorted({os.path.realpath(l.split()[-1]) "
         "for l in open('/proc/self/maps') if l.rstrip().endswith('/libOpenMM.so')}))"],
        capture_output=True, text=True)
    check(probe.returncode == 0 and probe.stdout.strip() == repr([openmm_lib]),
          f"import openmmtorch before openmm: {probe.stdout.strip() or probe.stderr.strip()[-300:]}")

    class SumOfSquares(torch.nn.Module):
        def forward(self, positions):
            return torch.sum(positions ** 2)

    rng = np.random.default_rng(0)
    n = 6
    positions = rng.uniform(-1.0, 1.0, size=(n, 3))
    expected_energy, expected_forces = float(np.sum(positions ** 2)), -2.0 * positions

    def pmf_force():
        pmf = cg.PMFForce()
        pmf.setModelBytes(cg.MLPEnsemble([3, 16, 1], 2, "tanh", seed=4).to_bytes())
        pmf.addDistance(0, 1)  # one input
        pmf.addDihedral(1, 2, 3, 4)  # two inputs, (cos, sin)
        return pmf

    def system_with(*forces):
        system = openmm.System()
        for _ in range(n):
            system.addParticle(12.0)
        for group, force in enumerate(forces):
            force.setForceGroup(group)
            system.addForce(force)
        return system

    def evaluate(system, platform, groups=-1):
        integrator = openmm.VerletIntegrator(0.001)
        context = openmm.Context(system, integrator, openmm.Platform.getPlatformByName(platform))
        context.setPositions(positions)
        state = context.getState(getEnergy=True, getForces=True, groups=groups)
        energy = state.getPotentialEnergy().value_in_unit(openmm.unit.kilojoule_per_mole)
        forces = state.getForces(asNumpy=True).value_in_unit(openmm.unit.kilojoule_per_mole / openmm.unit.nanometer)
        return energy, np.asarray(forces)

    with tempfile.TemporaryDirectory() as tmp:
        model = os.path.join(tmp, "sum_of_squares.pt")
        torch.jit.script(SumOfSquares()).save(model)
        report = []
        for platform in ("Reference", "CPU"):
            torch_force = openmmtorch.TorchForce(model)
            energy, forces = evaluate(system_with(torch_force), platform)
            check(abs(energy - expected_energy) < 1e-5 * max(1.0, expected_energy),
                  f"TorchForce on {platform}: energy {energy}, expected {expected_energy}")
            check(np.allclose(forces, expected_forces, atol=1e-5), f"TorchForce on {platform}: forces")

            pmf_energy, pmf_forces = evaluate(system_with(pmf_force()), platform)
            check(np.isfinite(pmf_energy) and np.all(np.isfinite(pmf_forces)), f"PMFForce on {platform}")

            both = system_with(openmmtorch.TorchForce(model), pmf_force())
            total, total_forces = evaluate(both, platform)
            check(abs(total - (energy + pmf_energy)) < 1e-5 * max(1.0, abs(total)),
                  f"TorchForce + PMFForce on {platform}: {total} != {energy} + {pmf_energy}")
            check(np.allclose(total_forces, forces + pmf_forces, atol=1e-5), f"TorchForce + PMFForce forces on {platform}")
            report.append(f"{platform} E_torch {energy:.6f} (exact {expected_energy:.6f}), E_pmf {pmf_energy:.6f}")

    failed = {name: error for name, error in plugins.items() if error}
    print(f"check_peers: passed. torch {torch.__version__} ({torch.get_num_threads()} threads), "
          f"openmm {openmm.__version__}, openmm-torch {importlib.metadata.version('acellera-openmmtorch-cpu')}, "
          f"normflows {normflows.__version__}; one libOpenMM.so ({openmm_lib}); "
          f"{'; '.join(report)}", file=sys.stderr)
    for name, error in failed.items():
        print(f"check_peers: note: optional plugin {name} did not load: {error}", file=sys.stderr)


if __name__ == "__main__":
    main()
