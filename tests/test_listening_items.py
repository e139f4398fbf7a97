"""Listening items from trained models (``listening.make_items``): tiny models on the CPU, seconds of audio, and a
check that the key names the model that really made each clip."""
from __future__ import annotations

import numpy as np
import pytest
import soundfile
import torch

from sequnet.analysis import listening as L
from sequnet.analysis.listening.generation import _draw_primes
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


def test_audio() -> dict[str, torch.Tensor]:
    t = torch.arange(SR) / SR
    return {"piece_a": (0.4 * torch.sin(2 * torch.pi * 220 * t)),          # float samples
            "piece_b": torch.randint(0, CLASSES, (SR // 2,)),               # mu-law ids
            "too_short": torch.zeros(10)}


test_audio.__test__ = False   # a helper, not a test


def test_make_items_generates_both_models_and_the_key_names_the_right_one(tmp_path):
    models, audio = tiny_models(), test_audio()
    items = L.make_items(models, audio, 3, out_dir=tmp_path / "items", sr=SR, prime_seconds=0.02,
                         continuation_seconds=0.01, seed=5)
    assert items.ids == ("item01", "item02", "item03") and items.sample_rate == SR
    assert items.generation == {"prime_seconds": 0.02, "continuation_seconds": 0.01, "temperature": 0.95,
                                "seed": 5, "n_items": 3}
    assert [it.source.split(" @ ")[0] for it in items.items] == ["piece_a", "piece_b", "piece_a"]
    key = L.load_key(items)
    # The clip the key gives to each model is that model's continuation, sampled as make_items samples it.
    primes, _ = _draw_primes(audio, 3, 160, SR, 5, -35.0)
    for name, model in models.items():
        ids = generate(model.eval(), primes, 80, temperature=0.95, progress=False,
                       generator=torch.Generator().manual_seed(5))
        for i, item in enumerate(items.items):
            clip = next(c for c, m in key.models[item.id].items() if m == name)
            samples, sr = soundfile.read(items.path(clip))
            assert sr == SR and len(samples) == 240
            np.testing.assert_allclose(samples, mu_law_decode(ids[i]).numpy(), atol=1 / 2 ** 14)
            prime, _ = soundfile.read(items.path(item.prime))
            np.testing.assert_array_equal(samples[:160], prime)


def test_make_items_rejects_bad_input_naming_it(tmp_path):
    models, audio = tiny_models(), test_audio()
    with pytest.raises(L.ListeningError, match="models: expected a dict with exactly the keys sequnet, wavenet"):
        L.make_items({"sequnet": models["sequnet"]}, audio, 2, out_dir=tmp_path)
    with pytest.raises(L.ListeningError, match="n_items=0"):
        L.make_items(models, audio, 0, out_dir=tmp_path)
    with pytest.raises(L.ListeningError, match="test_audio: expected a non-empty dict"):
        L.make_items(models, {}, 2, out_dir=tmp_path)
    with pytest.raises(L.ListeningError, match="no piece is as long as a prime"):
        L.make_items(models, {"short": torch.zeros(10)}, 2, out_dir=tmp_path, sr=SR)
    with pytest.raises(L.ListeningError, match=r"test_audio\['loud'\]: float samples must be finite and within"):
        L.make_items(models, {"loud": torch.full((SR,), 2.0)}, 2, out_dir=tmp_path, sr=SR)
    with pytest.raises(L.ListeningError, match="continuation_seconds=-1"):
        L.make_items(models, audio, 2, out_dir=tmp_path, continuation_seconds=-1)
    assert not any(tmp_path.iterdir()), "nothing is written before the input is checked"
