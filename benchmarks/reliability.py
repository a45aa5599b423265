#!/usr/bin/env python
"""Reliability measurements (issue: faults during long work, exactness where the code's assumptions end). Prints
one JSON object per line.

Cases:
  domain_mass  the data-free alanine slow/fast model (openmmcgflow.datafree.alanine, seed --seed, its full
               schedule, ~15 min): at every beta of its schedule, the fraction of the model's samples outside the
               internal map's principal domain (a bond <= 0, an angle outside (0, pi), a dependent dihedral
               more than pi from its reference), where the map to Cartesians is many-to-one and such samples now
               have weight zero (outside_domain_fraction, one line per beta, and its maximum); with the run's
               own metrics (ess_fraction, reweighted basin fractions) under that convention.
  nan_storm    data-free training of the double well through a NaN storm (10 % of every batch NaN or +inf,
               1 % clashes with forces ~1e6 kJ/mol/nm): nan_storm_completed (1 if it reached beta = 1 with
               finite parameters and every evaluation counted), weight_zero_per_level, and P(x1 < 0) with and
               without the storm (exact 0.9917).
  long_md      NVE (VerletIntegrator, 1 fs) of --walkers particles (default 1, mass 10) moving on a PMFForce
               alone: the conditional-flow paper's phi/psi ensemble (10 x [4, 256, 128, 32, 1], sigmoid) fitted
               to a phi/psi landscape with ~20 kJ/mol barriers, one particle group per particle, on the
               Reference platform (double precision),
               --steps steps (default 10^7 = 10 ns): rss_growth_mb (resident memory after the first 10^4 steps
               and at the end), nve_drift_kj_mol_per_ns (slope of a least-squares line through the total
               energy, sampled every 10^4 steps) and its size beside the fluctuation.
  kill_resume  data-free training (double well) and a PMF label fit, each SIGKILLed --kills times (default 5) in a
               subprocess at random checkpoints plus random milliseconds and resumed each time, the harness of
               python/tests/test_kill_and_resume.py: resume_bit_identical_<job> (1 if the final parameters equal an
               uninterrupted run's bit for bit), kills_<job>.
  compound_bg  --moves flow moves (default 10^6) of BoltzmannGeneratorIntegrator (Metropolis, Reference platform)
               inside an openmm.CompoundIntegrator, alternating one flow move with one LangevinMiddleIntegrator
               step, so every move first re-prices the state the Langevin step left (energy and the flow's
               inverse pass). --system double_well (default): the Gaussian proposal of
               python/tests/test_bg_integrator.py, exact acceptance rate 0.2287 on the stationary chain
               (Langevin steps leave the target invariant);
               --system alanine: alanine dipeptide in vacuum, an internal-coordinate map and an untrained
               2-layer spline flow (hidden 16, seed --seed; its proposals are all rejected, so this exercises
               the rejection and re-pricing paths with a larger model and the internal map). rss_mb_start (after 10^4 warm-up moves), rss_mb_end,
               rss_growth_mb_<moves>_flow_moves, the resident memory every tenth of the run (rss_mb_trace),
               acceptance_rate, wall_s and flow_moves_per_s.
"""
import argparse
import json
import os
import sys
import time

import numpy as np


def emit(name, value, unit, **extra):
    print(json.dumps({"name": name, "value": value, "unit": unit, **extra}), flush=True)


def domain_mass(args):
    from openmmcgflow import systems
    from openmmcgflow.datafree import alanine
    metrics, model, result, _ = alanine.run("slowfast", seed=args.seed, progress=True)
    system = systems.alanine_dipeptide("obc")
    _, energy = alanine.make_target("slowfast", system, args.seed)
    final = model.get_parameters()
    fractions = []
    for beta in sorted(result.snapshots):
        model.set_parameters(result.snapshots[beta])
        q = model.sample(args.samples, args.seed + 77)[0]
        outside = float(np.mean(np.isnan(energy.cartesian(q)).any(axis=(1, 2))))
        fractions.append(outside)
        emit("outside_domain_fraction", outside, "fraction", beta=beta, samples=args.samples, seed=args.seed)
    model.set_parameters(final)
    emit("outside_domain_fraction_max", max(fractions), "fraction", seed=args.seed)
    emit("ess_fraction", metrics["ess_fraction"], "fraction", seed=args.seed)
    emit("reweighted_basin_fractions", metrics["reweighted_fractions"], "fraction",
         basins="C7eq/beta, alphaR, alphaL/C7ax", seed=args.seed)
    emit("model_basin_fractions", metrics["model_fractions"], "fraction", seed=args.seed)
    emit("energy_evaluations", metrics["energy_evaluations"], "evaluations", seed=args.seed)
    emit("wall_s", metrics["wall_s"], "s", seed=args.seed)


def nan_storm(args):
    sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "python", "tests"))
    import openmmcgflow as cg
    from openmmcgflow.datafree import double_well
    from test_nan_storm import SETTINGS, StormyEnergy, double_well_energy
    start = time.time()
    stormy = StormyEnergy(double_well_energy())
    model = double_well.make_model(args.seed)
    settings = dict(SETTINGS, seed=args.seed)
    result = cg.datafree.train_data_free(model, stormy, **settings)
    completed = (result.betas[-1] == 1.0 and np.isfinite(model.get_parameters()).all()
                 and result.evaluations == sum(n for n, _, _ in stormy.calls))
    emit("nan_storm_completed", int(completed), "bool", seed=args.seed, wall_s=time.time() - start)
    emit("weight_zero_per_level", [level["weight_zero"] for level in result.history], "samples",
         evaluation_batch=settings["evaluation_batch"], seed=args.seed)
    for label, energy in (("clean", double_well_energy()), ("nan_inf_only", StormyEnergy(double_well_energy(), clash=0.0)),
                          ("nan_inf_and_clashes", StormyEnergy(double_well_energy()))):
        m = double_well.make_model(args.seed)
        cg.datafree.train_data_free(m, energy, **settings)
        emit("p_left_" + label, double_well.probability_left(m, 20000, 11)[0], "probability", exact=0.9917,
             seed=args.seed)


def resident_mb():
    with open("/proc/self/status") as handle:
        for line in handle:
            if line.startswith("VmRSS:"):
                return float(line.split()[1]) / 1024.0
    return float("nan")


def long_md(args):
    import openmm
    from openmmcgflow.active_learning import alanine, walkers
    walkers_n, every = int(args.walkers), 10_000
    # The paper's ensemble fitted to a phi/psi landscape with barriers of ~20 kJ/mol, so that the particle
    # crosses a rugged smooth potential (a random-weight ensemble is nearly flat).
    rng = np.random.default_rng(args.seed)
    grid = rng.uniform(-np.pi, np.pi, size=(2000, 2))
    landscape = 10 * (1 - np.cos(grid[:, 0] + 1.3)) + 5 * (1 - np.cos(grid[:, 1] - 2.6)) + 3 * np.cos(grid.sum(1))
    kT = 0.00831446261815324 * 300.0
    ensemble = alanine.phi_psi_ensemble(grid, landscape / kT, kT, epochs=100, batch=64, seed=args.seed)
    system, _ = walkers.angle_walker_system(ensemble.to_bytes(), walkers_n)
    for i in range(walkers_n):
        system.setParticleMass(i, 10.0)
    integrator = openmm.VerletIntegrator(0.001)
    context = openmm.Context(system, integrator, openmm.Platform.getPlatformByName("Reference"))
    context.setPositions(np.column_stack([rng.uniform(-np.pi, np.pi, (walkers_n, 2)), np.zeros(walkers_n)]))
    context.setVelocitiesToTemperature(300.0, args.seed)

    def total_energy():
        s = context.getState(getEnergy=True)
        return (s.getPotentialEnergy() + s.getKineticEnergy()).value_in_unit(openmm.unit.kilojoule_per_mole)

    integrator.step(every)
    rss_start = resident_mb()
    start = time.time()
    times, energies, potentials = [], [], []
    steps = int(args.steps)
    from tqdm import tqdm
    for k in tqdm(range(steps // every), desc="NVE", unit="x%d steps" % every):
        integrator.step(every)
        times.append((k + 1) * every * 0.001 / 1000.0)  # ns
        energies.append(total_energy())
        potentials.append(context.getState(getEnergy=True).getPotentialEnergy().value_in_unit(
            openmm.unit.kilojoule_per_mole))
    wall = time.time() - start
    rss_end = resident_mb()
    slope = float(np.polyfit(times, energies, 1)[0])
    extra = dict(steps=steps, walkers=walkers_n, platform="Reference", seed=args.seed)
    emit("rss_mb_start", rss_start, "MB", **extra)
    emit("rss_mb_end", rss_end, "MB", **extra)
    emit("rss_growth_mb", rss_end - rss_start, "MB", **extra)
    emit("nve_drift_kj_mol_per_ns", slope, "kJ/mol/ns", **extra)
    emit("nve_energy_std_kj_mol", float(np.std(energies)), "kJ/mol", **extra)
    emit("potential_energy_std_kj_mol", float(np.std(potentials)), "kJ/mol", **extra)
    emit("md_steps_per_s", steps / wall, "steps/s", **extra)


def kill_resume(args):
    import tempfile
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "python", "tests"))
    import test_kill_and_resume as harness
    rng = np.random.default_rng(args.seed)
    jobs = {"data_free": (harness.DATA_FREE, "next_level", 8), "pmf_fit": (harness.PMF_FIT, "epochs_done", 38)}
    for name, (code, key, last) in jobs.items():
        with tempfile.TemporaryDirectory() as tmp:
            straight = os.path.join(tmp, "straight.npy")
            harness.run_child(code, os.path.join(tmp, "straight.npz"), straight)
            checkpoint, result = os.path.join(tmp, "killed.npz"), os.path.join(tmp, "killed.npy")
            points = sorted(rng.choice(np.arange(1, last), size=min(args.kills, last - 1), replace=False).tolist())
            kills = sum(harness.run_child(code, checkpoint, result, kill_at=k, key=key, rng=rng) for k in points)
            harness.run_child(code, checkpoint, result)
            identical = bool(np.array_equal(np.load(result), np.load(straight)))
            emit(f"resume_bit_identical_{name}", int(identical), "bool", seed=args.seed, kill_points=points)
            emit(f"kills_{name}", kills, "kills", seed=args.seed)


def compound_bg(args):
    import openmm
    import openmmcgflow as cg
    from openmmcgflow import systems
    if args.system == "double_well":
        sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "python", "tests"))
        from test_bg_integrator import PROPOSAL_MEAN, PROPOSAL_SIGMA, double_well_model, exact_acceptance_rate
        ts = systems.double_well()
        model, step_size = double_well_model(), 0.005
        exact = exact_acceptance_rate(PROPOSAL_MEAN, PROPOSAL_SIGMA)
    else:
        ts = systems.alanine_dipeptide("vacuum")
        position_map = cg.PositionMap.internal(ts.info["internal_coordinates"])
        circular = [d for d, c in enumerate(position_map.circular) if c]
        flow = cg.Flow({"dimension": position_map.dimension, "circular": circular, "num_layers": 2, "hidden": 16,
                        "seed": args.seed})
        model, step_size, exact = cg.encode_boltzmann_generator(flow, position_map), 0.0005, None
    bg = cg.BoltzmannGeneratorIntegrator(ts.temperature, cg.BoltzmannGeneratorIntegrator.Metropolis)
    bg.setModelBytes(model)
    bg.setRandomNumberSeed(args.seed)
    langevin = openmm.LangevinMiddleIntegrator(ts.temperature, 5.0, step_size)
    langevin.setRandomNumberSeed(args.seed + 1)
    compound = openmm.CompoundIntegrator()
    compound.addIntegrator(langevin)
    compound.addIntegrator(bg)
    context = openmm.Context(ts.system, compound, openmm.Platform.getPlatformByName("Reference"))
    context.setPositions(ts.positions)
    context.setVelocitiesToTemperature(ts.temperature, args.seed)

    def cycles(n):  # n x (one flow move, one Langevin step)
        for _ in range(n):
            compound.setCurrentIntegrator(1)
            compound.step(1)
            compound.setCurrentIntegrator(0)
            compound.step(1)

    warmup, moves = 10_000, int(args.moves)
    cycles(warmup)
    rss_start = resident_mb()
    proposals0, accepted0 = bg.getNumProposals(), bg.getNumAccepted()
    start = time.time()
    trace, tenth = [], max(1, moves // 10)
    done = 0
    while done < moves:
        n = min(tenth, moves - done)
        cycles(n)
        done += n
        trace.append(round(resident_mb(), 2))
    wall = time.time() - start
    rss_end = resident_mb()
    proposals, accepted = bg.getNumProposals() - proposals0, bg.getNumAccepted() - accepted0
    assert proposals == moves, (proposals, moves)
    label = ("%.0e" % moves).replace("e+0", "e").replace("e+", "e")
    extra = dict(moves=moves, warmup_moves=warmup, system=args.system, platform="Reference", seed=args.seed)
    emit("rss_mb_start", rss_start, "MB", **extra)
    emit("rss_mb_end", rss_end, "MB", **extra)
    emit(f"rss_growth_mb_{label}_flow_moves", rss_end - rss_start, "MB", **extra)
    emit("rss_mb_trace", trace, "MB", every_moves=tenth, **extra)
    emit("acceptance_rate", accepted / proposals, "fraction", exact=exact, non_finite=bg.getNumNonFinite(), **extra)
    emit("wall_s", wall, "s", **extra)
    emit("flow_moves_per_s", moves / wall, "moves/s", **extra)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--case", required=True, choices=["domain_mass", "nan_storm", "long_md", "kill_resume",
                                                             "compound_bg"])
    parser.add_argument("--kills", type=int, default=5, help="kill_resume: kills per job")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--samples", type=int, default=4000, help="domain_mass: model samples per beta")
    parser.add_argument("--steps", type=float, default=1e7, help="long_md: MD steps")
    parser.add_argument("--walkers", type=int, default=1, help="long_md: particles (PMFForce groups)")
    parser.add_argument("--moves", type=float, default=1e6, help="compound_bg: flow moves")
    parser.add_argument("--system", default="double_well", choices=["double_well", "alanine"],
                        help="compound_bg: the System and its model")
    args = parser.parse_args()
    {"domain_mass": domain_mass, "nan_storm": nan_storm, "long_md": long_md, "kill_resume": kill_resume,
     "compound_bg": compound_bg}[args.case](args)


if __name__ == "__main__":
    main()
