"""What every part of the listening test shares: the models and questions, the errors, participant names, a
bounded JSON reader and an atomic file write."""
from __future__ import annotations

import json
import os
import re
import tempfile
import unicodedata
from pathlib import Path
from typing import Any, Sequence

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
# What a participant reads first, in Jupyter and on the page.
INTRO_HTML = (
    "<p>Each item starts with a short excerpt of <b>real piano</b>. Then two excerpts, <b>A</b> and <b>B</b>, "
    "each start with the same real excerpt and continue it with generated audio. For each item, say which of A "
    "and B has the better timbre and which is more musically coherent, or <i>Not sure</i> when you cannot tell "
    "or find them equally good.</p>")
ITEM_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$"
MAX_PARTICIPANT_CHARS = 100


class ListeningError(ValueError):
    """A malformed item folder, response document or argument; the message says what and where."""


class ResponseError(ListeningError):
    """One or more response files are malformed; ``problems`` lists (file name, reason)."""

    def __init__(self, problems: Sequence[tuple[str, str]]):
        self.problems = list(problems)
        lines = "\n".join(f"  {name}: {reason}" for name, reason in self.problems)
        super().__init__(f"{len(self.problems)} malformed listening-test response file(s):\n{lines}")


# ---------------------------------------------------------------------------------------------------------------
# Participants

def check_participant(participant: Any) -> str:
    """The participant's name without surrounding blanks (as the page's JavaScript trims it)."""
    if not isinstance(participant, str) or not participant.strip():
        raise ListeningError(f"participant={participant!r}: give a non-empty name or nickname")
    name = participant.strip()
    if len(name) > MAX_PARTICIPANT_CHARS:
        raise ListeningError(f"participant={participant!r}: at most {MAX_PARTICIPANT_CHARS} characters")
    return name


def participant_key(participant: str) -> str:
    """Who a participant is, for counting: "Ann", "ann" and " ann  " are one person. Unicode NFKC (so a
    full-width or composed letter equals its plain form), runs of blanks as one space, stripped, case-folded.
    The name as typed still decides the A/B order (``presentation``), as it does on the page."""
    return " ".join(unicodedata.normalize("NFKC", participant).split()).casefold()


# ---------------------------------------------------------------------------------------------------------------
# Bounded JSON

class JSONLimitError(ValueError):
    """A JSON file over the size or nesting limit; raised before ``json.loads`` sees it."""


# A string (escapes skipped; an unterminated one runs to the end) or one bracket. Strings are matched whole so
# that brackets inside them do not count as nesting.
_JSON_TOKEN = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"?|[\[\]{}]', re.DOTALL)


def json_depth(text: str, stop_above: int | None = None) -> int:
    """The deepest nesting of arrays and objects in JSON ``text``, by a flat scan (no recursion, so a file of
    100,000 '[' costs a loop, not a RecursionError). Stops early once the depth exceeds ``stop_above``."""
    depth = deepest = 0
    for token in _JSON_TOKEN.finditer(text):
        ch = token.group()
        if ch in "[{":
            depth += 1
            if depth > deepest:
                deepest = depth
                if stop_above is not None and deepest > stop_above:
                    break
        elif ch in "]}":
            depth -= 1
    return deepest


def read_json(path: str | os.PathLike, max_bytes: int, max_depth: int) -> Any:
    """Parse the JSON file ``path`` after checking, in this order, that it has at most ``max_bytes`` bytes
    (never reading more than one byte beyond), is UTF-8, and nests arrays and objects at most ``max_depth``
    deep. Raises JSONLimitError for a file over a limit and ValueError (UnicodeDecodeError, JSONDecodeError)
    for one that is not UTF-8 JSON; each message says why."""
    with open(path, "rb") as f:
        data = f.read(max_bytes + 1)
    if len(data) > max_bytes:
        size = os.path.getsize(path)
        raise JSONLimitError(f"file too large: {size:,} bytes, the limit is {max_bytes:,} bytes")
    text = data.decode("utf-8")
    depth = json_depth(text, stop_above=max_depth)
    if depth > max_depth:
        raise JSONLimitError(f"nested too deeply: more than {max_depth} levels of arrays and objects")
    return json.loads(text)


def read_data_file(path: Path, max_bytes: int, max_depth: int, missing: str) -> Any:
    """``read_json`` for the test's own files (manifest, key): FileNotFoundError saying ``missing`` (how to make
    the file) when it is absent, ListeningError naming the file when it is over a limit or not JSON."""
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found: {missing}")
    try:
        return read_json(path, max_bytes, max_depth)
    except JSONLimitError as e:
        raise ListeningError(f"{path}: {e}") from None
    except ValueError as e:   # not UTF-8, not JSON
        raise ListeningError(f"{path}: not valid JSON ({e})") from None


def atomic_write(target: Path, text: str) -> None:
    """Write ``text`` to ``target`` through a temporary file in the same folder and a rename, so a reader never
    sees half a file."""
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", dir=target.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.chmod(tmp, 0o644)   # mkstemp makes the file private; these are shared data files
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
