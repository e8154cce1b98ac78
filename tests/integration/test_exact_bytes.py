"""The same input sends the same bytes whether it has a batch to itself or shares one: in a shared
batch only its custom_ids' values gain the slot prefix. Read back from the emulator's stored files."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from daemon.emulator import EmulatorServer
from daemon.state.states import JobState
from tests.integration.test_packer import small_inputs
from tests.support import Harness, drop_before_start

URL = '"url": "/v1/chat/completions"'


def odd_pieces(model: str) -> list[tuple[str, str, str]]:
    """Requests written the way no serialiser would write them again, as (text before the
    custom_id's value, the value as written, text after it). The expected upload is built from
    these pieces, independently of the code under test."""
    return [
        (
            '{"custom_id": ',
            '"a\\"b"',
            f', "method":"POST", {URL}, "body": {{"model": "{model}", "seed": 123456789012345678901234567890,'
            ' "temperature": 1.0, "max_tokens": 1e5, "messages": [{"role": "user", "content": "caf\\u00e9"}]}}',
        ),
        (
            f'{{"body":{{"messages":[{{"content":"say \\"custom_id\\": \\"x\\" {{[","role":"user"}}],'
            f'"model":"{model}","metadata":{{"custom_id":"nested"}},"top_p":0.10}},'
            f'   "method"  :  "POST",{URL},"custom_id":',
            '"\\u00e9t\\u00e9-\\ud83d\\ude00"',
            "}",
        ),
        (
            '{ "custom\\u005fid" :\t',
            '"tab\\t/\\/slash"',
            f' , {URL} ,"method":"POST","body":{{"model":"{model}","messages":[{{"role":"user","content":"-0.0"}}],'
            '"logit_bias":{"50256":-100,"15":1E-7}}}',
        ),
    ]


def as_dropped(pieces: list[tuple[str, str, str]]) -> bytes:
    """CRLF endings and a blank line between requests: normalised when checked, as before."""
    return b"".join((b + v + a).encode() + b"\r\n\r\n" for b, v, a in pieces)


def as_checked(pieces: list[tuple[str, str, str]], slot: int | None = None) -> bytes:
    prefix = "" if slot is None else f"{slot}:"
    return b"".join((b + '"' + prefix + v[1:] + a).encode() + b"\n" for b, v, a in pieces)


def own_ids(pieces: list[tuple[str, str, str]]) -> list[str]:
    return [json.loads(b + v + a)["custom_id"] for b, v, a in pieces]


def uploads(emulator: EmulatorServer) -> list[bytes]:
    return [emulator.file_bytes(batch["input_file_id"]) for batch in emulator.batches()]


def slot_of(harness: Harness, name: str) -> int:
    job = harness.job(name)
    assert job is not None and harness.store is not None
    (part,) = harness.store.parts(job.id)
    assert part.pack_slot is not None, f"{name} shared a batch"
    return part.pack_slot


def test_an_input_sends_the_same_bytes_alone_and_in_company(
    harness_factory: Callable[..., Harness], emulator: EmulatorServer
) -> None:
    odd, odd_other = odd_pieces("gpt-4o-mini"), odd_pieces("gpt-4.1-mini")
    harness = harness_factory(pack_wait=10)
    files = {
        "odd.jsonl": as_dropped(odd).decode(),
        **small_inputs("c", 2),  # company for odd.jsonl: the same endpoint and model
        "odd-other.jsonl": as_dropped(odd_other).decode(),  # waits for company, finds none, goes alone
        **small_inputs("d", 2, model="gpt-4o"),
    }
    drop_before_start(harness, files)
    harness.start()
    for name in files:
        harness.wait_job(name)
    harness.drop("odd-alone.jsonl", as_dropped(odd))  # alone in the queue: its own batch at once
    harness.wait_job("odd-alone.jsonl")

    sent = uploads(emulator)
    assert as_checked(odd) in sent, "alone: exactly the checked (normalised) bytes"
    assert as_checked(odd_other) in sent, "waited without a part file, then alone: the checked bytes"
    (shared,) = [data for data in sent if as_checked(odd, slot_of(harness, "odd.jsonl")) in data]
    assert shared.count(b"\n") == 5, "in company: only the custom_ids' values gained the slot prefix"
    for name in ("odd.jsonl", "odd-alone.jsonl"):
        assert [r["custom_id"] for r in harness.results(name)] == own_ids(odd), "its own ids, in order"
        assert harness.summary(name)["outcomes"]["succeeded"] == 3
    job = harness.job("odd.jsonl")
    assert job is not None and job.state == JobState.DONE and job.result_dir
    # Back from the shared batch: the service's own lines, only the slot prefix taken out of the ids.
    slot = slot_of(harness, "odd.jsonl")
    (batch,) = [b for b in emulator.batches() if emulator.file_bytes(b["input_file_id"]) == shared]
    service = emulator.file_bytes(batch["output_file_id"]).splitlines(keepends=True)
    theirs = [raw for raw in service if json.loads(raw)["custom_id"].startswith(f"{slot}:")]
    mine = (Path(job.result_dir) / f"{batch['id']}_output.jsonl").read_bytes().splitlines(keepends=True)
    assert len(mine) == 3 and mine == [raw.replace(f'"{slot}:'.encode(), b'"', 1) for raw in theirs]
