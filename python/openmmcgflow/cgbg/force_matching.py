"""Force matching of a CG PMF into a ``PMFForce``, with a harmonic prior as ordinary OpenMM forces.

The CG PMF of a map that keeps bonded atoms is dominated by its bonds and angles: springs of
10^5 kJ/mol/nm^2 whose thermal forces are hundreds of kJ/mol/nm. An MLP over pair distances learns
such a stiff parabola slowly (its first-layer weights must grow to ~1/sigma of the bond length), and
any error in it costs the importance weights a factor per bond. So, as CGnets (Wang et al. 2019) do,
the PMF is split:

* a **prior** of harmonic bonds and angles fitted to the data by Boltzmann inversion (k = k_B T / var,
  the minimum at the mean): an ``openmm.HarmonicBondForce`` and an ``openmm.HarmonicAngleForce``; and
  the dihedrals the data keep narrow (peptide bonds, planar groups: the heavy-atom map's omegas) as von
  Mises torsions in a ``CustomTorsionForce``;
* a **PMFForce** (an MLP over all pair distances and the cos/sin of every proper dihedral of the bead
  graph) force-matched to the mapped forces minus the prior's forces: it learns what the prior misses
  (the coupling of bonds and angles to the rest, the torsions, the non-bonded pairs). Its first layer is
  initialized for standardized inputs (weights divided by each feature's standard deviation, biases
  shifted by the means), so every feature starts on the same footing.

The CG System is the CG particles + the prior + the PMFForce (:func:`pmf_system`); the PMF that the
reweighting uses is their sum. The dihedral features make the PMF chiral: a pair-distance model cannot
tell a configuration from its mirror image, a sine of a dihedral changes sign under it.
"""
import math
import time
from dataclasses import dataclass, field

import numpy as np
import openmm

from .._core import MLPEnsemble
from ..energy import EnergyTarget
from ..plugin import PMFForce
from ..pmf import PMFTrainer
from ..systems import KB
from .flow import _check_bonds

DEFAULT_PMF_OPTIONS = {"epochs": 60, "batch_size": 256, "learning_rate": 1e-3, "learning_rate_decay": 0.95,
                       "max_gradient_norm": 1.0, "validation_fraction": 0.1}


def _neighbours(num_beads, bonds):
    adjacent = [set() for _ in range(num_beads)]
    for i, j in bonds:
        adjacent[i].add(j)
        adjacent[j].add(i)
    return adjacent


def bond_angles(num_beads, bead_bonds):
    """Every angle (i, j, k) of the bead graph, j the vertex, i < k."""
    adjacent = _neighbours(num_beads, _check_bonds(bead_bonds, num_beads))
    return [(i, j, k) for j in range(num_beads) for i in sorted(adjacent[j]) for k in sorted(adjacent[j]) if i < k]


def proper_dihedrals(num_beads, bead_bonds):
    """Every proper dihedral (i, j, k, l) along bonds i-j, j-k, k-l of the bead graph, each once."""
    bonds = _check_bonds(bead_bonds, num_beads)
    adjacent = _neighbours(num_beads, bonds)
    result = []
    for j, k in bonds:
        for i in sorted(adjacent[j] - {k}):
            for l in sorted(adjacent[k] - {j, i}):
                result.append((i, j, k, l))
    return result


def evaluate_forces(forces, num_particles, positions):
    """(energies (n,), forces (n, particles, 3)) of OpenMM ``forces`` on ``num_particles`` particles for each
    configuration of ``positions`` (n, particles, 3) nm: a throwaway System priced by an EnergyTarget."""
    system = openmm.System()
    for _ in range(int(num_particles)):
        system.addParticle(1.0)
    for force in forces:
        system.addForce(force)
    energies, result, _ = EnergyTarget(system).evaluate(np.asarray(positions, dtype=float))
    return energies, result


@dataclass
class HarmonicPrior:
    """Harmonic bonds (i, j, r0 nm, k kJ/mol/nm^2), angles (i, j, k, theta0 rad, k kJ/mol/rad^2) and, for
    the dihedrals the data keep narrow (peptide bonds, planar groups), von Mises torsions
    (i, j, k, l, phi0 rad, k kJ/mol: energy k (1 - cos(phi - phi0)))."""
    bonds: list
    angles: list
    num_beads: int
    dihedrals: list = field(default_factory=list)

    # A dihedral joins the prior when its mean resultant length exceeds this (circular sd below ~0.45 rad):
    # stiff torsions and planarity, which an MLP on cos/sin learns as slowly as it learns a bond spring.
    NARROW_DIHEDRAL = 0.9

    @classmethod
    def fit(cls, positions, bead_bonds, temperature, dihedrals=True):
        """Boltzmann inversion of the data's bond lengths and angles: the minimum at the mean, the spring
        constant k_B T / variance (a harmonic PMF gives exactly this Gaussian); with ``dihedrals``, for each
        central bond the first proper dihedral about it whose distribution is narrow
        (:attr:`NARROW_DIHEDRAL`) as a von Mises torsion
        fitted by maximum likelihood (the circular mean, and the concentration kappa from the mean
        resultant length by Best & Fisher's approximation; k = kappa k_B T)."""
        x = np.asarray(positions, dtype=float)
        kT = KB * float(temperature)
        bonds = []
        for i, j in _check_bonds(bead_bonds, x.shape[1]):
            r = np.linalg.norm(x[:, j] - x[:, i], axis=-1)
            bonds.append((i, j, float(r.mean()), float(kT / r.var())))
        angles = []
        for i, j, k in bond_angles(x.shape[1], bead_bonds):
            a, b = x[:, i] - x[:, j], x[:, k] - x[:, j]
            cos = np.sum(a * b, -1) / (np.linalg.norm(a, axis=-1) * np.linalg.norm(b, axis=-1))
            theta = np.arccos(np.clip(cos, -1.0, 1.0))
            angles.append((i, j, k, float(theta.mean()), float(kT / theta.var())))
        torsions, central_bonds = [], set()
        if dihedrals:
            for quad in proper_dihedrals(x.shape[1], bead_bonds):
                if quad[1:3] in central_bonds:
                    continue  # dihedrals about one bond move together: a second spring would count it twice
                angle = torsion_angles(x, quad)
                mean_vector = np.mean(np.cos(angle)), np.mean(np.sin(angle))
                resultant = math.hypot(*mean_vector)
                if resultant > cls.NARROW_DIHEDRAL:
                    kappa = 1.0 / (resultant ** 3 - 4.0 * resultant ** 2 + 3.0 * resultant)
                    torsions.append((*quad, float(math.atan2(mean_vector[1], mean_vector[0])), float(kappa * kT)))
                    central_bonds.add(quad[1:3])
        return cls(bonds, angles, int(x.shape[1]), torsions)

    def forces(self):
        """The prior as OpenMM forces (new objects each call)."""
        bond_force, angle_force = openmm.HarmonicBondForce(), openmm.HarmonicAngleForce()
        for i, j, r0, k in self.bonds:
            bond_force.addBond(i, j, r0, k)
        for i, j, k, theta0, kt in self.angles:
            angle_force.addAngle(i, j, k, theta0, kt)
        forces = [bond_force, angle_force]
        if self.dihedrals:
            torsion_force = openmm.CustomTorsionForce("k_prior * (1 - cos(theta - theta0_prior))")
            torsion_force.addPerTorsionParameter("theta0_prior")
            torsion_force.addPerTorsionParameter("k_prior")
            for i, j, k, l, phi0, kd in self.dihedrals:
                torsion_force.addTorsion(i, j, k, l, [phi0, kd])
            forces.append(torsion_force)
        return forces

    def evaluate(self, positions):
        """(energies (n,), forces (n, beads, 3)) of the prior, through OpenMM."""
        return evaluate_forces(self.forces(), self.num_beads, positions)

    def to_json(self):
        return {"bonds": [list(b) for b in self.bonds], "angles": [list(a) for a in self.angles],
                "dihedrals": [list(d) for d in self.dihedrals], "num_beads": self.num_beads}


def torsion_angles(positions, quad):
    """The dihedral angle (rad, OpenMM's convention: the ``theta`` of a CustomTorsionForce) of beads ``quad``
    in each configuration, evaluated by OpenMM itself so that fitted minima use its sign convention."""
    x = np.asarray(positions, dtype=float)
    torsion = openmm.CustomTorsionForce("theta")
    torsion.addTorsion(*[int(b) for b in quad], [])
    energies, _ = evaluate_forces([torsion], x.shape[1], x)
    return energies


def pmf_features(num_beads, bead_bonds, *, distances="nonbonded", dihedrals=True):
    """A ``PMFForce`` (no model yet) over the CG beads: pair distances (``"nonbonded"``: all pairs but the
    bonded ones, whose springs the prior carries; ``"all"``; or ``"none"``), then, with ``dihedrals``, the
    cos and sin of every proper dihedral of the bead graph (chiral: the sines change sign under a mirror)."""
    bonds = set(tuple(sorted(b)) for b in _check_bonds(bead_bonds, num_beads))
    if distances not in ("nonbonded", "all", "none"):
        raise ValueError("distances: expected 'nonbonded', 'all' or 'none', got %r" % (distances,))
    force = PMFForce()
    if distances != "none":
        for i in range(num_beads):
            for j in range(i + 1, num_beads):
                if distances == "all" or (i, j) not in bonds:
                    force.addDistance(i, j)
    if dihedrals:
        for quad in proper_dihedrals(num_beads, bead_bonds):
            force.addDihedral(*quad)
    if force.getNumFeatures() == 0:
        raise ValueError("distances, dihedrals: the force would have no features")
    return force


def _input_size(force):
    size = 0
    for k in range(force.getNumFeatures()):
        size += 2 if len(force.getFeatureParticles(k)) == 4 else 1
    return size


def feature_values(force, positions):
    """The model inputs a ``PMFForce`` computes for each configuration, (n, inputs), read through the core
    (one linear model per input), so they are exactly what the force's MLP sees."""
    x = np.asarray(positions, dtype=float)
    size = _input_size(force)
    values = np.empty((len(x), size))
    for k in range(size):
        weights = np.zeros((1, size))
        weights[0, k] = 1.0
        model = MLPEnsemble.from_arrays([[weights]], [[np.zeros(1)]], "identity", "identity")
        energies, _ = PMFTrainer(model, force, {"epochs": 1}).predict(x)
        values[:, k] = energies
    return values


def standardized_ensemble(widths, inputs, *, num_members=1, activation="tanh", seed=1):
    """An MLPEnsemble whose first layer expects standardized inputs: W/sigma and b - W mu/sigma per member."""
    mean, std = inputs.mean(0), inputs.std(0)
    std = np.where(std > 1e-12, std, 1.0)
    base = MLPEnsemble(list(widths), num_members=num_members, activation=activation, seed=seed).to_dict()
    weights = [[np.asarray(w, dtype=float) for w in member] for member in base["weights"]]
    biases = [[np.asarray(b, dtype=float).ravel() for b in member] for member in base["biases"]]
    for m in range(len(weights)):
        w = weights[m][0] / std[None, :]
        biases[m][0] = biases[m][0] - w @ mean
        weights[m][0] = w
    return MLPEnsemble.from_arrays(weights, biases, activation, "identity")


@dataclass
class ForceMatchResult:
    """A force-matched PMF: the ``pmf_force`` (its model set) and the ``prior``; ``history`` of the fit,
    the fit's losses in (kJ/mol/nm)^2 per component, and the seconds it took."""
    pmf_force: object
    prior: HarmonicPrior
    history: dict
    options: dict
    seconds: float
    info: dict = field(default_factory=dict)

    def forces(self):
        """The PMF as OpenMM forces: the prior's, then a copy of the PMFForce."""
        prior = self.prior.forces() if self.prior is not None else []
        return prior + [openmm.XmlSerializer.clone(self.pmf_force)]

    def evaluate(self, positions):
        """(energies, forces) of prior + PMFForce for (n, beads, 3) positions, through OpenMM."""
        return evaluate_forces(self.forces(), self.info["num_beads"], positions)


def force_match(positions, forces, bead_bonds, *, temperature, hidden=(128, 128, 128), activation="tanh",
                num_members=1, prior=True, distances="all", dihedrals=True, options=None, seed=1,
                progress=True, checkpoint=None):
    """Force-match a CG PMF to (n, beads, 3) ``positions`` and mapped ``forces`` (kJ/mol/nm).

    With ``prior`` a :class:`HarmonicPrior` is fitted first and the MLP learns the rest; the MLP's inputs
    are :func:`pmf_features` (``distances``, ``dihedrals``), its widths [inputs, *hidden, 1], trained by
    ``PMFTrainer.fit_forces`` with ``options`` (:data:`DEFAULT_PMF_OPTIONS` overridden; the paper: Adam
    with exponential decay, gradient-norm clipping at 1, a 90/10 split, best validation kept) and
    ``checkpoint`` (a file: the fit resumes from it). Returns a :class:`ForceMatchResult`.
    """
    x = np.asarray(positions, dtype=float)
    f = np.asarray(forces, dtype=float)
    if x.ndim != 3 or x.shape[2] != 3 or not np.all(np.isfinite(x)):
        raise ValueError("positions: expected finite (n, beads, 3) nm, got shape %s" % (x.shape,))
    if f.shape != x.shape:
        raise ValueError("forces: expected the shape of positions %s, got %s" % (x.shape, f.shape))
    finite = np.all(np.isfinite(f), axis=(1, 2))
    if not np.all(finite):
        raise ValueError("forces: %d of %d frames are not finite (load_dataset skips such frames; pass "
                         "the finite ones)" % (int(np.sum(~finite)), len(f)))
    start = time.perf_counter()
    num_beads = x.shape[1]
    fitted_prior = HarmonicPrior.fit(x, bead_bonds, temperature) if prior else None
    target = f - fitted_prior.evaluate(x)[1] if prior else f
    features = pmf_features(num_beads, bead_bonds, distances=distances, dihedrals=dihedrals)
    inputs = feature_values(features, x)
    model = standardized_ensemble([inputs.shape[1], *hidden, 1], inputs, num_members=num_members,
                                  activation=activation, seed=seed)
    settings = dict(DEFAULT_PMF_OPTIONS)
    settings.update(options or {})
    settings.setdefault("seed", int(seed))
    trainer = PMFTrainer(model, features, settings)
    history = trainer.fit_forces(x, target, progress=progress, checkpoint=checkpoint)
    features.setModelBytes(model.to_bytes())
    info = {"num_beads": num_beads, "num_inputs": int(inputs.shape[1]), "hidden": list(hidden),
            "activation": activation, "num_members": int(num_members), "distances": distances,
            "dihedrals": bool(dihedrals), "num_frames": len(x),
            "target_force_rms": float(np.sqrt(np.mean(target ** 2))),
            "mapped_force_rms": float(np.sqrt(np.mean(f ** 2)))}
    return ForceMatchResult(features, fitted_prior, history, settings, time.perf_counter() - start, info)


def mirror(positions):
    """The mirror images (x -> -x) of (n, beads, 3) configurations: L becomes D."""
    y = np.array(positions, dtype=float, copy=True)
    y[..., 0] *= -1.0
    return y


def d_form_fraction(energy, mirrored_energy, log_w, temperature):
    """The D fraction of the PMF's CG ensemble, estimated from weighted samples of the L form: the mirror
    map is a volume-preserving bijection L -> D, so Z_D / Z_L = E_L[exp(-beta (U(mirror x) - U(x)))] with
    the L samples' normalized weights. Returns Z_D / (Z_L + Z_D): 0.5 for a PMF blind to chirality."""
    beta = 1.0 / (KB * float(temperature))
    log_w = np.asarray(log_w, dtype=float)
    delta = -beta * (np.asarray(mirrored_energy, dtype=float) - np.asarray(energy, dtype=float))
    keep = np.isfinite(log_w) & np.isfinite(delta)
    if not np.any(keep):
        return float("nan")
    a = log_w[keep]
    shift = a.max()
    w = np.exp(a - shift)
    b = delta[keep]
    top = b.max()
    log_ratio = math.log(np.sum(w * np.exp(b - top)) / np.sum(w)) + top
    return float(1.0 / (1.0 + math.exp(-log_ratio)))
