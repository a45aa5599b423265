"""Faults during long work: data-free training through a NaN storm (10 % of every batch's energies NaN or
+inf, 1 % clashes with forces ~1e6 kJ/mol/nm) completes, counts every evaluation and reports the weight-zero
samples of each level; through NaN and +inf alone it learns the double well as well as without them."""
import numpy as np

import openmmcgflow as cg
from openmmcgflow.datafree import double_well

SETTINGS = dict(beta_initial=0.2, initial_steps=200, steps_per_level=30, batch=200, max_step=0.2, kl_floor=0.02,
                evaluation_batch=1000, seed=3, progress=False)


class StormyEnergy:
    """The double well's energy with faults injected into every batch, drawn from a stream keyed by the call:
    a fraction ``bad`` of the samples get energy NaN (half) or +inf (half) and NaN forces, a fraction ``clash``
    (at least one) get 1e4 kJ/mol more and forces of 1e6 kJ/mol/nm."""

    def __init__(self, energy, bad=0.10, clash=0.01):
        self.energy, self.bad, self.clash = energy, bad, clash
        self.calls = []  # per call: (batch size, non-finite energies, clashes)

    def __call__(self, x):
        u, f = self.energy(x)
        u, f = np.array(u, dtype=float), np.array(f, dtype=float)
        rng = np.random.default_rng([7, len(self.calls)])
        order = rng.permutation(len(x))
        bad = order[:int(round(self.bad * len(x)))]
        clash = order[len(bad):len(bad) + (max(1, int(round(self.clash * len(x)))) if self.clash else 0)]
        u[bad[::2]], u[bad[1::2]] = np.nan, np.inf
        f[bad] = np.nan
        u[clash] += 1e4
        f[clash] = 1e6 * rng.choice([-1.0, 1.0], size=f[clash].shape)
        self.calls.append((len(x), len(bad), len(clash)))
        return u, f


def double_well_energy():
    system = cg.systems.double_well()
    return cg.datafree.CoordinateEnergy(system.system, system.positions, system.active)


def test_data_free_training_completes_through_a_nan_storm_with_clashes():
    stormy = StormyEnergy(double_well_energy())
    model = double_well.make_model(3)
    result = cg.datafree.train_data_free(model, stormy, **SETTINGS)
    assert result.betas[-1] == 1.0
    assert np.isfinite(model.get_parameters()).all()
    # Every evaluation counted, the faulty ones included.
    assert result.evaluations == sum(n for n, _, _ in stormy.calls)
    # Each level reports its weight-zero samples: the evaluation batch's 10 % NaN and +inf (they count in n,
    # so the ESS fraction is at most 0.9).
    for level in result.history:
        assert level["weight_zero"] == 100
        assert np.isfinite(level["kl"]) and 0 < level["ess_fraction"] <= 0.9


def test_nan_and_inf_energies_cost_samples_not_accuracy():
    clean_model, stormy_model = double_well.make_model(3), double_well.make_model(3)
    cg.datafree.train_data_free(clean_model, double_well_energy(), **SETTINGS)
    cg.datafree.train_data_free(stormy_model, StormyEnergy(double_well_energy(), clash=0.0), **SETTINGS)
    clean, _ = double_well.probability_left(clean_model, 20000, 11)
    stormy, _ = double_well.probability_left(stormy_model, 20000, 11)
    # The exact P(x1 < 0) is 0.9917; this short run gives 0.989 without faults and 0.987 with them.
    assert clean > 0.98 and stormy > 0.98
