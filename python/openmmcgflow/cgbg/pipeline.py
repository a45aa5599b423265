"""The CG Boltzmann generator of alanine dipeptide end to end, as one function (:func:`run_alanine`).

amber96 + OBC at 300 K (``systems.alanine_dipeptide("obc")``): data by OpenMM MD (gamma = 9 well-tempered
metadynamics for force matching, recorded with the case's map and aggregated forces (:func:`.aggregated_map`);
unbiased MD or gamma = 1.5 metadynamics for the flow, recorded with the heavy-atom map, whose beads include
core beta's), force matching
into a PMFForce with a harmonic prior (:mod:`.force_matching`), a spline flow over the CG internal
coordinates (:func:`.train_cg_flow`) or, with ``proposal="cnf"``, the paper's continuous normalizing flow
over the same coordinates (:func:`.train_cg_cnf`, its outputs in the case directory's ``cnf/``, the PMF
shared with the coupling run), reweighting inside OpenMM (:func:`.reweight`), and the metrics
against the atomistic reference (:mod:`.reference`): JS divergence and PMF error of the phi and psi
profiles, raw and reweighted, Kish ESS, the D-form fraction, and a plain CG MD baseline.
``benchmarks/cg_bg.py`` and ``examples/cgbg_alanine.py`` (``make demo``) call it with their budgets.

Every stage is cached under ``out``: the datasets resume chunk by chunk, the PMF fit and the flow resume
from their checkpoints, and the reference is built once per reference budget and shared.
"""
import concurrent.futures
import json
import math
import os
import time
from dataclasses import dataclass, field, asdict

import numpy as np
import openmm
from tqdm import tqdm

from .. import coordinates, stats, systems
from ..files import atomic_write_json
from ..plots import plot_ramachandran, plt, save_figure
from . import force_matching
from . import reference as reference_module
from .data import alanine_metadynamics, generate_dataset
from .cnf import sampling_cost, train_cg_cnf
from .flow import CHIRAL_CENTERS, cg_flow_model_bytes, train_cg_flow
from .maps import aggregated_map, alanine_dipeptide_map, core_beta_map, heavy_atom_map, phi_psi_cvs
from .reweighting import cg_system, plot_reweighting, profile_metrics, reweight
from .storage import load_dataset

TEMPERATURE = 300.0
KT = systems.KB * TEMPERATURE
CORE_BETA_OF_HEAVY = [1, 3, 4, 5, 6, 8]   # core-beta beads among the heavy-atom beads (same atoms)
PHI_AXIS = (-math.pi, math.pi, 60)         # 6-degree bins for the profiles, JS and PMF error
RECORD_EVERY = 40                          # 0.02 ps at 0.5 fs, the paper's
CASES = {
    "ala2_core_beta": ("core_beta", "unbiased"),
    "ala2_core_beta_biased": ("core_beta", "metad1.5"),
    "ala2_heavy": ("heavy_atom", "unbiased"),
    "ala2_heavy_biased": ("heavy_atom", "metad1.5"),
}
PROPOSALS = ("coupling", "cnf")
# The reference: 3 ns of gamma = 8 metadynamics build a bias, 12 ns under it frozen are reweighted exactly.
FULL_REFERENCE = dict(bias_frames=30000, sample_frames=120000, record_every=200, hill_interval_ps=0.5, bias_factor=8.0,
                 seed=1)


def emit(name, value, unit):
    print(json.dumps({"name": name, "value": value, "unit": unit}), flush=True)


def _dataset_job(kind, path, frames, seed, aggregated_mapping=None):
    """One MD dataset (a separate process: two run at once on two cores). Recorded with the heavy-atom
    slice map, or with ``aggregated_mapping``'s map with aggregated forces (force-matching data)."""
    ala2 = systems.alanine_dipeptide("obc")
    topology = ala2.info["topology"]
    meta = None
    if kind.startswith("metad"):
        meta = alanine_metadynamics(topology, float(kind[len("metad"):]))
    cg_map = (heavy_atom_map(topology) if aggregated_mapping is None else
              aggregated_map(topology, alanine_dipeptide_map(topology, aggregated_mapping)))
    manifest = generate_dataset(ala2.system, ala2.positions, cg_map, path,
                                     temperature=TEMPERATURE, num_frames=frames, record_every=RECORD_EVERY,
                                     chunk_frames=5000, metadynamics=meta, cvs=None if meta else phi_psi_cvs(topology),
                                     platform="Reference", seed=seed, equilibration_steps=2000, progress=False)
    # the wall time of every call that wrote to the dataset (a cached dataset reports how long it took)
    return sum(run["wall_s"] for run in manifest.get("runs", [])), manifest["md_ns"]


def _reference_job(path, reference):
    ala2 = systems.alanine_dipeptide("obc")
    topology = ala2.info["topology"]
    start = time.perf_counter()
    ref = reference_module.atomistic_reference(ala2.system, ala2.positions, core_beta_map(topology), path,
                                               temperature=TEMPERATURE, cvs=phi_psi_cvs(topology), progress=False,
                                               **reference)
    return time.perf_counter() - start, ref


def phi_psi(positions, mapping):
    """phi, psi (rad) of CG configurations, on the beads that carry them."""
    beads = {"core_beta": [(0, 1, 2, 4), (1, 2, 4, 5)], "heavy_atom": [(1, 3, 4, 6), (3, 4, 6, 8)]}[mapping]
    values = coordinates.DihedralCGMap(positions.shape[1], beads).map_positions(positions)
    return values[:, 0], values[:, 1]


def cg_md(system, start_positions, ns, seed, timestep=0.001, progress=False):
    """Plain CG Langevin MD with the PMF (the baseline the paper compares with): phi/psi every 0.1 ps."""
    integrator = openmm.LangevinMiddleIntegrator(TEMPERATURE, 1.0, timestep)
    integrator.setRandomNumberSeed(seed)
    context = openmm.Context(system, integrator, openmm.Platform.getPlatformByName("Reference"))
    context.setPositions(start_positions)
    context.setVelocitiesToTemperature(TEMPERATURE, seed)
    every = max(1, int(round(0.1 / timestep)))
    frames = []
    for _ in tqdm(range(int(round(ns * 1000 / 0.1))), desc="CG MD", unit="0.1 ps", disable=not progress):
        integrator.step(every)
        frames.append(context.getState(getPositions=True).getPositions(asNumpy=True)._value)
    return np.asarray(frames)



@dataclass
class AlanineSettings:
    """The budget of one run (the defaults are the benchmark's)."""
    case: str = "ala2_core_beta"
    seed: int = 1
    fm_ns: float = 3.0            # gamma = 9 metadynamics for force matching
    flow_ns: float = 3.0          # flow data: unbiased MD or gamma = 1.5 metadynamics
    fm_epochs: int = 40
    flow_epochs: int = 40
    proposals: int = 100_000
    cg_md_ns: float = 2.0         # plain CG MD baseline (0: none)
    compare_unbiased_pmf: bool = False  # also force-match on fm_ns of unbiased MD and judge it on the same proposals
    hidden: tuple = (128, 128, 128)
    reference: dict = field(default_factory=lambda: dict(FULL_REFERENCE))
    proposal: str = "coupling"    # "coupling" (spline-coupling flow, forward KL) or "cnf" (flow matching)
    cnf_epochs: int = 100
    cnf_hidden: int = 128         # the CNF's vector field: cnf_layers hidden layers of this width
    cnf_layers: int = 3
    cnf_optimal_transport: bool = False
    cost_samples: int = 10_000    # samples timed with their log q (time per 10^4 samples)


def run_alanine(settings, out, *, emit=None, progress=False):
    """Run one case of :data:`CASES` with ``settings`` (an :class:`AlanineSettings`) under the directory
    ``out``; ``emit(name, value, unit)`` receives every number as it is measured. Returns a dict of them
    (and writes it, with the clipping curve, to ``<case dir>/results.json``; the PNGs sit beside it)."""
    if settings.case not in CASES:
        raise ValueError("case: expected one of %s, got %r" % (sorted(CASES), settings.case))
    if int(settings.seed) < 1:
        raise ValueError("seed: must be >= 1, got %r" % (settings.seed,))
    if settings.proposal not in PROPOSALS:
        raise ValueError("proposal: expected one of %s, got %r" % (PROPOSALS, settings.proposal))
    results = {}

    def record(name, value, unit):
        results[name] = {"value": value, "unit": unit}
        if emit is not None:
            emit(name, value, unit)

    mapping, flow_kind = CASES[settings.case]
    out = os.path.abspath(out)
    pmf_dir = os.path.join(out, "%s_seed%d" % (settings.case, settings.seed))
    # the coupling flow's outputs sit beside the PMF (as always); a CNF's in cnf/, sharing the PMF
    case_dir = pmf_dir if settings.proposal == "coupling" else os.path.join(pmf_dir, "cnf")
    os.makedirs(case_dir, exist_ok=True)
    t_total = time.perf_counter()

    # ---- data (and the shared reference), two processes at a time ----
    fm_path = os.path.join(out, "data", "ala2_metad9_%s_aggregated_%gns_seed%d" % (mapping, settings.fm_ns,
                                                                                   settings.seed))
    flow_path = os.path.join(out, "data", "ala2_%s_%gns_seed%d" % (flow_kind, settings.flow_ns, settings.seed))
    ref_path = os.path.join(out, "ala2_reference_%s" % _reference_tag(settings.reference))
    frames = lambda ns: int(round(ns * 1e3 / (RECORD_EVERY * 0.0005)))  # noqa: E731
    with concurrent.futures.ProcessPoolExecutor(2) as pool:
        # the reference first: it is the longest job, the two datasets share the other core
        ref_job = pool.submit(_reference_job, ref_path, settings.reference)
        fm_job = pool.submit(_dataset_job, "metad9", fm_path, frames(settings.fm_ns), settings.seed, mapping)
        flow_job = pool.submit(_dataset_job, flow_kind, flow_path, frames(settings.flow_ns), settings.seed + 100)
        fm_wall, fm_md = fm_job.result()
        flow_wall, flow_md = flow_job.result()
        ref_wall, ref = ref_job.result()
    record("md_ns_force_matching_data", fm_md, "ns")
    record("md_ns_flow_data", flow_md, "ns")
    record("wall_s_data", max(fm_wall, flow_wall), "s")   # the two runs are concurrent
    record("wall_s_data_cpu", fm_wall + flow_wall, "s")
    record("md_ns", fm_md + flow_md, "ns")
    record("reference_md_ns", ref.bias_ns + ref.sampling_ns, "ns")
    ref_phi = ref.histogram("phi", PHI_AXIS)
    ref_psi = ref.histogram("psi", PHI_AXIS)
    for name in ("phi", "psi"):
        floor = ref.noise_floor(name, PHI_AXIS)
        record("reference_noise_js_%s" % name, floor["js"], "nats")
        record("reference_noise_pmf_error_%s" % name, floor["pmf_error"], "kT^2")

    beads = CORE_BETA_OF_HEAVY if mapping == "core_beta" else list(range(10))
    fm_data = load_dataset(fm_path)
    flow_data = load_dataset(flow_path)
    x_fm, f_fm = fm_data.positions, fm_data.forces      # recorded with the case's map, forces aggregated
    x_flow = flow_data.positions[:, beads]

    # ---- force matching ----
    t = time.perf_counter()
    pmf = force_matching.force_match(x_fm, f_fm, mapping, temperature=TEMPERATURE, hidden=tuple(settings.hidden),
                                     options={"epochs": settings.fm_epochs, "seed": settings.seed},
                                     seed=settings.seed, progress=progress,
                                     checkpoint=os.path.join(pmf_dir, "pmf_checkpoint.npz"))
    record("wall_s_force_matching", time.perf_counter() - t, "s")
    with open(os.path.join(case_dir, "pmf_force.xml"), "w") as handle:
        handle.write(openmm.XmlSerializer.serialize(pmf.pmf_force))
    with open(os.path.join(case_dir, "prior.json"), "w") as handle:
        json.dump(pmf.prior.to_json(), handle)

    # ---- flow ----
    t = time.perf_counter()
    if settings.proposal == "coupling":
        flow, position_map, history = train_cg_flow(
            x_flow, mapping, epochs=settings.flow_epochs, batch_size=256, seed=settings.seed, progress=progress,
            chiral_center=CHIRAL_CENTERS[mapping], checkpoint=os.path.join(case_dir, "flow_checkpoint"))
        # the training time over every call that trained it (a resumed or cached flow reports its whole training)
        record("wall_s_flow", max(float(history["seconds"]), time.perf_counter() - t), "s")
    else:
        flow, position_map, history = train_cg_cnf(
            x_flow, mapping, epochs=settings.cnf_epochs, batch_size=256, seed=settings.seed, progress=progress,
            config={"hidden": int(settings.cnf_hidden), "num_layers": int(settings.cnf_layers)},
            optimal_transport=bool(settings.cnf_optimal_transport), checkpoint=os.path.join(case_dir, "cnf_checkpoint"))
        record("wall_s_flow", float(history["seconds"]), "s")   # flow matching alone, without validation solves
        record("wall_s_flow_validation", float(history["validation_seconds"]), "s")
    record("flow_best_validation_nll", history["best_validation_nll"], "nats")
    cost = sampling_cost(flow, settings.cost_samples, seed=settings.seed, num_threads=2)
    record("wall_s_per_1e4_samples", cost["seconds"] * 1e4 / cost["samples"], "s (2 threads, with log q)")
    if cost["evaluations_per_sample"] is not None:
        record("vector_field_evaluations_per_sample", cost["evaluations_per_sample"], "evaluations")
        record("ode_failed_samples", cost["failed"], "samples")
    model = cg_flow_model_bytes(flow, position_map, info={"map": mapping, "case": settings.case})
    with open(os.path.join(case_dir, "cg_flow.model"), "wb") as handle:
        handle.write(model)

    # ---- inference: reweighting inside OpenMM ----
    ala2 = systems.alanine_dipeptide("obc")
    atoms = np.asarray(heavy_atom_map(ala2.info["topology"]).atoms)[beads]
    system = cg_system(len(beads), pmf.pmf_force, masses=[ala2.system.getParticleMass(int(a)) for a in atoms],
                       extra_forces=pmf.prior.forces())
    with open(os.path.join(case_dir, "cg_system.xml"), "w") as handle:
        handle.write(openmm.XmlSerializer.serialize(system))
    t = time.perf_counter()
    result = reweight(system, model, settings.proposals, temperature=TEMPERATURE, seed=settings.seed,
                      positions=x_flow[0], observable=lambda x: phi_psi(x, mapping)[0] > 0)
    record("wall_s_inference", time.perf_counter() - t, "s")
    phi, psi = phi_psi(result.positions, mapping)
    metrics = {name: profile_metrics(values, result.log_w_clipped, ref_hist, PHI_AXIS, kT=1.0)
               for name, values, ref_hist in (("phi", phi, ref_phi), ("psi", psi, ref_psi))}
    # the same without clipping: exact importance sampling (the paper's 1 % drop is a heuristic with a bias)
    unclipped = {name: profile_metrics(values, result.log_w, ref_hist, PHI_AXIS, kT=1.0)
                 for name, values, ref_hist in (("phi", phi, ref_phi), ("psi", psi, ref_psi))}
    for name in ("phi", "psi"):
        record("js_%s" % name, metrics[name]["reweighted"]["js"], "nats")
        record("pmf_error_%s" % name, metrics[name]["reweighted"]["pmf_error"], "kT^2")
        record("js_%s_unclipped" % name, unclipped[name]["reweighted"]["js"], "nats")
        record("pmf_error_%s_unclipped" % name, unclipped[name]["reweighted"]["pmf_error"], "kT^2")
        record("js_%s_raw" % name, metrics[name]["raw"]["js"], "nats")
        record("pmf_error_%s_raw" % name, metrics[name]["raw"]["pmf_error"], "kT^2")
    record("ess_fraction", result.ess_fraction, "fraction")
    record("ess_fraction_unclipped", result.ess_fraction_raw, "fraction")
    positive = stats.weighted_mean(result.log_w_clipped, (phi > 0).astype(float))
    record("fraction_phi_positive", float(positive[0]), "fraction")
    record("fraction_phi_positive_raw", float(np.mean(phi > 0)), "fraction")
    record("reference_fraction_phi_positive", float(np.sum(ref_phi[PHI_AXIS[2] // 2:])), "fraction")
    # chirality: the D form's share of the PMF's ensemble, from the L samples and their mirror images
    mirrored, _ = pmf.evaluate(force_matching.mirror(result.positions))
    own, _ = pmf.evaluate(result.positions)
    record("d_form_fraction", force_matching.d_form_fraction(own, mirrored, result.log_w_clipped, TEMPERATURE),
           "fraction")
    hand = coordinates.detect_chirality(result.positions, list(CHIRAL_CENTERS[mapping]))
    record("d_form_fraction_proposals", float(np.mean(hand == -1)), "fraction")
    record("energy_evaluations", len(fm_data) + len(flow_data), "atomistic force evaluations")
    record("pmf_evaluations", settings.proposals, "PMF evaluations")

    # ---- simulation-free benchmarking of a second PMF (the paper's section 4.3) ----
    if settings.compare_unbiased_pmf:
        _compare_unbiased_pmf(settings, out, pmf_dir, mapping, result, phi, psi, ref_phi, ref_psi, record, progress)

    # ---- plain CG MD with the PMF ----
    if settings.cg_md_ns > 0:
        t = time.perf_counter()
        traj = cg_md(system, x_flow[0], settings.cg_md_ns, settings.seed, progress=progress)
        md_phi, md_psi = phi_psi(traj, mapping)
        record("wall_s_cg_md", time.perf_counter() - t, "s")
        record("md_ns_cg_md", settings.cg_md_ns, "ns")
        for name, values, ref_hist in (("phi", md_phi, ref_phi), ("psi", md_psi, ref_psi)):
            p = stats.histogram_1d(values, None, PHI_AXIS, True)["probability"]
            record("js_%s_cg_md" % name, stats.js_divergence(p, ref_hist), "nats")
            record("pmf_error_%s_cg_md" % name, stats.pmf_error(p, ref_hist), "kT^2")
    record("wall_s_total", time.perf_counter() - t_total, "s")

    # ---- plots ----
    for name in ("phi", "psi"):
        plot_reweighting(os.path.join(case_dir, "%s_profile.png" % name), metrics[name], result,
                         xlabel="%s (rad)" % name, title="%s: %s" % (settings.case, name))
    plot_ramachandran(os.path.join(case_dir, "ramachandran_reweighted.png"), phi, psi, result.log_w_clipped,
                      kT=KT, title="%s, reweighted" % settings.case)
    plot_ramachandran(os.path.join(case_dir, "ramachandran_reference.png"), ref.cv("phi"), ref.cv("psi"), ref.log_w,
                      kT=KT, title="atomistic reference (%.0f ns, reweighted)" % (ref.bias_ns + ref.sampling_ns))
    plot_energy_histogram(os.path.join(case_dir, "energy_histogram.png"), result)
    summary = {"settings": asdict(settings), "results": results, "clipping_curve": result.clipping_curve,
               "profiles": {n: {"centers": metrics[n]["centers"].tolist(),
                                "reference": metrics[n]["reference"]["free_energy"].tolist(),
                                "raw": metrics[n]["raw"]["free_energy"].tolist(),
                                "reweighted": metrics[n]["reweighted"]["free_energy"].tolist()} for n in metrics}}
    atomic_write_json(os.path.join(case_dir, "results.json"), summary, indent=1, default=float)
    return results


def _compare_unbiased_pmf(settings, out, pmf_dir, mapping, result, phi, psi, ref_phi, ref_psi, record, progress):
    """PMF_U, force-matched on unbiased MD of the same length (aggregated forces), judged from the same
    proposals: log w_U = -beta U_U - log q, no new sampling of the CG model (the paper's section 4.3)."""
    path = os.path.join(out, "data", "ala2_unbiased_%s_aggregated_%gns_seed%d" % (mapping, settings.fm_ns,
                                                                                  settings.seed))
    frames = int(round(settings.fm_ns * 1e3 / (RECORD_EVERY * 0.0005)))
    wall, md = _dataset_job("unbiased", path, frames, settings.seed + 200, mapping)
    record("md_ns_unbiased_pmf_data", md, "ns")
    record("wall_s_unbiased_pmf_data", wall, "s")
    data = load_dataset(path)
    t = time.perf_counter()
    pmf_u = force_matching.force_match(data.positions, data.forces, mapping, temperature=TEMPERATURE,
                                       hidden=tuple(settings.hidden),
                                       options={"epochs": settings.fm_epochs, "seed": settings.seed},
                                       seed=settings.seed, progress=progress,
                                       checkpoint=os.path.join(pmf_dir, "pmf_unbiased_checkpoint.npz"))
    record("wall_s_force_matching_unbiased_pmf", time.perf_counter() - t, "s")
    energy_u, _ = pmf_u.evaluate(result.positions)
    log_w = -energy_u / KT - result.log_q
    log_w_clipped = stats.drop_top_fraction(log_w, result.clip_fraction)
    record("ess_fraction_unbiased_pmf", stats.effective_sample_fraction(log_w_clipped), "fraction")
    for name, values, ref_hist in (("phi", phi, ref_phi), ("psi", psi, ref_psi)):
        metrics = profile_metrics(values, log_w_clipped, ref_hist, PHI_AXIS, kT=1.0)
        record("js_%s_unbiased_pmf" % name, metrics["reweighted"]["js"], "nats")
        record("pmf_error_%s_unbiased_pmf" % name, metrics["reweighted"]["pmf_error"], "kT^2")
    positive = stats.weighted_mean(log_w_clipped, (phi > 0).astype(float))
    record("fraction_phi_positive_unbiased_pmf", float(positive[0]), "fraction")


def plot_energy_histogram(path, result):
    """U_PMF of the flow's proposals, unweighted and reweighted (the paper's Fig. 3b/4b)."""
    fig, ax = plt.subplots(figsize=(5, 4))
    finite = np.isfinite(result.energy)
    energy = result.energy[finite]
    bins = np.linspace(np.percentile(energy, 0.5), np.percentile(energy, 99.5), 80)
    ax.hist(energy, bins=bins, density=True, histtype="step", label="flow proposals")
    ax.hist(energy, bins=bins, weights=result.weights_clipped[finite], density=True, histtype="step",
            label="reweighted")
    ax.set_xlabel("U_PMF (kJ/mol)")
    ax.set_ylabel("density")
    ax.legend()
    return save_figure(fig, path)


def _reference_tag(reference):
    return "b%d_s%d_seed%d" % (reference["bias_frames"], reference["sample_frames"], reference["seed"])
