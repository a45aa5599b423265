"""The on-disk format of a CG dataset: a directory of chunk files and a manifest, all written atomically.

A dataset directory holds

* ``manifest.json``: format, source (``"md"`` or ``"trajectory"``), the System's particle count and
  SHA-256, the CG map, the temperature, the settings, the CV names, the array layout and the counts;
* ``chunk_00000.npz``, ``chunk_00001.npz``, ...: the frames, in order; each chunk is complete or absent;
* ``state_NNNNN.npz`` (MD datasets): what is needed to continue after the last chunk (OpenMM checkpoint,
  positions, velocities, box, step, the metadynamics bias grid).

Every file is written to a temporary file in the same directory and moved into place with
``os.replace``, so a killed writer leaves whole files only (and stray ``.tmp-*`` files, which a resumed
run removes). The chunks are the record: :func:`load_dataset` reads ``chunk_00000`` up to the last one
and checks that they follow each other; the manifest's counts may lag one chunk behind after a kill.
"""
import json
import os
import re
from dataclasses import dataclass, field

import numpy as np

from .. import files
from .._core import LinearMap, SliceMap
from ..files import TMP_PREFIX, atomic_save_npz, atomic_write  # noqa: F401  (the dataset writers' names)

FORMAT = "openmmcgflow.cgbg.dataset"
FORMAT_VERSION = 1
MANIFEST = "manifest.json"
_CHUNK = re.compile(r"chunk_(\d{5,})\.npz")
_STATE = re.compile(r"state_(\d{5,})\.npz")

# Arrays of every chunk: name -> (shape with 'frames', 'beads', 'cvs', 'atoms', unit).
ARRAYS = {
    "positions": (["frames", "beads", 3], "nm"),
    "forces": (["frames", "beads", 3], "kJ/mol/nm"),
    "energy": (["frames"], "kJ/mol"),
    "bias_energy": (["frames"], "kJ/mol"),
    "cvs": (["frames", "cvs"], "CV units (rad for torsions)"),
    "step": (["frames"], "MD step, or frame index in the trajectory file"),
}
OPTIONAL_ARRAYS = {"atom_positions": (["frames", "atoms", 3], "nm")}


def chunk_name(index):
    return "chunk_%05d.npz" % index


def state_name(index):
    return "state_%05d.npz" % index


def atomic_write_json(path, obj):
    files.atomic_write_json(path, obj, indent=1, sort_keys=True)


def read_manifest(path):
    """The manifest of the dataset directory ``path`` (ValueError naming ``path`` if it is not one)."""
    file = os.path.join(path, MANIFEST)
    if not os.path.isfile(file):
        raise ValueError("path: %s is not a CG dataset (no %s)" % (path, MANIFEST))
    with open(file, encoding="utf-8") as handle:
        manifest = json.load(handle)
    if manifest.get("format") != FORMAT:
        raise ValueError("path: %s has format %r, expected %r" % (file, manifest.get("format"), FORMAT))
    if manifest.get("format_version") != FORMAT_VERSION:
        raise ValueError("path: %s has format_version %r; this version reads %d"
                         % (file, manifest.get("format_version"), FORMAT_VERSION))
    return manifest


def _indexed(path, pattern):
    return sorted(int(m.group(1)) for m in (pattern.fullmatch(f) for f in os.listdir(path)) if m)


def complete_chunks(path):
    """Number of chunks, checking that they are chunk_00000 ... chunk_{n-1} with none missing."""
    indices = _indexed(path, _CHUNK)
    if indices != list(range(len(indices))):
        missing = sorted(set(range(indices[-1] + 1)) - set(indices))
        raise ValueError("path: %s lacks %s but holds later chunks; the directory was altered"
                         % (path, chunk_name(missing[0])))
    return len(indices)


def state_indices(path):
    return _indexed(path, _STATE)


def remove_temporary_files(path):
    """Remove what a killed writer left (``.tmp-*``); returns their names."""
    stray = [f for f in os.listdir(path) if f.startswith(TMP_PREFIX)]
    for name in stray:
        os.unlink(os.path.join(path, name))
    return stray


def chunk_summary(path, index):
    """{file, frame_start, frame_stop, frames, skipped} of one chunk, read from the chunk itself."""
    with np.load(os.path.join(path, chunk_name(index))) as data:
        return {"file": chunk_name(index), "frame_start": int(data["frame_start"]),
                "frame_stop": int(data["frame_stop"]), "frames": int(data["step"].shape[0]),
                "skipped": int(data["skipped_steps"].shape[0])}


def map_to_json(cg_map):
    """A CG map as JSON: a SliceMap by its atoms, a LinearMap by its coefficients (bead rows, non-zeros)."""
    if isinstance(cg_map, SliceMap):
        return {"type": "SliceMap", "num_atoms": cg_map.num_atoms, "num_beads": cg_map.num_beads,
                "atoms": [int(a) for a in cg_map.atoms], "force_map_type": cg_map.force_map_type}
    coefficients = np.asarray(cg_map.coefficients)
    rows = [[[int(j), float(c)] for j, c in enumerate(row) if c != 0.0] for row in coefficients]
    description = {"type": "LinearMap", "num_atoms": cg_map.num_atoms, "num_beads": cg_map.num_beads,
                   "coefficients": rows, "force_map_type": cg_map.force_map_type}
    if cg_map.force_map_type == "explicit":  # the force map is not derived from c: store it
        description["force_coefficients"] = [[[int(j), float(b)] for j, b in enumerate(row) if b != 0.0]
                                             for row in np.asarray(cg_map.force_coefficients)]
    return description


def map_from_json(description):
    """The CG map :func:`map_to_json` wrote (an explicit force map as stored, any other derived again as
    the core derives it)."""
    if description["type"] == "SliceMap":
        return SliceMap(description["num_atoms"], description["atoms"])
    if description["type"] == "LinearMap":
        def dense(rows):
            matrix = np.zeros((description["num_beads"], description["num_atoms"]))
            for bead, row in enumerate(rows):
                for atom, value in row:
                    matrix[bead, atom] = value
            return matrix
        if "force_coefficients" in description:
            return LinearMap(dense(description["coefficients"]), dense(description["force_coefficients"]))
        return LinearMap(dense(description["coefficients"]))
    raise ValueError("cg_map: unknown map type %r in the manifest" % (description["type"],))


@dataclass
class CGDataset:
    """The arrays of a CG dataset directory, concatenated over its chunks, with its manifest.

    positions (n, beads, 3) nm and forces (n, beads, 3) kJ/mol/nm: CG positions and the *unbiased*
    mapped forces; energy (n,): the unbiased potential energy; bias_energy (n,): the bias at the frame
    (0 without bias); cvs (n, K) with ``cv_names``; step (n,): the MD step (or trajectory frame index);
    atom_positions (n, atoms, 3) when the dataset saved them; skipped_steps: the steps (frames) left out
    because a force, energy or CV was not finite; bias_grid: the metadynamics bias (kJ/mol) at the end
    of the last chunk, axis k over CV k (grid points from the manifest's settings.metadynamics), or None.
    """
    positions: np.ndarray
    forces: np.ndarray
    energy: np.ndarray
    bias_energy: np.ndarray
    cvs: np.ndarray
    step: np.ndarray
    cv_names: list
    manifest: dict
    skipped_steps: np.ndarray
    atom_positions: np.ndarray = None
    bias_grid: np.ndarray = None
    chunks: list = field(default_factory=list)

    def __len__(self):
        return self.positions.shape[0]

    @property
    def cg_map(self):
        """The CG map the dataset was made with (a SliceMap or LinearMap)."""
        return map_from_json(self.manifest["cg_map"])

    @property
    def temperature(self):
        return self.manifest["temperature"]

    def cv(self, name):
        """The values of one CV, by name."""
        if name not in self.cv_names:
            raise KeyError("name: no CV %r in this dataset (CVs: %s)" % (name, ", ".join(self.cv_names) or "none"))
        return self.cvs[:, self.cv_names.index(name)]


def load_dataset(path):
    """Read a dataset directory written by :func:`generate_dataset` or :func:`dataset_from_trajectory`.

    Returns a :class:`CGDataset`. Checks that the chunks follow each other (every attempted frame
    in exactly one chunk, steps increasing) and fit the manifest (beads, CVs); a ValueError names the
    file otherwise.
    """
    path = os.fspath(path)
    manifest = read_manifest(path)
    count = complete_chunks(path)
    beads, cv_names = manifest["cg_map"]["num_beads"], list(manifest["cv_names"])
    names = list(ARRAYS) + (["atom_positions"] if manifest["settings"].get("save_atom_positions") else [])
    parts = {name: [] for name in names + ["skipped_steps"]}
    summaries, expected_start, last_step = [], 0, None
    for index in range(count):
        file = os.path.join(path, chunk_name(index))
        with np.load(file) as data:
            missing = [name for name in names + ["skipped_steps", "frame_start", "frame_stop"] if name not in data]
            if missing:
                raise ValueError("path: %s lacks the arrays %s" % (file, ", ".join(missing)))
            chunk = {name: data[name] for name in names + ["skipped_steps"]}
            start, stop = int(data["frame_start"]), int(data["frame_stop"])
        n = chunk["step"].shape[0]
        if start != expected_start:
            raise ValueError("path: %s starts at frame %d but the chunks before it end at %d"
                             % (file, start, expected_start))
        if n + chunk["skipped_steps"].shape[0] != stop - start:
            raise ValueError("path: %s holds %d frames and %d skipped ones, but covers frames [%d, %d)"
                             % (file, n, chunk["skipped_steps"].shape[0], start, stop))
        if chunk["positions"].shape[1:] != (beads, 3) or chunk["forces"].shape[1:] != (beads, 3):
            raise ValueError("path: %s has positions %s and forces %s, the manifest's map has %d beads"
                             % (file, chunk["positions"].shape, chunk["forces"].shape, beads))
        if chunk["cvs"].shape[1:] != (len(cv_names),):
            raise ValueError("path: %s has %d CV columns, the manifest names %d"
                             % (file, chunk["cvs"].shape[1], len(cv_names)))
        steps = chunk["step"]
        if n and (np.any(np.diff(steps) <= 0) or (last_step is not None and steps[0] <= last_step)):
            raise ValueError("path: %s: steps do not increase from the previous frames" % file)
        if n:
            last_step = steps[-1]
        expected_start = stop
        summaries.append({"file": chunk_name(index), "frame_start": start, "frame_stop": stop, "frames": n,
                          "skipped": int(chunk["skipped_steps"].shape[0])})
        for name in parts:
            parts[name].append(chunk[name])

    def joined(name, shape_tail, dtype=float):
        return np.concatenate(parts[name]) if parts[name] else np.zeros((0,) + shape_tail, dtype=dtype)

    bias_grid = None
    states = state_indices(path)
    if count and (count - 1) in states:
        with np.load(os.path.join(path, state_name(count - 1))) as state:
            if "bias_grid" in state and state["bias_grid"].size:
                bias_grid = np.ascontiguousarray(state["bias_grid"].T)  # OpenMM stores the last CV first
    atoms = manifest["num_particles"]
    return CGDataset(positions=joined("positions", (beads, 3)), forces=joined("forces", (beads, 3)),
                     energy=joined("energy", ()), bias_energy=joined("bias_energy", ()),
                     cvs=joined("cvs", (len(cv_names),)), step=joined("step", (), np.int64), cv_names=cv_names,
                     manifest=manifest, skipped_steps=joined("skipped_steps", (), np.int64),
                     atom_positions=joined("atom_positions", (atoms, 3)) if "atom_positions" in parts else None,
                     bias_grid=bias_grid, chunks=summaries)
