"""``assay ui``: the dashboard on loopback, its pages, live progress and its write defences."""

from __future__ import annotations

import http.client
import json
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from assay.errors import UserInputError
from assay.store.runstore import RunStore
from assay.ui import make_server
from assay.ui.archive import ArchiveBook
from assay.ui.security import Guard, split_host
from assay.ui.server import DashboardServer
from tests.browser import (
    DemoRuns,
    build_demo_runs,
    chromium,
    expect,
    screenshot,
    screenshot_dir,
    watched_page,
)


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> DemoRuns:
    return build_demo_runs(tmp_path_factory.mktemp("ui-store"))


def serving(server: DashboardServer) -> Iterator[DashboardServer]:
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


@pytest.fixture(scope="module")
def ui(runs: DemoRuns) -> Iterator[DashboardServer]:
    """Read-only, as ``assay ui`` starts by default."""
    yield from serving(make_server(runs.store_dir, port=0))


@pytest.fixture(scope="module")
def writable(runs: DemoRuns) -> Iterator[DashboardServer]:
    yield from serving(make_server(runs.store_dir, port=0, allow_writes=True))


def request(
    server: DashboardServer, method: str, path: str, body: bytes | None = None, **headers: str
) -> tuple[int, dict[str, str], bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", server.server_address[1], timeout=10)
    conn.putrequest(method, path, skip_host="Host" in headers)
    for name, value in {**headers, "Content-Length": str(len(body or b""))}.items():
        conn.putheader(name.replace("_", "-"), value)
    conn.endheaders(body)
    response = conn.getresponse()
    out = response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
    conn.close()
    return out


def get_json(server: DashboardServer, path: str) -> Any:
    status, headers, body = request(server, "GET", path)
    assert status == 200 and headers["content-type"] == "application/json", body
    return json.loads(body)


def store_snapshot(runs: DemoRuns) -> str:
    store = RunStore.open(runs.store_dir)
    try:
        listing = [r.model_dump() for r in store.list_runs(500)]
        results = {r["id"]: len(store.results(r["id"])) for r in listing}
        return json.dumps([listing, results], sort_keys=True, default=str)
    finally:
        store.close()


# --- host and origin rules -------------------------------------------------------------------


def test_split_host() -> None:
    assert split_host("127.0.0.1:8765") == ("127.0.0.1", 8765)
    assert split_host("[::1]:80") == ("::1", 80)
    assert split_host("LOCALHOST:1") == ("localhost", 1)
    assert split_host("example.com") == ("example.com", None)


def test_host_check_refuses_rebound_names() -> None:
    guard = Guard(port=8765)
    for good in ("127.0.0.1:8765", "localhost:8765", "[::1]:8765", "10.0.0.5:8765"):
        assert guard.host_ok(good), good
    for bad in ("evil.example:8765", "127.0.0.1:80", "127.0.0.1", "", None, "localhost.evil:8765"):
        assert not guard.host_ok(bad), bad


def test_write_rules() -> None:
    guard = Guard(port=1)
    ok = {
        "host": "127.0.0.1:1",
        "origin": "http://127.0.0.1:1",
        "content-type": "application/json",
        "x-assay-token": guard.token,
    }
    assert guard.write_refusal(ok) is None
    for change in (
        {"origin": "http://127.0.0.1:2"},
        {"origin": "null"},
        {"content-type": "application/x-www-form-urlencoded"},
        {"content-type": "text/plain"},
        {"x-assay-token": "guess"},
        {"sec-fetch-site": "cross-site"},
    ):
        assert guard.write_refusal({**ok, **change}) is not None, change
    for missing in ("origin", "x-assay-token", "content-type"):
        assert guard.write_refusal({k: v for k, v in ok.items() if k != missing}) is not None


# --- pages and endpoints ---------------------------------------------------------------------


def test_pages_load(ui: DashboardServer, runs: DemoRuns) -> None:
    for path in (
        "/",
        "/?archived=1",
        f"/runs/{runs.bench}",
        f"/runs/{runs.optimize}",
        f"/runs/{runs.running}",
        f"/compare?a={runs.bench}&b={runs.judged}&va=acc60&vb=acc90",
    ):
        status, headers, body = request(ui, "GET", path)
        assert status == 200, path
        assert headers["content-type"].startswith("text/html")
        assert "frame-ancestors 'none'" in headers["content-security-policy"]
        assert b'<meta name="assay-token"' not in body  # read-only pages carry no token
    status, _, _ = request(ui, "GET", "/runs/nope")
    assert status == 404


def test_run_page_has_the_report_numbers(ui: DashboardServer, runs: DemoRuns) -> None:
    from assay.analysis.run_analysis import analyse

    body = request(ui, "GET", f"/runs/{runs.bench}")[2].decode()
    variants = analyse(RunStore.open(runs.store_dir), runs.bench).variants
    assert len(variants) == 4
    for v in variants:
        assert v.score is not None and v.score.mean is not None
        shown = f'data-metric="score"><strong>{v.score.mean:.3f}</strong>'
        assert f'data-variant="{v.variant}"' in body and shown in body, v.variant


def test_progress_endpoint(ui: DashboardServer, runs: DemoRuns) -> None:
    live = get_json(ui, f"/api/runs/{runs.running}/progress")
    assert live["status"] == "running" and (live["done"], live["planned"]) == (13, 40)
    assert live["variants"] == [
        {"key": "acc90", "done": 8, "planned": 20},
        {"key": "acc60", "done": 5, "planned": 20},
    ]
    done = get_json(ui, f"/api/runs/{runs.bench}/progress")
    assert done["status"] == "complete" and done["done"] == done["planned"] == 80


def test_json_endpoints(ui: DashboardServer, runs: DemoRuns) -> None:
    listing = get_json(ui, "/api/runs")
    assert {r["id"] for r in listing} >= {runs.bench, runs.judged, runs.optimize, runs.running}
    report = get_json(ui, f"/api/runs/{runs.bench}/report")
    assert report["schema"] == "assay.run/v1" and len(report["variants"]) == 4
    assert get_json(ui, f"/api/runs/{runs.optimize}")["kind"] == "optimize"


def test_no_cors_headers_anywhere(
    ui: DashboardServer, writable: DashboardServer, runs: DemoRuns
) -> None:
    for server in (ui, writable):
        for method, path in (
            ("GET", "/"),
            ("GET", "/api/runs"),
            ("GET", f"/api/runs/{runs.bench}/progress"),
            ("GET", "/missing"),
            ("OPTIONS", f"/api/runs/{runs.bench}/archive"),
            ("POST", f"/api/runs/{runs.bench}/archive"),
        ):
            status, headers, _ = request(server, method, path, Origin="http://evil.example")
            assert not [h for h in headers if h.startswith("access-control-")], (method, path)
            if method != "GET":
                assert status == 403


def test_rebound_host_is_refused(ui: DashboardServer) -> None:
    port = ui.server_address[1]
    assert request(ui, "GET", "/api/runs", Host=f"attacker.example:{port}")[0] == 403
    assert request(ui, "GET", "/api/runs", Host=f"localhost:{port}")[0] == 200


def good_write_headers(server: DashboardServer) -> dict[str, str]:
    origin = f"127.0.0.1:{server.server_address[1]}"
    return {
        "Origin": f"http://{origin}",
        "Content_Type": "application/json",
        "X_Assay_Token": server.guard.token,
    }


def test_read_only_dashboard_refuses_every_write(ui: DashboardServer, runs: DemoRuns) -> None:
    before = store_snapshot(runs)
    path = f"/api/runs/{runs.bench}/archive"
    status, _, body = request(ui, "POST", path, b'{"archived": true}', **good_write_headers(ui))
    assert status == 403 and b"read-only" in body
    assert not (runs.store_dir / "ui.sqlite").exists()
    assert store_snapshot(runs) == before


def test_writes_need_token_origin_and_json(writable: DashboardServer, runs: DemoRuns) -> None:
    before = store_snapshot(runs)
    path, body = f"/api/runs/{runs.bench}/archive", b'{"archived": true}'
    good = good_write_headers(writable)
    for change in (
        {"X_Assay_Token": "wrong"},
        {"Origin": "http://evil.example"},
        {"Content_Type": "application/x-www-form-urlencoded"},
        {"Content_Type": "text/plain"},
        {"Sec_Fetch_Site": "cross-site"},
    ):
        assert request(writable, "POST", path, body, **{**good, **change})[0] == 403, change
    assert ArchiveBook(runs.store_dir).archived() == set()
    status, _, answer = request(writable, "POST", path, body, **good)
    assert status == 200, answer
    assert ArchiveBook(runs.store_dir).archived() == {runs.bench}
    assert request(writable, "POST", path, b'{"archived": false}', **good)[0] == 200
    assert request(writable, "POST", path, b'{"archived": "yes"}', **good)[0] == 400
    assert ArchiveBook(runs.store_dir).archived() == set()
    assert store_snapshot(runs) == before  # the run store itself is never written


def test_make_server_errors(tmp_path: Path, ui: DashboardServer, runs: DemoRuns) -> None:
    with pytest.raises(UserInputError, match="No run store"):
        make_server(tmp_path / "none", port=0)
    with pytest.raises(UserInputError, match="in use"):
        make_server(runs.store_dir, port=ui.server_address[1])


UI_SCRIPT = """
import sys, typer
from assay.cli import report_cmds
app = typer.Typer()
app.callback()(lambda: None)
report_cmds.register(app)
app(sys.argv[1:])
"""


def test_ui_command_prints_its_url_and_stops_on_ctrl_c(runs: DemoRuns) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-c", UI_SCRIPT, "ui", "--port", "0", "--store", str(runs.store_dir)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert line.startswith("Assay dashboard at http://127.0.0.1:") and "read-only" in line
        url = line.split(" at ")[1].split()[0]
        port = int(url.rsplit(":", 1)[1].strip("/"))
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
        conn.request("GET", "/api/runs")
        assert conn.getresponse().status == 200
        conn.close()
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=10)
    finally:
        proc.kill()
    assert proc.returncode == 0, err
    assert "Stopped." in out


# --- in a real browser -----------------------------------------------------------------------


@pytest.fixture(scope="module")
def browser() -> Any:
    with chromium() as context:
        yield context


def watch_cors(page: Any) -> list[str]:
    """URLs of responses that carried any Access-Control-* header."""
    seen: list[str] = []
    page.on(
        "response",
        lambda r: (
            seen.append(r.url) if any(h.startswith("access-control-") for h in r.headers) else None
        ),
    )
    return seen


@pytest.mark.browser
def test_dashboard_pages_in_a_browser(browser: Any, ui: DashboardServer, runs: DemoRuns) -> None:
    w = watched_page(browser)
    cors = watch_cors(w.page)
    w.page.goto(ui.url)
    rows = w.page.locator("table.runs tbody tr")
    assert rows.count() >= 5
    assert w.page.locator(f'tr[data-run="{runs.running}"] .progress-label').inner_text(timeout=5000)
    expect(w.page.locator(f'[data-run="{runs.running}"] .progress-label')).to_contain_text(
        "13 / 40"
    )
    w.page.goto(ui.url + f"runs/{runs.bench}")
    assert w.page.locator("table.models tr[data-variant]").count() == 4
    w.page.locator('button[data-filter="failures"]').click()
    assert w.page.locator("article.sample").count() > 0
    w.page.goto(ui.url + f"runs/{runs.optimize}")
    assert w.page.locator(".iteration").count() == 3
    w.page.goto(ui.url + f"compare?a={runs.bench}&b={runs.judged}&va=acc60&vb=acc90")
    assert "paired samples" in w.page.locator('[data-part="comparison"]').inner_text()
    assert w.page.evaluate("window.__xss") is None
    assert w.problems == [] and cors == []
    w.page.close()


@pytest.mark.browser
def test_live_progress_updates_then_reloads(
    browser: Any, ui: DashboardServer, runs: DemoRuns
) -> None:
    store = RunStore.open(runs.store_dir)
    template = store.get_run(runs.running)
    run_id = store.create_run(template.config)
    results = store.results(runs.bench)
    acc90 = [r for r in results if r.variant == "acc90"]
    for r in acc90[:2]:  # (one scored result alone crashes analyse(): analysis/compare.py)
        store.save_result(r.model_copy(update={"run_id": run_id}))
    w = watched_page(browser)
    w.page.goto(ui.url + f"runs/{run_id}")
    label = w.page.locator('[data-part="live"] .progress-label')
    expect(w.page.locator("[data-part=live] .progress-label")).to_contain_text("2 / 40 ")
    for r in acc90[2:5]:
        store.save_result(r.model_copy(update={"run_id": run_id}))
    expect(w.page.locator("[data-part=live] .progress-label")).to_contain_text(
        "5 / 40 ", timeout=6000
    )
    assert "acc90: 5 / 20" in w.page.locator(".progress-variants").inner_text()
    store.set_status(run_id, "stopped")
    w.page.wait_for_selector('[data-part="live"]', state="detached", timeout=6000)
    assert "stopped" in w.page.locator("p.sub").first.inner_text()
    assert w.problems == [] and label.count() == 0
    w.page.close()


ATTACK_PAGE = """<!doctype html><html><body>
<iframe name="sink"></iframe>
<form id="f1" method="POST" action="{target}" target="sink">
<input name="archived" value="true"></form>
<form id="f2" method="POST" action="{target}" target="sink" enctype="text/plain">
<input name='{{"archived": true, "x": "' value='"}}'></form>
<script>
window.results = [];
const target = "{target}";
const body = JSON.stringify({{archived: true}});
const json = {{"Content-Type": "application/json"}};
const token = {{"X-Assay-Token": "{token}"}};
const tries = [
  () => fetch(target, {{method: "POST", headers: {{...json, ...token}}, body}}),
  () => fetch(target, {{method: "POST", mode: "no-cors", body}}),
  () => fetch(target, {{method: "POST", mode: "no-cors", headers: token, body}}),
  () => fetch(target, {{method: "POST", credentials: "include", headers: json, body}}),
];
(async () => {{
  for (const t of tries) {{
    try {{ const r = await t(); window.results.push(r.type + ":" + r.status); }}
    catch (e) {{ window.results.push("blocked"); }}
  }}
  document.getElementById("f1").submit();
  setTimeout(() => {{ document.getElementById("f2").submit(); window.done = true; }}, 300);
}})();
</script></body></html>"""


@pytest.fixture
def attacker(tmp_path: Path, writable: DashboardServer, runs: DemoRuns) -> Iterator[str]:
    """Another origin on loopback serving a page that knows the token and tries to write."""
    target = writable.url + f"api/runs/{runs.bench}/archive"
    (tmp_path / "attack.html").write_text(
        ATTACK_PAGE.format(target=target, token=writable.guard.token)
    )

    class Quiet(SimpleHTTPRequestHandler):
        def __init__(self, *args: Any, **kw: Any) -> None:
            super().__init__(*args, directory=str(tmp_path), **kw)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Quiet)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/attack.html"
    server.shutdown()
    server.server_close()


@pytest.mark.browser
def test_another_origin_cannot_change_anything(
    browser: Any, writable: DashboardServer, runs: DemoRuns, attacker: str
) -> None:
    before = store_snapshot(runs)
    writable.request_log.clear()
    page = browser.new_page()
    page.goto(attacker)
    page.wait_for_function("window.done === true", timeout=10000)
    deadline = time.time() + 5
    while time.time() < deadline and sum(m == "POST" for m, _, _ in writable.request_log) < 4:
        time.sleep(0.1)
    posts = [status for method, _, status in writable.request_log if method == "POST"]
    preflights = [status for method, _, status in writable.request_log if method == "OPTIONS"]
    assert page.evaluate("window.results")[0] == "blocked"  # its preflight was refused
    assert len(posts) >= 4 and set(posts) == {403}, writable.request_log
    assert preflights and set(preflights) == {403}
    assert ArchiveBook(runs.store_dir).archived() == set()
    assert store_snapshot(runs) == before
    page.close()


@pytest.mark.browser
def test_the_dashboard_itself_can_archive(
    browser: Any, writable: DashboardServer, runs: DemoRuns
) -> None:
    w = watched_page(browser)
    w.page.goto(writable.url + f"runs/{runs.judged}")
    w.page.locator("button[data-archive-url]").click()
    w.page.wait_for_selector('button[data-archived="true"]')
    assert ArchiveBook(runs.store_dir).archived() == {runs.judged}
    w.page.goto(writable.url)
    assert w.page.locator(f'tr[data-run="{runs.judged}"]').count() == 0  # hidden by default
    w.page.goto(writable.url + f"runs/{runs.judged}")
    w.page.locator("button[data-archive-url]").click()
    w.page.wait_for_selector('button[data-archived="false"]')
    assert ArchiveBook(runs.store_dir).archived() == set()
    assert w.problems == []
    w.page.close()


@pytest.fixture(scope="module")
def screenshots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return screenshot_dir(tmp_path_factory)


@pytest.mark.browser
def test_dashboard_screenshots(
    browser: Any, ui: DashboardServer, runs: DemoRuns, screenshots: Path
) -> None:
    w = watched_page(browser, 1280, 800)
    w.page.goto(ui.url)
    labels = w.page.locator(".progress-label")
    labels.first.wait_for(timeout=5000)  # the running run's row shows one
    assert labels.count() > 0
    for label in labels.all():
        expect(label).to_contain_text(" / ")
    page_boxes = ["header.topbar", "main"]
    shots = [screenshot(w.page, "dashboard-runs", into=screenshots, selectors=page_boxes)]
    w.page.goto(ui.url + f"runs/{runs.running}")
    expect(w.page.locator("[data-part=live] .progress-label")).to_contain_text(" / ")
    shots.append(screenshot(w.page, "dashboard-run", into=screenshots, clip_bottom=1000))
    w.page.goto(ui.url + f"compare?a={runs.bench}&b={runs.judged}&va=acc60&vb=acc90")
    shots.append(screenshot(w.page, "dashboard-compare", into=screenshots, selectors=page_boxes))
    assert all(p.stat().st_size > 10_000 for p in shots)
    assert w.problems == []
    w.page.close()
