#!/usr/bin/env python
"""Data-free coarse-graining of alanine dipeptide (amber96 + OBC, 330 K) from its energy alone.

Two latent models, each over 60 coordinates of the 22-atom molecule with the six rigid-body degrees
of freedom removed (the densities carry the log-volume of the map to Cartesian coordinates):

--model slowfast (Stupp & Koutsourelakis): the internal-coordinate split of the slow/fast model.
  Slow z = the 10 free torsions (phi, psi, the two omegas, the amide-H and carbonyl-O torsions and
  the three methyl rotors) with a circular spline-coupling flow on the 10-torus; fast X = the other 50
  coordinates (bonds, angles, dependent dihedrals), X | z ~ Gaussian whose mean and log-std are an
  MLP of z, with a learned z-independent correlation of the standardized noise and a conditional flow
  (context z) on that noise, so that the fast block's correlations and shape depend on the conformation
  (the papers' model is diagonal: "covariance": "diagonal" and no "fast_flow"); the map is the fixed
  permutation that puts z into the torsion columns of a Z-matrix in which HA and CB hang on impropers
  (systems.alanine_dipeptide().info["phi_psi_internal_coordinates"]), so nothing but phi and psi moves with the backbone torsions.
  Why every torsion is slow, not only phi and psi: a Gaussian on a periodic coordinate is not a
  density on the circle, and where the torsion is nearly free (a methyl rotor at small beta) reverse
  KL widens it without bound (the loss falls as log sigma while the energy stays periodic).
--model encdec_cartesian (Schoeberl, Zabaras & Koutsourelakis): as in the paper, in Cartesian coordinates
  with six of them fixed (CA at the origin, N on the x axis, C in the xy-plane:
  datafree.CartesianFrameEnergy); the model's 60 coordinates are displacements from the minimized
  structure in that frame. z ~ N(0, I_2), Gaussian decoder q(x | z) (tanh MLP mean, learnable
  z-independent variances), Gaussian encoder r(z | x); trained on the upper bound of the reverse KL; the
  encoder's mean is the learned pair of collective variables. amber96 cannot tell L from D alanine and
  the frame does not either, so D-form samples are mirrored (z -> -z in the frame) before phi and psi
  are measured. At this budget it loses alphaR (docs/results/data-free.md).
--model encdec: the same bound, latent dimension and networks, but the decoder works on the internal
  coordinates of slowfast with every free torsion made an open coordinate (theta = c + pi tanh(y / pi),
  the cut c on a barrier: phi = 120 deg, psi = -120 deg, opposite the reference for the other eight);
  not in the papers: a decoder with a z-dependent std and a full covariance, a learned flow prior q(z),
  and 1000 steps per level. It keeps alphaR: reweighted C7eq/beta 0.82, alphaR 0.18, ESS 0.07,
  separation 1.0 (seed 1, 10^7 evaluations); alphaL/C7ax is not found (docs/results/data-free.md).

All are trained by reverse KL with adaptive tempering (relative-KL rule) from beta_0 to beta = 1
(330 K), with the gradient guard and trimming of the largest per-sample losses. Prints energy
evaluations, wall time, which Ramachandran basins the model's own samples populate (C7eq/beta,
alphaR, alphaL/C7ax; found = at least 0.1 % of samples), the importance-reweighted basin populations,
the ESS of the importance weights exp(-u + log|det J| - log q), and for encdec how well the encoder
separates alphaR from C7eq/beta configurations (linear discriminant on z, held-out accuracy). Writes
out/data_free_alanine_<model>.png (model and reweighted Ramachandran free energies) and the beta
schedule. The models, energies, settings, basins and plots live in openmmcgflow.datafree.alanine
(shared with the tests and benchmarks); this script parses arguments, runs and reports.
"""
import argparse
import json

import openmmcgflow as cg
from openmmcgflow.datafree import alanine


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", choices=sorted(alanine.SETTINGS), default="slowfast")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--out", default="out")
    args = parser.parse_args()
    metrics, model, result, samples = alanine.run(args.model, args.seed)
    system = cg.systems.alanine_dipeptide("obc")
    _, energy = alanine.make_target(args.model, system, args.seed)
    by_beta = alanine.basin_fractions_by_beta(model, energy, system, result)
    print("beta schedule (beta, KL estimate, ESS fraction, evaluations):")
    for h in result.history[:: max(1, len(result.history) // 12)] + result.history[-1:]:
        print(f"  {h['beta']:.4f}  {h['kl']:9.3f}  {h['ess_fraction']:.4f}  {h['evaluations']}")
    print(json.dumps(metrics, indent=1))
    for basin, found, weight in zip(alanine.BASINS, metrics["model_fractions"], metrics["reweighted_fractions"]):
        print(f"{basin:12s} model {found:.4f}  reweighted {weight:.4f}")
    for name, (found, weight) in metrics["alpha_l_cores"].items():
        print(f"  minimum {name:14s} model {found:.5f}  reweighted {weight:.5f}")
    print("basin fractions of model samples at visited betas (beta: C7eq/beta, alphaR, alphaL/C7ax):")
    for beta, f in list(zip(*by_beta))[:: max(1, len(by_beta[0]) // 10)] + [(by_beta[0][-1], by_beta[1][-1])]:
        print(f"  {beta:.3f}: {f[0]:.4f} {f[1]:.4f} {f[2]:.4f}")
    for path in alanine.write_plots(args.model, result, samples, args.out, by_beta):
        print("wrote", path)


if __name__ == "__main__":
    main()
