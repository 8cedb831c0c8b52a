"""Structured JSON logging for the simulator process (python-json-logger)."""

from __future__ import annotations

import logging
import sys
from typing import TextIO

from pythonjsonlogger.json import JsonFormatter


def json_handler(stream: TextIO | None = None) -> logging.Handler:
    """A handler writing one JSON object per line: time, level, logger, message and extras."""
    handler = logging.StreamHandler(stream if stream is not None else sys.stderr)
    handler.setFormatter(
        JsonFormatter(
            "{levelname}{name}{message}",
            style="{",
            # ISO-8601 UTC under "ts", rather than logging's local, comma-separated asctime.
            timestamp="ts",
            rename_fields={"levelname": "level", "name": "logger"},
        )
    )
    return handler


def configure_logging(level: str = "INFO") -> None:
    """Send every log record of the process to stderr as JSON, replacing other root handlers."""
    root = logging.getLogger()
    for existing in list(root.handlers):
        root.removeHandler(existing)
    root.addHandler(json_handler())
    root.setLevel(level.upper())
