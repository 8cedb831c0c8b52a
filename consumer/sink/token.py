"""The CRM's bearer token, followed through rotations of the file that holds it.

Kubernetes updates a mounted Secret in place (an atomic symlink swap, within about a minute of the
Secret changing); a token read once at start would be used until the CRM revokes it, and then
forever. So the file is read again:

* on a schedule (``refresh_s``), so a rotation the CRM announces with an overlap (old and new
  token both valid for a while) is followed before the old token stops working;
* when the CRM answers 401 to the token in use, at most once per ``min_reread_s``: a CRM that
  revoked the old token at once costs one refused call, the circuit breaker opens, and its probe
  (a second later) carries the new token.

A file that cannot be read at a refresh keeps the token in use (a swap in progress, a volume
briefly away); only the first read, at start, is a configuration error.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Final

from consumer.errors import ConfigurationError

# A 401 storm (every write in flight answered 401 at once) reads the file once per second.
DEFAULT_MIN_REREAD_S: Final = 1.0

_log = logging.getLogger(__name__)


def read_token_file(path: Path) -> str:
    """The token in ``path`` (surrounding whitespace removed); :class:`ConfigurationError`
    when the file cannot be read or is empty."""
    try:
        token = path.read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
        raise ConfigurationError(f"cannot read CRM token file {path}: {reason}") from exc
    if not token:
        raise ConfigurationError(f"CRM token file {path} is empty")
    return token


class BearerToken:
    """A token given as a value (never changes) or as a file (followed). Event loop thread."""

    def __init__(
        self,
        value: str | None = None,
        *,
        path: Path | None = None,
        refresh_s: float = 60.0,
        min_reread_s: float = DEFAULT_MIN_REREAD_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if (value is None) == (path is None):
            raise ConfigurationError("a CRM token is a value or a file, exactly one of them")
        self._path = path
        self._refresh_s = refresh_s
        self._min_reread_s = min_reread_s
        self._clock = clock
        self._value = read_token_file(path) if path is not None else (value or "").strip()
        if not self._value:
            raise ConfigurationError("the CRM token is empty")
        self._read_at = clock()

    def current(self) -> str:
        """The token to send now (re-read first when the schedule says so)."""
        if self._path is not None and self._clock() - self._read_at >= self._refresh_s:
            self._reread("scheduled")
        return self._value

    def refused(self, presented: str) -> bool:
        """The CRM answered 401 to ``presented``. True when another token is in use now (read
        from the file, by this call or since ``presented`` was sent): worth trying again."""
        if presented != self._value:
            return True
        if self._path is None or self._clock() - self._read_at < self._min_reread_s:
            return False
        return self._reread("refused")

    def _reread(self, why: str) -> bool:
        """Read the file again; True when it holds a token other than the one in use."""
        if self._path is None:
            return False
        self._read_at = self._clock()
        try:
            token = read_token_file(self._path)
        except ConfigurationError as exc:
            _log.warning("CRM token file not re-read; keeping the token in use: %s", exc)
            return False
        if token == self._value:
            return False
        self._value = token
        # Never the token: only that it changed and why it was looked at.
        _log.info("CRM token changed in its file; using the new one", extra={"trigger": why})
        return True
