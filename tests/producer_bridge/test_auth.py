"""Who may post: Standard Webhooks signatures (with rotation and the 5-minute window), a shared
secret header, or nobody-checks only when a developer explicitly asks for it."""

from __future__ import annotations

import base64
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
FIRST, SECOND = "first-shared-secret-0123456789", "second-shared-secret-012345678"


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


@pytest.mark.parametrize("secret", [OLD, NEW], ids=["old", "new"])
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
        (lambda: signed(NEW, at=datetime.now(UTC) - timedelta(minutes=6)), "clock"),
        (lambda: signed(NEW, at=datetime.now(UTC) + timedelta(minutes=6)), "clock"),
        (lambda: CIMultiDict({**signed(NEW), "webhook-signature": "v1,***"}), "malformed"),
        (lambda: CIMultiDict({**signed(NEW), "webhook-signature": "nonsense"}), "malformed"),
        (lambda: CIMultiDict({**signed(NEW), "webhook-timestamp": "1e30"}), "Unix seconds"),
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
    auth = authenticator(shared=[FIRST, SECOND])
    for secret in (FIRST, SECOND):
        headers = CIMultiDict({"x-segstream-token": secret})
        assert check(auth, headers) is Credentials.SHARED_SECRET


@pytest.mark.parametrize("presented", ["wrong", FIRST[:-1], FIRST + "X", "", "ümlaut" + FIRST[6:]])
def test_a_wrong_shared_secret_is_refused_without_echoing_it(presented: str) -> None:
    with pytest.raises(AuthenticationError) as raised:
        check(authenticator(shared=[FIRST]), CIMultiDict({"X-Segstream-Token": presented}))
    assert FIRST not in str(raised.value)
    assert presented == "" or presented not in str(raised.value)


def test_with_both_modes_configured_either_one_authenticates() -> None:
    auth = authenticator([NEW], [FIRST])
    assert check(auth, signed(NEW)) is Credentials.SIGNATURE
    assert check(auth, CIMultiDict({"X-Segstream-Token": FIRST})) is Credentials.SHARED_SECRET
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


# --- the form of the signature headers, checked before any body byte is read -----------------

NOW = 1_795_860_900.0


def form_only(headers: dict[str, str]) -> Credentials:
    """What the bridge decides before reading the body (no body is passed at all)."""
    auth = Authenticator(
        SignatureVerifier([NEW]), SharedSecretVerifier("X-Segstream-Token", []), clock=lambda: NOW
    )
    return auth.credentials(CIMultiDict(headers))


WELL_FORMED = {
    "webhook-id": "msg_1",
    "webhook-timestamp": str(int(NOW)),
    "webhook-signature": "v1," + base64.b64encode(b"s" * 32).decode(),
}


@pytest.mark.parametrize("offset", [-300, 0, 300])
def test_a_well_formed_signature_inside_the_window_is_read(offset: int) -> None:
    headers = {**WELL_FORMED, "webhook-timestamp": str(int(NOW) + offset)}
    assert form_only(headers) is Credentials.SIGNATURE


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"webhook-signature": "anything"}, "malformed"),
        ({"webhook-signature": "v1,"}, "malformed"),
        ({"webhook-signature": "v1," + base64.b64encode(b"s" * 31).decode()}, "malformed"),
        ({"webhook-signature": "v1a," + base64.b64encode(b"s" * 64).decode()}, "malformed"),
        ({"webhook-timestamp": str(int(NOW) - 301)}, "away from the bridge's clock"),
        ({"webhook-timestamp": str(int(NOW) + 301)}, "away from the bridge's clock"),
        ({"webhook-timestamp": f"{NOW:.1f}"}, "Unix seconds"),
        ({"webhook-timestamp": ""}, "missing signature headers: webhook-timestamp"),
        ({"webhook-id": "msg\r\n1"}, "printable"),
        ({"webhook-id": "m" * 257}, "printable"),
    ],
    ids=[
        "no-version",
        "empty-signature",
        "short-mac",
        "only-asymmetric",
        "too-old",
        "too-new",
        "fractional-timestamp",
        "no-timestamp",
        "id-with-crlf",
        "id-too-long",
    ],
)
def test_a_signature_that_cannot_be_valid_is_refused_before_the_body(
    change: dict[str, str], reason: str
) -> None:
    with pytest.raises(AuthenticationError, match=reason):
        form_only({**WELL_FORMED, **change})


def test_one_v1_signature_among_others_is_enough_to_read_the_body() -> None:
    v1a = "v1a," + base64.b64encode(b"a" * 64).decode()
    headers = {**WELL_FORMED, "webhook-signature": f"{v1a} {WELL_FORMED['webhook-signature']}"}
    assert form_only(headers) is Credentials.SIGNATURE


# --- secret strength (Standard Webhooks: a 24..64-byte key) -------------------------------------


def whsec(key_bytes: int) -> str:
    return "whsec_" + base64.b64encode(b"k" * key_bytes).decode()


@pytest.mark.parametrize("key_bytes", [24, 32, 64])
def test_a_signing_key_of_24_to_64_bytes_is_accepted(key_bytes: int) -> None:
    assert SignatureVerifier([whsec(key_bytes)])


@pytest.mark.parametrize(
    ("secret", "reason"),
    [
        ("whsec_AA", "24..64-byte key"),
        (whsec(23), "24..64-byte key"),
        (whsec(65), "24..64-byte key"),
        ("whsec_" + "A" * 31 + "*", "not valid base64"),
        ("", "24..64-byte key"),
    ],
    ids=["the-issues-example", "23-bytes", "65-bytes", "not-base64", "empty"],
)
def test_a_weak_or_malformed_signing_secret_stops_the_start_naming_the_setting(
    secret: str, reason: str
) -> None:
    with pytest.raises(ConfigurationError, match=reason) as raised:
        SignatureVerifier([NEW, secret], "SEGSTREAM_BRIDGE_WEBHOOK_SECRETS_FILE")
    message = str(raised.value)
    assert message.startswith("SEGSTREAM_BRIDGE_WEBHOOK_SECRETS_FILE: secret 2 of 2 ")
    assert secret.removeprefix("whsec_") not in message or not secret.removeprefix("whsec_")


def test_a_shared_secret_shorter_than_24_characters_stops_the_start_naming_the_setting() -> None:
    assert SharedSecretVerifier("X-Segstream-Token", ["x" * 24])
    with pytest.raises(ConfigurationError, match="shorter than 24 characters") as raised:
        SharedSecretVerifier("X-Segstream-Token", [FIRST, "hunter2"])
    assert "SEGSTREAM_BRIDGE_SHARED_SECRETS: secret 2 of 2" in str(raised.value)
    assert "hunter2" not in str(raised.value)
    assert "7" not in str(raised.value)  # not even its length
