"""Cached step-wise generation equals the full forward, for every step and every phase of the clock.

The Seq-U-Net's receptive field is time-variant with period 2^(L-1), so the reference must sit in the phase the
generator is in. Every allowed input window ends on a cycle boundary. The save pass's window ends at prime
element T-1, so step s (which feeds element T-1+s) is in phase s mod 2^(L-1). The reference is therefore ONE
normal forward over a window that starts where the save window starts and ends on a later cycle boundary
(T-1 + m 2^(L-1), an allowed length); its output aligned with element T-1+s is step s's logits, since outputs
never depend on later inputs. The last output of a window ending at element T-1+s itself would be the phase-0
prediction, which the generator makes only when 2^(L-1) divides s: ``test_reference_is_phase_sensitive`` checks
that such a reference, and a generator started out of phase (the official bug), both fail.
"""
import json
import subprocess
import sys
import warnings
from pathlib import Path

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from sequnet.core.generation import generate, init_state, minimal_window
from sequnet.core.models import (OneHotModel, ResSeqUNet, ResSeqUNetConfig, SeqUNet, SeqUNetConfig, TCN, TCNConfig,
                            TokenModel, WaveNet, WaveNetConfig)

REPO = Path(__file__).resolve().parents[1]


def residual(L, k, D, classes=5, features=8):
    return OneHotModel(ResSeqUNet(ResSeqUNetConfig(classes, features, L, classes, k, D)), classes)


def base(L, k, vocab=11, emsize=6, hidden=7):
    # Dropout in the config: generation must switch it off (the model is left in training mode on purpose).
    return TokenModel(SeqUNet(SeqUNetConfig(emsize, (hidden,) * (L - 1) + (emsize,), emsize, k, dropout=0.3)),
                      vocab, emsize, emb_dropout=0.2).train()


def tcn(levels=3, k=3, history=9, vocab=11, emsize=6):
    """A language TCN; its receptive field is 29 (a scored window of history + 1 may be shorter or longer)."""
    return TokenModel(TCN(TCNConfig(emsize, (7,) * (levels - 1) + (emsize,), k, dropout=0.3, history=history)),
                      vocab, emsize, emb_dropout=0.2).train()


def wavenet(classes=5):
    return OneHotModel(WaveNet(WaveNetConfig(classes, blocks=2, layers=4, residual_channels=6, skip_channels=8,
                                             end_channels=8, num_outputs=classes)), classes)


def classes_of(model):
    return model.vocab if isinstance(model, TokenModel) else model.classes


def cycle_of(model):
    return getattr(model.body, "cycle", 1)


def reference(model, seq, prime_len):
    """Full forward, phase-aligned with a state primed on seq[:, :prime_len]: returns f with f(s) = the logits
    aligned with element prime_len - 1 + s. ``seq`` must reach a cycle boundary after the last step."""
    first, period = minimal_window(model), cycle_of(model)
    end = prime_len + (seq.shape[1] - prime_len) // period * period        # exclusive; end - prime_len = m * period
    was = model.training
    with torch.no_grad():
        out = model.eval()(seq[:, prime_len - first:end])
    model.train(was)
    first_out = first - model.history                                      # outputs of the minimal window
    return lambda s: out[:, :, first_out - 1 + s]


def greedy_agrees_with_forward(model, out, prime_len, n, tie=1e-4):
    """How many greedy choices of ``out`` (prime + n generated ids, batch first) the float64 full forward
    confirms, asserting that it confirms each one whose top two logits lie more than ``tie`` apart (a float32
    state may break a closer near-tie either way)."""
    period = cycle_of(model)
    pad = torch.zeros(out.shape[0], (-(n - 1)) % period + period, dtype=torch.long, device=out.device)
    ref = reference(model.double(), torch.cat([out, pad], 1), prime_len)
    checked = 0
    for s in range(n):
        logits = ref(s)
        top2 = logits.topk(2, dim=1).values
        clear = (top2[:, 0] - top2[:, 1]) > tie
        assert torch.equal(logits.argmax(1)[clear], out[clear, prime_len + s]), f"step {s}"
        checked += int(clear.sum())
    return checked


def stepped_logits(state, seq, prime_len, n):
    logits = [state.logits.clone()]
    for s in range(1, n):
        logits.append(state.step(seq[:, prime_len - 1 + s]))
    return logits


def sequence(model, batch, prime_len, n, seed):
    g = torch.Generator().manual_seed(seed)
    period = cycle_of(model)
    total = prime_len + -(-(n - 1) // period) * period + (period if period > 1 else 1)
    return torch.randint(0, classes_of(model), (batch, total), generator=g)


def check_exact(model, batch, n, extra=3, seed=0):
    prime_len = minimal_window(model) + extra          # not an allowed length: the state takes the last window
    seq = sequence(model, batch, prime_len, n, seed)
    state = init_state(model, seq[:, :prime_len])
    ref = reference(model, seq, prime_len)
    for s, logits in enumerate(stepped_logits(state, seq, prime_len, n)):
        torch.testing.assert_close(logits, ref(s), rtol=0, atol=1e-9, msg=lambda m: f"step {s}: {m}")
    return state


@pytest.mark.parametrize("L,k,D", [(2, 3, 1), (3, 2, 2), (3, 4, 2), (4, 5, 1), (5, 3, 2)])
def test_residual_steps_equal_full_forward(L, k, D):
    torch.manual_seed(L * 100 + k * 10 + D)
    model = residual(L, k, D).double()
    n = 3 * 2 ** (L - 1) + 1
    state = check_exact(model, batch=3, n=n)
    # Level i updates every 2^i steps: the paper's amortised count, sum_i 2^-i < 2 levels per step.
    steps = n - 1
    assert state.level_counts == [steps // 2 ** i for i in range(L)]
    assert state.mean_levels_per_step <= 2
    check_exact(model, batch=2, n=n, extra=0, seed=1)      # a second state of the same model: nothing leaks


@pytest.mark.parametrize("L,k", [(2, 3), (3, 3), (4, 3), (3, 5)])
def test_base_steps_equal_full_forward(L, k):
    torch.manual_seed(L * 10 + k)
    model = base(L, k).double()
    check_exact(model, batch=3, n=3 * 2 ** (L - 1) + 1)
    assert model.training, "the model's training flag is restored after the save pass"
    check_exact(model, batch=1, n=2 ** (L - 1) + 3, extra=1, seed=1)


def test_wavenet_steps_equal_full_forward():
    torch.manual_seed(0)
    model = wavenet().double()
    state = check_exact(model, batch=3, n=40)     # > 2 x the longest ring (dilation 8, 9 slots)
    assert state.mean_layers_per_step == 8
    check_exact(model, batch=2, n=12, seed=1)


@pytest.mark.parametrize("history", [9, 40])
def test_tcn_steps_equal_full_forward(history):
    """The TCN recomputes its window each step: exact against one forward over the whole sequence."""
    torch.manual_seed(history)
    model = tcn(history=history).double()
    assert minimal_window(model) == max(29, history + 1)     # receptive field 29
    check_exact(model, batch=2, n=12)
    assert model.training


def test_interleaved_states_are_independent():
    """Two states of one model advanced alternately, each in its own phase, both stay exact."""
    torch.manual_seed(1)
    model = residual(3, 3, 1).double()
    states, refs, seqs, n = [], [], [], 14
    for seed, extra in ((0, 0), (1, 5)):
        prime_len = minimal_window(model) + extra
        seq = sequence(model, 2, prime_len, n, seed)
        states.append((init_state(model, seq[:, :prime_len]), prime_len))
        refs.append(reference(model, seq, prime_len))
        seqs.append(seq)
    states[0][0].step(seqs[0][:, states[0][1]])          # put the two clocks out of step
    for s in range(2, n):
        for (state, p), ref, seq in zip(states, refs, seqs):
            if state.steps < s:
                t = state.steps + 1
                torch.testing.assert_close(state.step(seq[:, p - 1 + t]), ref(t), rtol=0, atol=1e-9)


def test_reference_is_phase_sensitive():
    """The naive reference (last output of a window ending at the newest element) agrees only at phase 0, and a
    generator one step out of phase (the official clock bug) disagrees with the phase-correct reference."""
    torch.manual_seed(2)
    model = residual(3, 3, 1).double()
    first, period, n = minimal_window(model), cycle_of(model), 9
    seq = sequence(model, 2, first, n, 0)
    state = init_state(model, seq[:, :first])
    logits = stepped_logits(state, seq, first, n)
    with torch.no_grad():
        naive = [model(seq[:, s:s + first])[:, :, -1] for s in range(n)]
    close = [torch.allclose(a, b, rtol=0, atol=1e-9) for a, b in zip(logits, naive)]
    assert close == [s % period == 0 for s in range(n)]

    ref = reference(model, seq, first)
    bad = init_state(model, seq[:, :first])
    bad.steps = 1                                         # a clock that was not reset
    wrong = stepped_logits(bad, seq, first, n)
    assert max((a - ref(s)).abs().max().item() for s, a in enumerate(wrong)) > 1e-3


@pytest.mark.parametrize("make", [lambda: residual(3, 3, 2), lambda: base(3, 3), wavenet, tcn],
                         ids=["res", "base", "wavenet", "tcn"])
def test_greedy_is_argmax_of_full_forward(make):
    torch.manual_seed(3)
    model = make().double()
    prime_len, n = minimal_window(model) + 2, 13
    prime = torch.randint(0, classes_of(model), (2, prime_len))
    out = generate(model, prime, n, greedy=True, progress=False)
    assert out.shape == (2, prime_len + n) and torch.equal(out[:, :prime_len], prime)
    period = cycle_of(model)
    pad = torch.zeros(2, (-(n - 1)) % period + period, dtype=torch.long)   # inputs after the last step: unused
    ref = reference(model, torch.cat([out, pad], 1), prime_len)
    for s in range(n):
        assert torch.equal(ref(s).argmax(1), out[:, prime_len + s]), f"position {prime_len + s}"


def test_sampling_is_reproducible_and_short_primes_are_padded():
    torch.manual_seed(4)
    model = residual(3, 3, 1)
    prime = torch.randint(0, 5, (3, 7))                   # shorter than the minimal window: front-padded
    runs = [generate(model, prime, 20, temperature=0.95, generator=torch.Generator().manual_seed(9), progress=False)
            for _ in range(2)]
    assert runs[0].shape == (3, 27) and torch.equal(runs[0], runs[1]) and torch.equal(runs[0][:, :7], prime)
    padded = torch.cat([torch.full((3, minimal_window(model) - 7), 5 // 2), prime], 1)
    assert torch.equal(generate(model, padded, 20, temperature=0.95, generator=torch.Generator().manual_seed(9),
                                progress=False)[:, -20:], runs[0][:, -20:])
    other = generate(model, prime, 20, generator=torch.Generator().manual_seed(10), progress=False)
    assert not torch.equal(other, runs[0])
    assert ((runs[0] >= 0) & (runs[0] < 5)).all()


@pytest.mark.parametrize("before", [False, True])
def test_the_save_pass_runs_with_cudnns_deterministic_algorithms_and_restores_the_flag(before, monkeypatch):
    """A transposed convolution's cuDNN algorithm may sum in an arbitrary order, which made two GPU states built
    from one prime differ by an ulp (so seeded samples could differ between runs): the save pass turns cuDNN's
    deterministic flag on for its forward, and gives the caller's value back (also after a failing forward)."""
    from sequnet.core.generation.priming import save_pass

    monkeypatch.setattr(torch.backends.cudnn, "deterministic", before)
    model = residual(3, 3, 1)
    window = torch.randint(0, 5, (2, minimal_window(model)))
    seen = []
    save_pass(model, window, {model.body: lambda module, args, kwargs: seen.append(torch.backends.cudnn.deterministic)})
    assert seen == [True] and torch.backends.cudnn.deterministic is before

    def fail(module, args, kwargs):
        raise RuntimeError("a layer failed")
    with pytest.raises(RuntimeError, match="a layer failed"):
        save_pass(model, window, {model.body: fail})
    assert torch.backends.cudnn.deterministic is before


def test_sampling_follows_the_tempered_distribution():
    """Gumbel-max with temperature: the first sampled element's frequencies match softmax(logits / T)."""
    torch.manual_seed(5)
    model = residual(2, 3, 1, classes=4)
    prime = torch.randint(0, 4, (1, minimal_window(model)))
    state = init_state(model, prime.expand(4000, -1))
    probs = torch.softmax(state.logits[0].double() * 4 / 0.5, 0)   # sharpen the logits to test T
    state.logits.mul_(4)
    ids = state.generate(1, temperature=0.5, generator=torch.Generator().manual_seed(0), progress=False)[:, 0]
    freq = torch.bincount(ids, minlength=4).double() / ids.numel()
    assert (freq - probs).abs().max() < 0.03


def test_generation_continues_across_calls():
    """state.generate(a) then generate(b) equals generate(a + b) with the same noise stream, greedily."""
    torch.manual_seed(6)
    model = residual(3, 3, 1).double()
    prime = torch.randint(0, 5, (2, minimal_window(model)))
    one = init_state(model, prime).generate(11, greedy=True, progress=False)
    st = init_state(model, prime)
    two = torch.cat([st.generate(4, greedy=True, progress=False), st.generate(7, greedy=True, progress=False)], 1)
    assert torch.equal(one, two) and st.steps == 10


@pytest.mark.parametrize("make", [lambda: residual(4, 3, 1), lambda: base(3, 3), wavenet],
                         ids=["residual", "base", "wavenet"])
def test_the_update_patterns_repeat_with_the_states_period(make):
    """A benchmark warms up ``period + CHUNK`` steps so that it times no CUDA graph capture: every run of CHUNK
    steps that ``generate`` can meet (any start) occurs in the first ``period + CHUNK`` steps, and the patterns
    repeat with ``period`` and no shorter period."""
    model = make()
    state = init_state(model, torch.zeros(1, minimal_window(model), dtype=torch.long))
    chunk = 4
    keys = state._keys_ahead(4 * state.period + chunk)
    assert keys[state.period:] == keys[:-state.period]
    assert all(keys[p:] != keys[:-p] for p in range(1, state.period))
    warm = {keys[s:s + chunk] for s in range(0, state.period + 1)}
    assert warm == {keys[s:s + chunk] for s in range(0, len(keys) - chunk + 1)}
    assert state.period == (2 * cycle_of(model) if cycle_of(model) > 1 else 1)


def test_cuda_graphs_on_cpu_warn_and_fall_back():
    model = residual(2, 3, 1)
    prime = torch.randint(0, 5, (1, 20))
    with pytest.warns(RuntimeWarning, match="cuda_graphs"):
        out = generate(model, prime, 5, greedy=True, cuda_graphs=True, progress=False)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert torch.equal(out, generate(model, prime, 5, greedy=True, progress=False))


def test_unsupported_models_are_refused():
    padded = TokenModel(SeqUNet(SeqUNetConfig(6, (7, 6), 6, 3, padded=True)), 11, 6, 0.0)
    with pytest.raises(NotImplementedError, match="zero-padded|valid-mode"):
        init_state(padded, torch.zeros(1, 40, dtype=torch.long))
    with pytest.raises(ValueError, match="batch, time"):
        init_state(residual(2, 3, 1), torch.zeros(40, dtype=torch.long))


def test_reduced_precision_state_stays_close():
    torch.manual_seed(7)
    model = residual(3, 3, 2)
    seq = torch.randint(0, 5, (2, minimal_window(model) + 12))
    full, half = (init_state(model, seq[:, :-12], dtype=d) for d in (torch.float32, torch.bfloat16))
    for s in range(12):
        a, b = full.step(seq[:, -12 + s]), half.step(seq[:, -12 + s])
        assert b.dtype == torch.bfloat16 and (a - b.float()).abs().max() < 0.05


def test_benchmark_script_smoke(tmp_path):
    out = tmp_path / "gen.json"
    subprocess.run([sys.executable, str(REPO / "benchmarks" / "generation.py"), "--device", "cpu", "--quick",
                    "--tiny", "--steps", "8", "--dtypes", "float32", "bfloat16", "--batches", "1", "2",
                    "--out", str(out)], check=True, capture_output=True, text=True, cwd=REPO)
    res = json.loads(out.read_text())
    assert res["meta"]["device"] == "cpu" and res["meta"]["torch"] == torch.__version__
    assert {(r["model"], r["batch"], r["dtype"]) for r in res["rows"]} == {
        (m, b, d) for m in ("sequnet", "wavenet") for b in (1, 2) for d in ("float32", "bfloat16")}
    assert all(r["samples_per_s"] > 0 for r in res["rows"])
    assert all(r["us_per_op"] == pytest.approx(r["step_us"] / r["ops_per_step"]) for r in res["rows"])
    assert {a["dtype"] for a in res["accuracy"]} == {"bfloat16"}


def chunk_run_eagerly(model, prime, temperature=None, chunks=1, with_state=False):
    """What ``generate`` samples through ``chunks`` multi-step graphs, with their operations run eagerly: the first
    id sampled from the save pass's logits, then ``CHUNK`` steps a graph that each feed the last id, sample the next
    and record it. Greedy without a temperature; else Gumbel noise from a seeded generator, as generate draws it.
    Returns the ids, and the state after with ``with_state``."""
    state = init_state(model, prime)
    chunk = state.CHUNK
    state._chunk_ids = torch.full((prime.shape[0], chunk), -1, dtype=torch.long)
    state._chunk_noise = torch.zeros(chunk, *state._noise.shape, dtype=state._noise.dtype)
    greedy = temperature is None
    if not greedy:
        g = torch.Generator().manual_seed(5)
        noise = (torch.empty(chunks * chunk + 1, *state._noise.shape).exponential_(generator=g).log_()
                 .mul_(-temperature))
        state._noise.copy_(noise[0])
    for op in state._sample_ops(greedy):
        op()
    out = [state.cur_id[:, None].clone()]
    for c in range(chunks):
        if not greedy:
            state._chunk_noise.copy_(noise[1 + c * chunk:1 + (c + 1) * chunk])
        keys = state._keys_ahead(chunk)
        for op in state._chunk_ops(keys, greedy):
            op()
        for key in keys:
            state._advance(key)
        out.append(state._chunk_ids.clone())
    return (torch.cat(out, 1), state) if with_state else torch.cat(out, 1)


@pytest.mark.parametrize("make", [lambda: residual(4, 3, 2), wavenet], ids=["sequnet", "wavenet"])
def test_a_multi_step_graphs_operations_record_what_generate_samples(make):
    """The operations a multi-step graph captures (each step samples and writes its id into the graph's record),
    run eagerly, give the ids that step-by-step generation gives, greedy and sampled."""
    torch.manual_seed(3)
    model = make().eval()
    prime = torch.randint(0, classes_of(model), (2, minimal_window(model)))
    assert torch.equal(chunk_run_eagerly(model, prime), init_state(model, prime).generate(17, greedy=True,
                                                                                           progress=False))
    sampled = chunk_run_eagerly(model, prime, temperature=0.9)
    assert torch.equal(sampled, init_state(model, prime).generate(17, temperature=0.9, progress=False,
                                                                  generator=torch.Generator().manual_seed(5)))


def test_ops_per_step_counts_a_period_of_update_patterns_and_the_sampling():
    """WaveNet runs the same operations every step; a Seq-U-Net's count lies between its cheapest pattern (level
    0 only) and its dearest (every level), weighted by how often each pattern comes. Sampling counts as a
    multi-step graph runs it: on the torch path, the sum, the argmax and the copy into the graph's record."""
    wn = init_state(wavenet().eval(), torch.randint(0, 5, (1, minimal_window(wavenet()))))
    sampled = len(wn._sample_ops(False)) + 1
    assert sampled == 3
    assert wn.ops_per_step() == len(wn.ops(0)) + sampled
    model = residual(4, 3, 2).eval()
    st = init_state(model, torch.randint(0, 5, (1, minimal_window(model))))
    counts = [len(st.ops(key)) for key in st.keys()]
    assert min(counts) + sampled < st.ops_per_step() < max(counts) + sampled
    assert st.steps == 0            # counting builds the plans; it feeds nothing


# -- argument checks: a bad argument is named before anything runs on the device -------------------------------

_FEW = settings(max_examples=12, deadline=None, database=None)    # the CPU is slow; no example database on disk


def _guarded(model):
    """The model with a forward pre-hook that fails the test if the model is run at all."""
    model.register_forward_pre_hook(lambda *_: pytest.fail("the model ran before the arguments were checked"))
    return model


@pytest.fixture(scope="module")
def tiny_models():
    torch.manual_seed(8)
    return {"onehot": _guarded(residual(2, 3, 1, classes=5)), "token": _guarded(base(2, 3, vocab=11))}


@_FEW
@given(kind=st.sampled_from(["onehot", "token"]), batch=st.integers(1, 3), length=st.integers(1, 6),
       bad=st.one_of(st.integers(-300, -1), st.integers(11, 300)), where=st.data())
def test_prime_ids_outside_the_vocabulary_are_refused(tiny_models, kind, batch, length, bad, where):
    model = tiny_models[kind]
    classes = classes_of(model)
    bad = bad if bad < 0 else bad - 11 + classes           # 5..294 for the 5-class model, 11..300 for the other
    prime = torch.zeros(batch, length, dtype=torch.long)
    prime[where.draw(st.integers(0, batch - 1)), where.draw(st.integers(0, length - 1))] = bad
    with pytest.raises(ValueError, match=rf"prime holds id {bad}, outside the model's vocabulary 0\.\.{classes - 1}"):
        generate(model, prime, 3, progress=False)


@_FEW
@given(n=st.one_of(st.integers(-10**6, 0), st.floats(allow_nan=True), st.booleans(), st.just("5"), st.none()))
def test_n_samples_must_be_a_positive_integer(tiny_models, n):
    with pytest.raises(ValueError, match="n_samples must be a positive integer"):
        generate(tiny_models["onehot"], torch.zeros(1, 4, dtype=torch.long), n, progress=False)


@pytest.mark.parametrize("shape,message", [((1, 0), "prime is empty"), ((0, 4), "batch of 0 sequences"),
                                           ((4,), r"\(batch, time\)")])
def test_empty_primes_and_batches_are_refused(tiny_models, shape, message):
    with pytest.raises(ValueError, match=message):
        generate(tiny_models["onehot"], torch.zeros(shape, dtype=torch.long), 3, progress=False)


def test_other_bad_arguments_are_named(tiny_models):
    model, prime = tiny_models["onehot"], torch.zeros(1, 4, dtype=torch.long)
    with pytest.raises(TypeError, match="integer ids"):
        generate(model, prime.float(), 3, progress=False)
    with pytest.raises(ValueError, match="pad_id=5"):
        generate(model, prime, 3, pad_id=5, progress=False)
    with pytest.raises(ValueError, match="temperature"):
        generate(model, prime, 3, temperature=0.0, progress=False)


@_FEW
@given(batch=st.integers(1, 3), length=st.integers(1, 12), n=st.integers(1, 4), seed=st.integers(0, 2**16))
def test_any_valid_arguments_generate_in_the_vocabulary(batch, length, n, seed):
    torch.manual_seed(0)
    model = residual(2, 3, 1, classes=5)
    prime = torch.randint(0, 5, (batch, length), generator=torch.Generator().manual_seed(seed))
    out = generate(model, prime, n, generator=torch.Generator().manual_seed(seed), progress=False)
    assert out.shape == (batch, length + n) and torch.equal(out[:, :length], prime)
    assert int(out.min()) >= 0 and int(out.max()) < 5


def test_noise_taken_in_runs_equals_noise_taken_one_by_one():
    """The multi-step graphs take the Gumbel noise in runs of steps; the runs must be the draws the single
    steps would take, also where a run crosses the end of a drawn chunk."""
    from sequnet.core.generation.state import _NoiseStream
    state = init_state(residual(2, 3, 1), torch.zeros(1, 8, dtype=torch.long))
    one = _NoiseStream(state, 50, 0.9, torch.Generator().manual_seed(3))
    runs = _NoiseStream(state, 50, 0.9, torch.Generator().manual_seed(3))
    one.chunk_len = runs.chunk_len = 7                   # force runs across chunk ends
    singles = torch.cat([one.take(1) for _ in range(50)])
    taken = torch.cat([runs.take(m) for m in (3, 16, 16, 1, 14)])
    assert taken.shape == (50, 1, 5) and torch.equal(taken, singles)


def test_keys_ahead_are_the_next_steps_keys():
    model = residual(4, 3, 1)
    state = init_state(model, torch.zeros(2, minimal_window(model), dtype=torch.long))
    state.generate(5, greedy=True, progress=False)
    ahead = state._keys_ahead(20)
    assert state.steps == 4                               # looking ahead moves nothing
    seen = []
    for _ in range(20):
        seen.append(state._next_key())
        state.step(torch.zeros(2, dtype=torch.long))
    assert ahead == tuple(seen)


def test_the_start_in_the_head_is_the_default_in_bf16_only(monkeypatch):
    """On an H100 the start in the head paid in bf16 for both models at batches 1 and 64 and cost the Seq-U-Net 4 %
    at batch 64 in float32 (results/bench/generation-start-in-head-h100.json): by default on in 16 bits only;
    SEQUNET_START_IN_HEAD=0 or 1 decides for every dtype."""
    from sequnet.core.triton_guard import start_in_head

    monkeypatch.delenv("SEQUNET_START_IN_HEAD", raising=False)
    assert [start_in_head(d) for d in (torch.bfloat16, torch.float16, torch.float32)] == [True, True, False]
    for chosen in ("0", "1"):
        monkeypatch.setenv("SEQUNET_START_IN_HEAD", chosen)
        assert {start_in_head(d) for d in (torch.bfloat16, torch.float32)} == {chosen == "1"}


def test_split_k_tile_rule_takes_few_splits_with_enough_programs(monkeypatch):
    """splitk.tile_for's rule (TILE = None, the default), on the products of the paper's piano models: on the tensor
    cores (above batch 8) the Seq-U-Net's layers take 128 x 64 and WaveNet's dilated layers 32 x 32, the tiles that
    ran each model fastest on an H100 (results/bench/generation-splitk-tiles-h100.json); a product too small for 48
    programs at any tile takes the tile that runs the most. Element-wise (batch 8 and less) the Seq-U-Net's layers
    still take 128 x 64 and WaveNet's 64 x 64, each model's fastest at batch 8
    (results/bench/generation-splitk-rule-h100.json). The partial sums hold one split per chunk of rows. A fixed
    TILE gives every product its tile."""
    from sequnet.core.generation import splitk

    def parts(*rows, n, batch=16):
        return [(torch.zeros(batch, k), torch.zeros(k, n)) for k in rows]

    assert splitk.TILE is None
    assert splitk.tile_for(parts(900, n=360)) == (128, 64)            # a level's layer: 8 x 6 programs
    assert splitk.tile_for(parts(900, 900, n=360)) == (128, 64)       # with the skip input: 16 x 6
    assert splitk.tile_for(parts(540, n=720)) == (128, 64)            # the transposed layer's two samples
    assert splitk.tile_for(parts(128, 128, n=256)) == (32, 32)        # WaveNet's dilated layer: 8 x 8
    assert splitk.tile_for(parts(129, n=128)) == (32, 32)             # 20 programs at most
    assert splitk.tile_for(parts(512, n=512)) == (128, 32)            # 4 x 16
    assert splitk.tile_for(parts(900, n=360, batch=9)) == (128, 64)
    assert splitk.tile_for(parts(128, 128, n=256, batch=9)) == (32, 32)
    for batch in (5, 8):                                               # element-wise: tiles of 64 columns
        assert splitk.tile_for(parts(900, n=360, batch=batch)) == (128, 64)
        assert splitk.tile_for(parts(540, n=720, batch=batch)) == (128, 64)
        assert splitk.tile_for(parts(128, 128, n=256, batch=batch)) == (64, 64)
        assert splitk.tile_for(parts(512, n=512, batch=batch)) == (64, 64)    # 32 programs of 128 x 64, 64 of these
    assert splitk.partial_sums(parts(900, 900, n=360)).shape == (16, 16, 360)
    assert splitk.partial_sums(parts(129, n=128, batch=2)).shape == (3, 2, 128)
    monkeypatch.setattr(splitk, "TILE", (64, 64))
    assert splitk.tile_for(parts(128, 128, n=256)) == (64, 64)
    assert splitk.partial_sums(parts(900, 900, n=360, batch=2)).shape == (30, 2, 360)
