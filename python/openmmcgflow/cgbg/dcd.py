"""A DCD trajectory reader in numpy (OpenMM writes DCD but has no reader).

Reads the CHARMM flavour that OpenMM's ``DCDFile``/``DCDReporter``, CHARMM, NAMD and most tools
write: either byte order, 32-bit record markers, an optional unit cell per frame, no fixed atoms and
no fourth dimension (those are refused). Positions are returned in nm (float64), boxes as (3, 3)
vectors in nm. Frames are read by range, so long trajectories need not fit in memory.
"""
import math
import os
import struct
import warnings

import numpy as np


class DCDReader:
    """``DCDReader(path)``: ``num_frames``, ``num_atoms``, ``has_box``, ``first_step``, ``interval``,
    and :meth:`read` ``(start, stop, stride)`` -> (positions (n, atoms, 3) nm, boxes (n, 3, 3) nm or None)."""

    def __init__(self, path, argument="dcd_path"):
        self.path, self.argument = os.fspath(path), argument
        if not os.path.isfile(self.path):
            raise FileNotFoundError("%s: no file %s" % (argument, self.path))
        with open(self.path, "rb") as handle:
            head = handle.read(92)
            if len(head) < 92:
                raise ValueError("%s: %s is too short to be a DCD file" % (argument, self.path))
            for endian in "<>":
                if struct.unpack(endian + "i", head[:4])[0] == 84 and head[4:8] == b"CORD":
                    break
            else:
                if struct.unpack("<q", head[:8])[0] == 84 or struct.unpack(">q", head[:8])[0] == 84:
                    raise ValueError("%s: %s uses 64-bit record markers, which this reader does not read"
                                     % (argument, self.path))
                raise ValueError("%s: %s is not a DCD file (no CORD header)" % (argument, self.path))
            self.endian = endian
            control = struct.unpack(endian + "20i", head[8:88])
            if struct.unpack(endian + "i", head[88:92])[0] != 84:
                raise ValueError("%s: %s has a damaged header record" % (argument, self.path))
            charmm = control[19] != 0
            self.header_frames, self.first_step, self.interval = control[0], control[1], control[2]
            if control[8] != 0:
                raise ValueError("%s: %s has %d fixed atoms; DCD files with fixed atoms are not supported"
                                 % (argument, self.path, control[8]))
            self.has_box = charmm and control[10] != 0
            if charmm and control[11] != 0:
                raise ValueError("%s: %s has a fourth dimension; not supported" % (argument, self.path))
            size = struct.unpack(endian + "i", handle.read(4))[0]
            handle.seek(size, os.SEEK_CUR)
            if struct.unpack(endian + "i", handle.read(4))[0] != size:
                raise ValueError("%s: %s has a damaged title record" % (argument, self.path))
            marker, atoms, marker2 = struct.unpack(endian + "3i", handle.read(12))
            if marker != 4 or marker2 != 4 or atoms <= 0:
                raise ValueError("%s: %s has a damaged atom-count record" % (argument, self.path))
            self.num_atoms = atoms
            self.data_offset = handle.tell()
        fields = []
        if self.has_box:
            fields += [("box_start", endian + "i4"), ("box", endian + "f8", (6,)), ("box_end", endian + "i4")]
        for axis in "xyz":
            fields += [(axis + "_start", endian + "i4"), (axis, endian + "f4", (atoms,)),
                       (axis + "_end", endian + "i4")]
        self.dtype = np.dtype(fields)
        self.frame_bytes = self.dtype.itemsize
        data_bytes = os.path.getsize(self.path) - self.data_offset
        self.num_frames = data_bytes // self.frame_bytes
        if data_bytes % self.frame_bytes:
            warnings.warn("%s: %s ends in a partial frame (a writer was interrupted); reading its %d whole frames"
                          % (argument, self.path, self.num_frames), stacklevel=2)

    def read(self, start=0, stop=None, stride=1):
        """Frames start, start + stride, ... below stop: positions (n, atoms, 3) in nm and boxes (n, 3, 3)
        in nm (None without a unit cell)."""
        stop = self.num_frames if stop is None else min(int(stop), self.num_frames)
        start, stride = int(start), int(stride)
        if not 0 <= start <= stop:
            raise ValueError("start: must be in [0, %d], got %d" % (stop, start))
        if stride < 1:
            raise ValueError("stride: must be >= 1, got %d" % stride)
        indices = range(start, stop, stride)
        with open(self.path, "rb") as handle:
            if stride == 1:
                handle.seek(self.data_offset + start * self.frame_bytes)
                buffer = handle.read(len(indices) * self.frame_bytes)
            else:  # one frame at a time: a large stride need not read the frames in between
                parts = []
                for index in indices:
                    handle.seek(self.data_offset + index * self.frame_bytes)
                    parts.append(handle.read(self.frame_bytes))
                buffer = b"".join(parts)
        frames = np.frombuffer(buffer, dtype=self.dtype, count=len(indices))
        expected = 4 * self.num_atoms
        for axis in "xyz":
            if np.any(frames[axis + "_start"] != expected) or np.any(frames[axis + "_end"] != expected):
                raise ValueError("%s: %s: a record marker of frames [%d, %d) is wrong; the file is damaged"
                                 % (self.argument, self.path, start, stop))
        positions = np.stack([frames[axis] for axis in "xyz"], axis=-1).astype(np.float64) / 10.0
        boxes = None
        if self.has_box:
            if np.any(frames["box_start"] != 48) or np.any(frames["box_end"] != 48):
                raise ValueError("%s: %s: a unit-cell record of frames [%d, %d) is wrong; the file is damaged"
                                 % (self.argument, self.path, start, stop))
            boxes = (np.stack([box_vectors(cell) for cell in frames["box"]]) if len(indices)
                     else np.zeros((0, 3, 3)))
        return positions, boxes


def box_vectors(cell):
    """(3, 3) box vectors in nm from a DCD unit cell (a, gamma, b, beta, alpha, c) in angstrom, the angles
    as cosines (CHARMM, OpenMM) or, when any exceeds 1 in magnitude, in degrees (older NAMD)."""
    from openmm.app.internal.unitcell import computePeriodicBoxVectors
    from openmm.unit import nanometer
    a, gamma, b, beta, alpha, c = (float(v) for v in cell)
    angles = [alpha, beta, gamma]
    if all(abs(v) <= 1.0 for v in angles):
        angles = [math.acos(v) for v in angles]
    else:
        angles = [math.radians(v) for v in angles]
    vectors = computePeriodicBoxVectors(a / 10.0, b / 10.0, c / 10.0, *angles)
    return np.array([[v[i] for i in range(3)] for v in vectors.value_in_unit(nanometer)], dtype=float)


def read_dcd(path, start=0, stop=None, stride=1):
    """Frames of a DCD file (all, or start:stop:stride): (positions (n, atoms, 3) nm, boxes (n, 3, 3) nm or None)."""
    return DCDReader(path, "path").read(start, stop, stride)
