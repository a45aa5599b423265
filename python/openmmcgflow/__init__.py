"""OpenMM-CGFlow: learned flow proposals and neural potentials of mean force inside OpenMM.

Two extension modules sit under this package:

* ``openmmcgflow.plugin`` (SWIG): OpenMM-facing classes such as :class:`PMFForce`, which are
  ordinary ``openmm.Force`` objects (``system.addForce(force)``, XML serialization).
* ``openmmcgflow._core`` (pybind11): numerical work on numpy arrays (MLP ensembles,
  model files, safetensors).

Models travel between the two as model-file bytes.
"""
import openmm  # noqa: F401  (loads OpenMM and, through its plugin directory, our kernels)

from . import _core
from ._core import CGFlowError, EncoderDecoderModel, Flow, FlowTrainer, SlowFastModel, MLPEnsemble, load_flow_trainer, load_safetensors, save_safetensors
from .energy import EnergyTarget
from .plugin import BoltzmannGeneratorIntegrator, PMFForce
from .pmf import set_ensemble_parameters
from ._core import PositionMap, decode_boltzmann_generator, encode_boltzmann_generator
from .generator import BoltzmannGeneratorReporter, evaluate_proposals, write_proposals
from . import coordinates, datafree, plots, stats, systems  # noqa: E402  (submodules)

__version__ = "0.1.0"

# Python convenience on the SWIG class: parameters from numpy without writing a file.
PMFForce.setEnsembleParameters = set_ensemble_parameters

__all__ = ["PMFForce", "BoltzmannGeneratorIntegrator", "PositionMap", "encode_boltzmann_generator",
           "decode_boltzmann_generator", "BoltzmannGeneratorReporter", "evaluate_proposals", "write_proposals",
           "EnergyTarget", "MLPEnsemble", "CGFlowError", "Flow", "FlowTrainer", "SlowFastModel", "EncoderDecoderModel", "load_flow_trainer",
           "load_safetensors", "save_safetensors",
           "set_ensemble_parameters"]
