#!/usr/bin/env python
"""PMFForce against openmm-torch's TorchForce, the same models with the same weights, in one run.

    bash benchmarks/peers/install_peers.sh            # once: .venv-peers (torch 2.12, openmm-torch CPU)
    .venv-peers/bin/python benchmarks/peers_openmm_torch.py [--rounds 5] [--seconds 0.4] [--md-steps 3000]

Prints one JSON object per line. The models (issue 22):
  phi_psi_ens10: the PMF of the conditional-flow paper, 10 MLPs [4, 256, 128, 32, 1] with sigmoid,
      inputs (cos phi, sin phi, cos psi, sin psi) of two dihedrals of a 5-particle chain;
  cg10: a 10-bead CG model, all 45 pair distances -> one MLP [45, 128, 128, 128, 1] with SiLU.

The peer is what an openmm-torch user writes: a TorchScript module that computes the features from
the positions and evaluates the networks (torch.nn.Linear layers, one Sequential per member: the
fastest of the forms we tried, see Ensemble), loaded as a TorchForce whose forces come from
autograd. It runs in float64 (the same arithmetic as PMFForce's default, energies agreeing to
rounding) and in float32 (the usual torch dtype, the like-for-like peer of PMFForce's mixed
precision). Agreement of energies and forces with PMFForce is checked before anything is timed.

Timings are per energy+force evaluation through Context.setPositions + getState, what a user
pays, on the Reference, CPU and OpenCL platforms (on OpenCL PMFForce's arithmetic is the platform's
Precision property: double for the float64 pair, mixed for PMFForce mixed and the float32 peer); cases are interleaved round by round and each figure is
the median over rounds. torch runs with --threads intra-op threads (default 1, as PMFForce's
kernel is single-threaded). A Context whose only force is trivial gives each platform's floor.
MD: ns/day of LangevinMiddleIntegrator (2 fs) on the cg10 system.

Ratios are peer time / our time (> 1: we are faster). The headline ratios compare with the
float64 TorchForce (the setting of the issue's measurement) and PMFForce in mixed precision; the
like-for-like pairs (float64/float64, mixed/float32) are printed as well.
"""
import argparse
import json
import os
import statistics
import sys
import tempfile
import time

import numpy as np
import openmm


sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "peers"))
from pmf_models import (cg10_model, cg10_pmf, cg10_positions, phi_psi_model, phi_psi_pmf,  # noqa: E402
                        phi_psi_positions, system_with)

KJ = openmm.unit.kilojoule_per_mole
NM = openmm.unit.nanometer


def emit(name, value, unit, **extra):
    print(json.dumps({"name": name, "value": round(float(value), 4), "unit": unit, **extra}), flush=True)


def log(message):
    print(message, file=sys.stderr, flush=True)


# ----- the TorchScript peers -----------------------------------------------------------------

def torch_modules():
    import torch

    def activation(name):
        return {"sigmoid": torch.sigmoid, "silu": torch.nn.functional.silu, "tanh": torch.tanh}[name]

    class Ensemble(torch.nn.Module):
        """M MLPs as torch.nn.Linear layers in a ModuleList, outputs averaged: of the forms we tried
        (also all members stacked with one batched matmul per layer, and torch.jit.freeze of either),
        the fastest as a TorchForce on this machine (1.1 ms against 1.7 ms stacked for phi/psi)."""

        def __init__(self, ensemble, dtype):
            super().__init__()
            d = ensemble.to_dict()
            if d["output_activation"] != "identity" or d["activation"] not in ("sigmoid", "silu"):
                raise ValueError("the peer implements sigmoid or SiLU hidden layers and a linear output")
            members = []
            for ws, bs in zip(d["weights"], d["biases"]):
                layers = []
                for l, (w, b) in enumerate(zip(ws, bs)):
                    linear = torch.nn.Linear(w.shape[1], w.shape[0]).to(dtype)
                    with torch.no_grad():
                        linear.weight.copy_(torch.tensor(w))
                        linear.bias.copy_(torch.tensor(b))
                    layers.append(linear)
                    if l + 1 < len(ws):
                        layers.append(torch.nn.Sigmoid() if d["activation"] == "sigmoid" else torch.nn.SiLU())
                members.append(torch.nn.Sequential(*layers))
            self.members = torch.nn.ModuleList(members)
            self.count = len(members)
            self.dtype = dtype

        def forward(self, x):
            """x (inputs,) -> mean over members of the output."""
            total = torch.zeros((), dtype=self.dtype)
            for member in self.members:
                total = total + member(x)[0]
            return total / self.count

    def cos_sin_dihedral(p0, p1, p2, p3):
        # The same convention as OpenMM's PeriodicTorsionForce and PMFForce's Dihedral feature:
        # phi = atan2(|b2| b1 . (b2 x b3), (b1 x b2) . (b2 x b3)).
        b1, b2, b3 = p1 - p0, p2 - p1, p3 - p2
        n1 = torch.linalg.cross(b1, b2)
        n2 = torch.linalg.cross(b2, b3)
        x = torch.dot(n1, n2)
        y = torch.linalg.norm(b2) * torch.dot(b1, n2)
        r = torch.sqrt(x * x + y * y)
        return x / r, y / r

    class PhiPsiPMF(torch.nn.Module):
        def __init__(self, ensemble, dtype):
            super().__init__()
            self.net = Ensemble(ensemble, dtype)
            self.dtype = dtype

        def forward(self, positions):
            p = positions.to(self.dtype)
            c1, s1 = cos_sin_dihedral(p[0], p[1], p[2], p[3])
            c2, s2 = cos_sin_dihedral(p[1], p[2], p[3], p[4])
            return self.net(torch.stack([c1, s1, c2, s2])).to(torch.float64)

    class PairDistancePMF(torch.nn.Module):
        def __init__(self, ensemble, dtype, n):
            super().__init__()
            self.net = Ensemble(ensemble, dtype)
            self.dtype = dtype
            i, j = torch.triu_indices(n, n, offset=1)  # i < j, row-major: PMFForce's feature order
            self.register_buffer("i", i)
            self.register_buffer("j", j)

        def forward(self, positions):
            p = positions.to(self.dtype)
            d = torch.linalg.norm(p[self.j] - p[self.i], dim=1)
            return self.net(d).to(torch.float64)

    return torch, PhiPsiPMF, PairDistancePMF


def save_module(module, directory, name):
    """The TorchScript file of `module`: what a TorchForce is made from (one TorchForce per System)."""
    import torch
    path = os.path.join(directory, name + ".pt")
    torch.jit.script(module).save(path)
    return path


# ----- measuring -------------------------------------------------------------------------------

class Evaluator:
    """One Context; each call times setPositions + getState(energy, forces) for about `seconds`."""

    def __init__(self, system, positions, platform, properties=None):
        self.context = openmm.Context(system, openmm.VerletIntegrator(0.001), openmm.Platform.getPlatformByName(platform),
                                      properties or {})
        self.positions = positions
        self.context.setPositions(positions)
        for _ in range(20):  # warm-up: TorchScript profiling runs, caches
            self.context.getState(getEnergy=True, getForces=True)

    def energy_forces(self):
        self.context.setPositions(self.positions)
        state = self.context.getState(getEnergy=True, getForces=True)
        return (state.getPotentialEnergy().value_in_unit(KJ),
                np.asarray(state.getForces(asNumpy=True).value_in_unit(KJ / NM)))

    def __call__(self, seconds):
        n, start = 0, time.perf_counter()
        while True:
            for _ in range(10):
                self.context.setPositions(self.positions)
                self.context.getState(getEnergy=True, getForces=True)
            n += 10
            elapsed = time.perf_counter() - start
            if elapsed > seconds:
                return 1e6 * elapsed / n


def interleaved(cases, rounds, seconds):
    """{name: median µs} over `rounds` rounds, every case once per round in turn."""
    samples = {name: [] for name in cases}
    for r in range(rounds):
        for name, evaluate in cases.items():
            samples[name].append(evaluate(seconds))
        log(f"round {r + 1}/{rounds}: " + ", ".join(f"{k} {v[-1]:.1f}" for k, v in samples.items()))
    return {name: statistics.median(v) for name, v in samples.items()}


def check_agreement(label, ours, peer, energy_rtol, force_rtol):
    (e1, f1), (e2, f2) = ours.energy_forces(), peer.energy_forces()
    de = abs(e1 - e2) / max(1.0, abs(e1))
    df = np.max(np.abs(f1 - f2)) / max(1.0, np.max(np.abs(f1)))
    log(f"{label}: PMFForce E = {e1:.12g}, TorchForce E = {e2:.12g}; relative differences energy {de:.2e}, forces {df:.2e}")
    if not (de <= energy_rtol and df <= force_rtol):
        sys.exit(f"{label}: PMFForce and TorchForce disagree (energy {de:.2e} > {energy_rtol:g} or forces {df:.2e} > {force_rtol:g})")
    return de, df


def gpu_properties(platform, arithmetic):
    """On OpenCL/CUDA the platform's Precision property is what decides PMFForce's arithmetic (setPrecision is
    a Reference/CPU setting), so each contender gets the one that matches it: double for the float64 pair,
    mixed for PMFForce mixed and the float32 TorchForce."""
    if platform not in ("OpenCL", "CUDA"):
        return {}
    return {"Precision": "double" if arithmetic == "float64" else "mixed"}


def md_ns_per_day(system, positions, platform, steps, properties=None):
    integrator = openmm.LangevinMiddleIntegrator(300, 1, 0.002)
    context = openmm.Context(system, integrator, openmm.Platform.getPlatformByName(platform), properties or {})
    context.setPositions(positions)
    context.setVelocitiesToTemperature(300, 1)
    integrator.step(50)
    start = time.perf_counter()
    integrator.step(steps)
    context.getState(getEnergy=True)
    return steps * 0.002e-3 / (time.perf_counter() - start) * 86400


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=5, help="interleaved rounds (default 5)")
    parser.add_argument("--seconds", type=float, default=0.4, help="seconds per case and round (default 0.4)")
    parser.add_argument("--md-steps", type=int, default=3000, help="Langevin steps per MD measurement (default 3000)")
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads (default 1)")
    parser.add_argument("--platforms", default="Reference,CPU,OpenCL",
                        help="comma-separated; those not present are skipped (default Reference,CPU,OpenCL)")
    args = parser.parse_args()
    if args.rounds < 1 or args.seconds <= 0 or args.md_steps < 1 or args.threads < 1:
        parser.error("--rounds, --seconds, --md-steps and --threads must be positive")
    try:
        torch, PhiPsiPMF, PairDistancePMF = torch_modules()
        import openmmtorch
        from check_peers import load_openmm_torch_plugins
    except ImportError as error:
        sys.exit(f"peers_openmm_torch: {error}; install the peers with `bash benchmarks/peers/install_peers.sh` "
                 "and run this with .venv-peers/bin/python")
    torch.set_num_threads(args.threads)
    load_openmm_torch_plugins()
    available = [openmm.Platform.getPlatform(i).getName() for i in range(openmm.Platform.getNumPlatforms())]
    platforms = [p for p in args.platforms.split(",") if p in available]
    if len(platforms) < len(args.platforms.split(",")):
        log(f"skipping platforms not present: {sorted(set(args.platforms.split(',')) - set(platforms))}")
    log(f"torch {torch.__version__} with {torch.get_num_threads()} thread(s); openmm {openmm.__version__}; "
        f"platforms {platforms}")

    ens_a, ens_b = phi_psi_model(), cg10_model()
    pos_a, pos_b = phi_psi_positions(), cg10_positions()
    with tempfile.TemporaryDirectory() as tmp:
        peers = {
            "phi_psi": {dt: save_module(PhiPsiPMF(ens_a, getattr(torch, dt)), tmp, f"phi_psi_{dt}")
                        for dt in ("float64", "float32")},
            "cg10": {dt: save_module(PairDistancePMF(ens_b, getattr(torch, dt), 10), tmp, f"cg10_{dt}")
                     for dt in ("float64", "float32")},
        }
        models = {"phi_psi": (phi_psi_pmf, ens_a, pos_a, 5, 12.0), "cg10": (cg10_pmf, ens_b, pos_b, 10, 50.0)}

        for platform in platforms:
            cases = {}
            for key, (make, ens, pos, n, mass) in models.items():
                ours = {prec: Evaluator(system_with(make(ens, prec), n, mass), pos, platform, gpu_properties(platform, prec))
                        for prec in ("float64", "mixed")}
                theirs = {dt: Evaluator(system_with(openmmtorch.TorchForce(peers[key][dt]), n, mass), pos, platform,
                                        gpu_properties(platform, dt)) for dt in ("float64", "float32")}
                de, df = check_agreement(f"{key} {platform} float64", ours["float64"], theirs["float64"], 1e-6, 1e-6)
                emit(f"{key}_{platform.lower()}_float64_energy_rel_diff_vs_torchforce", de, "1")
                check_agreement(f"{key} {platform} mixed vs float32", ours["mixed"], theirs["float32"], 1e-4, 1e-3)
                for prec, e in ours.items():
                    cases[f"{key}/pmfforce_{prec}"] = e
                for dt, e in theirs.items():
                    cases[f"{key}/torchforce_{dt}"] = e
            floor_force = openmm.CustomBondForce("r")
            floor_force.addBond(0, 1)
            cases["floor"] = Evaluator(system_with(floor_force, 10, 50.0), pos_b, platform)
            med = interleaved(cases, args.rounds, args.seconds)
            p = platform.lower()
            emit(f"getstate_floor_{p}_us", med["floor"], "us", peer=True)
            for key, stem in (("phi_psi", "pmf_phi_psi_ens10"), ("cg10", "pmf_cg10")):
                t = {k.split("/")[1]: v for k, v in med.items() if k.startswith(key + "/")}
                for name, value in t.items():
                    emit(f"{stem}_{p}_{name}_us", value, "us", peer=name.startswith("torch"))
                # The names the issue asks for: Reference unqualified, other platforms suffixed.
                suffix = "" if platform == "Reference" else f"_{p}"
                emit(f"{stem}_torchforce_us{suffix}", t["torchforce_float64"], "us", peer=True)
                emit(f"{stem}_ratio_vs_torchforce{suffix}", t["torchforce_float64"] / t["pmfforce_mixed"], "x")
                emit(f"{stem}_float64_ratio_vs_torchforce_float64{suffix}", t["torchforce_float64"] / t["pmfforce_float64"], "x")
                emit(f"{stem}_mixed_ratio_vs_torchforce_float32{suffix}", t["torchforce_float32"] / t["pmfforce_mixed"], "x")
                # Above each platform's floor: the force's own cost, without OpenMM's per-call overhead.
                floor = med["floor"]
                emit(f"{stem}_ratio_vs_torchforce_above_floor{suffix}",
                     (t["torchforce_float64"] - floor) / max(1e-9, t["pmfforce_mixed"] - floor), "x")

            # MD of the cg10 system, ours (both precisions) and the float64/float32 peers, interleaved.
            md = {"pmfforce_float64": [], "pmfforce_mixed": [], "torchforce_float64": [], "torchforce_float32": []}
            for _ in range(max(1, args.rounds // 2)):
                for name in md:
                    kind, prec = name.split("_")
                    force = cg10_pmf(ens_b, prec) if kind == "pmfforce" else openmmtorch.TorchForce(peers["cg10"][prec])
                    md[name].append(md_ns_per_day(system_with(force, 10, 50.0), pos_b, platform, args.md_steps,
                                                  gpu_properties(platform, prec)))
            md = {k: statistics.median(v) for k, v in md.items()}
            for name, value in md.items():
                emit(f"cg10_md_{p}_{name}_ns_per_day", value, "ns/day", peer=name.startswith("torch"))
            suffix = "" if platform == "Reference" else f"_{p}"
            emit(f"cg10_md_ratio_vs_torchforce{suffix}", md["pmfforce_mixed"] / md["torchforce_float64"], "x")
            emit(f"cg10_md_float64_ratio_vs_torchforce_float64{suffix}", md["pmfforce_float64"] / md["torchforce_float64"], "x")


if __name__ == "__main__":
    main()
