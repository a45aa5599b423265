"""The checkpoint directory of a CG flow's training (:func:`.train_cg_flow`, :func:`.train_cnf`).

After every epoch the trainer (``ModelTrainer.save``: flow and optimizer state), the best parameters so
far and ``state.json`` (epoch, history, settings and a fingerprint of the data) are written atomically,
``state.json`` last, then older epochs' files and stale temporaries are removed; so a run killed at any
point resumes from its last complete epoch, and a directory written for other data or settings is refused.
"""
import json
import os

import numpy as np

from .. import _core as core
from ..files import atomic_save_npz, atomic_write_json

STATE = "state.json"


def read_state(checkpoint, checkpoint_format, fingerprint, settings, what, data="the data"):
    """The state of the checkpoint directory ``checkpoint`` as (state, flow, trainer, best arrays), or None
    when it holds none yet. A state of another format, or written for another fingerprint, raises a
    ValueError naming ``what`` (e.g. 'CNF') or the settings that differ (else ``data``)."""
    path = os.path.join(checkpoint, STATE)
    if not os.path.exists(path):
        return None
    with open(path) as handle:
        state = json.load(handle)
    if state.get("format") != checkpoint_format:
        raise ValueError("checkpoint: %s is not a %s checkpoint" % (path, what))
    if state["fingerprint"] != fingerprint:
        differs = [k for k in settings if state["settings"].get(k) != settings[k]]
        raise ValueError("checkpoint: %s was written for other %s; use a new directory"
                         % (checkpoint, ", ".join(differs) if differs else data))
    flow, trainer = core.load_flow_trainer(os.path.join(checkpoint, state["trainer_file"]))
    best = None
    if state.get("best_file") is not None:
        with np.load(os.path.join(checkpoint, state["best_file"])) as stored:
            best = {name: stored[name].copy() for name in stored.files}
    return state, flow, trainer, best


def write_epoch(checkpoint, epoch, trainer, best, state):
    """Write epoch ``epoch``'s checkpoint: the trainer, ``best`` (a dict of arrays, or None) and ``state``
    (a dict with format, fingerprint, settings, history; epoch and file names are added), then prune."""
    trainer_file = "trainer_%05d.safetensors" % epoch
    best_file = None if best is None else "best_%05d.npz" % epoch
    trainer.save(os.path.join(checkpoint, trainer_file))
    if best_file is not None:
        atomic_save_npz(os.path.join(checkpoint, best_file), best)
    atomic_write_json(os.path.join(checkpoint, STATE),
                      dict(state, epoch=epoch, trainer_file=trainer_file, best_file=best_file), indent=1)
    for name in os.listdir(checkpoint):   # earlier epochs' files and stale temporaries
        if name not in (trainer_file, best_file, STATE) and (name.startswith(("trainer_", "best_")) or ".tmp-" in name):
            os.remove(os.path.join(checkpoint, name))
