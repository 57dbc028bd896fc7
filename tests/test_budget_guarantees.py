"""A hard budget is hard: ``--max-cost`` holds whatever the script of the text, whatever the
replies say (or leave out) about usage, and is refused where a price is unknown.

Every test drives the real CLI or ``assay.api`` against ``assay.testing.ScriptedServer``.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest
from openai import OpenAI

from assay import ResumeChanges, api
from assay.benchmark.config import RunConfig
from assay.data import demo_path
from assay.engine.engine import Budget, EngineConfig
from assay.errors import UserInputError
from assay.evaluation.config import ScoringConfig
from assay.jobs.budget import check_budget_prices
from assay.optimizer.config import OptimizeConfig
from assay.pricing import PriceTable
from assay.providers.specs import resolve_model
from assay.records import Completion, GenerationParams, Price
from assay.store.runstore import RunStore
from assay.testing import ChatRequest, ScriptedServer, constant, reply
from assay.testing.scripted_server import Action
from tests.conftest import compat_model
from tests.optimize_helpers import small_dataset
from tests.run_helpers import LabelZoo, assay, write_prices

PROMPT = str(demo_path("sentiment_prompt.md"))
# Chinese movie reviews: ~1 token a character or more for real tokenizers, ~3 bytes each.
CJK_REVIEWS = [
    "这部电影的剧情非常精彩，演员的表演也很出色，我从头到尾都被深深吸引住了，强烈推荐给大家。",
    "画面很美，但是故事拖沓冗长，人物动机也不清楚，看到一半我就想离开电影院了，太失望了。",
    "导演用细腻的镜头讲述了一个感人的家庭故事，配乐恰到好处，结尾让我忍不住流下了眼泪。",
    "特效粗糙，台词尴尬，情节漏洞百出，完全浪费了两个小时的时间，不建议任何人去看这部片子。",
]


def store() -> RunStore:
    return RunStore.open(os.environ["ASSAY_STORE"])


def cjk_dataset(path: Path, n: int) -> Path:
    rows = [
        {"text": CJK_REVIEWS[i % 4] * 3 + f"（第{i}条）", "label": ("positive", "negative")[i % 2]}
        for i in range(n)
    ]
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), "utf-8")
    return path


def cjk_model(request: ChatRequest) -> Action:
    """Answers right, and counts usage as a CJK tokenizer would: 1.5 tokens a character."""
    label = "negative" if any(w in request.last_user_text for w in ("失望", "浪费")) else "positive"
    return reply(label, tokens_per_char=1.5)


def run_args(data: Path, srv: ScriptedServer, model: str, *extra: str) -> list[str]:
    return [
        "run",
        str(data),
        PROMPT,
        "-m",
        f"compat/{model}",
        "--base-url",
        srv.base_url,
        "--metric",
        "label",
        "--json",
        *extra,
    ]


def paid(run_id: str) -> float:
    """What the stored completions cost: the spend the report adds up."""
    results = store().results(run_id)
    return sum(r.completion.cost_usd or 0.0 for r in results if r.completion)


# --------------------------------------------------------------------------- resume budget


def test_resume_with_a_higher_max_cost_completes_after_a_budget_stop(tmp_path: Path) -> None:
    """The hint a budget stop prints ("resume with --max-cost HIGHER") works."""
    data = small_dataset(tmp_path / "d.jsonl", 12)
    prices = write_prices(tmp_path / "p.json", {"acc90": (2.0, 8.0)})
    per_call = (40 * 2.0 + 2 * 8.0) / 1e6  # LabelZoo reports 40 tokens in, 2 out
    with ScriptedServer(LabelZoo()) as srv:
        args = run_args(data, srv, "acc90", "--max-tokens", "2", "--concurrency", "1")
        first = assay(*args, "--prices", str(prices), "--max-cost", f"{4 * per_call:.8f}")
        assert first.returncode == 0, first.stderr
        stopped = json.loads(first.stdout)
        assert stopped["status"] == "stopped" and "budget" in stopped["stopped_reason"].lower()
        again = ["--max-cost", f"{100 * per_call:.8f}", "--json"]
        resumed = assay("run", "--resume", stopped["run_id"], *again)
    assert resumed.returncode == 0, resumed.stderr
    report = json.loads(resumed.stdout)
    assert report["run_id"] == stopped["run_id"] and report["status"] == "complete"
    assert len(store().results(stopped["run_id"])) == 12


# --------------------------------------------------------------------------- CJK text


def test_max_cost_holds_on_cjk_text(tmp_path: Path) -> None:
    """Chinese rows cost ~1.5 tokens a character: the reservation must still cover each call."""
    data = cjk_dataset(tmp_path / "zh.jsonl", 40)
    prices = write_prices(tmp_path / "p.json", {"zh": (1000.0, 1000.0)})
    limit = 1.0  # about 4 calls at the true usage of these rows
    out = tmp_path / "report.json"
    with ScriptedServer(cjk_model) as srv:
        args = run_args(data, srv, "zh", "--prices", str(prices), "--max-tokens", "4")
        proc = assay(*args, "--concurrency", "4", "--max-cost", str(limit), "-o", str(out))
        served = srv.count
    assert proc.returncode == 0, proc.stderr
    report = json.loads(out.read_text())
    assert report["status"] == "stopped" and "budget" in report["stopped_reason"].lower()
    assert 0 < served < 40
    assert report["total_cost_usd"] is not None and report["total_cost_usd"] <= limit
    assert paid(report["run_id"]) <= limit
    assert store().spent(report["run_id"]).cost_usd <= limit


def test_calls_wait_for_room_rather_than_stop_a_run_that_fits(tmp_path: Path) -> None:
    """Only one worst case (~$0.0025) fits at a time, but all 12 calls ($0.0012) fit the
    budget: concurrent calls wait for the ones in flight to settle instead of stopping."""
    data = small_dataset(tmp_path / "d.jsonl", 12)
    prices = write_prices(tmp_path / "p.json", {"acc90": (2.0, 8.0)})
    limit = 0.004
    with ScriptedServer(LabelZoo(tokens=(40, 2))) as srv:
        args = run_args(data, srv, "acc90", "--prices", str(prices), "--concurrency", "4")
        proc = assay(*args, "--max-cost", str(limit))
        served = srv.count
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    assert report["status"] == "complete" and served == 12
    assert store().spent(report["run_id"]).cost_usd <= limit


def test_cjk_usage_counts_characters_not_words() -> None:
    """The scripted server's CJK repertoire: usage as a CJK tokenizer reports it."""
    with ScriptedServer(constant(reply("好的", tokens_per_char=1.5))) as srv:
        client = OpenAI(base_url=srv.base_url, api_key="x")
        got = client.chat.completions.create(
            model="m", messages=[{"role": "user", "content": "一二三 四五六"}]
        )
    assert got.usage is not None
    assert (got.usage.prompt_tokens, got.usage.completion_tokens) == (9, 3)


# --------------------------------------------------------------------------- unknown prices


def unknown_price_cases(tmp_path: Path, srv: ScriptedServer) -> dict[str, list[str]]:
    data = small_dataset(tmp_path / "d.jsonl", 30)
    prices = write_prices(tmp_path / "p.json", {"priced": (1.0, 2.0)})
    rubric = tmp_path / "rubric.md"
    rubric.write_text("Score 1 if the label is right, else 0.\n")
    opt = ["optimize", str(data), PROMPT, "-m", "compat/priced", "--base-url", srv.base_url]
    opt += ["--metric", "label", "--prices", str(prices), "--max-cost", "5"]
    return {
        "task model": run_args(data, srv, "mystery", "--max-cost", "0"),
        "judge": [
            *run_args(data, srv, "priced", "--prices", str(prices), "--max-cost", "1"),
            *["--judge", "compat/mystery", "--judge-base-url", srv.base_url],
            *["--judge-criteria", str(rubric)],
        ],
        "reasoner": [
            *opt,
            *["--reasoning-model", "compat/mystery", "--reasoning-base-url", srv.base_url],
        ],
    }


@pytest.mark.parametrize("role", ["task model", "judge", "reasoner"])
def test_max_cost_with_an_unknown_price_is_refused_before_any_call(
    tmp_path: Path, role: str
) -> None:
    with ScriptedServer(LabelZoo()) as srv:
        proc = assay(*unknown_price_cases(tmp_path, srv)[role])
        served = srv.count
    assert proc.returncode == 2, proc.stdout + proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in proc.stderr, proc.stderr
    assert "compat/mystery" in lines[0] and "--prices" in lines[0]
    assert served == 0 and store().list_runs() == []


def api_config(srv: ScriptedServer, data: Path, budget: Budget) -> RunConfig:
    return RunConfig(
        data=str(data),
        prompts=[PROMPT],
        models=[compat_model(srv, "mystery")],
        scoring=ScoringConfig(metrics=["label"]),
        params=GenerationParams(max_tokens=2),
        engine=EngineConfig(concurrency=1, budget=budget),
    )


def test_api_refuses_a_cost_budget_on_an_unknown_price(tmp_path: Path) -> None:
    data = small_dataset(tmp_path / "d.jsonl", 30)
    with ScriptedServer(LabelZoo()) as srv:
        with pytest.raises(UserInputError, match=r"compat/mystery.*--prices"):
            api.run(api_config(srv, data, Budget(max_cost_usd=0)))
        optimize = OptimizeConfig(
            data=str(data),
            prompt=PROMPT,
            model=compat_model(srv, "mystery"),
            scoring=ScoringConfig(metrics=["label"]),
            engine=EngineConfig(budget=Budget(max_cost_usd=3)),
        )
        with pytest.raises(UserInputError, match="compat/mystery"):
            api.optimize(optimize)
        assert srv.count == 0 and store().list_runs() == []


def test_a_resume_that_adds_a_cost_budget_to_an_unpriced_run_is_refused(tmp_path: Path) -> None:
    data = small_dataset(tmp_path / "d.jsonl", 6)
    with ScriptedServer(LabelZoo()) as srv:
        first = api.run(api_config(srv, data, Budget(max_calls=2)))
        assert first.status == "stopped"
        served = srv.count
        with pytest.raises(UserInputError, match="compat/mystery"):
            api.run(resume=first.run_id, changes=ResumeChanges(max_cost_usd=1))
        assert srv.count == served
        resumed = api.run(resume=first.run_id, changes=ResumeChanges(max_calls=100))
    assert resumed.status == "complete"  # no cost budget: an unknown price is fine


def test_local_models_have_a_known_zero_price() -> None:
    url = "http://127.0.0.1:9/v1"
    local = resolve_model("local/smollm2")
    check_budget_prices(Budget(max_cost_usd=0), [local], PriceTable())  # does not raise
    unpriced = resolve_model("compat/x", base_url=url)
    with pytest.raises(UserInputError, match="compat/x"):
        check_budget_prices(Budget(max_cost_usd=0), [unpriced], PriceTable())
    check_budget_prices(Budget(max_calls=3), [unpriced], PriceTable())  # no cost budget
    price = Price(input_per_mtok=1, output_per_mtok=1)
    priced = resolve_model("compat/x", base_url=url, price=price)
    check_budget_prices(Budget(max_cost_usd=0), [priced], PriceTable())


# --------------------------------------------------------------------------- missing usage


def test_replies_without_usage_are_charged_an_estimate_never_zero(tmp_path: Path) -> None:
    data = small_dataset(tmp_path / "d.jsonl", 20)
    prices = write_prices(tmp_path / "p.json", {"m": (1000.0, 1000.0)})
    limit = 1.0  # the demo prompt and a review are ~300 bytes: ~$0.3 a call, estimated
    with ScriptedServer(constant(reply("positive", usage=False))) as srv:
        args = run_args(data, srv, "m", "--prices", str(prices), "--concurrency", "2")
        proc = assay(*args, "--max-tokens", "4", "--max-cost", str(limit))
        served = srv.count
    assert proc.returncode == 0, proc.stderr
    report: dict[str, Any] = json.loads(proc.stdout)
    assert report["status"] == "stopped" and "budget" in report["stopped_reason"].lower()
    assert 0 < served < 20
    results = store().results(report["run_id"])
    completions = [r.completion for r in results if r.completion is not None]
    assert completions and all(c.usage_estimated for c in completions)
    assert all(c.cost_usd is None for c in completions)  # reported cost: unknown, never $0
    spent = store().spent(report["run_id"]).cost_usd
    assert 0 < spent <= limit  # the budget was charged the estimates


def test_usage_estimated_defaults_to_false_for_completions_stored_before_it() -> None:
    old = Completion.model_validate_json('{"text": "hi", "input_tokens": 3, "output_tokens": 1}')
    assert old.usage_estimated is False
