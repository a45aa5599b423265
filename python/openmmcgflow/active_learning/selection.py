"""Choosing and broadening the uncertain points the CG Monte Carlo search finds (Schopmans & Friederich,
section A.6: 15 of 30 points by farthest-point selection, each broadened by 200 uniform draws in a disc
of radius 0.6 rad)."""
import numpy as np


def _periodic_difference(a, b, period):
    d = np.asarray(a, dtype=float) - np.asarray(b, dtype=float)
    if period:
        d = d - period * np.round(d / period)
    return d


def farthest_point_selection(points, count, rng, period=2 * np.pi):
    """Pick ``count`` of ``points`` (n, d): a random first one, then repeatedly the point whose distance to
    the nearest already chosen point is largest. Distances use the minimum image when ``period`` is set (CG
    angles); ``period=None`` for unbounded coordinates. Returns the chosen indices, in the order chosen."""
    x = np.asarray(points, dtype=float)
    if x.ndim != 2 or len(x) == 0:
        raise ValueError("points: expected a non-empty (n, d) array, got shape %r" % (x.shape,))
    if not np.all(np.isfinite(x)):
        raise ValueError("points: must be finite")
    count = int(count)
    if not 1 <= count <= len(x):
        raise ValueError("count: must be in [1, %d], got %d" % (len(x), count))
    chosen = [int(rng.integers(len(x)))]
    nearest = np.linalg.norm(_periodic_difference(x, x[chosen[0]], period), axis=1)
    while len(chosen) < count:
        nxt = int(np.argmax(nearest))
        chosen.append(nxt)
        nearest = np.minimum(nearest, np.linalg.norm(_periodic_difference(x, x[nxt], period), axis=1))
    return np.array(chosen)


def broaden_points(centres, per_point, radius, rng, period=2 * np.pi):
    """``per_point`` draws uniform in the disc (2-D; a ball in other dimensions) of ``radius`` around each
    centre (k, d), wrapped into [-period/2, period/2) when ``period`` is set. Returns (k * per_point, d)."""
    c = np.asarray(centres, dtype=float)
    if c.ndim != 2:
        raise ValueError("centres: expected a (k, d) array, got shape %r" % (c.shape,))
    if not np.all(np.isfinite(c)):
        raise ValueError("centres: must be finite")
    if not (np.isfinite(radius) and radius > 0):
        raise ValueError("radius: must be finite and > 0, got %r" % (radius,))
    per_point = int(per_point)
    if per_point < 1:
        raise ValueError("per_point: must be >= 1, got %d" % per_point)
    d = c.shape[1]
    # Uniform in a d-ball: a uniform direction and a radius with density ~ r^(d-1).
    direction = rng.normal(size=(len(c), per_point, d))
    direction /= np.linalg.norm(direction, axis=-1, keepdims=True)
    r = radius * rng.uniform(size=(len(c), per_point, 1)) ** (1.0 / d)
    out = (c[:, None, :] + r * direction).reshape(-1, d)
    if period:
        out = out - period * np.floor(out / period + 0.5)
    return out
