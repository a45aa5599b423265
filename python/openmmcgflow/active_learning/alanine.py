"""The conditional flow of Schopmans & Friederich for alanine dipeptide (amber96 + OBC, 300 K), and PMF
labels on a (phi, psi) grid from it: the machinery of the paper's grid conditioning (its Table 1, "grid").

* :class:`AlanineConditional`: the 60 internal coordinates of the phi/psi Z-matrix (HA and CB placed by
  impropers, so only columns 5 and 29 move with phi and psi) split into the 58 fine coordinates x_FG and
  the CG point s = (phi, psi); energies of [x_FG, s] in reduced units with the log-volume of the
  internal-to-Cartesian map, so that the target of the conditional flow is
  p(x_FG | s) ~ exp(-U(x) / k_B T) |det J| (the paper's eq. 11);
* :func:`conditional_flow`: the paper's architecture from the project's flow engine (circular
  rational-quadratic spline couplings, K = 8, residual conditioners) over x_FG given (phi, psi) as a
  circular context (the conditioners see cos phi, sin phi, cos psi, sin psi);
* :func:`md_start`: the short MD run the flow is first trained on by example (the paper: 50 ps);
* :func:`train_at_points`: training by energy at CG points, k copies per point per epoch, every copy's
  (U, log q, log|det J|) stored when drawn, so the labels (eq. 12) cost no extra evaluations;
* :func:`run_alanine_grid`: grid conditioning end to end on a G x G grid (80 % of the points train the flow,
  20 % are held out), labels, a fresh PMF ensemble (10 MLPs [4, 256, 128, 32, 1], sigmoid, fitted in
  k_B T), resumable after every epoch.

Speed on this project's 2-core machine: one reverse-KL step of the paper's flow (12 couplings of width 256)
on 64 samples takes ~0.1 s, so the paper's short grid run (20 epochs x 8 000 points x 30 copies =
4.8 x 10^6 evaluations) takes ~2 h of flow training here; ``run_alanine_grid`` takes smaller settings
for tests and demonstrations.
"""
import json
import os
import time
from dataclasses import asdict, dataclass

import numpy as np
import openmm
from tqdm import tqdm

from .. import systems
from .._core import Flow, MLPEnsemble, ModelTrainer
from ..files import atomic_write
from ..datafree.energies import InternalCoordinateEnergy, _wrap_angle
from ..pmf import PMFTrainer, affine_ensemble
from .labels import KB, pmf_labels

PHI_COLUMN, PSI_COLUMN = 5, 29


class AlanineConditional:
    """Fine coordinates, CG points and reduced energies of alanine dipeptide for a conditional flow."""

    def __init__(self, temperature=300.0, threads=1):
        self.system = systems.alanine_dipeptide("obc")
        self.internal = self.system.info["phi_psi_internal_coordinates"]
        self.temperature = float(temperature)
        self.kT = KB * self.temperature
        self.energy = InternalCoordinateEnergy(self.system.system, self.internal, self.temperature, threads=threads)
        columns = range(self.internal.num_internal)
        self.fine_columns = np.array([c for c in columns if c not in (PHI_COLUMN, PSI_COLUMN)])
        circular = set(int(c) for c in self.internal.zmatrix.circular_columns)
        self.fine_circular = [i for i, c in enumerate(self.fine_columns) if int(c) in circular]
        # The phi and psi columns hold the angle minus that of the minimized structure.
        self.phi_ref, self.psi_ref = self.system.info["phi_psi"].map_positions(self.system.positions[None])[0]

    @property
    def fine_dimension(self):
        return len(self.fine_columns)

    @staticmethod
    def context(cg):
        """The conditional flow's context of CG points (n, 2): (phi, psi) wrapped into [-pi, pi). The flow
        marks both as circular and feeds its conditioners (cos phi, sin phi, cos psi, sin psi), the paper's
        features; the raw angles are also what ``BoltzmannGeneratorIntegrator.setConditionVector`` takes."""
        cg = np.atleast_2d(np.asarray(cg, dtype=float))
        return _wrap_angle(cg)

    @staticmethod
    def pmf_inputs(cg):
        """(cos phi, sin phi, cos psi, sin psi) of CG points (n, 2): the PMF ensemble's inputs."""
        cg = np.atleast_2d(np.asarray(cg, dtype=float))
        return np.stack([np.cos(cg[:, 0]), np.sin(cg[:, 0]), np.cos(cg[:, 1]), np.sin(cg[:, 1])], axis=1)

    def model_coordinates(self, fine, cg):
        """The 60 model coordinates of fine coordinates (n, 58) at CG points (n, 2)."""
        fine = np.atleast_2d(np.asarray(fine, dtype=float))
        cg = np.atleast_2d(np.asarray(cg, dtype=float))
        q = np.zeros((len(fine), self.internal.num_internal))
        q[:, self.fine_columns] = fine
        q[:, PHI_COLUMN] = _wrap_angle(cg[:, 0] - self.phi_ref)
        q[:, PSI_COLUMN] = _wrap_angle(cg[:, 1] - self.psi_ref)
        return q

    def split(self, positions):
        """(fine (n, 58), cg (n, 2)) of positions (n, 22, 3) in nm."""
        q = np.asarray(self.energy.model_coordinates(np.asarray(positions, dtype=float)))
        cg = np.stack([_wrap_angle(q[:, PHI_COLUMN] + self.phi_ref), _wrap_angle(q[:, PSI_COLUMN] + self.psi_ref)], axis=1)
        return q[:, self.fine_columns], cg

    def price(self, fine, cg):
        """For reverse KL to p(x_FG | s) ~ exp(-u + v): the reduced loss energies u - v (n,), their forces
        -d(u - v)/dx_FG (n, 58), and for the labels U = u k_B T (kJ/mol) and v = log|det J| (n,)."""
        u, minus_du, v, dv = self.energy(self.model_coordinates(fine, cg))
        forces = (minus_du + dv)[:, self.fine_columns]
        finite = np.isfinite(u) & np.isfinite(v)
        return np.where(finite, u - v, np.inf), np.where(finite[:, None], forces, 0.0), u * self.kT, v


def conditional_flow(problem, *, num_layers=12, hidden=256, num_blocks=1, num_bins=8, seed=0, threads=1):
    """The paper's conditional flow over x_FG given (phi, psi), circular context (the conditioners see their
    cos and sin)."""
    return Flow({"dimension": problem.fine_dimension, "circular": problem.fine_circular, "context_dimension": 2,
                 "context_circular": [0, 1],
                 "num_layers": num_layers, "num_bins": num_bins, "hidden": hidden, "num_blocks": num_blocks,
                 "seed": seed, "num_threads": threads})


def grid_axis(cells):
    """Cell centres of ``cells`` equal cells over [-pi, pi)."""
    return -np.pi + (np.arange(int(cells)) + 0.5) * 2 * np.pi / int(cells)


def grid_centres(cells):
    """(phi, psi) of the cells x cells cell centres (cells^2, 2), phi-major (row i*cells + j is (axis[i], axis[j]))."""
    axis = grid_axis(cells)
    return np.stack(np.meshgrid(axis, axis, indexing="ij"), -1).reshape(-1, 2)


def md_start(problem, picoseconds=50.0, record_fs=100.0, seed=1):
    """Positions (n, 22, 3) of a Langevin run at the problem's temperature from the minimized structure
    (1 fs steps, friction 1/ps, one frame every ``record_fs``), on the Reference platform."""
    integrator = openmm.LangevinMiddleIntegrator(problem.temperature, 1.0, 0.001)
    integrator.setRandomNumberSeed(int(seed))
    context = openmm.Context(problem.system.system, integrator, openmm.Platform.getPlatformByName("Reference"))
    context.setPositions(problem.system.positions)
    context.setVelocitiesToTemperature(problem.temperature, int(seed))
    every = int(round(record_fs))
    frames = []
    for _ in range(int(round(picoseconds * 1000 / every))):
        integrator.step(every)
        frames.append(context.getState(getPositions=True).getPositions(asNumpy=True).value_in_unit(openmm.unit.nanometer))
    return np.array(frames)


def train_by_example(flow, problem, positions, *, epochs, batch, learning_rate, rng):
    """Maximum likelihood of the MD frames' x_FG given their (phi, psi)."""
    fine, cg = problem.split(positions)
    context = problem.context(cg)
    trainer = ModelTrainer(flow, {"learning_rate": learning_rate})
    for _ in range(epochs):
        order = rng.permutation(len(fine))
        for start in range(0, len(order), batch):
            index = order[start:start + batch]
            trainer.forward_kl_step(fine[index], context=context[index])
    return float(np.mean(flow.log_prob(fine, context=context)))


def train_at_points(trainer, problem, points, store, *, copies, batch, rng, drop_largest=0, on_batch=None):
    """One epoch of training by energy: every (point, copy) pair once, shuffled, in batches; each copy's
    (U kJ/mol, log q, log|det J|) written into ``store`` (arrays (n_points, copies) under "energy",
    "log_q", "log_det_j") when drawn. Returns the number of energy evaluations."""
    pairs = np.stack(np.meshgrid(np.arange(len(points)), np.arange(copies), indexing="ij"), -1).reshape(-1, 2)
    pairs = pairs[rng.permutation(len(pairs))]
    for start in range(0, len(pairs), batch):
        chosen = pairs[start:start + batch]
        cg = points[chosen[:, 0]]
        fine, log_q = trainer.sample(len(chosen), seed=int(rng.integers(2 ** 62)), context=problem.context(cg))
        loss_energy, forces, energy, log_det_j = problem.price(fine, cg)
        trainer.reverse_kl_step(loss_energy, forces, beta=1.0)
        store["energy"][chosen[:, 0], chosen[:, 1]] = energy
        store["log_q"][chosen[:, 0], chosen[:, 1]] = log_q
        store["log_det_j"][chosen[:, 0], chosen[:, 1]] = log_det_j
        if on_batch is not None:
            on_batch(len(chosen))
    return len(pairs)


def phi_psi_ensemble(cg, labels_kt, kT, *, members=10, hidden=(256, 128, 32), epochs=1500, batch=256,
                     learning_rate=5e-4, seed=0, threads=1):
    """A fresh ensemble [4, *hidden, 1] (sigmoid) fitted to labels in k_B T on (cos, sin) inputs, each member on
    its own 80 % (bagging), returned scaled to kJ/mol for a PMFForce."""
    ensemble = MLPEnsemble([4, *hidden, 1], members, "sigmoid", seed=seed)
    PMFTrainer(ensemble, options={"epochs": epochs, "batch_size": batch, "learning_rate": learning_rate,
                                  "validation_fraction": 0.2, "seed": seed, "threads": threads}
               ).fit_labels(AlanineConditional.pmf_inputs(cg), labels_kt, progress=False)
    return affine_ensemble(ensemble, output_scale=kT)


@dataclass
class AlanineFlowSettings:
    """What grid conditioning and active learning share, the paper's values: 30 copies per CG point (3 of 30
    label terms clipped), batches of 64 by energy with the 5 largest losses dropped, 50 ps of MD for training by
    example (batch 256, learning rate 1e-4, 50 epochs), the flow (12 couplings of width 256), the PMF ensemble
    (10 MLPs [4, 256, 128, 32, 1], 1 500 epochs, batch 256, Adam 5e-4) and the 80/20 split of CG points."""
    seed: int = 1
    copies: int = 30
    clip_top: int = 3
    batch: int = 64
    drop_largest: int = 5
    md_ps: float = 50.0
    example_epochs: int = 50
    example_batch: int = 256
    example_learning_rate: float = 1e-4
    flow_layers: int = 12
    flow_hidden: int = 256
    pmf_members: int = 10
    pmf_hidden: tuple = (256, 128, 32)
    pmf_epochs: int = 1500
    pmf_batch: int = 256
    pmf_learning_rate: float = 5e-4
    train_fraction: float = 0.8
    threads: int = 1


def fit_pmf(problem, points, energy, log_q, log_det_j, settings, seed):
    """Labels (eq. 12, ``settings.clip_top`` of the copies clipped) of CG ``points`` from their stored copies
    (arrays (points, copies)), and a fresh PMF ensemble fitted to them in k_B T (``phi_psi_ensemble``, the
    settings' sizes). Points whose every copy has weight zero (label +inf) are left out of the fit. Returns
    (ensemble in kJ/mol, labels in kJ/mol of every point)."""
    labels = pmf_labels(energy, log_q, log_det_j, problem.temperature, clip_top=settings.clip_top)
    keep = np.isfinite(labels)
    labels_kt = (labels[keep] - labels[keep].min()) / problem.kT
    # The paper's batch of 256 gives its thousands of points ~31 steps per epoch; fewer points keep that many
    # (with 720 points and batch 256 the ensemble was left far from its labels: 3 steps per epoch).
    batch = max(8, min(settings.pmf_batch, len(labels_kt) // 31))
    ensemble = phi_psi_ensemble(points[keep], labels_kt, problem.kT, members=settings.pmf_members,
                                hidden=settings.pmf_hidden, epochs=settings.pmf_epochs, batch=batch,
                                learning_rate=settings.pmf_learning_rate, seed=seed, threads=settings.threads)
    return ensemble, labels


@dataclass
class AlanineGridSettings(AlanineFlowSettings):
    """The paper's grid conditioning (its A.6 and public configuration) with the sizes as parameters: a 100 x 100
    grid, 100 epochs (its short run: 20), learning rate 1e-4 warmed up over the first 30 % of the epochs, then
    cosine, clipping 100; the rest as :class:`AlanineFlowSettings`."""
    grid: int = 100
    epochs: int = 20
    learning_rate: float = 1e-4
    warmup_fraction: float = 0.3
    max_gradient_norm: float = 100.0


def run_alanine_grid(settings=None, out="out/active_learning/ala2_grid", progress=True):
    """Grid conditioning end to end; returns a dict with the PMF on the grid (kJ/mol, ensemble mean and spread),
    the grid, the train/test split, the energy evaluations and the wall times. Resumes after the last finished
    epoch from ``out/state.npz`` (written atomically after every epoch)."""
    settings = settings or AlanineGridSettings()
    os.makedirs(out, exist_ok=True)
    problem = AlanineConditional(threads=settings.threads)
    flow = conditional_flow(problem, num_layers=settings.flow_layers, hidden=settings.flow_hidden,
                            seed=settings.seed, threads=settings.threads)
    axis, grid = grid_axis(settings.grid), grid_centres(settings.grid)
    split_rng = np.random.default_rng([settings.seed, 0])
    order = split_rng.permutation(len(grid))
    cut = int(round(settings.train_fraction * len(grid)))
    train, test = np.sort(order[:cut]), np.sort(order[cut:])
    state_path = os.path.join(out, "state.npz")
    settings_json = json.dumps(asdict(settings), sort_keys=True)
    started = time.time()
    if os.path.exists(state_path):
        with np.load(state_path, allow_pickle=False) as saved:
            state = {k: saved[k] for k in saved.files}
        if str(state["settings"]) != settings_json:
            raise ValueError("out: %s holds a run with other settings; use another directory" % out)
        flow.set_parameters(state["flow_parameters"])
    else:
        rng = np.random.default_rng([settings.seed, 1])
        frames = md_start(problem, settings.md_ps, seed=settings.seed)
        example_ll = train_by_example(flow, problem, frames, epochs=settings.example_epochs,
                                      batch=settings.example_batch, learning_rate=settings.example_learning_rate,
                                      rng=rng)
        shape = (len(train), settings.copies)
        state = {"settings": np.array(settings_json), "epochs_done": np.array(0), "evaluations": np.array(0),
                 "example_log_likelihood": np.array(example_ll), "md_frames": np.array(len(frames)),
                 "flow_parameters": flow.get_parameters(), "energy": np.full(shape, np.nan),
                 "log_q": np.full(shape, np.nan), "log_det_j": np.full(shape, np.nan),
                 "train_seconds": np.array(0.0)}
        atomic_write(state_path, lambda handle: np.savez(handle, **state))
    steps_per_epoch = -(-len(train) * settings.copies // settings.batch)
    total_steps = steps_per_epoch * settings.epochs
    warmup = int(round(settings.warmup_fraction * total_steps))
    trainer = ModelTrainer(flow, {"learning_rate": settings.learning_rate, "warmup_steps": warmup,
                                  "cosine_steps": total_steps, "final_learning_rate": 0.0,
                                  "max_gradient_norm": settings.max_gradient_norm,
                                  "drop_largest_losses": settings.drop_largest})
    if int(state["epochs_done"]) > 0 and "optimizer" in state:
        trainer.set_state(json.loads(str(state["optimizer"])))
    store = {k: state[k] for k in ("energy", "log_q", "log_det_j")}
    bar = tqdm(total=settings.epochs * len(train) * settings.copies, initial=int(state["evaluations"]),
               desc="grid conditioning", unit="eval", disable=not progress)
    while int(state["epochs_done"]) < settings.epochs:
        epoch = int(state["epochs_done"])
        epoch_start = time.time()
        rng = np.random.default_rng([settings.seed, 2, epoch])
        evaluations = train_at_points(trainer, problem, grid[train], store, copies=settings.copies,
                                      batch=settings.batch, rng=rng, on_batch=bar.update)
        state.update(store)
        state["epochs_done"] = np.array(epoch + 1)
        state["evaluations"] = np.array(int(state["evaluations"]) + evaluations)
        state["flow_parameters"] = flow.get_parameters()
        state["optimizer"] = np.array(json.dumps(_jsonable(trainer.get_state())))
        state["train_seconds"] = np.array(float(state["train_seconds"]) + time.time() - epoch_start)
        atomic_write(state_path, lambda handle: np.savez(handle, **state))
    bar.close()
    pmf_start = time.time()
    ensemble, labels = fit_pmf(problem, grid[train], store["energy"], store["log_q"], store["log_det_j"], settings,
                             seed=settings.seed)
    mean, spread = ensemble.evaluate(AlanineConditional.pmf_inputs(grid))
    result = {"grid_axis": axis, "pmf": mean.reshape(settings.grid, settings.grid),
              "pmf_std": spread.reshape(settings.grid, settings.grid), "train": train, "test": test,
              "labels_kj": labels, "energy_evaluations": int(state["evaluations"]),
              "md_frames": int(state["md_frames"]), "example_log_likelihood": float(state["example_log_likelihood"]),
              "train_seconds": float(state["train_seconds"]), "pmf_seconds": time.time() - pmf_start,
              "ensemble": ensemble, "flow": flow, "problem": problem}
    atomic_write(os.path.join(out, "pmf_model.safetensors"), lambda handle: handle.write(ensemble.to_bytes()))
    return result


def _jsonable(value):
    """The trainer state as plain JSON types (numpy arrays to lists)."""
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    return value
