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


def test_running_weights_agree_with_the_batch_functions():
    _, log_w = gaussian_importance(4000, 1.5, 5)
    log_w[::50] = -np.inf                          # zero weights count as samples
    running = stats.RunningWeights()
    running.add(log_w[:1000])                      # an array, then one weight at a time
    for value in log_w[1000:]:
        running.add(value)
    assert running.count == 4000 and running.num_zero == 80
    assert running.effective_sample_size == pytest.approx(stats.effective_sample_size(log_w), rel=1e-10)
    assert running.effective_sample_fraction == pytest.approx(stats.effective_sample_fraction(log_w), rel=1e-10)
    value, error = running.log_z
    exact_value, exact_error = stats.log_z(log_w)
    assert value == pytest.approx(exact_value, abs=1e-10) and error == pytest.approx(exact_error, rel=1e-8)
    with pytest.raises(cg.CGFlowError, match="logWeight"):
        running.add(np.nan)
    running.reset()
    assert running.count == 0 and math.isnan(running.log_z[0])


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
    assert stats.clipping_report(log_w, "drop_fraction", [0.0])[0]["estimate"] == pytest.approx(stats.log_z(log_w)[0])
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


def _pmf_error_reference(sampled, reference, bins, baseline=1e-6):
    """The PMF error as the code the CG-BG paper cites computes it (Plainer et al.'s helper_metrics_2d,
    weight "mix", loss (ln p - ln q)^2, baseline 1e-6), written out with numpy on a 1-D grid."""
    p = np.histogram(sampled, bins=bins)[0] / len(sampled)
    q = np.histogram(reference, bins=bins)[0] / len(reference)
    keep = (p > 0) | (q > 0)
    p, q = np.where(p[keep] > 0, p[keep], baseline), np.where(q[keep] > 0, q[keep], baseline)
    m = (p + q) / 2
    return np.sum(m / m.sum() * (np.log(p) - np.log(q)) ** 2)


def test_divergences():
    p, q = np.array([0.5, 0.5]), np.array([0.9, 0.1])
    assert stats.kl_divergence(p, q, 0.0) == pytest.approx(0.5 * math.log(0.5 / 0.9) + 0.5 * math.log(5))
    assert stats.kl_divergence(p, p) == 0.0
    assert stats.js_divergence(p, q) == pytest.approx(stats.js_divergence(q, p))
    assert stats.js_divergence(np.array([1.0, 0]), np.array([0, 1.0])) == pytest.approx(math.log(2), rel=1e-7)
    assert stats.pmf_error(np.array([1.0, 2, 3]), np.array([2.0, 4, 6])) == pytest.approx(0, abs=1e-12)
    with pytest.raises(cg.CGFlowError, match=r"p has 2 bins but q has 3"):
        stats.kl_divergence(p, np.ones(3))
    with pytest.raises(cg.CGFlowError, match=r"baseline must be in \(0, 1\]"):
        stats.pmf_error(p, q, baseline=0.0)


def test_pmf_error_matches_the_cited_reference_code():
    rng = np.random.default_rng(4)
    reference = rng.normal(0, 1, 20000)
    sampled = np.concatenate([rng.normal(0.3, 0.8, 5000), rng.uniform(3, 4, 50)])  # narrower, plus an artifact
    bins = np.linspace(-4, 4, 33)
    p = stats.histogram_1d(sampled, axis=(-4, 4, 32))["probability"]
    q = stats.histogram_1d(reference, axis=(-4, 4, 32))["probability"]
    expected = _pmf_error_reference(sampled[np.abs(sampled) < 4], reference[np.abs(reference) < 4], bins)
    assert stats.pmf_error(p, q) == pytest.approx(expected, rel=1e-12)
    # A sampler drawn from the reference itself scores lower.
    better = rng.normal(0, 1, 5000)
    p_better = stats.histogram_1d(better, axis=(-4, 4, 32))["probability"]
    assert stats.pmf_error(p_better, q) < stats.pmf_error(p, q)


def test_structure_metrics():
    rng = np.random.default_rng(0)
    cloud = rng.uniform(-0.5, 0.5, (6, 3))
    theta = 0.7
    rotation = np.array([[math.cos(theta), -math.sin(theta), 0], [math.sin(theta), math.cos(theta), 0], [0, 0, 1]])
    moved = cloud @ rotation.T + np.array([1.0, 2.0, 3.0])
    assert stats.rmsd(moved[None], cloud)[0] == pytest.approx(0, abs=1e-12)
    assert stats.rmsd(cloud * np.array([-1, 1, 1]), cloud)[0] > 0.05  # a mirror image is not a rotation
    masses = rng.uniform(1, 16, 6)
    rg = stats.radius_of_gyration(np.stack([cloud, moved]), masses)
    assert rg.shape == (2,) and rg[0] == pytest.approx(rg[1], rel=1e-12)
    assert stats.radius_of_gyration(np.array([[0, 0, 0], [0.4, 0, 0.0]]))[0] == pytest.approx(0.2)
    assert stats.bond_score(cloud[None], [(0, 1)], np.array([np.linalg.norm(cloud[0] - cloud[1])])) == 1.0
    stretched = cloud.copy()
    stretched[1] = cloud[0] + 1.2 * (cloud[1] - cloud[0])
    assert stats.bond_score(np.stack([cloud, stretched]), [(0, 1)], np.array([np.linalg.norm(cloud[0] - cloud[1])])) == 0.5
    batch = rng.uniform(-0.5, 0.5, (10, 6, 3))
    assert stats.diversity_score(batch, batch) == pytest.approx(-1 / 9)
    assert stats.diversity_score(np.repeat(batch[:1], 5, axis=0), batch) == pytest.approx(1.0)
    # Dimers of lengths (1, 2) against (2, 4): the RMSD of two dimers is half their length difference.
    dimers = lambda lengths: np.array([[[-l / 2, 0, 0], [l / 2, 0, 0]] for l in lengths])  # noqa: E731
    assert stats.diversity_score(dimers([1, 2]), dimers([2, 4])) == pytest.approx(1 / 3)
    with pytest.raises(cg.CGFlowError, match=r"positions: expected shape \(n, atoms, 3\)"):
        stats.radius_of_gyration(np.zeros((2, 2, 2)))
    with pytest.raises(cg.CGFlowError, match="reference: has 5 atoms but generated has 6"):
        stats.diversity_score(batch, batch[:, :5])
    with pytest.raises(cg.CGFlowError, match=r"bonds\[0\] has atom 6 out of range"):
        stats.bond_score(batch, [(0, 6)], np.array([0.1]))


def test_histograms_and_clipping_edge_cases():
    h = stats.histogram_1d(np.array([0.5, 1.5, 9.0]), np.log([1.0, 1.0, 2.0]), (0, 2, 2))
    np.testing.assert_allclose(h["probability"], [0.5, 0.5])
    assert h["num_out_of_range"] == 1 and h["out_of_range_weight"] == pytest.approx(0.5)
    np.testing.assert_allclose(h["edges"][0], [0, 1, 2])
    wrapped = stats.histogram_1d(np.array([-math.pi - 0.1, math.pi - 0.1, 0.1]), axis=(-math.pi, math.pi, 2), periodic=True)
    np.testing.assert_allclose(wrapped["probability"], [0, 1])
    two = stats.histogram_2d(np.array([0.2, 0.7]), np.array([0.1, 0.1]), x_axis=(0, 1, 2), y_axis=(0, 1, 3))
    assert two["probability"].shape == (2, 3) and two["probability"][1, 0] == 0.5
    with pytest.raises(cg.CGFlowError, match=r"axis: expected \(low, high, bins\)"):
        stats.histogram_1d(np.zeros(3), axis=(0, 1))
    with pytest.raises(cg.CGFlowError, match="would drop all"):
        stats.drop_top_fraction(np.zeros(3), 0.9)
    lonely = np.full(10, -np.inf)
    lonely[3] = 0.0
    with pytest.raises(cg.CGFlowError, match="failed on resample"):
        stats.bootstrap_mean(lonely, np.ones(10), 50, 1)
    assert stats.bootstrap_log_z(lonely, 50, 1)[1] == math.inf


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


def test_integrated_autocorrelation_time_of_ar1_matches_exact():
    """AR(1) x_t = a x_{t-1} + noise has rho(k) = a^k, so tau = (1 + a) / (1 - a) exactly."""
    rng = np.random.default_rng(5)
    for a in (0.0, 0.5, 0.9):
        n = 200_000
        noise = rng.normal(size=n)
        x = np.empty(n)
        x[0] = noise[0] / np.sqrt(1 - a * a)
        for t in range(1, n):
            x[t] = a * x[t - 1] + noise[t]
        exact = (1 + a) / (1 - a)
        tau = stats.integrated_autocorrelation_time(x)
        assert abs(tau - exact) < 0.05 * exact + 0.03, (a, tau, exact)
    both = stats.integrated_autocorrelation_time(np.column_stack([x, rng.normal(size=n)]))
    assert both.shape == (2,) and abs(both[1] - 1.0) < 0.03


def test_integrated_autocorrelation_time_refuses_bad_input_and_flags_short_runs():
    with pytest.raises(ValueError, match="series"):
        stats.integrated_autocorrelation_time([1.0])
    with pytest.raises(ValueError, match="non-finite"):
        stats.integrated_autocorrelation_time([1.0, np.nan, 2.0])
    with pytest.raises(ValueError, match="constant"):
        stats.integrated_autocorrelation_time(np.ones(10))
    slow = np.sin(np.linspace(0, 1, 100))  # one slow drift: the window never closes
    with pytest.warns(RuntimeWarning, match="lower bound"):
        stats.integrated_autocorrelation_time(slow)
