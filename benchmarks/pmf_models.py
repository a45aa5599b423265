"""The two PMFForce models the benchmarks time (issue 22 and the plugin-foundation issue), in one place:

  phi/psi: the PMF of the conditional-flow paper, 10 MLPs [4, 256, 128, 32, 1] with sigmoid, inputs
      (cos phi, sin phi, cos psi, sin psi) of two dihedrals of a 5-particle backbone-like chain;
  cg10: a 10-bead CG model, all 45 pair distances -> one MLP [45, 128, 128, 128, 1] with SiLU.

Random weights with fixed seeds, so every benchmark and every peer prices the same numbers.
"""
import numpy as np
import openmm

import openmmcgflow as cg


def phi_psi_model():
    return cg.MLPEnsemble([4, 256, 128, 32, 1], 10, "sigmoid", seed=1)


def cg10_model():
    return cg.MLPEnsemble([45, 128, 128, 128, 1], 1, "silu", seed=2)


def phi_psi_pmf(ensemble, precision="float64"):
    pmf = cg.PMFForce()
    pmf.setModelBytes(ensemble.to_bytes())
    pmf.addDihedral(0, 1, 2, 3)
    pmf.addDihedral(1, 2, 3, 4)
    pmf.setPrecision(precision)
    return pmf


def cg10_pmf(ensemble, precision="float64"):
    pmf = cg.PMFForce()
    pmf.setModelBytes(ensemble.to_bytes())
    for i in range(10):
        for j in range(i + 1, 10):
            pmf.addDistance(i, j)
    pmf.setPrecision(precision)
    return pmf


def system_with(force, n, mass):
    """A System of n particles of `mass` amu holding `force` alone."""
    system = openmm.System()
    for _ in range(n):
        system.addParticle(mass)
    system.addForce(force)
    return system


def phi_psi_positions():
    """Backbone-like geometry C-N-CA-C-N (nm)."""
    return np.array([[0.0, 0.14, 0.0], [0.0, 0.0, 0.0], [0.145, 0.0, 0.02], [0.2, 0.13, 0.05], [0.33, 0.13, 0.1]])


def cg10_positions():
    """Ten beads 0.38 nm apart along x with a little noise (nm)."""
    rng = np.random.default_rng(0)
    return np.column_stack([0.38 * np.arange(10), 0.05 * rng.normal(size=10), 0.05 * rng.normal(size=10)])


def phi_psi_system(force):
    """(System, positions) of the 5-particle chain (12 amu) holding `force`."""
    return system_with(force, 5, 12.0), phi_psi_positions()


def cg10_system(force):
    """(System, positions) of the 10 beads (50 amu) holding `force`."""
    return system_with(force, 10, 50.0), cg10_positions()
