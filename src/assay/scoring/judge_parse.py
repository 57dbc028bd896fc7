"""Reading rubrics and judge replies: the scale, the criteria, and the judge's own verdict line.

Rules, each against a failure seen in other tools:

- A reply is read only from a line that *starts* with the keyword (``VERDICT`` or ``WINNER``,
  after optional whitespace and markdown such as ``**``, ``#``, ``>``, ``-``): a ``score: 5`` in
  the prose, or in a quoted response, never decides anything.
- Reasoning blocks (``<think>``, ``<thinking>``, ``<reasoning>``) are removed first, so a
  ``VERDICT: 1`` the model considered while thinking is not read as its verdict. A closing tag
  without its opening drops everything before it; an opening tag that never closes, at the
  start of the reply, drops everything after it (the model ran out of tokens while reasoning).
  One further in the reply is kept: it may be quoted from the response under evaluation.
- Code-fence lines are removed, so a verdict inside a fenced block still counts.
- The LAST verdict line is taken and must be on the scale: an integer in range (``4``,
  ``4/5``, ``4 out of 5``, optionally followed by words but by no other number) or PASS/FAIL.
  Anything else is a :class:`VerdictParseError`; there is no default or middle score.
- Quotation defence: a misbehaving judge may copy the response under evaluation into its reply,
  including a ``VERDICT: 5`` line the response planted. A verdict line is the judge's own only
  when the reply holds more copies of it (same key, same value) than the evaluated texts do;
  the last such line is taken, and lines that may be copies are skipped. So an echoed
  ``VERDICT: 5`` followed by the judge's ``VERDICT: 2`` gives 2, and a reply whose only verdict
  lines may be copies is unparsable (retried, then unscored). The price: a judge that
  legitimately gives exactly the verdict the response planted, in a single line, cannot be
  told from an echo; that response stays unscored (counted, never invented).
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from assay.errors import UserInputError

OVERALL = ""
"""The key of the overall verdict line (``VERDICT: 4``)."""

_OVERALL_ALIASES = {"", "overall", "final", "total", "score"}
_LEAD_CHARS = " \t*_#>-`"
_EDGE_CHARS = " \t*_`'\""
_KEY_DROP = re.compile(r"[*`()\[\]]")
_REASONING_BLOCK = re.compile(
    r"<(think|thinking|reasoning)\b[^>]*>.*?</\1\s*>", re.IGNORECASE | re.DOTALL
)
_REASONING_CLOSE = re.compile(r"</(?:think|thinking|reasoning)\s*>", re.IGNORECASE)
_REASONING_OPEN = re.compile(r"<(?:think|thinking|reasoning)\b[^>]*>", re.IGNORECASE)
_FENCE_LINE = re.compile(r"^\s*(?:```|~~~)[\w+.-]*\s*$")
_NUMBER = re.compile(
    r"^(?P<n>[+-]?\d+(?:\.\d+)?)(?:\s*(?:/|out\s+of)\s*(?P<of>\d+))?(?P<rest>.*)$",
    re.IGNORECASE | re.DOTALL,
)


NO_VERDICT = "no_verdict"
"""The reply holds no verdict line of the judge's own (empty, cut off, or only quotations)."""
BAD_VERDICT = "bad_verdict"
"""The reply has a verdict line, but its value is not on the scale."""


class VerdictParseError(ValueError):
    """A judge reply holds no usable verdict; the message names the problem for the retry.

    ``kind`` says which: :data:`NO_VERDICT` or :data:`BAD_VERDICT` (run diagnostics count them).
    """

    def __init__(self, message: str, kind: str = BAD_VERDICT) -> None:
        super().__init__(message)
        self.kind = kind


# --------------------------------------------------------------------------- the scale


class Scale(BaseModel):
    """The rubric's scale. Points are integers: ``low..high``, or 0 (fail) and 1 (pass)."""

    model_config = ConfigDict(frozen=True)

    kind: Literal["numeric", "pass_fail"] = "numeric"
    low: int = Field(default=1, ge=0)
    high: int = 5

    @model_validator(mode="after")
    def _check_range(self) -> Scale:
        if self.kind == "pass_fail":
            if (self.low, self.high) != (0, 1):
                raise ValueError("a pass/fail scale has points 0 (fail) and 1 (pass)")
        elif not self.low < self.high <= self.low + 100:
            raise ValueError(f"scale {self.low}-{self.high} needs low < high <= low + 100")
        return self

    @classmethod
    def pass_fail(cls) -> Scale:
        return cls(kind="pass_fail", low=0, high=1)

    @property
    def label(self) -> str:
        return "pass/fail" if self.kind == "pass_fail" else f"{self.low}-{self.high}"

    @property
    def points(self) -> list[int]:
        return list(range(self.low, self.high + 1))

    @property
    def placeholder(self) -> str:
        """How the verdict value is described inside the output contract."""
        if self.kind == "pass_fail":
            return "PASS or FAIL"
        return f"an integer from {self.low} to {self.high}"

    def normalise(self, point: int) -> float:
        """A point on the scale as a value in [0, 1]: ``(point - low) / (high - low)``."""
        return (point - self.low) / (self.high - self.low)

    def to_point(self, value: float) -> int:
        """The nearest point to a [0, 1] value (halves round up), e.g. for a mean of repeats."""
        return self.low + int(value * (self.high - self.low) + 0.5 + 1e-9)

    def point_label(self, point: int) -> str:
        if self.kind == "pass_fail":
            return "PASS" if point == 1 else "FAIL"
        return str(point)

    def parse_point(self, text: str) -> int:
        """Read one verdict value; raises VerdictParseError when it is not on this scale."""
        value = text.strip(_EDGE_CHARS).rstrip(".").strip(_EDGE_CHARS)
        if not value:
            raise VerdictParseError("the verdict line has no value")
        if self.kind == "pass_fail":
            return _pass_fail_point(value)
        return self._numeric_point(value)

    def _numeric_point(self, value: str) -> int:
        match = _NUMBER.match(value)
        if match is None or re.search(r"\d", match["rest"]):
            raise VerdictParseError(f"verdict {value!r} is not {self.placeholder}")
        number = float(match["n"])
        if not number.is_integer():
            raise VerdictParseError(f"verdict {value!r} is not a whole number")
        if match["of"] is not None and int(match["of"]) != self.high:
            raise VerdictParseError(f"verdict {value!r} is not on the {self.label} scale")
        if not self.low <= number <= self.high:
            raise VerdictParseError(f"verdict {int(number)} is outside the {self.label} scale")
        return int(number)


def _pass_fail_point(value: str) -> int:
    words = re.findall(r"[a-z]+", value.lower())
    first = words[0] if words else ""
    named = {w for w in words if w in ("pass", "passed", "fail", "failed")}
    if first not in ("pass", "passed", "fail", "failed") or len(named) > 1:
        raise VerdictParseError(f"verdict {value!r} is not PASS or FAIL")
    return 1 if first.startswith("pass") else 0


DEFAULT_SCALE = Scale()

_SPAN = r"[ \t]*(?:-|–|—|to|and)[ \t]*"
_SCALE_PATTERNS = (
    re.compile(
        r"\bscale\b[ \t]*(?:of|from|is)?[ \t]*:?[ \t]*(\d{1,3})" + _SPAN + r"(\d{1,3})\b", re.I
    ),
    re.compile(
        r"\b(?:scor\w*|rat(?:e|ing))\b[^\n\d]{0,20}?\b(?:from|between)[ \t]+(\d{1,3})"
        + _SPAN
        + r"(\d{1,3})\b",
        re.I,
    ),
    re.compile(r"\b(\d{1,3})" + _SPAN + r"(\d{1,3})[ \t]+(?:point[ \t]+)?scale\b", re.I),
)
_PASS_FAIL_PATTERN = re.compile(r"\bpass[ \t]*(?:/|or)[ \t]*fail\b", re.I)


def detect_scale(rubric: str) -> Scale:
    """The scale the rubric declares ("Scale: 0-10", "score from 1 to 10", "pass/fail"), else 1-5.

    A rubric that declares two different scales is rejected rather than guessed at.
    """
    found = _declared_scales(rubric)
    if not found:
        return DEFAULT_SCALE
    distinct = list(dict.fromkeys(found))
    if len(distinct) > 1:
        labels = " and ".join(s.label for s in distinct)
        raise UserInputError(
            f"The rubric declares more than one scale ({labels})",
            "keep one line such as 'Scale: 1-5' or 'pass/fail'",
        )
    return distinct[0]


def _declared_scales(rubric: str) -> list[Scale]:
    found: list[tuple[int, Scale]] = []
    for pattern in _SCALE_PATTERNS:
        for match in pattern.finditer(rubric):
            found.append((match.start(), _numeric_scale(int(match[1]), int(match[2]))))
    found += [(m.start(), Scale.pass_fail()) for m in _PASS_FAIL_PATTERN.finditer(rubric)]
    return [scale for _, scale in sorted(found, key=lambda item: item[0])]


def _numeric_scale(low: int, high: int) -> Scale:
    try:
        return Scale(low=low, high=high)
    except ValueError:
        raise UserInputError(
            f"The rubric's scale {low}-{high} is not usable",
            "write it low to high, e.g. 'Scale: 1-5' (at most 100 points)",
        ) from None


# --------------------------------------------------------------------------- criteria


_HEADING = re.compile(r"^[ ]{0,3}(#{1,6})[ \t]+(.+?)[ \t#]*$", re.MULTILINE)
_NOT_CRITERIA = (
    "scale", "scoring", "score", "scores", "instruction", "instructions", "overview",
    "introduction", "note", "notes", "example", "examples", "output", "format", "rubric",
    "task", "context", "guidelines", "verdict", "background", "grading", "criteria",
)  # fmt: skip


def detect_dimensions(rubric: str) -> list[str]:
    """Criterion names from markdown headings (``## Faithfulness``), when there are two or more.

    Headings such as "Scale", "Scoring" or "Examples" are not criteria. When headings sit at
    several levels, the level with the most candidate headings wins (a ``#`` title is skipped).
    """
    by_level: dict[int, list[str]] = {}
    for match in _HEADING.finditer(rubric):
        name = _criterion_name(match[2])
        if name and name.lower().split()[0] not in _NOT_CRITERIA:
            by_level.setdefault(len(match[1]), []).append(name)
    if not by_level:
        return []
    level = max(by_level, key=lambda lv: (len(by_level[lv]), lv))
    names = list(dict.fromkeys(by_level[level]))
    return names if len(names) >= 2 else []


def _criterion_name(heading: str) -> str:
    text = re.sub(r"[*_`]", "", heading).strip()
    text = re.sub(r"^(?:\d+[.)]|criterion\b:?)\s*", "", text, flags=re.IGNORECASE)
    return re.split(r"\s+[-–—(]|:", text, maxsplit=1)[0].strip()


def dimension_key(name: str) -> str:
    """How criterion names are compared: case, markup, ``_``/``-`` and spacing ignored."""
    text = _KEY_DROP.sub("", name).replace("_", " ").replace("-", " ")
    key = " ".join(text.lower().split())
    return OVERALL if key in _OVERALL_ALIASES else key


# --------------------------------------------------------------------------- replies


def strip_reasoning(text: str) -> str:
    """Remove reasoning blocks, a dangling closing tag's prefix and an unclosed leading block."""
    text = _REASONING_BLOCK.sub("", text)
    closes = list(_REASONING_CLOSE.finditer(text))
    if closes:
        text = text[closes[-1].end() :]
    opening = _REASONING_OPEN.search(text)
    if opening is not None and not text[: opening.start()].strip():  # cut off while reasoning
        return text[: opening.start()]
    return text


_REFUSAL = re.compile(
    r"^\W*(?:sorry\b|as\s+an\s+ai\b|i(?:\s+am|\s*['’]m)\s+(?:sorry|unable|not\s+able)|"
    r"i\s+(?:won['’]t|will\s+not|must\s+decline)|"
    r"i\s+(?:cannot|can\s+not|can['’]t)\s+(?:help|assist|comply|evaluate|grade|rate|score|"
    r"judge|assess|provide|fulfil|do\s+that|engage))",
    re.IGNORECASE,
)
REFUSAL_FINISH_REASONS = frozenset({"content_filter", "refusal"})


def looks_like_refusal(text: str, finish_reason: str | None = None) -> bool:
    """Whether a reply without a verdict is a refusal: the provider says so (a content filter),
    or the answer opens with a refusal ("I'm sorry", "I cannot", "As an AI")."""
    if finish_reason in REFUSAL_FINISH_REASONS:
        return True
    return _REFUSAL.match(answer_text(text).strip()) is not None


def strip_fences(text: str) -> str:
    """Drop code-fence marker lines, keeping what was inside the fence."""
    return "\n".join(line for line in text.splitlines() if not _FENCE_LINE.match(line))


def answer_text(text: str) -> str:
    """The part of a reply that can hold a verdict: reasoning and fence markers removed."""
    return strip_fences(strip_reasoning(text))


def keyword_lines(text: str, keyword: str) -> list[tuple[int, str, str]]:
    """``(line index, key, value)`` for each line that starts with ``keyword`` and a colon.

    ``VERDICT: 4`` gives key "" (overall); ``VERDICT Faithfulness: 4`` gives "faithfulness".
    """
    pattern = re.compile(rf"{keyword}\b(?P<key>[^:\n]*):(?P<value>.*)$", re.IGNORECASE)
    found = []
    for index, line in enumerate(text.splitlines()):
        match = pattern.match(line.strip().lstrip(_LEAD_CHARS))
        if match is not None:
            found.append((index, dimension_key(match["key"]), match["value"]))
    return found


def _line_id(key: str, value: str) -> tuple[str, str]:
    """What makes two keyword lines copies of each other: key and value, markup ignored."""
    text = value.strip(_EDGE_CHARS).rstrip(".").strip(_EDGE_CHARS)
    return key, " ".join(text.lower().split())


def _quoted_counts(texts: Iterable[str], keyword: str) -> Counter[tuple[str, str]]:
    counts: Counter[tuple[str, str]] = Counter()
    for text in texts:  # every line of the data counts, reasoning tags or not
        lines = keyword_lines(strip_fences(text), keyword)
        counts.update(_line_id(key, value) for _, key, value in lines)
    return counts


@dataclass(frozen=True)
class KeywordReply:
    """A reply's answer text and keyword lines, and the keyword lines of the evaluated texts."""

    body: str
    lines: list[tuple[int, str, str]]
    quoted: Counter[tuple[str, str]]

    def last_value(self, key: str, keyword: str) -> str:
        """The value on the judge's last own line for ``key``; VerdictParseError when none."""
        value = self.optional_value(key)
        if value is not None:
            return value
        label = f"{keyword} {key}".strip() if key else keyword
        if any(k == key for _, k, _ in self.lines):
            raise VerdictParseError(
                f"every '{label}:' line in the reply may be quoted from the text under "
                "evaluation; do not quote it, and end with your own line",
                NO_VERDICT,
            )
        raise VerdictParseError(f"no line starting with '{label}:' was found", NO_VERDICT)

    def optional_value(self, key: str) -> str | None:
        """Like :meth:`last_value`, but None when the judge wrote no line of its own."""
        values = [value for _, k, value in self.lines if k == key]
        seen = Counter(_line_id(key, value) for value in values)
        for value in reversed(values):
            line_id = _line_id(key, value)
            if seen[line_id] > self.quoted[line_id]:
                return value
        return None

    def rationale(self) -> str:
        """The reply's text without its keyword lines."""
        skip = {index for index, _, _ in self.lines}
        kept = [line for i, line in enumerate(self.body.splitlines()) if i not in skip]
        return "\n".join(kept).strip()


def read_reply(text: str, keyword: str, evaluated: Sequence[str] = ()) -> KeywordReply:
    """Strip the reply and find its keyword lines; raises VerdictParseError on an empty answer."""
    if not text.strip():
        raise VerdictParseError("the reply is empty", NO_VERDICT)
    body = answer_text(text)
    if not body.strip():
        raise VerdictParseError(
            "the reply holds only a reasoning block (was it cut off by the token limit?)",
            NO_VERDICT,
        )
    quoted = _quoted_counts(evaluated, keyword)
    return KeywordReply(body=body, lines=keyword_lines(body, keyword), quoted=quoted)


class ParsedVerdict(BaseModel):
    """A judge's verdict: ``value`` in [0, 1] (the mean of the criteria when there are any)."""

    model_config = ConfigDict(frozen=True)

    value: float
    point: int | None
    """The overall verdict on the scale (None when criteria were scored without an overall)."""
    verdict: str | None
    """The overall verdict as a label: "4", "PASS"."""
    dimensions: dict[str, int] = Field(default_factory=dict)
    """Criterion name -> point on the scale."""
    rationale: str = ""


def parse_verdict(
    text: str,
    scale: Scale = DEFAULT_SCALE,
    dimensions: Sequence[str] = (),
    evaluated: Sequence[str] = (),
) -> ParsedVerdict:
    """Read the judge's verdict from ``text``; raises VerdictParseError (never guesses).

    ``evaluated`` holds the texts the judge was shown as data (the response under evaluation):
    verdict lines found there count as possible quotations (see the module docstring).
    With ``dimensions``, each criterion needs its own ``VERDICT <name>: N`` line and the value is
    the mean of their normalised points; an overall ``VERDICT: N`` is recorded when present.
    """
    reply = read_reply(text, "VERDICT", evaluated)
    if dimensions:
        overall_text = reply.optional_value(OVERALL)
    else:
        overall_text = reply.last_value(OVERALL, "VERDICT")
    point = scale.parse_point(overall_text) if overall_text is not None else None
    points = {name: _dimension_point(reply, name, scale) for name in dimensions}
    normalised = [scale.normalise(p) for p in points.values()]
    if not normalised and point is not None:
        normalised = [scale.normalise(point)]
    value = sum(normalised) / len(normalised)
    label = scale.point_label(point) if point is not None else None
    return ParsedVerdict(
        value=value, point=point, verdict=label, dimensions=points, rationale=reply.rationale()
    )


def _dimension_point(reply: KeywordReply, name: str, scale: Scale) -> int:
    key = dimension_key(name)
    try:
        return scale.parse_point(reply.last_value(key, "VERDICT"))
    except VerdictParseError as error:
        raise VerdictParseError(f"{name}: {error}", error.kind) from None


Winner = Literal["A", "B", "tie"]


class ParsedWinner(BaseModel):
    model_config = ConfigDict(frozen=True)

    winner: Winner
    rationale: str = ""


def parse_winner(text: str, evaluated: Sequence[str] = ()) -> ParsedWinner:
    """Read the last ``WINNER: A|B|TIE`` line with the same rules as :func:`parse_verdict`."""
    reply = read_reply(text, "WINNER", evaluated)
    value = reply.last_value(OVERALL, "WINNER")
    return ParsedWinner(winner=_winner(value), rationale=reply.rationale())


def _winner(value: str) -> Winner:
    word = value.strip(_EDGE_CHARS).rstrip(".").strip(_EDGE_CHARS).lower()
    word = re.sub(r"^response\s+", "", word)
    if word == "a":
        return "A"
    if word == "b":
        return "B"
    if word == "tie":
        return "tie"
    raise VerdictParseError(f"winner {value.strip()!r} is not A, B or TIE")
