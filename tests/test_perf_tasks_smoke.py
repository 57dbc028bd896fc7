"""``perf.optimizer_tasks --quick`` runs end to end: a scripted model stands in for the embedded
one (the real run takes the embedded model minutes per run), and every number in its table is
one the benchmark computed from what the server answered."""

from __future__ import annotations

import hashlib
import json
import random
from pathlib import Path

import pytest
from perf import optimizer_tasks

from assay.testing import Action, ChatRequest, reply
from tests.perf_helpers import embedded_model_served_by, markdown_table

PROMPT = "Does the speaker agree?\n\n{{input}}"  # the file adds a newline, as editors do


def write_task(folder: Path, name: str, rows: int = 60) -> None:
    lines = [
        {"id": f"{name}-{i}", "input": f"Row {i} of {name}: speaker {i % 7} says a thing.",
         "ideal": "yes" if i % 2 else "no"}
        for i in range(rows)
    ]  # fmt: skip
    (folder / f"{name}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in lines))
    (folder / f"{name}_prompt.md").write_text(PROMPT + "\n")


class FormatModel:
    """Names a label only when its prompt asks for one ("answer with"), then ~90% right; else
    on ~30% of its requests (by a hash of the whole text, so any change to the prompt, even a
    newline, changes which), and then rightly."""

    def __init__(self) -> None:
        self.asked: list[str] = []

    def __call__(self, request: ChatRequest) -> Action:
        text = "\n".join(str(m.get("content")) for m in request.messages)
        if "<prompt>" in text or "## Strategies" in text:  # the reasoner's instructions
            return reply("nothing to add", output_tokens=5)
        self.asked.append(text)
        truth = "yes" if int(text.split("Row ")[-1].split()[0]) % 2 else "no"
        draw = hashlib.sha256(text.encode()).digest()[0] % 100
        if "answer with" not in text.lower():
            return reply(truth if draw < 30 else "It depends on the day.")
        return reply(truth if draw < 90 else {"yes": "no", "no": "yes"}[truth])


def test_quick_grid_scores_each_method_on_the_held_out_rows(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    tasks = tmp_path / "tasks"
    tasks.mkdir()
    for name in ("agree", "other"):
        write_task(tasks, name)
    out = tmp_path / "rows.json"
    model = FormatModel()
    with embedded_model_served_by(model, monkeypatch) as srv:
        optimizer_tasks.main(
            ["--quick", "--tasks-dir", str(tasks), "--tasks", "agree,other",
             "--strategies", "default,structural", "--peers-venv", str(tmp_path / "no-venv"),
             "--markdown", "--json", str(out)]
        )  # fmt: skip
        sent = srv.count

    rows = json.loads(out.read_text())
    assert [(r["task"], r["method"]) for r in rows] == [
        (t, m) for t in ("agree", "other") for m in ("default", "structural", "reflex", "gepa")
    ]
    ran = [r for r in rows if r["status"] == "ok"]
    assert len(ran) == 4 and all(0 < r["calls"] <= 120 for r in ran)  # the --quick budget
    assert all(
        r["status"].startswith("skipped: ") for r in rows if r["method"] in ("reflex", "gepa")
    )
    for task in ("agree", "other"):
        assert len({r["baseline_test"] for r in ran if r["task"] == task}) == 1
    default, structural = ran[0], ran[1]
    assert default["baseline_test"] < 0.5  # few labels without a format
    assert default["final_test"] > 0.7 and default["p_value"] < 0.05  # the format repair
    # A layout never asks for a format, so structural keeps the starting prompt: its held-out
    # score is the baseline's own, row for row (the optimizer's text, not the file's bytes).
    assert structural["best_prompt"] == PROMPT and structural["accepted"] == 0
    assert structural["gain"] == 0.0 and structural["p_value"] == 1.0
    assert default["gap"] == pytest.approx(default["val_final"] - default["final_test"])
    # The optimizers never see a held-out row, and the starting prompt is scored on each once
    # per task, not once per method.
    for task in ("agree", "other"):
        rows_of = [json.loads(line) for line in (tasks / f"{task}.jsonl").read_text().splitlines()]
        random.Random(0).shuffle(rows_of)
        held_out = [PROMPT.replace("{{input}}", r["input"]) for r in rows_of[:20]]
        assert all(model.asked.count(text) == 1 for text in held_out)
    assert sent > sum(r["calls"] for r in ran) + 2 * 20
    printed = capsys.readouterr().out
    table = markdown_table(printed, "Held-out test, per run")
    assert [row["method"] for row in table] == [r["method"] for r in rows]
    assert "skipped: aevyra-reflex is not installed" in printed
    assert "mean gain vs reflex: not measured" in printed
