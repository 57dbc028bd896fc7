"""The pre-flight estimate of an optimization: calls and an upper bound on dollars."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

from assay.optimizer.strategies import STRATEGY_TYPES
from assay.pipeline.pilot import PilotMeasure
from assay.pricing import PriceTable, cost_usd
from assay.scoring.judge import TRACE_MAX_CHARS

if TYPE_CHECKING:
    from assay.optimizer.loop import Prepared

CHARS_PER_TOKEN = 4


@dataclass(frozen=True)
class CallEstimate:
    label: str
    calls: int
    cost_usd: float | None


def step_task_calls(strategy: str, batch: int) -> int:
    """Worst-case task calls of one step on train, val excluded, as the strategy states it."""
    return STRATEGY_TYPES[strategy].step_task_calls(batch)


def reasoning_calls(strategy: str, iterations: int) -> int:
    """Worst-case reasoner calls over ``iterations`` steps, as the strategy states it."""
    return STRATEGY_TYPES[strategy].reasoning_calls(iterations)


def estimate(
    prepared: Prepared, prices: PriceTable, pilot: PilotMeasure | None = None
) -> list[CallEstimate]:
    """Worst case: every step reaches val; judge calls ride on every evaluated sample. With a
    pipeline, ``pilot`` gives its model calls a sample and their size."""
    config, split = prepared.config, prepared.split
    iterations = config.stop.max_iterations
    batch = min(config.batch_size, len(split.train))
    step = step_task_calls(config.strategy, batch)
    task_calls = batch + len(split.val) + iterations * (step + len(split.val))
    task_calls += 2 * len(split.test)
    avg_chars = sum(len(s.input_text()) for s in prepared.dataset.samples) / max(
        1, len(prepared.dataset.samples)
    ) + len(prepared.prompt.text)
    max_out = config.params.max_tokens or 1024
    rows = [_task_row(prepared, prices, task_calls, avg_chars, max_out, pilot)]
    judge = config.scoring.judge
    if judge is not None:
        per_item = judge.repeats * len(judge.models)
        trace = TRACE_MAX_CHARS if prepared.pipeline is not None else 0
        for model in judge.models:
            rows.append(
                _row(
                    f"judge {model.label}",
                    task_calls * per_item // len(judge.models),
                    avg_chars + len(judge.rubric) + 1500 + trace,
                    judge.max_tokens,
                    prices.lookup(model),
                )
            )
    reasoning_chars = config.context_tokens * CHARS_PER_TOKEN // 2
    rows.append(
        _row(
            f"reasoning {config.reasoner.label}",
            reasoning_calls(config.strategy, iterations),
            reasoning_chars,
            config.reasoning_max_tokens,
            prices.lookup(config.reasoner),
        )
    )
    return rows


def _task_row(
    prepared: Prepared,
    prices: PriceTable,
    samples: int,
    chars: float,
    max_out: int,
    pilot: PilotMeasure | None,
) -> CallEstimate:
    """The task model's calls: one a sample, or a pipeline's measured calls a sample."""
    model = prepared.config.model
    if prepared.pipeline is None or pilot is None:
        return _row(f"task {model.label}", samples, chars, max_out, prices.lookup(model))
    calls = math.ceil(samples * pilot.calls_per_row)
    per_call = pilot.input_tokens_per_call
    chars = chars if per_call is None else per_call * CHARS_PER_TOKEN
    label = f"task {model.label} ({pilot.note()})"
    return _row(label, calls, chars, max_out, prices.lookup(model))


def _row(label: str, calls: int, chars: float, max_out: int, price: object) -> CallEstimate:
    from assay.records import Price

    assert price is None or isinstance(price, Price)
    tokens_in = int(calls * chars / CHARS_PER_TOKEN)
    return CallEstimate(label, calls, cost_usd(price, tokens_in, calls * max_out))
