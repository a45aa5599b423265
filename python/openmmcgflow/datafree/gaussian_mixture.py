"""The 3-mode Gaussian mixture of Stupp & Koutsourelakis (Sec. 3.2, ``systems.gaussian_mixture(d)``): the
paper's slow/fast model, the run's settings, mode weights, and the tempered run against the no-tempering
baseline at equal cost, shared by examples/data_free_gmm.py, the tests and benchmarks/data_free.py."""
import os
import time

import numpy as np

from .. import stats, systems
from .._core import SlowFastModel
from .energies import CoordinateEnergy
from .schedule import DataFreeSchedule
from .trainer import train_data_free


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
    return SlowFastModel({
        # The paper's Tables 3-4: 8 coupling layers, width 40, K = 8 on [-4, 4]; fast MLP width 40, ReLU.
        "slow": {"dimension": dz, "num_layers": 8, "num_bins": 8, "bound": 4.0,
                 "base": "truncated_normal", "base_bound": 4.0, "hidden": 40, "num_blocks": 1,
                 "num_threads": 1, "seed": seed},
        "fast": {"hidden": 40, "num_blocks": 1, "activation": "relu"},
        "map": mapping,
        "seed": seed})


# The run's settings (keywords of train_data_free): the paper's tempering rule (delta KL_max = 0.1,
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
    """Fractions of n model samples in each of the three modes (nearest mean of x_z)."""
    x, _, _ = model.sample(n, seed)
    modes = system.info["assign_mode"](x)
    return np.bincount(modes, minlength=3) / n


def reweighted_mode_weights(system, model, energy, n=20000, seed=98):
    """Mode weights of model samples importance-reweighted to exp(-U), and the ESS fraction."""
    x, log_q, _ = model.sample(n, seed)
    u, _ = energy(x)
    log_w = np.where(np.isfinite(u), -u - log_q, -np.inf)
    weights = stats.normalized_weights(log_w)
    modes = system.info["assign_mode"](x)
    return np.array([weights[modes == k].sum() for k in range(3)]), float(stats.effective_sample_fraction(log_w))


def run(dim, seed=1, learned_map=True, settings=None, progress=True):
    """Tempered run, then the same model without tempering for the same number of evaluations.
    settings: keywords of train_data_free (default SETTINGS). Returns (metrics, tempered model,
    baseline model, the tempered run's DataFreeResult, the system)."""
    settings = dict(settings or SETTINGS)
    schedule = DataFreeSchedule(**settings)
    system = systems.gaussian_mixture(dim)
    energy = CoordinateEnergy(system.system, system.positions, system.active)
    model = make_model(dim, seed, learned_map)
    start = time.perf_counter()
    tempered = train_data_free(model, energy, schedule, seed=seed, progress=progress)
    wall = time.perf_counter() - start
    weights = mode_weights(system, model)
    reweighted, ess = reweighted_mode_weights(system, model, energy)
    plain = make_model(dim, seed, learned_map)
    plain_energy = CoordinateEnergy(system.system, system.positions, system.active)
    # Plain reverse KL at beta = 1 for the tempered run's evaluations less its final phases, then the same
    # final phases: the comparison at equal cost.
    final = schedule.final_steps + schedule.reweighted_steps
    steps = (tempered.evaluations - final * schedule.final_batch_size) // schedule.batch
    train_data_free(plain, plain_energy, schedule, tempering=False, initial_steps=max(1, steps), seed=seed,
                    progress=progress)
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
