#!/usr/bin/env python
"""A few-minute CG Boltzmann generator of alanine dipeptide (core-beta map, amber96 + OBC, 300 K): the main
part of `make demo`.

It runs the whole pipeline of ``openmmcgflow.cgbg.pipeline.run_alanine`` on a reduced budget: 1 ns of
gamma = 9 metadynamics for force matching and 0.6 ns of gamma = 1.5 metadynamics for the flow, short fits, 20 000
flow proposals reweighted inside OpenMM, and a short atomistic reference (metadynamics, then exact
reweighting under the frozen bias). If the benchmark's long reference (``benchmarks/cg_bg.py``) exists
under out/cg_bg, pass ``--reference full`` to use it. The benchmark's budget and its numbers are in
docs/results/cg-boltzmann-generators.md: this run shows the pipeline, not the paper's accuracy.

    python examples/cgbg_alanine.py            # ~4 minutes on 2 cores; plots in out/cgbg_demo/
"""
import argparse
import sys
import time

from openmmcgflow.cgbg import pipeline

DEMO_REFERENCE = dict(bias_frames=3000, sample_frames=10000, record_every=200, hill_interval_ps=0.5,
                      bias_factor=8.0, seed=1)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", default="out/cgbg_demo")
    parser.add_argument("--reference", choices=("demo", "full"), default="demo",
                        help="demo: 0.3 ns + 1 ns reference built here; full: the benchmark's 3 + 12 ns")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    settings = pipeline.AlanineSettings(
        case="ala2_core_beta_biased", seed=args.seed, fm_ns=1.0, flow_ns=0.6, fm_epochs=30, flow_epochs=15,
        proposals=20_000, cg_md_ns=0.5,
        reference=dict(DEMO_REFERENCE) if args.reference == "demo" else dict(pipeline.FULL_REFERENCE))
    print("CG Boltzmann generator, alanine dipeptide, core-beta map (6 beads), amber96 + OBC at 300 K.")
    print("Reduced budget: %.1f ns metadynamics (gamma 9) for force matching, %.1f ns (gamma 1.5) for the flow,"
          % (settings.fm_ns, settings.flow_ns))
    print("%d + %d epochs, %d proposals; reference: %s. The benchmark's budget is 5-10x this."
          % (settings.fm_epochs, settings.flow_epochs, settings.proposals,
             "0.3 ns metadynamics + 1 ns under the frozen bias" if args.reference == "demo" else "3 + 12 ns"))
    print("Stage 1/4: atomistic MD (two datasets and the reference, on two processes) ...", flush=True)
    start = time.perf_counter()
    stage_after = {"reference_noise_pmf_error_psi": "Stage 2/4: force matching the PMFForce ...",
                   "wall_s_force_matching": "Stage 3/4: training the CG flow ...",
                   "flow_best_validation_nll": "Stage 4/4: reweighting %d proposals inside OpenMM, then plain CG MD ..."
                   % settings.proposals}

    def emit(name, value, unit):
        if name in stage_after:
            print("  (%.0f s) %s" % (time.perf_counter() - start, stage_after[name]), flush=True)

    results = pipeline.run_alanine(settings, args.out, emit=emit, progress=sys.stderr.isatty())
    value = lambda name: results[name]["value"]  # noqa: E731
    print()
    print("phi and psi free-energy profiles against the atomistic reference (60 bins; lower is better):")
    print("%-30s %10s %10s %10s %10s" % ("", "JS phi", "PMF err phi", "JS psi", "PMF err psi"))
    for label, suffix in (("flow samples, raw", "_raw"), ("reweighted (top 1 % dropped)", ""),
                          ("plain CG MD with the PMF", "_cg_md")):
        print("%-30s %10.4f %10.3f %10.4f %10.3f" % (label, value("js_phi" + suffix), value("pmf_error_phi" + suffix),
                                                     value("js_psi" + suffix), value("pmf_error_psi" + suffix)))
    print("%-30s %10.4f %10.3f %10.4f %10.3f" % ("reference noise floor", value("reference_noise_js_phi"),
                                                 value("reference_noise_pmf_error_phi"), value("reference_noise_js_psi"),
                                                 value("reference_noise_pmf_error_psi")))
    print("ESS fraction %.3f (top 1 %% dropped), %.3f without clipping; P(phi > 0) %.4f reweighted, reference %.4f"
          % (value("ess_fraction"), value("ess_fraction_unclipped"), value("fraction_phi_positive"),
             value("reference_fraction_phi_positive")))
    print("D-form fraction of the PMF's ensemble %.2g (0.5 would mean a PMF blind to chirality)"
          % value("d_form_fraction"))
    print("%.0f s in all. Plots: %s/%s_seed%d/*.png" % (value("wall_s_total"), args.out, settings.case, args.seed))


if __name__ == "__main__":
    main()
