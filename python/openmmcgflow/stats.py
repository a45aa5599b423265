"""The weights engine: statistics of importance-weighted samples (C++ core, numpy in and out).

Log-weights log w = -beta U - log q are the currency: -inf is a weight of zero (a clash or a rejected
sample), NaN and +inf are errors. Estimates come as (value, standard error) pairs. Every function has
its own docstring (``help(stats.pmf_error)``).

* ``log_sum_exp``, ``normalized_weights``, ``effective_sample_size`` (Kish), ``effective_sample_fraction``
* ``RunningWeights``: the same ESS and log Z for a stream of weights added one at a time (what
  BoltzmannGeneratorIntegrator keeps its running statistics in)
* ``log_z`` (log mean w with its delta-method error), ``weighted_mean``; ``bootstrap_mean``,
  ``bootstrap_log_z`` (Philox-seeded resamples, reproducible)
* clipping, each returning new log-weights in the original order: ``drop_top_fraction`` (the CG-BG
  paper discards the top 1 %: ``drop_top_fraction(log_w, 0.01)``), ``clip_top_k`` (the k largest set
  to the k-th largest, the conditional-flow paper's rule), ``clip_above_percentile`` (a cap at a
  percentile); ``clipping_report`` shows how an estimate and the ESS move with the clipping level
* ``histogram_1d`` / ``histogram_2d`` (weighted, periodic axes, out-of-range samples counted, never
  clamped) and ``free_energy_1d`` / ``free_energy_2d`` (F = -kT ln p, minimum 0, bootstrap errors;
  empty bins +inf with NaN error)
* ``kl_divergence`` and ``js_divergence`` between grids (epsilon floor 1e-10, natural logarithms) and
  ``pmf_error`` (the CG-BG paper's metric, in kT^2, empty-bin baseline 1e-6)
* structure: ``radius_of_gyration``, ``rmsd`` (Kabsch, proper rotations), ``bond_score``,
  ``diversity_score`` (data-free CG paper, section 3.3)
* adaptive tempering: ``tempering_statistics`` (KL, log Z, ESS at beta), ``relative_kl_increase``,
  ``adaptive_temperature_step`` (data-free CG paper, Eq. 23) and ``shrinking_temperature_step``
  (embedded-physics paper, Algorithm 1)
Axes are ``(low, high, bins)`` tuples; configurations are ``(n, atoms, 3)`` arrays in nm.
"""
from ._core.stats import (bond_score, bootstrap_log_z, bootstrap_mean, clip_above_percentile,  # noqa: F401
                          clip_top_k, clipping_report, diversity_score, drop_top_fraction, effective_sample_fraction,
                          effective_sample_size, free_energy_1d, free_energy_2d, histogram_1d, histogram_2d,
                          js_divergence, kl_divergence, log_sum_exp, log_z, normalized_weights, pmf_error,
                          radius_of_gyration, rmsd, weighted_mean, tempering_statistics, relative_kl_increase,
                          adaptive_temperature_step, shrinking_temperature_step, RunningWeights)
