"""Settings: one frozen, validated object built at start-up.

Precedence, lowest to highest: defaults, the TOML file (``--config``), environment variables
``BATCHD_<KEY>``, then command-line flags. Every key is documented in ``config/batchd.toml``.
The API key is never a setting: see ``service/credentials.py``.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import os
import re
import shlex
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, get_args

from daemon import crashpoints, limits
from daemon.errors import ConfigError
from daemon.pricing import DEFAULT_PRICES, ModelPrice, parse_prices
from daemon.providers import DEFAULT_PROFILE, Profile, openai_default_profile, parse_profiles
from daemon.results_sharing import ResultsSharing, results_sharing

WatchMode = Literal["auto", "inotify", "polling"]
LogFormat = Literal["auto", "json", "console"]
ENV_PREFIX = "BATCHD_"
# BATCHD_* variables that are not settings: secrets, read like the API key (the on_job_done URL's signing
# secret, ops/job_notifications.py; the web page's token, cli/web_access.py).
NOTIFY_SECRET_ENVS = ("BATCHD_NOTIFY_SECRET", "BATCHD_NOTIFY_SECRET_FILE")
WEB_TOKEN_ENVS = ("BATCHD_WEB_TOKEN", "BATCHD_WEB_TOKEN_FILE")
NOT_SETTINGS = frozenset({"BATCHD_CONFIG", crashpoints.ENV_NAME, *NOTIFY_SECRET_ENVS, *WEB_TOKEN_ENVS})
# batchd uses five metadata pairs itself (job, part, source, sha256, part_sha256); the API allows 16.
RESERVED_METADATA_PAIRS = 5
RESUBMITTABLE = frozenset({"expired", "cancelled"})
# The job endings on_job_done can tell: done (every request succeeded), failed (the input is in failed/),
# needs_attention (done, but some requests failed or did not run).
NOTIFY_EVENTS = ("done", "failed", "needs_attention")
CANCEL_NOTE = "cancel requested"  # a job's note once `batchd cancel` ran: submit and resubmit nothing more
OVERDUE_MARGIN = 6 * 3600.0  # max_batch_age by default: the completion window plus this
MIN_LINE_BYTES = 1024  # max_line_bytes below this would refuse ordinary requests


@dataclass(frozen=True, slots=True)
class Settings:
    """Everything batchd reads at start-up. Paths are resolved against ``root``."""

    root: Path = field(default_factory=Path.cwd)
    pending_dir: str = "pending_upload"  # the drop zone, as in the seed script
    uploaded_dir: str = "uploaded_files"  # archive of accepted inputs, as in the seed script
    results_dir: str = "batch_results"  # one folder of results per input
    failed_dir: str = "failed"  # inputs that cannot succeed as they are, each with a report
    state_dir: str = "state"  # the state database, the lock and in-flight copies
    poll_interval: float = 60.0  # longest wait between two status checks of a batch
    first_poll_after: float = 5.0  # first status check after a submission; doubles up to poll_interval
    scan_interval: float = 5.0  # full rescan of the drop zone (watchdog can lose events)
    min_file_age: float = 5.0  # quiet time before a file without a close/rename event is claimed
    # Quiet time after a close before the file is claimed: a producer appending line by line
    # closes it after each line, and pauses of up to this long keep its lines in one input.
    settle_seconds: float = 2.0
    watch_mode: WatchMode = "auto"  # inotify on Linux, polling for NFS/SMB/Docker Desktop mounts
    completion_window: str = "24h"  # the only window the Batch API accepts today
    metadata: Mapping[str, str] = field(default_factory=dict)  # added to every batch
    max_requests_per_batch: int = limits.MAX_REQUESTS_PER_BATCH
    max_bytes_per_batch: int = limits.MAX_BYTES_PER_BATCH
    max_embedding_inputs_per_batch: int = limits.MAX_EMBEDDING_INPUTS_PER_BATCH
    # Estimated input tokens per batch; None = no budget. The service queues at most so many input
    # tokens per model (e.g. 2M on a low tier) and fails a bigger batch every time, so stay under it.
    max_tokens_per_batch: int | None = None
    # Seconds a token limit learned from the service is applied; then the next batch goes without it
    # (the service raises limits with the account's tier). 0 = a learned limit never expires.
    token_limit_ttl: float = 7 * 86400.0
    # The longest request line read at all (bytes, line ending not counted): a longer line is
    # streamed past without being held and its input is rejected with the line's true size.
    max_line_bytes: int = limits.DEFAULT_MAX_LINE_BYTES
    # Inputs of at most this many requests (and one part) may share a batch with other small inputs
    # of the same endpoint and model: fewer uploads and creates, under the 2,000 batches/hour limit.
    # 0 = every input gets batches of its own.
    pack_inputs_up_to: int = 1000
    pack_wait: float = 0.5  # while more inputs are arriving, how long a small one may wait for company
    # Batch creations the service allows per creation_window (2,000 an hour). As more than half of
    # it is used, small inputs wait longer for company, never longer than pack_wait_max.
    creation_budget: int = 2000
    creation_window: float = 3600.0
    pack_wait_max: float = 60.0
    # A step that fails this many times in a row with the same error on one job, before anything of
    # it was submitted, sets that job aside in failed/ with a report instead of retrying it for ever.
    quarantine_after: int = 5
    resubmit_unfinished: frozenset[str] = frozenset({"expired"})  # statuses whose unrun requests go again
    # Error codes (as summary.json's failures name them, e.g. overloaded_error) whose failed requests
    # go again by themselves, like unfinished ones (at most 3 times); empty: a failure is an outcome.
    retry_failed_codes: frozenset[str] = frozenset()
    # Seconds the service keeps output files (the API's maximum, 30 days): a backstop for remote hygiene.
    output_expires_after: int | None = limits.EXPIRY_MAX_SECONDS
    delete_remote_files: bool = True  # delete the uploaded input and the outputs once results are written
    # Write a `response.body` a service sent as a JSON string (compatible services) as the object it
    # encodes in results.jsonl; False keeps every line as the service sent it.
    normalise_bodies: bool = False
    # Seconds a batch's downloads may keep failing verification (downloaded again with back-off)
    # before what verifies is accepted and the rest reported; 0 = accept at once.
    verify_downloads_for: float = 3600.0
    prices: Mapping[str, ModelPrice] = field(default_factory=lambda: dict(DEFAULT_PRICES))  # USD per 1M tokens
    workers: int = 4  # threads that submit small inputs, and as many that collect results (see lanes)
    # An input above this many bytes is checked, split and uploaded in a lane of its own
    # (big_input_workers threads), so small inputs never wait behind it.
    big_input_bytes: int = 64_000_000
    big_input_workers: int = 2
    request_timeout: float = 300.0  # seconds per API call (read/write); connect is 10 s
    base_url: str | None = None  # API base URL; default OPENAI_BASE_URL, else the SDK's default
    log_level: str = "info"
    log_format: LogFormat = "auto"  # auto: console on a terminal, JSON lines otherwise
    heartbeat_interval: float = 5.0  # how often the main loop records that it is alive
    metrics_port: int | None = None  # Prometheus endpoint; None = off
    metrics_address: str = "127.0.0.1"  # loopback by default: metrics are for a local scraper or proxy
    webhook_port: int | None = None  # OpenAI batch webhook receiver; None = off (polling alone)
    webhook_address: str = "127.0.0.1"  # a reverse proxy terminates TLS and forwards here
    web_port: int | None = None  # the operator web page; None = off
    web_address: str = "127.0.0.1"  # loopback by default: the page is for the operator on this machine
    web_host_name: str | None = None  # a name the page answers to besides its addresses (cli/web_hosts.py)
    stuck_validating_after: float = 3600.0  # warn (batch_stuck) when a batch validates longer than this
    stuck_finalizing_after: float = 3600.0  # ... finalizes longer than this
    stuck_cancelling_after: float = 3600.0  # ... is cancelling longer than this
    # A batch the service answers 404 for, and does not list, this long (reset by any sighting)
    # ends its part: what was collected is kept, the rest is reported as batch_lost.
    lost_batch_grace: float = 3600.0
    # A batch still running this long after it was submitted is cancelled and treated like an
    # expired one. None: the completion window plus 6 h (a service that never expires batches).
    max_batch_age: float | None = None
    # Wrap inputs of bare request bodies ({"model": ..., "messages": [...]}) or one JSON array as Batch
    # API lines at intake (custom_id line-N), with wrap_url, else the url the bodies point to; the
    # original is kept in uploaded_files/originals/. False: such an input is rejected with the fix.
    wrap_bare_bodies: bool = False
    wrap_url: str | None = None
    # An input with bad lines: "reject" sends all of it to failed/; "split_out" sends the bad lines
    # there (NAME.split-out.jsonl, with a report) and the good ones ahead (see intake/partial_inputs.py).
    partial_inputs: str = "reject"
    # An input whose lines name several models: False rejects it (one file, one model); True sends one
    # batch (or more) per model and merges the results back in input order (intake/splitter.py lanes).
    split_by_model: bool = False
    # The most bytes a *.jsonl.gz input may decompress to; more (a gzip bomb) rejects it.
    max_decompressed_bytes: int = 4_000_000_000
    # Shared set-ups (daemon/results_sharing.py): batch_results/, failed/ and each complete results
    # folder get this group (a name or a number) and folder mode ("0750"; files without the x bits).
    results_group: str | None = None
    results_mode: str | None = None
    # [providers.NAME] tables (daemon/providers.py); empty: the default profile alone, from base_url.
    providers: Mapping[str, Profile] = field(default_factory=dict)
    # When a job ends (ops/job_notifications.py): a command run as an argument list, no shell, with the
    # job's fields as BATCHD_* environment variables; and/or a URL POSTed a JSON body signed with HMAC-SHA256.
    on_job_done_command: tuple[str, ...] = ()
    on_job_done_url: str | None = None
    on_job_done_events: frozenset[str] = frozenset(NOTIFY_EVENTS)  # which endings are told

    def sharing(self) -> ResultsSharing:
        """results_group / results_mode resolved (checked at start, so this does not fail)."""
        return results_sharing(self.results_group, self.results_mode)

    def path(self, name: str) -> Path:
        """Return the absolute path of one of the folders (e.g. ``"pending_dir"``)."""
        return self.root / str(getattr(self, name))

    @property
    def pending(self) -> Path:
        return self.path("pending_dir")

    @property
    def uploaded(self) -> Path:
        return self.path("uploaded_dir")

    @property
    def results(self) -> Path:
        return self.path("results_dir")

    @property
    def failed(self) -> Path:
        return self.path("failed_dir")

    @property
    def state(self) -> Path:
        return self.path("state_dir")

    @property
    def default_profile(self) -> Profile:
        """The profile for inputs at the top of the drop zone: ``[providers.default]``, else OpenAI."""
        return self.providers.get(DEFAULT_PROFILE) or openai_default_profile(self.base_url)

    def profile(self, name: str) -> Profile:
        """The profile an input of folder ``name`` runs on (the default one for the top folder)."""
        return self.providers.get(name) or self.default_profile

    def wraps_bare_bodies(self, profile: str) -> bool:
        """Whether inputs of ``profile`` with bare request bodies are wrapped at intake."""
        own = self.profile(profile).wrap_bare_bodies
        return self.wrap_bare_bodies if own is None else own

    def splits_by_model(self, profile: str) -> bool:
        """Whether inputs of ``profile`` naming several models are split into one batch per model."""
        own = self.profile(profile).split_by_model
        return self.split_by_model if own is None else own

    @property
    def batch_age_limit(self) -> float:
        """Seconds a batch may run before batchd cancels it (``max_batch_age``)."""
        if self.max_batch_age is not None:
            return self.max_batch_age
        return float(self.completion_window.removesuffix("h")) * 3600.0 + OVERDUE_MARGIN


FOLDER_KEYS = ("pending_dir", "uploaded_dir", "results_dir", "failed_dir", "state_dir")
_FIELDS = {f.name: f for f in dataclasses.fields(Settings)}


def load_settings(
    config_file: Path | None = None,
    environ: Mapping[str, str] | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> Settings:
    """Build the settings from defaults, a TOML file, the environment and CLI overrides."""
    raw: dict[str, Any] = {}
    if config_file is not None:
        raw.update(_read_toml(config_file))
    raw.update(_read_environ(os.environ if environ is None else environ))
    raw.update({k: v for k, v in (overrides or {}).items() if v is not None})
    if "base_url" not in raw and (environ or os.environ).get("OPENAI_BASE_URL"):
        raw["base_url"] = (environ or os.environ)["OPENAI_BASE_URL"]
    tables = raw.pop("providers", {})
    settings = Settings(**{key: _convert(key, value) for key, value in raw.items()})
    settings = dataclasses.replace(settings, providers=_as_providers(tables, settings.base_url))
    validate(settings)
    return settings


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"config file {path} does not exist; fix the --config path") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"config file {path} is not valid TOML: {exc}") from None
    if "web_token" in data:  # a secret: said before "unknown setting", which would not say where it goes
        raise ConfigError("web_token must not be in the config file; use BATCHD_WEB_TOKEN_FILE or BATCHD_WEB_TOKEN")
    for key in data:
        _check_known(key, f"config file {path}")
    if "api_key" in data:
        raise ConfigError("api_key must not be in the config file; use a key file or OPENAI_API_KEY")
    return data


def _read_environ(environ: Mapping[str, str]) -> dict[str, Any]:
    found: dict[str, Any] = {}
    for name, value in environ.items():
        if not name.startswith(ENV_PREFIX) or name in NOT_SETTINGS:
            continue
        key = name[len(ENV_PREFIX) :].lower()
        _check_known(key, f"environment variable {name}")
        found[key] = value
    return found


def _check_known(key: str, where: str) -> None:
    if key not in _FIELDS:
        known = ", ".join(sorted(_FIELDS))
        raise ConfigError(f"unknown setting {key!r} in {where}; known settings: {known}")


def _convert(key: str, value: Any) -> Any:
    """Turn a TOML or environment value into the field's type, or say what is wrong."""
    kind = _FIELDS[key].type
    try:
        return _CONVERTERS.get(str(kind), _as_is)(value)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"setting {key!r}: {exc}") from None


def _as_providers(tables: Any, base_url: str | None) -> dict[str, Profile]:
    if isinstance(tables, str):  # from BATCHD_PROVIDERS
        raise ConfigError("providers can be set only in the config file, as [providers.NAME] tables")
    return parse_profiles(tables, base_url)


def _as_is(value: Any) -> Any:
    if not isinstance(value, str):
        raise TypeError(f"expected text, got {value!r}")
    return value


def _as_float(value: Any) -> float:
    if isinstance(value, bool):
        raise TypeError(f"expected a number of seconds, got {value!r}")
    return float(value)


def _as_int(value: Any) -> int:
    if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
        raise TypeError(f"expected a whole number, got {value!r}")
    return int(value)


def _as_optional_int(value: Any) -> int | None:
    if value in ("", "none", "None"):
        return None
    return _as_int(value)


def _as_optional_float(value: Any) -> float | None:
    if value in ("", "none", "None"):
        return None
    return _as_float(value)


def _as_optional_str(value: Any) -> str | None:
    return None if value == "" else _as_is(value)


def _as_path(value: Any) -> Path:
    return Path(value if isinstance(value, os.PathLike) else _as_is(value)).expanduser().absolute()


def _as_metadata(value: Any) -> dict[str, str]:
    if isinstance(value, str):  # from the environment: "key=value,key2=value2"
        pairs = [item.split("=", 1) for item in value.split(",") if item.strip()]
        if any(len(pair) != 2 for pair in pairs):
            raise ValueError("write metadata as key=value pairs separated by commas")
        value = {k.strip(): v.strip() for k, v in pairs}
    if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
        raise TypeError("metadata must be a table of text values")
    return dict(value)


def _as_bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in {"true", "1", "yes", "on"}:
        return True
    if text in {"false", "0", "no", "off"}:
        return False
    raise ValueError(f"expected true or false, got {value!r}")


def _as_argv(value: Any) -> tuple[str, ...]:
    if isinstance(value, str):  # from the environment: split like a shell would, but none runs it
        return tuple(shlex.split(value))
    if not isinstance(value, list | tuple) or not all(isinstance(v, str) for v in value):
        raise TypeError(
            'expected a list of texts: the program and its arguments, e.g. ["/usr/local/bin/tell", "--quiet"]'
        )
    return tuple(value)


def _as_status_set(value: Any) -> frozenset[str]:
    items = value.split(",") if isinstance(value, str) else value
    if not isinstance(items, list | tuple | frozenset | set):
        raise TypeError("expected a list of batch statuses")
    return frozenset(str(item).strip() for item in items if str(item).strip())


_CONVERTERS: dict[str, Callable[[Any], Any]] = {
    "Path": _as_path,
    "float": _as_float,
    "int": _as_int,
    "int | None": _as_optional_int,
    "float | None": _as_optional_float,
    "str | None": _as_optional_str,
    "Mapping[str, str]": _as_metadata,
    "frozenset[str]": _as_status_set,
    "bool": _as_bool,
    "tuple[str, ...]": _as_argv,
    "Mapping[str, ModelPrice]": parse_prices,
}


def validate(settings: Settings) -> None:
    """Raise ConfigError naming the setting and what to change, for the first problem found."""
    for check in (
        _check_intervals,
        _check_choices,
        _check_folders,
        _check_batch_limits,
        _check_metadata,
        _check_listeners,
        _check_web_host_name,
        _check_notifications,
        _check_inputs,
        _check_results_sharing,
    ):
        check(settings)


def _check_results_sharing(s: Settings) -> None:
    results_sharing(s.results_group, s.results_mode)  # raises ConfigError naming the key


def _check_intervals(s: Settings) -> None:
    for key in (
        "poll_interval",
        "first_poll_after",
        "scan_interval",
        "request_timeout",
        "heartbeat_interval",
        "stuck_validating_after",
        "stuck_finalizing_after",
        "stuck_cancelling_after",
        "lost_batch_grace",
    ):
        if getattr(s, key) <= 0:
            raise ConfigError(f"{key} must be greater than 0 seconds (got {getattr(s, key)})")
    if s.min_file_age < 0:
        raise ConfigError(f"min_file_age must be 0 or more seconds (got {s.min_file_age})")
    if s.settle_seconds < 0:
        raise ConfigError(
            f"settle_seconds must be 0 (claim a file as soon as it is closed) or more seconds (got {s.settle_seconds})"
        )
    if s.pack_wait < 0:
        raise ConfigError(f"pack_wait must be 0 or more seconds (got {s.pack_wait})")
    _check_creation_budget(s)
    if s.max_batch_age is not None and s.max_batch_age <= 0:
        raise ConfigError(
            f"max_batch_age must be greater than 0 seconds, or unset for the completion window plus 6 h "
            f"(got {s.max_batch_age})"
        )

    if s.quarantine_after < 1:
        raise ConfigError(f"quarantine_after must be 1 or more failures in a row (got {s.quarantine_after})")

    if s.verify_downloads_for < 0:
        raise ConfigError(
            "verify_downloads_for must be 0 (accept downloads that do not add up at once) or more seconds "
            f"(got {s.verify_downloads_for})"
        )
    if not 1 <= s.workers <= 64:
        raise ConfigError(f"workers must be between 1 and 64 (got {s.workers})")
    if not 1 <= s.big_input_workers <= 64:
        raise ConfigError(f"big_input_workers must be between 1 and 64 (got {s.big_input_workers})")
    if s.big_input_bytes < 1:
        raise ConfigError(f"big_input_bytes must be 1 or more bytes, e.g. 64000000 (got {s.big_input_bytes})")


def _check_creation_budget(s: Settings) -> None:
    if s.creation_budget < 1:
        raise ConfigError(
            f"creation_budget must be 1 or more batch creations per creation_window (got {s.creation_budget})"
        )
    if s.creation_window <= 0:
        raise ConfigError(f"creation_window must be greater than 0 seconds (got {s.creation_window})")
    if s.pack_wait_max < s.pack_wait:
        raise ConfigError(
            f"pack_wait_max must be at least pack_wait ({s.pack_wait} s): it bounds how long a small input "
            f"may wait for company (got {s.pack_wait_max})"
        )


def _check_choices(s: Settings) -> None:
    _check_choice("watch_mode", s.watch_mode, get_args(WatchMode))
    _check_choice("log_format", s.log_format, get_args(LogFormat))
    _check_choice("log_level", s.log_level, ("debug", "info", "warning", "error"))
    _check_choice("completion_window", s.completion_window, tuple(sorted(limits.COMPLETION_WINDOWS)))
    _check_choice("partial_inputs", s.partial_inputs, ("reject", "split_out"))
    unknown = s.resubmit_unfinished - RESUBMITTABLE
    if unknown:
        raise ConfigError(f"resubmit_unfinished may hold only expired and cancelled (got {sorted(unknown)})")
    odd = sorted(code for code in s.retry_failed_codes if not code.replace("_", "").replace("-", "").isalnum())
    if odd:
        raise ConfigError(
            f"retry_failed_codes holds error codes as summary.json's failures names them, such as "
            f"overloaded_error (got {odd})"
        )
    if s.output_expires_after is not None and not (
        limits.EXPIRY_MIN_SECONDS <= s.output_expires_after <= limits.EXPIRY_MAX_SECONDS
    ):
        raise ConfigError("output_expires_after must be between 3600 and 2592000 seconds, or empty")


def _check_choice(key: str, value: str, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise ConfigError(f"{key} must be one of {', '.join(allowed)} (got {value!r})")


def _check_folders(s: Settings) -> None:
    names = [getattr(s, key) for key in FOLDER_KEYS]
    for key, name in zip(FOLDER_KEYS, names, strict=True):
        if not name or Path(name).is_absolute() or ".." in Path(name).parts or "/" in name:
            raise ConfigError(f"{key} must be a plain folder name inside root (got {name!r})")
    if len(set(names)) != len(names):
        raise ConfigError(f"the folder names must all differ (got {', '.join(names)})")


def _check_batch_limits(s: Settings) -> None:
    bounds = (
        ("max_requests_per_batch", s.max_requests_per_batch, limits.MAX_REQUESTS_PER_BATCH),
        ("max_bytes_per_batch", s.max_bytes_per_batch, limits.MAX_BYTES_PER_BATCH),
        (
            "max_embedding_inputs_per_batch",
            s.max_embedding_inputs_per_batch,
            limits.MAX_EMBEDDING_INPUTS_PER_BATCH,
        ),
    )
    for key, value, ceiling in bounds:
        if not 1 <= value <= ceiling:
            raise ConfigError(f"{key} must be between 1 and the API's limit {ceiling} (got {value})")
    if not MIN_LINE_BYTES <= s.max_line_bytes <= limits.MAX_BYTES_PER_BATCH:
        raise ConfigError(
            f"max_line_bytes must be between {MIN_LINE_BYTES} and the API's batch limit "
            f"{limits.MAX_BYTES_PER_BATCH} bytes (got {s.max_line_bytes}); the default "
            f"{limits.DEFAULT_MAX_LINE_BYTES} fits any request the service takes"
        )
    if s.pack_inputs_up_to < 0:
        raise ConfigError(
            f"pack_inputs_up_to must be 0 (never share a batch) or more requests (got {s.pack_inputs_up_to})"
        )
    if s.max_tokens_per_batch is not None and s.max_tokens_per_batch < 1:
        raise ConfigError(
            "max_tokens_per_batch must be 1 or more estimated input tokens (e.g. your model's enqueued-token "
            f"limit), or unset for no budget (got {s.max_tokens_per_batch})"
        )
    if s.token_limit_ttl < 0:
        raise ConfigError(
            "token_limit_ttl must be 0 (a learned token limit never expires) or more seconds, e.g. 604800 "
            f"for 7 days (got {s.token_limit_ttl})"
        )


def _check_metadata(s: Settings) -> None:
    room = limits.METADATA_MAX_PAIRS - RESERVED_METADATA_PAIRS
    if len(s.metadata) > room:
        raise ConfigError(f"metadata may hold at most {room} pairs (batchd uses the other {RESERVED_METADATA_PAIRS})")
    for key, value in s.metadata.items():
        if not key or len(key) > limits.METADATA_MAX_KEY or key.startswith("batchd_"):
            raise ConfigError(f"metadata key {key!r} must be 1-64 characters and not start with batchd_")
        if len(value) > limits.METADATA_MAX_VALUE:
            raise ConfigError(f"metadata value for {key!r} is longer than 512 characters")


def _check_notifications(s: Settings) -> None:
    unknown = s.on_job_done_events - set(NOTIFY_EVENTS)
    if unknown:
        raise ConfigError(
            f"on_job_done_events may hold only {', '.join(NOTIFY_EVENTS)} (got {', '.join(sorted(unknown))})"
        )
    if s.on_job_done_command and not s.on_job_done_command[0]:
        raise ConfigError('on_job_done_command must start with the program to run, e.g. ["/usr/local/bin/tell"]')
    if s.on_job_done_url is not None and not s.on_job_done_url.startswith(("http://", "https://")):
        raise ConfigError(f"on_job_done_url must be an http:// or https:// URL (got {s.on_job_done_url!r})")


def _check_listeners(s: Settings) -> None:
    for kind in ("metrics", "webhook", "web"):
        port, address = getattr(s, f"{kind}_port"), getattr(s, f"{kind}_address")
        if port is not None and not 1 <= port <= 65535:
            raise ConfigError(f"{kind}_port must be between 1 and 65535, or unset to turn it off (got {port})")
        try:
            ipaddress.ip_address(address)
        except ValueError:
            raise ConfigError(
                f"{kind}_address must be an IP address such as 127.0.0.1 or :: (got {address!r})"
            ) from None
    ports = [(key, getattr(s, key)) for key in ("metrics_port", "webhook_port", "web_port")]
    for n, (key, port) in enumerate(ports):
        for other, other_port in ports[n + 1 :]:
            if port is not None and port == other_port:
                raise ConfigError(f"{key} and {other} must differ (both {port})")


def _check_web_host_name(s: Settings) -> None:
    name = s.web_host_name
    if name is not None and not re.fullmatch(r"[A-Za-z0-9]([A-Za-z0-9.-]{0,251}[A-Za-z0-9.])?", name):
        raise ConfigError(
            "web_host_name must be a host name such as batchd.example.org (no scheme, no port), the name "
            f"the web page is reached by besides its IP addresses and localhost (got {name!r})"
        )


def _check_inputs(s: Settings) -> None:
    if s.wrap_url is not None and s.wrap_url not in limits.ENDPOINTS:
        raise ConfigError(
            f"wrap_url must be a Batch API endpoint such as /v1/chat/completions, or unset to take it from "
            f"the bodies (got {s.wrap_url!r})"
        )
    if s.max_decompressed_bytes < MIN_LINE_BYTES:
        raise ConfigError(
            f"max_decompressed_bytes must be at least {MIN_LINE_BYTES} bytes, e.g. 4000000000 "
            f"(got {s.max_decompressed_bytes})"
        )
