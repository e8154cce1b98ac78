"""Logging set-up: structlog for our events, stdlib loggers (openai, httpx2, watchdog) routed
through the same renderer. JSON lines when not on a terminal, readable console output on one."""

from __future__ import annotations

import logging
import sys
from collections.abc import MutableMapping
from typing import Any, TextIO

import structlog

from daemon.display import printable
from daemon.redaction import redact_value

# Tracebacks as data for JSON logs, without the values of local variables: those carry request
# content (a line being validated, a body being sent), and logs are kept, shipped and shared.
_JSON_TRACEBACKS = structlog.processors.ExceptionRenderer(
    structlog.tracebacks.ExceptionDictTransformer(show_locals=False)
)


def _redact_processor(_: Any, __: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    """Mask secrets in every value, nested ones and rendered tracebacks included, as a last line of
    defence: our own code never logs a key, but an exception text from a library might."""
    for key, value in event.items():
        event[key] = redact_value(value)
    return event


def _printable_processor(_: Any, __: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    """On a terminal, escape control characters (a file name may hold an ESC); JSON escapes its own."""
    for key, value in event.items():
        if isinstance(value, str):  # a traceback keeps its line breaks
            event[key] = "\n".join(map(printable, value.split("\n"))) if key == "exception" else printable(value)
    return event


def configure(level: str = "info", fmt: str = "auto", stream: TextIO | None = None) -> None:
    """Configure structlog and the stdlib root logger once, at start-up."""
    out = stream or sys.stderr
    as_json = fmt == "json" or (fmt == "auto" and not out.isatty())
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    renderer: Any
    tail: list[Any]
    if as_json:
        renderer, tail = structlog.processors.JSONRenderer(), [_JSON_TRACEBACKS]
    else:
        # Plain text tracebacks (the default would use rich, if installed, which shows locals).
        renderer = structlog.dev.ConsoleRenderer(exception_formatter=structlog.dev.plain_traceback)
        tail = [structlog.processors.format_exc_info, _printable_processor]
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=shared,
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            *tail,
            _redact_processor,
            renderer,
        ],
    )
    handler = logging.StreamHandler(out)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # Library chatter at INFO (one line per HTTP request) drowns our events; keep their warnings.
    for noisy in ("openai", "httpx2", "httpx", "watchdog"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))
    structlog.configure(
        processors=[*shared, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=False,
    )


def get_logger(name: str) -> structlog.stdlib.BoundLogger:
    logger: structlog.stdlib.BoundLogger = structlog.get_logger(name)
    return logger
