"""Reweighting inside OpenMM: the last stage of the CG Boltzmann generator.

The CG System is the CG particles plus the trained ``PMFForce`` (:func:`cg_system`). :func:`reweight`
draws proposals from a ``boltzmann_generator`` model with ``BoltzmannGeneratorIntegrator`` in
Importance mode (``evaluate_proposals``), which prices each with the System's forces and returns
log w = -beta U_PMF - log q; the top 1 % of the weights are discarded as in the paper, and the Kish
ESS and a clipping-sensitivity curve are reported. :func:`profile_metrics` compares a 1-D profile of
an observable, raw and reweighted, with a reference histogram (JS divergence, PMF error);
:func:`plot_reweighting` draws both.
"""
import math
import time
from dataclasses import dataclass, field

import numpy as np
import openmm

from .. import _core as core
from .. import stats
from ..generator import evaluate_proposals
from ..plugin import BoltzmannGeneratorIntegrator, PMFForce
from ..systems import KB

DEFAULT_CLIP_LEVELS = (0.0, 0.0025, 0.005, 0.01, 0.02, 0.05, 0.1, 0.15, 0.2)


def cg_system(num_particles, pmf_force, masses=1.0, extra_forces=()):
    """The CG System: ``num_particles`` particles (``masses`` in amu or as Quantities, one or one per particle)
    and a copy of the trained ``pmf_force`` (a ``PMFForce`` with its model set; the caller keeps its own),
    plus copies of ``extra_forces`` (e.g. the harmonic prior of ``cgbg.force_match``): the PMF is their sum."""
    if isinstance(num_particles, bool) or int(num_particles) != num_particles or int(num_particles) < 1:
        raise ValueError("num_particles: expected an integer >= 1, got %r" % (num_particles,))
    num_particles = int(num_particles)
    if not PMFForce.isinstance(pmf_force):
        raise TypeError("pmf_force: expected a cg.PMFForce, got %s" % type(pmf_force).__name__)
    force = PMFForce.cast(pmf_force)
    for i in range(force.getNumFeatures()):
        bad = [p for p in force.getFeatureParticles(i) if p >= num_particles]
        if bad:
            raise ValueError("pmf_force: feature %d uses particle %d but the CG system has %d particles"
                             % (i, bad[0], num_particles))
    def amu(mass):
        return mass.value_in_unit(openmm.unit.amu) if openmm.unit.is_quantity(mass) else mass
    try:
        m = np.asarray(amu(masses) if np.ndim(amu(masses)) == 0 else [amu(mass) for mass in masses], dtype=float)
    except (TypeError, ValueError):
        raise ValueError("masses: expected one positive mass or %d of them (amu), got %r" % (num_particles, masses))
    if m.ndim == 0:
        m = np.full(num_particles, float(m))
    if m.shape != (num_particles,) or not np.all(np.isfinite(m)) or np.any(m <= 0):
        raise ValueError("masses: expected one positive mass or %d of them, got %r" % (num_particles, masses))
    system = openmm.System()
    for mass in m:
        system.addParticle(float(mass))
    for k, extra in enumerate(extra_forces):
        if not isinstance(extra, openmm.Force):
            raise TypeError("extra_forces[%d]: expected an openmm.Force, got %s" % (k, type(extra).__name__))
        system.addForce(openmm.XmlSerializer.clone(extra))
    system.addForce(openmm.XmlSerializer.clone(force))    # a copy: the System owns it
    return system


@dataclass
class ReweightResult:
    """What :func:`reweight` returns (arrays over the n proposals, in the order drawn)."""
    positions: np.ndarray          # (n, particles, 3) nm
    log_q: np.ndarray              # flow log-density of the Cartesian CG coordinates
    energy: np.ndarray             # U_PMF, kJ/mol
    log_w: np.ndarray              # -beta U - log q (raw)
    log_w_clipped: np.ndarray      # top clip_fraction discarded (-inf)
    weights: np.ndarray            # normalized raw weights
    weights_clipped: np.ndarray    # normalized clipped weights
    ess_fraction: float            # Kish ESS / n of the clipped weights (what the paper reports)
    ess_fraction_raw: float        # Kish ESS / n without clipping
    clip_fraction: float
    clipping_curve: list           # per level: level, ess, ess_fraction, estimate, num_modified
    temperature: float
    beta: float                    # 1 / (k_B T), mol/kJ
    num_nonfinite: int             # proposals of weight zero (a clash or a non-finite energy)
    seconds: float
    info: dict = field(default_factory=dict)


def _observable_values(observable, positions, n):
    if observable is None:
        return None
    values = observable(positions) if callable(observable) else observable
    values = np.asarray(values, dtype=float)
    if values.shape != (n,):
        raise ValueError("observable: expected %d values (one per proposal), got shape %s" % (n, values.shape))
    return values


def reweight(system, flow_model_bytes, n, *, temperature, seed, clip_fraction=0.01, platform="Reference",
             positions=None, observable=None, clip_levels=DEFAULT_CLIP_LEVELS, platform_properties=None):
    """Draw n flow proposals in a Context of the CG ``system`` and reweight them with its forces.

    ``BoltzmannGeneratorIntegrator`` in Importance mode (seeded with ``seed``, nonzero) draws them through
    ``evaluate_proposals``: positions, log q, U_PMF and log w = -beta U - log q. The top ``clip_fraction``
    of the weights are discarded (``stats.drop_top_fraction``). ``observable`` (a function of the
    (n, particles, 3) positions, or n values) is what the clipping curve estimates at each of
    ``clip_levels`` (drop fractions); without it the curve's estimate is log Z. ``positions`` is the
    template the flow writes into (coordinates a Cartesian map leaves alone); zeros by default.
    """
    if not isinstance(system, openmm.System):
        raise TypeError("system: expected an openmm.System, got %s" % type(system).__name__)
    if isinstance(n, bool) or int(n) != n or int(n) < 1:
        raise ValueError("n: expected an integer >= 1, got %r" % (n,))
    n = int(n)
    clip_fraction = float(clip_fraction)
    if not 0.0 <= clip_fraction < 1.0:
        raise ValueError("clip_fraction: expected a fraction in [0, 1), got %r" % (clip_fraction,))
    temperature = float(temperature)
    if not (math.isfinite(temperature) and temperature > 0):
        raise ValueError("temperature: expected a positive temperature in K, got %r" % (temperature,))
    if isinstance(seed, bool) or int(seed) != seed or int(seed) == 0:
        raise ValueError("seed: expected a nonzero integer (0 would be OpenMM's seed from the clock), got %r"
                         % (seed,))
    levels = [float(level) for level in clip_levels]
    if not levels or any(not 0.0 <= level < 1.0 for level in levels):
        raise ValueError("clip_levels: expected drop fractions in [0, 1), got %r" % (clip_levels,))
    try:
        _, position_map, info = core.decode_boltzmann_generator(bytes(flow_model_bytes))
    except Exception as error:  # noqa: BLE001 - the core's message says what is wrong with the file
        raise ValueError("flow_model_bytes: not a boltzmann_generator model: %s" % error)
    num_particles = system.getNumParticles()
    if position_map.num_particles != num_particles:
        raise ValueError("flow_model_bytes: the model's position map covers %d particles but the system has %d"
                         % (position_map.num_particles, num_particles))
    template = np.zeros((num_particles, 3)) if positions is None else np.asarray(positions, dtype=float)
    if template.shape != (num_particles, 3) or not np.all(np.isfinite(template)):
        raise ValueError("positions: expected finite (%d, 3) positions in nm, got shape %s"
                         % (num_particles, template.shape))

    start = time.perf_counter()
    integrator = BoltzmannGeneratorIntegrator(temperature, BoltzmannGeneratorIntegrator.Importance)
    integrator.setModelBytes(bytes(flow_model_bytes))
    integrator.setRandomNumberSeed(int(seed))
    integrator.setBlockSize(min(n, 4096))
    context = openmm.Context(system, integrator, openmm.Platform.getPlatformByName(platform),
                             dict(platform_properties or {}))
    try:
        context.setPositions(template)
        batch = evaluate_proposals(integrator, n)
    finally:
        del context
    seconds = time.perf_counter() - start

    beta = 1.0 / (KB * temperature)
    log_w = np.asarray(batch.log_w, dtype=float)
    if not np.any(np.isfinite(log_w)):
        raise RuntimeError("reweight: all %d proposals have weight zero (non-finite energies or log q)" % n)
    # The CG-BG paper (Chen, Zhao, Eckwert & Zavadlav, section G.2) discards the top 1 % of the samples
    # by log-weight before computing expectations: drop_top_fraction sets the largest ceil(f m) to -inf.
    log_w_clipped = stats.drop_top_fraction(log_w, clip_fraction) if clip_fraction > 0 else log_w.copy()
    values = _observable_values(observable, batch.positions, n)
    curve = stats.clipping_report(log_w, "drop_fraction", levels, values)
    for row in curve:
        row["ess_fraction"] = row["ess"] / n
    return ReweightResult(
        positions=batch.positions, log_q=np.asarray(batch.log_q, float), energy=np.asarray(batch.energy, float),
        log_w=log_w, log_w_clipped=log_w_clipped, weights=stats.normalized_weights(log_w),
        weights_clipped=stats.normalized_weights(log_w_clipped),
        ess_fraction=stats.effective_sample_fraction(log_w_clipped),
        ess_fraction_raw=stats.effective_sample_fraction(log_w), clip_fraction=clip_fraction,
        clipping_curve=curve, temperature=temperature, beta=beta,
        num_nonfinite=int(np.sum(~np.isfinite(log_w))), seconds=seconds, info=dict(info or {}))


def profile_metrics(values, log_w, reference_probabilities, axis, periodic=True, kT=1.0):
    """1-D profile of an observable, raw (unweighted) and reweighted (``log_w``), against a reference.

    ``axis`` = (low, high, bins); ``reference_probabilities`` (bins,) on that axis (normalized here).
    Returns a dict: ``centers``, ``edges``, ``reference`` (probabilities and free energy, units of kT),
    and ``raw`` / ``reweighted`` each with ``probability``, ``free_energy``, ``error``, ``js``
    (``stats.js_divergence``), ``pmf_error`` (``stats.pmf_error``, kT^2), ``num_out_of_range``.
    """
    x = np.asarray(values, dtype=float)
    if x.ndim != 1 or x.size < 1:
        raise ValueError("values: expected a 1-D array of observable values, got shape %s" % (x.shape,))
    if not (np.isfinite(kT) and kT > 0):
        raise ValueError("kT: must be finite and > 0 (the energy unit of the profiles), got %r" % (kT,))
    lw = np.asarray(log_w, dtype=float)
    if lw.shape != x.shape:
        raise ValueError("log_w: expected %d log-weights (one per value), got shape %s" % (x.size, lw.shape))
    try:
        low, high, bins = float(axis[0]), float(axis[1]), int(axis[2])
    except (TypeError, ValueError, IndexError):
        raise ValueError("axis: expected (low, high, bins), got %r" % (axis,))
    if not (high > low and bins >= 1):
        raise ValueError("axis: expected low < high and bins >= 1, got %r" % (axis,))
    ref = np.asarray(reference_probabilities, dtype=float)
    if ref.shape != (bins,) or not np.all(np.isfinite(ref)) or np.any(ref < 0) or ref.sum() <= 0:
        raise ValueError("reference_probabilities: expected %d non-negative finite values (one per bin) with a "
                         "positive sum, got shape %s" % (bins, ref.shape))
    ref = ref / ref.sum()
    axis = (low, high, bins)
    edges = np.linspace(low, high, bins + 1)
    with np.errstate(divide="ignore"):
        ref_f = -kT * np.log(ref)
    ref_f -= ref_f[np.isfinite(ref_f)].min()
    result = {"centers": 0.5 * (edges[1:] + edges[:-1]), "edges": edges, "axis": axis, "kT": kT,
              "reference": {"probability": ref, "free_energy": ref_f}}
    for name, weights in (("raw", None), ("reweighted", lw)):
        profile = stats.free_energy_1d(x, weights, axis, kT, bool(periodic))
        p = np.asarray(profile["probability"], dtype=float)
        result[name] = {"probability": p, "free_energy": np.asarray(profile["free_energy"], float),
                        "error": np.asarray(profile["error"], float), "js": stats.js_divergence(p, ref),
                        "pmf_error": stats.pmf_error(p, ref), "num_out_of_range": int(profile["num_out_of_range"])}
    return result


def plot_reweighting(path, metrics, clipping_curve=None, *, xlabel="x", energy_unit="kT", title=None):
    """One PNG: the reference, raw-flow and reweighted free-energy profiles of :func:`profile_metrics`
    and, with ``clipping_curve`` (a :class:`ReweightResult` or its ``clipping_curve``), the ESS fraction
    and the estimate against the fraction of weights dropped. Returns the path."""
    from ..plots import save_figure, plt
    if isinstance(metrics, dict) is False or not {"centers", "reference", "raw", "reweighted"} <= set(metrics):
        raise ValueError("metrics: expected the dict profile_metrics returns")
    if isinstance(clipping_curve, ReweightResult):
        clipping_curve = clipping_curve.clipping_curve
    panels = 2 if clipping_curve else 1
    fig, axes = plt.subplots(1, panels, figsize=(5.5 * panels, 4))
    axes = np.atleast_1d(axes)
    ax = axes[0]
    centers = metrics["centers"]
    f = metrics["reference"]["free_energy"]
    ax.plot(centers[np.isfinite(f)], f[np.isfinite(f)], "k-", lw=1.8, label="reference")
    for name, style in (("raw", "--"), ("reweighted", "-")):
        f = metrics[name]["free_energy"]
        ok = np.isfinite(f)
        ax.plot(centers[ok], f[ok], style, label="%s (JS %.2g, PMF err %.2g)"
                % ("raw flow" if name == "raw" else "reweighted", metrics[name]["js"], metrics[name]["pmf_error"]))
    ax.set_xlabel(xlabel)
    ax.set_ylabel("free energy (%s)" % energy_unit)
    ax.legend(fontsize=8)
    if title:
        ax.set_title(title)
    if clipping_curve:
        ax = axes[1]
        levels = [100 * row["level"] for row in clipping_curve]
        ax.plot(levels, [row["ess_fraction"] if "ess_fraction" in row else np.nan for row in clipping_curve],
                "-o", ms=3, color="C0")
        ax.set_xlabel("weights dropped (%)")
        ax.set_ylabel("ESS / n", color="C0")
        twin = ax.twinx()
        twin.plot(levels, [row["estimate"] for row in clipping_curve], "-s", ms=3, color="C3")
        twin.set_ylabel("estimate", color="C3")
        ax.set_title("clipping sensitivity")
    return save_figure(fig, path)
