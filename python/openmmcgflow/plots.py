"""PNG plots of what people would rather look at: free-energy profiles, Ramachandran plots, ESS curves.

Every function takes arrays (samples with optional log-weights, or profiles from :mod:`stats`),
writes a PNG with matplotlib's Agg backend (no display needed) and returns the path.
"""
import math
import os

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from . import stats  # noqa: E402


def save_figure(fig, path):
    """Writes a figure to a PNG at path (its folder made if needed), closes it, returns the path."""
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def plot_free_energy_1d(path, values, log_w=None, axis=(-math.pi, math.pi, 60), kT=2.494, periodic=False,
                        reference=None, label="sampled", xlabel="x", num_resamples=100):
    """Weighted 1-D free-energy profile (kJ/mol, minimum 0) with a bootstrap error band.

    reference: optional (centers, F) of a reference profile drawn as a black line.
    """
    profile = stats.free_energy_1d(np.asarray(values, float), None if log_w is None else np.asarray(log_w, float),
                                   tuple(axis), kT, periodic, num_resamples)
    edges = profile["edges"][0]
    centers = 0.5 * (edges[1:] + edges[:-1])
    f, e = profile["free_energy"], profile["error"]
    finite = np.isfinite(f)
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot(centers[finite], f[finite], "-", label=label)
    band = finite & np.isfinite(e)
    ax.fill_between(centers[band], (f - e)[band], (f + e)[band], alpha=0.3)
    if reference is not None:
        ax.plot(reference[0], reference[1], "k-", lw=1.5, label="reference")
    ax.set_xlabel(xlabel)
    ax.set_ylabel("free energy (kJ/mol)")
    ax.legend()
    return save_figure(fig, path)


def plot_ramachandran(path, phi, psi, log_w=None, bins=60, kT=2.494, vmax=25.0, title=None):
    """Weighted Ramachandran free-energy surface F(phi, psi) in kJ/mol (radians in, degrees on the axes)."""
    axis = (-math.pi, math.pi, bins)
    profile = stats.free_energy_2d(np.asarray(phi, float), np.asarray(psi, float),
                                   None if log_w is None else np.asarray(log_w, float), axis, axis, kT, True, True, 2)
    f = np.where(np.isfinite(profile["free_energy"]), profile["free_energy"], np.nan)
    fig, ax = plt.subplots(figsize=(5.5, 4.5))
    degrees = np.degrees(profile["edges"][0])
    mesh = ax.pcolormesh(degrees, degrees, f.T, vmin=0, vmax=vmax, cmap="viridis", shading="flat")
    fig.colorbar(mesh, ax=ax, label="free energy (kJ/mol)")
    ax.set_xlabel("phi (degrees)")
    ax.set_ylabel("psi (degrees)")
    ax.set_aspect("equal")
    if title:
        ax.set_title(title)
    return save_figure(fig, path)


def plot_ess_curve(path, x, ess_fraction, xlabel="training step", label=None):
    """The Kish ESS fraction against training steps (or beta, or the clipping level); log y-axis."""
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot(x, ess_fraction, "-o", ms=3, label=label)
    ax.set_xlabel(xlabel)
    ax.set_ylabel("ESS / n")
    ax.set_yscale("log")
    if label:
        ax.legend()
    return save_figure(fig, path)


def plot_free_energy_grids(path, axis, grids, titles, vmax=25.0, label="free energy (kJ/mol)"):
    """Side-by-side (phi, psi) surfaces given on a grid (e.g. a learned PMF, a reference, an ensemble spread):
    ``axis`` the bin centres in radians (G,), each grid (G, G) indexed [phi, psi], NaN drawn blank."""
    axis = np.asarray(axis, float)
    step = axis[1] - axis[0]
    edges = np.degrees(np.append(axis - step / 2, axis[-1] + step / 2))
    fig, axes = plt.subplots(1, len(grids), figsize=(4.8 * len(grids), 4.2), squeeze=False)
    for ax, grid, title in zip(axes[0], grids, titles):
        mesh = ax.pcolormesh(edges, edges, np.asarray(grid, float).T, vmin=0, vmax=vmax, cmap="viridis", shading="flat")
        fig.colorbar(mesh, ax=ax, label=label)
        ax.set_xlabel("phi (degrees)")
        ax.set_ylabel("psi (degrees)")
        ax.set_aspect("equal")
        ax.set_title(title)
    return save_figure(fig, path)
