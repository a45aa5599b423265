"""The compound chain stays exact with a force-caching partner: after an accepted or a rejected flow move,
a NoseHooverIntegrator steps exactly as it does after Context.setPositions/setVelocities of the same state
(so no stale forces or thermostat state leak through the move), on every platform present."""
import numpy as np
import openmm
import pytest

import openmmcgflow as cg
from openmmcgflow import systems

PLATFORMS = [openmm.Platform.getPlatform(i).getName() for i in range(openmm.Platform.getNumPlatforms())]
CASES = [(name, props) for name, props in (("Reference", {}), ("CPU", {}), ("OpenCL", {"Precision": "double"}))
         if name in PLATFORMS]


def alanine_model(ts, noise):
    position_map = cg.PositionMap.internal(ts.info["internal_coordinates"])
    circular = [d for d, c in enumerate(position_map.circular) if c]
    flow = cg.Flow({"dimension": position_map.dimension, "circular": circular, "num_layers": 2, "hidden": 16,
                    "seed": 4})
    p = flow.get_parameters()
    flow.set_parameters(p + noise * np.random.default_rng(4).standard_normal(p.size))
    return cg.encode_boltzmann_generator(flow, position_map)


def compound_context(ts, model, mode, platform, properties):
    bg = cg.BoltzmannGeneratorIntegrator(ts.temperature, mode)
    bg.setModelBytes(model)
    bg.setRandomNumberSeed(6)
    nose_hoover = openmm.NoseHooverIntegrator(ts.temperature, 5.0, 0.0005)
    compound = openmm.CompoundIntegrator()
    compound.addIntegrator(bg)
    compound.addIntegrator(nose_hoover)
    context = openmm.Context(ts.system, compound, openmm.Platform.getPlatformByName(platform), properties)
    context.setPositions(ts.positions)
    context.setVelocitiesToTemperature(ts.temperature, 3)
    compound.setCurrentIntegrator(1)
    compound.step(20)
    return context, compound, bg


def state(context):
    s = context.getState(getPositions=True, getVelocities=True)
    return (s.getPositions(asNumpy=True).value_in_unit(openmm.unit.nanometer),
            s.getVelocities(asNumpy=True).value_in_unit(openmm.unit.nanometer / openmm.unit.picosecond))


def nose_hoover_trajectory(context, compound, steps=15):
    compound.setCurrentIntegrator(1)
    frames = []
    for _ in range(steps):
        compound.step(1)
        frames.append(state(context))
    return frames


@pytest.mark.parametrize("platform, properties", CASES, ids=[c[0] for c in CASES])
@pytest.mark.parametrize("mode", ["accepted", "rejected"])
def test_partner_steps_as_after_set_positions(platform, properties, mode):
    ts = systems.alanine_dipeptide("vacuum")
    # Importance mode takes every proposal; Metropolis with a poor flow rejects its first proposal.
    bg_mode = cg.BoltzmannGeneratorIntegrator.Importance if mode == "accepted" else \
        cg.BoltzmannGeneratorIntegrator.Metropolis
    model = alanine_model(ts, noise=0.02 if mode == "accepted" else 0.3)
    moved, compound, bg = compound_context(ts, model, bg_mode, platform, properties)
    compound.setCurrentIntegrator(0)
    compound.step(1)
    assert bg.getLastAccepted() == (mode == "accepted")
    positions, velocities = state(moved)
    after_move = nose_hoover_trajectory(moved, compound)
    # The same history, then the flow move's outcome written with setPositions/setVelocities instead.
    written, compound2, _ = compound_context(ts, model, bg_mode, platform, properties)
    written.setPositions(positions)
    written.setVelocities(velocities)
    after_write = nose_hoover_trajectory(written, compound2)
    # Reference: bit for bit. The CPU platform computes forces in single precision from its own copy of the
    # positions, so a recomputation may differ in the last float bits (~1e-9 nm/ps seen); OpenCL in double
    # precision agrees to 1e-9. A stale force (the proposal's, after a rejection, or the old state's, after an
    # acceptance) would show as ~1e-2 nm/ps in the velocities within these steps.
    tolerance = {"Reference": 0.0, "CPU": 1e-6}.get(platform, 1e-9)
    for (x1, v1), (x2, v2) in zip(after_move, after_write):
        np.testing.assert_allclose(x1, x2, rtol=0, atol=tolerance)
        np.testing.assert_allclose(v1, v2, rtol=0, atol=tolerance)
