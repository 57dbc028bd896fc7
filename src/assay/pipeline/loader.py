"""Find and import the user's pipeline function: ``path/to/file.py:function`` or
``package.module:function``. Importing runs the file's top-level code, as ``python file.py``
would: that is the user's code, run with the user's rights."""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import inspect
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

from assay.errors import UserInputError

HINT = "write --pipeline path/to/file.py:function or package.module:function"
CALLED_WITH = ("prompt", "sample", "client")


@dataclass(frozen=True)
class Pipeline:
    """A loaded pipeline: its spec, the function, and the file its code came from."""

    spec: str
    function: Callable[..., Any]
    source: Path | None  # the user's file (None for a module without one)
    sha256: str | None  # of that file's bytes: a resume refuses a changed pipeline

    @property
    def is_async(self) -> bool:
        call = getattr(self.function, "__call__", None)  # noqa: B004 - a callable object's
        return inspect.iscoroutinefunction(self.function) or inspect.iscoroutinefunction(call)


def split_spec(spec: str) -> tuple[str, str]:
    """``("path/to/file.py", "answer")`` from ``path/to/file.py:answer``."""
    where, sep, name = spec.strip().rpartition(":")
    if not sep or not where or not name.isidentifier():
        raise UserInputError(f"--pipeline {spec!r} names no function", HINT)
    return where, name


def is_file_spec(where: str) -> bool:
    return where.endswith(".py") or "/" in where or "\\" in where


def absolute_spec(spec: str) -> str:
    """The spec with its file made absolute (a resume from another folder finds it)."""
    where, name = split_spec(spec)
    if not is_file_spec(where):
        return spec.strip()
    return f"{Path(where).expanduser().resolve()}:{name}"


def spec_files(spec: str | None) -> list[str]:
    """The file a spec names (none for a module): an output must never overwrite it."""
    if spec is None:
        return []
    where, _ = split_spec(spec)
    return [where] if is_file_spec(where) else []


def load_pipeline(spec: str) -> Pipeline:
    """Import the pipeline; a missing file, module or function, an import that raises or a
    function that cannot take ``(prompt, sample, client)`` is one error line."""
    where, name = split_spec(spec)
    module = _import_file(Path(where)) if is_file_spec(where) else _import_module(where)
    function = getattr(module, name, None)
    if function is None:
        found = sorted(n for n, v in vars(module).items() if callable(v) and not n.startswith("_"))
        raise UserInputError(
            f"--pipeline: {where} has no function {name!r}",
            f"functions found: {', '.join(found) or 'none'}",
        )
    if not callable(function):
        kind = type(function).__name__
        raise UserInputError(f"--pipeline: {where}:{name} is not a function (a {kind} value)", HINT)
    _check_signature(function, f"{where}:{name}")
    source = _source_file(module)
    return Pipeline(absolute_spec(spec), function, source, _file_sha256(source))


def _import_file(path: Path) -> ModuleType:
    if not path.is_file():
        raise UserInputError(f"--pipeline: file not found: {path}", HINT)
    resolved = path.resolve()
    module_name = "assay_user_pipeline_" + hashlib.sha256(str(resolved).encode()).hexdigest()[:16]
    spec = importlib.util.spec_from_file_location(module_name, resolved)
    if spec is None or spec.loader is None:
        raise UserInputError(f"--pipeline: cannot load {path} as a Python module", HINT)
    module = importlib.util.module_from_spec(spec)
    # Its own folder first, as ``python file.py`` has it: the file's sibling modules import.
    if str(resolved.parent) not in sys.path:
        sys.path.insert(0, str(resolved.parent))
    sys.modules[module_name] = module
    try:
        spec.loader.exec_module(module)
    except Exception as exc:
        sys.modules.pop(module_name, None)
        raise _import_failed(str(path), exc) from None
    return module


def _import_module(name: str) -> ModuleType:
    # The working folder first, as ``python -m`` has it, so a module next to the data imports.
    if "" not in sys.path and str(Path.cwd()) not in sys.path:
        sys.path.insert(0, str(Path.cwd()))
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as exc:
        if exc.name is not None and name.startswith(exc.name):
            raise UserInputError(f"--pipeline: no module named {name!r}", HINT) from None
        raise _import_failed(name, exc) from None
    except Exception as exc:
        raise _import_failed(name, exc) from None


def _import_failed(where: str, exc: Exception) -> UserInputError:
    from assay.pipeline.tracebacks import user_frames

    frames = user_frames(exc, None)
    at = f" at {frames}" if frames else ""
    return UserInputError(
        f"--pipeline: importing {where} raised {type(exc).__name__}: {_first_line(exc)}{at}",
        "fix the error in your pipeline file",
    )


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:200] if text else ""


def _check_signature(function: Callable[..., Any], where: str) -> None:
    try:
        signature = inspect.signature(function)
    except (TypeError, ValueError):  # a builtin without a signature: let the call decide
        return
    try:
        signature.bind(*CALLED_WITH)
    except TypeError:
        raise UserInputError(
            f"--pipeline: {where}{signature} cannot be called as {where}(prompt, sample, client)",
            "give it three parameters: def answer(prompt, sample, client)",
        ) from None


def _source_file(module: ModuleType) -> Path | None:
    file = getattr(module, "__file__", None)
    return Path(file).resolve() if file else None


def _file_sha256(path: Path | None) -> str | None:
    if path is None or not path.is_file():
        return None
    return hashlib.sha256(path.read_bytes()).hexdigest()
