"""How one output or error line is judged. ``completed`` is not success: each line is judged."""

from __future__ import annotations

from typing import Any

# Ranks: a request that succeeded in any attempt beats one that ran and failed, which beats one
# that never ran (e.g. a batch_expired line), which beats no line at all.
SUCCEEDED, FAILED, NOT_RUN = 3, 2, 1
NEVER_RAN_CODES = frozenset({"batch_expired", "batch_cancelled"})
# A request of a batch whose downloads never added up: it may well have run (and been paid for),
# so it is never counted as never ran, and never sent again.
RESULT_MISSING = "result_missing"


def rank(line: dict[str, Any]) -> int:
    error = line.get("error")
    if error:
        code = error.get("code") if isinstance(error, dict) else None
        return NOT_RUN if code in NEVER_RAN_CODES else FAILED
    response = line.get("response")
    status = response.get("status_code") if isinstance(response, dict) else None
    return SUCCEEDED if isinstance(status, int) and 200 <= status < 300 else FAILED


def outcome_name(line_rank: int) -> str:
    return {SUCCEEDED: "succeeded", FAILED: "failed"}.get(line_rank, "not_run")


_NOT_RUN_TEXT = {
    "expired": ("batch_expired", "The batch expired before this request ran."),
    "cancelled": ("batch_cancelled", "The batch was cancelled before this request ran."),
    "failed": ("batch_failed", "The batch failed before any request ran; see summary.json and the report."),
    "rejected": (
        "batch_rejected",
        "The service refused the upload or batch; see summary.json and the report.",
    ),
}


def not_run_line(custom_id: str, batch_status: str | None) -> dict[str, Any]:
    """The line written for a request that has no result, in the API's own output-line shape."""
    code, message = _NOT_RUN_TEXT.get(batch_status or "", ("not_run", "No result was returned for this request."))
    return {"id": None, "custom_id": custom_id, "response": None, "error": {"code": code, "message": message}}


def missing_line(custom_id: str) -> dict[str, Any]:
    """The line written for a request of a batch the service said finished but returned no result for."""
    message = (
        "The service reported the batch finished but returned no result for this request; see problems in summary.json."
    )
    return {"id": None, "custom_id": custom_id, "response": None, "error": {"code": RESULT_MISSING, "message": message}}
