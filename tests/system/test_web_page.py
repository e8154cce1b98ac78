"""The operator web page in a real browser: Debian's chromium, driven by Playwright, against a daemon on
the emulator. Screenshots of the main views are saved in each test's temporary folder.

Playwright rather than Selenium: one pip package that drives the chromium binary directly (no
driver whose version must match the browser), and its waits (``expect``) poll a condition with a
timeout, so no test sleeps.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from daemon.cli.web_server import WebServer
from daemon.emulator import EmulatorServer, EmulatorSettings
from daemon.state.states import PACK_KIND, JobState
from tests.support import (
    TEST_KEY,
    Harness,
    daemon_env,
    drop_before_start,
    fast_settings,
    job_states,
    request_file,
    spawn_daemon,
    wait_until,
)

playwright_api = pytest.importorskip("playwright.sync_api")
Page = Any
CHROMIUM = os.environ.get("BATCHD_TEST_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
WEBHOOK_SECRET = "whsec_" + "c2VjcmV0LXdlYmhvb2stc2lnbmluZy1rZXk="  # base64 of a made-up key
WEB_TOKEN = "operator-token-7c1e2b5d"
NOTIFY_SECRET = "notify-secret-93b1f0aa"
HOSTILE = "<img src=x onerror=alert(1)>.jsonl"
QUOTED = "a\"b'c&amp;d&lt; <b>bold.jsonl"  # no slash: a file name cannot hold one
LOOK = 15_000  # ms: how long a page may take to show a change (the daemon polls every 0.2 s)


def web_port(harness: Harness) -> int:
    assert harness.engine is not None
    return next(e.port for e in harness.engine.endpoints if isinstance(e, WebServer))


@pytest.fixture(name="browser")
def browser_fixture() -> Iterator[Any]:
    if not Path(CHROMIUM).exists():
        if os.environ.get("CI"):
            pytest.fail(f"no chromium at {CHROMIUM}: .ci/run installs Debian's chromium")
        pytest.skip("chromium is not installed (Debian: apt-get install chromium)")
    with playwright_api.sync_playwright() as driver:
        browser = driver.chromium.launch(executable_path=CHROMIUM)
        yield browser
        browser.close()


@pytest.fixture(name="slow_emulator")
def slow_emulator_fixture(tmp_path: Path) -> Iterator[EmulatorServer]:
    """Batches in progress for a few seconds, so a page sees them move."""
    settings = EmulatorSettings(
        validating_seconds=0.2,
        in_progress_seconds=6.0,  # time enough for a page to load before a batch ends, on a busy machine too
        finalizing_seconds=0.2,
        cancelling_seconds=0.2,
        data_dir=tmp_path / "emulator-data",
    )
    with EmulatorServer(settings) as server:
        yield server


@pytest.fixture(name="web_daemon")
def web_daemon_fixture(tmp_path: Path, slow_emulator: EmulatorServer) -> Iterator[Callable[..., Harness]]:
    made: list[Harness] = []

    def make(files: dict[str, str] | None = None, **changes: Any) -> Harness:
        root = tmp_path / "root"
        root.mkdir(exist_ok=True)
        harness = Harness(fast_settings(root, slow_emulator.base_url, web_port=0, **changes), slow_emulator)
        drop_before_start(harness, files or {})  # claimed in one pass: small ones share a batch
        made.append(harness)
        return harness.start()

    yield make
    for harness in made:
        harness.stop()


def open_page(browser: Any, url: str) -> Page:
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    page.on("dialog", lambda dialog: pytest.fail(f"a script ran on the page: {dialog.message}"))
    page.goto(url)
    return page


def shot(page: Page, tmp_path: Path, name: str) -> Path:
    path = tmp_path / "screenshots" / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


def test_the_job_list_follows_a_job_to_done_without_a_reload(
    web_daemon: Callable[..., Harness], browser: Any, tmp_path: Path
) -> None:
    harness = web_daemon()
    harness.drop("movies.jsonl", request_file(40))
    harness.wait_job("movies.jsonl", JobState.ACTIVE)
    page = open_page(browser, f"http://127.0.0.1:{web_port(harness)}/")
    page.evaluate("window.loadedOnce = 'yes'")  # gone if the page reloads
    row = page.locator("#jobs tr", has_text="movies.jsonl")
    bar = row.locator("svg.bar")
    playwright_api.expect(bar).to_have_attribute("data-total", "40")
    assert int(bar.get_attribute("data-done") or 0) < 40, "the job was already done when the page loaded"
    shot(page, tmp_path, "jobs-running")
    playwright_api.expect(bar).to_have_attribute("data-done", "40", timeout=LOOK)
    playwright_api.expect(row.locator(".state")).to_have_text("done", timeout=LOOK)
    assert page.evaluate("window.loadedOnce") == "yes"
    assert int(page.locator("main").get_attribute("data-updates") or 0) > 0
    playwright_api.expect(page.locator("#daemon")).to_contain_text("up since")
    playwright_api.expect(page.locator("svg.chart")).to_be_visible()
    shot(page, tmp_path, "jobs-done")
    row.locator("a").click()
    playwright_api.expect(page.locator("#job-name")).to_have_text("movies.jsonl")
    playwright_api.expect(page.locator("#batches")).to_contain_text("completed")
    playwright_api.expect(page.locator("#summary")).to_contain_text('"succeeded": 40')
    shot(page, tmp_path, "job-done")


def test_inputs_in_a_shared_batch_show_it_and_the_first_chart_spans_the_work(
    web_daemon: Callable[..., Harness], browser: Any, tmp_path: Path
) -> None:
    names = ["alpha.jsonl", "beta.jsonl", "gamma.jsonl"]
    harness = web_daemon({name: request_file(3, prefix=name[:2]) for name in names})
    for name in names:
        harness.wait_job(name, JobState.DONE)
    assert harness.store is not None
    assert [job.kind for job in harness.store.jobs()].count(PACK_KIND) == 1  # the three rode in one batch
    page = open_page(browser, f"http://127.0.0.1:{web_port(harness)}/")
    for name in names:
        batches = page.locator("#jobs tr", has_text=name).locator(".shared")
        playwright_api.expect(batches).to_have_text("1 (shared)")
        assert batches.get_attribute("data-shared") == "1"
    # The daemon's job counts are the inputs the list shows: batchd's own pack job is not one.
    playwright_api.expect(page.locator('[data-fact="jobs"]')).to_have_text("done 3")
    # Its parts are one batch each: the shared batch counts once, not once per input in it (was 4).
    playwright_api.expect(page.locator('[data-fact="parts (one batch each)"]')).to_have_text("downloaded 1")
    label = page.locator("svg.chart").get_attribute("aria-label") or ""
    assert "per second" in label or "per 5 seconds" in label, label  # seconds of work, not a half-hour axis
    bars = page.eval_on_selector_all("svg.chart rect title", "titles => titles.map(t => t.textContent)")
    assert sum(int(bar.split(": ")[1].split()[0]) for bar in bars) == 9  # the shared batch once, not 4 times
    shot(page, tmp_path, "shared-batch")
    page.locator("#jobs a", has_text="beta.jsonl").click()
    playwright_api.expect(page.locator("#batches")).to_contain_text("shared with other inputs")
    shot(page, tmp_path, "shared-batch-job")


def test_a_name_rebound_to_this_machine_gets_no_page(web_daemon: Callable[..., Harness], browser: Any) -> None:
    """DNS rebinding, as a browser sees it: a site's name resolves to 127.0.0.1 (chromium's resolver
    rule stands in for the attacker's DNS), so the page's port answers a page of that site."""
    harness = web_daemon({"x.jsonl": request_file(2)})
    port = web_port(harness)
    rebound = browser.browser_type.launch(
        executable_path=CHROMIUM, args=["--host-resolver-rules=MAP rebound.example 127.0.0.1"]
    )
    try:
        page = open_page(rebound, f"http://rebound.example:{port}/")
        assert "x.jsonl" not in page.content()
        reply = page.goto(f"http://rebound.example:{port}/?fragment=1")
        assert reply is not None and reply.status == 421
        assert page.locator("body").inner_text().startswith("This page answers only to its own address")
        assert open_page(rebound, f"http://127.0.0.1:{port}/").locator("#daemon").count() == 1
    finally:
        rebound.close()


def test_a_failed_input_shows_its_report_and_goes_again_once_fixed(
    web_daemon: Callable[..., Harness], browser: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BATCHD_WEB_TOKEN", WEB_TOKEN)
    harness = web_daemon()
    harness.drop("broken.jsonl", request_file(2) + '{"custom_id": "x"}\nnot json\n')
    job = harness.wait_job("broken.jsonl", JobState.REJECTED)
    page = open_page(browser, f"http://127.0.0.1:{web_port(harness)}/?state=rejected")
    page.locator("#jobs a", has_text="broken.jsonl").click()
    report = page.locator("#report")
    playwright_api.expect(report).to_contain_text("line 3")
    playwright_api.expect(report).to_contain_text("line 4")
    assert page.url.endswith(f"/jobs/{job.id}")
    shot(page, tmp_path, "job-rejected")
    assert job.final_path is not None
    Path(job.final_path).write_text(request_file(4))  # the operator fixes the input in failed/
    page.locator("#login-link").click()
    page.fill("input[name=token]", WEB_TOKEN)
    page.click("button[type=submit]")
    page.click("#actions button[value=retry]")
    row = page.locator("#commands tr", has_text="retry")
    playwright_api.expect(row.locator(".command-state")).to_have_text("done", timeout=LOOK)
    again = wait_until(lambda: harness.job("broken.jsonl") if harness.job("broken.jsonl") != job else None)
    assert harness.wait_job("broken.jsonl", JobState.DONE).id == again.id != job.id


def test_hostile_names_are_shown_as_text_and_no_secret_is_on_any_page(
    web_daemon: Callable[..., Harness], browser: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENAI_WEBHOOK_SECRET", WEBHOOK_SECRET)
    monkeypatch.setenv("BATCHD_NOTIFY_SECRET", NOTIFY_SECRET)
    monkeypatch.setenv("BATCHD_WEB_TOKEN", WEB_TOKEN)
    harness = web_daemon(webhook_port=0)
    harness.drop(HOSTILE, request_file(3))
    harness.drop(QUOTED, "not json\n")
    harness.wait_job(HOSTILE, JobState.DONE)
    harness.wait_job(QUOTED, JobState.REJECTED)
    base = f"http://127.0.0.1:{web_port(harness)}"
    page = open_page(browser, f"{base}/")
    playwright_api.expect(page.locator("#jobs a", has_text=HOSTILE)).to_have_count(1)
    playwright_api.expect(page.locator("#jobs a", has_text=QUOTED)).to_have_count(1)
    assert page.locator("#jobs img").count() == 0 and page.locator("#jobs b").count() == 0
    shot(page, tmp_path, "hostile-names")
    page.fill("input[name=q]", "onerror")  # the filter: searched by name, without a script
    page.click("form.filter button")
    playwright_api.expect(page.locator("#jobs tbody tr")).to_have_count(1)
    playwright_api.expect(page.locator("#jobs a")).to_have_text(HOSTILE)
    page.select_option("select[name=state]", "rejected")
    page.fill("input[name=q]", "")
    page.click("form.filter button")
    playwright_api.expect(page.locator("#jobs a")).to_have_text(QUOTED)
    urls = [f"{base}/", f"{base}/?fragment=1", f"{base}/login"]
    urls += [f"{base}/jobs/{job.id}" for job in harness.store.jobs()] if harness.store else []
    for url in urls:
        page.goto(url)
        playwright_api.expect(page.locator("img")).to_have_count(0)
        text = page.content()
        for secret in (TEST_KEY, WEBHOOK_SECRET, WEB_TOKEN, NOTIFY_SECRET, WEBHOOK_SECRET.removeprefix("whsec_")):
            assert secret not in text, f"{url} shows a secret"
    with urllib.request.urlopen(f"{base}/") as reply:
        policy = reply.headers["Content-Security-Policy"]
    assert "default-src 'none'" in policy and "script-src 'nonce-" in policy and "unsafe-inline" not in policy


def test_cancel_through_the_button_needs_the_token(
    web_daemon: Callable[..., Harness],
    slow_emulator: EmulatorServer,
    browser: Any,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("BATCHD_WEB_TOKEN", WEB_TOKEN)
    slow_emulator.mishaps.never_end_next(1)  # in progress until cancelled
    harness = web_daemon()
    harness.drop("endless.jsonl", request_file(10))
    job = harness.wait_job("endless.jsonl", JobState.ACTIVE)
    wait_until(lambda: any(p.batch_id for p in harness.store.parts(job.id)) if harness.store else None)
    job_url = f"http://127.0.0.1:{web_port(harness)}/jobs/{job.id}"
    page = open_page(browser, job_url)
    playwright_api.expect(page.locator("#login-link")).to_be_visible()
    assert page.locator("#actions button").count() == 0
    # Without a session, a forged form (even with a guessed CSRF field) and a wrong token are refused.
    forged = page.request.post(f"{job_url}/cancel", form={"csrf": "guess"}, max_redirects=0)
    assert forged.status == 403 and "Log in with the web token" in forged.text()
    page.locator("#login-link").click()
    page.fill("input[name=token]", "not-the-token")
    page.click("button[type=submit]")
    playwright_api.expect(page.locator("#login-problem")).to_have_text("That is not the web token.")
    shot(page, tmp_path, "login-refused")
    assert harness.store is not None and not harness.store.job(job.id).cancel_requested
    assert harness.store.recent_commands() == []
    # With the token: logged in, back on the job's page, its cancel button goes through the daemon.
    page.fill("input[name=token]", WEB_TOKEN)
    page.click("button[type=submit]")
    playwright_api.expect(page).to_have_url(job_url)
    cookie = next(c for c in page.context.cookies() if c["name"] == "batchd_session")
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict"
    shot(page, tmp_path, "job-with-buttons")
    page.click("#actions button[value=cancel]")
    playwright_api.expect(page.locator("#asked")).to_be_visible()
    row = page.locator("#commands tr", has_text="cancel")
    playwright_api.expect(row.locator(".command-state")).to_have_text("done", timeout=LOOK)
    playwright_api.expect(page.locator("#job-state")).to_have_text("done", timeout=LOOK)
    playwright_api.expect(page.locator("#actions button[value=cancel]")).to_have_count(0)  # live, no reload
    assert harness.store.job(job.id).cancel_requested
    assert "web page (127.0.0.1)" in harness.store.recent_commands()[0].requested_by
    shot(page, tmp_path, "job-cancelled")
    # The CSRF token is the session's: the same session without it is refused.
    stale = page.request.post(f"{job_url}/retry_failed", form={"csrf": "stale"}, max_redirects=0)
    assert stale.status == 403 and len(harness.store.recent_commands()) == 1


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def page_text(url: str) -> str:
    try:
        with urllib.request.urlopen(url, timeout=2) as reply:
            return str(reply.read().decode())
    except OSError:
        return ""


def test_batchd_run_serves_the_page_on_web_port(tmp_path: Path, slow_emulator: EmulatorServer, browser: Any) -> None:
    """`batchd run` as a user starts it: the page is on BATCHD_WEB_PORT, on loopback."""
    root, port = tmp_path / "root", free_port()
    (root / "pending_upload").mkdir(parents=True)
    (root / "pending_upload" / "x.jsonl").write_text(request_file(3))
    env = daemon_env(slow_emulator.base_url, BATCHD_WEB_PORT=str(port), BATCHD_WEB_TOKEN=WEB_TOKEN)
    proc = spawn_daemon(root, env, tmp_path / "daemon.log")
    try:
        wait_until(lambda: ("x.jsonl", "done") in job_states(root), timeout=30, what="the file to be done")
        page = open_page(browser, f"http://127.0.0.1:{port}/")
        playwright_api.expect(page.locator("#jobs tr", has_text="x.jsonl").locator(".state")).to_have_text("done")
        playwright_api.expect(page.locator("header")).to_contain_text("log in to act")
        assert WEB_TOKEN not in page.content()
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 0
    assert page_text(f"http://127.0.0.1:{port}/") == ""  # the port is closed with the daemon


def test_in_emulator_mode_the_daemon_panel_names_the_emulators_in_use(tmp_path: Path, browser: Any) -> None:
    """`batchd run --emulator` with the demo's config (as `make demo`): the panel shows the local
    emulator each profile talks to, not the configured URLs the daemon does not use."""
    root, port = tmp_path / "root", free_port()
    root.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "BATCHD_"))}
    env.update(BATCHD_WEB_PORT=str(port), BATCHD_LOG_FORMAT="json", PYTHONUNBUFFERED="1")
    demo = Path(__file__).parents[2] / "config" / "demo.toml"
    command = [sys.executable, "-m", "daemon", "run", "--emulator", "--root", str(root), "--config", str(demo)]
    with open(tmp_path / "daemon.log", "ab") as log:
        proc = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        wait_until(lambda: "Daemon" in page_text(f"http://127.0.0.1:{port}/"), timeout=30, what="the page")
        page = open_page(browser, f"http://127.0.0.1:{port}/")
        profiles = page.locator('[data-fact="profiles"]')
        playwright_api.expect(profiles).to_contain_text("built-in emulator", timeout=LOOK)
        shown = profiles.inner_text()
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 0
    assert "my-resource.openai.azure.com" not in shown and "api.openai.com" not in shown, shown
    assert shown.count("http://127.0.0.1:") == 2 and shown.count("built-in emulator") == 2, shown
