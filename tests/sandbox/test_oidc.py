"""The sandbox's OIDC provider answers as RFC 6749 section 4.4 and 5.2 say, and its tokens verify
against its own key set (what the broker checks)."""

from __future__ import annotations

import base64
import json
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from sandbox.kafka.oidc import OidcProvider


@pytest.fixture
def provider() -> Iterator[OidcProvider]:
    oidc = OidcProvider({"segstream": "s3cret"}).start()
    yield oidc
    oidc.stop()


def post_token(
    provider: OidcProvider, form: dict[str, str], basic: tuple[str, str] | None
) -> tuple[int, Any]:
    headers = {"Content-Type": "application/x-www-form-urlencoded"}
    if basic is not None:
        headers["Authorization"] = "Basic " + base64.b64encode(":".join(basic).encode()).decode()
    request = urllib.request.Request(  # noqa: S310 - loopback
        provider.token_endpoint_url, urllib.parse.urlencode(form).encode(), headers
    )
    try:
        with urllib.request.urlopen(request, timeout=5) as response:  # noqa: S310
            return response.status, json.load(response)
    except urllib.error.HTTPError as error:
        return error.code, json.load(error)


def b64(part: str) -> bytes:
    return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))


def test_a_known_client_gets_a_token_that_verifies_against_the_key_set(
    provider: OidcProvider,
) -> None:
    status, body = post_token(
        provider, {"grant_type": "client_credentials", "scope": "kafka"}, ("segstream", "s3cret")
    )
    assert status == 200
    assert body["token_type"] == "Bearer"
    header, claims, signature = body["access_token"].split(".")
    payload = json.loads(b64(claims))
    assert payload["sub"] == "segstream"
    assert payload["aud"] == provider.audience
    assert payload["scope"] == "kafka"
    assert payload["exp"] - payload["iat"] == body["expires_in"]
    with urllib.request.urlopen(provider.jwks_url, timeout=5) as response:  # noqa: S310
        [key] = json.load(response)["keys"]
    assert key["kid"] == json.loads(b64(header))["kid"]
    public = rsa.RSAPublicNumbers(
        int.from_bytes(b64(key["e"]), "big"), int.from_bytes(b64(key["n"]), "big")
    ).public_key()
    public.verify(  # raises InvalidSignature when the token was not signed with this key
        b64(signature), f"{header}.{claims}".encode(), padding.PKCS1v15(), hashes.SHA256()
    )


@pytest.mark.parametrize(
    ("form", "basic", "status", "error"),
    [
        ({"grant_type": "client_credentials"}, ("segstream", "wrong"), 401, "invalid_client"),
        ({"grant_type": "client_credentials"}, ("nobody", "s3cret"), 401, "invalid_client"),
        ({"grant_type": "client_credentials"}, None, 401, "invalid_client"),
        ({"grant_type": "password"}, ("segstream", "s3cret"), 400, "unsupported_grant_type"),
        (
            {
                "grant_type": "client_credentials",
                "client_id": "segstream",
                "client_secret": "s3cret",
            },
            None,
            200,
            None,
        ),
    ],
)
def test_the_token_endpoint_answers_as_rfc_6749_says(
    provider: OidcProvider,
    form: dict[str, str],
    basic: tuple[str, str] | None,
    status: int,
    error: str | None,
) -> None:
    answered, body = post_token(provider, form, basic)
    assert answered == status
    assert body.get("error") == error
