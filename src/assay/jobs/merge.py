"""``assay merge``: join the shard runs of one run (``--shard i/n``) into one run.

The shards are checked first (one config, every shard exactly once, each complete), then
their samples, results and scores are copied as stored into a new run of the target store
in one transaction, and the new run is analysed like any run: it reports what one unsharded
run with the same results reports.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, closing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from assay.analysis.results import RunReport
from assay.analysis.run_analysis import analyse, stored_endpoint_use
from assay.benchmark.config import RunConfig
from assay.errors import UserInputError
from assay.records import EndpointUse, ModelConfig, Spent, merge_endpoint_use
from assay.store.run_record import StoredRun, StoredShard
from assay.store.runstore import RunRecord, RunRows, RunStore, RunTable, store_dir

# Where and how a shard ran, not what it measured: these may differ between machines.
_LOCAL_FIELDS = {"data", "prompts", "engine", "batch", "pipeline", "shard"}
_HINT_SAME_RUN = "merge only shards of one run: same data, prompts, models, metrics, seed and n"
# A shard's own rows, copied in this order: a score needs its result first.
_TABLES: tuple[RunTable, ...] = ("samples", "results", "scores")


@dataclass(frozen=True)
class ShardRun:
    """A shard's run, its shard, and the store it was found in (opened read-only)."""

    store: RunStore
    run: RunRecord
    shard: StoredShard

    def name(self) -> str:
        return f"run {self.run.id} (shard {self.shard})"


def merge_shards(
    target: str | Path | None, runs: Sequence[str], sources: Sequence[str | Path] = ()
) -> RunReport:
    """Merge the shard runs ``runs`` (ids or unique prefixes, found in the target store or
    in ``sources``) into one new run in ``target``; returns its report."""
    if not runs:
        raise UserInputError("No run to merge", "pass the run id of every shard")
    with ExitStack() as stack:
        readers = [stack.enter_context(closing(s)) for s in _readers(target, sources)]
        shards = check_shards([find_run(ref, readers) for ref in runs])
        store = stack.enter_context(closing(RunStore.open(target)))
        return _merge(store, shards)


def _readers(target: str | Path | None, sources: Sequence[str | Path]) -> Iterator[RunStore]:
    """The stores to find runs in, read-only: the target (when it exists), then each source."""
    wheres = [*([target] if RunStore.exists(target) else []), *sources]
    seen: set[Path] = set()
    for where in wheres:
        path = store_dir(where).resolve()
        if path not in seen:
            seen.add(path)
            yield RunStore.open(where, create=False)


def find_run(ref: str, readers: Sequence[RunStore]) -> tuple[RunStore, RunRecord]:
    """The run ``ref`` names, in exactly one of the stores."""
    found = [(s, run) for s in readers if (run := _get(s, ref)) is not None]
    if not found:
        where = ", ".join(str(s.path.parent) for s in readers) or "no store"
        raise UserInputError(f"No run {ref!r} in {where}", "add its store with --from DIR")
    if len(found) > 1:
        stores = " and ".join(str(s.path.parent) for s, _ in found)
        raise UserInputError(f"Run {ref!r} is in {stores}", "pass only one of them with --from")
    return found[0]


def _get(store: RunStore, ref: str) -> RunRecord | None:
    try:
        return store.get_run(ref)
    except UserInputError as exc:
        if "ambiguous" in str(exc):  # a prefix of several runs: the user must say which
            raise
        return None


def check_shards(found: list[tuple[RunStore, RunRecord]]) -> list[ShardRun]:
    """Shards of one config, each complete, covering 1..n exactly once; in shard order."""
    shards = [_shard_run(store, run) for store, run in found]
    first = shards[0]
    reference = comparable(first.run.config)
    for other in shards[1:]:
        differs = [k for k, v in comparable(other.run.config).items() if reference.get(k) != v]
        if differs:
            raise UserInputError(
                f"{other.name()} and {first.name()} are not shards of one run: they differ in "
                + ", ".join(differs),
                _HINT_SAME_RUN,
            )
    _check_cover(shards)
    return sorted(shards, key=lambda s: s.shard.index)


def _shard_run(store: RunStore, run: RunRecord) -> ShardRun:
    if run.kind != "run":
        raise UserInputError(f"Run {run.id} is an {run.kind} run", "only assay run shards merge")
    if run.config.shard is None:
        raise UserInputError(
            f"Run {run.id} is not a shard (it ran without --shard)", "merge runs made with --shard"
        )
    shard = ShardRun(store, run, run.config.shard)
    if run.status != "complete":
        raise UserInputError(
            f"{shard.name()} is {run.status}, not complete",
            f"finish it first where it ran: assay run --resume {run.id}",
        )
    return shard


def _check_cover(shards: list[ShardRun]) -> None:
    count = shards[0].shard.count
    given = Counter(s.shard.index for s in shards)
    missing = [f"{i}/{count}" for i in range(1, count + 1) if i not in given]
    twice = [
        f"{i}/{count} (runs {', '.join(s.run.id for s in shards if s.shard.index == i)})"
        for i, n in sorted(given.items())
        if n > 1
    ]
    problems = [f"missing {', '.join(missing)}"] if missing else []
    problems += [f"given more than once: {'; '.join(twice)}"] if twice else []
    if problems:
        raise UserInputError(
            f"The shards do not cover the run once: {'; '.join(problems)}",
            "run each missing shard with --shard i/n, and pass every shard's run once",
        )


def comparable(stored: StoredRun) -> dict[str, Any]:
    """What must be equal in every shard of one run: all that decides its results (data,
    prompts, models and prices, scoring, generation, seed, repeats, decisions, shard count),
    not where or how it ran (paths, endpoints, key variables, concurrency, budget)."""
    config = RunConfig.model_validate(stored.job)
    scoring = config.scoring
    if scoring.judge is not None:
        judge = scoring.judge.model_copy(
            update={"models": _results_only(scoring.judge.models), "rubric_path": None}
        )
        scoring = scoring.model_copy(update={"judge": judge})
    update = {"models": _results_only(config.models), "scoring": scoring}
    fields = config.model_copy(update=update).model_dump(mode="json", exclude=_LOCAL_FIELDS)
    shard = stored.shard
    return {
        **fields,
        "data (sha256)": stored.dataset_sha256,
        "variants (prompts by sha256)": [v.model_dump(mode="json") for v in stored.variants],
        "shard count": shard.count if shard else None,
        "rows": shard.rows_all_shards if shard else stored.n_samples,
        "local parallel slots": stored.local_parallel if stored.gpu_cost_per_hour else None,
    }


def _results_only(models: list[ModelConfig]) -> list[ModelConfig]:
    return [m.model_copy(update={"base_url": None, "api_key_env": None}) for m in models]


def _merge(store: RunStore, shards: list[ShardRun]) -> RunReport:
    record = merged_record(shards)
    _copy_prompt_texts(store, shards, record)
    run_id = store.insert_run(record, _rows(shards), _spent(shards), _summary(shards))
    report = analyse(store, run_id, "complete")
    store.set_status(run_id, "complete", report.model_dump(mode="json", by_alias=True))
    return report


def merged_record(shards: list[ShardRun]) -> StoredRun:
    """The first shard's record, as the whole run: every row, no shard, its shards named."""
    first = shards[0].run.config
    rows = sum(s.run.config.n_samples or 0 for s in shards)
    if rows != shards[0].shard.rows_all_shards:
        raise UserInputError(
            f"The shards hold {rows} rows together; the run has {shards[0].shard.rows_all_shards}",
            "run every shard again with this Assay version",
        )
    update = {
        "n_samples": rows,
        "shard": None,
        "merged_from": [s.run.id for s in shards],
        "job": {**first.job, "shard": None},
    }
    return first.model_copy(update=update)


def _copy_prompt_texts(store: RunStore, shards: list[ShardRun], record: StoredRun) -> None:
    """The prompts' texts, which reports of the merged run show."""
    for digest in {v.prompt_hash for v in record.variants if v.prompt_hash}:
        texts = (s.store.get_text(digest) for s in shards)
        text = next((t for t in texts if t is not None), None)
        if text is not None:
            store.save_text("prompt", text, digest)


def _rows(shards: list[ShardRun]) -> Iterator[RunRows]:
    for s in shards:
        for table in _TABLES:
            yield table, s.store.run_rows(table, s.run.id)


def _spent(shards: list[ShardRun]) -> Spent:
    spent = [s.store.spent(s.run.id) for s in shards]
    return Spent(calls=sum(x.calls for x in spent), cost_usd=sum(x.cost_usd for x in spent))


def _summary(shards: list[ShardRun]) -> dict[str, Any]:
    """The shards' per-endpoint counts added up, as a run's sessions add theirs."""
    endpoints: list[EndpointUse] = []
    for s in shards:
        endpoints = merge_endpoint_use(endpoints, stored_endpoint_use(s.run.summary))
    return {"endpoints": [use.model_dump(mode="json") for use in endpoints]}
