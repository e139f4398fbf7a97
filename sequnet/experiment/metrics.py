"""The tasks' units: a mean loss in nats per scored item (token, frame or audio sample) turned into what the paper
reports: bits per character, perplexity, frame-wise negative log-likelihood, bits per sample."""
from __future__ import annotations

import math
from typing import Callable


def bits_per_character(ce: float) -> float:
    """Mean cross-entropy in nats -> bits: divide by ln 2."""
    return ce / math.log(2)


def perplexity(ce: float) -> float:
    """exp of the mean cross-entropy (inf instead of an OverflowError for a diverged model)."""
    return math.exp(ce) if ce < 709 else math.inf


def frame_nll(nll: float) -> float:
    """Music: total summed BCE / number of frames, already in nats per frame."""
    return nll


METRICS: dict[str, Callable[[float], float]] = {
    "bpc": bits_per_character,
    "perplexity": perplexity,
    "nll": frame_nll,
    "bits_per_sample": bits_per_character,      # the same conversion: CE in nats * log2(e)
}


def describe_unit(unit: str) -> str:
    return {"bpc": "bits per character", "perplexity": "perplexity (per word)",
            "nll": "frame-wise negative log-likelihood (nats)",
            "bits_per_sample": "bits per audio sample"}.get(unit, unit)
