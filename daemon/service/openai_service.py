"""The OpenAI Batch API behind the service seam (``batch_service.BatchService``), over the official SDK.

The only module (with ``reply_checks``, ``sdk_errors`` and the webhook signature check it does)
that holds SDK objects: every reply is checked by ``reply_checks`` and converted here to batchd's
own dataclasses (``batch_info``) before it leaves. Every method raises only batchd errors (see
``sdk_errors``): a malformed 200 reply raises ``MalformedReplyError`` (transient, and for a POST
ambiguous: the object may have been created). The client is built with
``max_retries=0``: the SDK would blindly retry POSTs that may already have succeeded, which can
create a second paid batch; batchd retries itself, after reconciling.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any, ParamSpec, TypeVar

import httpx2
import openai
from openai.types import Batch

from daemon import crashpoints
from daemon.errors import MalformedReplyError, PermanentError
from daemon.logs import get_logger
from daemon.providers import AuthStyle, Profile
from daemon.service.batch_info import BatchInfo, FileInfo, WebhookEvent
from daemon.service.credentials import KeySource, find_profile_key
from daemon.service.reply_checks import (
    checked_batch,
    checked_file,
    is_id,
    is_int,
    metadata_readable,
    page_items,
    tolerated,
)
from daemon.service.sdk_errors import classify, profile_of, reported
from daemon.state.fileops import atomic_writer

log = get_logger(__name__)
P = ParamSpec("P")
R = TypeVar("R")
# Clocks differ between us and the service; search this far before an intent for its result.
CLOCK_SKEW = 600.0
DOWNLOAD_CHUNK = 1 << 20
LIST_PAGE = 100  # the most batches.list returns per call


def build_client(
    key: KeySource,
    base_url: str | None,
    timeout: float,
    http_client: httpx2.Client | None = None,
    *,
    auth: AuthStyle = "bearer",
    api_version: str | None = None,
) -> openai.OpenAI:
    """``http_client`` lets the conformance test watch every response; the SDK's default otherwise.

    ``auth="api-key"`` sends the key as Azure's ``api-key`` header and no Bearer; ``api_version``
    (Azure's api-version form) goes on every request's query.
    """
    if auth == "api-key":
        http_client = with_api_key_header(http_client or openai.DefaultHttpxClient(), key)
    return openai.OpenAI(
        api_key=key.read,  # a callable: read before each request, so a fixed key file just works
        base_url=base_url,
        max_retries=0,
        timeout=httpx2.Timeout(timeout, connect=10.0),
        http_client=http_client,
        default_query={"api-version": api_version} if api_version else None,
    )


def with_api_key_header(client: httpx2.Client, key: KeySource) -> httpx2.Client:
    """``client``, sending the key (read before each request) as ``api-key`` instead of a Bearer token."""

    def swap(request: httpx2.Request) -> None:
        request.headers.pop("Authorization", None)
        request.headers["api-key"] = key.read()

    hooks = client.event_hooks
    client.event_hooks = {**hooks, "request": [*hooks.get("request", []), swap]}
    return client


def translated(call: str) -> Callable[[Callable[P, R]], Callable[P, R]]:
    """Raise only batchd errors from a method that makes the SDK ``call`` (named in messages)."""

    def decorate(fn: Callable[P, R]) -> Callable[P, R]:
        @functools.wraps(fn)
        def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
            try:
                return fn(*args, **kwargs)
            except OSError:
                # The SDK wraps every network failure in its own types, so a bare OSError is local
                # storage (a full disk, an unwritable folder): not the service's fault, not retried here.
                raise
            except (ValueError, TypeError, AttributeError) as exc:
                # What the SDK raises on a 200 reply it cannot parse (not JSON, a page that is no list).
                raise reported(
                    MalformedReplyError(call, f"the reply could not be read ({type(exc).__name__})"), profile_of(args)
                ) from None
            except MalformedReplyError as exc:
                raise reported(exc, profile_of(args)) from None
            except Exception as exc:  # noqa: BLE001 - every failure is classified, none is swallowed
                raise classify(exc, profile_of(args)) from None

        return wrapper

    return decorate


class OpenAIService:
    """``BatchService`` for the OpenAI API (or any service that speaks it, such as the emulator)."""

    def __init__(self, client: openai.OpenAI, profile: Profile | None = None) -> None:
        self.client = client
        # What the service supports: a capability it lacks is never sent (see create_batch, cancel).
        self.profile = profile or Profile()

    @classmethod
    def connect(
        cls, key: KeySource, base_url: str | None, timeout: float, http_client: httpx2.Client | None = None
    ) -> OpenAIService:
        """The service over a client built by ``build_client``."""
        return cls(build_client(key, base_url, timeout, http_client))

    @classmethod
    def for_profile(
        cls, profile: Profile, key: KeySource, timeout: float, http_client: httpx2.Client | None = None
    ) -> OpenAIService:
        """The service a provider profile names: its URL, auth header style and api-version."""
        client = build_client(
            key, profile.base_url, timeout, http_client, auth=profile.auth, api_version=profile.api_version
        )
        return cls(client, profile)

    @classmethod
    def connect_to(cls, profile: Profile, timeout: float) -> OpenAIService:
        """The service of ``profile``, with its key looked up where the profile says."""
        return cls.for_profile(profile, find_profile_key(profile), timeout)

    def close(self) -> None:
        self.client.close()

    @translated("files.create")
    def upload(self, path: Path, name: str) -> str:
        """Stream ``path`` up (an open handle, never the whole file in memory) as ``name``."""
        purpose: Any = self.profile.file_purpose  # a service may name its own purpose; the SDK's Literal lists OpenAI's
        with open(path, "rb") as fh:
            created = self.client.files.create(file=(name, fh, "application/jsonl"), purpose=purpose)
        return checked_file(created, "files.create").id

    @translated("files.list")
    def find_file(self, name: str, not_before: float) -> str | None:
        """The id of an uploaded batch file called ``name`` created since ``not_before``.

        A listed file that is malformed is skipped, even one of this name: the part is then
        uploaded again, which costs nothing (a second batch would; see ``find_batches``).
        """
        for item in page_items(
            self.client.files.list(purpose=self.profile.file_purpose, order="desc", limit=1000), "files.list"
        ):
            try:
                file = checked_file(item, "files.list", "a listed file")
            except MalformedReplyError as exc:
                log.warning("listed_file_skipped", error=str(exc))
                continue
            if file.filename == name:
                return file.id
            if file.created_at < not_before - CLOCK_SKEW:
                return None
        return None

    @translated("files.list")
    def uploads_since(self, not_before: float, prefix: str) -> list[FileInfo]:
        """Every batch upload named ``prefix...`` since ``not_before``. Unlike ``find_file`` a
        malformed item is not skipped: whoever rebuilds state from this must see everything."""
        found: list[FileInfo] = []
        for item in page_items(
            self.client.files.list(purpose=self.profile.file_purpose, order="desc", limit=1000), "files.list"
        ):
            file = checked_file(item, "files.list", "a listed file")
            if file.created_at < not_before - CLOCK_SKEW:
                break
            if file.filename.startswith(prefix):
                found.append(FileInfo(file.id, file.filename, file.created_at))
        return found

    @translated("batches.list")
    def batches_since(self, not_before: float) -> list[BatchInfo]:
        """Every batch created since ``not_before``; a malformed item fails the whole listing, for
        a batch skipped here could be created a second time by whoever rebuilds state from it."""
        return [_info(checked_batch(b, "batches.list", "a listed batch")) for b in self._recent_batches(not_before)]

    @translated("batches.create")
    def create_batch(
        self, file_id: str, endpoint: str, window: str, metadata: dict[str, str], expiry: int | None
    ) -> BatchInfo:
        """A service whose profile lacks metadata or expiry gets neither field: some refuse what they
        do not know, and one that drops metadata silently must not be thought to keep it."""
        extra: dict[str, Any] = {}
        if expiry is not None and self.profile.supports_expiry:
            extra["output_expires_after"] = {"anchor": "created_at", "seconds": expiry}
        if self.profile.supports_metadata:
            extra["metadata"] = metadata
        created = self.client.batches.create(
            input_file_id=file_id,
            endpoint=endpoint,  # type: ignore[arg-type] # checked against limits.ENDPOINTS
            completion_window=window,  # type: ignore[arg-type] # checked by config validation
            **extra,
        )
        return _info(checked_batch(created, "batches.create"))

    @translated("batches.list")
    def find_batches(self, match: dict[str, str], not_before: float) -> list[BatchInfo]:
        """Batches whose metadata holds every pair of ``match``, oldest first.

        Unlike a file, a listed batch that cannot be read is not skipped unless its metadata shows
        it is not one of ours: missing our own batch here would create and pay for a second one.
        """
        found = [
            _info(checked_batch(b, "batches.list", "a listed batch"))
            for b in self._recent_batches(not_before)
            if _matches(b, match)
        ]
        return sorted(found, key=lambda b: (b.created_at, b.id))

    @translated("batches.list")
    def list_batches(self, not_before: float, wanted: set[str], newest: str | None = None) -> dict[str, BatchInfo]:
        """Page through ``batches.list`` (100 per call, newest first) until every wanted id is seen.

        If a whole first page holds none of them, another client of the account has buried ours
        under newer batches: the listing starts again right after ``newest`` (our newest wanted
        batch, which the caller then retrieves), skipping theirs. Paging stops early once the next
        page would cost more than retrieving each missing batch; the caller retrieves the rest.
        """
        seen: dict[str, BatchInfo] = {}
        buried = not self._collect(self._recent_batches(not_before), wanted, seen, give_up_on_empty_page=bool(newest))
        if buried and newest:
            self._collect(self._recent_batches(not_before, after=newest), wanted, seen, give_up_on_empty_page=False)
        return seen

    @staticmethod
    def _collect(
        batches: Iterator[object], wanted: set[str], seen: dict[str, BatchInfo], give_up_on_empty_page: bool
    ) -> bool:
        """Add the wanted ones of ``batches`` to ``seen``; False if a full first page held none.

        A malformed listed batch is left out rather than failing the listing for every other one:
        the caller retrieves each wanted batch not seen here, and that call checks it again.
        """
        for listed, batch in enumerate(batches, start=1):
            batch_id = getattr(batch, "id", None)
            if isinstance(batch_id, str) and batch_id in wanted and (checked := _listed_batch(batch)) is not None:
                seen[checked.id] = _info(checked)
                if len(seen) == len(wanted):
                    break
            if listed % LIST_PAGE == 0:
                if give_up_on_empty_page and listed == LIST_PAGE and not seen:
                    return False
                if listed // LIST_PAGE >= len(wanted) - len(seen):
                    break
        return True

    def _recent_batches(self, not_before: float, after: str | None = None) -> Iterator[object]:
        """Newest first (from just after batch ``after``, if given), stopping once past
        ``not_before`` if the service lists newest first.

        The order of GET /batches is not documented, so stopping early is only done while the
        listing has been seen to go backwards in time; otherwise every page is read.
        """
        descending = True
        last: int | None = None
        pages = (
            self.client.batches.list(limit=LIST_PAGE, after=after)
            if after
            else self.client.batches.list(limit=LIST_PAGE)
        )
        for batch in map(tolerated, page_items(pages, "batches.list")):
            created_at = getattr(batch, "created_at", None)
            if is_int(created_at):  # a malformed one says nothing about the order
                if last is not None and created_at > last:
                    descending = False
                last = created_at
                if descending and created_at < not_before - CLOCK_SKEW:
                    return
            yield batch

    @translated("batches.retrieve")
    def retrieve(self, batch_id: str) -> BatchInfo:
        return _same_batch(
            checked_batch(self.client.batches.retrieve(batch_id), "batches.retrieve"), batch_id, "batches.retrieve"
        )

    @translated("batches.cancel")
    def cancel(self, batch_id: str) -> BatchInfo:
        if not self.profile.supports_cancel:
            raise PermanentError(
                f"provider profile {self.profile.name!r} cannot cancel batches (supports_cancel = false): "
                f"batch {batch_id} runs on until the service ends it; cancel it in the service's own console"
            )
        return _same_batch(
            checked_batch(self.client.batches.cancel(batch_id), "batches.cancel"), batch_id, "batches.cancel"
        )

    @translated("files.delete")
    def delete_file(self, file_id: str) -> bool:
        """Delete ``file_id``; False if the service no longer has it (deleted before, or expired)."""
        try:
            self.client.files.delete(file_id)
        except openai.NotFoundError:
            return False
        return True

    @translated("files.content")
    def download(self, file_id: str, dest: Path) -> int:
        """Stream a file's content to ``dest`` via a temp file; ``dest`` appears only when whole."""
        size = 0
        with self.client.files.with_streaming_response.content(file_id) as resp, atomic_writer(dest) as fh:
            for chunk in resp.iter_bytes(DOWNLOAD_CHUNK):
                fh.write(chunk)
                size += len(chunk)
                crashpoints.reach("downloading")
            crashpoints.reach("downloaded")
        return size

    def unwrap_webhook(self, body: bytes, headers: Mapping[str, str], secret: str) -> WebhookEvent:
        """The SDK checks the signature (ValueError if it is not good) and reads the event."""
        event = self.client.webhooks.unwrap(body, dict(headers), secret=secret)
        kind = getattr(event, "type", None)
        batch_id = getattr(getattr(event, "data", None), "id", None)
        return WebhookEvent(kind if isinstance(kind, str) else None, batch_id if is_id(batch_id) else None)


def _info(batch: Batch) -> BatchInfo:
    """A checked batch as batchd's own dataclass: the one place an SDK batch becomes one."""
    return BatchInfo.from_dict(batch.model_dump(mode="json", warnings=False))


def _matches(batch: object, match: dict[str, str]) -> bool:
    """Whether a listed batch carries ``match``; raises when that cannot be told."""
    meta = getattr(batch, "metadata", None)
    if not isinstance(batch, Batch) or not metadata_readable(meta):
        raise MalformedReplyError("batches.list", "a listed batch has no readable metadata")
    return all((meta or {}).get(k) == v for k, v in match.items())


def _listed_batch(batch: object) -> Batch | None:
    """``batch`` checked, or None (logged) when it is malformed."""
    try:
        return checked_batch(batch, "batches.list", "a listed batch")
    except MalformedReplyError as exc:
        log.warning("listed_batch_skipped", batch_id=getattr(batch, "id", None), error=str(exc))
        return None


def _same_batch(batch: Batch, batch_id: str, call: str) -> BatchInfo:
    if batch.id != batch_id:
        raise MalformedReplyError(call, "id is not the batch asked for")
    return _info(batch)
