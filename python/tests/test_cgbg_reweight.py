"""cgbg.reweight: flow proposals reweighted with a PMFForce inside OpenMM, against an exact answer.

One CG particle; its x carries a double-well PMF and its y a V-shaped well, both a PMFForce
(``addCoordinate`` features, a softplus MLP set from numpy, so U_PMF is known in closed form). The flow
is a Gaussian over (x, y) that is deliberately not the target (off-centre, the wrong shape); the
reference histogram of x is the quadrature of exp(-beta U_PMF) over each bin.
"""
import os

import numpy as np
import openmm
import pytest

import openmmcgflow as cg
from openmmcgflow import cgbg, systems

KT = 1.0                                   # kJ/mol
TEMPERATURE = KT / systems.KB
S, A, K_OUT, C_IN, K_Y = 4.0, 1.5, 12.0, 3.0, 4.0
AXIS = (-4.0, 4.0, 40)


def softplus(z):
    return np.logaddexp(0.0, z)


def pmf_energy(x, y):
    """The PMF the force below evaluates (kJ/mol): wells at x = +-1.5, barrier ~4.5 kT; |y|-like well in y."""
    return (K_OUT / S * (softplus(S * (x - A)) + softplus(-S * (x + A)))
            - C_IN / S * (softplus(S * x) + softplus(-S * x))
            + K_Y / S * (softplus(S * y) + softplus(-S * y)))


def double_well_pmf():
    pmf = cg.PMFForce()
    pmf.addCoordinate(0, 0)                # x
    pmf.addCoordinate(0, 1)                # y
    w1 = np.array([[S, 0], [-S, 0], [S, 0], [-S, 0], [0, S], [0, -S]], dtype=float)
    b1 = np.array([-S * A, -S * A, 0, 0, 0, 0], dtype=float)
    w2 = np.array([[K_OUT / S, K_OUT / S, -C_IN / S, -C_IN / S, K_Y / S, K_Y / S]])
    pmf.setEnsembleParameters([[w1, w2]], [[b1, np.zeros(1)]], activation="softplus")
    return pmf


def gaussian_flow(mean, sigma):
    """An affine-coupling flow that is exactly (x, y) = mean + sigma * z (as in test_bg_integrator.py)."""
    masks = [[True, False]]
    flow = cg.Flow({"dimension": 2, "coupling": "affine", "num_layers": 2, "masks": masks, "hidden": 8, "seed": 3})
    params = flow.get_parameters()
    mean, sigma = np.asarray(mean, float), np.asarray(sigma, float)
    for layer in range(flow.num_layers):
        end = flow.parameter_offset(layer + 1) if layer + 1 < flow.num_layers else flow.num_parameters
        transformed = [d for d in range(2) if masks[0][d] == (layer % 2 == 0)]
        bias = np.concatenate([np.log(sigma[transformed]), mean[transformed]])
        params[end - bias.size:end] = bias
    flow.set_parameters(params)
    return flow


MEAN, SIGMA = (0.4, 0.0), (1.2, 0.35)      # off-centre, Gaussian in x and y: not the target


def proposal_model(num_particles=1):
    return cg.encode_boltzmann_generator(gaussian_flow(MEAN, SIGMA),
                                         cg.PositionMap.cartesian(num_particles, [(0, 0), (0, 1)]))


def reference_histogram():
    """Bin probabilities of x under exp(-beta U_PMF), by midpoint quadrature (the y factor separates)."""
    low, high, bins = AXIS
    per_bin = 200
    x = low + (np.arange(bins * per_bin) + 0.5) * (high - low) / (bins * per_bin)
    density = np.exp(-pmf_energy(x, 0.0) / KT)
    p = density.reshape(bins, per_bin).sum(axis=1)
    return p / p.sum()


@pytest.fixture(scope="module")
def system():
    return cgbg.cg_system(1, double_well_pmf(), masses=12.0)


@pytest.fixture(scope="module")
def result(system):
    return cgbg.reweight(system, proposal_model(), 20000, temperature=TEMPERATURE, seed=11,
                         observable=lambda positions: positions[:, 0, 0] < 0.0)


def test_cg_system_is_particles_plus_the_pmf(system):
    assert system.getNumParticles() == 1 and system.getParticleMass(0).value_in_unit(openmm.unit.amu) == 12.0
    assert system.getNumForces() == 1 and cg.PMFForce.isinstance(system.getForce(0))
    context = openmm.Context(system, openmm.VerletIntegrator(0.001), openmm.Platform.getPlatformByName("Reference"))
    for x, y in [(-1.5, 0.0), (0.0, 0.2), (2.3, -0.7)]:
        context.setPositions([[x, y, 0.0]])
        energy = context.getState(getEnergy=True).getPotentialEnergy().value_in_unit(openmm.unit.kilojoule_per_mole)
        assert energy == pytest.approx(pmf_energy(x, y), abs=1e-9)


def test_weights_are_minus_beta_u_minus_log_q(result):
    assert result.positions.shape == (20000, 1, 3) and result.num_nonfinite == 0
    x, y = result.positions[:, 0, 0], result.positions[:, 0, 1]
    assert np.allclose(result.energy, pmf_energy(x, y), atol=1e-8)
    log_q = (-0.5 * ((x - MEAN[0]) / SIGMA[0]) ** 2 - 0.5 * ((y - MEAN[1]) / SIGMA[1]) ** 2
             - np.log(2 * np.pi * SIGMA[0] * SIGMA[1]))
    assert np.allclose(result.log_q, log_q, atol=1e-8)
    assert np.allclose(result.log_w, -result.energy / KT - result.log_q, atol=1e-8)
    assert result.beta == pytest.approx(1.0 / KT)
    # The top 1 % dropped (ceil(0.01 n) = 200 of them), the rest untouched.
    dropped = ~np.isfinite(result.log_w_clipped)
    assert dropped.sum() == 200
    assert result.log_w[dropped].min() >= result.log_w[~dropped].max()
    assert np.array_equal(result.log_w_clipped[~dropped], result.log_w[~dropped])
    assert np.isclose(result.weights.sum(), 1) and np.isclose(result.weights_clipped.sum(), 1)
    assert result.weights_clipped[dropped].max() == 0
    assert 0 < result.ess_fraction_raw <= 1 and 0 < result.ess_fraction <= 1
    assert result.ess_fraction > result.ess_fraction_raw


def test_reweighted_profile_matches_the_exact_one(result):
    reference = reference_histogram()
    x = result.positions[:, 0, 0]
    clipped = cgbg.profile_metrics(x, result.log_w_clipped, reference, AXIS, periodic=False)
    unclipped = cgbg.profile_metrics(x, result.log_w, reference, AXIS, periodic=False)
    print("raw JS %.4g PMF error %.4g | reweighted (1%% dropped) JS %.4g PMF error %.4g | unclipped JS %.4g "
          "PMF error %.4g | ESS %.3f (raw %.3f)" % (clipped["raw"]["js"], clipped["raw"]["pmf_error"],
                                                   clipped["reweighted"]["js"], clipped["reweighted"]["pmf_error"],
                                                   unclipped["reweighted"]["js"], unclipped["reweighted"]["pmf_error"],
                                                   result.ess_fraction, result.ess_fraction_raw))
    assert clipped["raw"]["js"] > 0.05                      # the flow alone is far from the target
    assert clipped["reweighted"]["js"] < 2e-3
    assert clipped["reweighted"]["js"] < clipped["raw"]["js"] / 20
    assert unclipped["reweighted"]["js"] < 1e-3
    assert clipped["reweighted"]["pmf_error"] < clipped["raw"]["pmf_error"] / 10
    assert np.isclose(clipped["raw"]["probability"].sum(), 1)
    assert clipped["raw"]["num_out_of_range"] == np.sum((x < AXIS[0]) | (x >= AXIS[1]))
    # The free energy of the reference (units of kT) is -ln p, minimum 0.
    assert np.nanmin(clipped["reference"]["free_energy"]) == 0
    # P(x < 0) is 1/2 by symmetry: the flow gives ~0.37, the reweighted estimate the exact value.
    assert np.mean(x < 0) < 0.42
    estimate = np.sum(result.weights * (x < 0))
    assert estimate == pytest.approx(0.5, abs=0.03)


def test_clipping_curve(result):
    curve = result.clipping_curve
    levels = [row["level"] for row in curve]
    assert levels == list(cgbg.reweight.__kwdefaults__["clip_levels"]) and levels[0] == 0.0 and levels[-1] == 0.2
    ess = np.array([row["ess_fraction"] for row in curve])
    assert ess[0] == pytest.approx(result.ess_fraction_raw)
    one = levels.index(0.01)
    assert ess[one] == pytest.approx(result.ess_fraction)
    # Dropping the heaviest weights raises the Kish ESS up to 10 %; past that the dropped samples (which
    # count as zero weights among the n) cap it at 1 - level.
    upto = levels.index(0.1) + 1
    assert np.all(np.diff(ess[:upto]) > 0)
    assert np.all(ess <= 1 - np.array(levels) + 1e-12)
    # The estimate of P(x < 0): unbiased at 0 % (close to 1/2), biased towards the flow's 0.37 as more of
    # the heaviest weights (which sit in the left well, where the flow is thin) are dropped.
    estimates = np.array([row["estimate"] for row in curve])
    assert estimates[0] == pytest.approx(0.5, abs=0.03)
    assert np.all(np.diff(estimates[:upto]) < 0)
    assert estimates[upto - 1] < estimates[0] - 0.05
    assert [row["num_modified"] for row in curve][one] == 200


def test_plot(result, tmp_path):
    x = result.positions[:, 0, 0]
    metrics = cgbg.profile_metrics(x, result.log_w_clipped, reference_histogram(), AXIS, periodic=False)
    path = cgbg.plot_reweighting(str(tmp_path / "reweighting.png"), metrics, result, xlabel="x (nm)")
    assert os.path.getsize(path) > 10000
    with open(path, "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n"


def test_seed_fixes_the_proposals(system):
    first = cgbg.reweight(system, proposal_model(), 50, temperature=TEMPERATURE, seed=5)
    again = cgbg.reweight(system, proposal_model(), 50, temperature=TEMPERATURE, seed=5)
    other = cgbg.reweight(system, proposal_model(), 50, temperature=TEMPERATURE, seed=6)
    assert np.array_equal(first.log_w, again.log_w) and not np.array_equal(first.log_w, other.log_w)
    assert first.clipping_curve[0]["estimate"] == pytest.approx(np.log(np.mean(np.exp(first.log_w))))  # log Z


def test_bad_input(system):
    model = proposal_model()
    options = dict(temperature=TEMPERATURE, seed=1)
    with pytest.raises(ValueError, match="^n: "):
        cgbg.reweight(system, model, 0, **options)
    for bad in (1.0, -0.01, 1.5):
        with pytest.raises(ValueError, match="^clip_fraction: "):
            cgbg.reweight(system, model, 10, clip_fraction=bad, **options)
    with pytest.raises(ValueError, match="^flow_model_bytes: .*2 particles but the system has 1"):
        cgbg.reweight(system, proposal_model(num_particles=2), 10, **options)
    with pytest.raises(ValueError, match="^flow_model_bytes: "):
        cgbg.reweight(system, b"not a model", 10, **options)
    with pytest.raises(ValueError, match="^seed: "):
        cgbg.reweight(system, model, 10, temperature=TEMPERATURE, seed=0)
    with pytest.raises(ValueError, match="^observable: "):
        cgbg.reweight(system, model, 10, observable=np.zeros(3), **options)
    with pytest.raises(ValueError, match="^pmf_force: feature 0 uses particle 3 but the CG system has 2 particles"):
        pmf = cg.PMFForce()
        pmf.addCoordinate(3, 0)
        pmf.setEnsembleParameters([[np.ones((1, 1))]], [[np.zeros(1)]])
        cgbg.cg_system(2, pmf)
    with pytest.raises(TypeError, match="^pmf_force: "):
        cgbg.cg_system(1, openmm.CustomExternalForce("0"))
    with pytest.raises(ValueError, match="^masses: "):
        cgbg.cg_system(2, double_well_pmf(), masses=[1.0, -1.0])
    reference = reference_histogram()
    with pytest.raises(ValueError, match="^reference_probabilities: "):
        cgbg.profile_metrics(np.zeros(5), np.zeros(5), reference[:-1], AXIS)
    with pytest.raises(ValueError, match="^log_w: "):
        cgbg.profile_metrics(np.zeros(5), np.zeros(4), reference, AXIS)
    with pytest.raises(ValueError, match="^axis: "):
        cgbg.profile_metrics(np.zeros(5), np.zeros(5), reference, (1.0, 0.0, 40))
