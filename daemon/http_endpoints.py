"""What the optional HTTP endpoints (metrics, webhooks, the web page) share besides their listener
(daemon/http_listener.py): how the engine starts and stops them, a clear error for a port that will not open."""

from __future__ import annotations

from typing import Protocol

from daemon.errors import ConfigError


class Endpoint(Protocol):
    """An optional HTTP endpoint: bound in ``start``, before the daemon says it started; released in ``stop``."""

    def start(self) -> None: ...

    def stop(self) -> None: ...


def port_error(key: str, port: int, address: str, exc: OSError) -> ConfigError:
    return ConfigError(f"{key} {port} on {address} cannot be opened ({exc.strerror}); pick a free port or unset {key}")
