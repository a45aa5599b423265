#!/usr/bin/env python
"""Reference Ramachandran basin populations of alanine dipeptide (amber96 + OBC, 330 K), the system of
examples/data_free_alanine.py, by well-tempered metadynamics on (phi, psi) with OpenMM.

Why metadynamics: at 330 K plain MD crosses into phi > 0 (alphaL/C7ax) a few times per nanosecond,
so 1 ns of MD leaves that population uncertain by a factor of several; a bias on phi and psi flattens
the barriers, and the free energy F(phi, psi) = -(T + dT)/dT * V(phi, psi) of the converged bias gives
every basin's weight. Prints JSON lines {"name", "value", "unit"}: reference_fraction_<basin> for the
three basins of the data-free benchmark (the example's basin_of) and for its two minima inside
phi > 0 (ALPHA_L_CORES: alphaL proper and C7ax), the
spread of each over the last half of the run (a convergence check), nanoseconds simulated and wall
time. Writes out/ala2_reference_free_energy.png and out/ala2_reference_free_energy.npz.

    python benchmarks/ala2_reference.py --ns 10 --seed 1
"""
import argparse
import json
import os
import sys
import time

import numpy as np
from tqdm import tqdm

import openmmcgflow as cg
from openmmcgflow.datafree import alanine as data_free_alanine

PHI_ATOMS, PSI_ATOMS = (4, 6, 8, 14), (6, 8, 14, 16)  # C-N-CA-C and N-CA-C-N of ACE-ALA-NME
BASIN_NAMES = ("c7eq_beta", "alpha_r", "alpha_l")


def emit(name, value, unit):
    print(json.dumps({"name": name, "value": value, "unit": unit}), flush=True)


def regions(phi, psi):
    """Boolean masks on radian grids: the benchmark's three basins, then its alphaL-proper and C7ax cores."""
    basin = data_free_alanine.basin_of(phi, psi)
    return [basin == b for b in range(3)] + list(data_free_alanine.core_masks(phi, psi).values())


def populations(free_energy, kT, masks):
    p = np.exp(-(free_energy - free_energy.min()) / kT)
    p /= p.sum()
    return np.array([p[m].sum() for m in masks])


def main():
    import openmm
    from openmm import app, unit
    from openmm.app.metadynamics import BiasVariable, Metadynamics
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--ns", type=float, default=10.0, help="simulated time (1 fs steps)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--bias-factor", type=float, default=8.0)
    parser.add_argument("--out", default="out")
    args = parser.parse_args()
    if not args.ns > 0:
        raise SystemExit("--ns must be > 0, got %r" % (args.ns,))
    temperature = data_free_alanine.TEMPERATURE
    system = cg.systems.alanine_dipeptide("obc")
    width = 72
    variables = []
    for atoms in (PHI_ATOMS, PSI_ATOMS):
        torsion = openmm.CustomTorsionForce("theta")
        torsion.addTorsion(*atoms)
        variables.append(BiasVariable(torsion, -np.pi, np.pi, 0.35, True, width))
    meta = Metadynamics(system.system, variables, temperature * unit.kelvin, args.bias_factor,
                        1.0 * unit.kilojoule_per_mole, 500)
    integrator = openmm.LangevinMiddleIntegrator(temperature * unit.kelvin, 1 / unit.picosecond,
                                                 0.001 * unit.picoseconds)
    integrator.setRandomNumberSeed(args.seed)
    simulation = app.Simulation(system.info["topology"], system.system, integrator,
                                openmm.Platform.getPlatformByName("CPU"), {"Threads": "1"})
    simulation.context.setPositions(system.positions)
    simulation.context.setVelocitiesToTemperature(temperature * unit.kelvin, args.seed)
    kT = 0.00831446261815324 * temperature
    # OpenMM's bias grid: gridWidth points from min to max inclusive, the last one the periodic image
    # of the first; the array's axes are the variables in reverse order (psi, phi).
    axis = np.linspace(-np.pi, np.pi, width)[:-1]
    psi_grid, phi_grid = np.meshgrid(axis, axis, indexing="ij")
    masks = regions(phi_grid, psi_grid)
    chunk = 20000
    chunks = max(1, int(round(args.ns * 1e6 / chunk)))
    history = []
    start = time.perf_counter()
    for _ in tqdm(range(chunks), desc="metadynamics", unit="20 ps"):
        meta.step(simulation, chunk)
        free_energy = np.asarray(meta.getFreeEnergy().value_in_unit(unit.kilojoule_per_mole))[:-1, :-1]
        history.append(populations(free_energy, kT, masks))
    wall = time.perf_counter() - start
    history = np.array(history)
    final = history[-1]
    late = history[len(history) // 2:]
    for name, value, spread in zip(BASIN_NAMES + tuple(data_free_alanine.ALPHA_L_CORES), final, late.max(0) - late.min(0)):
        emit(f"reference_fraction_{name}", float(value), "fraction")
        emit(f"reference_fraction_{name}_spread_last_half", float(spread), "fraction")
    emit("simulated_ns", chunks * chunk * 1e-6, "ns")
    emit("wall_s", wall, "s")
    os.makedirs(args.out, exist_ok=True)
    path = os.path.join(args.out, "ala2_reference_free_energy.npz")
    np.savez(path + ".tmp.npz", free_energy=free_energy, phi=axis, psi=axis, history=history, kT=kT)
    os.replace(path + ".tmp.npz", path)  # atomic: a kill never leaves half a file
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(5, 4))
    shown = np.minimum((free_energy - free_energy.min()) / kT, 12.0)
    image = ax.pcolormesh(np.degrees(axis), np.degrees(axis), shown, shading="nearest", cmap="viridis")
    fig.colorbar(image, ax=ax, label="F / kT (capped at 12)")
    ax.set_xlabel("phi (deg)")
    ax.set_ylabel("psi (deg)")
    ax.set_title("amber96 + OBC, 330 K: well-tempered metadynamics")
    fig.tight_layout()
    path = os.path.join(args.out, "ala2_reference_free_energy.png")
    fig.savefig(path, dpi=120)
    plt.close(fig)
    print("wrote", path, file=sys.stderr)


if __name__ == "__main__":
    main()
