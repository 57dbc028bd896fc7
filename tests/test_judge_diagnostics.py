"""Why judgements are missing, said honestly: causes counted per run (CLI, JSON, show), hints
that name the judge's own knobs, --judge-max-tokens on run and optimize, and a pre-flight
warning when the judge's prompt cannot fit its context."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from assay.analysis.summary import unscored_cause
from assay.benchmark.config import RunConfig
from assay.optimizer.config import OptimizeConfig
from assay.providers.specs import resolve_model
from assay.records import Message, Sample
from assay.scoring.judge import JudgeConfig, build_judge
from assay.scoring.judge_fit import judge_fit_warnings, judge_fits
from assay.scoring.judge_parse import looks_like_refusal
from assay.store.runstore import RunStore
from assay.testing import Action, ChatRequest, ScriptedServer, constant, error, reply
from tests.conftest import compat_model, make_engine
from tests.run_helpers import assay, assay_process

CONTEXT_ERROR = "This model's maximum context length is 2048 tokens"
NO_VERDICT_REPLY = "The answer looks fine to me."


def row_number(request: ChatRequest) -> int:
    """Which row a request is about (retries carry the first user message along)."""
    found = re.search(r"question number (\d+)", json.dumps(request.messages))
    assert found is not None
    return int(found.group(1))


def sample(sample_id: str, text: str, reference: str | None = None) -> Sample:
    messages = (Message(role="user", content=text),)
    return Sample(id=sample_id, line=1, messages=messages, reference=reference)


def overflowing_judge(request: ChatRequest) -> Action:
    """Task: any answer. Judge: rows 1-8 overflow its context, rows 9-12 get no verdict line."""
    if request.model == "task":
        return reply("an answer")
    if row_number(request) <= 8:
        return error(400, CONTEXT_ERROR, code="context_length_exceeded")
    return reply(NO_VERDICT_REPLY)


@pytest.fixture
def files(tmp_path: Path) -> dict[str, Path]:
    data = tmp_path / "data.jsonl"
    rows = [{"id": str(n), "text": f"question number {n}", "label": "yes"} for n in range(1, 13)]
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    prompt = tmp_path / "prompt.md"
    prompt.write_text("Answer the question.")
    rubric = tmp_path / "rubric.md"
    rubric.write_text("Score the answer for correctness. Scale: 1-5.")
    return {"data": data, "prompt": prompt, "rubric": rubric, "root": tmp_path}


def run_args(files: dict[str, Path], srv: ScriptedServer, *extra: str) -> list[str]:
    return [
        "run",
        str(files["data"]),
        str(files["prompt"]),
        *["-m", "compat/task", "--base-url", srv.base_url],
        *["--judge", "compat/judge", "--judge-base-url", srv.base_url],
        *["--judge-criteria", str(files["rubric"]), *extra],
    ]


def test_unscored_judgements_are_broken_down_by_cause_in_output_json_and_show(
    files: dict[str, Path],
) -> None:
    out = files["root"] / "results.json"
    with ScriptedServer(overflowing_judge) as srv:
        proc = assay(*run_args(files, srv, "-o", str(out)))
    assert proc.returncode == 0, proc.stderr
    line = "judge: 12 unscored — 8 context overflow, 4 no verdict line"
    assert line in proc.stdout
    assert "--judge-max-tokens" in proc.stdout
    assert "lower --max-tokens" not in proc.stdout + proc.stderr
    # no context size is known for a remote judge: no pre-flight guess
    assert "context" not in proc.stderr

    written = json.loads(out.read_text())
    assert written["judge_unscored"] == {"context_overflow": 8, "no_verdict": 4}
    assert written["variants"][0]["judge_unscored"] == {"context_overflow": 8, "no_verdict": 4}
    assert written["variants"][0]["score"]["n_unscored"] == 12

    run_id = written["run_id"]
    shown = assay("show", run_id)
    assert line in shown.stdout
    assert json.loads(assay("show", run_id, "--json").stdout)["judge_unscored"] == {
        "context_overflow": 8,
        "no_verdict": 4,
    }
    samples = assay("show", run_id, "--samples", "--failures")
    assert "judge context overflow" in samples.stdout
    assert "lower --judge-max-tokens" in samples.stdout
    assert "lower --max-tokens" not in samples.stdout


def test_judge_max_tokens_reaches_every_judge_request_and_the_stored_config(
    files: dict[str, Path],
) -> None:
    def handler(request: ChatRequest) -> Action:
        return reply("an answer" if request.model == "task" else "Fine.\nVERDICT: 4")

    with ScriptedServer(handler) as srv:
        proc = assay(*run_args(files, srv, "--judge-max-tokens", "77", "--max-tokens", "40"))
        requests = srv.requests
    assert proc.returncode == 0, proc.stderr
    judge = [r.body["max_tokens"] for r in requests if r.model == "judge"]
    task = [r.body["max_tokens"] for r in requests if r.model == "task"]
    assert judge == [77] * 12 and task == [40] * 12
    run = RunStore.open(files["root"] / "store").list_runs(1)[0]
    judge_config = RunConfig.model_validate(run.config.job).scoring.judge
    assert judge_config is not None and judge_config.max_tokens == 77


def test_optimize_takes_judge_max_tokens(files: dict[str, Path]) -> None:
    def handler(request: ChatRequest) -> Action:
        return reply("an answer" if request.model == "task" else "Fine.\nVERDICT: 4")

    with ScriptedServer(handler) as srv:
        proc = assay(
            "optimize",
            str(files["data"]),
            str(files["prompt"]),
            *["-m", "compat/task", "--base-url", srv.base_url],
            *["--judge", "compat/judge", "--judge-base-url", srv.base_url],
            *["--judge-criteria", str(files["rubric"]), "--judge-max-tokens", "55"],
            *["--max-iterations", "0", "--json"],
        )
        requests = srv.requests
    assert proc.returncode == 0, proc.stderr
    judge = {r.body["max_tokens"] for r in requests if r.model == "judge"}
    assert judge == {55}
    run = RunStore.open(files["root"] / "store").list_runs(1)[0]
    scoring = OptimizeConfig.model_validate(run.config.job).scoring
    assert scoring.judge is not None and scoring.judge.max_tokens == 55


async def judge_once(action: Action) -> tuple[str, str, dict[str, Any]]:
    with ScriptedServer(constant(action)) as srv:
        config = JudgeConfig(models=[compat_model(srv, "judge")], rubric="Scale: 1-5.")
        async with make_engine() as engine:
            score = await build_judge(config, engine).score(sample("1", "2+2?"), "4")
    assert score.status == "unscored" and score.value is None
    return score.details["unscored_cause"], score.reason, score.details


OVERFLOW = error(400, CONTEXT_ERROR, code="context_length_exceeded")
CUT_OFF = reply("Let me weigh each part of", finish_reason="length")


@pytest.mark.parametrize(
    ("action", "cause", "reason_starts"),
    [
        (OVERFLOW, "context_overflow", "judge context overflow"),
        (reply(NO_VERDICT_REPLY), "no_verdict", "judge reply unparsable"),
        (reply("Fine.\nVERDICT: 9"), "bad_verdict", "judge reply unparsable"),
        (reply("I'm sorry, but I can't grade this response."), "refusal", "judge refused"),
        (CUT_OFF, "cut_off", "judge reply cut off"),
        (error(401, "invalid api key"), "error", "judge request failed"),
    ],
)
async def test_each_missing_judgement_names_its_cause(
    action: Action, cause: str, reason_starts: str
) -> None:
    found, reason, details = await judge_once(action)
    assert found == cause
    assert reason.startswith(reason_starts)
    assert details["cause"] == cause  # the judgement's own record says it too
    assert "lower --max-tokens" not in reason


async def test_a_context_overflow_hint_names_the_judges_knobs() -> None:
    _, reason, _ = await judge_once(OVERFLOW)
    assert "--judge-max-tokens" in reason and "shorten the rubric" in reason
    assert "larger context" in reason


@pytest.mark.parametrize(
    ("text", "finish_reason", "refusal"),
    [
        ("I'm sorry, but I can't help with that.", "stop", True),
        ("As an AI, I must decline.", "stop", True),
        ("<think>unsafe?</think>I cannot evaluate this response.", "stop", True),
        ("Here is my grade.", "content_filter", True),
        ("I cannot see any problem with the answer.", "stop", False),  # a rationale, no verdict
        ("The response is sorry-looking.", "stop", False),
    ],
)
def test_refusals_are_told_from_rationales(text: str, finish_reason: str, refusal: bool) -> None:
    assert looks_like_refusal(text, finish_reason) is refusal


def test_runs_recorded_before_causes_are_counted_from_their_error_kind() -> None:
    assert unscored_cause({"error_kind": "context_length"}) == "context_overflow"
    assert unscored_cause({"error_kind": "auth"}) == "error"
    assert unscored_cause({}) == "unrecorded"
    assert unscored_cause({"unscored_cause": "refusal", "error_kind": None}) == "refusal"


# --------------------------------------------------------------------------- pre-flight fit


def long_rubric(words: int) -> str:
    return "Score the answer. Scale: 1-5.\n" + "A good answer is careful and complete. " * words


def test_fit_is_estimated_from_rubric_longest_input_response_and_reply() -> None:
    judge = JudgeConfig(
        models=[resolve_model("local/smollm2")], rubric=long_rubric(10), max_tokens=100
    )
    short, long = sample("1", "hi"), sample("2", "x" * 6000, reference="y")
    (fit,) = judge_fits(judge, [short, long], response_max_tokens=300)
    assert fit.context_tokens == 2048
    assert fit.data_tokens > 1500  # the longest input decides
    assert (fit.response_tokens, fit.reply_tokens) == (300, 100)
    assert fit.needed_tokens > fit.instructions_tokens + fit.data_tokens + 400
    assert fit.fits is False
    assert judge_fit_warnings(judge, [short], response_max_tokens=300) == []


def test_no_fit_warning_for_a_judge_whose_context_is_unknown() -> None:
    judge = JudgeConfig(models=[resolve_model("openai/gpt-4o-mini")], rubric=long_rubric(5000))
    assert judge_fits(judge, [sample("1", "hi")], 256) == []


@pytest.mark.model
def test_embedded_judge_too_small_for_the_rubric_is_warned_before_any_call_and_counted(
    files: dict[str, Path],
) -> None:
    """A real embedded judge: the warning comes with the plan, and the run's breakdown
    shows the context overflows llama.cpp reported."""
    rubric = files["root"] / "long_rubric.md"
    rubric.write_text(long_rubric(300))
    with ScriptedServer(constant(reply("an answer"))) as srv:
        proc = assay_process(
            "run",
            str(files["data"]),
            str(files["prompt"]),
            *["-m", "compat/task", "--base-url", srv.base_url],
            *["--judge", "local/smollm2", "--judge-criteria", str(rubric), "--limit", "3"],
            env={"ASSAY_STORE": str(files["root"] / "store")},
        )
    assert proc.returncode == 0, proc.stderr
    warning = " ".join(proc.stderr.split())
    assert "warning: the judge local/smollm2 has a 2,048-token context" in warning
    assert "--judge-max-tokens" in warning
    # the plan (and the warning) is printed before the progress of any call
    assert proc.stderr.index("warning: the judge") < proc.stderr.index("━")
    assert "judge: 3 unscored — 3 context overflow" in proc.stdout
