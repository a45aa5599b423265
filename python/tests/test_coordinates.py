"""Coordinates, CG maps and the alanine-dipeptide test system from Python."""
import numpy as np
import openmm
import pytest

import openmmcgflow as cg
from openmmcgflow import _core, systems


@pytest.fixture(scope="module", params=["vacuum", "obc"])
def ala2(request):
    return systems.alanine_dipeptide(request.param)


def noisy(ts, batch, scale=0.005, seed=0):
    return ts.positions[None] + scale * np.random.default_rng(seed).normal(size=(batch,) + ts.positions.shape)


def test_alanine_dipeptide_energy_equals_direct_openmm(ala2):
    x = noisy(ala2, 4)
    energies, forces, finite = cg.EnergyTarget(ala2.system, threads=2).evaluate(x)
    assert finite.all()
    context = openmm.Context(ala2.system, openmm.VerletIntegrator(0.001), openmm.Platform.getPlatformByName("Reference"))
    for i in range(4):
        context.setPositions(x[i])
        state = context.getState(getEnergy=True, getForces=True)
        assert energies[i] == state.getPotentialEnergy().value_in_unit(openmm.unit.kilojoule_per_mole)
        np.testing.assert_array_equal(forces[i], state.getForces(asNumpy=True)._value)


def test_alanine_dipeptide_structure(ala2):
    assert ala2.system.getNumParticles() == 22 and ala2.temperature == 300.0
    assert _core.detect_chirality(ala2.positions)[0] == 1  # L
    names = [f.__class__.__name__ for f in ala2.system.getForces()]
    assert ("GBSAOBCForce" in names) == (ala2.info["solvent"] == "obc")
    # Minimized: the gradient is small.
    f = cg.EnergyTarget(ala2.system).evaluate(ala2.positions)[1]
    assert np.abs(f).max() < 5.0


def test_internal_coordinates_round_trip_and_normalization(ala2):
    ic = ala2.info["internal_coordinates"]
    assert ic.num_internal == 60 and ic.normalized
    assert len(ic.zmatrix.circular_columns) == 12
    q0, _ = ic.to_internal(ala2.positions)
    np.testing.assert_allclose(q0, 0.0, atol=1e-9)  # shifted by the minimized structure
    x = noisy(ala2, 8)
    q, logdet_at_x = ic.to_internal(x)  # both directions report log|det J| of internal -> Cartesian
    back, logdet = ic.to_cartesian(q)
    np.testing.assert_allclose(back, ic.to_canonical_frame(x), atol=1e-10)
    np.testing.assert_allclose(logdet, logdet_at_x, rtol=1e-12)
    # A random rotation leaves all pairwise distances unchanged.
    rotated, _ = ic.to_cartesian(q, rotation_seed=7)
    d = lambda y: np.linalg.norm(y[:, :, None] - y[:, None, :], axis=-1)
    np.testing.assert_allclose(d(rotated), d(x), atol=1e-10)


def test_to_cartesian_backward_matches_finite_differences(ala2):
    ic = ala2.info["internal_coordinates"]
    q, _ = ic.to_internal(noisy(ala2, 2, seed=3))
    w = np.random.default_rng(1).normal(size=(2, 22, 3))
    loss = lambda qq: np.sum(w * ic.to_cartesian(qq)[0], axis=(1, 2)) + 0.3 * ic.to_cartesian(qq)[1]
    grad = ic.to_cartesian_backward(q, w, np.full(2, 0.3))
    h = 1e-6
    for j in (0, 5, 17, 40, 59):
        dq = np.zeros_like(q)
        dq[:, j] = h
        np.testing.assert_allclose(grad[:, j], (loss(q + dq) - loss(q - dq)) / (2 * h), rtol=1e-5, atol=1e-6)


def test_chirality_of_mirror_image(ala2):
    mirror = ala2.positions * np.array([-1.0, 1.0, 1.0])
    assert _core.detect_chirality(np.stack([ala2.positions, mirror])).tolist() == [1, -1]


def test_cg_maps(ala2):
    x = noisy(ala2, 3)
    _, f, _ = cg.EnergyTarget(ala2.system).evaluate(x)
    heavy = ala2.info["heavy_atom_map"]
    assert heavy.num_beads == 10 and heavy.atoms == [1, 4, 5, 6, 8, 10, 14, 15, 16, 18]
    np.testing.assert_array_equal(heavy.map_positions(x), x[:, heavy.atoms])
    np.testing.assert_array_equal(heavy.map_forces(f), f[:, heavy.atoms])
    beta = ala2.info["core_beta_map"]
    assert beta.num_beads == 6
    # phi/psi from the CG map agree with OpenMM's own torsion convention.
    phipsi = ala2.info["phi_psi"].map_positions(x)
    torsion = openmm.CustomTorsionForce("theta")
    torsion.addTorsion(4, 6, 8, 14)
    system = openmm.System()
    for _ in range(22):
        system.addParticle(1.0)
    system.addForce(torsion)
    context = openmm.Context(system, openmm.VerletIntegrator(0.001), openmm.Platform.getPlatformByName("Reference"))
    for i in range(3):
        context.setPositions(x[i])
        assert phipsi[i, 0] == pytest.approx(context.getState(getEnergy=True).getPotentialEnergy()._value, abs=1e-10)
    # Centre-of-mass beads: masses from the System, force map = sum over the bead's atoms.
    masses = [ala2.system.getParticleMass(i)._value for i in range(22)]
    com = _core.LinearMap.center_of_mass([[0, 1, 2, 3, 4, 5], list(range(6, 16)), list(range(16, 22))], masses)
    assert com.force_map_type == "aggregate"
    np.testing.assert_allclose(com.map_forces(f)[:, 1], f[:, 6:16].sum(axis=1), rtol=1e-12)
    with pytest.raises(ValueError, match="sum"):
        _core.LinearMap(np.array([[0.5, 0.4, 0.0]]))


def test_zmatrix_from_openmm_topology(ala2):
    from openmmcgflow.coordinates import zmatrix_from_topology
    zm = zmatrix_from_topology(ala2.info["topology"], ala2.system)
    assert zmatrix_from_topology(ala2.info["topology"]).rows == zm.rows  # masses only break ties
    assert zm.num_internal == 60
    assert sorted(r[0] for r in zm.rows) == list(range(22))
    ic = _core.InternalCoordinates(zm)
    x = noisy(ala2, 2)
    np.testing.assert_allclose(ic.to_cartesian(ic.to_internal(x)[0])[0], ic.to_canonical_frame(x), atol=1e-10)
