"""The flow engine from Python: configs, sampling, densities, gradients, training, files."""
import numpy as np
import pytest

from openmmcgflow import CGFlowError, Flow, ModelTrainer, load_flow_trainer


def small_config(**extra):
    config = {"dimension": 4, "circular": [1], "num_layers": 4, "hidden": 16, "num_bins": 6,
              "bound": 4.0, "mask_seed": 2, "shift_seed": 3, "seed": 5}
    config.update(extra)
    return config


def randomized(flow, scale=0.1, seed=0):
    flow.set_parameters(np.random.default_rng(seed).normal(0, scale, flow.num_parameters))
    return flow


def test_sample_and_log_prob_agree():
    flow = randomized(Flow(small_config()))
    x, log_q = flow.sample(500, seed=1)
    assert x.shape == (500, 4) and log_q.shape == (500,)
    assert np.all(np.abs(x[:, 1]) <= np.pi)
    np.testing.assert_allclose(flow.log_prob(x), log_q, atol=1e-10)
    # Counter-based draws: samples 100.. equal a call starting at index 100 (up to the GEMM
    # backend's rounding, which may depend on a column's position in the batch).
    tail, _ = flow.sample(50, seed=1, first_index=100)
    np.testing.assert_allclose(tail, x[100:150], rtol=0, atol=1e-12)
    # The base points round-trip.
    _, z = flow.log_prob(x[:5], return_base=True)
    x_again, log_q_again = flow.sample_from_base(z)
    np.testing.assert_allclose(x_again, x[:5], atol=1e-10)
    np.testing.assert_allclose(log_q_again, log_q[:5], atol=1e-10)


def test_log_prob_is_a_normalized_density_in_one_dimension():
    # Integrate q over a grid: an elementwise spline flow on the line must integrate to 1.
    flow = randomized(Flow({"dimension": 1, "coupling": "elementwise", "num_layers": 3, "bound": 3.0}), 0.7)
    grid = np.linspace(-12, 12, 200001)
    q = np.exp(flow.log_prob(grid[:, None]))
    assert abs(np.trapezoid(q, grid) - 1) < 1e-6


def test_log_prob_gradients_match_finite_differences():
    flow = randomized(Flow(small_config(context_dimension=2, context_circular=[0])), seed=3)
    rng = np.random.default_rng(4)
    ctx = rng.normal(size=(6, 2))
    x, _ = flow.sample(6, seed=2, context=ctx)
    g = rng.normal(size=6)
    grads = flow.log_prob_gradients(x, g, context=ctx)
    h = 1e-6
    params = flow.get_parameters()
    for p in rng.choice(flow.num_parameters, 20, replace=False):
        up, down = params.copy(), params.copy()
        up[p] += h
        down[p] -= h
        flow.set_parameters(up)
        f_up = g @ flow.log_prob(x, context=ctx)
        flow.set_parameters(down)
        f_down = g @ flow.log_prob(x, context=ctx)
        assert grads["parameters"][p] == pytest.approx((f_up - f_down) / (2 * h), rel=1e-5, abs=1e-6)
    flow.set_parameters(params)
    for i, j in [(0, 0), (3, 2), (5, 1)]:
        xp, xm = x.copy(), x.copy()
        xp[i, j] += h
        xm[i, j] -= h
        numeric = (g @ flow.log_prob(xp, context=ctx) - g @ flow.log_prob(xm, context=ctx)) / (2 * h)
        assert grads["x"][i, j] == pytest.approx(numeric, rel=1e-5, abs=1e-6)
        cp, cm = ctx.copy(), ctx.copy()
        cp[i, j % 2] += h
        cm[i, j % 2] -= h
        numeric = (g @ flow.log_prob(x, context=cp) - g @ flow.log_prob(x, context=cm)) / (2 * h)
        assert grads["context"][i, j % 2] == pytest.approx(numeric, rel=1e-5, abs=1e-6)


def test_reverse_kl_training_fits_a_gaussian():
    # Target N(mu, diag(s^2)) in 3-D; log Z = sum log(sqrt(2 pi) s).
    mu, s = np.array([1.0, -2.0, 0.5]), np.array([0.5, 1.5, 1.0])
    flow = Flow({"dimension": 3, "num_layers": 4, "hidden": 32, "bound": 6.0, "seed": 1, "num_threads": 2})
    trainer = ModelTrainer(flow, {"learning_rate": 3e-3, "cosine_steps": 600})
    for step in range(600):
        x, _ = trainer.sample(256, seed=step)
        d = (x - mu) / s
        report = trainer.reverse_kl_step(0.5 * (d ** 2).sum(1), -d / s, beta=1.0)
    assert report["step"] == 600 and report["action"] in ("accept", "clip")
    x, log_q = flow.sample(20000, seed=12345)
    d = (x - mu) / s
    kl = np.mean(log_q + 0.5 * (d ** 2).sum(1)) + np.sum(np.log(np.sqrt(2 * np.pi) * s))
    assert -0.005 < kl < 0.01


def test_mixed_precision_keeps_log_q_close_and_exact_for_its_own_samples():
    flow = randomized(Flow(small_config(hidden=64)), 0.05)
    x, log_q = flow.sample(200, seed=3)
    flow.precision = "mixed"
    assert flow.precision == "mixed"
    log_q_mixed = flow.log_prob(x)
    assert np.max(np.abs(log_q_mixed - log_q)) < 1e-3
    # In mixed mode the flow is still an exact bijection with an exact density: its own samples
    # and their log-densities agree to double precision.
    xm, lqm = flow.sample(200, seed=3)
    np.testing.assert_allclose(flow.log_prob(xm), lqm, atol=1e-9)


def test_files_round_trip_and_training_resumes(tmp_path):
    flow = randomized(Flow(small_config()), 0.05)
    path = tmp_path / "flow.safetensors"
    flow.save(str(path), info={"note": "test"})
    assert Flow.load(str(path)).to_bytes(info={"note": "test"}) == path.read_bytes()

    def steps(trainer, first, count):
        for i in range(first, first + count):
            x, _ = trainer.sample(64, seed=i)
            f = -x
            f[:, 1] = 0
            trainer.reverse_kl_step(0.5 * (x[:, [0, 2, 3]] ** 2).sum(1), f)

    trainer = ModelTrainer(flow, {"learning_rate": 1e-2, "guard": True})
    steps(trainer, 0, 5)
    checkpoint = tmp_path / "checkpoint.safetensors"
    trainer.save(str(checkpoint))
    steps(trainer, 5, 5)
    resumed_flow, resumed = load_flow_trainer(str(checkpoint))
    assert resumed.step_count == 5
    steps(resumed, 5, 5)
    np.testing.assert_array_equal(resumed_flow.get_parameters(), flow.get_parameters())


def test_bad_input_gives_clear_errors(tmp_path):
    with pytest.raises(CGFlowError, match='unknown key "hiden"'):
        Flow(small_config(hiden=3))
    flow = Flow(small_config())
    with pytest.raises(CGFlowError, match=r"shape \(n, 4\)"):
        flow.log_prob(np.zeros((3, 5)))
    with pytest.raises(CGFlowError, match="not conditional"):
        flow.sample(3, seed=0, context=np.zeros(2))
    with pytest.raises(CGFlowError, match="1-D array of"):
        flow.set_parameters(np.zeros(3))
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(flow.to_bytes()[:-10])
    with pytest.raises(CGFlowError, match="truncated"):
        Flow.load(str(bad))
    with pytest.raises(CGFlowError, match="unknown key"):
        ModelTrainer(flow, {"learning_rat": 1e-3})
    trainer = ModelTrainer(flow)
    with pytest.raises(CGFlowError, match="call sample"):
        trainer.reverse_kl_step(np.zeros(2), np.zeros((2, 4)))
