"""How the published pages name things: the paper's names of tasks and models, and any string from a record or a
benchmark file made literal Markdown text (:func:`text`): HTML-escaped, so that a ``<script>`` in a device name
stays text, and with Markdown's table and emphasis characters escaped, so that a ``|`` cannot split a table row."""
from __future__ import annotations

import html
import re

TASK_NAMES = {"char_ptb": "Char-LM (PTB)", "word_ptb": "Word-LM (PTB)", "muse": "M-Muse", "nottingham": "M-Nott",
              "jsb": "M-JSB", "piano_midi": "M-Piano-midi", "piano_audio": "Piano (audio)"}
MODEL_NAMES = {"tcn": "TCN", "sequnet": "Seq-U-Net", "wavenet": "WaveNet"}
# Markdown's (and MyST's) characters with a meaning inline: escaped with a backslash so that text stays text.
_MARKDOWN = re.compile(r"([\\`*_\[\]{}|$~#!])")


def text(value) -> str:
    """``value`` as literal text in a Markdown table cell of the page: no HTML, no emphasis, no cell break."""
    return html.escape(_MARKDOWN.sub(r"\\\1", str(value)), quote=False)


def task_name(task: str) -> str:
    return TASK_NAMES.get(task) or text(task)


def model_name(task: str, model: str) -> str:
    name = MODEL_NAMES.get(model) or text(model)
    return name + " (residual)" if (task, model) == ("piano_audio", "sequnet") else name
