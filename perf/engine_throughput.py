"""Requests per second through the Engine against a scripted server with a fixed reply delay.

    python -m perf.engine_throughput [--requests 2000] [--delay 0.1] [--concurrency 1,16,64,256]
                                      [--clients socket,httpx2,sdk,...] [--repeat 1]
                                      [--json PATH] [--markdown]

Every cell (client x concurrency) runs in a fresh child process, so its CPU time and peak RSS
are its own; the scripted server runs in another process. The clients, cheapest first:

- ``socket``: hand-written HTTP/1.1 over asyncio streams, keep-alive (the transport ceiling);
- ``httpx2``: ``httpx2.AsyncClient.post`` + ``response.json()`` (the HTTP stack under the SDK);
- ``sdk-semaphore``: the official ``openai.AsyncOpenAI`` on its default transport (httpx2), one
  task per request under an ``asyncio.Semaphore(concurrency)`` (the textbook baseline);
- ``sdk``:    the same client driven by workers, like every other row (the like-for-like baseline);
- ``sdk-aiohttp``: the same SDK on its aiohttp transport, as Assay's provider configures it;
- ``provider``: Assay's ``OpenAICompatProvider.complete`` alone (SDK + request/reply mapping);
- ``engine``: ``Engine.complete`` with the cache off (what ``assay run`` uses);
- ``engine-noio``: the same Engine over a stub provider that only sleeps ``delay``: the engine's
  own scheduling and bookkeeping cost, with no HTTP at all.

Extra clients, only with ``--clients``: ``httpx`` (legacy httpx 0.28 / httpcore 1.x, which the
installed SDK no longer uses), and ``provider-wait_for`` / ``provider-timeout``: the provider
under ``asyncio.wait_for`` (what ``Engine._timed`` does) or under ``asyncio.timeout`` (no extra
task), to show what the engine's timeout wrapper costs.

All but ``sdk-semaphore`` are driven the way Assay's runner drives the engine: ``concurrency``
workers pull from one shared count of requests. The theoretical limit is ``concurrency / delay``.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import json
import math
import os
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlsplit

from perf.common import (
    REPO_ROOT,
    ServerProcess,
    child_env,
    current_rss_mib,
    machine_line,
    peak_rss_mib,
    print_table,
)

CLIENTS = (
    "socket",
    "httpx2",
    "sdk-semaphore",
    "sdk",
    "sdk-aiohttp",
    "provider",
    "engine",
    "engine-noio",
)
"""The default clients, cheapest first (``engine-noio`` makes no HTTP requests)."""
EXTRA_CLIENTS = ("httpx", "provider-wait_for", "provider-timeout")
"""Measured only when asked for with ``--clients``."""
HTTP_CLIENTS = frozenset(CLIENTS + EXTRA_CLIENTS) - {"engine-noio"}
PROMPT = "Classify the sentiment of this review as positive or negative: a warm, funny film."
MODEL = "m"
MAX_TOKENS = 256
TIMEOUT_S = 60.0


# --------------------------------------------------------------------------- cells


@dataclass(frozen=True)
class CellSpec:
    """One measurement: ``requests`` calls by ``client`` at ``concurrency`` after a warm-up."""

    client: str
    concurrency: int
    requests: int
    delay: float
    base_url: str
    warmup: int = 0


@dataclass
class CellResult:
    client: str
    concurrency: int
    requests: int
    """Measured requests (warm-up excluded)."""
    warmup: int
    delay: float
    ok: int
    errors: int
    wall_s: float
    cpu_s: float
    """CPU seconds of the harness process during the measured requests."""
    peak_rss_mib: float
    rss_growth_mib: float
    """RSS after the measured requests minus RSS before them (warm-up already done)."""
    first_error: str = ""
    server_requests: int | None = None
    """Chat requests the server received during the cell (warm-up included)."""
    server_cpu_s: float | None = None

    @property
    def limit_rps(self) -> float:
        return self.concurrency / self.delay

    @property
    def rps(self) -> float:
        return self.requests / self.wall_s if self.wall_s > 0 else 0.0

    @property
    def ratio(self) -> float:
        return self.rps / self.limit_rps

    @property
    def cpu_ms_per_request(self) -> float:
        return 1000 * self.cpu_s / self.requests if self.requests else 0.0

    @property
    def cpu_bound_rps(self) -> float:
        """Requests per second if the harness had one full core and did nothing but this."""
        return self.requests / self.cpu_s if self.cpu_s > 0 else math.inf

    @property
    def server_cpu_ms_per_request(self) -> float | None:
        if not self.server_requests or self.server_cpu_s is None:
            return None
        return 1000 * self.server_cpu_s / self.server_requests


# --------------------------------------------------------------------------- clients


class Client(Protocol):
    async def call(self) -> None: ...

    async def aclose(self) -> None: ...


def request_body() -> dict[str, Any]:
    """The same chat body every client sends (what the engine's provider sends for it)."""
    return {
        "model": MODEL,
        "messages": [{"role": "user", "content": PROMPT}],
        "temperature": 0.0,
        "max_tokens": MAX_TOKENS,
    }


def _reply_text(payload: Any) -> str:
    return str(payload["choices"][0]["message"]["content"])


class SocketClient:
    """HTTP/1.1 keep-alive over asyncio streams: no HTTP library at all."""

    def __init__(self, base_url: str) -> None:
        url = urlsplit(base_url)
        self.host, self.port = url.hostname or "127.0.0.1", url.port or 80
        body = json.dumps(request_body()).encode()
        head = (
            f"POST {url.path.rstrip('/')}/chat/completions HTTP/1.1\r\n"
            f"Host: {self.host}:{self.port}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n\r\n"
        )
        self._request = head.encode() + body
        self._idle: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []

    async def call(self) -> None:
        if self._idle:
            reader, writer = self._idle.pop()
        else:
            reader, writer = await asyncio.open_connection(self.host, self.port)
        try:
            writer.write(self._request)
            status, length = _parse_response_head(await reader.readuntil(b"\r\n\r\n"))
            payload = json.loads(await reader.readexactly(length))
        except BaseException:
            writer.close()
            raise
        self._idle.append((reader, writer))
        if status != 200:
            raise RuntimeError(f"HTTP {status}")
        _reply_text(payload)

    async def aclose(self) -> None:
        for _, writer in self._idle:
            writer.close()
        self._idle.clear()


def _parse_response_head(head: bytes) -> tuple[int, int]:
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ", 2)[1])
    for line in lines[1:]:
        name, _, value = line.partition(":")
        if name.strip().lower() == "content-length":
            return status, int(value)
    raise RuntimeError("response without Content-Length")


class HttpxClient:
    """``AsyncClient`` of ``httpx2`` (what the SDK uses) or legacy ``httpx``, same pool limits."""

    def __init__(self, base_url: str, concurrency: int, *, legacy: bool = False) -> None:
        module = importlib.import_module("httpx" if legacy else "httpx2")
        limits = module.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
        self._client = module.AsyncClient(base_url=base_url, limits=limits, timeout=TIMEOUT_S)
        self._body = request_body()

    async def call(self) -> None:
        response = await self._client.post("chat/completions", json=self._body)
        response.raise_for_status()
        _reply_text(response.json())

    async def aclose(self) -> None:
        await self._client.aclose()


class SdkClient:
    """``openai.AsyncOpenAI`` configured as ``assay.providers.openai_compat`` configures it."""

    def __init__(self, base_url: str, concurrency: int, transport: str = "httpx2") -> None:
        import httpx
        import openai

        # legacy httpx.Limits, as Assay passes them (the SDK's httpx2 reads them duck-typed)
        limits: Any = httpx.Limits(
            max_connections=concurrency, max_keepalive_connections=concurrency
        )
        factory = (
            openai.DefaultAioHttpClient
            if transport == "aiohttp"
            else openai.DefaultAsyncHttpxClient
        )
        self._client = openai.AsyncOpenAI(
            api_key="not-needed",
            base_url=base_url,
            max_retries=0,
            timeout=TIMEOUT_S,
            http_client=factory(limits=limits, timeout=TIMEOUT_S),
        )
        self._body = request_body()

    async def call(self) -> None:
        response = await self._client.chat.completions.create(**self._body)
        response.choices[0].message.content  # noqa: B018 - read the reply like a caller would

    async def aclose(self) -> None:
        await self._client.close()


def _assay_request() -> Any:
    from assay.records import GenerationParams, Message, Request

    return Request(
        messages=(Message(role="user", content=PROMPT),),
        params=GenerationParams(temperature=0.0, max_tokens=MAX_TOKENS),
    )


def _assay_model(base_url: str) -> Any:
    from assay.providers.specs import resolve_model

    return resolve_model(f"compat/{MODEL}", base_url=base_url)


class ProviderClient:
    """Assay's provider for the model, built by the same factory the engine uses.

    ``timeout`` wraps each call: ``"wait_for"`` in ``asyncio.wait_for`` (a new task per call),
    ``"timeout"`` in ``async with asyncio.timeout`` (same task), ``None`` not at all.
    """

    def __init__(self, base_url: str, concurrency: int, timeout: str | None = None) -> None:
        from assay.engine.engine import EngineConfig
        from assay.providers import make_provider

        defaults = EngineConfig(concurrency=concurrency)
        self._provider = make_provider(
            _assay_model(base_url),
            timeout_s=defaults.timeout_s,
            max_connections=concurrency,
            local_parallel=defaults.local_parallel,
        )
        self._request = _assay_request()
        self._timeout = timeout
        self._timeout_s = defaults.timeout_s

    async def call(self) -> None:
        if self._timeout == "wait_for":
            await asyncio.wait_for(self._provider.complete(self._request), self._timeout_s)
        elif self._timeout == "timeout":
            async with asyncio.timeout(self._timeout_s):
                await self._provider.complete(self._request)
        else:
            await self._provider.complete(self._request)

    async def aclose(self) -> None:
        await self._provider.aclose()


class StubProvider:
    """Sleeps ``delay`` and returns a fixed completion: a provider with no I/O cost."""

    def __init__(self, delay: float) -> None:
        from assay.records import Completion

        self.delay = delay
        self._completion = Completion(
            text="ok", input_tokens=16, output_tokens=1, model_served=MODEL, finish_reason="stop"
        )

    async def complete(self, request: Any) -> Any:
        await asyncio.sleep(self.delay)
        return self._completion.model_copy(update={"latency_s": self.delay})

    async def aclose(self) -> None:
        return None


class EngineClient:
    """``Engine.complete`` with the cache off, on a ``compat/`` model at the server.

    With ``stub_delay`` the engine is given a provider factory that returns
    :class:`StubProvider`: the engine's own cost, without the network.
    """

    def __init__(self, base_url: str, concurrency: int, stub_delay: float | None = None) -> None:
        from assay.engine.engine import Engine, EngineConfig
        from assay.providers import make_provider

        config = EngineConfig(concurrency=concurrency, use_cache=False)
        if stub_delay is None:
            self._engine = Engine(config, provider_factory=make_provider)
        else:
            stub = StubProvider(stub_delay)
            self._engine = Engine(config, provider_factory=lambda *_args, **_kwargs: stub)
        self._model = _assay_model(base_url)
        self._request = _assay_request()

    async def call(self) -> None:
        await self._engine.complete(self._model, self._request, purpose="task")

    async def aclose(self) -> None:
        await self._engine.aclose()


def make_client(name: str, base_url: str, concurrency: int, delay: float) -> Client:
    if name == "socket":
        return SocketClient(base_url)
    if name in ("httpx2", "httpx"):
        return HttpxClient(base_url, concurrency, legacy=name == "httpx")
    if name in ("sdk", "sdk-semaphore"):
        return SdkClient(base_url, concurrency)
    if name == "sdk-aiohttp":
        return SdkClient(base_url, concurrency, transport="aiohttp")
    if name == "provider" or name.startswith("provider-"):
        timeout = name.removeprefix("provider-") if name != "provider" else None
        return ProviderClient(base_url, concurrency, timeout)
    if name in ("engine", "engine-noio"):
        stub_delay = delay if name == "engine-noio" else None
        return EngineClient(base_url, concurrency, stub_delay)
    choices = ", ".join(CLIENTS + EXTRA_CLIENTS)
    raise ValueError(f"unknown client {name!r}; choose from {choices}")


# --------------------------------------------------------------------------- measuring


@dataclass
class Tally:
    ok: int = 0
    errors: int = 0
    first_error: str = ""

    async def attempt(self, call: Callable[[], Awaitable[None]]) -> None:
        """Make one call; count it as ok or as an error (errors never stop a cell)."""
        try:
            await call()
            self.ok += 1
        except Exception as exc:
            self.errors += 1
            self.first_error = self.first_error or repr(exc)[:200]


async def drive_semaphore(
    call: Callable[[], Awaitable[None]], total: int, concurrency: int
) -> Tally:
    """One task per call, ``concurrency`` at a time under a semaphore (gather of ``total``)."""
    tally = Tally()
    semaphore = asyncio.Semaphore(concurrency)

    async def one() -> None:
        async with semaphore:
            await tally.attempt(call)

    await asyncio.gather(*(one() for _ in range(total)))
    return tally


async def drive(call: Callable[[], Awaitable[None]], total: int, concurrency: int) -> Tally:
    """``concurrency`` workers pull from one shared count until ``total`` calls are made."""
    tally = Tally()
    remaining = total

    async def worker() -> None:
        nonlocal remaining
        while remaining > 0:
            remaining -= 1
            await tally.attempt(call)

    await asyncio.gather(*(worker() for _ in range(min(concurrency, total))))
    return tally


async def measure(spec: CellSpec) -> CellResult:
    """The core: warm up, then time ``spec.requests`` calls in this process."""
    client = make_client(spec.client, spec.base_url, spec.concurrency, spec.delay)
    try:
        run = drive_semaphore if spec.client == "sdk-semaphore" else drive
        warm = await run(client.call, spec.warmup, spec.concurrency)
        rss_before, cpu_before = current_rss_mib(), time.process_time()
        started = time.perf_counter()
        tally = await run(client.call, spec.requests, spec.concurrency)
        wall_s = time.perf_counter() - started
        cpu_s = time.process_time() - cpu_before
        rss_growth = current_rss_mib() - rss_before
    finally:
        await client.aclose()
    return CellResult(
        client=spec.client,
        concurrency=spec.concurrency,
        requests=spec.requests,
        warmup=spec.warmup,
        delay=spec.delay,
        ok=tally.ok,
        errors=tally.errors + warm.errors,
        wall_s=wall_s,
        cpu_s=cpu_s,
        peak_rss_mib=peak_rss_mib(),
        rss_growth_mib=rss_growth,
        first_error=warm.first_error or tally.first_error,
    )


def measure_in_child(spec: CellSpec, timeout_s: float = 600.0) -> CellResult:
    """Run :func:`measure` in a fresh interpreter so CPU and peak RSS are the cell's own."""
    command = [sys.executable, "-m", "perf.engine_throughput", "--cell", json.dumps(asdict(spec))]
    done = subprocess.run(
        command,
        capture_output=True,
        text=True,
        cwd=REPO_ROOT,
        env=child_env(),
        timeout=timeout_s,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"cell {spec} failed:\n{done.stderr[-2000:]}")
    return CellResult(**json.loads(done.stdout.strip().splitlines()[-1]))


def measure_with_server(spec: CellSpec, server: ServerProcess) -> CellResult:
    """One cell in a child process, with the server's request count and CPU around it."""
    before = server.stats()
    result = measure_in_child(spec)
    after = server.stats()
    result.server_requests = after.requests - before.requests
    result.server_cpu_s = after.cpu_s - before.cpu_s
    return result


def requests_for(concurrency: int, delay: float, requested: int, target_s: float) -> int:
    """``requested``, cut down where the theoretical limit would make a cell run > target_s."""
    at_limit = math.ceil(target_s * concurrency / delay)
    return max(concurrency, min(requested, at_limit))


@dataclass
class Options:
    requests: int = 2000
    delay: float = 0.1
    concurrency: Sequence[int] = (1, 16, 64, 256)
    clients: Sequence[str] = CLIENTS
    target_s: float = 10.0
    repeat: int = 1
    """Runs per cell; the one with the highest req/s is reported (for a shared machine)."""
    json_path: Path | None = None
    markdown: bool = False


def run_benchmark(options: Options) -> list[CellResult]:
    results: list[CellResult] = []
    with ServerProcess(options.delay) as server:
        for concurrency in options.concurrency:
            n = requests_for(concurrency, options.delay, options.requests, options.target_s)
            for client in options.clients:
                spec = CellSpec(client, concurrency, n, options.delay, server.base_url, concurrency)
                results.append(best_of(spec, server, options.repeat))
    return results


def best_of(spec: CellSpec, server: ServerProcess, repeat: int) -> CellResult:
    """Measure ``repeat`` times; keep the fastest run (others were slowed by neighbours)."""
    runs: list[CellResult] = []
    for _ in range(max(1, repeat)):
        runs.append(measure_with_server(spec, server))
        print(_progress_line(runs[-1]), file=sys.stderr, flush=True)
    return max(runs, key=lambda r: r.rps)


def _progress_line(r: CellResult) -> str:
    return (
        f"  c={r.concurrency:<4} {r.client:<7} n={r.requests:<5} {r.rps:8.1f} req/s "
        f"({r.ratio:.0%} of limit)  {r.cpu_ms_per_request:.3f} ms CPU/req  errors={r.errors}"
    )


# --------------------------------------------------------------------------- report

COLUMNS = (
    "concurrency",
    "client",
    "N",
    "req/s",
    "limit req/s",
    "% of limit",
    "harness CPU ms/req",
    "CPU-bound req/s",
    "peak RSS MiB",
    "RSS growth MiB",
    "server CPU ms/req",
    "errors",
)


def result_row(r: CellResult) -> list[str]:
    server_ms = r.server_cpu_ms_per_request
    return [
        str(r.concurrency),
        r.client,
        str(r.requests),
        f"{r.rps:,.0f}",
        f"{r.limit_rps:,.0f}",
        f"{r.ratio:.0%}",
        f"{r.cpu_ms_per_request:.3f}",
        f"{r.cpu_bound_rps:,.0f}",
        f"{r.peak_rss_mib:.0f}",
        f"{r.rss_growth_mib:+.1f}",
        f"{server_ms:.3f}" if server_ms is not None else "-",
        str(r.errors),
    ]


OVERHEAD_COLUMNS = (
    "concurrency",
    "engine/sdk req/s",
    "engine - provider",
    "provider - sdk-aiohttp",
    "sdk-aiohttp - sdk",
    "sdk - httpx2",
    "httpx2 - socket",
    "engine-noio",
)
"""Harness CPU ms per request that each layer adds on top of the one below it."""


def overhead_rows(results: Sequence[CellResult]) -> list[list[str]]:
    """Per concurrency: what each layer adds on top of the one below it."""
    rows: list[list[str]] = []
    for concurrency in dict.fromkeys(r.concurrency for r in results):
        by = {r.client: r for r in results if r.concurrency == concurrency}
        noio = by.get("engine-noio")
        rows.append(
            [
                str(concurrency),
                _ratio(by, "engine", "sdk"),
                _cpu_delta(by, "engine", "provider"),
                _cpu_delta(by, "provider", "sdk-aiohttp"),
                _cpu_delta(by, "sdk-aiohttp", "sdk"),
                _cpu_delta(by, "sdk", "httpx2"),
                _cpu_delta(by, "httpx2", "socket"),
                f"{noio.cpu_ms_per_request:.3f}" if noio else "-",
            ]
        )
    return rows


def _ratio(by: dict[str, CellResult], top: str, base: str) -> str:
    if top not in by or base not in by or by[base].rps == 0:
        return "-"
    return f"{by[top].rps / by[base].rps:.2f}x"


def _cpu_delta(by: dict[str, CellResult], top: str, base: str) -> str:
    if top not in by or base not in by:
        return "-"
    return f"{by[top].cpu_ms_per_request - by[base].cpu_ms_per_request:+.3f}"


def report(results: Sequence[CellResult], options: Options, load: str) -> None:
    print(f"\nMachine: {machine_line()}; load average {load}")
    print(
        f"Reply delay {options.delay:g} s; limit = concurrency / delay; warm-up of one wave "
        "(= concurrency requests) per cell, not timed; each cell in a fresh process; "
        f"fastest of {options.repeat} run(s) per cell."
    )
    title = "Engine throughput vs the openai SDK it wraps (baseline) and the transport"
    print_table(title, COLUMNS, [result_row(r) for r in results], markdown=options.markdown)
    layers = [row for row in overhead_rows(results) if any(cell != "-" for cell in row[1:])]
    if layers:
        title = "What each layer adds (harness CPU ms per request, same run)"
        print_table(title, OVERHEAD_COLUMNS, layers, markdown=options.markdown)


def write_json(path: Path, results: Sequence[CellResult], options: Options) -> None:
    cells = []
    for r in results:
        cell: dict[str, Any] = asdict(r)
        cell.update(
            rps=r.rps,
            limit_rps=r.limit_rps,
            ratio=r.ratio,
            cpu_ms_per_request=r.cpu_ms_per_request,
            server_cpu_ms_per_request=r.server_cpu_ms_per_request,
        )
        cells.append(cell)
    payload = {
        "machine": machine_line(),
        "delay": options.delay,
        "repeat": options.repeat,
        "cells": cells,
    }
    path.write_text(json.dumps(payload, indent=2) + "\n")


# --------------------------------------------------------------------------- CLI


def _int_list(text: str) -> list[int]:
    return [int(part) for part in text.split(",") if part.strip()]


def _name_list(text: str) -> list[str]:
    names = [part.strip() for part in text.split(",") if part.strip()]
    unknown = [n for n in names if n not in CLIENTS + EXTRA_CLIENTS]
    if unknown:
        choices = ", ".join(CLIENTS + EXTRA_CLIENTS)
        raise argparse.ArgumentTypeError(f"unknown client(s) {unknown}; choose from {choices}")
    return names


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m perf.engine_throughput")
    parser.add_argument("--requests", type=int, default=2000, help="requests per cell (max)")
    parser.add_argument("--delay", type=float, default=0.1, help="server reply delay, seconds")
    parser.add_argument("--concurrency", type=_int_list, default=[1, 16, 64, 256])
    parser.add_argument("--clients", type=_name_list, default=list(CLIENTS))
    parser.add_argument(
        "--target-seconds", type=float, default=10.0, help="cut N so a cell at the limit: ~this"
    )
    parser.add_argument("--repeat", type=int, default=1, help="runs per cell, fastest kept")
    parser.add_argument("--json", type=Path, default=None, help="also write the results here")
    parser.add_argument("--markdown", action="store_true", help="print Markdown tables")
    parser.add_argument("--cell", help=argparse.SUPPRESS)  # internal: one cell, JSON out
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    if args.cell:
        result = asyncio.run(measure(CellSpec(**json.loads(args.cell))))
        print(json.dumps(asdict(result)))
        return
    options = Options(
        requests=args.requests,
        delay=args.delay,
        concurrency=args.concurrency,
        clients=args.clients,
        target_s=args.target_seconds,
        repeat=args.repeat,
        json_path=args.json,
        markdown=args.markdown,
    )
    load_before = os.getloadavg()[0]
    if load_before > 0.5:
        print(f"warning: load average {load_before:.2f} before the run", file=sys.stderr)
    results = run_benchmark(options)
    load = f"{load_before:.2f} before, {os.getloadavg()[0]:.2f} after (1 min)"
    report(results, options, load)
    if options.json_path is not None:
        write_json(options.json_path, results, options)


if __name__ == "__main__":
    main()
