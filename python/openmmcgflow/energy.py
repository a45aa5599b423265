"""Batched potential energies and forces of an OpenMM System (the cost unit of every method)."""
import numpy as np
import openmm

from . import _core


def _positions_array(positions):
    """positions as a float64 array; something that is not numbers is refused naming the argument."""
    try:
        return np.asarray(positions, dtype=np.float64)
    except (TypeError, ValueError) as error:
        raise TypeError("positions: expected an array of shape (batch, N, 3) in nm, got %s (%s)"
                        % (type(positions).__name__, error)) from None


class EnergyTarget:
    """Energies and forces for batches of configurations from a pool of OpenMM Contexts.

    Parameters
    ----------
    system : openmm.System or str
        The System, or its XmlSerializer text. It is serialized and rebuilt once per thread,
        so no C++ object is shared with the caller.
    platform : str
        OpenMM platform name of the Contexts.
    threads : int
        Number of Contexts, each driven by its own thread; a batch is split into contiguous
        chunks, so results do not depend on the thread count.
    properties : dict, optional
        Platform properties, e.g. ``{"Threads": "1"}`` for CPU or ``{"Precision": "double"}``.
    force_groups : int
        Bit mask of force groups to evaluate (-1 = all).

    Every configuration passed to :meth:`evaluate` counts as one energy evaluation in its
    phase, finite or not (:attr:`evaluation_counts`).
    """

    def __init__(self, system, platform="Reference", threads=1, properties=None, force_groups=-1):
        if isinstance(system, openmm.System):
            xml = openmm.XmlSerializer.serialize(system)
        elif isinstance(system, str):
            xml = system
        else:
            raise TypeError("system must be an openmm.System or its XML serialization, got %s" % type(system).__name__)
        if not isinstance(threads, int) or threads < 1:
            raise ValueError("threads must be a positive integer, got %r" % (threads,))
        self._target = _core.EnergyTarget(xml, platform, threads, {str(k): str(v) for k, v in (properties or {}).items()},
                                          force_groups)

    @property
    def num_particles(self):
        return self._target.num_particles

    @property
    def num_threads(self):
        return self._target.num_threads

    def evaluate(self, positions, forces=True, phase="default"):
        """Energies (kJ/mol), forces (kJ/mol/nm) and finite flags for positions of shape (batch, N, 3) in nm.

        Returns ``(energies, forces, finite)``; ``forces`` is None when not requested. Energies are
        regularized when :meth:`set_energy_regularization` is on; :meth:`evaluate_raw` also
        returns the raw ones.
        """
        energies, f, finite, _ = self._target.evaluate(_positions_array(positions), forces, phase)
        return energies, f, finite

    def evaluate_raw(self, positions, forces=True, phase="default"):
        """Like :meth:`evaluate`, plus the unregularized energies as a fourth value."""
        return self._target.evaluate(_positions_array(positions), forces, phase)

    def set_energy_regularization(self, e_high, e_max):
        """E' = E below e_high, e_high + log(1 + E - e_high) above, capped at e_max (kJ/mol)."""
        self._target.set_energy_regularization(float(e_high), float(e_max))

    def clear_energy_regularization(self):
        self._target.clear_energy_regularization()

    def evaluation_count(self, phase):
        return self._target.evaluation_count(phase)

    @property
    def evaluation_counts(self):
        return dict(self._target.evaluation_counts)

    @property
    def total_evaluations(self):
        return self._target.total_evaluations

    def reset_evaluation_counts(self, phase=""):
        self._target.reset_evaluation_counts(phase)
