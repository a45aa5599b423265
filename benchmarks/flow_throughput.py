#!/usr/bin/env python
"""Normalizing-flow throughput: our engine against a PyTorch peer and normflows. Prints JSON lines.

The flow is the alanine-dipeptide internal-coordinate flow of the FAB / conditional-flow papers
(60 dims, 12 circular; 12 RQ-spline coupling layers with residual-MLP conditioners of 256 hidden
units; benchmarks/peers/torch_flow.py documents it). Both sides get the same config and the same
weights (ours' initialization with small noise on the zero output layers, loaded into the peer
through the flat parameter vector) and run in float64 on --threads threads. The peer is that
flow written in plain PyTorch as a user would (inference under no_grad, Adam for training); it
needs benchmarks/peers/install_torch.sh once. The second peer is the same flow built with
normflows, as FAB builds it (benchmarks/peers/normflows_flow.py, which documents what had to be
adapted so that log q agrees with ours); it needs the peers environment: run
benchmarks/peers/install_peers.sh once and this script with .venv-peers/bin/python. Without
normflows the normflows lines are skipped (a message on stderr says so). torch runs on --threads
threads, as ours (torch.set_num_threads; the log line says so).

Measured at --batch (1024), in samples per second, median of --repeats rounds after a warm-up,
ours and the peers timed in turn within each round (the order rotating) so that load drifts hit
all:
  sample_*           sampling x with log q(x)
  log_prob_*         log q(x) of given x
  reverse_kl_step_*  one Adam step on the reverse KL (samples + harmonic energy in numpy +
                     pathwise backward), U = 0.5 |x|^2 on the real dims
  forward_kl_step_*  one Adam step on -mean log q(x) of a fixed batch
Each as *_per_s (ours), *_per_s_torch, *_ratio (ours / torch), *_per_s_mixed and *_mixed_ratio
(ours with precision "mixed" / torch float64), *_roofline_fraction(_torch), *_flop_per_sample.
Small batches (1 and 16, many rounds): sample_batch{1,16}_* and log_prob_batch{1,16}_*, with
_per_s, _per_s_torch, _ratio, _per_s_mixed and _mixed_ratio. Also dgemm_gflops (best of numpy's and torch's BLAS; with
_numpy and _torch), mixed_logq_max_abs_diff (|log q mixed - log q float64| for the same x and
weights) and logq_max_abs_diff_torch (ours float64 against the peer, a check that both sides
compute the same flow).

normflows, where installed: *_per_s_normflows, *_ratio_vs_normflows (ours / normflows),
*_mixed_ratio_vs_normflows and *_roofline_fraction_normflows for the four passes, and the same
for the small batches; logq_max_abs_diff_normflows (log q of the same x; samples with a real
coordinate beyond the tail bound, where normflows 1.7.3 outputs 0 instead of the identity, are
left out and counted in normflows_samples_outside_bound), sample_x_max_abs_diff_normflows and
sample_logq_max_abs_diff_normflows (x and log q of the sampling direction for the same base
points, through ours' sample_from_base).

Memory: stream_gb_per_s (best of a STREAM-like copy and triad, stream_copy_gb_per_s and
stream_triad_gb_per_s, numpy on --threads Python threads over float64 arrays of 256 MiB, 8 times
the L3; STREAM's byte counts: 16 and 24 bytes per element), flow_parameter_bytes (float64), and
sample_batch1_memory_roofline_fraction(_mixed, _torch, _normflows): the time to read the flow's
parameters once at stream_gb_per_s (float32 weights for mixed) over the batch-1 sampling time. A
batch-1 pass reads every weight once, so this is its floor when the weights come from DRAM (a
fraction near 1: bound by memory bandwidth); a fraction above 1 means they came (partly) from the
32 MiB L3, which the float32 weights of mixed (15 MB) fit and the float64 ones (31 MB) barely do.

--torch-only prints only what needs no engine.

Roofline: the matrix products are almost all of the work, so the floor of a pass is its GEMM
FLOPs over the DGEMM rate of this machine. FLOPs are counted from the config: 2 k m per sample
for every Linear(k, m) of every conditioner. A training step adds the backward: 2 k m for the
weight gradient of every Linear and 2 k m for its input gradient, except for the first Linear of
the first layer the pass goes through, whose input is data (base samples, or the x of the forward
KL) that needs no gradient; the first Linears of the other layers do need it, since their inputs
are outputs of earlier layers. Splines, activations, bias adds and the optimizer are not
counted, so a fraction near 1 means GEMM-bound. The DGEMM rate is measured here, on --threads
threads, for exactly the forward products of one pass at --batch (batch x k times k x m for each
conditioner Linear, weighted by how often it occurs), best of numpy and torch, fastest of the
timings taken at the start and at the end of the run (so the roofline lines come last); the
backward products (transposed operands) are taken to run at the same rate.
"""
import argparse
import json
import math
import os
import statistics
import sys
import time


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--batch", type=int, default=1024)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--repeats", type=int, default=7, help="timed rounds per measurement (after a warm-up)")
    p.add_argument("--torch-only", action="store_true", help="measure the PyTorch peer and DGEMM only")
    p.add_argument("--quick", action="store_true", help="few repeats, for a smoke test")
    args = p.parse_args()
    if args.quick:
        args.repeats = min(args.repeats, 2)
    return args


ARGS = parse_args()
# OpenBLAS and OpenMP size their thread pools when they load, so the thread count has to be in
# the environment before numpy and torch are imported.
for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_var] = str(ARGS.threads)

import numpy as np  # noqa: E402

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "peers"))
try:
    import torch  # noqa: E402
    import torch_flow  # noqa: E402
except ImportError as error:
    sys.exit(f"flow_throughput: PyTorch is missing ({error}); run benchmarks/peers/install_torch.sh")
try:
    import normflows_flow  # noqa: E402
except ImportError as error:
    if getattr(error, "name", None) != "normflows":
        raise
    normflows_flow = None
    print("[flow_throughput] normflows is not importable with this interpreter: the normflows peer and "
          "every *_normflows line are SKIPPED. Run benchmarks/peers/install_peers.sh and "
          ".venv-peers/bin/python benchmarks/flow_throughput.py for them.", file=sys.stderr, flush=True)

CONFIG_SEED, PARAMETER_SEED, SAMPLE_SEED = 0, 1, 2
OUTPUT_NOISE = 0.02  # std of the noise on the output weights: a non-identity, well-conditioned flow
SMALL_BATCHES = (1, 16)


def log(message):
    print(f"[flow_throughput] {message}", file=sys.stderr, flush=True)


def emit(name, value, unit):
    """One JSON line; integers exact, other values to 6 significant digits."""
    value = int(value) if isinstance(value, int) else float(f"{float(value):.6g}")
    print(json.dumps({"name": name, "value": value, "unit": unit}), flush=True)


# --- architecture bookkeeping -------------------------------------------------------------

def coupling_layers(config):
    """(conditioner input features, output raw values) of the 12 coupling layers, in order."""
    circular, K = set(config["circular"]), config["num_bins"]
    layers = []
    for mask in config["masks"]:
        for transformed in (mask, [not m for m in mask]):
            dims = range(config["dimension"])
            n_in = sum(2 if d in circular else 1 for d in dims if not transformed[d])
            n_out = sum(3 * K if d in circular else 3 * K - 1 for d in dims if transformed[d])
            layers.append((n_in, n_out))
    return layers


def linears(config, n_in, n_out):
    """(in, out) of each Linear of one conditioner, in the flat-vector order."""
    H = config["hidden"]
    return [(n_in, H)] + [(H, H)] * (2 * config["num_blocks"]) + [(H, n_out)]


def parameter_layout(config):
    """(offset, size, is_output_weight) of each tensor of the flat parameter vector."""
    layout, offset = [], 0
    for n_in, n_out in coupling_layers(config):
        shapes = linears(config, n_in, n_out)
        for j, (k, m) in enumerate(shapes):
            last = j == len(shapes) - 1
            layout += [(offset, k * m, last), (offset + k * m, m, False)]
            offset += k * m + m
    return layout


def flops_per_sample(config):
    """Matrix-product FLOPs per sample of each measured pass (see the module docstring)."""
    layers = coupling_layers(config)
    forward = sum(2 * k * m for n_in, n_out in layers for k, m in linears(config, n_in, n_out))
    H = config["hidden"]
    sample_first, inverse_first = layers[0][0], layers[-1][0]
    return {"sample": forward, "log_prob": forward,
            "reverse_kl_step": 3 * forward - 2 * sample_first * H,
            "forward_kl_step": 3 * forward - 2 * inverse_first * H}


# --- timing ---------------------------------------------------------------------------------

def interleaved(cases, rounds, calls=1):
    """Median seconds per call of each case (name -> function of no arguments).

    One warm-up call each, then `rounds` rounds; a round times `calls` back-to-back calls of every
    case, and the order of the cases rotates from round to round so that no side always runs first
    (or always right after the same other side) while the machine's load drifts.
    """
    names = list(cases)
    for name in names:
        cases[name]()
    times = {name: [] for name in names}
    for r in range(rounds):
        for name in names[r % len(names):] + names[:r % len(names)]:
            start = time.perf_counter()
            for _ in range(calls):
                cases[name]()
            times[name].append((time.perf_counter() - start) / calls)
    return {name: statistics.median(t) for name, t in times.items()}


def gemm_shapes(config):
    """(in, out) of each conditioner Linear -> how many a pass runs."""
    counts = {}
    for n_in, n_out in coupling_layers(config):
        for shape in linears(config, n_in, n_out):
            counts[shape] = counts.get(shape, 0) + 1
    return counts


def probe_dgemm(config, batch, tries, best):
    """Time numpy's and torch's BLAS on each forward product of a pass at `batch` (batch x k times
    k x m, as nn.Linear runs it), keeping the fastest seconds per call in best[(library, shape)].
    The benchmark probes at its start and at its end, so a busy moment cannot lower the rate."""
    rng = np.random.default_rng(0)
    for (k, m) in gemm_shapes(config):
        a, w = rng.standard_normal((batch, k)), rng.standard_normal((m, k))
        ta, tw = torch.from_numpy(a), torch.from_numpy(w)
        products = {"numpy": lambda: a @ w.T, "torch": lambda: torch.mm(ta, tw.t())}
        calls = max(1, int(2e8 / (2 * batch * k * m)))  # ~0.2 GFLOP per timing
        for library, product in products.items():
            product()
            for _ in range(tries):
                start = time.perf_counter()
                for _ in range(calls):
                    product()
                seconds = (time.perf_counter() - start) / calls
                best[library, (k, m)] = min(best.get((library, (k, m)), math.inf), seconds)


def dgemm_rates(config, batch, best):
    """GFLOP/s per library over one pass's forward products, weighted by how often each occurs."""
    counts = gemm_shapes(config)
    flops = sum(2 * batch * k * m * c for (k, m), c in counts.items())
    return {library: flops / sum(best[library, shape] * c for shape, c in counts.items()) / 1e9
            for library in ("numpy", "torch")}


STREAM_ELEMENTS = 1 << 25  # float64: 256 MiB per array, 8 times the 32 MiB L3
STREAM_CHUNK = 1 << 16  # triad block: 512 KiB per operand, so a's block stays in L2 between its two ufuncs


def probe_stream(threads, tries, best):
    """STREAM-like copy (a = b) and triad (a = b + 3 c) on float64 arrays much larger than the L3,
    split over `threads` Python threads (numpy releases the GIL inside each call), keeping the
    fastest seconds per kernel in best[kernel]. Probed at the start and at the end, like DGEMM."""
    from concurrent.futures import ThreadPoolExecutor
    a, b, c = np.zeros(STREAM_ELEMENTS), np.ones(STREAM_ELEMENTS), np.full(STREAM_ELEMENTS, 2.0)
    bounds = np.linspace(0, STREAM_ELEMENTS, threads + 1).astype(int)
    ranges = list(zip(bounds[:-1], bounds[1:]))

    def copy(lo, hi):
        np.copyto(a[lo:hi], b[lo:hi])

    def triad(lo, hi):
        for start in range(lo, hi, STREAM_CHUNK):
            end = min(start + STREAM_CHUNK, hi)
            np.multiply(c[start:end], 3.0, out=a[start:end])
            np.add(a[start:end], b[start:end], out=a[start:end])

    with ThreadPoolExecutor(threads) as pool:
        for name, kernel in (("copy", copy), ("triad", triad)):
            list(pool.map(lambda r: kernel(*r), ranges))  # warm-up (pages, threads)
            for _ in range(tries):
                start = time.perf_counter()
                list(pool.map(lambda r: kernel(*r), ranges))
                best[name] = min(best.get(name, math.inf), time.perf_counter() - start)
    assert a[0] == 7.0 and a[-1] == 7.0


def stream_rates(best):
    """GB/s of each kernel with STREAM's byte counts (copy 16, triad 24 bytes per element)."""
    return {"copy": 16 * STREAM_ELEMENTS / best["copy"] / 1e9,
            "triad": 24 * STREAM_ELEMENTS / best["triad"] / 1e9}


# --- the sides ---------------------------------------------------------------------------------

def harmonic_factory(config):
    """U = 0.5 |x|^2 over the real dims and F = -dU/dx, in numpy."""
    real = np.ones(config["dimension"], dtype=bool)
    real[config["circular"]] = False

    def energy_and_forces(x):
        x = np.asarray(x)
        r = x[:, real]
        forces = np.zeros_like(x)
        forces[:, real] = -r
        return 0.5 * np.einsum("ij,ij->i", r, r), forces
    return energy_and_forces


def load_engine():
    try:
        from openmmcgflow import _core
    except ImportError as error:
        sys.exit(f"flow_throughput: openmmcgflow._core is not importable ({error}); build it or use --torch-only")
    if not hasattr(_core, "Flow"):
        sys.exit("flow_throughput: this openmmcgflow._core has no Flow yet; use --torch-only")
    return _core


def engine_side(_core, config, threads, learning_rate):
    """Our float64 and mixed-precision flows with a trainer each."""
    flows = {}
    for precision in ("float64", "mixed"):
        flow = _core.Flow({**config, "precision": precision})
        flow.initialize_parameters(PARAMETER_SEED)
        flow.num_threads = threads
        trainer = _core.ModelTrainer(flow, {"optimizer": "adam", "learning_rate": learning_rate})
        flows[precision] = (flow, trainer)
    return flows


def perturbed(config, vector):
    """The identity-initialized parameters with small noise on every output weight."""
    vector = np.array(vector, dtype=np.float64)
    rng = np.random.default_rng(PARAMETER_SEED)
    for offset, size, is_output_weight in parameter_layout(config):
        if is_output_weight:
            vector[offset:offset + size] += OUTPUT_NOISE * rng.standard_normal(size)
    return vector


def wrapped_max_abs_diff(a, b, circular):
    """max |a - b| with the differences of the circular columns wrapped into [-pi, pi)."""
    diff = np.asarray(a) - np.asarray(b)
    diff[:, circular] = np.remainder(diff[:, circular] + math.pi, 2 * math.pi) - math.pi
    return float(np.max(np.abs(diff)))


def main():
    args = ARGS
    config = torch_flow.alanine_dipeptide_config(CONFIG_SEED)
    flops = flops_per_sample(config)
    energy_and_forces = harmonic_factory(config)
    learning_rate = 1e-4

    peer = torch_flow.TorchFlow(config, threads=args.threads, seed=PARAMETER_SEED, learning_rate=learning_rate)
    nf_peer = None
    if normflows_flow is not None:
        nf_peer = normflows_flow.NormflowsFlow(config, threads=args.threads, learning_rate=learning_rate)
    if torch.get_num_threads() != args.threads:
        sys.exit(f"flow_throughput: torch runs {torch.get_num_threads()} threads, not {args.threads}")
    log(f"batch {args.batch}, {args.threads} threads for ours and for torch (torch.set_num_threads({args.threads})), "
        f"{args.repeats} rounds{', torch only' if args.torch_only else ''}; torch {torch.__version__}"
        f"{'; normflows ' + normflows_flow.nf.__version__ if nf_peer else ''}; load average {os.getloadavg()[0]:.2f}")
    ours = None
    if not args.torch_only:
        ours = engine_side(load_engine(), config, args.threads, learning_rate)
        initial = ours["float64"][0].get_parameters()
    else:
        initial = peer.get_parameters()
    expected = sum(size for _, size, _ in parameter_layout(config))
    if len(initial) != expected:
        sys.exit(f"flow_throughput: {len(initial)} parameters, the documented layout has {expected}")
    parameters = perturbed(config, initial)
    peer.set_parameters(parameters)
    if nf_peer:
        nf_peer.set_parameters(parameters)
    if ours:
        for flow, _ in ours.values():
            flow.set_parameters(parameters)

    log("DGEMM and STREAM")
    dgemm_tries, dgemm_best, stream_best = (2 if args.quick else 5), {}, {}
    probe_dgemm(config, args.batch, dgemm_tries, dgemm_best)
    probe_stream(args.threads, dgemm_tries, stream_best)
    for kind, count in flops.items():
        emit(f"{kind}_flop_per_sample", count, "FLOP")

    n = args.batch
    x_fixed = (ours["float64"][0].sample(n, SAMPLE_SEED)[0] if ours
               else peer.sample(n, SAMPLE_SEED)[0].numpy())
    if ours:
        logq64 = ours["float64"][0].log_prob(x_fixed)
        emit("mixed_logq_max_abs_diff", np.max(np.abs(ours["mixed"][0].log_prob(x_fixed) - logq64)), "nats")
        emit("logq_max_abs_diff_torch", np.max(np.abs(peer.log_prob(x_fixed).numpy() - logq64)), "nats")
    else:
        logq64 = peer.log_prob(x_fixed).numpy()  # the torch peer computes our flow
    if nf_peer:
        # normflows zeroes real coordinates beyond the tail bound (normflows_flow.py, point 5).
        real = np.setdiff1d(np.arange(config["dimension"]), config["circular"])
        inside = np.all(np.abs(x_fixed[:, real]) <= config["bound"], axis=1)
        suffix = "" if ours else "_vs_torch"
        emit(f"logq_max_abs_diff_normflows{suffix}",
             np.max(np.abs(nf_peer.log_prob(x_fixed).numpy() - logq64)[inside]), "nats")
        emit("normflows_samples_outside_bound", int(np.sum(~inside)), "samples")
        torch.default_generator.manual_seed(SAMPLE_SEED)
        z = nf_peer.model.q0.sample(n)
        x_nf, logq_nf = nf_peer.transform(z)
        if ours:
            x_ref, logq_ref = ours["float64"][0].sample_from_base(z.numpy())
        else:
            with torch.no_grad():
                x_ref, logdet = peer.transform(z)
                logq_ref = (peer.base_log_prob(z) - logdet).numpy()
        emit(f"sample_x_max_abs_diff_normflows{suffix}", wrapped_max_abs_diff(x_nf.numpy(), x_ref, config["circular"]), "nm or rad")
        emit(f"sample_logq_max_abs_diff_normflows{suffix}", np.max(np.abs(logq_nf.numpy() - logq_ref)), "nats")

    def ours_cases(kind, batch):
        cases = {}
        for precision, (flow, trainer) in (ours or {}).items():
            suffix = "" if precision == "float64" else "_mixed"
            if kind == "sample":
                cases["ours" + suffix] = lambda flow=flow: flow.sample(batch, SAMPLE_SEED)
            elif kind == "log_prob":
                x = x_fixed[:batch]
                cases["ours" + suffix] = lambda flow=flow, x=x: flow.log_prob(x)
            elif kind == "reverse_kl_step":
                def step(trainer=trainer):
                    x, _ = trainer.sample(batch, SAMPLE_SEED)
                    energies, forces = energy_and_forces(x)
                    trainer.reverse_kl_step(energies, forces, beta=1.0)
                cases["ours" + suffix] = step
            else:
                cases["ours" + suffix] = lambda trainer=trainer: trainer.forward_kl_step(x_fixed)
        return cases

    peer_cases = {"torch": peer}
    if nf_peer:
        peer_cases["normflows"] = nf_peer

    def peer_case(side, kind, batch):
        if kind == "sample":
            return lambda: side.sample(batch, SAMPLE_SEED)
        if kind == "log_prob":
            x = x_fixed[:batch]
            return lambda: side.log_prob(x)
        if kind == "reverse_kl_step":
            return lambda: side.reverse_kl_step(batch, energy_and_forces, 1.0, SAMPLE_SEED)
        return lambda: side.forward_kl_step(x_fixed)

    def emit_ratios(prefix, batch, timings):
        """Lines of one measurement: samples/s of every side, ratios of ours to every peer."""
        for name in peer_cases:
            emit(f"{prefix}_per_s_{name}", batch / timings[name], "samples/s")
        if ours:
            emit(f"{prefix}_per_s", batch / timings["ours"], "samples/s")
            emit(f"{prefix}_per_s_mixed", batch / timings["ours_mixed"], "samples/s")
            for name in peer_cases:
                tail = "" if name == "torch" else f"_vs_{name}"  # the torch peer keeps its old names
                emit(f"{prefix}_ratio{tail}", timings[name] / timings["ours"], "ratio")
                emit(f"{prefix}_mixed_ratio{tail}", timings[name] / timings["ours_mixed"], "ratio")

    seconds = {}
    for kind in ("sample", "log_prob", "reverse_kl_step", "forward_kl_step"):
        log(f"{kind} at batch {n}")
        cases = ours_cases(kind, n)
        for name, side in peer_cases.items():
            cases[name] = peer_case(side, kind, n)
        seconds[kind] = interleaved(cases, args.repeats)
        emit_ratios(kind, n, seconds[kind])

    small_seconds = {}
    for kind in ("sample", "log_prob"):
        for batch in SMALL_BATCHES:
            log(f"{kind} at batch {batch}")
            cases = ours_cases(kind, batch)
            for name, side in peer_cases.items():
                cases[name] = peer_case(side, kind, batch)
            # Small batches read every weight once per pass, so they are bound by memory
            # traffic, which float32 conditioner weights halve (the _mixed lines).
            small_seconds[kind, batch] = interleaved(cases, 3 * args.repeats, calls=3 if args.quick else 20)
            emit_ratios(f"{kind}_batch{batch}", batch, small_seconds[kind, batch])

    # Torch's OpenMP pool slows down far more than a plain thread pool when another process
    # wants the same cores, so a loaded machine skews the ratios: the load goes to stderr.
    log(f"DGEMM and STREAM again; load average {os.getloadavg()[0]:.2f}")
    probe_dgemm(config, args.batch, dgemm_tries, dgemm_best)
    probe_stream(args.threads, dgemm_tries, stream_best)
    rates = dgemm_rates(config, args.batch, dgemm_best)
    dgemm = max(rates.values())
    emit("dgemm_gflops", dgemm, "GFLOP/s")
    for library, rate in rates.items():
        emit(f"dgemm_gflops_{library}", rate, "GFLOP/s")
    for kind, timings in seconds.items():
        roofline = flops[kind] * n / (dgemm * 1e9)
        for name in peer_cases:
            emit(f"{kind}_roofline_fraction_{name}", roofline / timings[name], "fraction")
        if ours:
            emit(f"{kind}_roofline_fraction", roofline / timings["ours"], "fraction")

    stream = stream_rates(stream_best)
    stream_gb = max(stream.values())
    emit("stream_gb_per_s", stream_gb, "GB/s")
    for kernel, rate in stream.items():
        emit(f"stream_{kernel}_gb_per_s", rate, "GB/s")
    parameter_bytes = 8 * expected
    emit("flow_parameter_bytes", parameter_bytes, "bytes")
    batch1 = small_seconds["sample", 1]
    streaming = {"": parameter_bytes / (stream_gb * 1e9), "_mixed": parameter_bytes / 2 / (stream_gb * 1e9)}
    sides = {f"_{name}": (name, "") for name in peer_cases}
    if ours:
        sides.update({"": ("ours", ""), "_mixed": ("ours_mixed", "_mixed")})
    for suffix, (name, precision) in sides.items():
        emit(f"sample_batch1_memory_roofline_fraction{suffix}", streaming[precision] / batch1[name], "fraction")


if __name__ == "__main__":
    main()
