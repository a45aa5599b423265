"""Flow configs shared by the benchmarks (no torch needed to import this)."""
import math

import numpy as np


def alanine_dipeptide_config(seed=0, dimension=60, circular=tuple(range(48, 60)), num_pairs=6):
    """The benchmark's config: D = 60 internal coordinates of which 48..59 circular, K = 8, B = 5,
    256 hidden units, one residual block. Each mask transforms a random half of the real and a
    random half of the circular dims, so every conditioner sees both kinds; shifts are uniform
    in [-pi, pi) (FAB shifts by pi; any value exercises the same code)."""
    rng = np.random.default_rng(seed)
    real = [d for d in range(dimension) if d not in circular]
    masks, shifts = [], []
    for _ in range(num_pairs):
        mask = [False] * dimension
        for group in (real, list(circular)):
            for d in rng.permutation(group)[:len(group) // 2]:
                mask[d] = True
        masks.append(mask)
    for _ in range(num_pairs - 1):
        shift = [0.0] * dimension
        for d in circular:
            shift[d] = float(rng.uniform(-math.pi, math.pi))
        shifts.append(shift)
    return {"dimension": dimension, "circular": list(circular), "num_bins": 8, "bound": 5.0,
            "hidden": 256, "num_blocks": 1, "masks": masks, "shifts": shifts}
