"""Energy adapters for data-free training: the reduced energy (and forces) of a model's coordinates.

:class:`CoordinateEnergy` places the model's coordinates into chosen flat coordinates of an
``openmm.System``; :class:`InternalCoordinateEnergy` builds a molecule from internal coordinates (rigid
motion removed, optionally with open torsions) and :class:`CartesianFrameEnergy` from the free Cartesian
coordinates of a body frame. The last two also return the untempered log-volume of their map.
"""
import numpy as np

from ..energy import EnergyTarget


class CoordinateEnergy:
    """U and forces of flow coordinates x (n, D) placed into chosen flat coordinates of a System.

    ``active``: flat indices into the (N, 3) positions that x fills (the rest stay at ``positions``).
    Every configuration priced counts as one energy evaluation (``evaluations``).

    ``energy_regularization``: None, or (e_high, e_max) for EnergyTarget's regularization (energies
    above e_high grow logarithmically and are capped at e_max, forces scaled to match), which keeps
    clashing samples of an untrained model from dominating the reverse-KL gradient.
    """

    def __init__(self, system, positions, active, platform="Reference", threads=1, energy_regularization=None):
        self.target = EnergyTarget(system, platform=platform, threads=threads)
        if energy_regularization is not None:
            e_high, e_max = energy_regularization
            self.target.set_energy_regularization(e_high, e_max)
        n = self.target.num_particles
        self.positions = np.asarray(positions, dtype=float)
        if self.positions.size != 3 * n or not np.all(np.isfinite(self.positions)):
            raise ValueError("positions: expected %d finite positions (%d, 3) in nm (the System's particles), got "
                             "shape %s" % (n, n, self.positions.shape))
        self.positions = self.positions.reshape(-1, 3)
        active_values = np.asarray(active)
        if active_values.ndim != 1 or active_values.size == 0 or not np.issubdtype(active_values.dtype, np.integer):
            raise ValueError("active: expected a non-empty 1-D list of flat coordinate indices, got %r" % (active,))
        self.active = active_values.astype(int)
        if self.active.min() < 0 or self.active.max() >= 3 * n or len(np.unique(self.active)) != len(self.active):
            raise ValueError("active: indices must be distinct and in [0, %d) (3 per particle), got %r"
                             % (3 * n, active_values.tolist()))
        self.evaluations = 0

    def __call__(self, x):
        x = np.asarray(x, dtype=float)
        if x.ndim != 2 or x.shape[1] != len(self.active):
            raise ValueError("x: expected shape (n, %d), one value per active coordinate, got %s"
                             % (len(self.active), x.shape))
        batch = np.repeat(self.positions[None], len(x), axis=0).reshape(len(x), -1)
        batch[:, self.active] = x
        energies, forces, finite = self.target.evaluate(batch.reshape(len(x), -1, 3))
        self.evaluations += len(x)
        forces = forces.reshape(len(x), -1)[:, self.active]
        return np.where(finite, energies, np.inf), forces


def _wrap_angle(angle):
    """angle (radians, any shape) mapped to (-pi, pi]."""
    return np.angle(np.exp(1j * angle))


class InternalCoordinateEnergy:
    """Reduced energy of internal coordinates of a molecule: u(q) = U(x(q)) / kT, for train_data_free.

    q (n, 3N-6) are the (normalized) internal coordinates of ``internal_coordinates`` (a
    :class:`InternalCoordinates`, e.g. ``systems.alanine_dipeptide().info["internal_coordinates"]``);
    x(q) is its NeRF build in the canonical frame, which removes the six rigid-body degrees of freedom.
    ``temperature`` (K) sets kT, so beta = 1 in train_data_free is this temperature.

    Returns (u, -du/dq, v, dv/dq) with v = log|det dx/dq| (the log-volume of the map): the density of q
    at inverse temperature beta is exp(-beta u(q) + v(q)) / Z. The volume term is not tempered, which is
    why it is returned apart from u; train_data_free handles it (see there). Non-finite or clashing
    configurations get u = inf (dropped by the trainer); with ``energy_regularization`` = (e_high, e_max)
    in kJ/mol, EnergyTarget's logarithmic regularization is applied first.

    ``open_torsions``: None, or {column: cut} for circular columns (cut in that column's coordinate,
    radians in [-pi, pi)). Each such torsion is then an open coordinate y on the real line,
    theta = c + pi tanh(y / pi) with c = cut + pi (wrapped): theta covers the circle once, minus the cut.
    A model with a density on R (a Gaussian decoder) then has a proper density on the circle, which a
    Gaussian put directly on a periodic coordinate does not (reverse KL widens it without bound where
    the torsion is free). The model coordinates are then y in those columns; v gains the log-Jacobian
    sum log(1 - tanh^2(y / pi)). Put the cut on a barrier: density near it is squeezed into tanh's tails.
    """

    def __init__(self, system, internal_coordinates, temperature, platform="Reference", threads=1,
                 energy_regularization=None, open_torsions=None):
        if not (np.isfinite(float(temperature)) and float(temperature) > 0):
            raise ValueError("temperature must be finite and > 0 K, got %r" % (temperature,))
        if internal_coordinates.num_atoms != system.getNumParticles():
            raise ValueError("internal_coordinates: cover %d atoms but the System has %d particles"
                             % (internal_coordinates.num_atoms, system.getNumParticles()))
        self.target = EnergyTarget(system, platform=platform, threads=threads)
        if energy_regularization is not None:
            self.target.set_energy_regularization(*energy_regularization)
        self.internal = internal_coordinates
        self.kT = 0.00831446261815324 * float(temperature)  # kJ/mol
        self.evaluations = 0
        self._open_columns, self._open_centers = self._check_open_torsions(open_torsions)

    def _check_open_torsions(self, open_torsions):
        if open_torsions is None:
            return np.zeros(0, dtype=int), np.zeros(0)
        if not isinstance(open_torsions, dict):
            raise ValueError("open_torsions: must be None or a dict {column: cut}, got %r" % (type(open_torsions),))
        circular = set(int(c) for c in self.internal.zmatrix.circular_columns)
        columns, centers = [], []
        for column, cut in sorted(open_torsions.items()):
            if int(column) not in circular:
                raise ValueError("open_torsions: column %r is not a circular column (those are %s)"
                                 % (column, sorted(circular)))
            if not (np.isfinite(cut) and -np.pi <= cut < np.pi):
                raise ValueError("open_torsions: the cut of column %r must be in [-pi, pi), got %r" % (column, cut))
            columns.append(int(column))
            centers.append(_wrap_angle(float(cut) + np.pi))
        return np.array(columns, dtype=int), np.array(centers)

    def _internal(self, y):
        """(q, dq/dy on the open columns, log|dq/dy|, its gradient) of model coordinates y (n, 3N-6)."""
        q = np.array(y, dtype=float)
        if len(self._open_columns) == 0:
            return q, None, np.zeros(len(q)), None
        t = np.tanh(q[:, self._open_columns] / np.pi)
        q[:, self._open_columns] = _wrap_angle(self._open_centers + np.pi * t)
        derivative = 1.0 - t * t
        with np.errstate(divide="ignore"):  # |y| beyond ~60: tanh = 1 in doubles, on the cut; v = -inf, u = inf
            log_jacobian = np.sum(np.log(derivative), axis=1)
        return q, derivative, log_jacobian, -2.0 * t / np.pi

    def cartesian(self, q):
        """Positions (n, N, 3) in nm of model coordinates (internal coordinates, torsions opened if asked) q (n, 3N-6)."""
        return self.internal.to_cartesian(self._internal(q)[0])[0]

    def model_coordinates(self, x):
        """Model coordinates (m, 3N-6) of positions (m, N, 3): the inverse of cartesian() up to rigid motion
        (a torsion exactly on its cut maps to +-inf)."""
        q = np.array(self.internal.to_internal(np.asarray(x, dtype=float))[0])
        if len(self._open_columns):
            offset = _wrap_angle(q[:, self._open_columns] - self._open_centers)
            with np.errstate(divide="ignore"):
                q[:, self._open_columns] = np.pi * np.arctanh(offset / np.pi)
        return q

    def __call__(self, y):
        y = np.ascontiguousarray(y, dtype=float)
        q, dq_dy, log_jacobian, dlog_jacobian = self._internal(y)
        x, log_volume = self.internal.to_cartesian(q)
        energies, forces, finite = self.target.evaluate(x)
        self.evaluations += len(q)
        finite = finite & np.isfinite(log_volume) & np.isfinite(log_jacobian)
        u = np.where(finite, energies / self.kT, np.inf)
        forces = np.where(finite[:, None, None], forces, 0.0)
        du = self.internal.to_cartesian_backward(q, dL_dx=-forces / self.kT)
        dv = self.internal.to_cartesian_backward(q, dL_dlogdet=np.ones(len(q)))
        if dq_dy is not None:  # the chain rule through theta(y), and the open map's own log-Jacobian
            du[:, self._open_columns] *= dq_dy
            dv[:, self._open_columns] = dv[:, self._open_columns] * dq_dy + dlog_jacobian
            log_volume = log_volume + log_jacobian
        return u, -du, np.where(finite, log_volume, 0.0), np.where(finite[:, None], dv, 0.0)


class CartesianFrameEnergy:
    """Reduced energy u = U / kT of the 3N - 6 free Cartesian coordinates of a molecule in a body frame.

    The frame (as the embedded-physics paper fixes six coordinates): ``frame_atoms`` = (a, b, c) with a at
    the origin, b on the +x axis and c in the xy-plane with y > 0. Model coordinates d (n, 3N - 6) are
    displacements (nm) of the free coordinates from the reference structure ``positions`` placed in that
    frame, so a model whose output starts near 0 starts near the reference. ``temperature`` (K) sets kT.

    Returns (u, -du/dd, v, dv/dd) with the log-volume v = log(x_b^2 y_c) of the frame (integrating out
    the translation and rotation of a Cartesian density leaves the factor x_b^2 y_c), untempered as in
    InternalCoordinateEnergy. Configurations with x_b <= 0 or y_c <= 0 lie outside the frame: u = inf.
    """

    def __init__(self, system, positions, frame_atoms, temperature, platform="Reference", threads=1):
        if not (np.isfinite(float(temperature)) and float(temperature) > 0):
            raise ValueError("temperature must be finite and > 0 K, got %r" % (temperature,))
        n = system.getNumParticles()
        a, b, c = (int(i) for i in frame_atoms)
        if len({a, b, c}) != 3 or not all(0 <= i < n for i in (a, b, c)):
            raise ValueError("frame_atoms must be three different particle indices in [0, %d), got %r" % (n, frame_atoms))
        positions = np.asarray(positions, dtype=float).reshape(-1, 3)
        if len(positions) != n:
            raise ValueError("positions: %d particles but the System has %d" % (len(positions), n))
        self.target = EnergyTarget(system, platform=platform, threads=threads)
        self.kT = 0.00831446261815324 * float(temperature)
        self.frame_atoms = (a, b, c)
        self.reference = self.to_frame(positions[None])[0]
        fixed = {3 * a, 3 * a + 1, 3 * a + 2, 3 * b + 1, 3 * b + 2, 3 * c + 2}
        self.active = np.array([k for k in range(3 * n) if k not in fixed])
        self.reference.reshape(-1)[sorted(fixed)] = 0.0  # exactly, not to round-off
        self._xb = int(np.searchsorted(self.active, 3 * b))
        self._yc = int(np.searchsorted(self.active, 3 * c + 1))
        self.evaluations = 0

    def to_frame(self, x):
        """Positions (m, N, 3) moved into the body frame (rotation and translation only)."""
        x = np.asarray(x, dtype=float)
        a, b, c = self.frame_atoms
        e1 = x[:, b] - x[:, a]
        e1 /= np.linalg.norm(e1, axis=1, keepdims=True)
        e2 = x[:, c] - x[:, a]
        e2 -= np.sum(e2 * e1, axis=1, keepdims=True) * e1
        e2 /= np.linalg.norm(e2, axis=1, keepdims=True)
        basis = np.stack([e1, e2, np.cross(e1, e2)], axis=2)  # columns: the frame's axes
        return np.einsum("mij,mjk->mik", x - x[:, a:a + 1], basis)

    def model_coordinates(self, x):
        """Model coordinates d (m, 3N-6) of positions (m, N, 3): their free frame coordinates minus the
        reference's (the inverse of cartesian() up to rigid motion)."""
        return self.to_frame(x).reshape(len(x), -1)[:, self.active] - self.reference.reshape(-1)[self.active]

    def cartesian(self, d):
        """Positions (m, N, 3) in the frame of model coordinates d (m, 3N - 6)."""
        d = np.asarray(d, dtype=float)
        x = np.repeat(self.reference.reshape(1, -1), len(d), axis=0)
        x[:, self.active] += d
        return x.reshape(len(d), -1, 3)

    def __call__(self, d):
        x = self.cartesian(d)
        energies, forces, finite = self.target.evaluate(x)
        self.evaluations += len(d)
        flat = x.reshape(len(d), -1)
        xb, yc = flat[:, self.active[self._xb]], flat[:, self.active[self._yc]]
        finite = finite & (xb > 0) & (yc > 0)
        u = np.where(finite, energies / self.kT, np.inf)
        f = np.where(finite[:, None], forces.reshape(len(d), -1)[:, self.active] / self.kT, 0.0)
        safe_xb, safe_yc = np.where(finite, xb, 1.0), np.where(finite, yc, 1.0)
        v = np.where(finite, 2 * np.log(safe_xb) + np.log(safe_yc), 0.0)
        dv = np.zeros_like(f)
        dv[:, self._xb] = np.where(finite, 2 / safe_xb, 0.0)
        dv[:, self._yc] = np.where(finite, 1 / safe_yc, 0.0)
        return u, f, v, dv


def _energy_terms(energy, x):
    """(u, forces, v, dv/dx) of an energy callable returning (u, forces) or (u, forces, v, dv/dx)."""
    out = energy(x)
    if len(out) == 2:
        return out[0], out[1], 0.0, 0.0
    if len(out) == 4:
        return out
    raise ValueError("energy: must return (u, forces) or (u, forces, log_volume, log_volume_gradient), got %d values"
                     % len(out))
