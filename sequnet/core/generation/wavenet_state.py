"""Cached inference for the WaveNet baseline: every layer runs at every step.

Layer j (dilation d) needs its input d steps ago and now. All layers' past inputs live in one ring buffer of
sum(d + 1) rows (row, batch, C): layer j owns the rows from base_j, and the sample of time t lives in row
base_j + t mod (d + 1), so the one of time t - d is in row base_j + (t + 1) mod (d + 1). The rows are device
tensors computed from a device-side clock, so a step touches fixed tensors (one CUDA graph for every step) and
never copies a window.

A step reads every layer's x_{t-d} from the ring in one gather (none of them is written during the step), runs
each layer as one fused product with two input parts (x_{t-d} W_0 + x_t W_1, the gate; then the residual 1x1 with
x_t as identity, into the next layer's input), and writes every layer's x_t into the ring in one scatter at its
end. On the torch paths the gather opens the step. On the Triton paths the end kernel does both, the scatter and
the next step's gather (``step_kernels``), and the step opens with x_0 and the clock in one launch. Per layer
that is two operations, where a gather and a write per layer made four: at batch 1 a WaveNet step is 52 layers
of a few microseconds each, and the count of operations is its cost. The skip 1x1 convolutions of all layers
are one matrix product at the end: the gated outputs z_j are kept side by side, each with a constant 1 appended
so the skip and residual biases ride along in the products.

``kernel="chain"`` runs all the dilated layers of a step in one Triton launch instead (``wavenet_chain``); the
skip, end and head products then take the batch rule's kernels.
"""
from __future__ import annotations

import functools

import torch
import torch.nn as nn

from sequnet.core.generation import step_kernels, wavenet_chain
from sequnet.core.generation.priming import embedding_matrix, fold_head, save_pass
from sequnet.core.generation.state import InferenceState
from sequnet.core.models.wavenet import WaveNet


class WaveNetState(InferenceState):
    def __init__(self, model: nn.Module, window: torch.Tensor, dtype: torch.dtype | None = None,
                 kernel: str = "auto"):
        body: WaveNet = model.body
        cfg = body.config
        if cfg.kernel_size != 2:
            raise NotImplementedError("cached WaveNet generation supports kernel size 2 (the paper's WaveNet)")
        chain = kernel == "chain"
        super().__init__(model, window.shape[0], dtype, levels=1, kernel="auto" if chain else kernel)
        if chain:
            problem = wavenet_chain.chain_problem(self.device, self.dtype, cfg.residual_channels)
            if problem:
                raise ValueError(f"kernel='chain' cannot run here: {problem}; use kernel='auto'")
            self.kernel = "chain"
        B, C, n = self.batch, cfg.residual_channels, len(body.layers)
        dev, dt = self.device, self.dtype
        cast = lambda t: t.detach().to(dev, dt).contiguous()   # noqa: E731

        self.dilations = [layer.dilation for layer in body.layers]
        period = torch.tensor(self.dilations, device=dev) + 1                # ring lengths
        base = torch.cumsum(period, 0) - period                             # each layer's first ring row
        self._bases = base.tolist()
        self._period = period.expand(2, n).contiguous()
        self._base = base.expand(2, n).contiguous()
        self._offsets = torch.tensor([[1], [0]], device=dev).expand(2, n).contiguous()
        self._clock = torch.zeros((), dtype=torch.long, device=dev)     # t: steps since the save pass
        self._rows = torch.zeros(2, n, dtype=torch.long, device=dev)    # [rows of t - d, rows of t]

        # Start conv (1x1 on one-hot/embedded ids) as a table.
        start_w = body.start.weight.detach().double()[:, :, 0]
        self._table = cast(embedding_matrix(model) @ start_w.t() + body.start.bias.detach().double())
        self._ring = torch.zeros(int(period.sum()), B, C, dtype=dt, device=dev)
        self._x = torch.zeros(n, B, C, dtype=dt, device=dev)              # every layer's input x_t
        self._old = torch.zeros(n, B, C, dtype=dt, device=dev)            # every layer's x_{t-d}
        self._z = torch.zeros(B, n, C + 1, dtype=dt, device=dev)
        self._z[:, :, C] = 1

        skip = cfg.skip_channels
        skip_rows, taps, biases, residuals = [], [], [], []
        for layer in body.layers:
            w = layer.dil_conv.weight.detach().double()                 # (2C, C, 2): tap 0 = t - d, tap 1 = t
            taps.append((w[:, :, 0].t(), w[:, :, 1].t()))
            biases.append(layer.dil_conv.bias.detach().double())
            ow, ob = layer.out_conv.weight.detach().double()[:, :, 0], layer.out_conv.bias.detach().double()
            aug = torch.cat([ow, ob[:, None]], dim=1)                   # (skip + C, C + 1)
            skip_rows.append(aug[:skip])
            residuals.append(aug[skip:].t())
        if self.kernel == "chain":      # the layers' weights packed for the one launch, not also one by one
            self._chain = wavenet_chain.pack_weights(taps, biases, residuals[:-1], dt, dev)
        else:
            self._dil_w = [tuple(self._weight(tw) for tw in pair) for pair in taps]
            self._dil_b = [cast(b) for b in biases]
            self._res_w = [self._weight(r) for r in residuals]
        self._skip_w = self._weight(torch.cat(skip_rows, dim=1).t())    # (n (C + 1), skip)
        self._skip = torch.zeros(B, skip, dtype=dt, device=dev)
        self._end1_w, self._end1_b = self._weight(body.end1.weight[:, :, 0].t()), cast(body.end1.bias)
        self._h = torch.zeros(B, cfg.end_channels, dtype=dt, device=dev)
        hw, hb = fold_head(model, body.end2.weight[:, :, 0], body.end2.bias)
        self._head_w, self._head_b = self._weight(hw.t()), cast(hb)

        hooks = {layer: functools.partial(self._capture, j) for j, layer in enumerate(body.layers)}
        self.logits.copy_(save_pass(model, window, hooks))
        # The first step's x_{t-d}: at t = 0, ring row base + (t + 1) mod (d + 1) = base + 1. After it the Triton
        # paths' end kernel reads each next step's, and the torch paths read their own at the step's start.
        self._old.copy_(self._ring[self._base[0] + 1])
        self._no_shifts = step_kernels.shift_table([], dev)

    def _capture(self, j, module, args, kwargs) -> None:
        """Ring rows for times -d..-1 (the newest prime sample is time -1)."""
        x, d = args[0], self.dilations[j]
        rows = torch.tensor([self._bases[j] + (-d + r) % (d + 1) for r in range(d)], device=self.device)
        self._ring[rows] = x[..., -d:].permute(2, 0, 1).to(self.dtype)

    def keys(self):
        return [0]

    @property
    def period(self) -> int:
        return 1                    # every step updates every layer

    def _next_key(self):
        return 0

    def _count_levels(self, key) -> None:
        self.level_counts[0] += 1

    def _build_ops(self, key):
        B, n = self.batch, len(self.dilations)
        p = functools.partial
        if self.step_fused and self.kernel != "chain":   # x_0 and the clock; the end kernel before read x_{t-d}
            ops = [p(step_kernels.start_triton, self._ring, self._no_shifts, 0,
                     step_kernels.StartInputs(self._table, self.cur_id, self._x[0], clock=self._clock))]
        else:
            ops = [p(torch.add, self._offsets, self._clock, out=self._rows),
                   p(torch.remainder, self._rows, self._period, out=self._rows),
                   p(self._rows.add_, self._base),
                   p(self._clock.add_, 1)]
        if self.kernel == "chain":
            ops.append(p(wavenet_chain.chain_triton, self._ring, self._rows[0], self._table, self.cur_id,
                         self._chain, self._x, self._z))
        else:
            if not self.step_fused:
                ops += [p(torch.index_select, self._ring, 0, self._rows[0], out=self._old),
                        p(torch.index_select, self._table, 0, self.cur_id, out=self._x[0])]
            ops += self._layer_ops(n)
        if self.step_fused and self.kernel != "chain":   # x_t into the ring, the next step's x_{t-d} from it
            ops.append(p(step_kernels.wavenet_end_triton, self._ring, self._x, self._old, self._clock,
                         self._period[0], self._base[0]))
        else:
            ops.append(p(self._ring.index_copy_, 0, self._rows[1], self._x))
        ops += self._linear("skip", [(self._z.view(B, -1), self._skip_w)], None, "relu", self._skip.unsqueeze(1))
        ops += self._linear("end1", [(self._skip, self._end1_w)], self._end1_b, "relu", self._h.unsqueeze(1))
        ops += self._head(key, [(self._h, self._head_w)], self._head_b)
        return ops, n

    def _layer_ops(self, n: int):
        """The dilated layers one product and one activation at a time (every kernel but "chain")."""
        ops = []
        for j, (w_old, w_now) in enumerate(self._dil_w):
            ops += self._linear("dilated", [(self._old[j], w_old), (self._x[j], w_now)], self._dil_b[j], "gate",
                                self._z[:, j:j + 1, :-1])
            if j < n - 1:   # x_{j+1} = x_j + z_j W_res + b_res (the last layer's residual output is unused, as
                            # officially)
                ops += self._linear("residual", [(self._z[:, j], self._res_w[j])], None, "none",
                                    self._x[j + 1].unsqueeze(1), self._x[j].unsqueeze(1))
        return ops

    def _persistent(self):
        return [self._ring, self._clock, self._z, self._old]
