"""What an on_job_done notification says about a job, and its two forms: environment variables for a
command, and a signed JSON body for a URL.

The signature lets the receiver check that batchd sent the body, unchanged, lately: HMAC-SHA256 with
the shared secret over ``TIMESTAMP.BODY`` (the timestamp as sent in ``X-Batchd-Timestamp``), sent as
``X-Batchd-Signature: sha256=HEX``. A receiver recomputes it, compares in constant time, and refuses a
timestamp more than a few minutes old (a replay). ``X-Batchd-Delivery`` is the same for every attempt
at one notification (job id and event), so a receiver can drop a repeat.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from daemon.state.rows import Job
from daemon.state.states import JobState

SUMMARY_NAME = "summary.json"
SIGNATURE_HEADER = "X-Batchd-Signature"
TIMESTAMP_HEADER = "X-Batchd-Timestamp"
DELIVERY_HEADER = "X-Batchd-Delivery"
# Passed on to a hook command from the daemon's own environment; nothing else (the key may be there).
KEPT_ENV = ("PATH", "HOME", "LANG", "LC_ALL", "TZ")


@dataclass(frozen=True, slots=True)
class Notice:
    job_id: str
    event: str  # done, failed or needs_attention (config.NOTIFY_EVENTS)
    fields: dict[str, Any]

    @property
    def delivery_id(self) -> str:
        return f"{self.job_id}:{self.event}"


def notice_for(job: Job, models: list[str] | None = None) -> Notice:
    """The notification of an ended job: its fields and which ending it was. ``models``: every
    model its requests named (rows.job_models); several when its input was split by model."""
    outcomes = _outcomes(job)
    if job.state != JobState.DONE:
        event = "failed"
    elif outcomes and (outcomes.get("failed") or outcomes.get("not_run")):
        event = "needs_attention"
    else:
        event = "done"
    fields: dict[str, Any] = {
        "event": event,
        "job_id": job.id,
        "file": job.source_name,
        "state": str(job.state),
        "profile": job.profile,
        "model": job.model,  # None for an input split by model: see models
        "models": models if models is not None else ([job.model] if job.model else []),
        "endpoint": job.endpoint,
        "requests": job.request_count,
        "succeeded": outcomes.get("succeeded"),
        "failed": outcomes.get("failed"),
        "not_run": outcomes.get("not_run"),
        "results_dir": job.result_dir,
        "input": job.final_path,
        "note": job.note,
        "created_at": job.created_at,
        "finished_at": job.finished_at,
    }
    return Notice(job.id, event, fields)


def _outcomes(job: Job) -> dict[str, int]:
    if not job.result_dir:
        return {}
    try:
        summary = json.loads((Path(job.result_dir) / SUMMARY_NAME).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    found = summary.get("outcomes") if isinstance(summary, dict) else None
    if not isinstance(found, dict):
        return {}
    return {k: v for k, v in found.items() if k in ("succeeded", "failed", "not_run") and type(v) is int}


def command_env(notice: Notice) -> dict[str, str]:
    """The hook command's environment: a few of the daemon's own variables, and BATCHD_<FIELD> for each field."""
    env = {name: os.environ[name] for name in KEPT_ENV if name in os.environ}
    for name, value in notice.fields.items():
        env[f"BATCHD_{name.upper()}"] = _env_value(value)
    return env


def _env_value(value: object) -> str:
    """A field as a variable: "" for None, a list (``models``) comma-separated."""
    if isinstance(value, list):
        return ",".join(str(v) for v in value)
    return "" if value is None else str(value)


def signed_request(notice: Notice, secret: str, timestamp: int) -> tuple[bytes, dict[str, str]]:
    """The JSON body and the headers of one delivery."""
    body = json.dumps(notice.fields, sort_keys=True).encode()
    return body, {
        "Content-Type": "application/json",
        TIMESTAMP_HEADER: str(timestamp),
        SIGNATURE_HEADER: f"sha256={signature(secret, timestamp, body)}",
        DELIVERY_HEADER: notice.delivery_id,
        "User-Agent": "batchd",
    }


def signature(secret: str, timestamp: int, body: bytes) -> str:
    return hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
