"""Batch mode against live calls: the same scores, at the batch price.

    python -m perf.batch_cost [--samples 200] [--markdown]

Two models (``compat/acc90``, ``compat/acc60``: LabelZoo, right on about 90% and 60% of the
demo reviews) on the first ``--samples`` demo rows, priced $0.15 in / $0.60 out per million
tokens with a batch discount of 0.5, through the benchmark job (``assay.api.run``) against
the scripted server's chat and batch endpoints: live, in batch mode, and in batch mode with
batches that expire after three quarters of their requests (the rest are called live). The
baseline is the live run.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from assay import api
from assay.analysis.results import RunReport
from assay.benchmark.config import RunConfig
from assay.data import demo_path, load_dataset
from assay.engine.batch import BatchSettings
from assay.evaluation.config import ScoringConfig
from assay.providers.specs import resolve_model
from assay.records import GenerationParams
from assay.testing import Action, BatchScript, ChatRequest, ScriptedServer, reply
from perf.common import machine_line, print_table

PRICE = {"input_per_mtok": 0.15, "output_per_mtok": 0.6, "batch_discount": 0.5}
MODELS = ("acc90", "acc60")


class Labeller:
    """Model ``accNN`` gives the right label on about NN% of the rows (a hash of model and
    text decides, so every mode gets the same answers), with 40 input and 2 output tokens."""

    def __init__(self) -> None:
        samples = load_dataset(demo_path("sentiment.jsonl")).samples
        self.truth = {s.input_text(): s.reference or "positive" for s in samples}

    def __call__(self, request: ChatRequest) -> Action:
        text = request.last_user_text
        digest = hashlib.sha256(f"{request.model}|{text}".encode()).digest()
        right = digest[0] % 100 < int(request.model.removeprefix("acc") or 50)
        truth = self.truth.get(text, "positive")
        flipped = "negative" if truth == "positive" else "positive"
        return reply(truth if right else flipped, input_tokens=40, output_tokens=2)


@dataclass(frozen=True)
class Mode:
    name: str
    batch: bool
    expire_after: int | None = None


@dataclass(frozen=True)
class Measured:
    mode: str
    report: RunReport
    live_requests: int
    batch_requests: int
    jobs: int
    wall_s: float


def measure(mode: Mode, data: Path, root: Path) -> Measured:
    script = BatchScript(expire_after=mode.expire_after)
    with ScriptedServer(Labeller(), batch=script) as srv:
        config = RunConfig(
            data=str(data),
            prompts=[str(demo_path("sentiment_prompt.md"))],
            models=[
                resolve_model(f"compat/{m}", base_url=srv.base_url, batch=mode.batch)
                for m in MODELS
            ],
            scoring=ScoringConfig(metrics=["label"]),
            params=GenerationParams(max_tokens=4),
            batch=BatchSettings(poll_s=0.05),
        )
        started = time.perf_counter()
        report = api.run(config, store=root / "store", prices=root / "prices.json")
        wall = time.perf_counter() - started
        requests = srv.requests
    in_batch = sum(1 for r in requests if r.batch_id)
    jobs = len(srv.batches.created)
    return Measured(mode.name, report, len(requests) - in_batch, in_batch, jobs, wall)


def rows(results: Sequence[Measured]) -> list[list[str]]:
    out = []
    base = results[0].report.spent_usd or 0.0
    for m in results:
        scores = " / ".join(f"{v.score.mean:.3f}" if v.score else "–" for v in m.report.variants)
        per_1k = " / ".join(f"${v.cost_per_1k_usd or 0:.4f}" for v in m.report.variants)
        spent = m.report.spent_usd or 0.0
        out.append(
            [
                m.mode,
                scores,
                per_1k,
                f"${spent:.5f}",
                f"{spent / base:.2f}x" if base else "–",
                str(m.live_requests),
                str(m.batch_requests),
                str(m.jobs),
                f"{m.wall_s:.1f}",
            ]
        )
    return out


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--samples", type=int, default=200)
    parser.add_argument("--markdown", action="store_true")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args(argv)
    modes = [
        Mode("live (baseline)", batch=False),
        Mode("batch", batch=True),
        Mode("batch, expires at 3/4", batch=True, expire_after=args.samples * 3 // 4),
    ]
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        data = _dataset(root / "data.jsonl", args.samples)
        prices = {f"compat/{m}": PRICE for m in MODELS}
        (root / "prices.json").write_text(json.dumps({"prices": prices}))
        results = [measure(mode, data, root) for mode in modes]
    columns = ["mode", "scores", "$ per 1k", "spent", "vs live", "live req", "batch req"]
    print(machine_line())
    print_table(
        "Batch mode vs live", [*columns, "jobs", "wall s"], rows(results), markdown=args.markdown
    )
    if args.json:
        figures = [json.loads(r.report.to_json()) | _counts(r) for r in results]
        args.json.write_text(json.dumps(figures))
    return 0


def _counts(m: Measured) -> dict[str, int]:
    return {"live_requests": m.live_requests, "batch_requests": m.batch_requests, "jobs": m.jobs}


def _dataset(path: Path, n: int) -> Path:
    lines = demo_path("sentiment.jsonl").read_text(encoding="utf-8").splitlines()
    path.write_text("".join(line + "\n" for line in lines[:n]), encoding="utf-8")
    return path


if __name__ == "__main__":
    raise SystemExit(main())
