"""Umbrella sampling windows for CG datasets: one :func:`~openmmcgflow.cgbg.generate_dataset` run per
window, each with a harmonic restraint 0.5 k (q - c_w)^2 on one Cartesian coordinate q of one particle
(e.g. ``"x1"``, the CG coordinate x of ``systems.mueller_brown("cgbg")``). The restraint is a
``CustomExternalForce`` in a force group of its own, passed as ``bias_forces``, so the recorded forces
are those of the unbiased System and the restraint energy is the frame's bias energy.

The windows' datasets live in ``window_000``, ``window_001``, ... under one directory with a small
manifest (``umbrella.json``: the coordinate, the window centres, the force constant); a second call
skips the complete windows and continues a partial one through ``generate_dataset``'s own resume.
:func:`load_umbrella_dataset` concatenates the windows with a window index per frame.
"""
import json
import os
import re
from dataclasses import dataclass

import numpy as np
import openmm
from openmm import unit

from . import storage
from .data import _check_cvs, _check_map, _check_system, _force_description, _integer, _number, _sha256, generate_dataset

FORMAT = "openmmcgflow.cgbg.umbrella"
FORMAT_VERSION = 1
MANIFEST = "umbrella.json"
_COORDINATE = re.compile(r"([xyz])([1-9][0-9]*)")
_OPTIONS = ("record_every", "chunk_frames", "timestep", "friction", "seed", "equilibration_steps",
            "save_atom_positions", "bead_names")


def window_name(index):
    return "window_%03d" % index


def parse_coordinate(coordinate, num_particles):
    """(particle index, axis 0..2) of a coordinate named as in :mod:`openmmcgflow.systems`: ``"x1"`` is
    the x of particle 1 (the first). A ValueError names ``coordinate`` if it does not exist."""
    match = _COORDINATE.fullmatch(coordinate) if isinstance(coordinate, str) else None
    if match is None:
        raise ValueError("coordinate: must name a Cartesian coordinate as 'x1', 'y1', 'z2', ... (axis, then the "
                         "particle counted from 1), got %r" % (coordinate,))
    particle = int(match.group(2)) - 1
    if particle >= num_particles:
        raise ValueError("coordinate: %r does not exist: the system has %d particle%s (x1 .. z%d)"
                         % (coordinate, num_particles, "" if num_particles == 1 else "s", num_particles))
    return particle, "xyz".index(match.group(1))


def restraint_force(coordinate, particle, centre, force_constant, group):
    """The umbrella restraint 0.5 k (q - centre)^2 on ``coordinate`` of ``particle``, in force ``group``."""
    force = openmm.CustomExternalForce("0.5*umbrella_k*(%s - umbrella_centre)^2" % coordinate[0])
    force.addPerParticleParameter("umbrella_k")
    force.addPerParticleParameter("umbrella_centre")
    force.addParticle(particle, [float(force_constant), float(centre)])
    force.setForceGroup(group)
    force.setName("umbrella restraint on %s" % coordinate)
    return force


def coordinate_cv(coordinate, particle):
    """A CV force whose energy is the coordinate itself (recorded each frame under its name)."""
    force = openmm.CustomExternalForce(coordinate[0])
    force.addParticle(particle, [])
    return force


def _free_group(system):
    used = {system.getForce(i).getForceGroup() for i in range(system.getNumForces())}
    free = sorted(set(range(32)) - used)
    # The highest free group is kept for generate_dataset's CV reader.
    if len(free) < 2:
        raise ValueError("system: uses %d of the 32 force groups; the restraint and the CV reader need two free "
                         "ones" % (32 - len(free)))
    return free[-2]


def _centres(centres):
    try:
        values = np.array(centres, dtype=float).reshape(-1)
    except (TypeError, ValueError):
        raise ValueError("centres: must be a sequence of numbers (nm), got %r" % (centres,)) from None
    if values.size == 0:
        raise ValueError("centres: no windows (an empty list of window centres)")
    if not np.all(np.isfinite(values)):
        raise ValueError("centres: must be finite, got %r" % (values.tolist(),))
    return values


def umbrella_windows(system, positions, cg_map, path, *, coordinate, centres, force_constant, temperature,
                     num_frames, cvs=None, max_chunks=None, **options):
    """Umbrella sampling: one :func:`generate_dataset` run per window into ``path/window_NNN``.

    coordinate: the restrained Cartesian coordinate, named as in :mod:`openmmcgflow.systems` (``"x1"``:
    x of the first particle); centres: the window centres (nm); force_constant: k (kJ/mol/nm^2, > 0) of
    the restraint 0.5 k (q - c)^2, which sits in a force group of its own (passed as ``bias_forces``,
    so the recorded forces are unbiased; its energy is the bias energy). The coordinate is recorded as a
    CV of that name, beside ``cvs``.
    positions: (N, 3) nm, copied per window with the coordinate set to the window's centre, or
    (windows, N, 3): a start per window. Window w uses ``seed + w``; the other ``options``
    (``record_every``, ``chunk_frames``, ``timestep``, ``friction``, ``seed``, ``equilibration_steps``,
    ``platform``, ``platform_properties``, ``save_atom_positions``, ``bead_names``, ``progress``) go to
    :func:`generate_dataset` unchanged.

    A second call on the same directory must give the same coordinate, centres, force constant,
    temperature, System, map and options (an error names the one that differs; ``num_frames`` may
    grow): complete windows are skipped, a partial one continues through ``generate_dataset``'s resume.
    ``max_chunks`` stops the call after that many chunks over all windows. Returns the umbrella
    manifest (a dict; ``windows[w]["status"]`` says what this call did: "skipped", "ran", "not reached").
    """
    _check_system(system)
    num_particles = system.getNumParticles()
    _check_map(cg_map, num_particles)
    particle, axis = parse_coordinate(coordinate, num_particles)
    centres = _centres(centres)
    force_constant = _number(force_constant, unit.kilojoule_per_mole / unit.nanometer ** 2, "force_constant")
    temperature = _number(temperature, unit.kelvin, "temperature")
    num_frames = _integer(num_frames, "num_frames")
    if max_chunks is not None:
        max_chunks = _integer(max_chunks, "max_chunks")
    unknown = sorted(set(options) - set(_OPTIONS) - {"platform", "platform_properties", "progress"})
    if unknown:
        raise TypeError("%s: not an option of umbrella_windows (options: %s)"
                        % (unknown[0], ", ".join(_OPTIONS + ("platform", "platform_properties", "progress"))))
    cvs = _check_cvs(cvs)
    if coordinate in cvs:
        raise ValueError("cvs: %r is the restrained coordinate, recorded already" % coordinate)
    if unit.is_quantity(positions):
        positions = positions.value_in_unit(unit.nanometer)
    positions = np.array(positions, dtype=float)
    if positions.shape == (num_particles, 3):
        starts = np.repeat(positions[None], len(centres), axis=0)
        starts[:, particle, axis] = centres
    elif positions.shape == (len(centres), num_particles, 3):
        starts = positions
    else:
        raise ValueError("positions: must have shape (%d, 3) or (%d windows, %d, 3) nm, got %s"
                         % (num_particles, len(centres), num_particles, positions.shape))
    if not np.all(np.isfinite(starts)):
        raise ValueError("positions: must be finite")
    seed = _integer(options.get("seed", 1), "seed")
    group = _free_group(system)
    path = os.fspath(path)

    settings = {name: options[name] for name in _OPTIONS if name in options and name != "seed"}
    settings["seed"] = seed
    settings["cvs"] = {name: _force_description(f) for name, f in cvs.items()}
    header = {"format": FORMAT, "format_version": FORMAT_VERSION, "coordinate": coordinate, "particle": particle,
              "axis": "xyz"[axis], "centres": centres.tolist(), "force_constant": force_constant,
              "force_group": group, "temperature": temperature,
              "system_sha256": _sha256(openmm.XmlSerializer.serialize(system)),
              "cg_map": storage.map_to_json(cg_map),
              "settings": json.loads(json.dumps(settings))}
    manifest = _open(path, header)
    manifest["target_frames"] = num_frames
    manifest["windows"] = [{"index": w, "centre": float(c), "path": window_name(w), "seed": seed + w}
                           for w, c in enumerate(centres)]
    storage.atomic_write_json(os.path.join(path, MANIFEST), manifest)

    written = 0
    for w, centre in enumerate(centres):
        entry = manifest["windows"][w]
        window_path = os.path.join(path, window_name(w))
        done = _window_frames(window_path)
        if done is not None and done >= num_frames:
            entry.update(status="skipped", frames_attempted=done, complete=True)
            continue
        if max_chunks is not None and written >= max_chunks:
            entry.update(status="not reached", frames_attempted=done or 0, complete=False)
            continue
        before = storage.complete_chunks(window_path) if os.path.isdir(window_path) else 0
        window_cvs = dict({coordinate: coordinate_cv(coordinate, particle)}, **cvs)
        window_options = dict(options, seed=seed + w)
        result = generate_dataset(system, starts[w], cg_map, window_path, temperature=temperature,
                                  num_frames=num_frames, cvs=window_cvs,
                                  bias_forces=[restraint_force(coordinate, particle, centre, force_constant, group)],
                                  max_chunks=None if max_chunks is None else max_chunks - written,
                                  **window_options)
        written += result["counts"]["chunks"] - before
        entry.update(status="ran", frames_attempted=result["counts"]["frames_attempted"],
                     complete=bool(result["complete"]))
    manifest["complete"] = all(entry["complete"] for entry in manifest["windows"])
    storage.atomic_write_json(os.path.join(path, MANIFEST), manifest)
    return manifest


def _window_frames(window_path):
    """Frames attempted in a window's complete chunks (None if it has no dataset yet)."""
    if not os.path.exists(os.path.join(window_path, storage.MANIFEST)):
        return None
    count = storage.complete_chunks(window_path)
    return storage.chunk_summary(window_path, count - 1)["frame_stop"] if count else 0


def _open(path, header):
    if os.path.exists(path) and not os.path.isdir(path):
        raise ValueError("path: %s exists and is not a directory" % path)
    os.makedirs(path, exist_ok=True)
    file = os.path.join(path, MANIFEST)
    if not os.path.exists(file):
        others = [f for f in os.listdir(path) if not f.startswith(storage.TMP_PREFIX)]
        if others:
            raise ValueError("path: %s is not empty and holds no %s; refusing to write umbrella windows into it (%s)"
                             % (path, MANIFEST, ", ".join(sorted(others)[:5])))
        return dict(header)
    with open(file) as handle:
        manifest = json.load(handle)
    if manifest.get("format") != FORMAT:
        raise ValueError("path: %s is not an umbrella directory (format %r)" % (file, manifest.get("format")))
    names = {"system_sha256": "system", "particle": "coordinate", "axis": "coordinate"}
    for key in ("coordinate", "particle", "axis", "centres", "force_constant", "temperature", "system_sha256",
                "cg_map", "force_group"):
        if manifest.get(key) != header[key]:
            raise ValueError("%s: differs from the umbrella windows at %s (%r there, %r here); continue them with the "
                             "same arguments or use a new directory"
                             % (names.get(key, key), path, _short(manifest.get(key)), _short(header[key])))
    old, new = manifest.get("settings", {}), header["settings"]
    for key in sorted(set(old) | set(new)):
        if old.get(key) != new.get(key):
            raise ValueError("%s: differs from the umbrella windows at %s (%r there, %r here)"
                             % (key, path, old.get(key), new.get(key)))
    return manifest


def _short(value):
    return value[:12] if isinstance(value, str) and len(value) == 64 else value


@dataclass
class UmbrellaDataset:
    """The umbrella windows of a directory, concatenated in window order.

    positions, forces (unbiased), energy, bias_energy (the restraint's energy), cvs, step: as in
    :class:`~openmmcgflow.cgbg.CGDataset`, over all windows; window (n,): the window of each frame;
    coordinate (n,): the restrained coordinate's value; centres and force_constant: the windows';
    datasets: the per-window CGDatasets; manifest: ``umbrella.json``.
    """
    positions: np.ndarray
    forces: np.ndarray
    energy: np.ndarray
    bias_energy: np.ndarray
    cvs: np.ndarray
    cv_names: list
    step: np.ndarray
    window: np.ndarray
    coordinate: np.ndarray
    centres: np.ndarray
    force_constant: float
    datasets: list
    manifest: dict

    def __len__(self):
        return self.positions.shape[0]

    @property
    def temperature(self):
        return self.manifest["temperature"]

    def bias(self, values, window):
        """The restraint energy 0.5 k (q - c_window)^2 (kJ/mol) of coordinate values in a window."""
        return 0.5 * self.force_constant * (np.asarray(values, dtype=float) - self.centres[window]) ** 2


def load_umbrella_dataset(path):
    """Read a directory written by :func:`umbrella_windows`: every window that has a dataset (complete
    or not), concatenated, with the window index per frame. Returns an :class:`UmbrellaDataset`."""
    path = os.fspath(path)
    file = os.path.join(path, MANIFEST)
    if not os.path.exists(file):
        raise ValueError("path: %s holds no %s (not an umbrella directory)" % (path, MANIFEST))
    with open(file) as handle:
        manifest = json.load(handle)
    if manifest.get("format") != FORMAT:
        raise ValueError("path: %s is not an umbrella directory (format %r)" % (file, manifest.get("format")))
    datasets, windows = [], []
    for w in range(len(manifest["centres"])):
        window_path = os.path.join(path, window_name(w))
        if os.path.exists(os.path.join(window_path, storage.MANIFEST)):
            datasets.append(storage.load_dataset(window_path))
            windows.append(w)
    if not datasets:
        raise ValueError("path: %s has no window datasets yet" % path)
    names = datasets[0].cv_names
    for w, d in zip(windows, datasets):
        if d.cv_names != names:
            raise ValueError("path: window %d records CVs %s, window %d %s" % (w, d.cv_names, windows[0], names))
    join = lambda name: np.concatenate([getattr(d, name) for d in datasets])
    window = np.concatenate([np.full(len(d), w, dtype=np.int64) for w, d in zip(windows, datasets)])
    cvs = join("cvs")
    return UmbrellaDataset(join("positions"), join("forces"), join("energy"), join("bias_energy"), cvs, list(names),
                           join("step"), window, cvs[:, names.index(manifest["coordinate"])],
                           np.array(manifest["centres"], dtype=float), float(manifest["force_constant"]),
                           datasets, manifest)
