"""Data-free training: reverse KL against exp(-beta u + v) with adaptive tempering (:class:`DataFreeTrainer`,
:func:`train_data_free`), and forward-KL training on data (:func:`train_forward_kl`)."""
import dataclasses
import json
import os
from dataclasses import dataclass, field

import numpy as np
from tqdm import tqdm

from .. import stats
from .._core import ModelTrainer
from ..files import atomic_save_npz
from .energies import _energy_terms
from .schedule import DataFreeSchedule, cosine_learning_rate


@dataclass
class DataFreeResult:
    """What a run produced: the beta schedule with per-level metrics, and a model per visited beta."""
    history: list = field(default_factory=list)      # dicts: beta, kl, ess_fraction, log_z, loss, evaluations
    snapshots: dict = field(default_factory=dict)    # beta -> parameter vector
    evaluations: int = 0

    @property
    def betas(self):
        return [h["beta"] for h in self.history]


class DataFreeTrainer:
    """One data-free run of ``model`` (SlowFastModel, EncoderDecoderModel or Flow) against ``energy``
    following ``schedule`` (a :class:`DataFreeSchedule`; None: the defaults).

    energy: callable x (n, D) -> (u (n,), forces (n, D)), e.g. :class:`CoordinateEnergy`, or
    -> (u, forces, v, dv/dx) with an untempered log-volume v, e.g. :class:`InternalCoordinateEnergy`:
    the target at beta is then exp(-beta u + v).

    Every batch of model samples is drawn with its own seed: ``seed * 1_000_003`` plus the number of
    batches drawn so far (counting from 1), so a run is reproducible and a resumed one continues the
    stream. ``progress``: a tqdm bar (steps; for tempering, the current beta, KL and ESS).
    ``checkpoint``: a file path; the whole run state (model, optimizer and guard, beta, stream position,
    history, snapshots) is written there atomically after the initial training and after every level,
    and a run started with an existing checkpoint resumes from it, giving bit-identical results to an
    uninterrupted run with the same arguments (a finished checkpoint resumes to the same result).

    :meth:`run` trains and returns a :class:`DataFreeResult`; the model holds the final parameters. The
    phases are methods, for a caller that drives a run itself: :meth:`train_level` (reverse-KL steps and
    the per-level weighted steps at the current beta, then the final phase once beta_target is reached),
    :meth:`level_metrics` (the tempering statistics, history and snapshot of a level),
    :meth:`raise_beta`, :meth:`final_phase`, :meth:`reverse_kl_steps`,
    :meth:`reweighted_forward_kl_steps`, :meth:`save_checkpoint` and :meth:`load_checkpoint`.
    """

    def __init__(self, model, energy, schedule=None, *, seed=0, progress=True, checkpoint=None):
        if schedule is None:
            schedule = DataFreeSchedule()
        if not isinstance(schedule, DataFreeSchedule):
            raise TypeError("schedule must be a DataFreeSchedule or None (settings go as keywords), got %r"
                            % (schedule,))
        self.model, self.energy, self.schedule = model, energy, schedule
        self.progress, self.checkpoint = progress, checkpoint
        guard = dict(schedule.guard) if isinstance(schedule.guard, dict) else bool(schedule.guard)
        self.model_trainer = ModelTrainer(model, {"learning_rate": schedule.learning_rate, "guard": guard,
                                                "drop_largest_losses": int(schedule.drop_largest_losses)})
        self.result = DataFreeResult()
        self.beta = schedule.beta_initial if schedule.tempering else schedule.beta_target
        self.loss = np.nan           # of the last training step, recorded with the next level's metrics
        self.stream = seed * 1_000_003  # the seed of the last batch drawn
        self.bar = None              # run()'s progress bar

    def _next_seed(self):
        self.stream += 1
        return self.stream

    def _count_step(self):
        if self.bar is not None:
            self.bar.update(1)

    def _at_target_with_final_phase(self):
        return self.beta >= self.schedule.beta_target and self.schedule.has_final_phase

    def reverse_kl_steps(self, steps, batch, rates):
        """``steps`` reverse-KL steps of ``batch`` samples at the current beta, the learning rate decayed from
        rates[0] to rates[1] over them; returns the last step's loss (nan for no steps)."""
        loss = np.nan
        for k in range(steps):
            # The rate is set on every step from the step's position in its phase, so a run resumed from a
            # checkpoint (whose trainer starts at learning_rate) sets exactly the same rates.
            self.model_trainer.set_learning_rate(cosine_learning_rate(rates[0], rates[1], k, steps))
            x, _ = self.model_trainer.sample(batch, self._next_seed())
            u, f, v, dv = _energy_terms(self.energy, x)
            # Target exp(-beta u + v): the untempered log-volume v enters as the energy -v / beta.
            report = self.model_trainer.reverse_kl_step(u - v / self.beta, f + dv / self.beta, self.beta)
            loss = report["loss"]
            self.result.evaluations += len(x)
            self._count_step()
        return loss

    def reweighted_forward_kl_steps(self, steps, batch, rates):
        """``steps`` importance-weighted forward-KL steps on ``batch`` of the model's own samples at the current
        beta (weights exp(-beta u + v) / q, self-normalized), rates as in reverse_kl_steps; returns the last
        loss. A batch without a finite energy is skipped (its energies counted, no update)."""
        loss = np.nan
        for k in range(steps):
            self.model_trainer.set_learning_rate(cosine_learning_rate(rates[0], rates[1], k, steps))
            x, log_q = self.model_trainer.sample(batch, self._next_seed())
            u, _, v, _ = _energy_terms(self.energy, x)
            log_w = np.where(np.isfinite(u), -self.beta * u + v - log_q, -np.inf)
            self.result.evaluations += len(x)
            finite = int(np.sum(np.isfinite(log_w)))
            if finite == 0:  # nothing to learn from this batch; a later one will have finite energies
                self._count_step()
                continue
            # The largest 1 % of the weights capped at the smallest of them, so that one sample from the
            # tail cannot carry a whole step (the clipping of the papers' weighted estimates).
            log_w = stats.clip_top_k(log_w, max(1, finite // 100))
            loss = self.model_trainer.forward_kl_step(x, weights=stats.normalized_weights(log_w))["loss"]
            self._count_step()
        return loss

    def final_phase(self):
        """The final phase at beta_target: final_steps reverse-KL steps, then reweighted_steps weighted
        forward-KL steps, final_batch samples each at the final rates; returns the last loss."""
        schedule = self.schedule
        loss = None
        if schedule.final_steps:
            loss = self.reverse_kl_steps(int(schedule.final_steps), schedule.final_batch_size, schedule.final_rates)
        if schedule.reweighted_steps:
            loss = self.reweighted_forward_kl_steps(int(schedule.reweighted_steps), schedule.final_batch_size,
                                                    schedule.final_rates)
        return loss

    def train_level(self, steps):
        """Training at the current beta: ``steps`` reverse-KL steps and reweighted_steps_per_level weighted
        steps (batch samples, learning_rate), then the final phase if beta has reached beta_target.
        Sets and returns the loss recorded with the level's metrics."""
        schedule = self.schedule
        rates = (schedule.learning_rate, schedule.learning_rate)
        self.loss = self.reverse_kl_steps(steps, schedule.batch, rates)
        if schedule.reweighted_steps_per_level:
            self.loss = self.reweighted_forward_kl_steps(int(schedule.reweighted_steps_per_level), schedule.batch,
                                                         rates)
        if self._at_target_with_final_phase():
            self.loss = self.final_phase()
        return self.loss

    def level_metrics(self):
        """The tempering statistics at the current beta on evaluation_batch fresh samples, appended to the
        history with the level's loss, and a parameter snapshot. Returns (u, log q - v) of the samples,
        what the rules that choose the next beta weigh."""
        schedule = self.schedule
        x, log_q = self.model_trainer.sample(schedule.evaluation_batch_size, self._next_seed())
        u, f, v, dv = _energy_terms(self.energy, x)
        # The evaluation batch is also one more training step (its energies are already paid for),
        # except after the final phase, whose decayed rate a full-rate step would undo.
        if not self._at_target_with_final_phase():
            self.model_trainer.set_learning_rate(schedule.learning_rate)
            self.model_trainer.reverse_kl_step(u - v / self.beta, f + dv / self.beta, self.beta)
        self.result.evaluations += len(x)
        # The tempering statistics weigh exp(-beta' u + v) / q for every beta': v is folded into the
        # proposal's log-density, which is exact for all beta'.
        log_q = log_q - v
        t = stats.tempering_statistics(u, log_q, self.beta)
        # Samples with a non-finite energy or log q have weight zero and count in n (as in the integrator);
        # how many there were is recorded.
        self.result.history.append({"beta": self.beta, "kl": t["kl"], "ess_fraction": t["ess_fraction"],
                                    "log_z": t["log_z"], "loss": self.loss, "evaluations": self.result.evaluations,
                                    "weight_zero": t["num_samples"] - t["num_finite"]})
        self.result.snapshots[self.beta] = self.model.get_parameters()
        if self.progress and schedule.tempering and self.bar is not None:  # the baseline has no schedule to show
            self.bar.set_postfix(beta="%.4f" % self.beta, kl="%.3g" % t["kl"], ess="%.3f" % t["ess_fraction"])
        return u, log_q

    def raise_beta(self, u, log_q):
        """Moves beta to the next level by the schedule's rule, from the current level's (u, log q - v)."""
        schedule = self.schedule
        step_rule = stats.adaptive_temperature_step if schedule.rule == "kl" else stats.shrinking_temperature_step
        step = step_rule(u, log_q, self.beta, schedule.beta_target, schedule.max_relative_increase,
                         schedule.max_step, kl_floor=schedule.kl_floor)
        beta = min(schedule.beta_target, self.beta + step)
        if schedule.beta_target - beta < 1e-12:
            beta = schedule.beta_target
        self.beta = beta

    def save_checkpoint(self, next_level):
        """Writes the run state to ``checkpoint`` atomically (a kill never leaves half a checkpoint); a run
        resumed from it continues with level ``next_level``."""
        state = self.model_trainer.get_state()
        arrays = {"parameters": self.model.get_parameters(), "first_moment": state["first_moment"],
                  "second_moment": state["second_moment"]}
        if "guard_history" in state:
            arrays["guard_history"] = state["guard_history"]
        betas = sorted(self.result.snapshots)
        arrays["snapshot_betas"] = np.array(betas, dtype=float)
        arrays["snapshots"] = np.array([self.result.snapshots[b] for b in betas]) if betas else np.zeros((0, 0))
        meta = {"next_level": next_level, "beta": self.beta, "loss": self.loss, "stream": self.stream,
                "step_count": state["step_count"], "guard_counters": state.get("guard_counters"),
                "history": self.result.history, "evaluations": self.result.evaluations}
        arrays["meta"] = np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8)
        atomic_save_npz(self.checkpoint, arrays)  # a kill or a full disk never leaves half a checkpoint

    def load_checkpoint(self):
        """Restores the run state from ``checkpoint``; returns the level to continue with."""
        with np.load(self.checkpoint) as data:
            meta = json.loads(bytes(data["meta"]).decode())
            self.model.set_parameters(data["parameters"])
            state = {"step_count": meta["step_count"], "first_moment": data["first_moment"],
                     "second_moment": data["second_moment"]}
            if "guard_history" in data:
                state["guard_history"] = data["guard_history"]
                state["guard_counters"] = meta["guard_counters"]
            self.model_trainer.set_state(state)
            self.result.snapshots = {float(b): p.copy() for b, p in zip(data["snapshot_betas"], data["snapshots"])}
        self.result.history, self.result.evaluations = meta["history"], meta["evaluations"]
        self.stream, self.beta, self.loss = meta["stream"], meta["beta"], meta["loss"]
        return meta["next_level"]

    def run(self):
        """The whole run (resumed from the checkpoint if it exists): initial_steps at the first beta, then
        per level the metrics and, until beta_target, the next beta and its training. The no-tempering
        baseline is the same loop starting at beta_target: initial steps, final phase, one level of metrics.
        Returns the :class:`DataFreeResult`."""
        schedule = self.schedule
        # The baseline's step count is known in advance (less its reweighted_steps_per_level, which the
        # bar has never counted in its total); a tempered run's is not.
        total = None if schedule.tempering else (
            schedule.initial_steps + int(schedule.final_steps) + int(schedule.reweighted_steps))
        self.bar = tqdm(total=total, desc="data-free training", disable=not self.progress, unit="step")
        saving = self.checkpoint is not None
        if saving and os.path.exists(self.checkpoint):
            start_level = self.load_checkpoint()
        else:
            self.train_level(schedule.initial_steps)
            start_level = 0
            if saving:
                self.save_checkpoint(0)
        for level in range(start_level, schedule.max_levels):
            u, log_q = self.level_metrics()
            if self.beta >= schedule.beta_target:
                if saving:
                    self.save_checkpoint(schedule.max_levels)  # finished: a rerun resumes to the same result
                break
            self.raise_beta(u, log_q)
            self.train_level(schedule.steps_per_level)
            if saving:
                self.save_checkpoint(level + 1)
        self.bar.close()
        self.bar = None
        return self.result


def train_data_free(model, energy, schedule=None, *, seed=0, progress=True, checkpoint=None, **settings):
    """Train ``model`` (SlowFastModel, EncoderDecoderModel or Flow) by reverse KL against exp(-beta u),
    tempering beta up (Stupp & Koutsourelakis; the rules of :class:`DataFreeSchedule`).

    The settings come as a :class:`DataFreeSchedule`, as its fields given as keywords
    (``train_data_free(model, energy, beta_initial=0.05, batch=256)``), or as a schedule with keywords
    that replace some of its fields. energy, seed, progress and checkpoint: see :class:`DataFreeTrainer`.
    Returns a :class:`DataFreeResult`; the model holds the final parameters.
    """
    if schedule is None:
        schedule = DataFreeSchedule(**settings)
    elif settings and isinstance(schedule, DataFreeSchedule):
        schedule = dataclasses.replace(schedule, **settings)
    return DataFreeTrainer(model, energy, schedule, seed=seed, progress=progress, checkpoint=checkpoint).run()


def train_forward_kl(model, data, steps=1000, batch=256, learning_rate=1e-3, seed=0, progress=True, trainer=None):
    """Forward-KL (maximum-likelihood) training on a dataset: training by example, for pre-training a
    model before data-free training or as the comparison the papers draw.

    model: a Flow or a SlowFastModel (both have an exact log q; the encoder-decoder model does not and
    raises). data: configurations (m, dimension) in the model's coordinates. Each step draws ``batch``
    rows uniformly with replacement from a NumPy generator seeded by ``seed``. trainer: an existing
    ModelTrainer to continue (its optimizer state is kept), else a new Adam at ``learning_rate``.
    Returns the list of per-step losses (mean -log q of the batch).
    """
    data = np.asarray(data, dtype=float)
    if data.ndim != 2 or data.shape[1] != model.dimension:
        raise ValueError("data must have shape (m, %d), got %r" % (model.dimension, data.shape))
    if len(data) == 0 or int(steps) < 0 or int(batch) < 1:
        raise ValueError("data must be non-empty, steps >= 0 and batch >= 1, got %d rows, %r, %r"
                         % (len(data), steps, batch))
    finite = np.all(np.isfinite(data), axis=1)
    if not np.all(finite):
        raise ValueError("data: %d of %d rows are not finite (first: row %d)"
                         % (int(np.sum(~finite)), len(data), int(np.argmin(finite))))
    trainer = trainer or ModelTrainer(model, {"learning_rate": learning_rate})
    rng = np.random.default_rng(seed)
    losses = []
    for _ in tqdm(range(int(steps)), desc="forward-KL training", disable=not progress, unit="step"):
        losses.append(trainer.forward_kl_step(data[rng.integers(0, len(data), int(batch))])["loss"])
    return losses
