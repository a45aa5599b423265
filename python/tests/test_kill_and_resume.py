"""kill -9 at three points of the long jobs' training loops, then resume: the final result is bit-identical
to an uninterrupted run. Each job runs in a subprocess that is killed with SIGKILL once its checkpoint shows
a chosen amount of progress (plus a random few milliseconds, so that some kills land inside a step or a
write), three times in a row, each run resuming from what the previous one left; then a last run finishes.
The CNF's flow-matching training (a checkpoint directory) is the third job. (The CG dataset writer has its own kill test in test_cgbg_data.py, the alanine active-learning loop its
crash tests in test_active_learning_alanine_loop.py.)"""
import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest

DATA_FREE = textwrap.dedent("""
    import sys, numpy as np
    import openmmcgflow as cg
    from openmmcgflow.datafree import double_well
    system = cg.systems.double_well()
    energy = cg.datafree.CoordinateEnergy(system.system, system.positions, system.active)
    model = double_well.make_model(5)
    cg.datafree.train_data_free(model, energy, beta_initial=0.2, initial_steps=60, steps_per_level=10, batch=64,
                                max_step=0.2, kl_floor=0.02, final_steps=15, final_batch=96,
                                final_learning_rate=(3e-3, 1e-4), seed=5, progress=False, checkpoint=sys.argv[1])
    np.save(sys.argv[2], model.get_parameters())
""")

PMF_FIT = textwrap.dedent("""
    import sys, numpy as np
    import openmmcgflow as cg
    rng = np.random.default_rng(0)
    x = rng.normal(size=(2000, 4))
    y = np.sin(x).sum(1) + 0.1 * (x ** 2).sum(1)
    ensemble = cg.MLPEnsemble([4, 32, 32, 1], 3, "tanh", seed=1)
    cg.PMFTrainer(ensemble, options={"epochs": 40, "batch_size": 32, "seed": 1}).fit_labels(
        x, y, progress=False, checkpoint=sys.argv[1])
    np.save(sys.argv[2], np.frombuffer(ensemble.to_bytes(), dtype=np.uint8))  # the model file's bytes
""")

CNF_TRAINING = textwrap.dedent("""
    import sys, numpy as np
    from openmmcgflow import cgbg
    rng = np.random.default_rng(0)
    y = np.column_stack([rng.normal(1.0, 0.5, 3000), np.angle(np.exp(1j * rng.vonmises(2.0, 3.0, 3000)))])
    flow, _ = cgbg.train_cnf(y, [1], epochs=8, batch_size=64, seed=3, config={"hidden": 16, "num_layers": 2},
                             optimal_transport=True, validation_samples=50, validate_every=2, progress=False,
                             checkpoint=sys.argv[1])
    np.save(sys.argv[2], flow.get_parameters())
""")


def progress_of(checkpoint, key):
    """The progress counter in a checkpoint's meta (a file) or state.json (a checkpoint directory), or -1
    while there is none (atomic writes: a file that exists is whole)."""
    if os.path.isdir(checkpoint):
        state = os.path.join(checkpoint, "state.json")
        if not os.path.exists(state):
            return -1
        with open(state) as handle:
            return json.load(handle)[key]
    if not os.path.exists(checkpoint):
        return -1
    with np.load(checkpoint) as data:
        return json.loads(bytes(data["meta"]).decode())[key]


def run_child(code, checkpoint, result, kill_at=None, key=None, rng=None, timeout=300):
    """Runs `code` in a subprocess; with kill_at, SIGKILLs it once progress_of(checkpoint, key) >= kill_at
    (after a random 0-30 ms). Returns whether it was killed."""
    child = subprocess.Popen([sys.executable, "-c", code, checkpoint, result], stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE)
    deadline = time.time() + timeout
    try:
        while kill_at is not None:
            if child.poll() is not None:
                return False  # finished before the kill point: nothing to kill
            if progress_of(checkpoint, key) >= kill_at:
                time.sleep(rng.uniform(0.0, 0.03))
                os.kill(child.pid, signal.SIGKILL)
                child.wait()
                return True
            assert time.time() < deadline, "the child made no progress"
            time.sleep(0.002)
        _, err = child.communicate(timeout=timeout)
        assert child.returncode == 0, err.decode()
        return False
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()


@pytest.mark.parametrize("job, key, kill_points", [(DATA_FREE, "next_level", (1, 3, 5)),
                                                   (PMF_FIT, "epochs_done", (3, 12, 25)),
                                                   (CNF_TRAINING, "epoch", (1, 3, 5))],
                         ids=["data_free", "pmf_fit", "cnf_training"])
def test_three_kills_then_resume_is_bit_identical(tmp_path, job, key, kill_points):
    rng = np.random.default_rng(7)
    straight = str(tmp_path / "straight.npy")
    directory = job is CNF_TRAINING   # the CG flows checkpoint into a directory
    run_child(job, str(tmp_path / ("straight" if directory else "straight.npz")), straight)
    checkpoint, result = str(tmp_path / ("killed" if directory else "killed.npz")), str(tmp_path / "killed.npy")
    killed = [run_child(job, checkpoint, result, kill_at=k, key=key, rng=rng) for k in kill_points]
    assert all(killed), "every run was killed before it finished"
    assert not os.path.exists(result)
    progress_after_kills = progress_of(checkpoint, key)
    assert progress_after_kills >= kill_points[-1]
    run_child(job, checkpoint, result)
    assert np.array_equal(np.load(result), np.load(straight))
    leftovers = [f for f in os.listdir(checkpoint if directory else tmp_path) if ".tmp-" in f]
    assert len(leftovers) <= len(kill_points)  # a kill inside a write leaves at most its temporary file
