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
  ala2_al  the active-learning loop for alanine dipeptide (openmmcgflow.active_learning.alanine_al) with the
         scaled settings AlanineALSettings.two_hour_budget() (--max-iterations, --al-epochs and
         --first-epochs change them; --paper takes the paper's own settings, days on 2 cores). Prints
         kld_pmf on the 100 x 100 grid with the reference's kld_noise_floor, the
         same on a 30 x 30 grid (kld_pmf_30, kld_noise_floor_30, where the reference resolves more),
         js_phi, js_psi, energy_evaluations, cg_mc_steps (summed walker steps, the paper's count; a final search that
         only confirmed the stop is left out, as the paper does),
         iterations, reverse_ess_fraction, all_atom_log_likelihood (of 500 held-out MD frames, nats per
         unit volume of the internal coordinates), cascade_ess_fraction (2 000 all-atom configurations from
         CG Monte Carlo on the final PMFForce then the conditional flow through BoltzmannGeneratorIntegrator,
         reweighted to the atomistic Boltzmann distribution), wall_s; the KLD-against-evaluations curve as
         JSON and PNG.
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


def plot_curve(record, path, title="Mueller-Brown active learning", floors=None):
    """KLD against energy evaluations; ``floors`` ({label: (curve key, floor)}) adds curves and the reference's
    own KLD as dashed lines."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    its = record["iterations"]
    fig, ax = plt.subplots(figsize=(5, 3.5))
    evaluations = [it["energy_evaluations"] for it in its]
    for label, (key, floor) in (floors or {"": ("kld_pmf", None)}).items():
        line, = ax.semilogy(evaluations, [it[key] for it in its], "o-", label=label or None)
        if floor is not None:
            ax.axhline(floor, color=line.get_color(), ls="--", lw=0.8)
    if floors:
        ax.legend(fontsize=7)
    ax.set_xlabel("energy evaluations")
    ax.set_ylabel("forward KLD of the PMF")
    ax.set_title(title)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def grid_histogram(phi, psi, log_w, bins):
    """Normalized weighted (phi, psi) histogram on bins x bins cells of [-pi, pi)^2."""
    axis = (-np.pi, np.pi, bins)
    return stats.histogram_2d(phi, psi, log_w, axis, axis, True, True)["probability"]


def run_ala2_grid(args, out):
    start = time.time()
    settings = alanine.AlanineGridSettings(seed=args.seed, grid=args.grid, epochs=args.epochs, copies=args.copies,
                                           flow_hidden=args.flow_hidden, flow_layers=args.flow_layers,
                                           threads=args.threads)
    result = alanine.run_alanine_grid(settings, out=out)
    beta = 1.0 / result["problem"].kT
    model = np.exp(-beta * (result["pmf"] - result["pmf"].min()))
    model /= model.sum()
    reference, floor = reference_grids(args, (args.grid,))[args.grid]
    extra = {"case": args.case, "seed": args.seed, "grid": args.grid, "epochs": args.epochs, "copies": args.copies}
    kT = result["problem"].kT
    with np.errstate(divide="ignore"):
        reference_f = -kT * np.log(reference)
    reference_f -= np.nanmin(reference_f[np.isfinite(reference_f)])
    plots.plot_free_energy_grids(os.path.join(out, "pmf_vs_reference.png"), result["grid_axis"],
                                 [result["pmf"] - result["pmf"].min(), np.where(np.isfinite(reference_f), reference_f, np.nan)],
                                 ["learned PMF (grid conditioning)", "atomistic reference (reweighted MD)"], vmax=40.0)
    emit("kld_pmf", stats.kl_divergence(reference.ravel(), model.ravel()), "nats", **extra)
    emit("kld_noise_floor", floor, "nats", **extra)
    emit("js_phi", stats.js_divergence(reference.sum(1), model.sum(1)), "nats", **extra)
    emit("js_psi", stats.js_divergence(reference.sum(0), model.sum(0)), "nats", **extra)
    emit("energy_evaluations", result["energy_evaluations"], "evaluations", **extra)
    emit("md_frames_by_example", result["md_frames"], "frames", **extra)
    emit("flow_train_s", result["train_seconds"], "s", **extra)
    emit("wall_s", time.time() - start, "s", **extra)


def reference_grids(args, cells_list):
    """The atomistic reference's (phi, psi) probability grids and their half-versus-half KLD, per grid size."""
    from openmmcgflow.cgbg import pipeline
    reference_dir = args.reference or os.path.join("out", "cg_bg", "ala2_reference_%s"
                                                   % pipeline._reference_tag(pipeline.FULL_REFERENCE))
    ref = pipeline._reference_job(reference_dir, pipeline.FULL_REFERENCE)[1]
    phi, psi = ref.cv("phi"), ref.cv("psi")
    half = len(phi) // 2
    grids = {}
    for cells in cells_list:
        full = grid_histogram(phi, psi, ref.log_w, cells)
        first = grid_histogram(phi[:half], psi[:half], ref.log_w[:half], cells)
        second = grid_histogram(phi[half:], psi[half:], ref.log_w[half:], cells)
        grids[cells] = (full, stats.kl_divergence(first.ravel(), second.ravel()))
    return grids


def run_ala2_al(args, out):
    from openmmcgflow._core import MLPEnsemble
    from openmmcgflow.active_learning import alanine_al
    start = time.time()
    grids = reference_grids(args, (100, 30))
    changes = {"seed": args.seed, "threads": args.threads, "flow_hidden": args.flow_hidden,
               "flow_layers": args.flow_layers}
    for name, value in (("max_iterations", args.max_iterations), ("epochs", args.al_epochs),
                        ("first_epochs", args.first_epochs)):
        if value is not None:
            changes[name] = value
    settings = alanine_al.AlanineALSettings(**changes) if args.paper else \
        alanine_al.AlanineALSettings.two_hour_budget(**changes)
    result = alanine_al.run_alanine_al(settings, out=out, reference=grids[100][0])
    problem, record = result["problem"], result["record"]
    kT = problem.kT
    extra = {"case": args.case, "seed": args.seed, "paper_settings": bool(args.paper)}
    # Every iteration's PMF on the coarser grid, where the reference resolves ten times more.
    centres30 = alanine.grid_centres(30)
    for it in record["iterations"]:
        path = os.path.join(out, "models", "iteration_%03d.safetensors" % it["iteration"])
        with open(path, "rb") as handle:
            ensemble = MLPEnsemble.from_bytes(handle.read())
        pmf30 = ensemble.evaluate(alanine.AlanineConditional.pmf_inputs(centres30))[0].reshape(30, 30)
        it["kld_pmf_30"] = alanine_al.pmf_metrics(pmf30, grids[30][0], kT)["kld_pmf"]
    # Cascaded sampling back to atoms inside OpenMM: 20 CG walkers on the final PMFForce (2 000 steps, a point
    # every 20), then one all-atom configuration per point from the BoltzmannGeneratorIntegrator.
    from openmmcgflow.active_learning import cascade
    cascade_start = time.time()
    with open(os.path.join(out, alanine_al.MODEL_FILE), "rb") as handle:
        points, pmf_at = cascade.cg_monte_carlo_points(handle.read(), 20, 2000, 20, start=[[-1.5, 2.6]],
                                                       seed=args.seed)
    cascaded = cascade.cascaded_samples(problem, cascade.conditional_generator_model(problem, result["flow"]),
                                        points, pmf_at, seed=args.seed)
    cascade_s = time.time() - cascade_start
    held_out = alanine.md_start(problem, settings.md_ps, seed=settings.seed + 100)
    log_likelihood = alanine_al.generator_log_likelihood(result["flow"], result["ensemble"], problem, held_out,
                                                         settings.eval_grid)
    last = record["iterations"][-1]
    with open(os.path.join(out, "kld_curve.json"), "w") as handle:
        json.dump([{k: it.get(k) for k in ("iteration", "energy_evaluations", "kld_pmf", "kld_pmf_30", "js_phi",
                                           "js_psi", "reverse_ess_fraction", "cg_mc_walker_steps", "wall_s")}
                   for it in record["iterations"]], handle, indent=1)
    plot_curve(record, os.path.join(out, "kld_curve.png"), title="alanine dipeptide active learning",
               floors={"100 x 100": ("kld_pmf", grids[100][1]), "30 x 30": ("kld_pmf_30", grids[30][1])})
    reference_f = -kT * np.log(np.where(grids[100][0] > 0, grids[100][0], np.nan))
    plots.plot_free_energy_grids(os.path.join(out, "pmf_vs_reference.png"), result["grid_axis"],
                                 [result["pmf"] - result["pmf"].min(), reference_f - np.nanmin(reference_f)],
                                 ["learned PMF (active learning)", "atomistic reference (reweighted MD)"], vmax=40.0)
    emit("kld_pmf", last["kld_pmf"], "nats", grid=100, **extra)
    emit("kld_noise_floor", grids[100][1], "nats", grid=100, **extra)
    emit("kld_pmf_30", last["kld_pmf_30"], "nats", grid=30, **extra)
    emit("kld_noise_floor_30", grids[30][1], "nats", grid=30, **extra)
    emit("js_phi", last["js_phi"], "nats", **extra)
    emit("js_psi", last["js_psi"], "nats", **extra)
    emit("energy_evaluations", last["energy_evaluations"], "evaluations", md_ps=settings.md_ps, **extra)
    searches = record["iterations"][:-1] if record["stopped"] == "max_mc_steps" else record["iterations"]
    emit("cg_mc_steps", sum(it["cg_mc_walker_steps"] for it in searches), "walker steps", **extra)
    emit("iterations", len(record["iterations"]), "iterations", stopped=record["stopped"], **extra)
    emit("reverse_ess_fraction", last["reverse_ess_fraction"], "fraction", samples=last["ess_samples"], **extra)
    emit("all_atom_log_likelihood", log_likelihood, "nats", frames=len(held_out), **extra)
    emit("cascade_ess_fraction", cascaded.ess_fraction, "fraction", samples=len(points), wall_s=cascade_s, **extra)
    emit("wall_s", time.time() - start, "s", loop_s=record["start_s"] + sum(it["wall_s"] for it in record["iterations"]),
         **extra)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--case", default="mb_al", choices=["mb_al", "ala2_al", "ala2_grid_short"])
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--out", default=None, help="output directory (default out/active_learning/<case>_seed<N>)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--grid", type=int, default=100, help="ala2_grid_short: grid points per angle")
    parser.add_argument("--epochs", type=int, default=20, help="ala2_grid_short: epochs by energy")
    parser.add_argument("--copies", type=int, default=30, help="ala2_grid_short: copies per grid point")
    parser.add_argument("--flow-hidden", type=int, default=256)
    parser.add_argument("--flow-layers", type=int, default=12)
    parser.add_argument("--reference", default=None, help="alanine cases: atomistic reference directory")
    parser.add_argument("--max-iterations", type=int, default=None, help="ala2_al: iterations at most")
    parser.add_argument("--first-epochs", type=int, default=None, help="ala2_al: epochs of the first iteration")
    parser.add_argument("--al-epochs", dest="al_epochs", type=int, default=None, help="ala2_al: epochs per iteration")
    parser.add_argument("--paper", action="store_true", help="ala2_al: the paper's settings (days on 2 cores)")
    args = parser.parse_args()
    out = args.out or os.path.join("out", "active_learning", "%s_seed%d" % (args.case, args.seed))
    if args.case == "ala2_grid_short":
        run_ala2_grid(args, out)
        return
    if args.case == "ala2_al":
        run_ala2_al(args, out)
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
