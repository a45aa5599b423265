"""The Mueller-Brown active-learning loop at a tiny budget: its record, exact evaluation counts, and a
resume after an interruption that gives the same run as an uninterrupted one."""
import json

import numpy as np
import pytest

from openmmcgflow.active_learning import mueller_brown as mbal


def tiny(**changes):
    settings = dict(example_epochs=5, first_epochs=1, epochs=1, pmf_members=3, pmf_epochs=20, pmf_batch=16,
                    copies=6, start_points=20, start_mc_steps=100, walkers=8, broaden_count=10,
                    max_mc_steps=300, max_iterations=2)
    settings.update(changes)
    return mbal.MuellerBrownALSettings(**settings)


def test_kld_on_grid():
    pmf = np.array([0.0, 1.0, 3.0, 0.5])
    assert mbal.kld_on_grid(pmf, pmf + 7.0, 0.1) == pytest.approx(0.0, abs=1e-15)  # constants do not matter
    assert mbal.kld_on_grid(pmf, pmf[::-1], 0.1) > 0


def test_loop_record_and_resume(tmp_path):
    straight = mbal.run_mueller_brown_al(tiny(), out=str(tmp_path / "a"), progress=False)
    its = straight["iterations"]
    assert 1 <= len(its) <= 2
    # Every flow draw is one energy evaluation, plus the starting run (its first point and 100 steps).
    assert its[0]["energy_evaluations"] == 101 + its[0]["flow_draws"]
    assert its[0]["flow_draws"] == 20 * 6 * 1  # the starting points, 6 copies, one epoch
    for it in its:
        assert np.isfinite(it["kld_pmf"]) and it["kld_pmf"] >= 0
        assert len(it["pmf_grid"]) == 100
        assert 0 < it["reverse_ess_fraction"] <= 1
        # No generator beats the exact density on exact samples (up to their sampling noise).
        assert it["all_atom_log_likelihood"] < it["all_atom_log_likelihood_exact"] + 0.05
    # Interrupted after one iteration, then resumed: the same run.
    mbal.run_mueller_brown_al(tiny(max_iterations=1), out=str(tmp_path / "b"), progress=False)
    resumed = mbal.run_mueller_brown_al(tiny(), out=str(tmp_path / "b"), progress=False)
    assert [it["kld_pmf"] for it in resumed["iterations"]] == [it["kld_pmf"] for it in its]
    assert [it["energy_evaluations"] for it in resumed["iterations"]] == [it["energy_evaluations"] for it in its]
    a, b = np.load(tmp_path / "a" / "state.npz"), np.load(tmp_path / "b" / "state.npz")
    np.testing.assert_array_equal(a["flow_parameters"], b["flow_parameters"])
    np.testing.assert_array_equal(a["train_points"], b["train_points"])
    # Other settings in the same directory are refused.
    with pytest.raises(ValueError, match="other settings"):
        mbal.run_mueller_brown_al(tiny(copies=5), out=str(tmp_path / "b"), progress=False)
    assert json.load(open(tmp_path / "b" / "record.json"))["summary"]["iterations"] == len(its)
