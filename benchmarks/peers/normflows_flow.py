#!/usr/bin/env python
"""normflows peer of the CGFlow flow engine, for benchmarks/flow_throughput.py.

The alanine-dipeptide internal-coordinate flow of the FAB / conditional-flow papers built the way
FAB builds it, with normflows (pip install normflows; benchmarks/peers/install_peers.sh puts it in
.venv-peers) in float64: nf.NormalizingFlow with an nf.distributions.UniformGaussian base (standard
normal on the real dims, uniform on [-pi, pi) on the circular ones), 12
nf.flows.CircularCoupledRationalQuadraticSpline layers in complementary-mask pairs (tail bound 5 on
the real dims and pi on the circular ones, K bins, a ResidualNet conditioner of H hidden units and
num_blocks blocks, identity initialization) and an nf.flows.PeriodicShift of the circular dims
after every pair but the last. Config: the dict our engine's Flow takes (benchmarks/flow_configs.py;
benchmarks/peers/torch_flow.py documents it and our engine's conventions).

Our engine's weights are copied in (set_parameters takes our flat parameter vector) so that log q
agrees with our engine for the same x. Where normflows' conventions differ from ours:

1. Direction. normflows' layer samples with the closed-form inverse of the RQ spline and evaluates
   log q with the RQ formula; ours the other way round. The inverse of an RQ spline is not an RQ
   spline, so no weights make the two agree: each coupling layer is wrapped in normflows' own
   nf.flows.Reverse, which samples with the RQ formula as we do (and as torch_flow.py does).
2. Conditioner features. The layer feeds each circular identity dim to its ResidualNet as ONE
   feature w1 sin(s x) + w2 cos(s x) (nf.utils.nn.PeriodicFeaturesElementwise, learnable w); ours
   feeds the pair (cos x, sin x), which no choice of w reproduces. The preprocessing is replaced by
   normflows' nf.utils.nn.PeriodicFeaturesCat ([sin, cos of the circular dims, then the real dims])
   and the ResidualNet's first Linear widened to match (36 inputs instead of 30 in the benchmark's
   config), its columns our first layer's, permuted. (Besides, normflows 1.7.3 computes the scale s
   as pi / tail_bound[ind_circ_id], indexing the full-length bound with positions within the
   identity dims, so with a per-dim tensor bound it takes real dims' bounds: s = pi/5 here, and the
   feature is not periodic. The replacement uses s = 1.)
3. Output layout. With mixed tails normflows gives every transformed dim 3K+1 raw values [K widths,
   K heights, K+1 derivatives] in dim order, and overwrites the boundary derivatives (real: both
   ends = 1; circular: the last = the first); ours has 3K-1 (real) or 3K (circular) values, real
   dims first. Our rows are copied to their places; the overwritten rows get zero weights.
   normflows also divides the width and height logits by sqrt(H) (= 16): those rows are copied
   times sqrt(H), which is exact in floating point when H is a power of 4.
4. Unconditional transform. The layer also applies an elementwise RQ spline with its own
   parameters to the identity dims (apply_unconditional_transform=True, fixed in normflows). It is
   initialized to the identity (to rounding) and left in: it is part of the cost of this layer
   (unconditional=False removes it, for a measurement without it). It trains along with the rest.
5. Tails. With mixed tails, normflows 1.7.3's unconstrained_rational_quadratic_spline leaves the
   outputs of inputs outside [-B, B] at ZERO (the "linear" tails' identity assignment exists only in
   the single-kind branches), in both directions and in the unconditional transform too. Ours (and
   torch_flow.py) pass them through. A real coordinate beyond +-5 is rare under the base (p = 6e-7
   per value), so log q agrees except for such samples; the benchmark counts and excludes them.

Everything else is normflows' own code: the coupling (Coupling / PiecewiseRationalQuadraticCoupling),
the spline (min bin width/height and min derivative 1e-3, as ours), the ResidualNet (pre-activation
residual blocks, ReLU, as ours), the base, the shifts, NormalizingFlow's sample / log_prob /
forward_kld / reverse_kld, and Adam from torch.

Run as a script for a self-check against torch_flow.py (same weights, same flow) and a
demonstration of the tail behaviour of point 5.
"""
import math
import os
import sys

import numpy as np
import torch
from torch import nn
import normflows as nf

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from flow_configs import alanine_dipeptide_config  # noqa: E402,F401  (the benchmark's config)

DTYPE = torch.float64


class _NumpyEnergy(torch.autograd.Function):
    """U(x) from a numpy function returning (U, F = -dU/dx); backward uses F."""

    @staticmethod
    def forward(ctx, x, energy_and_forces):
        energies, forces = energy_and_forces(x.detach().numpy())
        ctx.save_for_backward(torch.as_tensor(np.asarray(forces), dtype=x.dtype))
        return torch.as_tensor(np.asarray(energies), dtype=x.dtype)

    @staticmethod
    def backward(ctx, grad_energy):
        forces, = ctx.saved_tensors
        return -grad_energy[:, None] * forces, None


class NumpyEnergyTarget(nf.distributions.Target):
    """log p = -U(x) with U and its forces from numpy (as FAB wraps OpenMM's energy)."""

    def __init__(self, energy_and_forces):
        super().__init__()
        self.energy_and_forces = energy_and_forces

    def log_prob(self, z):
        return -_NumpyEnergy.apply(z, self.energy_and_forces)


def _layer_layout(config, transformed):
    """Our conditioner's (input columns, output rows) for one layer, each as a list of tuples.

    inputs: per column (identity dim, 'x' | 'cos' | 'sin'), in our order;
    outputs: per row (transformed dim, kind, k) with kind 'w' | 'h' | 'd', in our order."""
    D, K, circular = config["dimension"], config["num_bins"], set(config["circular"])
    inputs = []
    for d in range(D):
        if not transformed[d]:
            inputs += [(d, "cos"), (d, "sin")] if d in circular else [(d, "x")]
    outputs = []
    for group in ([d for d in range(D) if transformed[d] and d not in circular],
                  [d for d in range(D) if transformed[d] and d in circular]):
        for d in group:
            n_derivatives = K if d in circular else K - 1
            outputs += [(d, "w", k) for k in range(K)] + [(d, "h", k) for k in range(K)]
            outputs += [(d, "d", k) for k in range(n_derivatives)]
    return inputs, outputs


class NormflowsFlow:
    """The benchmark's flow in normflows with sampling, density and the two KL training steps.

    threads, when given, goes to torch.set_num_threads, which is process-wide.
    """

    def __init__(self, config, threads=None, learning_rate=1e-4, unconditional=True):
        if threads is not None:
            torch.set_num_threads(threads)
        self.config = config
        # Built in float64 from the start, as a float64 user would: normflows computes constants
        # such as the identity derivative logits in the default dtype, and rounding them to float32
        # first would leave the unconditional transform (point 4) off the identity by ~1e-8.
        default_dtype = torch.get_default_dtype()
        torch.set_default_dtype(DTYPE)
        try:
            self._build(config, learning_rate, unconditional)
        finally:
            torch.set_default_dtype(default_dtype)

    def _build(self, config, learning_rate, unconditional):
        D, K, H = config["dimension"], config["num_bins"], config["hidden"]
        circ = list(config["circular"])
        self.circular = set(circ)
        tail_bound = torch.full((D,), float(config["bound"]), dtype=DTYPE)
        tail_bound[circ] = math.pi
        self.transforms = []  # (transformed mask, the normflows coupling layer)
        flows = []
        for pair, mask in enumerate(config["masks"]):
            for transformed in (list(mask), [not m for m in mask]):
                layer = nf.flows.CircularCoupledRationalQuadraticSpline(
                    D, config["num_blocks"], H, circ, num_bins=K, tail_bound=tail_bound,
                    mask=torch.tensor([1.0 if t else 0.0 for t in transformed]), init_identity=True)
                self._use_cos_sin_features(layer, transformed)
                if not unconditional:
                    layer.prqct.unconditional_transform = None
                self.transforms.append((transformed, layer))
                flows.append(nf.flows.Reverse(layer))  # sample with the RQ formula, as ours
            if pair < len(config["shifts"]):
                shift = torch.tensor([config["shifts"][pair][d] for d in circ], dtype=DTYPE)
                flows.append(nf.flows.PeriodicShift(circ, bound=math.pi, shift=shift))
        scale = torch.ones(D, dtype=DTYPE)
        scale[circ] = 2 * math.pi  # uniform on [-pi, pi)
        base = nf.distributions.UniformGaussian(D, circ, scale=scale)
        self.model = nf.NormalizingFlow(base, flows).to(DTYPE)
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=learning_rate)

    def _use_cos_sin_features(self, layer, transformed):
        """Point 2 of the module docstring: (sin, cos) pairs instead of one mixed feature."""
        net = layer.prqct.transform_net
        identity = [d for d in range(len(transformed)) if not transformed[d]]
        circ_positions = [i for i, d in enumerate(identity) if d in self.circular]
        if not circ_positions:
            return
        net.preprocessing = nf.utils.nn.PeriodicFeaturesCat(len(identity), circ_positions, scale=1.0)
        net.initial_layer = nn.Linear(len(identity) + len(circ_positions), net.hidden_features)

    @torch.no_grad()
    def set_parameters(self, vector):
        """Our engine's flat parameter vector (torch_flow.py documents the layout)."""
        vector = np.asarray(vector, dtype=np.float64)
        K, H = self.config["num_bins"], self.config["hidden"]
        scale = math.sqrt(H)  # normflows divides width and height logits by sqrt(hidden)
        offset = 0

        def take(*shape):
            nonlocal offset
            size = int(np.prod(shape))
            chunk = vector[offset:offset + size].reshape(shape)
            offset += size
            return torch.from_numpy(chunk.copy())

        for transformed, layer in self.transforms:
            inputs, outputs = _layer_layout(self.config, transformed)
            net = layer.prqct.transform_net
            w_in, b_in = take(H, len(inputs)), take(H)
            # normflows' feature order: sin of the circular identity dims, cos of them, real dims.
            circ_dims = [d for d, kind in inputs if kind == "cos"]
            real_dims = [d for d, kind in inputs if kind == "x"]
            nf_inputs = [(d, "sin") for d in circ_dims] + [(d, "cos") for d in circ_dims] + [(d, "x") for d in real_dims]
            column = {key: j for j, key in enumerate(inputs)}
            net.initial_layer.weight.copy_(w_in[:, [column[key] for key in nf_inputs]])
            net.initial_layer.bias.copy_(b_in)
            for block in net.blocks:
                first, second = block.linear_layers
                first.weight.copy_(take(H, H))
                first.bias.copy_(take(H))
                second.weight.copy_(take(H, H))
                second.bias.copy_(take(H))
            w_out, b_out = take(len(outputs), H), take(len(outputs))
            transform_dims = [d for d in range(len(transformed)) if transformed[d]]
            row = {}
            for i, d in enumerate(transform_dims):  # normflows: 3K+1 rows per dim, in dim order
                base = i * (3 * K + 1)
                row.update({(d, "w", k): base + k for k in range(K)})
                row.update({(d, "h", k): base + K + k for k in range(K)})
                first = 0 if d in self.circular else 1  # real dims: derivative 0 is the boundary
                row.update({(d, "d", k): base + 2 * K + first + k for k in range(K)})
            final = net.final_layer
            final.weight.zero_()
            final.bias.zero_()
            for j, key in enumerate(outputs):
                factor = scale if key[1] in ("w", "h") else 1.0
                final.weight[row[key]] = factor * w_out[j]
                final.bias[row[key]] = factor * b_out[j]
        if offset != vector.size:
            raise ValueError(f"expected {offset} parameters, got {vector.size}")

    def _seed(self, seed):
        if seed is not None:
            torch.default_generator.manual_seed(int(seed))

    @torch.no_grad()
    def sample(self, n, seed=None):
        """(x, log q(x)) for n samples, with normflows' NormalizingFlow.sample (global torch RNG)."""
        self._seed(seed)
        return self.model.sample(n)

    @torch.no_grad()
    def log_prob(self, x):
        """log q(x) for x (n, D), numpy or torch."""
        return self.model.log_prob(torch.as_tensor(x, dtype=DTYPE))

    @torch.no_grad()
    def transform(self, z):
        """z -> (x, log q(x)) for given base points, as NormalizingFlow.sample does after its draw."""
        log_q = self.model.q0.log_prob(z)
        for flow in self.model.flows:
            z, log_det = flow(z)
            log_q = log_q - log_det
        return z, log_q

    def reverse_kl_step(self, n, energy_and_forces, beta=1.0, seed=None):
        """One Adam step on normflows' reverse_kld (score_fn=True: pathwise gradient) with the
        target -U from numpy. Returns the KL estimate mean(log q + beta U)."""
        self._seed(seed)
        if getattr(self.model.p, "energy_and_forces", None) is not energy_and_forces:
            self.model.p = NumpyEnergyTarget(energy_and_forces)
        loss = self.model.reverse_kld(n, beta=beta)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        return float(loss.detach())

    def forward_kl_step(self, x):
        """One Adam step on normflows' forward_kld, -mean log q(x). Returns the loss."""
        loss = self.model.forward_kld(torch.as_tensor(x, dtype=DTYPE))
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        return float(loss.detach())

    def parameter_count(self):
        return sum(p.numel() for p in self.model.parameters())


def _self_check():
    """Same weights in torch_flow.py and here: same log q for the same x, same x for the same z."""
    import torch_flow
    config = alanine_dipeptide_config(seed=1)
    ref = torch_flow.TorchFlow(config, threads=2, seed=3)
    generator = torch.Generator().manual_seed(5)
    with torch.no_grad():
        for layer in ref.layers:
            out = layer.conditioner.output
            out.weight.copy_(0.02 * torch.randn(out.weight.shape, dtype=DTYPE, generator=generator))
    flow = NormflowsFlow(config, threads=2)
    flow.set_parameters(ref.get_parameters())

    x, log_q_ref = ref.sample(256, 7)
    inside = (x[:, ref.real].abs() <= config["bound"]).all(1)
    diff_log_prob = (flow.log_prob(x) - log_q_ref)[inside].abs().max().item()
    z = ref.sample_base(256, torch.Generator().manual_seed(9))
    x_ref, log_q_z_ref = ref._sample(256, torch.Generator().manual_seed(9))
    x_nf, log_q_nf = flow.transform(z)
    diff_x = (x_nf - x_ref).abs().max().item()
    diff_sample = (log_q_nf - log_q_z_ref).abs().max().item()
    x_s, log_q_s = flow.sample(64, 11)
    diff_self = (flow.log_prob(x_s) - log_q_s).abs().max().item()
    assert diff_log_prob < 1e-9 and diff_x < 1e-9 and diff_sample < 1e-9 and diff_self < 1e-9, \
        (diff_log_prob, diff_x, diff_sample, diff_self)

    # Point 5: a real coordinate beyond the tail bound comes out as 0, not unchanged.
    transformed, layer = flow.transforms[0]
    d = next(d for d in range(config["dimension"]) if transformed[d] and d not in flow.circular)
    probe = torch.zeros(1, config["dimension"], dtype=DTYPE)
    probe[0, d] = 6.0
    with torch.no_grad():
        out, _ = layer.inverse(probe)  # the sampling direction of Reverse(layer)
    print(f"normflows_flow self-check passed: |log q - torch_flow| = {diff_log_prob:.1e} (log_prob), "
          f"{diff_sample:.1e} (sampling, |dx| = {diff_x:.1e}), {diff_self:.1e} (own round trip); "
          f"{flow.parameter_count()} parameters; a real input of 6.0 beyond the bound 5 leaves a coupling "
          f"layer as {out[0, d].item():g}")


if __name__ == "__main__":
    _self_check()
