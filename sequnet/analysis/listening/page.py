"""The kernel-free listening test: a self-contained HTML page (``export_static_page``) or fragment
(``static_page_fragment``) whose script keeps the answers in the browser's localStorage and
offers them as a JSON download in the response format. The markup, style and script are the package files
``page.html``, ``page.css`` and ``page.js``.
"""
from __future__ import annotations

import functools
import hashlib
import html
import importlib.resources
import json
import os
import re
from pathlib import Path

from sequnet.analysis.listening.common import (ANSWER_LABELS, ANSWERS, INTRO_HTML, QUESTION_TEXT, QUESTIONS,
                                               ListeningError, atomic_write)
from sequnet.analysis.listening.items import load_items, publish_audio
from sequnet.analysis.listening.responses import SCHEMA_TAG


# The comment a page file opens with is for whoever edits the file, not for the page.
_HEADER_COMMENT = re.compile(r"\A(?:<!--.*?-->\n|/\*.*?\*/\n|(?://[^\n]*\n)+)", re.DOTALL)


@functools.cache
def _resource(name: str) -> str:
    """A page file shipped in this package (pyproject's package-data lists them), without its opening comment."""
    text = importlib.resources.files(__package__).joinpath(name).read_text(encoding="utf-8")
    return _HEADER_COMMENT.sub("", text, count=1)


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

    The page holds no model identity: the audio ``src`` are the items' random file names, and the script knows
    only each item's two clips; the response it offers records which clip was A, and the analysis maps clips to
    models through the key, which never reaches the page."""
    items = load_items(items_dir)
    prefix = _check_rel_dir(audio_rel_dir)
    config = {"schema": SCHEMA_TAG, "itemSet": items.set_id,
              "items": [{"id": it.id, "clips": list(it.clips)} for it in items.items]}
    key = hashlib.sha256(json.dumps(config, sort_keys=True).encode()).hexdigest()[:12]
    config["storageKey"] = f"listening-test:{key}"
    root_id = f"listening-test-{key}"
    # Script-safe JSON: ASCII only and no "</" that could end the <script> element early.
    config_js = json.dumps(config, ensure_ascii=True).replace("</", "<\\/")

    def audio(name: str) -> str:
        return (f'<audio controls preload="metadata" data-clip="{html.escape(name, quote=True)}" '
                f'src="{html.escape(prefix + name, quote=True)}"></audio>')

    sections = []
    for it in items.items:
        # The two clips' players sit in a hidden pool; the script moves them to the A and B slots per participant.
        sections.append(
            f'<section class="sl-item" data-item="{html.escape(it.id)}" style="display:none">\n'
            f'<p class="sl-progress"></p>\n'
            f'<div class="sl-clip"><span>Real piano</span>{audio(it.prime)}</div>\n'
            f'<p class="sl-note">Both excerpts begin with this real piano and continue it.</p>\n'
            f'<div class="sl-clip"><span>Excerpt A</span><span class="sl-slot" data-slot="A"></span></div>\n'
            f'<div class="sl-clip"><span>Excerpt B</span><span class="sl-slot" data-slot="B"></span></div>\n'
            f'<div class="sl-pool" style="display:none">{"".join(audio(c) for c in it.clips)}</div>\n'
            + "".join(_question_html(it.id, q) for q in QUESTIONS)
            + '</section>')
    # The sections are filled in last, so no text inside them is taken for a placeholder.
    body = _resource("page.html").rstrip("\n").replace("__INTRO__", INTRO_HTML, 1)
    body = body.replace("__SECTIONS__", "\n".join(sections), 1)
    script = _resource("page.js").replace("__CONFIG__", config_js, 1)
    css = _resource("page.css").replace("#ROOT", "#" + root_id)
    return (f'<div class="listening-test" id="{root_id}">\n<style>\n{css}</style>\n{body}\n</div>\n<script>\n'
            f'(function () {{\nvar ROOT_ID = "{root_id}";\n\n{script}\n}})();\n</script>\n')


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




def book_audio_dir(items_dir: str | os.PathLike, out_dir: str | os.PathLike) -> str:
    """Where a page written from the working directory finds the items' audio, as ``audio_rel_dir``: the items
    folder itself when it lies below the working directory (a ``sequnet run``: the piano run's folder, which the
    book publishes, so each clip is stored and published once), else a copy in ``<out_dir>/audio``."""
    items, here = Path(items_dir).resolve(), Path.cwd().resolve()
    if not items.is_relative_to(here):
        items = Path(out_dir).resolve() / "audio"
        publish_audio(items_dir, items)
    return Path(os.path.relpath(items, here)).as_posix()


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
    atomic_write(out, text)
    return out
