#!/usr/bin/env python
"""The cost of drawing CG proposals with their log q: coupling flow against CNF, side by side.

Loads trained ``boltzmann_generator`` model files (the ``cg_flow.model`` that ``benchmarks/cg_bg.py``
writes for ``--proposal coupling`` under ``<case>_seed<seed>/`` and for ``--proposal cnf`` under
``<case>_seed<seed>/cnf/``), and times ``flow.sample(n)`` (samples and exact log q, the flow alone, no
OpenMM) for each, interleaved over ``--repeats`` rounds so that both see the same machine; the median
is reported. For a CNF also the vector-field evaluations per sample (Dormand-Prince 5(4), exact
divergence) and the samples the solver gave up on.

    python benchmarks/proposal_cost.py --out out/cg_bg --cases ala2_core_beta_seed1 ala2_heavy_biased_seed1

JSON lines: proposal_s_per_1e4_<case>_<kind> (s per 10^4 samples with log q on --threads threads; kinds
coupling, cnf and cnf_mixed: the CNF with its network in float32, ODE state and sums in float64),
cnf_float64_over_mixed_time_<case>,
vector_field_evaluations_per_sample_<case>, ode_failed_samples_<case>, cnf_over_coupling_time_<case>.
"""
import argparse
import json
import os
import statistics
import time

from openmmcgflow import _core as core


def emit(name, value, unit, **extra):
    print(json.dumps(dict({"name": name, "value": value, "unit": unit}, **extra)), flush=True)


def load_flow(path):
    with open(path, "rb") as handle:
        flow, _, _ = core.decode_boltzmann_generator(handle.read())
    return flow


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", default="out/cg_bg", help="the --out of benchmarks/cg_bg.py")
    parser.add_argument("--cases", nargs="+", default=["mb_unbiased_seed1", "ala2_core_beta_seed1",
                                                       "ala2_heavy_biased_seed1"])
    parser.add_argument("--samples", type=int, default=10000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    for case in args.cases:
        paths = {"coupling": os.path.join(args.out, case, "cg_flow.model"),
                 "cnf": os.path.join(args.out, case, "cnf", "cg_flow.model")}
        missing = [p for p in paths.values() if not os.path.exists(p)]
        if missing:
            emit("skipped_" + case, 1, "case", missing=missing)
            continue
        flows = {kind: load_flow(path) for kind, path in paths.items()}
        flows["cnf_mixed"] = load_flow(paths["cnf"])
        flows["cnf_mixed"].precision = "mixed"
        times = {kind: [] for kind in flows}
        for flow in flows.values():
            flow.num_threads = args.threads
        for round_ in range(args.repeats):
            for kind, flow in flows.items():
                if kind.startswith("cnf"):
                    flow.reset_ode_statistics()
                t0 = time.perf_counter()
                flow.sample(args.samples, 1000 + round_)
                times[kind].append(time.perf_counter() - t0)
        per = {kind: statistics.median(t) * 1e4 / args.samples for kind, t in times.items()}
        for kind, seconds in per.items():
            emit("proposal_s_per_1e4_%s_%s" % (case, kind), seconds, "s", threads=args.threads,
                 samples=args.samples, repeats=args.repeats, all=[t * 1e4 / args.samples for t in times[kind]])
        stats = flows["cnf"].ode_statistics()
        emit("vector_field_evaluations_per_sample_%s" % case, stats["evaluations_per_sample"], "evaluations")
        emit("ode_failed_samples_%s" % case, stats["failed"], "samples")
        emit("cnf_over_coupling_time_%s" % case, per["cnf"] / per["coupling"], "ratio")
        emit("cnf_float64_over_mixed_time_%s" % case, per["cnf"] / per["cnf_mixed"], "ratio")


if __name__ == "__main__":
    main()
