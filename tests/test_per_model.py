"""``assay optimize -m A -m B --per-model``: one run per model, one shared budget, one table."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import ClassVar

from assay.data import demo_path
from assay.data.prompts import load_prompt
from assay.engine.engine import Budget
from assay.optimizer.per_model import output_path, split_budget
from assay.store.runstore import RunStore
from assay.testing import Action, ChatRequest, ScriptedServer, reply
from tests.optimize_helpers import FLIP, MAGIC, OptimizeZoo, proposal, small_dataset
from tests.run_helpers import assay

PROMPT = str(demo_path("sentiment_prompt.md"))
GOOD = f"Classify the sentiment of the movie review. {MAGIC}: positive or negative."


class TwoModels(OptimizeZoo):
    """Task models ``strong`` (right ~75% of the time) and ``weak`` (~35%); MAGIC in the system
    prompt makes either right ~95% of the time. The reasoner proposes from the plan."""

    BASE: ClassVar[dict[str, int]] = {"strong": 75, "weak": 35}

    def __call__(self, request: ChatRequest) -> Action:
        if request.model not in self.BASE:
            return super().__call__(request)
        system = next((m["content"] for m in request.messages if m["role"] == "system"), "")
        text = request.last_user_text
        with self._lock:
            self.log.append((request.model, system, text))
        accuracy = 95 if MAGIC.lower() in system.lower() else self.BASE[request.model]
        digest = hashlib.sha256(f"{request.model}|{system}|{text}".encode()).digest()
        truth = self.truth.get(text, "positive")
        return reply(truth if digest[0] % 100 < accuracy else FLIP[truth])


def per_model_args(srv: ScriptedServer, data: Path, *extra: str) -> list[str]:
    return [
        "optimize", str(data), PROMPT, "-m", "compat/strong", "-m", "compat/weak",
        "--base-url", srv.base_url, "--reasoning-model", "compat/reasoner",
        "--reasoning-base-url", srv.base_url, "--metric", "label", "--batch-size", "8",
        "--strategy", "iterative", "--json", *extra,
    ]  # fmt: skip


def test_budget_and_outputs_are_split_per_model(tmp_path: Path) -> None:
    assert split_budget(Budget(max_calls=301, max_cost_usd=3.0), 3) == Budget(
        max_calls=100, max_cost_usd=1.0
    )
    assert split_budget(Budget(), 2) == Budget()
    assert output_path(tmp_path / "best.md", "openrouter/qwen/qwen3-8b") == (
        tmp_path / "best.openrouter_qwen_qwen3-8b.md"
    )
    assert output_path(None, "x") is None


def test_two_models_without_per_model_are_refused_before_any_call(tmp_path: Path) -> None:
    data = small_dataset(tmp_path / "d.jsonl", 30)
    with ScriptedServer(TwoModels(["x"])) as srv:
        args = [a for a in per_model_args(srv, data) if a != "--per-model"]
        proc = assay(*args)
        assert proc.returncode != 0 and "--per-model" in proc.stderr
        assert srv.count == 0


def test_per_model_optimizes_each_model_and_compares_them_on_test(tmp_path: Path) -> None:
    data = small_dataset(tmp_path / "d.jsonl", 80)
    out = tmp_path / "best.md"
    zoo = TwoModels([proposal(GOOD)])
    with ScriptedServer(zoo) as srv:
        args = per_model_args(srv, data, "--per-model", "--max-iterations", "2")
        proc = assay(*args, "--max-calls", "400", "-o", str(out))
        served = srv.count
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    assert report["schema"] == "assay.per_model/v1"
    assert [m["label"] for m in report["models"]] == ["compat/strong", "compat/weak"]
    assert report["budget_per_model"]["max_calls"] == 200 and served <= 400
    store = RunStore.open(os.environ["ASSAY_STORE"])
    runs = {m["label"]: store.get_run(m["run_id"]) for m in report["models"]}
    assert len({r.id for r in runs.values()}) == 2 and all(
        r.kind == "optimize" for r in runs.values()
    )
    test_ids = [r.config.split_ids("test") for r in runs.values()]
    assert test_ids[0] == test_ids[1]  # the same rows: the comparison is paired
    for model, variant in zip(report["models"], report["variants"], strict=True):
        assert model["spend"]["calls"] <= 200
        assert variant["variant"] == model["label"]
        assert variant["score"]["mean"] == model["final_test"]["mean"]
        assert variant["score"]["n_scored"] == len(test_ids[0])
        saved = load_prompt(Path(model["output"]))
        assert saved.hash == model["best_prompt_hash"] and saved.text == model["best_prompt"]
        assert model["final_test"]["mean"] >= model["baseline_test"]["mean"]
    weak = report["models"][1]
    assert weak["best_prompt"] == GOOD  # the weak model's own loop found the better prompt
    assert weak["final_test"]["mean"] > weak["baseline_test"]["mean"]
    (pair,) = report["comparisons"]
    assert (pair["a"], pair["b"]) == ("compat/strong", "compat/weak")
    assert pair["comparison"]["n"] == len(test_ids[0])
    assert report["recommendation"].startswith("Recommended: ")
    assert "Best score:" in report["recommendation"]


def test_per_model_prints_the_run_style_table(tmp_path: Path) -> None:
    data = small_dataset(tmp_path / "d.jsonl", 60)
    with ScriptedServer(TwoModels(["no prompt"])) as srv:
        args = [a for a in per_model_args(srv, data) if a != "--json"]
        proc = assay(*args, "--per-model", "--max-iterations", "1")
    assert proc.returncode == 0, proc.stderr
    assert "Results (score = label" in proc.stdout and "Paired comparisons" in proc.stdout
    assert "compat/strong: test" in proc.stdout and "compat/weak: test" in proc.stdout
    assert "Recommendation:" in proc.stdout
