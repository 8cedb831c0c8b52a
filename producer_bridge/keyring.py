"""The bridge's active secrets: read from the settings, checked, and re-read while it runs.

Kubernetes updates a mounted Secret's files in place (an atomic swap of the directory the files
link to), about a minute after the Secret changes: the kubelet's sync period plus its cache TTL
(Kubernetes docs, "Secrets": "Mounted Secrets are updated automatically"). A bridge that read
its secrets once would keep accepting a revoked key and refuse the new one until restarted. So
the secrets files are re-read

* on a schedule (``SEGSTREAM_BRIDGE_SECRETS_RELOAD_INTERVAL_S``): a revoked key stops working
  within that time even if nobody fails to authenticate;
* when a request fails to authenticate, at most once per ``RELOAD_AFTER_FAILURE_MIN_INTERVAL_S``
  (then the request is checked again): the first request signed with a new key is accepted at
  once, and a stream of bad requests costs at most one small file read per interval.

A re-read that fails (unreadable file, a weak or malformed secret, no secret at all) changes
nothing: the bridge keeps its current secrets and logs why (never a secret).
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable
from typing import Final

from producer_bridge.auth import Authenticator, SharedSecretVerifier, SignatureVerifier
from producer_bridge.errors import ConfigurationError
from producer_bridge.settings import BridgeSettings

# A failed check re-reads the files at most this often: enough for a sender that switched to a
# new key to be accepted within seconds, too rarely for bad requests to cost anything.
RELOAD_AFTER_FAILURE_MIN_INTERVAL_S: Final = 5.0
_log = logging.getLogger(__name__)

Secrets = tuple[list[str], list[str]]
"""The signing secrets and the shared secrets, as the settings give them."""


def read_secrets(settings: BridgeSettings) -> Secrets:
    """Raises :class:`ConfigurationError` naming the setting of an unreadable secrets file."""
    return settings.signing_secrets(), settings.shared_secret_values()


def verifiers(
    settings: BridgeSettings, secrets: Secrets
) -> tuple[SignatureVerifier, SharedSecretVerifier]:
    """Raises :class:`ConfigurationError` naming the setting of a weak or malformed secret."""
    signing, shared = secrets
    return (
        SignatureVerifier(signing, settings.signing_secrets_setting),
        SharedSecretVerifier(
            settings.shared_secret_header, shared, settings.shared_secrets_setting
        ),
    )


def build_authenticator(settings: BridgeSettings) -> Authenticator:
    """Raises :class:`ConfigurationError` for a weak, malformed or unreadable secret, and when no
    secret is set and unsigned mode is not asked."""
    signatures, shared = verifiers(settings, read_secrets(settings))
    return Authenticator(signatures, shared, allow_unsigned=settings.allow_unsigned)


class SecretsReloader:
    """Re-reads the secrets files into ``authenticator`` (see the module docstring)."""

    def __init__(
        self,
        settings: BridgeSettings,
        authenticator: Authenticator,
        *,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._settings = settings
        self._authenticator = authenticator
        self._monotonic = monotonic
        self._lock = threading.Lock()
        self._last_attempt: float | None = None
        self._current: Secrets | None = None
        self._last_problem: str | None = None
        if settings.has_secret_files:
            try:
                self._current = read_secrets(settings)
            except ConfigurationError as exc:  # the authenticator was built; a race with an
                self._last_problem = str(exc)  # update: the next reload says what is wrong

    @property
    def enabled(self) -> bool:
        """Only secrets from files can change while the bridge runs."""
        return self._settings.has_secret_files

    def reload(self) -> bool:
        """Re-read the files; True when the secrets changed and are now in use. Thread-safe
        (blocking file reads: call it from a worker thread in async code)."""
        if not self.enabled:
            return False
        with self._lock:
            self._last_attempt = self._monotonic()
            try:
                secrets = read_secrets(self._settings)
                if secrets == self._current:
                    self._last_problem = None
                    return False
                if not any(secrets):
                    raise ConfigurationError(
                        f"{self._settings.signing_secrets_setting} and "
                        f"{self._settings.shared_secrets_setting} hold no secret"
                    )
                self._authenticator.replace(*verifiers(self._settings, secrets))
            except ConfigurationError as exc:
                if str(exc) != self._last_problem:  # once per distinct problem, not per attempt
                    _log.error(
                        "secrets not reloaded; keeping the current ones", extra={"reason": str(exc)}
                    )
                self._last_problem = str(exc)
                return False
            self._current, self._last_problem = secrets, None
        signing, shared = secrets
        _log.info(
            "secrets reloaded",
            extra={"signing_secrets": len(signing), "shared_secrets": len(shared)},
        )
        return True

    def claim_reload_after_failure(self) -> bool:
        """Whether a request that failed to authenticate may have the files re-read now (then
        call :meth:`reload`): not when they come from the environment, nor when they were read
        less than ``RELOAD_AFTER_FAILURE_MIN_INTERVAL_S`` ago. Claiming takes the slot, so a
        burst of bad requests re-reads once. Cheap: call it on the event loop."""
        now = self._monotonic()
        last = self._last_attempt
        if not self.enabled or (
            last is not None and now - last < RELOAD_AFTER_FAILURE_MIN_INTERVAL_S
        ):
            return False
        self._last_attempt = now
        return True

    async def run(self) -> None:
        """Re-read every ``secrets_reload_interval_s`` until cancelled."""
        while True:
            await asyncio.sleep(self._settings.secrets_reload_interval_s)
            await asyncio.to_thread(self.reload)
