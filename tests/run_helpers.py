"""A deterministic scripted 'model zoo' for run and optimize tests."""

from __future__ import annotations

import contextlib
import gc
import hashlib
import io
import json
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import traceback
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from types import FrameType, ModuleType

from rich.console import Console

from assay.cli.main import main as assay_main
from assay.data import demo_path, load_dataset
from assay.errors import AssayError
from assay.store.runstore import RunStore
from assay.testing import Action, ChatRequest, reply

FLIP = {"positive": "negative", "negative": "positive"}


class LabelZoo:
    """Answers sentiment items: model ``acc90`` is right on ~90% of items, ``acc60`` on ~60%.

    Each decision is a hash of (model, input), so reruns and resumes see identical replies.
    Records what it answered, so tests compute the expected table from what the server did.
    """

    def __init__(self, delays: dict[str, float] | None = None, tokens: tuple[int, int] = (40, 2)):
        samples = load_dataset(demo_path("sentiment.jsonl")).samples
        self.truth = {s.input_text(): s.reference or "" for s in samples}
        self.delays = delays or {}
        self.tokens = tokens
        self.correct: dict[tuple[str, str], bool] = {}
        self.arrivals: Counter[tuple[str, str]] = Counter()
        self._lock = threading.Lock()

    def accuracy_of(self, model: str) -> int:
        return int(model.removeprefix("acc")) if model.startswith("acc") else 50

    def __call__(self, request: ChatRequest) -> Action:
        text = request.last_user_text
        digest = hashlib.sha256(f"{request.model}|{text}".encode()).digest()
        right = digest[0] % 100 < self.accuracy_of(request.model)
        truth = self.truth.get(text, "positive")
        with self._lock:
            self.correct[(request.model, text)] = right
            self.arrivals[(request.model, text)] += 1
        answer = truth if right else FLIP[truth]
        return reply(
            answer,
            input_tokens=self.tokens[0],
            output_tokens=self.tokens[1],
            delay=self.delays.get(request.model, 0.0),
        )


def write_prices(path: Path, base_url_models: dict[str, tuple[float, float]]) -> Path:
    prices = {
        f"compat/{m}": {"input_per_mtok": i, "output_per_mtok": o}
        for m, (i, o) in base_url_models.items()
    }
    path.write_text(json.dumps({"prices": prices}))
    return path


Env = Mapping[str, str | None]


def assay(
    *args: str, timeout: float = 120, env: Env | None = None, cwd: Path | str | None = None
) -> subprocess.CompletedProcess[str]:
    """Run the real CLI (``assay.cli.main:main``) in this process, as a new process sees it.

    The store comes from $ASSAY_STORE. stdout and stderr are captured; $COLUMNS is 80 unless
    set (the width a process with piped output gets); ``env`` (None unsets a variable) and
    ``cwd`` hold for this call only. The return code is the one the process would exit with:
    SystemExit's code, or 1 with the traceback on stderr for an exception that escapes
    ``main`` (``--debug``). Past ``timeout`` seconds it raises subprocess.TimeoutExpired.

    Use :func:`assay_process` where a test needs a process of its own: signals, kill -9,
    several processes at once, the embedded model (a native crash would end pytest).
    """
    argv = ["assay", *args]
    out, err = io.StringIO(), io.StringIO()
    saved_env, saved_cwd = dict(os.environ), os.getcwd()
    saved_argv, saved_stdin = sys.argv, sys.stdin
    imported = set(sys.modules)
    consoles = _module_consoles(imported)
    try:
        _set_env({"COLUMNS": os.environ.get("COLUMNS") or "80", **(env or {})})
        if cwd is not None:
            os.chdir(cwd)
        sys.argv, sys.stdin = argv, io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            # Module-level Consoles fixed their width and colours when first built: build
            # them again, under this call's $COLUMNS and streams, as a new process would.
            for module, name, old in consoles:
                setattr(module, name, type(old)(stderr=old.stderr))
            code = _exit_code(timeout)
    except _TimedOut:
        raise subprocess.TimeoutExpired(argv, timeout, out.getvalue(), err.getvalue()) from None
    finally:
        for module, name, old in consoles:
            setattr(module, name, old)
        sys.argv, sys.stdin = saved_argv, saved_stdin
        os.chdir(saved_cwd)
        _set_env({**dict.fromkeys(os.environ), **saved_env})
        # Modules first imported during the call built their Consoles under its settings.
        for module, name, old in _module_consoles(set(sys.modules) - imported):
            setattr(module, name, type(old)(stderr=old.stderr))
        # A process that ends closes its SQLite connections, checkpointing the WAL into the
        # store; the CLI leaves them to be collected, so collect them now.
        gc.collect()
    return subprocess.CompletedProcess(argv, code, out.getvalue(), err.getvalue())


def assay_process(
    *args: str, timeout: float = 120, env: Env | None = None, cwd: Path | str | None = None
) -> subprocess.CompletedProcess[str]:
    """Run the real CLI in a new process (``python -m assay``), for tests that need one."""
    child_env = None
    if env is not None:
        merged = {**os.environ, **env}
        child_env = {k: v for k, v in merged.items() if v is not None}
    return subprocess.run(
        [sys.executable, "-m", "assay", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=child_env,
        cwd=cwd,
    )


class _TimedOut(BaseException):
    """An in-process command ran past its timeout (a BaseException, so main() lets it pass)."""


def _exit_code(timeout: float) -> int:
    with _deadline(timeout):
        try:
            assay_main()
        except SystemExit as exc:
            if exc.code is None or isinstance(exc.code, int):
                return exc.code or 0
            print(exc.code, file=sys.stderr)
            return 1
        except _TimedOut:
            raise
        except BaseException:  # what the interpreter does with an uncaught exception
            traceback.print_exc()
            return 1
    return 0


@contextlib.contextmanager
def _deadline(seconds: float) -> Iterator[None]:
    """Raise _TimedOut in the main thread after ``seconds`` (SIGALRM interrupts waits too)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def expire(signum: int, frame: FrameType | None) -> None:
        raise _TimedOut

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def _set_env(changes: Env) -> None:
    for key, value in changes.items():
        if value is None:
            os.environ.pop(key, None)
        elif os.environ.get(key) != value:
            os.environ[key] = value


def _module_consoles(names: Iterable[str]) -> list[tuple[ModuleType, str, Console]]:
    """The rich Consoles held at module level by Assay's own modules."""
    found = []
    for name in names:
        module = sys.modules.get(name)
        if module is None or not (name == "assay" or name.startswith("assay.")):
            continue
        for attr, value in list(vars(module).items()):
            if isinstance(value, Console):
                found.append((module, attr, value))
    return found


def child_run_progress(store_dir: Path) -> tuple[str, int] | None:
    """The run a child process started and how many results it has saved, once it has one
    (read-only, so the reader never writes to the child's store)."""
    if not RunStore.exists(store_dir):
        return None
    try:
        store = RunStore.open(store_dir, create=False)
        try:
            runs = store.list_runs()
            return (runs[0].id, len(store.completed_keys(runs[0].id))) if runs else None
        finally:
            store.close()
    except (sqlite3.Error, AssayError):  # the child is still creating it
        return None
