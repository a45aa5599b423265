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
* time series (numpy): ``integrated_autocorrelation_time`` (Sokal's self-consistent window), for the
  effective number of samples of an MD or Monte Carlo trajectory
Axes are ``(low, high, bins)`` tuples; configurations are ``(n, atoms, 3)`` arrays in nm.
"""
from ._core.stats import (bond_score, bootstrap_log_z, bootstrap_mean, clip_above_percentile,  # noqa: F401
                          clip_top_k, clipping_report, diversity_score, drop_top_fraction, effective_sample_fraction,
                          effective_sample_size, free_energy_1d, free_energy_2d, histogram_1d, histogram_2d,
                          js_divergence, kl_divergence, log_sum_exp, log_z, normalized_weights, pmf_error,
                          radius_of_gyration, rmsd, weighted_mean, tempering_statistics, relative_kl_increase,
                          adaptive_temperature_step, shrinking_temperature_step, RunningWeights)


def integrated_autocorrelation_time(series, window_factor=5.0):
    """Integrated autocorrelation time of a time series, in frames: tau = 1 + 2 sum_{k=1}^{M} rho(k), with
    rho the normalized autocovariance (computed by FFT) and M the smallest lag with M >= window_factor * tau(M)
    (Sokal's self-consistent window; 5 is his choice). tau = 1 for uncorrelated frames; n / tau is the
    effective number of samples. ``series``: (n,) or (n, k) for k observables, each estimated on its own
    (returns a float, or an array of k). Fewer than 2 frames, non-finite values or a constant series ->
    ValueError naming the argument. A window that reaches n / 2 without meeting the condition means the run
    is too short to measure tau: the returned value is then a lower bound (a warning is issued)."""
    import warnings

    import numpy as np
    x = np.asarray(series, dtype=float)
    if x.ndim not in (1, 2):
        raise ValueError(f"series must be (n,) or (n, k), got shape {x.shape}")
    if x.shape[0] < 2:
        raise ValueError(f"series needs at least 2 frames, got {x.shape[0]}")
    if not np.all(np.isfinite(x)):
        raise ValueError("series has non-finite values")
    if not (np.isfinite(window_factor) and window_factor > 0):
        raise ValueError(f"window_factor must be finite and positive, got {window_factor}")
    columns = x.reshape(x.shape[0], -1)
    n = columns.shape[0]
    taus = []
    for j in range(columns.shape[1]):
        c = columns[:, j] - columns[:, j].mean()
        size = 1 << (2 * n - 1).bit_length()  # zero-padded: the linear, not circular, autocovariance
        f = np.fft.rfft(c, size)
        acov = np.fft.irfft(f * np.conj(f), size)[:n]
        if acov[0] <= 0:
            raise ValueError(f"series column {j} is constant: its autocorrelation time is undefined")
        rho = acov / acov[0]
        tau_of_window = 1.0 + 2.0 * np.cumsum(rho[1:])
        lags = np.arange(1, n)
        met = np.nonzero(lags >= window_factor * tau_of_window)[0]
        if met.size and lags[met[0]] < n // 2:
            taus.append(float(tau_of_window[met[0]]))
        else:
            m = max(1, n // 2) - 1
            warnings.warn(f"integrated_autocorrelation_time: column {j}: the window reached n/2 = {n // 2} frames "
                          "before 5 tau; the run is too short and tau is a lower bound", RuntimeWarning, stacklevel=2)
            taus.append(float(max(1.0, tau_of_window[min(m, len(tau_of_window) - 1)])))
    return taus[0] if x.ndim == 1 else np.array(taus)
