"""The pre-flight estimate of an optimization: calls and an upper bound on dollars."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from assay.optimizer.strategies import STRATEGY_TYPES
from assay.pricing import PriceTable, cost_usd

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


def estimate(prepared: Prepared, prices: PriceTable) -> list[CallEstimate]:
    """Worst case: every step reaches val; judge calls ride on every task call."""
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
    rows = [
        _row(
            f"task {config.model.label}",
            task_calls,
            avg_chars,
            max_out,
            prices.lookup(config.model),
        )
    ]
    judge = config.scoring.judge
    if judge is not None:
        per_item = judge.repeats * len(judge.models)
        for model in judge.models:
            rows.append(
                _row(
                    f"judge {model.label}",
                    task_calls * per_item // len(judge.models),
                    avg_chars + len(judge.rubric) + 1500,
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


def _row(label: str, calls: int, chars: float, max_out: int, price: object) -> CallEstimate:
    from assay.records import Price

    assert price is None or isinstance(price, Price)
    tokens_in = int(calls * chars / CHARS_PER_TOKEN)
    return CallEstimate(label, calls, cost_usd(price, tokens_in, calls * max_out))
