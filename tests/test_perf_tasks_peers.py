"""``perf.optimizer_tasks``'s peer rows: gepa (from the peers venv) against a scripted model
server, its calls as the server counted them, its final prompt scored on the held-out rows
against both the task's starting prompt and the system prompt gepa was sent."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from perf import optimizer_peers, optimizer_tasks

from assay.testing import Action, ChatRequest, ScriptedServer, reply
from tests.perf_helpers import PEERS_VENV, StandInModelServer, markdown_table, peer_or_skip

RULE = "Answer with one word: yes or no."


class RuleModel:
    """Right when its system prompt holds the rule, else no label; as reasoner, proposes the
    rule in the fenced block gepa reads its new instruction from."""

    def __init__(self) -> None:
        self.models: list[str] = []

    def __call__(self, request: ChatRequest) -> Action:
        model = str(request.body.get("model"))
        self.models.append(model)
        if model == "reasoner":
            return reply(f"```\n{RULE}\n```")
        system = " ".join(str(m["content"]) for m in request.messages if m["role"] == "system")
        row = int(str(request.messages[-1]["content"]).split("Row ")[-1].split()[0])
        return reply(("yes" if row % 2 else "no") if RULE in system else "It depends.")


class StubModelServer(StandInModelServer):
    """The rule model behind ``optimizer_peers.ModelServer``'s interface."""

    model = RuleModel()

    def __init__(self, port: int, max_tokens: int, reasoning_max_tokens: int) -> None:
        super().__init__(self.model)

    def roles(self) -> list[str]:
        return self.model.models


def test_gepa_row_counts_its_calls_and_scores_its_prompt_on_held_out_rows(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    python = peer_or_skip("python", "gepa")
    if subprocess.run([str(python), "-c", "import gepa"], check=False).returncode != 0:
        pytest.skip(f"gepa is not installed in {PEERS_VENV}")
    import assay.providers.specs as specs

    tasks = tmp_path / "tasks"
    tasks.mkdir()
    rows = [{"id": f"r{i}", "input": f"Row {i} says a thing.", "ideal": "yes" if i % 2 else "no"}
            for i in range(60)]  # fmt: skip
    (tasks / "agree.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (tasks / "agree_prompt.md").write_text("Does the speaker agree?\n\n{{input}}\n")
    monkeypatch.setattr(StubModelServer, "model", RuleModel())
    monkeypatch.setattr(optimizer_peers, "ModelServer", StubModelServer)
    real_resolve = specs.resolve_model
    held_out = ScriptedServer(StubModelServer.model)  # the held-out scoring, outside the count
    with held_out:
        monkeypatch.setattr(specs, "resolve_model", lambda spec, **kw: real_resolve(
            "compat/smollm2", base_url=held_out.base_url))  # fmt: skip
        monkeypatch.setenv("OPENAI_COMPAT_API_KEY", "x")
        out = tmp_path / "rows.json"
        optimizer_tasks.main(
            ["--quick", "--tasks-dir", str(tasks), "--tasks", "agree", "--strategies", "",
             "--peers", "gepa", "--peers-venv", str(PEERS_VENV), "--markdown", "--json", str(out)]
        )  # fmt: skip
    (row,) = json.loads(out.read_text())
    assert (row["method"], row["status"]) == ("gepa", "ok"), row["extra"]
    assert 0 < row["calls"] <= row["budget"] == 120  # the --quick budget, server-counted
    assert row["reasoning_calls"] >= 1
    assert row["best_prompt"] == RULE  # gepa took the proposal; stripped as a prompt file is
    assert (row["baseline_test"], row["extra"]["sent_test"], row["final_test"]) == (0.0, 0.0, 1.0)
    assert row["gain"] == row["extra"]["gain_over_sent"] == 1.0
    assert row["accepted"] == 1 and row["val_final"] == 1.0 and row["gap"] == 0.0
    printed = capsys.readouterr().out
    (cells,) = markdown_table(printed, "Held-out test, per run")
    assert cells["accepted/iters"] == "changed"
    assert cells["calls (reasoning)"] == f"{row['calls']} ({row['reasoning_calls']})"
    (peer,) = markdown_table(printed, "Peers against the system prompt they were sent")
    assert (peer["sent prompt test"], peer["final test"]) == ("0.000", "1.000")


def test_a_run_over_its_budget_says_so() -> None:
    over = optimizer_tasks.Row("t", 0, "reflex", "ok", calls=312, reasoning_calls=4, budget=300)
    within = optimizer_tasks.Row("t", 0, "gepa", "ok", calls=298, reasoning_calls=9, budget=300)
    assert optimizer_tasks.calls_cell(over) == "312 (4), over 300"
    assert optimizer_tasks.calls_cell(within) == "298 (9)"
