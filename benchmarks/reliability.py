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


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--case", required=True, choices=["domain_mass", "nan_storm"])
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--samples", type=int, default=4000, help="domain_mass: model samples per beta")
    args = parser.parse_args()
    {"domain_mass": domain_mass, "nan_storm": nan_storm}[args.case](args)


if __name__ == "__main__":
    main()
