"""Memory and time of ``assay export`` as the run grows (10k vs 100k result rows).

    python -m perf.export_memory [--rows 10000,100000] [--formats csv,jsonl,parquet]
                                 [--markdown] [--json PATH]

For each size a run store is built in a temporary directory by writing records directly through
``RunStore`` (two variants, half the rows each, two metrics, no model calls). Then the real
``assay export RUN --format F -o FILE`` runs as a child process for each format; its peak RSS
comes from ``wait4`` and its RSS is polled from ``/proc`` every 0.1 s. The baseline is the
smallest size, in the same run: a streamed export keeps the peak flat as rows grow (a ratio near
1.00x), while time grows with the rows. Parquet is skipped when pyarrow is not installed.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from assay.records import Completion, GenerationParams, Message, Request, Sample
from assay.scoring.score import Score
from assay.store.run_record import StoredRun, StoredVariant
from assay.store.runstore import ResultRecord, RunStore
from perf.common import machine_line, print_table
from perf.data_scale import rss_at, run_polled

VARIANTS = ("compat/big", "compat/small")
SYSTEM = "Classify the sentiment of the review. Answer with one word: positive or negative."


def samples(n: int) -> Iterator[Sample]:
    words = ("warm", "funny", "dull", "slow", "sharp", "long", "bright", "flat")
    for i in range(n):
        text = (
            f"Review {i}: a {words[i % 8]} and {words[(i * 7) % 8]} film, scene {i % 97}. "
            "The plot wanders but the acting holds it together for most of its two hours."
        )
        label = "positive" if i % 2 == 0 else "negative"
        yield Sample(id=str(i + 1), line=i + 1, messages=(Message(role="user", content=text),),
                     reference=label)  # fmt: skip


def result(run_id: str, variant: str, sample: Sample, index: int) -> ResultRecord:
    """One result; every 50th is a failed call, the rest answered and scored."""
    request = Request(
        messages=(Message(role="system", content=SYSTEM), *sample.messages),
        params=GenerationParams(max_tokens=8),
    )
    if index % 50 == 49:
        return ResultRecord(
            run_id=run_id, variant=variant, sample_id=sample.id, request=request,
            error_kind="provider_error", error="scripted failure",
            scores={"label": Score.error("request failed"), "exact": Score.error("failed")},
        )  # fmt: skip
    right = (index * 7 + len(variant)) % 10 < 8
    answer = sample.reference if right else "neutral"
    completion = Completion(
        text=str(answer), input_tokens=60, output_tokens=2, latency_s=0.05 + index % 7 / 100,
        model_served=variant, cost_usd=0.00012, cached=index % 5 == 0,
    )  # fmt: skip
    label = Score.scored(float(right), "", expected=sample.reference, predicted=answer)
    exact = Score.scored(float(right), "exact match" if right else "no exact match")
    return ResultRecord(
        run_id=run_id, variant=variant, sample_id=sample.id, request=request,
        completion=completion, scores={"label": label, "exact": exact},
    )  # fmt: skip


def build_store(directory: Path, rows: int) -> str:
    """A finished run of ``rows`` results (two variants of ``rows // 2`` samples each)."""
    store = RunStore.open(directory)
    n = rows // len(VARIANTS)
    record = StoredRun(
        kind="run", data=str(directory / "data.jsonl"), dataset_sha256="0" * 64,
        n_samples=n, primary_metric="label", models=list(VARIANTS),
        variants=[StoredVariant(key=v, model=v) for v in VARIANTS],
    )  # fmt: skip
    run_id = store.create_run(record)
    store.save_samples(run_id, samples(n))
    for index, sample in enumerate(samples(n)):
        for variant in VARIANTS:
            store.save_result(result(run_id, variant, sample, index))
    store.set_status(run_id, "complete")
    store.close()
    return run_id


def has_pyarrow() -> bool:
    try:
        import pyarrow  # noqa: F401
    except ImportError:
        return False
    return True


def export(store: Path, run_id: str, fmt: str, work: Path) -> dict[str, Any]:
    out = work / f"export-{time.monotonic_ns()}.{fmt}"
    args = ["export", run_id, "--format", fmt, "-o", str(out), "--store", str(store)]
    run = run_polled(args, cwd=work)
    size = out.stat().st_size if out.exists() else 0
    text_lines = sum(1 for _ in out.open("rb")) if out.exists() and fmt != "parquet" else None
    out.unlink(missing_ok=True)
    return {
        "format": fmt,
        "rc": run["rc"],
        "wall_s": run["wall_s"],
        "cpu_s": run["cpu_s"],
        "peak_rss_mib": run["peak_rss_mib"],
        "rss_mid_mib": rss_at(run["trace"], 0.5, run["wall_s"]),
        "file_mib": size / 2**20,
        "lines": text_lines,
        "stdout": run["stdout"][-300:],
    }


def table_rows(results: list[dict[str, Any]]) -> list[list[str]]:
    base = {r["format"]: r for r in results if r["rows"] == results[0]["rows"]}
    out = []
    for r in results:
        b = base[r["format"]]
        mid = r["rss_mid_mib"]
        out.append([
            f"{r['rows']:,}", r["format"], str(r["rc"]), f"{r['file_mib']:.1f}",
            f"{r['wall_s']:.2f}", f"{r['rows'] / r['wall_s']:,.0f}",
            f"{r['wall_s'] / b['wall_s']:.2f}x", "-" if mid is None else f"{mid:.0f}",
            f"{r['peak_rss_mib']:.0f}", f"{r['peak_rss_mib'] / b['peak_rss_mib']:.2f}x",
        ])  # fmt: skip
    return out


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m perf.export_memory")
    parser.add_argument("--rows", default="10000,100000")
    parser.add_argument("--formats", default="csv,jsonl,parquet")
    parser.add_argument("--markdown", action="store_true")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)
    sizes = [int(r) for r in args.rows.split(",")]
    formats = [f for f in args.formats.split(",") if f != "parquet" or has_pyarrow()]

    print(machine_line())
    print(f"load average before: {os.getloadavg()[0]:.2f}")
    results: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="assay-export-") as tmp:
        work = Path(tmp)
        for rows in sizes:
            store = work / f"store-{rows}"
            started = time.perf_counter()
            run_id = build_store(store, rows)
            print(f"{rows:,} rows stored in {time.perf_counter() - started:.1f} s", flush=True)
            for fmt in formats:
                results.append({"rows": rows, **export(store, run_id, fmt, work)})
    print_table(
        f"assay export (whole process, file output); ratios vs {sizes[0]:,} rows, same format",
        ["rows", "format", "exit", "file MiB", "wall s", "rows/s", "wall vs base",
         "RSS mid-export MiB", "peak RSS MiB", "peak vs base"],
        table_rows(results),
        markdown=args.markdown,
    )  # fmt: skip
    print(f"load average after: {os.getloadavg()[0]:.2f}")
    if args.json:
        args.json.write_text(json.dumps({"results": results}, indent=2))
    return 0 if all(r["rc"] == 0 for r in results) else 1


if __name__ == "__main__":
    raise SystemExit(main())
