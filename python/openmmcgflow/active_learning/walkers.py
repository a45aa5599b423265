"""Many CG walkers in one OpenMM Context, and the search for points where a PMF ensemble is uncertain.

A CG space of angles (alanine dipeptide: phi, psi) becomes one particle per walker whose x (and y, z)
coordinates are the angles: a ``PMFForce`` reads them as periodic Coordinate features, (cos, sin) each —
exactly the paper's PMF inputs (cos phi, sin phi, cos psi, sin psi) — and has one particle group per
walker, so one batched evaluation prices every walker. ``CGMonteCarloIntegrator`` moves the angles and
accepts each walker on its own energy difference; with an uncertainty threshold it records the first
point of each walker whose ensemble spread exceeds it, and stops that walker.
"""
import csv
import os
from dataclasses import dataclass

import numpy as np
import openmm
from tqdm import tqdm

from ..generator import find_integrator
from ..plugin import CGMonteCarloIntegrator, PMFForce

TWO_PI = 2.0 * np.pi


def angle_walker_system(model_bytes, num_walkers, num_angles=2):
    """A System of ``num_walkers`` particles (mass 1) and a PMFForce over their first ``num_angles``
    coordinates as periodic angles (period 2 pi), one particle group per walker.

    Returns (system, force). The model must take 2 * num_angles inputs (cos, sin of each angle in turn).
    """
    num_walkers, num_angles = int(num_walkers), int(num_angles)
    if num_walkers < 1:
        raise ValueError("num_walkers: must be >= 1, got %d" % num_walkers)
    if not 1 <= num_angles <= 3:
        raise ValueError("num_angles: must be 1, 2 or 3 (the x, y, z of a particle), got %d" % num_angles)
    system = openmm.System()
    force = PMFForce()
    force.setModelBytes(bytes(model_bytes))
    if force.getModelInputSize() != 2 * num_angles:
        raise ValueError("model_bytes: the model takes %d inputs, but %d angles give %d (cos, sin each)"
                         % (force.getModelInputSize(), num_angles, 2 * num_angles))
    for axis in range(num_angles):
        force.addCoordinate(0, axis, TWO_PI)
    for i in range(num_walkers):
        system.addParticle(1.0)
        force.addParticleGroup([i])
    system.addForce(force)
    return system, force


def walker_positions(points, num_walkers=None):
    """Positions (num_walkers, 3) for walkers at CG ``points`` (n, num_angles), the angles wrapped into
    [-pi, pi); with ``num_walkers`` > n the points are reused in turn (walkers started from the last
    iteration's found points, as the paper does)."""
    p = np.atleast_2d(np.asarray(points, dtype=float))
    if p.ndim != 2 or not 1 <= p.shape[1] <= 3:
        raise ValueError("points: expected shape (n, angles) with 1 to 3 angles per walker, got %s" % (p.shape,))
    if not np.all(np.isfinite(p)):
        raise ValueError("points: must be finite (angles in rad)")
    n = len(p) if num_walkers is None else int(num_walkers)
    if n < 1 or len(p) == 0:
        raise ValueError("points: need at least one point and one walker")
    out = np.zeros((n, 3))
    out[:, :p.shape[1]] = p[np.arange(n) % len(p)]
    out[:, :p.shape[1]] -= TWO_PI * np.floor(out[:, :p.shape[1]] / TWO_PI + 0.5)
    return out


def angle_integrator(num_walkers, num_angles=2, *, temperature=300.0, proposal_scale=0.1, threshold_kt=0.2,
                     minimum_steps=0, seed=0):
    """A CGMonteCarloIntegrator moving the angles of every walker, with the search threshold given in
    units of k_B T (the paper: 0.2 k_B T for alanine dipeptide, 0.4 for Mueller-Brown); 0 turns it off."""
    if int(num_walkers) < 1:
        raise ValueError("num_walkers: must be >= 1, got %r" % (num_walkers,))
    if not 1 <= int(num_angles) <= 3:
        raise ValueError("num_angles: must be 1, 2 or 3 (the x, y, z of a particle), got %r" % (num_angles,))
    integrator = CGMonteCarloIntegrator(float(temperature), float(proposal_scale))
    for i in range(int(num_walkers)):
        for axis in range(int(num_angles)):
            integrator.addMovedCoordinate(i, axis, TWO_PI)
    kT = 0.00831446261815324 * float(temperature)
    integrator.setUncertaintyThreshold(float(threshold_kt) * kT)
    integrator.setMinimumSteps(int(minimum_steps))
    integrator.setRandomNumberSeed(int(seed))
    return integrator


@dataclass
class SearchResult:
    """What a search found: ``points`` (n, angles), the ``walkers`` and their ``steps`` when they found them,
    the ensemble spread ``std_kj`` (kJ/mol); ``steps`` (MC steps run) and ``reached_max`` (some walker ran
    ``max_steps`` without finding a point: the paper's stopping rule for the whole workflow)."""
    points: np.ndarray
    walkers: np.ndarray
    walker_steps: np.ndarray
    std_kj: np.ndarray
    steps: int
    reached_max: bool
    acceptance: float


def search_uncertain_points(context, integrator, num_points, max_steps, *, chunk=1, progress=True):
    """Run ``integrator`` (a CGMonteCarloIntegrator with a threshold, bound to ``context``) until it has found
    ``num_points`` points, every walker has stopped, or an active walker has made ``max_steps`` steps.

    Returns the first ``num_points`` points in the order found (within one step, in walker order), as the
    paper takes the first 30 points its 200 chains find. Steps run ``chunk`` at a time between checks; the
    default 1 costs one Python call per step, small beside pricing all walkers, and never overshoots."""
    num_points, max_steps, chunk = int(num_points), int(max_steps), int(chunk)
    if num_points < 1:
        raise ValueError("num_points: must be >= 1, got %d" % num_points)
    if max_steps < 1 or chunk < 1:
        raise ValueError("max_steps and chunk: must be >= 1, got %d and %d" % (max_steps, chunk))
    if integrator.getUncertaintyThreshold() <= 0:
        raise ValueError("integrator: has no uncertainty threshold (setUncertaintyThreshold), nothing to search for")
    steps = 0
    reached_max = False
    bar = tqdm(total=num_points, desc="CG MC search", unit="point", disable=not progress, leave=False)
    while integrator.getNumFoundPoints() < num_points and integrator.getNumActiveWalkers() > 0:
        walker_steps = np.asarray(integrator.getWalkerSteps())
        active = np.asarray(integrator.getWalkersStopped()) == 0
        if walker_steps[active].max(initial=0) >= max_steps:
            reached_max = True
            break
        n = min(chunk, max_steps - int(walker_steps[active].max(initial=0)))
        integrator.step(n)
        steps += n
        bar.n = min(integrator.getNumFoundPoints(), num_points)
        bar.set_postfix(steps=steps, active=integrator.getNumActiveWalkers())
        bar.refresh()
    bar.close()
    found = min(integrator.getNumFoundPoints(), num_points)
    per_walker = integrator.getNumMovedCoordinates() // max(1, integrator.getNumWalkers())
    points = np.array([integrator.getFoundPointCoordinates(i) for i in range(found)], dtype=float)
    return SearchResult(
        points=points.reshape(found, per_walker) if found == 0 else points,
        walkers=np.array([integrator.getFoundPointWalker(i) for i in range(found)], dtype=int),
        walker_steps=np.array([integrator.getFoundPointStep(i) for i in range(found)]),
        std_kj=np.array([integrator.getFoundPointStd(i) for i in range(found)]),
        steps=steps, reached_max=reached_max, acceptance=integrator.getAcceptanceRate())


CSV_COLUMNS = ["step", "acceptance", "proposals", "active_walkers", "found_points"]


class CGMonteCarloReporter:
    """An OpenMM reporter for a Simulation driven by a CGMonteCarloIntegrator (alone or inside a
    CompoundIntegrator): every ``report_interval`` steps one CSV row of the step, the acceptance rate,
    the proposals so far, the walkers still moving and the points found. Rows are flushed as written,
    and an existing file is appended to (a resumed run continues it)."""

    def __init__(self, csv_path, report_interval=100):
        if int(report_interval) < 1:
            raise ValueError("report_interval: must be >= 1, got %r" % (report_interval,))
        self._interval = int(report_interval)
        new = not os.path.exists(csv_path) or os.path.getsize(csv_path) == 0
        self._handle = open(csv_path, "a", newline="")
        self._csv = csv.writer(self._handle)
        if new:
            self._csv.writerow(CSV_COLUMNS)
            self._handle.flush()

    def describeNextReport(self, simulation):
        steps = self._interval - simulation.currentStep % self._interval
        return (steps, False, False, False, False)

    def report(self, simulation, state):
        mc = find_monte_carlo(simulation.integrator)
        self._csv.writerow([simulation.currentStep, repr(mc.getAcceptanceRate()), mc.getNumProposals(),
                            mc.getNumActiveWalkers(), mc.getNumFoundPoints()])
        self._handle.flush()

    def close(self):
        self._handle.close()


def find_monte_carlo(integrator):
    """The CGMonteCarloIntegrator itself, or the one inside a CompoundIntegrator."""
    return find_integrator(integrator, CGMonteCarloIntegrator)
