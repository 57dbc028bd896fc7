"""Shared benchmark helpers: a scripted server in its own process, process metrics, tables.

The scripted server must not share a process (and a GIL) with the code being measured, or its
CPU would be charged to the harness. ``ServerProcess`` starts this module as a child::

    python -m perf.common --delay 0.1 [--text ok]

The child prints ``port N`` once it listens, then answers one line per command on stdin:
``stats`` prints ``{"requests": ..., "cpu_s": ...}`` (chat requests received so far and the
server process's CPU seconds). It exits when stdin closes.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from types import TracebackType

REPO_ROOT = Path(__file__).resolve().parent.parent
"""The directory that holds ``perf/``: children run there so ``-m perf.…`` resolves."""


# --------------------------------------------------------------------------- server process


@dataclass(frozen=True)
class ServerStats:
    """What the server process reports about itself."""

    requests: int
    """Chat requests received since the server started."""
    cpu_s: float
    """CPU seconds used by the whole server process so far."""


def child_env() -> dict[str, str]:
    """The environment for benchmark children: ``bench`` importable, no stray bytecode."""
    env = dict(os.environ)
    parts = [str(REPO_ROOT), *filter(None, env.get("PYTHONPATH", "").split(os.pathsep))]
    env["PYTHONPATH"] = os.pathsep.join(parts)
    return env


def start_child(command: list[str], what: str) -> tuple[subprocess.Popen[str], int]:
    """A server child that prints ``port N`` once listening; stdin stays open to stop it."""
    proc = subprocess.Popen(
        command,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        cwd=REPO_ROOT,
        env=child_env(),
    )
    assert proc.stdout is not None
    first = proc.stdout.readline().strip()
    if not first.startswith("port "):
        stop_child(proc)
        raise RuntimeError(f"{what} did not start: {first!r}")
    return proc, int(first.split()[1])


def stop_child(proc: subprocess.Popen[str], timeout_s: float = 10) -> None:
    """Close the child's stdin (its signal to exit), then wait; kill it if it hangs."""
    if proc.stdin is not None:
        proc.stdin.close()
    try:
        proc.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
    if proc.stdout is not None:
        proc.stdout.close()


class ServerProcess:
    """A ScriptedServer answering every chat request with ``reply(text, delay=delay)``."""

    def __init__(self, delay: float, *, text: str = "ok") -> None:
        self.delay = delay
        self.text = text
        self.port = 0
        self._proc: subprocess.Popen[str] | None = None

    def start(self) -> ServerProcess:
        command = [sys.executable, "-m", "perf.common", "--delay", str(self.delay)]
        self._proc, self.port = start_child([*command, "--text", self.text], "scripted server")
        return self

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    @property
    def pid(self) -> int:
        return self._running().pid

    def stats(self) -> ServerStats:
        proc = self._running()
        assert proc.stdin is not None
        proc.stdin.write("stats\n")
        proc.stdin.flush()
        data = json.loads(self._readline())
        return ServerStats(requests=int(data["requests"]), cpu_s=float(data["cpu_s"]))

    def stop(self) -> None:
        proc, self._proc = self._proc, None
        if proc is not None:
            stop_child(proc)

    def __enter__(self) -> ServerProcess:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def _running(self) -> subprocess.Popen[str]:
        if self._proc is None:
            raise RuntimeError("the server process is not running")
        return self._proc

    def _readline(self) -> str:
        proc = self._running()
        assert proc.stdout is not None
        line = proc.stdout.readline()
        if not line:
            raise RuntimeError(f"scripted server exited (code {proc.poll()})")
        return line.strip()


def serve(argv: Sequence[str] | None = None) -> None:
    """The server child: listen, print the port, answer ``stats`` until stdin closes."""
    from assay.testing import ScriptedServer, constant, reply

    parser = argparse.ArgumentParser(prog="python -m perf.common")
    parser.add_argument("--delay", type=float, default=0.1)
    parser.add_argument("--text", default="ok")
    args = parser.parse_args(argv)
    with ScriptedServer(constant(reply(args.text, delay=args.delay))) as srv:
        print(f"port {srv.port}", flush=True)
        for line in sys.stdin:
            if line.strip() == "stats":
                stats = {"requests": srv.count, "cpu_s": time.process_time()}
                print(json.dumps(stats), flush=True)


# --------------------------------------------------------------------------- process metrics


def peak_rss_mib() -> float:
    """Peak resident set size of this process so far (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def current_rss_mib() -> float:
    """Resident set size of this process now."""
    try:
        pages = int(Path("/proc/self/statm").read_text().split()[1])
    except (OSError, IndexError, ValueError):
        return peak_rss_mib()
    return pages * os.sysconf("SC_PAGE_SIZE") / (1024 * 1024)


def median(values: Sequence[float]) -> float:
    ordered = sorted(values)
    mid = len(ordered) // 2
    return ordered[mid] if len(ordered) % 2 else (ordered[mid - 1] + ordered[mid]) / 2


# --------------------------------------------------------------------------- machine


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def memory_gib() -> float | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) / (1024 * 1024)
    except (OSError, ValueError):
        pass
    return None


def package_version(name: str) -> str:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return "-"


def machine_line() -> str:
    """One line naming the machine and the versions that matter to the numbers."""
    ram = memory_gib()
    ram_text = f"{ram:.0f} GiB RAM" if ram is not None else "RAM unknown"
    versions = ", ".join(f"{p} {package_version(p)}" for p in ("assay", "openai", "httpx"))
    return (
        f"{os.cpu_count()} cores ({cpu_model()}), {ram_text}, "
        f"Python {platform.python_version()} on {platform.system()}; {versions}"
    )


# --------------------------------------------------------------------------- tables


def print_table(
    title: str, columns: Sequence[str], rows: Sequence[Sequence[str]], *, markdown: bool
) -> None:
    """A rich table on the terminal, or a Markdown table (for docs/benchmarks.md)."""
    if markdown:
        print(f"\n**{title}**\n")
        print("| " + " | ".join(columns) + " |")
        print("|" + "|".join("---:" if i else "---" for i in range(len(columns))) + "|")
        for row in rows:
            print("| " + " | ".join(row) + " |")
        return
    from rich.console import Console
    from rich.table import Table

    table = Table()
    for i, column in enumerate(columns):
        table.add_column(column, justify="right" if i else "left")
    for row in rows:
        table.add_row(*row)
    console = Console() if sys.stdout.isatty() else Console(width=160)
    console.print(f"\n[bold]{title}[/bold]")
    console.print(table)


if __name__ == "__main__":
    serve()
