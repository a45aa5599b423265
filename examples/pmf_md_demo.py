#!/usr/bin/env python
"""Main job of `make demo`: molecular dynamics on a neural PMF inside an ordinary OpenMM Context.

A particle's x coordinate is an extended variable with the double-well potential of mean
force U(x) = x^4/4 - 3x^2 + x (kJ/mol, x in nm), the 1-D benchmark of the data-free
coarse-graining paper. An ensemble of MLPs is fitted to U by regression on random tanh
features (the hidden layer is drawn at random and the output layer solved by least squares,
so no optimizer is needed yet), handed to a PMFForce straight from numpy, and driven by
LangevinMiddleIntegrator. The sampled marginal of x is compared with the exact Boltzmann
density, and the ensemble spread shows where the PMF is uncertain (outside the fitted range).

Writes out/pmf_md_demo.png and prints energies and the probability of the left well.
"""
import argparse
import os

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import openmm
from openmm import unit
from tqdm import tqdm

import openmmcgflow as cg

KB = 0.00831446261815324  # kJ/mol/K


def double_well(x):
    return x ** 4 / 4 - 3 * x ** 2 + x


def fit_random_feature_ensemble(members, hidden, seed, x_range=(-3.6, 3.6)):
    """Ensemble of [1, hidden, 1] tanh MLPs fitted to the double well on x_range."""
    rng = np.random.default_rng(seed)
    x = np.linspace(*x_range, 400)
    weights, biases = [], []
    for _ in range(members):
        w1 = rng.normal(0.0, 1.2, size=(hidden, 1))
        b1 = rng.uniform(-4.0, 4.0, size=hidden)
        phi = np.tanh(x[:, None] * w1[:, 0] + b1)
        design = np.column_stack([phi, np.ones_like(x)])
        # Ridge regression keeps the output weights moderate where features are nearly collinear.
        coef = np.linalg.solve(design.T @ design + 1e-6 * np.eye(hidden + 1), design.T @ double_well(x))
        weights.append([w1, coef[:hidden][None, :]])
        biases.append([b1, np.array([coef[hidden]])])
    return weights, biases


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=2_000_000, help="MD steps (default 2000000)")
    parser.add_argument("--temperature", type=float, default=4.0 / KB, help="K (default: kT = 4 kJ/mol)")
    parser.add_argument("--platform", default="Reference", help="OpenMM platform (default Reference)")
    parser.add_argument("--seed", type=int, default=1, help="random seed (default 1)")
    parser.add_argument("--out", default="out", help="output directory (default out/)")
    args = parser.parse_args()
    if args.steps < 1000:
        parser.error("--steps must be at least 1000")
    if args.temperature <= 0:
        parser.error("--temperature must be positive")
    os.makedirs(args.out, exist_ok=True)
    kT = KB * args.temperature
    print(f"[demo] seed {args.seed}, kT = {kT:.3f} kJ/mol, platform {args.platform}")

    weights, biases = fit_random_feature_ensemble(members=5, hidden=48, seed=args.seed)
    pmf = cg.PMFForce()
    pmf.addCoordinate(0, 0)  # the x coordinate of particle 0 is the CG variable
    ensemble = pmf.setEnsembleParameters(weights, biases, activation="tanh")
    grid = np.linspace(-4.5, 4.5, 181)
    mean, std = ensemble.evaluate(grid[:, None])
    inside = np.abs(grid) <= 3.6
    print(f"[demo] fitted PMF: max |error| inside the fit range {np.max(np.abs(mean - double_well(grid))[inside]):.3f} kJ/mol; "
          f"ensemble std inside {std[inside].max():.3f}, at |x| = 4.5: {std[[0, -1]].max():.2f} kJ/mol")

    system = openmm.System()
    system.addParticle(1.0)
    system.addForce(pmf)
    restraint = openmm.CustomExternalForce("50*(y^2 + z^2)")  # keeps the particle on the x axis
    restraint.addParticle(0, [])
    system.addForce(restraint)
    integrator = openmm.LangevinMiddleIntegrator(args.temperature, 2.0, 0.01)
    integrator.setRandomNumberSeed(args.seed)
    context = openmm.Context(system, integrator, openmm.Platform.getPlatformByName(args.platform))
    context.setPositions([[-2.5, 0.0, 0.0]])
    context.setVelocitiesToTemperature(args.temperature, args.seed)

    stride = 50
    samples = np.empty(args.steps // stride)
    for i in tqdm(range(len(samples)), desc="MD", unit_scale=stride, mininterval=1.0):
        integrator.step(stride)
        samples[i] = context.getState(getPositions=True).getPositions(asNumpy=True)[0, 0].value_in_unit(unit.nanometer)
        if i % (len(samples) // 5) == 0:
            e = context.getState(getEnergy=True).getPotentialEnergy().value_in_unit(unit.kilojoule_per_mole)
            tqdm.write(f"[demo] step {(i + 1) * stride:>8d}  x = {samples[i]:+.3f} nm  U = {e:+.3f} kJ/mol  "
                       f"ensemble std = {pmf.getEnsembleStd(context):.4f} kJ/mol")
    samples = samples[len(samples) // 20:]  # drop the first 5% as equilibration

    fine = np.linspace(-5, 5, 4001)
    density = np.exp(-(double_well(fine) - double_well(fine).min()) / kT)
    density /= np.trapezoid(density, fine)
    p_left_exact = np.trapezoid(density[fine < 0], fine[fine < 0])
    p_left_md = np.mean(samples < 0)
    # Standard error from block averages: MD samples are correlated.
    blocks = np.array_split(samples < 0, 20)
    stderr = np.std([b.mean() for b in blocks], ddof=1) / np.sqrt(len(blocks))
    crossings = int(np.sum(np.diff(np.sign(samples)) != 0))
    print(f"[demo] P(x < 0): MD {p_left_md:.4f} +- {stderr:.4f}, exact {p_left_exact:.4f}; {crossings} barrier crossings")

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 4))
    ax1.plot(grid, double_well(grid), "k--", label="exact U(x)")
    ax1.plot(grid, mean, "C0", label="PMFForce (ensemble mean)")
    ax1.fill_between(grid, mean - 3 * std, mean + 3 * std, color="C0", alpha=0.3, label="±3 ensemble std")
    ax1.axvspan(-3.6, 3.6, color="0.9", zorder=0, label="fitted range")
    ax1.set(xlabel="x (nm)", ylabel="U (kJ/mol)", ylim=(-15, 30), title="Neural PMF")
    ax1.legend(fontsize=8)
    ax2.hist(samples, bins=120, range=(-4.5, 4.5), density=True, color="C1", alpha=0.6, label="Langevin MD")
    ax2.plot(fine, density, "k", label="exact Boltzmann")
    ax2.set(xlabel="x (nm)", ylabel="p(x)", xlim=(-4.5, 4.5),
            title=f"P(x<0): MD {p_left_md:.3f}±{stderr:.3f}, exact {p_left_exact:.3f}")
    ax2.legend(fontsize=8)
    fig.tight_layout()
    path = os.path.join(args.out, "pmf_md_demo.png")
    tmp = path + ".tmp.png"
    fig.savefig(tmp, dpi=120)
    os.replace(tmp, path)  # atomic: a reader never sees a half-written plot
    print(f"[demo] wrote {path}")


if __name__ == "__main__":
    main()
