"""What a run in batch mode must satisfy before it starts."""

from __future__ import annotations

from assay.benchmark.config import RunConfig
from assay.errors import UserInputError
from assay.providers.batch import check_batch_models


def check_batch(config: RunConfig) -> None:
    """One line, before any call: a batch model on a provider with no batch API, or batch
    mode with ``--adaptive`` (whose rounds each wait for the last)."""
    check_batch_models(config.models)
    if config.decision.adaptive and any(m.batch for m in config.models):
        raise UserInputError(
            "--adaptive and --batch do not mix: each round would wait for a batch job",
            "drop --adaptive, or --batch (and batch: true in the models config)",
        )
