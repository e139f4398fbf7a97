"""The listening test in Jupyter: an ipywidgets session that saves the participant's response file."""
from __future__ import annotations

import datetime as _dt
import html
import os
from pathlib import Path

from sequnet.analysis.listening.common import (ANSWER_LABELS, ANSWERS, INTRO_HTML, QUESTION_TEXT, QUESTIONS,
                                               ListeningError, check_participant)
from sequnet.analysis.listening.items import ItemSet, Trial, load_items, presentation
from sequnet.analysis.listening.responses import response_document, save_response


def listening_session(items_dir: str | os.PathLike, participant: str | None = None,
                      out_dir: str | os.PathLike | None = None):
    """An ipywidgets listening test. Without ``participant`` it first asks for a name. For each item it plays the
    real prime and the two continuations as A and B (blinded order), asks the two questions, and after the last
    item saves ``out_dir/<participant>.json`` (atomically). Returns the widget to display. ``out_dir`` is
    required: the caller knows where responses belong (``data/listening`` in the repository, for the notebook).

    Python callbacks need a kernel: in a static page the widget would render but record nothing, so the
    listening chapter shows it only when asked (its kernel-free page, ``static_page_fragment``, records in the
    browser). Only the current item's audio exists as widgets, so a saved notebook does not carry every clip as
    base64."""
    import ipywidgets as widgets

    if out_dir is None:
        raise ListeningError("listening_session: give out_dir, the folder the participant's response file is saved "
                             "in (e.g. data/listening in the repository)")
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
        self._show(w.HTML(INTRO_HTML), w.HBox([name, go]), note)

    def start(self, participant: str) -> None:
        self.participant = check_participant(participant)
        self.created = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
        self.trials, self.answers, self.position = presentation(self.items, self.participant), [], 0
        self.show_item()

    def _audio(self, name: str):
        path = self.items.path(name)
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
            self.answers.append({"item": trial.item.id, "a": trial.a, "b": trial.b,
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
                w.HTML("Real piano (the beginning that both excerpts continue):"), self._audio(trial.item.prime),
                w.HTML("Excerpt A:"), self._audio(trial.a),
                w.HTML("Excerpt B:"), self._audio(trial.b)]
        for q in QUESTIONS:
            rows += [w.HTML(html.escape(QUESTION_TEXT[q])), toggles[q]]
        self._show(*rows, nxt)

    def finish(self) -> None:
        doc = response_document(self.participant, self.items.set_id, self.answers, self.created)
        path = save_response(doc, self.out_dir)
        self._show(self.w.HTML(f"Thank you! {len(self.answers)} answers saved to <code>{html.escape(str(path))}"
                               f"</code>."))


def _close_tree(widget) -> None:
    for child in getattr(widget, "children", ()):
        _close_tree(child)
    widget.close()
