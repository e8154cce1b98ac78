"""`/_emulator/*`: drive a separately running emulator over HTTP (no API key, never faulted).

GET    /_emulator/health  -> {"status": "ok"}
GET    /_emulator/faults  -> the FaultPlan snapshot
POST   /_emulator/faults  -> apply a JSON payload (FaultPlan.apply), returns the snapshot
DELETE /_emulator/faults  -> clear all faults, returns the snapshot
GET    /_emulator/batches -> the Mishaps snapshot (vanished and endless batches)
POST   /_emulator/batches -> apply a JSON payload (Mishaps.apply), returns the snapshot
GET    /_emulator/calls   -> request counts per (method, route)
"""

from __future__ import annotations

from daemon.emulator.calls import CallLog
from daemon.emulator.errors import ApiError, bad_request
from daemon.emulator.faults import FaultPlan
from daemon.emulator.messages import ApiRequest, JsonReply, error_reply
from daemon.emulator.mishaps import Mishaps

CONTROL_PREFIX = "/_emulator"


class ControlApi:
    def __init__(self, faults: FaultPlan, calls: CallLog, mishaps: Mishaps | None = None) -> None:
        self._faults = faults
        self._calls = calls
        self._mishaps = mishaps or Mishaps()

    def handle(self, request: ApiRequest) -> JsonReply:
        try:
            return self._dispatch(request)
        except ApiError as error:
            return error_reply(error)

    def _dispatch(self, request: ApiRequest) -> JsonReply:
        route = (request.method, request.path)
        if route == ("GET", f"{CONTROL_PREFIX}/health"):
            return JsonReply(200, {"status": "ok"})
        if route == ("GET", f"{CONTROL_PREFIX}/calls"):
            return JsonReply(200, self._calls.to_json())
        if request.path == f"{CONTROL_PREFIX}/batches" and request.method in ("GET", "POST"):
            return self._batches(request)
        if route == ("POST", f"{CONTROL_PREFIX}/faults"):
            self._apply(request)
        elif route == ("DELETE", f"{CONTROL_PREFIX}/faults"):
            self._faults.clear()
        elif route != ("GET", f"{CONTROL_PREFIX}/faults"):
            raise ApiError(404, f"Invalid URL ({request.method} {request.path})")
        return JsonReply(200, self._faults.snapshot())

    def _batches(self, request: ApiRequest) -> JsonReply:
        if request.method == "POST":
            payload = request.json()
            if not isinstance(payload, dict):
                raise bad_request("The batch mishaps must be a JSON object.")
            try:
                self._mishaps.apply(payload)
            except ValueError as error:
                raise bad_request(str(error)) from error
        return JsonReply(200, self._mishaps.snapshot())

    def _apply(self, request: ApiRequest) -> None:
        payload = request.json()
        if not isinstance(payload, dict):
            raise bad_request("The fault settings must be a JSON object.")
        try:
            self._faults.apply(payload)
        except ValueError as error:
            raise bad_request(str(error)) from error
