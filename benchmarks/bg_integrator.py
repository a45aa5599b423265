#!/usr/bin/env python
"""BoltzmannGeneratorIntegrator throughput on alanine dipeptide in implicit solvent. Prints JSON lines.

The model is the flow-engine benchmark's alanine-dipeptide flow (60 internal coordinates, 12 RQ
spline couplings with 256-unit residual conditioners; benchmarks/flow_configs.py) with its circular
dimensions on the Z-matrix's free torsions, untrained (identity initialization plus small noise on
the output weights), over amber96 + OBC. The integrator runs in Importance mode with block size
--block (1024) on --threads threads for the flow.

Per platform P (reference; opencl when the OpenCL platform and our OpenCL kernel are available):
  proposals_per_s_P                 steps per second of integrator.step(n)
  flow_us_per_proposal_P            the integrator's own time in block generation, per proposal
  energy_us_per_proposal_P          the integrator's own time in energy evaluations, per proposal
Peers measured in the same run, alternating with the integrator:
  flow_engine_us_per_sample         Flow.sample(block) per sample, the same flow and threads
  plain_energy_us_per_proposal      energies of a batch of proposals by EnergyTarget (C++ loop over one
                                    Reference Context, energies only): the cost of pricing alone
  integrator_overhead_ratio_reference
                                    integrator total per proposal / (flow_engine_us_per_sample +
                                    plain_energy_us_per_proposal); the target is <= 1.2
  flow_time_ratio_reference         flow_us_per_proposal_reference / flow_engine_us_per_sample (<= 1.2)
Times are medians over --repeats rounds.
"""
import argparse
import json
import os
import statistics
import sys
import time

import numpy as np


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--block", type=int, default=1024)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--quick", action="store_true", help="small block and few repeats, for a smoke test")
    args = p.parse_args()
    if args.quick:
        args.block, args.repeats = 64, 2
    return args


ARGS = parse_args()
for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
    os.environ[_var] = "1"  # our GEMMs are single-threaded per call; the flow splits the batch itself

import openmm  # noqa: E402

import openmmcgflow as cg  # noqa: E402
from openmmcgflow import systems  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from flow_configs import alanine_dipeptide_config  # noqa: E402

OUTPUT_NOISE = 0.02


def emit(name, value, unit):
    value = int(value) if isinstance(value, int) else float(f"{float(value):.6g}")
    print(json.dumps({"name": name, "value": value, "unit": unit}), flush=True)


def log(message):
    print(f"[bg_integrator] {message}", file=sys.stderr, flush=True)


def build_model(ts):
    position_map = cg.PositionMap.internal(ts.info["internal_coordinates"])
    circular = tuple(d for d, c in enumerate(position_map.circular) if c)
    config = alanine_dipeptide_config(0, dimension=position_map.dimension, circular=circular)
    flow = cg.Flow({**config, "num_threads": ARGS.threads})
    params = flow.get_parameters()
    params += OUTPUT_NOISE * np.random.default_rng(1).standard_normal(params.size) * (params == 0)
    flow.set_parameters(params)
    return flow, position_map, cg.encode_boltzmann_generator(flow, position_map)


def platform_available(name):
    names = [openmm.Platform.getPlatform(i).getName() for i in range(openmm.Platform.getNumPlatforms())]
    return name in names


def main():
    ts = systems.alanine_dipeptide("obc")
    flow, position_map, model = build_model(ts)
    n = ARGS.block

    def integrator_for(platform, properties):
        integrator = cg.BoltzmannGeneratorIntegrator(ts.temperature, cg.BoltzmannGeneratorIntegrator.Importance)
        integrator.setModelBytes(model)
        integrator.setBlockSize(n)
        integrator.setRandomNumberSeed(7)
        context = openmm.Context(ts.system, integrator, openmm.Platform.getPlatformByName(platform), properties)
        context.setPositions(ts.positions)
        integrator.step(1)  # warm-up (first block, kernel compilation)
        return integrator, context

    reference, reference_context = integrator_for("Reference", {})
    target = cg.EnergyTarget(ts.system, "Reference", 1)
    configurations = cg.evaluate_proposals(reference, 256).positions

    def run_integrator(integrator):
        # Steps of exactly one block each, so every round draws one block and prices n proposals.
        remaining = n - (integrator.getNumProposals() % n)
        integrator.step(remaining)  # align to a block boundary (not timed)
        integrator.resetStatistics()
        start = time.perf_counter()
        integrator.step(n)
        total = time.perf_counter() - start
        return total, integrator.getFlowSeconds(), integrator.getEnergySeconds()

    def run_flow_engine():
        start = time.perf_counter()
        flow.sample(n, 11)
        return time.perf_counter() - start

    def run_plain_energy():
        start = time.perf_counter()
        target.evaluate(configurations, forces=False)
        return (time.perf_counter() - start) / len(configurations)

    rounds = {"integrator": [], "engine": [], "energy": []}
    for r in range(ARGS.repeats):
        rounds["integrator"].append(run_integrator(reference))
        rounds["engine"].append(run_flow_engine())
        rounds["energy"].append(run_plain_energy())
        log(f"round {r + 1}/{ARGS.repeats}: integrator {rounds['integrator'][-1][0]:.3f} s, "
            f"flow engine {rounds['engine'][-1]:.3f} s per {n}")
    total = statistics.median(t[0] for t in rounds["integrator"]) / n
    flow_time = statistics.median(t[1] for t in rounds["integrator"]) / n
    energy_time = statistics.median(t[2] for t in rounds["integrator"]) / n
    engine = statistics.median(rounds["engine"]) / n
    plain_energy = statistics.median(rounds["energy"])
    emit("proposals_per_s_reference", 1.0 / total, "proposals/s")
    emit("flow_us_per_proposal_reference", 1e6 * flow_time, "us")
    emit("energy_us_per_proposal_reference", 1e6 * energy_time, "us")
    emit("flow_engine_us_per_sample", 1e6 * engine, "us")
    emit("plain_energy_us_per_proposal", 1e6 * plain_energy, "us")
    emit("integrator_overhead_ratio_reference", total / (engine + plain_energy), "ratio")
    emit("flow_time_ratio_reference", flow_time / engine, "ratio")

    if platform_available("OpenCL"):
        try:
            opencl, _ = integrator_for("OpenCL", {"Precision": "mixed"})
        except openmm.OpenMMException as error:
            log(f"OpenCL skipped: {error}")
        else:
            times = [run_integrator(opencl) for _ in range(max(1, ARGS.repeats // 2))]
            emit("proposals_per_s_opencl", n / statistics.median(t[0] for t in times), "proposals/s")
            emit("flow_us_per_proposal_opencl", 1e6 * statistics.median(t[1] for t in times) / n, "us")
            emit("energy_us_per_proposal_opencl", 1e6 * statistics.median(t[2] for t in times) / n, "us")
    else:
        log("OpenCL platform not available: no OpenCL numbers")


if __name__ == "__main__":
    main()
