"""The 2-D double well of Stupp & Koutsourelakis (Sec. 3.1, ``systems.double_well()``): the paper's slow/fast
model, the run's settings and its no-tempering baseline, shared by examples/data_free_double_well.py, the
tests and benchmarks/data_free.py."""
import numpy as np

from .._core import SlowFastModel

# The run's settings (keywords of train_data_free). The tempering rule's parameters are the paper's
# (delta KL_max = 0.1, delta beta_max = 0.05); the step counts fit 10^6 evaluations: 1000 steps at beta_0
# (600 lose the map on some seeds), 12 per level, and the final phase (375 steps of 1200 at a rate decayed
# from 3e-3 to 3e-5), chosen on 32 seeds with an exact NumPy energy: P(x1 < 0) within 0.005 of exact for
# all 32 (rms deviation 0.0017), at most 915 400 evaluations.
SETTINGS = dict(beta_target=1.0, beta_initial=0.01, initial_steps=1000, steps_per_level=12, batch=200,
                max_relative_increase=0.1, max_step=0.05, kl_floor=0.02, final_steps=375, final_batch=1200,
                final_learning_rate=(3e-3, 3e-5))


def baseline_settings(settings, evaluations):
    """Plain reverse KL at beta_target for the tempered run's evaluations (less the final phase), then
    the same final phase: the comparison at equal cost."""
    plain = dict(settings, tempering=False)
    plain["initial_steps"] = (evaluations - settings["final_steps"] * settings["final_batch"]) // settings["batch"]
    return plain


def make_model(seed):
    """The paper's model: one slow variable z with a 6-layer elementwise RQ-spline flow (K = 8 on [-5, 5],
    truncated-normal base), one fast variable X | z ~ N(mu(z), sigma(z)^2) from an MLP of width 32, and
    x = A [z, X] with a learnable 2 x 2 right-stochastic A."""
    return SlowFastModel({
        "slow": {"dimension": 1, "coupling": "elementwise", "num_layers": 6, "num_bins": 8, "bound": 5.0,
                 "base": "truncated_normal", "base_bound": 5.0, "hidden": 32, "num_blocks": 1, "num_threads": 1},
        "fast": {"hidden": 32, "num_blocks": 1, "activation": "relu"},
        "map": {"type": "right_stochastic_linear", "num_atoms": 2, "components_per_atom": 1,
                "initial_diagonal_weight": 0.7, "initial_logit_noise": 0.3},
        "seed": seed})


def probability_left(model, n, seed):
    """P(x1 < 0) of n model samples, and the samples."""
    x, _, _ = model.sample(n, seed)
    return float(np.mean(x[:, 0] < 0)), x
