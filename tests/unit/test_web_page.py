"""The web page without a browser: its settings, its token and sessions, its escaping, and its
answers to requests that must be refused (tests/system/test_web_page.py drives it in chromium)."""

from __future__ import annotations

import http.client
import json
from collections.abc import Iterator
from email.message import Message
from pathlib import Path
from typing import Any

import pytest

from daemon.cli.job_progress import Split
from daemon.cli.main import build_parser, settings_from
from daemon.cli.status import job_rows, render_table
from daemon.cli.web_access import FAILED_LOGINS, Sessions, csrf_matches, set_cookie
from daemon.cli.web_chart import HEIGHT, LEFT, MIN_BARS, Ended, chart
from daemon.cli.web_facts import (
    DaemonFacts,
    JobList,
    daemon_facts,
    ended_batches,
    job_detail,
    job_list,
    split,
)
from daemon.cli.web_layout import when
from daemon.cli.web_server import WebPage, WebServer, _safe_next
from daemon.cli.web_views import daemon_panel, job_fragment, jobs_table, progress_bar
from daemon.config import Settings, load_settings
from daemon.errors import ConfigError
from daemon.http_messages import Request
from daemon.service.credentials import KeySource, find_web_token
from daemon.state import folders
from daemon.state.rows import Job, Part
from daemon.state.states import PACK_KIND, JobState, PartState
from daemon.state.store import Store

HOSTILE = "<img src=x onerror=alert(1)>\"'&amp;.jsonl"
TOKEN = "right-token"


@pytest.mark.parametrize(
    ("environ", "message"),
    [
        ({"BATCHD_WEB_PORT": "70000"}, "web_port must be between 1 and 65535"),
        ({"BATCHD_WEB_ADDRESS": "localhost"}, "web_address must be an IP address"),
        ({"BATCHD_WEB_PORT": "9464", "BATCHD_METRICS_PORT": "9464"}, "metrics_port and web_port must differ"),
        ({"BATCHD_WEB_PORT": "8787", "BATCHD_WEBHOOK_PORT": "8787"}, "webhook_port and web_port must differ"),
    ],
)
def test_bad_web_settings_are_refused(environ: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_settings(environ=environ)


def test_web_settings_load_and_the_token_is_not_one(tmp_path: Path) -> None:
    settings = load_settings(environ={"BATCHD_WEB_PORT": "8080", "BATCHD_WEB_TOKEN": TOKEN})
    assert (settings.web_port, settings.web_address) == (8080, "127.0.0.1")
    assert load_settings(environ={}).web_port is None
    config = tmp_path / "batchd.toml"
    config.write_text('web_token = "abc"\n')
    with pytest.raises(ConfigError, match="web_token must not be in the config file"):
        load_settings(config, environ={})
    args = build_parser().parse_args(["run", "--web-port", "8099", "--root", str(tmp_path)])
    assert settings_from(args).web_port == 8099


def test_the_token_is_read_like_the_other_secrets(tmp_path: Path) -> None:
    token_file = tmp_path / "token"
    token_file.write_text(f"{TOKEN}\n")
    assert find_web_token({}) is None
    found = find_web_token({"BATCHD_WEB_TOKEN_FILE": str(token_file), "BATCHD_WEB_TOKEN": "other"})
    assert found is not None and found.read() == TOKEN and TOKEN not in repr(found)
    credentials = tmp_path / "creds"
    credentials.mkdir()
    (credentials / "batchd-web-token").write_text("from-systemd")
    found = find_web_token({"CREDENTIALS_DIRECTORY": str(credentials), "BATCHD_WEB_TOKEN": "other"})
    assert found is not None and found.read() == "from-systemd"


def test_sessions_need_the_token_and_guessing_is_limited() -> None:
    assert not Sessions(None).enabled and Sessions(None).login(TOKEN) is None
    sessions = Sessions(KeySource("test", value=TOKEN))
    assert sessions.login("") is None and sessions.login("wrong") is None
    session = sessions.login(TOKEN)
    assert session is not None
    assert sessions.find(f"other=1; batchd_session={session.id}") == session
    assert sessions.find("batchd_session=made-up") is None and sessions.find(None) is None
    assert csrf_matches(session, session.csrf) and not csrf_matches(session, "") and not csrf_matches(session, "x")
    cookie = set_cookie(session)[1]
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and "Path=/" in cookie
    for _ in range(FAILED_LOGINS):
        sessions.login("wrong")
    assert sessions.locked_out() and sessions.login(TOKEN) is None  # even the right one, for a minute
    sessions.end(session)
    assert sessions.find(f"batchd_session={session.id}") is None


def test_names_are_escaped_in_the_job_list() -> None:
    row: dict[str, Any] = {
        "job_id": 'j1"><script>',
        "file": HOSTILE,
        "state": "active",
        "pack": None,
        "profile": "default",
        "batches": [],
        "usage": None,
        "estimated_cost_usd": None,
        "age_seconds": 5.0,
        "why": "last error: <b>boom</b> & more",
        "split": Split(3, 1, 0, 10),
    }
    html = jobs_table(JobList([row], 1, 1), 0.0)
    assert "<img" not in html and "<script>" not in html and "<b>" not in html
    assert "&lt;img src=x onerror=alert(1)&gt;&quot;&#x27;&amp;amp;.jsonl" in html
    assert "&lt;b&gt;boom&lt;/b&gt; &amp; more" in html
    assert 'href="/jobs/j1%22%3E%3Cscript%3E"' in html


def test_the_progress_bar_shows_each_outcome_in_its_share() -> None:
    bar = progress_bar(Split(succeeded=5, failed=3, not_run=2, total=20))
    assert 'class="ok" x="0.0" width="250.0"' in bar
    assert 'class="bad" x="250.0" width="150.0"' in bar
    assert 'class="skip" x="400.0" width="100.0"' in bar
    assert 'data-done="8" data-total="20"' in bar  # done: the requests that ran; not run shown apart


def test_the_chart_counts_requests_per_bucket_and_the_cost_so_far() -> None:
    now = 1_700_000_000.0
    svg = chart([Ended(now - 30, 7, 0.5), Ended(now - 20, 3, None), Ended(now - 7200, 5, 1.25)], now)
    assert svg.count("<rect") == 2  # the two recent batches share a bucket
    assert "10 requests" in svg and "5 requests" in svg and "cost so far ($1.75)" in svg
    assert "No batch has ended yet" in chart([], now)


def request(method: str, target: str, body: bytes = b"", **headers: str) -> Request:
    message = Message()
    for name, value in headers.items():
        message[name.replace("_", "-")] = value
    return Request(method, target, message, body, "127.0.0.1")


@pytest.fixture(name="store")
def store_fixture(tmp_path: Path) -> Iterator[Store]:
    settings = Settings(root=tmp_path)
    folders.prepare(settings)
    store = Store(settings.state / folders.DB_NAME)
    yield store
    store.close()


def test_pages_carry_a_strict_policy_and_refuse_what_they_must(tmp_path: Path, store: Store) -> None:
    page = WebPage(Settings(root=tmp_path), store, Sessions(KeySource("test", value=TOKEN)), 0.0)
    reply = page.handle(request("GET", "/"))
    headers = dict(reply.headers)
    assert reply.status == 200 and b"no jobs yet" in reply.body
    assert headers["Content-Security-Policy"].startswith("default-src 'none'; script-src 'nonce-")
    nonce = headers["Content-Security-Policy"].split("'nonce-")[1].split("'")[0]
    assert reply.body.count(f'nonce="{nonce}"'.encode()) == 2  # the style and the script, nothing else
    assert headers["X-Frame-Options"] == "DENY"
    assert page.handle(request("GET", "/jobs/nope")).status == 404
    assert page.handle(request("PUT", "/")).status == 405
    assert page.handle(request("GET", "/?" + "&".join(f"f{n}=1" for n in range(50)))).status == 400
    assert page.handle(request("POST", "/jobs/nope/cancel", b"csrf=x")).status == 403  # no session
    wrong = page.handle(request("POST", "/login", b"token=wrong&next=/"))
    assert wrong.status == 403 and not any(name == "Set-Cookie" for name, _ in wrong.headers)
    foreign = page.handle(
        request("POST", "/login", f"token={TOKEN}".encode(), Origin="http://evil.example", Host="127.0.0.1")
    )
    assert foreign.status == 403
    right = page.handle(request("POST", "/login", f"token={TOKEN}&next=//evil.example".encode()))
    assert right.status == 303 and dict(right.headers)["Location"] == "/"
    assert TOKEN.encode() not in right.body


def test_without_a_token_there_is_nothing_to_log_in_to(tmp_path: Path, store: Store) -> None:
    page = WebPage(Settings(root=tmp_path), store, Sessions(None), 0.0)
    assert page.handle(request("GET", "/login")).status == 404
    assert page.handle(request("POST", "/login", f"token={TOKEN}".encode())).status == 404
    assert b"read-only" in page.handle(request("GET", "/")).body


@pytest.mark.parametrize(
    ("given", "kept"),
    [("/jobs/1", "/jobs/1"), ("//evil.example/x", "/"), ("https://evil.example", "/"), ("/\\\\evil", "/")],
)
def test_after_a_login_only_this_page_is_a_destination(given: str, kept: str) -> None:
    assert _safe_next(given) == kept


def part(state: PartState, counts: dict[str, int] | None, requests: int = 10) -> Part:
    batch = json.dumps({"id": "b", "status": "in_progress", "request_counts": counts}) if counts else None
    return Part("j", 0, 0, "p", 1, requests, 100, 10, state, 0.0, 0.0, batch_json=batch)


def test_a_running_job_splits_its_done_requests_by_its_batches_counts() -> None:
    running = {"requests_total": 10, "requests_done": 6, "outcomes": None}
    assert split(running, [part(PartState.SUBMITTED, {"completed": 4, "failed": 2, "total": 10})]) == Split(4, 2, 0, 10)
    ended = {"requests_total": 10, "requests_done": 10, "outcomes": {"succeeded": 7, "failed": 1, "not_run": 2}}
    assert split(ended, []) == Split(7, 1, 2, 10)
    # An input riding in a shared batch: its share of that batch's progress.
    packed = {"requests_total": 4, "requests_done": 0, "outcomes": None}
    pack = [part(PartState.SUBMITTED, {"completed": 50, "failed": 10, "total": 100}, 100)]
    assert split(packed, [part(PartState.PACKED, None, 4)], pack) == Split(2, 0, 0, 4)


def test_the_daemon_panel_shows_holds_and_budget_escaped() -> None:
    facts = DaemonFacts(
        started_at=100.0,
        heartbeat_at=190.0,
        stopped=False,
        last_poll=None,
        account_holds={"azure": "quota <exceeded> & billing"},
        profiles=[("default", "openai", "https://api.openai.com/v1")],
        jobs={"active": 2},
        parts={"submitted": 3},
        budget=[("default", 12, 2000, 3600.0)],
    )
    html = daemon_panel(facts, 200.0)
    assert "azure: quota &lt;exceeded&gt; &amp; billing" in html
    assert "default: 12 of 2,000 per 60m" in html and "active 2" in html and "none yet" in html


def test_in_emulator_mode_the_daemon_panel_names_the_emulators_not_the_configured_urls(
    tmp_path: Path, store: Store
) -> None:
    config = tmp_path / "batchd.toml"
    config.write_text('[providers.azure]\nkind = "azure"\nbase_url = "https://res.openai.azure.com/openai/v1/"\n')
    settings = load_settings(config, environ={})
    emulators = {"default": "http://127.0.0.1:4001/v1", "azure": "http://127.0.0.1:4002/openai/v1"}
    body = WebPage(settings, store, Sessions(None), 0.0, emulators).handle(request("GET", "/")).body.decode()
    profiles = body.split('data-fact="profiles">')[1].split("</b>")[0]
    assert "res.openai.azure.com" not in profiles and "api.openai.com" not in profiles
    assert "azure (azure, http://127.0.0.1:4002/openai/v1: built-in emulator" in profiles
    assert "default (openai, http://127.0.0.1:4001/v1: built-in emulator" in profiles
    # Not in emulator mode: the configured URLs, which it does use.
    body = WebPage(settings, store, Sessions(None), 0.0).handle(request("GET", "/")).body.decode()
    assert "res.openai.azure.com" in body and "built-in emulator" not in body


def test_account_holds_come_from_the_daemons_heartbeat(tmp_path: Path, store: Store) -> None:
    page = WebPage(Settings(root=tmp_path), store, Sessions(None), 0.0)
    beat = {"at": 1.0, "last_poll": 2.0, "account_holds": {"default": "billing_hard_limit_reached <&>"}}
    store.set_fact("heartbeat", json.dumps(beat))
    body = page.handle(request("GET", "/?fragment=1")).body.decode()
    assert "default: billing_hard_limit_reached &lt;&amp;&gt;" in body
    assert "<html" not in body  # the fragment alone, for the script
    store.set_fact("heartbeat", json.dumps({"at": 0, "stopped": True, "account_holds": beat["account_holds"]}))
    assert "billing_hard_limit_reached" not in page.handle(request("GET", "/")).body.decode()


def _input_and_its_pack(store: Store, *, handed_over: bool) -> None:
    """An input whose one part rides in a pack's batch (handed over: the pack's results were
    unpacked, and the member holds that batch as its own)."""
    store.add_job(Job("in1", "small.jsonl", "s", "s", JobState.ACTIVE, 1.0, 1.0, request_count=2))
    store.add_job(Job("pack1", "pack", "p", "p", JobState.ACTIVE, 1.0, 1.0, kind=PACK_KIND, request_count=5))
    batch = json.dumps({"id": "batch_shared", "status": "in_progress", "request_counts": {"total": 5}})
    member = PartState.DOWNLOADED if handed_over else PartState.PACKED
    held = "batch_shared" if handed_over else None
    store.add_part(Part("in1", 0, 0, "p", 1, 2, 10, 1, member, 1.0, 1.0, pack_id="pack1", batch_id=held))
    pack_part = Part("pack1", 0, 0, "q", 1, 5, 50, 5, PartState.SUBMITTED, 1.0, 1.0, batch_id="batch_shared")
    pack_part.batch_json = batch
    store.add_part(pack_part)


def test_the_daemon_panel_counts_input_jobs_only_like_the_list(tmp_path: Path, store: Store) -> None:
    _input_and_its_pack(store, handed_over=False)
    settings = Settings(root=tmp_path)
    facts = daemon_facts(store, settings, 0.0, 10.0)
    assert facts.jobs == {"active": 1}  # the pack job is batchd's own, not a job of the user's
    assert job_list(store, settings, 10.0).total == 1


def test_a_job_claimed_while_the_list_is_read_is_listed_not_a_server_error(
    tmp_path: Path, store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    _input_and_its_pack(store, handed_over=False)
    read_parts = store.parts_by_job

    def claimed_meanwhile() -> dict[str, list[Part]]:  # the daemon claims a file between two reads
        store.add_job(Job("in2", "new.jsonl", "n", "n", JobState.CLAIMED, 2.0, 2.0))
        return read_parts()

    monkeypatch.setattr(store, "parts_by_job", claimed_meanwhile)
    listed = job_list(store, Settings(root=tmp_path), 10.0)
    assert sorted(row["job_id"] for row in listed.rows) == ["in1", "in2"]


@pytest.mark.parametrize("handed_over", [False, True])
def test_an_input_in_a_shared_batch_counts_that_batch_marked_shared(
    tmp_path: Path, store: Store, handed_over: bool
) -> None:
    _input_and_its_pack(store, handed_over=handed_over)
    settings = Settings(root=tmp_path)
    html = jobs_table(job_list(store, settings, 10.0), 10.0)
    assert 'data-shared="1"' in html and "1 (shared)" in html and "batch_shared" in html
    detail = job_detail(store, settings, "in1", 10.0)
    assert detail is not None
    page = job_fragment(detail, 10.0)
    assert page.count("batch_shared") == 1 and "shared with other inputs: " in page


@pytest.mark.parametrize("handed_over", [False, True])
def test_status_counts_an_input_in_a_shared_batch_as_the_page_does(store: Store, handed_over: bool) -> None:
    _input_and_its_pack(store, handed_over=handed_over)
    row = next(r for r in job_rows(store, 10.0) if r["job_id"] == "in1")
    assert row["batch_count"] == 1  # --json: one batch, not none (riding) nor two (handed over)
    assert [b["id"] for b in row["shared_batches"]] == ["batch_shared"]
    assert "shared:…h_shared(" in render_table([row])  # not "-": the shared batch, marked
    assert "shared:batch_shared(" in render_table([row], wide=True)


def test_the_daemon_panel_counts_a_shared_batch_once(tmp_path: Path, store: Store) -> None:
    _input_and_its_pack(store, handed_over=False)
    for n in (2, 3):  # two more members: still one batch
        store.add_job(Job(f"in{n}", f"s{n}.jsonl", "s", "s", JobState.ACTIVE, 1.0, 1.0, request_count=1))
        store.add_part(Part(f"in{n}", 0, 0, "p", 1, 1, 5, 1, PartState.PACKED, 1.0, 1.0, pack_id="pack1"))
    store.add_job(Job("alone", "big.jsonl", "b", "b", JobState.ACTIVE, 1.0, 1.0, request_count=1))
    store.add_part(Part("alone", 0, 0, "p", 1, 1, 5, 1, PartState.READY, 1.0, 1.0))  # its own batch to come
    facts = daemon_facts(store, Settings(root=tmp_path), 0.0, 10.0)
    assert facts.parts == {"submitted": 1, "ready": 1}
    assert 'data-fact="parts (one batch each)">ready 1, submitted 1<' in daemon_panel(facts, 10.0)


def test_the_chart_of_a_few_seconds_of_work_spans_those_seconds() -> None:
    now = 1_700_000_000.0
    svg = chart([Ended(now - 4, 7, 0.5), Ended(now - 2, 3, None)], now)
    assert "requests completed per second" in svg
    left = svg.split(f'<text x="{LEFT}" y="{HEIGHT - 8}">')[1].split("<")[0]
    assert left >= when(now - MIN_BARS)  # the axis starts seconds ago, not half an hour ago
    assert svg.count("<rect") == 2  # one bar a second: the two batches apart


@pytest.mark.parametrize(
    ("address", "name", "host", "answered"),
    [
        ("127.0.0.1", None, "127.0.0.1:8080", True),
        ("127.0.0.1", None, "localhost:8080", True),
        ("127.0.0.1", None, "LOCALHOST.:8080", True),
        ("127.0.0.1", None, "[::1]:8080", True),
        ("127.0.0.1", None, None, True),  # no browser omits it; nothing to rebind
        ("127.0.0.1", None, "rebound.example:8080", False),  # a name pointed at this machine
        ("127.0.0.1", None, "127.0.0.1:9999", False),  # another port's page
        ("127.0.0.1", None, "127.0.0.1:x", False),
        ("127.0.0.1", None, "192.168.1.5:8080", False),  # not an address it listens on
        ("127.0.0.1", "batchd.example.org", "batchd.example.org", True),  # a proxy in front, its own port
        ("0.0.0.0", None, "192.168.1.5:8080", True),  # any address of the machine
        ("0.0.0.0", None, "[fe80::1]:8080", True),
        ("0.0.0.0", "batchd.example.org", "Batchd.Example.Org:8080", True),
        ("0.0.0.0", "batchd.example.org", "other.example.org:8080", False),
        ("::", None, "myhost:8080", False),
    ],
)
def test_only_the_pages_own_host_names_are_answered(
    tmp_path: Path, store: Store, address: str, name: str | None, host: str | None, answered: bool
) -> None:
    settings = Settings(root=tmp_path, web_port=8080, web_address=address, web_host_name=name)
    page = WebPage(settings, store, Sessions(None), 0.0)
    page.hosts.port = 8080  # as the server sets it once bound
    reply = page.handle(request("GET", "/") if host is None else request("GET", "/", Host=host))
    assert reply.status == (200 if answered else 421)
    if not answered:
        assert reply.body.startswith(b"This page answers only") and b"<html" not in reply.body


def test_a_rebound_name_is_refused_by_the_running_server(tmp_path: Path) -> None:
    settings = Settings(root=tmp_path, web_port=0)
    folders.prepare(settings)
    Store(settings.state / folders.DB_NAME).close()
    server = WebServer(settings, Sessions(None))
    server.start()
    try:
        answers = {}
        for host in (f"127.0.0.1:{server.port}", f"rebound.example:{server.port}", "127.0.0.1:1"):
            conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=5)
            conn.putrequest("GET", "/", skip_host=True)
            conn.putheader("Host", host)
            conn.endheaders()
            answers[host] = conn.getresponse().status
            conn.close()
    finally:
        server.stop()
    assert list(answers.values()) == [200, 421, 421]


def test_web_host_name_is_a_bare_host_name() -> None:
    assert load_settings(environ={"BATCHD_WEB_HOST_NAME": "batchd.example.org"}).web_host_name == "batchd.example.org"
    said = r"web_host_name must be a host name such as batchd\.example\.org \(no scheme, no port\)"
    for wrong in ("https://batchd.example.org", "batchd.example.org:8080", "a b"):
        with pytest.raises(ConfigError, match=said):
            load_settings(environ={"BATCHD_WEB_HOST_NAME": wrong})


def test_the_chart_counts_a_shared_batch_once(tmp_path: Path, store: Store) -> None:
    _input_and_its_pack(store, handed_over=True)
    ended = {"id": "batch_shared", "status": "completed", "completed_at": 5, "request_counts": {"completed": 5}}
    for held in store.parts("in1") + store.parts("pack1"):  # the pack's, and its member's copy
        store.update_part(held.id, batch_json=json.dumps(ended))
    assert [point.requests for point in ended_batches(store, Settings(root=tmp_path))] == [5]
