"""PMF labels from the free energies of a conditional flow (Schopmans & Friederich, eq. 12 and A.6).

For a CG point s with k copies x_i = [g(z_i; s), s] drawn from the conditional flow,

    U_PMF(s) = -k_B T log( (1/k) sum_i exp(-beta U(x_i) - log q(x_fg,i | s) + log|det J_i|) ),

where log|det J| is that of the internal-to-Cartesian map (so exp(-beta U)|det J| is the density of
the internal coordinates). A clash or a copy far in the flow's tail gives one term that dominates the
mean; the paper clips the largest ``clip_top`` terms (3 of 30) to the smallest of them. That clipping
is a heuristic (it biases the label down by an amount that vanishes as the flow approaches the
conditional Boltzmann density); ``clip_top=0`` gives the plain, consistent estimator.

``log_boltzmann`` / ``boltzmann_probabilities``: the normalized Boltzmann distribution of a PMF on a grid,
what the PMF metrics and the all-atom generators compare and sample.
"""
import numpy as np

KB = 0.00831446261815324  # kJ/mol/K


def log_boltzmann(pmf, beta):
    """log of exp(-beta PMF) normalized over a grid of any shape (same shape), computed stably."""
    a = -beta * np.asarray(pmf, dtype=float)
    return a - np.logaddexp.reduce(a.ravel())


def boltzmann_probabilities(pmf, beta):
    """exp(-beta PMF) normalized over a grid of any shape."""
    return np.exp(log_boltzmann(pmf, beta))


def pmf_labels(energies, log_q, log_det_j, temperature, clip_top=3):
    """Label each CG point from its copies.

    Parameters
    ----------
    energies : array (points, copies)
        Atomistic energies U(x_i) in kJ/mol; NaN or +inf (a failed evaluation, a clash) count as weight 0.
    log_q : array (points, copies)
        log q(x_fg,i | s) of the conditional flow (natural log).
    log_det_j : array (points, copies) or scalar
        log|det J| of the internal-to-Cartesian map at each copy.
    temperature : float
        Kelvin.
    clip_top : int
        How many of the largest log-terms of each point are set to the smallest of them (the paper: 3
        of 30). 0 turns clipping off. Must be < copies.

    Returns
    -------
    labels : array (points,)
        U_PMF(s) in kJ/mol, up to one additive constant shared by all points; +inf where every copy
        has weight zero.
    """
    u = np.asarray(energies, dtype=float)
    lq = np.asarray(log_q, dtype=float)
    if u.ndim != 2:
        raise ValueError("energies: expected shape (points, copies), got %r" % (u.shape,))
    if u.shape[1] == 0:
        raise ValueError("energies: every point needs at least one copy, got shape %r" % (u.shape,))
    if lq.shape != u.shape:
        raise ValueError("log_q: shape %r differs from energies' %r" % (lq.shape, u.shape))
    try:
        ldj = np.broadcast_to(np.asarray(log_det_j, dtype=float), u.shape)
    except ValueError:
        raise ValueError("log_det_j: expected a scalar or the shape %r of energies, got %r"
                         % (u.shape, np.shape(log_det_j))) from None
    if not (np.isfinite(temperature) and temperature > 0):
        raise ValueError("temperature: must be finite and > 0 (kelvin), got %r" % (temperature,))
    copies = u.shape[1]
    clip_top = int(clip_top)
    if clip_top < 0 or clip_top >= copies:
        raise ValueError("clip_top: must be in [0, %d) for %d copies, got %d" % (copies, copies, clip_top))
    if np.isnan(lq).any():
        raise ValueError("log_q: contains NaN")
    beta = 1.0 / (KB * temperature)
    terms = -beta * u - lq + ldj
    terms = np.where(np.isfinite(terms) | (terms == -np.inf), terms, -np.inf)  # NaN/+inf energies: weight 0
    if clip_top > 0:
        ordered = np.sort(terms, axis=1)
        # The smallest of the clip_top largest: everything above it is lowered to it.
        ceiling = ordered[:, copies - clip_top][:, None]
        terms = np.minimum(terms, ceiling)
    top = np.max(terms, axis=1)
    finite = np.isfinite(top)
    log_mean = np.full(u.shape[0], -np.inf)
    log_mean[finite] = top[finite] + np.log(np.mean(np.exp(terms[finite] - top[finite, None]), axis=1))
    return -log_mean / beta
