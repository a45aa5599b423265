#!/usr/bin/env python
"""Data-free CG of the 3-mode Gaussian mixture of Stupp & Koutsourelakis (Sec. 3.2), d = 4 or 20.

x = (x_z, x_X) with dim x_z = dim x_X = d/2; p(x_z) has three equal modes N(m_k, 0.01 I) and
x_X | x_z ~ N(B x_z, 0.01 I). The model: a spline-coupling flow on d/2 slow variables
(truncated-normal base), a Gaussian X | z, and a d x d right-stochastic map (--fixed-map: the
identity partition instead); trained from the energy alone with adaptive tempering, and the same
model without tempering for the same number of energy evaluations. Prints the beta schedule, the
mode weights of model samples (exact 1/3 each, modes assigned by the nearest mean of x_z) and of
importance-reweighted samples, how many modes each run finds (weight > 0.05), energy evaluations,
and the share of |A^-1|'s slow rows on x_z; writes out/data_free_gmm<d>.png (x_z marginals with and
without tempering vs exact, |A^-1|, the schedule).
"""
import argparse
import json
import os
import time

import numpy as np

import openmmcgflow as cg
from openmmcgflow import datafree


def make_model(dim, seed, learned_map=True):
    """The paper's model; learned_map=False fixes the map to the identity (z = x_z, X = x_X), the
    partition the target was built with, to separate learning the map from learning the modes."""
    dz = dim // 2
    if learned_map:
        mapping = {"type": "right_stochastic_linear", "num_atoms": dim, "components_per_atom": 1,
                   "initial_diagonal_weight": 0.9, "initial_logit_noise": 0.3}
    else:
        mapping = {"type": "atom_permutation", "num_atoms": dim, "components_per_atom": 1,
                   "permutation": list(range(dim))}
    return cg.SlowFastModel({
        # The paper's Tables 3-4: 8 coupling layers, width 40, K = 8 on [-4, 4]; fast MLP width 40, ReLU.
        "slow": {"dimension": dz, "num_layers": 8, "num_bins": 8, "bound": 4.0,
                 "base": "truncated_normal", "base_bound": 4.0, "hidden": 40, "num_blocks": 1,
                 "num_threads": 1, "seed": seed},
        "fast": {"hidden": 40, "num_blocks": 1, "activation": "relu"},
        "map": mapping,
        "seed": seed})


# The run's settings, shared with benchmarks/data_free.py: the paper's tempering rule (delta KL_max = 0.1,
# delta beta_max = 0.02) from beta_0 = 0.01, 2000 reverse-KL steps at beta_0, then per level 20 reverse-KL
# steps followed by 100 steps of importance-weighted forward KL (500 samples, Adam 3e-4; the paper: 10^4
# samples and 1000 reverse-KL steps per level at 1e-3), and at beta = 1 1500 weighted forward-KL steps with
# 4000 samples at a rate decayed by a cosine from 1e-3 to 1e-5. Data-free throughout (only energies of the
# model's own samples), but an addition to the paper's method, for this reason: once the modes separate
# (beta ~ 0.1 and up), the reverse-KL gradient moves weight between modes only through the few samples
# between them, and with 500 samples per step that signal is noise, so the weights random-walk from level
# to level. In d = 20 (seed 1, exact NumPy energy, same budget) the paper's 100 reverse-KL steps per level
# swing them between 0.2 and 0.55 already at beta 0.07 and lose two modes by beta 0.3 (from beta_0 = 0.001
# too); 20 reverse + 100 weighted steps keep the ESS between 0.5 and 0.85 on every level and all three modes
# to beta = 1 (seeds 1 and 2, learned and identity maps). The weighted steps see a mode as long as the model
# still puts samples there and correct its weight (forward KL is mass-covering), which is why they have to
# run during the schedule: the final phase alone cannot bring back a mode that is already gone.
SETTINGS = dict(beta_initial=0.01, initial_steps=2000, steps_per_level=20, reweighted_steps_per_level=100, batch=500,
                max_relative_increase=0.1, max_step=0.02, kl_floor=0.02, learning_rate=3e-4, final_steps=0,
                reweighted_steps=1500, final_batch=4000, final_learning_rate=(1e-3, 1e-5))


def mode_weights(system, model, n=50000, seed=99):
    x, _, _ = model.sample(n, seed)
    modes = system.info["assign_mode"](x)
    return np.bincount(modes, minlength=3) / n


def reweighted_mode_weights(system, model, energy, n=20000, seed=98):
    """Mode weights of model samples importance-reweighted to exp(-U), and the ESS fraction."""
    x, log_q, _ = model.sample(n, seed)
    u, _ = energy(x)
    log_w = np.where(np.isfinite(u), -u - log_q, -np.inf)
    weights = cg.stats.normalized_weights(log_w)
    modes = system.info["assign_mode"](x)
    return np.array([weights[modes == k].sum() for k in range(3)]), float(cg.stats.effective_sample_fraction(log_w))


def run(dim, seed=1, learned_map=True, settings=None, progress=True):
    """Tempered run, then the same model without tempering for the same number of evaluations."""
    settings = dict(settings or SETTINGS)
    system = cg.systems.gaussian_mixture(dim)
    energy = datafree.CoordinateEnergy(system.system, system.positions, system.active)
    model = make_model(dim, seed, learned_map)
    start = time.perf_counter()
    tempered = datafree.train_data_free(model, energy, seed=seed, progress=progress, **settings)
    wall = time.perf_counter() - start
    weights = mode_weights(system, model)
    reweighted, ess = reweighted_mode_weights(system, model, energy)
    plain = make_model(dim, seed, learned_map)
    plain_energy = datafree.CoordinateEnergy(system.system, system.positions, system.active)
    # Plain reverse KL at beta = 1 for the tempered run's evaluations less its final phases, then the same
    # final phases: the comparison at equal cost.
    final = settings.get("final_steps", 0) + settings.get("reweighted_steps", 0)
    steps = (tempered.evaluations - final * settings.get("final_batch", settings["batch"])) // settings["batch"]
    baseline = dict(settings, tempering=False, initial_steps=max(1, steps))
    datafree.train_data_free(plain, plain_energy, seed=seed, progress=progress, **baseline)
    plain_weights = mode_weights(system, plain)
    dz = dim // 2
    metrics = {"energy_evaluations": tempered.evaluations, "wall_s": wall, "levels": len(tempered.history),
               "mode_weights": weights.tolist(), "mode_weights_reweighted": reweighted.tolist(), "ess_fraction": ess,
               "modes_found": int(np.sum(weights > 0.05)), "mode_weights_no_tempering": plain_weights.tolist(),
               "modes_found_no_tempering": int(np.sum(plain_weights > 0.05))}
    if learned_map:
        slow_rows = np.abs(model.map_inverse[:dz])
        metrics["slow_share_on_x_z"] = float(slow_rows[:, :dz].sum() / slow_rows.sum())
    return metrics, model, plain, tempered, system


def write_plot(path, system, model, plain, tempered, n=50000):
    """Marginals of the x_z coordinates (model with and without tempering vs exact), |A^-1| and the schedule."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    dim = len(system.active)
    dz = dim // 2
    x, _, _ = model.sample(n, 7)
    xp, _, _ = plain.sample(n, 7)
    columns = min(dz, 5)
    fig, axes = plt.subplots(1, columns + 2, figsize=(3.2 * (columns + 2), 3.0))
    grid = np.linspace(-2, 2, 400)
    for i in range(columns):
        ax = axes[i]
        ax.hist(x[:, i], bins=120, range=(-2, 2), density=True, alpha=0.5, label="tempered")
        ax.hist(xp[:, i], bins=120, range=(-2, 2), density=True, alpha=0.5, label="no tempering")
        ax.plot(grid, system.info["marginal"](i, grid), "k", lw=1, label="exact")
        ax.set_xlabel(f"x_z[{i}]")
    axes[0].legend(fontsize=7)
    try:
        image = np.abs(model.map_inverse)
        axes[columns].imshow(image, cmap="viridis")
        axes[columns].set_title("|A^-1| (rows: z then X)")
    except (AttributeError, RuntimeError):
        axes[columns].axis("off")
    axes[columns + 1].plot([h["evaluations"] for h in tempered.history], [h["beta"] for h in tempered.history], ".")
    axes[columns + 1].set_xlabel("energy evaluations")
    axes[columns + 1].set_ylabel("beta")
    fig.tight_layout()
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--dim", type=int, default=4, choices=[4, 20])
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--fixed-map", action="store_true",
                        help="fix the map to the identity partition instead of learning it")
    parser.add_argument("--out", default="out")
    args = parser.parse_args()
    metrics, model, plain, tempered, system = run(args.dim, args.seed, learned_map=not args.fixed_map)
    print("beta schedule (beta, KL estimate, ESS fraction, evaluations):")
    for h in tempered.history[:: max(1, len(tempered.history) // 12)] + tempered.history[-1:]:
        print(f"  {h['beta']:.4f}  {h['kl']:8.4f}  {h['ess_fraction']:.3f}  {h['evaluations']}")
    print(json.dumps(metrics, indent=1))
    print("wrote", write_plot(os.path.join(args.out, f"data_free_gmm{args.dim}.png"), system, model, plain, tempered))


if __name__ == "__main__":
    main()
