"""Data-free training on molecules: the internal-coordinate energy, the untempered log-volume term,
the phi/psi Z-matrix of alanine dipeptide and the alanine example end to end (small budget)."""
import os

import numpy as np
import pytest

import openmmcgflow as cg
from openmmcgflow import datafree
from openmmcgflow.datafree import alanine as alanine_helpers


@pytest.fixture(scope="module")
def alanine():
    return cg.systems.alanine_dipeptide("obc")


def reference_internal(ic, positions):
    q = ic.to_internal(positions[None])
    return np.asarray(q[0] if isinstance(q, tuple) else q)


def expect_energy_gradients_match_finite_differences(energy, q, columns, h, rel, abs_force):
    """-du/dq and dv/dq of an energy returning (u, forces, v, dv) against central differences."""
    u, forces, v, dv = energy(q)
    assert np.isfinite(u[0]) and np.isfinite(v[0])
    for column in columns:
        plus, minus = q.copy(), q.copy()
        plus[0, column] += h
        minus[0, column] -= h
        (u_p, _, v_p, _), (u_m, _, v_m, _) = energy(plus), energy(minus)
        assert (u_p[0] - u_m[0]) / (2 * h) == pytest.approx(-forces[0, column], rel=rel, abs=abs_force)
        assert (v_p[0] - v_m[0]) / (2 * h) == pytest.approx(dv[0, column], rel=1e-5, abs=1e-6)
    return u


def test_internal_coordinate_energy_gradients_match_finite_differences(alanine):
    ic = alanine.info["phi_psi_internal_coordinates"]
    energy = datafree.InternalCoordinateEnergy(alanine.system, ic, 330.0)
    rng = np.random.default_rng(4)
    q = reference_internal(ic, alanine.positions) + 0.3 * rng.standard_normal((1, ic.num_internal))
    # bond, angle, phi, dependent dihedral, psi, ...
    u = expect_energy_gradients_match_finite_differences(energy, q, (0, 3, 5, 14, 29, 40, 59), 1e-5, 1e-5, 1e-5)
    # u is U / kT: the same configuration at twice the temperature has half the reduced energy.
    hot = datafree.InternalCoordinateEnergy(alanine.system, ic, 660.0)
    assert hot(q)[0][0] == pytest.approx(u[0] / 2, rel=1e-9)
    # model_coordinates inverts cartesian, whatever the rigid motion of the positions.
    rotation = np.linalg.qr(rng.standard_normal((3, 3)))[0]
    rotation *= np.sign(np.linalg.det(rotation))
    moved = energy.cartesian(q) @ rotation.T + np.array([0.3, -1.0, 2.0])
    assert np.abs(energy.model_coordinates(moved) - q).max() < 1e-9


def test_open_torsions_are_a_proper_change_of_variables(alanine):
    """theta = c + pi tanh(y / pi) on phi (cut at 120 deg) and a methyl rotor (cut opposite the reference):
    gradients of u and of v (now with the map's log-Jacobian) against finite differences, the map's
    log-Jacobian against the numerical derivative of theta, the round trip, and the cut's position."""
    ic = alanine.info["phi_psi_internal_coordinates"]
    phi_column, psi_column = alanine.info["phi_psi_columns"]
    reference = alanine.info["phi_psi"].map_positions(alanine.positions[None])[0]
    cut_phi = float(np.angle(np.exp(1j * (np.radians(120.0) - reference[0]))))
    rotor = [c for c in ic.zmatrix.circular_columns if c not in (phi_column, psi_column)][0]
    plain = datafree.InternalCoordinateEnergy(alanine.system, ic, 330.0)
    energy = datafree.InternalCoordinateEnergy(alanine.system, ic, 330.0,
                                               open_torsions={phi_column: cut_phi, rotor: -np.pi})
    rng = np.random.default_rng(6)
    y = reference_internal(ic, alanine.positions) + 0.3 * rng.standard_normal((1, ic.num_internal))
    y[0, phi_column], y[0, rotor] = 2.5, -1.7
    expect_energy_gradients_match_finite_differences(energy, y, (0, phi_column, rotor, psi_column), 1e-5, 1e-5, 1e-5)
    # The same configuration through both energies: equal u; v differs by log(dtheta/dy) of the two columns.
    q = energy.model_coordinates(energy.cartesian(y))
    assert np.abs(q - y).max() < 1e-8
    q_plain = plain.model_coordinates(energy.cartesian(y))
    u, _, v, _ = energy(y)
    u_plain, _, v_plain, _ = plain(q_plain)
    assert u[0] == pytest.approx(u_plain[0], rel=1e-10)
    h = 1e-6
    log_derivatives = 0.0
    for column in (phi_column, rotor):
        plus, minus = y.copy(), y.copy()
        plus[0, column] += h
        minus[0, column] -= h
        dtheta = np.angle(np.exp(1j * (plain.model_coordinates(energy.cartesian(plus))[0, column]
                                       - plain.model_coordinates(energy.cartesian(minus))[0, column]))) / (2 * h)
        log_derivatives += np.log(dtheta)
    assert v[0] - v_plain[0] == pytest.approx(log_derivatives, abs=1e-6)
    # y -> +-inf approaches phi = 120 deg from both sides; y = 0 is the opposite angle, -60 deg.
    ends = y.repeat(3, axis=0)
    ends[:, phi_column] = (-60.0, 0.0, 60.0)
    phi = np.degrees(alanine.info["phi_psi"].map_positions(energy.cartesian(ends))[:, 0])
    assert phi[0] == pytest.approx(120.0, abs=1e-6) and phi[2] == pytest.approx(120.0, abs=1e-6)
    assert phi[1] == pytest.approx(-60.0, abs=1e-9)
    with pytest.raises(ValueError, match="open_torsions: column 0 is not a circular column"):
        datafree.InternalCoordinateEnergy(alanine.system, ic, 330.0, open_torsions={0: 0.0})
    with pytest.raises(ValueError, match="open_torsions: the cut of column"):
        datafree.InternalCoordinateEnergy(alanine.system, ic, 330.0, open_torsions={phi_column: 4.0})


def test_internal_coordinate_energy_rejects_bad_arguments(alanine):
    ic = alanine.info["phi_psi_internal_coordinates"]
    with pytest.raises(ValueError, match="temperature"):
        datafree.InternalCoordinateEnergy(alanine.system, ic, 0.0)
    with pytest.raises(ValueError, match="internal_coordinates"):
        datafree.InternalCoordinateEnergy(cg.systems.double_well().system, ic, 300.0)


def test_phi_psi_zmatrix_moves_only_phi_and_psi(alanine):
    """Turning the phi column turns phi by the same angle, keeps psi, the chirality and HA's improper."""
    ic = alanine.info["phi_psi_internal_coordinates"]
    assert alanine.info["phi_psi_columns"] == (5, 29)
    q = np.repeat(reference_internal(ic, alanine.positions), 12, axis=0)
    shifts = np.linspace(-np.pi, np.pi, 12, endpoint=False)
    q[:, 5] = shifts
    x = ic.to_cartesian(q)[0]
    angles = alanine.info["phi_psi"].map_positions(x)
    reference = alanine.info["phi_psi"].map_positions(alanine.positions[None])[0]
    assert np.allclose(np.angle(np.exp(1j * (angles[:, 0] - reference[0] - shifts))), 0, atol=1e-9)
    assert np.allclose(angles[:, 1], reference[1], atol=1e-9)
    assert set(cg.coordinates.detect_chirality(x).tolist()) == {1}
    # With the original Z-matrix HA hangs on a torsion about N-CA and turning phi alone flips the chirality.
    original = alanine.info["internal_coordinates"]
    q0 = np.repeat(reference_internal(original, alanine.positions), 12, axis=0)
    q0[:, 5] = shifts
    assert len(set(cg.coordinates.detect_chirality(original.to_cartesian(q0)[0]).tolist())) > 1


class GaussianWithVolume:
    """u = |x|^2 / 2 (tempered) and log-volume v = -|x|^2 / 2 (not): the target at beta is
    N(0, 1 / (beta + 1)) per coordinate, with log Z = (d/2) log(2 pi / (beta + 1))."""

    def __call__(self, x):
        half = 0.5 * np.sum(x ** 2, axis=1)
        return half, -x, -half, -x


def test_untempered_log_volume_is_part_of_the_target_and_of_the_statistics():
    flow = cg.Flow({"dimension": 2, "num_layers": 2, "hidden": 16, "num_bins": 8, "bound": 5.0, "seed": 3})
    result = datafree.train_data_free(flow, GaussianWithVolume(), beta_initial=0.5, initial_steps=400,
                                      steps_per_level=100, batch=256, max_step=0.25, learning_rate=3e-3,
                                      evaluation_batch=4000, seed=2, progress=False)
    assert result.betas[-1] == 1.0
    x, _ = flow.sample(20000, 9)
    assert np.var(x, axis=0) == pytest.approx([0.5, 0.5], rel=0.1)   # 1 / (beta + 1), not 1 / beta
    for h in result.history:
        assert h["log_z"] == pytest.approx(np.log(2 * np.pi / (h["beta"] + 1)), abs=0.05)
        assert h["ess_fraction"] > 0.8


def test_guard_options_pass_through():
    flow = cg.Flow({"dimension": 2, "num_layers": 2, "hidden": 8, "seed": 1})
    result = datafree.train_data_free(flow, GaussianWithVolume(), beta_initial=1.0, initial_steps=5, batch=16,
                                      guard={"max_consecutive_skips": 3}, drop_largest_losses=2, progress=False)
    assert result.betas == [1.0]
    with pytest.raises(cg.CGFlowError, match="guard"):
        datafree.train_data_free(flow, GaussianWithVolume(), initial_steps=1, guard={"no_such_option": 1},
                                 progress=False)
    with pytest.raises(ValueError, match="energy"):
        datafree.train_data_free(flow, lambda x: (np.zeros(len(x)),), beta_initial=1.0, initial_steps=1,
                                 progress=False)


@pytest.mark.parametrize("kind", ["slowfast", "encdec", "encdec_cartesian"])
def test_alanine_example_runs_end_to_end(kind, tmp_path):
    settings = dict(alanine_helpers.SETTINGS[kind], initial_steps=10, steps_per_level=3, batch=32, max_step=0.5,
                    final_steps=3, final_batch=32, drop_largest_losses=1)
    metrics, model, result, samples = alanine_helpers.run(kind, seed=2, settings=settings, progress=False,
                                                          evaluation_samples=500)
    assert result.betas[-1] == 1.0 and metrics["levels"] == len(result.history)
    assert metrics["energy_evaluations"] == result.evaluations  # training only; the 500 evaluation samples are extra
    assert 0 <= metrics["basins_found"] <= 3 and 0 < metrics["ess_fraction"] <= 1
    assert sum(metrics["model_fractions"]) == pytest.approx(1.0)
    assert sum(metrics["reweighted_fractions"]) == pytest.approx(1.0)
    if kind.startswith("encdec"):
        assert 0 <= metrics["alpha_beta_separation_accuracy"] <= 1
    system = cg.systems.alanine_dipeptide("obc")
    _, energy = alanine_helpers.make_target(kind, system, 2)
    by_beta = alanine_helpers.basin_fractions_by_beta(model, energy, system, result, n=200)
    assert by_beta[1].shape == (len(result.snapshots), 3) and np.allclose(by_beta[1].sum(axis=1), 1)
    for path in alanine_helpers.write_plots(kind, result, samples, str(tmp_path), by_beta):
        assert os.path.getsize(path) > 1000


def test_basin_assignment():
    phi = np.radians([-63.0, -120.0, -80.0, 60.0, 170.0, -150.0])
    psi = np.radians([-43.0, 130.0, -170.0, 30.0, -60.0, 60.0])
    assert alanine_helpers.basin_of(phi, psi).tolist() == [1, 0, 0, 2, 2, 0]
    # The minima inside phi > 0: alphaL proper (60, 30) and C7ax (75, -65); (170, -60) and the
    # psi ~ 150 plateau at phi = 80 are alphaL/C7ax by basin but in neither minimum.
    phi = np.radians([60.0, 75.0, 170.0, 80.0, -63.0])
    psi = np.radians([30.0, -65.0, -60.0, 150.0, -43.0])
    cores = alanine_helpers.core_masks(phi, psi)
    assert cores["alpha_l_proper"].tolist() == [True, False, False, False, False]
    assert cores["c7ax"].tolist() == [False, True, False, False, False]


def test_cartesian_frame_energy(alanine):
    energy = datafree.CartesianFrameEnergy(alanine.system, alanine.positions, (8, 6, 14), 330.0)
    assert len(energy.active) == 60
    # The reference is the structure itself in the frame: zero displacement prices the minimized energy.
    u0, *_ = energy(np.zeros((1, 60)))
    raw = datafree.CoordinateEnergy(alanine.system, alanine.positions, np.arange(66))(alanine.positions.reshape(1, -1))[0]
    assert u0[0] == pytest.approx(raw[0] / energy.kT, rel=1e-9)
    frame = energy.cartesian(np.zeros((1, 60)))[0]
    assert np.allclose(frame[8], 0) and np.allclose(frame[6][1:], 0) and frame[6][0] > 0
    assert frame[14][2] == 0 and frame[14][1] > 0
    # Any rigid motion of the molecule has zero displacement.
    rotation = np.linalg.qr(np.random.default_rng(1).standard_normal((3, 3)))[0]
    rotation *= np.sign(np.linalg.det(rotation))
    moved = alanine.positions @ rotation.T + np.array([1.0, -2.0, 0.5])
    assert np.abs(energy.model_coordinates(moved[None])).max() < 1e-12
    d = 0.01 * np.random.default_rng(2).standard_normal((1, 60))
    expect_energy_gradients_match_finite_differences(energy, d, (0, 1, 2, 5, 30, 59), 1e-6, 1e-4, 1e-3)
    # Outside the frame (N on the -x axis): infinite energy, dropped by the trainer.
    outside = np.zeros((1, 60))
    outside[0, energy._xb] = -1.0
    assert not np.isfinite(energy(outside)[0][0])
    with pytest.raises(ValueError, match="frame_atoms"):
        datafree.CartesianFrameEnergy(alanine.system, alanine.positions, (8, 8, 14), 330.0)
