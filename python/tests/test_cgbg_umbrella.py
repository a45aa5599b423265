"""Umbrella windows for CG datasets (openmmcgflow.cgbg.umbrella) on the CG-BG Mueller-Brown system:
the recorded forces are the unbiased ones, each window samples around its centre, a second call
skips complete windows and resumes a partial one, and bad arguments are refused by name."""
import json

import numpy as np
import openmm
import pytest
from openmm import unit

from openmmcgflow import _core, cgbg, systems

KJ_NM = unit.kilojoule_per_mole / unit.nanometer
CENTRES = [20.0, 32.0, 44.0]
K = 5.0  # kJ/mol/nm^2: sd of x about sqrt(kT/K) = 0.45 nm at k_B T = 1 kJ/mol


@pytest.fixture(scope="module")
def mb():
    return systems.mueller_brown("cgbg")


def options(mb, **extra):
    settings = dict(coordinate="x1", centres=CENTRES, force_constant=K, temperature=mb.temperature, num_frames=40,
                    record_every=40, chunk_frames=10, timestep=0.005, equilibration_steps=400, platform="Reference",
                    seed=3, progress=False)
    settings.update(extra)
    return settings


def mb_map(mb):
    return _core.SliceMap(mb.system.getNumParticles(), [0])


@pytest.fixture(scope="module")
def windows(mb, tmp_path_factory):
    path = tmp_path_factory.mktemp("umbrella") / "mb"
    manifest = cgbg.umbrella_windows(mb.system, mb.positions, mb_map(mb), path, save_atom_positions=True,
                                     **options(mb))
    return path, manifest


def test_forces_are_the_unbiased_mueller_brown_forces(mb, windows):
    path, manifest = windows
    assert manifest["complete"] and [w["status"] for w in manifest["windows"]] == ["ran"] * 3
    data = cgbg.load_umbrella_dataset(path)
    assert len(data) == 3 * 40 and data.forces.shape == (120, 1, 3)
    assert np.array_equal(data.window, np.repeat([0, 1, 2], 40))
    # Re-price every saved frame with the System that has no restraint at all.
    context = openmm.Context(mb.system, openmm.VerletIntegrator(0.001), openmm.Platform.getPlatformByName("Reference"))
    atoms = np.concatenate([d.atom_positions for d in data.datasets])
    forces, energies = [], []
    for x in atoms:
        context.setPositions(x)
        state = context.getState(getForces=True, getEnergy=True)
        forces.append(state.getForces(asNumpy=True).value_in_unit(KJ_NM))
        energies.append(state.getPotentialEnergy().value_in_unit(unit.kilojoule_per_mole))
    forces = np.array(forces)
    assert np.allclose(data.forces, forces, rtol=1e-10, atol=1e-8)
    assert np.allclose(data.energy, energies, rtol=1e-10, atol=1e-8)
    assert np.allclose(data.energy, mb.energy(atoms), rtol=1e-8, atol=1e-6)
    # The restraint is not in them: its force at these frames is large compared with the tolerance.
    restraint = -K * (data.coordinate - data.centres[data.window])
    assert np.max(np.abs(restraint)) > 0.5
    # ... but its energy is the recorded bias energy, and the recorded coordinate is x of particle 0.
    assert np.allclose(data.coordinate, data.positions[:, 0, 0])
    assert np.allclose(data.bias_energy, data.bias(data.coordinate, data.window), rtol=1e-10, atol=1e-10)
    assert data.cv_names == ["x1"]


def test_each_window_samples_around_its_centre(mb, windows):
    path, _ = windows
    data = cgbg.load_umbrella_dataset(path)
    sd = np.sqrt(mb.kT / K)
    for w, centre in enumerate(CENTRES):
        x = data.coordinate[data.window == w]
        assert abs(x.mean() - centre) < 2.0 * sd, (w, x.mean(), centre)
        assert 0.3 * sd < x.std() < 2.5 * sd, (w, x.std(), sd)
        others = [c for c in CENTRES if c != centre]
        assert np.all(np.abs(x - centre) < min(abs(c - centre) for c in others) / 2)
    manifest = json.loads((path / "umbrella.json").read_text())
    assert manifest["centres"] == CENTRES and manifest["force_constant"] == K and manifest["coordinate"] == "x1"
    assert [w["path"] for w in manifest["windows"]] == ["window_000", "window_001", "window_002"]


def test_second_call_skips_complete_windows(mb, windows):
    path, _ = windows
    files = sorted(p for p in path.rglob("*") if p.is_file() and p.name != "umbrella.json")
    before = {p: (p.stat().st_mtime_ns, p.read_bytes()) for p in files}
    again = cgbg.umbrella_windows(mb.system, mb.positions, mb_map(mb), path, save_atom_positions=True,
                                  **options(mb))
    assert [w["status"] for w in again["windows"]] == ["skipped"] * 3 and again["complete"]
    assert sorted(p for p in path.rglob("*") if p.is_file() and p.name != "umbrella.json") == files
    assert all((p.stat().st_mtime_ns, p.read_bytes()) == before[p] for p in files)


def test_partial_run_resumes_window_by_window(mb, windows, tmp_path):
    whole, _ = windows
    path = tmp_path / "partial"
    first = cgbg.umbrella_windows(mb.system, mb.positions, mb_map(mb), path, save_atom_positions=True,
                                  max_chunks=6, **options(mb))
    # 4 chunks per window: window 0 complete, window 1 half done, window 2 not started.
    assert [w["status"] for w in first["windows"]] == ["ran", "ran", "not reached"] and not first["complete"]
    assert [w["frames_attempted"] for w in first["windows"]] == [40, 20, 0]
    assert not (path / "window_002").exists()
    rest = cgbg.umbrella_windows(mb.system, mb.positions, mb_map(mb), path, save_atom_positions=True, **options(mb))
    assert [w["status"] for w in rest["windows"]] == ["skipped", "ran", "ran"] and rest["complete"]
    window_1 = cgbg.load_dataset(path / "window_001").manifest
    assert [run["continuation"] for run in window_1["runs"]] == ["start", "exact"]
    a, b = cgbg.load_umbrella_dataset(path), cgbg.load_umbrella_dataset(whole)
    assert np.array_equal(a.forces, b.forces) and np.array_equal(a.coordinate, b.coordinate)
    assert np.array_equal(a.window, b.window)


def test_changed_arguments_are_refused_by_name(mb, windows):
    path, _ = windows
    with pytest.raises(ValueError, match=r"^force_constant: differs"):
        cgbg.umbrella_windows(mb.system, mb.positions, mb_map(mb), path, **options(mb, force_constant=2 * K))
    with pytest.raises(ValueError, match=r"^centres: differs"):
        cgbg.umbrella_windows(mb.system, mb.positions, mb_map(mb), path, **options(mb, centres=CENTRES[:2]))
    with pytest.raises(ValueError, match=r"^record_every: differs"):
        cgbg.umbrella_windows(mb.system, mb.positions, mb_map(mb), path, **options(mb, record_every=20))


@pytest.mark.parametrize("change, message", [
    (dict(centres=[]), r"^centres: no windows"),
    (dict(force_constant=0.0), r"^force_constant: must be a finite number > 0"),
    (dict(force_constant=-1.0), r"^force_constant: must be a finite number > 0"),
    (dict(coordinate="x2"), r"^coordinate: 'x2' does not exist: the system has 1 particle"),
    (dict(coordinate="q1"), r"^coordinate: must name a Cartesian coordinate"),
    (dict(centres=[20.0, float("nan")]), r"^centres: must be finite"),
])
def test_bad_arguments_name_the_argument(mb, tmp_path, change, message):
    with pytest.raises(ValueError, match=message):
        cgbg.umbrella_windows(mb.system, mb.positions, mb_map(mb), tmp_path / "bad", **options(mb, **change))
    assert not (tmp_path / "bad").exists()


def test_load_refuses_a_directory_without_windows(tmp_path):
    with pytest.raises(ValueError, match=r"^path: .* holds no umbrella.json"):
        cgbg.load_umbrella_dataset(tmp_path)
