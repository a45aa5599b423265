"""A continuous normalizing flow over the CG coordinates, trained by conditional flow matching: the CG-BG
paper's own proposal (Chen, Zhao, Eckwert & Zavadlav, sec. 2.2 and app. C), beside the spline-coupling
flow of :mod:`~openmmcgflow.cgbg.flow`.

The CNF is a ``cg.Flow`` of one ``continuous_flow`` layer (``"coupling": "continuous"``): an MLP vector
field v(x, t) with a fixed 16-dimensional sinusoidal time embedding, integrated by adaptive
Dormand-Prince 5(4) at tolerances 1e-4 with the **exact** divergence, so log q is exact (no Hutchinson
estimator) and the importance weights are unbiased. It lives in the same coordinates as the coupling
flow: the normalized internal coordinates of the bead graph (:func:`.cg_internal_coordinates`; rigid
motions removed, so the density is invariant to translations and rotations by construction), with the
circular torsions on the circle (the field reads them as (cos, sin) and the flow-matching path follows
the shortest arc). Saved with the same position map as a ``boltzmann_generator`` model, it goes into
``BoltzmannGeneratorIntegrator`` and :func:`.reweight` unchanged (Reference and CPU platforms; the GPU
platforms refuse it).

Training (:func:`train_cnf`): AdamW with weight decay 1e-5 and a cosine schedule from 3e-4 to 1e-5
(the paper's C.2), batches of 256, optional minibatch optimal-transport pairing. The validation mean
-log q (an ODE solve per frame, on a fixed subset of the held-out frames) is evaluated every
``validate_every`` epochs and the best parameters are returned. Checkpoints resume bit for bit.
"""
import hashlib
import json
import os
import time

import numpy as np

from .. import _core as core
from .checkpoints import read_state, write_epoch
from .flow import _check_bonds, _positions_array, cg_internal_coordinates

DEFAULT_CNF = {"hidden": 128, "num_layers": 3, "time_embedding": 16, "activation": "silu", "atol": 1e-4, "rtol": 1e-4}
DEFAULT_CNF_OPTIONS = {"learning_rate": 3e-4, "weight_decay": 1e-5, "final_learning_rate": 1e-5}
CHECKPOINT_FORMAT = "openmmcgflow.cgbg.cnf_checkpoint"


def _fingerprint(y, settings):
    h = hashlib.sha256()
    h.update(np.ascontiguousarray(y, dtype="<f8").tobytes())
    h.update(json.dumps(settings, sort_keys=True).encode())
    return h.hexdigest()


def train_cnf(y, circular=(), *, epochs, batch_size=256, validation_fraction=0.1, seed=0, config=None, options=None,
              optimal_transport=False, validation_samples=512, validate_every=None, log_det=None, checkpoint=None,
              stop_after_epochs=None, progress=True, num_threads=None):
    """Train a CNF by conditional flow matching on the rows of ``y`` (n, dimension); ``circular`` lists the
    circular dimensions (angles in [-pi, pi)).

    ``config`` overrides :data:`DEFAULT_CNF` (builder keys of ``cg.Flow`` with ``"coupling": "continuous"``:
    hidden width, num_layers hidden layers, time_embedding, activation, atol, rtol); ``options`` overrides
    :data:`DEFAULT_CNF_OPTIONS` (``cg.ModelTrainer`` keys; AdamW, the cosine schedule spans all epochs).
    The split (``seed``) holds out ``validation_fraction``; the validation score is the mean -log q of
    ``validation_samples`` held-out frames drawn at random (the same ones every time), minus ``log_det`` (n,) of those frames when given (the
    position map's log|det J|, so the score is a density of the Cartesian coordinates, comparable with
    the coupling flow's), evaluated every ``validate_every`` epochs (default: 10 times per run) and after
    the last; the best parameters are returned. ``checkpoint``: a directory written atomically after each
    epoch; a call with the same arguments resumes (bit for bit). ``stop_after_epochs=k`` stops after k
    epochs of this call.

    Returns (flow, history): history has per-epoch 'train_loss' and 'learning_rate', the validated
    'validation_epochs' with their 'validation_nll', 'best_epoch', 'best_validation_nll', 'num_train',
    'num_validation', 'complete', 'seconds' (training) and 'validation_seconds'.
    """
    y = np.ascontiguousarray(np.asarray(y, dtype=float))
    if y.ndim == 1:
        y = y.reshape(-1, 1)
    if y.ndim != 2 or len(y) < 2:
        raise ValueError("y: expected an array of shape (n, dimension) with n >= 2, got shape %s" % (y.shape,))
    bad = ~np.isfinite(y).all(axis=1)
    if bad.any():
        raise ValueError("y: %d of %d rows are not finite (first: %d)" % (int(bad.sum()), len(y), int(np.flatnonzero(bad)[0])))
    dimension = y.shape[1]
    circular = sorted(int(c) for c in circular)
    if any(not 0 <= c < dimension for c in circular):
        raise ValueError("circular: indices must be in [0, %d), got %s" % (dimension, circular))
    for name, value in (("epochs", epochs), ("batch_size", batch_size), ("validation_samples", validation_samples)):
        if isinstance(value, bool) or int(value) != value or int(value) < 1:
            raise ValueError("%s: expected an integer >= 1, got %r" % (name, value))
    if not 0.0 < float(validation_fraction) < 1.0:
        raise ValueError("validation_fraction: must be in (0, 1), got %r" % (validation_fraction,))
    epochs, batch_size = int(epochs), int(batch_size)
    validate_every = max(1, epochs // 10) if validate_every is None else int(validate_every)
    if validate_every < 1:
        raise ValueError("validate_every: expected an integer >= 1, got %r" % (validate_every,))
    n = len(y)
    num_validation = int(round(float(validation_fraction) * n))
    if num_validation < 1 or n - num_validation < 1:
        raise ValueError("y: %d rows are too few for a %g validation split" % (n, validation_fraction))
    if log_det is not None:
        log_det = np.asarray(log_det, dtype=float).reshape(-1)
        if log_det.shape != (n,) or not np.all(np.isfinite(log_det)):
            raise ValueError("log_det: expected %d finite values, one per row of y" % n)

    cnf_settings = dict(DEFAULT_CNF)
    cnf_settings.update(config or {})
    for key in ("dimension", "circular", "coupling"):
        if key in cnf_settings:
            raise ValueError("config: %r is set by train_cnf" % key)
    cnf_settings.setdefault("seed", int(seed))
    train_options = dict(DEFAULT_CNF_OPTIONS)
    train_options.update(options or {})
    if train_options.setdefault("optimizer", "adamw") != "adamw":
        raise ValueError("options: the optimizer is AdamW, got %r" % (train_options["optimizer"],))
    if "cosine_steps" in train_options:
        raise ValueError("options: 'cosine_steps' is set from epochs and the batch size")

    rng = np.random.default_rng(int(seed))
    order = rng.permutation(n)
    validation, train = np.sort(order[:num_validation]), np.sort(order[num_validation:])
    scored = np.sort(order[:min(int(validation_samples), num_validation)])   # a random subset of the validation frames
    steps_per_epoch = -(-len(train) // batch_size)
    train_options["cosine_steps"] = epochs * steps_per_epoch
    settings = {"epochs": epochs, "batch_size": batch_size, "validation_fraction": float(validation_fraction),
                "seed": int(seed), "cnf": cnf_settings, "options": train_options, "circular": circular,
                "optimal_transport": bool(optimal_transport), "validation_samples": int(validation_samples),
                "validate_every": validate_every}
    history = {"train_loss": [], "learning_rate": [], "validation_epochs": [], "validation_nll": [],
               "best_epoch": -1, "best_validation_nll": float("inf"), "num_train": int(len(train)),
               "num_validation": int(num_validation), "complete": False, "seconds": 0.0, "validation_seconds": 0.0}

    start_epoch, best = 0, None
    fingerprint = _fingerprint(y if log_det is None else np.column_stack([y, log_det]), settings)
    stored = None if checkpoint is None else read_state(checkpoint, CHECKPOINT_FORMAT, fingerprint, settings, "CNF")
    if stored is not None:
        state, flow, trainer, best_arrays = stored
        best = None if best_arrays is None else best_arrays["parameters"]
        start_epoch = state["epoch"]
        history.update(state["history"])
    else:
        if checkpoint is not None:
            os.makedirs(checkpoint, exist_ok=True)
        flow = core.Flow(dict(cnf_settings, dimension=dimension, circular=circular, coupling="continuous"))
        trainer = core.ModelTrainer(flow, train_options)
    if num_threads is not None:
        flow.num_threads = int(num_threads)

    y_scored = y[scored]
    offset = 0.0 if log_det is None else log_det[scored]
    last_epoch = epochs if stop_after_epochs is None else min(epochs, start_epoch + int(stop_after_epochs))
    bar = None
    if progress and last_epoch > start_epoch:
        from tqdm.auto import tqdm
        bar = tqdm(total=epochs, initial=start_epoch, desc="CG CNF", unit="epoch")
    began, seconds_before = time.perf_counter(), float(history["seconds"])
    validation_seconds = 0.0
    try:
        for epoch in range(start_epoch, last_epoch):
            shuffled = train[np.random.default_rng([int(seed), epoch]).permutation(len(train))]
            losses = []
            for b, first in enumerate(range(0, len(shuffled), batch_size)):
                step_seed = (int(seed) << 32) + epoch * steps_per_epoch + b
                report = trainer.flow_matching_step(y[shuffled[first:first + batch_size]], step_seed,
                                                    optimal_transport=bool(optimal_transport))
                losses.append(report["loss"])
            history["train_loss"].append(float(np.mean(losses)))
            history["learning_rate"].append(float(trainer.learning_rate))
            if (epoch + 1) % validate_every == 0 or epoch + 1 == epochs:
                t0 = time.perf_counter()
                nll = float(np.mean(offset - flow.log_prob(y_scored)))
                validation_seconds += time.perf_counter() - t0
                history["validation_epochs"].append(epoch)
                history["validation_nll"].append(nll)
                if best is None or nll < history["best_validation_nll"]:
                    best = flow.get_parameters().copy()
                    history["best_epoch"], history["best_validation_nll"] = epoch, nll
                if bar is not None:
                    bar.set_postfix(validation_nll="%.3f" % nll)
            history["complete"] = epoch + 1 == epochs
            history["seconds"] = seconds_before + time.perf_counter() - began - validation_seconds
            history["validation_seconds"] = float(history["validation_seconds"]) + validation_seconds
            validation_seconds = 0.0
            if checkpoint is not None:
                write_epoch(checkpoint, epoch + 1, trainer, None if best is None else {"parameters": best},
                            {"format": CHECKPOINT_FORMAT, "format_version": 1, "fingerprint": fingerprint,
                             "settings": settings, "history": history})
            if bar is not None:
                bar.update(1)
    finally:
        if bar is not None:
            bar.close()
    if best is not None:
        flow.set_parameters(best)
    return flow, history


def train_cg_cnf(positions, bead_bonds, *, epochs, batch_size=256, validation_fraction=0.1, seed=0, config=None,
                 options=None, optimal_transport=False, validation_samples=512, validate_every=None, checkpoint=None,
                 stop_after_epochs=None, progress=True, num_threads=None):
    """A CNF over the CG internal coordinates of ``positions`` (n, beads, 3) nm or a
    :class:`~openmmcgflow.cgbg.CGDataset`, the bead graph given by ``bead_bonds`` (pairs, or 'heavy_atom' /
    'core_beta'): the coordinates and position map of :func:`.train_cg_flow`, the training of
    :func:`train_cnf` (the validation score is a density of the Cartesian CG coordinates, comparable with
    the coupling flow's). Returns (flow, position_map, history), as :func:`.train_cg_flow`;
    ``cg_flow_model_bytes(flow, position_map)`` saves it for ``BoltzmannGeneratorIntegrator``."""
    x = _positions_array(positions)
    pairs = _check_bonds(bead_bonds, x.shape[1])
    ic = cg_internal_coordinates(x, pairs)
    position_map = core.PositionMap.internal(ic)
    y, logdet = position_map.from_positions(x)
    circular = [d for d, c in enumerate(position_map.circular) if c]
    flow, history = train_cnf(y, circular, epochs=epochs, batch_size=batch_size,
                              validation_fraction=validation_fraction, seed=seed, config=config, options=options,
                              optimal_transport=optimal_transport, validation_samples=validation_samples,
                              validate_every=validate_every, log_det=logdet, checkpoint=checkpoint,
                              stop_after_epochs=stop_after_epochs, progress=progress, num_threads=num_threads)
    return flow, position_map, history


def sampling_cost(flow, n=10000, seed=1, num_threads=None):
    """Wall time of ``flow.sample(n)`` (samples with their log q) and, for a CNF, the vector-field
    evaluations per sample: {'seconds', 'samples', 'evaluations_per_sample' (None for a coupling flow),
    'failed'}. ``num_threads`` sets the flow's threads for the measurement (restored after)."""
    before = flow.num_threads
    if num_threads is not None:
        flow.num_threads = int(num_threads)
    continuous = any(layer["type"] == "continuous_flow" for layer in flow.config["layers"])
    try:
        if continuous:
            flow.reset_ode_statistics()
        t0 = time.perf_counter()
        _, log_q = flow.sample(int(n), int(seed))
        seconds = time.perf_counter() - t0
        stats = flow.ode_statistics() if continuous else None
    finally:
        flow.num_threads = before
    return {"seconds": seconds, "samples": int(n),
            "evaluations_per_sample": None if stats is None else stats["evaluations_per_sample"],
            "failed": int(np.sum(~np.isfinite(log_q)))}
