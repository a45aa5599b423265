"""CG Monte Carlo active learning (Schopmans & Friederich).

* :mod:`~openmmcgflow.active_learning.walkers`: many CG walkers in one OpenMM Context — a ``PMFForce``
  whose particle groups are the walkers (one particle per walker whose x and y are the CG angles, e.g.
  phi and psi), the ``CGMonteCarloIntegrator`` search for points where the PMF ensemble is uncertain,
  and a reporter for it;
* :mod:`~openmmcgflow.active_learning.labels`: PMF labels from flow free energies (the paper's eq. 12,
  the largest terms clipped as in its section A.6);
* :mod:`~openmmcgflow.active_learning.selection`: farthest-point choice of found points and their uniform
  broadening in a disc of CG space;
* :mod:`~openmmcgflow.active_learning.mueller_brown`: the whole loop on the paper's Mueller-Brown potential;
* :mod:`~openmmcgflow.active_learning.alanine`: the conditional flow for alanine dipeptide, training by
  example and by energy at CG points, and grid conditioning;
* :mod:`~openmmcgflow.active_learning.alanine_al`: the active-learning loop for alanine dipeptide;
* :mod:`~openmmcgflow.active_learning.cascade`: cascaded sampling back to atoms — CG Monte Carlo on the
  PMFForce, then the conditional flow through a ``BoltzmannGeneratorIntegrator`` whose condition vector is
  the CG point.

The workflow and its settings: ``docs/workflows/active-learning.md``.
"""
from . import alanine, alanine_al, cascade, labels, mueller_brown, selection, walkers  # noqa: F401
from .labels import pmf_labels
from .selection import broaden_points, farthest_point_selection
from .walkers import (CGMonteCarloReporter, SearchResult, angle_integrator, angle_walker_system, find_monte_carlo,
                      search_uncertain_points, walker_positions)

__all__ = ["pmf_labels", "broaden_points", "farthest_point_selection", "CGMonteCarloReporter", "SearchResult",
           "angle_integrator", "angle_walker_system", "find_monte_carlo", "search_uncertain_points", "walker_positions"]
