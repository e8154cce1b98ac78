"""What the optional HTTP endpoints (metrics, webhooks) share besides their listener
(daemon/http_listener.py): a clear error for a port that will not open."""

from __future__ import annotations

from daemon.errors import ConfigError


def port_error(key: str, port: int, address: str, exc: OSError) -> ConfigError:
    return ConfigError(f"{key} {port} on {address} cannot be opened ({exc.strerror}); pick a free port or unset {key}")
