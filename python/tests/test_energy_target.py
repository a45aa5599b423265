"""EnergyTarget and the analytic test systems from Python."""
import numpy as np
import openmm
import pytest

import openmmcgflow as cg
from openmmcgflow import systems
from conftest import available_platforms

ANALYTIC = [systems.double_well, lambda: systems.gaussian_mixture(4), lambda: systems.gaussian_mixture(20, seed=3),
            systems.mueller_brown, lambda: systems.mueller_brown("cgbg")]


def restraint_constant(ts):
    """Energy constant that normalizes one restrained coordinate's Gaussian."""
    return 0.5 * ts.kT * np.log(2 * np.pi / (ts.beta * systems.RESTRAINT_K))


def jitter(ts, batch, scale, seed=0):
    rng = np.random.default_rng(seed)
    return ts.positions[None] + scale * rng.normal(size=(batch,) + ts.positions.shape)


@pytest.mark.parametrize("builder", ANALYTIC)
def test_analytic_systems_match_numpy_reference(builder):
    ts = builder()
    target = cg.EnergyTarget(ts.system)
    x = jitter(ts, 6, 0.05)
    x.reshape(6, -1)[:, len(ts.active):] *= 0.01  # keep restrained coordinates near their minimum
    energies, forces, finite = target.evaluate(x)
    assert finite.all()
    np.testing.assert_allclose(energies, ts.energy(x), rtol=1e-10, atol=1e-9)
    # Forces are minus the gradient of the numpy energy (central differences).
    h = 1e-6
    flat = x.reshape(6, -1)
    for i in range(flat.shape[1]):
        d = np.zeros_like(flat)
        d[:, i] = h
        fd = -(ts.energy((flat + d).reshape(x.shape)) - ts.energy((flat - d).reshape(x.shape))) / (2 * h)
        np.testing.assert_allclose(forces.reshape(6, -1)[:, i], fd, rtol=1e-5, atol=1e-4 * max(1, np.abs(fd).max()))


def test_double_well_is_normalized_and_mode_weights():
    ts = systems.double_well()
    x1 = np.linspace(-7, 7, 7001)
    x2 = np.linspace(-8, 8, 801)
    X1, X2 = np.meshgrid(x1, x2, indexing="ij")
    pts = np.stack([X1, X2], axis=-1)
    u = ts.energy(np.concatenate([pts, np.zeros(pts.shape[:-1] + (1,))], axis=-1)[..., None, :])
    # The restraint on z is a normalized Gaussian of its own: remove its constant, integrate x1, x2.
    density = np.exp(-(u - restraint_constant(ts)))
    total = np.trapezoid(np.trapezoid(density, x2, axis=1), x1)
    assert total == pytest.approx(1.0, abs=1e-6)
    p_left = np.trapezoid(np.trapezoid(density[x1 < 0], x2, axis=1), x1[x1 < 0])
    assert 0.98 < p_left < 0.995  # "around 99% of the probability mass" (data-free CG paper)


def test_gaussian_mixture_structure():
    ts = systems.gaussian_mixture(20, seed=1)
    assert ts.positions.shape == (7, 3) and len(ts.active) == 20
    means, B = ts.info["means"], ts.info["B"]
    assert means.shape == (3, 10) and B.shape == (10, 10) and np.all(np.abs(means) <= 1)
    # At each mode centre (with x_X = B m_k) the energy is -log of the peak density.
    for k in range(3):
        pos = np.zeros(21)
        pos[:10], pos[10:20] = means[k], B @ means[k]
        u = ts.energy(pos.reshape(7, 3)) - restraint_constant(ts)
        assert u < -10  # deep: sigma = 0.1 in 20 dimensions
    with pytest.raises(ValueError, match="dim"):
        systems.gaussian_mixture(5)


def test_mueller_brown_minimum():
    ts = systems.mueller_brown()
    e = ts.energy(ts.positions) - restraint_constant(ts)
    assert e == pytest.approx(-146.7, abs=0.1)  # the known global minimum of the original potential
    assert ts.kT == pytest.approx(10.0)
    assert systems.mueller_brown("cgbg").kT == pytest.approx(1.0)
    with pytest.raises(ValueError, match="variant"):
        systems.mueller_brown("nope")


@pytest.mark.parametrize("platform", available_platforms())
def test_threads_counts_and_non_finite(platform):
    ts = systems.gaussian_mixture(4)
    props = {"Precision": "double"} if platform == "OpenCL" else {}
    one = cg.EnergyTarget(ts.system, platform=platform, threads=1, properties=props)
    two = cg.EnergyTarget(ts.system, platform=platform, threads=2, properties=props)
    x = jitter(ts, 9, 0.1, seed=2)
    x[4, 0, 0] = np.nan
    e1, f1, ok1 = one.evaluate(x, phase="train")
    e2, f2, ok2 = two.evaluate(x, phase="train")
    np.testing.assert_array_equal(ok1, ok2)
    assert not ok1[4] and ok1.sum() == 8
    np.testing.assert_allclose(e1[ok1], e2[ok2], rtol=1e-12)
    assert one.evaluation_counts == {"train": 9}
    two.evaluate(x[:3], forces=False, phase="reweight")
    assert two.evaluation_count("reweight") == 3 and two.total_evaluations == 12
    two.reset_evaluation_counts()
    assert two.total_evaluations == 0


def test_regularization_and_errors():
    ts = systems.double_well()
    target = cg.EnergyTarget(ts.system)
    x = ts.positions[None].copy()
    x[0, 0, 0] = 6.0  # high on the quartic wall
    e_raw = ts.energy(x)[0]
    target.set_energy_regularization(e_high=10.0, e_max=1e6)
    e, f, ok, raw = target.evaluate_raw(x)
    assert raw[0] == pytest.approx(e_raw) and e[0] == pytest.approx(10 + np.log1p(e_raw - 10))
    with pytest.raises(ValueError, match="eHigh"):
        target.set_energy_regularization(5.0, 1.0)
    with pytest.raises(ValueError, match="positions"):
        target.evaluate(np.zeros((2, 5, 3)))
    with pytest.raises(ValueError, match="platform"):
        cg.EnergyTarget(ts.system, platform="NoSuchPlatform")
    with pytest.raises(TypeError, match="openmm.System"):
        cg.EnergyTarget(42)
    with pytest.raises(ValueError, match="threads"):
        cg.EnergyTarget(ts.system, threads=0)


def test_double_well_reference_marginal():
    ts = systems.double_well()
    x = np.linspace(-6, 6, 6001)
    for beta in (0.1, 0.5, 1.0):
        p = ts.info["x1_marginal"](x, beta)
        assert np.trapezoid(p, x) == pytest.approx(1.0, abs=1e-6)
    p = ts.info["x1_marginal"](x)
    assert np.trapezoid(p[x < 0], x[x < 0]) == pytest.approx(0.99, abs=0.01)


def test_gaussian_mixture_reference_marginals_match_exact_samples():
    ts = systems.gaussian_mixture(4, seed=2)
    rng = np.random.default_rng(0)
    samples = ts.info["sample"](200000, rng)
    modes = ts.info["assign_mode"](samples)
    np.testing.assert_allclose(np.bincount(modes, minlength=3) / len(samples), 1 / 3, atol=0.01)
    for i in range(4):
        hist, edges = np.histogram(samples[:, i], bins=60, density=True)
        centres = 0.5 * (edges[1:] + edges[:-1])
        np.testing.assert_allclose(hist, ts.info["marginal"](i, centres), atol=0.05 * hist.max())
    # The System's energy is exactly -log of the joint mixture density (so Z = 1).
    cov, mu = ts.info["covariance"], ts.info["mode_means"]
    inv, (_, logdet) = np.linalg.inv(cov), np.linalg.slogdet(cov)
    x = samples[:5]
    dens = np.mean([np.exp(-0.5 * np.einsum("ni,ij,nj->n", x - m, inv, x - m) - 0.5 * logdet - 2 * np.log(2 * np.pi))
                    for m in mu], axis=0)
    pos = np.zeros((5, 6))
    pos[:, :4] = x
    np.testing.assert_allclose(ts.energy(pos.reshape(5, 2, 3)) - 2 * restraint_constant(ts), -np.log(dens), rtol=1e-9)
    with pytest.raises(ValueError, match="index"):
        ts.info["marginal"](4, [0.0])


@pytest.mark.parametrize("variant", ["conditional_flow", "cgbg"])
def test_mueller_brown_pmf_matches_binned_grid(variant):
    ts = systems.mueller_brown(variant)
    beta = ts.beta
    # Independent estimate: Boltzmann weights on a fine 2-D grid, binned along the CG coordinate.
    if variant == "conditional_flow":
        xs, ys = np.linspace(-2.5, 1.5, 801), np.linspace(-1.0, 2.5, 701)
        s_grid = np.linspace(-2.5, 1.1, 19)
    else:
        xs, ys = np.linspace(5, 60, 1101), np.linspace(-10, 60, 1401)
        s_grid = np.linspace(15, 50, 15)
    X, Y = np.meshgrid(xs, ys, indexing="ij")
    u = ts.energy(np.stack([X, Y, np.zeros_like(X)], axis=-1)[..., None, :])
    w = np.exp(-beta * (u - u.min()))
    s = ts.info["cg_coordinate"](np.stack([X, Y], axis=-1))
    width = s_grid[1] - s_grid[0]
    binned = np.array([w[np.abs(s - c) < width / 8].sum() for c in s_grid])
    free = -np.log(binned) / beta
    free -= free.min()
    # Binning over finite-width bins on steep slopes costs about 0.1 k_B T; quadrature is exact.
    np.testing.assert_allclose(ts.info["pmf"](s_grid), free, atol=0.2 / beta)
