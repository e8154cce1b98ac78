"""Output and error files of a finished batch.

Lines are written in the plan's shuffled order, because the real API does not keep input order.
Bodies are re-read from the input at their offsets one at a time, so memory stays flat.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, BinaryIO

import orjson

from daemon.emulator.answers import answer
from daemon.emulator.body_checks import BodyError, body_error
from daemon.emulator.errors import error_body
from daemon.emulator.ids import stable_hex
from daemon.emulator.records import InputPlan, RequestRef

EXPIRED_CUTOFF = ("batch_expired", "This request could not be executed before the completion window expired.")
CANCELLED_CUTOFF = ("batch_cancelled", "This request was not executed because the batch was cancelled.")


FILTER_CATEGORIES = ("hate", "self_harm", "sexual", "violence")


@dataclass(frozen=True, slots=True)
class ResultJob:
    batch_id: str
    endpoint: str
    plan: InputPlan
    input_path: Path
    # Requests at output positions below this ran; the rest are written with `cutoff`.
    finished: int
    cutoff: tuple[str, str] | None
    seed: int
    created: int
    output_path: Path
    error_path: Path
    string_bodies: bool = False  # response.body as a JSON-encoded string
    drop_finished: bool = False  # count the finished requests but write no line for them
    content_filters: bool = False  # Azure's prompt_filter_results / content_filter_results in chat bodies


@dataclass(slots=True)
class ResultTally:
    output_path: Path | None = None
    error_path: Path | None = None
    completed: int = 0
    failed: int = 0
    input_tokens: int = 0
    output_tokens: int = 0


class _LazyFile:
    """A file that is only created by its first line: no successes means no output file at all."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.handle: BinaryIO | None = None

    def write_line(self, line: dict[str, Any]) -> None:
        if self.handle is None:
            self.handle = self.path.open("wb")
        self.handle.write(orjson.dumps(line) + b"\n")

    def __enter__(self) -> _LazyFile:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None) -> None:
        if self.handle is not None:
            self.handle.close()
        if kind is not None:
            with contextlib.suppress(FileNotFoundError):
                self.path.unlink()

    @property
    def written(self) -> Path | None:
        return self.path if self.handle is not None else None


def _line_ids(job: ResultJob, ref: RequestRef) -> tuple[str, str]:
    return (
        f"batch_req_{stable_hex(job.batch_id, ref.custom_id)}",
        f"req_{stable_hex('req', job.batch_id, ref.custom_id)}",
    )


def success_line(job: ResultJob, ref: RequestRef, body: dict[str, Any], tally: ResultTally) -> dict[str, Any]:
    result = answer(
        job.endpoint, body, model=job.plan.model, seed=job.seed, custom_id=ref.custom_id, created=job.created
    )
    tally.completed += 1
    tally.input_tokens += result.input_tokens
    tally.output_tokens += result.output_tokens
    line_id, request_id = _line_ids(job, ref)
    answered = with_content_filters(result.body) if job.content_filters else result.body
    response = {"status_code": 200, "request_id": request_id, "body": _body(job, answered)}
    return {"id": line_id, "custom_id": ref.custom_id, "response": response, "error": None}


def with_content_filters(body: dict[str, Any]) -> dict[str, Any]:
    """A chat completion as Azure OpenAI answers it: each choice and the prompt say what its
    content filters found (here: nothing)."""
    if not isinstance(body.get("choices"), list):
        return body
    verdicts = {name: {"filtered": False, "severity": "safe"} for name in FILTER_CATEGORIES}
    choices = [{**choice, "content_filter_results": verdicts} for choice in body["choices"]]
    prompt = [{"prompt_index": 0, "content_filter_results": verdicts}]
    return {**body, "choices": choices, "prompt_filter_results": prompt}


def http_error_line(job: ResultJob, ref: RequestRef, tally: ResultTally) -> dict[str, Any]:
    """A request the endpoint rejected: the error is inside the response, top-level `error` is null."""
    tally.failed += 1
    line_id, request_id = _line_ids(job, ref)
    message = f"Emulated request failure for custom_id '{ref.custom_id}' (model {job.plan.model})."
    body = error_body(message, "invalid_request_error", code="emulated_request_error")
    response = {"status_code": 400, "request_id": request_id, "body": _body(job, body)}
    return {"id": line_id, "custom_id": ref.custom_id, "response": response, "error": None}


def refused_line(job: ResultJob, ref: RequestRef, error: BodyError, tally: ResultTally) -> dict[str, Any]:
    """A request whose body the endpoint refused (see body_checks): a 400 in the error file."""
    tally.failed += 1
    line_id, request_id = _line_ids(job, ref)
    body = error_body(error.message, "invalid_request_error", code=error.code, param=error.param)
    response = {"status_code": 400, "request_id": request_id, "body": _body(job, body)}
    return {"id": line_id, "custom_id": ref.custom_id, "response": response, "error": None}


def _ran_line(job: ResultJob, ref: RequestRef, source: BinaryIO, tally: ResultTally) -> tuple[dict[str, Any], bool]:
    """The line of a request that ran, and whether it succeeded (its body passed the endpoint's checks)."""
    body = read_body(source, ref)
    error = body_error(job.endpoint, body)
    if error is not None:
        return refused_line(job, ref, error, tally), False
    return success_line(job, ref, body, tally), True


def _body(job: ResultJob, body: dict[str, Any]) -> dict[str, Any] | str:
    return orjson.dumps(body).decode() if job.string_bodies else body


def cutoff_line(job: ResultJob, ref: RequestRef, cutoff: tuple[str, str]) -> dict[str, Any]:
    """A request that never ran (expiry, cancel): no response, only a top-level error."""
    line_id, _ = _line_ids(job, ref)
    error = {"code": cutoff[0], "message": cutoff[1]}
    return {"id": line_id, "custom_id": ref.custom_id, "response": None, "error": error}


def read_body(source: BinaryIO, ref: RequestRef) -> dict[str, Any]:
    source.seek(ref.offset)
    body: dict[str, Any] = orjson.loads(source.read(ref.length))["body"]
    return body


def write_results(job: ResultJob) -> ResultTally:
    tally = ResultTally()
    plan = job.plan
    with job.input_path.open("rb") as source, _LazyFile(job.output_path) as out, _LazyFile(job.error_path) as err:
        for position, index in enumerate(plan.order):
            ref = plan.requests[index]
            if position >= job.finished:
                err.write_line(cutoff_line(job, ref, job.cutoff or EXPIRED_CUTOFF))
            elif plan.failing[position]:
                line = http_error_line(job, ref, tally)
                if not job.drop_finished:
                    err.write_line(line)
            else:
                line, ok = _ran_line(job, ref, source, tally)
                if not job.drop_finished:
                    (out if ok else err).write_line(line)
    tally.output_path = out.written
    tally.error_path = err.written
    return tally
