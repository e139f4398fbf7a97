"""The listening test: item folders, blinding, the response format, the static page, analysis.

The browser test (``-m book``) opens a standalone page in headless Chromium, answers an item and checks the
JSON the page offers for download."""
from __future__ import annotations

import functools
import html.parser
import http.server
import json
import math
import re
import threading
import time
import urllib.parse
from pathlib import Path

import matplotlib
import numpy as np
import pytest

matplotlib.use("Agg")

from sequnet.analysis import listening as L  # noqa: E402
from test_book import play  # noqa: E402  (the browser tests' helper: play an <audio> in Chromium)

SR = 8000
CHROMIUM, CHROMEDRIVER = Path("/usr/bin/chromium"), Path("/usr/bin/chromedriver")


def tone(f0: float, seconds: float, seed: int = 0) -> np.ndarray:
    t = np.arange(int(seconds * SR)) / SR
    return 0.3 * np.sin(2 * np.pi * f0 * t) + 0.01 * np.random.default_rng(seed).normal(size=t.size)


def write_set(folder: Path, n: int, prime_s: float = 0.1, cont_s: float = 0.2) -> L.ItemSet:
    primes = [tone(200 + 50 * i, prime_s, i) for i in range(n)]
    conts = {m: [np.concatenate([p, tone(300 + 20 * k, cont_s, k)]) for p in primes]
             for k, m in enumerate(L.MODELS)}
    return L.write_items(folder, primes, conts, SR, sources=[f"piece{i} @ 0 s" for i in range(n)])


@pytest.fixture
def items_dir(tmp_path) -> Path:
    write_set(tmp_path / "items", 6)
    return tmp_path / "items"


@pytest.fixture(scope="module")
def S(tmp_path_factory) -> L.ItemSet:
    """An item set of 30 short items for the response tests."""
    return write_set(tmp_path_factory.mktemp("items30"), 30, 0.01, 0.02)


def clip_of(items: L.ItemSet, item: str, model: str) -> str:
    """The file name of ``model``'s clip of ``item`` (from the key); a made-up name for an item not in the set."""
    if item not in items.ids:
        return {"sequnet": "c000000000000.flac", "wavenet": "c000000000001.flac"}[model]
    return next(c for c, m in L.load_key(items).models[item].items() if m == model)


def answer(items, item, a_model, quality="A", coherence="not sure"):
    b_model = next(m for m in L.MODELS if m != a_model)
    return {"item": item, "a": clip_of(items, item, a_model), "b": clip_of(items, item, b_model),
            "quality": quality, "coherence": coherence}


def doc(items, participant="alice", answers=None):
    return {"schema": L.SCHEMA_TAG, "participant": participant, "created": "2025-01-02T03:04:05Z",
            "item_set": items.set_id,
            "items": answers if answers is not None else [answer(items, "item01", "sequnet")]}


# ---------------------------------------------------------------------------------------------------------------
# Items

def test_write_items_writes_random_names_a_neutral_manifest_and_the_key(items_dir, S):
    items = L.load_items(items_dir)
    manifest = json.loads((items_dir / "items.json").read_text())
    assert manifest["sample_rate"] == SR and manifest["prime_seconds"] == 0.1
    assert [it.id for it in items.items] == [f"item{i:02d}" for i in range(1, 7)]
    # (the format's tag names the project, not a model)
    published = (items_dir / "items.json").read_text().lower().replace(L.ITEMS_SCHEMA_TAG, "")
    for word in ("sequnet", "wavenet", "seq-u-net", "models"):
        assert word not in published, "the manifest is published: it must name no model"
    key = L.load_key(items)
    names = [c for it in items.items for c in it.clips]
    assert len(set(names)) == 12 and all(re.fullmatch(r"c[0-9a-f]{12}\.flac", n) for n in names)
    for it in items.items:
        assert sorted(key.models[it.id]) == sorted(it.clips)
        assert sorted(key.models[it.id].values()) == sorted(L.MODELS)
    # the first listed clip is not one model's: the order is drawn per item (of 30 items, all alike: p = 2**-29)
    assert len({L.load_key(S).model(it.id, it.clips[0]) for it in S.items}) == 2
    import soundfile
    assert soundfile.info(str(items_dir / items.items[0].clips[0])).frames == int(0.3 * SR)


def test_the_blinding_comes_from_the_system_not_from_a_seed(tmp_path):
    """Two sets from the same audio get other names and (almost surely) another assignment: nothing published,
    such as a run's seed, lets anyone redraw the key."""
    one, two = write_set(tmp_path / "one", 30, 0.01, 0.02), write_set(tmp_path / "two", 30, 0.01, 0.02)
    assert not set(one.audio_files()) & set(two.audio_files()) - {it.prime for it in one.items}
    firsts = [[L.load_key(s).model(it.id, it.clips[0]) for it in s.items] for s in (one, two)]
    assert firsts[0] != firsts[1]


def test_write_items_prepends_the_prime_and_replaces_an_older_set(tmp_path):
    primes = [tone(220, 0.1)] * 3
    items = L.write_items(tmp_path, primes, {m: [tone(330, 0.2)] * 3 for m in L.MODELS}, SR, prime_included=False,
                          fmt="wav")
    import soundfile
    assert soundfile.info(str(tmp_path / items.items[0].clips[1])).frames == int(0.3 * SR)
    assert len(items.items) == 3
    again = L.write_items(tmp_path, primes[:1], {m: [tone(330, 0.2)] for m in L.MODELS}, SR, prime_included=False)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(again.audio_files() + ["items.json", L.KEY_FILE])


def test_find_items_prefers_the_given_folder_then_the_piano_notebooks(items_dir, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert L.find_items() is None
    with pytest.raises(FileNotFoundError, match="items_dir='nowhere'"):
        L.find_items("nowhere")
    assert L.find_items(items_dir) == items_dir
    (tmp_path / "piano_audio").mkdir()
    items_dir.rename(tmp_path / L.DEFAULT_ITEMS_DIR)
    assert L.find_items() == L.DEFAULT_ITEMS_DIR


def test_write_items_rejects_bad_input(tmp_path):
    primes = [tone(220, 0.1)]
    with pytest.raises(L.ListeningError, match="expected exactly"):
        L.write_items(tmp_path, primes, {"sequnet": [tone(1, 0.3)], "tcn": [tone(1, 0.3)]}, SR)
    with pytest.raises(L.ListeningError, match="no more than its prime"):
        L.write_items(tmp_path, primes, {m: [tone(1, 0.05)] for m in L.MODELS}, SR)
    with pytest.raises(L.ListeningError, match="NaN"):
        L.write_items(tmp_path, primes, {m: [np.full(2000, np.nan)] for m in L.MODELS}, SR)
    with pytest.raises(L.ListeningError, match="must name no model"):
        L.write_items(tmp_path, primes, {m: [tone(1, 0.3)] for m in L.MODELS}, SR, sources=["wavenet run"])


def test_a_manifest_that_names_the_models_or_an_old_format_is_refused(items_dir):
    manifest = json.loads((items_dir / "items.json").read_text())
    manifest["items"][0]["models"] = {"x": "wavenet", "y": "sequnet"}
    (items_dir / "items.json").write_text(json.dumps(manifest))
    with pytest.raises(L.ListeningError, match="items\\[0\\] names the models"):
        L.load_items(items_dir)
    (items_dir / "items.json").write_text(json.dumps(manifest | {"schema": "sequnet-listening-items/1"}))
    with pytest.raises(L.ListeningError, match="earlier, unblinded format"):
        L.load_items(items_dir)


def test_the_key_must_belong_to_the_items(items_dir, tmp_path):
    items = L.load_items(items_dir)
    other = write_set(tmp_path / "other", 6)
    (items_dir / L.KEY_FILE).write_text((other.folder / L.KEY_FILE).read_text())
    with pytest.raises(L.ListeningError, match="the key of item set .* not of the items in"):
        L.load_key(items)
    (items_dir / L.KEY_FILE).unlink()
    with pytest.raises(FileNotFoundError, match="listening_key.json not found"):
        L.load_key(items)


# ---------------------------------------------------------------------------------------------------------------
# Response format

def write(folder: Path, name: str, content) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_text(content if isinstance(content, str) else json.dumps(content))


def test_valid_responses_load_and_other_files_are_not_responses(tmp_path, S):
    write(tmp_path, "alice.json", doc(S, "alice"))
    write(tmp_path, "bob.json", doc(S, "bob", [answer(S, "item01", "wavenet", "B", "A"),
                                               answer(S, "item02", "sequnet")]))
    write(tmp_path, "README.md", "# not a response")
    assert [d["participant"] for d in L.load_responses(tmp_path, S)] == ["alice", "bob"]


def malformed(S):
    return [
        ("missing.json", {k: v for k, v in doc(S).items() if k != "created"}, "missing field(s) created"),
        ("answer.json", doc(S, answers=[answer(S, "item01", "sequnet", quality="maybe")]), "items[0].quality: 'maybe'"),
        ("tag.json", doc(S) | {"schema": "sequnet-listening/1"}, "schema: expected 'sequnet-listening/2'"),
        ("broken.json", '{"schema": "sequnet-listening/2", ', "not valid JSON"),
        ("same.json", doc(S, answers=[answer(S, "item01", "sequnet") | {"b": clip_of(S, "item01", "sequnet")}]),
         "a and b are both"),
        ("twice.json", doc(S, answers=[answer(S, "item01", "sequnet"), answer(S, "item01", "wavenet")]),
         "answered twice"),
        ("date.json", doc(S) | {"created": "yesterday"}, "not an ISO 8601 date"),
        ("extra.json", doc(S) | {"notes": "x"}, "unknown field(s) notes"),
        ("empty.json", doc(S, answers=[]), "needs at least 1 entry"),
        ("list.json", [doc(S)], "expected a JSON object"),
        ("noset.json", {k: v for k, v in doc(S).items() if k != "item_set"}, "missing field(s) item_set"),
        ("clips.json", doc(S, answers=[answer(S, "item01", "sequnet") | {"a": clip_of(S, "item02", "sequnet")}]),
         "are not the two clips of item01"),
    ]


@pytest.mark.parametrize("case", range(12))
def test_malformed_response_files_are_rejected_with_the_reason(tmp_path, S, case):
    name, content, reason = malformed(S)[case]
    write(tmp_path, "good.json", doc(S, "good"))
    write(tmp_path, name, content)
    with pytest.raises(L.ResponseError) as e:
        L.load_responses(tmp_path, S)
    assert [n for n, _ in e.value.problems] == [name]
    assert reason in str(e.value) and name in str(e.value)


def test_a_response_for_another_item_set_is_a_clear_error_naming_the_file(tmp_path, S, items_dir):
    """Item ids coincide (item01 ...), but the response was made for other items: refused, never counted."""
    other = L.load_items(items_dir)
    write(tmp_path / "responses", "zoe.json", doc(other, "zoe", [answer(other, "item01", "sequnet")]))
    with pytest.raises(L.ResponseError) as e:
        L.load_responses(tmp_path / "responses", S)
    (name, reason), = e.value.problems
    assert name == "zoe.json" and f"answers the item set {other.set_id!r}, not the items in" in reason
    assert "a response to another listening test" in str(e.value)


def test_every_bad_file_is_reported_and_a_participant_counts_once(tmp_path, S):
    write(tmp_path, "a.json", doc(S, "alice"))
    write(tmp_path, "a2.json", doc(S, "alice"))
    write(tmp_path, "b.json", "not json")
    with pytest.raises(L.ResponseError) as e:
        L.load_responses(tmp_path, S)
    reasons = dict(e.value.problems)
    assert set(reasons) == {"a2.json", "b.json"} and "also answered in a.json" in reasons["a2.json"]


def test_the_schema_agrees_with_jsonschema(S):
    import jsonschema

    validator = jsonschema.Draft202012Validator(L.RESPONSE_SCHEMA, format_checker=jsonschema.FormatChecker())
    jsonschema.Draft202012Validator.check_schema(L.RESPONSE_SCHEMA)
    good, bad = doc(S), [doc(S) | {"schema": "x"}, doc(S, answers=[answer(S, "item01", "sequnet", "yes")]),
                         {k: v for k, v in doc(S).items() if k != "items"}, doc(S, participant=""), doc(S) | {"x": 1}]
    assert validator.is_valid(good) and not L.response_problems(good)
    for d in bad:
        assert not validator.is_valid(d) and L.response_problems(d), d


def test_save_response_is_atomic_and_refuses_a_name_clash(tmp_path, S):
    def response(name, item, model):
        return L.response_document(name, S.set_id, [answer(S, item, model)])

    path = L.save_response(response(" Ann Lee ", "item01", "wavenet"), tmp_path)
    assert path.name == "Ann_Lee.json" and L.load_responses(tmp_path, S)[0]["participant"] == "Ann Lee"
    assert [p.name for p in tmp_path.iterdir()] == ["Ann_Lee.json"]   # no temporary file left behind
    with pytest.raises(L.ListeningError, match="choose another participant name"):
        L.save_response(response("Ann/Lee", "item01", "wavenet"), tmp_path)
    # The same participant, spelt as the file name allows or not, gets one file: replaced, never doubled.
    L.save_response(response("Ann  Lee", "item02", "sequnet"), tmp_path)
    assert [p.name for p in tmp_path.iterdir()] == ["Ann_Lee.json"]
    assert L.load_responses(tmp_path, S)[0]["items"][0]["item"] == "item02"
    with pytest.raises(L.ListeningError, match="Ann_Lee.json already holds answers of 'Ann  Lee'"):
        L.save_response(response("ann lee", "item01", "wavenet"), tmp_path)
    assert [p.name for p in tmp_path.iterdir()] == ["Ann_Lee.json"]


# ---------------------------------------------------------------------------------------------------------------
# Careless and hostile response files (issue 17): unknown items, one participant under several spellings,
# huge and deeply nested files

def test_an_answer_to_an_item_outside_the_item_set_is_rejected_naming_file_and_item(tmp_path, items_dir):
    items = L.load_items(items_dir)
    write(tmp_path, "alice.json", doc(items, "alice", [answer(items, "item01", "sequnet")]))
    write(tmp_path, "bob.json", doc(items, "bob", [answer(items, "item02", "sequnet"),
                                                   answer(items, "item99", "wavenet")]))
    with pytest.raises(L.ResponseError) as e:
        L.load_responses(tmp_path, items)
    (name, reason), = e.value.problems
    assert name == "bob.json" and "items[1]: item 'item99' is not in the item set (6 items" in reason
    # documents handed to summarise directly are checked against the items too
    with pytest.raises(L.ResponseError, match="responses\\[0\\].*'item99'"):
        L.summarise([doc(items, "bob", [answer(items, "item99", "wavenet")])], L.load_key(items))
    with pytest.raises(L.ListeningError, match="give the ItemSet"):
        L.load_responses(tmp_path, ["item01"])


@pytest.mark.parametrize("names", [("ann", "Ann"), ("ann", "ann "), ("Ann  Lee", "ann lee"), ("ÄNN", "änn")])
def test_one_participant_under_two_spellings_is_one_participant(tmp_path, S, names):
    first, second = names
    write(tmp_path, "1.json", doc(S, first, [answer(S, "item01", "sequnet", "A")]))
    write(tmp_path, "2.json", doc(S, second, [answer(S, "item02", "sequnet", "A")]))
    with pytest.raises(L.ResponseError) as e:
        L.load_responses(tmp_path, S)
    (name, reason), = e.value.problems
    assert name == "2.json" and "also answered in 1.json" in reason and "ignoring case and blanks" in reason
    assert L.participant_key(first) == L.participant_key(second) == L.participant_key(second.upper())
    assert L.participant_key("ann") != L.participant_key("anna")


def test_summarise_counts_one_vote_per_participant_and_item_and_the_later_wins(S):
    # "ann", "Ann" and "ann " are one person who answered item01 three times and item02 once.
    docs = [doc(S, "ann", [answer(S, "item01", "sequnet", "A", "A")]),
            doc(S, "Ann", [answer(S, "item01", "sequnet", "B", "B"), answer(S, "item02", "wavenet", "A", "A")]),
            doc(S, "ann ", [answer(S, "item01", "wavenet", "not sure", "A")]),
            doc(S, "bob", [answer(S, "item01", "sequnet", "A", "A")])]
    key = L.load_key(S)
    summary = L.summarise(docs, key)
    assert summary.participants == 2
    # counted: ann's last item01 (not sure / wavenet), ann's item02 (wavenet / wavenet), bob's item01 (sequnet x2)
    assert summary.counts["quality"] == {"sequnet": 1, "wavenet": 1, "not sure": 1}
    assert summary.counts["coherence"] == {"sequnet": 1, "wavenet": 2, "not sure": 0}
    assert summary.by_item["item01"]["quality"] == {"sequnet": 1, "wavenet": 0, "not sure": 1}
    assert [(d.participant, d.item, d.dropped, d.kept) for d in summary.duplicates] == [
        ("ann", "item01", 0, 1), ("ann", "item01", 1, 2)]
    assert "2 repeated vote(s) replaced by the participant's later one" in summary.markdown()
    assert L.summarise(docs[3:], key).duplicates == ()


def big_response(items: L.ItemSet, n: int) -> str:
    """A valid response of ``n`` answers to distinct items, as JSON text (built by joining: json.dumps of 300k
    entries takes seconds on a small machine)."""
    head = json.dumps(doc(items, "mallory", []))[:-len("[]}")]
    entry = '{{"item": "i{:06d}", "a": "c1.flac", "b": "c2.flac", "quality": "A", "coherence": "B"}}'
    return head + "[" + ", ".join(entry.format(k) for k in range(n)) + "]}"


def test_a_huge_file_is_refused_before_it_is_parsed(tmp_path, monkeypatch, S):
    write(tmp_path, "mallory.json", big_response(S, 300_000))
    size = (tmp_path / "mallory.json").stat().st_size
    assert size > 20 * 2 ** 20
    parsed = []
    monkeypatch.setattr(json, "loads", lambda *a, **k: parsed.append(1))   # json.loads must not run
    with pytest.raises(L.ResponseError) as e:
        L.load_responses(tmp_path, S)
    (name, reason), = e.value.problems
    assert name == "mallory.json" and not parsed
    assert f"refused before parsing: file too large: {size:,} bytes, the limit is {L.MAX_RESPONSE_BYTES:,}" in reason


def test_more_entries_than_a_response_may_hold_are_refused(tmp_path, S):
    write(tmp_path, "mallory.json", big_response(S, L.MAX_ITEMS_PER_RESPONSE + 1))
    assert (tmp_path / "mallory.json").stat().st_size < L.MAX_RESPONSE_BYTES
    with pytest.raises(L.ResponseError, match=f"items: has {L.MAX_ITEMS_PER_RESPONSE + 1} entries, at most"):
        L.load_responses(tmp_path, S)


# named ids: the payloads themselves would make test ids of up to 600,000 characters in every verbose log
@pytest.mark.parametrize("text", ["[" * 100_000 + "]" * 100_000, '{"a":' * 100_000 + "1" + "}" * 100_000,
                                  "[" * 100_000], ids=["nested-lists", "nested-objects", "unclosed-lists"])
def test_deep_nesting_is_refused_without_recursion(tmp_path, S, text):
    write(tmp_path, "deep.json", text)
    with pytest.raises(L.ResponseError) as e:
        L.load_responses(tmp_path, S)
    assert e.value.problems == [("deep.json", "refused before parsing: nested too deeply: more than "
                                              f"{L.MAX_RESPONSE_DEPTH} levels of arrays and objects")]


def test_a_deeply_nested_manifest_is_a_clear_error(items_dir):
    (items_dir / "items.json").write_text("[" * 100_000)
    with pytest.raises(L.ListeningError, match="items.json: nested too deeply"):
        L.load_items(items_dir)


@pytest.mark.parametrize("text, depth", [
    ("", 0), ("1", 0), ('"[[["', 0), ("[]", 1), ('{"a": [1, {"b": []}]}', 4), ('["]", "\\"[", "\\\\"]', 1),
    ('{"a": "\\u005b"}', 1), ('["unterminated [[[', 1),
])
def test_json_depth_counts_brackets_outside_strings(text, depth):
    assert L.json_depth(text) == depth


def nested_depth(value) -> int:
    if isinstance(value, dict):
        return 1 + max(map(nested_depth, value.values()), default=0)
    if isinstance(value, list):
        return 1 + max(map(nested_depth, value), default=0)
    return 0


def random_json(rng, depth: int):
    kind = rng.integers(6) if depth < 6 else 5
    if kind == 0:
        return [random_json(rng, depth + 1) for _ in range(rng.integers(4))]
    if kind == 1:
        return {random_text(rng): random_json(rng, depth + 1) for _ in range(rng.integers(4))}
    return [random_text(rng), 1.5, None, True, -3][int(rng.integers(5))]


def random_text(rng) -> str:
    return "".join(rng.choice(list('ab[]{}"\\/ \u00e9\n:,'), size=rng.integers(6)))


def test_json_depth_agrees_with_the_parsed_document_on_random_json():
    rng = np.random.default_rng(17)
    for _ in range(300):
        value = random_json(rng, 0)
        for text in (json.dumps(value), json.dumps(value, ensure_ascii=False, indent=1)):
            assert L.json_depth(text) == nested_depth(json.loads(text)), text


# ---------------------------------------------------------------------------------------------------------------
# Blinding and the static page

def test_presentation_is_per_participant_and_reproducible(items_dir):
    items = L.load_items(items_dir)
    alice, bob = L.presentation(items, "alice"), L.presentation(items, "bob")
    assert L.presentation(items, " alice ") == alice
    assert sorted(t.item.id for t in alice) == [it.id for it in items.items]
    a_alice = {t.item.id: t.a for t in alice}
    assert any(a_alice[t.item.id] != t.a for t in bob), "A/B order must differ for some item"
    assert all(sorted((t.a, t.b)) == sorted(t.item.clips) for t in alice)
    many = {tuple(t.a for t in L.presentation(items, f"p{i}")) for i in range(20)}
    assert len(many) > 5


class VisibleText(html.parser.HTMLParser):
    """Text a reader sees and attribute values (file names) outside <script> and <style>."""

    def __init__(self):
        super().__init__()
        self.skip, self.parts, self.srcs = 0, [], []

    def handle_starttag(self, tag, attrs):
        self.skip += tag in ("script", "style")
        self.parts += [v for _, v in attrs if v]
        self.srcs += [v for k, v in attrs if k == "src"]

    def handle_endtag(self, tag):
        self.skip -= tag in ("script", "style")

    def handle_data(self, data):
        if not self.skip:
            self.parts.append(data)


def test_static_page_refers_to_every_clip_and_nothing_outside(items_dir, tmp_path):
    page = L.export_static_page(items_dir, tmp_path / "site" / "test.html", "audio")
    text = page.read_text()
    items = L.load_items(items_dir)
    parser = VisibleText()
    parser.feed(text)
    assert sorted(parser.srcs) == sorted(f"audio/{name}" for name in items.audio_files())
    assert all((tmp_path / "site" / src).is_file() for src in parser.srcs)
    assert not (tmp_path / "site" / "audio" / "items.json").exists(), "the manifest names the models"
    for needle in ("http://", "https://", "//cdn"):
        assert needle not in text
    for name in ("sequnet", "seq-u-net", "wavenet", "models"):   # (the response format's tag names the project)
        assert name not in text.lower().replace(L.SCHEMA_TAG, ""), "nothing in the page may name a model"
    fragment = L.static_page_fragment(items_dir, "listening_test/audio")
    assert fragment.startswith('<div class="listening-test"') and "<html" not in fragment
    assert f'src="listening_test/audio/{items.items[0].clips[0]}"' in fragment
    for bad in ("https://example.org/a", "/abs", "../up", "//cdn.example"):
        with pytest.raises(L.ListeningError, match="audio_rel_dir"):
            L.static_page_fragment(items_dir, bad)


def test_the_book_page_reads_the_items_folder_itself_when_the_book_publishes_it(items_dir, tmp_path, monkeypatch):
    """In a run folder the page refers to the piano run's items (each clip published once); items from elsewhere
    are copied beside the chapter, as the book publishes only the run folder."""
    monkeypatch.chdir(tmp_path)
    assert L.book_audio_dir(items_dir, "listening_test") == "items"
    assert not (tmp_path / "listening_test").exists()
    elsewhere = tmp_path / "run"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    assert L.book_audio_dir(items_dir, "listening_test") == "listening_test/audio"
    items = L.load_items(items_dir)
    assert sorted(p.name for p in (elsewhere / "listening_test" / "audio").iterdir()) == sorted(items.audio_files())


def test_the_page_files_are_package_data_and_fill_in_completely(items_dir):
    import tomllib

    package = Path(L.__file__).parent
    shipped = sorted(p.name for p in package.iterdir() if p.is_file() and p.suffix != ".py")
    pyproject = tomllib.loads((package.parents[2] / "pyproject.toml").read_text())
    assert sorted(pyproject["tool"]["setuptools"]["package-data"]["sequnet.analysis.listening"]) == shipped
    assert shipped == ["page.css", "page.html", "page.js"]
    fragment = L.static_page_fragment(items_dir, "audio")
    for leftover in ("__CONFIG__", "__INTRO__", "__SECTIONS__", "#ROOT", "page.py"):
        assert leftover not in fragment   # every placeholder filled, no editor's comment shipped
    assert "function blindHash(text)" in fragment and "#listening-test-" in fragment


def test_the_analysis_knows_no_repository_paths(items_dir):
    package = Path(L.__file__).parent
    for path in package.glob("*.py"):
        assert "__file__" not in path.read_text(), f"{path.name} derives a path from its own location"
    assert not hasattr(L, "REPO") and not hasattr(L, "RESPONSES_DIR")
    with pytest.raises(L.ListeningError, match="give out_dir"):
        L.listening_session(items_dir, "carol")


# ---------------------------------------------------------------------------------------------------------------
# The Jupyter session (driven without a kernel: the callbacks are plain Python)

def test_session_saves_valid_answers_for_every_item(items_dir, tmp_path):
    import ipywidgets as widgets

    root = L.listening_session(items_dir, None, tmp_path / "responses")
    text, start = root.children[1].children
    text.value = "carol"
    start.click()
    n = len(L.load_items(items_dir).items)
    for _ in range(n):
        toggles = [c for c in root.children if isinstance(c, widgets.ToggleButtons)]
        button = root.children[-1]
        assert button.disabled
        toggles[0].value, toggles[1].value = "A", "not sure"
        assert not button.disabled
        button.click()
    items = L.load_items(items_dir)
    (saved,) = L.load_responses(tmp_path / "responses", items)
    assert saved["item_set"] == items.set_id
    expected = {t.item.id: t.a for t in L.presentation(items, "carol")}
    assert {e["item"]: e["a"] for e in saved["items"]} == expected
    assert all(e["quality"] == "A" and e["coherence"] == "not sure" for e in saved["items"])
    # "A" everywhere: through the key, each vote goes to the model carol heard as A
    key = L.load_key(items)
    heard = [key.model(t.item.id, t.a) for t in L.presentation(items, "carol")]
    summary = L.summarise([saved], key)
    assert summary.counts["quality"] == {m: heard.count(m) for m in L.MODELS} | {"not sure": 0}


# ---------------------------------------------------------------------------------------------------------------
# Analysis

def responses_with(S, quality_sequnet: int, quality_wavenet: int, not_sure: int) -> list[dict]:
    """Two participants; each answer is A or B with the preferred model played as A or B alternately."""
    entries = []
    for i, choice in enumerate(["sequnet"] * quality_sequnet + ["wavenet"] * quality_wavenet
                               + ["not sure"] * not_sure):
        a_model = L.MODELS[i % 2]
        q = "not sure" if choice == "not sure" else "A" if choice == a_model else "B"
        entries.append(answer(S, f"item{i + 1:02d}", a_model, quality=q, coherence="B"))
    half = len(entries) // 2
    return [doc(S, "p1", entries[:half]), doc(S, "p2", entries[half:])]


def test_summary_and_binomial_test_on_known_counts(S):
    summary = L.summarise(responses_with(S, 15, 5, 4), L.load_key(S))
    assert summary.participants == 2
    assert summary.counts["quality"] == {"sequnet": 15, "wavenet": 5, "not sure": 4}
    # coherence "B" everywhere: B was wavenet for even i (a_model sequnet), sequnet for odd i
    assert summary.counts["coherence"] == {"sequnet": 12, "wavenet": 12, "not sure": 0}
    quality, coherence = L.binomial_test(summary)
    exact = 2 * sum(math.comb(20, k) for k in range(15, 21)) / 2 ** 20
    assert quality.p_value == pytest.approx(exact, rel=1e-12) and exact == pytest.approx(0.041389, abs=1e-6)
    z, p = 1.959963984540054, 15 / 20   # Wilson interval by its formula
    centre, half = (p + z * z / 40) / (1 + z * z / 20), z / (1 + z * z / 20) * math.sqrt(p * (1 - p) / 20
                                                                                         + z * z / 1600)
    assert quality.ci95 == pytest.approx((centre - half, centre + half), rel=1e-9)
    assert coherence.p_value == pytest.approx(1.0) and coherence.share == 0.5
    assert "15 of 20 decided" in str(quality) and "4 not sure" in str(quality)
    assert "| Timbre / audio quality | 15 (62 %)" in summary.markdown()
    # one answer per item here: items won as the paper counts its "15 out of the 20 provided examples"
    assert summary.item_majorities("quality") == {"sequnet": 15, "wavenet": 5, "tie": 4}
    assert "timbre / audio quality: Seq-U-Net 15, WaveNet 5, tied 4" in summary.markdown()
    ax = L.plot_figure3(summary)
    assert len(ax.patches) == 6 and ax.get_xlim() == (0, 100)


def test_no_responses_means_no_numbers(tmp_path, S):
    assert L.load_responses(tmp_path, S) == []
    summary = L.summarise([], L.load_key(S))
    assert summary.empty and summary.markdown() == "No responses yet."
    results = L.binomial_test(summary)
    assert all(r.p_value is None and r.ci95 is None for r in results)
    assert "no decided answers" in str(results[0])
    ax = L.plot_figure3(summary)
    assert not ax.patches and "No responses yet" in ax.texts[0].get_text()
    with pytest.raises(L.ResponseError, match="responses\\[0\\]"):
        L.summarise([doc(S) | {"schema": "nope"}], L.load_key(S))


# ---------------------------------------------------------------------------------------------------------------
# The page in a real browser

@pytest.fixture
def chrome(tmp_path):
    if not (CHROMIUM.exists() and CHROMEDRIVER.exists()):
        pytest.skip(f"headless Chromium is needed: {CHROMIUM} or {CHROMEDRIVER} is missing")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--mute-audio", "--disable-dev-shm-usage",
                 f"--user-data-dir={tmp_path / 'profile'}", "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(executable_path=str(CHROMEDRIVER)), options=options)
    driver.set_page_load_timeout(30)
    yield driver
    driver.quit()


@pytest.fixture
def served(tmp_path):
    site = tmp_path / "site"
    site.mkdir()
    handler = type("Quiet", (http.server.SimpleHTTPRequestHandler,), {"log_message": lambda *a: None})
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(handler, directory=str(site)))
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield site, f"http://127.0.0.1:{httpd.server_address[1]}/"
    httpd.shutdown()


@pytest.mark.book
def test_static_page_in_chromium(items_dir, served, chrome):
    from selenium.webdriver.common.by import By

    site, base = served
    L.export_static_page(items_dir, site / "test.html", "audio")
    chrome.get(base + "test.html")
    root = chrome.find_element(By.CSS_SELECTOR, ".listening-test")
    # The page's hash and order are Python's
    js = chrome.execute_script("var api = arguments[0].listeningTest; return [api.blindHash('dana\\u00e9'), "
                               "api.presentation('dana').map(function (t) { return [t.item.id, t.a]; })];", root)
    items = L.load_items(items_dir)
    assert js[0] == L.blind_hash("dana\u00e9")
    assert js[1] == [[t.item.id, t.a] for t in L.presentation(items, "dana")]

    root.find_element(By.CSS_SELECTOR, '[data-role="name"]').send_keys("  dana ")
    root.find_element(By.CSS_SELECTOR, '[data-role="start"]').click()
    section = next(s for s in root.find_elements(By.CSS_SELECTOR, ".sl-item") if s.is_displayed())
    first = L.presentation(items, "dana")[0]
    assert section.get_attribute("data-item") == first.item.id
    slot_a = section.find_element(By.CSS_SELECTOR, '[data-slot="A"] audio').get_attribute("src")
    assert slot_a.endswith(f"audio/{first.a}")
    next_button = root.find_element(By.CSS_SELECTOR, '[data-role="next"]')
    assert not next_button.is_enabled()
    section.find_element(By.CSS_SELECTOR, '[data-question="quality"] input[value="B"]').click()
    section.find_element(By.CSS_SELECTOR, '[data-question="coherence"] input[value="not sure"]').click()
    assert next_button.is_enabled()
    link = root.find_element(By.CSS_SELECTOR, '[data-role="download"]')
    assert link.is_displayed() and link.get_attribute("download") == "dana.json"
    href = link.get_attribute("href")
    prefix = "data:application/json;charset=utf-8,"
    assert href.startswith(prefix)
    result = json.loads(urllib.parse.unquote(href[len(prefix):]))
    assert not L.response_problems(result) and result["item_set"] == items.set_id
    assert result["participant"] == "dana"
    assert result["items"] == [{"item": first.item.id, "a": first.a, "b": first.b, "quality": "B",
                                "coherence": "not sure"}]
    # One clip of each model plays (the key, which the page never sees, says which is which)
    key = L.load_key(items)
    for slot in ("A", "B"):
        player = section.find_element(By.CSS_SELECTOR, f'[data-slot="{slot}"] audio')
        assert key.model(first.item.id, player.get_attribute("data-clip")) in L.MODELS
        assert play(chrome, player) is True
    # The answers survive a reload (localStorage) and the page resumes where the participant was
    chrome.refresh()
    time.sleep(0.3)
    root = chrome.find_element(By.CSS_SELECTOR, ".listening-test")
    again = chrome.execute_script("return arguments[0].listeningTest.results();", root)
    assert again == result
    audio_ok = chrome.execute_script(
        "return Array.prototype.every.call(document.querySelectorAll('audio'), function (a) { return !a.error; });")
    assert audio_ok


# --- property tests: many response documents, one rule ------------------------------------------------------------

from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

PROPERTY_ITEMS = ("item01", "item02", "item03")
NAMES = st.sampled_from(["ann", "Ann", " ann ", "ANN", "bob", "Bob  ", "carl"])
ANSWER = st.fixed_dictionaries({
    "item": st.sampled_from(PROPERTY_ITEMS + ("item99",)), "a_model": st.sampled_from(L.MODELS),
    "quality": st.sampled_from(L.ANSWERS), "coherence": st.sampled_from(L.ANSWERS)})


@settings(max_examples=60, deadline=None)
@given(docs=st.lists(st.tuples(NAMES, st.lists(ANSWER, min_size=1, max_size=4, unique_by=lambda a: a["item"])),
                     min_size=1, max_size=4))
def test_a_summary_counts_one_vote_per_person_and_known_item(S, docs):
    """Any set of responses: an answer to an unknown item refuses the set; otherwise each (person, item) counts
    once, people being told apart by their normalised names."""
    documents = [L.response_document(name, S.set_id, [answer(S, a["item"], a["a_model"], a["quality"],
                                                              a["coherence"]) for a in answers],
                                     created="2026-12-02T00:00:00+00:00") for name, answers in docs]
    unknown = any(a["item"] not in PROPERTY_ITEMS for _, answers in docs for a in answers)
    key = L.load_key(S)
    if unknown:
        with pytest.raises(L.ResponseError, match="item99"):
            L.summarise(documents, key)
        return
    summary = L.summarise(documents, key)
    pairs = {(name.strip().casefold(), a["item"]) for name, answers in docs for a in answers}
    assert summary.participants == len({who for who, _ in pairs})
    assert all(summary.answers(q) == len(pairs) for q in L.QUESTIONS)
    assert set(summary.by_item) <= set(PROPERTY_ITEMS)
