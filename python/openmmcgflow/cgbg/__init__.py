"""Coarse-grained Boltzmann generators (Chen, Zhao, Eckwert & Zavadlav), stage by stage and end to end.

* :mod:`~openmmcgflow.cgbg.maps`: the alanine-dipeptide heavy-atom and core-beta CG maps by atom
  names, their aggregated (low-noise) force maps, and the phi/psi CVs;
* :mod:`~openmmcgflow.cgbg.data`: CG datasets with unbiased mapped forces from Langevin MD (optionally
  well-tempered metadynamics through ``openmm.app.Metadynamics``) or from existing DCD trajectories;
* :mod:`~openmmcgflow.cgbg.storage`: the dataset directory format and :func:`load_dataset`;
* :mod:`~openmmcgflow.cgbg.dcd`: a numpy DCD reader;
* :mod:`~openmmcgflow.cgbg.umbrella`: umbrella windows (a harmonic restraint per window in a force
  group of its own, so the recorded forces stay unbiased) and :func:`load_umbrella_dataset`;
* :mod:`~openmmcgflow.cgbg.force_matching`: force matching into a ``PMFForce`` (pair distances and
  dihedral cos/sin, so the PMF is chiral) on top of a harmonic prior of OpenMM forces;
* :mod:`~openmmcgflow.cgbg.flow`: a spline-coupling flow over the CG internal coordinates (Z-matrix
  over the bead graph, full Jacobian), trained by forward KL, saved as a ``boltzmann_generator``;
* :mod:`~openmmcgflow.cgbg.cnf`: the paper's continuous normalizing flow over the same coordinates,
  trained by conditional flow matching, exact log q by Dormand-Prince with the exact divergence;
* :mod:`~openmmcgflow.cgbg.reweighting`: the CG System (CG particles + the PMF), flow proposals
  reweighted inside OpenMM (Importance mode, top 1 % dropped, Kish ESS, clipping curve), profile
  metrics (JS divergence, PMF error) raw and reweighted, and their plot;
* :mod:`~openmmcgflow.cgbg.reference`: the atomistic reference by exact reweighting under a frozen
  metadynamics bias;
* :mod:`~openmmcgflow.cgbg.pipeline` and :mod:`~openmmcgflow.cgbg.mueller_brown`: alanine dipeptide and
  Mueller-Brown end to end (``benchmarks/cg_bg.py``, ``make demo``).
"""
from . import cnf, data, dcd, flow, force_matching, maps, mueller_brown, pipeline, reference, reweighting, storage, umbrella  # noqa: F401,E501
from .data import MetadynamicsSettings, alanine_metadynamics, dataset_from_trajectory, generate_dataset
from .cnf import train_cg_cnf, train_cnf
from .dcd import DCDReader, read_dcd
from .flow import (CHIRAL_CENTERS, CORE_BETA_BONDS, HEAVY_ATOM_BONDS, bead_bonds, cg_flow_model_bytes,
                   cg_internal_coordinates, cg_log_prob, train_cg_flow)
from .force_matching import ForceMatchResult, HarmonicPrior, force_match
from .maps import (CORE_BETA_BEADS, HEAVY_ATOM_BEADS, aggregated_map, aggregation_groups, alanine_dipeptide_map,
                   bead_labels, core_beta_map, find_atoms, heavy_atom_map, phi_psi_cvs, slice_map, torsion_cv)
from .reweighting import ReweightResult, cg_system, plot_reweighting, profile_metrics, reweight
from .storage import CGDataset, load_dataset
from .umbrella import UmbrellaDataset, load_umbrella_dataset, umbrella_windows

__all__ = ["MetadynamicsSettings", "alanine_metadynamics", "dataset_from_trajectory", "generate_dataset",
           "DCDReader", "read_dcd", "ForceMatchResult", "HarmonicPrior", "force_match", "aggregated_map", "aggregation_groups", "CORE_BETA_BEADS", "HEAVY_ATOM_BEADS", "alanine_dipeptide_map", "bead_labels",
           "core_beta_map", "find_atoms", "heavy_atom_map", "phi_psi_cvs", "slice_map", "torsion_cv", "CGDataset",
           "load_dataset", "CHIRAL_CENTERS", "CORE_BETA_BONDS", "HEAVY_ATOM_BONDS", "bead_bonds",
           "cg_flow_model_bytes", "cg_log_prob", "cg_internal_coordinates", "train_cg_flow", "UmbrellaDataset",
           "load_umbrella_dataset", "umbrella_windows", "ReweightResult", "cg_system", "plot_reweighting",
           "profile_metrics", "reweight", "train_cg_cnf", "train_cnf"]
