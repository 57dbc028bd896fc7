"""The layering in docs/architecture.md, checked on the source: who may import whom, where the
store's layout and a job's wiring live, and how long a function may grow."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "assay"
MAX_FUNCTION_LINES = 60

# package -> packages of assay it must never import (directly or lazily, inside a function)
FORBIDDEN: dict[str, tuple[str, ...]] = {
    "store": ("engine", "providers", "evaluation", "analysis", "benchmark", "optimizer", "jobs",
              "cli", "report", "ui", "api"),
    # pricing reads the provider names (to check a price file's keys), nothing else above it
    "pricing": ("engine", "providers.kinds", "evaluation", "benchmark", "optimizer", "jobs", "cli"),
    "providers": ("engine", "evaluation", "analysis", "benchmark", "optimizer", "jobs", "cli"),
    "engine": ("evaluation", "analysis", "benchmark", "optimizer", "jobs", "cli", "report", "ui"),
    "scoring": ("evaluation", "analysis", "benchmark", "optimizer", "jobs", "cli", "report", "ui"),
    "evaluation": ("analysis", "benchmark", "optimizer", "jobs", "cli", "report", "ui", "api"),
    # pipeline mode sits at the evaluation level: the executor runs one work item
    "pipeline": ("analysis", "benchmark", "optimizer", "jobs", "cli", "report", "ui", "api"),
    "analysis": ("benchmark", "optimizer", "jobs", "cli", "report", "ui", "api", "engine"),
    "benchmark": ("optimizer", "jobs", "cli", "report", "ui", "api"),
    "optimizer": ("benchmark", "jobs", "cli", "report", "ui", "api"),
    "report": ("benchmark", "optimizer.loop", "jobs", "cli", "engine", "providers", "api"),
    "ui": ("benchmark", "optimizer.loop", "jobs", "cli", "engine", "providers", "api"),
    "jobs": ("cli", "report", "ui", "api"),
}  # fmt: skip


def modules() -> Iterator[tuple[str, Path, ast.Module]]:
    for path in sorted(SRC.rglob("*.py")):
        parts = path.relative_to(SRC).with_suffix("").parts
        yield ".".join(parts), path, ast.parse(path.read_text(encoding="utf-8"))


def imported(tree: ast.Module) -> Iterator[tuple[int, str]]:
    """Every ``assay.*`` module a file imports, at any depth (lazy imports included)."""
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            yield node.lineno, node.module
        elif isinstance(node, ast.Import):
            yield from ((node.lineno, alias.name) for alias in node.names)


def test_the_fixture_sees_every_layer() -> None:
    packages = {name.split(".")[0] for name, _, _ in modules()}
    assert set(FORBIDDEN) <= packages  # a renamed package must not silently drop its rules


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_a_layer_never_imports_a_layer_above_it(package: str) -> None:
    bad = []
    for name, path, tree in modules():
        if name.split(".")[0] != package:
            continue
        for line, target in imported(tree):
            rel = target.removeprefix("assay.")
            if target.startswith("assay.") and any(
                rel == f or rel.startswith(f + ".") for f in FORBIDDEN[package]
            ):
                bad.append(f"{path.relative_to(SRC)}:{line} imports {target}")
    assert bad == []


def test_cli_modules_hold_no_store_cache_or_event_loop_wiring() -> None:
    """The CLI parses flags, calls a job, renders: sessions, caches and loops are the jobs'."""
    bad = []
    for name, path, tree in modules():
        if not name.startswith("cli."):
            continue
        text = path.read_text(encoding="utf-8")
        for needle in (
            "asyncio.run",
            "cache.sqlite",
            "runs.sqlite",
            "ResponseCache",
            ".execute_run",
        ):
            if needle in text:
                bad.append(f"{path.relative_to(SRC)} uses {needle}")
        for line, target in imported(tree):
            if target in (
                "assay.engine.cache",
                "assay.evaluation.session",
                "assay.benchmark.runner",
            ):
                bad.append(f"{path.relative_to(SRC)}:{line} imports {target}")
    assert bad == []


def test_stored_runs_are_read_through_the_typed_record() -> None:
    bad = [
        f"{path.relative_to(SRC)}:{i}"
        for _, path, _ in modules()
        for i, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
        if 'config["' in line or "config.get(" in line
    ]
    assert bad == []


def test_no_function_is_longer_than_the_limit() -> None:
    long = []
    for _, path, tree in modules():
        for node in ast.walk(tree):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                start = min([node.lineno, *(d.lineno for d in node.decorator_list)])
                length = (node.end_lineno or node.lineno) - start + 1
                if length > MAX_FUNCTION_LINES:
                    long.append(f"{path.relative_to(SRC)}:{node.lineno} {node.name} ({length})")
    assert long == []


def test_the_public_api_is_re_exported_from_assay() -> None:
    import assay
    from assay.api import optimize, run
    from assay.benchmark.config import RunConfig
    from assay.evaluation.config import ScoringConfig
    from assay.optimizer.config import OptimizeConfig
    from assay.providers.specs import resolve_model

    exported = (assay.run, assay.optimize, assay.RunConfig, assay.OptimizeConfig)
    assert exported == (run, optimize, RunConfig, OptimizeConfig)
    assert (assay.ScoringConfig, assay.resolve_model) == (ScoringConfig, resolve_model)
    with pytest.raises(AttributeError):
        _ = assay.not_a_name
