"""Standard Webhooks signature checks (HMAC-SHA256 over ``id.timestamp.body``)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from producer_bridge.errors import AuthenticationError, ConfigurationError


class SignatureVerifier:
    """Accepts a request signed with any of the active secrets (key rotation).

    The ``standardwebhooks`` package enforces the 5-minute timestamp window and compares in
    constant time; this class only adds several secrets and one error type.
    """

    def __init__(self, secrets: Sequence[str]) -> None:
        if not secrets:
            raise ConfigurationError("at least one signing secret is required")
        try:
            self._webhooks = [Webhook(secret) for secret in secrets]
        except Exception as exc:  # binascii.Error, EmptyWebhookSecretError
            raise ConfigurationError(
                "a webhook secret is not valid base64 (expected whsec_<base64>)"
            ) from exc

    def verify(self, body: bytes, headers: Mapping[str, str]) -> None:
        plain = {name.lower(): value for name, value in headers.items()}
        missing = [
            h for h in ("webhook-id", "webhook-timestamp", "webhook-signature") if h not in plain
        ]
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
