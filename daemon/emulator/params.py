"""Validation of request parameters, with the API's 400 errors (`param` names the culprit)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from daemon.emulator.errors import bad_request

ALLOWED_ENDPOINTS = (
    "/v1/responses",
    "/v1/chat/completions",
    "/v1/embeddings",
    "/v1/completions",
    "/v1/moderations",
    "/v1/images/generations",
    "/v1/images/edits",
    "/v1/videos",
)
UPLOAD_PURPOSES = ("assistants", "batch", "fine-tune", "vision", "user_data", "evals")
BATCH_FIELDS = frozenset({"input_file_id", "endpoint", "completion_window", "metadata", "output_expires_after"})
MIN_EXPIRY_SECONDS = 3_600
MAX_EXPIRY_SECONDS = 2_592_000
MAX_METADATA_PAIRS = 16
MAX_METADATA_KEY = 64
MAX_METADATA_VALUE = 512


@dataclass(frozen=True, slots=True)
class BatchParams:
    input_file_id: str
    endpoint: str
    completion_window: str
    metadata: dict[str, str] | None
    output_expires_after: int | None


@dataclass(frozen=True, slots=True)
class UploadParams:
    purpose: str
    expires_after: int | None


def required_string(payload: Mapping[str, Any], name: str) -> str:
    value = payload.get(name)
    if value is None:
        raise bad_request(f"Missing required parameter: '{name}'.", param=name)
    if not isinstance(value, str):
        raise bad_request(f"Invalid type for '{name}': expected a string.", param=name)
    return value


def parse_batch_params(payload: Any, windows: tuple[str, ...] = ("24h",)) -> BatchParams:
    if not isinstance(payload, dict):
        raise bad_request("The request body must be a JSON object.")
    unknown = sorted(set(payload) - BATCH_FIELDS)
    if unknown:
        raise bad_request(f"Unrecognized request argument supplied: {unknown[0]}", param=unknown[0])
    endpoint = required_string(payload, "endpoint")
    if endpoint not in ALLOWED_ENDPOINTS:
        message = f"Invalid value for 'endpoint': {endpoint!r}. Supported values are: {', '.join(ALLOWED_ENDPOINTS)}."
        raise bad_request(message, param="endpoint", code="invalid_value")
    window = required_string(payload, "completion_window")
    if window not in windows:
        supported = ", ".join(f"'{w}'" for w in windows)
        message = f"Invalid value for 'completion_window': {window!r}. Supported values are: {supported}."
        raise bad_request(message, param="completion_window", code="invalid_value")
    return BatchParams(
        input_file_id=required_string(payload, "input_file_id"),
        endpoint=endpoint,
        completion_window=window,
        metadata=parse_metadata(payload.get("metadata")),
        output_expires_after=parse_expires_after(payload.get("output_expires_after"), "output_expires_after"),
    )


def parse_metadata(value: Any) -> dict[str, str] | None:
    if value is None:
        return None
    if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
        raise bad_request("Invalid 'metadata': expected an object of string values.", param="metadata")
    if len(value) > MAX_METADATA_PAIRS:
        raise bad_request(
            f"Invalid 'metadata': too many properties. Expected at most {MAX_METADATA_PAIRS}, got {len(value)}.",
            param="metadata",
        )
    for key, item in value.items():
        if len(key) > MAX_METADATA_KEY:
            message = f"Invalid 'metadata': key {key[:20]!r}... exceeds {MAX_METADATA_KEY} characters."
            raise bad_request(message, param="metadata")
        if len(item) > MAX_METADATA_VALUE:
            message = f"Invalid 'metadata': value of {key!r} exceeds {MAX_METADATA_VALUE} characters."
            raise bad_request(message, param="metadata")
    return dict(value)


def parse_expires_after(value: Any, param: str) -> int | None:
    """`{"anchor": "created_at", "seconds": 3600..2592000}` -> seconds."""
    if value is None:
        return None
    if not isinstance(value, dict) or value.get("anchor") != "created_at":
        raise bad_request(f"Invalid '{param}': anchor must be 'created_at'.", param=f"{param}.anchor")
    seconds = value.get("seconds")
    if isinstance(seconds, str) and seconds.isdigit():
        seconds = int(seconds)  # multipart form fields arrive as text
    if not isinstance(seconds, int) or not MIN_EXPIRY_SECONDS <= seconds <= MAX_EXPIRY_SECONDS:
        bounds = f"{MIN_EXPIRY_SECONDS} and {MAX_EXPIRY_SECONDS}"
        message = f"Invalid '{param}.seconds': expected an integer between {bounds}."
        raise bad_request(message, param=f"{param}.seconds")
    return seconds


def parse_upload_params(fields: Mapping[str, str], filename: str | None) -> UploadParams:
    purpose = fields.get("purpose")
    if purpose is None:
        raise bad_request("Missing required parameter: 'purpose'.", param="purpose")
    if purpose not in UPLOAD_PURPOSES:
        message = f"Invalid value for 'purpose': {purpose!r}. Supported values are: {', '.join(UPLOAD_PURPOSES)}."
        raise bad_request(message, param="purpose")
    if filename is None:
        raise bad_request("Missing required parameter: 'file'.", param="file")
    if purpose == "batch" and not filename.endswith(".jsonl"):
        raise bad_request("Invalid file format for Batch API. Must be .jsonl", param="file")
    expires: dict[str, Any] | None = None
    if "expires_after[anchor]" in fields or "expires_after[seconds]" in fields:
        expires = {"anchor": fields.get("expires_after[anchor]"), "seconds": fields.get("expires_after[seconds]")}
    return UploadParams(purpose, parse_expires_after(expires, "expires_after"))


def parse_limit(query: Mapping[str, str], low: int, high: int, default: int) -> int:
    raw = query.get("limit")
    if raw is None:
        return default
    if not raw.isdigit() or not low <= int(raw) <= high:
        raise bad_request(f"Invalid 'limit': expected an integer between {low} and {high}.", param="limit")
    return int(raw)


def parse_order(query: Mapping[str, str]) -> bool:
    """True for newest first (the default)."""
    order = query.get("order", "desc")
    if order not in ("asc", "desc"):
        raise bad_request("Invalid 'order': expected 'asc' or 'desc'.", param="order")
    return order == "desc"
