"""EmulatorServer: the emulator's HTTP server on a background thread, with start/stop."""

from __future__ import annotations

import contextlib
import logging
import shutil
import socket
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from http.server import ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from typing import Any

from daemon.emulator.anthropic_api import AnthropicApi
from daemon.emulator.anthropic_store import AnthropicStore
from daemon.emulator.api import Api
from daemon.emulator.calls import CallLog
from daemon.emulator.control import ControlApi
from daemon.emulator.faults import FaultPlan
from daemon.emulator.flavours import flavour_for
from daemon.emulator.handler import Application, EmulatorHandler
from daemon.emulator.mishaps import Mishaps
from daemon.emulator.service_api import ServiceApi
from daemon.emulator.settings import EmulatorSettings
from daemon.emulator.store import Store

logger = logging.getLogger(__name__)
POLL_INTERVAL = 0.05  # how quickly serve_forever notices stop()
JOIN_TIMEOUT = 5.0


class _HTTPServer(ThreadingHTTPServer):
    """A threading server that tracks its connections so stop() can close them.

    socketserver alone leaves keep-alive connections (and their threads) open after shutdown().
    """

    daemon_threads = True

    def __init__(self, address: tuple[str, int], app: Application) -> None:
        self.app = app
        self._connections: dict[threading.Thread, socket.socket] = {}
        self._connections_lock = threading.Lock()
        super().__init__(address, EmulatorHandler)

    def process_request(self, request: Any, client_address: Any) -> None:
        thread = threading.Thread(target=self._serve_connection, args=(request, client_address), daemon=True)
        with self._connections_lock:
            self._connections[thread] = request
        thread.start()

    def _serve_connection(self, request: Any, client_address: Any) -> None:
        try:
            self.process_request_thread(request, client_address)
        finally:
            with self._connections_lock:
                self._connections.pop(threading.current_thread(), None)

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Stay quiet about disconnected clients (faults cause them on purpose); log real bugs."""
        if not isinstance(sys.exc_info()[1], OSError):
            logger.exception("emulator connection from %s failed", client_address)

    def close_connections(self) -> None:
        with self._connections_lock:
            connections = dict(self._connections)
        for connection in connections.values():
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)
        deadline = time.monotonic() + JOIN_TIMEOUT
        for thread in connections:
            thread.join(max(0.0, deadline - time.monotonic()))


class EmulatorServer:
    """A local emulator of the OpenAI Files + Batches API.

    `clock` (default time.time) supplies "now" for the batch lifecycle; tests may pass a manual
    clock to move batches through their statuses without waiting.
    """

    def __init__(
        self,
        settings: EmulatorSettings | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.settings = settings if settings is not None else EmulatorSettings()
        self.faults = FaultPlan(self.settings.seed)
        self.calls = CallLog()
        self._host = host
        self._requested_port = port
        self._clock = clock
        self._stopping = threading.Event()
        self._state_lock = threading.Lock()
        self._store: Store | AnthropicStore | None = None
        self._httpd: _HTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._private_dir: Path | None = None
        self._data_dir: Path | None = None

    def start(self) -> EmulatorServer:
        with self._state_lock:
            if self._httpd is not None or self._stopping.is_set():
                raise RuntimeError("an EmulatorServer can be started only once")
            self._data_dir = self._prepare_data_dir()
            store, api = self._service(self._data_dir)
            app = Application(
                api,
                ControlApi(self.faults, self.calls, store.mishaps),
                self.faults,
                self.calls,
                self._stopping,
            )
            self._httpd = _HTTPServer((self._host, self._requested_port), app)
            self._store = store
            self._thread = threading.Thread(
                target=self._httpd.serve_forever, args=(POLL_INTERVAL,), name="batchd-emulator", daemon=True
            )
            self._thread.start()
        return self

    def _service(self, data_dir: Path) -> tuple[Store | AnthropicStore, ServiceApi]:
        if self.settings.flavour == "anthropic":
            messages = AnthropicStore(self.settings, data_dir, self._clock)
            return messages, AnthropicApi(messages)
        store = Store(self.settings, data_dir, self._clock)
        return store, Api(store, flavour_for(self.settings))

    def _prepare_data_dir(self) -> Path:
        if self.settings.data_dir is None:
            self._private_dir = Path(tempfile.mkdtemp(prefix="batchd-emulator-"))
            return self._private_dir
        self.settings.data_dir.mkdir(parents=True, exist_ok=True)
        return self.settings.data_dir

    def stop(self) -> None:
        """Stop serving, close every connection, remove a private data dir. Idempotent."""
        with self._state_lock:
            if self._stopping.is_set():
                return
            self._stopping.set()
            httpd, thread = self._httpd, self._thread
        self.faults.release()  # a held request would keep its connection open
        if httpd is not None and thread is not None:
            httpd.shutdown()
            httpd.server_close()
            httpd.close_connections()
            thread.join(JOIN_TIMEOUT)
        if self._private_dir is not None:
            shutil.rmtree(self._private_dir, ignore_errors=True)

    def __enter__(self) -> EmulatorServer:
        return self.start()

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None) -> None:
        self.stop()

    @property
    def host(self) -> str:
        return self._host

    @property
    def port(self) -> int:
        if self._httpd is None:
            raise RuntimeError("the emulator is not started")
        return int(self._httpd.server_address[1])

    @property
    def url(self) -> str:
        """The root URL, e.g. for the `/_emulator/...` control endpoints."""
        return f"http://{self._host}:{self.port}"

    @property
    def base_url(self) -> str:
        """What to pass as `OpenAI(base_url=...)` (Azure's v1 form for the azure flavour), or as
        `Anthropic(base_url=...)` for the anthropic flavour (the root: the SDK adds `/v1/...`)."""
        if self.settings.flavour == "anthropic":
            return self.url
        return f"{self.url}/openai/v1" if self.settings.flavour == "azure" else f"{self.url}/v1"

    @property
    def data_dir(self) -> Path:
        """Where file bytes live (the private temporary directory when settings.data_dir is None)."""
        if self._data_dir is None:
            raise RuntimeError("the emulator is not started")
        return self._data_dir

    @property
    def store(self) -> Store:
        if self._store is None:
            raise RuntimeError("the emulator is not started")
        if isinstance(self._store, AnthropicStore):
            raise RuntimeError("the anthropic flavour has no files; see EmulatorServer.message_batches")
        return self._store

    @property
    def message_batches(self) -> AnthropicStore:
        """The anthropic flavour's Message Batches (records with their plans and results)."""
        if not isinstance(self._store, AnthropicStore):
            raise RuntimeError("only the anthropic flavour has Message Batches")
        return self._store

    @property
    def mishaps(self) -> Mishaps:
        """Batches the service forgets or never ends (see mishaps.py)."""
        if self._store is None:
            raise RuntimeError("the emulator is not started")
        return self._store.mishaps

    def batches(self) -> list[dict[str, Any]]:
        """Copies of all Batch objects as the API would return them now, oldest first (Message
        Batches as their JSON for the anthropic flavour)."""
        if isinstance(self._store, AnthropicStore):
            return self._store.snapshots(self.url)
        return self.store.batches()

    def files(self) -> list[dict[str, Any]]:
        """Copies of all File objects, oldest first."""
        return self.store.files()

    def file_bytes(self, file_id: str) -> bytes:
        return self.store.file_bytes(file_id)
