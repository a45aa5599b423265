"""The explicit-solvent alanine dipeptide of the CG-BG paper (systems.alanine_dipeptide_explicit):
amber99sb-ildn + TIP3P in a cubic 3.7 nm box with PME, the CG maps on the solvated topology, and a
few frames of MD through cgbg.generate_dataset on the CPU platform."""
import numpy as np
import openmm
import pytest
from openmm import unit

from openmmcgflow import cgbg, systems

KJ_NM = unit.kilojoule_per_mole / unit.nanometer
CPU = {"Threads": "2"}


@pytest.fixture(scope="module")
def solvated():
    return systems.alanine_dipeptide_explicit(max_iterations=100, platform_properties=CPU)


def test_force_field_box_and_atoms(solvated):
    system, info = solvated.system, solvated.info
    forces = {type(system.getForce(i)).__name__: system.getForce(i) for i in range(system.getNumForces())}
    assert {"HarmonicBondForce", "HarmonicAngleForce", "PeriodicTorsionForce", "NonbondedForce"} <= set(forces)
    nonbonded = forces["NonbondedForce"]
    assert nonbonded.getNonbondedMethod() == openmm.NonbondedForce.PME
    assert nonbonded.getCutoffDistance().value_in_unit(unit.nanometer) == pytest.approx(1.0)
    box = np.array([v.value_in_unit(unit.nanometer) for v in system.getDefaultPeriodicBoxVectors()])
    assert np.allclose(box, 3.7 * np.eye(3))
    waters = info["num_waters"]
    assert system.getNumParticles() == 22 + 3 * waters == solvated.positions.shape[0]
    residues = [r.name for r in info["topology"].residues()]
    assert residues[:3] == ["ACE", "ALA", "NME"] and residues[3:] == ["HOH"] * waters
    mass = sum(system.getParticleMass(i).value_in_unit(unit.dalton) for i in range(system.getNumParticles()))
    density = mass / 6.02214076e23 / (3.7e-7) ** 3  # g/cm^3
    assert 0.9 < density < 1.05, density
    # TIP3P charges, rigid water and bonds to hydrogen constrained (12 solute H): 3 per water + 12.
    oxygen = next(a.index for a in info["topology"].atoms() if a.residue.name == "HOH" and a.element.symbol == "O")
    assert nonbonded.getParticleParameters(oxygen)[0].value_in_unit(unit.elementary_charge) == pytest.approx(-0.834)
    assert system.getNumConstraints() == 3 * waters + 12
    assert info["solute_atoms"] == list(range(22))
    assert np.all(np.isfinite(solvated.positions))


def test_cg_maps_find_the_solute_in_the_solvated_topology(solvated):
    topology = solvated.info["topology"]
    heavy, core_beta = cgbg.heavy_atom_map(topology), cgbg.core_beta_map(topology)
    assert heavy.num_beads == 10 and core_beta.num_beads == 6
    assert heavy.num_atoms == core_beta.num_atoms == solvated.system.getNumParticles()
    vacuum = systems.alanine_dipeptide("vacuum", minimize=False)
    assert list(heavy.atoms) == list(vacuum.info["heavy_atom_map"].atoms) == list(solvated.info["heavy_atom_map"].atoms)
    assert list(core_beta.atoms) == list(vacuum.info["core_beta_map"].atoms)


def test_md_frames_record_finite_unbiased_forces(solvated, tmp_path):
    core_beta = solvated.info["core_beta_map"]
    manifest = cgbg.generate_dataset(solvated.system, solvated.positions, core_beta, tmp_path / "explicit",
                                     temperature=300.0, num_frames=4, record_every=10, chunk_frames=2, timestep=0.002,
                                     cvs=solvated.info["phi_psi"], platform="CPU", platform_properties=CPU,
                                     save_atom_positions=True, progress=False)
    assert manifest["complete"] and manifest["counts"]["frames"] == 4 and manifest["counts"]["skipped_nonfinite"] == 0
    data = cgbg.load_dataset(tmp_path / "explicit")
    assert data.forces.shape == (4, 6, 3) and np.all(np.isfinite(data.forces)) and np.all(np.isfinite(data.energy))
    assert np.all(np.abs(data.cvs) <= np.pi)
    # The recorded forces are the System's at the recorded positions (CPU platform, mixed precision).
    context = openmm.Context(solvated.system, openmm.VerletIntegrator(0.001), openmm.Platform.getPlatformByName("CPU"),
                             CPU)
    for k in range(len(data)):
        context.setPositions(data.atom_positions[k])
        f = context.getState(getForces=True).getForces(asNumpy=True).value_in_unit(KJ_NM)
        assert np.allclose(data.forces[k], core_beta.map_forces(f[None])[0], rtol=1e-3, atol=1.0)
