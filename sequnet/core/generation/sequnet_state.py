"""Cached inference for the Seq-U-Nets: every level runs at its own rate (paper section 3.1, "Fast inference",
and section 4.2).

Time and phase. The save pass runs the model's normal forward over an allowed window; every allowed window ends
on a cycle boundary, where every level has a sample aligned with the newest input. Step s (s = 1, 2, ...) feeds
one element; level i produces a sample exactly when 2^i divides s, so the step updates levels 0..u with
u = the number of trailing zero bits of s mod 2^(L-1) (u = L-1 when s is a multiple of 2^(L-1)). On average that
is sum_i 2^-i < 2 levels per step, independent of L.

Streams and windows. Every layer input is a *stream* at its level's rate (the in-conv output, each down layer's
output, the upsampled stream, ...). A stream keeps its newest k samples as a (batch, k, channels) window: a
contiguous block, so a layer update is one matrix product of the flattened window with the layer's weights,
folded at construction into a (k * channels, outputs) matrix. The windows of one level (of equal width) are one
tensor ``(2, streams, batch, k, channels)`` holding two windows per stream: a ring of two windows. The n-th
update of a level writes window n mod 2: one copy per level moves the k-1 samples that stay into it, and each
layer writes its new sample straight into the last slot of its output stream. Which window a level uses at a
step depends only on the update pattern (for a level below u, n is even; for level u, odd; only the top level
alternates between cycles), so the tensors a step touches are fixed per pattern: L + 1 patterns, one CUDA graph
each.

Transposed layers. When level i+1 produces a coarse sample, the stride-2 transposed layer of level i yields two
fine samples from the coarse samples seen so far: the one aligned with the coarse sample (the kernel's even
taps) and the following one (its odd taps; the future fine sample at odd phase depends on no future coarse
input). Both are written at once, the second into the slot the next level-i update will use: that is the
official code's ``next_output``.

The first layer's input is an embedding (one-hot ids for audio), so its convolution is folded into a table:
each new id adds its row (one k-tap contribution per future output) to k running partial sums.

Piano rolls (the zero-padded music Seq-U-Net). Its input is a frame of 88 keys, not an id, so the first layer is
an ordinary layer over a window of frames, and the save pass runs over the whole prime: the model front-pads its
input to 2^(L-1) m + 1 frames, which puts the newest frame on a cycle boundary, as an allowed window does in valid
mode. The convolutions' own zero padding needs nothing: a window slot older than the sequence holds zeros. Step s
then equals the output aligned with it of one forward over the prime and the s frames after it, extended to a
cycle boundary (whose front padding is the prime's).
"""
from __future__ import annotations

import functools
from collections import defaultdict
from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

from sequnet.core.generation import step_kernels
from sequnet.core.generation.priming import embedding_matrix, fold_head, save_pass
from sequnet.core.generation.state import InferenceState
from sequnet.core.models.sequnet import SeqUNet
from sequnet.core.models.sequnet_res import ResSeqUNet


class _Windows:
    """The ring of two k-sample windows for every stream, one tensor per (level, width)."""

    def __init__(self, k: int, batch: int, dtype: torch.dtype, device: torch.device):
        self.k, self.batch, self.dtype, self.device = k, batch, dtype, device
        self.spec: dict[str, tuple[int, int]] = {}       # stream -> (level, channels)

    def add(self, name: str, level: int, channels: int) -> str:
        assert name not in self.spec, name
        self.spec[name] = (level, channels)
        return name

    def build(self) -> None:
        """Every group is a view of one buffer, ``flat``, so that one kernel can shift the windows of every level a
        step updates (``shift_rows``)."""
        groups = defaultdict(list)
        for name, (level, c) in self.spec.items():
            groups[level, c].append(name)
        sizes = {key: 2 * len(names) * self.batch * self.k * key[1] for key, names in groups.items()}
        self.flat = torch.zeros(sum(sizes.values()), dtype=self.dtype, device=self.device)
        self.groups, self.offsets, self.where = {}, {}, {}
        offset = 0
        for (level, c), names in groups.items():
            t = self.flat[offset:offset + sizes[level, c]].view(2, len(names), self.batch, self.k, c)
            self.groups[level, c], self.offsets[level, c] = t, offset
            offset += sizes[level, c]
            for i, name in enumerate(names):
                self.where[name] = (t, i)

    def level(self, name: str) -> int:
        return self.spec[name][0]

    def window(self, name: str, parity: int, last: int | None = None) -> torch.Tensor:
        """(batch, last * channels) view of the newest ``last`` samples (oldest first)."""
        t, i = self.where[name]
        last = last or self.k
        return t[parity, i, :, self.k - last:].flatten(1)

    def newest(self, name: str, parity: int) -> torch.Tensor:
        t, i = self.where[name]
        return t[parity, i, :, self.k - 1]

    def both_newest(self, name: str) -> torch.Tensor:
        """(batch, 2, channels): the newest slot of window 0 and of window 1."""
        t, i = self.where[name]
        return t[:, i, :, self.k - 1].transpose(0, 1)

    def shift_ops(self, level: int, parity: int) -> list:
        """Make window ``parity`` of every stream of ``level`` the other window advanced by one sample."""
        return [functools.partial(t[parity, :, :, :-1].copy_, t[1 - parity, :, :, 1:])
                for (lv, _), t in self.groups.items() if lv == level and self.k > 1]

    def shift_rows(self, level: int, parity: int) -> list[list[int]]:
        """``shift_ops`` as copies within ``flat``: per group, (source, destination, runs, run length, run stride)
        in elements. Window p of a group is (streams, batch, k, channels); each (stream, sequence) is a run whose
        slots 0..k-2 take slots 1..k-1 of the other window."""
        rows = []
        for (lv, c), t in self.groups.items():
            if lv == level and self.k > 1:
                half, off = t[0].numel(), self.offsets[lv, c]
                rows.append([off + (1 - parity) * half + c, off + parity * half, t.shape[1] * self.batch,
                             (self.k - 1) * c, self.k * c])
        return rows

    def fill(self, name: str, x: torch.Tensor) -> None:
        """Put the newest samples of ``x`` (batch, channels, time) into window 0 (zeros where x is short)."""
        t, i = self.where[name]
        n = min(self.k, x.shape[-1])
        t[0, i, :, self.k - n:] = x[..., x.shape[-1] - n:].transpose(1, 2).to(self.dtype)

    def tensors(self) -> list[torch.Tensor]:
        return list(self.groups.values())


@dataclass
class _Layer:
    """One conv layer in step form: out = act(sum_p window_p @ W_p + bias) (+ the identity's newest sample)."""
    parts: list[tuple[str, torch.Tensor, int]]     # (input stream, W^T of shape (last * channels, n), last)
    bias: torch.Tensor                              # (n / rows,)
    act: str                                        # "gate" | "leaky"
    out: str                                        # output stream
    identity: str | None = None                     # stream whose newest sample is added (residual layers)
    rows: int = 1                                   # 2 for a transposed layer: (aligned, next) fine samples


def _conv_matrix(w: torch.Tensor, c0: int, c1: int) -> torch.Tensor:
    """Conv1d weight (n, c_in, k), input channels c0:c1 -> (k * (c1 - c0), n) for a (time, channel) window."""
    return w.detach().double()[:, c0:c1, :].permute(2, 1, 0).reshape(-1, w.shape[0])


def _transposed_matrix(w: torch.Tensor) -> torch.Tensor:
    """ConvTranspose1d weight (c_in, n, k), stride 2 -> (ceil(k/2) * c_in, 2n).

    Fine output 2m + j receives coarse sample m through tap j. The fine sample aligned with the newest coarse
    sample N-1 is 2(N-1) = 2(N-1-q) + 2q: even taps over the last ceil(k/2) coarse samples; the next fine
    sample 2(N-1)+1 uses the odd taps 2q+1 over the same samples, none of them in the future.
    """
    w = w.detach().double()
    c_in, n, k = w.shape
    kc = (k + 1) // 2
    mat = torch.zeros(kc, c_in, 2, n, dtype=w.dtype, device=w.device)
    for r in range(kc):                     # window slot r (oldest first) holds coarse sample N-1-q
        q = kc - 1 - r
        mat[r, :, 0] = w[:, :, 2 * q]
        if 2 * q + 1 < k:
            mat[r, :, 1] = w[:, :, 2 * q + 1]
    return mat.reshape(kc * c_in, 2 * n)


class SeqUNetState(InferenceState):
    """Step-wise inference for a residual Seq-U-Net (raw audio), a valid-mode base Seq-U-Net (language, ids) or a
    zero-padded base Seq-U-Net over piano rolls (music: ``window`` is a (batch, keys, T) roll, see
    ``sequnet.core.generation.rolls``)."""

    def __init__(self, model: nn.Module, window: torch.Tensor, dtype: torch.dtype | None = None,
                 kernel: str = "auto"):
        body = model.body
        self.residual = isinstance(body, ResSeqUNet)
        self.roll = window.dim() == 3
        if not self.residual and (not isinstance(body, SeqUNet) or body.config.padded != self.roll):
            raise NotImplementedError("step-wise generation supports the residual Seq-U-Net, the valid-mode base "
                                      "Seq-U-Net over ids and the zero-padded base Seq-U-Net over piano rolls")
        cfg = body.config
        self.L, self.k = cfg.levels, cfg.kernel_size
        self.cycle = 2 ** (self.L - 1)
        super().__init__(model, window.shape[0], dtype, self.L, kernel)
        if self.roll:       # the newest input frame, written into the first stream at each step
            self.cur_x = torch.zeros(self.batch, cfg.num_inputs, dtype=self.dtype, device=self.device)
        self.win = _Windows(self.k, self.batch, self.dtype, self.device)
        self.layers: dict[tuple, _Layer] = {}
        self._captures: dict[nn.Module, list[tuple[str, str, int, int]]] = defaultdict(list)
        if self.residual:
            self._describe_residual(model, body)
        else:
            self._describe_base(model, body)
        self.win.build()

        # The save pass: the model's own forward fills the windows through pre-hooks.
        hooks = {m: functools.partial(self._capture, caps) for m, caps in self._captures.items()}
        self.logits.copy_(save_pass(model, window, hooks))
        if not self.roll:
            self._init_input_sums(window)
        for i in range(self.L - 1):        # fill the "next" fine sample of every transposed layer
            for op in self._layer_ops(("trans", i), [0] * self.L):
                op()

    # -- description of the two architectures as streams and layers ------------------------------------------
    def _stream(self, module: nn.Module, arg: str, name: str, level: int, c: int, c0: int = 0) -> str:
        """Declare a stream filled, in the save pass, from channels c0:c0+c of ``module``'s input ``arg``."""
        self._captures[module].append((arg, name, c0, c0 + c))
        return self.win.add(name, level, c)

    def _describe_residual(self, model: nn.Module, body: ResSeqUNet) -> None:
        L, D, Fc = self.L, body.config.depth, body.config.features
        lin = lambda w, i, j: self._weight(_conv_matrix(w, i, j))   # noqa: E731
        # Level 0 input: the in-conv (no activation) as partial sums of embedded ids.
        self._input_layer(model, body.in_conv, act="none")
        for i in range(L):
            blocks = body.down[i] if i < L - 1 else body.bottleneck
            names = [self._stream(layer, "x", f"{i}.d{j}", i, Fc) for j, layer in enumerate(blocks[:D])]
            if i < L - 1:
                names.append(self._stream(blocks[D], "x", f"{i}.d{D}", i, Fc))
            else:
                names.append(self._stream(body.upconv[L - 2], "x", f"{i}.d{D}", i, Fc))
            for j, layer in enumerate(blocks[:D]):
                self.layers["down", i, j] = _Layer([(names[j], lin(layer.conv.weight, 0, Fc), self.k)],
                                                   self._cast(layer.conv.bias), "gate", names[j + 1], names[j])
        self._first_stream = "0.d0"
        for i in range(L - 1):
            layer = body.down[i][D]
            self.layers["stride", i] = _Layer([(f"{i}.d{D}", lin(layer.conv.weight, 0, Fc), self.k)],
                                              self._cast(layer.conv.bias), "gate", f"{i + 1}.d0", f"{i}.d{D}")
            up = self._stream(body.up[i][0], "cond", f"{i}.u", i, Fc)
            xs = [f"{i}.d{D}"] + [self._stream(body.up[i][j], "x", f"{i}.e{j}", i, Fc) for j in range(1, D)]
            top = body.out if i == 0 else body.upconv[i - 1]
            xs.append(self._stream(top, "x", f"{i}.e{D}", i, Fc))
            for j, layer in enumerate(body.up[i]):
                w = layer.conv.weight
                self.layers["up", i, j] = _Layer([(xs[j], lin(w, 0, Fc), self.k), (up, lin(w, Fc, 2 * Fc), self.k)],
                                                 self._cast(layer.conv.bias), "gate", xs[j + 1], xs[j])
            coarse = f"{i + 1}.d{D}" if i == L - 2 else f"{i + 1}.e{D}"
            t = body.upconv[i]
            self.layers["trans", i] = _Layer([(coarse, self._weight(_transposed_matrix(t.conv.weight)),
                                               (self.k + 1) // 2)], self._cast(t.conv.bias), "gate", up, coarse,
                                             rows=2)
        conv = body.out[1]
        self._head_stream, self._head_relu = f"0.e{D}", True
        hw, hb = fold_head(model, conv.weight[:, :, 0], conv.bias)
        self._head_w, self._head_b = self._weight(hw.t()), self._cast(hb)

    def _describe_base(self, model: nn.Module, body: SeqUNet) -> None:
        L, ch = self.L, body.config.channels
        lin = lambda w, i, j: self._weight(_conv_matrix(w, i, j))   # noqa: E731
        if not self.roll:   # ids: embedding and first conv folded into a table
            self._input_layer(model, body.down[0].conv1.conv, act="leaky")
        for i in range(L - 1):
            s = self._stream(body.down[i].conv2, "x", f"{i}.s", i, ch[i])
            if i > 0 or self.roll:
                c_in = ch[i - 1] if i > 0 else body.config.num_inputs
                a = self._stream(body.down[i].conv1, "x", f"{i}.a", i, c_in)
                c = body.down[i].conv1.conv
                self.layers["down", i, 0] = _Layer([(a, lin(c.weight, 0, c_in), self.k)],
                                                   self._cast(c.bias), "leaky", s)
        self._first_stream = "0.a" if self.roll else "0.s"
        a = self._stream(body.bottleneck, "x", f"{L - 1}.a", L - 1, ch[L - 2])
        b = self._stream(body.up[L - 2].upconv, "x", f"{L - 1}.b", L - 1, ch[L - 1])
        c = body.bottleneck.conv
        self.layers["down", L - 1, 0] = _Layer([(a, lin(c.weight, 0, ch[L - 2]), self.k)], self._cast(c.bias),
                                               "leaky", b)
        for i in range(L - 1):
            c = body.down[i].conv2.conv
            nxt = f"{i + 1}.a"
            self.layers["stride", i] = _Layer([(f"{i}.s", lin(c.weight, 0, ch[i]), self.k)], self._cast(c.bias),
                                              "leaky", nxt)
            up = self._stream(body.up[i].conv, "x", f"{i}.u", i, ch[i + 1])
            top = body.out if i == 0 else body.up[i - 1].upconv
            e = self._stream(top, "x", f"{i}.e", i, ch[i])
            c = body.up[i].conv.conv
            self.layers["up", i, 0] = _Layer([(up, lin(c.weight, 0, ch[i + 1]), self.k),
                                              (f"{i}.s", lin(c.weight, ch[i + 1], ch[i + 1] + ch[i]), self.k)],
                                             self._cast(c.bias), "leaky", e)
            coarse = b if i == L - 2 else f"{i + 1}.e"
            t = body.up[i].upconv.conv
            self.layers["trans", i] = _Layer([(coarse, self._weight(_transposed_matrix(t.weight)),
                                               (self.k + 1) // 2)], self._cast(t.bias), "leaky", up, rows=2)
        self._head_stream, self._head_relu = "0.e", False
        hw, hb = fold_head(model, body.out.weight[:, :, 0], body.out.bias)
        self._head_w, self._head_b = self._weight(hw.t()), self._cast(hb)

    def _input_layer(self, model: nn.Module, conv: nn.Conv1d, act: str) -> None:
        """Fold embedding and first convolution into a table: row ``id`` holds, for m = 0..k-1, the contribution
        of that id to the output m steps later (tap k-1-m), the bias folded into m = 0."""
        emb = embedding_matrix(model)                                        # (classes, c_in)
        w = conv.weight.detach().double()                                    # (c_out, c_in, k)
        table = torch.einsum("vc,ocm->vmo", emb, w.flip(-1))                 # (classes, k, c_out)
        table[:, 0] += conv.bias.detach().double()
        self._table = self._cast(table.flatten(1))
        self._input_act = act
        c_out = w.shape[0]
        self._acc = torch.zeros(2, self.batch, self.k + 1, c_out, dtype=self.dtype, device=self.device)
        self._gathered = torch.zeros(self.batch, self.k * c_out, dtype=self.dtype, device=self.device)

    def _init_input_sums(self, window: torch.Tensor) -> None:
        """Partial sums after the prime: output T-1+m has received the ids up to T-1 (taps k-1-m-r, r >= 0)."""
        rows = self._table.view(-1, self.k, self._acc.shape[-1])
        ids = window[:, -self.k:]
        for m in range(self.k):
            for r in range(self.k - m):             # the id r steps before the newest, m + r steps ahead
                self._acc[0, :, m] += rows[ids[:, self.k - 1 - r], m + r]
        self.win.newest(self._first_stream, 0).copy_(self._act_ref(self._acc[0, :, 0]))

    def _act_ref(self, x: torch.Tensor) -> torch.Tensor:
        return F.leaky_relu(x, 0.01) if self._input_act == "leaky" else x

    def _cast(self, t: torch.Tensor) -> torch.Tensor:
        return t.detach().to(self.device, self.dtype).contiguous()

    def _capture(self, caps, module, args, kwargs) -> None:
        for arg, name, c0, c1 in caps:
            x = args[0] if arg == "x" else kwargs.get("cond", args[1] if len(args) > 1 else None)
            self.win.fill(name, x[:, c0:c1])

    # -- the step ------------------------------------------------------------------------------------------------
    def keys(self):
        return [(u, 0) for u in range(self.L - 1)] + [(self.L - 1, 0), (self.L - 1, 1)]

    @property
    def period(self) -> int:
        return 2 * self.cycle       # the top level's update alternates between two patterns, cycle by cycle

    def _next_key(self):
        s = self.steps + 1
        c = s % self.cycle
        u = (c & -c).bit_length() - 1 if c else self.L - 1
        return u, (s // self.cycle) % 2 if u == self.L - 1 else 0

    def _count_levels(self, key) -> None:
        for i in range(key[0] + 1):
            self.level_counts[i] += 1

    def _parities(self, key) -> list[int]:
        """Which of its two windows each updated level writes: the parity of its update count."""
        u, top = key
        par = [0] * self.L
        par[u] = 1 if u < self.L - 1 else top
        return par

    def _build_ops(self, key):
        u = key[0]
        par = self._parities(key)
        ops = []
        q = par[0]
        first = self.win.newest(self._first_stream, q)
        # Triton: the shifts of every updated level and the input layer in one launch (with
        # SEQUNET_STEP_KERNELS=0 the shifts are torch copies, and the launch does the input layer only)
        rows = []
        for i in range(u + 1):
            if self.step_fused:
                rows += self.win.shift_rows(i, par[i])
            else:
                ops += self.win.shift_ops(i, par[i])
        inputs = None if self.roll or not self.fused else step_kernels.StartInputs(
            self._table, self.cur_id, first, self._acc[1 - q], self._acc[q], self._input_act == "leaky")
        if rows or inputs:
            ops.append(functools.partial(step_kernels.start_triton, self.win.flat,
                                         step_kernels.shift_table(rows, self.device), len(rows), inputs))
        if self.roll:
            ops.append(functools.partial(first.copy_, self.cur_x))
        elif not self.fused:
            ops.append(functools.partial(torch.index_select, self._table, 0, self.cur_id, out=self._gathered))
            ops.append(functools.partial(torch.add, self._acc[1 - q, :, 1:],
                                         self._gathered.view(self.batch, self.k, -1), out=self._acc[q, :, :self.k]))
            ops.append(functools.partial(self._act, self._input_act, self._acc[q, :, 0:1], None, None,
                                         first.unsqueeze(1)))
        names = []
        for i in range(u + 1):
            names += sorted(n for n in self.layers if n[0] == "down" and n[1] == i)
            if i < u:
                names.append(("stride", i))
        for i in reversed(range(min(u + 1, self.L - 1))):
            if i < u:
                names.append(("trans", i))
            names += sorted(n for n in self.layers if n[0] == "up" and n[1] == i)
        for name in names:
            ops += self._layer_ops(name, par)
        ops += self._head(key, [(self.win.newest(self._head_stream, q), self._head_w)], self._head_b,
                          relu_x=self._head_relu)
        return ops, len(names) + 1

    def _layer_ops(self, name, par) -> list:
        layer = self.layers[name]
        lv = self.win.level
        parts = [(self.win.window(stream, par[lv(stream)], last), w) for stream, w, last in layer.parts]
        if layer.rows == 2:
            assert par[lv(layer.out)] == 0, "a transposed layer runs at even updates of its level"
            out = self.win.both_newest(layer.out)
        else:
            out = self.win.newest(layer.out, par[lv(layer.out)]).unsqueeze(1)
        identity = None
        if layer.identity is not None:
            identity = self.win.newest(layer.identity, par[lv(layer.identity)]).unsqueeze(1)
        return self._linear(name, parts, layer.bias, layer.act, out, identity, layer.rows)

    def _persistent(self):
        return self.win.tensors() + ([] if self.roll else [self._acc])

    @torch.no_grad()
    def step_frame(self, frame: torch.Tensor) -> torch.Tensor:
        """Piano rolls: feed one frame per sequence, (batch, keys); return the logits for the next frame."""
        self.cur_x.copy_(frame)
        key = self._next_key()
        for op in self.ops(key):
            op()
        self._advance(key)
        return self.logits.clone()
