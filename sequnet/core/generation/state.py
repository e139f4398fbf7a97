"""What every cached-inference state shares: the step and sampling driver, CUDA graphs and the counters.

A state holds everything one generation needs between steps (the windows of every layer, the clock, the newest
input id and the latest logits) as preallocated tensors. A step is a fixed list of tensor operations that
read and write only those tensors: ``ops(key)``, where ``key`` names the step's update pattern (for the
Seq-U-Net, which levels update this step). Running the list is the eager path; capturing it once per key in a
CUDA graph is the graph path. Both run the same operations, so they give identical results.
"""
from __future__ import annotations

import functools
import warnings
from collections.abc import Callable, Hashable

import torch
import torch.nn as nn

from sequnet.core.generation import kernels, step_kernels
from sequnet.core.models.layers import TokenModel
from sequnet.core.triton_guard import start_in_head, use_step_kernels

Op = Callable[[], object]


class InferenceState:
    """Cached step-wise inference for one model and one batch of sequences.

    After construction (the "save" pass over the prime), ``logits`` (batch, classes) predict the element after
    the prime. ``step(ids)`` feeds one element per sequence and returns the logits for the next one;
    ``generate(n)`` samples n elements. The counters say how much work the steps did: ``steps`` elements fed,
    ``level_counts[i]`` steps that updated level i, ``layer_updates`` layer evaluations in all.
    """

    def __init__(self, model: nn.Module, batch: int, dtype: torch.dtype | None, levels: int, kernel: str = "auto"):
        param = next(model.parameters())
        self.device = param.device
        self.dtype = dtype or param.dtype
        self.batch = batch
        self.classes = model.vocab if isinstance(model, TokenModel) else model.classes
        self.steps = 0
        self.level_counts = [0] * levels
        self.layer_updates = 0
        self.cur_id = torch.zeros(batch, dtype=torch.long, device=self.device)
        self.logits = torch.zeros(batch, self.classes, dtype=self.dtype, device=self.device)
        # fused activation kernel; split-K GEMV for the products; or one fused kernel per layer
        self.kernel = kernels.resolved_kernel(kernel, self.device, self.dtype, batch)
        self.fused, self.gemv, self.rowdot = kernels.KERNELS[self.kernel]
        self._act = kernels.activate_triton if self.fused else kernels.activate_torch
        # the step's bookkeeping in Triton launches (step_kernels), unless SEQUNET_STEP_KERNELS=0
        self.step_fused = self.fused and use_step_kernels()
        # inside a multi-step graph, each step's start in the head kernel before it (``_chunk_ops``)
        self.start_in_head = self.step_fused and start_in_head(self.dtype)
        self._pre: dict[Hashable, torch.Tensor] = {}
        self._heads: dict[Hashable, tuple] = {}     # per pattern: the head's inputs (see _head)
        self._plans: dict[Hashable, tuple[list[Op], int]] = {}
        self._graphs: dict[bool, dict[Hashable, torch.cuda.CUDAGraph]] = {}
        noise_dtype = torch.promote_types(self.dtype, torch.float32)
        self._noise = torch.zeros(batch, self.classes, dtype=noise_dtype, device=self.device)
        self._noisy = torch.zeros_like(self._noise)
        self._pending = False      # the last sampled id has not been fed yet
        self._pool = None          # the CUDA graphs' shared memory pool

    # -- what a model-specific state provides --------------------------------------------------------------
    def _build_ops(self, key: Hashable) -> tuple[list[Op], int]:
        """The operations of one step with update pattern ``key``, and the number of layers they evaluate."""
        raise NotImplementedError

    def _next_key(self) -> Hashable:
        """The update pattern of the next step."""
        raise NotImplementedError

    def _count_levels(self, key: Hashable) -> None:
        raise NotImplementedError

    def keys(self) -> list[Hashable]:
        """Every update pattern a step can have (one CUDA graph each)."""
        raise NotImplementedError

    @property
    def period(self) -> int:
        """Steps after which the sequence of update patterns repeats: ``period + CHUNK`` steps meet every
        multi-step graph ``generate`` captures, so a benchmark that warms up that long times no capture."""
        raise NotImplementedError

    def _persistent(self) -> list[torch.Tensor]:
        """Tensors that carry information from one step to the next (restored after the graph warm-up)."""
        raise NotImplementedError

    def _linear(self, name: Hashable, parts: list[tuple[torch.Tensor, torch.Tensor]], bias: torch.Tensor | None,
                act: str, out: torch.Tensor, identity: torch.Tensor | None = None, rows: int = 1,
                relu_x: bool = False) -> list[Op]:
        """Operations for out = act(relu?(x) @ W + bias) (+ identity), with x @ W = sum_p x_p @ W_p and ``out`` of
        shape (batch, rows, c); the products' scratch tensor is kept per ``name``, shared by all patterns."""
        if self.rowdot:
            return [functools.partial(kernels.rowdot_triton, parts, bias, act, identity, out, relu_x)]
        ops = []
        if relu_x and not self.gemv:
            x, w = parts[0]
            relu = self._pre.setdefault((name, "relu"), torch.empty_like(x))
            ops.append(functools.partial(torch.clamp_min, x, 0, out=relu))
            parts, relu_x = [(relu, w)], False
        mm_bias = None if self.fused or bias is None else bias.repeat(rows)
        mm_ops, pre = kernels.matmul(parts, mm_bias, self.gemv, self._pre.get(name), relu_x)
        ops += mm_ops
        self._pre[name] = pre
        pre = pre.view(*pre.shape[:-1], rows, -1)
        ops.append(functools.partial(self._act, act, pre, bias if self.fused else None, identity, out))
        return ops

    def _head(self, key: Hashable, parts: list[tuple[torch.Tensor, torch.Tensor]], bias: torch.Tensor,
              relu_x: bool = False) -> list[Op]:
        """The head's operations, logits = relu?(x) @ W + bias, remembered per pattern so that a sampled step can
        swap the last of them for a kernel that also samples (:meth:`_sampled_ops`)."""
        self._heads[key] = (parts, bias, relu_x)
        return self._linear("head", parts, bias, "none", self.logits.unsqueeze(1), relu_x=relu_x)

    def _head_samples(self) -> bool:
        return self.step_fused and self.classes <= kernels.HEAD_SAMPLE_MAX_CLASSES

    def _sampled_ops(self, key: Hashable, greedy: bool, noise: torch.Tensor | None = None,
                     record: torch.Tensor | None = None, next_start: tuple | None = None) -> list[Op]:
        """A sampled step: ``ops(key)``, then ``_sample_ops``. With the step kernels the head's last kernel samples
        too where it can (rowdot, or the activation after split-K or cuBLAS; up to
        ``kernels.HEAD_SAMPLE_MAX_CLASSES`` classes): one launch fewer, the same ids (``step_kernels.sample_rows``
        reads the logits as stored). ``next_start``: the arguments of the next step's start, which that kernel
        then runs too (``_chunk_ops``)."""
        ops = self.ops(key)
        if not self._head_samples():
            assert next_start is None, "only a head that samples runs the next step's start"
            return ops + self._sample_ops(greedy, noise, record)
        parts, bias, relu_x = self._heads[key]
        noise = None if greedy else (self._noise if noise is None else noise)
        sample, logits = (noise, self.cur_id, record), self.logits.unsqueeze(1)
        if self.rowdot:
            if ("head", "count") not in self._pre:      # allocated once: eager generation builds a step per step
                self._pre["head", "count"] = torch.zeros(self.batch, dtype=torch.int32, device=self.device)
            head = functools.partial(kernels.rowdot_triton, parts, bias, "none", None, logits, relu_x, sample,
                                     self._pre["head", "count"], next_start)
        else:           # the products wrote the head's partial sums (or its product) into its scratch tensor
            pre = self._pre["head"]
            head = functools.partial(kernels.activate_triton, "none", pre.view(*pre.shape[:-1], 1, -1), bias, None,
                                     logits, sample, next_start)
        return ops[:-1] + [head]

    def _weight(self, w: torch.Tensor) -> torch.Tensor:
        """A (k, n) weight matrix in this state's precision and in the layout its products read: (k, n) for
        torch/cuBLAS and the split-K GEMV, (n, k) for the fused small-batch kernel."""
        w = w.detach().to(self.device, self.dtype)
        return (w.t() if self.rowdot else w).contiguous()

    # -- counters ----------------------------------------------------------------------------------------------
    @property
    def mean_levels_per_step(self) -> float:
        """Levels updated per step on average (the paper's bound for the Seq-U-Net: at most 2)."""
        return sum(self.level_counts) / max(self.steps, 1)

    @property
    def mean_layers_per_step(self) -> float:
        return self.layer_updates / max(self.steps, 1)

    def ops_per_step(self) -> float:
        """Operations (each one kernel on a GPU) a sampled step of a multi-step graph runs (sampling included, and
        the copy of the sample into the graph's record where sampling does not write it), averaged over one period
        of update patterns: at batch 1 a step's time is about this count times the cost of one small kernel."""
        keys = self._keys_ahead(self.period)
        # the record only counted here, never run
        ops = sum(len(self._sampled_ops(key, False, record=self.cur_id)) for key in keys) / len(keys)
        return ops - ((self.CHUNK - 1) / self.CHUNK if self._folds_start() else 0)   # starts run by heads

    # -- stepping ----------------------------------------------------------------------------------------------
    def ops(self, key: Hashable) -> list[Op]:
        if key not in self._plans:
            self._plans[key] = self._build_ops(key)
        return self._plans[key][0]

    def _advance(self, key: Hashable) -> None:
        self.steps += 1
        self._count_levels(key)
        self.layer_updates += self._plans[key][1]

    @torch.no_grad()
    def step(self, ids: torch.Tensor) -> torch.Tensor:
        """Feed one element per sequence, ``ids`` of shape (batch,); return the logits for the next element."""
        self.cur_id.copy_(torch.as_tensor(ids).reshape(self.batch))
        key = self._next_key()
        for op in self.ops(key):
            op()
        self._advance(key)
        self._pending = False
        return self.logits.clone()

    def _sample_ops(self, greedy: bool, noise: torch.Tensor | None = None,
                    record: torch.Tensor | None = None) -> list[Op]:
        """Sample ``cur_id`` from ``logits`` plus ``noise`` (default: the state's noise tensor), and copy it into
        ``record`` (batch,) when given."""
        noise = self._noise if noise is None else noise
        if self.fused and self.classes <= 1 << 15:
            sample = [functools.partial(step_kernels.sample_triton, self.logits, None if greedy else noise,
                                        self.cur_id, record if self.step_fused else None)]
            return sample + ([functools.partial(record.copy_, self.cur_id)]
                             if record is not None and not self.step_fused else [])
        if greedy:
            ops = [functools.partial(torch.argmax, self.logits, -1, out=self.cur_id)]
        else:
            ops = [functools.partial(torch.add, self.logits, noise, out=self._noisy),
                   functools.partial(torch.argmax, self._noisy, -1, out=self.cur_id)]
        return ops + ([functools.partial(record.copy_, self.cur_id)] if record is not None else [])

    def _keys_ahead(self, m: int) -> tuple[Hashable, ...]:
        """The update patterns of the next ``m`` steps (``_next_key`` reads only the step counter)."""
        steps, keys = self.steps, []
        try:
            for _ in range(m):
                keys.append(self._next_key())
                self.steps += 1
        finally:
            self.steps = steps
        return tuple(keys)

    def _folds_start(self) -> bool:
        """Whether ``_chunk_ops`` runs each step's start in the head kernel of the step before: with
        ``start_in_head``, where the head samples and a step opens with ``step_kernels.start_triton`` over ids."""
        if not (self.start_in_head and self._head_samples()):
            return False
        first = self.ops(self.keys()[0])[0]
        return first.func is step_kernels.start_triton and first.args[3] is not None

    def _chunk_ops(self, keys: tuple[Hashable, ...], greedy: bool) -> list[Op]:
        """``len(keys)`` whole steps in a row: each feeds ``cur_id``, samples the next one with its own slice of
        the chunk's noise and writes it to its column of ``_chunk_ids``. With ``_folds_start`` every step but the
        first has its start run by the head kernel of the step before."""
        fold, ops = self._folds_start(), []
        for j, key in enumerate(keys):
            nxt = self.ops(keys[j + 1])[0].args if fold and j + 1 < len(keys) else None
            step = self._sampled_ops(key, greedy, self._chunk_noise[j], self._chunk_ids[:, j], nxt)
            ops += step[1:] if fold and j > 0 else step
        return ops

    @torch.no_grad()
    def generate(self, n: int, temperature: float = 1.0, greedy: bool = False,
                 generator: torch.Generator | None = None, progress: bool = True,
                 cuda_graphs: bool = False) -> torch.Tensor:
        """Sample ``n`` elements per sequence, continuing from the state; returns ids of shape (batch, n).

        Sampling is Gumbel-max, ``argmax(logits / temperature + G)``, with the Gumbel noise drawn ahead in chunks
        from ``generator`` (on any device), so a step needs no host synchronisation and the eager and graph
        paths consume the same random numbers. ``greedy=True`` takes the argmax.

        With CUDA graphs, runs of ``CHUNK`` steps that start at a multiple of ``CHUNK`` replay one graph for the
        whole run (one per sequence of update patterns: a few for a Seq-U-Net, one for WaveNet): at batch 1 a
        step's kernels take a few microseconds each, so launching every step from Python would cost about as
        much as the step itself. The steps before the first such run and after the last replay one graph each.
        """
        if not greedy and not temperature > 0:
            raise ValueError(f"temperature must be positive (got {temperature}); use greedy=True for the argmax")
        out = torch.empty(self.batch, n, dtype=torch.long, device=self.device)
        graphs = self._graphs_for(greedy) if self._want_graphs(cuda_graphs) else None
        eager_sample = self._sample_ops(greedy)
        noise = None if greedy else _NoiseStream(self, n, temperature, generator)
        bar = _progress(n, progress)
        s = 0
        while s < n:
            if (graphs is not None and self._pending and self.steps % self.CHUNK == 0
                    and n - s >= self.CHUNK):
                keys = self._keys_ahead(self.CHUNK)
                graph = self._chunk_graph(keys, greedy)
                if noise is not None:
                    self._chunk_noise.copy_(noise.take(self.CHUNK))
                graph.replay()
                for key in keys:
                    self._advance(key)
                out[:, s:s + self.CHUNK].copy_(self._chunk_ids)
                done = self.CHUNK
            else:
                if noise is not None:
                    self._noise.copy_(noise.take(1)[0])
                if self._pending:          # feed the previous sample, then sample from the new logits
                    key = self._next_key()
                    if graphs is not None:
                        graphs[key].replay()
                    else:
                        for op in self._sampled_ops(key, greedy):
                            op()
                    self._advance(key)
                else:                      # the logits are fresh (after the save pass or a teacher-forced step)
                    for op in eager_sample:
                        op()
                self._pending = True
                out[:, s].copy_(self.cur_id)
                done = 1
            if bar is not None:
                bar.update(done)
            s += done
        if bar is not None:
            bar.close()
        return out

    # -- CUDA graphs -------------------------------------------------------------------------------------------
    CHUNK = 16                          # steps per multi-step graph

    def _want_graphs(self, cuda_graphs: bool) -> bool:
        if cuda_graphs and self.device.type != "cuda":
            warnings.warn("cuda_graphs=True needs a model on a CUDA device; generating eagerly instead",
                          RuntimeWarning, stacklevel=3)
            return False
        return bool(cuda_graphs)

    def _graphs_for(self, greedy: bool) -> dict[Hashable, torch.cuda.CUDAGraph]:
        """One graph per update pattern, each a whole step: the layer updates, the head and the sampling."""
        if greedy not in self._graphs:
            self._graphs[greedy] = self._capture_graphs({key: self._sampled_ops(key, greedy) for key in self.keys()})
        return self._graphs[greedy]

    def _chunk_graph(self, keys: tuple[Hashable, ...], greedy: bool) -> torch.cuda.CUDAGraph:
        if not hasattr(self, "_chunk_ids"):
            self._chunk_ids = torch.zeros(self.batch, self.CHUNK, dtype=torch.long, device=self.device)
            self._chunk_noise = torch.zeros(self.CHUNK, *self._noise.shape, dtype=self._noise.dtype,
                                            device=self.device)
        graphs = self._graphs.setdefault(("chunk", greedy), {})
        if keys not in graphs:
            graphs[keys] = self._capture_graphs({keys: self._chunk_ops(keys, greedy)})[keys]
        return graphs[keys]

    def _capture_graphs(self, plans: dict[Hashable, list[Op]]) -> dict[Hashable, torch.cuda.CUDAGraph]:
        """Capture each plan in a CUDA graph, sharing one memory pool.

        Capturing needs a warm-up run of every plan (kernel compilation, cuBLAS workspaces); it mutates the
        state, so the carried tensors are saved before and restored after. The graphs replay into the same
        tensors, whose addresses therefore never change.
        """
        persistent = self._persistent() + [self.cur_id, self.logits, self._noise]
        saved = [t.clone() for t in persistent]
        side = torch.cuda.Stream(self.device)
        side.wait_stream(torch.cuda.current_stream(self.device))
        with torch.cuda.stream(side):
            for plan in plans.values():
                for op in plan:
                    op()
        torch.cuda.current_stream(self.device).wait_stream(side)
        if self._pool is None:
            self._pool = torch.cuda.graph_pool_handle()
        graphs = {}
        for key, plan in plans.items():
            graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(graph, pool=self._pool):
                for op in plan:
                    op()
            graphs[key] = graph
        for t, s in zip(persistent, saved):
            t.copy_(s)
        torch.cuda.synchronize(self.device)
        return graphs


class _NoiseStream:
    """Gumbel noise times the temperature, drawn in chunks of at most 2^22 numbers."""

    def __init__(self, state: InferenceState, n: int, temperature: float, generator: torch.Generator | None):
        self.state, self.n, self.temperature, self.generator = state, n, temperature, generator
        self.chunk_len = max(1, min(n, (1 << 22) // (state.batch * state.classes)))
        self.pos, self.chunk = 0, None

    def take(self, m: int) -> torch.Tensor:
        """The next ``m`` draws, (m, batch, classes): a view of the current chunk unless ``m`` crosses its end."""
        parts = []
        while m > 0:
            j = self.pos % self.chunk_len
            if j == 0:
                self._draw(min(self.chunk_len, self.n - self.pos))
            k = min(m, self.chunk.shape[0] - j)
            parts.append(self.chunk[j:j + k])
            self.pos, m = self.pos + k, m - k
        return parts[0] if len(parts) == 1 else torch.cat(parts)

    def _draw(self, m: int) -> None:
        st = self.state
        device = self.generator.device if self.generator is not None else st.device
        e = torch.empty(m, st.batch, st.classes, device=device).exponential_(generator=self.generator)
        self.chunk = e.log_().mul_(-self.temperature).to(st.device, st._noise.dtype)


def _progress(n: int, enabled: bool):
    if not enabled or n < 2:
        return None
    from tqdm.auto import tqdm
    return tqdm(total=n, unit="step", desc="generating", leave=False)
