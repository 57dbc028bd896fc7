"""Reference metrics on hand-made cases: a score is a judgement, never a silent 0 for a failure."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from assay.errors import UserInputError
from assay.records import Sample
from assay.scoring import Score, build_metric, build_metrics, check_metrics_against_dataset
from assay.scoring.metrics import (
    NO_LABEL,
    confusion_matrix,
    custom_result_to_score,
    extract_last_number,
    normalize_text,
)


def sample(reference: str | None = None, **fields: object) -> Sample:
    return Sample(id="s1", line=1, reference=reference, fields=dict(fields))


def value(spec: str, output: str, reference: str | None = None) -> float | None:
    result: float | None = build_metric(spec)(sample(reference), output).value
    return result


# --- Score --------------------------------------------------------------------------------


def test_score_constructors() -> None:
    s = Score.scored(0.25, "ok", predicted="a")
    assert s.is_scored and s.value == 0.25 and s.details == {"predicted": "a"}
    u = Score.unscored("no reference")
    assert not u.is_scored and u.value is None and u.status == "unscored"
    e = Score.error("timeout")
    assert e.status == "error" and e.value is None and e.reason == "timeout"


@pytest.mark.parametrize("bad", [1.5, -0.1, math.nan, math.inf])
def test_score_rejects_values_outside_unit_interval(bad: float) -> None:
    with pytest.raises(ValueError):
        Score.scored(bad)


def test_score_model_rejects_inconsistent_status() -> None:
    with pytest.raises(ValueError):
        Score(value=0.5, status="unscored")
    with pytest.raises(ValueError):
        Score(value=None, status="scored")


# --- exact / contains / regex -------------------------------------------------------------


@pytest.mark.parametrize(
    ("output", "reference", "expected"),
    [
        ("Paris", "Paris", 1.0),
        ("  paris.  ", "Paris", 1.0),
        ('"Paris!"', "paris", 1.0),
        ("New   York\n", "new york", 1.0),
        ("Café", "café", 1.0),
        ("cafe", "café", 0.0),  # accents are kept
        ("東京。", "東京", 1.0),
        ("ＡＢＣ", "abc", 1.0),  # NFKC folds full-width letters
        ("Paris, France", "Paris", 0.0),
        ("", "Paris", 0.0),
        ("50%", "50", 0.0),  # a percent sign is not trailing punctuation
    ],
)
def test_exact(output: str, reference: str, expected: float) -> None:
    assert value("exact", output, reference) == expected


def test_normalize_text() -> None:
    assert normalize_text("  «Hello,   World»… ") == "hello, world"


def test_reference_metric_on_sample_without_reference_is_unscored() -> None:
    for spec in ("exact", "contains", "number", "rouge", "bleu", "chrf"):
        score = build_metric(spec)(sample(None), "anything")
        assert score.status == "unscored", spec
        assert "no reference" in score.reason


@pytest.mark.parametrize(
    ("output", "reference", "expected"),
    [
        ("The capital is Paris.", "paris", 1.0),
        ("The capital is  New\nYork!", "New York", 1.0),
        ("It is Lyon", "Paris", 0.0),
        ("", "Paris", 0.0),
        ("答案是北京市", "北京", 1.0),
    ],
)
def test_contains(output: str, reference: str, expected: float) -> None:
    assert value("contains", output, reference) == expected


def test_contains_empty_reference_is_unscored() -> None:
    assert build_metric("contains")(sample("  ."), "x").status == "unscored"


def test_regex_searches_output_and_needs_no_reference() -> None:
    metric = build_metric(r"regex:\bID-\d{3}\b")
    assert not metric.needs_reference
    hit = metric(sample(None), "your ticket is ID-042, thanks")
    assert hit.value == 1.0 and hit.details["match"] == "ID-042"
    assert metric(sample(None), "no ticket").value == 0.0
    assert metric(sample(None), "").value == 0.0
    assert value("regex:(?i)^yes", "YES indeed") == 1.0


@pytest.mark.parametrize("spec", ["regex:(unclosed", "regex:"])
def test_invalid_regex_fails_at_build(spec: str) -> None:
    with pytest.raises(UserInputError):
        build_metric(spec)


# --- label --------------------------------------------------------------------------------

LABELS = ["positive", "negative", "neutral"]


@pytest.mark.parametrize(
    ("output", "reference", "expected", "predicted"),
    [
        ("Positive", "positive", 1.0, "positive"),
        ("Sentiment: NEGATIVE.", "negative", 1.0, "negative"),
        ("negative, not positive", "negative", 1.0, "negative"),  # first label wins
        ("positive or negative? negative", "negative", 0.0, "positive"),
        ("It is neutral-ish", "neutral", 1.0, "neutral"),
        ("nonpositive", "positive", 0.0, None),  # whole words only
        ("I cannot tell", "positive", 0.0, None),
        ("", "positive", 0.0, None),
    ],
)
def test_label(output: str, reference: str, expected: float, predicted: str | None) -> None:
    score = build_metric("label", labels=LABELS)(sample(reference), output)
    assert score.is_scored
    assert score.value == expected
    assert score.details["predicted"] == predicted


def test_label_not_found_is_a_wrong_answer_not_unscored() -> None:
    score = build_metric("label", labels=LABELS)(sample("positive"), "hmm")
    assert score.status == "scored" and score.value == 0.0
    assert score.reason == "no label found"


def test_label_negation_caveat_is_lexical() -> None:
    # Documented: extraction does not understand negation.
    score = build_metric("label", labels=LABELS)(sample("negative"), "This is not positive.")
    assert score.details["predicted"] == "positive" and score.value == 0.0


def test_label_longest_wins_at_same_position_and_multiword() -> None:
    metric = build_metric("label", labels=["positive", "very positive"])
    score = metric(sample("very positive"), "Verdict: Very   Positive")
    assert score.details["predicted"] == "very positive" and score.value == 1.0


def test_label_cjk_and_accents() -> None:
    metric = build_metric("label", labels=["正面", "负面"])
    assert metric(sample("正面"), "这条评论是正面的").value == 1.0
    metric = build_metric("label", labels=["négatif", "positif"])
    score = metric(sample("négatif"), "Avis : NÉGATIF")
    assert score.value == 1.0 and score.details["predicted"] == "négatif"


def test_label_list_in_spec_and_from_samples() -> None:
    assert value("label:yes,no", "No.", "no") == 1.0
    samples = [sample("yes"), sample("no"), sample(None), sample("yes")]
    (metric,) = build_metrics(["label"], samples)
    assert metric(sample("no"), "I'd say no").value == 1.0


def test_label_without_labels() -> None:
    with pytest.raises(ValueError):
        build_metric("label")
    with pytest.raises(UserInputError):
        build_metrics(["label"], [sample(None)])


def test_confusion_matrix_counts() -> None:
    pairs: list[tuple[str, str | None]] = [
        ("pos", "pos"),
        ("pos", "neg"),
        ("neg", "neg"),
        ("neg", "neg"),
        ("neu", None),
        ("pos", "pos"),
    ]
    matrix = confusion_matrix(pairs)
    assert matrix["pos"] == {"neg": 1, "neu": 0, "pos": 2, NO_LABEL: 0}
    assert matrix["neg"]["neg"] == 2
    assert matrix["neu"][NO_LABEL] == 1
    assert sum(sum(row.values()) for row in matrix.values()) == len(pairs)
    assert NO_LABEL not in confusion_matrix([("a", "b")])["a"]


# --- number -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("The answer is 42.", 42.0),
        ("first 3 then -3.5", -3.5),
        ("It costs $1,200 in total", 1200.0),
        ("€1,234,567.89", 1234567.89),
        ("about 42 kg", 42.0),
        ("growth of 15%", 15.0),
        ("1e-3", 0.001),
        ("pages 3-5", 5.0),  # a range, not a negative number
        ("H2O weighs 18", 18.0),
        ("答案是42", 42.0),
        ("x = \u22127", -7.0),
        ("1,2,3", 3.0),
        (".5", 0.5),
    ],
)
def test_extract_last_number(text: str, expected: float) -> None:
    found = extract_last_number(text)
    assert found is not None and found.value == pytest.approx(expected)


def test_extract_no_number() -> None:
    assert extract_last_number("no digits here, v2 aside") is None


@pytest.mark.parametrize(
    ("spec", "output", "reference", "expected"),
    [
        ("number", "So the total is 1,200 dollars.", "1200", 1.0),
        ("number", "#### 72", "72", 1.0),
        ("number", "-4", "-4.0", 1.0),
        ("number", "41.99", "42", 0.0),
        ("number:0.01", "41.99", "42", 1.0),
        ("number", "That is 42%.", "0.42", 1.0),  # percent on one side compares as a fraction
        ("number", "42%", "42%", 1.0),
        ("number", "0.42%", "42%", 0.0),
        ("number", "0", "0", 1.0),
    ],
)
def test_number(spec: str, output: str, reference: str, expected: float) -> None:
    assert value(spec, output, reference) == expected


def test_number_without_number_in_output_is_zero_and_bad_reference_unscored() -> None:
    metric = build_metric("number")
    none_found = metric(sample("42"), "I don't know")
    assert none_found.value == 0.0 and none_found.details["predicted"] is None
    assert metric(sample("forty-two"), "42").status == "unscored"
    assert metric(sample("5"), "").value == 0.0


@pytest.mark.parametrize("spec", ["number:abc", "number:-1", "number:nan"])
def test_number_bad_tolerance(spec: str) -> None:
    with pytest.raises(UserInputError):
        build_metric(spec)


# --- rouge / bleu / chrf ------------------------------------------------------------------


def test_rouge_variants() -> None:
    ref = "the cat sat on the mat"
    assert value("rouge", ref, ref) == pytest.approx(1.0)
    assert value("rouge:rouge1", "the cat", ref) == pytest.approx(2 * (1 * 2 / 6) / (1 + 2 / 6))
    assert value("rouge:rouge2", "mat the on sat cat the", ref) == 0.0
    assert value("rouge:rougeLsum", "the cat sat\non the mat", "the cat sat\non the mat") == 1.0
    assert value("rouge", "", ref) == 0.0
    assert value("rouge", "The cats are sitting", "the cat sits") > 0.5  # type: ignore[operator]


def test_rouge_keeps_accents_and_cjk() -> None:
    # rouge-score's default tokenizer drops every non-ASCII letter: these would score 0.
    assert value("rouge", "très bon café", "très bon café") == pytest.approx(1.0)
    assert value("rouge", "猫が座った", "猫が座った") == pytest.approx(1.0)
    partial = value("rouge:rouge1", "猫は座った", "猫が座った")
    assert partial is not None and 0.0 < partial < 1.0


def test_rouge_unknown_variant() -> None:
    with pytest.raises(UserInputError):
        build_metric("rouge:rouge9x")


def test_bleu_and_chrf_scaled() -> None:
    ref = "the quick brown fox jumps over the lazy dog"
    for spec in ("bleu", "chrf", "bleu:char"):
        assert value(spec, ref, ref) == 1.0, spec
        assert value(spec, "", ref) == 0.0, spec
        part = value(spec, "the quick brown fox", ref)
        assert part is not None and 0.0 < part < 1.0, spec
    assert value("chrf", "猫は座った", "猫が座った") > 0.0  # type: ignore[operator]
    with pytest.raises(UserInputError):
        build_metric("bleu:klingon")


def test_text_overlap_empty_reference_unscored() -> None:
    for spec in ("rouge", "bleu", "chrf"):
        assert build_metric(spec)(sample(""), "text").status == "unscored"


# --- json / json-schema -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("output", "expected"),
    [
        ('{"a": 1}', 1.0),
        ('  [1, 2, "三"]  ', 1.0),
        ('```json\n{"a": 1}\n```', 1.0),
        ('Here you go:\n```JSON\n{"a": 1}\n```\nanything else?', 1.0),
        ('```\n{"a": 1}\n```', 1.0),
        ("{'a': 1}", 0.0),
        ('{"a": 1', 0.0),
        ('{"a": NaN}', 0.0),
        ("", 0.0),
    ],
)
def test_json(output: str, expected: float) -> None:
    score = build_metric("json")(sample(None), output)
    assert score.is_scored and score.value == expected
    if expected == 0.0:
        assert score.reason == "not valid JSON"


@pytest.fixture
def schema_file(tmp_path: Path) -> Path:
    schema = {
        "type": "object",
        "properties": {"label": {"enum": ["pos", "neg"]}, "confidence": {"type": "number"}},
        "required": ["label"],
    }
    path = tmp_path / "schema.json"
    path.write_text(json.dumps(schema), encoding="utf-8")
    return path


def test_json_schema(schema_file: Path) -> None:
    metric = build_metric(f"json-schema:{schema_file}")
    assert not metric.needs_reference
    assert metric(sample(), '```json\n{"label": "pos", "confidence": 0.9}\n```').value == 1.0
    wrong = metric(sample(), '{"label": "maybe"}')
    assert wrong.value == 0.0 and "label" in wrong.reason
    assert metric(sample(), '{"confidence": 1}').value == 0.0
    assert metric(sample(), "not json").reason == "not valid JSON"


def test_json_schema_bad_files_fail_at_build(tmp_path: Path) -> None:
    with pytest.raises(UserInputError, match="cannot read"):
        build_metric(f"json-schema:{tmp_path / 'missing.json'}")
    broken = tmp_path / "broken.json"
    broken.write_text("{not json", encoding="utf-8")
    with pytest.raises(UserInputError, match="not valid JSON"):
        build_metric(f"json-schema:{broken}")
    invalid = tmp_path / "invalid.json"
    invalid.write_text('{"type": 12}', encoding="utf-8")
    with pytest.raises(UserInputError, match="not a valid JSON schema"):
        build_metric(f"json-schema:{invalid}")


# --- python -------------------------------------------------------------------------------

USER_METRICS = """
import math

def length_ok(sample, output):
    return 1.0 if len(output) < 10 else 0.0

def boom(sample, output):
    raise RuntimeError("kaput")

def too_big(sample, output):
    return 1.7

def nan(sample, output):
    return math.nan

def with_reason(sample, output):
    return {"score": 0.5, "reason": "half right", "hits": 2}

def as_bool(sample, output):
    return output == sample.fields["want"]

def as_string(sample, output):
    return "0.5"

def no_score(sample, output):
    return {"reason": "forgot"}

def score(sample, output):
    return 0.25
"""


@pytest.fixture
def user_file(tmp_path: Path) -> Path:
    path = tmp_path / "my_metrics.py"
    path.write_text(USER_METRICS, encoding="utf-8")
    return path


def run_user(path: Path, func: str, output: str = "short", **fields: object) -> Score:
    metric = build_metric(f"python:{path}:{func}")
    assert not metric.needs_reference
    return metric(sample(None, **fields), output)


def test_python_metric_values(user_file: Path) -> None:
    assert run_user(user_file, "length_ok").value == 1.0
    assert run_user(user_file, "length_ok", output="much too long").value == 0.0
    reasoned = run_user(user_file, "with_reason")
    assert reasoned.value == 0.5 and reasoned.reason == "half right"
    assert reasoned.details == {"hits": 2}
    assert run_user(user_file, "as_bool", output="a", want="a").value == 1.0
    assert run_user(user_file, "as_bool", output="b", want="a").value == 0.0
    assert build_metric(f"python:{user_file}")(sample(), "x").value == 0.25  # default "score"


@pytest.mark.parametrize(
    ("func", "reason_part"),
    [
        ("boom", "metric raised: RuntimeError('kaput')"),
        ("too_big", "custom metric returned 1.7, outside [0, 1]"),
        ("nan", "NaN"),
        ("as_string", "returned str"),
        ("no_score", "without 'score'"),
    ],
)
def test_python_metric_failures_are_unscored_never_clamped(
    user_file: Path, func: str, reason_part: str
) -> None:
    score = run_user(user_file, func)
    assert score.status == "unscored"
    assert score.value is None
    assert reason_part in score.reason


def test_custom_result_to_score_edges() -> None:
    assert custom_result_to_score({"score": None, "reason": "skip"}).status == "unscored"
    assert custom_result_to_score(0).value == 0.0
    assert custom_result_to_score(Score.unscored("x")).reason == "x"
    assert custom_result_to_score(-0.1).status == "unscored"


def test_python_metric_load_errors(tmp_path: Path, user_file: Path) -> None:
    with pytest.raises(UserInputError, match="not found"):
        build_metric(f"python:{tmp_path / 'nope.py'}:f")
    with pytest.raises(UserInputError, match="no function 'missing'"):
        build_metric(f"python:{user_file}:missing")
    broken = tmp_path / "broken.py"
    broken.write_text("def f(:\n", encoding="utf-8")
    with pytest.raises(UserInputError, match="importing custom metric"):
        build_metric(f"python:{broken}:f")
    with pytest.raises(UserInputError, match=r"FILE\.py:FUNCTION"):
        build_metric("python:metrics.txt:f")


# --- specs and dataset checks -------------------------------------------------------------


def test_unknown_metric_lists_available() -> None:
    with pytest.raises(UserInputError) as info:
        build_metric("accuracy")
    assert "exact" in str(info.value) and "json-schema:FILE" in str(info.value)
    with pytest.raises(UserInputError):
        build_metric("bogus:1")


def test_needs_reference_flags(user_file: Path) -> None:
    needing = ["exact", "contains", "number", "rouge", "bleu", "chrf"]
    assert all(build_metric(s).needs_reference for s in needing)
    assert build_metric("label", labels=["a"]).needs_reference
    assert not any(build_metric(s).needs_reference for s in ["regex:x", "json"])


def test_check_metrics_against_dataset() -> None:
    metrics = [build_metric("json"), build_metric("exact")]
    check_metrics_against_dataset(metrics, has_reference=True)
    check_metrics_against_dataset([build_metric("json")], has_reference=False)
    with pytest.raises(UserInputError) as info:
        check_metrics_against_dataset(metrics, has_reference=False)
    message = str(info.value)
    assert "\n" not in message
    assert "exact" in message and "--judge SPEC --judge-criteria RUBRIC.md" in message


def test_metric_names() -> None:
    assert build_metric("exact").name == "exact"
    assert build_metric("number:0.01").name == "number:0.01"
    assert build_metric("rouge:rouge1").name == "rouge:rouge1"
    assert build_metric(" json ").name == "json"
