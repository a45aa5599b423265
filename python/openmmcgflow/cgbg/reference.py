"""The atomistic reference the CG-BG metrics are measured against: CV distributions of the atomistic System.

Plain MD of alanine dipeptide at 300 K visits phi > 0 a few times per nanosecond, so the profiles of a
short unbiased run are noisy exactly where the metrics look (the barriers and the alphaL basin). The
reference here is exact importance sampling under a **static** bias instead:

1. well-tempered metadynamics on the CVs (``generate_dataset`` with ``metadynamics=``) builds a bias V;
2. the final bias grid, frozen, becomes an ordinary force (:func:`static_bias_force`, a ``CustomCVForce``
   over a periodic tabulated function) in a force group of its own, and a second run samples the biased
   ensemble p_V(x) ~ exp(-beta (U + V));
3. each frame of the second run has the weight exp(+beta V(s)): the reweighted samples are the
   unbiased Boltzmann distribution of the atomistic System, with no approximation beyond finite
   sampling (the bias need not be converged, only smooth and fixed).

The recorded bias energy of every frame is V of that frame, evaluated by OpenMM, so the log-weights are
``beta * bias_energy``. The noise floor of a metric is measured by splitting the sampling run into halves
(:meth:`AtomisticReference.noise_floor`).
"""
import math
import os
from dataclasses import dataclass

import numpy as np
import openmm
from openmm import app

from .. import stats
from ..systems import KB
from .data import MetadynamicsSettings, generate_dataset
from .storage import load_dataset


def static_bias_force(bias_grid, variables, force_group):
    """The frozen metadynamics bias as an OpenMM force: V(s) from ``bias_grid`` (axis k over CV k, as
    ``CGDataset.bias_grid``) over ``variables`` (a list of ``openmm.app.BiasVariable``,
    1 or 2 periodic or not, the grid's ranges) in ``force_group``."""
    grid = np.asarray(bias_grid, dtype=float)
    if not variables or len(variables) > 2:
        raise ValueError("variables: expected 1 or 2 BiasVariables, got %d" % len(variables))
    shape = tuple(int(v.gridWidth) for v in variables)
    if grid.shape != shape or not np.all(np.isfinite(grid)):
        raise ValueError("bias_grid: expected a finite grid of shape %s (axis k over variable k), got %s"
                         % (shape, grid.shape))
    periodic = [bool(v.periodic) for v in variables]
    if len(set(periodic)) != 1:
        raise ValueError("variables: all periodic or none (one tabulated function), got %s" % periodic)
    names = ["cv%d" % k for k in range(len(variables))]
    force = openmm.CustomCVForce("table(%s)" % ", ".join(names))
    for name, variable in zip(names, variables):
        force.addCollectiveVariable(name, openmm.XmlSerializer.clone(variable.force))
    ranges = [(float(v.minValue), float(v.maxValue)) for v in variables]
    if len(variables) == 1:
        table = openmm.Continuous1DFunction(grid.ravel().tolist(), *ranges[0], periodic[0])
    else:
        # values[i + nx * j] = V(x_i, y_j): the transpose, flattened row by row
        table = openmm.Continuous2DFunction(shape[0], shape[1], grid.T.ravel().tolist(), *ranges[0], *ranges[1],
                                            periodic[0])
    force.addTabulatedFunction("table", table)
    force.setForceGroup(int(force_group))
    return force


@dataclass
class AtomisticReference:
    """Reweighted samples of the atomistic System's CVs: ``cvs`` (n, K) with ``cv_names``, ``log_w`` (n,)
    = beta V (normalize with ``stats.normalized_weights``), the two runs' datasets and their sizes."""
    cvs: np.ndarray
    cv_names: list
    log_w: np.ndarray
    temperature: float
    bias_ns: float
    sampling_ns: float
    ess_fraction: float

    def cv(self, name):
        return self.cvs[:, self.cv_names.index(name)]

    def histogram(self, name, axis, periodic=True, part=None):
        """The reweighted histogram of CV ``name`` on ``axis``; ``part`` = 0 or 1 uses one half of the run."""
        values, log_w = self.cv(name), self.log_w
        if part is not None:
            half = len(values) // 2
            values, log_w = (values[:half], log_w[:half]) if part == 0 else (values[half:], log_w[half:])
        return stats.histogram_1d(values, log_w, axis, periodic)["probability"]

    def noise_floor(self, name, axis, periodic=True):
        """JS divergence and PMF error between the two halves of the sampling run: what the reference's
        own finite sampling leaves (a metric below it cannot be resolved)."""
        first, second = self.histogram(name, axis, periodic, 0), self.histogram(name, axis, periodic, 1)
        return {"js": float(stats.js_divergence(first, second)), "pmf_error": float(stats.pmf_error(first, second))}


def atomistic_reference(system, positions, cg_map, path, *, temperature, cvs, bias_frames, sample_frames,
                        bias_factor=8.0, height=1.2, width=0.35, hill_interval_ps=1.0, record_every=200,
                        timestep=0.0005, seed=1, platform="Reference", platform_properties=None,
                        chunk_frames=2000, progress=True):
    """Build (or resume) the reference of ``cvs`` ({name: CV force}, 1 or 2 periodic torsions in rad) in
    the directory ``path``: ``path/bias`` (well-tempered metadynamics, ``bias_frames`` frames every
    ``record_every`` steps) then ``path/samples`` (the frozen bias, ``sample_frames`` frames). Both are
    ordinary datasets (``generate_dataset``, resumable chunk by chunk); ``cg_map`` is what they store
    besides the CVs. Returns an :class:`AtomisticReference`."""
    if not isinstance(cvs, dict) or not 1 <= len(cvs) <= 2:
        raise ValueError("cvs: expected {name: CV force} with 1 or 2 entries, got %r" % (cvs,))
    path = os.fspath(path)
    os.makedirs(path, exist_ok=True)
    variables = {name: app.BiasVariable(force, -math.pi, math.pi, width, True) for name, force in cvs.items()}
    meta = MetadynamicsSettings(variables, bias_factor, height, hill_interval_ps)
    common = dict(temperature=temperature, record_every=record_every, timestep=timestep, chunk_frames=chunk_frames,
                  platform=platform, platform_properties=platform_properties, progress=progress)
    generate_dataset(system, positions, cg_map, os.path.join(path, "bias"), num_frames=bias_frames,
                     metadynamics=meta, seed=seed, **common)
    bias_run = load_dataset(os.path.join(path, "bias"))
    used = {system.getForce(i).getForceGroup() for i in range(system.getNumForces())}
    group = max(set(range(32)) - used)
    bias = static_bias_force(bias_run.bias_grid, list(variables.values()), group)
    # Start the sampling run where the bias run ended (its last atom positions are not stored: the last
    # state file holds them).
    state = np.load(os.path.join(path, "bias", sorted(f for f in os.listdir(os.path.join(path, "bias"))
                                                      if f.startswith("state_"))[-1]))
    generate_dataset(system, state["positions"], cg_map, os.path.join(path, "samples"), num_frames=sample_frames,
                     bias_forces=[bias], cvs=cvs, seed=seed + 1, **common)
    return load_reference(path)


def load_reference(path):
    """The :class:`AtomisticReference` that :func:`atomistic_reference` built in ``path`` (no MD is run;
    both runs must be complete)."""
    path = os.fspath(path)
    bias_run, samples = load_dataset(os.path.join(path, "bias")), load_dataset(os.path.join(path, "samples"))
    for name, run in (("bias", bias_run), ("samples", samples)):
        if not run.manifest.get("complete"):
            raise ValueError("path: the %s run of %s is not complete (run atomistic_reference to finish it)"
                             % (name, path))
    beta = 1.0 / (KB * float(samples.temperature))
    log_w = beta * samples.bias_energy
    ess = float(stats.effective_sample_fraction(log_w))

    def md_ns(data):
        settings = data.manifest["settings"]
        return float(data.manifest["counts"]["frames_attempted"] * settings["record_every"] * settings["timestep"] * 1e-3)

    return AtomisticReference(np.asarray(samples.cvs), list(samples.cv_names), log_w, float(samples.temperature),
                              md_ns(bias_run), md_ns(samples), ess)
