"""Who may post events: Standard Webhooks signatures, or a static shared-secret header.

A Standard Webhooks signature (HMAC-SHA256 over ``id.timestamp.body``, 5-minute window) proves
who sent the body and when. The shared-secret header is the weaker alternative for senders that
can only add fixed headers: it proves nothing about the body, and anyone who sees one request can
replay it. Both accept several secrets at once, for rotation.
"""

from __future__ import annotations

import base64
import binascii
import enum
import hmac
import logging
import re
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Final

from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from producer_bridge.errors import AuthenticationError, ConfigurationError

SIGNATURE_HEADERS: Final = ("webhook-id", "webhook-timestamp", "webhook-signature")
# Standard Webhooks: "the timestamp ... should be within a small tolerance of the current time
# (e.g. 5 minutes) to prevent replay attacks"; the standardwebhooks package uses 5 minutes.
SIGNATURE_TOLERANCE_S: Final = 300
_UNIX_SECONDS: Final = re.compile(r"[0-9]{1,12}")
_HMAC_SHA256_BYTES: Final = 32
# Standard Webhooks, "Signature scheme": the symmetric signing secret is "Random. Between 24 bytes
# (192 bits) and 64 bytes (512 bits)", base64-encoded after "whsec_".
SIGNING_KEY_BYTES: Final = (24, 64)
# A static shared secret proves only that the caller knows it: it must not be guessable. 24
# characters is 144 bits as random base64 and 96 as random hex; anything shorter is a password.
SHARED_SECRET_MIN_CHARS: Final = 24
_log = logging.getLogger(__name__)


class Credentials(enum.Enum):
    SIGNATURE = "standard-webhooks"
    SHARED_SECRET = "shared-secret"  # noqa: S105 - the name of a mode, not a secret
    NONE = "unsigned"


class SignatureVerifier:
    """Accepts a body signed with any of the active secrets (key rotation).

    The ``standardwebhooks`` package enforces the 5-minute timestamp window and compares in
    constant time; this class adds several secrets and one error type.
    """

    def __init__(
        self, secrets: Sequence[str], setting: str = "SEGSTREAM_BRIDGE_WEBHOOK_SECRETS"
    ) -> None:
        """Raises :class:`ConfigurationError` naming ``setting`` (never a secret) for a secret
        that is not ``whsec_<base64>`` of a 24..64-byte key."""
        self._webhooks = [
            Webhook(_signing_key(secret, f"{setting}: secret {n} of {len(secrets)}"))
            for n, secret in enumerate(secrets, start=1)
        ]

    def __bool__(self) -> bool:
        return bool(self._webhooks)

    @staticmethod
    def check_form(headers: Mapping[str, str], now: float) -> None:
        """What can be checked before a single body byte is read, so that a caller without a
        plausible signature gets nothing read: the three headers present, the id printable,
        the timestamp Unix seconds inside the 5-minute window (``now`` is Unix seconds), and at
        least one ``v1,<base64 of a 32-byte HMAC-SHA256>`` among the space-separated
        signatures (Standard Webhooks, "Signature scheme"). Raises :class:`AuthenticationError`.
        """
        missing = [h for h in SIGNATURE_HEADERS if not headers.get(h)]
        if missing:
            raise AuthenticationError(f"missing signature headers: {', '.join(missing)}")
        if not headers["webhook-id"].isprintable() or len(headers["webhook-id"]) > 256:
            raise AuthenticationError("webhook-id must be 1..256 printable characters")
        timestamp = headers["webhook-timestamp"]
        if not _UNIX_SECONDS.fullmatch(timestamp):
            raise AuthenticationError("webhook-timestamp must be Unix seconds (digits only)")
        if abs(now - int(timestamp)) > SIGNATURE_TOLERANCE_S:
            raise AuthenticationError(
                f"webhook-timestamp is more than {SIGNATURE_TOLERANCE_S} s away from the "
                "bridge's clock (a replay, or the sender's clock is wrong)"
            )
        if not any(_is_v1_signature(entry) for entry in headers["webhook-signature"].split(" ")):
            raise AuthenticationError(
                "malformed webhook-signature header: expected v1,<base64 HMAC-SHA256> "
                "(several separated by spaces)"
            )

    def verify(self, body: bytes, headers: Mapping[str, str]) -> None:
        plain = {name.lower(): value for name, value in headers.items()}
        missing = [h for h in SIGNATURE_HEADERS if not plain.get(h)]
        if missing:
            raise AuthenticationError(f"missing signature headers: {', '.join(missing)}")
        try:
            text = body.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise AuthenticationError(
                "body is not UTF-8, so it cannot carry a valid signature"
            ) from exc
        last_reason = "no matching signature"
        for webhook in self._webhooks:
            try:
                webhook.verify(text, plain, json_parse=False)
            except WebhookVerificationError as exc:
                last_reason = str(exc)
            except ValueError:  # a malformed "v1,<sig>" list or base64 in the header
                last_reason = "malformed webhook-signature header"
            else:
                return
        raise AuthenticationError(last_reason)


def _signing_key(secret: str, which: str) -> bytes:
    # Strict base64, unlike the standardwebhooks package (which drops characters outside the
    # alphabet): a secret mangled by a copy and paste must not become a different, shorter key.
    text = secret.removeprefix("whsec_")
    try:
        key = base64.b64decode(text + "=" * (-len(text) % 4), validate=True)
    except (binascii.Error, ValueError) as exc:
        # Never the secret itself in the message: it would end up in a log.
        raise ConfigurationError(f"{which} is not valid base64 (expected whsec_<base64>)") from exc
    low, high = SIGNING_KEY_BYTES
    if not low <= len(key) <= high:
        raise ConfigurationError(
            f"{which} is not a {low}..{high}-byte key (Standard Webhooks); generate one with "
            f"`python -c \"import secrets, base64; print('whsec_' + "
            f'base64.b64encode(secrets.token_bytes(32)).decode())"`'
        )
    return key


def _is_v1_signature(entry: str) -> bool:
    version, _, signature = entry.partition(",")
    if version != "v1":
        return False
    try:
        return len(base64.b64decode(signature, validate=True)) == _HMAC_SHA256_BYTES
    except (binascii.Error, ValueError):
        return False


class SharedSecretVerifier:
    def __init__(
        self,
        header: str,
        secrets: Sequence[str],
        setting: str = "SEGSTREAM_BRIDGE_SHARED_SECRETS",
    ) -> None:
        """Raises :class:`ConfigurationError` naming ``setting`` for a secret shorter than
        ``SHARED_SECRET_MIN_CHARS`` (neither the secret nor its length is in the message)."""
        for n, secret in enumerate(secrets, start=1):
            if len(secret) < SHARED_SECRET_MIN_CHARS:
                raise ConfigurationError(
                    f"{setting}: secret {n} of {len(secrets)} is shorter than "
                    f"{SHARED_SECRET_MIN_CHARS} characters; use a random one "
                    '(`python -c "import secrets; print(secrets.token_urlsafe(32))"`)'
                )
        self.header = header
        self._secrets = [secret.encode("utf-8") for secret in secrets]

    def __bool__(self) -> bool:
        return bool(self._secrets)

    def verify(self, presented: str) -> None:
        given = presented.encode("utf-8", errors="replace")
        # Compare with every secret, no early exit: the time taken says nothing about which
        # secret (or how much of one) matched.
        matched = False
        for secret in self._secrets:
            matched |= hmac.compare_digest(given, secret)
        if not matched:
            raise AuthenticationError(f"{self.header} does not hold a valid shared secret")


class Authenticator:
    """Decides, per request, which credentials apply and checks them.

    With at least one secret configured every request must authenticate. With none, the bridge
    only starts when ``allow_unsigned`` says so (development), and then accepts every request.
    """

    def __init__(
        self,
        signatures: SignatureVerifier,
        shared: SharedSecretVerifier,
        *,
        allow_unsigned: bool = False,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._clock = clock
        self._signatures = signatures
        self._shared = shared
        self.unsigned = not signatures and not shared
        if self.unsigned and not allow_unsigned:
            raise ConfigurationError(
                "no webhook secret: set SEGSTREAM_BRIDGE_WEBHOOK_SECRETS(_FILE) or "
                "SEGSTREAM_BRIDGE_SHARED_SECRETS(_FILE); for local development only, "
                "SEGSTREAM_BRIDGE_ALLOW_UNSIGNED=true accepts unauthenticated requests"
            )

    def replace(self, signatures: SignatureVerifier, shared: SharedSecretVerifier) -> None:
        """Switch to re-read secrets (rotation). Raises :class:`ConfigurationError`, changing
        nothing, when they would leave an authenticating bridge without any secret."""
        if not self.unsigned and not signatures and not shared:
            raise ConfigurationError("no secret left in the configured secrets")
        # Two plain attribute writes: a request checked meanwhile sees either set, both valid.
        self._signatures, self._shared = signatures, shared

    def modes(self) -> list[str]:
        if self.unsigned:
            return [Credentials.NONE.value]
        return [
            mode.value
            for mode, verifier in (
                (Credentials.SIGNATURE, self._signatures),
                (Credentials.SHARED_SECRET, self._shared),
            )
            if verifier
        ]

    def credentials(self, headers: Mapping[str, str]) -> Credentials:
        """Which credentials the request presents, checked as far as they can be before its body
        is read: a shared secret entirely, a signature for its form and timestamp window. A
        caller without either gets nothing read. ``headers`` is case-insensitive (aiohttp's)."""
        if self.unsigned:
            return Credentials.NONE
        if "webhook-signature" in headers and self._signatures:
            self._signatures.check_form(headers, self._clock())
            return Credentials.SIGNATURE
        presented = headers.get(self._shared.header)
        if presented is not None and self._shared:
            self._shared.verify(presented)
            return Credentials.SHARED_SECRET
        if self._signatures:
            missing = [h for h in SIGNATURE_HEADERS if h not in headers]
            raise AuthenticationError(f"missing signature headers: {', '.join(missing)}")
        raise AuthenticationError(f"missing {self._shared.header} header")

    def verify_body(
        self, credentials: Credentials, body: bytes, headers: Mapping[str, str]
    ) -> None:
        if credentials is Credentials.SIGNATURE:
            self._signatures.verify(body, headers)
