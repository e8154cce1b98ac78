"""How one output or error line is judged. ``completed`` is not success: each line is judged."""

from __future__ import annotations

from typing import Any

# Ranks: a request that succeeded in any attempt beats one that ran and failed, which beats one
# that never ran (e.g. a batch_expired line), which beats no line at all.
SUCCEEDED, FAILED, NOT_RUN = 3, 2, 1
NEVER_RAN_CODES = frozenset({"batch_expired", "batch_cancelled"})


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
    "lost": ("batch_lost", "The service no longer knows this batch; no result was returned."),
    "abandoned": ("abandoned", "The job was abandoned by the operator; no result was returned for this request."),
}


# When the batch's request_counts say more ran than have lines, a missing line may be a result
# the service dropped: say only what is known, with a code that does not claim it never ran.
_UNPROVEN_TEXT = {
    "expired": ("result_missing", "No result was returned; the batch expired."),
    "cancelled": ("result_missing", "No result was returned; the batch was cancelled."),
}


def not_run_line(custom_id: str, batch_status: str | None, never_ran: bool = True) -> dict[str, Any]:
    """The line written for a request that has no result, in the API's own output-line shape.

    ``never_ran``: the batch's counts prove every request that ran has a line (see merger).
    """
    texts = _NOT_RUN_TEXT if never_ran else {**_NOT_RUN_TEXT, **_UNPROVEN_TEXT}
    code, message = texts.get(batch_status or "", ("not_run", "No result was returned for this request."))
    return {"id": None, "custom_id": custom_id, "response": None, "error": {"code": code, "message": message}}
