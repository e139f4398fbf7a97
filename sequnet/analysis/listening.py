"""The paper's listening test (§5.2, Figure 3): blinded A/B items, a Jupyter session, a kernel-free page, analysis.

An *item* is a real piano excerpt (the prime, 1.5 s in the paper) and two continuations of it, one by Seq-U-Net
and one by WaveNet, each starting with the prime. ``make_items`` writes a folder of audio files and a manifest
``items.json``. The continuation files get neutral names (``item03_x.flac``, ``item03_y.flac``) and which model is
``x`` is drawn at random per item, so a file name says nothing about the model; only the manifest knows.

Each participant hears each item's continuations as "A" and "B" in an order drawn from a hash of their name and
the item id (``presentation``), and the items in an order drawn the same way. The hash is written twice, in
Python and in the page's JavaScript, so a participant gets the same order in Jupyter and on the static page.

Answers are kept as one JSON document per participant (``RESPONSE_SCHEMA``); the document records which model
was A, so the analysis needs no manifest. ``summarise`` counts the preferences per question, ``plot_figure3``
draws them as the paper's Figure 3, and ``binomial_test`` tests Seq-U-Net's share of the decided answers.

Two ways to answer:

* ``listening_session``: ipywidgets in Jupyter, saving ``data/listening/<participant>.json`` (needs a kernel:
  in the static book it renders but its buttons do nothing);
* ``export_static_page`` / ``static_page_fragment``: a self-contained HTML page with a little JavaScript that keeps
  the answers in the browser's localStorage and offers them as a JSON download in the same schema.
"""
from __future__ import annotations

import dataclasses
import datetime as _dt
import hashlib
import html
import json
import math
import os
import re
import shutil
import tempfile
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import numpy as np
import soundfile

REPO = Path(__file__).resolve().parents[2]
RESPONSES_DIR = REPO / "data" / "listening"   # participants' response files (committed)
ITEMS_MANIFEST = "items.json"
ITEMS_SCHEMA_TAG = "sequnet-listening-items/1"
SCHEMA_TAG = "sequnet-listening/1"
# Where the piano notebook writes its items: <its out_dir>/listening_items. In a `sequnet run` the kernel's cwd is
# the run folder and each notebook's out_dir is a folder named after it, so from the listening notebook's cwd the
# items are at piano_audio/listening_items (or ./listening_items when both notebooks ran with out_dir=".").
ITEMS_SUBDIR = "listening_items"
DEFAULT_ITEMS_DIR = Path("piano_audio") / ITEMS_SUBDIR

MODELS = ("sequnet", "wavenet")
MODEL_NAMES = {"sequnet": "Seq-U-Net", "wavenet": "WaveNet"}
ANSWERS = ("A", "B", "not sure")
QUESTIONS = ("quality", "coherence")
# The paper's wording (§5.2).
QUESTION_TEXT = {
    "quality": "Which excerpt has better timbre (does it sound like a piano, is the audio free of distortions)?",
    "coherence": "Which excerpt has more musical coherence (with respect to melody, harmony, rhythm)?",
}
QUESTION_LABELS = {"quality": "Timbre / audio quality", "coherence": "Musical coherence"}
ANSWER_LABELS = {"A": "A", "B": "B", "not sure": "Not sure"}
ITEM_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$"
AUDIO_FORMATS = ("flac", "wav")


class ListeningError(ValueError):
    """A malformed item folder, response document or argument; the message says what and where."""


class ResponseError(ListeningError):
    """One or more response files are malformed; ``problems`` lists (file name, reason)."""

    def __init__(self, problems: Sequence[tuple[str, str]]):
        self.problems = list(problems)
        lines = "\n".join(f"  {name}: {reason}" for name, reason in self.problems)
        super().__init__(f"{len(self.problems)} malformed listening-test response file(s):\n{lines}")


# ---------------------------------------------------------------------------------------------------------------
# Response schema and its validator

RESPONSE_SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "title": "Seq-U-Net listening test: the answers of one participant",
    "description": "One file per participant. For each answered item, which model was played as A and which as "
                   "B, and the answer to each question: 'A', 'B' or 'not sure'. Two more rules than the schema "
                   "states: a_model differs from b_model, and no item is answered twice.",
    "type": "object",
    "required": ["schema", "participant", "created", "items"],
    "additionalProperties": False,
    "properties": {
        "schema": {"const": SCHEMA_TAG},
        "participant": {"type": "string", "minLength": 1, "maxLength": 100, "pattern": r"\S"},
        "created": {"type": "string", "format": "date-time",
                    "description": "ISO 8601 date and time, e.g. 2025-01-02T03:04:05Z"},
        "items": {
            "type": "array",
            "minItems": 1,
            "items": {
                "type": "object",
                "required": ["item", "a_model", "b_model", "quality", "coherence"],
                "additionalProperties": False,
                "properties": {
                    "item": {"type": "string", "pattern": ITEM_ID_PATTERN},
                    "a_model": {"enum": list(MODELS)},
                    "b_model": {"enum": list(MODELS)},
                    "quality": {"enum": list(ANSWERS)},
                    "coherence": {"enum": list(ANSWERS)},
                },
            },
        },
    },
}

_JSON_TYPES = {"object": dict, "array": list, "string": str}


def _schema_problems(value: Any, schema: Mapping[str, Any], where: str) -> list[str]:
    """What is wrong with ``value`` under ``schema``: an interpreter of the JSON Schema keywords that
    RESPONSE_SCHEMA uses, so that the schema dict is the one definition of the format (``jsonschema`` is not a
    dependency; tests check that it agrees where it is installed)."""
    at = where or "the document"
    if "const" in schema and value != schema["const"]:
        return [f"{at}: expected {schema['const']!r}, got {value!r}"]
    if "enum" in schema and value not in schema["enum"]:
        return [f"{at}: {value!r} is not one of {', '.join(repr(v) for v in schema['enum'])}"]
    kind = schema.get("type")
    if kind is not None and not isinstance(value, _JSON_TYPES[kind]):
        return [f"{at}: expected a JSON {kind}, got {type(value).__name__} {value!r}"[:200]]
    problems: list[str] = []
    if kind == "string":
        if len(value) < schema.get("minLength", 0):
            problems.append(f"{at}: must not be empty")
        if len(value) > schema.get("maxLength", math.inf):
            problems.append(f"{at}: longer than {schema['maxLength']} characters")
        if "pattern" in schema and not re.search(schema["pattern"], value):
            problems.append(f"{at}: {value!r} does not match {schema['pattern']}")
        if schema.get("format") == "date-time" and not _is_datetime(value):
            problems.append(f"{at}: {value!r} is not an ISO 8601 date and time (e.g. 2025-01-02T03:04:05Z)")
    elif kind == "object":
        missing = [k for k in schema.get("required", ()) if k not in value]
        if missing:
            problems.append(f"{at}: missing field(s) {', '.join(missing)}")
        props = schema.get("properties", {})
        if schema.get("additionalProperties") is False:
            extra = sorted(set(value) - set(props))
            if extra:
                problems.append(f"{at}: unknown field(s) {', '.join(extra)}")
        for key, sub in props.items():
            if key in value:
                problems += _schema_problems(value[key], sub, f"{where}.{key}" if where else key)
    elif kind == "array":
        if len(value) < schema.get("minItems", 0):
            problems.append(f"{at}: needs at least {schema['minItems']} entr{'y' if schema['minItems'] == 1 else 'ies'}")
        for i, entry in enumerate(value):
            problems += _schema_problems(entry, schema["items"], f"{where}[{i}]")
    return problems


def _is_datetime(text: str) -> bool:
    if "T" not in text and " " not in text:
        return False
    try:
        _dt.datetime.fromisoformat(text)
    except ValueError:
        return False
    return True


def response_problems(doc: Any) -> list[str]:
    """Every way in which ``doc`` breaks the response format (empty: valid)."""
    problems = _schema_problems(doc, RESPONSE_SCHEMA, "")
    if problems or not isinstance(doc, dict):
        return problems
    seen: set[str] = set()
    for i, entry in enumerate(doc["items"]):
        if entry["a_model"] == entry["b_model"]:
            problems.append(f"items[{i}]: a_model and b_model are both {entry['a_model']!r}")
        if entry["item"] in seen:
            problems.append(f"items[{i}]: item {entry['item']!r} is answered twice")
        seen.add(entry["item"])
    return problems


def check_response(doc: Any, source: str = "response") -> dict:
    """``doc`` if it is a valid response document, else ResponseError naming ``source`` and every problem."""
    problems = response_problems(doc)
    if problems:
        raise ResponseError([(source, "; ".join(problems))])
    return doc


def load_responses(folder: str | os.PathLike = RESPONSES_DIR) -> list[dict]:
    """Every response document in ``folder`` (its ``*.json`` files, sorted by name; other files such as the
    README are not responses). Raises ResponseError listing each malformed file and why, and each participant
    who appears in two files (their answers would count twice); nothing is skipped silently."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder} is not a folder of listening-test responses")
    docs, problems, owner = [], [], {}
    for path in sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() == ".json"):
        try:
            doc = json.loads(path.read_text(encoding="utf-8"))
        except UnicodeDecodeError as e:
            problems.append((path.name, f"not UTF-8 text ({e})"))
            continue
        except json.JSONDecodeError as e:
            problems.append((path.name, f"not valid JSON ({e})"))
            continue
        found = response_problems(doc)
        if found:
            problems.append((path.name, "; ".join(found)))
            continue
        if doc["participant"] in owner:
            problems.append((path.name, f"participant {doc['participant']!r} also answered in "
                                        f"{owner[doc['participant']]}"))
            continue
        owner[doc["participant"]] = path.name
        docs.append(doc)
    if problems:
        raise ResponseError(problems)
    return docs


def response_document(participant: str, answers: Sequence[Mapping[str, str]],
                      created: str | None = None) -> dict:
    """A valid response document from ``answers`` (dicts with item, a_model, b_model, quality, coherence)."""
    doc = {"schema": SCHEMA_TAG, "participant": check_participant(participant),
           "created": created or _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
           "items": [{k: a[k] for k in ("item", "a_model", "b_model", "quality", "coherence")} for a in answers]}
    return check_response(doc, f"responses of {participant!r}")


def check_participant(participant: Any) -> str:
    """The participant's name without surrounding blanks (as the page's JavaScript trims it)."""
    if not isinstance(participant, str) or not participant.strip():
        raise ListeningError(f"participant={participant!r}: give a non-empty name or nickname")
    name = participant.strip()
    if len(name) > 100:
        raise ListeningError(f"participant={participant!r}: at most 100 characters")
    return name


def response_filename(participant: str) -> str:
    """``<participant>.json`` with anything but letters, digits, '.', '_' and '-' replaced (the page uses the
    same rule for its download)."""
    stem = re.sub(r"[^A-Za-z0-9._-]+", "_", check_participant(participant)).strip("._")
    return f"{stem or 'participant'}.json"


def save_response(doc: Mapping[str, Any], out_dir: str | os.PathLike = RESPONSES_DIR) -> Path:
    """Write a valid response document to ``out_dir/<participant>.json`` atomically (a reader never sees half a
    file). Refuses to replace another participant's file whose name sanitises to the same file name."""
    check_response(dict(doc))
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    target = out_dir / response_filename(doc["participant"])
    if target.exists():
        try:
            other = json.loads(target.read_text(encoding="utf-8")).get("participant")
        except (ValueError, AttributeError):
            other = None
        if other != doc["participant"]:
            raise ListeningError(f"{target} holds the answers of {other!r}, not {doc['participant']!r}; choose "
                                 f"another participant name")
    _atomic_write(target, json.dumps(doc, indent=2, ensure_ascii=False) + "\n")
    return target


def _atomic_write(target: Path, text: str) -> None:
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", dir=target.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


# ---------------------------------------------------------------------------------------------------------------
# Items

@dataclasses.dataclass(frozen=True)
class Item:
    id: str
    prime: str                  # file names relative to the item folder
    x: str
    y: str
    models: Mapping[str, str]   # {"x": model, "y": the other model}
    source: str = ""            # where the prime comes from (piece, offset), for the record

    def file(self, key: str) -> str:
        return {"prime": self.prime, "x": self.x, "y": self.y}[key]


@dataclasses.dataclass(frozen=True)
class ItemSet:
    folder: Path
    sample_rate: int
    prime_seconds: float
    items: tuple[Item, ...]

    def path(self, name: str) -> Path:
        return self.folder / name

    def audio_files(self) -> list[str]:
        return [item.file(k) for item in self.items for k in ("prime", "x", "y")]


def _mono(signal: Any, what: str) -> np.ndarray:
    if hasattr(signal, "detach"):   # a torch tensor
        signal = signal.detach().cpu().numpy()
    x = np.asarray(signal, dtype=np.float64)
    if x.ndim != 1 or x.size == 0:
        raise ListeningError(f"{what}: expected a non-empty 1-D array of samples, got shape {x.shape}")
    if not np.all(np.isfinite(x)):
        raise ListeningError(f"{what}: contains NaN or infinite samples")
    return x


def make_items(out_dir: str | os.PathLike, primes: Sequence[Any], continuations_by_model: Mapping[str, Sequence[Any]],
               sr: int, *, prime_included: bool = True, fmt: str = "flac", seed: int = 0,
               sources: Sequence[str] | None = None) -> ItemSet:
    """Write a listening-item folder: ``itemNN_prime``, ``itemNN_x``, ``itemNN_y`` audio files and ``items.json``.

    ``primes[i]`` is the real excerpt of item i (1-D float samples in [-1, 1], numpy or torch);
    ``continuations_by_model`` maps "sequnet" and "wavenet" to one continuation per prime. With ``prime_included``
    (the default, as the paper's samples) each continuation already starts with its prime; otherwise the prime
    is put in front of it here. Which model becomes ``x`` is drawn per item from ``seed``. ``sources`` (optional,
    one string per item) records where each prime comes from. Files of an earlier item set in the folder that the
    new manifest does not list are removed, so the folder never mixes two sets.
    """
    if fmt not in AUDIO_FORMATS:
        raise ListeningError(f"fmt={fmt!r}: choose one of {', '.join(AUDIO_FORMATS)}")
    if isinstance(sr, bool) or not isinstance(sr, int) or sr <= 0:
        raise ListeningError(f"sr={sr!r}: expected a positive integer sample rate")
    if sorted(continuations_by_model) != sorted(MODELS):
        raise ListeningError(f"continuations_by_model has keys {sorted(continuations_by_model)}; expected exactly "
                             f"{', '.join(MODELS)}")
    n = len(primes)
    if n == 0:
        raise ListeningError("primes is empty: a listening test needs at least one item")
    for model, clips in continuations_by_model.items():
        if len(clips) != n:
            raise ListeningError(f"{model}: {len(clips)} continuations for {n} primes")
    if sources is not None and len(sources) != n:
        raise ListeningError(f"sources: {len(sources)} entries for {n} primes")

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    old = _old_files(out)
    rng = np.random.default_rng(seed)
    width = max(2, len(str(n)))
    items, lengths = [], []
    for i in range(n):
        item_id = f"item{i + 1:0{width}d}"
        prime = _mono(primes[i], f"primes[{i}]")
        clips = {}
        for model in MODELS:
            clip = _mono(continuations_by_model[model][i], f"continuations_by_model[{model!r}][{i}]")
            if not prime_included:
                clip = np.concatenate([prime, clip])
            elif len(clip) <= len(prime):
                raise ListeningError(f"{model} continuation {i} has {len(clip)} samples, no more than its prime "
                                     f"({len(prime)}); with prime_included=True it must start with the prime and "
                                     f"go on")
            clips[model] = clip
        x_model = MODELS[int(rng.integers(2))]
        models = {"x": x_model, "y": next(m for m in MODELS if m != x_model)}
        names = {key: f"{item_id}_{key}.{fmt}" for key in ("prime", "x", "y")}
        _write_audio(out / names["prime"], prime, sr)
        for key in ("x", "y"):
            _write_audio(out / names[key], clips[models[key]], sr)
        items.append(Item(item_id, names["prime"], names["x"], names["y"], models,
                          str(sources[i]) if sources is not None else ""))
        lengths.append(len(prime))
    manifest = {"schema": ITEMS_SCHEMA_TAG, "sample_rate": sr,
                "prime_seconds": round(float(np.median(lengths)) / sr, 4),
                "items": [{"id": it.id, "files": {"prime": it.prime, "x": it.x, "y": it.y},
                           "models": dict(it.models), "source": it.source} for it in items]}
    _atomic_write(out / ITEMS_MANIFEST, json.dumps(manifest, indent=2) + "\n")
    for name in old - {f for it in items for f in (it.prime, it.x, it.y)}:
        (out / name).unlink(missing_ok=True)
    return load_items(out)


def find_items(items_dir: str | os.PathLike | None = None) -> Path | None:
    """``items_dir`` if given (it must hold a manifest), else the first of ``DEFAULT_ITEMS_DIR`` and
    ``./listening_items`` (relative to the working directory) that holds one, else None."""
    if items_dir is not None:
        if not (Path(items_dir) / ITEMS_MANIFEST).is_file():
            raise FileNotFoundError(f"items_dir={str(items_dir)!r} holds no {ITEMS_MANIFEST}; build it with "
                                    f"sequnet.analysis.listening.make_items")
        return Path(items_dir)
    return next((p for p in (DEFAULT_ITEMS_DIR, Path(ITEMS_SUBDIR)) if (p / ITEMS_MANIFEST).is_file()), None)


def _old_files(folder: Path) -> set[str]:
    """The audio files an existing manifest in ``folder`` lists (none when there is no readable manifest)."""
    try:
        return set(load_items(folder).audio_files())
    except (ListeningError, FileNotFoundError):
        return set()


def _write_audio(path: Path, samples: np.ndarray, sr: int) -> None:
    # 16-bit PCM: what the paper's 8-bit mu-law output needs, and what every browser plays in WAV and FLAC.
    soundfile.write(path, np.clip(samples, -1.0, 1.0).astype(np.float32), sr, subtype="PCM_16")


def load_items(items_dir: str | os.PathLike) -> ItemSet:
    """The item set of a folder written by ``make_items``, checked: manifest format, models, and that every
    audio file it names exists."""
    folder = Path(items_dir)
    manifest_path = folder / ITEMS_MANIFEST
    if not manifest_path.is_file():
        raise FileNotFoundError(f"{manifest_path} not found: build the items with sequnet.analysis.listening.make_items "
                                f"(the piano notebook writes them to {DEFAULT_ITEMS_DIR} in its run folder)")
    try:
        data = json.loads(manifest_path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ListeningError(f"{manifest_path}: not valid JSON ({e})") from None

    def bad(reason: str) -> ListeningError:
        return ListeningError(f"{manifest_path}: {reason}")

    if not isinstance(data, dict) or data.get("schema") != ITEMS_SCHEMA_TAG:
        raise bad(f"expected schema {ITEMS_SCHEMA_TAG!r}")
    sr = data.get("sample_rate")
    if isinstance(sr, bool) or not isinstance(sr, int) or sr <= 0:
        raise bad(f"sample_rate {sr!r} is not a positive integer")
    entries = data.get("items")
    if not isinstance(entries, list) or not entries:
        raise bad("no items")
    items, ids = [], set()
    for i, e in enumerate(entries):
        try:
            item_id, files, models = e["id"], e["files"], e["models"]
            item = Item(item_id, files["prime"], files["x"], files["y"], dict(models), str(e.get("source", "")))
        except (KeyError, TypeError):
            raise bad(f"items[{i}] needs id, files {{prime, x, y}} and models {{x, y}}") from None
        if not isinstance(item_id, str) or not re.match(ITEM_ID_PATTERN, item_id) or item_id in ids:
            raise bad(f"items[{i}]: id {item_id!r} is not a unique name matching {ITEM_ID_PATTERN}")
        if sorted(item.models) != ["x", "y"] or sorted(item.models.values()) != sorted(MODELS):
            raise bad(f"items[{i}]: models must map x and y to {' and '.join(MODELS)}, got {item.models}")
        for key in ("prime", "x", "y"):
            name = item.file(key)
            # Plain file names only: the page refers to them beside each other, and "x"/"y" must stay neutral.
            if not isinstance(name, str) or Path(name).name != name or any(m in name.lower() for m in MODELS):
                raise bad(f"items[{i}]: file {name!r} must be a plain file name that names no model")
            if not (folder / name).is_file():
                raise bad(f"items[{i}]: audio file {name} is missing")
        ids.add(item_id)
        items.append(item)
    return ItemSet(folder, sr, float(data.get("prime_seconds", 0.0)), tuple(items))


# ---------------------------------------------------------------------------------------------------------------
# Blinding: the same hash in Python and in the page's JavaScript (FNV-1a over UTF-8, then MurmurHash3's finaliser,
# whose low bits are well mixed, unlike FNV's own)

_M32 = 0xFFFFFFFF


def blind_hash(text: str) -> int:
    h = 0x811C9DC5
    for byte in text.encode("utf-8"):
        h = ((h ^ byte) * 0x01000193) & _M32
    h ^= h >> 16
    h = (h * 0x85EBCA6B) & _M32
    h ^= h >> 13
    h = (h * 0xC2B2AE35) & _M32
    h ^= h >> 16
    return h


@dataclasses.dataclass(frozen=True)
class Trial:
    """One item as one participant hears it: ``a`` is the key ("x" or "y") of the continuation played as A."""
    item: Item
    a: str

    @property
    def b(self) -> str:
        return "y" if self.a == "x" else "x"

    @property
    def a_model(self) -> str:
        return self.item.models[self.a]

    @property
    def b_model(self) -> str:
        return self.item.models[self.b]


def presentation(items: ItemSet, participant: str) -> list[Trial]:
    """The items in the order ``participant`` hears them, each with its A/B assignment; both drawn from the
    participant's name, so a participant who comes back gets the same test."""
    name = check_participant(participant)
    order = sorted(items.items, key=lambda it: (blind_hash(f"{name}\x00order\x00{it.id}"), it.id))
    return [Trial(it, "y" if blind_hash(f"{name}\x00ab\x00{it.id}") & 1 else "x") for it in order]


# ---------------------------------------------------------------------------------------------------------------
# Jupyter: ipywidgets session

def listening_session(items_dir: str | os.PathLike, participant: str | None = None,
                      out_dir: str | os.PathLike = RESPONSES_DIR):
    """An ipywidgets listening test. Without ``participant`` it first asks for a name. For each item it plays the
    real prime and the two continuations as A and B (blinded order), asks the two questions, and after the last
    item saves ``out_dir/<participant>.json`` (atomically). Returns the widget to display.

    Python callbacks need a kernel: in the static book the widget renders but records nothing (use the page of
    ``export_static_page`` there). Only the current item's audio exists as widgets, so a saved notebook does not
    carry every clip as base64."""
    import ipywidgets as widgets

    items = load_items(items_dir)
    root = widgets.VBox(layout=widgets.Layout(max_width="720px"))
    session = _Session(items, Path(out_dir), root, widgets)
    if participant is None:
        session.ask_name()
    else:
        session.start(participant)
    return root


class _Session:
    def __init__(self, items: ItemSet, out_dir: Path, root, widgets):
        self.items, self.out_dir, self.root, self.w = items, out_dir, root, widgets
        self.trials: list[Trial] = []
        self.answers: list[dict] = []
        self.participant = ""
        self.created = ""
        self.position = 0

    def _show(self, *children) -> None:
        for old in self.root.children:   # close the previous item's widgets: their state (audio) goes with them
            _close_tree(old)
        self.root.children = list(children)

    def ask_name(self) -> None:
        w = self.w
        name = w.Text(placeholder="your name or a nickname", description="Name:")
        go = w.Button(description="Start", button_style="primary")
        note = w.HTML()

        def start(_):
            try:
                self.start(name.value)
            except ListeningError as e:
                note.value = f"<span style='color:#b00'>{html.escape(str(e))}</span>"
        go.on_click(start)
        self._show(w.HTML(_INTRO_HTML), w.HBox([name, go]), note)

    def start(self, participant: str) -> None:
        self.participant = check_participant(participant)
        self.created = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
        self.trials, self.answers, self.position = presentation(self.items, self.participant), [], 0
        self.show_item()

    def _audio(self, key: str, trial: Trial):
        path = self.items.path(trial.item.file(key))
        return self.w.Audio(value=path.read_bytes(), format=path.suffix.lstrip(".").lower(), autoplay=False,
                            loop=False)

    def show_item(self) -> None:
        w, trial = self.w, self.trials[self.position]
        toggles = {q: w.ToggleButtons(options=[(ANSWER_LABELS[a], a) for a in ANSWERS], value=None)
                   for q in QUESTIONS}
        last = self.position == len(self.trials) - 1
        nxt = w.Button(description="Finish and save" if last else "Next", button_style="primary", disabled=True)

        def changed(_):
            nxt.disabled = any(t.value is None for t in toggles.values())

        def advance(_):
            self.answers.append({"item": trial.item.id, "a_model": trial.a_model, "b_model": trial.b_model,
                                 **{q: toggles[q].value for q in QUESTIONS}})
            self.position += 1
            if self.position < len(self.trials):
                self.show_item()
            else:
                self.finish()
        for t in toggles.values():
            t.observe(changed, names="value")
        nxt.on_click(advance)
        rows = [w.HTML(f"<b>Item {self.position + 1} of {len(self.trials)}</b> &nbsp; participant "
                       f"{html.escape(self.participant)}"),
                w.HTML("Real piano (the beginning that both excerpts continue):"), self._audio("prime", trial),
                w.HTML("Excerpt A:"), self._audio(trial.a, trial),
                w.HTML("Excerpt B:"), self._audio(trial.b, trial)]
        for q in QUESTIONS:
            rows += [w.HTML(html.escape(QUESTION_TEXT[q])), toggles[q]]
        self._show(*rows, nxt)

    def finish(self) -> None:
        doc = response_document(self.participant, self.answers, self.created)
        path = save_response(doc, self.out_dir)
        self._show(self.w.HTML(f"Thank you! {len(self.answers)} answers saved to <code>{html.escape(str(path))}"
                               f"</code>."))


def _close_tree(widget) -> None:
    for child in getattr(widget, "children", ()):
        _close_tree(child)
    widget.close()


_INTRO_HTML = (
    "<p>Each item starts with a short excerpt of <b>real piano</b>. Then two excerpts, <b>A</b> and <b>B</b>, "
    "each start with the same real excerpt and continue it with generated audio. For each item, say which of A "
    "and B has the better timbre and which is more musically coherent, or <i>Not sure</i> when you cannot tell "
    "or find them equally good.</p>")


# ---------------------------------------------------------------------------------------------------------------
# Kernel-free page

def _check_rel_dir(audio_rel_dir: str) -> str:
    """A relative folder of the page's audio, in URL form. Anything that could leave the site is refused: the
    page must work offline and load nothing from elsewhere."""
    rel = str(audio_rel_dir).replace(os.sep, "/").strip()
    if rel in ("", "."):
        return ""
    if (rel.startswith("/") or ":" in rel or "\\" in rel or any(part == ".." for part in rel.split("/"))
            or "//" in rel):
        raise ListeningError(f"audio_rel_dir={audio_rel_dir!r}: give a relative folder below the page (e.g. "
                             f"'audio'), without '..', a scheme or a leading '/'")
    return rel.rstrip("/") + "/"


def static_page_fragment(items_dir: str | os.PathLike, audio_rel_dir: str = "audio") -> str:
    """The listening test as an HTML fragment (a ``<div>`` and an inline ``<script>``) that works on its own page,
    in a notebook's HTML output and in a MyST page's ``{raw} html`` block. Audio is referred to as
    ``<audio_rel_dir>/<file>`` relative to the page; nothing is loaded from anywhere else.

    Model names are not in the visible page: the audio ``src`` are the neutral item files and the mapping from
    x/y to models sits in the script, which needs it to write ``a_model``/``b_model`` into the results."""
    items = load_items(items_dir)
    prefix = _check_rel_dir(audio_rel_dir)
    config = {"schema": SCHEMA_TAG,
              "items": [{"id": it.id, "models": dict(it.models)} for it in items.items]}
    key = hashlib.sha256(json.dumps(config, sort_keys=True).encode()).hexdigest()[:12]
    config["storageKey"] = f"listening-test:{key}"
    root_id = f"listening-test-{key}"
    # Script-safe JSON: ASCII only and no "</" that could end the <script> element early.
    config_js = json.dumps(config, ensure_ascii=True).replace("</", "<\\/")

    def audio(name: str, role: str) -> str:
        return (f'<audio controls preload="metadata" data-clip="{role}" '
                f'src="{html.escape(prefix + name, quote=True)}"></audio>')

    sections = []
    for it in items.items:
        # The x and y players sit in a hidden pool; the script moves them to the A and B slots per participant.
        sections.append(
            f'<section class="sl-item" data-item="{html.escape(it.id)}" style="display:none">\n'
            f'<p class="sl-progress"></p>\n'
            f'<div class="sl-clip"><span>Real piano</span>{audio(it.prime, "prime")}</div>\n'
            f'<p class="sl-note">Both excerpts begin with this real piano and continue it.</p>\n'
            f'<div class="sl-clip"><span>Excerpt A</span><span class="sl-slot" data-slot="A"></span></div>\n'
            f'<div class="sl-clip"><span>Excerpt B</span><span class="sl-slot" data-slot="B"></span></div>\n'
            f'<div class="sl-pool" style="display:none">{audio(it.x, "x")}{audio(it.y, "y")}</div>\n'
            + "".join(_question_html(it.id, q) for q in QUESTIONS)
            + '</section>')
    body = _PAGE_TEMPLATE.replace("__INTRO__", _INTRO_HTML).replace("__SECTIONS__", "\n".join(sections))
    script = _PAGE_SCRIPT.replace("__CONFIG__", config_js)
    return (f'<div class="listening-test" id="{root_id}">\n<style>{_PAGE_CSS.replace("#ROOT", "#" + root_id)}'
            f'</style>\n{body}\n</div>\n<script>\n(function () {{\nvar ROOT_ID = "{root_id}";\n{script}\n}})();\n'
            f'</script>\n')


def _question_html(item_id: str, question: str) -> str:
    name = html.escape(f"{item_id}-{question}")
    choices = "".join(f'<label><input type="radio" name="{name}" value="{html.escape(a)}"> '
                      f'{html.escape(ANSWER_LABELS[a])}</label> ' for a in ANSWERS)
    return (f'<fieldset class="sl-question" data-question="{question}"><legend>'
            f'{html.escape(QUESTION_TEXT[question])}</legend>{choices}</fieldset>\n')


def static_page_html(items_dir: str | os.PathLike, audio_rel_dir: str = "audio",
                     title: str = "Piano continuation listening test") -> str:
    """A standalone HTML document around ``static_page_fragment``."""
    return (f'<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
            f'<meta name="viewport" content="width=device-width, initial-scale=1">\n<title>{html.escape(title)}'
            f'</title>\n<style>body{{font-family:system-ui,sans-serif;max-width:760px;margin:2em auto;'
            f'padding:0 1em;line-height:1.45}}</style>\n</head>\n<body>\n<h1>{html.escape(title)}</h1>\n'
            f'{static_page_fragment(items_dir, audio_rel_dir)}</body>\n</html>\n')


def myst_raw_block(items_dir: str | os.PathLike, audio_rel_dir: str = "audio") -> str:
    """The fragment as a MyST ``{raw} html`` directive, to paste into a book page."""
    return "```{raw} html\n" + static_page_fragment(items_dir, audio_rel_dir) + "```\n"


def publish_audio(items_dir: str | os.PathLike, dest: str | os.PathLike) -> list[Path]:
    """Copy the items' audio (not the manifest, which names the models) into ``dest``; returns the copies."""
    items = load_items(items_dir)
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    copies = []
    for name in items.audio_files():
        target = dest / name
        if items.path(name).resolve() != target.resolve():
            shutil.copyfile(items.path(name), target)
        copies.append(target)
    return copies


def export_static_page(items_dir: str | os.PathLike, out_html_path: str | os.PathLike,
                       audio_rel_dir: str = "audio", *, copy_audio: bool = True) -> Path:
    """Write the standalone kernel-free page to ``out_html_path``; with ``copy_audio`` also copy the items'
    audio to ``<folder of the page>/<audio_rel_dir>/`` so the page works as soon as it is written. Returns the
    page's path."""
    out = Path(out_html_path)
    out.parent.mkdir(parents=True, exist_ok=True)
    text = static_page_html(items_dir, audio_rel_dir)
    if copy_audio:
        publish_audio(items_dir, out.parent / (_check_rel_dir(audio_rel_dir) or "."))
    _atomic_write(out, text)
    return out


_PAGE_CSS = """
#ROOT{border:1px solid #ccc;border-radius:6px;padding:1em;margin:1em 0}
#ROOT .sl-clip{display:flex;align-items:center;gap:1em;margin:.4em 0;flex-wrap:wrap}
#ROOT .sl-clip>span:first-child{min-width:9em}
#ROOT fieldset{border:1px solid #ddd;margin:.8em 0;padding:.4em .8em}
#ROOT fieldset label{margin-right:1.2em;white-space:nowrap}
#ROOT legend{font-size:1em;font-weight:normal;line-height:1.4;float:none;width:auto;margin:0;padding:0 .3em}
#ROOT button{margin:.3em .5em .3em 0;padding:.3em 1em}
#ROOT .sl-error{color:#b00}
#ROOT .sl-note{color:#555;font-size:90%}
"""

_PAGE_TEMPLATE = """<noscript><p>This listening test needs JavaScript.</p></noscript>
<div class="sl-view" data-view="start">
__INTRO__
<p class="sl-note">Your answers stay in this browser until you download them as a JSON file and send it to the
authors (or add it to <code>data/listening/</code> in the repository). Use the same name to come back later.</p>
<label>Your name or a nickname: <input type="text" maxlength="100" data-role="name"></label>
<button type="button" data-role="start">Start</button>
<p class="sl-error" data-role="start-error"></p>
</div>
<div class="sl-view" data-view="items" style="display:none">
__SECTIONS__
<p>
<button type="button" data-role="prev">Previous</button>
<button type="button" data-role="next" disabled>Next</button>
</p>
</div>
<div class="sl-view" data-view="done" style="display:none">
<p><b>Thank you!</b> You have answered every item.</p>
</div>
<div data-role="results" style="display:none">
<p><span data-role="answered"></span>
<a data-role="download" href="#" download="responses.json">Download results as JSON</a>
<button type="button" data-role="review">Review answers</button>
<button type="button" data-role="switch">Change participant</button></p>
<p class="sl-note" data-role="storage-note"></p>
</div>"""

# Plain ES2017, no libraries. blindHash must stay identical to blind_hash() above (a test checks both agree).
_PAGE_SCRIPT = r"""
var CONFIG = __CONFIG__;
var root = document.getElementById(ROOT_ID);
if (!root && document.currentScript) {
  root = document.currentScript.parentNode.querySelector("#" + ROOT_ID);
}
var ANSWERS = ["A", "B", "not sure"];
var QUESTIONS = ["quality", "coherence"];
var memory = {};
var storageOk = true;

function blindHash(text) {
  var bytes = new TextEncoder().encode(text), h = 0x811c9dc5;
  for (var i = 0; i < bytes.length; i++) { h = Math.imul(h ^ bytes[i], 0x01000193) >>> 0; }
  h ^= h >>> 16; h = Math.imul(h, 0x85ebca6b) >>> 0;
  h ^= h >>> 13; h = Math.imul(h, 0xc2b2ae35) >>> 0;
  h ^= h >>> 16;
  return h >>> 0;
}
function presentation(name) {
  var order = CONFIG.items.map(function (it) {
    return {item: it, key: blindHash(name + "\u0000order\u0000" + it.id),
            a: (blindHash(name + "\u0000ab\u0000" + it.id) & 1) ? "y" : "x"};
  });
  order.sort(function (p, q) { return p.key - q.key || (p.item.id < q.item.id ? -1 : p.item.id > q.item.id ? 1 : 0); });
  return order;
}
function loadState() {
  try {
    var text = window.localStorage.getItem(CONFIG.storageKey);
    return text ? JSON.parse(text) : {current: null, participants: {}};
  } catch (e) {
    storageOk = false;
    return memory.state || {current: null, participants: {}};
  }
}
function saveState(state) {
  memory.state = state;
  try { window.localStorage.setItem(CONFIG.storageKey, JSON.stringify(state)); }
  catch (e) { storageOk = false; }
}
function q(sel) { return root.querySelector(sel); }
function qa(sel) { return Array.prototype.slice.call(root.querySelectorAll(sel)); }
function show(view) {
  qa(".sl-view").forEach(function (el) { el.style.display = el.getAttribute("data-view") === view ? "" : "none"; });
}
function safeName(name) {
  var stem = name.replace(/[^A-Za-z0-9._-]+/g, "_").replace(/^[._]+|[._]+$/g, "");
  return (stem || "participant") + ".json";
}

var state = loadState();
var trials = [];
var position = 0;

function person() { return state.participants[state.current]; }
function complete(answer) { return answer && ANSWERS.indexOf(answer.quality) >= 0 && ANSWERS.indexOf(answer.coherence) >= 0; }

function resultsDocument() {
  var p = person(), items = [];
  CONFIG.items.forEach(function (it) {
    var ans = p.answers[it.id];
    if (!complete(ans)) { return; }
    var other = ans.a === "x" ? "y" : "x";
    items.push({item: it.id, a_model: it.models[ans.a], b_model: it.models[other],
                quality: ans.quality, coherence: ans.coherence});
  });
  return {schema: CONFIG.schema, participant: state.current, created: p.created, items: items};
}
function refreshResults() {
  var doc = resultsDocument(), box = q('[data-role="results"]'), link = q('[data-role="download"]');
  box.style.display = doc.items.length ? "" : "none";
  q('[data-role="answered"]').textContent = state.current + ": " + doc.items.length + " of " + CONFIG.items.length +
    " items answered.";
  link.href = "data:application/json;charset=utf-8," + encodeURIComponent(JSON.stringify(doc, null, 2) + "\n");
  link.setAttribute("download", safeName(state.current));
  q('[data-role="storage-note"]').textContent = storageOk ? "" :
    "This browser does not let the page keep your answers: download them before you leave the page.";
}
function showTrial() {
  var t = trials[position], p = person();
  qa("audio").forEach(function (a) { a.pause(); });
  qa(".sl-item").forEach(function (el) { el.style.display = "none"; });
  var sec = root.querySelector('.sl-item[data-item="' + t.item.id + '"]');
  sec.style.display = "";
  sec.querySelector(".sl-progress").textContent = "Item " + (position + 1) + " of " + trials.length;
  var other = t.a === "x" ? "y" : "x";
  sec.querySelector('[data-slot="A"]').appendChild(sec.querySelector('audio[data-clip="' + t.a + '"]'));
  sec.querySelector('[data-slot="B"]').appendChild(sec.querySelector('audio[data-clip="' + other + '"]'));
  var ans = p.answers[t.item.id] || {};
  QUESTIONS.forEach(function (question) {
    Array.prototype.forEach.call(sec.querySelectorAll('[data-question="' + question + '"] input'), function (input) {
      input.checked = ans[question] === input.value;
    });
  });
  q('[data-role="prev"]').disabled = position === 0;
  var next = q('[data-role="next"]');
  next.textContent = position === trials.length - 1 ? "Finish" : "Next";
  next.disabled = !complete(ans);
  p.position = position;
  saveState(state);
  show("items");
  refreshResults();
}
function start(raw) {
  var name = (raw || "").trim();
  if (!name) { q('[data-role="start-error"]').textContent = "Please enter a name or nickname."; return; }
  if (name.length > 100) { q('[data-role="start-error"]').textContent = "At most 100 characters, please."; return; }
  q('[data-role="start-error"]').textContent = "";
  if (!state.participants[name]) {
    state.participants[name] = {created: new Date().toISOString(), answers: {}, position: 0};
  }
  state.current = name;
  trials = presentation(name);
  position = Math.min(person().position || 0, trials.length - 1);
  showTrial();
}
qa(".sl-question input").forEach(function (input) {
  input.addEventListener("change", function () {
    var t = trials[position], p = person();
    var ans = p.answers[t.item.id] || {a: t.a};
    ans.a = t.a;
    ans[input.closest("[data-question]").getAttribute("data-question")] = input.value;
    p.answers[t.item.id] = ans;
    saveState(state);
    q('[data-role="next"]').disabled = !complete(ans);
    refreshResults();
  });
});
q('[data-role="start"]').addEventListener("click", function () { start(q('[data-role="name"]').value); });
q('[data-role="name"]').addEventListener("keydown", function (e) { if (e.key === "Enter") { start(this.value); } });
q('[data-role="prev"]').addEventListener("click", function () { if (position > 0) { position -= 1; showTrial(); } });
q('[data-role="next"]').addEventListener("click", function () {
  if (position < trials.length - 1) { position += 1; showTrial(); }
  else { qa("audio").forEach(function (a) { a.pause(); }); show("done"); refreshResults(); }
});
q('[data-role="review"]').addEventListener("click", function () { position = 0; showTrial(); });
q('[data-role="switch"]').addEventListener("click", function () {
  state.current = null; saveState(state);
  qa("audio").forEach(function (a) { a.pause(); });
  q('[data-role="results"]').style.display = "none";
  q('[data-role="name"]').value = "";
  show("start");
});
root.listeningTest = {blindHash: blindHash, presentation: presentation, results: resultsDocument};
if (state.current && state.participants[state.current]) {
  q('[data-role="name"]').value = state.current;
  start(state.current);
}
"""


# ---------------------------------------------------------------------------------------------------------------
# Analysis

@dataclasses.dataclass
class Summary:
    """Counts of preferences per question: ``counts[question][choice]`` with choice "sequnet", "wavenet" or
    "not sure"; ``by_item[item][question][choice]`` the same per item."""
    counts: dict[str, dict[str, int]]
    by_item: dict[str, dict[str, dict[str, int]]]
    participants: int

    @property
    def empty(self) -> bool:
        return self.participants == 0

    def answers(self, question: str) -> int:
        return sum(self.counts[question].values())

    def markdown(self) -> str:
        if self.empty:
            return "No responses yet."
        rows = ["| Question | Seq-U-Net preferred | WaveNet preferred | Not sure | Answers |",
                "|---|---:|---:|---:|---:|"]
        for q in QUESTIONS:
            c, n = self.counts[q], self.answers(q)
            rows.append(f"| {QUESTION_LABELS[q]} | " + " | ".join(f"{c[k]} ({100 * c[k] / n:.0f} %)"
                                                                 for k in CHOICES) + f" | {n} |")
        return "\n".join(rows)


CHOICES = ("sequnet", "wavenet", "not sure")


def _empty_counts() -> dict[str, dict[str, int]]:
    return {q: dict.fromkeys(CHOICES, 0) for q in QUESTIONS}


def summarise(responses: Iterable[Mapping[str, Any]]) -> Summary:
    """Preference counts over valid response documents (each is checked; an invalid one raises ResponseError).
    With no responses the summary is empty (``summary.empty``): nothing is made up."""
    counts, by_item, n = _empty_counts(), {}, 0
    for i, doc in enumerate(responses):
        check_response(doc, f"responses[{i}]")
        n += 1
        for entry in doc["items"]:
            per_item = by_item.setdefault(entry["item"], _empty_counts())
            for q in QUESTIONS:
                answer = entry[q]
                choice = entry["a_model"] if answer == "A" else entry["b_model"] if answer == "B" else "not sure"
                counts[q][choice] += 1
                per_item[q][choice] += 1
    return Summary(counts, dict(sorted(by_item.items())), n)


@dataclasses.dataclass(frozen=True)
class BinomialResult:
    """Exact two-sided binomial test of H0: Seq-U-Net and WaveNet are preferred equally often, over the decided
    answers (not-sure excluded), with a Wilson 95 % interval for Seq-U-Net's share. Every answer counts as an
    independent trial, although one participant gives many answers: read the p-value as descriptive."""
    question: str
    sequnet: int
    wavenet: int
    not_sure: int
    p_value: float | None      # None when no answer was decided
    share: float | None        # sequnet / (sequnet + wavenet)
    ci95: tuple[float, float] | None

    @property
    def decided(self) -> int:
        return self.sequnet + self.wavenet

    def __str__(self) -> str:
        label = QUESTION_LABELS[self.question]
        if self.p_value is None:
            return f"{label}: no decided answers ({self.not_sure} not sure), so no test."
        return (f"{label}: Seq-U-Net preferred in {self.sequnet} of {self.decided} decided answers "
                f"({100 * self.share:.1f} %, Wilson 95 % CI {100 * self.ci95[0]:.1f}–{100 * self.ci95[1]:.1f} %), "
                f"two-sided exact binomial p = {self.p_value:.4g}; {self.not_sure} not sure.")


def binomial_test(summary: Summary) -> list[BinomialResult]:
    """One ``BinomialResult`` per question (timbre, coherence)."""
    from scipy.stats import binomtest

    results = []
    for q in QUESTIONS:
        c = summary.counts[q]
        k, n = c["sequnet"], c["sequnet"] + c["wavenet"]
        if n == 0:
            results.append(BinomialResult(q, k, c["wavenet"], c["not sure"], None, None, None))
            continue
        test = binomtest(k, n, 0.5, alternative="two-sided")
        ci = test.proportion_ci(confidence_level=0.95, method="wilson")
        results.append(BinomialResult(q, k, c["wavenet"], c["not sure"], float(test.pvalue), k / n,
                                      (float(ci.low), float(ci.high))))
    return results


FIGURE3_COLOURS = {"sequnet": "#1f77b4", "not sure": "#bbbbbb", "wavenet": "#ff7f0e"}


def plot_figure3(summary: Summary, ax=None):
    """The paper's Figure 3: one horizontal bar per question, stacked as Seq-U-Net preferred / not sure /
    WaveNet preferred, in per cent of the answers. Without responses the axes say "No responses yet"."""
    import matplotlib.pyplot as plt

    if ax is None:
        _, ax = plt.subplots(figsize=(7, 2.4), layout="constrained")
    if summary.empty:
        ax.text(0.5, 0.5, "No responses yet", ha="center", va="center", transform=ax.transAxes, fontsize=12)
        ax.set_axis_off()
        return ax
    labels = [QUESTION_LABELS[q] for q in QUESTIONS]
    left = np.zeros(len(QUESTIONS))
    for choice in ("sequnet", "not sure", "wavenet"):
        share = np.array([100 * summary.counts[q][choice] / max(summary.answers(q), 1) for q in QUESTIONS])
        name = MODEL_NAMES.get(choice, "Not sure")
        bars = ax.barh(labels, share, left=left, color=FIGURE3_COLOURS[choice],
                       label=name if choice == "not sure" else f"{name} preferred")
        for bar, value in zip(bars, share):
            if value >= 5:   # smaller segments have no room for a label
                ax.text(bar.get_x() + bar.get_width() / 2, bar.get_y() + bar.get_height() / 2, f"{value:.0f} %",
                        ha="center", va="center", fontsize=9)
        left += share
    ax.set_xlim(0, 100)
    ax.set_xlabel("answers (%)")
    ax.invert_yaxis()   # first question on top, as in the paper
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.35), ncol=3, frameon=False)
    n = summary.answers(QUESTIONS[0])
    ax.set_title(f"Listening test: {summary.participants} participant{'s' if summary.participants != 1 else ''}, "
                 f"{n} answers per question")
    return ax
