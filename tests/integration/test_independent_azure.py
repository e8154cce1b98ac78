"""An Azure OpenAI v1 Batch API written here from Azure's documented dialect, independently of the
project's emulator: only the calls batchd makes, on loopback. Its `api-key` header is checked (a
Bearer is refused), lines name GlobalBatch deployments (anything else fails the batch with
`model_not_found`), a batch never expires (`expires_at` null), and a successful batch still has an
error file, of 0 bytes. batchd must run a job through it end to end, its model map applied and undone.
"""

from __future__ import annotations

import itertools
import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from daemon.config import load_settings
from daemon.emulator import EmulatorServer
from daemon.state.states import JobState
from tests.support import TEST_KEY, Harness, fast_settings, request_file

DEPLOYMENT = "contoso-gpt4o-mini-globalbatch"
PREFIX = "/openai/v1"
NOT_FOUND: tuple[int, Any, bytes | None] = (404, {"error": {"code": "404", "message": "Resource not found"}}, None)


@dataclass
class AzureV1:
    """The service's state: files (bytes) and batches, each batch moving on one step per retrieve."""

    files: dict[str, tuple[str, bytes]] = field(default_factory=dict)  # id: (purpose, bytes)
    batches: dict[str, dict[str, Any]] = field(default_factory=dict)
    seen: list[tuple[str, str, dict[str, str]]] = field(default_factory=list)  # method, path, auth headers
    ids: Iterator[int] = field(default_factory=itertools.count)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def new_id(self, prefix: str) -> str:
        return f"{prefix}{next(self.ids):06d}"

    def add_file(self, purpose: str, data: bytes) -> str:
        file_id = self.new_id("file-")
        self.files[file_id] = (purpose, data)
        return file_id

    def file_json(self, file_id: str, name: str = "input.jsonl") -> dict[str, Any]:
        purpose, data = self.files[file_id]
        return {
            "id": file_id,
            "object": "file",
            "bytes": len(data),
            "created_at": int(time.time()),
            "filename": name,
            "purpose": purpose,
            "status": "processed",
        }

    def create_batch(self, payload: dict[str, Any]) -> dict[str, Any]:
        batch = {
            "id": self.new_id("batch_"),
            "object": "batch",
            "endpoint": payload["endpoint"],
            "input_file_id": payload["input_file_id"],
            "completion_window": payload["completion_window"],
            "status": "validating",
            "created_at": int(time.time()),
            "expires_at": None,
            "output_file_id": None,
            "error_file_id": None,
            "errors": None,
            "metadata": payload.get("metadata"),
            "request_counts": {"total": 0, "completed": 0, "failed": 0},
        }
        self.batches[batch["id"]] = batch
        return batch

    def advance(self, batch: dict[str, Any]) -> dict[str, Any]:
        """validating -> in_progress (or failed) -> finalizing -> completed, one step per look."""
        if batch["status"] == "validating":
            self._validate(batch)
        elif batch["status"] == "in_progress":
            batch["status"] = "finalizing"
        elif batch["status"] == "finalizing":
            self._complete(batch)
        return batch

    def _lines(self, batch: dict[str, Any]) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.files[batch["input_file_id"]][1].splitlines() if line.strip()]

    def _validate(self, batch: dict[str, Any]) -> None:
        lines = self._lines(batch)
        wrong = [n for n, line in enumerate(lines, 1) if line["body"].get("model") != DEPLOYMENT]
        if wrong:
            message = f"The provided model deployment '{lines[wrong[0] - 1]['body'].get('model')}' does not exist."
            error = {"code": "model_not_found", "message": message, "param": "body.model", "line": wrong[0]}
            batch.update(status="failed", errors={"object": "list", "data": [error]}, failed_at=int(time.time()))
            return
        batch.update(status="in_progress", request_counts={"total": len(lines), "completed": 0, "failed": 0})

    def _complete(self, batch: dict[str, Any]) -> None:
        out = b"".join(json.dumps(self._answer(line)).encode() + b"\n" for line in self._lines(batch))
        batch["output_file_id"] = self.add_file("batch_output", out)
        batch["error_file_id"] = self.add_file("batch_output", b"")  # Azure: there even when nothing failed
        total = batch["request_counts"]["total"]
        batch.update(status="completed", completed_at=int(time.time()))
        batch["request_counts"] = {"total": total, "completed": total, "failed": 0}

    def _answer(self, line: dict[str, Any]) -> dict[str, Any]:
        body = {
            "id": self.new_id("chatcmpl-"),
            "object": "chat.completion",
            "created": int(time.time()),
            "model": DEPLOYMENT,
            "choices": [{"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": "ok"}}],
            "usage": {"prompt_tokens": 5, "completion_tokens": 1, "total_tokens": 6},
        }
        return {
            "id": self.new_id("batch_req_"),
            "custom_id": line["custom_id"],
            "response": {"status_code": 200, "request_id": self.new_id("req_"), "body": body},
            "error": None,
        }


def multipart_fields(content_type: str, body: bytes) -> dict[str, bytes]:
    """The form fields of a multipart/form-data body, by name (the file's too)."""
    boundary = content_type.split("boundary=", 1)[1].strip('"').encode()
    fields: dict[str, bytes] = {}
    for chunk in body.split(b"--" + boundary)[1:-1]:
        head, _, value = chunk.strip(b"\r\n").partition(b"\r\n\r\n")
        name = head.split(b'name="', 1)[1].split(b'"', 1)[0].decode()
        fields[name] = value
    return fields


class Handler(BaseHTTPRequestHandler):
    server: Server

    def log_message(self, *_: Any) -> None:  # quiet: the test looks at `seen`
        pass

    def do_GET(self) -> None:
        self._route("GET")

    def do_POST(self) -> None:
        self._route("POST")

    def do_DELETE(self) -> None:
        self._route("DELETE")

    def _reply(self, status: int, payload: Any, raw: bytes | None = None) -> None:
        data = raw if raw is not None else json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/octet-stream" if raw is not None else "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _route(self, method: str) -> None:
        service, path = self.server.service, self.path.split("?", 1)[0]
        auth = {name: self.headers[name] for name in ("api-key", "Authorization") if self.headers[name] is not None}
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        with service.lock:
            service.seen.append((method, path, auth))
            if self.headers.get("api-key") != TEST_KEY:  # Azure's key header; a Bearer key is not one
                self._reply(
                    401, {"error": {"code": "401", "message": "Access denied due to invalid subscription key."}}
                )
                return
            if not path.startswith(PREFIX + "/"):
                self._reply(*NOT_FOUND[:2])
                return
            status, payload, raw = self._answer(method, path[len(PREFIX) :].strip("/").split("/"), body)
            self._reply(status, payload, raw)

    def _answer(self, method: str, parts: list[str], body: bytes) -> tuple[int, Any, bytes | None]:
        if parts[0] == "files":
            return self._files(method, parts, body)
        if parts[0] == "batches":
            return self._batches(method, parts, body)
        return NOT_FOUND

    def _files(self, method: str, parts: list[str], body: bytes) -> tuple[int, Any, bytes | None]:
        service = self.server.service
        match method, parts:
            case "POST", ["files"]:
                form = multipart_fields(self.headers["Content-Type"], body)
                return 200, service.file_json(service.add_file(form["purpose"].decode(), form["file"])), None
            case "GET", ["files"]:
                return 200, {"object": "list", "data": [service.file_json(f) for f in service.files]}, None
            case "GET", ["files", file_id, "content"] if file_id in service.files:
                return 200, None, service.files[file_id][1]
            case "DELETE", ["files", file_id] if file_id in service.files:
                del service.files[file_id]
                return 200, {"id": file_id, "object": "file", "deleted": True}, None
        return NOT_FOUND

    def _batches(self, method: str, parts: list[str], body: bytes) -> tuple[int, Any, bytes | None]:
        service = self.server.service
        match method, parts:
            case "POST", ["batches"]:
                return 200, service.create_batch(json.loads(body)), None
            case "GET", ["batches"]:
                data = [service.advance(b) for b in service.batches.values()]
                return 200, {"object": "list", "data": data, "has_more": False}, None
            case "GET", ["batches", batch_id] if batch_id in service.batches:
                return 200, service.advance(service.batches[batch_id]), None
        return NOT_FOUND


class Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), Handler)
        self.service = AzureV1()


@pytest.fixture(name="azure_v1")
def azure_v1_fixture() -> Iterator[Server]:
    server = Server()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def _harness(root: Path, openai_server: EmulatorServer, azure_v1: Server) -> Harness:
    root.mkdir()
    config = root / "batchd.toml"
    config.write_text(
        f'[providers.default]\nbase_url = "{openai_server.base_url}"\n\n'
        f'[providers.azure]\nkind = "azure"\nbase_url = "http://127.0.0.1:{azure_v1.server_address[1]}{PREFIX}/"\n'
        f'min_poll_interval = 0\nmodels = {{ "gpt-4o-mini" = "{DEPLOYMENT}" }}\n',
        encoding="utf-8",
    )
    providers = load_settings(config, environ={}).providers
    return Harness(fast_settings(root, openai_server.base_url, providers=providers), openai_server)


def test_a_job_runs_end_to_end_on_an_independent_azure_v1_service(
    tmp_path: Path, openai_server: EmulatorServer, azure_v1: Server
) -> None:
    harness = _harness(tmp_path / "root", openai_server, azure_v1).start()
    try:
        harness.drop("mapped.jsonl", request_file(3, url="/chat/completions"), "azure")
        harness.drop("unmapped.jsonl", request_file(2, prefix="u", model="gpt-4.1-nano"), "azure")
        done = harness.wait_job("mapped.jsonl", JobState.DONE, timeout=30)
        failed = harness.wait_job("unmapped.jsonl", JobState.FAILED, timeout=30)
        results = harness.results("mapped.jsonl")
        summary = harness.summary("mapped.jsonl")
    finally:
        harness.stop()
    assert [line["custom_id"] for line in results] == ["r0", "r1", "r2"]
    assert {line["response"]["body"]["model"] for line in results} == {"gpt-4o-mini"}, "the deployment name undone"
    assert summary["profile"] == "azure" and summary["outcomes"] == {"succeeded": 3, "failed": 0, "not_run": 0}
    errors = list(Path(done.result_dir or "").glob("*_errors.jsonl"))
    assert [path.stat().st_size for path in errors] == [0], "the 0-byte error file is fine"
    report = Path(str(failed.final_path) + ".report.txt").read_text()
    assert "model_not_found" in report
    service = azure_v1.service
    assert all(auth == {"api-key": TEST_KEY} for _, _, auth in service.seen), "only Azure's key header, no Bearer"
    assert not openai_server.calls.count("POST", "/v1/files"), "nothing of the azure profile went to the default's"
    sent = {
        json.loads(line)["body"]["model"]
        for p, data in service.files.values()
        if p == "batch"
        for line in data.splitlines()
    }
    assert sent == {DEPLOYMENT, "gpt-4.1-nano"}, "the map's deployment name sent; a model not in it as written"
