"""Anthropic's Message Batches behind the service seam (``batch_service.BatchService``), over plain HTTP.

Message Batches have no files step: the request list travels in the create call. The seam stays
file-based: ``upload`` only names the part file (a local reference, nothing is sent) and
``create_batch`` streams that file as the body ``{"requests": [line, line, ...]}``, read from disk
in chunks with its length known beforehand, so memory stays flat for a 256 MB batch. The
official ``anthropic`` SDK takes the requests as a Python list (a 256 MB batch would be parsed
into memory, several times its size) and re-serialises each request, so plain HTTP (httpx, the
transport the openai SDK already brings) is used instead. Nothing retries here: batchd retries
after reconciling (a blind retry of a create that may have succeeded could pay twice).

Batches carry no metadata, so a create whose reply was lost is found by ``candidate_batches``.
Only batchd errors leave this module; replies are checked in ``anthropic_replies``.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any, ParamSpec, TypeVar
from urllib.parse import urlsplit

import httpx2
import orjson

from daemon import crashpoints
from daemon.errors import (
    AccountError,
    DaemonError,
    MalformedReplyError,
    NotFoundError,
    PermanentError,
    TransientError,
)
from daemon.logs import get_logger
from daemon.providers import ANTHROPIC_URL, ANTHROPIC_VERSION, Profile
from daemon.redaction import redact
from daemon.service.anthropic_replies import batch_from_reply, page_from_reply
from daemon.service.batch_info import BatchInfo, FileInfo, WebhookEvent
from daemon.service.credentials import KeySource, find_profile_key
from daemon.service.sdk_errors import classify, counted, profile_of, reported, retry_after
from daemon.state.fileops import atomic_writer

log = get_logger(__name__)
P = ParamSpec("P")
R = TypeVar("R")
LOCAL_PREFIX = "local:"  # a part file's "file id": nothing is uploaded, the create reads the file
CLOCK_SKEW = 600.0
LIST_PAGE = 100
BODY_CHUNK = 1 << 20
DOWNLOAD_CHUNK = 1 << 20
BODY_HEAD, BODY_TAIL = b'{"requests":[', b"]}"
# Anthropic's error types that mean the account, not this call, is the problem.
ACCOUNT_TYPES = frozenset({"authentication_error", "permission_error", "billing_error"})


def local_reference(path: Path) -> str:
    return LOCAL_PREFIX + str(path)


def part_path(file_id: str) -> Path:
    if not file_id.startswith(LOCAL_PREFIX):
        raise PermanentError(f"{file_id!r} is not a part file batchd named; a Message Batch is made from one")
    return Path(file_id.removeprefix(LOCAL_PREFIX))


def translated(call: str) -> Callable[[Callable[P, R]], Callable[P, R]]:
    """Raise only batchd errors from a method that makes the HTTP ``call`` (named in messages)."""

    def decorate(fn: Callable[P, R]) -> Callable[P, R]:
        @functools.wraps(fn)
        def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
            try:
                return fn(*args, **kwargs)
            except MalformedReplyError as exc:
                raise reported(exc, profile_of(args)) from None
            except DaemonError:
                raise
            except OSError:
                raise  # local storage (a full disk): not the service's fault
            except Exception as exc:  # noqa: BLE001 - every failure is classified, none is swallowed
                raise classify(exc, profile_of(args)) from None

        return wrapper

    return decorate


def status_error(response: httpx2.Response, call: str) -> DaemonError:
    """The batchd error for an HTTP error reply of Anthropic's API (message masked of secrets)."""
    status, kind, message = response.status_code, *_error_of(response)
    text = f"{call}: HTTP {status}{f' {kind}' if kind else ''}: {redact(message)}"
    if status < 400:  # e.g. a redirect that could not be followed: not the content asked for
        return MalformedReplyError(call, f"HTTP {status} instead of the content")
    if status in (401, 403) or kind in ACCOUNT_TYPES:
        return AccountError(text)
    if status in (408, 409, 429, 529) or status >= 500:
        # A 429 is refused before any work is done; anything else may have been carried out.
        return TransientError(text, retry_after=retry_after(response.headers), ambiguous=status != 429)
    if status == 404:
        return NotFoundError(text)
    return PermanentError(text)


def _error_of(response: httpx2.Response) -> tuple[str, str]:
    try:
        body = orjson.loads(response.read())
    except (orjson.JSONDecodeError, httpx2.HTTPError):
        return "", "the reply was not JSON"
    error = body.get("error") if isinstance(body, dict) else None
    if not isinstance(error, dict):
        return "", "the reply had no error object"
    kind, message = error.get("type"), error.get("message")
    return (kind if isinstance(kind, str) else ""), (message if isinstance(message, str) else "")


def request_body(path: Path) -> tuple[int, Iterator[bytes]]:
    """(length, chunks) of ``{"requests":[...]}`` made from a part file's lines (each ending in one
    LF, as part files do), every request byte as it was checked; read in chunks, never whole."""
    lines = 0
    size = 0
    with open(path, "rb") as fh:
        for raw in fh:
            lines += 1
            size += len(raw.rstrip(b"\n"))
    length = len(BODY_HEAD) + size + max(lines - 1, 0) + len(BODY_TAIL)
    return length, _body_chunks(path)


def _body_chunks(path: Path) -> Iterator[bytes]:
    yield BODY_HEAD
    pending: list[bytes] = []
    held = 0
    first = True
    with open(path, "rb") as fh:
        for raw in fh:
            pending.append(raw.rstrip(b"\n") if first else b"," + raw.rstrip(b"\n"))
            first, held = False, held + len(raw)
            if held >= BODY_CHUNK:
                yield b"".join(pending)
                pending, held = [], 0
    yield b"".join(pending) + BODY_TAIL


class AnthropicService:
    """``BatchService`` for Anthropic's Message Batches API (or a server that speaks it)."""

    def __init__(self, client: httpx2.Client, profile: Profile) -> None:
        self.client = client
        self.profile = profile

    @classmethod
    def for_profile(
        cls, profile: Profile, key: KeySource, timeout: float, transport: httpx2.BaseTransport | None = None
    ) -> AnthropicService:
        base_url = (profile.base_url or ANTHROPIC_URL).rstrip("/")
        home = _origin(base_url)

        def sign(request: httpx2.Request) -> None:
            # Read before each request (a changed key file just works); sent only to the configured
            # service, never to a host a results download is redirected to.
            if _origin(str(request.url)) == home:
                request.headers["x-api-key"] = key.read()
            else:
                request.headers.pop("x-api-key", None)

        client = httpx2.Client(
            base_url=base_url,
            timeout=httpx2.Timeout(timeout, connect=10.0),
            headers={"anthropic-version": profile.api_version or ANTHROPIC_VERSION, "accept": "application/json"},
            event_hooks={"request": [sign]},
            transport=transport,
            follow_redirects=False,
        )
        return cls(client, profile)

    @classmethod
    def connect_to(cls, profile: Profile, timeout: float) -> AnthropicService:
        return cls.for_profile(profile, find_profile_key(profile), timeout)

    def close(self) -> None:
        self.client.close()

    def upload(self, path: Path, name: str) -> str:
        """Nothing to upload: the create call carries the requests. The part file is the reference."""
        return local_reference(path)

    def find_file(self, name: str, not_before: float) -> str | None:
        return None  # nothing was uploaded; "uploading" again costs nothing

    def uploads_since(self, not_before: float, prefix: str) -> list[FileInfo]:
        return []

    @translated("messages.batches.list")
    def batches_since(self, not_before: float) -> list[BatchInfo]:
        """Every batch created since ``not_before`` (less the clock skew); a malformed one fails all."""
        return [batch_from_reply(item, "messages.batches.list") for item in self._recent(not_before)]

    @translated("messages.batches.create")
    def create_batch(
        self, file_id: str, endpoint: str, window: str, metadata: dict[str, str], expiry: int | None
    ) -> BatchInfo:
        """Stream the part file as the request list. ``window``, ``metadata`` and ``expiry`` have no
        place in a Message Batch (24 h, no metadata, results kept 29 days) and are not sent."""
        length, chunks = request_body(part_path(file_id))
        headers = {"content-type": "application/json", "content-length": str(length)}
        response = self.client.post("/v1/messages/batches", content=chunks, headers=headers)
        return batch_from_reply(self._json(response, "messages.batches.create"), "messages.batches.create")

    def find_batches(self, match: dict[str, str], not_before: float) -> list[BatchInfo]:
        raise PermanentError("Message Batches carry no metadata to search; see candidate_batches")

    @translated("messages.batches.list")
    def list_batches(self, not_before: float, wanted: set[str], newest: str | None = None) -> dict[str, BatchInfo]:
        """The wanted batches a listing since ``not_before`` shows; a malformed one is left out (the
        caller retrieves each batch not found here, and that call checks it again)."""
        seen: dict[str, BatchInfo] = {}
        for item in self._recent(not_before):
            batch_id = item.get("id") if isinstance(item, dict) else None
            if batch_id in wanted:
                try:
                    seen[str(batch_id)] = batch_from_reply(item, "messages.batches.list")
                except MalformedReplyError as exc:
                    log.warning("listed_batch_skipped", batch_id=batch_id, error=str(exc))
                if len(seen) == len(wanted):
                    break
        return seen

    @translated("messages.batches.retrieve")
    def retrieve(self, batch_id: str) -> BatchInfo:
        call, path = "messages.batches.retrieve", f"/v1/messages/batches/{batch_id}"
        return _same(batch_from_reply(self._json(self.client.get(path), call), call), batch_id)

    @translated("messages.batches.cancel")
    def cancel(self, batch_id: str) -> BatchInfo:
        if not self.profile.supports_cancel:
            raise PermanentError(
                f"provider profile {self.profile.name!r} cannot cancel batches (supports_cancel = false): "
                f"batch {batch_id} runs on until the service ends it"
            )
        call, path = "messages.batches.cancel", f"/v1/messages/batches/{batch_id}/cancel"
        return _same(batch_from_reply(self._json(self.client.post(path), call), call), batch_id)

    def delete_file(self, file_id: str) -> bool:
        """Nothing was uploaded, and results live with their batch (kept 29 days): nothing to delete."""
        return True

    @translated("messages.batches.results")
    def download(self, file_id: str, dest: Path) -> int:
        """Stream the results at ``file_id`` (the batch's results_url) to ``dest``, whole or not at all."""
        size = 0
        url = self._results_url(file_id)
        with self.client.stream("GET", url, follow_redirects=True) as response, atomic_writer(dest) as fh:
            if response.status_code != 200:
                raise self._failed(response, "messages.batches.results")
            for chunk in response.iter_bytes(DOWNLOAD_CHUNK):
                fh.write(chunk)
                size += len(chunk)
                crashpoints.reach("downloading")
            crashpoints.reach("downloaded")
        return size

    def unwrap_webhook(self, body: bytes, headers: Mapping[str, str], secret: str) -> WebhookEvent:
        raise ValueError("Message Batches send no webhooks; their batches are polled")

    def _results_url(self, url: str) -> str:
        """The key is sent only to the configured service: a results_url elsewhere is asked of it by path."""
        given = urlsplit(url)
        if _origin(url) != _origin(str(self.client.base_url)):
            log.warning("results_url_rehomed", host=given.netloc)
            return given.path + (f"?{given.query}" if given.query else "")
        return url

    def _recent(self, not_before: float) -> Iterator[Any]:
        """Listed batches newest first, stopping at the first created before ``not_before`` less the skew."""
        after: str | None = None
        while True:
            params: dict[str, Any] = {"limit": LIST_PAGE, **({"after_id": after} if after else {})}
            page = self._json(self.client.get("/v1/messages/batches", params=params), "messages.batches.list")
            items, more, after = page_from_reply(page, "messages.batches.list")
            for item in items:
                created = listed_time(item)
                if created is not None and created < not_before - CLOCK_SKEW:
                    return
                yield item
            if not more or after is None:
                return

    def _failed(self, response: httpx2.Response, call: str) -> DaemonError:
        """An error reply as a batchd error, counted as a failed call of this profile's service (a
        malformed one is logged and counted by ``translated``)."""
        error = status_error(response, call)
        return error if isinstance(error, MalformedReplyError) else counted(error, self.profile.name)

    def _json(self, response: httpx2.Response, call: str) -> Any:
        if response.status_code >= 400:
            raise self._failed(response, call)
        try:
            return orjson.loads(response.content)
        except orjson.JSONDecodeError:
            raise MalformedReplyError(call, "the reply is not JSON") from None


def _origin(url: str) -> tuple[str, str]:
    parts = urlsplit(url)
    return parts.scheme, parts.netloc


def listed_time(item: object) -> int | None:
    """A listed batch's creation time, None if it cannot be read (it says nothing of the order then)."""
    try:
        return batch_from_reply(item, "messages.batches.list").created_at
    except MalformedReplyError:
        return None


def _same(batch: BatchInfo, batch_id: str) -> BatchInfo:
    if batch.id != batch_id:
        raise MalformedReplyError("messages.batches.retrieve", "id is not the batch asked for")
    return batch
