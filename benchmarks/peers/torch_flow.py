#!/usr/bin/env python
"""PyTorch peer of the CGFlow flow engine, for benchmarks/flow_throughput.py.

The alanine-dipeptide internal-coordinate flow of the FAB and conditional-flow papers, written
the way a PyTorch user would with normflows/nflows, in float64: a base density that is standard
normal on the real dimensions and uniform on [-pi, pi) on the circular ones, then 12
rational-quadratic spline coupling layers in complementary-mask pairs with a periodic shift of
the circular dimensions after every pair but the last. It is self-contained (torch only, no
normflows) so that the benchmark measures PyTorch rather than a library's bookkeeping, and its
conventions are spelled out below so that our engine can be compared to it for the same weights.

Config (the dict our engine's Flow takes too):
    dimension D, circular (indices), num_bins K, bound B (real dims), hidden H, num_blocks,
    masks: one list of D bools per pair; layer 2i transforms the dims where masks[i] is True,
        layer 2i+1 the complement,
    shifts: one list of D floats per pair but the last; after pair i each circular dim d becomes
        wrap(x_d + shifts[i][d]) with wrap into [-pi, pi) (log-det 0; real dims untouched).

Coupling layer: the conditioner sees the identity dims in increasing order, a real dim as its
value and a circular one as (cos, sin); Linear(in, H) -> num_blocks pre-activation residual
blocks h <- h + Linear(ReLU(Linear(ReLU(h)))) -> Linear(H, out). Its output holds, per
transformed dim, the real ones first (increasing order) with 3K-1 raw values [K widths, K
heights, K-1 interior derivatives], then the circular ones with 3K [K widths, K heights, K
derivatives; knot K shares knot 0's derivative]. The spline (Durkan et al. 2019, nflows
conventions): widths = minW + (1 - K minW) softmax(raw) scaled to [-B, B] (B = pi for circular
dims), heights likewise, derivatives minD + softplus(raw), minW = minH = minD = 1e-3; real dims
have boundary derivatives 1 and are the identity outside [-B, B]. Circular inputs must lie in
[-pi, pi]. The sampling direction z -> x is the RQ formula, log_prob uses the closed-form
inverse; log q(x) = log p(z) - sum of the forward log-dets.

Flat parameter vector (get_parameters / set_parameters), layer after layer: input weight
(out x in, row-major) and bias, then per residual block its first weight and bias and its
second weight and bias, then output weight and bias.

Identity at initialization as our engine does it: output weights 0, output biases 0 for widths
and heights and log(exp(1 - minD) - 1) for derivatives (so every derivative starts at exactly
1); all other weights Glorot uniform, biases 0.

Run as a script for a self-check: inverse(forward(z)) == z, log-dets against the autograd
Jacobian, sample/log_prob consistency and the parameter-vector round trip.
"""
import math
import os
import sys

import numpy as np
import torch
from torch import nn

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from flow_configs import alanine_dipeptide_config  # noqa: E402,F401  (the benchmark's config lives beside it)

MIN_BIN_WIDTH = 1e-3
MIN_BIN_HEIGHT = 1e-3
MIN_DERIVATIVE = 1e-3
DTYPE = torch.float64


def wrap(a):
    """Angles into [-pi, pi)."""
    return torch.remainder(a + math.pi, 2 * math.pi) - math.pi


def index(dims):
    """Index tensor (int64 even when empty)."""
    return torch.tensor(dims, dtype=torch.long)


class Conditioner(nn.Module):
    """Residual MLP (nflows' ResidualNet without batch norm or dropout), float64."""

    def __init__(self, in_features, out_features, hidden, num_blocks):
        super().__init__()
        self.input = nn.Linear(in_features, hidden, dtype=DTYPE)
        self.blocks = nn.ModuleList(
            nn.ModuleList([nn.Linear(hidden, hidden, dtype=DTYPE), nn.Linear(hidden, hidden, dtype=DTYPE)])
            for _ in range(num_blocks))
        self.output = nn.Linear(hidden, out_features, dtype=DTYPE)

    def ordered_parameters(self):
        """The parameters in the order of the flat vector (see the module docstring)."""
        yield from (self.input.weight, self.input.bias)
        for first, second in self.blocks:
            yield from (first.weight, first.bias, second.weight, second.bias)
        yield from (self.output.weight, self.output.bias)

    def forward(self, features):
        h = self.input(features)
        for first, second in self.blocks:
            h = h + second(torch.relu(first(torch.relu(h))))
        return self.output(h)


class SplineCoupling(nn.Module):
    """One RQ-spline coupling layer; all transformed dims (real and circular) in one spline call."""

    def __init__(self, transformed, circular, num_bins, bound, hidden, num_blocks):
        super().__init__()
        dims = range(len(transformed))
        identity = [d for d in dims if not transformed[d]]
        mono = [d for d in dims if transformed[d] and not circular[d]]
        circ = [d for d in dims if transformed[d] and circular[d]]
        self.num_bins, self.num_mono, self.num_circ = num_bins, len(mono), len(circ)
        self.register_buffer("identity_real", index([d for d in identity if not circular[d]]))
        self.register_buffer("identity_circ", index([d for d in identity if circular[d]]))
        self.register_buffer("transformed", index(mono + circ))
        # Features are built as [real values, (cos, sin) of each circular dim]; this reorders
        # them into increasing dim order, or is None when they already are (circular dims last).
        columns, real_col, circ_col = [], 0, len(self.identity_real)
        for d in identity:
            if circular[d]:
                columns += [circ_col, circ_col + 1]
                circ_col += 2
            else:
                columns.append(real_col)
                real_col += 1
        self.feature_order = None if columns == sorted(columns) else index(columns)
        self.register_buffer("bound", torch.tensor([bound] * len(mono) + [math.pi] * len(circ), dtype=DTYPE))
        out = len(mono) * (3 * num_bins - 1) + len(circ) * 3 * num_bins
        self.conditioner = Conditioner(len(identity) + len(self.identity_circ), out, hidden, num_blocks)

    def identity_output_bias(self):
        """Output bias that makes the spline the identity while the output weights are 0."""
        K, derivative = self.num_bins, math.log(math.expm1(1 - MIN_DERIVATIVE))
        mono = torch.zeros(self.num_mono, 3 * K - 1, dtype=DTYPE)
        mono[:, 2 * K:] = derivative
        circ = torch.zeros(self.num_circ, 3 * K, dtype=DTYPE)
        circ[:, 2 * K:] = derivative
        return torch.cat([mono.reshape(-1), circ.reshape(-1)])

    def spline_parameters(self, x):
        """Knots (n, T, K+1) in x and y and derivatives (n, T, K+1) from the conditioner."""
        n, K = x.shape[0], self.num_bins
        angles = x[:, self.identity_circ]
        features = torch.cat([x[:, self.identity_real],
                              torch.stack([torch.cos(angles), torch.sin(angles)], 2).reshape(n, -1)], 1)
        if self.feature_order is not None:
            features = features[:, self.feature_order]
        raw = self.conditioner(features)
        split = self.num_mono * (3 * K - 1)
        mono = raw[:, :split].reshape(n, self.num_mono, 3 * K - 1)
        circ = raw[:, split:].reshape(n, self.num_circ, 3 * K)
        widths = torch.cat([mono[..., :K], circ[..., :K]], 1)
        heights = torch.cat([mono[..., K:2 * K], circ[..., K:2 * K]], 1)
        circ_d = MIN_DERIVATIVE + nn.functional.softplus(circ[..., 2 * K:])
        ones = torch.ones(n, self.num_mono, 1, dtype=DTYPE)
        derivatives = torch.cat([
            torch.cat([ones, MIN_DERIVATIVE + nn.functional.softplus(mono[..., 2 * K:]), ones], 2),
            torch.cat([circ_d, circ_d[..., :1]], 2)], 1)
        B = self.bound[:, None]
        return (knots(widths, MIN_BIN_WIDTH, B), knots(heights, MIN_BIN_HEIGHT, B), derivatives)

    def forward(self, x):
        """z -> x direction: (output, log|det| per sample)."""
        kx, ky, d = self.spline_parameters(x)
        u = x[:, self.transformed]
        y, logdet = rq_forward(u, kx, ky, d, self.bound)
        return x.index_copy(1, self.transformed, y), logdet.sum(1)

    def inverse(self, y):
        """x -> z direction: (output, log|det| of the inverse per sample)."""
        kx, ky, d = self.spline_parameters(y)  # identity dims are the same on both sides
        v = y[:, self.transformed]
        u, logdet = rq_inverse(v, kx, ky, d, self.bound)
        return y.index_copy(1, self.transformed, u), logdet.sum(1)


def knots(raw, minimum, bound):
    """K+1 knot positions on [-B, B] from raw bin sizes (n, T, K); bound (T, 1)."""
    K = raw.shape[-1]
    sizes = minimum + (1 - minimum * K) * torch.softmax(raw, -1)
    cumulative = nn.functional.pad(torch.cumsum(sizes, -1), (1, 0))
    cumulative = 2 * bound * cumulative - bound
    # The ends exactly at -B and B whatever the rounding of the cumulative sum.
    return torch.cat([-bound.expand_as(cumulative[..., :1]), cumulative[..., 1:-1],
                      bound.expand_as(cumulative[..., :1])], -1)


def gather_bin(knots_x, knots_y, derivatives, index):
    """Left knot, width, left y, height and both derivatives of each scalar's bin."""
    i0, i1 = index[..., None], index[..., None] + 1
    x0, y0 = knots_x.gather(-1, i0)[..., 0], knots_y.gather(-1, i0)[..., 0]
    w, h = knots_x.gather(-1, i1)[..., 0] - x0, knots_y.gather(-1, i1)[..., 0] - y0
    return x0, w, y0, h, derivatives.gather(-1, i0)[..., 0], derivatives.gather(-1, i1)[..., 0]


def rq_forward(u, knots_x, knots_y, derivatives, bound):
    """RQ spline per scalar on [-B, B] (B per transformed dim), identity outside, where only real
    dims can be; (y, log|dy/du|) elementwise."""
    inside = (u >= -bound) & (u <= bound)
    # Outside points go through the spline at 0, which keeps the discarded branch finite for
    # autograd (clamp would also halve the gradient exactly at +-B).
    uc = torch.where(inside, u, torch.zeros_like(u))
    index = (uc[..., None] >= knots_x[..., 1:-1]).sum(-1)
    x0, w, y0, h, d0, d1 = gather_bin(knots_x, knots_y, derivatives, index)
    theta = (uc - x0) / w
    s = h / w
    t1 = theta * (1 - theta)
    denominator = s + (d0 + d1 - 2 * s) * t1
    y = y0 + h * (s * theta ** 2 + d0 * t1) / denominator
    logdet = (2 * torch.log(s) + torch.log(d1 * theta ** 2 + 2 * s * t1 + d0 * (1 - theta) ** 2)
              - 2 * torch.log(denominator))
    return torch.where(inside, y, u), torch.where(inside, logdet, torch.zeros_like(logdet))


def rq_inverse(v, knots_x, knots_y, derivatives, bound):
    """Closed-form inverse of rq_forward; (u, log|du/dv|) elementwise."""
    inside = (v >= -bound) & (v <= bound)
    vc = torch.where(inside, v, torch.zeros_like(v))
    index = (vc[..., None] >= knots_y[..., 1:-1]).sum(-1)
    x0, w, y0, h, d0, d1 = gather_bin(knots_x, knots_y, derivatives, index)
    s = h / w
    dv = vc - y0
    a = dv * (d0 + d1 - 2 * s) + h * (s - d0)
    b = h * d0 - dv * (d0 + d1 - 2 * s)
    c = -s * dv
    theta = 2 * c / (-b - torch.sqrt(b * b - 4 * a * c))
    u = x0 + theta * w
    t1 = theta * (1 - theta)
    denominator = s + (d0 + d1 - 2 * s) * t1
    logdet = -(2 * torch.log(s) + torch.log(d1 * theta ** 2 + 2 * s * t1 + d0 * (1 - theta) ** 2)
               - 2 * torch.log(denominator))
    return torch.where(inside, u, v), torch.where(inside, logdet, torch.zeros_like(logdet))


class TorchFlow(nn.Module):
    """The benchmark's flow with sampling, density and the two KL training steps (Adam).

    threads, when given, goes to torch.set_num_threads, which is process-wide.
    """

    def __init__(self, config, threads=None, seed=0, learning_rate=1e-4):
        super().__init__()
        if threads is not None:
            torch.set_num_threads(threads)
        D = config["dimension"]
        circular = [False] * D
        for d in config["circular"]:
            circular[d] = True
        self.register_buffer("real", index([d for d in range(D) if not circular[d]]))
        self.register_buffer("circ", index([d for d in range(D) if circular[d]]))
        layers = []
        for mask in config["masks"]:
            for transformed in (mask, [not m for m in mask]):
                layers.append(SplineCoupling(transformed, circular, config["num_bins"], config["bound"],
                                             config["hidden"], config["num_blocks"]))
        self.layers = nn.ModuleList(layers)
        self.register_buffer("shifts", torch.tensor([[s[d] for d in self.circ.tolist()] for s in config["shifts"]],
                                                    dtype=DTYPE).reshape(len(config["shifts"]), -1))
        self.initialize_parameters(seed)
        self.optimizer = torch.optim.Adam(self.parameters(), lr=learning_rate)

    def ordered_parameters(self):
        for layer in self.layers:
            yield from layer.conditioner.ordered_parameters()

    @torch.no_grad()
    def initialize_parameters(self, seed):
        """Identity flow: zero output layers with derivative biases at 1, Glorot uniform elsewhere."""
        generator = torch.Generator().manual_seed(seed)
        for layer in self.layers:
            for p in layer.conditioner.parameters():
                if p.dim() == 2:
                    nn.init.xavier_uniform_(p, generator=generator)
                else:
                    p.zero_()
            layer.conditioner.output.weight.zero_()
            layer.conditioner.output.bias.copy_(layer.identity_output_bias())

    def get_parameters(self):
        """Flat float64 numpy copy in the documented order."""
        return torch.cat([p.detach().reshape(-1) for p in self.ordered_parameters()]).numpy()

    @torch.no_grad()
    def set_parameters(self, vector):
        vector = torch.as_tensor(np.asarray(vector, dtype=np.float64))
        sizes = [p.numel() for p in self.ordered_parameters()]
        if vector.shape != (sum(sizes),):
            raise ValueError(f"expected {sum(sizes)} parameters, got shape {tuple(vector.shape)}")
        for p, chunk in zip(self.ordered_parameters(), torch.split(vector, sizes)):
            p.copy_(chunk.reshape(p.shape))

    def base_log_prob(self, z):
        real = z[:, self.real]
        return (-0.5 * (real * real).sum(1) - 0.5 * math.log(2 * math.pi) * real.shape[1]
                - math.log(2 * math.pi) * len(self.circ))

    def transform(self, z):
        """z -> x; (x, sum of log-dets)."""
        logdet = torch.zeros(z.shape[0], dtype=DTYPE)
        for i, layer in enumerate(self.layers):
            z, ld = layer(z)
            logdet = logdet + ld
            pair = i // 2
            if i % 2 == 1 and pair < len(self.shifts):
                z = z.index_copy(1, self.circ, wrap(z[:, self.circ] + self.shifts[pair]))
        return z, logdet

    def inverse(self, x):
        """x -> z; (z, sum of the inverse log-dets)."""
        logdet = torch.zeros(x.shape[0], dtype=DTYPE)
        for i in reversed(range(len(self.layers))):
            pair = i // 2
            if i % 2 == 1 and pair < len(self.shifts):
                x = x.index_copy(1, self.circ, wrap(x[:, self.circ] - self.shifts[pair]))
            x, ld = self.layers[i].inverse(x)
            logdet = logdet + ld
        return x, logdet

    def sample_base(self, n, generator):
        z = torch.randn(n, len(self.real) + len(self.circ), dtype=DTYPE, generator=generator)
        z[:, self.circ] = (2 * torch.rand(n, len(self.circ), dtype=DTYPE, generator=generator) - 1) * math.pi
        return z

    def _sample(self, n, generator):
        if not isinstance(generator, torch.Generator):
            generator = torch.Generator().manual_seed(generator or 0)
        z = self.sample_base(n, generator)
        x, logdet = self.transform(z)
        return x, self.base_log_prob(z) - logdet

    def _log_prob(self, x):
        z, logdet = self.inverse(torch.as_tensor(x, dtype=DTYPE))
        return self.base_log_prob(z) + logdet

    @torch.no_grad()
    def sample(self, n, generator=None):
        """(x, log q(x)) for n samples; generator: torch.Generator or int seed."""
        return self._sample(n, generator)

    @torch.no_grad()
    def log_prob(self, x):
        """log q(x) for x (n, D), numpy or torch."""
        return self._log_prob(x)

    def reverse_kl_step(self, n, energy_and_forces, beta=1.0, generator=None):
        """One Adam step on the reverse KL  E_q[beta U(x) + log q(x)]  with n samples.

        energy_and_forces(x) gets the samples as a numpy array and returns (U, F = -dU/dx),
        numpy or torch. The loss is the pathwise surrogate mean(-beta (F . x) + log q), whose
        gradient equals that of the KL estimate. Returns the KL estimate mean(beta U + log q).
        """
        x, log_q = self._sample(n, generator)
        energies, forces = energy_and_forces(x.detach().numpy())
        energies = torch.as_tensor(energies, dtype=DTYPE)
        forces = torch.as_tensor(forces, dtype=DTYPE)
        loss = (-beta * (forces * x).sum(1) + log_q).mean()
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        return float((beta * energies + log_q.detach()).mean())

    def forward_kl_step(self, x):
        """One Adam step on the forward KL (maximum likelihood), -mean log q(x). Returns the loss."""
        loss = -self._log_prob(x).mean()
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        return float(loss.detach())


def _self_check():
    """Invertibility and log-dets of a non-identity flow; raises AssertionError on failure."""
    flow = TorchFlow(alanine_dipeptide_config(seed=1), threads=2, seed=3)
    vector = flow.get_parameters()
    flow.set_parameters(vector)
    assert np.array_equal(flow.get_parameters(), vector)
    x, log_q = flow.sample(4, 0)
    assert torch.allclose(log_q, flow.base_log_prob(flow.inverse(x)[0]), atol=1e-12)  # identity flow

    generator = torch.Generator().manual_seed(5)
    with torch.no_grad():
        for layer in flow.layers:
            out = layer.conditioner.output
            out.weight.copy_(0.02 * torch.randn(out.weight.shape, dtype=DTYPE, generator=generator))
    z = flow.sample_base(64, generator)
    z[0, flow.real[0]] = 6.0  # beyond the bound: identity tail
    z[1, flow.real[:5]] = torch.tensor([-5.0, 5.0, 4.999, -7.0, 0.0], dtype=DTYPE)
    with torch.no_grad():
        x, logdet = flow.transform(z)
        z_back, inverse_logdet = flow.inverse(x)
    diff = z_back - z
    diff[:, flow.circ] = wrap(diff[:, flow.circ])  # -pi and pi are the same angle
    err = diff.abs().max().item()
    assert err < 1e-10, f"inverse(forward(z)) - z = {err}"
    assert (logdet + inverse_logdet).abs().max().item() < 1e-10
    assert (x - z).abs().max().item() > 0.1, "the randomized flow should not be the identity"
    x_s, log_q = flow.sample(32, 11)
    assert (log_q - flow.log_prob(x_s)).abs().max().item() < 1e-10

    for i in range(2):  # sample 0 has a tail value, sample 1 values on and near the bound
        jacobian = torch.autograd.functional.jacobian(lambda v: flow.transform(v[None])[0][0], z[i],
                                                      vectorize=True)
        reference = torch.linalg.slogdet(jacobian)[1].item()
        assert abs(reference - logdet[i].item()) < 1e-9, (i, reference, logdet[i].item())

    harmonic = lambda x: (0.5 * (x[:, flow.real.numpy()] ** 2).sum(1),  # noqa: E731
                          np.where(np.isin(np.arange(x.shape[1]), flow.circ.numpy()), 0.0, -x))
    before = flow.get_parameters()
    flow.reverse_kl_step(16, harmonic, generator=3)
    flow.forward_kl_step(x_s)
    assert np.all(np.isfinite(flow.get_parameters())) and not np.array_equal(before, flow.get_parameters())
    print(f"torch_flow self-check passed: |inverse(forward(z)) - z| = {err:.1e}, "
          f"{sum(p.numel() for p in flow.parameters())} parameters")


if __name__ == "__main__":
    _self_check()
