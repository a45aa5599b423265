"""Force matching with a harmonic prior (cgbg.force_matching), the static-bias reference (cgbg.reference)
and the alanine pipeline (cgbg.pipeline) on a tiny budget."""
import math

import numpy as np
import openmm
import pytest

import openmmcgflow as cg
from openmmcgflow import cgbg, systems
from openmmcgflow.cgbg import force_matching as fm
from openmmcgflow.cgbg import reference

KT300 = systems.KB * 300.0


def test_bead_graph_angles_and_dihedrals():
    assert fm.bond_angles(6, "core_beta") == [(0, 1, 2), (1, 2, 3), (1, 2, 4), (3, 2, 4), (2, 4, 5)]
    # phi (0,1,2,4), psi (1,2,4,5) and the two dihedrals through C-beta
    assert sorted(fm.proper_dihedrals(6, "core_beta")) == [(0, 1, 2, 3), (0, 1, 2, 4), (1, 2, 4, 5), (3, 2, 4, 5)]
    assert len(fm.proper_dihedrals(10, "heavy_atom")) == 10   # 2 + 2 + 4 + 2 around the four inner bonds


def test_prior_fit_recovers_a_harmonic_bond_and_angle():
    rng = np.random.default_rng(3)
    n, r0, k = 200_000, 0.15, 3.0e5
    r = r0 + rng.normal(0, math.sqrt(KT300 / k), n)
    theta0, kt = 1.9, 600.0
    theta = theta0 + rng.normal(0, math.sqrt(KT300 / kt), n)
    x = np.zeros((n, 3, 3))
    x[:, 0, 0] = r                     # bead 0 on the x axis, bead 1 at the origin, bead 2 at angle theta
    x[:, 2, 0], x[:, 2, 1] = 0.15 * np.cos(theta), 0.15 * np.sin(theta)
    prior = fm.HarmonicPrior.fit(x, [(0, 1), (1, 2)], 300.0)
    (_, _, fit_r0, fit_k), _ = prior.bonds
    (_, _, _, fit_theta0, fit_kt), = prior.angles
    assert fit_r0 == pytest.approx(r0, abs=1e-5) and fit_k == pytest.approx(k, rel=0.01)
    assert fit_theta0 == pytest.approx(theta0, abs=1e-3) and fit_kt == pytest.approx(kt, rel=0.01)
    # its OpenMM forces are the harmonic ones
    energies, forces = prior.evaluate(x[:3])
    expected = 0.5 * k * 0 + 0.5 * fit_k * (r[:3] - fit_r0) ** 2 + 0.5 * fit_kt * (theta[:3] - fit_theta0) ** 2
    assert np.allclose(energies, expected, rtol=1e-6, atol=1e-8)


def _dihedral(x, i, j, k, l):
    b0, b1, b2 = x[:, i] - x[:, j], x[:, k] - x[:, j], x[:, l] - x[:, k]
    b1n = b1 / np.linalg.norm(b1, axis=-1, keepdims=True)
    v = b0 - np.sum(b0 * b1n, -1, keepdims=True) * b1n
    w = b2 - np.sum(b2 * b1n, -1, keepdims=True) * b1n
    return np.arctan2(np.sum(np.cross(b1n, v) * w, -1), np.sum(v * w, -1))


def test_feature_values_are_what_the_pmf_force_sees():
    rng = np.random.default_rng(1)
    x = rng.normal(0, 0.2, (50, 6, 3))
    force = fm.pmf_features(6, "core_beta")
    values = fm.feature_values(force, x)
    nonbonded = [(i, j) for i in range(6) for j in range(i + 1, 6)
                 if (i, j) not in {(0, 1), (1, 2), (2, 3), (2, 4), (4, 5)}]
    assert values.shape == (50, len(nonbonded) + 2 * 4)
    for c, (i, j) in enumerate(nonbonded):
        assert np.allclose(values[:, c], np.linalg.norm(x[:, j] - x[:, i], axis=-1))
    # each dihedral is (cos, sin) of an angle: the pair lies on the unit circle and the cosine is OpenMM's
    for d, quad in enumerate(fm.proper_dihedrals(6, "core_beta")):
        c, s = values[:, len(nonbonded) + 2 * d], values[:, len(nonbonded) + 2 * d + 1]
        assert np.allclose(c ** 2 + s ** 2, 1.0)
        assert np.allclose(c, np.cos(_dihedral(x, *quad)))
    # a mirror image flips the sines and keeps everything else
    mirrored = fm.feature_values(force, fm.mirror(x))
    assert np.allclose(mirrored[:, :len(nonbonded)], values[:, :len(nonbonded)])
    sines = len(nonbonded) + 1 + 2 * np.arange(4)
    assert np.allclose(mirrored[:, sines], -values[:, sines])


def test_standardized_ensemble_starts_on_standardized_inputs():
    rng = np.random.default_rng(2)
    inputs = rng.normal([5.0, -3.0], [1e-3, 10.0], (1000, 2))
    model = fm.standardized_ensemble([2, 8, 1], inputs, activation="tanh", seed=4)
    reference_model = cg.MLPEnsemble([2, 8, 1], num_members=1, activation="tanh", seed=4)
    z = (inputs - inputs.mean(0)) / inputs.std(0)
    assert np.allclose(model.evaluate(inputs)[0], reference_model.evaluate(z)[0], rtol=1e-9, atol=1e-9)


def _chain(t):
    """4-bead chains with bonds 0.15 nm, angles 1.9 rad and torsion t."""
    x = np.zeros((len(t), 4, 3))
    x[:, 1] = [0.15, 0.0, 0.0]
    x[:, 2] = x[:, 1] + 0.15 * np.array([-math.cos(1.9), math.sin(1.9), 0.0])
    u = (x[:, 2] - x[:, 1]) / 0.15
    perp = np.cross(u, [0.0, 0.0, 1.0])
    perp /= np.linalg.norm(perp, axis=-1, keepdims=True)
    other = np.cross(u, perp)
    arm = (-math.cos(1.9)) * u + math.sin(1.9) * (np.cos(t)[:, None] * perp + np.sin(t)[:, None] * other)
    x[:, 3] = x[:, 2] + 0.15 * arm
    return x


CHAIN_BONDS = [(0, 1), (1, 2), (2, 3)]


def _chain_system(torsion_expression):
    """A 4-bead chain: springs (0.15 nm, 2e4), angles (1.9 rad, 200) and a CustomTorsionForce; returns
    (system, torsion force)."""
    system = openmm.System()
    for _ in range(4):
        system.addParticle(12.0)
    springs = openmm.HarmonicBondForce()
    for i, j in CHAIN_BONDS:
        springs.addBond(i, j, 0.15, 2.0e4)
    angles = openmm.HarmonicAngleForce()
    angles.addAngle(0, 1, 2, 1.9, 200.0)
    angles.addAngle(1, 2, 3, 1.9, 200.0)
    torsion = openmm.CustomTorsionForce(torsion_expression)
    torsion.addTorsion(0, 1, 2, 3, [])
    for force in (springs, angles, torsion):
        system.addForce(force)
    return system, torsion


def _chain_md(system, start_torsion, seed, frames=3000):
    """Boltzmann-distributed chains (the prior is a Boltzmann inversion): Langevin MD at 300 K."""
    integrator = openmm.LangevinMiddleIntegrator(300.0, 5.0, 0.001)
    integrator.setRandomNumberSeed(seed)
    context = openmm.Context(system, integrator, openmm.Platform.getPlatformByName("Reference"))
    context.setPositions(_chain(np.array([start_torsion]))[0])
    context.setVelocitiesToTemperature(300.0, seed)
    result = []
    for _ in range(frames):
        integrator.step(20)
        result.append(context.getState(getPositions=True).getPositions(asNumpy=True)._value)
    return np.asarray(result)


def test_force_match_recovers_a_chiral_torsion_pmf():
    """Exact forces of a known PMF (springs + a torsion term 3 cos t + 2 sin t, whose sine a mirror flips):
    the fitted prior + PMFForce give the torsion profile back, and tell L from D."""
    bonds = CHAIN_BONDS
    system, _ = _chain_system("3*cos(theta) + 2*sin(theta)")
    x = _chain_md(system, 0.3, 3)
    _, forces, _ = cg.EnergyTarget(system).evaluate(x)
    result = fm.force_match(x, forces, bonds, temperature=300.0, hidden=(32, 32), activation="tanh",
                            options={"epochs": 60, "batch_size": 64, "learning_rate": 3e-3,
                                     "learning_rate_decay": 0.97}, seed=1, progress=False)
    # the torsion profile along ideal chains (bonds and angles fixed, so only the torsion term varies)
    ideal = _chain(np.linspace(-math.pi, math.pi, 73))
    fitted, _ = result.evaluate(ideal)
    exact, _, _ = cg.EnergyTarget(system).evaluate(ideal)
    difference = fitted - exact
    assert np.sqrt(np.mean((difference - difference.mean()) ** 2)) < 0.3     # kJ/mol; the profile spans 7.2
    # chirality: the mirror image's energy differs as the exact one does (its sine term flips)
    mirrored, _ = result.evaluate(fm.mirror(ideal))
    exact_mirrored, _, _ = cg.EnergyTarget(system).evaluate(fm.mirror(ideal))
    assert np.ptp(exact_mirrored - exact) > 7.0
    assert np.max(np.abs((mirrored - fitted) - (exact_mirrored - exact))) < 0.6
    # a distance-only PMF cannot see it
    blind = fm.force_match(x, forces, bonds, temperature=300.0, hidden=(16,), dihedrals=False, distances="all",
                           options={"epochs": 2}, seed=1, progress=False)
    e, _ = blind.evaluate(x)
    e_mirror, _ = blind.evaluate(fm.mirror(x))
    assert np.allclose(e, e_mirror, atol=1e-9)


def test_prior_fits_a_narrow_torsion_as_von_mises_and_leaves_broad_ones_to_the_mlp():
    """A stiff torsion k (1 - cos(t - t0)) sampled by MD is fitted back (k = kappa k_B T, t0 the circular
    mean) in OpenMM's sign convention; a broad one stays out of the prior."""
    bonds = CHAIN_BONDS
    for k_true, t0, narrow in ((40.0, 2.0, True), (3.0, -1.0, False)):
        system, _ = _chain_system("%g*(1 - cos(theta - %g))" % (k_true, t0))
        frames = _chain_md(system, t0, 7)
        prior = fm.HarmonicPrior.fit(np.asarray(frames), bonds, 300.0)
        if narrow:
            (_, _, _, _, fitted_t0, fitted_k), = prior.dihedrals
            assert fitted_t0 == pytest.approx(t0, abs=0.05)
            assert fitted_k == pytest.approx(k_true, rel=0.2)
            # its OpenMM force is the von Mises energy
            probe = _chain(np.linspace(-math.pi, math.pi, 9))
            angle = fm.torsion_angles(probe, (0, 1, 2, 3))
            energy, _ = prior.evaluate(probe)
            expected = fitted_k * (1 - np.cos(angle - fitted_t0))
            assert np.allclose(energy - energy[0], expected - expected[0], rtol=1e-6, atol=1e-6)
        else:
            assert prior.dihedrals == []


def test_force_match_refuses_bad_input():
    x = np.zeros((10, 4, 3))
    with pytest.raises(ValueError, match="forces: expected the shape"):
        fm.force_match(x, np.zeros((10, 3, 3)), [(0, 1), (1, 2), (2, 3)], temperature=300.0)
    bad = np.zeros((10, 4, 3))
    bad[3, 0, 0] = np.nan
    with pytest.raises(ValueError, match="forces: 1 of 10 frames are not finite"):
        fm.force_match(x, bad, [(0, 1), (1, 2), (2, 3)], temperature=300.0)
    with pytest.raises(ValueError, match="bead_bonds"):
        fm.force_match(x, np.zeros_like(x), [(0, 1), (1, 7)], temperature=300.0)
    with pytest.raises(ValueError, match="distances"):
        fm.pmf_features(4, [(0, 1), (1, 2), (2, 3)], distances="some")


def test_d_form_fraction_is_exact_for_a_constant_energy_gap():
    rng = np.random.default_rng(0)
    own = rng.normal(0, 5, 1000)
    log_w = rng.normal(0, 1, 1000)
    assert fm.d_form_fraction(own, own, log_w, 300.0) == pytest.approx(0.5)
    gap = 10.0  # kJ/mol
    assert fm.d_form_fraction(own, own + gap, log_w, 300.0) == pytest.approx(1 / (1 + math.exp(gap / KT300)))


def test_static_bias_force_reproduces_the_grid_at_its_nodes():
    from openmm import app
    system = openmm.System()
    system.addParticle(1.0)
    cv_x, cv_y = openmm.CustomExternalForce("x"), openmm.CustomExternalForce("y")
    cv_x.addParticle(0, [])
    cv_y.addParticle(0, [])
    variables = [app.BiasVariable(cv_x, -math.pi, math.pi, 0.3, True, 21),
                 app.BiasVariable(cv_y, -math.pi, math.pi, 0.3, True, 31)]
    gx, gy = np.meshgrid(np.linspace(-math.pi, math.pi, 21), np.linspace(-math.pi, math.pi, 31), indexing="ij")
    grid = 2.0 * np.cos(gx) + np.sin(2 * gy) + 0.5 * np.cos(gx - gy)   # periodic, axis k over variable k
    grid[-1, :], grid[:, -1] = grid[0, :], grid[:, 0]                   # the same value on both ends, exactly
    force = reference.static_bias_force(grid, variables, 7)
    assert force.getForceGroup() == 7
    system.addForce(force)
    context = openmm.Context(system, openmm.VerletIntegrator(0.001), openmm.Platform.getPlatformByName("Reference"))
    for i, j in [(0, 0), (3, 17), (20, 5), (10, 30)]:
        context.setPositions([[gx[i, j], gy[i, j], 0.0]])
        energy = context.getState(getEnergy=True).getPotentialEnergy()._value
        assert energy == pytest.approx(grid[i, j], abs=1e-5)
    with pytest.raises(ValueError, match="bias_grid: expected a finite grid of shape \\(21, 31\\)"):
        reference.static_bias_force(grid.T, variables, 7)


def test_alanine_pipeline_on_a_tiny_budget(tmp_path):
    """Every stage runs and writes what it says; the numbers of so small a budget mean nothing."""
    from openmmcgflow.cgbg import pipeline
    settings = pipeline.AlanineSettings(
        case="ala2_core_beta", fm_ns=0.02, flow_ns=0.02, fm_epochs=2, flow_epochs=2, proposals=500, cg_md_ns=0.005,
        hidden=(16,), compare_unbiased_pmf=True,
        reference=dict(bias_frames=100, sample_frames=200, record_every=100, hill_interval_ps=0.05,
                       bias_factor=8.0, seed=1))
    seen = []
    results = pipeline.run_alanine(settings, tmp_path, emit=lambda name, value, unit: seen.append(name))
    for name in ("js_phi", "js_psi", "pmf_error_phi", "ess_fraction", "js_phi_raw", "ess_fraction_unclipped", "js_phi_unclipped",
                 "d_form_fraction", "js_phi_cg_md", "md_ns", "wall_s_force_matching", "wall_s_flow",
                 "wall_s_inference", "energy_evaluations", "reference_noise_js_phi", "js_phi_unbiased_pmf",
                 "ess_fraction_unbiased_pmf"):
        assert name in results and name in seen
        assert np.isfinite(results[name]["value"])
    assert 0 < results["ess_fraction"]["value"] <= 1
    assert results["energy_evaluations"]["value"] == 2 * 1000   # 0.02 ns at a frame per 0.02 ps, twice
    fm_data = cgbg.load_dataset(tmp_path / "data" / "ala2_metad9_core_beta_aggregated_0.02ns_seed1")
    assert fm_data.cg_map.force_map_type == "explicit"         # force-matching data: aggregated forces
    case_dir = tmp_path / "ala2_core_beta_seed1"
    for name in ("phi_profile.png", "psi_profile.png", "ramachandran_reweighted.png", "energy_histogram.png",
                 "results.json", "cg_system.xml", "cg_flow.model"):
        assert (case_dir / name).exists(), name
    # the CG System and the flow model load back and price the same proposals
    system = openmm.XmlSerializer.deserialize((case_dir / "cg_system.xml").read_text())
    assert system.getNumParticles() == 6 and system.getNumForces() == 3
    with pytest.raises(ValueError, match="case"):
        pipeline.run_alanine(pipeline.AlanineSettings(case="ala2_full"), tmp_path)


def test_aggregated_force_map_keeps_the_mean_force_and_lowers_the_noise(tmp_path):
    """Kraemer et al.'s aggregation: the same bead positions, bead forces summed over the attached atoms.
    What it adds, the forces on the attached atoms, has zero mean given R (integrate by parts over those
    atoms at fixed R), so both maps estimate the same mean force; the aggregated one is less noisy."""
    ala2 = systems.alanine_dipeptide("obc")
    topology = ala2.info["topology"]
    core_beta = cgbg.core_beta_map(topology)
    aggregated = cgbg.aggregated_map(topology, core_beta)
    assert aggregated.force_map_type == "explicit"
    groups = cgbg.aggregation_groups(topology, core_beta.atoms)
    assert groups[2] == [8, 9] and groups[3] == [10, 11, 12, 13]       # CA + HA; CB + its three H
    assert sorted(a for g in groups for a in g) == list(range(22))    # every atom once
    cgbg.generate_dataset(ala2.system, ala2.positions, core_beta, tmp_path / "run", temperature=300.0,
                          num_frames=1500, record_every=20, chunk_frames=1500, save_atom_positions=True,
                          platform="Reference", seed=4, progress=False)
    data = cgbg.load_dataset(tmp_path / "run")
    _, forces, _ = cg.EnergyTarget(ala2.system).evaluate(data.atom_positions)
    sliced, summed = core_beta.map_forces(forces), aggregated.map_forces(forces)
    assert np.allclose(aggregated.map_positions(data.atom_positions), data.positions)
    assert np.mean(summed ** 2) < 0.7 * np.mean(sliced ** 2)
    added = (summed - sliced).reshape(10, -1, 6, 3).mean(axis=1)     # block means over 10 blocks
    standard_error = added.std(axis=0, ddof=1) / np.sqrt(10)
    assert np.all(np.abs(added.mean(axis=0)) < 5 * standard_error + 1e-9)
    # a dataset keeps the explicit force map through its manifest
    cgbg.generate_dataset(ala2.system, ala2.positions, aggregated, tmp_path / "agg", temperature=300.0, num_frames=20,
                          record_every=20, chunk_frames=20, platform="Reference", seed=4, progress=False)
    stored = cgbg.load_dataset(tmp_path / "agg").cg_map
    assert np.array_equal(stored.force_coefficients, aggregated.force_coefficients)
    with pytest.raises(TypeError, match="cg_map: expected a SliceMap"):
        cgbg.aggregated_map(topology, aggregated)
