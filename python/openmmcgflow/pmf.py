"""Neural PMFs: numpy-side MLP ensembles into the OpenMM-side PMFForce, and their training
(:class:`PMFTrainer`: force matching or free-energy labels, with progress and resumable checkpoints)."""
import hashlib
import json
import os

import numpy as np
from tqdm import tqdm

from ._core import MLPEnsemble
from .files import atomic_save_npz
from ._core import PMFTrainer as _CorePMFTrainer


def set_ensemble_parameters(force, weights, biases, activation="sigmoid", output_activation="identity"):
    """Set a PMFForce's model from numpy arrays, without writing a file.

    Parameters
    ----------
    force : PMFForce
    weights : list over ensemble members of lists over layers of arrays with shape (out, in)
    biases : list over ensemble members of lists over layers of arrays with shape (out,)
    activation, output_activation : str
        One of identity, tanh, sigmoid, softplus, silu, relu.

    Call ``force.updateParametersInContext(context)`` afterwards to update a live Context.
    """
    ensemble = MLPEnsemble.from_arrays(weights, biases, activation, output_activation)
    force.setModelBytes(ensemble.to_bytes())
    return ensemble


def affine_ensemble(ensemble, input_mean=0.0, input_scale=1.0, output_scale=1.0):
    """The ensemble of x -> output_scale * g((x - input_mean) / input_scale) for each member g: the input scaling
    folded into the first layer (W / s, b - W mu / s) and the output scaling into the last, so a model fitted
    on standardized inputs, or in other energy units (k_B T), loads into a PMFForce that feeds it raw
    features and wants kJ/mol. ``input_mean`` and ``input_scale`` are scalars or one value per input."""
    d = ensemble.to_dict()
    weights = [[np.array(w, dtype=float) for w in member] for member in d["weights"]]
    biases = [[np.array(b, dtype=float).ravel() for b in member] for member in d["biases"]]
    inputs = weights[0][0].shape[1]
    mean = _per_input(input_mean, inputs, "input_mean")
    scale = _per_input(input_scale, inputs, "input_scale")
    if np.any(scale == 0):
        raise ValueError("input_scale: must be nonzero, got %r" % (input_scale,))
    output_scale = float(output_scale)
    if not (np.isfinite(output_scale) and output_scale != 0):
        raise ValueError("output_scale: must be finite and nonzero, got %r" % (output_scale,))
    for ws, bs in zip(weights, biases):
        ws[0] = ws[0] / scale[None, :]
        bs[0] = bs[0] - ws[0] @ mean
        ws[-1] = ws[-1] * output_scale
        bs[-1] = bs[-1] * output_scale
    return MLPEnsemble.from_arrays(weights, biases, d["activation"], d["output_activation"])


def _per_input(values, inputs, argument):
    """A scalar or one finite value per input, as an array of ``inputs`` values; else a ValueError naming it."""
    array = np.asarray(values, dtype=float)
    if array.ndim > 1 or (array.ndim == 1 and array.shape[0] not in (1, inputs)):
        raise ValueError("%s: expected a scalar or %d values (one per input), got shape %s"
                         % (argument, inputs, array.shape))
    if not np.all(np.isfinite(array)):
        raise ValueError("%s: must be finite, got %r" % (argument, values))
    return np.broadcast_to(array, (inputs,))


def _leading_size(values):
    """The number of samples (leading dimension) of an array-like, or None if it has no shape."""
    shape = getattr(values, "shape", None)
    if shape is None:
        try:
            shape = np.shape(values)
        except Exception:  # noqa: BLE001 - not array-like: the core names the argument
            return None
    return shape[0] if len(shape) > 0 else None


class PMFTrainer(_CorePMFTrainer):
    """Fits the MLPEnsemble a PMFForce evaluates to forces (force matching) or to free-energy labels.

    The core trainer (``help(openmmcgflow._core.PMFTrainer)`` lists the options) with what a long fit
    needs around it: ``progress`` (a tqdm bar over epochs, with the members' mean validation loss)
    and ``checkpoint`` (a file path: the whole state of the fit is written there atomically after
    every ``checkpoint_every`` epochs and at the end, and a fit started with an existing checkpoint
    continues from it, bit-identical to an uninterrupted fit with the same data and options; a
    checkpoint written with other options or data is refused).
    """

    def __init__(self, ensemble, features=None, options=None):
        super().__init__(ensemble, features, options)
        # What the fit starts from (architecture, initialization, input scaling folded into the first
        # layer): a checkpoint of a fit that started elsewhere is refused instead of silently resumed.
        self._initial_model = hashlib.sha256(ensemble.to_bytes()).hexdigest()

    def fit_forces(self, positions, forces, box=None, *, progress=True, checkpoint=None, checkpoint_every=1):
        """Force matching: positions and target forces (n, N, 3) in nm and kJ/mol/nm. Returns the history.

        An empty batch, or one in which every sample of ``positions`` or ``forces`` is non-finite, raises a
        ValueError (CGFlowError) naming the argument; single non-finite samples are skipped (``num_skipped``)."""
        return self._fit(_CorePMFTrainer.fit_forces, (positions, forces, box), "force matching", progress,
                         checkpoint, checkpoint_every, (("positions", positions), ("forces", forces)))

    def fit_labels(self, inputs, energies, *, progress=True, checkpoint=None, checkpoint_every=1):
        """Labels: feature values (n, input_size) and target energies (n,) in kJ/mol. Returns the history.

        Empty or all-non-finite ``inputs`` or ``energies`` raise as for :meth:`fit_forces`."""
        return self._fit(_CorePMFTrainer.fit_labels, (inputs, energies), "label fit", progress, checkpoint,
                         checkpoint_every, (("inputs", inputs), ("energies", energies)))

    def _fit(self, fit, arguments, description, progress, checkpoint, checkpoint_every, samples):
        if int(checkpoint_every) < 1:
            raise ValueError("checkpoint_every: must be >= 1, got %r" % (checkpoint_every,))
        for name, values in samples:
            if _leading_size(values) == 0:
                raise ValueError("%s: an empty batch (0 samples); the fit needs at least one" % name)
        resume = _read_checkpoint(checkpoint, self.options, self._initial_model) \
            if checkpoint is not None and os.path.exists(checkpoint) else None
        bar = tqdm(desc=description, unit="epoch", disable=not progress,
                   initial=resume["epochs_done"] if resume is not None else 0)

        def on_epoch(state):
            if bar.total is None:
                bar.total = state["num_epochs"]
            bar.update(state["epochs_done"] - bar.n)
            validation = state["history"]["validation_loss"][state["epochs_done"] - 1]
            if np.all(np.isfinite(validation)):
                bar.set_postfix(validation_loss="%.4g" % float(np.mean(validation)))
            done = state["epochs_done"] == state["num_epochs"]
            if checkpoint is not None and (done or state["epochs_done"] % int(checkpoint_every) == 0):
                _write_checkpoint(checkpoint, state, self.options, self._initial_model)

        # A batch whose every sample is non-finite: the core's CGFlowError names positions / forces
        # (inputs / energies), whichever made the samples unusable.
        try:
            return fit(self, *arguments, on_epoch=on_epoch, resume=resume)
        finally:
            bar.close()


def _write_checkpoint(path, state, options, initial_model):
    """The state of a fit after an epoch, as one .npz (arrays) with its scalars and options as JSON."""
    history = state["history"]
    arrays = {"train_loss": history["train_loss"], "validation_loss": history["validation_loss"]}
    members = []
    for m, member in enumerate(state["members"]):
        for key in ("parameters", "best_parameters", "first_moment", "second_moment"):
            arrays["member%d.%s" % (m, key)] = member[key]
        arrays["member%d.train_indices" % m] = history["train_indices"][m]
        arrays["member%d.validation_indices" % m] = history["validation_indices"][m]
        members.append({key: member[key] for key in ("best_validation_loss", "best_epoch", "step_count")})
    meta = {"format": "openmm-cgflow-pmf-checkpoint", "options": options, "initial_model": initial_model,
            "epochs_done": state["epochs_done"],
            "num_epochs": state["num_epochs"], "num_samples": history["num_samples"],
            "num_skipped": history["num_skipped"], "members": members}
    arrays["meta"] = np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8)
    atomic_save_npz(path, arrays)  # a kill or a full disk never leaves half a checkpoint


def _read_checkpoint(path, options, initial_model):
    with np.load(path) as data:
        meta = json.loads(bytes(data["meta"]).decode())
        if meta.get("format") != "openmm-cgflow-pmf-checkpoint":
            raise ValueError("checkpoint: %s is not a PMF trainer checkpoint" % path)
        if meta.get("initial_model") != initial_model:
            raise ValueError("checkpoint: %s was written by a fit that started from another model (architecture, "
                             "initialization or input scaling, or a version that did not record it); use a new file"
                             % path)
        # The thread count does not change the results, so a fit may resume on another machine.
        written, current = dict(meta["options"]), dict(options)
        written.pop("threads", None)
        current.pop("threads", None)
        if written != current:
            raise ValueError("checkpoint: %s was written by a fit with other options (%r), this one has %r"
                             % (path, meta["options"], options))
        members = []
        for m, member in enumerate(meta["members"]):
            members.append(dict(member, **{key: data["member%d.%s" % (m, key)] for key in
                                           ("parameters", "best_parameters", "first_moment", "second_moment")}))
        history = {"train_loss": data["train_loss"], "validation_loss": data["validation_loss"],
                   "train_indices": [data["member%d.train_indices" % m].tolist() for m in range(len(members))],
                   "validation_indices": [data["member%d.validation_indices" % m].tolist() for m in range(len(members))],
                   "num_samples": meta["num_samples"], "num_skipped": meta["num_skipped"]}
    return {"epochs_done": meta["epochs_done"], "num_epochs": meta["num_epochs"], "members": members,
            "history": history}
