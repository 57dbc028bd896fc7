"""A cost budget needs a price for every model it pays for.

``--max-cost`` (any value, 0 included) is refused before the run starts when a model it would
call (task, judge, or the optimizer's reasoner) has no known price: no reservation could cover
its calls. Local models have a known $0 price; a call budget (``--max-calls``) needs no price.
"""

from __future__ import annotations

from collections.abc import Iterable

from assay.benchmark.config import RunConfig
from assay.engine.engine import Budget
from assay.errors import UserInputError
from assay.evaluation.config import ScoringConfig
from assay.optimizer.config import OptimizeConfig
from assay.pricing import PriceTable
from assay.records import ModelConfig


def check_run_budget(config: RunConfig, prices: PriceTable) -> None:
    models = [*config.models, *_judges(config.scoring)]
    check_budget_prices(config.engine.budget, models, prices)


def check_optimize_budget(config: OptimizeConfig, prices: PriceTable) -> None:
    models = [config.model, config.reasoner, *_judges(config.scoring)]
    check_budget_prices(config.engine.budget, models, prices)


def check_budget_prices(budget: Budget, models: Iterable[ModelConfig], prices: PriceTable) -> None:
    """Raise a one-line UserInputError naming the first unpriced model under a cost budget."""
    if budget.max_cost_usd is None:
        return
    for model in models:
        if prices.lookup(model) is None:
            raise UserInputError(
                f"--max-cost needs a price for {model.spec}, and it has none",
                f"pass --prices FILE with an entry for {model.spec}, "
                "or give the model a price in the models config",
            )


def _judges(scoring: ScoringConfig) -> list[ModelConfig]:
    return scoring.judge.models if scoring.judge else []
