"""Counting the answers: ``summarise`` (preferences per question, one vote per participant and item) and
``binomial_test`` (is Seq-U-Net's share of the decided answers more than chance?)."""
from __future__ import annotations

import dataclasses
from typing import Any, Iterable, Mapping

from sequnet.analysis.listening.common import QUESTION_LABELS, QUESTIONS, ResponseError, participant_key
from sequnet.analysis.listening.key import Key
from sequnet.analysis.listening.responses import check_response, item_set_problems

CHOICES = ("sequnet", "wavenet", "not sure")


@dataclasses.dataclass(frozen=True)
class Duplicate:
    """A second vote of one participant on one item: ``responses[kept]`` counts, ``responses[dropped]`` not."""
    participant: str            # the normalised name (``participant_key``)
    item: str
    kept: int
    dropped: int

    def __str__(self) -> str:
        return (f"{self.participant!r} answered {self.item} in responses[{self.dropped}] and again in "
                f"responses[{self.kept}]; the later answer counts")


@dataclasses.dataclass
class Summary:
    """Counts of preferences per question: ``counts[question][choice]`` with choice "sequnet", "wavenet" or
    "not sure"; ``by_item[item][question][choice]`` the same per item. ``participants`` counts distinct
    normalised names; ``duplicates`` lists the votes that a later one replaced."""
    counts: dict[str, dict[str, int]]
    by_item: dict[str, dict[str, dict[str, int]]]
    participants: int
    duplicates: tuple[Duplicate, ...] = ()

    @property
    def empty(self) -> bool:
        return self.participants == 0

    def answers(self, question: str) -> int:
        return sum(self.counts[question].values())

    def item_majorities(self, question: str) -> dict[str, int]:
        """How many items each model won on ``question`` (more votes than the other), and how many tied: the
        paper's "better continuations ... in 15 out of the 20 provided examples"."""
        won = {"sequnet": 0, "wavenet": 0, "tie": 0}
        for per_item in self.by_item.values():
            s, w = per_item[question]["sequnet"], per_item[question]["wavenet"]
            won["sequnet" if s > w else "wavenet" if w > s else "tie"] += 1
        return won

    def markdown(self) -> str:
        if self.empty:
            return "No responses yet."
        rows = ["| Question | Seq-U-Net preferred | WaveNet preferred | Not sure | Answers |",
                "|---|---:|---:|---:|---:|"]
        for q in QUESTIONS:
            c, n = self.counts[q], self.answers(q)
            rows.append(f"| {QUESTION_LABELS[q]} | " + " | ".join(f"{c[k]} ({100 * c[k] / n:.0f} %)"
                                                                 for k in CHOICES) + f" | {n} |")
        rows.append("\nItems won (more votes for one model than the other), as the paper counts its 15 of 20: "
                    + "; ".join(f"{QUESTION_LABELS[q].lower()}: Seq-U-Net {w['sequnet']}, WaveNet {w['wavenet']}, "
                                f"tied {w['tie']}" for q in QUESTIONS for w in [self.item_majorities(q)]) + ".")
        if self.duplicates:
            rows.append(f"\n{len(self.duplicates)} repeated vote(s) replaced by the participant's later one: "
                        + "; ".join(str(d) for d in self.duplicates) + ".")
        return "\n".join(rows)


def _empty_counts() -> dict[str, dict[str, int]]:
    return {q: dict.fromkeys(CHOICES, 0) for q in QUESTIONS}


def summarise(responses: Iterable[Mapping[str, Any]], key: Key) -> Summary:
    """Preference counts over valid response documents to the items of ``key``: each document is checked (an
    invalid one, or one that answers another item set or with clips not of its items, raises ResponseError), and
    the clips a participant heard as A and B are mapped to their models through the key. With no responses the
    summary is empty (``summary.empty``): nothing is made up.

    One vote per participant and item: participants are told apart by their normalised name
    (``participant_key``: "Ann", "ann" and " ann " are one person), and when one answers an item more than once
    across documents, the answer in the later document counts; the replaced ones are listed in
    ``summary.duplicates``."""
    if not isinstance(key, Key):
        raise TypeError(f"key={key!r}: give the Key of the item set (listening.load_key(items))")
    votes: dict[tuple[str, str], tuple[int, Mapping[str, str]]] = {}
    duplicates, problems = [], []
    for i, doc in enumerate(responses):
        check_response(doc, f"responses[{i}]")
        unfit = item_set_problems(doc, key.items)
        if unfit:
            problems.append((f"responses[{i}]", "; ".join(unfit)))
            continue
        who = participant_key(doc["participant"])
        for entry in doc["items"]:
            earlier = votes.get((who, entry["item"]))
            if earlier is not None:
                duplicates.append(Duplicate(who, entry["item"], kept=i, dropped=earlier[0]))
            votes[who, entry["item"]] = (i, entry)
    if problems:
        raise ResponseError(problems)
    counts, by_item = _empty_counts(), {}
    for (_, item), (_, entry) in votes.items():
        per_item = by_item.setdefault(item, _empty_counts())
        for q in QUESTIONS:
            answer = entry[q]
            choice = key.model(item, entry["a"] if answer == "A" else entry["b"]) if answer in ("A", "B") \
                else "not sure"
            counts[q][choice] += 1
            per_item[q][choice] += 1
    return Summary(counts, dict(sorted(by_item.items())), len({who for who, _ in votes}), tuple(duplicates))


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

