"""Tunable behaviour of the emulator: lifecycle timing, storage location and simulated failures."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

# Which service the emulator imitates; daemon/emulator/flavours.py says how each differs.
FLAVOURS = ("openai", "azure", "compatible", "anthropic")
# GlobalBatch deployment names the azure flavour serves when none are given.
DEFAULT_DEPLOYMENTS = ("gpt-4o-mini-batch",)


@dataclass(frozen=True, slots=True)
class EmulatorSettings:
    """How a batch moves through its lifecycle and where files live.

    The durations are wall-clock seconds spent in each non-terminal status; tests use tiny values
    (0.05 s) so a whole batch finishes in well under a second.
    """

    validating_seconds: float = 1.0
    in_progress_seconds: float = 2.0
    finalizing_seconds: float = 0.5
    cancelling_seconds: float = 0.5
    # None: a private temporary directory that is removed when the server stops.
    data_dir: Path | None = None
    # Keep the files and batches in data_dir/state.json (the anthropic flavour's Message Batches in
    # data_dir/message_batches.json), so a restarted emulator goes on with them
    # (a demo stopped with Ctrl-C finishes its batches when started again). Needs a data_dir.
    keep_state: bool = False
    # Makes fake answers, output order and the requests picked by request_error_rate reproducible.
    seed: int = 0
    # Fraction of requests (picked by a hash of seed + custom_id) answered with an HTTP error line.
    request_error_rate: float = 0.0
    # Enqueued-token limit per model; None means unlimited. See lifecycle.py for the estimate.
    token_limit: int | None = None
    # Output lines carry `response.body` as a JSON-encoded string, as llama-stack sends them.
    string_bodies: bool = False
    # A cancelled batch counts the requests that finished in request_counts but leaves their
    # lines out of its output and error files (a server that dropped finished results).
    drop_cancelled_results: bool = False

    # How many times its estimate a batch weighs against token_limit: above 1, the service counts
    # more tokens than a quarter of the bytes (as for dense text), more than a client estimates.
    token_weight: float = 1.0
    # Batch creations allowed per create_window seconds (the real service: 2,000 an hour); beyond
    # it a create is answered 429 with Retry-After. None means unlimited.
    create_limit: int | None = None
    create_window: float = 3600.0
    # Input files (purpose `batch`) the service keeps at once, as an Azure resource keeps 500; an
    # upload beyond it is refused with a 400 until one is deleted. None means unlimited.
    file_limit: int | None = None

    # `openai` (the default), `azure` or `compatible`: see flavours.py.
    flavour: str = "openai"
    # azure: the deployment names a line's `model` must be one of (others fail `model_not_found`).
    deployments: tuple[str, ...] = DEFAULT_DEPLOYMENTS
    # compatible: statuses in upper case (as Novita sends them) and `*_at` times as ISO 8601 text
    # (as Together sends them).
    upper_statuses: bool = False
    iso_timestamps: bool = False
    # anthropic: seconds from creation to a Message Batch's `expires_at` (the real service: 24 h);
    # requests that have not run by then end `expired`.
    expiry_seconds: float = 86_400.0
    # openai and compatible: the one key accepted (others get the service's 401 invalid_api_key), so a
    # client's handling of a wrong key can be tried; None: any non-empty key.
    api_key: str | None = None

    def __post_init__(self) -> None:
        durations = (
            self.validating_seconds,
            self.in_progress_seconds,
            self.finalizing_seconds,
            self.cancelling_seconds,
        )
        if any(value < 0 for value in durations):
            raise ValueError("lifecycle durations must be >= 0")
        if not 0.0 <= self.request_error_rate <= 1.0:
            raise ValueError("request_error_rate must be between 0 and 1")
        if self.token_weight <= 0:
            raise ValueError("token_weight must be > 0")
        if self.token_limit is not None and self.token_limit < 1:
            raise ValueError("token_limit must be >= 1 or None")
        if self.create_limit is not None and self.create_limit < 1:
            raise ValueError("create_limit must be >= 1 or None")
        if self.file_limit is not None and self.file_limit < 1:
            raise ValueError("file_limit must be >= 1 or None")
        if self.expiry_seconds <= 0:
            raise ValueError("expiry_seconds must be > 0")
        if self.create_window <= 0:
            raise ValueError("create_window must be > 0")
        if self.keep_state and self.data_dir is None:
            raise ValueError("keep_state needs a data_dir to keep the state in")
        if self.flavour not in FLAVOURS:
            raise ValueError(f"flavour must be one of {', '.join(FLAVOURS)}, not {self.flavour!r}")
        if not self.deployments or not all(isinstance(name, str) and name for name in self.deployments):
            raise ValueError("deployments must name at least one deployment")
