"""Coarse-grained Boltzmann generators (Chen, Zhao, Eckwert & Zavadlav): the data stage.

* :mod:`~openmmcgflow.cgbg.maps`: the alanine-dipeptide heavy-atom and core-beta CG maps by atom
  names, and the phi/psi CVs;
* :mod:`~openmmcgflow.cgbg.data`: CG datasets with unbiased mapped forces from Langevin MD (optionally
  well-tempered metadynamics through ``openmm.app.Metadynamics``) or from existing DCD trajectories;
* :mod:`~openmmcgflow.cgbg.storage`: the dataset directory format and :func:`load_dataset`;
* :mod:`~openmmcgflow.cgbg.dcd`: a numpy DCD reader.

Force matching of a PMF on these datasets is ``openmmcgflow.PMFTrainer``; the flow and reweighting
stages are to come.
"""
from . import data, dcd, maps, storage  # noqa: F401
from .data import MetadynamicsSettings, alanine_metadynamics, dataset_from_trajectory, generate_dataset
from .dcd import DCDReader, read_dcd
from .maps import (CORE_BETA_BEADS, HEAVY_ATOM_BEADS, alanine_dipeptide_map, bead_labels, core_beta_map,
                   find_atoms, heavy_atom_map, phi_psi_cvs, slice_map, torsion_cv)
from .storage import CGDataset, load_dataset

__all__ = ["MetadynamicsSettings", "alanine_metadynamics", "dataset_from_trajectory", "generate_dataset",
           "DCDReader", "read_dcd", "CORE_BETA_BEADS", "HEAVY_ATOM_BEADS", "alanine_dipeptide_map", "bead_labels",
           "core_beta_map", "find_atoms", "heavy_atom_map", "phi_psi_cvs", "slice_map", "torsion_cv", "CGDataset",
           "load_dataset"]
