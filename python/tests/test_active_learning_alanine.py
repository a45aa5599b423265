"""The alanine-dipeptide conditional flow at a tiny budget: fine/CG coordinates, energies and their forces,
training by energy with stored copies, and grid conditioning that resumes exactly after an interruption."""
import numpy as np
import pytest

from openmmcgflow.active_learning import alanine as A

TINY = dict(grid=4, copies=4, clip_top=1, batch=8, md_ps=1.0, example_epochs=2, flow_layers=2, flow_hidden=16,
            pmf_members=3, pmf_hidden=(16, 8), pmf_epochs=10, pmf_batch=4, epochs=2)


@pytest.fixture(scope="module")
def problem():
    return A.AlanineConditional()


def test_split_and_rebuild_round_trip(problem):
    frames = A.md_start(problem, picoseconds=0.3, seed=2)
    fine, cg = problem.split(frames)
    assert fine.shape == (len(frames), 58) and cg.shape == (len(frames), 2)
    # phi and psi of the rebuilt molecule are the CG point; the fine coordinates come back unchanged.
    x = problem.energy.cartesian(problem.model_coordinates(fine, cg))
    np.testing.assert_allclose(problem.system.info["phi_psi"].map_positions(x), cg, atol=1e-9)
    fine2, cg2 = problem.split(x)
    np.testing.assert_allclose(fine2, fine, atol=1e-8)


def test_price_forces_are_minus_the_gradient(problem):
    frames = A.md_start(problem, picoseconds=0.2, seed=3)
    fine, cg = problem.split(frames[-1:])
    loss, forces, energy, log_det = problem.price(fine, cg)
    assert np.isfinite(loss).all() and np.isfinite(energy).all()
    for column in (0, 7, 30, 57):  # a bond, a circular torsion, an angle, the last column
        h = 1e-6
        up, down = fine.copy(), fine.copy()
        up[0, column] += h
        down[0, column] -= h
        derivative = (problem.price(up, cg)[0][0] - problem.price(down, cg)[0][0]) / (2 * h)
        assert forces[0, column] == pytest.approx(-derivative, rel=1e-4, abs=1e-4)


def test_grid_conditioning_resumes_exactly(tmp_path, monkeypatch):
    straight = A.run_alanine_grid(A.AlanineGridSettings(**TINY), out=str(tmp_path / "a"), progress=False)
    assert straight["energy_evaluations"] == 2 * int(round(0.8 * 16)) * 4  # epochs x train points x copies
    assert np.isfinite(straight["labels_kj"]).all()
    assert straight["pmf"].shape == (4, 4)
    # Interrupted after the first epoch (the second raises), then resumed.
    original, calls = A.train_at_points, []

    def interrupted(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return original(*args, **kwargs)

    monkeypatch.setattr(A, "train_at_points", interrupted)
    with pytest.raises(KeyboardInterrupt):
        A.run_alanine_grid(A.AlanineGridSettings(**TINY), out=str(tmp_path / "b"), progress=False)
    monkeypatch.setattr(A, "train_at_points", original)
    resumed = A.run_alanine_grid(A.AlanineGridSettings(**TINY), out=str(tmp_path / "b"), progress=False)
    np.testing.assert_array_equal(resumed["flow"].get_parameters(), straight["flow"].get_parameters())
    np.testing.assert_array_equal(resumed["labels_kj"], straight["labels_kj"])
    with pytest.raises(ValueError, match="other settings"):
        A.run_alanine_grid(A.AlanineGridSettings(**dict(TINY, copies=5)), out=str(tmp_path / "b"), progress=False)
