"""Bake a SoundFont's velocity and key modulators into its zones, for synthesisers that ignore modulators.

TinySoundFont plays zones with their generators only. The MuseScore grand piano shapes its tone with modulators:
velocity opens the filter (through the modulation envelope), key number sets the filter cutoff, attenuation and
envelope times. Without them the piano sounds muffled: on Für Elise the 1-2 kHz band was 16 dB below FluidSynth's
rendering of the same font. ``bake`` evaluates those modulators as FluidSynth 2.3 does (its default modulators, the
0.4 factor it applies to initialAttenuation generators, its source curves) at a representative key and velocity of
each split of every zone: one zone per two keys where a modulator reads the key, one per velocity band where one reads
the velocity. TinySoundFont's own velocity gain (20 log10(v/127) dB) is subtracted, so that loudness follows the
font's curve. Modulators from MIDI controllers are left out: TinySoundFont applies volume, expression, pan and pitch
bend itself.
"""
from __future__ import annotations

import dataclasses
import math
import struct

import numpy as np

from sequnet.data.soundfont import GEN_INSTRUMENT, GEN_SAMPLE, Instrument, SoundFont, Zone

GEN_KEYRANGE, GEN_VELRANGE, GEN_ATTENUATION = 43, 44, 48
EMU_ATTENUATION_FACTOR = 0.4          # FluidSynth scales initialAttenuation generators (not modulators) by this
NO_SOURCE, VELOCITY, KEY = 0, 2, 3    # SF2 general-controller indices (CC flag clear)
# FluidSynth's default modulators that act on a note's tone (the others read MIDI controllers)
DEFAULT_MODS = ((0x0502, GEN_ATTENUATION, 960, 0x0000, 0),   # velocity -> attenuation, concave
                (0x0102, 8, -2400, 0x0C02, 0))              # velocity -> filter cutoff, only from velocity 64 up
# SF2.04 default generator values where they are not 0 (instrument level; preset-level values are offsets, 0)
_DEFAULTS = {8: 13500, **{g: -12000 for g in (21, 23, 25, 26, 27, 28, 30, 33, 34, 35, 36, 38)}}
VELOCITY_BANDS = tuple((lo, min(lo + 7, 127)) for lo in range(0, 128, 8))  # 16 bands of 8 velocities
KEY_STEP = 2                          # keys per split: a SoundFont holds at most 65535 generators per level

_i = np.arange(1, 127)
_CONCAVE = np.zeros(128)
_CONCAVE[127] = 1.0
_CONCAVE[127 - _i] = -400.0 / 960.0 * np.log10(_i / 127.0)  # FluidSynth 2.3's table (fluid_conv.c)
_CONVEX = np.ones(128)
_CONVEX[0] = 0.0
_CONVEX[_i] = 1.0 - (-400.0 / 960.0 * np.log10(_i / 127.0))


def _curve(table: np.ndarray, x: float) -> float:
    """FluidSynth's fluid_concave/fluid_convex: the table, linearly interpolated, at x in [0, 127]."""
    if x <= 0:
        return float(table[0])
    if x >= 127:
        return float(table[127])
    i = int(x)
    return float(table[i] + (x - i) * (table[i + 1] - table[i]))


def source_value(op: int, key: int, velocity: int) -> float | None:
    """A modulator source at a note (fluid_mod_transform_source_value), or None for a source this cannot bake
    (a MIDI controller, pressure, pitch wheel)."""
    index, is_cc, flags = op & 0x7F, op & 0x80, op >> 8
    if is_cc or index not in (NO_SOURCE, VELOCITY, KEY):
        return None
    x = 1.0 if index == NO_SOURCE else (velocity if index == VELOCITY else key) / 128.0
    negative, bipolar, shape = flags & 1, flags & 2, flags >> 2
    if shape == 0:
        x = 1.0 - x if negative else x
        return 2.0 * x - 1.0 if bipolar else x
    if shape == 3:
        on = (x >= 0.5) != bool(negative)
        return (1.0 if on else -1.0) if bipolar else float(on)
    table = _CONCAVE if shape == 1 else _CONVEX
    if not bipolar:
        return _curve(table, 127 * (1.0 - x if negative else x))
    sign = -1.0 if negative else 1.0
    return sign * (_curve(table, 127 * 2 * (x - 0.5)) if x > 0.5 else -_curve(table, 127 * 2 * (0.5 - x)))


def modulator_sum(mods: list[tuple], key: int, velocity: int) -> dict[int, float]:
    """Generator -> the summed contribution of the bakeable modulators at a note (fluid_mod_get_value)."""
    total: dict[int, float] = {}
    for src, dest, amount, amount_src, transform in mods:
        if dest & 0x8000 or src & 0xFF == 0:
            continue  # linked modulators are not used by the piano; no primary source contributes nothing
        v1, v2 = source_value(src, key, velocity), (1.0 if amount_src & 0xFF == 0 else
                                                    source_value(amount_src, key, velocity))
        if v1 is None or v2 is None:
            continue
        value = amount * v1 * v2
        total[dest] = total.get(dest, 0.0) + (abs(value) if transform == 2 else value)
    return total


def _unpack(mods: list[bytes]) -> list[tuple]:
    return [struct.unpack("<HHhHH", m) for m in mods]


def _merge(*levels: list[tuple]) -> list[tuple]:
    """Modulators of successive levels; an identical one (same sources and destination) replaces the earlier."""
    merged: dict[tuple, tuple] = {}
    for level in levels:
        seen = set()
        for mod in level:
            identity = (mod[0], mod[1], mod[3])
            if identity not in seen:  # within one zone the first of two identical modulators counts (FluidSynth)
                merged[identity] = mod
                seen.add(identity)
    return list(merged.values())


def _reads(mods: list[tuple], index: int) -> bool:
    return any(op & 0xFF == index for m in mods for op in (m[0], m[3]))


def _range(gens: dict[int, int], oper: int) -> tuple[int, int]:
    raw = gens.get(oper, 127 << 8)
    return raw & 0xFF, raw >> 8


def _split(zone: Zone, inherited: dict[int, int], mods: list[tuple], level_defaults: dict[int, int],
           instrument_level: bool) -> list[Zone]:
    """One zone per (key, velocity band) that the modulators distinguish, with their values added."""
    gens = dict(zone.gens)
    lo_key, hi_key = _range(gens, GEN_KEYRANGE)
    lo_vel, hi_vel = _range(gens, GEN_VELRANGE)
    keys = ([(k, min(k + KEY_STEP - 1, hi_key)) for k in range(lo_key, hi_key + 1, KEY_STEP)] if _reads(mods, KEY)
            else [(lo_key, hi_key)])
    velocity_dependent = instrument_level or _reads(mods, VELOCITY)
    bands = ([(max(a, lo_vel), min(b, hi_vel)) for a, b in VELOCITY_BANDS if b >= lo_vel and a <= hi_vel]
             if velocity_dependent else [(lo_vel, hi_vel)])
    target = GEN_SAMPLE if instrument_level else GEN_INSTRUMENT
    body = {g: a for g, a in zone.gens if g not in (GEN_KEYRANGE, GEN_VELRANGE, target)}
    out = []
    for k0, k1 in keys:
        for v0, v1 in bands:
            key, velocity = (k0 + k1) / 2, max((v0 + v1) / 2, 1.0)
            added = modulator_sum(mods, key, velocity)
            values = {g: _signed(a) for g, a in body.items()}
            attenuation = EMU_ATTENUATION_FACTOR * values.get(GEN_ATTENUATION, _signed(
                inherited.get(GEN_ATTENUATION, 0)))
            values[GEN_ATTENUATION] = attenuation + added.pop(GEN_ATTENUATION, 0.0)
            if instrument_level:  # cancel TinySoundFont's own velocity gain, 20 log10(v / 127) dB
                values[GEN_ATTENUATION] += 200 * math.log10(velocity / 127)
            for g, amount in added.items():
                values[g] = values.get(g, _signed(inherited.get(g, level_defaults.get(g, 0)))) + amount
            ranges = [(GEN_KEYRANGE, k0 | k1 << 8), (GEN_VELRANGE, v0 | v1 << 8)]
            out.append(Zone(ranges + [(g, round(v) & 0xFFFF) for g, v in values.items()]
                            + [(target, gens[target])], []))
    return out


def _signed(raw: int) -> int:
    return raw - 0x10000 if raw >= 0x8000 else raw


def _bake_zones(zones: list[Zone], target: int, defaults: list[tuple], level_defaults: dict[int, int],
                instrument_level: bool) -> list[Zone]:
    has_global = bool(zones) and all(g != target for g, _ in zones[0].gens)
    global_gens = dict(zones[0].gens) if has_global else {}
    global_mods = _unpack(zones[0].mods) if has_global else []
    out = [Zone([(g, a) for g, a in zones[0].gens if g != GEN_ATTENUATION], [])] if has_global else []
    for zone in zones[int(has_global):]:
        if all(g != target for g, _ in zone.gens):
            continue  # a local zone without sample or instrument is ignored (SF2.04 7.9)
        mods = _merge(defaults, global_mods, _unpack(zone.mods))
        out += _split(zone, global_gens, mods, level_defaults, instrument_level)
    return out


def bake(font: SoundFont) -> SoundFont:
    """The font with its key and velocity modulators turned into generators of split zones, and no modulators."""
    instruments = [Instrument(i.name, _bake_zones(i.zones, GEN_SAMPLE, list(DEFAULT_MODS), _DEFAULTS, True))
                   for i in font.instruments]
    presets = [dataclasses.replace(p, zones=_bake_zones(p.zones, GEN_INSTRUMENT, [], {}, False))
               for p in font.presets]
    return SoundFont(dict(font.info), presets, instruments, font.samples)


