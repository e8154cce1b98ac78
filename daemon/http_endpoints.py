"""What the optional HTTP endpoints (metrics, webhooks) share: a clear error for a port that will
not open, and a stop that releases the port at once."""

from __future__ import annotations

import socketserver
import threading

from daemon.errors import ConfigError


def port_error(key: str, port: int, address: str, exc: OSError) -> ConfigError:
    return ConfigError(f"{key} {port} on {address} cannot be opened ({exc.strerror}); pick a free port or unset {key}")


def stop_serving(server: socketserver.BaseServer | None, thread: threading.Thread | None) -> None:
    if server is None:
        return
    server.shutdown()
    server.server_close()
    if thread is not None:
        thread.join(timeout=1.0)
