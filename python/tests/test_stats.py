"""The weights engine from Python: shapes, errors naming arguments, and statistics against exact answers."""
import math

import numpy as np
import pytest

import openmmcgflow as cg
from openmmcgflow import stats


def gaussian_importance(n, sigma, seed):
    """exp(-x^2/2) (Z = sqrt(2 pi)) sampled from N(0, sigma^2)."""
    rng = np.random.default_rng(seed)
    x = rng.normal(0, sigma, n)
    log_q = -x ** 2 / (2 * sigma ** 2) - math.log(sigma * math.sqrt(2 * math.pi))
    return x, -x ** 2 / 2 - log_q


def test_log_weight_basics_and_errors():
    assert stats.log_sum_exp(np.array([1000.0, 1000.0])) == pytest.approx(1000 + math.log(2))
    assert stats.effective_sample_size(np.zeros(10)) == pytest.approx(10)
    assert stats.effective_sample_size(np.array([0.0, -np.inf])) == pytest.approx(1)
    np.testing.assert_allclose(stats.normalized_weights(np.log([1.0, 3.0])), [0.25, 0.75])
    with pytest.raises(cg.CGFlowError, match=r"logW\[1\] is NaN"):
        stats.log_sum_exp(np.array([0.0, np.nan]))
    with pytest.raises(cg.CGFlowError, match="log_w: expected a 1-D array"):
        stats.effective_sample_size(np.zeros((2, 2)))


def test_log_z_and_weighted_mean_against_exact_values():
    x, log_w = gaussian_importance(20000, 1.7, 1)
    value, error = stats.log_z(log_w)
    assert abs(value - 0.5 * math.log(2 * math.pi)) < 4 * error
    mean, mean_error = stats.weighted_mean(log_w, x ** 2)
    assert abs(mean - 1.0) < 4 * mean_error
    boot_value, boot_error = stats.bootstrap_mean(log_w, x ** 2, 200, 3)
    assert boot_value == mean and boot_error == pytest.approx(mean_error, rel=0.25)
    assert stats.bootstrap_log_z(log_w, 200, 3)[1] == pytest.approx(error, rel=0.25)


def test_clipping_and_its_report():
    log_w = np.array([1, 5, -np.inf, 3, 4, 2], dtype=float)
    np.testing.assert_array_equal(stats.clip_top_k(log_w, 3), [1, 3, -np.inf, 3, 3, 2])
    np.testing.assert_array_equal(stats.clip_above_percentile(log_w, 75), [1, 4, -np.inf, 3, 4, 2])
    np.testing.assert_array_equal(stats.drop_top_fraction(log_w, 0.4), [1, -np.inf, -np.inf, 3, -np.inf, 2])
    rows = stats.clipping_report(log_w, "percentile", [100, 75, 50], values=np.arange(6.0))
    assert [r["num_modified"] for r in rows] == [0, 1, 2]   # above 4, then above 3
    assert rows[0]["ess"] < rows[1]["ess"] < rows[2]["ess"]
    with pytest.raises(cg.CGFlowError, match="policy must be"):
        stats.clipping_report(log_w, "soft", [1.0])


def test_free_energy_profile_of_a_harmonic_well():
    x, log_w = gaussian_importance(40000, 1.5, 2)
    kT = 2.5
    profile = stats.free_energy_1d(x, log_w, (-2, 2, 8), kT)
    assert profile["free_energy"].shape == (8,) and profile["edges"][0].shape == (9,)
    edges = profile["edges"][0]
    exact = np.array([math.erf(hi / math.sqrt(2)) - math.erf(lo / math.sqrt(2)) for lo, hi in zip(edges[:-1], edges[1:])])
    f_exact = -kT * np.log(exact)
    f_exact -= f_exact.min()
    assert np.all(np.abs(profile["free_energy"] - f_exact) < 4 * profile["error"] + 4 * profile["error"][3])
    assert profile["num_out_of_range"] > 0
    two = stats.free_energy_2d(x, x, log_w, (-2, 2, 4), (-2, 2, 4), kT)
    assert two["free_energy"].shape == (4, 4)


def test_divergences_and_structure_metrics():
    p, q = np.array([0.5, 0.5]), np.array([0.9, 0.1])
    assert stats.kl_divergence(p, q, 0.0) == pytest.approx(0.5 * math.log(0.5 / 0.9) + 0.5 * math.log(5))
    assert stats.js_divergence(p, q) == pytest.approx(stats.js_divergence(q, p))
    assert stats.js_divergence(np.array([1.0, 0]), np.array([0, 1.0])) == pytest.approx(math.log(2), rel=1e-7)
    assert stats.pmf_error(np.array([1.0, 2, 3]), np.array([2.0, 4, 6])) == pytest.approx(0, abs=1e-12)
    rng = np.random.default_rng(0)
    cloud = rng.uniform(-0.5, 0.5, (6, 3))
    theta = 0.7
    rotation = np.array([[math.cos(theta), -math.sin(theta), 0], [math.sin(theta), math.cos(theta), 0], [0, 0, 1]])
    moved = cloud @ rotation.T + np.array([1.0, 2.0, 3.0])
    assert stats.rmsd(moved[None], cloud)[0] == pytest.approx(0, abs=1e-12)
    assert stats.radius_of_gyration(np.array([[0, 0, 0], [0.4, 0, 0.0]]))[0] == pytest.approx(0.2)
    assert stats.bond_score(cloud[None], [(0, 1)], np.array([np.linalg.norm(cloud[0] - cloud[1])])) == 1.0
    batch = rng.uniform(-0.5, 0.5, (10, 6, 3))
    assert stats.diversity_score(batch, batch) == pytest.approx(-1 / 9)
    with pytest.raises(cg.CGFlowError, match=r"positions: expected shape \(n, atoms, 3\)"):
        stats.radius_of_gyration(np.zeros((2, 2, 2)))


def test_plots_write_pngs(tmp_path):
    x, log_w = gaussian_importance(5000, 1.5, 3)
    rng = np.random.default_rng(1)
    phi, psi = rng.uniform(-math.pi, math.pi, 5000), rng.normal(0, 1, 5000)
    paths = [cg.plots.plot_free_energy_1d(str(tmp_path / "fes.png"), x, log_w, axis=(-3, 3, 30), kT=2.5),
             cg.plots.plot_ramachandran(str(tmp_path / "rama.png"), phi, psi, log_w),
             cg.plots.plot_ess_curve(str(tmp_path / "ess.png"), np.arange(5), np.linspace(0.1, 0.5, 5))]
    for path in paths:
        with open(path, "rb") as handle:
            assert handle.read(8) == b"\x89PNG\r\n\x1a\n"
