"""The judge-check job (``assay judge check``): a judge measured against human labels.

It records no run; its calls go through the engine and the cache like any job's.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from pathlib import Path

from assay.engine.engine import Engine, EngineConfig
from assay.evaluation.session import open_cache
from assay.pricing import load_price_table
from assay.providers.specs import check_keys
from assay.scoring.judge import JudgeConfig, build_judge
from assay.scoring.judge_check import (
    CheckRows,
    JudgeCheckReport,
    check_judge,
    check_pairwise,
    load_check_rows,
)
from assay.scoring.pairwise import PairwiseJudge


@dataclass(frozen=True)
class JudgeCheckJob:
    config: JudgeConfig
    data: Path
    labels: Path | None
    store: Path | None  # the store folder, for its response cache

    @classmethod
    def prepare(
        cls, config: JudgeConfig, data: Path, labels: Path | None = None, store: Path | None = None
    ) -> JudgeCheckJob:
        check_keys(config.models)
        return cls(config, data, labels, store)

    def execute(self) -> JudgeCheckReport:
        return asyncio.run(self._check())

    async def _check(self) -> JudgeCheckReport:
        engine = Engine(EngineConfig(), prices=load_price_table(None), cache=open_cache(self.store))
        async with engine:
            judge = build_judge(self.config, engine)  # validates the rubric's scale first
            rows: CheckRows = load_check_rows(self.data, judge.scale, self.labels)
            if rows.pairs:
                pairwise = PairwiseJudge(self.config, engine)
                return await check_pairwise(rows.pairs, pairwise, n_unlabelled=rows.n_unlabelled)
            return await check_judge(rows.rows, judge, n_unlabelled=rows.n_unlabelled)
