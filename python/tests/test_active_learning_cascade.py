"""Cascaded sampling back to atoms inside OpenMM: a conditional position map (phi and psi from the condition
vector), BoltzmannGeneratorIntegrator proposals that sit exactly on the CG point with weights that agree with
the flow's density and the PMF labels, OpenCL against Reference, and CG Monte Carlo points -> atoms."""
import numpy as np
import openmm
import pytest

import openmmcgflow as cg
from openmmcgflow.active_learning import alanine as A
from openmmcgflow.active_learning import cascade as C
from openmmcgflow.active_learning.labels import pmf_labels

POINTS = np.array([[-1.5, 2.5], [1.0, -0.7], [-2.8, 3.0]])


@pytest.fixture(scope="module")
def problem():
    return A.AlanineConditional()


@pytest.fixture(scope="module")
def model(problem):
    # A small conditional flow, perturbed from its identity-like start so that the context matters.
    flow = A.conditional_flow(problem, num_layers=2, hidden=16, seed=3)
    p = flow.get_parameters()
    flow.set_parameters(p + 0.02 * np.random.default_rng(1).standard_normal(p.size))
    return flow, C.conditional_generator_model(problem, flow)


def test_position_map_takes_phi_psi_from_the_condition(problem):
    plain = cg.PositionMap.internal(problem.internal)
    conditional = cg.PositionMap.internal(problem.internal, condition_columns=[(5, 0), (29, 1)])
    assert conditional.dimension == plain.dimension - 2 == 58
    assert conditional.condition_columns == [(5, 0), (29, 1)]
    x = problem.system.positions[None]
    y, log_det, own = conditional.from_positions(x, with_condition=True)
    np.testing.assert_allclose(own, problem.system.info["phi_psi"].map_positions(x), atol=1e-12)
    back, log_det_back = conditional.to_positions(y, problem.system.positions, condition=own[0] + [0.5, -1.0])
    np.testing.assert_allclose(problem.system.info["phi_psi"].map_positions(back)[0],
                               (own[0] + [0.5, -1.0] + np.pi) % (2 * np.pi) - np.pi, atol=1e-10)
    np.testing.assert_allclose(log_det_back, log_det, atol=1e-10)
    with pytest.raises(ValueError, match="condition: this map takes 2 internal coordinates"):
        conditional.to_positions(y, problem.system.positions)
    with pytest.raises(ValueError, match="condition: expected shape"):
        conditional.to_positions(y, problem.system.positions, condition=np.zeros((2, 2)))
    with pytest.raises(ValueError, match="not a circular dihedral"):
        cg.PositionMap.internal(problem.internal, condition_columns=[(0, 0)])


def test_proposals_sit_on_the_cg_point_with_the_flows_weights(problem, model):
    flow, model_bytes = model
    samples = C.cascaded_samples(problem, model_bytes, POINTS, np.zeros(len(POINTS)))
    np.testing.assert_allclose(problem.system.info["phi_psi"].map_positions(samples.positions), POINTS, atol=1e-9)
    # log w = -beta U + log|det J| - log q_flow(x_FG | s): the reverse-KL target of the flow, recomputed here
    # from the positions alone.
    fine, cg_points = problem.split(samples.positions)
    loss, _, energy, _ = problem.price(fine, cg_points)
    log_q = np.asarray(flow.log_prob(fine, context=problem.context(cg_points)))
    np.testing.assert_allclose(samples.log_w_conditional, -loss - log_q, rtol=1e-9, atol=1e-6)
    np.testing.assert_allclose(samples.energy_kj, energy, rtol=1e-9, atol=1e-6)


def test_integrator_copies_give_the_pmf_label(problem, model):
    # k copies at one CG point through the integrator: -kT log mean w is the paper's label (eq. 12, unclipped).
    flow, model_bytes = model
    integrator = cg.BoltzmannGeneratorIntegrator(problem.temperature, cg.BoltzmannGeneratorIntegrator.Importance)
    integrator.setModelBytes(model_bytes)
    integrator.setRandomNumberSeed(4)
    integrator.setBlockSize(8)
    integrator.setConditionVector(list(POINTS[0]))
    context = openmm.Context(problem.system.system, integrator, openmm.Platform.getPlatformByName("Reference"))
    context.setPositions(problem.system.positions)
    log_w, positions = [], []
    for _ in range(8):
        integrator.step(1)
        log_w.append(integrator.getLastLogWeight())
        positions.append(context.getState(getPositions=True).getPositions(asNumpy=True)._value)
    fine, cg_points = problem.split(np.array(positions))
    _, _, energy, log_det_j = problem.price(fine, cg_points)
    log_q = np.asarray(flow.log_prob(fine, context=problem.context(cg_points)))
    label = pmf_labels(energy[None], log_q[None], log_det_j[None], problem.temperature, clip_top=0)[0]
    log_w = np.array(log_w)
    top = log_w.max()
    assert -problem.kT * (top + np.log(np.mean(np.exp(log_w - top)))) == pytest.approx(label, rel=1e-9, abs=1e-6)


def test_metropolis_replaces_a_state_off_the_cg_point(problem, model):
    # The minimized structure is not at POINTS[1]: outside the proposal's support, so the first proposal is
    # taken whatever its weight; after it the chain stays on the CG point.
    _, model_bytes = model
    integrator = cg.BoltzmannGeneratorIntegrator(problem.temperature, cg.BoltzmannGeneratorIntegrator.Metropolis)
    integrator.setModelBytes(model_bytes)
    integrator.setRandomNumberSeed(5)
    integrator.setConditionVector(list(POINTS[1]))
    context = openmm.Context(problem.system.system, integrator, openmm.Platform.getPlatformByName("Reference"))
    context.setPositions(problem.system.positions)
    integrator.step(1)
    assert integrator.getLastAccepted()
    for _ in range(5):
        integrator.step(1)
        x = context.getState(getPositions=True).getPositions(asNumpy=True)._value
        np.testing.assert_allclose(problem.system.info["phi_psi"].map_positions(x[None])[0], POINTS[1], atol=1e-9)


OPENCL = "OpenCL" in [openmm.Platform.getPlatform(i).getName() for i in range(openmm.Platform.getNumPlatforms())]


# Positions (nm) and log q (nats) of the OpenCL kernel against Reference, per precision (as for the
# unconditional internal map in test_bg_integrator).
TOLERANCE = {"single": (2e-5, 2e-3), "mixed": (2e-5, 2e-4), "double": (1e-9, 1e-7)}


@pytest.mark.skipif(not OPENCL, reason="no OpenCL platform")
@pytest.mark.parametrize("precision", ["single", "mixed", "double"])
def test_opencl_conditional_proposals_match_reference(problem, model, precision):
    _, model_bytes = model
    results = {}
    for platform, properties in (("Reference", {}), ("OpenCL", {"Precision": precision})):
        integrator = cg.BoltzmannGeneratorIntegrator(problem.temperature, cg.BoltzmannGeneratorIntegrator.Importance)
        integrator.setModelBytes(model_bytes)
        integrator.setRandomNumberSeed(6)
        integrator.setBlockSize(4)
        context = None
        positions, log_q = [], []
        for point in POINTS:
            integrator.setConditionVector(list(point))
            if context is None:
                context = openmm.Context(problem.system.system, integrator, openmm.Platform.getPlatformByName(platform),
                                         properties)
                context.setPositions(problem.system.positions)
            integrator.step(1)
            positions.append(context.getState(getPositions=True).getPositions(asNumpy=True)._value)
            log_q.append(integrator.getLastLogQ())
        results[platform] = (np.array(positions), np.array(log_q))
        del context
    position_tolerance, log_q_tolerance = TOLERANCE[precision]
    np.testing.assert_allclose(results["OpenCL"][0], results["Reference"][0], atol=position_tolerance)
    np.testing.assert_allclose(results["OpenCL"][1], results["Reference"][1], rtol=1e-9, atol=log_q_tolerance)


def test_cg_monte_carlo_then_atoms(problem, model):
    _, model_bytes = model
    rng = np.random.default_rng(2)
    centres = rng.uniform(-np.pi, np.pi, size=(40, 2))
    labels = 2.0 * (1 - np.cos(centres[:, 0] + 1.2)) + (1 - np.cos(centres[:, 1] - 2.6))
    ensemble = A.phi_psi_ensemble(centres, labels, problem.kT, members=2, hidden=(8,), epochs=20, batch=8)
    points, pmf = C.cg_monte_carlo_points(ensemble.to_bytes(), 4, 30, 10, start=[[-1.2, 2.6]], seed=3)
    assert points.shape == (12, 2) and np.all(np.abs(points) <= np.pi)
    np.testing.assert_allclose(pmf, ensemble.evaluate(A.AlanineConditional.pmf_inputs(points))[0], rtol=1e-9)
    samples = C.cascaded_samples(problem, model_bytes, points, pmf, seed=2)
    np.testing.assert_allclose(problem.system.info["phi_psi"].map_positions(samples.positions), points, atol=1e-9)
    finite = np.isfinite(samples.log_w)
    np.testing.assert_allclose(samples.log_w[finite], samples.log_w_conditional[finite] + pmf[finite] / problem.kT)
    assert 0 < samples.ess_fraction <= 1
    with pytest.raises(ValueError, match="every"):
        C.cg_monte_carlo_points(ensemble.to_bytes(), 4, 5, 10, start=[[0.0, 0.0]])
    with pytest.raises(ValueError, match="cg_points and pmf_kj"):
        C.cascaded_samples(problem, model_bytes, points, pmf[:-1])


def test_a_flow_not_conditioned_on_phi_psi_is_refused(problem):
    flow = cg.Flow({"dimension": problem.fine_dimension, "circular": problem.fine_circular, "context_dimension": 4,
                    "num_layers": 2, "hidden": 8})
    with pytest.raises(ValueError, match="context dimension 2"):
        C.conditional_generator_model(problem, flow)
