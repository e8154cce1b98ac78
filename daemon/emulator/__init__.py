"""A local emulator of the OpenAI Files + Batches HTTP API for tests, benchmarks and demo mode.

    with EmulatorServer(EmulatorSettings(validating_seconds=0.05, in_progress_seconds=0.1)) as server:
        client = openai.OpenAI(base_url=server.base_url, api_key="any", max_retries=0)
        server.faults.add_rule(action="status", method="POST", path_prefix="/batches", status=429, retry_after=7)
        ...
        assert server.calls.count("POST", "/v1/batches") == 1

Trigger words in an input's `body.model`: `fail-validation`, `expire`, `fail-all` (see lifecycle.py).
Faults: faults.py. HTTP control endpoints for a separately run emulator: control.py. The service's
limits it enforces when set: enqueued tokens per model (`token_limit`), batch creations per window
(`create_limit`, `create_window`: creation_limit.py).
Other services (Azure OpenAI, third-party compatible ones): `EmulatorSettings(flavour=...)`, see flavours.py;
Anthropic's Message Batches: `flavour="anthropic"`, see anthropic_api.py and anthropic_requests.py (triggers).
"""

from daemon.emulator.faults import FaultPlan, FaultRule
from daemon.emulator.server import EmulatorServer
from daemon.emulator.settings import EmulatorSettings

__all__ = ["EmulatorServer", "EmulatorSettings", "FaultPlan", "FaultRule"]
