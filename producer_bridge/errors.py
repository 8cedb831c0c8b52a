"""The bridge's exceptions: one root for everything :mod:`producer_bridge` raises."""

from __future__ import annotations

from typing import TypedDict


class BridgeError(Exception):
    """Root of every error raised by :mod:`producer_bridge`."""


class ConfigurationError(BridgeError):
    """Settings that cannot work (no secret and no dev flag, unreadable secret file, ...)."""


class AuthenticationError(BridgeError):
    """A request whose signature or shared secret does not check out."""


class MalformedJsonError(BridgeError):
    """A body that is not one JSON text in UTF-8 (or holds text that is not Unicode)."""


class FieldError(TypedDict):
    """One reason an event was refused, in the sender's own field names (no input echoed)."""

    field: str
    reason: str


class InvalidEventError(BridgeError):
    """A JSON document that is not an acceptable event; ``errors`` says which fields and why."""

    def __init__(self, errors: list[FieldError]) -> None:
        super().__init__("; ".join(f"{e['field']}: {e['reason']}" for e in errors))
        self.errors = errors


class PublishUnavailableError(BridgeError):
    """The broker did not take the record (unreachable, timed out, local queue full).

    The caller answers 503 + Retry-After: the event was not accepted and the sender must retry.
    """
