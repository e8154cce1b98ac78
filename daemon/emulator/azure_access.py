"""How Azure OpenAI is addressed: its two URL forms, its key header and its error shape.

  * the v1 form, `/openai/v1/files`, `/openai/v1/batches/...`, needs no api-version;
  * the api-version form, `/openai/files?api-version=...` (what `openai.AzureOpenAI` sends: files
    and batches are never deployment-scoped), answers 404 "Resource not found" without one, as
    Azure does (MicrosoftDocs/azure-docs#114602);
  * any other path is a 404 of the same shape.

Keys: the `api-key` header is accepted on both forms; `Authorization: Bearer` carries a Microsoft
Entra ID token, and on the v1 form also a plain key (`OpenAI(base_url=.../openai/v1/, api_key=KEY)`
is Microsoft's own example). The emulator cannot check a token's signature, so a Bearer value on the
api-version form passes only when it is shaped like a JWT (three dot-separated parts).
"""

from __future__ import annotations

from typing import Any

from daemon.emulator.errors import ApiError
from daemon.emulator.keys import bearer_token
from daemon.emulator.messages import ApiRequest

V1_PREFIX = "/openai/v1"
VERSIONED_PREFIX = "/openai"
CONTROL_PREFIX = "/_emulator"
# What the emulator's routes see for a path Azure does not serve: matches no route.
UNKNOWN_PATH = "/azure-unknown"
MISSING_KEY = (
    "Access denied due to missing subscription key. Make sure to include subscription key when making "
    "requests to an API."
)
INVALID_KEY = (
    "Access denied due to invalid subscription key or wrong API endpoint. Make sure to provide a valid key "
    "for an active subscription and use a correct regional API endpoint for your resource."
)
REFUSED_BEARER = (
    "Unauthorized. Access token is missing, invalid, audience is incorrect "
    "(https://cognitiveservices.azure.com), or have expired."
)


class AzureError(ApiError):
    """Azure's own errors (routing, keys) carry only a code, the status as text, and a message."""

    def body(self) -> dict[str, Any]:
        return {"error": {"code": str(self.status), "message": self.message}}


def routed_path(raw: str) -> str:
    """The `/v1/...` path the emulator's routes use for an Azure path (either form)."""
    if raw.startswith(CONTROL_PREFIX):
        return raw
    for prefix in (V1_PREFIX, VERSIONED_PREFIX):
        if raw.startswith(prefix + "/"):
            return "/v1" + raw[len(prefix) :]
    return UNKNOWN_PATH + raw


def check_azure_request(request: ApiRequest) -> None:
    """Refuse what Azure refuses before it looks at the request: the path form, then the key."""
    v1_form = request.raw_path.startswith(V1_PREFIX + "/")
    if request.path.startswith(UNKNOWN_PATH) or (not v1_form and not request.query.get("api-version")):
        raise AzureError(404, "Resource not found")
    check_azure_key(request, v1_form)


def check_azure_key(request: ApiRequest, v1_form: bool) -> None:
    if request.header("api-key") is not None:
        if not request.header("api-key"):
            raise AzureError(401, INVALID_KEY)
        return
    token = bearer_token(request)
    if token is None:
        raise AzureError(401, MISSING_KEY)
    if not v1_form and not _jwt_shaped(token):
        raise AzureError(401, REFUSED_BEARER)


def _jwt_shaped(token: str) -> bool:
    parts = token.split(".")
    return len(parts) == 3 and all(parts)
