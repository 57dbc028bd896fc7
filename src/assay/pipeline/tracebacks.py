"""An exception raised in the user's pipeline, as one line that points at the user's own code:
``ZeroDivisionError: division by zero (at agent.py:41 in answer > agent.py:12 in calculate)``.

Frames of Assay itself, the standard library and installed packages are left out: they are
the machinery around the user's code, not where its bug is."""

from __future__ import annotations

import os
import sysconfig
import traceback
from pathlib import Path

import assay

MAX_FRAMES = 4
MAX_MESSAGE = 300
_ASSAY_DIR = str(Path(assay.__file__).resolve().parent)
_LIBRARY_DIRS = tuple(
    str(Path(p).resolve())
    for p in {sysconfig.get_paths()[k] for k in ("stdlib", "platstdlib", "purelib", "platlib")}
)


def describe(exc: BaseException, source: Path | None) -> str:
    """``Type: message (at file:line in function > ...)``: the innermost user frames last."""
    message = " ".join(str(exc).split())
    if len(message) > MAX_MESSAGE:
        message = message[: MAX_MESSAGE - 1] + "…"
    head = f"{type(exc).__name__}: {message}" if message else type(exc).__name__
    frames = user_frames(exc, source)
    return f"{head} (at {frames})" if frames else head


def user_frames(exc: BaseException, source: Path | None) -> str:
    """The user's frames of ``exc``'s traceback as ``file:line in function``, joined by ``>``."""
    frames = [
        f"{_shown(f.filename)}:{f.lineno} in {f.name}"
        for f in traceback.extract_tb(exc.__traceback__)
        if _is_users(f.filename, source)
    ]
    return " > ".join(frames[-MAX_FRAMES:])


def _is_users(filename: str, source: Path | None) -> bool:
    if filename.startswith("<"):  # <frozen importlib._bootstrap>, <string>
        return False
    path = str(Path(filename).resolve())
    if source is not None and path == str(source):
        return True
    if path.startswith(_ASSAY_DIR + os.sep) or path.startswith(_LIBRARY_DIRS):
        return False
    return "site-packages" not in path and "dist-packages" not in path


def _shown(filename: str) -> str:
    """A path relative to the working folder when it is under it, else as it is."""
    try:
        return str(Path(filename).resolve().relative_to(Path.cwd()))
    except ValueError:
        return filename
