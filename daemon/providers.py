"""Provider profiles: which OpenAI-shaped batch service to talk to, how, and within which limits.

One ``Profile`` per ``[providers.NAME]`` table of the config file, filled from built-in defaults for
its ``kind``. A profile named ``default`` always exists: without a ``[providers.default]`` table it is
OpenAI as batchd has always used it (the SDK's own environment variables, ``base_url``), so a daemon
with no provider config behaves as before. Keys are never in the config: a profile says where to
find its key (an environment variable, a ``*_FILE`` variable naming a key file, a systemd credential).
"""

from __future__ import annotations

import importlib.util
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any, Literal, get_args

from daemon import limits
from daemon.errors import ConfigError

ProviderKind = Literal["openai", "azure", "openai_compatible", "anthropic"]
AuthStyle = Literal["bearer", "api-key", "entra", "x-api-key"]
DEFAULT_PROFILE = "default"
NAME_PATTERN = re.compile(r"[a-z0-9][a-z0-9_-]{0,63}")  # a profile name is also a folder name (routing)
WINDOW_PATTERN = re.compile(r"([1-9][0-9]*)([hd])")
ENTRA_MODULE = "azure.identity"
ENTRA_EXTRA = "batchd[azure]"
OVERDUE_MARGIN = 6 * 3600.0  # max_batch_age by default: the longest completion window plus this
AZURE_ENDPOINTS = frozenset({"/v1/chat/completions", "/v1/responses"})  # the only APIs Azure batches
AZURE_FILES_PER_RESOURCE = 500  # input files an Azure resource keeps without expires_after on upload
AZURE_MIN_POLL = 60.0  # Azure asks clients to poll a batch no more often than once a minute
COMPATIBLE_MAX_BYTES = 100 * 1000 * 1000  # the smallest file limit among compatible services (Groq)
# Anthropic's Message Batches: the request list travels in the create call (no files), at most
# 100,000 requests or 256 MB a batch; lines are {custom_id, params} for POST /v1/messages.
ANTHROPIC_URL = "https://api.anthropic.com"
ANTHROPIC_ENDPOINTS = frozenset({"/v1/messages"})
ANTHROPIC_MAX_REQUESTS = 100_000
ANTHROPIC_MAX_BYTES = 256 * 1000 * 1000
ANTHROPIC_VERSION = "2023-06-01"  # the anthropic-version header sent unless api_version says otherwise


@dataclass(frozen=True, slots=True)
class KeyLookup:
    """Where a profile's key is found, in this order: a systemd credential, a key file, a variable."""

    credential: str | None = None  # name of a file in $CREDENTIALS_DIRECTORY
    file_env: str | None = None  # environment variable holding the path of a key file
    env: str | None = None  # environment variable holding the key itself

    def described(self) -> str:
        named = [f"${self.env}" if self.env else "", f"${self.file_env}" if self.file_env else ""]
        named.append(f"systemd credential {self.credential}" if self.credential else "")
        return " or ".join(part for part in named if part)


OPENAI_KEYS = KeyLookup(credential="openai-api-key", file_env="OPENAI_API_KEY_FILE", env="OPENAI_API_KEY")
AZURE_KEYS = KeyLookup(
    credential="azure-openai-api-key", file_env="AZURE_OPENAI_API_KEY_FILE", env="AZURE_OPENAI_API_KEY"
)
ANTHROPIC_KEYS = KeyLookup(credential="anthropic-api-key", file_env="ANTHROPIC_API_KEY_FILE", env="ANTHROPIC_API_KEY")


@dataclass(frozen=True, slots=True)
class Profile:
    """One batch service account or endpoint, validated: every value here is usable as it is."""

    name: str = DEFAULT_PROFILE
    kind: ProviderKind = "openai"
    base_url: str | None = None  # None: OPENAI_BASE_URL, else the SDK's default (openai only)
    keys: KeyLookup = OPENAI_KEYS
    auth: AuthStyle = "bearer"  # Authorization: Bearer KEY; `api-key: KEY`; an Entra ID token; `x-api-key: KEY`
    api_version: str | None = None  # Azure's api-version form (None: the v1 endpoint); Anthropic's anthropic-version
    file_purpose: str = "batch"
    completion_windows: tuple[str, ...] = ("24h",)
    completion_window: str = "24h"  # the one used when a batch is created
    endpoints: frozenset[str] = limits.ENDPOINTS
    max_requests_per_batch: int = limits.MAX_REQUESTS_PER_BATCH
    max_bytes_per_batch: int = limits.MAX_BYTES_PER_BATCH  # per input file, so per batch
    max_files: int | None = None  # input files the service keeps at once; None: no limit
    min_poll_interval: float = 0.0  # seconds; status checks of one batch never come closer than this
    supports_metadata: bool = True
    supports_list: bool = True
    supports_cancel: bool = True
    supports_expiry: bool = True  # expires_after on upload, output_expires_after on create
    # Wrap inputs of bare request bodies at intake (see config's wrap_bare_bodies); None: as that says.
    wrap_bare_bodies: bool | None = None
    # Split inputs naming several models into one batch per model (see config's split_by_model); None: as that says.
    split_by_model: bool | None = None
    # Seconds a batch may run before batchd cancels it; None: the longest window plus 6 h.
    max_batch_age: float | None = None
    # The `models` table: (model as the lines name it, name sent instead), e.g. an Azure deployment.
    models: tuple[tuple[str, str], ...] = ()
    # Where the signing secret of webhooks about this profile's batches is; None: the one of the
    # default profile (OPENAI_WEBHOOK_SECRET and its kin).
    webhook_keys: KeyLookup | None = None

    def __repr__(self) -> str:
        return f"Profile({self.name}: {self.kind} at {self.base_url or 'the default URL'})"

    @property
    def batch_age_limit(self) -> float:
        """Seconds a batch may run before batchd cancels it: finite even where jobs never expire."""
        if self.max_batch_age is not None:
            return self.max_batch_age
        return max(window_seconds(window) for window in self.completion_windows) + OVERDUE_MARGIN

    @property
    def model_names(self) -> dict[str, str]:
        """Model as written in the lines -> the name sent to the service (an Azure deployment)."""
        return dict(self.models)

    def url_forms(self) -> frozenset[str]:
        """The line ``url`` values accepted: the endpoints, and on Azure also without /v1, as
        Azure's own examples write them (``/chat/completions``)."""
        if self.kind != "azure":
            return self.endpoints
        return self.endpoints | {endpoint.removeprefix("/v1") for endpoint in self.endpoints}


KIND_DEFAULTS: Mapping[str, Profile] = {
    "openai": Profile(),
    "azure": Profile(
        kind="azure",
        keys=AZURE_KEYS,
        auth="api-key",
        endpoints=AZURE_ENDPOINTS,
        max_files=AZURE_FILES_PER_RESOURCE,
        min_poll_interval=AZURE_MIN_POLL,
        # Azure never expires a job at 24 h: it runs until cancelled, so end it at 24 h + 6 h.
        max_batch_age=24 * 3600.0 + OVERDUE_MARGIN,
    ),
    "openai_compatible": Profile(
        kind="openai_compatible",
        keys=KeyLookup(),
        endpoints=frozenset({"/v1/chat/completions"}),
        max_bytes_per_batch=COMPATIBLE_MAX_BYTES,
        supports_metadata=False,
        supports_list=False,
        supports_expiry=False,
    ),
    "anthropic": Profile(
        kind="anthropic",
        base_url=ANTHROPIC_URL,
        keys=ANTHROPIC_KEYS,
        auth="x-api-key",
        api_version=ANTHROPIC_VERSION,
        endpoints=ANTHROPIC_ENDPOINTS,
        max_requests_per_batch=ANTHROPIC_MAX_REQUESTS,
        max_bytes_per_batch=ANTHROPIC_MAX_BYTES,
        supports_metadata=False,  # a Message Batch carries none: a lost create is found by counts and results
        supports_expiry=False,
    ),
}


def window_seconds(window: str) -> float:
    """``24h`` -> 86400.0, ``7d`` -> 604800.0; ValueError for any other form."""
    match = WINDOW_PATTERN.fullmatch(window)
    if match is None:
        raise ValueError(f"a completion window is hours or days such as 24h or 7d, not {window!r}")
    return float(match.group(1)) * (3600.0 if match.group(2) == "h" else 86400.0)


def openai_default_profile(base_url: str | None) -> Profile:
    """The profile used when the config names none: OpenAI, as batchd has always connected."""
    return replace(KIND_DEFAULTS["openai"], base_url=base_url)


def parse_profiles(tables: Any, openai_base_url: str | None) -> dict[str, Profile]:
    """``[providers.NAME]`` tables as profiles, always with one named ``default``.

    ``openai_base_url`` (the ``base_url`` setting, else ``OPENAI_BASE_URL``) serves an ``openai``
    profile that names no base_url, as the SDK itself would.
    """
    if not isinstance(tables, dict):
        raise ConfigError("providers must be written as tables, [providers.NAME], one per service")
    profiles = {str(name): parse_profile(str(name), table) for name, table in tables.items()}
    for name, profile in profiles.items():
        if profile.kind == "openai" and profile.base_url is None:
            profiles[name] = replace(profile, base_url=openai_base_url)
    profiles.setdefault(DEFAULT_PROFILE, openai_default_profile(openai_base_url))
    return profiles


def parse_profile(name: str, table: Any) -> Profile:
    """One ``[providers.NAME]`` table over its kind's defaults; ConfigError naming table and key."""
    where = f"[providers.{name}]"
    if NAME_PATTERN.fullmatch(name) is None:
        raise ConfigError(f"{where}: a profile name is 1-64 lower-case letters, digits, - or _ (it names a folder)")
    if not isinstance(table, dict):
        raise ConfigError(f'{where} must be a table of settings, e.g. kind = "azure"')
    _refuse_keys_in_config(where, table)
    _check_known_keys(where, table)
    kind = table.get("kind", "openai")
    if kind not in KIND_DEFAULTS:
        raise ConfigError(f"{where} kind must be one of {', '.join(KIND_DEFAULTS)} (got {kind!r})")
    base = KIND_DEFAULTS[kind]
    changes = {key: _converted(where, key, value) for key, value in table.items() if key in PROFILE_KEYS}
    keys = _key_lookup(where, table, base.keys)
    webhook_keys = _webhook_lookup(where, table)
    profile = replace(base, name=name, keys=keys, webhook_keys=webhook_keys, **changes)
    check_profile(profile, where)
    return profile


def _refuse_keys_in_config(where: str, table: Mapping[str, Any]) -> None:
    for key in table:
        if "api_key" in key and key not in KEY_LOOKUP_KEYS:
            raise ConfigError(
                f"{where} {key}: a key must never be in the config file; put it in an environment variable "
                "named by key_env, a file named by a key_file_env variable, or a systemd credential named "
                "by key_credential"
            )


def _check_known_keys(where: str, table: Mapping[str, Any]) -> None:
    for key in table:
        if key != "kind" and key not in PROFILE_KEYS and key not in KEY_LOOKUP_KEYS and key not in WEBHOOK_LOOKUP_KEYS:
            known = ", ".join(sorted({"kind", *PROFILE_KEYS, *KEY_LOOKUP_KEYS, *WEBHOOK_LOOKUP_KEYS}))
            raise ConfigError(f"{where}: unknown key {key!r}; a profile knows {known}")


def _key_lookup(where: str, table: Mapping[str, Any], default: KeyLookup) -> KeyLookup:
    """The kind's lookup, or only the sources the table names (so no other variable is read first)."""
    named = {field: table[key] for key, field in KEY_LOOKUP_KEYS.items() if key in table}
    for key in KEY_LOOKUP_KEYS:
        if key in table and (not isinstance(table[key], str) or not table[key].strip()):
            raise ConfigError(f"{where} {key} must be a non-empty name (got {table[key]!r})")
    return KeyLookup(**named) if named else default


def _webhook_lookup(where: str, table: Mapping[str, Any]) -> KeyLookup | None:
    """The sources the table names for its webhook signing secret; None: the default profile's."""
    named = {field: table[key] for key, field in WEBHOOK_LOOKUP_KEYS.items() if key in table}
    for key in WEBHOOK_LOOKUP_KEYS:
        if key in table and (not isinstance(table[key], str) or not table[key].strip()):
            raise ConfigError(f"{where} {key} must be a non-empty name (got {table[key]!r})")
    return KeyLookup(**named) if named else None


def _converted(where: str, key: str, value: Any) -> Any:
    try:
        return PROFILE_KEYS[key](value)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{where} {key}: {exc}") from None


def _text(value: Any) -> str:
    if not isinstance(value, str):
        raise TypeError(f"expected text, got {value!r}")
    return value


def _optional_text(value: Any) -> str | None:
    return None if value == "" else _text(value)


def _texts(value: Any) -> tuple[str, ...]:
    if not isinstance(value, list) or not value:
        raise TypeError(f"expected a non-empty list of text, got {value!r}")
    return tuple(_text(item) for item in value)


def _whole(value: Any) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        raise TypeError(f"expected a whole number, got {value!r}")
    return value


def _seconds(value: Any) -> float:
    if not isinstance(value, int | float) or isinstance(value, bool):
        raise TypeError(f"expected a number of seconds, got {value!r}")
    return float(value)


def _names(value: Any) -> tuple[tuple[str, str], ...]:
    if not isinstance(value, dict):
        raise TypeError(f'expected a table such as {{ "gpt-4o-mini" = "my-deployment" }}, got {value!r}')
    pairs = tuple((str(model), name) for model, name in value.items())
    for model, name in pairs:
        if not model or not isinstance(name, str) or not name:
            raise TypeError(f"each model needs a non-empty name to send instead (got {model!r} = {name!r})")
    return pairs


def _flag(value: Any) -> bool:
    if not isinstance(value, bool):
        raise TypeError(f"expected true or false, got {value!r}")
    return value


PROFILE_KEYS: Mapping[str, Callable[[Any], Any]] = {
    "base_url": _optional_text,
    "auth": _text,
    "api_version": _optional_text,
    "file_purpose": _text,
    "completion_windows": _texts,
    "completion_window": _text,
    "endpoints": lambda value: frozenset(_texts(value)),
    "max_requests_per_batch": _whole,
    "max_bytes_per_batch": _whole,
    "max_files": _whole,
    "min_poll_interval": _seconds,
    "supports_metadata": _flag,
    "supports_list": _flag,
    "supports_cancel": _flag,
    "supports_expiry": _flag,
    "wrap_bare_bodies": _flag,
    "split_by_model": _flag,
    "max_batch_age": _seconds,
    "models": _names,
}
KEY_LOOKUP_KEYS: Mapping[str, str] = {"key_env": "env", "key_file_env": "file_env", "key_credential": "credential"}
WEBHOOK_LOOKUP_KEYS: Mapping[str, str] = {
    "webhook_secret_env": "env",
    "webhook_secret_file_env": "file_env",
    "webhook_secret_credential": "credential",
}


def check_profile(profile: Profile, where: str) -> None:
    """Raise ConfigError naming the table, the key and what to change, for the first problem found."""
    for check in (_check_connection, _check_auth, _check_windows, _check_endpoints, _check_limits, _check_models):
        problem = check(profile)
        if problem is not None:
            raise ConfigError(f"{where} {problem}")


def _check_connection(p: Profile) -> str | None:
    if p.base_url is None and p.kind != "openai":
        return f"base_url: a profile of kind {p.kind} needs its service's URL, e.g. https://RESOURCE.openai.azure.com/openai/v1/"
    if p.base_url is not None and not p.base_url.startswith(("https://", "http://")):
        return f"base_url must start with https:// (or http:// for a local service), got {p.base_url!r}"
    if p.api_version is not None and p.kind not in ("azure", "anthropic"):
        return "api_version: only Azure OpenAI takes an api-version (and Anthropic an anthropic-version); remove it"
    if p.api_version is not None and re.fullmatch(r"\d{4}-\d{2}-\d{2}(-preview)?", p.api_version) is None:
        return f"api_version must look like 2024-10-21 or 2025-03-01-preview (got {p.api_version!r})"
    if not p.file_purpose:
        return "file_purpose must not be empty (OpenAI and most services: batch)"
    return None


def _check_auth(p: Profile) -> str | None:
    if p.auth not in get_args(AuthStyle):
        return f"auth must be one of {', '.join(get_args(AuthStyle))} (got {p.auth!r})"
    if (p.auth == "x-api-key") != (p.kind == "anthropic"):
        return 'auth: x-api-key is the only auth of kind = "anthropic", and only that kind uses it; leave auth out'
    return _check_key_source(p)


def _check_key_source(p: Profile) -> str | None:
    if p.auth == "entra":
        if p.kind != "azure":
            return 'auth: entra (a Microsoft Entra ID token) works only with kind = "azure"'
        if not entra_available():
            return f"auth: entra needs the azure-identity package; install it with pip install '{ENTRA_EXTRA}'"
        return None
    if not (p.keys.env or p.keys.file_env or p.keys.credential):
        return "needs a key source: set key_env, key_file_env or key_credential (the key itself never goes here)"
    return None


def _check_windows(p: Profile) -> str | None:
    for window in p.completion_windows:
        try:
            window_seconds(window)
        except ValueError as exc:
            return f"completion_windows: {exc}"
    if p.completion_window not in p.completion_windows:
        return (
            f"completion_window {p.completion_window!r} must be one of completion_windows {list(p.completion_windows)}"
        )
    if p.kind != "openai_compatible" and p.completion_window not in limits.COMPLETION_WINDOWS:
        # OpenAI and Azure refuse any other window when the batch is created, hours after the file came.
        allowed = sorted(limits.COMPLETION_WINDOWS)
        return f"completion_window {p.completion_window!r}: kind {p.kind} takes only {allowed}; leave it out"
    return None


def _check_endpoints(p: Profile) -> str | None:
    if not p.endpoints:
        return 'endpoints must name at least one endpoint, e.g. ["/v1/chat/completions"]'
    odd = sorted(endpoint for endpoint in p.endpoints if not endpoint.startswith("/v1/"))
    return f"endpoints are paths such as /v1/chat/completions (got {odd})" if odd else None


def _check_limits(p: Profile) -> str | None:
    for key in ("max_requests_per_batch", "max_bytes_per_batch"):
        if getattr(p, key) < 1:
            return f"{key} must be 1 or more (got {getattr(p, key)})"
    if p.max_files is not None and p.max_files < 1:
        return f"max_files must be 1 or more, or left out for no limit (got {p.max_files})"
    if p.min_poll_interval < 0:
        return f"min_poll_interval must be 0 or more seconds (got {p.min_poll_interval})"
    if p.max_batch_age is not None and p.max_batch_age <= 0:
        return f"max_batch_age must be greater than 0 seconds (got {p.max_batch_age})"
    return None


def _check_models(p: Profile) -> str | None:
    # A part is renamed when it is sent, and again if the send is retried: a name that is itself
    # renamed would change the request a second time.
    names = p.model_names
    if names and p.kind == "anthropic":
        return "models: a model map is not applied to kind anthropic; name the Claude model in each line's params.model"
    chained = sorted(name for name in names.values() if name in names and names[name] != name)
    if chained:
        return (
            f"models: {chained[0]!r} is both a name sent and a model renamed; map each model straight to its deployment"
        )
    return None


def entra_available() -> bool:
    """Whether Microsoft Entra ID tokens can be had: the optional azure-identity package is installed."""
    try:
        return importlib.util.find_spec(ENTRA_MODULE) is not None
    except ModuleNotFoundError:  # no `azure` namespace at all
        return False
