"""The SWIG classes carry their C++ documentation: python/cgflowplugin.i wraps the public headers
(openmmapi/include/*.h) and SWIG's -doxygen option turns their Doxygen comments into docstrings, so
help(openmmcgflow.PMFForce) documents every method. These tests fail if a method loses its comment,
if the wrapper goes back to undocumented declarations, or if -doxygen is dropped from the build."""
import inspect
import pydoc
import re

import pytest

import openmmcgflow as cg

CLASSES = [cg.PMFForce, cg.BoltzmannGeneratorIntegrator, cg.CGMonteCarloIntegrator]
# A few methods each class must have, so that the guard below knows it holds the real proxies.
EXPECTED = {cg.PMFForce: {"setModelFile", "setModelBytes", "getModelBytes", "hasModel", "addParticleGroup"},
            cg.BoltzmannGeneratorIntegrator: {"setModelFile", "setModelBytes", "getModelBytes", "hasModel"},
            cg.CGMonteCarloIntegrator: {"addMovedCoordinate", "setUncertaintyThreshold", "getFoundPointCoordinates",
                                        "step"}}

# Lines SWIG writes that are not prose: a signature ("name(args) -> type"), the ":type"/":rtype"
# fields, and the "*Overload n:*" headings and "|" separators of overloaded functions.
NOT_PROSE = re.compile(r"^\s*(\w+\(.*\)(\s*->.*)?|:(type|rtype)\b.*|\*Overload \d+:\*|\|)\s*$")
SENTENCE = re.compile(r"[A-Za-z]+(?:[\s,;:()'-]+[A-Za-z/]+){3,}")


def own_public_methods(cls):
    """Public callables that cls defines itself (methods, static methods), not those it inherits
    from openmm.Force / openmm.Integrator."""
    methods = {}
    for name, value in vars(cls).items():
        if name.startswith("_"):
            continue
        if isinstance(value, (staticmethod, classmethod)):
            value = value.__func__
        if inspect.isroutine(value):
            methods[name] = value
    return methods


def prose(doc):
    return "\n".join(line for line in (doc or "").splitlines() if not NOT_PROSE.match(line))


def parameter_names(function):
    try:
        signature = inspect.signature(function)
    except (TypeError, ValueError):
        return []
    return [p.name for p in signature.parameters.values()
            if p.name != "self" and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)]


@pytest.mark.parametrize("cls", CLASSES, ids=lambda c: c.__name__)
def test_class_wraps_the_expected_methods(cls):
    # A guard for the test below: the classes really are the SWIG proxies with their methods.
    methods = own_public_methods(cls)
    assert len(methods) >= 20, sorted(methods)
    assert EXPECTED[cls] | {"cast", "isinstance"} <= set(methods)


@pytest.mark.parametrize("cls", CLASSES, ids=lambda c: c.__name__)
def test_every_public_method_has_prose_documentation(cls):
    undocumented = [name for name, method in own_public_methods(cls).items()
                    if not SENTENCE.search(prose(method.__doc__))]
    assert not undocumented, "methods of %s without a docstring beyond the signature: %s" % (
        cls.__name__, undocumented)


@pytest.mark.parametrize("cls", CLASSES, ids=lambda c: c.__name__)
def test_every_parameter_is_documented(cls):
    missing = []
    for name, method in own_public_methods(cls).items():
        doc = method.__doc__ or ""
        for parameter in parameter_names(method):
            if not re.search(r"\b%s\b" % re.escape(parameter), doc):
                missing.append("%s(%s)" % (name, parameter))
    assert not missing, "parameters of %s missing from their docstrings: %s" % (cls.__name__, missing)


@pytest.mark.parametrize("cls, phrase", [(cg.PMFForce, "potential of mean force"),
                                         (cg.BoltzmannGeneratorIntegrator, "Boltzmann generator")],
                         ids=["PMFForce", "BoltzmannGeneratorIntegrator"])
def test_class_docstring(cls, phrase):
    assert phrase in (cls.__doc__ or "")


@pytest.mark.parametrize("method, phrases", [
    (cg.PMFForce.addDistance, ["particle1", "particle2", "nm", "OpenMMException", "index of the feature"]),
    (cg.PMFForce.addAngle, ["particle1", "particle2", "particle3", "radians"]),
    (cg.PMFForce.addDihedral, ["particle4", "cos", "sin"]),
    (cg.PMFForce.addCoordinate, ["particle", "axis", "period", "nm", "0, 1 or 2"]),
    (cg.PMFForce.setModelBytes, ["modelBytes", "bytes", "mlp_ensemble", "OpenMMException"]),
    (cg.PMFForce.setModelFile, ["path", "OpenMMException"]),
    (cg.PMFForce.getEnsembleEnergies, ["context", "kJ/mol"]),
    (cg.PMFForce.getEnsembleStd, ["kJ/mol", "standard deviation"]),
    (cg.PMFForce.getFeatureType, ["index", "OpenMMException"]),
    (cg.PMFForce.setUsesPeriodicBoundaryConditions, ["periodic", "minimum-image"]),
    (cg.PMFForce.updateParametersInContext, ["context", "architecture"]),
    (cg.BoltzmannGeneratorIntegrator.getLogZ, ["log Z"]),
    (cg.BoltzmannGeneratorIntegrator.getLogZError, ["log Z", "standard error"]),
    (cg.BoltzmannGeneratorIntegrator.setTemperature, ["temperature", "kelvin", "OpenMMException"]),
    (cg.BoltzmannGeneratorIntegrator.getTemperature, ["kelvin"]),
    (cg.BoltzmannGeneratorIntegrator.setBlockSize, ["size", ">= 1"]),
    (cg.BoltzmannGeneratorIntegrator.setConditionVector, ["values", "getConditionDimension()"]),
    (cg.BoltzmannGeneratorIntegrator.getLastEnergy, ["kJ/mol"]),
    (cg.BoltzmannGeneratorIntegrator.getEffectiveSampleSize, ["ESS"]),
    (cg.BoltzmannGeneratorIntegrator.evaluateProposals, ["n", "getBatchPositions()"]),
    (cg.BoltzmannGeneratorIntegrator.getBatchPositions, ["nm"]),
    (cg.BoltzmannGeneratorIntegrator.step, ["steps", "OpenMMException"]),
], ids=lambda x: getattr(x, "__qualname__", None))
def test_docstring_mentions(method, phrases):
    doc = method.__doc__ or ""
    missing = [p for p in phrases if p not in doc]
    assert not missing, "%s: %s not in\n%s" % (method.__qualname__, missing, doc)


@pytest.mark.parametrize("cls, phrases", [
    (cg.PMFForce, ["without a model", "modelFile"]),
    (cg.BoltzmannGeneratorIntegrator, ["temperature", "kelvin", "mode", "modelFile"]),
], ids=["PMFForce", "BoltzmannGeneratorIntegrator"])
def test_constructor_docstring_covers_every_overload(cls, phrases):
    doc = cls.__init__.__doc__ or ""
    missing = [p for p in phrases if p not in doc]
    assert not missing, "%s.__init__: %s not in\n%s" % (cls.__name__, missing, doc)


def test_docstring_types_are_the_python_types():
    # The typemaps turn model bytes into bytes and vectors into tuples/lists; the docs say so.
    assert "bytes" in (cg.PMFForce.getModelBytes.__doc__ or "")
    assert "tuple" in (cg.PMFForce.getFeatureParticles.__doc__ or "")
    assert "list" in (cg.BoltzmannGeneratorIntegrator.getBatchEnergies.__doc__ or "")
    assert "std::" not in (cg.PMFForce.getFeatureParticles.__doc__ or "std::")
    assert "std::" not in (cg.BoltzmannGeneratorIntegrator.getBatchEnergies.__doc__ or "std::")


def test_help_shows_the_documentation():
    text = pydoc.render_doc(cg.PMFForce, renderer=pydoc.plaintext)
    assert "minimum-image" in text and "active learning" in text
    text = pydoc.render_doc(cg.BoltzmannGeneratorIntegrator, renderer=pydoc.plaintext)
    assert "Metropolis-Hastings" in text and "log Z" in text
