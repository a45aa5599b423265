"""OpenMM-CGFlow: learned flow proposals and neural potentials of mean force inside OpenMM.

Two extension modules sit under this package:

* ``openmmcgflow.plugin`` (SWIG): the OpenMM-facing classes :class:`PMFForce` and
  :class:`BoltzmannGeneratorIntegrator`, ordinary ``openmm.Force`` / ``openmm.Integrator`` objects
  (``system.addForce(force)``, CompoundIntegrator, XML serialization); ``help()`` shows their docs.
* ``openmmcgflow._core`` (pybind11): the numerical core on numpy arrays (MLP ensembles, flows and
  their trainer, the latent models, model files, coordinates, statistics).

Models travel between the two as model-file bytes. The modules mirror the workflows a user runs:

* ``datafree``: data-free coarse-graining (energies, the schedule, the trainer, system helpers);
* ``cgbg``: CG Boltzmann generators, so far the data stage (alanine-dipeptide CG maps, CG datasets with
  unbiased mapped forces from MD, metadynamics or DCD files);
* ``generator``: Boltzmann generators inside OpenMM (model files, priced batches, reporters);
* ``pmf``: numpy-side MLP ensembles into ``PMFForce``; ``PMFTrainer`` fits them to forces or labels;
* ``energy``, ``coordinates``, ``systems``: batched energies, Z-matrices and CG maps, test systems;
* ``stats``, ``plots``: the weights engine and PNG plots.

The CG Boltzmann generators' force-matching, flow and reweighting stages are to land in ``cgbg``, and
the active-learning workflow beside it as ``active_learning``.
"""
import openmm  # noqa: F401  (loads OpenMM and, through its plugin directory, our kernels)

from . import _core
from ._core import CGFlowError, EncoderDecoderModel, Flow, ModelTrainer, SlowFastModel, MLPEnsemble, load_flow_trainer, load_safetensors, save_safetensors
from .energy import EnergyTarget
from .plugin import BoltzmannGeneratorIntegrator, CGMonteCarloIntegrator, PMFForce
from .pmf import PMFTrainer, set_ensemble_parameters
from ._core import PositionMap, decode_boltzmann_generator, encode_boltzmann_generator
from .generator import BoltzmannGeneratorReporter, evaluate_proposals, write_proposals
from . import active_learning, cgbg, coordinates, datafree, plots, stats, systems  # noqa: E402  (submodules)

__version__ = "0.1.0"

# Python convenience on the SWIG class: parameters from numpy without writing a file.
PMFForce.setEnsembleParameters = set_ensemble_parameters

__all__ = ["PMFForce", "BoltzmannGeneratorIntegrator", "CGMonteCarloIntegrator", "PositionMap", "encode_boltzmann_generator",
           "decode_boltzmann_generator", "BoltzmannGeneratorReporter", "evaluate_proposals", "write_proposals",
           "EnergyTarget", "MLPEnsemble", "PMFTrainer", "CGFlowError", "Flow", "ModelTrainer", "SlowFastModel", "EncoderDecoderModel", "load_flow_trainer",
           "load_safetensors", "save_safetensors",
           "set_ensemble_parameters"]
