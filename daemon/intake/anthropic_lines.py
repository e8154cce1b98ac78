"""Anthropic's request lines: ``{"custom_id": ..., "params": {"model", "max_tokens", "messages", ...}}``.

A profile of kind ``anthropic`` takes Message Batches requests as Anthropic documents them, one per
line. Each is checked before anything is sent: the custom_id is 1-64 characters of
``[A-Za-z0-9_-]`` and unique in the file, ``params`` is an object naming ``model`` (one model per
file unless ``split_by_model``, as for OpenAI inputs: the price and the holds are per model), a
positive whole ``max_tokens`` and a non-empty ``messages`` list, it does not ask to stream, and nothing
else is at the top level (the service refuses an unknown key for the whole batch). Lines are sent
byte for byte as they were checked.

Inputs that share a batch (packer) get their custom_ids prefixed with ``<slot>-``: digits, then the
first ``-``, so the slot and the input's own id are told apart exactly (``unpacker``), and the
prefixed id stays within the allowed characters. An input with an id too long to carry a prefix
within 64 characters goes in a batch of its own.
"""

from __future__ import annotations

import re
from typing import Any

from daemon.intake.validation import _MISSING, LineChecker, _kind

ANTHROPIC_FORMAT = "anthropic"
CUSTOM_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")
MAX_CUSTOM_ID = 64
PACK_SEP = "-"  # the slot separator in a shared batch (":" is not among Anthropic's custom_id characters)
ENDPOINT = "/v1/messages"
TOP_LEVEL = frozenset({"custom_id", "params"})
OPENAI_SHAPE_HINT = (
    'this is an OpenAI Batch API line; a profile of kind anthropic takes {"custom_id": "...", "params": '
    '{"model": "claude-...", "max_tokens": 1024, "messages": [...]}} (see README, Providers)'
)


class AnthropicLineChecker(LineChecker):
    """``LineChecker`` for Message Batches lines: the same file-level checks (size, UTF-8, BOM,
    repeated custom_ids), another line shape."""

    def _check_object(self, line_no: int, obj: dict[str, Any]) -> tuple[str, int, str] | None:
        """(custom_id, 0, model) of a valid request, or None (problems were recorded)."""
        f = self.findings
        if {"method", "url", "body"} & obj.keys() and "params" not in obj:
            f.add(line_no, OPENAI_SHAPE_HINT)
            return None
        before = f.problem_count
        extra = sorted(obj.keys() - TOP_LEVEL)
        if extra:
            f.add(line_no, f"unknown top-level key(s) {extra}; a line holds only custom_id and params")
        custom_id = self._anthropic_id(line_no, obj.get("custom_id", _MISSING))
        params = self._check_params(line_no, obj.get("params"))
        if f.problem_count != before or custom_id is None or params is None:
            return None
        f.requests += 1
        f.endpoint = ENDPOINT
        if line_no == self._candidate_line:
            self._ids.count_candidate(line_no)
        return custom_id, 0, params["model"]

    def _anthropic_id(self, line_no: int, value: object) -> str | None:
        if isinstance(value, str) and value and CUSTOM_ID.fullmatch(value) is None:
            self.findings.add(line_no, custom_id_problem(value))
            return None
        return self._check_custom_id(line_no, value)  # missing, not a string, empty; and repeats

    def _check_params(self, line_no: int, params: object) -> dict[str, Any] | None:
        f = self.findings
        if not isinstance(params, dict):
            f.add(line_no, "params is missing" if params is None else f"params must be an object, got {_kind(params)}")
            return None
        problems = list(params_problems(params))
        for problem in problems:
            f.add(line_no, problem)
        if problems:
            return None
        return params if self.model_fits(line_no, params["model"]) else None


def custom_id_problem(value: str) -> str:
    if len(value) > MAX_CUSTOM_ID:
        return f"custom_id is {len(value)} characters; Anthropic takes at most {MAX_CUSTOM_ID}"
    odd = sorted({c for c in value if not (c.isascii() and (c.isalnum() or c in "_-"))})
    return f"custom_id {value!r} has characters Anthropic refuses ({''.join(odd)!r}); use only A-Z a-z 0-9 _ -"


def params_problems(params: dict[str, Any]) -> list[str]:
    """What is wrong with one request's ``params``, in words (empty if nothing)."""
    found: list[str] = []
    model = params.get("model")
    if not isinstance(model, str) or not model:
        found.append("params.model is missing or not a string; every request must name its Claude model")
    tokens = params.get("max_tokens")
    if not isinstance(tokens, int) or isinstance(tokens, bool) or tokens < 1:
        found.append(f"params.max_tokens must be a whole number of 1 or more (got {tokens!r})")
    messages = params.get("messages")
    if not isinstance(messages, list) or not messages:
        found.append("params.messages must be a non-empty list of messages")
    if params.get("stream"):
        found.append("params.stream: a batched request cannot stream; remove stream")
    return found


def pack_prefix_fits(custom_id: str, prefix: str) -> bool:
    """Whether ``custom_id`` with a shared batch's slot ``prefix`` is still a valid Anthropic id."""
    return len(prefix) + len(custom_id) <= MAX_CUSTOM_ID
