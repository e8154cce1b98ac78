"""The service seam: every call batchd makes to a batch service goes through ``BatchService``.

Only the project's own dataclasses (``batch_info``) cross it, never an SDK type, and every method
raises only batchd errors (``daemon.errors``): a transient failure, an account problem, a permanent
refusal, or a malformed reply (checked at the seam, so nothing past it meets a field of the wrong
type). The rest of the daemon (submitter, poller, collector, remote cleanup, recovery, seed import,
the CLI) holds a ``BatchService`` and knows nothing of how the service is spoken to.

``openai_service.OpenAIService`` implements it over the official OpenAI SDK. This is where the next
services plug in (Azure OpenAI's Batch API, Anthropic's Message Batches): one more implementation of
this protocol, converting that service's replies to the same dataclasses at its boundary.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Protocol

from daemon.providers import Profile
from daemon.service.batch_info import BatchInfo, FileInfo, WebhookEvent


class BatchService(Protocol):
    # The provider profile served: what the service supports (metadata, list, cancel, expiry).
    profile: Profile

    def close(self) -> None:
        """Release the connection pool; no call is made after this."""

    def upload(self, path: Path, name: str) -> str:
        """Stream ``path`` up as a batch input called ``name``; its file id."""

    def find_file(self, name: str, not_before: float) -> str | None:
        """The id of an uploaded batch input called ``name`` created since ``not_before``, if any
        (a malformed listed file is skipped: uploading again costs nothing)."""

    def uploads_since(self, not_before: float, prefix: str) -> list[FileInfo]:
        """Every batch input named ``prefix...`` uploaded since ``not_before``, none skipped."""

    def batches_since(self, not_before: float) -> list[BatchInfo]:
        """Every batch created since ``not_before``; a malformed one fails the whole listing."""

    def create_batch(
        self, file_id: str, endpoint: str, window: str, metadata: dict[str, str], expiry: int | None
    ) -> BatchInfo:
        """Start a batch over ``file_id``; ``expiry`` (seconds) lets the service drop its outputs."""

    def find_batches(self, match: dict[str, str], not_before: float) -> list[BatchInfo]:
        """Batches created since ``not_before`` whose metadata holds every pair of ``match``,
        oldest first; one that may be ours but cannot be read fails the call."""

    def list_batches(self, not_before: float, wanted: set[str], newest: str | None = None) -> dict[str, BatchInfo]:
        """As many of the ``wanted`` batches as a cheap listing finds, by id; the caller retrieves
        the rest. ``newest``: our newest wanted batch, to skip batches of other clients above it."""

    def retrieve(self, batch_id: str) -> BatchInfo:
        """The batch as it is now."""

    def cancel(self, batch_id: str) -> BatchInfo:
        """Ask the service to cancel the batch; the batch as the service then has it."""

    def delete_file(self, file_id: str) -> bool:
        """Delete a file; False if the service no longer has it (deleted before, or expired)."""

    def download(self, file_id: str, dest: Path) -> int:
        """Stream a file's content to ``dest`` (which appears only when whole); its size in bytes."""

    def unwrap_webhook(self, body: bytes, headers: Mapping[str, str], secret: str) -> WebhookEvent:
        """A webhook delivery verified against ``secret`` (no request is made); ValueError if it
        is not one (a bad or stale signature, a missing header, a body that is not JSON)."""
