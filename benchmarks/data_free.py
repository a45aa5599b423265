#!/usr/bin/env python
"""Data-free coarse-graining reproductions. Prints JSON lines {"name", "value", "unit"}.

--case double_well: the paper's double-well model (examples/data_free_double_well.py) trained with
adaptive tempering and, for the same number of energy evaluations, without; averaged over --seeds.
  energy_evaluations, wall_s, p_x1_negative (model samples), p_x1_negative_reweighted (importance
  weights), p_x1_negative_exact, p_x1_negative_no_tempering, tempering_levels
--case gmm4, gmm20: the 4-D / 20-D three-mode Gaussian mixture (examples/data_free_gmm.py settings),
  first seed: energy_evaluations, wall_s, min_mode_weight, max_mode_weight, modes_found,
  modes_found_no_tempering, min_mode_weight_reweighted, max_mode_weight_reweighted, ess_fraction
--case ala2_slowfast, ala2_encdec, ala2_encdec_cartesian: alanine dipeptide (amber96 + OBC, 330 K),
  data-free, with the slow/fast model in internal coordinates, the encoder-decoder model on internal
  coordinates with open torsions, or the encoder-decoder in the paper's Cartesian frame
  (examples/data_free_alanine.py):
  energy_evaluations, wall_s, basins_found (0-3, from the model's own samples), ess_fraction,
  basin_fraction_<basin> and basin_fraction_reweighted_<basin> (also for the alphaL-proper and C7ax
  minima inside alphaL/C7ax), and for encdec
  alpha_beta_separation_accuracy. Writes the Ramachandran PNGs to out/.
"""
import argparse
import json
import os
import sys
import time

import numpy as np

import openmmcgflow as cg
from openmmcgflow import datafree
from openmmcgflow.datafree import alanine as data_free_alanine
from openmmcgflow.datafree import gaussian_mixture as data_free_gmm
from openmmcgflow.datafree.double_well import SETTINGS, baseline_settings, make_model

CASES = ("double_well", "gmm4", "gmm20", "ala2_slowfast", "ala2_encdec", "ala2_encdec_cartesian")


def emit(name, value, unit):
    value = int(value) if isinstance(value, (int, np.integer)) else float(f"{float(value):.6g}")
    print(json.dumps({"name": name, "value": value, "unit": unit}), flush=True)


def double_well(seeds):
    system = cg.systems.double_well()
    grid = np.linspace(-5, 5, 2001)
    exact = float(np.trapezoid(np.where(grid < 0, system.info["x1_marginal"](grid, 1.0), 0.0), grid))
    rows = []
    for seed in seeds:
        energy = datafree.CoordinateEnergy(system.system, system.positions, system.active)
        model = make_model(seed)
        start = time.perf_counter()
        result = datafree.train_data_free(model, energy, seed=seed, progress=False, **SETTINGS)
        wall = time.perf_counter() - start
        x, log_q, _ = model.sample(200000, 77)
        x_is, log_q_is, _ = model.sample(20000, 78)
        u_is, _ = energy(x_is)
        reweighted = cg.stats.weighted_mean(-u_is - log_q_is, (x_is[:, 0] < 0).astype(float))[0]
        plain_model = make_model(seed)
        plain_energy = datafree.CoordinateEnergy(system.system, system.positions, system.active)
        datafree.train_data_free(plain_model, plain_energy, seed=seed, progress=False,
                                 **baseline_settings(SETTINGS, result.evaluations))
        xp, _, _ = plain_model.sample(200000, 77)
        rows.append((result.evaluations, wall, np.mean(x[:, 0] < 0), reweighted, np.mean(xp[:, 0] < 0),
                     len(result.history)))
        print(f"[data_free] seed {seed}: P(x1<0) {rows[-1][2]:.4f}, reweighted {reweighted:.4f}, "
              f"no tempering {rows[-1][4]:.4f}", file=sys.stderr)
    rows = np.array(rows, dtype=float)
    emit("energy_evaluations", int(rows[:, 0].mean()), "evaluations")
    emit("wall_s", rows[:, 1].mean(), "s")
    emit("p_x1_negative", rows[:, 2].mean(), "probability")
    emit("p_x1_negative_seed_spread", rows[:, 2].std(), "probability")
    emit("p_x1_negative_reweighted", rows[:, 3].mean(), "probability")
    emit("p_x1_negative_exact", exact, "probability")
    emit("p_x1_negative_no_tempering", rows[:, 4].mean(), "probability")
    emit("tempering_levels", rows[:, 5].mean(), "levels")


def gmm(dim, seed):
    metrics, model, plain, tempered, system = data_free_gmm.run(dim, seed, progress=False)
    data_free_gmm.write_plot(os.path.join("out", f"data_free_gmm{dim}.png"), system, model, plain, tempered)
    weights, reweighted = np.array(metrics["mode_weights"]), np.array(metrics["mode_weights_reweighted"])
    print(f"[data_free] gmm{dim}: weights {np.round(weights, 3).tolist()}, reweighted "
          f"{np.round(reweighted, 3).tolist()}, no tempering {np.round(metrics['mode_weights_no_tempering'], 3).tolist()}",
          file=sys.stderr)
    emit("energy_evaluations", int(metrics["energy_evaluations"]), "evaluations")
    emit("wall_s", metrics["wall_s"], "s")
    emit("tempering_levels", metrics["levels"], "levels")
    emit("min_mode_weight", weights.min(), "probability")
    emit("max_mode_weight", weights.max(), "probability")
    emit("modes_found", metrics["modes_found"], "modes")
    emit("modes_found_no_tempering", metrics["modes_found_no_tempering"], "modes")
    emit("min_mode_weight_reweighted", reweighted.min(), "probability")
    emit("max_mode_weight_reweighted", reweighted.max(), "probability")
    emit("ess_fraction", metrics["ess_fraction"], "fraction")
    emit("slow_share_on_x_z", metrics["slow_share_on_x_z"], "fraction")


def alanine(kind, seed):
    metrics, model, result, samples = data_free_alanine.run(kind, seed, progress=False)
    system = cg.systems.alanine_dipeptide("obc")
    _, energy = data_free_alanine.make_target(kind, system, seed)
    betas, fractions = data_free_alanine.basin_fractions_by_beta(model, energy, system, result)
    data_free_alanine.write_plots(kind, result, samples, "out", (betas, fractions))
    print(f"[data_free] {kind}: basin fractions (model samples) by beta: " +
          ", ".join(f"{b:.2f}: {np.round(f, 4).tolist()}" for b, f in list(zip(betas, fractions))[::4]), file=sys.stderr)
    emit("energy_evaluations", int(metrics["energy_evaluations"]), "evaluations")
    emit("wall_s", metrics["wall_s"], "s")
    emit("tempering_levels", metrics["levels"], "levels")
    emit("basins_found", metrics["basins_found"], "basins")
    emit("ess_fraction", metrics["ess_fraction"], "fraction")
    for name, model, reweighted in zip(("c7eq_beta", "alpha_r", "alpha_l"), metrics["model_fractions"],
                                       metrics["reweighted_fractions"]):
        emit(f"basin_fraction_{name}", model, "fraction")
        emit(f"basin_fraction_reweighted_{name}", reweighted, "fraction")
    for name, (model, reweighted) in metrics["alpha_l_cores"].items():
        emit(f"basin_fraction_{name}", model, "fraction")
        emit(f"basin_fraction_reweighted_{name}", reweighted, "fraction")
    if "alpha_beta_separation_accuracy" in metrics:
        emit("alpha_beta_separation_accuracy", metrics["alpha_beta_separation_accuracy"], "fraction")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--case", choices=CASES, default="double_well")
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3, 4])
    args = parser.parse_args()
    if args.case == "double_well":
        double_well(args.seeds)
    elif args.case == "gmm4":
        gmm(4, args.seeds[0])
    elif args.case == "gmm20":
        gmm(20, args.seeds[0])
    else:
        alanine(args.case.split("_", 1)[1], args.seeds[0])


if __name__ == "__main__":
    main()
