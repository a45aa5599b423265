#!/usr/bin/env python
"""CGMonteCarloIntegrator throughput: Metropolis Monte Carlo of many CG walkers on a PMF ensemble.
Prints one JSON object per line.

The case of the active-learning paper (Schopmans & Friederich, alanine dipeptide): 200 walkers in
(phi, psi), the PMF an ensemble of 10 MLPs [4, 256, 128, 32, 1] with sigmoid activations on
(cos phi, sin phi, cos psi, sin psi), Gaussian proposals of scale 0.1 rad, 300 K, the uncertainty
search on (threshold 0.2 k_B T, so every step also yields each walker's ensemble spread).

One "step" moves all 200 walkers (200 proposals). The peer in the same run is the same walkers in plain
numpy: the same weights, a batched numpy forward pass of all members, Metropolis in numpy. Rounds
alternate between the contenders so that machine noise hits all of them alike; the median round is
reported, with the ratio to numpy.
"""
import argparse
import json
import statistics
import time

import numpy as np
import openmm

import openmmcgflow as cg
from openmmcgflow import active_learning as al

KT = 0.00831446261815324 * 300.0


def emit(name, value, unit_name, **extra):
    print(json.dumps({"name": name, "value": round(float(value), 4), "unit": unit_name, **extra}), flush=True)


class NumpyWalkers:
    """The peer: the same ensemble and Metropolis chains in numpy."""

    def __init__(self, ensemble, start, scale, seed):
        d = ensemble.to_dict()
        # Transposed, contiguous float64 once, so each layer is one BLAS call on the whole batch.
        self.weights = [[np.ascontiguousarray(np.asarray(w, dtype=float).T) for w in ws] for ws in d["weights"]]
        self.biases = [[np.asarray(b, dtype=float) for b in bs] for bs in d["biases"]]
        self.x = start.copy()
        self.scale = scale
        self.rng = np.random.default_rng(seed)
        self.energy, self.spread = self.price(self.x)

    def price(self, x):
        inputs = np.concatenate([np.cos(x[:, :1]), np.sin(x[:, :1]), np.cos(x[:, 1:]), np.sin(x[:, 1:])], axis=1)
        members = []
        for ws, bs in zip(self.weights, self.biases):
            h = inputs
            for layer, (w, b) in enumerate(zip(ws, bs)):
                h = h @ w + b
                if layer < len(ws) - 1:
                    h = 1.0 / (1.0 + np.exp(-h))
            members.append(h[:, 0])
        members = np.array(members)
        return members.mean(axis=0), members.std(axis=0)

    def step(self, n):
        for _ in range(n):
            proposed = self.x + self.scale * self.rng.normal(size=self.x.shape)
            proposed -= 2 * np.pi * np.floor(proposed / (2 * np.pi) + 0.5)
            energy, spread = self.price(proposed)
            accept = np.log(self.rng.uniform(size=len(energy))) < -(energy - self.energy) / KT
            self.x[accept] = proposed[accept]
            self.energy[accept] = energy[accept]
            self.spread[accept] = spread[accept]


def openmm_walkers(model_bytes, start, platform, seed):
    system, _ = al.angle_walker_system(model_bytes, len(start))
    # The search is on but cannot stop a walker (threshold far above any spread), so every round
    # moves all walkers: the spread is computed as in a real search, nobody drops out.
    integrator = al.angle_integrator(len(start), proposal_scale=0.1, threshold_kt=1e6, seed=seed)
    props = {"Precision": "single"} if platform in ("OpenCL", "CUDA") else {}
    context = openmm.Context(system, integrator, openmm.Platform.getPlatformByName(platform), props)
    context.setPositions(al.walker_positions(start))
    return context, integrator


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--walkers", type=int, default=200)
    parser.add_argument("--steps", type=int, default=50, help="MC steps per round")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--platforms", default="Reference,CPU,OpenCL")
    args = parser.parse_args()
    ensemble = cg.MLPEnsemble([4, 256, 128, 32, 1], 10, "sigmoid", seed=1)
    model_bytes = ensemble.to_bytes()
    start = np.random.default_rng(0).uniform(-np.pi, np.pi, size=(args.walkers, 2))
    contenders = {}
    for name in args.platforms.split(","):
        try:
            context, integrator = openmm_walkers(model_bytes, start, name, seed=3)
        except Exception as error:  # a platform this machine lacks
            print(json.dumps({"skipped": name, "reason": str(error)[:200]}), flush=True)
            continue
        integrator.step(2)  # warm-up: kernel compilation
        contenders[name] = (context, integrator)
    peer = NumpyWalkers(ensemble, start, 0.1, seed=3)
    peer.step(2)
    times = {name: [] for name in list(contenders) + ["numpy"]}
    for _ in range(args.rounds):
        for name, (context, integrator) in contenders.items():
            t = time.perf_counter()
            integrator.step(args.steps)
            times[name].append(time.perf_counter() - t)
        t = time.perf_counter()
        peer.step(args.steps)
        times["numpy"].append(time.perf_counter() - t)
    rate = {name: args.steps / statistics.median(values) for name, values in times.items()}
    extra = {"walkers": args.walkers, "members": 10, "widths": [4, 256, 128, 32, 1]}
    for name, steps_per_s in rate.items():
        emit("cg_mc_steps_per_s_%s" % name.lower(), steps_per_s, "steps/s", **extra)
        emit("cg_mc_walker_moves_per_s_%s" % name.lower(), steps_per_s * args.walkers, "moves/s", **extra)
    for name in contenders:
        emit("cg_mc_speedup_%s_vs_numpy" % name.lower(), rate[name] / rate["numpy"], "ratio")
        emit("cg_mc_acceptance_%s" % name.lower(), contenders[name][1].getAcceptanceRate(), "fraction")


if __name__ == "__main__":
    main()
