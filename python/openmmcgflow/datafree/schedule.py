"""The settings of a data-free training run (:class:`DataFreeSchedule`) and its cosine learning-rate decay."""
from dataclasses import dataclass
from typing import Optional, Tuple, Union

import numpy as np

from .._core import CosineDecaySchedule


def cosine_learning_rate(start, end, step, steps):
    """The learning rate of step ``step`` (0-based) of ``steps``: decayed by a cosine from ``start`` (step 0)
    towards ``end`` (reached after the last step). With start == end it is that constant rate. The core's
    CosineDecaySchedule, the one ModelTrainer's "cosine_steps" option uses, restarted for each phase."""
    return CosineDecaySchedule(start, steps, end)(step)


@dataclass
class DataFreeSchedule:
    """Every training setting of :func:`train_data_free` (the random seed, the progress bar and the
    checkpoint file belong to the run, not to the schedule). Checked on construction (and by
    ``dataclasses.replace``); a ValueError names the offending argument.

    Tempering: beta rises from ``beta_initial`` to ``beta_target``. ``initial_steps`` reverse-KL steps at
    beta_initial, then per level ``steps_per_level``; each level's beta step follows ``rule``: "kl" (the
    relative KL increase stays below ``max_relative_increase``, Eq. 23 of Stupp & Koutsourelakis, at most
    ``max_step``) or "shrink" (``max_step`` shrunk by 0.6 until it does, the embedded-physics paper's rule).
    ``kl_floor``: the smallest KL estimate the relative increase is divided by (see
    stats.relative_kl_increase). ``max_levels`` caps the number of levels (the level at beta_initial is
    the first). ``tempering=False`` is the baseline: ``initial_steps`` steps at beta_target from the start
    (pass the tempered run's step count to compare at equal cost).

    Batches: ``batch`` samples per step; ``evaluation_batch`` (default ``batch``) samples for each level's
    statistics (KL, ESS, log Z, the next beta), which are also one more training step, except after the
    final phase.

    Final phase at beta_target, once the schedule reaches it (also after the baseline): ``final_steps``
    reverse-KL steps with ``final_batch`` samples (default ``batch``) at ``final_learning_rate``: None
    (= learning_rate), a number (constant) or a pair (start, end) decayed by a cosine over the phase. Why:
    at beta_target the weight of a minor mode is set by its few samples per batch; plain steps leave it
    lagging behind the schedule and then random-walking, while larger batches with a decaying rate let it
    relax and then average the noise out (double well, examples/data_free_double_well.py: P(x1 < 0)
    within 0.005 of exact for 32 of 32 seeds with an exact NumPy energy and 7 of 8 with OpenMM's,
    against 2 of 4 with plain final steps).

    ``reweighted_steps``: after the final phase, this many steps of importance-weighted forward KL at
    beta_target (each: final_batch samples of the model, self-normalized weights exp(-beta U + v) / q
    with the largest 1 % capped, one weighted maximum-likelihood step; rates as final_learning_rate). Not
    part of the papers' method: it is still data-free (the same energies), but mass-covering, which
    corrects the weights of separated modes that reverse-KL gradients (local, through the few samples
    between the modes) barely move. Needs a model with an exact log q (not the encoder-decoder model).
    ``reweighted_steps_per_level``: the same weighted forward-KL steps (``batch`` samples, rate
    ``learning_rate``) after the reverse-KL steps of every level, so that the weights of modes stay right
    while they separate and the importance weights can still see them (also after the initial steps).

    Optimizer: Adam at ``learning_rate``. ``guard``: True (the papers' gradient guard: skip above 10x,
    clip above 5x the median norm of the last 50 updates), False, or a dict of ModelTrainer guard options,
    e.g. {"max_consecutive_skips": 10} so that a lasting rise of the gradient scale is clipped instead of
    stalling training with every update skipped. ``drop_largest_losses``: per step, the k samples with
    the largest losses are left out of the update.
    """
    beta_target: float = 1.0
    beta_initial: float = 0.01
    initial_steps: int = 2000
    steps_per_level: int = 100
    batch: int = 500
    evaluation_batch: Optional[int] = None
    tempering: bool = True
    rule: str = "kl"
    max_relative_increase: float = 0.1
    max_step: float = 0.05
    kl_floor: float = 1e-3
    final_steps: int = 0
    final_batch: Optional[int] = None
    final_learning_rate: Union[None, float, Tuple[float, float]] = None
    reweighted_steps: int = 0
    reweighted_steps_per_level: int = 0
    learning_rate: float = 1e-3
    guard: Union[bool, dict] = True
    drop_largest_losses: int = 0
    max_levels: int = 10000

    def __post_init__(self):
        if self.rule not in ("kl", "shrink"):
            raise ValueError("rule must be 'kl' or 'shrink', got %r" % (self.rule,))
        if not (np.isfinite(self.beta_target) and self.beta_target > 0):
            raise ValueError("beta_target must be finite and > 0, got %r" % (self.beta_target,))
        if not 0 < self.beta_initial <= self.beta_target:
            raise ValueError("beta_initial must be in (0, beta_target], got %r" % (self.beta_initial,))
        for name in ("max_relative_increase", "max_step", "kl_floor"):
            value = getattr(self, name)
            if not (np.isfinite(value) and value > 0):
                raise ValueError("%s must be finite and > 0, got %r" % (name, value))
        if not (np.isfinite(self.learning_rate) and self.learning_rate >= 0):
            raise ValueError("learning_rate must be finite and >= 0, got %r" % (self.learning_rate,))
        if int(self.max_levels) < 1:
            raise ValueError("max_levels must be >= 1, got %r" % (self.max_levels,))
        if int(self.drop_largest_losses) < 0:
            raise ValueError("drop_largest_losses must be >= 0, got %r" % (self.drop_largest_losses,))
        for name in ("initial_steps", "steps_per_level", "batch"):
            if int(getattr(self, name)) < 1:
                raise ValueError("%s must be >= 1, got %r" % (name, getattr(self, name)))
        if int(self.reweighted_steps) < 0 or int(self.reweighted_steps_per_level) < 0:
            raise ValueError("reweighted_steps and reweighted_steps_per_level must be >= 0, got %r and %r"
                             % (self.reweighted_steps, self.reweighted_steps_per_level))
        if self.evaluation_batch_size < 1:
            raise ValueError("evaluation_batch must be >= 1 (or None for batch), got %r" % (self.evaluation_batch,))
        if self.final_batch_size < 1 or int(self.final_steps) < 0:
            raise ValueError("final_batch must be >= 1 and final_steps >= 0, got %r and %r"
                             % (self.final_batch_size, self.final_steps))
        rates = self.final_rates
        if len(rates) != 2:
            raise ValueError("final_learning_rate must be None, a number or a (start, end) pair, got %r"
                             % (self.final_learning_rate,))
        if not all(np.isfinite(r) and r >= 0 for r in rates):
            raise ValueError("final_learning_rate must be finite and >= 0, got %r" % (self.final_learning_rate,))

    @property
    def evaluation_batch_size(self):
        """Samples per level's statistics: evaluation_batch, or batch when that is not set."""
        return int(self.batch if self.evaluation_batch is None else self.evaluation_batch)

    @property
    def final_batch_size(self):
        """Samples per step of the final phases: final_batch, or batch when that is not set."""
        return int(self.batch if self.final_batch is None else self.final_batch)

    @property
    def final_rates(self):
        """(start, end) learning rates of the final phases, from final_learning_rate."""
        if self.final_learning_rate is None:
            return (self.learning_rate, self.learning_rate)
        if np.ndim(self.final_learning_rate) == 0:
            return (float(self.final_learning_rate),) * 2
        return tuple(float(r) for r in self.final_learning_rate)

    @property
    def has_final_phase(self):
        """Whether anything runs at beta_target after the schedule reaches it."""
        return bool(self.final_steps) or bool(self.reweighted_steps)
