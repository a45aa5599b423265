"""The alanine-dipeptide CG maps of the CG Boltzmann-generator paper, built by atom names.

*Heavy atom* (10 beads: every heavy atom) and *core beta* (6 beads: the backbone atoms that carry
phi and psi, plus C-beta), as the core's :class:`~openmmcgflow.coordinates.SliceMap` (a bead is one
atom; its force map keeps the forces on the kept atoms). Beads are named by (atom name, residue
name), so the maps fit any topology of ACE-ALA-NME, solvated or not, in any atom order. Also the
phi/psi collective variables (``CustomTorsionForce`` ``theta``) for metadynamics and for recording.

:func:`aggregated_map` keeps a slice map's positions and gives it the lower-noise force map of
Kraemer et al. (JCTC 2023, "statistically optimal force aggregation"): each bead's force is the sum of
the forces on its atom and on the atoms attached to it. Ciccotti, Kapral & Vanden-Eijnden's condition
for a constant force map b of a linear map c, sum_j b_Ij c_Jj = delta_IJ, only asks that bead I's
weights be 1 on its own atom and 0 on the other beads' atoms: the weights on atoms outside the map are
free. Moving a bead's hydrogens (or carbonyl O) rigidly with it cancels the stiff bond forces between
them, so the mapped force is far less noisy and its conditional mean is the same mean force.
"""
from collections import deque

import numpy as np
import openmm

from .._core import LinearMap, SliceMap

# (atom name, residue name) per bead, in bead order. A tuple of names lists alternatives (the NME
# methyl carbon is CH3 in AMBER's templates and C in some PDB files).
HEAVY_ATOM_BEADS = [("CH3", "ACE"), ("C", "ACE"), ("O", "ACE"), ("N", "ALA"), ("CA", "ALA"), ("CB", "ALA"),
                    ("C", "ALA"), ("O", "ALA"), ("N", "NME"), (("CH3", "C"), "NME")]
CORE_BETA_BEADS = [("C", "ACE"), ("N", "ALA"), ("CA", "ALA"), ("CB", "ALA"), ("C", "ALA"), ("N", "NME")]
MAPS = {"heavy_atom": HEAVY_ATOM_BEADS, "core_beta": CORE_BETA_BEADS}

# phi = C(ACE)-N-CA-C, psi = N-CA-C-N(NME), in OpenMM's torsion sign convention.
PHI_ATOMS = [("C", "ACE"), ("N", "ALA"), ("CA", "ALA"), ("C", "ALA")]
PSI_ATOMS = [("N", "ALA"), ("CA", "ALA"), ("C", "ALA"), ("N", "NME")]


def _names(name):
    return (name,) if isinstance(name, str) else tuple(name)


def bead_labels(beads):
    """'RES:NAME' per bead (the first name where a bead allows alternatives), e.g. 'ALA:CB'."""
    if isinstance(beads, str):
        beads = _beads_of(beads)
    return ["%s:%s" % (residue, _names(name)[0]) for name, residue in beads]


def _beads_of(mapping):
    if mapping not in MAPS:
        raise ValueError("mapping: expected 'heavy_atom' or 'core_beta', got %r" % (mapping,))
    return MAPS[mapping]


def find_atoms(topology, atoms, argument="topology"):
    """Indices of (atom name, residue name) pairs in an ``openmm.app.Topology``.

    Each named residue must occur exactly once and hold the atom (for a tuple of names, the first
    one present); otherwise a ``ValueError`` that names ``argument``, the bead and the missing atom.
    """
    if topology is None or not hasattr(topology, "residues"):
        raise TypeError("%s: must be an openmm.app.Topology, got %r" % (argument, topology))
    by_residue = {}
    for residue in topology.residues():
        by_residue.setdefault(residue.name, []).append(residue)
    indices = []
    for k, (name, residue_name) in enumerate(atoms):
        residues = by_residue.get(residue_name, [])
        if len(residues) != 1:
            raise ValueError("%s: bead %d (%s of %s) needs exactly one residue named %s, found %d (residues: %s)"
                             % (argument, k, "/".join(_names(name)), residue_name, residue_name, len(residues),
                                ", ".join(sorted(by_residue)) or "none"))
        present = {a.name: a.index for a in residues[0].atoms()}
        match = [present[n] for n in _names(name) if n in present]
        if not match:
            raise ValueError("%s: bead %d: residue %s has no atom named %s (its atoms: %s)"
                             % (argument, k, residue_name, " or ".join(_names(name)), ", ".join(present)))
        indices.append(match[0])
    if len(set(indices)) != len(indices):
        raise ValueError("%s: two beads name the same atom (atom indices %s)" % (argument, indices))
    return indices


def slice_map(topology, beads, argument="topology"):
    """A SliceMap over all atoms of ``topology`` whose beads are the named atoms (:func:`find_atoms`)."""
    atoms = find_atoms(topology, beads, argument)
    return SliceMap(topology.getNumAtoms(), atoms)


def heavy_atom_map(topology):
    """The paper's heavy-atom map of ACE-ALA-NME: 10 beads (:data:`HEAVY_ATOM_BEADS`)."""
    return slice_map(topology, HEAVY_ATOM_BEADS)


def core_beta_map(topology):
    """The paper's core-beta map: 6 beads, C(ACE) N CA CB C N(NME) (:data:`CORE_BETA_BEADS`)."""
    return slice_map(topology, CORE_BETA_BEADS)


def alanine_dipeptide_map(topology, mapping):
    """``mapping``: 'heavy_atom' (:func:`heavy_atom_map`) or 'core_beta' (:func:`core_beta_map`)."""
    return slice_map(topology, _beads_of(mapping))


def aggregation_groups(topology, bead_atoms, molecule_atoms=None):
    """Per bead, the atoms whose forces :func:`aggregated_map` adds to the bead's: the bead's atom and every
    atom of the same molecule that is closer (in bonds) to it than to any other bead (ties go to the bead
    listed first). ``molecule_atoms`` (default: the atoms bonded, directly or not, to the beads) limits
    the search, so solvent is never aggregated."""
    bead_atoms = [int(a) for a in bead_atoms]
    neighbours = {}
    for bond in topology.bonds():
        i, j = bond[0].index, bond[1].index
        neighbours.setdefault(i, []).append(j)
        neighbours.setdefault(j, []).append(i)
    allowed = None if molecule_atoms is None else set(int(a) for a in molecule_atoms)
    owner = {atom: bead for bead, atom in enumerate(bead_atoms)}
    queue = deque(bead_atoms)
    while queue:  # breadth-first from every bead at once: each atom goes to its nearest bead
        atom = queue.popleft()
        for other in sorted(neighbours.get(atom, [])):
            if other not in owner and (allowed is None or other in allowed):
                owner[other] = owner[atom]
                queue.append(other)
    groups = [[] for _ in bead_atoms]
    for atom, bead in sorted(owner.items()):
        groups[bead].append(atom)
    return groups


def aggregated_map(topology, cg_map, molecule_atoms=None):
    """``cg_map`` (a SliceMap over ``topology``) with the aggregated force map: the same bead positions,
    bead forces summed over :func:`aggregation_groups`. A ``LinearMap`` whose force map is explicit
    (``force_map_type == "explicit"``; the core checks the consistency identity)."""
    if not isinstance(cg_map, SliceMap):
        raise TypeError("cg_map: expected a SliceMap (a bead is one atom), got %s" % type(cg_map).__name__)
    if cg_map.num_atoms != topology.getNumAtoms():
        raise ValueError("cg_map: maps %d atoms but the topology has %d" % (cg_map.num_atoms, topology.getNumAtoms()))
    groups = aggregation_groups(topology, cg_map.atoms, molecule_atoms)
    coefficients = np.zeros((cg_map.num_beads, cg_map.num_atoms))
    force_coefficients = np.zeros_like(coefficients)
    for bead, (atom, group) in enumerate(zip(cg_map.atoms, groups)):
        coefficients[bead, atom] = 1.0
        force_coefficients[bead, group] = 1.0
    return LinearMap(coefficients, force_coefficients)


def torsion_cv(topology, atoms, argument="topology"):
    """A ``CustomTorsionForce`` whose energy is the dihedral (rad, in [-pi, pi]) of four named atoms."""
    if len(atoms) != 4:
        raise ValueError("atoms: a torsion needs 4 atoms, got %d" % len(atoms))
    force = openmm.CustomTorsionForce("theta")
    force.addTorsion(*find_atoms(topology, atoms, argument), [])
    return force


def phi_psi_cvs(topology):
    """{'phi': force, 'psi': force}: the backbone dihedrals of ACE-ALA-NME as CV forces (energy = angle)."""
    return {"phi": torsion_cv(topology, PHI_ATOMS), "psi": torsion_cv(topology, PSI_ATOMS)}
