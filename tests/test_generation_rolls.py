"""Piano-roll generation (the music models) equals the full forward: the zero-padded Seq-U-Net's cached state and
the TCN's recomputed window, at every step and every phase of the Seq-U-Net's clock.

The zero-padded Seq-U-Net front-pads its input so that the newest frame lies on a cycle boundary, so its outputs
depend on the sequence's length modulo 2^(L-1). The state's save pass runs over the whole prime; the reference is
one forward over the prime and the frames fed after it, extended to a later cycle boundary: that forward has the
prime's front padding, and its output aligned with frame T-1+s is step s's logits.
"""
import pytest
import torch

from sequnet.core.generation import generate_rolls, init_roll_state
from sequnet.core.models import SeqUNet, SeqUNetConfig, TCN, TCNConfig

KEYS = 6

pytestmark = pytest.mark.usefixtures("one_cpu_thread")



def music_sequnet(L, k, padded=True):
    # dropout, and the model left in training mode: generation must switch dropout off
    return SeqUNet(SeqUNetConfig(KEYS, (5,) * L, KEYS, k, dropout=0.3, padded=padded)).train()


def music_tcn(levels=3, k=3):
    return TCN(TCNConfig(KEYS, (5,) * levels, k, dropout=0.3, num_outputs=KEYS)).train()


def cycle_of(model):
    return getattr(model, "cycle", 1)


def rolls(batch, length, seed):
    return (torch.rand(batch, KEYS, length, generator=torch.Generator().manual_seed(seed)) < 0.4).double()


def reference(model, seq, prime_len, n):
    """f(s) = the full forward's logits aligned with frame prime_len - 1 + s, for s < n."""
    period = cycle_of(model)
    end = prime_len + -(-(n - 1) // period) * period
    assert seq.shape[-1] >= end
    with torch.no_grad():
        out = model.eval()(seq[..., :end])
    model.train()
    return lambda s: out[:, :, prime_len - 1 + s]


def check_exact(model, batch, prime_len, n, seed=0):
    period = cycle_of(model)
    seq = rolls(batch, prime_len + n + period, seed)
    state = init_roll_state(model, seq[..., :prime_len])
    silence = period if prime_len == 1 and isinstance(model, SeqUNet) else 0   # what the model pads one frame with
    seq = torch.cat([torch.zeros(batch, KEYS, silence, dtype=seq.dtype), seq], -1)
    ref = reference(model, seq, prime_len + silence, n)
    seq = seq[..., silence:]
    logits = [state.logits.clone()] + [state.step_frame(seq[:, :, prime_len - 1 + s]) for s in range(1, n)]
    for s, got in enumerate(logits):
        torch.testing.assert_close(got, ref(s), rtol=0, atol=1e-9, msg=lambda m: f"step {s}: {m}")
    assert model.training, "the training flag is restored"
    return state


@pytest.mark.parametrize("L,k,prime_len", [(2, 3, 1), (2, 5, 6), (3, 3, 7), (4, 3, 1), (4, 5, 19), (3, 3, 40)])
def test_padded_sequnet_steps_equal_full_forward(L, k, prime_len):
    torch.manual_seed(L * 10 + k)
    model = music_sequnet(L, k).double()
    n = 3 * 2 ** (L - 1) + 1
    state = check_exact(model, batch=2, prime_len=prime_len, n=n)
    assert state.level_counts == [(n - 1) // 2 ** i for i in range(L)] and state.mean_levels_per_step <= 2


@pytest.mark.parametrize("prime_len", [1, 5, 30])
def test_tcn_roll_steps_equal_full_forward(prime_len):
    torch.manual_seed(prime_len)
    check_exact(music_tcn().double(), batch=2, prime_len=prime_len, n=20)   # receptive field 29


@pytest.mark.parametrize("make", [lambda: music_sequnet(3, 3), music_tcn], ids=["sequnet", "tcn"])
def test_greedy_rolls_are_the_full_forwards_most_likely_keys(make):
    torch.manual_seed(3)
    model = make().double()
    prime = rolls(2, 5, 1)
    n = 13
    out = generate_rolls(model, prime, n, greedy=True, progress=False)
    assert out.shape == (2, KEYS, 5 + n) and torch.equal(out[..., :5], prime.float())
    pad = torch.zeros(2, KEYS, cycle_of(model) + 1, dtype=torch.double)    # frames after the last: unused
    ref = reference(model, torch.cat([out.double(), pad], -1), 5, n)
    for s in range(n):
        assert torch.equal((ref(s) > 0).float(), out[:, :, 5 + s]), f"frame {5 + s}"


def test_sampling_is_reproducible_and_follows_the_temperature():
    torch.manual_seed(4)
    model = music_sequnet(3, 3)
    prime = rolls(3, 4, 2).float()
    runs = [generate_rolls(model, prime, 10, temperature=0.8, generator=torch.Generator().manual_seed(5),
                           progress=False) for _ in range(2)]
    assert torch.equal(runs[0], runs[1]) and set(runs[0].unique().tolist()) <= {0.0, 1.0}
    # the first frame's key frequencies match sigmoid(logit / T)
    state = init_roll_state(model, prime[:1].expand(4000, -1, -1))
    from sequnet.core.generation import sample_frames
    p = torch.sigmoid(state.logits[0].float() / 0.5)
    freq = sample_frames(state, 1, temperature=0.5, generator=torch.Generator().manual_seed(0),
                         progress=False)[:, :, 0].mean(0)
    assert (freq - p).abs().max() < 0.04


def test_bad_roll_primes_and_models_are_refused():
    model = music_sequnet(2, 3)
    with pytest.raises(ValueError, match="prime is empty"):
        generate_rolls(model, torch.zeros(1, KEYS, 0), 3, progress=False)
    with pytest.raises(ValueError, match=r"\(batch, 6, time\)"):
        generate_rolls(model, torch.zeros(KEYS, 4), 3, progress=False)
    with pytest.raises(ValueError, match="binary"):
        generate_rolls(model, torch.full((1, KEYS, 4), 0.5), 3, progress=False)
    with pytest.raises(ValueError, match="n_frames"):
        generate_rolls(model, torch.zeros(1, KEYS, 4), 0, progress=False)
    with pytest.raises(NotImplementedError, match="zero-padded"):
        generate_rolls(music_sequnet(2, 3, padded=False), torch.zeros(1, KEYS, 4), 3, progress=False)
