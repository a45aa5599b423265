#!/usr/bin/env python
"""CG Boltzmann generators end to end (Chen, Zhao, Eckwert & Zavadlav): alanine dipeptide in implicit
solvent (amber96 + OBC, 300 K) and the Mueller-Brown potential. Data by OpenMM MD, force matching into a
PMFForce, a spline flow over the CG coordinates, reweighting inside OpenMM, metrics against the atomistic
reference (alanine) or the exact PMF (Mueller-Brown). The pipelines are
``openmmcgflow.cgbg.pipeline.run_alanine`` and ``openmmcgflow.cgbg.mueller_brown.run_mueller_brown``.

    python benchmarks/cg_bg.py --case ala2_core_beta --seed 1
    python benchmarks/cg_bg.py --case mb_biased --seed 1
    python benchmarks/cg_bg.py --case ala2_core_beta --seed 1 --proposal cnf

--proposal picks the CG flow: "coupling" (the spline-coupling flow, forward KL; default) or "cnf" (the
paper's continuous normalizing flow by conditional flow matching, exact log q by Dormand-Prince 5(4) at
1e-4 with the exact divergence). A CNF run reuses the coupling run's data and PMF (same --out and seed)
and writes under <case>_seed<seed>/cnf/. Both print wall_s_flow (training), wall_s_per_1e4_samples (10^4
samples with log q on 2 threads); the CNF also vector_field_evaluations_per_sample and ode_failed_samples.

Mueller-Brown cases (mb_unbiased, mb_biased: the paper's Gaussian bias at x = 32) print js_x, pmf_error_x,
ess_fraction, pmf_max_error_kT (largest |F - F_exact| over the populated range, reweighted), its
_unclipped and _raw forms, pmf_model_max_error_kT (the learned PMF itself), md_ns and wall_s per stage.

Cases: ala2_core_beta, ala2_core_beta_biased, ala2_heavy, ala2_heavy_biased ("_biased": the flow is
trained on gamma = 1.5 well-tempered metadynamics instead of unbiased MD). The force-matching data are
gamma = 9 metadynamics (ESFM) in every case; one atomistic run recorded with the heavy-atom map serves both
maps (core beta is a subset of its beads). Stages are cached under --out (datasets resume, the PMF fit and
the flow resume from their checkpoints); the atomistic reference (metadynamics, then a frozen bias and exact
reweighting: cgbg.reference) is built once and shared by every case and seed.

Alanine cases print JSON lines {"name", "value", "unit"}: js_phi, js_psi, pmf_error_phi, pmf_error_psi,
ess_fraction (top 1 % of the weights dropped, the paper's heuristic), the same without clipping (_unclipped:
exact importance sampling), js_*_raw / pmf_error_*_raw (the flow's samples unweighted), d_form_fraction, the plain CG MD baseline (js_phi_cg_md, ...), the
reference noise floor, md_ns and wall_s per stage, energy_evaluations. Writes PNGs (profiles, weighted
Ramachandran, energy histogram, clipping curve) and results.json under --out/<case>_seed<seed>/.
"""
import argparse
import json
import sys

from openmmcgflow.cgbg import mueller_brown, pipeline


def emit(name, value, unit):
    print(json.dumps({"name": name, "value": value, "unit": unit}), flush=True)


def main():
    defaults = pipeline.AlanineSettings()
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--case", choices=sorted(pipeline.CASES) + sorted(mueller_brown.CASES), default=defaults.case)
    parser.add_argument("--seed", type=int, default=defaults.seed, help="data, training and proposal seed (>= 1)")
    parser.add_argument("--out", default="out/cg_bg")
    parser.add_argument("--fm-ns", type=float, default=defaults.fm_ns, help="alanine: gamma = 9 metadynamics for FM")
    parser.add_argument("--flow-ns", type=float, default=defaults.flow_ns, help="alanine: flow data (unbiased or gamma 1.5)")
    parser.add_argument("--fm-epochs", type=int, default=defaults.fm_epochs, help="alanine")
    parser.add_argument("--flow-epochs", type=int, default=defaults.flow_epochs, help="alanine")
    parser.add_argument("--proposals", type=int, default=None,
                        help="default: %d (alanine), %d (Mueller-Brown)" % (defaults.proposals,
                                                                           mueller_brown.MuellerBrownSettings.proposals))
    parser.add_argument("--cg-md-ns", type=float, default=defaults.cg_md_ns, help="alanine: plain CG MD baseline (0: skip)")
    parser.add_argument("--hidden", default=",".join(map(str, defaults.hidden)), help="alanine: PMF MLP hidden widths")
    parser.add_argument("--proposal", choices=pipeline.PROPOSALS, default="coupling",
                        help="the CG flow: spline coupling (forward KL) or a CNF (flow matching)")
    parser.add_argument("--cnf-epochs", type=int, default=None,
                        help="CNF flow-matching epochs (default: %d alanine, %d Mueller-Brown)"
                        % (defaults.cnf_epochs, mueller_brown.MuellerBrownSettings.cnf_epochs))
    parser.add_argument("--cnf-hidden", type=int, default=None,
                        help="CNF vector field width (default: %d alanine, %d Mueller-Brown; 3 hidden layers)"
                        % (defaults.cnf_hidden, mueller_brown.MuellerBrownSettings.cnf_hidden))
    parser.add_argument("--cnf-ot", action="store_true", help="alanine: minibatch optimal-transport pairing")
    parser.add_argument("--compare-unbiased-pmf", action="store_true",
                        help="alanine: also force-match on unbiased MD (PMF_U) and judge it on the same proposals")
    args = parser.parse_args()
    try:
        if args.case in mueller_brown.CASES:
            settings = mueller_brown.MuellerBrownSettings(case=args.case, seed=args.seed, proposal=args.proposal)
            if args.proposals is not None:
                settings.proposals = args.proposals
            if args.cnf_epochs is not None:
                settings.cnf_epochs = args.cnf_epochs
            if args.cnf_hidden is not None:
                settings.cnf_hidden = args.cnf_hidden
            mueller_brown.run_mueller_brown(settings, args.out, emit=emit, progress=sys.stderr.isatty())
            return
        settings = pipeline.AlanineSettings(case=args.case, seed=args.seed, fm_ns=args.fm_ns, flow_ns=args.flow_ns,
                                            fm_epochs=args.fm_epochs, flow_epochs=args.flow_epochs,
                                            proposals=args.proposals or defaults.proposals, cg_md_ns=args.cg_md_ns,
                                            hidden=tuple(int(h) for h in args.hidden.split(",")),
                                            compare_unbiased_pmf=args.compare_unbiased_pmf, proposal=args.proposal,
                                            cnf_epochs=args.cnf_epochs or defaults.cnf_epochs,
                                            cnf_hidden=args.cnf_hidden or defaults.cnf_hidden,
                                            cnf_optimal_transport=args.cnf_ot)
        pipeline.run_alanine(settings, args.out, emit=emit, progress=sys.stderr.isatty())
    except ValueError as error:
        raise SystemExit(str(error))


if __name__ == "__main__":
    main()
