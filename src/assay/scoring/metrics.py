"""Reference metrics: small factories that return ``Metric`` objects.

A metric scores one response: ``metric(sample, output) -> Score``. Metrics that compare against
``sample.reference`` have ``needs_reference=True``; on a sample without a reference they return
an unscored Score (never a 0). ``build_metric`` turns a command-line spec into a metric and
rejects bad specs (unknown name, invalid regex, unreadable schema or module) before any call.
"""

from __future__ import annotations

import importlib.util
import json
import math
import numbers
import re
import sys
import unicodedata
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from assay.errors import UserInputError
from assay.files import read_regular_text
from assay.records import Sample, sha256_text
from assay.scoring.score import Score

MetricFn = Callable[[Sample, str], Score]

JUDGE_HINT = "score a dataset without references with --judge SPEC --judge-criteria RUBRIC.md"


@dataclass(frozen=True)
class Metric:
    """A named scoring function ``(sample, output) -> Score``."""

    name: str
    needs_reference: bool
    fn: MetricFn

    def __call__(self, sample: Sample, output: str) -> Score:
        return self.fn(sample, output)


def _on_reference(fn: Callable[[str, str], Score]) -> MetricFn:
    """Adapt ``fn(output, reference)`` to the metric signature."""

    def call(sample: Sample, output: str) -> Score:
        if sample.reference is None:
            return Score.unscored("sample has no reference")
        return fn(output, sample.reference)

    return call


def _unit(value: float) -> float:
    """Absorb float rounding at the ends of [0, 1] (e.g. BLEU 100.00000000000004 / 100)."""
    if -1e-9 < value < 0.0:
        return 0.0
    if 1.0 < value < 1.0 + 1e-9:
        return 1.0
    return value


# --- text normalisation -------------------------------------------------------------------

_CJK = "\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff"  # kana and CJK ideographs
_QUOTES = "\"'`«»“”‘’„‚‹›「」『』"
_TRAILING = ".,;:!?…。．，、；：！？" + _QUOTES
_SPACES = re.compile(r"\s+")


def normalize_text(text: str) -> str:
    """NFKC, casefold, collapse whitespace, strip surrounding quotes and trailing punctuation.

    Accents are kept: "café" and "cafe" are different answers.
    """
    text = _SPACES.sub(" ", unicodedata.normalize("NFKC", text).casefold()).strip()
    text = text.rstrip(_TRAILING + " ").lstrip(_QUOTES + " ")
    return text


# --- exact / contains / regex -------------------------------------------------------------


def exact() -> Metric:
    """1 if the normalised output equals the normalised reference."""

    def score(output: str, reference: str) -> Score:
        got, want = normalize_text(output), normalize_text(reference)
        if got == want:
            return Score.scored(1.0, "exact match")
        return Score.scored(0.0, "no exact match", normalized_output=got[:200])

    return Metric("exact", needs_reference=True, fn=_on_reference(score))


def contains() -> Metric:
    """1 if the normalised reference is a substring of the normalised output.

    Substring, not word, matching: reference "no" is contained in "not sure".
    """

    def score(output: str, reference: str) -> Score:
        want = normalize_text(reference)
        if not want:
            return Score.unscored("reference is empty after normalisation")
        if want in normalize_text(output):
            return Score.scored(1.0, "reference found in output")
        return Score.scored(0.0, "reference not found in output")

    return Metric("contains", needs_reference=True, fn=_on_reference(score))


def regex(pattern: str) -> Metric:
    """1 if ``re.search(pattern, output)`` finds a match. Use ``(?i)`` for case-insensitivity."""
    if not pattern:
        raise UserInputError("empty regex in metric 'regex:'", "write it as regex:PATTERN")
    try:
        compiled = re.compile(pattern)
    except re.error as exc:
        raise UserInputError(
            f"invalid regex in metric 'regex:{pattern}': {exc}",
            "fix the pattern (Python re syntax) and quote it for the shell",
        ) from exc

    def score(sample: Sample, output: str) -> Score:
        found = compiled.search(output)
        if found is None:
            return Score.scored(0.0, "pattern not found")
        return Score.scored(1.0, "pattern found", match=found.group(0)[:200])

    return Metric(f"regex:{pattern}", needs_reference=False, fn=score)


# --- label --------------------------------------------------------------------------------

NO_LABEL = "(no label)"


def _is_cjk(char: str) -> bool:
    return re.match(rf"[{_CJK}]", char) is not None


def _one_label_pattern(label: str) -> str:
    body = r"\s+".join(map(re.escape, label.split()))
    # Whole words for scripts with spaces; CJK text has no word boundaries to require.
    left = "" if _is_cjk(label[0]) else r"(?<!\w)"
    right = "" if _is_cjk(label[-1]) else r"(?!\w)"
    return f"{left}{body}{right}"


def _label_pattern(labels: Iterable[str]) -> re.Pattern[str]:
    # Longest first, so that at the same position "very positive" wins over "positive".
    ordered = sorted(labels, key=lambda label: (-len(label), label))
    return re.compile("|".join(map(_one_label_pattern, ordered)), re.IGNORECASE)


def label(labels: Iterable[str]) -> Metric:
    """Classification accuracy: extract the first label that appears in the output.

    ``labels`` is the set of distinct references in the dataset (the caller passes them; see
    ``build_metrics``) or the list given as ``label:a,b,c``. The predicted label is the one
    whose case-insensitive, whole-word match starts earliest in the output (the longest label
    wins at the same position; CJK labels match without word boundaries). It scores 1 if it
    equals the reference, case-insensitively. No label in the output is a wrong answer: score
    0 with ``predicted=None``.

    Caveat: extraction is lexical. "This is not positive; it is negative" predicts "positive".
    Ask the model to answer with the label alone, or use a judge, when this matters.
    """
    canonical: dict[str, str] = {}
    for raw in labels:
        text = " ".join(raw.split())
        if text:
            canonical.setdefault(text.casefold(), text)
    if not canonical:
        raise UserInputError(
            "the label metric needs labels, but the dataset has no non-empty references",
            JUDGE_HINT,
        )
    pattern = _label_pattern(canonical.values())

    def score(output: str, reference: str) -> Score:
        found = pattern.search(output)
        expected = canonical.get(" ".join(reference.split()).casefold(), reference)
        if found is None:
            return Score.scored(0.0, "no label found", predicted=None, expected=expected)
        matched = " ".join(found.group(0).split())
        predicted = canonical.get(matched.casefold(), matched)
        value = 1.0 if predicted.casefold() == expected.casefold() else 0.0
        return Score.scored(
            value, f"predicted {predicted!r}", predicted=predicted, expected=expected
        )

    return Metric("label", needs_reference=True, fn=_on_reference(score))


def confusion_matrix(pairs: Sequence[tuple[str, str | None]]) -> dict[str, dict[str, int]]:
    """Counts of (reference, predicted) pairs: ``matrix[reference][predicted]``.

    Rows and columns cover every label seen on either side, sorted, zeros included. A missing
    prediction (None) is counted in the ``NO_LABEL`` column, present only when it occurs.
    """
    return confusion_matrix_of_counts(Counter(pairs))


def confusion_matrix_of_counts(
    counts: Mapping[tuple[str, str | None], int],
) -> dict[str, dict[str, int]]:
    """``confusion_matrix`` from how often each (reference, predicted) pair occurred."""
    seen = sorted({ref for ref, _ in counts} | {pred for _, pred in counts if pred is not None})
    columns = [*seen, NO_LABEL] if any(pred is None for _, pred in counts) else seen
    matrix = {ref: dict.fromkeys(columns, 0) for ref in seen}
    for (ref, pred), n in counts.items():
        matrix[ref][NO_LABEL if pred is None else pred] += n
    return matrix


# --- number -------------------------------------------------------------------------------

_NUMBER = re.compile(
    r"""
    (?<![\dA-Za-z_.\u00C0-\u024F])        # not glued to a Latin word or another number
    (?P<sign>[-+\u2212])?
    (?:[$€£¥₹]\s?)?
    (?P<digits>(?:\d{1,3}(?:,\d{3})+(?!\d)|\d+)(?:\.\d+)?|\.\d+)
    (?P<exp>[eE][-+]?\d+)?
    (?P<percent>\s?%)?
    """,
    re.VERBOSE,
)


@dataclass(frozen=True)
class ExtractedNumber:
    value: float
    percent: bool
    text: str


def extract_last_number(text: str) -> ExtractedNumber | None:
    """The last number in ``text``: "-3.5", "1,200", "$1,200.50", "42 kg", "15%", "1e-3".

    Commas are thousands separators and the dot is the decimal point; "3,5" reads as 3 and 5.
    A hyphen between numbers is a range, not a sign: "3-5" ends with 5.
    """
    last: ExtractedNumber | None = None
    for found in _NUMBER.finditer(text):
        digits = found.group("digits").replace(",", "") + (found.group("exp") or "")
        number = float(digits)
        if found.group("sign") in ("-", "\u2212"):
            number = -number
        last = ExtractedNumber(number, found.group("percent") is not None, found.group(0).strip())
    return last


def _numbers_match(got: ExtractedNumber, want: ExtractedNumber, tolerance: float) -> bool:
    candidates = [(got.value, want.value)]
    if got.percent != want.percent:  # "42%" against 0.42
        if got.percent:
            candidates.append((got.value / 100, want.value))
        else:
            candidates.append((got.value, want.value / 100))
    return any(math.isclose(a, b, rel_tol=tolerance, abs_tol=0.0) for a, b in candidates)


def number(tolerance: float = 1e-6) -> Metric:
    """1 if the last number in the output equals the last number in the reference.

    Equality is within a relative ``tolerance``. A percent on one side only is also compared
    as a fraction ("42%" matches 0.42).
    """
    if not math.isfinite(tolerance) or tolerance < 0:
        raise UserInputError(f"number tolerance must be a finite number >= 0, got {tolerance}")

    def score(output: str, reference: str) -> Score:
        want = extract_last_number(reference)
        if want is None:
            return Score.unscored("reference contains no number", reference=reference[:200])
        got = extract_last_number(output)
        if got is None:
            return Score.scored(0.0, "no number found", predicted=None, expected=want.value)
        ok = _numbers_match(got, want, tolerance)
        reason = f"{got.text} {'matches' if ok else 'does not match'} {want.text}"
        return Score.scored(float(ok), reason, predicted=got.value, expected=want.value)

    return Metric(_number_name(tolerance), needs_reference=True, fn=_on_reference(score))


# --- rouge / bleu / chrf ------------------------------------------------------------------

ROUGE_VARIANTS = ("rouge1", "rouge2", "rougeL", "rougeLsum")
BLEU_TOKENIZERS = ("13a", "intl", "zh", "char", "none")

_ROUGE_TOKEN = re.compile(rf"[{_CJK}]|[^\W_{_CJK}]+")


class UnicodeRougeTokenizer:
    """rouge-score's default tokenizer keeps only [a-z0-9]: "café" becomes "caf" and Chinese or
    Japanese text has no tokens at all. This one keeps letters of every script, splits CJK into
    characters and Porter-stems ASCII words longer than 3 letters, so on ASCII text it gives the
    same tokens as rouge-score's default with ``use_stemmer=True``.
    """

    def __init__(self) -> None:
        from nltk.stem import porter

        self._stemmer = porter.PorterStemmer()

    def tokenize(self, text: str) -> list[str]:
        tokens = _ROUGE_TOKEN.findall(unicodedata.normalize("NFKC", text).lower())
        return [self._stem(token) for token in tokens]

    def _stem(self, token: str) -> str:
        if len(token) > 3 and token.isascii() and token.isalpha():
            return str(self._stemmer.stem(token))
        return token


def rouge(variant: str = "rougeL") -> Metric:
    """ROUGE F1 (rouge-score, Porter stemming, Unicode-aware tokens; see UnicodeRougeTokenizer).

    ``rougeLsum`` treats newlines as sentence breaks.
    """
    if variant not in ROUGE_VARIANTS:
        raise UserInputError(
            f"unknown ROUGE variant {variant!r}", f"use one of {', '.join(ROUGE_VARIANTS)}"
        )
    from rouge_score import rouge_scorer

    scorer = rouge_scorer.RougeScorer([variant], tokenizer=UnicodeRougeTokenizer())

    def score(output: str, reference: str) -> Score:
        if not reference.strip():
            return Score.unscored("reference is empty")
        result = scorer.score(reference, output)[variant]
        return Score.scored(
            _unit(float(result.fmeasure)),
            f"{variant} F1",
            precision=float(result.precision),
            recall=float(result.recall),
        )

    return Metric(
        _default_or("rouge", variant, "rougeL"), needs_reference=True, fn=_on_reference(score)
    )


def bleu(tokenize: str = "13a") -> Metric:
    """Sentence BLEU (sacrebleu, exponential smoothing) / 100.

    The default 13a tokenizer does not segment Chinese or Japanese; use ``bleu:zh`` or
    ``bleu:char`` (or ``chrf``) for such data.
    """
    if tokenize not in BLEU_TOKENIZERS:
        raise UserInputError(
            f"unknown BLEU tokenizer {tokenize!r}", f"use one of {', '.join(BLEU_TOKENIZERS)}"
        )
    import sacrebleu

    def score(output: str, reference: str) -> Score:
        if not reference.strip():
            return Score.unscored("reference is empty")
        result = sacrebleu.sentence_bleu(output, [reference], tokenize=tokenize)
        return Score.scored(_unit(float(result.score) / 100.0), "sentence BLEU / 100")

    return Metric(
        _default_or("bleu", tokenize, "13a"), needs_reference=True, fn=_on_reference(score)
    )


def chrf() -> Metric:
    """Sentence chrF (sacrebleu) / 100. Character based, so it works for any script."""
    import sacrebleu

    def score(output: str, reference: str) -> Score:
        if not reference.strip():
            return Score.unscored("reference is empty")
        result = sacrebleu.sentence_chrf(output, [reference])
        return Score.scored(_unit(float(result.score) / 100.0), "sentence chrF / 100")

    return Metric("chrf", needs_reference=True, fn=_on_reference(score))


# --- json / json-schema -------------------------------------------------------------------

_FENCE = re.compile(r"```[ \t]*(?:json)?\s*(.*?)```", re.DOTALL | re.IGNORECASE)


class _NotJson(Exception):
    pass


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def _loads(text: str) -> Any:
    try:
        return json.loads(text, parse_constant=_reject_constant)
    except RecursionError:  # nested past the parser's stack: a reply no one can use as JSON
        raise ValueError("nested too deep to parse") from None


def parse_json_output(output: str) -> tuple[Any, str]:
    """Parse the output as JSON, or else the first fenced code block in it that parses.

    Returns the value and where it came from ("raw" or "fenced"); raises ``_NotJson``.
    NaN and Infinity are rejected: they are not JSON.
    """
    try:
        return _loads(output.strip()), "raw"
    except ValueError:
        pass
    for fenced in _FENCE.finditer(output):
        try:
            return _loads(fenced.group(1).strip()), "fenced"
        except ValueError:
            continue
    raise _NotJson


def json_valid() -> Metric:
    """1 if the output is valid JSON (bare, or in a ```json fenced block); 0 otherwise."""

    def score(sample: Sample, output: str) -> Score:
        try:
            _, where = parse_json_output(output)
        except _NotJson:
            return Score.scored(0.0, "not valid JSON")
        return Score.scored(1.0, "valid JSON", source=where)

    return Metric("json", needs_reference=False, fn=score)


def _load_schema(path: str) -> Any:
    import jsonschema

    try:
        schema = json.loads(read_regular_text(Path(path)))
    except OSError as exc:
        raise UserInputError(f"cannot read JSON schema {path}: {exc.strerror or exc}") from exc
    except (ValueError, RecursionError) as exc:  # RecursionError: nested past the stack
        raise UserInputError(f"JSON schema {path} is not valid JSON: {exc}") from exc
    validator_class = jsonschema.validators.validator_for(schema)
    try:
        validator_class.check_schema(schema)
    except jsonschema.SchemaError as exc:
        raise UserInputError(f"{path} is not a valid JSON schema: {exc.message}") from exc
    return validator_class(schema)


def json_schema(path: str) -> Metric:
    """1 if the output is valid JSON that validates against the schema in ``path``."""
    if not path:
        raise UserInputError("metric 'json-schema:' needs a file", "write json-schema:FILE")
    validator = _load_schema(path)

    def score(sample: Sample, output: str) -> Score:
        try:
            value, where = parse_json_output(output)
        except _NotJson:
            return Score.scored(0.0, "not valid JSON")
        try:
            errors = sorted(validator.iter_errors(value), key=lambda e: list(e.absolute_path))
        except RecursionError:  # a value nested deeper than validation can follow
            return Score.scored(0.0, "nested too deep to validate")
        if not errors:
            return Score.scored(1.0, "valid against the schema", source=where)
        first = errors[0]
        at = "/".join(str(part) for part in first.absolute_path) or "(root)"
        return Score.scored(
            0.0, f"schema violation at {at}: {first.message}"[:300], n_errors=len(errors)
        )

    return Metric(f"json-schema:{path}", needs_reference=False, fn=score)


# --- python -------------------------------------------------------------------------------


def _load_function(path: str, func_name: str) -> Callable[..., Any]:
    file = Path(path)
    if not file.is_file():
        raise UserInputError(
            f"custom metric file not found: {path}", "use --metric python:FILE.py:FUNCTION"
        )
    module_name = f"assay_user_metric_{sha256_text(str(file.resolve()))[:16]}"
    spec = importlib.util.spec_from_file_location(module_name, file)
    if spec is None or spec.loader is None:
        raise UserInputError(f"cannot load {path} as a Python module")
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    try:
        spec.loader.exec_module(module)
    except Exception as exc:
        sys.modules.pop(module_name, None)
        raise UserInputError(f"importing custom metric {path} failed: {exc!r}") from exc
    fn = getattr(module, func_name, None)
    if not callable(fn):
        names = sorted(n for n, v in vars(module).items() if callable(v) and not n.startswith("_"))
        raise UserInputError(
            f"{path} has no function {func_name!r}",
            f"functions found: {', '.join(names) or 'none'}",
        )
    return fn  # type: ignore[no-any-return]


def _number_to_score(value: object, reason: str, details: dict[str, Any]) -> Score:
    if isinstance(value, bool | np.bool_):
        return Score.scored(1.0 if value else 0.0, reason, **details)
    if not isinstance(value, numbers.Real):
        return Score.unscored(
            f"custom metric returned {type(value).__name__}, "
            "expected a number in [0, 1] or a dict with 'score'"
        )
    number_value = float(value)
    if math.isnan(number_value):
        return Score.unscored("custom metric returned NaN, not a number in [0, 1]")
    if not 0.0 <= number_value <= 1.0:
        return Score.unscored(f"custom metric returned {value!r}, outside [0, 1]")
    return Score.scored(number_value, reason, **details)


def custom_result_to_score(result: object) -> Score:
    """Turn what a user function returned into a Score, never clamping or guessing.

    Accepted: a number in [0, 1]; a bool (True = 1, False = 0); a Score; a dict with "score"
    (a number, a bool, or None for "unscored") and optional "reason" (other keys become details).
    """
    if isinstance(result, Score):
        return result
    if isinstance(result, dict):
        if "score" not in result:
            return Score.unscored("custom metric returned a dict without 'score'")
        reason = str(result.get("reason", ""))
        details = {k: v for k, v in result.items() if k not in ("score", "reason")}
        if result["score"] is None:
            return Score.unscored(reason or "custom metric returned score None", **details)
        return _number_to_score(result["score"], reason, details)
    return _number_to_score(result, "", {})


def python_metric(path: str, func_name: str = "score") -> Metric:
    """A user function ``(sample, output) -> float | bool | dict(score=..., reason=...)``.

    Loading problems fail at build time. At call time an exception, NaN, a value outside [0, 1]
    or an unexpected type makes the item unscored with a reason.
    """
    fn = _load_function(path, func_name)

    def score(sample: Sample, output: str) -> Score:
        try:
            result = fn(sample, output)
        except Exception as exc:
            return Score.unscored(f"metric raised: {exc!r}"[:500])
        return custom_result_to_score(result)

    return Metric(f"python:{path}:{func_name}", needs_reference=False, fn=score)


# --- the registry: every metric kind as --metric names it ------------------------------------


@dataclass(frozen=True)
class MetricKind:
    """One ``--metric`` kind: its usage, help line, how to build it and the name it stores.

    ``build(arg, labels)`` gets the text after the colon (None without one) and the dataset's
    distinct references; ``name(arg)`` is the key its scores are stored under, without building.
    """

    usage: str
    help: str
    build: Callable[[str | None, Sequence[str] | None], Metric]
    name: Callable[[str | None], str]


def _no_arg(kind: str, factory: Callable[[], Metric]) -> Callable[..., Metric]:
    def build(arg: str | None, labels: Sequence[str] | None) -> Metric:
        if arg is not None:
            raise _unknown(f"{kind}:{arg}")
        return factory()

    return build


def _needs_arg(kind: str, hint: str) -> Callable[[str | None], str]:
    def given(arg: str | None) -> str:
        if arg is None:
            raise UserInputError(f"metric {kind!r} needs an argument", f"write {hint}")
        return arg

    return given


def _build_label(arg: str | None, labels: Sequence[str] | None) -> Metric:
    if arg is not None:
        return label(part for part in arg.split(",") if part.strip())
    if labels is None:
        raise ValueError("build_metric('label') needs labels=the dataset's references")
    return label(labels)


def _number_name(tolerance: float) -> str:
    return "number" if tolerance == 1e-6 else f"number:{tolerance:g}"


def _default_or(kind: str, arg: str | None, default: str) -> str:
    return kind if arg is None or arg == default else f"{kind}:{arg}"


_regex_arg = _needs_arg("regex", "regex:PATTERN")
_schema_arg = _needs_arg("json-schema", "json-schema:FILE")
_python_arg = _needs_arg("python", "python:FILE.py:FUNCTION")

METRIC_KINDS: dict[str, MetricKind] = {
    "exact": MetricKind(
        "exact",
        "normalised output equals the reference",
        _no_arg("exact", exact),
        lambda arg: "exact",
    ),
    "contains": MetricKind(
        "contains",
        "the reference appears in the output",
        _no_arg("contains", contains),
        lambda arg: "contains",
    ),
    "regex": MetricKind(
        "regex:PATTERN",
        "the output matches a regular expression",
        lambda arg, labels: regex(_regex_arg(arg)),
        lambda arg: f"regex:{_regex_arg(arg)}",
    ),
    "label": MetricKind(
        "label[:A,B,C]",
        "the first label found in the output is the reference",
        _build_label,
        lambda arg: "label",
    ),
    "number": MetricKind(
        "number[:TOLERANCE]",
        "the last number equals the reference's",
        lambda arg, labels: number() if arg is None else number(_parse_tolerance(arg)),
        lambda arg: "number" if arg is None else _number_name(_parse_tolerance(arg)),
    ),
    "rouge": MetricKind(
        "rouge[:rouge1|rouge2|rougeL|rougeLsum]",
        "ROUGE F1 against the reference",
        lambda arg, labels: rouge(arg or "rougeL"),
        lambda arg: _default_or("rouge", arg, "rougeL"),
    ),
    "bleu": MetricKind(
        "bleu[:13a|intl|zh|char|none]",
        "sentence BLEU / 100",
        lambda arg, labels: bleu(arg or "13a"),
        lambda arg: _default_or("bleu", arg, "13a"),
    ),
    "chrf": MetricKind(
        "chrf", "sentence chrF / 100 (any script)", _no_arg("chrf", chrf), lambda arg: "chrf"
    ),
    "json": MetricKind(
        "json", "the output is valid JSON", _no_arg("json", json_valid), lambda arg: "json"
    ),
    "json-schema": MetricKind(
        "json-schema:FILE",
        "the output validates against a JSON schema",
        lambda arg, labels: json_schema(_schema_arg(arg)),
        lambda arg: f"json-schema:{_schema_arg(arg)}",
    ),
    "python": MetricKind(
        "python:FILE.py:FUNC",
        "your function (sample, output) -> score",
        lambda arg, labels: python_metric(*_split_python_spec(_python_arg(arg))),
        lambda arg: "python:{}:{}".format(*_split_python_spec(_python_arg(arg))),
    ),
}
AVAILABLE_METRICS = tuple(kind.usage for kind in METRIC_KINDS.values())


def metric_help() -> str:
    """The ``--metric`` help text, made from the registry."""
    return "Reference metric, repeatable: " + ", ".join(AVAILABLE_METRICS) + "."


def _unknown(spec: str) -> UserInputError:
    return UserInputError(f"unknown metric {spec!r}", f"available: {', '.join(AVAILABLE_METRICS)}")


def _parse_tolerance(arg: str) -> float:
    try:
        return float(arg)
    except ValueError:
        raise UserInputError(
            f"invalid tolerance {arg!r} in metric 'number:{arg}'", "write e.g. number:0.01"
        ) from None


def _split_python_spec(arg: str) -> tuple[str, str]:
    if arg.endswith(".py"):
        return arg, "score"
    path, sep, func = arg.rpartition(":")
    if not sep or not path.endswith(".py") or not func.isidentifier():
        raise UserInputError(
            f"invalid custom metric 'python:{arg}'", "write python:FILE.py:FUNCTION"
        )
    return path, func


def _kind_of(spec: str) -> tuple[MetricKind, str | None]:
    name, sep, arg = spec.strip().partition(":")
    kind = METRIC_KINDS.get(name)
    if kind is None:
        raise _unknown(spec.strip())
    return kind, arg if sep else None


def metric_name(spec: str) -> str:
    """The name a metric's scores are stored under, e.g. ``number:0.01`` -> ``number:0.01``,
    ``rouge:rougeL`` -> ``rouge``; nothing is built (no file is read)."""
    kind, arg = _kind_of(spec)
    return kind.name(arg)


def build_metric(spec: str, labels: Iterable[str] | None = None) -> Metric:
    """Build a metric from its command-line spec, e.g. "exact", "number:0.01", "regex:^A$".

    ``label`` needs ``labels`` (the distinct references of the dataset); ``build_metrics``
    collects them from the samples. Raises UserInputError for anything it cannot build.
    """
    kind, arg = _kind_of(spec)
    return kind.build(arg, None if labels is None else list(labels))


def build_metrics(specs: Sequence[str], samples: Iterable[Sample]) -> list[Metric]:
    """Build every metric in ``specs``, giving ``label`` the dataset's distinct references.

    Pass all samples (not one split) so every split sees the same label set. ``samples`` is
    read only when a bare ``label`` needs it, and only the distinct references are kept, so a
    generator over a large dataset costs one pass and no more memory than its labels.
    """
    labels = None
    if any(spec.strip() == "label" for spec in specs):
        labels = list(dict.fromkeys(s.reference for s in samples if s.reference is not None))
    return [build_metric(spec, labels=labels) for spec in specs]


def check_metrics_against_dataset(metrics: Sequence[Metric], has_reference: bool) -> None:
    """Fail before any call when a reference metric meets a dataset without references."""
    if has_reference:
        return
    needing = [m.name for m in metrics if m.needs_reference]
    if needing:
        raise UserInputError(
            f"metric {', '.join(needing)} needs reference answers, but the dataset has none",
            JUDGE_HINT,
        )
