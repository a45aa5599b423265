"""The continuous normalizing flow (cgbg.cnf, "coupling": "continuous"): density accuracy on the known CG
density of test_cgbg_flow, log q against the BoltzmannGeneratorIntegrator (Reference and CPU) and the
refusal of the GPU platforms, exact normalization by quadrature, resumable flow-matching checkpoints,
the model file, errors, and a tiny Mueller-Brown run with proposal="cnf"."""
import math
import os

import numpy as np
import openmm
import pytest

import openmmcgflow as cg
from openmmcgflow import cgbg
from openmmcgflow.cgbg import mueller_brown as mb

from test_cgbg_flow import BONDS, held_out_kl, importance_context, known_density_sample

SMALL = {"hidden": 48, "num_layers": 2}


@pytest.fixture(scope="module")
def trained():
    x, _ = known_density_sample(6000, seed=5)
    flow, position_map, history = cgbg.train_cg_cnf(x, BONDS, epochs=100, batch_size=128, seed=0, progress=False,
                                                    config={"hidden": 64, "num_layers": 2},
                                                    options={"learning_rate": 3e-3}, validation_samples=200,
                                                    validate_every=25)
    return x, flow, position_map, history


def test_held_out_log_likelihood_approaches_the_exact_density(trained):
    _, flow, position_map, history = trained
    kl, error, _, _, _ = held_out_kl(flow, position_map, 600)
    # Gibbs: an exact log q cannot beat the exact density beyond noise (a Hutchinson estimate, a wrong
    # divergence or a missing circular chain rule would shift it).
    assert kl > -4 * error, (kl, error)
    # measured: 0.37 nats with this small budget (30 epochs: 0.73; 300 epochs: 0.25, with OT pairing
    # 0.18); flow matching converges slower per epoch than the coupling flow's maximum likelihood
    # (test_cgbg_flow: 0.10 after 15 epochs)
    assert kl < 0.5, (kl, error)
    assert history["validation_epochs"] == [24, 49, 74, 99] and history["complete"]
    assert history["best_validation_nll"] == min(history["validation_nll"])


def test_density_of_a_trained_cnf_integrates_to_one_on_the_circle():
    rng = np.random.default_rng(0)
    angles = np.angle(np.exp(1j * np.where(rng.random(4000) < 0.5, rng.vonmises(-2.0, 3.0, 4000),
                                            rng.vonmises(2.5, 6.0, 4000))))
    flow, _ = cgbg.train_cnf(angles, [0], epochs=5, batch_size=128, seed=1, progress=False, config=SMALL,
                             options={"learning_rate": 3e-3})
    grid = np.linspace(-np.pi, np.pi, 2001)[:-1] + np.pi / 2000
    # at the default tolerances (1e-4) the integral is 1 to ~2e-4; tightened, to the quadrature's accuracy
    flow.set_ode_tolerances(1e-9, 1e-9)
    density = np.exp(flow.log_prob(grid.reshape(-1, 1)))
    assert density.sum() * (2 * np.pi / 2000) == pytest.approx(1.0, abs=1e-6)
    # and it learned the two modes: more density at the modes than between them
    at = lambda a: np.exp(flow.log_prob(np.array([[a]])))[0]   # noqa: E731
    assert at(-2.0) > 2 * at(0.25) and at(2.5) > 2 * at(0.25)


@pytest.mark.parametrize("platform", ["Reference", "CPU"])
def test_log_q_matches_the_boltzmann_generator_integrator(trained, platform):
    x, flow, position_map, _ = trained
    flow.set_ode_tolerances(1e-9, 1e-9)   # so that the forward and inverse solves agree to ~1e-6
    integrator, context = importance_context(flow, position_map, x[0], platform)
    batch = cg.evaluate_proposals(integrator, 20)
    recomputed = cgbg.cg_log_prob(flow, position_map, batch.positions)
    flow.set_ode_tolerances(1e-4, 1e-4)
    assert np.all(np.isfinite(batch.log_q))
    # the integrator's log q comes from the forward solve, the recomputed one from the inverse solve:
    # they agree to the ODE tolerance, not to rounding (at the default 1e-4 the log-det, of size ~40 here,
    # carries a relative tolerance: measured differences up to 8e-3 nats)
    assert np.max(np.abs(recomputed - batch.log_q)) < 1e-5
    decoded_flow, _, _ = cg.decode_boltzmann_generator(integrator.getModelBytes())
    assert np.array_equal(decoded_flow.get_parameters(), flow.get_parameters())
    assert decoded_flow.config["layers"][0]["type"] == "continuous_flow"


def test_gpu_platforms_refuse_a_cnf_clearly(trained):
    names = [openmm.Platform.getPlatform(i).getName() for i in range(openmm.Platform.getNumPlatforms())]
    if "OpenCL" not in names:
        pytest.skip("no OpenCL platform")
    x, flow, position_map, _ = trained
    system = openmm.System()
    for _ in range(6):
        system.addParticle(12.0)
    integrator = cg.BoltzmannGeneratorIntegrator(300.0, cg.BoltzmannGeneratorIntegrator.Importance)
    integrator.setModelBytes(cgbg.cg_flow_model_bytes(flow, position_map))
    with pytest.raises(Exception, match="continuous_flow.*no GPU kernel"):
        openmm.Context(system, integrator, openmm.Platform.getPlatformByName("OpenCL"))


def test_resumed_run_equals_an_uninterrupted_one(tmp_path):
    x, _ = known_density_sample(400, seed=3)
    kwargs = dict(epochs=4, batch_size=64, seed=1, progress=False, config=SMALL, validation_samples=20,
                  validate_every=2, optimal_transport=True)
    whole, _, whole_history = cgbg.train_cg_cnf(x, BONDS, **kwargs)
    directory = str(tmp_path / "run")
    _, _, part = cgbg.train_cg_cnf(x, BONDS, checkpoint=directory, stop_after_epochs=1, **kwargs)
    assert not part["complete"] and part["validation_epochs"] == []
    _, _, part = cgbg.train_cg_cnf(x, BONDS, checkpoint=directory, stop_after_epochs=2, **kwargs)
    assert part["validation_epochs"] == [1]
    resumed, _, resumed_history = cgbg.train_cg_cnf(x, BONDS, checkpoint=directory, **kwargs)
    assert np.array_equal(resumed.get_parameters(), whole.get_parameters())      # bit for bit
    assert resumed_history["validation_nll"] == whole_history["validation_nll"]
    assert resumed_history["train_loss"] == whole_history["train_loss"]
    with pytest.raises(ValueError, match="checkpoint: .*optimal_transport"):
        cgbg.train_cg_cnf(x, BONDS, checkpoint=directory, **dict(kwargs, optimal_transport=False))


def test_flow_matching_step_and_statistics_through_the_core():
    flow = cg.Flow({"dimension": 2, "circular": [1], "coupling": "continuous", "hidden": 16, "num_layers": 2,
                    "seed": 0})
    trainer = cg.ModelTrainer(flow, {"optimizer": "adamw", "learning_rate": 1e-3})
    data = np.column_stack([np.random.default_rng(0).normal(size=64), np.zeros(64)])
    data[3] = np.nan
    report = trainer.flow_matching_step(data, 7, optimal_transport=True)
    assert report["num_samples"] == 63 and report["num_dropped"] == 1 and report["step"] == 1
    flow.reset_ode_statistics()
    x, log_q = flow.sample(100, 3)
    stats = flow.ode_statistics()
    assert stats["samples"] == 100 and stats["failed"] == 0
    assert stats["evaluations"] == 100 + 6 * (stats["accepted_steps"] + stats["rejected_steps"])
    assert np.all(np.abs(x[:, 1]) <= np.pi)
    loose = flow.log_prob(x)
    flow.set_ode_tolerances(1e-9, 1e-9)
    tight = flow.log_prob(x)
    # the error of log q at the default tolerances 1e-4, against a 1e-9 solve: measured mean 9e-4, max 4e-3
    # nats on this field (1e-5: 6e-5 / 3e-4; 1e-6: 3e-6 / 3e-5), the forward solve's the same
    assert np.mean(np.abs(loose - tight)) < 3e-3 and np.max(np.abs(loose - tight)) < 2e-2
    assert np.mean(np.abs(log_q - tight)) < 3e-3 and np.max(np.abs(log_q - tight)) < 2e-2
    assert flow.config["layers"][0]["atol"] == 1e-9
    assert cg._core.minimum_cost_assignment(np.array([[3.0, 1.0], [1.0, 3.0]])) == [1, 0]


def test_bad_input_is_refused_with_the_argument_named():
    x, _ = known_density_sample(100, seed=1)
    with pytest.raises(ValueError, match="epochs"):
        cgbg.train_cg_cnf(x, BONDS, epochs=0, progress=False)
    with pytest.raises(ValueError, match="circular"):
        cgbg.train_cnf(np.zeros((10, 2)), [2], epochs=1, progress=False)
    with pytest.raises(ValueError, match="y: .*not finite"):
        cgbg.train_cnf(np.array([[0.0], [np.inf], [1.0]]), epochs=1, progress=False)
    with pytest.raises(ValueError, match="config: 'coupling'"):
        cgbg.train_cnf(np.zeros((10, 1)), epochs=1, progress=False, config={"coupling": "spline"})
    with pytest.raises(Exception, match="relu"):
        cg.Flow({"dimension": 1, "coupling": "continuous", "activation": "relu"})
    coupling = cg.Flow({"dimension": 2, "num_layers": 2, "hidden": 4})
    with pytest.raises(Exception, match="continuous_flow"):
        cg.ModelTrainer(coupling, {}).flow_matching_step(np.zeros((4, 2)), 1)
    with pytest.raises(Exception, match="continuous_flow"):
        coupling.ode_statistics()


def test_tiny_mueller_brown_run_with_a_cnf(tmp_path):
    tiny = dict(num_trajectories=2, frames_per_trajectory=1500, record_every=100, equilibration_steps=2000,
                fm_hidden=(16, 16), fm_epochs=4, cnf_hidden=16, cnf_epochs=3, proposals=5000, cost_samples=500,
                populated_kT=2.0)
    out = str(tmp_path)
    results = mb.run_mueller_brown(mb.MuellerBrownSettings(case="mb_unbiased", seed=3, proposal="cnf", **tiny), out)
    for name in ("js_x", "ess_fraction", "wall_s_flow", "wall_s_per_1e4_samples", "vector_field_evaluations_per_sample"):
        assert math.isfinite(results[name]["value"]), name
    assert results["ode_failed_samples"]["value"] == 0
    assert results["vector_field_evaluations_per_sample"]["value"] >= 7
    assert os.path.getsize(os.path.join(out, "mb_unbiased_seed3", "cnf", "cg_flow.model")) > 0
    with pytest.raises(ValueError, match="proposal"):
        mb.run_mueller_brown(mb.MuellerBrownSettings(case="mb_unbiased", proposal="maf"), out)
