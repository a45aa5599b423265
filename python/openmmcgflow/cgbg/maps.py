"""The alanine-dipeptide CG maps of the CG Boltzmann-generator paper, built by atom names.

*Heavy atom* (10 beads: every heavy atom) and *core beta* (6 beads: the backbone atoms that carry
phi and psi, plus C-beta), as the core's :class:`~openmmcgflow.coordinates.SliceMap` (a bead is one
atom; its force map keeps the forces on the kept atoms). Beads are named by (atom name, residue
name), so the maps fit any topology of ACE-ALA-NME, solvated or not, in any atom order. Also the
phi/psi collective variables (``CustomTorsionForce`` ``theta``) for metadynamics and for recording.
"""
import openmm

from .._core import SliceMap

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
