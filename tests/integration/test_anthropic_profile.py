"""A `[providers.claude]` of kind anthropic, end to end: the daemon against the emulator's anthropic flavour.

Files dropped in pending_upload/claude/ are checked as Message Batches lines, sent in the create
call itself, polled, and their results written in Anthropic's shape in input order; a lost create
reply never makes a second batch; an OpenAI profile works beside it.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from daemon.cli.main import main
from daemon.cli.status import status_text
from daemon.config import load_settings
from daemon.emulator import EmulatorServer
from daemon.pricing import DEFAULT_PRICES, ModelPrice
from daemon.service.sdk_errors import error_counts_by_profile
from daemon.state.states import JobState
from tests.anthropic_spec import problems
from tests.support import Harness, fast_settings, request_file, wait_until
from tests.unit.emulator.anthropic_helpers import anthropic_client, sent_requests

MODEL = "claude-test"
PRICE = ModelPrice(1.0, 2.0)


def claude_lines(count: int, prefix: str = "q", model: str = MODEL, text: str = "say") -> str:
    """Message Batches requests, one per line, in Anthropic's own shape."""
    return "".join(
        json.dumps(
            {
                "custom_id": f"{prefix}-{i}",
                "params": {"model": model, "max_tokens": 32, "messages": [{"role": "user", "content": f"{text} {i}"}]},
            }
        )
        + "\n"
        for i in range(count)
    )


def claude_table(server: EmulatorServer, extra: str = "") -> str:
    return f'[providers.claude]\nkind = "anthropic"\nbase_url = "{server.base_url}"\n{extra}'


@contextmanager
def claude_daemon(
    root: Path, server: EmulatorServer, extra: str = "", openai_url: str = "http://127.0.0.1:9", **changes: Any
) -> Iterator[Harness]:
    root.mkdir()
    config = root / "batchd.toml"
    config.write_text(
        f'[providers.default]\nbase_url = "{openai_url}"\n\n' + claude_table(server, extra), encoding="utf-8"
    )
    providers = load_settings(config, environ={}).providers
    settings = fast_settings(root, openai_url, providers=providers, prices={**DEFAULT_PRICES, MODEL: PRICE}, **changes)
    harness = Harness(settings, server).start()
    try:
        yield harness
    finally:
        harness.stop()


def creates(server: EmulatorServer) -> int:
    counts = server.calls.counts()
    return sum(n for (method, route), n in counts.items() if method == "POST" and route == "/v1/messages/batches")


def test_a_file_in_the_claude_folder_comes_back_in_anthropic_shape_in_input_order(
    tmp_path: Path, anthropic_server: EmulatorServer
) -> None:
    # Two requests a batch: five requests go as three batches and are merged back in input order.
    with claude_daemon(tmp_path / "root", anthropic_server, "max_requests_per_batch = 2\n") as harness:
        harness.drop("ask.jsonl", claude_lines(5), folder="claude")
        job = harness.profile_job("claude", JobState.DONE)
        results = harness.results(job.source_name)
        summary = harness.summary(job.source_name)
    assert [line["custom_id"] for line in results] == [f"q-{i}" for i in range(5)]
    assert {line["result"]["type"] for line in results} == {"succeeded"}
    assert creates(anthropic_server) == 3 == len(anthropic_server.batches())
    assert summary["profile"] == "claude" and summary["outcomes"] == {"succeeded": 5, "failed": 0, "not_run": 0}
    usage = summary["usage"]
    assert usage["lines_with_usage"] == 5 and usage["prompt_tokens"] > 0 and "cache_read_input_tokens" in usage
    wanted = (usage["prompt_tokens"] * PRICE.input + usage["completion_tokens"] * PRICE.output) / 1e6
    assert summary["estimated_cost_usd"] == pytest.approx(wanted)


def test_lines_anthropic_refuses_go_to_failed_with_line_numbers_and_nothing_is_sent(
    tmp_path: Path, anthropic_server: EmulatorServer
) -> None:
    bad = claude_lines(1) + '{"custom_id": "has space", "params": {"model": "claude-test", "max_tokens": 5}}\n'
    with claude_daemon(tmp_path / "root", anthropic_server) as harness:
        harness.drop("bad.jsonl", bad, folder="claude")
        harness.profile_job("claude", JobState.REJECTED)
        report = (harness.settings.failed / "bad.jsonl.report.txt").read_text()
    assert "line 2" in report and "A-Z a-z 0-9 _ -" in report and "params.messages" in report
    assert creates(anthropic_server) == 0


@pytest.mark.parametrize("damaged", [False, True], ids=["whole_results", "damaged_results"])
def test_a_lost_create_reply_makes_exactly_one_batch(
    tmp_path: Path, anthropic_server: EmulatorServer, damaged: bool
) -> None:
    """The service creates the batch but the reply never arrives (the connection drops): batchd
    finds the batch by its request count and, once it ended, by the custom_ids of its results.
    With ``damaged``, the first look at those results gets lines missing: the batch may still be
    ours, so batchd waits and looks again rather than create a second batch."""
    anthropic_server.faults.add_rule(
        action="drop", method="POST", path_prefix="/v1/messages/batches", after_processing=True, count=1
    )
    if damaged:
        anthropic_server.faults.add_rule(
            action="tamper", method="GET", path_prefix="/v1/messages/batches", mode="drop_lines", count=1
        )
    with claude_daemon(tmp_path / "root", anthropic_server) as harness:
        harness.drop("lost.jsonl", claude_lines(4), folder="claude")
        job = harness.profile_job("claude", JobState.DONE, timeout=60)
        results = harness.results(job.source_name)
    assert len(anthropic_server.batches()) == 1, "a second batch was created after the lost reply"
    assert [line["custom_id"] for line in results] == [f"q-{i}" for i in range(4)]
    assert {line["result"]["type"] for line in results} == {"succeeded"}


def test_small_claude_inputs_share_one_batch_and_get_their_own_ids_back(
    tmp_path: Path, anthropic_server: EmulatorServer
) -> None:
    root = tmp_path / "root"
    with claude_daemon(root, anthropic_server, extra="") as harness:
        harness.stop()  # drop both before the daemon looks, so one pass claims them together
        for name in ("a.jsonl", "b.jsonl"):
            harness.drop(name, claude_lines(2, prefix="same"), folder="claude")
        harness.start()
        for name in ("a.jsonl", "b.jsonl"):
            harness.wait_job(name, timeout=30)
        results = {name: harness.results(name) for name in ("a.jsonl", "b.jsonl")}
    assert len(anthropic_server.batches()) == 1, "the two small inputs did not share a batch"
    for lines in results.values():
        assert [line["custom_id"] for line in lines] == ["same-0", "same-1"]
        assert {line["result"]["type"] for line in lines} == {"succeeded"}


def test_an_openai_profile_and_an_anthropic_profile_side_by_side(
    tmp_path: Path, anthropic_server: EmulatorServer, openai_server: EmulatorServer
) -> None:
    with claude_daemon(tmp_path / "root", anthropic_server, openai_url=openai_server.base_url) as harness:
        harness.drop("gpt.jsonl", request_file(3))
        harness.drop("claude.jsonl", claude_lines(3), folder="claude")
        gpt = harness.wait_job("gpt.jsonl", timeout=30)
        claude = harness.profile_job("claude", JobState.DONE, timeout=30)
        gpt_results, claude_results = harness.results("gpt.jsonl"), harness.results(claude.source_name)
    assert gpt.profile == "default" and claude.profile == "claude"
    assert all(line["response"]["status_code"] == 200 for line in gpt_results)
    assert {line["result"]["type"] for line in claude_results} == {"succeeded"}
    assert len(openai_server.batches()) == 1 and len(anthropic_server.batches()) == 1


def test_batchd_cancel_cancels_a_claude_batch_and_its_lines_say_canceled(
    tmp_path: Path,
    anthropic_server: EmulatorServer,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("ANTHROPIC_API_KEY", "test-key")  # the command connects with the profile's own key
    anthropic_server.mishaps.never_end_next(1)  # the batch stalls half-way until it is cancelled
    root = tmp_path / "root"
    with claude_daemon(root, anthropic_server) as harness:
        harness.drop("stop.jsonl", claude_lines(4), folder="claude")
        wait_until(lambda: [b for b in anthropic_server.batches() if b["processing_status"] == "in_progress"], 20)
        assert main(["cancel", "stop.jsonl", "--root", str(root), "--config", str(root / "batchd.toml")]) == 0
        job = harness.wait_job("stop.jsonl", JobState.DONE, timeout=30)
        results = harness.results("stop.jsonl")
    assert "is cancelling" in capsys.readouterr().out
    assert job.cancel_requested and len(anthropic_server.batches()) == 1
    assert [line["custom_id"] for line in results] == [f"q-{i}" for i in range(4)]
    assert "canceled" in {line["result"]["type"] for line in results}


def test_expired_requests_are_resubmitted_and_none_that_ran_is_sent_again(
    tmp_path: Path, anthropic_server: EmulatorServer
) -> None:
    """A model named with "expire" runs half a batch's requests before it expires (2 s here): the
    rest go again in a new batch, up to three times, then are reported expired."""
    with claude_daemon(tmp_path / "root", anthropic_server) as harness:
        harness.drop("late.jsonl", claude_lines(8, model="claude-expire"), folder="claude")
        job = harness.profile_job("claude", JobState.DONE, timeout=60)
        results = harness.results(job.source_name)
        summary = harness.summary(job.source_name)
    client = anthropic_client(anthropic_server)
    batches = anthropic_server.batches()
    ran = Counter(
        line.custom_id
        for batch in batches
        for line in client.messages.batches.results(batch["id"])
        if line.result.type == "succeeded"
    )
    assert 1 < len(batches) <= 4 and max(ran.values()) == 1, "a request that ran was sent again"
    assert [line["custom_id"] for line in results] == [f"q-{i}" for i in range(8)]
    succeeded = {line["custom_id"] for line in results if line["result"]["type"] == "succeeded"}
    assert succeeded == set(ran) and len(succeeded) > 4, "the resubmissions ran more of the requests"
    assert {line["result"]["type"] for line in results} <= {"succeeded", "expired"}
    assert summary["outcomes"]["succeeded"] == len(succeeded)


def test_an_overloaded_request_is_its_own_outcome_and_nothing_is_retried(
    tmp_path: Path, anthropic_server: EmulatorServer
) -> None:
    lines = claude_lines(2) + claude_lines(1, prefix="busy", text="fail-overloaded")
    with claude_daemon(tmp_path / "root", anthropic_server) as harness:
        harness.drop("busy.jsonl", lines, folder="claude")
        job = harness.profile_job("claude", JobState.DONE, timeout=30)
        results = harness.results(job.source_name)
        summary = harness.summary(job.source_name)
    assert len(anthropic_server.batches()) == 1
    assert [line["result"]["type"] for line in results] == ["succeeded", "succeeded", "errored"]
    assert results[2]["result"]["error"]["error"]["type"] == "overloaded_error"
    # What was sent and what was written both conform to Anthropic's published API description.
    assert [
        p for r in sent_requests(anthropic_server) for p in problems("MessageBatchIndividualRequestParams", r)
    ] == []
    assert [p for line in results for p in problems("MessageBatchIndividualResponse", line)] == []
    assert summary["outcomes"] == {"succeeded": 2, "failed": 1, "not_run": 0}
    assert summary["failures"]["overloaded_error"]["count"] == 1


def test_status_shows_a_running_claude_job_and_abandon_ends_it(
    tmp_path: Path,
    anthropic_server: EmulatorServer,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("ANTHROPIC_API_KEY", "test-key")
    monkeypatch.setattr("daemon.cli.main.configure", lambda *_: None)
    anthropic_server.mishaps.never_end_next(1)  # never ends unless cancelled
    root = tmp_path / "root"
    with claude_daemon(root, anthropic_server) as harness:
        harness.drop("slow.jsonl", claude_lines(4), folder="claude")
        harness.profile_job("claude", JobState.ACTIVE)

        def shown() -> dict[str, Any] | None:
            rows = [
                r for r in json.loads(status_text(harness.settings, as_json=True))["jobs"] if r["file"] == "slow.jsonl"
            ]
            return rows[0] if rows and rows[0]["batches"] else None

        row = wait_until(shown, 20, "status to show the job's batch")
        config = ["--config", str(root / "batchd.toml")]
        assert main(["abandon", "slow.jsonl", "--root", str(root), "--wait", "20", *config]) == 0
        job = harness.wait_job("slow.jsonl", JobState.FAILED)
        results = harness.results("slow.jsonl")
    # Anthropic counts requests as processing until the whole batch ends.
    assert row["profile"] == "claude" and (row["requests_done"], row["requests_total"]) == (0, 4)
    assert row["batches"] == [{"id": anthropic_server.batches()[0]["id"], "status": "in_progress"}]
    assert job.abandon_requested_at is not None
    assert [line["custom_id"] for line in results] == [f"q-{i}" for i in range(4)]
    assert "errored" in {line["result"]["type"] for line in results}  # the abandoned ones, in Anthropic's shape
    assert [p for line in results for p in problems("MessageBatchIndividualResponse", line)] == []
    assert {line["error"]["code"] for line in results if "error" in line} == {"abandoned"}


@pytest.mark.parametrize("mode", ["drop_lines", "extra_ids", "duplicate_ids", "garbage"])
def test_tampered_results_are_fetched_again_until_they_add_up(
    tmp_path: Path, anthropic_server: EmulatorServer, mode: str
) -> None:
    anthropic_server.faults.add_rule(
        action="tamper", method="GET", path_prefix="/v1/messages/batches", mode=mode, count=1
    )
    with claude_daemon(tmp_path / "root", anthropic_server) as harness:
        harness.drop("t.jsonl", claude_lines(4), folder="claude")
        job = harness.profile_job("claude", JobState.DONE, timeout=40)
        results = harness.results(job.source_name)
        summary = harness.summary(job.source_name)
    downloads = sum(n for (method, route), n in anthropic_server.calls.counts().items() if route.endswith("/results"))
    assert downloads == 2, "the tampered download was not fetched again"
    assert [line["custom_id"] for line in results] == [f"q-{i}" for i in range(4)]
    assert {line["result"]["type"] for line in results} == {"succeeded"} and summary["problems"] == []


def test_failures_with_a_listed_code_go_again_at_most_three_times_and_nothing_else_does(
    tmp_path: Path, anthropic_server: EmulatorServer
) -> None:
    lines = claude_lines(2) + claude_lines(1, prefix="busy", text="fail-overloaded")
    codes = frozenset({"overloaded_error"})
    with claude_daemon(tmp_path / "root", anthropic_server, retry_failed_codes=codes) as harness:
        harness.drop("again.jsonl", lines, folder="claude")
        job = harness.profile_job("claude", JobState.DONE, timeout=40)
        results = harness.results(job.source_name)
    client = anthropic_client(anthropic_server)
    sent = Counter(
        line.custom_id for b in anthropic_server.batches() for line in client.messages.batches.results(b["id"])
    )
    assert sent == {"q-0": 1, "q-1": 1, "busy-0": 4}, "the overloaded request went again 3 times, nothing else did"
    assert [line["result"]["type"] for line in results] == ["succeeded", "succeeded", "errored"]


def test_batchd_retry_checks_a_fixed_claude_input_as_anthropic_lines(
    tmp_path: Path, anthropic_server: EmulatorServer
) -> None:
    root = tmp_path / "root"
    with claude_daemon(root, anthropic_server) as harness:
        harness.drop("fix.jsonl", '{"custom_id": "bad id", "params": {}}\n', folder="claude")
        first = harness.profile_job("claude", JobState.REJECTED)
        (harness.settings.failed / "fix.jsonl").write_text(claude_lines(2), encoding="utf-8")
        assert main(["retry", "--root", str(root), "--config", str(root / "batchd.toml"), "fix.jsonl"]) == 0
        again = wait_until(lambda: (j := harness.job("fix.jsonl")) and j.id != first.id and j, 20, "a new job")
        harness.wait_job("fix.jsonl")
        results = harness.results("fix.jsonl")
    assert again.profile == "claude" and [line["custom_id"] for line in results] == ["q-0", "q-1"]


def test_a_failed_call_of_the_anthropic_service_is_counted_under_its_profile(
    tmp_path: Path, anthropic_server: EmulatorServer
) -> None:
    def transient(profile: str) -> int:
        return error_counts_by_profile().get(("transient", profile), 0)

    before = {name: transient(name) for name in ("claude", "default")}
    anthropic_server.faults.add_rule(
        action="status", method="POST", path_prefix="/v1/messages/batches", status=500, count=1
    )
    with claude_daemon(tmp_path / "root", anthropic_server) as harness:
        harness.drop("claude.jsonl", claude_lines(2), folder="claude")
        harness.profile_job("claude", JobState.DONE, timeout=30)
    assert transient("claude") == before["claude"] + 1
    assert transient("default") == before["default"]
