"""Molecular coordinates: Z-matrices, internal coordinates, chirality and CG maps.

The classes come from the C++ core (``_core``); this module adds what needs OpenMM objects.
"""
from ._core import (DihedralCGMap, InternalCoordinates, LinearMap, SliceMap, ZMatrix,  # noqa: F401
                    detect_chirality)


def zmatrix_from_topology(topology, system=None):
    """A Z-matrix for an ``openmm.app.Topology`` built from its bond graph.

    Heavy-atom backbone first, every atom placed from earlier atoms; hydrogens of a methyl or
    amide group after the first are placed by a dihedral relative to a sibling, so only the
    genuinely free torsions are marked circular. Masses (from ``system`` when given, else from
    the elements) only break ties, so hydrogen mass repartitioning does not change the result.
    """
    atoms = list(topology.atoms())
    if not atoms:
        raise ValueError("topology: has no atoms")
    bonds = [(b[0].index, b[1].index) for b in topology.bonds()]
    if system is not None:
        if system.getNumParticles() != len(atoms):
            raise ValueError("system: has %d particles but the topology has %d atoms"
                             % (system.getNumParticles(), len(atoms)))
        masses = [system.getParticleMass(i)._value for i in range(len(atoms))]
    else:
        masses = [a.element.mass._value if a.element is not None else 0.0 for a in atoms]
    return ZMatrix.from_bonds(len(atoms), bonds, masses)
