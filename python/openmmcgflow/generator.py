"""Boltzmann generators inside OpenMM: model files, batches of priced proposals, and reporters.

A model for :class:`BoltzmannGeneratorIntegrator` is a flow plus a :class:`PositionMap`, saved
together with :func:`encode_boltzmann_generator`. The integrator prices proposals with the
Context's own forces; :func:`evaluate_proposals` returns a batch as numpy arrays and
:class:`BoltzmannGeneratorReporter` writes a chain (or a batch, with :func:`write_proposals`) to
DCD with a CSV of log q, U and log w next to it.
"""
import csv
import io
import os
from dataclasses import dataclass

import numpy as np
import openmm
from openmm import app

from ._core import PositionMap, decode_boltzmann_generator, encode_boltzmann_generator  # noqa: F401
from .files import atomic_write_text
from .plugin import BoltzmannGeneratorIntegrator

CSV_COLUMNS = ("index", "step", "log_q", "energy_kj_mol", "log_w", "accepted")


@dataclass
class Proposals:
    """n priced proposals: positions (n, N, 3) nm, log q(x), U (kJ/mol), log w = -beta U - log q."""
    positions: np.ndarray
    log_q: np.ndarray
    energy: np.ndarray
    log_w: np.ndarray


def find_integrator(integrator, kind):
    """The integrator itself if it is a ``kind`` (one of the plugin's SWIG integrator classes), or the first one
    of that kind inside a CompoundIntegrator (SWIG hands inner integrators back as openmm.Integrator)."""
    if kind.isinstance(integrator):
        return kind.cast(integrator)
    if isinstance(integrator, openmm.CompoundIntegrator):
        for i in range(integrator.getNumIntegrators()):
            inner = integrator.getIntegrator(i)
            if kind.isinstance(inner):
                return kind.cast(inner)
    raise ValueError("integrator: neither a %s nor a CompoundIntegrator holding one" % kind.__name__)


def find_generator(integrator):
    """The BoltzmannGeneratorIntegrator itself, or the one inside a CompoundIntegrator."""
    return find_integrator(integrator, BoltzmannGeneratorIntegrator)


def evaluate_proposals(integrator, n):
    """Draw and price n proposals without moving the chain (see BoltzmannGeneratorIntegrator.evaluateProposals)."""
    generator = find_generator(integrator)
    if int(n) < 1:
        raise ValueError("n: must be >= 1, got %r" % (n,))
    generator.evaluateProposals(int(n))
    positions = np.asarray(generator.getBatchPositions(), dtype=float).reshape(int(n), generator.getModelNumParticles(), 3)
    return Proposals(positions, np.asarray(generator.getBatchLogQ(), dtype=float),
                     np.asarray(generator.getBatchEnergies(), dtype=float),
                     np.asarray(generator.getBatchLogWeights(), dtype=float))


def _open_csv(path):
    new = not os.path.exists(path) or os.path.getsize(path) == 0
    handle = open(path, "a", newline="")
    writer = csv.writer(handle)
    if new:
        writer.writerow(CSV_COLUMNS)
        handle.flush()
    return handle, writer


def write_proposals(proposals, topology, dcd_path, csv_path):
    """Write a batch from :func:`evaluate_proposals` to a DCD trajectory and a CSV of log q, U, log w."""
    n = len(proposals.log_q)
    if proposals.positions.shape[1] != topology.getNumAtoms():
        raise ValueError("topology: has %d atoms but the proposals have %d particles"
                         % (topology.getNumAtoms(), proposals.positions.shape[1]))
    with open(dcd_path, "wb") as handle:
        dcd = app.DCDFile(handle, topology, 1.0)
        for s in range(n):
            dcd.writeModel(proposals.positions[s] * openmm.unit.nanometer)
    table = io.StringIO(newline="")
    writer = csv.writer(table)
    writer.writerow(CSV_COLUMNS)
    for s in range(n):
        writer.writerow([s, "", repr(float(proposals.log_q[s])), repr(float(proposals.energy[s])),
                         repr(float(proposals.log_w[s])), ""])
    atomic_write_text(csv_path, table.getvalue())  # a reader never sees half a table


class BoltzmannGeneratorReporter:
    """An OpenMM reporter for Simulations that use a BoltzmannGeneratorIntegrator (alone or inside a
    CompoundIntegrator). Every ``report_interval`` steps it appends the current positions to a DCD
    file and one CSV row: the step, and log q, U, log w and acceptance of the LAST flow proposal.

    ``accepted_only=True`` writes a frame only when the last proposal was accepted (the chain's new
    states; in Importance mode every proposal is). Rows are flushed as they are written.
    """

    def __init__(self, dcd_path, csv_path, report_interval=1, accepted_only=False):
        if int(report_interval) < 1:
            raise ValueError("report_interval: must be >= 1, got %r" % (report_interval,))
        self._interval = int(report_interval)
        self._accepted_only = bool(accepted_only)
        self._dcd_path = dcd_path
        self._dcd_handle = None
        self._dcd = None
        self._csv_handle, self._csv = _open_csv(csv_path)
        self._rows = 0

    def describeNextReport(self, simulation):
        steps = self._interval - simulation.currentStep % self._interval
        return (steps, True, False, False, False)

    def report(self, simulation, state):
        generator = find_generator(simulation.integrator)
        accepted = bool(generator.getLastAccepted())
        if self._accepted_only and not accepted:
            return
        if self._dcd is None:
            self._dcd_handle = open(self._dcd_path, "wb")
            self._dcd = app.DCDFile(self._dcd_handle, simulation.topology, 1.0, simulation.currentStep, self._interval)
        self._dcd.writeModel(state.getPositions())
        self._csv.writerow([self._rows, simulation.currentStep, repr(generator.getLastLogQ()),
                            repr(generator.getLastEnergy()), repr(generator.getLastLogWeight()), int(accepted)])
        self._csv_handle.flush()
        self._dcd_handle.flush()
        self._rows += 1

    def close(self):
        if self._dcd_handle is not None:
            self._dcd_handle.close()
        self._csv_handle.close()

    def __del__(self):
        try:
            self.close()
        except Exception:
            pass
