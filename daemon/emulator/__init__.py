"""A local emulator of the OpenAI Files + Batches HTTP API for tests, benchmarks and demo mode."""

from daemon.emulator.faults import FaultPlan, FaultRule
from daemon.emulator.server import EmulatorServer
from daemon.emulator.settings import EmulatorSettings

__all__ = ["EmulatorServer", "EmulatorSettings", "FaultPlan", "FaultRule"]
