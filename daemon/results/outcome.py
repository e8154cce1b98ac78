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
# Requests without a result that may nonetheless have run (and been paid for).
MAY_HAVE_RUN_CODES = frozenset({RESULT_MISSING, "batch_lost"})


# Anthropic's result types (``{"custom_id", "result": {"type": ...}}``): canceled and expired never ran.
RESULT_RANKS = {"succeeded": SUCCEEDED, "errored": FAILED, "canceled": NOT_RUN, "expired": NOT_RUN}


def rank(line: dict[str, Any]) -> int:
    result = line.get("result")
    if isinstance(result, dict) and "response" not in line:  # a Message Batches result line
        return RESULT_RANKS.get(str(result.get("type")), FAILED)
    error = line.get("error")
    if error:
        code = error.get("code") if isinstance(error, dict) else None
        return NOT_RUN if code in NEVER_RAN_CODES else FAILED
    response = line.get("response")
    status = response.get("status_code") if isinstance(response, dict) else None
    return SUCCEEDED if isinstance(status, int) and 200 <= status < 300 else FAILED


def error_code(line: dict[str, Any]) -> str | None:
    """The error code of a line without a result: OpenAI's ``error.code``, or the type of the
    error inside an Anthropic ``errored`` result (where batchd writes its own codes too)."""
    error = line.get("error")
    if isinstance(error, dict):
        code = error.get("code")
        return code if isinstance(code, str) else None
    result = line.get("result")
    inner = result.get("error") if isinstance(result, dict) else None
    inner = inner.get("error") if isinstance(inner, dict) else None
    code = inner.get("type") if isinstance(inner, dict) else None
    return code if isinstance(code, str) else None


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


# How a batch ended, for a request that may have run but whose result did not come back.
_ENDED = {"expired": "the batch expired", "cancelled": "the batch was cancelled", "completed": "the batch completed"}


def not_run_line(custom_id: str, batch_status: str | None, never_ran: bool = True) -> dict[str, Any]:
    """The line written for a request that has no result, in the API's own output-line shape.

    ``never_ran``: the batch's counts prove every request that ran has a line (see merger). When
    they say more ran than have lines, a missing line may be a result the service dropped.
    """
    if not never_ran and batch_status in ("expired", "cancelled"):
        return missing_line(custom_id, batch_status)
    code, message = _NOT_RUN_TEXT.get(batch_status or "", ("not_run", "No result was returned for this request."))
    return {"id": None, "custom_id": custom_id, "response": None, "error": {"code": code, "message": message}}


def missing_line(custom_id: str, batch_status: str | None) -> dict[str, Any]:
    """The line for a request that may have run (and been paid for) but has no result: it is never
    claimed not to have run, and never sent again by batchd on its own."""
    ended = _ENDED.get(batch_status or "", "the service said the batch finished")
    message = f"No result was returned; {ended}. It may have run: see problems in summary.json."
    return {"id": None, "custom_id": custom_id, "response": None, "error": {"code": RESULT_MISSING, "message": message}}
