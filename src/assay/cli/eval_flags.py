"""The flags of ``assay run`` that override an eval file, written in the file's own keys.

Only flags typed on the command line count (a default never hides a value of the file).
Paths given by flags are made absolute here: the file's own paths are read from its folder.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

# flag (its parameter name) -> the key of the eval file it replaces
FILE_KEYS: dict[str, tuple[str, ...]] = {
    "input_field": ("data", "input_field"),
    "output_field": ("data", "output_field"),
    "metric": ("metrics",),
    "judge": ("judge", "model"),
    "judge_criteria": ("judge", "rubric"),
    "judge_base_url": ("judge", "base_url"),
    "judge_dimensions": ("judge", "dimensions"),
    "judge_repeats": ("judge", "repeats"),
    "judge_max_tokens": ("judge", "max_tokens"),
    "max_tokens": ("generation", "max_tokens"),
    "temperature": ("generation", "temperature"),
    "seed": ("seed",),
    "repeats": ("repeats",),
    "limit": ("limit",),
    "concurrency": ("concurrency",),
    "max_cost": ("budget", "max_cost"),
    "margin": ("margin",),
    "baseline": ("baseline",),
    "adaptive": ("adaptive",),
    "fail_under": ("gate", "fail_under"),
    "fail_if_worse_than": ("gate", "fail_if_worse_than"),
    "pipeline": ("pipeline",),
    "shard": ("shard",),
}
MODEL_FLAGS = ("model", "config")  # these replace the file's whole models list


def _names(value: str) -> list[str]:
    return [part.strip() for part in value.split(",") if part.strip()]


def _absolute(value: Path) -> str:
    return str(Path(value).expanduser().resolve())


def _baseline(value: str) -> str:
    return _absolute(Path(value)) if Path(value).expanduser().is_file() else value


def _pipeline(value: str) -> str:
    from assay.pipeline.loader import absolute_spec

    return absolute_spec(value)


CONVERT: dict[str, Callable[[Any], Any]] = {
    "judge": _names,
    "judge_dimensions": _names,
    "judge_criteria": _absolute,
    "fail_if_worse_than": _baseline,
    "pipeline": _pipeline,
}


def file_overrides(
    values: dict[str, Any],
    given: Iterable[str],
    data: Path | None = None,
    prompts: list[Path] | None = None,
) -> dict[str, Any]:
    """``{"generation": {"max_tokens": 64}, ...}`` for the flags in ``given``."""
    out: dict[str, Any] = {}
    for name in sorted(set(given) & set(FILE_KEYS)):
        value = values[name]
        _put(out, FILE_KEYS[name], CONVERT[name](value) if name in CONVERT else value)
    if "judge_criteria" in given:
        _put(out, ("judge", "rubric_text"), None)  # the flag's rubric file replaces the text
    if data is not None:
        _put(out, ("data", "path"), _absolute(data))
    if prompts:
        out["prompts"] = [_absolute(p) for p in prompts]
    return out


def _put(out: dict[str, Any], keys: tuple[str, ...], value: Any) -> None:
    for key in keys[:-1]:
        out = out.setdefault(key, {})
    out[keys[-1]] = value
