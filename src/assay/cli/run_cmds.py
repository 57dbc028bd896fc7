"""``assay run``: benchmark models on your data."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import typer

from assay.cli import options as o

if TYPE_CHECKING:
    from assay.bench.config import RunConfig
    from assay.bench.runner import Services
    from assay.engine.engine import EngineConfig

RUN_HELP = """Benchmark models on your dataset with your prompt, and report a comparison.

Every response is scored (reference metrics and/or an LLM judge with your rubric), with
real token usage, $ per 1,000 requests, latency p50/p95, paired significance between models
and a recommendation. Everything is recorded in the run store (.assay/).

[bold]Examples[/bold]

  assay run --demo                                    # bundled data, embedded model
  assay run reviews.jsonl prompt.md -m local/smollm2 -m openai/gpt-4o-mini --metric label
  assay run qa.jsonl prompt.md --config models.yaml --judge openai/gpt-4o-mini \\
      --judge-criteria rubric.md --max-cost 2 -o results.json
  assay run --resume 20261128-101500-a1b2c3          # continue an interrupted run

Give two prompt files to compare prompts on the same models.
"""


def register(app: typer.Typer) -> None:
    app.command("run", help=RUN_HELP)(run_command)


def run_command(
    data: Path | None = typer.Argument(
        None, help="Dataset: JSONL (messages, Alpaca, ShareGPT, flat records) or CSV."
    ),
    prompts: list[Path] | None = typer.Argument(
        None, help="Prompt file(s): system prompt or a template with {{field}} slots."
    ),
    model: list[str] = o.MODEL,
    config: Path | None = o.CONFIG,
    base_url: str | None = o.BASE_URL,
    metric: list[str] = o.METRIC,
    judge: str | None = o.JUDGE,
    judge_criteria: Path | None = o.JUDGE_CRITERIA,
    judge_base_url: str | None = o.JUDGE_BASE_URL,
    judge_dimensions: str | None = o.JUDGE_DIMENSIONS,
    judge_repeats: int = o.JUDGE_REPEATS,
    input_field: str | None = o.INPUT_FIELD,
    output_field: str | None = o.OUTPUT_FIELD,
    repeats: int = typer.Option(1, "--repeats", min=1, help="Responses per sample and model."),
    limit: int | None = typer.Option(None, "--limit", min=1, help="Use the first N rows only."),
    concurrency: int = o.CONCURRENCY,
    local_parallel: int = o.LOCAL_PARALLEL,
    timeout: float = o.TIMEOUT,
    max_tokens: int = o.MAX_TOKENS,
    temperature: float = o.TEMPERATURE,
    seed: int = o.SEED,
    max_cost: float | None = o.MAX_COST,
    prices: Path | None = o.PRICES,
    no_cache: bool = o.NO_CACHE,
    store: Path | None = o.STORE,
    gpu_cost_per_hour: float | None = typer.Option(
        None, "--gpu-cost-per-hour", min=0, help="Estimate self-hosting $/1k for local models."
    ),
    output: Path | None = typer.Option(None, "-o", "--output", help="Write results JSON here."),
    json_out: bool = o.JSON_OUT,
    resume: str | None = o.RESUME,
    demo: bool = typer.Option(False, "--demo", help="Run the bundled demo (no key needed)."),
) -> None:
    from assay.bench.config import RunConfig
    from assay.data.datasets import FieldMapping

    services = _services(store, prices, no_cache)
    engine = o.engine_config(
        concurrency=concurrency,
        timeout=timeout,
        no_cache=no_cache,
        local_parallel=local_parallel,
        max_cost=max_cost,
    )
    if resume:
        cfg = _resumed(resume, services, engine)
    elif demo:
        cfg = _demo_config(engine, limit, gpu_cost_per_hour)
    else:
        data, prompt_paths = _require_inputs(data, prompts)
        cfg = RunConfig(
            data=str(data),
            prompts=[str(p) for p in prompt_paths],
            models=o.resolve_models(model, config, base_url),
            mapping=FieldMapping(input_field=input_field, output_field=output_field),
            scoring=o.scoring_config(
                metric, judge, judge_criteria, judge_base_url, judge_dimensions, judge_repeats
            ),
            params=o.generation_params(max_tokens, temperature, seed),
            repeats=repeats,
            engine=engine,
            seed=seed,
            limit=limit,
            gpu_cost_per_hour=gpu_cost_per_hour,
        )
    _check_output(output)
    _run(cfg, services, resume, output, json_out)


def _require_inputs(data: Path | None, prompts: list[Path] | None) -> tuple[Path, list[Path]]:
    from assay.errors import UserInputError

    if data is None or not prompts:
        raise UserInputError("assay run needs DATA and PROMPT", "or try: assay run --demo")
    return data, prompts


def _check_output(output: Path | None) -> None:
    """Fail before spending anything when the results file cannot be written."""
    from assay.errors import UserInputError

    if output is not None and not output.parent.exists():
        raise UserInputError(f"Cannot write {output}: folder {output.parent} does not exist")
    if output is not None and output.is_dir():
        raise UserInputError(f"Cannot write {output}: it is a directory", "give a file path")


def _services(store: Path | None, prices: Path | None, no_cache: bool) -> Services:
    from assay.bench.runner import Services
    from assay.engine.cache import ResponseCache
    from assay.engine.pricing import load_price_table
    from assay.store.runstore import RunStore, store_dir

    table = load_price_table(prices)
    cache = None if no_cache else ResponseCache(store_dir(store) / "cache.sqlite")
    return Services(store=RunStore.open(store), prices=table, cache=cache)


def _resumed(run_id: str, services: Services, engine: EngineConfig) -> RunConfig:
    from assay.bench.runner import resume_config

    cfg = resume_config(services.store, run_id)
    # A resume may raise the budget or change concurrency; nothing that changes results.
    return cfg.model_copy(update={"engine": o.resumed_engine(cfg.engine, engine)})


def _demo_config(engine: EngineConfig, limit: int | None, gpu: float | None) -> RunConfig:
    from assay.bench.config import RunConfig, ScoringConfig
    from assay.data import demo_path
    from assay.providers.specs import resolve_model
    from assay.records import GenerationParams

    return RunConfig(
        data=str(demo_path("sentiment.jsonl")),
        prompts=[
            str(demo_path("sentiment_prompt.md")),
            str(demo_path("sentiment_prompt_terse.md")),
        ],
        models=[resolve_model("local/smollm2")],
        scoring=ScoringConfig(metrics=["label"]),
        params=GenerationParams(max_tokens=12, temperature=0.0, seed=0),
        engine=engine,
        limit=limit or 60,
        gpu_cost_per_hour=gpu,
    )


def _run(
    cfg: RunConfig, services: Services, resume: str | None, output: Path | None, as_json: bool
) -> None:
    import asyncio

    from assay.bench import runner
    from assay.cli import render
    from assay.cli.progress import RunProgress

    plan = runner.prepare(cfg)
    if resume:
        runner.check_resumable(plan, services.store, resume)
    run_id = resume or runner.start_run(plan, services)
    if not as_json:
        render.preflight(plan, services.prices, run_id)
    with RunProgress(plan, services.store.completed_keys(run_id), quiet=as_json) as progress:
        try:
            report = asyncio.run(runner.execute_run(plan, services, run_id, progress))
        except KeyboardInterrupt:
            services.store.set_status(run_id, "interrupted")
            raise _interrupted(run_id) from None
    if output is not None:
        output.write_text(report.to_json() + "\n", encoding="utf-8")
    render.run_report(report, as_json=as_json)
    if report.status == "failed":  # e.g. a 401: the report is printed, then one error line
        from assay.errors import AssayError

        raise AssayError(f"Run {report.run_id} failed: {report.stopped_reason}")


def _interrupted(run_id: str) -> Exception:
    from assay.errors import AssayError

    return AssayError(
        f"Interrupted; completed work is saved in run {run_id}",
        f"continue with: assay run --resume {run_id}",
    )
