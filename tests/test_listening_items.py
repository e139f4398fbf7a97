"""Listening items from trained models (``listening.make_items``): tiny models on the CPU, seconds of audio, and a
check that the key names the model that really made each clip."""
from __future__ import annotations

import numpy as np
import pytest
import soundfile
import torch

from sequnet.analysis import listening as L
from sequnet.analysis.listening.generation import LISTENING_SALT
from sequnet.core.generation import generate
from sequnet.core.models import OneHotModel, ResSeqUNet, ResSeqUNetConfig, WaveNet, WaveNetConfig
from sequnet.data.audio import mu_law_decode

SR = 8000
CLASSES = 256


def tiny_models() -> dict[str, torch.nn.Module]:
    torch.manual_seed(0)
    return {"sequnet": OneHotModel(ResSeqUNet(ResSeqUNetConfig(CLASSES, 8, 3, CLASSES, 3, 2)), CLASSES),
            "wavenet": OneHotModel(WaveNet(WaveNetConfig(CLASSES, blocks=1, layers=3, residual_channels=6,
                                                         skip_channels=8, end_channels=8, num_outputs=CLASSES)),
                                   CLASSES)}


class TestPieces:
    """What make_items needs of the piano run's AudioTask: ``sr`` and ``test_excerpts(n, length, seed)``, which
    gives (n, length) mu-law ids and where each excerpt comes from."""
    __test__ = False
    sr = SR

    def test_excerpts(self, n: int, length: int, seed: int = 0):
        rng = np.random.default_rng(seed)
        starts = rng.integers(0, 1000, n)
        return (torch.from_numpy(rng.integers(0, CLASSES, (n, length))),
                [f"piece{i % 2} @ sample {s}" for i, s in enumerate(starts)])


def test_make_items_generates_both_models_and_the_key_names_the_right_one(tmp_path):
    models, pieces = tiny_models(), TestPieces()
    items = L.make_items(models, pieces, 3, out_dir=tmp_path / "items", prime_seconds=0.02,
                         continuation_seconds=0.01, seed=5)
    assert items.ids == ("item01", "item02", "item03") and items.sample_rate == SR
    assert items.generation == {"prime_seconds": 0.02, "continuation_seconds": 0.01, "temperature": 0.95,
                                "seed": 5, "n_items": 3}
    assert [it.source.split(" @ ")[0] for it in items.items] == ["piece0", "piece1", "piece0"]
    key = L.load_key(items)
    # The clip the key gives to each model is that model's continuation, sampled as make_items samples it: with
    # the seed salted, so that the piano chapter's excerpts drawn with seed 5 are not the items.
    salted = int(np.random.SeedSequence([5, LISTENING_SALT]).generate_state(1)[0])
    assert salted != 5
    primes, _ = pieces.test_excerpts(3, 160, salted)
    for name, model in models.items():
        ids = generate(model.eval(), primes, 80, temperature=0.95, progress=False,
                       generator=torch.Generator().manual_seed(salted))
        for i, item in enumerate(items.items):
            clip = next(c for c, m in key.models[item.id].items() if m == name)
            samples, sr = soundfile.read(items.path(clip))
            assert sr == SR and len(samples) == 240
            np.testing.assert_allclose(samples, mu_law_decode(ids[i]).numpy(), atol=1 / 2 ** 14)
            prime, _ = soundfile.read(items.path(item.prime))
            np.testing.assert_array_equal(samples[:160], prime)


def test_make_items_rejects_bad_input_naming_it(tmp_path):
    models, pieces = tiny_models(), TestPieces()
    with pytest.raises(L.ListeningError, match="models: expected a dict with exactly the keys sequnet, wavenet"):
        L.make_items({"sequnet": models["sequnet"]}, pieces, 2, out_dir=tmp_path)
    with pytest.raises(L.ListeningError, match="n_items=0"):
        L.make_items(models, pieces, 0, out_dir=tmp_path)
    with pytest.raises(L.ListeningError, match="test_audio: expected the piano run's AudioTask"):
        L.make_items(models, {"piece": torch.zeros(SR)}, 2, out_dir=tmp_path)
    with pytest.raises(L.ListeningError, match="continuation_seconds=-1"):
        L.make_items(models, pieces, 2, out_dir=tmp_path, continuation_seconds=-1)
    assert not any(tmp_path.iterdir()), "nothing is written before the input is checked"
