"""Lengths, receptive fields and activation counts, in closed form: the one home of these formulas
(``sequnet.analysis.complexity`` builds its named layer lists and measurements on them).

Notation as in the paper (sections 3 and 4): k = kernel size, L = number of levels, D = residual depth.
"RF" counts the input samples an output depends on, the aligned sample included; the paper quotes the
maximum RF minus one ("past samples"): 32748 for the piano Seq-U-Net, 32764 for WaveNet.

The Seq-U-Net RF is time-variant: it is periodic with period 2^(L-1) and lies between ``min`` and ``max``.
"""
from __future__ import annotations

import math
from dataclasses import dataclass


# --------------------------------------------------------------------------------------------------------------
# Base Seq-U-Net, valid convolutions (language models)

def sequnet_valid_lengths(n: int, levels: int, k: int) -> list[int] | None:
    """Every intermediate length of a valid-mode base Seq-U-Net fed ``n`` samples, or None if ``n`` is not allowed.

    Order: per down level [shortcut, strided], bottleneck, per up level [upsampled, conv]. A length is allowed
    when every stride-2 convolution sees an odd-offset input (so decimation keeps the newest sample) and every
    intermediate length is at least one.
    """
    out, shortcuts = [], []
    for _ in range(levels - 1):
        n -= k - 1
        shortcuts.append(n)
        if n < k or (n - k) % 2:
            return None
        n = (n - k) // 2 + 1
        out += [shortcuts[-1], n]
    n -= k - 1
    out.append(n)
    for s in reversed(shortcuts):
        up = 2 * n - k                     # transposed conv: 2(N-1)+k samples, cropped k-1 at each end
        n = up - (k - 1)
        if n < 1 or s < up:
            return None
        out += [up, n]
    return out if n >= 1 else None


def sequnet_valid_output_length(n: int, levels: int, k: int) -> int | None:
    lengths = sequnet_valid_lengths(n, levels, k)
    return None if lengths is None else lengths[-1]


def sequnet_valid_io(levels: int, k: int, target: int | None = None) -> tuple[int, int]:
    """(input, output) length of the smallest valid-mode Seq-U-Net whose output has at least ``target`` samples.

    The closed forms in the bottleneck output length b are
    O(b) = 2^(L-1) b - (2k-1)(2^(L-1) - 1) and I(b) = 2^(L-1)(b + k - 1) + (2k-3)(2^(L-1) - 1),
    so I - O = (k-1)(5 * 2^(L-1) - 4) for every b: the history equals max RF - 1.
    With ``target=None`` the smallest allowed pair is returned.
    """
    c = 2 ** (levels - 1)
    for b in range(1, 1 << 30):
        o = c * b - (2 * k - 1) * (c - 1)
        i = c * (b + k - 1) + (2 * k - 3) * (c - 1)
        if (target is None or o >= target) and sequnet_valid_output_length(i, levels, k) == o:
            return i, o
    raise AssertionError("unreachable")


def sequnet_rf(levels: int, k: int) -> tuple[int, int]:
    """(min, max) receptive field of the base Seq-U-Net (both length modes)."""
    rf_max = 1 + (k - 1) * (5 * 2 ** (levels - 1) - 4)
    return rf_max - (2 ** (levels - 1) - 1), rf_max


def sequnet_padded_internal_length(n: int, levels: int) -> int:
    """Zero-padded mode runs on the smallest 2^(L-1) m + 1 >= max(n, 2^(L-1) + 1) samples, front-padded."""
    c = 2 ** (levels - 1)
    m = max(1, math.ceil((n - 1) / c))
    return c * m + 1


def sequnet_padded_lengths(n: int, levels: int) -> list[int]:
    """Every intermediate length of a zero-padded Seq-U-Net fed ``n`` samples, in the order of
    ``sequnet_valid_lengths``. Padded convs keep the length, a stride-2 conv maps 2m+1 -> m+1 and a transposed
    conv m+1 -> 2m+1; the input is first front-padded to ``sequnet_padded_internal_length``."""
    n = sequnet_padded_internal_length(n, levels)
    out = []
    for _ in range(levels - 1):
        out.append(n)
        n = (n - 1) // 2 + 1
        out.append(n)
    out.append(n)
    for _ in range(levels - 1):
        n = 2 * n - 1
        out += [n, n]
    return out


# --------------------------------------------------------------------------------------------------------------
# Residual Seq-U-Net (raw audio)

@dataclass(frozen=True)
class ResPlan:
    input_length: int
    output_length: int
    pad_front: tuple[int, ...]      # per up level i = 0..L-2: extra sample kept at the front of the transposed conv


def res_sequnet_plan(levels: int, k: int, depth: int, target: int = 1) -> ResPlan:
    """Input/output lengths of the residual Seq-U-Net for at least ``target`` outputs (valid convolutions).

    The output is rounded up to a multiple of 2^(L-1) so that the decimation grid lines up with the last
    output; then the sizes are walked backwards through the layers as in the official ``check_padding``.
    """
    cycle = 2 ** (levels - 1)
    out = cycle * max(1, math.ceil(target / cycle))
    while True:
        n = out
        pads = [0] * (levels - 1)
        for i in range(levels - 1):               # up blocks, level 0 first (walking backwards)
            n += depth * (k - 1)                  # the D gated layers after the upsampling
            c = n + k - 1
            pads[i] = (c - 1) % 2
            n = (c + 1) // 2                      # ceil(c / 2) coarse samples feed the transposed conv
        n += depth * (k - 1)                      # bottleneck
        for _ in range(levels - 1):               # down blocks, deepest first
            n = 2 * n + k - 2                     # strided layer
            n += depth * (k - 1)
        n += k - 1                                # input convolution
        plan = ResPlan(n, out, tuple(pads))
        if res_sequnet_lengths_ok(plan, levels, k, depth):
            return plan
        out += cycle


def res_sequnet_lengths_ok(plan: ResPlan, levels: int, k: int, depth: int) -> bool:
    """Propagate lengths forwards and check that every shortcut is long enough for its up block."""
    n = plan.input_length - (k - 1)
    shortcuts = []
    for _ in range(levels - 1):
        n -= depth * (k - 1)
        shortcuts.append(n)
        if n < k or (n - k) % 2:
            return False
        n = (n - k) // 2 + 1
    n -= depth * (k - 1)
    for i in reversed(range(levels - 1)):
        if n < 1:
            return False
        n = 2 * n - k + plan.pad_front[i]
        if shortcuts[i] < n:
            return False
        n -= depth * (k - 1)
    return n == plan.output_length


def res_sequnet_rf(levels: int, k: int, depth: int) -> tuple[int, int]:
    """(min, max) receptive field: max = 1 + (k-1)[1 + (3D+2) 2^(L-1) - 2(D+1)], min = max - (2^(L-1) - 1)."""
    rf_max = 1 + (k - 1) * (1 + (3 * depth + 2) * 2 ** (levels - 1) - 2 * (depth + 1))
    return rf_max - (2 ** (levels - 1) - 1), rf_max


# --------------------------------------------------------------------------------------------------------------
# Dilated baselines

def wavenet_rf(blocks: int, layers: int, k: int = 2) -> int:
    """1 + blocks (k-1)(2^layers - 1): 32765 for the paper's 4 x 13 WaveNet (32764 past samples)."""
    return 1 + blocks * (k - 1) * (2 ** layers - 1)


def tcn_rf(levels: int, k: int) -> int:
    """Two dilated convolutions per block with dilation 2^i: 1 + 2(k-1)(2^L - 1)."""
    return 1 + 2 * (k - 1) * (2 ** levels - 1)


# --------------------------------------------------------------------------------------------------------------
# Activation counts (paper section 4.1): time positions computed per feature channel, summed over layers.
#
# Three kinds, from the paper's argument to the models' exact sizes:
# * the paper's own formulas: ``sequnet_activation_bound`` (sum_{i=0}^{L} 4 I / k^i <= 8 I, the paper's L being the
#   number of down/up blocks, i.e. our levels - 1) and ``wavenet_activation_count`` (I log_k N);
# * closed forms of our models without the valid-convolution shrink (the paper's footnote 4):
#   ``*_ideal_activations``, and their supremum over L per input sample, ``*_activation_limit``;
# * exact per-layer output lengths with valid convolutions: ``sequnet_valid_lengths`` / ``sequnet_padded_lengths``
#   (base Seq-U-Net), ``res_sequnet_activation_counts``, ``wavenet_activation_counts``; the TCN pads causally, so
#   each of its 2L convolutions has the input's length.
# Here L ("levels") is always the model's own: ``len(channels)`` for the base Seq-U-Net, ``levels`` for the residual
# one, i.e. L - 1 down/up blocks plus a bottleneck level.

def sequnet_activation_bound(input_length: int, levels: int, k: int = 2) -> float:
    """The paper's bound sum_{i=0}^{L} 4 I / k^i <= 8 I (k = 2 resampling); ``levels`` is the paper's L, the
    number of down/up blocks (our levels - 1)."""
    return sum(4 * input_length / k ** i for i in range(levels + 1))


def wavenet_activation_count(input_length: int, receptive_field: int, k: int = 2) -> float:
    """The paper's I log_k N for a dilated stack: every layer works at full resolution. One stack of
    ``wavenet_ideal_activations`` (blocks = 1, N = 2^layers)."""
    return input_length * math.log(receptive_field, k)


def sequnet_ideal_activations(input_length: float, levels: int, k: int = 2) -> float:
    """Base Seq-U-Net: per block i < L-1, conv + transposed conv + up conv at I/k^i and the strided conv at
    I/k^(i+1) (the paper's "3I + I/k"), then the bottleneck at I/k^(L-1). Below ``sequnet_activation_bound``
    with L-1 blocks, and below ``sequnet_activation_limit(k) * I`` for every L."""
    blocks = levels - 1
    return sum(3 * input_length / k ** i + input_length / k ** (i + 1) for i in range(blocks)) \
        + input_length / k ** blocks


def sequnet_activation_limit(k: int = 2) -> float:
    """sup over L of ``sequnet_ideal_activations / I`` = (3k + 1)/(k - 1): 7 for k = 2 (the paper bounds it by 8)."""
    return (3 * k + 1) / (k - 1)


def res_sequnet_ideal_activations(input_length: float, levels: int, depth: int, k: int = 2) -> float:
    """Residual Seq-U-Net: the input conv at I; per block i, D down layers, the transposed layer and D up layers at
    I/k^i and the strided layer at I/k^(i+1); D bottleneck layers at I/k^(L-1)."""
    blocks = levels - 1
    return input_length + sum((2 * depth + 1) * input_length / k ** i + input_length / k ** (i + 1)
                              for i in range(blocks)) + depth * input_length / k ** blocks


def res_sequnet_activation_limit(depth: int, k: int = 2) -> float:
    """sup over L of ``res_sequnet_ideal_activations / I`` = 1 + ((2D+1)k + 1)/(k-1): 12 for D = 2, k = 2."""
    return 1 + ((2 * depth + 1) * k + 1) / (k - 1)


def wavenet_ideal_activations(input_length: float, blocks: int, layers: int) -> float:
    """Every dilated layer at full resolution. The paper's ``I log_k N`` is one stack (blocks = 1); the paper's
    own WaveNet has 4 stacks of 13, i.e. 52 I, four times ``I log_2 N``."""
    return blocks * layers * input_length


def tcn_ideal_activations(input_length: float, levels: int) -> float:
    """Two convs per temporal block, all at full resolution (exact: the TCN pads causally)."""
    return 2 * levels * input_length


def res_sequnet_activation_counts(input_length: int, levels: int, k: int, depth: int) -> list[int]:
    """Output length of every gated layer (and the input conv) of a residual Seq-U-Net in valid mode."""
    plan_pads = res_sequnet_plan_for_input(input_length, levels, k, depth).pad_front
    n = input_length - (k - 1)
    counts, shortcuts = [n], []
    for _ in range(levels - 1):
        for _ in range(depth):
            n -= k - 1
            counts.append(n)
        shortcuts.append(n)
        n = (n - k) // 2 + 1
        counts.append(n)
    for _ in range(depth):
        n -= k - 1
        counts.append(n)
    for i in reversed(range(levels - 1)):
        n = 2 * n - k + plan_pads[i]
        counts.append(n)
        for _ in range(depth):
            n -= k - 1
            counts.append(n)
    return counts


def res_sequnet_plan_for_input(input_length: int, levels: int, k: int, depth: int) -> ResPlan:
    base = res_sequnet_plan(levels, k, depth)
    cycle = 2 ** (levels - 1)
    extra = input_length - base.input_length
    if extra < 0 or extra % cycle:
        raise ValueError(f"input length {input_length} is not {base.input_length} + a multiple of {cycle}")
    return ResPlan(input_length, base.output_length + extra, base.pad_front)


def wavenet_activation_counts(input_length: int, blocks: int, layers: int, k: int = 2) -> list[int]:
    """Output length of every dilated layer of a valid-convolution WaveNet."""
    counts, n = [], input_length
    for _ in range(blocks):
        for j in range(layers):
            n -= (k - 1) * 2 ** j
            counts.append(n)
    return counts
