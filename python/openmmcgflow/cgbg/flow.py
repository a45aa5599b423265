"""A normalizing flow over the CG coordinates: the flow stage of the CG Boltzmann generator.

A Z-matrix over the CG bead graph (``ZMatrix.from_bonds``; rigid motions removed, the *full*
Jacobian convention, normalized from the data) and a rational-quadratic spline-coupling flow over
its internal coordinates (circular torsions on the circle), trained by forward KL (maximum
likelihood) with AdamW and a cosine schedule on a 90/10 split, keeping the best-validation
parameters. log q is a density of the Cartesian CG coordinates, comparable with -beta U_PMF, and
``cg.encode_boltzmann_generator(flow, position_map)`` saves it as a ``boltzmann_generator`` model
over the CG System's particles for ``BoltzmannGeneratorIntegrator``.
"""
import hashlib
import json
import os
import time

import numpy as np

from .. import _core as core
from ..coordinates import InternalCoordinates, ZMatrix, detect_chirality
from .checkpoints import read_state, write_epoch

# Bead bonds of the alanine-dipeptide maps of cgbg.maps (bead indices as in HEAVY_ATOM_BEADS /
# CORE_BETA_BEADS). Heavy atom: CH3-C(=O)-N-CA(-CB)-C(=O)-N-CH3; core beta: C-N-CA(-CB)-C-N.
HEAVY_ATOM_BONDS = [(0, 1), (1, 2), (1, 3), (3, 4), (4, 5), (4, 6), (6, 7), (6, 8), (8, 9)]
CORE_BETA_BONDS = [(0, 1), (1, 2), (2, 3), (2, 4), (4, 5)]
BEAD_BONDS = {"heavy_atom": HEAVY_ATOM_BONDS, "core_beta": CORE_BETA_BONDS}
# The chiral centre (CA, N, C, CB) in bead indices, for coordinates.detect_chirality.
CHIRAL_CENTERS = {"heavy_atom": (4, 3, 6, 5), "core_beta": (2, 1, 4, 3)}

DEFAULT_FLOW = {"num_layers": 8, "num_bins": 8, "bound": 5.0, "hidden": 128, "num_blocks": 1}
DEFAULT_OPTIONS = {"learning_rate": 1e-3, "weight_decay": 1e-5, "final_learning_rate": 1e-5,
                   "max_gradient_norm": 100.0}
CHECKPOINT_FORMAT = "openmmcgflow.cgbg.flow_checkpoint"


def bead_bonds(mapping):
    """The bead bonds of an alanine map of :mod:`~openmmcgflow.cgbg.maps` ('heavy_atom' or 'core_beta')."""
    if mapping not in BEAD_BONDS:
        raise ValueError("mapping: expected 'heavy_atom' or 'core_beta', got %r" % (mapping,))
    return list(BEAD_BONDS[mapping])


def _positions_array(positions, argument="positions"):
    if hasattr(positions, "positions") and not isinstance(positions, np.ndarray):
        positions = positions.positions          # a CGDataset
    try:
        x = np.asarray(positions, dtype=float)
    except (TypeError, ValueError) as error:
        raise TypeError("%s: expected an array of shape (n, beads, 3) or a CGDataset: %s" % (argument, error))
    if x.ndim != 3 or x.shape[2] != 3 or x.shape[1] < 3:
        raise ValueError("%s: expected shape (n, beads, 3) with at least 3 beads, got %s" % (argument, x.shape))
    bad = ~np.isfinite(x).all(axis=(1, 2))
    if bad.any():
        raise ValueError("%s: %d of %d configurations are not finite (first: %d)"
                         % (argument, int(bad.sum()), len(x), int(np.flatnonzero(bad)[0])))
    return np.ascontiguousarray(x)


def _check_bonds(bonds, num_beads, argument="bead_bonds"):
    if isinstance(bonds, str):
        if bonds not in BEAD_BONDS:
            raise ValueError("%s: expected bead pairs or 'heavy_atom' / 'core_beta', got %r" % (argument, bonds))
        bonds = BEAD_BONDS[bonds]
    try:
        pairs = [(int(a), int(b)) for a, b in bonds]
    except (TypeError, ValueError):
        raise TypeError("%s: expected a list of (bead, bead) pairs, or 'heavy_atom' / 'core_beta'" % argument)
    seen = set()
    neighbours = [[] for _ in range(num_beads)]
    for k, (a, b) in enumerate(pairs):
        for bead in (a, b):
            if not 0 <= bead < num_beads:
                raise ValueError("%s[%d] = (%d, %d): bead %d does not exist (the positions have %d beads)"
                                 % (argument, k, a, b, bead, num_beads))
        if a == b:
            raise ValueError("%s[%d] = (%d, %d) bonds a bead to itself" % (argument, k, a, b))
        if (min(a, b), max(a, b)) in seen:
            raise ValueError("%s[%d] = (%d, %d) repeats an earlier bond" % (argument, k, a, b))
        seen.add((min(a, b), max(a, b)))
        neighbours[a].append(b)
        neighbours[b].append(a)
    reached, stack = {0}, [0]
    while stack:
        for w in neighbours[stack.pop()]:
            if w not in reached:
                reached.add(w)
                stack.append(w)
    if len(reached) != num_beads:
        missing = sorted(set(range(num_beads)) - reached)
        raise ValueError("%s: the bead graph is not connected: beads %s cannot be reached from bead 0"
                         % (argument, missing))
    return pairs


def _circular_mean(values):
    return np.arctan2(np.sin(values).mean(axis=0), np.cos(values).mean(axis=0))


def cg_internal_coordinates(positions, bead_bonds):
    """Normalized internal coordinates of the bead graph, fitted to ``positions``.

    The Z-matrix is ``ZMatrix.from_bonds(beads, bonds)`` (bridge torsions circular; a branch such
    as C-beta is placed by a dependent dihedral, whose range keeps the handedness). The
    normalization is shifted by the data's mean internal coordinates (circular means for
    dihedrals) and scaled per type (bonds, angles, dependent dihedrals) by the root-mean-square of
    the columns' standard deviations; circular torsions are not scaled. Jacobian convention: full.
    """
    x = _positions_array(positions)
    pairs = _check_bonds(bead_bonds, x.shape[1])
    zmatrix = ZMatrix.from_bonds(x.shape[1], pairs, [])
    raw = InternalCoordinates(zmatrix)
    raw.jacobian_convention = "full"
    q, _ = raw.to_internal(x)
    types = np.array(zmatrix.column_types)
    dihedral = types == "dihedral"
    mean = q.mean(axis=0)
    mean[dihedral] = _circular_mean(q[:, dihedral])
    deviation = q - mean
    deviation[:, dihedral] = np.angle(np.exp(1j * deviation[:, dihedral]))
    circular = np.zeros(len(types), bool)
    circular[list(zmatrix.circular_columns)] = True
    scales = {}
    for kind in ("bond", "angle", "dihedral"):
        columns = (types == kind) & ~circular
        if not columns.any():
            scales[kind] = 1.0
            continue
        scale = float(np.sqrt(np.mean(deviation[:, columns].var(axis=0))))
        if not scale > 1e-9:
            raise ValueError("positions: the %s coordinates of the bead graph do not vary (std %g); a density "
                             "over constrained coordinates is not defined" % (kind, scale))
        scales[kind] = scale
    reference, _ = raw.to_cartesian(mean[None, :])
    ic = InternalCoordinates(zmatrix)
    ic.jacobian_convention = "full"
    ic.set_normalization(reference[0], bond=scales["bond"], angle=scales["angle"], dihedral=scales["dihedral"])
    return ic


def cg_log_prob(flow, position_map, positions):
    """log q of Cartesian CG configurations (n, beads, 3): log q_flow(y) - log|det J| (full convention)."""
    x = _positions_array(positions)
    if x.shape[1] != position_map.num_particles:
        raise ValueError("positions: have %d beads but the position map has %d particles"
                         % (x.shape[1], position_map.num_particles))
    y, logdet = position_map.from_positions(x)
    return flow.log_prob(y) - logdet


def cg_flow_model_bytes(flow, position_map, info=None):
    """The bytes of a ``boltzmann_generator`` model file (``cg.encode_boltzmann_generator``)."""
    if flow.dimension != position_map.dimension:
        raise ValueError("flow: has dimension %d but the position map has %d internal coordinates"
                         % (flow.dimension, position_map.dimension))
    return core.encode_boltzmann_generator(flow, position_map, info)


def _fingerprint(x, pairs, settings):
    h = hashlib.sha256()
    h.update(np.ascontiguousarray(x, dtype="<f8").tobytes())
    h.update(json.dumps([pairs, settings], sort_keys=True).encode())
    return h.hexdigest()


def train_cg_flow(positions, bead_bonds, *, epochs=20, batch_size=256, validation_fraction=0.1, seed=0,
                  flow_config=None, options=None, chiral_center=None, progress=True, checkpoint=None,
                  stop_after_epochs=None, num_threads=None):
    """Train a spline-coupling flow over the CG internal coordinates by forward KL.

    positions: (n, beads, 3) nm or a :class:`~openmmcgflow.cgbg.CGDataset`. bead_bonds: bead pairs, or
    'heavy_atom' / 'core_beta'. ``flow_config`` overrides :data:`DEFAULT_FLOW` (builder keys of
    ``cg.Flow``); ``options`` overrides :data:`DEFAULT_OPTIONS` (``cg.ModelTrainer`` keys; the
    optimizer is AdamW and the cosine schedule spans all ``epochs``). The split (``seed``) holds
    out ``validation_fraction``; the validation mean -log q (a density of the Cartesian CG
    coordinates, nats) is evaluated after every epoch and the best parameters are returned.
    ``checkpoint``: a directory; after each epoch the trainer, the best parameters and the state
    are written there atomically, and a call with the same arguments resumes (bit for bit).
    ``stop_after_epochs=k`` stops after k epochs of this call. ``chiral_center`` (e.g.
    :data:`CHIRAL_CENTERS` ['core_beta']) counts the data's L/D/undetermined frames into the history.

    Returns (flow, position_map, history): the flow holds the best-validation parameters; history
    has per-epoch 'train_loss' (mean -log q_flow(y) of the steps), 'validation_nll',
    'learning_rate', and 'best_epoch', 'best_validation_nll', 'num_train', 'num_validation',
    'complete', 'seconds', 'data_chirality'. The validation frames are
    ``sorted(np.random.default_rng(seed).permutation(n)[:round(validation_fraction * n)])``.
    """
    x = _positions_array(positions)
    pairs = _check_bonds(bead_bonds, x.shape[1])
    if int(epochs) < 1:
        raise ValueError("epochs: must be >= 1, got %r" % (epochs,))
    if int(batch_size) < 1:
        raise ValueError("batch_size: must be >= 1, got %r" % (batch_size,))
    if not 0.0 < float(validation_fraction) < 1.0:
        raise ValueError("validation_fraction: must be in (0, 1), got %r" % (validation_fraction,))
    n = len(x)
    num_validation = int(round(validation_fraction * n))
    if num_validation < 1 or n - num_validation < 1:
        raise ValueError("positions: %d configurations are too few for a %g validation split"
                         % (n, validation_fraction))
    flow_settings = dict(DEFAULT_FLOW)
    flow_settings.update(flow_config or {})
    for key in ("dimension", "circular"):
        if key in flow_settings:
            raise ValueError("flow_config: %r is set from the bead graph" % key)
    flow_settings.setdefault("seed", int(seed))
    train_options = dict(DEFAULT_OPTIONS)
    train_options.update(options or {})
    if train_options.setdefault("optimizer", "adamw") != "adamw":
        raise ValueError("options: the optimizer is AdamW, got %r" % (train_options["optimizer"],))
    if "cosine_steps" in train_options:
        raise ValueError("options: 'cosine_steps' is set from epochs and the batch size")

    ic = cg_internal_coordinates(x, pairs)
    position_map = core.PositionMap.internal(ic)
    y, logdet = position_map.from_positions(x)
    circular = [d for d, c in enumerate(position_map.circular) if c]

    rng = np.random.default_rng(int(seed))
    order = rng.permutation(n)
    validation, train = np.sort(order[:num_validation]), np.sort(order[num_validation:])
    steps_per_epoch = -(-len(train) // int(batch_size))
    train_options["cosine_steps"] = int(epochs) * steps_per_epoch
    settings = {"epochs": int(epochs), "batch_size": int(batch_size), "validation_fraction": float(validation_fraction),
                "seed": int(seed), "flow": flow_settings, "options": train_options}

    history = {"train_loss": [], "validation_nll": [], "learning_rate": [], "best_epoch": -1,
               "best_validation_nll": float("inf"), "num_train": int(len(train)), "num_validation": int(num_validation),
               "complete": False, "seconds": 0.0}
    if chiral_center is not None:
        chirality = detect_chirality(x, list(chiral_center))
        history["data_chirality"] = {"L": int(np.sum(chirality == 1)), "D": int(np.sum(chirality == -1)),
                                     "undetermined": int(np.sum(chirality == 0))}

    start_epoch, best = 0, None
    fingerprint = _fingerprint(x, pairs, settings)
    stored = None if checkpoint is None else read_state(checkpoint, CHECKPOINT_FORMAT, fingerprint, settings, "CG-flow",
                                                        "positions or bonds")
    if stored is not None:
        state, flow, trainer, best_arrays = stored
        best = best_arrays["parameters"]
        if not np.array_equal(best_arrays["validation"], validation):
            raise ValueError("checkpoint: the stored validation split differs from seed %d's" % seed)
        start_epoch = state["epoch"]
        history.update(state["history"])
    else:
        if checkpoint is not None:
            os.makedirs(checkpoint, exist_ok=True)
        flow = core.Flow(dict(flow_settings, dimension=position_map.dimension, circular=circular))
        trainer = core.ModelTrainer(flow, train_options)
    if num_threads is not None:
        flow.num_threads = int(num_threads)

    y_validation, logdet_validation = y[validation], logdet[validation]
    last_epoch = int(epochs) if stop_after_epochs is None else min(int(epochs), start_epoch + int(stop_after_epochs))
    bar = None
    if progress and last_epoch > start_epoch:
        from tqdm.auto import tqdm
        bar = tqdm(total=int(epochs), initial=start_epoch, desc="CG flow", unit="epoch")
    began, seconds_before = time.perf_counter(), float(history["seconds"])
    try:
        for epoch in range(start_epoch, last_epoch):
            shuffled = train[np.random.default_rng([int(seed), epoch]).permutation(len(train))]
            losses = []
            for first in range(0, len(shuffled), int(batch_size)):
                report = trainer.forward_kl_step(y[shuffled[first:first + int(batch_size)]])
                losses.append(report["loss"])
            nll = float(np.mean(logdet_validation - flow.log_prob(y_validation)))
            history["train_loss"].append(float(np.mean(losses)))
            history["validation_nll"].append(nll)
            history["learning_rate"].append(float(trainer.learning_rate))
            if best is None or nll < history["best_validation_nll"]:
                best = flow.get_parameters().copy()
                history["best_epoch"], history["best_validation_nll"] = epoch, nll
            history["complete"] = epoch + 1 == int(epochs)
            history["seconds"] = seconds_before + time.perf_counter() - began
            if checkpoint is not None:
                write_epoch(checkpoint, epoch + 1, trainer, {"parameters": best, "validation": validation},
                            {"format": CHECKPOINT_FORMAT, "format_version": 1, "fingerprint": fingerprint,
                             "settings": settings, "history": history})
            if bar is not None:
                bar.set_postfix(validation_nll="%.3f" % nll)
                bar.update(1)
    finally:
        if bar is not None:
            bar.close()
    history["seconds"] = seconds_before + time.perf_counter() - began
    if best is not None:
        flow.set_parameters(best)
    return flow, position_map, history
