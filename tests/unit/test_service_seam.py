"""The service seam: only the OpenAI implementation speaks the SDK, and a part's stored batch reads
back the same whether batchd's own dataclass or an earlier version (the SDK's model) wrote it."""

from __future__ import annotations

import ast
import dataclasses
from collections import Counter
from pathlib import Path
from typing import Any

import orjson
import pytest
from openai.types import Batch

from daemon.pricing import DEFAULT_PRICES
from daemon.results.summary import build_summary
from daemon.service.batch_info import BatchError, BatchInfo, BatchUsage, RequestCounts, part_batch
from daemon.state.rows import Job, Part
from daemon.state.states import JobState, PartState

DAEMON = Path(__file__).resolve().parents[2] / "daemon"
# The modules that may import the SDK: the seam's OpenAI implementation (the service, the checks of
# its replies) and the classifier of the SDK's errors. Anything else speaks batchd's dataclasses.
SDK_USERS = frozenset(
    {
        "daemon/service/openai_service.py",
        "daemon/service/reply_checks.py",
        "daemon/service/sdk_errors.py",
    }
)
# Where the OpenAI implementation is chosen and built; everything else holds a BatchService.
SERVICE_BUILDERS = frozenset(
    {
        "daemon/service/profile_services.py",  # one service per provider profile (also for cancel, abandon)
    }
)
# A batch as the API sends it, with every part batchd reads (Azure's "" for a missing file).
API_BATCH: dict[str, Any] = {
    "id": "batch_1",
    "object": "batch",
    "endpoint": "/v1/chat/completions",
    "model": "gpt-4o-mini",
    "input_file_id": "file-in",
    "output_file_id": "file-out",
    "error_file_id": "",
    "completion_window": "24h",
    "status": "failed",
    "created_at": 1000,
    "in_progress_at": 1010,
    "failed_at": 1020,
    "request_counts": {"total": 4, "completed": 2, "failed": 1},
    "metadata": {"batchd_job": "job-1", "batchd_part": "0.0"},
    "errors": {
        "object": "list",
        "data": [{"code": "token_limit_exceeded", "message": "too many", "line": 3, "param": None}],
    },
    "usage": {
        "input_tokens": 10,
        "input_tokens_details": {"cached_tokens": 2},
        "output_tokens": 5,
        "output_tokens_details": {"reasoning_tokens": 1},
        "total_tokens": 15,
    },
}


def imports(path: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
    return found


def daemon_modules() -> list[tuple[str, set[str]]]:
    """(path from the repository, modules it imports) for every module of the daemon but the emulator."""
    return [
        (path.relative_to(DAEMON.parent).as_posix(), imports(path))
        for path in sorted(DAEMON.rglob("*.py"))
        if "emulator" not in path.relative_to(DAEMON).parts
    ]


def test_only_the_openai_implementation_imports_the_sdk() -> None:
    users = {path for path, found in daemon_modules() if any(m == "openai" or m.startswith("openai.") for m in found)}
    assert users == SDK_USERS


def test_only_the_builders_name_the_openai_implementation() -> None:
    builders = {
        path for path, found in daemon_modules() if "daemon.service.openai_service" in found and path not in SDK_USERS
    }
    assert builders == SERVICE_BUILDERS


def test_a_batch_in_the_api_shape_reads_into_the_dataclasses() -> None:
    info = BatchInfo.from_dict(API_BATCH)
    assert (info.id, info.status, info.created_at, info.in_progress_at, info.failed_at) == (
        "batch_1",
        "failed",
        1000,
        1010,
        1020,
    )
    assert (info.input_file_id, info.output_file_id, info.error_file_id) == ("file-in", "file-out", None)
    assert info.request_counts == RequestCounts(completed=2, failed=1, total=4)
    assert info.errors == (BatchError("token_limit_exceeded", 3, "too many", None),)
    assert info.usage == BatchUsage(10, 2, 5, 1, 15)
    assert info.metadata == {"batchd_job": "job-1", "batchd_part": "0.0"}
    assert info.stamp("failed") == 1020 and info.stamp("completed") is None and info.stamp("bogus") is None


def test_the_dataclass_json_reads_back_equal() -> None:
    info = BatchInfo.from_dict(API_BATCH)
    assert BatchInfo.from_json(info.to_json()) == info
    bare = BatchInfo("batch_2", "validating", 5)
    assert BatchInfo.from_json(bare.to_json()) == bare


def test_a_stored_row_is_a_json_object() -> None:
    with pytest.raises(ValueError, match="not a JSON object"):
        BatchInfo.from_json("[]")


def _part(index: int, batch_json: str) -> Part:
    part = Part("job-1", index, 0, "p", 1, 4, 10, 3, PartState.FINISHED, 0.0, 0.0, batch_id="batch_1")
    part.batch_status, part.batch_json = "failed", batch_json
    return part


def test_a_row_written_before_the_seam_reads_as_one_written_after(tmp_path: Path) -> None:
    """Earlier versions stored the SDK's Batch as JSON: it reads into the same BatchInfo, and
    summary.json's batch entry keeps the fields and values the SDK's model gave it."""
    sdk = Batch.model_validate(API_BATCH)
    old, new = _part(0, sdk.model_dump_json()), _part(1, BatchInfo.from_dict(API_BATCH).to_json())
    assert part_batch(old) == part_batch(new) == BatchInfo.from_dict(API_BATCH)
    job = Job("job-1", "in.jsonl", "in.jsonl", "in.jsonl", JobState.DONE, 0.0, 0.0)
    results = tmp_path / "results.jsonl"
    results.write_text("")
    entries = build_summary(job, [old, new], Counter(), 1.0, results, DEFAULT_PRICES)["batches"]
    assert sdk.request_counts is not None and sdk.errors is not None and sdk.usage is not None
    for entry in entries:
        assert entry["request_counts"] == sdk.request_counts.model_dump()
        assert entry["errors"] == [e.model_dump() for e in sdk.errors.data or []]
        assert entry["usage"] == sdk.usage.model_dump()
        assert (entry["output_file_id"], entry["error_file_id"]) == ("file-out", None)
    assert {k: v for k, v in entries[0].items() if k != "part"} == {k: v for k, v in entries[1].items() if k != "part"}


def test_the_json_keeps_the_api_names_that_sql_and_status_read() -> None:
    """The metrics query picks ``$.request_counts.completed`` and ``batchd status`` reads usage
    from the stored JSON as it is: the dataclass writes those under the API's names."""
    data = orjson.loads(BatchInfo.from_dict(API_BATCH).to_json())

    assert data["request_counts"] == {"completed": 2, "failed": 1, "total": 4}
    assert data["usage"] == API_BATCH["usage"]
    assert data["errors"] == [dataclasses.asdict(BatchError("token_limit_exceeded", 3, "too many", None))]
