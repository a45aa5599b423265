#!/usr/bin/env python
"""PMFForce speed inside OpenMM Contexts. Prints one JSON object per line.

Cases (from the plugin-foundation issue):
  (a) the phi/psi PMF of the conditional-flow paper: 2 dihedrals -> 4 inputs (cos, sin),
      an ensemble of 10 MLPs [4, 256, 128, 32, 1] with sigmoid activations;
  (b) a 10-bead CG system: all 45 pair distances -> one MLP [45, 128, 128, 128, 1];
      plus MD throughput of (b) with LangevinMiddleIntegrator at 2 fs.

Timings are per energy+force evaluation through Context.getState, i.e. what a user pays.
The peer in the same run is OpenMM's own PythonForce evaluating the identical model with
numpy (the usual way to put a custom PMF into OpenMM without a plugin); ratios are printed.
A Context holding only a trivial force gives the getState overhead floor.
"""
import argparse
import json
import time

import numpy as np
import openmm
from openmm import unit

from pmf_models import cg10_model, cg10_pmf, cg10_system, phi_psi_model, phi_psi_pmf, phi_psi_system

KJ = unit.kilojoule_per_mole
FORCE_UNIT = KJ / unit.nanometer


def emit(name, value, unit_name, **extra):
    print(json.dumps({"name": name, "value": round(float(value), 3), "unit": unit_name, **extra}), flush=True)


def platform_props(name):
    return {"Precision": "single"} if name in ("OpenCL", "CUDA") else {}


def time_evaluations(system, positions, platform, seconds):
    context = openmm.Context(system, openmm.VerletIntegrator(0.001), openmm.Platform.getPlatformByName(platform),
                             platform_props(platform))
    context.setPositions(positions)
    for _ in range(5):  # warm-up: kernel compilation, caches
        context.getState(getEnergy=True, getForces=True)
    n, start = 0, time.perf_counter()
    while True:
        for _ in range(20):
            context.setPositions(positions)  # invalidates cached state like an MD step would
            context.getState(getEnergy=True, getForces=True)
        n += 20
        elapsed = time.perf_counter() - start
        if elapsed > seconds:
            return 1e6 * elapsed / n


# ----- numpy peer: the same model, features and backpropagation in numpy -----------------

def numpy_mlp(ensemble):
    d = ensemble.to_dict()
    act = d["activation"]
    return d["weights"], d["biases"], act


def numpy_ensemble_grad(weights, biases, activation, x):
    """Mean energy and d mean / d x of an ensemble, by hand-written backpropagation."""
    total, grad = 0.0, np.zeros_like(x)
    for ws, bs in zip(weights, biases):
        hs, pres = [x], []
        for l, (w, b) in enumerate(zip(ws, bs)):
            a = w @ hs[-1] + b
            pres.append(a)
            hs.append(a if l == len(ws) - 1 else _act(a, activation))
        total += hs[-1][0]
        delta = np.ones(1)
        for l in range(len(ws) - 1, -1, -1):
            g = ws[l].T @ delta
            if l > 0:
                delta = g * _dact(pres[l - 1], hs[l], activation)
            else:
                grad += g
    m = len(weights)
    return total / m, grad / m


def _act(a, kind):
    if kind == "sigmoid":
        return 1 / (1 + np.exp(-a))
    if kind == "silu":
        return a / (1 + np.exp(-a))
    if kind == "tanh":
        return np.tanh(a)
    raise ValueError(kind)


def _dact(a, h, kind):
    if kind == "sigmoid":
        return h * (1 - h)
    if kind == "silu":
        s = 1 / (1 + np.exp(-a))
        return s * (1 + a * (1 - s))
    if kind == "tanh":
        return 1 - h * h
    raise ValueError(kind)


def dihedral_and_grad(p):
    """phi of p[0..3] (IUPAC sign) and d phi / d p (4 x 3)."""
    b0, b1, b2 = p[0] - p[1], p[2] - p[1], p[2] - p[3]
    c0, c1 = np.cross(b0, b1), np.cross(b1, b2)
    nb = np.linalg.norm(b1)
    phi = np.arctan2(nb * np.dot(b0, c1), np.dot(c0, c1))
    f0 = -(nb / np.dot(c0, c0)) * c0
    f3 = (nb / np.dot(c1, c1)) * c1
    s = (np.dot(b0, b1) / (nb * nb)) * f0 - (np.dot(b2, b1) / (nb * nb)) * f3
    return phi, -np.array([f0, s - f0, -s - f3, f3])


def python_force_phi_psi(ensemble):
    weights, biases, act = numpy_mlp(ensemble)

    def compute(state):
        pos = state.getPositions(asNumpy=True).value_in_unit(unit.nanometer)
        x, jac = [], []
        for atoms in ((0, 1, 2, 3), (1, 2, 3, 4)):
            phi, dphi = dihedral_and_grad(pos[list(atoms)])
            x += [np.cos(phi), np.sin(phi)]
            jac += [(atoms, -np.sin(phi) * dphi), (atoms, np.cos(phi) * dphi)]
        e, g = numpy_ensemble_grad(weights, biases, act, np.array(x))
        f = np.zeros_like(pos)
        for gi, (atoms, d) in zip(g, jac):
            f[list(atoms)] -= gi * d
        return e, f

    return openmm.PythonForce(compute)


def python_force_pairs(ensemble, n):
    weights, biases, act = numpy_mlp(ensemble)
    i_idx, j_idx = np.triu_indices(n, 1)

    def compute(state):
        pos = state.getPositions(asNumpy=True).value_in_unit(unit.nanometer)
        d = pos[j_idx] - pos[i_idx]
        r = np.linalg.norm(d, axis=1)
        e, g = numpy_ensemble_grad(weights, biases, act, r)
        fij = (g / r)[:, None] * d
        f = np.zeros_like(pos)
        np.add.at(f, i_idx, fij)
        np.add.at(f, j_idx, -fij)
        return e, f

    return openmm.PythonForce(compute)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=2.0, help="measuring time per case (default 2)")
    parser.add_argument("--md-steps", type=int, default=5000, help="MD steps for ns/day (default 5000)")
    args = parser.parse_args()
    if args.seconds <= 0 or args.md_steps <= 0:
        parser.error("--seconds and --md-steps must be positive")
    names = [openmm.Platform.getPlatform(i).getName() for i in range(openmm.Platform.getNumPlatforms())]
    platforms = [p for p in ("Reference", "OpenCL") if p in names]

    # (a) phi/psi ensemble.
    ens_a = phi_psi_model()
    system_a, pos_a = phi_psi_system(phi_psi_pmf(ens_a))
    results = {}
    for p in platforms:
        results[p] = time_evaluations(system_a, pos_a, p, args.seconds)
        emit(f"pmf_phi_psi_ens10_{p.lower()}_us", results[p], "us")
    peer_system, _ = phi_psi_system(python_force_phi_psi(ens_a))
    peer = time_evaluations(peer_system, pos_a, "Reference", args.seconds)
    emit("pmf_phi_psi_ens10_pythonforce_numpy_us", peer, "us", peer=True)
    emit("pmf_phi_psi_ens10_speedup_vs_pythonforce", peer / results["Reference"], "x")

    # (b) 10-bead CG system.
    ens_b = cg10_model()
    system_b, pos_b = cg10_system(cg10_pmf(ens_b))
    results = {}
    for p in platforms:
        results[p] = time_evaluations(system_b, pos_b, p, args.seconds)
        emit(f"pmf_cg10_{p.lower()}_us", results[p], "us")
    peer_system, _ = cg10_system(python_force_pairs(ens_b, 10))
    peer = time_evaluations(peer_system, pos_b, "Reference", args.seconds)
    emit("pmf_cg10_pythonforce_numpy_us", peer, "us", peer=True)
    emit("pmf_cg10_speedup_vs_pythonforce", peer / results["Reference"], "x")
    floor_force = openmm.CustomBondForce("r")
    floor_force.addBond(0, 1)
    floor_system, _ = cg10_system(floor_force)
    for p in platforms:  # what getState costs with a trivial force: the floor under every number above
        emit(f"getstate_floor_{p.lower()}_us", time_evaluations(floor_system, pos_b, p, args.seconds), "us", peer=True)

    # MD throughput of (b): the CPU path (Reference kernel) and OpenCL, 2 fs Langevin steps.
    for p in ["Reference"] + [q for q in platforms if q != "Reference"]:
        integrator = openmm.LangevinMiddleIntegrator(300, 1, 0.002)
        context = openmm.Context(system_b, integrator, openmm.Platform.getPlatformByName(p), platform_props(p))
        context.setPositions(pos_b)
        integrator.step(100)
        start = time.perf_counter()
        integrator.step(args.md_steps)
        context.getState(getEnergy=True)
        elapsed = time.perf_counter() - start
        ns_per_day = args.md_steps * 0.002e-3 / elapsed * 86400
        emit("pmf_cg10_md_ns_per_day" if p == "Reference" else f"pmf_cg10_md_ns_per_day_{p.lower()}", ns_per_day, "ns/day")


if __name__ == "__main__":
    main()
