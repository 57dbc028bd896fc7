"""The Python API (``assay.api``): the same jobs as the CLI, from typed configs."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from assay import ResumeChanges, api
from assay.benchmark.config import RunConfig
from assay.data import demo_path
from assay.engine.engine import Budget, EngineConfig
from assay.errors import UserInputError
from assay.evaluation.config import ScoringConfig
from assay.optimizer.config import OptimizeConfig, StopRules
from assay.records import GenerationParams
from assay.store.runstore import RunStore
from assay.testing import ScriptedServer
from tests.conftest import compat_model
from tests.optimize_helpers import MAGIC, OptimizeZoo, proposal, small_dataset
from tests.run_helpers import LabelZoo, write_prices

PROMPT = str(demo_path("sentiment_prompt.md"))
PER_CALL = (40 * 2.0 + 2 * 8.0) / 1e6  # LabelZoo reports 40 tokens in, 2 out


def run_config(srv: ScriptedServer, data: Path, max_cost: float | None = None) -> RunConfig:
    return RunConfig(
        data=str(data),
        prompts=[PROMPT],
        models=[compat_model(srv, "acc90"), compat_model(srv, "acc60")],
        scoring=ScoringConfig(metrics=["label"]),
        params=GenerationParams(max_tokens=2),
        engine=EngineConfig(concurrency=1, budget=Budget(max_cost_usd=max_cost)),
    )


def test_run_scores_every_model_and_stores_the_run(tmp_path: Path) -> None:
    data = small_dataset(tmp_path / "d.jsonl", 20)
    with ScriptedServer(LabelZoo()) as srv:
        report = api.run(run_config(srv, data))
        served = srv.count
    assert report.status == "complete" and served == 40
    scores = {v.variant: v.score.mean for v in report.variants if v.score}
    acc90, acc60 = scores["acc90"], scores["acc60"]
    assert (
        acc90 is not None and acc60 is not None and acc90 > acc60
    )  # the scripted accuracies are 90% and 60%
    stored = RunStore.open(os.environ["ASSAY_STORE"]).get_run(report.run_id)
    assert stored.status == "complete"


def test_resume_continues_the_stored_run_at_its_stored_prices(tmp_path: Path) -> None:
    data = small_dataset(tmp_path / "d.jsonl", 20)
    prices = write_prices(tmp_path / "p.json", {"acc90": (2.0, 8.0), "acc60": (2.0, 8.0)})
    with ScriptedServer(LabelZoo()) as srv:
        first = api.run(run_config(srv, data, max_cost=10 * PER_CALL), prices=prices)
        assert first.status == "stopped" and "budget" in (first.stopped_reason or "").lower()
        # A resume keeps the stored config (models, prompts, prices); changes raise the budget.
        with pytest.raises(UserInputError, match="not both"):
            api.run(run_config(srv, data), resume=first.run_id)
        more = ResumeChanges(max_cost_usd=100 * PER_CALL)
        resumed = api.run(resume=first.run_id, changes=more)
    assert resumed.run_id == first.run_id and resumed.status == "complete"
    assert [v.variant for v in resumed.variants] == ["acc90", "acc60"]
    assert resumed.total_cost_usd == pytest.approx(40 * PER_CALL)  # no --prices on resume


def test_optimize_writes_the_prompt_it_scored(tmp_path: Path) -> None:
    data = small_dataset(tmp_path / "d.jsonl", 60)
    good = f"Classify the sentiment of the movie review. {MAGIC}: positive or negative."
    out = tmp_path / "best.md"
    with ScriptedServer(OptimizeZoo([proposal(good)])) as srv:
        config = OptimizeConfig(
            data=str(data),
            prompt=PROMPT,
            model=compat_model(srv, "task"),
            reasoning_model=compat_model(srv, "reasoner"),
            scoring=ScoringConfig(metrics=["label"]),
            strategy="iterative",
            batch_size=8,
            stop=StopRules(max_iterations=1),
        )
        result = api.optimize(config, output=out)
    assert result.best_prompt == good and result.accepted == 1
    assert out.read_text(encoding="utf-8").strip() == good
