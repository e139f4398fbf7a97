"""Listening-test responses: the format (``RESPONSE_SCHEMA``, checked with ``jsonschema``), reading a folder of
response files safely (``load_responses``) and writing one (``response_document``, ``save_response``).

Answers are kept as one JSON document per participant. The document names the item set it answers
(``ItemSet.set_id``) and, per item, which clip (file name) the participant heard as A and which as B; it names no
model: the analysis maps each clip to its model through the key (module ``key``), which the page never sees. A
response file is read with limits checked before it is parsed (size, nesting depth), must follow the schema, must
answer the item set it is checked against (a response to another set is refused, naming the file), may answer
only that set's items with their own clips, and its participant may appear in no other file, where "Ann", "ann"
and " ann " are one participant (``participant_key``).
"""
from __future__ import annotations

import datetime as _dt
import json
import os
import re
from pathlib import Path
from typing import Any, Mapping, Sequence

import jsonschema

from sequnet.analysis.listening.common import (ANSWERS, ITEM_ID_PATTERN, MAX_PARTICIPANT_CHARS, JSONLimitError,
                                               ListeningError, ResponseError, atomic_write, check_participant,
                                               participant_key, read_json)
from sequnet.analysis.listening.items import CLIP_NAME_PATTERN, ItemSet

SCHEMA_TAG = "sequnet-listening/2"
# A response of 20 items is about 2 kB; the limits leave room for far larger tests and refuse, before parsing,
# a file that could only exhaust memory or the parser's recursion (the format nests 3 deep).
MAX_RESPONSE_BYTES = 2 ** 20
MAX_RESPONSE_DEPTH = 8
MAX_ITEMS_PER_RESPONSE = 1000

RESPONSE_SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "title": "Seq-U-Net listening test: the answers of one participant",
    "description": "One file per participant. The item set answered; for each answered item, which clip (file "
                   "name) was played as A and which as B, and the answer to each question: 'A', 'B' or 'not "
                   "sure'. Two more rules than the schema states: a differs from b, and no item is answered twice.",
    "type": "object",
    "required": ["schema", "participant", "created", "item_set", "items"],
    "additionalProperties": False,
    "properties": {
        "schema": {"const": SCHEMA_TAG},
        "participant": {"type": "string", "minLength": 1, "maxLength": MAX_PARTICIPANT_CHARS, "pattern": r"\S"},
        "created": {"type": "string", "format": "date-time",
                    "description": "ISO 8601 date and time, e.g. 2025-01-02T03:04:05Z"},
        "item_set": {"type": "string", "pattern": "^[0-9a-f]{16}$",
                     "description": "the set_id of the item set answered (its items.json)"},
        "items": {
            "type": "array",
            "minItems": 1,
            "maxItems": MAX_ITEMS_PER_RESPONSE,
            "items": {
                "type": "object",
                "required": ["item", "a", "b", "quality", "coherence"],
                "additionalProperties": False,
                "properties": {
                    "item": {"type": "string", "pattern": ITEM_ID_PATTERN},
                    "a": {"type": "string", "pattern": CLIP_NAME_PATTERN},
                    "b": {"type": "string", "pattern": CLIP_NAME_PATTERN},
                    "quality": {"enum": list(ANSWERS)},
                    "coherence": {"enum": list(ANSWERS)},
                },
            },
        },
    },
}

# jsonschema checks "date-time" only when an optional RFC 3339 package is installed; this checker always does, and
# accepts what the page writes (JavaScript's toISOString) and what Python's isoformat writes.
_FORMATS = jsonschema.FormatChecker(formats=())


@_FORMATS.checks("date-time")
def _is_datetime(value: object) -> bool:
    if not isinstance(value, str):
        return True   # the "type" keyword reports it
    if "T" not in value and " " not in value:
        return False
    try:
        _dt.datetime.fromisoformat(value)
    except ValueError:
        return False
    return True


jsonschema.Draft202012Validator.check_schema(RESPONSE_SCHEMA)
_VALIDATOR = jsonschema.Draft202012Validator(RESPONSE_SCHEMA, format_checker=_FORMATS)


def _where(error: jsonschema.ValidationError) -> str:
    where = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in error.absolute_path).lstrip(".")
    return where or "the document"


def _reason(error: jsonschema.ValidationError) -> str:
    """One jsonschema error in words a participant can act on."""
    kind, rule, value = error.validator, error.validator_value, error.instance
    if kind == "const":
        return f"expected {rule!r}, got {value!r}"
    if kind == "enum":
        return f"{value!r} is not one of {', '.join(repr(v) for v in rule)}"
    if kind == "type":
        return f"expected a JSON {rule}, got {type(value).__name__} {value!r}"[:200]
    if kind == "required":
        return f"missing field(s) {', '.join(k for k in rule if k not in value)}"
    if kind == "additionalProperties":
        return f"unknown field(s) {', '.join(sorted(set(value) - set(error.schema.get('properties', {}))))}"
    if kind == "minLength":
        return "must not be empty"
    if kind == "maxLength":
        return f"longer than {rule} characters"
    if kind == "pattern":
        return f"{value!r} does not match {rule}"[:200]
    if kind == "format":
        return f"{value!r} is not an ISO 8601 date and time (e.g. 2025-01-02T03:04:05Z)"
    if kind == "minItems":
        return f"needs at least {rule} entr{'y' if rule == 1 else 'ies'}"
    if kind == "maxItems":
        return f"has {len(value)} entries, at most {rule} are allowed"
    return error.message[:200]


def response_problems(doc: Any) -> list[str]:
    """Every way in which ``doc`` breaks the response format (empty: valid)."""
    # dict.fromkeys: "required" and "additionalProperties" report each field once, not once per field.
    problems = list(dict.fromkeys(f"{_where(e)}: {_reason(e)}" for e in _VALIDATOR.iter_errors(doc)))
    if problems:
        return problems
    seen: set[str] = set()
    for i, entry in enumerate(doc["items"]):
        if entry["a"] == entry["b"]:
            problems.append(f"items[{i}]: a and b are both {entry['a']!r}")
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


def _item_set(items: ItemSet) -> ItemSet:
    if not isinstance(items, ItemSet):
        raise ListeningError(f"items={items!r}: give the ItemSet (load_items) that the responses answer")
    return items


def item_set_problems(doc: Mapping[str, Any], items: ItemSet) -> list[str]:
    """What in a valid ``doc`` does not fit ``items``: another item set, an unknown item, clips not of the item."""
    if doc["item_set"] != items.set_id:
        return [f"answers the item set {doc['item_set']!r}, not the items in {items.folder} ({items.set_id!r}): a "
                f"response to another listening test (other items, or an earlier run's); analyse it with the items "
                f"it was made for, or leave it out of this folder"]
    known = {it.id: it for it in items.items}
    listed = ", ".join(sorted(known)[:3]) + (", ..." if len(known) > 3 else "")
    problems = []
    for i, entry in enumerate(doc["items"]):
        item = known.get(entry["item"])
        if item is None:
            problems.append(f"items[{i}]: item {entry['item']!r} is not in the item set ({len(known)} items: "
                            f"{listed})")
        elif sorted((entry["a"], entry["b"])) != sorted(item.clips):
            problems.append(f"items[{i}]: a and b ({entry['a']!r}, {entry['b']!r}) are not the two clips of "
                            f"{item.id} ({', '.join(item.clips)})")
    return problems


def read_response(path: str | os.PathLike, items: ItemSet) -> dict:
    """The response document in the file ``path``, checked: size and nesting depth before it is parsed, then
    the schema, then that it answers the item set ``items`` with its own clips. ResponseError names the file and
    why."""
    path, items = Path(path), _item_set(items)
    try:
        doc = read_json(path, MAX_RESPONSE_BYTES, MAX_RESPONSE_DEPTH)
    except JSONLimitError as e:
        raise ResponseError([(path.name, f"refused before parsing: {e}")]) from None
    except UnicodeDecodeError as e:
        raise ResponseError([(path.name, f"not UTF-8 text ({e})")]) from None
    except ValueError as e:
        raise ResponseError([(path.name, f"not valid JSON ({e})")]) from None
    found = response_problems(doc) or item_set_problems(doc, items)
    if found:
        raise ResponseError([(path.name, "; ".join(found))])
    return doc


def load_responses(folder: str | os.PathLike, items: ItemSet) -> list[dict]:
    """Every response document in ``folder`` (its ``*.json`` files, sorted by name; other files such as the
    README are not responses), each checked by ``read_response`` against the item set ``items``. Raises
    ResponseError listing each malformed file and why, and each participant who appears in two files (their
    answers would count twice; names are compared by ``participant_key``); nothing is skipped silently."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder} is not a folder of listening-test responses")
    items = _item_set(items)
    docs, problems, owner = [], [], {}
    for path in sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() == ".json"):
        try:
            doc = read_response(path, items)
        except ResponseError as e:
            problems += e.problems
            continue
        who = participant_key(doc["participant"])
        if who in owner:
            first, name = owner[who]
            same = "" if name == doc["participant"] else f" as {name!r} (the same name, ignoring case and blanks)"
            problems.append((path.name, f"participant {doc['participant']!r} also answered in {first}{same}; "
                                        f"keep one file per participant"))
            continue
        owner[who] = (path.name, doc["participant"])
        docs.append(doc)
    if problems:
        raise ResponseError(problems)
    return docs


def response_document(participant: str, item_set: str, answers: Sequence[Mapping[str, str]],
                      created: str | None = None) -> dict:
    """A valid response document to the item set ``item_set`` (its ``set_id``) from ``answers`` (dicts with
    item, a, b, quality, coherence)."""
    doc = {"schema": SCHEMA_TAG, "participant": check_participant(participant),
           "created": created or _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
           "item_set": item_set,
           "items": [{k: a[k] for k in ("item", "a", "b", "quality", "coherence")} for a in answers]}
    return check_response(doc, f"responses of {participant!r}")


def response_filename(participant: str) -> str:
    """``<participant>.json`` with anything but letters, digits, '.', '_' and '-' replaced (the page uses the
    same rule for its download)."""
    stem = re.sub(r"[^A-Za-z0-9._-]+", "_", check_participant(participant)).strip("._")
    return f"{stem or 'participant'}.json"


def save_response(doc: Mapping[str, Any], out_dir: str | os.PathLike) -> Path:
    """Write a valid response document to ``out_dir/<participant>.json`` atomically (a reader never sees half a
    file). The participant's own file (same ``participant_key``) is replaced; refused are another participant's
    file whose name sanitises to the same file name, and a second file for this participant under another file
    name ("Ann" after "ann"), which ``load_responses`` would reject."""
    check_response(dict(doc))
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    target = out_dir / response_filename(doc["participant"])
    who = participant_key(doc["participant"])
    for path in sorted(out_dir.glob("*.json")):
        other = _participant_of(path)
        if path.name == target.name and (other is None or participant_key(other) != who):
            raise ListeningError(f"{target} holds the answers of {other!r}, not {doc['participant']!r}; choose "
                                 f"another participant name")
        if path.name != target.name and other is not None and participant_key(other) == who:
            raise ListeningError(f"{path} already holds answers of {other!r}, the same participant as "
                                 f"{doc['participant']!r}; remove that file to answer again, or choose another "
                                 f"participant name")
    atomic_write(target, json.dumps(doc, indent=2, ensure_ascii=False) + "\n")
    return target


def _participant_of(path: Path) -> str | None:
    """The participant named in a response file, or None when it is unreadable or names none."""
    try:
        other = read_json(path, MAX_RESPONSE_BYTES, MAX_RESPONSE_DEPTH)
    except (OSError, ValueError):
        return None
    name = other.get("participant") if isinstance(other, dict) else None
    return name if isinstance(name, str) else None
