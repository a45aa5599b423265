"""Bad input, everywhere (issue 20): the public entry points against the bad inputs they can receive.

Every row of ``docs/results/bad-input-audit.md`` is a :class:`Case` here. A case calls an entry point
(SWIG ``openmmcgflow.plugin``, pybind11 ``openmmcgflow._core``, or a Python workflow function) with one
kind of bad input and checks what happens:

* an error: the exception type, and that its message names the argument (``names``: the argument's
  Python name or the C++ spelling of it, compared without case and underscores, so ``log_w`` matches
  ``logW``);
* ``design``: not an error on purpose (NaN propagating through a batch evaluation, a weight-zero
  sample, an empty batch giving an empty result); ``expect`` checks the documented result;
* ``gap``: what it does now is not a clear error naming the argument. The case asserts the behaviour
  wanted and is ``xfail(strict=True)``, so it fails (XPASS) the day the gap is closed: then drop
  ``gap``, say in ``cpp`` what the fix was (the row's verdict becomes "gap closed") and regenerate
  the table;
* ``covered_by``: an existing test already pins the case; it is listed in the table (and run by the
  table generator to show the message) but not run again here.

Regenerate the table: ``.venv/bin/python python/tests/test_bad_input_audit.py`` prints it as markdown.
"""
import functools
import os
import re
import sys
import tempfile
from dataclasses import dataclass
from typing import Callable, Optional, Tuple

import numpy as np
import openmm
import pytest
from openmm import app

import openmmcgflow as cg
from openmmcgflow import _core as core
from openmmcgflow import active_learning as al
from openmmcgflow import cgbg, datafree, stats, systems

NAN, INF = float("nan"), float("inf")
OpenMMException = openmm.OpenMMException
CGFlowError = cg.CGFlowError


# ----------------------------------------------------------------------------------------------------
# Small objects the cases share, built once on first use.

@functools.lru_cache(maxsize=None)
def ensemble(inputs=2, members=2):
    return cg.MLPEnsemble([inputs, 4, 1], members, "tanh", seed=1)


@functools.lru_cache(maxsize=None)
def flow(dimension=2, context=0):
    config = {"dimension": dimension, "num_layers": 2, "num_bins": 4, "bound": 5.0, "hidden": 8, "seed": 1}
    if context:
        config["context_dimension"] = context
    return cg.Flow(config)


def fresh_flow():
    return cg.Flow({"dimension": 2, "num_layers": 2, "num_bins": 4, "bound": 5.0, "hidden": 8, "seed": 1})


@functools.lru_cache(maxsize=None)
def bg_model():
    """A Boltzmann-generator model file for one particle whose x and y the flow moves."""
    return cg.encode_boltzmann_generator(flow(), cg.PositionMap.cartesian(1, [(0, 0), (0, 1)]))


def system_of(n, *forces):
    system = openmm.System()
    for _ in range(n):
        system.addParticle(1.0)
    for force in forces:
        system.addForce(force)
    return system


def reference():
    return openmm.Platform.getPlatformByName("Reference")


def pmf_force(inputs=2, members=2, features=((0, 1), (0, 2))):
    force = cg.PMFForce()
    force.setModelBytes(ensemble(inputs, members).to_bytes())
    for i, j in features:
        force.addDistance(i, j)
    return force


def bound_generator():
    """A BoltzmannGeneratorIntegrator bound to a 1-particle Context (kept alive on the integrator)."""
    integrator = cg.BoltzmannGeneratorIntegrator(300.0)
    integrator.setModelBytes(bg_model())
    integrator.setRandomNumberSeed(1)
    context = openmm.Context(system_of(1), integrator, reference())
    context.setPositions(np.zeros((1, 3)))
    integrator._context = context
    return integrator


def bound_monte_carlo():
    integrator = cg.CGMonteCarloIntegrator(300.0, 0.1)
    integrator.addMovedCoordinate(0, 0)
    context = openmm.Context(system_of(2), integrator, reference())
    context.setPositions(np.zeros((2, 3)))
    integrator._context = context
    return integrator


def nan_position_forces():
    """Forces of a PMFForce at NaN positions."""
    context = openmm.Context(system_of(3, pmf_force()), openmm.VerletIntegrator(0.001), reference())
    context.setPositions(np.full((3, 3), NAN))
    return context.getState(getForces=True).getForces(asNumpy=True).value_in_unit(
        openmm.unit.kilojoule_per_mole / openmm.unit.nanometer)


def nan_position_energy():
    context = openmm.Context(system_of(3, pmf_force()), openmm.VerletIntegrator(0.001), reference())
    context.setPositions(np.full((3, 3), NAN))
    return context.getState(getEnergy=True).getPotentialEnergy().value_in_unit(openmm.unit.kilojoule_per_mole)


def generator_step_from_nan_positions():
    integrator = bound_generator()
    integrator._context.setPositions(np.full((1, 3), NAN))
    integrator.step(1)
    return integrator._context.getState(getPositions=True).getPositions(asNumpy=True).value_in_unit(
        openmm.unit.nanometer)


def update_with(model_bytes):
    force = pmf_force()
    context = openmm.Context(system_of(3, force), openmm.VerletIntegrator(0.001), reference())
    context.setPositions(np.random.default_rng(0).normal(size=(3, 3)))
    force.setModelBytes(model_bytes)
    force.updateParametersInContext(context)


def context_with(force=None, integrator=None, particles=3):
    forces = () if force is None else (force,)
    return openmm.Context(system_of(particles, *forces), integrator or openmm.VerletIntegrator(0.001), reference())


@functools.lru_cache(maxsize=None)
def alanine_internal():
    return core.InternalCoordinates(core.ZMatrix.alanine_dipeptide())


@functools.lru_cache(maxsize=None)
def alanine_structure():
    """One valid alanine-dipeptide structure (nm), built from internal coordinates."""
    ic = alanine_internal()
    types = ic.zmatrix.column_types
    q = np.array([{"bond": 0.14, "angle": 1.9, "dihedral": 2.0}[t] for t in types])
    q += 0.3 * np.random.default_rng(3).standard_normal(q.size) * np.array([t == "dihedral" for t in types])
    return ic.to_cartesian(q[None])[0][0]


def set_normalization_twice(batch):
    ic = core.InternalCoordinates(core.ZMatrix.alanine_dipeptide())
    ic.set_normalization(batch)
    return ic


@functools.lru_cache(maxsize=None)
def slice_map():
    return core.SliceMap(4, [0, 2])


@functools.lru_cache(maxsize=None)
def dihedral_map():
    return core.DihedralCGMap(4, [(0, 1, 2, 3)])


@functools.lru_cache(maxsize=None)
def cartesian_map():
    return core.PositionMap.cartesian(2, [(0, 0), (1, 1)])


SLOW_FAST = {"slow": {"dimension": 1, "coupling": "elementwise", "num_layers": 2, "hidden": 8},
             "fast": {"hidden": 8}, "map": {"type": "right_stochastic_linear", "num_atoms": 2, "components_per_atom": 1},
             "seed": 2}
ENCODER_DECODER = {"latent_dimension": 1, "data_dimension": 2, "decoder": {"hidden": 8}, "encoder": {"hidden": 8},
                   "seed": 3}


@functools.lru_cache(maxsize=None)
def slow_fast():
    return cg.SlowFastModel(SLOW_FAST)


def fresh_slow_fast():
    return cg.SlowFastModel(SLOW_FAST)


def fresh_encoder_decoder():
    return cg.EncoderDecoderModel(ENCODER_DECODER)


def sampled_trainer(n=4):
    """A ModelTrainer of a 2-D flow that has drawn n samples (ready for reverse_kl_step)."""
    trainer = cg.ModelTrainer(fresh_flow(), {"learning_rate": 1e-3})
    trainer.sample(n, 0)
    return trainer


def trainer_state(**change):
    n = flow().num_parameters
    state = {"step_count": 1, "first_moment": np.zeros(n), "second_moment": np.zeros(n)}
    state.update(change)
    return state


PMF_POSITIONS = np.random.default_rng(0).normal(size=(10, 2, 3))
PMF_FORCES = np.random.default_rng(1).normal(size=(10, 2, 3))


def pmf_trainer(**options):
    return cg.PMFTrainer(cg.MLPEnsemble([1, 4, 1], 2, "tanh", seed=1), [("distance", 0, 1)],
                         dict({"epochs": 1, "batch_size": 4}, **options))


def core_pmf_trainer():
    return core.PMFTrainer(cg.MLPEnsemble([1, 4, 1], 2, "tanh", seed=1), [("distance", 0, 1)], {"epochs": 1})


@functools.lru_cache(maxsize=None)
def double_well():
    return systems.double_well()


@functools.lru_cache(maxsize=None)
def energy_target():
    return cg.EnergyTarget(double_well().system)


def coordinate_energy(**change):
    ts = double_well()
    arguments = dict(system=ts.system, positions=ts.positions, active=ts.active)
    arguments.update(change)
    return datafree.CoordinateEnergy(**arguments)


def topology(atoms):
    top = app.Topology()
    residue = top.addResidue("X", top.addChain())
    for k in range(atoms):
        top.addAtom("X%d" % k, app.element.carbon, residue)
    return top


def proposals(particles):
    return cg.generator.Proposals(np.zeros((2, particles, 3)), np.zeros(2), np.zeros(2), np.zeros(2))


@functools.lru_cache(maxsize=None)
def dcd_file():
    """A 3-frame DCD of one particle."""
    path = os.path.join(tempfile.mkdtemp(prefix="cgflow-audit-"), "three.dcd")
    with open(path, "wb") as handle:
        dcd = app.DCDFile(handle, topology(1), 1.0)
        for k in range(3):
            dcd.writeModel(np.full((1, 3), 0.1 * k) * openmm.unit.nanometer)
    return path


def search(num_points=1, max_steps=10):
    system, _ = al.angle_walker_system(two_member_angle_model(), 2)
    integrator = al.angle_integrator(2, threshold_kt=0.2)
    context = openmm.Context(system, integrator, reference())
    context.setPositions(al.walker_positions(np.zeros((1, 2)), 2))
    return al.search_uncertain_points(context, integrator, num_points, max_steps, progress=False)


@functools.lru_cache(maxsize=None)
def two_member_angle_model():
    return cg.MLPEnsemble([4, 8, 1], 2, "tanh", seed=5).to_bytes()


def temporary_path(name):
    return os.path.join(tempfile.mkdtemp(prefix="cgflow-audit-"), name)


def all_nan(value):
    return bool(np.all(np.isnan(np.asarray(value, dtype=float))))


def empty_result(result):
    arrays = result if isinstance(result, tuple) else (result,)
    return all(np.asarray(a).size == 0 for a in arrays if a is not None)


# ----------------------------------------------------------------------------------------------------
# The cases.

@dataclass
class Case:
    id: str
    section: str
    entry: str
    bad: str
    calls: Tuple[Callable, ...]
    raises: object = None           # exception type raised now (or wanted, for a gap)
    names: Tuple[str, ...] = ()     # the message names one of these (case and underscores ignored)
    gap: str = ""                   # known gap: the behaviour wanted (the case is xfail strict)
    design: str = ""                # not an error on purpose, and why
    expect: Optional[Callable] = None  # predicate on the returned value (design rows; gaps with no error wanted)
    covered_by: str = ""            # an existing test pins this case (not rerun here)
    fixed: bool = False             # made a clear error by this audit (Python-side)
    typed: bool = False             # a type error raised by the binding layer (SWIG / pybind11)
    cpp: str = ""                   # for a gap: where the fix goes; without gap: a closed gap, and its fix


CASES = []


def case(id, section, entry, bad, calls, raises=None, names=(), **more):
    if calls is None:
        calls = ()
    elif callable(calls):
        calls = (calls,)
    if isinstance(names, str):
        names = (names,)
    CASES.append(Case(id, section, entry, bad, tuple(calls), raises, tuple(names), **more))


# -- SWIG: PMFForce ----------------------------------------------------------------------------------
S = "SWIG `PMFForce`"
case("pmf-file-missing", S, "`PMFForce(modelFile)`, `setModelFile`", "file that does not exist",
     lambda: cg.PMFForce("/nonexistent/pmf.safetensors"), OpenMMException, "modelFile",
     covered_by="test_pmf_force.py::test_clear_errors")
case("pmf-file-directory", S, "`setModelFile`", "a directory", lambda: cg.PMFForce().setModelFile(tempfile.gettempdir()),
     OpenMMException, "modelFile")
case("pmf-bytes-garbage", S, "`setModelBytes`", "bytes that are not a model file", lambda: cg.PMFForce().setModelBytes(b"garbage"),
     OpenMMException, "modelBytes", covered_by="test_pmf_force.py::test_clear_errors")
case("pmf-bytes-empty", S, "`setModelBytes`", "empty bytes", lambda: cg.PMFForce().setModelBytes(b""), OpenMMException,
     "modelBytes")
case("pmf-bytes-kind", S, "`setModelBytes`", "a model file of another kind (a flow)",
     lambda: cg.PMFForce().setModelBytes(flow().to_bytes()), OpenMMException, "modelBytes")
case("pmf-bytes-str", S, "`setModelBytes`", "`str` instead of `bytes`", lambda: cg.PMFForce().setModelBytes("abc"),
     TypeError, "modelBytes", covered_by="test_pmf_force.py::test_clear_errors")
case("pmf-bytes-nan", S, "`setModelBytes`, `setEnsembleParameters`", "NaN weights",
     lambda: cg.PMFForce().setEnsembleParameters([[np.full((1, 2), NAN)]], [[np.zeros(1)]]),
     (CGFlowError, OpenMMException), "weight", covered_by="test_pmf_force.py::test_clear_errors")
case("pmf-feature-negative", S, "`addDistance`, `addAngle`, `addDihedral`, `addCoordinate`", "negative particle index",
     (lambda: cg.PMFForce().addDistance(-1, 2), lambda: cg.PMFForce().addAngle(0, -1, 2),
      lambda: cg.PMFForce().addDihedral(0, 1, 2, -3), lambda: cg.PMFForce().addCoordinate(-1, 0)),
     OpenMMException, "particle")
case("pmf-feature-repeated", S, "`addDistance`, `addAngle`, `addDihedral`", "a particle repeated in one feature",
     lambda: cg.PMFForce().addAngle(0, 1, 0), OpenMMException, "particle", covered_by="test_pmf_force.py::test_clear_errors")
case("pmf-coordinate-axis", S, "`addCoordinate`", "axis not 0, 1, 2", lambda: cg.PMFForce().addCoordinate(0, 5),
     OpenMMException, "axis", covered_by="test_pmf_force.py::test_clear_errors")
case("pmf-coordinate-period", S, "`addCoordinate`", "period < 0, NaN or inf",
     tuple(lambda p=p: cg.PMFForce().addCoordinate(0, 0, p) for p in (-1.0, NAN, INF)), OpenMMException, "period")
case("pmf-feature-overflow", S, "`addDistance` (any int argument)", "a float, or an integer beyond C int",
     (lambda: cg.PMFForce().addDistance(0.5, 1), lambda: cg.PMFForce().addDistance(2 ** 40, 1)),
     (TypeError, OverflowError), "argument 2", typed=True)
case("pmf-feature-index", S, "`getFeatureType`, `getFeatureParticles`, `getFeatureAxis`, `getFeaturePeriod`, "
     "`setFeatureParticles`", "feature index out of range",
     (lambda: cg.PMFForce().getFeatureParticles(-1), lambda: cg.PMFForce().getFeatureType(5),
      lambda: cg.PMFForce().setFeatureParticles(5, [0, 1])), OpenMMException, "feature index")
case("pmf-set-particles-count", S, "`setFeatureParticles`", "wrong number of particles for the feature",
     lambda: pmf_force().setFeatureParticles(0, [0, 1, 2]), OpenMMException, "particles")
case("pmf-set-particles-negative", S, "`setFeatureParticles`", "negative particle index",
     lambda: pmf_force().setFeatureParticles(0, [0, -1]), OpenMMException, "particle")
case("pmf-set-particles-type", S, "`setFeatureParticles`, `addParticleGroup`", "non-integer particles",
     lambda: pmf_force().setFeatureParticles(0, ["a", 1]), TypeError, "particles")
case("pmf-group-empty", S, "`addParticleGroup`", "empty group", lambda: cg.PMFForce().addParticleGroup([]),
     OpenMMException, "particles")
case("pmf-group-negative", S, "`addParticleGroup`", "negative particle index",
     lambda: cg.PMFForce().addParticleGroup([-1, 0]), OpenMMException, "particle")


def groups(*lists):
    force = cg.PMFForce()
    for particles in lists:
        force.addParticleGroup(particles)
    return force


case("pmf-group-mismatch", S, "`addParticleGroup`", "group size differs from the first group, or groups overlap",
     (lambda: groups([0, 1], [2, 3, 4]), lambda: groups([0, 1], [1, 2])), OpenMMException, "particle group")
case("pmf-group-index", S, "`getParticleGroup`", "group index out of range", lambda: groups([0, 1]).getParticleGroup(9),
     OpenMMException, "group index")
case("pmf-precision", S, "`setPrecision`", "unknown precision name", lambda: cg.PMFForce().setPrecision("half"),
     OpenMMException, "precision", covered_by="test_pmf_force.py::test_mixed_precision_from_python")


def force_without_model():
    force = cg.PMFForce()
    force.addDistance(0, 1)
    return force


def force_without_features():
    force = cg.PMFForce()
    force.setModelBytes(ensemble().to_bytes())
    return force


case("pmf-context-no-model", S, "`Context(system with PMFForce)`", "no model set",
     lambda: context_with(force_without_model()), OpenMMException, "model")
case("pmf-context-no-features", S, "`Context(system with PMFForce)`", "no features", lambda: context_with(force_without_features()),
     OpenMMException, "features")
case("pmf-context-inputs", S, "`Context(system with PMFForce)`", "features give another input size than the model's",
     lambda: context_with(pmf_force(features=((0, 1),))), OpenMMException, "model",
     covered_by="test_pmf_force.py::test_clear_errors")
case("pmf-context-particle", S, "`Context(system with PMFForce)`", "feature particle beyond the System",
     lambda: context_with(pmf_force(features=((0, 1), (0, 7)))), OpenMMException, "out of range",
     covered_by="test_pmf_force.py::test_clear_errors")
case("pmf-update-architecture", S, "`updateParametersInContext`", "a model of another architecture or input size",
     (lambda: update_with(ensemble(2, 3).to_bytes()), lambda: update_with(ensemble(3, 2).to_bytes())),
     OpenMMException, "model")
case("pmf-ensemble-no-context", S, "`getEnsembleEnergies`, `getEnsembleStd`, `getGroupEnergies`, ...",
     "a Context without this force", lambda: cg.PMFForce().getEnsembleEnergies(context_with()), OpenMMException,
     "context")
case("pmf-cast", S, "`PMFForce.cast`", "a Force that is not a PMFForce", lambda: cg.PMFForce.cast(openmm.HarmonicBondForce()),
     OpenMMException, "force",
     cpp="python/cgflowplugin.i, `%extend PMFForce::cast`: `dynamic_cast` to a pointer; a null one throws "
     "`OpenMMException(\"force: <class> is not a PMFForce\")` (the class demangled from `typeid`)")
case("pmf-nan-positions-energy", S, "energy of a Context with a PMFForce", "NaN positions", nan_position_energy,
     design="NaN positions give a NaN energy, as for OpenMM's own forces", expect=all_nan)
case("pmf-nan-positions-forces", S, "forces of a Context with a PMFForce", "NaN positions", nan_position_forces,
     expect=all_nan,
     design="NaN positions give NaN forces, like the energy (a degenerate geometry, coincident or collinear "
     "particles, still gives 0)",
     cpp="core/src/coords/Features.cpp, `backpropFeatures`: the degenerate-geometry guards are written `!(r <= "
     "0)` (and alike for the angle and the dihedral), so NaN positions give NaN gradients while coincident or "
     "collinear particles still give 0; the same in the GPU kernel platforms/common/src/kernels/pmfFeatures.cc "
     "(`r <= 0 ? 0 : d / r`). C++ test `Features.NaNPositionsGiveNaNGradient`")

# -- SWIG: BoltzmannGeneratorIntegrator ------------------------------------------------------------------
S = "SWIG `BoltzmannGeneratorIntegrator`"
BG = cg.BoltzmannGeneratorIntegrator
case("bg-temperature", S, "constructor", "temperature < 0",
     lambda: BG(-1.0), OpenMMException, "temperature",
     covered_by="test_bg_integrator.py::test_bad_models_and_systems_give_clear_errors")
case("bg-temperature-nonfinite", S, "constructor, `setTemperature` (also while bound)", "temperature 0, NaN or inf",
     (lambda: BG(0.0), lambda: BG(NAN), lambda: BG(INF), lambda: BG(300.0).setTemperature(0.0),
      lambda: bound_generator().setTemperature(NAN)), OpenMMException, "temperature")
case("bg-mode", S, "constructor, `setMode`", "mode not Importance (0) or Metropolis (1)",
     (lambda: BG(300.0, 7), lambda: BG(300.0).setMode(-1)), OpenMMException, "mode")
case("bg-file-missing", S, "constructor, `setModelFile`", "file that does not exist",
     lambda: BG("/nonexistent/model.safetensors", 300.0), OpenMMException, "modelFile",
     covered_by="test_bg_integrator.py::test_bad_models_and_systems_give_clear_errors")
case("bg-bytes-kind", S, "`setModelBytes`", "a model file of another kind (a flow)",
     lambda: BG(300.0).setModelBytes(flow().to_bytes()), OpenMMException, "modelBytes",
     covered_by="test_bg_integrator.py::test_bad_models_and_systems_give_clear_errors")
case("bg-bytes-garbage", S, "`setModelBytes`", "bytes that are not a model file, an ensemble file, or a `str`",
     (lambda: BG(300.0).setModelBytes(b"abc"), lambda: BG(300.0).setModelBytes(ensemble().to_bytes()),
      lambda: BG(300.0).setModelBytes("abc")), (OpenMMException, TypeError), "modelBytes")
case("bg-bytes-bound", S, "`setModelBytes`, `setModelFile`", "called while bound to a Context",
     lambda: bound_generator().setModelBytes(bg_model()), OpenMMException, "bound",
     covered_by="test_bg_integrator.py::test_bad_models_and_systems_give_clear_errors")
case("bg-block-size", S, "`setBlockSize`", "block size 0", lambda: BG(300.0).setBlockSize(0),
     OpenMMException, "blockSize", covered_by="test_bg_integrator.py::test_bad_models_and_systems_give_clear_errors")
case("bg-seed", S, "`setRandomNumberSeed`", "negative seed", lambda: BG(300.0).setRandomNumberSeed(-1),
     design="any int is a seed (0: from the clock), as for OpenMM's integrators; documented in the header")
case("bg-condition-nonfinite", S, "`setConditionVector`", "NaN entry", lambda: BG(300.0).setConditionVector([NAN]),
     OpenMMException, "condition")
case("bg-condition-type", S, "`setConditionVector`", "not numbers", lambda: BG(300.0).setConditionVector(["a"]),
     TypeError, "values")
case("bg-condition-length", S, "`setConditionVector`, `Context(...)`", "length differs from a conditional model's "
     "condition", None, OpenMMException, "condition vector",
     covered_by="test_bg_integrator.py::test_conditional_model_uses_the_condition_vector")
case("bg-condition-unconditional", S, "`setConditionVector`", "a condition for an unconditional model",
     lambda: bound_generator().setConditionVector([1.0]), OpenMMException, "condition vector")
case("bg-no-model-getters", S, "`getModelDimension`, `getModelNumParticles`, `getConditionDimension`", "no model set",
     lambda: BG(300.0).getModelDimension(), design="documented: 0 until a model is set", expect=lambda r: r == 0)
case("bg-context-no-model", S, "`Context(system, integrator)`", "no model set",
     lambda: context_with(integrator=BG(300.0), particles=1), OpenMMException, "model",
     covered_by="test_bg_integrator.py::test_bad_models_and_systems_give_clear_errors")


def generator_on(particles):
    integrator = BG(300.0)
    integrator.setModelBytes(bg_model())
    return context_with(integrator=integrator, particles=particles)


case("bg-context-particles", S, "`Context(system, integrator)`", "model covers another particle count than the System",
     lambda: generator_on(2), OpenMMException, "particles",
     covered_by="test_bg_integrator.py::test_bad_models_and_systems_give_clear_errors")
case("bg-unbound", S, "`step`, `evaluateProposals`", "not bound to a Context",
     (lambda: BG(300.0).step(1), lambda: BG(300.0).evaluateProposals(1)), OpenMMException, "context")
case("bg-step-negative", S, "`step`", "steps < 0", lambda: bound_generator().step(-1), OpenMMException, "steps")
case("bg-proposals-count", S, "`evaluateProposals`", "n < 1",
     (lambda: bound_generator().evaluateProposals(0), lambda: bound_generator().evaluateProposals(-3)),
     OpenMMException, "n must")
case("bg-nan-positions", S, "`step`", "NaN positions in the Context",
     generator_step_from_nan_positions, OpenMMException, "position",
     cpp="openmmapi/src/BoltzmannGeneratorIntegrator.cpp, `refreshCurrentState` (Metropolis mode, when the "
     "Context's state changed): every coordinate the proposals copy from the Context (a Cartesian map's "
     "coordinates in no slot; an internal map's all, for the centroid) must be finite, else "
     "`OpenMMException(\"BoltzmannGeneratorIntegrator::step: positions: particle i has a non-finite z coordinate "
     "...\")`")
case("bg-cast", S, "`BoltzmannGeneratorIntegrator.cast`, `CGMonteCarloIntegrator.cast`",
     "an Integrator of another class",
     (lambda: BG.cast(openmm.VerletIntegrator(0.001)), lambda: cg.CGMonteCarloIntegrator.cast(openmm.VerletIntegrator(0.001))),
     OpenMMException, "integrator",
     cpp="python/cgflowplugin.i, the integrators' `%extend ... cast`: as for `PMFForce.cast` ('integrator: "
     "<class> is not a BoltzmannGeneratorIntegrator')")

# -- SWIG: CGMonteCarloIntegrator ----------------------------------------------------------------------
S = "SWIG `CGMonteCarloIntegrator`"
MC = cg.CGMonteCarloIntegrator
case("mc-temperature", S, "constructor, `setTemperature`", "temperature <= 0, NaN",
     (lambda: MC(0.0, 0.1), lambda: MC(-1.0, 0.1), lambda: MC(NAN, 0.1), lambda: MC(300.0, 0.1).setTemperature(0.0),
      lambda: bound_monte_carlo().setTemperature(-5.0)), OpenMMException, "temperature")
case("mc-proposal-scale", S, "constructor", "proposalScale < 0",
     lambda: MC(300.0, -0.1), OpenMMException, "proposalScale", covered_by="test_cg_monte_carlo.py::test_clear_errors")
case("mc-proposal-scale-set", S, "constructor, `setProposalScale`", "proposalScale 0 or NaN",
     (lambda: MC(300.0, 0.0), lambda: MC(300.0, 0.1).setProposalScale(NAN)), OpenMMException, "proposalScale")
case("mc-moved-particle", S, "`addMovedCoordinate`", "negative particle", lambda: MC(300.0, 0.1).addMovedCoordinate(-1, 0),
     OpenMMException, "particle")
case("mc-moved-axis", S, "`addMovedCoordinate`", "axis not 0, 1, 2", lambda: MC(300.0, 0.1).addMovedCoordinate(0, 3),
     OpenMMException, "axis")
case("mc-moved-period", S, "`addMovedCoordinate`", "period < 0 or NaN",
     (lambda: MC(300.0, 0.1).addMovedCoordinate(0, 0, -1.0), lambda: MC(300.0, 0.1).addMovedCoordinate(0, 0, NAN)),
     OpenMMException, "period")


def moved_twice():
    integrator = MC(300.0, 0.1)
    integrator.addMovedCoordinate(0, 0)
    integrator.addMovedCoordinate(0, 0)


case("mc-moved-duplicate", S, "`addMovedCoordinate`", "the same coordinate twice", moved_twice, OpenMMException, "particle")
case("mc-moved-bound", S, "`addMovedCoordinate`", "called while bound to a Context",
     lambda: bound_monte_carlo().addMovedCoordinate(1, 1), OpenMMException, "context",
     cpp="openmmapi/src/CGMonteCarloIntegrator.cpp, `addMovedCoordinate`: throws while bound to a Context "
     "('cannot add a moved coordinate while bound to a Context; add it before creating the Context'), like "
     "BoltzmannGeneratorIntegrator's `checkNotBound`")


def bounded(lower, upper, period=0.0, index=0):
    integrator = MC(300.0, 0.1)
    integrator.addMovedCoordinate(0, 0, period)
    integrator.setMovedCoordinateBounds(index, lower, upper)


case("mc-bounds-index", S, "`setMovedCoordinateBounds`, `getMovedParticle`, `getMovedAxis`, ...",
     "coordinate index out of range", (lambda: bounded(0.0, 1.0, index=9), lambda: MC(300.0, 0.1).getMovedParticle(-1)),
     OpenMMException, "index")
case("mc-bounds-order", S, "`setMovedCoordinateBounds`", "lower >= upper, NaN, or bounds on a periodic coordinate",
     (lambda: bounded(1.0, 0.0), lambda: bounded(NAN, 1.0), lambda: bounded(0.0, 1.0, period=1.0)), OpenMMException,
     ("lower", "periodic"))
case("mc-threshold", S, "`setUncertaintyThreshold`", "threshold < 0 or NaN",
     (lambda: MC(300.0, 0.1).setUncertaintyThreshold(-1.0), lambda: MC(300.0, 0.1).setUncertaintyThreshold(NAN)),
     OpenMMException, "threshold")
case("mc-threshold-no-ensemble", S, "`setUncertaintyThreshold` (bound), `Context(...)`",
     "threshold > 0 without a PMFForce of >= 2 members", lambda: bound_monte_carlo().setUncertaintyThreshold(1.0),
     OpenMMException, "threshold")
case("mc-minimum-steps", S, "`setMinimumSteps`", "steps < 0", lambda: MC(300.0, 0.1).setMinimumSteps(-1), OpenMMException,
     "steps")
case("mc-seed", S, "`setRandomNumberSeed`", "negative seed", lambda: MC(300.0, 0.1).setRandomNumberSeed(-1),
     design="any int is a seed (0: a new one per Context); documented")
case("mc-found-index", S, "`getFoundPointCoordinates`, `getFoundPointWalker`, ...", "index out of range",
     lambda: MC(300.0, 0.1).getFoundPointCoordinates(0), OpenMMException, "index")
case("mc-unbound", S, "`step`", "not bound to a Context", lambda: MC(300.0, 0.1).step(1), OpenMMException, "context")
case("mc-step-negative", S, "`step`", "steps < 0", lambda: bound_monte_carlo().step(-1), OpenMMException, "steps")


def monte_carlo_context(particle=None):
    integrator = MC(300.0, 0.1)
    if particle is not None:
        integrator.addMovedCoordinate(particle, 0)
    return context_with(integrator=integrator, particles=2)


case("mc-context-particle", S, "`Context(system, integrator)`", "moved particle beyond the System, or none moved",
     (lambda: monte_carlo_context(5), lambda: monte_carlo_context()), OpenMMException, ("particle", "moved coordinates"))

# -- Python: openmmcgflow.generator --------------------------------------------------------------------
S = "Python `openmmcgflow.generator`"
case("gen-proposals-n", S, "`evaluate_proposals`", "n < 1", lambda: cg.evaluate_proposals(bound_generator(), 0),
     ValueError, "n:")
case("gen-proposals-integrator", S, "`evaluate_proposals`, `BoltzmannGeneratorReporter.report`",
     "an integrator that is not (and holds no) BoltzmannGeneratorIntegrator",
     lambda: cg.evaluate_proposals(openmm.VerletIntegrator(0.001), 5), ValueError, "integrator")
case("gen-write-topology", S, "`write_proposals`", "topology with another atom count",
     lambda: cg.write_proposals(proposals(2), topology(3), temporary_path("p.dcd"), temporary_path("p.csv")),
     ValueError, "topology")
case("gen-reporter-interval", S, "`BoltzmannGeneratorReporter`", "report_interval < 1",
     lambda: cg.BoltzmannGeneratorReporter(temporary_path("r.dcd"), temporary_path("r.csv"), report_interval=0),
     ValueError, "report_interval")

# -- pybind11: MLPEnsemble and model files ----------------------------------------------------------------
S = "pybind11 `MLPEnsemble`, model files"
case("mlp-widths-short", S, "`MLPEnsemble(widths, ...)`", "fewer than 2 widths",
     (lambda: cg.MLPEnsemble([], 1), lambda: cg.MLPEnsemble([2], 1)), CGFlowError, "widths")
case("mlp-widths-nonpositive", S, "`MLPEnsemble(widths, ...)`", "a width <= 0",
     (lambda: cg.MLPEnsemble([2, 0, 1], 1), lambda: cg.MLPEnsemble([2, -3, 1], 1)), CGFlowError, "widths")
case("mlp-widths-output", S, "`MLPEnsemble(widths, ...)`", "last width not 1", lambda: cg.MLPEnsemble([2, 4, 3], 1),
     CGFlowError, "widths",
     cpp="python/src/BindModels.cpp, `MLPEnsemble.__init__`: 'widths: the last width is the output and must be "
     "1' before the members are built")
case("mlp-members", S, "`MLPEnsemble(..., num_members)`", "num_members < 1", lambda: cg.MLPEnsemble([2, 4, 1], 0),
     CGFlowError, "num_members")
case("mlp-activation", S, "`MLPEnsemble.from_arrays`", "unknown activation",
     lambda: cg.MLPEnsemble.from_arrays([[np.ones((1, 3))]], [[np.ones(1)]], activation="swishy"), CGFlowError,
     "activation", covered_by="test_core_io.py::test_from_arrays_names_the_bad_argument")
case("mlp-activation-init", S, "`MLPEnsemble(widths, num_members, activation)`", "unknown activation",
     lambda: cg.MLPEnsemble([2, 4, 1], 1, "bogus"), CGFlowError, "activation")
case("mlp-output-activation", S, "`MLPEnsemble`, `MLPEnsemble.from_arrays`", "unknown output_activation",
     lambda: cg.MLPEnsemble([2, 4, 1], 1, "tanh", "bogus"), CGFlowError, "output_activation",
     cpp="python/src/BindModels.cpp (constructor and `ensembleFromArrays`): `parseActivationArgument` prefixes "
     "the parse error with `activation:` or `output_activation:`")
case("mlp-seed", S, "`MLPEnsemble(..., seed)` (and every `seed` of `_core`: `Flow.sample`, `initialize_parameters`, "
     "`ModelTrainer.sample`, `SlowFastModel.sample`, `stats.bootstrap_*`)", "negative seed",
     (lambda: cg.MLPEnsemble([2, 4, 1], 1, seed=-1), lambda: flow().sample(1, -1),
      lambda: fresh_flow().initialize_parameters(-1)), TypeError, "seed", typed=True)
case("mlp-evaluate-shape", S, "`MLPEnsemble.evaluate`", "X with the wrong number of columns, or 1-D",
     (lambda: ensemble().evaluate(np.zeros((3, 5))), lambda: ensemble().evaluate(np.zeros(2))), CGFlowError, "X")
case("mlp-evaluate-3d", S, "`MLPEnsemble.evaluate`", "a 3-D array", lambda: ensemble().evaluate(np.zeros((2, 2, 2))),
     TypeError, "X", typed=True)
case("mlp-evaluate-empty", S, "`MLPEnsemble.evaluate`", "empty batch", lambda: ensemble().evaluate(np.zeros((0, 2))),
     design="an empty batch gives empty means and stds", expect=empty_result)
case("mlp-evaluate-nan", S, "`MLPEnsemble.evaluate`, `evaluate_one`", "NaN inputs",
     lambda: ensemble().evaluate(np.full((1, 2), NAN))[0], design="NaN propagates to that sample's mean and std",
     expect=all_nan)
case("mlp-evaluate-one-length", S, "`MLPEnsemble.evaluate_one`", "wrong length", lambda: ensemble().evaluate_one(np.zeros(3)),
     CGFlowError, "x:")
case("mlp-arrays-empty", S, "`MLPEnsemble.from_arrays`", "no members", lambda: cg.MLPEnsemble.from_arrays([], []),
     CGFlowError, "weights")
case("mlp-arrays-shape", S, "`MLPEnsemble.from_arrays`, `set_ensemble_parameters`", "layer shapes that do not chain",
     lambda: cg.MLPEnsemble.from_arrays([[np.ones((4, 3)), np.ones((1, 5))]], [[np.ones(4), np.ones(1)]]), CGFlowError,
     "weights", covered_by="test_core_io.py::test_from_arrays_names_the_bad_argument")
case("mlp-arrays-nan", S, "`MLPEnsemble.from_arrays`", "NaN or inf weights",
     lambda: cg.MLPEnsemble.from_arrays([[np.full((1, 2), NAN)]], [[np.zeros(1)]]), CGFlowError, "weights",
     cpp="python/src/BindModels.cpp, `ensembleFromArrays`: 'weights[m][l]: has a non-finite value' (and "
     "`biases[m][l]`)")
case("mlp-bytes-kind", S, "`MLPEnsemble.from_bytes`, `MLPEnsemble.load`", "a model file of another kind",
     lambda: cg.MLPEnsemble.from_bytes(flow().to_bytes()), CGFlowError, "kind")
case("safetensors-truncated", S, "`load_safetensors`", "a truncated file", None, CGFlowError, "truncated",
     covered_by="test_core_io.py::test_truncated_file_is_rejected")
case("mlp-bytes-truncated", S, "`MLPEnsemble.from_bytes`", "bytes too short for a model file",
     lambda: cg.MLPEnsemble.from_bytes(b"junk"), CGFlowError, "bytes")
case("mlp-load-missing", S, "`MLPEnsemble.load`, `Flow.load`, `load_flow_trainer`, `load_safetensors`", "path that does not exist",
     (lambda: cg.MLPEnsemble.load("/nonexistent/x.safetensors"), lambda: cg.Flow.load("/nonexistent/x.safetensors"),
      lambda: core.load_flow_trainer("/nonexistent/x.safetensors"), lambda: core.load_safetensors("/nonexistent/x.safetensors")),
     CGFlowError, "/nonexistent/x.safetensors")
case("mlp-save-directory", S, "`MLPEnsemble.save`, `Flow.save`, `write_file_atomic`, `save_safetensors`",
     "a directory that does not exist",
     (lambda: ensemble().save("/nonexistent/dir/x.safetensors"), lambda: core.write_file_atomic("/nonexistent/dir/a", b"x")),
     CGFlowError, "/nonexistent/dir/")
case("mlp-info-array", S, "`to_bytes(info)`, `save(info)` (every model kind)", "info that is not a dict",
     lambda: ensemble().to_bytes(info=[1, 2]), CGFlowError, "info")
case("model-info-garbage", S, "`read_model_info`", "bytes that are not a model file", lambda: core.read_model_info(b"123456789"),
     CGFlowError, "model bytes")
case("model-info-str", S, "`read_model_info`, every `bytes` argument of `_core`", "`str` instead of `bytes`",
     lambda: core.read_model_info("abc"), TypeError, "data", typed=True)
case("safetensors-dtype", S, "`save_safetensors`", "an array of an unsupported dtype (complex, str)",
     (lambda: core.save_safetensors(temporary_path("x.st"), {"a": np.zeros(2, dtype=np.complex128)}),
      lambda: core.save_safetensors(temporary_path("x.st"), {"a": "text"})), CGFlowError, "tensors['a']")


def junk_safetensors():
    path = temporary_path("junk.safetensors")
    with open(path, "wb") as handle:
        handle.write(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json}      ")
    return core.load_safetensors(path)


case("safetensors-header", S, "`load_safetensors`", "a header that is not JSON", junk_safetensors, CGFlowError,
     "junk.safetensors")

# -- cross-cutting: JSON-like arguments ----------------------------------------------------------------
S = "pybind11 config dicts (cross-cutting)"
case("json-nan-config", S, "`Flow(config)`, `ModelTrainer(options)`, `PMFTrainer(options)`, `SlowFastModel(config)`, "
     "`EncoderDecoderModel(config)`, `PositionMap.from_json`", "NaN or inf in the dict",
     (lambda: cg.Flow({"dimension": 2, "bound": NAN}), lambda: cg.ModelTrainer(fresh_flow(), {"learning_rate": NAN}),
      lambda: pmf_trainer(learning_rate=NAN), lambda: cg.SlowFastModel(dict(SLOW_FAST, seed=INF)),
      lambda: core.PositionMap.from_json({"type": "cartesian", "num_particles": NAN})),
     CGFlowError, ("config", "options", "learning_rate", "bound", "seed", "num_particles"),
     cpp="python/src/Bindings.h, `pyToJson(obj, name)`: `json.dumps(obj, allow_nan=False)`; on failure the "
     "value JSON cannot hold is located and the CGFlowError names the argument and the key (\"config['bound']: "
     "nan is not a finite number\"); every caller in python/src/Bind*.cpp passes its argument's name (config, "
     "options, info)")
case("json-info", S, "`to_bytes(info)`, `save(info)`, `encode_boltzmann_generator(info)`",
     "info with NaN or a value that is not JSON",
     (lambda: ensemble().to_bytes(info={"a": object()}),
      lambda: core.encode_boltzmann_generator(flow(), core.PositionMap.cartesian(1, [(0, 0), (0, 1)]), {"x": NAN})),
     CGFlowError, "info",
     cpp="python/src/Bindings.h, `pyToJson`: as above (\"info['a']: Object of type object is not JSON "
     "serializable\")")
case("json-not-dict", S, "`Flow(config)`, `SlowFastModel(config)`, ...", "a list instead of a dict",
     lambda: cg.Flow([1]), TypeError, "config", typed=True)

# -- pybind11: Flow ------------------------------------------------------------------------------------
S = "pybind11 `Flow`"
case("flow-dimension", S, "`Flow(config)`", "dimension missing, 0 or negative",
     (lambda: cg.Flow({}), lambda: cg.Flow({"dimension": 0}), lambda: cg.Flow({"dimension": -1})), CGFlowError,
     "dimension")
case("flow-dimension-type", S, "`Flow(config)`", "dimension not an integer", lambda: cg.Flow({"dimension": "two"}),
     CGFlowError, "dimension")
case("flow-unknown-key", S, "`Flow(config)`", "an unknown key", lambda: cg.Flow({"dimension": 2, "hiden": 3}),
     CGFlowError, "hiden", covered_by="test_flows.py::test_bad_input_gives_clear_errors")
case("flow-layers", S, "`Flow(config)`", "num_layers < 1", lambda: cg.Flow({"dimension": 2, "num_layers": -1}),
     CGFlowError, "num_layers")
case("flow-bins", S, "`Flow(config)`", "num_bins < 1", lambda: cg.Flow({"dimension": 2, "num_bins": 0}), CGFlowError,
     "num_bins")
case("flow-bound", S, "`Flow(config)`", "bound <= 0", lambda: cg.Flow({"dimension": 2, "bound": -1.0}), CGFlowError,
     "bound")
case("flow-hidden", S, "`Flow(config)`", "hidden < 1", lambda: cg.Flow({"dimension": 2, "hidden": 0}), CGFlowError,
     "hidden")
case("flow-circular", S, "`Flow(config)`", "a circular index out of range", lambda: cg.Flow({"dimension": 2, "circular": [5]}),
     CGFlowError, "circular")
case("flow-sample-n", S, "`Flow.sample`, `SlowFastModel.sample`, `EncoderDecoderModel.sample`, `ModelTrainer.sample`",
     "n < 0",
     (lambda: flow().sample(-1, 0), lambda: slow_fast().sample(-1, 0), lambda: fresh_encoder_decoder().sample(-1, 0),
      lambda: cg.ModelTrainer(fresh_flow()).sample(-1, 0)), CGFlowError, "n must")
case("flow-sample-zero", S, "`Flow.sample`, `SlowFastModel.sample`", "n = 0", lambda: flow().sample(0, 0),
     design="an empty batch: empty arrays of the right shape", expect=empty_result)
case("flow-context-unconditional", S, "`sample`, `log_prob`, ... of a Flow", "a context for an unconditional flow",
     lambda: flow().sample(3, 0, context=np.zeros(2)), CGFlowError, "context",
     covered_by="test_flows.py::test_bad_input_gives_clear_errors")
case("flow-context-missing", S, "`sample`, `log_prob`, ... of a conditional Flow", "no context",
     lambda: flow(2, 1).sample(2, 0), CGFlowError, "context")
case("flow-context-shape", S, "`sample`, `log_prob`, ... of a conditional Flow", "context of the wrong width or sample count",
     (lambda: flow(2, 1).sample(2, 0, context=np.zeros(3)), lambda: flow(2, 1).sample(2, 0, context=np.zeros((3, 1))),
      lambda: flow(2, 1).log_prob(np.zeros((2, 2)), context=np.zeros((3, 1)))), CGFlowError, "context")
case("flow-context-nan", S, "`sample`, `log_prob` of a conditional Flow", "NaN context",
     lambda: flow(2, 1).sample(2, 0, context=np.array([NAN]))[1], design="NaN propagates to those samples' x and log q",
     expect=all_nan)
case("flow-x-shape", S, "`Flow.log_prob`, `log_prob_gradients`", "x of the wrong width",
     lambda: flow().log_prob(np.zeros((3, 5))), CGFlowError, "x must", covered_by="test_flows.py::test_bad_input_gives_clear_errors")
case("flow-x-empty", S, "`Flow.log_prob`", "empty batch", lambda: flow().log_prob(np.zeros((0, 2))),
     design="an empty batch gives an empty result", expect=empty_result)
case("flow-x-nan", S, "`Flow.log_prob`, `sample_from_base`", "NaN x or z",
     (lambda: flow().log_prob(np.full((1, 2), NAN)), lambda: flow().sample_from_base(np.full((1, 2), NAN))[1]),
     design="NaN propagates to that sample's log q (trainers drop such samples and report them)", expect=all_nan)
case("flow-x-inf", S, "`Flow.log_prob`", "inf x", lambda: flow().log_prob(np.full((1, 2), INF)),
     design="log q = -inf: the density is zero there", expect=lambda r: bool(np.all(r == -np.inf)))
case("flow-gradient-length", S, "`Flow.log_prob_gradients`", "grad_log_q of another length",
     lambda: flow().log_prob_gradients(np.zeros((2, 2)), np.zeros(3)), CGFlowError, "grad_log_q")
case("flow-base-shape", S, "`Flow.sample_from_base`, `sample_gradients`", "z of the wrong width",
     lambda: flow().sample_from_base(np.zeros((2, 3))), CGFlowError, "z must")
case("flow-sample-gradients", S, "`Flow.sample_gradients`", "grad_x and grad_log_q counts differ from z's",
     lambda: flow().sample_gradients(np.zeros((2, 2)), np.zeros((3, 2)), np.zeros(2)), CGFlowError, "grad_x")
case("flow-parameters-length", S, "`Flow.set_parameters`", "wrong length",
     lambda: fresh_flow().set_parameters(np.zeros(3)), CGFlowError, "parameters",
     covered_by="test_flows.py::test_bad_input_gives_clear_errors")
case("model-parameters-length", S, "`SlowFastModel.set_parameters`, `EncoderDecoderModel.set_parameters`", "wrong length",
     (lambda: fresh_slow_fast().set_parameters(np.zeros(3)), lambda: fresh_encoder_decoder().set_parameters(np.zeros(2))),
     CGFlowError, "parameters")
case("flow-parameters-nan", S, "`Flow.set_parameters`, `EncoderDecoderModel.set_parameters`", "NaN parameters",
     (lambda: fresh_flow().set_parameters(np.full(flow().num_parameters, NAN)),
      lambda: fresh_encoder_decoder().set_parameters(np.full(fresh_encoder_decoder().num_parameters, NAN))),
     CGFlowError, "parameters",
     cpp="python/src/BindFlows.cpp (`Flow.set_parameters`) and python/src/BindDataFree.cpp (both models' "
     "`set_parameters`): `checkFiniteParameters` (python/src/Bindings.h) refuses the first non-finite entry, "
     "'parameters[i] is not finite: nan'")
case("slowfast-parameters-nan", S, "`SlowFastModel.set_parameters`", "NaN parameters",
     lambda: fresh_slow_fast().set_parameters(np.full(slow_fast().num_parameters, NAN)), CGFlowError, "parameters",
     cpp="python/src/BindDataFree.cpp, `SlowFastModel.set_parameters`: the same check, before `setParameters`")
case("flow-layer-index", S, "`Flow.parameter_offset`", "layer index out of range",
     (lambda: flow().parameter_offset(-1), lambda: flow().parameter_offset(99)), CGFlowError, "layer")


def set_attribute(target, name, value):
    setattr(target, name, value)


case("flow-threads", S, "`Flow.num_threads`", "< 1", lambda: set_attribute(fresh_flow(), "num_threads", 0), CGFlowError,
     "numThreads")
case("flow-precision", S, "`Flow.precision`", "unknown name", lambda: set_attribute(fresh_flow(), "precision", "half"),
     CGFlowError, "precision")
case("flow-bytes-kind", S, "`Flow.from_bytes`, `Flow.load`, `SlowFastModel.from_bytes`", "a model file of another kind",
     (lambda: cg.Flow.from_bytes(ensemble().to_bytes()), lambda: cg.SlowFastModel.from_bytes(ensemble().to_bytes())),
     CGFlowError, "kind")
case("flow-bytes-truncated", S, "`Flow.load`", "a truncated file", None, CGFlowError, "truncated",
     covered_by="test_flows.py::test_bad_input_gives_clear_errors")
case("flow-bytes-short", S, "`Flow.from_bytes`", "bytes too short for a model file", lambda: cg.Flow.from_bytes(b"xx"),
     CGFlowError, "bytes")

# -- pybind11: ModelTrainer ---------------------------------------------------------------------------------
S = "pybind11 `ModelTrainer`, `CosineDecaySchedule`"
case("trainer-unknown-key", S, "`ModelTrainer(model, options)`", "an unknown key",
     lambda: cg.ModelTrainer(fresh_flow(), {"learning_rat": 1e-3}), CGFlowError, "learning_rat",
     covered_by="test_flows.py::test_bad_input_gives_clear_errors")
case("trainer-options", S, "`ModelTrainer(model, options)`",
     "learning_rate < 0, optimizer unknown, beta1 >= 1, max_gradient_norm <= 0, warmup_steps < 0",
     (lambda: cg.ModelTrainer(fresh_flow(), {"learning_rate": -1.0}),
      lambda: cg.ModelTrainer(fresh_flow(), {"optimizer": "sgd"}), lambda: cg.ModelTrainer(fresh_flow(), {"beta1": 2.0}),
      lambda: cg.ModelTrainer(fresh_flow(), {"max_gradient_norm": -1.0}),
      lambda: cg.ModelTrainer(fresh_flow(), {"warmup_steps": -1})), CGFlowError,
     ("learning_rate", "optimizer", "beta1", "max_gradient_norm", "warmup_steps"))
case("trainer-drop-largest", S, "`ModelTrainer(model, options)`", "drop_largest_losses < 0",
     lambda: cg.ModelTrainer(fresh_flow(), {"drop_largest_losses": -2}), CGFlowError, "drop_largest_losses",
     covered_by="test_data_free.py::test_trimmed_losses_and_energy_regularization_from_python")
case("trainer-model-type", S, "`ModelTrainer(model)`", "not a trainable model", lambda: cg.ModelTrainer(ensemble()),
     TypeError, "model", typed=True)
case("trainer-before-sample", S, "`ModelTrainer.reverse_kl_step`", "no sample() before the step",
     lambda: cg.ModelTrainer(fresh_flow()).reverse_kl_step(np.zeros(2), np.zeros((2, 2))), CGFlowError, "sample",
     covered_by="test_flows.py::test_bad_input_gives_clear_errors")
case("trainer-energies", S, "`ModelTrainer.reverse_kl_step`", "energies of another count, or 2-D",
     (lambda: sampled_trainer().reverse_kl_step(np.zeros(3), np.zeros((4, 2))),
      lambda: sampled_trainer().reverse_kl_step(np.zeros((4, 1)), np.zeros((4, 2)))), CGFlowError, "energies")
case("trainer-forces", S, "`ModelTrainer.reverse_kl_step`", "forces of the wrong width or count",
     (lambda: sampled_trainer().reverse_kl_step(np.zeros(4), np.zeros((4, 3))),
      lambda: sampled_trainer().reverse_kl_step(np.zeros(4), np.zeros((3, 2)))), CGFlowError, "forces")
case("trainer-beta", S, "`ModelTrainer.reverse_kl_step`", "beta <= 0 or NaN",
     tuple(lambda b=b: sampled_trainer().reverse_kl_step(np.zeros(4), np.zeros((4, 2)), beta=b) for b in (0.0, -1.0, NAN)),
     CGFlowError, "beta")
case("trainer-nan-energies", S, "`ModelTrainer.reverse_kl_step`, `forward_kl_step`", "NaN energies, forces or x",
     (lambda: sampled_trainer().reverse_kl_step(np.full(4, NAN), np.zeros((4, 2))),
      lambda: cg.ModelTrainer(fresh_flow()).forward_kl_step(np.full((4, 2), NAN))),
     design="those samples are dropped (weight zero) and counted; a step with none left is skipped, not applied",
     expect=lambda r: r["num_samples"] == 0 and r["action"] == "skip")


def empty_reverse_step():
    trainer = cg.ModelTrainer(fresh_flow())
    trainer.sample(0, 0)
    return trainer.reverse_kl_step(np.zeros(0), np.zeros((0, 2)))


case("trainer-empty", S, "`ModelTrainer.forward_kl_step`, `sample(0)` + `reverse_kl_step`", "empty batch",
     (lambda: cg.ModelTrainer(fresh_flow()).forward_kl_step(np.zeros((0, 2))), empty_reverse_step), CGFlowError,
     ("x", "n must", "energies"),
     cpp="core/src/train/ModelTrainer.cpp: `forwardKLStep` refuses an empty x ('x is an empty batch'), "
     "`reverseKLStep` an empty sample ('energies is an empty batch ... n must be >= 1') and `flowMatchingStep` "
     "an empty x1 (a batch of only non-finite columns stays a skipped step). C++ test "
     "`FlowTraining.EmptyBatchesAreErrorsNamingTheArgument`")
case("trainer-x-shape", S, "`ModelTrainer.forward_kl_step`", "x of the wrong width",
     lambda: cg.ModelTrainer(fresh_flow()).forward_kl_step(np.zeros((4, 3))), CGFlowError, "x must")
case("trainer-weights", S, "`ModelTrainer.forward_kl_step`", "weights of another count, negative or NaN",
     tuple(lambda w=w: cg.ModelTrainer(fresh_flow()).forward_kl_step(np.zeros((4, 2)), weights=w)
           for w in (np.ones(3), -np.ones(4), np.full(4, NAN))), CGFlowError, "weights")
case("trainer-forward-no-density", S, "`ModelTrainer.forward_kl_step`", "a model without an exact density (encoder-decoder)",
     lambda: cg.ModelTrainer(fresh_encoder_decoder()).forward_kl_step(np.zeros((3, 2))), CGFlowError, "log-density",
     covered_by="test_data_free.py::test_forward_kl_training_of_the_slow_fast_model_covers_every_mode")
case("trainer-learning-rate", S, "`ModelTrainer.set_learning_rate`", "< 0 or NaN",
     (lambda: cg.ModelTrainer(fresh_flow()).set_learning_rate(-1.0), lambda: cg.ModelTrainer(fresh_flow()).set_learning_rate(NAN)),
     CGFlowError, "learning_rate")
case("trainer-state-key", S, "`ModelTrainer.set_state`", "a missing key", lambda: cg.ModelTrainer(fresh_flow()).set_state({}),
     KeyError, "step_count")
case("trainer-state-values", S, "`ModelTrainer.set_state`", "moments of another length, NaN, negative; step_count < 0",
     tuple(lambda s=s: cg.ModelTrainer(fresh_flow()).set_state(s) for s in (
         trainer_state(first_moment=np.zeros(3), second_moment=np.zeros(3)),
         trainer_state(first_moment=np.full(flow().num_parameters, NAN)),
         trainer_state(second_moment=-np.ones(flow().num_parameters)), trainer_state(step_count=-1))),
     CGFlowError, ("moment", "stepCount"))
case("schedule-cosine", S, "`CosineDecaySchedule(...)`, `__call__`", "decay_steps < 1, learning rate < 0, step < 0",
     (lambda: core.CosineDecaySchedule(1e-3, 0), lambda: core.CosineDecaySchedule(-1.0, 10),
      lambda: core.CosineDecaySchedule(1.0, 10)(-1)), CGFlowError, ("decay_steps", "learning_rate", "step"))

# -- pybind11: SlowFastModel, EncoderDecoderModel -----------------------------------------------------------
S = "pybind11 `SlowFastModel`, `EncoderDecoderModel`"
case("slowfast-unknown-key", S, "`SlowFastModel(config)`", "an unknown key", lambda: cg.SlowFastModel(dict(SLOW_FAST, bogus=1)),
     CGFlowError, "bogus", covered_by="test_data_free.py::test_slow_fast_model_file_round_trip_and_errors")
case("slowfast-slow-missing", S, "`SlowFastModel(config)`", "no slow flow",
     lambda: cg.SlowFastModel({k: v for k, v in SLOW_FAST.items() if k != "slow"}), CGFlowError, "slow")
case("slowfast-dimension", S, "`SlowFastModel(config)`", "slow dimension >= the map's coordinates, or num_atoms 0",
     (lambda: cg.SlowFastModel(dict(SLOW_FAST, slow=dict(SLOW_FAST["slow"], dimension=3))),
      lambda: cg.SlowFastModel(dict(SLOW_FAST, map=dict(SLOW_FAST["map"], num_atoms=0)))), CGFlowError,
     ("slow dimension", "num_atoms"))
case("slowfast-map-type", S, "`SlowFastModel(config)`", "an unknown map type",
     lambda: cg.SlowFastModel(dict(SLOW_FAST, map={"type": "bogus"})), CGFlowError, "type",
     cpp="core/src/models/SlowFastModel.cpp: the map's type is checked (`mapType`) before num_atoms is read. "
     "C++ test `SlowFastModel.TrainsThroughFlowTrainerAndRejectsBadConfigs`")
case("slowfast-permutation", S, "`SlowFastModel(config)`", "a permutation with a repeated atom",
     lambda: cg.SlowFastModel(dict(SLOW_FAST, map={"type": "atom_permutation", "num_atoms": 2, "components_per_atom": 1,
                                                   "permutation": [0, 0]})), CGFlowError, "permutation")
case("slowfast-covariance", S, "`SlowFastModel(config)`", "an unknown fast covariance",
     lambda: cg.SlowFastModel(dict(SLOW_FAST, fast={"covariance": "dense"})), CGFlowError, "covariance",
     covered_by="test_data_free.py::test_slow_fast_model_with_a_full_covariance_fast_block")
case("slowfast-given-slow", S, "`SlowFastModel.sample_given_slow`", "z of the wrong width",
     lambda: slow_fast().sample_given_slow(np.zeros((3, 2)), 1), CGFlowError, "z:",
     covered_by="test_data_free.py::test_sample_given_slow_back_maps_from_the_conditional")
case("slowfast-given-slow-nan", S, "`SlowFastModel.sample_given_slow`", "NaN z",
     lambda: slow_fast().sample_given_slow(np.full((3, 1), NAN), 0), CGFlowError, "z has")
case("slowfast-log-prob-shape", S, "`SlowFastModel.log_prob`, `EncoderDecoderModel.encode`", "x of the wrong width",
     (lambda: slow_fast().log_prob(np.zeros((3, 3))), lambda: fresh_encoder_decoder().encode(np.zeros((3, 3)))),
     CGFlowError, "x:")
case("slowfast-log-prob-nan", S, "`SlowFastModel.log_prob`, `EncoderDecoderModel.encode`", "NaN x",
     (lambda: slow_fast().log_prob(np.full((3, 2), NAN))[0], lambda: fresh_encoder_decoder().encode(np.full((3, 2), NAN))),
     design="NaN propagates to those samples", expect=all_nan)
case("slowfast-map-matrix", S, "`SlowFastModel.map_matrix`, `map_inverse`", "a model whose map is a permutation",
     lambda: cg.SlowFastModel(dict(SLOW_FAST, map={"type": "atom_permutation", "num_atoms": 2, "components_per_atom": 1,
                                                   "permutation": [0, 1]})).map_matrix, CGFlowError, "map")
case("encdec-dimensions", S, "`EncoderDecoderModel(config)`", "latent_dimension 0, data_dimension < 1",
     (lambda: cg.EncoderDecoderModel(dict(ENCODER_DECODER, latent_dimension=0)),
      lambda: cg.EncoderDecoderModel(dict(ENCODER_DECODER, data_dimension=-1))), CGFlowError,
     ("latent_dimension", "data_dimension"))
case("encdec-latent-large", S, "`EncoderDecoderModel(config)`", "latent_dimension > data_dimension",
     lambda: cg.EncoderDecoderModel(dict(ENCODER_DECODER, latent_dimension=3)),
     design="accepted: nothing in the bound needs d < D, though a CG model has it smaller")
case("encdec-prior", S, "`EncoderDecoderModel(config)`", "a prior flow of another dimension",
     lambda: cg.EncoderDecoderModel(dict(ENCODER_DECODER, prior={"dimension": 2, "num_layers": 2})), CGFlowError,
     "latent_dimension", covered_by="test_data_free.py::test_encoder_decoder_model_with_a_flow_prior_trains_the_prior")

# -- pybind11: PMFTrainer and openmmcgflow.pmf --------------------------------------------------------------
S = "`PMFTrainer` (pybind11 and `openmmcgflow.pmf`)"
case("pmftrainer-options", S, "`PMFTrainer(ensemble, features, options)`",
     "batch_size 0, epochs < 1, learning_rate < 0, validation_fraction >= 1, threads 0",
     tuple(lambda o=o: pmf_trainer(**o) for o in ({"batch_size": 0}, {"epochs": -1}, {"learning_rate": -1.0},
                                                  {"validation_fraction": 1.5}, {"threads": 0})), CGFlowError,
     ("batch_size", "epochs", "learning_rate", "validation_fraction", "threads"))
case("pmftrainer-unknown-key", S, "`PMFTrainer(ensemble, features, options)`", "an unknown key",
     lambda: pmf_trainer(epoch=3), CGFlowError, "epoch", covered_by="test_pmf_trainer.py::test_options_skipped_samples_threads_and_errors")
case("pmftrainer-features-type", S, "`PMFTrainer(ensemble, features)`", "a string instead of a list of tuples",
     lambda: cg.PMFTrainer(ensemble(1), "distance"), CGFlowError, "features")
case("pmftrainer-features-kind", S, "`PMFTrainer(ensemble, features)`",
     "an unknown feature kind, a wrong particle count, inputs that do not match the ensemble",
     (lambda: cg.PMFTrainer(ensemble(1), [("bond", 0, 1)]), lambda: cg.PMFTrainer(ensemble(1), [("distance", 0, 1, 2)]),
      lambda: cg.PMFTrainer(ensemble(1), [("distance", 0, 1), ("distance", 1, 2)])), CGFlowError, "features",
     covered_by="test_pmf_trainer.py::test_options_skipped_samples_threads_and_errors")
case("pmftrainer-features-negative", S, "`PMFTrainer(ensemble, features)` then `fit_forces`, `predict`",
     "a negative particle index", lambda: cg.PMFTrainer(ensemble(1), [("distance", -1, 1)], {"epochs": 1}).fit_forces(
         PMF_POSITIONS, PMF_FORCES, progress=False), CGFlowError, "features[0]")
case("pmftrainer-shapes", S, "`fit_forces`", "positions not (n, N, 3), forces of another sample count, particles "
     "beyond N", (lambda: pmf_trainer().fit_forces(PMF_POSITIONS.reshape(10, 6), PMF_FORCES.reshape(10, 6), progress=False),
                  lambda: pmf_trainer().fit_forces(PMF_POSITIONS, PMF_FORCES[:5], progress=False),
                  lambda: cg.PMFTrainer(ensemble(1), [("distance", 0, 3)]).fit_forces(PMF_POSITIONS, PMF_FORCES, progress=False)),
     CGFlowError, ("positions", "forces", "features"),
     covered_by="test_pmf_trainer.py::test_options_skipped_samples_threads_and_errors")
case("pmftrainer-shapes-more", S, "`fit_forces`, `predict`", "forces of another particle count; predict positions not "
     "(n, N, 3) or with too few particles",
     (lambda: pmf_trainer().fit_forces(PMF_POSITIONS, np.zeros((10, 3, 3)), progress=False),
      lambda: pmf_trainer().predict(np.zeros((3, 6))), lambda: pmf_trainer().predict(np.zeros((1, 1, 3)))),
     CGFlowError, ("forces", "positions", "features"))
case("pmftrainer-box", S, "`fit_forces`, `predict`", "a box that is not (3, 3), NaN or singular",
     (lambda: pmf_trainer().fit_forces(PMF_POSITIONS, PMF_FORCES, box=np.eye(2), progress=False),
      lambda: pmf_trainer().fit_forces(PMF_POSITIONS, PMF_FORCES, box=np.full((3, 3), NAN), progress=False),
      lambda: pmf_trainer().fit_forces(PMF_POSITIONS, PMF_FORCES, box=np.zeros((3, 3)), progress=False)),
     CGFlowError, "box")
case("pmftrainer-empty", S, "`openmmcgflow.PMFTrainer.fit_forces`, `fit_labels`", "empty batch",
     (lambda: pmf_trainer().fit_forces(np.zeros((0, 2, 3)), np.zeros((0, 2, 3)), progress=False),
      lambda: pmf_trainer().fit_labels(np.zeros((0, 1)), np.zeros(0), progress=False)), ValueError,
     ("positions", "inputs"), fixed=True)
case("pmftrainer-all-nonfinite", S, "`openmmcgflow.PMFTrainer.fit_forces`, `fit_labels`",
     "every sample non-finite (positions, forces, inputs or energies)",
     (lambda: pmf_trainer().fit_forces(np.full((4, 2, 3), NAN), np.zeros((4, 2, 3)), progress=False),
      lambda: pmf_trainer().fit_forces(PMF_POSITIONS, np.full((10, 2, 3), NAN), progress=False),
      lambda: pmf_trainer().fit_labels(np.zeros((4, 1)), np.full(4, NAN), progress=False)), CGFlowError,
     ("positions", "forces", "energies"), fixed=True)
case("pmftrainer-core-empty", S, "`_core.PMFTrainer.fit_forces`, `fit_labels` (without the Python wrapper)",
     "empty batch, or every sample non-finite",
     (lambda: core_pmf_trainer().fit_forces(np.zeros((0, 2, 3)), np.zeros((0, 2, 3))),
      lambda: core_pmf_trainer().fit_forces(np.full((4, 2, 3), NAN), np.zeros((4, 2, 3)))), CGFlowError,
     ("positions", "forces"),
     cpp="core/src/train/PMFTrainer.cpp, `Dataset::checkSomeUsable`: 'positions: an empty batch' for n = 0, "
     "and 'positions and forces: no usable sample: ...' naming those with non-finite values (inputs / energies "
     "for labels); the Python wrapper no longer rewrites the message. C++ test "
     "`PMFTrainer.ErrorsNameTheArgument`")
case("pmftrainer-some-nonfinite", S, "`fit_forces`, `fit_labels`", "some samples non-finite",
     lambda: pmf_trainer().fit_forces(np.concatenate([PMF_POSITIONS, np.full((1, 2, 3), NAN)]),
                                      np.concatenate([PMF_FORCES, np.zeros((1, 2, 3))]), progress=False)["num_skipped"],
     design="skipped and counted in the history's num_skipped (documented)", expect=lambda r: r == 1)
case("pmftrainer-labels-shape", S, "`fit_labels`", "inputs of another width, energies of another count",
     (lambda: pmf_trainer().fit_labels(np.zeros((5, 4)), np.zeros(5), progress=False),
      lambda: pmf_trainer().fit_labels(np.zeros((5, 1)), np.zeros(4), progress=False)), CGFlowError, ("inputs", "energies"),
     covered_by="test_pmf_trainer.py::test_options_skipped_samples_threads_and_errors")
case("pmftrainer-labels-more", S, "`fit_labels`, `label_loss`", "1-D inputs; energies of another count",
     (lambda: pmf_trainer().fit_labels(np.zeros(5), np.zeros(5), progress=False),
      lambda: pmf_trainer().label_loss(0, np.zeros((5, 1)), np.zeros(4))), CGFlowError, ("inputs", "energies"))
case("pmftrainer-member", S, "`force_matching_loss`, `label_loss`", "member index out of range",
     (lambda: pmf_trainer().force_matching_loss(9, PMF_POSITIONS, PMF_FORCES),
      lambda: pmf_trainer().label_loss(-1, np.zeros((5, 1)), np.zeros(5))), CGFlowError, "member")
case("pmftrainer-predict-nan", S, "`PMFTrainer.predict`", "NaN positions",
     lambda: pmf_trainer().predict(np.full((1, 2, 3), NAN))[1],
     design="NaN positions give a NaN energy and NaN forces", expect=all_nan,
     cpp="core/src/coords/Features.cpp, `backpropFeatures` (the fix of the PMFForce's forces). C++ test "
     "`PMFTrainer.ErrorsNameTheArgument`")
case("pmftrainer-checkpoint-every", S, "`openmmcgflow.PMFTrainer.fit_forces`, `fit_labels`", "checkpoint_every < 1",
     lambda: pmf_trainer().fit_forces(PMF_POSITIONS, PMF_FORCES, progress=False, checkpoint=temporary_path("c.npz"),
                                      checkpoint_every=0), ValueError, "checkpoint_every")
case("pmftrainer-resume", S, "`_core.PMFTrainer.fit_forces(resume=...)`", "a state with a missing key or other members",
     (lambda: core_pmf_trainer().fit_forces(PMF_POSITIONS, PMF_FORCES, resume={"x": 1}),
      lambda: core_pmf_trainer().fit_forces(PMF_POSITIONS, PMF_FORCES, resume={
          "epochs_done": 0, "num_epochs": 1, "members": [], "history": {
              "train_loss": np.zeros((0, 2)), "validation_loss": np.zeros((0, 2)), "train_indices": [],
              "validation_indices": [], "num_samples": 10, "num_skipped": 0}})), CGFlowError, "resume")
case("pmftrainer-checkpoint-options", S, "`openmmcgflow.PMFTrainer.fit_forces(checkpoint=...)`",
     "a checkpoint written with other options", None, ValueError, "checkpoint",
     covered_by="test_pmf_trainer.py::test_a_killed_fit_resumes_from_its_checkpoint_bit_identically")
case("pmf-affine", S, "`pmf.affine_ensemble`", "input_scale 0 or NaN, input_mean of the wrong length, output_scale inf",
     (lambda: cg.pmf.affine_ensemble(ensemble(), input_scale=0.0), lambda: cg.pmf.affine_ensemble(ensemble(), input_scale=NAN),
      lambda: cg.pmf.affine_ensemble(ensemble(), input_mean=np.zeros(3)),
      lambda: cg.pmf.affine_ensemble(ensemble(), output_scale=INF)), ValueError,
     ("input_scale", "input_mean", "output_scale"), fixed=True)

# -- pybind11: ZMatrix, InternalCoordinates, chirality --------------------------------------------------------
S = "pybind11 `ZMatrix`, `InternalCoordinates`, `detect_chirality`"
N_ALA, D_ALA = 22, 60
case("zmatrix-empty", S, "`ZMatrix(rows)`", "no rows", lambda: core.InternalCoordinates(core.ZMatrix([])), CGFlowError, "rows",
     cpp="core/src/coords/ZMatrix.cpp, the constructor: 'ZMatrix: rows is empty; a Z-matrix places at least "
     "one atom'. C++ test `ZMatrix.ValidationNamesTheProblem`")
case("zmatrix-partner", S, "`ZMatrix(rows)`", "a partner index out of range, an atom placed twice",
     (lambda: core.ZMatrix([(0, -1, -1, -1, False), (1, 0, -1, -1, False), (2, 1, 0, -1, False), (3, 2, 1, 9, False)]),
      lambda: core.ZMatrix([(0, -1, -1, -1, False), (0, 0, -1, -1, False), (2, 1, 0, -1, False)])), CGFlowError, "rows")
case("zmatrix-bonds", S, "`ZMatrix.from_bonds`", "num_atoms < 1, a bond atom out of range, a disconnected graph",
     (lambda: core.ZMatrix.from_bonds(0, []), lambda: core.ZMatrix.from_bonds(4, [(0, 1), (1, 2), (2, 9)]),
      lambda: core.ZMatrix.from_bonds(5, [(0, 1), (1, 2), (3, 4)])), CGFlowError, ("numAtoms", "bond"))
case("zmatrix-masses", S, "`ZMatrix.from_bonds`", "masses of another count, negative or NaN",
     tuple(lambda m=m: core.ZMatrix.from_bonds(4, [(0, 1), (1, 2), (2, 3)], m)
           for m in ([1.0], [1.0, -1.0, 1.0, 1.0], [1.0, NAN, 1.0, 1.0])), CGFlowError, "masses")
case("zmatrix-column", S, "`ZMatrix.column_atoms`, `describe_column`", "column out of range",
     (lambda: core.ZMatrix.alanine_dipeptide().column_atoms(-1), lambda: core.ZMatrix.alanine_dipeptide().describe_column(999)),
     CGFlowError, "column")
case("ic-shapes", S, "`to_internal`, `to_cartesian`, `to_canonical_frame`, `set_normalization`",
     "x, q or reference of the wrong shape",
     (lambda: alanine_internal().to_internal(np.zeros((2, N_ALA + 1, 3))), lambda: alanine_internal().to_cartesian(np.zeros((2, D_ALA + 1))),
      lambda: alanine_internal().to_canonical_frame(np.zeros((1, 3, 3))),
      lambda: core.InternalCoordinates(core.ZMatrix.alanine_dipeptide()).set_normalization(np.zeros((N_ALA + 1, 3)))),
     CGFlowError, ("x:", "q:", "reference"))
case("ic-backward-batch", S, "`to_cartesian_backward`, `to_internal_backward`", "gradients of another batch size",
     (lambda: alanine_internal().to_cartesian_backward(np.ones((2, D_ALA)), np.zeros((3, N_ALA, 3))),
      lambda: alanine_internal().to_cartesian_backward(np.ones((2, D_ALA)), None, np.zeros(3)),
      lambda: alanine_internal().to_internal_backward(np.zeros((1, N_ALA, 3)), np.zeros((3, D_ALA)))),
     CGFlowError, ("dL_dx", "dL_dlogdet", "dL_dq"))
case("ic-empty", S, "`to_internal`, `to_cartesian`, `PositionMap.from_positions`", "empty batch",
     (lambda: alanine_internal().to_internal(np.zeros((0, N_ALA, 3))), lambda: cartesian_map().from_positions(np.zeros((0, 2, 3)))),
     design="an empty batch gives empty results", expect=empty_result)
case("ic-nan", S, "`to_internal`, `to_cartesian`", "NaN coordinates",
     (lambda: alanine_internal().to_internal(np.full((1, N_ALA, 3), NAN))[0],
      lambda: alanine_internal().to_cartesian(np.full((1, D_ALA), NAN))[0]),
     design="NaN propagates to that configuration (the map's callers give it weight zero)", expect=all_nan)
case("ic-coincident", S, "`to_internal`", "coincident atoms", lambda: alanine_internal().to_internal(np.zeros((1, N_ALA, 3)))[1],
     design="log|det J| = -inf: a configuration of zero volume", expect=lambda r: bool(np.all(r == -np.inf)))
case("ic-rotation-seed", S, "`to_cartesian(rotation_seed)`", "negative seed",
     lambda: alanine_internal().to_cartesian(np.ones((1, D_ALA)), rotation_seed=-1), CGFlowError, "rotation_seed",
     cpp="python/src/BindCoordinates.cpp, `to_cartesian`: `optionalSeed` takes None or an integer (Python or "
     "numpy) in [0, 2^64), else 'rotation_seed: expected None or an integer in [0, 2^64), got -1'")
case("ic-normalization-batch", S, "`set_normalization(reference)`", "a batch of several structures",
     lambda: set_normalization_twice(np.stack([alanine_structure(), alanine_structure() + 0.01])), CGFlowError, "reference",
     cpp="python/src/BindCoordinates.cpp, `set_normalization`: 'reference: expected one structure (N, 3), got "
     "a batch of 2'")
case("ic-normalization-values", S, "`set_normalization`", "a NaN or degenerate reference; a scale <= 0 or NaN",
     (lambda: set_normalization_twice(np.full((N_ALA, 3), NAN)),
      lambda: core.InternalCoordinates(core.ZMatrix.alanine_dipeptide()).set_normalization(alanine_structure(), bond=0.0),
      lambda: core.InternalCoordinates(core.ZMatrix.alanine_dipeptide()).set_normalization(alanine_structure(), angle=-1.0),
      lambda: core.InternalCoordinates(core.ZMatrix.alanine_dipeptide()).set_normalization(alanine_structure(), dihedral=NAN)),
     CGFlowError, ("reference", "bond", "angle", "dihedral"))
case("ic-threads", S, "`InternalCoordinates.threads`", "< 0",
     lambda: set_attribute(core.InternalCoordinates(core.ZMatrix.alanine_dipeptide()), "threads", -1), CGFlowError,
     "numThreads")
case("ic-convention", S, "`InternalCoordinates.jacobian_convention`", "unknown name",
     lambda: set_attribute(core.InternalCoordinates(core.ZMatrix.alanine_dipeptide()), "jacobian_convention", "bogus"),
     CGFlowError, "jacobian_convention")
case("chirality-center", S, "`detect_chirality`", "center of 3 atoms, or an atom out of range",
     (lambda: core.detect_chirality(alanine_structure(), [1, 2, 3]), lambda: core.detect_chirality(alanine_structure(), [8, 6, 14, 99])),
     CGFlowError, "center")
case("chirality-x", S, "`detect_chirality`", "x not (batch, N, 3)", lambda: core.detect_chirality(np.zeros(5)), CGFlowError,
     "x:")
case("chirality-nan", S, "`detect_chirality`", "NaN positions", lambda: core.detect_chirality(np.full((N_ALA, 3), NAN)),
     design="0 (undetermined) for that configuration, as documented", expect=lambda r: list(r) == [0])

# -- pybind11: CG maps ------------------------------------------------------------------------------------
S = "pybind11 `LinearMap`, `SliceMap`, `DihedralCGMap`"
case("linearmap-coefficients", S, "`LinearMap(coefficients[, force_coefficients])`",
     "empty, NaN, or force coefficients of another shape",
     (lambda: core.LinearMap(np.zeros((0, 0))), lambda: core.LinearMap(np.array([[NAN, 1.0]])),
      lambda: core.LinearMap(np.array([[1.0, 0.0]]), np.array([[1.0, 0.0, 0.0]]))), CGFlowError,
     ("coefficients", "forceCoefficients"))
case("linearmap-sum", S, "`LinearMap(coefficients)`", "a bead's coefficients do not sum to 1",
     lambda: core.LinearMap(np.array([[0.5, 0.4, 0.0]])), CGFlowError, "coefficients",
     covered_by="test_coordinates.py::test_cg_maps")
case("linearmap-groups", S, "`LinearMap.center_of_mass`, `center_of_geometry`",
     "an atom index out of range, an empty group, a mass <= 0, num_atoms 0",
     (lambda: core.LinearMap.center_of_mass([[0, 5]], [1.0, 1.0]), lambda: core.LinearMap.center_of_mass([[]], [1.0, 1.0]),
      lambda: core.LinearMap.center_of_mass([[0, 1]], [1.0, -1.0]), lambda: core.LinearMap.center_of_geometry(0, [[0]])),
     CGFlowError, ("groups", "masses", "numAtoms"))
case("linearmap-shapes", S, "`map_positions`, `map_forces`, `distribute_forces`", "an array of the wrong shape",
     (lambda: slice_map().map_positions(np.zeros((1, 5, 3))), lambda: slice_map().map_forces(np.zeros((1, 5, 3))),
      lambda: slice_map().distribute_forces(np.zeros((1, 4, 3)))), CGFlowError, ("x:", "forces", "cg_forces"))
case("linearmap-nan", S, "`map_positions`, `map_forces`", "NaN positions",
     lambda: slice_map().map_positions(np.full((1, 4, 3), NAN)), design="NaN propagates to the beads", expect=all_nan)
case("slicemap-atoms", S, "`SliceMap(num_atoms, atoms)`", "an atom out of range, negative or twice; no atoms; num_atoms 0",
     (lambda: core.SliceMap(4, [-1]), lambda: core.SliceMap(4, [1, 1]), lambda: core.SliceMap(4, []),
      lambda: core.SliceMap(0, [])), CGFlowError, ("atoms", "numAtoms"))
case("slicemap-range", S, "`SliceMap(num_atoms, atoms)`", "an atom index beyond num_atoms",
     lambda: core.SliceMap(22, [1, 30]), CGFlowError, "atoms[1]", covered_by="test_cgbg_data.py::test_bad_input_is_refused_by_name")
case("slicemap-alanine", S, "`SliceMap.alanine_dipeptide`", "unknown mapping", lambda: core.SliceMap.alanine_dipeptide("bogus"),
     CGFlowError, "mapping")
case("dihedralmap-dihedrals", S, "`DihedralCGMap(num_atoms, dihedrals, rotating_atoms)`",
     "an index out of range, a repeated atom, no dihedrals, rotating_atoms of another count or out of range",
     (lambda: core.DihedralCGMap(4, [(0, 1, 2, 9)]), lambda: core.DihedralCGMap(4, [(0, 1, 1, 3)]),
      lambda: core.DihedralCGMap(4, []), lambda: core.DihedralCGMap(4, [(0, 1, 2, 3)], [[3], [2]]),
      lambda: core.DihedralCGMap(4, [(0, 1, 2, 3)], [[9]])), CGFlowError, ("dihedrals", "rotatingAtoms"))
case("dihedralmap-shapes", S, "`DihedralCGMap.map_positions`, `map_forces`, `atom_forces`", "wrong shapes or batch sizes",
     (lambda: dihedral_map().map_positions(np.zeros((1, 5, 3))), lambda: dihedral_map().map_forces(np.zeros((2, 4, 3)), np.zeros((3, 4, 3))),
      lambda: dihedral_map().atom_forces(np.zeros((2, 4, 3)), np.zeros((2, 3)))), CGFlowError, ("x:", "forces", "dV_ds"))
case("dihedralmap-nan", S, "`DihedralCGMap.jacobian`, `map_forces`, `atom_forces`", "NaN positions",
     (lambda: dihedral_map().jacobian(np.full((1, 4, 3), NAN)), lambda: dihedral_map().map_forces(np.full((1, 4, 3), NAN), np.ones((1, 4, 3))),
      lambda: dihedral_map().atom_forces(np.full((1, 4, 3), NAN), np.ones((1, 1)))), expect=all_nan,
     design="NaN results, as `map_positions` gives NaN angles (a zero-length rotation axis still gives 0)",
     cpp="core/src/coords/CGMapDihedral.cpp: the rotation-axis guards are written `length <= 0` "
     "(computeForceMapVectors) and `!(length <= 0)` (mapForces), so a NaN axis gives NaN while a zero-length "
     "one still gives 0; the Jacobian and the atom forces follow from the Features fix. C++ test "
     "`DihedralCGMap.DegenerateAxisGivesZeroButNaNPositionsGiveNaN`")

# -- pybind11: PositionMap, Boltzmann-generator files ---------------------------------------------------------
S = "pybind11 `PositionMap`, `encode/decode_boltzmann_generator`"
case("posmap-cartesian", S, "`PositionMap.cartesian`, `all_cartesian`",
     "num_particles < 1, no slots, a particle out of range or negative, axis not 0-2, a slot twice",
     (lambda: core.PositionMap.cartesian(0, []), lambda: core.PositionMap.cartesian(2, []),
      lambda: core.PositionMap.cartesian(2, [(5, 0)]), lambda: core.PositionMap.cartesian(2, [(-1, 0)]),
      lambda: core.PositionMap.cartesian(2, [(0, 0), (0, 0)]), lambda: core.PositionMap.all_cartesian(-1)),
     CGFlowError, ("numParticles", "slots"))
case("posmap-axis", S, "`PositionMap.cartesian`", "axis 3", lambda: core.PositionMap.cartesian(1, [(0, 3)]), CGFlowError,
     "axis", covered_by="test_bg_integrator.py::test_bad_models_and_systems_give_clear_errors")
case("posmap-internal", S, "`PositionMap.internal(internal_coordinates, condition_columns)`",
     "a column out of range, a condition index < 0",
     (lambda: core.PositionMap.internal(alanine_internal(), [(999, 0)]),
      lambda: core.PositionMap.internal(alanine_internal(), [(alanine_internal().zmatrix.circular_columns[0], -1)])),
     CGFlowError, "conditionColumns")
case("posmap-internal-circular", S, "`PositionMap.internal`", "a condition column that is not a circular dihedral",
     lambda: core.PositionMap.internal(alanine_internal(), [(0, 0)]), CGFlowError, "circular",
     covered_by="test_active_learning_cascade.py::test_position_map_takes_phi_psi_from_the_condition")
case("posmap-json", S, "`PositionMap.from_json`", "no type, an unknown type",
     (lambda: core.PositionMap.from_json({}), lambda: core.PositionMap.from_json({"type": "bogus"})), CGFlowError, "type")
case("posmap-to-positions", S, "`PositionMap.to_positions`", "y or template of the wrong shape, a template batch",
     (lambda: cartesian_map().to_positions(np.zeros((1, 3)), np.zeros((2, 3))),
      lambda: cartesian_map().to_positions(np.zeros((1, 2)), np.zeros((3, 3))),
      lambda: cartesian_map().to_positions(np.zeros((1, 2)), np.zeros((2, 2, 3)))), CGFlowError, ("y:", "template"))
case("posmap-condition", S, "`PositionMap.to_positions(condition)`", "a condition for a map without condition columns",
     lambda: cartesian_map().to_positions(np.zeros((1, 2)), np.zeros((2, 3)), condition=np.zeros(2)), CGFlowError, "condition")
case("posmap-condition-missing", S, "`PositionMap.to_positions(condition)`", "no condition, or one of the wrong shape, "
     "for a conditional map", None, CGFlowError, "condition",
     covered_by="test_active_learning_cascade.py::test_position_map_takes_phi_psi_from_the_condition")
case("posmap-nan", S, "`PositionMap.to_positions`, `from_positions`", "NaN y, template or positions",
     (lambda: cartesian_map().to_positions(np.full((1, 2), NAN), np.zeros((2, 3)))[0][0, 0, 0],
      lambda: cartesian_map().from_positions(np.full((1, 2, 3), NAN))[0]),
     design="NaN propagates to those coordinates (the integrator gives such proposals weight zero)", expect=all_nan)
case("posmap-from-positions", S, "`PositionMap.from_positions`", "positions of the wrong shape",
     lambda: cartesian_map().from_positions(np.zeros((1, 3, 3))), CGFlowError, "positions")
case("bgfile-dimension", S, "`encode_boltzmann_generator`", "a flow whose dimension differs from the map's",
     lambda: core.encode_boltzmann_generator(flow(3), cartesian_map()), CGFlowError, "flow",
     covered_by="test_bg_integrator.py::test_bad_models_and_systems_give_clear_errors")
case("bgfile-info", S, "`encode_boltzmann_generator(info)`", "info that is not a dict",
     lambda: core.encode_boltzmann_generator(flow(), cartesian_map(), [1]), CGFlowError, "info")
case("bgfile-decode", S, "`decode_boltzmann_generator`", "bytes that are not a model, or of another kind",
     (lambda: core.decode_boltzmann_generator(b"garbage!!"), lambda: core.decode_boltzmann_generator(ensemble().to_bytes())),
     CGFlowError, "model bytes")

# -- pybind11: stats, and openmmcgflow.stats ----------------------------------------------------------------
S = "pybind11 `_core.stats` (= `openmmcgflow.stats`)"
ST = core.stats
LOG_W_FUNCTIONS = (ST.log_sum_exp, ST.normalized_weights, ST.effective_sample_size, ST.effective_sample_fraction, ST.log_z)
LW = np.array([0.0, -1.0, -2.0])
case("stats-empty", S, "`log_sum_exp`, `normalized_weights`, `effective_sample_size`, `effective_sample_fraction`, `log_z`",
     "empty log_w", tuple(lambda f=f: f(np.zeros(0)) for f in LOG_W_FUNCTIONS), CGFlowError, "log_w")
case("stats-nan", S, "`log_sum_exp`", "NaN log_w", lambda: ST.log_sum_exp(np.array([0.0, NAN])), CGFlowError, "log_w",
     covered_by="test_stats.py::test_log_weight_basics_and_errors")
case("stats-nan-others", S, "`normalized_weights`, `effective_sample_size`, `effective_sample_fraction`, `log_z`",
     "NaN log_w", tuple(lambda f=f: f(np.array([0.0, NAN])) for f in LOG_W_FUNCTIONS[1:]), CGFlowError, "log_w")
case("stats-inf", S, "the same five", "+inf log_w", tuple(lambda f=f: f(np.array([0.0, INF])) for f in LOG_W_FUNCTIONS),
     CGFlowError, "log_w")
case("stats-2d", S, "every `log_w` argument", "a 2-D array", lambda: ST.effective_sample_size(np.zeros((2, 2))), CGFlowError,
     "log_w", covered_by="test_stats.py::test_log_weight_basics_and_errors")
case("stats-zero-weights", S, "`log_sum_exp`, `effective_sample_size`, `log_z`", "every log_w = -inf",
     (lambda: ST.log_sum_exp(np.full(3, -INF)), lambda: ST.effective_sample_size(np.full(3, -INF)), lambda: ST.log_z(np.full(3, -INF))[0]),
     design="-inf is weight zero: log-sum -inf, ESS 0, log Z -inf (documented)",
     expect=lambda r: r == -np.inf or r == 0.0)
case("stats-normalized-zero", S, "`normalized_weights`", "every log_w = -inf", lambda: ST.normalized_weights(np.full(3, -INF)),
     CGFlowError, "logW")
case("stats-type", S, "every array argument", "a string", lambda: ST.log_z("abc"), TypeError, "log_w", typed=True)
case("stats-values-length", S, "`weighted_mean`, `bootstrap_mean`, `clipping_report(values)`", "values of another length",
     (lambda: ST.weighted_mean(LW, np.zeros(2)), lambda: ST.bootstrap_mean(LW, np.zeros(2)),
      lambda: ST.clipping_report(LW, "top_k", [1], np.zeros(2))), CGFlowError, "logW")
case("stats-values-nan", S, "`weighted_mean`", "NaN value with a positive weight",
     lambda: ST.weighted_mean(LW, np.array([0.0, NAN, 0.0])), CGFlowError, "values",
     cpp="core/src/stats/LogWeights.cpp: `selfNormalizedMean`, `bootstrap` and `bootstrapMean` call the "
     "observable `values` ('values[1] is not finite but its weight is positive'). C++ test "
     "`StatsLogWeights.SelfNormalizedMeanAndBootstrapEdgeCases`")
case("stats-resamples", S, "`bootstrap_mean`, `bootstrap_log_z`, `free_energy_1d/2d`", "num_resamples < 2",
     (lambda: ST.bootstrap_mean(LW, np.zeros(3), 0), lambda: ST.bootstrap_log_z(LW, -1),
      lambda: ST.free_energy_1d(np.full(3, .5), axis=(0, 1, 5), kT=1.0, num_resamples=-1)), CGFlowError, "num_resamples")
case("stats-bootstrap-empty", S, "`bootstrap_log_z`", "empty log_w", lambda: ST.bootstrap_log_z(np.zeros(0)), CGFlowError, "logW")
case("stats-clip-k", S, "`clip_top_k`", "k < 0 or > the finite weights", (lambda: ST.clip_top_k(LW, -1), lambda: ST.clip_top_k(LW, 10)),
     CGFlowError, "k must")
case("stats-drop-fraction", S, "`drop_top_fraction`", "fraction < 0, >= 1 or NaN",
     tuple(lambda f=f: ST.drop_top_fraction(LW, f) for f in (-0.1, 1.0, NAN)), CGFlowError, "fraction")
case("stats-drop-all", S, "`drop_top_fraction`", "a fraction that drops every weight", lambda: ST.drop_top_fraction(np.zeros(3), 0.9),
     CGFlowError, "fraction", covered_by="test_stats.py::test_histograms_and_clipping_edge_cases")
case("stats-percentile", S, "`clip_above_percentile`, `clipping_report('percentile')`", "percentile outside (0, 100] or NaN",
     (lambda: ST.clip_above_percentile(LW, 150), lambda: ST.clip_above_percentile(LW, NAN),
      lambda: ST.clipping_report(LW, "percentile", [200.0])), CGFlowError, "percentile")
case("stats-policy", S, "`clipping_report`", "unknown policy", lambda: ST.clipping_report(LW, "bogus", [1.0]), CGFlowError,
     "policy", covered_by="test_stats.py::test_clipping_and_its_report")
case("stats-levels-empty", S, "`clipping_report`", "no levels", lambda: ST.clipping_report(LW, "top_k", []),
     design="an empty report", expect=lambda r: r == [])
case("stats-axis", S, "`histogram_1d/2d`, `free_energy_1d/2d`", "bins < 1, low >= high, NaN bound, not (low, high, bins)",
     (lambda: ST.histogram_1d(np.zeros(3), axis=(0, 1, 0)), lambda: ST.histogram_1d(np.zeros(3), axis=(1, 0, 5)),
      lambda: ST.histogram_1d(np.zeros(3), axis=(NAN, 1, 5))), CGFlowError, "axis")
case("stats-axis-tuple", S, "`histogram_1d`", "axis of 2 entries", lambda: ST.histogram_1d(np.zeros(3), axis=(0, 1)), CGFlowError,
     "axis", covered_by="test_stats.py::test_histograms_and_clipping_edge_cases")
case("stats-histogram-nan", S, "`histogram_1d/2d`, `free_energy_1d/2d`", "a NaN value with a positive weight",
     lambda: ST.histogram_1d(np.array([NAN, 0.5]), axis=(0, 1, 5)), CGFlowError, "values",
     cpp="core/src/stats/Histogram.cpp, `build`: 'values[i] is not finite (nan) and has a positive weight' "
     "(`x[i]` / `y[i]` in 2-D). C++ tests `StatsHistogram.TwoDimensionalGridsAreRowMajor`, "
     "`StatsHistogram.FreeEnergyEdgeCases`")
case("stats-histogram-empty", S, "`histogram_1d/2d`, `free_energy_1d/2d`", "no values", lambda: ST.histogram_1d(np.zeros(0), axis=(0, 1, 5)),
     CGFlowError, "values",
     cpp="core/src/stats/Histogram.cpp, `build`: 'values is empty (no samples to histogram)' ('x and y are "
     "empty' in 2-D) before binning. C++ test `StatsHistogram.FreeEnergyEdgeCases`")
case("stats-histogram-lengths", S, "`histogram_1d/2d`", "log_w or y of another length",
     (lambda: ST.histogram_1d(np.zeros(3), np.zeros(2), axis=(0, 1, 5)),
      lambda: ST.histogram_2d(np.zeros(3), np.zeros(2), x_axis=(0, 1, 2), y_axis=(0, 1, 2))), CGFlowError, ("logW", "y has"))
case("stats-kt", S, "`free_energy_1d`, `free_energy_2d`", "kT <= 0 or NaN",
     (lambda: ST.free_energy_1d(np.full(3, .5), axis=(0, 1, 5), kT=0.0), lambda: ST.free_energy_1d(np.full(3, .5), axis=(0, 1, 5), kT=NAN),
      lambda: ST.free_energy_2d(np.full(3, .5), np.full(3, .5), x_axis=(0, 1, 2), y_axis=(0, 1, 2), kT=-1.0)), CGFlowError, "kT")
case("stats-divergence", S, "`kl_divergence`, `js_divergence`, `pmf_error`",
     "grids of different length, negative or NaN, all zero, empty, 2-D, epsilon < 0",
     (lambda: ST.kl_divergence(np.ones(2), np.ones(3)), lambda: ST.kl_divergence(np.array([-1.0, 2.0]), np.ones(2)),
      lambda: ST.kl_divergence(np.array([NAN, 1.0]), np.ones(2)), lambda: ST.kl_divergence(np.zeros(2), np.ones(2)),
      lambda: ST.kl_divergence(np.zeros(0), np.zeros(0)), lambda: ST.js_divergence(np.ones((2, 2)), np.ones((2, 2))),
      lambda: ST.kl_divergence(np.ones(2), np.ones(2), -1.0)), CGFlowError, ("p has", "p[0]", "p is", "p:", "q:", "epsilon"))
case("stats-pmf-baseline", S, "`pmf_error`", "baseline outside (0, 1]", lambda: ST.pmf_error(np.ones(2), np.ones(2), 0.0),
     CGFlowError, "baseline", covered_by="test_stats.py::test_divergences")
case("stats-structure-shapes", S, "`radius_of_gyration`, `rmsd`, `diversity_score`, `bond_score`",
     "positions not (n, atoms, 3); reference of another atom count", (
         lambda: ST.radius_of_gyration(np.zeros((2, 2, 2))), lambda: ST.diversity_score(np.zeros((2, 6, 3)), np.zeros((2, 5, 3)))),
     CGFlowError, ("positions", "reference"), covered_by="test_stats.py::test_structure_metrics")
case("stats-structure-args", S, "`radius_of_gyration`, `rmsd`, `bond_score`, `diversity_score`",
     "masses of another count or <= 0; a reference of another shape; lengths of another count or 0; tolerance <= 0; "
     "one generated structure",
     (lambda: ST.radius_of_gyration(np.zeros((1, 4, 3)), np.ones(3)), lambda: ST.radius_of_gyration(np.zeros((1, 4, 3)), -np.ones(4)),
      lambda: ST.rmsd(np.zeros((1, 4, 3)), np.zeros((5, 3))), lambda: ST.bond_score(np.zeros((1, 4, 3)), [(0, 1)], np.ones(2)),
      lambda: ST.bond_score(np.zeros((1, 4, 3)), [(0, 1)], np.zeros(1)),
      lambda: ST.bond_score(np.zeros((1, 4, 3)), [(0, 1)], np.ones(1), -1.0),
      lambda: ST.diversity_score(np.zeros((1, 4, 3)), np.zeros((1, 4, 3)))), CGFlowError,
     ("masses", "reference", "lengths", "tolerance", "generated"))
case("stats-bond-range", S, "`bond_score`", "a bond atom out of range", lambda: ST.bond_score(np.zeros((1, 4, 3)), [(0, 6)], np.array([0.1])),
     CGFlowError, "bonds", covered_by="test_stats.py::test_structure_metrics")
case("stats-structure-nan", S, "`radius_of_gyration`, `rmsd`", "NaN positions",
     (lambda: ST.radius_of_gyration(np.full((1, 4, 3), NAN)), lambda: ST.rmsd(np.full((1, 4, 3), NAN), np.zeros((4, 3)))),
     design="NaN for that configuration", expect=all_nan)
case("stats-tempering", S, "`tempering_statistics`, `relative_kl_increase`, `adaptive_temperature_step`, "
     "`shrinking_temperature_step`", "log_q of another length, empty energies, beta < 0 or NaN, delta_beta < 0",
     (lambda: ST.tempering_statistics(np.zeros(3), np.zeros(2), 1.0), lambda: ST.tempering_statistics(np.zeros(0), np.zeros(0), 1.0),
      lambda: ST.tempering_statistics(np.zeros(3), np.zeros(3), -1.0), lambda: ST.tempering_statistics(np.zeros(3), np.zeros(3), NAN),
      lambda: ST.relative_kl_increase(np.zeros(3), np.zeros(3), 1.0, -1.0),
      lambda: ST.adaptive_temperature_step(np.zeros(3), np.zeros(3), -1.0, 1.0, 0.1, 0.1)), CGFlowError,
     ("log_q", "energies", "beta", "delta_beta"))
case("stats-tempering-steps", S, "`adaptive_temperature_step`, `shrinking_temperature_step`",
     "beta_target <= beta or NaN, max_relative_increase or max_step <= 0",
     (lambda: ST.adaptive_temperature_step(np.zeros(3), np.zeros(3), 1.0, 0.5, 0.1, 0.1),
      lambda: ST.adaptive_temperature_step(np.zeros(3), np.zeros(3), 0.1, 1.0, 0.0, 0.1),
      lambda: ST.shrinking_temperature_step(np.zeros(3), np.zeros(3), 0.1, 1.0, 0.1, 0.0),
      lambda: ST.shrinking_temperature_step(np.zeros(3), np.zeros(3), 0.1, NAN, 0.1, 0.1)), CGFlowError,
     ("beta_target", "max_relative_increase", "max_step"))
case("stats-running-nonfinite", S, "`RunningWeights.add`", "NaN", lambda: ST.RunningWeights().add(NAN),
     CGFlowError, "logWeight", covered_by="test_stats.py::test_running_weights_agree_with_the_batch_functions")
case("stats-running-inf", S, "`RunningWeights.add`", "+inf", lambda: ST.RunningWeights().add(INF), CGFlowError, "logWeight")
case("stats-running-2d", S, "`RunningWeights.add`", "a 2-D array", lambda: ST.RunningWeights().add(np.zeros((2, 2))),
     design="added in C order, like a 1-D array (the doc: one log-weight or an array of them)")
case("stats-running-type", S, "`RunningWeights.add`", "a string", lambda: ST.RunningWeights().add("x"), ValueError,
     "could not convert", typed=True)
case("stats-iat-series", S, "`stats.integrated_autocorrelation_time`", "series of < 2 frames, non-finite, constant",
     lambda: stats.integrated_autocorrelation_time([1.0]), ValueError, "series",
     covered_by="test_stats.py::test_integrated_autocorrelation_time_refuses_bad_input_and_flags_short_runs")
case("stats-iat-series-3d", S, "`stats.integrated_autocorrelation_time`", "a 3-D series",
     lambda: stats.integrated_autocorrelation_time(np.zeros((3, 3, 3))), ValueError, "series")
case("stats-iat-window", S, "`stats.integrated_autocorrelation_time`", "window_factor <= 0",
     lambda: stats.integrated_autocorrelation_time(np.random.default_rng(0).random(50), 0.0), ValueError, "window_factor")
case("stats-iat-window-nan", S, "`stats.integrated_autocorrelation_time`", "window_factor NaN or inf",
     tuple(lambda w=w: stats.integrated_autocorrelation_time(np.random.default_rng(0).random(50), w) for w in (NAN, INF)),
     ValueError, "window_factor", fixed=True)

# -- EnergyTarget ---------------------------------------------------------------------------------------
S = "`EnergyTarget` (Python class over `_core.EnergyTarget`)"
case("energy-system", S, "`EnergyTarget(system)`", "not a System or XML; XML that is not a System; a System without particles",
     (lambda: cg.EnergyTarget("<xml/>"), lambda: cg.EnergyTarget(openmm.System())), CGFlowError, "system",)
case("energy-system-type", S, "`EnergyTarget(system)`", "an int", lambda: cg.EnergyTarget(42), TypeError, "system",
     covered_by="test_energy_target.py::test_regularization_and_errors")
case("energy-platform", S, "`EnergyTarget(platform)`", "unknown platform",
     lambda: cg.EnergyTarget(double_well().system, platform="NoSuchPlatform"), ValueError, "platform",
     covered_by="test_energy_target.py::test_regularization_and_errors")
case("energy-threads", S, "`EnergyTarget(threads)`", "0", lambda: cg.EnergyTarget(double_well().system, threads=0),
     ValueError, "threads", covered_by="test_energy_target.py::test_regularization_and_errors")
case("energy-threads-type", S, "`EnergyTarget(threads)`", "not an integer (1.5)",
     lambda: cg.EnergyTarget(double_well().system, threads=1.5), ValueError, "threads")
case("energy-properties", S, "`EnergyTarget(properties)`", "a property the platform does not have",
     lambda: cg.EnergyTarget(double_well().system, properties={"Bogus": "1"}), CGFlowError, "property")
case("energy-positions-shape", S, "`evaluate`, `evaluate_raw`", "positions of another particle count",
     lambda: energy_target().evaluate(np.zeros((2, 5, 3))), ValueError, "positions",
     covered_by="test_energy_target.py::test_regularization_and_errors")
case("energy-positions-type", S, "`evaluate`, `evaluate_raw`", "not numbers", lambda: energy_target().evaluate("abc"),
     TypeError, "positions", fixed=True)
case("energy-positions-1d", S, "`evaluate`", "a 1-D array", lambda: energy_target().evaluate(np.zeros(3)), CGFlowError,
     "positions")
case("energy-positions-nan", S, "`evaluate`, `evaluate_raw`", "NaN or inf positions",
     (lambda: energy_target().evaluate(np.full((1, 1, 3), NAN))[2], lambda: energy_target().evaluate(np.full((1, 1, 3), INF))[2]),
     design="that configuration's finite flag is False (its energy NaN); it still counts as an evaluation (documented)",
     expect=lambda r: not bool(np.any(r)))
case("energy-empty", S, "`evaluate`", "empty batch", lambda: energy_target().evaluate(np.zeros((0, 1, 3))),
     design="an empty batch gives empty results", expect=lambda r: all(np.asarray(a).size == 0 for a in r))
case("energy-regularization", S, "`set_energy_regularization`", "e_high >= e_max",
     lambda: energy_target().set_energy_regularization(5.0, 1.0), ValueError, ("e_high", "e_max"),
     covered_by="test_energy_target.py::test_regularization_and_errors")
case("energy-regularization-nonfinite", S, "`set_energy_regularization`", "e_high or e_max NaN or inf",
     (lambda: energy_target().set_energy_regularization(NAN, 1.0), lambda: energy_target().set_energy_regularization(0.0, INF)),
     ValueError, ("e_high", "e_max"))
case("energy-phase", S, "`evaluation_count`, `reset_evaluation_counts`", "a phase never used",
     lambda: energy_target().evaluation_count("never"), design="0 evaluations in that phase", expect=lambda r: r == 0)

# -- Python: openmmcgflow.datafree ------------------------------------------------------------------------
S = "Python `openmmcgflow.datafree`"
DFS = datafree.DataFreeSchedule
case("df-rule", S, "`DataFreeSchedule`, `train_data_free(**settings)`", "unknown rule", lambda: DFS(rule="fast"), ValueError,
     "rule", covered_by="test_data_free.py::test_slow_fast_model_file_round_trip_and_errors")
case("df-beta-initial", S, "`DataFreeSchedule`", "beta_initial <= 0 or > beta_target",
     (lambda: DFS(beta_initial=0.0), lambda: DFS(beta_initial=2.0)), ValueError, "beta_initial")
case("df-beta-target", S, "`DataFreeSchedule`", "beta_target <= 0, NaN or inf",
     tuple(lambda b=b: DFS(beta_target=b) for b in (0.0, -1.0, NAN, INF)), ValueError, "beta_target", fixed=True)
case("df-steps", S, "`DataFreeSchedule`", "initial_steps, steps_per_level or batch < 1",
     (lambda: DFS(initial_steps=0), lambda: DFS(steps_per_level=0), lambda: DFS(batch=0)), ValueError,
     ("initial_steps", "steps_per_level", "batch"))
case("df-batches", S, "`DataFreeSchedule`", "evaluation_batch or final_batch 0",
     (lambda: DFS(evaluation_batch=0), lambda: DFS(final_batch=0)), ValueError, ("evaluation_batch", "final_batch"),
     fixed=True)
case("df-final", S, "`DataFreeSchedule`", "final_learning_rate not a number or pair, < 0; final_steps < 0; "
     "reweighted_steps < 0", (lambda: DFS(final_learning_rate=(1e-3, 1e-4, 1e-5)), lambda: DFS(final_steps=-1),
                              lambda: DFS(reweighted_steps=-1)), ValueError,
     ("final_learning_rate", "final_steps", "reweighted_steps"),
     covered_by="test_data_free.py::test_final_phase_options_and_their_errors, "
     "test_data_free.py::test_reweighted_forward_kl_steps_move_the_model_to_the_target")
case("df-tempering-settings", S, "`DataFreeSchedule`", "max_relative_increase, max_step or kl_floor <= 0 or NaN",
     tuple(lambda k=k, v=v: DFS(**{k: v}) for k in ("max_relative_increase", "max_step", "kl_floor") for v in (0.0, NAN)),
     ValueError, ("max_relative_increase", "max_step", "kl_floor"), fixed=True)
case("df-optimizer-settings", S, "`DataFreeSchedule`", "learning_rate < 0 or NaN, max_levels < 1, drop_largest_losses < 0",
     (lambda: DFS(learning_rate=-1.0), lambda: DFS(learning_rate=NAN), lambda: DFS(max_levels=0),
      lambda: DFS(drop_largest_losses=-1)), ValueError, ("learning_rate", "max_levels", "drop_largest_losses"), fixed=True)
case("df-trainer-schedule", S, "`DataFreeTrainer(schedule)`", "a dict instead of a schedule",
     lambda: datafree.DataFreeTrainer(None, None, {"batch": 3}), TypeError, "schedule")
case("df-unknown-setting", S, "`train_data_free(**settings)`", "an unknown keyword",
     lambda: datafree.train_data_free(None, None, bogus=1), TypeError, "bogus")
case("df-forward-shape", S, "`train_forward_kl`", "data of the wrong width",
     lambda: datafree.train_forward_kl(fresh_flow(), np.zeros((5, 3)), steps=1, progress=False), ValueError, "data",
     covered_by="test_data_free.py::test_forward_kl_training_of_the_slow_fast_model_covers_every_mode")
case("df-forward-counts", S, "`train_forward_kl`", "empty data, steps < 0, batch < 1",
     (lambda: datafree.train_forward_kl(fresh_flow(), np.zeros((0, 2)), steps=1, progress=False),
      lambda: datafree.train_forward_kl(fresh_flow(), np.zeros((5, 2)), steps=-1, progress=False),
      lambda: datafree.train_forward_kl(fresh_flow(), np.zeros((5, 2)), batch=0, progress=False)), ValueError,
     ("data", "steps", "batch"))
case("df-forward-nan", S, "`train_forward_kl`", "non-finite rows in data",
     lambda: datafree.train_forward_kl(fresh_flow(), np.full((3, 2), NAN), steps=1, progress=False), ValueError, "data",
     fixed=True)
case("df-coordinate-energy", S, "`CoordinateEnergy(system, positions, active)`",
     "positions of another particle count or NaN; active out of range, repeated or empty",
     (lambda: coordinate_energy(positions=np.zeros((3, 3))), lambda: coordinate_energy(positions=np.full((1, 3), NAN)),
      lambda: coordinate_energy(active=[0, 9]), lambda: coordinate_energy(active=[0, 0]), lambda: coordinate_energy(active=[])),
     ValueError, ("positions", "active"), fixed=True)
case("df-coordinate-energy-x", S, "`CoordinateEnergy.__call__`", "x of the wrong width",
     lambda: coordinate_energy()(np.zeros((2, 3))), ValueError, "x:", fixed=True)
case("df-coordinate-energy-nan", S, "`CoordinateEnergy.__call__`, `InternalCoordinateEnergy.__call__`", "NaN x",
     lambda: coordinate_energy()(np.full((2, 2), NAN))[0], design="u = +inf: weight zero for the trainer",
     expect=lambda r: bool(np.all(r == np.inf)))
case("df-internal-energy", S, "`InternalCoordinateEnergy`", "temperature <= 0, internal coordinates of another molecule, "
     "bad open_torsions", None, ValueError, ("temperature", "internal_coordinates", "open_torsions"),
     covered_by="test_data_free_molecules.py::test_internal_coordinate_energy_rejects_bad_arguments, "
     "test_data_free_molecules.py::test_open_torsions_are_a_proper_change_of_variables")
case("df-temperature-inf", S, "`InternalCoordinateEnergy`, `CartesianFrameEnergy`", "temperature NaN or inf",
     (lambda: datafree.InternalCoordinateEnergy(double_well().system, alanine_internal(), INF),
      lambda: datafree.CartesianFrameEnergy(double_well().system, double_well().positions, (0, 1, 2), NAN)), ValueError,
     "temperature", fixed=True)
case("df-frame-atoms", S, "`CartesianFrameEnergy`", "frame atoms repeated or out of range", None, ValueError, "frame_atoms",
     covered_by="test_data_free_molecules.py::test_cartesian_frame_energy")

# -- Python: openmmcgflow.cgbg --------------------------------------------------------------------------
S = "Python `openmmcgflow.cgbg`"
case("cgbg-generate", S, "`generate_dataset`",
     "bias forces in group 0, a map of another atom count, not a map, positions not finite (N, 3), seed 0, bad "
     "metadynamics, num_frames 0, temperature <= 0", None, (ValueError, TypeError),
     ("bias_forces", "cg_map", "positions", "seed", "metadynamics", "num_frames", "temperature"),
     covered_by="test_cgbg_data.py::test_bad_input_is_refused_by_name")
case("cgbg-resume", S, "`generate_dataset`, `umbrella_windows` (resume)", "arguments that differ from the run on disk; a "
     "non-empty directory of something else", None, ValueError, ("record_every", "cg_map", "temperature", "system", "path"),
     covered_by="test_cgbg_data.py::test_resume_refuses_other_arguments, test_cgbg_umbrella.py::test_changed_arguments_are_refused_by_name")
case("cgbg-umbrella", S, "`umbrella_windows`", "no centres, NaN centres, force_constant <= 0, a coordinate that does not "
     "exist", None, ValueError, ("centres", "force_constant", "coordinate"),
     covered_by="test_cgbg_umbrella.py::test_bad_arguments_name_the_argument")
case("cgbg-trajectory", S, "`dataset_from_trajectory`", "a DCD or topology of another atom count; exclude_groups that "
     "hold no force", None, ValueError, ("dcd_path", "topology", "exclude_groups"),
     covered_by="test_cgbg_data.py::test_dataset_from_trajectory_reproduces_the_run, "
     "test_cgbg_data.py::test_dataset_from_trajectory_skips_and_counts_non_finite_frames")
case("cgbg-dcd-missing", S, "`read_dcd`, `DCDReader`", "a path that does not exist", lambda: cgbg.read_dcd("/nonexistent/a.dcd"),
     FileNotFoundError, "path")
case("cgbg-dcd-range", S, "`read_dcd`", "start < 0 or > stop, stride < 1",
     (lambda: cgbg.read_dcd(dcd_file(), start=-1), lambda: cgbg.read_dcd(dcd_file(), start=5, stop=2),
      lambda: cgbg.read_dcd(dcd_file(), stride=0)), ValueError, ("start", "stride"))
case("cgbg-dcd-format", S, "`read_dcd`, `load_dataset`", "a file that is not a DCD; a dataset with a chunk missing", None,
     ValueError, "path", covered_by="test_cgbg_data.py::test_dcd_reader_reads_positions_and_boxes, "
     "test_cgbg_data.py::test_load_dataset_detects_a_missing_chunk")
case("cgbg-flow", S, "`train_cg_flow`, `cg_flow_model_bytes`", "positions not (n, beads, 3) or not finite, bonds out of "
     "range or disconnected, epochs 0, too few configurations, a flow of another dimension", None, ValueError,
     ("positions", "bead_bonds", "epochs", "flow"), covered_by="test_cgbg_flow.py::test_bad_input_is_refused_with_the_argument_named")
case("cgbg-force-match", S, "`force_match`", "forces of another shape or non-finite, bonds out of range", None, ValueError,
     ("forces", "bead_bonds"), covered_by="test_cgbg_force_matching.py::test_force_match_refuses_bad_input")
case("cgbg-force-match-temperature", S, "`force_match`, `HarmonicPrior.fit`, `force_matching.d_form_fraction`",
     "temperature <= 0 or NaN",
     (lambda: cgbg.force_match(np.random.default_rng(0).random((5, 3, 3)), np.zeros((5, 3, 3)), [(0, 1), (1, 2)], temperature=0.0),
      lambda: cgbg.HarmonicPrior.fit(np.random.default_rng(0).random((5, 3, 3)), [(0, 1), (1, 2)], -1.0),
      lambda: cgbg.force_matching.d_form_fraction(np.zeros(3), np.zeros(3), np.zeros(3), NAN)), ValueError,
     "temperature", fixed=True)
case("cgbg-reweight", S, "`reweight`, `cg_system`", "n < 1, clip_fraction outside [0, 1), a model for another particle "
     "count or not a model, seed 0, observable of another length, a PMFForce on missing particles, bad masses", None,
     (ValueError, TypeError), ("n:", "clip_fraction", "flow_model_bytes", "seed", "observable", "pmf_force", "masses"),
     covered_by="test_cgbg_reweight.py::test_bad_input")
case("cgbg-reweight-temperature", S, "`reweight`", "temperature <= 0 or NaN",
     (lambda: cgbg.reweight(double_well().system, b"x", 10, temperature=0.0, seed=1),
      lambda: cgbg.reweight(double_well().system, b"x", 10, temperature=NAN, seed=1)), ValueError, "temperature")
case("cgbg-profile", S, "`profile_metrics`", "reference of another length, log_w of another length, axis low >= high", None,
     ValueError, ("reference_probabilities", "log_w", "axis"), covered_by="test_cgbg_reweight.py::test_bad_input")
case("cgbg-profile-kt", S, "`profile_metrics`", "kT <= 0 or NaN",
     tuple(lambda k=k: cgbg.profile_metrics(np.zeros(5), np.zeros(5), np.ones(4), (0, 1, 4), kT=k) for k in (0.0, -1.0, NAN)),
     ValueError, "kT", fixed=True)
case("cgbg-maps", S, "`heavy_atom_map`, `core_beta_map`, `alanine_dipeptide_map`, `find_atoms`", "a topology without the "
     "named atoms; an unknown mapping", None, ValueError, ("topology", "mapping"),
     covered_by="test_cgbg_data.py::test_map_missing_atom_is_named")
case("cgbg-static-bias", S, "`reference.static_bias_force`", "a bias grid of another shape or non-finite", None, ValueError,
     "bias_grid", covered_by="test_cgbg_force_matching.py::test_static_bias_force_reproduces_the_grid_at_its_nodes")
case("cgbg-runs", S, "`run_mueller_brown(MuellerBrownSettings)`", "unknown case, frames 0, clip_fraction 1, "
     "cg_scale 0", None, ValueError, ("case", "frames_per_trajectory", "clip_fraction", "cg_scale"),
     covered_by="test_cgbg_mueller_brown.py::test_bad_settings_name_the_argument")

# -- Python: openmmcgflow.active_learning ----------------------------------------------------------------
S = "Python `openmmcgflow.active_learning`"
case("al-labels-shape", S, "`pmf_labels`", "energies not 2-D, log_q of another shape",
     (lambda: al.pmf_labels(np.zeros(4), np.zeros(4), 0.0, 300.0), lambda: al.pmf_labels(np.zeros((2, 4)), np.zeros((2, 3)), 0.0, 300.0)),
     ValueError, ("energies", "log_q"))
case("al-labels-copies", S, "`pmf_labels`", "no copies per point; log_det_j of another shape",
     (lambda: al.pmf_labels(np.zeros((2, 0)), np.zeros((2, 0)), 0.0, 300.0),
      lambda: al.pmf_labels(np.zeros((2, 4)), np.zeros((2, 4)), np.zeros(3), 300.0)), ValueError, ("energies", "log_det_j"),
     fixed=True)
case("al-labels-temperature", S, "`pmf_labels`", "temperature <= 0 or NaN",
     tuple(lambda t=t: al.pmf_labels(np.zeros((2, 4)), np.zeros((2, 4)), 0.0, t) for t in (0.0, -1.0, NAN)), ValueError,
     "temperature")
case("al-labels-clip", S, "`pmf_labels`", "clip_top < 0 or >= copies", lambda: al.pmf_labels(np.zeros((2, 4)), np.zeros((2, 4)), 0.0, 300.0, 4),
     ValueError, "clip_top", covered_by="test_cg_monte_carlo.py::test_pmf_label_clipping_by_hand")
case("al-labels-nan", S, "`pmf_labels`", "NaN log_q", lambda: al.pmf_labels(np.zeros((2, 4)), np.full((2, 4), NAN), 0.0, 300.0),
     ValueError, "log_q")
case("al-labels-nan-energy", S, "`pmf_labels`", "NaN or +inf energies",
     lambda: al.pmf_labels(np.full((1, 4), NAN), np.zeros((1, 4)), 0.0, 300.0, 0),
     design="weight zero (documented); a point whose copies all have weight zero gets the label +inf",
     expect=lambda r: bool(np.all(r == np.inf)), covered_by="test_cg_monte_carlo.py::test_pmf_label_clipping_by_hand")
case("al-select", S, "`farthest_point_selection`", "empty or not (n, d) points; count < 1 or > n",
     (lambda: al.farthest_point_selection(np.zeros((0, 2)), 1, np.random.default_rng(0)),
      lambda: al.farthest_point_selection(np.zeros((3, 2)), 0, np.random.default_rng(0)),
      lambda: al.farthest_point_selection(np.zeros((3, 2)), 4, np.random.default_rng(0))), ValueError, ("points", "count"))
case("al-select-nan", S, "`farthest_point_selection`, `broaden_points`", "NaN points or centres",
     (lambda: al.farthest_point_selection(np.array([[NAN, 0.0], [0.0, 0.0]]), 1, np.random.default_rng(0)),
      lambda: al.broaden_points(np.full((3, 2), NAN), 2, 0.5, np.random.default_rng(0))), ValueError, ("points", "centres"),
     fixed=True)
case("al-broaden", S, "`broaden_points`", "centres not (k, d), radius <= 0 or NaN, per_point < 1",
     (lambda: al.broaden_points(np.zeros(3), 2, 0.5, np.random.default_rng(0)),
      lambda: al.broaden_points(np.zeros((3, 2)), 2, 0.0, np.random.default_rng(0)),
      lambda: al.broaden_points(np.zeros((3, 2)), 2, NAN, np.random.default_rng(0)),
      lambda: al.broaden_points(np.zeros((3, 2)), 0, 0.5, np.random.default_rng(0))), ValueError,
     ("centres", "radius", "per_point"))
case("al-walker-system", S, "`angle_walker_system`", "num_walkers < 1, num_angles not 1-3",
     (lambda: al.angle_walker_system(two_member_angle_model(), 0), lambda: al.angle_walker_system(two_member_angle_model(), 2, 4)),
     ValueError, ("num_walkers", "num_angles"))
case("al-walker-model", S, "`angle_walker_system`", "a model whose input size is not 2 * num_angles", None, ValueError,
     "model_bytes", covered_by="test_cg_monte_carlo.py::test_clear_errors")
case("al-walker-positions", S, "`walker_positions`", "more than 3 angles, no points",
     (lambda: al.walker_positions(np.zeros((2, 4))), lambda: al.walker_positions(np.zeros((0, 2)))), ValueError, "points")
case("al-walker-positions-nan", S, "`walker_positions`", "NaN points, or not (n, angles)",
     (lambda: al.walker_positions(np.array([[NAN, 0.0]])), lambda: al.walker_positions(np.zeros((2, 2, 2)))), ValueError,
     "points", fixed=True)
case("al-integrator", S, "`angle_integrator`", "num_walkers < 1, num_angles not 1-3",
     (lambda: al.angle_integrator(0), lambda: al.angle_integrator(2, 4)), ValueError, ("num_walkers", "num_angles"),
     fixed=True)
case("al-integrator-values", S, "`angle_integrator`", "temperature <= 0, proposal_scale <= 0, threshold_kt < 0",
     (lambda: al.angle_integrator(2, temperature=0.0), lambda: al.angle_integrator(2, proposal_scale=0.0),
      lambda: al.angle_integrator(2, threshold_kt=-1.0)), OpenMMException, ("temperature", "proposalScale", "threshold"))
case("al-search", S, "`search_uncertain_points`", "num_points < 1, max_steps < 1",
     (lambda: search(num_points=0), lambda: search(max_steps=0)), ValueError, ("num_points", "max_steps"))
case("al-search-threshold", S, "`search_uncertain_points`", "an integrator without a threshold", None, ValueError, "threshold",
     covered_by="test_cg_monte_carlo.py::test_clear_errors")
case("al-cascade", S, "`cascade.cg_monte_carlo_points`, `cascaded_samples`, `conditional_generator_model`",
     "every not dividing steps, pmf_kj of another length, a flow with another context dimension", None, ValueError,
     ("every", "cg_points", "context dimension"),
     covered_by="test_active_learning_cascade.py::test_cg_monte_carlo_then_atoms, "
     "test_active_learning_cascade.py::test_a_flow_not_conditioned_on_phi_psi_is_refused")
case("al-runs", S, "`run_alanine_al(AlanineALSettings)`", "found_points, new_points, walkers, "
     "train_fraction, proposal_scale, gamma out of range; a bad reference", None, ValueError,
     ("found_points", "walkers", "reference"),
     covered_by="test_active_learning_alanine_loop.py::test_bad_settings_are_named, "
     "test_active_learning_alanine_loop.py::test_bad_reference_is_named")

assert len({c.id for c in CASES}) == len(CASES), "case ids must be unique"


# ----------------------------------------------------------------------------------------------------
# The checks.

def normalized(text):
    return text.lower().replace("_", "")


def names_one(message, names):
    """Whether the message names one of ``names`` (case and underscores ignored: log_w matches logW)."""
    return not names or any(normalized(name) in normalized(message) for name in names)


def check(case_):
    """Run every call of the case and assert the behaviour the case states (or, for a gap, wants)."""
    for call in case_.calls:
        if case_.raises is not None and case_.expect is None:
            with pytest.raises(case_.raises) as caught:
                call()
            message = str(caught.value) if not isinstance(caught.value, KeyError) else repr(caught.value.args[0])
            assert names_one(message, case_.names), "the message does not name %s: %r" % (case_.names, message)
        else:
            result = call()
            if case_.expect is not None:
                assert case_.expect(result), "unexpected result %r" % (result,)


def params():
    return list(_params())


def _params():
    for c in CASES:
        if c.covered_by or not c.calls:
            continue
        marks = [pytest.mark.xfail(strict=True, reason="known gap: " + c.gap)] if c.gap else []
        yield pytest.param(c, id=c.id, marks=marks)


@pytest.mark.parametrize("case_", params())
def test_case(case_):
    check(case_)


def test_every_row_is_tested_here_or_cites_a_test():
    for c in CASES:
        assert c.calls or c.covered_by, c.id
        assert not (c.gap and c.covered_by), c.id
        if c.gap:
            assert c.cpp or c.fixed, "%s: a gap says where its fix goes" % c.id


# ----------------------------------------------------------------------------------------------------
# The table of docs/results/bad-input-audit.md.

def outcome(call):
    """(what happened, the exception or None) for one call: the exception and its message, or the result."""
    try:
        result = call()
    except BaseException as error:  # noqa: BLE001 - the audit records whatever comes out
        message = repr(error.args[0]) if isinstance(error, KeyError) else str(error)
        return "`%s`: %s" % (type(error).__name__, message.replace("\n", " ")), error
    text = repr(result).replace("\n", " ")
    return "returns %s" % (text if len(text) <= 60 else text[:57] + "..."), None


def cell(text, limit=220):
    text = " ".join(text.split())
    # What varies from run to run: object addresses, temporary directories and files.
    text = re.sub(r" (object )?at 0x[0-9a-f]+", "", text)
    text = re.sub(re.escape(tempfile.gettempdir()) + r"/cgflow-audit-[^/]+", "<tmp>", text)
    text = re.sub(r"\.tmp\.\d+\.[0-9a-f]+", ".tmp.<pid>.<random>", text)
    if len(text) > limit:
        text = text[:limit - 3] + "..."
    return text.replace("|", "\\|")


def verdict(c):
    if c.gap:
        return "❌ gap"
    if c.cpp:
        return "✅ gap closed"
    if c.design:
        return "ⓘ by design"
    if c.typed:
        return "🔶 binding type error"
    if c.fixed:
        return "✅ fixed here"
    return "✅"


def table_rows():
    rows = {}
    for c in CASES:
        if c.calls:
            what, _ = outcome(c.calls[0])
            if len(c.calls) > 1:
                what += " (+%d more inputs in this row)" % (len(c.calls) - 1)
        else:
            what = "`%s` naming %s (see the test)" % ("/".join(t.__name__ for t in (c.raises if isinstance(c.raises, tuple)
                                                                              else (c.raises,))),
                                                 ", ".join("`%s`" % n for n in c.names))
        if c.design:
            what += ". " + c.design
        if c.typed:
            what = cell(what, 160)
        if c.gap:
            what += ". **Wanted:** " + c.gap
        if c.covered_by:
            test = ", ".join("`%s`" % t.strip() for t in c.covered_by.split(","))
        else:
            test = "`test_bad_input_audit.py::test_case[%s]`%s" % (c.id, " (xfail strict)" if c.gap else "")
        rows.setdefault(c.section, []).append("| %s | %s | %s | %s | %s |" % (
            c.entry.replace("|", "\\|"), cell(c.bad), verdict(c), cell(what, 600 if c.gap else 300), test))
    return rows


def markdown():
    lines = []
    for section, rows in table_rows().items():
        lines += ["", "### " + section, "", "| entry point | bad input | verdict | what it does now | test |",
                  "|---|---|---|---|---|"] + rows
    return "\n".join(lines) + "\n"


def counts():
    entries = set()
    for c in CASES:
        for part in re.findall(r"`([^`]+)`", c.entry):
            entries.add(part.split("(")[0].strip())
    tally = {"rows": len(CASES), "entry points named": len(entries)}
    for c in CASES:
        tally[verdict(c)] = tally.get(verdict(c), 0) + 1
    tally["rows run here"] = sum(1 for c in CASES if not c.covered_by and c.calls)
    tally["rows citing an existing test"] = sum(1 for c in CASES if c.covered_by)
    return tally


def gaps():
    return ["- **%s** (%s): %s  \n  Fix: %s" % (c.entry, c.bad, c.gap, c.cpp) for c in CASES if c.gap]


def closed_gaps():
    return ["- **%s** (%s): %s" % (c.entry, c.bad, c.cpp) for c in CASES if c.cpp and not c.gap]


if __name__ == "__main__":
    import warnings
    warnings.simplefilter("ignore")
    if "--gaps" in sys.argv:
        print("\n".join(gaps()))
    elif "--closed" in sys.argv:
        print("\n".join(closed_gaps()))
    elif "--counts" in sys.argv:
        print(counts())
    else:
        sys.stdout.write(markdown())
