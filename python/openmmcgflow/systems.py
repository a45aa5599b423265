"""Benchmark target systems of the papers, built as ordinary OpenMM Systems (no downloaded files).

Each builder returns a :class:`TestSystem`: the System, starting positions (nm), the
temperature whose k_B T the papers use, and a numpy reference energy for checks. Analytic
targets live on one particle's coordinates (several particles for higher dimensions); the
coordinates a target does not use are held by stiff harmonic restraints whose normalization
constant is included in the energy. The double well and the Gaussian mixtures are shifted so
that their 3N-dimensional Boltzmann density integrates to exactly 1 at the nominal
temperature (log Z = 0), which makes free-energy tests exact.
"""
from dataclasses import dataclass, field

import numpy as np
import openmm

KB = 0.00831446261815324  # kJ/mol/K
RESTRAINT_K = 1.0e4  # kJ/mol/nm^2 on unused coordinates


@dataclass
class TestSystem:
    """An OpenMM System with what a test or example needs to use it."""
    name: str
    system: openmm.System
    positions: np.ndarray          # (N, 3) nm
    temperature: float             # K; k_B T in kJ/mol is KB * temperature
    active: list                   # flat indices (into positions.ravel()) of the target's coordinates
    energy: object = None          # numpy reference U(positions) in kJ/mol for positions of shape (..., N, 3)
    info: dict = field(default_factory=dict)

    @property
    def kT(self):
        return KB * self.temperature

    @property
    def beta(self):
        return 1.0 / self.kT


def _num(value):
    """A number as Lepton reads it (numpy 2 reprs are not plain literals)."""
    return repr(float(value))


def _temperature_for_kT(kT):
    return kT / KB


def _coordinate_names(n_particles):
    return [f"{axis}{i + 1}" for i in range(n_particles) for axis in "xyz"]


def _analytic_system(name, dim, expression_of, kT, positions_active, reference_energy, info):
    """One CustomCompoundBondForce over ceil(dim/3) particles carrying `dim` active coordinates."""
    n_particles = max(1, -(-dim // 3))
    names = _coordinate_names(n_particles)
    active = list(range(dim))
    unused = names[dim:]
    # Lepton expressions may end in "; name = definition" clauses: extra terms go before them.
    main, _, definitions = expression_of(names[:dim]).partition(";")
    # Unused coordinates: stiff normalized Gaussians (their own log Z cancels with the constant).
    beta = 1.0 / kT
    for u in unused:
        main += f" + {_num(0.5 * RESTRAINT_K)}*{u}^2 + {_num(0.5 * kT * np.log(2 * np.pi / (beta * RESTRAINT_K)))}"
    expression = main + (";" + definitions if definitions else "")
    force = openmm.CustomCompoundBondForce(n_particles, expression)
    force.addBond(list(range(n_particles)), [])
    system = openmm.System()
    for _ in range(n_particles):
        system.addParticle(1.0)
    system.addForce(force)
    positions = np.zeros(3 * n_particles)
    positions[:dim] = positions_active
    restraint_constant = 0.5 * kT * np.log(2 * np.pi / (beta * RESTRAINT_K))

    def energy(pos):
        flat = np.asarray(pos, dtype=float).reshape(np.shape(pos)[:-2] + (3 * n_particles,))
        rest = flat[..., dim:]
        return (reference_energy(flat[..., :dim]) + 0.5 * RESTRAINT_K * np.sum(rest ** 2, axis=-1)
                + restraint_constant * rest.shape[-1])

    return TestSystem(name, system, positions.reshape(n_particles, 3), _temperature_for_kT(kT), active, energy, info)


def double_well():
    """U = x1^4/4 - 3 x1^2 + x1 + x2^2/2 (kJ/mol, nm) at beta = 1 (k_B T = 1 kJ/mol).

    The 2-D double well of the data-free coarse-graining paper (eq. 25): the mode at
    x1 ~ -2.5 holds about 99% of the probability. The energy is shifted by log Z so that the
    density is normalized (log Z = 0 at beta = 1).
    """
    x = np.linspace(-8, 8, 20001)
    log_z1 = np.log(np.trapezoid(np.exp(-(x ** 4 / 4 - 3 * x ** 2 + x)), x))
    log_z = log_z1 + 0.5 * np.log(2 * np.pi)

    def reference(xa):
        xa = np.asarray(xa, dtype=float)
        return xa[..., 0] ** 4 / 4 - 3 * xa[..., 0] ** 2 + xa[..., 0] + xa[..., 1] ** 2 / 2 + log_z

    def x1_marginal(x1, beta=1.0):
        """Exact normalized density of x1 at inverse temperature beta (in units of 1/kJ/mol)."""
        grid = np.linspace(-10, 10, 40001)
        u = lambda v: v ** 4 / 4 - 3 * v ** 2 + v
        shift = u(grid).min()
        z = np.trapezoid(np.exp(-beta * (u(grid) - shift)), grid)
        return np.exp(-beta * (u(np.asarray(x1, dtype=float)) - shift)) / z

    return _analytic_system("double_well", 2,
                            lambda c: f"{c[0]}^4/4 - 3*{c[0]}^2 + {c[0]} + {c[1]}^2/2 + {_num(log_z)}",
                            1.0, [-2.5, 0.0], reference, {"log_z_removed": log_z, "x1_marginal": x1_marginal})


def gaussian_mixture(dim=4, seed=0):
    """The 3-mode Gaussian mixture target of the data-free coarse-graining paper (eqs. 27-28).

    x = (x_z, x_X), dim(x_z) = dim(x_X) = dim/2; p(x_z) = sum_k 1/3 N(m_k, 0.01 I) with
    m_k ~ U[-1, 1]^{dim/2}; p(x_X | x_z) = N(B x_z, 0.01 I) with B_ij ~ N(0, 1). U = -log p at
    beta = 1, so Z = 1. Means and B come from numpy's default_rng(seed); info holds them.
    """
    if dim < 2 or dim % 2:
        raise ValueError("dim must be an even integer >= 2, got %r" % (dim,))
    rng = np.random.default_rng(seed)
    dz = dim // 2
    means = rng.uniform(-1, 1, size=(3, dz))
    B = rng.normal(size=(dz, dz))
    var = 0.01
    norm_z = 0.5 * dz * np.log(2 * np.pi * var) + np.log(3.0)
    norm_x = 0.5 * dz * np.log(2 * np.pi * var)

    def expression_of(c):
        z, X = c[:dz], c[dz:]
        q = []
        for k in range(3):
            q.append("(" + " + ".join(f"({z[i]} - {_num(means[k, i])})^2" for i in range(dz)) + f")/{_num(2 * var)}")
        fast = " + ".join(
            f"({X[i]} - (" + " + ".join(f"{_num(B[i, j])}*{z[j]}" for j in range(dz)) + f"))^2" for i in range(dz))
        # -log sum_k exp(-q_k), stabilized by the smallest q (Lepton differentiates min()).
        return (f"qmin - log(exp(qmin - q1) + exp(qmin - q2) + exp(qmin - q3)) + {_num(norm_z)} + ({fast})/{_num(2 * var)} + {_num(norm_x)};"
                f" qmin = min(q1, min(q2, q3)); q1 = {q[0]}; q2 = {q[1]}; q3 = {q[2]}")

    def reference(xa):
        xa = np.asarray(xa, dtype=float)
        z, X = xa[..., :dz], xa[..., dz:]
        q = np.stack([np.sum((z - means[k]) ** 2, axis=-1) / (2 * var) for k in range(3)], axis=-1)
        qmin = q.min(axis=-1)
        u_z = qmin - np.log(np.sum(np.exp(qmin[..., None] - q), axis=-1)) + norm_z
        u_x = np.sum((X - z @ B.T) ** 2, axis=-1) / (2 * var) + norm_x
        return u_z + u_x

    # Exact marginals by construction: x is a mixture of three Gaussians in all dim coordinates,
    # mode k with mean (m_k, B m_k) and covariance [[s I, s B^T], [s B, s B B^T + s I]].
    full_means = np.stack([np.concatenate([m, B @ m]) for m in means])
    cov = np.block([[var * np.eye(dz), var * B.T], [var * B, var * B @ B.T + var * np.eye(dz)]])

    def marginal(index, values):
        """Exact density of coordinate `index` (0 <= index < dim) at `values`."""
        if not 0 <= index < dim:
            raise ValueError("index must be in [0, %d), got %r" % (dim, index))
        v = np.asarray(values, dtype=float)[..., None]
        sd = np.sqrt(cov[index, index])
        return np.mean(np.exp(-0.5 * ((v - full_means[:, index]) / sd) ** 2) / (sd * np.sqrt(2 * np.pi)), axis=-1)

    def assign_mode(x_active):
        """Index of the mode whose mean of x_z is nearest, for samples of shape (..., dim)."""
        z = np.asarray(x_active, dtype=float)[..., :dz]
        return np.argmin(np.sum((z[..., None, :] - means) ** 2, axis=-1), axis=-1)

    def sample(n, rng):
        """Exact samples of the active coordinates, shape (n, dim)."""
        k = rng.integers(0, 3, size=n)
        z = means[k] + np.sqrt(var) * rng.normal(size=(n, dz))
        return np.concatenate([z, z @ B.T + np.sqrt(var) * rng.normal(size=(n, dz))], axis=1)

    start = np.concatenate([means[0], B @ means[0]])
    return _analytic_system(f"gaussian_mixture_{dim}d", dim, expression_of, 1.0, start, reference,
                            {"means": means, "B": B, "variance": var, "seed": seed, "slow": list(range(dz)),
                             "mode_weights": np.full(3, 1.0 / 3.0), "marginal": marginal, "assign_mode": assign_mode,
                             "sample": sample, "covariance": cov, "mode_means": full_means})


_MB_CONDITIONAL_FLOW = dict(A=(-200, -100, -170, 15), a=(-1, -1, -6.5, 0.7), b=(0, 0, 11, 0.6),
                            c=(-10, -10, -6.5, 0.7), x0=(1, 0, -0.5, -1), y0=(0, 0.5, 1.5, 1))
# The rescaled form of the CG Boltzmann generator paper (appendix B.1), k_B T = 1 on [10, 50]^2.
_MB_CGBG = dict(A=(-17.3, -8.7, -14.7, 1.3), a=(-0.0039, -0.0039, -0.0254, 0.00273), b=(0, 0, 0.043, 0.0023),
                c=(-0.0391, -0.0391, -0.0254, 0.00273), x0=(48, 32, 24, 16), y0=(8, 16, 32, 24))


def mueller_brown(variant="conditional_flow"):
    """Mueller-Brown potential on one particle's (x, y).

    variant "conditional_flow": the original parameters (Mueller & Brown 1979) at beta = 0.1
    (k_B T = 10 kJ/mol), as in the conditional-flow paper, starting in the global minimum.
    variant "cgbg": the rescaled form of the CG Boltzmann generator paper at k_B T = 1.
    """
    if variant == "conditional_flow":
        p, kT, start = _MB_CONDITIONAL_FLOW, 10.0, [-0.558, 1.442]
    elif variant == "cgbg":
        p, kT, start = _MB_CGBG, 1.0, [48.0, 8.0]
    else:
        raise ValueError("variant must be 'conditional_flow' or 'cgbg', got %r" % (variant,))
    terms = [f"{_num(A)}*exp({_num(a)}*(x1-{_num(x0)})^2 + {_num(b)}*(x1-{_num(x0)})*(y1-{_num(y0)}) + {_num(c)}*(y1-{_num(y0)})^2)"
             for A, a, b, c, x0, y0 in zip(p["A"], p["a"], p["b"], p["c"], p["x0"], p["y0"])]

    def reference(xa):
        xa = np.asarray(xa, dtype=float)
        x, y = xa[..., 0], xa[..., 1]
        return sum(A * np.exp(a * (x - x0) ** 2 + b * (x - x0) * (y - y0) + c * (y - y0) ** 2)
                   for A, a, b, c, x0, y0 in zip(p["A"], p["a"], p["b"], p["c"], p["x0"], p["y0"]))

    if variant == "conditional_flow":
        # CG coordinate s = x1 - x2, fine coordinate t = x1 + x2 (45-degree rotated axes).
        cg_coordinate = lambda xa: np.asarray(xa)[..., 0] - np.asarray(xa)[..., 1]
        to_xy = lambda s_, t: ((s_ + t) / 2, (t - s_) / 2)
        fine = np.linspace(-4.0, 5.0, 4001)
    else:
        # CG coordinate = x (projection), fine coordinate = y.
        cg_coordinate = lambda xa: np.asarray(xa)[..., 0]
        to_xy = lambda s_, t: (s_ + 0 * t, t + 0 * s_)
        fine = np.linspace(-20.0, 80.0, 4001)

    def pmf(s_values, beta=1.0 / kT):
        """PMF along the CG coordinate by quadrature, -kT ln integral exp(-beta U) over the fine
        coordinate (kJ/mol), shifted so that its minimum over s_values is 0."""
        s_values = np.atleast_1d(np.asarray(s_values, dtype=float))
        x, y = to_xy(s_values[:, None], fine[None, :])
        u = reference(np.stack([x, y], axis=-1))
        shift = u.min()
        free = -np.log(np.trapezoid(np.exp(-beta * (u - shift)), fine, axis=1)) / beta + shift
        return free - free.min()

    return _analytic_system(f"mueller_brown_{variant}", 2, lambda c: " + ".join(terms), kT, start, reference,
                            {"variant": variant, "parameters": p, "cg_coordinate": cg_coordinate, "pmf": pmf})


# ---- Alanine dipeptide ---------------------------------------------------------------------

# ACE-ALA-NME in the standard atom order (the order of the FAB / conditional-flow papers and of
# the Z-matrix in core): (residue, atom name, element).
_ALA2_ATOMS = [("ACE", "HH31", "H"), ("ACE", "CH3", "C"), ("ACE", "HH32", "H"), ("ACE", "HH33", "H"),
               ("ACE", "C", "C"), ("ACE", "O", "O"),
               ("ALA", "N", "N"), ("ALA", "H", "H"), ("ALA", "CA", "C"), ("ALA", "HA", "H"), ("ALA", "CB", "C"),
               ("ALA", "HB1", "H"), ("ALA", "HB2", "H"), ("ALA", "HB3", "H"), ("ALA", "C", "C"), ("ALA", "O", "O"),
               ("NME", "N", "N"), ("NME", "H", "H"), ("NME", "CH3", "C"), ("NME", "HH31", "H"), ("NME", "HH32", "H"),
               ("NME", "HH33", "H")]
_ALA2_BONDS = [(0, 1), (1, 2), (1, 3), (1, 4), (4, 5), (4, 6), (6, 7), (6, 8), (8, 9), (8, 10), (10, 11), (10, 12),
               (10, 13), (8, 14), (14, 15), (14, 16), (16, 17), (16, 18), (18, 19), (18, 20), (18, 21)]

# Standard geometry per atom of the FAB Z-matrix rows: (bond nm, angle deg, dihedral deg) for the
# atom's (bond, angle, dihedral) partners. Backbone in the C7eq basin (phi = -80, psi = 75),
# trans peptides, staggered methyls; HA/CB at phi -/+ 120 (swapped if that gives the D form).
_PHI, _PSI = -80.0, 75.0
_ALA2_GEOMETRY = {
    6: (0.1458, None, None), 14: (0.1525, 111.0, None),
    4: (0.1335, 121.9, _PHI), 5: (0.1229, 122.9, 0.0), 7: (0.1010, 118.0, 180.0),
    9: (0.1090, 109.5, _PHI + 120.0), 10: (0.1530, 110.5, _PHI - 120.0),
    11: (0.1090, 109.5, 180.0), 12: (0.1090, 109.5, 120.0), 13: (0.1090, 109.5, -120.0),
    16: (0.1335, 116.2, _PSI), 18: (0.1449, 121.9, 180.0),
    19: (0.1090, 109.5, 180.0), 20: (0.1090, 109.5, 120.0), 21: (0.1090, 109.5, -120.0),
    1: (0.1520, 116.2, 180.0), 15: (0.1229, 120.5, 180.0), 17: (0.1010, 119.8, 180.0),
    0: (0.1090, 109.5, 180.0), 2: (0.1090, 109.5, 120.0), 3: (0.1090, 109.5, -120.0),
}


def _ala2_topology():
    from openmm import app
    topology = app.Topology()
    chain = topology.addChain()
    residues, atoms = {}, []
    for res_name, atom_name, element in _ALA2_ATOMS:
        if res_name not in residues:
            residues[res_name] = topology.addResidue(res_name, chain)
        atoms.append(topology.addAtom(atom_name, app.Element.getBySymbol(element), residues[res_name]))
    for i, j in _ALA2_BONDS:
        topology.addBond(atoms[i], atoms[j])
    return topology


def _ala2_internal_vector(zmatrix, swap_alpha_substituents):
    q = np.zeros(zmatrix.num_internal)
    for r, (atom, *_rest) in enumerate(zmatrix.rows):
        if r == 0:
            continue
        bond, angle, dihedral = _ALA2_GEOMETRY[atom]
        if swap_alpha_substituents and atom in (9, 10):
            dihedral = _ALA2_GEOMETRY[10 if atom == 9 else 9][2]
        if r == 1:
            q[0] = bond
        elif r == 2:
            q[1], q[2] = bond, np.radians(angle)
        else:
            q[3 * r - 6], q[3 * r - 5], q[3 * r - 4] = bond, np.radians(angle), np.radians(dihedral)
    return q


def alanine_dipeptide(solvent="vacuum", minimize=True):
    """Alanine dipeptide (ACE-ALA-NME, 22 atoms) with AMBER ff96, at 300 K.

    solvent: "vacuum" (amber96.xml) or "obc" (amber96.xml + amber96_obc.xml implicit solvent).
    NoCutoff, no constraints. Built from the FAB Z-matrix with standard bond lengths and angles
    (C7eq backbone, L form checked with the chirality detector) and energy-minimized.
    info: topology, zmatrix, internal_coordinates (normalized as in the papers: shifted by the
    minimized structure, scales 0.005 nm / 0.15 rad / 0.2 rad, circular torsions unscaled),
    phi_psi_internal_coordinates (the same, but HA and CB placed by impropers so that only
    phi_psi_columns = (5, 29), i.e. phi and psi, change with the backbone torsions),
    the phi/psi DihedralCGMap, and the heavy-atom and core-beta slice maps.
    """
    from openmm import app
    from . import _core
    files = {"vacuum": ["amber96.xml"], "obc": ["amber96.xml", "amber96_obc.xml"]}
    if solvent not in files:
        raise ValueError("solvent must be 'vacuum' or 'obc', got %r" % (solvent,))
    topology = _ala2_topology()
    system = app.ForceField(*files[solvent]).createSystem(topology, nonbondedMethod=app.NoCutoff, constraints=None,
                                                          rigidWater=False)
    zmatrix = _core.ZMatrix.alanine_dipeptide()
    ic = _core.InternalCoordinates(zmatrix)
    for swap in (False, True):
        x, _ = ic.to_cartesian(_ala2_internal_vector(zmatrix, swap))
        if _core.detect_chirality(x)[0] == 1:
            break
    else:
        raise RuntimeError("could not build the L form of alanine dipeptide")
    positions = x[0]
    if minimize:
        context = openmm.Context(system, openmm.VerletIntegrator(0.001), openmm.Platform.getPlatformByName("Reference"))
        context.setPositions(positions)
        openmm.LocalEnergyMinimizer.minimize(context, 1e-3, 0)
        positions = context.getState(getPositions=True).getPositions(asNumpy=True).value_in_unit(openmm.unit.nanometer)
        positions = np.asarray(positions)
        if _core.detect_chirality(positions)[0] != 1:
            raise RuntimeError("minimization changed the chirality of alanine dipeptide")
    ic.set_normalization(positions)
    # For models whose slow variables are phi and psi (data-free slow/fast model): the same Z-matrix,
    # except that HA and CB are placed by impropers about CA-C (dihedral to N) instead of torsions about
    # N-CA (dihedral to the previous C), which move with phi. Then phi (column 5) and psi (column 29) are
    # the only coordinates that change along the backbone torsions; everything else is a local vibration
    # or a methyl/amide rotor.
    phi_psi_zmatrix = _core.ZMatrix([(atom, 8, 14, 6, False) if atom in (9, 10) else (atom, b, a, d, circular)
                                     for atom, b, a, d, circular in zmatrix.rows])
    phi_psi_ic = _core.InternalCoordinates(phi_psi_zmatrix)
    phi_psi_ic.set_normalization(positions)
    info = {"topology": topology, "zmatrix": zmatrix, "internal_coordinates": ic,
            "phi_psi_internal_coordinates": phi_psi_ic, "phi_psi_columns": (5, 29),
            "phi_psi": _core.DihedralCGMap.alanine_dipeptide_phi_psi(),
            "heavy_atom_map": _core.SliceMap.alanine_dipeptide("heavy_atom"),
            "core_beta_map": _core.SliceMap.alanine_dipeptide("core_beta"), "solvent": solvent}
    return TestSystem(f"alanine_dipeptide_{solvent}", system, positions, 300.0, list(range(66)), None, info)


def alanine_dipeptide_explicit(box_nm=3.7, *, temperature=300.0, cutoff_nm=1.0, ewald_tolerance=5e-4,
                               minimize=True, max_iterations=0, platform="CPU", platform_properties=None):
    """Alanine dipeptide in explicit water, as the CG Boltzmann-generator paper: amber99sb-ildn + TIP3P
    (OpenMM's bundled ``amber99sbildn.xml`` and ``tip3p.xml``), a cubic box of edge ``box_nm`` (3.7 nm),
    PME with a ``cutoff_nm`` (1 nm) real-space cutoff and OpenMM's default long-range dispersion
    correction, at ``temperature`` (300 K).

    The solute is the one of :func:`alanine_dipeptide` (Z-matrix geometry, C7eq, L form), centred in the
    box and solvated by ``openmm.app.Modeller.addSolvent`` (no ions: the peptide is neutral).
    Constraints: bonds to hydrogen (``HBonds``) and rigid TIP3P water, the usual choice for Langevin MD
    with a 2 fs step; these atomistic models are for data generation by MD (``cgbg.generate_dataset``
    with ``timestep=0.002``), where OpenMM's integrators apply the constraints. (The
    BoltzmannGeneratorIntegrator is meant for the CG System, not this one.)
    The structure is energy-minimized (``openmm.LocalEnergyMinimizer``, tolerance 10 kJ/mol/nm,
    ``max_iterations``: 0 = until converged, about 1 min on 2 CPU cores; 100 = about 7 s, enough to
    remove the clashes of the freshly placed water) on ``platform`` (None: OpenMM's choice) when
    ``minimize``.

    info: topology (solute residues ACE, ALA, NME, then HOH), solute_atoms (the solute's atom indices,
    0..21 in the order of :func:`alanine_dipeptide`), num_waters, box_nm, cutoff_nm, the heavy-atom and
    core-beta maps (``cgbg.heavy_atom_map`` / ``cgbg.core_beta_map`` of the topology: SliceMaps over all
    atoms) and the phi/psi CV forces (``cgbg.phi_psi_cvs``). ``active`` is the solute's flat coordinates.
    """
    from openmm import app, unit
    from .cgbg import maps
    if isinstance(box_nm, bool) or not np.isfinite(float(box_nm)) or float(box_nm) <= 2.0 * float(cutoff_nm):
        raise ValueError("box_nm: must exceed twice the cutoff (%g nm), got %r" % (2.0 * float(cutoff_nm), box_nm))
    if not np.isfinite(float(cutoff_nm)) or float(cutoff_nm) <= 0.0:
        raise ValueError("cutoff_nm: must be > 0, got %r" % (cutoff_nm,))
    if not np.isfinite(float(temperature)) or float(temperature) <= 0.0:
        raise ValueError("temperature: must be > 0 K, got %r" % (temperature,))
    if isinstance(max_iterations, bool) or not isinstance(max_iterations, (int, np.integer)) or max_iterations < 0:
        raise ValueError("max_iterations: must be an integer >= 0 (0: until converged), got %r" % (max_iterations,))
    box_nm, cutoff_nm, temperature = float(box_nm), float(cutoff_nm), float(temperature)
    solute = alanine_dipeptide("vacuum", minimize=False)
    topology = solute.info["topology"]
    x = np.asarray(solute.positions, dtype=float)
    x = x - x.mean(axis=0) + 0.5 * box_nm
    forcefield = app.ForceField("amber99sbildn.xml", "tip3p.xml")
    modeller = app.Modeller(topology, x * unit.nanometer)
    modeller.addSolvent(forcefield, model="tip3p", boxSize=openmm.Vec3(box_nm, box_nm, box_nm) * unit.nanometer,
                        neutralize=False)
    topology = modeller.getTopology()
    system = forcefield.createSystem(topology, nonbondedMethod=app.PME, nonbondedCutoff=cutoff_nm * unit.nanometer,
                                     constraints=app.HBonds, rigidWater=True, ewaldErrorTolerance=ewald_tolerance)
    positions = np.asarray(modeller.getPositions().value_in_unit(unit.nanometer), dtype=float)
    if minimize:
        integrator = openmm.VerletIntegrator(0.001)
        if platform is None:
            context = openmm.Context(system, integrator)
        else:
            context = openmm.Context(system, integrator, openmm.Platform.getPlatformByName(platform),
                                     dict(platform_properties or {}))
        context.setPositions(positions)
        openmm.LocalEnergyMinimizer.minimize(context, 10.0, int(max_iterations))
        state = context.getState(getPositions=True)
        positions = np.asarray(state.getPositions(asNumpy=True).value_in_unit(unit.nanometer), dtype=float)
        del context
    num_solute = solute.system.getNumParticles()
    solute_atoms = [a.index for r in topology.residues() if r.name in ("ACE", "ALA", "NME") for a in r.atoms()]
    info = {"topology": topology, "solute_atoms": solute_atoms, "num_solute_atoms": num_solute,
            "num_waters": sum(1 for r in topology.residues() if r.name == "HOH"), "box_nm": box_nm,
            "cutoff_nm": cutoff_nm, "constraints": "HBonds, rigid water",
            "heavy_atom_map": maps.heavy_atom_map(topology), "core_beta_map": maps.core_beta_map(topology),
            "phi_psi": maps.phi_psi_cvs(topology)}
    active = [3 * i + k for i in solute_atoms for k in range(3)]
    return TestSystem("alanine_dipeptide_explicit", system, positions, temperature, active, None, info)
