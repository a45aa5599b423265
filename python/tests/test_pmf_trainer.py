"""PMFTrainer from Python: force matching and label fitting of the MLPEnsemble that PMFForce
evaluates. A trained ensemble goes into a PMFForce unchanged: the Context's energies and forces
are the trainer's predictions, and they match the targets."""
import numpy as np
import openmm
import pytest

import openmmcgflow as cg
from conftest import make_context

# A 4-bead chain with harmonic springs, U = sum k/2 (r - r0)^2: forces known in closed form.
SPRINGS = [(0, 1, 800.0, 0.38), (1, 2, 800.0, 0.38), (2, 3, 800.0, 0.38), (0, 2, 150.0, 0.60)]
BASE = np.array([[0.0, 0.0, 0.0], [0.3, 0.23, 0.0], [0.6, 0.0, 0.05], [0.9, 0.22, 0.12]])


def spring_energies_and_forces(positions):
    """positions (n, 4, 3) -> energies (n,), forces (n, 4, 3)."""
    energies = np.zeros(len(positions))
    forces = np.zeros_like(positions)
    for i, j, k, r0 in SPRINGS:
        d = positions[:, j] - positions[:, i]
        r = np.linalg.norm(d, axis=1)
        energies += 0.5 * k * (r - r0) ** 2
        on_j = (-k * (r - r0) / r)[:, None] * d
        forces[:, j] += on_j
        forces[:, i] -= on_j
    return energies, forces


def spring_samples(n, seed, spread=0.03):
    positions = BASE + np.random.default_rng(seed).normal(scale=spread, size=(n, 4, 3))
    energies, forces = spring_energies_and_forces(positions)
    return positions, energies, forces


def pair_distance_force():
    pmf = cg.PMFForce()
    for i in range(4):
        for j in range(i + 1, 4):
            pmf.addDistance(i, j)
    return pmf


def context_with(pmf, num_particles, box=None):
    system = openmm.System()
    for _ in range(num_particles):
        system.addParticle(12.0)
    if box is not None:
        system.setDefaultPeriodicBoxVectors(*[openmm.Vec3(*row) for row in box])
    system.addForce(pmf)
    return make_context(system, "Reference")


def context_energies_and_forces(context, positions):
    energies, forces = [], []
    for x in positions:
        context.setPositions(x)
        state = context.getState(getEnergy=True, getForces=True)
        energies.append(state.getPotentialEnergy().value_in_unit(openmm.unit.kilojoule_per_mole))
        forces.append(state.getForces(asNumpy=True).value_in_unit(openmm.unit.kilojoule_per_mole / openmm.unit.nanometer))
    return np.array(energies), np.array(forces)


def test_force_matching_into_pmf_force():
    positions, energies, forces = spring_samples(600, seed=1)
    held_out, held_out_energies, held_out_forces = spring_samples(100, seed=2)
    pmf = pair_distance_force()
    ensemble = cg.MLPEnsemble([6, 32, 32, 1], num_members=2, activation="tanh", seed=20)
    options = {"batch_size": 32, "epochs": 400, "learning_rate": 2e-2, "learning_rate_decay": 0.99,
               "max_gradient_norm": 1000.0, "validation_fraction": 0.1, "threads": 2}
    trainer = cg.PMFTrainer(ensemble, pmf, options)   # the features are read from the PMFForce
    assert trainer.features == [("distance", i, j) for i in range(4) for j in range(i + 1, 4)]
    history = trainer.fit_forces(positions, forces)
    assert history["train_loss"].shape == (400, 2) and history["num_skipped"] == 0
    assert history["validation_loss"][-1].max() < 0.05 * history["validation_loss"][0].min()

    predicted_energies, predicted_forces = trainer.predict(held_out)
    force_error = np.linalg.norm(predicted_forces - held_out_forces) / np.linalg.norm(held_out_forces)
    shifted = predicted_energies - predicted_energies.mean()
    true_shifted = held_out_energies - held_out_energies.mean()
    energy_error = np.linalg.norm(shifted - true_shifted) / np.linalg.norm(true_shifted)
    print("held-out relative force error %.4f, energy differences %.4f" % (force_error, energy_error))
    assert force_error < 0.04 and energy_error < 0.03

    # The trained ensemble in OpenMM: the Context gives exactly the trainer's predictions.
    pmf.setModelBytes(ensemble.to_bytes())
    context = context_with(pmf, 4)
    context_energies, context_forces = context_energies_and_forces(context, held_out[:20])
    np.testing.assert_allclose(context_forces, predicted_forces[:20], rtol=1e-8,
                               atol=1e-8 * np.abs(predicted_forces).max())
    np.testing.assert_allclose(context_energies, predicted_energies[:20], rtol=1e-8, atol=1e-10)
    assert np.linalg.norm(context_forces - held_out_forces[:20]) < 0.05 * np.linalg.norm(held_out_forces[:20])


def test_periodic_box_matches_pmf_force():
    # Beads straddling the faces of a triclinic box: every distance needs the minimum image, in
    # the trainer as in PMFForce. A short fit suffices; what is checked is that both agree.
    box = np.array([[1.2, 0.0, 0.0], [0.2, 1.1, 0.0], [-0.1, 0.15, 1.3]])
    positions, _, forces = spring_samples(40, seed=3)
    positions = positions - 0.45 + np.array([0.0, 0.0, 0.6])   # some beads below 0, some above the box
    ensemble = cg.MLPEnsemble([6, 8, 1], num_members=1, activation="softplus", seed=4)
    pmf = pair_distance_force()
    pmf.setUsesPeriodicBoundaryConditions(True)
    trainer = cg.PMFTrainer(ensemble, pmf, {"epochs": 2, "validation_fraction": 0.0})
    trainer.fit_forces(positions, forces, box=box)
    predicted_energies, predicted_forces = trainer.predict(positions[:10], box=box)
    unwrapped_energies, _ = trainer.predict(positions[:10])
    assert np.abs(unwrapped_energies - predicted_energies).max() > 1e-3   # the box does matter here
    pmf.setModelBytes(ensemble.to_bytes())
    context_energies, context_forces = context_energies_and_forces(context_with(pmf, 4, box), positions[:10])
    np.testing.assert_allclose(context_forces, predicted_forces, rtol=1e-8, atol=1e-8 * np.abs(predicted_forces).max())
    np.testing.assert_allclose(context_energies, predicted_energies, rtol=1e-8, atol=1e-10)


def dihedral(p0, p1, p2, p3):
    """OpenMM's (IUPAC) dihedral convention, rows of (n, 3) arrays."""
    b1, b2, b3 = p1 - p0, p2 - p1, p3 - p2
    m, n = np.cross(b1, b2), np.cross(b2, b3)
    return np.arctan2(np.linalg.norm(b2, axis=1) * np.sum(b1 * n, axis=1), np.sum(m * n, axis=1))


def test_label_fit_and_ensemble_std_in_pmf_force():
    # Free-energy labels of a smooth surface over two torsions, seen only on a patch of the torus.
    def surface(phi, psi):
        return 1.5 * np.cos(phi) + np.sin(phi) * np.sin(psi) + 0.5 * np.cos(2 * psi)

    def on_patch(phi, psi):
        return (phi < -0.25 * np.pi) & (psi > 0) & (psi < 0.75 * np.pi)

    rng = np.random.default_rng(5)
    phi = rng.uniform(-np.pi, -0.25 * np.pi, 400)
    psi = rng.uniform(0, 0.75 * np.pi, 400)
    inputs = np.stack([np.cos(phi), np.sin(phi), np.cos(psi), np.sin(psi)], axis=1)
    ensemble = cg.MLPEnsemble([4, 32, 32, 1], num_members=4, activation="tanh", seed=10)
    trainer = cg.PMFTrainer(ensemble, options={"batch_size": 32, "epochs": 150, "learning_rate": 5e-3,
                                               "learning_rate_decay": 0.98, "validation_fraction": 0.2,
                                               "threads": 2})
    history = trainer.fit_labels(inputs, surface(phi, psi))
    assert history["validation_loss"].shape == (150, 4)
    assert all(len(v) == 80 and len(t) == 320 for v, t in zip(history["validation_indices"], history["train_indices"]))

    # Into a PMFForce over the two dihedrals of a 5-bead chain, at random configurations.
    pmf = cg.PMFForce()
    pmf.addDihedral(0, 1, 2, 3)
    pmf.addDihedral(1, 2, 3, 4)
    pmf.setModelBytes(ensemble.to_bytes())
    context = context_with(pmf, 5)
    configurations = rng.normal(scale=0.3, size=(400, 5, 3))
    phis = dihedral(*[configurations[:, k] for k in range(4)])
    psis = dihedral(*[configurations[:, k] for k in range(1, 5)])
    on, off = np.flatnonzero(on_patch(phis, psis))[:15], np.flatnonzero(~on_patch(phis, psis))[:15]
    assert len(on) == 15 and len(off) == 15
    energies, stds = [], []
    for x in configurations[np.concatenate([on, off])]:
        context.setPositions(x)
        energies.append(context.getState(getEnergy=True).getPotentialEnergy().value_in_unit(openmm.unit.kilojoule_per_mole))
        stds.append(pmf.getEnsembleStd(context))
    energies, stds = np.array(energies), np.array(stds)
    # On the patch the Context's energy is the fitted surface; off it the members disagree.
    truth = surface(phis[on], psis[on])
    rmse = np.sqrt(np.mean((energies[:15] - truth) ** 2))
    print("label RMSE on the patch %.4f (surface std %.3f); ensemble std on %.4f, off %.4f"
          % (rmse, truth.std(), stds[:15].mean(), stds[15:].mean()))
    assert rmse < 0.05 * truth.std()
    assert stds[15:].mean() > 5 * stds[:15].mean()
    # The same numbers from the numpy side.
    model_inputs = np.stack([np.cos(phis), np.sin(phis), np.cos(psis), np.sin(psis)], axis=1)
    means, numpy_stds = ensemble.evaluate(model_inputs[np.concatenate([on, off])])
    np.testing.assert_allclose(energies, means, rtol=1e-8, atol=1e-10)
    np.testing.assert_allclose(stds, numpy_stds, rtol=1e-8, atol=1e-12)


def test_options_skipped_samples_threads_and_errors():
    positions, _, forces = spring_samples(60, seed=6)
    forces[7, 2, 1] = np.nan
    options = {"batch_size": 16, "epochs": 3, "bootstrap": True, "seed": 3, "validation_fraction": 0.2}
    features = [("distance", i, j) for i in range(4) for j in range(i + 1, 4)]

    def fit(threads):
        ensemble = cg.MLPEnsemble([6, 8, 1], num_members=3, activation="silu", seed=1)
        history = cg.PMFTrainer(ensemble, features, dict(options, threads=threads)).fit_forces(positions, forces)
        return ensemble, history

    one, history = fit(1)
    two, _ = fit(2)
    assert one.to_bytes() == two.to_bytes()   # bit-identical for any thread count
    assert history["num_samples"] == 60 and history["num_skipped"] == 1
    assert all(7 not in t and 7 not in v for t, v in zip(history["train_indices"], history["validation_indices"]))
    assert history["steps"] == 3 * 3 and list(history["learning_rate"]) == [1e-3] * 3
    trainer = cg.PMFTrainer(one, features, options)
    assert trainer.options["bootstrap"] is True and trainer.options["epochs"] == 3

    with pytest.raises(cg.CGFlowError, match="unknown key"):
        cg.PMFTrainer(one, features, {"epoch": 3})
    with pytest.raises(cg.CGFlowError, match=r"features\[1\]"):
        cg.PMFTrainer(one, [("distance", 0, 1), ("bond", 1, 2)] + features[2:])
    with pytest.raises(cg.CGFlowError, match=r"features\[0\]: a distance takes 2 particles"):
        cg.PMFTrainer(one, [("distance", 0, 1, 2)] + features[1:])
    with pytest.raises(cg.CGFlowError, match="features"):
        cg.PMFTrainer(one, features[:5])
    with pytest.raises(cg.CGFlowError, match="positions"):
        trainer.fit_forces(positions.reshape(60, 12), forces.reshape(60, 12))
    with pytest.raises(cg.CGFlowError, match="forces"):
        trainer.fit_forces(positions, forces[:50])
    with pytest.raises(cg.CGFlowError, match=r"features\[2\]: particle index 3"):
        trainer.fit_forces(positions[:, :3], forces[:, :3])
    with pytest.raises(cg.CGFlowError, match="box"):
        trainer.fit_forces(positions, forces, box=np.eye(2))
    with pytest.raises(cg.CGFlowError, match="inputs"):
        trainer.fit_labels(np.zeros((5, 4)), np.zeros(5))
    with pytest.raises(cg.CGFlowError, match="energies"):
        trainer.fit_labels(np.zeros((5, 6)), np.zeros(4))


def test_a_killed_fit_resumes_from_its_checkpoint_bit_identically(tmp_path, monkeypatch):
    positions, _, forces = spring_samples(120, seed=21)
    options = {"epochs": 6, "batch_size": 16, "learning_rate": 1e-2, "learning_rate_decay": 0.9,
               "validation_fraction": 0.2, "bootstrap": True, "max_gradient_norm": 1.0, "seed": 4, "threads": 2}

    def trainer(threads=2, seed=3):
        ensemble = cg.MLPEnsemble([6, 16, 1], num_members=3, activation="tanh", seed=seed)
        return ensemble, cg.PMFTrainer(ensemble, pair_distance_force(), dict(options, threads=threads))

    whole, whole_trainer = trainer()
    whole_history = whole_trainer.fit_forces(positions, forces, progress=False)

    # A kill right after the checkpoint of epoch 3 is written (the write itself is atomic).
    checkpoint = str(tmp_path / "pmf.npz")
    write = cg.pmf._write_checkpoint

    def write_then_die(path, state, opts, initial_model):
        write(path, state, opts, initial_model)
        if state["epochs_done"] == 3:
            raise KeyboardInterrupt("killed")

    monkeypatch.setattr(cg.pmf, "_write_checkpoint", write_then_die)
    _, first = trainer()
    with pytest.raises(KeyboardInterrupt):
        first.fit_forces(positions, forces, progress=False, checkpoint=checkpoint)
    monkeypatch.setattr(cg.pmf, "_write_checkpoint", write)
    # A fit that starts from another model (here other initial parameters; in a pipeline, another input
    # scaling folded into the first layer) is refused rather than silently continued from the checkpoint.
    _, elsewhere = trainer(seed=99)
    with pytest.raises(ValueError, match="started from another model"):
        elsewhere.fit_forces(positions, forces, progress=False, checkpoint=checkpoint)
    # The same fit on another thread count resumes: the thread count does not change the results.
    resumed, resumed_trainer = trainer(threads=1)
    history = resumed_trainer.fit_forces(positions, forces, progress=False, checkpoint=checkpoint)
    assert resumed.to_bytes() == whole.to_bytes()
    assert np.array_equal(history["train_loss"], whole_history["train_loss"])
    assert history["best_epoch"] == whole_history["best_epoch"]
    # A checkpoint of a fit with other options is refused, naming the difference.
    other = cg.PMFTrainer(cg.MLPEnsemble([6, 16, 1], num_members=3, activation="tanh", seed=3),
                          pair_distance_force(), dict(options, learning_rate=2e-2))
    with pytest.raises(ValueError, match="other options"):
        other.fit_forces(positions, forces, progress=False, checkpoint=checkpoint)
