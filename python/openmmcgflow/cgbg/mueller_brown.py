"""The Mueller-Brown case of the CG Boltzmann generator paper end to end (:func:`run_mueller_brown`).

Chen, Zhao, Eckwert & Zavadlav, appendix B.1 and D: the rescaled Mueller-Brown potential u(x, y) at
k_B T = 1 kJ/mol, coarse-grained by the projection on x, so the CG PMF is exact by quadrature over y
(``systems.mueller_brown("cgbg").info["pmf"]``). The stages:

* **data**: Langevin MD of one particle of mass 1 amu (timestep 0.1 ps, friction 0.1/ps: the paper's
  dimensionless units read as ps), several independent trajectories started uniformly in [10, 50]^2
  (:func:`generate_dataset`, one directory each, concatenated); case ``mb_biased`` adds the paper's bias
  V(x) = -4 exp(-(x - 32)^2 / (2 * 5^2)) in a force group of its own, so the recorded forces are the
  unbiased ones. The System is u(x, y) + z^2 / 2 (a soft spring keeps z bounded and the 0.1 ps step
  stable; z is not part of the CG coordinate). The same data serve force matching and the flow. The
  default budget is the paper's MD length (10 trajectories of 10^7 steps) recorded every 500 steps
  instead of 10 (2 x 10^5 frames): the barrier is crossed in bursts, so the basin populations, and with
  them the mean force across the barrier, converge with the number of steps, not of frames.
* **the CG coordinate**: u = (x - center) / scale. The CG System's particle coordinate *is* u (its
  x component), so the PMFForce, the flow (whose splines live in [-5, 5]) and the reweighting all work
  in u; by the chain rule the mean force along u is scale * F_x (the force map of the projection keeps
  F_x only; the y and z components are zeroed). Free energies are unchanged by the affine change of
  variable (its Jacobian is a constant); profiles and metrics are drawn along x.
* **force matching**: a PMFForce over the coordinate (``addCoordinate(0, 0)``), a softplus MLP fitted by
  ``PMFTrainer.fit_forces`` (Adam with exponential decay, a 90/10 split, the best-validation parameters
  kept). Its first layer is initialized with its units spread over the data (:func:`coordinate_ensemble`),
  the role the paper's RBF centers play.
* **flow**: a 1-D rational-quadratic spline flow (``"coupling": "elementwise"``) over u, forward KL on
  the data's u (for ``mb_biased`` the biased data: a biased proposal that the reweighting corrects),
  AdamW with a cosine schedule, best validation kept.
* or, with ``proposal="cnf"``, the paper's continuous normalizing flow over u (:func:`.train_cnf`: three
  hidden layers of 96, a 16-dimensional time embedding, conditional flow matching; app. C.1), its outputs
  in the case directory's ``cnf/``, the PMF shared with the coupling run.
* **reweighting**: flow proposals priced by the CG System inside OpenMM (:func:`.reweight`, the top
  ``clip_fraction`` of the weights dropped, 1 % as the paper) and the x profile compared with the exact
  one (:func:`x_profiles`: JS divergence and PMF error as :func:`.profile_metrics` computes them, without
  its bootstrap, which costs ~10 s per profile of 10^6 proposals), plus :func:`max_profile_error`: the
  largest |F - F_exact| (kT) over the populated bins (exact F within ``populated_kT`` of its minimum)
  after the best weighted shift, for the reweighted profile (clipped and not), the raw flow and the
  learned PMF itself. Here the weights hardly vary and vary smoothly with x, so dropping the top 1 %
  removes whole stretches of x (the tails the flow undersamples; for ``mb_biased`` every sample where
  the bias is ~0): the ``*_unclipped`` numbers are the estimator without that bias.

Every stage is cached under ``out``: the datasets resume chunk by chunk, the PMF fit resumes from its
checkpoint, the trained flow is stored; a file name carries a digest of what produced it.

    python benchmarks/cg_bg.py --case mb_biased --seed 1
"""
import hashlib
import json
import math
import os
import time
from dataclasses import asdict, dataclass

import numpy as np
import openmm

from .. import _core as core
from .. import stats, systems
from ..files import atomic_save_npz, atomic_write_json
from ..coordinates import SliceMap
from ..plugin import PMFForce
from ..pmf import PMFTrainer
from .data import generate_dataset
from .cnf import sampling_cost, train_cnf
from .flow import cg_flow_model_bytes
from .force_matching import standardized_ensemble
from .reweighting import cg_system, plot_reweighting, reweight
from .storage import load_dataset

KT = 1.0                                 # kJ/mol, the paper's k_B T = 1
TEMPERATURE = KT / systems.KB            # K
TIMESTEP = 0.1                           # ps
FRICTION = 0.1                           # 1/ps
MASS = 1.0                               # amu
BIAS_HEIGHT, BIAS_CENTER, BIAS_WIDTH = 4.0, 32.0, 5.0   # V(x) = -4 exp(-(x - 32)^2 / (2 * 5^2)), kJ/mol, nm
START_BOX = (10.0, 50.0)                 # trajectories start uniformly in START_BOX^2
AXIS = (10.0, 55.0, 90)                  # x profiles: 0.5 nm bins
CASES = {"mb_unbiased": {"biased": False}, "mb_biased": {"biased": True}}
PROPOSALS = ("coupling", "cnf")


# ---- the system -------------------------------------------------------------------------------

def _expression():
    p, num = systems._MB_CGBG, systems._num
    return " + ".join(
        f"{num(A)}*exp({num(a)}*(x-{num(x0)})^2 + {num(b)}*(x-{num(x0)})*(y-{num(y0)}) + {num(c)}*(y-{num(y0)})^2)"
        for A, a, b, c, x0, y0 in zip(p["A"], p["a"], p["b"], p["c"], p["x0"], p["y0"]))


def mb_system():
    """One particle (1 amu) in u(x, y) + z^2 / 2 (kJ/mol, nm), the MB force in force group 0."""
    force = openmm.CustomExternalForce(_expression() + " + 0.5*z^2")
    force.addParticle(0, [])
    force.setForceGroup(0)
    system = openmm.System()
    system.addParticle(MASS)
    system.addForce(force)
    return system


def mb_bias_force(group=1):
    """The paper's umbrella bias along x, V(x) = -4 exp(-(x - 32)^2 / (2 * 5^2)), in force group ``group``."""
    force = openmm.CustomExternalForce("-%r*exp(-(x-%r)^2/%r)" % (BIAS_HEIGHT, BIAS_CENTER, 2 * BIAS_WIDTH ** 2))
    force.addParticle(0, [])
    force.setForceGroup(int(group))
    return force


def mb_bias_energy(x):
    """The bias V(x) of :func:`mb_bias_force` (kJ/mol)."""
    x = np.asarray(x, dtype=float)
    return -BIAS_HEIGHT * np.exp(-(x - BIAS_CENTER) ** 2 / (2 * BIAS_WIDTH ** 2))


def exact_free_energy(x):
    """The exact CG PMF along x in units of kT (quadrature over y; minimum 0 over ``x``)."""
    return systems.mueller_brown("cgbg").info["pmf"](np.asarray(x, dtype=float)) / KT


def bin_probabilities(free_energy, axis=AXIS, points_per_bin=20):
    """Probability of each bin of ``axis`` under exp(-F(x)) (``free_energy``: a function of x in kT), by
    midpoint quadrature with ``points_per_bin`` points; sums to 1 over the axis."""
    low, high, bins = float(axis[0]), float(axis[1]), int(axis[2])
    width = (high - low) / (bins * points_per_bin)
    x = low + (np.arange(bins * points_per_bin) + 0.5) * width
    f = np.asarray(free_energy(x), dtype=float)
    if f.shape != x.shape:
        raise ValueError("free_energy: expected one value per point, got shape %s for %d points" % (f.shape, x.size))
    density = np.exp(-(f - np.min(f)))
    p = density.reshape(bins, points_per_bin).sum(axis=1)
    return p / p.sum()


def reference_histogram(axis=AXIS, points_per_bin=20):
    """The exact probability of each x bin (the reference of :func:`.profile_metrics`)."""
    return bin_probabilities(exact_free_energy, axis, points_per_bin)


def populated_bins(reference_probabilities, threshold_kT=4.0):
    """Bins whose reference free energy -ln p is within ``threshold_kT`` of its minimum (a bool mask)."""
    p = np.asarray(reference_probabilities, dtype=float)
    with np.errstate(divide="ignore"):
        f = -np.log(p / p.max())
    return f < float(threshold_kT)


def _free_energy(p):
    with np.errstate(divide="ignore"):
        f = -np.log(np.asarray(p, dtype=float))
    finite = np.isfinite(f)
    if finite.any():
        f -= f[finite].min()
    return f


def x_profiles(x, log_w, reference_probabilities, axis=AXIS, **more_log_w):
    """Histograms of the values ``x`` on ``axis`` against ``reference_probabilities``: unweighted ('raw'),
    weighted by ``log_w`` ('reweighted') and by each further keyword's log-weights (e.g. ``unclipped=``).
    The dict of :func:`.profile_metrics` (``centers``, ``edges``, ``axis``, ``kT`` = 1, ``reference`` and one
    entry per profile with ``probability``, ``free_energy`` (kT, minimum 0, +inf where empty), ``js``,
    ``pmf_error``, ``num_out_of_range``), without the bootstrap errors; :func:`.plot_reweighting` draws it."""
    low, high, bins = float(axis[0]), float(axis[1]), int(axis[2])
    ref = np.asarray(reference_probabilities, dtype=float)
    if ref.shape != (bins,) or not np.all(np.isfinite(ref)) or np.any(ref < 0) or not ref.sum() > 0:
        raise ValueError("reference_probabilities: expected %d non-negative finite values with a positive sum, "
                         "got shape %s" % (bins, ref.shape))
    ref = ref / ref.sum()
    edges = np.linspace(low, high, bins + 1)
    result = {"centers": 0.5 * (edges[1:] + edges[:-1]), "edges": edges, "axis": (low, high, bins), "kT": 1.0,
              "reference": {"probability": ref, "free_energy": _free_energy(ref)}}
    values = np.asarray(x, dtype=float)
    for name, weights in [("raw", None), ("reweighted", log_w)] + sorted(more_log_w.items()):
        h = stats.histogram_1d(values, None if weights is None else np.asarray(weights, dtype=float),
                               (low, high, bins), False)
        p = np.asarray(h["probability"], dtype=float)
        result[name] = {"probability": p, "free_energy": _free_energy(p), "js": stats.js_divergence(p, ref),
                        "pmf_error": stats.pmf_error(p, ref), "num_out_of_range": int(h["num_out_of_range"])}
    return result


def max_profile_error(free_energy, reference_free_energy, mask, weights=None):
    """max |F - F_ref + c| over the bins of ``mask`` (kT), c the shift that minimizes the weighted squared
    difference there (``weights``: e.g. the reference probabilities; uniform by default). A masked bin
    where F is not finite (empty) makes the error +inf. Returns (max error, shift c)."""
    f = np.asarray(free_energy, dtype=float)
    ref = np.asarray(reference_free_energy, dtype=float)
    m = np.asarray(mask, dtype=bool)
    if f.shape != ref.shape or m.shape != ref.shape:
        raise ValueError("free_energy, reference_free_energy, mask: expected one shape, got %s, %s, %s"
                         % (f.shape, ref.shape, m.shape))
    if not m.any():
        raise ValueError("mask: selects no bin")
    if not np.all(np.isfinite(ref[m])):
        raise ValueError("reference_free_energy: not finite on the masked bins")
    if not np.all(np.isfinite(f[m])):
        return float("inf"), float("nan")
    w = np.ones(int(m.sum())) if weights is None else np.asarray(weights, dtype=float)[m]
    if not (np.all(w >= 0) and w.sum() > 0):
        raise ValueError("weights: expected non-negative weights with a positive sum on the masked bins")
    d = ref[m] - f[m]
    shift = float(np.sum(w * d) / np.sum(w))
    return float(np.max(np.abs(d - shift))), shift


def to_cg_coordinate(x, center, scale):
    """u = (x - center) / scale."""
    return (np.asarray(x, dtype=float) - center) / scale


def from_cg_coordinate(u, center, scale):
    """x = center + scale * u."""
    return center + scale * np.asarray(u, dtype=float)


def cg_training_data(positions, forces, center, scale):
    """Positions and mean-force targets of the CG System whose particle coordinate is u: (n, 1, 3) arrays
    [u, 0, 0] and [scale * F_x, 0, 0] (dU/du = scale dU/dx; the projection's force map keeps F_x)."""
    x = np.asarray(positions, dtype=float)
    f = np.asarray(forces, dtype=float)
    if x.ndim != 3 or x.shape[1:] != (1, 3) or f.shape != x.shape:
        raise ValueError("positions, forces: expected (n, 1, 3) arrays of one shape, got %s and %s"
                         % (x.shape, f.shape))
    u = np.zeros_like(x)
    target = np.zeros_like(f)
    u[:, 0, 0] = to_cg_coordinate(x[:, 0, 0], center, scale)
    target[:, 0, 0] = scale * f[:, 0, 0]
    return u, target


def coordinate_pmf_force():
    """A PMFForce over particle 0's x (the CG coordinate u), no model yet."""
    force = PMFForce()
    force.addCoordinate(0, 0)
    return force


def pmf_energy(model, u):
    """U_PMF (kJ/mol) of the model of a :func:`coordinate_pmf_force` at the coordinate values ``u``."""
    u = np.asarray(u, dtype=float).ravel()
    positions = np.zeros((u.size, 1, 3))
    positions[:, 0, 0] = u
    energies, _ = PMFTrainer(model, coordinate_pmf_force(), {"epochs": 1}).predict(positions)
    return np.asarray(energies, dtype=float)


def _digest(*parts):
    h = hashlib.sha256()
    for part in parts:
        if isinstance(part, np.ndarray):
            h.update(np.ascontiguousarray(part, dtype="<f8").tobytes())
        else:
            h.update(json.dumps(part, sort_keys=True, default=str).encode())
    return h.hexdigest()[:12]


# ---- the stages -------------------------------------------------------------------------------

def simulate(path_prefix, *, biased, num_trajectories, frames, record_every, equilibration_steps, seed,
             progress=False):
    """The MD datasets: ``num_trajectories`` directories ``<path_prefix>_traj<k>``, each a trajectory of
    ``frames`` frames (every ``record_every`` steps) after ``equilibration_steps``, started uniformly in
    [10, 50]^2 (positions from ``seed``). Returns (positions (n, 1, 3), forces (n, 1, 3), bias energies
    (n,), MD steps), the trajectories concatenated."""
    rng = np.random.default_rng([int(seed), 7])
    starts = rng.uniform(START_BOX[0], START_BOX[1], size=(num_trajectories, 2))
    system = mb_system()
    positions, forces, bias, steps = [], [], [], 0
    for k, (x0, y0) in enumerate(starts):
        path = "%s_traj%d" % (path_prefix, k)
        generate_dataset(system, [[x0, y0, 0.0]], SliceMap(1, [0]), path, temperature=TEMPERATURE,
                         num_frames=frames, record_every=record_every, chunk_frames=min(frames, 50000),
                         timestep=TIMESTEP, friction=FRICTION, seed=1000 * int(seed) + k + 1,
                         bias_forces=[mb_bias_force(1)] if biased else (), platform="Reference",
                         equilibration_steps=equilibration_steps, progress=progress)
        data = load_dataset(path)
        if len(data) < frames:
            raise RuntimeError("%s: holds %d finite frames, expected %d" % (path, len(data), frames))
        positions.append(data.positions[:frames])
        forces.append(data.forces[:frames])
        bias.append(np.asarray(data.bias_energy)[:frames])
        steps += frames * record_every + equilibration_steps
    return np.concatenate(positions), np.concatenate(forces), np.concatenate(bias), steps


def coordinate_ensemble(widths, u, *, num_members=1, activation="softplus", seed=1, transition=0.125):
    """An MLPEnsemble over one coordinate whose first-layer units are spread over the data: unit j turns
    on (its activation's kink) at c_j, evenly spaced over [min u, max u], with slope +-1 / (t_j L), L the
    range and t_j log-uniform in [transition / 2, 2 transition] (random signs and t_j from ``seed``): a
    basis that covers the whole range from the start, as the paper's RBF features (centers spread over
    [10, 50], width 5) do; an MLP initialized for the standardized coordinate puts its kinks near the mean
    and learns the sparsely sampled barrier and second well slowly. The deeper layers are
    ``MLPEnsemble``'s initialization."""
    u = np.asarray(u, dtype=float).ravel()
    low, high = float(np.min(u)), float(np.max(u))
    span = high - low if high > low else 1.0
    base = core.MLPEnsemble(list(widths), num_members=num_members, activation=activation, seed=seed).to_dict()
    rng = np.random.default_rng([int(seed), 11])
    weights = [[np.asarray(w, dtype=float) for w in member] for member in base["weights"]]
    biases = [[np.asarray(b, dtype=float).ravel() for b in member] for member in base["biases"]]
    units = int(widths[1])
    for m in range(len(weights)):
        centers = low + (np.arange(units) + rng.uniform(0.0, 1.0, units)) * span / units
        slopes = rng.choice([-1.0, 1.0], units) / (span * transition * np.exp(rng.uniform(-math.log(2), math.log(2),
                                                                                            units)))
        weights[m][0] = slopes[:, None]
        biases[m][0] = -slopes * centers
    return core.MLPEnsemble.from_arrays(weights, biases, activation, "identity")


def fit_pmf(u_positions, u_forces, *, hidden, activation, options, seed, num_members=1, init="spread",
            checkpoint=None, progress=False):
    """Force matching in the CG coordinate: a standardized MLP [1, *hidden, 1] over u (``num_members`` of
    them, each on its own split; the PMFForce evaluates their mean) fitted by ``PMFTrainer.fit_forces``.
    Returns (PMFForce with its model set, the MLPEnsemble, history)."""
    force = coordinate_pmf_force()
    if init == "spread":
        model = coordinate_ensemble([1, *hidden, 1], u_positions[:, 0, 0], num_members=int(num_members),
                                    activation=activation, seed=seed)
    elif init == "standardized":
        model = standardized_ensemble([1, *hidden, 1], u_positions[:, 0, :1], num_members=int(num_members),
                                      activation=activation, seed=seed)
    else:
        raise ValueError("init: expected 'spread' or 'standardized', got %r" % (init,))
    trainer = PMFTrainer(model, force, dict(options))
    history = trainer.fit_forces(u_positions, u_forces, progress=progress, checkpoint=checkpoint)
    force.setModelBytes(model.to_bytes())
    return force, model, history


def train_flow(u, *, epochs, batch_size, seed, flow_config, options, validation_fraction=0.1, cache=None,
               progress=False):
    """A 1-D spline flow over the values ``u`` (n,) by forward KL: AdamW with a cosine schedule over all
    ``epochs``, a 90/10 split (``seed``), the best-validation parameters returned. ``cache``: an .npz
    path; when it exists the stored flow is returned (its name should say what trained it).
    Returns (flow, history)."""
    config = dict(flow_config, dimension=1, coupling="elementwise", seed=int(seed))
    flow = core.Flow(config)
    if cache is not None and os.path.exists(cache):
        with np.load(cache) as stored:
            flow.set_parameters(stored["parameters"])
            history = json.loads(bytes(stored["history"]).decode())
        return flow, history
    y = np.asarray(u, dtype=float).reshape(-1, 1)
    n = len(y)
    num_validation = int(round(validation_fraction * n))
    if num_validation < 1 or n - num_validation < 1:
        raise ValueError("u: %d values are too few for a %g validation split" % (n, validation_fraction))
    order = np.random.default_rng(int(seed)).permutation(n)
    validation, train = np.sort(order[:num_validation]), np.sort(order[num_validation:])
    steps_per_epoch = -(-len(train) // int(batch_size))
    train_options = dict(options, optimizer="adamw", cosine_steps=int(epochs) * steps_per_epoch)
    trainer = core.ModelTrainer(flow, train_options)
    history = {"train_loss": [], "validation_nll": [], "best_epoch": -1, "best_validation_nll": float("inf"),
               "num_train": int(len(train)), "num_validation": int(num_validation)}
    best = None
    start = time.perf_counter()
    from tqdm.auto import tqdm
    for epoch in tqdm(range(int(epochs)), desc="MB flow", unit="epoch", disable=not progress):
        shuffled = train[np.random.default_rng([int(seed), epoch]).permutation(len(train))]
        losses = [trainer.forward_kl_step(y[shuffled[i:i + int(batch_size)]])["loss"]
                  for i in range(0, len(shuffled), int(batch_size))]
        nll = float(-np.mean(flow.log_prob(y[validation])))
        history["train_loss"].append(float(np.mean(losses)))
        history["validation_nll"].append(nll)
        if best is None or nll < history["best_validation_nll"]:
            best = flow.get_parameters().copy()
            history["best_epoch"], history["best_validation_nll"] = epoch, nll
    history["seconds"] = time.perf_counter() - start
    flow.set_parameters(best)
    if cache is not None:
        atomic_save_npz(cache, {"parameters": best,
                                "history": np.frombuffer(json.dumps(history).encode(), dtype=np.uint8)})
    return flow, history


# ---- the pipeline -----------------------------------------------------------------------------

@dataclass
class MuellerBrownSettings:
    """The budget of one run (the defaults are the full budget)."""
    case: str = "mb_unbiased"
    seed: int = 1
    num_trajectories: int = 10       # independent trajectories (the paper: 10 of 10^7 steps)
    frames_per_trajectory: int = 20000
    record_every: int = 500          # MD steps between frames (the paper: 10 of 10^7 steps per trajectory)
    equilibration_steps: int = 10000
    cg_center: float = 30.0          # u = (x - cg_center) / cg_scale
    cg_scale: float = 10.0
    fm_hidden: tuple = (64, 64)
    fm_activation: str = "softplus"
    fm_init: str = "spread"          # first-layer kinks spread over the data ("standardized": at the mean)
    fm_members: int = 1
    fm_epochs: int = 30
    fm_batch_size: int = 256
    fm_learning_rate: float = 3e-3
    fm_learning_rate_decay: float = 0.9
    flow_layers: int = 4
    flow_bins: int = 16
    flow_epochs: int = 20
    flow_batch_size: int = 256
    flow_learning_rate: float = 3e-3
    proposals: int = 1_000_000       # 10^6: a 0.5 nm bin 4 kT up holds ~10^3 of them (10^5: ~0.1 kT noise)
    clip_fraction: float = 0.01      # top fraction of the weights dropped (the paper: 1 %)
    populated_kT: float = 4.0        # the max-error metrics cover bins with exact F below this (kT)
    axis: tuple = AXIS
    proposal: str = "coupling"       # "coupling" (1-D spline flow, forward KL) or "cnf" (flow matching)
    cnf_hidden: int = 96             # the paper's MB vector field: 3 hidden layers of 96 (app. C.1)
    cnf_layers: int = 3
    cnf_epochs: int = 200
    cnf_learning_rate: float = 3e-4  # the paper's C.2: cosine from 3e-4 to 1e-5
    cost_samples: int = 10_000       # samples timed with their log q (time per 10^4 samples)


def _check_settings(settings):
    if not isinstance(settings, MuellerBrownSettings):
        raise TypeError("settings: expected a MuellerBrownSettings, got %s" % type(settings).__name__)
    if settings.case not in CASES:
        raise ValueError("case: expected one of %s, got %r" % (sorted(CASES), settings.case))
    if settings.proposal not in PROPOSALS:
        raise ValueError("proposal: expected one of %s, got %r" % (PROPOSALS, settings.proposal))
    for name in ("seed", "cnf_hidden", "cnf_layers", "cnf_epochs", "cost_samples", "num_trajectories", "frames_per_trajectory", "record_every", "fm_epochs", "fm_batch_size",
                 "fm_members",
                 "flow_layers", "flow_bins", "flow_epochs", "flow_batch_size", "proposals"):
        value = getattr(settings, name)
        if isinstance(value, bool) or int(value) != value or int(value) < 1:
            raise ValueError("%s: expected an integer >= 1, got %r" % (name, value))
    if settings.fm_init not in ("spread", "standardized"):
        raise ValueError("fm_init: expected 'spread' or 'standardized', got %r" % (settings.fm_init,))
    if int(settings.equilibration_steps) < 0:
        raise ValueError("equilibration_steps: expected an integer >= 0, got %r" % (settings.equilibration_steps,))
    if not (math.isfinite(settings.cg_scale) and settings.cg_scale > 0):
        raise ValueError("cg_scale: expected a positive number, got %r" % (settings.cg_scale,))
    if not math.isfinite(settings.cg_center):
        raise ValueError("cg_center: expected a finite number, got %r" % (settings.cg_center,))
    if not 0.0 <= settings.clip_fraction < 1.0:
        raise ValueError("clip_fraction: expected a fraction in [0, 1), got %r" % (settings.clip_fraction,))
    if not settings.populated_kT > 0:
        raise ValueError("populated_kT: expected a positive number, got %r" % (settings.populated_kT,))
    low, high, bins = settings.axis
    if not (high > low and int(bins) >= 2):
        raise ValueError("axis: expected (low, high, bins) with low < high and bins >= 2, got %r" % (settings.axis,))


def run_mueller_brown(settings, out, *, emit=None, progress=False):
    """Run one case of :data:`CASES` with ``settings`` (a :class:`MuellerBrownSettings`) under the directory
    ``out``; ``emit(name, value, unit)`` receives every number as it is measured. Returns a dict of them
    (and writes it, with the profiles and the clipping curve, to ``<case dir>/results.json``; the PNGs sit
    beside it)."""
    _check_settings(settings)
    results = {}

    def record(name, value, unit):
        results[name] = {"value": value, "unit": unit}
        if emit is not None:
            emit(name, value, unit)

    biased = CASES[settings.case]["biased"]
    center, scale = float(settings.cg_center), float(settings.cg_scale)
    axis = (float(settings.axis[0]), float(settings.axis[1]), int(settings.axis[2]))
    out = os.path.abspath(out)
    pmf_dir = os.path.join(out, "%s_seed%d" % (settings.case, settings.seed))
    # the coupling flow's outputs sit beside the PMF (as always); a CNF's in cnf/, sharing the PMF
    case_dir = pmf_dir if settings.proposal == "coupling" else os.path.join(pmf_dir, "cnf")
    os.makedirs(case_dir, exist_ok=True)
    t_total = time.perf_counter()

    # ---- data ----
    t = time.perf_counter()
    prefix = os.path.join(out, "data", "mb_%s_every%d_eq%d_seed%d" % ("biased" if biased else "unbiased",
                          settings.record_every, settings.equilibration_steps, settings.seed))
    x_data, f_data, bias_energy, md_steps = simulate(
        prefix, biased=biased, num_trajectories=int(settings.num_trajectories),
        frames=int(settings.frames_per_trajectory), record_every=int(settings.record_every),
        equilibration_steps=int(settings.equilibration_steps), seed=int(settings.seed), progress=progress)
    record("wall_s_data", time.perf_counter() - t, "s")
    record("md_steps", int(md_steps), "steps")
    record("md_ns", md_steps * TIMESTEP * 1e-3, "ns")
    record("energy_evaluations", int(len(x_data)), "force evaluations (MD frames)")
    u_positions, u_forces = cg_training_data(x_data, f_data, center, scale)

    # ---- force matching ----
    t = time.perf_counter()
    fm_options = {"epochs": int(settings.fm_epochs), "batch_size": int(settings.fm_batch_size),
                  "learning_rate": float(settings.fm_learning_rate),
                  "learning_rate_decay": float(settings.fm_learning_rate_decay), "max_gradient_norm": 1.0,
                  "validation_fraction": 0.1, "seed": int(settings.seed)}
    fm_tag = _digest(u_positions[:, 0, 0], u_forces[:, 0, 0], fm_options, list(settings.fm_hidden),
                     settings.fm_activation, settings.fm_init, int(settings.fm_members))
    pmf_force, pmf_model, fm_history = fit_pmf(
        u_positions, u_forces, hidden=tuple(settings.fm_hidden), activation=settings.fm_activation,
        options=fm_options, seed=int(settings.seed), num_members=int(settings.fm_members), init=settings.fm_init,
        progress=progress,
        checkpoint=os.path.join(pmf_dir, "pmf_checkpoint_%s.npz" % fm_tag))
    record("wall_s_force_matching", time.perf_counter() - t, "s")
    record("fm_best_validation_loss", float(np.mean(fm_history["best_validation_loss"])), "(kJ/mol per u)^2")
    with open(os.path.join(case_dir, "pmf_force.xml"), "w") as handle:
        handle.write(openmm.XmlSerializer.serialize(pmf_force))

    # ---- flow ----
    t = time.perf_counter()
    flow_config = {"num_layers": int(settings.flow_layers), "num_bins": int(settings.flow_bins), "bound": 5.0}
    flow_options = {"learning_rate": float(settings.flow_learning_rate), "weight_decay": 1e-5,
                    "final_learning_rate": 1e-5, "max_gradient_norm": 100.0}
    u_flow = u_positions[:, 0, 0]
    if settings.proposal == "coupling":
        flow_tag = _digest(u_flow, flow_config, flow_options, int(settings.flow_epochs), int(settings.flow_batch_size),
                           int(settings.seed))
        flow, flow_history = train_flow(u_flow, epochs=int(settings.flow_epochs),
                                        batch_size=int(settings.flow_batch_size), seed=int(settings.seed),
                                        flow_config=flow_config, options=flow_options,
                                        cache=os.path.join(case_dir, "flow_%s.npz" % flow_tag), progress=progress)
        record("wall_s_flow", time.perf_counter() - t, "s")
    else:
        cnf_config = {"hidden": int(settings.cnf_hidden), "num_layers": int(settings.cnf_layers)}
        cnf_tag = _digest(u_flow, cnf_config, int(settings.cnf_epochs), float(settings.cnf_learning_rate),
                          int(settings.flow_batch_size), int(settings.seed))
        flow, flow_history = train_cnf(u_flow, epochs=int(settings.cnf_epochs), batch_size=int(settings.flow_batch_size),
                                       seed=int(settings.seed), config=cnf_config,
                                       options={"learning_rate": float(settings.cnf_learning_rate)},
                                       validation_samples=5000,   # 1-D solves are cheap
                                       checkpoint=os.path.join(case_dir, "cnf_%s" % cnf_tag), progress=progress)
        record("wall_s_flow", float(flow_history["seconds"]), "s")   # flow matching alone, without validation solves
        record("wall_s_flow_validation", float(flow_history["validation_seconds"]), "s")
    record("flow_best_validation_nll", flow_history["best_validation_nll"], "nats (u)")
    cost = sampling_cost(flow, int(settings.cost_samples), seed=int(settings.seed), num_threads=2)
    record("wall_s_per_1e4_samples", cost["seconds"] * 1e4 / cost["samples"], "s (2 threads, with log q)")
    if cost["evaluations_per_sample"] is not None:
        record("vector_field_evaluations_per_sample", cost["evaluations_per_sample"], "evaluations")
        record("ode_failed_samples", cost["failed"], "samples")
    model = cg_flow_model_bytes(flow, core.PositionMap.cartesian(1, [(0, 0)]),
                                info={"case": settings.case, "cg_center": center, "cg_scale": scale})
    with open(os.path.join(case_dir, "cg_flow.model"), "wb") as handle:
        handle.write(model)

    # ---- inference: reweighting inside OpenMM ----
    system = cg_system(1, pmf_force, masses=MASS)
    with open(os.path.join(case_dir, "cg_system.xml"), "w") as handle:
        handle.write(openmm.XmlSerializer.serialize(system))
    t = time.perf_counter()
    barrier = (BIAS_CENTER - center) / scale        # x < 32: the main basin's side of the barrier
    result = reweight(system, model, int(settings.proposals), temperature=TEMPERATURE, seed=int(settings.seed),
                      clip_fraction=float(settings.clip_fraction), positions=np.zeros((1, 3)),
                      observable=lambda p: p[:, 0, 0] < barrier)
    record("wall_s_inference", time.perf_counter() - t, "s")
    x = from_cg_coordinate(result.positions[:, 0, 0], center, scale)
    reference = reference_histogram(axis)
    metrics = x_profiles(x, result.log_w_clipped, reference, axis, unclipped=result.log_w)
    unclipped = metrics["unclipped"]
    record("js_x", metrics["reweighted"]["js"], "nats")
    record("pmf_error_x", metrics["reweighted"]["pmf_error"], "kT^2")
    record("js_x_raw", metrics["raw"]["js"], "nats")
    record("pmf_error_x_raw", metrics["raw"]["pmf_error"], "kT^2")
    record("ess_fraction", result.ess_fraction, "fraction")
    record("ess_fraction_unclipped", result.ess_fraction_raw, "fraction")
    record("js_x_unclipped", unclipped["js"], "nats")
    record("pmf_error_x_unclipped", unclipped["pmf_error"], "kT^2")

    mask = populated_bins(reference, settings.populated_kT)
    ref_f = metrics["reference"]["free_energy"]
    model_p = bin_probabilities(lambda xs: pmf_energy(pmf_model, to_cg_coordinate(xs, center, scale)) / KT, axis)
    model_f = _free_energy(model_p)
    profiles = {"reweighted": metrics["reweighted"]["free_energy"], "unclipped": unclipped["free_energy"],
                "raw": metrics["raw"]["free_energy"], "pmf_model": model_f}
    errors = {name: max_profile_error(f, ref_f, mask, reference) for name, f in profiles.items()}
    record("pmf_max_error_kT", errors["reweighted"][0], "kT")
    record("pmf_max_error_kT_unclipped", errors["unclipped"][0], "kT")
    record("pmf_max_error_kT_raw", errors["raw"][0], "kT")
    record("pmf_model_max_error_kT", errors["pmf_model"][0], "kT")
    # The flow's own density (quadrature of log q, no sampling noise) against what it was trained to
    # sample: the exact PMF, plus the bias for mb_biased.
    flow_target_f = (lambda xs: exact_free_energy(xs) + mb_bias_energy(xs) / KT) if biased else exact_free_energy
    flow_target = bin_probabilities(flow_target_f, axis)
    flow_f = _free_energy(bin_probabilities(
        lambda xs: -flow.log_prob(to_cg_coordinate(xs, center, scale).reshape(-1, 1)), axis))
    record("flow_max_error_kT", max_profile_error(flow_f, _free_energy(flow_target),
                                                  populated_bins(flow_target, settings.populated_kT), flow_target)[0],
           "kT")
    populated = metrics["centers"][mask]
    record("populated_x_min", float(populated.min()), "nm")
    record("populated_x_max", float(populated.max()), "nm")
    below = (x < BIAS_CENTER).astype(float)
    record("fraction_x_below_32_exact", float(reference[metrics["centers"] < BIAS_CENTER].sum()), "fraction")
    record("fraction_x_below_32", float(stats.weighted_mean(result.log_w_clipped, below)[0]), "fraction")
    record("fraction_x_below_32_unclipped", float(stats.weighted_mean(result.log_w, below)[0]), "fraction")
    record("fraction_x_below_32_data", float(np.mean(x_data[:, 0, 0] < BIAS_CENTER)), "fraction")
    record("wall_s_total", time.perf_counter() - t_total, "s")

    # ---- plots ----
    plot_reweighting(os.path.join(case_dir, "x_profile.png"), metrics, result, xlabel="x (nm)",
                     title="%s: x" % settings.case)
    plot_profiles(os.path.join(case_dir, "free_energy.png"), metrics["centers"], ref_f, profiles, errors, mask,
                  title=settings.case)
    summary = {"settings": asdict(settings), "results": results, "clipping_curve": result.clipping_curve,
               "fm_history": {"train_loss": np.asarray(fm_history["train_loss"]).tolist(),
                              "validation_loss": np.asarray(fm_history["validation_loss"]).tolist()},
               "flow_history": flow_history,
               "profiles": {"centers": metrics["centers"].tolist(), "exact": ref_f.tolist(),
                            "populated": mask.tolist(),
                            **{name: np.asarray(f).tolist() for name, f in profiles.items()}}}
    atomic_write_json(os.path.join(case_dir, "results.json"), summary, indent=1, default=float)
    return results


def plot_profiles(path, centers, exact, profiles, errors, mask, title=None):
    """Free-energy profiles along x (kT): exact, raw flow, reweighted and the learned PMF, each shifted
    as :func:`max_profile_error` aligns it; the populated range shaded; their differences from exact."""
    from ..plots import plt, save_figure
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    ax, diff = axes
    ok = np.isfinite(exact)
    ax.plot(centers[ok], exact[ok], "k-", lw=2, label="exact")
    labels = {"raw": ("raw flow", "--"), "reweighted": ("reweighted", "-"),
              "unclipped": ("reweighted, no clipping", "-."), "pmf_model": ("learned PMF", ":")}
    for name, f in profiles.items():
        label, style = labels[name]
        f = np.asarray(f, dtype=float)
        error, shift = errors[name]
        shift = 0.0 if not math.isfinite(shift) else shift
        good = np.isfinite(f)
        ax.plot(centers[good], f[good] + shift, style, label="%s (max err %.3g kT)" % (label, error))
        both = good & ok & mask
        diff.plot(centers[both], f[both] + shift - exact[both], style, marker=".", ms=3, label=label)
    half = 0.5 * (centers[1] - centers[0]) if len(centers) > 1 else 0.5
    for a in axes:
        for c in centers[mask]:
            a.axvspan(c - half, c + half, color="0.92", lw=0, zorder=0)
        a.set_xlabel("x (nm)")
    ax.set_ylabel("free energy (kT)")
    ax.set_ylim(-0.5, min(15.0, float(np.nanmax(exact[ok])) + 0.5))
    ax.legend(fontsize=8)
    diff.axhline(0.0, color="k", lw=0.8)
    diff.set_ylabel("F - F_exact (kT), populated bins")
    diff.legend(fontsize=8)
    if title:
        ax.set_title(title)
    return save_figure(fig, path)
