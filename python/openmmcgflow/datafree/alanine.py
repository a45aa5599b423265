"""Alanine dipeptide (amber96 + OBC, 330 K) from its energy alone: the models, energies, settings, basin
assignment, evaluation and plots shared by examples/data_free_alanine.py, the tests and the benchmarks
(benchmarks/data_free.py, benchmarks/ala2_reference.py)."""
import os
import time

import numpy as np

from .. import coordinates, plots, stats, systems
from .._core import EncoderDecoderModel, SlowFastModel
from .energies import CartesianFrameEnergy, InternalCoordinateEnergy
from .trainer import train_data_free

TEMPERATURE = 330.0  # K, the embedded-physics paper's target temperature (beta_target = 1)

# Training settings per model (keywords of train_data_free). Why these values: the papers'
# tempering rule (delta KL_max = 0.1) with delta beta_max = 0.05 from beta_0 = 0.05 (the papers start at
# 1e-4 and take 1000 steps of 10^4 samples per level, ~10^9 evaluations; these settings use 10^7 for
# slowfast and encdec, 12-15 minutes each here, and 2.4 x 10^6 for encdec_cartesian);
# Adam at 1e-3; the guard clips instead of stalling after 10 consecutive skips (a lasting rise of the
# gradient scale when the fast widths shrink otherwise stalls training for good); the largest per-sample
# losses are dropped, 3 % for the encoder-decoders and 12.5 % for slowfast (clashing samples with forces
# ~10^4 kJ/mol/nm would set the direction of the whole update; dropping 2 of 256 or none let the torsions
# spread over the whole torus and break the chirality). No energy regularization: capping U makes exp(-beta U) improper in the 58
# Gaussian directions, and the fast widths then grow without bound.
# slowfast takes 1000 steps of 256 samples per level (512 in the final phase; the papers' 1000 steps, with
# fewer samples): against 150 steps of 1024 (about the same evaluations) the ESS at 330 K rose 0.47 -> 0.64
# and the C7ax minimum went from 1.5e-4 to 1.2e-3 of the samples (reference 1.8e-3), seed 1 (docs/results/data-free.md). The
# 32 dropped losses are 12.5 % of 256 (they were 3 % of 1024): dropping 8 lost most of C7ax.
SETTINGS = {
    "slowfast": dict(beta_initial=0.05, initial_steps=1500, steps_per_level=1000, batch=256,
                     max_relative_increase=0.1, max_step=0.05, kl_floor=0.02, learning_rate=1e-3,
                     guard={"max_consecutive_skips": 10}, drop_largest_losses=32, final_steps=1500,
                     final_batch=512, final_learning_rate=(1e-3, 1e-5)),
    "encdec_cartesian": dict(beta_initial=0.05, initial_steps=1500, steps_per_level=150, batch=256,
                             max_relative_increase=0.1, max_step=0.05, kl_floor=0.02, learning_rate=1e-3,
                             guard={"max_consecutive_skips": 10}, drop_largest_losses=8, final_steps=1500,
                             final_batch=512, final_learning_rate=(1e-3, 1e-5)),
}
# encdec: the same schedule with 1000 steps per level (10^7 evaluations, as slowfast). The decoder first
# smears psi over -90..180 deg and must split it into alphaR and C7eq/beta as the barrier rises (beta ~ 0.3-0.5);
# with 150 steps per level it contracts into C7eq/beta instead (alphaR 0.02 % of the samples at beta = 1), with
# 400 it keeps 2.3 %, with 1000 9.4 % (reweighted 0.18, the reference's), seed 1.
SETTINGS["encdec"] = dict(SETTINGS["encdec_cartesian"], steps_per_level=1000)

# Basins on the Ramachandran plane, degrees: phi < 0 split by psi into C7eq/beta (psi >= 50 or psi < -150)
# and alphaR; phi >= 0 is alphaL/C7ax.
BASINS = ("C7eq/beta", "alphaR", "alphaL/C7ax")
# A basin is found when at least 0.1 % of the model's samples lie in it: a quarter of the smallest reference
# population, alphaL/C7ax at 0.43 % (+-0.2 %) from 8 ns of well-tempered metadynamics (benchmarks/
# ala2_reference.py; C7eq/beta 0.82, alphaR 0.18). The earlier 0.5 % was above that basin's true weight,
# so an exact sampler would have missed it about half of the time.
FOUND_FRACTION = 0.001
# The two minima inside phi >= 0 (degrees: phi range, psi range), reported beside the three basins: samples
# with phi > 0 on the high-energy psi ~ 150 plateau count as alphaL/C7ax above but sit in neither minimum.
ALPHA_L_CORES = {"alpha_l_proper": ((20, 110), (-20, 100)), "c7ax": ((20, 110), (-110, -20))}


def make_slow_fast_model(internal_coordinates, slow_columns, seed):
    """The slowfast model: the ``slow_columns`` of the internal coordinates (the free torsions) on a circular
    spline flow, the other columns a Gaussian with a full covariance and a conditional flow on its noise."""
    dim = internal_coordinates.num_internal
    latent_of_column = {c: k for k, c in enumerate(slow_columns)}
    rest = [c for c in range(dim) if c not in latent_of_column]
    latent_of_column.update({c: len(slow_columns) + k for k, c in enumerate(rest)})
    return SlowFastModel({
        # The paper's Table 5 flow: 8 couplings of 4 x 64 on [-4, 4] for 15 Cartesian slow coordinates;
        # here z is 10 periodic angles: 8 circular couplings with residual 2 x 64 conditioners.
        "slow": {"dimension": len(slow_columns), "circular": list(range(len(slow_columns))), "num_layers": 8,
                 "num_bins": 8, "hidden": 64, "num_blocks": 2, "num_threads": 1},
        # Table 6: ReLU MLP of width 90 for the mean and log-std; started narrow (std e^-1.2 = 0.3 in normalized
        # units) so the first samples are not clashing. Not in the papers: a full covariance (a learnable
        # unit-lower-triangular mixing of the standardized noise, 1225 parameters) for the correlated bonds and
        # angles; it raised the ESS at 330 K from 0.009 to 0.038 (seed 1) and from 0.001 to 0.018 (seed 2) at
        # the same budget, with the same basins.
        "fast": {"hidden": 90, "num_blocks": 2, "activation": "relu", "initial_log_std": -1.2,
                 "covariance": "full"},
        # Not in the papers either: 4 affine couplings (conditioners 64 wide) on the standardized fast noise with
        # the 10 torsions as context, started at the identity. The z-independent M cannot follow how the bond
        # angles' correlations change between C7eq, alphaR and alphaL; the misfit that left in alphaL was
        # what reverse KL pruned it by (docs/results/data-free.md). At 150 steps of 1024 per level: ESS at 330 K 0.18 -> 0.47
        # (seed 1) and 0.008 -> 0.27 (seed 2), reweighted populations within 0.02 of the reference.
        "fast_flow": {"coupling": "affine", "num_layers": 4, "hidden": 64, "num_threads": 1},
        "map": {"type": "atom_permutation", "num_atoms": dim, "components_per_atom": 1,
                "permutation": [latent_of_column[c] for c in range(dim)]},
        "seed": seed})


def make_encoder_decoder_model(dimension, seed, latent_dimension=2, internal=False):
    """The paper's model (encdec_cartesian), or with internal=True the encdec model on internal coordinates."""
    # The paper's Tables 3-4: a tanh decoder of width 120 with z-independent learnable variances (here
    # started at 0.02 nm) and an encoder of width 170 (SELU there; SiLU here).
    decoder = {"hidden": 120, "num_blocks": 2, "activation": "tanh", "std": "constant",
               "initial_log_std": float(np.log(0.02))}
    config = {"latent_dimension": latent_dimension, "data_dimension": dimension, "decoder": decoder,
              "encoder": {"hidden": 170, "num_blocks": 2, "activation": "silu"}, "seed": seed}
    if internal:
        # Normalized internal coordinates (std 0.3 ~ 1.5 pm bonds, 2.6 deg angles, 17 deg torsions at the
        # start). A z-dependent std and a full covariance, at 150 steps per level (seed 1): ESS 0.0013
        # (diagonal, constant) -> 0.03 (full) -> 0.08 (full, z-dependent). The flow prior changed nothing
        # measurable there (ESS 0.0013 with, 0.0011 without; alphaR lost either way), but at 1000 steps per
        # level it doubles alphaR: model 0.094 vs 0.042, reweighted 0.177 vs 0.104 (reference 0.178), seed 1;
        # ESS 0.070 vs 0.113, ~20 % more wall time.
        decoder.update({"std": "conditional", "covariance": "full", "initial_log_std": -1.2})
        config["prior"] = {"coupling": "spline", "num_layers": 4, "hidden": 64, "num_blocks": 2, "bound": 5.0,
                           "num_threads": 1}
    return EncoderDecoderModel(config)


def open_torsion_cuts(system, internal_coordinates):
    """{column: cut} for InternalCoordinateEnergy(open_torsions=...): phi cut at 120 deg and psi at -120 deg
    (barriers between the basins; in each column's coordinate, the angle minus the reference's), every
    other free torsion opposite its reference value."""
    phi_column, psi_column = system.info["phi_psi_columns"]
    reference = system.info["phi_psi"].map_positions(system.positions[None])[0]
    cuts = {int(c): -np.pi for c in internal_coordinates.zmatrix.circular_columns}
    for column, cut, angle in ((phi_column, 120.0, reference[0]), (psi_column, -120.0, reference[1])):
        cuts[column] = float(np.angle(np.exp(1j * (np.radians(cut) - angle))))
    return cuts


FRAME_ATOMS = (8, 6, 14)  # CA, N, C: the first three rows of the Z-matrix, so both models share one frame


def make_target(kind, system, seed):
    """(model, energy) for kind 'slowfast' (internal coordinates), 'encdec' (internal coordinates with open
    torsions) or 'encdec_cartesian' (the paper's Cartesian frame)."""
    if kind == "slowfast":
        ic = system.info["phi_psi_internal_coordinates"]
        energy = InternalCoordinateEnergy(system.system, ic, TEMPERATURE)
        return make_slow_fast_model(ic, ic.zmatrix.circular_columns, seed), energy
    if kind == "encdec_cartesian":
        energy = CartesianFrameEnergy(system.system, system.positions, FRAME_ATOMS, TEMPERATURE)
        return make_encoder_decoder_model(len(energy.active), seed), energy
    if kind == "encdec":
        ic = system.info["phi_psi_internal_coordinates"]
        energy = InternalCoordinateEnergy(system.system, ic, TEMPERATURE, open_torsions=open_torsion_cuts(system, ic))
        return make_encoder_decoder_model(ic.num_internal, seed, internal=True), energy
    raise ValueError("model must be 'slowfast', 'encdec' or 'encdec_cartesian', got %r" % (kind,))


def basin_of(phi, psi):
    """0, 1, 2 = C7eq/beta, alphaR, alphaL/C7ax for angles in radians."""
    phi, psi = np.degrees(phi), np.degrees(psi)
    beta_region = (psi >= 50) | (psi < -150)
    return np.where(phi >= 0, 2, np.where(beta_region, 0, 1))


def core_masks(phi, psi):
    """{name: boolean mask} of ALPHA_L_CORES for angles in radians."""
    phi, psi = np.degrees(phi), np.degrees(psi)
    return {name: (phi > p0) & (phi < p1) & (psi > s0) & (psi < s1)
            for name, ((p0, p1), (s0, s1)) in ALPHA_L_CORES.items()}


def phi_psi(system, energy, q):
    """phi, psi (rad) of model coordinates q, D-form configurations mirrored to L first, and the fraction mirrored."""
    x = energy.cartesian(q)
    mirrored = coordinates.detect_chirality(x) == -1
    x[mirrored, :, 2] *= -1  # both energies are invariant under the mirror; the frame keeps z -> -z
    phi, psi = system.info["phi_psi"].map_positions(x).T
    return phi, psi, float(np.mean(mirrored))


def evaluate_samples(model, energy, system, n, seed):
    """phi, psi (rad) and log importance weights -u + log|det J| - log q of n model samples."""
    q, log_q = model.sample(n, seed)[:2]
    u, _, log_volume, _ = energy(q)
    phi, psi, mirrored = phi_psi(system, energy, q)
    return phi, psi, np.where(np.isfinite(u), -u + log_volume - log_q, -np.inf), mirrored


def basin_report(phi, psi, log_w):
    """Model and reweighted fractions of the three basins, and {core: [model, reweighted]} of ALPHA_L_CORES."""
    basins = basin_of(phi, psi)
    weights = stats.normalized_weights(log_w)
    model_fraction = np.array([np.mean(basins == b) for b in range(3)])
    reweighted = np.array([weights[basins == b].sum() for b in range(3)])
    cores = {name: [float(np.mean(mask)), float(weights[mask].sum())] for name, mask in core_masks(phi, psi).items()}
    return model_fraction, reweighted, cores


def basin_configurations(system, center_deg, n, rng, spread_deg=20.0, noise=0.5):
    """n positions (n, N, 3) in the frame of FRAME_ATOMS with (phi, psi) uniform within +-spread of center
    and the other normalized internal coordinates perturbed by N(0, noise^2): labelled test configurations."""
    internal_coordinates = system.info["phi_psi_internal_coordinates"]
    columns = system.info["phi_psi_columns"]
    q_ref = internal_coordinates.to_internal(system.positions[None])
    q_ref = np.asarray(q_ref[0] if isinstance(q_ref, tuple) else q_ref)
    reference_angles = np.array(system.info["phi_psi"].map_positions(system.positions[None])[0])
    q = np.repeat(q_ref, n, axis=0) + noise * rng.standard_normal((n, q_ref.shape[1]))
    for k, column in enumerate(columns):
        target = np.radians(center_deg[k] + rng.uniform(-spread_deg, spread_deg, n))
        q[:, column] = np.angle(np.exp(1j * (target - reference_angles[k])))  # shift by the reference, wrap
    return internal_coordinates.to_cartesian(q)[0]  # canonical frame: rows 0-2 of the Z-matrix = FRAME_ATOMS


def alpha_beta_separation(model, energy, system, n=1000, seed=0):
    """Held-out accuracy of a linear discriminant on the encoder's mean z separating alphaR (phi, psi =
    -63, -43 deg) from C7eq/beta (-120, 130 deg) configurations; 0.5 = no separation."""
    rng = np.random.default_rng(seed)
    alpha = energy.model_coordinates(basin_configurations(system, (-63.0, -43.0), n, rng))
    beta = energy.model_coordinates(basin_configurations(system, (-120.0, 130.0), n, rng))
    z = np.vstack([model.encode(alpha), model.encode(beta)])
    label = np.r_[np.zeros(n), np.ones(n)]
    train = rng.random(2 * n) < 0.5
    mean0, mean1 = z[train & (label == 0)].mean(0), z[train & (label == 1)].mean(0)
    pooled = np.cov(np.vstack([z[train & (label == 0)] - mean0, z[train & (label == 1)] - mean1]).T)
    direction = np.linalg.solve(pooled + 1e-9 * np.eye(len(mean0)), mean1 - mean0)
    threshold = direction @ (mean0 + mean1) / 2
    predicted = (z[~train] @ direction > threshold).astype(float)
    return float(np.mean(predicted == label[~train]))


def run(kind, seed=1, settings=None, progress=True, evaluation_samples=20000):
    """Train one model of ``kind`` (settings: keywords of train_data_free, default SETTINGS[kind]) and
    evaluate it on ``evaluation_samples`` samples; returns a dict of metrics, the model, the
    DataFreeResult and the evaluation arrays (phi, psi, log_w)."""
    system = systems.alanine_dipeptide("obc")
    model, energy = make_target(kind, system, seed)
    start = time.perf_counter()
    result = train_data_free(model, energy, seed=seed, progress=progress, **(settings or SETTINGS[kind]))
    wall = time.perf_counter() - start
    training_evaluations = energy.evaluations
    phi, psi, log_w, mirrored = evaluate_samples(model, energy, system, evaluation_samples, seed + 10_000)
    model_fraction, reweighted, cores = basin_report(phi, psi, log_w)
    metrics = {"energy_evaluations": training_evaluations, "wall_s": wall, "levels": len(result.history),
               "basins_found": int(np.sum(model_fraction >= FOUND_FRACTION)),
               "ess_fraction": float(stats.effective_sample_fraction(log_w)),
               "model_fractions": model_fraction.tolist(), "reweighted_fractions": reweighted.tolist(),
               "alpha_l_cores": cores,  # name: [fraction of model samples, reweighted fraction]
               "mirrored_fraction": mirrored}
    if kind.startswith("encdec"):
        metrics["alpha_beta_separation_accuracy"] = alpha_beta_separation(model, energy, system, seed=seed)
    return metrics, model, result, (phi, psi, log_w)


def basin_fractions_by_beta(model, energy, system, result, n=4000, seed=5):
    """(betas, fractions (levels, 3)) of the model's own samples in each basin at every visited beta,
    from the per-beta parameter snapshots; the model is left with its final parameters."""
    final = model.get_parameters()
    betas = sorted(result.snapshots)
    fractions = []
    for beta in betas:
        model.set_parameters(result.snapshots[beta])
        q = model.sample(n, seed)[0]
        phi, psi, _ = phi_psi(system, energy, q)
        fractions.append(np.bincount(basin_of(phi, psi), minlength=3) / n)
    model.set_parameters(final)
    return np.array(betas), np.array(fractions)


def write_plots(kind, result, samples, out, by_beta=None):
    """PNGs in directory ``out``: Ramachandran free energies of the model's samples and reweighted ones
    (``samples`` = (phi, psi, log_w) as run() returns them), and the beta schedule with, given ``by_beta``
    from basin_fractions_by_beta, the basin fractions at every visited beta. Returns the paths."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    phi, psi, log_w = samples
    kT = 0.00831446261815324 * TEMPERATURE
    paths = [plots.plot_ramachandran(os.path.join(out, f"data_free_alanine_{kind}_model.png"), phi, psi, kT=kT,
                                     title=f"{kind}: model samples, 330 K"),
             plots.plot_ramachandran(os.path.join(out, f"data_free_alanine_{kind}_reweighted.png"), phi, psi,
                                     log_w=log_w, kT=kT, title=f"{kind}: reweighted to exp(-U/kT)")]
    fig, axes = plt.subplots(1, 2 if by_beta is not None else 1, figsize=(10 if by_beta is not None else 5, 3.5),
                             squeeze=False)
    ax = axes[0, 0]
    history = result.history
    ax.plot([h["evaluations"] for h in history], [h["beta"] for h in history], marker=".")
    ax.set_xlabel("energy evaluations")
    ax.set_ylabel("beta (1 = 330 K)")
    ax.set_title("adaptive tempering schedule")
    if by_beta is not None:
        betas, fractions = by_beta
        ax = axes[0, 1]
        for k, basin in enumerate(BASINS):
            ax.semilogy(betas, np.maximum(fractions[:, k], 1e-4), marker=".", label=basin)
        ax.set_xlabel("beta (1 = 330 K)")
        ax.set_ylabel("fraction of model samples")
        ax.set_title("basins at every visited beta")
        ax.legend(fontsize=8)
    fig.tight_layout()
    path = os.path.join(out, f"data_free_alanine_{kind}_schedule.png")
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return paths + [path]
