"""Who may post events: Standard Webhooks signatures, or a static shared-secret header.

A Standard Webhooks signature (HMAC-SHA256 over ``id.timestamp.body``, 5-minute window) proves
who sent the body and when. The shared-secret header is the weaker alternative for senders that
can only add fixed headers: it proves nothing about the body, and anyone who sees one request can
replay it. Both accept several secrets at once, for rotation.
"""

from __future__ import annotations

import enum
import hmac
import logging
from collections.abc import Mapping, Sequence
from typing import Final

from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from producer_bridge.errors import AuthenticationError, ConfigurationError

SIGNATURE_HEADERS: Final = ("webhook-id", "webhook-timestamp", "webhook-signature")
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

    def __init__(self, secrets: Sequence[str]) -> None:
        try:
            self._webhooks = [Webhook(secret) for secret in secrets]
        except Exception as exc:  # binascii.Error, EmptyWebhookSecretError
            # Never the secret itself in the message: it would end up in a log.
            raise ConfigurationError(
                "a webhook secret is not valid base64 (expected whsec_<base64>)"
            ) from exc

    def __bool__(self) -> bool:
        return bool(self._webhooks)

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


class SharedSecretVerifier:
    def __init__(self, header: str, secrets: Sequence[str]) -> None:
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
    ) -> None:
        self._signatures = signatures
        self._shared = shared
        self.unsigned = not signatures and not shared
        if self.unsigned and not allow_unsigned:
            raise ConfigurationError(
                "no webhook secret: set SEGSTREAM_BRIDGE_WEBHOOK_SECRETS(_FILE) or "
                "SEGSTREAM_BRIDGE_SHARED_SECRETS(_FILE); for local development only, "
                "SEGSTREAM_BRIDGE_ALLOW_UNSIGNED=true accepts unauthenticated requests"
            )

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
        """Which credentials the request presents; checked before its body is read, so an
        anonymous caller cannot make the bridge read anything."""
        if self.unsigned:
            return Credentials.NONE
        if "webhook-signature" in headers and self._signatures:
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
