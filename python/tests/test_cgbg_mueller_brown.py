"""cgbg.mueller_brown: the Mueller-Brown case of the CG Boltzmann generator paper.

The exact PMF along x is known by quadrature, so the pieces are checked against it: the System and the
bias, the reference histogram, the max-error helper on curves with a known answer, the chain rule of
the CG coordinate u = (x - center) / scale (a PMFForce fitted in u gives back the forces along x), and
a tiny end-to-end run of both cases (every number finite, every file written).
"""
import math
import os

import numpy as np
import openmm
import pytest

from openmmcgflow import systems
from openmmcgflow.cgbg import mueller_brown as mb

TINY = dict(num_trajectories=2, frames_per_trajectory=1500, record_every=100, equilibration_steps=2000,
            fm_hidden=(16, 16), fm_epochs=4, flow_layers=2, flow_bins=8, flow_epochs=4, proposals=20000,
            populated_kT=2.0)
NAMES = ["js_x", "pmf_error_x", "js_x_raw", "pmf_error_x_raw", "ess_fraction", "ess_fraction_unclipped",
         "pmf_max_error_kT", "pmf_model_max_error_kT", "md_ns", "md_steps", "energy_evaluations", "wall_s_data",
         "wall_s_force_matching", "wall_s_flow", "wall_s_inference", "wall_s_total"]


def energy(system, xyz):
    context = openmm.Context(system, openmm.VerletIntegrator(0.001), openmm.Platform.getPlatformByName("Reference"))
    context.setPositions([xyz])
    state = context.getState(getEnergy=True, getForces=True)
    return (state.getPotentialEnergy().value_in_unit(openmm.unit.kilojoule_per_mole),
            state.getForces(asNumpy=True).value_in_unit(openmm.unit.kilojoule_per_mole / openmm.unit.nanometer)[0])


def test_system_is_the_papers_potential_plus_a_soft_z_spring():
    reference = systems.mueller_brown("cgbg")
    system = mb.mb_system()
    assert system.getNumParticles() == 1 and system.getParticleMass(0).value_in_unit(openmm.unit.amu) == 1.0
    points = [(23.0, 30.0, 0.0), (42.0, 13.0, 0.7), (31.0, 20.0, -1.2)]
    values = [energy(system, p)[0] - 0.5 * p[2] ** 2 for p in points]
    expected = [float(reference.energy(np.array([[p[0], p[1], 0.0]]))) for p in points]
    # the same u(x, y) up to the constant of the stiff z restraint of systems.mueller_brown
    assert np.allclose(np.diff(values), np.diff(expected), atol=1e-9)
    bias = mb.mb_bias_force(group=3)
    assert bias.getForceGroup() == 3
    only_bias = openmm.System()
    only_bias.addParticle(1.0)
    only_bias.addForce(bias)
    for x in (20.0, 32.0, 37.5):
        assert energy(only_bias, (x, 5.0, 1.0))[0] == pytest.approx(-4.0 * math.exp(-(x - 32.0) ** 2 / 50.0), abs=1e-12)
        assert mb.mb_bias_energy(x) == pytest.approx(-4.0 * math.exp(-(x - 32.0) ** 2 / 50.0), abs=1e-12)


def test_reference_histogram_is_the_exact_probability_per_bin():
    low, high, bins = mb.AXIS
    p = mb.reference_histogram()
    assert p.shape == (bins,) and p.sum() == pytest.approx(1.0) and np.all(p > 0)
    centers = low + (np.arange(bins) + 0.5) * (high - low) / bins
    # per bin ~ width * exp(-F(center)) / Z (midpoint rule, 0.5 nm bins; where F is gentle, within 8 kT
    # of its minimum, not on the right wall that climbs ~10 kT per nm)
    density = np.exp(-mb.exact_free_energy(centers))
    gentle = mb.exact_free_energy(centers) < 8.0
    assert gentle.sum() > 50
    assert np.allclose(p[gentle], (density / density.sum())[gentle], rtol=0.03)
    # the exact PMF: main well near x = 23, barrier ~5.3 kT near 31, second well ~3.5 kT near 42
    f = mb.exact_free_energy(centers)
    assert 22.0 < centers[np.argmin(f)] < 24.0
    mask = mb.populated_bins(p, 4.0)
    assert mask[np.searchsorted(centers, 23.0)] and mask[np.searchsorted(centers, 42.0)]
    assert not mask[np.searchsorted(centers, 31.0)] and not mask[0] and not mask[-1]
    assert np.all(f[mask] - f.min() < 4.2)


def test_max_profile_error_on_known_curves():
    ref = np.array([0.0, 1.0, 2.5, 4.0, 9.0])
    mask = np.array([True, True, True, True, False])
    assert mb.max_profile_error(ref, ref, mask) == (0.0, 0.0)
    error, shift = mb.max_profile_error(ref + 3.0, ref, mask)       # a constant offset is no error
    assert error == pytest.approx(0.0, abs=1e-12) and shift == pytest.approx(-3.0)
    bumped = ref + np.array([0.0, 0.0, 0.0, 0.4, 100.0])             # the unmasked bin is ignored
    error, shift = mb.max_profile_error(bumped, ref, mask)           # uniform weights: shift -0.1
    assert shift == pytest.approx(-0.1) and error == pytest.approx(0.3)
    weights = np.array([1.0, 1.0, 1.0, 0.0, 1.0])                    # the bump's bin carries no weight
    error, shift = mb.max_profile_error(bumped, ref, mask, weights)
    assert shift == pytest.approx(0.0) and error == pytest.approx(0.4)
    empty = ref.copy()
    empty[1] = np.inf
    assert mb.max_profile_error(empty, ref, mask)[0] == math.inf
    with pytest.raises(ValueError, match="mask"):
        mb.max_profile_error(ref, ref, np.zeros(5, bool))


def test_pmf_fitted_in_u_gives_back_the_forces_along_x():
    # x-forces of V(x) = k/2 (x - 27)^2; in u = (x - 30) / 10 the target is 10 F_x and U(u) = 50 k (u + 0.3)^2
    rng = np.random.default_rng(3)
    center, scale, k = 30.0, 10.0, 0.06
    n = 4000
    positions = np.zeros((n, 1, 3))
    positions[:, 0, 0] = rng.uniform(15.0, 40.0, n)
    positions[:, 0, 1] = rng.normal(20.0, 5.0, n)
    forces = np.zeros((n, 1, 3))
    forces[:, 0, 0] = -k * (positions[:, 0, 0] - 27.0)
    forces[:, 0, 1:] = rng.normal(0.0, 3.0, (n, 2))                  # y and z forces: not part of the CG force
    u, target = mb.cg_training_data(positions, forces, center, scale)
    assert np.allclose(u[:, 0, 0], (positions[:, 0, 0] - center) / scale) and np.all(u[:, 0, 1:] == 0)
    assert np.allclose(target[:, 0, 0], scale * forces[:, 0, 0]) and np.all(target[:, 0, 1:] == 0)
    force, model, _ = mb.fit_pmf(u, target, hidden=(16,), activation="softplus", seed=2,
                                 options={"epochs": 150, "batch_size": 200, "learning_rate": 1e-2,
                                          "learning_rate_decay": 0.98, "validation_fraction": 0.1, "seed": 2})
    system = mb.cg_system(1, force, masses=1.0)
    x = np.array([18.0, 24.0, 27.0, 33.0, 38.0])
    fx = []
    for xi in x:
        _, f = energy(system, (mb.to_cg_coordinate(xi, center, scale), 0.0, 0.0))
        fx.append(f[0] / scale)                                      # F_x = -dU/dx = -(dU/du) / scale
    assert np.allclose(fx, -k * (x - 27.0), atol=0.02)
    # and the energy along x is the PMF V(x) up to a constant
    e = mb.pmf_energy(model, mb.to_cg_coordinate(x, center, scale))
    assert np.allclose(e - e[2], 0.5 * k * (x - 27.0) ** 2, atol=0.1)
    assert mb.from_cg_coordinate(mb.to_cg_coordinate(x, center, scale), center, scale) == pytest.approx(x)


def test_bad_settings_name_the_argument(tmp_path):
    with pytest.raises(ValueError, match="^case: "):
        mb.run_mueller_brown(mb.MuellerBrownSettings(case="mb_other"), tmp_path)
    with pytest.raises(ValueError, match="^frames_per_trajectory: "):
        mb.run_mueller_brown(mb.MuellerBrownSettings(frames_per_trajectory=0), tmp_path)
    with pytest.raises(ValueError, match="^clip_fraction: "):
        mb.run_mueller_brown(mb.MuellerBrownSettings(clip_fraction=1.0), tmp_path)
    with pytest.raises(ValueError, match="^cg_scale: "):
        mb.run_mueller_brown(mb.MuellerBrownSettings(cg_scale=0.0), tmp_path)


@pytest.fixture(scope="module")
def tiny_runs(tmp_path_factory):
    out = tmp_path_factory.mktemp("mb")
    runs = {}
    for case in mb.CASES:
        emitted = []
        results = mb.run_mueller_brown(mb.MuellerBrownSettings(case=case, seed=3, **TINY), out,
                                       emit=lambda *row: emitted.append(row))
        runs[case] = (out, results, emitted)
    return runs


@pytest.mark.parametrize("case", sorted(mb.CASES))
def test_tiny_run_emits_finite_numbers_and_writes_its_files(tiny_runs, case):
    out, results, emitted = tiny_runs[case]
    names = [name for name, _, _ in emitted]
    assert set(NAMES) <= set(names) and len(names) == len(set(names))
    for name, value, unit in emitted:
        assert math.isfinite(value) or name == "pmf_max_error_kT", (name, value)   # clipping may empty a bin
        assert results[name] == {"value": value, "unit": unit}
    assert results["md_steps"]["value"] == 2 * (1500 * 100 + 2000)
    assert results["energy_evaluations"]["value"] == 3000
    assert 0 < results["ess_fraction"]["value"] <= 1 and 0 < results["ess_fraction_unclipped"]["value"] <= 1
    case_dir = os.path.join(out, "%s_seed3" % case)
    for name in ("results.json", "x_profile.png", "free_energy.png", "cg_flow.model", "cg_system.xml",
                 "pmf_force.xml"):
        assert os.path.getsize(os.path.join(case_dir, name)) > 0, name
    # the second run reads every stage back from its cache and gives the same numbers
    again = mb.run_mueller_brown(mb.MuellerBrownSettings(case=case, seed=3, **TINY), out)
    for name in ("js_x", "pmf_max_error_kT_unclipped", "pmf_model_max_error_kT", "ess_fraction"):
        assert again[name]["value"] == results[name]["value"]
    assert again["wall_s_data"]["value"] < results["wall_s_data"]["value"]
