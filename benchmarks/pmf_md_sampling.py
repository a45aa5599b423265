#!/usr/bin/env python
"""MD on a PMF against the atomistic MD it replaces: simulated ns/day and effective samples per
second of the (phi, psi) distribution of alanine dipeptide. Prints one JSON object per line.

    .venv/bin/python benchmarks/pmf_md_sampling.py [--seconds 60] [--platforms Reference,CPU,OpenCL] [--pmf FILE]

Systems, each run with LangevinMiddleIntegrator at 300 K, friction 1/ps, one frame per 0.1 ps:
  aa:   alanine dipeptide, amber96 + OBC, no constraints, 1 fs (cg.systems.alanine_dipeptide("obc"));
  cg:   the (phi, psi) CG system: two extended-variable particles whose x coordinates are phi and
        psi (nm read as rad; mass 1 amu, so kinetic energy m v^2 / 2 in rad^2/ps^2), a PMFForce on
        addCoordinate(p, 0, period=2 pi) of each (inputs cos/sin phi, cos/sin psi), --cg-timestep-fs
        (default 10 fs: the CG dynamics is ours to choose, any mass, friction and stable step keep its
        Boltzmann distribution), in the PMFForce's mixed precision on Reference and CPU; its sampled
        (phi, psi) histogram is compared with the PMF's own Boltzmann distribution on a 30 x 30 grid
        (cg_md_kld_vs_pmf, nats; finite sampling alone gives a positive value);
  cg10: the 10-bead CG system of benchmarks/pmf_force.py (45 distances, [45, 128, 128, 128, 1],
        SiLU, random weights, 50 amu beads, 2 fs): throughput only (its model is not a PMF of
        anything, so it has no (phi, psi) to sample).

Effective samples: n_frames / tau, with tau the largest integrated autocorrelation time
(openmmcgflow.stats.integrated_autocorrelation_time, Sokal window) of cos phi, sin phi, cos psi and
sin psi, per second of wall time of the run that produced them. A run too short for its slowest
observable gives a lower bound on tau (flagged "tau_lower_bound": true), i.e. an upper bound on
its effective samples per second: the atomistic run's phi > 0 basin (alpha_L) is visited on a
nanosecond scale, which no run of a minute resolves, so its number flatters the atomistic MD.

The PMF: --pmf FILE (a PMFForce model over (cos phi, sin phi, cos psi, sin psi), kJ/mol); by default
the last model of the alanine active-learning run in out/active_learning/ala2_al_seed1/models/ when
it exists, else a PMF fitted to the (phi, psi) histogram of this benchmark's own atomistic run on
the first platform (10 MLPs, labels -kT ln p on a 24 x 24 grid of the bins with >= 3 frames; a
landscape with the right basins for timing, not an accurate PMF).
"""
import argparse
import glob
import json
import sys
import time
import warnings

import numpy as np
import openmm

import openmmcgflow as cg
from openmmcgflow import stats
from pmf_models import cg10_model, cg10_pmf, cg10_system

FRAME_PS = 0.1


def emit(name, value, unit, **extra):
    print(json.dumps({"name": name, "value": round(float(value), 4), "unit": unit, **extra}), flush=True)


def log(message):
    print(message, file=sys.stderr, flush=True)


def platform_properties(name):
    return {"Precision": "mixed"} if name in ("OpenCL", "CUDA") else {}


def dihedral(p, i, j, k, l):
    """Dihedral angles (rad) of frames p (n, atoms, 3), OpenMM's sign convention."""
    b1, b2, b3 = p[:, j] - p[:, i], p[:, k] - p[:, j], p[:, l] - p[:, k]
    n1, n2 = np.cross(b1, b2), np.cross(b2, b3)
    x = np.einsum("ij,ij->i", n1, n2)
    y = np.linalg.norm(b2, axis=1) * np.einsum("ij,ij->i", b1, n2)
    return np.arctan2(y, x)


def run(context, integrator, steps_per_frame, seconds, extract):
    """Frames every steps_per_frame steps for about `seconds` of wall time: (frames, steps, wall s)."""
    frames, steps, start = [], 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        integrator.step(steps_per_frame)
        steps += steps_per_frame
        frames.append(extract(context.getState(getPositions=True).getPositions(asNumpy=True)._value))
    return np.array(frames), steps, time.perf_counter() - start


def effective_samples(phi_psi):
    """(effective samples, tau in frames, whether tau is only a lower bound) of (n, 2) angles."""
    observables = np.column_stack([np.cos(phi_psi[:, 0]), np.sin(phi_psi[:, 0]), np.cos(phi_psi[:, 1]),
                                   np.sin(phi_psi[:, 1])])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        taus = stats.integrated_autocorrelation_time(observables)
    tau = float(np.max(taus))
    return len(phi_psi) / tau, tau, any("lower bound" in str(w.message) for w in caught)


def aa_md(test, platform, seconds, seed):
    integrator = openmm.LangevinMiddleIntegrator(test.temperature, 1.0, 0.001)
    integrator.setRandomNumberSeed(seed)
    context = openmm.Context(test.system, integrator, openmm.Platform.getPlatformByName(platform),
                             platform_properties(platform))
    context.setPositions(test.positions)
    context.setVelocitiesToTemperature(test.temperature, seed)
    integrator.step(2000)  # 2 ps away from the minimized structure
    # ACE C(4) - ALA N(6) CA(8) C(14) - NME N(16): phi = C-N-CA-C, psi = N-CA-C-N.
    frames, steps, wall = run(context, integrator, int(round(FRAME_PS / 0.001)), seconds,
                              lambda x: x[[4, 6, 8, 14, 16]])
    phi_psi = np.column_stack([dihedral(frames, 0, 1, 2, 3), dihedral(frames, 1, 2, 3, 4)])
    return phi_psi, steps * 0.001, wall


def phi_psi_pmf(model_bytes, precision):
    pmf = cg.PMFForce()
    pmf.setModelBytes(model_bytes)
    pmf.addCoordinate(0, 0, 2 * np.pi)
    pmf.addCoordinate(1, 0, 2 * np.pi)
    pmf.setPrecision(precision)
    return pmf


def cg_system(model_bytes):
    system = openmm.System()
    for _ in range(2):
        system.addParticle(1.0)
    system.addForce(phi_psi_pmf(model_bytes, "mixed"))
    return system


def pmf_boltzmann_on_grid(model_bytes, bins, kT):
    """exp(-F/kT) of the PMF at the centres of a bins x bins (phi, psi) grid, normalized."""
    context = openmm.Context(cg_system(model_bytes), openmm.VerletIntegrator(0.001),
                             openmm.Platform.getPlatformByName("Reference"))
    centres = -np.pi + (np.arange(bins) + 0.5) * 2 * np.pi / bins
    f = np.empty((bins, bins))
    for i, a in enumerate(centres):
        for j, b in enumerate(centres):
            context.setPositions(np.array([[a, 0, 0], [b, 0, 0]]))
            f[i, j] = context.getState(getEnergy=True).getPotentialEnergy()._value
    p = np.exp(-(f - f.min()) / kT)
    return p / p.sum()


def cg_md(model_bytes, platform, seconds, seed, start, timestep_ps):
    integrator = openmm.LangevinMiddleIntegrator(300.0, 1.0, timestep_ps)
    integrator.setRandomNumberSeed(seed)
    context = openmm.Context(cg_system(model_bytes), integrator, openmm.Platform.getPlatformByName(platform),
                             platform_properties(platform))
    context.setPositions(np.array([[start[0], 0, 0], [start[1], 0, 0]]))
    context.setVelocitiesToTemperature(300.0, seed)
    integrator.step(int(round(2.0 / timestep_ps)))
    frames, steps, wall = run(context, integrator, max(1, int(round(FRAME_PS / timestep_ps))), seconds,
                              lambda x: x[:, 0])
    phi_psi = (frames + np.pi) % (2 * np.pi) - np.pi
    return phi_psi, steps * timestep_ps, wall


def cg10_md(platform, seconds):
    system, positions = cg10_system(cg10_pmf(cg10_model(), "mixed"))
    integrator = openmm.LangevinMiddleIntegrator(300.0, 1.0, 0.002)
    context = openmm.Context(system, integrator, openmm.Platform.getPlatformByName(platform),
                             platform_properties(platform))
    context.setPositions(positions)
    integrator.step(100)
    steps, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        integrator.step(500)
        steps += 500
    context.getState(getEnergy=True)
    return steps * 0.002, time.perf_counter() - start


def fitted_pmf(phi_psi, kT):
    """A PMF from a histogram: labels -kT ln p on a 24 x 24 grid where a bin has >= 3 frames."""
    from openmmcgflow.active_learning.alanine import phi_psi_ensemble
    edges = np.linspace(-np.pi, np.pi, 25)
    counts, _, _ = np.histogram2d(phi_psi[:, 0], phi_psi[:, 1], bins=[edges, edges])
    centres = 0.5 * (edges[1:] + edges[:-1])
    i, j = np.nonzero(counts >= 3)
    labels_kt = -np.log(counts[i, j] / counts.sum())
    labels_kt -= labels_kt.min()
    log(f"fitting a PMF to {len(i)} histogram bins of the atomistic run")
    ensemble = phi_psi_ensemble(np.column_stack([centres[i], centres[j]]), labels_kt, kT, epochs=400,
                                batch=max(8, len(i) // 8), seed=1)
    return ensemble.to_bytes()


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=60.0, help="wall seconds per MD run (default 60)")
    parser.add_argument("--platforms", default="Reference,CPU,OpenCL", help="comma-separated; absent ones are skipped")
    parser.add_argument("--pmf", default=None, help="a PMFForce model file over (cos phi, sin phi, cos psi, sin psi)")
    parser.add_argument("--cg-timestep-fs", type=float, default=10.0, help="CG MD time step in fs (default 10)")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    if args.seconds <= 0 or args.cg_timestep_fs <= 0:
        parser.error("--seconds and --cg-timestep-fs must be positive")
    available = [openmm.Platform.getPlatform(i).getName() for i in range(openmm.Platform.getNumPlatforms())]
    platforms = [p for p in args.platforms.split(",") if p in available]
    skipped = [p for p in args.platforms.split(",") if p not in available]
    if skipped:
        log(f"skipping platforms not present: {skipped}")
    test = cg.systems.alanine_dipeptide("obc")
    kT = openmm.unit.MOLAR_GAS_CONSTANT_R.value_in_unit(openmm.unit.kilojoule_per_mole / openmm.unit.kelvin) * 300.0

    results = {}
    for platform in platforms:
        phi_psi, ns_ps, wall = aa_md(test, platform, args.seconds, args.seed)
        results[platform] = (phi_psi, ns_ps, wall)
        ess, tau, lower = effective_samples(phi_psi)
        p = platform.lower()
        emit(f"aa_md_ns_per_day_{p}", ns_ps * 1e-3 / wall * 86400, "ns/day", peer=True)
        emit(f"aa_md_effective_samples_per_s_{p}", ess / wall, "1/s", peer=True, tau_ps=round(tau * FRAME_PS, 3),
             simulated_ps=round(ns_ps, 1), tau_lower_bound=lower)
        log(f"aa {platform}: {ns_ps:.0f} ps in {wall:.0f} s; tau {tau * FRAME_PS:.2f} ps{' (lower bound)' if lower else ''}; "
            f"phi > 0 in {np.mean(phi_psi[:, 0] > 0):.3f} of frames")

    if args.pmf:
        model_bytes, source = open(args.pmf, "rb").read(), args.pmf
    else:
        found = sorted(glob.glob("out/active_learning/ala2_al_seed1/models/*.safetensors"))
        if found:
            model_bytes, source = open(found[-1], "rb").read(), found[-1]
        else:
            model_bytes, source = fitted_pmf(results[platforms[0]][0], kT), "fitted to this run's atomistic histogram"
    log(f"CG PMF: {source}")
    start = results[platforms[0]][0][0]  # where the atomistic run started, C7eq
    cg_rates, cg_speed = {}, {}
    reference = pmf_boltzmann_on_grid(model_bytes, 30, kT)
    edges = np.linspace(-np.pi, np.pi, 31)
    for platform in platforms:
        phi_psi, ns_ps, wall = cg_md(model_bytes, platform, args.seconds, args.seed, start, args.cg_timestep_fs * 1e-3)
        sampled, _, _ = np.histogram2d(phi_psi[:, 0], phi_psi[:, 1], bins=[edges, edges])
        ess, tau, lower = effective_samples(phi_psi)
        cg_rates[platform] = ess / wall
        cg_speed[platform] = ns_ps / wall
        p = platform.lower()
        emit(f"cg_md_ns_per_day_{p}", ns_ps * 1e-3 / wall * 86400, "ns/day")
        emit(f"cg_md_effective_samples_per_s_{p}", ess / wall, "1/s", tau_ps=round(tau * FRAME_PS, 3),
             simulated_ps=round(ns_ps, 1), tau_lower_bound=lower)
        aa_phi_psi, aa_ps, aa_wall = results[platform]
        aa_ess, _, _ = effective_samples(aa_phi_psi)
        emit(f"cg_md_kld_vs_pmf_{p}", stats.kl_divergence((sampled / sampled.sum()).ravel(), reference.ravel()), "nats")
        emit(f"cg_md_effective_samples_ratio_vs_aa_{p}", (ess / wall) / (aa_ess / aa_wall), "x")
        log(f"cg {platform}: {ns_ps:.0f} ps in {wall:.0f} s; tau {tau * FRAME_PS:.2f} ps; "
            f"phi > 0 in {np.mean(phi_psi[:, 0] > 0):.3f} of frames")
        ns, wall = cg10_md(platform, min(args.seconds, 20.0))
        emit(f"cg10_md_ns_per_day_{p}", ns * 1e-3 / wall * 86400, "ns/day")
    # The names, unqualified: each side on the platform that simulated the most (the fastest in ns/day,
    # which is what a user would run, and the longest run, whose tau is the most reliable).
    aa_platform = max(platforms, key=lambda p: results[p][1] / results[p][2])
    cg_platform = max(platforms, key=lambda p: cg_speed[p])
    emit("aa_md_effective_samples_per_s", effective_samples(results[aa_platform][0])[0] / results[aa_platform][2],
         "1/s", peer=True, platform=aa_platform)
    emit("cg_md_effective_samples_per_s", cg_rates[cg_platform], "1/s", platform=cg_platform)

if __name__ == "__main__":
    main()
