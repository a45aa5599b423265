"""The alanine-dipeptide active-learning loop at a tiny budget: what an iteration does and counts, the
stopping rules, and a resume after interruptions at three different points that is bit-identical to an
uninterrupted run."""
import json

import numpy as np
import pytest

from openmmcgflow.active_learning import alanine_al as L

TINY = dict(copies=4, clip_top=1, batch=8, md_ps=1.0, example_epochs=2, flow_layers=2, flow_hidden=16,
            first_epochs=2, epochs=2, first_warmup_epochs=1, warmup_epochs=1, pmf_members=3, pmf_hidden=(16, 8),
            pmf_epochs=10, walkers=12, found_points=6, new_points=3, broaden_count=5, max_mc_steps=300,
            max_iterations=3, eval_grid=8, ess_samples=50)


def reference_grid():
    ref = np.ones((8, 8))
    ref[2:4, 5:7] = 20.0
    return ref


@pytest.fixture(scope="module")
def straight(tmp_path_factory):
    out = tmp_path_factory.mktemp("straight")
    return L.run_alanine_al(L.AlanineALSettings(**TINY), out=str(out), reference=reference_grid(), progress=False)


def test_iterations_count_and_grow(straight):
    its = straight["record"]["iterations"]
    assert len(its) == 3 and straight["record"]["stopped"] is None
    # MD start: 1 ps, one frame per 100 fs -> 10 frames, 8 of them training points.
    assert its[0]["training_points"] == 8 and its[0]["energy_evaluations"] == 2 * 8 * 4
    # Each search adds 3 chosen points x 5 broadened, 80 % (12) to training; an epoch sees the 12 newest
    # and round(0.3 x 12) = 4 older ones.
    assert its[1]["training_points"] == 20 and its[1]["points_per_epoch"] == 16
    assert its[1]["energy_evaluations"] == its[0]["energy_evaluations"] + 2 * 16 * 4
    assert its[2]["training_points"] == 32
    for it in its:
        assert it["found_points"] == 6 and it["cg_mc_walker_steps"] >= it["cg_mc_steps"] >= 1
        assert 0 <= it["reverse_ess_fraction"] <= 1 and it["kld_pmf"] > 0
    assert straight["pmf"].shape == (8, 8) and np.isfinite(straight["pmf"]).all()
    # The last search's 12 points are not drawn yet, so not labelled.
    assert len(straight["labels_kj"]) == len(straight["train_points"]) == its[-1]["labelled_points"] == 32


def test_resume_after_three_interruptions_is_bit_identical(straight, tmp_path, monkeypatch):
    out = str(tmp_path / "resumed")
    settings = L.AlanineALSettings(**TINY)
    # 1: in the first iteration's second epoch; 2: in the second iteration's search; 3: in the third
    # iteration's PMF fit (the resumed run first fits the second iteration's PMF again). Each is a crash at
    # that point; the next run resumes from what was written.
    originals = {name: getattr(L, name) for name in ("train_at_points", "search_uncertain_points",
                                                     "fit_pmf")}
    counts = {name: 0 for name in originals}

    def crash_at(name, call):
        def wrapped(*args, **kwargs):
            counts[name] += 1
            if counts[name] == call:
                raise KeyboardInterrupt(name)
            return originals[name](*args, **kwargs)
        return wrapped

    for name, call in (("train_at_points", 2), ("search_uncertain_points", 2), ("fit_pmf", 2)):
        monkeypatch.setattr(L, name, crash_at(name, call))
        with pytest.raises(KeyboardInterrupt):
            L.run_alanine_al(settings, out=out, reference=reference_grid(), progress=False)
        monkeypatch.setattr(L, name, originals[name])
    resumed = L.run_alanine_al(settings, out=out, reference=reference_grid(), progress=False)
    np.testing.assert_array_equal(resumed["flow"].get_parameters(), straight["flow"].get_parameters())
    np.testing.assert_array_equal(resumed["labels_kj"], straight["labels_kj"])
    np.testing.assert_array_equal(resumed["pmf"], straight["pmf"])
    keys = ("energy_evaluations", "training_points", "cg_mc_steps", "kld_pmf", "reverse_ess_fraction")
    assert [[it[k] for k in keys] for it in resumed["record"]["iterations"]] == \
        [[it[k] for k in keys] for it in straight["record"]["iterations"]]
    # A finished run resumed again does nothing more and returns the same PMF.
    again = L.run_alanine_al(settings, out=out, reference=reference_grid(), progress=False)
    np.testing.assert_array_equal(again["pmf"], straight["pmf"])
    with pytest.raises(ValueError, match="other settings"):
        L.run_alanine_al(L.AlanineALSettings(**dict(TINY, copies=5)), out=out, progress=False)


def test_stopping_rules(tmp_path):
    # The KLD rule: a threshold any PMF meets stops after the first fit, before any search.
    s = L.AlanineALSettings(**dict(TINY, kld_threshold=10.0))
    r = L.run_alanine_al(s, out=str(tmp_path / "kld"), reference=reference_grid(), progress=False)
    assert r["record"]["stopped"] == "kld_threshold" and len(r["record"]["iterations"]) == 1
    assert r["record"]["iterations"][0]["cg_mc_steps"] == 0
    # The Monte Carlo rule: a threshold no spread reaches within max_mc_steps.
    s = L.AlanineALSettings(**dict(TINY, threshold_kt=1e6, max_mc_steps=5))
    r = L.run_alanine_al(s, out=str(tmp_path / "mc"), progress=False)
    assert r["record"]["stopped"] == "max_mc_steps" and len(r["record"]["iterations"]) == 1
    assert r["record"]["iterations"][0]["cg_mc_steps"] == 5
    with open(tmp_path / "mc" / "record.json") as handle:
        assert json.load(handle)["stopped"] == "max_mc_steps"


@pytest.mark.parametrize("change, message", [
    (dict(found_points=13), "found_points"), (dict(new_points=7), "new_points"), (dict(walkers=0), "walkers"),
    (dict(train_fraction=1.0), "train_fraction"), (dict(proposal_scale=0.0), "proposal_scale"),
    (dict(gamma=-0.1), "gamma")])
def test_bad_settings_are_named(tmp_path, change, message):
    with pytest.raises(ValueError, match=message):
        L.run_alanine_al(L.AlanineALSettings(**dict(TINY, **change)), out=str(tmp_path), progress=False)


def test_bad_reference_is_named(tmp_path):
    with pytest.raises(ValueError, match="reference: expected shape"):
        L.run_alanine_al(L.AlanineALSettings(**TINY), out=str(tmp_path), reference=np.ones((9, 8)), progress=False)
    with pytest.raises(ValueError, match="reference: must be finite"):
        L.run_alanine_al(L.AlanineALSettings(**TINY), out=str(tmp_path), reference=np.full((8, 8), np.nan),
                         progress=False)


def test_two_hour_budget_changes_only_what_it_says():
    paper, budget = L.AlanineALSettings(), L.AlanineALSettings.two_hour_budget()
    changed = {k for k in paper.__dataclass_fields__ if getattr(paper, k) != getattr(budget, k)}
    assert changed == {"first_epochs", "epochs", "first_warmup_epochs", "warmup_epochs", "learning_rate",
                       "broaden_count", "max_mc_steps", "max_iterations"}
    assert L.AlanineALSettings.two_hour_budget(seed=3).seed == 3
