"""Flavours: how the emulated service differs from OpenAI's Batch API, chosen by `settings.flavour`.

* `openai` (default): the OpenAI API as the rest of the emulator implements it; nothing changes.
* `azure`: Azure OpenAI with GlobalBatch deployments. Paths, keys and error shape as in
  azure_access.py; `endpoint` and line `url` may omit `/v1` (`/chat/completions`, `/responses`;
  only those two APIs batch); a line's `model` must name one of `settings.deployments`, or the
  batch fails at validation with `model_not_found`; jobs never expire (the `expire` trigger
  leaves the batch in_progress with half its requests done until it is cancelled); a batch that
  produced files always has an error file, 0 bytes when nothing failed; a finished batch says
  `""`, not null, for a file it has not got; each chat completion carries Azure's
  `prompt_filter_results` and per-choice `content_filter_results`.
* `compatible`: a third-party implementation of the same API (llama-stack, Groq, Novita):
  `response.body` as a JSON-encoded string; `metadata` accepted but neither stored nor returned
  (silently ignored, as a server does whose request model lacks the field); no `finalizing`
  (in_progress -> completed); output and error files of purpose `batch`; an error file always,
  empty when nothing failed; with `upper_statuses`, `COMPLETED` etc. (Novita); with
  `iso_timestamps`, every `*_at` of a batch as ISO 8601 text (Together); completion windows
  `24h` and `7d` (Groq takes 24h to 7d), where OpenAI takes only `24h`.
* `anthropic`: Anthropic's Message Batches, a different API altogether (no files; requests in the
  create call; `in_progress`/`canceling`/`ended`; streamed results). It has routes and a store of
  its own (anthropic_api.py, anthropic_store.py), chosen by the server; nothing here applies.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from daemon.emulator.azure_access import check_azure_request, routed_path
from daemon.emulator.errors import bad_request
from daemon.emulator.faults import api_path
from daemon.emulator.keys import check_bearer
from daemon.emulator.messages import ApiRequest
from daemon.emulator.params import BatchParams, parse_batch_params
from daemon.emulator.records import TERMINAL_STATUSES, InputPlan
from daemon.emulator.settings import EmulatorSettings
from daemon.emulator.validation import batch_error

AZURE_ENDPOINTS = ("/v1/chat/completions", "/v1/responses")
FILE_ID_FIELDS = ("output_file_id", "error_file_id")
COMPATIBLE_WINDOWS = ("24h", "7d")


class Flavour:
    """OpenAI itself: every hook leaves the emulator's behaviour as it is."""

    # Lifecycle switches, read by lifecycle.py.
    finalizes = True  # in_progress -> finalizing -> completed
    expires = True  # the `expire` trigger ends in `expired` (else: in_progress until cancelled)
    always_error_file = False  # an empty error file when no request failed
    string_bodies = False
    content_filters = False  # Azure's content filter verdicts in each chat completion
    output_purpose = "batch_output"
    api_key: str | None = None  # the one key accepted (EmulatorSettings.api_key); None: any

    def path_of(self, raw: str) -> str:
        """The `/v1/...` path the routes, faults and call log use."""
        return api_path(raw)

    def authorise(self, request: ApiRequest) -> None:
        check_bearer(request, self.api_key)

    def batch_params(self, payload: Any) -> BatchParams:
        return parse_batch_params(payload)

    def line_url(self, url: str) -> str:
        """A line's `url` as compared with the batch endpoint."""
        return url

    def model_problem(self, plan: InputPlan) -> dict[str, Any] | None:
        """A batch-level error for the input's model, found at the end of validating."""
        return None

    def batch_json(self, body: dict[str, Any]) -> dict[str, Any]:
        """A Batch object as this service shows it."""
        return body


class AzureFlavour(Flavour):
    expires = False
    always_error_file = True
    content_filters = True

    def __init__(self, deployments: tuple[str, ...]) -> None:
        self._deployments = deployments

    def path_of(self, raw: str) -> str:
        return routed_path(raw)

    def authorise(self, request: ApiRequest) -> None:
        check_azure_request(request)

    def batch_params(self, payload: Any) -> BatchParams:
        endpoint = payload.get("endpoint") if isinstance(payload, dict) else None
        if isinstance(endpoint, str):
            endpoint = self.line_url(endpoint)
            if endpoint not in AZURE_ENDPOINTS:
                message = f"Invalid value for 'endpoint': {payload['endpoint']!r}. Global batch supports "
                raise bad_request(message + "/chat/completions and /responses.", param="endpoint")
            payload = {**payload, "endpoint": endpoint}
        return parse_batch_params(payload)

    def line_url(self, url: str) -> str:
        return url if url.startswith("/v1/") else "/v1" + url

    def model_problem(self, plan: InputPlan) -> dict[str, Any] | None:
        if plan.model in self._deployments:
            return None
        message = (
            f"The provided model deployment '{plan.model}' does not exist or is not a Global Batch "
            f"deployment. Deployments: {', '.join(self._deployments)}."
        )
        return batch_error("model_not_found", message, line=plan.requests[0].line, param="body.model")

    def batch_json(self, body: dict[str, Any]) -> dict[str, Any]:
        if body["status"] in TERMINAL_STATUSES:
            for name in FILE_ID_FIELDS:
                body[name] = body[name] or ""
        return body


class CompatibleFlavour(Flavour):
    finalizes = False
    always_error_file = True
    string_bodies = True
    output_purpose = "batch"

    def __init__(self, upper_statuses: bool, iso_timestamps: bool) -> None:
        self._upper_statuses = upper_statuses
        self._iso_timestamps = iso_timestamps

    def batch_params(self, payload: Any) -> BatchParams:
        if isinstance(payload, dict):
            payload = {name: value for name, value in payload.items() if name != "metadata"}
        return parse_batch_params(payload, COMPATIBLE_WINDOWS)

    def batch_json(self, body: dict[str, Any]) -> dict[str, Any]:
        if self._upper_statuses:
            body["status"] = body["status"].upper()
        if self._iso_timestamps:
            for name, value in body.items():
                if name.endswith("_at") and isinstance(value, int):
                    body[name] = iso_time(value)
        return body


def iso_time(seconds: int) -> str:
    return datetime.fromtimestamp(seconds, UTC).isoformat().replace("+00:00", "Z")


def flavour_for(settings: EmulatorSettings) -> Flavour:
    if settings.flavour == "azure":
        return AzureFlavour(settings.deployments)
    flavour = (
        CompatibleFlavour(settings.upper_statuses, settings.iso_timestamps)
        if settings.flavour == "compatible"
        else Flavour()
    )
    flavour.api_key = settings.api_key
    return flavour
