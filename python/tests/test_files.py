"""Atomic writes (openmmcgflow.files): a failed write — a full disk, a read-only directory — leaves the
previous file as it was, no temporary behind, and an OSError that names the path with its errno kept;
and the checkpoint writers of the long jobs go through it."""
import errno
import os

import numpy as np
import pytest

from openmmcgflow import files


def test_a_complete_write_replaces_the_file(tmp_path):
    path = tmp_path / "state.npz"
    files.atomic_save_npz(str(path), {"x": np.arange(3)})
    files.atomic_save_npz(str(path), {"x": np.arange(5)})
    assert np.load(path)["x"].tolist() == [0, 1, 2, 3, 4]
    assert os.listdir(tmp_path) == ["state.npz"]
    files.atomic_write_json(str(tmp_path / "r.json"), {"a": 1}, indent=1)
    assert (tmp_path / "r.json").read_text() == '{\n "a": 1\n}'


def test_a_full_disk_during_the_write_keeps_the_previous_file(tmp_path):
    path = tmp_path / "checkpoint.npz"
    files.atomic_save_npz(str(path), {"x": np.arange(3)})
    before = path.read_bytes()

    def write_then_fill_the_disk(handle):
        handle.write(b"half a checkpoint")
        raise OSError(errno.ENOSPC, "No space left on device")

    with pytest.raises(OSError, match="checkpoint.npz.*previous file.*unchanged") as caught:
        files.atomic_write(str(path), write_then_fill_the_disk)
    assert caught.value.errno == errno.ENOSPC and caught.value.filename == str(path)
    assert path.read_bytes() == before
    assert os.listdir(tmp_path) == ["checkpoint.npz"]


def test_a_read_only_target_keeps_the_previous_file(tmp_path, monkeypatch):
    # Root ignores directory permissions, so the refusal of the final move is simulated.
    path = tmp_path / "model.safetensors"
    files.atomic_write_bytes(str(path), b"old model")

    def refuse(src, dst):
        raise PermissionError(errno.EROFS, "Read-only file system")

    monkeypatch.setattr(os, "replace", refuse)
    with pytest.raises(OSError, match="model.safetensors") as caught:
        files.atomic_write_bytes(str(path), b"new model")
    assert caught.value.errno == errno.EROFS
    assert path.read_bytes() == b"old model"
    assert os.listdir(tmp_path) == ["model.safetensors"]


def test_a_missing_directory_is_an_error_naming_the_path(tmp_path):
    with pytest.raises(FileNotFoundError, match="nowhere/state.npz"):
        files.atomic_save_npz(str(tmp_path / "nowhere" / "state.npz"), {"x": np.zeros(1)})


def test_other_exceptions_pass_through_and_leave_nothing(tmp_path):
    def fail(handle):
        handle.write(b"x")
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        files.atomic_write(str(tmp_path / "a.bin"), fail)
    assert os.listdir(tmp_path) == []


def test_the_pmf_trainer_checkpoint_survives_a_full_disk(tmp_path, monkeypatch):
    """A long job's checkpoint writer on a disk that fills up after two checkpoints: the fit stops with the
    error, the second checkpoint is still there and whole, and a resumed fit (disk freed) continues from it
    to the same parameters as an uninterrupted fit."""
    import openmmcgflow as cg
    rng = np.random.default_rng(0)
    x = rng.normal(size=(64, 2))
    y = (x ** 2).sum(1)
    options = {"epochs": 4, "batch_size": 16, "seed": 1}
    checkpoint = str(tmp_path / "pmf.npz")
    real_savez, calls = np.savez, []

    def savez_until_the_disk_is_full(file, *args, **kwargs):
        calls.append(1)
        real_savez(file, *args, **kwargs)
        if len(calls) > 2:
            raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(np, "savez", savez_until_the_disk_is_full)
    with pytest.raises(OSError, match="pmf.npz.*unchanged"):
        cg.PMFTrainer(cg.MLPEnsemble([2, 8, 1], 2, "tanh", seed=1), options=options).fit_labels(
            x, y, progress=False, checkpoint=checkpoint)
    assert os.listdir(tmp_path) == ["pmf.npz"]
    with np.load(checkpoint) as data:
        import json
        assert json.loads(bytes(data["meta"]).decode())["epochs_done"] == 2
    monkeypatch.setattr(np, "savez", real_savez)
    resumed = cg.MLPEnsemble([2, 8, 1], 2, "tanh", seed=1)
    cg.PMFTrainer(resumed, options=options).fit_labels(x, y, progress=False, checkpoint=checkpoint)
    straight = cg.MLPEnsemble([2, 8, 1], 2, "tanh", seed=1)
    cg.PMFTrainer(straight, options=options).fit_labels(x, y, progress=False)
    assert resumed.to_bytes() == straight.to_bytes()
