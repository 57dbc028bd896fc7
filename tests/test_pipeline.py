"""Pipeline mode (``--pipeline FILE.py:FUNCTION``): the user's code runs each sample, and every
model call it makes goes through the run's engine (model, cache, budget, metering, resume).

Most tests drive the real CLI against a scripted OpenAI-compatible server whose replies depend
on the request; the example agent in examples/pipeline runs on the embedded model.
"""

from __future__ import annotations

import json
import os
import threading
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from assay.pipeline.executor import NO_CALL, PIPELINE_ERROR
from assay.store.runstore import ResultRecord, RunStore
from assay.testing import Action, ChatRequest, ScriptedServer, reply
from tests.optimize_helpers import proposal
from tests.run_helpers import assay, assay_process, write_prices
from tests.test_crash_resume import Killer, start_and_kill

ROWS = 8
MAGIC = "Answer with the code word only."
PRICE = (1.0, 2.0)  # $ per million input / output tokens
CALL_COST = (100 * 1.0 + 10 * 2.0) / 1e6  # every scripted task reply: 100 in, 10 out tokens
EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "pipeline"

PIPELINE = """\
import asyncio

from assay.pipeline import PipelineResult, TraceNode


def _ask(client, prompt, text, **extra):
    messages = [{"role": "system", "content": prompt}, {"role": "user", "content": text}]
    return client.chat.completions.create(
        model=client.model, messages=messages, max_tokens=8, **extra
    )


def _plan(client, text):
    messages = [{"role": "user", "content": "plan: " + text}]
    return client.chat.completions.create(model=client.model, messages=messages, max_tokens=8)


def answer(prompt, sample, client):
    planned = _plan(client, sample.input).choices[0].message.content
    found = "looked up " + sample.input
    text = _ask(client, prompt, sample.input).choices[0].message.content
    return PipelineResult(text, [
        TraceNode("plan", sample.input, planned, kind="model"),
        TraceNode("lookup", sample.input, found, kind="tool"),
        TraceNode("answer", found, text, optimized=True, kind="model"),
    ])


def answer_or_raise(prompt, sample, client):
    if sample.id in ("3", "6"):
        return lookup_for(sample.input)
    return answer(prompt, sample, client)


def lookup_for(text):
    raise ValueError("no document for " + text)


async def answer_async(prompt, sample, client):
    plan = [{"role": "user", "content": "plan: " + sample.input}]
    ask = [{"role": "system", "content": prompt}, {"role": "user", "content": sample.input}]
    planned, replied = await asyncio.gather(
        client.chat.completions.create(model=client.model, messages=plan, max_tokens=8),
        client.chat.completions.create(messages=ask),
    )
    return replied.choices[0].message.content


def only_string(prompt, sample, client):
    return _ask(client, prompt, sample.input).choices[0].message.content


def other_model(prompt, sample, client):
    messages = [{"role": "system", "content": prompt}, {"role": "user", "content": sample.input}]
    replied = client.chat.completions.create(model="gpt-4o", messages=messages)
    return replied.choices[0].message.content


def no_call(prompt, sample, client):
    return ",".join(sorted(sample.fields))  # the reference's field is not among them


def with_tools(prompt, sample, client):
    replied = _ask(client, prompt, sample.input, tools=[{"type": "function"}])
    return replied.choices[0].message.content


def one_argument(prompt):
    return prompt


NOT_A_FUNCTION = 3
"""


class CodeWords:
    """Task calls: ``plan: ...`` gets "lookup"; an answer call gets the row's code word when
    the system prompt holds MAGIC, else "not sure". ``judge`` gives a verdict, ``reasoner`` a
    rewrite holding MAGIC. Every request is logged (model, system prompt, last user text)."""

    def __init__(self) -> None:
        self.log: list[tuple[str, str, str]] = []
        self.bodies: Counter[str] = Counter()
        self.judge_prompts: list[str] = []
        self.reasoner_prompts: list[str] = []
        self._lock = threading.Lock()

    def __call__(self, request: ChatRequest) -> Action:
        system = next((m["content"] for m in request.messages if m["role"] == "system"), "")
        text = request.last_user_text
        with self._lock:
            self.log.append((request.model, system, text))
            self.bodies[request.attempt_key] += 1
            if request.model == "judge":
                self.judge_prompts.append(text)
            if request.model == "reasoner":
                self.reasoner_prompts.append(text)
        if request.model == "judge":
            return reply("Looks right.\nVERDICT: 4", input_tokens=300, output_tokens=10)
        if request.model == "reasoner":
            return reply(proposal(f"Reply briefly. {MAGIC}"), input_tokens=500, output_tokens=50)
        if text.startswith("plan: "):
            return reply("lookup", input_tokens=100, output_tokens=10)
        word = "code-" + text.removeprefix("item ") if MAGIC in system else "not sure"
        return reply(word, input_tokens=100, output_tokens=10)

    def task_calls(self) -> list[tuple[str, str, str]]:
        return [entry for entry in self.log if entry[0] not in ("judge", "reasoner")]


@pytest.fixture
def files(tmp_path: Path) -> dict[str, Path]:
    rows = [{"id": str(i), "input": f"item {i}", "ideal": f"code-{i}"} for i in range(1, ROWS + 1)]
    data = tmp_path / "rows.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    (tmp_path / "pipe.py").write_text(PIPELINE)
    (tmp_path / "prompt.md").write_text(f"Reply briefly. {MAGIC}\n")
    (tmp_path / "plain.md").write_text("Reply briefly.\n")
    (tmp_path / "rubric.md").write_text("5: the answer is the code word found by the lookup.\n")
    prices = write_prices(tmp_path / "prices.json", {"m": PRICE, "m2": PRICE})
    named = {name: tmp_path / f"{name}.md" for name in ("prompt", "plain", "rubric")}
    return {"data": data, "pipe": tmp_path / "pipe.py", "prices": prices, **named}


def run_args(files: dict[str, Path], srv: ScriptedServer, function: str, *extra: str) -> list[str]:
    return [
        "run",
        str(files["data"]),
        str(files["prompt"]),
        "-m",
        "compat/m",
        "--base-url",
        srv.base_url,
        "--metric",
        "contains",
        "--prices",
        str(files["prices"]),
        "--pipeline",
        f"{files['pipe']}:{function}",
        *extra,
    ]


def run_json(files: dict[str, Path], srv: ScriptedServer, function: str, *extra: str) -> Any:
    proc = assay(*run_args(files, srv, function, "--json", *extra))
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def trace_block(judge_prompt: str) -> str:
    """The data between the judge prompt's <trace> tags."""
    return judge_prompt.split("<trace>\n", 1)[1].split("\n</trace>", 1)[0]


def results(run_id: str) -> dict[str, ResultRecord]:
    store = RunStore.open(os.environ["ASSAY_STORE"], create=False)
    return {r.sample_id: r for r in store.results(run_id)}


# --------------------------------------------------------------------------- metering


def test_each_sample_costs_the_sum_of_its_calls_with_the_breakdown_kept(
    files: dict[str, Path],
) -> None:
    zoo = CodeWords()
    with ScriptedServer(zoo) as srv:
        report = run_json(files, srv, "answer")
    (variant,) = report["variants"]
    assert report["status"] == "complete" and variant["score"]["mean"] == 1.0
    assert variant["cost_per_1k_usd"] == pytest.approx(2 * CALL_COST * 1000)
    assert len(zoo.task_calls()) == 2 * ROWS
    for result in results(report["run_id"]).values():
        completion = result.completion
        assert completion is not None and completion.pipeline is not None
        calls = completion.pipeline.calls
        assert [c.cost_usd for c in calls] == [pytest.approx(CALL_COST)] * 2
        assert completion.cost_usd == pytest.approx(2 * CALL_COST)
        assert (completion.input_tokens, completion.output_tokens) == (200, 20)
        assert completion.latency_s == pytest.approx(sum(c.latency_s or 0 for c in calls))
        assert [n.name for n in completion.pipeline.trace] == ["plan", "lookup", "answer"]
        assert completion.pipeline.trace[2].optimized and completion.pipeline.warnings == ()


def test_a_rerun_is_served_from_the_cache(files: dict[str, Path]) -> None:
    zoo = CodeWords()
    with ScriptedServer(zoo) as srv:
        first = run_json(files, srv, "answer")
        sent = srv.count
        second = run_json(files, srv, "answer")
        assert srv.count == sent == 2 * ROWS  # the second run made no call
    assert second["variants"][0]["cached_requests"] == ROWS
    assert second["variants"][0]["score"] == first["variants"][0]["score"]
    again = results(second["run_id"])
    assert all(r.completion and r.completion.cached for r in again.values())
    assert all(c.cached for r in again.values() if r.completion and r.completion.pipeline
               for c in r.completion.pipeline.calls)  # fmt: skip


def test_the_plan_comes_from_a_pilot_whose_calls_are_not_paid_twice(
    files: dict[str, Path],
) -> None:
    zoo = CodeWords()
    with ScriptedServer(zoo) as srv:
        proc = assay(*run_args(files, srv, "answer", "--no-cache"))
        assert proc.returncode == 0, proc.stderr
        assert srv.count == 2 * ROWS  # the pilot rows' results were kept, not called again
    assert "2.0 calls a row, from a pilot on 3 rows" in " ".join(proc.stderr.split())
    assert f"{2 * ROWS}" in proc.stderr  # the plan's calls: 2 a row for every row


def test_a_budget_stops_the_run_and_a_resume_pays_no_call_twice(files: dict[str, Path]) -> None:
    zoo = CodeWords()
    with ScriptedServer(zoo) as srv:
        stopped = run_json(files, srv, "answer", "--max-cost", "0.0007", "--concurrency", "1")
        assert stopped["status"] == "stopped"
        done = results(stopped["run_id"])
        assert 0 < len(done) < ROWS
        spent = sum(r.completion.cost_usd or 0 for r in done.values() if r.completion)
        assert spent <= 0.0007
        resumed = assay("run", "--resume", stopped["run_id"], "--max-cost", "1", "--json")
        assert resumed.returncode == 0, resumed.stderr
        assert json.loads(resumed.stdout)["status"] == "complete"
        assert srv.count == 2 * ROWS  # the stopped sample's finished call came from the cache
    assert set(zoo.bodies.values()) == {1}


def test_two_models_benchmark_the_pipeline_on_each(files: dict[str, Path]) -> None:
    zoo = CodeWords()
    with ScriptedServer(zoo) as srv:
        report = run_json(files, srv, "answer", "-m", "compat/m2")
    assert [v["variant"] for v in report["variants"]] == ["compat/m", "compat/m2"]
    served = Counter(model for model, _, _ in zoo.task_calls())
    assert served == {"m": 2 * ROWS, "m2": 2 * ROWS}


def test_the_python_api_and_the_eval_file_take_a_pipeline(
    files: dict[str, Path], tmp_path: Path
) -> None:
    from assay import RunConfig, ScoringConfig, resolve_model, run

    eval_file = tmp_path / "assay.yaml"
    with ScriptedServer(CodeWords()) as srv:
        config = RunConfig(
            data=str(files["data"]),
            prompts=[str(files["prompt"])],
            models=[resolve_model("compat/m", base_url=srv.base_url)],
            scoring=ScoringConfig(metrics=["contains"]),
            pipeline=f"{files['pipe']}:only_string",
        )
        by_api = run(config)
        eval_file.write_text(
            f"data: rows.jsonl\nprompts: [prompt.md]\nmetrics: [contains]\n"
            f"models: [{{spec: compat/m, base_url: '{srv.base_url}'}}]\n"
            "pipeline: pipe.py:answer\n"  # relative to the eval file
        )
        by_file = assay("run", "--eval", str(eval_file), "--json")
    assert by_api.variants[0].score is not None and by_api.variants[0].score.mean == 1.0
    assert by_file.returncode == 0, by_file.stderr
    stored = results(json.loads(by_file.stdout)["run_id"])["1"].completion
    assert stored and stored.pipeline and len(stored.pipeline.trace) == 3


# --------------------------------------------------------------------------- what pipelines return


def test_an_async_pipeline_runs_its_calls_through_the_engine(files: dict[str, Path]) -> None:
    zoo = CodeWords()
    with ScriptedServer(zoo) as srv:
        report = run_json(files, srv, "answer_async")
    assert report["variants"][0]["score"]["mean"] == 1.0
    assert {model for model, _, _ in zoo.task_calls()} == {"m"}  # model= left out: the run's
    for result in results(report["run_id"]).values():
        assert result.completion is not None and result.completion.pipeline is not None
        assert len(result.completion.pipeline.calls) == 2
        assert result.completion.cost_usd == pytest.approx(2 * CALL_COST)


def test_a_pipeline_that_returns_a_string_shows_its_calls_to_the_judge(
    files: dict[str, Path],
) -> None:
    zoo = CodeWords()
    with ScriptedServer(zoo) as srv:
        report = run_json(
            files,
            srv,
            "only_string",
            "--judge",
            "compat/judge",
            "--judge-base-url",
            srv.base_url,
            "--judge-criteria",
            str(files["rubric"]),
        )
    assert report["variants"][0]["score"]["mean"] == pytest.approx(0.75)  # VERDICT 4 of 1-5
    first = results(report["run_id"])["1"]
    assert first.completion and first.completion.pipeline and not first.completion.pipeline.trace
    assert len(zoo.judge_prompts) == ROWS
    assert all("'system: Reply briefly." in trace_block(p) for p in zoo.judge_prompts)


def test_the_judge_sees_the_pipeline_trace(files: dict[str, Path]) -> None:
    zoo = CodeWords()
    with ScriptedServer(zoo) as srv:
        run_json(
            files,
            srv,
            "answer",
            "--judge",
            "compat/judge",
            "--judge-base-url",
            srv.base_url,
            "--judge-criteria",
            str(files["rubric"]),
        )
    trace = trace_block(zoo.judge_prompts[0])
    assert "[tool] lookup" in trace and "looked up item" in trace
    assert "(prompt under test)" in trace and "2 model call(s) made" in trace


def test_a_pipeline_that_raises_fails_only_those_samples(files: dict[str, Path]) -> None:
    zoo = CodeWords()
    with ScriptedServer(zoo) as srv:
        report = run_json(files, srv, "answer_or_raise")
    assert report["status"] == "complete" and report["variants"][0]["n_errors"] == 2
    assert report["variants"][0]["score"]["mean"] == 1.0  # the failed samples are not zeros
    stored = results(report["run_id"])
    line = PIPELINE.splitlines().index('    raise ValueError("no document for " + text)') + 1
    for sample_id in ("3", "6"):
        failed = stored[sample_id]
        assert failed.error_kind == PIPELINE_ERROR and failed.error is not None
        assert failed.error.startswith(f"ValueError: no document for item {sample_id} (at ")
        assert f"pipe.py:{line} in lookup_for" in failed.error
        assert "assay" not in failed.error.split("(at ")[1]  # only the user's frames
    assert stored["2"].error is None


def test_a_different_model_name_and_no_call_are_reported_on_the_sample(
    files: dict[str, Path],
) -> None:
    zoo = CodeWords()
    with ScriptedServer(zoo) as srv:
        other = run_json(files, srv, "other_model")
        idle = run_json(files, srv, "no_call")
    assert {model for model, _, _ in zoo.task_calls()} == {"m"}  # never gpt-4o
    record = results(other["run_id"])["1"].completion
    assert record and record.pipeline
    assert record.pipeline.warnings == (
        "the pipeline asked for model 'gpt-4o'; the run's model compat/m answered instead",
    )
    quiet = results(idle["run_id"])["1"].completion
    assert quiet and quiet.pipeline and quiet.pipeline.warnings == (NO_CALL,)
    assert quiet.text == "id,input"  # what the pipeline saw: never the reference
    assert quiet.cost_usd == 0.0 and srv.count == ROWS


def test_tools_are_refused_in_the_samples_own_error(files: dict[str, Path]) -> None:
    with ScriptedServer(CodeWords()) as srv:
        proc = assay(*run_args(files, srv, "with_tools", "--json"))
        assert srv.count == 0
    report = json.loads(proc.stdout)
    assert proc.returncode == 1 and report["status"] == "failed"  # nothing was measured
    error = results(report["run_id"])["1"].error or ""
    assert error.startswith("PipelineClientError: tools= is not passed through")


@pytest.mark.parametrize(
    ("function", "message"),
    [
        ("missing", "has no function 'missing'"),
        ("NOT_A_FUNCTION", "is not a function (a int value)"),
        ("one_argument", "cannot be called as"),
    ],
)
def test_a_bad_pipeline_is_one_error_line_before_any_call(
    files: dict[str, Path], function: str, message: str
) -> None:
    with ScriptedServer(CodeWords()) as srv:
        proc = assay(*run_args(files, srv, function))
        assert srv.count == 0
    assert proc.returncode == 2 and message in proc.stderr
    assert "Traceback" not in proc.stderr and len(proc.stderr.strip().splitlines()) == 1


def test_a_missing_file_or_a_failing_import_is_one_error_line(
    files: dict[str, Path], tmp_path: Path
) -> None:
    broken = tmp_path / "broken.py"
    broken.write_text("import json\n\nVALUE = 1 / 0\n")
    with ScriptedServer(CodeWords()) as srv:
        gone = assay(*run_args(files, srv, "answer")[:-1], f"{tmp_path / 'nope.py'}:answer")
        bad = assay(*run_args(files, srv, "answer")[:-1], f"{broken}:answer")
    assert gone.returncode == 2 and "file not found" in gone.stderr
    assert bad.returncode == 2 and "raised ZeroDivisionError" in bad.stderr
    assert "broken.py:3 in <module>" in bad.stderr and "Traceback" not in bad.stderr


def test_a_resume_refuses_a_changed_pipeline(files: dict[str, Path]) -> None:
    with ScriptedServer(CodeWords()) as srv:
        report = run_json(files, srv, "answer", "--max-cost", "0.0003", "--concurrency", "1")
    files["pipe"].write_text(PIPELINE + "\n# edited\n")
    resumed = assay("run", "--resume", report["run_id"], "--max-cost", "1")
    assert resumed.returncode == 2 and "changed since run" in resumed.stderr


# --------------------------------------------------------------------------- resume after kill -9


@pytest.mark.parametrize("at", [4, 11])
def test_a_run_killed_mid_pipeline_resumes_without_paying_a_call_twice(
    files: dict[str, Path], at: int
) -> None:
    zoo = CodeWords()
    killer = Killer(zoo)
    with ScriptedServer(killer) as srv:
        args = run_args(files, srv, "answer", "--concurrency", "2")  # with the pilot
        start_and_kill(killer, args, at)
        store = RunStore.open(os.environ["ASSAY_STORE"])
        (run,) = store.list_runs()
        saved = {r.sample_id for r in store.results(run.id)}
        resumed = assay("run", "--resume", run.id, "--json")
    assert resumed.returncode == 0, resumed.stderr
    assert json.loads(resumed.stdout)["status"] == "complete" and len(saved) < ROWS
    assert max(zoo.bodies.values()) <= 2  # only a call in flight at the kill was sent again
    assert sum(zoo.bodies.values()) <= 2 * ROWS + 2
    assert len(zoo.bodies) == 2 * ROWS
    for result in results(run.id).values():
        assert result.completion and result.completion.pipeline
        assert len(result.completion.pipeline.calls) == 2


# --------------------------------------------------------------------------- report and optimize


def test_the_report_shows_each_samples_trace(files: dict[str, Path], tmp_path: Path) -> None:
    with ScriptedServer(CodeWords()) as srv:
        report = run_json(files, srv, "answer_or_raise")
    page = tmp_path / "report.html"
    made = assay("report", report["run_id"], "-o", str(page))
    assert made.returncode == 0, made.stderr
    html = page.read_text()
    island = json.loads(
        html.split('type="application/json"')[1].split(">", 1)[1].split("</script>")[0]
    )
    cells = {row["id"]: row["cells"][0] for row in island["rows"]}
    trace = cells["1"]["trace"]
    assert [s["name"] for s in trace["steps"]] == ["plan", "lookup", "answer"]
    assert trace["steps"][2]["optimized"] and len(trace["calls"]) == 2
    assert "100 in / 10 out tokens" in trace["calls"][0]["meta"]
    assert cells["3"]["status"] == "error" and cells["3"]["text"] is None
    assert "renderTrace" in html


@pytest.mark.browser
def test_the_trace_opens_in_a_real_browser(files: dict[str, Path], tmp_path: Path) -> None:
    from tests.browser import chromium, expect, watched_page

    with ScriptedServer(CodeWords()) as srv:
        report = run_json(files, srv, "answer_or_raise")
    page_file = tmp_path / "report.html"
    assert assay("report", report["run_id"], "-o", str(page_file)).returncode == 0
    with chromium() as browser:
        w = watched_page(browser)
        w.page.goto(page_file.as_uri())
        sample = w.page.locator("article.sample[data-sample='1']")
        trace = sample.locator("details.trace")
        expect(trace.locator("summary")).to_have_text("Pipeline trace: 3 steps, 2 model calls")
        expect(trace.locator(".node-name").first).not_to_be_visible()  # collapsed at first
        trace.locator("summary").click()
        expect(trace.locator(".node.optimized .node-name")).to_have_text(
            "answer (prompt under test)"
        )
        expect(trace.locator(".trace-nodes").nth(1)).to_contain_text("100 in / 10 out tokens")
        failed = w.page.locator("article.sample[data-sample='3']")
        expect(failed.locator(".error")).to_contain_text("ValueError: no document for item 3")
        assert w.problems == []


def test_optimize_improves_the_prompt_inside_the_pipeline(
    files: dict[str, Path], tmp_path: Path
) -> None:
    rows = [{"id": str(i), "input": f"item {i}", "ideal": f"code-{i}"} for i in range(1, 31)]
    files["data"].write_text("".join(json.dumps(r) + "\n" for r in rows))
    zoo = CodeWords()
    best = tmp_path / "best.md"
    with ScriptedServer(zoo) as srv:
        proc = assay(
            "optimize", str(files["data"]), str(files["plain"]), "-m", "compat/m",
            "--base-url", srv.base_url, "--reasoning-model", "compat/reasoner",
            "--reasoning-base-url", srv.base_url, "--metric", "contains", "--strategy",
            "iterative", "--max-iterations", "1", "--batch-size", "6",
            "--pipeline", f"{files['pipe']}:answer", "-o", str(best),
            "--results-json", str(tmp_path / "r.json"),
        )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    result = json.loads((tmp_path / "r.json").read_text())
    assert MAGIC in best.read_text() and result["accepted"] == 1
    assert result["final"]["test"]["mean"] == 1.0 and result["baseline"]["test"]["mean"] == 0.0
    assert "from a pilot on 3 rows" in " ".join(proc.stderr.split())
    reasoned = zoo.reasoner_prompts[0]  # the diagnosis sees the failing samples' steps
    assert "Pipeline steps:" in reasoned and "[tool] lookup" in reasoned
    systems = {system for _, system, text in zoo.task_calls() if not text.startswith("plan: ")}
    assert systems == {"Reply briefly.", f"Reply briefly. {MAGIC}"}  # the prompts under test
    page = tmp_path / "optimize.html"
    assert assay("report", result["run_id"], "-o", str(page)).returncode == 0
    assert "Pipeline trace: 3 steps, 2 model calls" in page.read_text()  # each test disagreement


# --------------------------------------------------------------------------- the example agent


@pytest.mark.model
def test_the_example_agent_runs_on_the_embedded_model(tmp_path: Path) -> None:
    store = tmp_path / "store"
    args = [
        "run",
        str(EXAMPLE / "questions.jsonl"),
        str(EXAMPLE / "prompt.md"),
        "-m",
        "local/smollm2",
        "--metric",
        "contains",
        "--pipeline",
        f"{EXAMPLE / 'agent.py'}:answer",
        "--store",
        str(store),
    ]
    first = assay_process(*args, timeout=600)  # the embedded model: a crash must not end pytest
    assert first.returncode == 0, first.stderr
    assert "from a pilot on 3 rows" in " ".join(first.stderr.split())
    again = assay_process(*args, "--json", timeout=300)
    assert again.returncode == 0, again.stderr
    report = json.loads(again.stdout)
    assert report["variants"][0]["cached_requests"] == report["variants"][0]["n_requests"] == 8
    page = tmp_path / "report.html"
    made = assay_process("report", report["run_id"], "-o", str(page), "--store", str(store))
    assert made.returncode == 0 and '"name":"calculator"' in page.read_text().replace(" ", "")
    optimized = assay_process(
        "optimize", str(EXAMPLE / "questions.jsonl"), str(EXAMPLE / "prompt.md"),
        "-m", "local/smollm2", "--metric", "contains", "--max-iterations", "1",
        "--reasoning-max-tokens", "96", "--batch-size", "4", "--split", "0.5,0.25,0.25",
        "--pipeline", f"{EXAMPLE / 'agent.py'}:answer", "--store", str(store), "--json",
        timeout=600,
    )  # fmt: skip
    assert optimized.returncode == 0, optimized.stderr
    result = json.loads(optimized.stdout)
    assert result["trajectory"][1]["status"] in ("accepted", "rejected")
    assert result["final"]["test"]["n_scored"] == result["split"]["test"]
