"""The budget ledger's reservations sum exactly, in whatever order calls start and settle.

Summed as floats, reserving and giving back the same estimates left a residue of either sign,
so a call priced to the budget's last cent started or not depending on the order in which
the calls before it settled (the stop point of a budgeted run moved with timing).
"""

from __future__ import annotations

import asyncio
import itertools

import pytest

from assay.engine.engine import Budget, Engine, EngineConfig
from assay.errors import BudgetExceeded

ESTIMATES = [0.000562, 0.000431, 0.000517, 0.000609, 0.000488]


async def settle_in(order: tuple[int, ...]) -> Engine:
    engine = Engine(EngineConfig(budget=Budget(max_cost_usd=0.01)))
    for estimate in ESTIMATES:
        await engine.reserve(estimate)
    for i in order:
        engine.settle(ESTIMATES[i], 0.0001)
    return engine


@pytest.mark.parametrize("order", list(itertools.permutations(range(len(ESTIMATES))))[::7])
def test_reservations_given_back_in_any_order_leave_nothing_reserved(
    order: tuple[int, ...],
) -> None:
    engine = asyncio.run(settle_in(order))
    assert engine.ledger.reserved_usd == 0.0 and engine.ledger.in_flight == 0
    spent = engine.ledger.snapshot().cost_usd
    left = 0.01 - spent
    engine.ledger.reserve(left)  # the budget's last cent fits, in every order
    with pytest.raises(BudgetExceeded):
        engine.ledger.reserve(1e-9)
