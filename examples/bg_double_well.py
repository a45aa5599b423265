#!/usr/bin/env python
"""Flow moves inside OpenMM: a BoltzmannGeneratorIntegrator next to Langevin on the 2-D double well.

The double well of the data-free coarse-graining paper (kT = 1 kJ/mol) has two wells separated by
a barrier that Langevin dynamics crosses only rarely: started in the major well, a plain Langevin
run never sees the minor one (exact weight 0.83 %). Here a flow is trained by reverse KL at a
higher temperature (beta = --train-beta, where the barrier is low enough for the flow to cover both
wells), saved as a Boltzmann-generator model (flow + PositionMap over particle 0's x and y), and
used at beta = 1 inside ordinary OpenMM Contexts:
  1. LangevinMiddleIntegrator alone;
  2. a CompoundIntegrator alternating Langevin steps and exact independence Metropolis-Hastings flow
     moves (BoltzmannGeneratorIntegrator, Metropolis mode);
  3. the same integrator in Importance mode: reweighted estimates, Kish ESS and log Z.
It prints P(x1 < 0) of each against the exact value and writes out/bg_double_well.png.
"""
import argparse
import os

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import openmm
from tqdm import tqdm

import openmmcgflow as cg


def train_proposal(system, beta, steps, batch, seed):
    """A flow trained by reverse KL at inverse temperature beta (pathwise, forces from OpenMM)."""
    target = cg.EnergyTarget(system.system, platform="Reference")
    flow = cg.Flow({"dimension": 2, "num_layers": 8, "hidden": 64, "bound": 6.0, "seed": seed,
                    "masks": [[True, False], [False, True], [True, False], [False, True]]})
    trainer = cg.ModelTrainer(flow, {"learning_rate": 3e-3, "cosine_steps": steps, "warmup_steps": 20,
                                    "final_learning_rate": 1e-4, "guard": True})
    for step in tqdm(range(steps), desc=f"reverse KL at beta = {beta}"):
        x, _ = trainer.sample(batch, seed=seed * 1_000_003 + step)
        positions = np.repeat(system.positions[None], len(x), axis=0)
        positions[:, 0, :2] = x
        energies, forces, finite = target.evaluate(positions)
        trainer.reverse_kl_step(np.where(finite, energies, np.inf), forces[:, 0, :2], beta=beta)
    return flow


def x1_of(context):
    return context.getState(getPositions=True).getPositions(asNumpy=True)[0][0]._value


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--train-beta", type=float, default=0.3)
    parser.add_argument("--train-steps", type=int, default=300)
    parser.add_argument("--cycles", type=int, default=5000, help="Langevin steps + flow moves per run")
    parser.add_argument("--langevin-steps", type=int, default=4, help="Langevin steps between flow moves")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--out", default="out/bg_double_well.png")
    args = parser.parse_args()

    system = cg.systems.double_well()
    flow = train_proposal(system, args.train_beta, args.train_steps, 256, args.seed)
    model = cg.encode_boltzmann_generator(flow, cg.PositionMap.cartesian(1, [(0, 0), (0, 1)]),
                                          info={"trained_at_beta": args.train_beta})
    grid = np.linspace(-5, 5, 2001)
    exact = system.info["x1_marginal"](grid, system.beta)
    p_exact = np.trapezoid(np.where(grid < 0, exact, 0.0), grid)

    def langevin():
        integrator = openmm.LangevinMiddleIntegrator(system.temperature, 5.0, 0.005)
        integrator.setRandomNumberSeed(args.seed)
        return integrator

    def generator(mode):
        integrator = cg.BoltzmannGeneratorIntegrator(system.temperature, mode)
        integrator.setModelBytes(model)
        integrator.setRandomNumberSeed(args.seed)
        return integrator

    # 1. Langevin alone, as many Langevin steps as run 2 makes.
    plain = langevin()
    context = openmm.Context(system.system, plain, openmm.Platform.getPlatformByName("Reference"))
    context.setPositions(system.positions)
    context.setVelocitiesToTemperature(system.temperature, args.seed)
    x1_langevin = []
    for _ in tqdm(range(args.cycles), desc="Langevin"):
        plain.step(args.langevin_steps)
        x1_langevin.append(x1_of(context))
    x1_langevin = np.array(x1_langevin)
    del context

    # 2. Langevin + flow moves.
    bg = generator(cg.BoltzmannGeneratorIntegrator.Metropolis)
    compound = openmm.CompoundIntegrator()
    compound.addIntegrator(langevin())
    compound.addIntegrator(bg)
    context = openmm.Context(system.system, compound, openmm.Platform.getPlatformByName("Reference"))
    context.setPositions(system.positions)
    context.setVelocitiesToTemperature(system.temperature, args.seed)
    x1_compound = []
    for _ in tqdm(range(args.cycles), desc="Langevin + flow moves"):
        compound.setCurrentIntegrator(0)
        compound.step(args.langevin_steps)
        compound.setCurrentIntegrator(1)
        compound.step(1)
        x1_compound.append(x1_of(context))
    x1_compound = np.array(x1_compound)
    acceptance = bg.getAcceptanceRate()
    del context

    # 3. Importance sampling with the same proposals.
    importance = generator(cg.BoltzmannGeneratorIntegrator.Importance)
    context = openmm.Context(system.system, importance, openmm.Platform.getPlatformByName("Reference"))
    context.setPositions(system.positions)
    batch = cg.evaluate_proposals(importance, 20000)
    importance.step(20000)
    w = np.exp(batch.log_w - batch.log_w.max())
    x1_batch = batch.positions[:, 0, 0]
    p_weighted = np.sum(w * (x1_batch < 0)) / w.sum()

    print(f"P(x1 < 0): exact {p_exact:.4f}")
    print(f"  Langevin alone            {np.mean(x1_langevin < 0):.4f}")
    print(f"  Langevin + flow moves     {np.mean(x1_compound < 0):.4f}  (flow-move acceptance {acceptance:.3f})")
    print(f"  importance sampling       {p_weighted:.4f}  (proposals alone {np.mean(x1_batch < 0):.4f})")
    print(f"Kish ESS fraction {importance.getEffectiveSampleFraction():.3f} of {importance.getNumProposals()} "
          f"proposals; log Z = {importance.getLogZ():.4f} +- {importance.getLogZError():.4f}")

    os.makedirs(os.path.dirname(args.out) or ".", exist_ok=True)
    fig, ax = plt.subplots(figsize=(7, 4.5))
    bins = np.linspace(-5, 5, 101)
    ax.plot(grid, exact, "k-", lw=2, label="exact")
    ax.hist(x1_langevin, bins=bins, density=True, histtype="step", label="Langevin alone")
    ax.hist(x1_compound, bins=bins, density=True, histtype="step", label="Langevin + flow moves")
    ax.hist(x1_batch, bins=bins, weights=w, density=True, histtype="step", label="flow proposals, reweighted")
    ax.hist(x1_batch, bins=bins, density=True, histtype="step", ls=":", label=f"flow proposals (beta = {args.train_beta})")
    ax.set_xlabel("x1 (nm)")
    ax.set_ylabel("density")
    ax.set_yscale("log")
    ax.set_ylim(1e-5, 3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(args.out, dpi=120)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
