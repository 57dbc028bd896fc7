"""One run reads and parses its data file once.

The validation pass keeps the parsed rows (``datasets.KeepRows``), and every later pass of the
run (metrics, stored samples, pre-flight, judge estimate, shard count, calls, report) uses them.
Each test counts the opens of the data file through the real CLI in this process; a file too
large to keep is streamed instead (re-read per pass), as tests/test_dataset_stream.py checks.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import IO

import pytest

import assay.data.datasets as datasets
from assay.data import demo_path
from assay.files import open_regular
from assay.testing import Action, ChatRequest, ScriptedServer, reply
from tests.optimize_helpers import OptimizeZoo, optimize_args, proposal, small_dataset
from tests.run_helpers import LabelZoo, assay, write_prices

PROMPTS = [str(demo_path("sentiment_prompt.md")), str(demo_path("sentiment_prompt_terse.md"))]


@pytest.fixture
def opens(monkeypatch: pytest.MonkeyPatch) -> Counter[str]:
    """How many times each file was opened by the dataset reader (the one way it reads; the
    scripted models open the demo data too)."""
    counted: Counter[str] = Counter()

    def counting(path: Path) -> IO[bytes]:
        counted[str(path)] += 1
        return open_regular(path)

    monkeypatch.setattr(datasets, "open_regular", counting)
    return counted


def rows_file(path: Path, n: int) -> Path:
    rows = ({"input": f"Review {i}: a warm film.", "output": "positive"} for i in range(n))
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


class JudgedZoo(LabelZoo):
    """LabelZoo for the task models; a judge that gives every answer 4."""

    def __call__(self, request: ChatRequest) -> Action:
        if request.model == "judge":
            return reply("Fine.\nVERDICT: 4", input_tokens=60, output_tokens=5)
        return super().__call__(request)


def test_a_run_with_a_judge_and_a_report_reads_its_data_once(
    tmp_path: Path, opens: Counter[str]
) -> None:
    data = rows_file(tmp_path / "d.jsonl", 30)
    rubric = tmp_path / "rubric.md"
    rubric.write_text("Score 5 when the label is right.\n")
    with ScriptedServer(JudgedZoo()) as srv:
        proc = assay(
            "run", str(data), *PROMPTS, "-m", "compat/acc90", "--base-url", srv.base_url,
            "--metric", "label", "--judge", "compat/judge", "--judge-base-url", srv.base_url,
            "--judge-criteria", str(rubric), "-o", str(tmp_path / "report.html"),
        )  # fmt: skip
        served = srv.count
    assert proc.returncode == 0, proc.stderr
    assert served > 30 * 2  # the two variants' calls, and the judge's
    assert (tmp_path / "report.html").exists()
    assert opens[str(data)] == 1


def test_a_shard_of_a_limited_run_and_its_resume_each_read_the_data_once(
    tmp_path: Path, opens: Counter[str]
) -> None:
    """A shard counts its rows before its calls; --limit keeps the first rows only; the
    resume of a run stopped by its budget validates the file again (it may have changed)."""
    data = rows_file(tmp_path / "d.jsonl", 200)
    prices = write_prices(tmp_path / "prices.json", {"acc90": (2.0, 8.0)})
    with ScriptedServer(LabelZoo()) as srv:
        args = ["run", str(data), PROMPTS[0], "-m", "compat/acc90", "--base-url", srv.base_url]
        args += ["--metric", "label", "--prices", str(prices), "--json", "--limit", "120"]
        first = assay(*args, "--shard", "1/2", "--max-cost", "0.002")
        assert opens[str(data)] == 1, first.stderr
        stopped = json.loads(first.stdout)
        resumed = assay("run", "--resume", stopped["run_id"], "--max-cost", "1", "--json")
    assert first.returncode == 0 and resumed.returncode == 0, resumed.stderr
    assert stopped["status"] == "stopped"
    assert json.loads(resumed.stdout)["status"] == "complete"
    assert opens[str(data)] == 2  # one for the run, one for its resume


def test_an_optimize_run_reads_its_data_once(tmp_path: Path, opens: Counter[str]) -> None:
    data = small_dataset(tmp_path / "d.jsonl", 40)
    with ScriptedServer(OptimizeZoo([proposal("Classify the review.")])) as srv:
        proc = assay(*optimize_args(srv, data, "--max-iterations", "1"))
    assert proc.returncode == 0, proc.stderr
    assert opens[str(data)] == 1
