"""``assay judge check``: does the judge agree with human labels well enough to optimize against?

Input: JSONL rows ``{"input": ..., "response": ..., "reference"?: ..., "human": 4}`` (or
``"human": "pass"|"fail"`` for a pass/fail rubric), optionally with the labels in a separate
file joined by ``id``. Rows with ``response_a``/``response_b`` and ``"human": "A"|"B"|"tie"``
check the pairwise judge instead.

Figures: exact agreement, adjacent agreement (within one point), Cohen's kappa (quadratic
weights on an ordinal scale, unweighted for pass/fail and pairwise) with a bootstrap 95%
interval, the unscored count, the stability of verdicts across ``--judge-repeats`` and, for the
pairwise judge, the order-consistency rate. The judge's verdict for an item is its score put
back on the rubric's scale and rounded (halves up): the integer verdict for a single judgement,
the rounded mean for repeats, a panel or criteria.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
from numpy.typing import NDArray
from pydantic import BaseModel, ConfigDict

from assay.engine.engine import Engine
from assay.errors import DataError, UserInputError
from assay.records import Message, Sample, sha256_text
from assay.scoring.judge import JUDGE_PURPOSE, LLMJudge
from assay.scoring.judge_parse import Scale, VerdictParseError, Winner
from assay.scoring.pairwise import PairwiseJudge, PairwiseVerdict
from assay.scoring.score import Score

KappaWeights = Literal["quadratic", "unweighted"]
VerdictLevel = Literal["trustworthy", "use with care", "do not optimize against this judge"]
Floats = NDArray[np.float64]
Ints = NDArray[np.int64]
SMALL_SAMPLE = 30
_KAPPA_RESAMPLES = 1000
_WINNERS: tuple[Winner, ...] = ("A", "B", "tie")

INPUT_KEYS = ("input", "question", "prompt", "text")
RESPONSE_KEYS = ("response", "output", "answer", "completion")
REFERENCE_KEYS = ("reference", "ideal", "expected")
HUMAN_KEYS = ("human", "label", "human_label", "rating")


# --------------------------------------------------------------------------- agreement


class Thresholds(BaseModel):
    """When a judge is trusted; stated in every report."""

    model_config = ConfigDict(frozen=True)

    trust_kappa: float = 0.6
    trust_max_unscored: float = 0.05
    care_kappa: float = 0.4
    care_max_unscored: float = 0.2

    def describe(self) -> str:
        return (
            f"trustworthy: kappa >= {self.trust_kappa:g} and unscored <= "
            f"{self.trust_max_unscored:.0%}; use with care: kappa >= {self.care_kappa:g} and "
            f"unscored <= {self.care_max_unscored:.0%}"
        )


class Agreement(BaseModel):
    """Judge-human agreement over the items the judge scored (unscored items counted apart)."""

    model_config = ConfigDict(frozen=True)

    n: int
    n_scored: int
    n_unscored: int
    unscored_share: float | None
    exact: float | None
    adjacent: float | None
    """Share within one point; None on a pass/fail or pairwise scale (it would always be 1)."""
    kappa: float | None
    """None when undefined: no scored items, or chance agreement is already perfect."""
    kappa_weights: KappaWeights
    kappa_ci: tuple[float, float] | None = None


def _weight_matrix(k: int, weights: KappaWeights) -> Floats:
    """Disagreement weights: ``(i - j)^2 / (k - 1)^2``, or 1 off the diagonal (unweighted)."""
    i, j = np.indices((k, k))
    gap: Floats = np.abs(i - j).astype(np.float64)
    w: Floats = gap**2 / float((k - 1) ** 2) if weights == "quadratic" else np.minimum(gap, 1.0)
    return w


def cohen_kappa(
    human: Sequence[int], judge: Sequence[int], categories: Sequence[int], weights: KappaWeights
) -> float | None:
    """Cohen's kappa, ``1 - sum(w * observed) / sum(w * expected)``; None when undefined."""
    if not human:
        return None
    index = {c: i for i, c in enumerate(categories)}
    k = len(categories)
    cells = np.array([index[h] * k + index[j] for h, j in zip(human, judge, strict=True)])
    return _kappa_from_cells(cells, k, _weight_matrix(k, weights))


def _kappa_from_cells(
    cells: Ints,
    k: int,
    w: Floats,
) -> float | None:
    observed = np.bincount(cells, minlength=k * k).reshape(k, k) / len(cells)
    expected = np.outer(observed.sum(axis=1), observed.sum(axis=0))
    chance = float((w * expected).sum())
    if chance <= 1e-12:
        return None
    return 1.0 - float((w * observed).sum()) / chance


def kappa_interval(
    human: Sequence[int],
    judge: Sequence[int],
    categories: Sequence[int],
    weights: KappaWeights,
    seed: int = 0,
) -> tuple[float, float] | None:
    """Percentile bootstrap 95% interval of kappa (seeded); None with fewer than 10 items."""
    if len(human) < 10:
        return None
    index = {c: i for i, c in enumerate(categories)}
    k = len(categories)
    cells = np.array([index[h] * k + index[j] for h, j in zip(human, judge, strict=True)])
    w = _weight_matrix(k, weights)
    rng = np.random.default_rng(seed)
    draws = rng.integers(0, len(cells), size=(_KAPPA_RESAMPLES, len(cells)))
    values = [v for row in draws if (v := _kappa_from_cells(cells[row], k, w)) is not None]
    if len(values) < _KAPPA_RESAMPLES // 2:
        return None
    low, high = np.percentile(values, [2.5, 97.5])
    return float(low), float(high)


def agreement_on_points(
    human: Sequence[int],
    judge: Sequence[int | None],
    categories: Sequence[int],
    weights: KappaWeights,
) -> Agreement:
    """Agreement between integer labels (points on the scale, or category indices)."""
    pairs = [(h, j) for h, j in zip(human, judge, strict=True) if j is not None]
    hs, js = [h for h, _ in pairs], [j for _, j in pairs]
    n, n_scored = len(human), len(pairs)
    exact = sum(h == j for h, j in pairs) / n_scored if pairs else None
    adjacent = sum(abs(h - j) <= 1 for h, j in pairs) / n_scored if pairs else None
    return Agreement(
        n=n,
        n_scored=n_scored,
        n_unscored=n - n_scored,
        unscored_share=(n - n_scored) / n if n else None,
        exact=exact,
        adjacent=adjacent if weights == "quadratic" else None,
        kappa=cohen_kappa(hs, js, categories, weights),
        kappa_weights=weights,
        kappa_ci=kappa_interval(hs, js, categories, weights),
    )


def human_point(label: object, scale: Scale) -> int:
    """A human label as a point on ``scale``: 1-5 integers, or "pass"/"fail"; ValueError else."""
    if isinstance(label, bool) and scale.kind == "pass_fail":
        return int(label)
    if isinstance(label, float) and label.is_integer():
        label = int(label)
    if isinstance(label, int) and not isinstance(label, bool):
        if scale.low <= label <= scale.high:
            return label
        raise ValueError(f"human label {label} is outside the rubric's {scale.label} scale")
    if isinstance(label, str):
        try:
            return scale.parse_point(label)
        except VerdictParseError:
            pass
    raise ValueError(f"human label {label!r} is not on the rubric's {scale.label} scale")


def agreement(human: Sequence[int | str], judge: Sequence[int | None], scale: Scale) -> Agreement:
    """Agreement of judge verdicts (points on ``scale``, None when unscored) with human labels.

    Kappa is quadratic-weighted on a numeric scale and unweighted on a pass/fail one
    (pass = 1, fail = 0 on both sides).
    """
    points = [human_point(label, scale) for label in human]
    weights: KappaWeights = "quadratic" if scale.kind == "numeric" else "unweighted"
    return agreement_on_points(points, judge, scale.points, weights)


def verdict_for(result: Agreement, thresholds: Thresholds) -> tuple[VerdictLevel, str]:
    """The one-line verdict and why, thresholds included."""
    share = result.unscored_share if result.unscored_share is not None else 1.0
    kappa = result.kappa
    level: VerdictLevel = "do not optimize against this judge"
    if kappa is not None and share <= thresholds.care_max_unscored:
        if kappa >= thresholds.trust_kappa and share <= thresholds.trust_max_unscored:
            level = "trustworthy"
        elif kappa >= thresholds.care_kappa:
            level = "use with care"
    return level, _verdict_line(level, result, thresholds)


def _verdict_line(level: VerdictLevel, result: Agreement, thresholds: Thresholds) -> str:
    if result.kappa is None:
        figure = "kappa undefined (nothing scored, or every label in one category)"
    else:
        name = "weighted kappa" if result.kappa_weights == "quadratic" else "kappa"
        figure = f"{name} {result.kappa:.2f}"
        if result.kappa_ci is not None:
            figure += f" [95% CI {result.kappa_ci[0]:.2f}, {result.kappa_ci[1]:.2f}]"
    share = result.unscored_share or 0.0
    line = (
        f"{level}: {figure} on {result.n_scored} scored items, {share:.0%} unscored "
        f"({thresholds.describe()})"
    )
    if 0 < result.n_scored < SMALL_SAMPLE:
        line += f"; only {result.n_scored} items, so these figures are rough"
    return line


# --------------------------------------------------------------------------- rows


class LabelledRow(BaseModel):
    """One response with its human label (a point on the rubric's scale)."""

    model_config = ConfigDict(frozen=True)

    id: str
    line: int
    messages: tuple[Message, ...]
    response: str
    reference: str | None = None
    human: int

    def sample(self) -> Sample:
        return Sample(id=self.id, line=self.line, messages=self.messages, reference=self.reference)


class LabelledPair(BaseModel):
    """Two responses with the human's preference."""

    model_config = ConfigDict(frozen=True)

    id: str
    line: int
    messages: tuple[Message, ...]
    response_a: str
    response_b: str
    reference: str | None = None
    human: Winner

    def sample(self) -> Sample:
        return Sample(id=self.id, line=self.line, messages=self.messages, reference=self.reference)


class CheckRows(BaseModel):
    """The labelled rows of a check, and how many data rows had no label."""

    rows: list[LabelledRow] = []
    pairs: list[LabelledPair] = []
    n_unlabelled: int = 0


def read_jsonl(path: str | Path) -> list[tuple[int, dict[str, Any]]]:
    """``(line number, object)`` for each non-blank line; DataError names the bad line."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise UserInputError(f"File not found: {p}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise UserInputError(f"Cannot read {p}: {exc}", "save it as UTF-8 JSONL") from None
    rows = []
    for n, line in enumerate(text.splitlines(), 1):
        row = _json_object(str(p), n, line)
        if row is not None:
            rows.append((n, row))
    if not rows:
        raise DataError(str(p), None, "no rows", "write one JSON object per line")
    return rows


def _json_object(path: str, line: int, text: str) -> dict[str, Any] | None:
    if not text.strip():
        return None
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise DataError(path, line, f"not valid JSON ({exc.msg})") from None
    if not isinstance(value, dict):
        raise DataError(path, line, "each line must be a JSON object")
    return value


def is_pairwise(rows: Sequence[tuple[int, Mapping[str, Any]]]) -> bool:
    """Pairwise rows carry ``response_a`` and ``response_b``."""
    return "response_a" in rows[0][1] and "response_b" in rows[0][1]


def _first(row: Mapping[str, Any], keys: Sequence[str]) -> Any:
    return next((row[k] for k in keys if row.get(k) is not None), None)


def _text(path: str, line: int, row: Mapping[str, Any], keys: Sequence[str]) -> str:
    value = _first(row, keys)
    if not isinstance(value, str):
        found = "missing" if value is None else f"a {type(value).__name__}"
        raise DataError(path, line, f"'{keys[0]}' is {found}", f"give '{keys[0]}' as a string")
    return value


def _messages(path: str, line: int, row: Mapping[str, Any]) -> tuple[Message, ...]:
    raw = row.get("messages")
    if isinstance(raw, list):
        try:
            return tuple(Message.model_validate(m) for m in raw)
        except ValueError:
            raise DataError(path, line, "'messages' must be {role, content} objects") from None
    return (Message(role="user", content=_text(path, line, row, INPUT_KEYS)),)


def _reference(row: Mapping[str, Any]) -> str | None:
    value = _first(row, REFERENCE_KEYS)
    return None if value is None else str(value)


def _row_id(row: Mapping[str, Any], line: int) -> str:
    value = row.get("id")
    return str(line) if value is None or value == "" else str(value)


def _labels_by_id(path: str) -> dict[str, tuple[int, Any]]:
    labels: dict[str, tuple[int, Any]] = {}
    for line, row in read_jsonl(path):
        if row.get("id") is None:
            raise DataError(path, line, "a label row needs an 'id'", "ids join labels to DATA")
        key = str(row["id"])
        if key in labels:
            raise DataError(path, line, f"id {key!r} is labelled twice")
        labels[key] = (line, _first(row, HUMAN_KEYS))
    return labels


def load_check_rows(data: str | Path, scale: Scale, labels: str | Path | None = None) -> CheckRows:
    """Read DATA (and LABELS, joined by id); every label is validated against ``scale``."""
    path = str(data)
    raw = read_jsonl(path)
    joined = _join_labels(path, raw, str(labels) if labels is not None else None)
    pairwise = is_pairwise(raw)
    result = CheckRows(n_unlabelled=sum(1 for _, _, label, _ in joined if label is None))
    for line, row, label, where in joined:
        if label is None:
            continue
        if pairwise:
            result.pairs.append(_pair(path, line, row, _pair_label(label, where)))
        else:
            result.rows.append(_row(path, line, row, _point_label(label, scale, where)))
    if not result.rows and not result.pairs:
        raise UserInputError(f"No labelled rows in {path}", "give each row a 'human' label")
    return result


def _join_labels(
    path: str, raw: list[tuple[int, dict[str, Any]]], labels: str | None
) -> list[tuple[int, dict[str, Any], Any, tuple[str, int]]]:
    """``(line, row, label or None, (file, line) of the label)`` for each DATA row."""
    if labels is None:
        return [(n, row, _first(row, HUMAN_KEYS), (path, n)) for n, row in raw]
    by_id = _labels_by_id(labels)
    ids = {_row_id(row, n) for n, row in raw}
    for key, (line, _) in by_id.items():
        if key not in ids:
            raise DataError(labels, line, f"id {key!r} is not in {path}")
    joined = []
    for n, row in raw:
        line, label = by_id.get(_row_id(row, n), (0, None))
        joined.append((n, row, label, (labels, line)))
    return joined


def _point_label(label: Any, scale: Scale, where: tuple[str, int]) -> int:
    try:
        return human_point(label, scale)
    except ValueError as exc:
        raise DataError(
            where[0], where[1], str(exc), "the rubric states its scale, e.g. 'Scale: 1-5'"
        ) from None


def _pair_label(label: Any, where: tuple[str, int]) -> Winner:
    text = str(label).strip().lower()
    for winner in _WINNERS:
        if text == winner.lower():
            return winner
    raise DataError(where[0], where[1], f"pairwise label {label!r} is not A, B or tie")


def _row(path: str, line: int, row: Mapping[str, Any], human: int) -> LabelledRow:
    return LabelledRow(
        id=_row_id(row, line),
        line=line,
        messages=_messages(path, line, row),
        response=_text(path, line, row, RESPONSE_KEYS),
        reference=_reference(row),
        human=human,
    )


def _pair(path: str, line: int, row: Mapping[str, Any], human: Winner) -> LabelledPair:
    return LabelledPair(
        id=_row_id(row, line),
        line=line,
        messages=_messages(path, line, row),
        response_a=_text(path, line, row, ("response_a",)),
        response_b=_text(path, line, row, ("response_b",)),
        reference=_reference(row),
        human=human,
    )


# --------------------------------------------------------------------------- the check


class CheckItem(BaseModel):
    """One row: the human label, the judge's verdict (None when unscored) and why."""

    id: str
    human: str
    judge: str | None
    status: str
    reason: str = ""
    stable: bool | None = None
    order_consistent: bool | None = None


class JudgeCheckReport(BaseModel):
    mode: Literal["pointwise", "pairwise"]
    judge: list[str]
    scale: str
    rubric_hash: str
    repeats: int
    n_rows: int
    n_unlabelled: int
    agreement: Agreement
    repeat_stability: float | None = None
    """Share of items whose scored verdicts agree across repeats (items with 2+ scored)."""
    n_repeat_items: int = 0
    order_consistency: float | None = None
    """Pairwise: share of parsed comparisons whose verdict survived swapping the order."""
    verdict: VerdictLevel
    verdict_line: str
    thresholds: Thresholds
    judge_calls: int = 0
    judge_cached_calls: int = 0
    judge_cost_usd: float | None = None
    """Spent on judge calls in this check; None when a price or usage was unknown."""
    items: list[CheckItem]


def _judge_spend(engine: Engine) -> tuple[int, int, float, int]:
    calls = cached = unknown = 0
    cost = 0.0
    for (purpose, _), totals in engine.accounting.snapshot().items():
        if purpose == JUDGE_PURPOSE:
            calls += totals.calls
            cached += totals.cached_calls
            cost += totals.cost_usd
            unknown += totals.cost_unknown_calls
    return calls, cached, cost, unknown


def _spend_fields(engine: Engine, before: tuple[int, int, float, int]) -> dict[str, Any]:
    after = _judge_spend(engine)
    unknown = after[3] - before[3]
    return {
        "judge_calls": after[0] - before[0],
        "judge_cached_calls": after[1] - before[1],
        "judge_cost_usd": None if unknown else after[2] - before[2],
    }


def _stable(score: Score) -> bool | None:
    """Whether each judge gave the same value on every scored repeat (None: under 2 scored)."""
    records = score.details.get("judgements") or []
    by_judge: dict[str, list[float]] = {}
    for record in records:
        if record.get("value") is not None:
            by_judge.setdefault(str(record.get("judge")), []).append(float(record["value"]))
    groups = [values for values in by_judge.values() if len(values) >= 2]
    if not groups:
        return None
    return all(max(v) - min(v) < 1e-9 for v in groups)


def _judge_point(score: Score, scale: Scale) -> int | None:
    return scale.to_point(score.value) if score.is_scored and score.value is not None else None


async def check_judge(
    rows: Sequence[LabelledRow],
    judge: LLMJudge,
    *,
    thresholds: Thresholds | None = None,
    n_unlabelled: int = 0,
) -> JudgeCheckReport:
    """Score every labelled response with ``judge`` and measure agreement with the humans."""
    thresholds = thresholds or Thresholds()
    before = _judge_spend(judge.engine)
    scores = await asyncio.gather(*(judge.score(r.sample(), r.response) for r in rows))
    scale = judge.scale
    points = [_judge_point(s, scale) for s in scores]
    weights: KappaWeights = "quadratic" if scale.kind == "numeric" else "unweighted"
    result = agreement_on_points([r.human for r in rows], points, scale.points, weights)
    stable = [_stable(s) for s in scores]
    judged = [s for s in stable if s is not None]
    level, line = verdict_for(result, thresholds)
    return JudgeCheckReport(
        mode="pointwise",
        judge=[m.spec for m in judge.config.models],
        scale=scale.label,
        rubric_hash=judge.rubric_hash,
        repeats=judge.config.repeats,
        n_rows=len(rows),
        n_unlabelled=n_unlabelled,
        agreement=result,
        repeat_stability=sum(judged) / len(judged) if judged else None,
        n_repeat_items=len(judged),
        verdict=level,
        verdict_line=line,
        thresholds=thresholds,
        items=[
            _item(r, s, p, st, scale)
            for r, s, p, st in zip(rows, scores, points, stable, strict=True)
        ],
        **_spend_fields(judge.engine, before),
    )


def _item(
    row: LabelledRow, score: Score, point: int | None, stable: bool | None, scale: Scale
) -> CheckItem:
    return CheckItem(
        id=row.id,
        human=scale.point_label(row.human),
        judge=scale.point_label(point) if point is not None else None,
        status=score.status,
        reason=score.reason if not score.is_scored else "",
        stable=stable,
    )


async def check_pairwise(
    pairs: Sequence[LabelledPair],
    judge: PairwiseJudge,
    *,
    thresholds: Thresholds | None = None,
    n_unlabelled: int = 0,
) -> JudgeCheckReport:
    """Compare every labelled pair in both orders and measure agreement with the humans."""
    thresholds = thresholds or Thresholds()
    before = _judge_spend(judge.engine)
    verdicts = await asyncio.gather(
        *(judge.compare(p.sample(), p.response_a, p.response_b) for p in pairs)
    )
    index = {w: i for i, w in enumerate(_WINNERS)}
    human = [index[p.human] for p in pairs]
    judged = [index[v.winner] if v.winner is not None else None for v in verdicts]
    result = agreement_on_points(human, judged, list(range(3)), "unweighted")
    consistent = [v.order_consistent for v in verdicts if v.order_consistent is not None]
    level, line = verdict_for(result, thresholds)
    return JudgeCheckReport(
        mode="pairwise",
        judge=[judge.model.spec],
        scale="A/B/tie",
        rubric_hash=sha256_text(judge.config.rubric),
        repeats=1,
        n_rows=len(pairs),
        n_unlabelled=n_unlabelled,
        agreement=result,
        order_consistency=sum(consistent) / len(consistent) if consistent else None,
        verdict=level,
        verdict_line=line,
        thresholds=thresholds,
        items=[_pair_item(p, v) for p, v in zip(pairs, verdicts, strict=True)],
        **_spend_fields(judge.engine, before),
    )


def _pair_item(pair: LabelledPair, verdict: PairwiseVerdict) -> CheckItem:
    return CheckItem(
        id=pair.id,
        human=pair.human,
        judge=verdict.winner,
        status="scored" if verdict.winner is not None else "unscored",
        reason=verdict.reason,
        order_consistent=verdict.order_consistent,
    )
