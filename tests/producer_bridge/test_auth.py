"""Who may post: Standard Webhooks signatures (with rotation and the 5-minute window), a shared
secret header, or nobody-checks only when a developer explicitly asks for it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from multidict import CIMultiDict
from standardwebhooks.webhooks import Webhook

from producer_bridge.auth import (
    Authenticator,
    Credentials,
    SharedSecretVerifier,
    SignatureVerifier,
)
from producer_bridge.errors import AuthenticationError, ConfigurationError
from sandbox.secrets import new_webhook_secret

BODY = b'{"customerId": "C-1"}'
OLD, NEW = new_webhook_secret(), new_webhook_secret()


def signed(secret: str, body: bytes = BODY, at: datetime | None = None) -> CIMultiDict[str]:
    at = at or datetime.now(UTC)
    return CIMultiDict(
        {
            "webhook-id": "msg_1",
            "webhook-timestamp": str(int(at.timestamp())),
            "webhook-signature": Webhook(secret).sign("msg_1", at, body.decode()),
        }
    )


def authenticator(
    signing: list[str] | None = None, shared: list[str] | None = None, *, unsigned: bool = False
) -> Authenticator:
    return Authenticator(
        SignatureVerifier(signing or []),
        SharedSecretVerifier("X-Segstream-Token", shared or []),
        allow_unsigned=unsigned,
    )


def check(auth: Authenticator, headers: CIMultiDict[str], body: bytes = BODY) -> Credentials:
    credentials = auth.credentials(headers)
    auth.verify_body(credentials, body, headers)
    return credentials


@pytest.mark.parametrize("secret", [OLD, NEW])
def test_during_rotation_both_secrets_are_accepted(secret: str) -> None:
    assert check(authenticator([OLD, NEW]), signed(secret)) is Credentials.SIGNATURE


def test_a_signature_header_listing_several_signatures_passes_when_one_matches() -> None:
    headers = signed(NEW)
    headers["webhook-signature"] = (
        f"{signed(OLD)['webhook-signature']} {headers['webhook-signature']}"
    )
    assert check(authenticator([NEW]), headers) is Credentials.SIGNATURE


@pytest.mark.parametrize(
    ("headers", "reason"),
    [
        (lambda: signed(new_webhook_secret()), "No matching signature"),
        (lambda: signed(NEW, at=datetime.now(UTC) - timedelta(minutes=6)), "too old"),
        (lambda: signed(NEW, at=datetime.now(UTC) + timedelta(minutes=6)), "too new"),
        (lambda: CIMultiDict({**signed(NEW), "webhook-signature": "v1,***"}), "No matching"),
        (lambda: CIMultiDict({**signed(NEW), "webhook-signature": "nonsense"}), "malformed"),
        (lambda: CIMultiDict({**signed(NEW), "webhook-timestamp": "1e30"}), "Invalid"),
        (lambda: CIMultiDict({"webhook-signature": "v1,abc"}), "missing signature headers"),
        (CIMultiDict, "missing signature headers"),
    ],
    ids=[
        "unknown-secret",
        "too-old",
        "too-new",
        "bad-base64",
        "no-version",
        "absurd-timestamp",
        "no-id",
        "nothing",
    ],
)
def test_a_bad_signature_is_refused_with_a_reason(headers: object, reason: str) -> None:
    with pytest.raises(AuthenticationError, match=reason):
        check(authenticator([NEW]), headers())  # type: ignore[operator]


def test_a_signature_covers_the_body() -> None:
    with pytest.raises(AuthenticationError):
        check(authenticator([NEW]), signed(NEW), BODY.replace(b"C-1", b"C-2"))


def test_a_shared_secret_header_is_accepted_with_any_active_secret() -> None:
    auth = authenticator(shared=["first-secret", "second-secret"])
    for secret in ("first-secret", "second-secret"):
        headers = CIMultiDict({"x-segstream-token": secret})
        assert check(auth, headers) is Credentials.SHARED_SECRET


@pytest.mark.parametrize("presented", ["wrong", "first-secre", "first-secretX", "", "ümlaut"])
def test_a_wrong_shared_secret_is_refused_without_echoing_it(presented: str) -> None:
    with pytest.raises(AuthenticationError) as raised:
        check(authenticator(shared=["first-secret"]), CIMultiDict({"X-Segstream-Token": presented}))
    assert "first-secret" not in str(raised.value)
    assert presented == "" or presented not in str(raised.value)


def test_with_both_modes_configured_either_one_authenticates() -> None:
    auth = authenticator([NEW], ["shared"])
    assert check(auth, signed(NEW)) is Credentials.SIGNATURE
    assert check(auth, CIMultiDict({"X-Segstream-Token": "shared"})) is Credentials.SHARED_SECRET
    with pytest.raises(AuthenticationError, match="missing signature headers"):
        check(auth, CIMultiDict())


def test_a_shared_secret_does_not_pass_where_only_signatures_are_configured() -> None:
    with pytest.raises(AuthenticationError):
        check(authenticator([NEW]), CIMultiDict({"X-Segstream-Token": "anything"}))


def test_without_any_secret_the_bridge_refuses_to_start() -> None:
    with pytest.raises(ConfigurationError, match="SEGSTREAM_BRIDGE_ALLOW_UNSIGNED"):
        authenticator()


def test_the_development_flag_accepts_unauthenticated_requests() -> None:
    auth = authenticator(unsigned=True)
    assert auth.unsigned
    assert check(auth, CIMultiDict()) is Credentials.NONE


def test_with_a_secret_the_development_flag_changes_nothing() -> None:
    auth = authenticator([NEW], unsigned=True)
    assert not auth.unsigned
    with pytest.raises(AuthenticationError):
        check(auth, CIMultiDict())


def test_an_invalid_secret_is_a_configuration_error_that_does_not_quote_it() -> None:
    with pytest.raises(ConfigurationError) as raised:
        SignatureVerifier(["whsec_not*base64!"])
    assert "not*base64" not in str(raised.value)
