"""Metric cases for the seam tests, a scripted zoo that answers them, and readers for every
place a run's score is shown (the terminal table, the HTML report, the dashboard).

Each case is one ``--metric`` spec with its own small dataset. For every row the zoo has a few
replies, best first, and the score each one earns under that metric is known here, derived
without assay's metric code (by construction, or from sacrebleu / rouge-score directly).
Which reply a model gets is a fixed function of the model and the row, so the expected mean of
every model is computed from what the server answers.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

from assay.testing import Action, ChatRequest, reply
from tests.optimize_helpers import proposal

N_ROWS = 12
MODELS = ("hi", "lo")  # the benchmark's two models; "task" (optimize) answers like "hi"
FLIP = {"positive": "negative", "negative": "positive"}
PROMPT_TEXT = "Answer the question in the expected format."
REWRITE = "Answer the question in the expected format. Reply with the answer only, nothing else."
SCHEMA = {
    "type": "object",
    "required": ["answer"],
    "properties": {"answer": {"enum": ["positive", "negative"]}},
}
PYTHON_METRIC = """
def graded(sample, output):
    reference = sample.reference or ""
    if output == reference:
        return 1.0
    if output.startswith(reference):
        return {"score": 0.25, "reason": "hedged"}
    return False
"""
WORDS = (
    "the", "quick", "brown", "fox", "jumps", "over", "a", "lazy", "dog", "while", "seven",
    "happy", "children", "watch", "from", "behind", "an", "old", "wooden", "fence", "near",
    "river", "bank",
)  # fmt: skip


@dataclass(frozen=True)
class Reply:
    text: str
    score: float  # what this reply earns under the case's metric


@dataclass(frozen=True)
class Case:
    name: str  # the pytest id
    spec: str  # the --metric spec
    data: Path
    inputs: tuple[str, ...]
    replies: tuple[tuple[Reply, ...], ...]  # per row, best first

    def choice(self, model: str, row: int) -> int:
        """Which reply ``model`` gets on ``row``: "hi" mostly the best, "lo" mostly the worst."""
        last = len(self.replies[row]) - 1
        if row % 3 == 0:
            return (row // 3) % (last + 1)
        return last if model == "lo" else 0

    def reply(self, model: str, row: int) -> Reply:
        return self.replies[row][self.choice(model, row)]

    def expected(self, model: str, rows: Iterable[int] | None = None) -> float:
        picked = list(range(len(self.inputs)) if rows is None else rows)
        return sum(self.reply(model, i).score for i in picked) / len(picked)


def _labels() -> list[str]:
    return [("positive", "negative")[i % 2] for i in range(N_ROWS)]


def _sentences() -> list[str]:
    return [" ".join(WORDS[(3 * i + j) % len(WORDS)] for j in range(7)) for i in range(N_ROWS)]


def _rotated(sentence: str) -> str:
    words = sentence.split()
    return " ".join(words[3:] + words[:3])


def _bleu(tokenize: str) -> Callable[[str, str], float]:
    import sacrebleu

    return lambda out, ref: sacrebleu.sentence_bleu(out, [ref], tokenize=tokenize).score / 100


def _chrf(out: str, ref: str) -> float:
    import sacrebleu

    return float(sacrebleu.sentence_chrf(out, [ref]).score) / 100


def _rouge(variant: str) -> Callable[[str, str], float]:
    from rouge_score import rouge_scorer

    scorer = rouge_scorer.RougeScorer([variant], use_stemmer=True)
    return lambda out, ref: float(scorer.score(ref, out)[variant].fmeasure)


def _graded(value: Callable[[str, str], float]) -> Callable[[str], list[Reply]]:
    """Replies to a sentence: itself, its words rotated, and nothing in common."""

    def replies(ref: str) -> list[Reply]:
        texts = [ref, _rotated(ref), "12345 67890"]
        return [Reply(t, value(t, ref)) for t in texts]

    return replies


def _binary(*pairs: tuple[Callable[[str], str], float]) -> Callable[[str], list[Reply]]:
    return lambda ref: [Reply(make(ref), score) for make, score in pairs]


def _number_replies(tolerant: bool) -> Callable[[str], list[Reply]]:
    def replies(ref: str) -> list[Reply]:
        value = int(ref)
        near = f"about {value * 1.004:.3f}"  # 0.4% off: within 0.01, not within 1e-6
        return [
            Reply(f"It is {value}.", 1.0),
            Reply(near, 1.0 if tolerant else 0.0),
            Reply(f"It is {value + 100}.", 0.0),
        ]

    return replies


def _spec_table(root: Path) -> dict[str, tuple[str, list[str], Callable[[str], list[Reply]]]]:
    schema = root / "answer.schema.json"
    schema.write_text(json.dumps(SCHEMA), encoding="utf-8")
    module = root / "graded_metric.py"
    module.write_text(PYTHON_METRIC, encoding="utf-8")
    labels, sentences = _labels(), _sentences()
    numbers = [str(10 + 7 * i) for i in range(N_ROWS)]

    def wordy(ref: str) -> str:
        return f"The review is {ref}."

    def flip(ref: str) -> str:
        return FLIP[ref]

    def same(ref: str) -> str:
        return ref

    found = _binary((same, 1.0), (wordy, 1.0), (flip, 0.0))
    return {
        "exact": ("exact", labels, _binary((same, 1.0), (wordy, 0.0), (flip, 0.0))),
        "contains": ("contains", labels, found),
        "regex": (
            r"regex:^[a-z]+: \d+$",
            labels,
            _binary(
                (lambda r: "answer: 42", 1.0),
                (lambda r: "Answer: 42", 0.0),
                (lambda r: "answer 42", 0.0),
            ),
        ),
        "label": ("label", labels, found),
        "label:positive,negative": ("label:positive,negative", labels, found),
        "number": ("number", numbers, _number_replies(tolerant=False)),
        "number:0.01": ("number:0.01", numbers, _number_replies(tolerant=True)),
        "rouge": ("rouge", sentences, _graded(_rouge("rougeL"))),
        "rouge:rouge1": ("rouge:rouge1", sentences, _graded(_rouge("rouge1"))),
        "bleu": ("bleu", sentences, _graded(_bleu("13a"))),
        "bleu:13a": ("bleu:13a", sentences, _graded(_bleu("13a"))),  # stored as "bleu"
        "bleu:char": ("bleu:char", sentences, _graded(_bleu("char"))),
        "chrf": ("chrf", sentences, _graded(_chrf)),
        "json": (
            "json",
            labels,
            _binary(
                (lambda r: json.dumps({"answer": r}), 1.0),
                (lambda r: f'```json\n["{r}"]\n```', 1.0),
                (same, 0.0),
            ),
        ),
        "json-schema": (
            f"json-schema:{schema}",
            labels,
            _binary(
                (lambda r: json.dumps({"answer": r}), 1.0),
                (lambda r: json.dumps({"answer": 3}), 0.0),
                (lambda r: f"answer: {r}", 0.0),
            ),
        ),
        "python": (
            f"python:{module}:graded",
            labels,
            _binary((same, 1.0), (lambda r: r + "?", 0.25), (lambda r: "no idea", 0.0)),
        ),
    }


CASE_NAMES = (
    "exact",
    "contains",
    "regex",
    "label",
    "label:positive,negative",
    "number",
    "number:0.01",
    "rouge",
    "rouge:rouge1",
    "bleu",
    "bleu:13a",
    "bleu:char",
    "chrf",
    "json",
    "json-schema",
    "python",
)


def build_cases(root: Path) -> dict[str, Case]:
    """Every case with its dataset (and schema / metric module) written under ``root``."""
    table = _spec_table(root)
    assert tuple(table) == CASE_NAMES
    cases = {}
    for index, (name, (spec, refs, make)) in enumerate(table.items()):
        inputs = tuple(f"Case {index} item {i}: what is the answer?" for i in range(N_ROWS))
        data = root / f"case{index}.jsonl"
        rows = [
            {"id": f"s{i:02d}", "text": t, "label": r}
            for i, (t, r) in enumerate(zip(inputs, refs, strict=True))
        ]
        data.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
        replies = tuple(tuple(make(ref)) for ref in refs)
        cases[name] = Case(name, spec, data, inputs, replies)
    return cases


@dataclass
class MetricZoo:
    """Answers every case's rows as ``Case.reply`` says; the reasoner proposes one rewrite."""

    cases: Iterable[Case]
    rows: dict[str, tuple[Case, int]] = field(init=False)

    def __post_init__(self) -> None:
        self.rows = {text: (c, i) for c in self.cases for i, text in enumerate(c.inputs)}

    def __call__(self, request: ChatRequest) -> Action:
        if request.model == "reasoner":
            return reply(proposal(REWRITE), input_tokens=200, output_tokens=40)
        case, row = self.rows[request.last_user_text]
        model = "lo" if request.model == "lo" else "hi"
        return reply(case.reply(model, row).text, input_tokens=20, output_tokens=5)


# --- readers for the places a score is shown ------------------------------------------------

FLOAT = re.compile(r"-?\d+\.\d+")


def flat(text: str) -> str:
    """Whitespace collapsed: the terminal wraps long lines at spaces."""
    return " ".join(text.split())


def squash(text: str) -> str:
    """All whitespace removed: the terminal folds a word longer than its width mid-word."""
    return "".join(text.split())


def table_rows(stdout: str, variants: Iterable[str]) -> dict[str, tuple[str, str]]:
    """The (score cell, ok/uns/err) of each variant's row in the terminal's models table."""
    rows = {}
    for variant in variants:
        found = re.search(
            rf"^\s*{re.escape(variant)}\s+(no score|\S+).*?(\d+/\d+/\d+)", stdout, re.MULTILINE
        )
        assert found, f"no table row for {variant} in:\n{stdout}"
        rows[variant] = (found[1], found[2])
    return rows


class PageReader(HTMLParser):
    """Reads a report or dashboard page: the models table's score and counts cells per
    variant, header texts, the "Primary metric" entry and the JSON islands."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.scores: dict[str, str] = {}
        self.counts: dict[str, str] = {}
        self.headers: list[str] = []
        self.meta: dict[str, str] = {}
        self.islands: list[Any] = []
        self._variant: str | None = None
        self._cell: str | None = None
        self._th: list[str] | None = None
        self._dt: str | None = None
        self._text: list[str] | None = None
        self._last_dt = ""
        self._island: list[str] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag == "tr" and a.get("data-variant"):
            self._variant = a["data-variant"]
        elif tag == "td" and self._variant and a.get("data-metric") in ("score", "counts"):
            self._cell, self._text = a["data-metric"], []
        elif tag == "th":
            self._th = []
        elif tag in ("dt", "dd"):
            self._dt, self._text = tag, []
        elif tag == "script" and a.get("type") == "application/json":
            self._island = []

    def handle_endtag(self, tag: str) -> None:
        if tag == "tr":
            self._variant = None
        elif tag == "td" and self._cell and self._variant and self._text is not None:
            target = self.scores if self._cell == "score" else self.counts
            target[self._variant] = "".join(self._text).strip()
            self._cell = self._text = None
        elif tag == "th" and self._th is not None:
            self.headers.append("".join(self._th).strip())
            self._th = None
        elif tag in ("dt", "dd") and self._dt == tag and self._text is not None:
            value = "".join(self._text).strip()
            if tag == "dt":
                self._last_dt = value
            else:
                self.meta[self._last_dt] = value
            self._dt = self._text = None
        elif tag == "script" and self._island is not None:
            self.islands.append(json.loads("".join(self._island)))
            self._island = None

    def handle_data(self, data: str) -> None:
        for sink in (self._text, self._th, self._island):
            if sink is not None:
                sink.append(data)


def read_page(html: str) -> PageReader:
    reader = PageReader()
    reader.feed(html)
    reader.close()
    return reader


def first_number(text: str) -> str:
    found = FLOAT.search(text)
    assert found, f"no number in {text!r}"
    return found[0]
