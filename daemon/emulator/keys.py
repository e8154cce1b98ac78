"""The OpenAI key check: any non-empty `Authorization: Bearer KEY` is accepted, or only the one key set."""

from __future__ import annotations

from daemon.emulator.errors import ApiError
from daemon.emulator.messages import ApiRequest


def bearer_token(request: ApiRequest) -> str | None:
    scheme, _, token = (request.header("Authorization") or "").partition(" ")
    if scheme.lower() != "bearer":
        return None
    return token.strip() or None


def check_bearer(request: ApiRequest, expected: str | None = None) -> None:
    token = bearer_token(request)
    if token is None:
        message = (
            "You didn't provide an API key. You need to provide your API key in an Authorization "
            "header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY)."
        )
        raise ApiError(401, message, code="invalid_api_key")
    if expected is not None and token != expected:
        # The service's words; it shows only the key's ends, and so does this.
        message = (
            f"Incorrect API key provided: {masked(token)}. You can find your API key at "
            "https://platform.openai.com/account/api-keys."
        )
        raise ApiError(401, message, code="invalid_api_key")


def masked(key: str) -> str:
    return f"{key[:3]}{'*' * 8}{key[-4:]}" if len(key) > 8 else "*" * len(key)
