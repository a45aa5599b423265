#!/usr/bin/env python
"""Active learning of a PMF with CG Monte Carlo (Schopmans & Friederich). Prints one JSON object per line.

Cases:
  mb_al  the Mueller-Brown loop of the paper's section 4.1 (openmmcgflow.active_learning.mueller_brown):
         kld_pmf (forward KLD on 100 grid points of s in [-2.5, 1.1] against quadrature),
         energy_evaluations, cg_mc_steps (summed walker trajectory lengths), iterations, wall_s,
         reverse_ess_fraction and all_atom_log_likelihood (with its exact value) of the all-atom generator
         (s from the PMF, then t from the conditional flow); the KLD-against-evaluations curve is written
         as JSON and PNG into the output directory.
The alanine-dipeptide cases (ala2_al, ala2_grid, ala2_grid_short) are not built yet.
"""
import argparse
import json
import os

from openmmcgflow.active_learning import mueller_brown


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


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--case", default="mb_al", choices=["mb_al"])
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--out", default=None, help="output directory (default out/active_learning/<case>_seed<N>)")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    out = args.out or os.path.join("out", "active_learning", "%s_seed%d" % (args.case, args.seed))
    settings = mueller_brown.MuellerBrownALSettings(seed=args.seed, threads=args.threads)
    record = mueller_brown.run_mueller_brown_al(settings, out=out, emit=lambda n, v, u: emit(n, v, u, case=args.case,
                                                                                             seed=args.seed))
    curve = [{"energy_evaluations": it["energy_evaluations"], "kld_pmf": it["kld_pmf"]} for it in record["iterations"]]
    with open(os.path.join(out, "kld_curve.json"), "w") as handle:
        json.dump(curve, handle, indent=1)
    plot_curve(record, os.path.join(out, "kld_curve.png"))


if __name__ == "__main__":
    main()
