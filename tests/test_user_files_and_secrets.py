"""Nothing the user owns is clobbered, and no secret is stored, printed, rendered or served.

Outputs (``-o``, ``--results-json``, ``report -o``) never overwrite an input or anything in the
run store's folder, and are written atomically; a store on a read-only filesystem is read
read-only. Secrets are redacted by value: the providers' key variables, credentials in a
``--base-url``, header values from a models config, and a key pasted as ``api_key_env``.
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from assay import api
from assay.benchmark.config import RunConfig
from assay.data import demo_path
from assay.errors import UserInputError
from assay.evaluation.config import ScoringConfig
from assay.records import ModelConfig
from assay.report import write_report
from assay.store.runstore import RunStore
from assay.testing import Action, ChatRequest, ScriptedServer, error, reply
from assay.ui import make_server
from tests.optimize_helpers import small_dataset
from tests.run_helpers import LabelZoo, assay

PROMPT = demo_path("sentiment_prompt.md")
OPENAI_KEY = "sk-assay-TEST-files-3c5e7a9b1d2f4e6a"


@pytest.fixture
def store_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "store"
    monkeypatch.setenv("ASSAY_STORE", str(folder))
    return folder


@pytest.fixture
def zoo() -> Iterator[str]:
    with ScriptedServer(LabelZoo()) as srv:
        yield srv.base_url


def run_args(data: Path, url: str, *extra: str) -> list[str]:
    return ["run", str(data), str(PROMPT), "-m", "compat/acc90", "--base-url", url,
            "--metric", "label", *extra]  # fmt: skip


def one_run(tmp_path: Path, url: str) -> str:
    proc = assay(*run_args(small_dataset(tmp_path / "seed.jsonl", 4), url, "--json"))
    assert proc.returncode == 0, proc.stderr
    return str(json.loads(proc.stdout)["run_id"])


def assert_refused(proc: subprocess.CompletedProcess[str], protected: Path, before: bytes) -> None:
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: Cannot write"), lines
    assert protected.read_bytes() == before


# --------------------------------------------------------------------------- 11: no clobbering


@pytest.mark.parametrize("target", ["data", "prompt", "runs.sqlite", "cache.sqlite", "new.json"])
def test_run_refuses_an_output_that_is_an_input_or_in_the_store(
    tmp_path: Path, store_dir: Path, zoo: str, target: str
) -> None:
    one_run(tmp_path, zoo)  # the store exists, with a run in it
    data = small_dataset(tmp_path / "d.jsonl", 4)
    prompt = tmp_path / "p.md"
    prompt.write_bytes(PROMPT.read_bytes())
    out = {"data": data, "prompt": prompt}.get(target, store_dir / target)
    protected = out if out.exists() else store_dir / "runs.sqlite"
    before = protected.read_bytes()
    proc = assay("run", str(data), str(prompt), "-m", "compat/acc90", "--base-url", zoo,
                 "--metric", "label", "-o", str(out))  # fmt: skip
    assert_refused(proc, protected, before)
    assert target != "new.json" or not out.exists()


@pytest.mark.parametrize("flag", ["-o", "--results-json"])
@pytest.mark.parametrize("target", ["data", "prompt", "runs.sqlite"])
def test_optimize_refuses_an_output_that_is_an_input_or_in_the_store(
    tmp_path: Path, store_dir: Path, zoo: str, flag: str, target: str
) -> None:
    one_run(tmp_path, zoo)
    data = small_dataset(tmp_path / "d.jsonl", 20)
    prompt = tmp_path / "p.md"
    prompt.write_bytes(PROMPT.read_bytes())
    out = {"data": data, "prompt": prompt}.get(target, store_dir / target)
    before = out.read_bytes()
    proc = assay("optimize", str(data), str(prompt), "-m", "compat/acc90", "--base-url", zoo,
                 "--reasoning-model", "compat/r", "--reasoning-base-url", zoo,
                 "--metric", "label", flag, str(out))  # fmt: skip
    assert_refused(proc, out, before)


@pytest.mark.parametrize("name", ["runs.sqlite", "cache.sqlite", "report.html"])
def test_report_refuses_to_write_into_the_store(
    tmp_path: Path, store_dir: Path, zoo: str, name: str
) -> None:
    run_id = one_run(tmp_path, zoo)
    before = (store_dir / "runs.sqlite").read_bytes()
    proc = assay("report", run_id, "-o", str(store_dir / name))
    assert_refused(proc, store_dir / "runs.sqlite", before)
    assert assay("show", run_id).returncode == 0  # every run is still there


# --------------------------------------------------------------------------- 12: atomic writes


def failing_fsync(calls: list[int]) -> Callable[[int], None]:
    def fsync(fd: int) -> None:
        calls.append(fd)
        raise OSError(28, "No space left on device")

    return fsync


def test_a_failed_results_write_keeps_the_old_file_and_no_temp(
    tmp_path: Path, store_dir: Path, zoo: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "results.json"
    out.write_text("the old results\n")
    config = RunConfig(
        data=str(small_dataset(tmp_path / "d.jsonl", 4)),
        prompts=[str(PROMPT)],
        models=[
            ModelConfig(
                spec="compat/acc90",
                provider="compat",
                model="acc90",
                label="compat/acc90",
                base_url=zoo,
            )
        ],
        scoring=ScoringConfig(metrics=["label"]),
    )
    calls: list[int] = []
    monkeypatch.setattr(os, "fsync", failing_fsync(calls))
    with pytest.raises(UserInputError, match=r"Cannot write .*results.json: no space left"):
        api.run(config, output=out)
    assert calls  # the data was flushed to disk before the rename
    assert out.read_text() == "the old results\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["d.jsonl", "results.json", "store"]


def test_a_report_is_written_atomically(
    tmp_path: Path, store_dir: Path, zoo: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    run_id = one_run(tmp_path, zoo)
    out = tmp_path / "out" / "report.html"
    out.parent.mkdir()
    out.write_text("<p>the old report</p>")
    synced: list[int] = []
    real_fsync = os.fsync

    def spy(fd: int) -> None:
        synced.append(fd)
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", spy)
    store = RunStore.open(store_dir, create=False)
    write_report(store, [run_id], out)
    assert synced and out.read_text().startswith("<!doctype html>")
    monkeypatch.setattr(os, "fsync", failing_fsync([]))
    with pytest.raises(UserInputError, match="no space left"):
        write_report(store, [run_id], out)
    assert out.read_text().startswith("<!doctype html>")
    assert [p.name for p in out.parent.iterdir()] == ["report.html"]


@pytest.mark.skipif(not Path("/dev/full").is_char_device(), reason="no /dev/full here")
def test_an_output_on_a_full_device_is_one_clear_line(
    tmp_path: Path, store_dir: Path, zoo: str
) -> None:
    run_id = one_run(tmp_path, zoo)
    data = small_dataset(tmp_path / "d.jsonl", 4)
    for proc in (
        assay(*run_args(data, zoo, "-o", "/dev/full")),
        assay("report", run_id, "-o", "/dev/full"),
    ):
        errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
        assert proc.returncode != 0 and len(errors) == 1, proc.stderr
        assert "Cannot write /dev/full: no space left on the device" in errors[0]
        assert "Unexpected" not in proc.stderr and "Traceback" not in proc.stderr
    assert Path("/dev/full").is_char_device()  # written to, never replaced


# --------------------------------------------------------------------------- 13: read-only store


def test_read_only_commands_open_the_store_read_only(
    tmp_path: Path, store_dir: Path, zoo: str
) -> None:
    run_id = one_run(tmp_path, zoo)
    files = sorted(p for p in store_dir.iterdir() if p.is_file())
    before = {p: (p.read_bytes(), p.stat().st_mtime_ns) for p in files}
    for path in (*files, store_dir):
        path.chmod(0o555 if path.is_dir() else 0o444)
    try:
        for args in (["runs"], ["show", run_id, "--samples"], ["compare", run_id, run_id]):
            proc = assay(*args)
            assert proc.returncode == 0, proc.stderr
        proc = assay("report", run_id, "-o", str(tmp_path / "r.html"))
        assert proc.returncode == 0, proc.stderr
        store = RunStore.open(store_dir, create=False)
        with pytest.raises(sqlite3.OperationalError, match="readonly"):
            store._db.execute("CREATE TABLE intruder (x)")
        assert store.get_run(run_id).id == run_id
        store.close()
        server = make_server(store_dir, port=0)
        with pytest.raises(sqlite3.OperationalError, match="readonly"):
            server.store._db.execute("CREATE TABLE intruder (x)")
        server.server_close()
    finally:
        for path in (store_dir, *files):
            path.chmod(0o755 if path.is_dir() else 0o644)
    assert {p: (p.read_bytes(), p.stat().st_mtime_ns) for p in files} == before
    # SQLite's own WAL index may appear beside it (a reader's, holding no data); nothing else
    made = {p.name for p in store_dir.iterdir()} - {p.name for p in files}
    assert made <= {"runs.sqlite-wal", "runs.sqlite-shm"}
    assert (
        not (store_dir / "runs.sqlite-wal").exists()
        or not (store_dir / "runs.sqlite-wal").stat().st_size
    )


def test_a_read_only_store_that_needs_an_upgrade_says_so(tmp_path: Path, store_dir: Path) -> None:
    store_dir.mkdir()
    db = sqlite3.connect(store_dir / "runs.sqlite")
    db.execute("CREATE TABLE _migrations (name TEXT PRIMARY KEY, applied_at REAL)")
    db.commit()
    db.close()
    before = (store_dir / "runs.sqlite").read_bytes()
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(os, "access", lambda *a, **k: False)  # as on a read-only filesystem
        with pytest.raises(UserInputError, match="needs an upgrade"):
            RunStore.open(store_dir, create=False)
    assert (store_dir / "runs.sqlite").read_bytes() == before


# --------------------------------------------------------------------------- 14: secrets


def store_bytes(store_dir: Path) -> bytes:
    return b"".join(p.read_bytes() for p in sorted(store_dir.iterdir()) if p.is_file())


def assert_nowhere(secret: str, *texts: str | bytes) -> None:
    tail = secret[-12:]
    for text in texts:
        blob = text.encode() if isinstance(text, str) else text
        assert secret.encode() not in blob and tail.encode() not in blob


def test_a_500_echoing_the_key_without_its_prefix_is_redacted(
    tmp_path: Path, store_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", OPENAI_KEY)
    bare = OPENAI_KEY.removeprefix("sk-")

    def echo_500(request: ChatRequest) -> Action:
        return error(500, f"upstream refused credential {bare}", retry_after=0)

    data = small_dataset(tmp_path / "d.jsonl", 3)
    with ScriptedServer(echo_500) as srv:
        proc = assay("run", str(data), str(PROMPT), "-m", "openai/gpt-4o-mini",
                     "--base-url", srv.base_url, "--metric", "label", "--json")  # fmt: skip
    run_id = json.loads(proc.stdout)["run_id"]
    show = assay("show", run_id, "--samples")
    assert "upstream refused credential ***" in show.stdout
    report = assay("report", run_id, "-o", str(tmp_path / "r.html"))
    html = (tmp_path / "r.html").read_text()
    assert "upstream refused credential ***" in html
    assert_nowhere(bare, store_bytes(store_dir), proc.stdout, proc.stderr, show.stdout, html)
    assert_nowhere(bare, show.stderr, report.stdout, report.stderr)


def test_credentials_in_a_base_url_are_refused_without_echoing_them(
    tmp_path: Path, store_dir: Path
) -> None:
    """They could not be sent (the transport refuses them next to the key's header): one line
    before any call, which names the fix and not the password."""
    secret = "url-pass-TEST-8d6b4f2a0c9e7a5b"
    data = small_dataset(tmp_path / "d.jsonl", 3)
    with ScriptedServer(lambda r: reply("positive")) as srv:
        url = srv.base_url.replace("http://", f"http://user:{secret}@")
        proc = assay("run", str(data), str(PROMPT), "-m", "compat/acc90", "--base-url", url,
                     "--metric", "label", "--limit", "1", "--json")  # fmt: skip
        served = srv.count
    assert proc.returncode == 2 and served == 0
    (line,) = proc.stderr.strip().splitlines()
    assert "holds credentials" in line and "api_key_env" in line
    assert not store_dir.exists() or not RunStore.open(store_dir, create=False).list_runs()
    assert_nowhere(secret, proc.stdout, proc.stderr)


def test_a_key_pasted_as_api_key_env_is_not_echoed(tmp_path: Path, store_dir: Path) -> None:
    pasted = "sk-proj-TEST-pasted-5a7c9e1b3d"
    config = tmp_path / "models.yaml"
    config.write_text(f"models:\n  - spec: openai/gpt-4o-mini\n    api_key_env: {pasted}\n")
    data = small_dataset(tmp_path / "d.jsonl", 3)
    proc = assay("run", str(data), str(PROMPT), "--config", str(config), "--metric", "label")
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "api_key_env" in lines[0] and "environment variable" in lines[0]
    assert_nowhere(pasted, proc.stdout, proc.stderr)
    assert not store_dir.exists() or pasted.encode() not in store_bytes(store_dir)


def test_header_values_are_neither_stored_nor_served(tmp_path: Path, store_dir: Path) -> None:
    token = "hdr-token-TEST-1f3e5d7c9b0a2468"
    data = small_dataset(tmp_path / "d.jsonl", 3)
    with ScriptedServer(lambda r: reply("positive")) as srv:
        config = tmp_path / "models.yaml"
        config.write_text(
            "models:\n  - spec: compat/gateway\n"
            f"    base_url: {srv.base_url}\n"
            f"    params:\n      extra_headers:\n        X-Gateway-Token: {token}\n"
        )
        proc = assay("run", str(data), str(PROMPT), "--config", str(config),
                     "--metric", "label", "--json")  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    run_id = json.loads(proc.stdout)["run_id"]
    served = dashboard_json(store_dir, f"/api/runs/{run_id}")
    assert "X-Gateway-Token" in served and "***" in served
    assert_nowhere(token, store_bytes(store_dir), proc.stdout, proc.stderr, served)


def dashboard_json(store_dir: Path, path: str) -> str:
    import http.client

    server = make_server(store_dir, port=0)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        conn = http.client.HTTPConnection("127.0.0.1", server.server_address[1], timeout=10)
        conn.request("GET", path)
        response = conn.getresponse()
        body = response.read().decode()
        conn.close()
        assert response.status == 200, body
        return body
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def test_the_dashboard_redacts_what_it_serves(
    tmp_path: Path, store_dir: Path, zoo: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A store written before redaction (or by another process) still serves no known key."""
    run_id = one_run(tmp_path, zoo)
    secret = "sk-late-TEST-0e2c4a6b8d1f3579"
    db = sqlite3.connect(store_dir / "runs.sqlite")
    db.execute(
        "UPDATE runs SET config = replace(config, '//127.0.0.1', ?)", (f"//u:{secret}@127.0.0.1",)
    )
    db.commit()
    db.close()
    monkeypatch.setenv("OPENAI_API_KEY", secret)
    served = dashboard_json(store_dir, f"/api/runs/{run_id}")
    assert "u:***@127.0.0.1" in served
    assert_nowhere(secret, served)
