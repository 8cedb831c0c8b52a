"""One JSON object per log line, for the bridge process."""

from __future__ import annotations

import logging
import re
import sys
import time
from collections.abc import Callable

from aiohttp.http_exceptions import HttpProcessingError
from aiohttp.web import RequestPayloadError
from pythonjsonlogger.json import JsonFormatter


def configure_logging(level: str = "INFO") -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        JsonFormatter(
            "{levelname}{name}{message}",
            style="{",
            # ISO-8601 UTC, not logging's local comma-separated asctime: log pipelines parse it.
            timestamp="ts",
            rename_fields={"levelname": "level", "name": "logger"},
            static_fields={"service": "segstream-bridge"},
        )
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # One line per request is the access log's job at DEBUG; the app logs what matters itself.
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)


class HttpParserErrorFilter(logging.Filter):
    """aiohttp logs a request it cannot parse at ERROR with a traceback: a Content-Encoding it
    cannot decode or a malformed header (it then answers 400 itself), or a body that breaks its
    coding or framing while aiohttp drains it after the answer. The sender's fault, not the
    bridge's: such a record becomes one INFO line with the reason and no traceback."""

    def filter(self, record: logging.LogRecord) -> bool:
        error = record.exc_info[1] if record.exc_info else None
        if not isinstance(error, HttpProcessingError | RequestPayloadError):
            return True
        record.levelno, record.levelname = logging.INFO, "INFO"
        record.msg, record.args = "request refused by the HTTP parser", ()
        record.reason = " ".join(str(error).split())
        record.exc_info, record.exc_text = None, None
        return logging.getLogger(record.name).isEnabledFor(logging.INFO)


def quiet_http_parser_errors() -> None:
    """Install :class:`HttpParserErrorFilter` on aiohttp's server logger (once)."""
    server_log = logging.getLogger("aiohttp.server")
    if not any(isinstance(f, HttpParserErrorFilter) for f in server_log.filters):
        server_log.addFilter(HttpParserErrorFilter())


class RepeatFilter(logging.Filter):
    """Lets the first of a run of equal lines through, drops the repeats for ``interval_s``,
    then lets the next one through carrying ``repeated=<dropped count>``.

    A broker that is down makes librdkafka report the same failed connect every few dozen
    milliseconds; one line per half minute says the same without drowning everything else.
    Lines differing only in numbers (ports, durations) count as equal.
    """

    def __init__(self, interval_s: float = 30.0, clock: Callable[[], float] = time.monotonic):
        super().__init__()
        self._interval_s = interval_s
        self._clock = clock
        self._last_passed: dict[str, float] = {}
        self._dropped: dict[str, int] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        key = _DIGITS.sub(
            "#", f"{record.name}|{record.getMessage()}|{getattr(record, 'reason', '')}"
        )
        now = self._clock()
        last = self._last_passed.get(key)
        if last is not None and now - last < self._interval_s:
            self._dropped[key] = self._dropped.get(key, 0) + 1
            return False
        self._last_passed[key] = now
        dropped = self._dropped.pop(key, 0)
        if dropped:
            record.repeated = dropped
        if len(self._last_passed) > _MAX_KEYS:  # bounded memory whatever the messages are
            self._last_passed.clear()
        return True


_DIGITS = re.compile(r"\d+")
_MAX_KEYS = 1000
