"""CG datasets from OpenMM with *unbiased* forces: Langevin MD on any System, optionally biased by
well-tempered metadynamics (``openmm.app.Metadynamics``) or by bias forces of the caller, or existing
DCD trajectories re-priced through the System's force groups.

Every recorded frame holds the CG positions, the mapped forces of the System's own force groups
(the bias lives in force groups of its own and is left out: the equivalent of rerunning the frames
without the bias), the unbiased potential energy, the bias energy and the CV values. Frames go to
disk chunk by chunk in the format of :mod:`openmmcgflow.cgbg.storage`; a run started on an existing
dataset directory continues after its last complete chunk.
"""
import copy
import hashlib
import json
import math
import os
import re
import shutil
import tempfile
import time
import warnings
from dataclasses import dataclass

import numpy as np
import openmm
from openmm import app, unit
from tqdm import tqdm

from .._core import LinearMap
from ..systems import KB
from . import storage
from .dcd import DCDReader
from .maps import phi_psi_cvs

_KJ = unit.kilojoule_per_mole
_FORCE_UNIT = unit.kilojoule_per_mole / unit.nanometer
_ALL_GROUPS = (1 << 32) - 1
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


# ---- settings ----------------------------------------------------------------------------------

@dataclass(frozen=True)
class MetadynamicsSettings:
    """Well-tempered metadynamics, run by ``openmm.app.Metadynamics``.

    variables: {name: ``openmm.app.BiasVariable``}, 1 to 3 CVs (the BiasVariable's force is the CV,
    its ``biasWidth`` the Gaussian width, its range and ``gridWidth`` the bias grid); bias_factor:
    gamma > 1 (the CVs are sampled as at gamma T); height: the initial hill height in kJ/mol;
    hill_interval_ps: time between hills, a whole number of timesteps.
    """
    variables: dict
    bias_factor: float
    height: float = 1.2
    hill_interval_ps: float = 1.0

    def hill_frequency(self, timestep):
        """Steps between hills at ``timestep`` (ps); checks every setting (errors name the field)."""
        if not isinstance(self.variables, dict) or not 1 <= len(self.variables) <= 3:
            raise ValueError("metadynamics.variables: a dict of 1 to 3 {name: BiasVariable}, got %r"
                             % (self.variables,))
        for name, variable in self.variables.items():
            if not isinstance(name, str) or not _NAME.fullmatch(name):
                raise ValueError("metadynamics.variables: name %r is not an identifier" % (name,))
            if not isinstance(variable, app.BiasVariable):
                raise TypeError("metadynamics.variables[%r]: must be an openmm.app.BiasVariable, got %r"
                                % (name, variable))
        if not (_finite(self.bias_factor) and self.bias_factor > 1.0):
            raise ValueError("metadynamics.bias_factor: must be > 1 (well-tempered), got %r" % (self.bias_factor,))
        if not (_finite(self.height) and self.height > 0.0):
            raise ValueError("metadynamics.height: must be > 0 kJ/mol, got %r" % (self.height,))
        if not (_finite(self.hill_interval_ps) and self.hill_interval_ps > 0.0):
            raise ValueError("metadynamics.hill_interval_ps: must be > 0, got %r" % (self.hill_interval_ps,))
        steps = round(self.hill_interval_ps / timestep)
        if steps < 1 or abs(steps * timestep - self.hill_interval_ps) > 1e-9 * max(1.0, self.hill_interval_ps):
            raise ValueError("metadynamics.hill_interval_ps: %r ps is not a whole number of timesteps (%r ps)"
                             % (self.hill_interval_ps, timestep))
        return int(steps)

    def describe(self, timestep):
        """The settings as JSON (the manifest's ``settings.metadynamics``)."""
        return {"bias_factor": float(self.bias_factor), "height_kj_mol": float(self.height),
                "hill_interval_ps": float(self.hill_interval_ps), "hill_frequency_steps": self.hill_frequency(timestep),
                "variables": {name: {"min": float(v.minValue), "max": float(v.maxValue), "width": float(v.biasWidth),
                                     "periodic": bool(v.periodic), "grid_width": int(v.gridWidth),
                                     "force": _force_description(v.force)}
                              for name, v in self.variables.items()},
                "grid_axes": "bias_grid[i_0, i_1, ...] on CV k's grid min + i_k (max - min) / (grid_width - 1)"}


def alanine_metadynamics(topology, bias_factor, *, height=1.2, width=0.35, hill_interval_ps=1.0, grid_width=None):
    """The paper's WT-MetaD of alanine dipeptide: phi and psi (periodic on [-pi, pi]), hills of ``height``
    kJ/mol and ``width`` rad every ``hill_interval_ps``; ``bias_factor``: 1.5 for flow data, 9 for
    force-matching data."""
    cvs = phi_psi_cvs(topology)
    variables = {name: app.BiasVariable(force, -math.pi, math.pi, width, True, grid_width)
                 for name, force in cvs.items()}
    return MetadynamicsSettings(variables, bias_factor, height, hill_interval_ps)


# ---- argument checks ---------------------------------------------------------------------------

def _finite(value):
    try:
        return math.isfinite(float(value))
    except (TypeError, ValueError):
        return False


def _number(value, in_unit, argument, minimum=0.0, strict=True):
    if unit.is_quantity(value):
        value = value.value_in_unit(in_unit)
    if isinstance(value, bool) or not _finite(value) or (value <= minimum if strict else value < minimum):
        raise ValueError("%s: must be a finite number %s %g, got %r"
                         % (argument, ">" if strict else ">=", minimum, value))
    return float(value)


def _integer(value, argument, minimum=1):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError("%s: must be an integer >= %d, got %r" % (argument, minimum, value))
    return int(value)


def _check_system(system):
    if not isinstance(system, openmm.System):
        raise TypeError("system: must be an openmm.System, got %r" % (system,))
    if system.getNumParticles() == 0:
        raise ValueError("system: has no particles")


def _check_map(cg_map, num_particles):
    if not isinstance(cg_map, LinearMap):
        raise TypeError("cg_map: must be a SliceMap or LinearMap (Cartesian beads with a force map), got %r; "
                        "dihedral CVs such as phi/psi go in cvs" % (type(cg_map).__name__,))
    if cg_map.num_atoms != num_particles:
        raise ValueError("cg_map: maps %d atoms but the system has %d particles" % (cg_map.num_atoms, num_particles))


def _check_cvs(cvs, argument="cvs"):
    if cvs is None:
        return {}
    if not isinstance(cvs, dict):
        raise TypeError("%s: must be a dict {name: openmm.Force whose energy is the CV}, got %r" % (argument, cvs))
    for name, force in cvs.items():
        if not isinstance(name, str) or not _NAME.fullmatch(name):
            raise ValueError("%s: name %r is not an identifier" % (argument, name))
        if not isinstance(force, openmm.Force):
            raise TypeError("%s[%r]: must be an openmm.Force, got %r" % (argument, name, force))
    return dict(cvs)


def _check_bead_names(bead_names, cg_map):
    if bead_names is None:
        return None
    names = [str(b) for b in bead_names]
    if len(names) != cg_map.num_beads:
        raise ValueError("bead_names: %d names for %d beads" % (len(names), cg_map.num_beads))
    return names


def _platform(platform, platform_properties):
    if platform is None:
        if platform_properties:
            raise ValueError("platform_properties: given without a platform")
        return None, None
    try:
        return openmm.Platform.getPlatformByName(platform), (dict(platform_properties) if platform_properties else None)
    except Exception as error:  # OpenMMException
        raise ValueError("platform: %s" % (error,)) from None


def _sha256(text):
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _force_description(force):
    return {"class": type(force).__name__, "group": int(force.getForceGroup()),
            "sha256": _sha256(openmm.XmlSerializer.serialize(force))}


def _mask(groups):
    return sum(1 << g for g in groups)


# ---- the System with its bias and CV readers ---------------------------------------------------

class _Work:
    """A copy of the System with the bias forces of the caller and the CV reader added; the force
    groups that are recorded (the System's own), those of the bias, and the CV reader's."""

    def __init__(self, system, bias_forces=(), exclude_groups=None):
        self.system = copy.deepcopy(system)
        own = self.system.getNumForces()
        if own == 0:
            raise ValueError("system: has no forces")
        bias_indices = []
        if isinstance(bias_forces, openmm.Force):
            bias_forces = [bias_forces]
        for k, bias in enumerate(bias_forces):
            if isinstance(bias, (int, np.integer)) and not isinstance(bias, bool):
                if not 0 <= bias < own:
                    raise ValueError("bias_forces[%d]: force index %d is out of range; the system has %d forces"
                                     % (k, bias, own))
                bias_indices.append(int(bias))
            elif isinstance(bias, openmm.Force):
                self.system.addForce(copy.deepcopy(bias))
                bias_indices.append(self.system.getNumForces() - 1)
            else:
                raise TypeError("bias_forces[%d]: must be an openmm.Force or the index of one of the system's "
                                "forces, got %r" % (k, bias))
        groups = {i: self.system.getForce(i).getForceGroup() for i in range(self.system.getNumForces())}
        own_groups = {groups[i] for i in range(own) if i not in bias_indices}
        for k, i in enumerate(bias_indices):
            if groups[i] in own_groups:
                sharing = sorted({type(self.system.getForce(j)).__name__ for j in range(own)
                                  if j not in bias_indices and groups[j] == groups[i]})
                raise ValueError("bias_forces[%d]: the %s is in force group %d, which the system's own forces use "
                                 "(%s); the recorded forces would include the bias. Put the bias in a force group "
                                 "of its own (force.setForceGroup(g), g unused by the system)"
                                 % (k, type(self.system.getForce(i)).__name__, groups[i], ", ".join(sharing)))
        if exclude_groups is not None:
            excluded = set()
            for k, g in enumerate(exclude_groups):
                if isinstance(g, bool) or not isinstance(g, (int, np.integer)) or not 0 <= g < 32:
                    raise ValueError("exclude_groups[%d]: must be a force group 0..31, got %r" % (k, g))
                if g not in own_groups:
                    raise ValueError("exclude_groups[%d]: no force of the system is in group %d (groups in use: %s)"
                                     % (k, g, sorted(own_groups)))
                excluded.add(int(g))
            own_groups -= excluded
            if not own_groups:
                raise ValueError("exclude_groups: excludes every force group of the system; nothing would be recorded")
            self.bias_groups = excluded
        else:
            self.bias_groups = {groups[i] for i in bias_indices}
        self.recorded_groups = own_groups
        self.bias_descriptions = [_force_description(self.system.getForce(i)) for i in bias_indices]
        self.cv_force, self.cv_group, self.cv_names = None, None, []

    def free_group(self):
        used = {self.system.getForce(i).getForceGroup() for i in range(self.system.getNumForces())}
        free = set(range(32)) - used
        if not free:
            raise ValueError("system: uses all 32 force groups; one must be free for the bias or the CV reader")
        return max(free)

    def add_cv_reader(self, cvs):
        """A CustomCVForce with zero energy holding the CVs, in a free group that is neither integrated
        nor recorded; its getCollectiveVariableValues reads them."""
        if not cvs:
            return
        force = openmm.CustomCVForce("0")
        for name, cv in cvs.items():
            force.addCollectiveVariable(name, copy.deepcopy(cv))
        force.setForceGroup(self.free_group())
        self.system.addForce(force)
        self.cv_force, self.cv_group, self.cv_names = force, force.getForceGroup(), list(cvs)


class _Recorder:
    """Reads one frame from a Context: mapped unbiased forces, energies, CVs; collects a chunk."""

    def __init__(self, cg_map, recorded_groups, bias_groups, cv_readers, save_atom_positions):
        self.map, self.record_mask, self.bias_mask = cg_map, _mask(recorded_groups), _mask(bias_groups)
        self.cv_readers, self.save_atoms = cv_readers, save_atom_positions
        self.reset()

    def reset(self):
        self.rows = {name: [] for name in storage.ARRAYS}
        self.rows["atom_positions"] = []
        self.skipped = []

    def record(self, context, step, positions_checked=True):
        """Append the frame at ``step`` (or count it skipped when a force, energy or CV is not finite).
        Returns False when skipped. Non-finite positions raise FloatingPointError."""
        state = context.getState(getPositions=True, getForces=True, getEnergy=True, groups=self.record_mask)
        x = state.getPositions(asNumpy=True).value_in_unit(unit.nanometer)
        if positions_checked and not np.all(np.isfinite(x)):
            raise FloatingPointError("non-finite positions at step %d" % step)
        f = state.getForces(asNumpy=True).value_in_unit(_FORCE_UNIT)
        energy = state.getPotentialEnergy().value_in_unit(_KJ)
        bias = (context.getState(getEnergy=True, groups=self.bias_mask).getPotentialEnergy().value_in_unit(_KJ)
                if self.bias_mask else 0.0)
        values = [v for read in self.cv_readers for v in read()]
        if not (np.all(np.isfinite(f)) and math.isfinite(energy) and math.isfinite(bias)
                and all(math.isfinite(v) for v in values)):
            self.skipped.append(step)
            return False
        rows = self.rows
        rows["positions"].append(self.map.map_positions(x[None])[0])
        rows["forces"].append(self.map.map_forces(f[None])[0])
        rows["energy"].append(energy)
        rows["bias_energy"].append(bias)
        rows["cvs"].append(values)
        rows["step"].append(step)
        if self.save_atoms:
            rows["atom_positions"].append(np.array(x))
        return True

    def arrays(self, num_beads, num_cvs, num_atoms, frame_start, frame_stop):
        rows, n = self.rows, len(self.rows["step"])
        out = {"positions": np.array(rows["positions"], dtype=float).reshape(n, num_beads, 3),
               "forces": np.array(rows["forces"], dtype=float).reshape(n, num_beads, 3),
               "energy": np.array(rows["energy"], dtype=float).reshape(n),
               "bias_energy": np.array(rows["bias_energy"], dtype=float).reshape(n),
               "cvs": np.array(rows["cvs"], dtype=float).reshape(n, num_cvs),
               "step": np.array(rows["step"], dtype=np.int64).reshape(n),
               "skipped_steps": np.array(self.skipped, dtype=np.int64),
               "frame_start": np.int64(frame_start), "frame_stop": np.int64(frame_stop)}
        if self.save_atoms:
            out["atom_positions"] = np.array(rows["atom_positions"], dtype=float).reshape(n, num_atoms, 3)
        return out


# ---- the dataset directory ---------------------------------------------------------------------

def _open_directory(path, header):
    """Create the dataset directory, or check that an existing one was made with the same header.
    Returns (manifest, number of complete chunks)."""
    if os.path.exists(path) and not os.path.isdir(path):
        raise ValueError("path: %s exists and is not a directory" % path)
    os.makedirs(path, exist_ok=True)
    if os.path.exists(os.path.join(path, storage.MANIFEST)):
        manifest = storage.read_manifest(path)
        _check_same(manifest, header, path)
    else:
        others = [f for f in os.listdir(path) if not f.startswith(storage.TMP_PREFIX)]
        if others:
            raise ValueError("path: %s is not empty and holds no %s; refusing to write a dataset into it (%s)"
                             % (path, storage.MANIFEST, ", ".join(sorted(others)[:5])))
        manifest = dict(header, chunks=[], counts={"chunks": 0, "frames": 0, "frames_attempted": 0,
                                                   "skipped_nonfinite": 0}, runs=[], complete=False)
        storage.atomic_write_json(os.path.join(path, storage.MANIFEST), manifest)
    storage.remove_temporary_files(path)
    count = storage.complete_chunks(path)
    manifest["chunks"] = [storage.chunk_summary(path, i) for i in range(count)]
    if count:
        _write_manifest(path, manifest)  # counts may lag one chunk behind after a kill
    return manifest, count


def _check_same(manifest, header, path):
    if manifest.get("source") != header["source"]:
        raise ValueError("path: %s holds a dataset from %r, not from %r"
                         % (path, manifest.get("source"), header["source"]))
    if manifest["num_particles"] != header["num_particles"] or manifest["system_sha256"] != header["system_sha256"]:
        raise ValueError("system: differs from the System the dataset at %s was made with (%d particles, sha256 %s)"
                         % (path, manifest["num_particles"], manifest["system_sha256"][:12]))
    if manifest["cg_map"] != header["cg_map"]:
        raise ValueError("cg_map: differs from the map of the dataset at %s (%s with %d beads)"
                         % (path, manifest["cg_map"]["type"], manifest["cg_map"]["num_beads"]))
    if manifest["temperature"] != header["temperature"]:
        raise ValueError("temperature: %r K here, %r K in the dataset at %s"
                         % (header["temperature"], manifest["temperature"], path))
    old, new = manifest["settings"], _json_roundtrip(header["settings"])
    for key in sorted(set(old) | set(new)):
        if old.get(key) != new.get(key):
            raise ValueError("%s: differs from the dataset at %s (%r there, %r here); continue it with the same "
                             "arguments or use a new directory" % (key, path, old.get(key), new.get(key)))


def _json_roundtrip(value):
    return json.loads(json.dumps(value))


def _write_manifest(path, manifest):
    chunks = manifest["chunks"]
    frames = sum(c["frames"] for c in chunks)
    skipped = sum(c["skipped"] for c in chunks)
    manifest["counts"] = {"chunks": len(chunks), "frames": frames, "skipped_nonfinite": skipped,
                          "frames_attempted": chunks[-1]["frame_stop"] if chunks else 0}
    storage.atomic_write_json(os.path.join(path, storage.MANIFEST), manifest)


def _report_skipped(skipped, where):
    if skipped:
        warnings.warn("%d frames had non-finite forces, energies or CVs and were skipped (%s %s%s); their steps "
                      "are in the chunks' skipped_steps" % (len(skipped), where, ", ".join(map(str, skipped[:10])),
                                                            ", ..." if len(skipped) > 10 else ""), stacklevel=3)


# ---- MD ----------------------------------------------------------------------------------------

def generate_dataset(system, positions, cg_map, path, *, temperature, num_frames, record_every=40,
                     chunk_frames=1000, timestep=0.0005, friction=1.0, seed=1, metadynamics=None, cvs=None,
                     bias_forces=(), equilibration_steps=0, platform=None, platform_properties=None,
                     save_atom_positions=False, bead_names=None, max_chunks=None, progress=True):
    """Run Langevin MD of ``system`` and record a CG dataset into the directory ``path``.

    LangevinMiddleIntegrator at ``temperature`` (K) with ``timestep`` (ps, default 0.5 fs as the paper)
    and ``friction`` (1/ps), seeded by ``seed`` (>= 1: velocities and the integrator's random stream).
    ``positions`` (N, 3) nm start the run (the box is the System's default); ``equilibration_steps`` run
    first and are not recorded.
    Every ``record_every`` steps a frame is recorded, ``num_frames`` in all, ``chunk_frames`` per chunk file.

    metadynamics: a :class:`MetadynamicsSettings` (e.g. :func:`alanine_metadynamics`) or None; its bias
    lives in a force group of its own. bias_forces: further bias forces (openmm.Force objects to add,
    or indices of forces of ``system``), each in a force group that none of the system's own forces
    uses (refused otherwise). cvs: {name: Force whose energy is the CV} recorded each frame beside the
    metadynamics CVs. The recorded forces are those of the system's own force groups only.

    cg_map: a SliceMap or LinearMap over the system's particles, applied to every frame (positions by
    the map, forces by its force map). save_atom_positions: also store the full positions.
    platform / platform_properties: the OpenMM platform (None: OpenMM's choice).

    A directory that already holds a dataset made with the same arguments is continued after its last
    complete chunk (``num_frames`` may grow); ``max_chunks`` stops after that many chunks in this call.
    Returns the manifest (a dict).
    """
    _check_system(system)
    num_particles = system.getNumParticles()
    _check_map(cg_map, num_particles)
    if unit.is_quantity(positions):
        positions = positions.value_in_unit(unit.nanometer)
    positions = np.array(positions, dtype=float)
    if positions.shape != (num_particles, 3) or not np.all(np.isfinite(positions)):
        raise ValueError("positions: must be finite with shape (%d, 3) nm, got shape %s"
                         % (num_particles, positions.shape))
    temperature = _number(temperature, unit.kelvin, "temperature")
    timestep = _number(timestep, unit.picosecond, "timestep")
    friction = _number(friction, unit.picosecond ** -1, "friction")
    num_frames = _integer(num_frames, "num_frames")
    record_every = _integer(record_every, "record_every")
    chunk_frames = _integer(chunk_frames, "chunk_frames")
    equilibration_steps = _integer(equilibration_steps, "equilibration_steps", 0)
    seed = _integer(seed, "seed")  # OpenMM takes 0 to mean "pick a random seed"
    if seed >= 2 ** 31:
        raise ValueError("seed: must be < 2**31, got %d" % seed)
    if max_chunks is not None:
        max_chunks = _integer(max_chunks, "max_chunks")
    cvs = _check_cvs(cvs)
    if metadynamics is not None:
        if not isinstance(metadynamics, MetadynamicsSettings):
            raise TypeError("metadynamics: must be a MetadynamicsSettings or None, got %r" % (metadynamics,))
        frequency = metadynamics.hill_frequency(timestep)
        clash = sorted(set(metadynamics.variables) & set(cvs))
        if clash:
            raise ValueError("cvs: %s already named by metadynamics.variables" % ", ".join(clash))
    bead_names = _check_bead_names(bead_names, cg_map)
    platform_object, properties = _platform(platform, platform_properties)
    path = os.fspath(path)

    work = _Work(system, bias_forces)
    settings = {"timestep": timestep, "friction": friction, "record_every": record_every,
                "chunk_frames": chunk_frames, "seed": seed, "equilibration_steps": equilibration_steps,
                "metadynamics": metadynamics.describe(timestep) if metadynamics is not None else None,
                "cvs": {name: _force_description(f) for name, f in cvs.items()},
                "bias_forces": work.bias_descriptions, "save_atom_positions": bool(save_atom_positions),
                "bead_names": bead_names}
    cv_names = (list(metadynamics.variables) if metadynamics is not None else []) + list(cvs)
    header = {"format": storage.FORMAT, "format_version": storage.FORMAT_VERSION, "source": "md",
              "num_particles": num_particles, "system_sha256": _sha256(openmm.XmlSerializer.serialize(system)),
              "cg_map": storage.map_to_json(cg_map), "temperature": temperature, "kT_kj_mol": temperature * KB,
              "cv_names": cv_names, "settings": settings, "arrays": _layout(save_atom_positions)}
    manifest, count = _open_directory(path, header)
    attempted = manifest["chunks"][-1]["frame_stop"] if count else 0
    if attempted >= num_frames:  # nothing to add
        manifest.update(target_frames=num_frames, complete=True)
        return manifest
    resume_state = _resume_state(path, count)

    # The bias: metadynamics (restoring the bias grid of the last chunk), then the CV reader.
    meta, meta_index = None, None
    if metadynamics is not None:
        meta, meta_index = _metadynamics(work, metadynamics, temperature, frequency, resume_state, path,
                                         num_frames * record_every)
        work.bias_groups.add(work.system.getForce(meta_index).getForceGroup())
    work.add_cv_reader(cvs)
    settings_groups = {"recorded_groups": sorted(work.recorded_groups), "bias_groups": sorted(work.bias_groups)}

    def make_simulation(random_seed):
        integrator = openmm.LangevinMiddleIntegrator(temperature * unit.kelvin, friction / unit.picosecond,
                                                     timestep * unit.picosecond)
        integrator.setRandomNumberSeed(random_seed)
        if work.cv_group is not None:
            integrator.setIntegrationForceGroups(_ALL_GROUPS & ~(1 << work.cv_group))
        return app.Simulation(app.Topology(), work.system, integrator, platform_object, properties)

    run = {"started": time.strftime("%Y-%m-%dT%H:%M:%S"), "start_chunk": count, "chunks": 0, "frames": 0}
    simulation = make_simulation(seed)
    context = simulation.context
    if resume_state is None:
        context.setPositions(positions)
        context.setVelocitiesToTemperature(temperature * unit.kelvin, seed)
        if equilibration_steps:
            simulation.integrator.step(equilibration_steps)
        context.setStepCount(0)
        context.setTime(0.0)
        run["continuation"] = "start"
    else:
        simulation, how = _restore(simulation, make_simulation, resume_state, seed, count)
        context = simulation.context
        run["continuation"] = how
        if context.getStepCount() != attempted * record_every:
            raise RuntimeError("path: state_%05d.npz is at step %d, but its chunks end at step %d"
                               % (count - 1, context.getStepCount(), attempted * record_every))
    run["platform"] = context.getPlatform().getName()
    manifest.setdefault("runs", []).append(run)
    manifest.update(settings_groups, target_frames=num_frames)

    readers = []
    if meta is not None:
        readers.append(lambda: meta.getCollectiveVariables(simulation))
    if work.cv_force is not None:
        readers.append(lambda: work.cv_force.getCollectiveVariableValues(context))
    recorder = _Recorder(cg_map, work.recorded_groups, work.bias_groups, readers, save_atom_positions)
    advance = (lambda n: meta.step(simulation, n)) if meta is not None else simulation.integrator.step

    bar = tqdm(total=num_frames, initial=min(attempted, num_frames), unit="frame", disable=not progress,
               desc="CG dataset (MD%s)" % (", metadynamics" if meta is not None else ""))
    started, skipped_here, written = time.perf_counter(), [], 0
    try:
        while attempted < num_frames and (max_chunks is None or written < max_chunks):
            stop = min(attempted + chunk_frames, num_frames)
            recorder.reset()
            for _ in range(attempted, stop):
                try:
                    advance(record_every)
                    recorder.record(context, context.getStepCount())
                except (FloatingPointError, openmm.OpenMMException) as error:
                    raise RuntimeError("the dynamics diverged near step %d (%s); the dataset at %s keeps its %d "
                                       "complete chunks (a smaller timestep may help)"
                                       % (context.getStepCount(), error, path, count)) from None
                bar.update(1)
            arrays = recorder.arrays(cg_map.num_beads, len(cv_names), num_particles, attempted, stop)
            state = _state(context, work.system, meta_index)
            storage.atomic_save_npz(os.path.join(path, storage.state_name(count)), state)
            storage.atomic_save_npz(os.path.join(path, storage.chunk_name(count)), arrays)
            if count:
                _remove(os.path.join(path, storage.state_name(count - 1)))
            skipped_here += recorder.skipped
            manifest["chunks"].append({"file": storage.chunk_name(count), "frame_start": attempted,
                                       "frame_stop": stop, "frames": int(arrays["step"].shape[0]),
                                       "skipped": len(recorder.skipped)})
            run["frames"] += stop - attempted
            attempted, count, written = stop, count + 1, written + 1
            wall = time.perf_counter() - started
            run.update(chunks=written, wall_s=round(wall, 3))
            run["ns_per_day"] = round(run["frames"] * record_every * timestep * 1e-3 / wall * 86400.0, 3)
            manifest["complete"] = attempted >= num_frames
            manifest["md_ns"] = attempted * record_every * timestep * 1e-3
            _write_manifest(path, manifest)
            if skipped_here:
                bar.set_postfix(skipped=len(skipped_here))
    finally:
        bar.close()
    manifest["complete"] = attempted >= num_frames
    _report_skipped(skipped_here, "steps")
    return manifest


def _layout(save_atom_positions):
    arrays = dict(storage.ARRAYS, **(storage.OPTIONAL_ARRAYS if save_atom_positions else {}))
    return {name: {"shape": shape, "unit": u} for name, (shape, u) in arrays.items()}


def _remove(file):
    if os.path.exists(file):
        os.unlink(file)


def _resume_state(path, count):
    """The state after the last complete chunk (None for a fresh start); removes stale state files."""
    states = storage.state_indices(path)
    for index in states:
        if index != count - 1:
            _remove(os.path.join(path, storage.state_name(index)))
    if count == 0:
        return None
    if count - 1 not in states:
        raise ValueError("path: %s has %d chunks but no %s to continue from (the chunks are intact; load_dataset "
                         "reads them)" % (path, count, storage.state_name(count - 1)))
    with np.load(os.path.join(path, storage.state_name(count - 1))) as data:
        return {name: data[name] for name in data.files}


def _metadynamics(work, settings, temperature, frequency, resume_state, path, last_step):
    """app.Metadynamics on copies of the CV forces; a resumed run loads the bias grid of its state
    through Metadynamics' own biasDir mechanism (biases found there are added at construction)."""
    variables = [app.BiasVariable(copy.deepcopy(v.force), v.minValue, v.maxValue, v.biasWidth, v.periodic,
                                  v.gridWidth) for v in settings.variables.values()]
    grid = None if resume_state is None else resume_state["bias_grid"]
    options, seed_dir = {}, None
    if grid is not None and grid.size:
        seed_dir = tempfile.mkdtemp(prefix=storage.TMP_PREFIX + "metadynamics-", dir=path)
        np.save(os.path.join(seed_dir, "bias_0_0.npy"), grid)
        # The bias is saved in our state files, so Metadynamics need not write it: a save interval beyond
        # the last step of this call means it never does (it requires one with biasDir).
        options = {"biasDir": seed_dir, "saveFrequency": frequency * (last_step // frequency + 2)}
    try:
        meta = app.Metadynamics(work.system, variables, temperature * unit.kelvin, float(settings.bias_factor),
                                float(settings.height) * _KJ, frequency, **options)
    finally:
        if seed_dir is not None:
            shutil.rmtree(seed_dir, ignore_errors=True)
    index = work.system.getNumForces() - 1
    if grid is not None and grid.size and not np.array_equal(_bias_grid(work.system, index).ravel(), grid.ravel()):
        raise RuntimeError("path: the metadynamics bias of %s did not load into openmm.app.Metadynamics" % path)
    return meta, index


def _bias_grid(system, index):
    """The current metadynamics bias, read from its tabulated function (the grid OpenMM evaluates)."""
    function = system.getForce(index).getTabulatedFunction(0)
    parameters = function.getFunctionParameters()
    if isinstance(function, openmm.Continuous1DFunction):
        values, shape = parameters[0], (len(parameters[0]),)
    elif isinstance(function, openmm.Continuous2DFunction):
        values, shape = parameters[2], (parameters[1], parameters[0])
    else:
        values, shape = parameters[3], (parameters[2], parameters[1], parameters[0])
    return np.array(values, dtype=float).reshape(shape)  # OpenMM's order: the last CV first


def _state(context, system, meta_index):
    state = context.getState(getPositions=True, getVelocities=True)
    return {"checkpoint": np.frombuffer(context.createCheckpoint(), dtype=np.uint8),
            "platform": np.array(context.getPlatform().getName()),
            "positions": state.getPositions(asNumpy=True).value_in_unit(unit.nanometer),
            "velocities": state.getVelocities(asNumpy=True).value_in_unit(unit.nanometer / unit.picosecond),
            "box": state.getPeriodicBoxVectors(asNumpy=True).value_in_unit(unit.nanometer),
            "step": np.int64(context.getStepCount()),
            "time": np.float64(state.getTime().value_in_unit(unit.picosecond)),
            "bias_grid": _bias_grid(system, meta_index) if meta_index is not None else np.zeros(0)}


def _derived_seed(seed, chunk):
    return 1 + (seed * 1_000_003 + chunk * 7_919) % (2 ** 31 - 2)


def _restore(simulation, make_simulation, state, seed, count):
    """Continue from a state: exactly (OpenMM checkpoint: positions, velocities, step and the integrator's
    random stream) on the platform that wrote it, else from positions and velocities with a new random
    stream seeded by (seed, chunk)."""
    context = simulation.context
    if str(state["platform"]) == context.getPlatform().getName():
        try:
            context.loadCheckpoint(state["checkpoint"].tobytes())
            return simulation, "exact"
        except Exception:  # a checkpoint of another build or thread count: fall back below
            pass
    simulation = make_simulation(_derived_seed(seed, count))
    context = simulation.context
    context.setPeriodicBoxVectors(*state["box"])
    context.setPositions(state["positions"])
    context.setVelocities(state["velocities"])
    context.setStepCount(int(state["step"]))
    context.setTime(float(state["time"]))
    return simulation, "new random stream (seed %d)" % _derived_seed(seed, count)


# ---- existing trajectories ---------------------------------------------------------------------

def dataset_from_trajectory(system, topology, dcd_path, cg_map, path, *, temperature, exclude_groups=(), cvs=None,
                            start=0, stride=1, chunk_frames=1000, platform=None, platform_properties=None,
                            save_atom_positions=False, bead_names=None, max_chunks=None, progress=True):
    """A CG dataset from an existing DCD trajectory of ``system``, re-priced frame by frame.

    The forces recorded are those of the System's force groups minus ``exclude_groups`` (e.g. the
    group of a bias the trajectory was run with; its energy is recorded as the bias energy), mapped by
    ``cg_map``. ``topology`` (an ``openmm.app.Topology``) must have the System's particles; frames
    ``start, start + stride, ...`` of ``dcd_path`` are used (positions in float32 as DCD stores them;
    for periodic Systems the box of each frame, or the System's default box if the file has none).
    ``temperature`` (K) is the temperature the trajectory samples (stored for the later stages).
    Frames with non-finite positions, forces or energies are skipped and counted. The directory format, ``cvs``, ``chunk_frames``, ``max_chunks``
    and resuming are as for :func:`generate_dataset`; ``step`` holds the frame index in the file.
    Returns the manifest.
    """
    _check_system(system)
    num_particles = system.getNumParticles()
    if topology is None or not hasattr(topology, "getNumAtoms"):
        raise TypeError("topology: must be an openmm.app.Topology, got %r" % (topology,))
    if topology.getNumAtoms() != num_particles:
        raise ValueError("topology: has %d atoms but the system has %d particles"
                         % (topology.getNumAtoms(), num_particles))
    _check_map(cg_map, num_particles)
    temperature = _number(temperature, unit.kelvin, "temperature")
    start = _integer(start, "start", 0)
    stride = _integer(stride, "stride")
    chunk_frames = _integer(chunk_frames, "chunk_frames")
    if max_chunks is not None:
        max_chunks = _integer(max_chunks, "max_chunks")
    cvs = _check_cvs(cvs)
    bead_names = _check_bead_names(bead_names, cg_map)
    platform_object, properties = _platform(platform, platform_properties)
    if isinstance(exclude_groups, (int, np.integer)):
        exclude_groups = [exclude_groups]
    exclude_groups = list(exclude_groups)
    reader = DCDReader(dcd_path)
    if reader.num_atoms != num_particles:
        raise ValueError("dcd_path: %s has %d atoms per frame but the system has %d particles"
                         % (dcd_path, reader.num_atoms, num_particles))
    frames = list(range(start, reader.num_frames, stride))
    if not frames:
        raise ValueError("start: %d is past the last frame of %s (%d frames)" % (start, dcd_path, reader.num_frames))
    path = os.fspath(path)

    work = _Work(system, exclude_groups=exclude_groups)
    work.add_cv_reader(cvs)
    settings = {"dcd_path": {"path": os.path.abspath(os.fspath(dcd_path)), "bytes": os.path.getsize(dcd_path),
                             "frames": reader.num_frames, "atoms": reader.num_atoms},
                "exclude_groups": sorted(work.bias_groups), "start": start, "stride": stride,
                "chunk_frames": chunk_frames, "cvs": {name: _force_description(f) for name, f in cvs.items()},
                "save_atom_positions": bool(save_atom_positions), "bead_names": bead_names}
    header = {"format": storage.FORMAT, "format_version": storage.FORMAT_VERSION, "source": "trajectory",
              "num_particles": num_particles, "system_sha256": _sha256(openmm.XmlSerializer.serialize(system)),
              "cg_map": storage.map_to_json(cg_map), "temperature": temperature, "kT_kj_mol": temperature * KB,
              "cv_names": list(cvs), "settings": settings, "arrays": _layout(save_atom_positions)}
    manifest, count = _open_directory(path, header)
    attempted = manifest["chunks"][-1]["frame_stop"] if count else 0
    if attempted >= len(frames):
        manifest.update(complete=True)
        return manifest
    manifest.update(recorded_groups=sorted(work.recorded_groups), bias_groups=sorted(work.bias_groups),
                    target_frames=len(frames))

    integrator = openmm.VerletIntegrator(0.001)
    if platform_object is None:
        context = openmm.Context(work.system, integrator)
    elif properties is None:
        context = openmm.Context(work.system, integrator, platform_object)
    else:
        context = openmm.Context(work.system, integrator, platform_object, properties)
    periodic = work.system.usesPeriodicBoundaryConditions()
    readers = [lambda: work.cv_force.getCollectiveVariableValues(context)] if work.cv_force is not None else []
    recorder = _Recorder(cg_map, work.recorded_groups, work.bias_groups, readers, save_atom_positions)
    run = {"started": time.strftime("%Y-%m-%dT%H:%M:%S"), "start_chunk": count, "chunks": 0, "frames": 0,
           "platform": context.getPlatform().getName()}
    manifest.setdefault("runs", []).append(run)

    bar = tqdm(total=len(frames), initial=attempted, unit="frame", disable=not progress, desc="CG dataset (DCD)")
    started, skipped_here, written = time.perf_counter(), [], 0
    try:
        while attempted < len(frames) and (max_chunks is None or written < max_chunks):
            stop = min(attempted + chunk_frames, len(frames))
            recorder.reset()
            indices = frames[attempted:stop]
            positions, boxes = reader.read(indices[0], indices[-1] + 1, stride)
            for k, frame in enumerate(indices):
                x = positions[k]
                if not np.all(np.isfinite(x)):
                    recorder.skipped.append(frame)
                else:
                    if periodic and boxes is not None:
                        context.setPeriodicBoxVectors(*boxes[k])
                    context.setPositions(x)
                    recorder.record(context, frame, positions_checked=False)
                bar.update(1)
            arrays = recorder.arrays(cg_map.num_beads, len(cvs), num_particles, attempted, stop)
            storage.atomic_save_npz(os.path.join(path, storage.chunk_name(count)), arrays)
            skipped_here += recorder.skipped
            manifest["chunks"].append({"file": storage.chunk_name(count), "frame_start": attempted,
                                       "frame_stop": stop, "frames": int(arrays["step"].shape[0]),
                                       "skipped": len(recorder.skipped)})
            run.update(chunks=run["chunks"] + 1, frames=run["frames"] + stop - attempted,
                       wall_s=round(time.perf_counter() - started, 3))
            attempted, count, written = stop, count + 1, written + 1
            manifest["complete"] = attempted >= len(frames)
            _write_manifest(path, manifest)
            if skipped_here:
                bar.set_postfix(skipped=len(skipped_here))
    finally:
        bar.close()
    manifest["complete"] = attempted >= len(frames)
    _report_skipped(skipped_here, "frames")
    return manifest
