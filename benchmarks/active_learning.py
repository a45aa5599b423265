#!/usr/bin/env python
"""Active learning of a PMF with CG Monte Carlo (Schopmans & Friederich). Prints one JSON object per line.

Cases:
  mb_al  the Mueller-Brown loop of the paper's section 4.1 (openmmcgflow.active_learning.mueller_brown):
         kld_pmf (forward KLD on 100 grid points of s in [-2.5, 1.1] against quadrature),
         energy_evaluations, cg_mc_steps (summed walker trajectory lengths), iterations, wall_s,
         reverse_ess_fraction and all_atom_log_likelihood (with its exact value) of the all-atom generator
         (s from the PMF, then t from the conditional flow); the KLD-against-evaluations curve is written
         as JSON and PNG into the output directory.
  ala2_grid_short  grid conditioning of alanine dipeptide (openmmcgflow.active_learning.alanine), the
         paper's short run by default (100 x 100 grid, 30 copies, 20 epochs: 4.8e6 evaluations, ~2 h of flow
         training on 2 cores); --grid/--epochs/--copies/--flow-hidden/--flow-layers shrink it. Prints
         kld_pmf on the grid against the atomistic reference (cgbg.reference: reweighted metadynamics, built
         if missing, ~30 min) with that reference's own half-versus-half KLD (kld_noise_floor), js_phi and
         js_psi of the marginals, energy_evaluations, wall_s.
The active-learning alanine case (ala2_al) is not built yet.
"""
import argparse
import json
import os
import time

import numpy as np

from openmmcgflow import plots, stats
from openmmcgflow.active_learning import alanine, mueller_brown


def emit(name, value, unit, **extra):
    print(json.dumps({"name": name, "value": value, "unit": unit, **extra}), flush=True)


def plot_curve(record, path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    its = record["iterations"]
    fig, ax = plt.subplots(figsize=(5, 3.5))
    ax.semilogy([it["energy_evaluations"] for it in its], [it["kld_pmf"] for it in its], "o-")
    ax.set_xlabel("energy evaluations")
    ax.set_ylabel("forward KLD of the PMF")
    ax.set_title("Mueller-Brown active learning")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def grid_histogram(phi, psi, log_w, bins):
    """Normalized weighted (phi, psi) histogram on bins x bins cells of [-pi, pi)^2."""
    axis = (-np.pi, np.pi, bins)
    return stats.histogram_2d(phi, psi, log_w, axis, axis, True, True)["probability"]


def run_ala2_grid(args, out):
    from openmmcgflow.cgbg import pipeline
    start = time.time()
    settings = alanine.AlanineGridSettings(seed=args.seed, grid=args.grid, epochs=args.epochs, copies=args.copies,
                                           flow_hidden=args.flow_hidden, flow_layers=args.flow_layers,
                                           threads=args.threads)
    result = alanine.run_alanine_grid(settings, out=out)
    reference_dir = args.reference or os.path.join("out", "cg_bg", "ala2_reference_%s"
                                                   % pipeline._reference_tag(pipeline.FULL_REFERENCE))
    ref = pipeline._reference_job(reference_dir, pipeline.FULL_REFERENCE)[1]
    beta = 1.0 / result["problem"].kT
    model = np.exp(-beta * (result["pmf"] - result["pmf"].min()))
    model /= model.sum()
    phi, psi = ref.cv("phi"), ref.cv("psi")
    reference = grid_histogram(phi, psi, ref.log_w, args.grid)
    half = len(phi) // 2
    first = grid_histogram(phi[:half], psi[:half], ref.log_w[:half], args.grid)
    second = grid_histogram(phi[half:], psi[half:], ref.log_w[half:], args.grid)
    extra = {"case": args.case, "seed": args.seed, "grid": args.grid, "epochs": args.epochs, "copies": args.copies}
    kT = result["problem"].kT
    with np.errstate(divide="ignore"):
        reference_f = -kT * np.log(reference)
    reference_f -= np.nanmin(reference_f[np.isfinite(reference_f)])
    plots.plot_free_energy_grids(os.path.join(out, "pmf_vs_reference.png"), result["grid_axis"],
                                 [result["pmf"] - result["pmf"].min(), np.where(np.isfinite(reference_f), reference_f, np.nan)],
                                 ["learned PMF (grid conditioning)", "atomistic reference (reweighted MD)"], vmax=40.0)
    emit("kld_pmf", stats.kl_divergence(reference.ravel(), model.ravel()), "nats", **extra)
    emit("kld_noise_floor", stats.kl_divergence(first.ravel(), second.ravel()), "nats", **extra)
    emit("js_phi", stats.js_divergence(reference.sum(1), model.sum(1)), "nats", **extra)
    emit("js_psi", stats.js_divergence(reference.sum(0), model.sum(0)), "nats", **extra)
    emit("energy_evaluations", result["energy_evaluations"], "evaluations", **extra)
    emit("md_frames_by_example", result["md_frames"], "frames", **extra)
    emit("flow_train_s", result["train_seconds"], "s", **extra)
    emit("wall_s", time.time() - start, "s", **extra)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--case", default="mb_al", choices=["mb_al", "ala2_grid_short"])
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--out", default=None, help="output directory (default out/active_learning/<case>_seed<N>)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--grid", type=int, default=100, help="ala2_grid_short: grid points per angle")
    parser.add_argument("--epochs", type=int, default=20, help="ala2_grid_short: epochs by energy")
    parser.add_argument("--copies", type=int, default=30, help="ala2_grid_short: copies per grid point")
    parser.add_argument("--flow-hidden", type=int, default=256)
    parser.add_argument("--flow-layers", type=int, default=12)
    parser.add_argument("--reference", default=None, help="ala2_grid_short: atomistic reference directory")
    args = parser.parse_args()
    out = args.out or os.path.join("out", "active_learning", "%s_seed%d" % (args.case, args.seed))
    if args.case == "ala2_grid_short":
        run_ala2_grid(args, out)
        return
    settings = mueller_brown.MuellerBrownALSettings(seed=args.seed, threads=args.threads)
    record = mueller_brown.run_mueller_brown_al(settings, out=out, emit=lambda n, v, u: emit(n, v, u, case=args.case,
                                                                                             seed=args.seed))
    curve = [{"energy_evaluations": it["energy_evaluations"], "kld_pmf": it["kld_pmf"]} for it in record["iterations"]]
    with open(os.path.join(out, "kld_curve.json"), "w") as handle:
        json.dump(curve, handle, indent=1)
    plot_curve(record, os.path.join(out, "kld_curve.png"))


if __name__ == "__main__":
    main()
