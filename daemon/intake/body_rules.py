"""What a request body must hold for its endpoint, checked before anything is sent.

The service checks a line's body only when the batch runs it, up to 24 hours later, and then fails
that request alone (a 400 in the error file). These rules catch the common mistakes at once: a
field the endpoint requires is missing (chat without ``messages``), a field of another endpoint is
present (``messages`` on embeddings: the body was meant for another url), ``stream: true``
(a batch cannot stream), ``n`` where the endpoint has no such parameter, and more inputs in one
embeddings request than the service takes. They are the service's documented parameters, not a
full schema: anything they do not know about is left to the service.

The emulator has its own copy of these rules (daemon/emulator/body_checks.py), worded as the
service words its errors: it must not import the daemon, and a bug here should not be mirrored
by the service double the tests run against.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

CHAT = "/v1/chat/completions"
EMBEDDINGS = "/v1/embeddings"
RESPONSES = "/v1/responses"
COMPLETIONS = "/v1/completions"
MODERATIONS = "/v1/moderations"
IMAGES = "/v1/images/generations"
# The embeddings endpoint takes at most this many inputs in one request.
MAX_INPUTS_PER_EMBEDDING_REQUEST = 2048


@dataclass(frozen=True, slots=True)
class EndpointRule:
    required: tuple[str, ...]  # fields that must be present and not empty
    foreign: frozenset[str]  # fields of other endpoints: their presence means the wrong url
    takes_n: bool  # whether ``n`` (several answers to one request) is a parameter here


RULES: Mapping[str, EndpointRule] = {
    CHAT: EndpointRule(("messages",), frozenset({"input", "prompt"}), takes_n=True),
    EMBEDDINGS: EndpointRule(("input",), frozenset({"messages", "prompt", "max_tokens", "temperature"}), False),
    RESPONSES: EndpointRule(("input",), frozenset({"messages", "prompt"}), takes_n=False),
    COMPLETIONS: EndpointRule(("prompt",), frozenset({"messages", "input"}), takes_n=True),
    MODERATIONS: EndpointRule(("input",), frozenset({"messages", "prompt"}), takes_n=False),
    IMAGES: EndpointRule(("prompt",), frozenset({"messages", "input"}), takes_n=True),
}
# Which url a field of a bare body points to, for the hint on a wrong-endpoint field.
FIELD_HOMES = {"messages": CHAT, "prompt": COMPLETIONS, "input": f"{RESPONSES} or {EMBEDDINGS}"}


def endpoint_of(url: str) -> str:
    """The endpoint a line's url names: Azure's form without /v1 reads as the OpenAI one."""
    return url if url.startswith("/v1/") else "/v1" + url


def body_problem(url: str, body: Mapping[str, Any]) -> str | None:
    """Why the service would refuse this body on ``url``, with what to change; None if it would not."""
    endpoint = endpoint_of(url)
    if body.get("stream") is True:
        return "body.stream is true, but a batch cannot stream; remove stream (each result comes back whole)"
    rule = RULES.get(endpoint)
    if rule is None:
        return None  # images edits, videos: left to the service
    return (
        _missing(endpoint, rule, body)
        or _foreign(endpoint, rule, body)
        or _several_answers(endpoint, rule, body)
        or _too_many_inputs(endpoint, body)
    )


def _missing(endpoint: str, rule: EndpointRule, body: Mapping[str, Any]) -> str | None:
    for name in rule.required:
        value = body.get(name)
        if value is None:
            return f"body.{name} is missing; {endpoint} requires it"
        if value in ("", [], {}):
            return f"body.{name} is empty; {endpoint} needs at least one {_unit(name)}"
    messages = body.get("messages")
    if endpoint == CHAT and not (isinstance(messages, list) and all(isinstance(m, dict) for m in messages)):
        return 'body.messages must be a list of objects such as {"role": "user", "content": "..."}'
    return None


def _unit(name: str) -> str:
    return {"messages": "message", "input": "input", "prompt": "prompt"}.get(name, "value")


def _foreign(endpoint: str, rule: EndpointRule, body: Mapping[str, Any]) -> str | None:
    for name in sorted(rule.foreign & body.keys()):
        home = FIELD_HOMES.get(name)
        where = f"; a body with {name} belongs on {home}" if home else ""
        return f"body.{name} is not a parameter of {endpoint}{where}: is the url right?"
    return None


def _several_answers(endpoint: str, rule: EndpointRule, body: Mapping[str, Any]) -> str | None:
    n = body.get("n")
    if n is None or rule.takes_n:
        return None
    return f"body.n ({n!r}) is not a parameter of {endpoint}, which gives one answer per request; remove n"


def _too_many_inputs(endpoint: str, body: Mapping[str, Any]) -> str | None:
    if endpoint != EMBEDDINGS:
        return None
    value = body.get("input")
    if isinstance(value, list) and value and not isinstance(value[0], int):
        if len(value) > MAX_INPUTS_PER_EMBEDDING_REQUEST:
            return (
                f"body.input holds {len(value):,} inputs, over the {MAX_INPUTS_PER_EMBEDDING_REQUEST:,} one "
                "embeddings request takes; split it into several requests"
            )
        if any(item in ("", []) for item in value):
            return "body.input holds an empty input; the embeddings endpoint refuses empty strings"
    return None


def inferred_url(body: Mapping[str, Any]) -> str | None:
    """The endpoint a bare body is for, when its fields say so unambiguously; None otherwise."""
    model = str(body.get("model", "")).lower()
    if "messages" in body:
        return CHAT
    if "input" in body:
        if "embedding" in model:
            return EMBEDDINGS
        return MODERATIONS if "moderation" in model else RESPONSES
    if "prompt" in body:
        return IMAGES if model.startswith(("dall-e", "gpt-image")) else COMPLETIONS
    return None
