"""Importing the seed script's batch_ids.txt: once, crash-safe, results collected like any other."""

from __future__ import annotations

import hashlib
import io
import json
from collections.abc import Callable, Iterator

import openai
import pytest

from daemon.emulator import EmulatorServer
from daemon.ops.seed_import import FACT_PREFIX, SEED_FILE, SeedImport
from daemon.ops.signals import StopFlags
from daemon.service.credentials import KeySource
from daemon.service.openai_service import OpenAIService
from daemon.state import folders
from daemon.state.states import JobState, PartOrigin
from daemon.state.store import Store
from tests.support import TEST_KEY, Harness, request_file, wait_until


@pytest.fixture(name="sdk")
def sdk_fixture(emulator: EmulatorServer) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(api_key=TEST_KEY, base_url=emulator.base_url, max_retries=0) as client:
        yield client


def _script_batch(sdk: openai.OpenAI, content: str) -> str:
    """What the seed script did: upload the file and create a batch from it, no metadata."""
    upload = sdk.files.create(file=("in.jsonl", io.BytesIO(content.encode()), "application/jsonl"), purpose="batch")
    return sdk.batches.create(input_file_id=upload.id, endpoint="/v1/chat/completions", completion_window="24h").id


def _seed_root(harness: Harness, sdk: openai.OpenAI) -> tuple[str, str, str]:
    root, uploaded = harness.settings.root, harness.settings.root / "uploaded_files"
    uploaded.mkdir(parents=True, exist_ok=True)
    original = request_file(12, prefix="a")
    (uploaded / "a.jsonl").write_text(original)  # the script moved inputs here
    a = _script_batch(sdk, original)
    b = _script_batch(sdk, request_file(6, prefix="b"))  # its input is gone: output order
    c = _script_batch(sdk, request_file(4, prefix="c", model="gpt-expire"))
    lines = [f"a:{a}", f"b:with:colons:{b}", "a line without a colon", "d:null", "", f"a:{a}", "e:batch_nope", f"c:{c}"]
    (root / SEED_FILE).write_text("\n".join(lines) + "\n")
    return a, b, c


def test_import_tracks_and_collects_each_batch_once(
    harness_factory: Callable[..., Harness], sdk: openai.OpenAI, emulator: EmulatorServer
) -> None:
    harness = harness_factory()
    harness.settings.root.mkdir(exist_ok=True)
    a, _, _ = _seed_root(harness, sdk)
    harness.start()
    for name in ("a.jsonl", "b:with:colons.jsonl", "c.jsonl"):
        harness.wait_job(name)
    assert harness.store is not None
    jobs = harness.store.jobs()
    assert sorted(j.source_name for j in jobs) == ["a.jsonl", "b:with:colons.jsonl", "c.jsonl"]
    origins = {j.source_name: [p.origin for p in harness.store.parts(j.id)] for j in jobs}
    assert origins["a.jsonl"] == [PartOrigin.IMPORTED], "its input is here: a copy gives the order"
    assert origins["b:with:colons.jsonl"] == [PartOrigin.IMPORTED_WITHOUT_INPUT]
    assert [r["custom_id"] for r in harness.results("a.jsonl")] == [f"a{i}" for i in range(12)]  # input order
    assert sorted(r["custom_id"] for r in harness.results("b:with:colons.jsonl")) == sorted(f"b{i}" for i in range(6))
    expired = harness.results("c.jsonl")  # no input to resend: what never ran says so
    assert {(r["error"] or {}).get("code") for r in expired} <= {None, "batch_expired"}
    assert len(expired) == 4
    assert harness.summary("a.jsonl")["batches"][0]["batch_id"] == a
    assert (harness.settings.uploaded / "a.jsonl").read_text() == request_file(12, prefix="a")  # left in place
    assert not (harness.settings.root / SEED_FILE).exists()
    renamed = list(harness.settings.root.glob(f"{SEED_FILE}.imported-*"))
    assert len(renamed) == 1
    assert len(emulator.batches()) == 3  # nothing was created again


def test_a_crash_before_the_rename_does_not_import_twice(
    harness_factory: Callable[..., Harness], sdk: openai.OpenAI, emulator: EmulatorServer
) -> None:
    harness = harness_factory()
    harness.settings.root.mkdir(exist_ok=True)
    _seed_root(harness, sdk)
    seed = harness.settings.root / SEED_FILE
    data = seed.read_bytes()
    folders.prepare(harness.settings)
    store = Store(harness.settings.state / folders.DB_NAME)
    remote = OpenAIService.connect(KeySource("test key", value=TEST_KEY), emulator.base_url, 5.0)
    SeedImport(harness.settings, store, remote, StopFlags().stop).record(data, hashlib.sha256(data).hexdigest())
    store.close()
    remote.close()
    assert seed.exists()  # the "crash": recorded, not renamed
    harness.start()
    wait_until(lambda: not seed.exists(), what="the recorded import to be renamed")
    harness.wait_job("a.jsonl")
    assert harness.store is not None
    assert len(harness.store.jobs()) == 3
    fact = harness.store.fact(FACT_PREFIX + hashlib.sha256(data).hexdigest())
    assert fact is not None and json.loads(fact)["skipped"] == 4  # no colon, null, duplicate, not found


def test_a_file_put_back_skips_what_is_tracked(
    harness_factory: Callable[..., Harness], sdk: openai.OpenAI, emulator: EmulatorServer
) -> None:
    harness = harness_factory()
    harness.settings.root.mkdir(exist_ok=True)
    a, _, _ = _seed_root(harness, sdk)
    harness.start()
    seed = harness.settings.root / SEED_FILE
    wait_until(lambda: not seed.exists(), what="the import")
    extra = _script_batch(sdk, request_file(2, prefix="x"))
    seed.write_text(f"a:{a}\nx:{extra}\n")  # a user restores the file with one more line
    harness.wait_job("x.jsonl")
    assert harness.store is not None
    assert sorted(j.source_name for j in harness.store.jobs()) == [
        "a.jsonl",
        "b:with:colons.jsonl",
        "c.jsonl",
        "x.jsonl",
    ]
    wait_until(lambda: not seed.exists(), what="the second file to be renamed too")
    assert len(list(harness.settings.root.glob(f"{SEED_FILE}.imported-*"))) == 2


def test_failed_imported_batch_goes_to_failed_with_a_report(
    harness_factory: Callable[..., Harness], sdk: openai.OpenAI
) -> None:
    harness = harness_factory()
    root = harness.settings.root
    root.mkdir(exist_ok=True)
    (root / "uploaded_files").mkdir()
    content = request_file(3, model="gpt-fail-validation")
    (root / "uploaded_files" / "v.jsonl").write_text(content)
    (root / SEED_FILE).write_text(f"v:{_script_batch(sdk, content)}\n")
    harness.start()
    harness.wait_job("v.jsonl", JobState.FAILED)
    assert (harness.settings.failed / "v.jsonl").read_text() == content  # ready for `batchd retry v.jsonl`
    assert (harness.settings.failed / "v.jsonl.report.txt").exists()
    assert not (harness.settings.uploaded / "v.jsonl").exists()
