"""Cached inference for the WaveNet baseline: every layer runs at every step.

Layer j (dilation d) needs its input d steps ago and now. It keeps a ring of d + 1 samples (batch, d + 1, C):
the sample of time t lives in slot t mod (d + 1), so the one of time t - d is in slot (t + 1) mod (d + 1). The
slots are device tensors computed from a device-side clock, so a step touches fixed tensors (one CUDA graph for
every step) and never copies a window.

Per layer: write x_t into the ring, gather (x_{t-d}, x_t), one matrix product with the fused filter/gate
weights, the gate, then the residual 1x1 in place on x. The skip 1x1 convolutions of all layers are one matrix
product at the end: the gated outputs z_j are kept side by side, each with a constant 1 appended so the skip and
residual biases ride along in the products.
"""
from __future__ import annotations

import functools

import torch
import torch.nn as nn

from sequnet.core.generation.state import InferenceState, embedding_matrix, fold_head, save_pass
from sequnet.core.models.wavenet import WaveNet


class WaveNetState(InferenceState):
    def __init__(self, model: nn.Module, window: torch.Tensor, dtype: torch.dtype | None = None):
        body: WaveNet = model.body
        cfg = body.config
        if cfg.kernel_size != 2:
            raise NotImplementedError("cached WaveNet generation supports kernel size 2 (the paper's WaveNet)")
        super().__init__(model, window.shape[0], dtype, levels=1)
        B, C, n = self.batch, cfg.residual_channels, len(body.layers)
        dev, dt = self.device, self.dtype
        cast = lambda t: t.detach().to(dev, dt).contiguous()   # noqa: E731

        self.dilations = [layer.dilation for layer in body.layers]
        distinct = sorted(set(self.dilations))
        self._row = [distinct.index(d) for d in self.dilations]
        d = torch.tensor(distinct, device=dev)[:, None]
        self._period = d + 1                                            # ring lengths
        self._offsets = torch.tensor([[1, 0]], device=dev).expand(len(distinct), 2).contiguous()
        self._clock = torch.zeros((), dtype=torch.long, device=dev)     # t: steps since the save pass
        self._tmp = torch.zeros(len(distinct), 2, dtype=torch.long, device=dev)
        self._slots = torch.zeros(len(distinct), 2, dtype=torch.long, device=dev)  # [(t+1) % (d+1), t % (d+1)]

        # Start conv (1x1 on one-hot/embedded ids) as a table.
        start_w = body.start.weight.detach().double()[:, :, 0]
        self._table = cast(embedding_matrix(model) @ start_w.t() + body.start.bias.detach().double())
        self._x = torch.zeros(B, C, dtype=dt, device=dev)
        self._rings = [torch.zeros(B, dl + 1, C, dtype=dt, device=dev) for dl in self.dilations]
        self._pair = torch.zeros(B, 2, C, dtype=dt, device=dev)
        self._z = torch.zeros(B, n, C + 1, dtype=dt, device=dev)
        self._z[:, :, C] = 1

        skip = cfg.skip_channels
        self._dil_w, self._dil_b, self._res_w = [], [], []
        skip_rows = []
        for layer in body.layers:
            w = layer.dil_conv.weight.detach().double()                 # (2C, C, 2): tap 0 = t - d, tap 1 = t
            self._dil_w.append(self._weight(w.permute(2, 1, 0).reshape(2 * C, 2 * C)))
            self._dil_b.append(cast(layer.dil_conv.bias))
            ow, ob = layer.out_conv.weight.detach().double()[:, :, 0], layer.out_conv.bias.detach().double()
            aug = torch.cat([ow, ob[:, None]], dim=1)                   # (skip + C, C + 1)
            skip_rows.append(aug[:skip])
            self._res_w.append(self._weight(aug[skip:].t()))
        self._skip_w = self._weight(torch.cat(skip_rows, dim=1).t())    # (n (C + 1), skip)
        self._skip = torch.zeros(B, skip, dtype=dt, device=dev)
        self._end1_w, self._end1_b = self._weight(body.end1.weight[:, :, 0].t()), cast(body.end1.bias)
        self._h = torch.zeros(B, cfg.end_channels, dtype=dt, device=dev)
        hw, hb = fold_head(model, body.end2.weight[:, :, 0], body.end2.bias)
        self._head_w, self._head_b = self._weight(hw.t()), cast(hb)

        hooks = {layer: functools.partial(self._capture, j) for j, layer in enumerate(body.layers)}
        self.logits.copy_(save_pass(model, window, hooks))

    def _capture(self, j, module, args, kwargs) -> None:
        """Ring slots for times -d..-1 (the newest prime sample is time -1)."""
        x, d = args[0], self.dilations[j]
        slots = torch.tensor([(-d + r) % (d + 1) for r in range(d)], device=self.device)
        self._rings[j][:, slots] = x[..., -d:].transpose(1, 2).to(self.dtype)

    def keys(self):
        return [0]

    def _next_key(self):
        return 0

    def _count_levels(self, key) -> None:
        self.level_counts[0] += 1

    def _build_ops(self, key):
        B = self.batch
        p = functools.partial
        ops = [p(torch.add, self._offsets, self._clock, out=self._tmp),
               p(torch.remainder, self._tmp, self._period, out=self._slots),
               p(self._clock.add_, 1),
               p(torch.index_select, self._table, 0, self.cur_id, out=self._x)]
        x3 = self._x.unsqueeze(1)
        last = len(self._rings) - 1
        for j, ring in enumerate(self._rings):
            slots = self._slots[self._row[j]]
            ops.append(p(ring.index_copy_, 1, slots[1:], x3))
            ops.append(p(torch.index_select, ring, 1, slots, out=self._pair))
            ops += self._linear("dilated", [(self._pair.view(B, -1), self._dil_w[j])], self._dil_b[j], "gate",
                                self._z[:, j:j + 1, :-1])
            if j < last:   # x += z_j W_res + b_res (the last layer's residual output is unused, as officially)
                ops += self._linear("residual", [(self._z[:, j], self._res_w[j])], None, "none", x3, x3)
        ops += self._linear("skip", [(self._z.view(B, -1), self._skip_w)], None, "relu", self._skip.unsqueeze(1))
        ops += self._linear("end1", [(self._skip, self._end1_w)], self._end1_b, "relu", self._h.unsqueeze(1))
        ops += self._linear("head", [(self._h, self._head_w)], self._head_b, "none", self.logits.unsqueeze(1))
        return ops, len(self._rings)

    def _persistent(self):
        return self._rings + [self._clock, self._z]
