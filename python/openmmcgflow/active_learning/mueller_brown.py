"""The active-learning loop of Schopmans & Friederich on the Mueller-Brown potential (their section 4.1
and A.5), end to end, inside OpenMM.

CG coordinate s = x1 - x2, fine coordinate t = x1 + x2, beta = 0.1 mol/kJ (k_B T = 10 kJ/mol). Each
iteration:

1. train the conditional flow q(t | s) by energy (reverse KL) at the iteration's CG points (the newest
   training points, plus gamma = 0.3 times as many older ones per epoch), k = 30 copies per point per
   epoch; every copy's (U, log q) is stored when drawn;
2. label every training CG point with eq. 12 (``pmf_labels``) from its latest copies, and fit a fresh
   ensemble of 10 MLPs [1, 64, 64, 1] (sigmoid) to the labels in units of k_B T (the core ``PMFTrainer``,
   bagging 80/20), then scale it to kJ/mol for the ``PMFForce``;
   Labels more than 30 k_B T above the lowest are capped (ours, a heuristic that touches only points of
   Boltzmann weight below e^-30: without it a walker that strays far out brings labels of 10^5 kJ/mol that
   spoil the squared-error fit where the PMF matters);
3. put the ensemble into a ``PMFForce`` with one particle group per walker and run a
   ``CGMonteCarloIntegrator`` (50 walkers, proposal scale 0.1, threshold 0.4 k_B T, at least 10 steps)
   until it finds an uncertain point; broaden it uniformly (width 1.0, 65 points), 80 % to training.
   The walkers stay in the CG region of interest, s in [-3.0, 1.6] (ours: the paper's KLD range
   [-2.5, 1.1] with a margin; outside it, where the ensemble only extrapolates and is often flat,
   walkers otherwise drifted to s = 6-37, where the potential is astronomically high).

The loop stops when a walker runs ``max_mc_steps`` (30 000) without finding a point (the paper's rule).
Every flow sample priced by the energy counts as one energy evaluation; the starting Monte Carlo run's
steps count too. The PMF is judged by the forward KL divergence on 100 grid points of s in [-2.5, 1.1]
against the PMF by quadrature (the paper's metric).

The conditional flow: the paper uses t = z NN_scale(s) + NN_mean(s); we use the project's conditional
elementwise rational-quadratic spline (a strict generalization) on t and s standardized with the
starting dataset's mean and spread. Training by example on the starting data uses batch 16, learning
rate 5e-4; by energy, batch 8, learning rate 5e-3, gradient-norm clipping 20, 12 epochs in the first
iteration and 7 after.

Each finished iteration is written atomically to ``out/state.npz`` (+ ``record.json``); a run started
on an existing state resumes after its last finished iteration, with the same result as an
uninterrupted run (every random draw is keyed by the seed, the iteration and the stage).
"""
import json
import math
import os
import time
from dataclasses import asdict, dataclass

import numpy as np
import openmm
from tqdm import tqdm

from .. import systems
from .._core import Flow, MLPEnsemble, ModelTrainer
from ..files import atomic_write
from ..datafree.energies import CoordinateEnergy
from ..pmf import PMFTrainer, affine_ensemble
from ..stats import kl_divergence
from ..plugin import CGMonteCarloIntegrator, PMFForce
from .labels import KB, boltzmann_probabilities, pmf_labels
from .selection import broaden_points

STATE_FILE = "state.npz"
RECORD_FILE = "record.json"


@dataclass
class MuellerBrownALSettings:
    """The paper's settings (section A.5) unless stated; ``max_iterations`` is ours (a safety bound)."""
    seed: int = 1
    start_mc_steps: int = 500
    start_mc_scale: float = 0.2
    start_points: int = 100
    copies: int = 30
    flow_hidden: int = 64
    example_epochs: int = 200
    example_batch: int = 16
    example_learning_rate: float = 5e-4
    energy_batch: int = 8
    energy_learning_rate: float = 5e-3
    energy_max_gradient_norm: float = 20.0
    first_epochs: int = 12
    epochs: int = 7
    gamma: float = 0.3
    pmf_members: int = 10
    pmf_hidden: tuple = (64, 64)
    pmf_epochs: int = 1000
    pmf_batch: int = 5
    pmf_learning_rate: float = 1e-3
    walkers: int = 50
    proposal_scale: float = 0.1
    threshold_kt: float = 0.4
    minimum_steps: int = 10
    broaden_count: int = 65
    broaden_width: float = 1.0
    train_fraction: float = 0.8
    max_mc_steps: int = 30000
    max_iterations: int = 30
    label_cap_kt: float = 30.0
    domain: tuple = (-3.0, 1.6)
    grid: tuple = (-2.5, 1.1, 100)
    threads: int = 1


def kld_on_grid(pmf_true, pmf_model, beta):
    """Forward KL divergence (nats) of the Boltzmann distributions of two PMFs on one grid."""
    return float(kl_divergence(boltzmann_probabilities(pmf_true, beta), boltzmann_probabilities(pmf_model, beta)))


class _Problem:
    """The potential through OpenMM, the coordinates and their standardization."""

    def __init__(self, settings):
        self.mb = systems.mueller_brown("conditional_flow")
        self.kT = 10.0
        self.beta = 1.0 / self.kT
        self.temperature = self.kT / KB
        self.energy = CoordinateEnergy(self.mb.system, self.mb.positions, self.mb.active, threads=settings.threads)
        self.s_mean = self.s_std = self.t_mean = self.t_std = None

    def set_scaler(self, s, t):
        self.s_mean, self.s_std = float(np.mean(s)), float(np.std(s))
        self.t_mean, self.t_std = float(np.mean(t)), float(np.std(t))

    def context(self, s):
        return ((np.asarray(s, dtype=float) - self.s_mean) / self.s_std).reshape(-1, 1)

    def price(self, s, y):
        """Energies U (kJ/mol) and forces -dU/dy of standardized fine coordinates y at CG points s."""
        t = self.t_mean + self.t_std * y[:, 0]
        x = np.stack([(s + t) / 2, (t - s) / 2], axis=1)
        energies, forces = self.energy(x)
        forces_y = self.t_std * 0.5 * (forces[:, 0] + forces[:, 1])
        return energies, forces_y.reshape(-1, 1)

    def log_q_t(self, log_q_y):
        """log q(t | s) from the flow's log q(y | s): the standardization's Jacobian."""
        return log_q_y - math.log(self.t_std)


def _start_dataset(problem, settings, rng):
    """The paper's starting data: a short Metropolis run from the lower minimum (-0.25, 1.5), scale 0.2,
    and ``start_points`` distinct visited positions."""
    x = np.array([-0.25, 1.5])
    u, _ = problem.energy(x[None])
    visited = [x.copy()]
    for _ in range(settings.start_mc_steps):
        proposal = x + settings.start_mc_scale * rng.normal(size=2)
        up, _ = problem.energy(proposal[None])
        if np.log(rng.uniform()) < -problem.beta * (up[0] - u[0]):
            x, u = proposal, up
        visited.append(x.copy())
    unique = np.unique(np.array(visited), axis=0)
    chosen = unique[rng.choice(len(unique), size=min(settings.start_points, len(unique)), replace=False)]
    return chosen[:, 0] - chosen[:, 1], chosen[:, 0] + chosen[:, 1]


def _pmf_ensemble(settings, rng):
    """10 MLPs [1, 64, 64, 1], sigmoid, each initialized from N(0, nu^2), nu ~ U[0.1, 3] (the paper's
    recipe for ensemble diversity)."""
    widths = [1, *settings.pmf_hidden, 1]
    weights, biases = [], []
    for _ in range(settings.pmf_members):
        nu = rng.uniform(0.1, 3.0)
        weights.append([nu * rng.normal(size=(widths[i + 1], widths[i])) for i in range(len(widths) - 1)])
        biases.append([nu * rng.normal(size=widths[i + 1]) for i in range(len(widths) - 1)])
    return MLPEnsemble.from_arrays(weights, biases, "sigmoid", "identity")


class _ReferenceSamples:
    """Samples of the exact Boltzmann distribution of the potential in (s, t), by inverse CDF on a fine grid of
    cells over the walkers' domain (s) and t in [-3, 4] (cells of 0.005 x 0.005; exact up to that
    discretization), and the exact mean log-density E_p[log p(x)] on the same grid, the best log-likelihood
    any generator can reach."""

    def __init__(self, problem, domain, n, rng, cell=0.005):
        s_edges = np.arange(domain[0], domain[1] + cell / 2, cell)
        t_edges = np.arange(-3.0, 4.0 + cell / 2, cell)
        s_mid, t_mid = (s_edges[1:] + s_edges[:-1]) / 2, (t_edges[1:] + t_edges[:-1]) / 2
        S, T = np.meshgrid(s_mid, t_mid, indexing="ij")
        positions = np.zeros(S.shape + (1, 3))
        positions[..., 0, 0], positions[..., 0, 1] = (S + T) / 2, (T - S) / 2
        log_p = -problem.beta * problem.mb.energy(positions)
        log_p -= np.logaddexp.reduce(log_p.ravel())
        p = np.exp(log_p).ravel()
        cells = rng.choice(p.size, size=n, p=p / p.sum())
        i, j = np.unravel_index(cells, S.shape)
        self.s = s_edges[i] + cell * rng.uniform(size=n)
        self.t = t_edges[j] + cell * rng.uniform(size=n)
        # Density per unit area of x = ((s + t) / 2, (t - s) / 2): a cell of (s, t) has area cell^2 / 2 in x.
        self.exact_log_likelihood = float(np.sum(p * (log_p.ravel() - np.log(cell * cell / 2))))


def generator_metrics(flow, pmf, problem, settings, reference, n=10000, seed=0):
    """The all-atom generator of the paper's section 3.2 on Mueller-Brown: s from exp(-beta U_PMF(s)) normalized on
    a grid over the walkers' domain (piecewise constant on 2000 cells, sampled exactly), then t from the
    conditional flow. Its density in x is q_X(x) = p_PMF(s) q(t | s) |det d(s, t)/dx| (= 2). Returns the
    reverse ESS fraction of n of its samples against exp(-beta U) (energies from the OpenMM System, not
    counted in the loop's evaluations) and the mean log q_X of exact samples (``reference``, a
    :class:`_ReferenceSamples`), beside the exact value."""
    from ..stats import effective_sample_fraction
    lo, hi = settings.domain
    edges = np.linspace(lo, hi, 2001)
    mid, width = (edges[1:] + edges[:-1]) / 2, edges[1] - edges[0]
    log_cell = -problem.beta * pmf.evaluate(mid.reshape(-1, 1))[0]
    log_cell -= np.logaddexp.reduce(log_cell)

    def log_p_s(s):
        index = np.clip(((s - lo) / width).astype(int), 0, len(mid) - 1)
        inside = (s >= lo) & (s <= hi)
        return np.where(inside, log_cell[index] - np.log(width), -np.inf)

    rng = np.random.default_rng(seed)
    cells = rng.choice(len(mid), size=n, p=np.exp(log_cell) / np.exp(log_cell).sum())
    s = edges[cells] + width * rng.uniform(size=n)
    y, log_q_y = flow.sample(n, seed=int(rng.integers(2 ** 62)), context=problem.context(s))
    t = problem.t_mean + problem.t_std * y[:, 0]
    log_q_x = log_p_s(s) + problem.log_q_t(log_q_y) + np.log(2.0)
    energy = CoordinateEnergy(problem.mb.system, problem.mb.positions, problem.mb.active)
    u, _ = energy(np.stack([(s + t) / 2, (t - s) / 2], axis=1))
    log_w = np.where(np.isfinite(u), -problem.beta * u - log_q_x, -np.inf)
    y_ref = ((reference.t - problem.t_mean) / problem.t_std).reshape(-1, 1)
    log_q_ref = flow.log_prob(y_ref, context=problem.context(reference.s))
    log_lik = log_p_s(reference.s) + problem.log_q_t(np.asarray(log_q_ref)) + np.log(2.0)
    return {"reverse_ess_fraction": float(effective_sample_fraction(log_w)),
            "all_atom_log_likelihood": float(np.mean(log_lik)),
            "all_atom_log_likelihood_exact": reference.exact_log_likelihood}


def _walker_context(model_bytes, settings, temperature, start, seed):
    system = openmm.System()
    force = PMFForce()
    force.setModelBytes(model_bytes)
    force.addCoordinate(0, 0)  # s is the walker particle's x
    for i in range(settings.walkers):
        system.addParticle(1.0)
        force.addParticleGroup([i])
    system.addForce(force)
    integrator = CGMonteCarloIntegrator(temperature, settings.proposal_scale)
    for i in range(settings.walkers):
        integrator.addMovedCoordinate(i, 0)
        integrator.setMovedCoordinateBounds(i, *settings.domain)
    integrator.setUncertaintyThreshold(settings.threshold_kt * KB * temperature)
    integrator.setMinimumSteps(settings.minimum_steps)
    integrator.setRandomNumberSeed(int(seed))
    context = openmm.Context(system, integrator, openmm.Platform.getPlatformByName("Reference"))
    positions = np.zeros((settings.walkers, 3))
    positions[:, 0] = np.resize(np.asarray(start, dtype=float), settings.walkers)
    context.setPositions(positions)
    return context, integrator


def _save_state(out, arrays, record):
    """The state and the record, each written atomically (the state first: a record never runs ahead of it)."""
    atomic_write(os.path.join(out, STATE_FILE), lambda handle: np.savez(handle, **arrays))
    atomic_write(os.path.join(out, RECORD_FILE), lambda handle: handle.write(json.dumps(record, indent=1).encode()))


def run_mueller_brown_al(settings=None, out="out/active_learning/mb_al", progress=True, emit=None):
    """Run (or resume) the loop; returns the record (per iteration: evaluations, MC steps, KLD, time).

    ``emit(name, value, unit)`` receives the summary numbers at the end (the benchmark prints them)."""
    settings = settings or MuellerBrownALSettings()
    os.makedirs(out, exist_ok=True)
    problem = _Problem(settings)
    beta = problem.beta
    grid = np.linspace(*settings.grid[:2], int(settings.grid[2]))
    pmf_true = problem.mb.info["pmf"](grid)
    flow_config = {"dimension": 1, "context_dimension": 1, "coupling": "elementwise", "num_layers": 1,
                   "hidden": settings.flow_hidden, "num_blocks": 1, "bound": 5.0, "seed": settings.seed,
                   "num_threads": settings.threads}
    state_path = os.path.join(out, STATE_FILE)
    if os.path.exists(state_path):
        with np.load(state_path, allow_pickle=False) as saved:
            arrays = {k: saved[k] for k in saved.files}
        record = json.load(open(os.path.join(out, RECORD_FILE)))
        # How far to go and on how many threads may change on resume; nothing else may.
        free = ("max_iterations", "threads")
        mine = {k: v for k, v in json.loads(json.dumps(asdict(settings))).items() if k not in free}
        if {k: v for k, v in record["settings"].items() if k not in free} != mine:
            raise ValueError("out: %s holds a run with other settings; use another directory" % out)
        problem.set_scaler(*arrays["scaler_data"])
        flow = Flow(flow_config)
        flow.set_parameters(arrays["flow_parameters"])
        problem.energy.evaluations = int(record["iterations"][-1]["energy_evaluations"]) if record["iterations"] \
            else int(record["start_evaluations"])
    else:
        rng = np.random.default_rng([settings.seed, 0])
        s0, t0 = _start_dataset(problem, settings, rng)
        problem.set_scaler(s0, t0)
        flow = Flow(flow_config)
        example = ModelTrainer(flow, {"learning_rate": settings.example_learning_rate})
        y0 = ((t0 - problem.t_mean) / problem.t_std).reshape(-1, 1)
        for _ in range(settings.example_epochs):
            order = rng.permutation(len(s0))
            for start in range(0, len(order), settings.example_batch):
                batch = order[start:start + settings.example_batch]
                example.forward_kl_step(y0[batch], context=problem.context(s0[batch]))
        arrays = {"scaler_data": np.stack([s0, t0]), "train_points": s0, "test_points": np.zeros(0),
                  "new_points": s0, "energies": np.full((len(s0), settings.copies), np.nan),
                  "log_terms": np.full((len(s0), settings.copies), np.nan),
                  "flow_parameters": flow.get_parameters(), "found_points": np.zeros(0),
                  "mc_start": np.array([-0.558 - 1.442])}
        record = {"settings": json.loads(json.dumps(asdict(settings))), "start_evaluations": problem.energy.evaluations,
                  "iterations": []}
        _save_state(out, arrays, record)

    flow_trainer_options = {"learning_rate": settings.energy_learning_rate,
                            "max_gradient_norm": settings.energy_max_gradient_norm}
    reference = _ReferenceSamples(problem, settings.domain, 10000, np.random.default_rng([settings.seed, 2]))
    bar = tqdm(total=settings.max_iterations, initial=len(record["iterations"]), desc="MB active learning",
               unit="iteration", disable=not progress)
    stop = bool(record["iterations"]) and record["iterations"][-1]["reached_max"]
    while not stop and len(record["iterations"]) < settings.max_iterations:
        iteration = len(record["iterations"])
        started = time.time()
        rng = np.random.default_rng([settings.seed, 1, iteration])
        train = arrays["train_points"]
        energies, log_terms = arrays["energies"], arrays["log_terms"]
        new = np.flatnonzero(np.isin(train, arrays["new_points"]))
        old = np.setdiff1d(np.arange(len(train)), new)
        # 1. The flow by energy at the new points and gamma times as many older ones per epoch.
        trainer = ModelTrainer(flow, flow_trainer_options)
        epochs = settings.first_epochs if iteration == 0 else settings.epochs
        draws = 0
        for epoch in range(epochs):
            extra = rng.choice(old, size=min(len(old), int(round(settings.gamma * len(new)))), replace=False) \
                if len(old) else np.zeros(0, dtype=int)
            points = np.concatenate([new, extra])
            pairs = np.stack(np.meshgrid(points, np.arange(settings.copies), indexing="ij"), -1).reshape(-1, 2)
            pairs = pairs[rng.permutation(len(pairs))]
            for start in range(0, len(pairs), settings.energy_batch):
                batch = pairs[start:start + settings.energy_batch]
                s = train[batch[:, 0]]
                y, log_q_y = trainer.sample(len(batch), seed=int(rng.integers(2 ** 62)),
                                            context=problem.context(s))
                u, f = problem.price(s, y)
                trainer.reverse_kl_step(u, f, beta=beta)
                draws += len(batch)
                # Stored when drawn: the label of a point uses its latest copies.
                energies[batch[:, 0], batch[:, 1]] = u
                log_terms[batch[:, 0], batch[:, 1]] = -problem.log_q_t(log_q_y) + math.log(0.5)
        arrays["flow_parameters"] = flow.get_parameters()
        # 2. Labels (eq. 12, 3 of 30 clipped) and a fresh PMF ensemble on them.
        labelled = np.flatnonzero(np.isfinite(log_terms).all(axis=1))
        labels = pmf_labels(energies[labelled], -log_terms[labelled], 0.0, problem.temperature,
                            clip_top=min(3, settings.copies - 1))
        keep = np.isfinite(labels)
        s_lab, labels = train[labelled][keep], labels[keep]
        # Labels more than label_cap_kt above the lowest are capped there: such points carry a Boltzmann
        # weight below e^-30 and never matter for equilibrium, but a label of 10^5 kJ/mol (a walker that
        # strayed far out, where the potential is astronomically high) would dominate the squared-error
        # fit and spoil the PMF where it matters. The cap is still an impassable wall for the walkers.
        # The ensemble is fitted in units of k_B T, as the paper's: an MLP's spread where it extrapolates is
        # a property of its raw output scale (O(1) to O(10) units), so the units of the labels set how
        # uncertain it is, in k_B T, away from the data, and the search threshold (0.4 k_B T) is set for
        # these units. Fitted in kJ/mol (k_B T = 10 here) the members agreed to ~0.35 k_B T beyond the data
        # and the search found nothing to label in 4 of 5 seeds.
        labels = np.minimum(beta * (labels - labels.min()), settings.label_cap_kt)
        mean, std = float(s_lab.mean()), float(max(s_lab.std(), 1e-6))
        ensemble = _pmf_ensemble(settings, rng)
        PMFTrainer(ensemble, options={"epochs": settings.pmf_epochs, "batch_size": settings.pmf_batch,
                                      "learning_rate": settings.pmf_learning_rate, "validation_fraction": 0.2,
                                      "seed": settings.seed * 1000 + iteration, "threads": settings.threads}
                   ).fit_labels(((s_lab - mean) / std).reshape(-1, 1), labels, progress=False)
        raw = affine_ensemble(ensemble, input_mean=mean, input_scale=std, output_scale=problem.kT)
        pmf_model, pmf_std = raw.evaluate(grid.reshape(-1, 1))
        kld = kld_on_grid(pmf_true, pmf_model, beta)
        # 3. CG Monte Carlo for an uncertain point, from the last one found (first: the global minimum).
        context, integrator = _walker_context(raw.to_bytes(), settings, problem.temperature, arrays["mc_start"],
                                              seed=settings.seed * 1000 + iteration + 1)
        # One step at a time, as the paper's sampler: the search ends at the step that finds the first point.
        steps, reached_max = 0, False
        while integrator.getNumFoundPoints() == 0:
            if steps >= settings.max_mc_steps:
                reached_max = True
                break
            integrator.step(1)
            steps += 1
        mc_steps = int(max(integrator.getWalkerSteps()))
        entry = {"iteration": iteration, "energy_evaluations": problem.energy.evaluations, "flow_draws": draws,
                 "kld_pmf": kld, "cg_mc_steps": mc_steps, "cg_mc_walker_steps": int(integrator.getNumProposals()),
                 "cg_mc_acceptance": integrator.getAcceptanceRate(),
                 "labelled_points": int(len(labels)), "reached_max": reached_max,
                 "wall_s": time.time() - started, "pmf_grid": pmf_model.tolist(), "pmf_std_grid": pmf_std.tolist()}
        entry.update(generator_metrics(flow, raw, problem, settings, reference, seed=settings.seed * 1000 + iteration))
        if not reached_max:
            found = np.array([integrator.getFoundPointCoordinates(0)[0]])
            entry["found_point"] = float(found[0])
            broad = broaden_points(found.reshape(1, 1), settings.broaden_count, settings.broaden_width / 2, rng,
                                   period=None)[:, 0]
            cut = int(round(settings.train_fraction * len(broad)))
            arrays["train_points"] = np.concatenate([train, broad[:cut]])
            arrays["test_points"] = np.concatenate([arrays["test_points"], broad[cut:]])
            arrays["new_points"] = broad[:cut]
            arrays["energies"] = np.concatenate([energies, np.full((cut, settings.copies), np.nan)])
            arrays["log_terms"] = np.concatenate([log_terms, np.full((cut, settings.copies), np.nan)])
            arrays["found_points"] = np.concatenate([arrays["found_points"], found])
            arrays["mc_start"] = found
        else:
            arrays["energies"], arrays["log_terms"] = energies, log_terms
        record["iterations"].append(entry)
        _save_state(out, arrays, record)
        bar.update(1)
        bar.set_postfix(kld="%.2e" % kld, evals=problem.energy.evaluations, mc=mc_steps)
        stop = reached_max
        del context, integrator
    bar.close()
    last = record["iterations"][-1]
    # The MC steps of the final search that only confirmed the stop are not counted (the paper's rule), and
    # they are counted as the paper does: the summed lengths of all walkers' trajectories.
    counted = [it for it in record["iterations"] if not it["reached_max"]]
    summary = {"kld_pmf": (last["kld_pmf"], "nats"), "energy_evaluations": (last["energy_evaluations"], "evaluations"),
               "cg_mc_steps": (sum(it["cg_mc_walker_steps"] for it in counted), "walker steps"),
               "iterations": (len(record["iterations"]), "iterations"),
               "reverse_ess_fraction": (last["reverse_ess_fraction"], "fraction"),
               "all_atom_log_likelihood": (last["all_atom_log_likelihood"], "nats"),
               "all_atom_log_likelihood_exact": (last["all_atom_log_likelihood_exact"], "nats"),
               "wall_s": (sum(it["wall_s"] for it in record["iterations"]), "s")}
    record["summary"] = {k: v[0] for k, v in summary.items()}
    _save_state(out, arrays, record)
    if emit is not None:
        for name, (value, unit) in summary.items():
            emit(name, value, unit)
    return record
