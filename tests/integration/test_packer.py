"""Small inputs sharing one batch: fewer batches, and each input still gets exactly its own results."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

from daemon.emulator import EmulatorServer
from daemon.intake.reports import report_path
from daemon.state.states import PACK_KIND, JobState, PartOrigin
from tests.support import Harness, drop_before_start


def line(name: str, i: int, model: str = "gpt-4o-mini") -> str:
    """Request r<i> of input ``name``: the same custom_ids in every input, a prompt naming the input."""
    body = {"model": model, "messages": [{"role": "user", "content": f"{name} question {i}"}]}
    return json.dumps({"custom_id": f"r{i}", "method": "POST", "url": "/v1/chat/completions", "body": body}) + "\n"


def small_inputs(names: str, requests: int, model: str = "gpt-4o-mini") -> dict[str, str]:
    return {f"{n}.jsonl": "".join(line(n, i, model) for i in range(requests)) for n in names}


def windows_style(files: dict[str, str]) -> dict[str, str]:
    """The same inputs as saved by some Windows tools: CRLF endings and a blank line between requests."""
    return {name: text.replace("\n", "\r\n\r\n") for name, text in files.items()}


def assert_uploads_normalised(emulator: EmulatorServer) -> None:
    """What was validated is what went: LF endings, no blank lines, in every batch's input file."""
    for batch in emulator.batches():
        data = emulator.file_bytes(batch["input_file_id"])
        assert b"\r" not in data and b"\n\n" not in data and data.endswith(b"}\n"), data[:200]


def answer_text(result: dict[str, Any]) -> str:
    return str(result["response"]["body"]["choices"][0]["message"]["content"])


def test_small_inputs_with_equal_custom_ids_share_one_batch_and_get_their_own_results(
    harness_factory: Callable[..., Harness], emulator: EmulatorServer
) -> None:
    harness = harness_factory(pack_wait=10)
    drop_before_start(harness, small_inputs("abc", 3))
    harness.start()
    for name in "abc":
        harness.wait_job(f"{name}.jsonl")

    (batch,) = emulator.batches()
    assert batch["request_counts"]["total"] == 9, "one batch carried all three inputs"
    assert harness.store is not None
    (pack,) = [j for j in harness.store.jobs() if j.kind == PACK_KIND]
    assert [p.origin for p in harness.store.parts(pack.id)] == [PartOrigin.PACK]
    for name in "abc":
        results = harness.results(f"{name}.jsonl")
        assert [r["custom_id"] for r in results] == ["r0", "r1", "r2"], "its own custom_ids, in input order"
        for i, result in enumerate(results):
            assert f"{name} question {i}" in answer_text(result), "each line is the answer to its own request"
        summary = harness.summary(f"{name}.jsonl")
        assert summary["requests"] == 3 and summary["outcomes"] == {"succeeded": 3, "failed": 0, "not_run": 0}
        assert [b["batch_id"] for b in summary["batches"]] == [batch["id"]]
        job = harness.job(f"{name}.jsonl")
        assert job is not None and job.result_dir
        raw = (Path(job.result_dir) / f"{batch['id']}_output.jsonl").read_text().splitlines()
        assert sorted(json.loads(r)["custom_id"] for r in raw) == ["r0", "r1", "r2"], "raw file: only its own lines"
        assert (harness.settings.uploaded / f"{name}.jsonl").exists()
    assert list((harness.settings.state / "packs").iterdir()) == [], "the pack's own files are cleaned up"


def test_only_small_inputs_of_one_endpoint_and_model_share(
    harness_factory: Callable[..., Harness], emulator: EmulatorServer
) -> None:
    harness = harness_factory(pack_wait=10, pack_inputs_up_to=4)
    files = {**small_inputs("ab", 2), **small_inputs("c", 2, model="gpt-4.1-mini"), **small_inputs("d", 5)}
    drop_before_start(harness, windows_style(files))
    harness.start()
    for name in "abcd":
        harness.wait_job(f"{name}.jsonl")
    # a and b together; c has another model; d has more requests than pack_inputs_up_to.
    assert sorted(b["request_counts"]["total"] for b in emulator.batches()) == [2, 4, 5]
    for name, count in (("a", 2), ("b", 2), ("c", 2), ("d", 5)):
        assert [r["custom_id"] for r in harness.results(f"{name}.jsonl")] == [f"r{i}" for i in range(count)]
    # c waited for company, found none and went alone: its part file was written from the input then.
    assert_uploads_normalised(emulator)


def test_packing_off_gives_every_input_its_own_batch(
    harness_factory: Callable[..., Harness], emulator: EmulatorServer
) -> None:
    harness = harness_factory(pack_wait=10, pack_inputs_up_to=0)
    drop_before_start(harness, small_inputs("abc", 2))
    harness.start()
    for name in "abc":
        harness.wait_job(f"{name}.jsonl")
    assert len(emulator.batches()) == 3


def test_a_refused_shared_batch_sends_each_input_alone_once(
    harness_factory: Callable[..., Harness], emulator: EmulatorServer
) -> None:
    harness = harness_factory(pack_wait=10)
    drop_before_start(harness, windows_style(small_inputs("ab", 2, model="fail-validation-model")))
    harness.start()
    for name in "ab":
        harness.wait_job(f"{name}.jsonl", JobState.FAILED)
    # The shared batch, then each input alone: never packed again, never sent a third time.
    sizes = sorted(emulator.file_bytes(b["input_file_id"]).count(b"\n") for b in emulator.batches())
    assert sizes == [2, 2, 4]
    assert_uploads_normalised(emulator)
    for name in "ab":
        assert (harness.settings.failed / f"{name}.jsonl").exists()
        assert report_path(harness.settings.failed / f"{name}.jsonl").exists()
        earlier = harness.summary(f"{name}.jsonl")["batches"][0]["earlier_batch_ids"]
        assert len(earlier) == 1, "the refused shared batch is on record"
        job = harness.job(f"{name}.jsonl")
        assert job is not None and harness.store is not None
        (part,) = harness.store.parts(job.id)
        assert (part.origin, part.pack_id) == (PartOrigin.OWN_FILE, None), "sent alone from a part file of its own"


def test_an_expired_shared_batch_resends_only_what_did_not_run(
    harness_factory: Callable[..., Harness], emulator: EmulatorServer
) -> None:
    harness = harness_factory(pack_wait=10)
    drop_before_start(harness, small_inputs("ab", 4, model="gpt-expire-model"))
    harness.start()
    for name in "ab":
        harness.wait_job(f"{name}.jsonl")

    ran: Counter[str] = Counter()
    for batch in emulator.batches():
        if batch["output_file_id"]:
            for raw in emulator.file_bytes(batch["output_file_id"]).splitlines():
                ran[json.loads(raw)["custom_id"]] += 1
    assert ran and max(ran.values()) == 1, f"a request ran twice: {ran}"
    assert len(emulator.batches()) > 1, "the unfinished requests went again"
    for name in "ab":
        results = harness.results(f"{name}.jsonl")
        assert [r["custom_id"] for r in results] == ["r0", "r1", "r2", "r3"]
        outcomes = harness.summary(f"{name}.jsonl")["outcomes"]
        assert outcomes["succeeded"] + outcomes["not_run"] == 4 and outcomes["succeeded"] >= 2
        for i, result in enumerate(results):
            if result.get("response"):
                assert f"{name} question {i}" in answer_text(result)
