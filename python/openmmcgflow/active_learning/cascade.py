"""Cascaded sampling back to atoms (Schopmans & Friederich, section 3.2), inside OpenMM: CG points from a
Monte Carlo run on the learned PMF (a ``PMFForce`` in a CG Context driven by ``CGMonteCarloIntegrator``),
then all-atom configurations from the conditional flow at each point, drawn by a
``BoltzmannGeneratorIntegrator`` in an ordinary all-atom Context whose condition vector is the CG point.

The all-atom model file pairs the conditional flow q(x_FG | phi, psi) with a conditional position map: the
internal coordinates phi and psi (columns 5 and 29 of the phi/psi Z-matrix) are not flow outputs but the
condition vector itself, so every proposal has exactly the CG point's phi and psi. Each all-atom proposal
carries the integrator's log weight -beta U(x) - log q(x | s); with s drawn from p_PMF(s) ~ exp(-beta PMF(s)),
the weight of x against the atomistic Boltzmann distribution is that plus beta PMF(s) (up to one constant),
which is what :func:`cascaded_samples` returns for reweighting.
"""
from dataclasses import dataclass

import numpy as np
import openmm

from .. import _core
from ..plugin import BoltzmannGeneratorIntegrator
from ..stats import effective_sample_fraction
from .alanine import PHI_COLUMN, PSI_COLUMN
from .walkers import angle_integrator, angle_walker_system, walker_positions


def conditional_generator_model(problem, flow):
    """The bytes of a ``boltzmann_generator`` model file for a ``BoltzmannGeneratorIntegrator``: ``flow`` (the
    conditional flow of :func:`alanine.conditional_flow`) over the fine coordinates of ``problem`` (an
    :class:`alanine.AlanineConditional`), with phi and psi taken from the condition vector (phi, psi) in rad."""
    if flow.context_dimension != 2:
        raise ValueError("flow: expected a flow conditioned on (phi, psi) (context dimension 2), got %d"
                         % flow.context_dimension)
    position_map = _core.PositionMap.internal(problem.internal, condition_columns=[(PHI_COLUMN, 0), (PSI_COLUMN, 1)])
    return _core.encode_boltzmann_generator(flow, position_map, {"cg": "alanine dipeptide (phi, psi)"})


@dataclass
class CascadedSamples:
    """All-atom configurations from a CG run. ``cg`` (n, 2) the CG points (rad), ``pmf_kj`` the PMF there,
    ``positions`` (n, atoms, 3) nm, ``energy_kj`` the atomistic energies, ``log_w_conditional`` the
    integrator's log weights -beta U - log q(x | s), ``log_w`` the log weights against the atomistic Boltzmann
    distribution (log_w_conditional + beta PMF(s)), -inf for a clash, and ``ess_fraction`` their ESS / n."""
    cg: np.ndarray
    pmf_kj: np.ndarray
    positions: np.ndarray
    energy_kj: np.ndarray
    log_w_conditional: np.ndarray
    log_w: np.ndarray
    ess_fraction: float


def cg_monte_carlo_points(pmf_model_bytes, num_walkers, steps, every, *, start, temperature=300.0,
                          proposal_scale=0.3, seed=1, platform="Reference"):
    """CG points from ``num_walkers`` Metropolis chains on the PMF (a PMFForce over (phi, psi), one group per
    walker) in one OpenMM Context: each walker's (phi, psi) every ``every`` steps for ``steps`` steps, and the
    PMF at each point (kJ/mol). Returns (points (n, 2), pmf (n,))."""
    steps, every = int(steps), int(every)
    if steps < 1 or every < 1 or every > steps:
        raise ValueError("steps and every: need 1 <= every <= steps, got steps=%d, every=%d" % (steps, every))
    system, force = angle_walker_system(pmf_model_bytes, num_walkers)
    integrator = angle_integrator(num_walkers, temperature=temperature, proposal_scale=proposal_scale,
                                  threshold_kt=0.0, seed=seed)
    context = openmm.Context(system, integrator, openmm.Platform.getPlatformByName(platform))
    context.setPositions(walker_positions(start, num_walkers))
    points, pmf = [], []
    for _ in range(steps // every):
        integrator.step(every)
        x = context.getState(getPositions=True).getPositions(asNumpy=True).value_in_unit(openmm.unit.nanometer)
        points.append(walker_positions(x[:, :2])[:, :2])
        pmf.append(np.asarray(force.getGroupEnergies(context)))
    return np.concatenate(points), np.concatenate(pmf)


def cascaded_samples(problem, bg_model_bytes, cg_points, pmf_kj, *, seed=1, platform="Reference"):
    """One all-atom configuration per CG point: a ``BoltzmannGeneratorIntegrator`` (importance mode, block size
    1) in a Context of ``problem``'s atomistic System, its condition vector set to each point in turn.
    ``pmf_kj``: the PMF at the points (their CG run's target), for the weights against the atomistic
    distribution. Returns :class:`CascadedSamples`."""
    cg_points = np.atleast_2d(np.asarray(cg_points, dtype=float))
    pmf_kj = np.asarray(pmf_kj, dtype=float)
    if cg_points.shape[1] != 2 or len(pmf_kj) != len(cg_points):
        raise ValueError("cg_points and pmf_kj: expected (n, 2) points and n PMF values, got %r and %r"
                         % (cg_points.shape, pmf_kj.shape))
    integrator = BoltzmannGeneratorIntegrator(problem.temperature, BoltzmannGeneratorIntegrator.Importance)
    integrator.setModelBytes(bytes(bg_model_bytes))
    integrator.setRandomNumberSeed(int(seed))
    integrator.setBlockSize(1)  # a new condition discards the rest of a block
    integrator.setConditionVector([float(v) for v in cg_points[0]])
    context = openmm.Context(problem.system.system, integrator, openmm.Platform.getPlatformByName(platform))
    context.setPositions(problem.system.positions)
    positions, energy, log_w_conditional = [], [], []
    for point in cg_points:
        integrator.setConditionVector([float(v) for v in point])
        integrator.step(1)
        positions.append(context.getState(getPositions=True).getPositions(asNumpy=True)
                         .value_in_unit(openmm.unit.nanometer))
        energy.append(integrator.getLastEnergy())
        log_w_conditional.append(integrator.getLastLogWeight())
    log_w_conditional = np.array(log_w_conditional)
    log_w = log_w_conditional + pmf_kj / problem.kT
    log_w = np.where(np.isfinite(log_w), log_w, -np.inf)
    return CascadedSamples(cg=cg_points, pmf_kj=pmf_kj, positions=np.array(positions), energy_kj=np.array(energy),
                           log_w_conditional=log_w_conditional, log_w=log_w,
                           ess_fraction=float(effective_sample_fraction(log_w)))
