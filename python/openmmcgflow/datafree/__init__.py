"""Data-free coarse-graining: reverse-KL training of a latent model with adaptive tempering.

The method of Stupp & Koutsourelakis (and the tempering rule of Schoeberl, Zabaras &
Koutsourelakis): a :class:`SlowFastModel` (or an :class:`EncoderDecoderModel`, or a plain
:class:`Flow`) is trained by reverse KL against exp(-beta U) using only energies and forces of an
ordinary ``openmm.System``; beta rises from about 0 to ``beta_target`` in steps chosen so that the
relative KL increase stays below ``max_relative_increase`` (rule "kl", Eq. 23) or by shrinking
``max_step`` by 0.6 until it does (rule "shrink"). A model snapshot is kept for every visited beta.

Modules: ``energies`` (the energy adapters), ``schedule`` (:class:`DataFreeSchedule`, the training
settings), ``trainer`` (:class:`DataFreeTrainer`, :func:`train_data_free`, :func:`train_forward_kl`),
and the example systems' helpers shared by examples, tests and benchmarks: ``double_well``,
``gaussian_mixture`` and ``alanine``.
"""
from .energies import CartesianFrameEnergy, CoordinateEnergy, InternalCoordinateEnergy
from .schedule import DataFreeSchedule, cosine_learning_rate
from .trainer import DataFreeResult, DataFreeTrainer, train_data_free, train_forward_kl
from . import alanine, double_well, gaussian_mixture  # noqa: E402  (submodules)

__all__ = ["CoordinateEnergy", "InternalCoordinateEnergy", "CartesianFrameEnergy", "DataFreeSchedule",
           "cosine_learning_rate", "DataFreeResult", "DataFreeTrainer", "train_data_free", "train_forward_kl"]
