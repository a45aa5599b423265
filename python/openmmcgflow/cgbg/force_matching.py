"""Force matching of a CG PMF into a ``PMFForce``, with a harmonic prior as ordinary OpenMM forces.

The CG PMF of a map that keeps bonded atoms is dominated by its bonds and angles: springs of
10^5 kJ/mol/nm^2 whose thermal forces are hundreds of kJ/mol/nm. An MLP over pair distances learns
such a stiff parabola slowly (its first-layer weights must grow to ~1/sigma of the bond length), and
any error in it costs the importance weights a factor per bond. So, as CGnets (Wang et al. 2019) do,
the PMF is split:

* a **prior** of harmonic bonds and angles fitted to the data by Boltzmann inversion (k = k_B T / var,
  the minimum at the mean): an ``openmm.HarmonicBondForce`` and an ``openmm.HarmonicAngleForce``; and
  the dihedrals the data keep narrow (peptide bonds, planar groups: the heavy-atom map's omegas) as von
  Mises torsions in a ``CustomTorsionForce``. At a planar centre (a bead with three bonded neighbours
  whose three angles sum to ~2 pi: the carbonyl carbons of the heavy-atom map) the three angles are tied,
  so springs fitted to each marginal are jointly too stiff; there the angle springs reproduce the
  angles' joint in-plane covariance and an improper torsion carries the out-of-plane motion
  (:meth:`HarmonicPrior.fit`);
* a **PMFForce** (an MLP over all pair distances and the cos/sin of every proper dihedral of the bead
  graph) force-matched to the mapped forces minus the prior's forces: it learns what the prior misses
  (the coupling of bonds and angles to the rest, the torsions, the non-bonded pairs). Its first layer is
  initialized for centred inputs scaled to about unit variance: the pair distances all by one common
  scale, the dihedrals' cos/sin by another (the RMS of the group's standard deviations; see
  :func:`standardized_ensemble`), so that the stiff features (bond lengths, narrow dihedrals), which
  the prior already holds, are not magnified above the soft ones.

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
from ..pmf import PMFTrainer, affine_ensemble
from ..systems import KB
from .flow import _check_bonds

DEFAULT_PMF_OPTIONS = {"epochs": 60, "batch_size": 256, "learning_rate": 1e-3, "learning_rate_decay": 0.95,
                       "max_gradient_norm": 1.0, "validation_fraction": 0.1}


def _temperature(temperature):
    """temperature (K) as a float; not finite or not > 0 -> ValueError naming the argument."""
    value = float(temperature)
    if not (np.isfinite(value) and value > 0):
        raise ValueError("temperature: must be finite and > 0 (kelvin), got %r" % (temperature,))
    return value


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
    the dihedrals the data keep narrow (peptide bonds, planar groups) and the impropers of planar
    centres, von Mises torsions (i, j, k, l, phi0 rad, k kJ/mol: energy k (1 - cos(phi - phi0)))."""
    bonds: list
    angles: list
    num_beads: int
    dihedrals: list = field(default_factory=list)

    # A dihedral joins the prior when its mean resultant length exceeds this (circular sd below ~0.45 rad):
    # stiff torsions and planarity, which an MLP on cos/sin learns as slowly as it learns a bond spring.
    NARROW_DIHEDRAL = 0.9
    # A bead with three neighbours is a planar centre when the standard deviation of its three angles' sum
    # is below this fraction of the smallest angle's: the sum is pinned at 2 pi (heavy-atom carbonyls:
    # 0.007 rad against 0.05 per angle, ratio 0.15), not free as at a tetrahedral centre (C-alpha: 1.4).
    PLANAR_TIE = 0.5

    @classmethod
    def fit(cls, positions, bead_bonds, temperature, dihedrals=True, planar=True):
        """Boltzmann inversion of the data's bond lengths and angles: the minimum at the mean, the spring
        constant k_B T / variance (a harmonic PMF gives exactly this Gaussian); with ``dihedrals``, for each
        central bond the first proper dihedral about it whose distribution is narrow
        (:attr:`NARROW_DIHEDRAL`) as a von Mises torsion
        fitted by maximum likelihood (the circular mean, and the concentration kappa from the mean
        resultant length by Best & Fisher's approximation; k = kappa k_B T).

        With ``planar``, at each planar centre (:attr:`PLANAR_TIE`) j with neighbours a < b < c the three
        angle springs are refitted to the angles' joint covariance and the improper (a, b, c, j) joins the
        von Mises torsions (see :meth:`_planar_centres`)."""
        x = np.asarray(positions, dtype=float)
        kT = KB * _temperature(temperature)
        bonds = []
        for i, j in _check_bonds(bead_bonds, x.shape[1]):
            r = np.linalg.norm(x[:, j] - x[:, i], axis=-1)
            bonds.append((i, j, float(r.mean()), float(kT / r.var())))
        angles = []
        for i, j, k in bond_angles(x.shape[1], bead_bonds):
            theta = _angle_values(x, i, j, k)
            angles.append((i, j, k, float(theta.mean()), float(kT / theta.var())))
        torsions, central_bonds = [], set()
        if dihedrals:
            for quad in proper_dihedrals(x.shape[1], bead_bonds):
                if quad[1:3] in central_bonds:
                    continue  # dihedrals about one bond move together: a second spring would count it twice
                fitted = _narrow_von_mises(x, quad, kT, cls.NARROW_DIHEDRAL)
                if fitted is not None:
                    torsions.append((*quad, *fitted))
                    central_bonds.add(quad[1:3])
        if planar:
            angles, impropers = cls._planar_centres(x, bead_bonds, kT, angles)
            torsions.extend(impropers)
        return cls(bonds, angles, int(x.shape[1]), torsions)

    @classmethod
    def _planar_centres(cls, x, bead_bonds, kT, angles):
        """(angles with planar centres' springs refitted, their impropers as von Mises torsions).

        Why: at a planar centre the three angles always sum to ~2 pi, so they move in a 2-D subspace; three
        springs fitted each to its own marginal (k = k_B T / var) act there jointly and give each angle
        about 2/3 of the data's variance, and nothing in the angles holds the centre in its plane (the
        sum falls only quadratically with the out-of-plane height). The MLP then has to learn a stiff
        correction, which for the heavy-atom map of alanine dipeptide crowded out the soft phi/psi
        mean force. So:

        * the three springs are chosen such that their energy restricted to the plane,
          k_ab d_ab^2 / 2 + k_ac d_ac^2 / 2 + k_bc (d_ab + d_ac)^2 / 2 (d_bc = -d_ab - d_ac there), is the
          Boltzmann inversion of the joint Gaussian of two of the angles: with P = k_B T Cov(d_ab, d_ac)^-1,
          k_bc = P_12, k_ab = P_11 - P_12, k_ac = P_22 - P_12 (the same for any pair; kept only if all > 0,
          i.e. the angles are anticorrelated as the constraint makes them);
        * the out-of-plane motion, which is untied from the in-plane angles, gets its own spring: the
          improper (a, b, c, j), the angle between the neighbours' plane and the plane (b, c, j), ~0 when
          planar, as a von Mises torsion fitted like the narrow dihedrals.
        (A joint Gaussian over all three angles does not work: their covariance is singular and the sum is
        skewed, since bending out of the plane lowers it one way only.)"""
        num_beads = x.shape[1]
        adjacent = _neighbours(num_beads, _check_bonds(bead_bonds, num_beads))
        springs = {(i, j, k): [i, j, k, theta0, kt] for i, j, k, theta0, kt in angles}
        impropers = []
        for j in range(num_beads):
            if len(adjacent[j]) != 3:
                continue
            a, b, c = sorted(adjacent[j])
            triple = ((a, j, b), (a, j, c), (b, j, c))
            theta = np.stack([_angle_values(x, *t) for t in triple], axis=1)
            if not theta.sum(axis=1).std() < cls.PLANAR_TIE * theta.std(axis=0).min():
                continue  # a tetrahedral centre: its angles are not tied, the marginal springs stand
            precision = kT * np.linalg.inv(np.cov(theta[:, :2].T))
            k = (precision[0, 0] - precision[0, 1], precision[1, 1] - precision[0, 1], precision[0, 1])
            if min(k) > 0:
                for t, kt in zip(triple, k):
                    springs[t][4] = float(kt)
            fitted = _narrow_von_mises(x, (a, b, c, j), kT, cls.NARROW_DIHEDRAL)
            if fitted is not None:
                impropers.append((a, b, c, j, *fitted))
        return [tuple(v) for v in springs.values()], impropers

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


def _narrow_von_mises(x, quad, kT, narrow):
    """(phi0 rad, k kJ/mol) of the von Mises torsion k (1 - cos(phi - phi0)) fitted by maximum likelihood to the
    dihedral ``quad`` of configurations ``x`` (the circular mean, and the concentration kappa from the mean
    resultant length by Best & Fisher's approximation; k = kappa k_B T), or None when the data leave it broad
    (mean resultant length at most ``narrow``)."""
    angle = torsion_angles(x, quad)
    mean_vector = np.mean(np.cos(angle)), np.mean(np.sin(angle))
    resultant = math.hypot(*mean_vector)
    if not resultant > narrow:
        return None
    kappa = 1.0 / (resultant ** 3 - 4.0 * resultant ** 2 + 3.0 * resultant)
    return float(math.atan2(mean_vector[1], mean_vector[0])), float(kappa * kT)


def _angle_values(x, i, j, k):
    """The angle i-j-k (rad) of each configuration of (n, beads, 3) ``x``."""
    a, b = x[:, i] - x[:, j], x[:, k] - x[:, j]
    cos = np.sum(a * b, -1) / (np.linalg.norm(a, axis=-1) * np.linalg.norm(b, axis=-1))
    return np.arccos(np.clip(cos, -1.0, 1.0))


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


def standardized_ensemble(widths, inputs, *, num_members=1, activation="tanh", seed=1, pooled=()):
    """An MLPEnsemble whose first layer expects standardized inputs: W/sigma and b - W mu/sigma per member.

    ``pooled``: groups of input columns that share one scale, the root mean square of their standard
    deviations, instead of each its own (:func:`force_match` pools the pair distances, and the dihedrals'
    cos/sin)."""
    mean, std = inputs.mean(0), inputs.std(0)
    std = np.where(std > 1e-12, std, 1.0)
    for group in pooled:
        group = np.asarray(group, dtype=int)
        if len(group):
            std[group] = np.sqrt(np.mean(std[group] ** 2))
    base = MLPEnsemble(list(widths), num_members=num_members, activation=activation, seed=seed)
    return affine_ensemble(base, input_mean=mean, input_scale=std)


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
    _temperature(temperature)
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
    # The pair distances share one scale, and so do the cos/sin of the dihedrals. Why: scaled each to unit
    # variance, the stiff features (bonded and 1-3 distances, sd 0.003-0.006 nm against 0.05-0.1 for the
    # others, which the prior already holds; the cosine of a narrow omega, sd 0.02) are magnified 10-50x,
    # and the fit spends itself on their noisy stiff forces: the phi/psi mean force, a fraction of a percent
    # of the loss, was then not learned (heavy-atom alanine dipeptide: the fitted mean torque along phi off
    # by 12-17 kJ/mol/rad, 2.2 with shared scales, as the data's own noise; plain CG MD JS(phi, psi) from
    # 0.028, 0.087 to 0.006, 0.001). Nothing is dropped: the MLP can still correct the prior there.
    columns, distance_columns, dihedral_columns = 0, [], []
    for k in range(features.getNumFeatures()):   # a distance is one input, a dihedral two (cos, sin)
        if len(features.getFeatureParticles(k)) == 4:
            dihedral_columns += [columns, columns + 1]
            columns += 2
        else:
            distance_columns.append(columns)
            columns += 1
    model = standardized_ensemble([inputs.shape[1], *hidden, 1], inputs, num_members=num_members,
                                  activation=activation, seed=seed, pooled=[distance_columns, dihedral_columns])
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
    beta = 1.0 / (KB * _temperature(temperature))
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
