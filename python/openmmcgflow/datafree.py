"""Data-free coarse-graining: reverse-KL training of a latent model with adaptive tempering.

The method of Stupp & Koutsourelakis (and the tempering rule of Schoeberl, Zabaras &
Koutsourelakis): a :class:`SlowFastModel` (or a plain :class:`Flow`) is trained by reverse KL
against exp(-beta U) using only energies and forces of an ordinary ``openmm.System``; beta rises
from about 0 to ``beta_target`` in steps chosen so that the relative KL increase stays below
``max_relative_increase`` (rule "kl", Eq. 23) or by shrinking ``max_step`` by 0.6 until it does
(rule "shrink"). A model snapshot is kept for every visited beta.
"""
import json
import os
from dataclasses import dataclass, field

import numpy as np
from tqdm import tqdm

from . import stats
from ._core import FlowTrainer
from .energy import EnergyTarget


class CoordinateEnergy:
    """U and forces of flow coordinates x (n, D) placed into chosen flat coordinates of a System.

    ``active``: flat indices into the (N, 3) positions that x fills (the rest stay at ``positions``).
    Every configuration priced counts as one energy evaluation (``evaluations``).

    ``energy_regularization``: None, or (e_high, e_max) for EnergyTarget's regularization (energies
    above e_high grow logarithmically and are capped at e_max, forces scaled to match), which keeps
    clashing samples of an untrained model from dominating the reverse-KL gradient.
    """

    def __init__(self, system, positions, active, platform="Reference", threads=1, energy_regularization=None):
        self.target = EnergyTarget(system, platform=platform, threads=threads)
        if energy_regularization is not None:
            e_high, e_max = energy_regularization
            self.target.set_energy_regularization(e_high, e_max)
        self.positions = np.asarray(positions, dtype=float).reshape(-1, 3)
        self.active = np.asarray(active, dtype=int)
        self.evaluations = 0

    def __call__(self, x):
        x = np.asarray(x, dtype=float)
        batch = np.repeat(self.positions[None], len(x), axis=0).reshape(len(x), -1)
        batch[:, self.active] = x
        energies, forces, finite = self.target.evaluate(batch.reshape(len(x), -1, 3))
        self.evaluations += len(x)
        forces = forces.reshape(len(x), -1)[:, self.active]
        return np.where(finite, energies, np.inf), forces


def _wrap_angle(angle):
    """angle (radians, any shape) mapped to (-pi, pi]."""
    return np.angle(np.exp(1j * angle))


class InternalCoordinateEnergy:
    """Reduced energy of internal coordinates of a molecule: u(q) = U(x(q)) / kT, for train_data_free.

    q (n, 3N-6) are the (normalized) internal coordinates of ``internal_coordinates`` (a
    :class:`InternalCoordinates`, e.g. ``systems.alanine_dipeptide().info["internal_coordinates"]``);
    x(q) is its NeRF build in the canonical frame, which removes the six rigid-body degrees of freedom.
    ``temperature`` (K) sets kT, so beta = 1 in train_data_free is this temperature.

    Returns (u, -du/dq, v, dv/dq) with v = log|det dx/dq| (the log-volume of the map): the density of q
    at inverse temperature beta is exp(-beta u(q) + v(q)) / Z. The volume term is not tempered, which is
    why it is returned apart from u; train_data_free handles it (see there). Non-finite or clashing
    configurations get u = inf (dropped by the trainer); with ``energy_regularization`` = (e_high, e_max)
    in kJ/mol, EnergyTarget's logarithmic regularization is applied first.

    ``open_torsions``: None, or {column: cut} for circular columns (cut in that column's coordinate,
    radians in [-pi, pi)). Each such torsion is then an open coordinate y on the real line,
    theta = c + pi tanh(y / pi) with c = cut + pi (wrapped): theta covers the circle once, minus the cut.
    A model with a density on R (a Gaussian decoder) then has a proper density on the circle, which a
    Gaussian put directly on a periodic coordinate does not (reverse KL widens it without bound where
    the torsion is free). The model coordinates are then y in those columns; v gains the log-Jacobian
    sum log(1 - tanh^2(y / pi)). Put the cut on a barrier: density near it is squeezed into tanh's tails.
    """

    def __init__(self, system, internal_coordinates, temperature, platform="Reference", threads=1,
                 energy_regularization=None, open_torsions=None):
        if not float(temperature) > 0:
            raise ValueError("temperature must be > 0 K, got %r" % (temperature,))
        if internal_coordinates.num_atoms != system.getNumParticles():
            raise ValueError("internal_coordinates: cover %d atoms but the System has %d particles"
                             % (internal_coordinates.num_atoms, system.getNumParticles()))
        self.target = EnergyTarget(system, platform=platform, threads=threads)
        if energy_regularization is not None:
            self.target.set_energy_regularization(*energy_regularization)
        self.internal = internal_coordinates
        self.kT = 0.00831446261815324 * float(temperature)  # kJ/mol
        self.evaluations = 0
        self._open_columns, self._open_centers = self._check_open_torsions(open_torsions)

    def _check_open_torsions(self, open_torsions):
        if open_torsions is None:
            return np.zeros(0, dtype=int), np.zeros(0)
        if not isinstance(open_torsions, dict):
            raise ValueError("open_torsions: must be None or a dict {column: cut}, got %r" % (type(open_torsions),))
        circular = set(int(c) for c in self.internal.zmatrix.circular_columns)
        columns, centers = [], []
        for column, cut in sorted(open_torsions.items()):
            if int(column) not in circular:
                raise ValueError("open_torsions: column %r is not a circular column (those are %s)"
                                 % (column, sorted(circular)))
            if not (np.isfinite(cut) and -np.pi <= cut < np.pi):
                raise ValueError("open_torsions: the cut of column %r must be in [-pi, pi), got %r" % (column, cut))
            columns.append(int(column))
            centers.append(_wrap_angle(float(cut) + np.pi))
        return np.array(columns, dtype=int), np.array(centers)

    def _internal(self, y):
        """(q, dq/dy on the open columns, log|dq/dy|, its gradient) of model coordinates y (n, 3N-6)."""
        q = np.array(y, dtype=float)
        if len(self._open_columns) == 0:
            return q, None, np.zeros(len(q)), None
        t = np.tanh(q[:, self._open_columns] / np.pi)
        q[:, self._open_columns] = _wrap_angle(self._open_centers + np.pi * t)
        derivative = 1.0 - t * t
        with np.errstate(divide="ignore"):  # |y| beyond ~60: tanh = 1 in doubles, on the cut; v = -inf, u = inf
            log_jacobian = np.sum(np.log(derivative), axis=1)
        return q, derivative, log_jacobian, -2.0 * t / np.pi

    def cartesian(self, q):
        """Positions (n, N, 3) in nm of model coordinates (internal coordinates, torsions opened if asked) q (n, 3N-6)."""
        return self.internal.to_cartesian(self._internal(q)[0])[0]

    def model_coordinates(self, x):
        """Model coordinates (m, 3N-6) of positions (m, N, 3): the inverse of cartesian() up to rigid motion
        (a torsion exactly on its cut maps to +-inf)."""
        q = np.array(self.internal.to_internal(np.asarray(x, dtype=float))[0])
        if len(self._open_columns):
            offset = _wrap_angle(q[:, self._open_columns] - self._open_centers)
            with np.errstate(divide="ignore"):
                q[:, self._open_columns] = np.pi * np.arctanh(offset / np.pi)
        return q

    def __call__(self, y):
        y = np.ascontiguousarray(y, dtype=float)
        q, dq_dy, log_jacobian, dlog_jacobian = self._internal(y)
        x, log_volume = self.internal.to_cartesian(q)
        energies, forces, finite = self.target.evaluate(x)
        self.evaluations += len(q)
        finite = finite & np.isfinite(log_volume) & np.isfinite(log_jacobian)
        u = np.where(finite, energies / self.kT, np.inf)
        forces = np.where(finite[:, None, None], forces, 0.0)
        du = self.internal.to_cartesian_backward(q, dL_dx=-forces / self.kT)
        dv = self.internal.to_cartesian_backward(q, dL_dlogdet=np.ones(len(q)))
        if dq_dy is not None:  # the chain rule through theta(y), and the open map's own log-Jacobian
            du[:, self._open_columns] *= dq_dy
            dv[:, self._open_columns] = dv[:, self._open_columns] * dq_dy + dlog_jacobian
            log_volume = log_volume + log_jacobian
        return u, -du, np.where(finite, log_volume, 0.0), np.where(finite[:, None], dv, 0.0)


class CartesianFrameEnergy:
    """Reduced energy u = U / kT of the 3N - 6 free Cartesian coordinates of a molecule in a body frame.

    The frame (as the embedded-physics paper fixes six coordinates): ``frame_atoms`` = (a, b, c) with a at
    the origin, b on the +x axis and c in the xy-plane with y > 0. Model coordinates d (n, 3N - 6) are
    displacements (nm) of the free coordinates from the reference structure ``positions`` placed in that
    frame, so a model whose output starts near 0 starts near the reference. ``temperature`` (K) sets kT.

    Returns (u, -du/dd, v, dv/dd) with the log-volume v = log(x_b^2 y_c) of the frame (integrating out
    the translation and rotation of a Cartesian density leaves the factor x_b^2 y_c), untempered as in
    InternalCoordinateEnergy. Configurations with x_b <= 0 or y_c <= 0 lie outside the frame: u = inf.
    """

    def __init__(self, system, positions, frame_atoms, temperature, platform="Reference", threads=1):
        if not float(temperature) > 0:
            raise ValueError("temperature must be > 0 K, got %r" % (temperature,))
        n = system.getNumParticles()
        a, b, c = (int(i) for i in frame_atoms)
        if len({a, b, c}) != 3 or not all(0 <= i < n for i in (a, b, c)):
            raise ValueError("frame_atoms must be three different particle indices in [0, %d), got %r" % (n, frame_atoms))
        positions = np.asarray(positions, dtype=float).reshape(-1, 3)
        if len(positions) != n:
            raise ValueError("positions: %d particles but the System has %d" % (len(positions), n))
        self.target = EnergyTarget(system, platform=platform, threads=threads)
        self.kT = 0.00831446261815324 * float(temperature)
        self.frame_atoms = (a, b, c)
        self.reference = self.to_frame(positions[None])[0]
        fixed = {3 * a, 3 * a + 1, 3 * a + 2, 3 * b + 1, 3 * b + 2, 3 * c + 2}
        self.active = np.array([k for k in range(3 * n) if k not in fixed])
        self.reference.reshape(-1)[sorted(fixed)] = 0.0  # exactly, not to round-off
        self._xb = int(np.searchsorted(self.active, 3 * b))
        self._yc = int(np.searchsorted(self.active, 3 * c + 1))
        self.evaluations = 0

    def to_frame(self, x):
        """Positions (m, N, 3) moved into the body frame (rotation and translation only)."""
        x = np.asarray(x, dtype=float)
        a, b, c = self.frame_atoms
        e1 = x[:, b] - x[:, a]
        e1 /= np.linalg.norm(e1, axis=1, keepdims=True)
        e2 = x[:, c] - x[:, a]
        e2 -= np.sum(e2 * e1, axis=1, keepdims=True) * e1
        e2 /= np.linalg.norm(e2, axis=1, keepdims=True)
        basis = np.stack([e1, e2, np.cross(e1, e2)], axis=2)  # columns: the frame's axes
        return np.einsum("mij,mjk->mik", x - x[:, a:a + 1], basis)

    def model_coordinates(self, x):
        """Model coordinates d (m, 3N-6) of positions (m, N, 3): their free frame coordinates minus the
        reference's (the inverse of cartesian() up to rigid motion)."""
        return self.to_frame(x).reshape(len(x), -1)[:, self.active] - self.reference.reshape(-1)[self.active]

    def cartesian(self, d):
        """Positions (m, N, 3) in the frame of model coordinates d (m, 3N - 6)."""
        d = np.asarray(d, dtype=float)
        x = np.repeat(self.reference.reshape(1, -1), len(d), axis=0)
        x[:, self.active] += d
        return x.reshape(len(d), -1, 3)

    def __call__(self, d):
        x = self.cartesian(d)
        energies, forces, finite = self.target.evaluate(x)
        self.evaluations += len(d)
        flat = x.reshape(len(d), -1)
        xb, yc = flat[:, self.active[self._xb]], flat[:, self.active[self._yc]]
        finite = finite & (xb > 0) & (yc > 0)
        u = np.where(finite, energies / self.kT, np.inf)
        f = np.where(finite[:, None], forces.reshape(len(d), -1)[:, self.active] / self.kT, 0.0)
        safe_xb, safe_yc = np.where(finite, xb, 1.0), np.where(finite, yc, 1.0)
        v = np.where(finite, 2 * np.log(safe_xb) + np.log(safe_yc), 0.0)
        dv = np.zeros_like(f)
        dv[:, self._xb] = np.where(finite, 2 / safe_xb, 0.0)
        dv[:, self._yc] = np.where(finite, 1 / safe_yc, 0.0)
        return u, f, v, dv


def _energy_terms(energy, x):
    """(u, forces, v, dv/dx) of an energy callable returning (u, forces) or (u, forces, v, dv/dx)."""
    out = energy(x)
    if len(out) == 2:
        return out[0], out[1], 0.0, 0.0
    if len(out) == 4:
        return out
    raise ValueError("energy: must return (u, forces) or (u, forces, log_volume, log_volume_gradient), got %d values"
                     % len(out))


def train_forward_kl(model, data, steps=1000, batch=256, learning_rate=1e-3, seed=0, progress=True, trainer=None):
    """Forward-KL (maximum-likelihood) training on a dataset: training by example, for pre-training a
    model before data-free training or as the comparison the papers draw.

    model: a Flow or a SlowFastModel (both have an exact log q; the encoder-decoder model does not and
    raises). data: configurations (m, dimension) in the model's coordinates. Each step draws ``batch``
    rows uniformly with replacement from a NumPy generator seeded by ``seed``. trainer: an existing
    FlowTrainer to continue (its optimizer state is kept), else a new Adam at ``learning_rate``.
    Returns the list of per-step losses (mean -log q of the batch).
    """
    data = np.asarray(data, dtype=float)
    if data.ndim != 2 or data.shape[1] != model.dimension:
        raise ValueError("data must have shape (m, %d), got %r" % (model.dimension, data.shape))
    if len(data) == 0 or int(steps) < 0 or int(batch) < 1:
        raise ValueError("data must be non-empty, steps >= 0 and batch >= 1, got %d rows, %r, %r"
                         % (len(data), steps, batch))
    trainer = trainer or FlowTrainer(model, {"learning_rate": learning_rate})
    rng = np.random.default_rng(seed)
    losses = []
    for _ in tqdm(range(int(steps)), desc="forward-KL training", disable=not progress, unit="step"):
        losses.append(trainer.forward_kl_step(data[rng.integers(0, len(data), int(batch))])["loss"])
    return losses


@dataclass
class DataFreeResult:
    """What a run produced: the beta schedule with per-level metrics, and a model per visited beta."""
    history: list = field(default_factory=list)      # dicts: beta, kl, ess_fraction, log_z, loss, evaluations, step
    snapshots: dict = field(default_factory=dict)    # beta -> parameter vector
    evaluations: int = 0

    @property
    def betas(self):
        return [h["beta"] for h in self.history]


def train_data_free(model, energy, beta_target=1.0, beta_initial=0.01, initial_steps=2000, steps_per_level=100,
                    batch=500, evaluation_batch=None, tempering=True, rule="kl", max_relative_increase=0.1,
                    max_step=0.05, kl_floor=1e-3, final_steps=0, final_batch=None, final_learning_rate=None,
                    reweighted_steps=0, reweighted_steps_per_level=0,
                    learning_rate=1e-3, guard=True, drop_largest_losses=0, seed=0, progress=True, max_levels=10000,
                    checkpoint=None):
    """Train ``model`` (SlowFastModel or Flow) by reverse KL against exp(-beta U), tempering beta up.

    energy: callable x (n, D) -> (U (n,), forces (n, D)), e.g. :class:`CoordinateEnergy`, or
    -> (U, forces, v, dv/dx) with an untempered log-volume v, e.g. :class:`InternalCoordinateEnergy`:
    the target at beta is then exp(-beta U + v).
    tempering=False is the baseline: ``initial_steps`` steps at beta_target from the start (pass the
    tempered run's step count to compare at equal cost).
    kl_floor: the smallest KL estimate the relative increase is divided by (see stats.relative_kl_increase).
    final_steps, final_batch, final_learning_rate: a final phase of ``final_steps`` steps at beta_target
    once the schedule reaches it (also after the no-tempering baseline), with ``final_batch`` samples
    per step (default ``batch``) and the learning rate ``final_learning_rate``: None (= learning_rate),
    a number (constant) or a pair (start, end) decayed from start to end by a cosine over the phase.
    Why: at beta_target the weight of a minor mode is set by its few samples per batch; plain steps
    leave it lagging behind the schedule and then random-walking, while larger batches with a
    decaying rate let it relax and then average the noise out (double well, examples/
    data_free_double_well.py: P(x1 < 0) within 0.005 of exact for 32 of 32 seeds with an exact
    NumPy energy and 7 of 8 with OpenMM's, against 2 of 4 with plain final steps).
    checkpoint: a file path; the whole run state (model, optimizer and guard, beta, random-stream
    position, history, snapshots) is written there atomically after the initial training and after
    every level, and a run started with an existing checkpoint resumes from it, giving bit-identical
    results to an uninterrupted run with the same arguments.
    reweighted_steps: after the final phase, this many steps of importance-weighted forward KL at
    beta_target (each: final_batch samples of the model, self-normalized weights exp(-beta U + v) / q with
    the largest 1 % capped, one weighted maximum-likelihood step; rates as final_learning_rate). Not part of the papers' method: it
    is still data-free (the same energies), but mass-covering, which corrects the weights of separated
    modes that reverse-KL gradients (local, through the few samples between the modes) barely move.
    Needs a model with an exact log q (not the encoder-decoder model).
    reweighted_steps_per_level: the same weighted forward-KL steps (``batch`` samples, rate
    ``learning_rate``) after the reverse-KL steps of every level, so that the weights of modes stay
    right while they separate and the importance weights can still see them (also after the initial
    steps at beta_initial).
    guard: True (the papers' gradient guard: skip above 10x, clip above 5x the median norm of the last 50
    updates), False, or a dict of FlowTrainer guard options, e.g. {"max_consecutive_skips": 10} so that a
    lasting rise of the gradient scale is clipped instead of stalling training with every update skipped.
    drop_largest_losses: per step, the k samples with the largest losses are left out of the update.
    Returns a :class:`DataFreeResult`; the model holds the final parameters.
    """
    if rule not in ("kl", "shrink"):
        raise ValueError("rule must be 'kl' or 'shrink', got %r" % (rule,))
    if not 0 < beta_initial <= beta_target:
        raise ValueError("beta_initial must be in (0, beta_target], got %r" % (beta_initial,))
    for name, value in (("initial_steps", initial_steps), ("steps_per_level", steps_per_level), ("batch", batch)):
        if int(value) < 1:
            raise ValueError("%s must be >= 1, got %r" % (name, value))
    evaluation_batch = int(evaluation_batch or batch)
    final_batch = int(final_batch or batch)
    if int(reweighted_steps) < 0 or int(reweighted_steps_per_level) < 0:
        raise ValueError("reweighted_steps and reweighted_steps_per_level must be >= 0, got %r and %r"
                         % (reweighted_steps, reweighted_steps_per_level))
    if final_batch < 1 or int(final_steps) < 0:
        raise ValueError("final_batch must be >= 1 and final_steps >= 0, got %r and %r" % (final_batch, final_steps))
    if final_learning_rate is None:
        final_rates = (learning_rate, learning_rate)
    elif np.ndim(final_learning_rate) == 0:
        final_rates = (float(final_learning_rate),) * 2
    else:
        final_rates = tuple(float(r) for r in final_learning_rate)
        if len(final_rates) != 2:
            raise ValueError("final_learning_rate must be None, a number or a (start, end) pair, got %r"
                             % (final_learning_rate,))
    if not all(np.isfinite(r) and r >= 0 for r in final_rates):
        raise ValueError("final_learning_rate must be finite and >= 0, got %r" % (final_learning_rate,))
    trainer = FlowTrainer(model, {"learning_rate": learning_rate,
                                  "guard": dict(guard) if isinstance(guard, dict) else bool(guard),
                                  "drop_largest_losses": int(drop_largest_losses)})
    result = DataFreeResult()
    beta = beta_initial if tempering else beta_target
    stream = [seed * 1_000_003]

    def next_seed():
        stream[0] += 1
        return stream[0]

    def train(steps, beta, bar, size=batch, rates=(learning_rate, learning_rate)):
        # The rate is set on every step from the step's position in its phase, so a run resumed from a
        # checkpoint (whose trainer starts at learning_rate) sets exactly the same rates.
        loss = np.nan
        for k in range(steps):
            trainer.set_learning_rate(rates[1] + 0.5 * (rates[0] - rates[1]) * (1 + np.cos(np.pi * k / steps)))
            x, _ = trainer.sample(size, next_seed())
            u, f, v, dv = _energy_terms(energy, x)
            # Target exp(-beta u + v): the untempered log-volume v enters as the energy -v / beta.
            report = trainer.reverse_kl_step(u - v / beta, f + dv / beta, beta)
            loss = report["loss"]
            result.evaluations += len(x)
            if bar is not None:
                bar.update(1)
        return loss

    def reweighted(steps, beta, bar, size, rates):
        loss = np.nan
        for k in range(steps):
            trainer.set_learning_rate(rates[1] + 0.5 * (rates[0] - rates[1]) * (1 + np.cos(np.pi * k / steps)))
            x, log_q = trainer.sample(size, next_seed())
            u, _, v, _ = _energy_terms(energy, x)
            log_w = np.where(np.isfinite(u), -beta * u + v - log_q, -np.inf)
            result.evaluations += len(x)
            finite = int(np.sum(np.isfinite(log_w)))
            if finite == 0:  # nothing to learn from this batch; a later one will have finite energies
                if bar is not None:
                    bar.update(1)
                continue
            # The largest 1 % of the weights capped at the smallest of them, so that one sample from the
            # tail cannot carry a whole step (the clipping of the papers' weighted estimates).
            log_w = stats.clip_top_k(log_w, max(1, finite // 100))
            loss = trainer.forward_kl_step(x, weights=stats.normalized_weights(log_w))["loss"]
            if bar is not None:
                bar.update(1)
        return loss

    def level_training(steps, beta, bar):
        loss = train(steps, beta, bar)
        if reweighted_steps_per_level:
            loss = reweighted(int(reweighted_steps_per_level), beta, bar, batch, (learning_rate, learning_rate))
        return loss

    def final_phase(beta, bar):
        loss = train(int(final_steps), beta, bar, final_batch, final_rates) if final_steps else None
        if reweighted_steps:
            loss = reweighted(int(reweighted_steps), beta, bar, final_batch, final_rates)
        return loss

    has_final = bool(final_steps) or bool(reweighted_steps)

    def level_metrics(beta, update=True):
        x, log_q = trainer.sample(evaluation_batch, next_seed())
        u, f, v, dv = _energy_terms(energy, x)
        # The evaluation batch is also one more training step (its energies are already paid for),
        # except after the final phase, whose decayed rate a full-rate step would undo.
        if update:
            trainer.set_learning_rate(learning_rate)
            trainer.reverse_kl_step(u - v / beta, f + dv / beta, beta)
        result.evaluations += len(x)
        # The tempering statistics weigh exp(-beta' u + v) / q for every beta': v is folded into the
        # proposal's log-density, which is exact for all beta'.
        return u, log_q - v

    bar = tqdm(total=initial_steps + int(final_steps) + int(reweighted_steps) if not tempering else None, desc="data-free training", disable=not progress,
               unit="step")
    if not tempering:
        loss = level_training(initial_steps, beta, bar)
        if has_final:
            loss = final_phase(beta, bar)
        u, log_q = level_metrics(beta, update=not has_final)
        t = stats.tempering_statistics(u, log_q, beta)
        result.history.append({"beta": beta, "kl": t["kl"], "ess_fraction": t["ess_fraction"], "log_z": t["log_z"],
                               "loss": loss, "evaluations": result.evaluations})
        result.snapshots[beta] = model.get_parameters()
        bar.close()
        return result

    def save(next_level, beta, loss):
        state = trainer.get_state()
        arrays = {"parameters": model.get_parameters(), "first_moment": state["first_moment"],
                  "second_moment": state["second_moment"]}
        if "guard_history" in state:
            arrays["guard_history"] = state["guard_history"]
        betas = sorted(result.snapshots)
        arrays["snapshot_betas"] = np.array(betas, dtype=float)
        arrays["snapshots"] = np.array([result.snapshots[b] for b in betas]) if betas else np.zeros((0, 0))
        meta = {"next_level": next_level, "beta": beta, "loss": loss, "stream": stream[0],
                "step_count": state["step_count"], "guard_counters": state.get("guard_counters"),
                "history": result.history, "evaluations": result.evaluations}
        arrays["meta"] = np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8)
        tmp = checkpoint + ".tmp.npz"
        np.savez(tmp, **arrays)
        os.replace(tmp, checkpoint)  # atomic: a kill never leaves half a checkpoint

    start_level = None
    if checkpoint is not None and os.path.exists(checkpoint):
        with np.load(checkpoint) as data:
            meta = json.loads(bytes(data["meta"]).decode())
            model.set_parameters(data["parameters"])
            state = {"step_count": meta["step_count"], "first_moment": data["first_moment"],
                     "second_moment": data["second_moment"]}
            if "guard_history" in data:
                state["guard_history"] = data["guard_history"]
                state["guard_counters"] = meta["guard_counters"]
            trainer.set_state(state)
            result.snapshots = {float(b): p.copy() for b, p in zip(data["snapshot_betas"], data["snapshots"])}
        result.history, result.evaluations = meta["history"], meta["evaluations"]
        stream[0], beta, loss, start_level = meta["stream"], meta["beta"], meta["loss"], meta["next_level"]
    if start_level is None:
        loss = level_training(initial_steps, beta, bar)
        if beta >= beta_target and has_final:  # beta_initial == beta_target: no level reaches it later
            loss = final_phase(beta, bar)
        start_level = 0
        if checkpoint is not None:
            save(0, beta, loss)
    for level in range(start_level, max_levels):
        u, log_q = level_metrics(beta, update=not (beta >= beta_target and has_final))
        t = stats.tempering_statistics(u, log_q, beta)
        result.history.append({"beta": beta, "kl": t["kl"], "ess_fraction": t["ess_fraction"], "log_z": t["log_z"],
                               "loss": loss, "evaluations": result.evaluations})
        result.snapshots[beta] = model.get_parameters()
        if progress:
            bar.set_postfix(beta="%.4f" % beta, kl="%.3g" % t["kl"], ess="%.3f" % t["ess_fraction"])
        if beta >= beta_target:
            if checkpoint is not None:
                save(max_levels, beta, loss)  # finished: a rerun resumes to the same result
            break
        step_rule = stats.adaptive_temperature_step if rule == "kl" else stats.shrinking_temperature_step
        step = step_rule(u, log_q, beta, beta_target, max_relative_increase, max_step, kl_floor=kl_floor)
        beta = min(beta_target, beta + step)
        if beta_target - beta < 1e-12:
            beta = beta_target
        loss = level_training(steps_per_level, beta, bar)
        if beta >= beta_target and has_final:
            loss = final_phase(beta, bar)
        if checkpoint is not None:
            save(level + 1, beta, loss)
    bar.close()
    return result
