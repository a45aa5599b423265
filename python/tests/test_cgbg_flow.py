"""The CG flow stage (openmmcgflow.cgbg.flow): density accuracy on a known CG density, log q against
the BoltzmannGeneratorIntegrator, best-validation parameters, resumable checkpoints, errors, and a
short alanine-dipeptide run."""
import os

import numpy as np
import openmm
import pytest

import openmmcgflow as cg
from openmmcgflow import cgbg, coordinates

BONDS = cgbg.CORE_BETA_BONDS      # 6 beads: a branch (CB) on a dependent dihedral, 2 circular torsions
SMALL = {"num_layers": 4, "hidden": 32}


def _normal_logpdf(v, m, s):
    return -0.5 * ((v - m) / s) ** 2 - np.log(s * np.sqrt(2 * np.pi))


def _von_mises_pdf(v, kappa, mu):
    return np.exp(kappa * np.cos(v - mu)) / (2 * np.pi * np.i0(kappa))


def known_density_sample(n, seed):
    """CG configurations whose internal coordinates are independent draws from known densities
    (Gaussian bonds, a 2-Gaussian mixture per angle, a Gaussian CB improper, von Mises mixtures for
    the torsions), built in random orientations and positions. Returns (x, exact log p(x)), with
    log p(x) = log p_int(q(x)) - log|det J| (full convention), the density of Cartesian coordinates
    modulo rigid motions that the flow's log q is."""
    rng = np.random.default_rng(seed)
    zmatrix = coordinates.ZMatrix.from_bonds(6, BONDS, [])
    raw = coordinates.InternalCoordinates(zmatrix)
    circular = set(zmatrix.circular_columns)
    q, log_p = np.empty((n, zmatrix.num_internal)), np.zeros(n)
    for c, kind in enumerate(zmatrix.column_types):
        if kind == "bond":
            m, s = 0.15 + 0.01 * c, 0.004 + 0.001 * (c % 3)
            v = rng.normal(m, s, n)
            log_p += _normal_logpdf(v, m, s)
        elif kind == "angle":
            first = rng.random(n) < 0.3
            v = np.where(first, rng.normal(1.9, 0.06, n), rng.normal(2.1, 0.06, n))
            log_p += np.log(0.3 * np.exp(_normal_logpdf(v, 1.9, 0.06)) + 0.7 * np.exp(_normal_logpdf(v, 2.1, 0.06)))
        elif c in circular:
            first = rng.random(n) < 0.6
            v = np.angle(np.exp(1j * np.where(first, rng.vonmises(-1.5, 2.0, n), rng.vonmises(1.0, 4.0, n))))
            log_p += np.log(0.6 * _von_mises_pdf(v, 2.0, -1.5) + 0.4 * _von_mises_pdf(v, 4.0, 1.0))
        else:
            v = rng.normal(2.1, 0.1, n)
            log_p += _normal_logpdf(v, 2.1, 0.1)
        q[:, c] = v
    x, log_det = raw.to_cartesian(q, rotation_seed=seed + 1)
    x = x + rng.normal(0.0, 1.0, (n, 1, 3))
    return x, log_p - log_det


@pytest.fixture(scope="module")
def trained():
    x, _ = known_density_sample(10000, seed=5)
    flow, position_map, history = cgbg.train_cg_flow(x, BONDS, epochs=15, batch_size=128, seed=0, progress=False,
                                                     flow_config=SMALL, options={"learning_rate": 3e-4})
    return x, flow, position_map, history


def held_out_kl(flow, position_map, n, seed=11):
    """(KL(p || q) estimated on n fresh frames of the known density, its standard error, the frames, their
    exact log p and the flow's log q)."""
    test, exact = known_density_sample(n, seed=seed)
    log_q = cgbg.cg_log_prob(flow, position_map, test)
    gap = exact - log_q                     # mean: a held-out estimate of KL(p || q) >= 0
    return gap.mean(), gap.std() / np.sqrt(len(gap)), test, exact, log_q


def test_held_out_log_likelihood_approaches_the_exact_density(trained):
    x, flow, position_map, history = trained
    kl, error, test, exact, log_q = held_out_kl(flow, position_map, 2000)
    # Gibbs: the flow cannot beat the exact density beyond noise. A wrong Jacobian or normalization
    # constant would shift log q by a constant or a function of x and break this bound or the next.
    assert kl > -4 * error, (kl, error)
    # 9000 training frames, 12 dims: measured KL 0.10 nats (3000 frames: 0.18-0.20); the rest is
    # finite-data error of the fit, not a bias (it shrinks with data).
    assert kl < 0.15, (kl, error)
    untrained = cg.Flow(dict(SMALL, dimension=position_map.dimension, seed=0,
                             circular=[d for d, c in enumerate(position_map.circular) if c]))
    assert log_q.mean() > cgbg.cg_log_prob(untrained, position_map, test).mean() + 0.5
    assert history["complete"] and history["num_validation"] == 1000 and history["num_train"] == 9000
    # The validation NLL (nats, Cartesian density) tracks the exact one.
    assert abs(history["best_validation_nll"] + exact.mean()) < 0.3


def test_position_map_is_internal_full_jacobian_normalized_from_the_data(trained):
    x, flow, position_map, history = trained
    config = position_map.to_json()
    assert config["type"] == "internal" and config["jacobian"] == "full"
    y, _ = position_map.from_positions(x)
    linear = ~np.array(position_map.circular)
    assert np.all(np.abs(y[:, linear].mean(axis=0)) < 0.3)          # shifted by the data's means
    assert 0.3 < np.sqrt(np.mean(y[:, linear].var(axis=0))) < 3.0   # scaled by the data's spreads
    assert [d for d, c in enumerate(position_map.circular) if c] == [5, 11]   # phi, psi
    # CB's handedness lives on a dependent (non-circular) dihedral: the flow's samples keep it.
    samples, _ = position_map.to_positions(flow.sample(500, seed=3)[0], x[0])
    data_hand = coordinates.detect_chirality(x[:500], list(cgbg.CHIRAL_CENTERS["core_beta"]))
    sample_hand = coordinates.detect_chirality(samples, list(cgbg.CHIRAL_CENTERS["core_beta"]))
    assert np.all(data_hand == data_hand[0]) and np.mean(sample_hand == data_hand[0]) > 0.99


def importance_context(flow, position_map, start, platform="Reference"):
    """(integrator, context): the flow as a BoltzmannGeneratorIntegrator (Importance mode, seed 4) over a
    6-bead System whose only force is a bond 0-1 (r0 0.15 nm, k 1000), positioned at ``start``."""
    system = openmm.System()
    for _ in range(6):
        system.addParticle(12.0)
    bond = openmm.HarmonicBondForce()
    bond.addBond(0, 1, 0.15, 1000.0)
    system.addForce(bond)
    integrator = cg.BoltzmannGeneratorIntegrator(300.0, cg.BoltzmannGeneratorIntegrator.Importance)
    integrator.setModelBytes(cgbg.cg_flow_model_bytes(flow, position_map))
    integrator.setRandomNumberSeed(4)
    context = openmm.Context(system, integrator, openmm.Platform.getPlatformByName(platform))
    context.setPositions(start)
    return integrator, context


def test_log_q_matches_the_boltzmann_generator_integrator(trained):
    x, flow, position_map, _ = trained
    integrator, context = importance_context(flow, position_map, x[0])
    batch = cg.evaluate_proposals(integrator, 200)
    recomputed = cgbg.cg_log_prob(flow, position_map, batch.positions)
    assert np.all(np.isfinite(batch.log_q))
    assert np.max(np.abs(recomputed - batch.log_q)) < 1e-7
    # and the proposals' bond energy agrees with the recorded one (the System's particles are the beads)
    r = np.linalg.norm(batch.positions[:, 0] - batch.positions[:, 1], axis=1)
    assert np.allclose(batch.energy, 0.5 * 1000.0 * (r - 0.15) ** 2, rtol=1e-8, atol=1e-8)
    decoded_flow, decoded_map, _ = cg.decode_boltzmann_generator(integrator.getModelBytes())
    assert np.array_equal(decoded_flow.get_parameters(), flow.get_parameters())
    assert decoded_map.to_json() == position_map.to_json()


def test_best_validation_parameters_are_kept():
    x, _ = known_density_sample(600, seed=2)
    # A large learning rate on little data overfits: validation gets worse after its best epoch.
    flow, position_map, history = cgbg.train_cg_flow(x, BONDS, epochs=12, batch_size=32, seed=3, progress=False,
                                                     flow_config={"num_layers": 4, "hidden": 64},
                                                     options={"learning_rate": 1e-2, "final_learning_rate": 1e-2})
    nll = np.array(history["validation_nll"])
    assert history["best_epoch"] == int(np.argmin(nll)) and history["best_validation_nll"] == nll.min()
    assert history["best_epoch"] < len(nll) - 1, nll          # the test needs a later, worse epoch
    validation = np.sort(np.random.default_rng(3).permutation(600)[:60])
    returned = -np.mean(cgbg.cg_log_prob(flow, position_map, x[validation]))
    assert returned == pytest.approx(nll.min(), abs=1e-9)
    assert returned < nll[-1] - 1e-6


def test_resumed_run_equals_an_uninterrupted_one(tmp_path):
    x, _ = known_density_sample(400, seed=3)
    kwargs = dict(epochs=5, batch_size=64, seed=1, progress=False, flow_config=SMALL)
    whole, _, whole_history = cgbg.train_cg_flow(x, BONDS, **kwargs)

    directory = str(tmp_path / "run")
    _, _, part = cgbg.train_cg_flow(x, BONDS, checkpoint=directory, stop_after_epochs=2, **kwargs)
    assert not part["complete"] and len(part["validation_nll"]) == 2
    # A kill between writes leaves a newer trainer file and a temporary beside the last state:
    with open(os.path.join(directory, "trainer_00003.safetensors"), "wb") as handle:
        handle.write(b"partial")
    with open(os.path.join(directory, "state.json.tmp-99999"), "w") as handle:
        handle.write("{")
    _, _, part = cgbg.train_cg_flow(x, BONDS, checkpoint=directory, stop_after_epochs=1, **kwargs)
    assert len(part["validation_nll"]) == 3
    resumed, _, resumed_history = cgbg.train_cg_flow(x, BONDS, checkpoint=directory, **kwargs)
    assert np.array_equal(resumed.get_parameters(), whole.get_parameters())      # bit for bit
    assert resumed_history["validation_nll"] == whole_history["validation_nll"]
    assert resumed_history["best_epoch"] == whole_history["best_epoch"] and resumed_history["complete"]
    assert sorted(os.listdir(directory)) == ["best_00005.npz", "state.json", "trainer_00005.safetensors"]
    with pytest.raises(ValueError, match="checkpoint: .*batch_size"):
        cgbg.train_cg_flow(x, BONDS, checkpoint=directory, **dict(kwargs, batch_size=32))


def test_bad_input_is_refused_with_the_argument_named():
    x, _ = known_density_sample(50, seed=4)
    with pytest.raises(ValueError, match="positions: expected shape"):
        cgbg.train_cg_flow(x.reshape(50, 18), BONDS, progress=False)
    with pytest.raises(ValueError, match=r"bead_bonds\[5\] = \(4, 6\): bead 6 does not exist"):
        cgbg.train_cg_flow(x, BONDS + [(4, 6)], progress=False)
    with pytest.raises(ValueError, match=r"bead_bonds: the bead graph is not connected: beads \[3, 4, 5\]"):
        cgbg.train_cg_flow(x, [(0, 1), (1, 2), (3, 4), (4, 5)], progress=False)
    with pytest.raises(ValueError, match="bead_bonds: expected bead pairs"):
        cgbg.train_cg_flow(x, "core_alpha", progress=False)
    bad = x.copy()
    bad[7, 2, 1] = np.nan
    with pytest.raises(ValueError, match="positions: 1 of 50 configurations are not finite"):
        cgbg.train_cg_flow(bad, BONDS, progress=False)
    with pytest.raises(ValueError, match="epochs"):
        cgbg.train_cg_flow(x, BONDS, epochs=0, progress=False)
    with pytest.raises(ValueError, match="options: the optimizer is AdamW"):
        cgbg.train_cg_flow(x, BONDS, options={"optimizer": "adam"}, progress=False)
    with pytest.raises(ValueError, match="positions: 5 configurations are too few"):
        cgbg.train_cg_flow(x[:5], BONDS, validation_fraction=0.05, progress=False)
    flow = cg.Flow({"dimension": 24, "num_layers": 2, "hidden": 8})
    position_map = cg.PositionMap.internal(cgbg.cg_internal_coordinates(x, BONDS))
    with pytest.raises(ValueError, match="flow: has dimension 24 but the position map has 12"):
        cgbg.cg_flow_model_bytes(flow, position_map)


def test_alanine_core_beta_end_to_end(tmp_path):
    from openmmcgflow import systems
    ala2 = systems.alanine_dipeptide("obc")
    core_beta = cgbg.core_beta_map(ala2.info["topology"])
    path = str(tmp_path / "core_beta")
    cgbg.generate_dataset(ala2.system, ala2.positions, core_beta, path, temperature=300.0, num_frames=300,
                          record_every=20, chunk_frames=100, platform="Reference", seed=1)
    data = cgbg.load_dataset(path)
    flow, position_map, history = cgbg.train_cg_flow(data, "core_beta", epochs=4, batch_size=64, seed=0, progress=False,
                                                     flow_config=SMALL, chiral_center=cgbg.CHIRAL_CENTERS["core_beta"])
    assert history["data_chirality"] == {"L": 300, "D": 0, "undetermined": 0}
    assert np.all(np.isfinite(history["validation_nll"]))
    assert history["validation_nll"][-1] < history["validation_nll"][0]
    samples, _ = position_map.to_positions(flow.sample(200, seed=1)[0], data.positions[0])
    assert np.mean(coordinates.detect_chirality(samples, list(cgbg.CHIRAL_CENTERS["core_beta"])) == 1) > 0.99
