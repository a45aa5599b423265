"""BoltzmannGeneratorIntegrator: exact statistics on the double well and a harmonic well.

The proposals are fixed analytic flows (affine couplings whose output weights are zero, so the flow
is exactly x = sigma * z): their densities are known, so the chain's acceptance rate, the
importance-sampling estimates and log Z have exact values to compare with.
"""
import math

import numpy as np
import openmm
import pytest

import openmmcgflow as cg
from openmmcgflow import systems

KB = systems.KB
SEED = 2024


def gaussian_flow(dim, sigma, masks, mean=0.0):
    """An affine-coupling flow that is exactly x = mean + sigma * z (z standard normal), per dimension."""
    flow = cg.Flow({"dimension": dim, "coupling": "affine", "num_layers": 2 * len(masks), "masks": masks,
                    "hidden": 8, "seed": 3})
    params = flow.get_parameters()
    sigma = np.broadcast_to(np.asarray(sigma, dtype=float), (dim,))
    mean = np.broadcast_to(np.asarray(mean, dtype=float), (dim,))
    for layer in range(flow.num_layers):
        end = flow.parameter_offset(layer + 1) if layer + 1 < flow.num_layers else flow.num_parameters
        transformed = [d for d in range(dim) if masks[layer // 2][d] == (layer % 2 == 0)]
        # The output Linear's bias is the last 2 * len(transformed) parameters: log-scales, then shifts
        # (y = x exp(s) + t). The first pair scales and shifts; later pairs stay the identity.
        first = layer < 2
        bias = np.concatenate([np.log(sigma[transformed]) if first else np.zeros(len(transformed)),
                               mean[transformed] if first else np.zeros(len(transformed))])
        params[end - bias.size:end] = bias
    flow.set_parameters(params)
    return flow


# A Gaussian centred near the major mode, as broad as the x1 marginal: exact acceptance rate 0.23.
PROPOSAL_MEAN, PROPOSAL_SIGMA = (-2.0, 0.0), (1.5, 1.0)


def double_well_model(mean=PROPOSAL_MEAN, sigma=PROPOSAL_SIGMA):
    flow = gaussian_flow(2, sigma, [[True, False]], mean)
    return cg.encode_boltzmann_generator(flow, cg.PositionMap.cartesian(1, [(0, 0), (0, 1)]))


def make_context(system, integrator, positions, platform="Reference"):
    context = openmm.Context(system, integrator, openmm.Platform.getPlatformByName(platform))
    context.setPositions(positions)
    return context


def exact_double_well():
    """Grid of the 2-D double-well density at beta = 1 (kT = 1 kJ/mol): x1, x2, probabilities.

    Wide enough for the proposal too (x1 down to 4.7 sigma below its mean): a grid that cut off the
    proposal's tail would renormalize it and overstate the acceptance rate by that tail's mass.
    """
    x1 = np.linspace(-9, 7, 1601)
    x2 = np.linspace(-7, 7, 281)
    X1, X2 = np.meshgrid(x1, x2, indexing="ij")
    log_p = -(X1 ** 4 / 4 - 3 * X1 ** 2 + X1 + X2 ** 2 / 2)
    p = np.exp(log_p - log_p.max())
    return X1, X2, p / p.sum()


def exact_acceptance_rate(mean, sigma):
    """E_{x~p, x'~q} min(1, w(x')/w(x)) on the grid: sorted by w, it is a sum of prefix sums."""
    X1, X2, p = exact_double_well()
    log_q = -((X1 - mean[0]) ** 2 / (2 * sigma[0] ** 2) + (X2 - mean[1]) ** 2 / (2 * sigma[1] ** 2))
    q = np.exp(log_q - log_q.max())
    q /= q.sum()
    p, q = p.ravel(), q.ravel()
    w = p / q
    order = np.argsort(w)
    p, q, w = p[order], q[order], w[order]
    p_below = np.concatenate([[0.0], np.cumsum(p)[:-1]])        # sum of p_j with w_j < w_i
    q_at_or_above = np.cumsum(q[::-1])[::-1]                     # sum of q_j with w_j >= w_i
    inside = p > 0   # cells where the target underflows contribute nothing (and have w = 0)
    return float(np.sum(p[inside] * (q_at_or_above[inside] + p_below[inside] / w[inside])))


def batch_means_error(values, num_batches=20):
    values = np.asarray(values, dtype=float)
    size = len(values) // num_batches
    means = values[:size * num_batches].reshape(num_batches, size).mean(axis=1)
    return means.std(ddof=1) / math.sqrt(num_batches)


def ks_p_value(samples, cdf):
    """Two-sided one-sample Kolmogorov-Smirnov test (asymptotic Kolmogorov distribution)."""
    x = np.sort(samples)
    n = len(x)
    F = cdf(x)
    d = max(np.max(np.arange(1, n + 1) / n - F), np.max(F - np.arange(n) / n))
    t = (math.sqrt(n) + 0.12 + 0.11 / math.sqrt(n)) * d
    return float(min(1.0, max(0.0, 2 * sum((-1) ** (k - 1) * math.exp(-2 * k * k * t * t) for k in range(1, 101)))))


def x1_cdf():
    X1, _, p = exact_double_well()
    grid = X1[:, 0]
    cumulative = np.cumsum(p.sum(axis=1))
    # Cell-centred CDF: probability of the cells up to x, interpolated between grid points.
    return lambda x: np.interp(x, grid, cumulative - 0.5 * p.sum(axis=1))


def run_chain(integrator, context, steps):
    x1, accepted = np.empty(steps), np.empty(steps)
    for s in range(steps):
        integrator.step(1)
        x1[s] = context.getState(getPositions=True).getPositions(asNumpy=True)[0][0]._value
        accepted[s] = integrator.getLastAccepted()
    return x1, accepted


def test_metropolis_chain_matches_the_exact_double_well():
    ts = systems.double_well()
    integrator = cg.BoltzmannGeneratorIntegrator(ts.temperature, cg.BoltzmannGeneratorIntegrator.Metropolis)
    integrator.setModelBytes(double_well_model())
    integrator.setRandomNumberSeed(SEED)
    integrator.setBlockSize(512)
    context = make_context(ts.system, integrator, ts.positions)
    x1, accepted = run_chain(integrator, context, 20000)

    X1, _, p = exact_double_well()
    exact_minor = p[X1 < 0].sum()
    minor = np.mean(x1 < 0)
    error = batch_means_error(x1 < 0)
    assert abs(minor - exact_minor) < 3 * error + 1e-3, (minor, exact_minor, error)

    expected = exact_acceptance_rate(PROPOSAL_MEAN, PROPOSAL_SIGMA)
    rate = integrator.getAcceptanceRate()
    assert rate == pytest.approx(np.mean(accepted))
    assert abs(rate - expected) < 3 * batch_means_error(accepted) + 2e-3, (rate, expected)
    # Thinned so that the samples are nearly independent (acceptance 0.23: a correlation time of a few steps).
    assert ks_p_value(x1[::20], x1_cdf()) > 0.001


def test_importance_mode_estimates_and_log_z():
    ts = systems.double_well()
    integrator = cg.BoltzmannGeneratorIntegrator(ts.temperature, cg.BoltzmannGeneratorIntegrator.Importance)
    integrator.setModelBytes(double_well_model())
    integrator.setRandomNumberSeed(SEED + 1)
    context = make_context(ts.system, integrator, ts.positions)
    batch = cg.evaluate_proposals(integrator, 20000)
    assert batch.positions.shape == (20000, 1, 3)
    assert np.all(batch.positions[:, 0, 2] == ts.positions[0, 2])   # the z coordinate is not in the map
    w = np.exp(batch.log_w - batch.log_w.max())
    x1 = batch.positions[:, 0, 0]
    estimate = np.sum(w * x1) / np.sum(w)
    minor = np.sum(w * (x1 < 0)) / np.sum(w)
    rng = np.random.default_rng(0)
    boot = []
    for _ in range(200):
        i = rng.integers(0, len(w), len(w))
        boot.append((np.sum(w[i] * x1[i]) / np.sum(w[i]), np.sum(w[i] * (x1[i] < 0)) / np.sum(w[i])))
    boot = np.array(boot)
    X1, _, p = exact_double_well()
    assert abs(estimate - np.sum(p * X1)) < 3 * boot[:, 0].std()
    assert abs(minor - p[X1 < 0].sum()) < 3 * boot[:, 1].std()

    # Stepping: every proposal becomes the state, and the running statistics agree with the batch's.
    integrator.step(3000)
    assert integrator.getNumProposals() == 3000 and integrator.getNumAccepted() == 3000
    state = context.getState(getPositions=True, getEnergy=True)
    assert state.getPotentialEnergy()._value == pytest.approx(integrator.getLastEnergy(), rel=1e-12, abs=1e-12)
    # log Z of the 2-D slice at z = 0: integral of exp(-U) over (x1, x2), U including the restraint constant.
    x = np.linspace(-8, 8, 20001)
    # U(x1, x2, 0) = double well + constant; the constant is U at the origin (the double well is 0 there).
    offset = float(ts.energy(np.zeros((1, 3))))
    log_z_exact = (np.log(np.trapezoid(np.exp(-(x ** 4 / 4 - 3 * x ** 2 + x)), x)) + 0.5 * np.log(2 * np.pi)
                   - offset)
    assert abs(integrator.getLogZ() - log_z_exact) < 4 * integrator.getLogZError()
    assert 0 < integrator.getEffectiveSampleFraction() < 1


def test_running_statistics_are_those_of_the_proposals_log_weights():
    # The integrator keeps its ESS and log Z in the core's RunningWeights: the same numbers as the
    # weights engine gives for the log w of every proposal it stepped through.
    ts = systems.double_well()
    integrator = cg.BoltzmannGeneratorIntegrator(ts.temperature, cg.BoltzmannGeneratorIntegrator.Metropolis)
    integrator.setModelBytes(double_well_model())
    integrator.setRandomNumberSeed(21)
    context = make_context(ts.system, integrator, ts.positions)  # noqa: F841 (keeps the Context alive)
    log_w = []
    for _ in range(300):
        integrator.step(1)
        log_w.append(integrator.getLastLogWeight())
    log_w = np.array(log_w)
    assert integrator.getNumProposals() == 300
    assert integrator.getEffectiveSampleSize() == pytest.approx(cg.stats.effective_sample_size(log_w), rel=1e-10)
    log_z, error = cg.stats.log_z(log_w)
    assert integrator.getLogZ() == pytest.approx(log_z, abs=1e-10)
    assert integrator.getLogZError() == pytest.approx(error, rel=1e-8)


def test_ess_is_one_when_the_proposal_is_the_target():
    k, temperature = 400.0, 300.0
    kT = KB * temperature
    system = openmm.System()
    system.addParticle(12.0)
    force = openmm.CustomExternalForce("0.5*k*(x^2 + y^2 + z^2)")
    force.addGlobalParameter("k", k)
    force.addParticle(0, [])
    system.addForce(force)
    flow = gaussian_flow(3, math.sqrt(kT / k), [[True, False, False]])
    model = cg.encode_boltzmann_generator(flow, cg.PositionMap.all_cartesian(1))
    integrator = cg.BoltzmannGeneratorIntegrator(temperature, cg.BoltzmannGeneratorIntegrator.Importance)
    integrator.setModelBytes(model)
    integrator.setRandomNumberSeed(5)
    context = make_context(system, integrator, [[0.1, 0.0, 0.0]])  # noqa: F841 (keeps the Context alive)
    integrator.step(500)
    assert integrator.getEffectiveSampleFraction() == pytest.approx(1.0, abs=1e-9)
    assert integrator.getLogZ() == pytest.approx(1.5 * math.log(2 * math.pi * kT / k), abs=1e-9)
    assert integrator.getLogZError() == pytest.approx(0.0, abs=1e-4)


def test_compound_integrator_with_langevin_samples_both_modes():
    ts = systems.double_well()
    bg = cg.BoltzmannGeneratorIntegrator(ts.temperature, cg.BoltzmannGeneratorIntegrator.Metropolis)
    bg.setModelBytes(double_well_model())
    bg.setRandomNumberSeed(SEED + 2)
    langevin = openmm.LangevinMiddleIntegrator(ts.temperature, 5.0, 0.005)
    langevin.setRandomNumberSeed(11)
    compound = openmm.CompoundIntegrator()
    compound.addIntegrator(langevin)
    compound.addIntegrator(bg)
    context = make_context(ts.system, compound, ts.positions)
    context.setVelocitiesToTemperature(ts.temperature, 3)
    x1 = []
    for cycle in range(6000):
        compound.setCurrentIntegrator(0)
        compound.step(4)
        compound.setCurrentIntegrator(1)
        compound.step(1)
        x1.append(context.getState(getPositions=True).getPositions(asNumpy=True)[0][0]._value)
    x1 = np.array(x1)
    X1, _, p = exact_double_well()
    exact_minor = p[X1 < 0].sum()
    assert np.mean(x1 > 0) > 0.002          # visits the minor mode (exact 0.0083)
    assert abs(np.mean(x1 < 0) - exact_minor) < 3 * batch_means_error(x1 < 0) + 1e-3
    assert 0.05 < bg.getAcceptanceRate() < 0.9


def test_block_size_and_platform_do_not_change_the_chain():
    ts = systems.double_well()
    runs = []
    for block in (7, 1024):
        integrator = cg.BoltzmannGeneratorIntegrator(ts.temperature, cg.BoltzmannGeneratorIntegrator.Metropolis)
        integrator.setModelBytes(double_well_model())
        integrator.setRandomNumberSeed(99)
        integrator.setBlockSize(block)
        context = make_context(ts.system, integrator, ts.positions)
        x1, accepted = run_chain(integrator, context, 50)
        runs.append((x1, accepted, integrator.getLogZ()))
    assert np.array_equal(runs[0][0], runs[1][0]) and np.array_equal(runs[0][1], runs[1][1])
    assert runs[0][2] == runs[1][2]


def test_serialization_round_trip_and_inside_compound_integrator():
    ts = systems.double_well()
    integrator = cg.BoltzmannGeneratorIntegrator(ts.temperature, cg.BoltzmannGeneratorIntegrator.Importance)
    integrator.setModelBytes(double_well_model())
    integrator.setRandomNumberSeed(17)
    integrator.setBlockSize(33)
    integrator.setRedrawVelocities(False)
    integrator.setIntegrationForceGroups(1)
    xml = openmm.XmlSerializer.serialize(integrator)
    owner = openmm.XmlSerializer.deserialize(xml)  # owns the C++ object; the cast is a view of it
    assert cg.BoltzmannGeneratorIntegrator.isinstance(owner)
    copy = cg.BoltzmannGeneratorIntegrator.cast(owner)
    assert copy.getModelBytes() == integrator.getModelBytes()
    assert (copy.getTemperature(), copy.getMode(), copy.getBlockSize(), copy.getRandomNumberSeed(),
            copy.getRedrawVelocities(), copy.getIntegrationForceGroups()) == (ts.temperature, 0, 33, 17, False, 1)
    compound = openmm.CompoundIntegrator()
    compound.addIntegrator(openmm.VerletIntegrator(0.001))
    compound.addIntegrator(integrator)
    text = openmm.XmlSerializer.serialize(compound)
    assert "BoltzmannGeneratorIntegrator" in text
    restored = openmm.XmlSerializer.deserialize(text)
    assert cg.BoltzmannGeneratorIntegrator.isinstance(restored.getIntegrator(1))


def test_bad_models_and_systems_give_clear_errors(tmp_path):
    ts = systems.double_well()
    integrator = cg.BoltzmannGeneratorIntegrator(ts.temperature)
    # A plain flow file has no position map.
    flow = gaussian_flow(2, 1.0, [[True, False]])
    with pytest.raises(openmm.OpenMMException, match="expected 'boltzmann_generator'"):
        integrator.setModelBytes(flow.to_bytes())
    with pytest.raises(openmm.OpenMMException, match="modelFile"):
        integrator.setModelFile(str(tmp_path / "missing.safetensors"))
    with pytest.raises(openmm.OpenMMException, match="no model"):
        make_context(ts.system, integrator, ts.positions)
    # A model for 2 particles on a 1-particle System.
    wrong = cg.encode_boltzmann_generator(flow, cg.PositionMap.cartesian(2, [(0, 0), (1, 0)]))
    integrator.setModelBytes(wrong)
    with pytest.raises(openmm.OpenMMException, match="covers 2 particles but the System has 1"):
        make_context(ts.system, integrator, ts.positions)
    with pytest.raises(cg.CGFlowError, match="dimension 2 but the position map needs 3"):
        cg.encode_boltzmann_generator(flow, cg.PositionMap.all_cartesian(1))
    with pytest.raises(openmm.OpenMMException, match="temperature"):
        cg.BoltzmannGeneratorIntegrator(-1.0)
    with pytest.raises(openmm.OpenMMException, match="blockSize"):
        integrator.setBlockSize(0)
    with pytest.raises(cg.CGFlowError, match="axis must be 0, 1 or 2"):
        cg.PositionMap.cartesian(1, [(0, 3)])
    # The model is fixed while the integrator is bound to a Context (its kernels were built for it).
    bound = cg.BoltzmannGeneratorIntegrator(ts.temperature)
    bound.setModelBytes(double_well_model())
    context = make_context(ts.system, bound, ts.positions)  # noqa: F841 (keeps the binding)
    with pytest.raises(openmm.OpenMMException, match="cannot change while the integrator is bound"):
        bound.setModelBytes(double_well_model())
    with pytest.raises(openmm.OpenMMException, match="cannot change while the integrator is bound"):
        bound.setModelFile(str(tmp_path / "missing.safetensors"))


def test_reporter_writes_dcd_and_csv(tmp_path):
    from openmm import app
    ts = systems.double_well()
    integrator = cg.BoltzmannGeneratorIntegrator(ts.temperature, cg.BoltzmannGeneratorIntegrator.Metropolis)
    integrator.setModelBytes(double_well_model())
    integrator.setRandomNumberSeed(4)
    topology = app.Topology()
    chain = topology.addChain()
    residue = topology.addResidue("DW", chain)
    topology.addAtom("X", app.Element.getBySymbol("C"), residue)
    simulation = app.Simulation(topology, ts.system, integrator, openmm.Platform.getPlatformByName("Reference"))
    simulation.context.setPositions(ts.positions)
    reporter = cg.BoltzmannGeneratorReporter(str(tmp_path / "chain.dcd"), str(tmp_path / "chain.csv"), 2)
    simulation.reporters.append(reporter)
    simulation.step(20)
    reporter.close()
    rows = (tmp_path / "chain.csv").read_text().strip().splitlines()
    assert rows[0].split(",") == list(cg.generator.CSV_COLUMNS) and len(rows) == 11
    last = rows[-1].split(",")
    assert int(last[1]) == 20 and float(last[4]) == pytest.approx(integrator.getLastLogWeight())
    assert (tmp_path / "chain.dcd").stat().st_size > 0

    batch = cg.evaluate_proposals(integrator, 5)
    cg.write_proposals(batch, topology, str(tmp_path / "batch.dcd"), str(tmp_path / "batch.csv"))
    table = np.genfromtxt(tmp_path / "batch.csv", delimiter=",", names=True)
    assert np.allclose(table["log_w"], batch.log_w)


def alanine_dipeptide_model(ts, noise=0.02, seed=1):
    """A non-identity spline flow over the normalized internal coordinates of alanine dipeptide."""
    position_map = cg.PositionMap.internal(ts.info["internal_coordinates"])
    circular = [d for d, c in enumerate(position_map.circular) if c]
    flow = cg.Flow({"dimension": position_map.dimension, "circular": circular, "num_layers": 4, "hidden": 32,
                    "mask_seed": seed, "shift_seed": seed, "seed": seed})
    params = flow.get_parameters()
    params += noise * np.random.default_rng(seed).standard_normal(params.size)
    flow.set_parameters(params)
    return flow, position_map


def test_internal_coordinate_proposals_are_consistent_with_the_inverse_pass():
    ts = systems.alanine_dipeptide("vacuum")
    flow, position_map = alanine_dipeptide_model(ts)
    model = cg.encode_boltzmann_generator(flow, position_map)
    integrator = cg.BoltzmannGeneratorIntegrator(ts.temperature, cg.BoltzmannGeneratorIntegrator.Importance)
    integrator.setModelBytes(model)
    integrator.setRandomNumberSeed(8)
    integrator.setBlockSize(16)
    start = ts.positions + np.array([1.0, -2.0, 0.5])
    context = make_context(ts.system, integrator, start)
    batch = cg.evaluate_proposals(integrator, 40)
    # The Context is back where it was, and every proposal is centred on its centroid.
    now = context.getState(getPositions=True).getPositions(asNumpy=True)._value
    assert np.array_equal(now, start)
    assert np.allclose(batch.positions.mean(axis=1), start.mean(axis=0), atol=1e-12)
    # log q(x) from the proposal's positions alone (inverse map + inverse flow) is what the integrator reported.
    y, log_det_j = position_map.from_positions(batch.positions)
    log_q = flow.log_prob(y) - log_det_j
    assert np.allclose(log_q, batch.log_q, rtol=0, atol=1e-7)
    # ... and the same base draws as the flow engine: sample k of seed 8 is proposal k.
    y_engine, log_q_engine = flow.sample(40, 8)
    positions, log_det_engine = position_map.to_positions(y_engine, start)
    assert np.allclose(positions, batch.positions, atol=1e-10)
    assert np.allclose(log_q_engine - log_det_engine, batch.log_q, atol=1e-10)
    # Energies are the Context's.
    reference = openmm.Context(ts.system, openmm.VerletIntegrator(0.001), openmm.Platform.getPlatformByName("Reference"))
    for s in (0, 17, 39):
        reference.setPositions(batch.positions[s])
        energy = reference.getState(getEnergy=True).getPotentialEnergy().value_in_unit(openmm.unit.kilojoule_per_mole)
        assert energy == pytest.approx(batch.energy[s], rel=1e-10)
    beta = 1.0 / (KB * ts.temperature)
    finite = np.isfinite(batch.log_w)
    assert np.allclose(batch.log_w[finite], -beta * batch.energy[finite] - batch.log_q[finite], rtol=1e-12)


def test_metropolis_prices_a_state_moved_by_another_integrator():
    """After setPositions (or another integrator's steps), Metropolis mode prices the new current state.

    The moved state has two distant atoms almost on top of each other (Lennard-Jones energy ~1e20
    kJ/mol): its weight is ~0, so once it is priced
    every finite proposal is accepted. A chain that kept the old state's weight would reject most of
    these untrained-flow proposals (which are far worse than the minimized structure).
    """
    ts = systems.alanine_dipeptide("vacuum")
    flow, position_map = alanine_dipeptide_model(ts)
    integrator = cg.BoltzmannGeneratorIntegrator(ts.temperature, cg.BoltzmannGeneratorIntegrator.Metropolis)
    integrator.setModelBytes(cg.encode_boltzmann_generator(flow, position_map))
    integrator.setRandomNumberSeed(3)
    context = make_context(ts.system, integrator, ts.positions)
    integrator.step(20)
    assert integrator.getNumAccepted() < 10   # from the minimized structure, most proposals are rejected
    clash = ts.positions.copy()
    clash[21] = clash[0] + 0.003
    for _ in range(10):
        context.setPositions(clash)
        integrator.step(1)
        assert integrator.getLastAccepted() or not np.isfinite(integrator.getLastLogWeight())


def test_cg_model_on_a_pmf_system():
    """A CG Boltzmann generator: phi and psi carried by the x-coordinates of two particles of a CG
    System whose energy is a PMFForce; the flow is circular on both."""
    pmf = cg.PMFForce()
    pmf.setModelBytes(cg.MLPEnsemble([4, 16, 1], 3, "silu", seed=2).to_bytes())
    pmf.addCoordinate(0, 0, 2 * math.pi)
    pmf.addCoordinate(1, 0, 2 * math.pi)
    system = openmm.System()
    for _ in range(2):
        system.addParticle(1.0)
    system.addForce(pmf)
    flow = cg.Flow({"dimension": 2, "circular": [0, 1], "num_layers": 2, "hidden": 16, "seed": 4})
    params = flow.get_parameters()
    params += 0.05 * np.random.default_rng(4).standard_normal(params.size)
    flow.set_parameters(params)
    model = cg.encode_boltzmann_generator(flow, cg.PositionMap.cartesian(2, [(0, 0), (1, 0)]))
    integrator = cg.BoltzmannGeneratorIntegrator(300.0, cg.BoltzmannGeneratorIntegrator.Importance)
    integrator.setModelBytes(model)
    integrator.setRandomNumberSeed(6)
    start = np.array([[0.0, 0.3, -0.2], [0.0, 1.0, 2.0]])
    context = make_context(system, integrator, start)
    batch = cg.evaluate_proposals(integrator, 50)
    phi_psi = batch.positions[:, :, 0]
    assert np.all(np.abs(phi_psi) <= math.pi)
    assert np.array_equal(batch.positions[:, :, 1:], np.broadcast_to(start[:, 1:], (50, 2, 2)))
    y_flow, log_q_flow = flow.sample(50, 6)
    assert np.allclose(phi_psi, y_flow, atol=1e-12) and np.allclose(batch.log_q, log_q_flow, atol=1e-12)
    for s in (0, 25):
        context.setPositions(batch.positions[s])
        assert batch.energy[s] == pytest.approx(context.getState(getEnergy=True).getPotentialEnergy()._value, rel=1e-12)


def test_conditional_model_uses_the_condition_vector():
    ts = systems.double_well()
    flow = cg.Flow({"dimension": 2, "context_dimension": 1, "coupling": "affine", "num_layers": 2,
                    "masks": [[True, False]], "hidden": 8, "seed": 2})
    params = flow.get_parameters()
    params += 0.1 * np.random.default_rng(2).standard_normal(params.size)
    flow.set_parameters(params)
    model = cg.encode_boltzmann_generator(flow, cg.PositionMap.cartesian(1, [(0, 0), (0, 1)]))
    integrator = cg.BoltzmannGeneratorIntegrator(ts.temperature, cg.BoltzmannGeneratorIntegrator.Importance)
    integrator.setModelBytes(model)
    assert integrator.getConditionDimension() == 1
    with pytest.raises(openmm.OpenMMException, match="conditioned on 1 values but the condition vector has 0"):
        make_context(ts.system, integrator, ts.positions)
    with pytest.raises(openmm.OpenMMException, match="condition vector has 2 values"):
        integrator.setConditionVector([0.1, 0.2])
    results = {}
    for value in (-1.0, 1.5):
        integrator = cg.BoltzmannGeneratorIntegrator(ts.temperature, cg.BoltzmannGeneratorIntegrator.Importance)
        integrator.setModelBytes(model)
        integrator.setRandomNumberSeed(9)
        integrator.setConditionVector([value])
        context = make_context(ts.system, integrator, ts.positions)  # noqa: F841 (keeps the Context alive)
        batch = cg.evaluate_proposals(integrator, 20)
        y = batch.positions[:, 0, :2]
        assert np.allclose(flow.log_prob(y, np.array([value])), batch.log_q, atol=1e-10)
        results[value] = y
    assert not np.allclose(results[-1.0], results[1.5])


OPENCL = "OpenCL" in [openmm.Platform.getPlatform(i).getName() for i in range(openmm.Platform.getNumPlatforms())]
# Stated tolerances of the GPU kernel against Reference (same seed, same base draws): positions in
# nm and log q in nats, per precision. Single precision carries float rounding through 12 dense
# layers and the NeRF build; mixed keeps log q in double; double agrees to rounding.
GPU_TOLERANCE = {"single": (2e-5, 2e-3), "mixed": (2e-5, 2e-4), "double": (1e-10, 1e-8)}


def run_platform(ts, model, mode, platform, properties, steps, seed=5, block=16, condition=None):
    integrator = cg.BoltzmannGeneratorIntegrator(ts.temperature, mode)
    integrator.setModelBytes(model)
    if condition is not None:
        integrator.setConditionVector(condition)
    integrator.setRandomNumberSeed(seed)
    integrator.setBlockSize(block)
    context = openmm.Context(ts.system, integrator, openmm.Platform.getPlatformByName(platform), properties)
    context.setPositions(ts.positions)
    positions, log_q, accepted = [], [], []
    for _ in range(steps):
        integrator.step(1)
        positions.append(context.getState(getPositions=True).getPositions(asNumpy=True)._value.copy())
        log_q.append(integrator.getLastLogQ())
        accepted.append(integrator.getLastAccepted())
    batch = cg.evaluate_proposals(integrator, 8)
    return np.array(positions), np.array(log_q), np.array(accepted), batch


@pytest.mark.skipif(not OPENCL, reason="no OpenCL platform")
@pytest.mark.parametrize("precision", ["single", "mixed", "double"])
def test_opencl_matches_reference(precision):
    position_tolerance, log_q_tolerance = GPU_TOLERANCE[precision]
    dw = systems.double_well()
    ala2 = systems.alanine_dipeptide("vacuum")
    flow, position_map = alanine_dipeptide_model(ala2)
    # A conditional spline flow with a circular context, and an elementwise spline (free parameters).
    conditional = cg.Flow({"dimension": 2, "context_dimension": 1, "context_circular": [0], "num_layers": 2,
                           "hidden": 16, "bound": 6.0, "seed": 7})
    conditional.set_parameters(conditional.get_parameters()
                               + 0.1 * np.random.default_rng(7).standard_normal(conditional.num_parameters))
    elementwise = cg.Flow({"dimension": 1, "coupling": "elementwise", "num_layers": 2, "bound": 6.0, "seed": 8})
    elementwise.set_parameters(elementwise.get_parameters()
                               + 0.3 * np.random.default_rng(8).standard_normal(elementwise.num_parameters))
    cases = [(dw, double_well_model(), 20, None), (ala2, cg.encode_boltzmann_generator(flow, position_map), 6, None),
             (dw, cg.encode_boltzmann_generator(conditional, cg.PositionMap.cartesian(1, [(0, 0), (0, 1)])), 10, [2.0]),
             (dw, cg.encode_boltzmann_generator(elementwise, cg.PositionMap.cartesian(1, [(0, 0)])), 10, None)]
    for ts, model, steps, condition in cases:
        for mode in (cg.BoltzmannGeneratorIntegrator.Importance, cg.BoltzmannGeneratorIntegrator.Metropolis):
            ref = run_platform(ts, model, mode, "Reference", {}, steps, condition=condition)
            gpu = run_platform(ts, model, mode, "OpenCL", {"Precision": precision}, steps, condition=condition)
            assert np.abs(ref[0] - gpu[0]).max() < position_tolerance
            assert np.abs(ref[1] - gpu[1]).max() < log_q_tolerance
            assert np.array_equal(ref[2], gpu[2])
            assert np.abs(ref[3].positions - gpu[3].positions).max() < position_tolerance
            assert np.abs(ref[3].log_q - gpu[3].log_q).max() < log_q_tolerance


@pytest.mark.skipif(not OPENCL, reason="no OpenCL platform")
def test_opencl_refuses_layers_without_a_gpu_kernel():
    ts = systems.double_well()
    flow = cg.Flow({"dimension": 3, "base": {"kinds": ["normal"] * 3},
                    "layers": [{"type": "right_stochastic_linear", "num_atoms": 1}]})
    integrator = cg.BoltzmannGeneratorIntegrator(ts.temperature)
    integrator.setModelBytes(cg.encode_boltzmann_generator(flow, cg.PositionMap.all_cartesian(1)))
    with pytest.raises(openmm.OpenMMException, match="'right_stochastic_linear'\\) has no GPU kernel"):
        openmm.Context(ts.system, integrator, openmm.Platform.getPlatformByName("OpenCL"))
    # The refused Context must leave the integrator unbound: it still works with another platform.
    blocker = openmm.Context(ts.system, openmm.VerletIntegrator(0.001), openmm.Platform.getPlatformByName("Reference"))
    context = openmm.Context(ts.system, integrator, openmm.Platform.getPlatformByName("Reference"))
    context.setPositions(ts.positions)
    integrator.step(3)
    assert integrator.getNumProposals() == 3
    assert np.all(np.isfinite(context.getState(getPositions=True).getPositions(asNumpy=True)._value))
    del context, blocker


def wide_alanine_model(seed=3):
    """A near-identity flow over internal coordinates normalized with wide scales (bonds 0.05 nm, angles
    0.5 rad, dependent dihedrals 2 rad), so that a known share of its proposals has a bond <= 0, an angle
    outside (0, pi) or a dependent dihedral more than pi from its reference: outside the map's domain."""
    ts = systems.alanine_dipeptide("vacuum")
    ic = cg._core.InternalCoordinates(ts.info["zmatrix"])
    ic.set_normalization(ts.positions, bond=0.05, angle=0.5, dihedral=2.0)
    position_map = cg.PositionMap.internal(ic)
    circular = [d for d, c in enumerate(position_map.circular) if c]
    flow = cg.Flow({"dimension": position_map.dimension, "circular": circular, "num_layers": 2, "hidden": 8,
                    "seed": seed})
    return ts, flow, position_map


def outside_domain_proposals(platform, properties=None, n=300):
    ts, flow, position_map = wide_alanine_model()
    integrator = cg.BoltzmannGeneratorIntegrator(ts.temperature, cg.BoltzmannGeneratorIntegrator.Importance)
    integrator.setModelBytes(cg.encode_boltzmann_generator(flow, position_map))
    integrator.setRandomNumberSeed(8)
    integrator.setBlockSize(64)
    context = openmm.Context(ts.system, integrator, openmm.Platform.getPlatformByName(platform), properties or {})
    context.setPositions(ts.positions)
    return ts, flow, position_map, integrator, context, cg.evaluate_proposals(integrator, n)


def test_proposals_outside_the_maps_domain_have_weight_zero():
    ts, flow, position_map, integrator, context, batch = outside_domain_proposals("Reference")
    # The engine's own draws (sample k of seed 8 is proposal k) through the core map: the same ones are outside.
    y, _ = flow.sample(len(batch.log_q), 8)
    positions, _ = position_map.to_positions(y, ts.positions)
    outside = np.isnan(positions).any(axis=(1, 2))
    assert 0.1 < outside.mean() < 0.9
    assert np.array_equal(np.isnan(batch.log_q), outside)
    assert np.isnan(batch.positions[outside]).all() and np.isfinite(batch.positions[~outside]).all()
    assert (batch.log_w[outside] == -np.inf).all()
    # Stepping (a fresh chain, so that step k takes proposal k): each one outside counts as a proposal of
    # weight zero and leaves the state as it was.
    integrator = cg.BoltzmannGeneratorIntegrator(ts.temperature, cg.BoltzmannGeneratorIntegrator.Importance)
    integrator.setModelBytes(cg.encode_boltzmann_generator(flow, position_map))
    integrator.setRandomNumberSeed(8)
    integrator.setBlockSize(64)
    context = make_context(ts.system, integrator, ts.positions)
    before = context.getState(getPositions=True).getPositions(asNumpy=True)._value
    for k in range(len(outside)):
        integrator.step(1)
        now = context.getState(getPositions=True).getPositions(asNumpy=True)._value
        assert np.isfinite(now).all()
        assert integrator.getLastAccepted() == (not outside[k])
        if outside[k]:
            assert np.array_equal(now, before) and integrator.getLastLogWeight() == -np.inf
        before = now
    assert integrator.getNumProposals() == len(outside)
    assert integrator.getNumNonFinite() >= outside.sum()


@pytest.mark.skipif(not OPENCL, reason="no OpenCL platform")
def test_opencl_marks_the_same_proposals_outside_the_domain():
    reference = outside_domain_proposals("Reference")[-1]
    opencl = outside_domain_proposals("OpenCL", {"Precision": "double"})[-1]
    assert np.array_equal(np.isnan(opencl.log_q), np.isnan(reference.log_q))
    inside = ~np.isnan(reference.log_q)
    np.testing.assert_allclose(opencl.log_q[inside], reference.log_q[inside], rtol=1e-9, atol=1e-7)


def test_internal_map_refuses_what_breaks_rigid_motion_invariance():
    ts = systems.alanine_dipeptide("vacuum")
    flow, position_map = alanine_dipeptide_model(ts)
    model = cg.encode_boltzmann_generator(flow, position_map)

    def context_for(system):
        integrator = cg.BoltzmannGeneratorIntegrator(ts.temperature)
        integrator.setModelBytes(model)
        return openmm.Context(system, integrator, openmm.Platform.getPlatformByName("Reference"))

    restrained = openmm.XmlSerializer.clone(ts.system)
    restraint = openmm.CustomExternalForce("100*(x^2+y^2+z^2)")
    restraint.addParticle(0, [])
    index = restrained.addForce(restraint)
    with pytest.raises(openmm.OpenMMException, match="force %d is a CustomExternalForce" % index):
        context_for(restrained)
    # Outside the integration force groups it does not enter the weights, and is allowed.
    restraint.setForceGroup(5)
    integrator = cg.BoltzmannGeneratorIntegrator(ts.temperature)
    integrator.setModelBytes(model)
    integrator.setIntegrationForceGroups({0})
    openmm.Context(restrained, integrator, openmm.Platform.getPlatformByName("Reference"))
    periodic = openmm.XmlSerializer.clone(ts.system)
    periodic.setDefaultPeriodicBoxVectors(openmm.Vec3(3, 0, 0), openmm.Vec3(0, 3, 0), openmm.Vec3(0, 0, 3))
    for force in periodic.getForces():
        if isinstance(force, openmm.NonbondedForce):
            force.setNonbondedMethod(openmm.NonbondedForce.CutoffPeriodic)
    with pytest.raises(openmm.OpenMMException, match="periodic boundary conditions"):
        context_for(periodic)
    context_for(ts.system)  # the isolated molecule is fine
