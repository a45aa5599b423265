"""CGMonteCarloIntegrator from Python, and the active-learning helpers around it: walkers of CG angles,
the uncertainty search, PMF labels (eq. 12 with clipping), farthest-point selection and broadening."""
import gc
import weakref

import numpy as np
import openmm
import pytest

import openmmcgflow as cg
from openmmcgflow import active_learning as al

KT300 = 0.00831446261815324 * 300.0


def two_member_model(c):
    """Members E0 = 0 and E1 = c cos(phi) on (cos phi, sin phi, cos psi, sin psi): spread |c cos phi| / 2."""
    zero = [np.zeros((1, 4))], [np.zeros(1)]
    cosine = [np.array([[c, 0.0, 0.0, 0.0]])], [np.zeros(1)]
    return cg.MLPEnsemble.from_arrays([zero[0], cosine[0]], [zero[1], cosine[1]], "identity", "identity").to_bytes()


def test_search_finds_uncertain_points_and_stops_walkers():
    c, walkers = 4.0 * KT300, 20
    system, force = al.angle_walker_system(two_member_model(c), walkers)
    integrator = al.angle_integrator(walkers, threshold_kt=0.9 * c / 2 / KT300, proposal_scale=0.3, minimum_steps=3,
                                     seed=4)
    context = openmm.Context(system, integrator, openmm.Platform.getPlatformByName("Reference"))
    context.setPositions(al.walker_positions([[np.pi / 2, 0.3]], walkers))
    result = al.search_uncertain_points(context, integrator, num_points=10, max_steps=2000, progress=False)
    assert len(result.points) == 10 and integrator.getNumFoundPoints() >= 10
    assert not result.reached_max
    threshold = integrator.getUncertaintyThreshold()
    np.testing.assert_allclose(result.std_kj, np.abs(c * np.cos(result.points[:, 0])) / 2, rtol=1e-9)
    assert (result.std_kj > threshold).all()
    assert (result.walker_steps >= 3).all()
    assert len(set(result.walkers.tolist())) == len(result.walkers)  # a walker stops at its first point
    # The spread the search saw is the one PMFForce reports for that walker's group now.
    spreads = np.array(force.getGroupEnsembleStd(context))
    np.testing.assert_allclose(spreads[result.walkers], result.std_kj, rtol=1e-9)


def test_search_stops_at_max_steps_where_the_model_is_certain():
    system, _ = al.angle_walker_system(two_member_model(0.0), 4)  # identical members: no spread anywhere
    integrator = al.angle_integrator(4, threshold_kt=0.2, seed=1)
    context = openmm.Context(system, integrator, openmm.Platform.getPlatformByName("Reference"))
    context.setPositions(al.walker_positions(np.zeros((1, 2)), 4))
    result = al.search_uncertain_points(context, integrator, 3, max_steps=50, chunk=20, progress=False)
    assert result.reached_max and len(result.points) == 0
    assert np.all(np.asarray(integrator.getWalkerSteps()) == 50)


def test_a_cast_keeps_the_object_it_was_cast_from_alive():
    """cast() hands back a non-owning view of the same C++ object: it keeps its argument (here the owner that
    XmlSerializer.deserialize returned) alive, so `x = X.cast(x)` cannot free the object under the view (the
    use after free that scripts/sanitize.sh --python found)."""
    mc = al.angle_integrator(3, threshold_kt=0.0, proposal_scale=0.2, seed=7)
    pmf = cg.PMFForce()
    pmf.setModelBytes(cg.MLPEnsemble([1, 4, 1], 1).to_bytes())
    pmf.addDistance(0, 1)
    for original, cls in ((mc, cg.CGMonteCarloIntegrator), (pmf, cg.PMFForce)):
        owner = openmm.XmlSerializer.deserialize(openmm.XmlSerializer.serialize(original))
        owner_alive = weakref.ref(owner)
        view = cls.cast(owner)
        del owner
        gc.collect()
        assert owner_alive() is not None
        assert openmm.XmlSerializer.serialize(view) == openmm.XmlSerializer.serialize(original)
        del view
        gc.collect()
        assert owner_alive() is None


def test_integrator_serializes_and_runs_in_a_compound_integrator(tmp_path):
    system, _ = al.angle_walker_system(two_member_model(1.0), 3)
    mc = al.angle_integrator(3, threshold_kt=0.0, proposal_scale=0.2, seed=7)
    copy = openmm.XmlSerializer.deserialize(openmm.XmlSerializer.serialize(mc))
    assert cg.CGMonteCarloIntegrator.isinstance(copy)
    copy = cg.CGMonteCarloIntegrator.cast(copy)
    assert copy.getNumMovedCoordinates() == 6 and copy.getMovedPeriod(5) == pytest.approx(2 * np.pi)
    assert copy.getProposalScale() == 0.2 and copy.getRandomNumberSeed() == 7
    # Beside Langevin dynamics: MC moves of the angles, then MD (the walker energies are re-priced).
    compound = openmm.CompoundIntegrator()
    compound.addIntegrator(openmm.LangevinMiddleIntegrator(300, 1, 0.001))
    compound.addIntegrator(mc)
    simulation = openmm.app.Simulation(openmm.app.Topology(), system, compound, openmm.Platform.getPlatformByName("Reference"))
    simulation.context.setPositions(al.walker_positions([[0.1, 0.2], [1.0, -2.0], [3.0, 0.0]]))
    reporter = al.CGMonteCarloReporter(str(tmp_path / "mc.csv"), report_interval=5)
    simulation.reporters.append(reporter)
    compound.setCurrentIntegrator(1)
    simulation.step(20)
    compound.setCurrentIntegrator(0)
    simulation.step(5)
    compound.setCurrentIntegrator(1)
    simulation.step(5)
    reporter.close()
    assert al.find_monte_carlo(compound).getNumProposals() == 3 * 25
    rows = (tmp_path / "mc.csv").read_text().strip().splitlines()
    assert rows[0].split(",") == al.walkers.CSV_COLUMNS and len(rows) == 1 + 6
    energies = np.array(mc.getWalkerEnergies())
    groups = np.array(cg.PMFForce.cast(simulation.context.getSystem().getForce(0)).getGroupEnergies(simulation.context))
    np.testing.assert_allclose(energies, groups, rtol=1e-12, atol=1e-12)


def test_clear_errors():
    with pytest.raises(openmm.OpenMMException, match="proposalScale"):
        cg.CGMonteCarloIntegrator(300.0, -0.1)
    with pytest.raises(ValueError, match="model_bytes"):
        al.angle_walker_system(two_member_model(1.0), 3, num_angles=1)
    system, _ = al.angle_walker_system(two_member_model(1.0), 3)
    integrator = al.angle_integrator(3, threshold_kt=0.0)
    context = openmm.Context(system, integrator, openmm.Platform.getPlatformByName("Reference"))
    with pytest.raises(ValueError, match="threshold"):
        al.search_uncertain_points(context, integrator, 1, 10, progress=False)


def test_pmf_labels_are_exact_when_the_flow_is_the_conditional_density():
    # One fine coordinate y given s: U(y, s) = k (y - s)^2 / 2 + f(s), flow q(y | s) = the exact Gaussian.
    # Then every term equals -beta f(s) + log Z_y and the labels are f(s) up to one constant.
    rng = np.random.default_rng(0)
    k, s = 300.0, np.linspace(-1, 1, 7)
    f = 3.0 * s ** 2 - s
    sigma = np.sqrt(KT300 / k)
    y = s[:, None] + sigma * rng.normal(size=(7, 30))
    energies = 0.5 * k * (y - s[:, None]) ** 2 + f[:, None]
    log_q = -0.5 * ((y - s[:, None]) / sigma) ** 2 - np.log(sigma * np.sqrt(2 * np.pi))
    for clip in (0, 3):
        labels = al.pmf_labels(energies, log_q, 0.0, 300.0, clip_top=clip)
        np.testing.assert_allclose(labels - labels[0], f - f[0], atol=1e-9)


def test_pmf_label_clipping_by_hand():
    # Terms (beta = 1 units): 0, 1, 2, 10 with the top 2 clipped to the smaller of them (2): mean of 0,1,2,2.
    beta = 1.0 / KT300
    terms = np.array([[0.0, 1.0, 2.0, 10.0]])
    energies = -terms / beta
    label = al.pmf_labels(energies, np.zeros_like(terms), 0.0, 300.0, clip_top=2)
    assert label[0] == pytest.approx(-np.log(np.mean(np.exp([0.0, 1.0, 2.0, 2.0]))) / beta, rel=1e-12)
    # A failed evaluation (NaN energy) has weight zero; a point whose copies all failed has label +inf.
    bad = np.array([[np.nan, 0.0, 0.0, 0.0], [np.nan] * 4])
    out = al.pmf_labels(bad, np.zeros((2, 4)), 0.0, 300.0, clip_top=0)
    assert out[0] == pytest.approx(-np.log(0.75) / beta) and out[1] == np.inf
    with pytest.raises(ValueError, match="clip_top"):
        al.pmf_labels(energies, np.zeros_like(terms), 0.0, 300.0, clip_top=4)


def test_farthest_point_selection_and_broadening():
    rng = np.random.default_rng(1)
    # Three tight clusters: three picks take one from each.
    centres = np.array([[-2.5, -2.5], [0.0, 0.5], [2.0, 2.5]])
    points = np.concatenate([c + 0.05 * rng.normal(size=(10, 2)) for c in centres])
    chosen = al.farthest_point_selection(points, 3, rng)
    assert sorted(chosen // 10) == [0, 1, 2]
    # Periodic distances: -3.1 and 3.1 are neighbours, so 0 is the farthest from -3.1.
    line = np.array([[-3.1, 0.0], [3.1, 0.0], [0.0, 0.0]])
    picks = al.farthest_point_selection(line, 2, np.random.default_rng(3))
    assert {int(picks[0]), int(picks[1])} & {2} and len(set(picks.tolist())) == 2
    broad = al.broaden_points(centres, 2000, 0.6, rng)
    assert broad.shape == (6000, 2)
    assert (broad >= -np.pi).all() and (broad < np.pi).all()
    d = broad.reshape(3, 2000, 2) - centres[:, None, :]
    d -= 2 * np.pi * np.round(d / (2 * np.pi))
    r = np.linalg.norm(d, axis=-1)
    assert r.max() <= 0.6 + 1e-12
    # Uniform in the disc: P(r < 0.6 / sqrt 2) = 1/2.
    assert np.mean(r < 0.6 / np.sqrt(2)) == pytest.approx(0.5, abs=0.03)
