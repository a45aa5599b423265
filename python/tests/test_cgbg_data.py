"""CG-BG data stage (openmmcgflow.cgbg): the alanine-dipeptide maps by atom names, datasets from MD
with unbiased mapped forces (plain, with a bias force, with well-tempered metadynamics), resume after
a stop or a kill, datasets from DCD trajectories, and the errors."""
import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import openmm
import pytest
from openmm import app, unit

from openmmcgflow import _core, cgbg, systems

KJ_NM = unit.kilojoule_per_mole / unit.nanometer


@pytest.fixture(scope="module")
def ala2():
    return systems.alanine_dipeptide("obc")


def reference_context(system):
    return openmm.Context(system, openmm.VerletIntegrator(0.001), openmm.Platform.getPlatformByName("Reference"))


def forces_and_energy(context, x):
    context.setPositions(x)
    state = context.getState(getForces=True, getEnergy=True)
    return state.getForces(asNumpy=True).value_in_unit(KJ_NM), state.getPotentialEnergy().value_in_unit(
        unit.kilojoule_per_mole)


def numpy_dihedral(x, i, j, k, l):
    """IUPAC dihedral of atoms i-j-k-l, independent of OpenMM and of the core."""
    b1, b2, b3 = x[..., j, :] - x[..., i, :], x[..., k, :] - x[..., j, :], x[..., l, :] - x[..., k, :]
    n1, n2 = np.cross(b1, b2), np.cross(b2, b3)
    y = np.linalg.norm(b2, axis=-1) * np.sum(b1 * n2, axis=-1)
    return np.arctan2(y, np.sum(n1 * n2, axis=-1))


def harmonic_bias(group, k=500.0, atom=8):
    """A restraint of one atom to the origin region: a static bias in its own force group."""
    force = openmm.CustomExternalForce("0.5*kb*((x-x0)^2+(y-y0)^2+(z-z0)^2)")
    for name in ("kb", "x0", "y0", "z0"):
        force.addPerParticleParameter(name)
    force.addParticle(atom, [k, 0.3, -0.2, 0.1])
    force.setForceGroup(group)
    return force


def run(ala2, path, **options):
    top = ala2.info["topology"]
    settings = dict(temperature=300.0, num_frames=20, record_every=10, chunk_frames=5, platform="Reference",
                    progress=False)
    settings.update(options)
    cg_map = settings.pop("cg_map", cgbg.heavy_atom_map(top))
    return cgbg.generate_dataset(ala2.system, ala2.positions, cg_map, str(path), **settings)


# ---- maps --------------------------------------------------------------------------------------

def test_maps_pick_the_named_atoms(ala2):
    top = ala2.info["topology"]
    atoms = list(top.atoms())
    heavy, core = cgbg.heavy_atom_map(top), cgbg.core_beta_map(top)
    assert [(atoms[i].name, atoms[i].residue.name) for i in heavy.atoms] == [
        ("CH3", "ACE"), ("C", "ACE"), ("O", "ACE"), ("N", "ALA"), ("CA", "ALA"), ("CB", "ALA"), ("C", "ALA"),
        ("O", "ALA"), ("N", "NME"), ("CH3", "NME")]
    assert [(atoms[i].name, atoms[i].residue.name) for i in core.atoms] == [
        ("C", "ACE"), ("N", "ALA"), ("CA", "ALA"), ("CB", "ALA"), ("C", "ALA"), ("N", "NME")]
    assert all(atoms[i].element.symbol != "H" for i in heavy.atoms)
    assert len(heavy.atoms) == 10 and heavy.num_atoms == 22 and len(core.atoms) == 6
    # The same atoms as the core's built-in alanine-dipeptide maps (by index).
    assert list(heavy.atoms) == list(_core.SliceMap.alanine_dipeptide("heavy_atom").atoms)
    assert list(core.atoms) == list(_core.SliceMap.alanine_dipeptide("core_beta").atoms)
    assert cgbg.bead_labels("core_beta") == ["ACE:C", "ALA:N", "ALA:CA", "ALA:CB", "ALA:C", "NME:N"]


def shuffled_topology(ala2, rename=None):
    """The alanine-dipeptide topology with each residue's atoms in reverse order (and optional renames)."""
    top = app.Topology()
    chain = top.addChain()
    for residue in ala2.info["topology"].residues():
        new = top.addResidue(residue.name, chain)
        for atom in reversed(list(residue.atoms())):
            top.addAtom((rename or {}).get((atom.name, residue.name), atom.name), atom.element, new)
    return top


def test_maps_follow_names_not_order(ala2):
    top = shuffled_topology(ala2, rename={("CH3", "NME"): "C"})  # the NME methyl as some PDB files name it
    atoms = list(top.atoms())
    heavy = cgbg.heavy_atom_map(top)
    assert [(atoms[i].name, atoms[i].residue.name) for i in heavy.atoms][-1] == ("C", "NME")
    assert [(atoms[i].name, atoms[i].residue.name) for i in cgbg.core_beta_map(top).atoms] == [
        ("C", "ACE"), ("N", "ALA"), ("CA", "ALA"), ("CB", "ALA"), ("C", "ALA"), ("N", "NME")]


def test_map_missing_atom_is_named(ala2):
    top = shuffled_topology(ala2, rename={("CB", "ALA"): "CX"})
    with pytest.raises(ValueError, match=r"topology: bead 3: residue ALA has no atom named CB"):
        cgbg.core_beta_map(top)
    with pytest.raises(ValueError, match="mapping"):
        cgbg.alanine_dipeptide_map(ala2.info["topology"], "backbone")


# ---- MD datasets -------------------------------------------------------------------------------

def test_recorded_forces_are_the_unbiased_mapped_forces(ala2, tmp_path):
    bias = harmonic_bias(group=5)
    manifest = run(ala2, tmp_path / "d", bias_forces=[bias], save_atom_positions=True,
                   cvs=cgbg.phi_psi_cvs(ala2.info["topology"]))
    assert manifest["recorded_groups"] == [0] and manifest["bias_groups"] == [5]
    data = cgbg.load_dataset(tmp_path / "d")
    assert len(data) == 20 and data.positions.shape == (20, 10, 3) and data.forces.shape == (20, 10, 3)
    heavy = data.cg_map
    unbiased = reference_context(ala2.system)
    biased_system = openmm.XmlSerializer.clone(ala2.system)
    biased_system.addForce(harmonic_bias(group=5))
    biased = reference_context(biased_system)
    gap = 0.0
    for i, x in enumerate(data.atom_positions):
        f, energy = forces_and_energy(unbiased, x)
        np.testing.assert_allclose(data.forces[i], heavy.map_forces(f[None])[0], rtol=1e-10, atol=1e-8)
        np.testing.assert_array_equal(data.positions[i], x[heavy.atoms])
        assert data.energy[i] == pytest.approx(energy, rel=1e-12, abs=1e-9)
        f_biased, e_biased = forces_and_energy(biased, x)
        assert data.bias_energy[i] == pytest.approx(e_biased - energy, rel=1e-9, abs=1e-9)
        gap = max(gap, np.abs(heavy.map_forces(f_biased[None])[0] - data.forces[i]).max())
    assert gap > 50.0  # the biased forces differ (the restraint pulls CA with hundreds of kJ/mol/nm)
    assert np.all(data.bias_energy > 1.0)
    np.testing.assert_array_equal(data.step, np.arange(1, 21) * 10)


def test_metadynamics_deposits_hills_and_forces_stay_unbiased(ala2, tmp_path):
    top = ala2.info["topology"]
    meta = cgbg.alanine_metadynamics(top, bias_factor=9.0, hill_interval_ps=0.005)   # a hill every 10 steps
    run(ala2, tmp_path / "m", metadynamics=meta, num_frames=30, record_every=10, chunk_frames=10,
        save_atom_positions=True, cg_map=cgbg.core_beta_map(top))
    data = cgbg.load_dataset(tmp_path / "m")
    assert data.cv_names == ["phi", "psi"] and data.positions.shape == (30, 6, 3)
    manifest = data.manifest
    assert manifest["settings"]["metadynamics"]["hill_frequency_steps"] == 10
    assert manifest["settings"]["metadynamics"]["variables"]["phi"]["width"] == 0.35
    # Every frame comes right after a hill at the current CVs: the bias there is positive, and it
    # accumulates (well-tempered: later hills are lower, but they add up).
    assert np.all(data.bias_energy > 0.5)
    assert data.bias_energy[20:].mean() > data.bias_energy[:10].mean() + 1.0
    assert data.bias_grid.shape == (90, 90) and data.bias_grid.max() > 2 * 1.2
    # The hill heights follow the well-tempered rule, so the total deposited is below 30 * 3 * 1.2 kJ/mol
    # at the grid maximum, and the first hill is exactly 1.2 kJ/mol high.
    assert data.bias_grid.max() < 30 * 1.2
    assert data.bias_energy[0] == pytest.approx(1.2, abs=0.1)
    # Forces without the bias, CVs as the numpy dihedrals and the core's phi/psi map.
    unbiased = reference_context(ala2.system)
    core = data.cg_map
    for i in (0, 14, 29):
        f, _ = forces_and_energy(unbiased, data.atom_positions[i])
        np.testing.assert_allclose(data.forces[i], core.map_forces(f[None])[0], rtol=1e-10, atol=1e-8)
    phi = numpy_dihedral(data.atom_positions, 4, 6, 8, 14)
    psi = numpy_dihedral(data.atom_positions, 6, 8, 14, 16)
    np.testing.assert_allclose(data.cv("phi"), phi, atol=1e-9)
    np.testing.assert_allclose(data.cv("psi"), psi, atol=1e-9)
    np.testing.assert_allclose(data.cvs, ala2.info["phi_psi"].map_positions(data.atom_positions), atol=1e-9)
    # The bias grid is periodic in both CVs and holds the Gaussians along the visited (phi, psi).
    i_phi = np.argmin(np.abs(np.linspace(-np.pi, np.pi, 90) - data.cv("phi")[-1]))
    assert data.bias_grid[i_phi].max() > 0.5 * data.bias_grid.max()


def test_a_linear_map_dataset_round_trips(ala2, tmp_path):
    """A center-of-mass map per residue (a LinearMap): stored by its coefficients, rebuilt on load."""
    masses = [ala2.system.getParticleMass(i).value_in_unit(unit.dalton) for i in range(22)]
    residues = [[a.index for a in r.atoms()] for r in ala2.info["topology"].residues()]
    com = _core.LinearMap.center_of_mass(residues, masses)
    run(ala2, tmp_path / "com", cg_map=com, num_frames=6, chunk_frames=6, save_atom_positions=True)
    data = cgbg.load_dataset(tmp_path / "com")
    np.testing.assert_array_equal(data.cg_map.coefficients, com.coefficients)
    np.testing.assert_allclose(data.cg_map.force_coefficients, com.force_coefficients, atol=1e-15)
    assert data.positions.shape == (6, 3, 3)
    unbiased = reference_context(ala2.system)
    f, _ = forces_and_energy(unbiased, data.atom_positions[-1])
    np.testing.assert_allclose(data.forces[-1], com.map_forces(f[None])[0], rtol=1e-10, atol=1e-8)
    np.testing.assert_allclose(data.positions[-1], com.map_positions(data.atom_positions[-1:])[0], atol=1e-14)


def assert_same_dataset(a, b):
    for name in ("positions", "forces", "energy", "bias_energy", "cvs", "step"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name), err_msg=name)
    if a.bias_grid is not None or b.bias_grid is not None:
        np.testing.assert_array_equal(a.bias_grid, b.bias_grid)


def test_resume_after_stops_is_exact(ala2, tmp_path):
    meta = cgbg.alanine_metadynamics(ala2.info["topology"], bias_factor=1.5, hill_interval_ps=0.005)
    options = dict(metadynamics=meta, num_frames=24, record_every=10, chunk_frames=6, seed=11)
    run(ala2, tmp_path / "whole", **options)
    run(ala2, tmp_path / "parts", max_chunks=1, **options)
    assert sorted(os.listdir(tmp_path / "parts")) == ["chunk_00000.npz", "manifest.json", "state_00000.npz"]
    manifest = run(ala2, tmp_path / "parts", max_chunks=2, **options)
    assert manifest["counts"]["chunks"] == 3 and not manifest["complete"]
    manifest = run(ala2, tmp_path / "parts", **options)
    assert manifest["complete"] and manifest["counts"] == {"chunks": 4, "frames": 24, "frames_attempted": 24,
                                                           "skipped_nonfinite": 0}
    assert [r["continuation"] for r in manifest["runs"]] == ["start", "exact", "exact"]
    assert_same_dataset(cgbg.load_dataset(tmp_path / "whole"), cgbg.load_dataset(tmp_path / "parts"))
    # A finished dataset continues only when asked for more frames; num_frames may grow.
    manifest = run(ala2, tmp_path / "parts", **dict(options, num_frames=30))
    assert manifest["counts"]["frames"] == 30 and len(cgbg.load_dataset(tmp_path / "parts")) == 30


CHILD = r"""
import sys
from openmmcgflow import cgbg, systems
ala2 = systems.alanine_dipeptide("obc")
top = ala2.info["topology"]
meta = cgbg.alanine_metadynamics(top, bias_factor=9.0, hill_interval_ps=0.005)
cgbg.generate_dataset(ala2.system, ala2.positions, cgbg.heavy_atom_map(top), sys.argv[1], temperature=300.0,
                      num_frames=10**6, record_every=10, chunk_frames=5, metadynamics=meta, seed=5,
                      platform="Reference", progress=False)
"""


def test_a_killed_run_resumes_with_every_chunk_once(ala2, tmp_path):
    path = tmp_path / "killed"
    child = subprocess.Popen([sys.executable, "-c", CHILD, str(path)], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.time() + 120
    try:
        while not (path / "chunk_00002.npz").exists():
            assert child.poll() is None, child.stderr.read().decode()
            assert time.time() < deadline, "the child wrote no chunks"
            time.sleep(0.002)
        os.kill(child.pid, signal.SIGKILL)
    finally:
        child.wait()
    count = len([f for f in os.listdir(path) if f.startswith("chunk_")])
    assert 3 <= count < 12
    # What a kill inside a write leaves: a temporary file and a state for a chunk that never came.
    (path / ".tmp-chunk_00099.npz.x").write_bytes(b"half a file")
    (path / "state_00098.npz").write_bytes(b"stale")
    meta = cgbg.alanine_metadynamics(ala2.info["topology"], bias_factor=9.0, hill_interval_ps=0.005)
    options = dict(num_frames=60, record_every=10, chunk_frames=5, metadynamics=meta, seed=5)
    manifest = run(ala2, path, **options)
    assert manifest["runs"][-1]["continuation"] == "exact" and manifest["runs"][-1]["start_chunk"] == count
    assert sorted(os.listdir(path)) == ["chunk_%05d.npz" % i for i in range(12)] + ["manifest.json", "state_00011.npz"]
    resumed = cgbg.load_dataset(path)
    assert [c["frame_start"] for c in resumed.chunks] == list(range(0, 60, 5))
    np.testing.assert_array_equal(resumed.step, np.arange(1, 61) * 10)
    assert np.all(np.isfinite(resumed.forces)) and np.all(resumed.bias_energy[2:] > 0)
    run(ala2, tmp_path / "whole", **options)
    assert_same_dataset(resumed, cgbg.load_dataset(tmp_path / "whole"))


def test_resume_without_a_usable_checkpoint_continues_with_a_new_random_stream(ala2, tmp_path):
    run(ala2, tmp_path / "whole", seed=3)
    run(ala2, tmp_path / "d", max_chunks=2, seed=3)
    state_file = tmp_path / "d" / "state_00001.npz"
    with np.load(state_file) as state:
        state = dict(state)
    state["checkpoint"] = np.frombuffer(b"not a checkpoint", dtype=np.uint8)   # e.g. another OpenMM build
    np.savez(state_file, **state)
    manifest = run(ala2, tmp_path / "d", seed=3)
    assert manifest["runs"][-1]["continuation"].startswith("new random stream")
    data, whole = cgbg.load_dataset(tmp_path / "d"), cgbg.load_dataset(tmp_path / "whole")
    np.testing.assert_array_equal(data.step, np.arange(1, 21) * 10)
    np.testing.assert_array_equal(data.forces[:10], whole.forces[:10])   # the chunks before the restart
    assert not np.allclose(data.positions[10:], whole.positions[10:])    # fresh noise after it
    # The continued frames start from the stored state: the first one is 10 steps (5 fs) away from the
    # last stored frame, moved as far as the uninterrupted run moves in those 5 fs (the velocities were
    # restored; from rest the beads would move about a third as far), and the bonds stay physical.
    step_length = lambda d: np.linalg.norm(d.positions[10] - d.positions[9], axis=-1).mean()
    assert 0.8 < step_length(data) / step_length(whole) < 1.25
    bond = np.linalg.norm(data.positions[:, 4] - data.positions[:, 3], axis=-1)   # N-CA
    assert np.all((bond > 0.13) & (bond < 0.17))


@pytest.mark.skipif("CPU" not in [openmm.Platform.getPlatform(i).getName()
                                  for i in range(openmm.Platform.getNumPlatforms())], reason="no CPU platform")
def test_resume_on_another_platform_continues_with_a_new_random_stream(ala2, tmp_path):
    run(ala2, tmp_path / "d", max_chunks=2, seed=3)
    manifest = run(ala2, tmp_path / "d", seed=3, platform="CPU", platform_properties={"Threads": "1"})
    assert manifest["runs"][-1]["continuation"].startswith("new random stream")
    assert manifest["runs"][-1]["platform"] == "CPU"
    data = cgbg.load_dataset(tmp_path / "d")
    np.testing.assert_array_equal(data.step, np.arange(1, 21) * 10)
    assert np.abs(data.positions[10] - data.positions[9]).max() < 0.01


def test_resume_refuses_other_arguments(ala2, tmp_path):
    run(ala2, tmp_path / "d", max_chunks=1)
    with pytest.raises(ValueError, match="record_every: differs"):
        run(ala2, tmp_path / "d", record_every=20)
    with pytest.raises(ValueError, match="cg_map: differs"):
        run(ala2, tmp_path / "d", cg_map=cgbg.core_beta_map(ala2.info["topology"]))
    with pytest.raises(ValueError, match="temperature"):
        run(ala2, tmp_path / "d", temperature=310.0)
    vacuum = systems.alanine_dipeptide("vacuum")
    with pytest.raises(ValueError, match="system: differs"):
        cgbg.generate_dataset(vacuum.system, vacuum.positions, cgbg.heavy_atom_map(ala2.info["topology"]),
                              str(tmp_path / "d"), temperature=300.0, num_frames=20, record_every=10,
                              chunk_frames=5, platform="Reference", progress=False)
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "notes.txt").write_text("mine")
    with pytest.raises(ValueError, match="path: .* not empty"):
        run(ala2, tmp_path / "other")


def test_bad_input_is_refused_by_name(ala2, tmp_path):
    top = ala2.info["topology"]
    heavy = cgbg.heavy_atom_map(top)
    with pytest.raises(ValueError, match="bias_forces\\[0\\]: .* force group 0"):
        run(ala2, tmp_path / "a", bias_forces=[harmonic_bias(group=0)])
    with pytest.raises(ValueError, match="cg_map: maps 5 atoms but the system has 22 particles"):
        run(ala2, tmp_path / "b", cg_map=_core.SliceMap(5, [0, 1]))
    with pytest.raises(_core.CGFlowError, match="atoms\\[1\\]: atom index 30 out of range"):
        _core.SliceMap(22, [1, 30])
    with pytest.raises(TypeError, match="cg_map: must be a SliceMap or LinearMap"):
        run(ala2, tmp_path / "c", cg_map=ala2.info["phi_psi"])
    with pytest.raises(ValueError, match="positions: must be finite with shape \\(22, 3\\)"):
        cgbg.generate_dataset(ala2.system, ala2.positions[:5], heavy, str(tmp_path / "d"), temperature=300,
                              num_frames=1)
    with pytest.raises(ValueError, match="seed"):
        run(ala2, tmp_path / "e", seed=0)
    with pytest.raises(ValueError, match="metadynamics.bias_factor"):
        run(ala2, tmp_path / "f", metadynamics=cgbg.alanine_metadynamics(top, bias_factor=1.0))
    with pytest.raises(ValueError, match="metadynamics.hill_interval_ps"):
        run(ala2, tmp_path / "g", metadynamics=cgbg.alanine_metadynamics(top, 9.0, hill_interval_ps=0.00075))
    with pytest.raises(ValueError, match="num_frames"):
        run(ala2, tmp_path / "h", num_frames=0)
    with pytest.raises(ValueError, match="temperature"):
        run(ala2, tmp_path / "i", temperature=-1.0)
    assert not any((tmp_path / n).exists() for n in "abcdefghi")   # nothing written for refused input


def test_diverging_dynamics_stop_with_the_complete_chunks_kept(tmp_path):
    system = openmm.System()
    system.addParticle(1.0)
    force = openmm.CustomExternalForce("-1000*x^4")   # unbounded below: the particle runs off to infinity
    force.addParticle(0, [])
    system.addForce(force)
    one = _core.SliceMap(1, [0])
    with pytest.raises(RuntimeError, match="diverged"):
        cgbg.generate_dataset(system, [[1.0, 0.0, 0.0]], one, str(tmp_path / "d"), temperature=300, num_frames=10**4,
                              record_every=5, chunk_frames=2, timestep=0.002, platform="Reference", progress=False)
    data = cgbg.load_dataset(tmp_path / "d")
    # Whole chunks only (a frame whose force overflowed before the positions did counts as skipped).
    assert len(data) + len(data.skipped_steps) == 2 * len(data.chunks) >= 2
    assert np.all(np.isfinite(data.forces)) and np.all(np.isfinite(data.positions))


# ---- existing trajectories ---------------------------------------------------------------------

def write_biased_trajectory(ala2, path, frames=12, every=10, bias_group=3):
    """A short biased run with a DCDReporter, and the unbiased forces/energies and biased forces at its frames."""
    system = openmm.XmlSerializer.clone(ala2.system)
    system.addForce(harmonic_bias(group=bias_group))
    integrator = openmm.LangevinMiddleIntegrator(300, 1.0, 0.0005)
    integrator.setRandomNumberSeed(2)
    simulation = app.Simulation(ala2.info["topology"], system, integrator,
                                openmm.Platform.getPlatformByName("Reference"))
    simulation.context.setPositions(ala2.positions)
    simulation.context.setVelocitiesToTemperature(300, 2)
    simulation.reporters.append(app.DCDReporter(str(path), every))
    unbiased_forces, energies, biased_forces = [], [], []
    mask = 1 << 0
    for _ in range(frames):
        simulation.step(every)
        state = simulation.context.getState(getForces=True, getEnergy=True, groups=mask)
        unbiased_forces.append(state.getForces(asNumpy=True).value_in_unit(KJ_NM))
        energies.append(state.getPotentialEnergy().value_in_unit(unit.kilojoule_per_mole))
        biased_forces.append(simulation.context.getState(getForces=True).getForces(asNumpy=True).value_in_unit(KJ_NM))
    del simulation   # closes the DCD file
    return system, np.array(unbiased_forces), np.array(energies), np.array(biased_forces)


def test_dataset_from_trajectory_reproduces_the_run(ala2, tmp_path):
    dcd = tmp_path / "run.dcd"
    biased_system, forces, energies, biased_forces = write_biased_trajectory(ala2, dcd)
    top = ala2.info["topology"]
    heavy = cgbg.heavy_atom_map(top)
    with pytest.raises(ValueError, match="exclude_groups\\[0\\]: no force of the system is in group 7"):
        cgbg.dataset_from_trajectory(biased_system, top, dcd, heavy, str(tmp_path / "x"), temperature=300,
                                     exclude_groups=[7], progress=False)
    manifest = cgbg.dataset_from_trajectory(biased_system, top, dcd, heavy, str(tmp_path / "d"), temperature=300,
                                            exclude_groups=[3], cvs=cgbg.phi_psi_cvs(top), chunk_frames=5,
                                            max_chunks=2, platform="Reference", progress=False)
    assert manifest["counts"]["frames"] == 10 and not manifest["complete"]
    manifest = cgbg.dataset_from_trajectory(biased_system, top, dcd, heavy, str(tmp_path / "d"), temperature=300,
                                            exclude_groups=[3], cvs=cgbg.phi_psi_cvs(top), chunk_frames=5,
                                            platform="Reference", progress=False)
    assert manifest["complete"] and manifest["counts"]["chunks"] == 3
    data = cgbg.load_dataset(tmp_path / "d")
    assert len(data) == 12 and data.manifest["source"] == "trajectory"
    mapped = heavy.map_forces(forces)
    # DCD stores float32 angstroms: the re-priced forces agree to that precision.
    scale = np.abs(mapped).max()
    assert np.abs(data.forces - mapped).max() < 1e-3 * scale
    np.testing.assert_allclose(data.energy, energies, rtol=1e-5, atol=1e-2)
    assert np.abs(heavy.map_forces(biased_forces) - mapped).max() > 50.0
    assert np.all(data.bias_energy > 0) and data.cvs.shape == (12, 2)
    np.testing.assert_array_equal(data.step, np.arange(12))
    # Every third frame from the second one: the same frames, priced the same way.
    cgbg.dataset_from_trajectory(biased_system, top, dcd, heavy, str(tmp_path / "s"), temperature=300,
                                 exclude_groups=3, start=1, stride=3, platform="Reference", progress=False)
    strided = cgbg.load_dataset(tmp_path / "s")
    np.testing.assert_array_equal(strided.step, [1, 4, 7, 10])
    np.testing.assert_array_equal(strided.forces, data.forces[1::3])


def test_dataset_from_trajectory_skips_and_counts_non_finite_frames(ala2, tmp_path):
    top = ala2.info["topology"]
    dcd = tmp_path / "bad.dcd"
    with open(dcd, "wb") as handle:
        writer = app.DCDFile(handle, top, 0.001)
        for k in range(5):
            x = ala2.positions.copy()
            if k == 2:
                x[21] = x[0]     # two non-bonded atoms on top of each other: infinite forces
            writer.writeModel(x * unit.nanometer)
    with pytest.warns(UserWarning, match="1 frames had non-finite forces"):
        manifest = cgbg.dataset_from_trajectory(ala2.system, top, dcd, cgbg.core_beta_map(top), str(tmp_path / "d"),
                                                temperature=300, platform="Reference", progress=False)
    assert manifest["counts"] == {"chunks": 1, "frames": 4, "frames_attempted": 5, "skipped_nonfinite": 1}
    data = cgbg.load_dataset(tmp_path / "d")
    np.testing.assert_array_equal(data.step, [0, 1, 3, 4])
    np.testing.assert_array_equal(data.skipped_steps, [2])
    with pytest.raises(ValueError, match="dcd_path: .* has 22 atoms per frame but the system has 1 particles"):
        lone = openmm.System()
        lone.addParticle(1.0)
        lone.addForce(openmm.CustomExternalForce("x"))
        one_top = app.Topology()
        one_top.addAtom("X", None, one_top.addResidue("X", one_top.addChain()))
        cgbg.dataset_from_trajectory(lone, one_top, dcd, _core.SliceMap(1, [0]), str(tmp_path / "e"), temperature=300)
    with pytest.raises(ValueError, match="topology: has 1 atoms but the system has 22"):
        cgbg.dataset_from_trajectory(ala2.system, one_top, dcd, cgbg.core_beta_map(top), str(tmp_path / "f"),
                                     temperature=300)


def test_dcd_reader_reads_positions_and_boxes(ala2, tmp_path):
    top = app.Topology()
    chain = top.addChain()
    for i in range(3):
        top.addAtom("X%d" % i, app.Element.getBySymbol("Ar"), top.addResidue("ARG%d" % i, chain))
    top.setUnitCellDimensions((3.1, 3.2, 3.3) * unit.nanometer)
    rng = np.random.default_rng(0)
    frames = rng.uniform(0, 3, size=(4, 3, 3))
    with open(tmp_path / "box.dcd", "wb") as handle:
        writer = app.DCDFile(handle, top, 0.002, interval=5)
        for x in frames:
            writer.writeModel(x * unit.nanometer)
    reader = cgbg.DCDReader(tmp_path / "box.dcd")
    assert (reader.num_frames, reader.num_atoms, reader.has_box, reader.interval) == (4, 3, True, 5)
    positions, boxes = reader.read(1, 3)
    np.testing.assert_allclose(positions, frames[1:3], atol=1e-6)
    np.testing.assert_allclose(boxes[0], np.diag([3.1, 3.2, 3.3]), atol=1e-6)
    positions, boxes = cgbg.read_dcd(tmp_path / "box.dcd", 0, None, 3)
    np.testing.assert_allclose(positions, frames[[0, 3]], atol=1e-6)
    assert boxes.shape == (2, 3, 3)
    triclinic = np.array([[3.0, 0, 0], [1.0, 2.8, 0], [-1.0, 1.2, 2.5]])
    with open(tmp_path / "triclinic.dcd", "wb") as handle:
        vectors = [openmm.Vec3(*v) for v in triclinic] * unit.nanometer
        app.DCDFile(handle, top, 0.002).writeModel(frames[0] * unit.nanometer, periodicBoxVectors=vectors)
    np.testing.assert_allclose(cgbg.read_dcd(tmp_path / "triclinic.dcd")[1][0], triclinic, atol=1e-6)
    (tmp_path / "junk.dcd").write_bytes(b"\x00" * 200)
    with pytest.raises(ValueError, match="path: .* not a DCD file"):
        cgbg.read_dcd(tmp_path / "junk.dcd")


def test_load_dataset_detects_a_missing_chunk(ala2, tmp_path):
    run(ala2, tmp_path / "d")
    manifest = json.loads((tmp_path / "d" / "manifest.json").read_text())
    assert manifest["format"] == "openmmcgflow.cgbg.dataset" and manifest["cg_map"]["atoms"][5] == 10
    os.unlink(tmp_path / "d" / "chunk_00001.npz")
    with pytest.raises(ValueError, match="lacks chunk_00001.npz"):
        cgbg.load_dataset(tmp_path / "d")
