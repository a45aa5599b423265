"""PMFForce from Python: it is an ordinary openmm.Force, its features follow OpenMM's own
geometry conventions, its forces are the gradient of its energy, and it serializes."""
import os

import numpy as np
import openmm
import pytest

import openmmcgflow as cg
from conftest import energy, forces, make_context, mlp_forward

RNG = np.random.default_rng(7)


def identity_model(n_inputs, weights):
    """E = w . inputs: lets a test read a feature straight off the energy."""
    return cg.MLPEnsemble.from_arrays([[np.array([weights], dtype=float)]], [[np.zeros(1)]],
                                      activation="identity")


def system_with(n, *forces_):
    system = openmm.System()
    for _ in range(n):
        system.addParticle(12.0)
    for f in forces_:
        system.addForce(f)
    return system


@pytest.mark.parametrize("component, expression", [(0, "cos(theta)"), (1, "sin(theta)")])
def test_dihedral_matches_openmm_convention(platform_name, component, expression):
    pmf = cg.PMFForce()
    pmf.setModelBytes(identity_model(2, [1.0 - component, float(component)]).to_bytes())
    pmf.addDihedral(0, 1, 2, 3)
    torsion = openmm.CustomTorsionForce(expression)
    torsion.addTorsion(0, 1, 2, 3)
    ours = make_context(system_with(4, pmf), platform_name)
    theirs = make_context(system_with(4, torsion), "Reference")
    for _ in range(5):
        pos = RNG.normal(size=(4, 3))
        assert energy(ours, pos) == pytest.approx(energy(theirs, pos), abs=1e-5)


def test_angle_and_distance_match_openmm(platform_name):
    pmf = cg.PMFForce()
    pmf.setModelBytes(identity_model(2, [1.0, 2.0]).to_bytes())
    pmf.addAngle(0, 1, 2)
    pmf.addDistance(0, 2)
    custom_angle = openmm.CustomAngleForce("theta")
    custom_angle.addAngle(0, 1, 2)
    custom_bond = openmm.CustomBondForce("2*r")
    custom_bond.addBond(0, 2)
    ours = make_context(system_with(3, pmf), platform_name)
    theirs = make_context(system_with(3, custom_angle, custom_bond), "Reference")
    for _ in range(5):
        pos = RNG.normal(size=(3, 3))
        assert energy(ours, pos) == pytest.approx(energy(theirs, pos), abs=1e-5)
        np.testing.assert_allclose(forces(ours, pos), forces(theirs, pos), atol=1e-4)


def test_numpy_parameters_without_a_file(platform_name):
    widths = [3, 16, 8, 1]
    weights = [[RNG.normal(size=(widths[l + 1], widths[l])) for l in range(3)] for _ in range(4)]
    biases = [[RNG.normal(size=widths[l + 1]) for l in range(3)] for _ in range(4)]
    pmf = cg.PMFForce()
    pmf.addDistance(0, 1)
    pmf.addCoordinate(2, 2)
    pmf.addDistance(1, 2)
    pmf.setEnsembleParameters(weights, biases, activation="softplus")
    assert pmf.getEnsembleSize() == 4 and pmf.getModelInputSize() == 3
    context = make_context(system_with(3, pmf), platform_name)
    pos = RNG.normal(size=(3, 3))
    x = [np.linalg.norm(pos[1] - pos[0]), pos[2, 2], np.linalg.norm(pos[2] - pos[1])]
    members = [mlp_forward(w, b, x, "softplus")[0] for w, b in zip(weights, biases)]
    assert energy(context, pos) == pytest.approx(np.mean(members), rel=1e-9)
    assert pmf.getEnsembleStd(context) == pytest.approx(np.std(members), rel=1e-8)
    np.testing.assert_allclose(pmf.getEnsembleEnergies(context), members, rtol=1e-9)

    # New weights reach the live Context through updateParametersInContext.
    weights2 = [[w * 0.5 for w in ws] for ws in weights]
    pmf.setEnsembleParameters(weights2, biases, activation="softplus")
    pmf.updateParametersInContext(context)
    members2 = [mlp_forward(w, b, x, "softplus")[0] for w, b in zip(weights2, biases)]
    assert energy(context, pos) == pytest.approx(np.mean(members2), rel=1e-9)


def test_forces_are_minus_gradient(platform_name):
    pmf = cg.PMFForce()
    pmf.setModelBytes(cg.MLPEnsemble([8, 32, 1], 2, "silu", seed=3).to_bytes())
    pmf.addDistance(0, 1)
    pmf.addAngle(0, 1, 2)
    pmf.addDihedral(0, 1, 2, 3)
    pmf.addCoordinate(4, 1)
    pmf.addCoordinate(5, 0, 2.0)
    pmf.addDistance(3, 5)
    context = make_context(system_with(6, pmf), platform_name)
    pos = RNG.uniform(-0.6, 0.6, size=(6, 3))
    f = forces(context, pos)
    h = 1e-5
    fd = np.zeros_like(pos)
    for i in range(6):
        for k in range(3):
            p, m = pos.copy(), pos.copy()
            p[i, k] += h
            m[i, k] -= h
            fd[i, k] = -(energy(context, p) - energy(context, m)) / (2 * h)
    np.testing.assert_allclose(f, fd, atol=1e-5 * max(1.0, np.abs(fd).max()))


def test_serialization_round_trip_identical_energies(tmp_path):
    pmf = cg.PMFForce()
    pmf.setModelBytes(cg.MLPEnsemble([4, 16, 1], 3, "sigmoid", seed=1).to_bytes())
    pmf.addDihedral(0, 1, 2, 3)
    pmf.addDihedral(1, 2, 3, 4)
    pmf.setForceGroup(2)
    system = system_with(5, pmf)
    xml = openmm.XmlSerializer.serialize(system)
    path = tmp_path / "system.xml"
    path.write_text(xml)
    copy = openmm.XmlSerializer.deserialize(path.read_text())
    restored = cg.PMFForce.cast(copy.getForce(0))
    assert cg.PMFForce.isinstance(copy.getForce(0))
    assert restored.getModelBytes() == pmf.getModelBytes()
    assert restored.getForceGroup() == 2
    assert restored.getFeatureParticles(1) == (1, 2, 3, 4)
    pos = RNG.normal(size=(5, 3))
    assert energy(make_context(system, "Reference"), pos) == energy(make_context(copy, "Reference"), pos)


def test_mixed_precision_from_python():
    """setPrecision("mixed") from Python: the energy moves by float rounding only, forces stay the
    gradient of the energy, it survives XML, and a bad name is refused naming the argument."""
    def pmf(precision):
        f = cg.PMFForce()
        f.setModelBytes(cg.MLPEnsemble([4, 64, 32, 1], 4, "sigmoid", seed=3).to_bytes())
        f.addDihedral(0, 1, 2, 3)
        f.addDihedral(1, 2, 3, 4)
        f.setPrecision(precision)
        return f
    mixed = pmf("mixed")
    assert mixed.getPrecision() == "mixed" and pmf("double").getPrecision() == "float64"
    c64, cmixed = make_context(system_with(5, pmf("float64")), "Reference"), make_context(system_with(5, mixed), "CPU")
    for _ in range(5):
        pos = RNG.normal(size=(5, 3))
        e64, emixed = energy(c64, pos), energy(cmixed, pos)
        assert emixed != e64 and abs(emixed - e64) < 1e-5 * max(1.0, abs(e64))
        np.testing.assert_allclose(forces(cmixed, pos), forces(c64, pos), atol=1e-4)
    copy = openmm.XmlSerializer.deserialize(openmm.XmlSerializer.serialize(system_with(5, pmf("mixed"))))
    assert cg.PMFForce.cast(copy.getForce(0)).getPrecision() == "mixed"
    with pytest.raises(openmm.OpenMMException, match="precision"):
        pmf("float64").setPrecision("half")


def test_model_file_on_disk(tmp_path):
    ensemble = cg.MLPEnsemble([2, 8, 1], 2, "tanh", seed=4)
    path = str(tmp_path / "pmf.safetensors")
    ensemble.save(path, info={"note": "test"})
    assert os.listdir(tmp_path) == ["pmf.safetensors"]  # atomic write leaves no temp file
    pmf = cg.PMFForce(path)
    assert pmf.getModelBytes() == open(path, "rb").read()
    assert cg._core.read_model_info(pmf.getModelBytes())["info"] == {"note": "test"}


def test_clear_errors(tmp_path):
    pmf = cg.PMFForce()
    with pytest.raises(openmm.OpenMMException, match="modelBytes"):
        pmf.setModelBytes(b"garbage")
    with pytest.raises(openmm.OpenMMException, match="appears twice"):
        pmf.addAngle(0, 1, 0)
    with pytest.raises(openmm.OpenMMException, match="axis"):
        pmf.addCoordinate(0, 5)
    with pytest.raises(openmm.OpenMMException, match="modelFile"):
        cg.PMFForce("/nonexistent.safetensors")
    with pytest.raises(TypeError, match="bytes"):
        pmf.setModelBytes("a str, not bytes")
    pmf.setModelBytes(cg.MLPEnsemble([3, 4, 1], 1).to_bytes())
    pmf.addDistance(0, 1)
    with pytest.raises(openmm.OpenMMException, match="expects 3"):
        make_context(system_with(2, pmf), "Reference")
    pmf2 = cg.PMFForce()
    pmf2.setModelBytes(cg.MLPEnsemble([1, 4, 1], 1).to_bytes())
    pmf2.addDistance(0, 5)
    # The System owns pmf2 once it is added (OpenMM's addForce): keep it alive while pmf2 is used below.
    system2 = system_with(2, pmf2)
    with pytest.raises(openmm.OpenMMException, match="out of range"):
        make_context(system2, "Reference")
    # A NaN weight is refused when the model is set (it would only show up later as a NaN energy): from arrays
    # as soon as the ensemble is built from them, naming the array, and in model bytes naming the tensor.
    weights = [[np.full((4, 1), np.nan), np.ones((1, 4))]]
    biases = [[np.zeros(4), np.zeros(1)]]
    with pytest.raises(cg.CGFlowError, match=r"weights\[0\]\[0\]: has a non-finite value"):
        pmf2.setEnsembleParameters(weights, biases)
    cg.MLPEnsemble([1, 4, 1], 1).save(str(tmp_path / "good.cgf"))
    tensors, metadata = cg.load_safetensors(str(tmp_path / "good.cgf"))
    weight = np.array(tensors["members.0.layers.0.weight"])
    weight[0, 0] = np.nan
    tensors["members.0.layers.0.weight"] = weight
    cg.save_safetensors(str(tmp_path / "nan.cgf"), tensors, metadata)
    with pytest.raises(openmm.OpenMMException, match="members.0.layers.0.weight' has a non-finite value"):
        pmf2.setModelBytes((tmp_path / "nan.cgf").read_bytes())


def test_cg_langevin_md_is_finite(platform_name):
    n = 10
    pmf = cg.PMFForce()
    pmf.setModelBytes(cg.MLPEnsemble([45, 32, 1], 1, "silu", seed=2).to_bytes())
    for i in range(n):
        for j in range(i + 1, n):
            pmf.addDistance(i, j)
    system = system_with(n, pmf)
    integrator = openmm.LangevinMiddleIntegrator(300, 1, 0.002)
    context = openmm.Context(system, integrator, openmm.Platform.getPlatformByName(platform_name))
    context.setPositions(np.column_stack([0.38 * np.arange(n), np.zeros(n), 0.05 * (np.arange(n) % 2)]))
    integrator.step(500)
    state = context.getState(getPositions=True, getEnergy=True)
    assert np.isfinite(state.getPotentialEnergy()._value)
    assert np.all(np.isfinite(state.getPositions(asNumpy=True)._value))
