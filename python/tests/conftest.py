import numpy as np
import openmm
import pytest


def available_platforms():
    names = [openmm.Platform.getPlatform(i).getName() for i in range(openmm.Platform.getNumPlatforms())]
    return [p for p in ("Reference", "CPU", "OpenCL") if p in names]


@pytest.fixture(params=available_platforms())
def platform_name(request):
    return request.param


def make_context(system, platform_name, precision="double"):
    platform = openmm.Platform.getPlatformByName(platform_name)
    props = {"Precision": precision} if platform_name in ("OpenCL", "CUDA") else {}
    return openmm.Context(system, openmm.VerletIntegrator(0.001), platform, props)


def energy(context, positions):
    context.setPositions(positions)
    return context.getState(getEnergy=True).getPotentialEnergy().value_in_unit(openmm.unit.kilojoule_per_mole)


def forces(context, positions):
    context.setPositions(positions)
    return context.getState(getForces=True).getForces(asNumpy=True).value_in_unit(
        openmm.unit.kilojoule_per_mole / openmm.unit.nanometer)


def mlp_forward(weights, biases, x, activation):
    """Plain numpy forward pass, independent of the C++ code."""
    acts = {"tanh": np.tanh, "sigmoid": lambda a: 1 / (1 + np.exp(-a)),
            "softplus": lambda a: np.logaddexp(0, a), "silu": lambda a: a / (1 + np.exp(-a)),
            "relu": lambda a: np.maximum(a, 0), "identity": lambda a: a}
    h = np.asarray(x, dtype=float)
    for l, (w, b) in enumerate(zip(weights, biases)):
        h = w @ h + b
        if l < len(weights) - 1:
            h = acts[activation](h)
    return h
