"""Writing the user's files: atomically, and never over an input or into the run store.

Below every layer (the jobs, the report and the CLI all write through it), so it imports
nothing of Assay's but its errors.
"""

from __future__ import annotations

import errno
import os
import stat
import tempfile
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO

from assay.errors import UserInputError


def refuse_clobber(path: Path, inputs: Iterable[str | Path]) -> None:
    """Fail when ``path`` is one of ``inputs``, or lies inside an input that is a folder: the
    run store's (writing there could replace ``runs.sqlite``, and with it every run)."""
    where = resolved(path)
    for item in inputs:
        source = resolved(item)
        if source == where:
            raise UserInputError(
                f"Cannot write {path}: it is the input {item}", "choose another path"
            )
        if source.is_dir() and where.is_relative_to(source):
            raise UserInputError(
                f"Cannot write {path}: it is inside the run store folder {item}",
                "write it elsewhere",
            )


def resolved(path: str | Path) -> Path:
    return Path(path).expanduser().resolve()


def write_atomic(path: Path, text: str) -> None:
    """Write via a temporary file in the same folder, flushed to disk, then renamed over
    ``path``: a crash at any moment leaves the old file or the new one, never a part.

    A device or a pipe (``/dev/stdout``) is written in place: it cannot be renamed over.
    Any OS error is one line naming the file (a full disk included).
    """
    try:
        if path.exists() and not stat.S_ISREG(path.stat().st_mode):
            _write_in_place(path, text)
        else:
            _write_renamed(path, text)
    except OSError as exc:
        raise UserInputError(f"Cannot write {path}: {_reason(exc)}") from None


@contextmanager
def atomic_path(path: Path) -> Iterator[Path]:
    """A temporary file beside ``path`` to write in steps (a streamed export): when the block
    ends it is flushed to disk and renamed over ``path``; when the block raises it is removed,
    and ``path`` is left as it was. A device or a pipe is yielded as itself (written in place).
    Any OS error is one line naming the file."""
    try:
        if path.exists() and not stat.S_ISREG(path.stat().st_mode):
            yield path
            return
        fd, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        os.close(fd)
        tmp = Path(name)
        try:
            yield tmp
            _fsync_file(tmp)
            os.replace(tmp, path)
        finally:
            tmp.unlink(missing_ok=True)
        _sync_folder(path.parent)
    except OSError as exc:
        raise UserInputError(f"Cannot write {path}: {_reason(exc)}") from None


def _fsync_file(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)  # the data is on disk before the name points at it
    finally:
        os.close(fd)


def _write_in_place(path: Path, text: str) -> None:
    with path.open("w", encoding="utf-8") as handle:
        handle.write(text)


def _write_renamed(path: Path, text: str) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())  # the data is on disk before the name points at it
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    _sync_folder(path.parent)


def _sync_folder(folder: Path) -> None:
    """Make the rename itself durable; some filesystems cannot open a folder: best effort."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _reason(exc: OSError) -> str:
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return "no space left on the device (free some space or write elsewhere)"
    if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return f"{exc.strerror.lower() if exc.strerror else 'not allowed'} (write elsewhere)"
    return (exc.strerror or str(exc)).lower()


class NotRegularFileError(OSError):
    """The path is a FIFO, a device, a socket or a directory: ``kind`` says which."""

    def __init__(self, kind: str) -> None:
        super().__init__(f"it is {kind}, not a regular file")
        self.kind = kind


_KINDS = (
    (stat.S_ISDIR, "a directory"),
    (stat.S_ISFIFO, "a named pipe (FIFO)"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISSOCK, "a socket"),
)


def open_regular(p: Path) -> IO[bytes]:
    """Open ``p`` for reading only if it is a regular file, else NotRegularFileError.

    A FIFO would block the open forever and a device such as /dev/zero never ends. The file
    is opened without blocking and checked on its descriptor, so no swap can slip between."""
    fd = os.open(p, os.O_RDONLY | os.O_NONBLOCK)
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            kind = next((name for test, name in _KINDS if test(mode)), "not a regular file")
            raise NotRegularFileError(kind)
        os.set_blocking(fd, True)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def read_regular_text(path: Path, max_bytes: int = 16 * 2**20) -> str:
    """A small text file's content (a rubric, a schema, a price file): only a regular file,
    read to ``max_bytes`` at most, as UTF-8. Raises OSError (NotRegularFileError for a FIFO or
    a device), or UnicodeDecodeError / ValueError for what it cannot hold."""
    with open_regular(path) as f:
        data = f.read(max_bytes + 1)
    if len(data) > max_bytes:
        raise ValueError(f"{path} is over {max_bytes // 2**20} MiB")
    return data.decode("utf-8")
