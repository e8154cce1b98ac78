"""The OpenAI key check: any non-empty `Authorization: Bearer KEY` is accepted."""

from __future__ import annotations

from daemon.emulator.errors import ApiError
from daemon.emulator.messages import ApiRequest


def bearer_token(request: ApiRequest) -> str | None:
    scheme, _, token = (request.header("Authorization") or "").partition(" ")
    if scheme.lower() != "bearer":
        return None
    return token.strip() or None


def check_bearer(request: ApiRequest) -> None:
    if bearer_token(request) is None:
        message = (
            "You didn't provide an API key. You need to provide your API key in an Authorization "
            "header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY)."
        )
        raise ApiError(401, message, code="invalid_api_key")
